//! Domains: vCPUs, a P2M, a grant table, event channels, a shared_info page, a console, and
//! the state of their lifecycle (how a domain is created, shut down and torn down:
//! [`crate::lifecycle`]).

use crate::console::GuestConsole;
use crate::evtchn::EvtchnTable;
use crate::grant::GrantTable;
use crate::hw::Hw;
use crate::mm::Mm;
use crate::p2m::P2m;
use crate::sync::{AtomicBool, AtomicU32, AtomicU64, Ordering, RwLock, rank};
use crate::types::{DomId, Mfn};
use crate::vcpu::Vcpu;
use crate::vgic::{self, Vgic};
use alloc::vec::Vec;

/// What a domain is made of.
#[derive(Clone, Debug)]
pub struct DomainConfig {
    pub id: DomId,
    /// May act on other domains (dom0): XSM_TARGET checks pass.
    pub privileged: bool,
    /// Guest physical == machine physical for its RAM.
    pub direct_map: bool,
    pub max_grant_frames: u32,
    /// Grant mappings this domain may hold at once.
    pub max_maptrack: u32,
    /// Intermediate stage-2 table pages the hypervisor will allocate for it.
    pub p2m_table_limit: u64,
    /// One entry per vCPU: the physical CPU it is pinned to (at least one vCPU).
    pub pcpus: Vec<usize>,
    /// CNTVOFF_EL2 for its vCPUs: the counter value when it was created, so its virtual
    /// counter starts near 0 (as on Xen).
    pub counter_offset: u64,
    /// Its virtual GIC: version, where its registers are, how many SPIs.
    pub vgic: vgic::Config,
    /// The PPI of its event-channel upcall (Xen: 31 for domUs, the first free PPI for dom0).
    pub evtchn_ppi: u32,
    /// The most guest pages it may hold (Xen's `max_pages`: `XENMEM_maximum_reservation`).
    pub max_pages: u64,
    /// Highest event-channel port it may allocate (Xen's `max_evtchn_port`).
    pub max_evtchn_port: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u32)]
pub enum DomainState {
    Running = 0,
    /// Torn down; some of its pages are still referenced by other domains.
    Dying = 1,
    /// Its memory is gone except possibly xenheap pages still mapped elsewhere.
    Dead = 2,
}

pub struct Domain {
    pub id: DomId,
    pub privileged: bool,
    pub direct_map: bool,
    pub vcpus: Vec<Vcpu>,
    pub p2m: P2m,
    pub grant: GrantTable,
    /// Its event channels and its vCPUs' `vcpu_info` locations.
    pub evtchn: EvtchnTable,
    pub shared_info: Mfn,
    pub console: GuestConsole,
    pub counter_offset: u64,
    pub vgic: Vgic,
    pub evtchn_ppi: u32,
    /// The most guest pages it may hold.
    pub max_pages: AtomicU64,
    /// `hvm_op` parameters (`HVM_PARAM_*`): the event-channel callback, set at build time;
    /// the rest as its toolstack sets them.
    hvm_params: [AtomicU64; xen_abi::hvm::HVM_NR_PARAMS as usize],
    /// `vm_assist` types enabled (bit `VMASST_TYPE_*`).
    pub vm_assist: AtomicU64,
    state: AtomicU32,
    /// Set once when the domain starts going down (before any vCPU is stopped).
    shutting_down: AtomicBool,
    /// Machine frame ranges `[start, end)` this domain may map as MMIO (`dev_mmio`).
    iomem: RwLock<Vec<(u64, u64)>>,
}

impl Domain {
    pub(crate) fn new(cfg: &DomainConfig, p2m: P2m, grant: GrantTable, shared_info: Mfn) -> Self {
        let vcpus: Vec<Vcpu> = cfg.pcpus.iter().enumerate().map(|(i, &p)| Vcpu::new(i as u32, p)).collect();
        let cpus = vcpus.iter().map(|v| vgic::CpuDesc { mpidr: v.mpidr, pcpu: v.pcpu }).collect();
        let vgic = Vgic::new(cfg.vgic.clone(), cpus);
        Domain {
            id: cfg.id,
            privileged: cfg.privileged,
            direct_map: cfg.direct_map,
            evtchn: EvtchnTable::new(vcpus.len() as u32, cfg.max_evtchn_port),
            vcpus,
            p2m,
            grant,
            shared_info,
            // The hardware domain's console is direct, as on Xen (it may be a shell).
            console: GuestConsole::new(cfg.id, cfg.privileged),
            counter_offset: cfg.counter_offset,
            vgic,
            evtchn_ppi: cfg.evtchn_ppi,
            max_pages: AtomicU64::new(cfg.max_pages),
            hvm_params: core::array::from_fn(|i| {
                let callback = i as u32 == xen_abi::hvm::HVM_PARAM_CALLBACK_IRQ;
                AtomicU64::new(if callback { xen_abi::hvm::callback_ppi(cfg.evtchn_ppi) } else { 0 })
            }),
            vm_assist: AtomicU64::new(0),
            state: AtomicU32::new(DomainState::Running as u32),
            shutting_down: AtomicBool::new(false),
            iomem: RwLock::new(rank::IOMEM, Vec::new()),
        }
    }

