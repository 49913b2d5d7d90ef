//! Cross-domain grants, end to end: the same guest plays both sides, chosen by its boot
//! arguments (`role=domu` or `role=dom0`).
//!
//! The domU grants pages to dom0 (v1 entries, `GTF_permit_access`, domid 0) and both sides
//! synchronise by polling a granted mailbox page; they also signal each other through an
//! interdomain event channel (step 4):
//!
//! 1. `map_read_reply_unmap`: dom0 maps the data page with `GNTMAP_host_map` in an extended
//!    region, checks `dev_bus_addr` (page aligned, outside dom0's RAM, the same for two
//!    mappings of the grant), reads the domU's pattern, writes a reply, unmaps, and the old
//!    address faults; the domU then sees the reply and `GTF_reading`/`GTF_writing` cleared.
//! 2. `read_only_grant`: a read-only grant mapped read-only reads fine and a write faults; a
//!    writable mapping of it is refused.
//! 3. `revoke_while_mapped`: the domU clears an entry dom0 maps (a granter "revoking"); the
//!    mapping stays valid until dom0 unmaps it (Xen's answer). While the grant stays pinned a
//!    further map of it still succeeds (Xen only rechecks the entry of an unpinned grant);
//!    once every mapping is gone, a new map of the cleared entry fails.
//! 4. Event channels (`granite_guests::evtchn`, interrupt driven): each side maps its
//!    `shared_info` and enables the event-channel PPI (`evtchn_setup`, `domu_evtchn_setup`);
//!    the domU allocates an unbound port for dom0 and publishes its number in the mailbox.
//!    `evtchn_interdomain_bounce`: dom0 binds it and sends [`BOUNCES`] notifications one at
//!    a time; the domU's upcall handler counts each and sends one back, which dom0's handler
//!    counts (dom0 waits for each in WFI, a lost event fails the run after a timeout). Then
//!    each side checks its count (`domu_evtchn_bounce`: exactly [`BOUNCES`], nothing on a
//!    port without a callback), dom0 closes its end (a send on it is `-EINVAL`), and the
//!    domU sees its port unbound again, a send on it dropped (0) and closes it
//!    (`domu_evtchn_after_peer_close`).
//! 5. `granter_crash_keeps_page`: dom0 maps a page, the domU (with a second vCPU spinning)
//!    crashes; dom0 sees it gone, still reads the page through its mapping (nothing freed under
//!    its feet), unmaps; the hypervisor frees the domU's pages then (its log says so).
//!
//! Every step also runs the audit hypercall when the hypervisor offers it.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};
use granite_guests::exception::irq_unmask;
use granite_guests::hypercall::{self, map_grant_ref, query_size, unmap_grant_ref};
use granite_guests::report::{Check, Hex, fatal, finish, scenario};
use granite_guests::{GrantFrameV1, PAGE_SIZE as PAGE, Pages, Platform, probe_read, probe_write};
use granite_guests::{evtchn, gic, smp, timer};
use xen_abi::errno::EINVAL;
use xen_abi::evtchn::{EVTCHNSTAT_INTERDOMAIN, EVTCHNSTAT_UNBOUND};
use xen_abi::gnttab::*;
use xen_abi::memory::XENMAPSPACE_GRANT_TABLE;
use xen_abi::sched::SHUTDOWN_CRASH;
use xen_abi::*;

granite_guests::entry!(main);

