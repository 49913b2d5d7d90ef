//! Event channels for the test guests: the 2-level ABI, interrupt driven.
//!
//! **Set-up.** [`init`] (boot CPU, after [`crate::gic::init`] and before any secondary
//! starts) maps `shared_info` (`XENMAPSPACE_shared_info` through `add_to_physmap`) at a GFN
//! the caller picks — an unused one, e.g. a page of an extended region (our identity map
//! covers those) — and takes the event-channel interrupt from the device tree's `/hypervisor`
//! `interrupts` ([`crate::Platform::evtchn_irq`]). Each CPU then calls [`cpu_init`] after its
//! own [`crate::gic::Gic::cpu_init`]: vCPU 0 keeps the `vcpu_info` in `shared_info`; on Arm
//! that is the only one there (`XEN_LEGACY_MAX_VCPUS` = 1), so every other vCPU registers one
//! in a page of ours (`VCPUOP_register_vcpu_info`). It enables the event-channel PPI and the
//! virtual timer's (used for timeouts) in this CPU's redistributor and installs
//! [`irq_handler`] unless the guest has its own handler that calls [`upcall`].
//!
//! **Delivery.** [`irq_handler`] acknowledges the interrupt; for the event-channel PPI it
//! runs [`upcall`]: clear `evtchn_upcall_pending`, swap `evtchn_pending_sel` to zero, and for
//! each selected word of the pending bitmap take the bits that are pending, not masked and
//! bound to this vCPU, clear each pending bit (atomically: the hypervisor sets bits in the same
//! words) and call that port's callback ([`set_callback`]); again while the hypervisor raised
//! `evtchn_upcall_pending` meanwhile. Then it EOIs. Which ports belong to which vCPU is
//! recorded here when they are bound (a new port notifies vCPU 0; [`bind_vcpu`] moves it), so
//! that one vCPU's scan never takes another's events out from under it (the bitmap is
//! shared). Callbacks run in the interrupt handler, IRQs masked, and may send events.
//!
//! **Waiting.** [`wait_until`] sleeps in WFI until a condition holds (interrupts are taken
//! between two WFIs) or a timeout passes: the virtual timer is armed at the deadline so that a
//! lost event cannot leave the vCPU asleep for ever.
//!
//! Ports below [`MAX_PORTS`] can have callbacks and be scanned; events on higher ones stay
//! pending. Only the 2-level ABI is used (no `EVTCHNOP_init_control`).

use crate::exception::{ExceptionFrame, irq_mask, irq_unmask, irqs_masked, set_irq_handler};
use crate::gic;
use crate::hypercall::{self, hypercall3};
use crate::mem::Pages;
use crate::platform::Platform;
use crate::smp::{self, MAX_CPUS};
use crate::timer::{self, CTL_ENABLE, CTL_IMASK, VTIMER_INTID};
use core::mem::offset_of;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use xen_abi::evtchn::*;
use xen_abi::memory::XENMAPSPACE_SHARED_INFO;
use xen_abi::vcpuop::VCPUOP_REGISTER_VCPU_INFO;
use xen_abi::{
    DOMID_SELF, DomId, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVcpu, EvtchnPort, EvtchnStatus, SharedInfo,
    VcpuInfo, VcpuRegisterVcpuInfo, XEN_PAGE_SIZE,
};

/// Ports that can have callbacks (and are scanned).
pub const MAX_PORTS: usize = 1024;
const WORDS: usize = MAX_PORTS / 64;
/// Rounds of the scan per interrupt before leaving the rest to the next one.
const MAX_ROUNDS: u32 = 16;
/// The slot of each registered `vcpu_info` in [`VCPU_INFOS`] (48 bytes, 64-byte aligned).
const VCPU_INFO_SLOT: u64 = 64;
const _: () = assert!(size_of::<VcpuInfo>() as u64 <= VCPU_INFO_SLOT && MAX_CPUS as u64 * VCPU_INFO_SLOT <= 4096);

/// Why set-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The device tree names no event-channel interrupt.
    NoInterrupt,
    /// `add_to_physmap(shared_info)` failed with this.
    MapSharedInfo(i64),
    /// `VCPUOP_register_vcpu_info` failed with this.
    RegisterVcpuInfo(i64),
    /// [`init`] was not called.
    NotInitialised,
}

