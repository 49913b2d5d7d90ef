//! XSA regression guest: each Arm-relevant Xen security advisory about grant tables, the
//! physmap and the P2M, event channels and the virtual GIC, reproduced as a named scenario
//! (`xsaNNN_...`) from inside a guest. A scenario passes when the hypervisor gives the safe
//! answer of Xen's fixed code: no crash, no hang, nothing leaked (granite's audit hypercall
//! finds no violation), no access to what the guest was not given, and the errno/status Xen's
//! fixed version returns. Facts about each bug come from the advisories and the fix commits
//! (named in each scenario's comment); no code is taken from Xen.
//!
//! Roles (boot argument `role=`): `dom0` (default) runs every single-domain scenario, with
//! as many vCPUs as the device tree lists (races need at least 2; 4 is the intended size);
//! `xdom` is dom0 of a two-domain run whose domU runs this image with `role=domu`
//! (cross-domain scenarios: a domain dying with a big P2M, with many event channels bound to
//! dom0, with many mappings of dom0's grants, and owning pages dom0 maps as foreign).
//!
//! Boot arguments: `quirks=xen|none` (default `xen` when XENVER_extraversion does not say
//! granite): with `xen`, where Xen 4.17 (Debian's build, every XSA up to 523 applied)
//! answers differently from Xen's fixed upstream code the check takes Xen 4.17's answer and
//! prints an `[xsa] xen 4.17:` line; `only=a+b` / `skip=a+b` (scenario-name prefixes, e.g.
//! `only=xsa94+xsa117`); `iters=N` scales the race loops (default 1); `verbose`.
//!
//! Races run on every vCPU at once (the boot vCPU and the secondaries started with PSCI
//! CPU_ON, each running the same job function with its own role), for a fixed number of
//! iterations, then check what a guest can check and call the audit hypercall (63), which
//! answers granite's invariant-violation count when granite runs with `granite_audit=1`
//! (-ENOSYS otherwise, and on Xen).
#![no_std]
#![no_main]

use core::fmt::Display;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use core::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, AtomicU32, AtomicU64, AtomicUsize};
use granite_guests::exception::irq_mask;
use granite_guests::hypercall::{
    self, STATUS_UNWRITTEN as UNWRITTEN, hypercall3, map_grant_ref, query_size, setup_table, unmap_grant_ref,
};
use granite_guests::report::{Check, Hex, fatal, scenario};
use granite_guests::smp::{self, MAX_CPUS};
use granite_guests::{Global, GrantFrameV1, PAGE_SIZE as PAGE, Pages, Platform, println, probe_read};
use granite_guests::{evtchn, gic, timer};
use xen_abi::errno::*;
use xen_abi::evtchn::*;
use xen_abi::gnttab::*;
use xen_abi::hypercall as hc;
use xen_abi::memory::*;
use xen_abi::*;

granite_guests::entry!(main);

// ---- configuration and layout ------------------------------------------------------------------

/// What every scenario (and every vCPU's job) needs to know; written once by the boot vCPU
/// before any secondary starts, read-only afterwards.
#[derive(Clone, Copy, Debug)]
struct Env {
    /// First GFN of the grant-table region: grant frame 0 stays mapped there for the whole run.
    g0: u64,
    grant_pages: u64,
    /// max_nr_frames from query_size.
    max_frames: u32,
    /// Scratch GFNs: the start of the largest extended region (guest-physical space with
    /// nothing behind it, in our identity map).
    sx: u64,
    sx_pages: u64,
    /// Where shared_info is mapped (the last page of the last extended region).
    si_gfn: u64,
    /// Xen 4.17's answers where they differ from Xen's fixed upstream code.
    xen: bool,
    /// vCPUs online (the boot one included).
    ncpus: usize,
    /// The GIC driver and event channels are up.
    gic: bool,
    /// Race loops are multiplied by this.
    iters: u64,
    /// Our domain id (0 for dom0, 1 for the domU of the cross-domain run).
    me: DomId,
}

static ENV: Global<Option<Env>> = Global::new(None);

fn env() -> Env {
    // SAFETY: written once by the boot vCPU before any secondary starts, read-only after.
    unsafe { *ENV.as_ptr() }.expect("xsa: environment not set up")
}

fn gaddr(gfn: u64) -> u64 {
    gfn * PAGE
}

/// Grant frame 0, mapped at the first GFN of the grant region for the whole run.
fn gt() -> GrantFrameV1 {
    // SAFETY: frame 0 is mapped at g0 (grant region, outside every Rust object) in `main`
    // before any scenario runs, and never removed.
    unsafe { GrantFrameV1::at(gaddr(env().g0)) }
}

/// A scratch GFN: page `i` of the largest extended region.
fn sx(i: u64) -> u64 {
    let e = env();
    assert!(i < e.sx_pages, "scratch page {i} beyond the region");
    e.sx + i
}

// Our own pages: granted, copied, used as FIFO control blocks and event arrays.
static PAGES: Pages<24> = Pages::new();
const PA: usize = 0;
const PB: usize = 1;
const PC: usize = 2;
const PD: usize = 3;
/// Pages 8..16: one per grant of the scattered mappings (XSA-409).
const P_SCAT: usize = 8;
static FIFO: Pages<12> = Pages::new();
/// FIFO control block of vCPU k: page k; event-array page j: page 4 + j.
const FIFO_EA: usize = 4;

/// 4 MiB of RAM that only XSA-222's scenario touches (it removes pages of it from the P2M).
static VICTIM: Pages<1024> = Pages::new();

// Grant references (of frame 0; 0..7 are the reserved ones).
const REF_A: u32 = 16;
const REF_B: u32 = 17;
const REF_T: u32 = 18;
const REF_H: u32 = 19;
const REF_D: u32 = 21;
const REF_R: [u32; 4] = [24, 25, 26, 27];
const REF_SCAT: u32 = 40;
const NR_SCAT_REFS: u32 = 8;

/// What a status/errs slot holds when the hypervisor did not write it.
const ERR_UNWRITTEN: i32 = 0x55;

fn add_gt(idx: u64, gfn: u64) -> i64 {
    hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, idx, gfn)
}

fn remove(gfn: u64) -> i64 {
    hypercall::remove_from_physmap(DOMID_SELF, gfn)
}

fn batch(space: u32, idxs: &[u64], gpfns: &[u64], errs: &mut [i32]) -> i64 {
    hypercall::add_to_physmap_batch(DOMID_SELF, space as u16, idxs, gpfns, errs)
}

/// The audit hypercall: granite's invariant-violation count (-ENOSYS: unavailable).
fn audit_now() -> i64 {
    // SAFETY: the audit hypercall takes no argument and touches no guest memory.
    unsafe { hypercall::hypercall5(hc::GRANITE_AUDIT, 0, 0, 0, 0, 0) }
}

fn audit(c: &mut Check, when: impl Display) {
    let r = audit_now();
    if r != -ENOSYS {
        c.rc(format_args!("audit {when}: violations"), r, 0);
    }
}

/// A tag that identifies grant frame `idx` (written into its last entry).
const fn frame_tag(idx: u64) -> u64 {
    0x7a61_0000_0000_0000 | idx << 16 | 0x5a
}

/// Expects setup_table to list `want` for frames 0..want.len().
fn expect_frames(c: &mut Check, what: impl Display, want: &[u64]) {
    let mut buf = [0x5a5a_u64; 8];
    let frames = &mut buf[..want.len()];
    let (rc, st) = setup_table(DOMID_SELF, frames);
    c.rc(format_args!("{what}: setup_table rc"), rc, 0);
    c.st(format_args!("{what}: setup_table status"), st, GNTST_OKAY);
    for (i, (&got, &w)) in frames.iter().zip(want).enumerate() {
        c.eq(format_args!("{what}: frame {i} at"), Hex(got), Hex(w));
    }
}

/// The GFN setup_table lists for frame `idx` (INVALID_GFN: not mapped).
fn frame_gfn(idx: usize) -> u64 {
    let mut buf = [0x5a5a_u64; 8];
    setup_table(DOMID_SELF, &mut buf[..idx + 1]);
    buf[idx]
}

fn faults(addr: u64) -> bool {
    probe_read(addr).is_err()
}

fn expect_fault(c: &mut Check, what: impl Display, addr: u64) {
    match probe_read(addr) {
        Ok(v) => c.that(format_args!("{what}: {addr:#x} faults"), false, format_args!("reads {v:#x}")),
        Err(_) => c.that(format_args!("{what}: {addr:#x} faults"), true, ""),
    };
}

fn expect_read(c: &mut Check, what: impl Display, addr: u64, want: u64) {
    match probe_read(addr) {
        Ok(v) => c.eq(format_args!("{what}: [{addr:#x}]"), Hex(v), Hex(want)),
        Err(f) => c.that(format_args!("{what}: read {addr:#x}"), false, f),
    };
}

/// Expects `got` to be what Xen's fixed code answers (`fixed`), or, with `quirks=xen`, what
/// Xen 4.17 answers (`xen417`), printing the difference.
fn fixed_or_xen<T: PartialEq + Display + Copy>(c: &mut Check, what: impl Display, got: T, fixed: T, xen417: T) -> bool {
    if env().xen && fixed != xen417 {
        println!("[xsa] xen 4.17: {what}: answers {xen417} where Xen's fixed code answers {fixed}");
        c.eq(what, got, xen417)
    } else {
        c.eq(what, got, fixed)
    }
}

/// Shows a value with its Debug form in check messages.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Dbg<T>(T);

impl<T: core::fmt::Debug> Display for Dbg<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A port or an errno, for checks.
fn port_or(r: Result<u32, i64>) -> Dbg<Result<u32, i64>> {
    Dbg(r)
}

fn gntst(s: i16) -> granite_guests::report::Gntst {
    granite_guests::report::Gntst(s)
}

fn errno(e: i64) -> granite_guests::report::Errno {
    granite_guests::report::Errno(e)
}

// ---- scenario selection ------------------------------------------------------------------------------

static ONLY: Global<Option<&'static str>> = Global::new(None);
static SKIP: Global<Option<&'static str>> = Global::new(None);

fn selected(name: &str) -> bool {
    // SAFETY: written once before the scenarios, read-only after (boot vCPU only).
    let (only, skip) = unsafe { (*ONLY.as_ptr(), *SKIP.as_ptr()) };
    let hit = |list: &str| list.split('+').any(|p| !p.is_empty() && name.starts_with(p));
    only.is_none_or(hit) && !skip.is_some_and(hit)
}

fn run(name: &'static str, f: impl FnOnce(&mut Check)) {
    if selected(name) {
        scenario(name, f);
    }
}

// ---- jobs on every vCPU ------------------------------------------------------------------------------

/// The job every vCPU runs next: a `fn(usize)` as an address; `QUIT` ends the secondaries.
static JOB: AtomicUsize = AtomicUsize::new(0);
const QUIT: usize = 1;
static JOB_GEN: AtomicU64 = AtomicU64::new(0);
static DONE_GEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static READY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Start barrier and stop flag of the current job.
static ARRIVED: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicBool = AtomicBool::new(false);
/// A value the boot vCPU publishes to the others (a frontier, an iteration, a port).
static SHARED: AtomicU64 = AtomicU64::new(0);
static SHARED2: AtomicU64 = AtomicU64::new(0);

/// Results of one vCPU's job: counts, and the first unexpected result (what, value).
struct Tally {
    ok: AtomicU64,
    other: AtomicU64,
    bad: AtomicU64,
    first_what: AtomicUsize,
    first_val: AtomicI64,
    /// Longest hypercall seen (counter ticks).
    max_ticks: AtomicU64,
}

