//! Grant mappings between domains: map/unmap, read-only, copy, revocation, teardown.

use granite::audit::audit;
use granite::hv::Options;
use granite::p2m::P2mType;
use granite::testing::*;
use granite::tlb::NoTlb;
use std::sync::Arc;
use xen_abi::gnttab::*;
use xen_abi::*;

const HOST: u64 = 0x8000_0000; // dom0 maps grants here

fn two() -> (HostMachine, Guest, Guest) {
    let m = HostMachine::new(8192, 40, Arc::new(NoTlb), Options::default());
    let dom0 = Guest::new(&m.hv, 0, 3);
    let domu = Guest::new(&m.hv, 7, 3);
    (m, dom0, domu)
}

fn clean(m: &HostMachine) {
    let r = audit(&m.hv);
    assert!(r.is_clean(), "audit: {:#?}", r.violations);
}

#[test]
fn map_read_write_unmap_round_trip() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let page = GUEST_RAM_GFN + 5;
    domu.put(hv, page << 12, &0x1122_3344_5566_7788u64);
    domu.write_grant(hv, 10, GTF_PERMIT_ACCESS, 0, page as u32);
    let op = dom0.map_grant(hv, 7, 10, GNTMAP_HOST_MAP, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    assert_eq!(op.dev_bus_addr, domu.ram.add(5).addr(), "dev_bus_addr is the machine address");
    let e = domu.read_grant(hv, 10);
    assert_eq!(e.flags, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    let mp = dom0.lookup(hv, HOST >> 12).unwrap();
    assert_eq!((mp.mfn, mp.ty), (domu.ram.add(5), P2mType::GrantMapRw));
    // dom0 reads the pattern and writes a reply through its mapping... (a grant mapping is not
    // a valid hypercall buffer, so it uses the physical map like its CPU would)
    let mut b = [0u8; 8];
    hv.mm.phys.read(mp.mfn.addr(), &mut b);
    assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
    hv.mm.phys.write(mp.mfn.addr() + 8, &0xabcdu64.to_le_bytes());
    assert_eq!(domu.get::<u64>(hv, (page << 12) + 8), 0xabcd);
    assert_eq!(hv.mm.frames.page(domu.ram.add(5)).unwrap().refcount(), 2, "the mapping holds a reference");
    clean(&m);
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_OKAY);
    assert_eq!(dom0.lookup(hv, HOST >> 12), None);
    assert_eq!(domu.read_grant(hv, 10).flags, GTF_PERMIT_ACCESS, "reading/writing cleared");
    assert_eq!(hv.mm.frames.page(domu.ram.add(5)).unwrap().refcount(), 1);
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_BAD_HANDLE, "handle is gone");
    clean(&m);
}

#[test]
fn read_only_grants_and_mappings() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let page = (GUEST_RAM_GFN + 2) as u32;
    domu.write_grant(hv, 11, GTF_PERMIT_ACCESS | GTF_READONLY, 0, page);
    assert_eq!(
        dom0.map_grant(hv, 7, 11, GNTMAP_HOST_MAP, HOST).status,
        GNTST_GENERAL_ERROR,
        "write map of a r/o grant"
    );
    assert_eq!(domu.read_grant(hv, 11).flags, GTF_PERMIT_ACCESS | GTF_READONLY, "no flag left behind");
    let op = dom0.map_grant(hv, 7, 11, GNTMAP_HOST_MAP | GNTMAP_READONLY, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    assert_eq!(domu.read_grant(hv, 11).flags, GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
    let mp = dom0.lookup(hv, HOST >> 12).unwrap();
    assert_eq!(mp.ty, P2mType::GrantMapRo);
    // A second, read-only mapping of the same grant.
    let op2 = dom0.map_grant(hv, 7, 11, GNTMAP_HOST_MAP | GNTMAP_READONLY, HOST + 0x1000);
    assert_eq!(op2.status, GNTST_OKAY);
    assert_ne!(op.handle, op2.handle);
    clean(&m);
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_OKAY);
    assert_eq!(domu.read_grant(hv, 11).flags & GTF_READING, GTF_READING, "still mapped once");
    assert_eq!(dom0.unmap_grant(hv, op2.handle, HOST + 0x1000), GNTST_OKAY);
    assert_eq!(domu.read_grant(hv, 11).flags, GTF_PERMIT_ACCESS | GTF_READONLY);
    clean(&m);
}

