//! The FIFO ABI (Xen's `common/event_fifo.c`): each port has a 32-bit event word (PENDING,
//! MASKED, LINKED, BUSY, and a 17-bit LINK to the next event of its queue) in event-array
//! pages the guest gives with `EVTCHNOP_expand_array`; each vCPU has 16 priority queues whose
//! heads and `ready` bits live in a control block the guest gives with `EVTCHNOP_init_control`,
//! and whose tails the hypervisor keeps. An event is linked onto the tail of its queue; an
//! empty queue gets it as its head, sets its `ready` bit and, on that bit's 0 → 1 edge, marks
//! events pending on the vCPU.
//!
//! All of it runs under the domain's table lock (Xen's per-queue locks and "last queue"
//! retries are there to avoid the domain lock; here the table lock orders every change the
//! hypervisor makes). The guest changes the words concurrently — it may set or clear MASKED,
//! clear PENDING, and unlink (clear LINKED and LINK) — so every change is atomic, and setting
//! a LINK is a compare-exchange retried a bounded number of times, with BUSY set to keep the
//! guest from unmasking meanwhile, exactly as Xen does. Events for a vCPU without a control
//! block are dropped (XSA-107); ports beyond the event array remember they are pending until
//! their page arrives.
//!
//! A page reference is held on every control-block and event-array page until the FIFO state
//! is released (`EVTCHNOP_reset`, teardown). Linux switches to FIFO with `init_control` on
//! vCPU 0 and then needs the first `expand_array` to work (it panics otherwise): all of it is
//! implemented, not a subset.

use super::{Env, Owner, Table, get_guest_page, mark_events_pending, two_level};
use crate::mm::Mm;
use crate::types::{Errno, Mfn, Result};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};
use xen_abi::evtchn::*;

/// Event words per event-array page.
pub const WORDS_PER_PAGE: u32 = 1024;
/// Event-array pages at most (`EVTCHN_FIFO_NR_CHANNELS / WORDS_PER_PAGE`).
pub const MAX_ARRAY_PAGES: usize = (EVTCHN_FIFO_NR_CHANNELS / WORDS_PER_PAGE) as usize;

const PENDING: u32 = 1 << EVTCHN_FIFO_PENDING;
const MASKED: u32 = 1 << EVTCHN_FIFO_MASKED;
const LINKED: u32 = 1 << EVTCHN_FIFO_LINKED;
const BUSY: u32 = 1 << EVTCHN_FIFO_BUSY;

/// How often a LINK is retried once BUSY is set: the guest can only clear MASKED, PENDING and
/// LINKED once each meanwhile.
const LINK_RETRIES: u32 = 4;

/// A vCPU's queues.
#[derive(Clone, Debug, Default)]
pub(super) struct FifoVcpu {
    /// Its control block: page (referenced) and offset.
    pub(super) control: Option<(Mfn, u32)>,
    /// The last event linked on each queue (0: none).
    tails: [u32; EVTCHN_FIFO_MAX_QUEUES],
}

/// A domain's FIFO state.
pub(super) struct Fifo {
    /// Event-array pages (referenced), in port order.
    pub(super) array: Vec<Mfn>,
    pub(super) vcpus: Vec<FifoVcpu>,
}