static TALLY: [Tally; MAX_CPUS] = [const {
    Tally {
        ok: AtomicU64::new(0),
        other: AtomicU64::new(0),
        bad: AtomicU64::new(0),
        first_what: AtomicUsize::new(0),
        first_val: AtomicI64::new(0),
        max_ticks: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// What each vCPU is doing (an operation index of its job, + 1; 0 = between operations), and
/// how many operations it completed: printed when a job does not finish.
static PHASE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static OPS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn at(op: u64) {
    let i = smp::cpu_id().min(MAX_CPUS - 1);
    PHASE[i].store(op, Release);
    if op == 0 {
        OPS[i].store(OPS[i].load(Relaxed) + 1, Release);
    }
}

fn tally() -> &'static Tally {
    &TALLY[smp::cpu_id().min(MAX_CPUS - 1)]
}

fn inc(a: &AtomicU64) {
    a.store(a.load(Relaxed) + 1, Relaxed);
}

/// Records an unexpected result `v` of operation `what` (an index into the job's names).
fn bad(what: usize, v: i64) {
    let t = tally();
    if t.bad.load(Relaxed) == 0 {
        t.first_what.store(what, Relaxed);
        t.first_val.store(v, Relaxed);
    }
    inc(&t.bad);
}

/// Expects `v` in `allowed`; counts `ok` when it is `allowed[0]`.
fn expect_in(what: usize, v: i64, allowed: &[i64]) -> bool {
    if allowed.contains(&v) {
        if v == allowed[0] {
            inc(&tally().ok);
        } else {
            inc(&tally().other);
        }
        true
    } else {
        bad(what, v);
        false
    }
}

/// Times `f` (one hypercall) and keeps the longest.
fn timed<R>(f: impl FnOnce() -> R) -> R {
    let t0 = timer::now();
    let r = f();
    let d = timer::now() - t0;
    let t = tally();
    if d > t.max_ticks.load(Relaxed) {
        t.max_ticks.store(d, Relaxed);
    }
    r
}

fn reset_tallies() {
    for (p, o) in PHASE.iter().zip(OPS.iter()) {
        p.store(0, Relaxed);
        o.store(0, Relaxed);
    }
    for t in TALLY.iter() {
        for a in [&t.ok, &t.other, &t.bad, &t.max_ticks] {
            a.store(0, Relaxed);
        }
        t.first_what.store(0, Relaxed);
        t.first_val.store(0, Relaxed);
    }
    ARRIVED.store(0, SeqCst);
    STOP.store(false, SeqCst);
    SHARED.store(0, SeqCst);
    SHARED2.store(0, SeqCst);
}

/// Waits until every vCPU of the job arrived (bounded).
fn barrier() {
    let n = env().ncpus;
    ARRIVED.fetch_add(1, SeqCst);
    timer::wait_until(5_000_000, || ARRIVED.load(Acquire) >= n);
}

/// Sleeps in WFI (IRQs masked, so no wake-up is lost between the check and the WFI) until
/// `cond` holds or `us` microseconds passed; returns `cond`. The virtual timer is re-armed
/// before every WFI, at most 1 ms ahead: a timer interrupt left pending from an earlier
/// wait, taken (and masked by the event-channel library's handler) after a re-arm, cannot
/// leave us asleep for ever. Without a GIC it spins.
fn nap_until(us: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = timer::now() + timer::ticks_from_us(us);
    let slice = timer::ticks_from_us(1000);
    loop {
        if cond() {
            break;
        }
        let now = timer::now();
        if now >= end {
            break;
        }
        if !env().gic {
            core::hint::spin_loop();
            continue;
        }
        irq_mask();
        timer::set_cval(end.min(now + slice));
        timer::set_ctl(timer::CTL_ENABLE);
        if !cond() {
            timer::wfi();
        }
        // Take what is pending (the timer's handler masks it).
        granite_guests::exception::irq_unmask();
        irq_mask();
    }
    if env().gic {
        timer::set_ctl(0);
    }
    cond()
}

/// Runs `f(cpu)` on every vCPU (the boot one included) and waits until all finished.
/// Returns false if a vCPU did not finish within `timeout_us` (a hang).
fn run_all(f: fn(usize), timeout_us: u64) -> bool {
    reset_tallies();
    let n = env().ncpus;
    JOB.store(f as usize, Release);
    let generation = JOB_GEN.load(Relaxed) + 1;
    JOB_GEN.store(generation, Release);
    irq_mask();
    f(0);
    let ok = nap_until(timeout_us, || (1..n).all(|c| DONE_GEN[c].load(Acquire) >= generation));
    if !ok {
        for c in 1..n {
            println!(
                "[xsa] vCPU {c}: job {}, in operation {} after {} operations",
                if DONE_GEN[c].load(Acquire) >= generation { "done" } else { "NOT done" },
                PHASE[c].load(Acquire),
                OPS[c].load(Acquire)
            );
        }
    }
    ok
}

/// A secondary vCPU: set up its GIC CPU interface and event channels, then run jobs.
fn secondary(cpu: usize) {
    if env().gic {
        gic::get().cpu_init();
        if evtchn::cpu_init(true).is_err() {
            fatal(format_args!("vCPU {cpu}: event-channel set-up failed"));
        }
    }
    READY[cpu].store(true, Release);
    let mut seen = 0;
    let jg = &JOB_GEN;
    loop {
        while jg.load(Acquire) == seen {
            nap_until(2000, || jg.load(Acquire) != seen);
        }
        seen = JOB_GEN.load(Acquire);
        let j = JOB.load(Acquire);
        if j == QUIT {
            return;
        }
        // SAFETY: stored from a `fn(usize)` by `run_all`.
        let f = unsafe { core::mem::transmute::<usize, fn(usize)>(j) };
        irq_mask();
        f(cpu);
        DONE_GEN[cpu].store(seen, Release);
    }
}

/// Reports every vCPU's tally of the last job: no unexpected result; `names` decodes them.
fn check_tallies(c: &mut Check, names: &[&str]) {
    for (cpu, t) in TALLY.iter().enumerate().take(env().ncpus) {
        let n = t.bad.load(Acquire);
        if n != 0 {
            let w = t.first_what.load(Acquire);
            let v = t.first_val.load(Acquire);
            let name = names.get(w).copied().unwrap_or("?");
            c.that(
                format_args!("vCPU {cpu}: results as Xen's fixed code answers"),
                false,
                format_args!("{n} unexpected, the first: {name} -> {v} ({})", errno(v)),
            );
        }
    }
}

fn job_summary(what: &str) {
    let n = env().ncpus;
    let (mut ok, mut other, mut max) = (0, 0, 0);
    for t in TALLY.iter().take(n) {
        ok += t.ok.load(Acquire);
        other += t.other.load(Acquire);
        max = max.max(t.max_ticks.load(Acquire));
    }
    println!(
        "[xsa] {what}: {ok} expected successes, {other} expected refusals on {n} vCPUs; longest hypercall {} us",
        timer::us_from_ticks(max)
    );
}

/// xorshift64* per vCPU.
struct Rng(u64);

impl Rng {
    fn new(cpu: usize, salt: u64) -> Rng {
        Rng((cpu as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 11) % n.max(1)
    }
}

// ---- main ------------------------------------------------------------------------------------------

fn main(p: &Platform) {
    setup(p);
    match p.bootarg("role") {
        Some("domu") => domu(),
        Some("xdom") => xdom_dom0(),
        _ => single_domain(),
    }
    finish_secondaries();
}

/// Finds the layout, maps grant frame 0 and shared_info, sets up the GIC and event channels
/// and starts the secondaries.
fn setup(p: &Platform) {
    let Some(grant) = p.grant_region else { fatal(format_args!("no grant-table region (/hypervisor reg[0])")) };
    let Some(scratch) = p.extended.iter().max_by_key(|r| r.size).copied() else {
        fatal(format_args!("no extended region (/hypervisor reg[1..])"))
    };
    let last = p.extended.last().copied().unwrap_or(scratch);
    if scratch.pages() < 0x800 {
        fatal(format_args!("extended region {scratch} too small"));
    }
    let quirks = p.bootarg("quirks");
    let mut ev = [0u8; 16];
    hypercall::xen_version(version::XENVER_EXTRAVERSION, Some(&mut ev));
    let is_granite = ev.windows(7).any(|w| w == b"granite");
    let xen = match quirks {
        Some("xen") => true,
        Some("none") => false,
        _ => !is_granite,
    };
    let (_, q) = query_size(DOMID_SELF);
    for (i, r) in p.extended.iter().enumerate() {
        EXT_BASE[i].store(r.base, Relaxed);
        EXT_END[i].store(r.end(), Relaxed);
        PLATFORM_EXT.store(i as u64 + 1, Relaxed);
    }
    if let Some(bank) = p.memory.iter().find(|m| m.contains(p.image.base)) {
        RAM_LAST.store(bank.end(), Relaxed);
    }
    // SAFETY: boot vCPU, nothing else running yet.
    unsafe {
        *ONLY.get_mut() = p.bootarg("only");
        *SKIP.get_mut() = p.bootarg("skip");
    }
    let iters = p.bootarg("iters").and_then(|v| v.parse().ok()).unwrap_or(1u64).max(1);
    let me = if p.bootarg("role") == Some("domu") { 1 } else { 0 };
    let mut e = Env {
        g0: grant.gfn(),
        grant_pages: grant.pages(),
        max_frames: q.max_nr_frames.min(grant.pages() as u32),
        sx: scratch.gfn(),
        sx_pages: scratch.pages().min(0x4000),
        si_gfn: last.end() / PAGE - 1,
        xen,
        ncpus: 1,
        gic: false,
        iters,
        me,
    };
    if e.si_gfn < e.sx + e.sx_pages && e.si_gfn >= e.sx {
        e.sx_pages = e.si_gfn - e.sx;
    }
    // SAFETY: boot vCPU, no secondary started yet.
    unsafe { *ENV.get_mut() = Some(e) };
    if add_gt(0, e.g0) != 0 {
        fatal(format_args!("cannot map grant frame 0 at {:#x}", e.g0));
    }
    for r in 0..512 {
        gt().set_raw(r, 0);
    }
    // The GIC and event channels (interrupts: the timeouts of waits, the event upcall).
    if let Ok(g) = gic::init(p)
        && g.cpu_init()
        && evtchn::init(p, e.si_gfn).is_ok()
        && evtchn::cpu_init(true).is_ok()
    {
        evtchn::set_other_handler(count_irq);
        e.gic = true;
    }
    // SAFETY: as above.
    unsafe { *ENV.get_mut() = Some(e) };
    let want = p.bootarg("vcpus").and_then(|v| v.parse().ok()).unwrap_or(MAX_CPUS);
    let (_, n) = smp::start_secondaries(p, want, secondary);
    smp::wait_started(2_000_000);
    let ready = timer::wait_until(5_000_000, || (1..n).all(|c| READY[c].load(Acquire)));
    if !ready {
        fatal(format_args!("secondary vCPUs did not come up"));
    }
    e.ncpus = n;
    // SAFETY: the secondaries only read ENV once a job runs, after this store (release by
    // the JOB_GEN store that starts the job).
    unsafe { *ENV.get_mut() = Some(e) };
    println!(
        "[xsa] {} vCPUs, grant region {:#x}+{} (max {} frames), scratch {:#x}+{:#x}, shared_info at {:#x}, quirks={}, GIC {}",
        n,
        e.g0,
        e.grant_pages,
        e.max_frames,
        e.sx,
        e.sx_pages,
        e.si_gfn,
        if xen { "xen" } else { "none" },
        if e.gic { "up" } else { "absent" }
    );
}

fn finish_secondaries() {
    JOB.store(QUIT, Release);
    JOB_GEN.fetch_add(1, Release);
}

fn single_domain() {
    // Grant tables and the physmap.
    run("xsa224_device_map_refused_and_refcounts_kept", xsa224);
    run("xsa224_bus_address_checked_only_for_device_maps", xsa224_bus_address);
    run("xsa226_transitive_grant_refused_in_v1", xsa226);
    run("xsa235_physmap_error_paths_release_the_lock", xsa235);
    run("xsa255_v2_status_frames_refused", xsa255);
    run("xsa268_v2_switch_refused_while_in_use", xsa268);
    run("xsa295_grant_flags_rewritten_under_map_unmap", xsa295);
    run("xsa379_one_frame_never_at_two_gfns", xsa379);
    run("xsa380_many_mappings_of_one_grant_bounded", xsa380);
    run("xsa382_status_frames_capacity_checked", xsa382);
    run("xsa382_status_frames_zero_requested", xsa382_zero);
    run("xsa384_frame_map_and_remove_race", xsa384);
    run("xsa387_every_status_frame_path_refused", xsa387);
    run("xsa394_partial_unmaps_keep_the_mapping", xsa394);
    run("xsa411_transitive_copy_error_keeps_table_usable", xsa411);
    run("xsa448_zero_length_copy_ignored", xsa448);
    run("xsa486_status_frame_map_racing_version_change", xsa486);
    run("xsa500_copy_of_a_pinned_grant_uses_its_frame", xsa500);
    run("xsa500_copy_into_a_rewritten_pinned_grant_refused", xsa500_rewritten);
    run("xsa501_version_change_racing_grant_ops", xsa501);
    run("xsa437_xsa447_cache_flush_at_page_and_memory_ends", xsa437_447);
    // The P2M.
    run("xsa222_ram_pages_removed_from_a_block", xsa222);
    run("xsa301_gfns_beyond_the_ipa_refused", xsa301);
    run("xsa393_remove_after_set_way_maintenance", xsa393);
    run("xsa409_scattered_mappings_bounded_and_freed", xsa409);
    run("xsa493_no_stale_translation_after_remove", xsa493);
    // Event channels.
    run("xsa107_fifo_without_control_block", xsa107);
    run("xsa221_fifo_ports_beyond_the_event_array", xsa221);
    run("xsa221_sched_poll_bad_port_list", xsa221_poll);
    run("xsa340_send_racing_port_allocation", xsa340);
    run("xsa343_reset_racing_every_operation", xsa343);
    run("xsa496_bind_virq_with_no_free_port", xsa496);
    run("xsa344_reset_of_every_port_preemptible", xsa344);
    run("xsa358_fifo_control_block_racing_sends", xsa358);
    run("xsa359_fifo_expand_racing_sends", xsa359);
    run("xsa505_fifo_expand_racing_reset", xsa505);
    // The virtual GIC.
    run("xsa94_icfgr_of_every_interrupt", xsa94);
    if env().gic && !gic::get().is_v3() {
        run("xsa117_gicv2_sgir_reserved_target_filter", xsa117);
    }
    run("xsa118_vgic_messages_rate_limited", xsa118);
    run("xsa223_disabled_inflight_interrupt", xsa223);
}

// ---- grant tables and the physmap ------------------------------------------------------------------

fn pgfn(page: usize) -> u32 {
    PAGES.gfn(page) as u32
}

/// Maps grant `r` of ours at `gfn` (host_map, plus `flags`): the operation as returned.
fn map_own(gfn: u64, flags: u32, r: u32) -> GnttabMapGrantRef {
    map_grant_ref(gaddr(gfn), GNTMAP_HOST_MAP | flags, r, env().me).1
}

fn unmap(gfn: u64, dev_bus_addr: u64, handle: u32) -> i16 {
    let addr = if gfn == 0 { 0 } else { gaddr(gfn) };
    unmap_grant_ref(addr, dev_bus_addr, handle).1
}

/// The flags of entry `r` that say it is in use.
fn in_use(r: u32) -> u16 {
    gt().flags(r) & (GTF_READING | GTF_WRITING)
}

/// XSA-224 (fixes 8fdfcb2b6b, 56f2ab5b97, 75b384ece6, 11fc7ccb72): mappings made with both
/// device_map and host_map and then unmapped a part at a time lost reference and type counts.
/// On Arm a translated guest gets no device mapping: every map naming device_map (or
/// application_map, contains_pte) is GNTST_general_error and pins nothing. A host mapping
/// "unmapped" by its device part only (host_addr 0 and the right dev_bus_addr), or by
/// nothing, stays mapped and pinned (GNTST_okay: nothing to do); the real unmap releases it;
/// 200 map/unmap rounds (half of them naming dev_bus_addr) leave the entry and the reference
/// counts as they were.
fn xsa224(c: &mut Check) {
    let f = gt();
    let (h1, h2) = (sx(0x10), sx(0x11));
    PAGES.fill(PA, 0x2240_0000_0000_0000);
    f.grant(REF_A, GTF_PERMIT_ACCESS, env().me, pgfn(PA));
    for flags in [
        GNTMAP_DEVICE_MAP,
        GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP,
        GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP | GNTMAP_READONLY,
        GNTMAP_HOST_MAP | GNTMAP_APPLICATION_MAP,
        GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE,
    ] {
        let (rc, m) = map_grant_ref(gaddr(h2), flags, REF_A, env().me);
        c.rc(format_args!("map flags {flags:#x} rc"), rc, 0);
        c.st(format_args!("map flags {flags:#x} status"), m.status, GNTST_GENERAL_ERROR);
    }
    let (_, m) = map_grant_ref(gaddr(h2), 0, REF_A, env().me);
    c.st("map with neither host_map nor device_map", m.status, GNTST_BAD_GNTREF);
    c.eq("entry not in use after the refused maps", in_use(REF_A), 0);
    expect_fault(c, "nothing mapped by the refused maps", gaddr(h2));

    let m = map_own(h1, 0, REF_A);
    if !c.st("host map", m.status, GNTST_OKAY) {
        return;
    }
    c.eq("entry in use", in_use(REF_A), GTF_READING | GTF_WRITING);
    for (what, host, bus) in [("by its device part (host_addr 0)", 0, m.dev_bus_addr), ("by nothing", 0, 0)] {
        for _ in 0..3 {
            c.st(format_args!("unmap {what}"), unmap(host, bus, m.handle), GNTST_OKAY);
        }
        expect_read(c, format_args!("still mapped after the unmap {what}"), gaddr(h1) + 8, PAGES.read64(PA, 8));
        c.eq(format_args!("still in use after the unmap {what}"), in_use(REF_A), GTF_READING | GTF_WRITING);
    }
    c.st("the real unmap (with dev_bus_addr)", unmap(h1, m.dev_bus_addr, m.handle), GNTST_OKAY);
    expect_fault(c, "after the real unmap", gaddr(h1));
    c.eq("entry released", in_use(REF_A), 0);
    c.st("the handle is gone", unmap(h1, 0, m.handle), GNTST_BAD_HANDLE);
    for i in 0..200u64 {
        let m = map_own(h1, 0, REF_A);
        if !c.st(format_args!("round {i}: map"), m.status, GNTST_OKAY) {
            break;
        }
        let bus = if i % 2 == 0 { m.dev_bus_addr } else { 0 };
        if !c.st(format_args!("round {i}: unmap"), unmap(h1, bus, m.handle), GNTST_OKAY) {
            break;
        }
    }
    c.eq("entry released after 200 rounds", in_use(REF_A), 0);
    audit(c, "after 200 map/unmap rounds");
}

/// XSA-224, how the fix (8fdfcb2b6b, then c5bf1295b0) reads `dev_bus_addr` at unmap: only a
/// device mapping's part is checked against it (GNTST_bad_dev_addr on a mismatch); a host
/// mapping has none, so the unmap goes ahead whatever it says: GNTST_okay, the page released
/// exactly once (the entry released, a second unmap GNTST_bad_handle).
fn xsa224_bus_address(c: &mut Check) {
    let h1 = sx(0x12);
    PAGES.fill(PA, 0x2241_0000_0000_0000);
    gt().grant(REF_A, GTF_PERMIT_ACCESS, env().me, pgfn(PA));
    let m = map_own(h1, 0, REF_A);
    if !c.st("host map", m.status, GNTST_OKAY) {
        return;
    }
    c.st("unmap naming another machine address", unmap(h1, m.dev_bus_addr + PAGE, m.handle), GNTST_OKAY);
    expect_fault(c, "unmapped", gaddr(h1));
    c.eq("released", in_use(REF_A), 0);
    c.st("the handle is gone", unmap(h1, m.dev_bus_addr, m.handle), GNTST_BAD_HANDLE);
    audit(c, "after the unmap");
}

/// A v1 entry typed GTF_transitive (3), pointing at page `page`.
fn transitive_entry(r: u32, page: usize) {
    gt().set_raw(r, (pgfn(page) as u64) << 32 | (env().me as u64) << 16 | GTF_TRANSITIVE as u64);
}

fn copy_ptr_gref(r: u32, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u: r as u64, domid: env().me, offset, _pad: 0 }
}

fn copy_ptr_gfn(page: usize, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u: PAGES.gfn(page), domid: DOMID_SELF, offset, _pad: 0 }
}

fn copy_op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy { source, dest, len, flags, status: UNWRITTEN, _pad: 0 }
}

fn copy1(op: GnttabCopy) -> (i64, i16) {
    let mut ops = [op];
    let rc = hypercall::grant_table_op(GNTTABOP_COPY, &mut ops);
    (rc, ops[0].status)
}

fn set_version(v: u32) -> (i64, u32) {
    let mut sv = [GnttabSetVersion { version: v }];
    let rc = hypercall::grant_table_op(GNTTABOP_SET_VERSION, &mut sv);
    (rc, sv[0].version)
}

fn get_version() -> u32 {
    let mut gv = [GnttabGetVersion { dom: DOMID_SELF, ..Default::default() }];
    hypercall::grant_table_op(GNTTABOP_GET_VERSION, &mut gv);
    gv[0].version
}

/// XSA-226 (fixes ad48fb963d, 999d2ccb7f; and the gnttab=max-ver/transitive controls
/// dc96c65ed6): transitive grants were mishandled in several ways. They exist only in grant
/// tables v2, which Arm does not offer (GNTTAB_MAX_VERSION 1): a v1 entry typed
/// GTF_transitive is not a grant (map and copy, either way: GNTST_general_error, the entry
/// left as it was) and switching to v2 is -ENOSYS.
fn xsa226(c: &mut Check) {
    transitive_entry(REF_T, PB);
    let before = gt().raw(REF_T);
    let h = sx(0x13);
    for (what, flags) in [("map", 0), ("read-only map", GNTMAP_READONLY)] {
        let m = map_own(h, flags, REF_T);
        c.st(format_args!("{what} of a transitive entry"), m.status, GNTST_GENERAL_ERROR);
    }
    expect_fault(c, "nothing mapped", gaddr(h));
    let (rc, st) = copy1(copy_op(copy_ptr_gref(REF_T, 0), copy_ptr_gfn(PC, 0), 64, GNTCOPY_SOURCE_GREF));
    c.rc("copy from it rc", rc, 0);
    c.st("copy from it", st, GNTST_GENERAL_ERROR);
    let (rc, st) = copy1(copy_op(copy_ptr_gfn(PC, 0), copy_ptr_gref(REF_T, 0), 64, GNTCOPY_DEST_GREF));
    c.rc("copy to it rc", rc, 0);
    c.st("copy to it", st, GNTST_GENERAL_ERROR);
    c.eq("the entry is left as it was", Hex(gt().raw(REF_T)), Hex(before));
    let (rc, v) = set_version(2);
    c.rc("set_version(2)", rc, -ENOSYS);
    c.eq("set_version(2) writes back", v, 1);
    c.eq("get_version", get_version(), 1);
    gt().clear(REF_T);
}

/// Operations that need our grant table's lock: a leaked lock makes them hang.
fn lock_probe(c: &mut Check, after: impl Display + Copy) {
    let (rc, q) = query_size(DOMID_SELF);
    c.rc(format_args!("after {after}: query_size"), rc, 0);
    c.st(format_args!("after {after}: query_size status"), q.status, GNTST_OKAY);
    let mut f = [0u64; 1];
    let (rc, st) = setup_table(DOMID_SELF, &mut f);
    c.rc(format_args!("after {after}: setup_table"), rc, 0);
    c.st(format_args!("after {after}: setup_table status"), st, GNTST_OKAY);
    c.eq(format_args!("after {after}: frame 0 still at g0"), Hex(f[0]), Hex(env().g0));
    let m = map_own(sx(0x14), GNTMAP_READONLY, REF_A);
    if c.st(format_args!("after {after}: map"), m.status, GNTST_OKAY) {
        c.st(format_args!("after {after}: unmap"), unmap(sx(0x14), 0, m.handle), GNTST_OKAY);
    }
}

/// XSA-235 (fix d5a52318d9): Arm's add-to-physmap error paths kept the grant-table lock held,
/// so the next grant operation of the domain deadlocked. Every error path of
/// add_to_physmap(grant_table / shared_info) and of the batch, each followed by operations
/// that take the lock: the expected errno each time, no hang.
fn xsa235(c: &mut Check) {
    let e = env();
    gt().grant(REF_A, GTF_PERMIT_ACCESS, e.me, pgfn(PA));
    let t = sx(0x20);
    let max = e.max_frames as u64;
    let cases: [(&str, u32, u64, u64, i64); 9] = [
        ("grant frame max_nr_frames", XENMAPSPACE_GRANT_TABLE, max, t, -EINVAL),
        ("grant frame max_nr_frames + 7", XENMAPSPACE_GRANT_TABLE, max + 7, t, -EINVAL),
        ("status frame 0", XENMAPSPACE_GRANT_TABLE, XENMAPIDX_GRANT_TABLE_STATUS, t, -EINVAL),
        ("status frame 1", XENMAPSPACE_GRANT_TABLE, XENMAPIDX_GRANT_TABLE_STATUS | 1, t, -EINVAL),
        ("grant frame 0 (mapped at g0)", XENMAPSPACE_GRANT_TABLE, 0, t, -EBUSY),
        ("grant frame 1 at GFN 2^52", XENMAPSPACE_GRANT_TABLE, 1, 1 << 52, -EINVAL),
        ("grant frame 1 at INVALID_GFN", XENMAPSPACE_GRANT_TABLE, 1, INVALID_GFN, -EINVAL),
        ("shared_info idx 1", XENMAPSPACE_SHARED_INFO, 1, t, -EINVAL),
        ("shared_info (mapped) again", XENMAPSPACE_SHARED_INFO, 0, t, -EBUSY),
    ];
    for (what, space, idx, gfn, want) in cases {
        let rc = hypercall::add_to_physmap(DOMID_SELF, space, idx, gfn);
        c.rc(format_args!("add_to_physmap({what})"), rc, want);
        lock_probe(c, what);
    }
    expect_fault(c, "nothing mapped at the target", gaddr(t));
    let idxs = [max, XENMAPIDX_GRANT_TABLE_STATUS, 0, 1];
    let gpfns = [t, t + 1, t + 2, 1 << 52];
    let mut errs = [ERR_UNWRITTEN; 4];
    c.rc("batch of four failing entries", batch(XENMAPSPACE_GRANT_TABLE, &idxs, &gpfns, &mut errs), 0);
    for (i, (&got, want)) in errs.iter().zip([-EINVAL, -EINVAL, -EBUSY, -EINVAL]).enumerate() {
        c.eq(format_args!("batch errs[{i}]"), got, want as i32);
    }
    lock_probe(c, "the batch");
    audit(c, "after the error paths");
}

