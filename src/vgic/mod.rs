//! The virtual GIC, portable: every virtual interrupt's state, each vCPU's list of pending
//! and active interrupts, what goes into its list registers, and the emulation of the GICv3
//! distributor and redistributors and of the GICv2 distributor ([`mmio`]). The arch layer
//! only moves [`Lr`] images in and out of the hardware list registers.
//!
//! **Model** (KVM's, in its essentials). Each interrupt has one [`Irq`] state: SGIs and PPIs
//! one per vCPU, SPIs one per domain. An interrupt that is active, or pending and enabled,
//! is on exactly one vCPU's list (`queued_on`), kept until it is neither. Before the vCPU
//! runs, [`Vgic::flush`] loads the highest-priority entries of its list into the list
//! registers (an edge's pending state moves into the register); after it ran,
//! [`Vgic::fold`] takes the registers back into the model. List registers are a cache the
//! model refills: with more entries than registers (QEMU and the GIC-400 have 4) the flush
//! asks for an underflow maintenance interrupt, whose exit refills them — nothing is dropped.
//!
//! **Laziness.** A vCPU pinned to its CPU keeps its list registers loaded across traps. Only
//! when its model changed (an injection, a guest register write, a maintenance interrupt) is
//! it marked dirty ([`Vgic::is_dirty`]: one atomic load on the way back to the guest), and
//! the next entry folds and flushes. Whoever makes another vCPU dirty kicks its CPU
//! ([`Kicks`]).
//!
//! **Locking.** One lock per domain (rank `VGIC_DIST`) covers the distributor, every vCPU's
//! list and every interrupt's state: guests here have at most eight vCPUs, and every
//! operation under it is short. (KVM's finer distributor → vCPU list → IRQ split has ranks
//! reserved in `src/lock_order.md`.) Nothing else is taken under it but the hardware
//! operations of [`crate::hw::Hw`] (no lock).
//!
//! Where Xen 4.17 breaks the architecture (pending/active state that reads as zero, writes
//! to ICPENDR/ICACTIVER ignored, GICv2 SGIs losing their source, an abort on a read of
//! GICD_ICPIDR2), this follows the architecture; the README lists the differences.

pub mod irq;
pub mod mmio;

/// Xen's guest memory map of the GIC (`public/arch-arm.h`): where a domU's virtual GIC is.
pub mod guest {
    use super::{Config, Version};
    use alloc::vec::Vec;

    pub const GUEST_GICV3_GICD_BASE: u64 = 0x0300_1000;
    pub const GUEST_GICV3_GICD_SIZE: u64 = 0x1_0000;
    pub const GUEST_GICV3_GICR0_BASE: u64 = 0x0302_0000;
    pub const GUEST_GICV3_RDIST_STRIDE: u64 = 0x2_0000;
    /// GICv2: the distributor and the CPU interface (the hardware GICV is mapped there).
    pub const GUEST_GICD_BASE: u64 = 0x0300_1000;
    pub const GUEST_GICD_SIZE: u64 = 0x1000;
    pub const GUEST_GICC_BASE: u64 = 0x0300_2000;
    pub const GUEST_GICC_SIZE: u64 = 0x2000;
    /// SPIs a domU's virtual GIC has (no device is passed through to domUs).
    pub const GUEST_NR_SPIS: u32 = 32;

    /// The virtual GIC of a domU with `vcpus` vCPUs at Xen's guest addresses.
    pub fn config(version: Version, vcpus: u32) -> Config {
        match version {
            Version::V3 => Config {
                version,
                nr_spis: GUEST_NR_SPIS,
                dist_base: GUEST_GICV3_GICD_BASE,
                redist: Vec::from([(GUEST_GICV3_GICR0_BASE, GUEST_GICV3_RDIST_STRIDE * vcpus as u64)]),
                id_bits: 9,
            },
            Version::V2 => {
                Config { version, nr_spis: GUEST_NR_SPIS, dist_base: GUEST_GICD_BASE, redist: Vec::new(), id_bits: 9 }
            }
        }
    }
}

pub use irq::{Irq, Lr, PRIORITY_MASK};

use crate::gic::{PPI_END, SGI_END, is_private};
use crate::sync::{AtomicBool, Mutex, Ordering, rank};
use alloc::vec::Vec;

/// The GIC architecture a domain sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

