//! AArch64 at EL2.
//!
//! Boot flow ([`boot`] → [`setup::boot`]): relocate, zero `.bss`, parse the device tree with
//! the MMU off, check the exception level, build the EL2 identity map and turn the MMU and
//! caches on, bring up the console and the logger, plan boot memory, build the frame table,
//! the Rust heap, `Mm` and the `Hypervisor` (reachable through [`setup::hypervisor`]), write
//! VTCR_EL2, and (for now: there is no dom0 support yet) power off.
//!
//! | module | what |
//! |---|---|
//! | [`boot`] | arm64 Image header, entry, self-relocation |
//! | [`setup`] | the boot sequence, image layout, global state |
//! | [`mmu`] | EL2 stage-1 identity map (W^X) and MMU enable |
//! | [`exceptions`] | VBAR_EL2 vectors, [`exceptions::TrapFrame`], [`exceptions::lower_el_trap`] |
//! | [`esr`] | syndrome decoding for fault reports |
//! | [`guest`] | entering a vCPU, handling guest traps (hypercalls, PSCI, aborts) |
//! | [`console`] | PL011 console (locked and raw paths) |
//! | [`logger`] | `log` backend |
//! | [`panic`] | panic handler |
//! | [`psci`] | PSCI power-off/reset, semihosting exit |
//! | [`tlb`] | stage-2 TLB maintenance ([`crate::tlb::TlbOps`]) |
//! | [`allocator`] | the Rust global allocator |
//! | [`selftest`] | `granite_selftest=fault\|wx\|trap\|p2m` boot-time tests |

pub mod allocator;
pub mod boot;
pub mod console;
pub mod esr;
pub mod exceptions;
pub mod guest;
pub mod logger;
pub mod mmu;
pub mod panic;
pub mod psci;
pub mod selftest;
pub mod setup;
pub mod tlb;
