//! Model checking with loom: every interleaving (up to a preemption bound) of two or three
//! threads doing add_to_physmap / remove_from_physmap / grant-table growth / teardown on the
//! same domain, and of PSCI CPU_ON racing CPU_OFF, AFFINITY_INFO and the domain's shutdown,
//! with the invariants checked at the end.
//!
//! Run with:  RUSTFLAGS="--cfg loom" cargo test --release --test loom
//! (see README: "Model checking"). Under loom, the core's locks and frame-table atomics are
//! loom's instrumented versions (src/sync.rs), so this explores the very code the image runs.
#![cfg(loom)]

use granite::audit::audit;
use granite::domain::Domain;
use granite::evtchn::{self, State};
use granite::gic::regs::offsets::{GICD_CTLR, GICD_ICENABLER, GICD_IROUTER, GICD_ISENABLER};
use granite::hv::Options;
use granite::hypercall::memory::{add_to_physmap_one, remove_from_physmap_one};
use granite::lifecycle::{self, Shutdown};
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::types::{Errno, Gfn};
use granite::vcpu::RunState;
use granite::vgic::{Config as VgicConfig, CpuDesc, Lr, Version as VgicVersion, Vgic};
use granite::vpsci::{self, PsciOutcome};
use loom::thread;
use std::sync::Arc;
use xen_abi::DOMID_XEN;
use xen_abi::memory::*;
use xen_abi::psci::*;
use xen_abi::sched::SHUTDOWN_POWEROFF;

const G1: Gfn = Gfn(GUEST_GNTTAB_GFN);
const G2: Gfn = Gfn(GUEST_GNTTAB_GFN + 1);

/// A model thread with room for the debug build's deeper stacks (the lock-order checker).
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    thread::Builder::new().stack_size(1 << 20).spawn(f).expect("spawn a model thread")
}

/// Explore every interleaving up to the preemption bound; at least `at_least` must exist (a
/// model that does not race explores one).
fn model(name: &str, at_least: usize, f: impl Fn() + Sync + Send + 'static) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    RUNS.store(0, std::sync::atomic::Ordering::SeqCst);
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    let f = Arc::new(f);
    b.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The model's main thread has a small stack: run the scenario on one with room.
        let f = f.clone();
        spawn(move || f()).join().expect("model thread panicked")
    });
    let n = RUNS.load(std::sync::atomic::Ordering::SeqCst);
    println!("{name}: {n} interleavings explored");
    assert!(n >= at_least, "{name}: only {n} interleavings — the model does not race");
}

/// A small machine with one domain whose P2M tables for the grant region already exist, so the
/// threads only contend on the locks and the frame table, not on table allocation.
fn world() -> (Arc<HostMachine>, Arc<Domain>) {
    let m = Arc::new(HostMachine::new(48, 40, Arc::new(NoTlb), Options { max_grant_frames: 3, ..Options::default() }));
    let d = m.hv.create_domain(m.hv.domain_config(1)).unwrap();
    {
        let mut w = d.p2m.write(&m.hv.mm);
        w.insert(G1, 1, granite::types::Mfn(0x1), granite::p2m::P2mType::MmioDirectDev).unwrap();
        w.remove(G1, 1).unwrap();
    }
    (m, d)
}

fn add(m: &HostMachine, d: &Arc<Domain>, space: u32, idx: u64, gfn: Gfn) -> Result<(), Errno> {
    add_to_physmap_one(&m.hv, d, d, space, DOMID_XEN, idx, gfn)
}

fn check(m: &HostMachine, d: &Domain) {
    let rep = audit(&m.hv);
    assert!(rep.is_clean(), "{:?}", rep.violations);
    // Frame 0 is mapped at most once and its stored GFN says where.
    let f0 = d.grant.read().frame(0).unwrap();
    let w = d.p2m.read(&m.hv.mm);
    let at: Vec<Gfn> = [G1, G2].into_iter().filter(|&g| w.lookup(g).is_some_and(|x| x.mfn == f0)).collect();
    assert!(at.len() <= 1, "frame 0 mapped twice: {at:?}");
    assert_eq!(m.hv.mm.frames.xenheap_gfn(f0, &w), at.first().copied());
}

