//! `grant_table_op` (v1), as Xen 4.17 answers an Arm guest.
//!
//! Lock order here: the granting domain's grant-table lock, then (nested) at most one P2M
//! lock; maptrack locks are leaves. Two grant-table locks are never held together.

use super::{Call, Outcome};
use crate::domain::Domain;
use crate::grant::MaptrackEntry;
use crate::grant::pin::{self, PinFor, Pinned};
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
            op.status = GntSt::of(unmap_grant_ref(c.hv, c.d, op.host_addr, 0, op.dev_bus_addr, op.handle));
            c.mem().write(va, &op)
        }),
        GNTTABOP_UNMAP_AND_REPLACE => each(c, args, size_of::<GnttabUnmapAndReplace>(), |c, va| {
            let mut op: GnttabUnmapAndReplace = c.mem().read(va)?;
            op.status = GntSt::of(unmap_grant_ref(c.hv, c.d, op.host_addr, op.new_addr, 0, op.handle));
            c.mem().write(va, &op)
        }),
        GNTTABOP_COPY => each(c, args, size_of::<GnttabCopy>(), |c, va| {
            let mut op: GnttabCopy = c.mem().read(va)?;
            op.status = GntSt::of(copy(c, &op));
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
            op.status = GntSt::of(swap_grant_ref(c.hv, c.d, op.ref_a, op.ref_b));
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

// ---- map / unmap ----------------------------------------------------------------------------

fn map_grant_ref(hv: &Hypervisor, ld: &Arc<Domain>, op: &mut GnttabMapGrantRef) {
    match map_inner(hv, ld, op) {
        Ok((handle, mfn)) => {
            op.handle = handle;
            op.dev_bus_addr = mfn.addr();
            op.status = GntSt::OKAY.0;
        }
        Err(s) => op.status = s.0,
    }
}

fn map_inner(hv: &Hypervisor, ld: &Arc<Domain>, op: &GnttabMapGrantRef) -> Result<(u32, Mfn), GntSt> {
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP) == 0 {
        return Err(GntSt::BAD_GNTREF);
    }
    // Translated guests only have host mappings (Xen: "No device mapping in HVM domain").
    if op.flags & (GNTMAP_DEVICE_MAP | GNTMAP_APPLICATION_MAP | GNTMAP_CONTAINS_PTE) != 0 {
        return Err(GntSt::GENERAL_ERROR);
    }
    let rd = hv.domain_or_caller(ld, op.dom).ok_or(GntSt::BAD_DOMAIN)?;
    let handle = ld.grant.get_handle().ok_or(GntSt::NO_DEVICE_SPACE)?;
    let readonly = op.flags & GNTMAP_READONLY != 0;
    let Pinned { mfn, cache_flags } = match pin::pin(&hv.mm, &rd.grant, &rd.p2m, op.ref_, ld.id, readonly, PinFor::Map)
    {
        Ok(p) => p,
        Err(s) => {
            ld.grant.put_handle(handle);
            return Err(s);
        }
    };
    // The host mapping, in the mapping domain's P2M, with the grant-map type.
    let ok = cache_flags == 0 && (op.flags & !GNTMAP_READONLY) == GNTMAP_HOST_MAP && {
        let ty = if readonly { P2mType::GrantMapRo } else { P2mType::GrantMapRw };
        ld.p2m.write(&hv.mm).insert(Gfn::from_addr(op.host_addr), 1, mfn, ty).is_ok()
    };
    if !ok {
        pin::unpin(&hv.mm, &rd.grant, op.ref_, readonly, mfn);
        ld.grant.put_handle(handle);
        return Err(GntSt::GENERAL_ERROR);
    }
    ld.grant.set_handle(handle, MaptrackEntry { flags: op.flags, domid: rd.id, gref: op.ref_ });
    Ok((handle, mfn))
}

fn unmap_grant_ref(
    hv: &Hypervisor,
    ld: &Arc<Domain>,
    host_addr: u64,
    new_addr: u64,
    dev_bus_addr: u64,
    handle: u32,
) -> Result<(), GntSt> {
    let e = ld.grant.maptrack().get(handle).ok_or(GntSt::BAD_HANDLE)?;
    let rd = hv.domain_any_state_or_caller(ld, e.domid).ok_or(GntSt::BAD_DOMAIN)?;
    let mm = &hv.mm;
    let mut st = rd.grant.write();
    // Another vCPU may have unmapped it while we were not holding the lock.
    if ld.grant.maptrack().get(handle) != Some(e) {
        return Err(GntSt::BAD_HANDLE);
    }
    let act = st.active(e.gref).copied().ok_or(GntSt::GENERAL_ERROR)?;
    if dev_bus_addr != 0 && e.flags & GNTMAP_DEVICE_MAP != 0 && dev_bus_addr != act.mfn.addr() {
        return Err(GntSt::BAD_DEV_ADDR);
    }
    if host_addr == 0 || e.flags & GNTMAP_HOST_MAP == 0 {
        return Ok(());
    }
    // Arm's replace_grant_host_mapping: no replacement address, and the GFN must still hold
    // this grant's mapping (Xen 4.17 also accepts an empty GFN there and releases the grant
    // while it stays mapped elsewhere: refused here, the handle stays).
    if new_addr != 0 || ld.p2m.write(mm).remove_grant(Gfn::from_addr(host_addr), act.mfn).is_err() {
        return Err(GntSt::GENERAL_ERROR);
    }
    ld.grant.put_handle(handle);
    pin::unpin_locked(mm, &mut st, e.gref, e.flags & GNTMAP_READONLY != 0);
    drop(st);
    mm.put_page(act.mfn);
    Ok(())
}

// ---- table queries ------------------------------------------------------------------------

fn target<'a>(c: &Call<'a>, dom: DomId) -> Result<DomRef<'a>, GntSt> {
    let d = c.hv.lookup(c.d, dom).ok_or(GntSt::BAD_DOMAIN)?;
    if !c.d.controls(&d) {
        return Err(GntSt::PERMISSION_DENIED);
    }
    Ok(d)
}

