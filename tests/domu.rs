//! Building a domU with Xen's guest memory map on the simulated machine.

use granite::audit::audit;
use granite::domu::{self, DomUOptions};
use granite::hv::Options;
use granite::p2m::P2mType;
use granite::testing::HostMachine;
use granite::tlb::NoTlb;
use granite::types::Gfn;
use std::sync::Arc;
use xen_abi::guest_layout::*;

const V3: domu::HostGic = domu::HostGic { version: granite::vgic::Version::V3, gicv: None };

fn kernel(len: usize) -> Vec<u8> {
    let mut k = vec![0u8; len];
    k[16..24].copy_from_slice(&(len as u64 + 0x1000).to_le_bytes());
    k[0x38..0x3c].copy_from_slice(b"ARM\x64");
    for (i, b) in k[64..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    k
}

#[test]
fn options_come_from_the_modules_bootargs() {
    assert_eq!(DomUOptions::parse("console=hvc0"), DomUOptions { mem: 64 << 20, vcpus: 1 });
    assert_eq!(DomUOptions::parse("granite.mem=32M x granite.vcpus=3"), DomUOptions { mem: 32 << 20, vcpus: 3 });
    assert_eq!(DomUOptions::parse("granite.mem=1K granite.vcpus=zero"), DomUOptions { mem: 64 << 20, vcpus: 1 });
}

#[test]
fn domu_gets_xens_guest_layout_and_is_torn_down_completely() {
    let m = HostMachine::new(32768, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let free0 = hv.mm.heap.free_frames();
    let k = kernel(10_000);
    let b = domu::build(hv, 3, &k, "console=hvc0 granite.mem=16M", 16 << 20, &[1, 2], V3).unwrap();
    let d = &b.domain;
    assert!(!d.direct_map && !d.privileged);
    assert_eq!(b.entry, GUEST_RAM0_BASE);
    {
        let p = d.p2m.read(&hv.mm);
        let first = p.lookup(Gfn::from_addr(GUEST_RAM0_BASE)).unwrap();
        assert_eq!((first.ty, first.order), (P2mType::RamRw, 9), "2 MiB blocks");
        assert!(p.lookup(Gfn::from_addr(GUEST_RAM0_BASE + (16 << 20) - 1)).is_some());
        assert!(p.lookup(Gfn::from_addr(GUEST_RAM0_BASE + (16 << 20))).is_none());
        assert!(p.lookup(Gfn::from_addr(GUEST_GNTTAB_BASE)).is_none(), "the grant region is a hole");
        // the kernel is where the header asked
        let mut got = vec![0u8; k.len()];
        hv.mm.phys.read(first.mfn.addr(), &mut got);
        assert_eq!(got, k);
        // its device tree
        let dm = p.lookup(Gfn::from_addr(b.dtb)).unwrap();
        let mut blob = vec![0u8; 4096];
        hv.mm.phys.read(dm.mfn.addr() + (b.dtb & 0xfff), &mut blob);
        let fdt = fdt::Fdt::new(&blob).unwrap();
        assert_eq!(fdt.cpus().count(), 2);
        let hyp = fdt.find_node("/hypervisor").unwrap();
        let reg: Vec<(usize, usize)> =
            hyp.reg().unwrap().map(|r| (r.starting_address as usize, r.size.unwrap())).collect();
        assert_eq!(reg[0], (GUEST_GNTTAB_BASE as usize, 64 * 4096));
        assert_eq!(reg[1].0 as u64, GUEST_RAM0_BASE + (16 << 20), "extended region after the RAM");
        assert_eq!(hyp.property("interrupts").unwrap().value[4..8], 15u32.to_be_bytes(), "PPI 31");
    }
    assert_eq!(hv.mm.pages_of(3).domheap.load(std::sync::atomic::Ordering::Relaxed), 4096);
    assert!(audit(hv).is_clean());
    hv.destroy_domain(d);
    assert!(hv.domain_any_state(3).is_none());
    assert_eq!(hv.mm.heap.free_frames(), free0, "every page back");
}

#[test]
fn a_failed_domu_build_leaves_nothing_behind() {
    let m = HostMachine::new(4096, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let free0 = hv.mm.heap.free_frames();
    let r = domu::build(hv, 2, &kernel(4096), "", 64 << 20, &[1], V3);
    assert!(matches!(r, Err(domu::DomUError::NoMemory)), "16 MiB machine, 64 MiB asked");
    assert!(hv.domain_any_state(2).is_none());
    assert_eq!(hv.mm.heap.free_frames(), free0);
    let mut bad = kernel(4096);
    bad[0x38] = 0;
    assert!(matches!(domu::build(hv, 2, &bad, "", 8 << 20, &[1], V3), Err(domu::DomUError::BadImage(_))));
}
