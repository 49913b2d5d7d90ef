//! The GIC's memory-mapped registers as typed register maps (tock-registers), shared by the
//! physical driver (`arch::aarch64::gic`, which maps them over the hardware) and the virtual
//! GIC (which decodes a trapped guest access by the same offsets: [`offsets`]).
//!
//! * [`Gicd`]: the distributor's first 4 KiB (all of a GICv2's; GICD_SGIR, CPENDSGIR/SPENDSGIR,
//!   ITARGETSR and the ID registers at 0xFD0 are GICv2's, or a GICv3's without affinity
//!   routing) and [`GicdV3Ext`], the rest of a GICv3's 64 KiB frame (IROUTER, the ID registers
//!   at 0xFFD0);
//! * [`GicrRd`] and [`GicrSgi`]: a GICv3 redistributor's two 64 KiB frames;
//! * [`Gicc`]: the GICv2 CPU interface (a GICv2 guest's is the hardware GICV);
//! * [`Gich`]: the GICv2 virtual interface control (list registers).

use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite, WriteOnly};

register_bitfields! {u32,
    /// GICD_CTLR (Non-secure view; with GICv3 affinity routing).
    pub GICD_CTLR [
        /// Register write pending (GICv3).
        RWP OFFSET(31) NUMBITS(1) [],
        /// Affinity routing enable (GICv3, Non-secure).
        ARE_NS OFFSET(4) NUMBITS(1) [],
        /// Group 1 enable (GICv3 Non-secure: EnableGrp1A).
        ENABLE_GRP1A OFFSET(1) NUMBITS(1) [],
        /// GICv2: Enable (Group 1 in the Non-secure view); GICv3: EnableGrp1.
        ENABLE OFFSET(0) NUMBITS(1) []
    ],
    /// GICD_TYPER.
    pub GICD_TYPER [
        /// GICv3: extended SPI range implemented.
        ESPI OFFSET(8) NUMBITS(1) [],
        /// GICv3: INTID bits - 1.
        ID_BITS OFFSET(19) NUMBITS(5) [],
        /// GICv3: LPIs supported.
        LPIS OFFSET(17) NUMBITS(1) [],
        /// GICv2: Security Extensions implemented.
        SECURITY_EXTN OFFSET(10) NUMBITS(1) [],
        /// Number of CPU interfaces - 1 (without affinity routing).
        CPU_NUMBER OFFSET(5) NUMBITS(3) [],
        /// (Number of interrupt lines / 32) - 1.
        IT_LINES OFFSET(0) NUMBITS(5) []
    ],
    /// GICD_SGIR (GICv2).
    pub GICD_SGIR [
        /// 0: the target list; 1: every CPU but the requester; 2: the requester only.
        TARGET_LIST_FILTER OFFSET(24) NUMBITS(2) [
            List = 0,
            Others = 1,
            SelfOnly = 2
        ],
        CPU_TARGET_LIST OFFSET(16) NUMBITS(8) [],
        NSATT OFFSET(15) NUMBITS(1) [],
        SGI_INTID OFFSET(0) NUMBITS(4) []
    ],
    /// GICR_WAKER.
    pub GICR_WAKER [
        CHILDREN_ASLEEP OFFSET(2) NUMBITS(1) [],
        PROCESSOR_SLEEP OFFSET(1) NUMBITS(1) []
    ],
    /// GICC_CTLR (Non-secure view of a GICv2 without the Security Extensions' secure copy).
    pub GICC_CTLR [
        /// EOImode: EOIR only drops the priority; GICC_DIR deactivates.
        EOI_MODE_NS OFFSET(9) NUMBITS(1) [],
        /// FIQEn: Group 0 interrupts as FIQ.
        FIQ_EN OFFSET(3) NUMBITS(1) [],
        ENABLE_GRP1 OFFSET(1) NUMBITS(1) [],
        ENABLE_GRP0 OFFSET(0) NUMBITS(1) []
    ],
    /// GICC_IAR / GICC_EOIR / GICC_DIR.
    pub GICC_IAR [
        /// For an SGI: the CPU that sent it.
        CPU_ID OFFSET(10) NUMBITS(3) [],
        INTERRUPT_ID OFFSET(0) NUMBITS(10) []
    ],
    /// GICH_HCR.
    pub GICH_HCR [
        EOI_COUNT OFFSET(27) NUMBITS(5) [],
        /// Maintenance interrupt when no list register holds a pending interrupt.
        NPIE OFFSET(3) NUMBITS(1) [],
        /// Maintenance interrupt when at most one list register is valid (underflow).
        UIE OFFSET(1) NUMBITS(1) [],
        EN OFFSET(0) NUMBITS(1) []
    ],
    /// GICH_VTR.
    pub GICH_VTR [
        PRI_BITS OFFSET(29) NUMBITS(3) [],
        PRE_BITS OFFSET(26) NUMBITS(3) [],
        LIST_REGS OFFSET(0) NUMBITS(6) []
    ],
    /// GICH_MISR (maintenance interrupt status).
    pub GICH_MISR [
        NP OFFSET(3) NUMBITS(1) [],
        LRENP OFFSET(2) NUMBITS(1) [],
        U OFFSET(1) NUMBITS(1) [],
        EOI OFFSET(0) NUMBITS(1) []
    ],
    /// GICH_LRn (GICv2 list register).
    pub GICH_LR [
        /// The virtual interrupt is linked to physical interrupt PHYSICAL_ID (deactivated
        /// with it).
        HW OFFSET(31) NUMBITS(1) [],
        GROUP1 OFFSET(30) NUMBITS(1) [],
        STATE OFFSET(28) NUMBITS(2) [
            Invalid = 0,
            Pending = 1,
            Active = 2,
            PendingActive = 3
        ],
        /// The upper 5 bits of the 8-bit priority.
        PRIORITY OFFSET(23) NUMBITS(5) [],
        /// HW=1: the physical INTID. HW=0: bit 19 asks for an EOI maintenance interrupt and
        /// bits 12:10 name the CPU that sent an SGI.
        PHYSICAL_ID OFFSET(10) NUMBITS(10) [],
        EOI OFFSET(19) NUMBITS(1) [],
        CPU_ID OFFSET(10) NUMBITS(3) [],
        VIRTUAL_ID OFFSET(0) NUMBITS(10) []
    ]
}

