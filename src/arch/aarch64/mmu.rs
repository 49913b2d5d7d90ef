//! The EL2 stage-1 translation: an identity map (VA == PA) through TTBR0_EL2, 4 KiB granule,
//! sized from ID_AA64MMFR0_EL1.PARange.
//!
//! * the image is mapped W^X with 4 KiB pages: text read-only + executable, rodata (and the
//!   relocated `.data.rel.ro`/GOT) read-only, data + bss read-write, never executable;
//! * RAM banks: Normal write-back, inner shareable, read-write, never executable, with the
//!   largest blocks that fit (1 GiB, 2 MiB, 4 KiB);
//! * devices the hypervisor touches (UART, GIC): Device-nGnRE, never executable.
//!
//! SCTLR_EL2.WXN is set as well, so the hardware refuses to execute anything writable.
//! Tables come from a fixed pool in `.bss`; the map is built once at boot, with the MMU off,
//! and never changed afterwards.

use crate::descriptor::DESC as S1_DESC;
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ID_AA64MMFR0_EL1, MAIR_EL2, ReadWriteable, Readable, SCTLR_EL2, TCR_EL2, TTBR0_EL2, Writeable,
};
use core::arch::asm;
use core::cell::UnsafeCell;
use tock_registers::LocalRegisterCopy;

/// What a mapping is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// Hypervisor code: read-only, executable.
    Text,
    /// Read-only data.
    ReadOnly,
    /// Read-write data and RAM.
    ReadWrite,
    /// Device registers (Device-nGnRE).
    Device,
}

impl Kind {
    fn leaf(self, pa: u64, level: u32) -> u64 {
        let attrs = match self {
            Kind::Text => S1_DESC::ATTR_INDX::Normal + S1_DESC::AP::ReadOnly + S1_DESC::SH::InnerShareable,
            Kind::ReadOnly => {
                S1_DESC::ATTR_INDX::Normal + S1_DESC::AP::ReadOnly + S1_DESC::SH::InnerShareable + S1_DESC::XN::SET
            }
            Kind::ReadWrite => {
                S1_DESC::ATTR_INDX::Normal + S1_DESC::AP::ReadWrite + S1_DESC::SH::InnerShareable + S1_DESC::XN::SET
            }
            Kind::Device => {
                S1_DESC::ATTR_INDX::Device + S1_DESC::AP::ReadWrite + S1_DESC::SH::OuterShareable + S1_DESC::XN::SET
            }
        };
        let page = if level == 3 { S1_DESC::TABLE::SET } else { S1_DESC::TABLE::CLEAR };
        (S1_DESC::VALID::SET + page + S1_DESC::AF::SET + S1_DESC::OA.val(pa >> 12) + attrs).value
    }
}

fn table_desc(pa: u64) -> u64 {
    (S1_DESC::VALID::SET + S1_DESC::TABLE::SET + S1_DESC::OA.val(pa >> 12)).value
}

type Desc = LocalRegisterCopy<u64, S1_DESC::Register>;

/// Why a mapping could not be made.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MapError {
    /// The table pool is exhausted.
    NoTables,
    /// The range is already mapped differently.
    Conflict { va: u64 },
    /// Beyond the translated address range.
    OutOfRange { va: u64 },
}

const ENTRIES: usize = 512;
/// Tables available for the EL2 map (typically under 16 are used).
pub const POOL_TABLES: usize = 48;

#[repr(C, align(4096))]
struct Pool(UnsafeCell<[[u64; ENTRIES]; POOL_TABLES]>);
// SAFETY: the pool is only written by the boot CPU while it builds the map, before any other
// CPU runs; afterwards only the table walker reads it.
unsafe impl Sync for Pool {}

static POOL: Pool = Pool(UnsafeCell::new([[0; ENTRIES]; POOL_TABLES]));

/// The EL2 stage-1 map under construction.
pub struct Stage1 {
    /// Bits of VA (= PA) translated: the CPU's PA size, at most 48.
    pub va_bits: u32,
    /// ID_AA64MMFR0_EL1.PARange encoding of `va_bits`.
    parange: u64,
    start_level: u32,
    used: usize,
}

/// PARange encoding → address bits (48 at most: no 52-bit/LPA2 support).
fn pa_bits_of(parange: u64) -> (u64, u32) {
    match parange {
        0 => (0, 32),
        1 => (1, 36),
        2 => (2, 40),
        3 => (3, 42),
        4 => (4, 44),
        _ => (5, 48),
    }
}