    /// `hvm_op` parameter `index` (`< HVM_NR_PARAMS`, else 0).
    pub fn hvm_param(&self, index: u32) -> u64 {
        self.hvm_params.get(index as usize).map_or(0, |p| p.load(Ordering::Acquire))
    }

    pub fn set_hvm_param(&self, index: u32, value: u64) {
        if let Some(p) = self.hvm_params.get(index as usize) {
            p.store(value, Ordering::Release);
        }
    }

    /// The vCPU whose MPIDR affinity is `mpidr` (flags ignored).
    pub fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<&Vcpu> {
        self.vcpus.iter().find(|v| v.has_affinity(mpidr))
    }

    /// Has the domain started going down?
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Mark the domain as going down; false if it already was.
    pub(crate) fn begin_shutdown(&self) -> bool {
        !self.shutting_down.swap(true, Ordering::AcqRel)
    }

    pub fn state(&self) -> DomainState {
        match self.state.load(Ordering::Acquire) {
            0 => DomainState::Running,
            1 => DomainState::Dying,
            _ => DomainState::Dead,
        }
    }
    pub fn is_running(&self) -> bool {
        self.state() == DomainState::Running
    }
    pub(crate) fn transition(&self, from: DomainState, to: DomainState) -> bool {
        self.state.compare_exchange(from as u32, to as u32, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Allow MMIO frames `[start, end)`.
    pub fn permit_iomem(&self, start: u64, end: u64) {
        self.iomem.write().push((start, end));
    }
    pub fn iomem_permitted(&self, mfn: u64) -> bool {
        self.iomem.read().iter().any(|&(s, e)| mfn >= s && mfn < e)
    }

    /// The event-channel upcall: `evtchn_upcall_pending` of vCPU `vcpu` just went from 0 to 1
    /// (Arm's `vcpu_mark_events_pending`). The one place the event-channel interrupt is
    /// raised: the domain's event-channel PPI is made pending on the vCPU in its virtual GIC
    /// (counted in [`Vcpu::upcalls`]), and the CPU running the vCPU is kicked if the vGIC
    /// says it must look (the vCPU is blocked, or the PPI must go into its list registers).
    /// Called with event-channel tables held: it takes only vGIC locks.
    pub fn raise_event_upcall(&self, hw: &dyn Hw, vcpu: u32) {
        let Some(v) = self.vcpus.get(vcpu as usize) else { return };
        v.upcalls.fetch_add(1, Ordering::AcqRel);
        let kicks = self.vgic.inject(vcpu as usize, self.evtchn_ppi);
        for t in kicks.iter().filter_map(|i| self.vcpus.get(i)) {
            hw.kick(t.pcpu);
        }
    }

    /// Is `VMASST_TYPE_*` `ty` enabled?
    pub fn vm_assist(&self, ty: u32) -> bool {
        ty < 64 && self.vm_assist.load(Ordering::Acquire) & (1 << ty) != 0
    }

    /// May `self` act on `target`? (Xen's XSM_TARGET with the dummy policy.)
    pub fn controls(&self, target: &Domain) -> bool {
        self.id == target.id || self.privileged
    }

    /// Release the pages this domain still owns (teardown step; see `Hypervisor::destroy`).
    pub(crate) fn relinquish_pages(&self, mm: &Mm) {
        let frames = &mm.frames;
        for i in 0..frames.len() as u64 {
            let m = Mfn(frames.base().0 + i);
            let p = &frames[i as usize];
            if p.owner() == Some(self.id) && !p.is_xen_heap() {
                mm.put_alloc_ref(m);
            }
        }
    }
}

impl crate::evtchn::Owner for Domain {
    fn domid(&self) -> DomId {
        self.id
    }
    fn events(&self) -> &EvtchnTable {
        &self.evtchn
    }
    fn shared_info(&self) -> Mfn {
        self.shared_info
    }
    fn p2m(&self) -> &P2m {
        &self.p2m
    }
    fn raise_event_upcall(&self, hw: &dyn Hw, vcpu: u32) {
        Domain::raise_event_upcall(self, hw, vcpu)
    }
}
