//! Memory reservation (`XENMEM_increase_reservation`, `decrease_reservation`,
//! `populate_physmap`, and the `current/maximum_reservation`, `maximum_ram_page`,
//! `maximum_gpfn` queries), as Xen 4.17's `common/memory.c` answers an Arm guest.
//!
//! * A **direct-mapped** domain (dom0: guest physical == machine physical, DMA masters see
//!   the same addresses) gives back GFNs without giving back pages: `decrease_reservation`
//!   unmaps them and the pages stay its own, so `populate_physmap` maps the very same page at
//!   the same address again (only pages it owns, GFN == MFN). This is how Linux's balloon
//!   makes room for grant mappings (gntdev) and swiotlb-xen keeps working.
//! * Any other domain gives back pages (freed once no TLB maps them) and gets fresh ones from
//!   the page allocator, within its `max_pages`.
//!
//! Extents are handled in order; the result is the number done (a failure stops there, as on
//! Xen, which is how a guest learns of it); long requests continue through `HVC`
//! re-execution with the position in the command's upper bits. Bad arguments (an unreadable
//! structure, an order above the caller's limit, an unknown domain or one the caller does
//! not control) get `start_extent` back, as on Xen.

use super::{Call, Outcome};
use crate::domain::Domain;
use crate::hv::Hypervisor;
use crate::p2m::P2mType;
use crate::types::{Errno, Gfn, Mfn, Result};
use xen_abi::XenMemoryReservation;
use xen_abi::memory::*;

/// Extents handled per trap before a continuation.
const EXTENTS_PER_CALL: u64 = 64;
/// The largest extent order a domain may ask for (Xen's `max_order()`: the hardware/control
/// domain 18 (`CONFIG_CTLDOM_MAX_ORDER`), others 9).
const DOM0_MAX_ORDER: u32 = 18;
const DOMU_MAX_ORDER: u32 = 9;

/// increase_reservation, decrease_reservation, populate_physmap.
pub fn reservation_op(c: &Call, op: u64, start: u64, arg: u64, args: &mut [u64; 5]) -> Outcome {
    let Ok(r) = c.mem().read::<XenMemoryReservation>(arg) else { return Outcome::Return(start as i64) };
    if r.nr_extents > (u32::MAX >> MEMOP_EXTENT_SHIFT) as u64 || start >= r.nr_extents {
        return Outcome::Return(start as i64);
    }
    let Some(d) = c.hv.lookup(c.d, r.domid) else { return Outcome::Return(start as i64) };
    // (xsm_memory_adjust_reservation: XSM_TARGET)
    if !c.d.controls(&d) {
        return Outcome::Return(start as i64);
    }
    let max_order = if c.d.privileged { DOM0_MAX_ORDER } else { DOMU_MAX_ORDER };
    if r.extent_order > max_order {
        return Outcome::Return(start as i64);
    }
    let end = r.nr_extents.min(start + EXTENTS_PER_CALL);
    let mut i = start;
    while i < end {
        let ok = match op {
            XENMEM_INCREASE_RESERVATION => increase(c.hv, &d, r.extent_order).is_ok(),
            _ => {
                let Ok(gfn) = c.mem().read_elem::<u64>(r.extent_start, i) else { break };
                match op {
                    XENMEM_DECREASE_RESERVATION => decrease(c.hv, &d, Gfn(gfn), r.extent_order).is_ok(),
                    _ => populate(c.hv, &d, Gfn(gfn), r.extent_order).is_ok(),
                }
            }
        };
        if !ok {
            break;
        }
        i += 1;
    }
    if i == end && end < r.nr_extents {
        args[0] = op | (i << MEMOP_EXTENT_SHIFT);
        return Outcome::Continue;
    }
    Outcome::Return(i as i64)
}

/// current_reservation, maximum_reservation, maximum_gpfn of the domain named at `arg`.
pub fn query_op(c: &Call, op: u64, start: u64, arg: u64) -> Outcome {
    if start != 0 {
        return Outcome::err(Errno::EINVAL);
    }
    let domid: u16 = match c.mem().read(arg) {
        Ok(id) => id,
        Err(e) => return Outcome::err(e),
    };
    let Some(d) = c.hv.lookup(c.d, domid) else { return Outcome::err(Errno::ESRCH) };
    // (xsm_memory_stat_reservation: XSM_TARGET)
    if !c.d.controls(&d) {
        return Outcome::err(Errno::EPERM);
    }
    Outcome::Return(match op {
        XENMEM_CURRENT_RESERVATION => c.hv.mm.pages_of(d.id).domheap.load(core::sync::atomic::Ordering::Acquire),
        XENMEM_MAXIMUM_RESERVATION => d.max_pages.load(core::sync::atomic::Ordering::Acquire),
        _ => d.p2m.write(&c.hv.mm).max_mapped_gfn().0,
    } as i64)
}

