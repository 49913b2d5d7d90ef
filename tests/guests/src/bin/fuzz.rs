//! The SMP hypercall fuzz guest, booted as dom0: every vCPU runs a seeded, weighted grammar
//! over every surface a guest has (memory_op physmap and reservation calls, grant_table_op,
//! event_channel_op, vcpu_op and vm_assist, hvm_op, physdev_op, xen_version, console_io,
//! sched_op, numbers that do not exist, PSCI/SMCCC, the virtual GIC's registers and SGIs, the
//! EL1 timers' registers), racing the others on the same grant frames, GFNs and ports, checks
//! what a guest can check, calls the project's audit hypercall, and prints one line per
//! operation (how often, guest time spent, results) and one SUMMARY line.
//!
//! Boot arguments: `seed=<u64>` (decimal or 0x-hex; default: from the counter, printed),
//! `iters=<n>` hypercalls per vCPU (default 20000; PSCI calls count), `audit_every=<n>` (per
//! vCPU, default 1000, 0 = only at the start and the end), `vcpus=<n>` (default: every CPU
//! in the DT), `quirks=xen|none` (default: `xen` when the audit hypercall is unavailable,
//! i.e. on Xen), `gicfuzz=0` (leave the GIC's registers alone), `skip=<n>+<n>...` (leave out
//! the operations with those numbers: `Op` below),
//! `granter=<domid>`: that domain runs this image with `role=granter` (see the end of this
//! file): map_grant_ref and copy then also aim at its grants, which it rewrites, revokes and
//! points at pages it swaps for grant frames and holes, before crashing (`crash_ms=`) while
//! dom0 still maps its pages; the SUMMARY line then counts the mappings dom0 got (`xmaps=`).
//! A seed fixes each vCPU's stream of random choices; the interleaving of the vCPUs (and
//! thus some results, and choices that depend on them) is not reproducible; with `vcpus=1`
//! a run is. Debugging aids: `trace` prints every hypercall (arguments and the first 32
//! bytes of the argument buffer) before it is made; `watch=<gfn>` reports after every
//! hypercall each change of what the GFN reads (the tag word) and of the frames setup_table
//! lists there; a failed final check prints, in time order, the successful requests of all
//! vCPUs that touched the GFN or mapped the frame (each vCPU keeps the last 4096).
//!
//! # Address space
//!
//! Everything comes from the device tree. GFNs the fuzzer aims at:
//! - grant pool: the first 8 pages of the grant region (`/hypervisor` reg[0]); every vCPU maps
//!   grant frames and shared_info there, removes them, batches over them; hypercall output
//!   pointers also point there (at offsets 0x800..0xff0, so a grant frame mapped there only
//!   gets garbage in entries 256..509, never in the grant entries of frame 0 or the tags);
//! - grant tail: the grant-region pages after the private ones (same use);
//! - ext pool: 16 pages at the start of the first extended region: grant frames,
//!   shared_info, dev_mmio, gmfn_foreign and `map_grant_ref` host mappings;
//! - victim RAM: 16 pages of our own RAM (BSS) that nothing in the guest uses; mapping over
//!   them replaces our RAM in the P2M (and removing leaves a hole);
//! - odd places: just outside the grant region, beyond the IPA size, ~0, random GFNs
//!   (redirected to the victim pages when they fall in RAM, and away from the GIC and the
//!   private GFNs), and every odd GFN where something was mapped (so it gets removed again);
//! - per-vCPU private GFNs (4 in the grant region if it has room, 4 in the extended region,
//!   4 victim RAM pages) that only their vCPU touches: the checked state machine;
//! - per-vCPU grant-map slots (4 extended-region pages): checked own-grant mappings;
//! - with `quirks=xen`, 16 extended-region pages where grants that may resolve to a grant
//!   frame are mapped (see below).
//!
//! Hypercall arguments live in a per-vCPU arena of pages in BSS, each buffer followed by a
//! page taken out of stage 1, so overlong counts and straddling structures fault exactly
//! there.
//!
//! # Checks
//! - A private GFN holds what its vCPU last put there: after `add_to_physmap` of grant frame
//!   i the page shows frame i's tag (entry 511 of every frame is tagged `tag(i)` the first
//!   time it is seen mapped privately; the contents persist across unmap/remap); remapping a
//!   frame that is there is -EBUSY; a removed GFN faults; a failed map changes nothing;
//!   `setup_table` lists exactly the private GFNs for the frames held there and no other
//!   frame at them; `query_size` never shrinks and stays within max_nr_frames.
//! - Own grants mapped at private slots show the granted page and fault after unmap; a
//!   garbage handle is GNTST_bad_handle and leaves the mapping alone; (`quirks=none`) the
//!   right handle at an empty GFN fails and leaves mapping and handle alone.
//! - The grant-table version stays 1 (set_version writes it back).
//! - After all vCPUs finished: no two frames at one GFN, every listed frame readable and
//!   tagged as itself, every tagged page in the grant region listed there.
//! - The audit hypercall (63) answers 0 violations, or -ENOSYS (unavailable: Xen).
//! - No unexpected exception on any vCPU (the exception handler ends the run as FAIL).
//!
//! # The other surfaces
//! - **Sacrificial pages** (`SAC`, 32 pages of our BSS that Rust code never touches, the last
//!   one out of stage 1): whatever the hypervisor is asked to keep and write to on its own —
//!   `vcpu_info` (VCPUOP_register_vcpu_info), runstate areas, FIFO control blocks
//!   (EVTCHNOP_init_control) and event arrays (EVTCHNOP_expand_array) — goes there (at random
//!   offsets, also bad ones), or to GFNs that hold no page (holes, the GIC, 0, absurd ones):
//!   never where a grant frame may be mapped, nor in our own memory. The reservation ops
//!   (decrease_reservation, populate_physmap, increase_reservation, orders up to 25, lists up
//!   to 4096+ extents, continuations) give back and take the sacrificial pages, the shared
//!   victim pages and the pools' GFNs (grant frames, shared_info and mappings there), never
//!   our code, data or stacks: we are direct-mapped, so a page given back stays ours and
//!   populate_physmap maps the same one again. Our own private GFNs get decrease/populate
//!   with the state model: a decrease unmaps what is there (RAM, a grant frame, shared_info:
//!   1 extent done) or does nothing (empty), a populate maps our RAM back (victim pages) or
//!   fails (no RAM at that address). With a granter, dom0 also populates and gives back pages
//!   of the granter's where it has nothing (GRANTER_HOLES), allocates ports in its table and
//!   binds to them, and sets its HVM parameters.
//! - **Event channels**: every sub-op with valid, nearly valid (ports recently handed out to
//!   any vCPU, the limits, vCPUs that do not exist) and garbage arguments, unknown sub-ops
//!   (-ENOSYS) and unreadable arguments (-EFAULT); the 2-level ABI and FIFO (init_control,
//!   expand_array, set_priority), EVTCHNOP_reset back to 2-level. Checked: a status of ours
//!   is a state that exists on a vCPU that exists; and a sequence on ports of our own — a new
//!   unbound port's status, a loopback interdomain binding to it (both ends' status, sends,
//!   bind_vcpu), closing one end leaves the other unbound — which is void (not reported)
//!   when another vCPU may have changed one of those ports meanwhile (EV_TOUCH, EV_DONE,
//!   EV_RESETS).
//! - **vcpu_op / vm_assist / hvm_op / physdev_op / console_io read**: Xen's answers where a
//!   guest can know them (unknown vcpu_op sub-ops -EINVAL, vm_assist's one type, our
//!   HVM_PARAM_CALLBACK_IRQ never changes, unknown hvm_op and every physdev_op -ENOSYS).
//! - **PSCI**: VERSION (1.1), FEATURES, AFFINITY_INFO (levels 0-3, MPIDRs no vCPU has),
//!   CPU_ON of ourselves (with any entry point: bit 0 set is INVALID_ADDRESS), of MPIDRs no
//!   vCPU has (INVALID_PARAMETERS; Xen 4.17 ignores Aff2/Aff3), of the others at our entry point (a vCPU that
//!   finished its share is started again for a short visit), MIGRATE_INFO_TYPE, SMCCC
//!   queries, function ids nobody implements (never one that stops, resets, suspends or
//!   starts a CPU). The expected answers are Xen 4.17's, except for targets no vCPU has,
//!   where they are PSCI's unless quirks=xen (see the README's list of differences).
//! - **The virtual GIC and the timers** (granite_guests::gicfuzz): random accesses to the
//!   distributor and every redistributor (GICv3) or the distributor (GICv2), every width,
//!   through the fault probes (a refused access must be a data abort at its address); the
//!   read-only ID registers never change; SGIs through ICC_SGI1R_EL1 or GICD_SGIR with good
//!   and bad targets; CNTV_*/CNTP_* programming with the architectural read-back checks.
//!   Interrupts stay masked while fuzzing. At the end (every secondary off) the GIC is set up
//!   again and a virtual timer interrupt must arrive on vCPU 0 and on each secondary, started
//!   again with CPU_ON (SUCCESS while off, then ALREADY_ON or ON_PENDING); AFFINITY_INFO then
//!   says OFF again. If the distributor does not answer where the device tree says (the
//!   Raspberry Pi 4's tree gives a bus address the runtime does not translate), the GIC is
//!   left out.
//!
//! # Inputs left out on Xen (`quirks=xen`)
//! - The GIC's registers (Xen 4.17's vGIC aborts on some and deviates elsewhere: the `gic`
//!   guest covers it with its own quirks); SGIs and the interrupt check at the end stay.
//! - CNTP_CTL's bits other than ENABLE are not checked: Xen 4.17 reads back what the guest
//!   wrote to its RES0 bits and to ISTATUS.
//! - `gmfn_foreign` with foreign_domid = DOMID_IO: Xen before f795a9c491 looks up a P2M that
//!   DOMID_IO does not have (a data abort in the hypervisor).
//! - A grant mapping, at the GFN G where a grant frame is mapped, of that same frame: e.g.
//!   `map_grant_ref(host_addr = G)` of a grant (by dom0, to itself) of GFN G, or of a GFN that
//!   holds a grant mapping of the frame (grants resolve through grant mappings). Xen 4.17
//!   rewrites G's stage-2 entry with the same MFN and the grant-mapping type, so it does not
//!   clear the frame's recorded GFN; the unmap then removes G (a grant mapping, not RAM, so
//!   again no clearing). Afterwards the frame is "mapped at G" for ever (every remap is
//!   -EBUSY) although G is empty, and another frame can be mapped at G: setup_table lists two
//!   frames at one GFN. Found by this fuzzer (seed 16 with one vCPU, then in 4-vCPU runs).
//!   Reproductions: (a) frame 5 -> V; grant of V mapped at V; unmap it. (b) frame 5 -> V;
//!   grant of V mapped at H; remove V; frame 5 -> G; grant of H mapped at G; unmap it. Then
//!   frame 5 -> elsewhere is -EBUSY, frame 6 -> the GFN succeeds. With `quirks=xen`, grants
//!   that may resolve to a frame are only mapped at 16 GFNs where no frame is ever mapped.
//! - `unmap_grant_ref` of one of our own mappings with the right handle but a `host_addr`
//!   where nothing is mapped: Xen 4.17 on Arm answers GNTST_okay and releases the handle,
//!   but the mapping stays in the P2M at its real address for good (the grant is no longer
//!   accounted as mapped; the correct unmap then gets GNTST_bad_handle). Found by this fuzzer
//!   (a shared-ring handle unmapped at a wrong address). With `quirks=none` this is a check:
//!   the unmap must fail and leave mapping and handle alone.
//!
//! Also modelled (not left out): Xen takes the grant-table frame index of add_to_physmap as
//! 32 bits, so idx 2^32 + 1 maps frame 1.
//!
//! Writes through read-only grant mappings (which hang the vCPU on Xen 4.17) are never done:
//! the guest writes only to its arena and to grant frames at its private GFNs.
//!
//! # Inputs left out everywhere (QEMU)
//! - A hypercall pointer into a page that has a read-only stage-2 mapping (e.g. a read-only
//!   grant mapping): Xen translates guest pointers with `AT S12E1R/W` at EL2, and QEMU 10.0.2
//!   (TCG) aborts on it (`do_ats_write: Assertion '!res.cacheattrs.is_s2_format' failed`).
//!   So pointers never aim at the GFNs where grant mappings go (extended-region pool,
//!   victim pages, odd places), and nothing is ever mapped at GFN 0 (null pointers).
#![no_std]
#![no_main]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use granite_guests::gic::{self, gicd, gicr, read32};
use granite_guests::hypercall::{STATUS_UNWRITTEN, hypercall5};
use granite_guests::report::StrBuf;
use granite_guests::smp::{self, CpuState, MAX_CPUS};
use granite_guests::{
    Conduit, Global, PAGE_SIZE as PAGE, Pages, Platform, Region, console, gicfuzz, mmu, probe_read, probe_write, timer,
};
use xen_abi::errno::*;
use xen_abi::gnttab::*;
use xen_abi::hypercall as hc;
use xen_abi::memory::*;
use xen_abi::*;

granite_guests::entry!(main);

// ---------------------------------------------------------------------------------------
// Layout

/// Pages of each vCPU's argument arena (see the A_* indices).
const ARENA_PAGES: usize = 32;
/// Structures (operation arrays); overlong counts run into the guard after it.
const A_STRUCT: usize = 0;
const A_GUARD_STRUCT: usize = 1;
/// Output buffers (frame lists, version strings, console reads).
const A_OUT: usize = 2;
const A_GUARD_OUT: usize = 3;
/// Batch arrays: idxs (8 pages = 4096 entries), gpfns (8 pages), errs (4 pages = 4096 ints).
const A_IDXS: usize = 4;
const A_GUARD_IDXS: usize = 12;
const A_GPFNS: usize = 13;
const A_GUARD_GPFNS: usize = 21;
const A_ERRS: usize = 22;
const A_GUARD_ERRS: usize = 26;
/// Granted read/write and read-only to domid 0, mapped at the private slots.
const A_PAGE_RW: usize = 27;
const A_PAGE_RO: usize = 28;
/// Granted (rw and ro) as the only destination of grant copies by reference.
const A_COPY: usize = 29;
/// '.' characters for console_io.
const A_DOTS: usize = 30;
const A_GUARD_DOTS: usize = 31;
const GUARDS: [usize; 6] = [A_GUARD_STRUCT, A_GUARD_OUT, A_GUARD_IDXS, A_GUARD_GPFNS, A_GUARD_ERRS, A_GUARD_DOTS];
const BATCH_MAX: usize = 4096;

static ARENA: Pages<{ MAX_CPUS * ARENA_PAGES }> = Pages::new();
/// Pages granted through the shared references (their contents are never checked).
static SHARED: Pages<8> = Pages::new();
/// Victim RAM: never accessed by Rust code (only probed); 16 shared, then 4 per vCPU.
const VICTIM_SHARED: usize = 16;
const VICTIM_PRIVATE: usize = 4;
static VICTIM: Pages<{ VICTIM_SHARED + VICTIM_PRIVATE * MAX_CPUS }> = Pages::new();

/// Sacrificial pages: what the hypervisor is asked to write to on its own (registered
/// `vcpu_info`s, runstate areas, FIFO control blocks and event arrays) and what the
/// reservation ops give back and take again. Never touched by Rust code; the last page is
/// taken out of stage 1 (a runstate area straddling the end faults there).
const SAC_PAGES: usize = 32;
static SAC: Pages<{ SAC_PAGES + 1 }> = Pages::new();
/// The granter's guest-physical frames dom0 gives and takes pages at (its RAM is 32 MiB at
/// GUEST_RAM0_BASE: these are 64 MiB further, where it has nothing).
const GRANTER_HOLES: u64 = (xen_abi::guest_layout::GUEST_RAM0_BASE >> 12) + 0x4000;
const NGRANTER_HOLES: u64 = 64;

const GRANT_POOL: u64 = 8;
const GRANT_PRIVATE: u64 = 4;
const EXT_POOL: u64 = 16;
/// Extended-region offsets (pages) of the per-vCPU private GFNs and slots, a never-mapped
/// hole range (pointer targets), and the page used during setup.
const EXT_PRIVATE_BASE: u64 = 0x40;
const EXT_PRIVATE_STRIDE: u64 = 0x10;
const EXT_PRIVATE: u64 = 4;
const EXT_SLOT_OFF: u64 = 8;
const SLOTS: usize = 4;
const EXT_HOLES: u64 = 0x200;
const NHOLES: u64 = 8;
const EXT_SETUP: u64 = 0x3f0;
/// With `quirks=xen`: where grants that may resolve to a grant frame are mapped (16 pages that
/// no other operation aims at).
const EXT_QUIRK_HOSTS: u64 = 0x300;
const EXT_NEEDED: u64 = 0x400;

/// Entry 511 of every grant frame holds its tag: flags 0 (GTF_invalid, so it never grants
/// anything), domid 0x7a67, frame field 0xa5a5_0000 | index.
const TAG_OFF: u64 = 4088;
fn tag(i: u64) -> u64 {
    (0xa5a5_0000 | (i & 0xffff)) << 32 | 0x7a67 << 16
}
fn tag_index(v: u64) -> Option<u64> {
    (v & 0xffff_0000_ffff_ffff == 0xa5a5_0000_7a67_0000).then_some((v >> 32) & 0xffff)
}

/// Grant references in frame 0: per vCPU 8 from 16, the shared ones from 96.
const REF_CPU_BASE: u32 = 16;
const REF_RW: u32 = 0;
const REF_RO: u32 = 1;
const REF_COPY_RW: u32 = 2;
const REF_COPY_RO: u32 = 3;
const REF_INVALID: u32 = 4;
const REF_OTHER_DOM: u32 = 5;
fn cpu_ref(cpu: usize, which: u32) -> u32 {
    REF_CPU_BASE + cpu as u32 * 8 + which
}
const REF_SHARED: u32 = 96;
const NREF_SHARED: u32 = 32;
/// Grant references from here on (in every frame) are never written by us: hypercall output
/// aimed at the grant pool lands in entries 256..509 only.
const REF_GARBAGE: u32 = 256;

/// Markers in the granted pages (word 1), checked through the private slot mappings.
fn marker(cpu: usize, which: u32) -> u64 {
    0x6772_616e_0000_0000 | (cpu as u64) << 8 | which as u64
}

// ---------------------------------------------------------------------------------------
// Configuration, written by the boot CPU before any secondary starts, read-only afterwards.

#[derive(Clone, Copy)]
struct Cfg {
    seed: u64,
    iters: u64,
    audit_every: u64,
    ncpus: usize,
    /// vCPUs of this domain (the device tree's CPUs).
    nvcpus: usize,
    xen_quirks: bool,
    g0: u64,
    gpages: u64,
    max_frames: u64,
    grant_private: bool,
    x0: u64,
    gicd: Region,
    ram: [Region; 8],
    nram: usize,
    pa_bits: u32,
    cntfrq: u64,
    /// `trace`: print every hypercall before making it.
    trace: bool,
    /// `watch=<gfn>`: report every change of what the GFN reads and of the frames listed at it.
    watch: u64,
    /// `granter=<domid>`: a domain running this image with `role=granter` (0: none).
    granter: DomId,
    /// `skip=<op>+<op>...` (operation numbers, `Op` as usize): operations left out (bit mask).
    skip: u64,
    /// The GIC was found and set up (`gic::init`): SGIs, and the interrupt check at the end.
    gic: bool,
    /// Fuzz the GIC's registers (not with quirks=xen, nor with `gicfuzz=0`).
    gic_fuzz: bool,
    /// GICD_TYPER and GICD_IIDR at the start (read-only registers: they never change).
    gicd_id: (u32, u32),
    /// The vCPUs' MPIDRs (logical CPU order) and the PSCI conduit.
    mpidrs: [u64; MAX_CPUS],
    conduit: Conduit,
    /// HVM_PARAM_CALLBACK_IRQ as read at the start (u64::MAX: unreadable).
    callback: u64,
}

static CFG: Global<Cfg> = Global::new(Cfg {
    seed: 0,
    iters: 0,
    audit_every: 0,
    ncpus: 1,
    nvcpus: 1,
    xen_quirks: false,
    g0: 0,
    gpages: 0,
    max_frames: 0,
    grant_private: false,
    x0: 0,
    gicd: Region { base: 0, size: 0 },
    ram: [Region { base: 0, size: 0 }; 8],
    nram: 0,
    pa_bits: 0,
    cntfrq: 1,
    trace: false,
    watch: 0,
    granter: 0,
    skip: 0,
    gic: false,
    gic_fuzz: false,
    gicd_id: (0, 0),
    mpidrs: [0; MAX_CPUS],
    conduit: Conduit::Hvc,
    callback: u64::MAX,
});

fn cfg() -> &'static Cfg {
    // SAFETY: written only by the boot CPU before the secondaries start (CPU_ON orders it
    // before their first access); read-only afterwards.
    unsafe { &*CFG.as_ptr() }
}

impl Cfg {
    fn gend(&self) -> u64 {
        self.g0 + self.gpages
    }
    fn grant_tail(&self) -> u64 {
        self.g0 + GRANT_POOL + if self.grant_private { GRANT_PRIVATE * self.ncpus as u64 } else { 0 }
    }
    fn ext_private(&self, cpu: usize) -> u64 {
        self.x0 + EXT_PRIVATE_BASE + EXT_PRIVATE_STRIDE * cpu as u64
    }
    fn in_ram(&self, gfn: u64) -> bool {
        let a = gfn.wrapping_mul(PAGE);
        gfn < 1 << 52 && self.ram[..self.nram].iter().any(|r| r.contains(a))
    }
    /// Private GFNs of any vCPU (grant region, extended region, victim RAM), the
    /// never-mapped holes and the setup page.
    fn reserved(&self, gfn: u64) -> bool {
        let grant_priv = self.grant_private
            && gfn >= self.g0 + GRANT_POOL
            && gfn < self.g0 + GRANT_POOL + GRANT_PRIVATE * self.ncpus as u64;
        let ext_priv = gfn >= self.x0 + EXT_PRIVATE_BASE && gfn < self.x0 + EXT_NEEDED;
        let victim_priv = gfn >= VICTIM.gfn(VICTIM_SHARED)
            && gfn < VICTIM.gfn(0) + (VICTIM_SHARED + VICTIM_PRIVATE * MAX_CPUS) as u64;
        grant_priv || ext_priv || victim_priv
    }
    fn victim_shared(&self, i: u64) -> u64 {
        VICTIM.gfn((i % VICTIM_SHARED as u64) as usize)
    }
    fn is_victim_shared(&self, gfn: u64) -> bool {
        gfn >= VICTIM.gfn(0) && gfn < VICTIM.gfn(0) + VICTIM_SHARED as u64
    }
    /// A GFN the fuzzer may change the P2M at: never our RAM outside the shared victim
    /// pages, never the GIC, never a private GFN, never GFN 0 (the null pointers we pass
    /// point there, and a read-only mapping under a hypercall pointer crashes QEMU, see
    /// the module documentation).
    fn safe(&self, gfn: u64) -> u64 {
        if gfn == 0 {
            self.x0
        } else if self.in_ram(gfn) && !self.is_victim_shared(gfn) {
            self.victim_shared(gfn)
        } else if self.gicd.size != 0 && self.gicd.contains(gfn.wrapping_mul(PAGE)) && gfn < 1 << 52 {
            self.x0 + gfn % EXT_POOL
        } else if self.reserved(gfn) {
            self.g0 + gfn % GRANT_POOL
        } else {
            gfn
        }
    }
    /// Whether `gfn` is one of the pools (not an odd place to remember).
    fn in_pools(&self, gfn: u64) -> bool {
        (gfn >= self.g0 && gfn < self.gend())
            || (gfn >= self.x0 && gfn < self.x0 + EXT_POOL)
            || self.is_victim_shared(gfn)
    }
}

/// Whether a grant reference may resolve to a grant-table frame: the grants of victim pages,
/// of g0 and of the first GFN beyond the IPA size (grant frames get mapped there), and every
/// reference whose entry we did not write (garbage outputs may form a grant of anything).
/// Grants are resolved through whatever the granted GFN holds, grant mappings included.
fn may_grant_a_frame(r: u32) -> bool {
    let mine = r >= REF_CPU_BASE && r < REF_CPU_BASE + 8 * MAX_CPUS as u32;
    let shared_pages = (REF_SHARED..REF_SHARED + 12).contains(&r) || (REF_SHARED + 24..REF_SHARED + 29).contains(&r);
    let hole = r == REF_SHARED + 30;
    let reserved = r < 8;
    !(mine || shared_pages || hole || reserved)
}

fn arena(cpu: usize, page: usize) -> u64 {
    ARENA.addr(cpu * ARENA_PAGES + page)
}

// ---------------------------------------------------------------------------------------
// State shared between vCPUs (lock-free)

