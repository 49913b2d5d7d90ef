//! The smoke guest: grant-table and physmap scenarios, booted as dom0. Every expected value
//! is what Xen 4.17 (Debian 4.17 arm64 under QEMU virt) answered to this guest; where that
//! differs from the reference notes, the comment says so.
//!
//! Every address comes from the device tree: the grant-table region (`/hypervisor` reg[0]),
//! the extended regions (reg[1..]: guest-physical space with nothing behind it, used as
//! scratch GFNs for shared_info and grant mappings, and for P2M holes), our own RAM pages
//! (in BSS) and the GIC distributor (MMIO the hypervisor emulates).
//!
//! Scenarios run in order. Each removes what it mapped, except that 3 → 4 → 5 are one
//! sequence (map, refuse to map again, remove). The grant table only grows, so 2 must run
//! before 3 and 7.
//!
//! Scenario 17 runs only on a Raspberry Pi (a `brcm,bcm2835-mbox` VideoCore mailbox under
//! `/soc`, as a direct-mapped dom0 sees the host's devices): a DMA master, which knows only
//! machine addresses, must find our RAM at its guest-physical address.
#![no_std]
#![no_main]

use granite_guests::hypercall::{
    self, STATUS_UNWRITTEN as UNWRITTEN, add_to_physmap_batch, map_grant_ref, query_size, setup_table, unmap_grant_ref,
};
use granite_guests::report::{Check, Hex, fatal, scenario};
use granite_guests::{GrantFrameV1, PAGE_SIZE as PAGE, Pages, Platform, Region, mmu, probe_read, probe_write};
use xen_abi::errno::*;
use xen_abi::gnttab::*;
use xen_abi::hypercall as hc;
use xen_abi::memory::*;
use xen_abi::*;

granite_guests::entry!(main);

/// Grant references the scenarios use (above the reserved ones).
const REF_PATTERN: u32 = 9;
const REF_TAG: u32 = 10;
const REF_RW: u32 = 16;
const REF_RO: u32 = 17;
const REF_EMPTY: u32 = 18;
const REF_OTHER_DOM: u32 = 19;
const REF_COPY: u32 = 20;

/// Our own RAM pages: P1 and P2 are granted / copied; GUARD_LO and GUARD_HI are adjacent,
/// and GUARD_HI is taken out of stage 1 in scenario 11 (the image is mapped with pages, so
/// that never splits a block holding running code).
static PAGES: Pages<4> = Pages::new();
const P1: usize = 0;
const P2: usize = 1;
const GUARD_LO: usize = 2;
const GUARD_HI: usize = 3;

/// What an errs[] slot or status holds when the hypervisor did not write it.
const ERR_UNWRITTEN: i32 = 0x55;

/// The syndrome Xen injects for an access its P2M cannot satisfy (and no MMIO handler
/// claims): a data abort taken from the current EL, IL set, ISS 0. FAR_EL1 = the VA.
const ESR_P2M_ABORT: u64 = 0x9600_0000;
/// What the MMU reports for a stage-1 level-3 translation fault on a read.
const ESR_S1_L3_TRANSLATION: u64 = 0x9600_0007;

/// The machine layout the scenarios work in.
struct Env {
    grant: Region,
    /// First GFN of the grant-table region.
    g0: u64,
    /// Scratch GFNs: the start of the first extended region.
    x0: u64,
    /// A page in neither stage 1 nor the P2M: the last page of the last extended region,
    /// taken out of our stage-1 map.
    hole: u64,
    gicd: Option<u64>,
    /// max_nr_frames from query_size (scenario 2); the region size until then.
    max_frames: u32,
}

fn gaddr(gfn: u64) -> u64 {
    gfn * PAGE
}

/// The grant frame mapped at `gfn`.
fn frame_at(gfn: u64) -> GrantFrameV1 {
    // SAFETY: only called with GFNs of the grant region, which is outside our image (no Rust
    // object lives there), right after a frame was mapped there; an access after it is
    // removed faults and is reported as a failed run.
    unsafe { GrantFrameV1::at(gaddr(gfn)) }
}

fn add_gt(idx: u64, gfn: u64) -> i64 {
    hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, idx, gfn)
}

fn add_si(idx: u64, gfn: u64) -> i64 {
    hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_SHARED_INFO, idx, gfn)
}

fn remove(gfn: u64) -> i64 {
    hypercall::remove_from_physmap(DOMID_SELF, gfn)
}

fn batch(space: u32, idxs: &[u64], gpfns: &[u64], errs: &mut [i32]) -> i64 {
    add_to_physmap_batch(DOMID_SELF, space as u16, idxs, gpfns, errs)
}

/// Expects setup_table to list `want` (one GFN or INVALID_GFN per frame).
fn expect_frames(c: &mut Check, what: &str, want: &[u64]) {
    let mut buf = [0x5a5a_u64; 80];
    let frames = &mut buf[..want.len()];
    let (rc, st) = setup_table(DOMID_SELF, frames);
    c.rc(format_args!("{what}: setup_table rc"), rc, 0);
    c.st(format_args!("{what}: setup_table status"), st, GNTST_OKAY);
    for (i, (&got, &w)) in frames.iter().zip(want).enumerate() {
        c.eq(format_args!("{what}: setup_table frame {i}"), Hex(got), Hex(w));
    }
}

/// Expects a read of `addr` to take a data abort with syndrome `esr` at exactly `addr`.
fn expect_abort(c: &mut Check, what: &str, addr: u64, esr: u64) {
    match probe_read(addr) {
        Ok(v) => c.that(format_args!("{what}: read {addr:#x} faults"), false, format_args!("value {v:#x}")),
        Err(f) => c.that(format_args!("{what}: read {addr:#x} faults, ESR {esr:#x}"), f.esr == esr && f.far == addr, f),
    };
}

/// Expects a read of `addr` (mapped in our stage 1) to fault because the P2M has nothing.
fn expect_p2m_fault(c: &mut Check, what: &str, addr: u64) {
    expect_abort(c, what, addr, ESR_P2M_ABORT);
}

/// Expects the 64-bit word at `addr` to read as `want` (without crashing if it faults).
fn expect_read(c: &mut Check, what: &str, addr: u64, want: u64) {
    match probe_read(addr) {
        Ok(v) => c.eq(format_args!("{what}: [{addr:#x}]"), Hex(v), Hex(want)),
        Err(f) => c.that(format_args!("{what}: read {addr:#x}"), false, f),
    };
}

fn main(p: &Platform) {
    let Some(grant) = p.grant_region else {
        fatal(format_args!("no grant-table region (/hypervisor reg[0])"));
    };
    let (Some(first_ext), Some(last_ext)) = (p.extended.first(), p.extended.last()) else {
        fatal(format_args!("no extended region (/hypervisor reg[1..])"));
    };
    if grant.pages() == 0 || grant.pages() > 79 || first_ext.pages() < 0x100 {
        fatal(format_args!("grant region {grant} or extended region {first_ext} unusable"));
    }
    let mut env = Env {
        grant,
        g0: grant.gfn(),
        x0: first_ext.gfn(),
        hole: last_ext.end() - PAGE,
        gicd: p.gic_dist.map(|g| g.base),
        max_frames: grant.pages() as u32,
    };
    mmu::unmap(env.hole, PAGE);

    scenario("xen_version", |c| xen_version(c, p));
    scenario("query_size", |c| query_size_initial(c, &mut env));
    scenario("map_grant_frame", |c| map_grant_frame(c, &env));
    scenario("remap_busy", |c| remap_busy(c, &env));
    scenario("remove_frame", |c| remove_frame(c, &env));
    scenario("seed_remap_sequence", |c| seed_remap_sequence(c, &env));
    scenario("grow_table", |c| grow_table(c, &env));
    scenario("shared_info", |c| shared_info(c, &env));
    scenario("physmap_batch", |c| physmap_batch(c, &env));
    scenario("bad_domid", |c| bad_domid(c, &env));
    scenario("bad_pointers", |c| bad_pointers(c, &env));
    scenario("huge_gfns", |c| huge_gfns(c, &env));
    scenario("unknown_ops", |c| unknown_ops(c, &env));
    scenario("map_own_grant", |c| map_own_grant(c, &env));
    scenario("grant_copy", |c| grant_copy(c, &env));
    scenario("cache_flush", cache_flush);
    if let Some(mb) = Mailbox::find(p) {
        scenario("mailbox_dma", |c| mailbox_dma(c, &env, &mb));
    }
}

