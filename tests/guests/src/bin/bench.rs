//! The benchmark guest: times hypercalls, a reflected stage-2 fault, interrupts and event
//! channels as dom0, the same way on any hypervisor speaking Xen's ABI. Run by
//! `scripts/bench.sh` on granite and on Xen 4.17 (and on granite as a domU too, see `role=`).
//!
//! Timing uses the virtual counter. Under QEMU `-icount shift=0` one instruction is one
//! nanosecond of virtual time, so the figures are instructions per operation and repeat
//! exactly; without `-icount` they are wall-clock (TCG) time. Each measurement prints
//!
//!     [granite-bench] op=<name> iters=<n> ticks=<counter ticks> freq=<counter Hz> [vcpus=<k>]
//!
//! Latencies (one sample per event, in counter ticks) print
//!
//!     [granite-bench] lat=<name> n=<samples> median=<ticks> min=<ticks> max=<ticks> sum=<ticks> freq=<counter Hz>
//!
//! Boot arguments: `iters=N` (default 2000), `vcpus=K` (vCPUs for the contention and
//! cross-vCPU runs, default every CPU in the device tree), `only=<op>` (just that operation,
//! for profiling and for the runs that need a machine of their own), `peer=domu` (dom0: a
//! bench domU is running, measure `evtchn_dom0_domu` with it), `role=domu` (be that domU: an
//! echo server on an event channel whose port it publishes in a page granted to dom0).
//!
//! Operations:
//! * `null_hypercall`: `xen_version(XENVER_version)`;
//! * `query_size`: `GNTTABOP_query_size` (a struct copied in and out);
//! * `grant_frame_add_remove`: `XENMEM_add_to_physmap` of grant frame 0 + `remove_from_physmap`;
//! * `grant_frame_add_remove_64`: the same with every other grant frame mapped;
//! * `map_unmap_grant`: `GNTTABOP_map_grant_ref` + `unmap_grant_ref` of our own grant;
//! * `stage2_fault`: a read of a page the P2M does not map, reflected back as a data abort;
//! * `vtimer_busy` / `vtimer_wfi` (latencies): the virtual timer programmed 50 us ahead
//!   (CNTV_CVAL), the sample is the virtual counter the guest's IRQ vector read minus CVAL
//!   (the hypervisor takes the timer's interrupt and injects virtual PPI 27). `busy`: the
//!   guest spins with IRQs unmasked; `wfi`: it waits in WFI with IRQs masked, and unmasks
//!   them once WFI returned at or after CVAL (a few guest instructions more);
//! * `gicd_write`: a 32-bit write of GICD_IPRIORITYR for SPIs 32-35 (trapped and emulated);
//! * `sgi_self`: an SGI to ourselves (ICC_SGI1R_EL1 write, trapped), taken by the handler
//!   (acknowledge, count, EOI) before the sender's next instruction;
//! * `evtchn_2vcpus` (2 vCPUs or more): an event-channel round trip between our vCPUs through
//!   a loopback interdomain channel: vCPU 0 sends on port A, bound to port B, which is bound
//!   to vCPU 1; vCPU 1's upcall handler sends on B; vCPU 0's handler counts, vCPU 0 waits in
//!   WFI meanwhile (vCPU 1 idles in WFI);
//! * `evtchn_dom0_domu` (`peer=domu`): the same round trip with the domU's echo handler;
//! * `add_remove_1vcpu` / `add_remove_Kvcpus`: the add+remove round trip on 1 and on K vCPUs at
//!   once, each on its own frame and GFN of the same domain (all behind one P2M lock); the
//!   ticks are the longest vCPU's.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use granite_guests::exception::{irq_mask, irq_unmask};
use granite_guests::gic::{self, SgiTarget, gicd};
use granite_guests::hypercall::{self, map_grant_ref, query_size, unmap_grant_ref};
use granite_guests::report::fatal;
use granite_guests::smp::{self, MAX_CPUS};
use granite_guests::timer::{self, CTL_ENABLE};
use granite_guests::{GrantFrameV1, PAGE_SIZE as PAGE, Pages, Platform, evtchn, println, probe_read, rt};
use xen_abi::gnttab::*;
use xen_abi::memory::XENMAPSPACE_GRANT_TABLE;
use xen_abi::version::XENVER_VERSION;
use xen_abi::*;

