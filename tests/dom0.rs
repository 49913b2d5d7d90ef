//! Building a direct-mapped dom0 from a kernel module, on the simulated machine.

use granite::audit::audit;
use granite::bootmem::Range;
use granite::dom0::{self, Dom0Error, Dom0Plan, PlanInputs};
use granite::dt::{Gic, GicVersion, Platform, Region, Timer};
use granite::hv::Options;
use granite::p2m::P2mType;
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::types::{Gfn, Mfn};
use std::sync::{Arc, Mutex};

const MIB: u64 = 1 << 20;
const RAM: u64 = 0x4000_0000;

fn kernel(len: usize) -> Vec<u8> {
    let mut k = vec![0u8; len];
    k[16..24].copy_from_slice(&(len as u64 + 0x10_000).to_le_bytes()); // image_size: + BSS
    k[24..32].copy_from_slice(&0xau64.to_le_bytes());
    k[0x38..0x3c].copy_from_slice(b"ARM\x64");
    for (i, b) in k[64..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    k
}

fn platform() -> Platform<'static> {
    let mut p = Platform::default();
    let _ = p.memory.push(Region::new(RAM, 128 * MIB));
    let mut g = Gic {
        version: GicVersion::V3,
        compatible: "arm,gic-v3",
        dist: Region::new(0x800_0000, 0x1_0000),
        ..Default::default()
    };
    let _ = g.redist.push(Region::new(0x80a_0000, 0xf6_0000));
    g.maintenance_irq = Some(25);
    p.gic = Some(g);
    p.timer =
        Some(Timer { secure_phys: Some(29), phys: Some(30), virt: Some(27), hyp_phys: Some(26), ..Default::default() });
    p
}

#[test]
fn dom0_is_direct_mapped_loaded_and_described() {
    let plat = platform();
    let k = kernel(300_000);
    let image = Range { start: RAM + 2 * MIB, end: RAM + 2 * MIB + 0x8_0000 };
    let planned: Arc<Mutex<Option<Dom0Plan>>> = Arc::default();
    let p2 = planned.clone();
    let m = HostMachine::with_boot_plan(32768, 44, Arc::new(NoTlb), Options::default(), |bm| {
        bm.reserve(image.start, image.len(), "image").unwrap();
        let inp = PlanInputs {
            image,
            kernel_at: 0,
            kernel: &k,
            initrd_len: Some(5000),
            dom0_mem: 16 * MIB,
            max_grant_frames: 64,
            mmio: &[],
        };
        *p2.lock().unwrap() = Some(dom0::plan(bm, &plat, &inp).unwrap());
    });
    let plan = planned.lock().unwrap().take().unwrap();
    let hv = &m.hv;
    assert_eq!(
        plan.banks,
        vec![Range { start: RAM + 4 * MIB, end: RAM + 20 * MIB }],
        "lowest 2 MiB aligned RAM after the image"
    );
    assert_eq!(plan.grant_frames, 64, "image of 128 frames: grant table capped at 64");
    assert_eq!(plan.grant, Range { start: image.start, end: image.start + 64 * 4096 });
    assert_eq!(plan.evtchn_ppi, 16);
    assert_eq!(plan.extended, vec![Range { start: RAM + 20 * MIB, end: RAM + 128 * MIB }]);
    let initrd = vec![0x5au8; 5000];
    let dev = dom0::Devices { iomem: &[(0x9000, 0x9001)], ..Default::default() };
    let d0 = dom0::build(hv, &plat, &plan, &k, Some(&initrd), "console=hvc0", &dev).unwrap();
    let d = &d0.domain;
    assert!(d.direct_map && d.privileged && d.id == 0);
    // 1:1, in 2 MiB blocks, owned by dom0
    let p = d.p2m.read(&hv.mm);
    for off in [0, 0x1234, 16 * MIB - 1] {
        let ipa = RAM + 4 * MIB + off;
        let mp = p.lookup(Gfn(ipa >> 12)).unwrap();
        assert_eq!((mp.mfn, mp.ty, mp.order), (Mfn(ipa >> 12), P2mType::RamRw, 9));
    }
    assert!(p.lookup(Gfn(image.start >> 12)).is_none(), "the grant region is a hole");
    drop(p);
    assert_eq!(hv.mm.frames.owner(Mfn((RAM + 4 * MIB) >> 12)), Some(0));
    assert_eq!(hv.mm.pages_of(0).domheap.load(std::sync::atomic::Ordering::Relaxed), 16 * MIB / 4096);
    // the kernel where the header asked, the initrd after it, the DTB after that
    let mut got = vec![0u8; k.len()];
    hv.mm.phys.read(d0.entry, &mut got);
    assert_eq!(got, k);
    assert_eq!(d0.entry, RAM + 4 * MIB);
    let dtb_len = d0.written.last().unwrap().len() as usize;
    let mut blob = vec![0u8; dtb_len];
    hv.mm.phys.read(d0.dtb, &mut blob);
    let fdt = fdt::Fdt::new(&blob).unwrap();
    assert_eq!(fdt.chosen().bootargs(), Some("console=hvc0"));
    let mem: Vec<(usize, usize)> =
        fdt.memory().regions().map(|r| (r.starting_address as usize, r.size.unwrap())).collect();
    assert_eq!(mem, vec![((RAM + 4 * MIB) as usize, (16 * MIB) as usize)]);
    let hyp = fdt.find_node("/hypervisor").unwrap();
    let reg: Vec<(usize, usize)> = hyp.reg().unwrap().map(|r| (r.starting_address as usize, r.size.unwrap())).collect();
    assert_eq!(reg[0], (image.start as usize, 64 * 4096));
    let (s, e) = plan.placement.initrd.unwrap();
    assert_eq!(fdt.find_node("/chosen").unwrap().property("linux,initrd-start").unwrap().as_usize(), Some(s as usize));
    assert_eq!(e - s, 5000);
    assert!(fdt.find_node("/psci").is_some() && fdt.cpus().count() == 1);
    // dom0 may map the MMIO it was given, nothing else
    assert!(d.iomem_permitted(0x9000) && !d.iomem_permitted(0x9001));
    let r = audit(hv);
    assert!(r.is_clean(), "{:?}", r.violations);
}

