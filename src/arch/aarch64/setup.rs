//! The boot sequence of the boot CPU, and the global state it leaves behind.
//!
//! 1. **MMU off** (Device-memory semantics: aligned accesses only, no exclusives, so no locks
//!    and no atomic read-modify-writes): install the vectors, parse the device tree and the
//!    command line, find the console (`dtuart=` > `/chosen/stdout-path` > first PL011) and
//!    the PSCI conduit; if not at EL2, say so and power off; build the EL2 identity map.
//! 2. **MMU and caches on**: logger, boot log, boot-memory plan (image, DTB, modules,
//!    reserved ranges kept out), frame table, Rust heap arena, [`Mm`], the page allocator gets
//!    the rest, VTCR_EL2, the [`Hypervisor`].
//! 3. Dom0: its RAM is carved before the page allocator gets the rest; once the hypervisor
//!    exists dom0 is built ([`crate::dom0`]) and its vCPU 0 entered ([`super::guest`]).
//!
//! Nothing imports this module: what it builds is reached through [`super::percpu`] (the
//! hypervisor context, the CPUs) and the modules it configures.

use super::exceptions;
use super::image::{self, Image};
use super::mmu::{Kind, MapError, Stage1};
use super::{allocator, console, logger, percpu, psci, tlb::El2Tlb, vcpu_run};
use crate::bootmem::{BootMem, Range};
use crate::dt::cmdline::{BootOptions, ExitMethod};
use crate::dt::{Conduit, DeviceTree, GicVersion, ModuleKind, Platform, Region, Uart};
use crate::early_println;
use crate::hv::Hypervisor;
use crate::mm::{FrameTable, Mm, PageInfo, PhysMap};
use crate::p2m::{StageConfig, config::parange_bits};
use crate::sysreg::mpidr_affinity;
use crate::tlb::TlbOps;
use crate::types::{Mfn, PAGE_SIZE};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    CNTFRQ_EL0, CurrentEL, HCR_EL2, ID_AA64MMFR0_EL1, ID_AA64MMFR1_EL1, MIDR_EL1, MPIDR_EL1, Readable, VTCR_EL2,
    VTTBR_EL2, Writeable,
};
use alloc::sync::Arc;
use alloc::vec::Vec;
use log::{debug, info, warn};

// ---- global state ----------------------------------------------------------------------------

static PLATFORM: spin::Once<Platform<'static>> = spin::Once::new();
static OPTIONS: spin::Once<BootOptions<'static>> = spin::Once::new();

// ---- MMU-off phase ---------------------------------------------------------------------------

/// The DTB the boot loader passed, if `pa` points at a plausible one.
fn dtb_slice(pa: u64) -> Option<&'static mut [u8]> {
    if pa == 0 || !pa.is_multiple_of(8) {
        return None;
    }
    // SAFETY: the boot protocol says x0 is the DTB's physical address; with the MMU off every
    // physical address is accessible. We read the 8-byte header first, then its totalsize.
    let header = unsafe { core::slice::from_raw_parts(pa as *const u8, 8) };
    let size = DeviceTree::header_size(header)?;
    if !(40..=16 << 20).contains(&size) {
        return None;
    }
    // SAFETY: as above; the loader placed `size` bytes of DTB there, they are ours, and they
    // stay reserved (boot memory keeps them out of every allocator) while the hypervisor runs.
    // This is the only reference to them.
    Some(unsafe { core::slice::from_raw_parts_mut(pa as *mut u8, size) })
}

/// The console: `dtuart=` if given, else `/chosen/stdout-path`, else the first PL011. Also
/// returns a note to log once logging works, if the preferred choice was unusable.
fn select_console<'a>(
    dt: &DeviceTree<'a>,
    p: &Platform<'a>,
    o: &BootOptions<'a>,
) -> (Option<Uart<'a>>, Option<&'static str>) {
    let mut note = None;
    if let Some(spec) = o.dtuart {
        match dt.resolve_uart(spec) {
            Ok(u) if u.pl011 => return (Some(u), None),
            Ok(_) => note = Some("dtuart= names a UART that is not a PL011; ignored"),
            Err(_) => note = Some("dtuart= names no usable device-tree node; ignored"),
        }
    }
    match p.stdout {
        Some(u) if u.pl011 => return (Some(u), note),
        Some(_) => note = note.or(Some("stdout-path names a UART that is not a PL011; using the first PL011")),
        None if p.chosen.stdout_path.is_some() => note = note.or(Some("stdout-path unusable; using the first PL011")),
        None => {}
    }
    (dt.first_pl011(), note)
}

fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

fn el_name(el: u64) -> &'static str {
    ["EL0", "EL1", "EL2", "EL3"][el as usize & 3]
}

/// Why the EL2 map could not be built.
enum MapFailure {
    /// Mapping this failed.
    Map(&'static str, MapError),
    /// The RAM banks minus the image and `no-map` regions did not fit the range planner.
    Ram(crate::bootmem::BootMemError),
}

impl core::fmt::Display for MapFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MapFailure::Map(what, e) => write!(f, "{what}: {e:?}"),
            MapFailure::Ram(e) => write!(f, "RAM banks: {e}"),
        }
    }
}

/// Build the EL2 identity map (MMU still off).
fn build_map(img: &Image, dtb: Region, p: &Platform, uart: Option<&Uart>) -> Result<Stage1, MapFailure> {
    use MapFailure::{Map, Ram};
    let mut s1 = Stage1::new();
    s1.map(img.start, img.text_end - img.start, Kind::Text).map_err(|e| Map("image text", e))?;
    s1.map(img.rodata_start, img.rodata_end - img.rodata_start, Kind::ReadOnly).map_err(|e| Map("image rodata", e))?;
    s1.map(img.data_start, img.end - img.data_start, Kind::ReadWrite).map_err(|e| Map("image data", e))?;
    // RAM (rounded inwards to pages) minus the image, mapped above with its own permissions,
    // and minus `/reserved-memory` regions marked `no-map` (firmware memory that must not
    // even be reached speculatively). The boot-memory planner does the range arithmetic.
    let mut ram = BootMem::new(&p.memory).map_err(Ram)?;
    let mut hole = |base, size| ram.reserve(base, size, "not mapped").map_err(Ram);
    hole(img.start, img.size())?;
    for r in p.reserved_memory.iter().filter(|r| r.no_map) {
        hole(r.region.base, r.region.size)?;
    }
    for r in ram.free() {
        s1.map(r.start, r.len(), Kind::ReadWrite).map_err(|e| Map("RAM", e))?;
    }
    if !p.memory.iter().any(|b| b.contains(dtb.base) && b.contains(dtb.end() - 1)) {
        s1.map(dtb.base, dtb.size, Kind::ReadOnly).map_err(|e| Map("device tree", e))?;
    }
    if let Some(u) = uart {
        s1.map(u.base, u.size.max(console::PL011_SIZE), Kind::Device).map_err(|e| Map("console UART", e))?;
    }
    if let Some(g) = &p.gic {
        s1.map(g.dist.base, g.dist.size, Kind::Device).map_err(|e| Map("GIC distributor", e))?;
        for r in g.redist.iter() {
            s1.map(r.base, r.size, Kind::Device).map_err(|e| Map("GIC redistributors", e))?;
        }
        for r in [g.cpu_if, g.hyp_if].into_iter().flatten() {
            s1.map(r.base, r.size, Kind::Device).map_err(|e| Map("GIC CPU/hyp interface", e))?;
        }
    }
    Ok(s1)
}

