//! Boot-time self-tests of the arch layer, selected with `granite_selftest=<name>` on the
//! command line (used by `scripts/boot-smoke.sh`; nothing runs without the option):
//!
//! * `fault`: a write to an unmapped address at EL2 must end in a panic naming the data abort,
//!   its DFSC, WnR and FAR;
//! * `wx`: a write to the hypervisor's own code must end in a panic naming a permission fault
//!   (the image is mapped W^X);
//! * `trap`: enter EL1 through [`enter_lower_el`] with a known register file, take two `HVC`
//!   traps through the vectors into its own lower-EL handler, check that every
//!   register, ELR, SPSR, ESR and the guest SP arrive in the [`TrapFrame`], change x0 in the
//!   frame and check that the guest sees it after the `eret`;
//! * `p2m`: create a domain, map 2 MiB of RAM in its stage-2 tables, look it up, unmap it
//!   (a real TLB flush with its VTTBR loaded), destroy the domain, audit, and check that every
//!   page went back to the allocator.
//!
//! Each ends the run: success is a log line `selftest <name>: OK` and a normal power-off;
//! failure is a panic.

use super::exceptions::{self, TrapFrame, TrapKind, enter_lower_el};
use super::{esr, image, psci};
use crate::hv::Hypervisor;
use crate::p2m::P2mType;
use crate::types::Gfn;
use aarch64_cpu::registers::{SCTLR_EL1, SP_EL1, Writeable};
use core::arch::global_asm;
use core::sync::atomic::{AtomicU8, Ordering};
use log::info;

global_asm!(
    r#"
    .section .text.selftest, "ax"
    .balign 4
    .global granite_selftest_el1
granite_selftest_el1:
    hvc     #0x4701
    add     x2, x0, #1
    mov     x3, sp
    hvc     #0x4702
1:  wfe
    b       1b
"#
);

unsafe extern "C" {
    static granite_selftest_el1: u8;
}

/// Test names accepted by `granite_selftest=`.
pub const NAMES: [&str; 4] = ["fault", "wx", "trap", "p2m"];

/// Which step of the `trap` test the next lower-EL trap is.
static TRAP_STEP: AtomicU8 = AtomicU8::new(0);
const PATTERN: u64 = 0x5a5a_0000;
const GUEST_SP: u64 = 0x6b6b_6b60;
const NEW_X0: u64 = 0x1234_5678;

/// Run self-test `name`. Never returns.
pub fn run(name: &str, hv: &Hypervisor) -> ! {
    info!("selftest {name}: start");
    match name {
        "fault" => fault(),
        "wx" => write_to_text(),
        "trap" => trap(),
        "p2m" => {
            p2m(hv);
            pass("p2m")
        }
        _ => panic!("unknown selftest {name:?} (known: {NAMES:?})"),
    }
}

fn pass(name: &str) -> ! {
    info!("selftest {name}: OK");
    info!("granite: self-test done, powering off");
    psci::power_off(psci::exit_code::OK)
}

fn fault() -> ! {
    let addr = 0x1230 as *mut u64;
    info!("selftest fault: writing to unmapped address {addr:p} at EL2, expecting a panic");
    // SAFETY: deliberately invalid: the address is not in the EL2 map, so this write faults
    // (synchronous data abort) before touching anything; the fault handler panics.
    unsafe { core::ptr::write_volatile(addr, 0xdead) };
    panic!("selftest fault: the write to an unmapped address did not fault")
}

fn write_to_text() -> ! {
    let addr = pass as *const () as *mut u32;
    info!("selftest wx: writing to hypervisor code at {addr:p}, expecting a permission fault");
    // SAFETY: deliberately invalid: the text is mapped read-only, so the write faults before
    // changing anything; the fault handler panics.
    unsafe { core::ptr::write_volatile(addr, 0xd503_201f) };
    panic!("selftest wx: the write to hypervisor code did not fault")
}

fn trap() -> ! {
    let entry = &raw const granite_selftest_el1 as u64;
    let mut f = TrapFrame::default();
    for (i, x) in f.x.iter_mut().enumerate() {
        *x = PATTERN + i as u64;
    }
    f.elr = entry;
    f.spsr = 0x3c5; // EL1h, D, A, I, F masked
    // EL1 runs with its MMU and caches off (identity, physical addresses), little endian;
    // 0x30d00800 is SCTLR_EL1's RES1 bits.
    SCTLR_EL1.set(0x30d0_0800);
    SP_EL1.set(GUEST_SP);
    TRAP_STEP.store(1, Ordering::Release);
    exceptions::set_lower_el_handler(lower_el_trap);
    info!("selftest trap: entering EL1 at {entry:#x}");
    let (_, top) = image::boot_stack();
    // SAFETY: `top` is this CPU's EL2 stack top and nothing on the stack is needed any more
    // (this function never returns); HCR_EL2.RW = 1 and no stage 2: EL1 runs the code at
    // `entry` from the image at its physical address.
    unsafe { enter_lower_el(&f, top) }
}

