//! granite: a bare-metal AArch64 type-1 hypervisor speaking Xen's guest ABI.
//!
//! The crate is split in two:
//!
//! * the **portable core** (this crate's modules other than `arch`): the frame table and page
//!   allocator ([`mm`]), the stage-2 P2M ([`p2m`]), grant tables ([`grant`]), domains and
//!   their vCPUs ([`domain`], [`vcpu`], [`hv`], [`lifecycle`], [`sched`]), PSCI ([`vpsci`]) and
//!   the hypercall handlers ([`hypercall`]). It is `no_std` + `alloc` on the image (host builds
//!   link `std` for the lock-order checker of [`sync`] and for tests), and reaches hardware only
//!   through small interfaces: physical memory ([`mm::PhysMap`]), TLB maintenance
//!   ([`tlb::TlbOps`]), guest virtual-address translation ([`hypercall::GuestVa`]) and the
//!   machine's services ([`hw::Hw`]: kicks, console, counter). Host tests run the same code.
//! * the **arch layer** (`arch`, only for `target_os = "none"`): boot, EL2 system registers,
//!   exception vectors, GIC, UART, entering vCPUs and carrying out what the core decides.
//!
//! No module cycle: at every level of the module tree the modules under one parent depend on
//! each other acyclically (`scripts/lib/modcycles.py src`, run by the test command).
#![doc = include_str!("lock_order.md")]
#![cfg_attr(target_os = "none", no_std)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

#[cfg(target_arch = "aarch64")]
pub mod arch;
pub mod audit;
pub mod bootmem;
pub mod console;
pub mod descriptor;
pub mod dom0;
pub mod domain;
pub mod domu;
pub mod dt;
pub mod evtchn;
pub mod gic;
pub mod grant;
pub mod hv;
pub mod hw;
pub mod hypercall;
pub mod input;
pub mod lifecycle;
pub mod mm;
pub mod mmio;
pub mod p2m;
pub mod ratelimit;
pub mod sched;
pub mod sync;
pub mod sysreg;
pub mod time;
pub mod tlb;
pub mod trap;
pub mod types;
pub mod vcpu;
pub mod vgic;
pub mod vpsci;
pub mod vtimer;

pub mod testing;

/// The lock order, stated once (see the crate documentation above for the full text).
pub const LOCK_ORDER: &str = include_str!("lock_order.md");
