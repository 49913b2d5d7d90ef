//! EL2 exception vectors and the trap frame.
//!
//! Every vector entry reserves a [`TrapFrame`] on the current EL2 stack (SP_EL2), saves x0..x30,
//! ELR_EL2, SPSR_EL2, ESR_EL2, FAR_EL2, HPFAR_EL2 and the interrupted stack pointer into it,
//! and calls Rust with a pointer to the frame:
//!
//! * traps taken **from EL2 itself** go to `granite_current_el_trap`: every one is a
//!   hypervisor bug (EL2 runs with interrupts masked: physical interrupts are only taken while
//!   a guest runs) and panics with the syndrome decoded and the full register file;
//! * traps **from EL1/EL0 in AArch64** go to the handler installed with
//!   [`set_lower_el_handler`] (the vCPU trap handler; a boot self-test's while it runs), as
//!   `handler(kind, &mut frame)`. When it returns, ELR_EL2, SPSR_EL2 and x0..x30 are reloaded
//!   **from the frame** (so a handler changes what the guest sees by editing the frame: x0
//!   for a hypercall result, `elr` to skip an emulated instruction) and the vector `eret`s
//!   back to the lower EL;
//! * traps from AArch32 lower ELs, and from EL2 while on SP_EL0 (never used), panic.
//!
//! The frame only holds what EL2 code itself clobbers: the guest's EL1 system registers
//! (SP_EL1, SP_EL0, ELR_EL1, SPSR_EL1, SCTLR_EL1, TTBRs, ...) are untouched by EL2 code and stay
//! live in the CPU while a trap is handled; they are only saved and restored on a vCPU switch.
//!
//! To enter a lower EL the first time (or switch to another vCPU's frame), use
//! [`enter_lower_el`]: it copies a frame to the top of an EL2 stack and takes the same exit
//! path as a returning trap.

use super::esr::Esr;
use core::arch::global_asm;
use core::fmt;
use core::sync::atomic::{AtomicPtr, Ordering};

/// Saved state of the interrupted context. Layout (bytes; fixed, the vectors depend on it):
///
/// ```text
///   0x000  x[0..31]   x0 .. x30
///   0x0f8  sp         the interrupted SP (see below), informational: not restored
///   0x100  elr        ELR_EL2   restored on return
///   0x108  spsr       SPSR_EL2  restored on return
///   0x110  esr        ESR_EL2   (syndrome)
///   0x118  far        FAR_EL2   (faulting virtual address)
///   0x120  hpfar      HPFAR_EL2 (faulting IPA >> 12 << 4, for stage-2 aborts)
///   0x128  _reserved
///   0x130  (size, 16-byte multiple)
/// ```
///
/// `sp` is, for a trap from EL2, SP_EL2 before the exception; for a trap from a lower EL, the
/// stack pointer the guest was using (SP_EL1 if SPSR_EL2.M is EL1h, else SP_EL0).
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub sp: u64,
    pub elr: u64,
    pub spsr: u64,
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
    pub _reserved: u64,
}

pub const FRAME_SIZE: usize = 0x130;
const _: () = {
    assert!(core::mem::size_of::<TrapFrame>() == FRAME_SIZE);
    assert!(core::mem::offset_of!(TrapFrame, sp) == 0xf8);
    assert!(core::mem::offset_of!(TrapFrame, elr) == 0x100);
    assert!(core::mem::offset_of!(TrapFrame, spsr) == 0x108);
    assert!(core::mem::offset_of!(TrapFrame, esr) == 0x110);
    assert!(core::mem::offset_of!(TrapFrame, far) == 0x118);
    assert!(core::mem::offset_of!(TrapFrame, hpfar) == 0x120);
};

impl TrapFrame {
    pub fn esr(&self) -> Esr {
        Esr::new(self.esr)
    }
    /// The faulting IPA of a stage-2 abort (HPFAR_EL2.FIPA, plus FAR's page offset).
    pub fn fault_ipa(&self) -> u64 {
        crate::sysreg::fault_ipa(self.hpfar, self.far)
    }
}

