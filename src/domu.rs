//! Building a domU from a further `multiboot,kernel` boot module: not direct-mapped, it gets
//! Xen's guest memory map (`public/arch-arm.h`): RAM at `GUEST_RAM0_BASE` allocated from the
//! page allocator (2 MiB blocks where possible), the grant-table region at `GUEST_GNTTAB_BASE`,
//! the event-channel interrupt on PPI 31, a GICv3 at Xen's guest addresses, its own VMID.

use crate::bootmem::Range;
use crate::dom0::fdt::{Dom0Tree, GicNode};
use crate::dom0::image::{ImageError, ImageHeader};
use crate::dom0::layout;
use crate::domain::Domain;
use crate::hv::Hypervisor;
use crate::p2m::P2mType;
use crate::types::{DomId, Errno, Gfn, PAGE_SIZE};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use xen_abi::guest_layout::*;

pub use crate::vgic::guest::*;

/// Default domU memory and the 2 MiB chunks it is allocated in.
pub const DEFAULT_MEM: u64 = 64 << 20;
const CHUNK_ORDER: u32 = 9;

/// The host GIC as a domU's build needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostGic {
    pub version: crate::vgic::Version,
    /// GICv2: the hardware virtual CPU interface (GICV), mapped at the guest's GICC.
    pub gicv: Option<u64>,
}
/// What the boot arguments of a domU's module say to the hypervisor: `granite.mem=SIZE`
/// (K/M/G suffix) and `granite.vcpus=N`. Other words are the guest's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomUOptions {
    pub mem: u64,
    pub vcpus: u32,
}

impl DomUOptions {
    pub fn parse(bootargs: &str) -> DomUOptions {
        let mut o = DomUOptions { mem: DEFAULT_MEM, vcpus: 1 };
        for w in bootargs.split_ascii_whitespace() {
            let size = w.strip_prefix("granite.mem=").and_then(crate::dt::cmdline::parse_size);
            let count = w.strip_prefix("granite.vcpus=").and_then(|v| v.parse::<u32>().ok());
            if let Some(m) = size.filter(|&m| m >= 4 << 20) {
                o.mem = m;
            }
            if let Some(n) = count {
                o.vcpus = n.clamp(1, 64);
            }
        }
        o
    }
}

#[derive(Debug)]
pub enum DomUError {
    BadImage(ImageError),
    Create(Errno),
    NoMemory,
    DoesNotFit,
    DeviceTree(String),
}

impl core::fmt::Display for DomUError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DomUError::BadImage(e) => write!(f, "the kernel module is not an arm64 Image: {e}"),
            DomUError::Create(e) => write!(f, "creating the domain failed: {}", e.name()),
            DomUError::NoMemory => write!(f, "not enough free memory for its RAM"),
            DomUError::DoesNotFit => write!(f, "the kernel and device tree do not fit its RAM"),
            DomUError::DeviceTree(e) => write!(f, "writing its device tree failed: {e}"),
        }
    }
}

/// A built domU: where to enter vCPU 0 (IPA) with x0 = `dtb` (IPA); `written` lists the
/// machine ranges written (to clean before a guest with its caches off reads them).
pub struct BuiltDomU {
    pub domain: Arc<Domain>,
    pub entry: u64,
    pub dtb: u64,
    pub written: Vec<Range>,
}

/// Copy `bytes` to guest-physical `ipa` of `d` (through its P2M). Returns the machine ranges.
fn write_guest(hv: &Hypervisor, d: &Domain, ipa: u64, bytes: &[u8]) -> Result<Vec<Range>, DomUError> {
    let mut out = Vec::new();
    let mut done = 0usize;
    while done < bytes.len() {
        let a = ipa + done as u64;
        let n = ((PAGE_SIZE - (a % PAGE_SIZE)) as usize).min(bytes.len() - done);
        let m = d.p2m.read(&hv.mm).lookup(Gfn::from_addr(a)).ok_or(DomUError::DoesNotFit)?;
        let pa = m.mfn.addr() + a % PAGE_SIZE;
        hv.mm.phys.write(pa, &bytes[done..done + n]);
        out.push(Range { start: pa, end: pa + n as u64 });
        done += n;
    }
    Ok(out)
}

