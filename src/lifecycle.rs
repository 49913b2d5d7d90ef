//! A domain's life as its vCPUs see it, decided here and carried out by the arch layer:
//!
//! * [`start`]: a built domain's vCPUs take their CPUs and vCPU 0 starts;
//! * [`shutdown`]: `SCHEDOP_shutdown`, PSCI `SYSTEM_OFF`/`SYSTEM_RESET` or a crash. The
//!   hardware domain takes the machine with it (as on Xen). Any other domain is stopped on
//!   every CPU — the vCPU that asked stops itself, the others are kicked — and once all are off
//!   ([`all_stopped`]) it is torn down ([`finish`]): P2M relinquished, grant mappings released,
//!   pages freed but those other domains still map. When the last domain is gone, the machine
//!   powers off.
//!
//! Each step returns what the arch layer must do ([`Shutdown`], [`Finished`]); nothing here
//! touches hardware but through [`crate::hw::Hw`].

use crate::domain::Domain;
use crate::hv::Hypervisor;
use crate::sched::PlaceError;
use crate::vcpu::Vcpu;
use alloc::sync::Arc;
use alloc::vec::Vec;
use xen_abi::sched::*;

/// Make the built domain `d` runnable: its vCPUs take their CPUs, vCPU 0 starts at `entry`
/// with x0 = `x0` (its CPU is kicked).
pub fn start(hv: &Hypervisor, d: &Arc<Domain>, entry: u64, x0: u64) -> Result<(), PlaceError> {
    hv.sched.place(d)?;
    for v in d.vcpus.iter() {
        log::info!("d{}v{} pinned to CPU{}", d.id, v.id, v.pcpu);
    }
    let v0 = &d.vcpus[0];
    if v0.power_on(entry, x0, || d.is_shutting_down()).is_ok() {
        hv.hw.kick(v0.pcpu);
    }
    Ok(())
}

/// What happens to the machine when the hardware domain goes down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineAction {
    /// Power off; `crashed` if dom0 crashed (the exit status says so).
    PowerOff {
        crashed: bool,
    },
    Reboot,
}

/// What the vCPU that asked for a shutdown does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// The hardware domain went down: the machine follows.
    Machine(MachineAction),
    /// Another vCPU is already taking the domain down: this one is off; its CPU idles.
    Joined,
    /// This vCPU takes the domain down: it is off; kick these CPUs, wait for
    /// [`all_stopped`], then call [`finish`].
    Stop { kick: Vec<usize> },
}

pub fn reason_name(reason: u32) -> &'static str {
    match reason {
        SHUTDOWN_POWEROFF => "poweroff",
        SHUTDOWN_REBOOT => "reboot",
        SHUTDOWN_SUSPEND => "suspend",
        SHUTDOWN_CRASH => "crash",
        SHUTDOWN_WATCHDOG => "watchdog",
        _ => "unknown reason",
    }
}

/// vCPU `from` of `d` asks for a shutdown with `reason` (`SHUTDOWN_*`).
pub fn shutdown(hv: &Hypervisor, d: &Domain, from: &Vcpu, reason: u32) -> Shutdown {
    d.console.flush(&*hv.hw);
    if d.id == 0 {
        return Shutdown::Machine(match reason {
            SHUTDOWN_POWEROFF => MachineAction::PowerOff { crashed: false },
            SHUTDOWN_CRASH => MachineAction::PowerOff { crashed: true },
            _ => MachineAction::Reboot,
        });
    }
    // The flag is set before any vCPU is stopped, so a CPU_ON racing this is refused or
    // its vCPU stopped below (see `vcpu`).
    let first = d.begin_shutdown();
    from.power_off();
    if !first {
        return Shutdown::Joined;
    }
    log::info!("d{}v{}: domain shutdown ({}): stopping its vCPUs", d.id, from.id, reason_name(reason));
    let kick = d.vcpus.iter().filter(|v| v.id != from.id && v.request_stop()).map(|v| v.pcpu).collect();
    Shutdown::Stop { kick }
}

/// Are all of `d`'s vCPUs off?
pub fn all_stopped(d: &Domain) -> bool {
    d.vcpus.iter().all(Vcpu::is_off)
}

/// What is left once a domain is torn down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Its pages other domains still map (freed when they unmap them).
    pub pages_left: u64,
    /// No running domain is left: the machine powers off.
    pub last: bool,
}

/// Tear down `d`, every vCPU of which is off: its CPUs become free, its memory goes.
pub fn finish(hv: &Hypervisor, d: &Arc<Domain>) -> Finished {
    debug_assert!(all_stopped(d), "d{} torn down with a vCPU running", d.id);
    hv.sched.release(d);
    hv.destroy_domain(d);
    let pages_left = hv.mm.pages_of(d.id).total();
    if pages_left == 0 {
        log::info!("d{}: destroyed, every page freed", d.id);
    } else {
        log::info!("d{}: destroyed; {pages_left} of its pages stay until the domains mapping them let go", d.id);
    }
    let last = !hv.domains().iter().any(|x| x.is_running());
    Finished { pages_left, last }
}
