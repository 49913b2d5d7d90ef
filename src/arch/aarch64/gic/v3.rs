//! GICv3 (QEMU virt): the distributor with affinity routing, one redistributor per CPU, and
//! the CPU interface through system registers (ICC_SRE_EL2.SRE).
//!
//! The distributor gets affinity routing and group 1 enabled with every SPI disabled; each
//! CPU wakes its redistributor and puts its SGIs/PPIs in group 1, disabled until [`enable`].
//!
//! [`enable`]: super::GicDriver::enable

use super::{GicDriver, GicError, Irq, Mmio, VirtIf};
use crate::dt::{Gic, GicVersion};
use crate::gic::regs::offsets::{GICR_FRAME, GICR_STRIDE};
use crate::gic::regs::{
    GICD_CTLR, GICD_TYPER, GICD_V3_EXT, GICR_TYPER, GICR_WAKER, Gicd, GicdV3Ext, GicrRd, GicrSgi, ICC_SGI1R, ICH_LR,
};
use crate::gic::{PPI_END, SPURIOUS};
use crate::hw::IrqOp;
use crate::sysreg::mpidr_to_aff32;
use crate::vgic::Lr;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use core::arch::asm;
use tock_registers::interfaces::ReadWriteable;

const PRIORITY: u32 = 0xa0;
const MAX_REDIST_REGIONS: usize = 4;
/// The GICv3 maintenance interrupt (PPI 9: INTID 25, the architecture's recommendation; QEMU
/// and Xen use it).
const MAINTENANCE_PPI: u32 = 25;

pub struct GicV3 {
    dist: Mmio<Gicd>,
    ext: Mmio<GicdV3Ext>,
    /// Redistributor regions (base, size).
    redist: [(u64, u64); MAX_REDIST_REGIONS],
}

static V3: spin::Once<GicV3> = spin::Once::new();

/// A redistributor's two frames.
struct Redist {
    rd: Mmio<GicrRd>,
    sgi: Mmio<GicrSgi>,
}

impl GicV3 {
    /// Enable the distributor (affinity routing, group 1) with every SPI disabled and in
    /// group 1.
    pub fn init(g: &Gic) -> Result<&'static GicV3, GicError> {
        let mut redist = [(0, 0); MAX_REDIST_REGIONS];
        for (slot, r) in redist.iter_mut().zip(g.redist.iter()) {
            *slot = (r.base, r.size);
        }
        if redist[0].0 == 0 {
            return Err(GicError::Missing("GICv3 redistributor region (reg[1])"));
        }
        // SAFETY: the distributor's frame from the device tree, mapped as Device memory by
        // the boot code (`build_map`) for good.
        let d: Mmio<Gicd> = unsafe { Mmio::new(g.dist.base) };
        let lines = 32 * (d.typer.read(GICD_TYPER::IT_LINES) + 1);
        for i in 1..(lines / 32) as usize {
            d.icenabler[i].set(!0);
            d.igroupr[i].set(!0);
        }
        d.ctlr.modify(GICD_CTLR::ARE_NS::SET + GICD_CTLR::ENABLE_GRP1A::SET);
        while d.ctlr.is_set(GICD_CTLR::RWP) {}
        log::info!(
            "GICv3: {lines} interrupt lines; distributor enabled (affinity routing, group 1), every SPI disabled"
        );
        // SAFETY: as above: the rest of the distributor's 64 KiB frame.
        let ext: Mmio<GicdV3Ext> = unsafe { Mmio::new(g.dist.base + GICD_V3_EXT) };
        Ok(V3.call_once(|| GicV3 { dist: d, ext, redist }))
    }

    /// The calling CPU's redistributor, found by its affinity.
    fn redistributor(&self) -> Redist {
        let me = mpidr_to_aff32(MPIDR_EL1.get()) as u64;
        for &(base, size) in self.redist.iter().filter(|r| r.0 != 0) {
            let mut at = base;
            while at < base + size {
                // SAFETY: a redistributor's RD_base frame inside a region the device tree
                // gives, mapped as Device memory by the boot code for good.
                let rd: Mmio<GicrRd> = unsafe { Mmio::new(at) };
                if rd.typer.read(GICR_TYPER::AFFINITY) == me {
                    // SAFETY: as above: its SGI_base frame follows RD_base.
                    return Redist { rd, sgi: unsafe { Mmio::new(at + GICR_FRAME) } };
                }
                if rd.typer.is_set(GICR_TYPER::LAST) {
                    break;
                }
                at += if rd.typer.is_set(GICR_TYPER::VLPIS) { 2 * GICR_STRIDE } else { GICR_STRIDE };
            }
        }
        panic!("no GICv3 redistributor for MPIDR {:#x}", MPIDR_EL1.get())
    }
}

impl GicDriver for GicV3 {
    fn version(&self) -> GicVersion {
        GicVersion::V3
    }

