//! Stage-2 P2M behaviour on the simulated machine.

use granite::hv::Options;
use granite::p2m::{Mapping, ORDER_1G, ORDER_2M, P2mType};
use granite::testing::HostMachine;
use granite::tlb::{Recorder, TlbEvent};
use granite::types::{Errno, Gfn, Mfn};
use std::sync::Arc;

fn machine(ipa: u32) -> (HostMachine, Arc<Recorder>) {
    let rec = Recorder::new();
    (HostMachine::new(4096, ipa, rec.clone(), Options::default()), rec)
}

#[test]
fn single_pages_map_and_unmap() {
    let (m, _) = machine(40);
    let hv = &m.hv;
    let d = hv.create_domain(hv.domain_config(1)).unwrap();
    let mut w = d.p2m.write(&hv.mm);
    assert_eq!(w.lookup(Gfn(0x1234)), None);
    w.insert(Gfn(0x1234), 1, Mfn(0x9_0000), P2mType::RamRw).unwrap();
    assert_eq!(w.lookup(Gfn(0x1234)), Some(Mapping { mfn: Mfn(0x9_0000), ty: P2mType::RamRw, order: 0 }));
    assert_eq!(w.lookup(Gfn(0x1235)), None);
    w.remove(Gfn(0x1234), 1).unwrap();
    assert_eq!(w.lookup(Gfn(0x1234)), None);
    assert_eq!(w.stats().leaves, [0; 4]);
}

#[test]
fn aligned_ranges_use_blocks_and_partial_changes_split_them() {
    let (m, _) = machine(44);
    let hv = &m.hv;
    let d = hv.create_domain(hv.domain_config(1)).unwrap();
    let mut w = d.p2m.write(&hv.mm);
    // 1 GiB + 2 MiB + 3 pages, all aligned at the start.
    let (g, mfn) = (Gfn(0x4_0000), Mfn(0x10_0000));
    let n = (1 << ORDER_1G) + (1 << ORDER_2M) + 3;
    w.insert(g, n, mfn, P2mType::RamRw).unwrap();
    assert_eq!(w.lookup(g).unwrap().order, ORDER_1G);
    assert_eq!(w.lookup(g.add(1 << ORDER_1G)).unwrap().order, ORDER_2M);
    assert_eq!(w.lookup(g.add((1 << ORDER_1G) + (1 << ORDER_2M) + 2)).unwrap().order, 0);
    assert_eq!(w.stats().leaves, [0, 1, 1, 3]);
    // Every frame translates linearly.
    for off in [0, 1, 511, 512, 0x3_ffff, 0x4_0000, 0x4_01ff, 0x4_0202] {
        assert_eq!(w.lookup(g.add(off)).unwrap().mfn, mfn.add(off), "offset {off:#x}");
    }
    // Remove one page in the middle of the 1 GiB block: it is split down to 4 KiB there
    // and the rest stays mapped.
    w.remove(g.add(0x1_2345), 1).unwrap();
    assert_eq!(w.lookup(g.add(0x1_2345)), None);
    let around = w.lookup(g.add(0x1_2344)).unwrap();
    assert_eq!((around.mfn, around.order), (mfn.add(0x1_2344), 0));
    assert_eq!(w.lookup(g.add(0x1_2600)).unwrap().order, ORDER_2M, "other 2 MiB parts stay blocks");
    assert_eq!(w.lookup(g.add(0x3_0000)).unwrap().mfn, mfn.add(0x3_0000));
    // Changing the type of one page of a 2 MiB block splits it too.
    w.insert(g.add(0x4_0001), 1, mfn.add(0x4_0001), P2mType::RamRo).unwrap();
    assert_eq!(w.lookup(g.add(0x4_0001)).unwrap().ty, P2mType::RamRo);
    assert_eq!(w.lookup(g.add(0x4_0002)).unwrap().ty, P2mType::RamRw);
    // Unaligned MFN: only 4 KiB pages.
    w.insert(Gfn(0x200), 512, Mfn(0x801), P2mType::RamRw).unwrap();
    assert_eq!(w.lookup(Gfn(0x3ff)).unwrap(), Mapping { mfn: Mfn(0x801 + 511), ty: P2mType::RamRw, order: 0 });
}

