//! Locks and atomics of the whole hypervisor, with the lock order checked.
//!
//! On the image and in ordinary host tests the locks are `spin` locks and the atomics
//! `core`'s. Under `RUSTFLAGS="--cfg loom"` they are loom's instrumented versions, so the model
//! checker explores the interleavings of the very code the image runs (see `tests/loom.rs`).
//!
//! **Ranked locks.** Every lock is created with a [`Rank`] (its place in the order written
//! once in `src/lock_order.md`, constants in [`rank`]). In debug builds — host tests, loom, a
//! debug image — each thread (on the image: each CPU) keeps the ranks it holds, and taking a
//! lock whose rank is lower than or equal to one already held panics, naming both locks. The
//! check is made before waiting for the lock, so an order that *could* deadlock is reported
//! even when it did not. Release builds carry no check.

#[cfg(not(loom))]
mod imp {
    pub use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
    pub use spin::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

    pub fn is_write_locked<T>(lock: &RwLock<T>) -> bool {
        lock.writer_count() != 0
    }
    pub fn is_read_locked<T>(lock: &RwLock<T>) -> bool {
        lock.reader_count() != 0
    }
    pub fn try_read<T>(lock: &RwLock<T>) -> Option<RwLockReadGuard<'_, T>> {
        lock.try_read()
    }
    pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock()
    }
    pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
        l.read()
    }
    pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
        l.write()
    }
}

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
    pub use loom::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

    pub fn is_write_locked<T>(lock: &RwLock<T>) -> bool {
        lock.try_read().is_err()
    }
    pub fn is_read_locked<T>(lock: &RwLock<T>) -> bool {
        lock.try_write().is_err() && lock.try_read().is_ok()
    }
    pub fn try_read<T>(lock: &RwLock<T>) -> Option<RwLockReadGuard<'_, T>> {
        lock.try_read().ok()
    }
    pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
        l.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
        l.write().unwrap_or_else(|e| e.into_inner())
    }
}

pub use imp::{AtomicBool, AtomicU8, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

/// A lock's place in the lock order: a lock may only be taken while every lock held has a
/// lower level. The constants are in [`rank`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rank {
    pub level: u16,
    pub name: &'static str,
}

impl Rank {
    pub const fn new(level: u16, name: &'static str) -> Rank {
        Rank { level, name }
    }
}

/// Every lock of the hypervisor, in the order they may be taken (`src/lock_order.md` says why).
/// Gaps are left for the locks to come.
pub mod rank {
    use super::Rank;
    /// The audit's hypercall fence: held for reading by every hypercall and teardown.
    pub const HYPERCALL_FENCE: Rank = Rank::new(10, "hypercall fence");
    /// Serialises domain creation.
    pub const DOMAIN_CREATE: Rank = Rank::new(20, "domain creation");
    /// A physical CPU's slot in the pinned scheduler (the vCPU it runs).
    pub const PCPU_SLOT: Rank = Rank::new(30, "pCPU slot");
    /// A vCPU's run state.
    pub const VCPU_RUN: Rank = Rank::new(32, "vCPU run state");
    /// A vCPU's runstate accounting and registered runstate area (`VCPUOP_register_runstate_memory_area`).
    pub const VCPU_RUNSTATE: Rank = Rank::new(34, "vCPU runstate");
    /// A domain's event-channel table.
    pub const EVTCHN: Rank = Rank::new(36, "event channels");
    /// The second event-channel table of a pair (`evtchn::lock_pair`): the domain with the higher
    /// id, taken while holding the lower one's at [`EVTCHN`] with [`super::Mutex::lock_second`].
    pub const EVTCHN_PEER: Rank = Rank::new(37, "event channels (second domain of a pair)");
    /// A domain's grant table (two are never held together).
    pub const GRANT: Rank = Rank::new(40, "grant table");
    /// A domain's P2M (two are never held together).
    pub const P2M: Rank = Rank::new(50, "P2M");
    /// A domain's virtual GIC (all its interrupt state, one lock).
    pub const VGIC_DIST: Rank = Rank::new(60, "vGIC");
    /// A domain's maptrack (its own grant mappings).
    pub const MAPTRACK: Rank = Rank::new(70, "maptrack");
    /// A domain's permitted MMIO ranges.
    pub const IOMEM: Rank = Rank::new(72, "iomem permissions");
    /// The domain table.
    pub const DOMAIN_TABLE: Rank = Rank::new(80, "domain table");
    /// The VMID allocator.
    pub const VMID: Rank = Rank::new(82, "VMID allocator");
    /// The wallclock (`XENPF_settime64`) and its copies in every domain's `shared_info`.
    pub const WALLCLOCK: Rank = Rank::new(84, "wallclock");
    /// The page allocator.
    pub const HEAP: Rank = Rank::new(90, "page allocator");
    /// A domain's console line buffer (prints under the console lock).
    pub const GUEST_CONSOLE: Rank = Rank::new(100, "guest console line");
    /// The hypervisor's console input ring and focus.
    pub const CONSOLE_INPUT: Rank = Rank::new(104, "console input");
    /// The hypervisor's console UART.
    pub const CONSOLE: Rank = Rank::new(110, "console");
    /// The Rust global allocator (anything may allocate).
    pub const ALLOCATOR: Rank = Rank::new(120, "Rust heap");
    /// Test-only locks of the simulated machine (TLB recorder).
    pub const TEST: Rank = Rank::new(200, "test instrumentation");
}