impl Fifo {
    /// The event word of `port`, if its page exists.
    pub(super) fn word<'m>(&self, mm: &'m Mm, port: u32) -> Option<&'m AtomicU32> {
        let page = self.array.get((port / WORDS_PER_PAGE) as usize)?;
        Some(mm.phys.atomic_u32(page.addr() + 4 * (port % WORDS_PER_PAGE) as u64))
    }

    /// Ports the event array covers.
    fn nr_events(&self) -> u32 {
        self.array.len() as u32 * WORDS_PER_PAGE
    }

    /// Xen's `evtchn_fifo_is_busy`: a free port still linked on a queue cannot be reused.
    pub(super) fn is_busy(&self, mm: &Mm, port: u32) -> bool {
        self.word(mm, port).is_some_and(|w| w.load(Ordering::SeqCst) & LINKED != 0)
    }

    /// Xen's `evtchn_fifo_clear_pending`: just PENDING (the guest unlinks and skips events
    /// that are no longer pending).
    pub(super) fn clear_pending(&self, mm: &Mm, port: u32) {
        if let Some(w) = self.word(mm, port) {
            w.fetch_and(!PENDING, Ordering::SeqCst);
        }
    }

    /// Every page referenced.
    pub(super) fn pages(&self) -> impl Iterator<Item = Mfn> + '_ {
        self.vcpus.iter().filter_map(|v| v.control.map(|(m, _)| m)).chain(self.array.iter().copied())
    }

    /// Drop every page reference (Xen's `evtchn_fifo_destroy`).
    pub(super) fn release(self, mm: &Mm) {
        for m in self.pages() {
            mm.put_page(m);
        }
    }

    /// The control block of `vcpu`: `ready` and `head[prio]`.
    fn control<'m>(&self, mm: &'m Mm, vcpu: u32, prio: u8) -> Option<(&'m AtomicU32, &'m AtomicU32)> {
        let (page, off) = self.vcpus.get(vcpu as usize)?.control?;
        let base = page.addr() + off as u64;
        Some((mm.phys.atomic_u32(base), mm.phys.atomic_u32(base + 8 + 4 * prio as u64)))
    }
}

/// Xen's `evtchn_fifo_init_control` with the lock held and the arguments checked.
pub(super) fn init_control(env: &Env, d: &dyn Owner, t: &mut Table, vcpu: u32, gfn: u64, offset: u32) -> Result<()> {
    if t.dead {
        return Err(Errno::EINVAL);
    }
    if let Some(f) = &mut t.fifo {
        return map_control_block(env.mm, d, f, vcpu, gfn, offset);
    }
    // The first control block: every vCPU gets its (empty) queues, the event array is empty,
    // and the ports bound so far keep their pending state and get the default priority.
    let prev = t.max_evtchns();
    let mut f = Fifo { array: Vec::new(), vcpus: alloc::vec![FifoVcpu::default(); t.vcpus.len()] };
    map_control_block(env.mm, d, &mut f, vcpu, gfn, offset)?;
    t.fifo = Some(alloc::boxed::Box::new(f));
    for port in 1..prev.min(t.ports.len() as u32) {
        let pending = two_level::is_pending(env.mm, d.shared_info(), port);
        let c = &mut t.ports[port as usize];
        c.fifo_pending |= pending;
        c.priority = EVTCHN_FIFO_PRIORITY_DEFAULT as u8;
    }
    Ok(())
}

/// Xen's `map_control_block`.
fn map_control_block(mm: &Mm, d: &dyn Owner, f: &mut Fifo, vcpu: u32, gfn: u64, offset: u32) -> Result<()> {
    let v = f.vcpus.get_mut(vcpu as usize).ok_or(Errno::ENOENT)?;
    if v.control.is_some() {
        return Err(Errno::EINVAL);
    }
    v.control = Some((get_guest_page(mm, d, gfn)?, offset));
    Ok(())
}

/// Xen's `add_page_to_event_array` (under the lock): one more page of event words; events
/// that came for its ports while it was missing are raised now.
pub(super) fn expand_array(env: &Env, d: &dyn Owner, t: &mut Table, gfn: u64) -> Result<()> {
    let Some(f) = &mut t.fifo else { return Err(Errno::EOPNOTSUPP) };
    if f.array.len() >= MAX_ARRAY_PAGES {
        return Err(Errno::ENOSPC);
    }
    let first = f.nr_events();
    let page = get_guest_page(env.mm, d, gfn)?;
    f.array.push(page);
    let end = f.nr_events();
    for port in first..end.min(t.ports.len() as u32) {
        let c = t.ports[port as usize];
        if c.fifo_pending {
            set_pending(env, d, t, c.notify, port);
        }
    }
    Ok(())
}

