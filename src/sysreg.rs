//! Architectural register layouts, decoded once for the arch layer and the portable core:
//! the exception syndrome (ESR_ELx), the stage-2 fault address (HPFAR_EL2) and the MPIDR
//! affinity fields.

/// Exception classes (ESR_ELx.EC).
pub mod ec {
    pub const UNKNOWN: u32 = 0x00;
    pub const WFX: u32 = 0x01;
    pub const CP15_32: u32 = 0x03;
    pub const CP15_64: u32 = 0x04;
    pub const CP14_32: u32 = 0x05;
    pub const CP14_LS: u32 = 0x06;
    pub const FP_ASIMD: u32 = 0x07;
    pub const CP14_64: u32 = 0x0C;
    pub const ILLEGAL_STATE: u32 = 0x0E;
    pub const SVC32: u32 = 0x11;
    pub const HVC32: u32 = 0x12;
    pub const SMC32: u32 = 0x13;
    pub const SVC64: u32 = 0x15;
    pub const HVC64: u32 = 0x16;
    pub const SMC64: u32 = 0x17;
    pub const SYSREG: u32 = 0x18;
    pub const SVE: u32 = 0x19;
    pub const INSTR_ABORT_LOWER: u32 = 0x20;
    pub const INSTR_ABORT_CUR: u32 = 0x21;
    pub const PC_ALIGN: u32 = 0x22;
    pub const DATA_ABORT_LOWER: u32 = 0x24;
    pub const DATA_ABORT_CUR: u32 = 0x25;
    pub const SP_ALIGN: u32 = 0x26;
    pub const FP_EXC64: u32 = 0x2C;
    pub const SERROR: u32 = 0x2F;
    pub const BREAKPOINT_LOWER: u32 = 0x30;
    pub const BREAKPOINT_CUR: u32 = 0x31;
    pub const SOFTSTEP_LOWER: u32 = 0x32;
    pub const SOFTSTEP_CUR: u32 = 0x33;
    pub const WATCHPOINT_LOWER: u32 = 0x34;
    pub const WATCHPOINT_CUR: u32 = 0x35;
    pub const BRK64: u32 = 0x3C;

    /// A name for exception class `ec` (fault reports, guest-trap messages).
    pub fn name(ec: u32) -> &'static str {
        match ec {
            UNKNOWN => "unknown reason (undefined instruction)",
            WFX => "trapped WFI/WFE",
            CP15_32 | CP14_32 => "trapped AArch32 MCR/MRC",
            CP15_64 | CP14_64 => "trapped AArch32 MCRR/MRRC",
            CP14_LS => "trapped AArch32 LDC/STC",
            FP_ASIMD => "trapped FP/SIMD access",
            0x08 => "trapped AArch32 VMRS",
            0x09 => "trapped pointer authentication instruction",
            0x0A => "trapped instruction (other)",
            0x0D => "branch target exception",
            ILLEGAL_STATE => "illegal execution state",
            SVC32 => "SVC (AArch32)",
            HVC32 => "HVC (AArch32)",
            SMC32 => "SMC (AArch32)",
            SVC64 => "SVC",
            HVC64 => "HVC",
            SMC64 => "SMC",
            0x14 => "trapped MSRR/MRRS",
            SYSREG => "trapped MSR/MRS/system instruction",
            SVE => "trapped SVE access",
            0x1A => "trapped ERET",
            0x1B => "TSTART",
            0x1C => "pointer authentication failure",
            0x1D => "trapped SME access",
            INSTR_ABORT_LOWER => "instruction abort from a lower EL",
            INSTR_ABORT_CUR => "instruction abort, same EL",
            PC_ALIGN => "PC alignment fault",
            DATA_ABORT_LOWER => "data abort from a lower EL",
            DATA_ABORT_CUR => "data abort, same EL",
            SP_ALIGN => "SP alignment fault",
            0x27 => "memory operation exception",
            0x28 | FP_EXC64 => "trapped floating-point exception",
            0x2D => "guarded control stack exception",
            SERROR => "SError",
            BREAKPOINT_LOWER | BREAKPOINT_CUR => "breakpoint",
            SOFTSTEP_LOWER | SOFTSTEP_CUR => "software step",
            WATCHPOINT_LOWER | WATCHPOINT_CUR => "watchpoint",
            0x38 => "BKPT (AArch32)",
            0x3A => "vector catch (AArch32)",
            BRK64 => "BRK",
            0x3D => "profiling exception",
            _ => "reserved or unnamed exception class",
        }
    }
}

/// ESR_ELx.EC.
pub const fn esr_ec(esr: u64) -> u32 {
    ((esr >> 26) & 0x3F) as u32
}
/// ESR_ELx.IL: the trapped instruction was 32 bits long.
pub const fn esr_il(esr: u64) -> bool {
    esr & (1 << 25) != 0
}
/// ESR_ELx.ISS.
pub const fn esr_iss(esr: u64) -> u32 {
    (esr & 0x1FF_FFFF) as u32
}