granite_guests::entry!(main);

const REF_OWN: u32 = 9;
static OWN: Pages<1> = Pages::new();

fn cntvct() -> u64 {
    let v: u64;
    // SAFETY: reads the virtual counter (after an ISB so it is not read early).
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}
fn cntfrq() -> u64 {
    let v: u64;
    // SAFETY: reads the counter frequency.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

/// CNTVOFF_EL2 as the guest sees it: the physical minus the virtual counter, read together
/// (exact under `-icount`, where the three reads fall in one tick; without it, to a tick or so).
fn cntvoff() -> u64 {
    let mut off = 0;
    for _ in 0..100 {
        let (v0, p, v1): (u64, u64, u64);
        // SAFETY: reads of the virtual and physical counters (EL1 may read CNTPCT_EL0 on Xen
        // and granite alike).
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntvct_el0", "mrs {}, cntpct_el0", "mrs {}, cntvct_el0",
                out(reg) v0, out(reg) p, out(reg) v1, options(nomem, nostack));
        }
        off = p - v0;
        if v0 == v1 {
            break;
        }
    }
    off
}

fn report(name: &str, iters: u64, ticks: u64, vcpus: Option<usize>) {
    match vcpus {
        Some(k) => println!("[granite-bench] op={name} iters={iters} ticks={ticks} freq={} vcpus={k}", cntfrq()),
        None => println!("[granite-bench] op={name} iters={iters} ticks={ticks} freq={}", cntfrq()),
    }
}

/// `only=<op>` on the command line: measure just that operation (for profiling).
struct Only(Option<&'static str>);

impl Only {
    /// Whether operation `name` is to be measured.
    fn wants(&self, name: &str) -> bool {
        self.0.is_none_or(|o| o == name)
    }

    /// Time `n` calls of `f` (after a warm-up of `n / 8`).
    fn measure(&self, name: &str, n: u64, f: impl FnMut()) {
        if self.wants(name) {
            measure(name, n, f);
        }
    }
}

/// Time `n` calls of `f` (after a warm-up of `n / 8`).
fn measure(name: &str, n: u64, mut f: impl FnMut()) {
    for _ in 0..n / 8 + 1 {
        f();
    }
    let t0 = cntvct();
    for _ in 0..n {
        f();
    }
    report(name, n, cntvct() - t0, None);
}

fn add_gt(idx: u64, gfn: u64) {
    let rc = hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, idx, gfn);
    if rc != 0 {
        fatal(format_args!("add_to_physmap(grant frame {idx}, {gfn:#x}) = {rc}"));
    }
}
fn remove(gfn: u64) {
    let rc = hypercall::remove_from_physmap(DOMID_SELF, gfn);
    if rc != 0 {
        fatal(format_args!("remove_from_physmap({gfn:#x}) = {rc}"));
    }
}

// The contention run: every vCPU does `ITERS` round trips on grant frame 1 + its index at
// GFN g0 + 1 + its index, then records its ticks.
static GO: AtomicBool = AtomicBool::new(false);
static G0: AtomicU64 = AtomicU64::new(0);
static ITERS: AtomicU64 = AtomicU64::new(0);
static TICKS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn round_trips(cpu: usize) {
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let (g0, n) = (G0.load(Ordering::Relaxed), ITERS.load(Ordering::Relaxed));
    let (idx, gfn) = (1 + cpu as u64, g0 + 1 + cpu as u64);
    let t0 = cntvct();
    for _ in 0..n {
        add_gt(idx, gfn);
        remove(gfn);
    }
    TICKS[cpu].store(cntvct() - t0, Ordering::Release);
}

