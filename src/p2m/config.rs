//! Choice of the IPA size and the matching VTCR_EL2 value (4 KiB granule).

use crate::types::PAGE_SHIFT;

/// One row of the stage-2 configuration table (Arm ARM D5-6 / Xen `pa_range_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Row {
    pa_bits: u32,
    /// ID_AA64MMFR0_EL1.PARange / VTCR_EL2.PS encoding.
    ps: u64,
    t0sz: u64,
    /// log2 of the number of concatenated root tables.
    root_order: u32,
    sl0: u64,
}

const ROWS: [Row; 6] = [
    Row { pa_bits: 32, ps: 0, t0sz: 32, root_order: 0, sl0: 1 },
    Row { pa_bits: 36, ps: 1, t0sz: 28, root_order: 0, sl0: 1 },
    Row { pa_bits: 40, ps: 2, t0sz: 24, root_order: 1, sl0: 1 },
    Row { pa_bits: 42, ps: 3, t0sz: 22, root_order: 3, sl0: 1 },
    Row { pa_bits: 44, ps: 4, t0sz: 20, root_order: 0, sl0: 2 },
    Row { pa_bits: 48, ps: 5, t0sz: 16, root_order: 0, sl0: 2 },
];

/// The smallest IPA size [`StageConfig::for_machine`] picks: 1 TiB, which holds Xen's Arm guest
/// memory map (RAM banks up to 1 TiB) and, on most machines, dom0's identity map.
pub const MIN_IPA_BITS: u32 = 40;

/// The stage-2 translation regime every domain uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageConfig {
    pub ipa_bits: u32,
    /// Level of the root table: 1 (40-bit and below) or 0 (44- and 48-bit).
    pub root_level: u32,
    /// log2 of the number of concatenated root pages.
    pub root_order: u32,
    pub vtcr: u64,
    pub vmid_bits: u32,
}

/// PARange encodings of ID_AA64MMFR0_EL1 → physical address bits.
pub fn parange_bits(parange: u64) -> Option<u32> {
    ROWS.iter().find(|r| r.ps == parange).map(|r| r.pa_bits).or(if parange == 6 { Some(52) } else { None })
}

impl StageConfig {
    /// Largest supported IPA size not above the CPU's PA size and the configured cap
    /// (48 bits at most: 52-bit IPAs need LPA2 / 64 KiB tables, which we do not use).
    pub fn new(cpu_pa_bits: u32, cap_bits: u32, vmid16: bool) -> Option<StageConfig> {
        let limit = cpu_pa_bits.min(cap_bits).min(48);
        let row = ROWS.iter().rev().find(|r| r.pa_bits <= limit)?;
        let mut vtcr = (1 << 31)        // RES1
            | (row.ps << 16)            // PS
            // TG0 (bits 15:14) = 0b00: 4 KiB granule
            | (3 << 12)                 // SH0 inner shareable
            | (1 << 10)                 // ORGN0 WB-WA
            | (1 << 8)                  // IRGN0 WB-WA
            | (row.sl0 << 6)
            | row.t0sz;
        if vmid16 {
            vtcr |= 1 << 19; // VS
        }
        Some(StageConfig {
            ipa_bits: row.pa_bits,
            root_level: 2 - row.sl0 as u32,
            root_order: row.root_order,
            vtcr,
            vmid_bits: if vmid16 { 16 } else { 8 },
        })
    }

    /// The regime for a machine whose highest physical address (RAM or device) is below
    /// `top`: the smallest IPA size that covers it, at least [`MIN_IPA_BITS`], within what the
    /// CPU supports (its largest size if nothing smaller covers `top`). A smaller IPA means
    /// fewer table levels: every stage-2 walk, the hardware's and ours, is a level shorter.
    pub fn for_machine(cpu_pa_bits: u32, top: u64, vmid16: bool) -> Option<StageConfig> {
        let need = (64 - top.saturating_sub(1).leading_zeros()).max(MIN_IPA_BITS);
        let cap = ROWS.iter().find(|r| r.pa_bits >= need).map_or(48, |r| r.pa_bits);
        StageConfig::new(cpu_pa_bits, cap, vmid16)
    }

    pub fn root_pages(&self) -> u64 {
        1 << self.root_order
    }
    /// Number of GFNs the IPA space holds; larger GFNs are rejected.
    pub fn gfn_limit(&self) -> u64 {
        1 << (self.ipa_bits - PAGE_SHIFT)
    }
    pub fn levels(&self) -> u32 {
        4 - self.root_level
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_three_sizes_of_the_issue() {
        let c40 = StageConfig::new(40, 48, false).unwrap();
        assert_eq!((c40.ipa_bits, c40.root_level, c40.root_pages(), c40.levels()), (40, 1, 2, 3));
        assert_eq!(c40.vtcr & 0x3f, 24);
        assert_eq!((c40.vtcr >> 6) & 3, 1);
        assert_eq!((c40.vtcr >> 16) & 7, 2);

        let c44 = StageConfig::new(44, 48, false).unwrap();
        assert_eq!((c44.ipa_bits, c44.root_level, c44.root_pages(), c44.levels()), (44, 0, 1, 4));
        assert_eq!(c44.vtcr, 0x8004_3594, "RES1 | PS=44-bit | SH0=IS | WBWA | SL0=2 | T0SZ=20");

        let c48 = StageConfig::new(48, 48, true).unwrap();
        assert_eq!((c48.ipa_bits, c48.root_level, c48.root_pages()), (48, 0, 1));
        assert_eq!(c48.vtcr & 0x3f, 16);
        assert_ne!(c48.vtcr & (1 << 19), 0);
    }

    #[test]
    fn for_machine_picks_the_smallest_size_covering_the_address_map() {
        let bits = |cpu, top| StageConfig::for_machine(cpu, top, false).map(|c| (c.ipa_bits, c.levels()));
        // QEMU virt: RAM at 1 GiB, high PCIe MMIO up to 1 TiB.
        assert_eq!(bits(44, 1 << 40), Some((40, 3)));
        // A Raspberry Pi 4: everything below 64 GiB, still 40 bits (Xen's guest layout).
        assert_eq!(bits(44, 0x6_4000_0000), Some((40, 3)));
        assert_eq!(bits(44, 0), Some((40, 3)));
        // One byte above 1 TiB needs the next size the CPU has.
        assert_eq!(bits(44, (1 << 40) + 1), Some((42, 3)));
        assert_eq!(bits(48, (1 << 42) + 1), Some((44, 4)));
        // Beyond what the CPU translates: its largest size (the devices above stay unmapped).
        assert_eq!(bits(40, 1 << 45), Some((40, 3)));
        assert_eq!(bits(36, 1 << 33), Some((36, 3)));
        assert_eq!(bits(48, u64::MAX), Some((48, 4)));
    }

    #[test]
    fn cap_and_cpu_limit_pick_the_largest_row_below() {
        assert_eq!(StageConfig::new(48, 40, false).unwrap().ipa_bits, 40);
        assert_eq!(StageConfig::new(44, 48, false).unwrap().ipa_bits, 44);
        assert_eq!(StageConfig::new(52, 64, false).unwrap().ipa_bits, 48);
        assert_eq!(StageConfig::new(43, 48, false).unwrap().ipa_bits, 42);
        assert_eq!(StageConfig::new(42, 48, false).unwrap().root_pages(), 8);
        assert!(StageConfig::new(31, 48, false).is_none());
        assert_eq!(parange_bits(4), Some(44));
        assert_eq!(parange_bits(7), None);
    }
}
