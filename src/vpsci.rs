//! The PSCI / SMCCC interface a guest sees (through `HVC #0`, or `SMC #0` trapped by
//! HCR_EL2.TSC): PSCI 1.1 with SMCCC 1.1. [`decode`] turns the registers into a [`PsciCall`];
//! [`call`] carries it out on the calling domain's vCPUs ([`crate::vcpu`]) and says what the
//! arch layer must do next ([`PsciOutcome`]).

use crate::domain::Domain;
use crate::sysreg::affinity_group_mask;
use crate::vcpu::Vcpu;
use xen_abi::psci::*;

/// What the guest asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciCall {
    /// Answer in x0 and resume.
    Return(i64),
    /// Answer in x0..x3 (the vendor hypervisor service's UID and revision).
    Return4([u64; 4]),
    /// `CPU_SUSPEND`: wait for an interrupt, then return success.
    CpuSuspend,
    SystemOff,
    SystemReset,
    /// Start vCPU `target` (MPIDR affinity) at `entry` with x0 = `context`.
    CpuOn {
        target: u64,
        entry: u64,
        context: u64,
    },
    CpuOff,
    /// Is the vCPU with affinity `target` on?
    AffinityInfo {
        target: u64,
        level: u64,
    },
}

/// Decode function id `fid` (w0) with arguments x1..x3.
pub fn decode(fid: u64, x1: u64, x2: u64, x3: u64) -> PsciCall {
    // SMC64/HVC64 function ids have bit 30 set; SMC32 ids take 32-bit arguments.
    let fid32 = fid as u32;
    let arg = |x: u64| if fid32 & (1 << 30) != 0 { x } else { x as u32 as u64 };
    match fid32 {
        SMCCC_VERSION => PsciCall::Return(SMCCC_VERSION_1_1 as i64),
        SMCCC_ARCH_FEATURES => PsciCall::Return(PSCI_NOT_SUPPORTED),
        PSCI_VERSION => PsciCall::Return(PSCI_VERSION_1_1 as i64),
        PSCI_FEATURES => PsciCall::Return(match x1 as u32 {
            PSCI_VERSION
            | PSCI_CPU_SUSPEND_32
            | PSCI_CPU_SUSPEND_64
            | PSCI_CPU_OFF
            | PSCI_CPU_ON_64
            | PSCI_CPU_ON_32
            | PSCI_AFFINITY_INFO_64
            | PSCI_AFFINITY_INFO_32
            | PSCI_SYSTEM_OFF
            | PSCI_SYSTEM_RESET
            | PSCI_FEATURES
            | PSCI_MIGRATE_INFO_TYPE
            | SMCCC_VERSION => PSCI_SUCCESS,
            _ => PSCI_NOT_SUPPORTED,
        }),
        // "Trusted OS not present or does not require migration".
        PSCI_MIGRATE_INFO_TYPE => PsciCall::Return(2),
        PSCI_SYSTEM_OFF => PsciCall::SystemOff,
        PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => PsciCall::CpuSuspend,
        // Xen's hypervisor service: its UID (so a guest looking for KVM's finds Xen's).
        SMCCC_HYP_CALL_COUNT => PsciCall::Return(XEN_SMCCC_FUNCTION_COUNT as i64),
        SMCCC_HYP_CALL_UID => PsciCall::Return4(XEN_SMCCC_UID.map(|w| w as u64)),
        SMCCC_HYP_REVISION => PsciCall::Return4([XEN_SMCCC_REVISION.0 as u64, XEN_SMCCC_REVISION.1 as u64, 0, 0]),
        PSCI_SYSTEM_RESET => PsciCall::SystemReset,
        PSCI_CPU_OFF => PsciCall::CpuOff,
        PSCI_CPU_ON_64 | PSCI_CPU_ON_32 => PsciCall::CpuOn { target: arg(x1), entry: arg(x2), context: arg(x3) },
        PSCI_AFFINITY_INFO_64 | PSCI_AFFINITY_INFO_32 => PsciCall::AffinityInfo { target: arg(x1), level: arg(x2) },
        _ => PsciCall::Return(PSCI_NOT_SUPPORTED),
    }
}

/// What the arch layer does after a PSCI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciOutcome {
    /// Return `x0` to the guest; if `started` names a vCPU (`CPU_ON` succeeded), its pCPU
    /// must be told to look at it.
    Return { x0: i64, started: Option<u32> },
    /// Return these in x0..x3.
    Return4([u64; 4]),
    /// Block the vCPU until an interrupt is pending for it (as WFI), then return success.
    Suspend,
    /// The calling vCPU is off: its pCPU leaves it.
    Off,
    /// `SYSTEM_OFF` / `SYSTEM_RESET`: the domain shuts down with this `SHUTDOWN_*` reason.
    Shutdown(u32),
}

