//! The virtual GIC's registers: the GICv3 distributor and redistributors, and the GICv2
//! distributor (a GICv2 guest's CPU interface is the hardware's virtual one, mapped in its
//! stage 2). Offsets come from the register maps the physical driver uses
//! ([`crate::gic::regs::offsets`]).
//!
//! Widths and the answers to what is not implemented are Xen 4.17's: the 32-bit registers
//! take word accesses only and IPRIORITYR (and GICv2's ITARGETSR and SGI pending registers)
//! bytes too; IROUTER and the 64-bit redistributor registers take 64- or 32-bit accesses;
//! any other width is refused with a data abort. Groups and security are RAZ/WI (a guest
//! sees one group, Group 1 with GICv3); LPIs, the ITS, SETSPI/CLRSPI and messages are
//! absent. An offset that names no register reads as zero and ignores writes (with a
//! rate-limited message). Pending and active state reads back as it is and its writes act,
//! as the architecture says (Xen 4.17 reads them as zero and ignores ICPENDR/ICACTIVER).

use super::{Kicks, State, Version, Vgic};
use crate::gic::regs::offsets::*;
use crate::gic::{PPI_END, SGI_END};
use crate::hw::{Hw, IrqOp};
use crate::mmio::Outcome;
use crate::sysreg::mpidr_to_aff32;

/// Xen 4.17's GICD_IIDR / GICR_IIDR values (vGICv2 0x43b, vGICv3 0x34c).
pub const IIDR_V2: u32 = 0x0000_043b;
pub const IIDR_V3: u32 = 0x0000_034c;
/// Peripheral ID 2 (ArchRev in bits 7:4): GICv3's as Xen gives it; a GIC-400's for GICv2.
pub const PIDR2_V3: u32 = 0x30;
pub const PIDR2_V2: u32 = 0x2b;
/// Component IDs 0-3 (every CoreSight component's).
const CIDR: [u32; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// Which frame of the virtual GIC an address falls in.
enum Frame {
    Dist(u64),
    /// vCPU `.0`'s redistributor, offset `.1` in its RD_base + SGI_base pair; `.2`: the last.
    Redist(usize, u64, bool),
    /// A redistributor frame with no vCPU (beyond the domain's): Xen aborts.
    Absent,
}

/// A bitmap register bank (a bit per interrupt).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bits {
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
}

fn bits_of(off: u64, base: u64) -> Option<(Bits, u64)> {
    let banks = [
        (GICD_ISENABLER, Bits::SetEnable),
        (GICD_ICENABLER, Bits::ClearEnable),
        (GICD_ISPENDR, Bits::SetPending),
        (GICD_ICPENDR, Bits::ClearPending),
        (GICD_ISACTIVER, Bits::SetActive),
        (GICD_ICACTIVER, Bits::ClearActive),
    ];
    banks.iter().find_map(|&(b, k)| (off >= base + b && off < base + b + 0x80).then_some((k, (off - base - b) / 4)))
}

impl Vgic {
    pub(super) fn frame_of(&self, ipa: u64) -> bool {
        self.frame(ipa).is_some()
    }

    fn frame(&self, ipa: u64) -> Option<Frame> {
        let dist_size = match self.cfg.version {
            Version::V2 => 0x1000,
            Version::V3 => 0x1_0000,
        };
        if ipa >= self.cfg.dist_base && ipa < self.cfg.dist_base + dist_size {
            return Some(Frame::Dist(ipa - self.cfg.dist_base));
        }
        let mut index = 0u64;
        for &(base, size) in &self.cfg.redist {
            if ipa >= base && ipa < base + size {
                let i = index + (ipa - base) / GICR_STRIDE;
                let off = (ipa - base) % GICR_STRIDE;
                let last_in_region = (ipa - base) / GICR_STRIDE + 1 == size / GICR_STRIDE;
                return Some(match usize::try_from(i) {
                    Ok(v) if v < self.cpus.len() => Frame::Redist(v, off, last_in_region || v + 1 == self.cpus.len()),
                    _ => Frame::Absent,
                });
            }
            index += size / GICR_STRIDE;
        }
        None
    }

