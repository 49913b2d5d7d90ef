//! Memory reservation (`XENMEM_decrease_reservation`, `populate_physmap`,
//! `increase_reservation`, the reservation queries) on the simulated machine: a direct-mapped
//! dom0 gets the same page back at the same address, a domU gets fresh pages within its
//! limit; bad arguments get Xen's answers with the whole state unchanged; the audit holds.

use granite::audit::audit;
use granite::hv::{Hypervisor, Options};
use granite::hypercall::Outcome;
use granite::p2m::P2mType;
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::types::{Gfn, Mfn};
use std::sync::Arc;
use xen_abi::hypercall::MEMORY_OP;
use xen_abi::memory::*;
use xen_abi::{DOMID_SELF, XenMemoryReservation};

/// Dom0's RAM: 4 MiB at 1 GiB, direct-mapped (its first pages are the argument areas).
const DOM0_PAGES: u64 = 1024;

fn dom0(m: &HostMachine) -> Guest {
    let hv = &m.hv;
    let mut cfg = hv.domain_config(0);
    cfg.direct_map = true;
    cfg.max_pages = DOM0_PAGES;
    let d = hv.create_domain(cfg).unwrap();
    let ram = Mfn(GUEST_RAM_GFN);
    hv.mm.assign_boot_frames(ram, DOM0_PAGES, 0);
    d.p2m.write(&hv.mm).insert(Gfn(GUEST_RAM_GFN), DOM0_PAGES, ram, P2mType::RamRw).unwrap();
    Guest { d, ram, pages: DOM0_PAGES }
}

fn machine() -> HostMachine {
    HostMachine::with_boot_plan(16384, 40, Arc::new(NoTlb), Options::default(), |bm| {
        bm.reserve(GUEST_RAM_GFN << 12, DOM0_PAGES << 12, "dom0 RAM").unwrap();
    })
}

/// A reservation op on `gfns` (written at ARRAY) for `dom`.
fn op(g: &Guest, hv: &Hypervisor, cmd: u64, dom: u16, order: u32, gfns: &[u64]) -> i64 {
    for (i, gfn) in gfns.iter().enumerate() {
        g.put(hv, ARRAY + 8 * i as u64, gfn);
    }
    let r = XenMemoryReservation {
        extent_start: ARRAY,
        nr_extents: gfns.len() as u64,
        extent_order: order,
        mem_flags: 0,
        domid: dom,
        _pad: [0; 6],
    };
    g.put(hv, ARG, &r);
    g.ret(hv, MEMORY_OP, [cmd, ARG, 0, 0, 0])
}

fn query(g: &Guest, hv: &Hypervisor, cmd: u64, dom: u16) -> i64 {
    g.put(hv, ARG, &dom);
    g.ret(hv, MEMORY_OP, [cmd, ARG, 0, 0, 0])
}

fn clean(hv: &Hypervisor) {
    let r = audit(hv);
    assert!(r.is_clean(), "{:?}", r.violations);
}

#[test]
fn a_direct_mapped_dom0_gets_the_same_pages_back_at_the_same_addresses() {
    let m = machine();
    let hv = &m.hv;
    let g = dom0(&m);
    let base = GUEST_RAM_GFN + 512;
    let gfns: Vec<u64> = (0..16).map(|i| base + 3 * i).collect();
    let owned = hv.mm.pages_of(0).domheap.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, DOMID_SELF), owned as i64);
    assert_eq!(op(&g, hv, XENMEM_DECREASE_RESERVATION, DOMID_SELF, 0, &gfns), 16, "Linux BUG_ONs on fewer");
    for &gfn in &gfns {
        assert!(g.lookup(hv, gfn).is_none(), "gfn {gfn:#x} unmapped");
        assert_eq!(hv.mm.frames.owner(Mfn(gfn)), Some(0), "the page stays dom0's");
    }
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, DOMID_SELF), owned as i64, "nothing given back");
    clean(hv);
    // Giving back what is no longer mapped stops at once (Xen: -EINVAL on the page).
    assert_eq!(op(&g, hv, XENMEM_DECREASE_RESERVATION, DOMID_SELF, 0, &gfns[..2]), 0);
    assert_eq!(op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 0, &gfns), 16);
    for &gfn in &gfns {
        let map = g.lookup(hv, gfn).expect("mapped again");
        assert_eq!((map.mfn, map.ty), (Mfn(gfn), P2mType::RamRw), "GFN == MFN, its own page");
    }
    clean(hv);
    // A frame dom0 does not own (the page allocator's), or a hypervisor page shared with it
    // (a grant frame), is not populated: the count stops there.
    let foreign = hv.mm.alloc_domheap(1, 0).unwrap();
    assert_eq!(
        op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 0, &[base + 1, foreign.0]),
        1,
        "its own, still mapped page: fine; then the foreign one stops it"
    );
    assert_eq!(op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 0, &[foreign.0]), 0);
    let frame = g.grant_frame_mfn(0);
    assert_eq!(op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 0, &[frame.0]), 0);
    assert!(g.lookup(hv, frame.0).is_none());
    // Order-4 extents (16 pages each), as Linux's balloon may use.
    let ext = [base + 256, base + 256 + 16];
    assert_eq!(op(&g, hv, XENMEM_DECREASE_RESERVATION, DOMID_SELF, 4, &ext), 2);
    assert!(g.lookup(hv, base + 256 + 31).is_none());
    assert_eq!(op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 4, &ext), 2);
    assert_eq!(g.lookup(hv, base + 256 + 31).unwrap().mfn, Mfn(base + 256 + 31));
    clean(hv);
}

