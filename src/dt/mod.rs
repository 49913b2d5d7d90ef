//! The boot device tree: everything the hypervisor needs from it, parsed without allocating
//! (it runs before any allocator exists, with the MMU still off) on top of the `fdt` crate.
//!
//! Portable and host-tested: [`DeviceTree::parse`] turns a DTB into a [`Platform`]: RAM banks,
//! `/memreserve/` and `/reserved-memory` ranges, CPUs, the GIC, the timer interrupts, PSCI,
//! `/chosen` (command line, stdout path) and the boot modules (`/chosen/module@...` with
//! `multiboot,kernel` / `multiboot,module` / ... compatibles, as QEMU's `guest-loader` device
//! and U-Boot/Xen setups create them; or `linux,initrd-start/end`, which is how the Raspberry
//! Pi firmware's `initramfs` line and QEMU's `-initrd` hand over a file: see
//! [`INITRD_MODULE`]), and the lowest limit of any bus's DMA window ([`Platform::dma_limit`]).
//!
//! [`DeviceTree::visit`] walks every node with its translated `reg` for what needs the whole
//! tree later (dom0's device tree and its passed-through devices, [`crate::dom0`]).
//!
//! Addresses are translated to CPU physical addresses through the `ranges` of every ancestor
//! bus (the Raspberry Pi 4 puts its UART and GIC under `/soc` in bus address space).
//! `#address-cells` / `#size-cells` a node does not state are inherited from its closest
//! ancestor that does (what Linux and Xen do; QEMU's `/chosen` relies on it), with the
//! specification's defaults (2 and 1) at the root.

pub mod cmdline;
mod fixed;

pub use fixed::FixedVec;

use fdt::Fdt;
use fdt::node::FdtNode;

/// How deep the walker descends (the root is depth 0).
const MAX_DEPTH: usize = 8;
pub const MAX_BANKS: usize = 16;
pub const MAX_RESERVED: usize = 32;
pub const MAX_CPUS: usize = 64;
pub const MAX_MODULES: usize = 8;
pub const MAX_REDIST: usize = 8;
pub const MAX_ITS: usize = 4;
pub const MAX_WARNINGS: usize = 16;

/// A physical address range `[base, base + size)`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, PartialOrd, Ord)]
pub struct Region {
    pub base: u64,
    pub size: u64,
}

impl Region {
    pub const fn new(base: u64, size: u64) -> Self {
        Region { base, size }
    }
    /// One past the last byte (saturating at 2^64 - 1).
    pub const fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.base && addr < self.end()
    }
    pub const fn overlaps(&self, other: &Region) -> bool {
        self.base < other.end() && other.base < self.end()
    }
}

/// Why the device tree could not be used.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum DtError {
    /// Not a flattened device tree (bad magic, truncated).
    Header(fdt::FdtError),
    /// A path or alias that names no node.
    NotFound,
    /// The node has no usable `reg` (missing, too many cells, or not translatable).
    NoReg,
}

impl core::fmt::Display for DtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DtError::Header(e) => write!(f, "not a valid flattened device tree ({e:?})"),
            DtError::NotFound => write!(f, "no such node"),
            DtError::NoReg => write!(f, "node has no usable (translatable) reg"),
        }
    }
}

/// How a CPU is started.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum EnableMethod {
    /// No `enable-method` (the boot CPU often has none).
    #[default]
    None,
    Psci,
    /// Spin table: write the entry point to `cpu-release-addr` and `sev`.
    SpinTable,
    Other,
}

impl EnableMethod {
    pub fn name(self) -> &'static str {
        match self {
            EnableMethod::None => "none",
            EnableMethod::Psci => "psci",
            EnableMethod::SpinTable => "spin-table",
            EnableMethod::Other => "other",
        }
    }
}

/// A `/cpus/cpu@...` node.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Cpu<'a> {
    pub name: &'a str,
    /// The `reg` value: MPIDR affinity bits (Aff3 in bits 39:32, Aff2..Aff0 in bits 23:0).
    pub mpidr: u64,
    pub enable_method: EnableMethod,
    /// `cpu-release-addr` of a spin-table CPU.
    pub release_addr: Option<u64>,
    /// false if `status` says "disabled".
    pub enabled: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum GicVersion {
    #[default]
    V2,
    V3,
}

/// The interrupt controller.
#[derive(Clone, Copy, PartialEq, Debug, Default)]
pub struct Gic<'a> {
    pub version: GicVersion,
    /// The first `compatible` string.
    pub compatible: &'a str,
    /// Distributor (GICD).
    pub dist: Region,
    /// Redistributor regions (GICR, GICv3 only).
    pub redist: FixedVec<Region, MAX_REDIST>,
    /// CPU interface (GICC; GICv2, optional on GICv3).
    pub cpu_if: Option<Region>,
    /// Virtual interface control (GICH).
    pub hyp_if: Option<Region>,
    /// Virtual CPU interface (GICV).
    pub vcpu_if: Option<Region>,
    /// The maintenance interrupt (INTID).
    pub maintenance_irq: Option<u32>,
    /// ITS frames (`arm,gic-v3-its` children).
    pub its: FixedVec<Region, MAX_ITS>,
}

