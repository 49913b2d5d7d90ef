//! Running guests: domains, their vCPUs pinned one per physical CPU, and what a vCPU traps to
//! EL2.
//!
//! Each vCPU belongs to one physical CPU for its whole life (no scheduler): a CPU with no
//! runnable vCPU waits in [`idle`]. A guest's EL1 system registers therefore stay live in the
//! CPU while its traps are handled and are only (re)initialised when a vCPU starts.
//!
//! Traps go to the portable handlers: hypercalls (`HVC #0xEA1`) to [`crate::hypercall`],
//! PSCI/SMCCC (`HVC #0`, or `SMC #0` trapped by HCR_EL2.TSC) to [`crate::vpsci`]; anything the
//! hypervisor cannot resolve is reflected into the guest as Xen does ([`crate::trap`]): a
//! stage-2 abort as a data/prefetch abort with ISS 0, everything else as an undefined
//! instruction.
//!
//! A domain that shuts down (or crashes) is stopped on every CPU (the others are kicked with an
//! SGI) and torn down; the other domains keep running. Dom0 shutting down takes the machine
//! with it, as on Xen, and so does the last domain going away.

use super::exceptions::{TrapFrame, TrapKind, enter_lower_el};
use super::{console, gic, psci, setup, smp};
use crate::dom0::fdt::vcpu_mpidr;
use crate::domain::Domain;
use crate::hypercall::{self, Call, GuestVa, Outcome};
use crate::trap::{self, GuestPc, GuestTrap, Injection};
use crate::vpsci::{self, PsciCall};
use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::*;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use log::{debug, info, warn};
use xen_abi::XEN_HYPERCALL_TAG;
use xen_abi::psci::*;
use xen_abi::sched::*;

/// Run state of a vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum VState {
    Off,
    /// Started by PSCI CPU_ON (or at domain start): its CPU will enter it.
    Pending {
        entry: u64,
        context: u64,
    },
    Running,
    /// Its domain is going down: its CPU must leave it at the next trap or kick.
    Stopping,
}

pub struct Vcpu {
    pub id: u32,
    /// The virtual MPIDR affinity the guest sees.
    pub mpidr: u64,
    /// The physical CPU it is pinned to.
    pub pcpu: usize,
    state: spin::Mutex<VState>,
}

/// Domain state the arch layer keeps beside the portable [`Domain`].
pub struct Guest {
    pub d: Arc<Domain>,
    pub vcpus: Vec<Vcpu>,
    /// CNTVOFF_EL2 of the domain: its virtual counter starts near 0 when it starts.
    cntvoff: u64,
    shutting_down: AtomicBool,
    /// `console_io` output waiting for its end of line.
    line: spin::Mutex<LineBuf>,
}

struct LineBuf {
    len: usize,
    buf: [u8; 1024],
}

impl Guest {
    /// Guest console output, printed a line at a time with a `(dN) ` prefix.
    fn console_write(&self, bytes: &[u8]) {
        let mut l = self.line.lock();
        for &b in bytes {
            if b == b'\n' || l.len == l.buf.len() {
                self.flush_line(&mut l);
            }
            if b != b'\n' {
                let n = l.len;
                l.buf[n] = if b == b'\r' || b.is_ascii_graphic() || b == b' ' || b == b'\t' { b } else { b'?' };
                l.len += 1;
            }
        }
    }

    fn flush_line(&self, l: &mut LineBuf) {
        let text = core::str::from_utf8(&l.buf[..l.len]).unwrap_or("(non-UTF-8 output)").trim_end_matches('\r');
        console::write_fmt(format_args!("(d{}) {}\n", self.d.id, text));
        l.len = 0;
    }

    fn flush_console(&self) {
        let mut l = self.line.lock();
        if l.len != 0 {
            self.flush_line(&mut l);
        }
    }

    fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<&Vcpu> {
        self.vcpus.iter().find(|v| v.mpidr == mpidr & 0xff_00ff_ffff)
    }
}

/// Every domain with vCPUs.
static GUESTS: spin::Mutex<Vec<Arc<Guest>>> = spin::Mutex::new(Vec::new());

/// A guest and the index of one of its vCPUs.
type Pinned = Option<(Arc<Guest>, usize)>;

