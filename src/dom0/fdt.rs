//! The device tree the hypervisor writes for dom0 (what Xen 4.17 writes, reduced to what a
//! dom0 on this hypervisor sees): `/memory`, `/chosen`, `/cpus`, `/psci` (method `hvc`), the
//! interrupt controller, the architected timer, and the `/hypervisor` node with the
//! grant-table region, the extended regions and the event-channel PPI.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use vm_fdt::FdtWriter;

/// The interrupt controller node to give dom0 (the host's, whose MMIO the hypervisor
/// emulates or keeps).
#[derive(Clone, Debug)]
pub struct GicNode {
    pub compatible: Vec<String>,
    pub reg: Vec<(u64, u64)>,
    /// GICv3 `#redistributor-regions`, if more than one.
    pub redistributor_regions: Option<u32>,
}

/// Everything dom0's device tree says.
#[derive(Clone, Debug)]
pub struct Dom0Tree<'a> {
    pub model: &'a str,
    pub compatible: &'a [&'a str],
    /// Dom0 RAM banks (guest physical, == machine physical for a direct-mapped dom0).
    pub memory: &'a [(u64, u64)],
    pub bootargs: &'a str,
    /// `[start, end)` of an initrd placed in dom0 RAM.
    pub initrd: Option<(u64, u64)>,
    pub vcpus: u32,
    pub gic: GicNode,
    /// PPIs (0-15 numbering) of the timer: secure phys, non-secure phys, virtual, hypervisor.
    pub timer_ppis: [u32; 4],
    /// The event-channel interrupt (an absolute PPI number, 16..31).
    pub evtchn_ppi: u32,
    /// The grant-table region: `reg[0]` of `/hypervisor`.
    pub grant_region: (u64, u64),
    /// Extended regions: `reg[1..]`.
    pub extended_regions: &'a [(u64, u64)],
    /// `/reserved-memory` children to keep (name, start, size).
    pub reserved: &'a [(String, u64, u64)],
    /// The Xen version we claim compatibility with (for `xen,xen-<version>`).
    pub xen_version: &'a str,
}

pub const GIC_PHANDLE: u32 = 1;
/// GIC interrupt specifier: PPI, level-low (active-low level, all CPUs) like Xen writes it.
const PPI: u32 = 1;
const LEVEL_LOW_ALL_CPUS: u32 = (0xf << 8) | 8;

/// MPIDR affinity of vCPU `id` (Xen's `vcpuid_to_vaffinity`: 16 vCPUs per Aff0 cluster).
pub fn vcpu_mpidr(id: u32) -> u64 {
    ((id as u64 >> 4) << 8) | (id as u64 & 0xf)
}

fn cells(ranges: &[(u64, u64)]) -> Vec<u64> {
    ranges.iter().flat_map(|&(a, s)| [a, s]).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Dom0Tree<'_> {
    pub fn build(&self) -> Result<Vec<u8>, vm_fdt::Error> {
        let mut f = FdtWriter::new()?;
        let root = f.begin_node("")?;
        f.property_u32("#address-cells", 2)?;
        f.property_u32("#size-cells", 2)?;
        f.property_string("model", self.model)?;
        f.property_string_list("compatible", strs(self.compatible))?;
        f.property_u32("interrupt-parent", GIC_PHANDLE)?;

        let chosen = f.begin_node("chosen")?;
        f.property_string("bootargs", self.bootargs)?;
        if let Some((s, e)) = self.initrd {
            f.property_u64("linux,initrd-start", s)?;
            f.property_u64("linux,initrd-end", e)?;
        }
        f.end_node(chosen)?;

        let base = self.memory.first().map_or(0, |m| m.0);
        let mem = f.begin_node(&format!("memory@{base:x}"))?;
        f.property_string("device_type", "memory")?;
        f.property_array_u64("reg", &cells(self.memory))?;
        f.end_node(mem)?;

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

        let gic_base = self.gic.reg.first().map_or(0, |r| r.0);
        let gic = f.begin_node(&format!("interrupt-controller@{gic_base:x}"))?;
        f.property_string_list("compatible", self.gic.compatible.clone())?;
        f.property_u32("#interrupt-cells", 3)?;
        f.property_null("interrupt-controller")?;
        f.property_u32("#address-cells", 2)?;
        f.property_u32("#size-cells", 2)?;
        f.property_array_u64("reg", &cells(&self.gic.reg))?;
        if let Some(n) = self.gic.redistributor_regions {
            f.property_u32("#redistributor-regions", n)?;
        }
        f.property_u32("phandle", GIC_PHANDLE)?;
        f.end_node(gic)?;

        let timer = f.begin_node("timer")?;
        f.property_string_list("compatible", strs(&["arm,armv8-timer"]))?;
        let ints: Vec<u32> = self.timer_ppis.iter().flat_map(|&p| [PPI, p, LEVEL_LOW_ALL_CPUS]).collect();
        f.property_array_u32("interrupts", &ints)?;
        f.property_null("always-on")?;
        f.end_node(timer)?;

        let hyp = f.begin_node("hypervisor")?;
        f.property_string_list("compatible", vec![format!("xen,xen-{}", self.xen_version), "xen,xen".to_string()])?;
        let mut reg = vec![self.grant_region];
        reg.extend_from_slice(self.extended_regions);
        f.property_array_u64("reg", &cells(&reg))?;
        f.property_array_u32("interrupts", &[PPI, self.evtchn_ppi - 16, LEVEL_LOW_ALL_CPUS])?;
        f.property_u32("interrupt-parent", GIC_PHANDLE)?;
        f.end_node(hyp)?;

        f.end_node(root)?;
        f.finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

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
