//! Access to the contents of machine frames.
//!
//! On the image the EL2 stage-1 tables map all RAM at VA == PA, so the offset is 0; host tests
//! back a simulated RAM arena with a heap buffer and use its address as the offset. Either way
//! the same code runs. Memory shared with guests (grant frames, guest pages) is only ever
//! touched through raw pointers and atomics here: no Rust reference to guest-writable memory
//! is ever created.

use crate::types::{Mfn, PAGE_SIZE};
use core::mem::size_of;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64};

/// Plain data that may be copied to and from machine memory (guest memory included) byte for
/// byte.
///
/// # Safety
/// Every bit pattern must be a valid value and the type must have no implicit padding.
pub unsafe trait Pod: Copy + Default + 'static {}

macro_rules! pod {
    ($($t:ty),* $(,)?) => { $(
        // SAFETY: integers, and ABI structures whose fields are contiguous (their layout is
        // pinned by offset assertions in xen-abi) with explicit padding fields.
        unsafe impl Pod for $t {}
    )* };
}
pod!(u8, u16, u32, u64, i16, i32, i64);
pod!(
    xen_abi::XenAddToPhysmap,
    xen_abi::XenAddToPhysmapBatch,
    xen_abi::XenRemoveFromPhysmap,
    xen_abi::XenMemAcquireResource,
    xen_abi::XenMemoryReservation,
    xen_abi::XenHvmParam,
    xen_abi::SchedPoll,
    xen_abi::GrantEntryV1,
    xen_abi::GnttabSetupTable,
    xen_abi::GnttabQuerySize,
    xen_abi::GnttabMapGrantRef,
    xen_abi::GnttabUnmapGrantRef,
    xen_abi::GnttabUnmapAndReplace,
    xen_abi::GnttabSwapGrantRef,
    xen_abi::GnttabCopy,
    xen_abi::GnttabGetStatusFrames,
    xen_abi::GnttabSetVersion,
    xen_abi::GnttabGetVersion,
    xen_abi::GnttabCacheFlush,
    xen_abi::GnttabDumpTable,
    xen_abi::XenFeatureInfo,
    xen_abi::SchedShutdown,
    xen_abi::EvtchnAllocUnbound,
    xen_abi::EvtchnBindInterdomain,
    xen_abi::EvtchnBindVirq,
    xen_abi::EvtchnBindPirq,
    xen_abi::EvtchnBindIpi,
    xen_abi::EvtchnPort,
    xen_abi::EvtchnStatus,
    xen_abi::EvtchnBindVcpu,
    xen_abi::EvtchnReset,
    xen_abi::EvtchnInitControl,
    xen_abi::EvtchnExpandArray,
    xen_abi::EvtchnSetPriority,
    xen_abi::EvtchnFifoControlBlock,
    xen_abi::VcpuTimeInfo,
    xen_abi::VcpuInfo,
    xen_abi::SharedInfo,
    xen_abi::VcpuRunstateInfo,
    xen_abi::VcpuRegisterRunstateMemoryArea,
    xen_abi::VcpuRegisterVcpuInfo,
    xen_abi::XenpfSettime64,
    xen_abi::XenPlatformOp,
);

/// The bytes of a `Pod` value.
pub fn as_bytes<T: Pod>(v: &T) -> &[u8] {
    // SAFETY: T is Pod: no padding, so every byte is initialised.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, size_of::<T>()) }
}

