//! Event channels: a domain's ports and what they are bound to, delivery through the 2-level
//! ABI ([`two_level`]: bitmaps in `shared_info`, selector words in each `vcpu_info`) or the
//! FIFO ABI ([`fifo`]: event words and per-vCPU control blocks in guest pages), the `vcpu_info`
//! each vCPU registered, and VIRQs raised by the hypervisor. The semantics and errnos are Xen
//! 4.17's (`common/event_channel.c`, `event_2l.c`, `event_fifo.c`, `common/domain.c`
//! `map_vcpu_info`); each function names the Xen function it mirrors.
//!
//! **Locking.** Each domain's [`EvtchnTable`] is one [`Mutex`] ([`rank::EVTCHN`]) over its
//! ports, its ABI state and its vCPUs' `vcpu_info` locations. Guest-shared memory (bitmaps,
//! event words, `vcpu_info`) is only touched through [`crate::mm::PhysMap`] atomics, under the
//! owning domain's table lock, while the guest changes the same words concurrently. An
//! interdomain binding is made and broken only with **both** domains' tables held
//! ([`lock_pair`]: the lower domain id first, the higher one at [`rank::EVTCHN_PEER`], as Xen
//! orders its two `event_lock`s). So whoever holds one end's table sees a binding that the
//! other end agrees with — which is what lets `send` deliver holding one table at a time: it
//! reads its port under its own lock, then, under the peer's, checks the peer port still names
//! it before setting it pending (otherwise the binding changed in between and it looks again).
//! Nothing in here takes a grant-table lock; the P2M (read) lock is taken under a table lock to
//! take a page reference on a guest page. Sending may raise an upcall
//! ([`Owner::raise_event_upcall`]), which may inject into the vGIC: always below this rank.
//!
//! **Pages.** A registered `vcpu_info`, a FIFO control block and each FIFO event-array page is
//! a guest page the hypervisor keeps using: a page reference is held on each (taken under the
//! guest's P2M lock, like a foreign mapping's) and dropped at `EVTCHNOP_reset` (FIFO pages) or
//! at teardown ([`teardown`]).
//!
//! The module names no `Domain` or `Hypervisor`: it sees a domain through [`Owner`] and finds
//! other domains through [`Domains`] (both implemented where those types live), so that a
//! domain can own its table without a module cycle.

pub mod fifo;
pub mod two_level;

use crate::hw::Hw;
use crate::mm::Mm;
use crate::p2m::P2m;
use crate::sync::{Mutex, MutexGuard, rank};
use crate::types::{DomId, Errno, Gfn, Mfn, PAGE_SIZE, Result};
use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use xen_abi::VcpuInfo;
use xen_abi::evtchn::*;

/// Ports are allocated in buckets of this many (Xen's `EVTCHNS_PER_BUCKET`: a page of 64-byte
/// `struct evtchn`). Ports below the allocated size are *valid*: an operation on a valid but
/// free port answers as Xen does for `ECS_FREE`, one beyond as for a port that does not exist.
pub const PORTS_PER_BUCKET: u32 = 64;

/// How often `send` looks again when the binding it read changed before it could deliver
/// (another vCPU closing and rebinding the port meanwhile, every time).
const SEND_ATTEMPTS: u32 = 8;

/// Ports `EVTCHNOP_reset` closes in one trap before it continues (Xen preempts every 64 ports
/// when work is pending; we do it after this many, at a multiple of 64).
pub const RESET_PORTS_PER_CALL: u32 = 1024;

/// Xen 4.17 on Arm gives a domain `nr_pirqs` = 1024 PIRQs and can bind none of them.
pub const NR_PIRQS: u32 = 1024;

/// A domain as the event-channel code sees it (implemented by `crate::domain::Domain`).
pub trait Owner: Send + Sync {
    fn domid(&self) -> DomId;
    fn events(&self) -> &EvtchnTable;
    /// Its `shared_info` page (2-level bitmaps, vCPU 0's default `vcpu_info`).
    fn shared_info(&self) -> Mfn;
    fn p2m(&self) -> &P2m;
    /// The upcall: `evtchn_upcall_pending` of `vcpu` just went from 0 to 1.
    fn raise_event_upcall(&self, hw: &dyn Hw, vcpu: u32);
}

/// Finding a domain by id, whatever its state (implemented by the hypervisor).
pub trait Domains {
    fn find(&self, id: DomId) -> Option<Arc<dyn Owner>>;
}

/// What the event-channel code needs around it.
pub struct Env<'a> {
    pub mm: &'a Mm,
    pub hw: &'a dyn Hw,
    pub domains: &'a dyn Domains,
}

/// What a port is bound to (Xen's `ECS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Free,
    /// Port 0, never allocated.
    Reserved,
    /// Waiting for `remote` to bind to it.
    Unbound {
        remote: DomId,
    },
    /// Bound to `port` of domain `remote` (possibly this domain: loopback).
    Interdomain {
        remote: DomId,
        port: u32,
    },
    Virq(u32),
    Ipi,
}

