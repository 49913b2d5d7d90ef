//! The Rust global allocator (`Box`, `Arc`, `Vec` of the portable core): a linked-list heap over
//! an arena carved from boot memory. Page frames (guest RAM, P2M tables, grant frames) come
//! from the frame-table buddy allocator instead (`mm.heap`).

use crate::sync::{Mutex, rank};
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{NonNull, null_mut};
use linked_list_allocator::Heap;

struct Allocator(Mutex<Heap>);

// SAFETY: `Heap` hands out disjoint blocks of the arena it was given; the mutex serialises it.
unsafe impl GlobalAlloc for Allocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().allocate_first_fit(layout).map_or(null_mut(), |p| p.as_ptr())
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc contract).
            unsafe { self.0.lock().deallocate(p, layout) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Allocator = Allocator(Mutex::new(rank::ALLOCATOR, Heap::empty()));

/// Give the allocator its arena (once, MMU on).
///
/// # Safety
/// `[base, base + size)` must be mapped read-write, unused by anything else, forever.
pub unsafe fn init(base: u64, size: u64) {
    let mut h = ALLOCATOR.0.lock();
    assert!(h.size() == 0, "allocator initialised twice");
    // SAFETY: the caller gives us exclusive use of the arena.
    unsafe { h.init(base as *mut u8, size as usize) };
}

/// (bytes in use, bytes free).
pub fn usage() -> (usize, usize) {
    let h = ALLOCATOR.0.lock();
    (h.used(), h.free())
}