    /// A trapped access of vCPU `vcpu` at `ipa` of `size` bytes (`value` for a write). `None`
    /// if the address is not one of this virtual GIC's. The caller must have folded the
    /// vCPU's list registers (their state is read and written here), and kicks the vCPUs of
    /// the [`Kicks`].
    pub fn mmio(
        &self,
        hw: &dyn Hw,
        vcpu: usize,
        ipa: u64,
        size: u8,
        write: bool,
        value: u64,
    ) -> Option<(Outcome, Kicks)> {
        let frame = self.frame(ipa)?;
        let mut k = Kicks::default();
        let mut st = self.state.lock();
        let out = match frame {
            Frame::Dist(off) => self.dist(&mut st, hw, vcpu, off, size, write, value, &mut k),
            Frame::Redist(v, off, last) => self.redist(&mut st, hw, v, off, last, size, write, value, &mut k),
            Frame::Absent => Outcome::Abort,
        };
        drop(st);
        Some((out, self.mark(k)))
    }

    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn dist(
        &self,
        st: &mut State,
        hw: &dyn Hw,
        vcpu: usize,
        off: u64,
        size: u8,
        write: bool,
        val: u64,
        k: &mut Kicks,
    ) -> Outcome {
        let v3 = self.cfg.version == Version::V3;
        let word = size == 4;
        let nr_lines = self.nr_lines();
        match off {
            GICD_CTLR if !word => Outcome::Abort,
            GICD_CTLR => {
                if write {
                    let on = if v3 { val & 2 != 0 } else { val & 1 != 0 };
                    let rising = on && !st.enabled;
                    let changed = on != st.enabled;
                    st.enabled = on;
                    if rising {
                        for id in PPI_END..nr_lines {
                            k.add(self.update(st, vcpu, id));
                        }
                    }
                    if changed {
                        // The distributor gates every interrupt, private ones included: each
                        // vCPU with something queued reloads its list registers (pending
                        // state held back, or let through now).
                        for (i, c) in st.cpus.iter().enumerate() {
                            if !c.list.is_empty() {
                                k.add(Some(i as u16));
                            }
                        }
                    }
                    Outcome::Done(0)
                } else if v3 {
                    // ARE_NS is RAO/WI; RWP is never set (writes take effect at once).
                    Outcome::Done((1 << 4) | ((st.enabled as u64) << 1))
                } else {
                    Outcome::Done(st.enabled as u64)
                }
            }
            GICD_TYPER if !word => Outcome::Abort,
            GICD_TYPER => {
                let cpus = (self.cpus.len().min(8) as u64 - 1) << 5;
                let lines = (self.cfg.nr_spis / 32) as u64;
                let id_bits = if v3 { (self.cfg.id_bits as u64) << 19 } else { 0 };
                Outcome::Done(if write { 0 } else { cpus | lines | id_bits })
            }
            // GICv3.1's TYPER2 (no extended SPIs, no vSGIs), which Linux reads at boot; a
            // reserved RAZ/WI word on earlier GICs.
            GICD_TYPER2 => {
                if word {
                    Outcome::Done(0)
                } else {
                    Outcome::Abort
                }
            }
            GICD_IIDR if !word => Outcome::Abort,
            GICD_IIDR => Outcome::Done(if write {
                0
            } else if v3 {
                IIDR_V3
            } else {
                IIDR_V2
            } as u64),
            o if (GICD_IGROUPR..GICD_IGROUPR + 0x80).contains(&o) || (GICD_NSACR..GICD_NSACR + 0x100).contains(&o) => {
                if word {
                    Outcome::Done(0)
                } else {
                    Outcome::Abort
                }
            }
            o if (GICD_IGRPMODR..GICD_IGRPMODR + 0x80).contains(&o) => {
                if word {
                    Outcome::Done(0)
                } else {
                    Outcome::Abort
                }
            }
            o if (GICD_ISENABLER..GICD_ISENABLER + 0x300).contains(&o) => {
                let Some((bank, n)) = bits_of(o, 0) else { return Outcome::Done(0) };
                if !word {
                    return Outcome::Abort;
                }
                if n == 0 && v3 {
                    return Outcome::Done(0); // SGIs/PPIs are the redistributor's
                }
                self.bits(st, hw, vcpu, bank, 32 * n as u32, write, val as u32, k)
            }
            o if (GICD_IPRIORITYR..GICD_IPRIORITYR + 0x3fc).contains(&o) => {
                if size != 1 && size != 4 {
                    return Outcome::Abort;
                }
                let first = (o - GICD_IPRIORITYR) as u32;
                if first < PPI_END && v3 {
                    return Outcome::Done(0);
                }
                self.priorities(st, vcpu, first, size, write, val, k)
            }
            o if (GICD_ITARGETSR..GICD_ITARGETSR + 0x3fc).contains(&o) => {
                if v3 {
                    return if word || size == 1 { Outcome::Done(0) } else { Outcome::Abort };
                }
                if size != 1 && size != 4 {
                    return Outcome::Abort;
                }
                self.targets(st, hw, vcpu, (o - GICD_ITARGETSR) as u32, size, write, val, k)
            }
            o if (GICD_ICFGR..GICD_ICFGR + 0x100).contains(&o) => {
                if !word {
                    return Outcome::Abort;
                }
                let n = ((o - GICD_ICFGR) / 4) as u32;
                if n < 2 && v3 {
                    return Outcome::Done(0);
                }
                self.icfgr(st, hw, vcpu, n, write, val as u32)
            }
            GICD_SGIR if v3 => Outcome::Done(0),
            GICD_SGIR if !word => Outcome::Abort,
            GICD_SGIR if !write => Outcome::Done(0),
            GICD_SGIR => {
                let all = (1u64 << self.cpus.len()) - 1;
                let targets = match (val >> 24) & 3 {
                    0 => (val >> 16) & 0xff & all,
                    1 => all & !(1 << vcpu),
                    2 => 1 << vcpu,
                    // Reserved filter: refused (XSA-117: it once crashed Xen).
                    _ => return Outcome::Abort,
                };
                let sgi = (val & 0xf) as u32;
                for t in (0..self.cpus.len()).filter(|t| targets & (1 << t) != 0) {
                    st.cpus[t].private[sgi as usize].sgi_sources |= 1 << vcpu;
                    k.add(self.update(st, t, sgi));
                }
                Outcome::Done(0)
            }
            o if (GICD_CPENDSGIR..GICD_SPENDSGIR + 0x10).contains(&o) => {
                if v3 {
                    return if word { Outcome::Done(0) } else { Outcome::Abort };
                }
                if size != 1 && size != 4 {
                    return Outcome::Abort;
                }
                let set = o >= GICD_SPENDSGIR;
                let first = (o - if set { GICD_SPENDSGIR } else { GICD_CPENDSGIR }) as u32;
                self.sgi_pending(st, vcpu, first, size, set, write, val, k)
            }
            o if !v3 && (GICD_ID_V2..GICD_ID_V2 + 0x30).contains(&o) => {
                if !word {
                    Outcome::Abort
                } else {
                    Outcome::Done(if write { 0 } else { id_reg(o - GICD_ID_V2, PIDR2_V2) })
                }
            }
            o if v3 && (GICD_ID_V3..GICD_ID_V3 + 0x30).contains(&o) => {
                if !word {
                    Outcome::Abort
                } else {
                    Outcome::Done(if write { 0 } else { id_reg(o - GICD_ID_V3, PIDR2_V3) })
                }
            }
            o if v3 && (GICD_IROUTER..GICD_IROUTER + 8 * 988).contains(&o) => {
                if size != 4 && size != 8 {
                    return Outcome::Abort;
                }
                let intid = PPI_END + ((o - GICD_IROUTER) / 8) as u32;
                let high = o % 8 == 4;
                if (o % 8 != 0 && !high) || (high && size == 8) {
                    return Outcome::Abort;
                }
                self.irouter(st, hw, intid, high, size, write, val, k)
            }
            _ => {
                self.unhandled(hw, vcpu, "GICD", off, write, val);
                Outcome::Done(0)
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn redist(
        &self,
        st: &mut State,
        hw: &dyn Hw,
        v: usize,
        off: u64,
        last: bool,
        size: u8,
        write: bool,
        val: u64,
        k: &mut Kicks,
    ) -> Outcome {
        let word = size == 4;
        if off < GICR_FRAME {
            return match off {
                GICR_CTLR | GICR_STATUSR | GICR_WAKER => {
                    if word {
                        Outcome::Done(0)
                    } else {
                        Outcome::Abort
                    }
                }
                GICR_IIDR => {
                    if word {
                        Outcome::Done(if write { 0 } else { IIDR_V3 as u64 })
                    } else {
                        Outcome::Abort
                    }
                }
                GICR_TYPER | 0xc => {
                    let t =
                        ((mpidr_to_aff32(self.cpus[v].mpidr) as u64) << 32) | ((v as u64) << 8) | ((last as u64) << 4);
                    match (off, size) {
                        (GICR_TYPER, 8) => Outcome::Done(if write { 0 } else { t }),
                        (GICR_TYPER, 4) => Outcome::Done(if write { 0 } else { t & 0xffff_ffff }),
                        (0xc, 4) => Outcome::Done(if write { 0 } else { t >> 32 }),
                        _ => Outcome::Abort,
                    }
                }
                GICR_SETLPIR | GICR_CLRLPIR | GICR_PROPBASER | GICR_PENDBASER | GICR_INVLPIR | GICR_INVALLR => {
                    if size == 8 || word { Outcome::Done(0) } else { Outcome::Abort }
                }
                o if o == GICR_PROPBASER + 4 || o == GICR_PENDBASER + 4 => {
                    if word {
                        Outcome::Done(0)
                    } else {
                        Outcome::Abort
                    }
                }
                GICR_SYNCR => {
                    if word {
                        Outcome::Done(0)
                    } else {
                        Outcome::Abort
                    }
                }
                o if (GICR_ID..GICR_ID + 0x30).contains(&o) => {
                    if word {
                        Outcome::Done(if write { 0 } else { id_reg(o - GICR_ID, PIDR2_V3) })
                    } else {
                        Outcome::Abort
                    }
                }
                _ => {
                    self.unhandled(hw, v, "GICR", off, write, val);
                    Outcome::Done(0)
                }
            };
        }
        let off = off - GICR_FRAME;
        match off {
            GICR_IGROUPR0 | GICR_IGRPMODR0 | GICR_NSACR => {
                if word {
                    Outcome::Done(0)
                } else {
                    Outcome::Abort
                }
            }
            o if (GICR_ISENABLER0..GICR_ISENABLER0 + 0x300).contains(&o) && o % 0x80 == 0 => {
                let Some((bank, _)) = bits_of(o, 0) else { return Outcome::Done(0) };
                if !word {
                    return Outcome::Abort;
                }
                self.bits(st, hw, v, bank, 0, write, val as u32, k)
            }
            o if (GICR_IPRIORITYR..GICR_IPRIORITYR + 0x20).contains(&o) => {
                if size != 1 && size != 4 {
                    return Outcome::Abort;
                }
                self.priorities(st, v, (o - GICR_IPRIORITYR) as u32, size, write, val, k)
            }
            o if o == GICR_ICFGR || o == GICR_ICFGR + 4 => {
                if !word {
                    return Outcome::Abort;
                }
                self.icfgr(st, hw, v, ((o - GICR_ICFGR) / 4) as u32, write, val as u32)
            }
            _ => {
                self.unhandled(hw, v, "GICR SGI", off, write, val);
                Outcome::Done(0)
            }
        }
    }

    /// One word of a bitmap bank: INTIDs `first..first + 32` (private ones: vCPU `vcpu`'s).
    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn bits(
        &self,
        st: &mut State,
        hw: &dyn Hw,
        vcpu: usize,
        bank: Bits,
        first: u32,
        write: bool,
        val: u32,
        k: &mut Kicks,
    ) -> Outcome {
        let v2 = self.cfg.version == Version::V2;
        let mut read = 0u32;
        for b in 0..32 {
            let id = first + b;
            let Some(irq) = self.irq(st, vcpu, id) else { continue };
            if !write {
                let set = match bank {
                    Bits::SetEnable | Bits::ClearEnable => irq.enabled,
                    Bits::SetPending | Bits::ClearPending => irq.is_pending(),
                    Bits::SetActive | Bits::ClearActive => irq.active,
                };
                read |= (set as u32) << b;
                continue;
            }
            if val & (1 << b) == 0 {
                continue;
            }
            // GICv2 SGIs: always enabled (as on a GIC-400), pending state per source through
            // SPENDSGIR/CPENDSGIR only.
            let v2_sgi = v2 && id < SGI_END;
            let queued = irq.queued_on;
            match bank {
                Bits::SetEnable if v2_sgi => {}
                Bits::ClearEnable if v2_sgi => {}
                Bits::SetPending | Bits::ClearPending if v2_sgi => {}
                Bits::SetEnable => {
                    irq.enabled = true;
                    if let Some(p) = irq.hw {
                        hw.irq(p as u32, IrqOp::Enable);
                    }
                }
                Bits::ClearEnable => {
                    irq.enabled = false;
                    if let Some(p) = irq.hw {
                        hw.irq(p as u32, IrqOp::Disable);
                    }
                }
                Bits::SetPending => match irq.hw {
                    // A linked interrupt is made pending at the physical GIC: it then fires
                    // and is injected like any other (Xen does the same).
                    Some(p) => hw.irq(p as u32, IrqOp::SetPending),
                    None => irq.pending = true,
                },
                Bits::ClearPending => {
                    irq.pending = false;
                    if let Some(p) = irq.hw {
                        hw.irq(p as u32, IrqOp::ClearPending);
                    }
                }
                Bits::SetActive => {
                    if !irq.active {
                        irq.active_priority = irq.priority;
                    }
                    irq.active = true
                }
                Bits::ClearActive => {
                    irq.active = false;
                    if let Some(p) = irq.hw {
                        hw.irq(p as u32, IrqOp::Deactivate);
                    }
                }
            }
            k.add(queued);
            k.add(self.update(st, vcpu, id));
        }
        Outcome::Done(if write { 0 } else { read as u64 })
    }

    /// IPRIORITYR bytes for INTIDs `first..first + size`.
    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn priorities(
        &self,
        st: &mut State,
        vcpu: usize,
        first: u32,
        size: u8,
        write: bool,
        val: u64,
        k: &mut Kicks,
    ) -> Outcome {
        let mut read = 0u64;
        for b in 0..size as u32 {
            let Some(irq) = self.irq(st, vcpu, first + b) else { continue };
            if write {
                irq.priority = (val >> (8 * b)) as u8 & super::PRIORITY_MASK;
                k.add(irq.queued_on);
            } else {
                read |= (irq.priority as u64) << (8 * b);
            }
        }
        Outcome::Done(read)
    }

    /// GICv2 ITARGETSR bytes for INTIDs `first..first + size`: the private ones read as the
    /// reading vCPU's own bit and ignore writes; an SPI's byte keeps the bits of vCPUs that
    /// exist and goes to the lowest of them.
    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn targets(
        &self,
        st: &mut State,
        hw: &dyn Hw,
        vcpu: usize,
        first: u32,
        size: u8,
        write: bool,
        val: u64,
        k: &mut Kicks,
    ) -> Outcome {
        let all = (1u64 << self.cpus.len()) - 1;
        let mut read = 0u64;
        for b in 0..size as u32 {
            let id = first + b;
            let byte = if id < PPI_END {
                1u64 << vcpu
            } else if let Some(i) = self.spi_index(id) {
                if write {
                    let new = (val >> (8 * b)) & 0xff & all;
                    self.retarget(st, hw, i, new, k);
                }
                st.route[i]
            } else {
                0
            };
            read |= byte << (8 * b);
        }
        Outcome::Done(if write { 0 } else { read })
    }

    /// Give SPI index `i` route `route` (IROUTER value or ITARGETSR byte): its next delivery
    /// goes to the new target (a queued, not active instance moves at its vCPU's next
    /// flush); a linked physical interrupt follows to the target's CPU.
    fn retarget(&self, st: &mut State, hw: &dyn Hw, i: usize, route: u64, k: &mut Kicks) {
        st.route[i] = route;
        let target = self.spi_target(st, i);
        let irq = st.spis[i];
        if let (Some(p), Some(t)) = (irq.hw, target) {
            hw.irq(p as u32, IrqOp::Route(self.cpus[t as usize].pcpu));
        }
        match irq.queued_on {
            // Queued on an offline vCPU (its list registers are empty): move it now.
            Some(q) if Some(q) != target && !irq.active && !st.cpus[q as usize].online => {
                st.cpus[q as usize].list.retain(|&x| x != PPI_END + i as u32);
                st.spis[i].queued_on = None;
            }
            // Queued on a running vCPU: it moves it at its next flush.
            Some(q) if Some(q) != target => k.add(Some(q)),
            _ => {}
        }
        k.add(self.update(st, 0, PPI_END + i as u32));
    }

    /// ICFGR word `n` (16 interrupts): SGIs are edge-triggered (read-only); PPIs and SPIs keep
    /// bit 1 of their pair; a linked interrupt's trigger reaches the physical GIC.
    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn icfgr(&self, st: &mut State, hw: &dyn Hw, vcpu: usize, n: u32, write: bool, val: u32) -> Outcome {
        let mut read = 0u32;
        for b in 0..16 {
            let id = 16 * n + b;
            let Some(irq) = self.irq(st, vcpu, id) else { continue };
            if write && id >= SGI_END {
                let edge = val & (2 << (2 * b)) != 0;
                if irq.edge != edge {
                    irq.edge = edge;
                    if let Some(p) = irq.hw {
                        hw.irq(p as u32, IrqOp::SetEdge(edge));
                    }
                }
            }
            read |= ((irq.edge as u32) << 1) << (2 * b);
        }
        Outcome::Done(if write { 0 } else { read as u64 })
    }

    /// GICv2 SPENDSGIR (`set`) / CPENDSGIR bytes for SGIs `first..first + size`: a bit per
    /// source vCPU.
    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn sgi_pending(
        &self,
        st: &mut State,
        vcpu: usize,
        first: u32,
        size: u8,
        set: bool,
        write: bool,
        val: u64,
        k: &mut Kicks,
    ) -> Outcome {
        let all = ((1u64 << self.cpus.len()) - 1) as u8;
        let mut read = 0u64;
        for b in 0..size as u32 {
            let id = first + b;
            let Some(irq) = self.irq(st, vcpu, id) else { continue };
            if write {
                let byte = (val >> (8 * b)) as u8 & all;
                if set {
                    irq.sgi_sources |= byte;
                } else {
                    irq.sgi_sources &= !byte;
                }
                k.add(irq.queued_on);
                k.add(self.update(st, vcpu, id));
            } else {
                read |= (irq.sgi_sources as u64) << (8 * b);
            }
        }
        Outcome::Done(if write { 0 } else { read })
    }

    /// GICv3 IROUTER of SPI `intid`: a 64-bit access, or either 32-bit half.
    #[allow(clippy::too_many_arguments)] // (one trapped access, decoded)
    fn irouter(
        &self,
        st: &mut State,
        hw: &dyn Hw,
        intid: u32,
        high: bool,
        size: u8,
        write: bool,
        val: u64,
        k: &mut Kicks,
    ) -> Outcome {
        let Some(i) = self.spi_index(intid) else { return Outcome::Done(0) };
        let cur = st.route[i];
        if !write {
            return Outcome::Done(match (size, high) {
                (8, _) => cur,
                (_, false) => cur & 0xffff_ffff,
                (_, true) => cur >> 32,
            });
        }
        let new = match (size, high) {
            (8, _) => val,
            (_, false) => (cur & !0xffff_ffff) | (val & 0xffff_ffff),
            (_, true) => (cur & 0xffff_ffff) | (val << 32),
        };
        self.retarget(st, hw, i, new & super::IROUTER_MASK, k);
        Outcome::Done(0)
    }

    /// An access to an offset that names no register: RAZ/WI, said once in a while (a guest
    /// must not flood the console, XSA-118).
    fn unhandled(&self, hw: &dyn Hw, vcpu: usize, frame: &str, off: u64, write: bool, val: u64) {
        if write {
            crate::guest_log!(
                hw: hw,
                log::Level::Warn,
                "vGIC: vCPU {vcpu}: write {val:#x} to unimplemented {frame} offset {off:#x}: ignored"
            );
        } else {
            crate::guest_log!(hw: hw, log::Level::Warn, "vGIC: vCPU {vcpu}: read of unimplemented {frame} offset {off:#x}: zero");
        }
    }
}

/// The ID block (PIDR4..7, PIDR0..3, CIDR0..3 from offset 0): PIDR2 and the component IDs;
/// the others read as zero.
fn id_reg(off: u64, pidr2: u32) -> u64 {
    match off {
        ID_PIDR2 => pidr2 as u64,
        0x20..=0x2c => CIDR[((off - 0x20) / 4) as usize] as u64,
        _ => 0,
    }
}
