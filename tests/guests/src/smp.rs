//! Secondary vCPUs, per-CPU identity and spin locks.
//!
//! The boot CPU is logical CPU 0. [`start_secondaries`] starts every other CPU listed under
//! `/cpus` with PSCI `CPU_ON` (through the `/psci` conduit: `HVC #0` or `SMC #0`), giving it the
//! physical address of `__granite_secondary_entry` (`start.rs`) and its logical number as the
//! context id. The entry code sets TPIDR_EL1 (the logical number, see [`cpu_id`]), FP/SIMD,
//! VBAR_EL1 and the boot CPU's MMU configuration (same page tables, published by
//! [`crate::mmu::enable`]), then switches to the CPU's stack (in BSS) and calls the function
//! given to [`start_secondaries`]. When that returns the CPU is marked done and turns itself
//! off with PSCI `CPU_OFF`.
//!
//! Invariant: exclusive-access instructions (atomic read-modify-write, hence [`SpinLock`])
//! are only used with the MMU on, when RAM is Normal cacheable memory; with the MMU off every
//! access is Device-nGnRnE, where exclusives are not guaranteed to work. Only the boot CPU
//! ever runs with the MMU off (secondaries enable it before their first Rust instruction), and
//! it does so before any secondary is started, so the runtime checks [`crate::mmu::enabled`]
//! and skips locking while it is false.

use crate::Global;
use crate::platform::{Conduit, Platform};
use core::arch::asm;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use xen_abi::psci::*;

/// Logical CPUs the runtime supports (the device tree may list more; they stay off).
pub const MAX_CPUS: usize = 8;
/// Stack of each secondary CPU (the boot CPU uses the boot stack from `guest.ld`).
pub const STACK_SIZE: usize = 64 * 1024;
/// The affinity fields of MPIDR_EL1 (Aff3, Aff2, Aff1, Aff0).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

#[repr(C, align(16))]
pub(crate) struct Stack([u8; STACK_SIZE]);

/// Per-CPU stacks, indexed by logical CPU number (slot 0 is unused: the boot CPU keeps its
/// boot stack). Only ever used by the entry code, as raw memory.
pub(crate) static STACKS: Global<[Stack; MAX_CPUS]> = Global::new([const { Stack([0; STACK_SIZE]) }; MAX_CPUS]);

/// Life cycle of a logical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum CpuState {
    /// Not started (or CPU_ON failed).
    Off = 0,
    /// CPU_ON succeeded; the CPU has not reached Rust code yet.
    Starting = 1,
    /// Running its function.
    Online = 2,
    /// Its function returned; it is turning itself off.
    Done = 3,
}

static STATE: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];
static MPIDR: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static NCPUS: AtomicUsize = AtomicUsize::new(1);
static CONDUIT: AtomicU8 = AtomicU8::new(0);
/// The function secondaries run: a `fn(usize)`, stored as an address (0 = none).
static SECONDARY_MAIN: AtomicUsize = AtomicUsize::new(0);

/// This CPU's logical number (TPIDR_EL1, set by the entry code of every CPU).
#[inline(always)]
pub fn cpu_id() -> usize {
    let id: u64;
    // SAFETY: reading TPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, tpidr_el1", out(reg) id, options(nomem, nostack, preserves_flags)) };
    id as usize
}

/// The affinity fields of this CPU's MPIDR_EL1.
pub fn mpidr() -> u64 {
    let v: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v & MPIDR_AFFINITY_MASK
}

/// Number of logical CPUs known (the boot CPU plus those [`start_secondaries`] tried).
pub fn ncpus() -> usize {
    NCPUS.load(Ordering::Acquire)
}

/// The state of logical CPU `cpu`.
pub fn state(cpu: usize) -> CpuState {
    match STATE[cpu].load(Ordering::Acquire) {
        1 => CpuState::Starting,
        2 => CpuState::Online,
        3 => CpuState::Done,
        _ => CpuState::Off,
    }
}