/// One port (Xen's `struct evtchn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chan {
    pub state: State,
    /// The vCPU its events are signalled to.
    pub notify: u32,
    /// FIFO priority (set when bound in FIFO mode and when the domain switches to FIFO).
    pub priority: u8,
    /// FIFO: the queue (vCPU, priority) it was last linked on (Xen's `fifo_lastq`, kept
    /// across reuse of the port).
    last_q: (u16, u8),
    /// FIFO: an event arrived while its event-array page did not exist (Xen's `pending`).
    fifo_pending: bool,
}

impl Chan {
    const FREE: Chan = Chan { state: State::Free, notify: 0, priority: 0, last_q: (0, 0), fifo_pending: false };

    /// Xen's `evtchn_usable`: neither free nor reserved.
    pub fn usable(&self) -> bool {
        !matches!(self.state, State::Free | State::Reserved)
    }
}

/// Where a vCPU's `vcpu_info` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuInfoAt {
    /// `shared_info.vcpu_info[0]` (vCPU 0 until it registers one).
    SharedInfo,
    /// Nowhere the guest sees (vCPUs ≥ 1 until they register one: Xen's `dummy_vcpu_info`).
    Dummy,
    /// Registered with `VCPUOP_register_vcpu_info`: a page reference is held on `mfn`.
    Guest { mfn: Mfn, offset: u32 },
}

/// Per-vCPU event state.
struct VcpuEv {
    info: VcpuInfoAt,
    /// The dummy `vcpu_info`'s first word (`evtchn_upcall_pending`) and selector.
    dummy: [AtomicU64; 2],
    /// Port bound to each VIRQ on this vCPU (global VIRQs on vCPU 0), 0 if none.
    virq: [u32; NR_VIRQS as usize],
}

/// A domain's event channels, behind its lock.
pub struct Table {
    ports: Vec<Chan>,
    /// Highest port the domain may allocate (Xen's `max_evtchn_port`).
    max_port: u32,
    /// Ports neither free nor reserved.
    active: u32,
    vcpus: Vec<VcpuEv>,
    /// The FIFO ABI once `EVTCHNOP_init_control` succeeded; the 2-level ABI otherwise.
    fifo: Option<Box<fifo::Fifo>>,
    /// Where a preempted `EVTCHNOP_reset` continues (0: no reset in progress).
    next_reset: u32,
    /// Torn down: no port may be allocated any more.
    dead: bool,
}

/// A domain's event-channel table (see the module documentation for its lock).
pub struct EvtchnTable {
    inner: Mutex<Table>,
}

impl EvtchnTable {
    /// The table of a domain with `nr_vcpus` vCPUs that may allocate ports up to `max_port`:
    /// one bucket, port 0 reserved, 2-level ABI (Xen's `evtchn_init`).
    pub fn new(nr_vcpus: u32, max_port: u32) -> EvtchnTable {
        let mut ports = alloc::vec![Chan::FREE; PORTS_PER_BUCKET as usize];
        ports[0].state = State::Reserved;
        let vcpus = (0..nr_vcpus)
            .map(|i| VcpuEv {
                info: if (i as usize) < xen_abi::XEN_LEGACY_MAX_VCPUS {
                    VcpuInfoAt::SharedInfo
                } else {
                    VcpuInfoAt::Dummy
                },
                dummy: [AtomicU64::new(0), AtomicU64::new(0)],
                virq: [0; NR_VIRQS as usize],
            })
            .collect();
        let t = Table { ports, max_port, active: 0, vcpus, fifo: None, next_reset: 0, dead: false };
        EvtchnTable { inner: Mutex::new(rank::EVTCHN, t) }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock()
    }

    /// A copy of the table's state (tests, the audit, fingerprints).
    pub fn snapshot(&self) -> Snapshot {
        let t = self.lock();
        let mut virqs = Vec::new();
        for (v, ev) in t.vcpus.iter().enumerate() {
            for (virq, &p) in ev.virq.iter().enumerate() {
                if p != 0 {
                    virqs.push((v as u32, virq as u32, p));
                }
            }
        }
        let mut pages: Vec<Mfn> = t
            .vcpus
            .iter()
            .filter_map(|v| match v.info {
                VcpuInfoAt::Guest { mfn, .. } => Some(mfn),
                _ => None,
            })
            .collect();
        if let Some(f) = &t.fifo {
            pages.extend(f.pages());
        }
        Snapshot {
            valid: t.ports.len() as u32,
            active: t.active,
            dead: t.dead,
            fifo: t.fifo.is_some(),
            next_reset: t.next_reset,
            ports: t.ports.iter().enumerate().filter(|(_, c)| c.usable()).map(|(p, c)| (p as u32, *c)).collect(),
            virqs,
            vcpu_info: t.vcpus.iter().map(|v| v.info).collect(),
            pages,
            event_array_pages: t.fifo.as_ref().map_or(0, |f| f.array.len() as u32),
            control_blocks: t.fifo.as_ref().map_or(Vec::new(), |f| f.vcpus.iter().map(|v| v.control).collect()),
        }
    }

