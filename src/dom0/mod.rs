//! Building dom0 the way Xen 4.17 does on Arm: a direct-mapped domain (guest physical ==
//! machine physical) whose kernel is an arm64 `Image` boot module, entered with a device tree
//! the hypervisor writes for it.
//!
//! Two steps, matching boot memory's two steps:
//! 1. [`plan`], while RAM is still being carved: choose dom0's RAM banks (low memory first)
//!    and where the kernel, initrd and device tree go, the grant-table region (Xen's choice:
//!    the hypervisor image's own addresses, never dom0 RAM), the extended regions and the
//!    event-channel PPI;
//! 2. [`build`], once the hypervisor exists: create domain 0, give it its RAM 1:1, map its
//!    devices ([`Devices`]), copy the payloads and write its device tree. The arch layer then
//!    cleans the written ranges to the point of coherency and enters vCPU 0 at
//!    [`Dom0::entry`] with x0 = [`Dom0::dtb`].
//!
//! Devices (Xen's hardware-domain rules): every device the host device tree describes is
//! passed through, its MMIO mapped 1:1 ([`passthrough`]), except what the hypervisor keeps
//! (the interrupt controller and its console UART); on GICv2 the virtual CPU interface (GICV)
//! appears at the address of the CPU interface (GICC). Dom0's device tree is then the host's,
//! copied node by node ([`fdt::HostTree`]), with `/memory`, `/chosen`, `/cpus`, `/psci`, the
//! GIC, the timer and `/hypervisor` written for dom0.

pub mod fdt;
pub mod image;
pub mod layout;

use crate::bootmem::{BootMem, BootMemError, Range};
use crate::domain::Domain;
use crate::dt::{DeviceTree, GicVersion, Platform, Region, Visit};
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
            Dom0Error::NoKernel => {
                write!(f, "no dom0 kernel: /chosen has no multiboot,kernel module (nor linux,initrd-start/end)")
            }
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
    /// The physical CPU of each of dom0's vCPUs (set by the caller once it knows which CPUs
    /// are online; vCPU 0 on CPU 0 by default).
    pub pcpus: Vec<usize>,
    /// The host devices' MMIO, mapped 1:1 (page aligned, merged).
    pub passthrough: Vec<Range>,
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
    /// The host devices' MMIO to map into dom0 1:1 ([`passthrough`]); kept out of the
    /// extended regions.
    pub mmio: &'a [Range],
}

/// Step 1: carve dom0's RAM from `bm` and decide the layout.
pub fn plan(bm: &mut BootMem, plat: &Platform, inp: &PlanInputs) -> Result<Dom0Plan, Dom0Error> {
    let PlanInputs { image, kernel_at, kernel, initrd_len, dom0_mem, max_grant_frames, mmio } = *inp;
    let header = ImageHeader::parse(kernel).map_err(|why| Dom0Error::BadImage { at: kernel_at, why })?;
    let min = layout::first_bank_min(header.text_offset, header.image_size, initrd_len);
    let banks = layout::carve_ram(bm, dom0_mem, min, plat.dma_limit).map_err(Dom0Error::Memory)?;
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
    let extended = layout::extended_regions(&ram, &banks, &reserved, mmio, grant);
    let mut used: Vec<u32> = Vec::new();
    if let Some(t) = &plat.timer {
        used.extend([t.secure_phys, t.phys, t.virt, t.hyp_phys, t.hyp_virt].into_iter().flatten());
    }
    if let Some(irq) = plat.gic.as_ref().and_then(|g| g.maintenance_irq) {
        used.push(irq);
    }
    let evtchn_ppi = layout::evtchn_ppi(&used).unwrap_or(31);
    let passthrough = mmio.to_vec();
    Ok(Dom0Plan {
        header,
        banks,
        placement,
        grant,
        grant_frames,
        extended,
        evtchn_ppi,
        pcpus: Vec::from([0]),
        passthrough,
    })
}

/// Page-aligned `[start, end)` of a region (rounded outwards).
fn pages(r: &Region) -> Range {
    Range { start: r.base & !(PAGE_SIZE - 1), end: r.end().next_multiple_of(PAGE_SIZE) }
}

