//! A full consistency check of the memory and grant state, for tests and for the fuzz guests
//! (`granite_audit=1`). Run while no hypercall is in flight (the hypercall fence when the option
//! is on; tests call it between operations) so reference counts can be checked exactly:
//!
//! * every xenheap page has at most one RAM mapping, in its owner's P2M, at the GFN its
//!   `type_info` records; its GFN is "not mapped" exactly when it is unmapped;
//! * no P2M entry points at a free frame; RAM entries point at the domain's own pages,
//!   foreign and grant entries at other in-use pages;
//! * each in-use page's reference count = its allocation reference + the foreign P2M entries
//!   pointing at it + the host pins of active grant entries on it;
//! * each domain's page accounting matches the frame table;
//! * no xenheap page was ever freed with its GFN still set;
//! * event channels: every interdomain port's peer is a running domain whose port points
//!   back; a domain that is going or gone has no port and holds no page; VIRQ ports and the
//!   VIRQ map agree; every port is signalled to an existing vCPU; the guest pages the event
//!   channels use (registered `vcpu_info`s, FIFO control blocks and event arrays) each hold
//!   one reference per use, counted in the expected reference counts above.

use crate::domain::DomainState;
use crate::evtchn::{Snapshot, State};
use crate::hv::Hypervisor;
use crate::mm::frame::{FrameState, PGC_ALLOCATED};
use crate::p2m::P2mType;
use crate::types::{Gfn, Mfn};
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

#[derive(Debug, Default)]
pub struct AuditReport {
    pub violations: Vec<String>,
    pub mappings_checked: u64,
    pub pages_checked: u64,
}

impl AuditReport {
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }
}

pub fn audit(hv: &Hypervisor) -> AuditReport {
    let _quiet = hv.opts.audit.then(|| hv.gate.write());
    let mm = &hv.mm;
    let ft = &mm.frames;
    let mut rep = AuditReport::default();
    let mut v = |s: String| rep.violations.push(s);
    // Expected references beyond the allocation reference, per frame.
    let mut extra: BTreeMap<u64, u64> = BTreeMap::new();
    let mut mappings = 0u64;

    audit_evtchn(hv, &mut extra, &mut v);
    for d in hv.domains() {
        // Its virtual GIC: lists and what says it is queued agree, nothing queued on or sent
        // from a vCPU that does not exist.
        for s in d.vgic.check() {
            v(format!("d{} vGIC: {s}", d.id));
        }
        // Memory reservation: never more pages than its limit.
        let held = mm.pages_of(d.id).domheap.load(core::sync::atomic::Ordering::Acquire);
        let max = d.max_pages.load(core::sync::atomic::Ordering::Acquire);
        if held > max {
            v(format!("d{}: holds {held} pages, more than its max_pages {max}", d.id));
        }
    }
    for d in hv.domains() {
        // The domain's xenheap pages, listed before its P2M lock is taken (grant -> P2M).
        let mut own_xen: Vec<Mfn> = d.grant.read().frames().to_vec();
        own_xen.push(d.shared_info);
        let p2m = d.p2m.write(mm);
        // xenheap frame -> where its RAM mapping was found
        let mut xen_mapped: BTreeMap<u64, Gfn> = BTreeMap::new();
        p2m.for_each_leaf(|gfn, m| {
            mappings += 1;
            let pages = 1u64 << m.order;
            if m.ty.is_mmio() {
                return;
            }
            for i in 0..pages {
                let mfn = m.mfn.add(i);
                let Some(pg) = ft.page(mfn) else {
                    v(format!("d{} gfn {:#x}: {:?} entry on non-RAM frame {:#x}", d.id, gfn.0 + i, m.ty, mfn.0));
                    continue;
                };
                if pg.state() != FrameState::InUse {
                    v(format!("d{} gfn {:#x}: {:?} entry on free frame {:#x}", d.id, gfn.0 + i, m.ty, mfn.0));
                    continue;
                }
                let owner = pg.owner().unwrap();
                match m.ty {
                    P2mType::RamRw | P2mType::RamRo => {
                        if owner != d.id {
                            v(format!("d{} gfn {:#x}: RAM entry on frame {:#x} of d{owner}", d.id, gfn.0 + i, mfn.0));
                        }
                        if pg.is_xen_heap() {
                            if m.order != 0 {
                                v(format!("d{}: xenheap frame {:#x} inside a block mapping", d.id, mfn.0));
                            }
                            if let Some(prev) = xen_mapped.insert(mfn.0, Gfn(gfn.0 + i)) {
                                v(format!(
                                    "d{}: xenheap frame {:#x} mapped twice ({:#x}, {:#x})",
                                    d.id,
                                    mfn.0,
                                    prev.0,
                                    gfn.0 + i
                                ));
                            }
                        }
                    }
                    P2mType::MapForeignRw | P2mType::MapForeignRo => {
                        if owner == d.id {
                            v(format!("d{} gfn {:#x}: foreign entry on its own frame {:#x}", d.id, gfn.0, mfn.0));
                        }
                        *extra.entry(mfn.0).or_default() += 1;
                    }
                    _ => {}
                }
            }
        });
        // Every xenheap page of the domain: stored GFN == where it is mapped, or None.
        for f in own_xen {
            if !ft.is_xen_heap(f) || ft.owner(f) != Some(d.id) {
                continue; // released at teardown
            }
            let stored = ft.xenheap_gfn(f, &p2m);
            let found = xen_mapped.get(&f.0).copied();
            if stored != found {
                v(format!("d{}: xenheap frame {:#x} stores GFN {:?} but is mapped at {:?}", d.id, f.0, stored, found));
            }
        }
        drop(p2m);
        // Host pins of grants of this domain.
        let st = d.grant.read();
        for a in st.active_entries() {
            let pins = (a.pin & 0xFF) + ((a.pin >> 8) & 0xFF);
            if pins != 0 {
                *extra.entry(a.mfn.0).or_default() += pins as u64;
            }
        }
    }
    // Maptrack handles held by each domain must match the pins of the grants they map.
    let mut handles: BTreeMap<(u16, u32), u32> = BTreeMap::new();
    for d in hv.domains() {
        for (_, e) in d.grant.maptrack().in_use() {
            *handles.entry((e.domid, e.gref)).or_default() += 1;
        }
    }
    for d in hv.domains() {
        let st = d.grant.read();
        for (gref, a) in st.active_entries().iter().enumerate() {
            let pins = (a.pin & 0xFF) + ((a.pin >> 8) & 0xFF);
            let held = handles.get(&(d.id, gref as u32)).copied().unwrap_or(0);
            if pins != held {
                v(format!("d{} grant {gref}: {pins} host pins but {held} maptrack handles", d.id));
            }
        }
    }

    // Frame table: reference counts and accounting.
    let mut owned: BTreeMap<u16, (u64, u64)> = BTreeMap::new();
    for i in 0..ft.len() as u64 {
        let mfn = Mfn(ft.base().0 + i);
        let pg = &ft[i as usize];
        if pg.state() != FrameState::InUse {
            continue;
        }
        rep.pages_checked += 1;
        let c = pg.count_info();
        let want = (c & PGC_ALLOCATED != 0) as u64 + extra.remove(&mfn.0).unwrap_or(0);
        if pg.refcount() != want {
            v(format!(
                "frame {:#x} (owner d{}): refcount {} expected {}",
                mfn.0,
                pg.owner().unwrap(),
                pg.refcount(),
                want
            ));
        }
        let o = owned.entry(pg.owner().unwrap()).or_default();
        if pg.is_xen_heap() { o.1 += 1 } else { o.0 += 1 }
    }
    for (m, n) in extra {
        v(format!("{n} references expected on frame {m:#x}, which is not in use"));
    }
    for d in hv.domains() {
        let (dh, xh) = owned.get(&d.id).copied().unwrap_or_default();
        let acc = mm.pages_of(d.id);
        let (adh, axh) = (acc.domheap.load(Ordering::Acquire), acc.xenheap.load(Ordering::Acquire));
        if (dh, xh) != (adh, axh) {
            v(format!("d{}: accounting says {adh}+{axh} pages, frame table has {dh}+{xh}", d.id));
        }
    }
    if let Err(e) = mm.heap.check(ft) {
        v(format!("page allocator: {e}"));
    }
    let stale = mm.audit.stale_gfn_frees.load(Ordering::Acquire);
    if stale != 0 {
        v(format!("{stale} xenheap pages were freed with their GFN still set"));
    }
    rep.mappings_checked = mappings;
    rep
}

