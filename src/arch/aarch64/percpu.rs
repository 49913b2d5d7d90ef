//! Per-CPU state, reached through TPIDR_EL2, and the hypervisor context.
//!
//! Each physical CPU has a [`PerCpu`] block (a static array: it exists before the heap does)
//! whose address its TPIDR_EL2 holds from its first instruction of Rust: its index and MPIDR,
//! the top of its EL2 stack, the vCPU it runs, and (debug builds) the ranks of the locks it
//! holds for the lock-order checker. The hypervisor context ([`hv`]) is set once at boot.
//! Nothing here depends on the boot code: every other module reaches the machine's state
//! through this one.

use crate::hv::Hypervisor;
use crate::sched::{MAX_CPUS, Placed};
use crate::sync::held::Held;
use aarch64_cpu::registers::{Readable, TPIDR_EL2, Writeable};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub struct PerCpu {
    pub index: usize,
    mpidr: AtomicU64,
    stack_top: AtomicU64,
    online: AtomicBool,
    /// The vCPU this CPU runs: written and read by this CPU only (interrupts are masked at
    /// EL2, so nothing else on this CPU runs meanwhile).
    current: UnsafeCell<Option<Placed>>,
    /// The ranks of the locks this CPU holds (debug builds' lock-order checker).
    held: Held,
    /// How many list registers the last flush of its vCPU loaded.
    lrs_loaded: AtomicUsize,
}

// SAFETY: the `UnsafeCell` and the `Cell`s of `held` are only ever touched by the CPU whose
// block it is (TPIDR_EL2 names its own block), with interrupts masked; every other field is
// atomic.
unsafe impl Sync for PerCpu {}

impl PerCpu {
    const fn new(index: usize) -> PerCpu {
        PerCpu {
            index,
            mpidr: AtomicU64::new(u64::MAX),
            stack_top: AtomicU64::new(0),
            online: AtomicBool::new(false),
            current: UnsafeCell::new(None),
            held: Held::new(),
            lrs_loaded: AtomicUsize::new(0),
        }
    }

    /// List registers loaded by the last flush (this CPU's own bookkeeping).
    pub fn lrs_loaded(&self) -> usize {
        self.lrs_loaded.load(Ordering::Relaxed)
    }
    pub fn set_lrs_loaded(&self, n: usize) {
        self.lrs_loaded.store(n, Ordering::Relaxed);
    }

    /// The CPU's MPIDR affinity.
    pub fn mpidr(&self) -> u64 {
        self.mpidr.load(Ordering::Acquire)
    }
    /// The top of its EL2 stack (reset to this whenever it enters a vCPU).
    pub fn stack_top(&self) -> u64 {
        self.stack_top.load(Ordering::Acquire)
    }
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Acquire)
    }
    pub fn set_online(&self) {
        self.online.store(true, Ordering::Release);
    }

    /// The vCPU this CPU runs. Only for the calling CPU's own block.
    pub fn current(&self) -> Option<&Placed> {
        debug_assert!(core::ptr::eq(self, this()), "another CPU's current vCPU");
        // SAFETY: only this CPU writes the cell, in `set_current`, which its trap handlers
        // never run concurrently with (one CPU, interrupts masked at EL2); the reference is
        // not kept past the next `set_current` (which only the idle loop calls, with no trap
        // frame left on the stack).
        unsafe { (*self.current.get()).as_ref() }
    }

    /// Make `p` this CPU's vCPU (the previous one's reference is dropped).
    pub fn set_current(&self, p: Option<Placed>) {
        debug_assert!(core::ptr::eq(self, this()), "another CPU's current vCPU");
        // SAFETY: as for `current`; the caller holds no reference from `current`.
        unsafe { *self.current.get() = p };
    }
}

static PERCPU: [PerCpu; MAX_CPUS] = [
    PerCpu::new(0),
    PerCpu::new(1),
    PerCpu::new(2),
    PerCpu::new(3),
    PerCpu::new(4),
    PerCpu::new(5),
    PerCpu::new(6),
    PerCpu::new(7),
];
const _: () = assert!(MAX_CPUS == 8, "PERCPU lists one block per CPU");

/// How many CPUs have a block (the boot CPU and the secondaries the device tree names).
static NR_CPUS: AtomicUsize = AtomicUsize::new(1);

/// Point this CPU's TPIDR_EL2 at block `index` and record its MPIDR and stack. Plain stores
/// only: the boot CPU calls it with the MMU off.
pub fn init_this_cpu(index: usize, mpidr: u64, stack_top: u64) {
    let c = &PERCPU[index];
    c.mpidr.store(mpidr, Ordering::Relaxed);
    c.stack_top.store(stack_top, Ordering::Relaxed);
    TPIDR_EL2.set(c as *const PerCpu as u64);
}

/// Declare block `index` (a secondary CPU about to be started) with its MPIDR and stack.
pub fn declare(index: usize, mpidr: u64, stack_top: u64) {
    let c = &PERCPU[index];
    c.mpidr.store(mpidr, Ordering::Release);
    c.stack_top.store(stack_top, Ordering::Release);
    NR_CPUS.fetch_max(index + 1, Ordering::AcqRel);
}

/// The calling CPU's block.
#[inline(always)]
pub fn this() -> &'static PerCpu {
    let p = TPIDR_EL2.get() as *const PerCpu;
    debug_assert!(PERCPU.as_ptr_range().contains(&p), "TPIDR_EL2 does not name a per-CPU block");
    // SAFETY: TPIDR_EL2 is set to one of the static blocks by `init_this_cpu` before any code
    // that calls this runs on the CPU (boot entry, secondary entry).
    unsafe { &*p }
}

/// The calling CPU's index.
#[inline(always)]
pub fn index() -> usize {
    this().index
}

/// Block `i`.
pub fn cpu(i: usize) -> &'static PerCpu {
    &PERCPU[i]
}

/// The blocks of every CPU the hypervisor knows.
pub fn cpus() -> &'static [PerCpu] {
    &PERCPU[..NR_CPUS.load(Ordering::Acquire)]
}

/// How many CPUs are online.
pub fn online() -> usize {
    cpus().iter().filter(|c| c.is_online()).count()
}

/// The held-lock record of the calling CPU (for `crate::sync`'s checker).
pub fn held_locks() -> &'static Held {
    &this().held
}

static HYPERVISOR: spin::Once<Hypervisor> = spin::Once::new();

/// Install the hypervisor context (once, at boot).
pub fn set_hypervisor(hv: Hypervisor) -> &'static Hypervisor {
    HYPERVISOR.call_once(|| hv)
}

/// The hypervisor context. Panics if called before boot built it.
pub fn hv() -> &'static Hypervisor {
    HYPERVISOR.get().expect("hypervisor used before boot built it")
}

/// The hypervisor context, if boot built it.
pub fn try_hv() -> Option<&'static Hypervisor> {
    HYPERVISOR.get()
}