/// Sort and merge touching or overlapping ranges.
fn merge(mut v: Vec<Range>) -> Vec<Range> {
    v.sort();
    let mut out: Vec<Range> = Vec::with_capacity(v.len());
    for r in v {
        match out.last_mut() {
            Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The MMIO of every enabled device in the host device tree (each `reg` translated through
/// its buses' `ranges`; nodes on buses that are not memory mapped have none), page aligned
/// and merged, minus what dom0 must not reach: `kept` (the interrupt controller, the
/// hypervisor's console UART: a page shared with another device is kept too) and host RAM.
/// `/memory`, `/reserved-memory`, `/cpus` and `/chosen` describe no device.
pub fn passthrough(dt: &DeviceTree, plat: &Platform, kept: &[Region]) -> Vec<Range> {
    let gic = plat.gic.as_ref().map(|g| g.dist);
    let mut found = Vec::new();
    dt.visit(&mut |v| {
        let Visit::Enter(n) = v else { return true };
        if n.depth == 1
            && (n.device_type() == Some("memory")
                || ["reserved-memory", "cpus", "chosen", "aliases"].contains(&n.base_name()))
        {
            return false;
        }
        if !n.enabled() {
            return false; // Linux ignores it, and so do its children
        }
        if n.property("interrupt-controller").is_some() && gic.is_some() && n.regs().next().flatten() == gic {
            return false; // the GIC and its ITS/v2m frames: the hypervisor's
        }
        found.extend(n.mmio().map(|r| pages(&r)));
        true
    });
    let mut holes: Vec<Range> = kept.iter().map(pages).collect();
    holes.extend(plat.memory.iter().map(pages));
    layout::subtract(&merge(found), &merge(holes))
}

/// A range of machine frames mapped into dom0 at build time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioMap {
    /// Guest physical address (page aligned).
    pub gpa: u64,
    /// Machine physical address (page aligned).
    pub pa: u64,
    pub size: u64,
}

impl MmioMap {
    /// A 1:1 mapping of `r`.
    pub fn direct(r: Range) -> Self {
        MmioMap { gpa: r.start, pa: r.start, size: r.len() }
    }
}

/// A device interrupt dom0 gets: an SPI of the primary GIC, routed to dom0 one to one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceIrq {
    pub intid: u32,
    /// Edge-triggered (the specifier's flags 1 or 2); level otherwise.
    pub edge: bool,
}

/// GIC interrupt specifiers (`<type number flags>` cells) as (INTID, edge); PPIs have type 1.
fn gic_specs(cells: &[u8]) -> impl Iterator<Item = (u32, u32, bool)> + '_ {
    cells.chunks_exact(12).filter_map(|c| {
        let w = |i: usize| u32::from_be_bytes(c[4 * i..4 * i + 4].try_into().ok()?).into();
        let (ty, num, flags): (Option<u32>, Option<u32>, Option<u32>) = (w(0), w(1), w(2));
        Some((ty?, num?, flags? & 3 != 0))
    })
}

/// The interrupts of the devices dom0 keeps, as Xen's hardware-domain rules route them: every
/// SPI of the primary GIC named by a kept node's `interrupts` (with the GIC as its interrupt
/// parent, inherited or its own), `interrupts-extended`, or a PCI host bridge's
/// `interrupt-map`, is dom0's (one to one). Also returns the nodes (by name and depth) that
/// use a PPI: Xen drops them from dom0's device tree (their interrupt cannot be routed).
/// `kept` regions are the hypervisor's own devices (the GIC, the console UART), whose
/// interrupts are not dom0's: their SPIs are returned apart (by the base of the node's first
/// register window), for the hypervisor's own drivers (the console's receive interrupt).
pub fn device_irqs(dt: &DeviceTree, plat: &Platform, kept: &[Region]) -> DeviceIrqs {
    let mut out = DeviceIrqs::default();
    let Some(g) = plat.gic.as_ref() else { return out };
    // The GIC's phandle.
    let mut gic_ph = None;
    dt.visit(&mut |v| {
        if let Visit::Enter(n) = v
            && n.property("interrupt-controller").is_some()
            && n.regs().next().flatten().map(|r| r.base) == Some(g.dist.base)
        {
            gic_ph = n.phandle();
        }
        true
    });
    let Some(gic_ph) = gic_ph else { return out };
    let be = |b: &[u8]| b.get(..4).map(|x| u32::from_be_bytes(x.try_into().unwrap_or([0; 4])));
    // The interrupt parent in force at each depth (inherited down the tree).
    let mut parents: Vec<Option<u32>> = Vec::new();
    dt.visit(&mut |v| {
        let n = match v {
            Visit::Enter(n) => n,
            Visit::Leave(_) => {
                parents.pop();
                return true;
            }
        };
        let inherited = parents.last().copied().flatten();
        let parent = n.property("interrupt-parent").and_then(be).or(inherited);
        // (`Leave` comes only for nodes entered with `true`: push exactly for those.)
        let go_on = (|| {
            if !n.enabled() {
                return false; // Linux ignores it, and what is under it
            }
            let first = n.regs().next().flatten();
            let mut found: Vec<(u32, u32, bool)> = Vec::new();
            if parent == Some(gic_ph)
                && let Some(ints) = n.property("interrupts")
            {
                found.extend(gic_specs(ints));
            }
            if let Some(ext) = n.property("interrupts-extended") {
                // <phandle type number flags> when the phandle is the GIC (3 cells)
                let mut rest = ext;
                while rest.len() >= 16 && be(rest) == Some(gic_ph) {
                    found.extend(gic_specs(&rest[4..16]));
                    rest = &rest[16..];
                }
            }
            if n.device_type() == Some("pci")
                && let Some(map) = n.property("interrupt-map")
            {
                // <child unit address (3) child interrupt (1) parent phandle [parent unit
                // address] parent interrupt (3)>: the GIC's phandle, then (after the GIC's
                // unit address, 0 0 when it has #address-cells 2) a 3-cell specifier.
                let cells: Vec<u32> = map.chunks_exact(4).filter_map(be).collect();
                let mut i = 0;
                while i + 4 < cells.len() {
                    if cells[i + 4] == gic_ph {
                        let skip = if cells.get(i + 5..i + 7).is_some_and(|a| a == [0, 0]) { 2 } else { 0 };
                        let spec = i + 5 + skip;
                        if let Some(sp) = cells.get(spec..spec + 3) {
                            let bytes: Vec<u8> = sp.iter().flat_map(|c| c.to_be_bytes()).collect();
                            found.extend(gic_specs(&bytes));
                        }
                        i = spec + 3;
                    } else {
                        i += 1;
                    }
                }
            }
            let spis =
                found.iter().filter(|&&(ty, _, _)| ty == 0).map(|&(_, num, edge)| DeviceIrq { intid: num + 32, edge });
            if let Some(r) = first.filter(|r| kept.iter().any(|k| k.base == r.base)) {
                out.kept.extend(spis.map(|i| (r.base, i))); // the hypervisor's device
                return true;
            }
            if found.iter().any(|&(ty, _, _)| ty == 1) {
                out.ppi_nodes.push(String::from(n.name()));
                return false; // dropped with its children
            }
            out.dom0.extend(spis);
            true
        })();
        if go_on {
            parents.push(parent);
        }
        go_on
    });
    out.dom0.sort();
    out.dom0.dedup_by_key(|x| x.intid);
    // An SPI the hypervisor's device uses is not dom0's even if another node names it.
    out.dom0.retain(|i| !out.kept.iter().any(|k| k.1.intid == i.intid));
    out
}

/// What [`device_irqs`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceIrqs {
    /// Dom0's SPIs, sorted, each once.
    pub dom0: Vec<DeviceIrq>,
    /// Nodes using a PPI (dropped from dom0's tree).
    pub ppi_nodes: Vec<String>,
    /// The SPIs of the hypervisor's own devices: (base of the node's first register window, SPI).
    pub kept: Vec<(u64, DeviceIrq)>,
}