#[test]
fn a_domu_gives_back_pages_and_gets_fresh_ones_within_its_limit() {
    let m = machine();
    let hv = &m.hv;
    let mut cfg = hv.domain_config(1);
    cfg.max_pages = 20;
    let d = hv.create_domain(cfg).unwrap();
    let ram = hv.mm.alloc_domheap_within(1, 4, 20).unwrap();
    d.p2m.write(&hv.mm).insert(Gfn(GUEST_RAM_GFN), 16, ram, P2mType::RamRw).unwrap();
    let g = Guest { d, ram, pages: 16 };
    let free0 = hv.mm.heap.free_frames();
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, DOMID_SELF), 16);
    assert_eq!(query(&g, hv, XENMEM_MAXIMUM_RESERVATION, DOMID_SELF), 20);
    assert_eq!(query(&g, hv, XENMEM_MAXIMUM_GPFN, DOMID_SELF), (GUEST_RAM_GFN + 15) as i64);
    let top = [GUEST_RAM_GFN + 14, GUEST_RAM_GFN + 15];
    assert_eq!(op(&g, hv, XENMEM_DECREASE_RESERVATION, DOMID_SELF, 0, &top), 2);
    assert_eq!(hv.mm.heap.free_frames(), free0 + 2, "freed (after the flush)");
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, DOMID_SELF), 14);
    clean(hv);
    // 6 pages may be populated (14 + 6 = 20): the 7th stops the count.
    let at: Vec<u64> = (0..7).map(|i| GUEST_RAM_GFN + 0x100 + i).collect();
    assert_eq!(op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 0, &at), 6);
    assert!(g.lookup(hv, at[5]).is_some() && g.lookup(hv, at[6]).is_none());
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, DOMID_SELF), 20);
    assert_eq!(op(&g, hv, XENMEM_INCREASE_RESERVATION, DOMID_SELF, 0, &[0]), 0, "at its limit");
    assert_eq!(op(&g, hv, XENMEM_DECREASE_RESERVATION, DOMID_SELF, 0, &at[..2]), 2);
    assert_eq!(
        op(&g, hv, XENMEM_INCREASE_RESERVATION, DOMID_SELF, 0, &[0, 0, 0]),
        2,
        "unmapped pages, up to the limit"
    );
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, DOMID_SELF), 20);
    clean(hv);
    // Its argument pages are RAM it gives back too: a grant frame mapped there stays the
    // hypervisor's (unmapped, not freed).
    assert_eq!(g.map_grant_frame(hv, 0, GUEST_RAM_GFN + 0x200), 0);
    assert_eq!(op(&g, hv, XENMEM_DECREASE_RESERVATION, DOMID_SELF, 0, &[GUEST_RAM_GFN + 0x200]), 1);
    assert!(hv.mm.frames.is_xen_heap(g.grant_frame_mfn(0)));
    clean(hv);
    hv.destroy_domain(&g.d);
    hv.reap();
    assert_eq!(hv.dying_domains(), 0);
}

