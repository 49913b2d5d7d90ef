//! vCPUs, PSCI and the domain lifecycle on the simulated machine: every PSCI transition with
//! its answer, starting a domain on its CPUs, shutdowns (the hardware domain takes the
//! machine; a domU is stopped on every CPU and torn down; the last domain powers off), and the
//! domU start policy.

use granite::domain::Domain;
use granite::hv::{Hypervisor, Options};
use granite::lifecycle::{self, MachineAction, Shutdown};
use granite::sched::PlaceError;
use granite::testing::GUEST_RAM_GFN;
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::vcpu::RunState;
use granite::vpsci::{self, PsciOutcome};
use std::sync::Arc;
use xen_abi::psci::*;
use xen_abi::sched::*;

fn machine() -> HostMachine {
    HostMachine::new(8192, 40, Arc::new(NoTlb), Options::default())
}

/// Domain `id` with one vCPU on each of `pcpus`, RAM-less.
fn domain(hv: &Hypervisor, id: u16, pcpus: &[usize]) -> Arc<Domain> {
    let mut cfg = hv.domain_config(id);
    cfg.pcpus = pcpus.to_vec();
    hv.create_domain(cfg).expect("create domain")
}

/// A minimal arm64 Image (header + filler) that a domU can be built from.
fn test_kernel_image() -> Vec<u8> {
    let len = 8192;
    let mut k = vec![0u8; len];
    k[16..24].copy_from_slice(&(len as u64 + 0x1000).to_le_bytes());
    k[0x38..0x3c].copy_from_slice(b"ARM\x64");
    k
}

fn ret(x0: i64) -> PsciOutcome {
    PsciOutcome::Return { x0, started: None }
}

#[test]
fn psci_cpu_on_off_and_affinity_info() {
    let m = machine();
    let d = domain(&m.hv, 1, &[2, 5]);
    let (v0, v1) = (&d.vcpus[0], &d.vcpus[1]);
    assert_eq!((v0.mpidr, v1.mpidr), (0, 1));
    let on = |target: u64| vpsci::call(&d, v0, PSCI_CPU_ON_64 as u64, target, 0x4008_0000, 42);
    let info = |target: u64, level: u64| vpsci::call(&d, v0, PSCI_AFFINITY_INFO_64 as u64, target, level, 0);
    assert_eq!(info(1, 0), ret(1), "off");
    assert_eq!(on(0x8000_0001), PsciOutcome::Return { x0: PSCI_SUCCESS, started: Some(1) }, "MPIDR flags ignored");
    assert_eq!(v1.state(), RunState::Pending { entry: 0x4008_0000, context: 42 });
    assert_eq!(info(1, 0), ret(2), "on pending");
    assert_eq!(on(1), ret(PSCI_ON_PENDING));
    assert_eq!(v1.take_start(), Some((0x4008_0000, 42)), "its CPU enters it");
    assert_eq!(info(1, 0), ret(0), "on");
    assert_eq!(on(1), ret(PSCI_ALREADY_ON));
    assert_eq!(on(2), ret(PSCI_INVALID_PARAMETERS), "no vCPU 2");
    assert_eq!(on(0x100), ret(PSCI_INVALID_PARAMETERS), "no vCPU in cluster 1");
    // Levels 1 to 3 answer for the group above that level (Xen 4.17 too); a group no vCPU
    // is in, and levels beyond 3, are invalid (Xen answers OFF for the former: see README).
    assert_eq!(info(0x7f, 1), ret(0), "cluster 0: vCPU 1 is on");
    assert_eq!(info(0x8000_00ff, 3), ret(0), "flags and lower levels ignored");
    assert_eq!(info(0x100, 1), ret(PSCI_INVALID_PARAMETERS), "no vCPU in cluster 1");
    assert_eq!(info(0xff, 0), ret(PSCI_INVALID_PARAMETERS), "no vCPU 0xff");
    assert_eq!(info(0, 4), ret(PSCI_INVALID_PARAMETERS), "no level 4");
    // Bit 0 of the entry point (Thumb) is refused for a 64-bit guest before anything else
    // about the target is looked at, as Xen 4.17 does; an unknown target comes first.
    let on_at = |target: u64, entry: u64| vpsci::call(&d, v0, PSCI_CPU_ON_64 as u64, target, entry, 0);
    assert_eq!(on_at(1, 0x4008_0001), ret(PSCI_INVALID_ADDRESS), "running target, odd entry");
    assert_eq!(on_at(0, 0x4008_0001), ret(PSCI_INVALID_ADDRESS), "ourselves, odd entry");
    assert_eq!(on_at(2, 0x4008_0001), ret(PSCI_INVALID_PARAMETERS), "no vCPU 2, odd entry");
    // 32-bit calls take 32-bit arguments
    assert_eq!(vpsci::call(&d, v0, PSCI_AFFINITY_INFO_32 as u64, 0xffff_ffff_0000_0001, 0, 0), ret(0));
    assert_eq!(vpsci::call(&d, v1, PSCI_CPU_OFF as u64, 0, 0, 0), PsciOutcome::Off);
    assert_eq!(info(1, 0), ret(1));
    assert_eq!(
        (v0.state(), info(1, 1)),
        (RunState::Off, ret(1)),
        "the whole cluster is off (vCPU 0 never started here)"
    );
    assert_eq!(on_at(1, 0x4008_0001), ret(PSCI_INVALID_ADDRESS), "an off vCPU is not started at an odd address");
    assert_eq!(v1.state(), RunState::Off);
    assert_eq!(vpsci::call(&d, v0, PSCI_SYSTEM_OFF as u64, 0, 0, 0), PsciOutcome::Shutdown(SHUTDOWN_POWEROFF));
    assert_eq!(vpsci::call(&d, v0, PSCI_SYSTEM_RESET as u64, 0, 0, 0), PsciOutcome::Shutdown(SHUTDOWN_REBOOT));
    assert_eq!(vpsci::call(&d, v0, PSCI_VERSION as u64, 0, 0, 0), ret(0x10001));
}

