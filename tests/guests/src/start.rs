//! The arm64 Image header, the entry code, the exception vectors and the fault-probing
//! helpers (all assembly).
//!
//! Boot contract (the arm64 Linux boot protocol, as Xen uses it for dom0): EL1h, MMU off,
//! D-cache off, x0 = physical address of the DTB, the image loaded at a 2 MiB aligned
//! address and cleaned to the point of coherency. The entry code runs before any Rust code:
//!
//! 1. masks interrupts and enables FP/SIMD (the compiler uses NEON registers);
//! 2. cleans and invalidates the data cache over the whole image and BSS, so that no stale
//!    line can later be written back over what we write with the MMU off;
//! 3. applies the image's own `R_AARCH64_RELATIVE` relocations (`.rela.dyn`) with the load
//!    address (the image is linked at 0);
//! 4. zeroes BSS, sets the boot stack (top of BSS) and VBAR_EL1;
//! 5. sets TPIDR_EL1 to 0 (logical CPU 0, see [`crate::smp::cpu_id`]) and calls
//!    [`crate::rt::rust_entry`] with the DTB address. Rust code first runs with the MMU
//!    off: every access is then Device memory, which is fine because the target has
//!    `+strict-align` (no unaligned access is ever generated) and nothing before the MMU is
//!    on uses exclusive (atomic read-modify-write) instructions.
//!
//! Secondary CPUs enter at `__granite_secondary_entry` (see [`crate::smp`]): they turn the
//! MMU on with the boot CPU's page tables before touching memory at all.

use core::arch::global_asm;