#[test]
fn map_errors_are_xens() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let page = (GUEST_RAM_GFN + 1) as u32;
    domu.write_grant(hv, 3, GTF_PERMIT_ACCESS, 0, page);
    domu.write_grant(hv, 4, GTF_PERMIT_ACCESS, 9, page); // granted to someone else
    domu.write_grant(hv, 5, GTF_PERMIT_ACCESS, 0, 0x1234); // frame not mapped in domU
    domu.write_grant(hv, 6, GTF_PERMIT_ACCESS | GTF_PCD, 0, page); // cache attributes
    let cases = [
        ("no map flag", 7u16, 3u32, 0u32, GNTST_BAD_GNTREF),
        ("device map", 7, 3, GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP, GNTST_GENERAL_ERROR),
        ("application map", 7, 3, GNTMAP_HOST_MAP | GNTMAP_APPLICATION_MAP, GNTST_GENERAL_ERROR),
        ("contains pte", 7, 3, GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE, GNTST_GENERAL_ERROR),
        ("bad domain", 99, 3, GNTMAP_HOST_MAP, GNTST_BAD_DOMAIN),
        ("DOMID_SELF", DOMID_SELF, 3, GNTMAP_HOST_MAP, GNTST_BAD_DOMAIN),
        ("bad ref", 7, 512, GNTMAP_HOST_MAP, GNTST_BAD_GNTREF),
        ("not granted to us", 7, 4, GNTMAP_HOST_MAP, GNTST_GENERAL_ERROR),
        ("invalid entry", 7, 9, GNTMAP_HOST_MAP, GNTST_GENERAL_ERROR),
        ("unmapped frame", 7, 5, GNTMAP_HOST_MAP, GNTST_BAD_PAGE),
        ("cache attributes", 7, 6, GNTMAP_HOST_MAP, GNTST_GENERAL_ERROR),
        ("guest avail bits", 7, 3, GNTMAP_HOST_MAP | 1 << 16, GNTST_GENERAL_ERROR),
    ];
    for (name, dom, gref, flags, want) in cases {
        let before = fingerprint(hv);
        let op = dom0.map_grant(hv, dom, gref, flags, HOST);
        assert_eq!(op.status, want, "{name}");
        assert_eq!(op.handle, 0xdead, "{name}: no handle on failure");
        assert_eq!(fingerprint(hv), before, "{name}: state changed");
    }
    // host_addr beyond the IPA: the pin is undone.
    let op = dom0.map_grant(hv, 7, 3, GNTMAP_HOST_MAP, 1 << 50);
    assert_eq!(op.status, GNTST_GENERAL_ERROR);
    assert_eq!(domu.read_grant(hv, 3).flags, GTF_PERMIT_ACCESS);
    assert_eq!(dom0.unmap_grant(hv, 12345, HOST), GNTST_BAD_HANDLE);
    clean(&m);
}

#[test]
fn a_grant_revoked_while_mapped_stays_mapped_until_unmapped() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let page = (GUEST_RAM_GFN + 6) as u32;
    domu.write_grant(hv, 20, GTF_PERMIT_ACCESS, 0, page);
    let op = dom0.map_grant(hv, 7, 20, GNTMAP_HOST_MAP, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    // The granter brutally clears its entry (a well-behaved one would see GTF_reading set).
    domu.write_grant(hv, 20, 0, 0, 0);
    assert_eq!(dom0.lookup(hv, HOST >> 12).unwrap().mfn, domu.ram.add(6), "the mapping survives");
    // Re-granting the same ref to dom0 for another frame does not change the pinned frame.
    domu.write_grant(hv, 20, GTF_PERMIT_ACCESS, 0, page + 1);
    let op2 = dom0.map_grant(hv, 7, 20, GNTMAP_HOST_MAP, HOST + 0x1000);
    assert_eq!(op2.status, GNTST_OKAY);
    assert_eq!(op2.dev_bus_addr, domu.ram.add(6).addr(), "still the pinned frame");
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_OKAY);
    assert_eq!(dom0.unmap_grant(hv, op2.handle, HOST + 0x1000), GNTST_OKAY);
    clean(&m);
}