#[test]
fn racing_maps_of_one_frame_at_two_gfns_and_a_remove() {
    model("map/map/remove", 100, || {
        let (m, d) = world();
        let (m1, d1) = (m.clone(), d.clone());
        let t1 = spawn(move || add(&m1, &d1, XENMAPSPACE_GRANT_TABLE, 0, G1));
        let (m2, d2) = (m.clone(), d.clone());
        let t2 = spawn(move || add(&m2, &d2, XENMAPSPACE_GRANT_TABLE, 0, G2));
        let r3 = remove_from_physmap_one(&m.hv, &d, G1);
        let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
        // Exactly one map wins while the frame is mapped; the loser sees -EBUSY — unless
        // the remove freed the frame in between, in which case both may have succeeded.
        assert!(r1.is_ok() || r2.is_ok());
        for r in [r1, r2] {
            assert!(r == Ok(()) || r == Err(Errno::EBUSY), "{r:?}");
        }
        assert!(r3 == Ok(()) || r3 == Err(Errno::ENOENT), "{r3:?}");
        if r1.is_ok() && r2.is_ok() {
            assert_eq!(r3, Ok(()), "both maps can only succeed around a successful remove");
        }
        check(&m, &d);
    });
}

#[test]
fn growth_races_with_mapping_new_frames() {
    model("grow/map/map", 100, || {
        let (m, d) = world();
        let (m1, d1) = (m.clone(), d.clone());
        let t1 = spawn(move || add(&m1, &d1, XENMAPSPACE_GRANT_TABLE, 2, G1));
        let (m2, d2) = (m.clone(), d.clone());
        let t2 = spawn(move || {
            let mut st = d2.grant.write();
            d2.grant.grow(&m2.hv.mm, &mut st, 2)
        });
        let r3 = add(&m, &d, XENMAPSPACE_GRANT_TABLE, 1, G2);
        assert_eq!(t1.join().unwrap(), Ok(()));
        assert_eq!(t2.join().unwrap(), Ok(()));
        assert_eq!(r3, Ok(()));
        assert_eq!(d.grant.read().nr_frames(), 3, "grown once to 3 frames, never more");
        let st = d.grant.read();
        let w = d.p2m.read(&m.hv.mm);
        assert_eq!(m.hv.mm.frames.xenheap_gfn(st.frame(2).unwrap(), &w), Some(G1));
        assert_eq!(m.hv.mm.frames.xenheap_gfn(st.frame(1).unwrap(), &w), Some(G2));
        drop((st, w));
        check(&m, &d);
    });
}

