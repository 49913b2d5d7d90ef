//! The frame table: one 16-byte [`PageInfo`] per machine frame.
//!
//! `type_info` keeps Xen's arm64 layout (bit 63 type, bits 62:61 a 2-bit type count, bits 60:0
//! the GFN at which a xenheap page is mapped in its guest, all-ones meaning "not mapped").
//! `count_info` packs everything else:
//!
//! ```text
//!  63      ALLOCATED  the owner's allocation reference is held (counted in the refcount)
//!  62      XEN_HEAP   a hypervisor page (grant frame, shared_info, P2M table, ...)
//!  61:60   state      0 unmanaged (never given to the allocator), 1 free block head,
//!                     2 free block tail, 3 in use
//!  in use:     59:44 owner domain id          43:0 reference count
//!  free head:  59:54 block order              53:0 previous free block (frame index + 1, 0 = none)
//! ```
//!
//! A free block head's `type_info` holds the next free block (frame index + 1), so the buddy
//! allocator's lists live in the table itself: no side arrays, no extra memory.
//!
//! The xenheap GFN is protected by the P2M lock of the page's owner: [`FrameTable::xenheap_gfn`]
//! and [`FrameTable::set_xenheap_gfn`] demand a witness that the caller holds that lock.

use crate::sync::{AtomicU64, Ordering};
use crate::types::{DomId, Gfn, Mfn};
use alloc::boxed::Box;
use core::ops::Deref;

// ---- type_info (Xen's arm64 layout) ---------------------------------------------------------

/// Bit 63: the type (0 = none, 1 = writable page).
pub const PGT_TYPE_MASK: u64 = 1 << 63;
pub const PGT_NONE: u64 = 0;
pub const PGT_WRITABLE_PAGE: u64 = 1 << 63;
/// Bits 62:61: a 2-bit type count.
pub const PGT_COUNT_SHIFT: u32 = 61;
pub const PGT_COUNT_MASK: u64 = 3 << PGT_COUNT_SHIFT;
/// Bits 60:0: the GFN of a mapped xenheap page.
pub const PGT_GFN_WIDTH: u32 = 61;
pub const PGT_GFN_MASK: u64 = (1 << PGT_GFN_WIDTH) - 1;
/// The "not mapped" pattern, 2^61 - 1.
pub const PGT_INVALID_XENHEAP_GFN: u64 = PGT_GFN_MASK;
/// What every newly allocated page's `type_info` starts as.
pub const PGT_TYPE_INFO_INITIALIZER: u64 = PGT_INVALID_XENHEAP_GFN;

// ---- count_info ------------------------------------------------------------------------------

pub const PGC_ALLOCATED: u64 = 1 << 63;
pub const PGC_XEN_HEAP: u64 = 1 << 62;
const STATE_SHIFT: u32 = 60;
const STATE_MASK: u64 = 3 << STATE_SHIFT;
const OWNER_SHIFT: u32 = 44;
const OWNER_MASK: u64 = 0xFFFF << OWNER_SHIFT;
/// The reference count, bits 43:0.
pub const PGC_COUNT_MASK: u64 = (1 << OWNER_SHIFT) - 1;
const ORDER_SHIFT: u32 = 54;
const ORDER_MASK: u64 = 0x3F << ORDER_SHIFT;
const LINK_MASK: u64 = (1 << ORDER_SHIFT) - 1;

/// Allocation state of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FrameState {
    /// Not handed to the allocator: the hypervisor image, boot modules, reserved memory, or
    /// memory assigned directly at boot (a direct-mapped dom0's RAM, until it is freed).
    Unmanaged = 0,
    FreeHead = 1,
    FreeTail = 2,
    InUse = 3,
}

impl FrameState {
    fn of(count_info: u64) -> Self {
        match (count_info & STATE_MASK) >> STATE_SHIFT {
            0 => FrameState::Unmanaged,
            1 => FrameState::FreeHead,
            2 => FrameState::FreeTail,
            _ => FrameState::InUse,
        }
    }
    const fn bits(self) -> u64 {
        (self as u64) << STATE_SHIFT
    }
}

/// One machine frame's record.
#[derive(Debug)]
#[repr(C)]
pub struct PageInfo {
    count_info: AtomicU64,
    type_info: AtomicU64,
}

#[cfg(not(loom))]
static_assertions::const_assert!(core::mem::size_of::<PageInfo>() <= 16);