/// XSA-255 (fixes 38bfcc165d, 9d2f8f9c65): switching a grant table from v2 back to v1 freed
/// status frames the guest still had mapped. No status frame exists on Arm: set_version(2)
/// is -ENOSYS and writes back 1, get_status_frames is GNTST_general_error and writes no
/// frame, the status-frame index of add_to_physmap is -EINVAL (single and batch); the v1
/// table (frame 0 at g0 and its entries) is untouched, set_version(1) is a no-op.
fn xsa255(c: &mut Check) {
    let e = env();
    gt().set_raw(REF_B, 0x2550_0000_0000_0000);
    let (rc, v) = set_version(2);
    c.rc("set_version(2)", rc, -ENOSYS);
    c.eq("set_version(2) writes back", v, 1);
    let mut list = [0x5a5a_5a5a_u64; 4];
    let mut gsf = [GnttabGetStatusFrames {
        nr_frames: 1,
        dom: DOMID_SELF,
        status: UNWRITTEN,
        frame_list: hypercall::va_mut(&mut list),
    }];
    c.rc("get_status_frames(1)", hypercall::grant_table_op(GNTTABOP_GET_STATUS_FRAMES, &mut gsf), 0);
    c.st("get_status_frames(1) status", gsf[0].status, GNTST_GENERAL_ERROR);
    c.eq("no frame written", Hex(list[0]), Hex(0x5a5a_5a5a));
    let t = sx(0x21);
    c.rc("add_to_physmap(status frame 0)", add_gt(XENMAPIDX_GRANT_TABLE_STATUS, t), -EINVAL);
    let mut errs = [ERR_UNWRITTEN; 2];
    let idxs = [XENMAPIDX_GRANT_TABLE_STATUS, XENMAPIDX_GRANT_TABLE_STATUS | 1];
    c.rc("batch(status frames 0, 1)", batch(XENMAPSPACE_GRANT_TABLE, &idxs, &[t, t + 1], &mut errs), 0);
    c.eq("batch errs", Dbg(errs), Dbg([-EINVAL as i32; 2]));
    expect_fault(c, "no status frame mapped", gaddr(t));
    expect_fault(c, "no status frame mapped", gaddr(t + 1));
    expect_frames(c, "the v1 table", &[e.g0]);
    c.eq("entries intact", Hex(gt().raw(REF_B)), Hex(0x2550_0000_0000_0000));
    let (rc, v) = set_version(1);
    c.rc("set_version(1)", rc, 0);
    c.eq("set_version(1) writes back", v, 1);
    gt().clear(REF_B);
}

/// XSA-268 (fix 9a5c16a3e7 "ARM: disable grant table v2"): using v2 on Arm could hit a BUG_ON
/// when status frames were unpopulated. With grant frames mapped and a grant mapped, 100
/// switches to v2 (each -ENOSYS) and back to v1 (each 0): the version stays 1, the mapping
/// and the frames stay, the unmap works.
fn xsa268(c: &mut Check) {
    let e = env();
    let h = sx(0x15);
    PAGES.fill(PA, 0x2680_0000_0000_0000);
    gt().grant(REF_A, GTF_PERMIT_ACCESS, e.me, pgfn(PA));
    let m = map_own(h, 0, REF_A);
    c.st("map", m.status, GNTST_OKAY);
    let mut bad2 = 0;
    let mut bad1 = 0;
    for _ in 0..100 {
        bad2 += (set_version(2) != (-ENOSYS, 1)) as u32;
        bad1 += (set_version(1) != (0, 1)) as u32;
    }
    c.eq("set_version(2) answers other than (-ENOSYS, 1)", bad2, 0);
    c.eq("set_version(1) answers other than (0, 1)", bad1, 0);
    c.eq("version", get_version(), 1);
    expect_read(c, "the mapping", gaddr(h), PAGES.read64(PA, 0));
    expect_frames(c, "frame 0", &[e.g0]);
    if m.status == GNTST_OKAY {
        c.st("unmap", unmap(h, 0, m.handle), GNTST_OKAY);
    }
    audit(c, "after the switches");
}

/// The 16-bit flags of entry `r` as an atomic (the guest's side of the cmpxchg race).
fn entry_flags_atomic(r: u32) -> &'static AtomicU16 {
    // SAFETY: the entry lies in grant frame 0, mapped at g0 for the whole run (outside every
    // Rust object), 8-byte aligned; the hypervisor updates it with atomics too.
    unsafe { &*(gt().entry_addr(r) as *const AtomicU16) }
}

fn job_xsa295(cpu: usize) {
    let e = env();
    barrier();
    if cpu == 0 {
        let h = sx(0x16);
        for _ in 0..300 * e.iters {
            let m = timed(|| map_own(h, 0, REF_H));
            match m.status {
                GNTST_OKAY => {
                    inc(&tally().ok);
                    let st = timed(|| unmap(h, 0, m.handle));
                    if st != GNTST_OKAY {
                        bad(1, st as i64);
                    }
                }
                // "Shared grant entry is unstable": the cmpxchg retries ran out.
                GNTST_GENERAL_ERROR => inc(&tally().other),
                s => bad(0, s as i64),
            }
        }
        STOP.store(true, Release);
    } else {
        let flags = entry_flags_atomic(REF_H);
        let mut n = 0u64;
        while !STOP.load(Acquire) && n < 50_000_000 {
            flags.fetch_xor(0x8000, Relaxed);
            n += 1;
        }
    }
}

/// XSA-295 (Arm fix a9acbcf300): the hypervisor's compare-and-exchange loops on grant entries
/// were unbounded, so a guest rewriting its entry as fast as it could livelocked the
/// hypervisor. The other vCPUs flip an unused flag bit of an entry as fast as they can while
/// vCPU 0 maps and unmaps it 300 times: every map is GNTST_okay or GNTST_general_error
/// (retries exhausted), every unmap of a successful map GNTST_okay, no hang; afterwards the
/// entry is not in use and a map/unmap works.
fn xsa295(c: &mut Check) {
    let e = env();
    PAGES.fill(PB, 0x2950_0000_0000_0000);
    gt().grant(REF_H, GTF_PERMIT_ACCESS, e.me, pgfn(PB));
    let done = run_all(job_xsa295, 120_000_000);
    c.that("every vCPU finished (no livelock)", done, "a vCPU is stuck");
    check_tallies(c, &["map", "unmap"]);
    job_summary("xsa295 maps (ok) / unstable-entry refusals");
    entry_flags_atomic(REF_H).fetch_and(!0x8000, SeqCst);
    c.eq("entry not in use", in_use(REF_H), 0);
    let m = map_own(sx(0x16), 0, REF_H);
    if c.st("a map once the rewriting stopped", m.status, GNTST_OKAY) {
        c.st("its unmap", unmap(sx(0x16), 0, m.handle), GNTST_OKAY);
    }
    c.eq("entry not in use", in_use(REF_H), 0);
    gt().clear(REF_H);
    audit(c, "after the race");
}

/// Grant frame `idx` tagged in its last entry (mapped once at `at` to write the tag).
fn tag_frame(c: &mut Check, idx: u64, at: u64) -> bool {
    if !c.rc(format_args!("map frame {idx} to tag it"), add_gt(idx, at), 0) {
        return false;
    }
    // SAFETY: frame `idx` was just mapped at `at`, a scratch GFN outside every Rust object.
    let f = unsafe { GrantFrameV1::at(gaddr(at)) };
    f.set_raw(511, frame_tag(idx));
    c.rc(format_args!("remove frame {idx}"), remove(at), 0)
}

/// The scratch GFN vCPU `cpu` maps frames at in the frame races.
fn race_gfn(cpu: usize) -> u64 {
    sx(cpu as u64)
}

const RACE_FRAME: u64 = 3;
static HOLDERS: AtomicU64 = AtomicU64::new(0);

fn job_xsa379(cpu: usize) {
    let e = env();
    let g = race_gfn(cpu);
    barrier();
    for i in 0..400 * e.iters {
        let rc = timed(|| add_gt(RACE_FRAME, g));
        match rc {
            0 => {
                inc(&tally().ok);
                if HOLDERS.fetch_add(1, SeqCst) != 0 {
                    bad(2, 0);
                }
                match probe_read(gaddr(g) + 511 * 8) {
                    Ok(v) if v == frame_tag(RACE_FRAME) => {}
                    Ok(v) => bad(3, v as i64),
                    Err(_) => bad(3, -1),
                }
                HOLDERS.fetch_sub(1, SeqCst);
                let rc = timed(|| remove(g));
                if rc != 0 {
                    bad(1, rc);
                }
                if !faults(gaddr(g)) {
                    bad(4, 0);
                }
            }
            r if r == -EBUSY => inc(&tally().other),
            r => bad(0, r),
        }
        if cpu == 0 && i % 128 == 127 {
            let a = audit_now();
            if a != -ENOSYS && a != 0 {
                bad(5, a);
            }
        }
    }
}

