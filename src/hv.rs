//! The hypervisor context: machine memory, the stage-2 configuration, the machine's services
//! ([`Hw`]), the domain table and which CPU runs which vCPU ([`Pinned`]); creating and
//! tearing down domains. (Starting and shutting down a domain's vCPUs: [`crate::lifecycle`].)

use crate::domain::{Domain, DomainConfig, DomainState};
use crate::evtchn::{self, Env};
use crate::grant::GrantTable;
use crate::hw::Hw;
use crate::mm::{MAX_DOMAINS, Mm};
use crate::p2m::{P2m, StageConfig};
use crate::sched::Pinned;

use crate::sync::{AtomicU16, AtomicU32, Mutex, Ordering, RwLock, rank};
use crate::time::Clock;
use crate::types::{DomId, Errno, Result};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use xen_abi::DOMID_SELF;

/// Boot options the core cares about.
#[derive(Clone, Debug)]
pub struct Options {
    /// `gnttab_max_frames=` (Xen default 64).
    pub max_grant_frames: u32,
    /// `gnttab_max_maptrack_frames=` (Xen default 1024). A maptrack frame of Xen's holds 256
    /// handles (16-byte entries), so a domain may hold `frames * 256` grant mappings.
    pub max_maptrack_frames: u32,
    /// `granite_audit=1`: the audit hypercall is available and hypercalls are fenced so the
    /// audit sees a quiescent machine.
    pub audit: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_grant_frames: 64, max_maptrack_frames: 1024, audit: false }
    }
}

/// A domain found by [`Hypervisor::lookup`]: the calling domain itself, borrowed (the caller's
/// own reference keeps it alive, so the common `DOMID_SELF` case costs no reference-count
/// traffic), or another domain with a reference of its own.
pub enum DomRef<'a> {
    Caller(&'a Arc<Domain>),
    Other(Arc<Domain>),
}

impl core::ops::Deref for DomRef<'_> {
    type Target = Arc<Domain>;
    fn deref(&self) -> &Arc<Domain> {
        match self {
            DomRef::Caller(d) => d,
            DomRef::Other(d) => d,
        }
    }
}

pub struct Hypervisor {
    pub mm: Mm,
    pub stage: StageConfig,
    pub opts: Options,
    pub hw: Arc<dyn Hw>,
    /// Which physical CPU runs which vCPU.
    pub sched: Pinned,
    /// What is typed on the hypervisor's console, on its way to dom0 (`CONSOLEIO_read`).
    pub console_in: crate::console::ConsoleInput,
    /// The domain owning each physical SPI (`u16::MAX`: none), for the interrupt path.
    spi_owner: Vec<AtomicU16>,
    /// System time and the wallclock.
    pub clock: Clock,
    domains: RwLock<Vec<Option<Arc<Domain>>>>,
    vmids: Mutex<Vec<u64>>,
    dying: AtomicU32,
    create_lock: Mutex<()>,
    /// Held (read) by every hypercall when the audit is enabled; the audit takes it for writing.
    pub(crate) gate: RwLock<()>,
}

impl Hypervisor {
    pub fn new(mm: Mm, stage: StageConfig, opts: Options, hw: Arc<dyn Hw>) -> Self {
        let vmid_words = (1usize << stage.vmid_bits) / 64;
        let mut vmids = vec![0u64; vmid_words];
        vmids[0] = 1; // VMID 0 is never used for a guest
        let clock = Clock::new(hw.counter());
        Hypervisor {
            mm,
            stage,
            opts,
            hw,
            sched: Pinned::new(),
            console_in: crate::console::ConsoleInput::new(),
            spi_owner: (0..crate::gic::SPI_END).map(|_| AtomicU16::new(u16::MAX)).collect(),
            clock,
            domains: RwLock::new(rank::DOMAIN_TABLE, (0..MAX_DOMAINS).map(|_| None).collect()),
            vmids: Mutex::new(rank::VMID, vmids),
            dying: AtomicU32::new(0),
            create_lock: Mutex::new(rank::DOMAIN_CREATE, ()),
            gate: RwLock::new(rank::HYPERCALL_FENCE, ()),
        }
    }

    /// Physical SPI `intid` now belongs to domain `dom` (its device's interrupt, routed one to
    /// one), or to nobody.
    pub fn set_spi_owner(&self, intid: u32, dom: Option<DomId>) {
        if let Some(o) = self.spi_owner.get(intid as usize) {
            o.store(dom.unwrap_or(u16::MAX), Ordering::Release);
        }
    }

    /// The domain physical SPI `intid` belongs to.
    #[inline]
    pub fn spi_owner(&self, intid: u32) -> Option<DomId> {
        let o = self.spi_owner.get(intid as usize)?.load(Ordering::Acquire);
        (o != u16::MAX).then_some(o)
    }

    /// Console input waits for dom0: `VIRQ_CONSOLE` to the domain that bound it.
    pub fn notify_console_input(&self) {
        self.send_global_virq(xen_abi::evtchn::VIRQ_CONSOLE);
    }

