//! GICv2 (the Raspberry Pi 4's GIC-400; QEMU virt with `gic-version=2`): memory-mapped
//! distributor (GICD), CPU interface (GICC), virtual interface control (GICH); the virtual
//! CPU interface (GICV) is only ever mapped into a guest.
//!
//! Security: on a GIC with the Security Extensions (the real GIC-400) the hypervisor is the
//! Non-secure side: the firmware (the Pi's armstub) has put every interrupt in Group 1 and
//! the Non-secure views of GICD_CTLR/GICC_CTLR have one enable bit. Without them (QEMU's
//! raspi4b GIC) everything stays in Group 0, both groups are enabled and Group 0 is signalled
//! as IRQ (FIQEn clear). Either way interrupts reach EL2 as IRQs.

use super::{GicDriver, GicError, Irq, VirtIf};
use crate::dt::{Gic, GicVersion, Region};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use core::sync::atomic::{AtomicU64, Ordering};

// Distributor
const GICD_CTLR: u64 = 0x000;
const GICD_TYPER: u64 = 0x004;
const GICD_ISENABLER: u64 = 0x100;
const GICD_ICENABLER: u64 = 0x180;
const GICD_ICPENDR: u64 = 0x280;
const GICD_ICACTIVER: u64 = 0x380;
const GICD_IPRIORITYR: u64 = 0x400;
const GICD_ITARGETSR: u64 = 0x800;
const GICD_ICFGR: u64 = 0xc00;
const GICD_SGIR: u64 = 0xf00;
const GICD_CPENDSGIR: u64 = 0xf10;
const TYPER_SECURITY_EXTN: u32 = 1 << 10;
// CPU interface
const GICC_CTLR: u64 = 0x00;
const GICC_PMR: u64 = 0x04;
const GICC_BPR: u64 = 0x08;
const GICC_IAR: u64 = 0x0c;
const GICC_EOIR: u64 = 0x10;
const GICC_IIDR: u64 = 0xfc;
// Virtual interface control
const GICH_HCR: u64 = 0x00;
const GICH_VTR: u64 = 0x04;
const GICH_VMCR: u64 = 0x08;
const GICH_APR: u64 = 0xf0;
const GICH_LR0: u64 = 0x100;

/// Priority given to every interrupt (the middle of the range; the mask lets all through).
const PRIORITY: u32 = 0xa0;
/// Interrupt IDs from 1020 on are special (1022/1023: nothing to acknowledge).
const FIRST_SPECIAL: u32 = 1020;
/// GICv2 has at most 8 CPU interfaces.
const MAX_CPUS: usize = 8;
const VALID: u64 = 1 << 63;

fn rd(a: u64) -> u32 {
    // SAFETY: `a` is a register of the GIC the device tree describes, identity-mapped as
    // Device-nGnRE in the EL2 map (setup's `build_map`); 32-bit accesses are what GICv2
    // registers take.
    unsafe { core::ptr::read_volatile(a as *const u32) }
}
fn wr(a: u64, v: u32) {
    // SAFETY: as for `rd`.
    unsafe { core::ptr::write_volatile(a as *mut u32, v) }
}

/// A GICv2 and the interface numbers of the CPUs that initialised theirs.
pub struct GicV2 {
    dist: u64,
    cpu: u64,
    hyp: Option<u64>,
    vcpu: Option<Region>,
    /// Interrupt lines (SGIs and PPIs included).
    lines: u32,
    security: bool,
    /// Per CPU that ran `init_cpu`: VALID | MPIDR affinity << 8 | its CPU-interface mask.
    cpus: [AtomicU64; MAX_CPUS],
}

static V2: spin::Once<GicV2> = spin::Once::new();

fn affinity(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}

