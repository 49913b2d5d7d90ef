//! Where dom0 goes in host memory: its direct-mapped RAM banks, where the kernel, initrd and
//! device tree are placed in them, the grant-table region and the extended regions.

use crate::bootmem::{BootMem, BootMemError, Range};
use alloc::vec::Vec;

const MIB: u64 = 1 << 20;
/// Dom0 banks start and end on 2 MiB boundaries (stage-2 block mappings, Image placement).
pub const BANK_ALIGN: u64 = 2 * MIB;
/// At most this many RAM banks (Xen's dom0 usually gets a handful).
pub const MAX_BANKS: usize = 4;
/// Room reserved for dom0's device tree (Linux accepts up to 2 MiB).
pub const DTB_SLOT: u64 = 2 * MIB;
/// Extended regions smaller than this are not advertised (Xen: 64 MiB).
pub const EXT_REGION_MIN: u64 = 64 * MIB;
pub const MAX_EXT_REGIONS: usize = 8;

fn up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}
fn down(x: u64, a: u64) -> u64 {
    x / a * a
}

/// Carve `size` bytes of dom0 RAM from the plan, as low as possible (a direct-mapped dom0
/// wants DMA-capable low memory), in one bank if any free range can hold it, else in up to
/// [`MAX_BANKS`] banks, lowest first. The first bank is at least `first_bank_min` bytes.
///
/// With a `dma_limit` (the end of the narrowest bus DMA window, [`crate::dt::Platform::dma_limit`])
/// the first bank, which holds the kernel and where Linux finds its DMA zone and its swiotlb
/// bounce buffer, lies below it whenever a free range there can hold `first_bank_min`: all of
/// dom0 if it fits below the limit, else as much of the first bank as fits there.
pub fn carve_ram(
    bm: &mut BootMem,
    size: u64,
    first_bank_min: u64,
    dma_limit: Option<u64>,
) -> Result<Vec<Range>, BootMemError> {
    let size = up(size.max(first_bank_min), BANK_ALIGN);
    let usable: Vec<Range> = bm
        .free()
        .iter()
        .map(|r| Range { start: up(r.start, BANK_ALIGN), end: down(r.end, BANK_ALIGN) })
        .filter(|r| r.end > r.start)
        .collect();
    let limit = dma_limit.map_or(u64::MAX, |l| down(l, BANK_ALIGN));
    let below: Vec<Range> = subtract(&usable, &[Range { start: limit, end: u64::MAX }]);
    let mut banks = Vec::new();
    let one = below.iter().find(|r| r.len() >= size);
    // Without a DMA constraint (or with nothing usable below it), one bank anywhere if it fits.
    let low_first = below.iter().any(|r| r.len() >= first_bank_min);
    let one = one.or_else(|| if low_first { None } else { usable.iter().find(|r| r.len() >= size) });
    if let Some(r) = one {
        banks.push(Range { start: r.start, end: r.start + size });
    } else {
        // The first bank below the DMA limit if possible, then the rest lowest first.
        let first = below.iter().chain(usable.iter()).find(|r| r.len() >= first_bank_min).copied();
        let Some(first) = first else { return Err(BootMemError::OutOfMemory) };
        let first = Range { start: first.start, end: first.start + first.len().min(size) };
        banks.push(first);
        let mut left = size - first.len();
        for r in subtract(&usable, &[first]).iter() {
            if left == 0 || banks.len() == MAX_BANKS {
                break;
            }
            let n = r.len().min(left);
            banks.push(Range { start: r.start, end: r.start + n });
            left -= n;
        }
        if left != 0 {
            return Err(BootMemError::OutOfMemory);
        }
    }
    for b in &banks {
        bm.take_at(b.start, b.len(), "dom0 RAM")?;
    }
    banks.sort();
    Ok(banks)
}

/// Where the boot payloads go in dom0's first bank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub kernel: u64,
    pub initrd: Option<(u64, u64)>,
    pub dtb: u64,
}

/// Lay out kernel (at the 2 MiB aligned bank start + `text_offset`, `image_size` bytes), then
/// the initrd and the device tree, each on a 2 MiB boundary, inside `bank`.
pub fn place(bank: Range, text_offset: u64, image_size: u64, initrd_len: Option<u64>) -> Option<Placement> {
    let kernel = bank.start + text_offset;
    let mut next = up(kernel + image_size, BANK_ALIGN);
    let initrd = initrd_len.map(|len| {
        let s = next;
        next = up(s + len, BANK_ALIGN);
        (s, s + len)
    });
    let dtb = next;
    (dtb + DTB_SLOT <= bank.end).then_some(Placement { kernel, initrd, dtb })
}

