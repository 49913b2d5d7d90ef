//! A domain's grant table (v1): shared frames, active entries and the maptrack.
//!
//! * Shared frames are xenheap pages shared read-write with the domain, 1 at creation, grown
//!   on demand (by `XENMEM_add_to_physmap` of a higher index or by `setup_table`) up to the
//!   domain's `max_grant_frames`.
//! * Where a frame is mapped in its guest is *not* stored here: it is the GFN in the frame's
//!   `PageInfo::type_info`, protected by the domain's P2M lock (see `crate::LOCK_ORDER`).
//! * Active entries record the pins of grants other domains (or the domain itself) have
//!   mapped; the maptrack records a domain's own mappings of grants, by handle.
//! * Pinning granted frames for mappings and copies, and releasing them: [`pin`].

pub mod pin;

use crate::mm::Mm;
use crate::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, rank};
use crate::types::{DomId, Errno, Mfn, Result};
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use xen_abi::GRANT_ENTRIES_V1_PER_FRAME;
use xen_abi::gnttab::*;

pub const INITIAL_NR_GRANT_FRAMES: u32 = 1;
/// Highest grant-table version this hypervisor offers (Xen on Arm: 1).
pub const GNTTAB_MAX_VERSION: u32 = 1;

// Pin counts of an active entry (Xen's GNTPIN_*): host write / host read / device write /
// device read mappings, 8 bits each.
pub const GNTPIN_HSTW_INC: u32 = 1 << 0;
pub const GNTPIN_HSTW_MASK: u32 = 0xFF;
pub const GNTPIN_HSTR_INC: u32 = 1 << 8;
pub const GNTPIN_HSTR_MASK: u32 = 0xFF << 8;
pub const GNTPIN_DEVW_MASK: u32 = 0xFF << 16;
/// A pin count about to overflow (any byte's top bit).
pub const GNTPIN_OVERFLOW: u32 = 0x8080_8080;

/// How many times we retry a compare-exchange on guest-writable memory before deciding the
/// guest is misbehaving (bounded, XSA-295).
pub const GUEST_CMPXCHG_RETRIES: u32 = 5;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveEntry {
    pub pin: u32,
    /// The domain that pinned it.
    pub domid: DomId,
    /// The granted frame (in the granting domain) and its machine frame.
    pub gfn: u64,
    pub mfn: Mfn,
}

pub struct GtState {
    pub version: u32,
    frames: Vec<Mfn>,
    active: Vec<ActiveEntry>,
    /// The frames were released at domain destruction (only pins of other domains remain).
    destroyed: bool,
}

impl GtState {
    pub fn nr_frames(&self) -> u32 {
        self.frames.len() as u32
    }
    pub fn nr_entries(&self) -> u32 {
        self.frames.len() as u32 * GRANT_ENTRIES_V1_PER_FRAME
    }
    pub fn frame(&self, idx: usize) -> Option<Mfn> {
        self.frames.get(idx).copied()
    }
    pub fn frames(&self) -> &[Mfn] {
        &self.frames
    }
    pub fn active(&self, gref: u32) -> Option<&ActiveEntry> {
        self.active.get(gref as usize)
    }
    pub fn active_mut(&mut self, gref: u32) -> Option<&mut ActiveEntry> {
        self.active.get_mut(gref as usize)
    }
    pub fn active_entries(&self) -> &[ActiveEntry] {
        &self.active
    }
    pub fn is_destroyed(&self) -> bool {
        self.destroyed
    }
    /// Machine address of shared entry `gref` (bounds-checked by the caller).
    pub fn entry_addr(&self, gref: u32) -> Option<u64> {
        let f = self.frames.get((gref / GRANT_ENTRIES_V1_PER_FRAME) as usize)?;
        (!self.destroyed).then(|| f.addr() + (gref % GRANT_ENTRIES_V1_PER_FRAME) as u64 * 8)
    }
}

/// One of a domain's own grant mappings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaptrackEntry {
    /// `GNTMAP_*` flags still mapped; 0 = free slot.
    pub flags: u32,
    pub domid: DomId,
    pub gref: u32,
}

pub struct Maptrack {
    entries: Vec<MaptrackEntry>,
    free: Vec<u32>,
    limit: u32,
}