/// GFNs outside the pools where a mapping succeeded, for removals to find.
static ODD: [AtomicU64; 32] = [const { AtomicU64::new(0) }; 32];
static ODD_NEXT: AtomicUsize = AtomicUsize::new(0);
/// Grant mappings made at shared GFNs: 1 << 63 | host GFN (31 bits) << 32 | handle.
static HANDLES: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
/// The audit hypercall: 0 = not tried, 1 = available, 2 = unavailable (-ENOSYS).
static AUDIT: AtomicU8 = AtomicU8::new(0);
static FAILED: AtomicBool = AtomicBool::new(false);
/// Per vCPU: what it is doing (op id << 48 | hypercall count), for a vCPU that never ends.
static DOING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Event-channel ports recently handed out to any vCPU (port + 1; 0 = empty), for the
/// "nearly valid" operations.
static EV_PORTS: [AtomicU32; 64] = [const { AtomicU32::new(0) }; 64];
/// Ports dom0 allocated in the granter's table for itself to bind to (port + 1).
static EV_GRANTER_PORTS: [AtomicU32; 8] = [const { AtomicU32::new(0) }; 8];
/// Per port (modulo 4096): incremented before and after every operation that changes a
/// port's state or binding (close, bind_vcpu, bind_interdomain to it), so a vCPU checking
/// its own ports knows when another one may have interfered (odd: one in flight).
static EV_TOUCH: [AtomicU32; 4096] = [const { AtomicU32::new(0) }; 4096];
/// Likewise for EVTCHNOP_reset (closes every port).
static EV_RESETS: AtomicU64 = AtomicU64::new(0);
/// Operations of the EV_TOUCH kind completed (before their second EV_TOUCH increment).
static EV_DONE: AtomicU64 = AtomicU64::new(0);

/// Per vCPU: it ran its share of the fuzzing (a later CPU_ON only visits).
static RAN: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// Secondaries started again by a fuzzed CPU_ON once they were off.
static REVISITS: AtomicU64 = AtomicU64::new(0);
/// Set by vCPU 0 once it finished: no more CPU_ON of the others from the fuzzing.
static NO_MORE_CPU_ON: AtomicBool = AtomicBool::new(false);
/// The interrupt check at the end: a restarted secondary sets its GIC interface up again,
/// waits for a timer interrupt and reports (1 | arrived << 1 | drained << 2 | late << 32).
static FINAL_PHASE: AtomicBool = AtomicBool::new(false);
static FINAL_RESULT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per secondary: vCPU 0 made its second CPU_ON (the visit waits for it, so that the vCPU is
/// surely still on then).
static FINAL_GO: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn odd_push(gfn: u64) {
    if cfg().reserved(gfn) || cfg().in_pools(gfn) {
        return;
    }
    let i = ODD_NEXT.fetch_add(1, Relaxed) % ODD.len();
    ODD[i].store(gfn | 1 << 63, Relaxed);
}

fn handle_push(host_addr: u64, handle: u32, start: usize) {
    let v = 1 << 63 | ((host_addr >> 12) & 0x7fff_ffff) << 32 | handle as u64;
    for k in 0..HANDLES.len() {
        if HANDLES[(start + k) % HANDLES.len()].compare_exchange(0, v, Relaxed, Relaxed).is_ok() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Per-vCPU state

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PState {
    Unknown,
    Empty,
    Ram,
    Frame(u64),
    SharedInfo,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Empty,
    Mapped { handle: u32, which: u32 },
    Unknown,
}

/// What a history entry records (successful P2M-changing requests, for the diagnostics of a
/// failed final check).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Hk {
    None,
    /// add_to_physmap (x = space, a = idx)
    Xatp,
    /// remove_from_physmap
    Xrfp,
    /// one successful add_to_physmap_batch entry (x = space, a = idx)
    Batch,
    /// map_grant_ref (x = ref, a = handle, rc = status)
    Map,
    /// unmap_grant_ref or unmap_and_replace (a = handle, rc = status)
    Unmap,
    /// decrease_reservation of a private GFN
    Decrease,
    /// populate_physmap of a private GFN
    Populate,
}

#[derive(Clone, Copy)]
struct Hist {
    /// CNTVCT when recorded (after the hypercall returned).
    t: u64,
    gfn: u64,
    a: u64,
    rc: i64,
    x: u32,
    hc: u32,
    kind: Hk,
}

const HIST_LEN: usize = 4096;
/// `Hist::a` of a batch entry whose index we do not know (idxs pointed elsewhere).
const IDX_UNKNOWN: u64 = 0xdead_0000_0000_0000;
/// Or-ed into `Hist::x` when we do not know whether the entry succeeded.
const HIST_MAYBE: u32 = 0x8000_0000;

const NPRIV: usize = (GRANT_PRIVATE + EXT_PRIVATE) as usize + VICTIM_PRIVATE;
/// results[]: 0 = rc 0, 1..=127 = -rc, 128 = positive, 129 = other.
const NRES: usize = 130;
/// gntst[]: 0..=13 = -status, 14 = not written, 15 = other.
const NGNTST: usize = 16;

struct Cpu {
    id: usize,
    rng: u64,
    hypercalls: u64,
    results: [u32; NRES],
    errs: [u32; NRES],
    gntst: [u32; NGNTST],
    faults: u64,
    checks: u64,
    check_failures: u64,
    audits: u64,
    violations: u64,
    audit_failures: u64,
    last_nr_frames: u64,
    npriv: usize,
    priv_gfn: [u64; NPRIV],
    priv_st: [PState; NPRIV],
    slot_st: [Slot; SLOTS],
    hist: [Hist; HIST_LEN],
    hist_next: usize,
    /// vGIC register accesses (and how many were refused), SGIs sent, timer register
    /// accesses, PSCI calls (also counted as hypercalls).
    mmio: u64,
    mmio_aborts: u64,
    sgis: u64,
    timer_regs: u64,
    psci: u64,
    /// Per operation: how often it was chosen, and its hypercalls' results (as `results`).
    ops: [u32; NOPS],
    op_res: [[u32; NRES]; NOPS],
    /// Per operation: guest time spent in it (counter ticks).
    op_ticks: [u64; NOPS],
}

impl Cpu {
    const fn new() -> Self {
        Self {
            id: 0,
            rng: 0,
            hypercalls: 0,
            results: [0; NRES],
            errs: [0; NRES],
            gntst: [0; NGNTST],
            faults: 0,
            checks: 0,
            check_failures: 0,
            audits: 0,
            violations: 0,
            audit_failures: 0,
            last_nr_frames: 0,
            npriv: 0,
            priv_gfn: [0; NPRIV],
            priv_st: [PState::Unknown; NPRIV],
            slot_st: [Slot::Empty; SLOTS],
            hist: [Hist { t: 0, gfn: 0, a: 0, rc: 0, x: 0, hc: 0, kind: Hk::None }; HIST_LEN],
            hist_next: 0,
            mmio: 0,
            mmio_aborts: 0,
            sgis: 0,
            timer_regs: 0,
            psci: 0,
            ops: [0; NOPS],
            op_res: [[0; NRES]; NOPS],
            op_ticks: [0; NOPS],
        }
    }
}

static CPUS: Global<[Cpu; MAX_CPUS]> = Global::new([const { Cpu::new() }; MAX_CPUS]);

/// Each vCPU's own slot.
fn cpu_state(cpu: usize) -> &'static mut Cpu {
    // SAFETY: slot `cpu` is only used by vCPU `cpu` while it runs, and read by the boot CPU
    // only after that vCPU is Done (an acquire of its state).
    unsafe { &mut (*CPUS.as_ptr())[cpu] }
}

fn res_index(rc: i64) -> usize {
    match rc {
        0 => 0,
        -127..=-1 => (-rc) as usize,
        1.. => 128,
        _ => 129,
    }
}

fn gntst_index(st: i16) -> usize {
    match st {
        -13..=0 => (-st) as usize,
        STATUS_UNWRITTEN => 14,
        _ => 15,
    }
}

// ---------------------------------------------------------------------------------------
// Memory helpers: every access to the arena, the victim pages and mapped GFNs is a raw,
// volatile access (the hypervisor changes them behind the compiler's back).

fn put_bytes(addr: u64, src: *const u8, len: usize) {
    for i in 0..len {
        // SAFETY: callers only pass arena addresses of the calling vCPU (never a Rust object)
        // and a source of `len` readable bytes.
        unsafe { ((addr + i as u64) as *mut u8).write_volatile(src.add(i).read()) };
    }
}

/// Writes `v` at `addr` (any alignment), or only its first `limit` bytes.
fn put<T: Copy>(addr: u64, v: &T, limit: usize) {
    // ABI structures have no implicit padding (their fields are laid out back to back), so
    // all their bytes are initialised.
    put_bytes(addr, v as *const T as *const u8, size_of::<T>().min(limit));
}

fn get<T: Copy>(addr: u64) -> T {
    // SAFETY: callers only read back arena addresses of the calling vCPU that hold a `T`
    // they wrote (possibly updated by the hypervisor); any bit pattern is a valid `T`.
    unsafe { core::ptr::read_volatile(addr as *const T) }
}

fn get_unaligned<T: Copy>(addr: u64) -> T {
    // SAFETY: as in `get`, without the alignment requirement.
    unsafe { core::ptr::read_unaligned(addr as *const T) }
}

fn put64(addr: u64, v: u64) {
    // SAFETY: an aligned arena address of the calling vCPU.
    unsafe { (addr as *mut u64).write_volatile(v) }
}

fn counter() -> u64 {
    let v: u64;
    // SAFETY: reading the virtual counter has no side effects.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
    v
}

fn counter_freq() -> u64 {
    let v: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v
}

// ---------------------------------------------------------------------------------------
// Pointers handed to the hypervisor

#[derive(Clone, Copy, Debug)]
enum Ptr {
    /// In the arena: the whole structure is written there.
    Ok(u64),
    /// Straddling into a guard page: only the first n bytes are ours.
    Part(u64, usize),
    /// Not usable (unmapped, MMIO, a P2M hole, a grant-pool page, ...): nothing written.
    Bad(u64),
}

impl Ptr {
    fn addr(self) -> u64 {
        match self {
            Ptr::Ok(a) | Ptr::Part(a, _) | Ptr::Bad(a) => a,
        }
    }
    fn ok(self) -> bool {
        matches!(self, Ptr::Ok(_))
    }
    fn store<T: Copy>(self, v: &T) {
        match self {
            Ptr::Ok(a) => put(a, v, usize::MAX),
            Ptr::Part(a, n) => put(a, v, n),
            Ptr::Bad(_) => {}
        }
    }
    /// Stores `ops` back to back (all, or those that fit for a straddling pointer).
    fn store_all<T: Copy>(self, ops: &[T]) {
        let sz = size_of::<T>();
        for (i, op) in ops.iter().enumerate() {
            match self {
                Ptr::Ok(a) => put(a + (i * sz) as u64, op, usize::MAX),
                Ptr::Part(a, n) if i * sz < n => put(a + (i * sz) as u64, op, n - i * sz),
                _ => {}
            }
        }
    }
}

/// How the hypervisor uses a pointer argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dir {
    /// Only reads (an input array): may also point at the grant pool's entries 0..255 (our
    /// grants, or zeros).
    Read,
    /// Only writes (an output buffer): may also point at the grant pool, where the output
    /// lands in entries 256..509 of whatever frame is mapped there.
    Write,
    /// Reads a request and writes results back (a structure): its contents must be ours, so
    /// "at a grant frame" means at a frame this vCPU holds at a private GFN, where it writes
    /// the structure itself (garbage left in the pool by other outputs would make requests
    /// nobody chose).
    InOut,
}

// ---------------------------------------------------------------------------------------
// The fuzzer

struct Fuzz<'a> {
    c: &'a mut Cpu,
    cfg: &'static Cfg,
    /// How many ops of the last `gnttab_ops` array can be read back.
    readable: usize,
    /// The operation under way (`Op` as usize), for the per-operation results.
    op: usize,
}

