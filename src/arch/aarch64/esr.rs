//! Decoding of exception syndromes (ESR_EL2) for fault reports.

pub use crate::sysreg::ec;
use aarch64_cpu::registers::ESR_EL2;
use core::fmt;
use tock_registers::LocalRegisterCopy;

/// A syndrome value.
#[derive(Clone, Copy)]
pub struct Esr(LocalRegisterCopy<u64, ESR_EL2::Register>);

impl Esr {
    pub fn new(v: u64) -> Self {
        Esr(LocalRegisterCopy::new(v))
    }
    pub fn raw(self) -> u64 {
        self.0.get()
    }
    pub fn ec(self) -> u32 {
        crate::sysreg::esr_ec(self.raw())
    }
    /// The trapped instruction was 32 bits (IL).
    pub fn il32(self) -> bool {
        self.0.is_set(ESR_EL2::IL)
    }
    pub fn iss(self) -> u64 {
        self.0.read(ESR_EL2::ISS)
    }

    /// A name for the exception class.
    pub fn ec_name(self) -> &'static str {
        ec::name(self.ec())
    }

    pub fn is_abort(self) -> bool {
        matches!(self.ec(), ec::INSTR_ABORT_LOWER | ec::INSTR_ABORT_CUR | ec::DATA_ABORT_LOWER | ec::DATA_ABORT_CUR)
    }
    pub fn is_data_abort(self) -> bool {
        matches!(self.ec(), ec::DATA_ABORT_LOWER | ec::DATA_ABORT_CUR)
    }
    /// FAR holds a valid address (aborts with FnV clear, alignment faults, watchpoints).
    pub fn far_valid(self) -> bool {
        match self.ec() {
            ec::INSTR_ABORT_LOWER | ec::INSTR_ABORT_CUR | ec::DATA_ABORT_LOWER | ec::DATA_ABORT_CUR => {
                self.iss() & (1 << 10) == 0
            }
            ec::PC_ALIGN | ec::WATCHPOINT_LOWER | ec::WATCHPOINT_CUR => true,
            _ => false,
        }
    }
}

/// The meaning of a data/instruction fault status code (DFSC/IFSC).
pub fn fault_status_name(fsc: u64) -> (&'static str, Option<u64>) {
    let level = Some(fsc & 3);
    match fsc {
        0b00_0000..=0b00_0011 => ("address size fault", level),
        0b00_0100..=0b00_0111 => ("translation fault", level),
        0b00_1000..=0b00_1011 => ("access flag fault", level),
        0b00_1100..=0b00_1111 => ("permission fault", level),
        0b01_0000 => ("synchronous external abort", None),
        0b01_0001 => ("synchronous tag check fault", None),
        0b01_0100..=0b01_0111 => ("synchronous external abort on a table walk", level),
        0b01_1000 => ("synchronous parity/ECC error", None),
        0b01_1100..=0b01_1111 => ("synchronous parity/ECC error on a table walk", level),
        0b10_0001 => ("alignment fault", None),
        0b11_0000 => ("TLB conflict abort", None),
        0b11_0001 => ("unsupported atomic hardware update", None),
        0b11_0100 => ("IMPLEMENTATION DEFINED fault (lockdown)", None),
        0b11_0101 => ("IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic)", None),
        _ => ("reserved fault status", None),
    }
}

impl fmt::Display for Esr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let iss = self.iss();
        write!(
            f,
            "ESR {:#010x}: EC {:#04x} ({}), IL {}, ISS {:#09x}",
            self.raw(),
            self.ec(),
            self.ec_name(),
            if self.il32() { "32-bit" } else { "16-bit" },
            iss
        )?;
        let bit = |n: u32| (iss >> n) & 1;
        match self.ec() {
            ec::DATA_ABORT_LOWER | ec::DATA_ABORT_CUR | ec::INSTR_ABORT_LOWER | ec::INSTR_ABORT_CUR => {
                let data = self.is_data_abort();
                let fsc = iss & 0x3f;
                let (what, level) = fault_status_name(fsc);
                write!(f, "\n    {} {fsc:#04x}: {what}", if data { "DFSC" } else { "IFSC" })?;
                if let Some(l) = level {
                    write!(f, " at level {l}")?;
                }
                if data {
                    write!(f, "; {} access", if bit(6) == 1 { "write (WnR=1)" } else { "read (WnR=0)" })?;
                    if bit(24) == 1 {
                        let sas = [1, 2, 4, 8][((iss >> 22) & 3) as usize];
                        write!(
                            f,
                            "; ISV=1: {sas}-byte, register x{}{}{}",
                            (iss >> 16) & 31,
                            if bit(21) == 1 { ", sign-extended" } else { "" },
                            if bit(15) == 1 { ", 64-bit register" } else { ", 32-bit register" }
                        )?;
                    } else {
                        write!(f, "; ISV=0")?;
                    }
                    write!(f, "; CM={}", bit(8))?;
                }
                write!(
                    f,
                    "; FnV={} ({}); EA={}; S1PTW={}",
                    bit(10),
                    if bit(10) == 1 { "FAR not valid" } else { "FAR valid" },
                    bit(9),
                    bit(7)
                )
            }
            ec::SVC64 | ec::HVC64 | ec::SMC64 | ec::BRK64 => write!(f, "\n    immediate {:#06x}", iss & 0xffff),
            ec::SYSREG => write!(
                f,
                "\n    {} S{}_{}_C{}_C{}_{} (Op0 {}, Op1 {}, CRn {}, CRm {}, Op2 {}), x{}",
                if iss & 1 == 1 { "MRS (read)" } else { "MSR (write)" },
                (iss >> 20) & 3,
                (iss >> 14) & 7,
                (iss >> 10) & 15,
                (iss >> 1) & 15,
                (iss >> 17) & 7,
                (iss >> 20) & 3,
                (iss >> 14) & 7,
                (iss >> 10) & 15,
                (iss >> 1) & 15,
                (iss >> 17) & 7,
                (iss >> 5) & 31
            ),
            ec::WFX => write!(f, "\n    {}", if iss & 1 == 1 { "WFE" } else { "WFI" }),
            ec::SERROR => {
                if bit(24) == 1 {
                    write!(f, "\n    IMPLEMENTATION DEFINED syndrome")
                } else {
                    let aet =
                        ["uncontainable", "unrecoverable", "restartable", "recoverable", "?", "?", "corrected", "?"]
                            [((iss >> 10) & 7) as usize];
                    let (what, _) = fault_status_name(iss & 0x3f);
                    write!(f, "\n    DFSC {:#04x}: {what}; AET {aet}; EA={}", iss & 0x3f, bit(9))
                }
            }
            _ => Ok(()),
        }
    }
}