    /// A default configuration for domain `id` with the boot options: one vCPU, on CPU 0.
    pub fn domain_config(&self, id: DomId) -> DomainConfig {
        DomainConfig {
            id,
            privileged: id == 0,
            direct_map: false,
            max_grant_frames: self.opts.max_grant_frames,
            max_maptrack: self.opts.max_maptrack_frames * 256,
            p2m_table_limit: 4096,
            pcpus: vec![0],
            counter_offset: self.hw.counter(),
            vgic: crate::vgic::guest::config(crate::vgic::Version::V3, 1),
            evtchn_ppi: xen_abi::guest_layout::GUEST_EVTCHN_PPI,
            max_pages: u64::MAX,
            // Xen: unlimited (`INT_MAX`) for the hardware domain, xl's and dom0less's 1023 for
            // other domains.
            max_evtchn_port: if id == 0 { i32::MAX as u32 } else { 1023 },
        }
    }

    fn alloc_vmid(&self) -> Option<u16> {
        let mut v = self.vmids.lock();
        for (w, word) in v.iter_mut().enumerate() {
            if *word != u64::MAX {
                let b = word.trailing_ones();
                *word |= 1 << b;
                return Some((w * 64 + b as usize) as u16);
            }
        }
        None
    }
    fn free_vmid(&self, vmid: u16) {
        self.vmids.lock()[vmid as usize / 64] &= !(1 << (vmid % 64));
    }

    /// Create a domain: its vCPUs (off), VMID, empty P2M, grant table with one frame,
    /// shared_info page.
    pub fn create_domain(&self, cfg: DomainConfig) -> Result<Arc<Domain>> {
        if cfg.id as usize >= MAX_DOMAINS || cfg.pcpus.is_empty() || cfg.pcpus.len() > crate::vgic::MAX_VCPUS {
            return Err(Errno::EINVAL);
        }
        let _serialise = self.create_lock.lock();
        if self.domains.read()[cfg.id as usize].is_some() {
            return Err(Errno::EEXIST);
        }
        let vmid = self.alloc_vmid().ok_or(Errno::ENOMEM)?;
        let p2m = match P2m::new(&self.mm, cfg.id, vmid, self.stage, cfg.p2m_table_limit) {
            Ok(p) => p,
            Err(e) => {
                self.free_vmid(vmid);
                return Err(e);
            }
        };
        let undo_p2m = |p2m: P2m| {
            p2m.write(&self.mm).relinquish();
            p2m.destroy(&self.mm);
            self.free_vmid(vmid);
        };
        let grant = match GrantTable::new(&self.mm, cfg.id, cfg.max_grant_frames, cfg.max_maptrack) {
            Ok(g) => g,
            Err(e) => {
                undo_p2m(p2m);
                return Err(e);
            }
        };
        let shared_info = match self.mm.alloc_xenheap() {
            Ok(m) => m,
            Err(e) => {
                grant.destroy(&self.mm);
                undo_p2m(p2m);
                return Err(e);
            }
        };
        self.mm.share_with_guest(shared_info, cfg.id, false);
        let d = Arc::new(Domain::new(&cfg, p2m, grant, shared_info));
        let now = self.clock.now(&*self.hw);
        for v in d.vcpus.iter() {
            v.runstate.lock().entry_time = now;
        }
        self.clock.update_domain(&self.mm, shared_info);
        self.domains.write()[cfg.id as usize] = Some(d.clone());
        Ok(d)
    }

    /// A running domain (Xen's `rcu_lock_domain_by_id`).
    pub fn domain(&self, id: DomId) -> Option<Arc<Domain>> {
        self.domain_any_state(id).filter(|d| d.is_running())
    }

    /// A domain whatever its state (unmap of a grant of a dying domain still finds it).
    pub fn domain_any_state(&self, id: DomId) -> Option<Arc<Domain>> {
        self.domains.read().get(id as usize)?.clone()
    }