/// The architected timer's interrupts (INTIDs: PPI n is INTID 16 + n).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Timer {
    pub secure_phys: Option<u32>,
    pub phys: Option<u32>,
    pub virt: Option<u32>,
    pub hyp_phys: Option<u32>,
    pub hyp_virt: Option<u32>,
    /// `clock-frequency`, if the firmware failed to program CNTFRQ_EL0.
    pub clock_frequency: Option<u32>,
}

/// The instruction PSCI calls use.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Conduit {
    #[default]
    Smc,
    Hvc,
}

impl Conduit {
    pub fn name(self) -> &'static str {
        match self {
            Conduit::Smc => "smc",
            Conduit::Hvc => "hvc",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Psci {
    pub conduit: Conduit,
    /// `arm,psci-0.2` or later: the standard function IDs (SYSTEM_OFF, ...) exist.
    pub v0_2: bool,
    /// PSCI 0.1 function IDs from the node (0.2+ use the standard ones).
    pub cpu_on: Option<u32>,
    pub cpu_off: Option<u32>,
}

/// What a boot module is (Xen's classification).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ModuleKind {
    #[default]
    Unknown,
    Kernel,
    Ramdisk,
    DeviceTree,
    XsmPolicy,
}

impl ModuleKind {
    pub fn name(self) -> &'static str {
        match self {
            ModuleKind::Unknown => "Unknown",
            ModuleKind::Kernel => "Kernel",
            ModuleKind::Ramdisk => "Ramdisk",
            ModuleKind::DeviceTree => "Device Tree",
            ModuleKind::XsmPolicy => "XSM",
        }
    }
}

/// A `/chosen/module@...` node: a payload the boot loader placed in RAM for dom0.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct BootModule<'a> {
    pub kind: ModuleKind,
    pub name: &'a str,
    pub region: Region,
    /// The module's own `bootargs` (for a kernel: its command line).
    pub bootargs: Option<&'a str>,
}

/// A `/reserved-memory` child with a static `reg`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReservedMemory<'a> {
    pub name: &'a str,
    pub region: Region,
    pub no_map: bool,
}

/// A serial port named by `/chosen/stdout-path` (or `dtuart=`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Uart<'a> {
    /// The node's name (`pl011@9000000`).
    pub name: &'a str,
    /// CPU physical address of the registers.
    pub base: u64,
    pub size: u64,
    /// The first `compatible` string.
    pub compatible: &'a str,
    /// Compatible with `arm,pl011`.
    pub pl011: bool,
    /// What followed `:` in the path (`115200n8`), empty if nothing.
    pub options: &'a str,
}

/// `/chosen`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Chosen<'a> {
    /// The hypervisor's command line: `xen,xen-bootargs` if present, else `bootargs`.
    pub bootargs: Option<&'a str>,
    /// `stdout-path` as written (alias or path, with any `:options`).
    pub stdout_path: Option<&'a str>,
    /// `xen,dom0-bootargs`: dom0's command line when its kernel module has no `bootargs`.
    pub dom0_bootargs: Option<&'a str>,
    /// `linux,initrd-start` .. `linux,initrd-end`: a file the boot loader placed in RAM.
    pub initrd: Option<Region>,
}

/// The name of the boot module made from `/chosen` `linux,initrd-start/end`. Without a
/// `multiboot,kernel` module, that file *is* dom0's kernel (an arm64 `Image`): the Raspberry
/// Pi firmware (`config.txt`: `initramfs FILE ADDRESS`) and QEMU (`-initrd FILE`) can load a
/// second file only that way. With a kernel module it is dom0's ramdisk, as on Xen.
pub const INITRD_MODULE: &str = "linux,initrd";

/// Something odd the parser skipped (logged once the console is up).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Warning<'a> {
    pub what: &'static str,
    pub node: &'a str,
}

/// What the hypervisor learned from the device tree.
#[derive(Clone, Copy, Debug, Default)]
pub struct Platform<'a> {
    pub model: Option<&'a str>,
    pub compatible: Option<&'a str>,
    /// RAM banks, sorted by address.
    pub memory: FixedVec<Region, MAX_BANKS>,
    /// `/memreserve/` entries.
    pub memreserve: FixedVec<Region, MAX_RESERVED>,
    pub reserved_memory: FixedVec<ReservedMemory<'a>, MAX_RESERVED>,
    pub cpus: FixedVec<Cpu<'a>, MAX_CPUS>,
    pub gic: Option<Gic<'a>>,
    pub timer: Option<Timer>,
    pub psci: Option<Psci>,
    pub chosen: Chosen<'a>,
    /// The resolved `stdout-path`, if it names a node with a usable `reg`.
    pub stdout: Option<Uart<'a>>,
    /// Boot modules for dom0, in device-tree order (then the [`INITRD_MODULE`], if any).
    pub modules: FixedVec<BootModule<'a>, MAX_MODULES>,
    /// The lowest end (CPU physical) of any bus's DMA window (`dma-ranges`): memory below it
    /// is reachable by every DMA master (1 GiB on the BCM2711: its legacy DMA engines and
    /// most peripherals see only the first GiB). `None` if no bus restricts DMA.
    pub dma_limit: Option<u64>,
    pub warnings: FixedVec<Warning<'a>, MAX_WARNINGS>,
}

impl<'a> Platform<'a> {
    /// The first module of `kind`.
    pub fn module(&self, kind: ModuleKind) -> Option<&BootModule<'a>> {
        self.modules.iter().find(|m| m.kind == kind)
    }
    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.memory.iter().map(|r| r.size).sum()
    }
    fn warn(&mut self, what: &'static str, node: &'a str) {
        let _ = self.warnings.push(Warning { what, node });
    }
}

