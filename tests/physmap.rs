//! XENMEM_add_to_physmap / add_to_physmap_batch / remove_from_physmap and the grant-table
//! queries, driven through the real hypercall dispatch by a simulated guest.

use granite::audit::audit;
use granite::hv::Options;
use granite::hypercall::Outcome;
use granite::p2m::P2mType;
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::types::Gfn;
use std::sync::Arc;
use xen_abi::errno::*;
use xen_abi::gnttab::*;
use xen_abi::hypercall as hc;
use xen_abi::memory::*;
use xen_abi::*;

const G1: u64 = GUEST_GNTTAB_GFN;
const G2: u64 = GUEST_GNTTAB_GFN + 1;

fn setup(opts: Options) -> (HostMachine, Guest) {
    let m = HostMachine::new(8192, 40, Arc::new(NoTlb), opts);
    let g = Guest::new(&m.hv, 1, 4);
    (m, g)
}

fn clean(m: &HostMachine) {
    let r = audit(&m.hv);
    assert!(r.is_clean(), "audit: {:#?}", r.violations);
}

/// The bug the seed patch fixed: with the GFN kept in a side array that remove_from_physmap
/// left stale, mapping frame 0 again "removed its old GFN" — which by then held frame 1.
#[test]
fn seed_bug_remap_after_remove_keeps_the_unrelated_mapping() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    let (f0, f1) = (g.grant_frame_mfn(0), {
        assert_eq!(g.map_grant_frame(hv, 1, 0x3_9000), 0); // grow to 2 frames, park frame 1
        assert_eq!(g.remove(hv, DOMID_SELF, 0x3_9000), 0);
        g.grant_frame_mfn(1)
    });
    assert_eq!(g.map_grant_frame(hv, 0, G1), 0);
    assert_eq!(g.remove(hv, DOMID_SELF, G1), 0);
    assert_eq!(g.map_grant_frame(hv, 1, G1), 0);
    assert_eq!(g.map_grant_frame(hv, 0, G2), 0);
    assert_eq!(g.lookup(hv, G1).map(|m| m.mfn), Some(f1), "frame 1 is still mapped at G1");
    assert_eq!(g.lookup(hv, G2).map(|m| m.mfn), Some(f0), "frame 0 is now at G2");
    let (_, st, gfns) = g.setup_table(hv, DOMID_SELF, 2);
    assert_eq!((st, gfns), (GNTST_OKAY, vec![G2, G1]));
    clean(&m);
}

#[test]
fn a_mapped_frame_is_refused_with_ebusy_even_at_the_same_gfn() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    assert_eq!(g.map_grant_frame(hv, 0, G1), 0);
    assert_eq!(g.map_grant_frame(hv, 0, G2), -EBUSY);
    assert_eq!(g.map_grant_frame(hv, 0, G1), -EBUSY);
    assert_eq!(g.lookup(hv, G2), None, "nothing mapped by the refused call");
    assert_eq!(g.map_shared_info(hv, G2), 0);
    assert_eq!(g.map_shared_info(hv, G2 + 1), -EBUSY);
    assert_eq!(g.map_shared_info(hv, G2), -EBUSY);
    clean(&m);
}

#[test]
fn remove_from_physmap_clears_the_gfn_and_answers_like_xen() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    assert_eq!(g.remove(hv, DOMID_SELF, G1), -ENOENT, "nothing mapped");
    assert_eq!(g.map_grant_frame(hv, 0, G1), 0);
    assert_eq!(g.setup_table(hv, DOMID_SELF, 1).2, vec![G1]);
    assert_eq!(g.remove(hv, DOMID_SELF, G1), 0);
    assert_eq!(g.lookup(hv, G1), None);
    assert_eq!(g.setup_table(hv, DOMID_SELF, 1).2, vec![u64::MAX], "~0 once unmapped");
    assert_eq!(g.remove(hv, DOMID_SELF, G1), -ENOENT);
    // Removing the guest's own RAM works (the page stays allocated to it, as on Xen).
    assert_eq!(g.remove(hv, DOMID_SELF, GUEST_RAM_GFN + 9), 0);
    assert_eq!(g.lookup(hv, GUEST_RAM_GFN + 9), None);
    // The frame can be mapped again anywhere.
    assert_eq!(g.map_grant_frame(hv, 0, G2), 0);
    clean(&m);
}