impl PageInfo {
    pub fn new() -> Self {
        PageInfo { count_info: AtomicU64::new(0), type_info: AtomicU64::new(0) }
    }
    pub fn count_info(&self) -> u64 {
        self.count_info.load(Ordering::Acquire)
    }
    pub fn type_info(&self) -> u64 {
        self.type_info.load(Ordering::Acquire)
    }
    pub fn state(&self) -> FrameState {
        FrameState::of(self.count_info())
    }
    pub fn is_xen_heap(&self) -> bool {
        let c = self.count_info();
        FrameState::of(c) == FrameState::InUse && c & PGC_XEN_HEAP != 0
    }
    /// The owner of an in-use page.
    pub fn owner(&self) -> Option<DomId> {
        let c = self.count_info();
        (FrameState::of(c) == FrameState::InUse).then_some(((c & OWNER_MASK) >> OWNER_SHIFT) as DomId)
    }
    pub fn refcount(&self) -> u64 {
        self.count_info() & PGC_COUNT_MASK
    }
}

impl Default for PageInfo {
    fn default() -> Self {
        Self::new()
    }
}

/// Witness that the caller holds the P2M lock (read or write side) of domain `p2m_owner()`.
/// Implemented only by the P2M lock guards.
pub trait P2mLocked {
    fn p2m_owner(&self) -> DomId;
}
/// Witness that the caller holds the P2M *write* lock of domain `p2m_owner()`.
pub trait P2mWriteLocked: P2mLocked {}

/// Why a reference could not be taken.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RefError {
    /// Not an in-use frame, or a frame outside the table.
    NotInUse,
    /// In use by another owner.
    WrongOwner,
    /// The page is being freed (count 0).
    Dying,
    /// The count would overflow.
    Overflow,
}

/// What dropping a reference did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Put {
    /// Other references remain.
    Alive,
    /// That was the last one: the caller must free the page (see `Mm::put_page`).
    Last { owner: DomId, xen_heap: bool },
}

enum Storage {
    Owned(Box<[PageInfo]>),
    Static(&'static [PageInfo]),
}

/// The frame table: covers frames `[base, base + len)`.
pub struct FrameTable {
    base: Mfn,
    pages: Storage,
}

impl Deref for FrameTable {
    type Target = [PageInfo];
    fn deref(&self) -> &[PageInfo] {
        match &self.pages {
            Storage::Owned(b) => b,
            Storage::Static(s) => s,
        }
    }
}

impl FrameTable {
    /// A table allocated on the Rust heap (host tests, small machines).
    pub fn new(base: Mfn, frames: u64) -> Self {
        let pages = (0..frames).map(|_| PageInfo::new()).collect::<Box<[_]>>();
        FrameTable { base, pages: Storage::Owned(pages) }
    }

    /// A table in memory the boot code carved out of RAM and zeroed (a zeroed `PageInfo` is
    /// a valid "unmanaged" record).
    pub fn from_static(base: Mfn, pages: &'static [PageInfo]) -> Self {
        FrameTable { base, pages: Storage::Static(pages) }
    }

    pub fn base(&self) -> Mfn {
        self.base
    }
    pub fn end(&self) -> Mfn {
        Mfn(self.base.0 + self.len() as u64)
    }
    pub fn covers(&self, mfn: Mfn) -> bool {
        mfn.0 >= self.base.0 && mfn.0 < self.end().0
    }
    pub fn page(&self, mfn: Mfn) -> Option<&PageInfo> {
        if self.covers(mfn) { Some(&self[(mfn.0 - self.base.0) as usize]) } else { None }
    }
    fn pg(&self, mfn: Mfn) -> &PageInfo {
        self.page(mfn).unwrap_or_else(|| panic!("frame {:#x} outside the frame table", mfn.0))
    }
    /// Is `mfn` a RAM frame the table tracks and that is in use (Xen's `mfn_valid` + in use)?
    pub fn is_in_use(&self, mfn: Mfn) -> bool {
        self.page(mfn).is_some_and(|p| p.state() == FrameState::InUse)
    }
    pub fn is_xen_heap(&self, mfn: Mfn) -> bool {
        self.page(mfn).is_some_and(|p| p.is_xen_heap())
    }
    pub fn owner(&self, mfn: Mfn) -> Option<DomId> {
        self.page(mfn).and_then(|p| p.owner())
    }

    // ---- xenheap GFN ------------------------------------------------------------------------

    /// The GFN at which xenheap page `mfn` is mapped in its owner, or `None` if not mapped.
    /// The caller holds the owner's P2M lock.
    pub fn xenheap_gfn(&self, mfn: Mfn, lock: &impl P2mLocked) -> Option<Gfn> {
        let p = self.pg(mfn);
        debug_assert!(p.is_xen_heap(), "xenheap_gfn of a non-xenheap frame {:#x}", mfn.0);
        debug_assert_eq!(p.owner(), Some(lock.p2m_owner()), "GFN read under a foreign P2M lock");
        Self::decode_gfn(p.type_info())
    }

