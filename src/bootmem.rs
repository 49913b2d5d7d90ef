//! Boot-memory planning, portable and host-tested.
//!
//! At boot the hypervisor knows RAM only from the device tree. [`BootMem`] starts from the RAM
//! banks and removes what must not be reused: the hypervisor image, the DTB, the boot modules,
//! `/memreserve/` and `/reserved-memory` ranges, spin-table release pages. Regions the
//! hypervisor needs before its page allocator exists (the frame table, the Rust heap arena,
//! and later dom0's RAM) are then carved with [`BootMem::take`] and friends.
//!
//! The API has two steps, so that nothing reaches the page allocator before every boot-time
//! carve is done:
//!
//! 1. **plan**: [`BootMem::new`], [`BootMem::reserve`], [`BootMem::take`] /
//!    [`BootMem::take_below`] / [`BootMem::take_at`] (frame table, allocator arena, dom0 RAM);
//! 2. **hand over**: [`BootMem::into_heap`] consumes the planner and yields the remaining free
//!    ranges, which the caller gives to `mm.heap`.
//!
//! Every range is page aligned: RAM banks are rounded inwards, reservations outwards.

use crate::dt::{FixedVec, Region};
use crate::types::{Mfn, PAGE_MASK, PAGE_SIZE};
use core::ops::Deref;

/// Free ranges the planner can track (each reservation inside a range may split it).
pub const MAX_RANGES: usize = 64;
/// Reservations and carves recorded for the boot log.
pub const MAX_RECORDS: usize = 48;

/// A page-aligned physical range `[start, end)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, PartialOrd, Ord)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
    pub const fn first_mfn(&self) -> Mfn {
        Mfn::from_addr(self.start)
    }
    pub const fn frames(&self) -> u64 {
        self.len() / PAGE_SIZE
    }
    pub const fn contains(&self, other: &Range) -> bool {
        other.start >= self.start && other.end <= self.end
    }
}

/// Why planning failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BootMemError {
    /// No RAM bank is at least a page once rounded.
    NoRam,
    /// More disjoint ranges than [`MAX_RANGES`].
    TooManyRanges,
    /// No free range can hold the request.
    OutOfMemory,
    /// `take_at` of a range that is not entirely free RAM.
    NotFree,
    /// Size zero, or an alignment that is not a power of two.
    BadRequest,
}

impl core::fmt::Display for BootMemError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BootMemError::NoRam => "no usable RAM bank",
            BootMemError::TooManyRanges => "too many disjoint boot-memory ranges",
            BootMemError::OutOfMemory => "not enough free RAM",
            BootMemError::NotFree => "range is not free RAM",
            BootMemError::BadRequest => "bad size or alignment",
        })
    }
}

/// A reservation or carve, recorded for the boot log.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Record {
    pub range: Range,
    pub what: &'static str,
    /// Carved with a `take*` (rather than reserved).
    pub taken: bool,
}

const fn align_up(x: u64, a: u64) -> Option<u64> {
    match x.checked_add(a - 1) {
        Some(v) => Some(v & !(a - 1)),
        None => None,
    }
}
const fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

/// Step 1: the boot-memory plan.
#[derive(Clone, Debug)]
pub struct BootMem {
    ram: FixedVec<Range, MAX_RANGES>,
    free: FixedVec<Range, MAX_RANGES>,
    records: FixedVec<Record, MAX_RECORDS>,
    /// Records not kept because the list was full.
    pub unrecorded: usize,
}

impl BootMem {
    /// Start from the RAM banks (any order, overlaps merged, rounded inwards to pages).
    pub fn new(banks: &[Region]) -> Result<Self, BootMemError> {
        let mut ram: FixedVec<Range, MAX_RANGES> = FixedVec::new();
        for b in banks {
            let start = align_up(b.base, PAGE_SIZE).ok_or(BootMemError::NoRam)?;
            let end = align_down(b.end(), PAGE_SIZE);
            if end > start {
                ram.push(Range { start, end }).map_err(|_| BootMemError::TooManyRanges)?;
            }
        }
        ram.as_mut_slice().sort_unstable();
        // merge overlapping or touching banks
        let mut i = 1;
        while i < ram.len() {
            if ram[i].start <= ram[i - 1].end {
                let end = ram[i].end.max(ram[i - 1].end);
                ram.as_mut_slice()[i - 1].end = end;
                ram.remove(i);
            } else {
                i += 1;
            }
        }
        if ram.is_empty() {
            return Err(BootMemError::NoRam);
        }
        Ok(BootMem { ram, free: ram, records: FixedVec::new(), unrecorded: 0 })
    }