fn check(ok: bool, what: &str, f: &TrapFrame) {
    if !ok {
        panic!("selftest trap: {what}\n{}", super::exceptions::Dump(f));
    }
}

/// Lower-EL traps while the `trap` test runs (the handler it installs).
fn lower_el_trap(kind: TrapKind, f: &mut TrapFrame) {
    let entry = &raw const granite_selftest_el1 as u64;
    let e = f.esr();
    check(kind == TrapKind::Sync, "expected a synchronous trap", f);
    check(e.ec() == esr::ec::HVC64, "expected an HVC trap (EC 0x16)", f);
    check(f.spsr & 0x1f == 0b00101, "SPSR_EL2.M should say EL1h", f);
    check(f.sp == GUEST_SP, "frame.sp should be the guest's SP_EL1", f);
    match TRAP_STEP.load(Ordering::Acquire) {
        1 => {
            check(e.iss() & 0xffff == 0x4701, "first HVC immediate", f);
            check(f.elr == entry + 4, "ELR_EL2 should point after the first HVC", f);
            for (i, &x) in f.x.iter().enumerate() {
                check(x == PATTERN + i as u64, "x0..x30 should arrive unchanged", f);
            }
            info!("selftest trap: HVC #0x4701 from EL1, all 31 registers, ELR, SPSR, ESR, SP_EL1 as expected");
            f.x[0] = NEW_X0;
            TRAP_STEP.store(2, Ordering::Release);
        }
        2 => {
            check(e.iss() & 0xffff == 0x4702, "second HVC immediate", f);
            check(f.elr == entry + 16, "ELR_EL2 should point after the second HVC", f);
            check(f.x[0] == NEW_X0, "x0 set in the frame should reach the guest", f);
            check(f.x[2] == NEW_X0 + 1, "the guest should compute x2 = x0 + 1", f);
            check(f.x[3] == GUEST_SP, "the guest's SP should be SP_EL1", f);
            for i in (1..31).filter(|&i| i != 2 && i != 3) {
                check(f.x[i] == PATTERN + i as u64, "registers should survive the round trip", f);
            }
            info!("selftest trap: HVC #0x4702: x0 written by EL2 seen by EL1, registers preserved across eret");
            TRAP_STEP.store(0, Ordering::Release);
            pass("trap")
        }
        s => panic!("selftest trap: unexpected step {s}"),
    }
}

fn p2m(hv: &Hypervisor) {
    let before = hv.mm.heap.free_frames();
    let d = hv.create_domain(hv.domain_config(1)).unwrap_or_else(|e| panic!("create domain: {e:?}"));
    let ram = hv.mm.alloc_domheap(1, 9).unwrap_or_else(|e| panic!("allocate 2 MiB: {e:?}"));
    let gfn = Gfn(0x4_0000);
    {
        let mut w = d.p2m.write(&hv.mm);
        w.insert(gfn, 512, ram, P2mType::RamRw).unwrap_or_else(|e| panic!("insert: {e:?}"));
        let m = w.lookup(Gfn(gfn.0 + 7)).expect("mapped");
        assert!(m.mfn == ram.add(7) && m.ty == P2mType::RamRw && m.order == 9, "lookup: {m:?}");
        // a 4 KiB hole in the block: split, then a ranged TLB flush of the guest's VMID
        w.remove(Gfn(gfn.0 + 3), 1).unwrap_or_else(|e| panic!("remove: {e:?}"));
        assert!(w.lookup(Gfn(gfn.0 + 3)).is_none());
        assert_eq!(w.lookup(Gfn(gfn.0 + 4)).map(|m| (m.mfn, m.order)), Some((ram.add(4), 0)));
        w.remove(gfn, 512).unwrap_or_else(|e| panic!("remove all: {e:?}"));
    }
    info!(
        "selftest p2m: d1 (VMID {}, VTTBR {:#x}) mapped, split, unmapped 2 MiB with stage-2 TLB flushes",
        d.p2m.vmid(),
        d.p2m.vttbr()
    );
    hv.destroy_domain(&d);
    drop(d);
    hv.reap();
    let rep = crate::audit::audit(hv);
    assert!(rep.is_clean(), "audit: {:?}", rep.violations);
    assert_eq!(hv.dying_domains(), 0, "domain not finalised");
    assert_eq!(hv.mm.heap.free_frames(), before, "pages leaked");
    info!("selftest p2m: domain destroyed, audit clean, all {before} free frames back");
}
