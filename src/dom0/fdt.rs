//! The device tree the hypervisor writes for dom0, like Xen 4.17's:
//!
//! * with a [`HostTree`] (the boot device tree: how the hypervisor boots on real machines),
//!   the host's tree copied node by node, properties and phandles verbatim, except `/memory`
//!   (dom0's banks instead), `/chosen` (dom0's command line and initrd), `/cpus`, `/psci`
//!   (method `hvc`), the architected timer and `/hypervisor` (written for dom0), the
//!   hypervisor's console UART (`status = "disabled"`) and the interrupt controller (written
//!   in place with the host's phandle, so every `interrupt-parent` still resolves, and only
//!   the regions dom0 uses: GICD + GICC on GICv2, GICD + redistributors on GICv3);
//! * without one, a minimal machine: `/memory`, `/chosen`, `/cpus`, `/psci`, the interrupt
//!   controller, the timer and `/hypervisor`.
//!
//! `/hypervisor` carries the grant-table region, the extended regions and the event-channel
//! PPI. Addresses are written with the root's `#address-cells`/`#size-cells`.

use crate::dt::{DeviceTree, Node, Visit};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use vm_fdt::{FdtWriter, FdtWriterNode};

/// The interrupt controller node to give dom0 (the host's, whose MMIO the hypervisor
/// emulates or keeps). Only used for the minimal tree.
#[derive(Clone, Debug)]
pub struct GicNode {
    pub compatible: Vec<String>,
    pub reg: Vec<(u64, u64)>,
    /// GICv3 `#redistributor-regions`, if more than one.
    pub redistributor_regions: Option<u32>,
}

/// The host's device tree, to copy for dom0.
#[derive(Clone, Copy)]
pub struct HostTree<'a> {
    pub dt: DeviceTree<'a>,
    /// The interrupt controller's distributor (CPU physical address): identifies its node.
    pub gic_dist: u64,
    /// How many `reg` entries of the interrupt controller dom0 keeps (GICv2: GICD and GICC;
    /// GICv3: GICD and the redistributor regions).
    pub gic_regs: usize,
    /// The console UART the hypervisor keeps (its first `reg`, CPU physical): disabled.
    pub console: Option<u64>,
    /// The host timer's `clock-frequency`, passed on (for firmware that leaves CNTFRQ unset).
    pub timer_clock_frequency: Option<u32>,
    /// Nodes left out (their name): those whose interrupts are PPIs, which cannot be routed
    /// to a guest ([`super::device_irqs`]), as Xen leaves them out.
    pub drop: &'a [String],
}

impl<'a> HostTree<'a> {
    /// The host tree `dt`, which `plat` describes, whose UART at `console` the hypervisor
    /// keeps. `None` without an interrupt controller.
    pub fn new(dt: DeviceTree<'a>, plat: &crate::dt::Platform, console: Option<u64>) -> Option<Self> {
        let g = plat.gic.as_ref()?;
        let gic_regs = match g.version {
            crate::dt::GicVersion::V2 => 2,
            crate::dt::GicVersion::V3 => 1 + g.redist.len().max(1),
        };
        let timer_clock_frequency = plat.timer.and_then(|t| t.clock_frequency);
        Some(HostTree { dt, gic_dist: g.dist.base, gic_regs, console, timer_clock_frequency, drop: &[] })
    }
}

/// Everything dom0's device tree says (also used for the device tree of other domains).
#[derive(Clone)]
pub struct Dom0Tree<'a> {
    /// Minimal tree only (a copied tree keeps the host's).
    pub model: &'a str,
    pub compatible: &'a [&'a str],
    /// Dom0 RAM banks (guest physical, == machine physical for a direct-mapped dom0).
    pub memory: &'a [(u64, u64)],
    pub bootargs: &'a str,
    /// `[start, end)` of an initrd placed in dom0 RAM.
    pub initrd: Option<(u64, u64)>,
    pub vcpus: u32,
    /// Minimal tree only.
    pub gic: GicNode,
    /// PPIs (0-15 numbering) of the timer: secure phys, non-secure phys, virtual, hypervisor.
    pub timer_ppis: [u32; 4],
    /// The event-channel interrupt (an absolute PPI number, 16..31).
    pub evtchn_ppi: u32,
    /// The grant-table region: `reg[0]` of `/hypervisor`.
    pub grant_region: (u64, u64),
    /// Extended regions: `reg[1..]`.
    pub extended_regions: &'a [(u64, u64)],
    /// `/reserved-memory` children to keep (name, start, size). Minimal tree only (a copied
    /// tree keeps the host's `/reserved-memory`).
    pub reserved: &'a [(String, u64, u64)],
    /// The Xen version we claim compatibility with (for `xen,xen-<version>`).
    pub xen_version: &'a str,
}