/// The boot CPU's Rust entry (from `boot.rs`): relocated, `.bss` zeroed, MMU off.
pub fn boot(dtb_pa: u64, load: u64) -> ! {
    let img = Image::current();
    image::record(&img);
    debug_assert_eq!(load, img.start);

    let el = CurrentEL.read(CurrentEL::EL);
    if el == 2 {
        // The boot CPU is CPU 0 (plain stores: the MMU is off).
        percpu::init_this_cpu(0, mpidr_affinity(MPIDR_EL1.get()), img.stack_top);
        exceptions::install();
        // EL1 is AArch64; nothing trapped or virtualised yet; no guest VMID loaded.
        HCR_EL2.write(HCR_EL2::RW::EL1IsAarch64);
        VTTBR_EL2.set(0);
        barrier::isb(barrier::SY);
    }

    // Without a device tree there is no console to complain on and no PSCI to power off
    // with: nothing better to do than stop.
    let Some(blob) = dtb_slice(dtb_pa) else { halt() };
    // libfdt edits (QEMU's -dtb fixups, boot loaders) leave NOPs the `fdt` crate cannot walk.
    let Ok(nops) = DeviceTree::remove_nops(blob) else { halt() };
    let blob: &'static [u8] = blob;
    let Ok(dt) = DeviceTree::new(blob) else { halt() };
    let plat = dt.parse();
    let opts = BootOptions::parse(plat.chosen.bootargs.unwrap_or(""));
    // At EL2 an HVC would trap to ourselves: only SMC reaches the firmware.
    let conduit = plat.psci.map(|p| p.conduit).filter(|&c| el != 2 || c == Conduit::Smc);
    psci::set_conduit(conduit);
    psci::use_semihosting_exit(opts.exit == ExitMethod::Semihosting);
    let (uart, console_note) = select_console(&dt, &plat, &opts);
    if let Some(u) = &uart {
        console::set_base(u.base);
    }

    if el == 3 {
        early_println!(
            "\ngranite: entered at EL3 (no firmware below us), but a hypervisor runs at EL2.\n\
             granite: boot it from firmware that drops to EL2; halting."
        );
        halt();
    }
    if el != 2 {
        early_println!(
            "\ngranite: entered at {} with the device tree at {dtb_pa:#x}, but a hypervisor needs EL2.\n\
             granite: boot it at EL2 (QEMU: -M virt,virtualization=on; firmware: do not drop to EL1).\n\
             granite: powering off via PSCI ({}).",
            el_name(el),
            plat.psci.map_or("no /psci node: cannot", |p| p.conduit.name())
        );
        psci::power_off(psci::exit_code::WRONG_EL);
    }
    if plat.memory.is_empty() {
        early_println!("\ngranite: the device tree describes no RAM (no usable /memory node); powering off.");
        psci::power_off(psci::exit_code::BAD_PLATFORM);
    }

    let dtb = Region::new(dtb_pa, blob.len() as u64);
    let s1 = match build_map(&img, dtb, &plat, uart.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            early_println!("\ngranite: cannot build the EL2 memory map ({e}); powering off.");
            psci::power_off(psci::exit_code::BAD_PLATFORM);
        }
    };
    // SAFETY: the map covers the image (code, data, this stack) with its permissions, all RAM,
    // the DTB and the devices used from now on, all at VA == PA; the MMU is off. The image
    // (relocated, .bss, stack) and the DTB (NOPs removed) were written with the MMU off.
    unsafe { s1.activate(&[(img.start, img.end), (dtb.base, dtb.end())]) };

    // ---- MMU and caches on: locks and atomics work from here ----
    let plat = *PLATFORM.call_once(|| plat);
    let opts = *OPTIONS.call_once(|| opts);
    logger::init(opts.loglvl.filter());
    boot_log(&img, dtb, &dt, &plat, &opts, uart.as_ref(), console_note, &s1);
    if nops > 0 {
        debug!("device tree: {nops} NOP tokens removed");
    }

    let (mm, mut plan) = init_memory(&img, dtb, &plat);
    // Dom0's RAM is carved before the page allocator gets the rest.
    let dom0_plan = plan_dom0(&img, &dt, &plat, &opts, uart.as_ref(), &mut plan);
    give_to_heap(&mm, plan);

    let stage = init_stage2(dt.highest_address(), opts.ipa_bits);
    let hv = percpu::set_hypervisor(Hypervisor::new(mm, stage, opts.hv_options(), Arc::new(super::hw::ArchHw)));
    crate::sync::set_cpu_held(percpu::held_locks);
    percpu::this().set_online();
    hv.sched.set_online(0);
    info!(
        "Hypervisor ready: {} MiB in the page allocator, grant frames max {}, maptrack frames max {}, audit {}",
        (hv.mm.heap.free_frames() * PAGE_SIZE) >> 20,
        hv.opts.max_grant_frames,
        hv.opts.max_maptrack_frames,
        if hv.opts.audit { "on" } else { "off" }
    );

    if let Some(name) = opts.selftest {
        super::selftest::run(name, hv);
    }
    exceptions::set_lower_el_handler(vcpu_run::handle);

    let (k, mut plan) = dom0_plan.unwrap_or_else(|e| dom0_failed(&e));

    // The GIC: SGIs between CPUs, and on GICv2 the virtual CPU interface dom0 gets at the
    // GICC address.
    let vgic = match super::gic::init(&plat) {
        Ok((_, v)) => {
            vcpu_run::enable_cpu_interrupts();
            v
        }
        Err(super::gic::GicError::NoGic) => None,
        Err(e) => {
            warn!("GIC: {e}; no inter-processor interrupts, dom0 gets no virtual CPU interface");
            None
        }
    };
    if let Some(v) = vgic {
        info!("GIC: virtual interface with {} list registers enabled", v.list_registers);
        vcpu_run::set_list_registers(v.list_registers);
    }
    super::smp::start_secondaries(&plat);

    // Dom0: vCPU i pinned to CPU i. Without dom0_max_vcpus= it gets every online CPU, as on
    // Xen, except those the boot-time domUs' vCPUs are pinned to (granite has no scheduler
    // to share a CPU between vCPUs).
    let cpus = hv.sched.free_cpus();
    let domu_vcpus: usize = plat
        .modules
        .iter()
        .filter(|m| m.kind == ModuleKind::Kernel && m.region.base != k.region.base)
        .map(|m| crate::domu::DomUOptions::parse(m.bootargs.unwrap_or("")).vcpus as usize)
        .sum();
    let want = match opts.dom0_max_vcpus {
        Some(n) => n.max(1) as usize,
        None => cpus.len().saturating_sub(domu_vcpus).max(1),
    };
    if want > cpus.len() {
        warn!("dom0_max_vcpus={want} but {} CPUs are online: dom0 gets {} vCPUs (one per CPU)", cpus.len(), cpus.len());
    }
    plan.pcpus = cpus[..want.min(cpus.len())].to_vec();
    let initrd = plat.module(ModuleKind::Ramdisk).map(|m| module_bytes(m.region));
    // A kernel from /chosen linux,initrd (the Pi firmware's `initramfs`, QEMU's -initrd) has
    // no bootargs of its own: the Xen console by default.
    let default_args = if k.name == crate::dt::INITRD_MODULE { "console=hvc0" } else { "" };
    let cmdline = crate::dom0::cmdline(k.bootargs, plat.chosen.dom0_bootargs, opts.dom0_extra, default_args);
    let iomem = crate::dom0::iomem(&plat, console_region(uart.as_ref()), hv.stage.ipa_bits);
    let gicv = vgic.and_then(|_| crate::dom0::gicv_mapping(&plat));
    // Dom0's devices' interrupts (routed one to one) and the nodes using PPIs (left out).
    let kept = crate::dom0::kept_devices(&plat, console_region(uart.as_ref()));
    let dev_irqs = crate::dom0::device_irqs(&dt, &plat, &kept);
    let (irqs, ppi_nodes) = (&dev_irqs.dom0, &dev_irqs.ppi_nodes);
    info!("dom0: {} device interrupts routed one to one; left out (PPIs): {:?}", irqs.len(), ppi_nodes);
    match uart.as_ref().and_then(|u| dev_irqs.of_kept(u.base)) {
        Some(i) => vcpu_run::enable_console_input(i.intid),
        None => warn!("console: no receive interrupt found in the device tree; input is ignored"),
    }
    let (gic_lines, gic_id_bits) = super::gic::driver().map_or((32, 9), |g| (g.lines(), g.id_bits()));
    let host = crate::dom0::fdt::HostTree::new(dt, &plat, uart.map(|u| u.base))
        .map(|h| crate::dom0::fdt::HostTree { drop: ppi_nodes, ..h });
    let dev = crate::dom0::Devices { iomem: &iomem, mmio: gicv.as_slice(), host, irqs, gic_lines, gic_id_bits };
    let d0 = crate::dom0::build(hv, &plat, &plan, module_bytes(k.region), initrd, &cmdline, &dev)
        .unwrap_or_else(|e| dom0_failed(&e));
    for r in &d0.written {
        super::cache::clean_range(r.start, r.end);
    }
    crate::lifecycle::start(hv, &d0.domain, d0.entry, d0.dtb)
        .unwrap_or_else(|e| dom0_failed(&format_args!("placing its vCPUs: {e:?}")));

    // Every further kernel module becomes a domU.
    let domus: Vec<crate::domu::Module> = plat
        .modules
        .iter()
        .filter(|m| m.kind == ModuleKind::Kernel && m.region.base != k.region.base)
        .map(|m| crate::domu::Module {
            at: m.region.base,
            bytes: module_bytes(m.region),
            bootargs: m.bootargs.unwrap_or(""),
        })
        .collect();
    let host_gic = crate::domu::HostGic {
        version: match plat.gic.as_ref().map(|g| g.version) {
            Some(crate::dt::GicVersion::V2) => crate::vgic::Version::V2,
            _ => crate::vgic::Version::V3,
        },
        gicv: plat.gic.as_ref().and_then(|g| g.vcpu_if).map(|r| r.base),
    };
    crate::domu::start_all(hv, &domus, host_gic);
    memory_summary(hv, &img);
    crate::input::switched(hv.console_in.focus());
    // CPU 0 runs dom0's vCPU 0.
    vcpu_run::idle()
}