impl DeviceIrqs {
    /// The first SPI of the hypervisor's device whose registers start at `base`.
    pub fn of_kept(&self, base: u64) -> Option<DeviceIrq> {
        self.kept.iter().find(|k| k.0 == base).map(|k| k.1)
    }
}

/// The devices the hypervisor keeps from dom0: the interrupt controller (all its regions) and
/// the console UART (`console`: its register window).
pub fn kept_devices(p: &Platform, console: Option<Region>) -> Vec<Region> {
    let mut kept = Vec::new();
    if let Some(g) = &p.gic {
        kept.push(g.dist);
        kept.extend(g.redist.iter());
        kept.extend([g.cpu_if, g.hyp_if, g.vcpu_if].iter().flatten());
        kept.extend(g.its.iter());
    }
    kept.extend(console);
    kept
}

/// MMIO dom0 may map itself (`XENMAPSPACE_dev_mmio`), as machine frame ranges `[start, end)`:
/// every frame of the `ipa_bits` address space that is neither RAM nor a device the
/// hypervisor keeps ([`kept_devices`]).
pub fn iomem(p: &Platform, console: Option<Region>, ipa_bits: u32) -> Vec<(u64, u64)> {
    let mut kept: Vec<Range> = p.memory.iter().map(pages).collect();
    kept.extend(kept_devices(p, console).iter().map(pages));
    layout::subtract(&[Range { start: 0, end: 1 << ipa_bits }], &kept)
        .iter()
        .map(|x| (x.start >> 12, x.end >> 12))
        .collect()
}

