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
    let d0 = dom0::build(hv, &plat, &plan, &k, Some(&initrd), "console=hvc0", &[(0x9000, 0x9001)]).unwrap();
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
        let inp =
            PlanInputs { image, kernel_at: 0, kernel: &k, initrd_len: None, dom0_mem: 1 << 30, max_grant_frames: 64 };
        err = dom0::plan(bm, &plat, &inp).err();
    });
    assert!(matches!(err, Some(Dom0Error::Memory(_))));
}
