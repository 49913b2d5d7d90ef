//! GICv3 (QEMU virt): the distributor with affinity routing, one redistributor per CPU, and
//! the CPU interface through system registers (ICC_SRE_EL2.SRE).
//!
//! The distributor gets affinity routing and group 1 enabled with every SPI disabled; each
//! CPU wakes its redistributor and puts its SGIs/PPIs in group 1, disabled until [`enable`].
//!
//! [`enable`]: super::GicDriver::enable

use super::{GicDriver, GicError, Irq, VirtIf};
use crate::dt::{Gic, GicVersion};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{ICC_SRE_EL2, ICH_HCR_EL2, ICH_VTR_EL2, MPIDR_EL1, Readable, Writeable};
use core::arch::asm;

/// ICC_IAR1_EL1 value meaning "no pending interrupt".
const SPURIOUS: u32 = 1023;
const PRIORITY: u32 = 0xa0;

// Distributor
const GICD_CTLR: u64 = 0x0;
const GICD_CTLR_RWP: u32 = 1 << 31;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_TYPER: u64 = 0x4;
const GICD_IGROUPR: u64 = 0x80;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
// Redistributor, RD_base frame
const GICR_TYPER: u64 = 0x8;
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_TYPER_VLPIS: u64 = 1 << 1;
const GICR_WAKER: u64 = 0x14;
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
// Redistributor, SGI_base frame (RD_base + 64 KiB)
const SGI_BASE: u64 = 0x1_0000;
const GICR_IGROUPR0: u64 = SGI_BASE + 0x80;
const GICR_ISENABLER0: u64 = SGI_BASE + 0x100;
const GICR_ICENABLER0: u64 = SGI_BASE + 0x180;
const GICR_IPRIORITYR: u64 = SGI_BASE + 0x400;

const MAX_REDIST_REGIONS: usize = 4;

pub struct GicV3 {
    dist: u64,
    /// Redistributor regions (base, size).
    redist: [(u64, u64); MAX_REDIST_REGIONS],
}

static V3: spin::Once<GicV3> = spin::Once::new();

fn rd32(a: u64) -> u32 {
    // SAFETY: `a` is a register of the GIC, mapped Device-nGnRE in the EL2 map.
    unsafe { core::ptr::read_volatile(a as *const u32) }
}
fn wr32(a: u64, v: u32) {
    // SAFETY: as for `rd32`.
    unsafe { core::ptr::write_volatile(a as *mut u32, v) }
}
fn rd64(a: u64) -> u64 {
    // SAFETY: as for `rd32`.
    unsafe { core::ptr::read_volatile(a as *const u64) }
}

/// MPIDR affinity in GICR_TYPER's layout (Aff3.Aff2.Aff1.Aff0).
fn affinity(mpidr: u64) -> u64 {
    (mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000)
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
        let d = g.dist.base;
        let lines = 32 * ((rd32(d + GICD_TYPER) & 0x1f) + 1);
        for i in 1..lines / 32 {
            wr32(d + GICD_ICENABLER + 4 * i as u64, !0);
            wr32(d + GICD_IGROUPR + 4 * i as u64, !0);
        }
        wr32(d + GICD_CTLR, rd32(d + GICD_CTLR) | GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
        while rd32(d + GICD_CTLR) & GICD_CTLR_RWP != 0 {}
        log::info!(
            "GICv3: {lines} interrupt lines; distributor enabled (affinity routing, group 1), every SPI disabled"
        );
        Ok(V3.call_once(|| GicV3 { dist: d, redist }))
    }

    /// The calling CPU's redistributor (RD_base), found by its affinity.
    fn redistributor(&self) -> u64 {
        let me = affinity(MPIDR_EL1.get());
        for &(base, size) in self.redist.iter().filter(|r| r.0 != 0) {
            let mut rd = base;
            while rd < base + size {
                let typer = rd64(rd + GICR_TYPER);
                if typer >> 32 == me {
                    return rd;
                }
                if typer & GICR_TYPER_LAST != 0 {
                    break;
                }
                rd += if typer & GICR_TYPER_VLPIS != 0 { 0x4_0000 } else { 0x2_0000 };
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
        let rd = self.redistributor();
        wr32(rd + GICR_WAKER, rd32(rd + GICR_WAKER) & !GICR_WAKER_PROCESSOR_SLEEP);
        while rd32(rd + GICR_WAKER) & GICR_WAKER_CHILDREN_ASLEEP != 0 {}
        wr32(rd + GICR_ICENABLER0, !0);
        wr32(rd + GICR_IGROUPR0, !0); // SGIs and PPIs: group 1
        for i in 0..8 {
            wr32(rd + GICR_IPRIORITYR + 4 * i, PRIORITY * 0x0101_0101);
        }
        // System-register interface at EL2, and allowed at EL1 (guests get it virtualised).
        ICC_SRE_EL2.write(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
        barrier::isb(barrier::SY);
        // SAFETY: writes of this CPU's GIC CPU-interface registers (no aarch64-cpu accessors):
        // priority mask open, binary point 0, group 1 enabled.
        unsafe {
            asm!(
                "msr icc_pmr_el1, {pmr}",
                "msr icc_bpr1_el1, xzr",
                "msr icc_igrpen1_el1, {one}",
                "isb",
                pmr = in(reg) 0xffu64,
                one = in(reg) 1u64,
                options(nostack, preserves_flags)
            )
        };
    }

    fn send_sgi(&self, mpidr: u64, sgi: u32) -> Result<(), GicError> {
        let v = ((mpidr >> 32) & 0xff) << 48 // Aff3
            | ((mpidr >> 16) & 0xff) << 32   // Aff2
            | (sgi as u64 & 0xf) << 24
            | ((mpidr >> 8) & 0xff) << 16     // Aff1
            | 1 << (mpidr & 0xf); // target list: Aff0 0..15
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
        // SAFETY: completes an interrupt this CPU acknowledged (EOImode 0: drop + deactivate).
        unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) irq.raw as u64, options(nostack, preserves_flags)) };
    }

    fn enable(&self, intid: u32) {
        let bit = 1 << (intid % 32);
        if intid < 32 {
            wr32(self.redistributor() + GICR_ISENABLER0, bit);
        } else {
            wr32(self.dist + GICD_ISENABLER + 4 * (intid / 32) as u64, bit);
        }
    }

    fn disable(&self, intid: u32) {
        let bit = 1 << (intid % 32);
        if intid < 32 {
            wr32(self.redistributor() + GICR_ICENABLER0, bit);
        } else {
            wr32(self.dist + GICD_ICENABLER + 4 * (intid / 32) as u64, bit);
        }
    }

    fn init_virt(&self) -> Option<VirtIf> {
        let lrs = ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as u32 + 1;
        ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
        barrier::isb(barrier::SY);
        Some(VirtIf { list_registers: lrs, vcpu_if: None })
    }
}