/// The event-channel part of the audit; the pages the tables reference go into `extra`.
fn audit_evtchn(hv: &Hypervisor, extra: &mut BTreeMap<u64, u64>, v: &mut impl FnMut(String)) {
    let doms = hv.domains();
    // One table at a time (never two locks of the rank at once outside `lock_pair`).
    let snaps: BTreeMap<u16, (DomainState, usize, Snapshot)> =
        doms.iter().map(|d| (d.id, (d.state(), d.vcpus.len(), d.evtchn.snapshot()))).collect();
    for (&id, (state, nr_vcpus, s)) in &snaps {
        for m in &s.pages {
            *extra.entry(m.0).or_default() += 1;
        }
        if *state != DomainState::Running {
            if !s.dead || s.active != 0 || !s.ports.is_empty() || !s.pages.is_empty() || !s.virqs.is_empty() {
                v(format!(
                    "d{id} ({state:?}): event channels not torn down: {} ports, {} pages",
                    s.ports.len(),
                    s.pages.len()
                ));
            }
            continue;
        }
        if s.active as usize != s.ports.len() || s.valid % crate::evtchn::PORTS_PER_BUCKET != 0 {
            v(format!("d{id}: {} ports bound but {} counted active ({} valid)", s.ports.len(), s.active, s.valid));
        }
        for &(port, c) in &s.ports {
            if c.notify as usize >= *nr_vcpus {
                v(format!("d{id} port {port}: signalled to vCPU {} of {nr_vcpus}", c.notify));
            }
            match c.state {
                State::Interdomain { remote, port: rport } => {
                    let back = State::Interdomain { remote: id, port };
                    match snaps.get(&remote) {
                        Some((DomainState::Running, _, r)) if r.port(rport).map(|c| c.state) == Some(back) => {}
                        Some((st, _, r)) => v(format!(
                            "d{id} port {port}: bound to d{remote} ({st:?}) port {rport}, which is {:?}",
                            r.port(rport).map(|c| c.state)
                        )),
                        None => v(format!("d{id} port {port}: bound to d{remote}, which does not exist")),
                    }
                }
                State::Virq(virq) => {
                    let on = if xen_abi::evtchn::virq_is_global(virq) { 0 } else { c.notify };
                    if !s.virqs.contains(&(on, virq, port)) {
                        v(format!("d{id} port {port}: VIRQ {virq} not in vCPU {on}'s VIRQ map"));
                    }
                }
                _ => {}
            }
        }
        for &(vcpu, virq, port) in &s.virqs {
            let ok = s.port(port).is_some_and(|c| {
                c.state == State::Virq(virq)
                    && if xen_abi::evtchn::virq_is_global(virq) { vcpu == 0 } else { c.notify == vcpu }
            });
            if !ok {
                v(format!("d{id} vCPU {vcpu}: VIRQ {virq} mapped to port {port}, which is {:?}", s.port(port)));
            }
        }
    }
}