#[test]
fn unmap_checks_the_mapping_is_still_the_grant() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    domu.write_grant(hv, 1, GTF_PERMIT_ACCESS, 0, (GUEST_RAM_GFN + 1) as u32);
    let op = dom0.map_grant(hv, 7, 1, GNTMAP_HOST_MAP, HOST);
    // dom0 replaced its mapping at HOST by its own RAM: unmap of the grant fails there.
    dom0.d.p2m.write(&hv.mm).insert(granite::types::Gfn(HOST >> 12), 1, dom0.ram, P2mType::RamRw).unwrap();
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_GENERAL_ERROR);
    assert_eq!(dom0.lookup(hv, HOST >> 12).unwrap().mfn, dom0.ram, "dom0's page untouched");
    // host_addr 0: nothing to unmap, the handle stays.
    assert_eq!(dom0.unmap_grant(hv, op.handle, 0), GNTST_OKAY);
    assert!(dom0.d.grant.maptrack().get(op.handle).is_some());
}

#[test]
fn copy_between_frames_and_grants() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let (src, dst) = (GUEST_RAM_GFN + 4, GUEST_RAM_GFN + 5);
    domu.put(hv, (src << 12) + 100, &0x5555_aaaa_u32);
    domu.write_grant(hv, 2, GTF_PERMIT_ACCESS | GTF_READONLY, 0, src as u32);
    let ptr = |u, domid, offset| GnttabCopyPtr { u, domid, offset, _pad: 0 };
    // gref (domU) -> dom0 gmfn
    let s = dom0.grant_copy(
        hv,
        GnttabCopy {
            source: ptr(2, 7, 100),
            dest: ptr(GUEST_RAM_GFN + 2, DOMID_SELF, 8),
            len: 4,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        },
    );
    assert_eq!(s, GNTST_OKAY);
    assert_eq!(dom0.get::<u32>(hv, ((GUEST_RAM_GFN + 2) << 12) + 8), 0x5555_aaaa);
    assert_eq!(domu.read_grant(hv, 2).flags, GTF_PERMIT_ACCESS | GTF_READONLY, "copy pins only while copying");
    // into a read-only grant: refused
    let s = dom0.grant_copy(
        hv,
        GnttabCopy {
            source: ptr(GUEST_RAM_GFN + 2, DOMID_SELF, 0),
            dest: ptr(2, 7, 0),
            len: 4,
            flags: GNTCOPY_DEST_GREF,
            ..Default::default()
        },
    );
    assert_eq!(s, GNTST_GENERAL_ERROR);
    // domU copies within itself (gmfn -> gmfn)
    let s = domu.grant_copy(
        hv,
        GnttabCopy { source: ptr(src, DOMID_SELF, 100), dest: ptr(dst, DOMID_SELF, 0), len: 4, ..Default::default() },
    );
    assert_eq!(s, GNTST_OKAY);
    assert_eq!(domu.get::<u32>(hv, dst << 12), 0x5555_aaaa);
    let cases = [
        (
            "len 0 is ignored",
            GnttabCopy { source: ptr(0, 999, 0), dest: ptr(0, 999, 0), len: 0, ..Default::default() },
            GNTST_OKAY,
        ),
        (
            "beyond the page",
            GnttabCopy {
                source: ptr(src, DOMID_SELF, 4000),
                dest: ptr(dst, DOMID_SELF, 0),
                len: 100,
                ..Default::default()
            },
            GNTST_BAD_COPY_ARG,
        ),
        (
            "gmfn of another domain",
            GnttabCopy { source: ptr(src, 0, 0), dest: ptr(dst, DOMID_SELF, 0), len: 4, ..Default::default() },
            GNTST_PERMISSION_DENIED,
        ),
        (
            "bad domain",
            GnttabCopy {
                source: ptr(1, 99, 0),
                dest: ptr(dst, DOMID_SELF, 0),
                len: 4,
                flags: GNTCOPY_SOURCE_GREF,
                ..Default::default()
            },
            GNTST_BAD_DOMAIN,
        ),
        (
            "unmapped gmfn",
            GnttabCopy {
                source: ptr(0x10, DOMID_SELF, 0),
                dest: ptr(dst, DOMID_SELF, 0),
                len: 4,
                ..Default::default()
            },
            GNTST_BAD_PAGE,
        ),
        (
            "bad gref",
            GnttabCopy {
                source: ptr(100_000, 0, 0),
                dest: ptr(dst, DOMID_SELF, 0),
                len: 4,
                flags: GNTCOPY_SOURCE_GREF,
                ..Default::default()
            },
            GNTST_BAD_GNTREF,
        ),
    ];
    for (name, op, want) in cases {
        let before = fingerprint(hv);
        assert_eq!(domu.grant_copy(hv, op), want, "{name}");
        assert_eq!(fingerprint(hv), before, "{name}");
    }
    clean(&m);
}