fn main(p: &Platform) {
    if p.bootarg("role") == Some("domu") {
        domu(p);
    }
    let arg = |key: &str| {
        p.bootargs.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse::<u64>().ok())
    };
    let n = arg("iters=").unwrap_or(2000).max(1);
    let only = Only(p.bootargs.split_ascii_whitespace().find_map(|w| w.strip_prefix("only=")));
    let Some(grant) = p.grant_region else { fatal(format_args!("no grant-table region")) };
    let Some(ext) = p.extended.last() else { fatal(format_args!("no extended region")) };
    let g0 = grant.base / PAGE;
    println!("[granite-bench] entry_cntpct={} freq={}", rt::entry_cntpct(), cntfrq());
    println!("[granite-bench] cntvoff={}", cntvoff());

    only.measure("null_hypercall", n, || {
        hypercall::xen_version::<()>(XENVER_VERSION, None);
    });
    only.measure("query_size", n, || {
        query_size(DOMID_SELF);
    });
    only.measure("grant_frame_add_remove", n, || {
        add_gt(0, g0);
        remove(g0);
    });

    // Our own grant, mapped at the start of the last extended region.
    let host = ext.base;
    // SAFETY: grant frame 0 is mapped at g0 for the writes below, outside every Rust object.
    let gt = unsafe {
        add_gt(0, g0);
        GrantFrameV1::at(g0 * PAGE)
    };
    gt.grant(REF_OWN, GTF_PERMIT_ACCESS, 0, OWN.gfn(0) as u32);
    only.measure("map_unmap_grant", n, || {
        let (rc, op) = map_grant_ref(host, GNTMAP_HOST_MAP, REF_OWN, 0);
        if rc != 0 || op.status != GNTST_OKAY {
            fatal(format_args!("map_grant_ref: rc {rc} status {}", op.status));
        }
        let (_, st) = unmap_grant_ref(host, 0, op.handle);
        if st != GNTST_OKAY {
            fatal(format_args!("unmap_grant_ref: status {st}"));
        }
    });
    remove(g0);

    // A page our stage 1 maps (extended regions are mapped) and the P2M does not.
    let hole = ext.base + 64 * PAGE;
    only.measure("stage2_fault", n, || {
        if probe_read(hole).is_ok() {
            fatal(format_args!("{hole:#x} is mapped: no fault to measure"));
        }
    });

    let max = query_size(DOMID_SELF).1.max_nr_frames as u64;
    for i in 1..max {
        add_gt(i, g0 + i);
    }
    only.measure("grant_frame_add_remove_64", n, || {
        add_gt(0, g0);
        remove(g0);
    });
    for i in 1..max {
        remove(g0 + i);
    }

    // Interrupts and event channels (set up only now: the figures above are without them).
    irq_setup(p);
    for (name, wfi) in [("vtimer_busy", false), ("vtimer_wfi", true)] {
        if only.wants(name) {
            timer_latency(name, wfi);
        }
    }
    let g = gic::get();
    // GICD_IPRIORITYR for SPIs 32-35, written with the value gic::init gave them.
    let prio = g.d(gicd::IPRIORITYR + 32);
    only.measure("gicd_write", n, || gic::write32(prio, u32::from_ne_bytes([gic::DEFAULT_PRIORITY; 4])));
    only.measure("sgi_self", n, || {
        let k = SGIS.load(Ordering::Acquire);
        g.send_sgi(SgiTarget::Me, SGI_BENCH);
        let t0 = cntvct();
        while SGIS.load(Ordering::Acquire) == k {
            if cntvct() - t0 > timer::ticks_from_us(1_000_000) {
                fatal(format_args!("sgi_self: the SGI did not arrive"));
            }
        }
    });
    if p.bootarg("peer") == Some("domu") && only.wants("evtchn_dom0_domu") {
        with_domu(p, n);
    }

    // The other vCPUs: idle in WFI, woken by a doorbell SGI for each command.
    let want = arg("vcpus=").map_or(p.cpus.as_slice().len(), |k| k as usize).clamp(1, MAX_CPUS);
    let k = if want > 1 && (only.wants("evtchn_2vcpus") || only.0.is_none()) { start_workers(p, want) } else { 1 };
    if k > 1 && only.wants("evtchn_2vcpus") {
        evtchn_2vcpus(n);
    }

    if only.0.is_none() {
        // Contention on the domain's one P2M lock.
        G0.store(g0, Ordering::Relaxed);
        ITERS.store(n, Ordering::Relaxed);
        GO.store(true, Ordering::Release);
        round_trips(0);
        report("add_remove_1vcpu", n, TICKS[0].load(Ordering::Acquire), Some(1));
        if k > 1 {
            GO.store(false, Ordering::Release);
            let seq = post(CMD_CONTENTION);
            wait_workers(k, &ACKED, seq);
            GO.store(true, Ordering::Release);
            round_trips(0);
            wait_workers(k, &DONE, seq);
            let longest = (0..k).map(|c| TICKS[c].load(Ordering::Acquire)).max().unwrap_or(0);
            report(vcpus_name(k), n, longest, Some(k));
        }
    }
    if k > 1 {
        post(CMD_QUIT);
        smp::wait_done(10_000_000);
    }
    println!("[granite-bench] done");
    hypercall::power_off()
}