/// The GICv2 virtual CPU interface (GICV) at the guest-physical address of the CPU interface
/// (GICC), as Xen maps it for dom0: the GIC node dom0 sees keeps the host's GICC address and
/// its accesses reach the hardware's virtual interface. `None` on GICv3 or without GICV.
pub fn gicv_mapping(plat: &Platform) -> Option<MmioMap> {
    let g = plat.gic.as_ref().filter(|g| g.version == GicVersion::V2)?;
    let (c, v) = (g.cpu_if?, g.vcpu_if?);
    let size = c.size.min(v.size).next_multiple_of(PAGE_SIZE);
    let page = |a: u64| a & !(PAGE_SIZE - 1);
    Some(MmioMap { gpa: page(c.base), pa: page(v.base), size })
}

/// What dom0 gets besides its RAM and the planned passthrough, for [`build`].
#[derive(Clone, Copy, Default)]
pub struct Devices<'a> {
    /// The interrupts of its devices ([`device_irqs`]), routed to it one to one.
    pub irqs: &'a [DeviceIrq],
    /// The physical GIC: its interrupt lines and GICD_TYPER.IDbits (GICv3).
    pub gic_lines: u32,
    pub gic_id_bits: u32,
    /// Machine frame ranges `[start, end)` dom0 may map itself (`XENMAPSPACE_dev_mmio`).
    pub iomem: &'a [(u64, u64)],
    /// Further MMIO mapped into dom0's P2M as device memory (the GICV, [`gicv_mapping`]).
    pub mmio: &'a [MmioMap],
    /// The host device tree to copy for dom0 (`None`: a minimal tree, see [`fdt::Dom0Tree`]).
    pub host: Option<fdt::HostTree<'a>>,
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

/// Dom0's command line: the kernel module's `bootargs`, else `/chosen` `xen,dom0-bootargs`,
/// else `default`; what followed ` -- ` on the hypervisor's command line (`extra`) is
/// appended (Xen's x86 rule), or is the whole command line when nothing else gave one.
pub fn cmdline(module: Option<&str>, dom0_bootargs: Option<&str>, extra: Option<&str>, default: &str) -> String {
    match (module.or(dom0_bootargs), extra) {
        (Some(b), Some(x)) => alloc::format!("{b} {x}"),
        (Some(b), None) => b.to_string(),
        (None, Some(x)) => x.to_string(),
        (None, None) => default.to_string(),
    }
}

