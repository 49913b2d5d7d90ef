//! Portable parts of guest trap handling (fault reports of the hypervisor itself are decoded
//! by `arch::aarch64::esr`): decoding the syndrome of a trap from EL1/EL0 and
//! computing how an exception is injected back into the guest, the way Xen does it.
//!
//! The arch layer reads ESR_EL2/FAR_EL2/HPFAR_EL2, calls [`decode`], and applies an
//! [`Injection`] by writing ELR_EL1/SPSR_EL1/ESR_EL1/FAR_EL1 and the new PC/PSTATE.

use crate::sysreg::{dabt, fault_ipa};
pub use crate::sysreg::{ec, esr_ec, esr_il, esr_iss};

/// What a guest trap is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestTrap {
    Hvc {
        imm: u16,
    },
    Smc {
        imm: u16,
    },
    /// A stage-2 data abort: the guest touched an IPA that is unmapped or mapped without the
    /// needed permission.
    DataAbort {
        ipa: u64,
        va: u64,
        write: bool,
        fsc: u32,
        isv: bool,
        s1ptw: bool,
    },
    InstrAbort {
        ipa: u64,
        va: u64,
        fsc: u32,
    },
    Wfx {
        wfe: bool,
    },
    Sysreg {
        iss: u32,
    },
    /// Anything else: reflected as an undefined instruction.
    Other {
        ec: u32,
        iss: u32,
    },
}

/// Decode a lower-EL synchronous trap. `hpfar` is HPFAR_EL2 (IPA[47:12] in bits 43:4).
pub fn decode(esr: u64, far: u64, hpfar: u64) -> GuestTrap {
    let (ec, iss) = (esr_ec(esr), esr_iss(esr));
    let ipa = fault_ipa(hpfar, far);
    match ec {
        ec::HVC64 => GuestTrap::Hvc { imm: iss as u16 },
        ec::SMC64 => GuestTrap::Smc { imm: iss as u16 },
        ec::DATA_ABORT_LOWER => GuestTrap::DataAbort {
            ipa,
            va: far,
            write: iss & dabt::WNR != 0,
            fsc: iss & dabt::FSC_MASK,
            isv: iss & dabt::ISV != 0,
            s1ptw: iss & dabt::S1PTW != 0,
        },
        ec::INSTR_ABORT_LOWER => GuestTrap::InstrAbort { ipa, va: far, fsc: iss & dabt::FSC_MASK },
        ec::WFX => GuestTrap::Wfx { wfe: iss & 1 != 0 },
        ec::SYSREG => GuestTrap::Sysreg { iss },
        _ => GuestTrap::Other { ec, iss },
    }
}

/// PSTATE mode field values.
pub const PSR_MODE_EL0T: u64 = 0b0000;
pub const PSR_MODE_EL1T: u64 = 0b0100;
pub const PSR_MODE_EL1H: u64 = 0b0101;
pub const PSR_MODE_MASK: u64 = 0b1111;
/// D, A, I, F masked.
pub const PSR_DAIF: u64 = 0b1111 << 6;
/// AArch32 state bit (M[4]).
pub const PSR_AARCH32: u64 = 1 << 4;

/// The guest state an injection starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestPc {
    /// ELR_EL2: where the guest was (the faulting instruction, or the one after an HVC).
    pub pc: u64,
    /// SPSR_EL2: the guest's PSTATE.
    pub pstate: u64,
    /// VBAR_EL1.
    pub vbar: u64,
}

/// The register writes that inject a synchronous exception into the guest's EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub esr_el1: u64,
    /// `None` leaves FAR_EL1 alone (undefined instruction).
    pub far_el1: Option<u64>,
    /// New ELR_EL2 / SPSR_EL2: the guest resumes in its vector at EL1h, DAIF masked.
    pub pc: u64,
    pub pstate: u64,
}

fn vector(g: &GuestPc) -> u64 {
    let offset = match g.pstate & PSR_MODE_MASK {
        _ if g.pstate & PSR_AARCH32 != 0 => 0x600,
        PSR_MODE_EL1H => 0x200,
        PSR_MODE_EL1T => 0x000,
        _ => 0x400, // from EL0, AArch64
    };
    g.vbar + offset // + 0 for "synchronous"
}