/// `shared_info`'s address (0 until [`init`]).
static SHARED: AtomicU64 = AtomicU64::new(0);
/// The event-channel interrupt (INTID; 0 until [`init`]).
static IRQ: AtomicU32 = AtomicU32::new(0);
/// The `vcpu_info` registered for vCPUs other than 0.
static VCPU_INFOS: Pages<1> = Pages::new();
/// A `fn(u32)` per port, stored as an address (0 = none).
static CALLBACKS: [AtomicUsize; MAX_PORTS] = [const { AtomicUsize::new(0) }; MAX_PORTS];
/// The handler [`irq_handler`] calls for other interrupts: a `fn(u32, u64)` (0 = none).
static OTHER: AtomicUsize = AtomicUsize::new(0);

/// Per-vCPU state and statistics.
struct Cpu {
    /// Its `vcpu_info`'s address (0 until [`cpu_init`]).
    vcpu_info: AtomicU64,
    /// The ports bound to it (bit p of word w = port 64 w + p).
    ports: [AtomicU64; WORDS],
    upcalls: AtomicU64,
    events: AtomicU64,
    /// Events on ports without a callback.
    unhandled: AtomicU64,
    /// Virtual timer interrupts taken, and the counter at the vector of the last one.
    timer_irqs: AtomicU64,
    timer_at: AtomicU64,
    /// Interrupts neither ours nor the timer's, with no other handler installed.
    stray: AtomicU64,
    spurious: AtomicU64,
}

static CPUS: [Cpu; MAX_CPUS] = [const {
    Cpu {
        vcpu_info: AtomicU64::new(0),
        ports: [const { AtomicU64::new(0) }; WORDS],
        upcalls: AtomicU64::new(0),
        events: AtomicU64::new(0),
        unhandled: AtomicU64::new(0),
        timer_irqs: AtomicU64::new(0),
        timer_at: AtomicU64::new(0),
        stray: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
    }
}; MAX_CPUS];

fn me() -> &'static Cpu {
    &CPUS[smp::cpu_id().min(MAX_CPUS - 1)]
}

/// A counter only its own CPU writes (no read-modify-write: no exclusives needed).
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Release);
}

// ---- hypercalls -----------------------------------------------------------------------------

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
pub fn op<T>(cmd: u32, arg: &mut T) -> i64 {
    // SAFETY: `arg` is an exclusively borrowed structure of the type `cmd` takes (the
    // caller's pick of T); the hypervisor reads and writes only that.
    unsafe { hypercall3(xen_abi::hypercall::EVENT_CHANNEL_OP, cmd as u64, arg as *mut T as u64, 0) }
}

/// `HYPERVISOR_vcpu_op(cmd, vcpu, arg)`.
pub fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: &mut T) -> i64 {
    // SAFETY: as for `op`.
    unsafe { hypercall3(xen_abi::hypercall::VCPU_OP, cmd as u64, vcpu as u64, arg as *mut T as u64) }
}

fn record_vcpu(port: u32, vcpu: usize) {
    if (port as usize) < MAX_PORTS {
        let (w, b) = (port as usize / 64, 1u64 << (port % 64));
        for (i, c) in CPUS.iter().enumerate() {
            if i == vcpu {
                c.ports[w].fetch_or(b, Ordering::AcqRel);
            } else {
                c.ports[w].fetch_and(!b, Ordering::AcqRel);
            }
        }
    }
}

fn forget(port: u32) {
    if (port as usize) < MAX_PORTS {
        let (w, b) = (port as usize / 64, 1u64 << (port % 64));
        for c in CPUS.iter() {
            c.ports[w].fetch_and(!b, Ordering::AcqRel);
        }
    }
}

/// Runs `f` with IRQs masked (restored afterwards): a new port's ownership and callback are
/// recorded before its first event can be taken.
fn masked<R>(f: impl FnOnce() -> R) -> R {
    let was = irqs_masked();
    irq_mask();
    let r = f();
    if !was {
        irq_unmask();
    }
    r
}

/// A port the hypervisor just gave us: notifying vCPU 0, events to `f`.
fn adopt(port: u32, f: fn(u32)) {
    record_vcpu(port, 0);
    if (port as usize) < MAX_PORTS {
        set_callback(port, f);
    }
}

/// `EVTCHNOP_alloc_unbound`: a port of ours that domain `remote` may bind to (notifying our
/// vCPU 0, its events going to `f`). Returns the port or the hypercall's error.
pub fn alloc_unbound(remote: DomId, f: fn(u32)) -> Result<u32, i64> {
    masked(|| {
        let mut a = EvtchnAllocUnbound { dom: DOMID_SELF, remote_dom: remote, port: 0 };
        match op(EVTCHNOP_ALLOC_UNBOUND, &mut a) {
            0 => {
                adopt(a.port, f);
                Ok(a.port)
            }
            e => Err(e),
        }
    })
}