/// 1. Version, and the grant-table version ops (v2 is compiled out on Arm).
fn xen_version(c: &mut Check, p: &Platform) {
    let (major, minor) = hypercall::xen_version_number();
    c.eq("XENVER_version major", major, 4);
    c.eq("XENVER_version minor", minor, 17);
    c.that("DT /hypervisor is compatible with xen,xen", p.is_xen, "no");
    c.eq("DT /hypervisor versioned compatible", p.hypervisor_compatible.unwrap_or("none"), "xen,xen-4.17");

    let mut gv = [GnttabGetVersion { dom: DOMID_SELF, ..Default::default() }];
    c.rc("get_version rc", hypercall::grant_table_op(GNTTABOP_GET_VERSION, &mut gv), 0);
    c.eq("get_version version", gv[0].version, 1);
    // set_version writes the current version back in every case.
    for (v, want_rc) in [(1, 0), (2, -ENOSYS), (3, -EINVAL), (0, -EINVAL)] {
        let mut sv = [GnttabSetVersion { version: v }];
        let rc = hypercall::grant_table_op(GNTTABOP_SET_VERSION, &mut sv);
        c.rc(format_args!("set_version({v}) rc"), rc, want_rc);
        c.eq(format_args!("set_version({v}) version written back"), sv[0].version, 1);
    }
    c.rc("get_version rc (after)", hypercall::grant_table_op(GNTTABOP_GET_VERSION, &mut gv), 0);
    c.eq("get_version version (after)", gv[0].version, 1);
}

/// 2. query_size: one frame to start with; the maximum is the size of the DT grant region
///    (dom0 gets min(gnttab_max_frames, pages of Xen's text) and a region that size).
fn query_size_initial(c: &mut Check, env: &mut Env) {
    for dom in [DOMID_SELF, 0] {
        let (rc, q) = query_size(dom);
        c.rc(format_args!("query_size(dom {dom:#x}) rc"), rc, 0);
        c.st(format_args!("query_size(dom {dom:#x}) status"), q.status, GNTST_OKAY);
        c.eq(format_args!("query_size(dom {dom:#x}) nr_frames"), q.nr_frames, 1);
        let max = q.max_nr_frames as u64;
        c.eq(format_args!("query_size(dom {dom:#x}) max_nr_frames = DT grant region pages"), max, env.grant.pages());
        if dom == DOMID_SELF && q.max_nr_frames != 0 {
            env.max_frames = q.max_nr_frames.min(env.grant.pages() as u32);
        }
    }
}

const PATTERN: u64 = 0x1234_5678_0000_0000; // an entry with flags 0 (GTF_invalid)

/// 3. Frame 0 at the first GFN of the grant region; entries written through it read back;
///    setup_table reports the GFN for frame 0 and INVALID_GFN for a frame not mapped
///    (asking for 2 frames also grows the table to 2).
fn map_grant_frame(c: &mut Check, env: &Env) {
    expect_p2m_fault(c, "before mapping", gaddr(env.g0));
    if !c.rc("add_to_physmap(grant_table, idx 0, g0)", add_gt(0, env.g0), 0) {
        return;
    }
    let f = frame_at(env.g0);
    f.set_raw(REF_PATTERN, PATTERN);
    expect_read(c, "entry written through g0", f.entry_addr(REF_PATTERN), PATTERN);
    expect_frames(c, "frame 0 mapped", &[env.g0, INVALID_GFN]);
    let (rc, q) = query_size(DOMID_SELF);
    c.rc("query_size rc", rc, 0);
    c.eq("query_size nr_frames after setup_table(2)", q.nr_frames, 2);
}

/// 4. The mapped frame cannot be mapped again, elsewhere or at the same GFN: -EBUSY.
fn remap_busy(c: &mut Check, env: &Env) {
    c.rc("add_to_physmap(idx 0, g0+1) while mapped at g0", add_gt(0, env.g0 + 1), -EBUSY);
    c.rc("add_to_physmap(idx 0, g0) again", add_gt(0, env.g0), -EBUSY);
    expect_p2m_fault(c, "g0+1 after the refused map", gaddr(env.g0 + 1));
    expect_read(c, "g0 unchanged", frame_at(env.g0).entry_addr(REF_PATTERN), PATTERN);
    expect_frames(c, "still at g0", &[env.g0, INVALID_GFN]);
}

/// 5. remove_from_physmap unmaps the frame (the GFN faults, setup_table says INVALID_GFN);
///    removing what is not mapped is -ENOENT; the frame keeps its contents when mapped again.
fn remove_frame(c: &mut Check, env: &Env) {
    c.rc("remove_from_physmap(g0)", remove(env.g0), 0);
    expect_p2m_fault(c, "g0 after remove", gaddr(env.g0));
    expect_frames(c, "after remove", &[INVALID_GFN, INVALID_GFN]);
    c.rc("remove_from_physmap(g0) again", remove(env.g0), -ENOENT);
    c.rc("remove_from_physmap(g0+5), never mapped", remove(env.g0 + 5), -ENOENT);
    c.rc("remove_from_physmap(stage-1/P2M hole)", remove(env.hole / PAGE), -ENOENT);
    c.rc("add_to_physmap(idx 0, g0) after remove", add_gt(0, env.g0), 0);
    let f = frame_at(env.g0);
    expect_read(c, "frame 0 kept its contents", f.entry_addr(REF_PATTERN), PATTERN);
    f.clear(REF_PATTERN);
    c.rc("remove_from_physmap(g0) (cleanup)", remove(env.g0), 0);
}

/// 6. The sequence behind the "store frame GFN in page_info" fix: frame 0 at G1, unmap it,
///    frame 1 at G1, then frame 0 at G2 must leave G1 (now frame 1) alone. A hypervisor that
///    remembers frame 0's stale GFN would remove G1 here.
fn seed_remap_sequence(c: &mut Check, env: &Env) {
    let (g1, g2) = (env.g0 + 1, env.g0 + 2);
    let (a, b) = (0xaaaa_aaaa_a0a0_0000u64, 0xbbbb_bbbb_b0b0_0000u64);
    let (f1, f2) = (frame_at(g1), frame_at(g2));
    if !c.rc("frame 0 -> G1", add_gt(0, g1), 0) {
        return;
    }
    f1.set_raw(REF_PATTERN, a);
    c.rc("remove G1", remove(g1), 0);
    if !c.rc("frame 1 -> G1", add_gt(1, g1), 0) {
        return;
    }
    f1.set_raw(REF_PATTERN, b);
    c.rc("frame 0 -> G2", add_gt(0, g2), 0);
    expect_read(c, "G1 still frame 1 (pattern B)", f1.entry_addr(REF_PATTERN), b);
    expect_read(c, "G2 is frame 0 (pattern A)", f2.entry_addr(REF_PATTERN), a);
    expect_frames(c, "after the sequence", &[g2, g1]);
    if c.clean() {
        f1.clear(REF_PATTERN);
        f2.clear(REF_PATTERN);
    }
    c.rc("remove G1 (cleanup)", remove(g1), 0);
    c.rc("remove G2 (cleanup)", remove(g2), 0);
    expect_frames(c, "after cleanup", &[INVALID_GFN, INVALID_GFN]);
}