impl Maptrack {
    pub fn get(&self, handle: u32) -> Option<MaptrackEntry> {
        self.entries.get(handle as usize).copied().filter(|e| e.flags != 0)
    }
    pub fn in_use(&self) -> impl Iterator<Item = (u32, MaptrackEntry)> + '_ {
        self.entries.iter().enumerate().filter(|(_, e)| e.flags != 0).map(|(i, e)| (i as u32, *e))
    }
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

pub struct GrantTable {
    owner: DomId,
    max_frames: u32,
    state: RwLock<GtState>,
    maptrack: Mutex<Maptrack>,
}

impl GrantTable {
    /// A v1 table with `INITIAL_NR_GRANT_FRAMES` frames. `max_maptrack` bounds the number of
    /// grants this domain may map at once.
    pub fn new(mm: &Mm, owner: DomId, max_frames: u32, max_maptrack: u32) -> Result<GrantTable> {
        if max_frames < INITIAL_NR_GRANT_FRAMES {
            return Err(Errno::EINVAL);
        }
        let gt = GrantTable {
            owner,
            max_frames,
            state: RwLock::new(
                rank::GRANT,
                GtState { version: 1, frames: Vec::new(), active: Vec::new(), destroyed: false },
            ),
            maptrack: Mutex::new(
                rank::MAPTRACK,
                Maptrack { entries: Vec::new(), free: Vec::new(), limit: max_maptrack },
            ),
        };
        gt.grow(mm, &mut gt.state.write(), INITIAL_NR_GRANT_FRAMES)?;
        Ok(gt)
    }

    pub fn owner(&self) -> DomId {
        self.owner
    }
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// The grant-table lock (read side).
    pub fn read(&self) -> RwLockReadGuard<'_, GtState> {
        self.state.read()
    }
    /// The grant-table lock (write side). Lock order: taken *before* any P2M lock.
    pub fn write(&self) -> RwLockWriteGuard<'_, GtState> {
        self.state.write()
    }

    /// Grow to `nr` frames (no-op if already that big). Frames are zeroed xenheap pages shared
    /// read-write with the owner.
    pub fn grow(&self, mm: &Mm, st: &mut GtState, nr: u32) -> Result<()> {
        if nr > self.max_frames || st.destroyed {
            return Err(Errno::EINVAL);
        }
        while st.nr_frames() < nr {
            let f = mm.alloc_xenheap()?;
            mm.share_with_guest(f, self.owner, false);
            st.frames.push(f);
            st.active.resize(st.nr_entries() as usize, ActiveEntry::default());
        }
        Ok(())
    }

    /// First half of mapping shared frame `idx` into the guest: grows the table if needed and
    /// returns the frame with the grant-table write lock still held; the caller inserts the
    /// P2M entry and then drops the guard (XSA-486: the lock covers the whole operation).
    pub fn map_frame_begin(&self, mm: &Mm, idx: u64) -> Result<(RwLockWriteGuard<'_, GtState>, Mfn)> {
        let mut st = self.state.write();
        if st.destroyed {
            return Err(Errno::EINVAL);
        }
        // v1 has no status frames: an index with XENMAPIDX_grant_table_status set is simply
        // out of range.
        if idx >= self.max_frames as u64 {
            return Err(Errno::EINVAL);
        }
        if idx >= st.nr_frames() as u64 {
            // Like Xen, a failed growth is reported as an invalid index.
            self.grow(mm, &mut st, idx as u32 + 1).map_err(|_| Errno::EINVAL)?;
        }
        let mfn = st.frames[idx as usize];
        Ok((st, mfn))
    }

    pub fn maptrack(&self) -> crate::sync::MutexGuard<'_, Maptrack> {
        self.maptrack.lock()
    }

    /// Reserve a maptrack handle (its entry stays free until `set_handle`).
    pub fn get_handle(&self) -> Option<u32> {
        let mut mt = self.maptrack.lock();
        if let Some(h) = mt.free.pop() {
            return Some(h);
        }
        if mt.entries.len() as u32 >= mt.limit {
            return None;
        }
        mt.entries.push(MaptrackEntry::default());
        Some(mt.entries.len() as u32 - 1)
    }

    pub fn set_handle(&self, handle: u32, e: MaptrackEntry) {
        if let Some(slot) = self.maptrack.lock().entries.get_mut(handle as usize) {
            *slot = e;
        }
    }

    /// Return a handle (its mapping fully gone) to the free list.
    pub fn put_handle(&self, handle: u32) {
        let mut mt = self.maptrack.lock();
        if let Some(slot) = mt.entries.get_mut(handle as usize) {
            *slot = MaptrackEntry::default();
            mt.free.push(handle);
        }
    }

    /// Take every live handle out of the maptrack (domain teardown).
    pub fn drain_handles(&self) -> Vec<(u32, MaptrackEntry)> {
        let mut mt = self.maptrack.lock();
        let live: Vec<_> = mt.in_use().collect();
        mt.entries.clear();
        mt.free.clear();
        live
    }

    /// Release the shared frames at domain destruction: each frame's allocation reference is
    /// dropped (a frame someone else still maps stays until they unmap it).
    pub fn destroy(&self, mm: &Mm) {
        let mut st = self.state.write();
        if st.destroyed {
            return;
        }
        st.destroyed = true;
        for &f in &st.frames {
            mm.put_alloc_ref(f);
        }
    }
}

