use super::*;
use crate::gic::regs::offsets::*;
use crate::hw::IrqOp;
use crate::mmio::Outcome;
use crate::testing::FakeHw;
use crate::vcpu::vcpu_mpidr;

const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080a_0000;

/// A virtual GIC whose vCPUs all run, its distributor enabled by the guest.
fn vgic(version: Version, vcpus: usize) -> Vgic {
    let g = vgic_reset(version, vcpus);
    // GICv3: group 1 with affinity routing.
    let ctlr = if version == Version::V3 { 0x12 } else { 1 };
    wr(&g, &FakeHw::default(), 0, GICD + GICD_CTLR, 4, ctlr);
    g
}

/// The same as it comes out of reset: the distributor disabled.
fn vgic_reset(version: Version, vcpus: usize) -> Vgic {
    let cpus = (0..vcpus).map(|i| CpuDesc { mpidr: vcpu_mpidr(i as u32), pcpu: 10 + i }).collect();
    let redist = match version {
        Version::V3 => alloc::vec![(GICR, 0x20_0000)],
        Version::V2 => alloc::vec![],
    };
    let g = Vgic::new(Config { version, nr_spis: 64, dist_base: GICD, redist, id_bits: 15 }, cpus);
    for v in 0..vcpus {
        g.vcpu_online(v);
        let _ = g.flush(v, &mut []);
    }
    g
}

/// A register access, expecting no abort.
fn rd(g: &Vgic, hw: &FakeHw, vcpu: usize, ipa: u64, size: u8) -> u64 {
    match g.mmio(hw, vcpu, ipa, size, false, 0) {
        Some((Outcome::Done(v), _)) => v,
        o => panic!("read {ipa:#x}/{size}: {o:?}"),
    }
}
fn wr(g: &Vgic, hw: &FakeHw, vcpu: usize, ipa: u64, size: u8, v: u64) -> Kicks {
    match g.mmio(hw, vcpu, ipa, size, true, v) {
        Some((Outcome::Done(_), k)) => k,
        o => panic!("write {ipa:#x}/{size}: {o:?}"),
    }
}
fn access(g: &Vgic, hw: &FakeHw, vcpu: usize, ipa: u64, size: u8, write: bool) -> Outcome {
    g.mmio(hw, vcpu, ipa, size, write, 0).expect("a vGIC address").0
}

fn lrs(g: &Vgic, vcpu: usize, n: usize) -> (alloc::vec::Vec<Lr>, Flush) {
    let mut out = alloc::vec![Lr::default(); n];
    let f = g.flush(vcpu, &mut out);
    out.truncate(f.loaded);
    (out, f)
}

/// Enable private `intid` of vCPU `v` (GICv3: its redistributor's SGI frame).
fn enable_private(g: &Vgic, hw: &FakeHw, v: usize, intid: u32) {
    wr(g, hw, v, GICR + v as u64 * GICR_STRIDE + GICR_FRAME + GICR_ISENABLER0, 4, 1 << intid);
}

#[test]
fn an_injection_goes_through_a_list_register_and_back() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 2);
    enable_private(&g, &hw, 1, 27);
    assert!(!g.is_dirty(1));
    assert_eq!(g.inject(1, 27), Kicks(0b10), "vCPU 1 must refresh its list registers");
    assert!(g.is_dirty(1));
    let (l, f) = lrs(&g, 1, 4);
    assert_eq!(l, [Lr { vintid: 27, pending: true, group1: true, ..Lr::default() }]);
    assert!(!f.underflow && !g.is_dirty(1));
    assert!(!g.irq_state(1, 27).unwrap().pending, "the register holds the pending state");
    // the guest acknowledges it
    g.fold(1, &[Lr { pending: false, active: true, ..l[0] }]);
    let s = g.irq_state(1, 27).unwrap();
    assert!(s.active && !s.pending && s.queued_on == Some(1));
    let (l, _) = lrs(&g, 1, 4);
    assert_eq!((l[0].active, l[0].pending), (true, false));
    // ...and deactivates it: it leaves the list
    g.fold(1, &[Lr { active: false, ..l[0] }]);
    let (l, _) = lrs(&g, 1, 4);
    assert!(l.is_empty());
    assert_eq!(g.irq_state(1, 27).unwrap().queued_on, None);
    assert!(g.list(1).is_empty());
    assert!(g.check().is_empty());
}