/// splitmix64: the next value of the stream whose state is `s`.
fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Check failures gathered where `Fuzz::check` cannot be called (inside a library call that
/// borrows the random stream); the first message is kept.
struct Failures {
    checks: u64,
    failed: u64,
    first: StrBuf<300>,
}

impl Failures {
    fn new() -> Self {
        Self { checks: 0, failed: 0, first: StrBuf::new() }
    }
    fn that(&mut self, ok: bool, what: fmt::Arguments) {
        self.checks += 1;
        if !ok {
            self.failed += 1;
            if self.failed == 1 {
                let _ = self.first.write_fmt(what);
            }
        }
    }
}

/// Operation ids (for the "what was it doing" report of a vCPU that never finishes).
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
enum Op {
    Xatp = 1,
    Xrfp,
    Batch,
    Query,
    Setup,
    Version,
    Map,
    Unmap,
    Copy,
    GntMisc,
    XenVersion,
    Console,
    Sched,
    Garbage,
    Private,
    Slots,
    Audit,
    Gic,
    Sgi,
    Timer,
    Evtchn,
    Vcpu,
    Reservation,
    Hvm,
    Psci,
}

/// Operation ids (`Op` as usize) are below this.
const NOPS: usize = 26;

const OP_NAMES: [&str; NOPS] = [
    "?",
    "add_to_physmap",
    "remove_from_physmap",
    "add_to_physmap_batch",
    "query_size",
    "setup_table",
    "get/set_version",
    "map_grant_ref",
    "unmap_grant_ref",
    "copy",
    "grant_table_op misc",
    "xen_version",
    "console_io",
    "sched_op",
    "garbage hypercall",
    "private check",
    "private slot check",
    "audit",
    "vGIC MMIO",
    "SGI",
    "timer registers",
    "event_channel_op",
    "vcpu_op/vm_assist",
    "memory reservation",
    "hvm_op/physdev_op",
    "PSCI",
];

impl Fuzz<'_> {
    // --- randomness (splitmix64)
    fn next(&mut self) -> u64 {
        splitmix(&mut self.c.rng)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
    fn weighted(&mut self, ws: &[u32]) -> usize {
        let total: u64 = ws.iter().map(|&w| w as u64).sum();
        let mut r = self.below(total);
        for (i, &w) in ws.iter().enumerate() {
            if r < w as u64 {
                return i;
            }
            r -= w as u64;
        }
        ws.len() - 1
    }

    // --- bookkeeping
    fn arena(&self, page: usize) -> u64 {
        arena(self.c.id, page)
    }

    /// A hypercall, counted and recorded.
    fn hc(&mut self, op: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
        if self.cfg.trace {
            // The arguments and the first 32 bytes at a1 (when they are ours to read).
            let mut w = [0u64; 4];
            if a1 >> 12 >= ARENA.gfn(0) && a1 >> 12 < ARENA.gfn(0) + (MAX_CPUS * ARENA_PAGES) as u64 {
                for (k, v) in w.iter_mut().enumerate() {
                    *v = probe_read((a1 & !7) + 8 * k as u64).unwrap_or(0xbad);
                }
            }
            granite_guests::println!(
                "[granite-fuzz] T {} {} op {:#x} ({:#x}, {:#x}, {:#x}) [{:#x} {:#x} {:#x} {:#x}]",
                self.c.id,
                self.c.hypercalls,
                op,
                a0,
                a1,
                a2,
                w[0],
                w[1],
                w[2],
                w[3]
            );
        }
        // SAFETY: every pointer argument was chosen by the grammar below: our own arena,
        // or deliberately unusable (unmapped, MMIO, P2M holes), or pages no Rust object
        // occupies (grant pool, victim RAM); the hypervisor only writes through the arena
        // and grant-pool pointers (see `ptr`), and the asm clobbers memory.
        let rc = unsafe { hypercall5(op, a0, a1, a2, a3, a4) };
        if self.cfg.watch != 0 {
            watch(self.c, self.cfg, op, a0, a1, rc);
        }
        self.counted(rc);
        rc
    }

    /// Counts a hypercall (or PSCI call) that returned `rc`; the audit every `audit_every`.
    fn counted(&mut self, rc: i64) {
        self.c.hypercalls += 1;
        self.c.results[res_index(rc)] += 1;
        self.c.op_res[self.op][res_index(rc)] += 1;
        if self.cfg.audit_every != 0 && self.c.hypercalls.is_multiple_of(self.cfg.audit_every) {
            self.audit();
        }
    }

    /// A PSCI (SMCCC) call through the domain's conduit, counted as a hypercall.
    fn psci(&mut self, fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
        let rc = smp::psci_call(self.cfg.conduit, fid, a1, a2, a3);
        self.c.psci += 1;
        self.counted(rc);
        rc
    }

    /// Reports the failures gathered in `f` as one check.
    fn failures(&mut self, what: &str, f: &Failures) {
        self.c.checks += f.checks.saturating_sub(1);
        self.check(f.failed == 0, format_args!("{what}: {} ({} failed)", f.first.as_str(), f.failed));
    }

    /// Records a P2M-changing request in this vCPU's history ring, if it succeeded (rc or
    /// status 0).
    fn hist(&mut self, kind: Hk, gfn: u64, x: u32, a: u64, rc: i64) {
        if rc != 0 {
            return;
        }
        let i = self.c.hist_next % HIST_LEN;
        self.c.hist[i] = Hist { t: counter(), gfn, a, rc, x, hc: self.c.hypercalls as u32, kind };
        self.c.hist_next += 1;
    }

    fn gntst(&mut self, st: i16) {
        self.c.gntst[gntst_index(st)] += 1;
    }

    fn check(&mut self, ok: bool, what: fmt::Arguments) -> bool {
        self.c.checks += 1;
        if !ok {
            self.c.check_failures += 1;
            FAILED.store(true, Relaxed);
            if self.c.check_failures <= 20 {
                granite_guests::println!(
                    "[granite-fuzz] CHECK FAILED cpu {} after {} hypercalls: {}",
                    self.c.id,
                    self.c.hypercalls,
                    what
                );
            }
        }
        ok
    }

    fn probe(&mut self, addr: u64) -> Result<u64, granite_guests::Fault> {
        let r = probe_read(addr);
        if r.is_err() {
            self.c.faults += 1;
        }
        r
    }

    /// The audit hypercall: 0 violations, or -ENOSYS where there is none (Xen).
    fn audit(&mut self) {
        if AUDIT.load(Relaxed) == 2 {
            return;
        }
        DOING[self.c.id].store((Op::Audit as u64) << 48 | self.c.hypercalls, Relaxed);
        // SAFETY: the audit hypercall takes no arguments and touches no guest memory.
        let rc = unsafe { hypercall5(hc::GRANITE_AUDIT, 0, 0, 0, 0, 0) };
        audit_result(self.c, rc);
    }

    // --- value generators
    fn domid(&mut self) -> DomId {
        match self.weighted(&[50, 25, 3, 3, 3, 3, 3, 2, 2, 6]) {
            0 => DOMID_SELF,
            1 => 0,
            2 => 1,
            3 => 7,
            4 => DOMID_IO,
            5 => DOMID_XEN,
            6 => DOMID_INVALID,
            7 => DOMID_COW,
            8 => DOMID_IDLE,
            _ => self.next() as u16,
        }
    }

    fn foreign_domid(&mut self) -> DomId {
        loop {
            let d = match self.weighted(&[15, 15, 10, 10, 10, 10, 10, 10]) {
                0 => 0,
                1 => DOMID_SELF,
                2 => 1,
                3 => 7,
                4 => DOMID_IO,
                5 => DOMID_XEN,
                6 => DOMID_INVALID,
                _ => self.next() as u16,
            };
            // Xen before f795a9c491 takes a data abort looking up DOMID_IO's P2M.
            if !(self.cfg.xen_quirks && d == DOMID_IO) {
                return d;
            }
        }
    }

    /// Grant frame indices: a small hot set that every vCPU races on, and out-of-range ones.
    fn frame_idx(&mut self) -> u64 {
        let max = self.cfg.max_frames;
        match self.weighted(&[60, 12, 5, 5, 4, 4, 4, 3, 3]) {
            0 => self.below(max.min(8)),
            1 => self.below(max),
            2 => max - 1,
            3 => max + self.below(3),
            4 => XENMAPIDX_GRANT_TABLE_STATUS | self.below(4),
            5 => !0,
            6 => 1 << 32 | self.below(4),
            7 => self.next() & 0xffff,
            _ => self.next(),
        }
    }

    fn private_frame_idx(&mut self) -> u64 {
        let max = self.cfg.max_frames;
        if self.chance(95) { self.below(max.min(16)) } else { max + self.below(2) }
    }

    fn beyond_ipa(&mut self) -> u64 {
        let first = 1u64 << (self.cfg.pa_bits - 12);
        match self.below(7) {
            0 => first,
            1 => first + self.below(16),
            2 => 1 << 36,
            3 => 1 << 40,
            4 => (1 << 52) - 1,
            5 => !0,
            _ => !0 - 1,
        }
    }

    fn odd_gfn(&mut self) -> Option<u64> {
        let v = ODD[self.below(ODD.len() as u64) as usize].load(Relaxed);
        (v != 0).then_some(v & !(1 << 63))
    }

    /// GFNs for grant frames and shared_info (and removals): pools and odd places.
    fn frame_target(&mut self) -> u64 {
        let cfg = self.cfg;
        let g = match self.weighted(&[30, 6, 20, 10, 4, 8, 3, 8, 6]) {
            0 => cfg.g0 + self.below(GRANT_POOL),
            1 => {
                let tail = cfg.grant_tail();
                if tail < cfg.gend() { tail + self.below(cfg.gend() - tail) } else { cfg.g0 }
            }
            2 => cfg.x0 + self.below(EXT_POOL),
            3 => cfg.victim_shared(self.next()),
            4 => {
                if self.chance(50) {
                    cfg.g0 - 1 - self.below(2)
                } else {
                    cfg.gend() + self.below(2)
                }
            }
            5 => self.beyond_ipa(),
            6 => self.next() >> self.below(64),
            7 => self.odd_gfn().unwrap_or(cfg.g0),
            _ => cfg.x0 + self.below(EXT_POOL * 4),
        };
        cfg.safe(g)
    }

    /// GFNs for dev_mmio, gmfn_foreign and grant host mappings: never the grant region
    /// (hypercall output pointers go there, and its pages are checked at the end).
    fn foreign_target(&mut self) -> u64 {
        let cfg = self.cfg;
        let g = match self.weighted(&[50, 15, 8, 10, 5, 12]) {
            0 => cfg.x0 + self.below(EXT_POOL),
            1 => cfg.victim_shared(self.next()),
            2 => cfg.gend() + self.below(2),
            3 => self.beyond_ipa(),
            4 => self.next() >> self.below(64),
            _ => cfg.x0 + EXT_POOL + self.below(EXT_POOL * 3),
        };
        let g = cfg.safe(g);
        if g >= cfg.g0 && g < cfg.gend() { cfg.x0 + g % EXT_POOL } else { g }
    }

    fn remove_target(&mut self) -> u64 {
        if self.chance(30)
            && let Some(g) = self.odd_gfn()
        {
            return self.cfg.safe(g);
        }
        if self.chance(25) { self.foreign_target() } else { self.frame_target() }
    }

    /// MFNs for dev_mmio.
    fn mmio_idx(&mut self) -> u64 {
        let cfg = self.cfg;
        match self.below(8) {
            0 => cfg.gicd.base >> 12,
            1 => (cfg.gicd.base >> 12) + 1,
            2 => cfg.victim_shared(self.next()),
            3 => cfg.g0,
            4 => 0,
            5 => self.next() >> 28,
            6 => !0,
            _ => cfg.x0 + self.below(EXT_POOL),
        }
    }

    fn gref(&mut self) -> u32 {
        let max = self.cfg.max_frames as u32;
        match self.weighted(&[55, 5, 10, 5, 5, 5, 5, 5, 5]) {
            0 => REF_SHARED + self.below(NREF_SHARED as u64) as u32,
            1 => self.below(8) as u32,
            2 => self.below(max.min(4) as u64) as u32 * 512 + REF_GARBAGE + self.below(254) as u32,
            3 => self.below(max as u64) as u32 * 512 + 511,
            4 => max * 512 + self.below(1024) as u32,
            5 => !0,
            6 => 1 << 31,
            7 => cpu_ref(self.below(self.cfg.ncpus as u64) as usize, self.below(8) as u32),
            _ => self.next() as u32,
        }
    }

    fn garbage_handle(&mut self) -> u32 {
        match self.below(4) {
            0 => !0,
            1 => 0x8000_0000,
            _ => 1 << 24 | self.next() as u32,
        }
    }

    /// A pointer argument for an object of `len` bytes (the most the hypervisor may read or
    /// write there). Valid ones are in the arena `page` (at the end of it when `at_end`, so
    /// that anything beyond `len` is in the guard page after it).
    fn ptr(&mut self, dir: Dir, page: usize, len: u64, at_end: bool) -> Ptr {
        let cfg = self.cfg;
        let base = self.arena(page);
        let full = len;
        let len = len.min(PAGE);
        match self.weighted(&[86, 2, 2, 2, 2, 1, 1, 1, 3]) {
            0 => {
                if at_end {
                    Ptr::Ok(base + PAGE - len)
                } else if self.chance(4) && len < PAGE {
                    Ptr::Ok(base + 1 + self.below(PAGE - len))
                } else {
                    Ptr::Ok(base + (self.below(PAGE - len + 1) & !7))
                }
            }
            1 => Ptr::Bad((base + PAGE + self.below(PAGE)) & !7),
            2 => {
                let n = 1 + self.below(len.max(2) - 1);
                Ptr::Part(base + PAGE - n, n as usize)
            }
            3 => Ptr::Bad(if cfg.gicd.size != 0 { cfg.gicd.base + (self.below(cfg.gicd.size) & !7) } else { 8 }),
            4 => Ptr::Bad((cfg.x0 + EXT_HOLES + self.below(NHOLES)) * PAGE + (self.below(PAGE) & !7)),
            5 => Ptr::Bad(self.beyond_ipa().wrapping_mul(PAGE) | self.below(PAGE)),
            6 => Ptr::Bad(self.pick(&[0, 8, !7, 0xffff_0000_0000_0000, 1 << 63])),
            7 => {
                // Anywhere stage 1 does not map (our map ends at 2^39, and RAM, the grant
                // region or a read-only grant mapping must never be hit).
                let a = self.next();
                Ptr::Bad(if a < 1 << 39 { self.arena(A_GUARD_STRUCT) } else { a })
            }
            _ if dir == Dir::InOut => {
                // A frame we hold (and see tagged as itself right now).
                let held = (0..self.c.npriv).find_map(|j| match self.c.priv_st[j] {
                    PState::Frame(i) => Some((self.c.priv_gfn[j], i)),
                    _ => None,
                });
                match held {
                    Some((g, i)) if len <= 0x7f0 && probe_read(g * PAGE + TAG_OFF) == Ok(tag(i)) => {
                        let room = 0xff0 - 0x800 - len;
                        Ptr::Ok(g * PAGE + 0x800 + (self.below(room + 1) & !7))
                    }
                    _ => Ptr::Ok(base),
                }
            }
            _ => {
                // The grant pool (a grant frame, shared_info or nothing may be there): the
                // hypervisor writes only to offsets 0x800..0xff0 (garbage entries), and reads
                // our grant entries, or the victim pages.
                let g = cfg.g0 + self.below(GRANT_POOL);
                match dir {
                    Dir::Write if full > 0x7f0 => Ptr::Bad(self.arena(A_GUARD_STRUCT)),
                    Dir::Write => {
                        let room = 0xff0 - 0x800 - len.min(0x7f0);
                        Ptr::Bad(g * PAGE + 0x800 + (self.below(room + 1) & !7))
                    }
                    _ => Ptr::Bad(g * PAGE + (self.below(0x800 - len.min(0x800)) & !7)),
                }
            }
        }
    }

    /// A pointer nothing can be read through (or one straddling into `guard`): for arguments
    /// whose contents would choose what gets mapped or removed.
    fn unusable_ptr(&mut self, guard: usize) -> Ptr {
        let cfg = self.cfg;
        let g = self.arena(guard);
        match self.below(6) {
            0 => Ptr::Bad(g + (self.below(PAGE) & !7)),
            1 => Ptr::Part(g - 8, 8),
            2 if cfg.gicd.size != 0 => Ptr::Bad(cfg.gicd.base + (self.below(cfg.gicd.size) & !7)),
            3 => Ptr::Bad((cfg.x0 + EXT_HOLES + self.below(NHOLES)) * PAGE),
            4 => Ptr::Bad(self.beyond_ipa().wrapping_mul(PAGE)),
            _ => Ptr::Bad(self.pick(&[0, 8, 0xffff_ffff_ffff_fff8])),
        }
    }

    /// A count for an array of `n` prepared operations: usually n, sometimes more (the
    /// array is then placed against a guard page), 0 or absurd.
    fn count(&mut self, n: u64) -> (u64, bool) {
        match self.weighted(&[85, 4, 5, 3, 3]) {
            0 => (n, false),
            1 => (0, false),
            2 => (n + 1 + self.below(8), true),
            3 => (self.pick(&[0x8000_0000, 0xffff_ffff, !0, 1 << 32 | n]), true),
            _ => (self.next() & 0xffff, true),
        }
    }

    // --- memory_op
    fn memory_op(&mut self, cmd: u64, arg: u64) -> i64 {
        let (a2, a3, a4) = (self.next(), self.next(), self.next());
        self.hc(hc::MEMORY_OP, cmd, arg, a2, a3, a4)
    }

    fn op_xatp(&mut self) {
        let space = match self.weighted(&[55, 12, 5, 5, 4, 6, 5]) {
            0 => XENMAPSPACE_GRANT_TABLE,
            1 => XENMAPSPACE_SHARED_INFO,
            2 => XENMAPSPACE_GMFN,
            3 => XENMAPSPACE_GMFN_RANGE,
            4 => XENMAPSPACE_GMFN_FOREIGN,
            5 => XENMAPSPACE_DEV_MMIO,
            _ => {
                let r = self.next() as u32;
                self.pick(&[6, 7, 0x80, 0x8000_0001, !0, r])
            }
        };
        let mut size = 0;
        let (idx, gpfn) = match space {
            XENMAPSPACE_GRANT_TABLE => (self.frame_idx(), self.frame_target()),
            XENMAPSPACE_SHARED_INFO => (if self.chance(85) { 0 } else { self.pick(&[1, 2, !0]) }, self.frame_target()),
            XENMAPSPACE_DEV_MMIO => (self.mmio_idx(), self.foreign_target()),
            // gmfn / gmfn_range move our pages: only shared victim pages, to GFNs well
            // away from anything private ([x0, x0 + 32) or beyond the IPA size).
            XENMAPSPACE_GMFN | XENMAPSPACE_GMFN_RANGE => {
                let i = self.below(VICTIM_SHARED as u64);
                size = self.below(VICTIM_SHARED as u64 - i + 1) as u16;
                let to = if self.chance(70) { self.cfg.x0 + self.below(EXT_POOL) } else { self.beyond_ipa() };
                (self.cfg.victim_shared(i), to)
            }
            _ => (self.next() >> self.below(64), self.foreign_target()),
        };
        let domid = self.domid();
        let gpfn = self.for_dom(domid, gpfn);
        if space != XENMAPSPACE_GMFN_RANGE && self.chance(5) {
            size = self.next() as u16;
        }
        let xatp = XenAddToPhysmap { domid, size, space, idx, gpfn };
        let p = self.ptr(Dir::InOut, A_STRUCT, size_of::<XenAddToPhysmap>() as u64, false);
        p.store(&xatp);
        let cmd = if self.chance(95) { XENMEM_ADD_TO_PHYSMAP } else { XENMEM_ADD_TO_PHYSMAP | self.below(8) << 6 };
        let rc = self.memory_op(cmd, p.addr());
        if p.ok() && matches!(domid, 0 | DOMID_SELF) {
            self.hist(Hk::Xatp, gpfn, space, idx, rc);
        }
        if rc == 0 && p.ok() && !self.cfg.in_pools(gpfn) {
            odd_push(gpfn);
        }
    }

    fn op_xrfp(&mut self) {
        let domid = self.domid();
        let gpfn = self.remove_target();
        let x = XenRemoveFromPhysmap { domid, _pad: [0; 6], gpfn: self.for_dom(domid, gpfn) };
        let p = self.ptr(Dir::InOut, A_STRUCT, 16, false);
        p.store(&x);
        let cmd = if self.chance(97) { XENMEM_REMOVE_FROM_PHYSMAP } else { XENMEM_REMOVE_FROM_PHYSMAP | 1 << 6 };
        let rc = self.memory_op(cmd, p.addr());
        if p.ok() && matches!(x.domid, 0 | DOMID_SELF) {
            self.hist(Hk::Xrfp, x.gpfn, 0, 0, rc);
        }
    }

    fn batch_size(&mut self) -> u64 {
        match self.weighted(&[20, 12, 15, 10, 8, 4, 2, 2, 2, 3]) {
            0 => 1,
            1 => 0,
            2 => 2 + self.below(6),
            3 => 7,
            4 => 8 + self.below(56),
            5 => 64,
            6 => 200,
            7 => 511,
            8 => self.pick(&[4096, 4095, 1000]),
            _ => self.pick(&[4097, 65535, 8192]),
        }
    }

    fn op_batch(&mut self) {
        let cfg = self.cfg;
        let space = match self.weighted(&[55, 6, 5, 5, 12, 6, 8]) {
            0 => XENMAPSPACE_GRANT_TABLE,
            1 => XENMAPSPACE_SHARED_INFO,
            2 => XENMAPSPACE_GMFN,
            3 => XENMAPSPACE_GMFN_RANGE,
            4 => XENMAPSPACE_GMFN_FOREIGN,
            5 => XENMAPSPACE_DEV_MMIO,
            _ => {
                let r = self.next() as u32 & 0xffff;
                self.pick(&[6, 7, 0x80, 0xffff, r])
            }
        } as u16;
        let size = self.batch_size();
        let filled = size.min(BATCH_MAX as u64) as usize;
        // Big batches repeat a short random pattern (cheaper to build, same coverage).
        let pattern = filled.min(if filled > 64 { 16 } else { 64 });
        let (idxs, gpfns, errs) = (self.arena(A_IDXS), self.arena(A_GPFNS), self.arena(A_ERRS));
        let mut mine = 0usize;
        for k in 0..pattern {
            let (idx, gpfn) = match space as u32 {
                XENMAPSPACE_GRANT_TABLE => (self.frame_idx(), self.frame_target()),
                XENMAPSPACE_SHARED_INFO => (if self.chance(80) { 0 } else { 1 }, self.frame_target()),
                XENMAPSPACE_DEV_MMIO => (self.mmio_idx(), self.foreign_target()),
                XENMAPSPACE_GMFN_FOREIGN => {
                    (self.pick(&[0, 1, cfg.g0, cfg.x0, !0]) + self.below(4), self.foreign_target())
                }
                // gmfn / gmfn_range move one of our pages: only ever a shared victim page.
                XENMAPSPACE_GMFN | XENMAPSPACE_GMFN_RANGE => (cfg.victim_shared(self.next()), self.foreign_target()),
                _ => (self.next() >> self.below(64), self.foreign_target()),
            };
            // Now and then one of our private GFNs, with a state update from errs[] below.
            let gpfn = if space as u32 == XENMAPSPACE_GRANT_TABLE && self.c.npriv > 0 && self.chance(5) {
                mine += 1;
                self.c.priv_gfn[self.below(self.c.npriv as u64) as usize]
            } else {
                gpfn
            };
            put64(idxs + 8 * k as u64, idx);
            put64(gpfns + 8 * k as u64, gpfn);
        }
        for k in pattern..filled {
            put64(idxs + 8 * k as u64, get(idxs + 8 * (k % pattern) as u64));
            put64(gpfns + 8 * k as u64, get(gpfns + 8 * (k % pattern) as u64));
        }
        for k in 0..filled.div_ceil(2) {
            put64(errs + 8 * k as u64, 0x5555_5555_5555_5555);
        }
        let u = match space as u32 {
            XENMAPSPACE_GMFN_FOREIGN => self.foreign_domid(),
            _ if self.chance(90) => 0,
            _ => self.next() as u16,
        };
        // idxs may also be read from the grant pool's entries or the victim pages; gpfns
        // only from our array (their values decide what gets replaced) or bad pointers.
        let pi = if self.chance(90) { Ptr::Ok(idxs) } else { self.ptr(Dir::Read, A_IDXS, 8, false) };
        let pg = if self.chance(92) { Ptr::Ok(gpfns) } else { self.unusable_ptr(A_GUARD_GPFNS) };
        let straddle = matches!(pg, Ptr::Part(..));
        let pg = if straddle {
            // The last entry of the array (a shared target), then the guard page.
            let g = self.frame_target();
            put64(gpfns + 8 * (BATCH_MAX as u64 - 1), g);
            Ptr::Bad(gpfns + 8 * (BATCH_MAX as u64 - 1))
        } else {
            pg
        };
        let pe = if self.chance(90) { Ptr::Ok(errs) } else { self.ptr(Dir::Write, A_ERRS, 4 * size, false) };
        let pe = match pe {
            Ptr::Part(..) => Ptr::Ok(errs),
            p => p,
        };
        let domid = self.domid();
        if cfg.granter != 0 && domid == cfg.granter {
            for k in (0..filled).chain([BATCH_MAX - 1]) {
                let a = gpfns + 8 * k as u64;
                put64(a, self.for_dom(domid, get(a)));
            }
        }
        let b = XenAddToPhysmapBatch {
            domid,
            space,
            size: size as u16,
            u,
            idxs: pi.addr(),
            gpfns: pg.addr(),
            errs: pe.addr(),
        };
        let mut p = self.ptr(Dir::InOut, A_STRUCT, 32, false);
        if mine > 0 && self.c.priv_gfn[..self.c.npriv].contains(&(p.addr() >> 12)) {
            // A continuation re-reads the structure: never from a page the batch remaps.
            p = Ptr::Ok(self.arena(A_STRUCT));
        }
        p.store(&b);
        let cmd = if self.chance(95) {
            XENMEM_ADD_TO_PHYSMAP_BATCH
        } else {
            XENMEM_ADD_TO_PHYSMAP_BATCH | self.below(4) << 6
        };
        let rc = self.memory_op(cmd, p.addr());
        let self_dom = matches!(b.domid, 0 | DOMID_SELF);
        // Our arrays exactly where we built them (a "valid" pointer may also be shifted into
        // them, and then the entries the hypervisor used are not the ones we look at).
        let errs_ok = pe.ok() && pe.addr() == errs;
        let arrays_ok = p.ok() && pi.ok() && pi.addr() == idxs && pg.ok() && pg.addr() == gpfns && errs_ok;
        // Per-entry results, and our private GFNs' state.
        if errs_ok {
            for k in 0..(size as usize).min(filled) {
                let e: i32 = get(errs + 4 * k as u64);
                if e != 0x5555_5555 {
                    self.c.errs[res_index(e as i64)] += 1;
                }
            }
        }
        // History: the entries that (may have) succeeded. The index is unknown when idxs
        // pointed elsewhere; the outcome is unknown ("maybe") when errs did.
        if p.ok() && self_dom && (pg.addr() == gpfns || straddle) {
            let n = if straddle { 1 } else { (size as usize).min(filled).min(512) };
            for k in 0..n {
                let e: i32 = if errs_ok { get(errs + 4 * k as u64) } else { 0 };
                if e != 0 {
                    continue;
                }
                let g = get::<u64>(if straddle { pg.addr() } else { gpfns + 8 * k as u64 });
                let idx = if pi.addr() == idxs { get::<u64>(idxs + 8 * k as u64) } else { IDX_UNKNOWN };
                let maybe = if errs_ok { 0 } else { HIST_MAYBE };
                self.hist(Hk::Batch, g, space as u32 | maybe, idx, 0);
            }
        }
        if mine > 0 && p.ok() && pg.ok() && self_dom {
            for k in 0..(size as usize).min(filled) {
                let gpfn: u64 = get(gpfns + 8 * k as u64);
                let Some(j) = self.c.priv_gfn[..self.c.npriv].iter().position(|&g| g == gpfn) else { continue };
                if !arrays_ok {
                    // Entries may have been processed without us learning how.
                    self.c.priv_st[j] = PState::Unknown;
                    continue;
                }
                let e: i32 = get(errs + 4 * k as u64);
                if e == 0 {
                    // Xen 4.17 takes the frame index as 32 bits: 2^32 + 1 maps frame 1. The
                    // frame's tag tells (verify_private below) if a hypervisor differs.
                    let idx = get::<u64>(idxs + 8 * k as u64) & 0xffff_ffff;
                    if idx >= self.cfg.max_frames {
                        self.c.priv_st[j] = PState::Unknown;
                        continue;
                    }
                    let was = self.c.priv_st[j];
                    self.check(
                        was != PState::Frame(idx),
                        format_args!(
                            "batch mapped frame {idx} again at {gpfn:#x} where it already was (expected -EBUSY)"
                        ),
                    );
                    self.c.priv_st[j] = PState::Frame(idx);
                }
            }
            for j in 0..self.c.npriv {
                self.verify_private(j);
            }
        }
        if rc >= 0
            && arrays_ok
            && self_dom
            && cmd == XENMEM_ADD_TO_PHYSMAP_BATCH
            && matches!(space as u32, XENMAPSPACE_GRANT_TABLE | XENMAPSPACE_SHARED_INFO)
        {
            for k in 0..pattern.min(size as usize) {
                let (e, g): (i32, u64) = (get(errs + 4 * k as u64), get(gpfns + 8 * k as u64));
                if e == 0 && !cfg.in_pools(g) && !cfg.reserved(g) {
                    odd_push(g);
                }
            }
        }
    }

    // --- grant_table_op
    fn gnttab(&mut self, cmd: u64, ops: u64, count: u64) -> i64 {
        let (a3, a4) = (self.next(), self.next());
        self.hc(hc::GRANT_TABLE_OP, cmd, ops, count, a3, a4)
    }

    /// Places `ops` and makes the call with a fuzzed count and pointer; returns (rc, where
    /// the ops are if they can be read back, whether the count was the number of ops).
    /// Callers read back the results of the first `self.readable` ops only.
    fn gnttab_ops<T: Copy>(&mut self, cmd: u64, ops: &[T]) -> (i64, Option<u64>, bool) {
        let sz = size_of::<T>() as u64;
        let n = ops.len() as u64;
        let (count, overrun) = self.count(n);
        let p = if overrun {
            Ptr::Ok(self.arena(A_STRUCT) + PAGE - n * sz)
        } else {
            self.ptr(Dir::InOut, A_STRUCT, n * sz, false)
        };
        p.store_all(ops);
        let rc = self.gnttab(cmd, p.addr(), count);
        // A straddling array: the ops that fit before the guard page may have been processed
        // (and their results written); the first one that does not fit fails the call.
        self.readable = match p {
            Ptr::Ok(_) => n as usize,
            Ptr::Part(_, bytes) => bytes / sz as usize,
            Ptr::Bad(_) => 0,
        };
        (rc, if self.readable > 0 { Some(p.addr()) } else { None }, count == n)
    }

    fn op_query(&mut self) {
        let dom = self.domid();
        let q = GnttabQuerySize { dom, status: STATUS_UNWRITTEN, ..Default::default() };
        let (rc, at, _) = self.gnttab_ops(GNTTABOP_QUERY_SIZE, &[q]);
        if let Some(a) = at {
            let q: GnttabQuerySize = get_unaligned(a);
            self.gntst(q.status);
            if rc == 0 && q.status == GNTST_OKAY && matches!(dom, 0 | DOMID_SELF) {
                self.check_sizes(q);
            }
        }
    }

    fn check_sizes(&mut self, q: GnttabQuerySize) {
        let (nr, max) = (q.nr_frames as u64, q.max_nr_frames as u64);
        let last = self.c.last_nr_frames;
        self.check(nr >= last, format_args!("query_size: nr_frames {nr} after {last} (the table shrank)"));
        self.check(nr <= max, format_args!("query_size: nr_frames {nr} > max_nr_frames {max}"));
        let want = self.cfg.max_frames;
        self.check(max == want, format_args!("query_size: max_nr_frames {max}, was {want} at the start"));
        self.c.last_nr_frames = self.c.last_nr_frames.max(nr);
    }

    fn op_setup(&mut self) {
        let max = self.cfg.max_frames;
        let nr = match self.weighted(&[30, 20, 15, 10, 10, 10, 5]) {
            0 => 1 + self.below(max.min(8)),
            1 => self.c.last_nr_frames.max(1),
            2 => max,
            3 => max + 1 + self.below(4),
            4 => 0,
            5 => self.below(600),
            _ => self.pick(&[0xffff_ffff, 0x8000_0000, 513]),
        } as u32;
        let at_end = self.chance(30);
        let pf = self.ptr(Dir::Write, A_OUT, 8 * (nr as u64).max(1), at_end);
        let pf = match pf {
            Ptr::Part(a, _) => Ptr::Bad(a),
            p => p,
        };
        let dom = self.domid();
        let op = GnttabSetupTable {
            dom,
            nr_frames: nr,
            status: STATUS_UNWRITTEN,
            frame_list: pf.addr(),
            ..Default::default()
        };
        let (rc, at, _) = self.gnttab_ops(GNTTABOP_SETUP_TABLE, &[op]);
        if let Some(a) = at {
            let op: GnttabSetupTable = get_unaligned(a);
            self.gntst(op.status);
            let fits = pf.ok() && pf.addr() + 8 * nr as u64 <= self.arena(A_OUT) + PAGE;
            if rc == 0 && op.status == GNTST_OKAY && matches!(dom, 0 | DOMID_SELF) && fits {
                self.check_frame_list(pf.addr(), nr as u64);
            }
        }
    }

    /// `frames` GFNs (from setup_table) at `list`: the frames we hold at private GFNs are
    /// listed there, and no other frame is listed at one of our private GFNs.
    fn check_frame_list(&mut self, list: u64, frames: u64) {
        let frames = frames.min(PAGE / 8);
        for f in 0..frames {
            let g: u64 = get_unaligned(list + 8 * f);
            if let Some(j) = self.c.priv_gfn[..self.c.npriv].iter().position(|&p| p == g)
                && self.c.priv_st[j] != PState::Unknown
            {
                let st = self.c.priv_st[j];
                self.check(
                    st == PState::Frame(f),
                    format_args!("setup_table: frame {f} at our private GFN {g:#x}, which holds {st:?}"),
                );
            }
        }
        for j in 0..self.c.npriv {
            if let PState::Frame(f) = self.c.priv_st[j]
                && f < frames
            {
                let (g, want) = (get_unaligned::<u64>(list + 8 * f), self.c.priv_gfn[j]);
                self.check(g == want, format_args!("setup_table: frame {f} at {g:#x}, but we mapped it at {want:#x}"));
            }
        }
    }

    fn op_version(&mut self) {
        if self.chance(50) {
            let v = GnttabSetVersion { version: self.pick(&[1, 1, 2, 0, 3, !0]) };
            let (rc, at, sane) = self.gnttab_ops(GNTTABOP_SET_VERSION, &[v]);
            // (An absurd count is refused before the version is written back.)
            if let Some(a) = at
                && sane
                && rc != -EFAULT
            {
                let back: GnttabSetVersion = get_unaligned(a);
                self.check(
                    back.version == 1,
                    format_args!("set_version({}) -> {rc}: version now {}", v.version, back.version),
                );
            }
        } else {
            let dom = self.domid();
            let g = GnttabGetVersion { dom, pad: 0, version: 0x55 };
            let (rc, at, _) = self.gnttab_ops(GNTTABOP_GET_VERSION, &[g]);
            if let Some(a) = at
                && rc == 0
                && matches!(dom, 0 | DOMID_SELF)
            {
                let back: GnttabGetVersion = get_unaligned(a);
                self.check(back.version == 1, format_args!("get_version: {}", back.version));
            }
        }
    }

    fn map_flags(&mut self) -> u32 {
        match self.weighted(&[50, 20, 5, 5, 5, 5, 5, 5]) {
            0 => GNTMAP_HOST_MAP,
            1 => GNTMAP_HOST_MAP | GNTMAP_READONLY,
            2 => GNTMAP_DEVICE_MAP,
            3 => GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP,
            4 => GNTMAP_APPLICATION_MAP | GNTMAP_HOST_MAP,
            5 => GNTMAP_CONTAINS_PTE | GNTMAP_HOST_MAP,
            6 => 0,
            _ => self.next() as u32,
        }
    }

    fn op_map(&mut self) {
        let n = 1 + if self.chance(80) { 0 } else { self.below(4) };
        let mut ops = [GnttabMapGrantRef::default(); 4];
        for op in ops[..n as usize].iter_mut() {
            let host = if self.chance(95) {
                self.foreign_target() * PAGE
            } else {
                self.foreign_target() * PAGE + self.below(PAGE)
            };
            *op = GnttabMapGrantRef {
                host_addr: host,
                flags: 0,
                ref_: 0,
                dom: 0,
                status: STATUS_UNWRITTEN,
                handle: 0x5555_5555,
                dev_bus_addr: 0,
            };
        }
        for op in ops[..n as usize].iter_mut() {
            op.flags = self.map_flags();
            op.ref_ = self.gref();
            op.dom = if self.chance(75) { 0 } else { self.domid() };
            if self.cfg.granter != 0 && self.chance(40) {
                // The granter's grants, which it rewrites and revokes all the time.
                op.dom = self.cfg.granter;
                op.ref_ = REF_SHARED + self.below(NREF_SHARED as u64) as u32;
            }
            // Xen 4.17: a grant mapping over a grant frame of that same frame's MFN keeps
            // the frame's recorded GFN through the unmap (see the module docs). Such grants
            // only go to GFNs where no frame is ever mapped.
            if self.cfg.xen_quirks && may_grant_a_frame(op.ref_) {
                op.host_addr = (self.cfg.x0 + EXT_QUIRK_HOSTS + self.below(EXT_POOL)) * PAGE;
            }
        }
        let (_, at, _) = self.gnttab_ops(GNTTABOP_MAP_GRANT_REF, &ops[..n as usize]);
        if let Some(a) = at {
            for k in 0..self.readable as u64 {
                let op: GnttabMapGrantRef = get_unaligned(a + 32 * k);
                self.gntst(op.status);
                self.hist(Hk::Map, op.host_addr >> 12, op.ref_, op.handle as u64, op.status as i64);
                if op.status == GNTST_OKAY {
                    let start = self.below(HANDLES.len() as u64) as usize;
                    handle_push(op.host_addr, op.handle, start);
                    if op.dom == self.cfg.granter && op.dom != 0 {
                        let n = XMAPS.fetch_add(1, Relaxed);
                        // Machine addresses of the granter's pages, for cache flushes that race
                        // with the unmaps, the granter's revocations and its crash.
                        XMAS[n as usize % XMAS.len()].store(op.dev_bus_addr, Relaxed);
                    }
                }
            }
        }
    }

    fn op_unmap(&mut self) {
        let n = 1 + if self.chance(80) { 0 } else { self.below(3) };
        let replace = self.chance(25);
        let mut taken = [0u64; 3];
        let mut ops = [GnttabUnmapGrantRef::default(); 3];
        for k in 0..n as usize {
            let slot = self.below(HANDLES.len() as u64) as usize;
            let v = if self.chance(70) { HANDLES[slot].swap(0, Relaxed) } else { 0 };
            taken[k] = v;
            let (handle, host) = if v != 0 {
                let host =
                    if self.chance(85) { ((v >> 32) & 0x7fff_ffff) * PAGE } else { self.foreign_target() * PAGE };
                (v as u32, host)
            } else {
                let host = if self.chance(50) { self.foreign_target() * PAGE } else { self.pick(&[0, 8, !0]) };
                (self.garbage_handle(), host)
            };
            let dev = if self.chance(90) { 0 } else { self.next() };
            ops[k] =
                GnttabUnmapGrantRef { host_addr: host, dev_bus_addr: dev, handle, status: STATUS_UNWRITTEN, _pad: 0 };
        }
        let statuses: [i16; 3] = if replace {
            let mut r = [GnttabUnmapAndReplace::default(); 3];
            for k in 0..n as usize {
                let new_addr = if self.chance(80) { 0 } else { self.foreign_target() * PAGE };
                r[k] = GnttabUnmapAndReplace {
                    host_addr: ops[k].host_addr,
                    new_addr,
                    handle: ops[k].handle,
                    status: STATUS_UNWRITTEN,
                    _pad: 0,
                };
            }
            let (_, at, _) = self.gnttab_ops(GNTTABOP_UNMAP_AND_REPLACE, &r[..n as usize]);
            let mut st = [STATUS_UNWRITTEN; 3];
            if let Some(a) = at {
                for (k, s) in st.iter_mut().enumerate().take(self.readable) {
                    *s = get_unaligned::<GnttabUnmapAndReplace>(a + 24 * k as u64).status;
                }
            }
            st
        } else {
            let (_, at, _) = self.gnttab_ops(GNTTABOP_UNMAP_GRANT_REF, &ops[..n as usize]);
            let mut st = [STATUS_UNWRITTEN; 3];
            if let Some(a) = at {
                for (k, s) in st.iter_mut().enumerate().take(self.readable) {
                    *s = get_unaligned::<GnttabUnmapGrantRef>(a + 24 * k as u64).status;
                }
            }
            st
        };
        for k in 0..n as usize {
            self.gntst(statuses[k]);
            if k < self.readable {
                self.hist(Hk::Unmap, ops[k].host_addr >> 12, 0, ops[k].handle as u64, statuses[k] as i64);
            }
            // A mapping that is (maybe) still there goes back to the list.
            if taken[k] != 0 && statuses[k] != GNTST_OKAY {
                let start = self.below(HANDLES.len() as u64) as usize;
                let v = taken[k];
                handle_push(((v >> 32) & 0x7fff_ffff) * PAGE, v as u32, start);
            }
        }
    }

    fn copy_side(&mut self, dest: bool) -> (GnttabCopyPtr, u16) {
        let me = self.c.id;
        let cfg = self.cfg;
        if self.chance(45) {
            // By grant reference. Destinations: only our copy page's grants (or references
            // that grant nothing), never a reference whose entry we do not control.
            let r = if dest {
                match self.below(6) {
                    0..=2 => cpu_ref(me, REF_COPY_RW),
                    3 => cpu_ref(me, REF_COPY_RO),
                    4 => self.below(8) as u32,
                    _ => cfg.max_frames as u32 * 512 + self.below(100) as u32,
                }
            } else {
                self.gref()
            };
            let mut domid = if self.chance(85) { 0 } else { self.domid() };
            let mut r = r;
            if cfg.granter != 0 && self.chance(30) {
                domid = cfg.granter;
                r = REF_SHARED + self.below(NREF_SHARED as u64) as u32;
            }
            let flag = if dest { GNTCOPY_DEST_GREF } else { GNTCOPY_SOURCE_GREF };
            (GnttabCopyPtr { u: r as u64, domid, offset: 0, _pad: 0 }, flag)
        } else {
            // Destinations: our copy page, or GFNs nothing is ever mapped at (a grant frame
            // may be mapped at any GFN the other operations aim at, even beyond the IPA
            // size, and a copy there would overwrite its grants or tag).
            let g = if dest {
                match self.below(6) {
                    0..=2 => ARENA.gfn(me * ARENA_PAGES + A_COPY),
                    3 | 4 => cfg.x0 + EXT_HOLES + self.below(NHOLES),
                    _ => !0,
                }
            } else {
                match self.below(8) {
                    0 => ARENA.gfn(me * ARENA_PAGES + A_PAGE_RW),
                    1 => SHARED.gfn(self.below(8) as usize),
                    2 => cfg.victim_shared(self.next()),
                    3 => cfg.g0 + self.below(GRANT_POOL),
                    4 => cfg.x0 + self.below(EXT_POOL),
                    5 => self.beyond_ipa(),
                    6 => cfg.x0 + EXT_HOLES,
                    _ => ARENA.gfn(me * ARENA_PAGES + A_COPY),
                }
            };
            let domid = if self.chance(85) {
                DOMID_SELF
            } else if dest {
                self.pick(&[0, 1, DOMID_IO, DOMID_XEN])
            } else {
                self.domid()
            };
            let g = if dest { self.for_dom(domid, g) } else { g };
            (GnttabCopyPtr { u: g, domid, offset: 0, _pad: 0 }, 0)
        }
    }

    fn op_copy(&mut self) {
        let n = 1 + if self.chance(70) { 0 } else { self.below(8) };
        let mut ops = [GnttabCopy::default(); 8];
        for op in ops[..n as usize].iter_mut() {
            *op = GnttabCopy { status: STATUS_UNWRITTEN, ..Default::default() };
        }
        for op in ops[..n as usize].iter_mut() {
            let (mut src, sf) = self.copy_side(false);
            let (mut dst, df) = self.copy_side(true);
            let len = match self.below(8) {
                0 => 0,
                1 => 8,
                2 => 64,
                3 => 4096,
                4 => 4097,
                5 => self.below(4096) as u16,
                6 => 1,
                _ => self.next() as u16,
            };
            src.offset = if self.chance(60) { 0 } else { self.below(4096) as u16 };
            let r = self.below(4096) as u16;
            dst.offset = if self.chance(60) { 0 } else { self.pick(&[4095, r, 0xffff]) };
            // A flag bit that says "by reference" for a GFN side would turn our GFN into a
            // reference: only ever add the source one at random.
            let mut flags = sf | df;
            if self.chance(5) {
                flags |= GNTCOPY_SOURCE_GREF | (self.next() as u16 & 0xfffc);
                if flags & GNTCOPY_SOURCE_GREF != 0 && sf == 0 {
                    src.u = self.gref() as u64;
                    src.domid = 0;
                }
            }
            *op = GnttabCopy { source: src, dest: dst, len, flags, status: STATUS_UNWRITTEN, _pad: 0 };
        }
        let (_, at, _) = self.gnttab_ops(GNTTABOP_COPY, &ops[..n as usize]);
        if let Some(a) = at {
            for k in 0..self.readable as u64 {
                let op: GnttabCopy = get_unaligned(a + 40 * k);
                self.gntst(op.status);
            }
        }
    }

    fn op_gnt_misc(&mut self) {
        let cfg = self.cfg;
        match self.weighted(&[20, 25, 15, 10, 15, 15]) {
            0 => {
                let nr = self.pick(&[0, 1, 2, 64, 0xffff_ffff]);
                let pf = self.ptr(Dir::Write, A_OUT, 8 * nr.clamp(1, 512) as u64, false);
                let op = GnttabGetStatusFrames {
                    nr_frames: nr,
                    dom: self.domid(),
                    status: STATUS_UNWRITTEN,
                    frame_list: pf.addr(),
                };
                let (_, at, _) = self.gnttab_ops(GNTTABOP_GET_STATUS_FRAMES, &[op]);
                if let Some(a) = at {
                    self.gntst(get_unaligned::<GnttabGetStatusFrames>(a).status);
                }
            }
            1 => {
                // Cache maintenance only on pages whose contents nothing relies on.
                let me = self.c.id;
                let n = 1 + self.below(3);
                let mut ops = [GnttabCacheFlush::default(); 3];
                for op in ops[..n as usize].iter_mut() {
                    let (a, by_ref) = match self.below(6) {
                        0 if cfg.granter != 0 && self.chance(50) => {
                            let ma = XMAS[self.below(XMAS.len() as u64) as usize].load(Relaxed);
                            (ma + self.below(PAGE), false)
                        }
                        0 => (ARENA.addr(me * ARENA_PAGES + A_COPY), false),
                        1 => (SHARED.addr(0), false),
                        2 => (cfg.victim_shared(self.next()) * PAGE, false),
                        3 => ((REF_SHARED + self.below(8) as u32) as u64, true),
                        4 => (self.next(), false),
                        _ => (self.gref() as u64, true),
                    };
                    let mut o = self.pick(&[
                        GNTTAB_CACHE_CLEAN,
                        GNTTAB_CACHE_INVAL,
                        GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL,
                        0,
                        4,
                    ]);
                    if by_ref {
                        o |= GNTTAB_CACHE_SOURCE_GREF;
                    }
                    // Invalidation discards data: only by reference to the shared pages or
                    // on the copy page, never anywhere random.
                    if o & GNTTAB_CACHE_INVAL != 0 && !(by_ref && a < (REF_SHARED + 8) as u64 && a >= REF_SHARED as u64)
                    {
                        o &= !GNTTAB_CACHE_INVAL;
                        o |= GNTTAB_CACHE_CLEAN;
                    }
                    let (r1, r2) = (self.below(4096) as u16, self.next() as u16);
                    let offset = self.pick(&[0, 64, 4095, r1]);
                    let length = self.pick(&[0, 64, 4096, 1, r2]);
                    *op = GnttabCacheFlush { a, offset, length, op: o };
                }
                self.gnttab_ops(GNTTABOP_CACHE_FLUSH, &ops[..n as usize]);
            }
            2 => {
                // Only entries nobody relies on: garbage entries and references beyond the
                // table (tags, reserved and our own grants stay put).
                let r = |f: &mut Self| {
                    if f.chance(70) {
                        f.below(cfg.max_frames.min(4)) as u32 * 512 + REF_GARBAGE + f.below(254) as u32
                    } else {
                        cfg.max_frames as u32 * 512 + f.below(4096) as u32
                    }
                };
                let op = GnttabSwapGrantRef { ref_a: r(self), ref_b: r(self), status: STATUS_UNWRITTEN, _pad: 0 };
                let (_, at, _) = self.gnttab_ops(GNTTABOP_SWAP_GRANT_REF, &[op]);
                if let Some(a) = at {
                    self.gntst(get_unaligned::<GnttabSwapGrantRef>(a).status);
                }
            }
            3 => {
                let p = self.ptr(Dir::Read, A_STRUCT, 64, false);
                let count = self.pick(&[0, 1, 3]);
                self.gnttab(GNTTABOP_TRANSFER, p.addr(), count);
            }
            4 => {
                // Operations that do not exist, and continuation bits on ones that take none.
                let cmd = match self.below(4) {
                    0 => 13 + self.below(0xfff - 13),
                    1 => {
                        self.pick(&[GNTTABOP_QUERY_SIZE, GNTTABOP_GET_VERSION, GNTTABOP_SET_VERSION])
                            | (1 + self.below(15)) << 12
                    }
                    2 => GNTTABOP_DUMP_TABLE | 1 << 12,
                    _ => 0xfff,
                };
                let p = self.ptr(Dir::InOut, A_STRUCT, 64, false);
                let count = self.pick(&[0, 1, 2]);
                self.gnttab(cmd, p.addr(), count);
            }
            _ => {
                // Counts that are 0 or absurd for real operations, with bad pointers.
                let cmd = self.pick(&[
                    GNTTABOP_MAP_GRANT_REF,
                    GNTTABOP_UNMAP_GRANT_REF,
                    GNTTABOP_SETUP_TABLE,
                    GNTTABOP_COPY,
                    GNTTABOP_QUERY_SIZE,
                ]);
                let p = match self.ptr(Dir::InOut, A_STRUCT, 64, false) {
                    Ptr::Ok(_) | Ptr::Part(..) => Ptr::Bad(self.arena(A_GUARD_STRUCT)),
                    p => p,
                };
                let count = self.pick(&[0, 1, 0x8000_0000, 0xffff_ffff, !0]);
                self.gnttab(cmd, p.addr(), count);
            }
        }
    }

    // --- xen_version, console_io, sched_op, garbage
    fn op_xen_version(&mut self) {
        use xen_abi::version::*;
        // Garbage commands stay garbage when the hypervisor truncates them to an int.
        let cmd = if self.chance(90) { self.below(11) } else { (11 + self.below(1000)) | self.next() << 32 };
        let len = match cmd {
            XENVER_EXTRAVERSION | XENVER_GUEST_HANDLE => 16,
            XENVER_COMPILE_INFO => 144,
            XENVER_CAPABILITIES | XENVER_COMMANDLINE => 1024,
            XENVER_CHANGESET => 64,
            XENVER_PLATFORM_PARAMETERS | XENVER_GET_FEATURES => 8,
            XENVER_BUILD_ID => 256,
            _ => 64,
        };
        let at_end = self.chance(20);
        let p = self.ptr(Dir::Write, A_OUT, len, at_end);
        if let Ptr::Ok(a) = p {
            // get_features reads submap_idx; build_id reads the buffer length.
            let first = match cmd {
                XENVER_GET_FEATURES => self.pick(&[0, 1, 31, !0]),
                XENVER_BUILD_ID => self.pick(&[len as u32 - 4, 0, 4, 0x8000_0000]),
                _ => 0,
            };
            put(a, &first, 4);
        }
        let arg = if self.chance(3) { 0 } else { p.addr() };
        let (a2, a3, a4) = (self.next(), self.next(), self.next());
        self.hc(hc::XEN_VERSION, cmd, arg, a2, a3, a4);
    }

    fn op_console(&mut self) {
        let dots = self.arena(A_DOTS);
        let (cmd, len, buf) = match self.weighted(&[60, 10, 3, 12, 8, 5, 2]) {
            // Writes print only dots (and we end the line), or fail before printing.
            0 => (0, 1 + self.below(64), dots + self.below(64)),
            1 => (0, 0, dots),
            2 => (0, PAGE - self.below(16) + self.below(32), dots + self.below(16)),
            3 => (0, self.pick(&[16, 4096, 0x7fff_ffff, !0]), self.unusable_ptr(A_GUARD_DOTS).addr()),
            4 => (1, self.pick(&[0, 1, 64]), self.ptr(Dir::Write, A_OUT, 64, false).addr()),
            5 => (self.pick(&[2, 3, 100, 0xffff_ffff]), self.below(64), dots),
            _ => (0, self.next(), dots),
        };
        // Only our dots (or nothing) may reach the console: a bad pointer must be unusable,
        // never memory with other contents.
        let buf = if cmd == 0 && !(dots..dots + PAGE).contains(&buf) && self.cfg.in_ram(buf >> 12) {
            self.arena(A_GUARD_DOTS) + (buf & 0xff8)
        } else {
            buf
        };
        console::with_lock(|| {
            let rc = self.hc(hc::CONSOLE_IO, cmd, len, buf, 0, 0);
            if cmd == 0 && rc != 0 || cmd == 0 && len > 0 && rc != -EFAULT {
                console::write_str("\n");
            }
        });
    }

    fn op_sched(&mut self) {
        use xen_abi::sched::*;
        if self.chance(80) {
            let a = self.next();
            self.hc(hc::SCHED_OP, SCHEDOP_YIELD, a, 0, 0, 0);
        } else {
            // Sub-ops that do not exist (block, poll, shutdown, watchdog... are never used).
            let cmd = self.pick(&[8, 9, 10, 32, 63, 100, 0xffff_ffff, !0]);
            let p = self.ptr(Dir::InOut, A_STRUCT, 16, false);
            self.hc(hc::SCHED_OP, cmd, p.addr(), 0, 0, 0);
        }
    }

    fn op_garbage(&mut self) {
        // Hypercall numbers Xen does not implement on Arm (with any arguments), and
        // multicall with nothing to do or an unusable list. Never 63 (the audit).
        const NONE: [u64; 32] = [
            0,
            1,
            2,
            3,
            4,
            5,
            6,
            8,
            9,
            10,
            11,
            14,
            15,
            16,
            19,
            22,
            23,
            25,
            26,
            28,
            30,
            31,
            37,
            38,
            40,
            43,
            50,
            62,
            64,
            65,
            1000,
            0xffff_ffff,
        ];
        if self.chance(85) {
            let op = if self.chance(90) { self.pick(&NONE) } else { (64 + self.below(1 << 20)) | self.next() << 32 };
            let (a, b, c, d, e) = (self.next(), self.next(), self.next(), self.next(), self.next());
            self.hc(op, a, b, c, d, e);
        } else {
            let (ptr, count) = if self.chance(50) {
                (self.ptr(Dir::Read, A_STRUCT, 64, false).addr(), 0)
            } else {
                (self.arena(A_GUARD_STRUCT) + (self.below(PAGE) & !7), 1 + self.below(4))
            };
            self.hc(hc::MULTICALL, ptr, count, 0, 0, 0);
        }
    }

    // --- private GFNs: the checked state machine
    fn xatp_private(&mut self, space: u32, idx: u64, gpfn: u64) -> i64 {
        let domid = if self.chance(80) { DOMID_SELF } else { 0 };
        let xatp = XenAddToPhysmap { domid, size: 0, space, idx, gpfn };
        let a = self.arena(A_STRUCT) + (self.below(64) * 8);
        put(a, &xatp, usize::MAX);
        let rc = self.memory_op(XENMEM_ADD_TO_PHYSMAP, a);
        self.hist(Hk::Xatp, gpfn, space, idx, rc);
        rc
    }

    fn xrfp_private(&mut self, gpfn: u64) -> i64 {
        let domid = if self.chance(80) { DOMID_SELF } else { 0 };
        let x = XenRemoveFromPhysmap { domid, _pad: [0; 6], gpfn };
        let a = self.arena(A_STRUCT) + (self.below(64) * 8);
        put(a, &x, usize::MAX);
        let rc = self.memory_op(XENMEM_REMOVE_FROM_PHYSMAP, a);
        self.hist(Hk::Xrfp, gpfn, 0, 0, rc);
        rc
    }

    /// Reads private GFN j and checks it against its state.
    fn verify_private(&mut self, j: usize) {
        let g = self.c.priv_gfn[j];
        let st = self.c.priv_st[j];
        match st {
            PState::Unknown => {
                let _ = self.probe(g * PAGE);
            }
            PState::Empty => {
                let r = self.probe(g * PAGE);
                self.check(r.is_err(), format_args!("private GFN {g:#x}: nothing should be mapped, read {r:x?}"));
            }
            PState::Ram | PState::SharedInfo => {
                let r = self.probe(g * PAGE);
                self.check(r.is_ok(), format_args!("private GFN {g:#x} ({st:?}): read faults: {r:x?}"));
            }
            PState::Frame(i) => match self.probe(g * PAGE + TAG_OFF) {
                Err(f) => {
                    self.check(false, format_args!("private GFN {g:#x} should hold grant frame {i}: {f}"));
                }
                Ok(0) => {
                    // First time this frame is seen: tag it.
                    // SAFETY: a grant frame mapped at our private GFN (no Rust object).
                    let w = unsafe { probe_write(g * PAGE + TAG_OFF, tag(i)) };
                    let r = self.probe(g * PAGE + TAG_OFF);
                    self.check(
                        w.is_ok() && r == Ok(tag(i)),
                        format_args!("tagging frame {i} at {g:#x}: write {w:x?}, read back {r:x?}"),
                    );
                }
                Ok(v) => {
                    self.check(
                        v == tag(i),
                        format_args!(
                            "private GFN {g:#x} should hold grant frame {i} (tag {:#x}), reads {v:#x} (frame {:?})",
                            tag(i),
                            tag_index(v)
                        ),
                    );
                    if i == 0 {
                        // Frame 0 holds our grants: entry REF_RW grants our RW page to 0.
                        let r = cpu_ref(self.c.id, REF_RW) as u64;
                        let want = ARENA.gfn(self.c.id * ARENA_PAGES + A_PAGE_RW);
                        if let Ok(e) = self.probe(g * PAGE + 8 * r) {
                            self.check(
                                e >> 16 == want << 16 && e as u16 & GTF_TYPE_MASK == GTF_PERMIT_ACCESS,
                                format_args!("frame 0 at {g:#x}: our grant {r} reads {e:#x}"),
                            );
                        }
                    }
                }
            },
        }
    }

    fn op_private(&mut self) {
        if self.c.npriv == 0 {
            return;
        }
        let j = self.below(self.c.npriv as u64) as usize;
        let g = self.c.priv_gfn[j];
        let st = self.c.priv_st[j];
        match self.weighted(&[40, 6, 30, 12, 12]) {
            0 => {
                let i = self.private_frame_idx();
                let rc = self.xatp_private(XENMAPSPACE_GRANT_TABLE, i, g);
                if i >= self.cfg.max_frames {
                    self.check(rc == -EINVAL, format_args!("map frame {i} (>= max) at {g:#x}: {rc}"));
                } else if st == PState::Frame(i) {
                    self.check(rc == -EBUSY, format_args!("map frame {i} at {g:#x} where it is already: {rc}"));
                } else {
                    self.check(rc == 0 || rc == -EBUSY, format_args!("map frame {i} at {g:#x} (was {st:?}): {rc}"));
                }
                if rc == 0 {
                    self.c.priv_st[j] = PState::Frame(i);
                }
                self.verify_private(j);
                if rc == 0 && self.chance(30) {
                    self.setup_check();
                }
            }
            1 => {
                let rc = self.xatp_private(XENMAPSPACE_SHARED_INFO, 0, g);
                if st == PState::SharedInfo {
                    self.check(rc == -EBUSY, format_args!("map shared_info at {g:#x} where it is already: {rc}"));
                } else {
                    self.check(rc == 0 || rc == -EBUSY, format_args!("map shared_info at {g:#x}: {rc}"));
                }
                if rc == 0 {
                    self.c.priv_st[j] = PState::SharedInfo;
                }
                self.verify_private(j);
            }
            2 => {
                let rc = self.xrfp_private(g);
                match st {
                    PState::Unknown => {}
                    PState::Empty => {
                        self.check(rc == -ENOENT, format_args!("remove {g:#x} (nothing there): {rc}"));
                    }
                    _ => {
                        self.check(rc == 0, format_args!("remove {g:#x} ({st:?}): {rc}"));
                    }
                }
                if rc == 0 || rc == -ENOENT {
                    self.c.priv_st[j] = PState::Empty;
                }
                self.verify_private(j);
            }
            3 => self.batch_private(),
            _ => {
                if self.chance(50) {
                    self.verify_private(j);
                } else {
                    self.setup_check();
                }
            }
        }
    }

    /// A batch over our private GFNs only, with the state model updated entry by entry.
    fn batch_private(&mut self) {
        let n = 1 + self.below(4) as usize;
        let (idxs, gpfns, errs) = (self.arena(A_IDXS), self.arena(A_GPFNS), self.arena(A_ERRS));
        let mut js = [0usize; 4];
        for (k, jk) in js[..n].iter_mut().enumerate() {
            *jk = self.below(self.c.npriv as u64) as usize;
            let i = self.private_frame_idx();
            put64(idxs + 8 * k as u64, i);
            put64(gpfns + 8 * k as u64, self.c.priv_gfn[*jk]);
            put(errs + 4 * k as u64, &0x5555_5555u32, 4);
        }
        let b = XenAddToPhysmapBatch {
            domid: if self.chance(80) { DOMID_SELF } else { 0 },
            space: XENMAPSPACE_GRANT_TABLE as u16,
            size: n as u16,
            u: 0,
            idxs,
            gpfns,
            errs,
        };
        let a = self.arena(A_STRUCT);
        put(a, &b, usize::MAX);
        let rc = self.memory_op(XENMEM_ADD_TO_PHYSMAP_BATCH, a);
        self.check(rc == 0, format_args!("batch of {n} over private GFNs: {rc}"));
        for (k, &j) in js[..n].iter().enumerate() {
            let (i, e): (u64, i32) = (get(idxs + 8 * k as u64), get(errs + 4 * k as u64));
            let (g, st) = (self.c.priv_gfn[j], self.c.priv_st[j]);
            self.c.errs[res_index(e as i64)] += 1;
            let ok = if i >= self.cfg.max_frames {
                e == -EINVAL as i32
            } else if st == PState::Frame(i) {
                e == -EBUSY as i32
            } else {
                e == 0 || e == -EBUSY as i32
            };
            self.check(ok, format_args!("batch entry {k}: frame {i} at {g:#x} (was {st:?}): {e}"));
            if e == 0 {
                self.hist(Hk::Batch, g, XENMAPSPACE_GRANT_TABLE, i, 0);
                self.c.priv_st[j] = PState::Frame(i);
            } else if e == 0x5555_5555 {
                self.c.priv_st[j] = PState::Unknown;
            }
        }
        for &j in &js[..n] {
            self.verify_private(j);
        }
        if self.chance(30) {
            self.setup_check();
        }
    }

    /// setup_table + query_size against the frames we hold privately.
    fn setup_check(&mut self) {
        let held = self.c.priv_st[..self.c.npriv]
            .iter()
            .filter_map(|s| if let PState::Frame(i) = s { Some(*i + 1) } else { None })
            .max()
            .unwrap_or(1);
        let nr = if self.chance(50) { held } else { held.max(self.c.last_nr_frames).min(512) };
        let list = self.arena(A_OUT);
        let op = GnttabSetupTable {
            dom: if self.chance(80) { DOMID_SELF } else { 0 },
            nr_frames: nr as u32,
            status: STATUS_UNWRITTEN,
            frame_list: list,
            ..Default::default()
        };
        let a = self.arena(A_STRUCT);
        put(a, &op, usize::MAX);
        let rc = self.gnttab(GNTTABOP_SETUP_TABLE, a, 1);
        let st = get::<GnttabSetupTable>(a).status;
        self.gntst(st);
        let ok = self.check(rc == 0 && st == GNTST_OKAY, format_args!("setup_table({nr}): rc {rc} status {st}"));
        if ok {
            self.check_frame_list(list, nr);
        }
        let q = GnttabQuerySize { dom: DOMID_SELF, status: STATUS_UNWRITTEN, ..Default::default() };
        put(a, &q, usize::MAX);
        let rc = self.gnttab(GNTTABOP_QUERY_SIZE, a, 1);
        let q: GnttabQuerySize = get(a);
        self.gntst(q.status);
        if self.check(rc == 0 && q.status == GNTST_OKAY, format_args!("query_size: rc {rc} status {}", q.status)) {
            self.check(
                q.nr_frames as u64 >= held,
                format_args!("query_size: {} frames, but we hold frame {}", q.nr_frames, held - 1),
            );
            self.check_sizes(q);
        }
    }

    // --- private slots: own grants mapped and unmapped
    fn slot_gfn(&self, s: usize) -> u64 {
        self.cfg.ext_private(self.c.id) + EXT_SLOT_OFF + s as u64
    }

    fn op_slot(&mut self) {
        let me = self.c.id;
        let s = self.below(SLOTS as u64) as usize;
        let g = self.slot_gfn(s);
        let a = self.arena(A_STRUCT);
        match self.c.slot_st[s] {
            Slot::Empty | Slot::Unknown => {
                // (reference, flags, expected status)
                let (which, flags, want) = match self.below(4) {
                    0 | 1 => (REF_RW, GNTMAP_HOST_MAP, GNTST_OKAY),
                    2 => (REF_RO, GNTMAP_HOST_MAP | GNTMAP_READONLY, GNTST_OKAY),
                    _ => (REF_RO, GNTMAP_HOST_MAP, GNTST_GENERAL_ERROR),
                };
                let op = GnttabMapGrantRef {
                    host_addr: g * PAGE,
                    flags,
                    ref_: cpu_ref(me, which),
                    dom: 0,
                    status: STATUS_UNWRITTEN,
                    handle: 0x5555_5555,
                    dev_bus_addr: 0,
                };
                put(a, &op, usize::MAX);
                let rc = self.gnttab(GNTTABOP_MAP_GRANT_REF, a, 1);
                let op: GnttabMapGrantRef = get(a);
                self.gntst(op.status);
                let was = self.c.slot_st[s];
                if was == Slot::Unknown {
                    self.c.slot_st[s] =
                        if op.status == GNTST_OKAY { Slot::Mapped { handle: op.handle, which } } else { Slot::Unknown };
                    return;
                }
                self.check(
                    rc == 0 && op.status == want,
                    format_args!(
                        "map own grant {} at slot {g:#x} (flags {flags:#x}): rc {rc} status {}",
                        op.ref_, op.status
                    ),
                );
                if op.status == GNTST_OKAY {
                    self.c.slot_st[s] = Slot::Mapped { handle: op.handle, which };
                    self.check(
                        op.dev_bus_addr & 0xfff == 0,
                        format_args!("map own grant: dev_bus_addr {:#x}", op.dev_bus_addr),
                    );
                }
                self.verify_slot(s);
            }
            Slot::Mapped { handle, which } => {
                match self.below(6) {
                    0..=2 => {
                        // Proper unmap (or unmap_and_replace with no new address).
                        let (rc, st) = if self.chance(70) {
                            put(
                                a,
                                &GnttabUnmapGrantRef {
                                    host_addr: g * PAGE,
                                    dev_bus_addr: 0,
                                    handle,
                                    status: STATUS_UNWRITTEN,
                                    _pad: 0,
                                },
                                usize::MAX,
                            );
                            let rc = self.gnttab(GNTTABOP_UNMAP_GRANT_REF, a, 1);
                            (rc, get::<GnttabUnmapGrantRef>(a).status)
                        } else {
                            put(
                                a,
                                &GnttabUnmapAndReplace {
                                    host_addr: g * PAGE,
                                    new_addr: 0,
                                    handle,
                                    status: STATUS_UNWRITTEN,
                                    _pad: 0,
                                },
                                usize::MAX,
                            );
                            let rc = self.gnttab(GNTTABOP_UNMAP_AND_REPLACE, a, 1);
                            (rc, get::<GnttabUnmapAndReplace>(a).status)
                        };
                        self.gntst(st);
                        self.check(
                            rc == 0 && st == GNTST_OKAY,
                            format_args!("unmap own grant at slot {g:#x} handle {handle:#x}: rc {rc} status {st}"),
                        );
                        self.c.slot_st[s] = if st == GNTST_OKAY { Slot::Empty } else { Slot::Unknown };
                        self.verify_slot(s);
                    }
                    3 => {
                        let bad = self.garbage_handle();
                        put(
                            a,
                            &GnttabUnmapGrantRef {
                                host_addr: g * PAGE,
                                dev_bus_addr: 0,
                                handle: bad,
                                status: STATUS_UNWRITTEN,
                                _pad: 0,
                            },
                            usize::MAX,
                        );
                        let rc = self.gnttab(GNTTABOP_UNMAP_GRANT_REF, a, 1);
                        let st = get::<GnttabUnmapGrantRef>(a).status;
                        self.gntst(st);
                        self.check(
                            rc == 0 && st == GNTST_BAD_HANDLE,
                            format_args!("unmap slot {g:#x} with garbage handle {bad:#x}: rc {rc} status {st}"),
                        );
                        self.verify_slot(s);
                    }
                    4 if !self.cfg.xen_quirks => {
                        // The right handle with the wrong address (a GFN with nothing mapped):
                        // must fail and leave the mapping and its handle alone. (Xen 4.17
                        // answers GNTST_okay, releases the handle and leaves the mapping in
                        // the P2M for good, see the module docs.)
                        let wrong = self.cfg.x0 + EXT_HOLES + self.below(NHOLES);
                        let op = GnttabUnmapGrantRef {
                            host_addr: wrong * PAGE,
                            dev_bus_addr: 0,
                            handle,
                            status: STATUS_UNWRITTEN,
                            _pad: 0,
                        };
                        put(a, &op, usize::MAX);
                        let rc = self.gnttab(GNTTABOP_UNMAP_GRANT_REF, a, 1);
                        let st = get::<GnttabUnmapGrantRef>(a).status;
                        self.gntst(st);
                        self.check(
                            rc == 0 && st != GNTST_OKAY && st != STATUS_UNWRITTEN,
                            format_args!(
                                "unmap of slot {g:#x}'s handle {handle:#x} at empty {wrong:#x}: rc {rc} status {st}"
                            ),
                        );
                        if st == GNTST_OKAY {
                            self.c.slot_st[s] = Slot::Unknown;
                        }
                        self.verify_slot(s);
                    }
                    _ => {
                        let _ = which;
                        self.verify_slot(s);
                    }
                }
            }
        }
    }

    fn verify_slot(&mut self, s: usize) {
        let g = self.slot_gfn(s);
        match self.c.slot_st[s] {
            Slot::Empty => {
                let r = self.probe(g * PAGE);
                self.check(r.is_err(), format_args!("slot {g:#x} after unmap: read {r:x?}"));
            }
            Slot::Mapped { which, .. } => {
                let r = self.probe(g * PAGE + 8);
                let want = marker(self.c.id, which);
                self.check(
                    r == Ok(want),
                    format_args!("slot {g:#x} maps our page {which}: read {r:x?}, want {want:#x}"),
                );
            }
            Slot::Unknown => {
                let _ = self.probe(g * PAGE);
            }
        }
    }

    // --- targets of the hypervisor's own writes, and of the reservation ops

    /// A GFN the hypervisor may be asked to keep and write to on its own (a `vcpu_info`, a
    /// FIFO control block, an event array): a sacrificial page mostly, else a GFN that holds
    /// no page and never will (a hole of the extended region, the GIC distributor, GFN 0,
    /// absurd ones). Never a GFN where a grant frame may be mapped (the hypervisor would write
    /// over its grants and tag).
    fn sac_gfn(&mut self) -> u64 {
        let cfg = self.cfg;
        match self.weighted(&[75, 5, 6, 4, 4, 3, 3]) {
            0 => SAC.gfn(self.below(SAC_PAGES as u64) as usize),
            1 => SAC.gfn(SAC_PAGES),
            2 => cfg.x0 + EXT_HOLES + self.below(NHOLES),
            3 if cfg.gicd.size != 0 => cfg.gicd.base >> 12,
            4 => 0,
            5 => 1 << 52 | self.next() >> 12,
            _ => !0 - self.below(4),
        }
    }

    /// A guest virtual address for a runstate area, which the hypervisor writes through our
    /// stage 1 whenever the vCPU's state changes (and as an IPA when it starts with the MMU
    /// off): in the sacrificial pages (anywhere: it may straddle into the next page, or into
    /// the last one, out of stage 1), or where nothing is mapped.
    fn sac_va(&mut self) -> u64 {
        let cfg = self.cfg;
        match self.weighted(&[70, 6, 8, 6, 5, 5]) {
            0 => {
                let off = if self.chance(70) { self.below(PAGE / 8) * 8 } else { self.below(PAGE) };
                SAC.addr(self.below(SAC_PAGES as u64) as usize) + off
            }
            1 => SAC.addr(SAC_PAGES) + self.below(PAGE),
            2 => (cfg.x0 + EXT_HOLES + self.below(NHOLES)) * PAGE + self.below(PAGE),
            3 => 0,
            4 => self.pick(&[1 << 48, 0xffff_0000_0000_0000, !0 - 47, 1 << 63]),
            _ => self.arena(A_GUARD_STRUCT) + (self.below(PAGE) & !7),
        }
    }

    /// GFNs the reservation ops give back and populate: sacrificial pages mostly, the shared
    /// victim pages and the pools (RAM, grant frames, shared_info, grant and foreign
    /// mappings), places with no page. Never other RAM of ours (code, data, stacks), never a
    /// private GFN.
    fn res_gfn(&mut self) -> u64 {
        let cfg = self.cfg;
        match self.weighted(&[50, 15, 8, 6, 5, 4, 4, 3, 3, 2]) {
            0 => SAC.gfn(self.below(SAC_PAGES as u64) as usize),
            1 => cfg.victim_shared(self.next()),
            2 => cfg.g0 + self.below(GRANT_POOL),
            3 => cfg.x0 + self.below(EXT_POOL),
            4 => cfg.x0 + EXT_HOLES + self.below(NHOLES),
            5 => self.beyond_ipa(),
            6 if cfg.gicd.size != 0 => cfg.gicd.base >> 12,
            7 => self.odd_gfn().unwrap_or(0),
            8 => 0,
            _ => {
                let g = self.next() >> self.below(64);
                cfg.safe(g)
            }
        }
    }

    /// `gfn` as the target of a P2M change in domain `domid`: for the granter, one of the
    /// GFNs where it has nothing (our GFNs are in its RAM: dom0 may change any domain's P2M,
    /// and would take the granter's code or stack away).
    fn for_dom(&self, domid: DomId, gfn: u64) -> u64 {
        if self.cfg.granter != 0 && domid == self.cfg.granter { GRANTER_HOLES + gfn % NGRANTER_HOLES } else { gfn }
    }

    // --- the virtual GIC and the timers (see granite_guests::gicfuzz)

    fn op_gic(&mut self) {
        let cfg = self.cfg;
        let g = gic::get();
        if self.chance(4) {
            // Read-only registers never change, whatever the others write.
            let id = (read32(g.d(gicd::TYPER)), read32(g.d(gicd::IIDR)));
            self.c.mmio += 2;
            self.check(
                id == cfg.gicd_id,
                format_args!("GICD_TYPER/IIDR read {:#x?}, {:#x?} at the start", id, cfg.gicd_id),
            );
            if g.is_v3() && g.rd() != 0 {
                let t = gic::read64(g.rd() + gicr::TYPER);
                self.c.mmio += 1;
                let want = gic::mpidr_to_aff32(smp::mpidr());
                self.check(
                    (t >> 32) as u32 == want,
                    format_args!("GICR_TYPER of our redistributor reads {t:#x}: affinity, want {want:#x}"),
                );
            }
            return;
        }
        let mut st = self.c.rng;
        let a = gicfuzz::mmio(g, &mut || splitmix(&mut st));
        self.c.rng = st;
        self.c.mmio += 1;
        if a.result.is_err() {
            self.c.mmio_aborts += 1;
        }
        self.check(a.refused_properly(), format_args!("vGIC: {a}: refused, but not with a data abort at that address"));
    }

    fn op_sgi(&mut self) {
        let cfg = self.cfg;
        let g = gic::get();
        let mut st = self.c.rng;
        let a = gicfuzz::sgi(g, &mut || splitmix(&mut st), &cfg.mpidrs[..cfg.ncpus]);
        self.c.rng = st;
        self.c.sgis += 1;
        if let Some(a) = a {
            self.c.mmio += 1;
            if a.result.is_err() {
                self.c.mmio_aborts += 1;
            }
            self.check(a.refused_properly(), format_args!("GICD_SGIR: {a}: refused, but not with a data abort there"));
        }
    }

    fn op_timer(&mut self) {
        let mut st = self.c.rng;
        let mut f = Failures::new();
        let n = gicfuzz::timer(&mut || splitmix(&mut st), !self.cfg.xen_quirks, &mut |ok, what| f.that(ok, what));
        self.c.rng = st;
        self.c.timer_regs += n;
        if f.checks > 0 {
            self.failures("timer", &f);
        }
    }

    // --- event channels

    fn evtchn(&mut self, cmd: u32, arg: u64) -> i64 {
        // (The sub-op is an int: garbage in the upper half of x0 now and then.)
        let hi = if self.chance(3) { self.next() << 32 } else { 0 };
        let (a2, a3, a4) = (self.next(), self.next(), self.next());
        self.hc(hc::EVENT_CHANNEL_OP, cmd as u64 | hi, arg, a2, a3, a4)
    }

    /// An operation that changes `port`'s state or binding (see EV_TOUCH).
    fn ev_change(&mut self, port: u32, cmd: u32, arg: u64) -> i64 {
        let t = &EV_TOUCH[port as usize % EV_TOUCH.len()];
        t.fetch_add(1, SeqCst);
        let rc = self.evtchn(cmd, arg);
        EV_DONE.fetch_add(1, SeqCst);
        t.fetch_add(1, SeqCst);
        rc
    }

    fn ev_push(&mut self, port: u32) {
        let i = self.below(EV_PORTS.len() as u64) as usize;
        EV_PORTS[i].store(port.wrapping_add(1), Relaxed);
    }

    /// Ports: recently handed out ones mostly, small ones, the limits, garbage.
    fn ev_port(&mut self) -> u32 {
        match self.weighted(&[60, 12, 8, 8, 12]) {
            0 => {
                let v = EV_PORTS[self.below(EV_PORTS.len() as u64) as usize].load(Relaxed);
                if v != 0 { v - 1 } else { self.below(64) as u32 }
            }
            1 => self.below(64) as u32,
            2 => self.pick(&[0, 1023, 1024, 4095, 4096, (1 << 17) - 1, 1 << 17]),
            3 => self.below(1 << 17) as u32,
            _ => self.next() as u32,
        }
    }

    fn granter_port(&mut self) -> u32 {
        let v = EV_GRANTER_PORTS[self.below(EV_GRANTER_PORTS.len() as u64) as usize].load(Relaxed);
        if v != 0 { v - 1 } else { self.below(16) as u32 }
    }

    fn ev_vcpu(&mut self) -> u32 {
        let n = self.cfg.ncpus as u64;
        match self.weighted(&[30, 40, 10, 20]) {
            0 => self.c.id as u32,
            1 => self.below(n) as u32,
            2 => (n + self.below(3)) as u32,
            _ => self.pick(&[127, 128, 0x8000_0000, !0]),
        }
    }

    fn ev_dom(&mut self) -> DomId {
        match self.weighted(&[45, 25, 10, 20]) {
            0 => DOMID_SELF,
            1 => 0,
            2 if self.cfg.granter != 0 => self.cfg.granter,
            _ => self.domid(),
        }
    }

    fn ev_status(&mut self, port: u32) -> (i64, EvtchnStatus) {
        let a = self.arena(A_STRUCT) + 0x100;
        let s = EvtchnStatus { dom: DOMID_SELF, port, status: 0x55, vcpu: 0x55, ..Default::default() };
        put(a, &s, usize::MAX);
        let rc = self.evtchn(xen_abi::evtchn::EVTCHNOP_STATUS, a);
        (rc, get(a))
    }

    fn op_evtchn(&mut self) {
        use xen_abi::evtchn::*;
        let cfg = self.cfg;
        match self.weighted(&[10, 7, 4, 4, 2, 10, 8, 8, 4, 5, 3, 1, 3, 3, 3, 2, 14]) {
            0 => {
                // alloc_unbound in our table (for us, the granter, anyone), or in the
                // granter's for us (dom0 controls it).
                let in_granter = cfg.granter != 0 && self.chance(20);
                let (dom, remote_dom) = if in_granter {
                    (cfg.granter, self.pick(&[0, DOMID_SELF]))
                } else {
                    (self.ev_dom(), self.ev_dom())
                };
                let p = self.ptr(Dir::InOut, A_STRUCT, 8, false);
                p.store(&EvtchnAllocUnbound { dom, remote_dom, port: 0x5555_5555 });
                let rc = self.evtchn(EVTCHNOP_ALLOC_UNBOUND, p.addr());
                if rc == 0 && p.ok() {
                    let port = get_unaligned::<EvtchnAllocUnbound>(p.addr()).port;
                    if in_granter {
                        let i = self.below(EV_GRANTER_PORTS.len() as u64) as usize;
                        EV_GRANTER_PORTS[i].store(port.wrapping_add(1), Relaxed);
                    } else if matches!(dom, 0 | DOMID_SELF) {
                        self.ev_push(port);
                    }
                }
            }
            1 => {
                // bind_interdomain: to an unbound port of ours (a loopback), to one we made in
                // the granter's table, or anything.
                let (remote_dom, remote_port) = match self.weighted(&[50, 25, 25]) {
                    0 => (self.pick(&[DOMID_SELF, 0]), self.ev_port()),
                    1 if cfg.granter != 0 => (cfg.granter, self.granter_port()),
                    _ => (self.domid(), self.ev_port()),
                };
                let p = self.ptr(Dir::InOut, A_STRUCT, 12, false);
                p.store(&EvtchnBindInterdomain { remote_dom, _pad: 0, remote_port, local_port: 0x5555_5555 });
                let rc = if matches!(remote_dom, 0 | DOMID_SELF) {
                    self.ev_change(remote_port, EVTCHNOP_BIND_INTERDOMAIN, p.addr())
                } else {
                    self.evtchn(EVTCHNOP_BIND_INTERDOMAIN, p.addr())
                };
                if rc == 0 && p.ok() {
                    let port = get_unaligned::<EvtchnBindInterdomain>(p.addr()).local_port;
                    self.ev_push(port);
                }
            }
            2 => {
                let virq = match self.weighted(&[70, 15, 15]) {
                    0 => self.below(NR_VIRQS as u64) as u32,
                    1 => NR_VIRQS + self.below(40) as u32,
                    _ => self.next() as u32,
                };
                let vcpu = self.ev_vcpu();
                let p = self.ptr(Dir::InOut, A_STRUCT, 12, false);
                p.store(&EvtchnBindVirq { virq, vcpu, port: 0x5555_5555 });
                if self.evtchn(EVTCHNOP_BIND_VIRQ, p.addr()) == 0 && p.ok() {
                    let port = get_unaligned::<EvtchnBindVirq>(p.addr()).port;
                    self.ev_push(port);
                }
            }
            3 => {
                let vcpu = self.ev_vcpu();
                let p = self.ptr(Dir::InOut, A_STRUCT, 8, false);
                p.store(&EvtchnBindIpi { vcpu, port: 0x5555_5555 });
                if self.evtchn(EVTCHNOP_BIND_IPI, p.addr()) == 0 && p.ok() {
                    let port = get_unaligned::<EvtchnBindIpi>(p.addr()).port;
                    self.ev_push(port);
                }
            }
            4 => {
                let pirq = if self.chance(50) { self.below(1024) as u32 } else { self.next() as u32 };
                let flags = if self.chance(70) { self.below(2) as u32 } else { self.next() as u32 };
                let p = self.ptr(Dir::InOut, A_STRUCT, 12, false);
                p.store(&EvtchnBindPirq { pirq, flags, port: 0x5555_5555 });
                if self.evtchn(EVTCHNOP_BIND_PIRQ, p.addr()) == 0 && p.ok() {
                    let port = get_unaligned::<EvtchnBindPirq>(p.addr()).port;
                    self.ev_push(port);
                }
            }
            5 | 6 | 9 => {
                let port = self.ev_port();
                let p = self.ptr(Dir::InOut, A_STRUCT, 4, false);
                p.store(&EvtchnPort { port });
                match self.weighted(&[10, 8, 5]) {
                    0 => self.ev_change(port, EVTCHNOP_CLOSE, p.addr()),
                    1 => self.evtchn(EVTCHNOP_SEND, p.addr()),
                    _ => self.evtchn(EVTCHNOP_UNMASK, p.addr()),
                };
            }
            7 => {
                let (dom, port) = if cfg.granter != 0 && self.chance(15) {
                    (cfg.granter, self.granter_port())
                } else {
                    (self.ev_dom(), self.ev_port())
                };
                let p = self.ptr(Dir::InOut, A_STRUCT, 24, false);
                p.store(&EvtchnStatus { dom, port, status: 0x55, vcpu: 0x55, ..Default::default() });
                let rc = self.evtchn(EVTCHNOP_STATUS, p.addr());
                if rc == 0 && p.ok() && matches!(dom, 0 | DOMID_SELF) {
                    let s: EvtchnStatus = get_unaligned(p.addr());
                    let n = cfg.nvcpus;
                    self.check(
                        s.status <= EVTCHNSTAT_IPI && (s.vcpu as usize) < n,
                        format_args!("evtchn status of port {port}: {s:?} (state 0..=5, vCPU below {n})"),
                    );
                }
            }
            8 => {
                let (port, vcpu) = (self.ev_port(), self.ev_vcpu());
                let p = self.ptr(Dir::InOut, A_STRUCT, 8, false);
                p.store(&EvtchnBindVcpu { port, vcpu });
                self.ev_change(port, EVTCHNOP_BIND_VCPU, p.addr());
            }
            10 => {
                let port = self.ev_port();
                let priority = if self.chance(80) { self.below(17) as u32 } else { self.next() as u32 };
                let p = self.ptr(Dir::InOut, A_STRUCT, 8, false);
                p.store(&EvtchnSetPriority { port, priority });
                self.evtchn(EVTCHNOP_SET_PRIORITY, p.addr());
            }
            11 => {
                // Every port of ours closed, back to the 2-level ABI (or refused for others).
                let dom = if self.chance(60) { DOMID_SELF } else { self.ev_dom() };
                let p = self.ptr(Dir::InOut, A_STRUCT, 2, false);
                p.store(&EvtchnReset { dom });
                let mine = matches!(dom, 0 | DOMID_SELF);
                if mine {
                    EV_RESETS.fetch_add(1, SeqCst);
                }
                self.evtchn(EVTCHNOP_RESET, p.addr());
                if mine {
                    EV_RESETS.fetch_add(1, SeqCst);
                }
            }
            12 => {
                // FIFO: a control block (the first one switches the domain to FIFO).
                let control_gfn = self.sac_gfn();
                let offset = match self.weighted(&[70, 10, 10, 10]) {
                    0 => self.below((PAGE - 72) / 8 + 1) as u32 * 8,
                    1 => PAGE as u32 - 72 + self.below(72) as u32,
                    2 => self.below(PAGE) as u32,
                    _ => self.next() as u32,
                };
                let vcpu = self.ev_vcpu();
                let link_bits = self.next() as u8;
                let p = self.ptr(Dir::InOut, A_STRUCT, 24, false);
                p.store(&EvtchnInitControl { control_gfn, offset, vcpu, link_bits, _pad: [0; 7] });
                self.evtchn(EVTCHNOP_INIT_CONTROL, p.addr());
            }
            13 => {
                let array_gfn = self.sac_gfn();
                let p = self.ptr(Dir::InOut, A_STRUCT, 8, false);
                p.store(&EvtchnExpandArray { array_gfn });
                self.evtchn(EVTCHNOP_EXPAND_ARRAY, p.addr());
            }
            14 => {
                // Sub-ops that do not exist (14, reset_cont, is Xen's own continuation).
                let cmd = if self.chance(70) { 15 + self.below(240) as u32 } else { (self.next() as u32).max(15) };
                let p = self.ptr(Dir::InOut, A_STRUCT, 24, false);
                let rc = self.evtchn(cmd, p.addr());
                self.check(rc == -ENOSYS, format_args!("event_channel_op({cmd:#x}) = {rc}, want -ENOSYS"));
            }
            15 => {
                // Any sub-op with an argument nothing can be read through.
                let cmd = self.below(15) as u32;
                let a = match self.below(4) {
                    0 => self.arena(A_GUARD_STRUCT) + (self.below(PAGE) & !7),
                    1 => (cfg.x0 + EXT_HOLES + self.below(NHOLES)) * PAGE,
                    2 => self.beyond_ipa().wrapping_mul(PAGE),
                    _ => 0,
                };
                let rc = self.evtchn(cmd, a);
                self.check(
                    rc == -EFAULT,
                    format_args!("event_channel_op({cmd}) with argument at {a:#x} = {rc}, want -EFAULT"),
                );
            }
            _ => self.ev_private(),
        }
    }

    /// A checked sequence on ports of our own: a new unbound port, maybe a loopback
    /// interdomain binding to it (status of both ends, sends, bind_vcpu, closing one end
    /// makes the other unbound again), then closed. Void (not reported) when another vCPU may
    /// have changed one of the ports meanwhile (EV_TOUCH, EV_DONE, EV_RESETS). Our own changes
    /// are marked too (a port of ours a reset closed may be someone else's by then).
    fn ev_private(&mut self) {
        use xen_abi::evtchn::*;
        let resets = EV_RESETS.load(SeqCst);
        let done0 = EV_DONE.load(SeqCst);
        if resets & 1 != 0 {
            return;
        }
        let touch = |p: u32| EV_TOUCH[p as usize % EV_TOUCH.len()].load(SeqCst);
        let me = self.c.id as u32;
        let a = self.arena(A_STRUCT);
        let remote_dom = self.pick(&[DOMID_SELF, 0]);
        put(a, &EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom, port: 0x5555_5555 }, usize::MAX);
        if self.evtchn(EVTCHNOP_ALLOC_UNBOUND, a) != 0 {
            return;
        }
        let p1 = get::<EvtchnAllocUnbound>(a).port;
        let mut t1 = touch(p1);
        let mut void = t1 & 1 != 0 || EV_DONE.load(SeqCst) != done0;
        let mut f = Failures::new();
        let (rc, s) = self.ev_status(p1);
        f.that(
            rc == 0 && s.status == EVTCHNSTAT_UNBOUND && s.remote_dom() == 0 && s.vcpu == 0,
            format_args!("new unbound port {p1} (remote {remote_dom:#x}): status rc {rc} {s:?}"),
        );
        let mut p2 = None;
        if self.chance(60) {
            let done1 = EV_DONE.load(SeqCst);
            let remote_dom = self.pick(&[DOMID_SELF, 0]);
            put(
                a,
                &EvtchnBindInterdomain { remote_dom, _pad: 0, remote_port: p1, local_port: 0x5555_5555 },
                usize::MAX,
            );
            let rc = self.ev_change(p1, EVTCHNOP_BIND_INTERDOMAIN, a);
            t1 += 2;
            f.that(rc == 0, format_args!("bind_interdomain to our unbound port {p1}: {rc}"));
            if rc == 0 {
                let q = get::<EvtchnBindInterdomain>(a).local_port;
                let mut tq = touch(q);
                // (Our own ev_change counted once.)
                void |= tq & 1 != 0 || EV_DONE.load(SeqCst) != done1 + 1;
                let (r1, s1) = self.ev_status(p1);
                let (r2, s2) = self.ev_status(q);
                f.that(
                    r1 == 0 && s1.status == EVTCHNSTAT_INTERDOMAIN && s1.remote_dom() == 0 && s1.u[1] == q,
                    format_args!("port {p1} bound to our {q}: status rc {r1} {s1:?}"),
                );
                f.that(
                    r2 == 0 && s2.status == EVTCHNSTAT_INTERDOMAIN && s2.remote_dom() == 0 && s2.u[1] == p1,
                    format_args!("port {q} bound to our {p1}: status rc {r2} {s2:?}"),
                );
                for port in [q, p1] {
                    put(a, &EvtchnPort { port }, usize::MAX);
                    let rc = self.evtchn(EVTCHNOP_SEND, a);
                    f.that(rc == 0, format_args!("send on our interdomain port {port}: {rc}"));
                }
                put(a, &EvtchnBindVcpu { port: q, vcpu: me }, usize::MAX);
                let rc = self.ev_change(q, EVTCHNOP_BIND_VCPU, a);
                tq += 2;
                let (r3, s3) = self.ev_status(q);
                f.that(
                    rc == 0 && r3 == 0 && s3.vcpu == me,
                    format_args!("bind_vcpu({q}, {me}): {rc}, then status rc {r3} {s3:?}"),
                );
                put(a, &EvtchnPort { port: q }, usize::MAX);
                let rc = self.ev_change(q, EVTCHNOP_CLOSE, a);
                tq += 2;
                p2 = Some((q, tq));
                let (r4, s4) = self.ev_status(p1);
                f.that(
                    rc == 0 && r4 == 0 && s4.status == EVTCHNSTAT_UNBOUND && s4.remote_dom() == 0,
                    format_args!("close({q}): {rc}, then its peer {p1}: status rc {r4} {s4:?} (unbound, remote d0)"),
                );
            }
        }
        put(a, &EvtchnPort { port: p1 }, usize::MAX);
        let rc = self.ev_change(p1, EVTCHNOP_CLOSE, a);
        t1 += 2;
        f.that(rc == 0, format_args!("close of our port {p1}: {rc}"));
        void |= EV_RESETS.load(SeqCst) != resets || touch(p1) != t1 || p2.is_some_and(|(q, tq)| touch(q) != tq);
        if !void {
            self.failures("event channels (own ports)", &f);
        }
    }

    // --- vcpu_op and vm_assist

    fn op_vcpu(&mut self) {
        use xen_abi::vcpuop::*;
        let cfg = self.cfg;
        if self.chance(15) {
            let cmd = self.pick(&[0u64, 1, 0, 1, 2, 0xffff_ffff, 1 << 32]);
            let r = self.next();
            let ty = self.pick(&[5u64, 5, 0, 1, 4, 6, 31, 32, 63, 64, 1 << 32 | 5, r]);
            let (a2, a3, a4) = (self.next(), self.next(), self.next());
            let rc = self.hc(hc::VM_ASSIST, cmd, ty, a2, a3, a4);
            let (cmd, ty) = (cmd as u32, ty as u32);
            if ty == 5 && cmd <= 1 {
                self.check(rc == 0, format_args!("vm_assist({cmd}, runstate_update_flag) = {rc}"));
            } else if ty != 5 {
                self.check(rc == -EINVAL, format_args!("vm_assist({cmd}, {ty}) = {rc}, want -EINVAL"));
            }
            return;
        }
        let n = cfg.nvcpus as u64;
        let vcpu = match self.weighted(&[45, 25, 10, 10, 10]) {
            0 => self.c.id as u64,
            1 => self.below(n),
            2 => n + self.below(3),
            3 => self.pick(&[127, 128, 0xffff_ffff, 1 << 32]),
            _ => self.next(),
        };
        let cmd = match self.weighted(&[30, 30, 25, 15]) {
            0 => VCPUOP_REGISTER_VCPU_INFO,
            1 => VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA,
            2 => self.pick(&[0, 1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13]),
            _ => 14 + self.below(1000) as u32,
        };
        let p = self.ptr(Dir::InOut, A_STRUCT, 16, false);
        match cmd {
            VCPUOP_REGISTER_VCPU_INFO => {
                let mfn = self.sac_gfn();
                let offset = match self.weighted(&[60, 15, 10, 15]) {
                    0 => self.below((PAGE - 48) / 8 + 1) as u32 * 8,
                    1 => self.below(PAGE / 8) as u32 * 8,
                    2 => self.below(PAGE) as u32,
                    _ => self.next() as u32,
                };
                let rsvd = if self.chance(80) { 0 } else { self.next() as u32 };
                p.store(&VcpuRegisterVcpuInfo { mfn, offset, rsvd });
            }
            VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => {
                let addr = self.sac_va();
                p.store(&VcpuRegisterRunstateMemoryArea { addr });
            }
            _ => {}
        }
        let (a3, a4) = (self.next(), self.next());
        let rc = self.hc(hc::VCPU_OP, cmd as u64, vcpu, p.addr(), a3, a4);
        if (vcpu as u32 as u64) < n && cmd != VCPUOP_REGISTER_VCPU_INFO && cmd != VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA {
            self.check(rc == -EINVAL, format_args!("vcpu_op({cmd}, vCPU {vcpu:#x}) = {rc}, want -EINVAL"));
        }
    }

    // --- memory reservation

    fn op_reservation(&mut self) {
        match self.weighted(&[24, 24, 8, 14, 6, 12, 4]) {
            0 => self.reservation(XENMEM_DECREASE_RESERVATION),
            1 => self.reservation(XENMEM_POPULATE_PHYSMAP),
            2 => self.reservation(XENMEM_INCREASE_RESERVATION),
            3 => self.reservation_query(),
            4 => {
                let rc = self.memory_op(XENMEM_MAXIMUM_RAM_PAGE, 0);
                self.check(rc > 0, format_args!("maximum_ram_page = {rc}"));
            }
            5 => self.reservation_private(),
            _ => {
                // Start extents beyond the end, and structures nothing can be read through.
                let op =
                    self.pick(&[XENMEM_DECREASE_RESERVATION, XENMEM_POPULATE_PHYSMAP, XENMEM_INCREASE_RESERVATION]);
                let start = 1 + self.below(1 << 20);
                let p = self.unusable_ptr(A_GUARD_STRUCT);
                let p = match p {
                    Ptr::Part(..) => Ptr::Bad(self.arena(A_GUARD_STRUCT)),
                    p => p,
                };
                let cmd = op | start << MEMOP_EXTENT_SHIFT;
                let rc = self.memory_op(cmd, p.addr());
                self.check(
                    rc == start as i64,
                    format_args!("memory_op({op} from extent {start}) with structure at {:#x} = {rc}", p.addr()),
                );
            }
        }
    }

    /// increase_reservation, decrease_reservation or populate_physmap with extents at the
    /// GFNs of `res_gfn` (orders > 0 only over sacrificial or victim pages, or from a GFN
    /// with no page), in our own domain, the granter's (GFNs where it has nothing) or none.
    fn reservation(&mut self, op: u64) {
        let cfg = self.cfg;
        let granter = cfg.granter != 0 && self.chance(8);
        let domid = if granter {
            cfg.granter
        } else {
            match self.weighted(&[75, 12, 13]) {
                0 => DOMID_SELF,
                1 => 0,
                _ => self.pick(&[DOMID_IO, DOMID_XEN, DOMID_INVALID, 7, 0x7ff0]),
            }
        };
        let kind = self.weighted(&[80, 10, 5, 5]);
        let order: u32 = match kind {
            0 => 0,
            1 if !granter => 1 + self.below(5) as u32,
            2 if !granter => 1 + self.below(4) as u32,
            3 => 6 + self.below(20) as u32,
            _ => self.below(3) as u32,
        };
        let n = match self.weighted(&[60, 20, 8, 4, 4, 4]) {
            0 => 1,
            1 => 2 + self.below(7),
            2 => 64 + self.below(140),
            3 => 0,
            4 => self.pick(&[1 << 26, 1 << 31, !0, 1 << 32 | 1]),
            _ => BATCH_MAX as u64 + 1 + self.below(64),
        };
        // The list: a short pattern, repeated over as much of the array as the hypervisor may
        // read (our arena is BATCH_MAX entries, then the guard page).
        let list = self.arena(A_GPFNS);
        let filled = n.min(BATCH_MAX as u64) as usize;
        let pattern = filled.clamp(1, 16);
        let span = 1u64 << order.min(12);
        for k in 0..pattern {
            let g = if granter {
                GRANTER_HOLES + self.below((NGRANTER_HOLES / span).max(1)) * span
            } else {
                match kind {
                    0 => self.res_gfn(),
                    1 => SAC.gfn(0) + self.below(SAC_PAGES as u64 / span) * span,
                    2 => VICTIM.gfn(0) + self.below(VICTIM_SHARED as u64 / span) * span,
                    _ => match self.below(4) {
                        0 => cfg.x0 + EXT_HOLES,
                        1 => self.beyond_ipa(),
                        2 if cfg.gicd.size != 0 => cfg.gicd.base >> 12,
                        _ => 0,
                    },
                }
            };
            put64(list + 8 * k as u64, g);
        }
        for k in pattern..filled {
            put64(list + 8 * k as u64, get(list + 8 * (k % pattern) as u64));
        }
        let start = if self.chance(92) { Ptr::Ok(list) } else { self.unusable_ptr(A_GUARD_GPFNS) };
        let start = match start {
            // (Its 8 readable bytes are whatever was there: not a GFN we chose.)
            Ptr::Part(..) => Ptr::Bad(self.arena(A_GUARD_GPFNS)),
            p => p,
        };
        let mem_flags = if self.chance(85) { 0 } else { self.next() as u32 };
        let r = XenMemoryReservation {
            extent_start: start.addr(),
            nr_extents: n,
            extent_order: order,
            mem_flags,
            domid,
            _pad: [0; 6],
        };
        let p = if self.chance(95) {
            Ptr::Ok(self.arena(A_STRUCT) + self.below(64) * 8)
        } else {
            self.unusable_ptr(A_GUARD_STRUCT)
        };
        let p = match p {
            Ptr::Part(..) => Ptr::Bad(self.arena(A_GUARD_STRUCT)),
            p => p,
        };
        p.store(&r);
        let rc = self.memory_op(op, p.addr());
        self.check(rc >= 0, format_args!("memory_op({op}) of {n} extents of order {order} = {rc}: negative"));
        if p.ok() && n < 1 << 26 {
            self.check(rc as u64 <= n, format_args!("memory_op({op}) of {n} extents = {rc}: more than asked"));
        }
    }

    /// current_reservation, maximum_reservation, maximum_gpfn.
    fn reservation_query(&mut self) {
        let cfg = self.cfg;
        let dom = match self.weighted(&[50, 20, 10, 20]) {
            0 => DOMID_SELF,
            1 => 0,
            2 if cfg.granter != 0 => cfg.granter,
            _ => self.domid(),
        };
        let cmd = self.pick(&[XENMEM_CURRENT_RESERVATION, XENMEM_MAXIMUM_RESERVATION, XENMEM_MAXIMUM_GPFN]);
        let p = self.ptr(Dir::Read, A_STRUCT, 2, false);
        p.store(&dom);
        let rc = self.memory_op(cmd, p.addr());
        if p.ok() && matches!(dom, 0 | DOMID_SELF) {
            self.check(rc > 0, format_args!("memory_op({cmd}) of ourselves = {rc}"));
            if cmd == XENMEM_CURRENT_RESERVATION && rc > 0 {
                let a = self.arena(A_STRUCT);
                put(a, &dom, usize::MAX);
                let max = self.memory_op(XENMEM_MAXIMUM_RESERVATION, a);
                self.check(max >= rc, format_args!("maximum_reservation {max} below current_reservation {rc}"));
            }
        }
    }

    /// decrease_reservation or populate_physmap of one of our private GFNs, against the
    /// model: we are direct-mapped, so a decrease unmaps what is ours there (RAM, a grant
    /// frame, shared_info) and keeps the page; a populate maps the page whose address is the
    /// GFN back, which only RAM of ours has.
    fn reservation_private(&mut self) {
        if self.c.npriv == 0 {
            return;
        }
        let j = self.below(self.c.npriv as u64) as usize;
        let (g, st) = (self.c.priv_gfn[j], self.c.priv_st[j]);
        let ram = g >= VICTIM.gfn(0) && g < VICTIM.gfn(0) + (VICTIM_SHARED + VICTIM_PRIVATE * MAX_CPUS) as u64;
        let list = self.arena(A_GPFNS);
        put64(list, g);
        let decrease = self.chance(55);
        let r = XenMemoryReservation {
            extent_start: list,
            nr_extents: 1,
            extent_order: 0,
            mem_flags: 0,
            domid: if self.chance(80) { DOMID_SELF } else { 0 },
            _pad: [0; 6],
        };
        let a = self.arena(A_STRUCT) + self.below(64) * 8;
        put(a, &r, usize::MAX);
        let op = if decrease { XENMEM_DECREASE_RESERVATION } else { XENMEM_POPULATE_PHYSMAP };
        let rc = self.memory_op(op, a);
        if decrease {
            match st {
                PState::Unknown => {}
                PState::Empty => {
                    self.check(rc == 0, format_args!("decrease_reservation of our empty GFN {g:#x} = {rc}, want 0"));
                }
                _ => {
                    self.check(rc == 1, format_args!("decrease_reservation of our GFN {g:#x} ({st:?}) = {rc}, want 1"));
                }
            }
            self.hist(Hk::Decrease, g, 0, 0, if rc == 1 { 0 } else { -1 });
            self.c.priv_st[j] = if rc == 1 || st == PState::Empty { PState::Empty } else { PState::Unknown };
        } else {
            if !ram {
                self.check(rc == 0, format_args!("populate_physmap of our GFN {g:#x} (no RAM there) = {rc}, want 0"));
            } else if st == PState::Empty {
                self.check(rc == 1, format_args!("populate_physmap of our emptied RAM GFN {g:#x} = {rc}, want 1"));
            }
            self.hist(Hk::Populate, g, 0, 0, if rc == 1 { 0 } else { -1 });
            if rc == 1 {
                self.c.priv_st[j] = PState::Ram;
            }
        }
        self.verify_private(j);
    }

    // --- hvm_op, physdev_op, console_io read

    fn op_hvm(&mut self) {
        use xen_abi::hvm::*;
        let cfg = self.cfg;
        match self.weighted(&[40, 20, 12, 18, 10]) {
            k @ 0..=1 => {
                let set = k == 1;
                let domid = match self.weighted(&[40, 15, 25, 20]) {
                    0 => DOMID_SELF,
                    1 => 0,
                    2 if cfg.granter != 0 => cfg.granter,
                    _ => self.domid(),
                };
                let mut index = match self.weighted(&[60, 15, 10, 15]) {
                    0 => self.below(HVM_NR_PARAMS as u64) as u32,
                    1 => HVM_PARAM_CALLBACK_IRQ,
                    2 => HVM_NR_PARAMS + self.below(4) as u32,
                    _ => self.next() as u32,
                };
                if set && index == HVM_PARAM_CALLBACK_IRQ && matches!(domid, 0 | DOMID_SELF) {
                    // (Our own event-channel upcall stays where it is.)
                    index = HVM_PARAM_STORE_PFN;
                }
                let value = if self.chance(50) { self.below(1 << 20) } else { self.next() };
                let p = self.ptr(Dir::InOut, A_STRUCT, 16, false);
                p.store(&XenHvmParam { domid, _pad: 0, index, value });
                let cmd = if set { HVMOP_SET_PARAM } else { HVMOP_GET_PARAM };
                let (a2, a3, a4) = (self.next(), self.next(), self.next());
                let rc = self.hc(hc::HVM_OP, cmd, p.addr(), a2, a3, a4);
                if !set && rc == 0 && p.ok() && matches!(domid, 0 | DOMID_SELF) && index == HVM_PARAM_CALLBACK_IRQ {
                    let v = get_unaligned::<XenHvmParam>(p.addr()).value;
                    self.check(
                        v == cfg.callback,
                        format_args!("HVM_PARAM_CALLBACK_IRQ reads {v:#x}, {:#x} at the start", cfg.callback),
                    );
                }
            }
            2 => {
                let cmd = if self.chance(70) { 2 + self.below(62) } else { self.next() | 2 };
                let p = self.ptr(Dir::InOut, A_STRUCT, 64, false);
                let (a2, a3, a4) = (self.next(), self.next(), self.next());
                let rc = self.hc(hc::HVM_OP, cmd, p.addr(), a2, a3, a4);
                if !cfg.xen_quirks {
                    self.check(rc == -ENOSYS, format_args!("hvm_op({cmd:#x}) = {rc}, want -ENOSYS"));
                }
            }
            3 => {
                let cmd = if self.chance(70) { self.below(40) } else { self.next() };
                let p = self.ptr(Dir::InOut, A_STRUCT, 64, false);
                let (a2, a3, a4) = (self.next(), self.next(), self.next());
                let rc = self.hc(hc::PHYSDEV_OP, cmd, p.addr(), a2, a3, a4);
                if !cfg.xen_quirks {
                    self.check(rc == -ENOSYS, format_args!("physdev_op({cmd:#x}) = {rc}, want -ENOSYS"));
                }
            }
            _ => {
                // console_io read: whatever input there is (none, normally), into our buffer
                // or an unusable one.
                let count = self.pick(&[0, 1, 16, 64, 4096, 0x7fff_ffff, !0]);
                let buf = if self.chance(80) { self.arena(A_OUT) } else { self.unusable_ptr(A_GUARD_OUT).addr() };
                let rc = self.hc(hc::CONSOLE_IO, xen_abi::console::CONSOLEIO_READ, count, buf, 0, 0);
                self.check(
                    rc >= 0 || rc == -EFAULT || rc == -E2BIG,
                    format_args!("console_io read of {count:#x} bytes = {rc}"),
                );
            }
        }
    }

    // --- PSCI

    fn op_psci(&mut self) {
        use xen_abi::psci::*;
        /// PSCI's INVALID_ADDRESS.
        const PSCI_INVALID_ADDRESS: i64 = -9;
        let cfg = self.cfg;
        let n = cfg.ncpus as u64;
        match self.weighted(&[8, 14, 20, 8, 8, 12, 10, 20]) {
            0 => {
                let rc = self.psci(PSCI_VERSION, 0, 0, 0);
                self.check(rc == PSCI_VERSION_1_1 as i64, format_args!("PSCI_VERSION = {rc:#x}, want 1.1"));
            }
            1 => {
                const KNOWN: [u32; 8] = [
                    PSCI_VERSION,
                    PSCI_CPU_OFF,
                    PSCI_CPU_ON_64,
                    PSCI_CPU_ON_32,
                    PSCI_AFFINITY_INFO_64,
                    PSCI_SYSTEM_OFF,
                    PSCI_FEATURES,
                    PSCI_MIGRATE_INFO_TYPE,
                ];
                let (fid, known) =
                    if self.chance(50) { (self.pick(&KNOWN), true) } else { (self.next() as u32, false) };
                let rc = self.psci(PSCI_FEATURES, fid as u64, self.c.rng, 0);
                if known {
                    self.check(rc == 0, format_args!("PSCI_FEATURES({fid:#x}) = {rc}, want 0"));
                } else {
                    self.check(rc == 0 || rc == PSCI_NOT_SUPPORTED, format_args!("PSCI_FEATURES({fid:#x}) = {rc}"));
                }
            }
            2 => {
                // Every level up to 3 answers for the group of vCPUs whose MPIDRs match the
                // target above that level: ON if one is on (we are). A target no vCPU matches is
                // INVALID_PARAMETERS as PSCI says; Xen 4.17 answers OFF (quirks=xen).
                let target = match self.weighted(&[30, 50, 20]) {
                    0 => smp::mpidr(),
                    1 => cfg.mpidrs[self.below(n) as usize],
                    _ => self.pick(&[0xff, 0x100, 0xff_0000, 0xff_0000_0000]),
                };
                let level = if self.chance(80) { 0 } else { self.below(4) };
                let fid = if self.chance(70) { PSCI_AFFINITY_INFO_64 } else { PSCI_AFFINITY_INFO_32 };
                let rc = self.psci(fid, target, level, self.c.rng);
                if fid == PSCI_AFFINITY_INFO_64 || target >> 32 == 0 {
                    let mask = [0xff_00ff_ffff, 0xff_00ff_ff00, 0xff_00ff_0000, 0xff_0000_0000][level as usize];
                    let same = |m: u64| m & mask == target & mask;
                    let (ok, want) = if same(smp::mpidr()) {
                        (rc == 0, "ON (0)")
                    } else if cfg.mpidrs[..n as usize].iter().any(|&m| same(m)) {
                        ((0..=2).contains(&rc), "ON, OFF or ON_PENDING")
                    } else if cfg.xen_quirks {
                        (rc == 1, "OFF (1) as Xen 4.17: no vCPU has that affinity")
                    } else {
                        (rc == PSCI_INVALID_PARAMETERS, "INVALID_PARAMETERS (-2) as PSCI: no vCPU has that affinity")
                    };
                    self.check(ok, format_args!("AFFINITY_INFO({target:#x}, level {level}) = {rc}, want {want}"));
                }
            }
            3 => {
                // Ourselves: on already, whatever the entry point, unless its bit 0 (Thumb) is
                // set, which Xen 4.17 refuses first for a 64-bit guest.
                let (entry, ctx) = (self.next(), self.next());
                let rc = self.psci(PSCI_CPU_ON_64, smp::mpidr(), entry, ctx);
                let want = if entry & 1 != 0 { PSCI_INVALID_ADDRESS } else { PSCI_ALREADY_ON };
                self.check(rc == want, format_args!("CPU_ON of ourselves at {entry:#x} = {rc}, want {want}"));
            }
            4 => {
                // MPIDRs no vCPU has: INVALID_PARAMETERS as PSCI says; Xen 4.17 ignores Aff2
                // and Aff3 (quirks=xen: those name vCPU 0, which is on).
                let target = self.pick(&[0xff, 0x100, 0xff_0000, 0xff_0000_0000]);
                let (entry, ctx) = (self.next(), self.next());
                let rc = self.psci(PSCI_CPU_ON_64, target, entry, ctx);
                let want = if target & 0xffff != 0 || !cfg.xen_quirks {
                    PSCI_INVALID_PARAMETERS
                } else if entry & 1 != 0 {
                    PSCI_INVALID_ADDRESS
                } else {
                    PSCI_ALREADY_ON
                };
                self.check(rc == want, format_args!("CPU_ON({target:#x}) at {entry:#x} = {rc}, want {want}"));
            }
            5 => {
                // Another vCPU, at our entry point: on already, or (if it finished its share)
                // started again for a short visit.
                if NO_MORE_CPU_ON.load(Acquire) || n < 2 {
                    return;
                }
                let k = 1 + self.below(n - 1) as usize;
                if k == self.c.id {
                    return;
                }
                let rc = self.psci(PSCI_CPU_ON_64, cfg.mpidrs[k], smp::secondary_entry_address(), k as u64);
                self.check(
                    rc == PSCI_SUCCESS || rc == PSCI_ALREADY_ON || rc == PSCI_ON_PENDING,
                    format_args!("CPU_ON of vCPU {k} = {rc}"),
                );
            }
            6 => {
                let (fid, want) = match self.below(4) {
                    0 => (PSCI_MIGRATE_INFO_TYPE, Some(2)),
                    1 => (SMCCC_VERSION, Some(SMCCC_VERSION_1_1 as i64)),
                    2 => (SMCCC_ARCH_FEATURES, None),
                    _ => (self.pick(&[SMCCC_HYP_CALL_COUNT, SMCCC_HYP_CALL_UID, SMCCC_HYP_REVISION]), None),
                };
                let a1 = if self.chance(50) {
                    self.pick(&[SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2]) as u64
                } else {
                    self.next()
                };
                let rc = self.psci(fid, a1, 0, 0);
                if let Some(w) = want {
                    self.check(rc == w, format_args!("SMCCC function {fid:#x} = {rc:#x}, want {w:#x}"));
                }
            }
            _ => {
                // Function ids nobody implements (never one that stops, resets, suspends or
                // starts a CPU: no PSCI id below 0x20, no PSCI 0.1 id).
                let mut fid = self.next() as u32;
                if fid & 0xbfff_ffe0 == 0x8400_0000 || fid < 0x100 {
                    fid |= 0x0100_0000;
                }
                let (a1, a2, a3) = (self.next(), self.next(), self.next());
                self.psci(fid, a1, a2, a3);
            }
        }
    }

    // --- the loop
    fn step(&mut self) {
        let cfg = self.cfg;
        let (gic_w, sgi_w) = (if cfg.gic_fuzz { 5 } else { 0 }, if cfg.gic { 2 } else { 0 });
        let mut weights = [14, 10, 9, 3, 4, 2, 7, 6, 6, 5, 4, 1, 2, 2, 16, 7, gic_w, sgi_w, 3, 12, 3, 6, 3, 3];
        for (i, w) in weights.iter_mut().enumerate() {
            // (Weight i is operation i + 1; Audit (17) has none.)
            let o = if i < 16 { i + 1 } else { i + 2 };
            if cfg.skip & 1 << o != 0 {
                *w = 0;
            }
        }
        let op = match self.weighted(&weights) {
            0 => Op::Xatp,
            1 => Op::Xrfp,
            2 => Op::Batch,
            3 => Op::Query,
            4 => Op::Setup,
            5 => Op::Version,
            6 => Op::Map,
            7 => Op::Unmap,
            8 => Op::Copy,
            9 => Op::GntMisc,
            10 => Op::XenVersion,
            11 => Op::Console,
            12 => Op::Sched,
            13 => Op::Garbage,
            14 => Op::Private,
            15 => Op::Slots,
            16 => Op::Gic,
            17 => Op::Sgi,
            18 => Op::Timer,
            19 => Op::Evtchn,
            20 => Op::Vcpu,
            21 => Op::Reservation,
            22 => Op::Hvm,
            _ => Op::Psci,
        };
        DOING[self.c.id].store((op as u64) << 48 | self.c.hypercalls, Relaxed);
        self.op = op as usize;
        self.c.ops[op as usize] += 1;
        let t0 = counter();
        match op {
            Op::Xatp => self.op_xatp(),
            Op::Xrfp => self.op_xrfp(),
            Op::Batch => self.op_batch(),
            Op::Query => self.op_query(),
            Op::Setup => self.op_setup(),
            Op::Version => self.op_version(),
            Op::Map => self.op_map(),
            Op::Unmap => self.op_unmap(),
            Op::Copy => self.op_copy(),
            Op::GntMisc => self.op_gnt_misc(),
            Op::XenVersion => self.op_xen_version(),
            Op::Console => self.op_console(),
            Op::Sched => self.op_sched(),
            Op::Garbage => self.op_garbage(),
            Op::Private => self.op_private(),
            Op::Slots | Op::Audit => self.op_slot(),
            Op::Gic => self.op_gic(),
            Op::Sgi => self.op_sgi(),
            Op::Timer => self.op_timer(),
            Op::Evtchn => self.op_evtchn(),
            Op::Vcpu => self.op_vcpu(),
            Op::Reservation => self.op_reservation(),
            Op::Hvm => self.op_hvm(),
            Op::Psci => self.op_psci(),
        }
        self.c.op_ticks[op as usize] += counter().wrapping_sub(t0);
    }
}

