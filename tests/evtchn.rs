//! Event channels (2-level and FIFO), the vCPU ABI (vcpu_info registration, runstate areas,
//! vm_assist) and platform_op settime64, driven through the real hypercall dispatch by
//! simulated guests, with Xen 4.17's answers; and the table-driven bad-input test: each
//! argument class gets Xen's errno and leaves the fingerprint of the whole machine unchanged.

use granite::audit::audit;
use granite::evtchn::{Chan, State, VcpuInfoAt};
use granite::hv::Options;
use granite::hypercall::{self, Call, IdentityVa, Outcome};
use granite::testing::*;
use granite::tlb::NoTlb;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use xen_abi::errno::*;
use xen_abi::evtchn::*;
use xen_abi::hypercall as hc;
use xen_abi::platform::*;
use xen_abi::vcpuop::*;
use xen_abi::vmassist::*;
use xen_abi::*;

fn machine() -> HostMachine {
    HostMachine::new(8192, 40, Arc::new(NoTlb), Options::default())
}

fn clean(m: &HostMachine) {
    let r = audit(&m.hv);
    assert!(r.is_clean(), "audit: {:#?}", r.violations);
}

fn state(g: &Guest, port: u32) -> Option<State> {
    g.d.evtchn.snapshot().port(port).map(|c: Chan| c.state)
}

const fn gpa(page: u64) -> u64 {
    (GUEST_RAM_GFN + page) << 12
}

/// Linux's `/dev/xen/evtchn` loopback (linux-dom0 §7.4): an unbound port, a local port bound
/// to it (pending at once), sends both ways; one upcall per 0 → 1 edge of
/// `evtchn_upcall_pending`, and the events where the guest looks for them.
#[test]
fn loopback_channel_in_one_domain_two_level() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 0, 4);
    let p = g.alloc_unbound(hv, DOMID_SELF, 0);
    assert_eq!(p, 1, "the lowest port; port 0 is reserved");
    assert_eq!(state(&g, 1), Some(State::Unbound { remote: 0 }));
    let q = g.bind_interdomain(hv, DOMID_SELF, 1);
    assert_eq!(q, 2);
    assert_eq!(state(&g, 1), Some(State::Interdomain { remote: 0, port: 2 }));
    assert_eq!(state(&g, 2), Some(State::Interdomain { remote: 0, port: 1 }));
    assert_eq!(g.port_bits(hv, 2), (true, false), "the new local port is pending at once");
    assert_eq!(g.upcalls(0), 1);
    assert_eq!(m.hw.take_kicks(), vec![0], "the vCPU's CPU is kicked");
    let ppi = g.d.vgic.irq_state(0, g.d.evtchn_ppi).unwrap();
    assert!(ppi.pending && ppi.queued_on == Some(0), "the event-channel PPI waits for vCPU 0: {ppi:?}");
    let vi = g.vcpu_info(hv, 0).unwrap();
    assert_eq!((vi.evtchn_upcall_pending, vi.evtchn_pending_sel), (1, 1));
    // A second event while the upcall is still pending: no new upcall.
    assert_eq!(g.evtchn_send(hv, 2), 0);
    assert_eq!(g.port_bits(hv, 1), (true, false));
    assert_eq!(g.upcalls(0), 1, "evtchn_upcall_pending was already set");
    assert!(g.d.evtchn.upcall_pending(&hv.mm, g.d.shared_info, 0));
    assert_eq!(g.consume_2l(hv, 0), vec![1, 2]);
    assert!(!g.d.evtchn.upcall_pending(&hv.mm, g.d.shared_info, 0), "the guest cleared it");
    // After the guest handled it, the next event raises the upcall again.
    assert_eq!(g.evtchn_send(hv, 1), 0);
    assert_eq!(g.upcalls(0), 2);
    assert_eq!(g.consume_2l(hv, 0), vec![2]);
    // Closing one end leaves the other unbound, waiting for this domain again.
    assert_eq!(g.evtchn_close(hv, 2), 0);
    assert_eq!(state(&g, 1), Some(State::Unbound { remote: 0 }));
    assert_eq!(g.evtchn_send(hv, 1), 0, "an unbound port drops the event");
    assert_eq!(g.evtchn_send(hv, 2), -EINVAL, "a closed port");
    assert_eq!(g.evtchn_close(hv, 2), -EINVAL);
    assert_eq!(g.upcalls(0), 2);
    clean(&m);
}

#[test]
fn interdomain_channel_between_two_domains() {
    let m = machine();
    let hv = &m.hv;
    let (d0, d1) = (Guest::new(hv, 0, 4), Guest::new(hv, 1, 4));
    // dom0 allocates in domU's table on its behalf (xenstore style): remote DOMID_SELF = dom0.
    let p = d0.alloc_unbound(hv, 1, DOMID_SELF);
    assert_eq!(state(&d1, p as u32), Some(State::Unbound { remote: 0 }));
    assert_eq!(d1.alloc_unbound(hv, 0, 1), -EPERM, "a domU may not allocate in dom0's table");
    let q = d0.bind_interdomain(hv, 1, p as u32);
    assert_eq!(q, 1);
    assert_eq!(d0.bind_interdomain(hv, 1, p as u32), -EINVAL, "already bound");
    let (r, s) = d1.evtchn_status(hv, DOMID_SELF, p as u32);
    assert_eq!((r, s.status, s.remote_dom(), s.u[1], s.vcpu), (0, EVTCHNSTAT_INTERDOMAIN, 0, 1, 0));
    let (r, s) = d0.evtchn_status(hv, 1, p as u32);
    assert_eq!((r, s.status), (0, EVTCHNSTAT_INTERDOMAIN), "dom0 may look at domU's ports");
    assert_eq!(d1.evtchn_status(hv, 0, 1).0, -EPERM, "a domU may not look at dom0's");
    assert_eq!(d0.upcalls(0), 1, "dom0's new port was set pending");
    assert_eq!(d1.upcalls(0), 0);
    assert_eq!(d0.evtchn_send(hv, q as u32), 0);
    assert_eq!(d1.port_bits(hv, p as u32), (true, false));
    assert_eq!(d1.upcalls(0), 1);
    assert_eq!(d1.evtchn_send(hv, p as u32), 0);
    assert_eq!(d0.upcalls(0), 1, "dom0 did not handle its upcall yet");
    // domU closes its end: dom0's port is unbound again, waiting for domU.
    assert_eq!(d1.evtchn_close(hv, p as u32), 0);
    assert_eq!(state(&d0, q as u32), Some(State::Unbound { remote: 1 }));
    assert!(!d1.port_bits(hv, p as u32).0, "a freed port's pending bit is cleared");
    assert_eq!(d0.evtchn_send(hv, q as u32), 0, "dropped");
    // domU can bind to it again.
    let p2 = d1.bind_interdomain(hv, 0, q as u32);
    assert_eq!(p2, p);
    assert_eq!(state(&d0, q as u32), Some(State::Interdomain { remote: 1, port: p as u32 }));
    clean(&m);
}

