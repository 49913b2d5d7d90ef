//! Device-tree tests: DTBs QEMU generates at test time (the machine the image boots on), and
//! small DTBs built here with `vm-fdt` for the shapes QEMU does not produce (bus address
//! translation, spin tables, reserved memory, GICv2 under a bus, positional modules).

use super::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering as O};
use std::vec::Vec;
use std::{format, fs, string::String};
use vm_fdt::{FdtReserveEntry, FdtWriter};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn scratch() -> PathBuf {
    let d = std::env::temp_dir().join(format!("granite-dt-{}-{}", std::process::id(), SEQ.fetch_add(1, O::Relaxed)));
    fs::create_dir_all(&d).unwrap();
    d
}

/// `-M <machine>,dumpdtb=...` with a 6-byte "kernel" and the given extra arguments. `None`
/// (the test is skipped, loudly) only if QEMU is not installed.
fn qemu_dtb(machine: &str, extra: &[String]) -> Option<Vec<u8>> {
    let mut a = args(&["-cpu", "cortex-a57", "-m", "2G"]);
    a.extend_from_slice(extra);
    qemu_dtb_for(machine, &a)
}

fn qemu_dtb_for(machine: &str, extra: &[String]) -> Option<Vec<u8>> {
    let dir = scratch();
    let kernel = dir.join("kernel");
    fs::write(&kernel, b"hello\n").unwrap();
    let dtb = dir.join("virt.dtb");
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into());
    let mut cmd = Command::new(&qemu);
    cmd.args(["-M", &format!("{machine},dumpdtb={}", dtb.display())])
        .args(["-display", "none", "-kernel"])
        .arg(&kernel);
    for e in extra {
        cmd.arg(e.replace("KERNEL", kernel.to_str().unwrap()));
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::eprintln!("SKIPPED: {qemu} not found, QEMU-generated DTB not tested");
            return None;
        }
        Err(e) => panic!("running {qemu}: {e}"),
    };
    assert!(out.status.success(), "qemu failed: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = fs::read(&dtb).unwrap();
    let _ = fs::remove_dir_all(&dir);
    Some(bytes)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| String::from(*s)).collect()
}