// ---- property helpers ---------------------------------------------------------------------------

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

/// An address or size of `n` cells (n <= 2; 0 cells is 0).
fn read_cells(b: &[u8], n: usize) -> Option<u64> {
    match n {
        0 => Some(0),
        1 => be32(b).map(u64::from),
        2 => Some(((be32(b)? as u64) << 32) | be32(b.get(4..)?)? as u64),
        _ => None,
    }
}

/// A string property (trailing NULs removed), `None` if absent or not UTF-8.
fn prop_str<'a>(node: &FdtNode<'_, 'a>, name: &str) -> Option<&'a str> {
    let p = node.property(name)?;
    let s = core::str::from_utf8(p.value).ok()?;
    Some(s.trim_end_matches('\0'))
}

fn prop_u32(node: &FdtNode<'_, '_>, name: &str) -> Option<u32> {
    be32(node.property(name)?.value)
}

/// The strings of a string-list property (`compatible`).
fn strings<'a>(node: &FdtNode<'_, 'a>, name: &str) -> impl Iterator<Item = &'a str> {
    let v = node.property(name).map(|p| p.value).unwrap_or(&[]);
    v.split(|&b| b == 0).filter(|s| !s.is_empty()).filter_map(|s| core::str::from_utf8(s).ok())
}

fn is_compatible(node: &FdtNode<'_, '_>, any_of: &[&str]) -> bool {
    strings(node, "compatible").any(|c| any_of.contains(&c))
}

fn first_compatible<'a>(node: &FdtNode<'_, 'a>) -> &'a str {
    strings(node, "compatible").next().unwrap_or("")
}

fn is_enabled(node: &FdtNode<'_, '_>) -> bool {
    prop_str(node, "status").is_none_or(|s| s == "okay" || s == "ok")
}

/// Does node name `name` match path component `want` (exact, or base name if `want` has no
/// unit address)?
fn name_matches(name: &str, want: &str) -> bool {
    if want.contains('@') { name == want } else { name.split('@').next() == Some(want) }
}

/// Interrupt specifiers of a node whose interrupt parent is a GIC (3 cells: type, number,
/// flags) as INTIDs.
fn gic_interrupts(node: &FdtNode<'_, '_>) -> impl Iterator<Item = u32> {
    let v = node.property("interrupts").map(|p| p.value).unwrap_or(&[]);
    let usable = if v.len().is_multiple_of(12) { v } else { &[] };
    usable.chunks_exact(12).filter_map(|c| {
        let (ty, num) = (be32(c)?, be32(&c[4..])?);
        match ty {
            0 => Some(num + 32), // SPI
            1 => Some(num + 16), // PPI
            _ => None,
        }
    })
}

/// `/chosen` `linux,initrd-start` and `linux,initrd-end` (one or two cells each, as Linux
/// reads them), if both are there and describe a non-empty range.
fn initrd_region(chosen: &FdtNode<'_, '_>) -> Option<Region> {
    let cell = |name: &str| {
        let v = chosen.property(name)?.value;
        match v.len() {
            4 => read_cells(v, 1),
            8 => read_cells(v, 2),
            _ => None,
        }
    };
    let (start, end) = (cell("linux,initrd-start")?, cell("linux,initrd-end")?);
    (end > start).then(|| Region::new(start, end - start))
}

/// The highest CPU physical address + 1 that the `dma-ranges` of `node` (whose own context
/// is `ctx`) let its children's DMA reach, if it restricts DMA at all. An empty `dma-ranges`
/// is a 1:1 window over everything: no restriction.
fn dma_window_end(node: &FdtNode<'_, '_>, ctx: &Ctx<'_>) -> Option<u64> {
    window_end(node, ctx, "dma-ranges")
}

/// The highest CPU physical address + 1 of the parent-side windows of `node`'s `prop`
/// (`ranges` or `dma-ranges`), translated through `ctx`; `None` if absent or empty (1:1).
fn window_end(node: &FdtNode<'_, '_>, ctx: &Ctx<'_>, prop: &str) -> Option<u64> {
    let v = node.property(prop)?.value;
    let child_ac = prop_u32(node, "#address-cells").map_or(ctx.addr_cells, |c| c as usize);
    let child_sc = prop_u32(node, "#size-cells").map_or(ctx.size_cells, |c| c as usize);
    let (pac, entry) = (ctx.addr_cells, 4 * (child_ac + ctx.addr_cells + child_sc));
    if v.is_empty() || entry == 0 || !v.len().is_multiple_of(entry) {
        return None;
    }
    v.chunks_exact(entry)
        .filter_map(|e| {
            let parent = read_cells(&e[4 * child_ac..], pac)?;
            let size = read_cells(&e[4 * (child_ac + pac)..], child_sc)?;
            ctx.translate(parent)?.checked_add(size)
        })
        .max()
}

// ---- bus context (cells and address translation) --------------------------------------------

/// One level of address translation: a bus node's `ranges`.
#[derive(Clone, Copy, Default)]
struct Bus<'a> {
    /// `None`: no `ranges` property (treated as identity); `Some(&[])`: identity.
    ranges: Option<&'a [u8]>,
    /// Cells of a child address, of a parent address and of a size in `ranges`.
    child_addr: usize,
    parent_addr: usize,
    size: usize,
}

