//! `grant_table_op` (v1), as Xen 4.17 answers an Arm guest.
//!
//! Lock order here: the granting domain's grant-table lock, then (nested) at most one P2M
//! lock; maptrack locks are leaves. Two grant-table locks are never held together.

use super::{Call, Outcome};
use crate::domain::Domain;
use crate::grant::{
    self, GNTPIN_DEVW_MASK, GNTPIN_HSTR_INC, GNTPIN_HSTW_INC, GNTPIN_HSTW_MASK, GNTPIN_OVERFLOW, MaptrackEntry,
};
use crate::hv::{DomRef, Hypervisor};
use crate::p2m::P2mType;
use crate::tlb::CacheOp;
use crate::types::{DomId, Errno, Gfn, Mfn, PAGE_SIZE};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::size_of;
use xen_abi::gnttab::*;
use xen_abi::*;

/// Operations of a multi-op call handled per trap before a continuation.
const OPS_PER_CALL: u32 = 64;

#[inline(never)]
pub fn grant_table_op(c: &Call, args: &mut [u64; 5]) -> Outcome {
    let (cmd_full, uop, count) = (args[0], args[1], args[2] as u32);
    if (count as i32) < 0 {
        return Outcome::err(Errno::EINVAL);
    }
    let cmd = cmd_full & GNTTABOP_CMD_MASK;
    if cmd != GNTTABOP_CACHE_FLUSH && cmd_full >> GNTTABOP_CONTINUATION_ARG_SHIFT != 0 {
        return Outcome::err(Errno::EINVAL);
    }
    match cmd {
        GNTTABOP_MAP_GRANT_REF => each(c, args, size_of::<GnttabMapGrantRef>(), |c, va| {
            let mut op: GnttabMapGrantRef = c.mem().read(va)?;
            map_grant_ref(c.hv, c.d, &mut op);
            c.mem().write(va, &op)
        }),
        GNTTABOP_UNMAP_GRANT_REF => each(c, args, size_of::<GnttabUnmapGrantRef>(), |c, va| {
            let mut op: GnttabUnmapGrantRef = c.mem().read(va)?;
            op.status = unmap_grant_ref(c.hv, c.d, op.host_addr, 0, op.dev_bus_addr, op.handle);
            c.mem().write(va, &op)
        }),
        GNTTABOP_UNMAP_AND_REPLACE => each(c, args, size_of::<GnttabUnmapAndReplace>(), |c, va| {
            let mut op: GnttabUnmapAndReplace = c.mem().read(va)?;
            op.status = unmap_grant_ref(c.hv, c.d, op.host_addr, op.new_addr, 0, op.handle);
            c.mem().write(va, &op)
        }),
        GNTTABOP_COPY => each(c, args, size_of::<GnttabCopy>(), |c, va| {
            let mut op: GnttabCopy = c.mem().read(va)?;
            op.status = copy(c, &op);
            c.mem().write(va, &op)
        }),
        GNTTABOP_SETUP_TABLE => single(count, || setup_table(c, uop)),
        GNTTABOP_QUERY_SIZE => single(count, || query_size(c, uop)),
        GNTTABOP_SET_VERSION => single(count, || set_version(c, uop)),
        GNTTABOP_GET_VERSION => single(count, || get_version(c, uop)),
        GNTTABOP_GET_STATUS_FRAMES => single(count, || get_status_frames(c, uop)),
        GNTTABOP_DUMP_TABLE => single(count, || dump_table(c, uop)),
        GNTTABOP_SWAP_GRANT_REF => each(c, args, size_of::<GnttabSwapGrantRef>(), |c, va| {
            let mut op: GnttabSwapGrantRef = c.mem().read(va)?;
            op.status = swap_grant_ref(c.hv, c.d, op.ref_a, op.ref_b);
            c.mem().write(va, &op)
        }),
        GNTTABOP_CACHE_FLUSH => cache_flush_ops(c, args),
        // Grant transfer is a PV-only feature.
        GNTTABOP_TRANSFER => Outcome::err(Errno::EOPNOTSUPP),
        _ => Outcome::err(Errno::ENOSYS),
    }
}

fn single(count: u32, f: impl FnOnce() -> crate::types::Result<()>) -> Outcome {
    if count != 1 {
        return Outcome::err(Errno::EINVAL);
    }
    f().map(|_| 0).into()
}