#[test]
fn a_module_that_is_not_an_image_is_refused_clearly() {
    let plat = platform();
    let mut elf = kernel(4096);
    elf[0x38..0x3c].copy_from_slice(b"\x7fELF");
    let mut err = None;
    let _m = HostMachine::with_boot_plan(4096, 44, Arc::new(NoTlb), Options::default(), |bm| {
        let image = Range { start: RAM, end: RAM + MIB };
        let inp = PlanInputs {
            image,
            kernel_at: 0x4900_0000,
            kernel: &elf,
            initrd_len: None,
            dom0_mem: 8 * MIB,
            max_grant_frames: 64,
            mmio: &[],
        };
        err = dom0::plan(bm, &plat, &inp).err();
    });
    let e = err.expect("refused");
    assert!(matches!(e, Dom0Error::BadImage { at: 0x4900_0000, .. }));
    let msg = format!("{e}");
    assert!(msg.contains("0x49000000") && msg.contains("not an arm64 Image"), "{msg}");
    // too much memory asked
    let mut err = None;
    let _m = HostMachine::with_boot_plan(4096, 44, Arc::new(NoTlb), Options::default(), |bm| {
        let (image, k) = (Range { start: RAM, end: RAM + MIB }, kernel(4096));
        let inp = PlanInputs {
            image,
            kernel_at: 0,
            kernel: &k,
            initrd_len: None,
            dom0_mem: 1 << 30,
            max_grant_frames: 64,
            mmio: &[],
        };
        err = dom0::plan(bm, &plat, &inp).err();
    });
    assert!(matches!(err, Some(Dom0Error::Memory(_))));
}

// ---- dom0 built from a real host device tree ---------------------------------------------------