/// Xen's `evtchn_fifo_set_pending` for `port`, signalled to `vcpu`.
pub(super) fn set_pending(env: &Env, d: &dyn Owner, t: &mut Table, vcpu: u32, port: u32) {
    let mm = env.mm;
    let Table { ports, fifo, vcpus, .. } = t;
    let (Some(f), Some(c)) = (fifo.as_deref_mut(), ports.get_mut(port as usize)) else { return };
    let Some(word) = f.word(mm, port) else {
        // No event word yet: remember it for when the page is added.
        c.fifo_pending = true;
        return;
    };
    let prio = c.priority.min(EVTCHN_FIFO_PRIORITY_MIN as u8);
    let Some((ready, head)) = f.control(mm, vcpu, prio) else {
        // The guest must not unmask an event before its vCPU's control block exists: drop it.
        crate::guest_log!(
            hw: env.hw,
            log::Level::Warn,
            "d{}v{vcpu} has no FIFO control block: port {port} dropped",
            d.domid()
        );
        return;
    };
    word.fetch_or(PENDING, Ordering::SeqCst);
    let mut linked = true;
    if word.load(Ordering::SeqCst) & MASKED == 0 && word.fetch_or(LINKED, Ordering::SeqCst) & LINKED == 0 {
        // If it was the tail of its old queue, that queue is now empty: forget the tail so
        // that linking onto the old queue cannot corrupt the new one.
        let (ov, op) = c.last_q;
        if let Some(t) = f.vcpus.get_mut(ov as usize).and_then(|v| v.tails.get_mut(op as usize))
            && *t == port
        {
            *t = 0;
        }
        c.last_q = (vcpu as u16, prio);
        linked = false;
        let q = &mut f.vcpus[vcpu as usize].tails[prio as usize];
        let tail = *q;
        *q = port;
        if tail != 0
            && let Some(tw) = f.word(mm, tail)
        {
            linked = set_link(tw, port);
        }
        if !linked {
            head.store(port, Ordering::SeqCst);
        }
    }
    if !linked && ready.fetch_or(1 << prio, Ordering::SeqCst) & (1 << prio) == 0 {
        mark_events_pending(env, d, vcpus, vcpu);
    }
}

/// Xen's `evtchn_fifo_set_link`: make the (tail) event `word` link to `link` if it is still
/// linked; false if the guest unlinked it (the queue is empty). Bounded: after a first try,
/// BUSY keeps the guest from unmasking, so it can change the word only a few more times.
fn set_link(word: &AtomicU32, link: u32) -> bool {
    let try_link = |w: &mut u32| -> Option<bool> {
        if *w & LINKED == 0 {
            return Some(false);
        }
        let new = (*w & !(BUSY | EVTCHN_FIFO_LINK_MASK)) | link;
        match word.compare_exchange(*w, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => Some(true),
            Err(now) => {
                *w = now;
                None
            }
        }
    };
    let mut w = word.load(Ordering::SeqCst);
    if let Some(r) = try_link(&mut w) {
        return r;
    }
    word.fetch_or(BUSY, Ordering::SeqCst);
    w = word.load(Ordering::SeqCst);
    for _ in 0..LINK_RETRIES {
        if let Some(r) = try_link(&mut w) {
            if !r {
                word.fetch_and(!BUSY, Ordering::SeqCst);
            }
            return r;
        }
    }
    crate::guest_log!(log::Level::Warn, "FIFO event word keeps changing: port {link} not linked");
    word.fetch_and(!BUSY, Ordering::SeqCst);
    true
}

/// Xen's `evtchn_fifo_unmask`: clear MASKED, and link the event again if it is pending.
pub(super) fn unmask(env: &Env, d: &dyn Owner, t: &mut Table, port: u32) {
    let Some(word) = t.fifo.as_ref().and_then(|f| f.word(env.mm, port)) else { return };
    word.fetch_and(!MASKED, Ordering::SeqCst);
    if word.load(Ordering::SeqCst) & PENDING != 0 {
        let n = t.ports[port as usize].notify;
        set_pending(env, d, t, n, port);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_link_links_a_linked_tail_and_leaves_an_unlinked_one() {
        let w = AtomicU32::new(LINKED | PENDING | BUSY | 5);
        assert!(set_link(&w, 9));
        assert_eq!(w.load(Ordering::SeqCst), LINKED | PENDING | 9, "LINK replaced, BUSY cleared");
        let w = AtomicU32::new(PENDING | MASKED);
        assert!(!set_link(&w, 9), "the guest unlinked it: the queue is empty");
        assert_eq!(w.load(Ordering::SeqCst), PENDING | MASKED, "nothing written");
    }
}
