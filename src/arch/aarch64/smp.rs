//! Starting the secondary CPUs named by the device tree.
//!
//! Each CPU's per-CPU block ([`super::percpu`]) is named by its TPIDR_EL2. Secondaries are
//! released with PSCI `CPU_ON` through the
//! firmware conduit, or through their spin table (`cpu-release-addr`, the Raspberry Pi's
//! firmware). Either way they start with the MMU off at `granite_secondary_entry`, find their
//! index and stack by their MPIDR in [`SecondaryBoot`] (cleaned to memory by the boot CPU),
//! turn on the MMU with the boot CPU's translation registers, and reach
//! [`granite_secondary_main`], which initialises the CPU and parks it in the idle loop until a
//! vCPU pinned to it is started.

use super::{cache, exceptions, gic, image, percpu, psci, vcpu_run};
use crate::dt::{EnableMethod, Platform};
use crate::sched::MAX_CPUS;
use crate::sysreg::{MPIDR_AFFINITY_MASK, mpidr_affinity};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use log::{info, warn};

/// Each secondary CPU's EL2 stack.
const STACK_ORDER: u32 = 4; // 64 KiB

/// The boot-time table secondaries read with their MMU off (`#[repr(C)]`; offsets used by
/// the entry assembly).
#[repr(C)]
pub struct SecondaryBoot {
    count: AtomicU64,
    mair: AtomicU64,
    tcr: AtomicU64,
    ttbr0: AtomicU64,
    sctlr: AtomicU64,
    mpidr: [AtomicU64; MAX_CPUS],
    stack_top: [AtomicU64; MAX_CPUS],
}

#[unsafe(no_mangle)]
static GRANITE_SECONDARY_BOOT: SecondaryBoot = SecondaryBoot {
    count: AtomicU64::new(0),
    mair: AtomicU64::new(0),
    tcr: AtomicU64::new(0),
    ttbr0: AtomicU64::new(0),
    sctlr: AtomicU64::new(0),
    mpidr: [const { AtomicU64::new(u64::MAX) }; MAX_CPUS],
    stack_top: [const { AtomicU64::new(0) }; MAX_CPUS],
};