    /// The RAM banks (page aligned, sorted, disjoint).
    pub fn ram(&self) -> &[Range] {
        &self.ram
    }
    /// The lowest and highest RAM addresses: what the frame table must cover.
    pub fn ram_span(&self) -> Range {
        Range { start: self.ram[0].start, end: self.ram[self.ram.len() - 1].end }
    }
    pub fn ram_bytes(&self) -> u64 {
        self.ram.iter().map(Range::len).sum()
    }
    /// What is still free (sorted, disjoint).
    pub fn free(&self) -> &[Range] {
        &self.free
    }
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(Range::len).sum()
    }
    /// Reservations and carves so far, in call order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    fn record(&mut self, range: Range, what: &'static str, taken: bool) {
        if self.records.push(Record { range, what, taken }).is_err() {
            self.unrecorded += 1;
        }
    }

    /// Remove `[start, end)` (page aligned) from the free ranges.
    fn remove(&mut self, start: u64, end: u64) -> Result<(), BootMemError> {
        // Only a range strictly containing [start, end) splits in two; fail before changing
        // anything if there is no room for the extra piece.
        if self.free.is_full() && self.free.iter().any(|r| r.start < start && end < r.end) {
            return Err(BootMemError::TooManyRanges);
        }
        let mut i = 0;
        while i < self.free.len() {
            let r = self.free[i];
            if end <= r.start || start >= r.end {
                i += 1;
                continue;
            }
            let (lo, hi) = (Range { start: r.start, end: start }, Range { start: end, end: r.end });
            match (lo.is_empty(), hi.is_empty()) {
                (true, true) => {
                    self.free.remove(i);
                }
                (false, true) => {
                    self.free.as_mut_slice()[i] = lo;
                    i += 1;
                }
                (true, false) => {
                    self.free.as_mut_slice()[i] = hi;
                    i += 1;
                }
                (false, false) => {
                    self.free.insert(i + 1, hi).map_err(|_| BootMemError::TooManyRanges)?; // checked above
                    self.free.as_mut_slice()[i] = lo;
                    i += 2;
                }
            }
        }
        Ok(())
    }

    /// Keep `[base, base + size)` (rounded outwards to pages) out of the free memory. Ranges
    /// outside RAM, and already-reserved ranges, are fine.
    pub fn reserve(&mut self, base: u64, size: u64, what: &'static str) -> Result<(), BootMemError> {
        if size == 0 {
            return Ok(());
        }
        let start = align_down(base, PAGE_SIZE);
        let end = align_up(base.saturating_add(size), PAGE_SIZE).unwrap_or(!PAGE_MASK);
        self.remove(start, end)?;
        self.record(Range { start, end }, what, false);
        Ok(())
    }

    fn check(size: u64, align: u64) -> Result<(u64, u64), BootMemError> {
        if size == 0 || !align.is_power_of_two() {
            return Err(BootMemError::BadRequest);
        }
        let size = align_up(size, PAGE_SIZE).ok_or(BootMemError::BadRequest)?;
        Ok((size, align.max(PAGE_SIZE)))
    }

    /// Carve `size` bytes (rounded up to pages) aligned on `align`, as high as possible below
    /// `limit`. Returns the base.
    pub fn take_below(&mut self, limit: u64, size: u64, align: u64, what: &'static str) -> Result<u64, BootMemError> {
        let (size, align) = Self::check(size, align)?;
        for r in self.free.iter().rev() {
            let top = r.end.min(limit);
            let Some(cand) = top.checked_sub(size).map(|c| align_down(c, align)) else { continue };
            if cand >= r.start && cand + size <= top {
                self.remove(cand, cand + size)?;
                self.record(Range { start: cand, end: cand + size }, what, true);
                return Ok(cand);
            }
        }
        Err(BootMemError::OutOfMemory)
    }

    /// Carve `size` bytes aligned on `align` from the highest free RAM (keeping low memory,
    /// which a direct-mapped dom0 prefers, for later carves).
    pub fn take(&mut self, size: u64, align: u64, what: &'static str) -> Result<u64, BootMemError> {
        self.take_below(u64::MAX, size, align, what)
    }

    /// Carve exactly `[base, base + size)`, which must be page aligned and entirely free.
    pub fn take_at(&mut self, base: u64, size: u64, what: &'static str) -> Result<(), BootMemError> {
        if size == 0 || base & PAGE_MASK != 0 || size & PAGE_MASK != 0 {
            return Err(BootMemError::BadRequest);
        }
        let want = Range { start: base, end: base.checked_add(size).ok_or(BootMemError::BadRequest)? };
        if !self.free.iter().any(|r| r.contains(&want)) {
            return Err(BootMemError::NotFree);
        }
        self.remove(want.start, want.end)?;
        self.record(want, what, true);
        Ok(())
    }

    /// Step 2: the plan is final; the remaining free ranges go to the page allocator.
    pub fn into_heap(self) -> HeapRanges {
        HeapRanges { ranges: self.free }
    }
}