const DOMU: DomId = 1;
// Grant references of the domU's pages.
const REF_MAIL: u32 = 8;
const REF_RO: u32 = 9;
const REF_REVOKE: u32 = 10;
const REF_CRASH: u32 = 11;
const REF_DATA: u32 = 12;
// The domU's pages.
static PAGES: Pages<5> = Pages::new();
const MAIL: usize = 0;
const DATA: usize = 1;
const RO: usize = 2;
const REVOKE: usize = 3;
const CRASH: usize = 4;
// Mailbox words (byte offsets in the mail page).
const MAGIC: u64 = 0;
const DOMU_STATE: u64 = 8;
const DOM0_STATE: u64 = 16;
/// The domU's unbound port for dom0 (written before DOMU_STATE 1; `NO_PORT` if it has none).
const EV_PORT: u64 = 24;
/// Event channels, dom0's side: 1 = bound, 2 = its port closed.
const EV_DOM0: u64 = 32;
/// Event channels, the domU's side: 1 = counted every bounce, 2 = its port closed.
const EV_DOMU: u64 = 40;
const NO_PORT: u64 = u64::MAX;
const MAIL_MAGIC: u64 = 0x6772_616e_6974_6531; // "granite1"
// Patterns.
const DATA_PATTERN: u64 = 0xd0d0_0001_1111_2222;
const REPLY: u64 = 0x5e5e_0000_dead_beef;
const RO_PATTERN: u64 = 0x7070_0002_3333_4444;
const REVOKED: u64 = 0x4e4e_0003_5555_6666;
const CRASH_PATTERN: u64 = 0xc4c4_0004_7777_8888;
/// Polling rounds (each a `sched_yield` hypercall) before a side gives up waiting.
const PATIENCE: u64 = 2_000_000;
/// Notifications each side sends in `evtchn_interdomain_bounce`.
const BOUNCES: u64 = 1000;
/// How long dom0 waits for each reply, and the domU for all of them (microseconds).
const REPLY_TIMEOUT_US: u64 = 2_000_000;
const ALL_TIMEOUT_US: u64 = 60_000_000;

/// Events each side's upcall handler counted on its port.
static RECEIVED: AtomicU64 = AtomicU64::new(0);

