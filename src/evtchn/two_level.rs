//! The 2-level ABI (Xen's `common/event_2l.c`): a pending and a mask bitmap of 4096 bits in
//! the domain's `shared_info`, and in each vCPU's `vcpu_info` a selector word whose bit `i`
//! says "look at pending word `i`". Every bit operation is an atomic read-modify-write on
//! guest memory (the guest changes the same words concurrently: Linux masks, acknowledges and
//! clears selectors with its own atomics), in Xen's order.

use super::{Env, Owner, Table, mark_events_pending, vcpu_words};
use crate::mm::Mm;
use crate::types::Mfn;
use core::sync::atomic::{AtomicU64, Ordering};
use xen_abi::evtchn::EVTCHN_2L_NR_CHANNELS;

/// Offsets of the bitmaps in `shared_info`.
const PENDING: u64 = core::mem::offset_of!(xen_abi::SharedInfo, evtchn_pending) as u64;
const MASK: u64 = core::mem::offset_of!(xen_abi::SharedInfo, evtchn_mask) as u64;

/// The word of bitmap `base` holding `port`'s bit, and the bit.
fn word(mm: &Mm, shared_info: Mfn, base: u64, port: u32) -> (&AtomicU64, u64) {
    (mm.phys.atomic_u64(shared_info.addr() + base + 8 * (port / 64) as u64), 1 << (port % 64))
}

/// Xen's `evtchn_2l_set_pending`: set the pending bit; if it was clear and the port is not
/// masked, set the port's word in `vcpu`'s selector, and if that was clear, mark events
/// pending on `vcpu`.
pub(super) fn set_pending(env: &Env, d: &dyn Owner, t: &mut Table, vcpu: u32, port: u32) {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return;
    }
    let si = d.shared_info();
    let (pending, bit) = word(env.mm, si, PENDING, port);
    if pending.fetch_or(bit, Ordering::SeqCst) & bit != 0 {
        return;
    }
    let (mask, _) = word(env.mm, si, MASK, port);
    if mask.load(Ordering::SeqCst) & bit == 0 && set_selector(env.mm, si, t, vcpu, port) {
        mark_events_pending(env, d, &t.vcpus, vcpu);
    }
}

/// Set `port`'s word in `vcpu`'s selector; true if it was clear.
fn set_selector(mm: &Mm, si: Mfn, t: &Table, vcpu: u32, port: u32) -> bool {
    let Some(ev) = t.vcpus.get(vcpu as usize) else { return false };
    let (_, sel) = vcpu_words(mm, si, ev);
    let b = 1u64 << (port / 64);
    sel.fetch_or(b, Ordering::SeqCst) & b == 0
}

/// Xen's `evtchn_2l_clear_pending`.
pub(super) fn clear_pending(mm: &Mm, shared_info: Mfn, port: u32) {
    if port < EVTCHN_2L_NR_CHANNELS {
        let (pending, bit) = word(mm, shared_info, PENDING, port);
        pending.fetch_and(!bit, Ordering::SeqCst);
    }
}

/// Xen's `evtchn_2l_unmask`: only if this clears the mask bit and the port is pending, set
/// the selector of the port's notify vCPU and mark events pending there if it was clear.
pub(super) fn unmask(env: &Env, d: &dyn Owner, t: &mut Table, port: u32) {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return;
    }
    let si = d.shared_info();
    let vcpu = t.ports[port as usize].notify;
    let (mask, bit) = word(env.mm, si, MASK, port);
    let (pending, _) = word(env.mm, si, PENDING, port);
    if mask.fetch_and(!bit, Ordering::SeqCst) & bit != 0
        && pending.load(Ordering::SeqCst) & bit != 0
        && set_selector(env.mm, si, t, vcpu, port)
    {
        mark_events_pending(env, d, &t.vcpus, vcpu);
    }
}

pub fn is_pending(mm: &Mm, shared_info: Mfn, port: u32) -> bool {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return false;
    }
    let (w, bit) = word(mm, shared_info, PENDING, port);
    w.load(Ordering::SeqCst) & bit != 0
}

pub fn is_masked(mm: &Mm, shared_info: Mfn, port: u32) -> bool {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return true;
    }
    let (w, bit) = word(mm, shared_info, MASK, port);
    w.load(Ordering::SeqCst) & bit != 0
}