/// Set `GTF_reading` (and `GTF_writing` unless `readonly`) in shared entry `gref` of `rd`,
/// checking the entry grants access to `ldom` (Xen's `_set_status_v1`). `pinned` says the
/// active entry is already pinned, in which case the type and domid were checked before.
pub fn set_status(
    mm: &Mm,
    st: &GtState,
    gref: u32,
    ldom: DomId,
    readonly: bool,
    pinned: bool,
) -> core::result::Result<(), GntSt> {
    let addr = st.entry_addr(gref).ok_or(GntSt::GENERAL_ERROR)?;
    // flags (u16) and domid (u16) are updated together as one 32-bit word.
    let word = mm.phys.atomic_u32(addr);
    let mut cur = word.load(Ordering::Acquire);
    for _ in 0..GUEST_CMPXCHG_RETRIES {
        let (flags, domid) = (cur as u16, (cur >> 16) as u16);
        if !pinned && ((flags & (GTF_TYPE_MASK | GTF_SUB_PAGE)) != GTF_PERMIT_ACCESS || domid != ldom) {
            return Err(GntSt::GENERAL_ERROR);
        }
        let mut new = flags | GTF_READING;
        if !readonly {
            if flags & GTF_READONLY != 0 {
                return Err(GntSt::GENERAL_ERROR);
            }
            new |= GTF_WRITING;
        }
        let want = (cur & 0xFFFF_0000) | new as u32;
        match word.compare_exchange(cur, want, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
    // The guest keeps changing the entry under us.
    Err(GntSt::GENERAL_ERROR)
}

/// Clear `mask` in the flags of shared entry `gref`, with a bounded loop (XSA-295). A guest
/// that prevents it only leaves its own flags set.
pub fn clear_flags(mm: &Mm, st: &GtState, gref: u32, mask: u16) {
    let Some(addr) = st.entry_addr(gref) else { return };
    let flags = mm.phys.atomic_u16(addr);
    let mut cur = flags.load(Ordering::Acquire);
    for _ in 0..GUEST_CMPXCHG_RETRIES * 4 {
        match flags.compare_exchange(cur, cur & !mask, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(now) => cur = now,
        }
    }
    crate::guest_log!(log::Level::Warn, "grant entry {gref}: guest keeps rewriting its flags, {mask:#x} left set");
}

/// The `frame` field of v1 shared entry `gref`.
pub fn entry_frame(mm: &Mm, st: &GtState, gref: u32) -> Option<u32> {
    st.entry_addr(gref).map(|a| mm.phys.atomic_u32(a + 4).load(Ordering::Acquire))
}

/// The `flags` field of v1 shared entry `gref`.
pub fn entry_flags(mm: &Mm, st: &GtState, gref: u32) -> u16 {
    st.entry_addr(gref).map_or(0, |a| mm.phys.atomic_u16(a).load(Ordering::Acquire))
}
