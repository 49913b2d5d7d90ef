//! xen-selftest: run by a Linux dom0 from its initramfs (tests/linux/init), it shows that user
//! space can use grants and event channels through Linux's Xen devices:
//!
//! - `capabilities`: /proc/xen/capabilities (xenfs, mounted here if it is not) says control_d;
//! - `gntalloc-gntdev`: pages granted to ourselves (dom0) through /dev/xen/gntalloc are mapped
//!   again through /dev/xen/gntdev, data written through either mapping is seen through the
//!   other, and once both are torn down the grants are gone (mapping one fails);
//! - `gntdev-readonly`: a read-only grant cannot be mapped writable, but can be mapped read-only;
//! - `evtchn-unbound`: an unbound port for dom0 is allocated through /dev/xen/evtchn, and a
//!   notification on it while nobody is connected goes nowhere;
//! - `evtchn-loopback`: a second port bound to it (interdomain, dom0 to dom0) and notifications
//!   bounced between the two ends, each one read from its device and unmasked again.
//!
//! Every gntdev mapping takes its scratch pages out of Linux's balloon (XENMEM_decrease_reservation)
//! and gives them back when torn down (the xen-balloon thread repopulates them with
//! XENMEM_populate_physmap). Before each one the test waits until the balloon is back at its
//! target and its thread had time to go back to sleep: a gntdev allocation that lands while that
//! thread is still in its loop makes it see a deficit with an empty balloon and hotplug memory
//! (Linux 6.1, XEN_BALLOON_MEMORY_HOTPLUG), with a WARNING on arm64 — a race inside Linux that
//! a fast hypervisor makes likely, whatever the hypervisor answers. That the pages came back is
//! itself checked (`balloon`).
//!
//! `xen-selftest --counter` checks nothing: it prints `[xen-selftest] counter cntvct=<CNTVCT_EL0>
//! cntfrq=<CNTFRQ_EL0>` and exits (tests/linux/init runs it first thing, for scripts/bench.sh's
//! power-on-to-init figure: the virtual counter counts from the hypervisor's CNTVOFF_EL2, which
//! Xen and granite set to the physical counter when they create dom0).
//!
//! Output: one `[xen-selftest] PASS|FAIL <name>: <detail>` line per check (a failure names the
//! call and its errno), `[xen-selftest] info ...` lines (timings, never judged), and
//! `[xen-selftest] SUMMARY passed=N failed=M`. Exit status 0 iff every check passed.

mod sys;
mod uapi;

use std::fs::File;
use std::time::Instant;

use sys::{Mapping, ioctl, open_dev, poll_in, read_u32s, write_u32s};
use uapi::*;

const TAG: &str = "[xen-selftest]";
/// dom0's own domain id: every grant and event channel here goes from dom0 to itself.
const DOM0: u16 = 0;
/// Xen's grant (and so gntalloc's and gntdev's page) size.
const XEN_PAGE: usize = 4096;
/// Pages granted in `gntalloc-gntdev`.
const PAGES: usize = 4;
/// Round trips (two notifications each) in `evtchn-loopback`.
const ROUNDS: u32 = 1000;
/// How long a notification may take before it counts as lost.
const EVENT_TIMEOUT_MS: i32 = 2000;
/// How long to wait for an event that should not come.
const QUIET_MS: i32 = 100;

const GNTALLOC: &str = "/dev/xen/gntalloc";
const GNTDEV: &str = "/dev/xen/gntdev";
const EVTCHN: &str = "/dev/xen/evtchn";

type Outcome = Result<String, String>;

#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn record(&mut self, name: &str, outcome: Outcome) {
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("{TAG} PASS {name}: {detail}");
            }
            Err(detail) => {
                self.failed += 1;
                println!("{TAG} FAIL {name}: {detail}");
            }
        }
    }
}

