//! Running vCPUs on this CPU: entering one, the idle loop, and what a vCPU traps to EL2 —
//! carried out here, decided by the portable core.
//!
//! Each vCPU belongs to one physical CPU for its whole life ([`crate::sched`]): a CPU with
//! no runnable vCPU waits in [`idle`]. A guest's EL1 system registers therefore stay live in
//! the CPU while its traps are handled and are only (re)initialised when a vCPU starts.
//!
//! Traps go to the portable handlers: hypercalls (`HVC #0xEA1`) to [`crate::hypercall`],
//! PSCI/SMCCC (`HVC #0`, or `SMC #0` trapped by HCR_EL2.TSC) to [`crate::vpsci`], shutdowns to
//! [`crate::lifecycle`], accesses to the virtual GIC's registers and SGI writes to
//! [`crate::vgic`]; anything the hypervisor cannot resolve is reflected into the guest as
//! Xen does ([`crate::trap`]): a stage-2 abort as a data/prefetch abort with ISS 0, everything
//! else as an undefined instruction.
//!
//! **Interrupts.** Physical interrupts reach EL2 while a guest runs (HCR_EL2.IMO): the kick
//! SGI, the virtual timer's PPI 27 (masked at the timer and injected as the virtual PPI 27,
//! Xen's way), the GIC maintenance interrupt, and the SPIs of devices a domain owns (their
//! priority dropped here, injected with a hardware-linked list register: the guest's EOI
//! deactivates them). The list registers are refilled from the virtual GIC on the way back to
//! the guest whenever its model changed ([`crate::vgic::Vgic::is_dirty`]).
//!
//! **WFI** blocks: a vCPU with nothing to take waits in EL2 (its CPU in WFI) until an
//! interrupt for it arrives. WFE is not trapped: with one vCPU per CPU, waiting for an event
//! in the guest is what yielding would do.

use super::exceptions::{TrapFrame, TrapKind, enter_lower_el};
use super::{gic, percpu, psci};
use crate::domain::Domain;
use crate::hypercall::{self, Call, GuestVa, Outcome, vcpu};
use crate::lifecycle::{self, MachineAction, Shutdown};
use crate::p2m::Access;
use crate::sysreg::{SysregAccess, reg};
use crate::trap::{self, GuestPc, GuestTrap, Injection};
use crate::types::Gfn;
use crate::vcpu::Vcpu;
use crate::vgic::{Kicks, Lr};
use crate::vpsci::{self, PsciOutcome};
use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::*;
use alloc::sync::Arc;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use log::{info, warn};
use xen_abi::XEN_HYPERCALL_TAG;
use xen_abi::sched::*;
use xen_abi::vcpuop::{RUNSTATE_BLOCKED, RUNSTATE_OFFLINE, RUNSTATE_RUNNABLE, RUNSTATE_RUNNING};

// ---- entering a vCPU ----------------------------------------------------------------------------

/// HCR_EL2 while a guest runs: stage 2 on, EL1 AArch64, physical interrupts and SErrors to EL2,
/// SMC trapped (PSCI is emulated), barriers and TLB/cache maintenance of the guest upgraded to
/// inner shareable, stage-1 walks to device memory fault, implementation-defined system
/// registers and ACTLR trapped, WFI trapped (it blocks the vCPU).
fn guest_hcr() -> u64 {
    (HCR_EL2::RW::EL1IsAarch64
        + HCR_EL2::TWI::SET
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
    CNTHP_CTL_EL2.set(0);
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
    // Running from now on (as on Xen, with the MMU off: a runstate area registered before a
    // CPU_OFF is written at its address taken as physical).
    vcpu::set_runstate(percpu::hv(), d, v, RUNSTATE_RUNNING, &AtVa);
    // This CPU may hold stale translations of the VMID from a previous user of it.
    // SAFETY: local TLB invalidation of the EL1&0 regime of the VMID just loaded.
    unsafe { asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack, preserves_flags)) };
    // A fresh virtual CPU interface: empty list registers, no active priorities.
    if gic::driver().is_some() {
        gic::init_virt();
    }
    percpu::this().set_lrs_loaded(0);
    d.vgic.vcpu_online(v.id as usize);
    sync_lrs(d, v);
    let mut f = TrapFrame::default();
    f.x[0] = x0;
    f.elr = entry;
    f.spsr = trap::PSR_MODE_EL1H | trap::PSR_DAIF;
    let me = percpu::this();
    crate::guest_log!(
        hw: &*percpu::hv().hw,
        log::Level::Info,
        "d{}v{}: entering at {entry:#x} (EL1h, MMU off) with x0 {x0:#x} on CPU{}",
        d.id,
        v.id,
        me.index
    );
    // SAFETY: the top of this CPU's EL2 stack, and nothing on it is needed any more (this
    // never returns); HCR/VTTBR/VTCR and the EL1 registers describe the vCPU; the frame names
    // EL1h with interrupts masked at `entry`.
    unsafe { enter_lower_el(&f, me.stack_top()) }
}

