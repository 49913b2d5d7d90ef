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
    /// A piece of domain `dom`'s console output (no newline in it): the arch layer prints
    /// the `(dN) ` prefix first if it `starts` a line, and a newline after it if it `ends` one.
    fn console_write(&self, dom: DomId, text: &[u8], starts: bool, ends: bool);
    /// The system counter (CNTPCT_EL0) and its frequency in Hz.
    fn counter(&self) -> u64;
    fn counter_hz(&self) -> u64;
    /// A physical SPI given to a guest (its virtual twin is hardware-linked): what the guest
    /// does to the virtual one reaches the physical distributor through these.
    fn irq(&self, intid: u32, op: IrqOp);
}

/// An operation on a physical SPI a guest owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqOp {
    Enable,
    Disable,
    /// Edge-triggered (true) or level-sensitive.
    SetEdge(bool),
    /// Deliver it to this physical CPU.
    Route(usize),
    SetPending,
    ClearPending,
    Deactivate,
}
