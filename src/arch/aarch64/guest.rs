//! Running guests on this CPU: entering a vCPU and handling what it traps to EL2.
//!
//! One vCPU per physical CPU, pinned: a guest's EL1 system registers stay live in the CPU
//! while its traps are handled, so nothing is saved or restored on a trap. Traps go to the
//! portable handlers: hypercalls (`HVC #0xEA1`) to [`crate::hypercall`], PSCI/SMCCC
//! (`HVC #0`, or `SMC #0` trapped by HCR_EL2.TSC) to [`crate::vpsci`]; anything the hypervisor
//! cannot resolve is reflected into the guest as Xen does ([`crate::trap`]): a stage-2 abort
//! as a data/prefetch abort with ISS 0, everything else as an undefined instruction.

use super::exceptions::{TrapFrame, TrapKind, enter_lower_el};
use super::{console, psci, setup};
use crate::bootmem::Range;
use crate::dom0::{Dom0, fdt::vcpu_mpidr};
use crate::domain::Domain;
use crate::hypercall::{self, Call, GuestVa, Outcome};
use crate::trap::{self, GuestPc, GuestTrap, Injection};
use crate::vpsci::{self, PsciCall};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use alloc::sync::Arc;
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use log::{debug, info, warn};
use xen_abi::XEN_HYPERCALL_TAG;
use xen_abi::psci::*;
use xen_abi::sched::*;

/// Domain state the arch layer keeps beside the portable [`Domain`].
pub struct Guest {
    pub d: Arc<Domain>,
    /// `console_io` output waiting for its end of line.
    line: spin::Mutex<LineBuf>,
}

struct LineBuf {
    len: usize,
    buf: [u8; 256],
}

impl Guest {
    fn new(d: Arc<Domain>) -> Self {
        Guest { d, line: spin::Mutex::new(LineBuf { len: 0, buf: [0; 256] }) }
    }

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
}

/// The guest running on this CPU (one CPU, dom0 only, for now).
static CURRENT: spin::Once<Guest> = spin::Once::new();

fn current() -> &'static Guest {
    CURRENT.get().expect("guest trap with no guest running")
}

// ---- entry ------------------------------------------------------------------------------------

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

/// Clean `[start, end)` to the point of coherency: a guest starting with its MMU (and so its
/// caches) off must see what the hypervisor wrote with caches on.
fn clean_to_poc(r: Range) {
    let line = 4u64 << (CTR_EL0_dminline());
    let mut a = r.start & !(line - 1);
    while a < r.end {
        // SAFETY: cache maintenance by VA on RAM the hypervisor maps; no data changes.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack, preserves_flags)) };
        a += line;
    }
    barrier::dsb(barrier::SY);
}

#[allow(non_snake_case)]
fn CTR_EL0_dminline() -> u64 {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effect (aarch64-cpu has no accessor for it).
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags)) };
    (ctr >> 16) & 0xf
}

/// Start dom0's vCPU 0 on this CPU. Never returns: from here the CPU runs the guest and comes
/// back to EL2 only through traps.
pub fn start_dom0(d0: Dom0) -> ! {
    for r in &d0.written {
        clean_to_poc(*r);
    }
    let d = d0.domain.clone();
    let g = CURRENT.call_once(|| Guest::new(d));
    let p2m = &g.d.p2m;

    HCR_EL2.set(guest_hcr());
    VTTBR_EL2.set(p2m.vttbr());
    // The guest reads the physical counter; its timer is the virtual one, whose counter
    // starts near 0 when the domain starts (as on Xen). Physical timer registers trap.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::CLEAR);
    CNTVOFF_EL2.set(CNTPCT_EL0.get());
    let midr = MIDR_EL1.get();
    // SAFETY: VPIDR_EL2 only sets what the guest reads as MIDR_EL1 (no aarch64-cpu accessor).
    unsafe { asm!("msr vpidr_el2, {}", in(reg) midr, options(nomem, nostack, preserves_flags)) };
    VMPIDR_EL2.set((1 << 31) | vcpu_mpidr(0));
    reset_el1();
    barrier::isb(barrier::SY);

    let mut f = TrapFrame::default();
    f.x[0] = d0.dtb;
    f.elr = d0.entry;
    f.spsr = trap::PSR_MODE_EL1H | trap::PSR_DAIF;
    info!(
        "d0v0: entering the kernel at {:#x} (EL1h, MMU off) with the device tree at {:#x}; VTTBR {:#x}",
        d0.entry,
        d0.dtb,
        p2m.vttbr()
    );
    info!("*** Serial input to DOM0 is not supported; guest output follows with a (d0) prefix ***");
    let (_, top) = setup::boot_stack();
    drop(d0);
    // SAFETY: `top` is this CPU's EL2 stack and nothing on it is needed any more (this never
    // returns); HCR/VTTBR/VTCR and the EL1 registers describe dom0's vCPU 0; the frame names
    // EL1h with interrupts masked at the kernel entry.
    unsafe { enter_lower_el(&f, top) }
}

