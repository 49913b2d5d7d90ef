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
    pub now: core::sync::atomic::AtomicU64,
}

impl Default for FakeHw {
    fn default() -> Self {
        FakeHw {
            kicks: Default::default(),
            irq_ops: Default::default(),
            lines: Default::default(),
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
    /// Console lines printed so far (and forget them).
    pub fn take_lines(&self) -> alloc::vec::Vec<(DomId, alloc::string::String)> {
        core::mem::take(&mut *self.lines.lock().unwrap())
    }
}

impl Hw for FakeHw {
    fn kick(&self, pcpu: usize) {
        self.kicks.lock().unwrap().push(pcpu);
    }
    fn console_line(&self, dom: DomId, line: &str) {
        self.lines.lock().unwrap().push((dom, line.into()));
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
    _arena: Arena,
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
        let mm = Mm::new(FrameTable::new(RAM_BASE_MFN, frames), phys, tlb);
        let mut plan = crate::bootmem::BootMem::new(&[crate::dt::Region::new(first, frames * PAGE_SIZE)]).unwrap();
        carve(&mut plan);
        for r in plan.into_heap().iter() {
            mm.heap.add_range(&mm.frames, r.first_mfn(), r.frames());
        }
        let stage = StageConfig::new(ipa_bits, ipa_bits, false).expect("unsupported IPA size");
        let hw = Arc::new(FakeHw::default());
        let hv = Hypervisor::new(mm, stage, opts, hw.clone());
        for c in 0..crate::sched::MAX_CPUS {
            hv.sched.set_online(c);
        }
        HostMachine { hv, hw, _arena: Arena { ptr, layout } }
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
        let d = hv.create_domain(hv.domain_config(id)).expect("create domain");
        let ram = hv.mm.alloc_domheap(id, order).expect("guest RAM");
        d.p2m.write(&hv.mm).insert(Gfn(GUEST_RAM_GFN), 1 << order, ram, crate::p2m::P2mType::RamRw).expect("map RAM");
        Guest { d, ram, pages: 1 << order }
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
/// leaf, every grant table's size and pinned entries, every maptrack, every frame's
/// `count_info` and `type_info`, the heap's free count.
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
    for p in hv.mm.frames.iter() {
        f(p.count_info());
        f(p.type_info());
    }
    f(hv.mm.heap.free_frames());
    h
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
