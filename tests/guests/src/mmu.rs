//! Stage-1 identity map (VA == PA) with a 4 KiB granule and a 48-bit VA space (4 levels).
//!
//! Tables come from a fixed pool in BSS. [`map`] uses the largest blocks that fit (1 GiB at
//! level 1, 2 MiB at level 2, else 4 KiB pages) and splits existing blocks as needed;
//! [`unmap`] clears entries the same way. Both work before and after [`enable`]; once the
//! MMU is on, replacing a valid entry follows break-before-make, so a range must never be
//! split while code in it is running: map the image with [`map_pages`] up front.
//!
//! Memory types (MAIR_EL1): index 0 = Normal write-back read/write-allocate (used
//! inner-shareable, as Xen requires for every page shared with it), index 1 = Device-nGnRE.

use crate::Global;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};

/// How a range is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    /// Normal WB inner-shareable, executable at EL1 (RAM holding the image).
    Code,
    /// Normal WB inner-shareable, never executable (RAM, grant and extended regions).
    Data,
    /// Device-nGnRE, never executable.
    Device,
}

const VALID: u64 = 1;
const TABLE_OR_PAGE: u64 = 1 << 1;
const ATTR_NORMAL: u64 = 0 << 2;
const ATTR_DEVICE: u64 = 1 << 2;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const OA_MASK: u64 = 0x0000_ffff_ffff_f000;
const MAIR: u64 = 0xff | (0x04 << 8);

const POOL_TABLES: usize = 64;

#[repr(C, align(4096))]
struct Table([u64; 512]);

struct State {
    /// Tables handed out from [`TABLES`]; table 0 is the level-0 root.
    used: usize,
    enabled: bool,
}

/// The page-table pool (zero-initialised, so it lives in BSS and not in the image file).
/// Shared by every CPU: secondaries use the same TTBR0.
static TABLES: Global<[Table; POOL_TABLES]> = Global::new([const { Table([0; 512]) }; POOL_TABLES]);
/// Protected by [`LOCK`] once the MMU is on (before that only the boot CPU runs).
static STATE: Global<State> = Global::new(State { used: 1, enabled: false });
/// Serialises map/unmap between CPUs (taken only with the MMU on: it is a spin lock).
static LOCK: crate::smp::SpinLock<()> = crate::smp::SpinLock::new(());
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The boot CPU's MMU configuration, for secondaries to load before their MMU is on (see
/// `__granite_secondary_entry`): MAIR_EL1, TCR_EL1, TTBR0_EL1, SCTLR_EL1 (0 until published).
/// Written once by [`enable`] and cleaned to the point of coherency.
#[repr(C, align(64))]
pub(crate) struct SecondaryMmu {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
}
pub(crate) static SECONDARY_MMU: Global<SecondaryMmu> =
    Global::new(SecondaryMmu { mair: 0, tcr: 0, ttbr0: 0, sctlr: 0 });

/// Runs `f` on the page-table state, under [`LOCK`] once the MMU is on.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let _guard = enabled().then(|| LOCK.lock());
    // SAFETY: with the MMU off only the boot CPU runs (no secondary is started before
    // `enable`); with it on, LOCK is held. The exception handler never maps. So this is the
    // only live reference to the state.
    f(unsafe { STATE.get_mut() })
}

fn table(i: usize) -> *mut Table {
    assert!(i < POOL_TABLES);
    // Tables are only ever accessed through raw pointers (the walker reads them too).
    TABLES.as_ptr().cast::<Table>().wrapping_add(i)
}

fn leaf_attrs(attr: Attr) -> u64 {
    match attr {
        Attr::Code => ATTR_NORMAL | SH_INNER | AF | UXN,
        Attr::Data => ATTR_NORMAL | SH_INNER | AF | UXN | PXN,
        Attr::Device => ATTR_DEVICE | AF | UXN | PXN,
    }
}

fn shift(level: usize) -> u32 {
    39 - 9 * level as u32
}

