//! Host benchmark of the portable core (not a test: it only prints numbers).
//!
//!     cargo bench --bench core            (or scripts/bench.sh, which records BENCHMARKS.md)
//!
//! * ns per 4 KiB P2M map and unmap (each under its own write lock, as a hypercall does) with
//!   1, 1 000, 1 000 000 pages already mapped;
//! * ns per grant-frame add_to_physmap + remove_from_physmap round trip, by the core functions
//!   and through the full hypercall path (argument copy from guest memory included);
//! * the same round trip on 2+ threads at once on one domain (contention on its P2M lock);
//! * grant-table growth cost per frame up to the maximum;
//! * bytes of frame table per 4 KiB frame.

use granite::hv::Options;
use granite::hypercall::memory::{add_to_physmap_one, remove_from_physmap_one};
use granite::mm::PageInfo;
use granite::p2m::P2mType;
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::types::{Gfn, Mfn};
use std::sync::Arc;
use std::time::Instant;
use xen_abi::memory::*;
use xen_abi::{DOMID_SELF, DOMID_XEN};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median over `rounds` of the mean ns per iteration of `f` over `iters` iterations.
fn time(rounds: usize, iters: u64, mut f: impl FnMut(u64)) -> f64 {
    let mut r = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for i in 0..iters {
            f(i);
        }
        r.push(t.elapsed().as_nanos() as f64 / iters as f64);
    }
    median(r)
}

fn main() {
    // --bench is passed by cargo; ignore arguments. BENCH_PART=single prints every row but the
    // contended one (scripts/bench.sh runs it pinned to one CPU with taskset, which steadies
    // the single-thread figures), BENCH_PART=contention only that row.
    let part = std::env::var("BENCH_PART").unwrap_or_default();
    let (single, contention) = (part != "contention", part != "single");
    if single {
        println!("| measurement | value |");
        println!("|---|---|");
        println!("| frame table bytes per 4 KiB frame | {} (Xen arm64: 56) |", std::mem::size_of::<PageInfo>());
        p2m_scaling();
    }
    let (m, g, core_rt) = round_trip(single);
    if contention {
        contended(&m, &g, core_rt);
    }
    if single {
        growth(&m);
    }
}

