//! granite: a bare-metal AArch64 type-1 hypervisor speaking Xen's guest ABI.
//!
//! The crate is split in two:
//!
//! * the **portable core** (this crate's modules other than `arch`): the frame table and page
//!   allocator ([`mm`]), the stage-2 P2M ([`p2m`]), grant tables ([`grant`]), domains
//!   ([`domain`], [`hv`]) and the hypercall handlers ([`hypercall`]). It is `no_std` + `alloc`,
//!   builds for the image and for the host, and reaches hardware only through small
//!   interfaces: physical memory ([`mm::PhysMap`]), TLB maintenance ([`tlb::TlbOps`]) and
//!   guest virtual-address translation ([`hypercall::GuestVa`]). Host tests run the same code.
//! * the **arch layer** (`arch`, only for `target_arch = "aarch64"`): boot, EL2 system registers,
//!   exception vectors, GIC, UART, timer, vCPUs.
#![doc = include_str!("lock_order.md")]
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_arch = "aarch64")]
pub mod arch;
pub mod audit;
pub mod bootmem;
pub mod dom0;
pub mod domain;
pub mod domu;
pub mod dt;
pub mod grant;
pub mod hv;
pub mod hypercall;
pub mod mm;
pub mod p2m;
pub mod sync;
pub mod tlb;
pub mod trap;
pub mod types;
pub mod vpsci;

pub mod testing;

/// The lock order, stated once (see the crate documentation above for the full text).
pub const LOCK_ORDER: &str = include_str!("lock_order.md");