/// `XENMEM_maximum_ram_page`: one past the highest RAM frame.
pub fn maximum_ram_page(c: &Call, start: u64) -> Outcome {
    if start != 0 {
        return Outcome::err(Errno::EINVAL);
    }
    let f = &c.hv.mm.frames;
    Outcome::Return((f.base().0 + f.len() as u64) as i64)
}

/// Give 2^order fresh pages to `d`, unmapped (an auto-translated domain maps them with
/// populate_physmap; Xen does no more either).
fn increase(hv: &Hypervisor, d: &Domain, order: u32) -> Result<()> {
    let max = d.max_pages.load(core::sync::atomic::Ordering::Acquire);
    // Under the P2M lock: a teardown marks it dying before it frees the domain's pages, so a
    // page allocated here is either seen by the teardown or not allocated at all.
    let p2m = d.p2m.write(&hv.mm);
    if p2m.is_dying() {
        return Err(Errno::ESRCH);
    }
    hv.mm.alloc_domheap_within(d.id, order, max).map(|_| ())
}

/// Give back the 2^order pages at `gfn` (Xen's `guest_remove_page` on each).
fn decrease(hv: &Hypervisor, d: &Domain, gfn: Gfn, order: u32) -> Result<()> {
    for j in 0..1u64 << order {
        remove_page(hv, d, gfn.add(j))?;
    }
    Ok(())
}

fn remove_page(hv: &Hypervisor, d: &Domain, gfn: Gfn) -> Result<()> {
    let frames = &hv.mm.frames;
    let mut p2m = d.p2m.write(&hv.mm);
    // Nothing mapped, or no page (MMIO): -EINVAL; a page of someone else (a grant or foreign
    // mapping): -ENXIO.
    let m = p2m.lookup(gfn).ok_or(Errno::EINVAL)?;
    if frames.page(m.mfn).is_none() {
        return Err(Errno::EINVAL);
    }
    if m.ty.is_foreign() || m.ty.is_grant() || frames.owner(m.mfn) != Some(d.id) {
        return Err(Errno::ENXIO);
    }
    p2m.remove(gfn, 1)?;
    // A direct-mapped domain keeps the page (it must get the same frame back); others free it
    // once the TLB has forgotten it. A xenheap page (a grant frame, shared_info) is only
    // unmapped: it is the hypervisor's.
    if !d.direct_map && !frames.is_xen_heap(m.mfn) {
        p2m.free_after_flush(m.mfn);
    }
    Ok(())
}

/// Map 2^order pages at `gfn`: the domain's own pages at GFN == MFN for a direct-mapped
/// domain, fresh ones (within `max_pages`) for others.
fn populate(hv: &Hypervisor, d: &Domain, gfn: Gfn, order: u32) -> Result<()> {
    let n = 1u64 << order;
    let frames = &hv.mm.frames;
    let mut p2m = d.p2m.write(&hv.mm);
    if p2m.is_dying() {
        return Err(Errno::ESRCH);
    }
    if d.direct_map {
        let mfn = Mfn(gfn.0);
        // Every page must be RAM the domain owns (not a hypervisor page shared with it).
        for j in 0..n {
            let m = mfn.add(j);
            if frames.page(m).is_none() || frames.owner(m) != Some(d.id) || frames.is_xen_heap(m) {
                return Err(Errno::EINVAL);
            }
        }
        return p2m.insert(gfn, n, mfn, P2mType::RamRw);
    }
    let mfn = hv.mm.alloc_domheap_within(d.id, order, d.max_pages.load(core::sync::atomic::Ordering::Acquire))?;
    if let Err(e) = p2m.insert(gfn, n, mfn, P2mType::RamRw) {
        for j in 0..n {
            hv.mm.put_alloc_ref(mfn.add(j));
        }
        return Err(e);
    }
    Ok(())
}
