//! GICv2 (the Raspberry Pi 4's GIC-400; QEMU virt with `gic-version=2`): memory-mapped
//! distributor (GICD), CPU interface (GICC), virtual interface control (GICH); the virtual
//! CPU interface (GICV) is only ever mapped into a guest.
//!
//! Security: on a GIC with the Security Extensions (the real GIC-400) the hypervisor is the
//! Non-secure side: the firmware (the Pi's armstub) has put every interrupt in Group 1 and
//! the Non-secure views of GICD_CTLR/GICC_CTLR have one enable bit. Without them (QEMU's
//! raspi4b GIC) everything stays in Group 0, both groups are enabled and Group 0 is signalled
//! as IRQ (FIQEn clear). Either way interrupts reach EL2 as IRQs.

use super::{GicDriver, GicError, Irq, Mmio, VirtIf};
use crate::dt::{Gic, GicVersion, Region};
use crate::gic::SPI_END;
use crate::gic::regs::{GICC_CTLR, GICC_IAR, GICD_SGIR, GICD_TYPER, GICH_HCR, GICH_LR, GICH_VTR, Gicc, Gicd, Gich};
use crate::hw::IrqOp;
use crate::sysreg::mpidr_affinity;
use crate::vgic::Lr;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use core::sync::atomic::{AtomicU64, Ordering};
use tock_registers::interfaces::ReadWriteable;
use tock_registers::interfaces::Writeable;

/// Priority given to every interrupt (the middle of the range; the mask lets all through).
const PRIORITY: u32 = 0xa0;
/// GICv2 has at most 8 CPU interfaces.
const MAX_CPUS: usize = 8;
const VALID: u64 = 1 << 63;

/// A GICv2 and the interface numbers of the CPUs that initialised theirs.
pub struct GicV2 {
    dist: Mmio<Gicd>,
    cpu: Mmio<Gicc>,
    hyp: Option<Mmio<Gich>>,
    vcpu: Option<Region>,
    /// Interrupt lines (SGIs and PPIs included).
    lines: u32,
    security: bool,
    /// Per CPU that ran `init_cpu`: VALID | MPIDR affinity << 8 | its CPU-interface mask.
    cpus: [AtomicU64; MAX_CPUS],
    /// The maintenance interrupt (the device tree's, or PPI 9).
    maintenance: u32,
}

static V2: spin::Once<GicV2> = spin::Once::new();

impl GicV2 {
    /// Check the GIC answers, then initialise the distributor: every interrupt disabled,
    /// not pending, not active, level-triggered, at [`PRIORITY`], SPIs routed to the calling
    /// CPU; then enabled.
    pub fn init(g: &Gic) -> Result<&'static GicV2, GicError> {
        let cpu_base = g.cpu_if.ok_or(GicError::Missing("GICv2 CPU interface (reg[1])"))?.base;
        // SAFETY: the CPU interface's frame from the device tree, mapped as Device memory by
        // the boot code (`build_map`) for good.
        let cpu: Mmio<Gicc> = unsafe { Mmio::new(cpu_base) };
        // GICC_IIDR.ArchitectureVersion is 2 on a GICv2.
        if (cpu.iidr.get() >> 16) & 0xf != 2 {
            return Err(GicError::NotAGic);
        }
        // SAFETY: as above, the distributor's frame.
        let dist: Mmio<Gicd> = unsafe { Mmio::new(g.dist.base) };
        let lines = (32 * (dist.typer.read(GICD_TYPER::IT_LINES) + 1)).min(SPI_END);
        let security = dist.typer.is_set(GICD_TYPER::SECURITY_EXTN);
        // SAFETY: as above, the virtual interface control frame, when there is one.
        let hyp = g.hyp_if.map(|r| unsafe { Mmio::new(r.base) });
        let gic = V2.call_once(|| GicV2 {
            dist,
            cpu,
            hyp,
            vcpu: g.vcpu_if,
            lines,
            security,
            cpus: [const { AtomicU64::new(0) }; MAX_CPUS],
            maintenance: g.maintenance_irq.unwrap_or(25),
        });
        let d = &gic.dist;
        d.ctlr.set(0);
        for i in 0..(lines / 32) as usize {
            d.icenabler[i].set(!0);
            d.icpendr[i].set(!0);
            d.icactiver[i].set(!0);
        }
        // This CPU's interface mask: the banked ITARGETSR0 reads it back (0 on a GIC with
        // one interface).
        let me = (d.itargetsr[0].get() & 0xff).max(1);
        for i in 8..(lines / 4) as usize {
            d.ipriorityr[i].set(PRIORITY * 0x0101_0101);
            d.itargetsr[i].set(me * 0x0101_0101);
        }
        for i in 2..(lines / 16) as usize {
            d.icfgr[i].set(0);
        }
        // Secure view absent: enable both groups; Non-secure view: bit 0 is Group 1.
        d.ctlr.set(if security { 1 } else { 3 });
        log::info!(
            "GICv2: {} interrupt lines, Security Extensions {}; distributor enabled, every interrupt disabled",
            lines,
            if security { "present (we are Non-secure: Group 1)" } else { "absent (Group 0 as IRQ)" }
        );
        Ok(gic)
    }

    fn mask_of(&self, mpidr: u64) -> Option<u32> {
        self.cpus
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .find_map(|v| (v & VALID != 0 && (v & !VALID) >> 8 == mpidr_affinity(mpidr)).then_some((v & 0xff) as u32))
    }
}