register_bitfields! {u64,
    /// GICR_TYPER.
    pub GICR_TYPER [
        /// The redistributor's affinity: Aff3.Aff2.Aff1.Aff0.
        AFFINITY OFFSET(32) NUMBITS(32) [],
        /// Processor number (the redistributor's index).
        PROCESSOR_NUMBER OFFSET(8) NUMBITS(16) [],
        /// The last redistributor of its region.
        LAST OFFSET(4) NUMBITS(1) [],
        /// Virtual LPIs: the redistributor has four 64 KiB frames instead of two.
        VLPIS OFFSET(1) NUMBITS(1) [],
        PLPIS OFFSET(0) NUMBITS(1) []
    ],
    /// ICH_LR<n>_EL2 (GICv3 list register).
    pub ICH_LR [
        STATE OFFSET(62) NUMBITS(2) [
            Invalid = 0,
            Pending = 1,
            Active = 2,
            PendingActive = 3
        ],
        HW OFFSET(61) NUMBITS(1) [],
        GROUP OFFSET(60) NUMBITS(1) [],
        PRIORITY OFFSET(48) NUMBITS(8) [],
        /// HW=1: the physical INTID; HW=0: bit 41 asks for an EOI maintenance interrupt.
        PINTID OFFSET(32) NUMBITS(13) [],
        EOI OFFSET(41) NUMBITS(1) [],
        VINTID OFFSET(0) NUMBITS(32) []
    ],
    /// ICC_SGI1R_EL1 (GICv3 SGI generation, Group 1).
    pub ICC_SGI1R [
        AFF3 OFFSET(48) NUMBITS(8) [],
        /// Interrupt routing mode: 1 = every PE but the requester.
        IRM OFFSET(40) NUMBITS(1) [],
        AFF2 OFFSET(32) NUMBITS(8) [],
        INTID OFFSET(24) NUMBITS(4) [],
        AFF1 OFFSET(16) NUMBITS(8) [],
        /// Range selector (RS) for the target list (16 Aff0 values per range).
        RS OFFSET(44) NUMBITS(4) [],
        TARGET_LIST OFFSET(0) NUMBITS(16) []
    ]
}