/// What granite itself holds once every domain is built (`scripts/bench.sh` reads this line):
/// its image with .bss and the boot stack, the frame table, the Rust heap's arena and the
/// pages it took from the page allocator for itself (P2M tables, CPU stacks, unshared xenheap
/// pages).
fn memory_summary(hv: &Hypervisor, img: &Image) {
    let image = img.end - img.start;
    let frames = hv.mm.frames.len() as u64 * core::mem::size_of::<PageInfo>() as u64;
    let (used, free) = allocator::usage();
    let arena = (used + free) as u64;
    let pages = hv.mm.xen_pages() * PAGE_SIZE;
    info!(
        "Hypervisor memory: {} KiB (image {} KiB, frame table {} KiB, Rust heap {} KiB with {} KiB in use, \
         {} KiB of pages for P2M tables, stacks and its own use)",
        (image + frames + arena + pages) >> 10,
        image >> 10,
        frames >> 10,
        arena >> 10,
        used >> 10,
        pages >> 10
    );
}

fn dom0_failed(e: &dyn core::fmt::Display) -> ! {
    log::error!("granite: cannot build dom0: {e}");
    log::error!("granite: powering off");
    psci::power_off(psci::exit_code::DOM0_FAILED)
}

/// The bytes of a boot module (identity-mapped RAM, kept out of every allocator).
fn module_bytes(r: Region) -> &'static [u8] {
    // SAFETY: boot modules are in RAM, mapped read-write at VA == PA, reserved in boot memory
    // so nothing else ever writes them; we only read them.
    unsafe { core::slice::from_raw_parts(r.base as *const u8, r.size as usize) }
}