    /// Where `vcpu`'s `vcpu_info` is.
    pub fn vcpu_info_at(&self, vcpu: u32) -> Option<VcpuInfoAt> {
        self.lock().vcpus.get(vcpu as usize).map(|v| v.info)
    }

    /// Is `evtchn_upcall_pending` set in `vcpu`'s `vcpu_info` (the level of its event-channel
    /// interrupt: what Xen's `vcpu_update_evtchn_irq` re-syncs the vGIC to, and what decides
    /// whether a vCPU blocking in `SCHEDOP_block`/WFI has an event waiting)?
    pub fn upcall_pending(&self, mm: &Mm, shared_info: Mfn, vcpu: u32) -> bool {
        let t = self.lock();
        let Some(ev) = t.vcpus.get(vcpu as usize) else { return false };
        vcpu_words(mm, shared_info, ev).0.load(Ordering::SeqCst) & 0xff != 0
    }

    /// The machine address of `vcpu`'s `vcpu_info` in `d`'s memory (none for the dummy).
    pub fn vcpu_info_addr(&self, shared_info: Mfn, vcpu: u32) -> Option<u64> {
        vcpu_info_addr(shared_info, self.lock().vcpus.get(vcpu as usize)?.info)
    }
}

/// A copy of a table's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Ports allocated so far (a multiple of [`PORTS_PER_BUCKET`]).
    pub valid: u32,
    pub active: u32,
    pub dead: bool,
    pub fifo: bool,
    pub next_reset: u32,
    /// Every usable port.
    pub ports: Vec<(u32, Chan)>,
    /// (vCPU, VIRQ, port) of every bound VIRQ.
    pub virqs: Vec<(u32, u32, u32)>,
    pub vcpu_info: Vec<VcpuInfoAt>,
    /// Every guest page a reference is held on (registered `vcpu_info`s, FIFO control blocks
    /// and event-array pages), once per reference.
    pub pages: Vec<Mfn>,
    pub event_array_pages: u32,
    /// FIFO control block of each vCPU: its page and offset.
    pub control_blocks: Vec<Option<(Mfn, u32)>>,
}

impl Snapshot {
    pub fn port(&self, port: u32) -> Option<Chan> {
        self.ports.iter().find(|(p, _)| *p == port).map(|(_, c)| *c)
    }
}

fn vcpu_info_addr(shared_info: Mfn, at: VcpuInfoAt) -> Option<u64> {
    match at {
        VcpuInfoAt::SharedInfo => Some(shared_info.addr()),
        VcpuInfoAt::Guest { mfn, offset } => Some(mfn.addr() + offset as u64),
        VcpuInfoAt::Dummy => None,
    }
}

impl Table {
    fn chan(&self, port: u32) -> Result<Chan> {
        self.ports.get(port as usize).copied().ok_or(Errno::EINVAL)
    }

    /// Xen's `max_evtchns`.
    fn max_evtchns(&self) -> u32 {
        if self.fifo.is_some() { EVTCHN_FIFO_NR_CHANNELS } else { EVTCHN_2L_NR_CHANNELS }
    }

    /// Xen's `get_free_port` / `evtchn_allocate_port`: the lowest free port that is not still
    /// linked on a FIFO queue, allocating a bucket when the valid ports are all in use. The
    /// port stays free until the caller binds it ([`Self::bind`]); a bucket allocated for an
    /// operation that then fails stays allocated, as in Xen.
    fn get_free_port(&mut self, mm: &Mm) -> Result<u32> {
        if self.dead {
            return Err(Errno::EINVAL);
        }
        let limit = self.max_evtchns().min(self.max_port.saturating_add(1));
        for port in 0..limit {
            match self.ports.get(port as usize) {
                Some(c) if c.state != State::Free => continue,
                Some(_) if self.fifo.as_ref().is_some_and(|f| f.is_busy(mm, port)) => continue,
                Some(_) => return Ok(port),
                None => {
                    let add = PORTS_PER_BUCKET as usize;
                    self.ports.try_reserve(add).map_err(|_| Errno::ENOMEM)?;
                    self.ports.extend(core::iter::repeat_n(Chan::FREE, add));
                    return Ok(port);
                }
            }
        }
        Err(Errno::ENOSPC)
    }

    /// Bind free port `port` (Xen's state change plus `evtchn_port_init`: in FIFO mode the
    /// default priority).
    fn bind(&mut self, port: u32, state: State, notify: u32) {
        let fifo = self.fifo.is_some();
        let c = &mut self.ports[port as usize];
        debug_assert_eq!(c.state, State::Free);
        c.state = state;
        c.notify = notify;
        if fifo {
            c.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
        }
        self.active += 1;
    }

    fn nr_vcpus(&self) -> u32 {
        self.vcpus.len() as u32
    }
}

/// Xen's `evtchn_free`: clear the port's pending state, forget its binding.
fn free(mm: &Mm, d: &dyn Owner, t: &mut Table, port: u32) {
    clear_pending(mm, d, t, port);
    let c = &mut t.ports[port as usize];
    if c.usable() {
        t.active -= 1;
    }
    c.state = State::Free;
    c.notify = 0;
}