/// Where [`GicdV3Ext`] starts in a GICv3 distributor's frame.
pub const GICD_V3_EXT: u64 = 0x6000;

register_structs! {
    /// The distributor's first 4 KiB (GICD; a GICv2's whole frame).
    pub Gicd {
        (0x0000 => pub ctlr: ReadWrite<u32, GICD_CTLR::Register>),
        (0x0004 => pub typer: ReadOnly<u32, GICD_TYPER::Register>),
        (0x0008 => pub iidr: ReadOnly<u32>),
        (0x000c => pub typer2: ReadOnly<u32>),
        (0x0010 => pub statusr: ReadWrite<u32>),
        (0x0014 => _reserved0),
        (0x0040 => pub setspi_nsr: WriteOnly<u32>),
        (0x0044 => _reserved1),
        (0x0048 => pub clrspi_nsr: WriteOnly<u32>),
        (0x004c => _reserved2),
        (0x0080 => pub igroupr: [ReadWrite<u32>; 32]),
        (0x0100 => pub isenabler: [ReadWrite<u32>; 32]),
        (0x0180 => pub icenabler: [ReadWrite<u32>; 32]),
        (0x0200 => pub ispendr: [ReadWrite<u32>; 32]),
        (0x0280 => pub icpendr: [ReadWrite<u32>; 32]),
        (0x0300 => pub isactiver: [ReadWrite<u32>; 32]),
        (0x0380 => pub icactiver: [ReadWrite<u32>; 32]),
        (0x0400 => pub ipriorityr: [ReadWrite<u32>; 255]),
        (0x07fc => _reserved3),
        (0x0800 => pub itargetsr: [ReadWrite<u32>; 255]),
        (0x0bfc => _reserved4),
        (0x0c00 => pub icfgr: [ReadWrite<u32>; 64]),
        (0x0d00 => pub igrpmodr: [ReadWrite<u32>; 32]),
        (0x0d80 => _reserved5),
        (0x0e00 => pub nsacr: [ReadWrite<u32>; 64]),
        (0x0f00 => pub sgir: WriteOnly<u32, GICD_SGIR::Register>),
        (0x0f04 => _reserved6),
        (0x0f10 => pub cpendsgir: [ReadWrite<u32>; 4]),
        (0x0f20 => pub spendsgir: [ReadWrite<u32>; 4]),
        (0x0f30 => _reserved7),
        (0x0fd0 => pub id_v2: [ReadOnly<u32>; 12]),
        (0x1000 => @END),
    },

    /// The rest of a GICv3 distributor's 64 KiB frame, from offset 0x6000 ([`GICD_V3_EXT`]):
    /// the SPIs' routing and the ID registers.
    pub GicdV3Ext {
        (0x0000 => _reserved0),
        (0x0100 => pub irouter: [ReadWrite<u64>; 988]),
        (0x1fe0 => _reserved1),
        (0x9fd0 => pub id: [ReadOnly<u32>; 12]),
        (0xa000 => @END),
    },

    /// A GICv3 redistributor's RD_base frame.
    pub GicrRd {
        (0x0000 => pub ctlr: ReadWrite<u32>),
        (0x0004 => pub iidr: ReadOnly<u32>),
        (0x0008 => pub typer: ReadOnly<u64, GICR_TYPER::Register>),
        (0x0010 => pub statusr: ReadWrite<u32>),
        (0x0014 => pub waker: ReadWrite<u32, GICR_WAKER::Register>),
        (0x0018 => _reserved0),
        (0x0040 => pub setlpir: WriteOnly<u64>),
        (0x0048 => pub clrlpir: WriteOnly<u64>),
        (0x0050 => _reserved1),
        (0x0070 => pub propbaser: ReadWrite<u64>),
        (0x0078 => pub pendbaser: ReadWrite<u64>),
        (0x0080 => _reserved2),
        (0x00a0 => pub invlpir: WriteOnly<u64>),
        (0x00a8 => _reserved3),
        (0x00b0 => pub invallr: WriteOnly<u64>),
        (0x00b8 => _reserved4),
        (0x00c0 => pub syncr: ReadOnly<u32>),
        (0x00c4 => _reserved5),
        (0xffd0 => pub id: [ReadOnly<u32>; 12]),
        (0x10000 => @END),
    },

    /// A GICv3 redistributor's SGI_base frame (RD_base + 64 KiB): its SGIs and PPIs.
    pub GicrSgi {
        (0x0000 => _reserved0),
        (0x0080 => pub igroupr0: ReadWrite<u32>),
        (0x0084 => _reserved1),
        (0x0100 => pub isenabler0: ReadWrite<u32>),
        (0x0104 => _reserved2),
        (0x0180 => pub icenabler0: ReadWrite<u32>),
        (0x0184 => _reserved3),
        (0x0200 => pub ispendr0: ReadWrite<u32>),
        (0x0204 => _reserved4),
        (0x0280 => pub icpendr0: ReadWrite<u32>),
        (0x0284 => _reserved5),
        (0x0300 => pub isactiver0: ReadWrite<u32>),
        (0x0304 => _reserved6),
        (0x0380 => pub icactiver0: ReadWrite<u32>),
        (0x0384 => _reserved7),
        (0x0400 => pub ipriorityr: [ReadWrite<u32>; 8]),
        (0x0420 => _reserved8),
        (0x0c00 => pub icfgr: [ReadWrite<u32>; 2]),
        (0x0c08 => _reserved9),
        (0x0d00 => pub igrpmodr0: ReadWrite<u32>),
        (0x0d04 => _reserved10),
        (0x0e00 => pub nsacr: ReadWrite<u32>),
        (0x0e04 => _reserved11),
        (0x10000 => @END),
    },

    /// The GICv2 CPU interface (GICC).
    pub Gicc {
        (0x0000 => pub ctlr: ReadWrite<u32, GICC_CTLR::Register>),
        (0x0004 => pub pmr: ReadWrite<u32>),
        (0x0008 => pub bpr: ReadWrite<u32>),
        (0x000c => pub iar: ReadOnly<u32, GICC_IAR::Register>),
        (0x0010 => pub eoir: WriteOnly<u32, GICC_IAR::Register>),
        (0x0014 => pub rpr: ReadOnly<u32>),
        (0x0018 => pub hppir: ReadOnly<u32>),
        (0x001c => _reserved0),
        (0x00d0 => pub apr: [ReadWrite<u32>; 4]),
        (0x00e0 => pub nsapr: [ReadWrite<u32>; 4]),
        (0x00f0 => _reserved1),
        (0x00fc => pub iidr: ReadOnly<u32>),
        (0x0100 => _reserved2),
        (0x1000 => pub dir: WriteOnly<u32, GICC_IAR::Register>),
        (0x1004 => @END),
    },

    /// The GICv2 virtual interface control (GICH).
    pub Gich {
        (0x0000 => pub hcr: ReadWrite<u32, GICH_HCR::Register>),
        (0x0004 => pub vtr: ReadOnly<u32, GICH_VTR::Register>),
        (0x0008 => pub vmcr: ReadWrite<u32>),
        (0x000c => _reserved0),
        (0x0010 => pub misr: ReadOnly<u32, GICH_MISR::Register>),
        (0x0014 => _reserved1),
        (0x0020 => pub eisr: [ReadOnly<u32>; 2]),
        (0x0028 => _reserved2),
        (0x0030 => pub elrsr: [ReadOnly<u32>; 2]),
        (0x0038 => _reserved3),
        (0x00f0 => pub apr: ReadWrite<u32>),
        (0x00f4 => _reserved4),
        (0x0100 => pub lr: [ReadWrite<u32, GICH_LR::Register>; 64]),
        (0x0200 => @END),
    }
}

