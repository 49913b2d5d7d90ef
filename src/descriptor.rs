//! VMSAv8-64 translation-table descriptors (4 KiB granule), one layout for the hypervisor's
//! own stage 1 (EL2 regime, `arch::aarch64::mmu`) and the guests' stage 2 ([`crate::p2m`]).
//! The two stages share the format; only the attribute fields at bits 7:2 mean different
//! things (stage 1: AttrIndx and AP; stage 2: MemAttr and S2AP), so both sets are named here
//! and each stage uses its own. Bits 58:55 are ignored by the hardware: the P2M keeps its type
//! there.

use tock_registers::register_bitfields;

register_bitfields! {u64,
    /// A block, page or table descriptor.
    pub DESC [
        VALID OFFSET(0) NUMBITS(1) [],
        /// Levels 0-2: 1 = table, 0 = block. Level 3: must be 1 (page).
        TABLE OFFSET(1) NUMBITS(1) [],
        /// Stage 1: index into MAIR_EL2.
        ATTR_INDX OFFSET(2) NUMBITS(3) [
            Device = 0,
            Normal = 1
        ],
        /// Stage 1: AP[2:1]; AP[1] is RES1 in the EL2 regime (no EL0 access).
        AP OFFSET(6) NUMBITS(2) [
            ReadWrite = 0b01,
            ReadOnly = 0b11
        ],
        /// Stage 2: MemAttr[3:0] (FEAT_S2FWB off): [3:2] outer, [1:0] inner / device type.
        MEMATTR OFFSET(2) NUMBITS(4) [
            Device_nGnRE = 0b0001,
            Normal_NC = 0b0101,
            Normal_WB = 0b1111
        ],
        /// Stage 2: access permissions.
        S2AP OFFSET(6) NUMBITS(2) [
            None = 0b00,
            ReadOnly = 0b01,
            ReadWrite = 0b11
        ],
        SH OFFSET(8) NUMBITS(2) [
            NonShareable = 0b00,
            OuterShareable = 0b10,
            InnerShareable = 0b11
        ],
        AF OFFSET(10) NUMBITS(1) [],
        /// Output address bits [47:12] (also the next-level table's address).
        OA OFFSET(12) NUMBITS(36) [],
        CONTIG OFFSET(52) NUMBITS(1) [],
        /// Execute never (stage 1 at EL2; stage 2: XN[1], with XN[0] = 0).
        XN OFFSET(54) NUMBITS(1) [],
        /// Software bits 58:55 (the P2M type, stage 2).
        P2M_TYPE OFFSET(55) NUMBITS(4) []
    ]
}