#[test]
fn a_granter_that_dies_keeps_its_mapped_page_until_the_unmap() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let free_before_domu = hv.mm.heap.free_frames();
    let page = domu.ram.add(3);
    domu.write_grant(hv, 8, GTF_PERMIT_ACCESS, 0, (GUEST_RAM_GFN + 3) as u32);
    domu.put(hv, (GUEST_RAM_GFN + 3) << 12, &0x77u64);
    assert_eq!(domu.map_grant_frame(hv, 0, GUEST_GNTTAB_GFN), 0);
    let op = dom0.map_grant(hv, 7, 8, GNTMAP_HOST_MAP, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    hv.destroy_domain(&domu.d);
    assert!(hv.domain(7).is_none(), "no longer running");
    assert!(hv.domain_any_state(7).is_some(), "but not finalised: dom0 still maps its page");
    assert!(hv.mm.frames.is_in_use(page));
    let mut b = [0u8; 8];
    hv.mm.phys.read(page.addr(), &mut b);
    assert_eq!(u64::from_le_bytes(b), 0x77, "contents intact under dom0's mapping");
    clean(&m);
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_OKAY);
    assert!(hv.domain_any_state(7).is_none(), "finalised once dom0 unmapped");
    assert!(!hv.mm.frames.is_in_use(page));
    assert_eq!(hv.mm.pages_of(7).total(), 0);
    clean(&m);
    let _ = free_before_domu;
}

