//! The hypervisor's command line (`/chosen/xen,xen-bootargs` or `/chosen/bootargs`), with
//! Xen's conventions so a Xen command line works unchanged:
//!
//! * options are separated by spaces; `name=value` or a bare `name`;
//! * `-` and `_` in option names are equivalent;
//! * booleans take `1/0`, `yes/no`, `on/off`, `true/false`, `enable/disable`; a bare `name`
//!   is true and `no-name` is false;
//! * sizes take a `K`, `M`, `G` or `T` suffix (`B` for bytes); without one they are kilobytes;
//! * options this hypervisor does not know are collected (not fatal) so the caller can warn
//!   "unknown option ignored" once the console is up;
//! * everything after a ` -- ` is for dom0's kernel, not for the hypervisor (Xen's x86
//!   convention; on a Raspberry Pi it is how `cmdline.txt` can give dom0 a command line).
//!
//! Known options: `dom0_mem=`, `dom0_max_vcpus=`, `loglvl=`, `gnttab_max_frames=`,
//! `gnttab_max_maptrack_frames=`, `granite_audit=`, `granite_exit=`, `granite_selftest=`,
//! `console=`, `dtuart=`.

use super::FixedVec;
use crate::hv::Options;

/// Xen's `loglvl=` values.
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum LogLevel {
    None,
    Error,
    Warning,
    Info,
    Debug,
    All,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<LogLevel> {
        Some(match s {
            "none" => LogLevel::None,
            "error" => LogLevel::Error,
            "warning" => LogLevel::Warning,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "all" => LogLevel::All,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::None => "none",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::All => "all",
        }
    }

    /// The matching filter of the `log` crate (`all` shows trace messages too).
    pub fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::None => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warning => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::All => log::LevelFilter::Trace,
        }
    }
}

/// How the hypervisor ends the machine when it is done (or panics).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExitMethod {
    /// PSCI `SYSTEM_OFF` through the device tree's conduit (QEMU exits with status 0).
    Psci,
    /// Semihosting `SYS_EXIT` with a status code (QEMU must run with `-semihosting`).
    Semihosting,
}

/// A known option with a value we could not use.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Invalid<'a> {
    pub option: &'a str,
    pub why: &'static str,
}

pub const MAX_REPORTED: usize = 16;

/// The parsed command line.
#[derive(Clone, Copy, Debug)]
pub struct BootOptions<'a> {
    pub loglvl: LogLevel,
    /// `dom0_mem=`: dom0's RAM in bytes.
    pub dom0_mem: Option<u64>,
    pub dom0_max_vcpus: Option<u32>,
    pub gnttab_max_frames: Option<u32>,
    pub gnttab_max_maptrack_frames: Option<u32>,
    /// `granite_ipa_bits=`: the IPA size the P2M uses (40, 42, 44 or 48), or the CPU's largest
    /// below it; without it the smallest size of at least 40 bits that covers the address map.
    pub ipa_bits: Option<u32>,
    /// `granite_audit=`: the audit hypercall and the hypercall fence.
    pub audit: bool,
    pub exit: ExitMethod,
    /// `granite_selftest=<name>`: run an arch self-test at the end of boot instead of
    /// continuing (see `arch::selftest`).
    pub selftest: Option<&'a str>,
    /// `console=` (only `dtuart` is supported).
    pub console: Option<&'a str>,
    /// `dtuart=`: the console's device-tree path or alias (overrides `stdout-path`).
    pub dtuart: Option<&'a str>,
    /// Options we do not know, as written.
    pub unknown: FixedVec<&'a str, MAX_REPORTED>,
    /// Known options whose value was unusable (the default stays in force).
    pub invalid: FixedVec<Invalid<'a>, MAX_REPORTED>,
    /// Unknown or invalid options not recorded because the lists were full.
    pub unreported: usize,
    /// What followed ` -- `: extra arguments for dom0's kernel.
    pub dom0_extra: Option<&'a str>,
}