/// CNTVCT_EL0 and CNTFRQ_EL0 (Linux lets user space read both).
#[cfg(target_arch = "aarch64")]
fn counter() -> (u64, u64) {
    let (cnt, frq): (u64, u64);
    // SAFETY: reads of the virtual counter and its frequency, which Linux enables at EL0
    // (CNTKCTL_EL1.EL0VCTEN); no memory is touched.
    unsafe {
        std::arch::asm!("isb", "mrs {c}, cntvct_el0", "mrs {f}, cntfrq_el0", c = out(reg) cnt, f = out(reg) frq,
            options(nomem, nostack));
    }
    (cnt, frq)
}

#[cfg(not(target_arch = "aarch64"))]
fn counter() -> (u64, u64) {
    (0, 0)
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--counter") {
        let (cnt, frq) = counter();
        println!("{TAG} counter cntvct={cnt} cntfrq={frq}");
        return;
    }
    let t0 = Instant::now();
    let mut r = Report::default();
    r.record("capabilities", capabilities());
    r.record("gntalloc-gntdev", gntalloc_gntdev());
    r.record("gntdev-readonly", gntdev_readonly());
    r.record(
        "balloon",
        balloon_settle().map(|ms| format!("every scratch page back in dom0 (current = target) within {ms} ms")),
    );
    evtchn_checks(&mut r);
    println!("{TAG} info total {:.1} ms", t0.elapsed().as_secs_f64() * 1e3);
    println!("{TAG} SUMMARY passed={} failed={}", r.passed, r.failed);
    std::process::exit(if r.failed == 0 { 0 } else { 1 });
}

// ---------------------------------------------------------------------------------------------
// capabilities

fn capabilities() -> Outcome {
    let path = "/proc/xen/capabilities";
    let mut note = "";
    if !std::path::Path::new(path).exists() {
        // xenfs creates /proc/xen when it loads; make it anyway in case it did not.
        let _ = std::fs::create_dir_all("/proc/xen");
        sys::mount("xenfs", "/proc/xen", "xenfs")?;
        note = " (xenfs mounted on /proc/xen by xen-selftest)";
    }
    let caps = std::fs::read_to_string(path).map_err(|e| format!("read({path}): {}", sys::errno_text(&e)))?;
    let caps = caps.trim();
    if caps.split(|c: char| c == ',' || c.is_whitespace()).any(|w| w == "control_d") {
        Ok(format!("{path} = {caps:?}{note}"))
    } else {
        Err(format!("{path} = {caps:?}, no control_d{note}"))
    }
}

// ---------------------------------------------------------------------------------------------
// Grants

/// Grants made through /dev/xen/gntalloc; freed (IOCTL_GNTALLOC_DEALLOC_GREF) when dropped or by
/// `dealloc`, which reports.
struct GntallocGrefs<'a, const N: usize> {
    dev: &'a File,
    index: u64,
    refs: [u32; N],
    live: bool,
}

impl<'a, const N: usize> GntallocGrefs<'a, N> {
    fn alloc(dev: &'a File, domid: u16, writable: bool) -> Result<Self, String> {
        let mut arg = GntallocAllocGref::<N> {
            domid,
            flags: if writable { GNTALLOC_FLAG_WRITABLE } else { 0 },
            count: N as u32,
            index: 0,
            gref_ids: [0; N],
        };
        ioctl(dev, IOCTL_GNTALLOC_ALLOC_GREF, "IOCTL_GNTALLOC_ALLOC_GREF", &mut arg)?;
        Ok(GntallocGrefs { dev, index: arg.index, refs: arg.gref_ids, live: true })
    }

    fn dealloc_now(&mut self) -> Result<(), String> {
        self.live = false;
        let mut arg = GntallocDeallocGref { index: self.index, count: N as u32 };
        ioctl(self.dev, IOCTL_GNTALLOC_DEALLOC_GREF, "IOCTL_GNTALLOC_DEALLOC_GREF", &mut arg).map(drop)
    }

    fn dealloc(mut self) -> Result<(), String> {
        self.dealloc_now()
    }
}