#[test]
fn gfns_beyond_the_ipa_size_are_rejected() {
    for (ipa, root_pages) in [(40, 2), (44, 1), (48, 1)] {
        let (m, _) = machine(ipa);
        let hv = &m.hv;
        assert_eq!(hv.stage.root_pages(), root_pages);
        let d = hv.create_domain(hv.domain_config(1)).unwrap();
        let mut w = d.p2m.write(&hv.mm);
        let limit = 1u64 << (ipa - 12);
        w.insert(Gfn(limit - 1), 1, Mfn(1), P2mType::RamRw).unwrap();
        assert_eq!(w.lookup(Gfn(limit - 1)).unwrap().mfn, Mfn(1));
        assert_eq!(w.insert(Gfn(limit), 1, Mfn(1), P2mType::RamRw), Err(Errno::EINVAL));
        assert_eq!(w.insert(Gfn(limit - 1), 2, Mfn(1), P2mType::RamRw), Err(Errno::EINVAL));
        assert_eq!(w.insert(Gfn(u64::MAX), 1, Mfn(1), P2mType::RamRw), Err(Errno::EINVAL));
        assert_eq!(w.remove(Gfn(limit), 1), Err(Errno::EINVAL));
        assert_eq!(w.lookup(Gfn(limit)), None);
        assert_eq!(w.lookup(Gfn(u64::MAX)), None);
        // The top-of-IPA entry did not alias onto GFN 0 (XSA-301 style).
        assert_eq!(w.lookup(Gfn(0)), None);
    }
}

#[test]
fn removal_flush_is_deferred_but_happens_before_unlock() {
    let (m, rec) = machine(40);
    let hv = &m.hv;
    let d = hv.create_domain(hv.domain_config(3)).unwrap();
    let vmid = d.p2m.vmid();
    let d2 = d.clone();
    rec.set_probe(Some(Arc::new(move || d2.p2m.is_write_locked())));
    d.p2m.write(&hv.mm).insert(Gfn(0x100), 1, Mfn(5), P2mType::RamRw).unwrap();
    rec.take();
    {
        let mut w = d.p2m.write(&hv.mm);
        w.remove(Gfn(0x100), 1).unwrap();
        assert!(rec.take().is_empty(), "the removal flush is deferred");
        w.remove(Gfn(0x101), 1).unwrap(); // nothing mapped: no flush needed for it
    }
    assert_eq!(rec.take(), vec![TlbEvent::All { vmid, locked: Some(true) }], "one flush, lock still held");

    // Replacing a live entry flushes that range at once (break-before-make).
    d.p2m.write(&hv.mm).insert(Gfn(0x100), 1, Mfn(5), P2mType::RamRw).unwrap();
    rec.take();
    {
        let mut w = d.p2m.write(&hv.mm);
        w.insert(Gfn(0x100), 1, Mfn(6), P2mType::RamRw).unwrap();
        assert_eq!(rec.take(), vec![TlbEvent::Range { vmid, ipa: 0x100 << 12, len: 4096, locked: Some(true) }]);
    }
    assert!(rec.take().is_empty(), "nothing left to flush at unlock");

    // Splitting a live block is break-before-make on the block's range.
    d.p2m.write(&hv.mm).insert(Gfn(0x200), 512, Mfn(0x200), P2mType::RamRw).unwrap();
    rec.take();
    d.p2m.write(&hv.mm).insert(Gfn(0x210), 1, Mfn(0x777), P2mType::RamRw).unwrap();
    let ev = rec.take();
    assert_eq!(ev[0], TlbEvent::Range { vmid, ipa: 0x200 << 12, len: 2 << 20, locked: Some(true) });
}

