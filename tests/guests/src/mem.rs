//! Memory shared with the hypervisor: page buffers of our own RAM, and v1 grant frames the
//! hypervisor mapped at some GFN for us.
//!
//! The hypervisor reads and writes these behind the compiler's back (grant copies, grant
//! status flags), so they are never Rust references: every access is volatile, through raw
//! addresses (VA == PA, identity map).

use core::cell::UnsafeCell;
use core::sync::atomic::{Ordering, fence};
use xen_abi::{DomId, GrantEntryV1, XEN_PAGE_SIZE};

pub const PAGE_SIZE: u64 = XEN_PAGE_SIZE as u64;

/// `N` page-aligned pages of guest RAM (put it in a `static`; it lands in BSS).
#[repr(C, align(4096))]
pub struct Pages<const N: usize>(UnsafeCell<[[u8; XEN_PAGE_SIZE]; N]>);

// SAFETY: the pages are only accessed through volatile raw-pointer accesses on one CPU.
unsafe impl<const N: usize> Sync for Pages<N> {}

impl<const N: usize> Default for Pages<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Pages<N> {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([[0; XEN_PAGE_SIZE]; N]))
    }

    /// Address of page `i` (guest-physical = virtual).
    pub fn addr(&self, i: usize) -> u64 {
        assert!(i < N, "page {i} out of {N}");
        self.0.get() as u64 + i as u64 * PAGE_SIZE
    }

    /// Guest frame number of page `i`.
    pub fn gfn(&self, i: usize) -> u64 {
        self.addr(i) / PAGE_SIZE
    }

    fn ptr<T>(&self, i: usize, off: u64) -> *mut T {
        assert!(off + size_of::<T>() as u64 <= PAGE_SIZE && off.is_multiple_of(align_of::<T>() as u64));
        (self.addr(i) + off) as *mut T
    }

    pub fn read64(&self, i: usize, off: u64) -> u64 {
        // SAFETY: in bounds and aligned (checked by `ptr`); the page belongs to us.
        unsafe { self.ptr::<u64>(i, off).read_volatile() }
    }

    pub fn write64(&self, i: usize, off: u64, v: u64) {
        // SAFETY: as in `read64`.
        unsafe { self.ptr::<u64>(i, off).write_volatile(v) }
    }

    pub fn read8(&self, i: usize, off: u64) -> u8 {
        // SAFETY: as in `read64`.
        unsafe { self.ptr::<u8>(i, off).read_volatile() }
    }

    /// Fills page `i` with words `seed ^ (index * 0x01010101)`.
    pub fn fill(&self, i: usize, seed: u64) {
        for w in 0..PAGE_SIZE / 8 {
            self.write64(i, w * 8, seed ^ (w * 0x0101_0101));
        }
    }

    pub fn zero(&self, i: usize) {
        for w in 0..PAGE_SIZE / 8 {
            self.write64(i, w * 8, 0);
        }
    }

    /// Whether `len` bytes at (`i`, `off`) equal those at (`j`, `joff`).
    pub fn bytes_eq(&self, i: usize, off: u64, j: usize, joff: u64, len: u64) -> bool {
        (0..len).all(|k| self.read8(i, off + k) == self.read8(j, joff + k))
    }

    /// Whether `len` bytes at (`i`, `off`) are all zero.
    pub fn is_zero(&self, i: usize, off: u64, len: u64) -> bool {
        (0..len).all(|k| self.read8(i, off + k) == 0)
    }
}

/// A v1 grant-table frame (512 entries of 8 bytes) mapped at a guest address.
#[derive(Clone, Copy, Debug)]
pub struct GrantFrameV1 {
    va: u64,
}

impl GrantFrameV1 {
    /// # Safety
    /// `va` must be page aligned, outside every Rust object, and hold a grant frame mapped by
    /// the hypervisor for as long as the value is used (an access after the frame was
    /// unmapped takes a data abort, which the runtime reports as a failed run).
    pub unsafe fn at(va: u64) -> Self {
        assert!(va.is_multiple_of(PAGE_SIZE));
        Self { va }
    }

    fn entry(&self, r: u32) -> *mut u64 {
        assert!((r as usize) < XEN_PAGE_SIZE / size_of::<GrantEntryV1>());
        (self.va + r as u64 * 8) as *mut u64
    }

    /// The guest address of entry `r`.
    pub fn entry_addr(&self, r: u32) -> u64 {
        self.entry(r) as u64
    }

    /// Entry `r` as one 64-bit word (flags in bits 0..16, domid 16..32, frame 32..64).
    pub fn raw(&self, r: u32) -> u64 {
        // SAFETY: inside the mapped frame (constructor contract), 8-byte aligned.
        unsafe { self.entry(r).read_volatile() }
    }

    pub fn set_raw(&self, r: u32, v: u64) {
        // SAFETY: as in `raw`.
        unsafe { self.entry(r).write_volatile(v) }
    }

    /// The flags of entry `r` (the hypervisor updates GTF_reading/GTF_writing).
    pub fn flags(&self, r: u32) -> u16 {
        self.raw(r) as u16
    }

    /// Grants `frame` to `domid`: domid and frame are written first, the flags that make the
    /// entry live last, with barriers in between.
    pub fn grant(&self, r: u32, flags: u16, domid: DomId, frame: u32) {
        let e = self.entry(r);
        // SAFETY: as in `raw`; the flags are the first 16 bits of the entry.
        unsafe {
            e.write_volatile((frame as u64) << 32 | (domid as u64) << 16);
            fence(Ordering::SeqCst);
            (e as *mut u16).write_volatile(flags);
        }
        fence(Ordering::SeqCst);
    }

    /// Clears entry `r`.
    pub fn clear(&self, r: u32) {
        self.set_raw(r, 0);
        fence(Ordering::SeqCst);
    }
}