#[test]
fn qemu_virt_gicv3_with_guest_loader_modules() {
    let Some(blob) = qemu_dtb(
        "virt,virtualization=on,gic-version=3",
        &args(&[
            "-smp",
            "2",
            "-append",
            "dom0_mem=128M loglvl=all console=dtuart dtuart=/pl011@9000000 guest_loglvl=all",
            "-device",
            "guest-loader,addr=0x49000000,kernel=KERNEL,bootargs=console=hvc0 earlycon=xen",
            "-device",
            "guest-loader,addr=0x4a000000,initrd=KERNEL",
        ]),
    ) else {
        return;
    };
    let dt = DeviceTree::new(&blob).unwrap();
    assert_eq!(DeviceTree::header_size(&blob), Some(dt.total_size()));
    let p = dt.parse();
    assert_eq!(p.model, Some("linux,dummy-virt"));
    // The high PCIe MMIO window (512 GiB + 512 GiB) ends the address map.
    assert_eq!(dt.highest_address(), 1 << 40);
    assert_eq!(&*p.memory, &[Region::new(0x4000_0000, 0x8000_0000)]);
    assert_eq!(p.ram_bytes(), 2 << 30);
    assert!(p.memreserve.is_empty() && p.reserved_memory.is_empty());

    assert_eq!(p.cpus.len(), 2);
    assert_eq!((p.cpus[0].mpidr, p.cpus[1].mpidr), (0, 1));
    assert!(p.cpus.iter().all(|c| c.enable_method == EnableMethod::Psci && c.enabled && c.release_addr.is_none()));

    let g = p.gic.unwrap();
    assert_eq!(g.version, GicVersion::V3);
    assert_eq!(g.compatible, "arm,gic-v3");
    assert_eq!(g.dist, Region::new(0x800_0000, 0x1_0000));
    assert_eq!(&*g.redist, &[Region::new(0x80a_0000, 0xf6_0000)]);
    assert_eq!(&*g.its, &[Region::new(0x808_0000, 0x2_0000)]);
    assert_eq!(g.maintenance_irq, Some(25));

    let t = p.timer.unwrap();
    assert_eq!((t.secure_phys, t.phys, t.virt, t.hyp_phys), (Some(29), Some(30), Some(27), Some(26)));

    let psci = p.psci.unwrap();
    assert_eq!(psci.conduit, Conduit::Smc, "EL2 is the highest EL: PSCI is emulated behind SMC");
    assert!(psci.v0_2);

    assert_eq!(
        p.chosen.bootargs,
        Some("dom0_mem=128M loglvl=all console=dtuart dtuart=/pl011@9000000 guest_loglvl=all")
    );
    assert_eq!(p.chosen.stdout_path, Some("/pl011@9000000"));
    let u = p.stdout.unwrap();
    assert_eq!((u.base, u.size, u.pl011, u.name, u.options), (0x900_0000, 0x1000, true, "pl011@9000000", ""));

    assert_eq!(p.modules.len(), 2);
    let k = p.module(ModuleKind::Kernel).unwrap();
    assert_eq!(k.region, Region::new(0x4900_0000, 6));
    assert_eq!(k.bootargs, Some("console=hvc0 earlycon=xen"));
    let r = p.module(ModuleKind::Ramdisk).unwrap();
    assert_eq!(r.region, Region::new(0x4a00_0000, 6));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    // the command line of that tree
    let o = cmdline::BootOptions::parse(p.chosen.bootargs.unwrap());
    assert_eq!(o.dom0_mem, Some(128 << 20));
    assert_eq!(&*o.unknown, &["guest_loglvl=all"]);
    assert_eq!(dt.resolve_uart(o.dtuart.unwrap()).unwrap(), u);
    assert_eq!(dt.resolve_uart("serial0").unwrap(), u, "QEMU's alias");
    assert_eq!(dt.resolve_uart("serial0:115200").unwrap().options, "115200");
    assert_eq!(dt.resolve_uart("/pl011").unwrap().base, 0x900_0000, "unit address optional");
    assert_eq!(dt.resolve_uart("serial9"), Err(DtError::NotFound));
    assert_eq!(dt.resolve_uart("/psci"), Err(DtError::NoReg));
    assert_eq!(dt.first_pl011(), Some(u));
}

#[test]
fn qemu_virt_gicv2_has_virtualisation_interfaces() {
    let Some(blob) = qemu_dtb("virt,virtualization=on,gic-version=2", &[]) else { return };
    let p = DeviceTree::new(&blob).unwrap().parse();
    let g = p.gic.unwrap();
    assert_eq!(g.version, GicVersion::V2);
    assert_eq!(g.dist, Region::new(0x800_0000, 0x1_0000));
    assert_eq!(g.cpu_if, Some(Region::new(0x801_0000, 0x1_0000)));
    assert_eq!(g.hyp_if, Some(Region::new(0x803_0000, 0x1_0000)));
    assert_eq!(g.vcpu_if, Some(Region::new(0x804_0000, 0x1_0000)));
    assert!(g.redist.is_empty());
    assert_eq!(g.maintenance_irq, Some(25));
    assert!(p.modules.is_empty());
    assert_eq!(p.chosen.bootargs, None);
}

#[test]
fn qemu_virt_without_el2_uses_hvc() {
    let Some(blob) = qemu_dtb("virt,gic-version=3", &[]) else { return };
    let p = DeviceTree::new(&blob).unwrap().parse();
    assert_eq!(p.psci.unwrap().conduit, Conduit::Hvc);
    assert_eq!(p.stdout.unwrap().base, 0x900_0000);
}