// ---- the ABI: delivery ----------------------------------------------------------------------

/// `evtchn_port_set_pending`: signal `port` of `d` to `vcpu` (only if the port is bound).
fn set_pending(env: &Env, d: &dyn Owner, t: &mut Table, vcpu: u32, port: u32) {
    if !t.ports.get(port as usize).is_some_and(Chan::usable) || vcpu >= t.nr_vcpus() {
        return;
    }
    if t.fifo.is_some() {
        fifo::set_pending(env, d, t, vcpu, port);
    } else {
        two_level::set_pending(env, d, t, vcpu, port);
    }
}

/// `evtchn_port_clear_pending`.
fn clear_pending(mm: &Mm, d: &dyn Owner, t: &Table, port: u32) {
    if !t.ports.get(port as usize).is_some_and(Chan::usable) {
        return;
    }
    match &t.fifo {
        Some(f) => f.clear_pending(mm, port),
        None => two_level::clear_pending(mm, d.shared_info(), port),
    }
}

/// The first word of `vcpu`'s `vcpu_info` (bit 0 is `evtchn_upcall_pending`) and its
/// `evtchn_pending_sel`.
fn vcpu_words<'a>(mm: &'a Mm, shared_info: Mfn, ev: &'a VcpuEv) -> (&'a AtomicU64, &'a AtomicU64) {
    match vcpu_info_addr(shared_info, ev.info) {
        Some(a) => (mm.phys.atomic_u64(a), mm.phys.atomic_u64(a + 8)),
        None => (&ev.dummy[0], &ev.dummy[1]),
    }
}

/// Arm's `vcpu_mark_events_pending`: set `evtchn_upcall_pending`; the upcall is raised on
/// its 0 → 1 edge only.
fn mark_events_pending(env: &Env, d: &dyn Owner, vcpus: &[VcpuEv], vcpu: u32) {
    let Some(ev) = vcpus.get(vcpu as usize) else { return };
    let (word0, _) = vcpu_words(env.mm, d.shared_info(), ev);
    if word0.fetch_or(1, Ordering::SeqCst) & 1 == 0 {
        d.raise_event_upcall(env.hw, vcpu);
    }
}

// ---- locking two tables ---------------------------------------------------------------------

/// Lock the tables of two different domains, the lower domain id first (the second at
/// [`rank::EVTCHN_PEER`]); the guards come back as `(a's, b's)`.
fn lock_pair<'a>(a: &'a dyn Owner, b: &'a dyn Owner) -> (MutexGuard<'a, Table>, MutexGuard<'a, Table>) {
    debug_assert_ne!(a.domid(), b.domid());
    if a.domid() < b.domid() {
        let ga = a.events().inner.lock();
        (ga, b.events().inner.lock_second(rank::EVTCHN_PEER))
    } else {
        let gb = b.events().inner.lock();
        (a.events().inner.lock_second(rank::EVTCHN_PEER), gb)
    }
}

// ---- the operations -------------------------------------------------------------------------

/// `EVTCHNOP_alloc_unbound` on `d` (Xen's `evtchn_alloc_unbound`): a port of `d` waiting for
/// `remote` (the caller resolved `DOMID_SELF` to itself). `permitted` is the XSM_TARGET check,
/// made after the port is found as in Xen.
pub fn alloc_unbound(env: &Env, d: &dyn Owner, permitted: bool, remote: DomId) -> Result<u32> {
    let mut t = d.events().lock();
    let port = t.get_free_port(env.mm)?;
    if !permitted {
        return Err(Errno::EPERM);
    }
    t.bind(port, State::Unbound { remote }, 0);
    Ok(port)
}

/// `EVTCHNOP_bind_interdomain` (Xen's `evtchn_bind_interdomain`): bind a new port of `ld` to
/// unbound port `rport` of `rd`, which must be waiting for `ld` (loopback within one domain
/// allowed). Both tables are held; the new local port is set pending at once ("we may have
/// lost notifications on the remote unbound port").
pub fn bind_interdomain(env: &Env, ld: &dyn Owner, rd: &dyn Owner, rport: u32) -> Result<u32> {
    let lid = ld.domid();
    if lid == rd.domid() {
        let mut t = ld.events().lock();
        let lport = t.get_free_port(env.mm)?;
        match t.chan(rport)?.state {
            State::Unbound { remote } if remote == lid => {}
            _ => return Err(Errno::EINVAL),
        }
        t.bind(lport, State::Interdomain { remote: lid, port: rport }, 0);
        t.ports[rport as usize].state = State::Interdomain { remote: lid, port: lport };
        let n = t.ports[lport as usize].notify;
        set_pending(env, ld, &mut t, n, lport);
        return Ok(lport);
    }
    let (mut lt, mut rt) = lock_pair(ld, rd);
    let lport = lt.get_free_port(env.mm)?;
    if rt.dead {
        return Err(Errno::EINVAL);
    }
    match rt.chan(rport)?.state {
        State::Unbound { remote } if remote == lid => {}
        _ => return Err(Errno::EINVAL),
    }
    lt.bind(lport, State::Interdomain { remote: rd.domid(), port: rport }, 0);
    rt.ports[rport as usize].state = State::Interdomain { remote: lid, port: lport };
    let n = lt.ports[lport as usize].notify;
    set_pending(env, ld, &mut lt, n, lport);
    Ok(lport)
}

