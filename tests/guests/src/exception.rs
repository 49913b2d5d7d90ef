//! Exceptions taken by the guest itself (VBAR_EL1): fault probes and interrupts.
//!
//! [`probe_read`] / [`probe_write`] do one 64-bit access from a known instruction (in
//! `start.rs`); [`probe_read_sized`] / [`probe_write_sized`] one access of 8, 16, 32 or 64
//! bits (the width is what a virtual GIC checks). If that instruction takes a data abort,
//! the handler resumes at a fixup that makes the probe return `Err(Fault)` with the
//! syndrome, instead of crashing. The probes are out-of-line functions, so the handler only
//! has to preserve what a function call preserves (the Rust handler keeps the callee-saved
//! registers; the frame restores x30 and SP).
//!
//! Each CPU has its own recovery state (the probes' fixup is a fixed address; the syndrome
//! is kept per CPU), so probes work on every CPU at once.
//!
//! **Interrupts.** A guest that unmasks IRQs installs a handler with [`set_irq_handler`]; it
//! is called for every IRQ taken from EL1 (on any CPU) with the saved frame and the virtual
//! counter read by the vector's first instructions (for latency measurements). The handler
//! may unmask IRQs itself (nested interrupts: each level has its own frame on the stack); it
//! returns with them masked again (the vector code restores ELR/SPSR, which a nested IRQ
//! would overwrite). [`irq_unmask`] / [`irq_mask`] / [`irqs_masked`] change PSTATE.I.
//!
//! Any other exception is unexpected: it is decoded, reported as a failed run, and the guest
//! powers off.

use crate::smp::MAX_CPUS;
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Registers saved by the vector code; the layout is fixed by `start.rs`.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    /// SP before the exception.
    pub sp: u64,
}
const _: () = assert!(core::mem::size_of::<ExceptionFrame>() == 288);

/// A data abort caught by a probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
}

impl Fault {
    /// Exception class (ESR_EL1.EC).
    pub fn ec(&self) -> u64 {
        self.esr >> 26
    }
    /// Data fault status code (ESR_EL1.ISS.DFSC) for data aborts.
    pub fn dfsc(&self) -> u64 {
        self.esr & 0x3f
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "fault esr={:#x} ({}, {}) far={:#x}", self.esr, ec_name(self.ec()), dfsc_name(self.dfsc()), self.far)
    }
}

/// Exception class names for messages.
pub fn ec_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "unknown",
        0x01 => "wfi/wfe",
        0x07 => "fp/simd access",
        0x0e => "illegal execution state",
        0x15 => "svc",
        0x16 => "hvc",
        0x17 => "smc",
        0x18 => "msr/mrs trap",
        0x20 => "instruction abort from lower EL",
        0x21 => "instruction abort",
        0x22 => "pc alignment",
        0x24 => "data abort from lower EL",
        0x25 => "data abort",
        0x26 => "sp alignment",
        0x2f => "serror",
        0x3c => "brk",
        _ => "?",
    }
}

/// Fault status code names (DFSC/IFSC) for messages.
pub fn dfsc_name(fsc: u64) -> &'static str {
    match fsc {
        0x00..=0x03 => "address size fault",
        0x04..=0x07 => "translation fault",
        0x08..=0x0b => "access flag fault",
        0x0c..=0x0f => "permission fault",
        0x10 => "synchronous external abort",
        0x14..=0x17 => "external abort on table walk",
        0x21 => "alignment fault",
        0x30 => "tlb conflict",
        _ => "?",
    }
}

/// The syndrome of the last fault a probe took, per CPU (the probe's fixup runs on the CPU
/// that faulted, so each CPU only ever reads its own slot).
static LAST_ESR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static LAST_FAR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn slot() -> usize {
    crate::smp::cpu_id().min(MAX_CPUS - 1)
}

#[repr(C)]
struct ProbeRet {
    value: u64,
    faulted: u64,
}