#[test]
fn teardown_unbinds_every_peer_and_releases_every_page() {
    let m = machine();
    let hv = &m.hv;
    let free0 = hv.mm.heap.free_frames();
    let d0 = Guest::new(hv, 0, 4);
    let d1 = Guest::with_vcpus(hv, 1, 4, 2);
    let p = d1.alloc_unbound(hv, DOMID_SELF, 0);
    let q = d0.bind_interdomain(hv, 1, p as u32);
    let r = d0.alloc_unbound(hv, DOMID_SELF, 1);
    let s = d1.bind_interdomain(hv, 0, r as u32);
    assert!(p > 0 && q > 0 && r > 0 && s > 0);
    assert_eq!(d1.register_vcpu_info(hv, 0, 0, GUEST_RAM_GFN + 5, 64), 0);
    assert_eq!(d1.init_control(hv, 0, GUEST_RAM_GFN + 6, 0).0, 0);
    assert_eq!(d1.expand_array(hv, GUEST_RAM_GFN + 7), 0);
    assert_eq!(d1.d.evtchn.snapshot().pages.len(), 3);
    clean(&m);
    hv.destroy_domain(&d1.d);
    assert!(hv.domain_any_state(1).is_none(), "every page of the domU came back: finalised");
    assert_eq!(state(&d0, q as u32), Some(State::Unbound { remote: 1 }));
    assert_eq!(state(&d0, r as u32), Some(State::Unbound { remote: 1 }));
    assert_eq!(d0.evtchn_send(hv, q as u32), 0);
    clean(&m);
    hv.destroy_domain(&d0.d);
    assert_eq!(hv.mm.heap.free_frames(), free0, "every page back");
}

#[test]
fn virqs_global_and_per_vcpu() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 0, 4, 2);
    assert_eq!(g.bind_virq(hv, VIRQ_CONSOLE, 1), -EINVAL, "a global VIRQ on vCPU 1");
    assert_eq!(g.bind_virq(hv, NR_VIRQS, 0), -EINVAL);
    assert_eq!(g.bind_virq(hv, u32::MAX, 0), -EINVAL);
    assert_eq!(g.bind_virq(hv, VIRQ_TIMER, 2), -ENOENT);
    let c = g.bind_virq(hv, VIRQ_CONSOLE, 0);
    assert_eq!(g.bind_virq(hv, VIRQ_CONSOLE, 0), -EEXIST);
    let t1 = g.bind_virq(hv, VIRQ_TIMER, 1);
    let t0 = g.bind_virq(hv, VIRQ_TIMER, 0);
    assert_eq!((c, t1, t0), (1, 2, 3));
    let (r, s) = g.evtchn_status(hv, DOMID_SELF, 2);
    assert_eq!((r, s.status, s.u[0], s.vcpu), (0, EVTCHNSTAT_VIRQ, VIRQ_TIMER, 1));
    assert_eq!(g.evtchn_send(hv, 1), -EINVAL, "a VIRQ port cannot be sent on");
    // The hypervisor raises them.
    hv.send_global_virq(VIRQ_CONSOLE);
    assert_eq!((g.upcalls(0), g.port_bits(hv, 1)), (1, (true, false)));
    hv.send_virq(&g.d, VIRQ_TIMER, 1);
    assert_eq!(g.vcpu_info(hv, 1), None, "vCPU 1's vcpu_info is the dummy until it registers one");
    assert_eq!(g.upcalls(1), 1, "the dummy's flag went 0 -> 1: Xen injects the upcall all the same");
    hv.send_virq(&g.d, VIRQ_TIMER, 1);
    assert_eq!(g.upcalls(1), 1);
    assert_eq!(g.register_vcpu_info(hv, 1, 1, GUEST_RAM_GFN + 5, 0), 0);
    assert_eq!(g.upcalls(1), 2, "registering marks events pending in the new (zeroed) vcpu_info");
    assert_eq!(g.vcpu_info(hv, 1).unwrap().evtchn_pending_sel, !0);
    // A global VIRQ moves with bind_vcpu; a per-vCPU one does not.
    assert_eq!(g.bind_vcpu(hv, 1, 1), 0);
    assert_eq!(g.bind_vcpu(hv, 2, 0), -EINVAL);
    g.consume_2l(hv, 1);
    g.clear_2l_pending(hv, 1);
    hv.send_virq(&g.d, VIRQ_CONSOLE, 0);
    assert_eq!(g.upcalls(1), 3, "delivered to its notify vCPU");
    assert_eq!(g.consume_2l(hv, 1), vec![1]);
    hv.send_virq(&g.d, VIRQ_TIMER, 0);
    assert_eq!(g.consume_2l(hv, 0), vec![3], "per-vCPU VIRQ on vCPU 0");
    // Closing a VIRQ port lets it be bound again.
    assert_eq!(g.evtchn_close(hv, 1), 0);
    assert_eq!(g.bind_virq(hv, VIRQ_CONSOLE, 0), 1);
    clean(&m);
}

#[test]
fn ipis_masks_unmask_and_bind_vcpu() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 1, 4, 2);
    assert_eq!(g.register_vcpu_info(hv, 1, 1, GUEST_RAM_GFN + 5, 0), 0);
    g.consume_2l(hv, 1);
    g.consume_2l(hv, 0);
    let base = (g.upcalls(0), g.upcalls(1));
    assert_eq!(g.bind_ipi(hv, 2), -ENOENT);
    let ipi = g.bind_ipi(hv, 1) as u32;
    assert_eq!(g.evtchn_send(hv, ipi), 0);
    assert_eq!((g.upcalls(0), g.upcalls(1)), (base.0, base.1 + 1), "an IPI goes to its vCPU");
    assert_eq!(g.consume_2l(hv, 1), vec![ipi]);
    assert_eq!(g.bind_vcpu(hv, ipi, 0), -EINVAL, "IPI ports stay on their vCPU");
    // Masked: pending, but no selector bit and no upcall.
    g.set_2l_mask(hv, ipi, true);
    assert_eq!(g.evtchn_send(hv, ipi), 0);
    assert_eq!(g.port_bits(hv, ipi), (true, true));
    assert_eq!(g.vcpu_info(hv, 1).unwrap().evtchn_pending_sel, 0);
    assert_eq!(g.upcalls(1), base.1 + 1);
    // EVTCHNOP_unmask: clears the mask, and since it is pending, signals it.
    assert_eq!(g.evtchn_unmask(hv, ipi), 0);
    assert_eq!(g.port_bits(hv, ipi), (true, false));
    assert_eq!(g.upcalls(1), base.1 + 2);
    g.consume_2l(hv, 1);
    // Unmask of a port whose mask the guest already cleared does nothing (Xen's 2-level).
    assert_eq!(g.evtchn_send(hv, ipi), 0);
    g.consume_2l(hv, 1);
    assert_eq!(g.evtchn_unmask(hv, ipi), 0);
    assert_eq!(g.upcalls(1), base.1 + 3);
    assert_eq!(g.evtchn_unmask(hv, 63), 0, "a free but valid port: nothing to do");
    assert_eq!(g.evtchn_unmask(hv, 64), -EINVAL, "beyond the allocated ports");
    // bind_vcpu moves an unbound or interdomain port.
    let u = g.alloc_unbound(hv, DOMID_SELF, DOMID_SELF) as u32;
    assert_eq!(g.bind_vcpu(hv, u, 1), 0);
    assert_eq!(g.bind_vcpu(hv, u, 2), -ENOENT);
    assert_eq!(g.bind_vcpu(hv, 63, 0), -EINVAL);
    let l = g.bind_interdomain(hv, DOMID_SELF, u) as u32;
    assert_eq!(g.consume_2l(hv, 0), vec![l], "a new local port is pending on vCPU 0");
    assert_eq!(g.evtchn_send(hv, l), 0);
    assert_eq!(g.consume_2l(hv, 1), vec![u], "signalled to the vCPU it was bound to");
    clean(&m);
}