/// What `watch=<gfn>` last saw: the tag word (or u64::MAX for a fault) and the first frame
/// listed at the GFN (or u64::MAX).
static WATCHED: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
/// The watch's own buffers.
static WATCH_BUF: Pages<1> = Pages::new();

/// The `watch=<gfn>` debugging aid: after each hypercall, compares what the GFN reads and
/// which frame setup_table lists there (without growing the table) with the last time.
fn watch(c: &Cpu, cfg: &Cfg, op: u64, a0: u64, a1: u64, rc: i64) {
    let g = cfg.watch;
    let read = probe_read(g * PAGE + TAG_OFF).unwrap_or(u64::MAX);
    let q = WATCH_BUF.addr(0) + PAGE - 16;
    put(q, &GnttabQuerySize { dom: DOMID_SELF, ..Default::default() }, usize::MAX);
    // SAFETY: a query_size operation in our arena.
    unsafe { hypercall5(hc::GRANT_TABLE_OP, GNTTABOP_QUERY_SIZE, q, 1, 0, 0) };
    let nr = (get::<GnttabQuerySize>(q).nr_frames as u64).min(64);
    let list = WATCH_BUF.addr(0);
    let st = q - 32;
    put(
        st,
        &GnttabSetupTable { dom: DOMID_SELF, nr_frames: nr as u32, frame_list: list, ..Default::default() },
        usize::MAX,
    );
    // SAFETY: a setup_table operation and its frame list in our arena.
    unsafe { hypercall5(hc::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, st, 1, 0, 0) };
    // Bit f set: frame f is listed at the GFN.
    let listed = (0..nr).filter(|&f| get::<u64>(list + 8 * f) == g).fold(0u64, |m, f| m | 1 << f);
    let (r0, l0) = (WATCHED[0].swap(read, Relaxed), WATCHED[1].swap(listed, Relaxed));
    if r0 != read || l0 != listed {
        granite_guests::println!(
            "[granite-fuzz] WATCH {g:#x}: cpu {} hypercall {} op {op:#x}({a0:#x}, {a1:#x}) -> {rc}: reads {read:#x} (was {r0:#x}), frames listed there {listed:#x} (bit mask, was {l0:#x})",
            c.id,
            c.hypercalls
        );
    }
}

