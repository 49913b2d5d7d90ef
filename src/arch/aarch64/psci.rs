//! Power control: PSCI calls through the device tree's conduit (`/psci` `method`), and the
//! optional semihosting exit (`granite_exit=semihosting`, for test runs under QEMU
//! `-semihosting`: the machine's exit status then carries a result code).
//!
//! Everything here uses plain loads and stores only, so it also works with the MMU off.

use crate::dt::Conduit;
use core::arch::asm;
use core::sync::atomic::{AtomicU8, Ordering};

pub use xen_abi::psci::{PSCI_CPU_ON_64, PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION};

/// Exit codes given to semihosting (QEMU's exit status).
pub mod exit_code {
    pub const OK: u32 = 0;
    pub const PANIC: u32 = 1;
    pub const WRONG_EL: u32 = 2;
    pub const BAD_PLATFORM: u32 = 3;
    /// Dom0 crashed (`SCHEDOP_shutdown(crash)`) or could not be built.
    pub const DOM0_FAILED: u32 = 4;
}

const NONE: u8 = 0;
const SMC: u8 = 1;
const HVC: u8 = 2;

static CONDUIT: AtomicU8 = AtomicU8::new(NONE);
static SEMIHOSTING: AtomicU8 = AtomicU8::new(0);

pub fn set_conduit(c: Option<Conduit>) {
    let v = match c {
        None => NONE,
        Some(Conduit::Smc) => SMC,
        Some(Conduit::Hvc) => HVC,
    };
    CONDUIT.store(v, Ordering::Release);
}

/// End runs with a semihosting `SYS_EXIT` instead of PSCI (only when the command line says
/// `granite_exit=semihosting`: without QEMU's `-semihosting` the `hlt` is an undefined
/// instruction).
pub fn use_semihosting_exit(on: bool) {
    SEMIHOSTING.store(on as u8, Ordering::Release);
}

/// An SMCCC call with up to three arguments; `None` if there is no conduit.
pub fn call(fid: u32, a1: u64, a2: u64, a3: u64) -> Option<u64> {
    let mut x0 = fid as u64;
    match CONDUIT.load(Ordering::Acquire) {
        // SAFETY: an SMCCC call to the firmware (or QEMU's PSCI emulation); SMCCC 1.0 allows
        // x0-x17 to be clobbered, which the operands declare. It touches no memory of ours.
        SMC => unsafe {
            asm!("smc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                 out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                 out("x16") _, out("x17") _, options(nostack))
        },
        // SAFETY: as above, through the hypervisor conduit (we run at EL1 under a hypervisor).
        HVC => unsafe {
            asm!("hvc #0", inout("x0") x0, inout("x1") a1 => _, inout("x2") a2 => _, inout("x3") a3 => _,
                 out("x4") _, out("x5") _, out("x6") _, out("x7") _, out("x8") _, out("x9") _,
                 out("x10") _, out("x11") _, out("x12") _, out("x13") _, out("x14") _, out("x15") _,
                 out("x16") _, out("x17") _, options(nostack))
        },
        _ => return None,
    }
    Some(x0)
}

/// PSCI version (major << 16 | minor), if PSCI answers.
pub fn version() -> Option<(u32, u32)> {
    let v = call(PSCI_VERSION, 0, 0, 0)? as u32;
    (v as i32 >= 0).then_some((v >> 16, v & 0xffff))
}

/// Semihosting `SYS_EXIT` with `ADP_Stopped_ApplicationExit` and a status code.
fn semihosting_exit(code: u32) {
    let block: [u64; 2] = [0x20026, code as u64];
    // SAFETY: the semihosting call reads the two-word parameter block, which lives on our
    // stack for the duration of the call; QEMU ends the machine. Only issued when the
    // command line asked for it (QEMU runs with -semihosting).
    unsafe {
        asm!("hlt #0xf000", inout("x0") 0x18u64 => _, in("x1") block.as_ptr(), options(nostack));
    }
}

fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}

/// Turn the machine off. `code` is the semihosting exit status (PSCI `SYSTEM_OFF` has none:
/// QEMU exits with 0). Never returns: if nothing works, the CPU halts with a message.
pub fn power_off(code: u32) -> ! {
    super::console::flush();
    if SEMIHOSTING.load(Ordering::Acquire) != 0 {
        semihosting_exit(code);
    }
    let r = call(PSCI_SYSTEM_OFF, 0, 0, 0);
    super::console::raw_write_fmt(format_args!(
        "granite: power-off failed (PSCI {}), halting\n",
        match r {
            None => "unavailable: no /psci node",
            Some(_) => "SYSTEM_OFF returned",
        }
    ));
    halt()
}

/// Reset the machine (PSCI `SYSTEM_RESET`); halts if that fails.
pub fn reset() -> ! {
    super::console::flush();
    let _ = call(PSCI_SYSTEM_RESET, 0, 0, 0);
    super::console::raw_write_fmt(format_args!("granite: reset failed, halting\n"));
    halt()
}