/// 7. Growing the table to max_nr_frames by mapping every frame; one past the end and the
///    status-frame bit (v2 only) are refused with -EINVAL.
fn grow_table(c: &mut Check, env: &Env) {
    let max = env.max_frames as u64;
    let tag = |idx: u64| 0x7a60_0000_0000_0000 | idx << 16;
    let mut mapped = 0;
    for idx in 0..max {
        if !c.rc(format_args!("add_to_physmap(idx {idx}, g0+{idx})"), add_gt(idx, env.g0 + idx), 0) {
            break;
        }
        mapped += 1;
        frame_at(env.g0 + idx).set_raw(REF_TAG, tag(idx));
    }
    let (rc, q) = query_size(DOMID_SELF);
    c.rc("query_size rc", rc, 0);
    c.eq("query_size nr_frames after growth", q.nr_frames as u64, max);
    let mut want = [0u64; 80];
    for (i, w) in want[..max as usize].iter_mut().enumerate() {
        *w = env.g0 + i as u64;
    }
    expect_frames(c, "all frames", &want[..max as usize]);
    for idx in 0..mapped {
        let f = frame_at(env.g0 + idx);
        expect_read(c, "tag", f.entry_addr(REF_TAG), tag(idx));
        f.clear(REF_TAG);
    }
    let mut buf = [0u64; 80];
    let (rc, st) = setup_table(DOMID_SELF, &mut buf[..max as usize + 1]);
    c.rc("setup_table(max + 1) rc", rc, 0);
    c.st("setup_table(max + 1) status", st, GNTST_GENERAL_ERROR);
    c.rc("add_to_physmap(idx max_nr_frames)", add_gt(max, env.x0), -EINVAL);
    c.rc("add_to_physmap(idx max_nr_frames + 100)", add_gt(max + 100, env.x0), -EINVAL);
    let status0 = XENMAPIDX_GRANT_TABLE_STATUS;
    c.rc("add_to_physmap(idx XENMAPIDX_grant_table_status | 0)", add_gt(status0, env.x0), -EINVAL);
    c.rc("add_to_physmap(idx ~0)", add_gt(!0, env.x0), -EINVAL);
    expect_p2m_fault(c, "x0 after the refused maps", gaddr(env.x0));
    for idx in 0..mapped {
        c.rc(format_args!("remove_from_physmap(g0+{idx})"), remove(env.g0 + idx), 0);
    }
}

/// 8. shared_info can be mapped once; another mapping is -EBUSY until the first is removed.
fn shared_info(c: &mut Check, env: &Env) {
    let (s1, s2) = (env.x0 + 1, env.x0 + 2);
    c.rc("shared_info -> s1", add_si(0, s1), 0);
    c.that("s1 readable", probe_read(gaddr(s1)).is_ok(), "fault");
    c.rc("shared_info -> s2 while mapped at s1", add_si(0, s2), -EBUSY);
    c.rc("shared_info -> s1 again", add_si(0, s1), -EBUSY);
    expect_p2m_fault(c, "s2 after the refused map", gaddr(s2));
    c.rc("remove s1", remove(s1), 0);
    expect_p2m_fault(c, "s1 after remove", gaddr(s1));
    c.rc("shared_info -> s2 after remove", add_si(0, s2), 0);
    c.that("s2 readable", probe_read(gaddr(s2)).is_ok(), "fault");
    c.rc("shared_info idx 1", add_si(1, env.x0 + 3), -EINVAL);
    c.rc("remove s2 (cleanup)", remove(s2), 0);
}

/// 9. add_to_physmap_batch: per-entry errors in errs[] and 0 overall; gmfn_range is
///    -EOPNOTSUPP; size 0 is a no-op; gmfn (not supported on Arm) fails per entry.
fn physmap_batch(c: &mut Check, env: &Env) {
    let max = env.max_frames as u64;
    let g = env.g0;
    let idxs = [0, 1, max, 0];
    let gpfns = [g, g + 1, g + 2, g + 3];
    let mut errs = [ERR_UNWRITTEN; 4];
    let rc = batch(XENMAPSPACE_GRANT_TABLE, &idxs, &gpfns, &mut errs);
    c.rc("batch(grant_table, [0, 1, max, 0]) rc", rc, 0);
    for (i, (&got, want)) in errs.iter().zip([0, 0, -EINVAL as i32, -EBUSY as i32]).enumerate() {
        c.eq(format_args!("batch errs[{i}] (idx {}, gpfn g0+{i})", idxs[i]), got, want);
    }
    expect_frames(c, "after batch", &[g, g + 1]);
    let mut errs1 = [ERR_UNWRITTEN; 1];
    c.rc("batch(gmfn_range)", batch(XENMAPSPACE_GMFN_RANGE, &[0], &[env.x0], &mut errs1), -EOPNOTSUPP);
    c.eq("batch(gmfn_range) errs[0] (0x55 = unwritten)", errs1[0], ERR_UNWRITTEN);
    c.rc("batch(size 0)", batch(XENMAPSPACE_GRANT_TABLE, &[], &[], &mut []), 0);
    c.rc("batch(gmfn) rc", batch(XENMAPSPACE_GMFN, &[0], &[env.x0], &mut errs1), 0);
    c.eq("batch(gmfn) errs[0]", errs1[0], -ENOSYS as i32);
    c.rc("remove g0 (cleanup)", remove(g), 0);
    c.rc("remove g0+1 (cleanup)", remove(g + 1), 0);
}

/// 10. Domains that do not exist or cannot be targeted: -ESRCH from memory_op,
///     GNTST_bad_domain from grant_table_op. Our own id (0 for dom0) works like DOMID_SELF.
fn bad_domid(c: &mut Check, env: &Env) {
    for dom in [1234, DOMID_IO, DOMID_XEN, DOMID_INVALID] {
        let rc = hypercall::add_to_physmap(dom, XENMAPSPACE_GRANT_TABLE, 0, env.g0);
        c.rc(format_args!("add_to_physmap(domid {dom:#x})"), rc, -ESRCH);
        let rc = hypercall::remove_from_physmap(dom, env.g0);
        c.rc(format_args!("remove_from_physmap(domid {dom:#x})"), rc, -ESRCH);
        let (rc, q) = query_size(dom);
        c.rc(format_args!("query_size(dom {dom:#x}) rc"), rc, 0);
        c.st(format_args!("query_size(dom {dom:#x}) status"), q.status, GNTST_BAD_DOMAIN);
        let mut frames = [0x5a5a_u64; 1];
        let (rc, st) = setup_table(dom, &mut frames);
        c.rc(format_args!("setup_table(dom {dom:#x}) rc"), rc, 0);
        c.st(format_args!("setup_table(dom {dom:#x}) status"), st, GNTST_BAD_DOMAIN);
    }
    expect_p2m_fault(c, "nothing mapped at g0", gaddr(env.g0));
    let rc = hypercall::add_to_physmap(0, XENMAPSPACE_GRANT_TABLE, 0, env.g0);
    c.rc("add_to_physmap(domid 0)", rc, 0);
    expect_frames(c, "mapped through domid 0", &[env.g0]);
    c.rc("remove_from_physmap(domid 0)", hypercall::remove_from_physmap(0, env.g0), 0);
}