/// A CPU with nothing to run: wait for the vCPU pinned to it to be started, and enter it.
pub fn idle() -> ! {
    let me = percpu::this();
    // The vCPU this CPU ran (if any) is off: let go of its domain and of its timer.
    me.set_current(None);
    CNTV_CTL_EL0.set(0);
    CNTHP_CTL_EL2.set(0);
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

/// Take every pending interrupt (an idle CPU: only device interrupts of a domain matter).
fn drain_interrupts() {
    let hv = percpu::hv();
    while let Some(irq) = gic::ack() {
        dispatch(hv, None, irq);
    }
}

// ---- interrupts and the list registers ------------------------------------------------------------

/// List registers of every CPU's virtualization interface (set once at boot).
static NR_LRS: AtomicUsize = AtomicUsize::new(0);
/// The most list registers used (GICv3 has at most 16; GICv2 up to 64).
const MAX_LRS: usize = 16;
use crate::vtimer::{self, PTIMER_PPI, VTIMER_PPI};
/// The EL2 physical timer's PPI (it backs the guests' emulated EL1 physical timer).
const HYP_TIMER_PPI: u32 = 26;

/// The EL2 physical timer (CNTHP_*), on which the guest's EL1 physical timer is emulated.
struct Cnthp;

impl vtimer::TimerHw for Cnthp {
    fn ctl(&self) -> u64 {
        CNTHP_CTL_EL2.get()
    }
    fn set_ctl(&self, v: u64) {
        CNTHP_CTL_EL2.set(v);
        barrier::isb(barrier::SY);
    }
    fn cval(&self) -> u64 {
        let v: u64;
        // SAFETY: reads the EL2 physical timer's compare value (no aarch64-cpu accessor).
        unsafe { asm!("mrs {}, cnthp_cval_el2", out(reg) v, options(nomem, nostack, preserves_flags)) };
        v
    }
    fn set_cval(&self, v: u64) {
        // SAFETY: sets the EL2 physical timer's compare value, which only backs the running
        // guest's physical timer (the hypervisor has no timer of its own).
        unsafe { asm!("msr cnthp_cval_el2, {}", "isb", in(reg) v, options(nomem, nostack, preserves_flags)) };
    }
    fn counter(&self) -> u64 {
        CNTPCT_EL0.get()
    }
}

/// At boot: the CPUs' virtualization interfaces have `n` list registers.
pub fn set_list_registers(n: u32) {
    NR_LRS.store((n as usize).min(MAX_LRS), Ordering::Relaxed);
}

/// The console UART's receive interrupt (`u32::MAX`: none).
static CONSOLE_IRQ: AtomicU32 = AtomicU32::new(u32::MAX);

/// At boot: the console's receive interrupt is SPI `intid`, level-sensitive; it is routed
/// to the boot CPU and the UART interrupts on received bytes from now on.
pub fn enable_console_input(intid: u32) {
    if gic::driver().is_none() || !super::console::enable_rx() {
        return;
    }
    let boot = percpu::cpu(0).mpidr();
    gic::irq_op(intid, crate::hw::IrqOp::SetEdge(false), 0);
    gic::irq_op(intid, crate::hw::IrqOp::Route(0), boot);
    CONSOLE_IRQ.store(intid, Ordering::Release);
    gic::enable(intid);
}

/// The interrupts a CPU running vCPUs takes at EL2 (each CPU enables its own PPIs).
pub fn enable_cpu_interrupts() {
    if let Some(g) = gic::driver() {
        g.enable(gic::SGI_KICK);
        g.enable(VTIMER_PPI);
        g.enable(HYP_TIMER_PPI);
        g.enable(g.maintenance_irq());
    }
}

/// Take the list registers the last flush loaded back into the virtual GIC (and empty them).
fn fold_lrs(d: &Domain, v: &Vcpu) {
    let me = percpu::this();
    let n = me.lrs_loaded();
    if n == 0 {
        return;
    }
    let mut buf = [Lr::default(); MAX_LRS];
    for (i, lr) in buf[..n].iter_mut().enumerate() {
        *lr = gic::read_lr(i);
        gic::write_lr(i, &Lr::default());
    }
    me.set_lrs_loaded(0);
    d.vgic.fold(v.id as usize, &buf[..n]);
}

/// Refill the list registers from the virtual GIC (on the way into the guest).
#[inline(never)]
fn sync_lrs(d: &Domain, v: &Vcpu) {
    if gic::driver().is_none() {
        return;
    }
    fold_lrs(d, v);
    let n = NR_LRS.load(Ordering::Relaxed);
    let mut buf = [Lr::default(); MAX_LRS];
    let f = d.vgic.flush(v.id as usize, &mut buf[..n]);
    for (i, lr) in buf[..f.loaded].iter().enumerate() {
        gic::write_lr(i, lr);
    }
    percpu::this().set_lrs_loaded(f.loaded);
    gic::set_underflow(f.underflow);
    kick(d, f.kicks, Some(v));
}

/// Make the CPUs of the vCPUs in `k` look at their list registers (not the caller's own).
fn kick(d: &Domain, k: Kicks, me: Option<&Vcpu>) {
    let hv = percpu::hv();
    for i in k.iter().filter(|&i| me.is_none_or(|m| m.id as usize != i)) {
        if let Some(t) = d.vcpus.get(i) {
            hv.hw.kick(t.pcpu);
        }
    }
}

/// One physical interrupt taken at EL2; `cur` is the vCPU this CPU runs, if any.
fn dispatch(hv: &crate::hv::Hypervisor, cur: Option<(&Domain, &Vcpu)>, irq: gic::Irq) {
    let intid = irq.intid;
    if intid == gic::SGI_KICK {
        gic::eoi(irq);
    } else if intid == VTIMER_PPI {
        // The guest's virtual timer fired: mask it at the timer (its level drops) and give the
        // guest its virtual PPI 27; the guest's handler reprograms the timer (Xen's method).
        CNTV_CTL_EL0.modify(CNTV_CTL_EL0::IMASK::SET);
        gic::eoi(irq);
        if let Some((d, v)) = cur {
            d.vgic.inject(v.id as usize, VTIMER_PPI);
        }
    } else if intid == HYP_TIMER_PPI {
        // The guest's emulated physical timer is due: its PPI 30.
        let due = vtimer::fired(&Cnthp);
        gic::eoi(irq);
        if let (true, Some((d, v))) = (due, cur) {
            d.vgic.inject(v.id as usize, PTIMER_PPI);
        }
    } else if gic::driver().is_some_and(|g| g.maintenance_irq() == intid) {
        // Underflow, or a GICv2 SGI instance completed. The maintenance interrupt is a level
        // that holds while its cause does (an emptied list register still asking for EOI
        // maintenance, a list with too few entries): with the guest's list registers live,
        // refill them now, which removes the cause, before the interrupt is completed (else
        // it is taken again at once, for ever).
        gic::set_underflow(false);
        if let Some((d, v)) = cur {
            if percpu::this().lrs_loaded() > 0 {
                sync_lrs(d, v);
            } else {
                d.vgic.set_dirty(v.id as usize);
            }
        }
        gic::eoi(irq);
    } else if intid == CONSOLE_IRQ.load(Ordering::Relaxed) {
        // Bytes typed on the console: the UART's FIFO is emptied (its interrupt drops), and
        // each goes to whoever has the input focus.
        let mut bytes = [0u8; 256];
        let mut n = 0;
        super::console::drain_rx(&mut |b| {
            bytes[n] = b;
            n += 1;
        });
        gic::eoi(irq);
        for &b in &bytes[..n] {
            crate::input::receive(hv, b);
        }
    } else if let Some(owner) = hv.spi_owner(intid).and_then(|o| hv.domain(o)) {
        // A device interrupt of a domain: priority drop only; the guest's EOI of the
        // hardware-linked virtual interrupt deactivates it.
        gic::priority_drop(irq);
        match owner.vgic.inject_hw(intid) {
            Some(k) => kick(&owner, k, cur.filter(|(d, _)| d.id == owner.id).map(|(_, v)| v)),
            None => gic::irq_op(intid, crate::hw::IrqOp::Deactivate, 0),
        }
    } else {
        gic::eoi(irq);
        static LIMIT: crate::ratelimit::RateLimit = crate::ratelimit::RateLimit::new();
        if LIMIT.allow(&*hv.hw).is_some() {
            warn!("unexpected interrupt {intid} on CPU{}", percpu::index());
        }
    }
}

/// This CPU stops running vCPU `v` (it is off): its list registers go back to the model, its
/// timer stops, SPIs routed elsewhere leave its list.
fn stop_here(d: &Domain, v: &Vcpu) {
    vcpu::set_runstate(percpu::hv(), d, v, RUNSTATE_OFFLINE, &AtVa);
    fold_lrs(d, v);
    CNTV_CTL_EL0.set(0);
    CNTHP_CTL_EL2.set(0);
    let k = d.vgic.vcpu_offline(v.id as usize);
    kick(d, k, Some(v));
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
        hypercall(d, v, f);
    } else {
        other(kind, d, v, f);
    }
    // Back to the guest: refresh its list registers if its virtual GIC changed.
    if d.vgic.is_dirty(v.id as usize) {
        sync_lrs(d, v);
    }
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
        TrapKind::Fiq => {
            crate::guest_log!(hw: &*percpu::hv().hw, log::Level::Warn, "d{}v{}: unexpected FIQ", d.id, v.id)
        }
    }
}