/// The ranks a thread (or CPU) holds, in the order taken.
pub mod held {
    use super::Rank;
    use core::cell::Cell;

    const MAX: usize = 16;

    /// A fixed stack of held ranks (no allocation: the allocator's own lock is ranked).
    pub struct Held {
        ranks: [Cell<Option<Rank>>; MAX],
        len: Cell<usize>,
    }

    impl Default for Held {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Held {
        pub const fn new() -> Held {
            Held { ranks: [const { Cell::new(None) }; MAX], len: Cell::new(0) }
        }

        /// Record `r` as taken; panics if a lock of the same or a higher rank is held.
        pub fn acquire(&self, r: Rank) {
            let n = self.len.get();
            for h in self.ranks[..n].iter().filter_map(Cell::get) {
                if h.level >= r.level {
                    panic!(
                        "lock order violation: taking \"{}\" (rank {}) while holding \"{}\" (rank {}); see src/lock_order.md",
                        r.name, r.level, h.name, h.level
                    );
                }
            }
            assert!(n < MAX, "more than {MAX} locks held at once (taking \"{}\")", r.name);
            self.ranks[n].set(Some(r));
            self.len.set(n + 1);
        }

        /// Record `r` as released (guards may be dropped in any order).
        pub fn release(&self, r: Rank) {
            let n = self.len.get();
            if let Some(i) = (0..n).rev().find(|&i| self.ranks[i].get() == Some(r)) {
                for j in i..n - 1 {
                    self.ranks[j].set(self.ranks[j + 1].get());
                }
                self.ranks[n - 1].set(None);
                self.len.set(n - 1);
            }
        }