use granite::dom0::fdt::HostTree;
use granite::dom0::{Devices, gicv_mapping, passthrough};
use granite::dt::{DeviceTree, FixedVec};
use std::path::Path;

/// The Raspberry Pi 4 DTB of Debian's linux-image-arm64, if fetched
/// (`scripts/fetch-payloads.sh linux`).
fn pi4_dtb() -> Option<Vec<u8>> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/payloads/linux/usr/lib");
    let found = lib.read_dir().ok().and_then(|mut d| {
        d.find_map(|e| {
            let p = e.ok()?.path().join("broadcom/bcm2711-rpi-4-b.dtb");
            p.exists().then_some(p)
        })
    });
    match found {
        Some(p) => Some(std::fs::read(p).unwrap()),
        None => {
            eprintln!("SKIPPED: no bcm2711-rpi-4-b.dtb under target/payloads (scripts/fetch-payloads.sh linux)");
            None
        }
    }
}

/// The device tree QEMU virt (GICv3, EL2) generates, dumped now; `None` without QEMU.
fn qemu_virt_dtb() -> Option<Vec<u8>> {
    let dir = std::env::temp_dir().join(format!("granite-dom0-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dtb = dir.join("virt.dtb");
    let qemu = std::env::var("QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into());
    let out = std::process::Command::new(&qemu)
        .args(["-M", &format!("virt,virtualization=on,gic-version=3,dumpdtb={}", dtb.display())])
        .args(["-cpu", "cortex-a57", "-m", "2G", "-display", "none"])
        .output();
    match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: {qemu} not found, QEMU virt device tree not tested");
            None
        }
        Err(e) => panic!("{qemu}: {e}"),
        Ok(o) => {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let b = std::fs::read(&dtb).unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            Some(b)
        }
    }
}

struct FromHost {
    m: HostMachine,
    d0: dom0::Dom0,
    plan: Dom0Plan,
    /// Dom0's device tree as written into its RAM.
    tree: Vec<u8>,
}

/// Build dom0 the way the image does on real hardware: the host tree's devices passed through
/// (minus the GIC and the console UART at `console`), the host tree copied. The host's RAM is
/// replaced by the simulated machine's 256 MiB at 0x40000000.
fn dom0_from_host(host: &[u8], console: u64) -> FromHost {
    let dt = DeviceTree::new(host).unwrap();
    let mut plat = dt.parse();
    plat.memory = FixedVec::new();
    plat.memory.push(Region::new(RAM, 256 * MIB)).unwrap();
    let g = plat.gic.unwrap();
    let mut kept: Vec<Region> = vec![g.dist, Region::new(console, 0x1000)];
    kept.extend(g.redist.iter().copied());
    kept.extend([g.cpu_if, g.hyp_if, g.vcpu_if].into_iter().flatten());
    kept.extend(g.its.iter().copied());
    let mmio = passthrough(&dt, &plat, &kept);
    let k = kernel(300_000);
    let image = Range { start: RAM + 2 * MIB, end: RAM + 2 * MIB + 0x8_0000 };
    let planned: Arc<Mutex<Option<Dom0Plan>>> = Arc::default();
    let p2 = planned.clone();
    let m = HostMachine::with_boot_plan(65536, 44, Arc::new(NoTlb), Options::default(), |bm| {
        bm.reserve(image.start, image.len(), "image").unwrap();
        let inp = PlanInputs {
            image,
            kernel_at: 0,
            kernel: &k,
            initrd_len: None,
            dom0_mem: 32 * MIB,
            max_grant_frames: 64,
            mmio: &mmio,
        };
        *p2.lock().unwrap() = Some(dom0::plan(bm, &plat, &inp).unwrap());
    });
    let plan = planned.lock().unwrap().take().unwrap();
    assert_eq!(plan.passthrough, mmio);
    let gicv = gicv_mapping(&plat);
    let dev = Devices {
        iomem: &[],
        mmio: gicv.as_slice(),
        host: HostTree::new(dt, &plat, Some(console)),
        gic_lines: 256,
        ..Devices::default()
    };
    let d0 = dom0::build(&m.hv, &plat, &plan, &k, None, "console=hvc0", &dev).unwrap();
    let len = d0.written.last().unwrap().len() as usize;
    let mut tree = vec![0u8; len];
    m.hv.mm.phys.read(d0.dtb, &mut tree);
    FromHost { m, d0, plan, tree }
}

impl FromHost {
    fn p2m(&self, addr: u64) -> Option<(u64, P2mType)> {
        let p = self.d0.domain.p2m.read(&self.m.hv.mm);
        p.lookup(Gfn(addr >> 12)).map(|m| (m.mfn.0 << 12 | (addr & 0xfff), m.ty))
    }
}

fn be32(v: &[u8]) -> u32 {
    u32::from_be_bytes(v[..4].try_into().unwrap())
}

/// Every `interrupt-parent` of `tree` names a node's `phandle`; returns how many were checked.
fn interrupt_parents_resolve(tree: &fdt::Fdt) -> usize {
    fn walk<'a>(n: fdt::node::FdtNode<'_, 'a>, phandles: &mut Vec<u32>, refs: &mut Vec<(String, u32)>) {
        for p in n.properties() {
            match p.name {
                "phandle" => phandles.push(be32(p.value)),
                "interrupt-parent" => refs.push((n.name.to_string(), be32(p.value))),
                _ => {}
            }
        }
        for c in n.children() {
            walk(c, phandles, refs);
        }
    }
    let (mut phandles, mut refs) = (Vec::new(), Vec::new());
    walk(tree.find_node("/").unwrap(), &mut phandles, &mut refs);
    for (node, r) in &refs {
        assert!(phandles.contains(r), "{node}: interrupt-parent {r:#x} names no node");
    }
    refs.len()
}