#[test]
fn remove_checks_the_frame_under_the_lock() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    assert_eq!(g.map_grant_frame(hv, 0, G1), 0);
    let other = g.ram;
    let mut w = g.d.p2m.write(&hv.mm);
    assert_eq!(w.remove_checked(Gfn(G1), other), Err(granite::types::Errno::EILSEQ));
    assert!(w.lookup(Gfn(G1)).is_some(), "a mismatching removal changes nothing");
    // Non-RAM entries are removed without the check.
    w.insert(Gfn(G2), 1, granite::types::Mfn(0x9000), P2mType::MmioDirectDev).unwrap();
    assert_eq!(w.remove_checked(Gfn(G2), other), Ok(()));
}

#[test]
fn shared_info_map_double_map_remove_remap() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    assert_eq!(g.add_to_physmap(hv, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 1, G1), -EINVAL);
    assert_eq!(g.map_shared_info(hv, G1), 0);
    assert_eq!(g.lookup(hv, G1).unwrap().mfn, g.d.shared_info);
    assert_eq!(g.map_shared_info(hv, G2), -EBUSY);
    assert_eq!(g.remove(hv, DOMID_SELF, G1), 0);
    assert_eq!(g.map_shared_info(hv, G2), 0);
    assert_eq!(g.lookup(hv, G2).unwrap().mfn, g.d.shared_info);
    clean(&m);
}

#[test]
fn grant_table_grows_on_demand_up_to_its_maximum() {
    let (m, g) = setup(Options { max_grant_frames: 8, ..Options::default() });
    let hv = &m.hv;
    assert_eq!(g.query_size(hv, DOMID_SELF), (0, GNTST_OKAY, 1, 8));
    assert_eq!(g.map_grant_frame(hv, 3, G1 + 3), 0, "a higher index grows the table");
    assert_eq!(g.query_size(hv, DOMID_SELF).2, 4);
    for i in 0..8 {
        let r = g.map_grant_frame(hv, i, G1 + i);
        assert_eq!(r, if i == 3 { -EBUSY } else { 0 }, "frame {i}");
    }
    assert_eq!(g.query_size(hv, DOMID_SELF).2, 8);
    assert_eq!(g.map_grant_frame(hv, 8, G1 + 8), -EINVAL, "beyond max_grant_frames");
    assert_eq!(g.map_grant_frame(hv, XENMAPIDX_GRANT_TABLE_STATUS, G1 + 9), -EINVAL, "no status frames in v1");
    assert_eq!(g.query_size(hv, DOMID_SELF).2, 8);
    // setup_table grows too, and refuses more than the maximum.
    let (m2, g2) = setup(Options { max_grant_frames: 8, ..Options::default() });
    assert_eq!(g2.setup_table(&m2.hv, DOMID_SELF, 5).1, GNTST_OKAY);
    assert_eq!(g2.query_size(&m2.hv, DOMID_SELF).2, 5);
    assert_eq!(g2.setup_table(&m2.hv, DOMID_SELF, 9).1, GNTST_GENERAL_ERROR);
    clean(&m);
    clean(&m2);
}

#[test]
fn setup_table_reports_the_stored_gfn_or_invalid() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    assert_eq!(g.setup_table(hv, DOMID_SELF, 3), (0, GNTST_OKAY, vec![u64::MAX; 3]));
    assert_eq!(g.map_grant_frame(hv, 1, G2), 0);
    assert_eq!(g.setup_table(hv, DOMID_SELF, 3).2, vec![u64::MAX, G2, u64::MAX]);
    assert_eq!(g.setup_table(hv, 1234, 1).1, GNTST_BAD_DOMAIN);
    // A frame list the guest cannot write: bad_virt_addr.
    g.put(hv, ARG, &GnttabSetupTable { dom: DOMID_SELF, nr_frames: 1, frame_list: 0x10_0000, ..Default::default() });
    assert_eq!(g.ret(hv, hc::GRANT_TABLE_OP, [GNTTABOP_SETUP_TABLE, ARG, 1, 0, 0]), 0);
    assert_eq!(g.get::<GnttabSetupTable>(hv, ARG).status, GNTST_BAD_VIRT_ADDR);
    clean(&m);
}

