//! Virtual CPUs, portable: identity, run state and its transitions (the PSCI interface a guest
//! drives them with is [`crate::vpsci`]).
//!
//! A vCPU belongs to one domain and is pinned to one physical CPU for its whole life (the
//! pinned scheduler, [`crate::sched`]). Its run state moves:
//!
//! ```text
//!            CPU_ON / domain start          its pCPU enters it
//!   Off ──────────────────────────▶ Pending ───────────────────▶ Running
//!    ▲  ◀────────────────────────────┘ shutdown                 │   │
//!    │                                                  CPU_OFF │   │ shutdown
//!    ├──────────────────────────────────────────────────────────┘   ▼
//!    └──────────────────── its pCPU sees the kick ◀──────────── Stopping
//! ```
//!
//! Every transition takes the vCPU's run-state lock ([`crate::sync::rank::VCPU_RUN`]); the
//! caller carries out what a transition asks of the hardware (kick the vCPU's pCPU, go idle).
//! A `CPU_ON` racing its domain's shutdown either starts the vCPU before the shutdown stops it
//! or is refused (`DENIED`): the domain's shutdown flag is set before any vCPU is stopped and
//! read under the target's lock.

use crate::sync::{AtomicU64, Mutex, rank};
use crate::sysreg::MPIDR_AFFINITY_MASK;
use xen_abi::vcpuop::RUNSTATE_OFFLINE;

/// Run state of a vCPU (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RunState {
    /// Not started, or stopped (`CPU_OFF`, its domain's shutdown).
    Off,
    /// Started: its pCPU enters it at `entry` (EL1h, MMU off) with x0 = `context`.
    Pending { entry: u64, context: u64 },
    /// Its pCPU runs it.
    Running,
    /// Its domain is going down: its pCPU leaves it at the next trap or kick.
    Stopping,
}

/// Why `CPU_ON` is refused (PSCI's error codes, in [`Refusal::code`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refusal {
    AlreadyOn,
    OnPending,
    /// Its domain is shutting down.
    Denied,
}

impl Refusal {
    pub fn code(self) -> i64 {
        use xen_abi::psci::*;
        match self {
            Refusal::AlreadyOn => PSCI_ALREADY_ON,
            Refusal::OnPending => PSCI_ON_PENDING,
            Refusal::Denied => PSCI_DENIED,
        }
    }
}

/// A vCPU's runstate as Xen accounts it (`struct vcpu_runstate_info`: the state, when it was
/// entered and the time spent in each, in nanoseconds of hypervisor system time), and where
/// the guest asked for a copy (`VCPUOP_register_runstate_memory_area`). Kept up to date by
/// `hypercall::vcpu::set_runstate`, which the arch layer calls when the vCPU starts, blocks,
/// wakes or goes off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runstate {
    /// `RUNSTATE_*`.
    pub state: u32,
    pub entry_time: u64,
    pub time: [u64; 4],
    /// Guest virtual address of the registered area; 0: none.
    pub area: u64,
}

impl Runstate {
    /// Enter `state` at `now` (Xen's `vcpu_runstate_change`: the time since the last change is
    /// charged to the old state, and the entry time moves only forward).
    pub fn change(&mut self, state: u32, now: u64) {
        if now > self.entry_time {
            if let Some(t) = self.time.get_mut(self.state as usize) {
                *t = t.wrapping_add(now - self.entry_time);
            }
            self.entry_time = now;
        }
        self.state = state;
    }

    /// The accounting as of `now` (Xen's `vcpu_runstate_get`: the current state's time runs
    /// until now).
    pub fn at(&self, now: u64) -> Runstate {
        let mut r = *self;
        if now > r.entry_time
            && let Some(t) = r.time.get_mut(r.state as usize)
        {
            *t = t.wrapping_add(now - r.entry_time);
        }
        r
    }
}

/// A virtual CPU.
pub struct Vcpu {
    pub id: u32,
    /// The MPIDR affinity the guest reads (VMPIDR_EL2 without its flags).
    pub mpidr: u64,
    /// The physical CPU it is pinned to.
    pub pcpu: usize,
    /// Event-channel upcalls raised for it (`Domain::raise_event_upcall`): a statistic.
    pub upcalls: AtomicU64,
    /// Its runstate accounting and registered runstate area.
    pub runstate: Mutex<Runstate>,
    run: Mutex<RunState>,
}

/// MPIDR affinity of vCPU `id`: 16 vCPUs per Aff0 cluster (Xen's `vcpuid_to_vaffinity`).
pub const fn vcpu_mpidr(id: u32) -> u64 {
    ((id as u64 >> 4) << 8) | (id as u64 & 0xf)
}

impl Vcpu {
    /// vCPU `id`, pinned to `pcpu`, off.
    pub fn new(id: u32, pcpu: usize) -> Vcpu {
        Vcpu {
            id,
            mpidr: vcpu_mpidr(id),
            pcpu,
            upcalls: AtomicU64::new(0),
            runstate: Mutex::new(rank::VCPU_RUNSTATE, Runstate { state: RUNSTATE_OFFLINE, ..Runstate::default() }),
            run: Mutex::new(rank::VCPU_RUN, RunState::Off),
        }
    }

    pub fn state(&self) -> RunState {
        *self.run.lock()
    }

    pub fn is_off(&self) -> bool {
        self.state() == RunState::Off
    }

    /// Does `mpidr` (flags ignored) name this vCPU?
    pub fn has_affinity(&self, mpidr: u64) -> bool {
        self.mpidr == mpidr & MPIDR_AFFINITY_MASK
    }

