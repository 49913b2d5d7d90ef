//! Image header and entry point.
//!
//! The image is a raw binary that starts with a 64-byte arm64 Linux `Image` header, so QEMU's
//! `-kernel`, U-Boot's `booti` and the Raspberry Pi firmware load it like a Linux kernel: at a
//! 2 MiB-aligned base + `text_offset` (QEMU virt: 0x40200000; the Pi firmware: 0x80000), entered
//! with the MMU off, x0 = the DTB's physical address.
//!
//! The image is linked at address 0 as a position-independent executable (see `linker.ld`)
//! and relocates itself before any Rust code runs:
//!
//! 1. mask interrupts, select SP_ELx, let EL2 (or EL1) use FP/SIMD (Rust code may);
//! 2. apply every `R_AARCH64_RELATIVE` relocation in `.rela.dyn` (`__rela_start`..`__rela_end`):
//!    `*(load + r_offset) = load + r_addend`, where `load` is where `_start` runs (its link
//!    address is 0);
//! 3. zero `.bss`, point SP at the boot stack (in `.bss`);
//! 4. call [`granite_entry`]`(dtb, load)`.
//!
//! System registers are written here in assembly only where no Rust may run yet
//! (CPTR_EL2 / CPACR_EL1 for FP/SIMD, SPSel, DAIF); everything else goes through `aarch64-cpu`.

use core::arch::global_asm;

/// `R_AARCH64_RELATIVE`.
pub const R_AARCH64_RELATIVE: u32 = 1027;
/// Header `flags`: little endian (bit 0 = 0), 4 KiB pages (bits 2:1 = 1), may be placed
/// anywhere in RAM (bit 3 = 1; the image is position independent).
pub const IMAGE_FLAGS: u64 = (1 << 1) | (1 << 3);

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    /* arm64 Image header (64 bytes) */
    b       2f                      /* code0: jump over the header */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __image_size            /* image_size: file + .bss, page rounded */
    .quad   {flags}                 /* flags */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .byte   0x41, 0x52, 0x4d, 0x64  /* magic "ARM\x64" */
    .long   0                       /* res5 */

2:  msr     daifset, #0xf
    msr     spsel, #1
    mov     x19, x0                 /* the DTB's physical address */
    adr     x20, _start             /* load address = load offset (linked at 0) */

    /* FP/SIMD must not trap: the compiler may use it anywhere. */
    mrs     x1, CurrentEL
    ubfx    x1, x1, #2, #2
    cmp     x1, #2
    b.ne    3f
    mov     x2, #0x33ff             /* CPTR_EL2: RES1 bits only (TFP, TTA, TCPAC clear) */
    msr     cptr_el2, x2
    b       5f
3:  cmp     x1, #1
    b.ne    4f
    mov     x2, #(3 << 20)          /* CPACR_EL1.FPEN = 0b11 */
    msr     cpacr_el1, x2
    b       5f
4:  msr     cptr_el3, xzr           /* EL3: only reached to print an error and stop */
5:  isb

    /* Apply R_AARCH64_RELATIVE relocations. */
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
6:  cmp     x1, x2
    b.hs    8f
    ldp     x3, x4, [x1], #16       /* r_offset, r_info */
    ldr     x5, [x1], #8            /* r_addend */
    cmp     w4, #{r_relative}
    b.ne    7f
    add     x5, x5, x20
    str     x5, [x3, x20]
    b       6b
7:  wfe                             /* another relocation type: cannot run (no console yet) */
    b       7b

    /* Zero .bss (16-byte aligned at both ends). */
8:  adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
9:  cmp     x1, x2
    b.hs    10f
    stp     xzr, xzr, [x1], #16
    b       9b

10: adrp    x1, __boot_stack_top
    add     x1, x1, :lo12:__boot_stack_top
    mov     sp, x1
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    mov     x1, x20
    bl      granite_entry
11: wfe
    b       11b
"#,
    flags = const IMAGE_FLAGS,
    r_relative = const R_AARCH64_RELATIVE,
);

/// The first Rust code: relocated, `.bss` zeroed, on the boot stack, MMU off.
#[unsafe(no_mangle)]
extern "C" fn granite_entry(dtb: u64, load: u64) -> ! {
    super::setup::boot(dtb, load)
}