/// The MPIDR affinity of logical CPU `cpu`.
pub fn cpu_mpidr(cpu: usize) -> u64 {
    MPIDR[cpu].load(Ordering::Relaxed)
}

/// A PSCI (SMCCC) call through `conduit`: function id in w0, arguments in x1..x3, result in x0.
pub fn psci_call(conduit: Conduit, fid: u32, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: u64;
    // SAFETY: an SMCCC call changes no memory we own (CPU_ON only starts another CPU at our
    // entry point); SMCCC 1.0 lets the callee clobber x0-x17, which `clobber_abi("C")` covers.
    unsafe {
        match conduit {
            Conduit::Hvc => asm!(
                "hvc #0",
                inlateout("x0") fid as u64 => ret,
                inlateout("x1") a1 => _,
                inlateout("x2") a2 => _,
                inlateout("x3") a3 => _,
                clobber_abi("C"),
                options(nostack),
            ),
            Conduit::Smc => asm!(
                "smc #0",
                inlateout("x0") fid as u64 => ret,
                inlateout("x1") a1 => _,
                inlateout("x2") a2 => _,
                inlateout("x3") a3 => _,
                clobber_abi("C"),
                options(nostack),
            ),
        }
    }
    ret as i64
}

/// The conduit recorded by [`start_secondaries`] (HVC if none was).
pub fn conduit() -> Conduit {
    if CONDUIT.load(Ordering::Relaxed) == 2 { Conduit::Smc } else { Conduit::Hvc }
}

/// `PSCI_VERSION`.
pub fn psci_version(conduit: Conduit) -> i64 {
    psci_call(conduit, PSCI_VERSION, 0, 0, 0)
}

/// `AFFINITY_INFO(target, level 0)`: 0 = on, 1 = off, 2 = on pending, or a PSCI error.
pub fn affinity_info(conduit: Conduit, mpidr: u64) -> i64 {
    psci_call(conduit, PSCI_AFFINITY_INFO_64, mpidr, 0, 0)
}

/// `CPU_ON(target, entry, context id)`.
pub fn cpu_on(conduit: Conduit, mpidr: u64, entry: u64, context: u64) -> i64 {
    psci_call(conduit, PSCI_CPU_ON_64, mpidr, entry, context)
}

unsafe extern "C" {
    fn __granite_secondary_entry();
}

/// The physical (= virtual) address secondaries enter at.
pub fn secondary_entry_address() -> u64 {
    __granite_secondary_entry as *const () as u64
}

/// What [`start_secondaries`] did for one CPU.
#[derive(Clone, Copy, Debug)]
pub struct Started {
    pub cpu: usize,
    pub mpidr: u64,
    /// The PSCI CPU_ON result (0 = success).
    pub result: i64,
}

/// Starts up to `max` CPUs in total (the boot CPU included) from the device tree's `/cpus`,
/// each running `f(cpu)` with its logical number 1, 2, ...; returns what CPU_ON said for each.
/// The boot CPU is the `/cpus` entry whose `reg` matches its MPIDR. Must be called once, on
/// the boot CPU, with the MMU on.
pub fn start_secondaries(p: &Platform, max: usize, f: fn(usize)) -> ([Option<Started>; MAX_CPUS], usize) {
    assert!(crate::mmu::enabled() && cpu_id() == 0, "start_secondaries: boot CPU with the MMU on only");
    let mut out = [None; MAX_CPUS];
    let Some(conduit) = p.psci else {
        return (out, 1);
    };
    CONDUIT.store(if conduit == Conduit::Smc { 2 } else { 1 }, Ordering::Relaxed);
    SECONDARY_MAIN.store(f as usize, Ordering::Release);
    let me = mpidr();
    MPIDR[0].store(me, Ordering::Relaxed);
    STATE[0].store(CpuState::Online as u8, Ordering::Release);
    let mut n = 1;
    for &m in p.cpus.as_slice() {
        if m & MPIDR_AFFINITY_MASK == me || n >= max.min(MAX_CPUS) {
            continue;
        }
        MPIDR[n].store(m, Ordering::Relaxed);
        STATE[n].store(CpuState::Starting as u8, Ordering::Release);
        NCPUS.store(n + 1, Ordering::Release);
        let rc = cpu_on(conduit, m, secondary_entry_address(), n as u64);
        if rc != PSCI_SUCCESS {
            STATE[n].store(CpuState::Off as u8, Ordering::Release);
        }
        out[n] = Some(Started { cpu: n, mpidr: m, result: rc });
        n += 1;
    }
    (out, n)
}