fn from_el0(g: &GuestPc) -> bool {
    g.pstate & PSR_MODE_MASK == PSR_MODE_EL0T
}

fn inject(g: &GuestPc, ec: u32, il: bool, iss: u32, far: Option<u64>) -> Injection {
    Injection {
        elr_el1: g.pc,
        spsr_el1: g.pstate,
        esr_el1: ((ec as u64) << 26) | ((il as u64) << 25) | iss as u64,
        far_el1: far,
        pc: vector(g),
        pstate: PSR_MODE_EL1H | PSR_DAIF,
    }
}

/// An abort the hypervisor cannot resolve, reflected into the guest like Xen does it: a data
/// (or prefetch) abort "from the current EL" (or from EL0), ISS 0, FAR = the faulting VA.
pub fn inject_abort(g: &GuestPc, instruction: bool, va: u64, il: bool) -> Injection {
    let ec = match (instruction, from_el0(g)) {
        (false, false) => ec::DATA_ABORT_CUR,
        (false, true) => ec::DATA_ABORT_LOWER,
        (true, false) => ec::INSTR_ABORT_CUR,
        (true, true) => ec::INSTR_ABORT_LOWER,
    };
    inject(g, ec, il, 0, Some(va))
}

/// An undefined instruction (EC 0, "unknown reason"), e.g. for an HVC with a foreign immediate.
pub fn inject_undef(g: &GuestPc, il: bool) -> Injection {
    inject(g, ec::UNKNOWN, il, 0, None)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn decodes_hypercalls_and_stage2_aborts() {
        let hvc = (0x16u64 << 26) | (1 << 25) | 0xEA1;
        assert_eq!(decode(hvc, 0, 0), GuestTrap::Hvc { imm: 0xEA1 });
        assert_eq!(decode((0x17 << 26) | (1 << 25), 0, 0), GuestTrap::Smc { imm: 0 });
        // write translation fault at level 3, valid syndrome
        let dabt = (0x24u64 << 26) | (1 << 25) | (1 << 24) | (1 << 6) | 0x07;
        let hpfar = 0x40_2010u64 << 4; // IPA page 0x402010 in HPFAR_EL2.FIPA (bits 43:4)
        let t = decode(dabt, 0xffff_0000_1234_5678, hpfar);
        match t {
            GuestTrap::DataAbort { ipa, va, write, fsc, isv, s1ptw } => {
                assert_eq!(ipa, (0x40_2010u64 << 12) | 0x678);
                assert_eq!(va, 0xffff_0000_1234_5678);
                assert!(write && isv && !s1ptw);
                assert_eq!(fsc, 0x07, "translation fault, level 3");
            }
            _ => panic!("{t:?}"),
        }
        assert_eq!(esr_ec(dabt), ec::DATA_ABORT_LOWER);
        assert_eq!(decode(0x1Fu64 << 26, 0, 0), GuestTrap::Other { ec: 0x1F, iss: 0 });
    }

    #[test]
    fn aborts_are_injected_like_xen() {
        let g = GuestPc { pc: 0x4008_0000, pstate: PSR_MODE_EL1H | 0x2000_0000, vbar: 0x4010_0000 };
        let i = inject_abort(&g, false, 0x3800_1000, true);
        assert_eq!(i.pc, 0x4010_0200, "current EL with SP_EL1: vector + 0x200");
        assert_eq!(i.esr_el1, (0x25 << 26) | (1 << 25), "EC data abort current EL, IL, ISS 0");
        assert_eq!((i.elr_el1, i.spsr_el1, i.far_el1), (g.pc, g.pstate, Some(0x3800_1000)));
        assert_eq!(i.pstate, 0x3c5, "EL1h with DAIF masked");
        let user = GuestPc { pstate: PSR_MODE_EL0T, ..g };
        let i = inject_abort(&user, true, 0x1000, true);
        assert_eq!((i.pc, i.esr_el1 >> 26), (0x4010_0400, 0x20));
        let t = GuestPc { pstate: PSR_MODE_EL1T, ..g };
        assert_eq!(inject_undef(&t, true).pc, 0x4010_0000);
        assert_eq!(inject_undef(&t, true).esr_el1, 1 << 25);
        assert_eq!(inject_undef(&t, true).far_el1, None);
    }
}
