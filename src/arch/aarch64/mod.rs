//! AArch64 at EL2: register access, vectors, entering vCPUs, drivers. Policy lives in the
//! portable core; this layer carries out what it decides.
//!
//! Boot flow ([`boot`] → [`setup::boot`]): relocate, zero `.bss`, point TPIDR_EL2 at CPU 0's
//! per-CPU block, parse the device tree with the MMU off, check the exception level, build the
//! EL2 identity map and turn the MMU and caches on, bring up the console and the logger, plan
//! boot memory, build the frame table, the Rust heap, `Mm` and the `Hypervisor` (reachable
//! through [`percpu::hv`]), write VTCR_EL2, start the GIC and the other CPUs, build dom0 and
//! the domUs, and run dom0's vCPU 0.
//!
//! | module | what |
//! |---|---|
//! | [`boot`] | arm64 Image header, entry, self-relocation |
//! | [`image`] | where the image's parts are; image offsets for fault reports |
//! | [`percpu`] | per-CPU blocks (TPIDR_EL2): index, MPIDR, stack, current vCPU; the hypervisor context |
//! | [`setup`] | the boot sequence (imported by nobody) |
//! | [`cache`] | data-cache maintenance by VA |
//! | [`mmu`] | EL2 stage-1 identity map (W^X) and MMU enable |
//! | [`exceptions`] | VBAR_EL2 vectors, [`exceptions::TrapFrame`], the lower-EL trap handler hook |
//! | [`esr`] | syndrome decoding for fault reports |
//! | [`gic`] | the interrupt controller behind one interface (GICv2: the Pi 4; GICv3: QEMU virt) |
//! | [`vcpu_run`] | entering a vCPU, the idle loop, carrying out guest traps (hypercalls, PSCI, aborts) |
//! | [`hw`] | the machine services the core uses ([`crate::hw::Hw`]) |
//! | [`console`] | PL011 console (locked and raw paths) |
//! | [`logger`] | `log` backend |
//! | [`panic`] | panic handler |
//! | [`psci`] | PSCI power-off/reset, semihosting exit |
//! | [`smp`] | starting secondary CPUs (PSCI or spin table) |
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
pub mod hw;
pub mod image;
pub mod logger;
pub mod mmu;
pub mod panic;
pub mod percpu;
pub mod psci;
pub mod selftest;
pub mod setup;
pub mod smp;
pub mod tlb;
pub mod vcpu_run;
