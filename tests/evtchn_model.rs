//! Model-based property test of event channels: random sequences of alloc_unbound,
//! bind_interdomain (across two domains and loopback), bind_ipi, bind_virq, send, close,
//! unmask, bind_vcpu, reset, VIRQs raised by the hypervisor, and the guest's own actions
//! (masking ports, handling upcalls) — on the 2-level ABI and on the FIFO ABI — checked after
//! every step against a small reference model of ports, bindings, the pending/masked (and
//! FIFO linked) state the guest sees, FIFO queue order, and upcalls raised on each vCPU, plus
//! the audit's invariants; at the end both domains are torn down and every page must be back.

use granite::audit::audit;
use granite::evtchn::State;
use granite::hv::Options;
use granite::testing::*;
use granite::tlb::NoTlb;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use xen_abi::errno::*;
use xen_abi::evtchn::*;
use xen_abi::*;

const NV: u32 = 2; // vCPUs per domain
const NP: usize = 256; // ports the model tracks bits for
const VIRQS: [u32; 4] = [VIRQ_TIMER, VIRQ_DEBUG, VIRQ_CONSOLE, 24];
/// Guest pages: vcpu_info of both vCPUs, FIFO control blocks, the event array.
const VCPU_INFO_PAGE: u64 = 6;
const CONTROL_PAGE: [u64; 2] = [8, 9];
const ARRAY_PAGE: u64 = 10;