/// Physical interrupts while a guest ran.
fn irq(d: &Domain, v: &Vcpu) {
    if gic::driver().is_none() {
        return;
    }
    let hv = percpu::hv();
    while let Some(irq) = gic::ack() {
        dispatch(hv, Some((d, v)), irq);
    }
    check_stop(d, v);
}

/// If this vCPU's domain is going down, leave it.
fn check_stop(d: &Domain, v: &Vcpu) {
    if v.stop_if_requested() {
        stop_here(d, v);
        crate::guest_log!(hw: &*percpu::hv().hw, log::Level::Debug, "d{}v{}: stopped on CPU{}", d.id, v.id, percpu::index());
        idle()
    }
}

/// WFI: unless an interrupt is waiting for the guest, sleep (the CPU in WFI at EL2, where
/// interrupts are masked but still wake it) until one is.
fn block(d: &Domain, v: &Vcpu) {
    if gic::driver().is_none() {
        return;
    }
    fold_lrs(d, v);
    let hv = percpu::hv();
    let mut blocked = false;
    loop {
        if d.vgic.has_deliverable(v.id as usize, gic::vpmr()) {
            break;
        }
        if !blocked {
            // (Its EL1 registers are live: the runstate area's address translates.)
            vcpu::set_runstate(hv, d, v, RUNSTATE_BLOCKED, &AtVa);
            blocked = true;
        }
        check_stop(d, v);
        asm::wfi();
        while let Some(irq) = gic::ack() {
            dispatch(hv, Some((d, v)), irq);
        }
    }
    if blocked {
        vcpu::set_runstate(hv, d, v, RUNSTATE_RUNNING, &AtVa);
    }
}