    /// Record (`Some`) or clear (`None`) the GFN of xenheap page `mfn`. Replaces bits 60:0 only,
    /// with a compare-exchange loop, so concurrent type/count updates are never lost.
    /// The caller holds the owner's P2M write lock.
    pub fn set_xenheap_gfn(&self, mfn: Mfn, gfn: Option<Gfn>, lock: &impl P2mWriteLocked) {
        let p = self.pg(mfn);
        debug_assert!(p.is_xen_heap(), "set_xenheap_gfn of a non-xenheap frame {:#x}", mfn.0);
        debug_assert_eq!(p.owner(), Some(lock.p2m_owner()), "GFN written under a foreign P2M lock");
        let bits = match gfn {
            Some(g) => {
                assert!(g.0 < PGT_INVALID_XENHEAP_GFN, "GFN {:#x} does not fit type_info", g.0);
                g.0
            }
            None => PGT_INVALID_XENHEAP_GFN,
        };
        let _ = p.type_info.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| Some((t & !PGT_GFN_MASK) | bits));
    }

    /// The P2M dropped an entry mapping `mfn`: if it is a xenheap page, forget its GFN. One
    /// frame-table lookup for the test and the update. The caller holds the owner's P2M write
    /// lock.
    pub fn clear_xenheap_gfn(&self, mfn: Mfn, lock: &impl P2mWriteLocked) {
        let Some(p) = self.page(mfn).filter(|p| p.is_xen_heap()) else { return };
        debug_assert_eq!(p.owner(), Some(lock.p2m_owner()), "GFN cleared under a foreign P2M lock");
        // "No GFN" is all ones in the GFN bits: setting them leaves the other bits alone.
        const _: () = assert!(PGT_INVALID_XENHEAP_GFN == PGT_GFN_MASK);
        p.type_info.fetch_or(PGT_GFN_MASK, Ordering::AcqRel);
    }

    /// The stored GFN without any lock: only for the audit and diagnostics, which must not
    /// draw conclusions from it unless they hold the owner's P2M lock.
    pub fn xenheap_gfn_unlocked(&self, mfn: Mfn) -> Option<Gfn> {
        Self::decode_gfn(self.pg(mfn).type_info())
    }

    fn decode_gfn(type_info: u64) -> Option<Gfn> {
        let g = type_info & PGT_GFN_MASK;
        (g != PGT_INVALID_XENHEAP_GFN).then_some(Gfn(g))
    }