/// ns per 4 KiB map and unmap with 1, 1 000 and 1 000 000 pages already mapped.
fn p2m_scaling() {
    // P2M map/unmap scaling. 40 000 frames of arena is plenty for the tables of 1M mappings
    // (≈ 2 000 level-3 tables).
    let m = HostMachine::new(40_000, 44, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let mut cfg = hv.domain_config(1);
    cfg.p2m_table_limit = u64::MAX;
    let d = hv.create_domain(cfg).unwrap();
    let mut mapped = 0u64;
    let mut base1 = Vec::new();
    for target in [1u64, 1_000, 1_000_000] {
        // Pages already mapped: 4 KiB each (odd MFN so no blocks), far from the probe GFNs.
        {
            let mut w = d.p2m.write(&hv.mm);
            let n = target - mapped;
            w.insert(Gfn(0x100_0000 + mapped), n, Mfn(0x1_0001 + mapped), P2mType::RamRw).unwrap();
            mapped = target;
            assert_eq!(w.stats().leaves[3], mapped);
        }
        // Probe region: its tables exist (first pass), so we time the entry update itself.
        let probe = Gfn(0x20_0000);
        d.p2m.write(&hv.mm).insert(probe, 1, Mfn(7), P2mType::RamRw).unwrap();
        d.p2m.write(&hv.mm).remove(probe, 1).unwrap();
        // Map 512 pages, then unmap them, each batch timed on its own; median of 41 rounds.
        let (mut maps, mut unmaps) = (Vec::new(), Vec::new());
        for _ in 0..41 {
            let t = Instant::now();
            for i in 0..512 {
                d.p2m.write(&hv.mm).insert(probe.add(i), 1, Mfn(0x5_0001 + i), P2mType::RamRw).unwrap();
            }
            maps.push(t.elapsed().as_nanos() as f64 / 512.0);
            let t = Instant::now();
            for i in 0..512 {
                d.p2m.write(&hv.mm).remove(probe.add(i), 1).unwrap();
            }
            unmaps.push(t.elapsed().as_nanos() as f64 / 512.0);
        }
        let (map_only, unmap) = (median(maps), median(unmaps));
        if target == 1 {
            base1 = vec![map_only, unmap];
        }
        println!(
            "| P2M 4 KiB map, {target} {} mapped | {map_only:.0} ns ({:.2}x the 1-page case) |",
            if target == 1 { "page" } else { "pages" },
            map_only / base1[0]
        );
        println!(
            "| P2M 4 KiB unmap (flush at unlock), {target} {} mapped | {unmap:.0} ns ({:.2}x) |",
            if target == 1 { "page" } else { "pages" },
            unmap / base1[1]
        );
    }
    drop(d);
}

/// The grant-frame add + remove round trip, by the core functions (returned) and through the
/// hypercall path; printed if `print`.
fn round_trip(print: bool) -> (HostMachine, Guest, f64) {
    let m = HostMachine::new(8192, 44, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 4);
    let gfn = Gfn(GUEST_GNTTAB_GFN);
    let core_rt = time(7, 20_000, |_| {
        add_to_physmap_one(hv, &g.d, &g.d, XENMAPSPACE_GRANT_TABLE, DOMID_XEN, 0, gfn).unwrap();
        remove_from_physmap_one(hv, &g.d, gfn).unwrap();
    });
    if print {
        println!("| grant-frame add_to_physmap + remove_from_physmap (core) | {core_rt:.0} ns |");
        let hc_rt = time(7, 20_000, |_| {
            assert_eq!(g.map_grant_frame(hv, 0, gfn.0), 0);
            assert_eq!(g.remove(hv, DOMID_SELF, gfn.0), 0);
        });
        println!("| grant-frame add_to_physmap + remove_from_physmap (hypercall path) | {hc_rt:.0} ns |");
    }
    (m, g, core_rt)
}

/// Contention on the domain's one P2M lock: T threads at once (the host's CPUs), each doing
/// the round trip on its own grant frame and GFN of the same domain.
fn contended(m: &HostMachine, g: &Guest, core_rt: f64) {
    let hv = &m.hv;
    {
        let mut st = g.d.grant.write();
        g.d.grant.grow(&hv.mm, &mut st, 8).unwrap();
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4);
    let iters = 200_000u64;
    let mut worst = Vec::new();
    for _ in 0..7 {
        let start = std::sync::Barrier::new(threads);
        let per_thread: Vec<f64> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let (start, d) = (&start, &g.d);
                    s.spawn(move || {
                        let (idx, gfn) = (1 + t as u64, Gfn(GUEST_GNTTAB_GFN + 1 + t as u64));
                        start.wait();
                        let t0 = Instant::now();
                        for _ in 0..iters {
                            add_to_physmap_one(hv, d, d, XENMAPSPACE_GRANT_TABLE, DOMID_XEN, idx, gfn).unwrap();
                            remove_from_physmap_one(hv, d, gfn).unwrap();
                        }
                        t0.elapsed().as_nanos() as f64 / iters as f64
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        worst.push(per_thread.into_iter().fold(0.0, f64::max));
    }
    let contended = median(worst);
    println!(
        "| grant-frame add + remove (core), {threads} threads at once on one domain, slowest thread | {contended:.0} ns ({:.2}x one thread alone) |",
        contended / core_rt
    );
}

/// Grant-table growth to the maximum (64 frames), per frame.
fn growth(m: &HostMachine) {
    let hv = &m.hv;
    let mut per = Vec::new();
    for id in 10..17 {
        let d = hv.create_domain(hv.domain_config(id)).unwrap();
        let t = Instant::now();
        for n in 2..=64 {
            let mut st = d.grant.write();
            d.grant.grow(&hv.mm, &mut st, n).unwrap();
        }
        per.push(t.elapsed().as_nanos() as f64 / 63.0);
        hv.destroy_domain(&d);
    }
    println!("| grant-table growth per frame (1 → 64 frames) | {:.0} ns |", median(per));
}
