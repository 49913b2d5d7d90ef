//! Stage-2 TLB maintenance ([`crate::tlb::TlbOps`]) on AArch64.
//!
//! TLBIs by IPA and `vmalle1is` act on the VMID currently in VTTBR_EL2, so each operation
//! loads the target guest's VTTBR (interrupts masked, so nothing else runs with it), then:
//!
//! ```text
//!   dsb ishst                           page-table writes visible to every walker
//!   tlbi ipas2e1is, ipa >> 12 (each 4K page)
//!   dsb ish
//!   tlbi vmalle1is                      combined stage-1+2 entries of that VMID
//!   dsb ish
//!   isb
//! ```
//!
//! or, for a large range or the whole VMID, `tlbi vmalls12e1is` (stage 1 and 2 at once),
//! `dsb ish`, `isb`.
//!
//! and restores the previous VTTBR. All TLBIs are inner-shareable broadcasts: complete on
//! every CPU when the final `dsb ish` retires.

use crate::tlb::{CacheOp, TlbOps};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{DAIF, ReadWriteable, Readable, VTTBR_EL2, Writeable};
use core::arch::asm;

/// Ranges above this many pages are flushed with one `tlbi vmalls12e1is`.
pub const RANGE_LIMIT_PAGES: u64 = 64;

/// The EL2 implementation of [`TlbOps`].
pub struct El2Tlb;

/// Run `f` with VTTBR_EL2 = `vttbr` and IRQs/FIQs masked, then restore both.
fn with_vttbr(vttbr: u64, f: impl FnOnce()) {
    let daif = DAIF.get();
    DAIF.modify(DAIF::I::Masked + DAIF::F::Masked);
    let old = VTTBR_EL2.get();
    if old != vttbr {
        VTTBR_EL2.set(vttbr);
        barrier::isb(barrier::SY);
    }
    f();
    if old != vttbr {
        VTTBR_EL2.set(old);
        barrier::isb(barrier::SY);
    }
    DAIF.set(daif);
}

fn finish_with_vmalle1is() {
    // SAFETY: TLB maintenance only (current VMID's stage-1+2 entries, all CPUs).
    unsafe { asm!("dsb ish", "tlbi vmalle1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

impl TlbOps for El2Tlb {
    fn sync_pte_writes(&self) {
        barrier::dsb(barrier::ISHST);
    }

    fn flush_guest_range(&self, vttbr: u64, ipa: u64, len: u64) {
        let first = ipa >> 12;
        let last = (ipa + len.max(1) - 1) >> 12;
        if last - first + 1 > RANGE_LIMIT_PAGES {
            return self.flush_guest_all(vttbr);
        }
        with_vttbr(vttbr, || {
            barrier::dsb(barrier::ISHST);
            for page in first..=last {
                // SAFETY: invalidates stage-2 entries of the current VMID for one IPA page.
                unsafe { asm!("tlbi ipas2e1is, {}", in(reg) page, options(nostack, preserves_flags)) };
            }
            finish_with_vmalle1is();
        });
    }

    fn dcache(&self, op: CacheOp, pa: u64, len: u64) {
        // EL2 maps all RAM at VA == PA, cacheable.
        barrier::dsb(barrier::SY);
        match op {
            CacheOp::Clean => super::cache::clean_range(pa, pa + len),
            CacheOp::CleanInvalidate => super::cache::clean_invalidate_range(pa, pa + len),
        }
    }

    fn flush_guest_all(&self, vttbr: u64) {
        with_vttbr(vttbr, || {
            barrier::dsb(barrier::ISHST);
            // SAFETY: invalidates every stage-1 and stage-2 entry of the current VMID (so no
            // separate `vmalle1is` is needed).
            unsafe { asm!("tlbi vmalls12e1is", "dsb ish", "isb", options(nostack, preserves_flags)) };
        });
    }
}
