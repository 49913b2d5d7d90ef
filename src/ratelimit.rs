//! Rate limiting of guest-triggered messages, as Xen's `XENLOG_G_*` printk ratelimit: a burst
//! of [`BURST`] messages, then at most [`BURST`] more per [`WINDOW_SECONDS`]; what is
//! suppressed is counted and said with the next message let through. A guest that pokes
//! unimplemented registers or faults in a loop neither floods the console nor slows down: a
//! suppressed message costs two loads and a store, and looks at the clock only once every
//! [`CHECK_EVERY`] suppressed messages (so after a quiet spell up to that many more may be
//! suppressed before the new window is noticed).
//!
//! [`guest_log!`](crate::guest_log) is the way to log such a message: nothing at all is done
//! when its level is off, and each call site has its own limiter (by time when the caller has
//! the machine's clock at hand, by count otherwise).

use crate::hw::Hw;
// Plain atomics even under loom: a message counter is not part of any protocol the model
// checker explores, and limiters are `static`s.
use core::sync::atomic::{AtomicU64, Ordering};

pub const BURST: u64 = 10;
pub const WINDOW_SECONDS: u64 = 5;
/// Suppressed messages between two looks at the clock.
pub const CHECK_EVERY: u64 = 16;
/// Without a clock ([`RateLimit::allow_without_clock`]): one message let through in this many.
pub const EVERY_WITHOUT_CLOCK: u64 = 1024;