fn setup_table(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mem = c.mem();
    let mut op: GnttabSetupTable = mem.read(uop)?;
    let gfns = target(c, op.dom).and_then(|d| {
        if op.nr_frames > d.grant.max_frames() {
            return Err(GntSt::GENERAL_ERROR);
        }
        let mut st = d.grant.write();
        // (grow refuses a table destroyed by a concurrent teardown)
        d.grant.grow(&c.hv.mm, &mut st, op.nr_frames).map_err(|_| GntSt::GENERAL_ERROR)?;
        // The stored GFN of each frame, read under the domain's P2M lock (grant -> P2M).
        let p2m = d.p2m.read(&c.hv.mm);
        Ok(st.frames()[..op.nr_frames as usize]
            .iter()
            .map(|&f| c.hv.mm.frames.xenheap_gfn(f, &p2m).unwrap_or(Gfn::INVALID).0)
            .collect::<Vec<u64>>())
    });
    op.status = GntSt::of(gfns.and_then(|gfns| {
        for (i, g) in gfns.iter().enumerate() {
            if mem.write_elem(op.frame_list, i as u64, g).is_err() {
                return Err(GntSt::BAD_VIRT_ADDR);
            }
        }
        Ok(())
    }));
    mem.write(uop, &op)
}

fn query_size(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: GnttabQuerySize = c.mem().read(uop)?;
    op.status = GntSt::of(target(c, op.dom).map(|d| {
        op.nr_frames = d.grant.read().nr_frames();
        op.max_nr_frames = d.grant.max_frames();
    }));
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
    // Status frames exist only in v2, which Arm does not offer: a v1 table has none, so asking
    // for none is fine (nothing is written) and asking for any is Xen's general error (the
    // capacity check of XSA-382).
    op.status = GntSt::of(target(c, op.dom).and(if op.nr_frames == 0 { Ok(()) } else { Err(GntSt::GENERAL_ERROR) }));
    c.mem().write(uop, &op)
}