/// The minimum first-bank size for a kernel of `image_size` plus an initrd.
pub fn first_bank_min(text_offset: u64, image_size: u64, initrd_len: Option<u64>) -> u64 {
    up(text_offset + image_size, BANK_ALIGN) + initrd_len.map_or(0, |l| up(l, BANK_ALIGN)) + DTB_SLOT
}

/// Subtract `holes` from `ranges`.
pub fn subtract(ranges: &[Range], holes: &[Range]) -> Vec<Range> {
    let mut out: Vec<Range> = ranges.to_vec();
    for h in holes {
        out = out
            .into_iter()
            .flat_map(|r| {
                let mut v = Vec::new();
                if h.end <= r.start || h.start >= r.end {
                    v.push(r);
                } else {
                    if h.start > r.start {
                        v.push(Range { start: r.start, end: h.start });
                    }
                    if h.end < r.end {
                        v.push(Range { start: h.end, end: r.end });
                    }
                }
                v
            })
            .collect();
    }
    out
}

/// Extended regions of a direct-mapped dom0 on a machine without an IOMMU (Xen's
/// `find_unallocated_memory`): host RAM minus dom0's RAM, reserved memory, the MMIO mapped
/// into dom0 (passed-through devices, none of which should be in RAM, but a device tree may
/// say otherwise) and the grant-table region; 2 MiB aligned; at least 64 MiB each. Host RAM
/// dom0 does not own is the one guest-physical space known to hold no device.
pub fn extended_regions(
    host_ram: &[Range],
    dom0_ram: &[Range],
    reserved: &[Range],
    mmio: &[Range],
    grant: Range,
) -> Vec<Range> {
    let mut holes: Vec<Range> = dom0_ram.to_vec();
    holes.extend_from_slice(reserved);
    holes.extend_from_slice(mmio);
    holes.push(grant);
    subtract(host_ram, &holes)
        .into_iter()
        .map(|r| Range { start: up(r.start, BANK_ALIGN), end: down(r.end, BANK_ALIGN) })
        .filter(|r| r.end > r.start && r.len() >= EXT_REGION_MIN)
        .take(MAX_EXT_REGIONS)
        .collect()
}