/// One limiter per kind of message (a `static`).
pub struct RateLimit {
    /// The counter value at which the current window ends (0: none yet).
    window_end: AtomicU64,
    /// Messages let through in the current window.
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
        RateLimit { window_end: AtomicU64::new(0), count: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// May a message be printed now? `Some(n)`: yes, and `n` were suppressed before it.
    #[inline]
    pub fn allow(&self, hw: &dyn Hw) -> Option<u64> {
        if self.quiet() { None } else { self.decide(hw) }
    }

    /// The fast path: over the burst, this message is suppressed (counted) and the clock need
    /// not be looked at. (A plain increment: two CPUs racing here may lose a count of a
    /// suppressed message, nothing more.)
    #[inline(always)]
    pub fn quiet(&self) -> bool {
        if self.count.load(Ordering::Relaxed) < BURST {
            return false;
        }
        let n = self.suppressed.load(Ordering::Relaxed) + 1;
        self.suppressed.store(n, Ordering::Relaxed);
        !n.is_multiple_of(CHECK_EVERY)
    }

    /// The rest of [`Self::allow`], once [`Self::quiet`] said no.
    #[inline(never)]
    pub fn decide(&self, hw: &dyn Hw) -> Option<u64> {
        if self.count.load(Ordering::Relaxed) >= BURST {
            // A look at the clock (this message is already counted as suppressed).
            if !self.window_over(hw) {
                return None;
            }
            // A new window: this message goes through, the others were suppressed.
            self.count.store(1, Ordering::Relaxed);
            return Some(self.suppressed.swap(0, Ordering::Relaxed) - 1);
        }
        self.window_over(hw);
        if self.count.fetch_add(1, Ordering::Relaxed) < BURST {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }

    /// [`Self::allow`] without a clock, for code that has none at hand: a burst of [`BURST`],
    /// then one message in every [`EVERY_WITHOUT_CLOCK`].
    #[inline]
    pub fn allow_without_clock(&self) -> Option<u64> {
        if self.count.load(Ordering::Relaxed) < BURST && self.count.fetch_add(1, Ordering::Relaxed) < BURST {
            return Some(0);
        }
        let n = self.suppressed.fetch_add(1, Ordering::Relaxed) + 1;
        n.is_multiple_of(EVERY_WITHOUT_CLOCK).then(|| self.suppressed.swap(0, Ordering::Relaxed) - 1)
    }

    /// Start a new window if there is none or the current one is over (its count reset);
    /// whether it did. (A race here only lets a message or two more through.)
    #[inline(never)]
    fn window_over(&self, hw: &dyn Hw) -> bool {
        let now = hw.counter();
        let end = self.window_end.load(Ordering::Relaxed);
        if end == 0 || now >= end {
            let len = hw.counter_hz().max(1) * WINDOW_SECONDS;
            self.window_end.store(now.saturating_add(len).max(1), Ordering::Relaxed);
            self.count.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Log a guest-triggered message, as Xen's `XENLOG_G_*` messages: nothing is done when the
/// level is off; otherwise the call site's own [`RateLimit`] decides, and the first message
/// after suppressed ones says how many.
///
/// ```text
/// guest_log!(hw: &*hv.hw, log::Level::Debug, "d{}: ...", d.id);   // by time
/// guest_log!(log::Level::Warn, "...");                            // by count (no clock)
/// ```
#[macro_export]
macro_rules! guest_log {
    (hw: $hw:expr, $lvl:expr, $($arg:tt)+) => {{
        // (The level against the logger's maximum: one load, no call into the logger; the
        // suppressed case inline, everything else out of line.)
        if $lvl <= log::max_level() {
            static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
            if !LIMIT.quiet() {
                $crate::ratelimit::cold(|| $crate::guest_log!(@emit $lvl, LIMIT.decide($hw), $($arg)+));
            }
        }
    }};
    (@emit $lvl:expr, $decision:expr, $($arg:tt)+) => {
        match $decision {
            Some(0) => log::log!($lvl, $($arg)+),
            Some(n) => log::log!($lvl, "{} ({} similar messages suppressed)", format_args!($($arg)+), n),
            None => {}
        }
    };
    ($lvl:expr, $($arg:tt)+) => {{
        if $lvl <= log::max_level() {
            static LIMIT: $crate::ratelimit::RateLimit = $crate::ratelimit::RateLimit::new();
            $crate::ratelimit::cold(|| $crate::guest_log!(@emit $lvl, LIMIT.allow_without_clock(), $($arg)+));
        }
    }};
}

/// Runs `f` out of line (the slow part of [`guest_log!`]).
#[cold]
#[inline(never)]
pub fn cold<F: FnOnce()>(f: F) {
    f()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::testing::FakeHw;
    use alloc::vec::Vec;

    #[test]
    fn a_burst_then_quiet_until_the_window_ends() {
        let hw = FakeHw::default();
        let l = RateLimit::new();
        let allowed = (0..100).filter(|_| l.allow(&hw).is_some()).count();
        assert_eq!(allowed, BURST as usize);
        hw.now.fetch_add(62_500_000 * WINDOW_SECONDS, core::sync::atomic::Ordering::Relaxed);
        // The clock is looked at every CHECK_EVERY suppressed messages: 90 were suppressed,
        // so the next look is at the 96th.
        let mut waited = 0;
        let n = loop {
            match l.allow(&hw) {
                Some(n) => break n,
                None => waited += 1,
            }
        };
        assert_eq!(n, 90 + waited, "the next window says how many were suppressed");
        assert!(waited < CHECK_EVERY, "noticed within {CHECK_EVERY} messages: {waited}");
        let allowed = (0..100).filter(|_| l.allow(&hw).is_some()).count();
        assert_eq!(allowed, BURST as usize - 1, "a burst in the new window (counting the first)");
        // A quiet spell: the next window is noticed within CHECK_EVERY messages, and says
        // how many were suppressed.
        hw.now.fetch_add(62_500_000 * WINDOW_SECONDS * 3, core::sync::atomic::Ordering::Relaxed);
        let first = loop {
            if let Some(n) = l.allow(&hw) {
                break n;
            }
        };
        assert!(first > 0, "suppressed ones are said");
    }

    #[test]
    fn without_a_clock_a_burst_then_one_in_every_1024() {
        let l = RateLimit::new();
        let got: Vec<(usize, u64)> = (0..3000).filter_map(|i| l.allow_without_clock().map(|n| (i, n))).collect();
        let burst: Vec<(usize, u64)> = (0..BURST as usize).map(|i| (i, 0)).collect();
        assert_eq!(got[..BURST as usize], burst[..]);
        assert_eq!(got[BURST as usize..], [(BURST as usize + 1023, 1023), (BURST as usize + 2047, 1023)]);
    }
}