/// Carry out PSCI call `fid` of vCPU `v` of `d`.
pub fn call(d: &Domain, v: &Vcpu, fid: u64, x1: u64, x2: u64, x3: u64) -> PsciOutcome {
    use xen_abi::sched::{SHUTDOWN_POWEROFF, SHUTDOWN_REBOOT};
    let ret = |x0| PsciOutcome::Return { x0, started: None };
    match decode(fid, x1, x2, x3) {
        PsciCall::Return(x0) => ret(x0),
        PsciCall::Return4(r) => PsciOutcome::Return4(r),
        PsciCall::CpuSuspend => PsciOutcome::Suspend,
        PsciCall::SystemOff => PsciOutcome::Shutdown(SHUTDOWN_POWEROFF),
        PsciCall::SystemReset => PsciOutcome::Shutdown(SHUTDOWN_REBOOT),
        PsciCall::CpuOff => {
            v.power_off();
            PsciOutcome::Off
        }
        PsciCall::CpuOn { target, entry, context } => match d.vcpu_by_mpidr(target) {
            None => ret(PSCI_INVALID_PARAMETERS),
            // Bit 0 asks for Thumb state, which a 64-bit guest cannot enter: refused before
            // the target's state is looked at, as Xen 4.17 does.
            Some(_) if entry & 1 != 0 => ret(PSCI_INVALID_ADDRESS),
            Some(t) => match t.power_on(entry, context, || d.is_shutting_down()) {
                Ok(()) => PsciOutcome::Return { x0: PSCI_SUCCESS, started: Some(t.id) },
                Err(r) => ret(r.code()),
            },
        },
        PsciCall::AffinityInfo { target, level } => ret(affinity_info(d, target, level)),
    }
}

/// `AFFINITY_INFO(target, level)`: at level 0 the state of the vCPU `target` names; at levels
/// 1 to 3 that of the group of vCPUs sharing `target`'s affinity fields above `level` (ON if one
/// is on, else ON_PENDING if one is starting, else OFF). A target naming no vCPU, or a level
/// beyond 3, is INVALID_PARAMETERS as PSCI says (Xen 4.17 answers OFF for the former).
fn affinity_info(d: &Domain, target: u64, level: u64) -> i64 {
    const ON: i64 = 0;
    const OFF: i64 = 1;
    const ON_PENDING: i64 = 2;
    let Some(mask) = affinity_group_mask(level) else { return PSCI_INVALID_PARAMETERS };
    let mut answer = None;
    for v in d.vcpus.iter().filter(|v| v.mpidr & mask == target & mask) {
        answer = match (answer, v.affinity_info()) {
            (_, ON) => return ON,
            (Some(ON_PENDING), _) | (_, ON_PENDING) => Some(ON_PENDING),
            (_, state) => Some(state),
        };
    }
    answer.map_or(PSCI_INVALID_PARAMETERS, |a| if a == ON_PENDING { ON_PENDING } else { OFF })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn answers_like_psci_1_1() {
        assert_eq!(decode(PSCI_VERSION as u64, 0, 0, 0), PsciCall::Return(0x10001));
        assert_eq!(decode(SMCCC_VERSION as u64, 0, 0, 0), PsciCall::Return(0x10001));
        assert_eq!(decode(PSCI_FEATURES as u64, PSCI_CPU_ON_64 as u64, 0, 0), PsciCall::Return(0));
        assert_eq!(decode(PSCI_FEATURES as u64, 0xC400_0012, 0, 0), PsciCall::Return(-1));
        assert_eq!(decode(PSCI_FEATURES as u64, PSCI_CPU_SUSPEND_64 as u64, 0, 0), PsciCall::Return(0));
        assert_eq!(decode(SMCCC_ARCH_FEATURES as u64, SMCCC_ARCH_WORKAROUND_1 as u64, 0, 0), PsciCall::Return(-1));
        assert_eq!(decode(0xC400_0001, 0, 0, 0), PsciCall::CpuSuspend);
        assert_eq!(
            decode(0x8600_FF01, 0, 0, 0),
            PsciCall::Return4([0xdc12_18a7, 0x6943_98c6, 0xd179_cf9a, 0x67e6_de8d]),
            "Xen's UID, a71812dc-c698-4369-9acf-79d18ddee667"
        );
        assert_eq!(decode(0x8400_0008, 0, 0, 0), PsciCall::SystemOff);
        assert_eq!(decode(0x1234_5678, 0, 0, 0), PsciCall::Return(-1));
        assert_eq!(
            decode(0xC400_0003, 0x101, 0x4008_0000, 7),
            PsciCall::CpuOn { target: 0x101, entry: 0x4008_0000, context: 7 }
        );
        // 32-bit calling convention truncates arguments
        assert_eq!(
            decode(0x8400_0003, 0xffff_ffff_0000_0001, 0x1_4008_0000, 0),
            PsciCall::CpuOn { target: 1, entry: 0x4008_0000, context: 0 }
        );
    }
}