#[test]
fn ports_come_in_buckets_up_to_the_domains_limit() {
    let m = machine();
    let hv = &m.hv;
    let (d0, d1) = (Guest::new(hv, 0, 4), Guest::new(hv, 1, 4));
    assert_eq!(d1.evtchn_status(hv, DOMID_SELF, 0).1.status, EVTCHNSTAT_CLOSED, "port 0 is reserved");
    assert_eq!(d1.evtchn_status(hv, DOMID_SELF, 63).0, 0, "a valid free port is closed");
    assert_eq!(d1.evtchn_status(hv, DOMID_SELF, 64).0, -EINVAL, "not yet allocated");
    for i in 1..=1023 {
        assert_eq!(d1.bind_ipi(hv, 0), i);
    }
    assert_eq!(d1.d.evtchn.snapshot().valid, 1024);
    assert_eq!(d1.bind_ipi(hv, 0), -ENOSPC, "a domU may have ports up to 1023");
    assert_eq!(d1.alloc_unbound(hv, DOMID_SELF, 0), -ENOSPC);
    assert_eq!(d0.bind_interdomain(hv, 1, 5), -EINVAL);
    assert_eq!(d1.bind_interdomain(hv, 0, 5), -ENOSPC, "no local port comes before a bad remote port");
    for i in 1..=4095 {
        assert_eq!(d0.bind_ipi(hv, 0), i);
    }
    assert_eq!(d0.bind_ipi(hv, 0), -ENOSPC, "dom0 is limited by the 2-level ABI's 4096 ports");
    assert_eq!(d1.evtchn_close(hv, 700), 0);
    assert_eq!(d1.bind_ipi(hv, 0), 700, "the lowest free port is reused");
    clean(&m);
}

/// As in Xen, a bucket allocated by an operation that then fails stays: its ports are valid.
#[test]
fn a_failed_bind_keeps_the_bucket_it_allocated() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 4);
    for i in 1..64 {
        assert_eq!(g.bind_ipi(hv, 0), i);
    }
    assert_eq!(g.evtchn_status(hv, DOMID_SELF, 64).0, -EINVAL);
    let (r, _) = g.evtchn_op(hv, EVTCHNOP_BIND_PIRQ, &EvtchnBindPirq { pirq: 5, flags: 0, port: 0 });
    assert_eq!(r, -ENOMEM, "Arm has no struct pirq to give");
    let (r, s) = g.evtchn_status(hv, DOMID_SELF, 64);
    assert_eq!((r, s.status), (0, EVTCHNSTAT_CLOSED), "port 64 exists now, free");
    assert_eq!(g.d.evtchn.snapshot().active, 63);
    clean(&m);
}

#[test]
fn reset_closes_everything_and_one_runs_at_a_time() {
    let m = machine();
    let hv = &m.hv;
    let (d0, d1) = (Guest::new(hv, 0, 4), Guest::new(hv, 1, 4));
    let p = d1.alloc_unbound(hv, DOMID_SELF, 0) as u32;
    let q = d0.bind_interdomain(hv, 1, p) as u32;
    d1.bind_virq(hv, VIRQ_CONSOLE, 0);
    d1.bind_ipi(hv, 0);
    assert_eq!(d0.evtchn_reset(hv, 1), -EINVAL, "dom0 may only reset a domain it paused");
    assert_eq!(d1.evtchn_reset(hv, 0), -EPERM);
    assert_eq!(d1.evtchn_reset(hv, 77), -ESRCH);
    let (r, _) = d1.evtchn_op(hv, EVTCHNOP_RESET_CONT, &EvtchnReset { dom: DOMID_SELF });
    assert_eq!(r, -EBUSY, "nothing to continue");
    assert_eq!(d1.evtchn_reset(hv, DOMID_SELF), 0);
    let s = d1.d.evtchn.snapshot();
    assert_eq!((s.active, s.ports.len(), s.virqs.len()), (0, 0, 0));
    assert_eq!(state(&d0, q), Some(State::Unbound { remote: 1 }));
    assert_eq!(d1.bind_virq(hv, VIRQ_CONSOLE, 0), 1, "VIRQs can be bound again");
    clean(&m);
}

#[test]
fn reset_of_many_ports_continues_and_switches_back_to_two_level() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 0, 4);
    assert_eq!(g.init_control(hv, 0, GUEST_RAM_GFN + 4, 0), (0, 17));
    for i in 0..5 {
        assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + 5 + i), 0);
    }
    for i in 1..=5000 {
        assert_eq!(g.bind_ipi(hv, 0), i, "FIFO: beyond the 2-level limit");
    }
    // One trap closes some and asks to be continued.
    g.put(hv, ARG, &EvtchnReset { dom: DOMID_SELF });
    let call = Call::new(hv, &g.d, 0, &IdentityVa);
    let mut args = [EVTCHNOP_RESET as u64, ARG, 0, 0, 0];
    assert_eq!(hypercall::hypercall(&call, hc::EVENT_CHANNEL_OP, &mut args), Outcome::Continue);
    assert_eq!(args[0], EVTCHNOP_RESET_CONT as u64);
    let mid = g.d.evtchn.snapshot();
    assert!(mid.active > 0 && mid.active < 5000 && mid.next_reset > 0 && mid.fifo);
    assert_eq!(g.evtchn_reset(hv, DOMID_SELF), -EBUSY, "a reset is in progress");
    loop {
        match hypercall::hypercall(&call, hc::EVENT_CHANNEL_OP, &mut args) {
            Outcome::Continue => continue,
            o => {
                assert_eq!(o, Outcome::Return(0));
                break;
            }
        }
    }
    let s = g.d.evtchn.snapshot();
    assert_eq!((s.active, s.fifo, s.next_reset, s.pages.len()), (0, false, 0, 0), "back to 2-level, pages let go");
    assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + 9), -EOPNOTSUPP);
    clean(&m);
}