impl GicV2 {
    /// Check the GIC answers, then initialise the distributor: every interrupt disabled,
    /// not pending, not active, level-triggered, at [`PRIORITY`], SPIs routed to the calling
    /// CPU; then enabled.
    pub fn init(g: &Gic) -> Result<&'static GicV2, GicError> {
        let cpu = g.cpu_if.ok_or(GicError::Missing("GICv2 CPU interface (reg[1])"))?.base;
        // GICC_IIDR.ArchitectureVersion is 2 on a GICv2.
        if (rd(cpu + GICC_IIDR) >> 16) & 0xf != 2 {
            return Err(GicError::NotAGic);
        }
        let dist = g.dist.base;
        let typer = rd(dist + GICD_TYPER);
        let lines = (32 * ((typer & 0x1f) + 1)).min(FIRST_SPECIAL);
        let security = typer & TYPER_SECURITY_EXTN != 0;
        let gic = V2.call_once(|| GicV2 {
            dist,
            cpu,
            hyp: g.hyp_if.map(|r| r.base),
            vcpu: g.vcpu_if,
            lines,
            security,
            cpus: [const { AtomicU64::new(0) }; MAX_CPUS],
        });
        wr(dist + GICD_CTLR, 0);
        for i in 0..lines / 32 {
            let o = 4 * i as u64;
            wr(dist + GICD_ICENABLER + o, !0);
            wr(dist + GICD_ICPENDR + o, !0);
            wr(dist + GICD_ICACTIVER + o, !0);
        }
        // This CPU's interface mask: the banked ITARGETSR0 reads it back (0 on a GIC with
        // one interface).
        let me = (rd(dist + GICD_ITARGETSR) & 0xff).max(1);
        for i in 8..lines / 4 {
            let o = 4 * i as u64;
            wr(dist + GICD_IPRIORITYR + o, PRIORITY * 0x0101_0101);
            wr(dist + GICD_ITARGETSR + o, me * 0x0101_0101);
        }
        for i in 2..lines / 16 {
            wr(dist + GICD_ICFGR + 4 * i as u64, 0);
        }
        // Secure view absent: enable both groups; Non-secure view: bit 0 is Group 1.
        wr(dist + GICD_CTLR, if security { 1 } else { 3 });
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
            .find_map(|v| (v & VALID != 0 && (v & !VALID) >> 8 == affinity(mpidr)).then_some((v & 0xff) as u32))
    }

    fn set_enable(&self, intid: u32, reg: u64) {
        if intid < self.lines {
            wr(self.dist + reg + 4 * (intid / 32) as u64, 1 << (intid % 32));
        }
    }
}

impl GicDriver for GicV2 {
    fn version(&self) -> GicVersion {
        GicVersion::V2
    }

    fn init_cpu(&self) {
        let d = self.dist;
        // Banked for this CPU: SGIs and PPIs disabled, not pending, at PRIORITY.
        wr(d + GICD_ICENABLER, !0);
        wr(d + GICD_ICPENDR, !0);
        wr(d + GICD_ICACTIVER, !0);
        for i in 0..4 {
            wr(d + GICD_CPENDSGIR + 4 * i, !0);
        }
        for i in 0..8 {
            wr(d + GICD_IPRIORITYR + 4 * i, PRIORITY * 0x0101_0101);
        }
        let mask = (rd(d + GICD_ITARGETSR) & 0xff).max(1) as u64;
        let entry = VALID | affinity(MPIDR_EL1.get()) << 8 | mask;
        if !self.cpus.iter().any(|c| c.load(Ordering::Acquire) == entry) {
            let free =
                self.cpus.iter().find(|c| c.compare_exchange(0, entry, Ordering::AcqRel, Ordering::Acquire).is_ok());
            if free.is_none() {
                log::warn!("GICv2: more than {MAX_CPUS} CPUs: SGIs cannot reach MPIDR {:#x}", MPIDR_EL1.get());
            }
        }
        wr(self.cpu + GICC_PMR, 0xff);
        wr(self.cpu + GICC_BPR, 0);
        // EOImode 0 (EOI drops priority and deactivates); FIQEn 0 (Group 0 as IRQ).
        wr(self.cpu + GICC_CTLR, if self.security { 1 } else { 3 });
        barrier::isb(barrier::SY);
    }

    fn send_sgi(&self, mpidr: u64, sgi: u32) -> Result<(), GicError> {
        let mask = self.mask_of(mpidr).ok_or(GicError::UnknownCpu(mpidr))?;
        // What we wrote before must be visible to the CPU the SGI wakes.
        barrier::dsb(barrier::ISHST);
        wr(self.dist + GICD_SGIR, (mask << 16) | (sgi & 0xf));
        Ok(())
    }

    fn ack(&self) -> Option<Irq> {
        let raw = rd(self.cpu + GICC_IAR);
        let intid = raw & 0x3ff;
        (intid < FIRST_SPECIAL).then_some(Irq { intid, raw })
    }

    fn eoi(&self, irq: Irq) {
        wr(self.cpu + GICC_EOIR, irq.raw);
    }

    fn enable(&self, intid: u32) {
        self.set_enable(intid, GICD_ISENABLER);
    }

    fn disable(&self, intid: u32) {
        self.set_enable(intid, GICD_ICENABLER);
    }

    fn init_virt(&self) -> Option<VirtIf> {
        let h = self.hyp?;
        let list_registers = (rd(h + GICH_VTR) & 0x3f) + 1;
        for i in 0..list_registers as u64 {
            wr(h + GICH_LR0 + 4 * i, 0);
        }
        wr(h + GICH_APR, 0);
        wr(h + GICH_VMCR, 0);
        // En: the virtual CPU interface signals what the list registers hold (nothing yet);
        // no maintenance interrupt is asked for.
        wr(h + GICH_HCR, 1);
        Some(VirtIf { list_registers, vcpu_if: self.vcpu })
    }
}
