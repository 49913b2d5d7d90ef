//! A guest-side GIC driver (GICv3 and GICv2), as small as the test guests need: the
//! distributor and (GICv3) redistributors through MMIO, the CPU interface through the
//! `ICC_*_EL1` system registers (GICv3) or the GICC frame (GICv2; under a hypervisor the
//! hardware's virtual CPU interface, GICV, mapped there).
//!
//! Everything comes from the device tree ([`crate::platform::GicNode`]). [`init`] runs once
//! on the boot CPU (before secondaries start): it finds the GIC and sets the distributor up
//! (every SPI disabled, interrupts enabled at the distributor). Each CPU then calls
//! [`Gic::cpu_init`] for its own redistributor (found by walking the frames for its MPIDR)
//! and CPU interface: SGIs enabled, PPIs disabled, every private interrupt at
//! [`DEFAULT_PRIORITY`], priority mask open, smallest binary point, EOImode 0 (an EOI also
//! deactivates).
//!
//! Register accesses are single `ldr`/`str` instructions of the register's width without
//! writeback, so a hypervisor can decode them from the syndrome.

use crate::Global;
use crate::platform::{GicNode, GicVersion, Platform};
use crate::smp::{self, MAX_CPUS};
use core::arch::asm;

/// Distributor register offsets.
pub mod gicd {
    pub const CTLR: u64 = 0x0000;
    pub const TYPER: u64 = 0x0004;
    pub const IIDR: u64 = 0x0008;
    pub const TYPER2: u64 = 0x000c;
    pub const STATUSR: u64 = 0x0010;
    pub const IGROUPR: u64 = 0x0080;
    pub const ISENABLER: u64 = 0x0100;
    pub const ICENABLER: u64 = 0x0180;
    pub const ISPENDR: u64 = 0x0200;
    pub const ICPENDR: u64 = 0x0280;
    pub const ISACTIVER: u64 = 0x0300;
    pub const ICACTIVER: u64 = 0x0380;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ITARGETSR: u64 = 0x0800;
    pub const ICFGR: u64 = 0x0c00;
    pub const IGRPMODR: u64 = 0x0d00;
    pub const NSACR: u64 = 0x0e00;
    pub const SGIR: u64 = 0x0f00;
    pub const CPENDSGIR: u64 = 0x0f10;
    pub const SPENDSGIR: u64 = 0x0f20;
    /// GICv2 ICPIDR2 (the ID block of a 4 KiB distributor).
    pub const PIDR2_V2: u64 = 0x0fe8;
    /// GICv3 GICD_PIDR2 (the ID block of a 64 KiB distributor).
    pub const PIDR2_V3: u64 = 0xffe8;
    /// GICv3 IROUTER<n> is at `IROUTER + 8 * n` (n >= 32).
    pub const IROUTER: u64 = 0x6000;
    /// GICD_CTLR (GICv3, one security state as a non-secure guest sees it).
    pub const CTLR_ENABLE_GRP1A: u32 = 1 << 1;
    pub const CTLR_ARE_NS: u32 = 1 << 4;
    pub const CTLR_RWP: u32 = 1 << 31;
    /// GICD_CTLR (GICv2).
    pub const CTLR_ENABLE: u32 = 1;
}

/// Redistributor register offsets (RD_base frame; the SGI_base frame follows at [`SGI_BASE`]).
pub mod gicr {
    pub const CTLR: u64 = 0x0000;
    pub const IIDR: u64 = 0x0004;
    pub const TYPER: u64 = 0x0008;
    pub const STATUSR: u64 = 0x0010;
    pub const WAKER: u64 = 0x0014;
    pub const PROPBASER: u64 = 0x0070;
    pub const PENDBASER: u64 = 0x0078;
    pub const SYNCR: u64 = 0x00c0;
    pub const PIDR2: u64 = 0xffe8;
    /// The SGI_base frame, relative to RD_base.
    pub const SGI_BASE: u64 = 0x1_0000;
    /// One redistributor: RD_base + SGI_base (no VLPI frames).
    pub const STRIDE: u64 = 0x2_0000;
    /// SGI_base offsets (relative to SGI_base).
    pub const IGROUPR0: u64 = 0x0080;
    pub const ISENABLER0: u64 = 0x0100;
    pub const ICENABLER0: u64 = 0x0180;
    pub const ISPENDR0: u64 = 0x0200;
    pub const ICPENDR0: u64 = 0x0280;
    pub const ISACTIVER0: u64 = 0x0300;
    pub const ICACTIVER0: u64 = 0x0380;
    pub const IPRIORITYR: u64 = 0x0400;
    pub const ICFGR0: u64 = 0x0c00;
    pub const ICFGR1: u64 = 0x0c04;
    pub const IGRPMODR0: u64 = 0x0d00;
    pub const NSACR: u64 = 0x0e00;
    /// GICR_TYPER fields.
    pub const TYPER_LAST: u64 = 1 << 4;
    pub const TYPER_VLPIS: u64 = 1 << 1;
    /// GICR_WAKER fields.
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
}