fn audit_result(c: &mut Cpu, rc: i64) {
    if rc == -ENOSYS {
        if AUDIT.swap(2, Relaxed) != 2 {
            granite_guests::println!(
                "[granite-fuzz] audit unavailable (hypercall {} answered -ENOSYS)",
                hc::GRANITE_AUDIT
            );
        }
        return;
    }
    AUDIT.store(1, Relaxed);
    c.audits += 1;
    if rc != 0 {
        FAILED.store(true, Relaxed);
        if rc > 0 {
            c.violations += rc as u64;
        } else {
            c.audit_failures += 1;
        }
        granite_guests::println!("[granite-fuzz] AUDIT cpu {} after {} hypercalls: {}", c.id, c.hypercalls, rc);
    }
}

/// Sets up vCPU `cpu`'s state and runs its share of the fuzzing.
fn run(cpu: usize) {
    let cfg = cfg();
    let c = cpu_state(cpu);
    c.id = cpu;
    c.rng = cfg.seed ^ (cpu as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
    let mut n = 0;
    if cfg.grant_private {
        for k in 0..GRANT_PRIVATE {
            c.priv_gfn[n] = cfg.g0 + GRANT_POOL + GRANT_PRIVATE * cpu as u64 + k;
            c.priv_st[n] = PState::Unknown;
            n += 1;
        }
    }
    for k in 0..EXT_PRIVATE {
        c.priv_gfn[n] = cfg.ext_private(cpu) + k;
        c.priv_st[n] = PState::Unknown;
        n += 1;
    }
    for k in 0..VICTIM_PRIVATE {
        c.priv_gfn[n] = VICTIM.gfn(VICTIM_SHARED + VICTIM_PRIVATE * cpu + k);
        c.priv_st[n] = PState::Ram;
        n += 1;
    }
    c.npriv = n;
    c.slot_st = [Slot::Unknown; SLOTS];
    if cfg.gic {
        // Our redistributor (and its address, for the register fuzzing); IRQs stay masked.
        gic::get().cpu_init();
    }
    let mut f = Fuzz { c, cfg, readable: 0, op: 0 };
    // Learn the private GFNs (Unknown: remove whatever is there).
    for k in 0..BATCH_MAX as u64 {
        put64(arena(cpu, A_GPFNS) + 8 * k, cfg.x0 + k % EXT_POOL);
    }
    for j in 0..f.c.npriv {
        if f.c.priv_st[j] == PState::Unknown {
            let g = f.c.priv_gfn[j];
            let rc = f.xrfp_private(g);
            f.check(rc == 0 || rc == -ENOENT, format_args!("initial remove of {g:#x}: {rc}"));
            f.c.priv_st[j] = PState::Empty;
        }
        f.verify_private(j);
    }
    for s in 0..SLOTS {
        f.c.slot_st[s] = Slot::Empty;
        f.verify_slot(s);
    }
    while f.c.hypercalls < cfg.iters {
        f.step();
    }
    gicfuzz::timers_off();
    DOING[cpu].store(0, Relaxed);
}

fn secondary(cpu: usize) {
    if FINAL_PHASE.load(Acquire) {
        final_visit(cpu);
    } else if RAN[cpu].swap(true, AcqRel) {
        // Started again by a fuzzed CPU_ON after it finished: a short visit.
        REVISITS.fetch_add(1, Relaxed);
    } else {
        run(cpu);
    }
}

/// A secondary started again at the end (see `gic_final`): its GIC interface set up again,
/// then a timer interrupt must arrive.
fn final_visit(cpu: usize) {
    timer::wait_until(5_000_000, || FINAL_GO[cpu].load(Acquire));
    let g = gic::get();
    let ok = g.cpu_init();
    let r = gicfuzz::irq_check(g, 2_000, 2_000_000);
    let v = 1
        | (r.arrived as u64) << 1
        | (ok as u64) << 2
        | r.drained.min(0x0fff_ffff) << 3
        | r.late.min(u32::MAX as u64) << 32;
    FINAL_RESULT[cpu].store(v, Release);
}

fn fatal_hook(msg: fmt::Arguments) -> ! {
    granite_guests::println!("[granite-fuzz] FAIL cpu {}: {}", smp::cpu_id(), msg);
    granite_guests::hypercall::power_off()
}

fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn main(p: &Platform) {
    granite_guests::report::set_fatal_hook(fatal_hook);
    if p.bootarg("role") == Some("granter") {
        granter(p)
    }
    let fail = |msg: fmt::Arguments| -> ! {
        granite_guests::println!("[granite-fuzz] FAIL setup: {}", msg);
        granite_guests::hypercall::power_off()
    };
    let arg = |k: &str| p.bootarg(k).map(|v| parse_u64(v).unwrap_or_else(|| fail(format_args!("bad {k}={v}"))));
    let seed = arg("seed").unwrap_or_else(|| counter().wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x0067_7261_6e69_7465);
    let iters = arg("iters").unwrap_or(20_000);
    let audit_every = arg("audit_every").unwrap_or(1000);
    let vcpus = arg("vcpus").unwrap_or(MAX_CPUS as u64) as usize;
    let (Some(grant), Some(ext)) = (p.grant_region, p.extended.iter().find(|e| e.pages() >= EXT_NEEDED)) else {
        fail(format_args!("need a grant region and an extended region of {EXT_NEEDED} pages (/hypervisor reg)"));
    };
    if grant.pages() < GRANT_POOL + 1 {
        fail(format_args!("grant region {grant} too small"));
    }

    // The audit hypercall decides the default quirks: unavailable means Xen.
    let c0 = cpu_state(0);
    // SAFETY: the audit hypercall takes no arguments and touches no guest memory.
    let rc = unsafe { hypercall5(hc::GRANITE_AUDIT, 0, 0, 0, 0, 0) };
    audit_result(c0, rc);
    let xen_quirks = match p.bootarg("quirks") {
        Some("xen") => true,
        Some("none") => false,
        _ => AUDIT.load(Relaxed) == 2,
    };

    // Grant table size.
    let (rc, q) = granite_guests::hypercall::query_size(DOMID_SELF);
    if rc != 0 || q.status != GNTST_OKAY || q.max_nr_frames == 0 {
        fail(format_args!("query_size: rc {rc} status {} max {}", q.status, q.max_nr_frames));
    }
    let max_frames = q.max_nr_frames as u64;
    let ncpus = vcpus.clamp(1, p.cpus.len().clamp(1, MAX_CPUS));
    // The GIC, set up on the boot CPU before any secondary starts. (Only if its distributor
    // answers where the device tree says: the runtime takes a node's address as it is, which
    // on the Raspberry Pi 4 is a bus address behind its parent's `ranges`.)
    let gic_ok = p.gic.is_some_and(|g| {
        let at = g.dist.base + gicd::TYPER;
        let ok = granite_guests::probe_read_sized(at, 4).is_ok();
        if !ok {
            granite_guests::println!(
                "[granite-fuzz] the GIC distributor does not answer at {at:#x} (a bus address?): SGIs, the vGIC's registers and the interrupt check are left out"
            );
        }
        ok
    }) && gic::init(p).is_ok();
    let gicd_id = if gic_ok {
        let g = gic::get();
        gicfuzz::learn(g);
        (read32(g.d(gicd::TYPER)), read32(g.d(gicd::IIDR)))
    } else {
        (0, 0)
    };
    // Logical CPU order (smp::start_secondaries): the boot CPU, then the others as listed.
    let mut mpidrs = [0u64; MAX_CPUS];
    mpidrs[0] = smp::mpidr();
    for (slot, &m) in mpidrs[1..].iter_mut().zip(p.cpus.as_slice().iter().filter(|&&m| m != smp::mpidr())) {
        *slot = m;
    }
    // Our event-channel upcall, as the hypervisor set it (it must not change).
    let callback = {
        let a = arena(0, A_STRUCT);
        let param =
            xen_abi::XenHvmParam { domid: DOMID_SELF, _pad: 0, index: xen_abi::hvm::HVM_PARAM_CALLBACK_IRQ, value: 0 };
        put(a, &param, usize::MAX);
        // SAFETY: a get_param structure in our arena.
        let rc = unsafe { hypercall5(hc::HVM_OP, xen_abi::hvm::HVMOP_GET_PARAM, a, 0, 0, 0) };
        if rc == 0 { get::<xen_abi::XenHvmParam>(a).value } else { u64::MAX }
    };
    let mut ram = [Region::default(); 8];
    for (r, m) in ram.iter_mut().zip(p.memory.iter()) {
        *r = *m;
    }
    // SAFETY: no secondary runs yet; this is the only access.
    unsafe {
        *CFG.get_mut() = Cfg {
            seed,
            iters,
            audit_every,
            ncpus,
            xen_quirks,
            g0: grant.gfn(),
            gpages: grant.pages(),
            max_frames,
            grant_private: grant.pages() >= GRANT_POOL + GRANT_PRIVATE * ncpus as u64,
            x0: ext.gfn(),
            gicd: p.gic_dist.unwrap_or_default(),
            ram,
            nram: p.memory.len().min(8),
            pa_bits: p.pa_bits,
            cntfrq: counter_freq().max(1),
            trace: p.has_bootarg("trace"),
            watch: arg("watch").unwrap_or(0),
            granter: arg("granter").unwrap_or(0) as DomId,
            skip: p
                .bootarg("skip")
                .unwrap_or("")
                .split(['+', ','])
                .filter_map(|w| w.parse::<u32>().ok())
                .fold(0, |m, o| m | 1u64.checked_shl(o).unwrap_or(0)),
            nvcpus: p.cpus.len().max(1),
            gic: gic_ok,
            gic_fuzz: gic_ok && !xen_quirks && p.bootarg("gicfuzz") != Some("0"),
            gicd_id,
            mpidrs,
            conduit: p.psci.unwrap_or(Conduit::Hvc),
            callback,
        };
    }
    let cfg = cfg();
    granite_guests::println!(
        "[granite-fuzz] seed={:#x} iters={} audit_every={} vcpus={} quirks={} max_frames={} grant_pool={:#x}+{} ext_pool={:#x}+{} victim={:#x}+{} sac={:#x}+{} gic={}{}",
        seed,
        iters,
        audit_every,
        ncpus,
        if xen_quirks { "xen" } else { "none" },
        max_frames,
        cfg.g0,
        GRANT_POOL,
        cfg.x0,
        EXT_POOL,
        VICTIM.gfn(0),
        VICTIM_SHARED,
        SAC.gfn(0),
        SAC_PAGES,
        match (gic_ok, p.gic.map(|g| g.version)) {
            (true, Some(granite_guests::GicVersion::V3)) => "v3",
            (true, _) => "v2",
            _ => "none",
        },
        if cfg.gic_fuzz {
            " (registers fuzzed)"
        } else if gic_ok {
            " (registers not fuzzed: quirks=xen or gicfuzz=0; SGIs and the final interrupt check only)"
        } else {
            ""
        }
    );

    // Guard pages out of stage 1; buffers' contents.
    mmu::unmap(SAC.addr(SAC_PAGES), PAGE);
    for cpu in 0..MAX_CPUS {
        for g in GUARDS {
            mmu::unmap(arena(cpu, g), PAGE);
        }
        for (page, which) in [(A_PAGE_RW, REF_RW), (A_PAGE_RO, REF_RO)] {
            ARENA.fill(cpu * ARENA_PAGES + page, 0x7061_6765_0000_0000 | (cpu as u64) << 8);
            ARENA.write64(cpu * ARENA_PAGES + page, 8, marker(cpu, which));
        }
        for w in 0..PAGE / 8 {
            ARENA.write64(cpu * ARENA_PAGES + A_DOTS, w * 8, u64::from_le_bytes(*b"........"));
        }
    }
    for i in 0..8 {
        SHARED.fill(i, 0x7368_6172_6564_0000 | i as u64);
    }

    // The grants, in frame 0 (mapped for the occasion at the setup page), and tag 0.
    let setup_gfn = cfg.x0 + EXT_SETUP;
    let rc = granite_guests::hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, 0, setup_gfn);
    if rc != 0 {
        fail(format_args!("add_to_physmap(frame 0, {setup_gfn:#x}): {rc}"));
    }
    // SAFETY: frame 0 is mapped at the setup GFN, outside every Rust object.
    let f0 = unsafe { granite_guests::GrantFrameV1::at(setup_gfn * PAGE) };
    for cpu in 0..MAX_CPUS {
        let gfn = |page: usize| ARENA.gfn(cpu * ARENA_PAGES + page) as u32;
        f0.grant(cpu_ref(cpu, REF_RW), GTF_PERMIT_ACCESS, 0, gfn(A_PAGE_RW));
        f0.grant(cpu_ref(cpu, REF_RO), GTF_PERMIT_ACCESS | GTF_READONLY, 0, gfn(A_PAGE_RO));
        f0.grant(cpu_ref(cpu, REF_COPY_RW), GTF_PERMIT_ACCESS, 0, gfn(A_COPY));
        f0.grant(cpu_ref(cpu, REF_COPY_RO), GTF_PERMIT_ACCESS | GTF_READONLY, 0, gfn(A_COPY));
        f0.grant(cpu_ref(cpu, REF_INVALID), GTF_INVALID, 0, gfn(A_PAGE_RW));
        f0.grant(cpu_ref(cpu, REF_OTHER_DOM), GTF_PERMIT_ACCESS, 5, gfn(A_PAGE_RW));
    }
    let vic = |i: u64| cfg.victim_shared(i) as u32;
    for r in 0..8u32 {
        f0.grant(REF_SHARED + r, GTF_PERMIT_ACCESS, 0, SHARED.gfn(r as usize) as u32);
        f0.grant(REF_SHARED + 16 + r, GTF_PERMIT_ACCESS, 0, vic(r as u64));
    }
    for r in 0..4u32 {
        f0.grant(REF_SHARED + 8 + r, GTF_PERMIT_ACCESS | GTF_READONLY, 0, SHARED.gfn(r as usize) as u32);
        f0.grant(REF_SHARED + 12 + r, GTF_PERMIT_ACCESS | GTF_READONLY, 0, vic(8 + r as u64));
    }
    let odd: [(u16, u16, u32); 8] = [
        (GTF_ACCEPT_TRANSFER, 0, SHARED.gfn(0) as u32),
        (GTF_PERMIT_ACCESS | GTF_SUB_PAGE, 0, SHARED.gfn(1) as u32),
        (GTF_PERMIT_ACCESS | GTF_PWT | GTF_PCD, 0, SHARED.gfn(2) as u32),
        (GTF_PERMIT_ACCESS, 1, SHARED.gfn(3) as u32),
        (GTF_PERMIT_ACCESS, DOMID_SELF, SHARED.gfn(4) as u32),
        (GTF_PERMIT_ACCESS, 0, (1u64 << (cfg.pa_bits - 12)) as u32),
        (GTF_PERMIT_ACCESS | GTF_READONLY, 0, (cfg.x0 + EXT_HOLES) as u32),
        (GTF_PERMIT_ACCESS | GTF_READONLY, 0, cfg.g0 as u32),
    ];
    for (k, (flags, dom, frame)) in odd.into_iter().enumerate() {
        f0.grant(REF_SHARED + 24 + k as u32, flags, dom, frame);
    }
    f0.set_raw(511, tag(0));
    let rc = granite_guests::hypercall::remove_from_physmap(DOMID_SELF, setup_gfn);
    if rc != 0 {
        fail(format_args!("remove_from_physmap({setup_gfn:#x}): {rc}"));
    }

    // Start the others; vCPU 0 fuzzes too.
    let t0 = counter();
    let (started, n) = smp::start_secondaries(p, ncpus, secondary);
    for s in started.iter().flatten() {
        if s.result != 0 {
            fail(format_args!("PSCI CPU_ON(cpu {}, mpidr {:#x}): {}", s.cpu, s.mpidr, s.result));
        }
    }
    let conduit = cfg.conduit;
    let psci_checks = psci_checks(conduit, n);
    RAN[0].store(true, Relaxed);
    run(0);
    NO_MORE_CPU_ON.store(true, Release);
    let t1 = counter();
    // Wait for the others, for at most 5 minutes of guest time after vCPU 0 finished.
    let deadline = t1 + 300 * cfg.cntfrq;
    while !(1..n).all(|c| smp::state(c) == CpuState::Done) {
        if counter() > deadline {
            for (c, doing) in DOING.iter().enumerate().take(n).skip(1) {
                if smp::state(c) != CpuState::Done {
                    let d = doing.load(Relaxed);
                    granite_guests::println!(
                        "[granite-fuzz] FAIL cpu {} did not finish: state {:?}, doing {} after {} hypercalls",
                        c,
                        smp::state(c),
                        OP_NAMES[(d >> 48) as usize % OP_NAMES.len()],
                        d & 0xffff_ffff_ffff
                    );
                }
            }
            granite_guests::hypercall::power_off();
        }
        granite_guests::hypercall::sched_yield();
    }
    let t_end = counter().max(t1);
    finish(cfg, n, psci_checks, t0, t_end, conduit);
}

