//! Stage-2 descriptors (4 KiB granule) and the P2M types kept in their software bits.

pub use crate::descriptor::DESC as S2_DESC;
use crate::types::Mfn;
use tock_registers::LocalRegisterCopy;

/// The P2M type of a mapping (Xen's `p2m_type_t` values, kept in descriptor bits 58:55).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum P2mType {
    Invalid = 0,
    RamRw = 1,
    RamRo = 2,
    MmioDirectDev = 3,
    MmioDirectNc = 4,
    MmioDirectC = 5,
    MapForeignRw = 6,
    MapForeignRo = 7,
    GrantMapRw = 8,
    GrantMapRo = 9,
}

impl P2mType {
    pub fn from_bits(b: u64) -> P2mType {
        match b {
            1 => P2mType::RamRw,
            2 => P2mType::RamRo,
            3 => P2mType::MmioDirectDev,
            4 => P2mType::MmioDirectNc,
            5 => P2mType::MmioDirectC,
            6 => P2mType::MapForeignRw,
            7 => P2mType::MapForeignRo,
            8 => P2mType::GrantMapRw,
            9 => P2mType::GrantMapRo,
            _ => P2mType::Invalid,
        }
    }
    /// `p2m_is_ram`: ram_rw or ram_ro.
    pub fn is_ram(self) -> bool {
        matches!(self, P2mType::RamRw | P2mType::RamRo)
    }
    pub fn is_foreign(self) -> bool {
        matches!(self, P2mType::MapForeignRw | P2mType::MapForeignRo)
    }
    pub fn is_grant(self) -> bool {
        matches!(self, P2mType::GrantMapRw | P2mType::GrantMapRo)
    }
    /// `p2m_is_any_ram`: RAM, grant or foreign.
    pub fn is_any_ram(self) -> bool {
        self.is_ram() || self.is_foreign() || self.is_grant()
    }
    pub fn is_mmio(self) -> bool {
        matches!(self, P2mType::MmioDirectDev | P2mType::MmioDirectNc | P2mType::MmioDirectC)
    }
    pub fn is_writable(self) -> bool {
        matches!(
            self,
            P2mType::RamRw
                | P2mType::MapForeignRw
                | P2mType::GrantMapRw
                | P2mType::MmioDirectDev
                | P2mType::MmioDirectNc
                | P2mType::MmioDirectC
        )
    }
    /// Types whose mappings carry per-page bookkeeping and are therefore only ever made
    /// with 4 KiB pages.
    pub fn page_only(self) -> bool {
        self.is_foreign() || self.is_grant()
    }
}

/// A stage-2 descriptor.
#[derive(Clone, Copy)]
pub struct S2Pte(LocalRegisterCopy<u64, S2_DESC::Register>);

impl PartialEq for S2Pte {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}
impl Eq for S2Pte {}

impl core::fmt::Debug for S2Pte {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "S2Pte({:#018x})", self.raw())
    }
}

impl S2Pte {
    pub const INVALID: S2Pte = S2Pte(LocalRegisterCopy::new(0));

    pub const fn from_raw(raw: u64) -> Self {
        S2Pte(LocalRegisterCopy::new(raw))
    }
    pub fn raw(self) -> u64 {
        self.0.get()
    }
    pub fn is_valid(self) -> bool {
        self.0.is_set(S2_DESC::VALID)
    }
    /// A table descriptor (only meaningful at levels 0-2; at level 3 the same bit means page).
    pub fn is_table(self, level: u32) -> bool {
        level < 3 && self.is_valid() && self.0.is_set(S2_DESC::TABLE)
    }
    pub fn mfn(self) -> Mfn {
        Mfn(self.0.read(S2_DESC::OA))
    }
    pub fn p2m_type(self) -> P2mType {
        P2mType::from_bits(self.0.read(S2_DESC::P2M_TYPE))
    }

    /// A descriptor pointing at the next-level table `next`.
    pub fn table(next: Mfn) -> Self {
        S2Pte(LocalRegisterCopy::new((S2_DESC::VALID::SET + S2_DESC::TABLE::SET + S2_DESC::OA.val(next.0)).value))
    }

