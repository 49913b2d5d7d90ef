//! The verdict protocol the scripts grep for:
//!
//! ```text
//! [granite-test] PASS <name>
//! [granite-test] FAIL <name>: <what>: expected <x>, got <y>
//! [granite-test] SUMMARY passed=<n> failed=<m>
//! [granite-test] ALL PASSED                       (only if m == 0)
//! ```
//!
//! A scenario records every mismatch (`[granite-test] mismatch ...` lines) and carries on;
//! its result line quotes the first one. With `verbose` in the boot arguments every check
//! also prints what it observed (`[granite-test] ok ...`), which is how expected values are
//! discovered on a reference hypervisor.

use crate::Global;
use core::fmt::{self, Display, Write};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

// Counters are only ever loaded and stored (no read-modify-write), so they never need
// exclusive-access instructions, which would not work before the MMU is on.
static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);
static VERBOSE: AtomicBool = AtomicBool::new(false);
/// Logical CPU number + 1 of the CPU reporting a fatal error, 0 if none.
static IN_FATAL: AtomicUsize = AtomicUsize::new(0);
/// A `fn(fmt::Arguments) -> !` that replaces the default fatal report (0 = none).
static FATAL_HOOK: AtomicUsize = AtomicUsize::new(0);
/// The running scenario (scenarios only run on the boot CPU).
static CURRENT: Global<Option<&'static str>> = Global::new(None);

/// Makes [`fatal`] call `hook` (after the bookkeeping that stops a second CPU from reporting
/// at the same time) instead of printing a scenario failure and the summary. The hook must
/// not return: it reports in its own protocol and powers off.
pub fn set_fatal_hook(hook: fn(fmt::Arguments) -> !) {
    FATAL_HOOK.store(hook as usize, Ordering::Release);
}

fn bump(c: &AtomicU32) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Turns per-check observation lines on or off.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

/// Whether per-check observation lines are on.
pub fn verbose() -> bool {
    VERBOSE.load(Ordering::Relaxed)
}

/// A fixed-size string buffer (truncates).
pub struct StrBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StrBuf<N> {
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn as_str(&self) -> &str {
        // Truncation happens on a char boundary (see write_str), so this cannot fail.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl<const N: usize> Default for StrBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for StrBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut tmp = [0; 4];
            let b = c.encode_utf8(&mut tmp).as_bytes();
            if self.len + b.len() > N {
                break;
            }
            self.buf[self.len..self.len + b.len()].copy_from_slice(b);
            self.len += b.len();
        }
        Ok(())
    }
}

/// A hypercall return value: `0`, or `-16 (EBUSY)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i64);

impl Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0 < 0 { write!(f, "{} ({})", self.0, xen_abi::errno::name(-self.0)) } else { write!(f, "{}", self.0) }
    }
}

/// A grant-table status: `-2 (GNTST_bad_domain)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gntst(pub i16);

impl Display for Gntst {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} (GNTST_{})", self.0, xen_abi::gnttab::status_name(self.0))
    }
}

/// A value shown in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hex(pub u64);

impl Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The checks of one scenario.
pub struct Check {
    name: &'static str,
    mismatches: u32,
    first: StrBuf<200>,
}

impl Check {
    /// Expects `got == want`.
    pub fn eq<T: PartialEq + Display>(&mut self, what: impl Display, got: T, want: T) -> bool {
        if got == want {
            if verbose() {
                crate::println!("[granite-test] ok {}: {} = {}", self.name, what, got);
            }
            true
        } else {
            self.mismatch(format_args!("{}: expected {}, got {}", what, want, got));
            false
        }
    }

    /// Expects a hypercall to have returned `want`.
    pub fn rc(&mut self, what: impl Display, got: i64, want: i64) -> bool {
        self.eq(what, Errno(got), Errno(want))
    }

    /// Expects a grant-table status.
    pub fn st(&mut self, what: impl Display, got: i16, want: i16) -> bool {
        self.eq(what, Gntst(got), Gntst(want))
    }