/// PSCI answers the fuzzer can check: CPU_ON of a running CPU (ALREADY_ON), of an MPIDR no
/// CPU has (INVALID_PARAMETERS), AFFINITY_INFO of the running ones (ON). Returns (checks,
/// failures).
fn psci_checks(conduit: granite_guests::Conduit, n: usize) -> (u64, u64) {
    use xen_abi::psci::*;
    let mut checks = 0;
    let mut failed = 0;
    let mut check = |ok: bool, what: fmt::Arguments| {
        checks += 1;
        if !ok {
            failed += 1;
            FAILED.store(true, Relaxed);
            granite_guests::println!("[granite-fuzz] CHECK FAILED psci: {}", what);
        }
    };
    smp::wait_started(100_000);
    let entry = smp::secondary_entry_address();
    let rc = smp::cpu_on(conduit, smp::mpidr(), entry, 0);
    check(rc == PSCI_ALREADY_ON, format_args!("CPU_ON(boot CPU) = {rc}, want ALREADY_ON (-4)"));
    let rc = smp::cpu_on(conduit, 0xff_0000_00ff, entry, 0);
    check(
        rc == PSCI_INVALID_PARAMETERS,
        format_args!("CPU_ON(mpidr 0xff000000ff) = {rc}, want INVALID_PARAMETERS (-2)"),
    );
    let rc = smp::affinity_info(conduit, smp::mpidr());
    check(rc == 0, format_args!("AFFINITY_INFO(boot CPU) = {rc}, want ON (0)"));
    for c in 1..n {
        let rc = smp::affinity_info(conduit, smp::cpu_mpidr(c));
        let st = smp::state(c);
        // A CPU that already finished may be off (or on its way there).
        let ok = rc == 0 || st == CpuState::Done && (rc == 1 || rc == 2);
        check(ok, format_args!("AFFINITY_INFO(cpu {c}, state {st:?}) = {rc}"));
    }
    let v = smp::psci_version(conduit);
    check(v >= 0x2, format_args!("PSCI_VERSION = {v:#x}"));
    (checks, failed)
}