/// Linux's FIFO bring-up: init_control on vCPU 0, the first event-array page, then each
/// secondary's control block; events linked onto queues, heads and ready bits, one upcall per
/// ready-bit edge.
#[test]
fn fifo_queues_link_events_and_raise_the_upcall_per_ready_edge() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 1, 4, 2);
    let p = g.bind_ipi(hv, 0) as u32; // bound in 2-level mode, before the switch
    assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + 6), -EOPNOTSUPP, "not FIFO yet");
    assert_eq!(g.set_priority(hv, p, 3), -ENOSYS, "2-level has no priorities");
    assert_eq!(g.init_control(hv, 0, GUEST_RAM_GFN + 4, 4096 - 72), (0, 17));
    assert_eq!(g.init_control(hv, 0, GUEST_RAM_GFN + 4, 0), (-EINVAL, 0), "vCPU 0 has one already");
    assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + 6), 0);
    assert_eq!(g.init_control(hv, 1, GUEST_RAM_GFN + 5, 8), (0, 17));
    let f = FifoView { g: &g, control: vec![gpa(4) + 4096 - 72, gpa(5) + 8], array: vec![gpa(6)] };
    assert_eq!(g.d.evtchn.snapshot().port(p).unwrap().priority, 7, "the default priority from the switch on");
    let q = g.bind_ipi(hv, 0) as u32;
    assert_eq!(g.evtchn_send(hv, p), 0);
    let w = f.word(hv, p).load(SeqCst);
    assert_eq!(w, 1 << EVTCHN_FIFO_PENDING | 1 << EVTCHN_FIFO_LINKED);
    let cb = f.control_block(hv, 0);
    assert_eq!((cb.ready, cb.head[7]), (1 << 7, p));
    assert_eq!(g.upcalls(0), 1);
    assert_eq!(g.evtchn_send(hv, q), 0);
    assert_eq!(f.word(hv, p).load(SeqCst) & EVTCHN_FIFO_LINK_MASK, q, "linked after p");
    assert_eq!(g.upcalls(0), 1, "the queue was not empty");
    // Another priority: its own queue, its own ready bit.
    assert_eq!(g.set_priority(hv, q, 16), -EINVAL);
    assert_eq!(g.set_priority(hv, 63, 3), -EACCES, "a free port");
    assert_eq!(f.consume(hv, 0), vec![p, q]);
    assert_eq!(g.set_priority(hv, q, 2), 0);
    assert_eq!(g.evtchn_send(hv, q), 0);
    assert_eq!(f.control_block(hv, 0).head[2], q);
    assert_eq!(g.upcalls(0), 2);
    assert_eq!(f.consume(hv, 0), vec![q]);
    // A masked event is pending but not linked; unmask links it.
    f.word(hv, p).fetch_or(1 << EVTCHN_FIFO_MASKED, SeqCst);
    assert_eq!(g.evtchn_send(hv, p), 0);
    assert_eq!(f.word(hv, p).load(SeqCst), 1 << EVTCHN_FIFO_PENDING | 1 << EVTCHN_FIFO_MASKED);
    assert_eq!(g.upcalls(0), 2);
    assert_eq!(g.evtchn_unmask(hv, p), 0);
    assert_eq!(f.word(hv, p).load(SeqCst), 1 << EVTCHN_FIFO_PENDING | 1 << EVTCHN_FIFO_LINKED);
    assert_eq!(g.upcalls(0), 3);
    // A port still linked on a queue is not reused until the guest unlinks it.
    assert_eq!(g.evtchn_close(hv, p), 0);
    let r = g.bind_ipi(hv, 1) as u32;
    assert_ne!(r, p, "p is busy");
    assert_eq!(f.consume(hv, 0), vec![], "closing cleared its PENDING bit");
    assert_eq!(g.bind_ipi(hv, 1) as u32, p, "unlinked: free again");
    // vCPU 1's queues.
    assert_eq!(g.evtchn_send(hv, r), 0);
    assert_eq!(f.control_block(hv, 1).head[7], r);
    assert_eq!(g.upcalls(1), 1, "vCPU 1's dummy vcpu_info went 0 -> 1");
    clean(&m);
}

#[test]
fn fifo_events_wait_for_their_page_and_vcpus_without_a_control_block_drop_theirs() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 0, 4, 2);
    assert_eq!(g.init_control(hv, 0, GUEST_RAM_GFN + 4, 0).0, 0);
    let f = FifoView { g: &g, control: vec![gpa(4)], array: vec![gpa(6), gpa(7)] };
    let mut ports = vec![];
    for _ in 0..1030 {
        ports.push(g.bind_ipi(hv, 0) as u32);
    }
    let (low, high) = (ports[0], ports[1029]);
    assert_eq!(high, 1030);
    assert_eq!(g.evtchn_send(hv, low), 0, "no event word yet");
    assert_eq!(g.evtchn_send(hv, high), 0);
    assert_eq!(g.upcalls(0), 0);
    assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + 6), 0);
    assert_eq!(g.upcalls(0), 1, "raised when its page arrived");
    assert_eq!(f.word(hv, low).load(SeqCst) >> 31, 1);
    assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + 7), 0);
    assert_eq!(f.consume(hv, 0), vec![low, high]);
    // vCPU 1 never registered a control block: its events are dropped (XSA-107).
    let v1 = g.bind_ipi(hv, 1) as u32;
    assert_eq!(g.evtchn_send(hv, v1), 0);
    assert_eq!(f.word(hv, v1).load(SeqCst), 0);
    assert_eq!(g.upcalls(1), 0);
    // The bad guest pages.
    assert_eq!(g.expand_array(hv, 0x1234), -EINVAL);
    assert_eq!(g.init_control(hv, 1, GUEST_GNTTAB_GFN + 40, 0).0, -EINVAL);
    clean(&m);
}

/// VCPUOP_register_vcpu_info as Xen's map_vcpu_info: bounds, once only, from the vCPU itself
/// or for an offline one; the old contents copied, every selector bit set, one upcall.
#[test]
fn vcpu_info_registration() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 0, 4, 2);
    let v1 = &g.d.vcpus[1];
    v1.power_on(0x4000_0000, 0, || false).unwrap();
    v1.take_start();
    // Something in vCPU 0's legacy vcpu_info to see copied.
    let si = g.d.shared_info.addr();
    hv.mm.phys.write(si + 16, &[7u8; 32]);
    assert_eq!(g.register_vcpu_info(hv, 0, 0, GUEST_RAM_GFN + 5, 4096 - 40), -ENXIO);
    assert_eq!(g.register_vcpu_info(hv, 0, 0, GUEST_RAM_GFN + 5, 12), -ENXIO, "not 8-aligned");
    assert_eq!(g.register_vcpu_info(hv, 0, 2, GUEST_RAM_GFN + 5, 0), -ENOENT);
    assert_eq!(g.register_vcpu_info(hv, 0, 1, GUEST_RAM_GFN + 5, 0), -EINVAL, "vCPU 1 runs: only it may");
    assert_eq!(g.register_vcpu_info(hv, 0, 0, 0x77_0000, 0), -EINVAL, "nothing mapped there");
    let mfn = g.ram.add(5);
    let rc0 = hv.mm.frames.page(mfn).unwrap().refcount();
    assert_eq!(g.register_vcpu_info(hv, 0, 0, GUEST_RAM_GFN + 5, 4096 - 48), 0);
    assert_eq!(hv.mm.frames.page(mfn).unwrap().refcount(), rc0 + 1, "the page is kept");
    assert_eq!(g.d.evtchn.vcpu_info_at(0), Some(VcpuInfoAt::Guest { mfn, offset: 4096 - 48 }));
    let vi = g.vcpu_info(hv, 0).unwrap();
    assert_eq!((vi.evtchn_upcall_pending, vi.evtchn_pending_sel, vi.time.system_time), (1, !0, 0x0707_0707_0707_0707));
    assert_eq!(g.upcalls(0), 1);
    assert_eq!(g.register_vcpu_info(hv, 0, 0, GUEST_RAM_GFN + 6, 0), -EINVAL, "only once");
    // vCPU 1's, by itself, in a page dom0 maps from another domain (Xen allows foreign pages).
    let u = Guest::new(hv, 3, 4);
    let foreign = xen_abi::memory::XENMAPSPACE_GMFN_FOREIGN as u16;
    assert_eq!(g.batch(hv, DOMID_SELF, foreign, 3, &[(GUEST_RAM_GFN + 2, 0x9_0000)]), (0, vec![0]));
    assert_eq!(g.register_vcpu_info(hv, 1, 1, 0x9_0000, 0), 0, "vCPU 1 itself");
    assert_eq!(g.vcpu_info(hv, 1).unwrap().time, VcpuTimeInfo::default(), "the dummy's contents are not copied");
    assert_eq!(hv.mm.frames.page(u.ram.add(2)).unwrap().refcount(), 3, "allocation, foreign entry, vcpu_info");
    // A domain's own grant frame is its page too.
    let d2 = Guest::new(hv, 4, 4);
    assert_eq!(d2.register_vcpu_info(hv, 0, 0, GUEST_GNTTAB_GFN, 0), -EINVAL, "nothing mapped there yet");
    assert_eq!(d2.map_grant_frame(hv, 0, GUEST_GNTTAB_GFN), 0);
    assert_eq!(d2.register_vcpu_info(hv, 0, 0, GUEST_GNTTAB_GFN, 0), 0);
    clean(&m);
    hv.destroy_domain(&d2.d);
    assert!(hv.domain_any_state(4).is_none(), "its vcpu_info page let go at teardown");
    hv.destroy_domain(&u.d);
    assert!(hv.domain_any_state(3).is_some(), "dom0 still uses one of its pages");
    clean(&m);
}