#[test]
fn a_mapper_that_dies_releases_its_grant_mappings() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    dom0.write_grant(hv, 9, GTF_PERMIT_ACCESS, 7, (GUEST_RAM_GFN + 1) as u32);
    let op = domu.map_grant(hv, 0, 9, GNTMAP_HOST_MAP, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    assert_eq!(dom0.read_grant(hv, 9).flags, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    let free0 = hv.mm.heap.free_frames();
    hv.destroy_domain(&domu.d);
    assert!(hv.domain_any_state(7).is_none(), "nothing of domU is referenced: finalised at once");
    assert_eq!(dom0.read_grant(hv, 9).flags, GTF_PERMIT_ACCESS, "pins released");
    assert_eq!(hv.mm.frames.page(dom0.ram.add(1)).unwrap().refcount(), 1);
    assert!(hv.mm.heap.free_frames() > free0 + 8, "domU's RAM, tables and frames came back");
    clean(&m);
}

#[test]
fn teardown_clears_mapped_grant_frame_gfns_before_freeing() {
    let m = HostMachine::new(8192, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let free0 = hv.mm.heap.free_frames();
    let g = Guest::new(hv, 3, 3);
    for i in 0..4 {
        assert_eq!(g.map_grant_frame(hv, i, GUEST_GNTTAB_GFN + i), 0);
    }
    assert_eq!(g.map_shared_info(hv, GUEST_GNTTAB_GFN + 10), 0);
    hv.destroy_domain(&g.d);
    assert!(hv.domain_any_state(3).is_none());
    assert_eq!(hv.mm.heap.free_frames(), free0, "every page came back");
    assert_eq!(hv.mm.audit.stale_gfn_frees.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn freeing_a_xenheap_page_with_its_gfn_set_is_counted_not_fatal() {
    // What the review of the seed patch asked: no BUG_ON, but the audit sees it.
    let m = HostMachine::new(1024, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 0);
    let f = hv.mm.alloc_xenheap().unwrap();
    hv.mm.share_with_guest(f, 1, false);
    {
        let w = g.d.p2m.write(&hv.mm);
        hv.mm.frames.set_xenheap_gfn(f, Some(granite::types::Gfn(0x42)), &w);
    }
    assert!(hv.mm.put_alloc_ref(f));
    assert_eq!(hv.mm.audit.stale_gfn_frees.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(!audit(hv).is_clean());
}

/// Found by the fuzz guest on Xen 4.17: an unmap naming the right handle but a GFN where
/// nothing is mapped "succeeds", releasing the pin and the page reference while the grant
/// stays mapped. Refused here: general_error, the handle and the mapping stay.
#[test]
fn unmap_at_an_empty_gfn_keeps_the_handle_and_the_mapping() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    domu.write_grant(hv, 4, GTF_PERMIT_ACCESS, 0, (GUEST_RAM_GFN + 2) as u32);
    let op = dom0.map_grant(hv, 7, 4, GNTMAP_HOST_MAP, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    let before = fingerprint(hv);
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST + 0x5000), GNTST_GENERAL_ERROR);
    assert_eq!(fingerprint(hv), before, "nothing released");
    assert_eq!(dom0.lookup(hv, HOST >> 12).unwrap().mfn, domu.ram.add(2));
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_OKAY);
    clean(&m);
}

/// Found by the fuzz guest on Xen 4.17 (where it leaves the frame's GFN stale for good): a
/// grant mapping that replaces a grant frame's own RAM mapping at the same GFN, with the
/// grant resolving to that very frame. The replaced RAM mapping is dropped, so the stored GFN
/// is cleared; the frame can be mapped again afterwards.
#[test]
fn a_grant_mapping_over_its_own_grant_frame_clears_the_stored_gfn() {
    let (m, dom0, _domu) = two();
    let hv = &m.hv;
    let v = GUEST_GNTTAB_GFN + 5;
    assert_eq!(dom0.map_grant_frame(hv, 1, v), 0);
    let frame1 = dom0.grant_frame_mfn(1);
    // dom0 grants its page at V (which is grant frame 1) to itself and maps it at V.
    dom0.write_grant(hv, 12, GTF_PERMIT_ACCESS, 0, v as u32);
    let op = dom0.map_grant(hv, 0, 12, GNTMAP_HOST_MAP, v << 12);
    assert_eq!(op.status, GNTST_OKAY);
    assert_eq!(op.dev_bus_addr, frame1.addr());
    assert_eq!(dom0.setup_table(hv, DOMID_SELF, 2).2[1], u64::MAX, "no longer RAM-mapped: GFN cleared");
    clean(&m);
    assert_eq!(dom0.unmap_grant(hv, op.handle, v << 12), GNTST_OKAY);
    assert_eq!(dom0.map_grant_frame(hv, 1, v + 1), 0, "the frame maps again, no stale -EBUSY");
    clean(&m);
}

/// GNTTABOP_cache_flush: the caller's own pages and pages it maps through a grant, Xen 4.17's
/// errnos for everything else, and the scan of the granter's table resumed across
/// continuations (its position in the command's upper bits).
#[test]
fn cache_flush_own_pages_and_mapped_grants() {
    use granite::hypercall::{self, Call, IdentityVa, Outcome};
    use granite::tlb::{CacheOp, Recorder, TlbEvent};
    use xen_abi::errno::*;
    let rec = Recorder::new();
    let m = HostMachine::new(8192, 40, rec.clone(), Options::default());
    let hv = &m.hv;
    let dom0 = Guest::new(hv, 0, 3);
    let domu = Guest::new(hv, 7, 3);
    let op = |a: u64, offset: u16, length: u16, op: u32| GnttabCacheFlush { a, offset, length, op };
    let flush = |ops: &[GnttabCacheFlush], cur_ref: u64| -> i64 {
        for (i, o) in ops.iter().enumerate() {
            dom0.put(hv, ARRAY + 16 * i as u64, o);
        }
        let cmd = GNTTABOP_CACHE_FLUSH | cur_ref << GNTTABOP_CONTINUATION_ARG_SHIFT;
        dom0.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [cmd, ARRAY, ops.len() as u64, 0, 0])
    };
    let dcache =
        || -> Vec<TlbEvent> { rec.take().into_iter().filter(|e| matches!(e, TlbEvent::Dcache { .. })).collect() };
    let own = dom0.ram.add(1).addr();
    let theirs = domu.ram.add(4).addr();

    // Its own page: the low 12 bits of the address are ignored; "invalidate" also cleans.
    assert_eq!(flush(&[op(own + 0x123, 64, 128, GNTTAB_CACHE_CLEAN)], 0), 0);
    assert_eq!(dcache(), [TlbEvent::Dcache { op: CacheOp::Clean, pa: own + 64, len: 128 }]);
    let both = GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL;
    assert_eq!(flush(&[op(own, 0, 4096, GNTTAB_CACHE_INVAL), op(own, 4095, 1, both)], 0), 0);
    assert_eq!(
        dcache(),
        [
            TlbEvent::Dcache { op: CacheOp::CleanInvalidate, pa: own, len: 4096 },
            TlbEvent::Dcache { op: CacheOp::CleanInvalidate, pa: own + 4095, len: 1 },
        ]
    );

    // Everything else, one class at a time: Xen's answer, and no maintenance.
    let xen_page = hv.mm.alloc_xenheap().unwrap().addr();
    let cases: [(GnttabCacheFlush, i64); 11] = [
        (op(own, 4096, 0, GNTTAB_CACHE_CLEAN), -EINVAL),
        (op(own, 0, 4097, GNTTAB_CACHE_CLEAN), -EINVAL),
        (op(own, 4000, 97, GNTTAB_CACHE_CLEAN), -EINVAL),
        (op(own, 0, 64, 1 << 2), -EINVAL),
        (op(own, 0, 64, GNTTAB_CACHE_SOURCE_GREF | GNTTAB_CACHE_CLEAN), -EINVAL),
        (op(own, 0, 0, GNTTAB_CACHE_CLEAN), 0),
        (op(own, 0, 64, 0), 0),
        (op(0x7f_0000_0000, 0, 64, GNTTAB_CACHE_CLEAN), -EINVAL),
        (op(xen_page, 0, 64, GNTTAB_CACHE_CLEAN), -EPERM),
        (op(theirs, 0, 64, GNTTAB_CACHE_CLEAN), -EINVAL),
        // A no-op that is not the operation a continuation was scanning for.
        (op(own, 0, 0, GNTTAB_CACHE_CLEAN), -EILSEQ),
    ];
    for (i, (o, want)) in cases.iter().enumerate() {
        let cur_ref = if i == cases.len() - 1 { 5 } else { 0 };
        assert_eq!(flush(&[*o], cur_ref), *want, "case {i}: {o:?}");
        assert_eq!(dcache(), [], "case {i}: no maintenance");
    }
    hv.mm.free_xenheap(granite::types::Mfn(xen_page >> 12));

    // The domU grants the page at a reference far into a full table, dom0 maps it: the scan
    // for dom0's mapping takes several steps, the first call ends in a continuation.
    {
        let mut st = domu.d.grant.write();
        domu.d.grant.grow(&hv.mm, &mut st, 64).unwrap();
    }
    let gref = 40 * 512 + 7;
    domu.write_grant(hv, gref, GTF_PERMIT_ACCESS, 0, (GUEST_RAM_GFN + 4) as u32);
    assert_eq!(flush(&[op(theirs, 0, 64, GNTTAB_CACHE_CLEAN)], 0), -EINVAL, "granted, not mapped");
    let map = dom0.map_grant(hv, 7, gref, GNTMAP_HOST_MAP, HOST);
    assert_eq!(map.status, GNTST_OKAY);
    dom0.put(hv, ARRAY, &op(theirs, 8, 32, GNTTAB_CACHE_CLEAN));
    let call = Call::new(hv, &dom0.d, 0, &IdentityVa);
    let mut args = [GNTTABOP_CACHE_FLUSH, ARRAY, 1, 0, 0];
    assert!(matches!(hypercall::hypercall(&call, xen_abi::hypercall::GRANT_TABLE_OP, &mut args), Outcome::Continue));
    let resumed_at = args[0] >> GNTTABOP_CONTINUATION_ARG_SHIFT;
    assert!(resumed_at > 0 && resumed_at <= gref as u64, "scan position {resumed_at} carried in the command");
    assert_eq!((args[0] & GNTTABOP_CMD_MASK, args[1], args[2]), (GNTTABOP_CACHE_FLUSH, ARRAY, 1));
    assert_eq!(dcache(), [], "nothing done before the mapping is found");
    assert_eq!(dom0.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, args), 0);
    assert_eq!(dcache(), [TlbEvent::Dcache { op: CacheOp::Clean, pa: theirs + 8, len: 32 }]);
    // The domU may flush its own page; after the unmap dom0 may not.
    assert_eq!(dom0.unmap_grant(hv, map.handle, HOST), GNTST_OKAY);
    assert_eq!(flush(&[op(theirs, 0, 64, GNTTAB_CACHE_CLEAN)], 0), -EINVAL, "unmapped");
    assert_eq!(dcache(), []);
    clean(&m);
}