fn tlb_flush_all() {
    // SAFETY: TLB maintenance for our own translation regime; no memory is changed.
    unsafe { asm!("dsb ishst", "tlbi vmalle1is", "dsb ish", "isb", options(nostack)) };
}

impl State {
    fn alloc(&mut self) -> *mut Table {
        assert!(self.used < POOL_TABLES, "mmu: page-table pool exhausted");
        let t = table(self.used);
        self.used += 1;
        t
    }

    /// Writes a descriptor; with the MMU on, a valid entry is first invalidated and the TLB
    /// flushed (break-before-make).
    fn set(&self, slot: *mut u64, new: u64) {
        // SAFETY: `slot` points into one of our tables (caller); volatile because the table
        // walker reads it behind the compiler's back.
        unsafe {
            let old = slot.read_volatile();
            if self.enabled && old & VALID != 0 && old != new {
                slot.write_volatile(0);
                tlb_flush_all();
            }
            slot.write_volatile(new);
        }
    }

    /// Maps (`leaf = Some(attrs)`) or unmaps (`None`) `[va, end)` in the table at `level`.
    /// Leaves are no larger than `1 << max_leaf_shift` bytes.
    fn walk(&mut self, table: *mut Table, level: usize, va: u64, end: u64, leaf: Option<u64>, max_leaf_shift: u32) {
        let sh = shift(level);
        let span = 1u64 << sh;
        let mut a = va;
        while a < end {
            let start = a & !(span - 1);
            let chunk_end = end.min(start + span);
            // SAFETY: `table` is a pool table and the index is < 512.
            let slot = unsafe { (*table).0.as_mut_ptr().add(((a >> sh) & 511) as usize) };
            // SAFETY: as above.
            let old = unsafe { slot.read_volatile() };
            let whole = a == start && chunk_end == start + span;
            if level == 3 || (whole && level >= 1 && sh <= max_leaf_shift) {
                let kind = if level == 3 { VALID | TABLE_OR_PAGE } else { VALID };
                self.set(slot, leaf.map_or(0, |attrs| a | attrs | kind));
            } else {
                let next = if old & VALID != 0 && old & TABLE_OR_PAGE != 0 {
                    (old & OA_MASK) as *mut Table
                } else if old & VALID == 0 {
                    if leaf.is_none() {
                        a = chunk_end;
                        continue;
                    }
                    let t = self.alloc();
                    self.set(slot, t as u64 | VALID | TABLE_OR_PAGE);
                    t
                } else {
                    // Split a block into the next level's entries, then descend.
                    let t = self.alloc();
                    let attrs = old & !OA_MASK & !3;
                    let sub = 1u64 << shift(level + 1);
                    let kind = if level + 1 == 3 { VALID | TABLE_OR_PAGE } else { VALID };
                    for i in 0..512u64 {
                        // SAFETY: `t` is a fresh pool table, not yet visible to the walker.
                        unsafe { (*t).0[i as usize] = (start + i * sub) | attrs | kind };
                    }
                    self.set(slot, t as u64 | VALID | TABLE_OR_PAGE);
                    t
                };
                self.walk(next, level + 1, a, chunk_end, leaf, max_leaf_shift);
            }
            a = chunk_end;
        }
    }

    fn update(&mut self, base: u64, size: u64, leaf: Option<u64>, max_leaf_shift: u32) {
        let start = base & !0xfff;
        let end = (base + size + 0xfff) & !0xfff;
        self.walk(table(0), 0, start, end, leaf, max_leaf_shift);
        if self.enabled {
            tlb_flush_all();
        }
    }
}

/// Identity-maps `[base, base + size)` (rounded out to pages) with `attr`, largest blocks first.
/// With several CPUs running, the caller makes sure no other CPU uses the range meanwhile
/// (the TLB maintenance is broadcast, inner shareable).
pub fn map(base: u64, size: u64, attr: Attr) {
    with_state(|s| s.update(base, size, Some(leaf_attrs(attr)), 30));
}