/// Step 2: create domain 0 from `plan` and load it, with the devices `dev` gives it.
pub fn build(
    hv: &Hypervisor,
    plat: &Platform,
    plan: &Dom0Plan,
    kernel: &[u8],
    initrd: Option<&[u8]>,
    cmdline: &str,
    dev: &Devices,
) -> Result<Dom0, Dom0Error> {
    let gic = plat.gic.as_ref().ok_or(Dom0Error::NoGic)?;
    let mut cfg = hv.domain_config(0);
    cfg.privileged = true;
    cfg.direct_map = true;
    cfg.max_grant_frames = plan.grant_frames;
    // The hardware domain takes its stage-2 tables from the heap, unbounded (as on Xen).
    cfg.p2m_table_limit = u64::MAX;
    cfg.pcpus = plan.pcpus.clone();
    cfg.evtchn_ppi = plan.evtchn_ppi;
    // Dom0 may hold its RAM (given back and populated again, it stays the same pages).
    cfg.max_pages = plan.banks.iter().map(|b| b.frames()).sum();
    // Dom0's virtual GIC is at the host's addresses, with as many SPIs as the host (Xen:
    // min(lines, 1020) - 32) and the host's redistributor regions.
    let nr_spis = (dev.gic_lines.clamp(32, 1020) - 32) / 32 * 32;
    cfg.vgic = crate::vgic::Config {
        version: match gic.version {
            GicVersion::V3 => crate::vgic::Version::V3,
            GicVersion::V2 => crate::vgic::Version::V2,
        },
        nr_spis,
        dist_base: gic.dist.base,
        redist: gic.redist.iter().map(|r| (r.base, r.size)).collect(),
        id_bits: dev.gic_id_bits,
    };
    let d = hv.create_domain(cfg).map_err(Dom0Error::Create)?;
    // Its devices' interrupts, one to one, hardware-linked.
    for irq in dev.irqs {
        if d.vgic.link_hw(&*hv.hw, irq.intid, irq.edge) {
            hv.set_spi_owner(irq.intid, Some(0));
        }
    }
    let mm = &hv.mm;
    {
        let mut p2m = d.p2m.write(mm);
        for b in &plan.banks {
            mm.assign_boot_frames(b.first_mfn(), b.frames(), 0);
            p2m.insert(Gfn(b.start >> 12), b.frames(), Mfn(b.start >> 12), P2mType::RamRw)
                .map_err(Dom0Error::Create)?;
        }
        for m in plan.passthrough.iter().map(|r| MmioMap::direct(*r)).chain(dev.mmio.iter().copied()) {
            p2m.insert(Gfn(m.gpa >> 12), m.size >> 12, Mfn(m.pa >> 12), P2mType::MmioDirectDev)
                .map_err(Dom0Error::Create)?;
        }
    }
    for &(s, e) in dev.iomem {
        d.permit_iomem(s, e);
    }
    for r in &plan.passthrough {
        d.permit_iomem(r.start >> 12, r.end >> 12);
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
        vcpus: plan.pcpus.len() as u32,
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
    let blob = match &dev.host {
        Some(h) => tree.build_from(h),
        None => tree.build(),
    };
    let blob = blob.map_err(|e| Dom0Error::DeviceTree(alloc::format!("{e}")))?;
    if blob.len() as u64 > layout::DTB_SLOT {
        return Err(Dom0Error::DeviceTree("larger than 2 MiB".into()));
    }
    mm.phys.write(pl.dtb, &blob);
    written.push(Range { start: pl.dtb, end: pl.dtb + blob.len() as u64 });

    for (i, b) in plan.banks.iter().enumerate() {
        log::info!("d0: BANK[{i}] {:#x}-{:#x} ({} MiB)", b.start, b.end, b.len() >> 20);
    }
    if let (Some(limit), Some(b)) = (plat.dma_limit, plan.banks.first()) {
        let below = if b.end <= limit { "below it" } else { "NOT below it: no free RAM there" };
        log::info!("d0: DMA limit {limit:#x} (narrowest dma-ranges); BANK[0] {below}");
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
    if !plan.passthrough.is_empty() {
        let kib = plan.passthrough.iter().map(Range::len).sum::<u64>() >> 10;
        log::info!("d0: {} MMIO ranges ({kib} KiB) of the host's devices mapped 1:1", plan.passthrough.len());
        for r in &plan.passthrough {
            log::debug!("d0: MMIO {:#x}-{:#x}", r.start, r.end);
        }
    }
    for m in dev.mmio {
        log::info!("d0: MMIO {:#x}-{:#x} mapped at {:#x}", m.pa, m.pa + m.size, m.gpa);
    }
    log::info!(
        "d0: loading device tree ({} bytes{}) to {:#x}",
        blob.len(),
        if dev.host.is_some() { ", the host's with dom0's nodes" } else { "" },
        pl.dtb
    );
    log::info!("Grant table range: {:#x}-{:#x} ({} frames)", plan.grant.start, plan.grant.end, plan.grant_frames);
    log::info!("Allocating PPI {} for event channel interrupt", plan.evtchn_ppi);
    for (i, r) in plan.extended.iter().enumerate() {
        log::info!("d0: extended region {i}: {:#x}->{:#x}", r.start, r.end);
    }
    Ok(Dom0 { domain: d, entry: pl.kernel, dtb: pl.dtb, written })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::dt::Gic;

    #[test]
    fn dom0_command_line_sources() {
        assert_eq!(cmdline(Some("a"), Some("b"), None, "d"), "a");
        assert_eq!(cmdline(None, Some("b"), Some("x y"), "d"), "b x y", "Xen's x86 rule: appended");
        assert_eq!(cmdline(None, None, Some("x"), "d"), "x");
        assert_eq!(cmdline(None, None, None, "console=hvc0"), "console=hvc0");
    }

    #[test]
    fn gicv_goes_where_gicc_was() {
        let mut p = Platform::default();
        assert_eq!(gicv_mapping(&p), None);
        p.gic = Some(Gic {
            version: GicVersion::V2,
            dist: Region::new(0xff84_1000, 0x1000),
            cpu_if: Some(Region::new(0xff84_2000, 0x2000)),
            hyp_if: Some(Region::new(0xff84_4000, 0x2000)),
            vcpu_if: Some(Region::new(0xff84_6000, 0x2000)),
            ..Gic::default()
        });
        assert_eq!(gicv_mapping(&p), Some(MmioMap { gpa: 0xff84_2000, pa: 0xff84_6000, size: 0x2000 }));
        p.gic.as_mut().unwrap().version = GicVersion::V3;
        assert_eq!(gicv_mapping(&p), None);
        let r = |start, end| Range { start, end };
        assert_eq!(merge(vec![r(5, 9), r(0, 2), r(2, 3), r(8, 12)]), vec![r(0, 3), r(5, 12)]);
    }
}
