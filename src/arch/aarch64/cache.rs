//! Data-cache maintenance by virtual address (VA == PA at EL2).

use aarch64_cpu::asm::barrier;
use core::arch::asm;

/// Smallest data cache line (CTR_EL0.DminLine).
pub fn dcache_line() -> u64 {
    let ctr: u64;
    // SAFETY: reads CTR_EL0 (not provided by aarch64-cpu); no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    4 << ((ctr >> 16) & 0xf)
}

/// `dc ivac` over `[start, end)`: invalidate to the point of coherency, discarding anything
/// cached (only for memory written with the caches off, where no dirty line of ours exists).
pub fn invalidate_range(start: u64, end: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: cache maintenance by VA on memory the caller owns; see the contract above.
        unsafe { asm!("dc ivac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
}

/// `dc cvac` over `[start, end)`, then `dsb sy`: what the caches hold is written to memory,
/// for an observer with its MMU (and so its caches) off: a guest at entry, a secondary CPU.
pub fn clean_range(start: u64, end: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: cache maintenance by VA on mapped memory; data is unchanged.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}

/// `dc civac` over `[start, end)`, then `dsb sy`: dirty lines written back and every line
/// dropped, so the next access reads memory (a device's DMA writes).
pub fn clean_invalidate_range(start: u64, end: u64) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < end {
        // SAFETY: cache maintenance by VA on mapped memory; data is written back, not lost.
        unsafe { asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}