#[test]
fn long_requests_continue_and_bad_ones_get_xens_answers() {
    let m = machine();
    let hv = &m.hv;
    let g = dom0(&m);
    let gfns: Vec<u64> = (0..200).map(|i| GUEST_RAM_GFN + 600 + i).collect();
    // 200 extents: three continuations, one result.
    for (i, gfn) in gfns.iter().enumerate() {
        g.put(hv, ARRAY + 8 * i as u64, gfn);
    }
    let r = XenMemoryReservation { extent_start: ARRAY, nr_extents: 200, domid: DOMID_SELF, ..Default::default() };
    g.put(hv, ARG, &r);
    let mut args = [XENMEM_DECREASE_RESERVATION, ARG, 0, 0, 0];
    let call = granite::hypercall::Call::new(hv, &g.d, 0, &granite::hypercall::IdentityVa);
    assert_eq!(granite::hypercall::hypercall(&call, MEMORY_OP, &mut args), Outcome::Continue);
    assert_eq!(args[0], XENMEM_DECREASE_RESERVATION | (64 << MEMOP_EXTENT_SHIFT));
    assert_eq!(g.ret(hv, MEMORY_OP, args), 200);
    assert_eq!(op(&g, hv, XENMEM_POPULATE_PHYSMAP, DOMID_SELF, 0, &gfns), 200);
    clean(hv);

    let before = fingerprint(hv);
    let reservation = |nr: u64, order: u32, dom: u16| {
        g.put(
            hv,
            ARG,
            &XenMemoryReservation {
                extent_start: ARRAY,
                nr_extents: nr,
                extent_order: order,
                domid: dom,
                ..Default::default()
            },
        );
    };
    let cases: &[(&str, u64, u64, i64)] = &[
        // (what, cmd, argument pointer, answer)
        ("order above the caller's limit", XENMEM_DECREASE_RESERVATION, 19, 0),
        ("unknown domain", XENMEM_DECREASE_RESERVATION, 77, 0),
        ("too many extents to continue", XENMEM_POPULATE_PHYSMAP, 1 << 58, 0),
        ("no extents", XENMEM_POPULATE_PHYSMAP, 0, 0),
    ];
    for &(what, cmd, param, want) in cases {
        match what {
            "order above the caller's limit" => reservation(1, param as u32, DOMID_SELF),
            "unknown domain" => reservation(1, 0, param as u16),
            _ => reservation(param, 0, DOMID_SELF),
        }
        assert_eq!(g.ret(hv, MEMORY_OP, [cmd, ARG, 0, 0, 0]), want, "{what}");
    }
    // A start beyond the extents returns the start; an unreadable structure too.
    reservation(4, 0, DOMID_SELF);
    assert_eq!(g.ret(hv, MEMORY_OP, [XENMEM_DECREASE_RESERVATION | (9 << MEMOP_EXTENT_SHIFT), ARG, 0, 0, 0]), 9);
    assert_eq!(g.ret(hv, MEMORY_OP, [XENMEM_DECREASE_RESERVATION | (2 << MEMOP_EXTENT_SHIFT), 0x1000, 0, 0, 0]), 2);
    // Queries: a start is -EINVAL, an unreadable domid -EFAULT, an unknown one -ESRCH.
    assert_eq!(g.ret(hv, MEMORY_OP, [XENMEM_CURRENT_RESERVATION | (1 << MEMOP_EXTENT_SHIFT), ARG, 0, 0, 0]), -22);
    assert_eq!(g.ret(hv, MEMORY_OP, [XENMEM_MAXIMUM_RESERVATION, 0x1000, 0, 0, 0]), -14);
    assert_eq!(query(&g, hv, XENMEM_CURRENT_RESERVATION, 77), -3);
    assert_eq!(g.ret(hv, MEMORY_OP, [XENMEM_MAXIMUM_RAM_PAGE | (1 << MEMOP_EXTENT_SHIFT), 0, 0, 0, 0]), -22);
    assert_eq!(fingerprint(hv), before, "refused requests change nothing");
    let top = g.ret(hv, MEMORY_OP, [XENMEM_MAXIMUM_RAM_PAGE, 0, 0, 0, 0]);
    assert_eq!(top as u64, RAM_BASE_MFN.0 + 16384, "one past the highest RAM frame");
    // A domU may not act on dom0's memory.
    let u = Guest::new(hv, 1, 4);
    reservation(1, 0, 0);
    u.put(hv, ARG, &XenMemoryReservation { extent_start: ARRAY, nr_extents: 1, domid: 0, ..Default::default() });
    assert_eq!(u.ret(hv, MEMORY_OP, [XENMEM_DECREASE_RESERVATION, ARG, 0, 0, 0]), 0);
    u.put(hv, ARG, &0u16);
    assert_eq!(u.ret(hv, MEMORY_OP, [XENMEM_CURRENT_RESERVATION, ARG, 0, 0, 0]), -1);
    clean(hv);
}