#[test]
fn start_places_vcpus_and_kicks_the_first() {
    let m = machine();
    let hv = &m.hv;
    let d = domain(hv, 1, &[1, 3]);
    assert_eq!(hv.sched.free_cpus(), (0..8).collect::<Vec<_>>());
    lifecycle::start(hv, &d, 0x4000_0000, 0x4800_0000).unwrap();
    assert_eq!(m.hw.take_kicks(), [1], "vCPU 0's CPU is kicked");
    assert_eq!(hv.sched.free_cpus(), [0, 2, 4, 5, 6, 7]);
    assert_eq!(d.vcpus[0].state(), RunState::Pending { entry: 0x4000_0000, context: 0x4800_0000 });
    assert_eq!(d.vcpus[1].state(), RunState::Off);
    // CPU 1 picks it up; CPU 3 has nothing to enter yet
    let (p, entry, x0) = hv.sched.next(1).expect("vCPU 0 starts on CPU 1");
    assert_eq!((p.domain.id, p.vcpu, entry, x0), (1, 0, 0x4000_0000, 0x4800_0000));
    assert!(hv.sched.next(1).is_none(), "started once");
    assert!(hv.sched.next(3).is_none());
    // a second domain wanting CPU 3 is refused, and nothing of it is placed
    let e = domain(hv, 2, &[4, 3]);
    assert_eq!(lifecycle::start(hv, &e, 0, 0), Err(PlaceError::CpuUnavailable { vcpu: 1, pcpu: 3 }));
    assert_eq!(hv.sched.free_cpus(), [0, 2, 4, 5, 6, 7]);
    assert!(m.hw.take_kicks().is_empty());
}

#[test]
fn the_hardware_domain_takes_the_machine_with_it() {
    let m = machine();
    let d0 = domain(&m.hv, 0, &[0]);
    let v = &d0.vcpus[0];
    let out = |r| lifecycle::shutdown(&m.hv, &d0, v, r);
    d0.console.write(b"unfinished", &*m.hv.hw);
    assert!(m.hw.take_lines().is_empty(), "no complete line yet");
    assert_eq!(m.hw.partial_line(0), "unfinished", "but dom0's output is out at once");
    assert_eq!(out(SHUTDOWN_POWEROFF), Shutdown::Machine(MachineAction::PowerOff { crashed: false }));
    assert_eq!(m.hw.take_lines(), [(0, "unfinished".to_string())], "its console is flushed first");
    assert_eq!(out(SHUTDOWN_CRASH), Shutdown::Machine(MachineAction::PowerOff { crashed: true }));
    assert_eq!(out(SHUTDOWN_REBOOT), Shutdown::Machine(MachineAction::Reboot));
    assert_eq!(out(SHUTDOWN_WATCHDOG), Shutdown::Machine(MachineAction::Reboot));
    assert!(d0.is_running() && !d0.is_shutting_down(), "the machine goes: nothing is torn down");
}