    /// Give xenheap page `mfn` to `owner`, pinned writable (or read-only) with a type count
    /// of 1. Only the type and count bits change: the GFN bits are preserved atomically.
    pub fn share_xenheap_with_guest(&self, mfn: Mfn, owner: DomId, readonly: bool) {
        let p = self.pg(mfn);
        let ty = if readonly { PGT_NONE } else { PGT_WRITABLE_PAGE };
        let _ = p.type_info.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
            Some((t & !(PGT_TYPE_MASK | PGT_COUNT_MASK)) | ty | (1 << PGT_COUNT_SHIFT))
        });
        // Publish the owner after the type: a reader that sees the new owner sees the type.
        let _ = p.count_info.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
            debug_assert!(FrameState::of(c) == FrameState::InUse && c & PGC_XEN_HEAP != 0);
            Some((c & !OWNER_MASK) | ((owner as u64) << OWNER_SHIFT))
        });
    }

    // ---- reference counting ----------------------------------------------------------------

    /// Take a reference on an in-use page owned by `owner` (Xen's `get_page`).
    pub fn get_page(&self, mfn: Mfn, owner: DomId) -> core::result::Result<(), RefError> {
        self.take_ref(mfn, Some(owner)).map(|_| ())
    }

    /// Take a reference whatever the owner; returns the owner (Xen's
    /// `page_get_owner_and_reference`).
    pub fn get_page_any_owner(&self, mfn: Mfn) -> core::result::Result<DomId, RefError> {
        self.take_ref(mfn, None)
    }

    fn take_ref(&self, mfn: Mfn, want: Option<DomId>) -> core::result::Result<DomId, RefError> {
        let p = self.page(mfn).ok_or(RefError::NotInUse)?;
        let mut c = p.count_info();
        loop {
            if FrameState::of(c) != FrameState::InUse {
                return Err(RefError::NotInUse);
            }
            let owner = ((c & OWNER_MASK) >> OWNER_SHIFT) as DomId;
            if want.is_some_and(|w| w != owner) {
                return Err(RefError::WrongOwner);
            }
            match c & PGC_COUNT_MASK {
                0 => return Err(RefError::Dying),
                PGC_COUNT_MASK => return Err(RefError::Overflow),
                _ => {}
            }
            match p.count_info.compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(owner),
                Err(now) => c = now,
            }
        }
    }

    /// Drop a reference. Dropping a reference that is not held (count 0, or a page that is
    /// not in use) is a hypervisor bug and panics.
    pub fn put_page(&self, mfn: Mfn) -> Put {
        let p = self.pg(mfn);
        let prev = p
            .count_info
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (FrameState::of(c) == FrameState::InUse && c & PGC_COUNT_MASK != 0).then(|| c - 1)
            })
            .unwrap_or_else(|c| panic!("put_page({:#x}) without a reference: count_info {c:#x}", mfn.0));
        Self::put_result(prev - 1)
    }

    /// Drop the owner's allocation reference if it is still held (Xen's
    /// `put_page_alloc_ref`). Returns `None` if it was already dropped.
    pub fn put_alloc_ref(&self, mfn: Mfn) -> Option<Put> {
        let p = self.pg(mfn);
        let prev = p
            .count_info
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (FrameState::of(c) == FrameState::InUse && c & PGC_ALLOCATED != 0).then(|| {
                    assert!(c & PGC_COUNT_MASK != 0, "allocated page {:#x} with count 0", mfn.0);
                    (c & !PGC_ALLOCATED) - 1
                })
            })
            .ok()?;
        Some(Self::put_result((prev & !PGC_ALLOCATED) - 1))
    }

    fn put_result(now: u64) -> Put {
        if now & PGC_COUNT_MASK == 0 {
            Put::Last { owner: ((now & OWNER_MASK) >> OWNER_SHIFT) as DomId, xen_heap: now & PGC_XEN_HEAP != 0 }
        } else {
            Put::Alive
        }
    }

    // ---- allocator interface (used by the heap, under the heap lock) --------------------------

    /// Mark a frame in use: allocated, one reference, owned by `owner`, "not mapped" GFN.
    pub(crate) fn init_in_use(&self, mfn: Mfn, owner: DomId, xen_heap: bool) {
        let p = self.pg(mfn);
        p.type_info.store(PGT_TYPE_INFO_INITIALIZER, Ordering::Relaxed);
        let heap = if xen_heap { PGC_XEN_HEAP } else { 0 };
        p.count_info.store(
            PGC_ALLOCATED | heap | FrameState::InUse.bits() | ((owner as u64) << OWNER_SHIFT) | 1,
            Ordering::Release,
        );
    }

    pub(crate) fn set_free_tail(&self, mfn: Mfn) {
        let p = self.pg(mfn);
        p.type_info.store(0, Ordering::Relaxed);
        p.count_info.store(FrameState::FreeTail.bits(), Ordering::Release);
    }

    /// Link index of a frame: its position in the table plus one (0 means "none").
    pub(crate) fn link_of(&self, mfn: Mfn) -> u64 {
        mfn.0 - self.base.0 + 1
    }
    pub(crate) fn mfn_of_link(&self, link: u64) -> Option<Mfn> {
        (link != 0).then(|| Mfn(self.base.0 + link - 1))
    }

    /// Order of a free block head, or `None` if `mfn` is not one.
    pub(crate) fn free_head_order(&self, mfn: Mfn) -> Option<u32> {
        let c = self.page(mfn)?.count_info();
        (FrameState::of(c) == FrameState::FreeHead).then_some(((c & ORDER_MASK) >> ORDER_SHIFT) as u32)
    }

    pub(crate) fn set_free_head(&self, mfn: Mfn, order: u32, prev: u64, next: u64) {
        debug_assert!(prev <= LINK_MASK && order < 64);
        let p = self.pg(mfn);
        p.type_info.store(next, Ordering::Relaxed);
        p.count_info.store(FrameState::FreeHead.bits() | ((order as u64) << ORDER_SHIFT) | prev, Ordering::Release);
    }
    pub(crate) fn free_links(&self, mfn: Mfn) -> (u64, u64) {
        let p = self.pg(mfn);
        (p.count_info() & LINK_MASK, p.type_info())
    }
    pub(crate) fn set_free_prev(&self, mfn: Mfn, prev: u64) {
        let p = self.pg(mfn);
        let c = p.count_info();
        p.count_info.store((c & !LINK_MASK) | prev, Ordering::Release);
    }
    pub(crate) fn set_free_next(&self, mfn: Mfn, next: u64) {
        self.pg(mfn).type_info.store(next, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Locked(DomId);
    impl P2mLocked for Locked {
        fn p2m_owner(&self) -> DomId {
            self.0
        }
    }
    impl P2mWriteLocked for Locked {}

    #[test]
    fn page_info_is_16_bytes_and_xen_layout_constants() {
        assert_eq!(core::mem::size_of::<PageInfo>(), 16);
        assert_eq!(PGT_INVALID_XENHEAP_GFN, 0x1FFF_FFFF_FFFF_FFFF);
        assert_eq!(PGT_COUNT_MASK, 0x6000_0000_0000_0000);
        assert_eq!(PGT_TYPE_MASK, 0x8000_0000_0000_0000);
    }

    #[test]
    fn new_pages_start_not_mapped_and_gfn_round_trips() {
        let ft = FrameTable::new(Mfn(0x100), 4);
        ft.init_in_use(Mfn(0x101), 3, true);
        let lock = Locked(3);
        assert_eq!(ft.page(Mfn(0x101)).unwrap().type_info(), PGT_INVALID_XENHEAP_GFN);
        assert_eq!(ft.xenheap_gfn(Mfn(0x101), &lock), None);
        ft.set_xenheap_gfn(Mfn(0x101), Some(Gfn(0x4_0000)), &lock);
        assert_eq!(ft.xenheap_gfn(Mfn(0x101), &lock), Some(Gfn(0x4_0000)));
        ft.set_xenheap_gfn(Mfn(0x101), None, &lock);
        assert_eq!(ft.xenheap_gfn(Mfn(0x101), &lock), None);
    }

    #[test]
    fn share_keeps_gfn_and_set_gfn_keeps_type() {
        let ft = FrameTable::new(Mfn(0), 2);
        ft.init_in_use(Mfn(1), xen_abi::DOMID_XEN, true);
        ft.share_xenheap_with_guest(Mfn(1), 7, false);
        let lock = Locked(7);
        ft.set_xenheap_gfn(Mfn(1), Some(Gfn(42)), &lock);
        let t = ft.page(Mfn(1)).unwrap().type_info();
        assert_eq!(t & PGT_TYPE_MASK, PGT_WRITABLE_PAGE);
        assert_eq!((t & PGT_COUNT_MASK) >> PGT_COUNT_SHIFT, 1);
        assert_eq!(t & PGT_GFN_MASK, 42);
        // sharing again (e.g. read-only) leaves the GFN alone
        ft.share_xenheap_with_guest(Mfn(1), 7, true);
        let t = ft.page(Mfn(1)).unwrap().type_info();
        assert_eq!(t & PGT_TYPE_MASK, PGT_NONE);
        assert_eq!(t & PGT_GFN_MASK, 42);
        assert_eq!(ft.owner(Mfn(1)), Some(7));
    }

    #[test]
    fn refcounts_refuse_wrong_owner_freed_and_overflow() {
        let ft = FrameTable::new(Mfn(0), 2);
        assert_eq!(ft.get_page(Mfn(0), 1), Err(RefError::NotInUse));
        assert_eq!(ft.get_page(Mfn(9), 1), Err(RefError::NotInUse));
        ft.init_in_use(Mfn(0), 1, false);
        assert_eq!(ft.get_page(Mfn(0), 2), Err(RefError::WrongOwner));
        assert_eq!(ft.get_page(Mfn(0), 1), Ok(()));
        assert_eq!(ft.page(Mfn(0)).unwrap().refcount(), 2);
        assert_eq!(ft.put_page(Mfn(0)), Put::Alive);
        assert_eq!(ft.put_alloc_ref(Mfn(0)), Some(Put::Last { owner: 1, xen_heap: false }));
        assert_eq!(ft.put_alloc_ref(Mfn(0)), None, "allocation reference dropped twice");
        // count 0 but not yet returned to the heap: no new references
        assert_eq!(ft.get_page(Mfn(0), 1), Err(RefError::Dying));
        // overflow
        ft.init_in_use(Mfn(1), 1, false);
        let p = ft.page(Mfn(1)).unwrap();
        p.count_info.fetch_add(PGC_COUNT_MASK - 1, Ordering::Relaxed);
        assert_eq!(ft.get_page(Mfn(1), 1), Err(RefError::Overflow));
        assert_eq!(ft.get_page_any_owner(Mfn(1)), Err(RefError::Overflow));
    }

    #[test]
    #[should_panic(expected = "without a reference")]
    fn put_of_a_free_page_panics() {
        let ft = FrameTable::new(Mfn(0), 1);
        ft.put_page(Mfn(0));
    }
}
