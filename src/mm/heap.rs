//! A buddy allocator whose free lists are threaded through the frame table itself.
//!
//! Blocks are aligned on their size in absolute frame numbers, so a 2 MiB block is 2 MiB
//! aligned in physical memory (what stage-2 block mappings need). The heap lock is a leaf:
//! nothing is locked while it is held.

use super::frame::{FrameState, FrameTable};
use crate::sync::{Mutex, rank};
use crate::types::{DomId, Mfn};

/// Largest block: 2^18 frames = 1 GiB.
pub const MAX_ORDER: u32 = 18;

struct Buddy {
    /// Head of the free list of each order (frame link: table index + 1, 0 = empty).
    heads: [u64; MAX_ORDER as usize + 1],
    free_frames: u64,
    managed_frames: u64,
}

pub struct Heap {
    inner: Mutex<Buddy>,
}

impl Default for Heap {
    fn default() -> Self {
        Self::new()
    }
}

impl Heap {
    pub fn new() -> Self {
        Heap {
            inner: Mutex::new(
                rank::HEAP,
                Buddy { heads: [0; MAX_ORDER as usize + 1], free_frames: 0, managed_frames: 0 },
            ),
        }
    }

    pub fn free_frames(&self) -> u64 {
        self.inner.lock().free_frames
    }
    pub fn managed_frames(&self) -> u64 {
        self.inner.lock().managed_frames
    }

    /// Hand unmanaged frames `[start, start + nr)` to the allocator.
    pub fn add_range(&self, ft: &FrameTable, start: Mfn, nr: u64) {
        let mut b = self.inner.lock();
        let (mut m, end) = (start.0, start.0 + nr);
        while m < end {
            let mut order = MAX_ORDER.min(m.trailing_zeros());
            while m + (1 << order) > end {
                order -= 1;
            }
            for f in m..m + (1 << order) {
                let p = ft.page(Mfn(f)).expect("heap range outside the frame table");
                assert_eq!(p.state(), FrameState::Unmanaged, "frame {f:#x} given to the heap twice");
            }
            b.managed_frames += 1 << order;
            Self::free_locked(&mut b, ft, Mfn(m), order);
            m += 1 << order;
        }
    }

    /// Allocate a block of 2^order frames and mark every frame in use (owner `owner`, one
    /// reference, allocated, "not mapped" GFN) before the lock is dropped.
    pub fn alloc(&self, ft: &FrameTable, order: u32, owner: DomId, xen_heap: bool) -> Option<Mfn> {
        if order > MAX_ORDER {
            return None;
        }
        let mut b = self.inner.lock();
        let k = (order..=MAX_ORDER).find(|&k| b.heads[k as usize] != 0)?;
        let head = ft.mfn_of_link(b.heads[k as usize]).unwrap();
        Self::unlink(&mut b, ft, head, k);
        // Split: give back the upper halves.
        let mut k = k;
        while k > order {
            k -= 1;
            // The upper half's frames are already tails of the block being split.
            Self::push(&mut b, ft, head.add(1 << k), k);
        }
        for f in 0..(1u64 << order) {
            ft.init_in_use(head.add(f), owner, xen_heap);
        }
        b.free_frames -= 1 << order;
        Some(head)
    }

    /// Return a block whose frames are all in use with no references left.
    pub fn free(&self, ft: &FrameTable, mfn: Mfn, order: u32) {
        let mut b = self.inner.lock();
        for f in 0..(1u64 << order) {
            let p = ft.page(mfn.add(f)).expect("freeing a frame outside the table");
            assert!(
                p.state() == FrameState::InUse && p.refcount() == 0,
                "freeing frame {:#x} in state {:?} with {} references",
                mfn.0 + f,
                p.state(),
                p.refcount()
            );
        }
        Self::free_locked(&mut b, ft, mfn, order);
    }

    fn free_locked(b: &mut Buddy, ft: &FrameTable, mfn: Mfn, order: u32) {
        b.free_frames += 1 << order;
        let (mut m, mut order) = (mfn, order);
        // Every frame of the block, its head included, becomes a tail; the head of the
        // final (possibly merged) block is set by `push`.
        for f in 0..(1u64 << order) {
            ft.set_free_tail(m.add(f));
        }
        while order < MAX_ORDER {
            let buddy = Mfn(m.0 ^ (1 << order));
            if ft.free_head_order(buddy) != Some(order) {
                break;
            }
            Self::unlink(b, ft, buddy, order);
            ft.set_free_tail(buddy);
            m = Mfn(m.0.min(buddy.0));
            order += 1;
        }
        Self::push(b, ft, m, order);
    }