    /// A leaf (block at levels 1-2, page at level 3) mapping `mfn` with type `ty`, with the
    /// permissions and memory attributes of that type.
    pub fn leaf(mfn: Mfn, ty: P2mType, level: u32) -> Self {
        debug_assert!(ty != P2mType::Invalid);
        let (attr, sh) = match ty {
            P2mType::MmioDirectDev => (S2_DESC::MEMATTR::Device_nGnRE, S2_DESC::SH::OuterShareable),
            P2mType::MmioDirectNc => (S2_DESC::MEMATTR::Normal_NC, S2_DESC::SH::OuterShareable),
            P2mType::MmioDirectC => (S2_DESC::MEMATTR::Normal_WB, S2_DESC::SH::OuterShareable),
            _ => (S2_DESC::MEMATTR::Normal_WB, S2_DESC::SH::InnerShareable),
        };
        let ap = if ty.is_writable() { S2_DESC::S2AP::ReadWrite } else { S2_DESC::S2AP::ReadOnly };
        // Only guest RAM is executable.
        let xn = if ty.is_ram() { S2_DESC::XN::CLEAR } else { S2_DESC::XN::SET };
        let table = if level == 3 { S2_DESC::TABLE::SET } else { S2_DESC::TABLE::CLEAR };
        S2Pte(LocalRegisterCopy::new(
            (S2_DESC::VALID::SET
                + table
                + attr
                + ap
                + sh
                + S2_DESC::AF::SET
                + xn
                + S2_DESC::OA.val(mfn.0)
                + S2_DESC::P2M_TYPE.val(ty as u64))
            .value,
        ))
    }

    /// The same leaf one level down, `i`-th sub-block (used to split a block).
    pub fn split_child(self, level: u32, i: u64) -> Self {
        let child_pages = 1u64 << (9 * (3 - (level + 1)));
        let mut c = S2Pte::leaf(self.mfn().add(i * child_pages), self.p2m_type(), level + 1);
        // keep the original attributes bit for bit except OA and the page/block bit
        let keep = self.raw() & !(S2_DESC::OA.mask << S2_DESC::OA.shift) & !(1 << 1);
        let mine = c.raw() & ((S2_DESC::OA.mask << S2_DESC::OA.shift) | (1 << 1));
        c = S2Pte::from_raw(keep | mine);
        c
    }

    pub fn s2ap(self) -> u64 {
        self.0.read(S2_DESC::S2AP)
    }
    pub fn memattr(self) -> u64 {
        self.0.read(S2_DESC::MEMATTR)
    }
    pub fn xn(self) -> bool {
        self.0.is_set(S2_DESC::XN)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn permissions_and_attributes_follow_the_type() {
        let rw = S2Pte::leaf(Mfn(0x1234), P2mType::RamRw, 3);
        assert!(rw.is_valid() && !rw.is_table(3));
        assert_eq!(rw.mfn(), Mfn(0x1234));
        assert_eq!(rw.p2m_type(), P2mType::RamRw);
        assert_eq!(rw.s2ap(), 0b11);
        assert!(!rw.xn());
        assert_eq!(rw.memattr(), 0xf);
        assert_eq!(rw.raw() & 0b11, 0b11, "level-3 page descriptor");
        assert_eq!((rw.raw() >> 55) & 0xf, 1, "type in bits 58:55");

        let ro = S2Pte::leaf(Mfn(1), P2mType::RamRo, 2);
        assert_eq!(ro.s2ap(), 0b01);
        assert!(!ro.xn());
        assert_eq!(ro.raw() & 0b11, 0b01, "block descriptor");

        let dev = S2Pte::leaf(Mfn(1), P2mType::MmioDirectDev, 3);
        assert_eq!(dev.memattr(), 0b0001);
        assert!(dev.xn());
        assert_eq!((dev.raw() >> 8) & 3, 0b10, "outer shareable");

        for t in [P2mType::GrantMapRo, P2mType::MapForeignRo] {
            let p = S2Pte::leaf(Mfn(1), t, 3);
            assert_eq!(p.s2ap(), 0b01);
            assert!(p.xn());
            assert_eq!((p.raw() >> 8) & 3, 0b11, "inner shareable");
        }
        for t in [P2mType::GrantMapRw, P2mType::MapForeignRw, P2mType::MmioDirectC] {
            assert_eq!(S2Pte::leaf(Mfn(1), t, 3).s2ap(), 0b11);
            assert!(S2Pte::leaf(Mfn(1), t, 3).xn());
        }
        assert_eq!(S2Pte::leaf(Mfn(1), P2mType::MmioDirectNc, 3).memattr(), 0b0101);
    }

    #[test]
    fn split_children_cover_the_block() {
        let b = S2Pte::leaf(Mfn(0x40000), P2mType::RamRo, 1);
        let c = b.split_child(1, 3);
        assert_eq!(c.mfn(), Mfn(0x40000 + 3 * 512));
        assert_eq!(c.p2m_type(), P2mType::RamRo);
        assert_eq!(c.raw() & 3, 0b01, "level-2 block");
        let p = S2Pte::leaf(Mfn(0x400), P2mType::RamRw, 2).split_child(2, 511);
        assert_eq!(p.mfn(), Mfn(0x400 + 511));
        assert_eq!(p.raw() & 3, 0b11, "level-3 page");
        assert_eq!(p.s2ap(), 0b11);
    }

    #[test]
    fn table_descriptors() {
        let t = S2Pte::table(Mfn(0x8_0000));
        assert!(t.is_table(0) && t.is_table(2) && !t.is_table(3));
        assert_eq!(t.mfn(), Mfn(0x8_0000));
        assert_eq!(t.p2m_type(), P2mType::Invalid);
    }
}
