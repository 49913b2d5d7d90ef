//! Access to the contents of machine frames.
//!
//! On the image the EL2 stage-1 tables map all RAM at VA == PA, so the offset is 0; host tests
//! back a simulated RAM arena with a heap buffer and use its address as the offset. Either way
//! the same code runs. Memory shared with guests (grant frames, guest pages) is only ever
//! touched through raw pointers and atomics here: no Rust reference to guest-writable memory
//! is ever created.

use crate::types::{Mfn, PAGE_SIZE};
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};

#[derive(Clone, Copy, Debug)]
pub struct PhysMap {
    offset: usize,
    first: u64,
    end: u64,
}

impl PhysMap {
    /// # Safety
    /// For every physical address `pa` in `[first, end)`, `pa + offset` must be a valid,
    /// writable address in this address space for as long as the map is used.
    pub const unsafe fn new(offset: usize, first: u64, end: u64) -> Self {
        PhysMap { offset, first, end }
    }

    pub fn contains(&self, pa: u64, len: u64) -> bool {
        pa >= self.first && pa.checked_add(len).is_some_and(|e| e <= self.end)
    }

    fn ptr(&self, pa: u64, len: u64) -> *mut u8 {
        assert!(self.contains(pa, len), "physical access {pa:#x}+{len:#x} outside RAM");
        (pa as usize).wrapping_add(self.offset) as *mut u8
    }

    pub fn zero_frame(&self, mfn: Mfn) {
        let p = self.ptr(mfn.addr(), PAGE_SIZE);
        // SAFETY: `p` covers one frame inside the map (checked above).
        unsafe { core::ptr::write_bytes(p, 0, PAGE_SIZE as usize) }
    }

    pub fn read(&self, pa: u64, dst: &mut [u8]) {
        let p = self.ptr(pa, dst.len() as u64);
        // SAFETY: the source range is inside the map; `dst` is ours. Guest memory may change
        // under us: we copy bytes, never form a reference to it.
        unsafe { core::ptr::copy(p, dst.as_mut_ptr(), dst.len()) }
    }

    pub fn write(&self, pa: u64, src: &[u8]) {
        let p = self.ptr(pa, src.len() as u64);
        // SAFETY: the destination range is inside the map.
        unsafe { core::ptr::copy(src.as_ptr(), p, src.len()) }
    }

    /// `memmove` between two physical ranges (they may overlap).
    pub fn copy(&self, dst: u64, src: u64, len: u64) {
        let (d, s) = (self.ptr(dst, len), self.ptr(src, len));
        // SAFETY: both ranges are inside the map; `copy` tolerates overlap.
        unsafe { core::ptr::copy(s, d, len as usize) }
    }

    pub fn atomic_u64(&self, pa: u64) -> &AtomicU64 {
        assert_eq!(pa % 8, 0);
        // SAFETY: aligned, inside the map, and only ever accessed atomically by us.
        unsafe { AtomicU64::from_ptr(self.ptr(pa, 8) as *mut u64) }
    }
    pub fn atomic_u32(&self, pa: u64) -> &AtomicU32 {
        assert_eq!(pa % 4, 0);
        // SAFETY: as for `atomic_u64`.
        unsafe { AtomicU32::from_ptr(self.ptr(pa, 4) as *mut u32) }
    }
    pub fn atomic_u16(&self, pa: u64) -> &AtomicU16 {
        assert_eq!(pa % 2, 0);
        // SAFETY: as for `atomic_u64`.
        unsafe { AtomicU16::from_ptr(self.ptr(pa, 2) as *mut u16) }
    }
}