/// Like [`map`] but with 4 KiB pages only, so later changes never split a block there.
pub fn map_pages(base: u64, size: u64, attr: Attr) {
    with_state(|s| s.update(base, size, Some(leaf_attrs(attr)), 12));
}

/// Removes `[base, base + size)` (rounded out to pages) from the stage-1 map.
pub fn unmap(base: u64, size: u64) {
    with_state(|s| s.update(base, size, None, 30));
}

/// Number of page tables in use (out of the pool).
pub fn tables_used() -> (usize, usize) {
    (with_state(|s| s.used), POOL_TABLES)
}

/// Turns the MMU and caches on with the map built so far. `image` is cleaned and
/// invalidated first: everything written with the MMU off went straight to memory, and no
/// stale cache line may shadow it once accesses become cacheable.
pub fn enable(image: crate::platform::Region) {
    assert!(!enabled() && crate::smp::cpu_id() == 0, "mmu::enable: once, on the boot CPU");
    // SAFETY: the MMU is off, so only the boot CPU runs: this is the only reference.
    let state = unsafe { STATE.get_mut() };
    let ips = {
        let mmfr0: u64;
        // SAFETY: reading an ID register has no side effects.
        unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
        (mmfr0 & 0xf).min(5)
    };
    let tcr: u64 = 16 // T0SZ: 48-bit VA
        | (1 << 8) // IRGN0: WB read/write-allocate
        | (1 << 10) // ORGN0: WB read/write-allocate
        | (3 << 12) // SH0: inner shareable
        | (1 << 23) // EPD1: no TTBR1 walks
        | (2 << 30) // TG1: 4 KiB (unused)
        | (ips << 32);
    let ttbr0 = table(0) as u64;
    unsafe extern "C" {
        fn __granite_dcache_civac(start: u64, end: u64);
    }
    // SAFETY: cache maintenance by VA over our own image; with the MMU off it only moves
    // data between cache and memory, never changing the memory contents we rely on.
    unsafe { __granite_dcache_civac(image.base, image.end()) };
    // SAFETY: the tables map the image (executable), its stack and data identically, so
    // execution continues at the next instruction with the same addresses.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr0}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, #(1 << 0)",   // M
            "orr {tmp}, {tmp}, #(1 << 2)",   // C
            "orr {tmp}, {tmp}, #(1 << 12)",  // I
            "bic {tmp}, {tmp}, #(1 << 1)",   // A: no alignment checks
            "bic {tmp}, {tmp}, #(1 << 19)",  // WXN
            "msr sctlr_el1, {tmp}",
            "isb",
            "ic iallu",
            "dsb nsh",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            ttbr0 = in(reg) ttbr0,
            tmp = out(reg) _,
            options(nostack),
        );
    }
    state.enabled = true;
    ENABLED.store(true, Ordering::Release);

    // Publish the configuration for secondaries, which read it with their MMU off
    // (non-cacheable): clean it to the point of coherency.
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL1 has no side effects.
    unsafe { asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)) };
    let params = SECONDARY_MMU.as_ptr();
    // SAFETY: only this CPU runs; secondaries read the block only after being started,
    // which happens after this (CPU_ON is a hypervisor call, a full barrier for them).
    unsafe { params.write_volatile(SecondaryMmu { mair: MAIR, tcr, ttbr0, sctlr }) };
    let start = params as u64;
    // SAFETY: cache maintenance over our own data; contents are unchanged.
    unsafe { __granite_dcache_civac(start, start + size_of::<SecondaryMmu>() as u64) };
}

/// Whether the MMU has been turned on by [`enable`] (on the boot CPU; secondaries always
/// run with it on).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Stage-1 translation of `va` for a read at EL1 (`AT S1E1R`): the physical address, or None
/// if stage 1 has no valid mapping.
pub fn translate(va: u64) -> Option<u64> {
    let par: u64;
    // SAFETY: address translation only updates PAR_EL1.
    unsafe {
        asm!("at s1e1r, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par, options(nostack))
    };
    (par & 1 == 0).then_some((par & OA_MASK) | (va & 0xfff))
}
