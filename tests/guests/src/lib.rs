//! Runtime for granite's tiny EL1 test guests.
//!
//! A guest binary is a `no_std`, `no_main` crate that calls [`entry!`] with its main function
//! and links with `guest.ld` (done by `build.rs`). The runtime boots it like a Linux arm64
//! kernel (see `start.rs`), reads the device tree ([`platform`]), builds an identity map and
//! turns the MMU on ([`mmu`]), catches its own exceptions ([`exception`]), talks to the
//! hypervisor only through hypercalls ([`hypercall`], [`console`]), and reports verdicts
//! ([`report`]) before powering off. [`smp`] starts the other vCPUs (PSCI CPU_ON) for guests
//! that want them; they share the page tables, exception vectors and console. Guests that
//! take interrupts use [`gic`] (a GICv3/GICv2 driver), [`timer`] (the virtual timer) and
//! the IRQ handler hook of [`exception`].
//!
//! ```ignore
//! #![no_std]
// Host builds of the workspace compile nothing here (see Cargo.toml's `guest` feature).
#![cfg(all(target_os = "none", feature = "guest"))]
//! #![no_main]
//! granite_guests::entry!(main);
//! fn main(p: &granite_guests::Platform) {
//!     granite_guests::report::scenario("hello", |c| { c.eq("1 + 1", 1 + 1, 2); });
//! }
//! ```
#![no_std]

pub mod console;
pub mod evtchn;
pub mod exception;
pub mod gic;
pub mod gicfuzz;
pub mod hypercall;
pub mod mem;
pub mod mmu;
pub mod platform;
pub mod report;
pub mod smp;
mod start;
pub mod timer;

pub use exception::{Fault, probe_read, probe_read_sized, probe_write, probe_write_sized};
pub use mem::{GrantFrameV1, PAGE_SIZE, Pages};
pub use platform::{Conduit, GicNode, GicVersion, Platform, Region};

use core::cell::UnsafeCell;

/// A mutable global whose accesses the user serialises: it is only touched by one CPU
/// (e.g. the boot CPU before any secondary starts, or a per-CPU slot by its own CPU), or
/// under a lock ([`smp::SpinLock`]). Interrupts are masked, unless a guest installs an IRQ
/// handler ([`exception::set_irq_handler`]), which must then touch no `Global` (it uses
/// atomics).
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: every `get_mut` caller vouches for exclusive access (see the type's contract), and
// the exception handler only touches globals on its way to powering off.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Self(UnsafeCell::new(v))
    }

    /// A raw pointer to the value.
    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }

    /// # Safety
    /// No other reference to the value may be live while the returned one is used.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get_mut(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's obligation.
        unsafe { &mut *self.0.get() }
    }
}

/// Defines the guest's main function: `fn(&Platform)`, called with the MMU on once the
/// runtime is ready. When it returns, the summary is printed and the guest powers off.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(export_name = "__granite_guest_main")]
        pub fn __granite_guest_main(platform: &$crate::Platform) {
            let main: fn(&$crate::Platform) = $main;
            main(platform)
        }
    };
}

/// The Rust side of the boot path.
pub mod rt {
    use crate::mmu::{self, Attr};
    use crate::platform::{self, Region};
    use crate::{println, report};

    unsafe extern "C" {
        static _head: u8;
        static _end: u8;
    }

    unsafe extern "Rust" {
        fn __granite_guest_main(platform: &crate::Platform);
    }

    /// CNTPCT_EL0 read by the first instruction of the image (the physical counter: under QEMU
    /// `-icount shift=0`, nanoseconds of virtual time since the machine was powered on).
    #[unsafe(no_mangle)]
    static GRANITE_ENTRY_CNTPCT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

    /// The physical counter when this image first ran.
    pub fn entry_cntpct() -> u64 {
        GRANITE_ENTRY_CNTPCT.load(core::sync::atomic::Ordering::Relaxed)
    }

    const MIB2: u64 = 2 << 20;
    /// Everything outside RAM and the hypervisor's regions is mapped as Device up to here
    /// (one level-1 table: the first 512 GiB, or less if the PA size is smaller).
    const LOW_DEVICE_LIMIT: u64 = 1 << 39;

    /// Called by `start.rs` with the MMU off and BSS zeroed.
    pub extern "C" fn rust_entry(dtb: u64) -> ! {
        // SAFETY: only the addresses of the linker-script symbols are taken.
        let image = unsafe {
            let head = &_head as *const u8 as u64;
            Region { base: head, size: &_end as *const u8 as u64 - head }
        };
        println!("[granite] guest runtime: image {} dtb {:#x}", image, dtb);
        // SAFETY: the hypervisor passed the DTB address in x0 and nothing ever writes there.
        let p = match unsafe { platform::parse(dtb, image) } {
            Ok(p) => p,
            Err(e) => report::fatal(format_args!("cannot use the device tree at {:#x}: {:?}", dtb, e)),
        };
        report::set_verbose(p.has_bootarg("verbose"));
        p.print();

        // Identity map: Device for everything low, then RAM, grant and extended regions and
        // the DTB as Normal memory; the image at page granularity so pages near it can be unmapped
        // later without splitting a block that holds running code.
        mmu::map(0, LOW_DEVICE_LIMIT.min(1 << p.pa_bits), Attr::Device);
        for m in p.memory.iter() {
            mmu::map(m.base, m.size, Attr::Data);
        }
        if let Some(g) = p.grant_region {
            mmu::map(g.base, g.size, Attr::Data);
        }
        for e in p.extended.iter() {
            mmu::map(e.base, e.size, Attr::Data);
        }
        // The DTB stays in use (strings point into it); it is normally in RAM anyway.
        mmu::map(p.dtb.base, p.dtb.size, Attr::Data);
        if let Some(bank) = p.memory.iter().find(|m| m.contains(image.base)) {
            let lo = (image.base & !(MIB2 - 1)).max(bank.base);
            let hi = ((image.end() + MIB2 - 1) & !(MIB2 - 1)).min(bank.end());
            mmu::map_pages(lo, hi - lo, Attr::Data);
        }
        mmu::map_pages(image.base, image.size, Attr::Code);
        mmu::enable(image);
        let (used, total) = mmu::tables_used();
        println!("[granite] MMU on (identity map, {}/{} page tables)", used, total);

        // SAFETY: `__granite_guest_main` is defined by the binary through `entry!`.
        unsafe { __granite_guest_main(&p) };
        report::finish()
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    report::fatal(format_args!("panic: {}", info))
}
