//! The panic handler: the report always reaches the console (it writes through the lock-free
//! path, so a CPU that panicked while holding the console lock, or any other lock, still gets
//! its message out), then the machine is powered off.

use super::{console, image, psci};
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// Set by the first panic. Plain loads and stores only (a panic may come with the MMU off,
/// when exclusive accesses are not guaranteed to work).
static PANICKING: AtomicBool = AtomicBool::new(false);

/// The frame pointer of the caller.
#[inline(always)]
fn frame_pointer() -> u64 {
    let fp: u64;
    // SAFETY: reads x29 (the image is built with frame pointers); no memory access.
    unsafe { core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags)) };
    fp
}

/// Follow the frame-record chain from `fp` and print the return addresses as image offsets
/// (`addr2line -e granite <offset>` names them). Stops at the end of the boot stack, at a
/// malformed record, or after 24 frames.
pub fn write_backtrace(f: &mut dyn fmt::Write, mut fp: u64) -> fmt::Result {
    let (lo, hi) = image::boot_stack();
    for _ in 0..24 {
        if fp < lo || fp.saturating_add(16) > hi || !fp.is_multiple_of(16) {
            break;
        }
        // SAFETY: `fp` is a 16-byte aligned address inside the boot stack (checked above),
        // which is mapped; a frame record there is two words.
        let (next, lr) = unsafe { (*(fp as *const u64), *((fp + 8) as *const u64)) };
        if lr == 0 {
            break;
        }
        match image::image_offset(lr) {
            Some(off) => write!(f, " {off:#x}")?,
            None => write!(f, " ?{lr:#x}")?,
        }
        if next <= fp {
            break;
        }
        fp = next;
    }
    writeln!(f)
}

struct RawConsole;
impl fmt::Write for RawConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        console::raw_write_fmt(format_args!("{s}"));
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICKING.load(Ordering::Relaxed) {
        console::raw_write_fmt(format_args!("\n(granite) panic while panicking: {}\n", info.message()));
        psci::power_off(psci::exit_code::PANIC);
    }
    PANICKING.store(true, Ordering::Relaxed);
    let mpidr = {
        use aarch64_cpu::registers::{MPIDR_EL1, Readable};
        crate::sysreg::mpidr_affinity(MPIDR_EL1.get())
    };
    let fp = frame_pointer();
    console::raw_write_fmt(format_args!(
        "\n(granite) ****************************************\n\
         (granite) Panic on CPU (MPIDR {mpidr:#x}):\n\
         (granite) {}\n",
        info.message()
    ));
    if let Some(l) = info.location() {
        console::raw_write_fmt(format_args!("(granite)   at {}:{}:{}\n", l.file(), l.line(), l.column()));
    }
    let _ = fmt::Write::write_str(&mut RawConsole, "(granite)   panic call chain (image offsets):");
    let _ = write_backtrace(&mut RawConsole, fp);
    console::raw_write_fmt(format_args!(
        "(granite) ****************************************\n\
         (granite) granite: fatal error, powering off\n"
    ));
    psci::power_off(psci::exit_code::PANIC)
}