/// Step 1 of dom0: choose its RAM (before the heap takes the rest), layout and the devices
/// passed through.
fn plan_dom0(
    img: &Image,
    dt: &DeviceTree,
    plat: &Platform<'static>,
    opts: &BootOptions,
    uart: Option<&Uart>,
    plan: &mut BootMem,
) -> Result<(crate::dt::BootModule<'static>, crate::dom0::Dom0Plan), crate::dom0::Dom0Error> {
    let k = *plat.module(ModuleKind::Kernel).ok_or(crate::dom0::Dom0Error::NoKernel)?;
    let mmio = crate::dom0::passthrough(dt, plat, &crate::dom0::kept_devices(plat, console_region(uart)));
    let initrd_len = plat.module(ModuleKind::Ramdisk).map(|m| m.region.size);
    let image = Range { start: img.start, end: img.end };
    let mem = opts.dom0_mem.unwrap_or(crate::dom0::DEFAULT_DOM0_MEM);
    let max_frames = opts.hv_options().max_grant_frames;
    let inputs = crate::dom0::PlanInputs {
        image,
        kernel_at: k.region.base,
        kernel: module_bytes(k.region),
        initrd_len,
        dom0_mem: mem,
        max_grant_frames: max_frames,
        mmio: &mmio,
    };
    let p = crate::dom0::plan(plan, plat, &inputs)?;
    Ok((k, p))
}