global_asm!(
    r#"
    .text
    .balign 8
    .global granite_secondary_entry
granite_secondary_entry:
    msr     daifset, #0xf
    msr     spsel, #1
    mov     x2, #0x33ff                 /* CPTR_EL2: FP/SIMD not trapped */
    msr     cptr_el2, x2
    isb
    mrs     x1, mpidr_el1
    ldr     x3, ={mask}
    and     x1, x1, x3
    adrp    x2, GRANITE_SECONDARY_BOOT
    add     x2, x2, :lo12:GRANITE_SECONDARY_BOOT
    ldr     x4, [x2, #0]                /* count */
    add     x6, x2, #40                 /* mpidr[] */
    mov     x5, #0
1:  cmp     x5, x4
    b.hs    9f
    ldr     x7, [x6, x5, lsl #3]
    cmp     x7, x1
    b.eq    2f
    add     x5, x5, #1
    b       1b
2:  add     x6, x2, #(40 + 8 * {max})  /* stack_top[] */
    ldr     x7, [x6, x5, lsl #3]
    mov     sp, x7
    ldr     x9, [x2, #8]
    msr     mair_el2, x9
    ldr     x9, [x2, #16]
    msr     tcr_el2, x9
    ldr     x9, [x2, #24]
    msr     ttbr0_el2, x9
    isb
    tlbi    alle2
    dsb     nsh
    ic      iallu
    dsb     nsh
    isb
    ldr     x9, [x2, #32]
    msr     sctlr_el2, x9
    isb
    mov     x0, x5
    mov     x29, xzr
    mov     x30, xzr
    bl      granite_secondary_main
9:  wfe                                 /* not in the table: nothing to do */
    b       9b
"#,
    max = const MAX_CPUS,
    mask = const MPIDR_AFFINITY_MASK,
);

const _: () = {
    assert!(core::mem::offset_of!(SecondaryBoot, mpidr) == 40);
    assert!(core::mem::offset_of!(SecondaryBoot, stack_top) == 40 + 8 * MAX_CPUS);
};

unsafe extern "C" {
    fn granite_secondary_entry();
}

/// On the boot CPU, MMU on, hypervisor built: record every CPU and start the secondaries.
pub fn start_secondaries(plat: &Platform) {
    let hv = percpu::hv();
    let boot_mpidr = mpidr_affinity(MPIDR_EL1.get());
    let (_, boot_top) = image::boot_stack();
    // (index, MPIDR, stack top) of every CPU
    let mut list: Vec<(usize, u64, u64)> = Vec::from([(0, boot_mpidr, boot_top)]);
    let mut release: Vec<(usize, EnableMethod, Option<u64>)> = Vec::new();
    for c in plat.cpus.iter().filter(|c| c.enabled && c.mpidr != boot_mpidr) {
        if list.len() == MAX_CPUS {
            warn!("more than {MAX_CPUS} CPUs: {} and the following are not used", c.name);
            break;
        }
        let stack = match hv.mm.alloc_xenheap_order(STACK_ORDER) {
            Ok(m) => m.addr(),
            Err(_) => {
                warn!("no memory for the stack of CPU {}", c.name);
                break;
            }
        };
        let index = list.len();
        let top = stack + (4096 << STACK_ORDER);
        list.push((index, c.mpidr, top));
        release.push((index, c.enable_method, c.release_addr));
    }
    let b = &GRANITE_SECONDARY_BOOT;
    for &(index, mpidr, top) in &list {
        b.mpidr[index].store(mpidr, Ordering::Relaxed);
        b.stack_top[index].store(top, Ordering::Relaxed);
        percpu::declare(index, mpidr, top);
    }
    b.count.store(list.len() as u64, Ordering::Relaxed);
    b.mair.store(MAIR_EL2.get(), Ordering::Relaxed);
    b.tcr.store(TCR_EL2.get(), Ordering::Relaxed);
    b.ttbr0.store(TTBR0_EL2.get(), Ordering::Relaxed);
    b.sctlr.store(SCTLR_EL2.get(), Ordering::Relaxed);
    let p = b as *const SecondaryBoot as u64;
    cache::clean_range(p, p + core::mem::size_of::<SecondaryBoot>() as u64);

    let entry = granite_secondary_entry as *const () as u64;
    for (index, method, release_addr) in release {
        let c = percpu::cpu(index);
        match (method, release_addr) {
            (EnableMethod::SpinTable, Some(addr)) => {
                // SAFETY: the release address is RAM the firmware reserved for this (kept out
                // of every allocator) and mapped at EL2; the CPU spinning on it reads it with
                // its MMU off, so it is cleaned to memory before the event.
                unsafe { core::ptr::write_volatile(addr as *mut u64, entry) };
                cache::clean_range(addr, addr + 8);
                aarch64_cpu::asm::sev();
            }
            (EnableMethod::Psci, _) => {
                let r = psci::call(xen_abi::psci::PSCI_CPU_ON_64, c.mpidr(), entry, index as u64);
                if r != Some(0) {
                    warn!("CPU{index} (MPIDR {:#x}): PSCI CPU_ON failed ({r:?})", c.mpidr());
                }
            }
            _ => warn!("CPU{index} (MPIDR {:#x}): no way to start it", c.mpidr()),
        }
    }
    // Wait (at most about a second) for them to come up.
    let freq = CNTFRQ_EL0.get().max(1);
    let t0 = CNTPCT_EL0.get();
    while percpu::online() < percpu::cpus().len() && CNTPCT_EL0.get() - t0 < freq {
        core::hint::spin_loop();
    }
    info!("SMP: {} of {} CPUs online", percpu::online(), percpu::cpus().len());
}

/// A secondary CPU's first Rust code: MMU on, on its own stack.
#[unsafe(no_mangle)]
extern "C" fn granite_secondary_main(index: u64) -> ! {
    let c = percpu::cpu(index as usize);
    percpu::init_this_cpu(c.index, c.mpidr(), c.stack_top());
    exceptions::install();
    HCR_EL2.write(HCR_EL2::RW::EL1IsAarch64);
    VTTBR_EL2.set(0);
    let hv = percpu::hv();
    VTCR_EL2.set(hv.stage.vtcr);
    barrier::isb(barrier::SY);
    if gic::driver().is_some() {
        gic::init_cpu();
        gic::init_virt();
        vcpu_run::enable_cpu_interrupts();
    }
    c.set_online();
    hv.sched.set_online(c.index);
    log::debug!("CPU{index} (MPIDR {:#x}) online", c.mpidr());
    vcpu_run::idle()
}