/// Register offsets, from the maps above, for decoding a trapped access by address.
pub mod offsets {
    use super::{GICD_V3_EXT, Gicd, GicdV3Ext, GicrRd, GicrSgi};
    use core::mem::offset_of;

    macro_rules! offs {
        ($ty:ty: $($name:ident = $field:ident),* $(,)?) => {
            $( pub const $name: u64 = offset_of!($ty, $field) as u64; )*
        };
    }
    offs!(Gicd:
        GICD_CTLR = ctlr, GICD_TYPER = typer, GICD_IIDR = iidr, GICD_TYPER2 = typer2,
        GICD_STATUSR = statusr, GICD_SETSPI_NSR = setspi_nsr, GICD_CLRSPI_NSR = clrspi_nsr,
        GICD_IGROUPR = igroupr, GICD_ISENABLER = isenabler, GICD_ICENABLER = icenabler,
        GICD_ISPENDR = ispendr, GICD_ICPENDR = icpendr, GICD_ISACTIVER = isactiver,
        GICD_ICACTIVER = icactiver, GICD_IPRIORITYR = ipriorityr, GICD_ITARGETSR = itargetsr,
        GICD_ICFGR = icfgr, GICD_IGRPMODR = igrpmodr, GICD_NSACR = nsacr, GICD_SGIR = sgir,
        GICD_CPENDSGIR = cpendsgir, GICD_SPENDSGIR = spendsgir, GICD_ID_V2 = id_v2,
    );
    pub const GICD_IROUTER: u64 = GICD_V3_EXT + offset_of!(GicdV3Ext, irouter) as u64;
    pub const GICD_ID_V3: u64 = GICD_V3_EXT + offset_of!(GicdV3Ext, id) as u64;
    offs!(GicrRd:
        GICR_CTLR = ctlr, GICR_IIDR = iidr, GICR_TYPER = typer, GICR_STATUSR = statusr,
        GICR_WAKER = waker, GICR_SETLPIR = setlpir, GICR_CLRLPIR = clrlpir,
        GICR_PROPBASER = propbaser, GICR_PENDBASER = pendbaser, GICR_INVLPIR = invlpir,
        GICR_INVALLR = invallr, GICR_SYNCR = syncr, GICR_ID = id,
    );
    offs!(GicrSgi:
        GICR_IGROUPR0 = igroupr0, GICR_ISENABLER0 = isenabler0, GICR_ICENABLER0 = icenabler0,
        GICR_ISPENDR0 = ispendr0, GICR_ICPENDR0 = icpendr0, GICR_ISACTIVER0 = isactiver0,
        GICR_ICACTIVER0 = icactiver0, GICR_IPRIORITYR = ipriorityr, GICR_ICFGR = icfgr,
        GICR_IGRPMODR0 = igrpmodr0, GICR_NSACR = nsacr,
    );
    /// The offset of ID register PIDR2 in an ID block (GICD 0xFFE8 / 0xFE8, GICR 0xFFE8).
    pub const ID_PIDR2: u64 = 0x18;
    /// A GICv3 redistributor's frame size (two 64 KiB frames: RD_base and SGI_base).
    pub const GICR_FRAME: u64 = 0x1_0000;
    pub const GICR_STRIDE: u64 = 2 * GICR_FRAME;
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::offsets::*;