#[test]
fn runstate_area_follows_the_vcpu_with_the_update_flag_protocol() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 1, 4, 2);
    let (a0, a1) = (gpa(5), gpa(5) + 64);
    m.hw.now.store(1_000_000 + 62_500, SeqCst); // 1 ms of system time
    assert_eq!(g.register_runstate(hv, 0, 0, a0), 0);
    let r: VcpuRunstateInfo = g.get(hv, a0);
    assert_eq!((r.state, r.state_entry_time, r.time), (RUNSTATE_OFFLINE as i32, 0, [0; 4]), "its own: as last changed");
    assert_eq!(g.register_runstate(hv, 0, 1, a1), 0);
    let r: VcpuRunstateInfo = g.get(hv, a1);
    assert_eq!(r.time[RUNSTATE_OFFLINE as usize], 1_000_000, "another vCPU's: as of now");
    assert_eq!(g.register_runstate(hv, 0, 2, a1), -ENOENT);
    assert_eq!(g.register_runstate(hv, 0, 0, 0xdead_0000), 0, "Xen checks no address");
    assert_eq!(g.register_runstate(hv, 0, 0, a0), 0);
    // The arch layer reports the vCPU running, blocked, running, offline.
    let (d, v) = (&g.d, &g.d.vcpus[0]);
    granite::hypercall::vcpu::set_runstate(hv, d, v, RUNSTATE_RUNNING, &IdentityVa);
    m.hw.now.store(1_000_000 + 2 * 62_500, SeqCst);
    granite::hypercall::vcpu::set_runstate(hv, d, v, RUNSTATE_BLOCKED, &IdentityVa);
    let r: VcpuRunstateInfo = g.get(hv, a0);
    assert_eq!(
        (r.state, r.state_entry_time, r.time),
        (RUNSTATE_BLOCKED as i32, 2_000_000, [1_000_000, 0, 0, 1_000_000])
    );
    // With runstate_update_flag the area is written under XEN_RUNSTATE_UPDATE, cleared after.
    assert_eq!(g.vm_assist(hv, VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG), 0);
    m.hw.now.store(1_000_000 + 3 * 62_500, SeqCst);
    granite::hypercall::vcpu::set_runstate(hv, d, v, RUNSTATE_RUNNING, &IdentityVa);
    let r: VcpuRunstateInfo = g.get(hv, a0);
    assert_eq!((r.state, r.state_entry_time, r.time[2]), (RUNSTATE_RUNNING as i32, 3_000_000, 1_000_000));
    assert_eq!(r.state_entry_time & XEN_RUNSTATE_UPDATE, 0);
    // A change seen from another CPU is accounted for and written when the vCPU's CPU next
    // enters it.
    let v1 = &g.d.vcpus[1];
    assert_eq!(g.register_runstate(hv, 1, 1, a1), 0);
    granite::hypercall::vcpu::note_runstate(hv, v1, RUNSTATE_RUNNABLE);
    assert_eq!(g.get::<VcpuRunstateInfo>(hv, a1).state, RUNSTATE_OFFLINE as i32);
    m.hw.now.store(1_000_000 + 4 * 62_500, SeqCst);
    granite::hypercall::vcpu::set_runstate(hv, d, v1, RUNSTATE_RUNNING, &IdentityVa);
    let r: VcpuRunstateInfo = g.get(hv, a1);
    assert_eq!(
        (r.state, r.time[RUNSTATE_RUNNABLE as usize], r.time[RUNSTATE_OFFLINE as usize]),
        (0, 1_000_000, 3_000_000)
    );
    // A translation that fails leaves the area alone and changes the accounting only.
    struct NoVa;
    impl granite::hypercall::GuestVa for NoVa {
        fn to_ipa(&self, _: u64, _: bool) -> Option<u64> {
            None
        }
    }
    granite::hypercall::vcpu::set_runstate(hv, d, v, RUNSTATE_OFFLINE, &NoVa);
    assert_eq!(g.get::<VcpuRunstateInfo>(hv, a0).state, RUNSTATE_RUNNING as i32);
    assert_eq!(v.runstate.lock().state, RUNSTATE_OFFLINE);
    clean(&m);
}

/// A runstate area registered at the very top of the address space (Xen checks no address)
/// is written as Xen's pointer arithmetic would, wrapping, so the update-flag byte lands at a
/// low address; the area itself cannot be written. Found by the host fuzzer: the flag byte's
/// address overflowed, a guest-triggered panic in debug builds.
#[test]
fn runstate_area_at_the_top_of_the_address_space() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::with_vcpus(hv, 1, 4, 1);
    let (d, v) = (&g.d, &g.d.vcpus[0]);
    assert_eq!(g.vm_assist(hv, VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG), 0);
    for area in [u64::MAX - 7, u64::MAX - 20, u64::MAX] {
        assert_eq!(g.register_runstate(hv, 0, 0, area), 0, "Xen checks no address");
        let ram = || {
            let mut b = vec![0u8; (g.pages * 4096) as usize];
            hv.mm.phys.read(g.ram.addr(), &mut b);
            b
        };
        let before = ram();
        m.hw.now.fetch_add(62_500, SeqCst);
        granite::hypercall::vcpu::set_runstate(hv, d, v, RUNSTATE_RUNNING, &IdentityVa);
        granite::hypercall::vcpu::set_runstate(hv, d, v, RUNSTATE_BLOCKED, &IdentityVa);
        assert_eq!(v.runstate.lock().state, RUNSTATE_BLOCKED, "the accounting goes on");
        assert!(ram() == before, "nothing written: no RAM at the wrapped or the top addresses");
    }
    clean(&m);
}

#[test]
fn vm_assist_knows_only_the_runstate_update_flag() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 4);
    assert_eq!(g.vm_assist(hv, VMASST_CMD_ENABLE, 0), -EINVAL);
    assert_eq!(g.vm_assist(hv, VMASST_CMD_ENABLE, 64), -EINVAL);
    assert_eq!(g.vm_assist(hv, 2, VMASST_TYPE_RUNSTATE_UPDATE_FLAG), -ENOSYS);
    assert_eq!(g.vm_assist(hv, VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG), 0);
    assert!(g.d.vm_assist(VMASST_TYPE_RUNSTATE_UPDATE_FLAG));
    assert_eq!(g.vm_assist(hv, VMASST_CMD_DISABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG), 0);
    assert!(!g.d.vm_assist(VMASST_TYPE_RUNSTATE_UPDATE_FLAG));
    // cmd and type are `unsigned int`: the upper halves of x0/x1 are not looked at.
    let r = g.ret(hv, hc::VM_ASSIST, [1 << 32, 1 << 32 | 5, 0, 0, 0]);
    assert_eq!(r, 0);
    assert!(g.d.vm_assist(VMASST_TYPE_RUNSTATE_UPDATE_FLAG));
}

