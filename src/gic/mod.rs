//! The GIC architecture as the hypervisor needs to know it, portable: interrupt ID ranges and
//! the register maps ([`regs`]) the physical driver and the virtual GIC share.

pub mod regs;

/// SGIs are INTIDs 0-15 (per CPU, software generated).
pub const SGI_END: u32 = 16;
/// PPIs are INTIDs 16-31 (per CPU).
pub const PPI_END: u32 = 32;
/// SPIs are INTIDs 32-1019 (shared).
pub const SPI_END: u32 = 1020;
/// "No pending interrupt" from an acknowledge register.
pub const SPURIOUS: u32 = 1023;

pub const fn is_sgi(intid: u32) -> bool {
    intid < SGI_END
}
pub const fn is_ppi(intid: u32) -> bool {
    intid >= SGI_END && intid < PPI_END
}
/// A per-CPU interrupt (SGI or PPI).
pub const fn is_private(intid: u32) -> bool {
    intid < PPI_END
}
pub const fn is_spi(intid: u32) -> bool {
    intid >= PPI_END && intid < SPI_END
}