#[allow(clippy::new_without_default)] // one per boot (it owns the table pool): no Default
impl Stage1 {
    /// An empty map sized for this CPU. Only one may ever be created (it owns the pool).
    pub fn new() -> Stage1 {
        let (parange, va_bits) = pa_bits_of(ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange));
        // 4 KiB granule: level 0 resolves bits 47:39, level 1 38:30, level 2 29:21.
        let start_level = if va_bits > 39 { 0 } else { 1 };
        Stage1 { va_bits, parange, start_level, used: 1 }
    }

    /// Tables used so far.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    fn table(i: usize) -> *mut u64 {
        // SAFETY: `i < POOL_TABLES`: a pointer into the pool, not a reference.
        unsafe { (POOL.0.get() as *mut [u64; ENTRIES]).add(i) as *mut u64 }
    }

    fn root(&self) -> *mut u64 {
        Self::table(0)
    }

    fn alloc(&mut self) -> Result<*mut u64, MapError> {
        if self.used == POOL_TABLES {
            return Err(MapError::NoTables);
        }
        let t = Self::table(self.used);
        self.used += 1;
        Ok(t) // the pool is in .bss: zeroed, i.e. all entries invalid
    }

    /// Map `[pa, pa + size)` (rounded outwards to pages) at the same VA as `kind`. Mapping a
    /// page again the same way is allowed; differently is a [`MapError::Conflict`].
    pub fn map(&mut self, pa: u64, size: u64, kind: Kind) -> Result<(), MapError> {
        if size == 0 {
            return Ok(());
        }
        let start = pa & !0xfff;
        let end = pa.checked_add(size + 0xfff).ok_or(MapError::OutOfRange { va: pa })? & !0xfff;
        if end > 1u64 << self.va_bits {
            return Err(MapError::OutOfRange { va: end - 1 });
        }
        self.map_level(self.root(), self.start_level, start, end, kind)
    }

    fn map_level(&mut self, table: *mut u64, level: u32, mut va: u64, end: u64, kind: Kind) -> Result<(), MapError> {
        let shift = 12 + 9 * (3 - level);
        let block = 1u64 << shift;
        while va < end {
            let next = ((va >> shift) + 1) << shift;
            let chunk_end = next.min(end);
            // SAFETY: the index is < 512 and `table` is a pool table.
            let slot = unsafe { table.add(((va >> shift) & 511) as usize) };
            // SAFETY: the slot is in the pool, only touched by this (boot) CPU.
            let old = Desc::new(unsafe { slot.read_volatile() });
            let whole = va & (block - 1) == 0 && chunk_end == next;
            if level == 3 || (level >= 1 && whole && !Self::is_table(old, level)) {
                // a leaf: page (level 3) or block (levels 1-2)
                let new = kind.leaf(va, level);
                if old.is_set(S1_DESC::VALID) && old.get() != new {
                    return Err(MapError::Conflict { va });
                }
                // SAFETY: as above.
                unsafe { slot.write_volatile(new) };
            } else {
                let sub = if Self::is_table(old, level) {
                    (old.read(S1_DESC::OA) << 12) as *mut u64
                } else if old.is_set(S1_DESC::VALID) {
                    return Err(MapError::Conflict { va });
                } else {
                    let t = self.alloc()?;
                    // SAFETY: as above; identity map, so a table's VA is its PA.
                    unsafe { slot.write_volatile(table_desc(t as u64)) };
                    t
                };
                self.map_level(sub, level + 1, va, chunk_end, kind)?;
            }
            va = chunk_end;
        }
        Ok(())
    }

    fn is_table(d: Desc, level: u32) -> bool {
        level < 3 && d.is_set(S1_DESC::VALID) && d.is_set(S1_DESC::TABLE)
    }

    /// The range the pool occupies (for cache maintenance).
    pub fn pool_range() -> (u64, u64) {
        let start = Self::table(0) as u64;
        (start, start + (POOL_TABLES * ENTRIES * 8) as u64)
    }

    /// Turn the MMU and the caches on with this map. `written` lists the memory written with
    /// the MMU off that will be read with it on (the image, the DTB if it was edited): stale
    /// cache lines over it are invalidated first, as are those over the tables.
    ///
    /// # Safety
    /// The map must cover (with the right permissions) the code running now, its stack,
    /// everything it will touch, and identity-map it all; the MMU must be off.
    pub unsafe fn activate(&self, written: &[(u64, u64)]) {
        // MAIR: 0 = Device-nGnRE, 1 = Normal write-back (inner and outer).
        MAIR_EL2.write(
            MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck
                + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
                + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
        );
        let tcr = TCR_EL2::T0SZ.val(64 - self.va_bits as u64)
            + TCR_EL2::PS.val(self.parange)
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::SH0::Inner
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable;
        // bits 31 and 23 are RES1
        TCR_EL2.set(tcr.value | (1 << 31) | (1 << 23));
        TTBR0_EL2.set_baddr(self.root() as u64);

        // Everything written with the MMU off went straight to memory; drop any stale cache
        // lines over it (tables, image, stack) so cacheable reads see memory.
        let (ps, pe) = Self::pool_range();
        super::cache::invalidate_range(ps, pe);
        for &(start, end) in written {
            super::cache::invalidate_range(start, end);
        }
        barrier::dsb(barrier::SY);
        barrier::isb(barrier::SY);
        // SAFETY: TLB and instruction-cache maintenance of this CPU's EL2 regime: no stale
        // translations or instructions survive the switch.
        unsafe {
            asm!("tlbi alle2", "dsb nsh", "ic iallu", "dsb nsh", "isb", options(nostack, preserves_flags));
        }
        SCTLR_EL2.modify(
            SCTLR_EL2::M::Enable
                + SCTLR_EL2::C::Cacheable
                + SCTLR_EL2::I::Cacheable
                + SCTLR_EL2::WXN::Enable
                + SCTLR_EL2::SA::Enable
                + SCTLR_EL2::A::Disable
                + SCTLR_EL2::EE::Little,
        );
        barrier::isb(barrier::SY);
    }
}

/// Is the EL2 MMU on?
pub fn enabled() -> bool {
    SCTLR_EL2.is_set(SCTLR_EL2::M)
}