        /// How many locks are held.
        pub fn depth(&self) -> usize {
            self.len.get()
        }
    }
}

#[cfg(all(debug_assertions, not(target_os = "none"), not(loom)))]
fn with_held<R>(f: impl FnOnce(&held::Held) -> R) -> R {
    std::thread_local! { static HELD: held::Held = const { held::Held::new() }; }
    HELD.with(f)
}

#[cfg(all(debug_assertions, loom))]
fn with_held<R>(f: impl FnOnce(&held::Held) -> R) -> R {
    loom::thread_local! { static HELD: held::Held = held::Held::new(); }
    HELD.with(f)
}

/// On the image, the arch layer tells where the calling CPU's record is (it lives in the
/// per-CPU block); until it does (early boot, one CPU), nothing is checked.
#[cfg(all(debug_assertions, target_os = "none"))]
static CPU_HELD: spin::Once<fn() -> &'static held::Held> = spin::Once::new();

/// Register the function giving the calling CPU's held-lock record (debug images).
#[cfg(target_os = "none")]
pub fn set_cpu_held(_f: fn() -> &'static held::Held) {
    #[cfg(debug_assertions)]
    CPU_HELD.call_once(|| _f);
}

#[cfg(all(debug_assertions, target_os = "none"))]
fn with_held<R: Default>(f: impl FnOnce(&held::Held) -> R) -> R {
    match CPU_HELD.get() {
        Some(g) => f(g()),
        None => R::default(),
    }
}

#[inline(always)]
fn acquire(_r: Rank) {
    #[cfg(debug_assertions)]
    with_held(|h| h.acquire(_r));
}

#[inline(always)]
fn release(_r: Rank) {
    #[cfg(debug_assertions)]
    with_held(|h| h.release(_r));
}

/// How many ranked locks the calling thread holds (debug builds; 0 otherwise). Tests use it
/// to check that a path returns with nothing held.
pub fn locks_held() -> usize {
    #[cfg(debug_assertions)]
    {
        with_held(|h| h.depth())
    }
    #[cfg(not(debug_assertions))]
    {
        0
    }
}

/// A mutual-exclusion lock with a rank.
pub struct Mutex<T> {
    rank: Rank,
    inner: imp::Mutex<T>,
}

/// A held [`Mutex`]. (The rank travels with the guard only where it is checked.)
pub struct MutexGuard<'a, T> {
    guard: imp::MutexGuard<'a, T>,
    #[cfg(debug_assertions)]
    rank: Rank,
}

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub const fn new(rank: Rank, t: T) -> Self {
        Mutex { rank, inner: imp::Mutex::new(t) }
    }
    #[cfg(loom)]
    pub fn new(rank: Rank, t: T) -> Self {
        Mutex { rank, inner: imp::Mutex::new(t) }
    }
    pub fn lock(&self) -> MutexGuard<'_, T> {
        acquire(self.rank);
        MutexGuard {
            guard: imp::lock(&self.inner),
            #[cfg(debug_assertions)]
            rank: self.rank,
        }
    }
    /// Take this lock as the second of a pair of locks of one rank, checked at rank `second`
    /// (`Held` then refuses a third lock of either rank, and the first one taken after this).
    /// Which of the two is taken second is the caller's order, stated where `second` is
    /// declared (the only pair today: `rank::EVTCHN_PEER`, by domain id).
    pub fn lock_second(&self, second: Rank) -> MutexGuard<'_, T> {
        debug_assert!(
            second.level > self.rank.level,
            "{} cannot be the second of a pair of {}",
            second.name,
            self.rank.name
        );
        acquire(second);
        MutexGuard {
            guard: imp::lock(&self.inner),
            #[cfg(debug_assertions)]
            rank: second,
        }
    }
    pub fn rank(&self) -> Rank {
        self.rank
    }
}

impl<T> core::ops::Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> core::ops::DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        release(self.rank);
    }
}

/// A reader-writer lock with a rank (readers and writers alike obey the order).
pub struct RwLock<T> {
    rank: Rank,
    inner: imp::RwLock<T>,
}

/// A [`RwLock`] held for reading.
pub struct RwLockReadGuard<'a, T> {
    guard: imp::RwLockReadGuard<'a, T>,
    #[cfg(debug_assertions)]
    rank: Rank,
}

/// A [`RwLock`] held for writing.
pub struct RwLockWriteGuard<'a, T> {
    guard: imp::RwLockWriteGuard<'a, T>,
    #[cfg(debug_assertions)]
    rank: Rank,
}