/// `EVTCHNOP_bind_virq` on `d` (Xen's `evtchn_bind_virq`). Global VIRQs only on vCPU 0.
pub fn bind_virq(env: &Env, d: &dyn Owner, virq: u32, vcpu: u32) -> Result<u32> {
    if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
        return Err(Errno::EINVAL);
    }
    let mut t = d.events().lock();
    if vcpu >= t.nr_vcpus() {
        return Err(Errno::ENOENT);
    }
    if t.vcpus[vcpu as usize].virq[virq as usize] != 0 {
        return Err(Errno::EEXIST);
    }
    let port = t.get_free_port(env.mm)?;
    t.bind(port, State::Virq(virq), vcpu);
    t.vcpus[vcpu as usize].virq[virq as usize] = port;
    Ok(port)
}

/// `EVTCHNOP_bind_ipi` on `d` (Xen's `evtchn_bind_ipi`).
pub fn bind_ipi(env: &Env, d: &dyn Owner, vcpu: u32) -> Result<u32> {
    let mut t = d.events().lock();
    if vcpu >= t.nr_vcpus() {
        return Err(Errno::ENOENT);
    }
    let port = t.get_free_port(env.mm)?;
    t.bind(port, State::Ipi, vcpu);
    Ok(port)
}

/// `EVTCHNOP_bind_pirq` (Xen's `evtchn_bind_pirq` on Arm): PIRQs beyond `nr_pirqs` are
/// invalid; any other finds a free port and then fails to get its `struct pirq`, which Arm
/// never has.
pub fn bind_pirq(env: &Env, d: &dyn Owner, pirq: u32) -> Result<u32> {
    if pirq >= NR_PIRQS {
        return Err(Errno::EINVAL);
    }
    let mut t = d.events().lock();
    t.get_free_port(env.mm)?;
    Err(Errno::ENOMEM)
}

/// What closing one port under its table's lock came to.
enum Closed {
    Done,
    /// An interdomain port bound to another domain: its table must be held too.
    NeedPeer(DomId),
}

/// Xen's `evtchn_close` of `port` of `d` with `t` held, and the table of the peer if the
/// caller holds it.
fn close_locked(
    mm: &Mm,
    d: &dyn Owner,
    t: &mut Table,
    port: u32,
    peer: Option<(&dyn Owner, &mut Table)>,
) -> Result<Closed> {
    let c = t.chan(port)?;
    match c.state {
        State::Free | State::Reserved => return Err(Errno::EINVAL),
        State::Unbound { .. } | State::Ipi => {}
        State::Virq(virq) => {
            let v = if virq_is_global(virq) { 0 } else { c.notify };
            if let Some(slot) = t.vcpus.get_mut(v as usize).and_then(|ev| ev.virq.get_mut(virq as usize)) {
                debug_assert_eq!(*slot, port);
                *slot = 0;
            }
        }
        State::Interdomain { remote, port: rport } if remote == d.domid() => {
            // Loopback: both ends are in this table.
            free(mm, d, t, port);
            if t.ports.get(rport as usize).map(|c| c.state) == Some(State::Interdomain { remote, port }) {
                t.ports[rport as usize].state = State::Unbound { remote };
            } else {
                log::error!("d{} port {port}: loopback peer {rport} does not point back", remote);
            }
            return Ok(Closed::Done);
        }
        State::Interdomain { remote, port: rport } => {
            let Some((rd, rt)) = peer else { return Ok(Closed::NeedPeer(remote)) };
            if rd.domid() != remote {
                // Closed and bound elsewhere while no lock was held: Xen answers as if it had
                // seen the port free, which it must have been meanwhile.
                return Err(Errno::EINVAL);
            }
            free(mm, d, t, port);
            let me = State::Interdomain { remote: d.domid(), port };
            if rt.ports.get(rport as usize).map(|c| c.state) == Some(me) {
                rt.ports[rport as usize].state = State::Unbound { remote: d.domid() };
            } else {
                log::error!("d{} port {port}: peer d{remote} port {rport} does not point back", d.domid());
            }
            return Ok(Closed::Done);
        }
    }
    free(mm, d, t, port);
    Ok(Closed::Done)
}