/// Fields of a data-abort ISS (EC 0x24/0x25).
pub mod dabt {
    /// Instruction syndrome valid: SAS/SSE/SRT/SF/AR describe the access.
    pub const ISV: u32 = 1 << 24;
    pub const SAS_SHIFT: u32 = 22;
    pub const SSE: u32 = 1 << 21;
    pub const SRT_SHIFT: u32 = 16;
    pub const SF: u32 = 1 << 15;
    /// Stage-2 fault on a stage-1 table walk.
    pub const S1PTW: u32 = 1 << 7;
    pub const WNR: u32 = 1 << 6;
    pub const FSC_MASK: u32 = 0x3F;
}

/// A trapped MSR/MRS (EC 0x18): which system register, which general register, which way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysregAccess {
    pub op0: u32,
    pub op1: u32,
    pub crn: u32,
    pub crm: u32,
    pub op2: u32,
    /// The general register (31: the zero register).
    pub rt: u8,
    /// MRS (a read) rather than MSR.
    pub read: bool,
}

impl SysregAccess {
    pub const fn decode(iss: u32) -> SysregAccess {
        SysregAccess {
            op0: (iss >> 20) & 3,
            op2: (iss >> 17) & 7,
            op1: (iss >> 14) & 7,
            crn: (iss >> 10) & 15,
            rt: ((iss >> 5) & 31) as u8,
            crm: (iss >> 1) & 15,
            read: iss & 1 != 0,
        }
    }
    /// `(op0, op1, crn, crm, op2)`, to match on.
    pub const fn encoding(&self) -> (u32, u32, u32, u32, u32) {
        (self.op0, self.op1, self.crn, self.crm, self.op2)
    }
}

/// System-register encodings `(op0, op1, CRn, CRm, op2)` the hypervisor emulates.
pub mod reg {
    pub const ICC_SGI1R_EL1: (u32, u32, u32, u32, u32) = (3, 0, 12, 11, 5);
    pub const ICC_ASGI1R_EL1: (u32, u32, u32, u32, u32) = (3, 1, 12, 11, 6);
    pub const ICC_SGI0R_EL1: (u32, u32, u32, u32, u32) = (3, 2, 12, 11, 7);
}

/// The faulting IPA of a stage-2 abort: HPFAR_EL2.FIPA (IPA[51:12] in bits 43:4, RES0 above
/// the implemented size), plus the page offset from FAR.
pub const fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    (((hpfar >> 4) & ((1 << 40) - 1)) << 12) | (far & 0xFFF)
}

/// The affinity fields of MPIDR_EL1 (Aff3 at 39:32, Aff2..Aff0 at 23:0); the rest are flags.
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// Affinity of `mpidr` (flags dropped).
pub const fn mpidr_affinity(mpidr: u64) -> u64 {
    mpidr & MPIDR_AFFINITY_MASK
}

/// The affinity fields at and above `level` (0..=3): what PSCI's `AFFINITY_INFO` compares at
/// that lowest affinity level. `None` beyond level 3.
pub const fn affinity_group_mask(level: u64) -> Option<u64> {
    match level {
        0 => Some(MPIDR_AFFINITY_MASK),
        1 => Some(MPIDR_AFFINITY_MASK & !0xff),
        2 => Some(MPIDR_AFFINITY_MASK & !0xffff),
        3 => Some(MPIDR_AFFINITY_MASK & !0xff_ffff),
        _ => None,
    }
}

/// Affinity level `level` (0..3) of `mpidr`.
pub const fn mpidr_aff(mpidr: u64, level: u32) -> u64 {
    match level {
        0 => mpidr & 0xff,
        1 => (mpidr >> 8) & 0xff,
        2 => (mpidr >> 16) & 0xff,
        _ => (mpidr >> 32) & 0xff,
    }
}

/// The 32-bit packed affinity GICv3 uses (GICR_TYPER[63:32], GICD_IROUTER without IRM):
/// Aff3.Aff2.Aff1.Aff0.
pub const fn mpidr_to_aff32(mpidr: u64) -> u32 {
    ((mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000)) as u32
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn affinity_fields() {
        let m = 0x8000_0000 | (0x12 << 32) | (0x34 << 16) | (0x56 << 8) | 0x78;
        assert_eq!(mpidr_affinity(m), 0x12_0034_5678);
        assert_eq!([0, 1, 2, 3].map(|l| mpidr_aff(m, l)), [0x78, 0x56, 0x34, 0x12]);
        assert_eq!(mpidr_to_aff32(m), 0x1234_5678);
        assert_eq!(
            [0, 1, 2, 3].map(|l| m & affinity_group_mask(l).unwrap()),
            [0x12_0034_5678, 0x12_0034_5600, 0x12_0034_0000, 0x12_0000_0000]
        );
        assert_eq!(affinity_group_mask(4), None);
    }

    #[test]
    fn hpfar_decodes_the_ipa() {
        assert_eq!(fault_ipa(0x40_2010 << 4, 0xffff_0000_1234_5678), (0x40_2010 << 12) | 0x678);
        // RES0 bits above FIPA are ignored
        assert_eq!(fault_ipa((1 << 63) | (1 << 4), 0), 1 << 12);
        assert_eq!(ec::name(esr_ec(0x16 << 26)), "HVC");
    }
}
