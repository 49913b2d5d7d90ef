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
//! | [`cache`] | data-cache maintenance by VA |
//! | [`setup`] | the boot sequence, image layout, global state |
//! | [`mmu`] | EL2 stage-1 identity map (W^X) and MMU enable |
//! | [`exceptions`] | VBAR_EL2 vectors, [`exceptions::TrapFrame`], [`exceptions::lower_el_trap`] |
//! | [`esr`] | syndrome decoding for fault reports |
//! | [`gic`] | the interrupt controller behind one interface (GICv2: the Pi 4; GICv3: QEMU virt) |
//! | [`guest`] | entering a vCPU, handling guest traps (hypercalls, PSCI, aborts) |
//! | [`console`] | PL011 console (locked and raw paths) |
//! | [`logger`] | `log` backend |
//! | [`panic`] | panic handler |
//! | [`psci`] | PSCI power-off/reset, semihosting exit |
//! | [`smp`] | per-CPU state, starting secondary CPUs (PSCI or spin table) |
//! | [`tlb`] | stage-2 TLB maintenance ([`crate::tlb::TlbOps`]) |
//! | [`allocator`] | the Rust global allocator |
//! | [`selftest`] | `granite_selftest=fault\|wx\|trap\|p2m` boot-time tests |

pub mod allocator;
pub mod boot;
pub mod cache;
pub mod console;
pub mod esr;
pub mod exceptions;
pub mod gic;
pub mod guest;
pub mod logger;
pub mod mmu;
pub mod panic;
pub mod psci;
pub mod selftest;
pub mod setup;
pub mod smp;
pub mod tlb;