/// The console UART's register window (the hypervisor keeps it from dom0).
fn console_region(uart: Option<&Uart>) -> Option<Region> {
    uart.map(|u| Region::new(u.base, u.size.max(console::PL011_SIZE)))
}

// ---- MMU-on phase ----------------------------------------------------------------------------

/// An optional number for the boot log ("none" when absent). The boot log runs before the
/// Rust heap exists: it must not allocate.
struct Opt<T>(Option<T>);
impl<T: core::fmt::Display + core::fmt::LowerHex> core::fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match &self.0 {
            None => f.write_str("none"),
            Some(v) if f.alternate() => write!(f, "{v:#x}"),
            Some(v) => write!(f, "{v}"),
        }
    }
}
impl<T: core::fmt::Display + core::fmt::LowerHex> core::fmt::LowerHex for Opt<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

#[allow(clippy::too_many_arguments)] // (every piece of the boot log's input, once)
fn boot_log(
    img: &Image,
    dtb: Region,
    dt: &DeviceTree,
    p: &Platform,
    o: &BootOptions,
    uart: Option<&Uart>,
    console_note: Option<&str>,
    s1: &Stage1,
) {
    info!(
        "granite {} - AArch64 EL2 hypervisor speaking Xen's guest ABI (Xen {}.{}{})",
        env!("CARGO_PKG_VERSION"),
        crate::hypercall::XEN_MAJOR,
        crate::hypercall::XEN_MINOR,
        core::str::from_utf8(crate::hypercall::XEN_EXTRAVERSION).unwrap_or("")
    );
    let mpidr = MPIDR_EL1.get();
    let midr = MIDR_EL1.get();
    info!(
        "Entered at EL2 on CPU MPIDR {:#x} (MIDR {:#010x}); image at {:#x}-{:#x} ({} KiB incl. bss)",
        mpidr_affinity(mpidr),
        midr,
        img.start,
        img.end,
        img.size() >> 10
    );
    info!(
        "Device tree at {:#x} ({} bytes): {}",
        dtb.base,
        dt.total_size(),
        p.model.or(p.compatible).unwrap_or("(no model)")
    );
    info!("Command line: {}", p.chosen.bootargs.unwrap_or("(none)"));
    if let Some(u) = uart {
        info!(
            "Console: PL011 at {:#x} ({}{}{})",
            u.base,
            u.name,
            if u.options.is_empty() { "" } else { ", options " },
            u.options
        )
    }
    if let Some(n) = console_note {
        warn!("{n}");
    }
    for u in o.unknown.iter() {
        warn!("unknown command-line option ignored: {u}");
    }
    for i in o.invalid.iter() {
        warn!("command-line option {} ignored: {}", i.option, i.why);
    }
    if o.unreported > 0 {
        warn!("{} more unusable command-line options ignored", o.unreported);
    }
    info!("Log level: {}", o.loglvl.name());
    match o.dom0_mem {
        Some(m) => info!("dom0 options: dom0_mem {} MiB, dom0_max_vcpus {}", m >> 20, Opt(o.dom0_max_vcpus)),
        None => info!("dom0 options: dom0_mem not set, dom0_max_vcpus {}", Opt(o.dom0_max_vcpus)),
    }
    for w in p.warnings.iter() {
        warn!("device tree: {} ({})", w.what, w.node);
    }
    for b in p.memory.iter() {
        info!("RAM: {:016x} - {:016x} ({} MiB)", b.base, b.end() - 1, b.size >> 20);
    }
    for (i, m) in p.modules.iter().enumerate() {
        info!(
            "MODULE[{i}]: {:016x} - {:016x} {:<11} {}",
            m.region.base,
            m.region.end(),
            m.kind.name(),
            m.bootargs.unwrap_or("")
        );
    }
    for r in p.memreserve.iter() {
        info!("RESVD (/memreserve/): {:016x} - {:016x}", r.base, r.end());
    }
    for r in p.reserved_memory.iter() {
        info!("RESVD (/reserved-memory/{}): {:016x} - {:016x}", r.name, r.region.base, r.region.end());
    }
    info!("CPUs: {} in the device tree", p.cpus.len());
    for c in p.cpus.iter() {
        debug!(
            "  {} MPIDR {:#x} enable-method {}, release address {:#x}{}",
            c.name,
            c.mpidr,
            c.enable_method.name(),
            Opt(c.release_addr),
            if c.enabled { "" } else { " (disabled)" }
        );
    }
    match &p.gic {
        Some(g) => {
            let v = if g.version == GicVersion::V3 { "GICv3" } else { "GICv2" };
            info!("{v} ({}): distributor {:#x}", g.compatible, g.dist.base);
            for r in g.redist.iter() {
                info!("{v}: redistributors {:#x}-{:#x}", r.base, r.end());
            }
            for (name, r) in [("CPU interface", g.cpu_if), ("hyp interface", g.hyp_if), ("vCPU interface", g.vcpu_if)] {
                if let Some(r) = r {
                    info!("{v}: {name} {:#x}-{:#x}", r.base, r.end());
                }
            }
            for r in g.its.iter() {
                info!("{v}: ITS {:#x}", r.base);
            }
            if let Some(irq) = g.maintenance_irq {
                info!("{v}: maintenance interrupt {irq}");
            }
        }
        None => warn!("no supported interrupt controller in the device tree"),
    }
    match &p.timer {
        Some(t) => info!(
            "Timer: CNTFRQ {} Hz; interrupts: phys {}, virt {}, hyp {}",
            CNTFRQ_EL0.get(),
            Opt(t.phys),
            Opt(t.virt),
            Opt(t.hyp_phys)
        ),
        None => warn!("no architected timer node in the device tree"),
    }
    match (&p.psci, psci::version()) {
        (Some(c), _) if c.conduit == Conduit::Hvc => {
            warn!("PSCI method is hvc, which cannot reach firmware from EL2: PSCI unavailable")
        }
        (Some(c), Some((maj, min))) => info!("PSCI: {maj}.{min} via {}", c.conduit.name()),
        (Some(c), None) => info!("PSCI: 0.1 via {} (no PSCI_VERSION)", c.conduit.name()),
        (None, _) => warn!("no /psci node: power off and CPU bring-up unavailable"),
    }
    info!(
        "MMU: EL2 stage 1 on, identity map of a {}-bit address space, 4 KiB granule, {} tables; \
         image W^X (text {:#x}-{:#x} RX, rodata {:#x}-{:#x} R, data {:#x}-{:#x} RW); caches on",
        s1.va_bits,
        s1.tables_used(),
        img.start,
        img.text_end,
        img.rodata_start,
        img.rodata_end,
        img.data_start,
        img.end
    );
}