    /// Expects `ok`; `came` describes what was observed instead (printed on a mismatch).
    pub fn that(&mut self, what: impl Display, ok: bool, came: impl Display) -> bool {
        if ok {
            if verbose() {
                crate::println!("[granite-test] ok {}: {}", self.name, what);
            }
        } else {
            self.mismatch(format_args!("{}: got {}", what, came));
        }
        ok
    }

    /// Prints an observation (verbose mode only).
    pub fn note(&self, what: impl Display) {
        if verbose() {
            crate::println!("[granite-test] note {}: {}", self.name, what);
        }
    }

    /// Records a mismatch described by `msg`.
    pub fn mismatch(&mut self, msg: impl Display) {
        crate::println!("[granite-test] mismatch {}: {}", self.name, msg);
        if self.mismatches == 0 {
            let _ = write!(self.first, "{}", msg);
        }
        self.mismatches += 1;
    }

    /// Whether nothing failed so far.
    pub fn clean(&self) -> bool {
        self.mismatches == 0
    }
}

/// Runs scenario `name` and prints its result line.
pub fn scenario(name: &'static str, f: impl FnOnce(&mut Check)) -> bool {
    // SAFETY: single CPU; nothing else holds a reference to CURRENT.
    unsafe { *CURRENT.get_mut() = Some(name) };
    let mut c = Check { name, mismatches: 0, first: StrBuf::new() };
    f(&mut c);
    // SAFETY: as above.
    unsafe { *CURRENT.get_mut() = None };
    if c.mismatches == 0 {
        bump(&PASSED);
        crate::println!("[granite-test] PASS {}", name);
        true
    } else {
        bump(&FAILED);
        let more = c.mismatches - 1;
        if more > 0 {
            crate::println!("[granite-test] FAIL {}: {} (+{} more)", name, c.first.as_str(), more);
        } else {
            crate::println!("[granite-test] FAIL {}: {}", name, c.first.as_str());
        }
        false
    }
}

/// Prints the summary (and `ALL PASSED` when nothing failed) and powers off.
pub fn finish() -> ! {
    let (p, f) = (PASSED.load(Ordering::Relaxed), FAILED.load(Ordering::Relaxed));
    crate::println!("[granite-test] SUMMARY passed={} failed={}", p, f);
    if f == 0 {
        crate::println!("[granite-test] ALL PASSED");
    }
    crate::hypercall::power_off()
}

/// Something the run cannot continue after: reports a failure of the current scenario (or
/// of `runtime`), then the summary, and powers off (or calls the hook set with
/// [`set_fatal_hook`]). Only the first CPU to get here reports; another one that fails
/// meanwhile stops where it is.
pub fn fatal(msg: fmt::Arguments) -> ! {
    let me = crate::smp::cpu_id() + 1;
    let first = if crate::mmu::enabled() {
        IN_FATAL.compare_exchange(0, me, Ordering::AcqRel, Ordering::Acquire)
    } else {
        // MMU off: only the boot CPU runs, and no exclusives (see `smp`).
        let v = IN_FATAL.load(Ordering::Relaxed);
        IN_FATAL.store(me, Ordering::Relaxed);
        if v == 0 { Ok(0) } else { Err(v) }
    };
    match first {
        Ok(_) => {}
        // Failed again while reporting (e.g. a fault while printing): just stop.
        Err(v) if v == me => crate::hypercall::power_off(),
        Err(_) => {
            crate::println!("[granite] cpu {}: also failed: {}", me - 1, msg);
            crate::smp::park()
        }
    }
    let hook = FATAL_HOOK.load(Ordering::Acquire);
    if hook != 0 {
        // SAFETY: the value was stored from a `fn(fmt::Arguments) -> !` by set_fatal_hook.
        let hook = unsafe { core::mem::transmute::<usize, fn(fmt::Arguments) -> !>(hook) };
        hook(msg);
    }
    // SAFETY: scenarios run on the boot CPU only; read-only access.
    let name = unsafe { *CURRENT.get_mut() }.unwrap_or("runtime");
    bump(&FAILED);
    crate::println!("[granite-test] FAIL {}: {}", name, msg);
    finish()
}