/// dom0's callback: count the reply.
fn dom0_on_event(_port: u32) {
    RECEIVED.store(RECEIVED.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// The domU's callback: count the notification and send one back.
fn domu_on_event(port: u32) {
    RECEIVED.store(RECEIVED.load(Ordering::Relaxed) + 1, Ordering::Release);
    let rc = evtchn::send(port);
    if rc != 0 {
        fatal(format_args!("domU: send on port {port} from the upcall handler: {rc}"));
    }
}

/// The GFN `shared_info` goes to: the last page of the last extended region (unused by the
/// scenarios, in our identity map).
fn shared_info_gfn(p: &Platform) -> u64 {
    let Some(e) = p.extended.last() else { fatal(format_args!("xdom: no extended region for shared_info")) };
    e.end() / PAGE - 1
}

/// The GIC and event channels on the boot CPU (before any secondary starts); IRQs unmasked.
fn evtchn_setup(c: &mut Check, p: &Platform) -> bool {
    let g = match gic::init(p) {
        Ok(g) => g,
        Err(e) => {
            c.that("gic::init", false, format_args!("{e:?}"));
            return false;
        }
    };
    if !c.that("GIC CPU interface", g.cpu_init(), "no redistributor for this CPU") {
        return false;
    }
    match evtchn::init(p, shared_info_gfn(p)) {
        Ok(irq) => c.note(format_args!("event-channel interrupt INTID {irq}")),
        Err(e) => {
            c.that("evtchn::init", false, format_args!("{e:?}"));
            return false;
        }
    }
    if let Err(e) = evtchn::cpu_init(true) {
        c.that("evtchn::cpu_init", false, format_args!("{e:?}"));
        return false;
    }
    irq_unmask();
    true
}

fn main(p: &Platform) {
    if p.bootargs.split_ascii_whitespace().any(|w| w == "role=domu") {
        domu(p)
    } else if p.bootargs.split_ascii_whitespace().any(|w| w == "role=dom0") {
        dom0(p)
    } else {
        fatal(format_args!("xdom: say role=dom0 or role=domu in the boot arguments"))
    }
}

/// A word of a page mapped at guest address `va`.
fn rd(va: u64) -> u64 {
    // SAFETY: `va` is a mapped page outside every Rust object (a grant mapping in an extended
    // region, or one of our own pages); an unexpected fault ends the run as failed.
    unsafe { core::ptr::read_volatile(va as *const u64) }
}
fn wr(va: u64, v: u64) {
    // SAFETY: as for `rd`.
    unsafe { core::ptr::write_volatile(va as *mut u64, v) }
}

fn wait(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..PATIENCE {
        if ready() {
            return;
        }
        hypercall::sched_yield();
    }
    fatal(format_args!("xdom: gave up waiting for {what}"))
}

/// Polls the mailbox (with `sched_yield`) until `ready` or `us` microseconds passed.
fn poll(us: u64, mut ready: impl FnMut() -> bool) -> bool {
    let end = timer::now() + timer::ticks_from_us(us);
    while timer::now() < end {
        if ready() {
            return true;
        }
        hypercall::sched_yield();
    }
    ready()
}

fn audit(c: &mut Check, when: &str) {
    // SAFETY: the audit hypercall takes no argument.
    let r = unsafe { hypercall::hypercall5(xen_abi::hypercall::GRANITE_AUDIT, 0, 0, 0, 0, 0) };
    if r != -xen_abi::errno::ENOSYS {
        c.rc(format_args!("audit {when}: violations"), r, 0);
    }
}

// ---- the granting domU ----------------------------------------------------------------------

fn domu(p: &Platform) {
    let Some(grant) = p.grant_region else { fatal(format_args!("domU: no grant-table region")) };
    let mail = PAGES.addr(MAIL);
    let gt = {
        let g0 = grant.base / PAGE;
        if hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_GRANT_TABLE, 0, g0) != 0 {
            fatal(format_args!("domU: cannot map grant frame 0"));
        }
        // SAFETY: grant frame 0 was just mapped at the start of the grant region, which is
        // outside every Rust object.
        unsafe { GrantFrameV1::at(grant.base) }
    };
    // Event channels, before the second vCPU starts (the GIC set-up is the boot CPU's).
    let mut port = NO_PORT;
    scenario("domu_evtchn_setup", |c| {
        if !evtchn_setup(c, p) {
            return;
        }
        match evtchn::alloc_unbound(0, domu_on_event) {
            Ok(pt) => {
                let (rc, st) = evtchn::status(pt);
                c.rc("status of the unbound port", rc, 0);
                c.eq("its state", st.status, EVTCHNSTAT_UNBOUND);
                c.eq("the domain that may bind it", st.remote_dom(), 0);
                port = pt as u64;
            }
            Err(e) => {
                c.rc("alloc_unbound(remote dom0)", e, 0);
            }
        }
    });
    // A second vCPU that only spins: the crash at the end must stop it too.
    smp::start_secondaries(p, 2, |_| {
        loop {
            core::hint::spin_loop();
        }
    });
    for (i, v) in [(DATA, DATA_PATTERN), (RO, RO_PATTERN), (REVOKE, 1), (CRASH, 2)] {
        PAGES.zero(i);
        PAGES.write64(i, 0, v);
    }
    PAGES.zero(MAIL);
    for (r, page, flags) in [
        (REF_MAIL, MAIL, GTF_PERMIT_ACCESS),
        (REF_DATA, DATA, GTF_PERMIT_ACCESS),
        (REF_RO, RO, GTF_PERMIT_ACCESS | GTF_READONLY),
        (REF_REVOKE, REVOKE, GTF_PERMIT_ACCESS),
        (REF_CRASH, CRASH, GTF_PERMIT_ACCESS),
    ] {
        gt.grant(r, flags, 0, PAGES.gfn(page) as u32);
    }
    wr(mail + EV_PORT, port);
    wr(mail + MAGIC, MAIL_MAGIC);
    wr(mail + DOMU_STATE, 1);
    let dom0_at = |s: u64| move || rd(mail + DOM0_STATE) >= s;

    wait("dom0 to use the data page", dom0_at(2));
    scenario("domu_sees_reply_and_flags_cleared", |c| {
        c.eq("reply written by dom0", Hex(PAGES.read64(DATA, 8)), Hex(REPLY));
        c.eq("data entry flags after the unmap", gt.flags(REF_DATA), GTF_PERMIT_ACCESS);
    });
    wait("dom0 to finish with the read-only page", dom0_at(3));
    scenario("domu_read_only_page_untouched", |c| {
        c.eq("read-only page", Hex(PAGES.read64(RO, 0)), Hex(RO_PATTERN));
        c.eq("read-only entry flags after the unmap", gt.flags(REF_RO), GTF_PERMIT_ACCESS | GTF_READONLY);
    });
    wait("dom0 to map the page to revoke", dom0_at(4));
    scenario("domu_revokes_a_mapped_grant", |c| {
        let f = gt.flags(REF_REVOKE);
        c.eq("entry in use while mapped", f & (GTF_READING | GTF_WRITING), GTF_READING | GTF_WRITING);
        gt.clear(REF_REVOKE);
        PAGES.write64(REVOKE, 0, REVOKED);
    });
    wr(mail + DOMU_STATE, 2);
    wait("dom0 to unmap the revoked page", dom0_at(5));
    scenario("domu_revoked_entry_stays_clear", |c| {
        c.eq("revoked entry after dom0's unmap", gt.raw(REF_REVOKE), 0);
    });
    if port != NO_PORT {
        domu_bounce(mail, port as u32);
    }
    wait("dom0 to map the page of the crash test", dom0_at(6));
    PAGES.write64(CRASH, 0, CRASH_PATTERN);
    wr(mail + DOMU_STATE, 3);
    granite_guests::println!("[granite-test] domU: crashing on purpose while dom0 maps its pages");
    hypercall::shutdown(SHUTDOWN_CRASH);
    fatal(format_args!("domU: still running after SCHEDOP_shutdown(crash)"))
}

/// The domU's side of step 4: its handler answers dom0's notifications; then the checks.
fn domu_bounce(mail: u64, port: u32) {
    scenario("domu_evtchn_bounce", |c| {
        let got_all = evtchn::wait_until(ALL_TIMEOUT_US, || RECEIVED.load(Ordering::Acquire) >= BOUNCES);
        c.that(
            "every notification arrived",
            got_all,
            format_args!("{} of {BOUNCES}", RECEIVED.load(Ordering::Acquire)),
        );
        wr(mail + EV_DOMU, 1);
        // Dom0 closes its end once it has every reply: nothing more may arrive meanwhile.
        let closed = poll(ALL_TIMEOUT_US, || rd(mail + EV_DOM0) >= 2);
        c.that("dom0 closed its end", closed, "not within the timeout");
        c.eq("notifications counted by the upcall handler", RECEIVED.load(Ordering::Acquire), BOUNCES);
        let s = evtchn::stats(0);
        c.eq("events on ports without a callback", s.unhandled, 0);
        c.eq("interrupts that were neither events nor the timer", s.stray, 0);
        c.note(format_args!("{} upcalls for {} events", s.upcalls, s.events));
    });
    scenario("domu_evtchn_after_peer_close", |c| {
        let (rc, st) = evtchn::status(port);
        c.rc("status", rc, 0);
        c.eq("the port is unbound again", st.status, EVTCHNSTAT_UNBOUND);
        c.eq("still for dom0", st.remote_dom(), 0);
        c.rc("a send on it (dropped)", evtchn::send(port), 0);
        c.rc("close", evtchn::close(port), 0);
        c.rc("a send on the closed port", evtchn::send(port), -EINVAL);
        evtchn::clear_callback(port);
    });
    wr(mail + EV_DOMU, 2);
}

// ---- dom0, the mapping side -----------------------------------------------------------------

fn dom0(p: &Platform) {
    let Some(ext) = p.extended.first() else { fatal(format_args!("dom0: no extended region")) };
    let h = |i: u64| ext.base + i * PAGE;
    let (h_mail, h_data, h_data2, h_ro, h_rev, h_rev2, h_crash) = (h(0), h(1), h(2), h(3), h(4), h(5), h(6));
    let in_dom0_ram = |a: u64| p.memory.iter().any(|m| a >= m.base && a < m.base + m.size);
    let mut ev_ok = false;
    scenario("evtchn_setup", |c| ev_ok = evtchn_setup(c, p));

    // The domU may not have granted its mailbox yet: retry.
    let mut mail_handle = None;
    wait("the domU's mailbox grant", || {
        let (rc, op) = map_grant_ref(h_mail, GNTMAP_HOST_MAP, REF_MAIL, DOMU);
        if rc == 0 && op.status == GNTST_OKAY {
            mail_handle = Some(op.handle);
        }
        mail_handle.is_some()
    });
    let mail_handle = mail_handle.unwrap();
    wait("the domU's mailbox to be ready", || rd(h_mail + MAGIC) == MAIL_MAGIC && rd(h_mail + DOMU_STATE) >= 1);

    scenario("map_read_reply_unmap", |c| {
        let (rc, a) = map_grant_ref(h_data, GNTMAP_HOST_MAP, REF_DATA, DOMU);
        c.rc("map rc", rc, 0);
        c.st("map status", a.status, GNTST_OKAY);
        let (_, b) = map_grant_ref(h_data2, GNTMAP_HOST_MAP, REF_DATA, DOMU);
        c.st("second map status", b.status, GNTST_OKAY);
        c.that(
            "dev_bus_addr page aligned and not zero",
            a.dev_bus_addr != 0 && a.dev_bus_addr % PAGE == 0,
            Hex(a.dev_bus_addr),
        );
        c.that("dev_bus_addr outside dom0's RAM", !in_dom0_ram(a.dev_bus_addr), Hex(a.dev_bus_addr));
        c.eq("both mappings give the same machine address", Hex(b.dev_bus_addr), Hex(a.dev_bus_addr));
        c.eq("the domU's pattern through the mapping", Hex(rd(h_data)), Hex(DATA_PATTERN));
        c.eq("the second mapping shows the same page", Hex(rd(h_data2)), Hex(DATA_PATTERN));
        wr(h_data + 8, REPLY);
        audit(c, "while mapped");
        // Cache maintenance on the granted page by its machine address: allowed while mapped
        // (what a Linux dom0 does for DMA to a foreign page), refused after the unmap.
        c.rc("cache_flush(clean, dev_bus_addr) while mapped", cache_flush_clean(a.dev_bus_addr), 0);
        c.st("unmap", unmap_grant_ref(h_data, 0, a.handle).1, GNTST_OKAY);
        c.rc("cache_flush while the second mapping stays", cache_flush_clean(a.dev_bus_addr), 0);
        c.st("unmap the second mapping", unmap_grant_ref(h_data2, 0, b.handle).1, GNTST_OKAY);
        c.rc("cache_flush after both unmaps", cache_flush_clean(a.dev_bus_addr), -EINVAL);
        c.that("the old address faults", probe_read(h_data).is_err(), "readable");
        c.st("the handle is gone", unmap_grant_ref(h_data, 0, a.handle).1, GNTST_BAD_HANDLE);
    });
    wr(h_mail + DOM0_STATE, 2);

    scenario("read_only_grant", |c| {
        let (_, w) = map_grant_ref(h_ro, GNTMAP_HOST_MAP, REF_RO, DOMU);
        c.st("writable map of a read-only grant", w.status, GNTST_GENERAL_ERROR);
        let (_, r) = map_grant_ref(h_ro, GNTMAP_HOST_MAP | GNTMAP_READONLY, REF_RO, DOMU);
        c.st("read-only map", r.status, GNTST_OKAY);
        c.eq("read through it", Hex(rd(h_ro)), Hex(RO_PATTERN));
        // SAFETY: the address is a grant mapping in an extended region, no Rust object.
        let w = unsafe { probe_write(h_ro, 0xbad) };
        c.that("a write through it faults", w.is_err(), "the write went through");
        c.st("unmap", unmap_grant_ref(h_ro, 0, r.handle).1, GNTST_OKAY);
        audit(c, "after the read-only mapping");
    });
    wr(h_mail + DOM0_STATE, 3);

    let (_, rev) = map_grant_ref(h_rev, GNTMAP_HOST_MAP, REF_REVOKE, DOMU);
    wr(h_mail + DOM0_STATE, 4);
    wait("the domU to revoke", || rd(h_mail + DOMU_STATE) >= 2);
    scenario("revoke_while_mapped", |c| {
        c.st("map before the revocation", rev.status, GNTST_OKAY);
        c.eq("the mapping still shows the page after the revocation", Hex(rd(h_rev)), Hex(REVOKED));
        let (_, again) = map_grant_ref(h_rev2, GNTMAP_HOST_MAP, REF_REVOKE, DOMU);
        c.st("another map while the grant is pinned", again.status, GNTST_OKAY);
        c.eq("it shows the same page", Hex(rd(h_rev2)), Hex(REVOKED));
        c.st("unmap", unmap_grant_ref(h_rev, 0, rev.handle).1, GNTST_OKAY);
        c.st("unmap the other", unmap_grant_ref(h_rev2, 0, again.handle).1, GNTST_OKAY);
        let (_, after) = map_grant_ref(h_rev2, GNTMAP_HOST_MAP, REF_REVOKE, DOMU);
        c.st("a new map of the revoked entry once unpinned", after.status, GNTST_GENERAL_ERROR);
        audit(c, "after the revocation");
    });
    wr(h_mail + DOM0_STATE, 5);

    if ev_ok {
        dom0_bounce(h_mail);
    }

    let (_, crash) = map_grant_ref(h_crash, GNTMAP_HOST_MAP, REF_CRASH, DOMU);
    wr(h_mail + DOM0_STATE, 6);
    wait("the domU to write its last pattern", || rd(h_mail + DOMU_STATE) >= 3);
    wait("the domU to be gone", || query_size(DOMU).1.status == GNTST_BAD_DOMAIN);
    scenario("granter_crash_keeps_page", |c| {
        c.st("map before the crash", crash.status, GNTST_OKAY);
        c.eq("the page after the crash, through the mapping", Hex(rd(h_crash)), Hex(CRASH_PATTERN));
        c.eq("the mailbox after the crash", Hex(rd(h_mail + MAGIC)), Hex(MAIL_MAGIC));
        audit(c, "with the dead domain's pages still mapped");
        c.st("unmap the page", unmap_grant_ref(h_crash, 0, crash.handle).1, GNTST_OKAY);
        c.st("unmap the mailbox", unmap_grant_ref(h_mail, 0, mail_handle).1, GNTST_OKAY);
        let (_, gone) = map_grant_ref(h_crash, GNTMAP_HOST_MAP, REF_CRASH, DOMU);
        c.st("a new map of the dead domain's grant", gone.status, GNTST_BAD_DOMAIN);
        audit(c, "after the last unmap");
    });
    finish()
}

/// Dom0's side of step 4: bind the domU's port, send one notification at a time and wait
/// for each reply; then close.
fn dom0_bounce(h_mail: u64) {
    scenario("evtchn_interdomain_bounce", |c| {
        let remote = rd(h_mail + EV_PORT);
        if !c.that("the domU published a port", remote != NO_PORT && remote < 1 << 32, Hex(remote)) {
            return;
        }
        let local = match evtchn::bind_interdomain(DOMU, remote as u32, dom0_on_event) {
            Ok(l) => l,
            Err(e) => {
                c.rc(format_args!("bind_interdomain(d1, port {remote})"), e, 0);
                return;
            }
        };
        // The bind itself sets the new port pending (Xen: for notifications the unbound
        // port may have lost); the handler counts that one first.
        let first = evtchn::wait_until(REPLY_TIMEOUT_US, || RECEIVED.load(Ordering::Acquire) >= 1);
        c.that("the bind's own notification arrived", first, "nothing");
        let base = RECEIVED.load(Ordering::Acquire);
        c.eq("notifications right after the bind", base, 1);
        let (rc, st) = evtchn::status(local);
        c.rc("status", rc, 0);
        c.eq("state", st.status, EVTCHNSTAT_INTERDOMAIN);
        c.eq("remote domain", st.remote_dom(), DOMU);
        c.eq("remote port", st.u[1] as u64, remote);
        wr(h_mail + EV_DOM0, 1);
        let t0 = timer::now();
        for i in 0..BOUNCES {
            let rc = evtchn::send(local);
            if rc != 0 {
                c.rc(format_args!("send {i}"), rc, 0);
                break;
            }
            if !evtchn::wait_until(REPLY_TIMEOUT_US, || RECEIVED.load(Ordering::Acquire) > base + i) {
                c.that(format_args!("reply {i} within {} ms", REPLY_TIMEOUT_US / 1000), false, "lost");
                break;
            }
        }
        let us = timer::us_from_ticks(timer::now() - t0);
        granite_guests::println!("[granite-test] dom0: {BOUNCES} round trips with the domU in {us} us");
        let done = poll(ALL_TIMEOUT_US, || rd(h_mail + EV_DOMU) >= 1);
        c.that("the domU counted every notification", done, "not within the timeout");
        c.eq("replies counted by the upcall handler", RECEIVED.load(Ordering::Acquire) - base, BOUNCES);
        c.rc("close", evtchn::close(local), 0);
        c.rc("a send on the closed port", evtchn::send(local), -EINVAL);
        evtchn::clear_callback(local);
        let s = evtchn::stats(0);
        c.eq("events on ports without a callback", s.unhandled, 0);
        c.eq("interrupts that were neither events nor the timer", s.stray, 0);
        wr(h_mail + EV_DOM0, 2);
        let closed = poll(ALL_TIMEOUT_US, || rd(h_mail + EV_DOMU) >= 2);
        c.that("the domU closed its port", closed, "not within the timeout");
    });
}

/// GNTTABOP_cache_flush: clean the first 64 bytes of the page at machine address `ma`.
fn cache_flush_clean(ma: u64) -> i64 {
    let mut ops = [GnttabCacheFlush { a: ma, offset: 0, length: 64, op: GNTTAB_CACHE_CLEAN }];
    hypercall::grant_table_op(GNTTABOP_CACHE_FLUSH, &mut ops)
}
