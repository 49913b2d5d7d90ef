//! Running vCPUs on this CPU: entering one, the idle loop, and what a vCPU traps to EL2 —
//! carried out here, decided by the portable core.
//!
//! Each vCPU belongs to one physical CPU for its whole life ([`crate::sched`]): a CPU with
//! no runnable vCPU waits in [`idle`]. A guest's EL1 system registers therefore stay live in
//! the CPU while its traps are handled and are only (re)initialised when a vCPU starts.
//!
//! Traps go to the portable handlers: hypercalls (`HVC #0xEA1`) to [`crate::hypercall`],
//! PSCI/SMCCC (`HVC #0`, or `SMC #0` trapped by HCR_EL2.TSC) to [`crate::vpsci`], shutdowns to
//! [`crate::lifecycle`]; anything the hypervisor cannot resolve is reflected into the guest as
//! Xen does ([`crate::trap`]): a stage-2 abort as a data/prefetch abort with ISS 0, everything
//! else as an undefined instruction.

use super::exceptions::{TrapFrame, TrapKind, enter_lower_el};
use super::{gic, percpu, psci};
use crate::domain::Domain;
use crate::hypercall::{self, Call, GuestVa, Outcome};
use crate::lifecycle::{self, MachineAction, Shutdown};
use crate::p2m::Access;
use crate::trap::{self, GuestPc, GuestTrap, Injection};
use crate::types::Gfn;
use crate::vcpu::Vcpu;
use crate::vpsci::{self, PsciOutcome};
use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::*;
use alloc::sync::Arc;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use log::{debug, info, warn};
use xen_abi::XEN_HYPERCALL_TAG;
use xen_abi::sched::*;

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

/// Enter vCPU `v` of `d` on this CPU at `entry` (EL1h, MMU off) with x0 = `x0`.
fn enter(d: &Domain, v: &Vcpu, entry: u64, x0: u64) -> ! {
    HCR_EL2.set(guest_hcr());
    VTTBR_EL2.set(d.p2m.vttbr());
    // The guest reads the physical counter; its timer is the virtual one. Physical timer
    // registers trap.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::CLEAR);
    CNTVOFF_EL2.set(d.counter_offset);
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
    let me = percpu::this();
    info!("d{}v{}: entering at {entry:#x} (EL1h, MMU off) with x0 {x0:#x} on CPU{}", d.id, v.id, me.index);
    // SAFETY: the top of this CPU's EL2 stack, and nothing on it is needed any more (this
    // never returns); HCR/VTTBR/VTCR and the EL1 registers describe the vCPU; the frame names
    // EL1h with interrupts masked at `entry`.
    unsafe { enter_lower_el(&f, me.stack_top()) }
}