/// A trapped access of the virtual GIC's registers.
fn vgic_mmio(d: &Domain, v: &Vcpu, f: &mut TrapFrame, ipa: u64, va: u64, il: bool) {
    let Some(a) = crate::mmio::Access::decode(trap::esr_iss(f.esr), ipa) else {
        // (an access without a syndrome, e.g. a load pair: Xen refuses it too)
        return inject(f, |pc| trap::inject_abort(pc, false, va, il));
    };
    // Its state is read and written: the list registers go back to the model first.
    fold_lrs(d, v);
    let value = a.store_value(if a.reg < 31 { f.x[a.reg as usize] } else { 0 });
    let hv = percpu::hv();
    match d.vgic.mmio(&*hv.hw, v.id as usize, ipa, a.size, a.write, value) {
        Some((crate::mmio::Outcome::Done(r), k)) => {
            if !a.write && a.reg < 31 {
                f.x[a.reg as usize] = a.load_value(r);
            }
            f.elr += 4;
            kick(d, k, Some(v));
        }
        Some((crate::mmio::Outcome::Abort, k)) => {
            kick(d, k, Some(v));
            inject(f, |pc| trap::inject_abort(pc, false, va, il))
        }
        None => inject(f, |pc| trap::inject_abort(pc, false, va, il)),
    }
}