/// XSA-379 (x86 fix f147422bf9; Arm was not exposed because it has no v2): racing
/// XENMAPSPACE_grant_table requests could map one (status) frame at two GFNs. The same race
/// on a v1 frame: every vCPU maps frame 3 at its own GFN and removes it again, 400 times:
/// each map is 0 or -EBUSY, never two vCPUs hold it at once, the page shows the frame's tag
/// while held and faults after the remove; afterwards it is mapped nowhere; the audit (also
/// run during the race) finds nothing.
fn xsa379(c: &mut Check) {
    if !tag_frame(c, RACE_FRAME, sx(0x30)) {
        return;
    }
    HOLDERS.store(0, SeqCst);
    let done = run_all(job_xsa379, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(
        c,
        &[
            "add_to_physmap",
            "remove_from_physmap",
            "two holders at once",
            "tag while held",
            "fault after remove",
            "audit",
        ],
    );
    job_summary("xsa379 maps / -EBUSY");
    c.eq("frame 3 mapped nowhere", Hex(frame_gfn(RACE_FRAME as usize)), Hex(INVALID_GFN));
    audit(c, "after the race");
}

const MANY: usize = 128;

/// XSA-380 (fixes 9781b51efd, b1ee10be56): loops over all of a domain's mappings could run
/// for very long. One grant mapped 128 times (the most an 8-bit pin count takes) in one
/// map_grant_ref call of 128 operations, the 129th refused (GNTST_general_error: pin
/// overflow), all unmapped in one call of 128 operations, 256 copies in one call: each
/// operation's status right, the entry released, the time of each call printed. (With the
/// pin count full a copy of the grant is refused too: it needs a pin; it is tried after.)
fn xsa380(c: &mut Check) {
    let e = env();
    PAGES.fill(PA, 0x3800_0000_0000_0000);
    PAGES.zero(PC);
    gt().grant(REF_A, GTF_PERMIT_ACCESS, e.me, pgfn(PA));
    let base = sx(0x100);
    let mut ops = [GnttabMapGrantRef::default(); MANY];
    for (i, op) in ops.iter_mut().enumerate() {
        *op = GnttabMapGrantRef {
            host_addr: gaddr(base + i as u64),
            flags: GNTMAP_HOST_MAP,
            ref_: REF_A,
            dom: e.me,
            status: UNWRITTEN,
            ..Default::default()
        };
    }
    let t0 = timer::now();
    let rc = hypercall::grant_table_op(GNTTABOP_MAP_GRANT_REF, &mut ops);
    let t_map = timer::us_from_ticks(timer::now() - t0);
    c.rc("map x128 rc", rc, 0);
    let okay = ops.iter().filter(|o| o.status == GNTST_OKAY).count();
    c.eq("map x128: every operation okay", okay, MANY);
    let extra = map_own(base + MANY as u64, 0, REF_A);
    c.st("map #129 (pin count full)", extra.status, GNTST_GENERAL_ERROR);
    if extra.status == GNTST_OKAY {
        unmap(base + MANY as u64, 0, extra.handle);
    }
    for i in [0, 63, 127] {
        expect_read(c, format_args!("mapping {i}"), gaddr(base + i as u64) + 8, PAGES.read64(PA, 8));
    }
    let mut un = [GnttabUnmapGrantRef::default(); MANY];
    for (u, m) in un.iter_mut().zip(ops.iter()) {
        *u = GnttabUnmapGrantRef {
            host_addr: m.host_addr,
            dev_bus_addr: 0,
            handle: m.handle,
            status: UNWRITTEN,
            _pad: 0,
        };
    }
    let t0 = timer::now();
    let rc = hypercall::grant_table_op(GNTTABOP_UNMAP_GRANT_REF, &mut un);
    let t_unmap = timer::us_from_ticks(timer::now() - t0);
    c.rc("unmap x128 rc", rc, 0);
    c.eq("unmap x128: every operation okay", un.iter().filter(|o| o.status == GNTST_OKAY).count(), MANY);
    for i in [0, 64, 127] {
        expect_fault(c, format_args!("mapping {i} after the unmap"), gaddr(base + i as u64));
    }
    c.eq("entry released", in_use(REF_A), 0);
    // (A copy takes a pin too: with 128 mappings the pin count is full, so copies come now.)
    let mut copies = [copy_op(copy_ptr_gref(REF_A, 0), copy_ptr_gfn(PC, 0), 8, GNTCOPY_SOURCE_GREF); 256];
    for (i, op) in copies.iter_mut().enumerate() {
        op.source.offset = (i * 8) as u16;
        op.dest.offset = (i * 8) as u16;
    }
    let t0 = timer::now();
    let rc = hypercall::grant_table_op(GNTTABOP_COPY, &mut copies);
    let t_copy = timer::us_from_ticks(timer::now() - t0);
    c.rc("copy x256 rc", rc, 0);
    c.eq("copy x256: every operation okay", copies.iter().filter(|o| o.status == GNTST_OKAY).count(), 256);
    c.that("copied data", PAGES.bytes_eq(PA, 0, PC, 0, 2048), "differs");
    println!("[xsa] xsa380: map x128 {t_map} us, copy x256 {t_copy} us, unmap x128 {t_unmap} us");
    audit(c, "after the 128 mappings");
}

fn get_status_frames(nr: u32, dom: DomId, list: &mut [u64]) -> (i64, i16) {
    let mut gsf =
        [GnttabGetStatusFrames { nr_frames: nr, dom, status: UNWRITTEN, frame_list: hypercall::va_mut(list) }];
    let rc = hypercall::grant_table_op(GNTTABOP_GET_STATUS_FRAMES, &mut gsf);
    (rc, gsf[0].status)
}

/// XSA-382 (fix ec820035b8): get_status_frames checked the caller's array against the wrong
/// capacity. A v1 table has no status frame: asking for 1, 2^31 - 1 or 2^32 - 1 frames is
/// GNTST_general_error and writes nothing; another domain's (one that does not exist) is
/// GNTST_bad_domain; a count other than 1 is -EINVAL.
fn xsa382(c: &mut Check) {
    let mut list = [0x5a5a_u64; 4];
    for nr in [1u32, 2, 0x7fff_ffff, 0xffff_ffff] {
        let (rc, st) = get_status_frames(nr, DOMID_SELF, &mut list);
        c.rc(format_args!("get_status_frames({nr:#x})"), rc, 0);
        c.st(format_args!("get_status_frames({nr:#x}) status"), st, GNTST_GENERAL_ERROR);
    }
    c.eq("nothing written", Dbg(list), Dbg([0x5a5a; 4]));
    let (rc, st) = get_status_frames(1, 1234, &mut list);
    c.rc("get_status_frames(dom 1234)", rc, 0);
    c.st("get_status_frames(dom 1234) status", st, GNTST_BAD_DOMAIN);
    let mut two = [GnttabGetStatusFrames { nr_frames: 1, dom: DOMID_SELF, status: UNWRITTEN, frame_list: 0 }; 2];
    c.rc("get_status_frames count 2", hypercall::grant_table_op(GNTTABOP_GET_STATUS_FRAMES, &mut two), -EINVAL);
}

/// XSA-382, the edge of the capacity check: asking for 0 status frames of a v1 table asks
/// for no more than it has (0), so Xen answers GNTST_okay and writes nothing.
fn xsa382_zero(c: &mut Check) {
    let mut list = [0x5a5a_u64; 1];
    let (rc, st) = get_status_frames(0, DOMID_SELF, &mut list);
    c.rc("get_status_frames(0)", rc, 0);
    c.st("get_status_frames(0) status", st, GNTST_OKAY);
    c.eq("nothing written", list[0], 0x5a5a);
}

const RACE_FRAME2: u64 = 4;

fn job_xsa384(cpu: usize) {
    let e = env();
    let (g0, g1) = (race_gfn(0), race_gfn(1));
    let role = cpu % 4;
    barrier();
    for i in 0..600 * e.iters {
        match role {
            0 | 1 => {
                let g = if role == 0 { g0 } else { g1 };
                let rc = timed(|| add_gt(RACE_FRAME2, g));
                expect_in(0, rc, &[0, -EBUSY]);
                // The page shows the frame, or faults if a remover took it meanwhile.
                if let Ok(v) = probe_read(gaddr(g) + 511 * 8)
                    && v != frame_tag(RACE_FRAME2)
                {
                    bad(2, v as i64);
                }
                if e.ncpus < 3 && i % 2 == 1 {
                    let rc = timed(|| remove(g));
                    expect_in(1, rc, &[0, -ENOENT]);
                }
            }
            _ => {
                let g = if role == 2 { g0 } else { g1 };
                let rc = timed(|| remove(g));
                expect_in(1, rc, &[0, -ENOENT]);
            }
        }
    }
}

/// XSA-384 (fix eb6bbf7b30): in XENMAPSPACE_grant_table handling the frame could be freed
/// after the grant-table lock was dropped and before the P2M insert. The race of mapping a
/// frame against removing it: vCPUs 0 and 1 map frame 4 at their GFN, vCPUs 2 and 3 remove
/// those GFNs, 600 times each: maps are 0 or -EBUSY, removes 0 or -ENOENT, a read of the GFN
/// shows frame 4's tag or faults; afterwards the frame is at most at one of the two GFNs and
/// the audit finds nothing.
fn xsa384(c: &mut Check) {
    if !tag_frame(c, RACE_FRAME2, sx(0x31)) {
        return;
    }
    let done = run_all(job_xsa384, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["add_to_physmap", "remove_from_physmap", "the tag of frame 4"]);
    job_summary("xsa384 successes / refusals");
    let at = frame_gfn(RACE_FRAME2 as usize);
    c.that(
        "frame 4 at one of the race GFNs or nowhere",
        at == INVALID_GFN || at == race_gfn(0) || at == race_gfn(1),
        Hex(at),
    );
    if at != INVALID_GFN {
        c.rc("remove it", remove(at), 0);
    }
    audit(c, "after the race");
}

/// XSA-387 (a follow-up of XSA-379 for older branches): v2 status pages stayed accessible
/// after being freed. Every way to reach a status frame is refused on Arm: add_to_physmap of
/// status indices 0..3 (-EINVAL), the same in a batch (-EINVAL each), get_status_frames
/// (GNTST_general_error); nothing is mapped at the target GFNs.
fn xsa387(c: &mut Check) {
    let t = sx(0x22);
    for i in 0..4 {
        c.rc(
            format_args!("add_to_physmap(status frame {i})"),
            add_gt(XENMAPIDX_GRANT_TABLE_STATUS | i, t + i),
            -EINVAL,
        );
    }
    let idxs: [u64; 4] = core::array::from_fn(|i| XENMAPIDX_GRANT_TABLE_STATUS | i as u64);
    let gpfns: [u64; 4] = core::array::from_fn(|i| t + i as u64);
    let mut errs = [ERR_UNWRITTEN; 4];
    c.rc("batch(status frames 0..3)", batch(XENMAPSPACE_GRANT_TABLE, &idxs, &gpfns, &mut errs), 0);
    c.eq("batch errs", Dbg(errs), Dbg([-EINVAL as i32; 4]));
    let mut list = [0u64; 1];
    c.st("get_status_frames(1)", get_status_frames(1, DOMID_SELF, &mut list).1, GNTST_GENERAL_ERROR);
    for i in 0..4 {
        expect_fault(c, "no status frame", gaddr(t + i));
    }
}

/// XSA-394 (fix 975a8fb45c): with XSA-380's mapping count, a partial unmap decremented the
/// count on every call, so repeated partial unmaps hit a BUG. Two mappings of one grant;
/// 50 "unmaps" of the first by nothing and 50 by its device part only (no device mapping
/// exists): each GNTST_okay, nothing released; then the first unmapped for real (the second
/// still reads the page, the entry still in use), then the second (released).
fn xsa394(c: &mut Check) {
    let (h1, h2) = (sx(0x17), sx(0x18));
    PAGES.fill(PA, 0x3940_0000_0000_0000);
    gt().grant(REF_A, GTF_PERMIT_ACCESS, env().me, pgfn(PA));
    let a = map_own(h1, 0, REF_A);
    let b = map_own(h2, 0, REF_A);
    if !(c.st("map 1", a.status, GNTST_OKAY) & c.st("map 2", b.status, GNTST_OKAY)) {
        return;
    }
    let mut odd = 0;
    for i in 0..100 {
        let bus = if i % 2 == 0 { 0 } else { a.dev_bus_addr };
        odd += (unmap(0, bus, a.handle) != GNTST_OKAY) as u32;
    }
    c.eq("partial unmaps not GNTST_okay", odd, 0);
    expect_read(c, "mapping 1 after the partial unmaps", gaddr(h1), PAGES.read64(PA, 0));
    c.eq("in use", in_use(REF_A), GTF_READING | GTF_WRITING);
    c.st("unmap 1", unmap(h1, 0, a.handle), GNTST_OKAY);
    expect_fault(c, "mapping 1 gone", gaddr(h1));
    expect_read(c, "mapping 2 stays", gaddr(h2), PAGES.read64(PA, 0));
    c.eq("still in use (mapping 2)", in_use(REF_A), GTF_READING | GTF_WRITING);
    c.st("unmap 2", unmap(h2, 0, b.handle), GNTST_OKAY);
    c.eq("released", in_use(REF_A), 0);
    audit(c, "after the partial unmaps");
}

/// XSA-411 (fix 6e3aab858e): the error path of a transitive-grant copy unlocked the wrong
/// lock. Copies mixing transitive entries (refused) and good ones in one call, 50 times,
/// each followed by operations that take our grant-table lock: statuses
/// [general_error, okay, general_error, okay], the data copied, no hang.
fn xsa411(c: &mut Check) {
    let me = env().me;
    transitive_entry(REF_T, PB);
    PAGES.fill(PA, 0x4110_0000_0000_0000);
    gt().grant(REF_A, GTF_PERMIT_ACCESS, me, pgfn(PA));
    for round in 0..50 {
        PAGES.zero(PC);
        let mut ops = [
            copy_op(copy_ptr_gref(REF_T, 0), copy_ptr_gfn(PC, 0), 64, GNTCOPY_SOURCE_GREF),
            copy_op(copy_ptr_gref(REF_A, 64), copy_ptr_gfn(PC, 64), 64, GNTCOPY_SOURCE_GREF),
            copy_op(copy_ptr_gfn(PA, 0), copy_ptr_gref(REF_T, 0), 64, GNTCOPY_DEST_GREF),
            copy_op(copy_ptr_gfn(PA, 128), copy_ptr_gfn(PC, 128), 64, 0),
        ];
        c.rc("copy x4 rc", hypercall::grant_table_op(GNTTABOP_COPY, &mut ops), 0);
        let st: [i16; 4] = core::array::from_fn(|i| ops[i].status);
        let want = [GNTST_GENERAL_ERROR, GNTST_OKAY, GNTST_GENERAL_ERROR, GNTST_OKAY];
        if !c.eq(format_args!("round {round}: statuses"), Dbg(st), Dbg(want)) {
            break;
        }
        c.that("copied data", PAGES.bytes_eq(PA, 64, PC, 64, 128) && PAGES.is_zero(PC, 0, 64), "differs");
        if round % 10 == 0 {
            lock_probe(c, "the failed transitive copies");
        }
    }
    c.eq("transitive entry not marked in use", gt().flags(REF_T), GTF_TRANSITIVE);
    gt().clear(REF_T);
    audit(c, "after the copies");
}

/// XSA-448 (the advisory is Linux's netback; Xen's a4a790f432 "gnttab: fully ignore
/// zero-size copy requests" came along): a zero-length copy names no data, so none of its
/// fields is checked: every such request is GNTST_okay and copies nothing, however bad its
/// references, domains, frames or offsets. (Xen 4.17 does not have that change and still
/// checks them.)
fn xsa448(c: &mut Check) {
    let me = env().me;
    PAGES.fill(PA, 0x4480_0000_0000_0000);
    PAGES.zero(PC);
    transitive_entry(REF_T, PB);
    let hole = GnttabCopyPtr { u: sx(0x23), domid: DOMID_SELF, offset: 0, _pad: 0 };
    let pc = copy_ptr_gfn(PC, 0);
    let cases: [(&str, GnttabCopy, i16); 7] = [
        ("bad source gref", copy_op(copy_ptr_gref(1 << 20, 0), pc, 0, GNTCOPY_SOURCE_GREF), GNTST_BAD_GNTREF),
        (
            "source gref of dom 1234",
            copy_op(GnttabCopyPtr { domid: 1234, ..copy_ptr_gref(REF_A, 0) }, pc, 0, GNTCOPY_SOURCE_GREF),
            GNTST_BAD_DOMAIN,
        ),
        (
            "source frame of our domid (not DOMID_SELF)",
            copy_op(GnttabCopyPtr { domid: me, ..copy_ptr_gfn(PA, 0) }, pc, 0, 0),
            GNTST_PERMISSION_DENIED,
        ),
        ("source frame in a P2M hole", copy_op(hole, pc, 0, 0), GNTST_BAD_PAGE),
        ("source offset 4096", copy_op(copy_ptr_gfn(PA, 4096), pc, 0, 0), GNTST_OKAY),
        ("dest offset 0xffff", copy_op(copy_ptr_gfn(PA, 0), copy_ptr_gfn(PC, 0xffff), 0, 0), GNTST_BAD_COPY_ARG),
        (
            "dest a transitive entry",
            copy_op(copy_ptr_gfn(PA, 0), copy_ptr_gref(REF_T, 0), 0, GNTCOPY_DEST_GREF),
            GNTST_GENERAL_ERROR,
        ),
    ];
    for (what, op, xen417) in cases {
        let (rc, st) = copy1(op);
        c.rc(format_args!("zero-length copy, {what}: rc"), rc, 0);
        fixed_or_xen(c, format_args!("zero-length copy, {what}"), gntst(st), gntst(GNTST_OKAY), gntst(xen417));
    }
    c.that("nothing copied", PAGES.is_zero(PC, 0, PAGE), "bytes written");
    c.eq("transitive entry untouched", gt().flags(REF_T), GTF_TRANSITIVE);
    gt().clear(REF_T);
}

fn job_xsa486(cpu: usize) {
    let e = env();
    barrier();
    if cpu == 0 {
        for _ in 0..300 * e.iters {
            let (rc, v) = timed(|| set_version(2));
            expect_in(0, rc, &[-ENOSYS]);
            expect_in(0, v as i64, &[1]);
            let (rc, v) = timed(|| set_version(1));
            expect_in(1, rc, &[0]);
            expect_in(1, v as i64, &[1]);
        }
        STOP.store(true, Release);
    } else {
        let g = race_gfn(cpu);
        let mut n = 0u64;
        while !STOP.load(Acquire) && n < 100_000 {
            let idx = XENMAPIDX_GRANT_TABLE_STATUS | (n % 4);
            expect_in(2, timed(|| add_gt(idx, g)), &[-EINVAL]);
            let mut errs = [ERR_UNWRITTEN; 1];
            expect_in(3, timed(|| batch(XENMAPSPACE_GRANT_TABLE, &[idx], &[g], &mut errs)), &[0]);
            expect_in(3, errs[0] as i64, &[-EINVAL]);
            let mut list = [0u64; 1];
            expect_in(4, get_status_frames(1, DOMID_SELF, &mut list).1 as i64, &[GNTST_GENERAL_ERROR as i64]);
            if !faults(gaddr(g)) {
                bad(5, 0);
            }
            n += 1;
        }
    }
}

/// XSA-486 (fix 02708d3b51, 2026): a v2 -> v1 switch racing XENMEM_add_to_physmap of status
/// frames could insert P2M entries to freed pages. On Arm v2 is refused, so the race is the
/// refused switch against status-frame maps: vCPU 0 switches to v2 and back 300 times
/// (-ENOSYS, 0; the version written back is 1), the others map status frames (single, batch,
/// get_status_frames) meanwhile: always refused, nothing ever mapped at their GFNs.
fn xsa486(c: &mut Check) {
    let done = run_all(job_xsa486, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(
        c,
        &["set_version(2)", "set_version(1)", "add_to_physmap(status)", "batch(status)", "get_status_frames", "mapped"],
    );
    c.eq("version", get_version(), 1);
    audit(c, "after the race");
}

/// XSA-500 (fix 61b0a59ce2, 2026): copying through a grant that is already pinned must use
/// what the pin recorded. Our grant of page A mapped read-only (pinned, frame A), then the
/// entry rewritten to name page B: a copy *from* the grant reads page A (the pinned frame),
/// not B; once unmapped (unpinned) a copy reads the entry again and reaches B.
fn xsa500(c: &mut Check) {
    let h = sx(0x19);
    PAGES.fill(PA, 0x5000_aaaa_0000_0000);
    PAGES.fill(PB, 0x5000_bbbb_0000_0000);
    gt().grant(REF_D, GTF_PERMIT_ACCESS, env().me, pgfn(PA));
    let m = map_own(h, GNTMAP_READONLY, REF_D);
    if !c.st("read-only map", m.status, GNTST_OKAY) {
        return;
    }
    let raw = gt().raw(REF_D);
    gt().set_raw(REF_D, (pgfn(PB) as u64) << 32 | (raw & 0xffff_ffff));
    PAGES.zero(PC);
    let (_, st) = copy1(copy_op(copy_ptr_gref(REF_D, 0), copy_ptr_gfn(PC, 0), 64, GNTCOPY_SOURCE_GREF));
    c.st("copy from the pinned grant", st, GNTST_OKAY);
    c.that("it read the pinned frame (A)", PAGES.bytes_eq(PA, 0, PC, 0, 64), "other data");
    c.st("unmap", unmap(h, 0, m.handle), GNTST_OKAY);
    c.eq("released", in_use(REF_D), 0);
    PAGES.zero(PC);
    let (_, st) = copy1(copy_op(copy_ptr_gref(REF_D, 0), copy_ptr_gfn(PC, 0), 64, GNTCOPY_SOURCE_GREF));
    c.st("copy once unpinned", st, GNTST_OKAY);
    c.that("it read the entry's new frame (B)", PAGES.bytes_eq(PB, 0, PC, 0, 64), "other data");
    gt().clear(REF_D);
    audit(c, "after the copies");
}

/// XSA-500, the case the fix refuses: the grant pinned read-only (frame A), the entry then
/// rewritten to name page B, and a copy *to* the grant (which needs a writable pin, so the
/// entry is looked at again and names B): the frame found no longer matches the pinned one,
/// so the copy is GNTST_general_error and neither page is written; the entry is left with
/// only its read-only pin.
fn xsa500_rewritten(c: &mut Check) {
    let h = sx(0x1a);
    PAGES.fill(PA, 0x5001_aaaa_0000_0000);
    PAGES.fill(PB, 0x5001_bbbb_0000_0000);
    PAGES.fill(PC, 0x5001_cccc_0000_0000);
    gt().grant(REF_D, GTF_PERMIT_ACCESS, env().me, pgfn(PA));
    let m = map_own(h, GNTMAP_READONLY, REF_D);
    if !c.st("read-only map", m.status, GNTST_OKAY) {
        return;
    }
    let raw = gt().raw(REF_D);
    gt().set_raw(REF_D, (pgfn(PB) as u64) << 32 | (raw & 0xffff_ffff));
    let (_, st) = copy1(copy_op(copy_ptr_gfn(PC, 0), copy_ptr_gref(REF_D, 0), 64, GNTCOPY_DEST_GREF));
    c.st("copy to the rewritten pinned grant", st, GNTST_GENERAL_ERROR);
    c.eq("page A untouched", Hex(PAGES.read64(PA, 0)), Hex(0x5001_aaaa_0000_0000));
    c.eq("page B untouched", Hex(PAGES.read64(PB, 0)), Hex(0x5001_bbbb_0000_0000));
    c.eq("only the read-only pin left", in_use(REF_D), GTF_READING);
    c.st("unmap", unmap(h, 0, m.handle), GNTST_OKAY);
    c.eq("released", in_use(REF_D), 0);
    gt().clear(REF_D);
    audit(c, "after the copy");
}

fn job_xsa501(cpu: usize) {
    let e = env();
    let me = e.me;
    barrier();
    match cpu {
        0 => {
            for _ in 0..300 * e.iters {
                expect_in(0, timed(|| set_version(2)).0, &[-ENOSYS]);
                expect_in(1, timed(|| set_version(1)).0, &[0]);
            }
            STOP.store(true, Release);
        }
        _ => {
            let h = race_gfn(cpu);
            let r = REF_R[cpu % 4];
            let mut n = 0u64;
            while !STOP.load(Acquire) && n < 100_000 {
                at(1 + (cpu + n as usize) as u64 % 3);
                match (cpu + n as usize) % 3 {
                    0 => {
                        let m = timed(|| map_own(h, 0, r));
                        if expect_in(2, m.status as i64, &[GNTST_OKAY as i64]) {
                            expect_in(3, timed(|| unmap(h, 0, m.handle)) as i64, &[GNTST_OKAY as i64]);
                        }
                    }
                    1 => {
                        let mut ops = [copy_op(
                            GnttabCopyPtr { u: r as u64, domid: me, offset: 0, _pad: 0 },
                            GnttabCopyPtr { u: PAGES.gfn(PD), domid: DOMID_SELF, offset: (cpu * 64) as u16, _pad: 0 },
                            64,
                            GNTCOPY_SOURCE_GREF,
                        )];
                        let rc = timed(|| hypercall::grant_table_op(GNTTABOP_COPY, &mut ops));
                        expect_in(4, rc, &[0]);
                        expect_in(4, ops[0].status as i64, &[GNTST_OKAY as i64]);
                    }
                    _ => {
                        let (rc, q) = timed(|| query_size(DOMID_SELF));
                        expect_in(5, rc, &[0]);
                        expect_in(5, q.status as i64, &[GNTST_OKAY as i64]);
                        expect_in(6, get_version() as i64, &[1]);
                    }
                }
                at(0);
                n += 1;
            }
        }
    }
}

/// XSA-501 (fix 96dfeb4177, 2026): grant-table version changes racing other operations left
/// stale status pointers (v2 -> v1) or out-of-bounds references (v1 -> v2). vCPU 0 asks for
/// v2 and v1 300 times while the others map/unmap, copy from and query their own grants:
/// every operation answers as without the race (map/unmap/copy GNTST_okay), the version
/// stays 1, the entries end unused.
fn xsa501(c: &mut Check) {
    let me = env().me;
    for (i, &r) in REF_R.iter().enumerate() {
        PAGES.fill(PC + i % 2, 0x5010_0000_0000_0000);
        gt().grant(r, GTF_PERMIT_ACCESS, me, pgfn(PA + i % 2));
    }
    let done = run_all(job_xsa501, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["set_version(2)", "set_version(1)", "map", "unmap", "copy", "query_size", "get_version"]);
    job_summary("xsa501 successes");
    for &r in REF_R.iter() {
        c.eq(format_args!("entry {r} not in use"), in_use(r), 0);
        gt().clear(r);
    }
    audit(c, "after the race");
}

fn cache_flush(a: u64, offset: u16, length: u16, op: u32) -> i64 {
    let mut ops = [GnttabCacheFlush { a, offset, length, op }];
    hypercall::grant_table_op(GNTTABOP_CACHE_FLUSH, &mut ops)
}

/// XSA-437 (fix 9a216e92de) and XSA-447 (fix 190b7f49af): Xen's cache maintenance loop
/// mishandled a range ending at the top of the address space (it stopped early, or its
/// pointer overflowed). GNTTABOP_cache_flush of our own pages up to their last byte (the
/// last page of our RAM included), and of the last page of the 64-bit address space (not
/// RAM: -EINVAL), each with clean and clean+invalidate.
fn xsa437_447(c: &mut Check) {
    let Some(last) = ram_last_page() else {
        c.note("no RAM bank found: skipped");
        return;
    };
    let both = GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL;
    for (what, a) in [("a page of ours", PAGES.addr(PA)), ("the last page of our RAM", last)] {
        for op in [GNTTAB_CACHE_CLEAN, both] {
            c.rc(format_args!("{what}: whole page, op {op}"), cache_flush(a, 0, 4096, op), 0);
            c.rc(format_args!("{what}: last cache line, op {op}"), cache_flush(a, 4032, 64, op), 0);
            c.rc(format_args!("{what}: last byte, op {op}"), cache_flush(a, 4095, 1, op), 0);
        }
    }
    let top = 0xffff_ffff_ffff_f000;
    for op in [GNTTAB_CACHE_CLEAN, both] {
        c.rc(format_args!("the top page, last byte, op {op}"), cache_flush(top, 4095, 1, op), -EINVAL);
        c.rc(format_args!("the top page, whole, op {op}"), cache_flush(top, 0, 4096, op), -EINVAL);
    }
}

/// The machine address of the last page of the RAM bank our image is in (dom0 is mapped one
/// to one, so that is its guest-physical address).
fn ram_last_page() -> Option<u64> {
    RAM_LAST.load(Relaxed).checked_sub(PAGE)
}

static RAM_LAST: AtomicU64 = AtomicU64::new(0);

// ---- the P2M -----------------------------------------------------------------------------------------

/// XSA-222 (fix 0780e81846): the return value of guest_physmap_remove_page() was ignored, yet
/// removing one page from a block mapping needs memory to split the block and can fail.
/// Pages of our own RAM removed one by one from the middle of a 2 MiB-aligned stretch (every
/// 8th page of 512): each remove is 0, the removed page faults and its neighbours keep their
/// contents; a grant frame mapped into a hole shows its tag and is removed again; removing a
/// hole again is -ENOENT.
fn xsa222(c: &mut Check) {
    let base = VICTIM.addr(0);
    let first = base.next_multiple_of(2 << 20);
    if first + (2 << 20) > VICTIM.addr(1023) + PAGE {
        c.note("no 2 MiB-aligned block in the victim pages: skipped");
        return;
    }
    let idx0 = ((first - base) / PAGE) as usize;
    for i in 0..512 {
        VICTIM.write64(idx0 + i, 0, 0x2220_0000_0000_0000 | i as u64);
    }
    let mut removed = 0;
    for i in (3..512).step_by(8) {
        let g = VICTIM.gfn(idx0 + i);
        if !c.rc(format_args!("remove our RAM page {i} of the block"), remove(g), 0) {
            break;
        }
        removed += 1;
    }
    c.eq("pages removed", removed, 64);
    let mut wrong = 0;
    for i in 0..512 {
        let a = VICTIM.addr(idx0 + i);
        let ok = if i % 8 == 3 { faults(a) } else { probe_read(a) == Ok(0x2220_0000_0000_0000 | i as u64) };
        if !ok {
            wrong += 1;
            c.mismatch(format_args!("page {i}: {:?}", probe_read(a)));
        }
    }
    c.eq("pages not as expected (removed ones fault, the others keep their data)", wrong, 0);
    let hole = VICTIM.gfn(idx0 + 11);
    if tag_frame(c, 5, sx(0x32)) {
        c.rc("grant frame 5 into a hole", add_gt(5, hole), 0);
        expect_read(c, "the frame's tag through the hole", gaddr(hole) + 511 * 8, frame_tag(5));
        c.rc("remove it", remove(hole), 0);
        expect_fault(c, "the hole again", gaddr(hole));
    }
    c.rc("remove a hole again", remove(hole), -ENOENT);
    audit(c, "after removing RAM pages");
}

/// XSA-301 (fixes ae9ec06784, 929ec997ca, 4ffb12e425): GFNs with bits set above the IPA size
/// aliased low GFNs (the root-table index was not checked), and the highest mapped GFN was
/// tracked off by one. The highest GFN the hypervisor accepts is found (the largest 2^k - 1
/// it maps): a grant frame mapped there is listed by setup_table and removed again (the
/// remove finds it); the next GFN, that GFN plus a low one, and bit 51 plus the low one are
/// refused (-EINVAL, alone and in a batch) and map nothing at the low GFN; removing them is
/// -ENOENT.
fn xsa301(c: &mut Check) {
    let low = sx(0x24);
    let mut top = None;
    for k in (20..=52u32).rev() {
        let g = (1u64 << k) - 1;
        match add_gt(1, g) {
            0 => {
                top = Some(g);
                break;
            }
            e if e == -EINVAL => {}
            e => {
                c.rc(format_args!("add_to_physmap(frame 1, GFN 2^{k} - 1)"), e, -EINVAL);
                return;
            }
        }
    }
    let Some(top) = top else {
        c.that("some GFN 2^k - 1 (k >= 20) accepted", false, "none");
        return;
    };
    c.note(format_args!("highest GFN accepted: {top:#x}"));
    c.eq("setup_table lists frame 1 at the top GFN", Hex(frame_gfn(1)), Hex(top));
    c.rc("remove the top GFN", remove(top), 0);
    c.eq("frame 1 mapped nowhere", Hex(frame_gfn(1)), Hex(INVALID_GFN));
    c.rc("remove the top GFN again", remove(top), -ENOENT);
    let beyond = top + 1;
    for (what, g) in [
        ("the GFN after the top", beyond),
        ("the GFN after the top + a low GFN", beyond | low),
        ("bit 51 + a low GFN", 1 << 51 | low),
    ] {
        c.rc(format_args!("add_to_physmap(frame 1, {what} {g:#x})"), add_gt(1, g), -EINVAL);
        let mut errs = [ERR_UNWRITTEN; 1];
        c.rc(format_args!("batch(frame 1 at {what})"), batch(XENMAPSPACE_GRANT_TABLE, &[1], &[g], &mut errs), 0);
        c.eq(format_args!("batch(frame 1 at {what}) errs[0]"), errs[0], -EINVAL as i32);
        c.rc(format_args!("remove_from_physmap({what})"), remove(g), -ENOENT);
    }
    expect_fault(c, "nothing mapped at the low GFN", gaddr(low));
    c.eq("frame 1 mapped nowhere", Hex(frame_gfn(1)), Hex(INVALID_GFN));
    audit(c, "after the crafted GFNs");
}

/// Cleans and invalidates the level-1 data cache by set/way (DC CISW on every set and way),
/// which a hypervisor traps to emulate (Xen: HCR_EL2.TSW, then it tracks the P2M).
fn dc_cisw_l1() -> u32 {
    let ccsidr: u64;
    // SAFETY: select the level-1 data cache (CSSELR_EL1 = 0), then read its geometry; no
    // memory effects.
    unsafe {
        core::arch::asm!("msr csselr_el1, xzr", "isb", "mrs {}, ccsidr_el1", out(reg) ccsidr, options(nostack));
    }
    let line_shift = (ccsidr & 7) as u32 + 4;
    let ways = ((ccsidr >> 3) & 0x3ff) as u32 + 1;
    let sets = ((ccsidr >> 13) & 0x7fff) as u32 + 1;
    let way_shift = if ways > 1 { (ways - 1).leading_zeros() } else { 0 };
    for w in 0..ways {
        for s in 0..sets {
            let v = ((w as u64) << way_shift) | ((s as u64) << line_shift);
            // SAFETY: cache maintenance by set/way at level 1 (level field 0): the data is
            // written back and invalidated, nothing changes.
            unsafe { core::arch::asm!("dc cisw, {}", in(reg) v, options(nostack, preserves_flags)) };
        }
    }
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
    ways * sets
}

/// XSA-393 (fix a428b913a0): P2M entries whose valid bit was cleared to track set/way cache
/// maintenance were not zeroed by guest_physmap_remove_page, so a "removed" page came back.
/// 20 times: a grant frame mapped at G and read, the level-1 data cache cleaned by set/way,
/// G removed (0), set/way again, then G faults and setup_table no longer lists it, and the
/// frame can be mapped again (not -EBUSY).
fn xsa393(c: &mut Check) {
    let g = sx(0x25);
    if !tag_frame(c, 6, sx(0x33)) {
        return;
    }
    let mut ops = 0;
    for round in 0..20 {
        if !c.rc(format_args!("round {round}: map frame 6"), add_gt(6, g), 0) {
            return;
        }
        expect_read(c, format_args!("round {round}: the tag"), gaddr(g) + 511 * 8, frame_tag(6));
        ops = dc_cisw_l1();
        c.rc(format_args!("round {round}: remove"), remove(g), 0);
        dc_cisw_l1();
        if !faults(gaddr(g)) {
            c.that(format_args!("round {round}: the removed GFN faults"), false, "readable");
            break;
        }
        c.eq(format_args!("round {round}: frame 6 listed nowhere"), Hex(frame_gfn(6)), Hex(INVALID_GFN));
    }
    c.note(format_args!("{ops} set/way operations per pass"));
    audit(c, "after the set/way rounds");
}

/// GFNs of 2 MiB blocks of the extended regions that no other scenario uses (each mapping
/// there needs a level-3 table of its own, and a level-2 one per GiB).
fn scattered_gfns(out: &mut [u64]) -> usize {
    let e = env();
    let p = PLATFORM_EXT.load(Relaxed);
    let mut n = 0;
    for i in 0..(p as usize) {
        let (base, end) = (EXT_BASE[i].load(Relaxed), EXT_END[i].load(Relaxed));
        let mut a = base.next_multiple_of(2 << 20);
        while a + (2 << 20) <= end && n < out.len() {
            let g = a / PAGE + 1;
            let in_scratch = g >= e.sx && g < e.sx + 0x400;
            let near_si = e.si_gfn / 512 == g / 512;
            if !in_scratch && !near_si {
                out[n] = g;
                n += 1;
            }
            a += 2 << 20;
        }
    }
    n
}

static PLATFORM_EXT: AtomicU64 = AtomicU64::new(0);
static EXT_BASE: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
static EXT_END: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

const SCAT_MAX: usize = 1000;

/// One round of XSA-409: maps at every GFN (own grants, 125 per grant), unmaps them all;
/// returns how many maps succeeded, after checking every status.
fn scatter_round(c: &mut Check, gfns: &[u64], round: u32) -> usize {
    let me = env().me;
    let mut handles = [u32::MAX; SCAT_MAX];
    let mut ok = 0;
    let mut refused = 0;
    for (i, &g) in gfns.iter().enumerate() {
        let r = REF_SCAT + (i / 125) as u32;
        let (_, m) = map_grant_ref(gaddr(g), GNTMAP_HOST_MAP, r, me);
        match m.status {
            GNTST_OKAY => {
                handles[i] = m.handle;
                ok += 1;
            }
            // Out of P2M table memory: a clean refusal.
            GNTST_GENERAL_ERROR | GNTST_NO_DEVICE_SPACE => refused += 1,
            s => {
                c.st(format_args!("round {round}: map at {g:#x}"), s, GNTST_OKAY);
            }
        }
    }
    let mut wrong = 0;
    for (i, &g) in gfns.iter().enumerate().step_by(37) {
        if handles[i] != u32::MAX && probe_read(gaddr(g)) != Ok(PAGES.read64(P_SCAT + i / 125, 0)) {
            wrong += 1;
        }
    }
    c.eq(format_args!("round {round}: sampled mappings showing the wrong page"), wrong, 0);
    let mut bad_unmaps = 0;
    for (i, &g) in gfns.iter().enumerate() {
        if handles[i] != u32::MAX && unmap(g, 0, handles[i]) != GNTST_OKAY {
            bad_unmaps += 1;
        }
    }
    c.eq(format_args!("round {round}: unmaps not okay"), bad_unmaps, 0);
    println!("[xsa] xsa409: round {round}: {ok} of {} scattered mappings made, {refused} refused", gfns.len());
    ok
}

/// XSA-409 (fixes 55914f7fc9, cbea5a1149, 22b20bd98c, ...): the memory the P2M's own tables
/// took was unbounded (Arm now has a per-domain pool). Up to 1000 grant mappings, each in a
/// 2 MiB block of its own (a level-3 table each): every map GNTST_okay or refused cleanly
/// (GNTST_general_error / no_device_space when table memory runs out), every mapping made
/// shows its page, every unmap okay; a second identical round makes as many mappings (the
/// tables were given back), the grants end unused.
fn xsa409(c: &mut Check) {
    let me = env().me;
    let mut gfns = [0u64; SCAT_MAX];
    let n = scattered_gfns(&mut gfns);
    if !c.that("enough free 2 MiB blocks", n >= 64, n) {
        return;
    }
    for k in 0..NR_SCAT_REFS {
        PAGES.write64(P_SCAT + k as usize, 0, 0x4090_0000_0000_0000 | k as u64);
        gt().grant(REF_SCAT + k, GTF_PERMIT_ACCESS, me, pgfn(P_SCAT + k as usize));
    }
    let n = n.min(125 * NR_SCAT_REFS as usize);
    let first = scatter_round(c, &gfns[..n], 1);
    let second = scatter_round(c, &gfns[..n], 2);
    c.that("some mappings made", first > 0, first);
    c.eq("the second round makes as many (tables given back)", second, first);
    for k in 0..NR_SCAT_REFS {
        c.eq(format_args!("grant {} unused", REF_SCAT + k), in_use(REF_SCAT + k), 0);
        gt().clear(REF_SCAT + k);
    }
    audit(c, "after the scattered mappings");
}

const TLB_FRAME: u64 = 7;

fn job_xsa493(cpu: usize) {
    let e = env();
    let g = race_gfn(0);
    let n = 300 * e.iters;
    barrier();
    // SHARED = 2 i + 1: mapped in round i; 2 i + 2: removed in round i. SHARED2 = the
    // round vCPU 1 acknowledged last (2 i + 1 / 2 i + 2 again).
    if cpu == 0 {
        for i in 0..n {
            if add_gt(TLB_FRAME, g) != 0 {
                bad(0, i as i64);
                break;
            }
            SHARED.store(2 * i + 1, Release);
            if e.ncpus > 1 && !timer::wait_until(2_000_000, || SHARED2.load(Acquire) > 2 * i) {
                bad(3, i as i64);
                break;
            }
            let rc = remove(g);
            if rc != 0 {
                bad(1, rc);
                break;
            }
            SHARED.store(2 * i + 2, Release);
            if e.ncpus > 1 && !timer::wait_until(2_000_000, || SHARED2.load(Acquire) >= 2 * i + 2) {
                bad(3, i as i64);
                break;
            }
            inc(&tally().ok);
        }
        STOP.store(true, Release);
    } else if cpu == 1 {
        let mut seen = 0;
        while !STOP.load(Acquire) {
            let s = SHARED.load(Acquire);
            if s == seen {
                core::hint::spin_loop();
                continue;
            }
            seen = s;
            let r = probe_read(gaddr(g) + 511 * 8);
            if s % 2 == 1 {
                if r != Ok(frame_tag(TLB_FRAME)) {
                    bad(2, s as i64);
                }
            } else if r.is_ok() {
                bad(4, s as i64);
            }
            inc(&tally().ok);
            SHARED2.store(s, Release);
        }
    }
}

/// XSA-493 (fix 161e8f61b5, 2026): on some Arm CPUs a broadcast TLBI + DSB completed before
/// other CPUs stopped using the old translation (a hardware erratum, worked around by
/// repeating the TLBI). The guest-visible property: once remove_from_physmap returned, no
/// vCPU can still reach the page. vCPU 0 maps a grant frame at G, vCPU 1 reads it there
/// (the tag), vCPU 0 removes it, vCPU 1 reads again (must fault), 300 times. (QEMU has no such
/// erratum; this checks the hypervisor's cross-CPU invalidation.)
fn xsa493(c: &mut Check) {
    if env().ncpus < 2 {
        c.note("needs 2 vCPUs: skipped");
        return;
    }
    if !tag_frame(c, TLB_FRAME, sx(0x34)) {
        return;
    }
    let done = run_all(job_xsa493, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(
        c,
        &["map", "remove", "vCPU 1 read while mapped", "vCPU 1 acknowledgement", "vCPU 1 read after the remove"],
    );
    c.eq("rounds", TALLY[0].ok.load(Acquire), 300 * env().iters);
    audit(c, "after the rounds");
}

// ---- event channels ----------------------------------------------------------------------------------

fn ev_op<T>(cmd: u32, a: &mut T) -> i64 {
    evtchn::op(cmd, a)
}

/// EVTCHNOP_alloc_unbound of a port of ours for `remote`: the port or the error.
fn alloc_for(remote: DomId) -> Result<u32, i64> {
    let mut a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: remote, port: 0 };
    match ev_op(EVTCHNOP_ALLOC_UNBOUND, &mut a) {
        0 => Ok(a.port),
        e => Err(e),
    }
}

fn alloc_self() -> Result<u32, i64> {
    alloc_for(DOMID_SELF)
}

/// A loopback binding to our own unbound port `remote_port`.
fn bind_to(dom: DomId, remote_port: u32) -> Result<u32, i64> {
    let mut b = EvtchnBindInterdomain { remote_dom: dom, _pad: 0, remote_port, local_port: 0 };
    match ev_op(EVTCHNOP_BIND_INTERDOMAIN, &mut b) {
        0 => Ok(b.local_port),
        e => Err(e),
    }
}

fn bind_self(remote_port: u32) -> Result<u32, i64> {
    bind_to(DOMID_SELF, remote_port)
}

fn ev_close(port: u32) -> i64 {
    ev_op(EVTCHNOP_CLOSE, &mut EvtchnPort { port })
}

fn ev_send(port: u32) -> i64 {
    ev_op(EVTCHNOP_SEND, &mut EvtchnPort { port })
}

fn ev_unmask(port: u32) -> i64 {
    ev_op(EVTCHNOP_UNMASK, &mut EvtchnPort { port })
}

fn ev_status(port: u32) -> (i64, EvtchnStatus) {
    let mut s = EvtchnStatus { dom: DOMID_SELF, port, ..Default::default() };
    let rc = ev_op(EVTCHNOP_STATUS, &mut s);
    (rc, s)
}

fn ev_bind_vcpu(port: u32, vcpu: u32) -> i64 {
    ev_op(EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu })
}

fn ev_bind_virq(virq: u32, vcpu: u32) -> Result<u32, i64> {
    let mut b = EvtchnBindVirq { virq, vcpu, port: 0 };
    match ev_op(EVTCHNOP_BIND_VIRQ, &mut b) {
        0 => Ok(b.port),
        e => Err(e),
    }
}

fn ev_set_priority(port: u32, priority: u32) -> i64 {
    ev_op(EVTCHNOP_SET_PRIORITY, &mut EvtchnSetPriority { port, priority })
}

/// EVTCHNOP_reset of our own domain (continuations are the hypervisor's business: the
/// hypercall returns when the reset is done).
fn ev_reset() -> i64 {
    ev_op(EVTCHNOP_RESET, &mut EvtchnReset { dom: DOMID_SELF })
}

fn init_control(vcpu: u32, gfn: u64, offset: u32) -> i64 {
    let mut i = EvtchnInitControl { control_gfn: gfn, offset, vcpu, ..Default::default() };
    ev_op(EVTCHNOP_INIT_CONTROL, &mut i)
}

fn expand_array(gfn: u64) -> i64 {
    ev_op(EVTCHNOP_EXPAND_ARRAY, &mut EvtchnExpandArray { array_gfn: gfn })
}

/// A word (u32) of a FIFO page of ours.
fn fifo_word(page: usize, index: u64) -> &'static AtomicU32 {
    // SAFETY: FIFO pages are ours (BSS, page aligned), only ever accessed through atomics (the
    // hypervisor writes them too); the index stays inside the page.
    unsafe { &*((FIFO.addr(page) + 4 * (index % 1024)) as *const AtomicU32) }
}