// ---- interrupts -------------------------------------------------------------------------------

/// The SGI `sgi_self` sends, and the one that wakes the workers.
const SGI_BENCH: u32 = 1;
const DOORBELL: u32 = 2;
/// SGI_BENCH interrupts taken (by vCPU 0).
static SGIS: AtomicU64 = AtomicU64::new(0);

/// Interrupts other than the event-channel and timer ones (see `evtchn::irq_handler`).
fn on_other_irq(intid: u32, _cnt: u64) {
    if intid == SGI_BENCH {
        SGIS.store(SGIS.load(Ordering::Relaxed) + 1, Ordering::Release);
    }
}

/// The GIC, event channels (shared_info at the last page of the last extended region) and
/// the IRQ handler on the boot CPU; IRQs unmasked.
fn irq_setup(p: &Platform) {
    let g = gic::init(p).unwrap_or_else(|e| fatal(format_args!("gic::init: {e:?}")));
    if !g.cpu_init() {
        fatal(format_args!("no redistributor for vCPU 0"));
    }
    let Some(ext) = p.extended.last() else { fatal(format_args!("no extended region")) };
    if let Err(e) = evtchn::init(p, ext.end() / PAGE - 1) {
        fatal(format_args!("evtchn::init: {e:?}"));
    }
    if let Err(e) = evtchn::cpu_init(true) {
        fatal(format_args!("evtchn::cpu_init: {e:?}"));
    }
    evtchn::set_other_handler(on_other_irq);
    irq_unmask();
}

/// Samples per latency measurement (after 16 not counted).
const LAT_SAMPLES: usize = 256;

/// The virtual timer's latency: CVAL to the counter read by the IRQ vector (see the docs).
fn timer_latency(name: &str, wfi: bool) {
    let mut lat = [0u64; LAT_SAMPLES];
    let ahead = timer::ticks_from_us(50);
    let give_up = timer::ticks_from_us(1_000_000);
    for i in 0..LAT_SAMPLES + 16 {
        let (_, before) = evtchn::timer_at();
        if wfi {
            irq_mask();
        }
        let cval = timer::now() + ahead;
        timer::set_cval(cval);
        timer::set_ctl(CTL_ENABLE);
        if wfi {
            while timer::now() < cval {
                timer::wfi();
            }
            irq_unmask();
        }
        while evtchn::timer_at().1 == before {
            if timer::now().saturating_sub(cval) > give_up {
                fatal(format_args!("{name}: no timer interrupt"));
            }
        }
        let at = evtchn::timer_at().0;
        timer::set_ctl(0);
        if i >= 16 {
            lat[i - 16] = at.wrapping_sub(cval);
        }
    }
    lat.sort_unstable();
    let sum: u64 = lat.iter().sum();
    println!(
        "[granite-bench] lat={name} n={LAT_SAMPLES} median={} min={} max={} sum={sum} freq={}",
        lat[LAT_SAMPLES / 2],
        lat[0],
        lat[LAT_SAMPLES - 1],
        cntfrq()
    );
}

// ---- event channels ---------------------------------------------------------------------------

/// Events counted on the measuring side's port.
static EVENTS: AtomicU64 = AtomicU64::new(0);