/// `EVTCHNOP_bind_interdomain` to `remote_port` of `remote` (which must have allocated it for
/// us; `DOMID_SELF` for a loopback): our new port (notifying vCPU 0, its events going to
/// `f`), or the error. The hypervisor sets the new port pending at once (Xen does, for
/// notifications the unbound remote port may have lost), so `f` sees one event straight
/// away.
pub fn bind_interdomain(remote: DomId, remote_port: u32, f: fn(u32)) -> Result<u32, i64> {
    masked(|| {
        let mut b = EvtchnBindInterdomain { remote_dom: remote, _pad: 0, remote_port, local_port: 0 };
        match op(EVTCHNOP_BIND_INTERDOMAIN, &mut b) {
            0 => {
                adopt(b.local_port, f);
                Ok(b.local_port)
            }
            e => Err(e),
        }
    })
}

/// `EVTCHNOP_send`.
pub fn send(port: u32) -> i64 {
    op(EVTCHNOP_SEND, &mut EvtchnPort { port })
}

/// `EVTCHNOP_close` (the port's callback stays until [`clear_callback`]).
pub fn close(port: u32) -> i64 {
    let rc = op(EVTCHNOP_CLOSE, &mut EvtchnPort { port });
    if rc == 0 {
        forget(port);
    }
    rc
}

/// `EVTCHNOP_unmask`: clears the port's mask bit; the hypervisor raises an upcall if it is
/// pending.
pub fn unmask(port: u32) -> i64 {
    op(EVTCHNOP_UNMASK, &mut EvtchnPort { port })
}

/// `EVTCHNOP_bind_vcpu`: the port's events go to `vcpu` from now on.
pub fn bind_vcpu(port: u32, vcpu: u32) -> i64 {
    masked(|| {
        let rc = op(EVTCHNOP_BIND_VCPU, &mut EvtchnBindVcpu { port, vcpu });
        if rc == 0 {
            record_vcpu(port, vcpu as usize);
        }
        rc
    })
}

/// `EVTCHNOP_status` of our port `port`: (result, the structure).
pub fn status(port: u32) -> (i64, EvtchnStatus) {
    let mut s = EvtchnStatus { dom: DOMID_SELF, port, ..Default::default() };
    let rc = op(EVTCHNOP_STATUS, &mut s);
    (rc, s)
}

// ---- shared_info --------------------------------------------------------------------------

/// A 64-bit word of `shared_info` at byte offset `off`.
fn si_word(off: usize) -> &'static AtomicU64 {
    let si = SHARED.load(Ordering::Acquire);
    assert!(si != 0, "evtchn: shared_info not mapped");
    // SAFETY: shared_info is mapped at `si` (identity map, Normal memory) for the rest of the
    // run, outside every Rust object; the word is 8-byte aligned. The hypervisor updates it
    // with atomic instructions too.
    unsafe { &*((si + off as u64) as *const AtomicU64) }
}

fn pending_word(w: usize) -> &'static AtomicU64 {
    si_word(offset_of!(SharedInfo, evtchn_pending) + 8 * w)
}

fn mask_word(w: usize) -> &'static AtomicU64 {
    si_word(offset_of!(SharedInfo, evtchn_mask) + 8 * w)
}

/// Whether `port` is pending in `shared_info`.
pub fn is_pending(port: u32) -> bool {
    pending_word(port as usize / 64).load(Ordering::Acquire) & 1 << (port % 64) != 0
}

/// Whether `port` is masked in `shared_info`.
pub fn is_masked(port: u32) -> bool {
    mask_word(port as usize / 64).load(Ordering::Acquire) & 1 << (port % 64) != 0
}

/// Masks `port` (sets its bit in `evtchn_mask`; no hypercall needed).
pub fn mask(port: u32) {
    mask_word(port as usize / 64).fetch_or(1 << (port % 64), Ordering::SeqCst);
}

/// The address `shared_info` is mapped at (0 before [`init`]).
pub fn shared_info() -> u64 {
    SHARED.load(Ordering::Acquire)
}

/// The event-channel interrupt (0 before [`init`]).
pub fn irq() -> u32 {
    IRQ.load(Ordering::Relaxed)
}

/// Maps `shared_info` at `gfn` and records the event-channel interrupt. Boot CPU, once,
/// after [`crate::gic::init`], before secondaries start.
pub fn init(p: &Platform, gfn: u64) -> Result<u32, Error> {
    let irq = p.evtchn_irq.ok_or(Error::NoInterrupt)?;
    let rc = hypercall::add_to_physmap(DOMID_SELF, XENMAPSPACE_SHARED_INFO, 0, gfn);
    if rc != 0 {
        return Err(Error::MapSharedInfo(rc));
    }
    SHARED.store(gfn * XEN_PAGE_SIZE as u64, Ordering::Release);
    IRQ.store(irq, Ordering::Relaxed);
    Ok(irq)
}