// ---- traps ------------------------------------------------------------------------------------

/// A trap from the guest running on this CPU.
pub fn handle(kind: TrapKind, f: &mut TrapFrame) {
    match kind {
        TrapKind::Sync => sync(f),
        TrapKind::SError => {
            warn!("d{}v0: SError from the guest (ESR {:#x}): crashing it", current().d.id, f.esr);
            shutdown(current(), SHUTDOWN_CRASH)
        }
        // Nothing enables a physical interrupt yet (no GIC driver, no virtual GIC).
        TrapKind::Irq | TrapKind::Fiq => panic!("physical {kind:?} while a guest ran, but no interrupt is enabled"),
    }
}

fn sync(f: &mut TrapFrame) {
    let g = current();
    let il = trap::esr_il(f.esr);
    match trap::decode(f.esr, f.far, f.hpfar) {
        GuestTrap::Hvc { imm: XEN_HYPERCALL_TAG } => hypercall(g, f),
        GuestTrap::Hvc { imm: 0 } => psci(g, f),
        GuestTrap::Smc { imm: 0 } => {
            f.elr += 4; // a trapped SMC returns to itself: skip it
            psci(g, f)
        }
        GuestTrap::DataAbort { ipa, va, write, fsc, .. } => {
            debug!(
                "d{}: data abort on IPA {ipa:#x} (VA {va:#x}, {}, FSC {fsc:#x}): reflected",
                g.d.id,
                if write { "write" } else { "read" }
            );
            inject(f, |pc| trap::inject_abort(pc, false, va, il))
        }
        GuestTrap::InstrAbort { ipa, va, .. } => {
            debug!("d{}: instruction abort on IPA {ipa:#x} (VA {va:#x}): reflected", g.d.id);
            inject(f, |pc| trap::inject_abort(pc, true, va, il))
        }
        GuestTrap::Wfx { .. } => f.elr += 4,
        t => {
            warn_once(trap::esr_ec(f.esr), t, f.elr);
            inject(f, |pc| trap::inject_undef(pc, il))
        }
    }
}

/// Trap classes already reported (one bit per EC).
static REPORTED: AtomicU64 = AtomicU64::new(0);

fn warn_once(ec: u32, t: GuestTrap, pc: u64) {
    if REPORTED.fetch_or(1 << ec, Ordering::Relaxed) & (1 << ec) == 0 {
        warn!("d{}: {t:?} at {pc:#x} (EC {ec:#x}): injecting an undefined instruction (reported once)", current().d.id);
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

fn hypercall(g: &'static Guest, f: &mut TrapFrame) {
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
        Outcome::Shutdown(reason) => shutdown(g, reason),
    }
}

fn psci(g: &'static Guest, f: &mut TrapFrame) {
    let r = match vpsci::dispatch(f.x[0], f.x[1], f.x[2], f.x[3]) {
        PsciCall::Return(v) => v,
        PsciCall::SystemOff => shutdown(g, SHUTDOWN_POWEROFF),
        PsciCall::SystemReset => shutdown(g, SHUTDOWN_REBOOT),
        // Domains have one vCPU for now: vCPU 0 is on, nothing else exists.
        PsciCall::CpuOn { target, .. } if target == vcpu_mpidr(0) => PSCI_ALREADY_ON,
        PsciCall::CpuOn { .. } => PSCI_INVALID_PARAMETERS,
        PsciCall::AffinityInfo { target, .. } if target == vcpu_mpidr(0) => 0,
        PsciCall::AffinityInfo { .. } => PSCI_INVALID_PARAMETERS,
        PsciCall::CpuOff => PSCI_DENIED,
    };
    f.x[0] = r as u64;
}

/// `SCHEDOP_shutdown` (or PSCI SYSTEM_OFF/RESET) from a guest. Dom0 going down takes the
/// machine with it, as on Xen.
fn shutdown(g: &Guest, reason: u32) -> ! {
    g.flush_console();
    assert_eq!(g.d.id, 0, "only dom0 runs for now");
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
            info!("Hardware Dom0 shutdown (reason {reason}): rebooting machine");
            psci::reset()
        }
    }
}