impl Bus<'_> {
    fn translate(&self, addr: u64) -> Option<u64> {
        let r = match self.ranges {
            None | Some([]) => return Some(addr),
            Some(r) => r,
        };
        let entry = 4 * (self.child_addr + self.parent_addr + self.size);
        if entry == 0 {
            return None;
        }
        for e in r.chunks_exact(entry) {
            let child = read_cells(e, self.child_addr)?;
            let parent = read_cells(&e[4 * self.child_addr..], self.parent_addr)?;
            let size = read_cells(&e[4 * (self.child_addr + self.parent_addr)..], self.size)?;
            if addr >= child && addr - child < size {
                return parent.checked_add(addr - child);
            }
        }
        None
    }
}

/// What applies to a node's `reg`: its parent's cell sizes, and the chain of `ranges` from
/// its parent bus up to the root.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    addr_cells: usize,
    size_cells: usize,
    /// buses[0] is the outermost (a child of the root), buses[depth - 1] the node's parent.
    buses: [Bus<'a>; MAX_DEPTH],
    depth: usize,
}

impl<'a> Ctx<'a> {
    /// The context of the root node itself.
    fn root() -> Self {
        Ctx { addr_cells: 2, size_cells: 1, buses: [Bus::default(); MAX_DEPTH], depth: 0 }
    }

    /// The context of the children of `node` (whose own context is `self`).
    fn child(&self, node: &FdtNode<'_, 'a>, node_is_root: bool) -> Option<Self> {
        let ac = prop_u32(node, "#address-cells").map_or(self.addr_cells, |v| v as usize);
        let sc = prop_u32(node, "#size-cells").map_or(self.size_cells, |v| v as usize);
        let mut c = *self;
        c.addr_cells = ac;
        c.size_cells = sc;
        if !node_is_root {
            if c.depth == MAX_DEPTH {
                return None;
            }
            c.buses[c.depth] = Bus {
                ranges: node.property("ranges").map(|p| p.value),
                child_addr: ac,
                parent_addr: self.addr_cells,
                size: sc,
            };
            c.depth += 1;
        }
        Some(c)
    }

    fn translate(&self, mut addr: u64) -> Option<u64> {
        for bus in self.buses[..self.depth].iter().rev() {
            addr = bus.translate(addr)?;
        }
        Some(addr)
    }

    /// The `reg` entries of a node in this context, translated to CPU physical addresses
    /// (entries that do not translate are `None`).
    fn regs(&self, node: &FdtNode<'_, 'a>) -> impl Iterator<Item = Option<Region>> + 'a {
        let v = node.property("reg").map(|p| p.value).unwrap_or(&[]);
        let (ac, sc) = (self.addr_cells, self.size_cells);
        let entry = 4 * (ac + sc);
        let usable = ac <= 2 && sc <= 2 && entry != 0;
        let ctx = *self;
        v.chunks_exact(if usable { entry } else { 4 }).take_while(move |_| usable).map(move |e| {
            let base = read_cells(e, ac)?;
            let size = read_cells(&e[4 * ac..], sc)?;
            Some(Region { base: ctx.translate(base)?, size })
        })
    }

    fn reg(&self, node: &FdtNode<'_, 'a>, i: usize) -> Option<Region> {
        self.regs(node).nth(i).flatten()
    }

    /// Does every bus between the root and the node have a `ranges` property? Without one,
    /// the children of a bus are not in its parent's address space (I2C, SPI, MDIO, ...).
    fn memory_mapped(&self) -> bool {
        self.buses[..self.depth].iter().all(|b| b.ranges.is_some())
    }
}

// ---- visiting every node ---------------------------------------------------------------------

/// A node met by [`DeviceTree::visit`], with what applies to its `reg`.
#[derive(Clone, Copy)]
pub struct Node<'b, 'a> {
    node: FdtNode<'b, 'a>,
    ctx: Ctx<'a>,
    /// 0 for the root.
    pub depth: usize,
}

impl<'b, 'a> Node<'b, 'a> {
    /// The node's name with its unit address (`serial@7e201000`); empty for the root.
    pub fn name(&self) -> &'a str {
        if self.depth == 0 { "" } else { self.node.name }
    }
    /// The name without the unit address.
    pub fn base_name(&self) -> &'a str {
        self.name().split('@').next().unwrap_or("")
    }
    pub fn property(&self, name: &str) -> Option<&'a [u8]> {
        self.node.property(name).map(|p| p.value)
    }
    /// Every property, in order, as (name, raw value).
    pub fn properties(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'b {
        self.node.properties().map(|p| (p.name, p.value))
    }
    pub fn is_compatible(&self, any_of: &[&str]) -> bool {
        is_compatible(&self.node, any_of)
    }
    /// `status` absent, `okay` or `ok`.
    pub fn enabled(&self) -> bool {
        is_enabled(&self.node)
    }
    pub fn device_type(&self) -> Option<&'a str> {
        prop_str(&self.node, "device_type")
    }
    /// `phandle` (or the older `linux,phandle`).
    pub fn phandle(&self) -> Option<u32> {
        prop_u32(&self.node, "phandle").or_else(|| prop_u32(&self.node, "linux,phandle"))
    }
    /// `#address-cells` and `#size-cells` of this node's `reg` (what its parent says).
    pub fn reg_cells(&self) -> (usize, usize) {
        (self.ctx.addr_cells, self.ctx.size_cells)
    }
    /// `reg`, translated to CPU physical addresses (`None` for an entry that does not
    /// translate).
    pub fn regs(&self) -> impl Iterator<Item = Option<Region>> + 'a {
        self.ctx.regs(&self.node)
    }
    /// The MMIO regions of a device: `reg` entries of non-zero size, translated through buses
    /// that all have `ranges` (nothing for a node on a bus that is not memory mapped).
    pub fn mmio(&self) -> impl Iterator<Item = Region> + 'a {
        let mapped = self.depth > 0 && self.ctx.memory_mapped();
        self.ctx.regs(&self.node).take_while(move |_| mapped).flatten().filter(|r| r.size != 0)
    }
    /// One past the highest CPU physical address of the windows this bus's `ranges` opens
    /// for its children (a PCIe host bridge's BAR windows); `None` without such windows.
    pub fn ranges_end(&self) -> Option<u64> {
        (self.depth > 0 && self.ctx.memory_mapped()).then(|| window_end(&self.node, &self.ctx, "ranges")).flatten()
    }
}