    fn init_cpu(&self) {
        let r = self.redistributor();
        r.rd.waker.modify(GICR_WAKER::PROCESSOR_SLEEP::CLEAR);
        while r.rd.waker.is_set(GICR_WAKER::CHILDREN_ASLEEP) {}
        r.sgi.icenabler0.set(!0);
        r.sgi.igroupr0.set(!0); // SGIs and PPIs: group 1
        for p in r.sgi.ipriorityr.iter() {
            p.set(PRIORITY * 0x0101_0101);
        }
        // System-register interface at EL2, and allowed at EL1 (guests get it virtualised).
        ICC_SRE_EL2.write(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
        barrier::isb(barrier::SY);
        // SAFETY: writes of this CPU's GIC CPU-interface registers (no aarch64-cpu accessors):
        // priority mask open, binary point 0, EOImode 1 (EOI drops the priority, ICC_DIR
        // deactivates), group 1 enabled.
        unsafe {
            asm!(
                "msr icc_pmr_el1, {pmr}",
                "msr icc_bpr1_el1, xzr",
                "mrs {ctlr}, icc_ctlr_el1",
                "orr {ctlr}, {ctlr}, #2",
                "msr icc_ctlr_el1, {ctlr}",
                "msr icc_igrpen1_el1, {one}",
                "isb",
                pmr = in(reg) 0xffu64,
                one = in(reg) 1u64,
                ctlr = out(reg) _,
                options(nostack, preserves_flags)
            )
        };
    }

    fn send_sgi(&self, mpidr: u64, sgi: u32) -> Result<(), GicError> {
        use crate::sysreg::mpidr_aff;
        let v = (ICC_SGI1R::AFF3.val(mpidr_aff(mpidr, 3))
            + ICC_SGI1R::AFF2.val(mpidr_aff(mpidr, 2))
            + ICC_SGI1R::INTID.val(sgi as u64 & 0xf)
            + ICC_SGI1R::AFF1.val(mpidr_aff(mpidr, 1))
            + ICC_SGI1R::TARGET_LIST.val(1 << (mpidr_aff(mpidr, 0) & 0xf)))
        .value;
        barrier::dsb(barrier::ISHST);
        // SAFETY: generates an SGI; no memory is accessed.
        unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nostack, preserves_flags)) };
        Ok(())
    }

    fn ack(&self) -> Option<Irq> {
        let v: u64;
        // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt of this CPU's interface.
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nostack, preserves_flags)) };
        barrier::dsb(barrier::SY);
        let intid = v as u32 & 0xff_ffff;
        (intid != SPURIOUS).then_some(Irq { intid, raw: intid })
    }

    fn eoi(&self, irq: Irq) {
        // SAFETY: completes an interrupt this CPU acknowledged (EOImode 1: the EOI drops the
        // priority, the DIR write deactivates).
        unsafe {
            asm!("msr icc_eoir1_el1, {v}", "msr icc_dir_el1, {v}", "isb", v = in(reg) irq.raw as u64,
                 options(nostack, preserves_flags))
        };
    }

    fn priority_drop(&self, irq: Irq) {
        // SAFETY: drops the priority of an interrupt this CPU acknowledged; it stays active
        // until the guest deactivates it (hardware-linked list register).
        unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) irq.raw as u64, options(nostack, preserves_flags)) };
    }

    fn irq_op(&self, intid: u32, op: IrqOp, target_mpidr: u64) {
        let (w, bit) = ((intid / 32) as usize, 1u32 << (intid % 32));
        if intid < PPI_END || w >= self.dist.isenabler.len() {
            return;
        }
        let d = &self.dist;
        match op {
            IrqOp::Enable => d.isenabler[w].set(bit),
            IrqOp::Disable => d.icenabler[w].set(bit),
            IrqOp::SetPending => d.ispendr[w].set(bit),
            IrqOp::ClearPending => d.icpendr[w].set(bit),
            IrqOp::Deactivate => d.icactiver[w].set(bit),
            IrqOp::SetEdge(edge) => {
                let r = &d.icfgr[(intid / 16) as usize];
                let b = 2 << (2 * (intid % 16));
                r.set(if edge { r.get() | b } else { r.get() & !b });
            }
            IrqOp::Route(_) => {
                if let Some(r) = self.ext.irouter.get((intid - PPI_END) as usize) {
                    r.set(crate::sysreg::mpidr_affinity(target_mpidr));
                }
            }
        }
    }

    fn read_lr(&self, n: usize) -> Lr {
        decode_lr(read_ich_lr(n))
    }

    fn write_lr(&self, n: usize, lr: &Lr) {
        write_ich_lr(n, encode_lr(lr));
    }

    fn set_underflow(&self, on: bool) {
        ICH_HCR_EL2.modify(if on { ICH_HCR_EL2::UIE::SET } else { ICH_HCR_EL2::UIE::CLEAR });
    }

    fn vpmr(&self) -> u8 {
        (ICH_VMCR_EL2.get() >> 24) as u8
    }

    fn maintenance_irq(&self) -> u32 {
        MAINTENANCE_PPI
    }

    fn lines(&self) -> u32 {
        (32 * (self.dist.typer.read(GICD_TYPER::IT_LINES) + 1)).min(crate::gic::SPI_END)
    }

    fn id_bits(&self) -> u32 {
        self.dist.typer.read(GICD_TYPER::ID_BITS)
    }

    fn enable(&self, intid: u32) {
        let bit = 1 << (intid % 32);
        if intid < PPI_END {
            self.redistributor().sgi.isenabler0.set(bit);
        } else if let Some(r) = self.dist.isenabler.get((intid / 32) as usize) {
            r.set(bit);
        }
    }

    fn disable(&self, intid: u32) {
        let bit = 1 << (intid % 32);
        if intid < PPI_END {
            self.redistributor().sgi.icenabler0.set(bit);
        } else if let Some(r) = self.dist.icenabler.get((intid / 32) as usize) {
            r.set(bit);
        }
    }

    fn init_virt(&self) -> Option<VirtIf> {
        let lrs = (ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as u32 + 1).min(16);
        for n in 0..lrs as usize {
            write_ich_lr(n, 0);
        }
        ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
        barrier::isb(barrier::SY);
        Some(VirtIf { list_registers: lrs, vcpu_if: None })
    }
}