/// A CPU with nothing to run: wait for the vCPU pinned to it to be started, and enter it.
pub fn idle() -> ! {
    let me = percpu::this();
    // The vCPU this CPU ran (if any) is off: let go of its domain.
    me.set_current(None);
    let hv = percpu::hv();
    loop {
        if let Some((p, entry, context)) = hv.sched.next(me.index) {
            me.set_current(Some(p));
            let p = me.current().expect("just set");
            enter(&p.domain, &p.domain.vcpus[p.vcpu as usize], entry, context);
        }
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

// ---- traps ------------------------------------------------------------------------------------

/// The vCPU this CPU runs, and its domain (only called on a trap from it). The references
/// live as long as this CPU's per-CPU block holds the vCPU, which only the idle loop changes.
fn current() -> (&'static Arc<Domain>, &'static Vcpu) {
    let p = percpu::this().current().expect("guest trap on a CPU with no vCPU");
    (&p.domain, &p.domain.vcpus[p.vcpu as usize])
}

/// A trap from the guest running on this CPU (registered with the vectors at boot).
pub fn handle(kind: TrapKind, f: &mut TrapFrame) {
    let (d, v) = current();
    // The hot path, kept small so the trap handler saves few registers: a Xen hypercall.
    if kind == TrapKind::Sync
        && trap::esr_ec(f.esr) == trap::ec::HVC64
        && trap::esr_iss(f.esr) as u16 == XEN_HYPERCALL_TAG
    {
        return hypercall(d, v, f);
    }
    other(kind, d, v, f)
}

/// Every other trap: interrupts, PSCI, aborts, trapped instructions.
#[inline(never)]
fn other(kind: TrapKind, d: &'static Arc<Domain>, v: &'static Vcpu, f: &mut TrapFrame) {
    match kind {
        TrapKind::Sync => sync(d, v, f),
        TrapKind::Irq => irq(d, v),
        TrapKind::SError => {
            warn!("d{}v{}: SError from the guest (ESR {:#x}): crashing it", d.id, v.id, f.esr);
            shutdown(d, v, SHUTDOWN_CRASH)
        }
        TrapKind::Fiq => warn!("d{}v{}: unexpected FIQ", d.id, v.id),
    }
}

/// A physical interrupt while a guest ran: the only one enabled is the kick SGI.
fn irq(d: &Domain, v: &Vcpu) {
    let Some(irq) = gic::driver().and_then(|g| g.ack()) else { return };
    gic::eoi(irq);
    if irq.intid != gic::SGI_KICK {
        warn!("unexpected interrupt {} on CPU{}", irq.intid, percpu::index());
    }
    if v.stop_if_requested() {
        debug!("d{}v{}: stopped on CPU{}", d.id, v.id, percpu::index());
        idle()
    }
}

fn sync(d: &'static Arc<Domain>, v: &'static Vcpu, f: &mut TrapFrame) {
    let il = trap::esr_il(f.esr);
    let hv = percpu::hv();
    // A concurrent P2M update (break-before-make) may have made the entry briefly invalid:
    // if the IPA is mapped by now, the guest just retries the access.
    let retry = |ipa: u64, access| d.p2m.permits(&hv.mm, Gfn::from_addr(ipa), access);
    match trap::decode(f.esr, f.far, f.hpfar) {
        GuestTrap::Hvc { imm: XEN_HYPERCALL_TAG } => hypercall(d, v, f),
        GuestTrap::Hvc { imm: 0 } => psci(d, v, f),
        GuestTrap::Smc { imm: 0 } => {
            f.elr += 4; // a trapped SMC returns to itself: skip it
            psci(d, v, f)
        }
        GuestTrap::DataAbort { ipa, write, .. } if retry(ipa, if write { Access::Write } else { Access::Read }) => {}
        GuestTrap::InstrAbort { ipa, .. } if retry(ipa, Access::Execute) => {}
        GuestTrap::DataAbort { ipa, va, write, fsc, .. } => {
            debug!(
                "d{}v{}: data abort on IPA {ipa:#x} (VA {va:#x}, {}, FSC {fsc:#x}): reflected",
                d.id,
                v.id,
                if write { "write" } else { "read" }
            );
            inject(f, |pc| trap::inject_abort(pc, false, va, il))
        }
        GuestTrap::InstrAbort { ipa, va, .. } => {
            debug!("d{}v{}: instruction abort on IPA {ipa:#x} (VA {va:#x}): reflected", d.id, v.id);
            inject(f, |pc| trap::inject_abort(pc, true, va, il))
        }
        GuestTrap::Wfx { .. } => f.elr += 4,
        t => {
            warn_once(d, trap::esr_ec(f.esr), t, f.elr);
            inject(f, |pc| trap::inject_undef(pc, il))
        }
    }
    // A kick that arrived while we were busy here is taken as soon as we return to the guest.
}

/// Trap classes already reported (one bit per EC).
static REPORTED: AtomicU64 = AtomicU64::new(0);

fn warn_once(d: &Domain, ec: u32, t: GuestTrap, pc: u64) {
    if REPORTED.fetch_or(1 << ec, Ordering::Relaxed) & (1 << ec) == 0 {
        warn!("d{}: {t:?} at {pc:#x} (EC {ec:#x}): injecting an undefined instruction (reported once)", d.id);
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

fn hypercall(d: &'static Arc<Domain>, v: &'static Vcpu, f: &mut TrapFrame) {
    let op = f.x[16];
    let mut args = [f.x[0], f.x[1], f.x[2], f.x[3], f.x[4]];
    let call = Call { hv: percpu::hv(), d, v, va: &AtVa };
    match hypercall::hypercall(&call, op, &mut args) {
        Outcome::Return(r) => f.x[0] = r as u64,
        Outcome::Continue => {
            f.x[..5].copy_from_slice(&args);
            f.elr -= 4; // execute the HVC again
        }
        Outcome::Shutdown(reason) => shutdown(d, v, reason),
    }
}

fn psci(d: &'static Arc<Domain>, v: &'static Vcpu, f: &mut TrapFrame) {
    match vpsci::call(d, v, f.x[0], f.x[1], f.x[2], f.x[3]) {
        PsciOutcome::Return { x0, kick } => {
            if let Some(p) = kick {
                percpu::hv().hw.kick(p);
            }
            f.x[0] = x0 as u64;
        }
        PsciOutcome::Off => idle(),
        PsciOutcome::Shutdown(reason) => shutdown(d, v, reason),
    }
}

/// Carry out a shutdown of `d` asked by its vCPU `v` (see [`crate::lifecycle`]).
fn shutdown(d: &'static Arc<Domain>, v: &'static Vcpu, reason: u32) -> ! {
    let hv = percpu::hv();
    match lifecycle::shutdown(hv, d, v, reason) {
        Shutdown::Machine(MachineAction::PowerOff { crashed: false }) => {
            info!("Hardware Dom0 halted: halting machine");
            psci::power_off(psci::exit_code::OK)
        }
        Shutdown::Machine(MachineAction::PowerOff { crashed: true }) => {
            warn!("Hardware Dom0 crashed: halting machine");
            psci::power_off(psci::exit_code::DOM0_FAILED)
        }
        Shutdown::Machine(MachineAction::Reboot) => {
            info!("Hardware Dom0 shutdown ({}): rebooting machine", lifecycle::reason_name(reason));
            psci::reset()
        }
        Shutdown::Joined => idle(),
        Shutdown::Stop { kick } => {
            for p in kick {
                hv.hw.kick(p);
            }
            let freq = hv.hw.counter_hz();
            let mut t = hv.hw.counter();
            while !lifecycle::all_stopped(d) {
                if hv.hw.counter() - t > freq {
                    warn!("d{}: still waiting for its vCPUs to stop", d.id);
                    t = hv.hw.counter();
                }
                core::hint::spin_loop();
            }
            if lifecycle::finish(hv, d).last {
                info!("All domains have shut down: halting machine");
                psci::power_off(psci::exit_code::OK)
            }
            idle()
        }
    }
}
