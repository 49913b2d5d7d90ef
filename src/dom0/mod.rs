//! Building dom0 the way Xen 4.17 does on Arm: a direct-mapped domain (guest physical ==
//! machine physical) whose kernel is an arm64 `Image` boot module, entered with a device tree
//! the hypervisor writes for it.
//!
//! Two steps, matching boot memory's two steps:
//! 1. [`plan`], while RAM is still being carved: choose dom0's RAM banks (low memory first)
//!    and where the kernel, initrd and device tree go, the grant-table region (Xen's choice:
//!    the hypervisor image's own addresses, never dom0 RAM), the extended regions and the
//!    event-channel PPI;
//! 2. [`build`], once the hypervisor exists: create domain 0, give it its RAM 1:1, copy the
//!    payloads and write its device tree. The arch layer then cleans the written ranges to
//!    the point of coherency and enters vCPU 0 at [`Dom0::entry`] with x0 = [`Dom0::dtb`].

pub mod fdt;
pub mod image;
pub mod layout;

use crate::bootmem::{BootMem, BootMemError, Range};
use crate::domain::Domain;
use crate::dt::{GicVersion, Platform};
use crate::hv::Hypervisor;
use crate::p2m::P2mType;
use crate::types::{Errno, Gfn, Mfn, PAGE_SIZE};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use image::{ImageError, ImageHeader};
use layout::Placement;

/// Default dom0 memory when the command line has no `dom0_mem=`.
pub const DEFAULT_DOM0_MEM: u64 = 128 << 20;

/// Why dom0 cannot be built.
#[derive(Clone, Debug)]
pub enum Dom0Error {
    NoKernel,
    BadImage { at: u64, why: ImageError },
    Memory(BootMemError),
    DoesNotFit,
    Create(Errno),
    DeviceTree(String),
    NoGic,
}

impl core::fmt::Display for Dom0Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Dom0Error::NoKernel => write!(f, "no dom0 kernel: /chosen has no multiboot,kernel module"),
            Dom0Error::BadImage { at, why } => {
                write!(f, "the dom0 kernel module at {at:#x} is not an arm64 Image: {why}")
            }
            Dom0Error::Memory(e) => write!(f, "no room for dom0's RAM: {e}"),
            Dom0Error::DoesNotFit => write!(f, "dom0's kernel, initrd and device tree do not fit its first RAM bank"),
            Dom0Error::Create(e) => write!(f, "creating domain 0 failed: {}", e.name()),
            Dom0Error::DeviceTree(e) => write!(f, "writing dom0's device tree failed: {e}"),
            Dom0Error::NoGic => write!(f, "the device tree has no interrupt controller to give dom0"),
        }
    }
}

/// Decisions taken while boot memory is planned.
#[derive(Clone, Debug)]
pub struct Dom0Plan {
    pub header: ImageHeader,
    pub banks: Vec<Range>,
    pub placement: Placement,
    /// `[start, end)` of the grant-table region and its number of frames.
    pub grant: Range,
    pub grant_frames: u32,
    pub extended: Vec<Range>,
    pub evtchn_ppi: u32,
}

/// What step 1 needs to know.
pub struct PlanInputs<'a> {
    /// The hypervisor image's `[start, end)`.
    pub image: Range,
    /// Where the kernel module is, and its bytes.
    pub kernel_at: u64,
    pub kernel: &'a [u8],
    pub initrd_len: Option<u64>,
    /// `dom0_mem=`.
    pub dom0_mem: u64,
    /// `gnttab_max_frames=`.
    pub max_grant_frames: u32,
}

/// Step 1: carve dom0's RAM from `bm` and decide the layout.
pub fn plan(bm: &mut BootMem, plat: &Platform, inp: &PlanInputs) -> Result<Dom0Plan, Dom0Error> {
    let PlanInputs { image, kernel_at, kernel, initrd_len, dom0_mem, max_grant_frames } = *inp;
    let header = ImageHeader::parse(kernel).map_err(|why| Dom0Error::BadImage { at: kernel_at, why })?;
    let min = layout::first_bank_min(header.text_offset, header.image_size, initrd_len);
    let banks = layout::carve_ram(bm, dom0_mem, min).map_err(Dom0Error::Memory)?;
    let placement =
        layout::place(banks[0], header.text_offset, header.image_size, initrd_len).ok_or(Dom0Error::DoesNotFit)?;
    // Xen: the grant table goes where the hypervisor's own image is, which is never dom0 RAM,
    // with as many frames as fit (at most gnttab_max_frames).
    let grant_frames = ((image.len() / PAGE_SIZE) as u32).min(max_grant_frames).max(1);
    let grant = Range { start: image.start, end: image.start + grant_frames as u64 * PAGE_SIZE };
    let reserved: Vec<Range> = plat
        .memreserve
        .iter()
        .chain(plat.reserved_memory.iter().map(|r| &r.region))
        .map(|r| Range { start: r.base, end: r.end() })
        .collect();
    let ram: Vec<Range> = bm.ram().to_vec();
    let extended = layout::extended_regions(&ram, &banks, &reserved, grant);
    let mut used: Vec<u32> = Vec::new();
    if let Some(t) = &plat.timer {
        used.extend([t.secure_phys, t.phys, t.virt, t.hyp_phys, t.hyp_virt].into_iter().flatten());
    }
    if let Some(irq) = plat.gic.as_ref().and_then(|g| g.maintenance_irq) {
        used.push(irq);
    }
    let evtchn_ppi = layout::evtchn_ppi(&used).unwrap_or(31);
    Ok(Dom0Plan { header, banks, placement, grant, grant_frames, extended, evtchn_ppi })
}