/// After every vCPU finished: PSCI, the final audit and consistency check, the summary.
fn finish(cfg: &Cfg, n: usize, psci: (u64, u64), t0: u64, t1: u64, conduit: granite_guests::Conduit) -> ! {
    let c0 = cpu_state(0);
    let (mut checks, mut failures) = psci;
    // The secondaries turned themselves off.
    for c in 1..n {
        let mut rc = -1;
        for _ in 0..10_000 {
            rc = smp::affinity_info(conduit, smp::cpu_mpidr(c));
            if rc == 1 {
                break;
            }
            granite_guests::hypercall::sched_yield();
        }
        checks += 1;
        if rc != 1 {
            failures += 1;
            FAILED.store(true, Relaxed);
            granite_guests::println!(
                "[granite-fuzz] CHECK FAILED psci: AFFINITY_INFO(cpu {c}) after CPU_OFF = {rc}, want OFF (1)"
            );
        }
    }
    if cfg.gic {
        let (gc, gf) = gic_final(cfg, n, conduit);
        checks += gc;
        failures += gf;
    }
    // SAFETY: the audit hypercall takes no arguments and touches no guest memory.
    let rc = unsafe { hypercall5(hc::GRANITE_AUDIT, 0, 0, 0, 0, 0) };
    audit_result(c0, rc);
    let (fc, ff) = final_check(cfg);
    checks += fc;
    failures += ff;

    // Totals.
    let mut results = [0u64; NRES];
    let mut errs = [0u64; NRES];
    let mut gntst = [0u64; NGNTST];
    let (mut hcs, mut faults, mut audits, mut violations, mut audit_failures) = (0, 0, 0, 0, 0);
    let (mut mmio, mut mmio_aborts, mut sgis, mut timer_regs, mut psci) = (0, 0, 0, 0, 0);
    let mut ops = [0u64; NOPS];
    let mut op_res = [[0u64; NRES]; NOPS];
    let mut op_ticks = [0u64; NOPS];
    for c in 0..n {
        let s = cpu_state(c);
        hcs += s.hypercalls;
        mmio += s.mmio;
        mmio_aborts += s.mmio_aborts;
        sgis += s.sgis;
        timer_regs += s.timer_regs;
        psci += s.psci;
        for (o, (t, r)) in ops.iter_mut().zip(op_res.iter_mut()).enumerate() {
            *t += s.ops[o] as u64;
            op_ticks[o] += s.op_ticks[o];
            for (x, v) in r.iter_mut().zip(s.op_res[o].iter()) {
                *x += *v as u64;
            }
        }
        faults += s.faults;
        checks += s.checks;
        failures += s.check_failures;
        audits += s.audits;
        violations += s.violations;
        audit_failures += s.audit_failures;
        for (t, v) in results.iter_mut().zip(s.results.iter()) {
            *t += *v as u64;
        }
        for (t, v) in errs.iter_mut().zip(s.errs.iter()) {
            *t += *v as u64;
        }
        for (t, v) in gntst.iter_mut().zip(s.gntst.iter()) {
            *t += *v as u64;
        }
    }
    let secs_x10 = (t1 - t0) * 10 / cfg.cntfrq;
    let rate = hcs * cfg.cntfrq / (t1 - t0).max(1);
    // Per operation: how often, and its calls' results (before the SUMMARY line).
    for (o, name) in OP_NAMES.iter().enumerate().skip(1) {
        if ops[o] == 0 {
            continue;
        }
        let mut l = StrBuf::<600>::new();
        let ms = op_ticks[o] * 1000 / cfg.cntfrq;
        let _ = write!(l, "[granite-fuzz] op {name}: {} times, {ms} ms, results [", ops[o]);
        if o == Op::Psci as usize {
            // (PSCI's answers are its own codes, not errnos.)
            write_hist(&mut l, &op_res[o], |i| match i {
                0 => "0",
                128 => "+",
                129 => "other",
                _ => "-E?",
            });
        } else {
            write_hist(&mut l, &op_res[o], res_name);
        }
        let _ = writeln!(l, "]");
        console::write_bytes(l.as_bytes());
    }
    let mut line = StrBuf::<1600>::new();
    let _ = write!(line, "[granite-fuzz] SUMMARY seed={:#x} vcpus={} hypercalls={} results=[", cfg.seed, n, hcs);
    write_hist(&mut line, &results, res_name);
    let _ = write!(line, "] errs=[");
    write_hist(&mut line, &errs, res_name);
    let _ = write!(line, "] gntst=[");
    write_hist(&mut line, &gntst, |i| match i {
        14 => "unwritten",
        15 => "other",
        _ => status_name(-(i as i16)),
    });
    let _ = write!(
        line,
        "] audits={} violations={} faults={} checks={} check_failures={} mmio={} mmio_aborts={} sgis={} timer_regs={} psci={} revisits={} guest_time={}.{}s rate={}/s",
        audits,
        violations,
        faults,
        checks,
        failures,
        mmio,
        mmio_aborts,
        sgis,
        timer_regs,
        psci,
        REVISITS.load(Relaxed),
        secs_x10 / 10,
        secs_x10 % 10,
        rate
    );
    if cfg.granter != 0 {
        let _ = write!(line, " granter=d{} xmaps={}", cfg.granter, XMAPS.load(Relaxed));
    }
    // One console write for the whole line: a hypervisor may treat each write as a line.
    let _ = writeln!(line);
    console::write_bytes(line.as_bytes());
    if failures == 0 && violations == 0 && audit_failures == 0 && !FAILED.load(Relaxed) {
        granite_guests::println!("[granite-fuzz] PASS");
    } else {
        granite_guests::println!(
            "[granite-fuzz] FAIL check_failures={} violations={} audit_errors={}",
            failures,
            violations,
            audit_failures
        );
    }
    granite_guests::hypercall::power_off()
}