/// Run `f` on `count` consecutive structures of `size` bytes at `uop`, with a continuation
/// every `OPS_PER_CALL`.
fn each(c: &Call, args: &mut [u64; 5], size: usize, f: impl Fn(&Call, u64) -> crate::types::Result<()>) -> Outcome {
    let (uop, count) = (args[1], args[2] as u32);
    let n = count.min(OPS_PER_CALL);
    for i in 0..n as u64 {
        let Some(va) = i.checked_mul(size as u64).and_then(|o| uop.checked_add(o)) else {
            return Outcome::err(Errno::EFAULT);
        };
        if let Err(e) = f(c, va) {
            return Outcome::err(e);
        }
    }
    if count > n {
        args[1] = uop.wrapping_add(n as u64 * size as u64);
        args[2] = (count - n) as u64;
        return Outcome::Continue;
    }
    Outcome::Return(0)
}

// ---- cache_flush ----------------------------------------------------------------------------

/// Grant references a cache flush scans for the caller's mapping per step (Xen's
/// `1 << GNTTABOP_CONTINUATION_ARG_SHIFT`), and steps per trap before a continuation.
const FLUSH_SCAN_REFS: u32 = 1 << GNTTABOP_CONTINUATION_ARG_SHIFT;
const FLUSH_SCAN_STEPS: u32 = 4;

/// `GNTTABOP_cache_flush`: data-cache maintenance on part of a page the caller owns, or that
/// another domain granted it and it has mapped. The scan position through the granter's
/// table (`cur_ref`) travels in the command's upper bits across continuations, as on Xen.
/// (Out of line: inlined, it made every other grant-table op save more registers.)
#[inline(never)]
fn cache_flush_ops(c: &Call, args: &mut [u64; 5]) -> Outcome {
    let (uop, count) = (args[1], args[2] as u32);
    let mut cur_ref = (args[0] >> GNTTABOP_CONTINUATION_ARG_SHIFT) as u32;
    let mut steps = 0;
    for i in 0..count {
        let Some(va) = (i as u64).checked_mul(size_of::<GnttabCacheFlush>() as u64).and_then(|o| uop.checked_add(o))
        else {
            return Outcome::err(Errno::EFAULT);
        };
        if i == OPS_PER_CALL {
            return resume_cache_flush(args, cur_ref, va, count - i);
        }
        let op: GnttabCacheFlush = match c.mem().read(va) {
            Ok(op) => op,
            Err(e) => return Outcome::err(e),
        };
        loop {
            match cache_flush(c, &op, &mut cur_ref) {
                Err(e) => return Outcome::err(e),
                Ok(true) => break,
                Ok(false) => {
                    steps += 1;
                    if steps == FLUSH_SCAN_STEPS {
                        // Resume this operation, at the scan position reached.
                        return resume_cache_flush(args, cur_ref, va, count - i);
                    }
                }
            }
        }
        cur_ref = 0;
    }
    Outcome::Return(0)
}

/// A continuation of cache_flush: `left` operations from `va`, the scan position of the first
/// in the command's upper bits.
fn resume_cache_flush(args: &mut [u64; 5], cur_ref: u32, va: u64, left: u32) -> Outcome {
    args[0] = GNTTABOP_CACHE_FLUSH | (cur_ref as u64) << GNTTABOP_CONTINUATION_ARG_SHIFT;
    args[1] = va;
    args[2] = left as u64;
    Outcome::Continue
}

/// One cache-flush operation: `Ok(true)` done, `Ok(false)` the granter's table was scanned up
/// to `cur_ref` without finding the caller's mapping yet (call again). Xen 4.17's checks and
/// errnos, in its order.
fn cache_flush(c: &Call, op: &GnttabCacheFlush, cur_ref: &mut u32) -> Result<bool, Errno> {
    let (offset, len) = (op.offset as u64, op.length as u64);
    if offset >= PAGE_SIZE
        || len > PAGE_SIZE
        || offset + len > PAGE_SIZE
        || op.op & !(GNTTAB_CACHE_INVAL | GNTTAB_CACHE_CLEAN) != 0
    {
        return Err(Errno::EINVAL);
    }
    if len == 0 || op.op == 0 {
        // Nothing to do, unless this is not the operation a continuation was scanning for.
        return if *cur_ref == 0 { Ok(true) } else { Err(Errno::EILSEQ) };
    }
    let mfn = Mfn(op.a >> 12);
    let mm = &c.hv.mm;
    if mm.frames.page(mfn).is_none() {
        return Err(Errno::EINVAL);
    }
    let owner = mm.frames.get_page_any_owner(mfn).map_err(|_| Errno::EPERM)?;
    let r = flush_owned_or_granted(c, owner, mfn, offset, len, op.op, cur_ref);
    mm.put_page(mfn);
    r
}