impl Default for BootOptions<'_> {
    fn default() -> Self {
        BootOptions {
            loglvl: LogLevel::Info,
            dom0_mem: None,
            dom0_max_vcpus: None,
            gnttab_max_frames: None,
            gnttab_max_maptrack_frames: None,
            ipa_bits: None,
            audit: false,
            exit: ExitMethod::Psci,
            selftest: None,
            console: None,
            dtuart: None,
            unknown: FixedVec::new(),
            invalid: FixedVec::new(),
            unreported: 0,
            dom0_extra: None,
        }
    }
}

/// Compare option names treating `-` and `_` as the same character.
fn name_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let n = |c: u8| if c == b'-' { b'_' } else { c };
            n(x) == n(y)
        })
}

/// A boolean option `want` written as `want`, `want=<bool>` or `no-want`: `None` if `name` is
/// not that option, `Some(None)` if the value is not a boolean.
fn bool_option(name: &str, value: Option<&str>, want: &str) -> Option<Option<bool>> {
    if name_eq(name, want) {
        return Some(value.map_or(Some(true), parse_bool));
    }
    let negated = name.strip_prefix("no-").or_else(|| name.strip_prefix("no_"))?;
    (name_eq(negated, want) && value.is_none()).then_some(Some(false))
}

/// Xen's boolean values.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "on" | "true" | "enable" => Some(true),
        "0" | "no" | "off" | "false" | "disable" => Some(false),
        _ => None,
    }
}

/// An unsigned integer: decimal, or hexadecimal with `0x`, or octal with a leading `0`.
/// Returns the value and the unparsed rest.
fn parse_uint(s: &str) -> Option<(u64, &str)> {
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') && s.as_bytes()[1].is_ascii_digit() {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    if end == 0 {
        return None;
    }
    let v = u64::from_str_radix(&digits[..end], radix).ok()?;
    Some((v, &digits[end..]))
}

/// A whole-string unsigned integer.
pub fn parse_int(s: &str) -> Option<u64> {
    match parse_uint(s)? {
        (v, "") => Some(v),
        _ => None,
    }
}

/// A size with Xen's suffixes: `T`, `G`, `M`, `K` (binary multiples), `B` (bytes); no suffix
/// means kilobytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (v, rest) = parse_uint(s)?;
    let shift = match rest {
        "" => 10,
        "B" | "b" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return None,
    };
    v.checked_mul(1u64 << shift)
}

/// Split a command line at its first `--` word: (the hypervisor's part, dom0's part if it is
/// not empty).
fn split_dom0_extra(cmdline: &str) -> (&str, Option<&str>) {
    for word in cmdline.split_ascii_whitespace() {
        if word == "--" {
            // `word` is a subslice of `cmdline`: its offset is where it starts.
            let start = word.as_ptr() as usize - cmdline.as_ptr() as usize;
            let rest = cmdline[start + 2..].trim();
            return (&cmdline[..start], (!rest.is_empty()).then_some(rest));
        }
    }
    (cmdline, None)
}

impl<'a> BootOptions<'a> {
    pub fn parse(cmdline: &'a str) -> Self {
        let mut o = BootOptions::default();
        let (ours, extra) = split_dom0_extra(cmdline);
        for tok in ours.split_ascii_whitespace() {
            o.option(tok);
        }
        o.dom0_extra = extra;
        o
    }

    fn unknown(&mut self, tok: &'a str) {
        if self.unknown.push(tok).is_err() {
            self.unreported += 1;
        }
    }

    fn invalid(&mut self, option: &'a str, why: &'static str) {
        if self.invalid.push(Invalid { option, why }).is_err() {
            self.unreported += 1;
        }
    }