/// This vCPU's part of the set-up (see the module docs): its `vcpu_info` (registered for
/// vCPUs other than 0), the event-channel and virtual-timer PPIs enabled in its
/// redistributor, [`irq_handler`] installed if `install_handler`. Call after
/// [`crate::gic::Gic::cpu_init`]; leaves IRQs as they were (the caller unmasks them).
pub fn cpu_init(install_handler: bool) -> Result<(), Error> {
    let si = SHARED.load(Ordering::Acquire);
    if si == 0 {
        return Err(Error::NotInitialised);
    }
    let cpu = smp::cpu_id();
    let c = me();
    if c.vcpu_info.load(Ordering::Acquire) == 0 {
        let at = if cpu == 0 {
            si + offset_of!(SharedInfo, vcpu_info) as u64
        } else {
            let off = cpu as u64 * VCPU_INFO_SLOT;
            let mut r = VcpuRegisterVcpuInfo { mfn: VCPU_INFOS.gfn(0), offset: off as u32, rsvd: 0 };
            let rc = vcpu_op(VCPUOP_REGISTER_VCPU_INFO, cpu as u32, &mut r);
            if rc != 0 {
                return Err(Error::RegisterVcpuInfo(rc));
            }
            VCPU_INFOS.addr(0) + off
        };
        c.vcpu_info.store(at, Ordering::Release);
    }
    if install_handler {
        set_irq_handler(irq_handler);
    }
    let g = gic::get();
    g.set_priority(irq(), gic::DEFAULT_PRIORITY);
    g.enable(irq());
    timer::set_ctl(0);
    g.enable(VTIMER_INTID);
    Ok(())
}

// ---- callbacks and the upcall ----------------------------------------------------------------

/// Calls `f(port)` for each event on `port` (from the interrupt handler of the vCPU the port
/// is bound to).
pub fn set_callback(port: u32, f: fn(u32)) {
    assert!((port as usize) < MAX_PORTS, "evtchn: port {port} beyond {MAX_PORTS}");
    CALLBACKS[port as usize].store(f as usize, Ordering::Release);
}

pub fn clear_callback(port: u32) {
    if let Some(c) = CALLBACKS.get(port as usize) {
        c.store(0, Ordering::Release);
    }
}

/// Makes [`irq_handler`] call `f(intid, counter at the vector)` for interrupts other than
/// the event-channel and virtual-timer ones (between the acknowledge and the EOI).
pub fn set_other_handler(f: fn(u32, u64)) {
    OTHER.store(f as usize, Ordering::Release);
}

/// The 2-level scan (see the module docs). Call from an IRQ handler that acknowledged the
/// event-channel interrupt, before its EOI.
pub fn upcall() {
    let c = me();
    let vi = c.vcpu_info.load(Ordering::Acquire);
    if vi == 0 {
        return;
    }
    bump(&c.upcalls);
    // SAFETY: `vi` is this vCPU's vcpu_info (in shared_info or our registered page), mapped
    // for the rest of the run, 8-byte aligned; its first byte is evtchn_upcall_pending and
    // the word at 8 evtchn_pending_sel. The hypervisor changes both with atomics.
    let (upcall_pending, sel) = unsafe {
        (
            &*((vi + offset_of!(VcpuInfo, evtchn_upcall_pending) as u64) as *const AtomicU8),
            &*((vi + offset_of!(VcpuInfo, evtchn_pending_sel) as u64) as *const AtomicU64),
        )
    };
    for _ in 0..MAX_ROUNDS {
        upcall_pending.store(0, Ordering::SeqCst);
        let mut words = sel.swap(0, Ordering::SeqCst);
        while words != 0 {
            let w = words.trailing_zeros() as usize;
            words &= words - 1;
            if w >= WORDS {
                continue; // (ports we do not handle: left pending)
            }
            loop {
                let ours = c.ports[w].load(Ordering::Acquire);
                let bits = pending_word(w).load(Ordering::Acquire) & !mask_word(w).load(Ordering::Acquire) & ours;
                if bits == 0 {
                    break;
                }
                let b = bits.trailing_zeros();
                pending_word(w).fetch_and(!(1 << b), Ordering::SeqCst);
                dispatch((w * 64) as u32 + b);
            }
        }
        if upcall_pending.load(Ordering::SeqCst) == 0 {
            break;
        }
    }
}