#[test]
fn an_edge_while_in_a_list_register_becomes_pending_and_active() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 1);
    enable_private(&g, &hw, 0, 16);
    g.inject(0, 16);
    let (l, _) = lrs(&g, 0, 4);
    // fires again while the guest runs, before the fold
    assert_eq!(g.inject(0, 16), Kicks(1));
    g.fold(0, &[Lr { pending: false, active: true, ..l[0] }]);
    let (l, _) = lrs(&g, 0, 4);
    assert_eq!((l[0].pending, l[0].active), (true, true));
}

#[test]
fn more_interrupts_than_list_registers_are_all_delivered_by_priority() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 1);
    let rd_sgi = GICR + GICR_FRAME;
    wr(&g, &hw, 0, rd_sgi + GICR_ISENABLER0, 4, 0xffff_ffff);
    // SGI n gets priority (8 - n) * 8: SGI 7 is the most urgent
    for n in 0..8u64 {
        wr(&g, &hw, 0, rd_sgi + GICR_IPRIORITYR + n, 1, (8 - n) * 8);
        g.inject(0, n as u32);
    }
    let mut delivered = alloc::vec::Vec::new();
    for round in 0.. {
        let (l, f) = lrs(&g, 0, 4);
        if l.is_empty() {
            break;
        }
        assert!(round < 3);
        assert_eq!(f.underflow, delivered.len() + l.len() < 8, "underflow asked while entries wait");
        // the guest takes and completes the loaded ones
        delivered.extend(l.iter().map(|x| x.vintid));
        g.fold(0, &l.iter().map(|x| Lr { pending: false, active: false, ..*x }).collect::<alloc::vec::Vec<_>>());
    }
    assert_eq!(delivered, [7, 6, 5, 4, 3, 2, 1, 0], "highest priority first, none dropped");
}

#[test]
fn gicv2_sgis_keep_their_sources_one_instance_at_a_time() {
    let hw = FakeHw::default();
    let g = vgic(Version::V2, 3);
    // vCPUs 1 and 2 send SGI 5 to vCPU 0 (GICD_SGIR, target list)
    wr(&g, &hw, 1, GICD + GICD_SGIR, 4, (1 << 16) | 5);
    wr(&g, &hw, 2, GICD + GICD_SGIR, 4, (1 << 16) | 5);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_SPENDSGIR + 5, 1), 0b110, "SPENDSGIR1 byte 1 (SGI 5): sources 1 and 2");
    let (l, _) = lrs(&g, 0, 4);
    assert_eq!(l.len(), 1, "one instance at a time");
    assert_eq!((l[0].vintid, l[0].source, l[0].eoi_maintenance), (5, 1, true));
    g.fold(0, &[Lr { pending: false, active: false, ..l[0] }]);
    let (l, _) = lrs(&g, 0, 4);
    assert_eq!((l[0].source, l[0].eoi_maintenance), (2, false));
    // reserved target filter: refused (XSA-117)
    assert_eq!(access(&g, &hw, 0, GICD + GICD_SGIR, 4, true), Outcome::Done(0));
    assert_eq!(g.mmio(&hw, 0, GICD + GICD_SGIR, 4, true, 3 << 24).unwrap().0, Outcome::Abort);
    // "others" and "self"
    let k = wr(&g, &hw, 1, GICD + GICD_SGIR, 4, (1 << 24) | 3);
    assert_eq!(k, Kicks(0b101));
    let k = wr(&g, &hw, 1, GICD + GICD_SGIR, 4, (2 << 24) | 3);
    assert_eq!(k, Kicks(0b010));
}