/// Step 1 of boot memory: the plan, the frame table, the Rust heap, `Mm`.
fn init_memory(img: &Image, dtb: Region, p: &Platform) -> (Mm, BootMem) {
    let mut plan = BootMem::new(&p.memory).unwrap_or_else(|e| panic!("boot memory: {e}"));
    let mut reserve = |base: u64, size: u64, what: &'static str| {
        plan.reserve(base, size, what).unwrap_or_else(|e| panic!("boot memory: reserving {what}: {e}"))
    };
    reserve(img.start, img.size(), "hypervisor image");
    reserve(dtb.base, dtb.size, "device tree");
    for m in p.modules.iter() {
        reserve(m.region.base, m.region.size, "boot module");
    }
    for r in p.memreserve.iter() {
        reserve(r.base, r.size, "/memreserve/");
    }
    for r in p.reserved_memory.iter() {
        reserve(r.region.base, r.region.size, "/reserved-memory");
    }
    for c in p.cpus.iter() {
        if let Some(a) = c.release_addr {
            reserve(a, 8, "spin-table release address");
        }
    }

    // The frame table: one PageInfo per frame from the lowest to the highest RAM address.
    let span = plan.ram_span();
    let frames = span.frames();
    let per = core::mem::size_of::<PageInfo>() as u64;
    let bytes = (frames * per).next_multiple_of(PAGE_SIZE);
    let ft = plan
        .take(bytes, if bytes >= 2 << 20 { 2 << 20 } else { PAGE_SIZE }, "frame table")
        .unwrap_or_else(|e| panic!("frame table ({bytes} bytes): {e}"));
    // SAFETY: [ft, ft + bytes) is RAM nobody else uses (just carved), identity-mapped RW.
    unsafe { core::ptr::write_bytes(ft as *mut u8, 0, bytes as usize) };
    // SAFETY: zeroed memory is a valid PageInfo array ("unmanaged" frames), and the carve is
    // never handed to anything else, so the slice lives as long as the hypervisor.
    let pages: &'static [PageInfo] = unsafe { core::slice::from_raw_parts(ft as *const PageInfo, frames as usize) };
    info!(
        "Frame table: {frames} frames ({:#x}-{:#x}) x {per} bytes = {} KiB at {:#x}",
        span.start,
        span.end,
        bytes >> 10,
        ft
    );

    // The Rust heap (Box/Arc/Vec of the core): 16 MiB, or an eighth of RAM if that is less.
    let arena = (16u64 << 20).min(plan.ram_bytes() / 8).max(1 << 20);
    let base = plan.take(arena, PAGE_SIZE, "Rust heap").unwrap_or_else(|e| panic!("Rust heap: {e}"));
    // SAFETY: just carved from free RAM, identity-mapped RW, used for nothing else.
    unsafe { allocator::init(base, arena) };
    info!("Rust heap: {} KiB at {:#x}", arena >> 10, base);

    // SAFETY: every RAM page in [span.start, span.end) is identity-mapped read-write (holes
    // between banks are not: an access there faults loudly instead).
    let phys = unsafe { PhysMap::new(0, span.start, span.end) };
    let tlb: Arc<dyn TlbOps> = Arc::new(El2Tlb);
    let mm = Mm::new(FrameTable::from_static(Mfn::from_addr(span.start), pages), phys, tlb);
    for r in plan.records() {
        debug!(
            "boot memory: {:#x}-{:#x} {} ({})",
            r.range.start,
            r.range.end,
            r.what,
            if r.taken { "carved" } else { "reserved" }
        );
    }
    (mm, plan)
}

