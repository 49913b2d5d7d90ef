//! The virtual GIC's pending/active state machine against a small reference model
//! (proptest): random injections, enables and disables, priority changes, and guest runs in
//! which the guest acknowledges and completes some of what the list registers hold. After
//! every step the vGIC's state must equal the model's, its invariants must hold, the list
//! registers must hold the most urgent interrupts, and nothing may be lost or invented.

use granite::gic::regs::offsets::*;
use granite::mmio::Outcome;
use granite::testing::FakeHw;
use granite::vcpu::vcpu_mpidr;
use granite::vgic::{Config, CpuDesc, Lr, Version, Vgic};
use proptest::prelude::*;
use std::collections::BTreeMap;

const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080a_0000;
/// The interrupts the test drives: three PPIs and three SPIs.
const IRQS: [u32; 6] = [16, 20, 27, 32, 40, 63];
const LRS: usize = 4;

#[derive(Clone, Debug)]
enum Op {
    Inject(usize),
    Enable(usize),
    Disable(usize),
    Priority(usize, u8),
    /// Run the guest: per loaded register, 0 = leave it, 1 = acknowledge, 2 = complete.
    Run(Vec<u8>),
    ClearPending(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..IRQS.len();
    prop_oneof![
        4 => i.clone().prop_map(Op::Inject),
        2 => i.clone().prop_map(Op::Enable),
        1 => i.clone().prop_map(Op::Disable),
        1 => (i.clone(), any::<u8>()).prop_map(|(i, p)| Op::Priority(i, p)),
        4 => proptest::collection::vec(0u8..3, LRS).prop_map(Op::Run),
        1 => i.prop_map(Op::ClearPending),
    ]
}

#[derive(Clone, Copy, Default, Debug, PartialEq)]
struct Model {
    enabled: bool,
    pending: bool,
    active: bool,
    priority: u8,
    /// The priority it was acknowledged with: its list register keeps it while it is active
    /// (the virtual CPU interface deactivates on EOI only at the dropped priority).
    active_priority: u8,
}

struct World {
    g: Vgic,
    hw: FakeHw,
    version: Version,
    m: BTreeMap<u32, Model>,
    /// What the last flush loaded (the hardware list registers).
    loaded: Vec<Lr>,
}

impl World {
    fn new(version: Version) -> World {
        let redist = if version == Version::V3 { vec![(GICR, 0x2_0000)] } else { vec![] };
        let g = Vgic::new(
            Config { version, nr_spis: 32, dist_base: GICD, redist, id_bits: 15 },
            vec![CpuDesc { mpidr: vcpu_mpidr(0), pcpu: 0 }],
        );
        g.vcpu_online(0);
        let hw = FakeHw::default();
        let ctlr = if version == Version::V3 { 2 } else { 1 };
        assert!(matches!(g.mmio(&hw, 0, GICD + GICD_CTLR, 4, true, ctlr), Some((Outcome::Done(_), _))));
        World { g, hw, version, m: IRQS.iter().map(|&i| (i, Model::default())).collect(), loaded: Vec::new() }
    }

    fn reg(&self, intid: u32, bank: u64) -> u64 {
        if intid < 32 && self.version == Version::V3 {
            GICR + GICR_FRAME + bank
        } else {
            GICD + bank + 4 * (intid as u64 / 32)
        }
    }

    fn write(&self, addr: u64, size: u8, v: u64) {
        let (o, _) = self.g.mmio(&self.hw, 0, addr, size, true, v).expect("vGIC address");
        assert_eq!(o, Outcome::Done(0));
    }

    /// Fold what the guest left in the list registers (as the exit path does).
    fn fold(&mut self) {
        let l = std::mem::take(&mut self.loaded);
        self.g.fold(0, &l);
    }