#[test]
fn spis_go_where_irouter_says_and_move_when_it_changes() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 2);
    wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 2);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 1 << 8); // SPI 40
    let router = GICD + GICD_IROUTER + 8 * (40 - 32);
    assert_eq!(rd(&g, &hw, 0, router, 8), 0, "routed to vCPU 0 at reset");
    wr(&g, &hw, 0, router, 8, 1); // Aff0 = 1: vCPU 1
    assert_eq!(g.inject(0, 40), Kicks(0b10));
    assert_eq!(g.list(1), [40]);
    // retargeted to vCPU 0 while pending: moves at vCPU 1's next flush
    let k = wr(&g, &hw, 0, router + 4, 4, 0); // upper half: Aff3 0
    assert!(k.is_empty() || k == Kicks(0b10));
    let k = wr(&g, &hw, 0, router, 4, 0);
    assert_eq!(k, Kicks(0b10), "its current vCPU is kicked");
    let (l, f) = lrs(&g, 1, 4);
    assert!(l.is_empty());
    assert_eq!(f.kicks, Kicks(0b01));
    assert_eq!(g.list(0), [40]);
    // IRM: any vCPU (Xen: vCPU 0); an affinity no vCPU has: not delivered
    wr(&g, &hw, 0, router, 8, IROUTER_IRM | 1);
    assert_eq!(rd(&g, &hw, 0, router, 8), IROUTER_IRM | 1);
    let router41 = router + 8;
    wr(&g, &hw, 0, router41, 8, 0x7);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 1 << 9);
    assert_eq!(g.inject(0, 41), Kicks(0));
    assert!(g.irq_state(0, 41).unwrap().pending, "pending, waiting for a target");
    assert!(g.check().is_empty());
}

#[test]
fn the_distributor_forwards_spis_only_when_enabled() {
    let hw = FakeHw::default();
    let g = vgic_reset(Version::V2, 1);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 1); // SPI 32
    assert_eq!(g.inject(0, 32), Kicks(0));
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ISPENDR + 4, 4), 1, "pending state reads back");
    assert_eq!(wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 1), Kicks(1), "enabling it forwards what is pending");
    assert_eq!(g.list(0), [32]);
}

#[test]
fn hardware_linked_spis_reach_the_physical_gic() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 2);
    assert!(g.link_hw(&hw, 48, false));
    assert_eq!(hw.take_irq_ops(), [(48, IrqOp::Disable), (48, IrqOp::SetEdge(false)), (48, IrqOp::Route(10))]);
    wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 2);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 1 << 16);
    wr(&g, &hw, 0, GICD + GICD_IROUTER + 8 * 16, 8, 1);
    wr(&g, &hw, 0, GICD + GICD_ICFGR + 12, 4, 2);
    wr(&g, &hw, 0, GICD + GICD_ISPENDR + 4, 4, 1 << 16);
    assert_eq!(
        hw.take_irq_ops(),
        [(48, IrqOp::Enable), (48, IrqOp::Route(11)), (48, IrqOp::SetEdge(true)), (48, IrqOp::SetPending)]
    );
    assert!(!g.irq_state(0, 48).unwrap().pending, "made pending at the physical GIC, not here");
    assert_eq!(g.inject_hw(48), Some(Kicks(0b10)));
    assert_eq!(g.inject_hw(49), None, "not linked");
    let (l, _) = lrs(&g, 1, 4);
    assert_eq!(l, [Lr { vintid: 48, pending: true, group1: true, hw: Some(48), ..Lr::default() }]);
    wr(&g, &hw, 0, GICD + GICD_ICACTIVER + 4, 4, 1 << 16);
    wr(&g, &hw, 0, GICD + GICD_ICENABLER + 4, 4, 1 << 16);
    assert_eq!(hw.take_irq_ops(), [(48, IrqOp::Deactivate), (48, IrqOp::Disable)]);
}

#[test]
fn wfi_wakes_for_an_enabled_pending_interrupt_the_mask_lets_through() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 1);
    g.inject(0, 27);
    assert!(!g.has_deliverable(0, 0xff), "disabled: not queued");
    enable_private(&g, &hw, 0, 27);
    wr(&g, &hw, 0, GICR + GICR_FRAME + GICR_IPRIORITYR + 27, 1, 0xa0);
    assert!(g.has_deliverable(0, 0xf0));
    assert!(!g.has_deliverable(0, 0xa0), "masked by the priority mask");
    let (l, _) = lrs(&g, 0, 4);
    g.fold(0, &[Lr { pending: false, active: true, ..l[0] }]);
    assert!(!g.has_deliverable(0, 0xff), "active: already taken");
}