/// Waits (spinning, with `yield` hypercalls) until no CPU in `1..ncpus()` is Starting, or
/// until `spins` rounds passed. Returns whether all started CPUs are Online or Done.
pub fn wait_started(spins: u64) -> bool {
    for _ in 0..spins {
        if (1..ncpus()).all(|c| state(c) != CpuState::Starting) {
            return true;
        }
        crate::hypercall::sched_yield();
    }
    false
}

/// Waits until every CPU in `1..ncpus()` that started is Done (or `spins` rounds passed).
pub fn wait_done(spins: u64) -> bool {
    for _ in 0..spins {
        if (1..ncpus()).all(|c| matches!(state(c), CpuState::Done | CpuState::Off)) {
            return true;
        }
        crate::hypercall::sched_yield();
    }
    false
}

/// Called by the entry code of a secondary CPU with the MMU on and its stack set.
pub(crate) extern "C" fn secondary_rust_entry(cpu: u64) -> ! {
    let cpu = cpu as usize;
    STATE[cpu].store(CpuState::Online as u8, Ordering::Release);
    let f = SECONDARY_MAIN.load(Ordering::Acquire);
    if f != 0 {
        // SAFETY: the value was stored from a `fn(usize)` by `start_secondaries`.
        let f: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(f) };
        f(cpu);
    }
    STATE[cpu].store(CpuState::Done as u8, Ordering::Release);
    psci_call(conduit(), PSCI_CPU_OFF, 0, 0, 0);
    park()
}

/// Stops this CPU for good (interrupts are masked; `wfe` just waits).
pub fn park() -> ! {
    loop {
        // SAFETY: waiting for an event has no memory effects.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}

/// A spin lock. Only usable with the MMU on (see the module invariant); `lock` panics
/// otherwise.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to the value.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(v: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(v) }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        assert!(crate::mmu::enabled(), "SpinLock used with the MMU off");
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        SpinGuard { lock: self }
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, exclusively.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// A lock that the CPU holding it may take again (nesting), for the console: an exception
/// taken while printing must still be able to print. Skipped while the MMU is off.
pub struct ReentrantLock {
    /// Logical CPU number + 1 of the holder, 0 when free.
    owner: AtomicUsize,
    depth: AtomicUsize,
}

impl Default for ReentrantLock {
    fn default() -> Self {
        Self::new()
    }
}

impl ReentrantLock {
    pub const fn new() -> Self {
        Self { owner: AtomicUsize::new(0), depth: AtomicUsize::new(0) }
    }

    /// Runs `f` holding the lock.
    pub fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        if !crate::mmu::enabled() {
            return f();
        }
        let me = cpu_id() + 1;
        if self.owner.load(Ordering::Relaxed) == me {
            self.depth.store(self.depth.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        } else {
            while self.owner.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
                core::hint::spin_loop();
            }
            self.depth.store(1, Ordering::Relaxed);
        }
        let r = f();
        let d = self.depth.load(Ordering::Relaxed) - 1;
        self.depth.store(d, Ordering::Relaxed);
        if d == 0 {
            self.owner.store(0, Ordering::Release);
        }
        r
    }
}
