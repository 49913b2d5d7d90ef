//! `memory_op`: add_to_physmap (single and batch) and remove_from_physmap, as Xen 4.17 on Arm;
//! the reservation sub-ops are in [`super::reservation`].

use super::{Call, Outcome};
use crate::domain::Domain;
use crate::hv::{DomRef, Hypervisor};
use crate::p2m::P2mType;
use crate::types::{Errno, Gfn, Mfn, Result};
use alloc::sync::Arc;
use xen_abi::memory::*;
use xen_abi::{DOMID_XEN, DomId, XenAddToPhysmap, XenAddToPhysmapBatch, XenRemoveFromPhysmap};

/// Batch entries handled per trap before a continuation.
const BATCH_PER_CALL: u32 = 64;

#[inline(never)]
pub fn memory_op(c: &Call, args: &mut [u64; 5]) -> Outcome {
    let (cmd, arg) = (args[0], args[1]);
    let op = cmd & MEMOP_CMD_MASK;
    let start = cmd >> MEMOP_EXTENT_SHIFT;
    match op {
        XENMEM_ADD_TO_PHYSMAP => add_to_physmap(c, start, arg).map(|_| 0).into(),
        XENMEM_ADD_TO_PHYSMAP_BATCH => match add_to_physmap_batch(c, start, arg) {
            Ok(None) => Outcome::Return(0),
            Ok(Some(next)) => {
                args[0] = op | (next << MEMOP_EXTENT_SHIFT);
                Outcome::Continue
            }
            Err(e) => Outcome::err(e),
        },
        XENMEM_REMOVE_FROM_PHYSMAP => remove_from_physmap(c, start, arg).map(|_| 0).into(),
        XENMEM_INCREASE_RESERVATION | XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP => {
            super::reservation::reservation_op(c, op, start, arg, args)
        }
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION | XENMEM_MAXIMUM_GPFN => {
            super::reservation::query_op(c, op, start, arg)
        }
        XENMEM_MAXIMUM_RAM_PAGE => super::reservation::maximum_ram_page(c, start),
        _ => Outcome::err(Errno::ENOSYS),
    }
}

/// Xen's `xatp_permission_check`.
fn permission_check(caller: &Domain, d: &Domain, space: u32) -> Result<()> {
    if space == XENMAPSPACE_DEV_MMIO && (caller.id != d.id || d.id != 0) {
        return Err(Errno::EACCES);
    }
    if !caller.controls(d) {
        return Err(Errno::EPERM);
    }
    Ok(())
}

fn target<'a>(c: &Call<'a>, domid: DomId, space: u32) -> Result<DomRef<'a>> {
    let d = c.hv.lookup(c.d, domid).ok_or(Errno::ESRCH)?;
    permission_check(c.d, &d, space)?;
    Ok(d)
}

fn add_to_physmap(c: &Call, start: u64, arg: u64) -> Result<()> {
    if start > u16::MAX as u64 {
        return Err(Errno::EDOM);
    }
    let xatp: XenAddToPhysmap = c.mem().read(arg)?;
    // Foreign mappings only through the batch.
    if xatp.space == XENMAPSPACE_GMFN_FOREIGN {
        return Err(Errno::ENOSYS);
    }
    let d = target(c, xatp.domid, xatp.space)?;
    if xatp.gpfn == u64::MAX {
        return Err(Errno::EINVAL);
    }
    if xatp.space == XENMAPSPACE_GMFN_RANGE {
        // Every page of the range goes through add_to_physmap_one, which Arm does not
        // support for this space; an empty range does nothing.
        if (xatp.size as u64) < start {
            return Err(Errno::EILSEQ);
        }
        if xatp.size as u64 == start {
            return Ok(());
        }
        return Err(Errno::ENOSYS);
    }
    add_to_physmap_one(c.hv, c.d, &d, xatp.space, DOMID_XEN, xatp.idx, Gfn(xatp.gpfn))
}