#[test]
fn sgi1r_names_vcpus_by_affinity() {
    let g = vgic(Version::V3, 3);
    // IRM: everyone but the sender
    assert_eq!(g.sgi1r_targets(1, (1 << 40) | (4 << 24)), (4, 0b101));
    // target list: Aff0 0 and 2 in cluster 0
    assert_eq!(g.sgi1r_targets(0, (2 << 24) | 0b101), (2, 0b101));
    // cluster 1 has nobody; nor does range 1
    assert_eq!(g.sgi1r_targets(0, (1 << 16) | 1).1, 0);
    assert_eq!(g.sgi1r_targets(0, (1 << 44) | 1).1, 0);
    let k = g.send_sgi(0, 0b110, 3);
    assert_eq!(k, Kicks(0), "SGIs start disabled on GICv3");
    assert_eq!(g.send_sgi(0, 0b110, 16), Kicks(0), "not an SGI");
}

/// Registers read as Xen 4.17 answers them (or the architecture, where Xen breaks it).
#[test]
fn distributor_and_redistributor_registers() {
    let hw = FakeHw::default();
    let g = vgic_reset(Version::V3, 2);
    let typer = rd(&g, &hw, 0, GICD + GICD_TYPER, 4);
    assert_eq!(typer & 0x1f, 2, "ITLinesNumber: 64 SPIs + 32 = 96 lines");
    assert_eq!((typer >> 5) & 7, 1, "two vCPUs");
    assert_eq!((typer >> 19) & 0x1f, 15, "IDbits from the host");
    assert_eq!(typer & (1 << 17), 0, "no LPIs");
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_CTLR, 4), 1 << 4, "ARE_NS, disabled");
    wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 0xffff_ffff);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_CTLR, 4), (1 << 4) | 2, "only EnableGrp1A sticks; RWP never set");
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_IIDR, 4), 0x34c);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ID_V3 + ID_PIDR2, 4), 0x30);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_TYPER2, 4), 0);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_IGROUPR + 4, 4), 0, "groups RAZ/WI");
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ISENABLER, 4), 0, "SGIs/PPIs are the redistributor's (ARE)");
    assert_eq!(access(&g, &hw, 0, GICD + GICD_CTLR, 2, false), Outcome::Abort, "word only");
    assert_eq!(access(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 1, true), Outcome::Abort);
    assert_eq!(access(&g, &hw, 0, GICD + 0x5000, 4, false), Outcome::Done(0), "no register there: RAZ");
    // priorities: bytes and words, 5 bits implemented
    wr(&g, &hw, 0, GICD + GICD_IPRIORITYR + 33, 1, 0xff);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_IPRIORITYR + 32, 4), 0xf800);
    assert_eq!(access(&g, &hw, 0, GICD + GICD_IPRIORITYR + 32, 2, false), Outcome::Abort);
    // configuration: SPIs keep bit 1 of their pair
    wr(&g, &hw, 0, GICD + GICD_ICFGR + 8, 4, 0xffff_ffff);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ICFGR + 8, 4), 0xaaaa_aaaa);
    // redistributors: TYPER with affinity, number and Last
    let r1 = GICR + GICR_STRIDE;
    assert_eq!(rd(&g, &hw, 0, GICR + GICR_TYPER, 8), 0);
    assert_eq!(rd(&g, &hw, 0, r1 + GICR_TYPER, 8), (1 << 32) | (1 << 8) | (1 << 4));
    assert_eq!(rd(&g, &hw, 0, r1 + GICR_TYPER + 4, 4), 1, "upper half");
    assert_eq!(rd(&g, &hw, 0, GICR + GICR_WAKER, 4), 0, "WAKER RAZ/WI: awake");
    assert_eq!(rd(&g, &hw, 0, GICR + GICR_ID + ID_PIDR2, 4), 0x30);
    assert_eq!(access(&g, &hw, 0, GICR + 2 * GICR_STRIDE, 4, false), Outcome::Abort, "no third vCPU");
    // SGIs are edge-triggered, read-only; PPIs' configuration is kept
    let sgi = GICR + GICR_FRAME;
    wr(&g, &hw, 0, sgi + GICR_ICFGR, 4, 0);
    assert_eq!(rd(&g, &hw, 0, sgi + GICR_ICFGR, 4), 0xaaaa_aaaa);
    wr(&g, &hw, 0, sgi + GICR_ICFGR + 4, 4, 2 << 22);
    assert_eq!(rd(&g, &hw, 0, sgi + GICR_ICFGR + 4, 4), 2 << 22);
    // each redistributor is its own vCPU's
    wr(&g, &hw, 0, r1 + GICR_FRAME + GICR_ISENABLER0, 4, 1 << 27);
    assert_eq!(rd(&g, &hw, 0, sgi + GICR_ISENABLER0, 4), 0);
    assert_eq!(rd(&g, &hw, 1, r1 + GICR_FRAME + GICR_ICENABLER0, 4), 1 << 27);
    assert!(g.mmio(&hw, 0, 0x1000, 4, false, 0).is_none(), "not a vGIC address");
}

