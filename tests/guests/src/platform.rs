//! What the guest learns from the device tree the hypervisor hands it (x0 at entry), read the
//! way Linux reads it: `/memory*` banks, `/chosen/bootargs`, and the `/hypervisor` node
//! (`compatible = "xen,xen-X.Y", "xen,xen"`; `reg[0]` = grant-table region, `reg[1..]` =
//! extended regions; `interrupts` = the event-channel PPI), and the interrupt controller
//! (`arm,gic-v3`: GICD and the redistributor regions; `arm,cortex-a15-gic` / `arm,gic-400`
//! and the other GICv2 names: GICD and GICC). Nothing is hard-coded.

use core::fmt::{self, Write};
use fdt::Fdt;

/// A physical (= guest-physical) address range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
    /// First guest frame number.
    pub const fn gfn(&self) -> u64 {
        self.base >> 12
    }
    /// Number of 4 KiB pages.
    pub const fn pages(&self) -> u64 {
        self.size >> 12
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:#x}-{:#x}", self.base, self.end())
    }
}

/// A fixed-capacity list of regions.
#[derive(Clone, Copy, Debug)]
pub struct Regions<const N: usize> {
    items: [Region; N],
    len: usize,
}

impl<const N: usize> Default for Regions<N> {
    fn default() -> Self {
        Self { items: [Region::default(); N], len: 0 }
    }
}

impl<const N: usize> Regions<N> {
    /// Appends `r`; returns false (and drops it) when full.
    pub fn push(&mut self, r: Region) -> bool {
        if self.len == N {
            return false;
        }
        self.items[self.len] = r;
        self.len += 1;
        true
    }
    pub fn as_slice(&self) -> &[Region] {
        &self.items[..self.len]
    }
    pub fn iter(&self) -> impl Iterator<Item = &Region> {
        self.as_slice().iter()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn first(&self) -> Option<&Region> {
        self.as_slice().first()
    }
    pub fn last(&self) -> Option<&Region> {
        self.as_slice().last()
    }
}

/// The GIC architecture the interrupt controller node names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

/// The interrupt controller from the device tree.
#[derive(Clone, Copy, Debug)]
pub struct GicNode {
    pub version: GicVersion,
    /// The distributor (GICD).
    pub dist: Region,
    /// GICv3: the redistributor regions (`#redistributor-regions`, default 1), in order.
    pub redist: Regions<4>,
    /// GICv2: the CPU interface (GICC; under a hypervisor its virtual CPU interface).
    pub cpu_if: Option<Region>,
}

/// Everything the runtime and the scenarios need to know about the machine.
#[derive(Debug)]
pub struct Platform {
    /// Where the DTB is (guest-physical) and how big it is.
    pub dtb: Region,
    /// The loaded image including BSS.
    pub image: Region,
    /// RAM banks from `/memory*`.
    pub memory: Regions<8>,
    /// `/hypervisor` reg[0]: the guest-physical range to map grant-table frames at.
    pub grant_region: Option<Region>,
    /// `/hypervisor` reg[1..]: unused guest-physical ranges (safe for foreign/grant mappings).
    pub extended: Regions<16>,
    /// The `xen,xen-X.Y` compatible string of `/hypervisor`, if any.
    pub hypervisor_compatible: Option<&'static str>,
    /// Whether `/hypervisor` is compatible with `xen,xen`.
    pub is_xen: bool,
    /// The event-channel interrupt (GIC INTID) from `/hypervisor` `interrupts`.
    pub evtchn_irq: Option<u32>,
    /// The raw `interrupts` specifier of `/hypervisor` (<type number flags>).
    pub evtchn_spec: [u32; 3],
    /// The GIC distributor (first `reg` of the interrupt controller).
    pub gic_dist: Option<Region>,
    /// The interrupt controller, if it is a GICv2 or GICv3 the runtime knows.
    pub gic: Option<GicNode>,
    /// `/chosen/bootargs`.
    pub bootargs: &'static str,
    /// Physical address size from ID_AA64MMFR0_EL1.PARange.
    pub pa_bits: u32,
    /// The `reg` (MPIDR affinity) of every enabled `/cpus/cpu@N` node, in device-tree order.
    pub cpus: Cpus,
    /// The PSCI conduit from `/psci` `method`, if there is a PSCI node.
    pub psci: Option<Conduit>,
}

/// How PSCI calls reach the firmware (here: the hypervisor): `HVC #0` or `SMC #0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

/// The MPIDR affinity values of the CPUs in the device tree (at most [`crate::smp::MAX_CPUS`];
/// more are counted in `dropped`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpus {
    mpidr: [u64; crate::smp::MAX_CPUS],
    len: usize,
    /// CPU nodes beyond the capacity, ignored.
    pub dropped: usize,
}