fn flush_owned_or_granted(
    c: &Call,
    owner: DomId,
    mfn: Mfn,
    offset: u64,
    len: u64,
    ops: u32,
    cur_ref: &mut u32,
) -> Result<bool, Errno> {
    let kind = if ops & GNTTAB_CACHE_INVAL != 0 { CacheOp::CleanInvalidate } else { CacheOp::Clean };
    let flush = || c.hv.mm.tlb.dcache(kind, mfn.addr() + offset, len);
    let od = c.hv.domain_any_state_or_caller(c.d, owner).ok_or(Errno::EPERM)?;
    if od.id == c.d.id {
        flush();
        return Ok(true);
    }
    // Another domain's page: only if it granted it to the caller, who holds a mapping of it
    // (a pinned active entry). The read lock keeps that pin while the caches are maintained.
    let st = od.grant.read();
    if st.is_destroyed() {
        return Err(Errno::EPERM);
    }
    let n = st.nr_entries();
    let end = cur_ref.saturating_add(FLUSH_SCAN_REFS).min(n);
    let mapped = (*cur_ref..end).any(|r| st.active(r).is_some_and(|a| a.pin != 0 && a.domid == c.d.id && a.mfn == mfn));
    if mapped {
        flush();
        return Ok(true);
    }
    if end < n {
        *cur_ref = end;
        return Ok(false);
    }
    Err(Errno::EINVAL)
}

/// `struct gnttab_dump_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DumpTable {
    pub dom: DomId,
    pub status: i16,
}
// SAFETY: two contiguous 16-bit fields.
unsafe impl super::Pod for DumpTable {}

// ---- map / unmap ----------------------------------------------------------------------------

fn map_grant_ref(hv: &Hypervisor, ld: &Arc<Domain>, op: &mut GnttabMapGrantRef) {
    match map_inner(hv, ld, op) {
        Ok((handle, mfn)) => {
            op.handle = handle;
            op.dev_bus_addr = mfn.addr();
            op.status = GNTST_OKAY;
        }
        Err(s) => op.status = s,
    }
}

fn map_inner(hv: &Hypervisor, ld: &Arc<Domain>, op: &GnttabMapGrantRef) -> Result<(u32, Mfn), i16> {
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP) == 0 {
        return Err(GNTST_BAD_GNTREF);
    }
    // Translated guests only have host mappings (Xen: "No device mapping in HVM domain").
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE) != 0 {
        return Err(GNTST_GENERAL_ERROR);
    }
    let rd = hv.domain_or_caller(ld, op.dom).ok_or(GNTST_BAD_DOMAIN)?;
    let handle = ld.grant.get_handle().ok_or(GNTST_NO_DEVICE_SPACE)?;
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let (mfn, cache) = match pin(hv, &rd, op.ref_, ld.id, readonly) {
        Ok(x) => x,
        Err(s) => {
            ld.grant.put_handle(handle);
            return Err(s);
        }
    };
    // The host mapping, in the mapping domain's P2M, with the grant-map type.
    let ok = cache == 0 && (op.flags & !GNTMAP_READONLY) == GNTMAP_HOST_MAP && {
        let ty = if readonly { P2mType::GrantMapRo } else { P2mType::GrantMapRw };
        ld.p2m.write(&hv.mm).insert(Gfn::from_addr(op.host_addr), 1, mfn, ty).is_ok()
    };
    if !ok {
        unpin(hv, &rd, op.ref_, readonly, mfn);
        ld.grant.put_handle(handle);
        return Err(GNTST_GENERAL_ERROR);
    }
    ld.grant.set_handle(handle, MaptrackEntry { flags: op.flags, domid: rd.id, gref: op.ref_ });
    Ok((handle, mfn))
}