#[test]
fn gicv2_distributor_registers() {
    let hw = FakeHw::default();
    let g = vgic_reset(Version::V2, 2);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_TYPER, 4), (1 << 5) | 2);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_IIDR, 4), 0x43b);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ID_V2 + ID_PIDR2, 4), 0x2b, "ArchRev 2 (Xen aborts here)");
    assert_eq!(rd(&g, &hw, 1, GICD + GICD_ITARGETSR, 4), 0x0202_0202, "ITARGETSR0: the reader's own bit");
    wr(&g, &hw, 0, GICD + GICD_ITARGETSR + 40, 1, 0xff);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ITARGETSR + 40, 1), 0b11, "only vCPUs that exist");
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ICFGR, 4), 0xaaaa_aaaa, "SGIs edge, read-only");
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ISENABLER, 4), 0xffff, "SGIs always enabled");
    // banked: each vCPU its own PPIs
    wr(&g, &hw, 1, GICD + GICD_ISENABLER, 4, 1 << 27);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_ISENABLER, 4), 0xffff);
    assert_eq!(rd(&g, &hw, 1, GICD + GICD_ISENABLER, 4), 0xffff | (1 << 27));
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_CTLR, 4), 0);
    wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 3);
    assert_eq!(rd(&g, &hw, 0, GICD + GICD_CTLR, 4), 1, "only Enable");
}

#[test]
fn an_spi_disabled_while_queued_leaves_the_list() {
    let hw = FakeHw::default();
    let g = vgic(Version::V2, 2);
    wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 1);
    wr(&g, &hw, 0, GICD + GICD_ITARGETSR + 33, 1, 0b10);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 0b10);
    g.inject(0, 33);
    assert_eq!(g.list(1), [33]);
    // vCPU 0 disables it: vCPU 1 is kicked, and its flush drops it (still pending)
    assert_eq!(wr(&g, &hw, 0, GICD + GICD_ICENABLER + 4, 4, 0b10), Kicks(0b10));
    let (l, _) = lrs(&g, 1, 4);
    assert!(l.is_empty());
    assert!(g.list(1).is_empty());
    assert!(g.irq_state(0, 33).unwrap().pending);
    // enabled again: back
    assert_eq!(wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 0b10), Kicks(0b10));
    assert!(g.check().is_empty());
}

#[test]
fn an_spi_queued_on_a_vcpu_going_offline_follows_its_route() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 2);
    wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 2);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4, 4, 1 << 8);
    let router = GICD + GICD_IROUTER + 8 * 8;
    wr(&g, &hw, 0, router, 8, 1);
    g.inject(0, 40);
    assert_eq!(g.list(1), [40]);
    // vCPU 1 goes off with SPI 40 still routed to it: it waits there
    assert_eq!(g.vcpu_offline(1), Kicks(0));
    assert_eq!(g.list(1), [40]);
    // the guest routes it to vCPU 0 (Linux does before CPU_OFF): it moves at once
    assert_eq!(wr(&g, &hw, 0, router, 8, 0), Kicks(0b01));
    assert_eq!((g.list(0), g.list(1)), (alloc::vec![40], alloc::vec![]));
    assert!(g.check().is_empty());
}