    /// `DOMID_SELF` or a running domain's id (Xen's `rcu_lock_domain_by_any_id`).
    pub fn lookup<'a>(&self, caller: &'a Arc<Domain>, id: DomId) -> Option<DomRef<'a>> {
        if id == DOMID_SELF || id == caller.id {
            Some(DomRef::Caller(caller))
        } else {
            self.domain(id).map(DomRef::Other)
        }
    }

    /// [`Self::domain`], borrowing `caller` when it is the domain asked for (no reference-count
    /// traffic for a domain mapping its own grants).
    pub fn domain_or_caller<'a>(&self, caller: &'a Arc<Domain>, id: DomId) -> Option<DomRef<'a>> {
        if id == caller.id {
            caller.is_running().then_some(DomRef::Caller(caller))
        } else {
            self.domain(id).map(DomRef::Other)
        }
    }

    /// [`Self::domain_any_state`], borrowing `caller` when it is the domain asked for.
    pub fn domain_any_state_or_caller<'a>(&self, caller: &'a Arc<Domain>, id: DomId) -> Option<DomRef<'a>> {
        if id == caller.id { Some(DomRef::Caller(caller)) } else { self.domain_any_state(id).map(DomRef::Other) }
    }

    pub fn domains(&self) -> Vec<Arc<Domain>> {
        self.domains.read().iter().flatten().cloned().collect()
    }

    /// Tear a domain down (its vCPUs must not run any more): relinquish the P2M (clearing the
    /// stored GFNs of its xenheap pages and dropping foreign references), release its grant
    /// mappings of other domains, drop the allocation reference of each of its pages. Pages
    /// other domains still map stay until they unmap them; the domain is finalised (grant
    /// frames, shared_info, P2M root, VMID, id) by [`Self::reap`] once nothing remains.
    pub fn destroy_domain(&self, d: &Arc<Domain>) {
        if !d.transition(DomainState::Running, DomainState::Dying) {
            return;
        }
        // Teardown changes pages and mappings like a hypercall does: an audit must not run
        // in the middle of it.
        let _fence = self.opts.audit.then(|| self.gate.read());
        self.dying.fetch_add(1, Ordering::AcqRel);
        // Event channels first (as Xen's `domain_kill`): every peer unbound from it, its
        // FIFO and `vcpu_info` pages let go.
        evtchn::teardown(&self.evtchn_env(), &**d);
        d.p2m.write(&self.mm).relinquish();
        for (_handle, e) in d.grant.drain_handles() {
            if let Some(rd) = self.domain_any_state(e.domid) {
                crate::grant::pin::release_mapping(&self.mm, &rd.grant, e);
            }
        }
        d.relinquish_pages(&self.mm);
        drop(_fence);
        self.reap();
    }

    /// Finalise dying domains whose guest memory is all gone. One load when none is dying
    /// (it runs after every hypercall).
    #[inline]
    pub fn reap(&self) {
        if self.dying.load(Ordering::Acquire) != 0 {
            self.reap_dying();
        }
    }

    #[cold]
    #[inline(never)]
    fn reap_dying(&self) {
        for d in self.domains() {
            if d.state() == DomainState::Dying
                && self.mm.pages_of(d.id).domheap.load(Ordering::Acquire) == 0
                && d.transition(DomainState::Dying, DomainState::Dead)
            {
                d.grant.destroy(&self.mm);
                self.mm.put_alloc_ref(d.shared_info);
            }
            if d.state() == DomainState::Dead && self.mm.pages_of(d.id).total() == 0 {
                let mut t = self.domains.write();
                if t[d.id as usize].as_ref().is_some_and(|x| Arc::ptr_eq(x, &d)) {
                    t[d.id as usize] = None;
                    drop(t);
                    self.dying.fetch_sub(1, Ordering::AcqRel);
                    self.finalize(&d);
                    log::info!("d{}: every page freed, domain finalised", d.id);
                }
            }
        }
    }

    fn finalize(&self, d: &Domain) {
        {
            let mut w = d.p2m.write(&self.mm);
            if !w.is_dying() {
                w.relinquish();
            }
        }
        d.p2m.destroy(&self.mm);
        self.free_vmid(d.p2m.vmid());
    }

    /// Dying domains not yet finalised.
    pub fn dying_domains(&self) -> u32 {
        self.dying.load(Ordering::Acquire)
    }

    /// What the event-channel code needs to reach the machine and the other domains.
    pub fn evtchn_env(&self) -> Env<'_> {
        Env { mm: &self.mm, hw: &*self.hw, domains: self }
    }

    /// Raise VIRQ `virq` in `d`: a per-vCPU VIRQ on vCPU `vcpu` (Xen's
    /// `send_guest_vcpu_virq`), a global one wherever its port is bound (Xen's
    /// `send_guest_global_virq`; `vcpu` is not used). Nothing happens if it is not bound.
    pub fn send_virq(&self, d: &Domain, virq: u32, vcpu: u32) {
        if xen_abi::evtchn::virq_is_global(virq) {
            evtchn::send_global_virq(&self.evtchn_env(), d, virq);
        } else {
            evtchn::send_vcpu_virq(&self.evtchn_env(), d, vcpu, virq);
        }
    }

    /// Raise global VIRQ `virq` (`VIRQ_CONSOLE`, ...) in the hardware domain (Xen's
    /// `send_global_virq`; granite has no `set_global_virq_handler`).
    pub fn send_global_virq(&self, virq: u32) {
        if let Some(d0) = self.domain(0) {
            evtchn::send_global_virq(&self.evtchn_env(), &*d0, virq);
        }
    }
}

impl evtchn::Domains for Hypervisor {
    fn find(&self, id: DomId) -> Option<Arc<dyn evtchn::Owner>> {
        self.domain_any_state(id).map(|d| d as Arc<dyn evtchn::Owner>)
    }
}