/// After the fuzzing (every secondary off): the GIC set up again, and a timer interrupt must
/// still arrive, on vCPU 0 and on each secondary, started again with CPU_ON (which must
/// succeed on a vCPU that is off, and say ALREADY_ON or ON_PENDING right after). Returns
/// (checks, failures).
fn gic_final(cfg: &Cfg, n: usize, conduit: Conduit) -> (u64, u64) {
    use xen_abi::psci::*;
    let mut checks = 0;
    let mut failed = 0;
    let mut check = |ok: bool, what: fmt::Arguments| {
        checks += 1;
        if !ok {
            failed += 1;
            FAILED.store(true, Relaxed);
            granite_guests::println!("[granite-fuzz] CHECK FAILED interrupts after the fuzzing: {}", what);
        }
    };
    let g = gic::get();
    FINAL_PHASE.store(true, Release);
    g.dist_init();
    check(g.cpu_init(), format_args!("vCPU 0 finds its redistributor again"));
    let r = gicfuzz::irq_check(g, 5_000, 2_000_000);
    check(r.arrived, format_args!("vCPU 0: no virtual timer interrupt within 2 s of guest time, GIC set up again"));
    let mut line = StrBuf::<400>::new();
    let _ = write!(
        line,
        "[granite-fuzz] interrupts after the fuzzing: vCPU 0 took {} left over, timer {}",
        r.drained,
        if r.arrived { "arrived" } else { "LOST" }
    );
    let entry = smp::secondary_entry_address();
    for c in 1..n {
        let m = smp::cpu_mpidr(c);
        let rc = smp::cpu_on(conduit, m, entry, c as u64);
        check(rc == PSCI_SUCCESS, format_args!("CPU_ON of vCPU {c} (off) = {rc}, want SUCCESS"));
        if rc != PSCI_SUCCESS {
            continue;
        }
        let again = smp::cpu_on(conduit, m, entry, c as u64);
        FINAL_GO[c].store(true, Release);
        check(
            again == PSCI_ALREADY_ON || again == PSCI_ON_PENDING,
            format_args!("CPU_ON of vCPU {c} right after it was started = {again}, want ALREADY_ON or ON_PENDING"),
        );
        let deadline = counter() + 20 * cfg.cntfrq;
        while FINAL_RESULT[c].load(Acquire) == 0 && counter() < deadline {
            granite_guests::hypercall::sched_yield();
        }
        let v = FINAL_RESULT[c].load(Acquire);
        check(v != 0, format_args!("vCPU {c} started again did not report within 20 s"));
        if v != 0 {
            check(v & 4 != 0, format_args!("vCPU {c} finds its redistributor again"));
            check(v & 2 != 0, format_args!("vCPU {c}: no virtual timer interrupt within 2 s, GIC set up again"));
            let _ = write!(
                line,
                "; vCPU {c} took {} left over, timer {}",
                (v >> 3) & 0x0fff_ffff,
                if v & 2 != 0 { "arrived" } else { "LOST" }
            );
        }
        let mut off = -1;
        for _ in 0..10_000 {
            off = smp::affinity_info(conduit, m);
            if off == 1 {
                break;
            }
            granite_guests::hypercall::sched_yield();
        }
        check(off == 1, format_args!("AFFINITY_INFO(vCPU {c}) after its visit = {off}, want OFF (1)"));
    }
    let _ = writeln!(line);
    console::write_bytes(line.as_bytes());
    (checks, failed)
}

fn res_name(i: usize) -> &'static str {
    match i {
        0 => "0",
        128 => "+",
        129 => "other",
        _ => {
            let n = name(i as i64);
            if n == "E?" { "-E?" } else { n }
        }
    }
}

fn write_hist<const N: usize>(out: &mut StrBuf<N>, h: &[u64], name: impl Fn(usize) -> &'static str) {
    let mut first = true;
    for (i, &v) in h.iter().enumerate() {
        if v == 0 {
            continue;
        }
        let n = name(i);
        let sep = if first { "" } else { ", " };
        first = false;
        let _ = match n {
            "0" | "+" | "other" | "unwritten" => write!(out, "{sep}{n}:{v}"),
            "-E?" => write!(out, "{sep}-{i}:{v}"),
            _ if n.starts_with('E') => write!(out, "{sep}-{n}:{v}"),
            _ => write!(out, "{sep}{n}:{v}"),
        };
    }
}

/// Prints, in time order, the last recorded requests (all vCPUs) that touched `gfn` or
/// mapped frame `frame`: what a failed final check needs to be understood.
fn dump_history(cfg: &Cfg, gfn: u64, frame: Option<u64>) {
    let mut sel = [(0u64, 0usize, 0usize); 48];
    let mut n = 0;
    for c in 0..cfg.ncpus {
        let s = cpu_state(c);
        for (i, h) in s.hist.iter().enumerate() {
            let frame_hit = frame.is_some_and(|f| {
                matches!(h.kind, Hk::Xatp | Hk::Batch)
                    && h.x & !HIST_MAYBE == XENMAPSPACE_GRANT_TABLE
                    && (h.a & 0xffff_ffff == f || h.a == IDX_UNKNOWN)
            });
            let exact = h.gfn == gfn;
            let known = h.x & HIST_MAYBE == 0 && h.a != IDX_UNKNOWN;
            if h.kind == Hk::None || !(exact || frame_hit && known) {
                continue;
            }
            // Keep the latest 48 (replace the oldest when full).
            if n < sel.len() {
                sel[n] = (h.t, c, i);
                n += 1;
            } else if let Some(m) = (0..n).min_by_key(|&k| sel[k].0)
                && sel[m].0 < h.t
            {
                sel[m] = (h.t, c, i);
            }
        }
    }
    sel[..n].sort_unstable_by_key(|e| e.0);
    granite_guests::println!("[granite-fuzz] history of {gfn:#x} / frame {frame:?} (latest {n}):");
    for &(t, c, i) in &sel[..n] {
        let h = cpu_state(c).hist[i];
        granite_guests::println!(
            "[granite-fuzz]   t={} cpu {} hc {} {:?} gfn {:#x} x {:#x} a {:#x} -> {}",
            t,
            c,
            h.hc,
            h.kind,
            h.gfn,
            h.x,
            h.a,
            h.rc
        );
    }
}

/// The quiescent end state: no two frames share a GFN; every frame listed at a GFN we can
/// read is there (tagged as itself, or untagged); every tagged page in the grant region and
/// at the private GFNs is listed at that GFN.
fn final_check(cfg: &Cfg) -> (u64, u64) {
    let mut checks = 0;
    let mut failed = 0;
    let mut check = |ok: bool, what: fmt::Arguments| {
        checks += 1;
        if !ok {
            failed += 1;
            granite_guests::println!("[granite-fuzz] CHECK FAILED final: {}", what);
        }
    };
    let list = arena(0, A_OUT);
    let a = arena(0, A_STRUCT);
    let nr = cfg.max_frames.min(512);
    put(
        a,
        &GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: nr as u32,
            status: STATUS_UNWRITTEN,
            frame_list: list,
            ..Default::default()
        },
        usize::MAX,
    );
    // SAFETY: a valid setup_table operation in our arena, its frame list in our arena.
    let rc = unsafe { hypercall5(hc::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, a, 1, 0, 0) };
    let st = get::<GnttabSetupTable>(a).status;
    check(rc == 0 && st == GNTST_OKAY, format_args!("setup_table({nr}): rc {rc} status {st}"));
    if rc != 0 || st != GNTST_OKAY {
        return (checks, failed);
    }
    let gfn_of = |f: u64| get::<u64>(list + 8 * f);
    let mut mapped = 0;
    for f in 0..nr {
        let g = gfn_of(f);
        if g == INVALID_GFN {
            continue;
        }
        mapped += 1;
        if let Some(o) = (f + 1..nr).find(|&o| gfn_of(o) == g) {
            check(false, format_args!("frames {f} and {o} both at GFN {g:#x}"));
            dump_history(cfg, g, Some(f));
        }
        if g < 1 << 36 && mmu::translate(g * PAGE).is_some() && !(cfg.gicd.size != 0 && cfg.gicd.contains(g * PAGE)) {
            let r = probe_read(g * PAGE + TAG_OFF);
            let ok = matches!(r, Ok(v) if v == 0 || v == tag(f));
            check(ok, format_args!("frame {f} listed at {g:#x}, which reads {r:x?} (tag {:#x})", tag(f)));
            if !ok {
                dump_history(cfg, g, Some(f));
            }
        }
    }
    // Tagged pages where only frames (or shared_info) are ever mapped.
    let mut pages = [0u64; 64 + MAX_CPUS * NPRIV];
    let mut np = 0;
    for g in cfg.g0..cfg.gend().min(cfg.g0 + 64) {
        pages[np] = g;
        np += 1;
    }
    for c in 0..cfg.ncpus {
        let s = cpu_state(c);
        for &g in &s.priv_gfn[..s.npriv] {
            if !(g >= cfg.g0 && g < cfg.gend()) {
                pages[np] = g;
                np += 1;
            }
        }
    }
    for &g in &pages[..np] {
        if let Ok(v) = probe_read(g * PAGE + TAG_OFF)
            && let Some(f) = tag_index(v)
        {
            let at = if f < nr { gfn_of(f) } else { INVALID_GFN };
            check(at == g, format_args!("{g:#x} shows frame {f}'s tag, but setup_table puts frame {f} at {at:#x}"));
            if at != g {
                dump_history(cfg, g, Some(f));
            }
        }
    }
    granite_guests::println!(
        "[granite-fuzz] final: {} of {} frames mapped, {} pages checked, {} checks, {} failed",
        mapped,
        nr,
        np,
        checks,
        failed
    );
    (checks, failed)
}

// ---------------------------------------------------------------------------------------
// The granter: this image as a domU (`role=granter`), racing dom0's fuzzer from the other
// side of its grants (dom0 runs with `granter=<its domid>`). On one vCPU it rewrites and
// revokes the grants dom0 maps and copies (references REF_SHARED.., granted to dom0), swaps
// some granted pages for grant frames and holes, uses its own grant table, and with
// `crash_ms=N` crashes after N ms of guest time, while dom0 still maps its pages. It checks
// nothing itself: dom0's audit hypercall does, and dom0 counts the mappings it got (`xmaps=`
// in its SUMMARY line). It also gives its swapped pages back and populates them again
// (decrease_reservation / populate_physmap: pages dom0 maps are freed only once unmapped),
// and dom0 in turn populates and gives back pages of the granter's at GFNs where it has
// nothing (GRANTER_HOLES), allocates event-channel ports in its table and binds to them,
// and sets its HVM parameters.

/// Pages granted to dom0; the last GRANTER_VICTIMS also become grant frames and holes.
const GRANTER_PAGES: usize = 16;
const GRANTER_VICTIMS: usize = 4;
static GRANTED: Pages<GRANTER_PAGES> = Pages::new();
/// dom0's successful map_grant_ref of the granter's grants.
static XMAPS: AtomicU64 = AtomicU64::new(0);
/// The machine addresses (dev_bus_addr) of the last few of them.
static XMAS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

fn granter(p: &Platform) -> ! {
    let arg = |k: &str| p.bootarg(k).and_then(parse_u64);
    let seed = arg("seed").unwrap_or(1);
    let crash_ms = arg("crash_ms").unwrap_or(0);
    let Some(grant) = p.grant_region.filter(|g| g.pages() >= 4) else {
        granite_guests::report::fatal(format_args!("granter: no grant region of 4 pages"))
    };
    let g0 = grant.gfn();
    let rc = granite_guests::hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, 0, g0);
    if rc != 0 {
        granite_guests::report::fatal(format_args!("granter: add_to_physmap(frame 0, {g0:#x}): {rc}"));
    }
    // SAFETY: frame 0 stays mapped at g0 (never removed below), outside every Rust object.
    let f0 = unsafe { granite_guests::GrantFrameV1::at(g0 * PAGE) };
    for i in 0..GRANTER_PAGES {
        GRANTED.fill(i, 0x6772_616e_7465_0000 | i as u64);
    }
    let freq = counter_freq().max(1);
    let t0 = counter();
    let deadline = (crash_ms != 0).then(|| t0 + crash_ms * freq / 1000);
    granite_guests::println!(
        "[granite-fuzz] granter: seed={seed:#x} refs {}..{} to dom0, pages {:#x}+{GRANTER_PAGES}, crash_ms={crash_ms}",
        REF_SHARED,
        REF_SHARED + NREF_SHARED,
        GRANTED.gfn(0)
    );
    let mut x = seed | 1;
    let mut next = move || {
        // xorshift64*
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let (mut changes, mut calls) = (0u64, 0u64);
    loop {
        if deadline.is_some_and(|d| counter() >= d) {
            granite_guests::println!(
                "[granite-fuzz] granter: crashing on purpose after {changes} grant changes and {calls} hypercalls"
            );
            granite_guests::hypercall::shutdown(xen_abi::sched::SHUTDOWN_CRASH);
            granite_guests::report::fatal(format_args!("granter: still running after SCHEDOP_shutdown(crash)"));
        }
        let r = REF_SHARED + (next() % NREF_SHARED as u64) as u32;
        let k = (next() % GRANTER_PAGES as u64) as usize;
        let v = GRANTER_PAGES - GRANTER_VICTIMS + (next() % GRANTER_VICTIMS as u64) as usize;
        match next() % 100 {
            0..=49 => {
                let ro = if next() % 10 < 3 { GTF_READONLY } else { 0 };
                f0.grant(r, GTF_PERMIT_ACCESS | ro, 0, GRANTED.gfn(k) as u32);
                changes += 1;
            }
            50..=74 => {
                // Revoked, mapped or not (dom0's mappings stay until it unmaps them).
                f0.clear(r);
                changes += 1;
            }
            75..=79 => {
                // Garbage flags and domids, frames out of range.
                f0.set_raw(r, next());
                changes += 1;
            }
            80..=89 => {
                calls += 1;
                let _ = if next() % 2 == 0 {
                    let idx = 1 + next() % 3;
                    granite_guests::hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, idx, GRANTED.gfn(v))
                } else {
                    granite_guests::hypercall::remove_from_physmap(DOMID_SELF, GRANTED.gfn(v))
                };
            }
            90..=92 => {
                calls += 1;
                let _ = granite_guests::hypercall::query_size(DOMID_SELF);
            }
            93..=94 => {
                // Give a page dom0 may map back (freed once dom0 unmapped it), or take a
                // fresh one at its GFN (a domU gets new pages, within its limit).
                calls += 1;
                let mut list = [GRANTED.gfn(v)];
                let mut r = XenMemoryReservation {
                    extent_start: granite_guests::hypercall::va_mut(&mut list),
                    nr_extents: 1,
                    domid: DOMID_SELF,
                    ..Default::default()
                };
                let cmd = match next() % 4 {
                    0 | 1 => XENMEM_DECREASE_RESERVATION,
                    2 => XENMEM_POPULATE_PHYSMAP,
                    _ => XENMEM_INCREASE_RESERVATION,
                };
                let _ = granite_guests::hypercall::memory_op(cmd, &mut r);
            }
            _ => {
                calls += 1;
                granite_guests::hypercall::sched_yield();
            }
        }
    }
}