fn dump_table(c: &Call, uop: u64) -> crate::types::Result<()> {
    let mut op: GnttabDumpTable = c.mem().read(uop)?;
    op.status = GntSt::of(target(c, op.dom).map(|d| {
        let st = d.grant.read();
        let pinned = st.active_entries().iter().filter(|a| a.pin != 0).count();
        log::info!("d{} grant table: v{}, {} frames, {} entries pinned", d.id, st.version, st.nr_frames(), pinned);
    }));
    c.mem().write(uop, &op)
}

fn swap_grant_ref(hv: &Hypervisor, d: &Domain, a: u32, b: u32) -> Result<(), GntSt> {
    use core::sync::atomic::Ordering;
    let mm = &hv.mm;
    let st = d.grant.write();
    if a >= st.nr_entries() || b >= st.nr_entries() {
        return Err(GntSt::BAD_GNTREF);
    }
    let pinned = |r| st.active(r).is_none_or(|e| e.pin != 0);
    if pinned(a) || pinned(b) {
        return Err(GntSt::GENERAL_ERROR);
    }
    // (The caller's own table: running, so never destroyed.)
    let (Some(pa), Some(pb)) = (st.entry_addr(a), st.entry_addr(b)) else { return Err(GntSt::GENERAL_ERROR) };
    // Refuse entries the guest marked in use meanwhile.
    let (ea, eb) = (mm.phys.atomic_u64(pa), mm.phys.atomic_u64(pb));
    let (va, vb) = (ea.load(Ordering::Acquire), eb.load(Ordering::Acquire));
    if (va as u16 | vb as u16) & (GTF_READING | GTF_WRITING) != 0 {
        return Err(GntSt::GENERAL_ERROR);
    }
    ea.store(vb, Ordering::Release);
    eb.store(va, Ordering::Release);
    Ok(())
}

// ---- copy ---------------------------------------------------------------------------------

/// One side of a copy, claimed: the frame, a reference on it, and the pin to undo.
struct Claimed {
    mfn: Mfn,
    pin: Option<(Arc<Domain>, u32, bool)>,
}

fn claim(c: &Call, ptr: &GnttabCopyPtr, is_gref: bool, readonly: bool) -> Result<Claimed, GntSt> {
    if !is_gref && ptr.domid != DOMID_SELF {
        return Err(GntSt::PERMISSION_DENIED);
    }
    let d = c.hv.lookup(c.d, ptr.domid).ok_or(GntSt::BAD_DOMAIN)?;
    let mm = &c.hv.mm;
    if is_gref {
        let gref = u32::try_from(ptr.u).map_err(|_| GntSt::BAD_GNTREF)?;
        let p = pin::pin(mm, &d.grant, &d.p2m, gref, c.d.id, readonly, PinFor::Copy)?;
        Ok(Claimed { mfn: p.mfn, pin: Some((Arc::clone(&d), gref, readonly)) })
    } else {
        Ok(Claimed { mfn: pin::get_paged_frame(mm, &d.p2m, d.id, ptr.u, readonly)?, pin: None })
    }
}

fn release(hv: &Hypervisor, cl: Claimed) {
    match cl.pin {
        Some((rd, gref, ro)) => pin::unpin(&hv.mm, &rd.grant, gref, ro, cl.mfn),
        None => hv.mm.put_page(cl.mfn),
    }
}

fn copy(c: &Call, op: &GnttabCopy) -> Result<(), GntSt> {
    if op.len == 0 {
        return Ok(()); // ignored completely (XSA-448)
    }
    let src = claim(c, &op.source, op.flags & GNTCOPY_SOURCE_GREF != 0, true)?;
    let dst = match claim(c, &op.dest, op.flags & GNTCOPY_DEST_GREF != 0, false) {
        Ok(d) => d,
        Err(s) => {
            release(c.hv, src);
            return Err(s);
        }
    };
    let len = op.len as u64;
    let status = if op.source.offset as u64 + len > PAGE_SIZE || op.dest.offset as u64 + len > PAGE_SIZE {
        Err(GntSt::BAD_COPY_ARG)
    } else {
        c.hv.mm.phys.copy(dst.mfn.addr() + op.dest.offset as u64, src.mfn.addr() + op.source.offset as u64, len);
        Ok(())
    };
    release(c.hv, dst);
    release(c.hv, src);
    status
}