/// The free RAM left once every boot-time carve is done: what the page allocator gets.
#[derive(Clone, Debug)]
pub struct HeapRanges {
    ranges: FixedVec<Range, MAX_RANGES>,
}

impl HeapRanges {
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(Range::len).sum()
    }
}

impl Deref for HeapRanges {
    type Target = [Range];
    fn deref(&self) -> &[Range] {
        &self.ranges
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: u64 = 1 << 20;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn qemu_virt_like_plan() {
        // 2 GiB at 1 GiB; image at +2 MiB, DTB at +128 MiB, a module at 0x49000000.
        let mut b = BootMem::new(&[Region::new(0x4000_0000, 0x8000_0000)]).unwrap();
        b.reserve(0x4020_0000, 0x12_3456, "image").unwrap();
        b.reserve(0x4800_0000, 0x10_0000, "dtb").unwrap();
        b.reserve(0x4900_0000, 6, "kernel").unwrap();
        assert_eq!(
            b.free(),
            &[
                r(0x4000_0000, 0x4020_0000),
                r(0x4032_4000, 0x4800_0000),
                r(0x4810_0000, 0x4900_0000),
                r(0x4900_1000, 0xc000_0000)
            ]
        );
        let ft = b.take(8 * M, 2 * M, "frame table").unwrap();
        assert_eq!(ft, 0xc000_0000 - 8 * M, "highest first");
        let arena = b.take(16 * M, 4096, "allocator").unwrap();
        assert_eq!(arena, ft - 16 * M);
        // the lead's dom0 carve: low memory, 128 MiB aligned
        let dom0 = b.take_below(0x1_0000_0000, 128 * M, 128 * M, "dom0").unwrap();
        assert_eq!(dom0 % (128 * M), 0);
        assert!(dom0 + 128 * M <= arena);
        assert_eq!(b.records().len(), 6);
        assert!(b.records()[3].taken && !b.records()[0].taken);
        let heap = b.into_heap();
        let total: u64 = heap.iter().map(|r| r.len()).sum();
        assert_eq!(total, heap.bytes());
        assert_eq!(heap.bytes(), 0x8000_0000 - 0x12_4000 - 0x10_0000 - 0x1000 - 8 * M - 16 * M - 128 * M);
        for h in heap.iter() {
            assert!(!(h.start < ft + 8 * M && ft < h.end));
            assert!(!(h.start < dom0 + 128 * M && dom0 < h.end));
        }
    }

    #[test]
    fn banks_are_rounded_sorted_and_merged() {
        let b = BootMem::new(&[
            Region::new(0x8000_0800, 0x1000_0000),
            Region::new(0x1000, 0x3000),
            Region::new(0x3000, 0x2000),
            Region::new(0x9000_0000, 0x800), // less than a page once rounded
        ])
        .unwrap();
        assert_eq!(b.ram(), &[r(0x1000, 0x5000), r(0x8000_1000, 0x9000_0000)]);
        assert_eq!(b.ram_span(), r(0x1000, 0x9000_0000));
        assert_eq!(b.ram_bytes(), 0x4000 + 0x0fff_f000);
        assert_eq!(BootMem::new(&[Region::new(0x10, 0x100)]).unwrap_err(), BootMemError::NoRam);
        assert_eq!(BootMem::new(&[]).unwrap_err(), BootMemError::NoRam);
    }

    #[test]
    fn reservations_outside_ram_and_overlapping_are_fine() {
        let mut b = BootMem::new(&[Region::new(0x4000_0000, 0x100_0000)]).unwrap();
        b.reserve(0x0, 0x1000, "firmware").unwrap();
        b.reserve(0x3fff_f000, 0x2000, "straddling").unwrap();
        b.reserve(0x4000_0800, 0x10, "inside reserved").unwrap();
        b.reserve(0x40ff_ffff, 0x100, "end").unwrap();
        b.reserve(0x4000_0000, 0, "empty").unwrap();
        assert_eq!(b.free(), &[r(0x4000_1000, 0x40ff_f000)]);
    }

    #[test]
    fn take_at_and_errors() {
        let mut b = BootMem::new(&[Region::new(0x4000_0000, 0x40_0000)]).unwrap();
        b.take_at(0x4010_0000, 0x10_0000, "fixed").unwrap();
        assert_eq!(b.take_at(0x4010_0000, 0x1000, "again"), Err(BootMemError::NotFree));
        assert_eq!(b.take_at(0x4000_0800, 0x1000, "unaligned"), Err(BootMemError::BadRequest));
        assert_eq!(b.take_at(0x3000_0000, 0x1000, "outside"), Err(BootMemError::NotFree));
        assert_eq!(b.take(0, 4096, "zero"), Err(BootMemError::BadRequest));
        assert_eq!(b.take(4096, 3, "align"), Err(BootMemError::BadRequest));
        assert_eq!(b.take(0x20_0000, 0x20_0000, "big"), Ok(0x4020_0000));
        assert_eq!(b.take(0x20_0000, 0x20_0000, "too big"), Err(BootMemError::OutOfMemory));
        assert_eq!(b.take(0x10_0000, 4096, "rest"), Ok(0x4000_0000));
        assert_eq!(b.free_bytes(), 0);
        assert!(b.into_heap().is_empty());
    }

    #[test]
    fn take_below_respects_the_limit() {
        let mut b =
            BootMem::new(&[Region::new(0x4000_0000, 0x4000_0000), Region::new(0x1_0000_0000, 0x4000_0000)]).unwrap();
        let lo = b.take_below(0x1_0000_0000, 0x100_0000, 0x100_0000, "low").unwrap();
        assert_eq!(lo, 0x7f00_0000);
        let hi = b.take(0x1000, 0x1000, "high").unwrap();
        assert_eq!(hi, 0x1_3fff_f000);
        assert_eq!(b.take_below(0x4000_0000, 0x1000, 0x1000, "none"), Err(BootMemError::OutOfMemory));
    }

    #[test]
    fn too_many_splits_are_reported() {
        let mut b = BootMem::new(&[Region::new(0, 0x1000_0000)]).unwrap();
        let mut err = None;
        for i in 0..(MAX_RANGES as u64 + 4) {
            if let Err(e) = b.reserve(0x1000 + i * 0x2000, 0x1000, "hole") {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(BootMemError::TooManyRanges));
        assert_eq!(b.records().len(), MAX_RECORDS);
        assert!(b.unrecorded > 0);
    }

    proptest! {
        /// Whatever the reservations and carves, the free ranges stay sorted, disjoint, page
        /// aligned, inside RAM, away from everything reserved or taken, and account for every
        /// byte of RAM.
        #[test]
        fn free_ranges_are_exactly_ram_minus_the_rest(
            banks in prop::collection::vec((0u64..64, 1u64..64), 1..4),
            ops in prop::collection::vec((0u8..3, 0u64..0x4800, 1u64..0x400, 0u32..6), 0..24),
        ) {
            let banks: std::vec::Vec<Region> =
                banks.iter().map(|&(b, s)| Region::new(b * 0x100_0000 / 4, s * 0x10_0000)).collect();
            let mut plan = BootMem::new(&banks).unwrap();
            let mut used: std::vec::Vec<Range> = std::vec::Vec::new();
            for (kind, page, pages, align_log) in ops {
                let (base, size) = (page * 0x1000 + 0x123, pages * 0x1000);
                match kind {
                    0 => {
                        if plan.reserve(base, size, "r").is_ok() {
                            used.push(Range { start: base & !0xfff, end: (base + size + 0xfff) & !0xfff });
                        }
                    }
                    1 => {
                        if let Ok(b) = plan.take(size, 0x1000 << align_log, "t") {
                            prop_assert_eq!(b % (0x1000 << align_log), 0);
                            used.push(Range { start: b, end: b + size });
                        }
                    }
                    _ => {
                        let b = base & !0xfff;
                        if plan.take_at(b, size, "a").is_ok() {
                            used.push(Range { start: b, end: b + size });
                        }
                    }
                }
            }
            let free = plan.free().to_vec();
            for w in free.windows(2) {
                prop_assert!(w[0].end <= w[1].start, "unsorted or overlapping {:?}", w);
            }
            for f in &free {
                prop_assert!(!f.is_empty() && f.start % 0x1000 == 0 && f.end % 0x1000 == 0);
                prop_assert!(plan.ram().iter().any(|r| r.contains(f)));
                for u in &used {
                    prop_assert!(f.end <= u.start || u.end <= f.start, "free {:?} overlaps used {:?}", f, u);
                }
            }
            // every RAM page is either free or used
            for ram in plan.ram() {
                let mut p = ram.start;
                while p < ram.end {
                    let in_free = free.iter().any(|f| f.start <= p && p < f.end);
                    let in_used = used.iter().any(|u| u.start <= p && p < u.end);
                    prop_assert!(in_free != in_used, "page {:#x}: free {} used {}", p, in_free, in_used);
                    p += 0x1000;
                }
            }
        }
    }
}