fn gpa(page: u64) -> u64 {
    (GUEST_RAM_GFN + page) << 12
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MPort {
    state: State,
    notify: u32,
}

#[derive(Clone, Debug)]
struct MDom {
    id: u16,
    fifo: bool,
    valid: u32,
    ports: BTreeMap<u32, MPort>,
    virq: BTreeMap<(u32, u32), u32>,
    pending: Vec<bool>,
    masked: Vec<bool>,
    // FIFO
    linked: Vec<bool>,
    last_q: Vec<u32>,
    tail: [u32; NV as usize],
    queue: [Vec<u32>; NV as usize],
    ready: [bool; NV as usize],
    // vcpu_info
    upcall_flag: [bool; NV as usize],
    sel: [u64; NV as usize],
    upcalls: [u64; NV as usize],
}

impl MDom {
    fn new(id: u16, fifo: bool) -> MDom {
        MDom {
            id,
            fifo,
            valid: 64,
            ports: BTreeMap::new(),
            virq: BTreeMap::new(),
            pending: vec![false; NP],
            masked: vec![false; NP],
            linked: vec![false; NP],
            last_q: vec![0; NP],
            tail: [0; 2],
            queue: [vec![], vec![]],
            ready: [false; 2],
            upcall_flag: [false; 2],
            sel: [0; 2],
            upcalls: [0; 2],
        }
    }
    fn state(&self, p: u32) -> Option<State> {
        if p >= self.valid {
            return None;
        }
        Some(self.ports.get(&p).map_or(if p == 0 { State::Reserved } else { State::Free }, |c| c.state))
    }
    fn usable(&self, p: u32) -> bool {
        self.ports.contains_key(&p)
    }
    fn free_port(&mut self) -> u32 {
        for p in 1.. {
            if p >= self.valid {
                self.valid += 64;
                return p;
            }
            let busy = self.fifo && self.linked[p as usize];
            if !self.ports.contains_key(&p) && !busy {
                return p;
            }
        }
        unreachable!()
    }
    fn bind(&mut self, p: u32, state: State, notify: u32) {
        self.ports.insert(p, MPort { state, notify });
    }
    fn free(&mut self, p: u32) {
        self.pending[p as usize] = false;
        self.ports.remove(&p);
    }
    fn mark(&mut self, v: u32) {
        if !self.upcall_flag[v as usize] {
            self.upcall_flag[v as usize] = true;
            self.upcalls[v as usize] += 1;
        }
    }
    fn set_pending(&mut self, v: u32, p: u32) {
        if !self.usable(p) {
            return;
        }
        let i = p as usize;
        if !self.fifo {
            if self.pending[i] {
                return;
            }
            self.pending[i] = true;
            let b = 1u64 << (p / 64);
            if !self.masked[i] && self.sel[v as usize] & b == 0 {
                self.sel[v as usize] |= b;
                self.mark(v);
            }
            return;
        }
        self.pending[i] = true;
        if self.masked[i] || self.linked[i] {
            return;
        }
        self.linked[i] = true;
        let old = self.last_q[i] as usize;
        if self.tail[old] == p {
            self.tail[old] = 0;
        }
        self.last_q[i] = v;
        let t = self.tail[v as usize];
        let linked = t != 0 && self.linked[t as usize];
        if linked {
            self.queue[v as usize].push(p);
        } else {
            assert!(self.queue[v as usize].is_empty(), "model: a new head on a non-empty queue");
            self.queue[v as usize] = vec![p];
        }
        self.tail[v as usize] = p;
        if !linked && !self.ready[v as usize] {
            self.ready[v as usize] = true;
            self.mark(v);
        }
    }
    fn unmask(&mut self, p: u32) {
        let i = p as usize;
        let n = self.ports[&p].notify;
        if !self.fifo {
            if self.masked[i] {
                self.masked[i] = false;
                let b = 1u64 << (p / 64);
                if self.pending[i] && self.sel[n as usize] & b == 0 {
                    self.sel[n as usize] |= b;
                    self.mark(n);
                }
            }
        } else {
            self.masked[i] = false;
            if self.pending[i] {
                self.set_pending(n, p);
            }
        }
    }
    /// The guest handles an upcall on `v` (as the test helpers do).
    fn consume(&mut self, v: u32) -> Vec<u32> {
        let v = v as usize;
        self.upcall_flag[v] = false;
        let mut out = vec![];
        if !self.fifo {
            let sel = std::mem::take(&mut self.sel[v]);
            for w in 0..64 {
                if sel & (1 << w) == 0 {
                    continue;
                }
                for p in w * 64..(w + 1) * 64 {
                    if p < NP && self.pending[p] && !self.masked[p] {
                        self.pending[p] = false;
                        out.push(p as u32);
                    }
                }
            }
        } else if self.ready[v] {
            for p in std::mem::take(&mut self.queue[v]) {
                let i = p as usize;
                self.linked[i] = false;
                if self.pending[i] && !self.masked[i] {
                    self.pending[i] = false;
                    out.push(p);
                }
            }
            self.ready[v] = false;
        }
        out
    }
}

#[derive(Clone, Debug)]
enum Op {
    AllocUnbound { by: usize, target: usize, remote: u16 },
    BindInterdomain { by: usize, rdom: usize, rport: u32 },
    BindIpi { by: usize, vcpu: u32 },
    BindVirq { by: usize, virq: u32, vcpu: u32 },
    Send { by: usize, port: u32 },
    Close { by: usize, port: u32 },
    Unmask { by: usize, port: u32 },
    BindVcpu { by: usize, port: u32, vcpu: u32 },
    Reset { by: usize, dom: usize },
    Mask { by: usize, port: u32 },
    Consume { by: usize, vcpu: u32 },
    RaiseVirq { dom: usize, virq: u32, vcpu: u32 },
    Status { by: usize, dom: usize, port: u32 },
}

fn port() -> impl Strategy<Value = u32> {
    prop_oneof![8 => 0..12u32, 1 => 60..70u32]
}

fn op() -> impl Strategy<Value = Op> {
    let d = 0..2usize;
    prop_oneof![
        3 => (d.clone(), d.clone(), prop_oneof![Just(0u16), Just(1), Just(DOMID_SELF), Just(7)])
            .prop_map(|(by, target, remote)| Op::AllocUnbound { by, target, remote }),
        3 => (d.clone(), d.clone(), port()).prop_map(|(by, rdom, rport)| Op::BindInterdomain { by, rdom, rport }),
        2 => (d.clone(), 0..3u32).prop_map(|(by, vcpu)| Op::BindIpi { by, vcpu }),
        1 => (d.clone(), 0..4usize, 0..3u32).prop_map(|(by, v, vcpu)| Op::BindVirq { by, virq: VIRQS[v], vcpu }),
        6 => (d.clone(), port()).prop_map(|(by, port)| Op::Send { by, port }),
        3 => (d.clone(), port()).prop_map(|(by, port)| Op::Close { by, port }),
        2 => (d.clone(), port()).prop_map(|(by, port)| Op::Unmask { by, port }),
        2 => (d.clone(), port(), 0..3u32).prop_map(|(by, port, vcpu)| Op::BindVcpu { by, port, vcpu }),
        1 => (d.clone(), d.clone()).prop_map(|(by, dom)| Op::Reset { by, dom }),
        2 => (d.clone(), 1..12u32).prop_map(|(by, port)| Op::Mask { by, port }),
        4 => (d.clone(), 0..NV).prop_map(|(by, vcpu)| Op::Consume { by, vcpu }),
        1 => (d.clone(), 0..3usize, 0..NV).prop_map(|(dom, v, vcpu)| Op::RaiseVirq { dom, virq: VIRQS[v], vcpu }),
        1 => (d.clone(), d, port()).prop_map(|(by, dom, port)| Op::Status { by, dom, port }),
    ]
}

struct World {
    m: HostMachine,
    g: [Guest; 2],
    model: [MDom; 2],
    free0: u64,
}

impl World {
    fn new(fifo: bool) -> World {
        let m = HostMachine::new(2048, 40, Arc::new(NoTlb), Options::default());
        let free0 = m.hv.mm.heap.free_frames();
        let g = [Guest::with_vcpus(&m.hv, 0, 4, 2), Guest::with_vcpus(&m.hv, 1, 4, 2)];
        let mut model = [MDom::new(0, fifo), MDom::new(1, fifo)];
        let hv = &m.hv;
        for (g, md) in g.iter().zip(model.iter_mut()) {
            for v in 0..NV {
                assert_eq!(g.register_vcpu_info(hv, v as usize, v, GUEST_RAM_GFN + VCPU_INFO_PAGE, 64 * v), 0);
                g.consume_2l(hv, v);
                md.upcalls[v as usize] = 1;
            }
            if fifo {
                assert_eq!(g.init_control(hv, 0, GUEST_RAM_GFN + CONTROL_PAGE[0], 0).0, 0);
                assert_eq!(g.expand_array(hv, GUEST_RAM_GFN + ARRAY_PAGE), 0);
                assert_eq!(g.init_control(hv, 1, GUEST_RAM_GFN + CONTROL_PAGE[1], 0).0, 0);
            }
        }
        World { m, g, model, free0 }
    }

    fn fifo_view(&self, dom: usize) -> FifoView<'_> {
        FifoView {
            g: &self.g[dom],
            control: CONTROL_PAGE.iter().map(|&p| gpa(p)).collect(),
            array: vec![gpa(ARRAY_PAGE)],
        }
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let hv = &self.m.hv;
        let id = |d: usize| d as u16;
        match *op {
            Op::AllocUnbound { by, target, remote } => {
                let dom = if by == target { DOMID_SELF } else { id(target) };
                let got = self.g[by].alloc_unbound(hv, dom, remote);
                let md = &mut self.model[target];
                let p = md.free_port();
                let want = if by == target || by == 0 {
                    md.bind(p, State::Unbound { remote: if remote == DOMID_SELF { id(by) } else { remote } }, 0);
                    p as i64
                } else {
                    -EPERM
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::BindInterdomain { by, rdom, rport } => {
                let rd = if rdom == by { DOMID_SELF } else { id(rdom) };
                let got = self.g[by].bind_interdomain(hv, rd, rport);
                let lport = self.model[by].free_port();
                let ok = self.model[rdom].state(rport) == Some(State::Unbound { remote: id(by) });
                let want = if ok {
                    self.model[by].bind(lport, State::Interdomain { remote: id(rdom), port: rport }, 0);
                    let n = self.model[rdom].ports[&rport].notify;
                    self.model[rdom]
                        .ports
                        .insert(rport, MPort { state: State::Interdomain { remote: id(by), port: lport }, notify: n });
                    self.model[by].set_pending(0, lport);
                    lport as i64
                } else {
                    -EINVAL
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::BindIpi { by, vcpu } => {
                let got = self.g[by].bind_ipi(hv, vcpu);
                let md = &mut self.model[by];
                let want = if vcpu >= NV {
                    -ENOENT
                } else {
                    let p = md.free_port();
                    md.bind(p, State::Ipi, vcpu);
                    p as i64
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::BindVirq { by, virq, vcpu } => {
                let got = self.g[by].bind_virq(hv, virq, vcpu);
                let md = &mut self.model[by];
                let want = if virq >= NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
                    -EINVAL
                } else if vcpu >= NV {
                    -ENOENT
                } else if md.virq.contains_key(&(vcpu, virq)) {
                    -EEXIST
                } else {
                    let p = md.free_port();
                    md.bind(p, State::Virq(virq), vcpu);
                    md.virq.insert((vcpu, virq), p);
                    p as i64
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Send { by, port } => {
                let got = self.g[by].evtchn_send(hv, port);
                let want = match self.model[by].state(port) {
                    Some(State::Interdomain { remote, port: rp }) => {
                        let r = &mut self.model[remote as usize];
                        let n = r.ports[&rp].notify;
                        r.set_pending(n, rp);
                        0
                    }
                    Some(State::Ipi) => {
                        let n = self.model[by].ports[&port].notify;
                        self.model[by].set_pending(n, port);
                        0
                    }
                    Some(State::Unbound { .. }) => 0,
                    _ => -EINVAL,
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Close { by, port } => {
                let got = self.g[by].evtchn_close(hv, port);
                prop_assert_eq!(got, self.model_close(by, port), "{:?}", op);
            }
            Op::Unmask { by, port } => {
                let got = self.g[by].evtchn_unmask(hv, port);
                let md = &mut self.model[by];
                let want = match md.state(port) {
                    None => -EINVAL,
                    Some(_) if md.usable(port) => {
                        md.unmask(port);
                        0
                    }
                    Some(_) => 0,
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::BindVcpu { by, port, vcpu } => {
                let got = self.g[by].bind_vcpu(hv, port, vcpu);
                let md = &mut self.model[by];
                let want = if vcpu >= NV {
                    -ENOENT
                } else {
                    match md.state(port) {
                        None => -EINVAL,
                        Some(State::Virq(v)) if !virq_is_global(v) => -EINVAL,
                        Some(State::Virq(_) | State::Unbound { .. } | State::Interdomain { .. }) => {
                            md.ports.get_mut(&port).unwrap().notify = vcpu;
                            0
                        }
                        _ => -EINVAL,
                    }
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Reset { by, dom } => {
                let target = if by == dom { DOMID_SELF } else { id(dom) };
                let got = self.g[by].evtchn_reset(hv, target);
                let want = if by != dom {
                    if by == 0 { -EINVAL } else { -EPERM }
                } else {
                    for p in 1..self.model[dom].valid {
                        let _ = self.model_close(dom, p);
                    }
                    let md = &mut self.model[dom];
                    if md.fifo {
                        // Back to 2-level: the bitmaps in shared_info were never touched.
                        md.fifo = false;
                        md.pending = vec![false; NP];
                        md.masked = vec![false; NP];
                    }
                    0
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Mask { by, port } => {
                let g = &self.g[by];
                if self.model[by].fifo {
                    self.fifo_view(by)
                        .word(hv, port)
                        .fetch_or(1 << EVTCHN_FIFO_MASKED, std::sync::atomic::Ordering::SeqCst);
                } else {
                    g.set_2l_mask(hv, port, true);
                }
                self.model[by].masked[port as usize] = true;
            }
            Op::Consume { by, vcpu } => {
                let got = if self.model[by].fifo {
                    self.fifo_view(by).consume(hv, vcpu as usize)
                } else {
                    self.g[by].consume_2l(hv, vcpu)
                };
                prop_assert_eq!(got, self.model[by].consume(vcpu), "{:?}", op);
            }
            Op::RaiseVirq { dom, virq, vcpu } => {
                hv.send_virq(&self.g[dom].d, virq, vcpu);
                let md = &mut self.model[dom];
                if virq_is_global(virq) {
                    if let Some(&p) = md.virq.get(&(0, virq)) {
                        let n = md.ports[&p].notify;
                        md.set_pending(n, p);
                    }
                } else if let Some(&p) = md.virq.get(&(vcpu, virq)) {
                    md.set_pending(vcpu, p);
                }
            }
            Op::Status { by, dom, port } => {
                let target = if by == dom { DOMID_SELF } else { id(dom) };
                let (got, s) = self.g[by].evtchn_status(hv, target, port);
                let md = &self.model[dom];
                match md.state(port) {
                    None => prop_assert_eq!(got, -EINVAL),
                    Some(_) if by == 1 && dom == 0 => prop_assert_eq!(got, -EPERM),
                    Some(st) => {
                        let (status, vcpu) = match st {
                            State::Free | State::Reserved => (EVTCHNSTAT_CLOSED, 0),
                            State::Unbound { .. } => (EVTCHNSTAT_UNBOUND, md.ports[&port].notify),
                            State::Interdomain { .. } => (EVTCHNSTAT_INTERDOMAIN, md.ports[&port].notify),
                            State::Virq(_) => (EVTCHNSTAT_VIRQ, md.ports[&port].notify),
                            State::Ipi => (EVTCHNSTAT_IPI, md.ports[&port].notify),
                        };
                        prop_assert_eq!((got, s.status, s.vcpu), (0, status, vcpu), "{:?}", op);
                    }
                }
            }
        }
        self.check()
    }

    fn model_close(&mut self, by: usize, port: u32) -> i64 {
        let md = &mut self.model[by];
        match md.state(port) {
            None | Some(State::Free) | Some(State::Reserved) => -EINVAL,
            Some(State::Virq(v)) => {
                let on = if virq_is_global(v) { 0 } else { md.ports[&port].notify };
                md.virq.remove(&(on, v));
                md.free(port);
                0
            }
            Some(State::Interdomain { remote, port: rp }) => {
                md.free(port);
                let r = &mut self.model[remote as usize];
                let n = r.ports[&rp].notify;
                r.ports.insert(rp, MPort { state: State::Unbound { remote: by as u16 }, notify: n });
                0
            }
            Some(_) => {
                md.free(port);
                0
            }
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let hv = &self.m.hv;
        let rep = audit(hv);
        prop_assert!(rep.is_clean(), "audit: {:?}", rep.violations);
        for (g, md) in self.g.iter().zip(&self.model) {
            let s = g.d.evtchn.snapshot();
            prop_assert_eq!(s.valid, md.valid, "d{}", md.id);
            prop_assert_eq!(s.fifo, md.fifo);
            let got: BTreeMap<u32, MPort> =
                s.ports.iter().map(|(p, c)| (*p, MPort { state: c.state, notify: c.notify })).collect();
            prop_assert_eq!(&got, &md.ports, "d{} ports", md.id);
            for p in 0..md.valid.min(NP as u32) {
                let i = p as usize;
                prop_assert_eq!(
                    g.port_bits(hv, p),
                    (md.pending[i], md.masked[i]),
                    "d{} port {} (pending, masked)",
                    md.id,
                    p
                );
                if md.fifo {
                    let w = self.fifo_view(md.id as usize).word(hv, p).load(std::sync::atomic::Ordering::SeqCst);
                    prop_assert_eq!(w & 1 << EVTCHN_FIFO_LINKED != 0, md.linked[i], "d{} port {} linked", md.id, p);
                }
            }
            for v in 0..NV as usize {
                prop_assert_eq!(g.upcalls(v), md.upcalls[v], "d{}v{} upcalls", md.id, v);
                let vi = g.vcpu_info(hv, v as u32).unwrap();
                prop_assert_eq!(vi.evtchn_upcall_pending != 0, md.upcall_flag[v]);
                if !md.fifo {
                    prop_assert_eq!(vi.evtchn_pending_sel, md.sel[v], "d{}v{} selector", md.id, v);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), TestCaseError> {
        let hv = &self.m.hv;
        for g in &self.g {
            hv.destroy_domain(&g.d);
        }
        prop_assert!(hv.domains().is_empty());
        prop_assert_eq!(hv.mm.heap.free_frames(), self.free0, "every page back");
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 4000, ..ProptestConfig::default() })]

    #[test]
    fn two_level_event_channels_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new(false);
        for op in &ops {
            w.step(op)?;
        }
        w.finish()?;
    }

    #[test]
    fn fifo_event_channels_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut w = World::new(true);
        for op in &ops {
            w.step(op)?;
        }
        w.finish()?;
    }
}