#[test]
fn raspberry_pi_4_dom0_gets_the_hosts_devices_and_tree() {
    let Some(host) = pi4_dtb() else { return };
    let b = dom0_from_host(&host, 0xfe20_1000);
    // MMIO passed through 1:1: the mailbox, the EMMC2 controller (under /emmc2bus), the
    // ARM local interrupt controller; never the console UART's page or the GIC.
    let covers = |a: u64| b.plan.passthrough.iter().any(|r| r.start <= a && a < r.end);
    assert!(covers(0xfe00_b880) && covers(0xfe34_0000) && covers(0xff80_0000), "{:x?}", b.plan.passthrough);
    assert!(!covers(0xfe20_1000), "the hypervisor's console");
    assert!((0xff84_0000..0xff84_8000).step_by(0x1000).all(|a| !covers(a)), "the GIC");
    assert_eq!(b.p2m(0xfe00_b880), Some((0xfe00_b880, P2mType::MmioDirectDev)));
    assert_eq!(b.p2m(0xfe20_1000), None);
    assert_eq!(b.p2m(0xff84_1000), None, "no distributor: dom0 has no virtual GICD yet");
    // GICV at the GICC address
    assert_eq!(b.p2m(0xff84_2004), Some((0xff84_6004, P2mType::MmioDirectDev)));
    assert_eq!(b.p2m(0xff84_3000), Some((0xff84_7000, P2mType::MmioDirectDev)));
    assert!(b.d0.domain.iomem_permitted(0xfe00b) && !b.d0.domain.iomem_permitted(0xfe201));
    // extended regions keep away from everything mapped
    for e in &b.plan.extended {
        assert!(b.plan.passthrough.iter().all(|r| r.end <= e.start || r.start >= e.end));
        assert!(b.plan.banks.iter().all(|r| r.end <= e.start || r.start >= e.end));
    }

    let t = fdt::Fdt::new(&b.tree).unwrap();
    let root = t.find_node("/").unwrap();
    assert!(root.compatible().unwrap().all().any(|c| c == "raspberrypi,4-model-b"), "the host's root, verbatim");
    assert!(t.find_node("/soc/mailbox@7e00b880").is_some() && t.find_node("/emmc2bus").is_some());
    assert!(t.find_node("/aliases").is_some() && t.find_node("/reserved-memory").is_some());
    let uart = t.find_node("/soc/serial@7e201000").unwrap();
    assert_eq!(uart.property("status").unwrap().as_str(), Some("disabled"), "the console stays the hypervisor's");
    // the GIC in place, with the host's phandle; GICD and GICC only, no maintenance interrupt
    let host_dt = fdt::Fdt::new(&host).unwrap();
    let host_gic = host_dt.find_node("/soc/interrupt-controller@40041000").unwrap();
    let gic = t.find_node("/soc/interrupt-controller@40041000").unwrap();
    assert_eq!(gic.property("phandle").unwrap().value, host_gic.property("phandle").unwrap().value);
    assert_eq!(gic.property("reg").unwrap().value, &host_gic.property("reg").unwrap().value[..16]);
    assert!(gic.property("interrupts").is_none());
    let gic_ph = be32(gic.property("phandle").unwrap().value);
    let timer = t.find_node("/timer").unwrap();
    assert_eq!(be32(timer.property("interrupt-parent").unwrap().value), gic_ph);
    assert!(interrupt_parents_resolve(&t) > 3, "the host's devices keep their interrupt parents");
    // dom0's own nodes, with the root's 2 address + 1 size cells
    let mem: Vec<(usize, usize)> =
        t.memory().regions().map(|r| (r.starting_address as usize, r.size.unwrap())).collect();
    assert_eq!(mem, vec![(b.plan.banks[0].start as usize, 32 * MIB as usize)]);
    let hyp = t.find_node("/hypervisor").unwrap();
    let reg = hyp.property("reg").unwrap().value;
    assert_eq!(reg.len(), 12 * (1 + b.plan.extended.len()), "2 + 1 cells per region");
    assert_eq!((be32(&reg[4..]) as u64, be32(&reg[8..]) as u64), (b.plan.grant.start, b.plan.grant.len()));
    assert_eq!(t.cpus().count(), 1);
    assert_eq!(t.find_node("/psci").unwrap().property("method").unwrap().as_str(), Some("hvc"));
    assert_eq!(t.chosen().bootargs(), Some("console=hvc0"));
    assert!(t.find_all_nodes("/memory").count() == 1);
    let audit = audit(&b.m.hv);
    assert!(audit.is_clean(), "{:?}", audit.violations);
}