/// A list register's image in ICH_LR<n>_EL2's layout.
fn encode_lr(lr: &Lr) -> u64 {
    let mut v = ICH_LR::VINTID.val(lr.vintid as u64)
        + ICH_LR::PRIORITY.val(lr.priority as u64)
        + ICH_LR::STATE.val(lr.pending as u64 | ((lr.active as u64) << 1));
    if lr.group1 {
        v += ICH_LR::GROUP::SET;
    }
    match lr.hw {
        Some(p) => v += ICH_LR::HW::SET + ICH_LR::PINTID.val(p as u64),
        None if lr.eoi_maintenance => v += ICH_LR::EOI::SET,
        None => {}
    }
    v.value
}

fn decode_lr(v: u64) -> Lr {
    let r = tock_registers::LocalRegisterCopy::<u64, ICH_LR::Register>::new(v);
    let state = r.read(ICH_LR::STATE);
    let hw = r.is_set(ICH_LR::HW);
    Lr {
        vintid: r.read(ICH_LR::VINTID) as u32,
        pending: state & 1 != 0,
        active: state & 2 != 0,
        priority: r.read(ICH_LR::PRIORITY) as u8,
        group1: r.is_set(ICH_LR::GROUP),
        hw: hw.then(|| r.read(ICH_LR::PINTID) as u16),
        source: 0,
        eoi_maintenance: !hw && r.is_set(ICH_LR::EOI),
    }
}

/// ICH_LR<n>_EL2 (one system register each: a match).
fn read_ich_lr(n: usize) -> u64 {
    match n {
        0 => ICH_LR0_EL2.get(),
        1 => ICH_LR1_EL2.get(),
        2 => ICH_LR2_EL2.get(),
        3 => ICH_LR3_EL2.get(),
        4 => ICH_LR4_EL2.get(),
        5 => ICH_LR5_EL2.get(),
        6 => ICH_LR6_EL2.get(),
        7 => ICH_LR7_EL2.get(),
        8 => ICH_LR8_EL2.get(),
        9 => ICH_LR9_EL2.get(),
        10 => ICH_LR10_EL2.get(),
        11 => ICH_LR11_EL2.get(),
        12 => ICH_LR12_EL2.get(),
        13 => ICH_LR13_EL2.get(),
        14 => ICH_LR14_EL2.get(),
        15 => ICH_LR15_EL2.get(),
        _ => 0,
    }
}

fn write_ich_lr(n: usize, v: u64) {
    match n {
        0 => ICH_LR0_EL2.set(v),
        1 => ICH_LR1_EL2.set(v),
        2 => ICH_LR2_EL2.set(v),
        3 => ICH_LR3_EL2.set(v),
        4 => ICH_LR4_EL2.set(v),
        5 => ICH_LR5_EL2.set(v),
        6 => ICH_LR6_EL2.set(v),
        7 => ICH_LR7_EL2.set(v),
        8 => ICH_LR8_EL2.set(v),
        9 => ICH_LR9_EL2.set(v),
        10 => ICH_LR10_EL2.set(v),
        11 => ICH_LR11_EL2.set(v),
        12 => ICH_LR12_EL2.set(v),
        13 => ICH_LR13_EL2.set(v),
        14 => ICH_LR14_EL2.set(v),
        15 => ICH_LR15_EL2.set(v),
        _ => {}
    }
}