/// The event word of `port` (event-array page `port / 1024`).
fn event_word(port: u32) -> u32 {
    fifo_word(FIFO_EA + (port / 1024) as usize, port as u64).load(SeqCst)
}

const EW_PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const EW_LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;

/// Control block of vCPU `v` (page v, offset 0): `ready` and `head[prio]`.
fn cb_ready(v: usize) -> u32 {
    fifo_word(v, 0).load(SeqCst)
}
fn cb_head(v: usize, prio: u32) -> u32 {
    fifo_word(v, 2 + prio as u64).load(SeqCst)
}

fn zero_fifo_pages() {
    for i in 0..12 {
        FIFO.zero(i);
    }
}

/// Back to a clean 2-level table: every port closed. The upcall handler of the event-channel
/// library runs on interrupts meanwhile and only ever sees events it does not own.
fn ev_clean(c: &mut Check) {
    c.rc("reset", ev_reset(), 0);
}

/// XSA-107 (fix a4e0cea6fc): with FIFO events, an event for a vCPU without a control block (or
/// with vCPU 0 lacking one) crashed Xen. FIFO set up by vCPU 0 only: expand_array before
/// init_control is -EOPNOTSUPP; bad init_control arguments are -ENOENT/-EINVAL and leave the
/// domain in 2-level mode; a loopback pair's first event, raised before the event array
/// existed, is linked when the array comes; an event for vCPU 1 (no control block) is
/// dropped (not even PENDING); once vCPU 1 registers its block the next one is linked on its
/// queue; a reset goes back to 2-level and releases the pages.
fn xsa107(c: &mut Check) {
    if env().ncpus < 2 {
        c.note("needs 2 vCPUs: skipped");
        return;
    }
    ev_clean(c);
    zero_fifo_pages();
    let (cb0, cb1, ea0) = (FIFO.gfn(0), FIFO.gfn(1), FIFO.gfn(FIFO_EA));
    c.rc("expand_array before init_control", expand_array(ea0), -EOPNOTSUPP);
    c.rc("init_control(vCPU 99)", init_control(99, cb0, 0), -ENOENT);
    c.rc("init_control(offset 4: not 8-aligned)", init_control(0, cb0, 4), -EINVAL);
    c.rc("init_control(offset 4032: crosses the page)", init_control(0, cb0, 4032), -EINVAL);
    c.rc("init_control(GFN of a P2M hole)", init_control(0, sx(0x26), 0), -EINVAL);
    c.rc("still 2-level: expand_array", expand_array(ea0), -EOPNOTSUPP);
    if !c.rc("init_control(vCPU 0)", init_control(0, cb0, 0), 0) {
        return;
    }
    c.rc("init_control(vCPU 0) again", init_control(0, cb0, 0), -EINVAL);
    let (Ok(p1), Ok(())) = (alloc_self(), Ok::<(), i64>(())) else {
        c.that("alloc_unbound", false, "failed");
        return;
    };
    let p2 = match bind_self(p1) {
        Ok(p) => p,
        Err(e) => {
            c.rc("bind_interdomain (loopback)", e, 0);
            return;
        }
    };
    c.eq("no event array yet: nothing in vCPU 0's queues", cb_ready(0), 0);
    c.rc("expand_array", expand_array(ea0), 0);
    let p7 = EVTCHN_FIFO_PRIORITY_DEFAULT;
    c.eq(
        "the bind's event, raised before the array existed, now pending and linked",
        Hex((event_word(p2) & (EW_PENDING | EW_LINKED)) as u64),
        Hex((EW_PENDING | EW_LINKED) as u64),
    );
    c.eq("vCPU 0 queue 7 ready", cb_ready(0) & (1 << p7), 1 << p7);
    c.eq("vCPU 0 queue 7 head", cb_head(0, p7), p2);
    c.rc("bind_vcpu(p1, vCPU 1)", ev_bind_vcpu(p1, 1), 0);
    c.rc("bind_vcpu(p1, vCPU 99)", ev_bind_vcpu(p1, 99), -ENOENT);
    c.rc("send to vCPU 1 (no control block)", ev_send(p2), 0);
    c.eq("dropped: not pending", event_word(p1) & EW_PENDING, 0);
    c.rc("unmask it", ev_unmask(p1), 0);
    c.eq("still not pending", event_word(p1) & EW_PENDING, 0);
    c.rc("init_control(vCPU 1)", init_control(1, cb1, 0), 0);
    c.rc("send to vCPU 1 again", ev_send(p2), 0);
    c.eq(
        "now pending and linked",
        Hex((event_word(p1) & (EW_PENDING | EW_LINKED)) as u64),
        Hex((EW_PENDING | EW_LINKED) as u64),
    );
    c.eq("vCPU 1 queue 7 head", cb_head(1, p7), p1);
    c.eq("vCPU 1 queue 7 ready", cb_ready(1) & (1 << p7), 1 << p7);
    c.rc("reset", ev_reset(), 0);
    c.rc("2-level again: expand_array", expand_array(ea0), -EOPNOTSUPP);
    audit(c, "after the FIFO set-up and reset");
}