/// The first PPI (16..31) not used by the host's own devices: the event-channel interrupt
/// (Xen: "Allocating PPI 16 for event channel interrupt").
pub fn evtchn_ppi(used: &[u32]) -> Option<u32> {
    (16..32).find(|p| !used.contains(p))
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::dt::Region;

    fn r(start: u64, end: u64) -> Range {
        Range { start, end }
    }

    #[test]
    fn dom0_ram_is_low_contiguous_and_away_from_reservations() {
        // QEMU virt, 2 GiB: our image at +2 MiB, a module at 0x49000000, DTB near the top.
        let mut bm = BootMem::new(&[Region::new(0x4000_0000, 0x8000_0000)]).unwrap();
        bm.reserve(0x4020_0000, 0x10_0000, "image").unwrap();
        bm.reserve(0x4900_0000, 0x30_0000, "module").unwrap();
        bm.reserve(0xbfe0_0000, 0x10_0000, "dtb").unwrap();
        let banks = carve_ram(&mut bm, 128 * MIB, first_bank_min(0, 0x30_0000, None), None).unwrap();
        // [0x40300000, 0x49000000) is the lowest free range that holds 128 MiB, 2 MiB aligned.
        assert_eq!(banks, vec![r(0x4040_0000, 0x4840_0000)]);
        assert!(bm.free().iter().all(|f| f.end <= 0x4040_0000 || f.start >= 0x4840_0000));
        let p = place(banks[0], 0, 0x30_0000, Some(0x5_0000)).unwrap();
        assert_eq!(p, Placement { kernel: 0x4040_0000, initrd: Some((0x4080_0000, 0x4085_0000)), dtb: 0x40a0_0000 });
        // With 256 MiB it does not fit below the module any more: the next range it is.
        let banks = carve_ram(&mut bm, 256 * MIB, 0, None).unwrap();
        assert_eq!(banks, vec![r(0x4940_0000, 0x5940_0000)]);
    }

    #[test]
    fn fragmented_memory_gives_several_banks_and_refuses_too_much() {
        let mut bm = BootMem::new(&[Region::new(0, 0x1000_0000)]).unwrap(); // 256 MiB
        for i in 1..4u64 {
            bm.reserve(i * 0x400_0000, MIB, "hole").unwrap(); // holes every 64 MiB
        }
        let banks = carve_ram(&mut bm, 150 * MIB, 8 * MIB, None).unwrap();
        assert_eq!(banks.len(), 3);
        assert_eq!(banks[0].start, 0);
        assert_eq!(banks.iter().map(|b| b.len()).sum::<u64>(), 150 * MIB);
        assert!(banks.iter().all(|b| b.start % BANK_ALIGN == 0 && b.len() % BANK_ALIGN == 0));
        let mut bm = BootMem::new(&[Region::new(0, 0x1000_0000)]).unwrap();
        assert_eq!(carve_ram(&mut bm, 512 * MIB, 0, None), Err(BootMemError::OutOfMemory));
        // a kernel too big for the first bank is refused by place()
        assert_eq!(place(r(0, 4 * MIB), 0, 3 * MIB, None), None);
    }

    #[test]
    fn the_first_bank_stays_below_the_dma_limit() {
        // A 4 GiB Raspberry Pi 4: RAM below the GPU's carve-out, then up to the peripherals,
        // then above 4 GiB; the firmware's page at 0 and our image at 2 MiB reserved.
        let pi = [
            Region::new(0, 0x3b40_0000),
            Region::new(0x4000_0000, 0xbc00_0000),
            Region::new(0x1_0000_0000, 0x4000_0000),
        ];
        let fresh = || {
            let mut bm = BootMem::new(&pi).unwrap();
            bm.reserve(0, 0x1000, "firmware").unwrap();
            bm.reserve(0x20_0000, 0x9_8000, "image").unwrap();
            bm
        };
        let gib = 1u64 << 30;
        // fits below 1 GiB: one bank there, as low as possible
        let b = carve_ram(&mut fresh(), 512 * MIB, 16 * MIB, Some(gib)).unwrap();
        assert_eq!(b, vec![r(0x40_0000, 0x2040_0000)]);
        // 2 GiB: without a limit, one bank above 1 GiB (bad for DMA); with it, the first bank
        // fills what is free below 1 GiB and the rest follows
        let b = carve_ram(&mut fresh(), 2 * gib, 16 * MIB, None).unwrap();
        assert_eq!(b, vec![r(0x4000_0000, 0xc000_0000)]);
        let b = carve_ram(&mut fresh(), 2 * gib, 16 * MIB, Some(gib)).unwrap();
        assert_eq!(b[0], r(0x40_0000, 0x3b40_0000), "all of the low RAM");
        assert_eq!(b[1].start, 0x4000_0000);
        assert_eq!(b.iter().map(|b| b.len()).sum::<u64>(), 2 * gib);
        // a limit nothing fits under is ignored rather than failing
        let b = carve_ram(&mut fresh(), 64 * MIB, 16 * MIB, Some(0x40_0000)).unwrap();
        assert_eq!(b, vec![r(0x40_0000, 0x440_0000)]);
    }

    #[test]
    fn extended_regions_are_what_xen_would_advertise() {
        let host = [r(0x4000_0000, 0xc000_0000)];
        let dom0 = [r(0x6000_0000, 0x8000_0000)];
        let ext = extended_regions(&host, &dom0, &[], &[], r(0x4020_0000, 0x4024_0000));
        // Xen's log for this layout: 0x40400000->0x60000000 and 0x80000000->0xc0000000
        assert_eq!(ext, vec![r(0x4040_0000, 0x6000_0000), r(0x8000_0000, 0xc000_0000)]);
        let small = extended_regions(&[r(0, 0x300_0000)], &[], &[], &[], r(0, 0x1000));
        assert!(small.is_empty(), "regions under 64 MiB are dropped");
        // MMIO a device tree places inside RAM is not offered either
        let ext = extended_regions(&host, &dom0, &[], &[r(0x9000_0000, 0x9000_1000)], r(0x4020_0000, 0x4024_0000));
        assert_eq!(ext, vec![r(0x4040_0000, 0x6000_0000), r(0x8000_0000, 0x9000_0000), r(0x9020_0000, 0xc000_0000)]);
        assert_eq!(evtchn_ppi(&[25, 26, 27, 29, 30]), Some(16));
        assert_eq!(evtchn_ppi(&(16..32).collect::<Vec<_>>()), None);
    }
}