fn add_to_physmap_batch(c: &Call, start: u64, arg: u64) -> Result<Option<u64>> {
    if start > u16::MAX as u64 {
        return Err(Errno::EDOM);
    }
    let mem = c.mem();
    let b: XenAddToPhysmapBatch = mem.read(arg)?;
    if b.space as u32 == XENMAPSPACE_GMFN_RANGE {
        return Err(Errno::EOPNOTSUPP);
    }
    let d = target(c, b.domid, b.space as u32)?;
    let size = b.size as u64;
    if size < start {
        return Err(Errno::EILSEQ);
    }
    if size == start {
        return if start != 0 { Err(Errno::EILSEQ) } else { Ok(None) };
    }
    if b.space as u32 == XENMAPSPACE_DEV_MMIO && b.u != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let foreign = if b.space as u32 == XENMAPSPACE_GMFN_FOREIGN { b.u } else { DOMID_XEN };
    let mut i = start;
    let mut handled = 0;
    while i < size {
        let idx: u64 = mem.read_elem(b.idxs, i)?;
        let gpfn: u64 = mem.read_elem(b.gpfns, i)?;
        // Xen 4.17 ends the whole call here, leaving this entry's error unwritten.
        if gpfn == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let rc = match add_to_physmap_one(c.hv, c.d, &d, b.space as u32, foreign, idx, Gfn(gpfn)) {
            Ok(()) => 0i32,
            Err(e) => e.ret() as i32,
        };
        mem.write_elem(b.errs, i, &rc)?;
        i += 1;
        handled += 1;
        if i < size && handled == BATCH_PER_CALL {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Map one frame of `space` at `gfn` in `d` (Xen's `xenmem_add_to_physmap_one` on Arm).
pub fn add_to_physmap_one(
    hv: &Hypervisor,
    caller: &Arc<Domain>,
    d: &Arc<Domain>,
    space: u32,
    foreign_domid: DomId,
    idx: u64,
    gfn: Gfn,
) -> Result<()> {
    match space {
        XENMAPSPACE_GRANT_TABLE => {
            // The grant-table write lock covers the frame lookup (and growth) and the P2M
            // insert: lock order grant table -> P2M.
            let (gt, mfn) = d.grant.map_frame_begin(&hv.mm, idx)?;
            let r = map_xenheap_frame(hv, d, mfn, gfn);
            drop(gt);
            r
        }
        XENMAPSPACE_SHARED_INFO => {
            if idx != 0 {
                return Err(Errno::EINVAL);
            }
            map_xenheap_frame(hv, d, d.shared_info, gfn)
        }
        XENMAPSPACE_GMFN_FOREIGN => map_foreign(hv, caller, d, foreign_domid, idx, gfn),
        XENMAPSPACE_DEV_MMIO => {
            // Silently nothing when the domain may not access that MMIO, like Xen.
            if d.iomem_permitted(idx) {
                d.p2m.write(&hv.mm).insert(gfn, 1, Mfn(idx), P2mType::MmioDirectC)?;
            }
            Ok(())
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// Map xenheap page `mfn` (a grant frame or shared_info) at `gfn` in `d`. Under `d`'s P2M write
/// lock: a page that is mapped anywhere (its stored GFN is set) is refused with `-EBUSY`, even
/// at the same GFN; otherwise the entry is inserted (replacing whatever `gfn` held) and, only if
/// that worked, the GFN is recorded.
pub fn map_xenheap_frame(hv: &Hypervisor, d: &Domain, mfn: Mfn, gfn: Gfn) -> Result<()> {
    let frames = &hv.mm.frames;
    let mut p2m = d.p2m.write(&hv.mm);
    // Teardown marks the P2M dying under this lock before any of the domain's pages is
    // freed: past this check the frame is alive until we unlock.
    if p2m.is_dying() {
        return Err(Errno::ENOMEM);
    }
    if frames.xenheap_gfn(mfn, &p2m).is_some() {
        return Err(Errno::EBUSY);
    }
    p2m.insert(gfn, 1, mfn, P2mType::RamRw)?;
    frames.set_xenheap_gfn(mfn, Some(gfn), &p2m);
    Ok(())
}

fn map_foreign(hv: &Hypervisor, caller: &Arc<Domain>, d: &Arc<Domain>, fdom: DomId, idx: u64, gfn: Gfn) -> Result<()> {
    if fdom == DOMID_XEN {
        // Mapping hypervisor pages is not offered.
        return Err(Errno::EINVAL);
    }
    let od = hv.domain(fdom).ok_or(Errno::ESRCH)?;
    if od.id == d.id {
        return Err(Errno::EINVAL);
    }
    if !caller.controls(&od) {
        return Err(Errno::EPERM);
    }
    // Reference taken under od's P2M lock (XSA-473), kept by the new entry.
    let (mfn, ty) = {
        let r = od.p2m.read(&hv.mm);
        let m = r.lookup(Gfn(idx)).ok_or(Errno::EINVAL)?;
        if !m.ty.is_ram() || !hv.mm.get_page(m.mfn, od.id) {
            return Err(Errno::EINVAL);
        }
        (m.mfn, if m.ty == P2mType::RamRw { P2mType::MapForeignRw } else { P2mType::MapForeignRo })
    };
    let r = d.p2m.write(&hv.mm).insert(gfn, 1, mfn, ty);
    if r.is_err() {
        hv.mm.put_page(mfn);
    }
    r
}

fn remove_from_physmap(c: &Call, start: u64, arg: u64) -> Result<()> {
    if start != 0 {
        return Err(Errno::EINVAL);
    }
    let xrfp: XenRemoveFromPhysmap = c.mem().read(arg)?;
    let d = c.hv.lookup(c.d, xrfp.domid).ok_or(Errno::ESRCH)?;
    if !c.d.controls(&d) {
        return Err(Errno::EPERM);
    }
    remove_from_physmap_one(c.hv, &d, Gfn(xrfp.gpfn))
}

/// Unmap whatever RAM, grant or foreign page `gfn` maps (Xen's `get_page_from_gfn` +
/// `guest_physmap_remove_page`): `-ENOENT` if nothing is mapped there or the page cannot be
/// referenced (a foreign mapping of one of `d`'s own pages is refused the same way). The
/// lookup, the checks and the removal happen under one hold of the P2M write lock, so the
/// entry cannot change in between (Xen looks up under the read lock and reports a change
/// meanwhile as `-EILSEQ`).
pub fn remove_from_physmap_one(hv: &Hypervisor, d: &Domain, gfn: Gfn) -> Result<()> {
    let frames = &hv.mm.frames;
    d.p2m.write(&hv.mm).remove_if(gfn, |m| {
        let m = m.filter(|m| m.ty.is_any_ram()).ok_or(Errno::ENOENT)?;
        let referenced = if m.ty.is_foreign() {
            // The entry holds a reference on the foreign page, so its owner is stable.
            frames.owner(m.mfn).is_some_and(|o| o != d.id)
        } else {
            // (`owner` is `None` unless the page is in use.)
            frames.owner(m.mfn) == Some(d.id)
        };
        if referenced { Ok(()) } else { Err(Errno::ENOENT) }
    })
}