/// 11. Argument pointers the hypervisor cannot read or write through: -EFAULT for the
///     hypercall argument itself, GNTST_bad_virt_addr for setup_table's frame_list.
fn bad_pointers(c: &mut Check, env: &Env) {
    let guard = PAGES.addr(GUARD_HI);
    mmu::unmap(guard, PAGE);
    let p2m_hole = gaddr(env.x0 + 8);
    expect_abort(c, "stage-1 + P2M hole", env.hole, ESR_S1_L3_TRANSLATION);
    expect_abort(c, "stage-1 hole (guard page)", guard, ESR_S1_L3_TRANSLATION);
    expect_p2m_fault(c, "P2M hole (mapped in stage 1)", p2m_hole);

    // A structure that starts 8 bytes before the guard page; the part in the valid page
    // looks like a real request (domid SELF, space grant_table).
    let straddle = guard - 8;
    let realistic = (XENMAPSPACE_GRANT_TABLE as u64) << 32 | DOMID_SELF as u64;
    let bad = [("stage-1 + P2M hole", env.hole), ("P2M hole", p2m_hole), ("straddling", straddle)]
        .into_iter()
        .chain(env.gicd.map(|g| ("GIC distributor", g)));
    for (name, ptr) in bad {
        PAGES.write64(GUARD_LO, PAGE - 8, realistic);
        let call = |op: u64, cmd: u64, count: u64| -> i64 {
            // SAFETY: the pointer is deliberately unusable; the hypervisor must fail the call
            // without touching memory (for the straddling one, the 8 readable bytes are ours).
            unsafe { hypercall::hypercall3(op, cmd, ptr, count) }
        };
        c.rc(format_args!("{name}: add_to_physmap"), call(hc::MEMORY_OP, XENMEM_ADD_TO_PHYSMAP, 0), -EFAULT);
        let rc = call(hc::MEMORY_OP, XENMEM_REMOVE_FROM_PHYSMAP, 0);
        c.rc(format_args!("{name}: remove_from_physmap"), rc, -EFAULT);
        let rc = call(hc::MEMORY_OP, XENMEM_ADD_TO_PHYSMAP_BATCH, 0);
        c.rc(format_args!("{name}: add_to_physmap_batch"), rc, -EFAULT);
        c.rc(format_args!("{name}: query_size"), call(hc::GRANT_TABLE_OP, GNTTABOP_QUERY_SIZE, 1), -EFAULT);
        c.rc(format_args!("{name}: setup_table"), call(hc::GRANT_TABLE_OP, GNTTABOP_SETUP_TABLE, 1), -EFAULT);
        c.rc(format_args!("{name}: map_grant_ref"), call(hc::GRANT_TABLE_OP, GNTTABOP_MAP_GRANT_REF, 1), -EFAULT);
        c.rc(format_args!("{name}: copy"), call(hc::GRANT_TABLE_OP, GNTTABOP_COPY, 1), -EFAULT);
        let rc = call(hc::XEN_VERSION, version::XENVER_EXTRAVERSION, 0);
        c.rc(format_args!("{name}: xen_version(extraversion)"), rc, -EFAULT);
        // SAFETY: as above (console_io reads 16 bytes at the pointer).
        let rc = unsafe { hypercall::hypercall3(hc::CONSOLE_IO, console::CONSOLEIO_WRITE, 16, ptr) };
        c.rc(format_args!("{name}: console_io(write, 16)"), rc, -EFAULT);

        // Good structures whose embedded handles are bad, two elements each: for the
        // straddling pointer the first element is readable and the second is not.
        let mut st_op = [GnttabSetupTable {
            dom: DOMID_SELF,
            nr_frames: 2,
            status: UNWRITTEN,
            frame_list: ptr,
            ..Default::default()
        }];
        let rc = hypercall::grant_table_op(GNTTABOP_SETUP_TABLE, &mut st_op);
        c.rc(format_args!("{name}: setup_table(frame_list bad) rc"), rc, 0);
        c.st(format_args!("{name}: setup_table(frame_list bad) status"), st_op[0].status, GNTST_BAD_VIRT_ADDR);
        // The readable idx[0] of the straddling array is an index that fails.
        PAGES.write64(GUARD_LO, PAGE - 8, !0);
        let gpfns = [env.x0 + 0x20, env.x0 + 0x21];
        let mut errs = [ERR_UNWRITTEN; 2];
        let mut b = XenAddToPhysmapBatch {
            domid: DOMID_SELF,
            space: XENMAPSPACE_GRANT_TABLE as u16,
            size: 2,
            u: 0,
            idxs: ptr,
            gpfns: hypercall::va(&gpfns),
            errs: hypercall::va_mut(&mut errs),
        };
        let rc = hypercall::memory_op(XENMEM_ADD_TO_PHYSMAP_BATCH, &mut b);
        c.rc(format_args!("{name}: batch(idxs bad) rc"), rc, -EFAULT);
        let err0 = if ptr == straddle { -EINVAL as i32 } else { ERR_UNWRITTEN };
        c.eq(format_args!("{name}: batch(idxs bad) errs[0] (0x55 = unwritten)"), errs[0], err0);
        c.eq(format_args!("{name}: batch(idxs bad) errs[1] (0x55 = unwritten)"), errs[1], ERR_UNWRITTEN);
    }
    expect_frames(c, "nothing mapped by the failed calls", &[INVALID_GFN, INVALID_GFN]);
    mmu::map(guard, PAGE, mmu::Attr::Data);
    PAGES.zero(GUARD_LO);
    PAGES.zero(GUARD_HI);
}

/// 12. GFNs beyond any IPA size: -EINVAL to map, -ENOENT to remove.
///
/// Xen 4.17 checks a GFN only against what its P2M walk can index: with the 4-level stage 2
/// it builds for a 44-bit IPA, GFNs up to 2^36 - 1 are accepted (and mapped where the
/// hardware never looks); from 2^36 on it answers -EINVAL. Only GFNs beyond any 48-bit IPA
/// are asserted. INVALID_GFN (~0) is refused before anything else: in a batch it ends the
/// whole call with -EINVAL, its errs[] slot unwritten and later entries not processed.
fn huge_gfns(c: &mut Check, env: &Env) {
    let huge = [1u64 << 36, 1 << 40, 1 << 52, INVALID_GFN - 1, INVALID_GFN];
    for &g in &huge {
        c.rc(format_args!("add_to_physmap(grant_table, gpfn {g:#x})"), add_gt(0, g), -EINVAL);
        c.rc(format_args!("add_to_physmap(shared_info, gpfn {g:#x})"), add_si(0, g), -EINVAL);
        c.rc(format_args!("remove_from_physmap(gpfn {g:#x})"), remove(g), -ENOENT);
    }
    let mut errs = [ERR_UNWRITTEN; 4];
    c.rc("batch(4 huge gpfns) rc", batch(XENMAPSPACE_GRANT_TABLE, &[0; 4], &huge[..4], &mut errs), 0);
    for (i, &e) in errs.iter().enumerate() {
        c.eq(format_args!("batch(4 huge gpfns) errs[{i}] (gpfn {:#x})", huge[i]), e, -EINVAL as i32);
    }
    let mut errs = [ERR_UNWRITTEN; 3];
    let gpfns = [1 << 40, INVALID_GFN, env.g0 + 1];
    c.rc("batch([1<<40, ~0, g0+1]) rc", batch(XENMAPSPACE_GRANT_TABLE, &[0, 0, 1], &gpfns, &mut errs), -EINVAL);
    for (i, (&got, want)) in errs.iter().zip([-EINVAL as i32, ERR_UNWRITTEN, ERR_UNWRITTEN]).enumerate() {
        c.eq(format_args!("batch([1<<40, ~0, g0+1]) errs[{i}] (0x55 = unwritten)"), got, want);
    }
    expect_frames(c, "nothing mapped", &[INVALID_GFN, INVALID_GFN]);
    c.rc("remove_from_physmap(gfn 0)", remove(0), -ENOENT);
    if let Some(gicd) = env.gicd {
        c.rc("remove_from_physmap(GIC distributor)", remove(gicd / PAGE), -ENOENT);
    }
}