/// Pin grant `gref` of `rd` for `ldom` and take one page reference for the new mapping.
/// Returns the frame and the entry's cache attribute flags.
fn pin(hv: &Hypervisor, rd: &Domain, gref: u32, ldom: DomId, readonly: bool) -> Result<(Mfn, u16), i16> {
    let mm = &hv.mm;
    let mut st = rd.grant.write();
    if gref >= st.nr_entries() {
        return Err(GNTST_BAD_GNTREF);
    }
    let act = *st.active(gref).unwrap();
    if act.pin != 0 && (act.domid != ldom || act.pin & GNTPIN_OVERFLOW != 0) {
        return Err(GNTST_GENERAL_ERROR);
    }
    let mut got_ref = false;
    if act.pin == 0 || (!readonly && act.pin & (GNTPIN_HSTW_MASK | GNTPIN_DEVW_MASK) == 0) {
        grant::set_status(mm, &st, gref, ldom, readonly, act.pin != 0)?;
        if act.pin == 0 {
            let gfn = grant::entry_frame(mm, &st, gref).unwrap_or(0) as u64;
            match get_paged_frame(hv, rd, gfn, readonly) {
                Ok(mfn) => {
                    *st.active_mut(gref).unwrap() = grant::ActiveEntry { pin: 0, domid: ldom, gfn, mfn };
                    got_ref = true;
                }
                Err(s) => {
                    if !readonly {
                        grant::clear_flags(mm, &st, gref, GTF_WRITING);
                    }
                    grant::clear_flags(mm, &st, gref, GTF_READING);
                    return Err(s);
                }
            }
        }
    }
    let a = st.active_mut(gref).unwrap();
    let mfn = a.mfn;
    if !got_ref && !mm.get_page(mfn, rd.id) {
        return Err(GNTST_GENERAL_ERROR);
    }
    a.pin += if readonly { GNTPIN_HSTR_INC } else { GNTPIN_HSTW_INC };
    let cache = grant::entry_flags(mm, &st, gref) & (GTF_PAT | GTF_PWT | GTF_PCD);
    Ok((mfn, cache))
}

/// Undo one pin of `gref` (the mapping failed, was unmapped, or its domain died).
fn unpin(hv: &Hypervisor, rd: &Domain, gref: u32, readonly: bool, mfn: Mfn) {
    let mut st = rd.grant.write();
    unpin_locked(&hv.mm, &mut st, gref, readonly);
    drop(st);
    hv.mm.put_page(mfn);
}

/// [`unpin`] with `rd`'s grant lock held, except the page reference, which the caller drops
/// after unlocking.
fn unpin_locked(mm: &crate::mm::Mm, st: &mut grant::GtState, gref: u32, readonly: bool) {
    if let Some(a) = st.active_mut(gref) {
        a.pin -= if readonly { GNTPIN_HSTR_INC } else { GNTPIN_HSTW_INC };
        let pin = a.pin;
        if !readonly && pin & (GNTPIN_HSTW_MASK | GNTPIN_DEVW_MASK) == 0 {
            grant::clear_flags(mm, st, gref, GTF_WRITING);
        }
        if pin == 0 {
            grant::clear_flags(mm, st, gref, GTF_READING);
        }
    }
}

/// The frame behind GFN `gfn` of `rd`, with a reference (Xen's `get_paged_frame`).
fn get_paged_frame(hv: &Hypervisor, rd: &Domain, gfn: u64, readonly: bool) -> Result<Mfn, i16> {
    let r = rd.p2m.read(&hv.mm);
    let m = r.lookup(Gfn(gfn)).ok_or(GNTST_BAD_PAGE)?;
    if m.ty.is_foreign() {
        // The page belongs to a third domain: Xen refuses to pin it.
        return Err(GNTST_GENERAL_ERROR);
    }
    if !m.ty.is_ram() || (!readonly && m.ty == P2mType::RamRo) || !hv.mm.get_page(m.mfn, rd.id) {
        return Err(GNTST_BAD_PAGE);
    }
    Ok(m.mfn)
}