impl<T> RwLock<T> {
    #[cfg(not(loom))]
    pub const fn new(rank: Rank, t: T) -> Self {
        RwLock { rank, inner: imp::RwLock::new(t) }
    }
    #[cfg(loom)]
    pub fn new(rank: Rank, t: T) -> Self {
        RwLock { rank, inner: imp::RwLock::new(t) }
    }
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        acquire(self.rank);
        RwLockReadGuard {
            guard: imp::read(&self.inner),
            #[cfg(debug_assertions)]
            rank: self.rank,
        }
    }
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        acquire(self.rank);
        RwLockWriteGuard {
            guard: imp::write(&self.inner),
            #[cfg(debug_assertions)]
            rank: self.rank,
        }
    }
    /// Read without waiting; `None` if a writer holds it. The order is still checked.
    pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
        acquire(self.rank);
        match imp::try_read(&self.inner) {
            Some(guard) => Some(RwLockReadGuard {
                guard,
                #[cfg(debug_assertions)]
                rank: self.rank,
            }),
            None => {
                release(self.rank);
                None
            }
        }
    }
    /// True if someone holds it for writing (a diagnostic, racy by nature).
    pub fn is_write_locked(&self) -> bool {
        imp::is_write_locked(&self.inner)
    }
    /// True if someone holds it for reading (a diagnostic, racy by nature).
    pub fn is_read_locked(&self) -> bool {
        imp::is_read_locked(&self.inner)
    }
    pub fn rank(&self) -> Rank {
        self.rank
    }
}

impl<T> core::ops::Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        release(self.rank);
    }
}
impl<T> core::ops::Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}
impl<T> core::ops::DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}
impl<T> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        release(self.rank);
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Mutex({})", self.rank.name)
    }
}
impl<T: core::fmt::Debug> core::fmt::Debug for RwLock<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "RwLock({})", self.rank.name)
    }
}

#[cfg(all(test, debug_assertions, not(loom)))]
mod tests {
    use super::*;

    const LOW: Rank = Rank::new(1, "low");
    const HIGH: Rank = Rank::new(2, "high");

    #[test]
    fn in_order_is_fine_and_released_in_any_order() {
        let (a, b) = (Mutex::new(LOW, 1), RwLock::new(HIGH, 2));
        let ga = a.lock();
        let gb = b.read();
        assert_eq!(locks_held(), 2);
        drop(ga);
        drop(gb);
        assert_eq!(locks_held(), 0);
        let _again = a.lock();
    }

    #[test]
    #[should_panic(expected = "taking \"low\" (rank 1) while holding \"high\" (rank 2)")]
    fn reverse_order_panics_with_both_names() {
        let (a, b) = (Mutex::new(LOW, 1), Mutex::new(HIGH, 2));
        let _gb = b.lock();
        let _ga = a.lock();
    }

    #[test]
    #[should_panic(expected = "while holding \"low\"")]
    fn two_locks_of_one_rank_panic() {
        let (a, b) = (RwLock::new(LOW, 1), RwLock::new(LOW, 2));
        let _ga = a.read();
        let _gb = b.read();
    }

    #[test]
    fn a_pair_of_one_rank_is_taken_through_lock_second() {
        const SECOND: Rank = Rank::new(2, "second of a pair");
        let (a, b) = (Mutex::new(LOW, 1), Mutex::new(LOW, 2));
        let ga = a.lock();
        let gb = b.lock_second(SECOND);
        assert_eq!(locks_held(), 2);
        drop((ga, gb));
        assert_eq!(locks_held(), 0);
    }

    #[test]
    #[should_panic(expected = "taking \"low\" (rank 1) while holding \"second of a pair\" (rank 2)")]
    fn nothing_of_the_first_rank_after_the_second_of_a_pair() {
        const SECOND: Rank = Rank::new(2, "second of a pair");
        let (a, b) = (Mutex::new(LOW, 1), Mutex::new(LOW, 2));
        let _gb = b.lock_second(SECOND);
        let _ga = a.lock();
    }

    #[test]
    fn failed_try_read_holds_nothing() {
        let a = RwLock::new(LOW, 1);
        let _w = a.write();
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(a.try_read().is_none());
                assert_eq!(locks_held(), 0);
            });
        });
    }
}