#[test]
fn settime64_sets_every_domains_wallclock() {
    let m = machine();
    let hv = &m.hv;
    let (d0, d1) = (Guest::new(hv, 0, 4), Guest::new(hv, 1, 4));
    let si = d1.shared_info(hv);
    assert_eq!((si.wc_version, si.wc_sec, si.wc_nsec), (2, 0, 0), "written once at creation");
    let t = XenpfSettime64 { secs: 0x1_2345_6789, nsecs: 500, mbz: 0, system_time: 2_000_000_000 };
    assert_eq!(d0.platform_op(hv, &XenPlatformOp::new_settime64(t)), 0);
    for g in [&d0, &d1] {
        let si = g.shared_info(hv);
        assert_eq!((si.wc_version, si.wc_sec, si.wc_sec_hi, si.wc_nsec), (4, 0x2345_6787, 1, 500));
    }
    let d2 = Guest::new(hv, 2, 4);
    let si = d2.shared_info(hv);
    assert_eq!((si.wc_version, si.wc_sec, si.wc_sec_hi, si.wc_nsec), (2, 0x2345_6787, 1, 500), "a new domain sees it");
    let mut op = XenPlatformOp::new_settime64(t);
    assert_eq!(d1.platform_op(hv, &op), -EPERM, "dom0 only");
    op.interface_version = 0x0300_0000;
    assert_eq!(d0.platform_op(hv, &op), -EACCES);
    assert_eq!(d1.platform_op(hv, &op), -EACCES, "the version is checked first");
    assert_eq!(d0.platform_op(hv, &XenPlatformOp::new_settime64(XenpfSettime64 { mbz: 1, ..t })), -EINVAL);
    let mut other = XenPlatformOp::new_settime64(t);
    other.cmd = XENPF_SETTIME32;
    assert_eq!(d0.platform_op(hv, &other), -ENOSYS, "Arm implements settime64 only");
    assert_eq!(d0.shared_info(hv).wc_version, 4);
    clean(&m);
}

#[test]
fn vcpu_op_answers_like_arm_xen() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 4);
    for cmd in
        [VCPUOP_INITIALISE, VCPUOP_UP, VCPUOP_DOWN, VCPUOP_IS_UP, VCPUOP_GET_RUNSTATE_INFO, 6, 7, 8, 9, 11, 12, 13, 99]
    {
        assert_eq!(g.ret(hv, hc::VCPU_OP, [cmd as u64, 0, ARG, 0, 0]), -EINVAL, "vcpu_op {cmd}");
    }
    assert_eq!(g.ret(hv, hc::VCPU_OP, [VCPUOP_UP as u64, 1, ARG, 0, 0]), -ENOENT, "the vCPU is checked first");
    // `int cmd, unsigned int vcpuid`: only the low halves count.
    g.put(hv, ARG, &VcpuRegisterVcpuInfo { mfn: GUEST_RAM_GFN + 5, offset: 0, rsvd: 0 });
    let r = g.ret(hv, hc::VCPU_OP, [1 << 32 | VCPUOP_REGISTER_VCPU_INFO as u64, 1 << 32, ARG, 0, 0]);
    assert_eq!(r, 0);
}

#[test]
fn event_channel_sub_op_is_the_low_half_of_x0() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 4);
    g.put(hv, ARG, &EvtchnBindIpi { vcpu: 0, port: 0 });
    assert_eq!(g.ret(hv, hc::EVENT_CHANNEL_OP, [0xffff_ffff_0000_0000 | EVTCHNOP_BIND_IPI as u64, ARG, 0, 0, 0]), 0);
    assert_eq!(g.get::<EvtchnBindIpi>(hv, ARG).port, 1);
}