impl<const N: usize> Drop for GntallocGrefs<'_, N> {
    fn drop(&mut self) {
        if self.live {
            let _ = self.dealloc_now();
        }
    }
}

/// Grants entered in a /dev/xen/gntdev instance (IOCTL_GNTDEV_MAP_GRANT_REF; mmap at `index`
/// maps them); removed (IOCTL_GNTDEV_UNMAP_GRANT_REF) when dropped or by `unmap`, which reports.
struct GntdevGrants<'a> {
    dev: &'a File,
    index: u64,
    count: u32,
    live: bool,
}

impl<'a> GntdevGrants<'a> {
    fn map<const N: usize>(dev: &'a File, domid: u16, refs: [u32; N]) -> Result<Self, String> {
        let mut arg = GntdevMapGrantRef::<N> {
            count: N as u32,
            pad: 0,
            index: 0,
            refs: refs.map(|gref| GntdevGrantRef { domid: u32::from(domid), gref }),
        };
        ioctl(dev, IOCTL_GNTDEV_MAP_GRANT_REF, "IOCTL_GNTDEV_MAP_GRANT_REF", &mut arg)?;
        Ok(GntdevGrants { dev, index: arg.index, count: N as u32, live: true })
    }

    fn unmap_now(&mut self) -> Result<(), String> {
        self.live = false;
        let mut arg = GntdevUnmapGrantRef { index: self.index, count: self.count, pad: 0 };
        ioctl(self.dev, IOCTL_GNTDEV_UNMAP_GRANT_REF, "IOCTL_GNTDEV_UNMAP_GRANT_REF", &mut arg).map(drop)
    }

    fn unmap(mut self) -> Result<(), String> {
        self.unmap_now()
    }
}

impl Drop for GntdevGrants<'_> {
    fn drop(&mut self) {
        if self.live {
            let _ = self.unmap_now();
        }
    }
}

/// The word `w` of page `page` in pattern `salt`: distinct for every page, word and salt.
fn pattern(salt: u8, page: usize, w: usize) -> u64 {
    (u64::from(salt) << 56) | ((page as u64) << 40) | ((w as u64) << 8) | 0x5a
}

fn fill(m: &Mapping, salt: u8) {
    for off in (0..m.len()).step_by(8) {
        m.write_u64(off, pattern(salt, off / XEN_PAGE, off % XEN_PAGE / 8));
    }
}

/// Checks that every word of `m` holds pattern `salt`; the error names the first bad word.
fn verify(m: &Mapping, salt: u8, what: &str) -> Result<(), String> {
    for off in (0..m.len()).step_by(8) {
        let (page, w) = (off / XEN_PAGE, off % XEN_PAGE / 8);
        let (got, want) = (m.read_u64(off), pattern(salt, page, w));
        if got != want {
            return Err(format!("{what}: page {page} word {w} reads {got:#018x}, expected {want:#018x}"));
        }
    }
    Ok(())
}

fn check_page_size() -> Result<(), String> {
    let ps = sys::page_size();
    if ps != XEN_PAGE {
        return Err(format!("page size {ps}: this test maps one grant per page and needs {XEN_PAGE}-byte pages"));
    }
    Ok(())
}

const RW: libc::c_int = libc::PROT_READ | libc::PROT_WRITE;