/// Build domain `id` from `kernel` with `cmdline` and `mem` bytes of RAM, with one vCPU on
/// each of `pcpus`.
pub fn build(
    hv: &Hypervisor,
    id: DomId,
    kernel: &[u8],
    cmdline: &str,
    mem: u64,
    pcpus: &[usize],
    gic: HostGic,
) -> Result<BuiltDomU, DomUError> {
    let header = ImageHeader::parse(kernel).map_err(DomUError::BadImage)?;
    let mem = mem.next_multiple_of(2 << 20);
    let mut cfg = hv.domain_config(id);
    cfg.pcpus = pcpus.to_vec();
    cfg.vgic = crate::vgic::guest::config(gic.version, pcpus.len() as u32);
    cfg.max_pages = mem / PAGE_SIZE;
    let d = hv.create_domain(cfg).map_err(DomUError::Create)?;
    let r = populate_and_load(hv, &d, &header, kernel, cmdline, mem, gic);
    if r.is_err() {
        hv.destroy_domain(&d);
    }
    r
}

fn populate_and_load(
    hv: &Hypervisor,
    d: &Arc<Domain>,
    header: &ImageHeader,
    kernel: &[u8],
    cmdline: &str,
    mem: u64,
    host_gic: HostGic,
) -> Result<BuiltDomU, DomUError> {
    let mm = &hv.mm;
    let vcpus = d.vcpus.len() as u32;
    if let Some(gicv) = host_gic.gicv.filter(|_| host_gic.version == crate::vgic::Version::V2) {
        d.p2m
            .write(mm)
            .insert(
                Gfn::from_addr(GUEST_GICC_BASE),
                GUEST_GICC_SIZE >> 12,
                crate::types::Mfn::from_addr(gicv),
                P2mType::MmioDirectDev,
            )
            .map_err(DomUError::Create)?;
    }
    let chunk = PAGE_SIZE << CHUNK_ORDER;
    for off in (0..mem).step_by(chunk as usize) {
        let gfn = Gfn::from_addr(GUEST_RAM0_BASE + off);
        let mut p2m = d.p2m.write(mm);
        match mm.alloc_domheap(d.id, CHUNK_ORDER) {
            Ok(m) => p2m.insert(gfn, 1 << CHUNK_ORDER, m, P2mType::RamRw).map_err(DomUError::Create)?,
            Err(_) => {
                for i in 0..(1u64 << CHUNK_ORDER) {
                    let m = mm.alloc_domheap(d.id, 0).map_err(|_| DomUError::NoMemory)?;
                    p2m.insert(gfn.add(i), 1, m, P2mType::RamRw).map_err(DomUError::Create)?;
                }
            }
        }
    }
    let ram = Range { start: GUEST_RAM0_BASE, end: GUEST_RAM0_BASE + mem };
    let pl = layout::place(ram, header.text_offset, header.image_size, None).ok_or(DomUError::DoesNotFit)?;
    let mut written = write_guest(hv, d, pl.kernel, kernel)?;

    let ram0_end = GUEST_RAM0_BASE + GUEST_RAM0_SIZE;
    let ext_start = ram.end.next_multiple_of(2 << 20);
    let ext: Vec<(u64, u64)> = if ram0_end - ext_start >= layout::EXT_REGION_MIN {
        Vec::from([(ext_start, ram0_end - ext_start)])
    } else {
        Vec::new()
    };
    let frames = d.grant.max_frames() as u64;
    let tree = Dom0Tree {
        model: "granite domU",
        compatible: &["xen,xenvm-4.17", "xen,xenvm"],
        memory: &[(ram.start, mem)],
        bootargs: cmdline,
        initrd: None,
        vcpus,
        gic: match host_gic.version {
            crate::vgic::Version::V3 => GicNode {
                compatible: Vec::from(["arm,gic-v3".into()]),
                reg: Vec::from([
                    (GUEST_GICV3_GICD_BASE, GUEST_GICV3_GICD_SIZE),
                    (GUEST_GICV3_GICR0_BASE, GUEST_GICV3_RDIST_STRIDE * vcpus as u64),
                ]),
                redistributor_regions: None,
            },
            crate::vgic::Version::V2 => GicNode {
                compatible: Vec::from(["arm,cortex-a15-gic".into(), "arm,gic-400".into()]),
                reg: Vec::from([(GUEST_GICD_BASE, GUEST_GICD_SIZE), (GUEST_GICC_BASE, GUEST_GICC_SIZE)]),
                redistributor_regions: None,
            },
        },
        timer_ppis: [13, 14, 11, 10],
        evtchn_ppi: GUEST_EVTCHN_PPI,
        grant_region: (GUEST_GNTTAB_BASE, (frames * PAGE_SIZE).min(GUEST_GNTTAB_SIZE)),
        extended_regions: &ext,
        reserved: &[],
        xen_version: "4.17",
    };
    let blob = tree.build().map_err(|e| DomUError::DeviceTree(alloc::format!("{e:?}")))?;
    written.extend(write_guest(hv, d, pl.dtb, &blob)?);
    log::info!(
        "d{}: {} MiB at {:#x}, {} vCPU(s), kernel ({} bytes) at {:#x}, device tree at {:#x}, grant table at {:#x}",
        d.id,
        mem >> 20,
        ram.start,
        vcpus,
        kernel.len(),
        pl.kernel,
        pl.dtb,
        GUEST_GNTTAB_BASE
    );
    Ok(BuiltDomU { domain: d.clone(), entry: pl.kernel, dtb: pl.dtb, written })
}