#[test]
fn a_domu_is_stopped_on_every_cpu_then_torn_down() {
    let m = machine();
    let hv = &m.hv;
    let d0 = domain(hv, 0, &[0]);
    let d = domain(hv, 1, &[1, 2, 3, 4]);
    lifecycle::start(hv, &d, 0x4000_0000, 0).unwrap();
    m.hw.take_kicks();
    let v = &d.vcpus;
    assert!(hv.sched.next(1).is_some());
    for (i, pcpu) in [(2, 3), (3, 4)] {
        assert_eq!(v[i as usize].power_on(0x5000, i, || false), Ok(()));
        if i == 2 {
            assert!(hv.sched.next(pcpu).is_some(), "vCPU 2 running, vCPU 3 still pending");
        }
    }
    // vCPU 1 off, 0 and 2 running, 3 pending; vCPU 0 asks for the shutdown
    let s = lifecycle::shutdown(hv, &d, &v[0], SHUTDOWN_POWEROFF);
    assert_eq!(s, Shutdown::Stop { kick: vec![3] }, "only the other running vCPU's CPU is kicked");
    assert_eq!([0, 1, 2, 3].map(|i| v[i].state()), [RunState::Off, RunState::Off, RunState::Stopping, RunState::Off]);
    assert!(!lifecycle::all_stopped(&d));
    // CPU_ON while it goes down is refused
    assert_eq!(vpsci::call(&d, &v[2], PSCI_CPU_ON_64 as u64, 1, 0x5000, 0), ret(PSCI_DENIED));
    // another vCPU asking too just stops
    assert_eq!(lifecycle::shutdown(hv, &d, &v[2], SHUTDOWN_CRASH), Shutdown::Joined);
    assert!(lifecycle::all_stopped(&d));
    let f = lifecycle::finish(hv, &d);
    assert_eq!(f, lifecycle::Finished { pages_left: 0, last: false }, "dom0 still runs");
    assert!(!d.is_running());
    assert_eq!(hv.sched.free_cpus(), (0..8).collect::<Vec<_>>(), "its CPUs are free again");
    // dom0 going the same way (it is not the hardware domain's shutdown path: teardown here)
    let f = lifecycle::finish(hv, &d0);
    assert!(f.last, "no running domain left: the machine powers off");
}

#[test]
fn a_stop_reaches_a_running_vcpu_at_its_next_trap() {
    let m = machine();
    let d = domain(&m.hv, 1, &[1, 2]);
    lifecycle::start(&m.hv, &d, 0x1000, 0).unwrap();
    let (v0, v1) = (&d.vcpus[0], &d.vcpus[1]);
    assert_eq!(v0.take_start(), Some((0x1000, 0)));
    assert!(!v0.stop_if_requested(), "a trap with no stop asked resumes the guest");
    assert_eq!(lifecycle::shutdown(&m.hv, &d, v1, SHUTDOWN_POWEROFF), Shutdown::Stop { kick: vec![1] });
    assert!(v0.stop_if_requested(), "the kicked CPU leaves its vCPU");
    assert!(lifecycle::all_stopped(&d));
}

#[test]
fn domus_start_on_free_cpus_in_module_order() {
    let m = HostMachine::new(65536, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    // dom0 holds CPUs 0 and 1
    let d0 = domain(hv, 0, &[0, 1]);
    lifecycle::start(hv, &d0, 0, 0).unwrap();
    let k = test_kernel_image();
    let mods = [
        granite::domu::Module { at: 0x4900_0000, bytes: &k, bootargs: "granite.vcpus=2 granite.mem=8M" },
        granite::domu::Module { at: 0x4a00_0000, bytes: b"not an Image", bootargs: "" },
        granite::domu::Module { at: 0x4b00_0000, bytes: &k, bootargs: "granite.vcpus=9 granite.mem=8M" },
        granite::domu::Module { at: 0x4c00_0000, bytes: &k, bootargs: "granite.mem=8M" },
    ];
    let gic = granite::domu::HostGic { version: granite::vgic::Version::V3, gicv: None };
    let started = granite::domu::start_all(hv, &mods, gic);
    assert_eq!(
        started,
        [
            granite::domu::Started { id: 1, pcpus: vec![2, 3] },
            // the bad module takes no id; domain 2 gets the 4 CPUs left, not 9
            granite::domu::Started { id: 2, pcpus: vec![4, 5, 6, 7] },
        ],
        "the last module finds no free CPU"
    );
    assert!(hv.domain(3).is_none());
    assert!(hv.sched.free_cpus().is_empty());
}

#[test]
fn xen_features_are_xens() {
    use granite::testing::{ARG, Guest};
    use xen_abi::XenFeatureInfo;
    let m = machine();
    let hv = &m.hv;
    let mut cfg = hv.domain_config(0);
    cfg.direct_map = true;
    let d0 = hv.create_domain(cfg).unwrap();
    let ram = hv.mm.alloc_domheap(0, 2).unwrap();
    d0.p2m.write(&hv.mm).insert(granite::types::Gfn(GUEST_RAM_GFN), 4, ram, granite::p2m::P2mType::RamRw).unwrap();
    let g0 = Guest { d: d0, ram, pages: 4 };
    let g1 = Guest::new(hv, 1, 2);
    let features = |g: &Guest, idx: u32| {
        g.put(hv, ARG, &XenFeatureInfo { submap_idx: idx, submap: 0x5a5a });
        let r = g.ret(hv, xen_abi::hypercall::XEN_VERSION, [xen_abi::version::XENVER_GET_FEATURES, ARG, 0, 0, 0]);
        (r, g.get::<XenFeatureInfo>(hv, ARG).submap)
    };
    // Xen 4.17 on Arm: dom0 (direct-mapped) 0x26805, a domU 0x16005.
    assert_eq!(features(&g0, 0), (0, 0x26805));
    assert_eq!(features(&g1, 0), (0, 0x16005));
    assert_eq!(features(&g1, 1), (-22, 0x5a5a), "only submap 0: -EINVAL, nothing written");
}