/// Each class of bad argument to the new hypercalls gets Xen's errno and changes nothing.
#[test]
fn bad_input_gets_xens_errno_and_leaves_state_unchanged() {
    let m = machine();
    let hv = &m.hv;
    let d0 = Guest::new(hv, 0, 4);
    let g = Guest::with_vcpus(hv, 1, 4, 2);
    let _other = Guest::new(hv, 2, 4);
    // Some state to leave alone: an interdomain channel, a VIRQ, an IPI, a registered vcpu_info.
    let p = g.alloc_unbound(hv, DOMID_SELF, 0) as u32;
    let q = d0.bind_interdomain(hv, 1, p) as u32;
    let virq = g.bind_virq(hv, VIRQ_DEBUG, 0) as u32;
    let ipi = g.bind_ipi(hv, 1) as u32;
    let _ = g.alloc_unbound(hv, DOMID_SELF, 2);
    assert_eq!(g.register_vcpu_info(hv, 0, 0, GUEST_RAM_GFN + 5, 0), 0);
    assert_eq!((p, q, virq, ipi), (1, 1, 2, 3));
    g.consume_2l(hv, 0);
    d0.consume_2l(hv, 0);
    let ram_end = gpa(g.pages);
    let bytes = |v: &[u8]| v.to_vec();
    fn raw<T: granite::hypercall::Pod>(v: T) -> Vec<u8> {
        granite::mm::phys::as_bytes(&v).to_vec()
    }
    let ev = hc::EVENT_CHANNEL_OP;
    let st = |dom, port| raw(EvtchnStatus { dom, port, ..Default::default() });
    // (name, op, args, argument bytes at ARG, errno)
    type Case = (&'static str, u64, [u64; 5], Vec<u8>, i64);
    let cases: Vec<Case> = vec![
        ("unknown evtchn op", ev, [15, ARG, 0, 0, 0], vec![], -ENOSYS),
        ("unknown evtchn op, high", ev, [0x8000_0000, ARG, 0, 0, 0], vec![], -ENOSYS),
        ("arg unmapped", ev, [EVTCHNOP_SEND as u64, 0x1000, 0, 0, 0], vec![], -EFAULT),
        ("arg beyond IPA", ev, [EVTCHNOP_ALLOC_UNBOUND as u64, 1 << 45, 0, 0, 0], vec![], -EFAULT),
        ("arg at the top of VA", ev, [EVTCHNOP_STATUS as u64, u64::MAX - 3, 0, 0, 0], vec![], -EFAULT),
        ("arg straddles RAM end", ev, [EVTCHNOP_BIND_IPI as u64, ram_end - 4, 0, 0, 0], vec![], -EFAULT),
        (
            "alloc_unbound bad dom",
            ev,
            [EVTCHNOP_ALLOC_UNBOUND as u64, ARG, 0, 0, 0],
            raw(EvtchnAllocUnbound { dom: 77, remote_dom: 0, port: 0 }),
            -ESRCH,
        ),
        (
            "alloc_unbound DOMID_IO",
            ev,
            [EVTCHNOP_ALLOC_UNBOUND as u64, ARG, 0, 0, 0],
            raw(EvtchnAllocUnbound { dom: DOMID_IO, remote_dom: 0, port: 0 }),
            -ESRCH,
        ),
        (
            "alloc_unbound in dom0",
            ev,
            [EVTCHNOP_ALLOC_UNBOUND as u64, ARG, 0, 0, 0],
            raw(EvtchnAllocUnbound { dom: 0, remote_dom: 0, port: 0 }),
            -EPERM,
        ),
        (
            "bind_interdomain bad dom",
            ev,
            [EVTCHNOP_BIND_INTERDOMAIN as u64, ARG, 0, 0, 0],
            raw(EvtchnBindInterdomain { remote_dom: 300, remote_port: 1, ..Default::default() }),
            -ESRCH,
        ),
        (
            "bind_interdomain bound port",
            ev,
            [EVTCHNOP_BIND_INTERDOMAIN as u64, ARG, 0, 0, 0],
            raw(EvtchnBindInterdomain { remote_dom: 0, remote_port: 1, ..Default::default() }),
            -EINVAL,
        ),
        (
            "bind_interdomain port not for us",
            ev,
            [EVTCHNOP_BIND_INTERDOMAIN as u64, ARG, 0, 0, 0],
            raw(EvtchnBindInterdomain { remote_dom: DOMID_SELF, remote_port: 4, ..Default::default() }),
            -EINVAL,
        ),
        (
            "bind_interdomain free port",
            ev,
            [EVTCHNOP_BIND_INTERDOMAIN as u64, ARG, 0, 0, 0],
            raw(EvtchnBindInterdomain { remote_dom: 0, remote_port: 40, ..Default::default() }),
            -EINVAL,
        ),
        (
            "bind_interdomain huge port",
            ev,
            [EVTCHNOP_BIND_INTERDOMAIN as u64, ARG, 0, 0, 0],
            raw(EvtchnBindInterdomain { remote_dom: 0, remote_port: u32::MAX, ..Default::default() }),
            -EINVAL,
        ),
        (
            "bind_virq too big",
            ev,
            [EVTCHNOP_BIND_VIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVirq { virq: 24, vcpu: 0, port: 0 }),
            -EINVAL,
        ),
        (
            "bind_virq negative",
            ev,
            [EVTCHNOP_BIND_VIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVirq { virq: 0x8000_0000, vcpu: 0, port: 0 }),
            -EINVAL,
        ),
        (
            "bind_virq global on vCPU 1",
            ev,
            [EVTCHNOP_BIND_VIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVirq { virq: VIRQ_CONSOLE, vcpu: 1, port: 0 }),
            -EINVAL,
        ),
        (
            "bind_virq bad vCPU",
            ev,
            [EVTCHNOP_BIND_VIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVirq { virq: VIRQ_TIMER, vcpu: 2, port: 0 }),
            -ENOENT,
        ),
        (
            "bind_virq already bound",
            ev,
            [EVTCHNOP_BIND_VIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVirq { virq: VIRQ_DEBUG, vcpu: 0, port: 0 }),
            -EEXIST,
        ),
        (
            "bind_ipi bad vCPU",
            ev,
            [EVTCHNOP_BIND_IPI as u64, ARG, 0, 0, 0],
            raw(EvtchnBindIpi { vcpu: u32::MAX, port: 0 }),
            -ENOENT,
        ),
        (
            "bind_pirq beyond nr_pirqs",
            ev,
            [EVTCHNOP_BIND_PIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindPirq { pirq: 1024, flags: 0, port: 0 }),
            -EINVAL,
        ),
        (
            "bind_pirq on Arm",
            ev,
            [EVTCHNOP_BIND_PIRQ as u64, ARG, 0, 0, 0],
            raw(EvtchnBindPirq { pirq: 3, flags: 1, port: 0 }),
            -ENOMEM,
        ),
        ("close reserved port 0", ev, [EVTCHNOP_CLOSE as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 0 }), -EINVAL),
        ("close free port", ev, [EVTCHNOP_CLOSE as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 63 }), -EINVAL),
        ("close beyond", ev, [EVTCHNOP_CLOSE as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 64 }), -EINVAL),
        ("close huge", ev, [EVTCHNOP_CLOSE as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: u32::MAX }), -EINVAL),
        ("send VIRQ port", ev, [EVTCHNOP_SEND as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: virq }), -EINVAL),
        ("send free port", ev, [EVTCHNOP_SEND as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 20 }), -EINVAL),
        ("send port 0", ev, [EVTCHNOP_SEND as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 0 }), -EINVAL),
        ("send beyond", ev, [EVTCHNOP_SEND as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 1 << 20 }), -EINVAL),
        ("status bad dom", ev, [EVTCHNOP_STATUS as u64, ARG, 0, 0, 0], st(5, 1), -ESRCH),
        ("status beyond", ev, [EVTCHNOP_STATUS as u64, ARG, 0, 0, 0], st(DOMID_SELF, 64), -EINVAL),
        ("status of dom0, bad port", ev, [EVTCHNOP_STATUS as u64, ARG, 0, 0, 0], st(0, 999), -EINVAL),
        ("status of dom0", ev, [EVTCHNOP_STATUS as u64, ARG, 0, 0, 0], st(0, 1), -EPERM),
        (
            "bind_vcpu bad vCPU",
            ev,
            [EVTCHNOP_BIND_VCPU as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVcpu { port: 99999, vcpu: 2 }),
            -ENOENT,
        ),
        (
            "bind_vcpu beyond",
            ev,
            [EVTCHNOP_BIND_VCPU as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVcpu { port: 64, vcpu: 0 }),
            -EINVAL,
        ),
        (
            "bind_vcpu IPI",
            ev,
            [EVTCHNOP_BIND_VCPU as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVcpu { port: ipi, vcpu: 0 }),
            -EINVAL,
        ),
        (
            "bind_vcpu per-vCPU VIRQ",
            ev,
            [EVTCHNOP_BIND_VCPU as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVcpu { port: virq, vcpu: 1 }),
            -EINVAL,
        ),
        (
            "bind_vcpu free",
            ev,
            [EVTCHNOP_BIND_VCPU as u64, ARG, 0, 0, 0],
            raw(EvtchnBindVcpu { port: 30, vcpu: 1 }),
            -EINVAL,
        ),
        ("unmask beyond", ev, [EVTCHNOP_UNMASK as u64, ARG, 0, 0, 0], raw(EvtchnPort { port: 64 }), -EINVAL),
        ("reset bad dom", ev, [EVTCHNOP_RESET as u64, ARG, 0, 0, 0], raw(EvtchnReset { dom: 9 }), -ESRCH),
        ("reset dom0", ev, [EVTCHNOP_RESET as u64, ARG, 0, 0, 0], raw(EvtchnReset { dom: 0 }), -EPERM),
        (
            "reset_cont without a reset",
            ev,
            [EVTCHNOP_RESET_CONT as u64, ARG, 0, 0, 0],
            raw(EvtchnReset { dom: DOMID_SELF }),
            -EBUSY,
        ),
        (
            "init_control bad vCPU",
            ev,
            [EVTCHNOP_INIT_CONTROL as u64, ARG, 0, 0, 0],
            raw(EvtchnInitControl { control_gfn: GUEST_RAM_GFN + 6, vcpu: 2, ..Default::default() }),
            -ENOENT,
        ),
        (
            "init_control offset crosses the page",
            ev,
            [EVTCHNOP_INIT_CONTROL as u64, ARG, 0, 0, 0],
            raw(EvtchnInitControl { control_gfn: GUEST_RAM_GFN + 6, offset: 4096 - 64, ..Default::default() }),
            -EINVAL,
        ),
        (
            "init_control offset unaligned",
            ev,
            [EVTCHNOP_INIT_CONTROL as u64, ARG, 0, 0, 0],
            raw(EvtchnInitControl { control_gfn: GUEST_RAM_GFN + 6, offset: 4, ..Default::default() }),
            -EINVAL,
        ),
        (
            "init_control unmapped gfn",
            ev,
            [EVTCHNOP_INIT_CONTROL as u64, ARG, 0, 0, 0],
            raw(EvtchnInitControl { control_gfn: 0x10, ..Default::default() }),
            -EINVAL,
        ),
        (
            "init_control gfn beyond IPA",
            ev,
            [EVTCHNOP_INIT_CONTROL as u64, ARG, 0, 0, 0],
            raw(EvtchnInitControl { control_gfn: u64::MAX, ..Default::default() }),
            -EINVAL,
        ),
        (
            "expand_array in 2-level",
            ev,
            [EVTCHNOP_EXPAND_ARRAY as u64, ARG, 0, 0, 0],
            raw(EvtchnExpandArray { array_gfn: GUEST_RAM_GFN + 6 }),
            -EOPNOTSUPP,
        ),
        (
            "set_priority in 2-level",
            ev,
            [EVTCHNOP_SET_PRIORITY as u64, ARG, 0, 0, 0],
            raw(EvtchnSetPriority { port: ipi, priority: 1 }),
            -ENOSYS,
        ),
        (
            "set_priority beyond",
            ev,
            [EVTCHNOP_SET_PRIORITY as u64, ARG, 0, 0, 0],
            raw(EvtchnSetPriority { port: 64, priority: 1 }),
            -EINVAL,
        ),
        ("vcpu_op bad vCPU", hc::VCPU_OP, [VCPUOP_REGISTER_VCPU_INFO as u64, 2, ARG, 0, 0], vec![], -ENOENT),
        (
            "vcpu_op huge vCPU",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, u32::MAX as u64, ARG, 0, 0],
            vec![],
            -ENOENT,
        ),
        ("vcpu_op other op", hc::VCPU_OP, [VCPUOP_IS_UP as u64, 0, ARG, 0, 0], vec![], -EINVAL),
        ("vcpu_op arg unmapped", hc::VCPU_OP, [VCPUOP_REGISTER_VCPU_INFO as u64, 1, 0x1000, 0, 0], vec![], -EFAULT),
        (
            "runstate arg unmapped",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA as u64, 0, 0x1000, 0, 0],
            vec![],
            -EFAULT,
        ),
        (
            "vcpu_info twice",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, 0, ARG, 0, 0],
            raw(VcpuRegisterVcpuInfo { mfn: GUEST_RAM_GFN + 6, offset: 0, rsvd: 0 }),
            -EINVAL,
        ),
        (
            "vcpu_info offset beyond",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, 1, ARG, 0, 0],
            raw(VcpuRegisterVcpuInfo { mfn: GUEST_RAM_GFN + 6, offset: 4096 - 47, rsvd: 0 }),
            -ENXIO,
        ),
        (
            "vcpu_info offset huge",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, 1, ARG, 0, 0],
            raw(VcpuRegisterVcpuInfo { mfn: GUEST_RAM_GFN + 6, offset: u32::MAX, rsvd: 0 }),
            -ENXIO,
        ),
        (
            "vcpu_info offset unaligned",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, 1, ARG, 0, 0],
            raw(VcpuRegisterVcpuInfo { mfn: GUEST_RAM_GFN + 6, offset: 4, rsvd: 0 }),
            -ENXIO,
        ),
        (
            "vcpu_info unmapped gfn",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, 1, ARG, 0, 0],
            raw(VcpuRegisterVcpuInfo { mfn: 0x10, offset: 0, rsvd: 0 }),
            -EINVAL,
        ),
        (
            "vcpu_info gfn beyond IPA",
            hc::VCPU_OP,
            [VCPUOP_REGISTER_VCPU_INFO as u64, 1, ARG, 0, 0],
            raw(VcpuRegisterVcpuInfo { mfn: 1 << 40, offset: 0, rsvd: 0 }),
            -EINVAL,
        ),
        ("vm_assist bad type", hc::VM_ASSIST, [0, 3, 0, 0, 0], vec![], -EINVAL),
        ("vm_assist type 64", hc::VM_ASSIST, [0, 64, 0, 0, 0], vec![], -EINVAL),
        ("vm_assist bad cmd", hc::VM_ASSIST, [2, 5, 0, 0, 0], vec![], -ENOSYS),
        ("platform_op unmapped", hc::PLATFORM_OP, [0x1000, 0, 0, 0, 0], vec![], -EFAULT),
        ("platform_op straddles RAM end", hc::PLATFORM_OP, [ram_end - 100, 0, 0, 0, 0], vec![], -EFAULT),
        (
            "platform_op bad version",
            hc::PLATFORM_OP,
            [ARG, 0, 0, 0, 0],
            bytes(&raw(XenPlatformOp { cmd: XENPF_SETTIME64, interface_version: 1, u: [0; 16] })),
            -EACCES,
        ),
        (
            "platform_op by a domU",
            hc::PLATFORM_OP,
            [ARG, 0, 0, 0, 0],
            raw(XenPlatformOp { cmd: XENPF_SETTIME64, interface_version: XENPF_INTERFACE_VERSION, u: [0; 16] }),
            -EPERM,
        ),
    ];
    for (name, op, args, arg, want) in cases {
        if !arg.is_empty() {
            hypercall::GuestMem::new(hv, &g.d, &IdentityVa).write_bytes(ARG, &arg).unwrap();
        }
        let before = fingerprint(hv);
        let got = g.ret(hv, op, args);
        assert_eq!(got, want, "{name}: got {got} want {want}");
        assert_eq!(fingerprint(hv), before, "{name}: state changed");
    }
    // From the privileged domain: the things only it can get wrong.
    let d0_cases: Vec<Case> = vec![
        ("reset another domain", ev, [EVTCHNOP_RESET as u64, ARG, 0, 0, 0], raw(EvtchnReset { dom: 1 }), -EINVAL),
        (
            "settime mbz",
            hc::PLATFORM_OP,
            [ARG, 0, 0, 0, 0],
            raw(XenPlatformOp::new_settime64(XenpfSettime64 { secs: 1, nsecs: 0, mbz: 7, system_time: 0 })),
            -EINVAL,
        ),
        (
            "platform_op other cmd",
            hc::PLATFORM_OP,
            [ARG, 0, 0, 0, 0],
            raw(XenPlatformOp { cmd: 1, interface_version: XENPF_INTERFACE_VERSION, u: [0; 16] }),
            -ENOSYS,
        ),
        ("status of a domU, bad port", ev, [EVTCHNOP_STATUS as u64, ARG, 0, 0, 0], st(1, 64), -EINVAL),
    ];
    for (name, op, args, arg, want) in d0_cases {
        hypercall::GuestMem::new(hv, &d0.d, &IdentityVa).write_bytes(ARG, &arg).unwrap();
        let before = fingerprint(hv);
        let got = d0.ret(hv, op, args);
        assert_eq!(got, want, "{name}: got {got} want {want}");
        assert_eq!(fingerprint(hv), before, "{name}: state changed");
    }
    clean(&m);
}