/// A `multiboot,kernel` boot module for a domU: where it is, its bytes, its boot arguments.
pub struct Module<'a> {
    pub at: u64,
    pub bytes: &'a [u8],
    pub bootargs: &'a str,
}

/// A domU started by [`start_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub id: DomId,
    pub pcpus: Vec<usize>,
}

/// Build and start a domU from each module (on the host GIC `gic`), in order: domains 1, 2, ... (an id is used only by
/// a domain that was built), each with the vCPUs (`granite.vcpus=`) and memory
/// (`granite.mem=`) its boot arguments ask for, one vCPU per free CPU. A module for which no
/// CPU is left is not started; a domain gets fewer vCPUs than asked when fewer CPUs are free.
/// What was written is cleaned to the point of coherency (its vCPU starts with caches off).
pub fn start_all(hv: &Hypervisor, modules: &[Module], gic: HostGic) -> Vec<Started> {
    let mut started = Vec::new();
    let mut id: DomId = 1;
    for m in modules {
        let o = DomUOptions::parse(m.bootargs);
        let cpus = hv.sched.free_cpus();
        if cpus.is_empty() {
            log::warn!("d{id}: no free CPU for the kernel module at {:#x}: not started", m.at);
            continue;
        }
        let n = (o.vcpus as usize).min(cpus.len());
        if n < o.vcpus as usize {
            log::warn!("d{id}: {} vCPUs asked, {n} free CPUs: it gets {n}", o.vcpus);
        }
        match build(hv, id, m.bytes, m.bootargs, o.mem, &cpus[..n], gic) {
            Ok(b) => {
                for r in &b.written {
                    hv.mm.tlb.dcache(crate::tlb::CacheOp::Clean, r.start, r.len());
                }
                match crate::lifecycle::start(hv, &b.domain, b.entry, b.dtb) {
                    Ok(()) => started.push(Started { id, pcpus: cpus[..n].to_vec() }),
                    Err(e) => {
                        log::error!("d{id}: cannot place its vCPUs ({e:?})");
                        hv.destroy_domain(&b.domain);
                    }
                }
                id += 1;
            }
            Err(e) => log::error!("d{id}: cannot build a domain from the module at {:#x}: {e}", m.at),
        }
    }
    started
}