/// XSA-382 guest (regression): a v1 table has no status frames; asking for none succeeds and
/// writes nothing, asking for any is Xen's general error, another domain's is refused.
#[test]
fn status_frames_of_a_v1_table_none_asked_none_given() {
    let m = HostMachine::new(1024, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let d1 = Guest::new(hv, 1, 4);
    let _d2 = Guest::new(hv, 2, 4);
    let ask = |nr_frames: u32, dom: u16| {
        d1.put(hv, ARRAY, &0x5a5a_5a5a_5a5a_5a5au64);
        d1.put(hv, ARG, &GnttabGetStatusFrames { nr_frames, dom, status: 99, frame_list: ARRAY });
        let rc = d1.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [GNTTABOP_GET_STATUS_FRAMES, ARG, 1, 0, 0]);
        (rc, d1.get::<GnttabGetStatusFrames>(hv, ARG).status, d1.get::<u64>(hv, ARRAY))
    };
    assert_eq!(ask(0, DOMID_SELF), (0, GNTST_OKAY, 0x5a5a_5a5a_5a5a_5a5a), "none asked: okay, nothing written");
    assert_eq!(ask(1, DOMID_SELF), (0, GNTST_GENERAL_ERROR, 0x5a5a_5a5a_5a5a_5a5a));
    assert_eq!(ask(u32::MAX, DOMID_SELF).1, GNTST_GENERAL_ERROR);
    assert_eq!(ask(0, 2).1, GNTST_PERMISSION_DENIED, "another domain's: not ours to ask");
    assert_eq!(ask(0, 77).1, GNTST_BAD_DOMAIN);
}

