//! Locks and atomics of the portable core.
//!
//! On the image and in ordinary host tests these are `spin` locks and `core` atomics. Under
//! `RUSTFLAGS="--cfg loom"` they are loom's instrumented versions, so the model checker explores
//! the interleavings of the very code the image runs (see `tests/loom.rs`).
//!
//! The lock order of the whole hypervisor is written once, in [`crate::LOCK_ORDER`].

#[cfg(not(loom))]
mod imp {
    pub use core::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering, fence};
    pub use spin::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

    /// True if someone holds `lock` for writing (a diagnostic, racy by nature).
    pub fn rwlock_is_write_locked<T>(lock: &RwLock<T>) -> bool {
        lock.writer_count() != 0
    }

    /// True if someone holds `lock` for reading (a diagnostic, racy by nature).
    pub fn rwlock_is_read_locked<T>(lock: &RwLock<T>) -> bool {
        lock.reader_count() != 0
    }
}

#[cfg(loom)]
mod imp {
    pub use loom::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering, fence};
    pub use loom::sync::{MutexGuard, RwLockReadGuard, RwLockWriteGuard};

    /// loom's mutex with the `spin` calling convention (no poisoning).
    #[derive(Debug)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);
    impl<T> Mutex<T> {
        pub fn new(t: T) -> Self {
            Mutex(loom::sync::Mutex::new(t))
        }
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap()
        }
    }

    /// loom's reader-writer lock with the `spin` calling convention.
    #[derive(Debug)]
    pub struct RwLock<T>(loom::sync::RwLock<T>);
    impl<T> RwLock<T> {
        pub fn new(t: T) -> Self {
            RwLock(loom::sync::RwLock::new(t))
        }
        pub fn read(&self) -> RwLockReadGuard<'_, T> {
            self.0.read().unwrap()
        }
        pub fn write(&self) -> RwLockWriteGuard<'_, T> {
            self.0.write().unwrap()
        }
        pub fn try_read(&self) -> Option<RwLockReadGuard<'_, T>> {
            self.0.try_read().ok()
        }
    }

    pub fn rwlock_is_write_locked<T>(lock: &RwLock<T>) -> bool {
        lock.try_read().is_none()
    }

    pub fn rwlock_is_read_locked<T>(lock: &RwLock<T>) -> bool {
        lock.0.try_write().is_err() && lock.try_read().is_some()
    }
}

pub use imp::*;