#[test]
fn batch_reports_per_entry_errors() {
    let (m, g) = setup(Options { max_grant_frames: 4, ..Options::default() });
    let hv = &m.hv;
    let entries = [(0, G1), (0, G2), (1, G2), (9, G2 + 1), (2, 1 << 40), (2, u64::MAX - 1), (3, G2 + 2)];
    let (rc, errs) = g.batch(hv, DOMID_SELF, XENMAPSPACE_GRANT_TABLE as u16, 0, &entries);
    assert_eq!(rc, 0);
    assert_eq!(errs, vec![0, -EBUSY as i32, 0, -EINVAL as i32, -EINVAL as i32, -EINVAL as i32, 0]);
    assert_eq!(g.lookup(hv, G2 + 2).unwrap().mfn, g.grant_frame_mfn(3));
    // INVALID_GFN ends the whole call (Xen 4.17): earlier entries done, that one and the
    // rest left unwritten.
    let (rc, errs) =
        g.batch(hv, DOMID_SELF, XENMAPSPACE_SHARED_INFO as u16, 0, &[(0, 0x7_0000), (0, u64::MAX), (0, 0x7_0001)]);
    assert_eq!(rc, -EINVAL);
    assert_eq!(errs, vec![0, 0x5a5a_5a5a, 0x5a5a_5a5a]);
    assert_eq!(g.remove(hv, DOMID_SELF, 0x7_0000), 0);
    let (rc, _) = g.batch(hv, DOMID_SELF, XENMAPSPACE_GMFN_RANGE as u16, 0, &[(0, G1)]);
    assert_eq!(rc, -EOPNOTSUPP);
    let (rc, _) = g.batch(hv, DOMID_SELF, XENMAPSPACE_GRANT_TABLE as u16, 0, &[]);
    assert_eq!(rc, 0);
    let (rc, _) = g.batch(hv, DOMID_SELF, XENMAPSPACE_DEV_MMIO as u16, 1, &[(0x9000, G1)]);
    assert_eq!(rc, -EACCES, "dev_mmio is for the hardware domain only");
    // A long batch goes through continuations and still reports every entry.
    let many: Vec<(u64, u64)> = (0..150).map(|i| (0, 0x5_0000 + i)).collect();
    let (rc, errs) = g.batch(hv, DOMID_SELF, XENMAPSPACE_SHARED_INFO as u16, 0, &many);
    assert_eq!(rc, 0);
    assert_eq!(errs[0], 0);
    assert!(errs[1..].iter().all(|&e| e == -EBUSY as i32));
    clean(&m);
}

#[test]
fn continuation_of_a_batch_resumes_where_it_stopped() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    let many: Vec<(u64, u64)> = (0..100).map(|i| (0, 0x6_0000 + i)).collect();
    // Write the batch by hand and run a single trap.
    let _ = g.batch(hv, DOMID_SELF, XENMAPSPACE_SHARED_INFO as u16, 0, &[]);
    let n = many.len() as u64;
    for (i, &(idx, gfn)) in many.iter().enumerate() {
        g.put(hv, ARRAY + 8 * i as u64, &idx);
        g.put(hv, ARRAY + 8 * n + 8 * i as u64, &gfn);
    }
    let b = XenAddToPhysmapBatch {
        domid: DOMID_SELF,
        space: XENMAPSPACE_SHARED_INFO as u16,
        size: n as u16,
        u: 0,
        idxs: ARRAY,
        gpfns: ARRAY + 8 * n,
        errs: ARRAY + 16 * n,
    };
    g.put(hv, ARG, &b);
    let call = granite::hypercall::Call::new(hv, &g.d, 0, &granite::hypercall::IdentityVa);
    let mut args = [XENMEM_ADD_TO_PHYSMAP_BATCH, ARG, 0, 0, 0];
    assert_eq!(granite::hypercall::hypercall(&call, hc::MEMORY_OP, &mut args), Outcome::Continue);
    assert_eq!(args[0] & MEMOP_CMD_MASK, XENMEM_ADD_TO_PHYSMAP_BATCH);
    let next = args[0] >> MEMOP_EXTENT_SHIFT;
    assert!(next > 0 && next < n);
    assert_eq!(granite::hypercall::hypercall(&call, hc::MEMORY_OP, &mut args), Outcome::Return(0));
    // A forged start extent beyond the size is refused.
    let mut bad = [XENMEM_ADD_TO_PHYSMAP_BATCH | ((n + 1) << MEMOP_EXTENT_SHIFT), ARG, 0, 0, 0];
    assert_eq!(granite::hypercall::hypercall(&call, hc::MEMORY_OP, &mut bad), Outcome::Return(-EILSEQ));
}