fn gntalloc_gntdev() -> Outcome {
    check_page_size()?;
    let ga = open_dev(GNTALLOC)?;
    let gd = open_dev(GNTDEV)?;
    let len = PAGES * XEN_PAGE;

    // Declared in this order so that an early return drops (tears down) in the reverse one.
    let grefs = GntallocGrefs::<PAGES>::alloc(&ga, DOM0, true)?;
    let refs = grefs.refs;
    let own = Mapping::new(&ga, len, RW, grefs.index, "gntalloc")?;
    fill(&own, 0xa1);
    let grants = gntdev_map(&gd, refs)?;
    let foreign = Mapping::new(&gd, len, RW, grants.index, "gntdev")?;
    verify(&foreign, 0xa1, "written through gntalloc, read through gntdev")?;
    fill(&foreign, 0xb2);
    verify(&own, 0xb2, "written through gntdev, read through gntalloc")?;

    foreign.unmap("gntdev mapping")?;
    grants.unmap()?;
    own.unmap("gntalloc mapping")?;
    grefs.dealloc()?;

    // The grants are ended now: gntdev takes the ref (it only records it), but the mmap, which
    // makes the GNTTABOP_map_grant_ref hypercall, must fail.
    let stale = match gntdev_map(&gd, [refs[0]]) {
        Err(e) => format!("re-map of freed gref {}: refused at once ({e})", refs[0]),
        Ok(again) => match Mapping::new(&gd, XEN_PAGE, libc::PROT_READ, again.index, "gntdev, freed gref") {
            Ok(m) => {
                let first = m.read_u64(0);
                drop(m);
                return Err(format!(
                    "gref {} still maps through gntdev after munmap + IOCTL_GNTDEV_UNMAP_GRANT_REF + munmap + \
                     IOCTL_GNTALLOC_DEALLOC_GREF (first word {first:#018x}): the grant was not ended",
                    refs[0]
                ));
            }
            Err(e) => {
                again.unmap()?;
                format!("re-map of freed gref {}: MAP_GRANT_REF ok, {e} as expected", refs[0])
            }
        },
    };
    Ok(format!(
        "{PAGES} pages granted to d{DOM0} (grefs {refs:?}), mapped through gntdev, each page's pattern seen both \
         ways, torn down; {stale}"
    ))
}

/// The balloon's sysfs device (xen-balloon): `target_kb` there, `current_kb` under `info/`.
const BALLOON: &str = "/sys/devices/system/xen_memory/xen_memory0";

fn balloon_kb(what: &str) -> Result<u64, String> {
    let path = format!("{BALLOON}/{what}");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
    text.trim().parse().map_err(|e| format!("{path}: {text:?}: {e}"))
}