/// GICv2 CPU interface register offsets.
pub mod gicc {
    pub const CTLR: u64 = 0x0000;
    pub const PMR: u64 = 0x0004;
    pub const BPR: u64 = 0x0008;
    pub const IAR: u64 = 0x000c;
    pub const EOIR: u64 = 0x0010;
    pub const RPR: u64 = 0x0014;
    pub const HPPIR: u64 = 0x0018;
    pub const APR0: u64 = 0x00d0;
    pub const IIDR: u64 = 0x00fc;
}

/// First SPI.
pub const SPI_BASE: u32 = 32;
/// INTIDs 1020..1023 are special; 1023 is "no pending interrupt".
pub const SPURIOUS: u32 = 1023;
/// The priority [`Gic::cpu_init`] gives every private interrupt (Linux's default).
pub const DEFAULT_PRIORITY: u8 = 0xa0;

// ---- MMIO ---------------------------------------------------------------------------------------

/// 32-bit MMIO read (one `ldr w`).
#[inline(always)]
pub fn read32(addr: u64) -> u32 {
    let v: u32;
    // SAFETY: a device-register read at an address the caller took from the device tree's
    // GIC node (identity-mapped as Device memory by the runtime); no Rust memory involved.
    unsafe { asm!("ldr {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags)) };
    v
}

/// 32-bit MMIO write (one `str w`).
#[inline(always)]
pub fn write32(addr: u64, v: u32) {
    // SAFETY: as `read32`: a device-register write, no Rust memory involved.
    unsafe { asm!("str {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags)) };
}

/// 64-bit MMIO read (one `ldr x`).
#[inline(always)]
pub fn read64(addr: u64) -> u64 {
    let v: u64;
    // SAFETY: as `read32`.
    unsafe { asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags)) };
    v
}

/// 64-bit MMIO write (one `str x`).
#[inline(always)]
pub fn write64(addr: u64, v: u64) {
    // SAFETY: as `write32`.
    unsafe { asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) v, options(nostack, preserves_flags)) };
}

/// 8-bit MMIO read (one `ldrb`).
#[inline(always)]
pub fn read8(addr: u64) -> u8 {
    let v: u32;
    // SAFETY: as `read32`.
    unsafe { asm!("ldrb {v:w}, [{a}]", a = in(reg) addr, v = out(reg) v, options(nostack, preserves_flags)) };
    v as u8
}

/// 8-bit MMIO write (one `strb`).
#[inline(always)]
pub fn write8(addr: u64, v: u8) {
    // SAFETY: as `write32`.
    unsafe { asm!("strb {v:w}, [{a}]", a = in(reg) addr, v = in(reg) v as u32, options(nostack, preserves_flags)) };
}

// ---- GICv3 system registers ------------------------------------------------------------------

