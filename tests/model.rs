//! Model-based property test: random sequences of add_to_physmap (grant frames, shared_info,
//! single and batch, by the domain itself or by dom0 on its behalf), remove_from_physmap,
//! memory reservation (decrease_reservation and populate_physmap on the same GFNs: RAM given
//! back and fresh RAM over grant frames and shared_info), setup_table growth and domain
//! teardown, checked after every step against a small reference model of "which frame is at
//! which GFN", plus the audit's invariants.

use granite::audit::audit;
use granite::hv::Options;
use granite::testing::*;
use granite::tlb::NoTlb;
use granite::types::{Gfn, Mfn};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use xen_abi::errno::*;
use xen_abi::gnttab::*;
use xen_abi::memory::*;
use xen_abi::*;

const MAX_FRAMES: u32 = 5;
const RAM_SLOT: u64 = GUEST_RAM_GFN + 12;
/// The GFNs ops pick from: grant-region slots, one guest RAM page, beyond the IPA, ~0.
fn gfn_pool() -> Vec<u64> {
    let mut v: Vec<u64> = (0..6).map(|i| GUEST_GNTTAB_GFN + i).collect();
    v.extend([RAM_SLOT, 1 << 29, u64::MAX]);
    v
}
fn in_ipa(gfn: u64) -> bool {
    gfn < 1 << 28 // 40-bit IPA
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Frame {
    Grant(u32),
    Shared,
    Ram,
    /// A page populate_physmap allocated (its MFN is the allocator's choice).
    Fresh,
}

#[derive(Clone, Debug)]
struct DomModel {
    nr_frames: u32,
    at: BTreeMap<u64, Frame>,
    gfn_of: BTreeMap<Frame, u64>,
}

impl DomModel {
    fn new() -> Self {
        DomModel { nr_frames: 1, at: BTreeMap::from([(RAM_SLOT, Frame::Ram)]), gfn_of: BTreeMap::new() }
    }
    /// add_to_physmap_one for a xenheap frame; `grow_to` is the grant index (grows first).
    fn add(&mut self, f: Frame, gfn: u64) -> i64 {
        if let Frame::Grant(i) = f {
            if i >= MAX_FRAMES {
                return -EINVAL;
            }
            self.nr_frames = self.nr_frames.max(i + 1);
        }
        if self.gfn_of.contains_key(&f) {
            return -EBUSY;
        }
        if !in_ipa(gfn) {
            return -EINVAL;
        }
        if let Some(old) = self.at.insert(gfn, f) {
            self.gfn_of.remove(&old);
        }
        if !matches!(f, Frame::Ram | Frame::Fresh) {
            self.gfn_of.insert(f, gfn);
        }
        0
    }
    /// decrease_reservation of one page: extents done (0 or 1).
    fn decrease(&mut self, gfn: u64) -> i64 {
        (self.remove(gfn) == 0) as i64
    }
    /// populate_physmap of one page: a fresh page replaces whatever is there.
    fn populate(&mut self, gfn: u64) -> i64 {
        if !in_ipa(gfn) {
            return 0;
        }
        if let Some(old) = self.at.insert(gfn, Frame::Fresh) {
            self.gfn_of.remove(&old);
        }
        1
    }
    fn remove(&mut self, gfn: u64) -> i64 {
        match self.at.remove(&gfn) {
            Some(f) => {
                self.gfn_of.remove(&f);
                0
            }
            None => -ENOENT,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// (acting domain, target: self or dom0 acting on domU) add grant frame idx at gfn
    AddGrant {
        by_dom0: bool,
        dom: usize,
        idx: u64,
        gfn: usize,
    },
    AddShared {
        by_dom0: bool,
        dom: usize,
        gfn: usize,
    },
    Remove {
        by_dom0: bool,
        dom: usize,
        gfn: usize,
    },
    Batch {
        dom: usize,
        shared: bool,
        entries: Vec<(u64, usize)>,
    },
    Setup {
        dom: usize,
        nr: u32,
    },
    /// XENMEM_decrease_reservation / populate_physmap of one page at `gfn`.
    Reservation {
        by_dom0: bool,
        dom: usize,
        populate: bool,
        gfn: usize,
    },
    Teardown,
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..gfn_pool().len();
    prop_oneof![
        4 => (any::<bool>(), 0..2usize, 0..7u64, g.clone()).prop_map(|(b, dom, idx, gfn)| Op::AddGrant { by_dom0: b, dom, idx, gfn }),
        2 => (any::<bool>(), 0..2usize, g.clone()).prop_map(|(b, dom, gfn)| Op::AddShared { by_dom0: b, dom, gfn }),
        4 => (any::<bool>(), 0..2usize, g.clone()).prop_map(|(b, dom, gfn)| Op::Remove { by_dom0: b, dom, gfn }),
        2 => (0..2usize, any::<bool>(), prop::collection::vec((0..7u64, g.clone()), 0..5)).prop_map(|(dom, shared, entries)| Op::Batch { dom, shared, entries }),
        1 => (0..2usize, 0..8u32).prop_map(|(dom, nr)| Op::Setup { dom, nr }),
        3 => (any::<bool>(), 0..2usize, any::<bool>(), g.clone())
            .prop_map(|(by_dom0, dom, populate, gfn)| Op::Reservation { by_dom0, dom, populate, gfn }),
        1 => Just(Op::Teardown),
    ]
}

struct World {
    m: HostMachine,
    g: [Guest; 2],
    model: [DomModel; 2],
    free_at_start: u64,
}

impl World {
    fn new() -> Self {
        let m =
            HostMachine::new(2048, 40, Arc::new(NoTlb), Options { max_grant_frames: MAX_FRAMES, ..Options::default() });
        let free_at_start = m.hv.mm.heap.free_frames();
        let g = [Guest::new(&m.hv, 0, 4), Guest::new(&m.hv, 1, 4)];
        World { m, g, model: [DomModel::new(), DomModel::new()], free_at_start }
    }

    /// The frame the model expects (`None`: a fresh page, any MFN).
    fn mfn_of(&self, dom: usize, f: Frame) -> Option<Mfn> {
        let g = &self.g[dom];
        match f {
            Frame::Grant(i) => Some(g.grant_frame_mfn(i as usize)),
            Frame::Shared => Some(g.d.shared_info),
            Frame::Ram => Some(g.ram.add(RAM_SLOT - GUEST_RAM_GFN)),
            Frame::Fresh => None,
        }
    }

    /// The domain issuing the call and the domid argument.
    fn caller(&self, by_dom0: bool, dom: usize) -> (&Guest, u16) {
        if by_dom0 && dom == 1 { (&self.g[0], 1) } else { (&self.g[dom], DOMID_SELF) }
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let pool = gfn_pool();
        let hv = &self.m.hv;
        match *op {
            Op::AddGrant { by_dom0, dom, idx, gfn } => {
                let (c, domid) = self.caller(by_dom0, dom);
                let got = c.add_to_physmap(hv, domid, XENMAPSPACE_GRANT_TABLE, idx, pool[gfn]);
                let want = if pool[gfn] == u64::MAX {
                    -EINVAL
                } else {
                    self.model[dom].add(Frame::Grant(idx as u32), pool[gfn])
                };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::AddShared { by_dom0, dom, gfn } => {
                let (c, domid) = self.caller(by_dom0, dom);
                let got = c.add_to_physmap(hv, domid, XENMAPSPACE_SHARED_INFO, 0, pool[gfn]);
                let want = if pool[gfn] == u64::MAX { -EINVAL } else { self.model[dom].add(Frame::Shared, pool[gfn]) };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Remove { by_dom0, dom, gfn } => {
                let (c, domid) = self.caller(by_dom0, dom);
                let got = c.remove(hv, domid, pool[gfn]);
                prop_assert_eq!(got, self.model[dom].remove(pool[gfn]), "{:?}", op);
            }
            Op::Batch { dom, shared, ref entries } => {
                let space = if shared { XENMAPSPACE_SHARED_INFO } else { XENMAPSPACE_GRANT_TABLE } as u16;
                let e: Vec<(u64, u64)> = entries.iter().map(|&(i, g)| (i, pool[g])).collect();
                let (rc, errs) = self.g[dom].batch(hv, DOMID_SELF, space, 0, &e);
                // INVALID_GFN ends the call with -EINVAL (Xen 4.17); what came before is done.
                let stop = e.iter().position(|&(_, g)| g == u64::MAX).unwrap_or(e.len());
                prop_assert_eq!(rc, if stop < e.len() { -EINVAL } else { 0 });
                let e = &e[..stop];
                let errs = &errs[..stop];
                let want: Vec<i32> = e
                    .iter()
                    .map(|&(idx, gfn)| match shared {
                        true if idx != 0 => -EINVAL,
                        true => self.model[dom].add(Frame::Shared, gfn),
                        false => self.model[dom].add(Frame::Grant(idx as u32), gfn),
                    } as i32)
                    .collect();
                prop_assert_eq!(errs, want, "{:?}", op);
            }
            Op::Setup { dom, nr } => {
                let (rc, st, list) = self.g[dom].setup_table(hv, DOMID_SELF, nr);
                prop_assert_eq!(rc, 0);
                let md = &mut self.model[dom];
                if nr > MAX_FRAMES {
                    prop_assert_eq!(st, GNTST_GENERAL_ERROR);
                } else {
                    md.nr_frames = md.nr_frames.max(nr);
                    prop_assert_eq!(st, GNTST_OKAY);
                    let want: Vec<u64> =
                        (0..nr).map(|i| md.gfn_of.get(&Frame::Grant(i)).copied().unwrap_or(u64::MAX)).collect();
                    prop_assert_eq!(list, want);
                }
            }
            Op::Reservation { by_dom0, dom, populate, gfn } => {
                let (c, domid) = self.caller(by_dom0, dom);
                let cmd = if populate { XENMEM_POPULATE_PHYSMAP } else { XENMEM_DECREASE_RESERVATION };
                c.put(hv, ARRAY, &pool[gfn]);
                let r = XenMemoryReservation {
                    extent_start: ARRAY,
                    nr_extents: 1,
                    extent_order: 0,
                    mem_flags: 0,
                    domid,
                    _pad: [0; 6],
                };
                c.put(hv, ARG, &r);
                let got = c.ret(hv, xen_abi::hypercall::MEMORY_OP, [cmd, ARG, 0, 0, 0]);
                let md = &mut self.model[dom];
                let want = if populate { md.populate(pool[gfn]) } else { md.decrease(pool[gfn]) };
                prop_assert_eq!(got, want, "{:?}", op);
            }
            Op::Teardown => {
                let old = self.g[1].d.clone();
                hv.destroy_domain(&old);
                prop_assert!(hv.domain_any_state(1).is_none(), "domU fully finalised");
                self.g[1] = Guest::new(hv, 1, 4);
                self.model[1] = DomModel::new();
            }
        }
        self.check()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let hv = &self.m.hv;
        let rep = audit(hv);
        prop_assert!(rep.is_clean(), "audit: {:?}", rep.violations);
        for dom in 0..2 {
            let (g, md) = (&self.g[dom], &self.model[dom]);
            prop_assert_eq!(g.d.grant.read().nr_frames(), md.nr_frames);
            for gfn in gfn_pool() {
                let got = g.lookup(hv, gfn).map(|m| m.mfn);
                match md.at.get(&gfn) {
                    Some(&Frame::Fresh) => {
                        let m = got
                            .ok_or_else(|| TestCaseError::fail(format!("d{dom} gfn {gfn:#x}: populated, unmapped")))?;
                        prop_assert_eq!(hv.mm.frames.owner(m), Some(g.d.id), "d{} gfn {:#x}: its own page", dom, gfn);
                        prop_assert!(!hv.mm.frames.is_xen_heap(m), "d{} gfn {:#x}: RAM, not a xenheap page", dom, gfn);
                    }
                    want => prop_assert_eq!(got, want.and_then(|&f| self.mfn_of(dom, f)), "d{} gfn {:#x}", dom, gfn),
                }
            }
            // Stored GFNs, read under the P2M lock (the frames are looked up before it is
            // taken: grant table -> P2M).
            let frames: Vec<Mfn> = (0..md.nr_frames).filter_map(|i| self.mfn_of(dom, Frame::Grant(i))).collect();
            let w = g.d.p2m.read(&hv.mm);
            for (i, &f) in frames.iter().enumerate() {
                let i = i as u32;
                let stored = hv.mm.frames.xenheap_gfn(f, &w);
                prop_assert_eq!(stored, md.gfn_of.get(&Frame::Grant(i)).map(|&g| Gfn(g)));
            }
            let stored = hv.mm.frames.xenheap_gfn(g.d.shared_info, &w);
            prop_assert_eq!(stored, md.gfn_of.get(&Frame::Shared).map(|&g| Gfn(g)));
        }
        Ok(())
    }

    /// Tear everything down: every frame must come back.
    fn finish(self) -> Result<(), TestCaseError> {
        let hv = &self.m.hv;
        for g in &self.g {
            hv.destroy_domain(&g.d);
        }
        prop_assert!(hv.domains().is_empty());
        prop_assert_eq!(hv.mm.heap.free_frames(), self.free_at_start, "reference counts balance: every page freed");
        prop_assert_eq!(hv.mm.xen_pages(), 0);
        prop_assert!(audit(hv).is_clean());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn physmap_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut w = World::new();
        for op in &ops {
            w.step(op)?;
        }
        w.finish()?;
    }
}