fn dispatch(port: u32) {
    let c = me();
    bump(&c.events);
    let f = CALLBACKS[port as usize].load(Ordering::Acquire);
    if f == 0 {
        bump(&c.unhandled);
        return;
    }
    // SAFETY: the value was stored from a `fn(u32)` by set_callback.
    let f = unsafe { core::mem::transmute::<usize, fn(u32)>(f) };
    f(port);
}

/// An IRQ handler for guests that take only event channels (and the timeouts' timer
/// interrupt): acknowledge, [`upcall`] for the event-channel PPI, mask the virtual timer for
/// its PPI (recording the counter at the vector, see [`timer_at`]), the handler of
/// [`set_other_handler`] for anything else; then EOI.
pub fn irq_handler(_frame: &mut ExceptionFrame, cnt: u64) {
    let g = gic::get();
    let iar = g.ack();
    let intid = g.intid(iar);
    let c = me();
    if intid >= 1020 {
        bump(&c.spurious);
        return;
    }
    if intid == irq() {
        upcall();
    } else if intid == VTIMER_INTID {
        // Masked only if it fired: an interrupt of an earlier deadline taken after the timer
        // was armed again must not mask the new one (the vCPU would sleep in WFI for good).
        let ctl = timer::ctl();
        if ctl & timer::CTL_ISTATUS != 0 {
            timer::set_ctl(ctl | CTL_IMASK);
        }
        c.timer_at.store(cnt, Ordering::Release);
        bump(&c.timer_irqs);
    } else {
        let h = OTHER.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: stored from a `fn(u32, u64)` by set_other_handler.
            let h = unsafe { core::mem::transmute::<usize, fn(u32, u64)>(h) };
            h(intid, cnt);
        } else {
            bump(&c.stray);
        }
    }
    g.eoi(iar);
}

// ---- statistics -----------------------------------------------------------------------------

/// What a vCPU's handlers saw so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Event-channel interrupts taken.
    pub upcalls: u64,
    /// Events handed to callbacks or counted as unhandled.
    pub events: u64,
    /// Events on ports without a callback.
    pub unhandled: u64,
    pub timer_irqs: u64,
    pub stray: u64,
    pub spurious: u64,
}

/// The statistics of vCPU `cpu`.
pub fn stats(cpu: usize) -> Stats {
    let c = &CPUS[cpu.min(MAX_CPUS - 1)];
    let l = |a: &AtomicU64| a.load(Ordering::Acquire);
    Stats {
        upcalls: l(&c.upcalls),
        events: l(&c.events),
        unhandled: l(&c.unhandled),
        timer_irqs: l(&c.timer_irqs),
        stray: l(&c.stray),
        spurious: l(&c.spurious),
    }
}

/// The virtual counter at the vector of this vCPU's last virtual-timer interrupt, and how many
/// it took.
pub fn timer_at() -> (u64, u64) {
    let c = me();
    (c.timer_at.load(Ordering::Acquire), c.timer_irqs.load(Ordering::Acquire))
}

// ---- waiting ----------------------------------------------------------------------------------

/// Arms the virtual timer `us` microseconds from now: a WFI in [`wait`] wakes up by then.
/// Returns the deadline (counter ticks).
pub fn arm_timeout(us: u64) -> u64 {
    let deadline = timer::now() + timer::ticks_from_us(us);
    timer::set_cval(deadline);
    timer::set_ctl(CTL_ENABLE);
    deadline
}

/// Stops the virtual timer.
pub fn disarm_timeout() {
    timer::set_ctl(0);
}

/// Sleeps in WFI until `cond` holds (true) or the counter passes `deadline` (false, unless
/// `cond` holds by then). Interrupts are taken between two WFIs whatever the caller's mask
/// (the mask is checked, then WFI, with IRQs masked, so an event cannot slip in between);
/// PSTATE.I is as it was on return. The virtual timer must be armed at `deadline` or
/// earlier ([`arm_timeout`]) unless another interrupt is sure to come.
pub fn wait(deadline: u64, mut cond: impl FnMut() -> bool) -> bool {
    let was = irqs_masked();
    let ok = loop {
        irq_mask();
        if cond() {
            break true;
        }
        if timer::now() >= deadline {
            break cond();
        }
        timer::wfi();
        irq_unmask();
    };
    if was {
        irq_mask()
    } else {
        irq_unmask()
    }
    ok
}

/// [`wait`] with the virtual timer armed `us` microseconds from now (disarmed afterwards).
pub fn wait_until(us: u64, cond: impl FnMut() -> bool) -> bool {
    let deadline = arm_timeout(us);
    let ok = wait(deadline, cond);
    disarm_timeout();
    ok
}