/// Step 2 of boot memory: everything still free goes to the page allocator.
fn give_to_heap(mm: &Mm, plan: BootMem) {
    let heap = plan.into_heap();
    for r in heap.iter() {
        mm.heap.add_range(&mm.frames, r.first_mfn(), r.frames());
        debug!("page allocator: {:#x}-{:#x} ({} frames)", r.start, r.end, r.frames());
    }
    let total: u64 = heap.iter().map(Range::frames).sum();
    info!("Page allocator: {} frames ({} MiB) in {} ranges", total, (total * PAGE_SIZE) >> 20, heap.len());
}

/// The stage-2 regime every domain uses: IPA size from the machine's address map (`top`: one
/// past its highest RAM or device address), or the `granite_ipa_bits=` cap when given, within
/// the CPU's PA size; VMID width; VTCR_EL2.
fn init_stage2(top: u64, cap: Option<u32>) -> StageConfig {
    let parange = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange);
    let pa_bits = parange_bits(parange).unwrap_or(48).min(48);
    let vmid16 = ID_AA64MMFR1_EL1.read(ID_AA64MMFR1_EL1::VMIDBits) == 0b0010;
    let stage = match cap {
        Some(cap) => StageConfig::new(pa_bits, cap, vmid16),
        None => StageConfig::for_machine(pa_bits, top, vmid16),
    }
    .unwrap_or_else(|| panic!("{pa_bits}-bit P2M is not supported"));
    if top > 1 << stage.ipa_bits {
        log::warn!("P2M: devices up to {top:#x} lie beyond the {}-bit IPA space and cannot be mapped", stage.ipa_bits);
    }
    VTCR_EL2.set(stage.vtcr);
    barrier::isb(barrier::SY);
    info!(
        "P2M: {}-bit IPA (address map up to {top:#x}) with {}-bit PA and {}-bit VMID",
        stage.ipa_bits, pa_bits, stage.vmid_bits
    );
    info!("P2M: {} levels with order-{} root, VTCR {:#x}", stage.levels(), stage.root_order, VTCR_EL2.get());
    stage
}