/// XSA-221 (fix e7719a0dfa): a port number beyond the allocated buckets was dereferenced
/// (SCHEDOP_poll), and FIFO's event-array size and pages were read without ordering. FIFO
/// with one event-array page (ports 0..1023) and ports allocated up to 1030: a loopback pair
/// beyond the array is bound, sent to, unmasked, given a priority and asked for its status,
/// all answering as for any port (no event word: the events are remembered); a second page
/// makes them pending and linked on their queues (priorities 3 and 7).
fn xsa221(c: &mut Check) {
    ev_clean(c);
    zero_fifo_pages();
    if !(c.rc("init_control", init_control(0, FIFO.gfn(0), 0), 0)
        & c.rc("expand_array", expand_array(FIFO.gfn(FIFO_EA)), 0))
    {
        return;
    }
    let mut last = 0;
    while last < 1029 {
        match alloc_self() {
            Ok(p) => last = p,
            Err(e) => {
                c.rc(format_args!("alloc_unbound after port {last}"), e, 0);
                return;
            }
        }
    }
    let p = last;
    let q = match bind_self(p) {
        Ok(q) => q,
        Err(e) => {
            c.rc("bind_interdomain beyond the array", e, 0);
            return;
        }
    };
    c.that("both ports beyond the event array", p >= 1024 && q >= 1024, format_args!("{p}, {q}"));
    c.rc("send", ev_send(q), 0);
    c.rc("unmask p", ev_unmask(p), 0);
    c.rc("unmask q", ev_unmask(q), 0);
    c.rc("set_priority(p, 3)", ev_set_priority(p, 3), 0);
    c.rc("set_priority(p, 16)", ev_set_priority(p, 16), -EINVAL);
    let (rc, st) = ev_status(p);
    c.rc("status", rc, 0);
    c.eq("status", st.status, EVTCHNSTAT_INTERDOMAIN);
    c.rc("send", ev_send(q), 0);
    c.rc("send the other way", ev_send(p), 0);
    c.rc("a second event-array page", expand_array(FIFO.gfn(FIFO_EA + 1)), 0);
    for (port, prio) in [(p, 3), (q, EVTCHN_FIFO_PRIORITY_DEFAULT)] {
        c.eq(
            format_args!("port {port}: pending and linked"),
            Hex((event_word(port) & (EW_PENDING | EW_LINKED)) as u64),
            Hex((EW_PENDING | EW_LINKED) as u64),
        );
        c.eq(format_args!("queue {prio} ready"), cb_ready(0) & (1 << prio), 1 << prio);
    }
    c.eq("queue 3 head", cb_head(0, 3), p);
    c.rc("reset", ev_reset(), 0);
    audit(c, "after the ports beyond the array");
}

/// XSA-221's first case: SCHEDOP_poll takes a list of ports; Xen bounds it to 128 ports
/// (-EINVAL beyond, checked before anything else).
fn xsa221_poll(c: &mut Check) {
    let ports = [1u32; 4];
    // struct sched_poll { XEN_GUEST_HANDLE(evtchn_port_t) ports; unsigned int nr_ports;
    // uint64_t timeout; }
    let poll = [hypercall::va(&ports), 129, 1];
    // SAFETY: the structure and the port list are ours; the hypervisor only reads them.
    let rc = unsafe { hypercall3(hc::SCHED_OP, sched::SCHEDOP_POLL, hypercall::va(&poll), 0) };
    c.rc("SCHEDOP_poll with 129 ports", rc, -EINVAL);
}

const XSA340_PORTS: u64 = 2000;

fn job_xsa340(cpu: usize) {
    barrier();
    if cpu == 0 {
        for _ in 0..XSA340_PORTS {
            match timed(alloc_self) {
                Ok(p) => SHARED.store(p as u64, Release),
                Err(e) => {
                    bad(0, e);
                    break;
                }
            }
        }
        STOP.store(true, Release);
    } else {
        let mut rng = Rng::new(cpu, 340);
        while !STOP.load(Acquire) {
            let f = SHARED.load(Acquire);
            let port = (f + rng.below(96)).saturating_sub(16) as u32;
            let allocated = port != 0 && (port as u64) <= f;
            match rng.below(3) {
                0 => {
                    let rc = timed(|| ev_send(port));
                    if allocated {
                        expect_in(1, rc, &[0])
                    } else {
                        expect_in(1, rc, &[0, -EINVAL])
                    };
                }
                1 => {
                    let (rc, st) = timed(|| ev_status(port));
                    if allocated {
                        expect_in(2, rc, &[0]);
                        expect_in(2, st.status as i64, &[EVTCHNSTAT_UNBOUND as i64]);
                    } else {
                        expect_in(2, rc, &[0, -EINVAL]);
                    }
                }
                _ => {
                    let rc = timed(|| ev_unmask(port));
                    if allocated {
                        expect_in(3, rc, &[0])
                    } else {
                        expect_in(3, rc, &[0, -EINVAL])
                    };
                }
            }
        }
    }
}

/// XSA-340 (fix baf80b695d): a port's bucket could be seen as valid before it was set up
/// (missing barriers between allocation and lock-free users such as send). vCPU 0 allocates
/// 2000 ports one at a time (new buckets included), publishing each; the others send to,
/// ask the status of and unmask ports around that frontier: a port already published
/// answers as an unbound port (send 0, status unbound, unmask 0), any other 0 or -EINVAL.
fn xsa340(c: &mut Check) {
    ev_clean(c);
    let done = run_all(job_xsa340, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["alloc_unbound", "send", "status", "unmask"]);
    job_summary("xsa340");
    c.rc("reset", ev_reset(), 0);
    audit(c, "after the race");
}

fn job_xsa343(cpu: usize) {
    let e = env();
    let ncpu = e.ncpus as u32;
    barrier();
    if cpu == 0 {
        for i in 0..150 * e.iters {
            let rc = timed(ev_reset);
            // -EAGAIN: another vCPU opened a port while the reset ran (Xen's XSA-343 fix).
            expect_in(0, rc, &[0, -EAGAIN]);
            if i % 2 == 0 {
                FIFO.zero(0);
                FIFO.zero(FIFO_EA);
                expect_in(1, timed(|| init_control(0, FIFO.gfn(0), 0)), &[0, -EINVAL]);
                expect_in(2, timed(|| expand_array(FIFO.gfn(FIFO_EA))), &[0, -EOPNOTSUPP]);
            }
        }
        STOP.store(true, Release);
    } else {
        let mut rng = Rng::new(cpu, 343);
        while !STOP.load(Acquire) {
            let port = 1 + rng.below(64) as u32;
            match rng.below(8) {
                0 => match timed(alloc_self) {
                    Ok(_) => inc(&tally().ok),
                    Err(e) => {
                        expect_in(3, e, &[-ENOSPC]);
                    }
                },
                1 => match timed(|| bind_self(port)) {
                    Ok(_) => inc(&tally().ok),
                    Err(e) => {
                        expect_in(4, e, &[-EINVAL]);
                    }
                },
                2 => {
                    expect_in(5, timed(|| ev_send(port)), &[0, -EINVAL]);
                }
                3 => {
                    expect_in(6, timed(|| ev_close(port)), &[0, -EINVAL]);
                }
                4 => {
                    expect_in(7, timed(|| ev_unmask(port)), &[0, -EINVAL]);
                }
                5 => {
                    expect_in(8, timed(|| ev_status(port)).0, &[0, -EINVAL]);
                }
                6 => {
                    let v = rng.below(ncpu as u64 + 1) as u32;
                    let rc = timed(|| ev_bind_vcpu(port, v));
                    expect_in(9, rc, &[0, -EINVAL, -ENOENT]);
                }
                _ => {
                    let rc = timed(|| ev_set_priority(port, rng.below(16) as u32));
                    expect_in(10, rc, &[0, -ENOSYS, -EINVAL, -EACCES]);
                }
            }
        }
    }
}