/// A Raspberry Pi 4-like tree: devices under `/soc` in bus address space, spin-table CPUs,
/// firmware reservations, two RAM banks, bare `multiboot,module` nodes.
fn pi4_like() -> Vec<u8> {
    let mut w = FdtWriter::new_with_mem_reserv(&[FdtReserveEntry::new(0, 0x1000).unwrap()]).unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_string("model", "Raspberry Pi 4 Model B").unwrap();
    w.property_string_list("compatible", std::vec!["raspberrypi,4-model-b".into(), "brcm,bcm2711".into()]).unwrap();

    let n = w.begin_node("aliases").unwrap();
    w.property_string("serial1", "/soc/serial@7e201000").unwrap();
    w.property_string("serial0", "/soc/serial@7e215040").unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("chosen").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_string("stdout-path", "serial1:115200n8").unwrap();
    w.property_string("bootargs", "console=ttyAMA0 root=/dev/mmcblk0p2").unwrap();
    w.property_string("xen,xen-bootargs", "loglvl=debug dom0_mem=256M").unwrap();
    w.property_string("xen,dom0-bootargs", "console=hvc0").unwrap();
    w.property_u32("linux,initrd-start", 0x0400_0000).unwrap();
    w.property_u64("linux,initrd-end", 0x0400_1234).unwrap();
    for (i, base) in [0x0100_0000u32, 0x0200_0000, 0x0300_0000].iter().enumerate() {
        let m = w.begin_node(&format!("module@{base:x}")).unwrap();
        w.property_string_list("compatible", std::vec!["multiboot,module".into()]).unwrap();
        w.property_array_u32("reg", &[*base, 0x10_0000 + i as u32]).unwrap();
        w.end_node(m).unwrap();
    }
    let m = w.begin_node("domU1").unwrap(); // dom0less domain: not a dom0 module
    w.property_string("compatible", "xen,domain").unwrap();
    w.end_node(m).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("memory@0").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0, 0x3b40_0000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("memory@40000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0, 0x4000_0000, 0xbc00_0000, 0x1, 0x0, 0x8000_0000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("memory@f0000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_string("status", "disabled").unwrap();
    w.property_array_u32("reg", &[0, 0xf000_0000, 0x100_0000]).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("reserved-memory").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_null("ranges").unwrap();
    let c = w.begin_node("linux,cma").unwrap();
    w.property_u32("size", 0x400_0000).unwrap();
    w.end_node(c).unwrap();
    let c = w.begin_node("nvram@3b300000").unwrap();
    w.property_array_u32("reg", &[0, 0x3b30_0000, 0x1000]).unwrap();
    w.property_null("no-map").unwrap();
    w.end_node(c).unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for i in 0..4u32 {
        let c = w.begin_node(&format!("cpu@{i}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_string("compatible", "arm,cortex-a72").unwrap();
        w.property_u32("reg", i).unwrap();
        w.property_string("enable-method", "spin-table").unwrap();
        w.property_u64("cpu-release-addr", 0xd8 + 8 * i as u64).unwrap();
        w.end_node(c).unwrap();
    }
    let c = w.begin_node("cpu-map").unwrap();
    w.end_node(c).unwrap();
    w.end_node(n).unwrap();

    let soc = w.begin_node("soc").unwrap();
    w.property_string("compatible", "simple-bus").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32(
        "ranges",
        &[
            0x7e00_0000,
            0,
            0xfe00_0000,
            0x180_0000,
            0x7c00_0000,
            0,
            0xfc00_0000,
            0x200_0000,
            0x4000_0000,
            0,
            0xff80_0000,
            0x80_0000,
        ],
    )
    .unwrap();
    w.property_array_u32("dma-ranges", &[0xc000_0000, 0, 0, 0x4000_0000]).unwrap();
    let n = w.begin_node("serial@7e201000").unwrap();
    w.property_string_list("compatible", std::vec!["arm,pl011".into(), "arm,primecell".into()]).unwrap();
    w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("serial@7e215040").unwrap();
    w.property_string("compatible", "brcm,bcm2835-aux-uart").unwrap();
    w.property_array_u32("reg", &[0x7e21_5040, 0x40]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("interrupt-controller@40041000").unwrap();
    w.property_string("compatible", "arm,gic-400").unwrap();
    w.property_array_u32("reg", &[0x4004_1000, 0x1000, 0x4004_2000, 0x2000, 0x4004_4000, 0x2000, 0x4004_6000, 0x2000])
        .unwrap();
    w.property_array_u32("interrupts", &[1, 9, 0xf04]).unwrap();
    w.end_node(n).unwrap();
    // a nested bus: 0x0 on `sub` is 0x7c000000 on /soc, i.e. 0xfc000000 for the CPU
    let sub = w.begin_node("sub@7c000000").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32("ranges", &[0, 0x7c00_0000, 0x10_0000]).unwrap();
    let n = w.begin_node("uart@1000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u32("reg", &[0x1000, 0x100]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("uart@200000").unwrap(); // outside the bus window
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u32("reg", &[0x20_0000, 0x100]).unwrap();
    w.end_node(n).unwrap();
    w.end_node(sub).unwrap();
    // a bus that is not memory mapped (no `ranges`): its children are not MMIO
    let i2c = w.begin_node("i2c@7e804000").unwrap();
    w.property_array_u32("reg", &[0x7e80_4000, 0x1000]).unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let n = w.begin_node("eeprom@50").unwrap();
    w.property_array_u32("reg", &[0x50, 0x100]).unwrap();
    w.end_node(n).unwrap();
    w.end_node(i2c).unwrap();
    w.end_node(soc).unwrap();
    // a second bus with a wider DMA window, and an empty (1:1, unrestricted) one
    let n = w.begin_node("scb").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_null("ranges").unwrap();
    w.property_array_u32("dma-ranges", &[0, 0, 0, 0, 0xfc00_0000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("v3dbus").unwrap();
    w.property_null("dma-ranges").unwrap();
    w.end_node(n).unwrap();

    let n = w.begin_node("timer").unwrap();
    w.property_string_list("compatible", std::vec!["arm,armv8-timer".into(), "arm,armv7-timer".into()]).unwrap();
    w.property_array_u32("interrupts", &[1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08, 1, 10, 0xf08]).unwrap();
    w.end_node(n).unwrap();

    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn pi4_like_tree_translates_bus_addresses() {
    let blob = pi4_like();
    let dt = DeviceTree::new(&blob).unwrap();
    let p = dt.parse();
    assert_eq!(p.model, Some("Raspberry Pi 4 Model B"));
    assert_eq!(dt.highest_address(), 0x1_8000_0000, "RAM ends at 6 GiB");
    assert_eq!(p.compatible, Some("raspberrypi,4-model-b"));
    assert_eq!(
        &*p.memory,
        &[Region::new(0, 0x3b40_0000), Region::new(0x4000_0000, 0xbc00_0000), Region::new(0x1_0000_0000, 0x8000_0000)],
        "two reg entries in one node, disabled bank skipped"
    );
    assert_eq!(&*p.memreserve, &[Region::new(0, 0x1000)]);
    assert_eq!(
        &*p.reserved_memory,
        &[ReservedMemory { name: "nvram@3b300000", region: Region::new(0x3b30_0000, 0x1000), no_map: true }]
    );
    assert!(p.warnings.iter().any(|w| w.node == "linux,cma"), "dynamic region reported: {:?}", p.warnings);

    assert_eq!(p.cpus.len(), 4);
    for (i, c) in p.cpus.iter().enumerate() {
        assert_eq!(c.mpidr, i as u64);
        assert_eq!(c.enable_method, EnableMethod::SpinTable);
        assert_eq!(c.release_addr, Some(0xd8 + 8 * i as u64));
    }

    let u = p.stdout.unwrap();
    assert_eq!((u.base, u.size, u.pl011, u.options), (0xfe20_1000, 0x200, true, "115200n8"));
    let aux = dt.resolve_uart("serial0").unwrap();
    assert_eq!((aux.base, aux.pl011, aux.compatible), (0xfe21_5040, false, "brcm,bcm2835-aux-uart"));
    assert_eq!(dt.resolve_uart("/soc/sub/uart@1000").unwrap().base, 0xfc00_1000, "two levels of ranges");
    assert_eq!(dt.resolve_uart("/soc/sub/uart@200000"), Err(DtError::NoReg), "outside every window");

    let g = p.gic.unwrap();
    assert_eq!(g.version, GicVersion::V2);
    assert_eq!(g.dist, Region::new(0xff84_1000, 0x1000));
    assert_eq!(g.cpu_if, Some(Region::new(0xff84_2000, 0x2000)));
    assert_eq!(g.hyp_if, Some(Region::new(0xff84_4000, 0x2000)));
    assert_eq!(g.vcpu_if, Some(Region::new(0xff84_6000, 0x2000)));
    assert_eq!(g.maintenance_irq, Some(25));

    let t = p.timer.unwrap();
    assert_eq!((t.phys, t.virt, t.hyp_phys, t.hyp_virt), (Some(30), Some(27), Some(26), None));
    assert!(p.psci.is_none());

    assert_eq!(p.chosen.bootargs, Some("loglvl=debug dom0_mem=256M"), "xen,xen-bootargs wins");
    assert_eq!(p.chosen.dom0_bootargs, Some("console=hvc0"));
    let kinds: Vec<_> = p.modules.iter().map(|m| m.kind).collect();
    assert_eq!(
        kinds,
        [ModuleKind::Kernel, ModuleKind::Ramdisk, ModuleKind::Unknown, ModuleKind::Unknown],
        "Xen's positional rule; the initrd is kept (reserved) but has no use with a kernel and a ramdisk"
    );
    assert_eq!(p.modules[1].region, Region::new(0x200_0000, 0x10_0001), "/chosen's own 1+1 cells");
    assert_eq!(p.chosen.initrd, Some(Region::new(0x400_0000, 0x1234)), "1-cell start, 2-cell end");
    assert_eq!((p.modules[3].name, p.modules[3].region), (INITRD_MODULE, Region::new(0x400_0000, 0x1234)));
    assert_eq!(p.dma_limit, Some(0x4000_0000), "/soc's window (the first GiB) is the narrowest");

    // every device's MMIO, in CPU physical addresses; nothing from a bus without `ranges`
    let mut mmio = Vec::new();
    let mut names = Vec::new();
    dt.visit(&mut |v| {
        if let Visit::Enter(n) = v {
            names.push((n.depth, n.name()));
            mmio.extend(n.mmio().map(|r| (n.name(), r)));
            return n.base_name() != "cpus";
        }
        true
    });
    assert_eq!(names[0], (0, ""));
    assert!(names.contains(&(2, "serial@7e201000")) && names.contains(&(1, "cpus")));
    assert!(!names.iter().any(|n| n.1.starts_with("cpu@")), "children of a node not entered are skipped");
    assert!(mmio.contains(&("serial@7e201000", Region::new(0xfe20_1000, 0x200))));
    assert!(mmio.contains(&("uart@1000", Region::new(0xfc00_1000, 0x100))), "two levels of ranges");
    assert!(mmio.contains(&("i2c@7e804000", Region::new(0xfe80_4000, 0x1000))));
    assert!(!mmio.iter().any(|m| m.0 == "eeprom@50" || m.0 == "uart@200000"), "{mmio:?}");
    assert!(mmio.iter().any(|m| m.0.starts_with("memory")), "memory nodes are for the caller to skip");
}

#[test]
fn initrd_alone_is_the_dom0_kernel() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    let n = w.begin_node("chosen").unwrap();
    w.property_u64("linux,initrd-start", 0x800_0000).unwrap();
    w.property_u64("linux,initrd-end", 0x801_6268).unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let p = DeviceTree::new(&blob).unwrap().parse();
    let k = p.module(ModuleKind::Kernel).unwrap();
    assert_eq!((k.name, k.region, k.bootargs), (INITRD_MODULE, Region::new(0x800_0000, 0x1_6268), None));
    assert!(p.module(ModuleKind::Ramdisk).is_none() && p.dma_limit.is_none());

    // an empty range is no initrd, and says so
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let n = w.begin_node("chosen").unwrap();
    w.property_u32("linux,initrd-start", 0x800_0000).unwrap();
    w.property_u32("linux,initrd-end", 0x800_0000).unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let p = DeviceTree::new(&blob).unwrap().parse();
    assert!(p.modules.is_empty() && p.chosen.initrd.is_none());
    assert!(p.warnings.iter().any(|w| w.what.contains("initrd")), "{:?}", p.warnings);
}

#[test]
fn first_pl011_is_the_fallback_console() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    let n = w.begin_node("memory@80000000").unwrap();
    w.property_string("device_type", "memory").unwrap();
    w.property_array_u32("reg", &[0x8000_0000, 0x1000_0000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("uart@1c090000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_string("status", "disabled").unwrap();
    w.property_array_u32("reg", &[0x1c09_0000, 0x1000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("uart@1c0a0000").unwrap();
    w.property_string("compatible", "arm,pl011").unwrap();
    w.property_array_u32("reg", &[0x1c0a_0000, 0x1000]).unwrap();
    w.end_node(n).unwrap();
    let n = w.begin_node("psci").unwrap();
    w.property_string("compatible", "arm,psci").unwrap();
    w.property_string("method", "hvc").unwrap();
    w.property_u32("cpu_on", 0x8400_0003).unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let dt = DeviceTree::new(&blob).unwrap();
    let p = dt.parse();
    assert_eq!(&*p.memory, &[Region::new(0x8000_0000, 0x1000_0000)]);
    assert!(p.stdout.is_none() && p.chosen.bootargs.is_none(), "no /chosen at all is fine");
    assert_eq!(dt.first_pl011().unwrap().base, 0x1c0a_0000, "disabled UART skipped");
    let psci = p.psci.unwrap();
    assert_eq!((psci.conduit, psci.v0_2, psci.cpu_on), (Conduit::Hvc, false, Some(0x8400_0003)));
    assert!(p.gic.is_none() && p.timer.is_none() && p.cpus.is_empty());
}

#[test]
fn unusable_trees_are_errors() {
    assert!(matches!(DeviceTree::new(&[0u8; 64]), Err(DtError::Header(_))));
    assert_eq!(DeviceTree::header_size(&[0xd0, 0x0d, 0xfe, 0xed, 0, 0, 0x10, 0]), Some(0x1000));
    assert_eq!(DeviceTree::header_size(&[0; 8]), None);
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let n = w.begin_node("chosen").unwrap();
    w.property_string("stdout-path", "serial0").unwrap();
    w.end_node(n).unwrap();
    w.end_node(root).unwrap();
    let blob = w.finish().unwrap();
    let p = DeviceTree::new(&blob).unwrap().parse();
    assert!(p.memory.is_empty(), "no RAM is reported as no banks");
    assert!(p.stdout.is_none());
    assert!(p.warnings.iter().any(|w| w.what.contains("stdout-path")), "{:?}", p.warnings);
}

/// `blob` with an `FDT_NOP` token inserted after every property and before every node, the
/// way libfdt leaves them after edits (header offsets and sizes fixed up).
fn sprinkle_nops(blob: &[u8]) -> Vec<u8> {
    let h = |i: usize| u32::from_be_bytes(blob[4 * i..4 * i + 4].try_into().unwrap()) as usize;
    let (total, off_struct, off_strings, off_rsv, size_strings, size_struct) = (h(1), h(2), h(3), h(4), h(8), h(9));
    assert!(off_rsv < off_struct && off_struct < off_strings, "vm-fdt layout");
    let mut st = Vec::new();
    let mut i = off_struct;
    let nop = 4u32.to_be_bytes();
    loop {
        let tok = h(i / 4);
        let len = match tok {
            1 => {
                st.extend_from_slice(&nop);
                let n = blob[i + 4..].iter().position(|&c| c == 0).unwrap();
                4 + (n + 1).next_multiple_of(4)
            }
            3 => 12 + h(i / 4 + 1).next_multiple_of(4),
            _ => 4,
        };
        st.extend_from_slice(&blob[i..i + len]);
        if tok == 3 {
            st.extend_from_slice(&nop);
            st.extend_from_slice(&nop);
        }
        i += len;
        if tok == 9 {
            break;
        }
    }
    let _ = (total, size_struct);
    let mut out = blob[..off_struct].to_vec();
    out.extend_from_slice(&st);
    let new_strings = out.len();
    out.extend_from_slice(&blob[off_strings..off_strings + size_strings]);
    let set = |out: &mut Vec<u8>, i: usize, v: usize| out[4 * i..4 * i + 4].copy_from_slice(&(v as u32).to_be_bytes());
    let len = out.len();
    set(&mut out, 1, len);
    set(&mut out, 3, new_strings);
    set(&mut out, 9, st.len());
    out
}

#[test]
fn nop_tokens_are_removed_in_place() {
    let clean = pi4_like();
    let mut noisy = sprinkle_nops(&clean);
    assert!(noisy.len() > clean.len());
    // the fdt crate cannot walk a tree with NOPs between properties and children
    let walked = std::panic::catch_unwind(|| {
        let dt = DeviceTree::new(&noisy).unwrap();
        dt.parse().memory.len()
    });
    assert!(walked.is_err() || walked.unwrap() != 3, "NOPs should confuse the crate");
    let n = DeviceTree::remove_nops(&mut noisy).unwrap();
    assert!(n > 100, "{n} NOPs removed");
    assert_eq!(DeviceTree::remove_nops(&mut noisy).unwrap(), 0, "idempotent");
    let a = DeviceTree::new(&clean).unwrap().parse();
    let b = DeviceTree::new(&noisy).unwrap().parse();
    assert_eq!(std::format!("{a:?}"), std::format!("{b:?}"));
    // clean trees are left alone
    let mut copy = clean.clone();
    assert_eq!(DeviceTree::remove_nops(&mut copy).unwrap(), 0);
    assert_eq!(copy, clean);
    // garbage is refused
    assert!(DeviceTree::remove_nops(&mut [0u8; 64]).is_err());
    let mut truncated = clean.clone();
    truncated[36..40].copy_from_slice(&8u32.to_be_bytes()); // struct block too short for FDT_END
    assert!(DeviceTree::remove_nops(&mut truncated).is_err());
}

/// The Raspberry Pi 4 DTB as QEMU's raspi4b machine passes it (with its NOP-leaving fixups),
/// if the Pi DTB has been fetched (scripts/fetch-payloads.sh linux).
#[test]
fn qemu_raspi4b_tree() {
    let pi = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/payloads/linux/usr/lib")
        .read_dir()
        .ok()
        .and_then(|mut d| {
            d.find_map(|e| {
                let p = e.ok()?.path().join("broadcom/bcm2711-rpi-4-b.dtb");
                p.exists().then_some(p)
            })
        });
    let Some(pi) = pi else {
        std::eprintln!("SKIPPED: no bcm2711-rpi-4-b.dtb under target/payloads (scripts/fetch-payloads.sh linux)");
        return;
    };
    let Some(mut blob) = qemu_dtb_for(
        "raspi4b",
        &args(&["-dtb", pi.to_str().unwrap(), "-append", "loglvl=all -- console=hvc0", "-initrd", "KERNEL"]),
    ) else {
        return;
    };
    assert!(DeviceTree::remove_nops(&mut blob).unwrap() > 0, "QEMU's fixups leave NOPs");
    let dt = DeviceTree::new(&blob).unwrap();
    let p = dt.parse();
    assert_eq!(p.chosen.bootargs, Some("loglvl=all -- console=hvc0"));
    assert!(p.memory[0].base == 0 && p.ram_bytes() >= 512 << 20, "{:?}", p.memory);
    assert_eq!(&*p.memreserve, &[Region::new(0, 0x1000)]);
    assert_eq!(p.cpus.len(), 4);
    assert!(p.cpus.iter().all(|c| c.enable_method == EnableMethod::SpinTable && c.release_addr.is_some()));
    let u = p.stdout.unwrap();
    assert!(!u.pl011, "serial1 is the mini UART");
    let pl011 = dt.first_pl011().unwrap();
    assert_eq!(pl011.base, 0xfe20_1000);
    let g = p.gic.unwrap();
    assert_eq!((g.version, g.dist.base, g.hyp_if.map(|r| r.base)), (GicVersion::V2, 0xff84_1000, Some(0xff84_4000)));
    assert_eq!(g.vcpu_if, Some(Region::new(0xff84_6000, 0x2000)));
    // QEMU's -initrd is /chosen linux,initrd-start/end: with no multiboot module, dom0's kernel
    let k = p.module(ModuleKind::Kernel).unwrap();
    assert_eq!((k.name, k.region.size), (INITRD_MODULE, 6));
    assert_eq!(cmdline::BootOptions::parse(p.chosen.bootargs.unwrap()).dom0_extra, Some("console=hvc0"));
    assert_eq!(p.dma_limit, Some(0x4000_0000), "BCM2711: DMA reaches the first GiB only");
    // the devices dom0 gets: the mailbox, the EMMC2 controller under /emmc2bus, ...
    let mut mmio = Vec::new();
    dt.visit(&mut |v| {
        if let Visit::Enter(n) = v
            && n.enabled()
        {
            mmio.extend(n.mmio().map(|r| (n.name(), r)));
        }
        true
    });
    assert!(mmio.contains(&("mailbox@7e00b880", Region::new(0xfe00_b880, 0x40))), "{mmio:?}");
    assert!(mmio.iter().any(|m| m.0.starts_with("mmc@7e340000") && m.1.base == 0xfe34_0000), "{mmio:?}");
}
