//! Emulated MMIO: decoding a guest's trapped load or store (a stage-2 data abort with a valid
//! instruction syndrome) into an access, and applying a device model's answer to the guest's
//! register.

use crate::sysreg::dabt;

/// One trapped load or store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    /// The guest-physical address accessed.
    pub ipa: u64,
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    pub write: bool,
    /// The register transferred (31 is the zero register).
    pub reg: u8,
    /// A load sign-extends its value...
    pub sign_extend: bool,
    /// ...to 64 bits (else to 32, the upper half cleared).
    pub sixty_four: bool,
}

/// What a device model answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done: a load returns this value (a store ignores it).
    Done(u64),
    /// The access is refused: a data abort is injected into the guest (Xen's answer for a
    /// wrong width or a register that must not be written).
    Abort,
}

impl Access {
    /// Decode a data abort's ISS. `None` without a valid instruction syndrome (load/store
    /// pair, writeback, SIMD register...): such an access cannot be emulated.
    pub fn decode(iss: u32, ipa: u64) -> Option<Access> {
        if iss & dabt::ISV == 0 {
            return None;
        }
        Some(Access {
            ipa,
            size: 1 << ((iss >> dabt::SAS_SHIFT) & 3),
            write: iss & dabt::WNR != 0,
            reg: ((iss >> dabt::SRT_SHIFT) & 31) as u8,
            sign_extend: iss & dabt::SSE != 0,
            sixty_four: iss & dabt::SF != 0,
        })
    }

    /// The value a store writes, from the guest's register value `x` (truncated to the size).
    pub fn store_value(&self, x: u64) -> u64 {
        let x = if self.reg == 31 { 0 } else { x };
        if self.size == 8 { x } else { x & ((1u64 << (8 * self.size as u32)) - 1) }
    }

    /// What the guest's register receives for a load of `v` (sign extension as the
    /// instruction asks; a 32-bit destination has its upper half cleared).
    pub fn load_value(&self, v: u64) -> u64 {
        let bits = 8 * self.size as u32;
        let v = if bits == 64 { v } else { v & ((1u64 << bits) - 1) };
        let v = if self.sign_extend && bits < 64 && v & (1 << (bits - 1)) != 0 { v | !((1u64 << bits) - 1) } else { v };
        if self.sixty_four { v } else { v & 0xffff_ffff }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn decodes_loads_and_stores() {
        // STR w3, 32-bit: ISV, SAS=2, SRT=3, WnR
        let a = Access::decode((1 << 24) | (2 << 22) | (3 << 16) | (1 << 6), 0x800_0100).unwrap();
        assert_eq!((a.size, a.write, a.reg), (4, true, 3));
        assert_eq!(a.store_value(0xdead_beef_1234_5678), 0x1234_5678);
        // LDRSB x1: SAS=0, SSE, SF
        let b = Access::decode((1 << 24) | (1 << 21) | (1 << 16) | (1 << 15), 0).unwrap();
        assert_eq!((b.size, b.write, b.reg), (1, false, 1));
        assert_eq!(b.load_value(0x80), 0xffff_ffff_ffff_ff80);
        // LDRSH w2: sign-extended to 32 bits only
        let c = Access::decode((1 << 24) | (1 << 22) | (1 << 21) | (2 << 16), 0).unwrap();
        assert_eq!(c.load_value(0x8001), 0xffff_8001);
        // LDR x0 of 64 bits
        let d = Access::decode((1 << 24) | (3 << 22) | (1 << 15), 0).unwrap();
        assert_eq!(d.load_value(u64::MAX), u64::MAX);
        // a store of the zero register writes 0
        let z = Access::decode((1 << 24) | (2 << 22) | (31 << 16) | (1 << 6), 0).unwrap();
        assert_eq!(z.store_value(0x1234), 0);
        assert_eq!(Access::decode(1 << 6, 0), None, "no syndrome: cannot emulate");
    }
}