    /// `CPU_ON` (or the domain's start): Off → Pending. `going_down` is the domain's shutdown
    /// flag, read under this vCPU's lock. On success the caller kicks [`Self::pcpu`].
    pub fn power_on(&self, entry: u64, context: u64, going_down: impl FnOnce() -> bool) -> Result<(), Refusal> {
        let mut st = self.run.lock();
        match *st {
            RunState::Off if going_down() => Err(Refusal::Denied),
            RunState::Off => {
                *st = RunState::Pending { entry, context };
                Ok(())
            }
            RunState::Pending { .. } => Err(Refusal::OnPending),
            RunState::Running | RunState::Stopping => Err(Refusal::AlreadyOn),
        }
    }

    /// Its pCPU takes a pending start: Pending → Running, with where to enter it.
    pub fn take_start(&self) -> Option<(u64, u64)> {
        let mut st = self.run.lock();
        match *st {
            RunState::Pending { entry, context } => {
                *st = RunState::Running;
                Some((entry, context))
            }
            _ => None,
        }
    }

    /// `AFFINITY_INFO` at level 0: 0 on, 1 off, 2 on pending.
    pub fn affinity_info(&self) -> i64 {
        match self.state() {
            RunState::Off => 1,
            RunState::Pending { .. } => 2,
            RunState::Running | RunState::Stopping => 0,
        }
    }

    /// `CPU_OFF` from the vCPU itself, or its pCPU leaving it: → Off.
    pub fn power_off(&self) {
        *self.run.lock() = RunState::Off;
    }

    /// Its domain goes down: a pending start is cancelled (Off), a running vCPU must stop
    /// (Stopping). Returns true if its pCPU must be kicked to see it.
    pub fn request_stop(&self) -> bool {
        let mut st = self.run.lock();
        match *st {
            RunState::Pending { .. } => {
                *st = RunState::Off;
                false
            }
            RunState::Running => {
                *st = RunState::Stopping;
                true
            }
            RunState::Off | RunState::Stopping => false,
        }
    }

    /// Its pCPU, at a trap or kick: if a stop was requested, the vCPU is now Off and the pCPU
    /// must leave it (returns true).
    pub fn stop_if_requested(&self) -> bool {
        let mut st = self.run.lock();
        if *st == RunState::Stopping {
            *st = RunState::Off;
            return true;
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn affinity_is_xens_vaffinity() {
        assert_eq!(vcpu_mpidr(0), 0);
        assert_eq!(vcpu_mpidr(15), 0xf);
        assert_eq!(vcpu_mpidr(17), 0x101);
        let v = Vcpu::new(17, 3);
        assert!(v.has_affinity(0x8000_0101));
        assert!(!v.has_affinity(0x1_0000_0101));
    }

    #[test]
    fn runstate_charges_the_old_state_and_only_moves_forward() {
        use xen_abi::vcpuop::*;
        let mut r = Runstate { state: RUNSTATE_OFFLINE, entry_time: 100, ..Runstate::default() };
        r.change(RUNSTATE_RUNNING, 150);
        assert_eq!((r.state, r.entry_time, r.time), (RUNSTATE_RUNNING, 150, [0, 0, 0, 50]));
        r.change(RUNSTATE_BLOCKED, 140);
        assert_eq!((r.state, r.entry_time, r.time), (RUNSTATE_BLOCKED, 150, [0, 0, 0, 50]), "time went back");
        r.change(RUNSTATE_RUNNING, 175);
        assert_eq!(r.time, [0, 0, 25, 50]);
        assert_eq!(r.at(200).time, [25, 0, 25, 50], "a snapshot runs the current state until now");
        assert_eq!(r.time, [0, 0, 25, 50]);
    }

    #[test]
    fn every_transition() {
        let v = Vcpu::new(1, 1);
        assert_eq!((v.state(), v.affinity_info()), (RunState::Off, 1));
        assert_eq!(v.take_start(), None, "nothing to start");
        assert_eq!(v.power_on(0x1000, 7, || true), Err(Refusal::Denied));
        assert_eq!(v.power_on(0x1000, 7, || false), Ok(()));
        assert_eq!((v.state(), v.affinity_info()), (RunState::Pending { entry: 0x1000, context: 7 }, 2));
        assert_eq!(v.power_on(0x2000, 0, || false), Err(Refusal::OnPending));
        assert_eq!(v.take_start(), Some((0x1000, 7)));
        assert_eq!((v.state(), v.affinity_info()), (RunState::Running, 0));
        assert_eq!(v.power_on(0x2000, 0, || false), Err(Refusal::AlreadyOn));
        assert!(!v.stop_if_requested(), "no stop requested");
        assert!(v.request_stop(), "a running vCPU's pCPU is kicked");
        assert_eq!((v.state(), v.affinity_info()), (RunState::Stopping, 0));
        assert_eq!(v.power_on(0x2000, 0, || false), Err(Refusal::AlreadyOn));
        assert!(!v.request_stop(), "asked once");
        assert!(v.stop_if_requested());
        assert!(v.is_off());
        assert_eq!(v.power_on(0x3000, 1, || false), Ok(()));
        assert!(!v.request_stop(), "a pending start is cancelled without a kick");
        assert!(v.is_off());
        assert_eq!(v.power_on(0x3000, 1, || false), Ok(()));
        assert_eq!(v.take_start(), Some((0x3000, 1)));
        v.power_off();
        assert_eq!(v.affinity_info(), 1);
    }
}