/// A trapped system-register access: the SGI generation registers (GICv3 guests).
fn sysreg(d: &Domain, v: &Vcpu, f: &mut TrapFrame, iss: u32, il: bool) -> bool {
    let s = SysregAccess::decode(iss);
    if let Some(r) = vtimer::PhysReg::from_encoding(s.encoding()) {
        if s.read {
            if s.rt < 31 {
                f.x[s.rt as usize] = vtimer::read(&Cnthp, r);
            }
        } else {
            vtimer::write(&Cnthp, r, if s.rt < 31 { f.x[s.rt as usize] } else { 0 });
        }
        f.elr += 4;
        return true;
    }
    match s.encoding() {
        reg::ICC_SGI1R_EL1 | reg::ICC_ASGI1R_EL1 | reg::ICC_SGI0R_EL1 if !s.read => {
            let value = if s.rt < 31 { f.x[s.rt as usize] } else { 0 };
            let (sgi, targets) = d.vgic.sgi1r_targets(v.id as usize, value);
            let k = d.vgic.send_sgi(v.id as usize, targets, sgi);
            kick(d, k, Some(v));
            f.elr += 4;
            true
        }
        _ => {
            let _ = il;
            false
        }
    }
}

fn sync(d: &'static Arc<Domain>, v: &'static Vcpu, f: &mut TrapFrame) {
    let il = trap::esr_il(f.esr);
    let hv = percpu::hv();
    // A concurrent P2M update (break-before-make) may have made the entry briefly invalid:
    // if the IPA is mapped by now, the guest just retries the access.
    let retry = |ipa: u64, access| d.p2m.permits(&hv.mm, Gfn::from_addr(ipa), access);
    match trap::decode(f.esr, f.far, f.hpfar) {
        GuestTrap::DataAbort { ipa, va, .. } if d.vgic.claims(ipa) => vgic_mmio(d, v, f, ipa, va, il),
        GuestTrap::Sysreg { iss } if sysreg(d, v, f, iss, il) => {}
        GuestTrap::Hvc { imm: XEN_HYPERCALL_TAG } => hypercall(d, v, f),
        GuestTrap::Hvc { imm: 0 } => psci(d, v, f),
        GuestTrap::Smc { imm: 0 } => {
            f.elr += 4; // a trapped SMC returns to itself: skip it
            psci(d, v, f)
        }
        GuestTrap::DataAbort { ipa, write, .. } if retry(ipa, if write { Access::Write } else { Access::Read }) => {}
        GuestTrap::InstrAbort { ipa, .. } if retry(ipa, Access::Execute) => {}
        GuestTrap::DataAbort { ipa, va, write, fsc, .. } => {
            crate::guest_log!(
                hw: &*percpu::hv().hw,
                log::Level::Debug,
                "d{}v{}: data abort on IPA {ipa:#x} (VA {va:#x}, {}, FSC {fsc:#x}): reflected",
                d.id,
                v.id,
                if write { "write" } else { "read" }
            );
            inject(f, |pc| trap::inject_abort(pc, false, va, il))
        }
        GuestTrap::InstrAbort { ipa, va, .. } => {
            crate::guest_log!(
                hw: &*percpu::hv().hw,
                log::Level::Debug,
                "d{}v{}: instruction abort on IPA {ipa:#x} (VA {va:#x}): reflected",
                d.id,
                v.id
            );
            inject(f, |pc| trap::inject_abort(pc, true, va, il))
        }
        GuestTrap::Wfx { wfe } => {
            f.elr += 4;
            if !wfe {
                block(d, v);
            }
        }
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
        PsciOutcome::Return { x0, started } => {
            if let Some(t) = started.and_then(|i| d.vcpus.get(i as usize)) {
                let hv = percpu::hv();
                vcpu::note_runstate(hv, t, RUNSTATE_RUNNABLE);
                hv.hw.kick(t.pcpu);
            }
            f.x[0] = x0 as u64;
        }
        PsciOutcome::Return4(r) => f.x[..4].copy_from_slice(&r),
        PsciOutcome::Suspend => {
            block(d, v);
            f.x[0] = 0;
        }
        PsciOutcome::Off => {
            stop_here(d, v);
            idle()
        }
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
        Shutdown::Joined => {
            stop_here(d, v);
            idle()
        }
        Shutdown::Stop { kick } => {
            stop_here(d, v);
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