fn unmap_grant_ref(
    hv: &Hypervisor,
    ld: &Arc<Domain>,
    host_addr: u64,
    new_addr: u64,
    dev_bus_addr: u64,
    handle: u32,
) -> i16 {
    let Some(e) = ld.grant.maptrack().get(handle) else { return GNTST_BAD_HANDLE };
    let Some(rd) = hv.domain_any_state_or_caller(ld, e.domid) else { return GNTST_BAD_DOMAIN };
    let mm = &hv.mm;
    let mut st = rd.grant.write();
    // Another vCPU may have unmapped it while we were not holding the lock.
    if ld.grant.maptrack().get(handle) != Some(e) {
        return GNTST_BAD_HANDLE;
    }
    let Some(act) = st.active(e.gref).copied() else { return GNTST_GENERAL_ERROR };
    if dev_bus_addr != 0 && e.flags & GNTMAP_DEVICE_MAP != 0 && dev_bus_addr != act.mfn.addr() {
        return GNTST_BAD_DEV_ADDR;
    }
    if host_addr == 0 || e.flags & GNTMAP_HOST_MAP == 0 {
        return GNTST_OKAY;
    }
    // Arm's replace_grant_host_mapping: no replacement address, and the GFN must still hold
    // this grant's mapping (Xen 4.17 also accepts an empty GFN there and releases the grant
    // while it stays mapped elsewhere: refused here, the handle stays).
    if new_addr != 0 || ld.p2m.write(mm).remove_grant(Gfn::from_addr(host_addr), act.mfn).is_err() {
        return GNTST_GENERAL_ERROR;
    }
    ld.grant.put_handle(handle);
    unpin_locked(mm, &mut st, e.gref, e.flags & GNTMAP_READONLY != 0);
    drop(st);
    mm.put_page(act.mfn);
    GNTST_OKAY
}

/// Teardown of a mapping domain: release one of its grant mappings (its P2M is already gone).
pub fn release_mapping(hv: &Hypervisor, _ld: &Domain, _handle: u32, e: MaptrackEntry) {
    if e.flags & GNTMAP_HOST_MAP == 0 {
        return;
    }
    let Some(rd) = hv.domain_any_state(e.domid) else { return };
    let mfn = match rd.grant.read().active(e.gref) {
        Some(a) => a.mfn,
        None => return,
    };
    unpin(hv, &rd, e.gref, e.flags & GNTMAP_READONLY != 0, mfn);
}

// ---- table queries ------------------------------------------------------------------------

fn target<'a>(c: &Call<'a>, dom: DomId) -> Result<DomRef<'a>, i16> {
    let d = c.hv.lookup(c.d, dom).ok_or(GNTST_BAD_DOMAIN)?;
    if !c.d.controls(&d) {
        return Err(GNTST_PERMISSION_DENIED);
    }
    Ok(d)
}

fn setup_table(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mem = c.mem();
    let mut op: GnttabSetupTable = mem.read(uop)?;
    let gfns = target(c, op.dom).and_then(|d| {
        if op.nr_frames > d.grant.max_frames() {
            return Err(GNTST_GENERAL_ERROR);
        }
        let mut st = d.grant.write();
        // (grow refuses a table destroyed by a concurrent teardown)
        d.grant.grow(&c.hv.mm, &mut st, op.nr_frames).map_err(|_| GNTST_GENERAL_ERROR)?;
        // The stored GFN of each frame, read under the domain's P2M lock (grant -> P2M).
        let p2m = d.p2m.read(&c.hv.mm);
        Ok(st.frames()[..op.nr_frames as usize]
            .iter()
            .map(|&f| c.hv.mm.frames.xenheap_gfn(f, &p2m).unwrap_or(Gfn::INVALID).0)
            .collect::<Vec<u64>>())
    });
    op.status = match gfns {
        Ok(gfns) => {
            let mut s = GNTST_OKAY;
            for (i, g) in gfns.iter().enumerate() {
                if mem.write_elem(op.frame_list, i as u64, g).is_err() {
                    s = GNTST_BAD_VIRT_ADDR;
                    break;
                }
            }
            s
        }
        Err(s) => s,
    };
    mem.write(uop, &op)
}

fn query_size(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: GnttabQuerySize = c.mem().read(uop)?;
    match target(c, op.dom) {
        Ok(d) => {
            op.nr_frames = d.grant.read().nr_frames();
            op.max_nr_frames = d.grant.max_frames();
            op.status = GNTST_OKAY;
        }
        Err(s) => op.status = s,
    }
    c.mem().write(uop, &op)
}

fn set_version(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: GnttabSetVersion = c.mem().read(uop)?;
    let r = match op.version {
        1 => Ok(()),
        2 => Err(Errno::ENOSYS), // GNTTAB_MAX_VERSION is 1 on Arm
        _ => Err(Errno::EINVAL),
    };
    op.version = c.d.grant.read().version;
    c.mem().write(uop, &op)?;
    r
}

fn get_version(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: GnttabGetVersion = c.mem().read(uop)?;
    let d = c.hv.lookup(c.d, op.dom).ok_or(Errno::ESRCH)?;
    if !c.d.controls(&d) {
        return Err(Errno::EPERM);
    }
    op.version = d.grant.read().version;
    c.mem().write(uop, &op)
}