    fn step(&mut self, op: &Op) {
        // Register accesses and injections happen with the list registers folded (the
        // arch layer folds before emulating an access of the running vCPU).
        self.fold();
        match *op {
            Op::Inject(i) => {
                self.g.inject(0, IRQS[i]);
                self.m.get_mut(&IRQS[i]).unwrap().pending = true;
            }
            Op::Enable(i) | Op::Disable(i) => {
                let on = matches!(op, Op::Enable(_));
                let id = IRQS[i];
                self.write(self.reg(id, if on { GICD_ISENABLER } else { GICD_ICENABLER }), 4, 1 << (id % 32));
                self.m.get_mut(&id).unwrap().enabled = on;
            }
            Op::Priority(i, p) => {
                let id = IRQS[i];
                let addr = if id < 32 && self.version == Version::V3 {
                    GICR + GICR_FRAME + GICR_IPRIORITYR + id as u64
                } else {
                    GICD + GICD_IPRIORITYR + id as u64
                };
                self.write(addr, 1, p as u64);
                self.m.get_mut(&id).unwrap().priority = p & granite::vgic::PRIORITY_MASK;
            }
            Op::ClearPending(i) => {
                let id = IRQS[i];
                self.write(self.reg(id, GICD_ICPENDR), 4, 1 << (id % 32));
                self.m.get_mut(&id).unwrap().pending = false;
            }
            Op::Run(ref acts) => {
                let mut out = [Lr::default(); LRS];
                let f = self.g.flush(0, &mut out);
                let loaded = out[..f.loaded].to_vec();
                self.check_loaded(&loaded, f.underflow);
                // The guest: acknowledge (pending -> active) and complete (active -> gone).
                let mut after = Vec::new();
                for (lr, &a) in loaded.iter().zip(acts) {
                    let mut lr = *lr;
                    let m = self.m.get_mut(&lr.vintid).unwrap();
                    match a {
                        1 if lr.pending && !lr.active => {
                            lr.pending = false;
                            lr.active = true;
                            m.pending = false;
                            m.active = true;
                            m.active_priority = lr.priority;
                        }
                        2 if lr.active => {
                            lr.active = false;
                            m.active = false;
                        }
                        _ => {}
                    }
                    after.push(lr);
                }
                self.loaded = after;
            }
        }
    }

    /// The registers hold the most urgent wanted interrupts, each as the model says.
    fn check_loaded(&self, loaded: &[Lr], underflow: bool) {
        let wanted: Vec<(u8, u32)> = {
            let mut w: Vec<(u8, u32)> = self
                .m
                .iter()
                .filter(|(_, m)| m.active || (m.enabled && m.pending))
                .map(|(&i, m)| (m.priority, i))
                .collect();
            w.sort();
            w
        };
        let n = wanted.len().min(LRS);
        let got: Vec<u32> = loaded.iter().map(|l| l.vintid).collect();
        let want: Vec<u32> = wanted[..n].iter().map(|&(_, i)| i).collect();
        assert_eq!(got, want, "list registers: the {n} most urgent of {wanted:?}");
        assert_eq!(underflow, wanted.len() > LRS, "underflow asked exactly when entries wait");
        for lr in loaded {
            let m = self.m[&lr.vintid];
            assert_eq!((lr.pending, lr.active), (m.pending && m.enabled, m.active), "INTID {}", lr.vintid);
            assert_eq!(lr.priority, if m.active { m.active_priority } else { m.priority }, "INTID {}", lr.vintid);
        }
    }

    fn check(&mut self) {
        self.fold();
        assert!(self.g.check().is_empty(), "{:?}", self.g.check());
        for (&id, m) in &self.m {
            let s = self.g.irq_state(0, id).unwrap();
            assert_eq!((s.enabled, s.is_pending(), s.active), (m.enabled, m.pending, m.active), "INTID {id}");
            let listed = self.g.list(0).contains(&id);
            if m.active || (m.enabled && m.pending) {
                assert!(listed, "INTID {id} wanted but not listed");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn pending_active_state_machine_matches_the_model(v3 in any::<bool>(), ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new(if v3 { Version::V3 } else { Version::V2 });
        for op in &ops {
            w.step(op);
            w.check();
        }
        // Finally the guest takes and completes everything: nothing was lost.
        for id in IRQS {
            w.step(&Op::Enable(IRQS.iter().position(|&x| x == id).unwrap()));
        }
        for _ in 0..8 {
            w.step(&Op::Run(vec![1; LRS]));
            w.step(&Op::Run(vec![2; LRS]));
        }
        w.check();
        for (&id, m) in &w.m {
            prop_assert!(!m.pending && !m.active, "INTID {} never delivered", id);
        }
        prop_assert!(w.g.list(0).is_empty());
    }
}