/// XSA-500 guest (regression): the granter rewrote the entry to another page after dom0
/// mapped it read-only. A copy into the grant must take the entry again for writing, and the
/// entry no longer names the pinned frame: refused, neither page touched. A copy out of it
/// reads through the read pin: the pinned frame, as Xen 4.17 answers. The mapping keeps the
/// frame it pinned.
#[test]
fn a_copy_through_a_pinned_grant_whose_entry_was_rewritten_is_refused() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let (old, new) = (GUEST_RAM_GFN + 5, GUEST_RAM_GFN + 6);
    domu.put(hv, old << 12, &0x0101_0101_0101_0101u64);
    domu.put(hv, new << 12, &0x0202_0202_0202_0202u64);
    domu.write_grant(hv, 12, GTF_PERMIT_ACCESS, 0, old as u32);
    let op = dom0.map_grant(hv, 7, 12, GNTMAP_HOST_MAP | GNTMAP_READONLY, HOST);
    assert_eq!(op.status, GNTST_OKAY);
    // The granter points the entry at another page while it is mapped.
    domu.write_grant(hv, 12, GTF_PERMIT_ACCESS | GTF_READING, 0, new as u32);
    let src = GUEST_RAM_GFN + 2;
    dom0.put(hv, src << 12, &0xdead_beef_dead_beefu64);
    let ptr = |u: u64, domid: u16| GnttabCopyPtr { u, domid, offset: 0, _pad: 0 };
    let into = GnttabCopy {
        source: ptr(src, DOMID_SELF),
        dest: ptr(12, 7),
        len: 8,
        flags: GNTCOPY_DEST_GREF,
        ..Default::default()
    };
    assert_eq!(dom0.grant_copy(hv, into), GNTST_GENERAL_ERROR, "copy into it");
    assert_eq!(domu.get::<u64>(hv, old << 12), 0x0101_0101_0101_0101, "the pinned page untouched");
    assert_eq!(domu.get::<u64>(hv, new << 12), 0x0202_0202_0202_0202, "the newly named page untouched");
    let from = GnttabCopy {
        source: ptr(12, 7),
        dest: ptr(src, DOMID_SELF),
        len: 8,
        flags: GNTCOPY_SOURCE_GREF,
        ..Default::default()
    };
    assert_eq!(dom0.grant_copy(hv, from), GNTST_OKAY, "copy out of it, through the read pin");
    assert_eq!(dom0.get::<u64>(hv, src << 12), 0x0101_0101_0101_0101, "from the pinned page");
    assert_eq!(domu.read_grant(hv, 12).flags & GTF_WRITING, 0, "no writing flag left behind");
    // The mapping still maps the page it pinned, and unmaps cleanly.
    assert_eq!(dom0.lookup(hv, HOST >> 12).map(|m| m.mfn), Some(domu.ram.add(5)));
    assert_eq!(dom0.unmap_grant(hv, op.handle, HOST), GNTST_OKAY);
    clean(&m);
}