unsafe extern "C" {
    fn __granite_probe_ld64(addr: u64) -> ProbeRet;
    fn __granite_probe_st64(addr: u64, value: u64) -> ProbeRet;
    fn __granite_probe_ld32(addr: u64) -> ProbeRet;
    fn __granite_probe_st32(addr: u64, value: u64) -> ProbeRet;
    fn __granite_probe_ld16(addr: u64) -> ProbeRet;
    fn __granite_probe_st16(addr: u64, value: u64) -> ProbeRet;
    fn __granite_probe_ld8(addr: u64) -> ProbeRet;
    fn __granite_probe_st8(addr: u64, value: u64) -> ProbeRet;
    static __granite_probes_start: u8;
    static __granite_probes_end: u8;
    static __granite_probe_fixup: u8;
}

fn probe_result(r: ProbeRet) -> Result<u64, Fault> {
    if r.faulted == 0 {
        Ok(r.value)
    } else {
        let i = slot();
        Err(Fault { esr: LAST_ESR[i].load(Ordering::Relaxed), far: LAST_FAR[i].load(Ordering::Relaxed) })
    }
}

/// Reads the 64-bit word at `addr`, returning the data abort instead of crashing on one.
pub fn probe_read(addr: u64) -> Result<u64, Fault> {
    // SAFETY: a load from an arbitrary address either returns data or takes a data abort,
    // which the handler turns into the fixup path; memory is not modified.
    probe_result(unsafe { __granite_probe_ld64(addr) })
}

/// Writes `value` to the 64-bit word at `addr`, returning the data abort instead of crashing.
///
/// # Safety
/// If the store succeeds it changes memory: `addr` must not be anything Rust code relies on.
pub unsafe fn probe_write(addr: u64, value: u64) -> Result<(), Fault> {
    // SAFETY: the caller vouches for the target; a faulting store goes to the fixup path.
    probe_result(unsafe { __granite_probe_st64(addr, value) }).map(|_| ())
}

/// Reads `bytes` (1, 2, 4 or 8) at `addr` with one access of that width, returning the data
/// abort instead of crashing on one. Any other width panics.
pub fn probe_read_sized(addr: u64, bytes: u8) -> Result<u64, Fault> {
    // SAFETY: as `probe_read`: a single load that returns data or takes a data abort, which
    // the handler turns into the fixup path.
    let r = unsafe {
        match bytes {
            8 => __granite_probe_ld64(addr),
            4 => __granite_probe_ld32(addr),
            2 => __granite_probe_ld16(addr),
            1 => __granite_probe_ld8(addr),
            _ => panic!("probe_read_sized: width {bytes}"),
        }
    };
    probe_result(r)
}

/// Writes the low `bytes` (1, 2, 4 or 8) of `value` at `addr` with one access of that width,
/// returning the data abort instead of crashing. Any other width panics.
///
/// # Safety
/// As [`probe_write`]: if the store succeeds it changes memory (or a device register).
pub unsafe fn probe_write_sized(addr: u64, bytes: u8, value: u64) -> Result<(), Fault> {
    // SAFETY: the caller vouches for the target; a faulting store goes to the fixup path.
    let r = unsafe {
        match bytes {
            8 => __granite_probe_st64(addr, value),
            4 => __granite_probe_st32(addr, value),
            2 => __granite_probe_st16(addr, value),
            1 => __granite_probe_st8(addr, value),
            _ => panic!("probe_write_sized: width {bytes}"),
        }
    };
    probe_result(r).map(|_| ())
}

/// The IRQ handler: a `fn(&mut ExceptionFrame, u64)` stored as an address (0 = none).
static IRQ_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Installs `f` as the handler of IRQs taken from EL1 on every CPU (see the module docs);
/// `f` gets the frame and the virtual counter at the vector.
pub fn set_irq_handler(f: fn(&mut ExceptionFrame, u64)) {
    IRQ_HANDLER.store(f as usize, Ordering::Release);
}