impl GicDriver for GicV2 {
    fn version(&self) -> GicVersion {
        GicVersion::V2
    }

    fn init_cpu(&self) {
        let d = &self.dist;
        // Banked for this CPU: SGIs and PPIs disabled, not pending, at PRIORITY.
        d.icenabler[0].set(!0);
        d.icpendr[0].set(!0);
        d.icactiver[0].set(!0);
        for r in d.cpendsgir.iter() {
            r.set(!0);
        }
        for r in &d.ipriorityr[..8] {
            r.set(PRIORITY * 0x0101_0101);
        }
        let mask = (d.itargetsr[0].get() & 0xff).max(1) as u64;
        let entry = VALID | mpidr_affinity(MPIDR_EL1.get()) << 8 | mask;
        if !self.cpus.iter().any(|c| c.load(Ordering::Acquire) == entry) {
            let free =
                self.cpus.iter().find(|c| c.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Acquire).is_ok());
            if free.is_none() {
                log::warn!("GICv2: more than {MAX_CPUS} CPUs: SGIs cannot reach MPIDR {:#x}", MPIDR_EL1.get());
            }
        }
        self.cpu.pmr.set(0xff);
        self.cpu.bpr.set(0);
        // EOImode 1 (EOI drops the priority, GICC_DIR deactivates); FIQEn 0 (Group 0 as
        // IRQ). (With the Security Extensions this is the Non-secure view: bit 0 enables
        // Group 1 and EOImodeNS is bit 9.)
        self.cpu.ctlr.write(if self.security {
            GICC_CTLR::ENABLE_GRP0::SET + GICC_CTLR::EOI_MODE_NS::SET
        } else {
            GICC_CTLR::ENABLE_GRP0::SET + GICC_CTLR::ENABLE_GRP1::SET + GICC_CTLR::EOI_MODE_NS::SET
        });
        barrier::isb(barrier::SY);
    }

    fn send_sgi(&self, mpidr: u64, sgi: u32) -> Result<(), GicError> {
        let mask = self.mask_of(mpidr).ok_or(GicError::UnknownCpu(mpidr))?;
        // What we wrote before must be visible to the CPU the SGI wakes.
        barrier::dsb(barrier::ISHST);
        self.dist.sgir.write(
            GICD_SGIR::TARGET_LIST_FILTER::List
                + GICD_SGIR::CPU_TARGET_LIST.val(mask)
                + GICD_SGIR::SGI_INTID.val(sgi & 0xf),
        );
        Ok(())
    }

    fn ack(&self) -> Option<Irq> {
        let raw = self.cpu.iar.get();
        let intid = raw & GICC_IAR::INTERRUPT_ID.mask;
        (intid < SPI_END).then_some(Irq { intid, raw })
    }

    fn eoi(&self, irq: Irq) {
        self.cpu.eoir.set(irq.raw);
        self.cpu.dir.set(irq.raw);
    }

    fn priority_drop(&self, irq: Irq) {
        self.cpu.eoir.set(irq.raw);
    }

    fn irq_op(&self, intid: u32, op: IrqOp, target_mpidr: u64) {
        if intid < crate::gic::PPI_END || intid >= self.lines {
            return;
        }
        let (w, bit) = ((intid / 32) as usize, 1u32 << (intid % 32));
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
                if let Some(mask) = self.mask_of(target_mpidr) {
                    let r = &d.itargetsr[(intid / 4) as usize];
                    let shift = 8 * (intid % 4);
                    r.set((r.get() & !(0xff << shift)) | (mask << shift));
                }
            }
        }
    }

    fn read_lr(&self, n: usize) -> Lr {
        let Some(h) = self.hyp.as_ref() else { return Lr::default() };
        let r = tock_registers::LocalRegisterCopy::<u32, GICH_LR::Register>::new(h.lr[n].get());
        let hw = r.is_set(GICH_LR::HW);
        let state = r.read(GICH_LR::STATE);
        Lr {
            vintid: r.read(GICH_LR::VIRTUAL_ID),
            pending: state & 1 != 0,
            active: state & 2 != 0,
            priority: (r.read(GICH_LR::PRIORITY) << 3) as u8,
            group1: r.is_set(GICH_LR::GROUP1),
            hw: hw.then(|| r.read(GICH_LR::PHYSICAL_ID) as u16),
            source: if hw { 0 } else { r.read(GICH_LR::CPU_ID) as u8 },
            eoi_maintenance: !hw && r.is_set(GICH_LR::EOI),
        }
    }

    fn write_lr(&self, n: usize, lr: &Lr) {
        let Some(h) = self.hyp.as_ref() else { return };
        let state = lr.pending as u32 | ((lr.active as u32) << 1);
        let mut v = GICH_LR::VIRTUAL_ID.val(lr.vintid & 0x3ff)
            + GICH_LR::PRIORITY.val((lr.priority >> 3) as u32)
            + GICH_LR::STATE.val(state);
        if lr.group1 {
            v += GICH_LR::GROUP1::SET;
        }
        match lr.hw {
            Some(p) => v += GICH_LR::HW::SET + GICH_LR::PHYSICAL_ID.val(p as u32),
            None => {
                v += GICH_LR::CPU_ID.val(lr.source as u32 & 7);
                if lr.eoi_maintenance {
                    v += GICH_LR::EOI::SET;
                }
            }
        }
        h.lr[n].set(if state == 0 { 0 } else { v.value });
    }

    fn set_underflow(&self, on: bool) {
        if let Some(h) = self.hyp.as_ref() {
            h.hcr.modify(if on { GICH_HCR::UIE::SET } else { GICH_HCR::UIE::CLEAR });
        }
    }

    fn vpmr(&self) -> u8 {
        // GICH_VMCR.PriorityMask: bits 31:27, the upper 5 bits of the mask.
        self.hyp.as_ref().map_or(0xff, |h| ((h.vmcr.get() >> 27) << 3) as u8)
    }

    fn maintenance_irq(&self) -> u32 {
        self.maintenance
    }

    fn lines(&self) -> u32 {
        self.lines
    }

    fn id_bits(&self) -> u32 {
        9 // (10-bit INTIDs)
    }

    fn enable(&self, intid: u32) {
        if intid < self.lines {
            self.dist.isenabler[(intid / 32) as usize].set(1 << (intid % 32));
        }
    }

    fn disable(&self, intid: u32) {
        if intid < self.lines {
            self.dist.icenabler[(intid / 32) as usize].set(1 << (intid % 32));
        }
    }

    fn init_virt(&self) -> Option<VirtIf> {
        let h = self.hyp.as_ref()?;
        let list_registers = (h.vtr.read(GICH_VTR::LIST_REGS) + 1).min(64);
        for lr in &h.lr[..list_registers as usize] {
            lr.set(0);
        }
        h.apr.set(0);
        h.vmcr.set(0);
        // En: the virtual CPU interface signals what the list registers hold (nothing yet);
        // no maintenance interrupt is asked for.
        h.hcr.write(GICH_HCR::EN::SET);
        Some(VirtIf { list_registers, vcpu_if: self.vcpu })
    }
}
