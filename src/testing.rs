//! A simulated machine for host tests, benchmarks, fuzzing and model checking: a RAM arena on
//! the host heap, a frame table over it, and a hypervisor using them. The same core code runs
//! as on the image; only the physical-memory offset and the TLB implementation differ.
#![cfg(not(target_os = "none"))]

use crate::hv::{Hypervisor, Options};
use crate::hw::Hw;
use crate::mm::{FrameTable, Mm, PhysMap};
use crate::p2m::StageConfig;
use crate::tlb::TlbOps;
use crate::types::{Mfn, PAGE_SIZE};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::sync::Arc;

/// Where the simulated RAM starts (1 GiB, like QEMU virt).
pub const RAM_BASE_MFN: Mfn = Mfn(0x40000);

struct Arena {
    ptr: *mut u8,
    layout: Layout,
}
// SAFETY: the arena is plain memory owned by the machine; access is synchronised by the core.
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}
impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: allocated in `HostMachine::new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// The machine's services as host tests see them: kicks and console lines are recorded, the
/// counter is a number the test sets (it does not move by itself). All CPUs are online.
pub struct FakeHw {
    pub kicks: std::sync::Mutex<alloc::vec::Vec<usize>>,
    /// Operations on physical SPIs, in order.
    pub irq_ops: std::sync::Mutex<alloc::vec::Vec<(u32, crate::hw::IrqOp)>>,
    pub lines: std::sync::Mutex<alloc::vec::Vec<(DomId, alloc::string::String)>>,
    /// Each domain's unfinished console line.
    partial: std::sync::Mutex<std::collections::BTreeMap<DomId, alloc::string::String>>,
    pub now: core::sync::atomic::AtomicU64,
}

impl Default for FakeHw {
    fn default() -> Self {
        FakeHw {
            kicks: Default::default(),
            irq_ops: Default::default(),
            lines: Default::default(),
            partial: Default::default(),
            now: core::sync::atomic::AtomicU64::new(1_000_000),
        }
    }
}

impl FakeHw {
    /// Kicks sent so far (and forget them).
    pub fn take_kicks(&self) -> alloc::vec::Vec<usize> {
        core::mem::take(&mut *self.kicks.lock().unwrap())
    }
    /// Operations on physical SPIs so far (and forget them).
    pub fn take_irq_ops(&self) -> alloc::vec::Vec<(u32, crate::hw::IrqOp)> {
        core::mem::take(&mut *self.irq_ops.lock().unwrap())
    }
    /// Domain `dom`'s unfinished console line, as printed so far.
    pub fn partial_line(&self, dom: DomId) -> alloc::string::String {
        self.partial.lock().unwrap().get(&dom).cloned().unwrap_or_default()
    }
    /// Console lines printed so far (and forget them).
    pub fn take_lines(&self) -> alloc::vec::Vec<(DomId, alloc::string::String)> {
        core::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Hw for FakeHw {
    fn kick(&self, pcpu: usize) {
        self.kicks.lock().unwrap().push(pcpu);
    }
    fn console_write(&self, dom: DomId, text: &[u8], starts: bool, ends: bool) {
        let mut partial = self.partial.lock().unwrap();
        let line = partial.entry(dom).or_default();
        if starts {
            line.clear();
        }
        line.push_str(&alloc::string::String::from_utf8_lossy(text));
        if ends {
            let l = core::mem::take(line);
            self.lines.lock().unwrap().push((dom, l));
        }
    }
    fn counter(&self) -> u64 {
        self.now.load(core::sync::atomic::Ordering::Relaxed)
    }
    fn counter_hz(&self) -> u64 {
        62_500_000
    }
    fn irq(&self, intid: u32, op: crate::hw::IrqOp) {
        self.irq_ops.lock().unwrap().push((intid, op));
    }
}

/// A hypervisor over `frames` simulated RAM frames, all given to its heap.
pub struct HostMachine {
    // Declared before the arena so that it is dropped first.
    pub hv: Hypervisor,
    pub hw: Arc<FakeHw>,
    /// What [`HostMachine::reset`] builds the next hypervisor from.
    fresh: Fresh,
    _arena: Arena,
}

struct Fresh {
    phys: PhysMap,
    frames: u64,
    ipa_bits: u32,
    tlb: Arc<dyn TlbOps>,
    opts: Options,
}

impl Fresh {
    /// A hypervisor over the whole arena, as booted (every frame in the heap, every CPU online).
    fn hypervisor(&self) -> (Hypervisor, Arc<FakeHw>) {
        let mm = Mm::new(FrameTable::new(RAM_BASE_MFN, self.frames), self.phys, self.tlb.clone());
        mm.heap.add_range(&mm.frames, RAM_BASE_MFN, self.frames);
        let stage = StageConfig::new(self.ipa_bits, self.ipa_bits, false).expect("unsupported IPA size");
        let hw = Arc::new(FakeHw::default());
        let hv = Hypervisor::new(mm, stage, self.opts.clone(), hw.clone());
        for c in 0..crate::sched::MAX_CPUS {
            hv.sched.set_online(c);
        }
        (hv, hw)
    }
}

impl HostMachine {
    pub fn new(frames: u64, ipa_bits: u32, tlb: Arc<dyn TlbOps>, opts: Options) -> Self {
        Self::with_boot_plan(frames, ipa_bits, tlb, opts, |_| {})
    }

    /// Like `new`, but the RAM first goes through a boot-memory plan that `carve` may reserve
    /// and carve from (as the image's boot does for dom0) before the rest reaches the heap.
    pub fn with_boot_plan(
        frames: u64,
        ipa_bits: u32,
        tlb: Arc<dyn TlbOps>,
        opts: Options,
        carve: impl FnOnce(&mut crate::bootmem::BootMem),
    ) -> Self {
        let layout = Layout::from_size_align((frames * PAGE_SIZE) as usize, PAGE_SIZE as usize).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "arena allocation failed");
        let first = RAM_BASE_MFN.addr();
        // SAFETY: physical [first, first + size) is backed by the arena at `ptr`.
        let phys =
            unsafe { PhysMap::new((ptr as usize).wrapping_sub(first as usize), first, first + frames * PAGE_SIZE) };
        let mm = Mm::new(FrameTable::new(RAM_BASE_MFN, frames), phys, tlb.clone());
        let mut plan = crate::bootmem::BootMem::new(&[crate::dt::Region::new(first, frames * PAGE_SIZE)]).unwrap();
        carve(&mut plan);
        for r in plan.into_heap().iter() {
            mm.heap.add_range(&mm.frames, r.first_mfn(), r.frames());
        }
        let stage = StageConfig::new(ipa_bits, ipa_bits, false).expect("unsupported IPA size");
        let hw = Arc::new(FakeHw::default());
        let fresh = Fresh { phys, frames, ipa_bits, tlb, opts: opts.clone() };
        let hv = Hypervisor::new(mm, stage, opts, hw.clone());
        for c in 0..crate::sched::MAX_CPUS {
            hv.sched.set_online(c);
        }
        HostMachine { hv, hw, fresh, _arena: Arena { ptr, layout } }
    }

    /// Replace the hypervisor by a freshly booted one over the same simulated RAM, as if the
    /// machine had been built again (the fuzzer's way of starting each input from the same
    /// state without allocating and faulting in the RAM again). Exact: the frame table, the
    /// page allocator and every structure are new, and every page is zeroed when it is
    /// allocated, so what the old hypervisor left in RAM is never seen. Only for machines
    /// built with [`HostMachine::new`] (no boot-memory plan).
    pub fn reset(&mut self) {
        let (hv, hw) = self.fresh.hypervisor();
        // The old hypervisor goes first (its domains' Drop may touch their pages).
        self.hv = hv;
        self.hw = hw;
    }
}

use crate::domain::Domain;
use crate::hypercall::{self, Call, IdentityVa, Outcome, Pod};
use crate::types::{DomId, Gfn};
use xen_abi::gnttab::*;
use xen_abi::memory::*;
use xen_abi::*;

/// Guest RAM starts at this GFN in simulated guests (GUEST_RAM0_BASE).
pub const GUEST_RAM_GFN: u64 = guest_layout::GUEST_RAM0_BASE >> 12;
/// The guest's grant-table region (GUEST_GNTTAB_BASE).
pub const GUEST_GNTTAB_GFN: u64 = guest_layout::GUEST_GNTTAB_BASE >> 12;

/// A simulated guest: a domain with `pages` of RAM mapped at [`GUEST_RAM_GFN`], whose first
/// two pages serve as hypercall argument buffers. Its hypercalls go through the real dispatch
/// with a stage-1-off translation, exactly like a guest kernel running with its MMU off.
pub struct Guest {
    pub d: Arc<Domain>,
    pub ram: Mfn,
    pub pages: u64,
}

/// Guest-physical address of the argument area (RAM page 0 and 1).
pub const ARG: u64 = GUEST_RAM_GFN << 12;
/// A second area for arrays (RAM page 2 and 3).
pub const ARRAY: u64 = ARG + 2 * PAGE_SIZE;

impl Guest {
    /// Create domain `id` with `2^order` RAM pages.
    pub fn new(hv: &Hypervisor, id: DomId, order: u32) -> Guest {
        Guest::with_vcpus(hv, id, order, 1)
    }

    /// What Linux does when it sets up its GIC and event channels: enable the distributor,
    /// then the event-channel PPI on every vCPU, through its virtual GIC's registers
    /// (GICR_ISENABLER0 of each redistributor; a GICv2's banked GICD_ISENABLER0).
    pub fn enable_event_ppi(&self, hv: &Hypervisor) {
        use crate::gic::regs::offsets::{GICD_CTLR, GICD_ISENABLER, GICR_ISENABLER0};
        let cfg = self.d.vgic.config();
        let ctlr = if cfg.redist.is_empty() { 1 } else { 0x12 };
        let r = self.d.vgic.mmio(&*hv.hw, 0, cfg.dist_base + GICD_CTLR, 4, true, ctlr);
        assert!(matches!(r, Some((crate::mmio::Outcome::Done(_), _))), "enable the distributor: {r:?}");
        for v in 0..self.d.vcpus.len() {
            let reg = match cfg.redist.first() {
                Some(&(base, _)) => {
                    base + v as u64 * crate::vgic::guest::GUEST_GICV3_RDIST_STRIDE + 0x1_0000 + GICR_ISENABLER0
                }
                None => cfg.dist_base + GICD_ISENABLER,
            };
            let r = self.d.vgic.mmio(&*hv.hw, v, reg, 4, true, 1 << self.d.evtchn_ppi);
            assert!(matches!(r, Some((crate::mmio::Outcome::Done(_), _))), "enable PPI {}: {r:?}", self.d.evtchn_ppi);
        }
    }

    /// Issue hypercall `op`, following continuations like a vCPU re-executing `HVC`.
    pub fn hcall(&self, hv: &Hypervisor, op: u64, args: [u64; 5]) -> Outcome {
        let mut a = args;
        let call = Call::new(hv, &self.d, 0, &IdentityVa);
        for _ in 0..1_000_000 {
            match hypercall::hypercall(&call, op, &mut a) {
                Outcome::Continue => continue,
                o => return o,
            }
        }
        panic!("hypercall {op} never finished");
    }

    pub fn ret(&self, hv: &Hypervisor, op: u64, args: [u64; 5]) -> i64 {
        match self.hcall(hv, op, args) {
            Outcome::Return(r) => r,
            o => panic!("unexpected outcome {o:?}"),
        }
    }

    /// Write `v` at guest-physical `gpa` through the guest-memory accessor.
    pub fn put<T: Pod>(&self, hv: &Hypervisor, gpa: u64, v: &T) {
        hypercall::GuestMem::new(hv, &self.d, &IdentityVa).write(gpa, v).expect("guest write")
    }
    pub fn get<T: Pod>(&self, hv: &Hypervisor, gpa: u64) -> T {
        hypercall::GuestMem::new(hv, &self.d, &IdentityVa).read(gpa).expect("guest read")
    }

    pub fn add_to_physmap(&self, hv: &Hypervisor, domid: DomId, space: u32, idx: u64, gfn: u64) -> i64 {
        let x = XenAddToPhysmap { domid, size: 0, space, idx, gpfn: gfn };
        self.put(hv, ARG, &x);
        self.ret(hv, xen_abi::hypercall::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0])
    }
    pub fn map_grant_frame(&self, hv: &Hypervisor, idx: u64, gfn: u64) -> i64 {
        self.add_to_physmap(hv, DOMID_SELF, XENMAPSPACE_GRANT_TABLE, idx, gfn)
    }
    pub fn map_shared_info(&self, hv: &Hypervisor, gfn: u64) -> i64 {
        self.add_to_physmap(hv, DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, gfn)
    }
    pub fn remove(&self, hv: &Hypervisor, domid: DomId, gfn: u64) -> i64 {
        let x = XenRemoveFromPhysmap { domid, _pad: [0; 6], gpfn: gfn };
        self.put(hv, ARG, &x);
        self.ret(hv, xen_abi::hypercall::MEMORY_OP, [XENMEM_REMOVE_FROM_PHYSMAP, ARG, 0, 0, 0])
    }
    /// add_to_physmap_batch of `(idx, gfn)` pairs; returns the call's result and the
    /// per-entry errors.
    pub fn batch(
        &self,
        hv: &Hypervisor,
        domid: DomId,
        space: u16,
        foreign: u16,
        e: &[(u64, u64)],
    ) -> (i64, alloc::vec::Vec<i32>) {
        let n = e.len() as u64;
        let (idxs, gpfns, errs) = (ARRAY, ARRAY + 8 * n, ARRAY + 16 * n);
        for (i, &(idx, gfn)) in e.iter().enumerate() {
            self.put(hv, idxs + 8 * i as u64, &idx);
            self.put(hv, gpfns + 8 * i as u64, &gfn);
            self.put(hv, errs + 4 * i as u64, &0x5a5a_5a5au32);
        }
        let b = XenAddToPhysmapBatch { domid, space, size: n as u16, u: foreign, idxs, gpfns, errs };
        self.put(hv, ARG, &b);
        let r = self.ret(hv, xen_abi::hypercall::MEMORY_OP, [XENMEM_ADD_TO_PHYSMAP_BATCH, ARG, 0, 0, 0]);
        (r, (0..n).map(|i| self.get::<i32>(hv, errs + 4 * i)).collect())
    }
    /// GNTTABOP_query_size: (rc, status, nr_frames, max_nr_frames).
    pub fn query_size(&self, hv: &Hypervisor, dom: DomId) -> (i64, i16, u32, u32) {
        self.put(hv, ARG, &GnttabQuerySize { dom, status: 99, ..Default::default() });
        let r = self.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [GNTTABOP_QUERY_SIZE, ARG, 1, 0, 0]);
        let q: GnttabQuerySize = self.get(hv, ARG);
        (r, q.status, q.nr_frames, q.max_nr_frames)
    }
    /// GNTTABOP_setup_table: (rc, status, frame list).
    pub fn setup_table(&self, hv: &Hypervisor, dom: DomId, nr: u32) -> (i64, i16, alloc::vec::Vec<u64>) {
        self.put(
            hv,
            ARG,
            &GnttabSetupTable { dom, nr_frames: nr, status: 99, frame_list: ARRAY, ..Default::default() },
        );
        let r = self.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [GNTTABOP_SETUP_TABLE, ARG, 1, 0, 0]);
        let s: GnttabSetupTable = self.get(hv, ARG);
        let list = if s.status == GNTST_OKAY {
            (0..nr as u64).map(|i| self.get(hv, ARRAY + 8 * i)).collect()
        } else {
            alloc::vec![]
        };
        (r, s.status, list)
    }
    /// Machine frame behind a GFN of this guest, if mapped.
    pub fn lookup(&self, hv: &Hypervisor, gfn: u64) -> Option<crate::p2m::Mapping> {
        self.d.p2m.read(&hv.mm).lookup(Gfn(gfn))
    }
    /// Write v1 grant entry `gref` through the guest's own mapping of grant frame 0.
    pub fn grant_frame_mfn(&self, idx: usize) -> Mfn {
        self.d.grant.read().frame(idx).expect("grant frame")
    }
}

/// A hash of everything a hypercall could change, for "state unchanged" checks: every P2M
/// leaf, every grant table's size and pinned entries, every maptrack, event channels, HVM
/// parameters and page limits, every frame's `count_info` and `type_info`, the heap's free
/// count, the wallclock, console input waiting.
pub fn fingerprint(hv: &Hypervisor) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut f = |v: u64| {
        for b in v.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    };
    for d in hv.domains() {
        f(d.id as u64);
        d.p2m
            .write(&hv.mm)
            .for_each_leaf(|g, m| [g.0, m.mfn.0, m.ty as u64, m.order as u64].into_iter().for_each(&mut f));
        let st = d.grant.read();
        f(st.nr_frames() as u64);
        for (i, a) in st.active_entries().iter().enumerate().filter(|(_, a)| a.pin != 0) {
            [i as u64, a.pin as u64, a.domid as u64, a.mfn.0].into_iter().for_each(&mut f);
        }
        drop(st);
        for (hd, e) in d.grant.maptrack().in_use() {
            [hd as u64, e.flags as u64, e.domid as u64, e.gref as u64].into_iter().for_each(&mut f);
        }
    }
    for d in hv.domains() {
        fingerprint_events(hv, &d, &mut f);
        (0..xen_abi::hvm::HVM_NR_PARAMS).for_each(|i| f(d.hvm_param(i)));
        f(d.max_pages.load(core::sync::atomic::Ordering::Relaxed));
    }
    f(hv.console_in.pending() as u64);
    for p in hv.mm.frames.iter() {
        f(p.count_info());
        f(p.type_info());
    }
    f(hv.mm.heap.free_frames());
    f(hv.clock.wallclock().0);
    f(hv.clock.wallclock().1 as u64);
    h
}

/// The event-channel and vCPU-ABI state of `d` for [`fingerprint`]: its table, its
/// `shared_info` page, each vCPU's `vcpu_info` as the guest sees it, upcalls, runstate and
/// `vm_assist`.
fn fingerprint_events(hv: &Hypervisor, d: &Domain, f: &mut impl FnMut(u64)) {
    use crate::evtchn::{State, VcpuInfoAt};
    let s = d.evtchn.snapshot();
    [s.valid as u64, s.active as u64, s.dead as u64, s.fifo as u64, s.next_reset as u64, s.event_array_pages as u64]
        .into_iter()
        .for_each(&mut *f);
    for (port, c) in &s.ports {
        let (kind, a, b) = match c.state {
            State::Free => (0, 0, 0),
            State::Reserved => (1, 0, 0),
            State::Unbound { remote } => (2, remote as u64, 0),
            State::Interdomain { remote, port } => (3, remote as u64, port as u64),
            State::Virq(v) => (4, v as u64, 0),
            State::Ipi => (5, 0, 0),
        };
        [*port as u64, kind, a, b, c.notify as u64, c.priority as u64].into_iter().for_each(&mut *f);
    }
    for (vcpu, virq, port) in &s.virqs {
        [*vcpu as u64, *virq as u64, *port as u64].into_iter().for_each(&mut *f);
    }
    for at in &s.vcpu_info {
        match at {
            VcpuInfoAt::SharedInfo => f(1),
            VcpuInfoAt::Dummy => f(2),
            VcpuInfoAt::Guest { mfn, offset } => [3, mfn.0, *offset as u64].into_iter().for_each(&mut *f),
        }
    }
    s.pages.iter().for_each(|m| f(m.0));
    for cb in &s.control_blocks {
        match cb {
            Some((m, o)) => [m.0, *o as u64].into_iter().for_each(&mut *f),
            None => f(0),
        }
    }
    if hv.mm.frames.owner(d.shared_info) == Some(d.id) {
        let mut si = [0u8; core::mem::size_of::<SharedInfo>()];
        hv.mm.phys.read(d.shared_info.addr(), &mut si);
        si.chunks(8).for_each(|c| f(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))));
    }
    for v in d.vcpus.iter() {
        if let Some(a) = d.evtchn.vcpu_info_addr(d.shared_info, v.id) {
            let mut vi = [0u8; core::mem::size_of::<VcpuInfo>()];
            hv.mm.phys.read(a, &mut vi);
            vi.chunks(8).for_each(|c| f(u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))));
        }
        f(v.upcalls.load(core::sync::atomic::Ordering::Relaxed));
        let r = *v.runstate.lock();
        [r.state as u64, r.entry_time, r.time[0], r.time[1], r.time[2], r.time[3], r.area]
            .into_iter()
            .for_each(&mut *f);
    }
    f(d.vm_assist.load(core::sync::atomic::Ordering::Relaxed));
}

impl Guest {
    /// Write v1 grant entry `gref` into this guest's shared grant frames (as the guest would
    /// through its mapping of them).
    pub fn write_grant(&self, hv: &Hypervisor, gref: u32, flags: u16, domid: DomId, frame: u32) {
        let st = self.d.grant.read();
        let a = st.entry_addr(gref).expect("grant ref within the table");
        let e = GrantEntryV1 { flags, domid, frame };
        // SAFETY: GrantEntryV1 is plain data of 8 bytes.
        let bytes: [u8; 8] = unsafe { core::mem::transmute(e) };
        hv.mm.phys.write(a, &bytes);
    }
    pub fn read_grant(&self, hv: &Hypervisor, gref: u32) -> GrantEntryV1 {
        let st = self.d.grant.read();
        let mut b = [0u8; 8];
        hv.mm.phys.read(st.entry_addr(gref).unwrap(), &mut b);
        // SAFETY: GrantEntryV1 is plain data of 8 bytes.
        unsafe { core::mem::transmute(b) }
    }
    /// GNTTABOP_map_grant_ref: the op as written back.
    pub fn map_grant(&self, hv: &Hypervisor, dom: DomId, gref: u32, flags: u32, host_addr: u64) -> GnttabMapGrantRef {
        let op = GnttabMapGrantRef { host_addr, flags, ref_: gref, dom, status: 99, handle: 0xdead, dev_bus_addr: 0 };
        self.put(hv, ARG, &op);
        assert_eq!(self.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [GNTTABOP_MAP_GRANT_REF, ARG, 1, 0, 0]), 0);
        self.get(hv, ARG)
    }
    /// GNTTABOP_unmap_grant_ref: the status.
    pub fn unmap_grant(&self, hv: &Hypervisor, handle: u32, host_addr: u64) -> i16 {
        let op = GnttabUnmapGrantRef { host_addr, dev_bus_addr: 0, handle, status: 99, _pad: 0 };
        self.put(hv, ARG, &op);
        assert_eq!(self.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [GNTTABOP_UNMAP_GRANT_REF, ARG, 1, 0, 0]), 0);
        self.get::<GnttabUnmapGrantRef>(hv, ARG).status
    }
    /// GNTTABOP_copy of one op: the status.
    pub fn grant_copy(&self, hv: &Hypervisor, op: GnttabCopy) -> i16 {
        self.put(hv, ARG, &op);
        assert_eq!(self.ret(hv, xen_abi::hypercall::GRANT_TABLE_OP, [GNTTABOP_COPY, ARG, 1, 0, 0]), 0);
        self.get::<GnttabCopy>(hv, ARG).status
    }
}

/// Event channels, vCPU ops and platform ops, as a guest issues them (from vCPU 0 unless
/// said otherwise; the argument at [`ARG`]). Each returns the hypercall's result and what
/// the hypervisor wrote back.
impl Guest {
    /// Domain `id` with `2^order` RAM pages and `vcpus` vCPUs, vCPU `i` on CPU `i`.
    pub fn with_vcpus(hv: &Hypervisor, id: DomId, order: u32, vcpus: usize) -> Guest {
        Guest::with_gic(hv, id, order, vcpus, crate::vgic::Version::V3)
    }

    /// [`Guest::with_vcpus`] with a virtual GIC of `version` at Xen's guest addresses.
    pub fn with_gic(hv: &Hypervisor, id: DomId, order: u32, vcpus: usize, version: crate::vgic::Version) -> Guest {
        Guest::try_with_gic(hv, id, order, vcpus, version).expect("create the domain and its RAM")
    }

    /// [`Guest::with_gic`], or the error when the machine cannot give the domain its RAM (the
    /// half-built domain is destroyed again), as a toolstack's domain creation fails.
    pub fn try_with_gic(
        hv: &Hypervisor,
        id: DomId,
        order: u32,
        vcpus: usize,
        version: crate::vgic::Version,
    ) -> crate::types::Result<Guest> {
        let mut cfg = hv.domain_config(id);
        cfg.pcpus = (0..vcpus).collect();
        cfg.vgic = crate::vgic::guest::config(version, vcpus as u32);
        let d = hv.create_domain(cfg)?;
        let ram = match hv.mm.alloc_domheap(id, order) {
            Ok(ram) => ram,
            Err(e) => {
                hv.destroy_domain(&d);
                return Err(e);
            }
        };
        d.p2m.write(&hv.mm).insert(Gfn(GUEST_RAM_GFN), 1 << order, ram, crate::p2m::P2mType::RamRw).expect("map RAM");
        let g = Guest { d, ram, pages: 1 << order };
        g.enable_event_ppi(hv);
        Ok(g)
    }

    /// Hypercall `op` issued by vCPU `vcpu`, following continuations.
    pub fn ret_as(&self, hv: &Hypervisor, vcpu: usize, op: u64, args: [u64; 5]) -> i64 {
        let mut a = args;
        let call = Call::new(hv, &self.d, vcpu, &IdentityVa);
        for _ in 0..1_000_000 {
            match hypercall::hypercall(&call, op, &mut a) {
                Outcome::Continue => continue,
                Outcome::Return(r) => return r,
                o => panic!("unexpected outcome {o:?}"),
            }
        }
        panic!("hypercall {op} never finished");
    }

    /// An event-channel op with argument `v` at [`ARG`]: the result and `v` as written back.
    pub fn evtchn_op<T: Pod>(&self, hv: &Hypervisor, cmd: u32, v: &T) -> (i64, T) {
        self.evtchn_op_as(hv, 0, cmd, v)
    }
    pub fn evtchn_op_as<T: Pod>(&self, hv: &Hypervisor, vcpu: usize, cmd: u32, v: &T) -> (i64, T) {
        self.put(hv, ARG, v);
        let r = self.ret_as(hv, vcpu, xen_abi::hypercall::EVENT_CHANNEL_OP, [cmd as u64, ARG, 0, 0, 0]);
        (r, self.get(hv, ARG))
    }
    /// A port from an op that returns one: the port, or the (negative) error.
    fn port_or_err(r: i64, port: u32) -> i64 {
        if r == 0 { port as i64 } else { r }
    }

    pub fn alloc_unbound(&self, hv: &Hypervisor, dom: DomId, remote_dom: DomId) -> i64 {
        use xen_abi::evtchn::EVTCHNOP_ALLOC_UNBOUND;
        let (r, a) = self.evtchn_op(hv, EVTCHNOP_ALLOC_UNBOUND, &EvtchnAllocUnbound { dom, remote_dom, port: 0 });
        Self::port_or_err(r, a.port)
    }
    pub fn bind_interdomain(&self, hv: &Hypervisor, remote_dom: DomId, remote_port: u32) -> i64 {
        let b = EvtchnBindInterdomain { remote_dom, _pad: 0, remote_port, local_port: 0 };
        let (r, a) = self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_BIND_INTERDOMAIN, &b);
        Self::port_or_err(r, a.local_port)
    }
    pub fn bind_virq(&self, hv: &Hypervisor, virq: u32, vcpu: u32) -> i64 {
        let (r, a) = self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_BIND_VIRQ, &EvtchnBindVirq { virq, vcpu, port: 0 });
        Self::port_or_err(r, a.port)
    }
    pub fn bind_ipi(&self, hv: &Hypervisor, vcpu: u32) -> i64 {
        let (r, a) = self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_BIND_IPI, &EvtchnBindIpi { vcpu, port: 0 });
        Self::port_or_err(r, a.port)
    }
    pub fn evtchn_close(&self, hv: &Hypervisor, port: u32) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_CLOSE, &EvtchnPort { port }).0
    }
    pub fn evtchn_send(&self, hv: &Hypervisor, port: u32) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_SEND, &EvtchnPort { port }).0
    }
    pub fn evtchn_unmask(&self, hv: &Hypervisor, port: u32) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_UNMASK, &EvtchnPort { port }).0
    }
    pub fn evtchn_status(&self, hv: &Hypervisor, dom: DomId, port: u32) -> (i64, EvtchnStatus) {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_STATUS, &EvtchnStatus { dom, port, ..Default::default() })
    }
    pub fn bind_vcpu(&self, hv: &Hypervisor, port: u32, vcpu: u32) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_BIND_VCPU, &EvtchnBindVcpu { port, vcpu }).0
    }
    pub fn evtchn_reset(&self, hv: &Hypervisor, dom: DomId) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_RESET, &EvtchnReset { dom }).0
    }
    /// `EVTCHNOP_init_control`: the result and the `link_bits` written back.
    pub fn init_control(&self, hv: &Hypervisor, vcpu: u32, gfn: u64, offset: u32) -> (i64, u8) {
        let c = EvtchnInitControl { control_gfn: gfn, offset, vcpu, ..Default::default() };
        let (r, a) = self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_INIT_CONTROL, &c);
        (r, a.link_bits)
    }
    pub fn expand_array(&self, hv: &Hypervisor, gfn: u64) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_EXPAND_ARRAY, &EvtchnExpandArray { array_gfn: gfn }).0
    }
    pub fn set_priority(&self, hv: &Hypervisor, port: u32, priority: u32) -> i64 {
        self.evtchn_op(hv, xen_abi::evtchn::EVTCHNOP_SET_PRIORITY, &EvtchnSetPriority { port, priority }).0
    }

    /// `VCPUOP_register_vcpu_info` for `vcpu`, issued by vCPU `by`.
    pub fn register_vcpu_info(&self, hv: &Hypervisor, by: usize, vcpu: u32, gfn: u64, offset: u32) -> i64 {
        self.put(hv, ARG, &VcpuRegisterVcpuInfo { mfn: gfn, offset, rsvd: 0 });
        let op = xen_abi::vcpuop::VCPUOP_REGISTER_VCPU_INFO as u64;
        self.ret_as(hv, by, xen_abi::hypercall::VCPU_OP, [op, vcpu as u64, ARG, 0, 0])
    }
    /// `VCPUOP_register_runstate_memory_area` for `vcpu` at guest address `addr`, by vCPU `by`.
    pub fn register_runstate(&self, hv: &Hypervisor, by: usize, vcpu: u32, addr: u64) -> i64 {
        self.put(hv, ARG, &VcpuRegisterRunstateMemoryArea { addr });
        let op = xen_abi::vcpuop::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA as u64;
        self.ret_as(hv, by, xen_abi::hypercall::VCPU_OP, [op, vcpu as u64, ARG, 0, 0])
    }
    pub fn vm_assist(&self, hv: &Hypervisor, cmd: u32, ty: u32) -> i64 {
        self.ret(hv, xen_abi::hypercall::VM_ASSIST, [cmd as u64, ty as u64, 0, 0, 0])
    }
    pub fn platform_op(&self, hv: &Hypervisor, op: &XenPlatformOp) -> i64 {
        self.put(hv, ARG, op);
        self.ret(hv, xen_abi::hypercall::PLATFORM_OP, [ARG, 0, 0, 0, 0])
    }

    /// The domain's `shared_info` as the guest sees it.
    pub fn shared_info(&self, hv: &Hypervisor) -> SharedInfo {
        hv.mm.phys.read_obj(self.d.shared_info.addr())
    }
    /// vCPU `vcpu`'s `vcpu_info` as the guest sees it (`None` while it is the dummy).
    pub fn vcpu_info(&self, hv: &Hypervisor, vcpu: u32) -> Option<VcpuInfo> {
        self.d.evtchn.vcpu_info_addr(self.d.shared_info, vcpu).map(|a| hv.mm.phys.read_obj(a))
    }
    /// Upcalls raised so far for vCPU `vcpu`.
    pub fn upcalls(&self, vcpu: usize) -> u64 {
        self.d.vcpus[vcpu].upcalls.load(core::sync::atomic::Ordering::Relaxed)
    }
    /// The guest sets (or clears) a 2-level mask bit, atomically, as Linux does.
    pub fn set_2l_mask(&self, hv: &Hypervisor, port: u32, masked: bool) {
        let w = hv.mm.phys.atomic_u64(self.d.shared_info.addr() + 560 + 8 * (port / 64) as u64);
        let bit = 1u64 << (port % 64);
        if masked {
            w.fetch_or(bit, core::sync::atomic::Ordering::SeqCst);
        } else {
            w.fetch_and(!bit, core::sync::atomic::Ordering::SeqCst);
        }
    }
    /// The guest clears a 2-level pending bit (acknowledges the event).
    pub fn clear_2l_pending(&self, hv: &Hypervisor, port: u32) {
        let w = hv.mm.phys.atomic_u64(self.d.shared_info.addr() + 48 + 8 * (port / 64) as u64);
        w.fetch_and(!(1u64 << (port % 64)), core::sync::atomic::Ordering::SeqCst);
    }
    /// The guest handles an upcall on `vcpu` (2-level, as Linux's `xen_evtchn_do_upcall`):
    /// clear `evtchn_upcall_pending`, take the selector, and return the pending unmasked ports
    /// of the selected words, acknowledging them (clearing their pending bits).
    pub fn consume_2l(&self, hv: &Hypervisor, vcpu: u32) -> alloc::vec::Vec<u32> {
        use core::sync::atomic::Ordering::SeqCst;
        let Some(a) = self.d.evtchn.vcpu_info_addr(self.d.shared_info, vcpu) else { return alloc::vec![] };
        hv.mm.phys.atomic_u64(a).fetch_and(!0xff, SeqCst);
        let sel = hv.mm.phys.atomic_u64(a + 8).swap(0, SeqCst);
        let si = self.d.shared_info.addr();
        let mut out = alloc::vec![];
        for w in (0..64u32).filter(|w| sel & (1 << w) != 0) {
            let pending = hv.mm.phys.atomic_u64(si + 48 + 8 * w as u64);
            let mask = hv.mm.phys.atomic_u64(si + 560 + 8 * w as u64).load(SeqCst);
            let ready = pending.load(SeqCst) & !mask;
            pending.fetch_and(!ready, SeqCst);
            out.extend((0..64).filter(|b| ready & (1 << b) != 0).map(|b| w * 64 + b));
        }
        out
    }
    /// Is `port` pending / masked (2-level bits or FIFO event word)?
    pub fn port_bits(&self, hv: &Hypervisor, port: u32) -> (bool, bool) {
        crate::evtchn::port_bits(&hv.mm, &*self.d, port)
    }
    /// Machine address of guest-physical `gpa` (RAM).
    pub fn ram_addr(&self, gpa: u64) -> u64 {
        self.ram.addr() + (gpa - (GUEST_RAM_GFN << 12))
    }
}

/// The FIFO ABI as a guest sees it: its control blocks and event-array pages (guest-physical
/// addresses in its RAM).
pub struct FifoView<'a> {
    pub g: &'a Guest,
    /// Guest-physical address of each vCPU's control block.
    pub control: alloc::vec::Vec<u64>,
    /// Guest-physical address of each event-array page, in order.
    pub array: alloc::vec::Vec<u64>,
}

impl FifoView<'_> {
    pub fn word<'h>(&self, hv: &'h Hypervisor, port: u32) -> &'h core::sync::atomic::AtomicU32 {
        let page = self.array[(port / 1024) as usize];
        hv.mm.phys.atomic_u32(self.g.ram_addr(page) + 4 * (port % 1024) as u64)
    }
    pub fn control_block(&self, hv: &Hypervisor, vcpu: usize) -> EvtchnFifoControlBlock {
        hv.mm.phys.read_obj(self.g.ram_addr(self.control[vcpu]))
    }
    /// Consume `vcpu`'s queues as Linux's FIFO upcall handler does: clear the upcall flag, then
    /// for each ready queue (highest priority first) follow the links from its head, unlinking
    /// each event and collecting (and acknowledging) those pending and not masked; the queue's
    /// head is cleared and its ready bit dropped when it is empty.
    pub fn consume(&self, hv: &Hypervisor, vcpu: usize) -> alloc::vec::Vec<u32> {
        use core::sync::atomic::Ordering::SeqCst;
        use xen_abi::evtchn::*;
        if let Some(a) = self.g.d.evtchn.vcpu_info_addr(self.g.d.shared_info, vcpu as u32) {
            hv.mm.phys.atomic_u64(a).fetch_and(!0xff, SeqCst);
        }
        let cb = self.g.ram_addr(self.control[vcpu]);
        let ready = hv.mm.phys.atomic_u32(cb);
        let mut out = alloc::vec![];
        for prio in 0..EVTCHN_FIFO_MAX_QUEUES as u32 {
            if ready.load(SeqCst) & (1 << prio) == 0 {
                continue;
            }
            let head = hv.mm.phys.atomic_u32(cb + 8 + 4 * prio as u64);
            let mut port = head.swap(0, SeqCst);
            let mut n = 0;
            while port != 0 && n < 200_000 {
                let w = self.word(hv, port);
                let old = w.fetch_and(!(1 << EVTCHN_FIFO_LINKED | EVTCHN_FIFO_LINK_MASK), SeqCst);
                if old & (1 << EVTCHN_FIFO_PENDING) != 0 && old & (1 << EVTCHN_FIFO_MASKED) == 0 {
                    w.fetch_and(!(1 << EVTCHN_FIFO_PENDING), SeqCst);
                    out.push(port);
                }
                port = old & EVTCHN_FIFO_LINK_MASK;
                n += 1;
            }
            ready.fetch_and(!(1 << prio), SeqCst);
        }
        out
    }
}