/// Unmasks IRQs (PSTATE.I = 0); a pending one is taken at once.
#[inline(always)]
pub fn irq_unmask() {
    // SAFETY: changes PSTATE.I only; the handler installed with set_irq_handler takes what
    // comes. Not `nomem`: interrupts may run code that touches memory.
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Masks IRQs (PSTATE.I = 1).
#[inline(always)]
pub fn irq_mask() {
    // SAFETY: changes PSTATE.I only.
    unsafe { asm!("msr daifset, #2", "isb", options(nostack)) };
}

/// Whether IRQs are masked (PSTATE.I).
#[inline(always)]
pub fn irqs_masked() -> bool {
    let daif: u64;
    // SAFETY: reading DAIF has no side effects.
    unsafe { asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack, preserves_flags)) };
    daif & (1 << 7) != 0
}

const KIND_NAMES: [&str; 4] = ["synchronous", "irq", "fiq", "serror"];
const ORIGIN_NAMES: [&str; 4] = ["EL1t", "EL1h", "EL0/64", "EL0/32"];

/// Called by the vector code with the saved frame, the vector index (0..16) and the virtual
/// counter read at the vector.
pub extern "C" fn handle(frame: &mut ExceptionFrame, kind: u64, cntvct: u64) {
    // IRQs from EL1 (SP_EL0 or SP_EL1) go to the installed handler.
    if kind == 1 || kind == 5 {
        let h = IRQ_HANDLER.load(Ordering::Acquire);
        if h != 0 {
            // SAFETY: the value was stored from a `fn(&mut ExceptionFrame, u64)` by
            // set_irq_handler.
            let h = unsafe { core::mem::transmute::<usize, fn(&mut ExceptionFrame, u64)>(h) };
            h(frame, cntvct);
            // The handler may have unmasked IRQs (nesting): the return path must not be
            // interrupted once it reloads ELR/SPSR.
            irq_mask();
            return;
        }
    }
    let ec = frame.esr >> 26;
    let is_sync_abort = kind == 4 && (ec == 0x25 || ec == 0x24);
    if is_sync_abort {
        let addr = |s: &u8| s as *const u8 as u64;
        // SAFETY: only the addresses of the assembly labels are taken.
        let (start, end, fixup) =
            unsafe { (addr(&__granite_probes_start), addr(&__granite_probes_end), addr(&__granite_probe_fixup)) };
        if (start..end).contains(&frame.elr) {
            let i = slot();
            LAST_ESR[i].store(frame.esr, Ordering::Relaxed);
            LAST_FAR[i].store(frame.far, Ordering::Relaxed);
            frame.elr = fixup;
            return;
        }
    }
    crate::println!(
        "[granite] cpu {}: unexpected {} exception from {}: ESR={:#x} (EC {:#x} {}, ISS {:#x}{}{}) ELR={:#x} FAR={:#x} SPSR={:#x} SP={:#x} LR={:#x}",
        crate::smp::cpu_id(),
        KIND_NAMES[(kind & 3) as usize],
        ORIGIN_NAMES[(kind >> 2) as usize & 3],
        frame.esr,
        ec,
        ec_name(ec),
        frame.esr & 0x1ff_ffff,
        if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) { ", " } else { "" },
        if matches!(ec, 0x20 | 0x21 | 0x24 | 0x25) { dfsc_name(frame.esr & 0x3f) } else { "" },
        frame.elr,
        frame.far,
        frame.spsr,
        frame.sp,
        frame.x[30],
    );
    crate::report::fatal(format_args!(
        "unexpected exception on cpu {}: ESR={:#x} ({}) ELR={:#x} FAR={:#x}",
        crate::smp::cpu_id(),
        frame.esr,
        ec_name(ec),
        frame.elr,
        frame.far
    ));
}