impl Cpus {
    fn push(&mut self, mpidr: u64) {
        if self.len == self.mpidr.len() {
            self.dropped += 1;
        } else {
            self.mpidr[self.len] = mpidr;
            self.len += 1;
        }
    }
    pub fn as_slice(&self) -> &[u64] {
        &self.mpidr[..self.len]
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Platform {
    /// Whether `word` is one of the space-separated words of the boot arguments.
    pub fn has_bootarg(&self, word: &str) -> bool {
        self.bootargs.split_ascii_whitespace().any(|w| w == word)
    }

    /// The value of `key=value` in the boot arguments.
    pub fn bootarg(&self, key: &str) -> Option<&'static str> {
        self.bootargs.split_ascii_whitespace().find_map(|w| {
            let (k, v) = w.split_once('=')?;
            (k == key).then_some(v)
        })
    }

    /// Whether `[base, base+size)` overlaps any RAM bank.
    pub fn overlaps_ram(&self, base: u64, size: u64) -> bool {
        self.memory.iter().any(|m| base < m.end() && m.base < base + size)
    }

    /// Prints what was found, one `[granite] dt ...` line each.
    pub fn print(&self) {
        crate::println!("[granite] dt dtb={} image={} pa_bits={}", self.dtb, self.image, self.pa_bits);
        for m in self.memory.iter() {
            crate::println!("[granite] dt memory {} ({} MiB)", m, m.size >> 20);
        }
        crate::println!("[granite] dt hypervisor compatible={:?} xen={}", self.hypervisor_compatible, self.is_xen);
        if let Some(g) = self.grant_region {
            crate::println!("[granite] dt grant-table region {} ({} frames)", g, g.pages());
        }
        for (i, e) in self.extended.iter().enumerate() {
            crate::println!("[granite] dt extended region {} {} ({} MiB)", i, e, e.size >> 20);
        }
        if let Some(irq) = self.evtchn_irq {
            let [kind, num, flags] = self.evtchn_spec;
            crate::println!(
                "[granite] dt event-channel interrupt INTID {} (interrupts = <{} {} {:#x}>)",
                irq,
                kind,
                num,
                flags
            );
        }
        if let Some(g) = self.gic_dist {
            crate::println!("[granite] dt gic distributor {}", g);
        }
        if let Some(g) = &self.gic {
            let mut rd = crate::report::StrBuf::<120>::new();
            for r in g.redist.iter() {
                let _ = write!(rd, " redistributors {}", r);
            }
            if let Some(c) = g.cpu_if {
                let _ = write!(rd, " cpu interface {}", c);
            }
            crate::println!("[granite] dt gic {:?}:{}", g.version, rd.as_str());
        }
        let mut cpus = crate::report::StrBuf::<160>::new();
        for (i, m) in self.cpus.as_slice().iter().enumerate() {
            let _ = write!(cpus, "{}{:#x}", if i == 0 { "" } else { " " }, m);
        }
        crate::println!(
            "[granite] dt cpus {} (mpidr {}){} psci {:?}",
            self.cpus.len(),
            cpus.as_str(),
            if self.cpus.dropped > 0 { " (more ignored)" } else { "" },
            self.psci
        );
        crate::println!("[granite] dt bootargs \"{}\"", self.bootargs);
    }
}

/// Why the device tree could not be used.
#[derive(Debug)]
pub enum DtError {
    Header(fdt::FdtError),
    NoMemory,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Parses the DTB at `dtb` (guest-physical, identity-mapped or MMU off).
///
/// # Safety
/// `dtb` must point to a flattened device tree that stays in place, unmodified, for the rest
/// of the guest's life (the returned strings point into it).
pub unsafe fn parse(dtb: u64, image: Region) -> Result<Platform, DtError> {
    // SAFETY: the caller guarantees a valid, permanent DTB at `dtb`; `from_ptr` reads the
    // header for the size and then builds a slice of exactly that size.
    let fdt: Fdt<'static> = unsafe { Fdt::from_ptr(dtb as *const u8) }.map_err(DtError::Header)?;
    let mut p = Platform {
        dtb: Region { base: dtb, size: fdt.total_size() as u64 },
        image,
        memory: Regions::default(),
        grant_region: None,
        extended: Regions::default(),
        hypervisor_compatible: None,
        is_xen: false,
        evtchn_irq: None,
        evtchn_spec: [0; 3],
        gic_dist: None,
        gic: None,
        bootargs: "",
        pa_bits: pa_bits(),
        cpus: Cpus::default(),
        psci: None,
    };

    let root = fdt.find_node("/").ok_or(DtError::NoMemory)?;
    for node in root.children() {
        let name = node.name.split('@').next().unwrap_or("");
        let is_mem = node.property("device_type").and_then(|p| p.as_str()) == Some("memory");
        if name == "memory" || is_mem {
            for r in node.reg().into_iter().flatten() {
                let size = r.size.unwrap_or(0) as u64;
                if size != 0 {
                    p.memory.push(Region { base: r.starting_address as u64, size });
                }
            }
        }
    }
    if p.memory.is_empty() {
        return Err(DtError::NoMemory);
    }

    if let Some(chosen) = fdt.find_node("/chosen") {
        p.bootargs = chosen.property("bootargs").and_then(|b| b.as_str()).unwrap_or("").trim_end_matches('\0');
    }

    if let Some(hv) = fdt.find_node("/hypervisor") {
        if let Some(compat) = hv.compatible() {
            for c in compat.all() {
                if c == "xen,xen" {
                    p.is_xen = true;
                } else if c.starts_with("xen,xen-") {
                    p.hypervisor_compatible = Some(c);
                }
            }
        }
        for (i, r) in hv.reg().into_iter().flatten().enumerate() {
            let reg = Region { base: r.starting_address as u64, size: r.size.unwrap_or(0) as u64 };
            if i == 0 {
                p.grant_region = Some(reg);
            } else {
                p.extended.push(reg);
            }
        }
        // `interrupts` is one GIC specifier: <type number flags>, type 1 = PPI (INTID 16+n),
        // type 0 = SPI (INTID 32+n).
        if let Some(prop) = hv.property("interrupts")
            && prop.value.len() >= 12
        {
            let (kind, num) = (be32(&prop.value[0..4]), be32(&prop.value[4..8]));
            p.evtchn_spec = [kind, num, be32(&prop.value[8..12])];
            p.evtchn_irq = Some(if kind == 1 { num + 16 } else { num + 32 });
        }
    }

    // `/cpus`: every `cpu@N` child that is not disabled; `reg` is the MPIDR affinity, in
    // #address-cells cells (1 or 2).
    if let Some(cpus) = fdt.find_node("/cpus") {
        let cells = cpus.property("#address-cells").and_then(|p| p.as_usize()).unwrap_or(1);
        for node in cpus.children() {
            let is_cpu = node.name.split('@').next() == Some("cpu")
                || node.property("device_type").and_then(|p| p.as_str()) == Some("cpu");
            let disabled = node.property("status").and_then(|p| p.as_str()).is_some_and(|s| s.starts_with("disabled"));
            let Some(reg) = node.property("reg") else { continue };
            if !is_cpu || disabled {
                continue;
            }
            let v = reg.value;
            let mpidr = match cells {
                1 if v.len() >= 4 => be32(v) as u64,
                2 if v.len() >= 8 => (be32(v) as u64) << 32 | be32(&v[4..]) as u64,
                _ => continue,
            };
            p.cpus.push(mpidr);
        }
    }
    if let Some(psci) = fdt.find_node("/psci") {
        p.psci = match psci.property("method").and_then(|m| m.as_str()).map(|m| m.trim_end_matches('\0')) {
            Some("hvc") => Some(Conduit::Hvc),
            Some("smc") => Some(Conduit::Smc),
            _ => None,
        };
    }

    for node in fdt.all_nodes() {
        if node.property("interrupt-controller").is_none() {
            continue;
        }
        let gic = node
            .compatible()
            .is_some_and(|c| c.all().any(|s| s.starts_with("arm,gic") || s.starts_with("arm,cortex-a15-gic")));
        if gic && let Some(r) = node.reg().and_then(|mut r| r.next()) {
            p.gic_dist = Some(Region { base: r.starting_address as u64, size: r.size.unwrap_or(0) as u64 });
            p.gic = gic_node(&node);
            break;
        }
    }
    Ok(p)
}

/// GICv2 interrupt controllers (Linux's irq-gic.c names; QEMU virt says `arm,cortex-a15-gic`).
const GICV2_COMPATIBLE: [&str; 6] =
    ["arm,cortex-a15-gic", "arm,gic-400", "arm,cortex-a9-gic", "arm,cortex-a7-gic", "arm,arm11mp-gic", "arm,pl390"];

/// The GIC of an interrupt-controller node: `arm,gic-v3` (reg: GICD, then
/// `#redistributor-regions` redistributor regions, then GICv2-compatibility frames, ignored)
/// or a GICv2 (reg: GICD, GICC, then GICH and GICV, ignored).
fn gic_node(node: &fdt::node::FdtNode) -> Option<GicNode> {
    let compat = node.compatible()?;
    let version = if compat.all().any(|c| c == "arm,gic-v3") {
        GicVersion::V3
    } else if compat.all().any(|c| GICV2_COMPATIBLE.contains(&c)) {
        GicVersion::V2
    } else {
        return None;
    };
    let mut regs = node.reg()?.map(|r| Region { base: r.starting_address as u64, size: r.size.unwrap_or(0) as u64 });
    let dist = regs.next()?;
    let mut g = GicNode { version, dist, redist: Regions::default(), cpu_if: None };
    match version {
        GicVersion::V3 => {
            let n = node.property("#redistributor-regions").and_then(|p| p.as_usize()).unwrap_or(1);
            for r in regs.take(n) {
                g.redist.push(r);
            }
        }
        GicVersion::V2 => g.cpu_if = regs.next(),
    }
    Some(g)
}

/// The physical address size implemented (as the hypervisor presents ID_AA64MMFR0_EL1).
pub fn pa_bits() -> u32 {
    let mmfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { core::arch::asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    match mmfr0 & 0xf {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}
