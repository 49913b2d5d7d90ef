//! The EL1 virtual timer (CNTV_*) and the virtual counter, for guests that take its
//! interrupt (PPI 27 on QEMU virt, Xen and granite).

use core::arch::asm;

/// The virtual timer's interrupt (the device tree's `/timer` third entry: PPI 11).
pub const VTIMER_INTID: u32 = 27;
/// CNTV_CTL_EL0 bits.
pub const CTL_ENABLE: u64 = 1;
pub const CTL_IMASK: u64 = 1 << 1;
pub const CTL_ISTATUS: u64 = 1 << 2;

macro_rules! reg_rw {
    ($get:ident, $set:ident, $name:literal) => {
        #[inline(always)]
        pub fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading a timer register has no side effects.
            unsafe { asm!(concat!("isb; mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        #[inline(always)]
        pub fn $set(v: u64) {
            // SAFETY: programming this CPU's virtual timer changes no memory. Not `nomem`:
            // its interrupt may run code that reads memory written before.
            unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

reg_rw!(ctl, set_ctl, "cntv_ctl_el0");
reg_rw!(cval, set_cval, "cntv_cval_el0");
reg_rw!(tval, set_tval, "cntv_tval_el0");

/// The virtual counter (CNTVCT_EL0), read after an `isb` (not speculated early).
#[inline(always)]
pub fn now() -> u64 {
    let v: u64;
    // SAFETY: reading the counter has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The counter frequency (CNTFRQ_EL0), in Hz.
pub fn freq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v.max(1)
}

/// Counter ticks in `us` microseconds.
pub fn ticks_from_us(us: u64) -> u64 {
    us * freq() / 1_000_000
}

/// Microseconds in `ticks` counter ticks.
pub fn us_from_ticks(ticks: u64) -> u64 {
    ticks * 1_000_000 / freq()
}

/// Spins until `cond` holds or `us` microseconds passed; returns whether it held.
pub fn wait_until(us: u64, mut cond: impl FnMut() -> bool) -> bool {
    let end = now() + ticks_from_us(us);
    loop {
        if cond() {
            return true;
        }
        if now() >= end {
            return cond();
        }
        core::hint::spin_loop();
    }
}

/// Spins for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = now() + ticks_from_us(us);
    while now() < end {
        core::hint::spin_loop();
    }
}

/// Waits for an interrupt (WFI), after a barrier.
#[inline(always)]
pub fn wfi() {
    // SAFETY: WFI only waits; an interrupt taken after it (if unmasked) runs its handler.
    unsafe { asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}