/// Each class of bad argument gets Xen's errno and changes nothing.
#[test]
fn bad_input_gets_xens_errno_and_leaves_state_unchanged() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    let other = Guest::new(hv, 2, 2);
    assert_eq!(g.map_grant_frame(hv, 0, G1), 0);
    let xatp = |domid, space, idx, gpfn| XenAddToPhysmap { domid, size: 0, space, idx, gpfn };
    let ram_end = (GUEST_RAM_GFN + g.pages) << 12;
    type Case = (&'static str, u64, [u64; 5], Option<XenAddToPhysmap>, i64);
    let cases: Vec<Case> = vec![
        ("unknown hypercall", 0, [0; 5], None, -ENOSYS),
        ("unknown hypercall 100", 100, [0; 5], None, -ENOSYS),
        ("unknown memory op", hc::MEMORY_OP, [62, ARG, 0, 0, 0], None, -ENOSYS),
        ("unknown grant op", hc::GRANT_TABLE_OP, [99, ARG, 1, 0, 0], None, -ENOSYS),
        ("grant transfer", hc::GRANT_TABLE_OP, [GNTTABOP_TRANSFER, ARG, 1, 0, 0], None, -EOPNOTSUPP),
        ("negative count", hc::GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, ARG, 0x8000_0000, 0, 0], None, -EINVAL),
        ("query_size count 2", hc::GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, ARG, 2, 0, 0], None, -EINVAL),
        ("opaque bits", hc::GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE | 1 << 12, ARG, 1, 0, 0], None, -EINVAL),
        ("arg pointer unmapped", hc::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, 0x1000, 0, 0, 0], None, -EFAULT),
        ("arg pointer beyond IPA", hc::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, 1 << 45, 0, 0, 0], None, -EFAULT),
        ("arg pointer at top of VA", hc::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, u64::MAX - 3, 0, 0, 0], None, -EFAULT),
        ("arg straddles RAM end", hc::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, ram_end - 8, 0, 0, 0], None, -EFAULT),
        (
            "arg in a grant mapping frame",
            hc::MEMORY_OP,
            [XENMEM_REMOVE_FROM_PHYSMAP, 0x9999_0000, 0, 0, 0],
            None,
            -EFAULT,
        ),
        ("start extent on add", hc::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP | 1 << 30, ARG, 0, 0, 0], None, -EDOM),
        ("start extent on remove", hc::MEMORY_OP, [XENMEM_REMOVE_FROM_PHYSMAP | 1 << 6, ARG, 0, 0, 0], None, -EINVAL),
        (
            "bad domid",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(1234, XENMAPSPACE_GRANT_TABLE, 0, G2)),
            -ESRCH,
        ),
        (
            "DOMID_IO",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_IO, XENMAPSPACE_GRANT_TABLE, 0, G2)),
            -ESRCH,
        ),
        (
            "other domain, unprivileged",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(2, XENMAPSPACE_GRANT_TABLE, 0, G2)),
            -EPERM,
        ),
        (
            "gmfn space",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_GMFN, 0, G2)),
            -ENOSYS,
        ),
        (
            "gmfn_range space",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(XenAddToPhysmap { size: 3, ..xatp(DOMID_SELF, XENMAPSPACE_GMFN_RANGE, 0, G2) }),
            -ENOSYS,
        ),
        (
            "foreign space single",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_GMFN_FOREIGN, 0, G2)),
            -ENOSYS,
        ),
        (
            "unknown space",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, 77, 0, G2)),
            -ENOSYS,
        ),
        (
            "dev_mmio by a domU",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_DEV_MMIO, 0x9000, G2)),
            -EACCES,
        ),
        (
            "gfn beyond IPA",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, 1 << 28)),
            -EINVAL,
        ),
        (
            "gfn INVALID",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, u64::MAX)),
            -EINVAL,
        ),
        (
            "grant idx beyond max",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, 64, G2)),
            -EINVAL,
        ),
        (
            "grant idx huge",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, u64::MAX, G2)),
            -EINVAL,
        ),
        (
            "frame already mapped",
            hc::MEMORY_OP,
            [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0],
            Some(xatp(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, 0, G2)),
            -EBUSY,
        ),
    ];
    for (name, op, args, xatp, want) in cases {
        if let Some(x) = xatp {
            g.put(hv, ARG, &x);
        }
        let before = fingerprint(hv);
        let got = g.ret(hv, op, args);
        assert_eq!(got, want, "{name}: got {got} want {want}");
        assert_eq!(fingerprint(hv), before, "{name}: state changed");
    }
    // remove_from_physmap of another domain without privilege; of a bad domain.
    for (domid, want) in [(2u16, -EPERM), (1234, -ESRCH)] {
        let before = fingerprint(hv);
        assert_eq!(g.remove(hv, domid, GUEST_RAM_GFN), want);
        assert_eq!(fingerprint(hv), before);
    }
    let _ = other;
    clean(&m);
}