    fn option(&mut self, tok: &'a str) {
        let (name, value) = match tok.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (tok, None),
        };
        if let Some(b) = bool_option(name, value, "granite_audit") {
            match b {
                Some(b) => self.audit = b,
                None => self.invalid(tok, "expected a boolean"),
            }
            return;
        }
        let Some(v) = value else {
            self.unknown(tok);
            return;
        };
        if name_eq(name, "loglvl") {
            // `loglvl=<level>[/<rate-limited level>]`: we do not rate-limit.
            match LogLevel::parse(v.split('/').next().unwrap_or(v)) {
                Some(l) => self.loglvl = l,
                None => self.invalid(tok, "expected none|error|warning|info|debug|all"),
            }
        } else if name_eq(name, "dom0_mem") {
            match parse_size(v) {
                Some(s) if s > 0 => self.dom0_mem = Some(s),
                _ => self.invalid(tok, "expected a size like 512M"),
            }
        } else if name_eq(name, "dom0_max_vcpus") {
            match parse_int(v).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => self.dom0_max_vcpus = Some(n),
                _ => self.invalid(tok, "expected a positive number"),
            }
        } else if name_eq(name, "gnttab_max_frames") {
            match parse_int(v).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => self.gnttab_max_frames = Some(n),
                _ => self.invalid(tok, "expected a positive number"),
            }
        } else if name_eq(name, "gnttab_max_maptrack_frames") {
            match parse_int(v).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n > 0 => self.gnttab_max_maptrack_frames = Some(n),
                _ => self.invalid(tok, "expected a positive number"),
            }
        } else if name_eq(name, "granite_ipa_bits") {
            match parse_int(v) {
                Some(n @ (40 | 42 | 44 | 48)) => self.ipa_bits = Some(n as u32),
                _ => self.invalid(tok, "expected 40|42|44|48"),
            }
        } else if name_eq(name, "granite_exit") {
            match v {
                "psci" => self.exit = ExitMethod::Psci,
                "semihosting" => self.exit = ExitMethod::Semihosting,
                _ => self.invalid(tok, "expected psci|semihosting"),
            }
        } else if name_eq(name, "granite_selftest") {
            match v {
                "fault" | "wx" | "trap" | "p2m" => self.selftest = Some(v),
                _ => self.invalid(tok, "expected fault|wx|trap|p2m"),
            }
        } else if name_eq(name, "console") {
            if v != "dtuart" {
                self.invalid(tok, "only console=dtuart is supported");
            }
            self.console = Some(v);
        } else if name_eq(name, "dtuart") {
            if v.is_empty() {
                self.invalid(tok, "expected a device-tree path or alias");
            } else {
                self.dtuart = Some(v);
            }
        } else {
            self.unknown(tok);
        }
    }

    /// The options of the portable core.
    pub fn hv_options(&self) -> Options {
        let d = Options::default();
        Options {
            max_grant_frames: self.gnttab_max_frames.unwrap_or(d.max_grant_frames),
            max_maptrack_frames: self.gnttab_max_maptrack_frames.unwrap_or(d.max_maptrack_frames),
            audit: self.audit,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn xen_command_line_with_unknown_options() {
        let o = BootOptions::parse("dom0_mem=128M loglvl=all console=dtuart dtuart=/pl011@9000000 guest_loglvl=all");
        assert_eq!(o.dom0_mem, Some(128 << 20));
        assert_eq!(o.loglvl, LogLevel::All);
        assert_eq!(o.console, Some("dtuart"));
        assert_eq!(o.dtuart, Some("/pl011@9000000"));
        assert_eq!(&*o.unknown, &["guest_loglvl=all"]);
        assert!(o.invalid.is_empty());
        assert_eq!(o.exit, ExitMethod::Psci);
        assert!(!o.audit);
        assert_eq!(o.ipa_bits, None);
    }

    #[test]
    fn ipa_size_option() {
        assert_eq!(BootOptions::parse("granite_ipa_bits=48").ipa_bits, Some(48));
        assert_eq!(BootOptions::parse("granite-ipa-bits=0x28").ipa_bits, Some(40));
        for bad in ["granite_ipa_bits=36", "granite_ipa_bits=52", "granite_ipa_bits=x"] {
            let o = BootOptions::parse(bad);
            assert_eq!(o.ipa_bits, None, "{bad}");
            assert_eq!(o.invalid.len(), 1, "{bad}");
            assert_eq!(o.invalid[0].option, bad);
        }
    }

    #[test]
    fn words_after_a_double_dash_are_dom0s() {
        let o = BootOptions::parse("dom0_mem=256M  --  console=hvc0 root=/dev/mmcblk0p2 -- x");
        assert_eq!(o.dom0_mem, Some(256 << 20));
        assert_eq!(o.dom0_extra, Some("console=hvc0 root=/dev/mmcblk0p2 -- x"));
        assert!(o.unknown.is_empty(), "{:?}", o.unknown);
        assert_eq!(BootOptions::parse("loglvl=all --").dom0_extra, None);
        assert_eq!(BootOptions::parse("--console=x").dom0_extra, None, "only a whole word");
        assert_eq!(&*BootOptions::parse("--console=x").unknown, &["--console=x"]);
        assert_eq!(BootOptions::parse("-- a").dom0_extra, Some("a"));
    }

    #[test]
    fn defaults() {
        let o = BootOptions::parse("");
        assert_eq!(o.loglvl, LogLevel::Info);
        assert_eq!(o.dom0_mem, None);
        let h = o.hv_options();
        assert_eq!((h.max_grant_frames, h.max_maptrack_frames, h.audit), (64, 1024, false));
    }

    #[test]
    fn sizes_follow_xen() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("4096K"), Some(4 << 20));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size("4096"), Some(4 << 20), "no suffix: kilobytes");
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("0x100M"), Some(256 << 20));
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("12Q"), None);
        assert_eq!(parse_size("99999999999999T"), None, "overflow");
        assert_eq!(parse_int("010"), Some(8));
        assert_eq!(parse_int("12x"), None);
    }

    #[test]
    fn booleans_numbers_and_dash_underscore() {
        let o = BootOptions::parse(
            "granite-audit gnttab-max-frames=32 gnttab_max_maptrack_frames=0x200 dom0_max_vcpus=2 granite_exit=semihosting granite_selftest=trap",
        );
        assert_eq!(o.selftest, Some("trap"));
        assert!(o.audit);
        assert_eq!(o.gnttab_max_frames, Some(32));
        assert_eq!(o.gnttab_max_maptrack_frames, Some(0x200));
        assert_eq!(o.dom0_max_vcpus, Some(2));
        assert_eq!(o.exit, ExitMethod::Semihosting);
        let h = o.hv_options();
        assert_eq!((h.max_grant_frames, h.max_maptrack_frames, h.audit), (32, 0x200, true));

        for (cl, want) in [
            ("granite_audit=1", true),
            ("granite_audit=yes", true),
            ("granite_audit=on", true),
            ("granite_audit=enable", true),
            ("granite_audit=true", true),
            ("granite_audit granite_audit=0", false),
            ("granite_audit no-granite_audit", false),
            ("granite_audit=off", false),
        ] {
            assert_eq!(BootOptions::parse(cl).audit, want, "{cl}");
        }
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let o = BootOptions::parse(
            "loglvl=loud dom0_mem=lots granite_exit=reboot granite_audit=maybe dom0_max_vcpus=0 console=com1 flag granite_selftest=all",
        );
        assert_eq!(o.loglvl, LogLevel::Info);
        assert_eq!(o.dom0_mem, None);
        assert_eq!(o.exit, ExitMethod::Psci);
        assert!(!o.audit);
        let bad: std::vec::Vec<_> = o.invalid.iter().map(|i| i.option).collect();
        assert_eq!(
            bad,
            [
                "loglvl=loud",
                "dom0_mem=lots",
                "granite_exit=reboot",
                "granite_audit=maybe",
                "dom0_max_vcpus=0",
                "console=com1",
                "granite_selftest=all"
            ]
        );
        assert_eq!(&*o.unknown, &["flag"]);
    }

    #[test]
    fn loglvl_with_rate_limit_part_and_levels() {
        assert_eq!(BootOptions::parse("loglvl=debug/warning").loglvl, LogLevel::Debug);
        assert_eq!(BootOptions::parse("loglvl=none").loglvl.filter(), log::LevelFilter::Off);
        assert_eq!(LogLevel::All.filter(), log::LevelFilter::Trace);
        assert_eq!(LogLevel::Warning.filter(), log::LevelFilter::Warn);
        assert_eq!(LogLevel::Info.name(), "info");
    }

    #[test]
    fn overflowing_reports_are_counted() {
        let line: std::string::String = (0..20).map(|i| std::format!("opt{i}=x ")).collect();
        let o = BootOptions::parse(&line);
        assert_eq!(o.unknown.len(), MAX_REPORTED);
        assert_eq!(o.unreported, 20 - MAX_REPORTED);
    }
}