/// What each physical CPU runs: a guest and the index of its vCPU pinned there.
static ASSIGNED: [spin::Mutex<Pinned>; smp::MAX_CPUS] = [const { spin::Mutex::new(None) }; smp::MAX_CPUS];

/// The guest and vCPU each CPU is running: set by the CPU itself as it enters the vCPU, read by
/// its own traps. A copy of its [`ASSIGNED`] slot that needs no lock on the trap path.
static RUNNING: [(AtomicPtr<Guest>, AtomicUsize); smp::MAX_CPUS] =
    [const { (AtomicPtr::new(core::ptr::null_mut()), AtomicUsize::new(0)) }; smp::MAX_CPUS];

/// The guest and vCPU this CPU runs (only called on a trap from it).
///
/// No `Arc` is cloned: trap paths that end in [`idle`] never return, so a clone on their stack
/// would never be dropped. The reference is backed by the `Arc` in this CPU's [`ASSIGNED`]
/// slot, which only [`shutdown`] clears, and only once the vCPU is `Off`; this CPU sets its
/// vCPU `Off` on its way to [`idle`], after its last use of the guest, except in `shutdown`,
/// which holds its own `Arc` while it uses the guest.
fn current() -> (&'static Guest, usize) {
    let (g, vi) = &RUNNING[smp::this()];
    // Relaxed: only this CPU writes its entry.
    let g = g.load(Ordering::Relaxed);
    assert!(!g.is_null(), "guest trap on a CPU with no vCPU");
    // SAFETY: see above: the guest outlives every use this trap makes of it.
    (unsafe { &*g }, vi.load(Ordering::Relaxed))
}

/// Physical CPUs not running any vCPU yet, in order.
pub fn free_cpus() -> Vec<usize> {
    smp::cpus()
        .iter()
        .filter(|c| c.online.load(Ordering::Acquire) && ASSIGNED[c.index].lock().is_none())
        .map(|c| c.index)
        .collect()
}

/// Make `d` runnable with `vcpus` vCPUs pinned to `pcpus` (one each; the caller gives at least
/// one), vCPU 0 starting at `entry` with x0 = `x0`. Returns the guest.
pub fn add_domain(d: Arc<Domain>, pcpus: &[usize], entry: u64, x0: u64) -> Arc<Guest> {
    let vcpus = pcpus
        .iter()
        .enumerate()
        .map(|(i, &p)| Vcpu {
            id: i as u32,
            mpidr: vcpu_mpidr(i as u32),
            pcpu: p,
            state: spin::Mutex::new(if i == 0 { VState::Pending { entry, context: x0 } } else { VState::Off }),
        })
        .collect();
    let g = Arc::new(Guest {
        d,
        vcpus,
        cntvoff: CNTPCT_EL0.get(),
        shutting_down: AtomicBool::new(false),
        line: spin::Mutex::new(LineBuf { len: 0, buf: [0; 1024] }),
    });
    for (i, v) in g.vcpus.iter().enumerate() {
        *ASSIGNED[v.pcpu].lock() = Some((g.clone(), i));
        info!("d{}v{i} pinned to CPU{}", g.d.id, v.pcpu);
    }
    GUESTS.lock().push(g.clone());
    if g.vcpus[0].pcpu != smp::this() {
        kick(&g.vcpus[0]);
    }
    g
}

// ---- entering a vCPU ----------------------------------------------------------------------------

/// HCR_EL2 while a guest runs: stage 2 on, EL1 AArch64, physical interrupts and SErrors to EL2,
/// SMC trapped (PSCI is emulated), barriers and TLB/cache maintenance of the guest upgraded to
/// inner shareable, stage-1 walks to device memory fault, implementation-defined system
/// registers and ACTLR trapped.
fn guest_hcr() -> u64 {
    (HCR_EL2::RW::EL1IsAarch64
        + HCR_EL2::VM::Enable
        + HCR_EL2::SWIO::SET
        + HCR_EL2::PTW::SET
        + HCR_EL2::FMO::EnableVirtualFIQ
        + HCR_EL2::IMO::EnableVirtualIRQ
        + HCR_EL2::AMO::SET
        + HCR_EL2::FB::SET
        + HCR_EL2::BSU::InnerShareable
        + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
        + HCR_EL2::TIDCP::SET
        + HCR_EL2::TACR::SET)
        .value
}

