//! Rate limiting of guest-triggered messages, as Xen's `XENLOG_G_*` printk ratelimit: a burst
//! of [`BURST`] messages, then at most [`BURST`] more per [`WINDOW_SECONDS`]; what is
//! suppressed is counted and said with the next message let through. A guest that pokes
//! unimplemented registers or faults in a loop neither floods the console nor slows down
//! (a suppressed message costs two atomic operations).

use crate::hw::Hw;
// Plain atomics even under loom: a message counter is not part of any protocol the model
// checker explores, and limiters are `static`s.
use core::sync::atomic::{AtomicU64, Ordering};

pub const BURST: u64 = 10;
pub const WINDOW_SECONDS: u64 = 5;

/// One limiter per kind of message (a `static`).
pub struct RateLimit {
    /// The counter value at which the current window started (0: none yet).
    window: AtomicU64,
    /// Messages in the current window.
    count: AtomicU64,
    /// Messages suppressed since the last one let through.
    suppressed: AtomicU64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    pub const fn new() -> RateLimit {
        RateLimit { window: AtomicU64::new(0), count: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// May a message be printed now? `Some(n)`: yes, and `n` were suppressed before it.
    pub fn allow(&self, hw: &dyn Hw) -> Option<u64> {
        let now = hw.counter().max(1);
        let window = hw.counter_hz().max(1) * WINDOW_SECONDS;
        let start = self.window.load(Ordering::Relaxed);
        if start == 0 || now.wrapping_sub(start) >= window {
            // A new window (a race here only lets a message or two more through).
            self.window.store(now, Ordering::Relaxed);
            self.count.store(0, Ordering::Relaxed);
        }
        if self.count.fetch_add(1, Ordering::Relaxed) < BURST {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::testing::FakeHw;

    #[test]
    fn a_burst_then_quiet_until_the_window_ends() {
        let hw = FakeHw::default();
        let l = RateLimit::new();
        let allowed = (0..100).filter(|_| l.allow(&hw).is_some()).count();
        assert_eq!(allowed, BURST as usize);
        hw.now.fetch_add(62_500_000 * WINDOW_SECONDS, core::sync::atomic::Ordering::Relaxed);
        assert_eq!(l.allow(&hw), Some(90), "the next window says how many were suppressed");
    }
}