/// Which of the four exceptions of a vector group.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TrapKind {
    Sync,
    Irq,
    Fiq,
    SError,
}

/// Vector numbers passed by the entry code: group * 4 + kind.
const GROUP_CUR_SP0: u64 = 0;
const GROUP_CUR_SPX: u64 = 1;
const GROUP_LOWER_A64: u64 = 2;
const GROUP_LOWER_A32: u64 = 3;

fn kind_of(vector: u64) -> TrapKind {
    match vector & 3 {
        0 => TrapKind::Sync,
        1 => TrapKind::Irq,
        2 => TrapKind::Fiq,
        _ => TrapKind::SError,
    }
}

fn group_name(vector: u64) -> &'static str {
    match vector >> 2 {
        GROUP_CUR_SP0 => "EL2 using SP_EL0",
        GROUP_CUR_SPX => "EL2",
        GROUP_LOWER_A64 => "a lower EL (AArch64)",
        _ => "a lower EL (AArch32)",
    }
}

global_asm!(
    r#"
    .macro GRANITE_VENTRY vector, target
    .balign 0x80
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp]
    mov     x0, #\vector
    b       \target
    .endm

    /* Save x2..x30 and the exception registers (x0, x1 are saved by the entry; x0 holds the
       vector number and survives). */
    .macro GRANITE_SAVE
    stp     x2, x3, [sp, #0x10]
    stp     x4, x5, [sp, #0x20]
    stp     x6, x7, [sp, #0x30]
    stp     x8, x9, [sp, #0x40]
    stp     x10, x11, [sp, #0x50]
    stp     x12, x13, [sp, #0x60]
    stp     x14, x15, [sp, #0x70]
    stp     x16, x17, [sp, #0x80]
    stp     x18, x19, [sp, #0x90]
    stp     x20, x21, [sp, #0xa0]
    stp     x22, x23, [sp, #0xb0]
    stp     x24, x25, [sp, #0xc0]
    stp     x26, x27, [sp, #0xd0]
    stp     x28, x29, [sp, #0xe0]
    str     x30, [sp, #0xf0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [sp, #0x100]
    mrs     x2, esr_el2
    mrs     x3, far_el2
    stp     x2, x3, [sp, #0x110]
    mrs     x2, hpfar_el2
    stp     x2, xzr, [sp, #0x120]
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .global granite_vectors
granite_vectors:
    GRANITE_VENTRY 0, granite_trap_current
    GRANITE_VENTRY 1, granite_trap_current
    GRANITE_VENTRY 2, granite_trap_current
    GRANITE_VENTRY 3, granite_trap_current
    GRANITE_VENTRY 4, granite_trap_current
    GRANITE_VENTRY 5, granite_trap_current
    GRANITE_VENTRY 6, granite_trap_current
    GRANITE_VENTRY 7, granite_trap_current
    GRANITE_VENTRY 8, granite_trap_lower
    GRANITE_VENTRY 9, granite_trap_lower
    GRANITE_VENTRY 10, granite_trap_lower
    GRANITE_VENTRY 11, granite_trap_lower
    GRANITE_VENTRY 12, granite_trap_lower
    GRANITE_VENTRY 13, granite_trap_lower
    GRANITE_VENTRY 14, granite_trap_lower
    GRANITE_VENTRY 15, granite_trap_lower

    .balign 0x80
granite_trap_current:
    GRANITE_SAVE
    add     x2, sp, #{frame}
    str     x2, [sp, #0xf8]
    mov     x1, x0
    mov     x0, sp
    bl      granite_current_el_trap
    b       granite_return_from_trap

granite_trap_lower:
    GRANITE_SAVE
    ldr     x2, [sp, #0x108]
    and     x2, x2, #0xf
    cmp     x2, #5                  /* SPSR_EL2.M == EL1h: the guest was on SP_EL1 */
    b.ne    1f
    mrs     x2, sp_el1
    b       2f
1:  mrs     x2, sp_el0
2:  str     x2, [sp, #0xf8]
    mov     x1, x0
    mov     x0, sp
    bl      granite_lower_el_trap
    b       granite_return_from_trap

    /* x0 = frame to load, x1 = top of the EL2 stack to use for later traps. */
    .global granite_enter_lower
granite_enter_lower:
    sub     x2, x1, #{frame}
    mov     sp, x2
    mov     x3, #{frame}
3:  ldp     x4, x5, [x0], #16
    stp     x4, x5, [x2], #16
    subs    x3, x3, #16
    b.ne    3b

    /* Reload ELR/SPSR and x0..x30 from the frame at sp, pop it, return. */
granite_return_from_trap:
    ldp     x2, x3, [sp, #0x100]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x0, x1, [sp]
    ldp     x2, x3, [sp, #0x10]
    ldp     x4, x5, [sp, #0x20]
    ldp     x6, x7, [sp, #0x30]
    ldp     x8, x9, [sp, #0x40]
    ldp     x10, x11, [sp, #0x50]
    ldp     x12, x13, [sp, #0x60]
    ldp     x14, x15, [sp, #0x70]
    ldp     x16, x17, [sp, #0x80]
    ldp     x18, x19, [sp, #0x90]
    ldp     x20, x21, [sp, #0xa0]
    ldp     x22, x23, [sp, #0xb0]
    ldp     x24, x25, [sp, #0xc0]
    ldp     x26, x27, [sp, #0xd0]
    ldp     x28, x29, [sp, #0xe0]
    ldr     x30, [sp, #0xf0]
    add     sp, sp, #{frame}
    eret
    dsb     nsh                     /* no speculation past the eret */
    isb
"#,
    frame = const FRAME_SIZE,
);

unsafe extern "C" {
    static granite_vectors: u8;
    fn granite_enter_lower(frame: *const TrapFrame, stack_top: u64) -> !;
}

/// Point VBAR_EL2 at the vectors (EL2 only).
pub fn install() {
    use aarch64_cpu::registers::{VBAR_EL2, Writeable};
    let v = &raw const granite_vectors as u64;
    VBAR_EL2.set(v);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Load `frame` into the CPU and `eret` to the lower EL it describes (SPSR_EL2.M). The EL2
/// stack is reset to `stack_top`: the frame is copied just below it, and the next trap from
/// the lower EL builds its frame at the same place.
///
/// # Safety
/// `stack_top` must be the top of this CPU's EL2 stack, nothing below it may be in use any
/// more (the caller's own frames are abandoned), `frame` must not lie in the top
/// [`FRAME_SIZE`] bytes of that stack (it is copied there), HCR_EL2/VTTBR_EL2/VTCR_EL2 and the EL1 system
/// registers must describe the guest, and `frame.spsr` must name a lower EL with the state
/// the guest is to start in.
pub unsafe fn enter_lower_el(frame: &TrapFrame, stack_top: u64) -> ! {
    // SAFETY: the caller upholds the contract above.
    unsafe { granite_enter_lower(frame, stack_top) }
}

/// What handles traps from EL1/EL0 (AArch64). Returning resumes the lower EL from the frame.
pub type LowerElHandler = fn(TrapKind, &mut TrapFrame);

/// The installed [`LowerElHandler`] (a `fn` pointer); null until boot installs one.
static LOWER_EL_HANDLER: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Install the handler of traps from a lower EL (the vCPU trap handler, or a self-test's).
pub fn set_lower_el_handler(h: LowerElHandler) {
    LOWER_EL_HANDLER.store(h as *mut (), Ordering::Release);
}

#[unsafe(no_mangle)]
extern "C" fn granite_lower_el_trap(frame: &mut TrapFrame, vector: u64) {
    // (Every trap of every guest comes through here: the panics are out of line so the
    // common path needs no stack frame and tail-calls the handler.)
    if vector >> 2 == GROUP_LOWER_A32 {
        lower_el_panic(frame, vector, "trap from an AArch32 lower EL: AArch32 guests are not supported");
    }
    let h = LOWER_EL_HANDLER.load(Ordering::Acquire);
    if h.is_null() {
        lower_el_panic(frame, vector, "trap from a lower EL before any handler was installed");
    }
    // SAFETY: the only values stored are `LowerElHandler`s (`set_lower_el_handler`).
    let h: LowerElHandler = unsafe { core::mem::transmute::<*mut (), LowerElHandler>(h) };
    h(kind_of(vector), frame)
}

#[cold]
#[inline(never)]
fn lower_el_panic(frame: &TrapFrame, vector: u64, what: &str) -> ! {
    panic!("{:?} {what}\n{}", kind_of(vector), Dump(frame))
}

#[unsafe(no_mangle)]
extern "C" fn granite_current_el_trap(frame: &mut TrapFrame, vector: u64) {
    let kind = kind_of(vector);
    match kind {
        TrapKind::Sync => {
            panic!("hypervisor fault: {} taken from {}\n{}", frame.esr().ec_name(), group_name(vector), Dump(frame))
        }
        _ => panic!("unexpected {kind:?} exception taken from {}\n{}", group_name(vector), Dump(frame)),
    }
}

/// The interrupted context, for fault reports.
pub struct Dump<'a>(pub &'a TrapFrame);

fn spsr_mode(spsr: u64) -> &'static str {
    if spsr & 0x10 != 0 {
        return "AArch32";
    }
    match spsr & 0xf {
        0b0000 => "EL0t",
        0b0100 => "EL1t",
        0b0101 => "EL1h",
        0b1000 => "EL2t",
        0b1001 => "EL2h",
        _ => "?",
    }
}

impl fmt::Display for Dump<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        let esr = t.esr();
        writeln!(f, "  {esr}")?;
        write!(f, "  ELR_EL2   {:#018x}", t.elr)?;
        let el2 = matches!(t.spsr & 0x1f, 0b01000 | 0b01001);
        if let Some(off) = super::image::image_offset(t.elr).filter(|_| el2) {
            write!(f, " (image offset {off:#x}: addr2line -e granite {off:#x})")?;
        }
        writeln!(
            f,
            "\n  SPSR_EL2  {:#018x} ({}, masked: {}{}{}{}, NZCV {:04b})",
            t.spsr,
            spsr_mode(t.spsr),
            if t.spsr & (1 << 9) != 0 { 'D' } else { '-' },
            if t.spsr & (1 << 8) != 0 { 'A' } else { '-' },
            if t.spsr & (1 << 7) != 0 { 'I' } else { '-' },
            if t.spsr & (1 << 6) != 0 { 'F' } else { '-' },
            (t.spsr >> 28) & 0xf
        )?;
        writeln!(
            f,
            "  FAR_EL2   {:#018x}{}",
            t.far,
            if esr.far_valid() { "" } else { " (not valid for this exception)" }
        )?;
        if el2 {
            writeln!(f, "  HPFAR_EL2 {:#018x}", t.hpfar)?;
        } else {
            writeln!(f, "  HPFAR_EL2 {:#018x} (faulting IPA {:#x} if a stage-2 abort)", t.hpfar, t.fault_ipa())?;
        }
        writeln!(f, "  SP        {:#018x}", t.sp)?;
        for (i, pair) in t.x.chunks(2).enumerate() {
            let r = 2 * i;
            match pair {
                [a, b] => writeln!(f, "  x{:<2} {a:#018x}   x{:<2} {b:#018x}", r, r + 1)?,
                [a] => writeln!(f, "  x{:<2} {a:#018x}", r)?,
                _ => {}
            }
        }
        if el2 {
            write!(f, "  call chain (image offsets):")?;
            super::panic::write_backtrace(f, t.x[29])?;
        }
        Ok(())
    }
}