#[test]
fn a_disabled_distributor_forwards_nothing_private_interrupts_included() {
    for version in [Version::V3, Version::V2] {
        let hw = FakeHw::default();
        let g = vgic(version, 2);
        let enable = if version == Version::V3 { 0x12 } else { 1 };
        // SGI 1 and PPI 27 enabled on vCPU 0 (SGIs are always enabled on GICv2).
        if version == Version::V3 {
            enable_private(&g, &hw, 0, 1);
            enable_private(&g, &hw, 0, 27);
        } else {
            wr(&g, &hw, 0, GICD + GICD_ISENABLER, 4, 1 << 27);
        }
        wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 0);
        let _ = g.inject(0, 27);
        let _ = g.send_sgi(1, 1, 1);
        let (loaded, _) = lrs(&g, 0, 4);
        assert!(loaded.is_empty(), "{version:?}: nothing forwarded while disabled: {loaded:?}");
        assert!(!g.has_deliverable(0, 0xff), "{version:?}: WFI does not wake for it");
        // Enabling it forwards both, and asks vCPU 0 to reload.
        let k = wr(&g, &hw, 1, GICD + GICD_CTLR, 4, enable);
        assert!(k.iter().any(|v| v == 0), "{version:?}: vCPU 0 told: {k:?}");
        assert!(g.has_deliverable(0, 0xff));
        let (loaded, _) = lrs(&g, 0, 4);
        let mut ids: alloc::vec::Vec<u32> = loaded.iter().map(|l| l.vintid).collect();
        ids.sort();
        assert_eq!(ids, [1, 27], "{version:?}");
        // An active interrupt stays in a list register while the distributor is disabled, so
        // the guest can still deactivate it; pending state is held back.
        let mut taken = loaded.clone();
        for l in taken.iter_mut() {
            l.pending = false;
            l.active = true;
        }
        g.fold(0, &taken);
        let _ = g.inject(0, 27);
        wr(&g, &hw, 0, GICD + GICD_CTLR, 4, 0);
        let (loaded, _) = lrs(&g, 0, 4);
        assert!(loaded.iter().all(|l| l.active && !l.pending), "{version:?}: {loaded:?}");
        assert_eq!(loaded.len(), 2, "{version:?}");
        assert!(g.check().is_empty(), "{:?}", g.check());
    }
}

#[test]
fn kicks_name_their_vcpus_in_order() {
    assert_eq!(Kicks(0b1010_0001).iter().collect::<alloc::vec::Vec<_>>(), [0, 5, 7]);
    assert_eq!(Kicks(1 << 63).iter().collect::<alloc::vec::Vec<_>>(), [63]);
    assert_eq!(Kicks(0).iter().count(), 0);
    assert_eq!(Kicks(u64::MAX).iter().count(), 64);
}

/// XSA-223 guest: an SPI made pending again and reprioritised from inside its own handler.
/// The list register must keep the priority it was taken with while it is active (a GICv3
/// virtual CPU interface deactivates on EOI only at the dropped priority), else the EOI never
/// deactivates it and it is never delivered again.
#[test]
fn an_active_interrupt_keeps_the_priority_it_was_taken_with() {
    let hw = FakeHw::default();
    let g = vgic(Version::V3, 1);
    let spi = 95;
    wr(&g, &hw, 0, GICD + GICD_IPRIORITYR + spi as u64, 1, 0x80);
    wr(&g, &hw, 0, GICD + GICD_ISENABLER + 4 * (spi as u64 / 32), 4, 1 << (spi % 32));
    wr(&g, &hw, 0, GICD + GICD_IROUTER + 8 * spi as u64, 8, 0);
    let _ = g.inject(0, spi);
    let (mut loaded, _) = lrs(&g, 0, 4);
    assert_eq!((loaded[0].vintid, loaded[0].priority), (spi, 0x80));
    // The guest takes it; its handler makes it pending again and changes its priority.
    loaded[0].pending = false;
    loaded[0].active = true;
    g.fold(0, &loaded);
    wr(&g, &hw, 0, GICD + GICD_ISPENDR + 4 * (spi as u64 / 32), 4, 1 << (spi % 32));
    wr(&g, &hw, 0, GICD + GICD_IPRIORITYR + spi as u64, 1, 0x90);
    let (loaded, _) = lrs(&g, 0, 4);
    assert_eq!((loaded[0].pending, loaded[0].active), (true, true));
    assert_eq!(loaded[0].priority, 0x80, "taken at 0x80: stays 0x80 until deactivated");
    // The EOI deactivates it; the pending instance is then delivered at its new priority.
    let mut done = loaded.clone();
    done[0].active = false;
    g.fold(0, &done);
    let (loaded, _) = lrs(&g, 0, 4);
    assert_eq!((loaded[0].pending, loaded[0].active, loaded[0].priority), (true, false, 0x90));
    assert!(g.check().is_empty(), "{:?}", g.check());
}
