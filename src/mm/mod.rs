//! Machine memory: the frame table, the page allocator, access to frame contents, and
//! per-domain page accounting.

pub mod frame;
pub mod heap;
pub mod phys;

use crate::sync::{AtomicU64, Ordering};
use crate::tlb::TlbOps;
use crate::types::{DomId, Errno, Mfn, Result};
use alloc::boxed::Box;
use alloc::sync::Arc;
pub use frame::{FrameState, FrameTable, PageInfo, Put};
pub use heap::{Heap, MAX_ORDER};
pub use phys::PhysMap;
use xen_abi::DOMID_XEN;

/// Domain ids the accounting (and the domain table) can hold: 0 .. MAX_DOMAINS-1.
pub const MAX_DOMAINS: usize = 256;

/// Pages charged to one owner.
#[derive(Default, Debug)]
pub struct PageCount {
    /// Domheap pages (guest RAM).
    pub domheap: AtomicU64,
    /// Xenheap pages shared with the owner (grant frames, shared_info).
    pub xenheap: AtomicU64,
}

impl PageCount {
    pub fn total(&self) -> u64 {
        self.domheap.load(Ordering::Acquire) + self.xenheap.load(Ordering::Acquire)
    }
}

/// Counters the audit reports.
#[derive(Default, Debug)]
pub struct MmAudit {
    /// Xenheap pages freed while their stored GFN was still set (should stay 0: the P2M
    /// clears the GFN when it drops the mapping, and teardown relinquishes the P2M first).
    pub stale_gfn_frees: AtomicU64,
}

/// The machine's memory: everything that needs it gets a `&Mm`.
pub struct Mm {
    pub frames: FrameTable,
    pub heap: Heap,
    pub phys: PhysMap,
    pub tlb: Arc<dyn TlbOps>,
    accounts: Box<[PageCount]>,
    /// Hypervisor-internal pages (P2M tables, unshared xenheap pages).
    xen: PageCount,
    pub audit: MmAudit,
}

impl Mm {
    pub fn new(frames: FrameTable, phys: PhysMap, tlb: Arc<dyn TlbOps>) -> Self {
        Mm {
            frames,
            heap: Heap::new(),
            phys,
            tlb,
            accounts: (0..MAX_DOMAINS).map(|_| PageCount::default()).collect(),
            xen: PageCount::default(),
            audit: MmAudit::default(),
        }
    }

    fn account(&self, owner: DomId) -> &PageCount {
        self.accounts.get(owner as usize).unwrap_or(&self.xen)
    }
    /// Pages currently charged to `owner`.
    pub fn pages_of(&self, owner: DomId) -> &PageCount {
        self.account(owner)
    }
    pub fn xen_pages(&self) -> u64 {
        self.xen.total()
    }

    /// Allocate 2^order zeroed guest RAM frames for `owner` (one allocation reference each).
    pub fn alloc_domheap(&self, owner: DomId, order: u32) -> Result<Mfn> {
        debug_assert!((owner as usize) < MAX_DOMAINS);
        let m = self.heap.alloc(&self.frames, order, owner, false).ok_or(Errno::ENOMEM)?;
        for f in 0..(1u64 << order) {
            self.phys.zero_frame(m.add(f));
        }
        self.account(owner).domheap.fetch_add(1 << order, Ordering::AcqRel);
        Ok(m)
    }

    /// [`Self::alloc_domheap`], unless `owner` would then hold more than `max_pages` guest
    /// pages (Xen's over-allocation check): the count is claimed first, so concurrent
    /// allocations cannot together pass the limit.
    pub fn alloc_domheap_within(&self, owner: DomId, order: u32, max_pages: u64) -> Result<Mfn> {
        let n = 1u64 << order;
        let count = &self.account(owner).domheap;
        if count.fetch_add(n, Ordering::AcqRel).saturating_add(n) > max_pages {
            count.fetch_sub(n, Ordering::AcqRel);
            return Err(Errno::ENOMEM);
        }
        match self.heap.alloc(&self.frames, order, owner, false) {
            Some(m) => {
                for f in 0..n {
                    self.phys.zero_frame(m.add(f));
                }
                Ok(m)
            }
            None => {
                count.fetch_sub(n, Ordering::AcqRel);
                Err(Errno::ENOMEM)
            }
        }
    }

