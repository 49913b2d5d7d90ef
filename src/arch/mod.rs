//! The architecture layer: boot, EL2 system registers, stage-1 MMU, exception vectors,
//! console, PSCI. Everything portable lives outside `arch`.
//!
//! Built for the bare-metal image only (`aarch64-unknown-none`): on a hosted AArch64 target
//! (running the host tests on an Arm machine) it is empty, since it defines `_start`, the panic
//! handler and the global allocator.

#[cfg(target_os = "none")]
pub mod aarch64;
#[cfg(target_os = "none")]
pub use aarch64::*;