/// A vCPU as the virtual GIC knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuDesc {
    /// Its MPIDR affinity (what IROUTER and ICC_SGI1R name).
    pub mpidr: u64,
    /// The physical CPU it runs on (where its hardware-linked SPIs are routed).
    pub pcpu: usize,
}

/// How a domain's virtual GIC looks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub version: Version,
    /// SPIs it has (a multiple of 32, at most 988): INTIDs 32 .. 32 + `nr_spis`.
    pub nr_spis: u32,
    /// Guest-physical address of the distributor.
    pub dist_base: u64,
    /// GICv3: guest-physical redistributor regions `(base, size)`; vCPU `i`'s two frames are
    /// the `i`-th 128 KiB of the regions taken in order.
    pub redist: Vec<(u64, u64)>,
    /// GICv3: GICD_TYPER.IDbits (INTID bits - 1; the host's).
    pub id_bits: u32,
}

/// vCPUs whose list registers must be refreshed: the caller kicks their CPUs (but its own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kicks(pub u64);

impl Kicks {
    fn add(&mut self, vcpu: Option<u16>) {
        if let Some(v) = vcpu {
            self.0 |= 1 << v;
        }
    }
    pub fn merge(&mut self, o: Kicks) {
        self.0 |= o.0;
    }
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// The vCPUs, in order (only the set bits are visited: this runs on every change).
    pub fn iter(&self) -> impl Iterator<Item = usize> {
        let mut m = self.0;
        core::iter::from_fn(move || {
            let i = m.trailing_zeros();
            (m != 0).then(|| {
                m &= m - 1;
                i as usize
            })
        })
    }
}

/// What [`Vgic::flush`] loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flush {
    /// List registers written (`out[..loaded]`); the rest must be empty.
    pub loaded: usize,
    /// More entries are waiting than registers exist: ask for an underflow maintenance
    /// interrupt.
    pub underflow: bool,
    /// Other vCPUs whose lists gained an interrupt (retargeted SPIs moved there).
    pub kicks: Kicks,
}

/// The most vCPUs a virtual GIC serves (GICv2: 8 CPU interfaces; the pinned scheduler has
/// no more CPUs anyway).
pub const MAX_VCPUS: usize = 8;

/// A domain's virtual GIC.
pub struct Vgic {
    cfg: Config,
    cpus: Vec<CpuDesc>,
    state: Mutex<State>,
    /// Per vCPU: its list registers must be refreshed (read without the lock on every entry).
    dirty: Vec<AtomicBool>,
}

/// Everything under the lock.
pub(crate) struct State {
    /// GICD_CTLR's group-1 enable (GICv2: Enable): SPIs are forwarded only when set.
    enabled: bool,
    spis: Vec<Irq>,
    /// Per SPI: GICv3 IROUTER, or GICv2 ITARGETSR's byte.
    route: Vec<u64>,
    cpus: Vec<CpuState>,
}

/// One vCPU's private interrupts and list.
pub(crate) struct CpuState {
    private: [Irq; PPI_END as usize],
    /// INTIDs of the interrupts queued on this vCPU.
    list: Vec<u32>,
    /// Running (its list registers may hold something); false while it is off.
    online: bool,
}

/// GICD_IROUTER's IRM bit: "any participating PE" (Xen delivers to vCPU 0).
pub const IROUTER_IRM: u64 = 1 << 31;
/// The fields of IROUTER that exist (Aff3, IRM, Aff2..Aff0).
pub const IROUTER_MASK: u64 = 0xff_8000_0000 | 0xff_ffff;

