//! The benchmark guest: times hypercalls and a reflected stage-2 fault as dom0, the same way on
//! any hypervisor speaking Xen's ABI. Run by `scripts/bench.sh` on granite and on Xen 4.17.
//!
//! Timing uses the virtual counter. Under QEMU `-icount shift=0` one instruction is one
//! nanosecond of virtual time, so the figures are instructions per operation and repeat
//! exactly; without `-icount` they are wall-clock (TCG) time. Each measurement prints
//!
//!     [granite-bench] op=<name> iters=<n> ticks=<counter ticks> freq=<counter Hz> [vcpus=<k>]
//!
//! Boot arguments: `iters=N` (default 2000), `vcpus=K` (vCPUs for the contention run, default
//! every CPU in the device tree).
//!
//! Operations:
//! * `null_hypercall`: `xen_version(XENVER_version)`;
//! * `query_size`: `GNTTABOP_query_size` (a struct copied in and out);
//! * `grant_frame_add_remove`: `XENMEM_add_to_physmap` of grant frame 0 + `remove_from_physmap`;
//! * `grant_frame_add_remove_64`: the same with every other grant frame mapped;
//! * `map_unmap_grant`: `GNTTABOP_map_grant_ref` + `unmap_grant_ref` of our own grant;
//! * `stage2_fault`: a read of a page the P2M does not map, reflected back as a data abort;
//! * `add_remove_1vcpu` / `add_remove_Kvcpus`: the add+remove round trip on 1 and on K vCPUs at
//!   once, each on its own frame and GFN of the same domain (all behind one P2M lock); the
//!   ticks are the longest vCPU's.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use granite_guests::hypercall::{self, map_grant_ref, query_size, unmap_grant_ref};
use granite_guests::report::fatal;
use granite_guests::smp::{self, MAX_CPUS};
use granite_guests::{GrantFrameV1, PAGE_SIZE as PAGE, Pages, Platform, println, probe_read, rt};
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

fn report(name: &str, iters: u64, ticks: u64, vcpus: Option<usize>) {
    match vcpus {
        Some(k) => println!("[granite-bench] op={name} iters={iters} ticks={ticks} freq={} vcpus={k}", cntfrq()),
        None => println!("[granite-bench] op={name} iters={iters} ticks={ticks} freq={}", cntfrq()),
    }
}

/// `only=<op>` on the command line: measure just that operation (for profiling).
struct Only(Option<&'static str>);

impl Only {
    /// Time `n` calls of `f` (after a warm-up of `n / 8`).
    fn measure(&self, name: &str, n: u64, f: impl FnMut()) {
        if self.0.is_none_or(|o| o == name) {
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
    let arg = |key: &str| {
        p.bootargs.split_ascii_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse::<u64>().ok())
    };
    let n = arg("iters=").unwrap_or(2000).max(1);
    let only = Only(p.bootargs.split_ascii_whitespace().find_map(|w| w.strip_prefix("only=")));
    let Some(grant) = p.grant_region else { fatal(format_args!("no grant-table region")) };
    let Some(ext) = p.extended.last() else { fatal(format_args!("no extended region")) };
    let g0 = grant.base / PAGE;
    println!("[granite-bench] entry_cntpct={} freq={}", rt::entry_cntpct(), cntfrq());

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

    if only.0.is_some() {
        println!("[granite-bench] done");
        hypercall::power_off()
    }

    // Contention on the domain's one P2M lock.
    G0.store(g0, Ordering::Relaxed);
    ITERS.store(n, Ordering::Relaxed);
    GO.store(true, Ordering::Release);
    round_trips(0);
    report("add_remove_1vcpu", n, TICKS[0].load(Ordering::Acquire), Some(1));
    let want = arg("vcpus=").map_or(p.cpus.as_slice().len(), |k| k as usize).clamp(1, MAX_CPUS);
    if want > 1 {
        GO.store(false, Ordering::Release);
        let (_, k) = smp::start_secondaries(p, want, round_trips);
        smp::wait_started(1_000_000);
        GO.store(true, Ordering::Release);
        round_trips(0);
        smp::wait_done(10_000_000);
        let longest = (0..k).map(|c| TICKS[c].load(Ordering::Acquire)).max().unwrap_or(0);
        report(vcpus_name(k), n, longest, Some(k));
    }
    println!("[granite-bench] done");
    hypercall::power_off()
}

/// `add_remove_<k>vcpus` (a static name: the guest has no allocator).
fn vcpus_name(k: usize) -> &'static str {
    ["add_remove_1vcpu", "add_remove_1vcpu", "add_remove_2vcpus", "add_remove_3vcpus", "add_remove_4vcpus"]
        .get(k)
        .copied()
        .unwrap_or("add_remove_nvcpus")
}