#[test]
fn shared_info_map_races_with_teardown() {
    model("map/map/teardown", 100, || {
        let (m, d) = world();
        let free0 = m.hv.mm.heap.free_frames();
        let (m1, d1) = (m.clone(), d.clone());
        let t1 = spawn(move || add(&m1, &d1, XENMAPSPACE_SHARED_INFO, 0, G1));
        let (m2, d2) = (m.clone(), d.clone());
        let t2 = spawn(move || add(&m2, &d2, XENMAPSPACE_GRANT_TABLE, 0, G2));
        m.hv.destroy_domain(&d);
        let (r1, r2) = (t1.join().unwrap(), t2.join().unwrap());
        for r in [r1, r2] {
            // Before the teardown: mapped (then relinquished). After: refused.
            assert!(matches!(r, Ok(()) | Err(Errno::ENOMEM) | Err(Errno::EINVAL)), "{r:?}");
        }
        // Whatever the order, nothing is left: no stale GFN was freed, every page is back.
        assert!(m.hv.domain_any_state(1).is_none());
        assert_eq!(m.hv.mm.audit.stale_gfn_frees.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert!(m.hv.mm.heap.free_frames() > free0);
        assert!(audit(&m.hv).is_clean());
    });
}

// ---- vCPUs: PSCI racing PSCI and the domain's shutdown ----------------------------------------

/// A domain with three vCPUs: vCPU 0 and 2 running, vCPU 1 off.
fn vcpu_world() -> (Arc<HostMachine>, Arc<Domain>) {
    let m = Arc::new(HostMachine::new(48, 40, Arc::new(NoTlb), Options::default()));
    let mut cfg = m.hv.domain_config(1);
    cfg.pcpus = vec![0, 1, 2];
    let d = m.hv.create_domain(cfg).unwrap();
    for i in [0, 2] {
        d.vcpus[i].power_on(0x1000, 0, || false).unwrap();
        assert!(d.vcpus[i].take_start().is_some());
    }
    (m, d)
}

fn cpu_on(d: &Domain, from: usize, target: u64) -> i64 {
    match vpsci::call(d, &d.vcpus[from], PSCI_CPU_ON_64 as u64, target, 0x2000, 7) {
        PsciOutcome::Return { x0, .. } => x0,
        o => panic!("CPU_ON gave {o:?}"),
    }
}

#[test]
fn cpu_on_races_the_domains_shutdown_and_affinity_info() {
    model("cpu_on/shutdown/affinity_info", 100, || {
        let (m, d) = vcpu_world();
        let d1 = d.clone();
        let t1 = spawn(move || cpu_on(&d1, 0, 1));
        let (m2, d2) = (m.clone(), d.clone());
        let t2 = spawn(move || lifecycle::shutdown(&m2.hv, &d2, &d2.vcpus[2], SHUTDOWN_POWEROFF));
        let info = match vpsci::call(&d, &d.vcpus[0], PSCI_AFFINITY_INFO_64 as u64, 1, 0, 0) {
            PsciOutcome::Return { x0, .. } => x0,
            o => panic!("{o:?}"),
        };
        let (on, stop) = (t1.join().unwrap(), t2.join().unwrap());
        // Started before the shutdown reached it, or refused: never left pending or running.
        assert!(on == PSCI_SUCCESS || on == PSCI_DENIED, "CPU_ON: {on}");
        assert_eq!(d.vcpus[1].state(), RunState::Off, "vCPU 1 outlived the shutdown (CPU_ON {on})");
        assert!(matches!(info, 1 | 2), "AFFINITY_INFO {info}: vCPU 1 is never on");
        // vCPU 0 (running) was asked to stop; vCPU 2 stopped itself.
        assert_eq!(stop, Shutdown::Stop { kick: vec![0] });
        assert_eq!(d.vcpus[0].state(), RunState::Stopping);
        assert!(d.vcpus[0].stop_if_requested());
        assert!(lifecycle::all_stopped(&d));
    });
}

#[test]
fn cpu_on_races_cpu_off_of_its_target() {
    model("cpu_on/cpu_off", 3, || {
        let (_m, d) = vcpu_world();
        let d1 = d.clone();
        let t1 = spawn(move || cpu_on(&d1, 0, 2));
        let off = vpsci::call(&d, &d.vcpus[2], PSCI_CPU_OFF as u64, 0, 0, 0);
        assert_eq!(off, PsciOutcome::Off);
        let on = t1.join().unwrap();
        // Either CPU_ON saw it still on, or it came after CPU_OFF and started it again.
        match on {
            PSCI_ALREADY_ON => assert_eq!(d.vcpus[2].state(), RunState::Off),
            PSCI_SUCCESS => assert_eq!(d.vcpus[2].state(), RunState::Pending { entry: 0x2000, context: 7 }),
            r => panic!("CPU_ON: {r}"),
        }
    });
}

#[test]
fn two_cpu_ons_of_one_vcpu_start_it_once() {
    model("cpu_on/cpu_on", 3, || {
        let (_m, d) = vcpu_world();
        let d1 = d.clone();
        let t1 = spawn(move || cpu_on(&d1, 0, 1));
        let r2 = cpu_on(&d, 2, 1);
        let r1 = t1.join().unwrap();
        let mut rs = [r1, r2];
        rs.sort();
        assert_eq!(rs, [PSCI_ON_PENDING, PSCI_SUCCESS]);
        assert_eq!(d.vcpus[1].take_start(), Some((0x2000, 7)));
    });
}

// ---- the virtual GIC: injection racing the guest's enable/disable, the owner's list
// registers, and a vCPU going offline ------------------------------------------------------------

const VGICD: u64 = 0x0800_0000;

fn vgic2() -> Arc<Vgic> {
    let cpus = (0..2).map(|i| CpuDesc { mpidr: granite::vcpu::vcpu_mpidr(i), pcpu: i as usize }).collect();
    let g = Vgic::new(
        VgicConfig {
            version: VgicVersion::V3,
            nr_spis: 32,
            dist_base: VGICD,
            redist: vec![(0x080a_0000, 0x4_0000)],
            id_bits: 15,
        },
        cpus,
    );
    let hw = FakeHw::default();
    g.vcpu_online(0);
    g.vcpu_online(1);
    g.mmio(&hw, 0, VGICD + GICD_CTLR, 4, true, 2).unwrap();
    g.mmio(&hw, 0, VGICD + GICD_ISENABLER + 4, 4, true, 1 << 8).unwrap(); // SPI 40
    Arc::new(g)
}

/// vCPU `v` runs once: its registers are folded and reloaded; the guest acknowledges and
/// completes what was loaded. Returns the INTIDs it took.
fn run_guest(g: &Vgic, v: usize, loaded: &mut Vec<Lr>) -> Vec<u32> {
    g.fold(v, loaded);
    let mut out = [Lr::default(); 4];
    let f = g.flush(v, &mut out);
    let took: Vec<u32> = out[..f.loaded].iter().filter(|l| l.pending).map(|l| l.vintid).collect();
    *loaded = out[..f.loaded].iter().map(|l| Lr { pending: false, active: false, ..*l }).collect();
    took
}

#[test]
fn injection_races_disable_enable_and_the_owners_list_registers() {
    model("vgic inject/disable-enable/flush", 50, || {
        let g = vgic2();
        let g1 = g.clone();
        let t1 = spawn(move || {
            g1.inject(0, 40);
        });
        let g2 = g.clone();
        let t2 = spawn(move || {
            let hw = FakeHw::default();
            g2.mmio(&hw, 1, VGICD + GICD_ICENABLER + 4, 4, true, 1 << 8).unwrap();
            g2.mmio(&hw, 1, VGICD + GICD_ISENABLER + 4, 4, true, 1 << 8).unwrap();
        });
        let mut loaded = Vec::new();
        let mut took = run_guest(&g, 0, &mut loaded);
        t1.join().unwrap();
        t2.join().unwrap();
        // No lost wake-up: if the guest has not taken it, vCPU 0 knows it must refresh.
        if took.is_empty() {
            assert!(g.is_dirty(0), "SPI 40 pending and enabled, vCPU 0 not told");
            took = run_guest(&g, 0, &mut loaded);
        }
        assert_eq!(took, [40], "delivered exactly once");
        run_guest(&g, 0, &mut loaded);
        assert!(g.list(0).is_empty() && g.check().is_empty(), "{:?}", g.check());
    });
}

// ---- event channels: send racing close, unmask, bind_vcpu and the peer's teardown ------------

/// Domains 1 and 2 (domain 2 with `vcpus2` vCPUs), an interdomain channel between them:
/// (d1, d2, d1's port, d2's port). The new local port of d1 was set pending on binding.
fn evtchn_world(vcpus2: usize) -> (Arc<HostMachine>, Arc<Domain>, Arc<Domain>, u32, u32) {
    let m = Arc::new(HostMachine::new(48, 40, Arc::new(NoTlb), Options::default()));
    let d1 = m.hv.create_domain(m.hv.domain_config(1)).unwrap();
    let mut cfg = m.hv.domain_config(2);
    cfg.pcpus = (0..vcpus2).collect();
    let d2 = m.hv.create_domain(cfg).unwrap();
    let env = m.hv.evtchn_env();
    let r = evtchn::alloc_unbound(&env, &*d2, true, 1).unwrap();
    let l = evtchn::bind_interdomain(&env, &*d1, &*d2, r).unwrap();
    (m, d1, d2, l, r)
}

fn port_state(d: &Domain, port: u32) -> Option<State> {
    d.evtchn.snapshot().port(port).map(|c| c.state)
}

fn upcalls(d: &Domain, v: usize) -> u64 {
    d.vcpus[v].upcalls.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn send_races_both_ends_closing() {
    model("send/close/close", 20, || {
        let (m, d1, d2, l, r) = evtchn_world(1);
        let (m1, s1) = (m.clone(), d1.clone());
        let sender = spawn(move || evtchn::send(&m1.hv.evtchn_env(), &*s1, l));
        let (m2, c2) = (m.clone(), d2.clone());
        let closer = spawn(move || evtchn::close(&m2.hv.evtchn_env(), &*c2, r));
        let c1 = evtchn::close(&m.hv.evtchn_env(), &*d1, l);
        let (s, c2) = (sender.join().unwrap(), closer.join().unwrap());
        // Each close finds its port bound or already unbound by the other: both succeed.
        assert_eq!((c1, c2), (Ok(()), Ok(())));
        // The send came before d1's close (delivered, or dropped on a port d2 had unbound), or
        // after it (the port was free).
        assert!(s == Ok(()) || s == Err(granite::types::Errno::EINVAL), "{s:?}");
        assert_eq!((port_state(&d1, l), port_state(&d2, r)), (None, None), "both free");
        assert!(!evtchn::port_bits(&m.hv.mm, &*d2, r).0, "a freed port is not pending");
        assert!(audit(&m.hv).is_clean());
    });
}

#[test]
fn send_races_close_of_its_own_port() {
    model("send/close", 3, || {
        let (m, d1, d2, l, r) = evtchn_world(1);
        let (m1, s1) = (m.clone(), d1.clone());
        let sender = spawn(move || evtchn::send(&m1.hv.evtchn_env(), &*s1, l));
        let c = evtchn::close(&m.hv.evtchn_env(), &*d1, l);
        let s = sender.join().unwrap();
        assert_eq!(c, Ok(()));
        assert_eq!(port_state(&d2, r), Some(State::Unbound { remote: 1 }));
        // Before the close: delivered, and it stays pending on the now unbound port (as in
        // Xen). After: the port was free.
        let pending = evtchn::port_bits(&m.hv.mm, &*d2, r).0;
        match s {
            Ok(()) => assert!(pending, "a successful send is seen"),
            Err(e) => assert!(e == granite::types::Errno::EINVAL && !pending, "{e:?}, pending {pending}"),
        }
        assert_eq!(upcalls(&d2, 0), pending as u64);
        assert!(audit(&m.hv).is_clean());
    });
}

#[test]
fn retargeting_races_injection_and_the_old_target_going_offline() {
    model("vgic inject/retarget/offline", 50, || {
        let g = vgic2();
        let hw = FakeHw::default();
        let router = VGICD + GICD_IROUTER + 8 * 8;
        g.mmio(&hw, 0, router, 8, true, 1).unwrap(); // SPI 40 to vCPU 1
        let g1 = g.clone();
        let t1 = spawn(move || {
            g1.inject(0, 40);
        });
        let g2 = g.clone();
        let t2 = spawn(move || {
            let hw = FakeHw::default();
            g2.mmio(&hw, 0, router, 8, true, 0).unwrap(); // Linux moves it to vCPU 0
        });
        let g3 = g.clone();
        let t3 = spawn(move || {
            g3.vcpu_offline(1);
        });
        t1.join().unwrap();
        t2.join().unwrap();
        t3.join().unwrap();
        // vCPU 1 is off for good: SPI 40 must reach vCPU 0, whatever the order.
        let mut loaded = Vec::new();
        assert_eq!(run_guest(&g, 0, &mut loaded), [40], "stuck on the offline vCPU: {:?}", g.list(1));
        assert!(g.check().is_empty(), "{:?}", g.check());
    });
}

#[test]
fn send_races_unmask_of_the_receiving_port() {
    model("send/unmask", 3, || {
        let (m, d1, d2, l, r) = evtchn_world(1);
        // The guest masked its port.
        let mask = m.hv.mm.phys.atomic_u64(d2.shared_info.addr() + 560);
        mask.fetch_or(1 << r, std::sync::atomic::Ordering::SeqCst);
        let (m1, s1) = (m.clone(), d1.clone());
        let sender = spawn(move || evtchn::send(&m1.hv.evtchn_env(), &*s1, l));
        let u = evtchn::unmask(&m.hv.evtchn_env(), &*d2, r);
        assert_eq!((sender.join().unwrap(), u), (Ok(()), Ok(())));
        // Whichever came first, the event is pending, unmasked, and signalled exactly once.
        assert_eq!(evtchn::port_bits(&m.hv.mm, &*d2, r), (true, false));
        assert_eq!(upcalls(&d2, 0), 1);
        let sel = m.hv.mm.phys.atomic_u64(d2.shared_info.addr() + 8).load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(sel, 1, "the selector bit of word 0");
    });
}

#[test]
fn send_races_bind_vcpu_of_the_receiving_port() {
    model("send/bind_vcpu", 3, || {
        let (m, d1, d2, l, r) = evtchn_world(2);
        let (m1, s1) = (m.clone(), d1.clone());
        let sender = spawn(move || evtchn::send(&m1.hv.evtchn_env(), &*s1, l));
        let b = evtchn::bind_vcpu(&*d2, r, 1);
        assert_eq!((sender.join().unwrap(), b), (Ok(()), Ok(())));
        // Signalled once, to the vCPU the port was bound to when the event came.
        assert_eq!(upcalls(&d2, 0) + upcalls(&d2, 1), 1);
        assert_eq!(d2.evtchn.snapshot().port(r).map(|c| c.notify), Some(1));
        assert!(audit(&m.hv).is_clean());
    });
}

#[test]
fn send_races_the_receivers_teardown() {
    model("send/teardown", 3, || {
        let (m, d1, d2, l, _r) = evtchn_world(1);
        let (m1, s1) = (m.clone(), d1.clone());
        let sender = spawn(move || evtchn::send(&m1.hv.evtchn_env(), &*s1, l));
        m.hv.destroy_domain(&d2);
        // Delivered before the teardown reached the channel, or dropped on the unbound port.
        assert_eq!(sender.join().unwrap(), Ok(()));
        assert_eq!(port_state(&d1, l), Some(State::Unbound { remote: 2 }));
        assert!(m.hv.domain_any_state(2).is_none(), "the receiver is gone entirely");
        assert_eq!(m.hv.mm.audit.stale_gfn_frees.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert!(audit(&m.hv).is_clean());
    });
}
