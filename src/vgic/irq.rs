//! One virtual interrupt's state, and the list-register image of it.

/// The state of one virtual interrupt (SGI, PPI or SPI).
///
/// The **pending latch** is what the architecture calls the pending state of an
/// edge-triggered interrupt (and of a level one made pending by a write to ISPENDR): set by an
/// injection, cleared when the pending state moves into a list register (the register then
/// holds it until it comes back at the next fold), by a write to ICPENDR, or when the guest
/// acknowledges the interrupt. Level-sensitive inputs are not modelled as lines: the
/// hypervisor's own sources (the virtual timer, the event-channel upcall) re-raise them as
/// edges, and a hardware-linked SPI re-fires at the physical GIC while its line is asserted
/// (as Xen does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Irq {
    pub enabled: bool,
    pub pending: bool,
    pub active: bool,
    /// Priority (the upper [`PRIORITY_BITS`] bits are implemented).
    pub priority: u8,
    /// Edge-triggered (ICFGR `0b10`); level-sensitive otherwise.
    pub edge: bool,
    /// The physical interrupt it is linked to: its list registers carry HW=1, so the guest's
    /// deactivation deactivates the physical interrupt.
    pub hw: Option<u16>,
    /// The vCPU whose pending/active list holds it.
    pub queued_on: Option<u16>,
    /// GICv2 SGIs: the sources (bit n: vCPU n) of the pending instances.
    pub sgi_sources: u8,
    /// GICv2 SGIs: the source of the active instance.
    pub active_source: u8,
    /// The priority it was delivered (or made active) with. While it is active its list
    /// register keeps that priority, whatever IPRIORITYR says since: a virtual CPU interface
    /// deactivates on EOI only the interrupt whose priority is the one being dropped (GICv3
    /// `ICV_EOIR1_EL1`), so a list register rewritten with a new priority would stay active
    /// for ever (found by the XSA-223 guest).
    pub active_priority: u8,
}

/// Priority bits the virtual GIC implements (5: 32 levels, like the GIC-400 and QEMU's
/// virtual CPU interface); the low bits of IPRIORITYR read as zero.
pub const PRIORITY_BITS: u32 = 5;
pub const PRIORITY_MASK: u8 = !((1u8 << (8 - PRIORITY_BITS)) - 1);

impl Irq {
    /// Pending (any source) or not.
    pub fn is_pending(&self) -> bool {
        self.pending || self.sgi_sources != 0
    }
    /// Must it be on a vCPU's pending/active list? (Pending and enabled, or active.)
    pub fn wants_list(&self) -> bool {
        self.active || (self.enabled && self.is_pending())
    }
    /// Can the guest take it now (ignoring its priority mask)?
    pub fn deliverable(&self) -> bool {
        self.enabled && self.is_pending() && !self.active
    }
}

/// What a list register holds, independent of the GIC version's encoding (the arch layer
/// turns it into ICH_LR<n>_EL2 or GICH_LRn and back).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lr {
    pub vintid: u32,
    pub pending: bool,
    pub active: bool,
    /// The full 8-bit priority (GICv2's register keeps its upper 5 bits).
    pub priority: u8,
    /// Group 1 (GICv3 guests).
    pub group1: bool,
    /// Linked physical INTID (HW=1).
    pub hw: Option<u16>,
    /// GICv2 SGIs: the source CPU (CPUID field).
    pub source: u8,
    /// Ask for a maintenance interrupt when the guest deactivates it (HW=0 only).
    pub eoi_maintenance: bool,
}

impl Lr {
    /// The register holds nothing (or the guest is done with it).
    pub fn is_empty(&self) -> bool {
        !self.pending && !self.active
    }
}