/// XSA-473 guest (regression): a copy naming, as the caller's own frame, a GFN where the
/// caller maps another domain's page (a foreign mapping) is refused as a bad page, both ways.
#[test]
fn a_copy_from_or_to_a_foreign_mapping_is_a_bad_page() {
    let (m, dom0, domu) = two();
    let hv = &m.hv;
    let foreign_gfn = 0x9_0000;
    let (rc, errs) = dom0.batch(
        hv,
        DOMID_SELF,
        xen_abi::memory::XENMAPSPACE_GMFN_FOREIGN as u16,
        7,
        &[(GUEST_RAM_GFN + 5, foreign_gfn)],
    );
    assert_eq!((rc, errs), (0, vec![0]), "dom0 maps the domU's page");
    let ptr = |u: u64, domid: u16| GnttabCopyPtr { u, domid, offset: 0, _pad: 0 };
    let mine = GUEST_RAM_GFN + 2;
    let from =
        GnttabCopy { source: ptr(foreign_gfn, DOMID_SELF), dest: ptr(mine, DOMID_SELF), len: 8, ..Default::default() };
    assert_eq!(dom0.grant_copy(hv, from), GNTST_BAD_PAGE);
    let to =
        GnttabCopy { source: ptr(mine, DOMID_SELF), dest: ptr(foreign_gfn, DOMID_SELF), len: 8, ..Default::default() };
    assert_eq!(dom0.grant_copy(hv, to), GNTST_BAD_PAGE);
    let _ = domu;
    assert_eq!(dom0.remove(hv, DOMID_SELF, foreign_gfn), 0);
    clean(&m);
}