/// The EL1 registers of a vCPU at reset: MMU and caches off, nothing set up.
fn reset_el1() {
    SCTLR_EL1.set(0x30d0_0800); // RES1 bits only: MMU, caches, alignment checks off
    TTBR0_EL1.set(0);
    TTBR1_EL1.set(0);
    TCR_EL1.set(0);
    MAIR_EL1.set(0);
    VBAR_EL1.set(0);
    CONTEXTIDR_EL1.set(0);
    TPIDR_EL0.set(0);
    TPIDRRO_EL0.set(0);
    TPIDR_EL1.set(0);
    SP_EL0.set(0);
    SP_EL1.set(0);
    ELR_EL1.set(0);
    SPSR_EL1.set(0);
    ESR_EL1.set(0);
    FAR_EL1.set(0);
    PAR_EL1.set(0);
    CPACR_EL1.set(0);
    AFSR0_EL1.set(0);
    AFSR1_EL1.set(0);
    AMAIR_EL1.set(0);
    CNTKCTL_EL1.set(0);
    CNTV_CTL_EL0.set(0);
    CNTV_CVAL_EL0.set(0);
}

/// Enter vCPU `vi` of `g` on this CPU at `entry` (EL1h, MMU off) with x0 = `x0`.
fn enter(g: &Guest, vi: usize, entry: u64, x0: u64) -> ! {
    let v = &g.vcpus[vi];
    HCR_EL2.set(guest_hcr());
    VTTBR_EL2.set(g.d.p2m.vttbr());
    // The guest reads the physical counter; its timer is the virtual one. Physical timer
    // registers trap.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::CLEAR);
    CNTVOFF_EL2.set(g.cntvoff);
    let midr = MIDR_EL1.get();
    // SAFETY: VPIDR_EL2 only sets what the guest reads as MIDR_EL1 (no aarch64-cpu accessor).
    unsafe { asm!("msr vpidr_el2, {}", in(reg) midr, options(nomem, nostack, preserves_flags)) };
    VMPIDR_EL2.set((1 << 31) | v.mpidr);
    reset_el1();
    // This CPU may hold stale translations of the VMID from a previous user of it.
    // SAFETY: local TLB invalidation of the EL1&0 regime of the VMID just loaded.
    unsafe { asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack, preserves_flags)) };
    let mut f = TrapFrame::default();
    f.x[0] = x0;
    f.elr = entry;
    f.spsr = trap::PSR_MODE_EL1H | trap::PSR_DAIF;
    info!("d{}v{vi}: entering at {entry:#x} (EL1h, MMU off) with x0 {x0:#x} on CPU{}", g.d.id, smp::this());
    let top = smp::cpu(smp::this()).stack_top;
    // SAFETY: `top` is this CPU's EL2 stack and nothing on it is needed any more (this never
    // returns); HCR/VTTBR/VTCR and the EL1 registers describe the vCPU; the frame names EL1h
    // with interrupts masked at `entry`.
    unsafe { enter_lower_el(&f, top) }
}

/// A CPU with nothing to run: wait for the vCPU pinned to it to be started, and enter it.
pub fn idle() -> ! {
    let me = smp::this();
    RUNNING[me].0.store(core::ptr::null_mut(), Ordering::Relaxed);
    loop {
        let slot = ASSIGNED[me].lock();
        if let Some((g, vi)) = slot.as_ref() {
            let mut st = g.vcpus[*vi].state.lock();
            if let VState::Pending { entry, context } = *st {
                *st = VState::Running;
                drop(st);
                let (g, vi) = (Arc::as_ptr(g), *vi);
                drop(slot);
                RUNNING[me].0.store(g.cast_mut(), Ordering::Relaxed);
                RUNNING[me].1.store(vi, Ordering::Relaxed);
                // SAFETY: the slot's Arc lives until the vCPU is Off again (see `current`).
                enter(unsafe { &*g }, vi, entry, context);
            }
        }
        drop(slot);
        // Sleep until an interrupt is pending (it wakes WFI even though interrupts are
        // masked at EL2): the kick SGI another CPU sends when it makes our vCPU runnable.
        // Pending interrupts are taken off before the state is checked again, so a kick that
        // arrives after the check still ends the next WFI.
        if gic::driver().is_some() {
            asm::wfi();
            drain_interrupts();
        } else {
            asm::wfe(); // no interrupt can wake a WFI: poll on events
        }
    }
}