/// 13. Hypercall and sub-op numbers that do not exist (-ENOSYS), transfer (-EOPNOTSUPP),
///     counts the op does not take (-EINVAL), start extents in memory_op cmd.
fn unknown_ops(c: &mut Check, env: &Env) {
    let mut scratch = [0u64; 16];
    let buf = hypercall::va(&scratch);
    for op in [0u64, 6, 63, 64, 100, u64::MAX] {
        // SAFETY: unknown hypercalls touch nothing; the one pointer argument is valid anyway.
        let rc = unsafe { hypercall::hypercall5(op, 0, buf, 0, 0, 0) };
        c.rc(format_args!("hypercall {op:#x}"), rc, -ENOSYS);
    }
    for cmd in [5u64, 16, 40, 63] {
        c.rc(format_args!("memory_op({cmd})"), hypercall::memory_op(cmd, &mut scratch), -ENOSYS);
    }
    // add_to_physmap ignores a start extent in cmd; remove_from_physmap refuses one.
    let gpfn = env.x0 + 0x30;
    let mut xatp = XenAddToPhysmap { domid: DOMID_SELF, size: 0, space: XENMAPSPACE_GRANT_TABLE, idx: 0, gpfn };
    let rc = hypercall::memory_op(XENMEM_ADD_TO_PHYSMAP | 1 << MEMOP_EXTENT_SHIFT, &mut xatp);
    c.rc("memory_op(add_to_physmap | 1 << 6)", rc, 0);
    expect_frames(c, "mapped despite the extent bits", &[gpfn]);
    let mut xrfp = XenRemoveFromPhysmap { domid: DOMID_SELF, _pad: [0; 6], gpfn };
    let rc = hypercall::memory_op(XENMEM_REMOVE_FROM_PHYSMAP | 1 << MEMOP_EXTENT_SHIFT, &mut xrfp);
    c.rc("memory_op(remove_from_physmap | 1 << 6)", rc, -EINVAL);
    expect_frames(c, "still mapped", &[gpfn]);
    c.rc("remove_from_physmap (cleanup)", remove(gpfn), 0);
    // add_to_physmap_batch takes the start extent as its continuation point.
    let (idxs, gpfns) = ([0u64, 1], [env.x0 + 0x31, env.x0 + 0x32]);
    let extents = [(1u64, 0, [ERR_UNWRITTEN, 0]), (2, -EILSEQ, [ERR_UNWRITTEN; 2]), (3, -EILSEQ, [ERR_UNWRITTEN; 2])];
    for (extent, want_rc, want_errs) in extents {
        let mut errs = [ERR_UNWRITTEN; 2];
        let mut b = XenAddToPhysmapBatch {
            domid: DOMID_SELF,
            space: XENMAPSPACE_GRANT_TABLE as u16,
            size: 2,
            u: 0,
            idxs: hypercall::va(&idxs),
            gpfns: hypercall::va(&gpfns),
            errs: hypercall::va_mut(&mut errs),
        };
        let rc = hypercall::memory_op(XENMEM_ADD_TO_PHYSMAP_BATCH | extent << MEMOP_EXTENT_SHIFT, &mut b);
        c.rc(format_args!("batch(size 2) from extent {extent} rc"), rc, want_rc);
        for i in 0..2 {
            let what = format_args!("batch(size 2) from extent {extent} errs[{i}] (0x55 = unwritten)");
            c.eq(what, errs[i], want_errs[i]);
        }
    }
    expect_frames(c, "batch from extent 1 mapped only frame 1", &[INVALID_GFN, gpfns[1]]);
    c.rc("remove frame 1 (cleanup)", remove(gpfns[1]), 0);

    for cmd in [13u64, 100, 0xfff] {
        c.rc(format_args!("grant_table_op({cmd})"), hypercall::grant_table_op(cmd, &mut scratch[..1]), -ENOSYS);
    }
    let rc = hypercall::grant_table_op(GNTTABOP_TRANSFER, &mut scratch[..1]);
    c.rc("grant_table_op(transfer, 1)", rc, -EOPNOTSUPP);
    let mut q = [GnttabQuerySize { dom: DOMID_SELF, ..Default::default() }; 2];
    c.rc("query_size count 0", hypercall::grant_table_op(GNTTABOP_QUERY_SIZE, &mut q[..0]), -EINVAL);
    c.rc("query_size count 2", hypercall::grant_table_op(GNTTABOP_QUERY_SIZE, &mut q), -EINVAL);
    let mut s = [GnttabSetupTable { dom: DOMID_SELF, ..Default::default() }; 2];
    c.rc("setup_table count 0", hypercall::grant_table_op(GNTTABOP_SETUP_TABLE, &mut s[..0]), -EINVAL);
    let mut cp = [GnttabCopy::default(); 1];
    c.rc("copy count 0", hypercall::grant_table_op(GNTTABOP_COPY, &mut cp[..0]), 0);
    // SAFETY: the count is absurd on purpose; the hypervisor refuses it before reading.
    let rc = unsafe { hypercall::hypercall3(hc::GRANT_TABLE_OP, GNTTABOP_COPY, hypercall::va(&cp), 0x8000_0000) };
    c.rc("copy count 0x80000000", rc, -EINVAL);
    let cmd = GNTTABOP_QUERY_SIZE | 1 << GNTTABOP_CONTINUATION_ARG_SHIFT;
    c.rc("query_size with continuation bits in cmd", hypercall::grant_table_op(cmd, &mut q[..1]), -EINVAL);
    let mut gsf = [GnttabGetStatusFrames { nr_frames: 1, dom: DOMID_SELF, status: UNWRITTEN, frame_list: buf }];
    c.rc("get_status_frames rc (v1)", hypercall::grant_table_op(GNTTABOP_GET_STATUS_FRAMES, &mut gsf), 0);
    c.st("get_status_frames status (v1)", gsf[0].status, GNTST_GENERAL_ERROR);
}