#[test]
fn qemu_virt_dom0_gets_the_hosts_devices_and_tree() {
    let Some(host) = qemu_virt_dtb() else { return };
    let b = dom0_from_host(&host, 0x900_0000);
    assert_eq!(b.p2m(0xa00_0200), Some((0xa00_0200, P2mType::MmioDirectDev)), "virtio-mmio");
    assert_eq!(b.p2m(0x10), Some((0x10, P2mType::MmioDirectDev)), "flash@0");
    assert_eq!(b.p2m(0x900_0000), None, "the console");
    assert_eq!(b.p2m(0x800_0000), None, "GICD");
    assert_eq!(b.p2m(0x80a_0000), None, "GICR");
    assert_eq!(b.p2m(0x808_0000), None, "ITS");
    let t = fdt::Fdt::new(&b.tree).unwrap();
    let gic = t.find_compatible(&["arm,gic-v3"]).unwrap();
    assert_eq!(gic.property("reg").unwrap().value.len(), 32, "GICD + one redistributor region, 2 + 2 cells");
    assert_eq!(gic.children().count(), 0, "no ITS for dom0");
    assert_eq!(t.find_node("/pl011@9000000").unwrap().property("status").unwrap().as_str(), Some("disabled"));
    assert!(t.find_node("/fw-cfg@9020000").is_some() && t.find_node("/pcie@10000000").is_some());
    assert!(interrupt_parents_resolve(&t) > 0);
    assert_eq!(t.find_node("/psci").unwrap().property("method").unwrap().as_str(), Some("hvc"));
    assert_eq!(t.cpus().count(), 1);
    assert!(t.find_node("/hypervisor").is_some());
}