/// Acknowledge and end every pending interrupt (an idle CPU has nothing else to do with them).
fn drain_interrupts() {
    if let Some(d) = gic::driver() {
        while let Some(irq) = d.ack() {
            d.eoi(irq);
        }
    }
}

/// Make the CPU running (or idling for) vCPU `v` look at its state.
fn kick(v: &Vcpu) {
    barrier::dsb(barrier::ISH);
    if gic::driver().is_none() || gic::send_sgi(smp::cpu(v.pcpu).mpidr, gic::SGI_KICK).is_err() {
        asm::sev(); // no GIC: the idle loop only polls, but wake a WFE anyway
    }
}

// ---- traps ------------------------------------------------------------------------------------

/// A trap from the guest running on this CPU.
pub fn handle(kind: TrapKind, f: &mut TrapFrame) {
    let (g, vi) = current();
    // The hot path, kept small so the trap handler saves few registers: a Xen hypercall.
    if kind == TrapKind::Sync
        && trap::esr_ec(f.esr) == trap::ec::HVC64
        && trap::esr_iss(f.esr) as u16 == XEN_HYPERCALL_TAG
    {
        return hypercall(g, vi, f);
    }
    other(kind, g, vi, f)
}

/// Every other trap: interrupts, PSCI, aborts, trapped instructions.
#[inline(never)]
fn other(kind: TrapKind, g: &'static Guest, vi: usize, f: &mut TrapFrame) {
    match kind {
        TrapKind::Sync => sync(g, vi, f),
        TrapKind::Irq => irq(g, vi),
        TrapKind::SError => {
            warn!("d{}v{vi}: SError from the guest (ESR {:#x}): crashing it", g.d.id, f.esr);
            shutdown(g, vi, SHUTDOWN_CRASH)
        }
        TrapKind::Fiq => warn!("d{}v{vi}: unexpected FIQ", g.d.id),
    }
}

/// A physical interrupt while a guest ran: the only one enabled is the kick SGI.
fn irq(g: &Guest, vi: usize) {
    let Some(irq) = gic::driver().and_then(|d| d.ack()) else { return };
    gic::eoi(irq);
    if irq.intid != gic::SGI_KICK {
        warn!("unexpected interrupt {} on CPU{}", irq.intid, smp::this());
    }
    let mut st = g.vcpus[vi].state.lock();
    if *st == VState::Stopping {
        *st = VState::Off;
        drop(st);
        debug!("d{}v{vi}: stopped on CPU{}", g.d.id, smp::this());
        idle()
    }
}

fn sync(g: &Guest, vi: usize, f: &mut TrapFrame) {
    let il = trap::esr_il(f.esr);
    match trap::decode(f.esr, f.far, f.hpfar) {
        GuestTrap::Hvc { imm: XEN_HYPERCALL_TAG } => hypercall(g, vi, f),
        GuestTrap::Hvc { imm: 0 } => psci(g, vi, f),
        GuestTrap::Smc { imm: 0 } => {
            f.elr += 4; // a trapped SMC returns to itself: skip it
            psci(g, vi, f)
        }
        // A concurrent P2M update (break-before-make) may have made the entry briefly
        // invalid: if the IPA is mapped by now, the guest just retries the access.
        GuestTrap::DataAbort { ipa, write, .. }
            if mapped_now(g, ipa, if write { Access::Write } else { Access::Read }) => {}
        GuestTrap::InstrAbort { ipa, .. } if mapped_now(g, ipa, Access::Execute) => {}
        GuestTrap::DataAbort { ipa, va, write, fsc, .. } => {
            debug!(
                "d{}v{vi}: data abort on IPA {ipa:#x} (VA {va:#x}, {}, FSC {fsc:#x}): reflected",
                g.d.id,
                if write { "write" } else { "read" }
            );
            inject(f, |pc| trap::inject_abort(pc, false, va, il))
        }
        GuestTrap::InstrAbort { ipa, va, .. } => {
            debug!("d{}v{vi}: instruction abort on IPA {ipa:#x} (VA {va:#x}): reflected", g.d.id);
            inject(f, |pc| trap::inject_abort(pc, true, va, il))
        }
        GuestTrap::Wfx { .. } => f.elr += 4,
        t => {
            warn_once(g, trap::esr_ec(f.esr), t, f.elr);
            inject(f, |pc| trap::inject_undef(pc, il))
        }
    }
    // A kick that arrived while we were busy here is taken as soon as we return to the guest.
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
    Execute,
}

