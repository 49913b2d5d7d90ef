//! What the portable core asks of the machine beyond memory ([`crate::mm::PhysMap`]), TLB and
//! cache maintenance ([`crate::tlb::TlbOps`]) and guest virtual-address translation
//! ([`crate::hypercall::GuestVa`]). The arch layer implements [`Hw`] with the GIC, the UART and
//! the system counter; host tests use [`crate::testing::FakeHw`], which records what it is
//! asked.

use crate::types::DomId;

pub trait Hw: Send + Sync {
    /// Make physical CPU `pcpu` look at the vCPU pinned to it (an SGI). Harmless if that CPU
    /// has nothing to see.
    fn kick(&self, pcpu: usize);
    /// One complete line of domain `dom`'s console output (no newline).
    fn console_line(&self, dom: DomId, line: &str);
    /// The system counter (CNTPCT_EL0) and its frequency in Hz.
    fn counter(&self) -> u64;
    fn counter_hz(&self) -> u64;
}