/// `EVTCHNOP_close` (Xen's `evtchn_close`): free `port` of `d`; the peer of an interdomain
/// port goes back to unbound, waiting for `d` again. A port bound to another domain is closed
/// with both tables held.
pub fn close(env: &Env, d: &dyn Owner, port: u32) -> Result<()> {
    let remote = {
        let mut t = d.events().lock();
        match close_locked(env.mm, d, &mut t, port, None)? {
            Closed::Done => return Ok(()),
            Closed::NeedPeer(r) => r,
        }
    };
    let Some(rd) = env.domains.find(remote) else {
        // Every domain's ports are unbound from it before it leaves the domain table.
        log::error!("d{} port {port}: bound to d{remote}, which no longer exists", d.domid());
        let mut t = d.events().lock();
        if matches!(t.chan(port)?.state, State::Interdomain { remote: r, .. } if r == remote) {
            free(env.mm, d, &mut t, port);
            return Ok(());
        }
        return Err(Errno::EINVAL);
    };
    let (mut t, mut rt) = lock_pair(d, &*rd);
    match close_locked(env.mm, d, &mut t, port, Some((&*rd, &mut rt)))? {
        Closed::Done => Ok(()),
        Closed::NeedPeer(_) => Err(Errno::EINVAL),
    }
}

/// `EVTCHNOP_send` (Xen's `evtchn_send`): an interdomain port sets its peer pending (at the
/// peer's notify vCPU), an IPI port itself, an unbound one nothing; anything else is
/// `-EINVAL`. The peer is set pending under the peer's lock after checking that its port still
/// names `d`'s (the binding cannot change while either end's table is held, see the module
/// documentation); if it changed, `d`'s port is looked at again.
pub fn send(env: &Env, d: &dyn Owner, port: u32) -> Result<()> {
    for _ in 0..SEND_ATTEMPTS {
        let (remote, rport) = {
            let mut t = d.events().lock();
            let c = t.chan(port)?;
            match c.state {
                State::Interdomain { remote, port: rport } if remote == d.domid() => {
                    let n = t.chan(rport).map_or(0, |r| r.notify);
                    set_pending(env, d, &mut t, n, rport);
                    return Ok(());
                }
                State::Interdomain { remote, port: rport } => (remote, rport),
                State::Ipi => {
                    set_pending(env, d, &mut t, c.notify, port);
                    return Ok(());
                }
                State::Unbound { .. } => return Ok(()),
                _ => return Err(Errno::EINVAL),
            }
        };
        let Some(rd) = env.domains.find(remote) else { continue };
        let mut rt = rd.events().lock();
        match rt.ports.get(rport as usize) {
            Some(rc) if rc.state == (State::Interdomain { remote: d.domid(), port }) => {
                let n = rc.notify;
                set_pending(env, &*rd, &mut rt, n, rport);
                return Ok(());
            }
            _ => continue,
        }
    }
    crate::guest_log!(
        hw: env.hw,
        log::Level::Warn,
        "d{} port {port}: its binding kept changing while sending; event dropped",
        d.domid()
    );
    Ok(())
}

/// What `EVTCHNOP_status` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    pub vcpu: u32,
    pub state: State,
}

/// `EVTCHNOP_status` of `port` of `d` (Xen's `evtchn_status`; `permitted` is the
/// XSM_TARGET check, made after the port is validated).
pub fn status(d: &dyn Owner, port: u32, permitted: bool) -> Result<Status> {
    let t = d.events().lock();
    let c = t.chan(port)?;
    if !permitted {
        return Err(Errno::EPERM);
    }
    let status = match c.state {
        State::Free | State::Reserved => EVTCHNSTAT_CLOSED,
        State::Unbound { .. } => EVTCHNSTAT_UNBOUND,
        State::Interdomain { .. } => EVTCHNSTAT_INTERDOMAIN,
        State::Virq(_) => EVTCHNSTAT_VIRQ,
        State::Ipi => EVTCHNSTAT_IPI,
    };
    Ok(Status { status, vcpu: c.notify, state: c.state })
}

/// `EVTCHNOP_bind_vcpu` (Xen's `evtchn_bind_vcpu`): unbound, interdomain and global-VIRQ
/// ports may be signalled to another vCPU; events already pending stay where they are.
pub fn bind_vcpu(d: &dyn Owner, port: u32, vcpu: u32) -> Result<()> {
    let mut t = d.events().lock();
    if vcpu >= t.nr_vcpus() {
        return Err(Errno::ENOENT);
    }
    let c = t.chan(port)?;
    match c.state {
        State::Virq(virq) if !virq_is_global(virq) => return Err(Errno::EINVAL),
        State::Virq(_) | State::Unbound { .. } | State::Interdomain { .. } => {}
        _ => return Err(Errno::EINVAL),
    }
    t.ports[port as usize].notify = vcpu;
    Ok(())
}

/// `EVTCHNOP_unmask` (Xen's `evtchn_unmask`): a bound port is unmasked and, if pending,
/// signalled again; any valid port answers 0.
pub fn unmask(env: &Env, d: &dyn Owner, port: u32) -> Result<()> {
    let mut t = d.events().lock();
    if !t.chan(port)?.usable() {
        return Ok(());
    }
    if t.fifo.is_some() {
        fifo::unmask(env, d, &mut t, port);
    } else {
        two_level::unmask(env, d, &mut t, port);
    }
    Ok(())
}