#[test]
fn dropping_entries_clears_xenheap_gfns_and_releases_foreign_references() {
    let (m, _) = machine(40);
    let hv = &m.hv;
    let (d1, d2) = (hv.create_domain(hv.domain_config(1)).unwrap(), hv.create_domain(hv.domain_config(2)).unwrap());
    let frame = d1.grant.read().frame(0).unwrap();
    let ft = &hv.mm.frames;
    // Mapped as RAM at G: record the GFN like add_to_physmap does.
    {
        let mut w = d1.p2m.write(&hv.mm);
        w.insert(Gfn(0x500), 1, frame, P2mType::RamRw).unwrap();
        ft.set_xenheap_gfn(frame, Some(Gfn(0x500)), &w);
        // rw -> ro at the same GFN keeps the page mapped: the GFN stays.
        w.insert(Gfn(0x500), 1, frame, P2mType::RamRo).unwrap();
        assert_eq!(ft.xenheap_gfn(frame, &w), Some(Gfn(0x500)));
        // Replacing it with something else drops it: the GFN is cleared.
        w.insert(Gfn(0x500), 1, Mfn(0x9999), P2mType::MmioDirectDev).unwrap();
        assert_eq!(ft.xenheap_gfn(frame, &w), None);
    }
    // A foreign mapping holds a page reference that its removal gives back.
    let page = hv.mm.alloc_domheap(2, 0).unwrap();
    assert_eq!(ft.page(page).unwrap().refcount(), 1);
    assert!(hv.mm.get_page(page, 2));
    d1.p2m.write(&hv.mm).insert(Gfn(0x600), 1, page, P2mType::MapForeignRw).unwrap();
    assert_eq!(ft.page(page).unwrap().refcount(), 2);
    d1.p2m.write(&hv.mm).remove(Gfn(0x600), 1).unwrap();
    assert_eq!(ft.page(page).unwrap().refcount(), 1);
    // Foreign pages map 4 KiB at a time even for aligned ranges.
    let _ = d2;
}

#[test]
fn relinquish_frees_every_table_and_clears_gfns() {
    let (m, _) = machine(48);
    let hv = &m.hv;
    let free0 = hv.mm.heap.free_frames();
    let d = hv.create_domain(hv.domain_config(1)).unwrap();
    let frame = d.grant.read().frame(0).unwrap();
    {
        let mut w = d.p2m.write(&hv.mm);
        for i in 0..100 {
            w.insert(Gfn(i * 0x1_0000 + 7), 1, Mfn(0x20 + i), P2mType::RamRw).unwrap();
        }
        w.insert(Gfn(0x8000_0000), 1 << ORDER_1G, Mfn(0x4000_0000), P2mType::MmioDirectC).unwrap();
        w.insert(Gfn(0x77), 1, frame, P2mType::RamRw).unwrap();
        hv.mm.frames.set_xenheap_gfn(frame, Some(Gfn(0x77)), &w);
        assert!(w.stats().table_pages > 100);
    }
    {
        let mut w = d.p2m.write(&hv.mm);
        w.relinquish();
        assert_eq!(w.stats().table_pages, 0);
        assert_eq!(w.stats().leaves, [0; 4]);
        assert_eq!(hv.mm.frames.xenheap_gfn(frame, &w), None);
        assert_eq!(w.insert(Gfn(1), 1, Mfn(1), P2mType::RamRw), Err(Errno::ENOMEM), "dying: no new mappings");
    }
    // domain pages (grant frame, shared_info) remain until the domain is destroyed
    hv.destroy_domain(&d);
    assert!(hv.domain_any_state(1).is_none(), "finalised");
    assert_eq!(hv.mm.heap.free_frames(), free0, "every frame returned");
    assert_eq!(hv.mm.audit.stale_gfn_frees.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn table_page_limit_bounds_what_a_guest_can_allocate() {
    let (m, _) = machine(44);
    let hv = &m.hv;
    let mut cfg = hv.domain_config(1);
    cfg.p2m_table_limit = 5;
    let d = hv.create_domain(cfg).unwrap();
    let mut w = d.p2m.write(&hv.mm);
    let mut ok = 0;
    for i in 0..10u64 {
        match w.insert(Gfn(i << 27), 1, Mfn(1), P2mType::RamRw) {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(e, Errno::ENOMEM),
        }
    }
    assert_eq!(w.stats().table_pages, 5);
    assert!((1..10).contains(&ok));
}

#[test]
fn tlb_recorder_sees_new_vmid_flush_and_vmids_differ() {
    let (m, rec) = machine(40);
    let hv = &m.hv;
    let a = hv.create_domain(hv.domain_config(1)).unwrap();
    let b = hv.create_domain(hv.domain_config(2)).unwrap();
    assert_ne!(a.p2m.vmid(), b.p2m.vmid());
    assert_ne!(a.p2m.vmid(), 0);
    let ev = rec.take();
    assert!(ev.contains(&TlbEvent::All { vmid: a.p2m.vmid(), locked: None }));
    assert_eq!(a.p2m.vttbr() >> 48, a.p2m.vmid() as u64);
}