/// The bytes of a `Pod` value, writable.
pub fn as_bytes_mut<T: Pod>(v: &mut T) -> &mut [u8] {
    // SAFETY: T is Pod: any bytes written form a valid value.
    unsafe { core::slice::from_raw_parts_mut(v as *mut T as *mut u8, size_of::<T>()) }
}

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

    #[inline(always)]
    fn ptr(&self, pa: u64, len: u64) -> *mut u8 {
        if !self.contains(pa, len) {
            outside(pa, len);
        }
        (pa as usize).wrapping_add(self.offset) as *mut u8
    }

    pub fn zero_frame(&self, mfn: Mfn) {
        let p = self.ptr(mfn.addr(), PAGE_SIZE);
        // SAFETY: `p` covers one frame inside the map (checked above).
        unsafe { core::ptr::write_bytes(p, 0, PAGE_SIZE as usize) }
    }

    pub fn read(&self, pa: u64, dst: &mut [u8]) {
        let p = self.ptr(pa, dst.len() as u64);
        // SAFETY: the source range is inside the map; `dst` is ours and cannot overlap it (it
        // is a hypervisor buffer). Guest memory may change under us: we copy bytes, never
        // form a reference to it.
        unsafe { core::ptr::copy_nonoverlapping(p, dst.as_mut_ptr(), dst.len()) }
    }

    pub fn write(&self, pa: u64, src: &[u8]) {
        let p = self.ptr(pa, src.len() as u64);
        // SAFETY: the destination range is inside the map; `src` is a hypervisor buffer.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) }
    }

    /// Copy a `T` from `pa` (any alignment). For a small `T` the copy is inline loads: word
    /// loads when `pa` is aligned for `T` (the image is built for strict alignment, so an
    /// unaligned copy is done byte by byte).
    #[inline(always)]
    pub fn read_obj<T: Pod>(&self, pa: u64) -> T {
        let p = self.ptr(pa, size_of::<T>() as u64) as *const T;
        if !p.is_aligned() {
            // SAFETY: the range is inside the map (checked by `ptr`).
            return unsafe { read_unaligned_cold(p) };
        }
        // SAFETY: the range is inside the map and aligned; `T` is `Pod`, so whatever bytes are
        // there (a guest may change them meanwhile) make a valid `T`.
        unsafe { p.read() }
    }

    /// Copy `v` to `pa` (any alignment; see [`Self::read_obj`]).
    #[inline(always)]
    pub fn write_obj<T: Pod>(&self, pa: u64, v: &T) {
        let p = self.ptr(pa, size_of::<T>() as u64) as *mut T;
        if !p.is_aligned() {
            // SAFETY: the range is inside the map (checked by `ptr`).
            return unsafe { write_unaligned_cold(p, v) };
        }
        // SAFETY: the range is inside the map and aligned.
        unsafe { p.write(*v) }
    }

    /// `memmove` between two physical ranges (they may overlap).
    pub fn copy(&self, dst: u64, src: u64, len: u64) {
        let (d, s) = (self.ptr(dst, len), self.ptr(src, len));
        // SAFETY: both ranges are inside the map; `copy` tolerates overlap.
        unsafe { core::ptr::copy(s, d, len as usize) }
    }

    #[inline]
    pub fn atomic_u64(&self, pa: u64) -> &AtomicU64 {
        if !pa.is_multiple_of(8) {
            misaligned(pa, 8);
        }
        // SAFETY: aligned, inside the map, and only ever accessed atomically by us.
        unsafe { AtomicU64::from_ptr(self.ptr(pa, 8) as *mut u64) }
    }
    pub fn atomic_u32(&self, pa: u64) -> &AtomicU32 {
        if !pa.is_multiple_of(4) {
            misaligned(pa, 4);
        }
        // SAFETY: as for `atomic_u64`.
        unsafe { AtomicU32::from_ptr(self.ptr(pa, 4) as *mut u32) }
    }
    pub fn atomic_u16(&self, pa: u64) -> &AtomicU16 {
        if !pa.is_multiple_of(2) {
            misaligned(pa, 2);
        }
        // SAFETY: as for `atomic_u64`.
        unsafe { AtomicU16::from_ptr(self.ptr(pa, 2) as *mut u16) }
    }
}

// Out of line, so that the checks on every access (page-table walks included) cost a compare
// and a branch.
#[cold]
#[inline(never)]
#[track_caller]
fn outside(pa: u64, len: u64) -> ! {
    panic!("physical access {pa:#x}+{len:#x} outside RAM")
}

#[cold]
#[inline(never)]
#[track_caller]
fn misaligned(pa: u64, align: u64) -> ! {
    panic!("misaligned {align}-byte atomic access at {pa:#x}")
}

// Out of line: kept apart, the compiler cannot fold the aligned copies into these byte-wise
// ones.
//
// # Safety
// `p` must be valid for reading (writing) `size_of::<T>()` bytes.
#[cold]
#[inline(never)]
unsafe fn read_unaligned_cold<T: Pod>(p: *const T) -> T {
    // SAFETY: the caller's contract; `T` is `Pod`, so any bytes make a valid `T`.
    unsafe { p.read_unaligned() }
}

#[cold]
#[inline(never)]
unsafe fn write_unaligned_cold<T: Pod>(p: *mut T, v: &T) {
    // SAFETY: the caller's contract.
    unsafe { p.write_unaligned(*v) }
}