#[test]
fn hypercall_arguments_may_live_in_the_guests_own_grant_frame() {
    // Xen copies arguments from any RAM page the domain owns, its mapped grant frames too.
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    assert_eq!(g.map_grant_frame(hv, 0, G1), 0);
    let q = GnttabQuerySize { dom: DOMID_SELF, status: 99, ..Default::default() };
    g.put(hv, G1 << 12, &q);
    assert_eq!(g.ret(hv, hc::GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, G1 << 12, 1, 0, 0]), 0);
    assert_eq!(g.get::<GnttabQuerySize>(hv, G1 << 12).nr_frames, 1);
    // But not in MMIO.
    g.d.p2m.write(&hv.mm).insert(Gfn(0x9_0000), 1, granite::types::Mfn(0x9000), P2mType::MmioDirectDev).unwrap();
    assert_eq!(g.ret(hv, hc::GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, 0x9_0000 << 12, 1, 0, 0]), -EFAULT);
}

#[test]
fn versions_are_v1_only() {
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    let gv = GnttabGetVersion { dom: DOMID_SELF, pad: 0, version: 0 };
    g.put(hv, ARG, &gv);
    assert_eq!(g.ret(hv, hc::GRANT_TABLE_OP, [GNTTABOP_GET_VERSION, ARG, 1, 0, 0]), 0);
    assert_eq!(g.get::<GnttabGetVersion>(hv, ARG).version, 1);
    for (v, want) in [(1u32, 0), (2, -ENOSYS), (3, -EINVAL), (0, -EINVAL)] {
        g.put(hv, ARG, &GnttabSetVersion { version: v });
        assert_eq!(g.ret(hv, hc::GRANT_TABLE_OP, [GNTTABOP_SET_VERSION, ARG, 1, 0, 0]), want, "set_version({v})");
        assert_eq!(g.get::<GnttabSetVersion>(hv, ARG).version, 1, "the current version is written back");
    }
    g.put(hv, ARG, &GnttabGetVersion { dom: 999, pad: 0, version: 0 });
    assert_eq!(g.ret(hv, hc::GRANT_TABLE_OP, [GNTTABOP_GET_VERSION, ARG, 1, 0, 0]), -ESRCH);
}