/// XSA-343 (fixes e045199c7c, c0ddc86348, 8d385b247b): evtchn_reset raced every other
/// event-channel operation (and the switch between the 2-level and FIFO ABIs). vCPU 0
/// resets 150 times, switching to FIFO after every other reset; the others allocate, bind,
/// send, close, unmask, query, move and reprioritise ports meanwhile: every answer is one
/// the operation can give (reset 0 or -EAGAIN when a port was opened meanwhile), no crash;
/// afterwards one reset closes everything and the audit finds nothing.
fn xsa343(c: &mut Check) {
    ev_clean(c);
    zero_fifo_pages();
    let done = run_all(job_xsa343, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(
        c,
        &[
            "reset",
            "init_control",
            "expand_array",
            "alloc_unbound",
            "bind_interdomain",
            "send",
            "close",
            "unmask",
            "status",
            "bind_vcpu",
            "set_priority",
        ],
    );
    job_summary("xsa343");
    c.rc("the final reset", ev_reset(), 0);
    let mut open = 0;
    for port in 1..64 {
        let (rc, st) = ev_status(port);
        if rc == 0 && st.status != EVTCHNSTAT_CLOSED {
            open += 1;
        }
    }
    c.eq("ports left open", open, 0);
    audit(c, "after the race");
}

/// Allocates ports until the table is full; returns the last port and the error that ended it.
fn fill_ports() -> (u32, i64) {
    let mut last = 0;
    loop {
        match alloc_self() {
            Ok(p) => last = p,
            Err(e) => return (last, e),
        }
    }
}

/// XSA-496 (fix 40c59b6c29, 2026): with every port in use, EVTCHNOP_bind_virq's error path
/// undid state it had never set up, which interfered with other domains. The 2-level table
/// filled up (ports 1..4095), then bind_virq of a per-vCPU VIRQ on two vCPUs: -ENOSPC,
/// nothing bound; its argument errors (-EINVAL for a VIRQ beyond NR_VIRQS or a global one on
/// vCPU 1, -ENOENT for a vCPU that does not exist) come first; once a port is freed the bind
/// takes exactly that port, a second bind is -EEXIST. The table stays full for XSA-344.
fn xsa496(c: &mut Check) {
    ev_clean(c);
    let (last, e) = fill_ports();
    c.rc("alloc_unbound once the table is full", e, -ENOSPC);
    c.eq("last port", last, EVTCHN_2L_NR_CHANNELS - 1);
    c.eq("bind_virq(VIRQ_DEBUG, vCPU 0)", port_or(ev_bind_virq(VIRQ_DEBUG, 0)), port_or(Err(-ENOSPC)));
    if env().ncpus > 1 {
        c.eq("bind_virq(VIRQ_TIMER, vCPU 1)", port_or(ev_bind_virq(VIRQ_TIMER, 1)), port_or(Err(-ENOSPC)));
    }
    c.eq("bind_virq(NR_VIRQS)", port_or(ev_bind_virq(NR_VIRQS, 0)), port_or(Err(-EINVAL)));
    c.eq("bind_virq(global VIRQ_CONSOLE, vCPU 1)", port_or(ev_bind_virq(VIRQ_CONSOLE, 1)), port_or(Err(-EINVAL)));
    c.eq("bind_virq(VIRQ_DEBUG, vCPU 99)", port_or(ev_bind_virq(VIRQ_DEBUG, 99)), port_or(Err(-ENOENT)));
    c.eq("still full", port_or(alloc_self()), port_or(Err(-ENOSPC)));
    c.rc("close port 100", ev_close(100), 0);
    c.eq("bind_virq(VIRQ_DEBUG, vCPU 0) takes port 100", port_or(ev_bind_virq(VIRQ_DEBUG, 0)), port_or(Ok(100)));
    c.eq("bind it again", port_or(ev_bind_virq(VIRQ_DEBUG, 0)), port_or(Err(-EEXIST)));
    let (rc, st) = ev_status(100);
    c.rc("status of port 100", rc, 0);
    c.eq("bound to VIRQ_DEBUG", Dbg((st.status, st.u[0])), Dbg((EVTCHNSTAT_VIRQ, VIRQ_DEBUG)));
    c.rc("close port 100", ev_close(100), 0);
    c.eq("port 100 free again", port_or(alloc_self()), port_or(Ok(100)));
    audit(c, "with the table full");
}

fn job_xsa344(cpu: usize) {
    barrier();
    if cpu == 0 {
        let t0 = timer::now();
        let rc = ev_reset();
        SHARED2.store(timer::now() - t0, Release);
        expect_in(0, rc, &[0]);
        STOP.store(true, Release);
    } else {
        let mut rng = Rng::new(cpu, 344);
        while !STOP.load(Acquire) {
            let port = 1 + rng.below(4095) as u32;
            if rng.below(2) == 0 {
                expect_in(1, timed(|| ev_send(port)), &[0, -EINVAL]);
            } else {
                expect_in(2, timed(|| ev_status(port)).0, &[0]);
            }
        }
    }
}

/// XSA-344 (fixes cfd61e688f, f2befb6839): closing every port in evtchn_reset and
/// evtchn_destroy was not preemptible. With all 4095 ports in use (from XSA-496), vCPU 0
/// resets them in one hypercall while the others send to and ask the status of random ports
/// (0 or -EINVAL, status always 0): the reset returns 0 (the hypervisor preempts and
/// continues it), every port is closed afterwards (the next allocation is port 1), the
/// others' hypercalls kept completing (their longest is printed).
fn xsa344(c: &mut Check) {
    let (rc, st) = ev_status(4095);
    if !(rc == 0 && st.status == EVTCHNSTAT_UNBOUND) {
        let (last, e) = fill_ports();
        c.rc("fill the table", e, -ENOSPC);
        c.note(format_args!("filled up to port {last}"));
    }
    let done = run_all(job_xsa344, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["reset", "send", "status"]);
    let us = timer::us_from_ticks(SHARED2.load(Acquire));
    job_summary("xsa344 sends/status during the reset");
    println!("[xsa] xsa344: reset of 4095 ports took {us} us");
    c.eq("the next port is 1", port_or(alloc_self()), port_or(Ok(1)));
    c.eq("port 4095 closed", ev_status(4095).1.status, EVTCHNSTAT_CLOSED);
    c.rc("reset", ev_reset(), 0);
    audit(c, "after the reset");
}

fn job_xsa358(cpu: usize) {
    let e = env();
    barrier();
    let rounds = 60 * e.iters;
    match cpu {
        0 => {
            for i in 1..=rounds {
                expect_in(0, timed(ev_reset), &[0]);
                FIFO.zero(0);
                FIFO.zero(FIFO_EA);
                expect_in(1, timed(|| init_control(0, FIFO.gfn(0), 0)), &[0, -EINVAL]);
                expect_in(2, timed(|| expand_array(FIFO.gfn(FIFO_EA))), &[0]);
                let p1 = match alloc_self() {
                    Ok(p) => p,
                    Err(e) => {
                        bad(3, e);
                        break;
                    }
                };
                let p2 = match bind_self(p1) {
                    Ok(p) => p,
                    Err(e) => {
                        bad(3, e);
                        break;
                    }
                };
                expect_in(4, ev_bind_vcpu(p1, 1), &[0]);
                SHARED2.store(p2 as u64, Release);
                SHARED.store(i, Release);
                // Wait for vCPU 1's control block and some of vCPU 2's sends.
                timer::wait_until(2_000_000, || ACK1.load(Acquire) >= i && (e.ncpus < 3 || ACK2.load(Acquire) >= i));
            }
            STOP.store(true, Release);
        }
        1 => {
            let mut seen = 0;
            while !STOP.load(Acquire) {
                let i = SHARED.load(Acquire);
                if i == seen {
                    core::hint::spin_loop();
                    continue;
                }
                seen = i;
                FIFO.zero(1);
                let rc = timed(|| init_control(1, FIFO.gfn(1), 0));
                expect_in(5, rc, &[0, -EINVAL]);
                ACK1.store(i, Release);
            }
        }
        _ => {
            let mut seen = 0;
            while !STOP.load(Acquire) {
                let i = SHARED.load(Acquire);
                let p2 = SHARED2.load(Acquire) as u32;
                if i == 0 {
                    core::hint::spin_loop();
                    continue;
                }
                // 0, or -EINVAL when vCPU 0 reset the ports meanwhile.
                expect_in(6, timed(|| ev_send(p2)), &[0, -EINVAL]);
                if i != seen {
                    seen = i;
                    ACK2.store(i, Release);
                }
            }
        }
    }
}

static ACK1: AtomicU64 = AtomicU64::new(0);
static ACK2: AtomicU64 = AtomicU64::new(0);

/// XSA-358 (fix c5e63651fd): a vCPU's FIFO control block pointer was published before its
/// queue heads were set up, so an event sent at that moment used them uninitialised. 60
/// rounds: vCPU 0 resets, switches to FIFO and binds a loopback pair notifying vCPU 1; vCPU 1
/// registers its control block while vCPU 2 sends to it as fast as it can: every answer is
/// one the operation can give, no crash, the audit finds nothing.
fn xsa358(c: &mut Check) {
    if env().ncpus < 2 {
        c.note("needs 2 vCPUs: skipped");
        return;
    }
    ev_clean(c);
    ACK1.store(0, SeqCst);
    ACK2.store(0, SeqCst);
    let done = run_all(job_xsa358, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(
        c,
        &["reset", "init_control(0)", "expand_array", "alloc/bind", "bind_vcpu", "init_control(1)", "send"],
    );
    job_summary("xsa358");
    c.rc("reset", ev_reset(), 0);
    audit(c, "after the rounds");
}

const XSA359_PAIRS: usize = 600;
/// The pairs of XSA-359: an unbound port and the port bound to it (loopback).
static PAIR_P: [AtomicU32; XSA359_PAIRS] = [const { AtomicU32::new(0) }; XSA359_PAIRS];
static PAIR_Q: [AtomicU32; XSA359_PAIRS] = [const { AtomicU32::new(0) }; XSA359_PAIRS];

fn job_xsa359(cpu: usize) {
    barrier();
    if cpu == 0 {
        // Let the senders start, then add the page their ports need.
        timer::delay_us(200);
        expect_in(0, timed(|| expand_array(FIFO.gfn(FIFO_EA + 1))), &[0]);
        SHARED.store(1, Release);
    } else {
        // Each sender sends on its share of the pairs whose bound end is beyond the first
        // page (and unmasks that end), before, during and after the expansion.
        let n = env().ncpus - 1;
        for round in 0..4 {
            for k in (cpu - 1..XSA359_PAIRS).step_by(n) {
                let (p, q) = (PAIR_P[k].load(Relaxed), PAIR_Q[k].load(Relaxed));
                if q < 1024 {
                    continue;
                }
                expect_in(1, timed(|| ev_send(p)), &[0]);
                expect_in(2, timed(|| ev_unmask(q)), &[0]);
            }
            if round == 1 {
                timer::wait_until(2_000_000, || SHARED.load(Acquire) != 0);
            }
        }
    }
}

/// XSA-359 (fix dc8b01affd): the FIFO event word of a port was looked up without ordering
/// against the event array growing. FIFO with one page; 600 loopback pairs whose bound ends
/// reach beyond the array (ports up to ~1200); the other vCPUs send on the pairs and unmask
/// the far ends while vCPU 0 adds the second page: every send and unmask is 0, and afterwards
/// every far end beyond the first page is pending and linked (events sent before the page
/// existed were remembered and raised when it came).
fn xsa359(c: &mut Check) {
    if env().ncpus < 2 {
        c.note("needs 2 vCPUs: skipped");
        return;
    }
    ev_clean(c);
    zero_fifo_pages();
    if !(c.rc("init_control", init_control(0, FIFO.gfn(0), 0), 0)
        & c.rc("expand_array", expand_array(FIFO.gfn(FIFO_EA)), 0))
    {
        return;
    }
    for p in PAIR_P.iter() {
        match alloc_self() {
            Ok(port) => p.store(port, Relaxed),
            Err(e) => {
                c.rc("alloc_unbound", e, 0);
                return;
            }
        }
    }
    let mut beyond = 0;
    for (p, q) in PAIR_P.iter().zip(PAIR_Q.iter()) {
        match bind_self(p.load(Relaxed)) {
            Ok(port) => {
                q.store(port, Relaxed);
                beyond += (port >= 1024) as u32;
            }
            Err(e) => {
                c.rc("bind_interdomain", e, 0);
                return;
            }
        }
    }
    c.note(format_args!(
        "ports {}..{} bound to {}..{}",
        PAIR_P[0].load(Relaxed),
        PAIR_P[XSA359_PAIRS - 1].load(Relaxed),
        PAIR_Q[0].load(Relaxed),
        PAIR_Q[XSA359_PAIRS - 1].load(Relaxed)
    ));
    if !c.that("bound ends beyond the first event-array page", beyond >= 100, beyond) {
        return;
    }
    let done = run_all(job_xsa359, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["expand_array", "send", "unmask"]);
    let mut lost = 0;
    for q in PAIR_Q.iter().map(|q| q.load(Relaxed)).filter(|&q| q >= 1024) {
        if event_word(q) & (EW_PENDING | EW_LINKED) != EW_PENDING | EW_LINKED {
            lost += 1;
        }
    }
    c.eq("far ends beyond the first page not pending and linked", lost, 0);
    c.rc("reset", ev_reset(), 0);
    audit(c, "after the expansion race");
}

fn job_xsa505(cpu: usize) {
    let e = env();
    barrier();
    match cpu {
        0 => {
            for _ in 0..200 * e.iters {
                expect_in(0, timed(ev_reset), &[0, -EAGAIN]);
            }
            STOP.store(true, Release);
        }
        1 => {
            let mut j = 0;
            while !STOP.load(Acquire) {
                expect_in(1, timed(|| init_control(0, FIFO.gfn(0), 0)), &[0, -EINVAL]);
                // -EOPNOTSUPP: a reset switched back to 2-level meanwhile; -ENOSPC never (at
                // most a few pages are added before the next reset, but allow it).
                expect_in(2, timed(|| expand_array(FIFO.gfn(FIFO_EA + j % 8))), &[0, -EOPNOTSUPP, -ENOSPC]);
                j += 1;
            }
        }
        _ => {
            let mut rng = Rng::new(cpu, 505);
            while !STOP.load(Acquire) {
                match rng.below(3) {
                    0 => {
                        expect_in(3, timed(alloc_self).map_or_else(|e| e, |_| 0), &[0, -ENOSPC]);
                    }
                    1 => {
                        expect_in(4, timed(|| ev_send(1 + rng.below(32) as u32)), &[0, -EINVAL]);
                    }
                    _ => {
                        expect_in(
                            2,
                            timed(|| expand_array(FIFO.gfn(FIFO_EA + rng.below(8) as usize))),
                            &[0, -EOPNOTSUPP, -ENOSPC],
                        );
                    }
                }
            }
        }
    }
}

/// XSA-505 (fix 0e9d647aca, 2026): EVTCHNOP_expand_array checked that FIFO was in use without
/// holding the event lock, racing EVTCHNOP_reset (which frees the FIFO state). vCPU 0 resets
/// 200 times while vCPU 1 switches to FIFO and adds event-array pages and the others add
/// pages, allocate and send: every answer is one the operation can give (expand_array 0 or
/// -EOPNOTSUPP), no crash; after a last reset the audit finds every FIFO page's reference
/// dropped.
fn xsa505(c: &mut Check) {
    if env().ncpus < 2 {
        c.note("needs 2 vCPUs: skipped");
        return;
    }
    ev_clean(c);
    zero_fifo_pages();
    let done = run_all(job_xsa505, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["reset", "init_control", "expand_array", "alloc_unbound", "send"]);
    job_summary("xsa505");
    c.rc("the final reset", ev_reset(), 0);
    audit(c, "after the race");
}

// ---- the virtual GIC -----------------------------------------------------------------------------------

use gic::{SgiTarget, gicd, gicr};
use granite_guests::{probe_read_sized, probe_write_sized};

/// Interrupts other than the event channel's and the timer's, counted by INTID (SGIs 0..15,
/// and the SPI of XSA-223 in slot 16).
static IRQS: [AtomicU32; 17] = [const { AtomicU32::new(0) }; 17];
static TEST_SPI: AtomicU32 = AtomicU32::new(0);
/// XSA-223's in-handler variant: on the first delivery, disable, re-pend, reprioritise and
/// enable the SPI from inside its handler (while it is active).
static REPEND_IN_HANDLER: AtomicBool = AtomicBool::new(false);
static REPEND_MODE: AtomicU32 = AtomicU32::new(3);

fn count_irq(intid: u32, _cnt: u64) {
    let spi = TEST_SPI.load(Relaxed);
    let slot = if intid < 16 {
        intid as usize
    } else if intid == spi && spi != 0 {
        16
    } else {
        return;
    };
    let n = IRQS[slot].load(Relaxed) + 1;
    IRQS[slot].store(n, Release);
    if slot == 16 && n == 1 && REPEND_IN_HANDLER.load(Acquire) {
        let g = gic::get();
        let mode = REPEND_MODE.load(Relaxed);
        if mode & 1 != 0 {
            g.disable(intid);
        }
        g.set_pending(intid);
        if mode & 2 != 0 {
            g.set_priority(intid, 0x90);
        }
        if mode & 1 != 0 {
            g.enable(intid);
        }
    }
}

fn reset_irq_counts() {
    for a in IRQS.iter() {
        a.store(0, Relaxed);
    }
}

/// Takes whatever interrupts are deliverable for `us` microseconds (IRQs unmasked meanwhile;
/// spinning, so the virtual timer is left alone).
fn take_irqs(us: u64) {
    granite_guests::exception::irq_unmask();
    timer::delay_us(us);
    irq_mask();
}

fn mmio_ok(c: &mut Check, what: impl Display, r: Result<u64, granite_guests::Fault>) -> Option<u64> {
    match r {
        Ok(v) => Some(v),
        Err(f) => {
            c.that(format_args!("{what}: no data abort"), false, f);
            None
        }
    }
}

fn mmio_abort(c: &mut Check, what: impl Display, r: Result<u64, granite_guests::Fault>) {
    c.that(format_args!("{what}: a data abort"), r.is_err(), format_args!("{r:?}"));
}

fn wr_probe(addr: u64, bytes: u8, v: u64) -> Result<u64, granite_guests::Fault> {
    // SAFETY: a GIC register (identity-mapped Device memory); a refused access is a caught
    // data abort.
    unsafe { probe_write_sized(addr, bytes, v) }.map(|_| 0)
}

/// XSA-94 (fix bf70db7cea): GICD_ICFGR emulation dereferenced the rank of interrupts beyond
/// the ones the guest has (NULL) and crashed Xen. Every ICFGR register of the distributor
/// (INTIDs 0..1023) read and written back with a word access; those beyond GICD_TYPER's
/// lines written with all ones and read back as zero (RAZ/WI); byte and halfword accesses are
/// data aborts; on GICv3 each vCPU's GICR_ICFGR0/1 the same way.
fn xsa94(c: &mut Check) {
    if !env().gic {
        c.note("no GIC: skipped");
        return;
    }
    let g = gic::get();
    for r in 0..64u64 {
        let a = g.d(gicd::ICFGR + 4 * r);
        let Some(v) = mmio_ok(c, format_args!("read ICFGR{r}"), probe_read_sized(a, 4)) else { continue };
        mmio_ok(c, format_args!("write ICFGR{r} with its value"), wr_probe(a, 4, v));
        if 16 * r as u32 >= g.nr_lines {
            mmio_ok(c, format_args!("write ones to ICFGR{r} (beyond the lines)"), wr_probe(a, 4, 0xffff_ffff));
            let back = probe_read_sized(a, 4).map_err(|f| f.esr);
            c.eq(format_args!("ICFGR{r} beyond the lines reads as zero"), Dbg(back), Dbg(Ok(0)));
        }
        if r % 8 == 7 || 16 * r as u32 >= g.nr_lines {
            mmio_abort(c, format_args!("byte read of ICFGR{r}"), probe_read_sized(a, 1));
            mmio_abort(c, format_args!("halfword write of ICFGR{r}"), wr_probe(a + 2, 2, 0xffff));
        }
    }
    if g.is_v3() {
        for cpu in 0..env().ncpus {
            let rd = g.rd_of(cpu);
            if rd == 0 {
                continue;
            }
            for n in 0..2 {
                let a = rd + gicr::SGI_BASE + gicr::ICFGR0 + 4 * n;
                let Some(v) = mmio_ok(c, format_args!("vCPU {cpu} GICR_ICFGR{n}"), probe_read_sized(a, 4)) else {
                    continue;
                };
                mmio_ok(c, format_args!("vCPU {cpu} GICR_ICFGR{n} written back"), wr_probe(a, 4, v));
                mmio_abort(c, format_args!("vCPU {cpu} GICR_ICFGR{n} byte read"), probe_read_sized(a, 1));
            }
        }
    }
    // The GIC still works: an SGI to ourselves arrives.
    reset_irq_counts();
    g.send_sgi(SgiTarget::Me, 5);
    take_irqs(20_000);
    c.eq("an SGI afterwards", IRQS[5].load(Acquire), 1);
}

/// XSA-117 (fix 97c4e77538): GICD_SGIR with the reserved TargetListFilter 0b11 hit a BUG() in
/// Xen; it is now a data abort for the guest. GICv2 only (GICv3 has no GICD_SGIR): the write
/// is a data abort whatever the target list and SGI, nothing is delivered, and a valid SGI
/// sent after them is the only one taken.
fn xsa117(c: &mut Check) {
    let g = gic::get();
    reset_irq_counts();
    for (sgi, list) in [(3u32, 0xffu8), (3, 0), (3, 1), (15, 0x3)] {
        mmio_abort(
            c,
            format_args!("GICD_SGIR filter 3, SGI {sgi}, list {list:#x}"),
            wr_probe(g.d(gicd::SGIR), 4, gic::sgir(sgi, 3, list) as u64),
        );
    }
    g.send_sgi(SgiTarget::Me, 4);
    take_irqs(20_000);
    c.eq("the valid SGI", IRQS[4].load(Acquire), 1);
    c.eq("SGI 3 (refused) delivered", IRQS[3].load(Acquire), 0);
    c.eq("SGI 15 (refused) delivered", IRQS[15].load(Acquire), 0);
}

/// XSA-118 (fixes d0b2caa80f, c96222cc6d): the vGIC printed a console line for every bad
/// access, unratelimited: a guest could flood the console. 2000 rounds of accesses that
/// hypervisors log (an implementation-defined and a reserved distributor register, a byte
/// access to GICD_CTLR): they complete (RAZ/WI or a data abort, as before the flood), and
/// the script counts the hypervisor's lines between the `[xsa] xsa118 begin/end` markers.
fn xsa118(c: &mut Check) {
    if !env().gic {
        c.note("no GIC: skipped");
        return;
    }
    let g = gic::get();
    let imp = g.d(0x20);
    let before = probe_read_sized(g.d(gicd::CTLR), 1).is_err();
    println!("[xsa] xsa118 begin");
    let t0 = timer::now();
    let mut wrong = 0;
    for _ in 0..2000 {
        wrong += (wr_probe(imp, 4, 0xffff_ffff).is_err()) as u32;
        wrong += (probe_read_sized(imp, 4) != Ok(0)) as u32;
        wrong += (probe_read_sized(g.d(gicd::CTLR), 1).is_err() != before) as u32;
    }
    let us = timer::us_from_ticks(timer::now() - t0);
    println!("[xsa] xsa118 end: 6000 accesses in {us} us");
    c.eq("accesses answered other than before the flood", wrong, 0);
}

/// XSA-223 (fix c84e4b2dd4): raising an interrupt that is in flight while the guest has it
/// disabled made Xen update a list register it did not hold (LR 255 on GICv3: a crash). An
/// SPI made pending (so in flight) with IRQs masked, then disabled, made pending again,
/// reprioritised and enabled: taken exactly once, 20 times over; and the same done from
/// inside its own handler (while active): taken once more after the EOI, no more; the
/// virtual timer firing while its PPI is disabled is taken once when it is enabled.
fn xsa223(c: &mut Check) {
    if !env().gic {
        c.note("no GIC: skipped");
        return;
    }
    let g = gic::get();
    let spi = g.nr_lines - 1;
    TEST_SPI.store(spi, Release);
    irq_mask();
    g.set_priority(spi, 0x80);
    for round in 0..20 {
        reset_irq_counts();
        g.enable(spi);
        g.set_pending(spi);
        g.disable(spi);
        g.set_pending(spi);
        g.set_priority(spi, if round % 2 == 0 { 0x90 } else { 0x80 });
        g.enable(spi);
        take_irqs(10_000);
        if !c.eq(format_args!("round {round}: the SPI taken"), IRQS[16].load(Acquire), 1) {
            break;
        }
    }
    // From inside its handler (active): made pending again, alone (mode 0), around a
    // disable/enable (1), with a priority change (2), both (3): taken again after the EOI.
    for mode in [0u32, 1, 2, 3] {
        g.disable(spi);
        g.clear_pending(spi);
        g.clear_active(spi);
        g.set_priority(spi, 0x80);
        g.enable(spi);
        REPEND_MODE.store(mode, Release);
        reset_irq_counts();
        REPEND_IN_HANDLER.store(true, Release);
        g.set_pending(spi);
        take_irqs(20_000);
        REPEND_IN_HANDLER.store(false, Release);
        let what = ["alone", "around a disable/enable", "with a priority change", "with both"][mode as usize];
        let n = IRQS[16].load(Acquire);
        let ok = if env().xen && mode == 3 {
            // Xen 4.17 sometimes drops the new pending state when the interrupt is disabled
            // and reprioritised while in flight (the XSA-223 fix stops updating the list
            // register of a disabled interrupt): taken once or twice.
            if n != 2 {
                println!("[xsa] xen 4.17: made pending again from its handler, {what}: taken {n} time(s), not 2");
            }
            c.that(
                format_args!("made pending again from its handler, {what}: taken once or twice"),
                n == 1 || n == 2,
                n,
            )
        } else {
            c.eq(format_args!("made pending again from its handler, {what}: taken twice"), n, 2)
        };
        if !ok {
            println!(
                "[xsa] xsa223: after the lost delivery: pending {}, active {}, enabled {}, priority {:#x}, running priority {:#x}, HPPIR {}",
                g.is_pending(spi),
                g.is_active(spi),
                g.is_enabled(spi),
                g.priority(spi),
                g.rpr(),
                g.hppir()
            );
        }
    }
    reset_irq_counts();
    g.set_pending(spi);
    take_irqs(20_000);
    c.eq("afterwards, pending once more: taken once", IRQS[16].load(Acquire), 1);
    audit(c, "after the in-flight updates");
    g.disable(spi);
    g.set_priority(spi, gic::DEFAULT_PRIORITY);
    // The virtual timer's PPI: fires while disabled, is taken once enabled.
    let (_, before) = evtchn::timer_at();
    g.disable(timer::VTIMER_INTID);
    timer::set_cval(timer::now());
    timer::set_ctl(timer::CTL_ENABLE);
    take_irqs(5_000);
    let (_, while_off) = evtchn::timer_at();
    g.enable(timer::VTIMER_INTID);
    take_irqs(5_000);
    let (_, after) = evtchn::timer_at();
    timer::set_ctl(0);
    c.eq("timer interrupts while its PPI was disabled", while_off - before, 0);
    c.eq("timer interrupts once enabled", after - while_off, 1);
    TEST_SPI.store(0, Release);
}

// ---- cross-domain scenarios -------------------------------------------------------------------------
//
// dom0 (`role=xdom`) and a domU (`role=domu`, domain 1) meet through a mailbox page the domU
// grants to dom0 (reference MAIL_REF). dom0 grants the domU XD_GRANTS pages and allocates
// XD_PORTS unbound ports for it, and says so in the mailbox; the domU maps each of those
// grants XD_MAPS times (at GFNs spread over its extended regions: a big P2M), binds a port to
// each of dom0's, publishes the GFNs of XD_FOREIGN pages of its own (which dom0 maps with
// XENMAPSPACE_gmfn_foreign) and, when dom0 says so, crashes. dom0 checks what its side
// sees before, while and after the domU dies.

const DOMU: DomId = 1;
const MAIL_REF: u32 = 8;
/// The domU's mailbox page and the pages dom0 maps as foreign.
const MAIL_P: usize = 23;
const FOREIGN_P: usize = 16;
const XD_GRANTS: usize = 4;
const XD_MAPS: usize = 100;
const XD_PORTS: u32 = 900;
const XD_FOREIGN: usize = 4;
const XD_REF0: u32 = 40;
// Mailbox words (byte offsets).
const MB_MAGIC: u64 = 0;
const MB_DOMU: u64 = 8;
const MB_DOM0: u64 = 16;
const MB_NPORTS: u64 = 24;
const MB_PORT0: u64 = 32;
const MB_MAPS: u64 = 40;
const MB_BINDS: u64 = 48;
const MB_FOREIGN: u64 = 64;
const MB_MAGIC_VALUE: u64 = 0x7873_6178_646f_6d31; // "xsaxdom1"
const FOREIGN_TAG: u64 = 0xf0f0_0000_0000_0000;

fn rd(va: u64) -> u64 {
    // SAFETY: `va` is a page mapped for the run outside every Rust object (a grant mapping in
    // an extended region), 8-byte aligned; an unexpected fault ends the run as failed.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}

fn wr(va: u64, v: u64) {
    // SAFETY: as for `rd`.
    unsafe { core::ptr::write_volatile(va as *mut u64, v) }
}

/// Waits (napping) until `cond`, for at most `secs`; fatal otherwise.
fn await_or_die(what: &str, secs: u64, cond: impl FnMut() -> bool) {
    if !nap_until(secs * 1_000_000, cond) {
        fatal(format_args!("gave up waiting for {what}"));
    }
}

/// The domU: see the section comment.
fn domu() {
    let mail = PAGES.addr(MAIL_P);
    PAGES.zero(MAIL_P);
    for i in 0..XD_FOREIGN {
        PAGES.fill(FOREIGN_P + i, FOREIGN_TAG | (i as u64) << 32);
        PAGES.write64(MAIL_P, MB_FOREIGN + 8 * i as u64, PAGES.gfn(FOREIGN_P + i));
    }
    gt().grant(MAIL_REF, GTF_PERMIT_ACCESS, 0, pgfn(MAIL_P));
    PAGES.write64(MAIL_P, MB_MAGIC, MB_MAGIC_VALUE);
    await_or_die("dom0's grants and ports", 120, || rd(mail + MB_DOM0) >= 1);
    // Map each of dom0's grants XD_MAPS times, spread over our address space.
    let mut gfns = [0u64; SCAT_MAX];
    let n = scattered_gfns(&mut gfns).min(XD_GRANTS * XD_MAPS);
    let mut maps = 0u64;
    for k in 0..XD_GRANTS * XD_MAPS {
        let g = gfns.get(k).copied().filter(|_| k < n).unwrap_or_else(|| sx(0x200 + k as u64));
        let (_, m) = map_grant_ref(gaddr(g), GNTMAP_HOST_MAP, XD_REF0 + (k % XD_GRANTS) as u32, 0);
        maps += (m.status == GNTST_OKAY) as u64;
    }
    wr(mail + MB_MAPS, maps);
    let (p0, np) = (rd(mail + MB_PORT0) as u32, rd(mail + MB_NPORTS) as u32);
    let mut binds = 0u64;
    for p in p0..p0 + np {
        binds += bind_to(0, p).is_ok() as u64;
    }
    wr(mail + MB_BINDS, binds);
    println!("[xsa] domU: {maps} mappings of dom0's grants ({n} spread out), {binds} ports bound to dom0's");
    wr(mail + MB_DOMU, 1);
    await_or_die("dom0's go", 300, || rd(mail + MB_DOM0) >= 2);
    println!("[xsa] domU: crashing on purpose with a big P2M, {binds} interdomain ports, {maps} grant mappings");
    hypercall::shutdown(sched::SHUTDOWN_CRASH);
    fatal(format_args!("domU: still running after SCHEDOP_shutdown(crash)"))
}

/// Where dom0 maps the domU's mailbox and foreign pages.
fn xd_mail() -> u64 {
    gaddr(sx(0x40))
}

fn xd_foreign(i: usize) -> u64 {
    sx(0x48 + i as u64)
}

/// Copies from the foreign pages during the death that did not answer GNTST_bad_page.
static COPY_WRONG: AtomicU32 = AtomicU32::new(0);
static COPY_FIRST: AtomicU32 = AtomicU32::new(0);
static XD_PORT0: AtomicU32 = AtomicU32::new(0);
static XD_MAIL_HANDLE: AtomicU32 = AtomicU32::new(0);

fn copy_from_gfn(gfn: u64) -> i16 {
    PAGES.zero(PC);
    let op = copy_op(GnttabCopyPtr { u: gfn, domid: DOMID_SELF, offset: 0, _pad: 0 }, copy_ptr_gfn(PC, 0), 64, 0);
    copy1(op).1
}

/// dom0 of the cross-domain run.
fn xdom_dom0() {
    // The domU's mailbox (it may not have granted it yet).
    let mut handle = None;
    await_or_die("the domU's mailbox grant", 120, || {
        if handle.is_none() {
            let (_, m) = map_grant_ref(xd_mail(), GNTMAP_HOST_MAP, MAIL_REF, DOMU);
            if m.status == GNTST_OKAY {
                handle = Some(m.handle);
            }
        }
        handle.is_some()
    });
    XD_MAIL_HANDLE.store(handle.unwrap_or(0), Relaxed);
    let mail = xd_mail();
    await_or_die("the domU's mailbox", 60, || rd(mail + MB_MAGIC) == MB_MAGIC_VALUE);
    run("xsa380_xsa344_xsa410_set_up_a_big_domu", xd_setup);
    run("xsa473_foreign_pages_of_a_live_domu", xd_foreign_live);
    run("xsa410_domu_dies_while_dom0_works_on_it", xd_death);
    run("xsa473_copies_from_foreign_pages_while_their_owner_dies", |c| {
        let n = COPY_WRONG.load(Acquire);
        let first = COPY_FIRST.load(Acquire) as i16;
        c.that(
            "copies naming a foreign page: GNTST_bad_page",
            n == 0,
            format_args!("{n} other answers, e.g. {}", gntst(first)),
        );
    });
    run("xsa380_grants_released_when_the_mapping_domu_died", xd_grants_released);
    run("xsa344_ports_unbound_when_the_peer_died", xd_ports_unbound);
    run("xsa473_foreign_pages_of_a_dead_domu", xd_foreign_dead);
}

/// dom0 grants XD_GRANTS pages to the domU and allocates XD_PORTS ports for it; the domU maps
/// each grant XD_MAPS times and binds a port to each of dom0's: dom0 sees its entries in use
/// and its ports bound to the domU.
fn xd_setup(c: &mut Check) {
    let mail = xd_mail();
    for k in 0..XD_GRANTS {
        PAGES.fill(P_SCAT + k, 0x3800_0000_0000_0000 | (k as u64) << 32);
        gt().grant(XD_REF0 + k as u32, GTF_PERMIT_ACCESS, DOMU, pgfn(P_SCAT + k));
    }
    ev_clean(c);
    let mut first = 0;
    for i in 0..XD_PORTS {
        match alloc_for(DOMU) {
            Ok(p) if i == 0 => first = p,
            Ok(p) if p == first + i => {}
            r => {
                c.eq(format_args!("alloc_unbound(remote d1) #{i}"), port_or(r), port_or(Ok(first + i)));
                return;
            }
        }
    }
    XD_PORT0.store(first, Relaxed);
    wr(mail + MB_PORT0, first as u64);
    wr(mail + MB_NPORTS, XD_PORTS as u64);
    wr(mail + MB_DOM0, 1);
    await_or_die("the domU to map and bind", 300, || rd(mail + MB_DOMU) >= 1);
    c.eq("the domU's mappings of our grants", rd(mail + MB_MAPS), (XD_GRANTS * XD_MAPS) as u64);
    c.eq("the domU's bindings to our ports", rd(mail + MB_BINDS), XD_PORTS as u64);
    for k in 0..XD_GRANTS as u32 {
        c.eq(format_args!("grant {} in use", XD_REF0 + k), in_use(XD_REF0 + k), GTF_READING | GTF_WRITING);
    }
    let (rc, st) = ev_status(first + XD_PORTS - 1);
    c.rc("status of our last port", rc, 0);
    c.eq("bound to the domU", Dbg((st.status, st.remote_dom())), Dbg((EVTCHNSTAT_INTERDOMAIN, DOMU)));
    audit(c, "with the domU set up");
}

/// XSA-473 (fixes c5a6dd6850, 2275bf83a1): p2m_get_page_from_gfn must take the foreign
/// page's reference under the P2M lock and cope with an owner that is going away. The
/// domU's pages mapped by dom0 with XENMAPSPACE_gmfn_foreign: they read as the domU wrote
/// them; a grant copy naming such a GFN as our own frame is refused as Xen refuses a foreign
/// frame there (GNTST_bad_page).
fn xd_foreign_live(c: &mut Check) {
    let mail = xd_mail();
    let idxs: [u64; XD_FOREIGN] = core::array::from_fn(|i| rd(mail + MB_FOREIGN + 8 * i as u64));
    let gpfns: [u64; XD_FOREIGN] = core::array::from_fn(xd_foreign);
    let mut errs = [ERR_UNWRITTEN; XD_FOREIGN];
    let mut b = XenAddToPhysmapBatch {
        domid: DOMID_SELF,
        space: XENMAPSPACE_GMFN_FOREIGN as u16,
        size: XD_FOREIGN as u16,
        u: DOMU,
        idxs: hypercall::va(&idxs),
        gpfns: hypercall::va(&gpfns),
        errs: hypercall::va_mut(&mut errs),
    };
    c.rc("add_to_physmap_batch(gmfn_foreign, d1)", hypercall::memory_op(XENMEM_ADD_TO_PHYSMAP_BATCH, &mut b), 0);
    c.eq("its errs", Dbg(errs), Dbg([0; XD_FOREIGN]));
    for i in 0..XD_FOREIGN {
        expect_read(
            c,
            format_args!("foreign page {i}"),
            gaddr(xd_foreign(i)) + 8,
            (FOREIGN_TAG | (i as u64) << 32) ^ 0x0101_0101,
        );
        c.st(format_args!("copy from foreign page {i} as our frame"), copy_from_gfn(xd_foreign(i)), GNTST_BAD_PAGE);
    }
    audit(c, "with the foreign mappings");
}

/// While the domU dies: every answer about it stays one of the legal ones, and a map that
/// failed because it is dying is never followed by one that succeeds.
fn job_xd_death(cpu: usize) {
    barrier();
    if cpu == 0 {
        wr(xd_mail() + MB_DOM0, 2);
        // Our mapping of its mailbox goes at once: the death must not wait for it.
        expect_in(2, unmap(sx(0x40), 0, XD_MAIL_HANDLE.load(Relaxed)) as i64, &[GNTST_OKAY as i64]);
        let gone = nap_until(60_000_000, || query_size(DOMU).1.status == GNTST_BAD_DOMAIN);
        if !gone {
            bad(0, 0);
        }
        // Let the others see it gone for a while.
        timer::delay_us(20_000);
        STOP.store(true, Release);
    } else {
        let h = sx(0x60 + cpu as u64);
        let mut refused = false;
        let mut n = 0u64;
        while !STOP.load(Acquire) && n < 1_000_000 {
            let (_, m) = timed(|| map_grant_ref(gaddr(h), GNTMAP_HOST_MAP | GNTMAP_READONLY, MAIL_REF, DOMU));
            match m.status {
                GNTST_OKAY => {
                    if refused {
                        bad(1, 0);
                    }
                    inc(&tally().ok);
                    expect_in(2, timed(|| unmap(h, 0, m.handle)) as i64, &[GNTST_OKAY as i64]);
                }
                s => {
                    refused = true;
                    expect_in(1, s as i64, &[GNTST_BAD_DOMAIN as i64, GNTST_GENERAL_ERROR as i64]);
                }
            }
            // (Checked by the XSA-473 scenario: counted apart.)
            let st = timed(|| copy_from_gfn(xd_foreign(n as usize % XD_FOREIGN)));
            if st != GNTST_BAD_PAGE {
                COPY_WRONG.fetch_add(1, Relaxed);
                COPY_FIRST.store(st as u32, Relaxed);
            }
            let port = XD_PORT0.load(Relaxed) + (n as u32 % XD_PORTS);
            expect_in(4, timed(|| ev_send(port)), &[0]);
            n += 1;
        }
    }
}

/// XSA-410 (fixes 3202084566, 3ebe773293): tearing down a dying domain's P2M was not
/// preemptible, and mappings could still be added to a dying domain. dom0 tells the domU
/// (2 vCPUs, a P2M with hundreds of grant mappings spread out, 900 interdomain ports) to
/// crash; meanwhile dom0's second vCPU keeps mapping the domU's mailbox grant (okay until
/// the domU is dying, then refused, never okay again), copying from its foreign-mapped pages
/// (the answers are XSA-473's, checked by the next scenario) and sending on the ports bound to
/// it (0): every hypercall completes (the longest is printed), the domU disappears.
fn xd_death(c: &mut Check) {
    let done = run_all(job_xd_death, 120_000_000);
    c.that("every vCPU finished", done, "a vCPU is stuck");
    check_tallies(c, &["the domU disappearing", "map of its grant", "unmap", "", "send"]);
    job_summary("xsa410 during the death");
    let (_, q) = query_size(DOMU);
    c.st("query_size(d1) afterwards", q.status, GNTST_BAD_DOMAIN);
    let (_, m) = map_grant_ref(gaddr(sx(0x61)), GNTMAP_HOST_MAP, MAIL_REF, DOMU);
    c.st("a map of its grant afterwards", m.status, GNTST_BAD_DOMAIN);
    // It is unknown from the moment it shut down; its teardown (which releases what it held)
    // follows once its vCPUs stopped.
    let torn_down = nap_until(60_000_000, || {
        (0..XD_GRANTS as u32).all(|k| in_use(XD_REF0 + k) == 0)
            && ev_status(XD_PORT0.load(Relaxed)).1.status == EVTCHNSTAT_UNBOUND
    });
    c.that("its teardown done within 60 s (our grants unused, our ports unbound)", torn_down, "not yet");
}

/// XSA-380 (gnttab_release_mappings made preemptible, b1ee10be56): the dead domU's 400
/// mappings of dom0's grants were released: dom0's entries are no longer in use.
fn xd_grants_released(c: &mut Check) {
    for k in 0..XD_GRANTS as u32 {
        c.eq(format_args!("grant {} no longer in use", XD_REF0 + k), in_use(XD_REF0 + k), 0);
        gt().clear(XD_REF0 + k);
    }
    audit(c, "after the domU's death");
}

/// XSA-344 (evtchn_destroy made preemptible, f2befb6839): the dead domU's 900 interdomain
/// ports were closed: each of dom0's is unbound again (still for domain 1), a send on it is
/// dropped (0), and they all close.
fn xd_ports_unbound(c: &mut Check) {
    let first = XD_PORT0.load(Relaxed);
    let mut wrong = 0;
    for p in first..first + XD_PORTS {
        let (rc, st) = ev_status(p);
        if rc != 0 || st.status != EVTCHNSTAT_UNBOUND || st.remote_dom() != DOMU {
            wrong += 1;
        }
    }
    c.eq("ports not back to unbound for d1", wrong, 0);
    c.rc("a send on one", ev_send(first), 0);
    c.rc("reset", ev_reset(), 0);
    audit(c, "after the ports were closed");
}

/// XSA-473, once the owner is dead: dom0's foreign mappings keep the pages (they read as
/// before), copies naming them stay GNTST_bad_page, removing them is 0 and the last removal
/// lets the hypervisor free the dead domain (the script checks its log).
fn xd_foreign_dead(c: &mut Check) {
    for i in 0..XD_FOREIGN {
        expect_read(
            c,
            format_args!("foreign page {i}"),
            gaddr(xd_foreign(i)) + 8,
            (FOREIGN_TAG | (i as u64) << 32) ^ 0x0101_0101,
        );
        c.st(format_args!("copy from it"), copy_from_gfn(xd_foreign(i)), GNTST_BAD_PAGE);
        c.rc(format_args!("remove it"), remove(xd_foreign(i)), 0);
        expect_fault(c, "removed", gaddr(xd_foreign(i)));
    }
    audit(c, "after the last foreign page went");
}