fn get_status_frames(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: GnttabGetStatusFrames = c.mem().read(uop)?;
    // Status frames exist only in v2, which Arm does not offer.
    op.status = match target(c, op.dom) {
        Ok(_) => GNTST_GENERAL_ERROR,
        Err(s) => s,
    };
    c.mem().write(uop, &op)
}

fn dump_table(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: DumpTable = c.mem().read(uop)?;
    op.status = match target(c, op.dom) {
        Ok(d) => {
            let st = d.grant.read();
            let pinned = st.active_entries().iter().filter(|a| a.pin != 0).count();
            log::info!("d{} grant table: v{}, {} frames, {} entries pinned", d.id, st.version, st.nr_frames(), pinned);
            GNTST_OKAY
        }
        Err(s) => s,
    };
    c.mem().write(uop, &op)
}

fn swap_grant_ref(hv: &Hypervisor, d: &Domain, a: u32, b: u32) -> i16 {
    let mm = &hv.mm;
    let st = d.grant.write();
    if a >= st.nr_entries() || b >= st.nr_entries() {
        return GNTST_BAD_GNTREF;
    }
    if st.active(a).unwrap().pin != 0 || st.active(b).unwrap().pin != 0 {
        return GNTST_GENERAL_ERROR;
    }
    let (pa, pb) = (st.entry_addr(a).unwrap(), st.entry_addr(b).unwrap());
    // Refuse entries the guest marked in use meanwhile.
    let (ea, eb) = (mm.phys.atomic_u64(pa), mm.phys.atomic_u64(pb));
    let (va, vb) = (ea.load(core::sync::atomic::Ordering::Acquire), eb.load(core::sync::atomic::Ordering::Acquire));
    if (va as u16 | vb as u16) & (GTF_READING | GTF_WRITING) != 0 {
        return GNTST_GENERAL_ERROR;
    }
    ea.store(vb, core::sync::atomic::Ordering::Release);
    eb.store(va, core::sync::atomic::Ordering::Release);
    GNTST_OKAY
}

// ---- copy ---------------------------------------------------------------------------------

/// One side of a copy, claimed: the frame, a reference on it, and the pin to undo.
struct Claimed {
    mfn: Mfn,
    pin: Option<(Arc<Domain>, u32, bool)>,
}

fn claim(c: &Call, ptr: &GnttabCopyPtr, is_gref: bool, readonly: bool) -> Result<Claimed, i16> {
    if !is_gref && ptr.domid != DOMID_SELF {
        return Err(GNTST_PERMISSION_DENIED);
    }
    let d = c.hv.lookup(c.d, ptr.domid).ok_or(GNTST_BAD_DOMAIN)?;
    if is_gref {
        let gref = u32::try_from(ptr.u).map_err(|_| GNTST_BAD_GNTREF)?;
        let (mfn, _) = pin(c.hv, &d, gref, c.d.id, readonly)?;
        Ok(Claimed { mfn, pin: Some((Arc::clone(&d), gref, readonly)) })
    } else {
        Ok(Claimed { mfn: get_paged_frame(c.hv, &d, ptr.u, readonly)?, pin: None })
    }
}

fn release(hv: &Hypervisor, cl: Claimed) {
    match cl.pin {
        Some((rd, gref, ro)) => unpin(hv, &rd, gref, ro, cl.mfn),
        None => hv.mm.put_page(cl.mfn),
    }
}

fn copy(c: &Call, op: &GnttabCopy) -> i16 {
    if op.len == 0 {
        return GNTST_OKAY; // ignored completely (XSA-448)
    }
    let src = match claim(c, &op.source, op.flags & GNTCOPY_SOURCE_GREF != 0, true) {
        Ok(s) => s,
        Err(s) => return s,
    };
    let dst = match claim(c, &op.dest, op.flags & GNTCOPY_DEST_GREF != 0, false) {
        Ok(d) => d,
        Err(s) => {
            release(c.hv, src);
            return s;
        }
    };
    let len = op.len as u64;
    let status = if op.source.offset as u64 + len > PAGE_SIZE || op.dest.offset as u64 + len > PAGE_SIZE {
        GNTST_BAD_COPY_ARG
    } else {
        c.hv.mm.phys.copy(dst.mfn.addr() + op.dest.offset as u64, src.mfn.addr() + op.source.offset as u64, len);
        GNTST_OKAY
    };
    release(c.hv, dst);
    release(c.hv, src);
    status
}