/// 14. dom0 grants its own pages to itself (domid 0) and maps them with host_map at GFNs of
///     an extended region: dev_bus_addr is the machine address (= guest-physical on dom0);
///     Xen sets GTF_reading/GTF_writing while mapped. Only host_map (+readonly) is allowed.
fn map_own_grant(c: &mut Check, env: &Env) {
    let g = env.g0;
    if !c.rc("frame 0 -> g0", add_gt(0, g), 0) {
        return;
    }
    let f = frame_at(g);
    let (p1, p2) = (PAGES.addr(P1), PAGES.addr(P2));
    PAGES.fill(P1, 0x6772_616e_6974_6500);
    PAGES.fill(P2, 0x726f_0000_0000_0000);
    f.grant(REF_RW, GTF_PERMIT_ACCESS, 0, PAGES.gfn(P1) as u32);
    f.grant(REF_RO, GTF_PERMIT_ACCESS | GTF_READONLY, 0, PAGES.gfn(P2) as u32);
    f.grant(REF_EMPTY, GTF_INVALID, 0, PAGES.gfn(P1) as u32);
    f.grant(REF_OTHER_DOM, GTF_PERMIT_ACCESS, 5, PAGES.gfn(P1) as u32);
    let (h1, h2) = (gaddr(env.x0 + 0x10), gaddr(env.x0 + 0x11));

    // Read/write, twice.
    let (rc, m) = map_grant_ref(h1, GNTMAP_HOST_MAP, REF_RW, 0);
    c.rc("map rw rc", rc, 0);
    c.st("map rw status", m.status, GNTST_OKAY);
    c.eq("map rw dev_bus_addr (machine address of the page)", Hex(m.dev_bus_addr), Hex(p1));
    c.eq("entry flags while mapped rw", f.flags(REF_RW), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    expect_read(c, "through the rw mapping", h1 + 8, PAGES.read64(P1, 8));
    // SAFETY: h1 maps our own page P1; word 100 is pattern data nothing else relies on.
    let w = unsafe { probe_write(h1 + 800, 0xfeed_f00d) };
    c.that("write through the rw mapping", w.is_ok(), format_args!("{w:?}"));
    c.eq("the write landed in the granted page", Hex(PAGES.read64(P1, 800)), Hex(0xfeed_f00d));
    let (rc, m2) = map_grant_ref(h2, GNTMAP_HOST_MAP, REF_RW, 0);
    c.rc("second map rc", rc, 0);
    c.st("second map status", m2.status, GNTST_OKAY);
    c.that("second map has its own handle", m2.handle != m.handle, m2.handle);
    let (rc, st) = unmap_grant_ref(h2, 0, m2.handle);
    c.rc("unmap second rc", rc, 0);
    c.st("unmap second status", st, GNTST_OKAY);
    c.eq("entry flags with one mapping left", f.flags(REF_RW), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    let (rc, st) = unmap_grant_ref(h1, 0, m.handle);
    c.rc("unmap rw rc", rc, 0);
    c.st("unmap rw status", st, GNTST_OKAY);
    expect_p2m_fault(c, "after unmap", h1);
    c.eq("entry flags after unmap", f.flags(REF_RW), GTF_PERMIT_ACCESS);
    let (rc, st) = unmap_grant_ref(h1, 0, m.handle);
    c.rc("unmap the same handle again rc", rc, 0);
    c.st("unmap the same handle again status", st, GNTST_BAD_HANDLE);
    let (rc, st) = unmap_grant_ref(h1, 0, 0xdead);
    c.rc("unmap bad handle rc", rc, 0);
    c.st("unmap bad handle status", st, GNTST_BAD_HANDLE);

    // Read-only.
    let (rc, m) = map_grant_ref(h1, GNTMAP_HOST_MAP | GNTMAP_READONLY, REF_RO, 0);
    c.rc("map ro rc", rc, 0);
    c.st("map ro status", m.status, GNTST_OKAY);
    c.eq("map ro dev_bus_addr", Hex(m.dev_bus_addr), Hex(p2));
    c.eq("entry flags while mapped ro", f.flags(REF_RO), GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
    expect_read(c, "through the ro mapping", h1 + 16, PAGES.read64(P2, 16));
    // Not tested: a write through the read-only mapping. Xen 4.17 takes the stage-2
    // permission fault for a mem_access event and returns to the guest without injecting
    // anything, so the store would be retried forever.
    let (rc, st) = unmap_grant_ref(h1, 0, m.handle);
    c.rc("unmap ro rc", rc, 0);
    c.st("unmap ro status", st, GNTST_OKAY);
    c.eq("entry flags after unmap ro", f.flags(REF_RO), GTF_PERMIT_ACCESS | GTF_READONLY);

    // Refused mappings (a readonly grant mapped writable is general_error, not
    // permission_denied).
    let cases: [(&str, u32, u32, DomId, i16); 8] = [
        ("readonly grant, writable map", GNTMAP_HOST_MAP, REF_RO, 0, GNTST_GENERAL_ERROR),
        ("device_map", GNTMAP_DEVICE_MAP, REF_RW, 0, GNTST_GENERAL_ERROR),
        ("device_map|host_map", GNTMAP_DEVICE_MAP | GNTMAP_HOST_MAP, REF_RW, 0, GNTST_GENERAL_ERROR),
        ("bad ref", GNTMAP_HOST_MAP, 1 << 20, 0, GNTST_BAD_GNTREF),
        ("GTF_invalid entry", GNTMAP_HOST_MAP, REF_EMPTY, 0, GNTST_GENERAL_ERROR),
        ("entry granted to d5", GNTMAP_HOST_MAP, REF_OTHER_DOM, 0, GNTST_GENERAL_ERROR),
        ("dom 1234", GNTMAP_HOST_MAP, REF_RW, 1234, GNTST_BAD_DOMAIN),
        ("dom DOMID_SELF", GNTMAP_HOST_MAP, REF_RW, DOMID_SELF, GNTST_BAD_DOMAIN),
    ];
    for (name, flags, r, dom, want) in cases {
        let (rc, m) = map_grant_ref(h1, flags, r, dom);
        c.rc(format_args!("map {name} rc"), rc, 0);
        if !c.st(format_args!("map {name} status"), m.status, want) && m.status == GNTST_OKAY {
            unmap_grant_ref(h1, 0, m.handle);
        }
    }
    expect_p2m_fault(c, "nothing left mapped", h1);
    for r in [REF_RW, REF_RO, REF_EMPTY, REF_OTHER_DOM] {
        f.clear(r);
    }
    c.rc("remove g0 (cleanup)", remove(g), 0);
}

fn by_gfn(page: usize, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u: PAGES.gfn(page), domid: DOMID_SELF, offset, _pad: 0 }
}

fn by_gref(r: u32, domid: DomId, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr { u: r as u64, domid, offset, _pad: 0 }
}

fn copy_op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy { source, dest, len, flags, status: UNWRITTEN, _pad: 0 }
}

/// 15. GNTTABOP_copy between our own pages, by GFN and by grant reference: per-op status,
///     len 0 is a no-op, offset + len > 4096 is GNTST_bad_copy_arg.
fn grant_copy(c: &mut Check, env: &Env) {
    let g = env.g0;
    if !c.rc("frame 0 -> g0", add_gt(0, g), 0) {
        return;
    }
    let f = frame_at(g);
    PAGES.fill(P1, 0x636f_7079_0000_0000);
    PAGES.zero(P2);
    f.grant(REF_COPY, GTF_PERMIT_ACCESS, 0, PAGES.gfn(P1) as u32);
    f.grant(REF_RO, GTF_PERMIT_ACCESS | GTF_READONLY, 0, PAGES.gfn(P1) as u32);

    let run = |c: &mut Check, name: &str, op: GnttabCopy, want: i16| {
        let mut ops = [op];
        c.rc(format_args!("copy {name} rc"), hypercall::grant_table_op(GNTTABOP_COPY, &mut ops), 0);
        c.st(format_args!("copy {name} status"), ops[0].status, want)
    };

    run(c, "gmfn->gmfn", copy_op(by_gfn(P1, 8), by_gfn(P2, 16), 64, 0), GNTST_OKAY);
    c.that("gmfn->gmfn data", PAGES.bytes_eq(P1, 8, P2, 16, 64), "differs");
    c.that(
        "gmfn->gmfn wrote nothing else",
        PAGES.is_zero(P2, 0, 16) && PAGES.is_zero(P2, 80, 4096 - 80),
        "stray bytes",
    );
    PAGES.zero(P2);
    let op = copy_op(by_gref(REF_COPY, 0, 0), by_gfn(P2, 1024), 128, GNTCOPY_SOURCE_GREF);
    run(c, "gref->gmfn", op, GNTST_OKAY);
    c.that("gref->gmfn data", PAGES.bytes_eq(P1, 0, P2, 1024, 128), "differs");
    let rest = PAGES.is_zero(P2, 0, 1024) && PAGES.is_zero(P2, 1152, 4096 - 1152);
    c.that("gref->gmfn wrote nothing else", rest, "stray bytes");
    c.eq("entry flags after the copy", f.flags(REF_COPY), GTF_PERMIT_ACCESS);
    PAGES.fill(P2, 0x7772_6974_6500_0000);
    run(c, "gmfn->gref", copy_op(by_gfn(P2, 0), by_gref(REF_COPY, 0, 2048), 256, GNTCOPY_DEST_GREF), GNTST_OKAY);
    c.that("gmfn->gref data", PAGES.bytes_eq(P2, 0, P1, 2048, 256), "differs");
    let op = copy_op(by_gfn(P2, 0), by_gref(REF_RO, 0, 0), 8, GNTCOPY_DEST_GREF);
    run(c, "gmfn->gref (read-only grant)", op, GNTST_GENERAL_ERROR);
    PAGES.zero(P2);
    run(c, "len 0", copy_op(by_gfn(P1, 0), by_gfn(P2, 0), 0, 0), GNTST_OKAY);
    c.that("len 0 wrote nothing", PAGES.is_zero(P2, 0, 4096), "bytes written");
    run(c, "source offset+len > 4096", copy_op(by_gfn(P1, 4000), by_gfn(P2, 0), 200, 0), GNTST_BAD_COPY_ARG);
    run(c, "dest offset+len > 4096", copy_op(by_gfn(P1, 0), by_gfn(P2, 4090), 10, 0), GNTST_BAD_COPY_ARG);
    let op = copy_op(by_gref(REF_COPY, 0, 4095), by_gfn(P2, 0), 2, GNTCOPY_SOURCE_GREF);
    run(c, "gref offset+len > 4096", op, GNTST_BAD_COPY_ARG);
    c.that("refused copies wrote nothing", PAGES.is_zero(P2, 0, 4096), "bytes written");
    run(c, "bad gref", copy_op(by_gref(1 << 20, 0, 0), by_gfn(P2, 0), 8, GNTCOPY_SOURCE_GREF), GNTST_BAD_GNTREF);
    let own_id = GnttabCopyPtr { domid: 0, ..by_gfn(P1, 0) };
    run(c, "gmfn with domid 0 (not DOMID_SELF)", copy_op(own_id, by_gfn(P2, 0), 8, 0), GNTST_PERMISSION_DENIED);
    let op = copy_op(by_gref(REF_COPY, 1234, 0), by_gfn(P2, 0), 8, GNTCOPY_SOURCE_GREF);
    run(c, "gref of dom 1234", op, GNTST_BAD_DOMAIN);
    let hole = GnttabCopyPtr { u: env.x0 + 8, ..by_gfn(P1, 0) };
    run(c, "gmfn of a P2M hole", copy_op(hole, by_gfn(P2, 0), 8, 0), GNTST_BAD_PAGE);

    // Several operations in one call: each gets its own status.
    let mut ops = [
        copy_op(by_gfn(P1, 0), by_gfn(P2, 0), 8, 0),
        copy_op(by_gfn(P1, 4095), by_gfn(P2, 0), 8, 0),
        copy_op(by_gfn(P1, 8), by_gfn(P2, 8), 8, 0),
    ];
    c.rc("copy x3 rc", hypercall::grant_table_op(GNTTABOP_COPY, &mut ops), 0);
    for (i, want) in [GNTST_OKAY, GNTST_BAD_COPY_ARG, GNTST_OKAY].into_iter().enumerate() {
        c.st(format_args!("copy x3 status[{i}]"), ops[i].status, want);
    }
    c.that("copy x3 data", PAGES.bytes_eq(P1, 0, P2, 0, 16), "differs");
    f.clear(REF_COPY);
    f.clear(REF_RO);
    c.rc("remove g0 (cleanup)", remove(g), 0);
}

/// GNTTABOP_cache_flush on our own page (dom0 is direct-mapped: its guest-physical address is
/// the machine address the operation takes), and the arguments Xen refuses.
fn cache_flush(c: &mut Check) {
    let own = PAGES.gfn(P1) * PAGE;
    let run = |c: &mut Check, what: &str, cur_ref: u64, op: GnttabCacheFlush, want: i64| {
        let ops = [op];
        let cmd = GNTTABOP_CACHE_FLUSH | cur_ref << GNTTABOP_CONTINUATION_ARG_SHIFT;
        // SAFETY: one cache-flush operation, which the hypervisor only reads.
        let rc = unsafe { hypercall::hypercall3(hc::GRANT_TABLE_OP, cmd, hypercall::va(&ops), 1) };
        c.rc(what, rc, want)
    };
    let op = |a: u64, offset: u16, length: u16, op: u32| GnttabCacheFlush { a, offset, length, op };
    let both = GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL;
    run(c, "clean a whole own page", 0, op(own, 0, 4096, GNTTAB_CACHE_CLEAN), 0);
    run(c, "clean+invalidate 64 bytes (address low bits ignored)", 0, op(own + 0x10, 64, 64, both), 0);
    run(c, "invalidate the last byte", 0, op(own, 4095, 1, GNTTAB_CACHE_INVAL), 0);
    run(c, "offset 4096", 0, op(own, 4096, 0, GNTTAB_CACHE_CLEAN), -EINVAL);
    run(c, "length 4097", 0, op(own, 0, 4097, GNTTAB_CACHE_CLEAN), -EINVAL);
    run(c, "offset+length > 4096", 0, op(own, 4000, 97, GNTTAB_CACHE_CLEAN), -EINVAL);
    run(c, "unknown op bit", 0, op(own, 0, 64, 1 << 2), -EINVAL);
    run(c, "by grant reference", 0, op(7, 0, 64, GNTTAB_CACHE_SOURCE_GREF | GNTTAB_CACHE_CLEAN), -EINVAL);
    run(c, "length 0", 0, op(own, 0, 0, GNTTAB_CACHE_CLEAN), 0);
    run(c, "op 0", 0, op(own, 0, 64, 0), 0);
    run(c, "length 0 while resuming a scan", 1, op(own, 0, 0, GNTTAB_CACHE_CLEAN), -EILSEQ);
    run(c, "an address beyond RAM", 0, op(0xff_ffff_f000, 0, 64, GNTTAB_CACHE_CLEAN), -EINVAL);
}

/// A Raspberry Pi's VideoCore mailbox (`brcm,bcm2835-mbox`, a child of `/soc`), read from our
/// device tree: the CPU address of its registers (its `reg` through `/soc` `ranges`) and the
/// `/soc` `dma-ranges` windows (VideoCore bus address, CPU address, size).
struct Mailbox {
    regs: u64,
    dma: [(u64, u64, u64); 4],
    windows: usize,
}

/// Mailbox registers: ARM <- VideoCore (0) and ARM -> VideoCore (1).
const MAIL0_READ: u64 = 0x00;
const MAIL0_STATUS: u64 = 0x18;
const MAIL1_WRITE: u64 = 0x20;
const MAIL1_STATUS: u64 = 0x38;
const MAIL_FULL: u32 = 1 << 31;
const MAIL_EMPTY: u32 = 1 << 30;
/// The property channel (ARM to VideoCore).
const CHANNEL_PROPERTY: u32 = 8;
/// Property tag "get ARM memory": base and size of the RAM the ARM cores own.
const TAG_GET_ARM_MEMORY: u32 = 0x0001_0005;
const RESPONSE_OK: u32 = 0x8000_0000;
const REF_DMA: u32 = 21;

/// The page the VideoCore reads the request from and writes its reply to.
static MBOX: Pages<1> = Pages::new();

fn be_cells(v: &[u8], n: usize) -> Option<u64> {
    let cell = |i: usize| v.get(4 * i..4 * i + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64);
    match n {
        1 => cell(0),
        2 => Some(cell(0)? << 32 | cell(1)?),
        _ => None,
    }
}

impl Mailbox {
    fn find(p: &Platform) -> Option<Mailbox> {
        // SAFETY: the device tree the hypervisor handed us, in our RAM (mapped), never written.
        let blob = unsafe { core::slice::from_raw_parts(p.dtb.base as *const u8, p.dtb.size as usize) };
        let fdt = fdt::Fdt::new(blob).ok()?;
        let cells = |n: &fdt::node::FdtNode, name: &str, dflt: usize| {
            n.property(name).and_then(|v| be_cells(v.value, 1)).map_or(dflt, |c| c as usize)
        };
        let root_ac = cells(&fdt.find_node("/")?, "#address-cells", 2);
        let soc = fdt.find_node("/soc")?;
        let (ac, sc) = (cells(&soc, "#address-cells", 2), cells(&soc, "#size-cells", 1));
        let mbox =
            soc.children().find(|n| n.compatible().is_some_and(|c| c.all().any(|s| s == "brcm,bcm2835-mbox")))?;
        let bus = be_cells(mbox.property("reg")?.value, ac)?;
        // (child, parent, size) entries of a ranges-like property of /soc
        let entries = |name: &str| {
            let v = soc.property(name).map_or(&[][..], |p| p.value);
            let step = 4 * (ac + root_ac + sc);
            v.chunks_exact(step).filter_map(move |e| {
                Some((be_cells(e, ac)?, be_cells(&e[4 * ac..], root_ac)?, be_cells(&e[4 * (ac + root_ac)..], sc)?))
            })
        };
        let regs = entries("ranges").find(|&(c, _, s)| bus >= c && bus - c < s).map(|(c, p, _)| p + (bus - c))?;
        let mut mb = Mailbox { regs, dma: [(0, 0, 0); 4], windows: 0 };
        for w in entries("dma-ranges").take(4) {
            mb.dma[mb.windows] = w;
            mb.windows += 1;
        }
        Some(mb)
    }

    /// The VideoCore bus address of CPU address `pa`, if a DMA window covers it.
    fn bus_address(&self, pa: u64) -> Option<u64> {
        self.dma[..self.windows].iter().find(|&&(_, p, s)| pa >= p && pa - p < s).map(|&(c, p, _)| c + (pa - p))
    }

    fn read(&self, reg: u64) -> u32 {
        // SAFETY: a mailbox register, mapped Device-nGnRE by `mailbox_dma`; 32-bit accesses.
        unsafe { ((self.regs + reg) as *const u32).read_volatile() }
    }

    fn write(&self, reg: u64, v: u32) {
        // SAFETY: as in `read`.
        unsafe { ((self.regs + reg) as *mut u32).write_volatile(v) }
    }

    /// Wait (bounded) until `reg` has `bit` clear.
    fn wait_clear(&self, reg: u64, bit: u32) -> bool {
        (0..2_000_000).any(|_| self.read(reg) & bit == 0)
    }
}

/// Clean and invalidate `[va, va + len)` to the point of coherency: the VideoCore's accesses
/// do not snoop the ARM caches on the real board.
fn dcache_clean_inval(va: u64, len: u64) {
    let mut a = va & !15;
    while a < va + len {
        // SAFETY: cache maintenance of our own mapped RAM; no data changes.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += 16;
    }
    // SAFETY: a barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

fn mbox_word(i: usize) -> *mut u32 {
    (MBOX.addr(0) + 4 * i as u64) as *mut u32
}

/// 16. (Raspberry Pi) Our RAM is where a DMA master expects it: we ask the VideoCore firmware,
///     through the mailbox (MMIO at its machine address), for the ARM memory; it reads the
///     request from and writes the reply to the machine address it derives from the bus
///     address we give it, which is our buffer's guest-physical address translated by
///     `dma-ranges`. The reply landing in our buffer proves guest physical == machine
///     physical there. A grant mapping of that page then gives `dev_bus_addr` = that address.
fn mailbox_dma(c: &mut Check, env: &Env, mb: &Mailbox) {
    let buf = MBOX.addr(0);
    let Some(bus) = mb.bus_address(buf) else {
        granite_guests::println!(
            "[granite-test] note mailbox_dma: buffer {buf:#x} is outside every DMA window: skipped"
        );
        return;
    };
    let page = mb.regs & !(PAGE - 1);
    mmu::map(page, PAGE, mmu::Attr::Device);
    let request = [32, 0, TAG_GET_ARM_MEMORY, 8, 0, 0, 0, 0];
    for (i, w) in request.into_iter().enumerate() {
        // SAFETY: our own page; the VideoCore reads it only after the write below.
        unsafe { mbox_word(i).write_volatile(w) };
    }
    dcache_clean_inval(buf, 32);
    // Drain stale replies, then post ours.
    for _ in 0..16 {
        if mb.read(MAIL0_STATUS) & MAIL_EMPTY != 0 {
            break;
        }
        mb.read(MAIL0_READ);
    }
    if !c.that("mailbox accepts a message", mb.wait_clear(MAIL1_STATUS, MAIL_FULL), "always full") {
        return;
    }
    let msg = (bus as u32 & !0xf) | CHANNEL_PROPERTY;
    mb.write(MAIL1_WRITE, msg);
    if !c.that("the VideoCore answers", mb.wait_clear(MAIL0_STATUS, MAIL_EMPTY), "no reply") {
        return;
    }
    c.eq("reply names our buffer's bus address", Hex(mb.read(MAIL0_READ) as u64), Hex(msg as u64));
    dcache_clean_inval(buf, 32);
    // SAFETY: our own page, read after the VideoCore is done with it.
    let word = |i: usize| unsafe { mbox_word(i).read_volatile() };
    let ok = c.eq(
        "reply written at our guest-physical address (response code)",
        Hex(word(1) as u64),
        Hex(RESPONSE_OK as u64),
    );
    c.eq("tag response (8 bytes)", Hex(word(4) as u64), Hex((RESPONSE_OK | 8) as u64));
    let (base, size) = (word(5) as u64, word(6) as u64);
    c.that(
        "our buffer lies in the ARM memory the firmware reports",
        buf >= base && buf - base < size,
        format_args!("{buf:#x} outside {base:#x}+{size:#x}"),
    );
    if ok {
        granite_guests::println!(
            "[granite-test] note mailbox_dma: the VideoCore (DMA at bus {bus:#x}) replied into guest-physical \
             {buf:#x}: machine address == guest-physical; ARM memory {base:#x}-{:#x}",
            base + size
        );
    }

    // The grant mapping of the page the DMA master wrote: dev_bus_addr is its machine address.
    if !c.rc("frame 0 -> g0", add_gt(0, env.g0), 0) {
        return;
    }
    let f = frame_at(env.g0);
    f.grant(REF_DMA, GTF_PERMIT_ACCESS, 0, MBOX.gfn(0) as u32);
    let h = gaddr(env.x0 + 0x10);
    let (rc, m) = map_grant_ref(h, GNTMAP_HOST_MAP, REF_DMA, 0);
    c.rc("map rc", rc, 0);
    c.st("map status", m.status, GNTST_OKAY);
    c.eq("dev_bus_addr = the machine address the VideoCore used", Hex(m.dev_bus_addr), Hex(buf));
    if m.status == GNTST_OKAY {
        expect_read(c, "through the grant mapping", h + 16, (word(5) as u64) << 32 | word(4) as u64);
        let (rc, st) = unmap_grant_ref(h, 0, m.handle);
        c.rc("unmap rc", rc, 0);
        c.st("unmap status", st, GNTST_OKAY);
    }
    f.clear(REF_DMA);
    c.rc("remove g0 (cleanup)", remove(env.g0), 0);
}