    /// Allocate one zeroed hypervisor page (owner `DOMID_XEN`, "not mapped" GFN).
    pub fn alloc_xenheap(&self) -> Result<Mfn> {
        self.alloc_xenheap_order(0)
    }

    /// Allocate 2^order zeroed, naturally aligned hypervisor pages.
    pub fn alloc_xenheap_order(&self, order: u32) -> Result<Mfn> {
        let m = self.heap.alloc(&self.frames, order, DOMID_XEN, true).ok_or(Errno::ENOMEM)?;
        for f in 0..(1u64 << order) {
            self.phys.zero_frame(m.add(f));
        }
        self.xen.xenheap.fetch_add(1 << order, Ordering::AcqRel);
        Ok(m)
    }

    /// Give a xenheap page to `owner` (Xen's `share_xen_page_with_guest`).
    pub fn share_with_guest(&self, mfn: Mfn, owner: DomId, readonly: bool) {
        debug_assert_eq!(self.frames.owner(mfn), Some(DOMID_XEN));
        self.frames.share_xenheap_with_guest(mfn, owner, readonly);
        self.xen.xenheap.fetch_sub(1, Ordering::AcqRel);
        self.account(owner).xenheap.fetch_add(1, Ordering::AcqRel);
    }

    /// Assign frames that were reserved at boot (never in the heap) to `owner`, e.g. a
    /// direct-mapped dom0's RAM. When the domain frees them they join the heap.
    pub fn assign_boot_frames(&self, start: Mfn, nr: u64, owner: DomId) {
        for f in 0..nr {
            let m = start.add(f);
            let p = self.frames.page(m).expect("boot frame outside the frame table");
            assert_eq!(p.state(), FrameState::Unmanaged, "boot frame {:#x} already managed", m.0);
            self.frames.init_in_use(m, owner, false);
        }
        self.account(owner).domheap.fetch_add(nr, Ordering::AcqRel);
    }

    /// Take a reference on a page owned by `owner`.
    pub fn get_page(&self, mfn: Mfn, owner: DomId) -> bool {
        self.frames.get_page(mfn, owner).is_ok()
    }

    /// Drop a reference; the last one frees the page.
    pub fn put_page(&self, mfn: Mfn) {
        if let Put::Last { owner, xen_heap } = self.frames.put_page(mfn) {
            self.release(mfn, owner, xen_heap);
        }
    }

    /// Drop the owner's allocation reference (if still held); the page is freed when no
    /// other reference remains. Returns false if it had already been dropped.
    pub fn put_alloc_ref(&self, mfn: Mfn) -> bool {
        match self.frames.put_alloc_ref(mfn) {
            None => false,
            Some(Put::Alive) => true,
            Some(Put::Last { owner, xen_heap }) => {
                self.release(mfn, owner, xen_heap);
                true
            }
        }
    }

    /// Free a hypervisor-internal page (P2M table, unshared xenheap page).
    pub fn free_xenheap(&self, mfn: Mfn) {
        let dropped = self.put_alloc_ref(mfn);
        debug_assert!(dropped);
    }

    /// The last reference is gone: account, audit and return the frame to the heap.
    fn release(&self, mfn: Mfn, owner: DomId, xen_heap: bool) {
        if xen_heap {
            if let Some(gfn) = self.frames.xenheap_gfn_unlocked(mfn) {
                // Must never happen (the P2M clears it when the mapping goes) but must not
                // crash the hypervisor either: count it for the audit.
                self.audit.stale_gfn_frees.fetch_add(1, Ordering::AcqRel);
                log::error!("xenheap frame {:#x} of d{owner} freed while mapped at GFN {:#x}", mfn.0, gfn.0);
            }
            self.account(owner).xenheap.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.account(owner).domheap.fetch_sub(1, Ordering::AcqRel);
        }
        self.heap.free(&self.frames, mfn, 0);
    }
}