    /// Check the free lists against the frame table: every listed block is a free head of its
    /// order whose other frames are free tails, the lists add up to the free count, and no
    /// frame outside a listed block is marked free. Returns a description of the first fault.
    pub fn check(&self, ft: &FrameTable) -> Result<(), alloc::string::String> {
        use alloc::format;
        let b = self.inner.lock();
        let mut listed = 0u64;
        let mut in_blocks = alloc::collections::BTreeSet::new();
        for (order, &head) in b.heads.iter().enumerate() {
            let mut link = head;
            while let Some(m) = ft.mfn_of_link(link) {
                if ft.free_head_order(m) != Some(order as u32) {
                    return Err(format!("listed block {:#x} is not a free head of order {order}", m.0));
                }
                if m.0 % (1 << order) != 0 {
                    return Err(format!("block {:#x} of order {order} misaligned", m.0));
                }
                for f in 1..(1u64 << order) {
                    if ft.page(m.add(f)).map(|p| p.state()) != Some(FrameState::FreeTail) {
                        return Err(format!("frame {:#x} inside free block {:#x} is not a tail", m.0 + f, m.0));
                    }
                }
                in_blocks.insert(m.0);
                listed += 1 << order;
                link = ft.free_links(m).1;
            }
        }
        if listed != b.free_frames {
            return Err(format!("lists hold {listed} frames, counter says {}", b.free_frames));
        }
        let marked =
            ft.iter().filter(|p| matches!(p.state(), FrameState::FreeHead | FrameState::FreeTail)).count() as u64;
        if marked != listed {
            return Err(format!("{marked} frames marked free, {listed} listed"));
        }
        Ok(())
    }

    fn push(b: &mut Buddy, ft: &FrameTable, m: Mfn, order: u32) {
        let link = ft.link_of(m);
        let old = b.heads[order as usize];
        ft.set_free_head(m, order, 0, old);
        if let Some(o) = ft.mfn_of_link(old) {
            ft.set_free_prev(o, link);
        }
        b.heads[order as usize] = link;
    }

    fn unlink(b: &mut Buddy, ft: &FrameTable, m: Mfn, order: u32) {
        let (prev, next) = ft.free_links(m);
        match ft.mfn_of_link(prev) {
            Some(p) => ft.set_free_next(p, next),
            None => b.heads[order as usize] = next,
        }
        if let Some(n) = ft.mfn_of_link(next) {
            ft.set_free_prev(n, prev);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn splits_merges_and_aligns() {
        let ft = FrameTable::new(Mfn(0x1000), 1024);
        let h = Heap::new();
        h.add_range(&ft, Mfn(0x1000), 1024);
        assert_eq!(h.free_frames(), 1024);
        let a = h.alloc(&ft, 0, 1, false).unwrap();
        let b = h.alloc(&ft, 9, 1, false).unwrap();
        assert_eq!(b.0 % 512, 0, "2 MiB blocks are physically aligned");
        assert_ne!(a, b);
        assert_eq!(h.free_frames(), 1024 - 1 - 512);
        for f in 0..512 {
            ft.put_alloc_ref(b.add(f));
        }
        h.free(&ft, b, 9);
        ft.put_alloc_ref(a);
        h.free(&ft, a, 0);
        assert_eq!(h.free_frames(), 1024);
        h.check(&ft).unwrap();
        // everything merged back: a 1024-frame request... order 10 fits exactly
        let all = h.alloc(&ft, 10, 1, false).unwrap();
        assert_eq!(all, Mfn(0x1000));
        assert!(h.alloc(&ft, 0, 1, false).is_none());
    }

    #[test]
    fn freeing_in_any_order_keeps_the_lists_consistent() {
        let ft = FrameTable::new(Mfn(0x40000), 64);
        let h = Heap::new();
        h.add_range(&ft, Mfn(0x40000), 64);
        let pages: std::vec::Vec<Mfn> = (0..64).map(|_| h.alloc(&ft, 0, 1, false).unwrap()).collect();
        h.check(&ft).unwrap();
        // free even ones, then odd ones backwards: each odd frame merges into a lower buddy
        for m in pages.iter().filter(|m| m.0 % 2 == 0).chain(pages.iter().filter(|m| m.0 % 2 == 1).rev()) {
            ft.put_alloc_ref(*m);
            h.free(&ft, *m, 0);
            h.check(&ft).unwrap();
        }
        assert_eq!(h.free_frames(), 64);
        assert_eq!(h.alloc(&ft, 6, 1, false), Some(Mfn(0x40000)), "fully merged");
    }

    #[test]
    fn unaligned_ranges_are_carved_and_exhaustion_is_reported() {
        let ft = FrameTable::new(Mfn(3), 100);
        let h = Heap::new();
        h.add_range(&ft, Mfn(3), 100);
        let mut got = std::vec::Vec::new();
        while let Some(m) = h.alloc(&ft, 0, 2, false) {
            assert!(ft.covers(m));
            got.push(m.0);
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 100);
        assert_eq!(h.free_frames(), 0);
    }

    #[test]
    #[should_panic(expected = "given to the heap twice")]
    fn double_add_panics() {
        let ft = FrameTable::new(Mfn(0), 8);
        let h = Heap::new();
        h.add_range(&ft, Mfn(0), 8);
        h.add_range(&ft, Mfn(4), 2);
    }
}