/// `EVTCHNOP_set_priority` (Xen's `evtchn_set_priority`): FIFO only.
pub fn set_priority(d: &dyn Owner, port: u32, priority: u32) -> Result<()> {
    let mut t = d.events().lock();
    let c = t.chan(port)?;
    if t.fifo.is_none() {
        return Err(Errno::ENOSYS);
    }
    if !c.usable() {
        return Err(Errno::EACCES);
    }
    if priority > EVTCHN_FIFO_PRIORITY_MIN {
        return Err(Errno::EINVAL);
    }
    // Only future events use the new queue; one already linked stays where it is.
    t.ports[port as usize].priority = priority as u8;
    Ok(())
}

/// How a reset ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    Done,
    /// Preempted: continue with `EVTCHNOP_reset_cont`.
    Continue,
}

/// `EVTCHNOP_reset` / `EVTCHNOP_reset_cont` of `d` (Xen's `evtchn_reset`): close every port
/// (a few at a time, continued), then go back to the 2-level ABI, releasing the FIFO pages.
/// A domain may only reset itself (Xen also lets a controller reset a domain it paused; a
/// granite domain is never paused). One reset runs at a time (`-EBUSY`).
pub fn reset(env: &Env, d: &dyn Owner, by_itself: bool, resuming: bool) -> Result<Reset> {
    if !by_itself {
        return Err(Errno::EINVAL);
    }
    let mut i = {
        let mut t = d.events().lock();
        let i = if resuming { t.next_reset } else { (t.next_reset == 0) as u32 };
        if i > t.next_reset {
            t.next_reset = i;
        }
        i
    };
    if i == 0 {
        return Err(Errno::EBUSY);
    }
    let mut closed = 0;
    loop {
        {
            let t = d.events().lock();
            if i as usize >= t.ports.len() || t.active == 0 {
                break;
            }
        }
        let _ = close(env, d, i);
        closed += 1;
        if i % 64 == 0 && closed >= RESET_PORTS_PER_CALL {
            d.events().lock().next_reset = i;
            return Ok(Reset::Continue);
        }
        i += 1;
    }
    let mut t = d.events().lock();
    t.next_reset = 0;
    if t.active != 0 {
        return Err(Errno::EAGAIN);
    }
    if let Some(f) = t.fifo.take() {
        f.release(env.mm);
    }
    Ok(Reset::Done)
}

/// `EVTCHNOP_init_control` (Xen's `evtchn_fifo_init_control`): register `vcpu`'s FIFO control
/// block at `offset` in guest frame `gfn`; the first one switches the domain to the FIFO ABI.
pub fn init_control(env: &Env, d: &dyn Owner, vcpu: u32, gfn: u64, offset: u32) -> Result<()> {
    let mut t = d.events().lock();
    if vcpu >= t.nr_vcpus() {
        return Err(Errno::ENOENT);
    }
    if offset as u64 > PAGE_SIZE - core::mem::size_of::<xen_abi::EvtchnFifoControlBlock>() as u64 || offset & 7 != 0 {
        return Err(Errno::EINVAL);
    }
    fifo::init_control(env, d, &mut t, vcpu, gfn, offset)
}

/// `EVTCHNOP_expand_array` (Xen's `evtchn_fifo_expand_array`, with XSA-505's check under the
/// lock).
pub fn expand_array(env: &Env, d: &dyn Owner, gfn: u64) -> Result<()> {
    let mut t = d.events().lock();
    if t.fifo.is_none() {
        return Err(Errno::EOPNOTSUPP);
    }
    fifo::expand_array(env, d, &mut t, gfn)
}

/// Take a reference on the guest page at `gfn` of `d` for the hypervisor to keep using (Xen's
/// `get_page_from_gfn` on Arm: RAM of `d`, or a foreign page it maps, under its P2M lock).
fn get_guest_page(mm: &Mm, d: &dyn Owner, gfn: u64) -> Result<Mfn> {
    let r = d.p2m().read(mm);
    let m = r.lookup(Gfn(gfn)).ok_or(Errno::EINVAL)?;
    let ok = if m.ty.is_foreign() {
        mm.frames.get_page_any_owner(m.mfn).is_ok()
    } else {
        m.ty.is_any_ram() && mm.get_page(m.mfn, d.domid())
    };
    if ok { Ok(m.mfn) } else { Err(Errno::EINVAL) }
}

