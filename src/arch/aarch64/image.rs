//! Where the hypervisor image's parts are at run time (linker-script symbols, relocated), and
//! image offsets for fault reports.

use core::sync::atomic::{AtomicU64, Ordering};

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __image_end: u8;
    static __boot_stack_bottom: u8;
    static __boot_stack_top: u8;
}

/// Where the image's parts are at run time (linker-script symbols, relocated).
#[derive(Clone, Copy, Debug)]
pub struct Image {
    pub start: u64,
    pub text_end: u64,
    pub rodata_start: u64,
    pub rodata_end: u64,
    pub data_start: u64,
    pub end: u64,
    pub stack_bottom: u64,
    pub stack_top: u64,
}

impl Image {
    pub fn current() -> Image {
        // Only the addresses of the linker-script symbols are taken, never their contents.
        Image {
            start: &raw const __image_start as u64,
            text_end: &raw const __text_end as u64,
            rodata_start: &raw const __rodata_start as u64,
            rodata_end: &raw const __rodata_end as u64,
            data_start: &raw const __data_start as u64,
            end: &raw const __image_end as u64,
            stack_bottom: &raw const __boot_stack_bottom as u64,
            stack_top: &raw const __boot_stack_top as u64,
        }
    }
    pub fn size(&self) -> u64 {
        self.end - self.start
    }
}

/// Set once by [`record`] at boot.
static IMAGE_START: AtomicU64 = AtomicU64::new(0);
static IMAGE_END: AtomicU64 = AtomicU64::new(0);
static STACK_BOTTOM: AtomicU64 = AtomicU64::new(0);
static STACK_TOP: AtomicU64 = AtomicU64::new(0);

/// `addr`'s offset in the image, which is its link address (the image is linked at 0):
/// `addr2line -e target/aarch64-unknown-none/release/granite <offset>`.
pub fn image_offset(addr: u64) -> Option<u64> {
    let (s, e) = (IMAGE_START.load(Ordering::Relaxed), IMAGE_END.load(Ordering::Relaxed));
    (s != 0 && addr >= s && addr < e).then(|| addr - s)
}

/// The boot CPU's stack `[bottom, top)`.
pub fn boot_stack() -> (u64, u64) {
    (STACK_BOTTOM.load(Ordering::Relaxed), STACK_TOP.load(Ordering::Relaxed))
}

/// Remember the image's bounds and the boot stack (the boot CPU, first thing at boot).
pub fn record(img: &Image) {
    IMAGE_START.store(img.start, Ordering::Relaxed);
    IMAGE_END.store(img.end, Ordering::Relaxed);
    STACK_BOTTOM.store(img.stack_bottom, Ordering::Relaxed);
    STACK_TOP.store(img.stack_top, Ordering::Relaxed);
}