    #[test]
    fn offsets_are_the_architectures() {
        assert_eq!(
            [GICD_IGROUPR, GICD_ISENABLER, GICD_ICACTIVER, GICD_IPRIORITYR, GICD_ITARGETSR, GICD_ICFGR],
            [0x80, 0x100, 0x380, 0x400, 0x800, 0xc00]
        );
        assert_eq!(
            [GICD_SGIR, GICD_CPENDSGIR, GICD_ID_V2, GICD_IROUTER, GICD_ID_V3],
            [0xf00, 0xf10, 0xfd0, 0x6100, 0xffd0]
        );
        assert_eq!([GICR_TYPER, GICR_WAKER, GICR_PROPBASER, GICR_SYNCR], [0x8, 0x14, 0x70, 0xc0]);
        assert_eq!([GICR_ISENABLER0, GICR_IPRIORITYR, GICR_ICFGR, GICR_NSACR], [0x100, 0x400, 0xc00, 0xe00]);
        assert_eq!(core::mem::size_of::<super::Gicd>(), 0x1000);
        assert_eq!(super::GICD_V3_EXT + core::mem::size_of::<super::GicdV3Ext>() as u64, 0x10000);
        assert_eq!(core::mem::offset_of!(super::Gicc, dir), 0x1000);
        assert_eq!(core::mem::offset_of!(super::Gich, lr), 0x100);
    }
}