/// Why dom0's device tree could not be written.
#[derive(Debug)]
pub enum TreeError {
    Fdt(vm_fdt::Error),
    /// A value the tree's cell sizes cannot express (e.g. an address above 4 GiB with one
    /// address cell).
    Cells(&'static str),
    /// The host tree has no node for the interrupt controller.
    NoGic,
}

impl From<vm_fdt::Error> for TreeError {
    fn from(e: vm_fdt::Error) -> Self {
        TreeError::Fdt(e)
    }
}

impl core::fmt::Display for TreeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TreeError::Fdt(e) => write!(f, "{e:?}"),
            TreeError::Cells(what) => write!(f, "{what} does not fit the root's #address-cells/#size-cells"),
            TreeError::NoGic => write!(f, "no interrupt controller node in the host device tree"),
        }
    }
}

/// The GIC phandle of the minimal tree.
pub const GIC_PHANDLE: u32 = 1;
/// GIC interrupt specifier: PPI, level-low (active-low level, all CPUs) like Xen writes it.
const PPI: u32 = 1;
const LEVEL_LOW_ALL_CPUS: u32 = (0xf << 8) | 8;

/// MPIDR affinity of vCPU `id` (Xen's `vcpuid_to_vaffinity`: 16 vCPUs per Aff0 cluster).
pub fn vcpu_mpidr(id: u32) -> u64 {
    ((id as u64 >> 4) << 8) | (id as u64 & 0xf)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// `reg` bytes for `ranges` with `ac` address and `sc` size cells; with one size cell, a
/// range of 4 GiB or more is written as several entries.
pub fn reg_bytes(ac: usize, sc: usize, ranges: &[(u64, u64)], what: &'static str) -> Result<Vec<u8>, TreeError> {
    let put = |out: &mut Vec<u8>, v: u64, cells: usize| -> Result<(), TreeError> {
        match cells {
            1 if v <= u32::MAX as u64 => out.extend_from_slice(&(v as u32).to_be_bytes()),
            2 => out.extend_from_slice(&v.to_be_bytes()),
            _ => return Err(TreeError::Cells(what)),
        }
        Ok(())
    };
    let chunk = if sc == 1 { 1u64 << 31 } else { u64::MAX };
    let mut out = Vec::new();
    for &(mut base, mut size) in ranges {
        while size > 0 {
            let n = size.min(chunk);
            put(&mut out, base, ac)?;
            put(&mut out, n, sc)?;
            base += n;
            size -= n;
        }
    }
    Ok(out)
}

/// The first `n` entries of a `reg` property whose entries are `ac + sc` cells.
fn reg_prefix(reg: &[u8], (ac, sc): (usize, usize), n: usize) -> &[u8] {
    &reg[..reg.len().min(4 * (ac + sc) * n)]
}

fn be32(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
}

/// Copy every property of `n` but those named in `except`.
fn copy_props(f: &mut FdtWriter, n: &Node, except: &[&str]) -> Result<(), TreeError> {
    for (name, value) in n.properties() {
        if !except.contains(&name) {
            f.property(name, value)?;
        }
    }
    Ok(())
}

impl Dom0Tree<'_> {
    /// The minimal tree.
    pub fn build(&self) -> Result<Vec<u8>, TreeError> {
        let mut f = FdtWriter::new()?;
        self.minimal(&mut f)?;
        Ok(f.finish()?)
    }

    /// The host's tree with dom0's nodes (`model`, `compatible`, `gic` and `reserved` are
    /// then the host's).
    pub fn build_from(&self, host: &HostTree) -> Result<Vec<u8>, TreeError> {
        let mut f = FdtWriter::new()?;
        self.copy_host(&mut f, host)?;
        Ok(f.finish()?)
    }

    fn minimal(&self, f: &mut FdtWriter) -> Result<(), TreeError> {
        let root = f.begin_node("")?;
        f.property_u32("#address-cells", 2)?;
        f.property_u32("#size-cells", 2)?;
        f.property_string("model", self.model)?;
        f.property_string_list("compatible", strs(self.compatible))?;
        f.property_u32("interrupt-parent", GIC_PHANDLE)?;
        self.chosen(f)?;
        self.memory(f, (2, 2))?;
        if !self.reserved.is_empty() {
            let rm = f.begin_node("reserved-memory")?;
            f.property_u32("#address-cells", 2)?;
            f.property_u32("#size-cells", 2)?;
            f.property_null("ranges")?;
            for (name, s, z) in self.reserved {
                let n = f.begin_node(&format!("{name}@{s:x}"))?;
                f.property_array_u64("reg", &[*s, *z])?;
                f.property_null("no-map")?;
                f.end_node(n)?;
            }
            f.end_node(rm)?;
        }
        self.cpus_and_psci(f)?;

        let gic_base = self.gic.reg.first().map_or(0, |r| r.0);
        let gic = f.begin_node(&format!("interrupt-controller@{gic_base:x}"))?;
        f.property_string_list("compatible", self.gic.compatible.clone())?;
        f.property_u32("#interrupt-cells", 3)?;
        f.property_null("interrupt-controller")?;
        f.property_u32("#address-cells", 2)?;
        f.property_u32("#size-cells", 2)?;
        f.property("reg", &reg_bytes(2, 2, &self.gic.reg, "the GIC's reg")?)?;
        if let Some(n) = self.gic.redistributor_regions {
            f.property_u32("#redistributor-regions", n)?;
        }
        f.property_u32("phandle", GIC_PHANDLE)?;
        f.end_node(gic)?;

        self.timer_and_hypervisor(f, (2, 2), GIC_PHANDLE, None)?;
        f.end_node(root)?;
        Ok(())
    }

    /// Xen's way: the host's tree with dom0's nodes (see the module documentation).
    fn copy_host(&self, f: &mut FdtWriter, h: &HostTree) -> Result<(), TreeError> {
        // A phandle for the GIC if the host's has none: one no node uses.
        let mut max_phandle = 0;
        h.dt.visit(&mut |v| {
            if let Visit::Enter(n) = v {
                max_phandle = max_phandle.max(n.phandle().unwrap_or(0));
            }
            true
        });
        let mut stack: Vec<FdtWriterNode> = Vec::new();
        let mut root_cells = (2, 1);
        let mut gic_phandle = None;
        let mut err: Option<TreeError> = None;
        h.dt.visit(&mut |v| {
            if err.is_some() {
                return false;
            }
            let r = match v {
                Visit::Enter(n) => self.enter(f, h, &n, &mut stack, &mut root_cells, &mut gic_phandle, max_phandle),
                Visit::Leave(n) => (|| {
                    if n.depth == 0 {
                        let ph = gic_phandle.ok_or(TreeError::NoGic)?;
                        self.chosen(f)?;
                        self.memory(f, root_cells)?;
                        self.cpus_and_psci(f)?;
                        self.timer_and_hypervisor(f, root_cells, ph, h.timer_clock_frequency)?;
                    }
                    let node = stack.pop().expect("a Leave for every node entered");
                    f.end_node(node)?;
                    Ok(true)
                })(),
            };
            r.unwrap_or_else(|e| {
                err = Some(e);
                false
            })
        });
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Entering host node `n` while copying: write it (or not) and say whether to go on with
    /// its children (and its end).
    #[allow(clippy::too_many_arguments)]
    fn enter(
        &self,
        f: &mut FdtWriter,
        h: &HostTree,
        n: &Node,
        stack: &mut Vec<FdtWriterNode>,
        root_cells: &mut (usize, usize),
        gic_phandle: &mut Option<u32>,
        max_phandle: u32,
    ) -> Result<bool, TreeError> {
        if n.depth == 0 {
            let cell = |name| n.property(name).and_then(be32).map(|c| c as usize);
            *root_cells = (cell("#address-cells").unwrap_or(2), cell("#size-cells").unwrap_or(1));
            stack.push(f.begin_node("")?);
            copy_props(f, n, &[])?;
            return Ok(true);
        }
        let replaced = n.depth == 1
            && (n.device_type() == Some("memory") || ["chosen", "cpus", "hypervisor"].contains(&n.base_name()));
        // Xen's hardware-domain skip list, and the nodes using PPIs.
        if replaced
            || n.is_compatible(&[
                "arm,psci",
                "arm,psci-0.2",
                "arm,psci-1.0",
                "arm,armv8-timer",
                "arm,armv7-timer",
                "arm,armv7-timer-mem",
                "arm,cortex-a7-pmu",
                "arm,cortex-a15-pmu",
                "arm,cortex-a53-edac",
                "arm,armv8-pmuv3",
            ])
            || h.drop.iter().any(|d| d == n.name())
        {
            return Ok(false);
        }
        let first = n.regs().next().flatten().map(|r| r.base);
        if gic_phandle.is_none() && n.property("interrupt-controller").is_some() && first == Some(h.gic_dist) {
            // The GIC, in place: the host's phandle and compatible, only dom0's regions, no
            // maintenance interrupt, no ITS/v2m children.
            let node = f.begin_node(n.name())?;
            copy_props(f, n, &["reg", "interrupts"])?;
            if let Some(reg) = n.property("reg") {
                f.property("reg", reg_prefix(reg, n.reg_cells(), h.gic_regs))?;
            }
            let ph = match n.phandle() {
                Some(p) => p,
                None => {
                    f.property_u32("phandle", max_phandle + 1)?;
                    max_phandle + 1
                }
            };
            *gic_phandle = Some(ph);
            f.end_node(node)?;
            return Ok(false);
        }
        stack.push(f.begin_node(n.name())?);
        if h.console.is_some() && first == h.console {
            copy_props(f, n, &["status"])?;
            f.property_string("status", "disabled")?;
        } else {
            copy_props(f, n, &[])?;
        }
        Ok(true)
    }

    fn chosen(&self, f: &mut FdtWriter) -> Result<(), TreeError> {
        let chosen = f.begin_node("chosen")?;
        f.property_string("bootargs", self.bootargs)?;
        if let Some((s, e)) = self.initrd {
            f.property_u64("linux,initrd-start", s)?;
            f.property_u64("linux,initrd-end", e)?;
        }
        f.end_node(chosen)?;
        Ok(())
    }

    fn memory(&self, f: &mut FdtWriter, (ac, sc): (usize, usize)) -> Result<(), TreeError> {
        let base = self.memory.first().map_or(0, |m| m.0);
        let mem = f.begin_node(&format!("memory@{base:x}"))?;
        f.property_string("device_type", "memory")?;
        f.property("reg", &reg_bytes(ac, sc, self.memory, "dom0's RAM")?)?;
        f.end_node(mem)?;
        Ok(())
    }

    fn cpus_and_psci(&self, f: &mut FdtWriter) -> Result<(), TreeError> {
        let cpus = f.begin_node("cpus")?;
        f.property_u32("#address-cells", 2)?;
        f.property_u32("#size-cells", 0)?;
        for id in 0..self.vcpus {
            let mpidr = vcpu_mpidr(id);
            let c = f.begin_node(&format!("cpu@{mpidr:x}"))?;
            f.property_string("device_type", "cpu")?;
            f.property_string_list("compatible", strs(&["arm,armv8"]))?;
            f.property_array_u32("reg", &[(mpidr >> 32) as u32, mpidr as u32])?;
            f.property_string("enable-method", "psci")?;
            f.end_node(c)?;
        }
        f.end_node(cpus)?;

        let psci = f.begin_node("psci")?;
        f.property_string_list("compatible", strs(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]))?;
        f.property_string("method", "hvc")?;
        f.property_u32("cpu_off", xen_abi::psci::PSCI_CPU_OFF)?;
        f.property_u32("cpu_on", xen_abi::psci::PSCI_CPU_ON_64)?;
        f.end_node(psci)?;
        Ok(())
    }

    fn timer_and_hypervisor(
        &self,
        f: &mut FdtWriter,
        (ac, sc): (usize, usize),
        gic: u32,
        clock_frequency: Option<u32>,
    ) -> Result<(), TreeError> {
        // Xen's: the secure physical, non-secure physical and virtual PPIs (no hypervisor
        // timer), level-low, the clock frequency if the host gives one, nothing else.
        let timer = f.begin_node("timer")?;
        f.property_string_list("compatible", strs(&["arm,armv8-timer"]))?;
        let ints: Vec<u32> = self.timer_ppis[..3].iter().flat_map(|&p| [PPI, p, LEVEL_LOW_ALL_CPUS]).collect();
        f.property_array_u32("interrupts", &ints)?;
        f.property_u32("interrupt-parent", gic)?;
        if let Some(hz) = clock_frequency {
            f.property_u32("clock-frequency", hz)?;
        }
        f.end_node(timer)?;

        let hyp = f.begin_node("hypervisor")?;
        f.property_string_list("compatible", vec![format!("xen,xen-{}", self.xen_version), "xen,xen".to_string()])?;
        let mut reg = vec![self.grant_region];
        reg.extend_from_slice(self.extended_regions);
        f.property("reg", &reg_bytes(ac, sc, &reg, "the /hypervisor regions")?)?;
        f.property_array_u32("interrupts", &[PPI, self.evtchn_ppi - 16, LEVEL_LOW_ALL_CPUS])?;
        f.property_u32("interrupt-parent", gic)?;
        f.end_node(hyp)?;
        Ok(())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reg_cells_follow_the_tree() {
        let r = reg_bytes(2, 1, &[(0x1_0000_0000, 0x1_4000_0000)], "x").unwrap();
        let cells: Vec<u32> = r.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
        assert_eq!(cells, [1, 0, 0x8000_0000, 1, 0x8000_0000, 0x8000_0000, 2, 0, 0x4000_0000], "split in 2 GiB");
        assert_eq!(reg_bytes(1, 1, &[(0xfe00_0000, 0x10)], "x").unwrap(), [0xfe, 0, 0, 0, 0, 0, 0, 0x10]);
        assert!(matches!(reg_bytes(1, 1, &[(0x1_0000_0000, 1)], "x"), Err(TreeError::Cells("x"))));
        assert_eq!(reg_bytes(2, 2, &[(1, 2)], "x").unwrap().len(), 16);
    }

    #[test]
    fn dom0_tree_round_trips_through_a_parser() {
        let memory = [(0x6000_0000, 0x2000_0000), (0x1_0000_0000, 0x1000_0000)];
        let ext = [(0x4040_0000, 0x1fc0_0000), (0x8000_0000, 0x4000_0000)];
        let reserved = [("fw".to_string(), 0x4800_0000u64, 0x1000u64)];
        let t = Dom0Tree {
            model: "granite dom0",
            compatible: &["linux,dummy-virt"],
            memory: &memory,
            bootargs: "console=hvc0 earlycon=xen",
            initrd: Some((0x6800_0000, 0x6810_0000)),
            vcpus: 18,
            gic: GicNode {
                compatible: vec!["arm,gic-v3".into()],
                reg: vec![(0x800_0000, 0x1_0000), (0x80a_0000, 0xf6_0000)],
                redistributor_regions: None,
            },
            timer_ppis: [13, 14, 11, 10],
            evtchn_ppi: 16,
            grant_region: (0x4020_0000, 0x4_0000),
            extended_regions: &ext,
            reserved: &reserved,
            xen_version: "4.17",
        };
        let blob = t.build().unwrap();
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(fdt.chosen().bootargs(), Some("console=hvc0 earlycon=xen"));
        let banks: Vec<(usize, usize)> =
            fdt.memory().regions().map(|r| (r.starting_address as usize, r.size.unwrap())).collect();
        assert_eq!(banks, vec![(0x6000_0000, 0x2000_0000), (0x1_0000_0000, 0x1000_0000)]);
        assert_eq!(fdt.cpus().count(), 18);
        let ids: Vec<usize> = fdt.cpus().map(|c| c.ids().first()).collect();
        assert_eq!(ids[17], 0x101, "vCPU 17 is Aff1=1 Aff0=1");
        let hyp = fdt.find_node("/hypervisor").unwrap();
        let compat: Vec<&str> = hyp.compatible().unwrap().all().collect();
        assert_eq!(compat, vec!["xen,xen-4.17", "xen,xen"]);
        let reg: Vec<(usize, usize)> =
            hyp.reg().unwrap().map(|r| (r.starting_address as usize, r.size.unwrap())).collect();
        assert_eq!(reg, vec![(0x4020_0000, 0x4_0000), (0x4040_0000, 0x1fc0_0000), (0x8000_0000, 0x4000_0000)]);
        let ints = hyp.property("interrupts").unwrap().value;
        assert_eq!(ints, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xf, 8], "PPI 16 => <1 0 0xf08>");
        assert_eq!(fdt.find_node("/psci").unwrap().property("method").unwrap().as_str(), Some("hvc"));
        let chosen = fdt.find_node("/chosen").unwrap();
        assert_eq!(chosen.property("linux,initrd-start").unwrap().as_usize(), Some(0x6800_0000));
        assert!(fdt.find_node("/reserved-memory/fw@48000000").is_some());
        let gic = fdt.find_compatible(&["arm,gic-v3"]).unwrap();
        assert_eq!(gic.property("phandle").unwrap().as_usize(), Some(GIC_PHANDLE as usize));
    }
}