macro_rules! sysreg_rw {
    ($get:ident, $set:ident, $name:literal) => {
        #[inline(always)]
        pub fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading a GIC CPU interface register (the virtual one under a
            // hypervisor); only IAR reads change state, and callers know that.
            unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        #[inline(always)]
        pub fn $set(v: u64) {
            // SAFETY: writing a GIC CPU interface register changes interrupt state only;
            // the `isb` makes it take effect before the next instruction.
            unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

/// The GICv3 CPU interface system registers (`ICC_*_EL1`; `ICV_*` under a hypervisor).
pub mod icc {
    use core::arch::asm;
    sysreg_rw!(sre, set_sre, "icc_sre_el1");
    sysreg_rw!(pmr, set_pmr, "icc_pmr_el1");
    sysreg_rw!(bpr1, set_bpr1, "icc_bpr1_el1");
    sysreg_rw!(ctlr, set_ctlr, "icc_ctlr_el1");
    sysreg_rw!(igrpen1, set_igrpen1, "icc_igrpen1_el1");
    sysreg_rw!(ap1r0, set_ap1r0, "icc_ap1r0_el1");

    /// ICC_IAR1_EL1: acknowledges the highest-priority pending Group 1 interrupt.
    #[inline(always)]
    pub fn iar1() -> u64 {
        let v: u64;
        // SAFETY: acknowledging changes interrupt state only (no memory).
        unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    /// ICC_EOIR1_EL1.
    #[inline(always)]
    pub fn eoir1(v: u64) {
        // SAFETY: ends an interrupt (priority drop and, EOImode 0, deactivation).
        unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) v, options(nostack, preserves_flags)) };
    }
    /// ICC_RPR_EL1 (running priority).
    #[inline(always)]
    pub fn rpr() -> u64 {
        let v: u64;
        // SAFETY: reading the running priority has no side effects.
        unsafe { asm!("mrs {}, icc_rpr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    /// ICC_HPPIR1_EL1 (highest-priority pending Group 1 interrupt).
    #[inline(always)]
    pub fn hppir1() -> u64 {
        let v: u64;
        // SAFETY: reading has no side effects.
        unsafe { asm!("mrs {}, icc_hppir1_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    /// ICC_SGI1R_EL1: generates a Group 1 SGI (the `isb` makes sure it has been issued).
    #[inline(always)]
    pub fn sgi1r(v: u64) {
        // SAFETY: generating an SGI changes interrupt state only. Not `nomem`: the
        // interrupt may run code (when unmasked) that reads memory this CPU wrote.
        unsafe { asm!("msr icc_sgi1r_el1, {}", "isb", in(reg) v, options(nostack, preserves_flags)) };
    }
}

/// An ICC_SGI1R_EL1 value: SGI `sgi` to the CPUs with affinity `aff3.aff2.aff1` whose Aff0
/// is `16 * rs + n` for each bit n of `list`.
pub const fn sgi1r(sgi: u32, aff3: u8, aff2: u8, aff1: u8, rs: u8, list: u16) -> u64 {
    ((aff3 as u64) << 48)
        | (((rs & 0xf) as u64) << 44)
        | ((aff2 as u64) << 32)
        | (((sgi & 0xf) as u64) << 24)
        | ((aff1 as u64) << 16)
        | list as u64
}
/// ICC_SGI1R_EL1.IRM: every PE but the sender.
pub const SGI1R_IRM: u64 = 1 << 40;

/// A GICD_SGIR value (GICv2): `filter` 0 = the CPUs in `list`, 1 = every CPU but the
/// sender, 2 = the sender only, 3 = reserved.
pub const fn sgir(sgi: u32, filter: u32, list: u8) -> u32 {
    ((filter & 3) << 24) | ((list as u32) << 16) | (sgi & 0xf)
}

/// Where an SGI goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTarget {
    /// The sending CPU.
    Me,
    /// Every CPU but the sender.
    Others,
    /// The logical CPUs in the mask (bit n = logical CPU n, see [`crate::smp`]).
    Cpus(u8),
}

// ---- the driver -----------------------------------------------------------------------------------

/// The GIC as found in the device tree, with each CPU's redistributor once it ran
/// [`Gic::cpu_init`].
pub struct Gic {
    pub version: GicVersion,
    /// The distributor's base and size.
    pub dist: u64,
    pub dist_size: u64,
    /// GICv2: the CPU interface.
    pub cpu_if: u64,
    /// GICv3: the redistributor regions.
    pub node: GicNode,
    /// One past the highest INTID, from GICD_TYPER.ITLines.
    pub nr_lines: u32,
    /// GICv3: each logical CPU's RD_base (0 until it ran `cpu_init`).
    rd: [core::sync::atomic::AtomicU64; MAX_CPUS],
}

static GIC: Global<Option<Gic>> = Global::new(None);

/// Why [`init`] failed.
#[derive(Debug)]
pub enum InitError {
    NoGic,
    NoCpuInterface,
    NoRedistributor,
}

/// Finds the GIC in the device tree and sets up the distributor. Boot CPU only, before any
/// secondary starts.
pub fn init(p: &Platform) -> Result<&'static Gic, InitError> {
    let node = p.gic.ok_or(InitError::NoGic)?;
    let cpu_if = match node.version {
        GicVersion::V2 => node.cpu_if.ok_or(InitError::NoCpuInterface)?.base,
        GicVersion::V3 => {
            if node.redist.is_empty() {
                return Err(InitError::NoRedistributor);
            }
            0
        }
    };
    let typer = read32(node.dist.base + gicd::TYPER);
    let nr_lines = (32 * ((typer & 0x1f) + 1)).min(1020);
    let g = Gic {
        version: node.version,
        dist: node.dist.base,
        dist_size: node.dist.size,
        cpu_if,
        node,
        nr_lines,
        rd: [const { core::sync::atomic::AtomicU64::new(0) }; MAX_CPUS],
    };
    // SAFETY: boot CPU, no secondary started yet (the caller's contract), no reference to
    // the value is live.
    unsafe { *GIC.get_mut() = Some(g) };
    let g = get();
    g.dist_init();
    Ok(g)
}

/// The GIC set up by [`init`] (panics before).
pub fn get() -> &'static Gic {
    // SAFETY: written once by `init` before any other CPU runs, read-only afterwards.
    unsafe { (*GIC.as_ptr()).as_ref() }.expect("gic::init not called")
}

impl Gic {
    pub fn is_v3(&self) -> bool {
        self.version == GicVersion::V3
    }

    /// Distributor register at `off`.
    pub fn d(&self, off: u64) -> u64 {
        self.dist + off
    }

    /// This CPU's RD_base (GICv3; 0 before `cpu_init`).
    pub fn rd(&self) -> u64 {
        self.rd_of(smp::cpu_id())
    }

    /// Logical CPU `cpu`'s RD_base (GICv3; 0 if it has not run `cpu_init`).
    pub fn rd_of(&self, cpu: usize) -> u64 {
        self.rd[cpu.min(MAX_CPUS - 1)].load(core::sync::atomic::Ordering::Acquire)
    }

    /// This CPU's SGI_base (GICv3).
    pub fn sgi_base(&self) -> u64 {
        self.rd() + gicr::SGI_BASE
    }

    /// GICv3: the redistributor frames in device-tree order: (RD_base, GICR_TYPER), up to
    /// the one marked Last in each region (at most `out.len()`). Returns how many.
    pub fn redist_frames(&self, out: &mut [(u64, u64)]) -> usize {
        let mut n = 0;
        for r in self.node.redist.iter() {
            let mut a = r.base;
            while a + gicr::STRIDE <= r.end() && n < out.len() {
                let t = read64(a + gicr::TYPER);
                out[n] = (a, t);
                n += 1;
                if t & gicr::TYPER_LAST != 0 {
                    break;
                }
                a += if t & gicr::TYPER_VLPIS != 0 { 2 * gicr::STRIDE } else { gicr::STRIDE };
            }
        }
        n
    }

    /// The register holding `intid`'s bit in a bitmap bank (`bank` = a GICD offset such as
    /// [`gicd::ISENABLER`]): this CPU's SGI_base for private ones on GICv3.
    pub fn bit_reg(&self, bank: u64, intid: u32) -> (u64, u32) {
        let bit = 1 << (intid % 32);
        if self.is_v3() && intid < SPI_BASE {
            (self.sgi_base() + bank, bit)
        } else {
            (self.dist + bank + 4 * (intid / 32) as u64, bit)
        }
    }

    /// The byte register of `intid` in a byte bank ([`gicd::IPRIORITYR`] or
    /// [`gicd::ITARGETSR`]): this CPU's SGI_base for private ones on GICv3.
    pub fn byte_reg(&self, bank: u64, intid: u32) -> u64 {
        if self.is_v3() && intid < SPI_BASE {
            self.sgi_base() + bank + intid as u64
        } else {
            self.dist + bank + intid as u64
        }
    }

    pub fn enable(&self, intid: u32) {
        let (r, b) = self.bit_reg(gicd::ISENABLER, intid);
        write32(r, b);
    }
    pub fn disable(&self, intid: u32) {
        let (r, b) = self.bit_reg(gicd::ICENABLER, intid);
        write32(r, b);
    }
    pub fn is_enabled(&self, intid: u32) -> bool {
        let (r, b) = self.bit_reg(gicd::ISENABLER, intid);
        read32(r) & b != 0
    }
    pub fn set_pending(&self, intid: u32) {
        let (r, b) = self.bit_reg(gicd::ISPENDR, intid);
        write32(r, b);
    }
    pub fn clear_pending(&self, intid: u32) {
        let (r, b) = self.bit_reg(gicd::ICPENDR, intid);
        write32(r, b);
    }
    pub fn is_pending(&self, intid: u32) -> bool {
        let (r, b) = self.bit_reg(gicd::ISPENDR, intid);
        read32(r) & b != 0
    }
    pub fn set_active(&self, intid: u32) {
        let (r, b) = self.bit_reg(gicd::ISACTIVER, intid);
        write32(r, b);
    }
    pub fn clear_active(&self, intid: u32) {
        let (r, b) = self.bit_reg(gicd::ICACTIVER, intid);
        write32(r, b);
    }
    pub fn is_active(&self, intid: u32) -> bool {
        let (r, b) = self.bit_reg(gicd::ISACTIVER, intid);
        read32(r) & b != 0
    }
    pub fn set_priority(&self, intid: u32, prio: u8) {
        write8(self.byte_reg(gicd::IPRIORITYR, intid), prio);
    }
    pub fn priority(&self, intid: u32) -> u8 {
        read8(self.byte_reg(gicd::IPRIORITYR, intid))
    }

    /// Sets up the distributor: disabled while every SPI is disabled, its pending and
    /// active state cleared, priority [`DEFAULT_PRIORITY`], level-triggered and routed to the
    /// boot CPU; then enabled (GICv3: affinity routing, Group 1).
    pub fn dist_init(&self) {
        write32(self.d(gicd::CTLR), 0);
        self.wait_rwp();
        for i in (SPI_BASE..self.nr_lines).step_by(32) {
            let w = 4 * (i / 32) as u64;
            write32(self.d(gicd::ICENABLER + w), !0);
            write32(self.d(gicd::ICPENDR + w), !0);
            write32(self.d(gicd::ICACTIVER + w), !0);
        }
        let prio = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
        for i in (SPI_BASE..self.nr_lines).step_by(4) {
            write32(self.d(gicd::IPRIORITYR + i as u64), prio);
        }
        for i in (SPI_BASE..self.nr_lines).step_by(16) {
            write32(self.d(gicd::ICFGR + (i / 4) as u64), 0);
        }
        match self.version {
            GicVersion::V3 => {
                let aff = aff_to_irouter(smp::mpidr());
                for i in SPI_BASE..self.nr_lines {
                    write64(self.d(gicd::IROUTER + 8 * i as u64), aff);
                }
                write32(self.d(gicd::CTLR), gicd::CTLR_ARE_NS | gicd::CTLR_ENABLE_GRP1A);
            }
            GicVersion::V2 => {
                for i in (SPI_BASE..self.nr_lines).step_by(4) {
                    write32(self.d(gicd::ITARGETSR + i as u64), 0x0101_0101);
                }
                write32(self.d(gicd::CTLR), gicd::CTLR_ENABLE);
            }
        }
        self.wait_rwp();
    }

    /// GICv3: waits until GICD_CTLR.RWP is clear (a bounded number of reads).
    fn wait_rwp(&self) {
        if self.is_v3() {
            for _ in 0..100_000 {
                if read32(self.d(gicd::CTLR)) & gicd::CTLR_RWP == 0 {
                    break;
                }
            }
        }
    }

    /// Sets up this CPU's redistributor (GICv3) and CPU interface; see the module docs.
    /// Returns false if this CPU has no redistributor (GICv3).
    pub fn cpu_init(&self) -> bool {
        let cpu = smp::cpu_id();
        if self.is_v3() {
            let me = mpidr_to_aff32(smp::mpidr());
            let mut frames = [(0u64, 0u64); 16];
            let n = self.redist_frames(&mut frames);
            let Some(&(rd, _)) = frames[..n].iter().find(|(_, t)| (t >> 32) as u32 == me) else {
                return false;
            };
            self.rd[cpu.min(MAX_CPUS - 1)].store(rd, core::sync::atomic::Ordering::Release);
            let w = read32(rd + gicr::WAKER);
            write32(rd + gicr::WAKER, w & !gicr::WAKER_PROCESSOR_SLEEP);
            for _ in 0..100_000 {
                if read32(rd + gicr::WAKER) & gicr::WAKER_CHILDREN_ASLEEP == 0 {
                    break;
                }
            }
            let sgi = rd + gicr::SGI_BASE;
            write32(sgi + gicr::ICENABLER0, !0);
            write32(sgi + gicr::ICPENDR0, !0);
            write32(sgi + gicr::ICACTIVER0, !0);
            let prio = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
            for i in 0..8 {
                write32(sgi + gicr::IPRIORITYR + 4 * i, prio);
            }
            write32(sgi + gicr::ISENABLER0, 0xffff);
            // The system-register interface (Xen starts a vCPU with ICC_SRE_EL1.SRE clear).
            icc::set_sre(icc::sre() | 1);
            icc::set_pmr(0xff);
            icc::set_bpr1(0);
            icc::set_ctlr(0); // EOImode 0, CBPR 0
            icc::set_igrpen1(1);
        } else {
            write32(self.d(gicd::ICENABLER), 0xffff_0000);
            // (Whether SGIs can be disabled is implementation defined: a GIC-400's cannot,
            // Xen's virtual ones start disabled.)
            write32(self.d(gicd::ISENABLER), 0x0000_ffff);
            write32(self.d(gicd::ICPENDR), !0);
            write32(self.d(gicd::ICACTIVER), !0);
            for i in 0..4 {
                // (CPENDSGIR0-3: every source of every SGI; a hypervisor may refuse this,
                // hence the probe.)
                // SAFETY: a GIC register write; a refused one is a caught data abort.
                let _ = unsafe { crate::exception::probe_write_sized(self.d(gicd::CPENDSGIR + 4 * i), 4, !0) };
            }
            let prio = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
            for i in 0..8 {
                write32(self.d(gicd::IPRIORITYR + 4 * i), prio);
            }
            write32(self.cpu_if + gicc::PMR, 0xff);
            write32(self.cpu_if + gicc::BPR, 0);
            write32(self.cpu_if + gicc::CTLR, 1); // EnableGrp0 (the virtual interface's group), EOImode 0
        }
        true
    }

    /// Acknowledges the highest-priority pending interrupt: the raw IAR value (GICv2: with
    /// the source CPU of an SGI in bits 12:10).
    #[inline(always)]
    pub fn ack(&self) -> u32 {
        if self.is_v3() { icc::iar1() as u32 } else { read32(self.cpu_if + gicc::IAR) }
    }

    /// Ends the interrupt `iar` (as [`Gic::ack`] returned it).
    #[inline(always)]
    pub fn eoi(&self, iar: u32) {
        if self.is_v3() { icc::eoir1(iar as u64) } else { write32(self.cpu_if + gicc::EOIR, iar) }
    }

    /// The INTID of an IAR value.
    pub fn intid(&self, iar: u32) -> u32 {
        if self.is_v3() { iar & 0xff_ffff } else { iar & 0x3ff }
    }

    /// The source CPU of an IAR value (GICv2 SGIs; 0 otherwise).
    pub fn source(&self, iar: u32) -> u32 {
        if self.is_v3() { 0 } else { (iar >> 10) & 7 }
    }

    pub fn pmr(&self) -> u8 {
        if self.is_v3() { icc::pmr() as u8 } else { read32(self.cpu_if + gicc::PMR) as u8 }
    }

    pub fn set_pmr(&self, v: u8) {
        if self.is_v3() {
            icc::set_pmr(v as u64)
        } else {
            write32(self.cpu_if + gicc::PMR, v as u32);
            // SAFETY: a barrier only.
            unsafe { asm!("dsb sy", "isb", options(nostack, preserves_flags)) };
        }
    }

    /// The binary point register of the group this guest's interrupts are in (GICv3
    /// ICC_BPR1_EL1: group priority = bits [7:n]; GICv2 GICC_BPR, Group 0 under a
    /// hypervisor: bits [7:n+1]).
    pub fn bpr(&self) -> u32 {
        if self.is_v3() { icc::bpr1() as u32 } else { read32(self.cpu_if + gicc::BPR) }
    }

    pub fn set_bpr(&self, v: u32) {
        if self.is_v3() { icc::set_bpr1(v as u64) } else { write32(self.cpu_if + gicc::BPR, v) }
    }

    /// The group-priority mask the binary point `bpr` gives this guest's interrupts.
    pub fn group_mask(&self, bpr: u32) -> u8 {
        let shift = if self.is_v3() { bpr } else { bpr + 1 };
        (0xffu32 << shift.min(8)) as u8
    }

    /// The binary point that gives group-priority mask `mask` (0xf8, 0xf0, ..., 0x80).
    pub fn bpr_for_mask(&self, mask: u8) -> u32 {
        let shift = mask.trailing_zeros();
        if self.is_v3() { shift } else { shift.saturating_sub(1) }
    }

    /// The running priority (0xff when idle).
    pub fn rpr(&self) -> u8 {
        if self.is_v3() { icc::rpr() as u8 } else { read32(self.cpu_if + gicc::RPR) as u8 }
    }

    /// The first active-priorities register (GICv3 ICC_AP1R0_EL1, GICv2 GICC_APR0).
    pub fn apr0(&self) -> u32 {
        if self.is_v3() { icc::ap1r0() as u32 } else { read32(self.cpu_if + gicc::APR0) }
    }

    /// The highest-priority pending interrupt (HPPIR; 1023 if none).
    pub fn hppir(&self) -> u32 {
        if self.is_v3() { icc::hppir1() as u32 } else { read32(self.cpu_if + gicc::HPPIR) }
    }

    /// Sends SGI `sgi` to `to` (GICv3: ICC_SGI1R_EL1; GICv2: GICD_SGIR).
    pub fn send_sgi(&self, to: SgiTarget, sgi: u32) {
        match self.version {
            GicVersion::V3 => match to {
                SgiTarget::Me => icc::sgi1r(sgi1r_to_mpidr(sgi, smp::mpidr())),
                SgiTarget::Others => icc::sgi1r(sgi1r(sgi, 0, 0, 0, 0, 0) | SGI1R_IRM),
                SgiTarget::Cpus(mask) => {
                    for cpu in (0..8).filter(|c| mask & (1 << c) != 0) {
                        let m = if cpu == smp::cpu_id() { smp::mpidr() } else { smp::cpu_mpidr(cpu) };
                        icc::sgi1r(sgi1r_to_mpidr(sgi, m));
                    }
                }
            },
            GicVersion::V2 => {
                let v = match to {
                    SgiTarget::Me => sgir(sgi, 2, 0),
                    SgiTarget::Others => sgir(sgi, 1, 0),
                    // GICv2 CPU interface numbers are the logical CPU numbers here (the
                    // device tree lists the CPUs in interface order under QEMU and Xen).
                    SgiTarget::Cpus(mask) => sgir(sgi, 0, mask),
                };
                write32(self.d(gicd::SGIR), v);
                // SAFETY: a barrier only (the write has reached the distributor).
                unsafe { asm!("dsb sy", "isb", options(nostack, preserves_flags)) };
            }
        }
    }
}

/// The ICC_SGI1R_EL1 value that sends SGI `sgi` to the CPU with affinity `mpidr` only.
pub fn sgi1r_to_mpidr(sgi: u32, mpidr: u64) -> u64 {
    let aff0 = (mpidr & 0xff) as u8;
    sgi1r(sgi, (mpidr >> 32) as u8, (mpidr >> 16) as u8, (mpidr >> 8) as u8, aff0 / 16, 1 << (aff0 % 16))
}

/// MPIDR affinity as GICR_TYPER.Affinity_Value: Aff3.Aff2.Aff1.Aff0 in 32 bits.
pub fn mpidr_to_aff32(mpidr: u64) -> u32 {
    ((((mpidr >> 32) & 0xff) << 24) | (mpidr & 0xff_ffff)) as u32
}

/// MPIDR affinity in GICD_IROUTER's layout (Aff3 at 39:32, Aff2..Aff0 at 23:0; IRM = 0).
pub fn aff_to_irouter(mpidr: u64) -> u64 {
    mpidr & 0xff_00ff_ffff
}