/// Dom0, built.
pub struct Dom0 {
    pub domain: Arc<Domain>,
    pub entry: u64,
    pub dtb: u64,
    /// Ranges written with the caches on (to clean before a guest with its MMU off runs).
    pub written: Vec<Range>,
}

fn timer_ppis(plat: &Platform) -> [u32; 4] {
    // Device-tree numbering of PPIs (INTID - 16); the architected defaults if absent.
    let t = plat.timer.unwrap_or_default();
    let ppi = |x: Option<u32>, dflt: u32| x.map_or(dflt, |i| i.saturating_sub(16));
    [ppi(t.secure_phys, 13), ppi(t.phys, 14), ppi(t.virt, 11), ppi(t.hyp_phys, 10)]
}

/// Step 2: create domain 0 from `plan` and load it. `iomem` lists the MMIO frame ranges
/// `[start, end)` dom0 may map with `XENMAPSPACE_dev_mmio`.
pub fn build(
    hv: &Hypervisor,
    plat: &Platform,
    plan: &Dom0Plan,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    iomem: &[(u64, u64)],
) -> Result<Dom0, Dom0Error> {
    let gic = plat.gic.as_ref().ok_or(Dom0Error::NoGic)?;
    let mut cfg = hv.domain_config(0);
    cfg.privileged = true;
    cfg.direct_map = true;
    cfg.max_grant_frames = plan.grant_frames;
    // The hardware domain takes its stage-2 tables from the heap, unbounded (as on Xen).
    cfg.p2m_table_limit = u64::MAX;
    let d = hv.create_domain(cfg).map_err(Dom0Error::Create)?;
    let mm = &hv.mm;
    {
        let mut p2m = d.p2m.write(mm);
        for b in &plan.banks {
            mm.assign_boot_frames(b.first_mfn(), b.frames(), 0);
            p2m.insert(Gfn(b.start >> 12), b.frames(), Mfn(b.start >> 12), P2mType::RamRw)
                .map_err(Dom0Error::Create)?;
        }
    }
    for &(s, e) in iomem {
        d.permit_iomem(s, e);
    }
    let pl = plan.placement;
    let mut written = Vec::new();
    mm.phys.write(pl.kernel, kernel);
    written.push(Range { start: pl.kernel, end: pl.kernel + kernel.len() as u64 });
    if let (Some(bytes), Some((s, e))) = (initrd, pl.initrd) {
        mm.phys.write(s, bytes);
        written.push(Range { start: s, end: e });
    }

    let memory: Vec<(u64, u64)> = plan.banks.iter().map(|b| (b.start, b.len())).collect();
    let ext: Vec<(u64, u64)> = plan.extended.iter().map(|r| (r.start, r.len())).collect();
    let reserved: Vec<(String, u64, u64)> = plat
        .reserved_memory
        .iter()
        .map(|r| (r.name.split('@').next().unwrap_or("reserved").to_string(), r.region.base, r.region.size))
        .collect();
    let mut gic_reg = Vec::from([(gic.dist.base, gic.dist.size)]);
    match gic.version {
        GicVersion::V3 => gic_reg.extend(gic.redist.iter().map(|r| (r.base, r.size))),
        GicVersion::V2 => gic_reg.extend(gic.cpu_if.iter().map(|r| (r.base, r.size))),
    }
    let tree = fdt::Dom0Tree {
        model: "granite dom0",
        compatible: &["linux,dummy-virt"],
        memory: &memory,
        bootargs: cmdline,
        initrd: pl.initrd,
        vcpus: 1,
        gic: fdt::GicNode {
            compatible: Vec::from([gic.compatible.to_string()]),
            reg: gic_reg,
            redistributor_regions: (gic.redist.len() > 1).then_some(gic.redist.len() as u32),
        },
        timer_ppis: timer_ppis(plat),
        evtchn_ppi: plan.evtchn_ppi,
        grant_region: (plan.grant.start, plan.grant.len()),
        extended_regions: &ext,
        reserved: &reserved,
        xen_version: "4.17",
    };
    let blob = tree.build().map_err(|e| Dom0Error::DeviceTree(alloc::format!("{e:?}")))?;
    if blob.len() as u64 > layout::DTB_SLOT {
        return Err(Dom0Error::DeviceTree("larger than 2 MiB".into()));
    }
    mm.phys.write(pl.dtb, &blob);
    written.push(Range { start: pl.dtb, end: pl.dtb + blob.len() as u64 });

    for (i, b) in plan.banks.iter().enumerate() {
        log::info!("d0: BANK[{i}] {:#x}-{:#x} ({} MiB)", b.start, b.end, b.len() >> 20);
    }
    log::info!(
        "d0: loading kernel ({} bytes) to {:#x}, text_offset {:#x}",
        kernel.len(),
        pl.kernel,
        plan.header.text_offset
    );
    if let Some((s, e)) = pl.initrd {
        log::info!("d0: loading initrd to {s:#x}-{e:#x}");
    }
    log::info!("d0: loading device tree ({} bytes) to {:#x}", blob.len(), pl.dtb);
    log::info!("Grant table range: {:#x}-{:#x} ({} frames)", plan.grant.start, plan.grant.end, plan.grant_frames);
    log::info!("Allocating PPI {} for event channel interrupt", plan.evtchn_ppi);
    for (i, r) in plan.extended.iter().enumerate() {
        log::info!("d0: extended region {i}: {:#x}->{:#x}", r.start, r.end);
    }
    Ok(Dom0 { domain: d, entry: pl.kernel, dtb: pl.dtb, written })
}