/// What [`DeviceTree::visit`] reports.
pub enum Visit<'b, 'a> {
    /// Entering a node; the callback returns whether to visit its children (and its `Leave`).
    Enter(Node<'b, 'a>),
    /// Leaving a node whose `Enter` returned true, after its children.
    Leave(Node<'b, 'a>),
}

// ---- the device tree -------------------------------------------------------------------------

/// A flattened device tree in memory.
#[derive(Clone, Copy)]
pub struct DeviceTree<'a> {
    fdt: Fdt<'a>,
}

impl<'a> DeviceTree<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, DtError> {
        Ok(DeviceTree { fdt: Fdt::new(data).map_err(DtError::Header)? })
    }

    /// The DTB's size from its header (`totalsize`), if `header` starts with a valid one.
    pub fn header_size(header: &[u8]) -> Option<usize> {
        (be32(header)? == 0xd00d_feed).then_some(be32(header.get(4..)?)? as usize)
    }

    /// Remove the `FDT_NOP` tokens from a DTB's structure block, in place, and return how many
    /// there were.
    ///
    /// libfdt leaves NOPs where it deletes or shrinks properties (QEMU's `-dtb` fixups, U-Boot
    /// and firmware edits do), and the `fdt` crate trips over a NOP between a node's
    /// properties and its children. The structure block is compacted and ends with `FDT_END`
    /// earlier; the header's `size_dt_struct` shrinks accordingly and everything else
    /// (strings, memory reservations, total size) stays where it was, so the result is still a
    /// valid DTB.
    pub fn remove_nops(blob: &mut [u8]) -> Result<usize, DtError> {
        const BEGIN_NODE: u32 = 1;
        const END_NODE: u32 = 2;
        const PROP: u32 = 3;
        const NOP: u32 = 4;
        const END: u32 = 9;
        let bad = DtError::Header(fdt::FdtError::BufferTooSmall);
        let hdr = |b: &[u8], i: usize| be32(b.get(4 * i..).unwrap_or(&[])).ok_or(bad);
        if hdr(blob, 0)? != 0xd00d_feed {
            return Err(DtError::Header(fdt::FdtError::BadMagic));
        }
        let total = hdr(blob, 1)? as usize;
        let start = hdr(blob, 2)? as usize;
        let size = hdr(blob, 9)? as usize;
        let end = start.checked_add(size).ok_or(bad)?;
        if total > blob.len() || end > total || !start.is_multiple_of(4) {
            return Err(bad);
        }
        let (mut rd, mut wr, mut nops) = (start, start, 0);
        loop {
            if rd + 4 > end {
                return Err(bad); // no FDT_END
            }
            let tok = be32(&blob[rd..]).ok_or(bad)?;
            let len = match tok {
                BEGIN_NODE => {
                    let name = blob.get(rd + 4..end).ok_or(bad)?;
                    let n = name.iter().position(|&c| c == 0).ok_or(bad)?;
                    4 + (n + 1).next_multiple_of(4)
                }
                PROP => {
                    let vlen = be32(blob.get(rd + 4..end).ok_or(bad)?).ok_or(bad)? as usize;
                    12 + vlen.next_multiple_of(4)
                }
                END_NODE | END => 4,
                NOP => {
                    rd += 4;
                    nops += 1;
                    continue;
                }
                _ => return Err(bad),
            };
            if rd + len > end {
                return Err(bad);
            }
            blob.copy_within(rd..rd + len, wr);
            rd += len;
            wr += len;
            if tok == END {
                break;
            }
        }
        if nops > 0 {
            let new_size = ((wr - start) as u32).to_be_bytes();
            blob[36..40].copy_from_slice(&new_size);
            // clear the freed tail so nothing mistakes it for tokens
            blob[wr..end].fill(0);
        }
        Ok(nops)
    }

    /// Bytes the DTB occupies (its header's `totalsize`).
    pub fn total_size(&self) -> usize {
        self.fdt.total_size()
    }

    fn root(&self) -> Option<FdtNode<'_, 'a>> {
        self.fdt.find_node("/")
    }

    /// Walk every node (depth first) with its context; `f` returns whether to descend.
    fn walk<'b>(&'b self, f: &mut dyn FnMut(FdtNode<'b, 'a>, &Ctx<'a>, usize) -> bool) {
        fn go<'b, 'a>(
            node: FdtNode<'b, 'a>,
            ctx: &Ctx<'a>,
            level: usize,
            f: &mut dyn FnMut(FdtNode<'b, 'a>, &Ctx<'a>, usize) -> bool,
        ) {
            if !f(node, ctx, level) || level >= MAX_DEPTH {
                return;
            }
            let Some(cctx) = ctx.child(&node, level == 0) else { return };
            for child in node.children() {
                go(child, &cctx, level + 1, f);
            }
        }
        if let Some(root) = self.root() {
            go(root, &Ctx::root(), 0, f);
        }
    }

    /// Visit every node depth first, root included (up to 8 levels deep): `f` gets
    /// [`Visit::Enter`] for each node and, when that returned true, [`Visit::Leave`] after the
    /// node's children.
    pub fn visit<'b>(&'b self, f: &mut dyn FnMut(Visit<'b, 'a>) -> bool) {
        fn go<'b, 'a>(node: Node<'b, 'a>, f: &mut dyn FnMut(Visit<'b, 'a>) -> bool) {
            if !f(Visit::Enter(node)) {
                return;
            }
            if node.depth < MAX_DEPTH
                && let Some(cctx) = node.ctx.child(&node.node, node.depth == 0)
            {
                for child in node.node.children() {
                    go(Node { node: child, ctx: cctx, depth: node.depth + 1 }, f);
                }
            }
            f(Visit::Leave(node));
        }
        if let Some(root) = self.root() {
            go(Node { node: root, ctx: Ctx::root(), depth: 0 }, f);
        }
    }

    /// One past the highest CPU physical address the tree describes: RAM banks, the translated
    /// `reg` of every memory-mapped device and the windows buses open with `ranges` (PCIe
    /// BARs are placed in those later); 0 for an empty tree.
    pub fn highest_address(&self) -> u64 {
        let mut top = 0u64;
        self.visit(&mut |v| {
            if let Visit::Enter(n) = v {
                for r in n.mmio() {
                    top = top.max(r.base.saturating_add(r.size));
                }
                top = top.max(n.ranges_end().unwrap_or(0));
            }
            true
        });
        top
    }

    /// The node at an absolute `path` (components without a unit address match any), with
    /// its context.
    fn find_path(&self, path: &str) -> Option<(FdtNode<'_, 'a>, Ctx<'a>)> {
        let mut node = self.root()?;
        let mut ctx = Ctx::root();
        let mut is_root = true;
        for comp in path.split('/').filter(|c| !c.is_empty()) {
            let cctx = ctx.child(&node, is_root)?;
            node = node.children().find(|c| name_matches(c.name, comp))?;
            ctx = cctx;
            is_root = false;
        }
        Some((node, ctx))
    }

    /// An alias (`serial0`) or absolute path to a node.
    fn find_alias_or_path(&self, spec: &str) -> Option<(FdtNode<'_, 'a>, Ctx<'a>)> {
        if spec.starts_with('/') {
            return self.find_path(spec);
        }
        let (aliases, _) = self.find_path("/aliases")?;
        let target = prop_str(&aliases, spec)?;
        if target.starts_with('/') { self.find_path(target) } else { None }
    }

    /// Resolve a console specification: an alias or path, optionally followed by
    /// `:options` (`serial0:115200n8`, `/pl011@9000000`).
    pub fn resolve_uart(&self, spec: &'a str) -> Result<Uart<'a>, DtError> {
        let (path, options) = spec.split_once(':').unwrap_or((spec, ""));
        let (node, ctx) = self.find_alias_or_path(path).ok_or(DtError::NotFound)?;
        let reg = ctx.reg(&node, 0).ok_or(DtError::NoReg)?;
        Ok(Uart {
            name: node.name,
            base: reg.base,
            size: reg.size,
            compatible: first_compatible(&node),
            pl011: is_compatible(&node, &["arm,pl011"]),
            options,
        })
    }

    /// The first enabled `arm,pl011` node, for when `stdout-path` is missing or unusable.
    pub fn first_pl011(&self) -> Option<Uart<'a>> {
        let mut found = None;
        self.walk(&mut |node, ctx, _| {
            if found.is_none()
                && is_compatible(&node, &["arm,pl011"])
                && is_enabled(&node)
                && let Some(reg) = ctx.reg(&node, 0)
            {
                found = Some(Uart {
                    name: node.name,
                    base: reg.base,
                    size: reg.size,
                    compatible: first_compatible(&node),
                    pl011: true,
                    options: "",
                });
            }
            found.is_none()
        });
        found
    }

    /// Parse everything the hypervisor needs. Never fails (the header was checked by
    /// [`DeviceTree::new`]): what is missing is absent from the result (no RAM banks, no
    /// PSCI, ...) and odd nodes are listed in [`Platform::warnings`], so the caller can still
    /// find a console and report the problem.
    pub fn parse(&self) -> Platform<'a> {
        let mut p = Platform::default();
        if let Some(root) = self.root() {
            p.model = prop_str(&root, "model");
            p.compatible = strings(&root, "compatible").next();
        }
        for r in self.fdt.memory_reservations() {
            if r.size() != 0 && p.memreserve.push(Region::new(r.address() as u64, r.size() as u64)).is_err() {
                p.warn("too many /memreserve/ entries, some ignored", "");
                break;
            }
        }
        self.parse_nodes(&mut p);
        p.memory.as_mut_slice().sort_unstable();
        self.parse_chosen(&mut p);
        Self::initrd_module(&mut p);
        p
    }

    fn parse_nodes(&self, p: &mut Platform<'a>) {
        self.walk(&mut |node, ctx, level| {
            if level == 0 {
                return true;
            }
            if let Some(end) = dma_window_end(&node, ctx) {
                p.dma_limit = Some(p.dma_limit.map_or(end, |l| l.min(end)));
            }
            let name = node.name;
            let base = name.split('@').next().unwrap_or("");
            if level == 1 && prop_str(&node, "device_type") == Some("memory") {
                if is_enabled(&node) {
                    for r in ctx.regs(&node) {
                        match r {
                            Some(r) if r.size != 0 => {
                                if p.memory.push(r).is_err() {
                                    p.warn("too many RAM banks, some ignored", name);
                                }
                            }
                            Some(_) => {}
                            None => p.warn("memory bank with an unusable reg ignored", name),
                        }
                    }
                }
                return false;
            }
            if level == 1 && base == "reserved-memory" {
                Self::parse_reserved_memory(node, ctx, p);
                return false;
            }
            if level == 1 && base == "cpus" {
                Self::parse_cpus(node, ctx, p);
                return false;
            }
            if level == 1 && (base == "chosen" || base == "aliases") {
                return false;
            }
            if is_compatible(&node, &["arm,gic-v3"]) {
                Self::parse_gic(node, ctx, p, GicVersion::V3);
                return false;
            }
            if is_compatible(
                &node,
                &[
                    "arm,gic-400",
                    "arm,cortex-a15-gic",
                    "arm,cortex-a9-gic",
                    "arm,cortex-a7-gic",
                    "arm,arm11mp-gic",
                    "arm,gic-v2",
                ],
            ) {
                Self::parse_gic(node, ctx, p, GicVersion::V2);
                return false;
            }
            if is_compatible(&node, &["arm,armv8-timer", "arm,armv7-timer"]) && p.timer.is_none() {
                let mut t = Timer { clock_frequency: prop_u32(&node, "clock-frequency"), ..Timer::default() };
                let mut irqs = gic_interrupts(&node);
                t.secure_phys = irqs.next();
                t.phys = irqs.next();
                t.virt = irqs.next();
                t.hyp_phys = irqs.next();
                t.hyp_virt = irqs.next();
                if t.phys.is_none() {
                    p.warn("timer node without usable 3-cell interrupts", name);
                }
                p.timer = Some(t);
                return false;
            }
            if is_compatible(&node, &["arm,psci", "arm,psci-0.2", "arm,psci-1.0"]) && p.psci.is_none() {
                let conduit = match prop_str(&node, "method") {
                    Some("hvc") => Some(Conduit::Hvc),
                    Some("smc") => Some(Conduit::Smc),
                    _ => None,
                };
                match conduit {
                    Some(conduit) => {
                        p.psci = Some(Psci {
                            conduit,
                            v0_2: is_compatible(&node, &["arm,psci-0.2", "arm,psci-1.0"]),
                            cpu_on: prop_u32(&node, "cpu_on"),
                            cpu_off: prop_u32(&node, "cpu_off"),
                        })
                    }
                    None => p.warn("PSCI node without a usable method", name),
                }
                return false;
            }
            true
        });
    }

    fn parse_reserved_memory(node: FdtNode<'_, 'a>, ctx: &Ctx<'a>, p: &mut Platform<'a>) {
        let Some(cctx) = ctx.child(&node, false) else { return };
        for child in node.children() {
            if !is_enabled(&child) {
                continue;
            }
            let no_map = child.property("no-map").is_some();
            let mut any = false;
            for r in cctx.regs(&child).flatten() {
                any = true;
                if r.size != 0
                    && p.reserved_memory.push(ReservedMemory { name: child.name, region: r, no_map }).is_err()
                {
                    p.warn("too many /reserved-memory regions, some ignored", child.name);
                }
            }
            if !any {
                // Dynamically placed regions (`size` + `alloc-ranges`) are for the OS to place.
                p.warn("/reserved-memory region without a static reg ignored", child.name);
            }
        }
    }

    fn parse_cpus(node: FdtNode<'_, 'a>, ctx: &Ctx<'a>, p: &mut Platform<'a>) {
        let Some(cctx) = ctx.child(&node, false) else { return };
        for cpu in node.children() {
            if prop_str(&cpu, "device_type") != Some("cpu") {
                continue;
            }
            let Some(reg) = cpu.property("reg") else {
                p.warn("CPU node without reg ignored", cpu.name);
                continue;
            };
            let Some(mpidr) = read_cells(reg.value, cctx.addr_cells) else {
                p.warn("CPU node with an unusable reg ignored", cpu.name);
                continue;
            };
            let enable_method = match prop_str(&cpu, "enable-method") {
                None => EnableMethod::None,
                Some("psci") => EnableMethod::Psci,
                Some("spin-table") => EnableMethod::SpinTable,
                Some(_) => EnableMethod::Other,
            };
            let release_addr = cpu.property("cpu-release-addr").and_then(|v| match v.value.len() {
                8 => read_cells(v.value, 2),
                4 => read_cells(v.value, 1),
                _ => None,
            });
            let c = Cpu { name: cpu.name, mpidr, enable_method, release_addr, enabled: is_enabled(&cpu) };
            if p.cpus.push(c).is_err() {
                p.warn("too many CPUs, some ignored", cpu.name);
                break;
            }
        }
    }

    fn parse_gic(node: FdtNode<'_, 'a>, ctx: &Ctx<'a>, p: &mut Platform<'a>, version: GicVersion) {
        if p.gic.is_some() {
            p.warn("second interrupt controller ignored", node.name);
            return;
        }
        let mut regs: FixedVec<Region, { MAX_REDIST + 4 }> = FixedVec::new();
        for r in ctx.regs(&node) {
            match r {
                Some(r) => {
                    let _ = regs.push(r);
                }
                None => {
                    p.warn("GIC with an unusable reg", node.name);
                    return;
                }
            }
        }
        let Some(&dist) = regs.first() else {
            p.warn("GIC without reg", node.name);
            return;
        };
        let mut g = Gic {
            version,
            compatible: first_compatible(&node),
            dist,
            maintenance_irq: gic_interrupts(&node).next(),
            ..Gic::default()
        };
        let rest: &[Region] = &regs[1..];
        let rest = match version {
            GicVersion::V3 => {
                let n = prop_u32(&node, "#redistributor-regions").unwrap_or(1) as usize;
                let n = n.min(rest.len());
                for r in &rest[..n] {
                    if g.redist.push(*r).is_err() {
                        p.warn("too many GIC redistributor regions, some ignored", node.name);
                    }
                }
                &rest[n..]
            }
            GicVersion::V2 => rest,
        };
        g.cpu_if = rest.first().copied();
        g.hyp_if = rest.get(1).copied();
        g.vcpu_if = rest.get(2).copied();
        if let Some(cctx) = ctx.child(&node, false) {
            for child in node.children() {
                if is_compatible(&child, &["arm,gic-v3-its"])
                    && is_enabled(&child)
                    && let Some(r) = cctx.reg(&child, 0)
                {
                    let _ = g.its.push(r);
                }
            }
        }
        p.gic = Some(g);
    }

    fn parse_chosen(&self, p: &mut Platform<'a>) {
        let Some((chosen, ctx)) = self.find_path("/chosen") else { return };
        p.chosen = Chosen {
            bootargs: prop_str(&chosen, "xen,xen-bootargs").or_else(|| prop_str(&chosen, "bootargs")),
            stdout_path: prop_str(&chosen, "stdout-path").or_else(|| prop_str(&chosen, "linux,stdout-path")),
            dom0_bootargs: prop_str(&chosen, "xen,dom0-bootargs"),
            initrd: initrd_region(&chosen),
        };
        if chosen.property("linux,initrd-start").is_some() && p.chosen.initrd.is_none() {
            p.warn("unusable linux,initrd-start/end ignored", chosen.name);
        }
        if let Some(spec) = p.chosen.stdout_path {
            match self.resolve_uart(spec) {
                Ok(u) => p.stdout = Some(u),
                Err(_) => p.warn("stdout-path names no usable node", spec),
            }
        }
        let Some(cctx) = ctx.child(&chosen, false) else { return };
        let mut unknown_seen = 0;
        for child in chosen.children() {
            let explicit = if is_compatible(&child, &["multiboot,kernel", "xen,linux-zimage"]) {
                ModuleKind::Kernel
            } else if is_compatible(&child, &["multiboot,ramdisk", "xen,linux-initrd"]) {
                ModuleKind::Ramdisk
            } else if is_compatible(&child, &["multiboot,device-tree"]) {
                ModuleKind::DeviceTree
            } else if is_compatible(&child, &["xen,xsm-policy"]) {
                ModuleKind::XsmPolicy
            } else if is_compatible(&child, &["multiboot,module"]) {
                ModuleKind::Unknown
            } else {
                continue;
            };
            // Xen's rule for bare `multiboot,module`s: the first is the kernel, the second
            // the ramdisk.
            let kind = if explicit == ModuleKind::Unknown {
                unknown_seen += 1;
                match unknown_seen {
                    1 => ModuleKind::Kernel,
                    2 => ModuleKind::Ramdisk,
                    _ => ModuleKind::Unknown,
                }
            } else {
                explicit
            };
            let Some(region) = cctx.reg(&child, 0) else {
                p.warn("boot module without a usable reg ignored", child.name);
                continue;
            };
            let m = BootModule { kind, name: child.name, region, bootargs: prop_str(&child, "bootargs") };
            if p.modules.push(m).is_err() {
                p.warn("too many boot modules, some ignored", child.name);
                break;
            }
        }
    }

    /// The `/chosen` initrd as a boot module: dom0's kernel if no module is one, else its
    /// ramdisk (if no module is one), else a module of unknown use (still kept out of RAM).
    fn initrd_module(p: &mut Platform<'a>) {
        let Some(region) = p.chosen.initrd else { return };
        let kind = if p.module(ModuleKind::Kernel).is_none() {
            ModuleKind::Kernel
        } else if p.module(ModuleKind::Ramdisk).is_none() {
            ModuleKind::Ramdisk
        } else {
            ModuleKind::Unknown
        };
        if p.modules.push(BootModule { kind, name: INITRD_MODULE, region, bootargs: None }).is_err() {
            p.warn("too many boot modules, some ignored", INITRD_MODULE);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