fn count_event(_port: u32) {
    EVENTS.store(EVENTS.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// The other side: send one back on the same port.
fn echo(port: u32) {
    let rc = evtchn::send(port);
    if rc != 0 {
        fatal(format_args!("echo: send on port {port}: {rc}"));
    }
}

/// Times `n` round trips: send on `port`, sleep in WFI until our handler counted the answer.
fn round_trip_events(name: &str, port: u32, n: u64) {
    // The bind set our port pending once (Xen's conservative notification): let it arrive.
    if !evtchn::wait_until(1_000_000, || EVENTS.load(Ordering::Acquire) >= 1) {
        fatal(format_args!("{name}: the bind's notification did not arrive"));
    }
    let deadline = evtchn::arm_timeout(100_000_000);
    let mut want = EVENTS.load(Ordering::Acquire);
    measure(name, n, || {
        want += 1;
        let rc = evtchn::send(port);
        if rc != 0 {
            fatal(format_args!("{name}: send: {rc}"));
        }
        if !evtchn::wait(deadline, || EVENTS.load(Ordering::Acquire) >= want) {
            fatal(format_args!("{name}: a notification was lost"));
        }
    });
    evtchn::disarm_timeout();
}

/// `evtchn_2vcpus`: port A (vCPU 0, counting) bound to port B (vCPU 1, echoing).
fn evtchn_2vcpus(n: u64) {
    EVENTS.store(0, Ordering::Release);
    let a =
        evtchn::alloc_unbound(DOMID_SELF, count_event).unwrap_or_else(|e| fatal(format_args!("alloc_unbound: {e}")));
    let b = evtchn::bind_interdomain(DOMID_SELF, a, echo)
        .unwrap_or_else(|e| fatal(format_args!("bind_interdomain(self, {a}): {e}")));
    // B's bind-time notification goes to vCPU 0 (B's echo there makes A's first event).
    let rc = evtchn::bind_vcpu(b, 1);
    if rc != 0 {
        fatal(format_args!("bind_vcpu({b}, 1): {rc}"));
    }
    round_trip_events("evtchn_2vcpus", a, n);
    for port in [a, b] {
        evtchn::close(port);
        evtchn::clear_callback(port);
    }
}

// The domU side (`role=domu`) and dom0's (`peer=domu`): a mailbox page the domU grants.
const REF_MAIL: u32 = 8;
static MAIL: Pages<1> = Pages::new();
const MAIL_MAGIC: u64 = 0x6265_6e63_6865_6331; // "benchec1"
const MAIL_PORT: u64 = 8;
const DOMU: DomId = 1;

/// `role=domu`: grant the mailbox, publish an echoing port for dom0, sleep for ever.
fn domu(p: &Platform) -> ! {
    let Some(grant) = p.grant_region else { fatal(format_args!("domU: no grant-table region")) };
    add_gt(0, grant.base / PAGE);
    // SAFETY: grant frame 0 was just mapped at the start of the grant region, which is outside
    // every Rust object.
    let gt = unsafe { GrantFrameV1::at(grant.base) };
    MAIL.zero(0);
    gt.grant(REF_MAIL, GTF_PERMIT_ACCESS, 0, MAIL.gfn(0) as u32);
    irq_setup(p);
    let port = evtchn::alloc_unbound(0, echo).unwrap_or_else(|e| fatal(format_args!("alloc_unbound: {e}")));
    MAIL.write64(0, MAIL_PORT, port as u64);
    core::sync::atomic::fence(Ordering::SeqCst);
    MAIL.write64(0, 0, MAIL_MAGIC);
    println!("[granite-bench] domU: echoing on port {port}");
    loop {
        evtchn::wait(u64::MAX, || false);
    }
}

/// `peer=domu`: `evtchn_dom0_domu` with the domU's echo port.
fn with_domu(p: &Platform, n: u64) {
    let Some(ext) = p.extended.last() else { fatal(format_args!("no extended region")) };
    let host = ext.base + 32 * PAGE;
    let mut handle = None;
    for _ in 0..10_000_000 {
        let (rc, op) = map_grant_ref(host, GNTMAP_HOST_MAP, REF_MAIL, DOMU);
        if rc == 0 && op.status == GNTST_OKAY {
            handle = Some(op.handle);
            break;
        }
        hypercall::sched_yield();
    }
    let Some(handle) = handle else { fatal(format_args!("the domU's mailbox grant never appeared")) };
    // SAFETY: `host` is the granted page, mapped in an extended region (no Rust object).
    let rd = |off: u64| unsafe { core::ptr::read_volatile((host + off) as *const u64) };
    for _ in 0..10_000_000 {
        if rd(0) == MAIL_MAGIC {
            break;
        }
        hypercall::sched_yield();
    }
    if rd(0) != MAIL_MAGIC {
        fatal(format_args!("the domU never published its port"));
    }
    let remote = rd(MAIL_PORT) as u32;
    EVENTS.store(0, Ordering::Release);
    let local = evtchn::bind_interdomain(DOMU, remote, count_event)
        .unwrap_or_else(|e| fatal(format_args!("bind_interdomain(d1, {remote}): {e}")));
    round_trip_events("evtchn_dom0_domu", local, n);
    evtchn::close(local);
    evtchn::clear_callback(local);
    unmap_grant_ref(host, 0, handle);
}

// ---- the other vCPUs --------------------------------------------------------------------------

const CMD_CONTENTION: u32 = 1;
const CMD_QUIT: u32 = 2;
static CMD: AtomicU32 = AtomicU32::new(0);
static CMD_SEQ: AtomicU64 = AtomicU64::new(0);
/// Per vCPU: set up (GIC, event channels), and the last command seen and finished.
static READY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static ACKED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static DONE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Starts up to `want` vCPUs in all and waits until they are set up; returns how many run.
fn start_workers(p: &Platform, want: usize) -> usize {
    let (_, k) = smp::start_secondaries(p, want, worker);
    smp::wait_started(1_000_000);
    for (c, ready) in READY.iter().enumerate().take(k).skip(1) {
        for _ in 0..10_000_000 {
            if ready.load(Ordering::Acquire) || smp::state(c) != smp::CpuState::Online {
                break;
            }
            hypercall::sched_yield();
        }
        if !ready.load(Ordering::Acquire) {
            fatal(format_args!("vCPU {c} did not set up its GIC and event channels"));
        }
    }
    k
}

/// Posts a command to the workers (and rings their doorbell); returns its sequence number.
fn post(cmd: u32) -> u64 {
    CMD.store(cmd, Ordering::Release);
    let seq = CMD_SEQ.load(Ordering::Relaxed) + 1;
    CMD_SEQ.store(seq, Ordering::Release);
    gic::get().send_sgi(SgiTarget::Others, DOORBELL);
    seq
}

fn wait_workers(k: usize, what: &[AtomicU64; MAX_CPUS], seq: u64) {
    for _ in 0..100_000_000u64 {
        if (1..k).all(|c| what[c].load(Ordering::Acquire) >= seq) {
            return;
        }
        hypercall::sched_yield();
    }
    fatal(format_args!("the other vCPUs did not answer command {seq}"))
}

fn worker(cpu: usize) {
    if !gic::get().cpu_init() {
        fatal(format_args!("no redistributor for vCPU {cpu}"));
    }
    if let Err(e) = evtchn::cpu_init(true) {
        fatal(format_args!("vCPU {cpu}: evtchn::cpu_init: {e:?}"));
    }
    READY[cpu].store(true, Ordering::Release);
    irq_unmask();
    let mut seen = 0;
    loop {
        // Events (evtchn_2vcpus) are handled by the IRQ handler meanwhile.
        evtchn::wait(u64::MAX, || CMD_SEQ.load(Ordering::Acquire) != seen);
        seen = CMD_SEQ.load(Ordering::Acquire);
        ACKED[cpu].store(seen, Ordering::Release);
        match CMD.load(Ordering::Acquire) {
            CMD_CONTENTION => round_trips(cpu),
            CMD_QUIT => {
                irq_mask();
                return;
            }
            _ => {}
        }
        DONE[cpu].store(seen, Ordering::Release);
    }
}

/// `add_remove_<k>vcpus` (a static name: the guest has no allocator).
fn vcpus_name(k: usize) -> &'static str {
    ["add_remove_1vcpu", "add_remove_1vcpu", "add_remove_2vcpus", "add_remove_3vcpus", "add_remove_4vcpus"]
        .get(k)
        .copied()
        .unwrap_or("add_remove_nvcpus")
}