/// Waits (up to 2 s) until the balloon holds nothing (current_kb == target_kb), then 50 ms
/// more for the xen-balloon thread to go back to sleep; returns how long it took.
fn balloon_settle() -> Result<u128, String> {
    let t0 = Instant::now();
    loop {
        let (cur, target) = (balloon_kb("info/current_kb")?, balloon_kb("target_kb")?);
        if cur == target {
            break;
        }
        if t0.elapsed().as_millis() > 2000 {
            return Err(format!("balloon not refilled after 2 s: current {cur} KiB, target {target} KiB"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let ms = t0.elapsed().as_millis();
    std::thread::sleep(std::time::Duration::from_millis(50));
    Ok(ms)
}

/// [`GntdevGrants::map`] once the balloon has settled (see the module's note).
fn gntdev_map<const N: usize>(gd: &File, refs: [u32; N]) -> Result<GntdevGrants<'_>, String> {
    balloon_settle()?;
    GntdevGrants::map(gd, DOM0, refs)
}

fn gntdev_readonly() -> Outcome {
    check_page_size()?;
    let ga = open_dev(GNTALLOC)?;
    let gd = open_dev(GNTDEV)?;

    let grefs = GntallocGrefs::<1>::alloc(&ga, DOM0, false)?;
    let gref = grefs.refs[0];
    let own = Mapping::new(&ga, XEN_PAGE, RW, grefs.index, "gntalloc, read-only grant")?;
    fill(&own, 0xc3);

    let grants = gntdev_map(&gd, [gref])?;
    let refused = match Mapping::new(&gd, XEN_PAGE, RW, grants.index, "gntdev, read-only grant, PROT_WRITE") {
        Ok(_) => return Err(format!("read-only gref {gref}: mmap through gntdev with PROT_WRITE succeeded")),
        Err(e) => e,
    };
    grants.unmap()?;

    let grants = gntdev_map(&gd, [gref])?;
    let ro = Mapping::new(&gd, XEN_PAGE, libc::PROT_READ, grants.index, "gntdev, read-only grant, PROT_READ")?;
    verify(&ro, 0xc3, "read-only grant written through gntalloc, read through gntdev")?;
    ro.unmap("gntdev read-only mapping")?;
    grants.unmap()?;
    own.unmap("gntalloc mapping")?;
    grefs.dealloc()?;
    Ok(format!("read-only gref {gref}: writable map refused ({refused}); read-only map reads the pattern"))
}

// ---------------------------------------------------------------------------------------------
// Event channels

/// A port bound through a /dev/xen/evtchn instance; unbound when dropped or by `unbind`.
struct Port<'a> {
    dev: &'a File,
    port: u32,
    live: bool,
}

impl<'a> Port<'a> {
    fn unbound(dev: &'a File, remote_domain: u16) -> Result<Self, String> {
        let mut arg = EvtchnBindUnboundPort { remote_domain: u32::from(remote_domain) };
        let port = ioctl(dev, IOCTL_EVTCHN_BIND_UNBOUND_PORT, "IOCTL_EVTCHN_BIND_UNBOUND_PORT", &mut arg)?;
        Ok(Port { dev, port: port as u32, live: true })
    }

    fn interdomain(dev: &'a File, remote_domain: u16, remote_port: u32) -> Result<Self, String> {
        let mut arg = EvtchnBindInterdomain { remote_domain: u32::from(remote_domain), remote_port };
        let port = ioctl(dev, IOCTL_EVTCHN_BIND_INTERDOMAIN, "IOCTL_EVTCHN_BIND_INTERDOMAIN", &mut arg)?;
        Ok(Port { dev, port: port as u32, live: true })
    }

    fn notify(&self) -> Result<(), String> {
        let mut arg = EvtchnPort { port: self.port };
        ioctl(self.dev, IOCTL_EVTCHN_NOTIFY, "IOCTL_EVTCHN_NOTIFY", &mut arg).map(drop)
    }

    fn unbind_now(&mut self) -> Result<(), String> {
        self.live = false;
        let mut arg = EvtchnPort { port: self.port };
        ioctl(self.dev, IOCTL_EVTCHN_UNBIND, "IOCTL_EVTCHN_UNBIND", &mut arg).map(drop)
    }

    fn unbind(mut self) -> Result<(), String> {
        self.unbind_now()
    }
}

impl Drop for Port<'_> {
    fn drop(&mut self) {
        if self.live {
            let _ = self.unbind_now();
        }
    }
}

/// Reads the pending ports of `dev` (one read) and unmasks them again by writing them back.
fn take_events(dev: &File, what: &str) -> Result<Vec<u32>, String> {
    let mut buf = [0u32; 16];
    let n = read_u32s(dev, &mut buf, what)?;
    write_u32s(dev, &buf[..n], what)?;
    Ok(buf[..n].to_vec())
}

/// Every event that arrives on `dev` within QUIET_MS (each read and unmasked).
fn drain(dev: &File, what: &str) -> Result<Vec<u32>, String> {
    let mut seen = Vec::new();
    while poll_in(dev, QUIET_MS, what)? {
        seen.extend(take_events(dev, what)?);
    }
    Ok(seen)
}

/// Waits for one notification of `port` on its device; the error says which one was lost.
fn wait_event(p: &Port, what: &str, round: u32) -> Result<(), String> {
    if !poll_in(p.dev, EVENT_TIMEOUT_MS, what)? {
        return Err(format!(
            "poll(evtchn fd of port {}): no event within {EVENT_TIMEOUT_MS} ms in round {round} of {ROUNDS} ({what} \
             lost)",
            p.port
        ));
    }
    let ports = take_events(p.dev, what)?;
    if ports != [p.port] {
        return Err(format!("read(evtchn fd of port {}) in round {round} ({what}): ports {ports:?}", p.port));
    }
    Ok(())
}

fn evtchn_checks(r: &mut Report) {
    let fd_a = match open_dev(EVTCHN) {
        Ok(f) => f,
        Err(e) => {
            r.record("evtchn-unbound", Err(e));
            r.record("evtchn-loopback", Err("not run: /dev/xen/evtchn did not open".into()));
            return;
        }
    };
    match evtchn_unbound(&fd_a) {
        Ok((a, detail)) => {
            r.record("evtchn-unbound", Ok(detail));
            r.record("evtchn-loopback", evtchn_loopback(a));
        }
        Err(e) => {
            r.record("evtchn-unbound", Err(e));
            r.record("evtchn-loopback", Err("not run: no unbound port".into()));
        }
    }
}

/// Port A: unbound, for dom0. Notifying it before anyone connects is accepted and delivers
/// nothing (Xen drops a send on an unbound port).
fn evtchn_unbound(fd_a: &File) -> Result<(Port<'_>, String), String> {
    let a = Port::unbound(fd_a, DOM0)?;
    a.notify()?;
    let seen = drain(fd_a, "evtchn fd of port A")?;
    if !seen.is_empty() {
        return Err(format!("port {} (unbound): a notify on it delivered ports {seen:?}", a.port));
    }
    let detail = format!(
        "port {} unbound for d{DOM0}; IOCTL_EVTCHN_NOTIFY on it accepted, nothing delivered in {QUIET_MS} ms",
        a.port
    );
    Ok((a, detail))
}

/// Port B on a second fd, bound to A; ROUNDS round trips A->B->A, each event read and unmasked.
fn evtchn_loopback(a: Port<'_>) -> Outcome {
    let fd_b = open_dev(EVTCHN)?;
    let b = Port::interdomain(&fd_b, DOM0, a.port)?;
    // Xen's EVTCHNOP_bind_interdomain marks the new local port pending (notifications sent to the
    // unbound end are not tracked, so it assumes one may have been lost): expect at most one.
    let initial_b = drain(&fd_b, "evtchn fd of port B, after bind")?;
    let initial_a = drain(a.dev, "evtchn fd of port A, after bind")?;
    if initial_b.len() > 1 || initial_b.iter().any(|&p| p != b.port) || !initial_a.is_empty() {
        return Err(format!(
            "after IOCTL_EVTCHN_BIND_INTERDOMAIN: events {initial_b:?} on B's fd, {initial_a:?} on A's fd (expected \
             at most [{}] and none)",
            b.port
        ));
    }

    let (mut at_a, mut at_b) = (0u32, 0u32);
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        a.notify()?;
        wait_event(&b, "A->B notification", round)?;
        at_b += 1;
        b.notify()?;
        wait_event(&a, "B->A notification", round)?;
        at_a += 1;
    }
    let elapsed = t0.elapsed();
    let extra_a = drain(a.dev, "evtchn fd of port A, after the loop")?;
    let extra_b = drain(&fd_b, "evtchn fd of port B, after the loop")?;
    if !extra_a.is_empty() || !extra_b.is_empty() || at_a != ROUNDS || at_b != ROUNDS {
        return Err(format!(
            "counts A->B {at_b}, B->A {at_a} of {ROUNDS}; extra events after the loop: A {extra_a:?}, B {extra_b:?}"
        ));
    }
    let us = elapsed.as_secs_f64() * 1e6;
    println!(
        "{TAG} info evtchn-loopback: {ROUNDS} round trips ({} notifications) in {:.1} ms, {:.1} us per round trip",
        2 * ROUNDS,
        us / 1e3,
        us / f64::from(ROUNDS)
    );
    let (pa, pb) = (a.port, b.port);
    b.unbind()?;
    a.unbind()?;
    Ok(format!(
        "port {pb} bound to d{DOM0} port {pa} ({} event on B at bind); {ROUNDS} round trips: A->B {at_b}, B->A {at_a}, \
         none extra; both unbound",
        initial_b.len()
    ))
}