/// Does the P2M map `ipa` for `access` now? Taken under the P2M lock, so a break-before-make
/// sequence another CPU was in the middle of when the access faulted has completed.
fn mapped_now(g: &Guest, ipa: u64, access: Access) -> bool {
    let hv = setup::hypervisor();
    match g.d.p2m.read(&hv.mm).lookup(crate::types::Gfn::from_addr(ipa)) {
        Some(m) => match access {
            Access::Read => true,
            Access::Write => m.ty.is_writable(),
            Access::Execute => m.ty.is_ram(),
        },
        None => false,
    }
}

/// Trap classes already reported (one bit per EC).
static REPORTED: AtomicU64 = AtomicU64::new(0);

fn warn_once(g: &Guest, ec: u32, t: GuestTrap, pc: u64) {
    if REPORTED.fetch_or(1 << ec, Ordering::Relaxed) & (1 << ec) == 0 {
        warn!("d{}: {t:?} at {pc:#x} (EC {ec:#x}): injecting an undefined instruction (reported once)", g.d.id);
    }
}

fn inject(f: &mut TrapFrame, make: impl FnOnce(&GuestPc) -> Injection) {
    let i = make(&GuestPc { pc: f.elr, pstate: f.spsr, vbar: VBAR_EL1.get() });
    ELR_EL1.set(i.elr_el1);
    SPSR_EL1.set(i.spsr_el1);
    ESR_EL1.set(i.esr_el1);
    if let Some(far) = i.far_el1 {
        FAR_EL1.set(far);
    }
    f.elr = i.pc;
    f.spsr = i.pstate;
}

/// Stage-1 translation of the current guest's virtual addresses (`AT S1E1R/W`).
struct AtVa;

impl GuestVa for AtVa {
    fn to_ipa(&self, va: u64, write: bool) -> Option<u64> {
        // PAR_EL1 belongs to the guest: keep its value.
        let saved = PAR_EL1.get();
        // SAFETY: AT only looks the address up in the EL1&0 regime (the current guest's, whose
        // EL1 registers are live), with its stage-1 table walks checked by stage 2; it writes
        // PAR_EL1, which is restored below, and accesses no memory on our behalf.
        unsafe {
            if write {
                asm!("at s1e1w, {}", in(reg) va, options(nostack, preserves_flags));
            } else {
                asm!("at s1e1r, {}", in(reg) va, options(nostack, preserves_flags));
            }
        }
        barrier::isb(barrier::SY);
        let par = PAR_EL1.get();
        PAR_EL1.set(saved);
        (par & 1 == 0).then_some(par & 0x000f_ffff_ffff_f000)
    }
}

fn hypercall(g: &Guest, vi: usize, f: &mut TrapFrame) {
    let hv = setup::hypervisor();
    let op = f.x[16];
    let mut args = [f.x[0], f.x[1], f.x[2], f.x[3], f.x[4]];
    let console = |b: &[u8]| g.console_write(b);
    let call = Call { hv, d: &g.d, va: &AtVa, console: &console };
    match hypercall::hypercall(&call, op, &mut args) {
        Outcome::Return(v) => f.x[0] = v as u64,
        Outcome::Continue => {
            f.x[..5].copy_from_slice(&args);
            f.elr -= 4; // execute the HVC again
        }
        Outcome::Shutdown(reason) => shutdown(g, vi, reason),
    }
}