/// `VCPUOP_register_vcpu_info` (Xen's `map_vcpu_info`): `vcpu`'s `vcpu_info` moves to `offset`
/// in guest frame `gfn`, for good. `may` says the caller is that vCPU or it is offline. The
/// old contents are copied (the dummy's are not: zeros), every selector bit is set and events
/// are marked pending, so nothing is lost and the guest gets one spurious upcall.
pub fn register_vcpu_info(env: &Env, d: &dyn Owner, vcpu: u32, gfn: u64, offset: u32, may: bool) -> Result<()> {
    let size = core::mem::size_of::<VcpuInfo>() as u64;
    if offset as u64 > PAGE_SIZE - size || !(offset as usize).is_multiple_of(core::mem::align_of::<VcpuInfo>()) {
        return Err(Errno::ENXIO);
    }
    let mut t = d.events().lock();
    let old = t.vcpus.get(vcpu as usize).ok_or(Errno::ENOENT)?.info;
    if matches!(old, VcpuInfoAt::Guest { .. }) || !may || t.dead {
        return Err(Errno::EINVAL);
    }
    let mfn = get_guest_page(env.mm, d, gfn)?;
    let new = mfn.addr() + offset as u64;
    match vcpu_info_addr(d.shared_info(), old) {
        Some(old) => env.mm.phys.copy(new, old, size),
        None => env.mm.phys.write(new, &[0u8; core::mem::size_of::<VcpuInfo>()]),
    }
    t.vcpus[vcpu as usize].info = VcpuInfoAt::Guest { mfn, offset };
    env.mm.phys.atomic_u64(new + 8).store(!0, Ordering::SeqCst);
    mark_events_pending(env, d, &t.vcpus, vcpu);
    Ok(())
}

/// Raise per-vCPU VIRQ `virq` on `vcpu` of `d` (Xen's `send_guest_vcpu_virq`).
pub fn send_vcpu_virq(env: &Env, d: &dyn Owner, vcpu: u32, virq: u32) {
    if virq >= NR_VIRQS || virq_is_global(virq) {
        return;
    }
    let mut t = d.events().lock();
    let Some(&port) = t.vcpus.get(vcpu as usize).map(|ev| &ev.virq[virq as usize]) else { return };
    if port != 0 {
        set_pending(env, d, &mut t, vcpu, port);
    }
}

/// Raise global VIRQ `virq` in `d` (Xen's `send_guest_global_virq`): bound on vCPU 0,
/// signalled to the port's notify vCPU.
pub fn send_global_virq(env: &Env, d: &dyn Owner, virq: u32) {
    if virq >= NR_VIRQS || !virq_is_global(virq) {
        return;
    }
    let mut t = d.events().lock();
    let Some(&port) = t.vcpus.first().map(|ev| &ev.virq[virq as usize]) else { return };
    if port != 0 {
        let n = t.ports[port as usize].notify;
        set_pending(env, d, &mut t, n, port);
    }
}

/// Tear down `d`'s event channels (Xen's `evtchn_destroy`, then `evtchn_fifo_destroy` and
/// `unmap_vcpu_info`): no port may be allocated any more, every port is closed (the peer of an
/// interdomain port goes back to unbound, waiting for `d`), the FIFO pages and registered
/// `vcpu_info` pages are released. Afterwards no port anywhere is bound to `d`.
pub fn teardown(env: &Env, d: &dyn Owner) {
    // Once dead, no port is allocated or bound to any more: the bound ports can only become
    // free (or unbound), so closing the ones bound now closes them all.
    let bound: Vec<u32> = {
        let mut t = d.events().lock();
        t.dead = true;
        t.ports.iter().enumerate().filter(|(_, c)| c.usable()).map(|(p, _)| p as u32).collect()
    };
    for port in bound.into_iter().rev() {
        let _ = close(env, d, port);
    }
    let mut t = d.events().lock();
    debug_assert_eq!(t.active, 0, "d{}: ports left after teardown", d.domid());
    if let Some(f) = t.fifo.take() {
        f.release(env.mm);
    }
    for (i, ev) in t.vcpus.iter_mut().enumerate() {
        ev.virq = [0; NR_VIRQS as usize];
        if let VcpuInfoAt::Guest { mfn, .. } = ev.info {
            ev.info = if i < xen_abi::XEN_LEGACY_MAX_VCPUS { VcpuInfoAt::SharedInfo } else { VcpuInfoAt::Dummy };
            env.mm.put_page(mfn);
        }
    }
}

/// Xen's `max_evtchns(d)`: the ports its ABI can name (4096 for 2-level, 2^17 for FIFO).
pub fn max_evtchns(d: &dyn Owner) -> u32 {
    d.events().lock().max_evtchns()
}

/// Is `port` of `d` pending / masked as its guest sees it (2-level bits or FIFO event word)?
pub fn port_bits(mm: &Mm, d: &dyn Owner, port: u32) -> (bool, bool) {
    let t = d.events().lock();
    match &t.fifo {
        Some(f) => f.word(mm, port).map_or((false, true), |w| {
            let w = w.load(Ordering::SeqCst);
            (w & 1 << EVTCHN_FIFO_PENDING != 0, w & 1 << EVTCHN_FIFO_MASKED != 0)
        }),
        None => (two_level::is_pending(mm, d.shared_info(), port), two_level::is_masked(mm, d.shared_info(), port)),
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_small() {
        // dom0 may have 2^17 FIFO ports: 20 bytes each (Xen: 64). Port allocation, buckets and
        // the pair order are tested through the hypercalls (tests/evtchn.rs, the model).
        assert!(core::mem::size_of::<Chan>() <= 20, "{}", core::mem::size_of::<Chan>());
    }
}
