//! Pinning granted frames: what `map_grant_ref`, `unmap_grant_ref`, `copy` and a mapping
//! domain's teardown do to the granting domain's table (Xen's `map_grant_ref` core,
//! `_set_status`, `get_paged_frame`, `unmap_common`'s release).
//!
//! A pin is a count in the granting domain's active entry (host read/write, 8 bits each), a
//! `GTF_reading`/`GTF_writing` flag in the shared entry the guest sees, and one page reference
//! per mapping. Lock order: the granting domain's grant-table lock, then (inside
//! [`get_paged_frame`]) its P2M read lock.

use super::{
    ActiveEntry, GNTPIN_DEVW_MASK, GNTPIN_HSTR_INC, GNTPIN_HSTW_INC, GNTPIN_HSTW_MASK, GNTPIN_OVERFLOW, GrantTable,
    GtState, MaptrackEntry, clear_flags, entry_flags, entry_frame, set_status,
};
use crate::mm::Mm;
use crate::p2m::{P2m, P2mType};
use crate::types::{DomId, Gfn, Mfn};
use xen_abi::gnttab::*;

/// The frame a pin gave, and the cache-attribute flags of its entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinned {
    pub mfn: Mfn,
    pub cache_flags: u16,
}

/// What a pin is for: a mapping, or the duration of one `GNTTABOP_copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinFor {
    Map,
    Copy,
}

/// Pin grant `gref` of table `gt` (whose domain's P2M is `p2m`) for domain `ldom`, and take
/// one page reference for the new mapping (or copy).
pub fn pin(
    mm: &Mm,
    gt: &GrantTable,
    p2m: &P2m,
    gref: u32,
    ldom: DomId,
    readonly: bool,
    purpose: PinFor,
) -> Result<Pinned, GntSt> {
    let mut st = gt.write();
    let act = match st.active(gref) {
        Some(a) if gref < st.nr_entries() => *a,
        _ => return Err(GntSt::BAD_GNTREF),
    };
    if act.pin != 0 && (act.domid != ldom || act.pin & GNTPIN_OVERFLOW != 0) {
        return Err(GntSt::GENERAL_ERROR);
    }
    // A copy that must take the entry again (the first writer of a grant pinned read-only)
    // goes on only if the entry still names the pinned frame: a granter that rewrote the entry
    // meanwhile must not have the copy write the frame it no longer grants (XSA-500). A copy
    // that needs nothing new from the entry (reading through a read pin) uses the pinned frame,
    // and so does a mapping, as in Xen.
    let retakes = act.pin != 0 && !readonly && act.pin & (GNTPIN_HSTW_MASK | GNTPIN_DEVW_MASK) == 0;
    if purpose == PinFor::Copy && retakes && entry_frame(mm, &st, gref).map(u64::from) != Some(act.gfn) {
        return Err(GntSt::GENERAL_ERROR);
    }
    let mut entry = act;
    let mut got_ref = false;
    if act.pin == 0 || (!readonly && act.pin & (GNTPIN_HSTW_MASK | GNTPIN_DEVW_MASK) == 0) {
        set_status(mm, &st, gref, ldom, readonly, act.pin != 0)?;
        if act.pin == 0 {
            let gfn = entry_frame(mm, &st, gref).unwrap_or(0) as u64;
            match get_paged_frame(mm, p2m, gt.owner(), gfn, readonly) {
                Ok(mfn) => {
                    entry = ActiveEntry { pin: 0, domid: ldom, gfn, mfn };
                    got_ref = true;
                }
                Err(s) => {
                    if !readonly {
                        clear_flags(mm, &st, gref, GTF_WRITING);
                    }
                    clear_flags(mm, &st, gref, GTF_READING);
                    return Err(s);
                }
            }
        }
    }
    if !got_ref && !mm.get_page(entry.mfn, gt.owner()) {
        return Err(GntSt::GENERAL_ERROR);
    }
    entry.pin += if readonly { GNTPIN_HSTR_INC } else { GNTPIN_HSTW_INC };
    let cache_flags = entry_flags(mm, &st, gref) & (GTF_PAT | GTF_PWT | GTF_PCD);
    let mfn = entry.mfn;
    if let Some(a) = st.active_mut(gref) {
        *a = entry;
    }
    Ok(Pinned { mfn, cache_flags })
}

/// Undo one pin of `gref` (the mapping failed, was unmapped, or its domain died) and drop
/// its page reference.
pub fn unpin(mm: &Mm, gt: &GrantTable, gref: u32, readonly: bool, mfn: Mfn) {
    let mut st = gt.write();
    unpin_locked(mm, &mut st, gref, readonly);
    drop(st);
    mm.put_page(mfn);
}

/// [`unpin`] with the grant-table lock held, except the page reference, which the caller
/// drops after unlocking.
pub fn unpin_locked(mm: &Mm, st: &mut GtState, gref: u32, readonly: bool) {
    let Some(a) = st.active_mut(gref) else { return };
    a.pin = a.pin.saturating_sub(if readonly { GNTPIN_HSTR_INC } else { GNTPIN_HSTW_INC });
    let pin = a.pin;
    if !readonly && pin & (GNTPIN_HSTW_MASK | GNTPIN_DEVW_MASK) == 0 {
        clear_flags(mm, st, gref, GTF_WRITING);
    }
    if pin == 0 {
        clear_flags(mm, st, gref, GTF_READING);
    }
}

/// The frame behind GFN `gfn` of `owner` (whose P2M is `p2m`), with a reference (Xen's
/// `get_paged_frame`).
pub fn get_paged_frame(mm: &Mm, p2m: &P2m, owner: DomId, gfn: u64, readonly: bool) -> Result<Mfn, GntSt> {
    let r = p2m.read(mm);
    let m = r.lookup(Gfn(gfn)).ok_or(GntSt::BAD_PAGE)?;
    if m.ty.is_foreign() {
        // The page belongs to a third domain (a foreign mapping of the owner's): refused as a
        // bad page, as Xen does since XSA-473 (it cannot be referenced safely for this owner).
        return Err(GntSt::BAD_PAGE);
    }
    if !m.ty.is_ram() || (!readonly && m.ty == P2mType::RamRo) || !mm.get_page(m.mfn, owner) {
        return Err(GntSt::BAD_PAGE);
    }
    Ok(m.mfn)
}

/// Teardown of a mapping domain (its P2M already relinquished): release its mapping `e` of
/// a grant of the domain whose table is `gt`.
pub fn release_mapping(mm: &Mm, gt: &GrantTable, e: MaptrackEntry) {
    if e.flags & GNTMAP_HOST_MAP == 0 {
        return;
    }
    let mfn = match gt.read().active(e.gref) {
        Some(a) => a.mfn,
        None => return,
    };
    unpin(mm, gt, e.gref, e.flags & GNTMAP_READONLY != 0, mfn);
}