fn psci(g: &Guest, vi: usize, f: &mut TrapFrame) {
    let r = match vpsci::dispatch(f.x[0], f.x[1], f.x[2], f.x[3]) {
        PsciCall::Return(v) => v,
        PsciCall::SystemOff => shutdown(g, vi, SHUTDOWN_POWEROFF),
        PsciCall::SystemReset => shutdown(g, vi, SHUTDOWN_REBOOT),
        PsciCall::CpuOn { target, entry, context } => match g.vcpu_by_mpidr(target) {
            None => PSCI_INVALID_PARAMETERS,
            Some(v) => {
                let mut st = v.state.lock();
                match *st {
                    VState::Off if !g.shutting_down.load(Ordering::Acquire) => {
                        *st = VState::Pending { entry, context };
                        drop(st);
                        kick(v);
                        PSCI_SUCCESS
                    }
                    VState::Off => PSCI_DENIED,
                    VState::Pending { .. } => PSCI_ON_PENDING,
                    VState::Running | VState::Stopping => PSCI_ALREADY_ON,
                }
            }
        },
        PsciCall::AffinityInfo { target, level } => match g.vcpu_by_mpidr(target) {
            Some(v) if level == 0 => match *v.state.lock() {
                VState::Off => 1,
                VState::Pending { .. } => 2,
                VState::Running | VState::Stopping => 0,
            },
            _ => PSCI_INVALID_PARAMETERS,
        },
        PsciCall::CpuOff => {
            *g.vcpus[vi].state.lock() = VState::Off;
            debug!("d{}v{vi}: CPU_OFF", g.d.id);
            idle()
        }
    };
    f.x[0] = r as u64;
}

fn reason_name(reason: u32) -> &'static str {
    match reason {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_SUSPEND => "suspend",
        SHUTDOWN_CRASH => "crash",
        SHUTDOWN_WATCHDOG => "watchdog",
        _ => "unknown reason",
    }
}

/// `SCHEDOP_shutdown` (or PSCI SYSTEM_OFF/RESET) from vCPU `vi` of `g`.
fn shutdown(g: &Guest, vi: usize, reason: u32) -> ! {
    g.flush_console();
    if g.d.id == 0 {
        // The hardware domain takes the machine with it (as on Xen).
        match reason {
            SHUTDOWN_POWEROFF => {
                info!("Hardware Dom0 halted: halting machine");
                psci::power_off(psci::exit_code::OK)
            }
            SHUTDOWN_CRASH => {
                warn!("Hardware Dom0 crashed: halting machine");
                psci::power_off(psci::exit_code::DOM0_FAILED)
            }
            _ => {
                info!("Hardware Dom0 shutdown ({}): rebooting machine", reason_name(reason));
                psci::reset()
            }
        }
    }
    if g.shutting_down.swap(true, Ordering::AcqRel) {
        // Another vCPU of this domain is already taking it down.
        *g.vcpus[vi].state.lock() = VState::Off;
        idle()
    }
    // Keep the guest alive while we take it down (its slots are cleared below).
    let keep = ASSIGNED[smp::this()].lock().as_ref().map(|(g, _)| g.clone());
    info!("d{}v{vi}: domain shutdown ({}): stopping its vCPUs", g.d.id, reason_name(reason));
    *g.vcpus[vi].state.lock() = VState::Off;
    for v in g.vcpus.iter().filter(|v| v.id as usize != vi) {
        let mut st = v.state.lock();
        match *st {
            VState::Pending { .. } => *st = VState::Off,
            VState::Running => {
                *st = VState::Stopping;
                drop(st);
                kick(v);
            }
            _ => {}
        }
    }
    let freq = CNTFRQ_EL0.get().max(1);
    let mut t = CNTPCT_EL0.get();
    while g.vcpus.iter().any(|v| *v.state.lock() != VState::Off) {
        if CNTPCT_EL0.get() - t > freq {
            warn!("d{}: still waiting for its vCPUs to stop", g.d.id);
            t = CNTPCT_EL0.get();
        }
        core::hint::spin_loop();
    }
    for v in &g.vcpus {
        *ASSIGNED[v.pcpu].lock() = None;
    }
    GUESTS.lock().retain(|x| !Arc::ptr_eq(&x.d, &g.d));
    let hv = setup::hypervisor();
    hv.destroy_domain(&g.d);
    let left = hv.mm.pages_of(g.d.id).total();
    if left == 0 {
        info!("d{}: destroyed, every page freed", g.d.id);
    } else {
        info!("d{}: destroyed; {left} of its pages stay until the domains mapping them let go", g.d.id);
    }
    if GUESTS.lock().is_empty() {
        info!("All domains have shut down: halting machine");
        psci::power_off(psci::exit_code::OK)
    }
    drop(keep);
    idle()
}