global_asm!(
    r#"
    .section .text.head, "ax"
    .global _head
_head:
    // arm64 Image header (Documentation/arch/arm64/booting.rst), 64 bytes.
    b       __granite_entry         // code0
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   _end - _head            // image_size: file + BSS
    .quad   0x2                     // flags: little endian, 4 KiB pages, 2 MiB aligned
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

    .text
    .balign 8
__granite_entry:
    mrs     x21, cntpct_el0                 // when we got control (see rt::entry_cntpct)
    msr     daifset, #0xf
    mov     x19, x0                         // DTB physical address
    msr     tpidr_el1, xzr                  // logical CPU 0 (see smp::cpu_id)

    mov     x9, #(3 << 20)                  // CPACR_EL1.FPEN: no FP/SIMD trapping
    msr     cpacr_el1, x9
    isb

    adrp    x0, _head
    add     x0, x0, :lo12:_head
    adrp    x1, _end
    add     x1, x1, :lo12:_end
    bl      __granite_dcache_civac

    // Relocate: for each Elf64_Rela {{offset, info, addend}} of type RELATIVE (1027),
    // *(base + offset) = base + addend.
    adrp    x20, _head
    add     x20, x20, :lo12:_head
    adrp    x9, __rela_start
    add     x9, x9, :lo12:__rela_start
    adrp    x10, __rela_end
    add     x10, x10, :lo12:__rela_end
1:  cmp     x9, x10
    b.hs    3f
    ldp     x11, x12, [x9], #16
    ldr     x13, [x9], #8
    cmp     w12, #1027
    b.ne    2f
    add     x13, x13, x20
    str     x13, [x20, x11]
    b       1b
2:  wfe                                     // unknown relocation type: cannot run
    b       2b

3:  adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
4:  cmp     x9, x10
    b.hs    5f
    stp     xzr, xzr, [x9], #16
    b       4b

5:  adrp    x9, GRANITE_ENTRY_CNTPCT       // in .bss: stored once it is zeroed
    add     x9, x9, :lo12:GRANITE_ENTRY_CNTPCT
    str     x21, [x9]
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9
    adrp    x9, __granite_vectors
    add     x9, x9, :lo12:__granite_vectors
    msr     vbar_el1, x9
    isb
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      {rust_entry}
6:  wfe
    b       6b

    // Secondary CPUs (PSCI CPU_ON): x0 = context id = logical CPU number, EL1h, MMU off.
    // Nothing is written to memory before the MMU is on: the boot CPU's MMU settings are
    // read from SECONDARY_MMU, which it cleaned to the point of coherency, so these
    // non-cacheable reads see them. Then the CPU's own stack and the Rust entry.
    .global __granite_secondary_entry
    .balign 8
__granite_secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0
    msr     tpidr_el1, x19
    mov     x9, #(3 << 20)                  // CPACR_EL1.FPEN
    msr     cpacr_el1, x9
    isb
    cbz     x19, 19f                        // 0 is the boot CPU: a bogus start
    cmp     x19, #{max_cpus}
    b.hs    19f
    adrp    x9, __granite_vectors
    add     x9, x9, :lo12:__granite_vectors
    msr     vbar_el1, x9
    adrp    x10, {mmu_params}
    add     x10, x10, :lo12:{mmu_params}
    ldp     x11, x12, [x10]                 // MAIR_EL1, TCR_EL1
    ldp     x13, x14, [x10, #16]            // TTBR0_EL1, SCTLR_EL1
    cbz     x14, 19f                        // not published: the MMU is not on yet
    msr     mair_el1, x11
    msr     tcr_el1, x12
    msr     ttbr0_el1, x13
    isb
    tlbi    vmalle1
    dsb     nsh
    isb
    msr     sctlr_el1, x14
    isb
    ic      iallu
    dsb     nsh
    isb
    adrp    x9, {stacks}
    add     x9, x9, :lo12:{stacks}
    mov     x10, #{stack_size}
    madd    x9, x19, x10, x9                // this CPU's stack: stacks + cpu * size ...
    add     x9, x9, x10                     // ... and it grows down from the end
    mov     sp, x9
    mov     x29, xzr
    mov     x30, xzr
    mov     x0, x19
    bl      {secondary_entry}
19: wfe
    b       19b

    // __granite_dcache_civac(start x0, end x1): clean+invalidate D-cache lines to PoC.
    // Clobbers x0, x2, x3 only.
    .global __granite_dcache_civac
__granite_dcache_civac:
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4                 // DminLine: log2(words per line)
    mov     x2, #4
    lsl     x2, x2, x3                      // line size in bytes
    sub     x3, x2, #1
    bic     x0, x0, x3
7:  cmp     x0, x1
    b.hs    8f
    dc      civac, x0
    add     x0, x0, x2
    b       7b
8:  dsb     sy
    ret

    // Probes: one instruction that may fault, with a fixup the exception handler resumes
    // at. They return {{value, faulted}} in x0/x1. Every load or store between
    // __granite_probes_start and __granite_probes_end is a probe instruction (see
    // exception.rs): 64-, 32-, 16- and 8-bit accesses, each of the single-register,
    // no-writeback form a hypervisor can decode from the syndrome.
    .global __granite_probes_start
    .global __granite_probes_end
    .global __granite_probe_ld64
    .global __granite_probe_ld64_insn
    .global __granite_probe_st64
    .global __granite_probe_st64_insn
    .global __granite_probe_ld32
    .global __granite_probe_ld16
    .global __granite_probe_ld8
    .global __granite_probe_st32
    .global __granite_probe_st16
    .global __granite_probe_st8
    .global __granite_probe_fixup
__granite_probes_start:
__granite_probe_ld64:
__granite_probe_ld64_insn:
    ldr     x0, [x0]
    mov     x1, #0
    ret
__granite_probe_st64:
__granite_probe_st64_insn:
    str     x1, [x0]
    mov     x0, #0
    mov     x1, #0
    ret
__granite_probe_ld32:
    ldr     w0, [x0]
    mov     x1, #0
    ret
__granite_probe_ld16:
    ldrh    w0, [x0]
    mov     x1, #0
    ret
__granite_probe_ld8:
    ldrb    w0, [x0]
    mov     x1, #0
    ret
__granite_probe_st32:
    str     w1, [x0]
    mov     x0, #0
    mov     x1, #0
    ret
__granite_probe_st16:
    strh    w1, [x0]
    mov     x0, #0
    mov     x1, #0
    ret
__granite_probe_st8:
    strb    w1, [x0]
    mov     x0, #0
    mov     x1, #0
    ret
__granite_probes_end:
__granite_probe_fixup:
    mov     x0, #0
    mov     x1, #1
    ret

    // Exception vectors: 16 entries of 0x80 bytes. Each saves x0/x1, reads the virtual
    // counter (for interrupt latency: the vector's first instructions), puts its index in
    // x0 and jumps to the common path, which saves the rest of the frame (see
    // `ExceptionFrame`) and calls the Rust handler with (frame, index, counter); if the
    // handler returns, the (possibly edited) frame is restored and we `eret`.
    .section .text.vectors, "ax"
    .balign 2048
    .global __granite_vectors
__granite_vectors:
    .irp    kind, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp, #0]
    mrs     x1, cntvct_el0
    mov     x0, #\kind
    b       __granite_exception_common
    .endr

__granite_exception_common:
    stp     x2, x3, [sp, #16]
    mov     x3, x1                          // the counter at the vector
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x1, elr_el1
    stp     x30, x1, [sp, #240]
    mrs     x1, spsr_el1
    mrs     x2, esr_el1
    stp     x1, x2, [sp, #256]
    mrs     x1, far_el1
    add     x2, sp, #{frame_size}
    stp     x1, x2, [sp, #272]
    mov     x2, x3
    mov     x1, x0
    mov     x0, sp
    bl      {handler}
    ldp     x30, x1, [sp, #240]
    msr     elr_el1, x1
    ldr     x1, [sp, #256]
    msr     spsr_el1, x1
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{frame_size}
    eret
    "#,
    rust_entry = sym crate::rt::rust_entry,
    secondary_entry = sym crate::smp::secondary_rust_entry,
    mmu_params = sym crate::mmu::SECONDARY_MMU,
    stacks = sym crate::smp::STACKS,
    stack_size = const crate::smp::STACK_SIZE,
    max_cpus = const crate::smp::MAX_CPUS,
    handler = sym crate::exception::handle,
    frame_size = const core::mem::size_of::<crate::exception::ExceptionFrame>(),
);