#[test]
fn dom0_may_act_on_other_domains() {
    let m = HostMachine::new(8192, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let dom0 = Guest::new(hv, 0, 3);
    let domu = Guest::new(hv, 5, 3);
    assert_eq!(dom0.query_size(hv, 5), (0, GNTST_OKAY, 1, 64));
    assert_eq!(domu.query_size(hv, 0).1, GNTST_PERMISSION_DENIED);
    // dom0 maps domU's grant frame into domU's own physmap (toolstack style).
    assert_eq!(dom0.add_to_physmap(hv, 5, XENMAPSPACE_GRANT_TABLE, 0, G1), 0);
    assert_eq!(domu.lookup(hv, G1).unwrap().mfn, domu.grant_frame_mfn(0));
    assert_eq!(domu.setup_table(hv, DOMID_SELF, 1).2, vec![G1]);
    assert_eq!(dom0.remove(hv, 5, G1), 0);
    assert_eq!(domu.lookup(hv, G1), None);
    // Foreign mapping of one of domU's RAM pages into dom0, and its removal.
    let (rc, errs) = dom0.batch(
        hv,
        DOMID_SELF,
        XENMAPSPACE_GMFN_FOREIGN as u16,
        5,
        &[(GUEST_RAM_GFN + 3, 0x7_0000), (0x123, 0x7_0001), (GUEST_RAM_GFN, 0x7_0002)],
    );
    assert_eq!(rc, 0);
    assert_eq!(errs, vec![0, -EINVAL as i32, 0]);
    let f = dom0.lookup(hv, 0x7_0000).unwrap();
    assert_eq!((f.mfn, f.ty), (domu.ram.add(3), P2mType::MapForeignRw));
    clean(&m);
    assert_eq!(dom0.remove(hv, DOMID_SELF, 0x7_0000), 0);
    assert_eq!(dom0.lookup(hv, 0x7_0000), None);
    // domU may not map foreign pages of dom0.
    let (_, errs) = domu.batch(hv, DOMID_SELF, XENMAPSPACE_GMFN_FOREIGN as u16, 0, &[(GUEST_RAM_GFN, 0x7_0000)]);
    assert_eq!(errs, vec![-EPERM as i32]);
    clean(&m);
}

/// The stage-1 translation of a guest pointer runs under the guest's P2M read lock, so a
/// concurrent break-before-make cannot make the hardware walk of its page tables fail (the
/// fuzz guest's seed 0xdead: a good argument pointer answered with -EFAULT).
#[test]
fn guest_pointers_are_translated_under_the_p2m_read_lock() {
    use granite::hypercall::{self, Call, GuestVa};
    use std::cell::Cell;
    struct Recorder<'a> {
        d: &'a granite::domain::Domain,
        calls: Cell<u32>,
        unlocked: Cell<u32>,
    }
    impl GuestVa for Recorder<'_> {
        fn to_ipa(&self, va: u64, _write: bool) -> Option<u64> {
            self.calls.set(self.calls.get() + 1);
            if !self.d.p2m.is_read_locked() {
                self.unlocked.set(self.unlocked.get() + 1);
            }
            Some(va)
        }
    }
    let (m, g) = setup(Options::default());
    let hv = &m.hv;
    let va = Recorder { d: &g.d, calls: Cell::new(0), unlocked: Cell::new(0) };
    let call = Call::new(hv, &g.d, 0, &va);
    let x = XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_GRANT_TABLE, idx: 0, gpfn: G1 };
    g.put(hv, ARG, &x);
    let mut args = [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0];
    assert!(matches!(hypercall::hypercall(&call, hc::MEMORY_OP, &mut args), Outcome::Return(0)));
    let q = GnttabQuerySize { dom: DOMID_SELF, ..Default::default() };
    g.put(hv, ARG, &q);
    let mut args = [GNTTABOP_QUERY_SIZE, ARG, 1, 0, 0];
    assert!(matches!(hypercall::hypercall(&call, hc::GRANT_TABLE_OP, &mut args), Outcome::Return(0)));
    assert_eq!(g.get::<GnttabQuerySize>(hv, ARG).nr_frames, 1);
    assert!(va.calls.get() >= 3, "the hypercalls copied their arguments through the accessor");
    assert_eq!(va.unlocked.get(), 0, "translations made without the P2M read lock");
    assert!(!g.d.p2m.is_read_locked());
    clean(&m);
}