impl Vgic {
    /// A virtual GIC for vCPUs `cpus` (vCPU `i` is `cpus[i]`), everything disabled, SGIs
    /// edge-triggered, PPIs and SPIs level, priorities 0, SPIs routed to vCPU 0.
    pub fn new(cfg: Config, cpus: Vec<CpuDesc>) -> Vgic {
        assert!(!cpus.is_empty() && cpus.len() <= MAX_VCPUS, "a virtual GIC serves 1..=8 vCPUs");
        assert!(cfg.nr_spis.is_multiple_of(32) && cfg.nr_spis <= 988, "SPIs in multiples of 32, at most 988");
        let mut private = [Irq::default(); PPI_END as usize];
        for p in private.iter_mut().take(SGI_END as usize) {
            p.edge = true;
            // GICv2 SGIs are always enabled (a GIC-400's are); GICv3's are programmable.
            p.enabled = cfg.version == Version::V2;
        }
        let route0 = match cfg.version {
            Version::V3 => crate::sysreg::mpidr_affinity(cpus[0].mpidr),
            Version::V2 => 1,
        };
        let n = cfg.nr_spis as usize;
        let state = State {
            enabled: false,
            spis: alloc::vec![Irq::default(); n],
            route: alloc::vec![route0; n],
            cpus: cpus.iter().map(|_| CpuState { private, list: Vec::with_capacity(8), online: false }).collect(),
        };
        let dirty = cpus.iter().map(|_| AtomicBool::new(false)).collect();
        Vgic { cfg, cpus, state: Mutex::new(rank::VGIC_DIST, state), dirty }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn version(&self) -> Version {
        self.cfg.version
    }
    pub fn nr_vcpus(&self) -> usize {
        self.cpus.len()
    }
    pub fn cpu(&self, vcpu: usize) -> &CpuDesc {
        &self.cpus[vcpu]
    }
    /// Is `ipa` one of its registers (distributor or redistributor frames)?
    pub fn claims(&self, ipa: u64) -> bool {
        self.frame_of(ipa)
    }

    /// One past the highest INTID.
    pub fn nr_lines(&self) -> u32 {
        PPI_END + self.cfg.nr_spis
    }

    /// Must vCPU `vcpu`'s list registers be refreshed before it runs? (Lock free: the entry
    /// path's only cost when nothing changed.)
    #[inline(always)]
    pub fn is_dirty(&self, vcpu: usize) -> bool {
        self.dirty.get(vcpu).is_some_and(|d| d.load(Ordering::Acquire))
    }

    /// Mark vCPU `vcpu`'s list registers stale (a maintenance interrupt: the hardware changed
    /// them).
    pub fn set_dirty(&self, vcpu: usize) {
        if let Some(d) = self.dirty.get(vcpu) {
            d.store(true, Ordering::Release);
        }
    }

    fn mark(&self, k: Kicks) -> Kicks {
        for v in k.iter() {
            self.set_dirty(v);
        }
        k
    }

    /// Link SPI `intid` to the physical interrupt of the same number, `edge` or level as the
    /// device tree says (dom0's devices). The physical interrupt follows what the guest does
    /// to the virtual one from now on: disabled until the guest enables it, routed to the
    /// CPU of its target vCPU.
    pub fn link_hw(&self, hw: &dyn crate::hw::Hw, intid: u32, edge: bool) -> bool {
        let mut st = self.state.lock();
        let Some(i) = self.spi_index(intid) else { return false };
        let irq = &mut st.spis[i];
        irq.hw = Some(intid as u16);
        irq.edge = edge;
        hw.irq(intid, crate::hw::IrqOp::Disable);
        hw.irq(intid, crate::hw::IrqOp::SetEdge(edge));
        let target = self.spi_target(&st, i).unwrap_or(0);
        hw.irq(intid, crate::hw::IrqOp::Route(self.cpus[target as usize].pcpu));
        true
    }

    fn spi_index(&self, intid: u32) -> Option<usize> {
        (intid >= PPI_END && intid < self.nr_lines()).then(|| (intid - PPI_END) as usize)
    }

    /// The vCPU an SPI goes to, from its route.
    fn spi_target(&self, st: &State, i: usize) -> Option<u16> {
        let r = st.route[i];
        match self.cfg.version {
            Version::V3 if r & IROUTER_IRM != 0 => Some(0),
            Version::V3 => self.cpus.iter().position(|c| crate::sysreg::mpidr_affinity(c.mpidr) == r & IROUTER_MASK),
            Version::V2 => (0..self.cpus.len()).find(|&v| r & (1 << v) != 0),
        }
        .map(|v| v as u16)
    }

    /// The state of `intid` as vCPU `vcpu` sees it (its own SGIs/PPIs).
    fn irq<'a>(&self, st: &'a mut State, vcpu: usize, intid: u32) -> Option<&'a mut Irq> {
        if is_private(intid) {
            st.cpus.get_mut(vcpu)?.private.get_mut(intid as usize)
        } else {
            let i = self.spi_index(intid)?;
            st.spis.get_mut(i)
        }
    }

    /// After a change to `intid` (vCPU `vcpu`'s, if private): queue it if it now wants a
    /// list and is on none. Returns the vCPU to refresh: the one it is (now) queued on.
    fn update(&self, st: &mut State, vcpu: usize, intid: u32) -> Option<u16> {
        let (wants, queued) = {
            let irq = self.irq(st, vcpu, intid)?;
            (irq.wants_list(), irq.queued_on)
        };
        if queued.is_some() {
            return queued; // (a stale entry is pruned at its vCPU's next flush)
        }
        if !wants {
            return None;
        }
        let target = if is_private(intid) {
            vcpu as u16
        } else {
            let i = self.spi_index(intid)?;
            if !st.enabled {
                return None; // the distributor forwards no SPI
            }
            self.spi_target(st, i)?
        };
        st.cpus[target as usize].list.push(intid);
        if let Some(irq) = self.irq(st, vcpu, intid) {
            irq.queued_on = Some(target);
        }
        Some(target)
    }

    /// Make interrupt `intid` pending: a private one of vCPU `vcpu`, or an SPI (for its
    /// target; `vcpu` is ignored). Invalid INTIDs are ignored.
    pub fn inject(&self, vcpu: usize, intid: u32) -> Kicks {
        let mut st = self.state.lock();
        let Some(irq) = self.irq(&mut st, vcpu, intid) else { return Kicks::default() };
        irq.pending = true;
        let mut k = Kicks::default();
        k.add(self.update(&mut st, vcpu, intid));
        self.mark(k)
    }

    /// The physical interrupt linked to SPI `pintid` fired (its priority dropped at EL2, still
    /// active): make the virtual one pending. False if it is not linked here.
    pub fn inject_hw(&self, pintid: u32) -> Option<Kicks> {
        let i = self.spi_index(pintid)?;
        let mut st = self.state.lock();
        if st.spis[i].hw != Some(pintid as u16) {
            return None;
        }
        st.spis[i].pending = true;
        let mut k = Kicks::default();
        k.add(self.update(&mut st, 0, pintid));
        Some(self.mark(k))
    }

    /// SGI `sgi` from vCPU `from` to every vCPU in `targets` (a bit per vCPU). GICv2 keeps the
    /// source of each pending instance.
    pub fn send_sgi(&self, from: usize, targets: u64, sgi: u32) -> Kicks {
        let mut k = Kicks::default();
        if sgi >= SGI_END {
            return k;
        }
        let mut st = self.state.lock();
        for t in (0..self.cpus.len()).filter(|t| targets & (1 << t) != 0) {
            let irq = &mut st.cpus[t].private[sgi as usize];
            match self.cfg.version {
                Version::V2 => irq.sgi_sources |= 1 << from,
                Version::V3 => irq.pending = true,
            }
            k.add(self.update(&mut st, t, sgi));
        }
        self.mark(k)
    }

    /// Take back what the guest did to the list registers loaded by the last flush (`lrs`:
    /// their contents now, in any order). The registers are then stale: the caller empties
    /// them, and the vCPU is dirty until the next flush.
    pub fn fold(&self, vcpu: usize, lrs: &[Lr]) {
        let mut st = self.state.lock();
        for lr in lrs {
            let v2_sgi = self.cfg.version == Version::V2 && lr.vintid < SGI_END;
            let Some(irq) = self.irq(&mut st, vcpu, lr.vintid) else { continue };
            irq.active = lr.active;
            if lr.active {
                irq.active_priority = lr.priority;
            }
            if lr.active && v2_sgi {
                irq.active_source = lr.source;
            }
            if lr.pending {
                if v2_sgi {
                    irq.sgi_sources |= 1 << (lr.source & 7);
                } else {
                    irq.pending = true;
                }
            }
        }
        self.set_dirty(vcpu);
    }

    /// Load the list registers of vCPU `vcpu`: its highest-priority active or deliverable
    /// interrupts, into `out` (one entry per register the hardware has). Entries no longer
    /// wanted leave the list; an SPI routed elsewhere since it was queued moves to its new
    /// target once it is not active.
    pub fn flush(&self, vcpu: usize, out: &mut [Lr]) -> Flush {
        let mut st = self.state.lock();
        let f = self.flush_locked(&mut st, vcpu, out);
        drop(st);
        self.mark(f.kicks);
        f
    }

    fn flush_locked(&self, st: &mut State, vcpu: usize, out: &mut [Lr]) -> Flush {
        let mut f = Flush::default();
        // Prune.
        let mut list = core::mem::take(&mut st.cpus[vcpu].list);
        let mut moved: Vec<u32> = Vec::new();
        list.retain(|&id| {
            let target = if is_private(id) {
                Some(vcpu as u16)
            } else {
                self.spi_index(id).and_then(|i| self.spi_target(st, i))
            };
            let Some(irq) = self.irq(st, vcpu, id) else { return false };
            if !irq.wants_list() {
                irq.queued_on = None;
                return false;
            }
            if !irq.active && target != Some(vcpu as u16) {
                irq.queued_on = None;
                moved.push(id);
                return false;
            }
            true
        });
        // Order by priority, then INTID: the list itself is kept in that order (no
        // allocation on this path, which every interrupt delivery takes).
        list.sort_unstable_by_key(|&id| (self.irq(st, vcpu, id).map_or(u8::MAX, |i| i.priority), id));
        st.cpus[vcpu].list = list;
        for id in moved {
            f.kicks.add(self.update(st, vcpu, id));
        }
        // Load. With the distributor disabled nothing is forwarded: only active state goes
        // into the list registers (so the guest can still deactivate), pending state waits.
        let fwd = st.enabled;
        let group1 = self.cfg.version == Version::V3;
        let v2 = self.cfg.version == Version::V2;
        let mut n = 0;
        for k in 0..st.cpus[vcpu].list.len() {
            let id = st.cpus[vcpu].list[k];
            if n == out.len() {
                f.underflow = true;
                break;
            }
            let Some(irq) = self.irq(st, vcpu, id) else { continue };
            // An active interrupt keeps the priority it was taken with (see `active_priority`).
            let priority = if irq.active { irq.active_priority } else { irq.priority };
            let mut lr = Lr { vintid: id, priority, group1, hw: irq.hw, ..Lr::default() };
            if v2 && id < SGI_END {
                // One instance of a GICv2 SGI at a time: the active one (plus its own pending
                // instance), or the lowest pending source.
                if irq.active {
                    lr.active = true;
                    lr.source = irq.active_source;
                    if fwd && irq.enabled && irq.sgi_sources & (1 << irq.active_source) != 0 {
                        irq.sgi_sources &= !(1 << irq.active_source);
                        lr.pending = true;
                    }
                } else if fwd && irq.enabled && irq.sgi_sources != 0 {
                    lr.source = irq.sgi_sources.trailing_zeros() as u8;
                    irq.sgi_sources &= !(1 << lr.source);
                    lr.pending = true;
                }
                // Another source waits: be told when this instance is done.
                lr.eoi_maintenance = fwd && irq.sgi_sources != 0;
            } else {
                lr.active = irq.active;
                if fwd && irq.enabled && irq.pending {
                    lr.pending = true;
                    irq.pending = false; // the register holds it now
                }
            }
            if lr.is_empty() {
                continue; // (pending but disabled, or not forwarded: stays queued, not loaded)
            }
            out[n] = lr;
            n += 1;
        }
        for slot in out[n..].iter_mut() {
            *slot = Lr::default();
        }
        f.loaded = n;
        if let Some(d) = self.dirty.get(vcpu) {
            d.store(false, Ordering::Release);
        }
        f
    }

    /// vCPU `vcpu` starts running (its list registers are empty).
    pub fn vcpu_online(&self, vcpu: usize) {
        if let Some(c) = self.state.lock().cpus.get_mut(vcpu) {
            c.online = true;
        }
        self.set_dirty(vcpu);
    }

    /// vCPU `vcpu` goes off (`CPU_OFF`, its domain's shutdown); its list registers were
    /// folded and emptied. SPIs routed elsewhere since they were queued here move to their
    /// targets now (it will not flush again); what is routed here waits for it.
    pub fn vcpu_offline(&self, vcpu: usize) -> Kicks {
        let mut st = self.state.lock();
        let Some(c) = st.cpus.get_mut(vcpu) else { return Kicks::default() };
        // Offline and pruned in one hold of the lock: a retarget sees either a running vCPU
        // that will prune, or an offline one whose list it may empty itself.
        c.online = false;
        let k = self.flush_locked(&mut st, vcpu, &mut []).kicks;
        drop(st);
        self.mark(k)
    }

    /// Has vCPU `vcpu` an interrupt the guest would take with priority mask `pmr` (the
    /// virtual ICC_PMR / GICV_PMR)? Its list registers must have been folded. (WFI.)
    pub fn has_deliverable(&self, vcpu: usize, pmr: u8) -> bool {
        let mut st = self.state.lock();
        if !st.enabled {
            return false; // the distributor forwards nothing
        }
        let list = core::mem::take(&mut st.cpus[vcpu].list);
        let any =
            list.iter().any(|&id| self.irq(&mut st, vcpu, id).is_some_and(|i| i.deliverable() && i.priority < pmr));
        st.cpus[vcpu].list = list;
        any
    }

    /// The vCPUs an SGI write of vCPU `from` names, GICv3 style (ICC_SGI1R_EL1 `value`):
    /// IRM=1 every vCPU but `from`; else those whose Aff3.Aff2.Aff1 match and whose Aff0 is
    /// in the target list (16 per range selector).
    pub fn sgi1r_targets(&self, from: usize, value: u64) -> (u32, u64) {
        use crate::gic::regs::ICC_SGI1R;
        use crate::sysreg::mpidr_aff;
        let r = tock_registers::LocalRegisterCopy::<u64, ICC_SGI1R::Register>::new(value);
        let sgi = r.read(ICC_SGI1R::INTID) as u32;
        let mut targets = 0u64;
        for (i, c) in self.cpus.iter().enumerate() {
            let hit = if r.is_set(ICC_SGI1R::IRM) {
                i != from
            } else {
                let aff0 = mpidr_aff(c.mpidr, 0);
                mpidr_aff(c.mpidr, 3) == r.read(ICC_SGI1R::AFF3)
                    && mpidr_aff(c.mpidr, 2) == r.read(ICC_SGI1R::AFF2)
                    && mpidr_aff(c.mpidr, 1) == r.read(ICC_SGI1R::AFF1)
                    && aff0 / 16 == r.read(ICC_SGI1R::RS)
                    && r.read(ICC_SGI1R::TARGET_LIST) & (1 << (aff0 % 16)) != 0
            };
            if hit {
                targets |= 1 << i;
            }
        }
        (sgi, targets)
    }

    /// A copy of interrupt `intid`'s state as vCPU `vcpu` sees it (tests, audit).
    pub fn irq_state(&self, vcpu: usize, intid: u32) -> Option<Irq> {
        let mut st = self.state.lock();
        self.irq(&mut st, vcpu, intid).copied()
    }

    /// vCPU `vcpu`'s list (tests, audit).
    pub fn list(&self, vcpu: usize) -> Vec<u32> {
        self.state.lock().cpus.get(vcpu).map(|c| c.list.clone()).unwrap_or_default()
    }

    /// Check the model's invariants; a description of each violation (the audit).
    pub fn check(&self) -> Vec<alloc::string::String> {
        use alloc::format;
        let mut st = self.state.lock();
        let mut bad = Vec::new();
        let nr = self.cpus.len();
        for v in 0..nr {
            let list = st.cpus[v].list.clone();
            for (k, &id) in list.iter().enumerate() {
                if list[..k].contains(&id) {
                    bad.push(format!("vCPU {v}: INTID {id} twice on its list"));
                }
                match self.irq(&mut st, v, id) {
                    None => bad.push(format!("vCPU {v}: INTID {id} on its list does not exist")),
                    Some(i) if i.queued_on != Some(v as u16) => {
                        bad.push(format!("vCPU {v}: INTID {id} listed but says queued on {:?}", i.queued_on))
                    }
                    _ => {}
                }
            }
        }
        for v in 0..nr {
            for id in 0..SGI_END {
                let i = st.cpus[v].private[id as usize];
                if (i.sgi_sources as u32) >> nr.min(8) != 0 || (i.active && (i.active_source as usize) >= nr) {
                    bad.push(format!("vCPU {v}: SGI {id} from a vCPU that does not exist ({:#x})", i.sgi_sources));
                }
            }
            for id in 0..PPI_END {
                let i = st.cpus[v].private[id as usize];
                if let Some(q) = i.queued_on
                    && (q as usize != v || !st.cpus[v].list.contains(&id))
                {
                    bad.push(format!("vCPU {v}: INTID {id} says queued on {q} but is not listed there"));
                }
            }
        }
        for (k, i) in st.spis.iter().enumerate() {
            let id = PPI_END + k as u32;
            if let Some(q) = i.queued_on
                && (q as usize >= nr || !st.cpus[q as usize].list.contains(&id))
            {
                bad.push(format!("SPI {id} says queued on vCPU {q} but is not listed there"));
            }
        }
        bad
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