/// XSA-221 guest (regression): SCHEDOP_poll checks its port list as Xen does — at most 128
/// ports, each readable and one the ABI can name — before it looks for a pending one.
#[test]
fn sched_poll_checks_its_ports_as_xen_does() {
    let m = machine();
    let hv = &m.hv;
    let g = Guest::new(hv, 1, 4);
    let poll = |ports: &[u32], nr: u32, list: u64| {
        for (i, p) in ports.iter().enumerate() {
            g.put(hv, ARRAY + 4 * i as u64, p);
        }
        g.put(hv, ARG, &SchedPoll { ports: list, nr_ports: nr, _pad: 0, timeout: 0 });
        g.ret(hv, hc::SCHED_OP, [xen_abi::sched::SCHEDOP_POLL, ARG, 0, 0, 0])
    };
    let before = fingerprint(hv);
    assert_eq!(poll(&[1; 129], 129, ARRAY), -EINVAL, "more than 128 ports");
    assert_eq!(poll(&[1, 4096], 2, ARRAY), -EINVAL, "beyond the 2-level ABI's 4096");
    assert_eq!(poll(&[1], 1, 0xdead_0000_0000), -EFAULT, "an unreadable list");
    assert_eq!(g.ret(hv, hc::SCHED_OP, [xen_abi::sched::SCHEDOP_POLL, 0xdead_0000_0000, 0, 0, 0]), -EFAULT);
    assert_eq!(poll(&[1, 2, 4095], 3, ARRAY), 0, "nameable ports: nothing pending, returns");
    assert_eq!(poll(&[], 0, 0), 0, "no ports");
    assert_eq!(fingerprint(hv), before, "nothing changed");
}
