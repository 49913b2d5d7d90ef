//! Xen's public guest ABI as seen by an arm64 guest, written from the public interface facts
//! (hypercall numbers, errno values, grant-table codes and structure layouts). Shared by the
//! hypervisor and the test guests so that both sides agree on every byte.
//!
//! Every structure is `#[repr(C)]` and carries compile-time size and field-offset assertions
//! matching the arm64 layout (AAPCS64, little endian, guest handles 8 bytes and 8-aligned).
#![no_std]

use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// `HVC` immediate of a Xen hypercall (`XEN_HYPERCALL_TAG`).
pub const XEN_HYPERCALL_TAG: u16 = 0xEA1;

/// Guest frame numbers are 4 KiB frames.
pub const XEN_PAGE_SHIFT: u32 = 12;
pub const XEN_PAGE_SIZE: usize = 1 << XEN_PAGE_SHIFT;

/// Hypercall numbers (`__HYPERVISOR_*`), the value in x16.
pub mod hypercall {
    pub const PLATFORM_OP: u64 = 7;
    pub const MEMORY_OP: u64 = 12;
    pub const MULTICALL: u64 = 13;
    pub const XEN_VERSION: u64 = 17;
    pub const CONSOLE_IO: u64 = 18;
    pub const GRANT_TABLE_OP: u64 = 20;
    pub const VM_ASSIST: u64 = 21;
    pub const VCPU_OP: u64 = 24;
    pub const XSM_OP: u64 = 27;
    pub const SCHED_OP: u64 = 29;
    pub const EVENT_CHANNEL_OP: u64 = 32;
    pub const PHYSDEV_OP: u64 = 33;
    pub const HVM_OP: u64 = 34;
    pub const SYSCTL: u64 = 35;
    pub const DOMCTL: u64 = 36;
    pub const ARGO_OP: u64 = 39;
    pub const DM_OP: u64 = 41;
    pub const HYPFS_OP: u64 = 42;
    /// Project-specific: the audit hypercall (only when the hypervisor was booted with
    /// `granite_audit=1`). Xen has nothing at this number and answers `-ENOSYS`.
    pub const GRANITE_AUDIT: u64 = 63;
}

/// Xen's errno values (`xen/include/public/errno.h`), returned negated.
pub mod errno {
    pub const EPERM: i64 = 1;
    pub const ENOENT: i64 = 2;
    pub const ESRCH: i64 = 3;
    pub const EINTR: i64 = 4;
    pub const EIO: i64 = 5;
    pub const ENXIO: i64 = 6;
    pub const E2BIG: i64 = 7;
    pub const EAGAIN: i64 = 11;
    pub const ENOMEM: i64 = 12;
    pub const EACCES: i64 = 13;
    pub const EFAULT: i64 = 14;
    pub const EBUSY: i64 = 16;
    pub const EEXIST: i64 = 17;
    pub const EXDEV: i64 = 18;
    pub const ENODEV: i64 = 19;
    pub const EINVAL: i64 = 22;
    pub const ENOSPC: i64 = 28;
    pub const EDOM: i64 = 33;
    pub const ERANGE: i64 = 34;
    pub const ENOSYS: i64 = 38;
    pub const ENODATA: i64 = 61;
    pub const EOVERFLOW: i64 = 75;
    pub const EILSEQ: i64 = 84;
    pub const ERESTART: i64 = 85;
    pub const EOPNOTSUPP: i64 = 95;

    /// A short name for an errno value (positive), for logs and result lines.
    pub fn name(e: i64) -> &'static str {
        match e {
            EPERM => "EPERM",
            ENOENT => "ENOENT",
            ESRCH => "ESRCH",
            EINTR => "EINTR",
            EIO => "EIO",
            ENXIO => "ENXIO",
            E2BIG => "E2BIG",
            EAGAIN => "EAGAIN",
            ENOMEM => "ENOMEM",
            EACCES => "EACCES",
            EFAULT => "EFAULT",
            EBUSY => "EBUSY",
            EEXIST => "EEXIST",
            EXDEV => "EXDEV",
            ENODEV => "ENODEV",
            EINVAL => "EINVAL",
            ENOSPC => "ENOSPC",
            EDOM => "EDOM",
            ERANGE => "ERANGE",
            ENOSYS => "ENOSYS",
            ENODATA => "ENODATA",
            EOVERFLOW => "EOVERFLOW",
            EILSEQ => "EILSEQ",
            ERESTART => "ERESTART",
            EOPNOTSUPP => "EOPNOTSUPP",
            _ => "E?",
        }
    }
}

/// Domain identifiers.
pub type DomId = u16;
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
pub const DOMID_SELF: DomId = 0x7FF0;
pub const DOMID_IO: DomId = 0x7FF1;
pub const DOMID_XEN: DomId = 0x7FF2;
pub const DOMID_COW: DomId = 0x7FF3;
pub const DOMID_INVALID: DomId = 0x7FF4;
pub const DOMID_IDLE: DomId = 0x7FFF;

/// `xen_pfn_t` on arm64.
pub type XenPfn = u64;
/// `INVALID_GFN` (`~0UL`): what `GNTTABOP_setup_table` reports for a grant frame that is not
/// mapped, and a GFN `XENMEM_add_to_physmap{,_batch}` refuses with -EINVAL.
pub const INVALID_GFN: XenPfn = !0;
/// `xen_ulong_t` on arm64.
pub type XenUlong = u64;
/// `XEN_GUEST_HANDLE(T)` inside a structure: a guest virtual address, 8 bytes, 8-aligned.
pub type GuestHandle = u64;

/// `memory_op` sub-commands and map spaces.
pub mod memory {
    /// `cmd & MEMOP_CMD_MASK` is the sub-op; `cmd >> MEMOP_EXTENT_SHIFT` the start extent.
    pub const MEMOP_EXTENT_SHIFT: u32 = 6;
    pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;

    pub const XENMEM_INCREASE_RESERVATION: u64 = 0;
    pub const XENMEM_DECREASE_RESERVATION: u64 = 1;
    pub const XENMEM_MAXIMUM_RAM_PAGE: u64 = 2;
    pub const XENMEM_CURRENT_RESERVATION: u64 = 3;
    pub const XENMEM_MAXIMUM_RESERVATION: u64 = 4;
    pub const XENMEM_POPULATE_PHYSMAP: u64 = 6;
    pub const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
    pub const XENMEM_MAXIMUM_GPFN: u64 = 14;
    pub const XENMEM_REMOVE_FROM_PHYSMAP: u64 = 15;
    pub const XENMEM_ADD_TO_PHYSMAP_BATCH: u64 = 23;
    pub const XENMEM_ACQUIRE_RESOURCE: u64 = 28;

    pub const XENMAPSPACE_SHARED_INFO: u32 = 0;
    pub const XENMAPSPACE_GRANT_TABLE: u32 = 1;
    pub const XENMAPSPACE_GMFN: u32 = 2;
    pub const XENMAPSPACE_GMFN_RANGE: u32 = 3;
    pub const XENMAPSPACE_GMFN_FOREIGN: u32 = 4;
    pub const XENMAPSPACE_DEV_MMIO: u32 = 5;
    /// OR-ed into `idx` to select a grant status frame (v2 only).
    pub const XENMAPIDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;

    pub const XENMEM_RESOURCE_GRANT_TABLE: u16 = 1;
    pub const XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED: u32 = 0;
    pub const XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS: u32 = 1;
}

/// `struct xen_add_to_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmap {
    pub domid: DomId,
    /// Number of pages to go through for `gmfn_range`.
    pub size: u16,
    pub space: u32,
    pub idx: XenUlong,
    pub gpfn: XenPfn,
}
const_assert_eq!(size_of::<XenAddToPhysmap>(), 24);
const_assert_eq!(offset_of!(XenAddToPhysmap, domid), 0);
const_assert_eq!(offset_of!(XenAddToPhysmap, size), 2);
const_assert_eq!(offset_of!(XenAddToPhysmap, space), 4);
const_assert_eq!(offset_of!(XenAddToPhysmap, idx), 8);
const_assert_eq!(offset_of!(XenAddToPhysmap, gpfn), 16);

/// `struct xen_add_to_physmap_batch`. `u` is `foreign_domid` for `gmfn_foreign` and `res0`
/// (must be 0) for `dev_mmio`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenAddToPhysmapBatch {
    pub domid: DomId,
    pub space: u16,
    pub size: u16,
    pub u: u16,
    /// `XEN_GUEST_HANDLE(xen_ulong_t)`
    pub idxs: GuestHandle,
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`
    pub gpfns: GuestHandle,
    /// `XEN_GUEST_HANDLE(int)`: per-entry result
    pub errs: GuestHandle,
}
const_assert_eq!(size_of::<XenAddToPhysmapBatch>(), 32);
const_assert_eq!(offset_of!(XenAddToPhysmapBatch, space), 2);
const_assert_eq!(offset_of!(XenAddToPhysmapBatch, size), 4);
const_assert_eq!(offset_of!(XenAddToPhysmapBatch, u), 6);
const_assert_eq!(offset_of!(XenAddToPhysmapBatch, idxs), 8);
const_assert_eq!(offset_of!(XenAddToPhysmapBatch, gpfns), 16);
const_assert_eq!(offset_of!(XenAddToPhysmapBatch, errs), 24);

/// `struct xen_remove_from_physmap`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenRemoveFromPhysmap {
    pub domid: DomId,
    pub _pad: [u8; 6],
    pub gpfn: XenPfn,
}
const_assert_eq!(size_of::<XenRemoveFromPhysmap>(), 16);
const_assert_eq!(offset_of!(XenRemoveFromPhysmap, gpfn), 8);

/// `struct xen_memory_reservation` (increase/decrease_reservation, populate_physmap).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemoryReservation {
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`: the extents' first GFNs.
    pub extent_start: GuestHandle,
    pub nr_extents: XenUlong,
    pub extent_order: u32,
    /// XENMEMF_* (address bits, NUMA node): accepted, not used.
    pub mem_flags: u32,
    pub domid: DomId,
    pub _pad: [u8; 6],
}
const_assert_eq!(size_of::<XenMemoryReservation>(), 32);
const_assert_eq!(offset_of!(XenMemoryReservation, nr_extents), 8);
const_assert_eq!(offset_of!(XenMemoryReservation, extent_order), 16);
const_assert_eq!(offset_of!(XenMemoryReservation, mem_flags), 20);
const_assert_eq!(offset_of!(XenMemoryReservation, domid), 24);

/// `struct xen_mem_acquire_resource`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenMemAcquireResource {
    pub domid: DomId,
    pub type_: u16,
    pub id: u32,
    pub nr_frames: u32,
    pub pad: u32,
    pub frame: u64,
    pub frame_list: GuestHandle,
}
const_assert_eq!(size_of::<XenMemAcquireResource>(), 32);
const_assert_eq!(offset_of!(XenMemAcquireResource, id), 4);
const_assert_eq!(offset_of!(XenMemAcquireResource, nr_frames), 8);
const_assert_eq!(offset_of!(XenMemAcquireResource, pad), 12);
const_assert_eq!(offset_of!(XenMemAcquireResource, frame), 16);
const_assert_eq!(offset_of!(XenMemAcquireResource, frame_list), 24);

/// Grant-table operations, codes and structures.
pub mod gnttab {
    pub const GNTTABOP_MAP_GRANT_REF: u64 = 0;
    pub const GNTTABOP_UNMAP_GRANT_REF: u64 = 1;
    pub const GNTTABOP_SETUP_TABLE: u64 = 2;
    pub const GNTTABOP_DUMP_TABLE: u64 = 3;
    pub const GNTTABOP_TRANSFER: u64 = 4;
    pub const GNTTABOP_COPY: u64 = 5;
    pub const GNTTABOP_QUERY_SIZE: u64 = 6;
    pub const GNTTABOP_UNMAP_AND_REPLACE: u64 = 7;
    pub const GNTTABOP_SET_VERSION: u64 = 8;
    pub const GNTTABOP_GET_STATUS_FRAMES: u64 = 9;
    pub const GNTTABOP_GET_VERSION: u64 = 10;
    pub const GNTTABOP_SWAP_GRANT_REF: u64 = 11;
    pub const GNTTABOP_CACHE_FLUSH: u64 = 12;
    /// Continuations carry progress in the bits of `cmd` above this shift.
    pub const GNTTABOP_CONTINUATION_ARG_SHIFT: u32 = 12;
    pub const GNTTABOP_CMD_MASK: u64 = (1 << GNTTABOP_CONTINUATION_ARG_SHIFT) - 1;

    // Grant entry flags (`GTF_*`).
    pub const GTF_INVALID: u16 = 0;
    pub const GTF_PERMIT_ACCESS: u16 = 1;
    pub const GTF_ACCEPT_TRANSFER: u16 = 2;
    pub const GTF_TRANSITIVE: u16 = 3;
    pub const GTF_TYPE_MASK: u16 = 3;
    pub const GTF_READONLY: u16 = 1 << 2;
    pub const GTF_READING: u16 = 1 << 3;
    pub const GTF_WRITING: u16 = 1 << 4;
    pub const GTF_PWT: u16 = 1 << 5;
    pub const GTF_PCD: u16 = 1 << 6;
    pub const GTF_PAT: u16 = 1 << 7;
    pub const GTF_SUB_PAGE: u16 = 1 << 8;
    pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;

    // Mapping flags (`GNTMAP_*`).
    pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
    pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
    pub const GNTMAP_READONLY: u32 = 1 << 2;
    pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
    pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

    pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
    pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

    // `GNTTABOP_cache_flush` operations.
    pub const GNTTAB_CACHE_CLEAN: u32 = 1 << 0;
    pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
    pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

    /// A grant-table status code (`GNTST_*`): what the hypervisor writes in an operation's
    /// `status` field. ABI structures keep the raw `i16` (a guest may write anything there).
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    #[repr(transparent)]
    pub struct GntSt(pub i16);

    impl GntSt {
        pub const OKAY: GntSt = GntSt(0);
        pub const GENERAL_ERROR: GntSt = GntSt(-1);
        pub const BAD_DOMAIN: GntSt = GntSt(-2);
        pub const BAD_GNTREF: GntSt = GntSt(-3);
        pub const BAD_HANDLE: GntSt = GntSt(-4);
        pub const BAD_VIRT_ADDR: GntSt = GntSt(-5);
        pub const BAD_DEV_ADDR: GntSt = GntSt(-6);
        pub const NO_DEVICE_SPACE: GntSt = GntSt(-7);
        pub const PERMISSION_DENIED: GntSt = GntSt(-8);
        pub const BAD_PAGE: GntSt = GntSt(-9);
        pub const BAD_COPY_ARG: GntSt = GntSt(-10);
        pub const ADDRESS_TOO_BIG: GntSt = GntSt(-11);
        pub const EAGAIN: GntSt = GntSt(-12);
        pub const NO_SPACE: GntSt = GntSt(-13);

        /// The status an operation's result gives: okay, or the error.
        pub fn of(r: Result<(), GntSt>) -> i16 {
            match r {
                Ok(()) => GntSt::OKAY.0,
                Err(s) => s.0,
            }
        }
        pub fn name(self) -> &'static str {
            status_name(self.0)
        }
    }

    // Status codes as raw values (what guests compare their `status` fields with).
    pub const GNTST_OKAY: i16 = GntSt::OKAY.0;
    pub const GNTST_GENERAL_ERROR: i16 = GntSt::GENERAL_ERROR.0;
    pub const GNTST_BAD_DOMAIN: i16 = GntSt::BAD_DOMAIN.0;
    pub const GNTST_BAD_GNTREF: i16 = GntSt::BAD_GNTREF.0;
    pub const GNTST_BAD_HANDLE: i16 = GntSt::BAD_HANDLE.0;
    pub const GNTST_BAD_VIRT_ADDR: i16 = GntSt::BAD_VIRT_ADDR.0;
    pub const GNTST_BAD_DEV_ADDR: i16 = GntSt::BAD_DEV_ADDR.0;
    pub const GNTST_NO_DEVICE_SPACE: i16 = GntSt::NO_DEVICE_SPACE.0;
    pub const GNTST_PERMISSION_DENIED: i16 = GntSt::PERMISSION_DENIED.0;
    pub const GNTST_BAD_PAGE: i16 = GntSt::BAD_PAGE.0;
    pub const GNTST_BAD_COPY_ARG: i16 = GntSt::BAD_COPY_ARG.0;
    pub const GNTST_ADDRESS_TOO_BIG: i16 = GntSt::ADDRESS_TOO_BIG.0;
    pub const GNTST_EAGAIN: i16 = GntSt::EAGAIN.0;
    pub const GNTST_NO_SPACE: i16 = GntSt::NO_SPACE.0;

    /// Name of a GNTST code, for result lines.
    pub fn status_name(s: i16) -> &'static str {
        match s {
            GNTST_OKAY => "okay",
            GNTST_GENERAL_ERROR => "general_error",
            GNTST_BAD_DOMAIN => "bad_domain",
            GNTST_BAD_GNTREF => "bad_gntref",
            GNTST_BAD_HANDLE => "bad_handle",
            GNTST_BAD_VIRT_ADDR => "bad_virt_addr",
            GNTST_BAD_DEV_ADDR => "bad_dev_addr",
            GNTST_NO_DEVICE_SPACE => "no_device_space",
            GNTST_PERMISSION_DENIED => "permission_denied",
            GNTST_BAD_PAGE => "bad_page",
            GNTST_BAD_COPY_ARG => "bad_copy_arg",
            GNTST_ADDRESS_TOO_BIG => "address_too_big",
            GNTST_EAGAIN => "eagain",
            GNTST_NO_SPACE => "no_space",
            _ => "?",
        }
    }
}

/// `struct grant_entry_v1`: 512 of them fill a 4 KiB shared frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: DomId,
    pub frame: u32,
}
const_assert_eq!(size_of::<GrantEntryV1>(), 8);
const_assert_eq!(offset_of!(GrantEntryV1, domid), 2);
const_assert_eq!(offset_of!(GrantEntryV1, frame), 4);
pub const GRANT_ENTRIES_V1_PER_FRAME: u32 = (XEN_PAGE_SIZE / size_of::<GrantEntryV1>()) as u32;

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetupTable {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    pub status: i16,
    pub _pad1: [u8; 6],
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`
    pub frame_list: GuestHandle,
}
const_assert_eq!(size_of::<GnttabSetupTable>(), 24);
const_assert_eq!(offset_of!(GnttabSetupTable, nr_frames), 4);
const_assert_eq!(offset_of!(GnttabSetupTable, status), 8);
const_assert_eq!(offset_of!(GnttabSetupTable, frame_list), 16);

/// `struct gnttab_query_size` (16 bytes, 4-aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabQuerySize {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
    pub _pad1: u16,
}
const_assert_eq!(size_of::<GnttabQuerySize>(), 16);
const_assert_eq!(core::mem::align_of::<GnttabQuerySize>(), 4);
const_assert_eq!(offset_of!(GnttabQuerySize, nr_frames), 4);
const_assert_eq!(offset_of!(GnttabQuerySize, max_nr_frames), 8);
const_assert_eq!(offset_of!(GnttabQuerySize, status), 12);

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub ref_: u32,
    pub dom: DomId,
    pub status: i16,
    pub handle: u32,
    pub dev_bus_addr: u64,
}
const_assert_eq!(size_of::<GnttabMapGrantRef>(), 32);
const_assert_eq!(offset_of!(GnttabMapGrantRef, flags), 8);
const_assert_eq!(offset_of!(GnttabMapGrantRef, ref_), 12);
const_assert_eq!(offset_of!(GnttabMapGrantRef, dom), 16);
const_assert_eq!(offset_of!(GnttabMapGrantRef, status), 18);
const_assert_eq!(offset_of!(GnttabMapGrantRef, handle), 20);
const_assert_eq!(offset_of!(GnttabMapGrantRef, dev_bus_addr), 24);

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    pub status: i16,
    pub _pad: u16,
}
const_assert_eq!(size_of::<GnttabUnmapGrantRef>(), 24);
const_assert_eq!(offset_of!(GnttabUnmapGrantRef, dev_bus_addr), 8);
const_assert_eq!(offset_of!(GnttabUnmapGrantRef, handle), 16);
const_assert_eq!(offset_of!(GnttabUnmapGrantRef, status), 20);

/// `struct gnttab_unmap_and_replace`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabUnmapAndReplace {
    pub host_addr: u64,
    pub new_addr: u64,
    pub handle: u32,
    pub status: i16,
    pub _pad: u16,
}
const_assert_eq!(size_of::<GnttabUnmapAndReplace>(), 24);
const_assert_eq!(offset_of!(GnttabUnmapAndReplace, new_addr), 8);
const_assert_eq!(offset_of!(GnttabUnmapAndReplace, handle), 16);
const_assert_eq!(offset_of!(GnttabUnmapAndReplace, status), 20);

/// `struct gnttab_swap_grant_ref` (12 bytes, 4-aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSwapGrantRef {
    pub ref_a: u32,
    pub ref_b: u32,
    pub status: i16,
    pub _pad: u16,
}
const_assert_eq!(size_of::<GnttabSwapGrantRef>(), 12);
const_assert_eq!(core::mem::align_of::<GnttabSwapGrantRef>(), 4);
const_assert_eq!(offset_of!(GnttabSwapGrantRef, ref_b), 4);
const_assert_eq!(offset_of!(GnttabSwapGrantRef, status), 8);

/// One side of a `gnttab_copy`: a grant reference (with `*_GREF` set) or a GFN of the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopyPtr {
    /// `union { grant_ref_t ref; xen_pfn_t gmfn; }`
    pub u: u64,
    pub domid: DomId,
    pub offset: u16,
    pub _pad: u32,
}
const_assert_eq!(size_of::<GnttabCopyPtr>(), 16);
const_assert_eq!(offset_of!(GnttabCopyPtr, domid), 8);
const_assert_eq!(offset_of!(GnttabCopyPtr, offset), 10);

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    pub status: i16,
    pub _pad: u16,
}
const_assert_eq!(size_of::<GnttabCopy>(), 40);
const_assert_eq!(offset_of!(GnttabCopy, dest), 16);
const_assert_eq!(offset_of!(GnttabCopy, len), 32);
const_assert_eq!(offset_of!(GnttabCopy, flags), 34);
const_assert_eq!(offset_of!(GnttabCopy, status), 36);

/// `struct gnttab_get_status_frames`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: DomId,
    pub status: i16,
    pub frame_list: GuestHandle,
}
const_assert_eq!(size_of::<GnttabGetStatusFrames>(), 16);
const_assert_eq!(offset_of!(GnttabGetStatusFrames, dom), 4);
const_assert_eq!(offset_of!(GnttabGetStatusFrames, status), 6);
const_assert_eq!(offset_of!(GnttabGetStatusFrames, frame_list), 8);

/// `struct gnttab_set_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabSetVersion {
    pub version: u32,
}
const_assert_eq!(size_of::<GnttabSetVersion>(), 4);

/// `struct gnttab_get_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabGetVersion {
    pub dom: DomId,
    pub pad: u16,
    pub version: u32,
}
const_assert_eq!(size_of::<GnttabGetVersion>(), 8);
const_assert_eq!(offset_of!(GnttabGetVersion, version), 4);

/// `struct gnttab_dump_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabDumpTable {
    pub dom: DomId,
    pub status: i16,
}
const_assert_eq!(size_of::<GnttabDumpTable>(), 4);
const_assert_eq!(offset_of!(GnttabDumpTable, status), 2);

/// `struct gnttab_cache_flush`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GnttabCacheFlush {
    /// `union { uint64_t dev_bus_addr; grant_ref_t ref; }`
    pub a: u64,
    pub offset: u16,
    pub length: u16,
    pub op: u32,
}
const_assert_eq!(size_of::<GnttabCacheFlush>(), 16);
const_assert_eq!(offset_of!(GnttabCacheFlush, offset), 8);
const_assert_eq!(offset_of!(GnttabCacheFlush, length), 10);
const_assert_eq!(offset_of!(GnttabCacheFlush, op), 12);

/// `xen_version` sub-commands.
pub mod version {
    pub const XENVER_VERSION: u64 = 0;
    pub const XENVER_EXTRAVERSION: u64 = 1;
    pub const XENVER_COMPILE_INFO: u64 = 2;
    pub const XENVER_CAPABILITIES: u64 = 3;
    pub const XENVER_CHANGESET: u64 = 4;
    pub const XENVER_PLATFORM_PARAMETERS: u64 = 5;
    pub const XENVER_GET_FEATURES: u64 = 6;
    pub const XENVER_PAGESIZE: u64 = 7;
    pub const XENVER_GUEST_HANDLE: u64 = 8;
    pub const XENVER_COMMANDLINE: u64 = 9;
    pub const XENVER_BUILD_ID: u64 = 10;
    /// `xen_extraversion_t` is 16 bytes.
    pub const XEN_EXTRAVERSION_LEN: usize = 16;
    /// `xen_capabilities_info_t` is 1024 bytes.
    pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
    /// `xen_commandline_t` is 1024 bytes.
    pub const XEN_COMMANDLINE_LEN: usize = 1024;
}

/// `struct xen_feature_info` (XENVER_get_features).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenFeatureInfo {
    pub submap_idx: u32,
    pub submap: u32,
}
const_assert_eq!(size_of::<XenFeatureInfo>(), 8);

/// `console_io` sub-commands.
pub mod console {
    pub const CONSOLEIO_WRITE: u64 = 0;
    pub const CONSOLEIO_READ: u64 = 1;
}

/// `sched_op` sub-commands and shutdown reasons.
pub mod sched {
    pub const SCHEDOP_YIELD: u64 = 0;
    pub const SCHEDOP_BLOCK: u64 = 1;
    pub const SCHEDOP_SHUTDOWN: u64 = 2;
    pub const SCHEDOP_POLL: u64 = 3;
    pub const SHUTDOWN_POWEROFF: u32 = 0;
    pub const SHUTDOWN_REBOOT: u32 = 1;
    pub const SHUTDOWN_SUSPEND: u32 = 2;
    pub const SHUTDOWN_CRASH: u32 = 3;
    pub const SHUTDOWN_WATCHDOG: u32 = 4;
}

/// `struct sched_poll` (SCHEDOP_poll).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedPoll {
    /// `XEN_GUEST_HANDLE(evtchn_port_t)`: `nr_ports` 32-bit ports.
    pub ports: GuestHandle,
    pub nr_ports: u32,
    pub _pad: u32,
    /// Absolute system time to give up at (0: none).
    pub timeout: u64,
}
const_assert_eq!(size_of::<SchedPoll>(), 24);
const_assert_eq!(offset_of!(SchedPoll, nr_ports), 8);
const_assert_eq!(offset_of!(SchedPoll, timeout), 16);

/// `struct sched_shutdown`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedShutdown {
    pub reason: u32,
}
const_assert_eq!(size_of::<SchedShutdown>(), 4);

/// Guest address map used for domains that are not direct-mapped (`public/arch-arm.h`).
/// `hvm_op` (`public/hvm/hvm_op.h`, `params.h`).
pub mod hvm {
    pub const HVMOP_SET_PARAM: u64 = 0;
    pub const HVMOP_GET_PARAM: u64 = 1;
    /// How a domain's event-channel upcall is delivered (on Arm: a PPI).
    pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
    pub const HVM_PARAM_STORE_PFN: u32 = 1;
    pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
    pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
    pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
    /// Number of parameters (Xen 4.17's `HVM_NR_PARAMS`).
    pub const HVM_NR_PARAMS: u32 = 39;
    /// `HVM_PARAM_CALLBACK_IRQ` value: type in bits 63:56.
    pub const CALLBACK_TYPE_SHIFT: u32 = 56;
    pub const CALLBACK_TYPE_PPI: u64 = 2;
    /// PPI flags in bits 15:8: the interrupt is level-sensitive, active low.
    pub const CALLBACK_PPI_FLAG_LOW_LEVEL: u64 = 2;

    /// The `HVM_PARAM_CALLBACK_IRQ` value for an event-channel PPI `intid`.
    pub const fn callback_ppi(intid: u32) -> u64 {
        (CALLBACK_TYPE_PPI << CALLBACK_TYPE_SHIFT) | (CALLBACK_PPI_FLAG_LOW_LEVEL << 8) | (intid as u64 & 0xff)
    }
}

/// `struct xen_hvm_param` (HVMOP_set_param / HVMOP_get_param).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenHvmParam {
    pub domid: u16,
    pub _pad: u16,
    pub index: u32,
    pub value: u64,
}
const_assert_eq!(size_of::<XenHvmParam>(), 16);
const_assert_eq!(offset_of!(XenHvmParam, index), 4);
const_assert_eq!(offset_of!(XenHvmParam, value), 8);

pub mod guest_layout {
    pub const GUEST_GNTTAB_BASE: u64 = 0x3800_0000;
    pub const GUEST_GNTTAB_SIZE: u64 = 0x0100_0000;
    pub const GUEST_MAGIC_BASE: u64 = 0x3900_0000;
    pub const GUEST_RAM0_BASE: u64 = 0x4000_0000;
    pub const GUEST_RAM0_SIZE: u64 = 0xC000_0000;
    pub const GUEST_RAM1_BASE: u64 = 0x02_0000_0000;
    pub const GUEST_EVTCHN_PPI: u32 = 31;
    pub const GUEST_TIMER_VIRT_PPI: u32 = 27;
    pub const GUEST_TIMER_PHYS_NS_PPI: u32 = 30;
}

/// Arm SMCCC / PSCI function identifiers a guest uses through `HVC #0` or `SMC #0`.
pub mod psci {
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    pub const PSCI_CPU_SUSPEND_32: u32 = 0x8400_0001;
    pub const PSCI_CPU_SUSPEND_64: u32 = 0xC400_0001;
    pub const PSCI_CPU_OFF: u32 = 0x8400_0002;
    pub const PSCI_CPU_ON_32: u32 = 0x8400_0003;
    pub const PSCI_CPU_ON_64: u32 = 0xC400_0003;
    pub const PSCI_AFFINITY_INFO_32: u32 = 0x8400_0004;
    pub const PSCI_AFFINITY_INFO_64: u32 = 0xC400_0004;
    pub const PSCI_MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
    pub const PSCI_SYSTEM_RESET: u32 = 0x8400_0009;
    pub const PSCI_FEATURES: u32 = 0x8400_000A;
    pub const PSCI_SUCCESS: i64 = 0;
    pub const PSCI_NOT_SUPPORTED: i64 = -1;
    pub const PSCI_INVALID_PARAMETERS: i64 = -2;
    pub const PSCI_DENIED: i64 = -3;
    pub const PSCI_ALREADY_ON: i64 = -4;
    pub const PSCI_ON_PENDING: i64 = -5;
    pub const PSCI_INTERNAL_FAILURE: i64 = -6;
    pub const PSCI_INVALID_ADDRESS: i64 = -9;
    /// PSCI 1.1
    pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;
    pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;
    /// SMCCC architecture workarounds (only probed through SMCCC_ARCH_FEATURES).
    pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
    pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7FFF;
    pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3FFF;
    /// The vendor-specific hypervisor service (owner 6): call count, UID, revision.
    pub const SMCCC_HYP_CALL_COUNT: u32 = 0x8600_FF00;
    pub const SMCCC_HYP_CALL_UID: u32 = 0x8600_FF01;
    pub const SMCCC_HYP_REVISION: u32 = 0x8600_FF03;
    /// Xen's hypervisor-service UID (a71812dc-c698-4369-9acf-79d18ddee667) as SMCCC returns it
    /// in w0..w3 (four bytes each, the first byte in the low-order bits).
    pub const XEN_SMCCC_UID: [u32; 4] = [0xdc12_18a7, 0x6943_98c6, 0xd179_cf9a, 0x67e6_de8d];
    /// Xen's hypervisor service: 3 functions, revision 0.1.
    pub const XEN_SMCCC_FUNCTION_COUNT: u32 = 3;
    pub const XEN_SMCCC_REVISION: (u32, u32) = (0, 1);
}

/// Event channels: `EVTCHNOP_*` sub-ops, `EVTCHNSTAT_*` states, VIRQs, and the constants of
/// the two ABIs (2-level bitmaps in `shared_info`, FIFO event words and control blocks)
/// (`public/event_channel.h`, `public/xen.h`).
pub mod evtchn {
    pub const EVTCHNOP_BIND_INTERDOMAIN: u32 = 0;
    pub const EVTCHNOP_BIND_VIRQ: u32 = 1;
    pub const EVTCHNOP_BIND_PIRQ: u32 = 2;
    pub const EVTCHNOP_CLOSE: u32 = 3;
    pub const EVTCHNOP_SEND: u32 = 4;
    pub const EVTCHNOP_STATUS: u32 = 5;
    pub const EVTCHNOP_ALLOC_UNBOUND: u32 = 6;
    pub const EVTCHNOP_BIND_IPI: u32 = 7;
    pub const EVTCHNOP_BIND_VCPU: u32 = 8;
    pub const EVTCHNOP_UNMASK: u32 = 9;
    pub const EVTCHNOP_RESET: u32 = 10;
    pub const EVTCHNOP_INIT_CONTROL: u32 = 11;
    pub const EVTCHNOP_EXPAND_ARRAY: u32 = 12;
    pub const EVTCHNOP_SET_PRIORITY: u32 = 13;
    /// The continuation of a preempted `EVTCHNOP_reset` (Xen-internal, but a guest may issue it).
    pub const EVTCHNOP_RESET_CONT: u32 = 14;

    pub const EVTCHNSTAT_CLOSED: u32 = 0;
    pub const EVTCHNSTAT_UNBOUND: u32 = 1;
    pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
    pub const EVTCHNSTAT_PIRQ: u32 = 3;
    pub const EVTCHNSTAT_VIRQ: u32 = 4;
    pub const EVTCHNSTAT_IPI: u32 = 5;

    /// `BIND_PIRQ__WILL_SHARE`.
    pub const BIND_PIRQ_WILL_SHARE: u32 = 1;

    // VIRQs (`VIRQ_*`). "V" ones are per vCPU, the others global (bound on vCPU 0 and delivered
    // to the port's notify vCPU); on Arm the arch VIRQs are global too.
    pub const VIRQ_TIMER: u32 = 0;
    pub const VIRQ_DEBUG: u32 = 1;
    pub const VIRQ_CONSOLE: u32 = 2;
    pub const VIRQ_DOM_EXC: u32 = 3;
    pub const VIRQ_TBUF: u32 = 4;
    pub const VIRQ_DEBUGGER: u32 = 6;
    pub const VIRQ_XENOPROF: u32 = 7;
    pub const VIRQ_CON_RING: u32 = 8;
    pub const VIRQ_PCPU_STATE: u32 = 9;
    pub const VIRQ_MEM_EVENT: u32 = 10;
    pub const VIRQ_ARGO: u32 = 11;
    pub const VIRQ_ENOMEM: u32 = 12;
    pub const VIRQ_XENPMU: u32 = 13;
    pub const VIRQ_ARCH_0: u32 = 16;
    pub const VIRQ_ARCH_7: u32 = 23;
    /// `NR_VIRQS`.
    pub const NR_VIRQS: u32 = 24;

    /// Is `virq` global (Xen's `virq_is_global`; Arm's `arch_virq_is_global` is always true)?
    pub const fn virq_is_global(virq: u32) -> bool {
        !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
    }

    /// 2-level ABI: `xen_ulong_t` is 64 bits on arm64, so 64 × 64 ports.
    pub const EVTCHN_2L_NR_CHANNELS: u32 = 64 * 64;

    pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
    pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
    pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
    pub const EVTCHN_FIFO_MAX_QUEUES: usize = EVTCHN_FIFO_PRIORITY_MIN as usize + 1;
    /// Bits of a FIFO event word (`event_word_t`).
    pub const EVTCHN_FIFO_PENDING: u32 = 31;
    pub const EVTCHN_FIFO_MASKED: u32 = 30;
    pub const EVTCHN_FIFO_LINKED: u32 = 29;
    pub const EVTCHN_FIFO_BUSY: u32 = 28;
    pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
    pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
    pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;
}

/// `struct evtchn_alloc_unbound`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnAllocUnbound {
    pub dom: DomId,
    pub remote_dom: DomId,
    pub port: u32,
}
const_assert_eq!(size_of::<EvtchnAllocUnbound>(), 8);
const_assert_eq!(offset_of!(EvtchnAllocUnbound, remote_dom), 2);
const_assert_eq!(offset_of!(EvtchnAllocUnbound, port), 4);

/// `struct evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: DomId,
    pub _pad: u16,
    pub remote_port: u32,
    pub local_port: u32,
}
const_assert_eq!(size_of::<EvtchnBindInterdomain>(), 12);
const_assert_eq!(offset_of!(EvtchnBindInterdomain, remote_port), 4);
const_assert_eq!(offset_of!(EvtchnBindInterdomain, local_port), 8);

/// `struct evtchn_bind_virq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVirq {
    pub virq: u32,
    pub vcpu: u32,
    pub port: u32,
}
const_assert_eq!(size_of::<EvtchnBindVirq>(), 12);
const_assert_eq!(offset_of!(EvtchnBindVirq, vcpu), 4);
const_assert_eq!(offset_of!(EvtchnBindVirq, port), 8);

/// `struct evtchn_bind_pirq`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindPirq {
    pub pirq: u32,
    pub flags: u32,
    pub port: u32,
}
const_assert_eq!(size_of::<EvtchnBindPirq>(), 12);
const_assert_eq!(offset_of!(EvtchnBindPirq, port), 8);

/// `struct evtchn_bind_ipi`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    pub port: u32,
}
const_assert_eq!(size_of::<EvtchnBindIpi>(), 8);
const_assert_eq!(offset_of!(EvtchnBindIpi, port), 4);

/// `struct evtchn_close`, `struct evtchn_send` and `struct evtchn_unmask`: a port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnPort {
    pub port: u32,
}
const_assert_eq!(size_of::<EvtchnPort>(), 4);
pub type EvtchnClose = EvtchnPort;
pub type EvtchnSend = EvtchnPort;
pub type EvtchnUnmask = EvtchnPort;

/// `struct evtchn_status`. The union `u` is kept as two words: `unbound.dom` and
/// `interdomain.dom` are the low 16 bits of `u[0]`, `interdomain.port` is `u[1]`, `pirq` and
/// `virq` are `u[0]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnStatus {
    pub dom: DomId,
    pub _pad: u16,
    pub port: u32,
    pub status: u32,
    pub vcpu: u32,
    pub u: [u32; 2],
}
const_assert_eq!(size_of::<EvtchnStatus>(), 24);
const_assert_eq!(offset_of!(EvtchnStatus, port), 4);
const_assert_eq!(offset_of!(EvtchnStatus, status), 8);
const_assert_eq!(offset_of!(EvtchnStatus, vcpu), 12);
const_assert_eq!(offset_of!(EvtchnStatus, u), 16);

impl EvtchnStatus {
    /// `u.unbound.dom` / `u.interdomain.dom`.
    pub fn remote_dom(&self) -> DomId {
        self.u[0] as u16
    }
    pub fn set_remote_dom(&mut self, dom: DomId) {
        self.u[0] = (self.u[0] & 0xFFFF_0000) | dom as u32;
    }
}

/// `struct evtchn_bind_vcpu`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnBindVcpu {
    pub port: u32,
    pub vcpu: u32,
}
const_assert_eq!(size_of::<EvtchnBindVcpu>(), 8);

/// `struct evtchn_reset`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnReset {
    pub dom: DomId,
}
const_assert_eq!(size_of::<EvtchnReset>(), 2);

/// `struct evtchn_init_control`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnInitControl {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    pub link_bits: u8,
    pub _pad: [u8; 7],
}
const_assert_eq!(size_of::<EvtchnInitControl>(), 24);
const_assert_eq!(offset_of!(EvtchnInitControl, offset), 8);
const_assert_eq!(offset_of!(EvtchnInitControl, vcpu), 12);
const_assert_eq!(offset_of!(EvtchnInitControl, link_bits), 16);

/// `struct evtchn_expand_array`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnExpandArray {
    pub array_gfn: u64,
}
const_assert_eq!(size_of::<EvtchnExpandArray>(), 8);

/// `struct evtchn_set_priority`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnSetPriority {
    pub port: u32,
    pub priority: u32,
}
const_assert_eq!(size_of::<EvtchnSetPriority>(), 8);

/// `struct evtchn_fifo_control_block`: per vCPU, in a guest page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EvtchnFifoControlBlock {
    pub ready: u32,
    pub _rsvd: u32,
    pub head: [u32; evtchn::EVTCHN_FIFO_MAX_QUEUES],
}
const_assert_eq!(size_of::<EvtchnFifoControlBlock>(), 72);
const_assert_eq!(offset_of!(EvtchnFifoControlBlock, head), 8);

/// `struct vcpu_time_info` (32 bytes). Xen 4.17 on Arm never writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub pad0: u32,
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    pub flags: u8,
    pub pad1: [u8; 2],
}
const_assert_eq!(size_of::<VcpuTimeInfo>(), 32);
const_assert_eq!(offset_of!(VcpuTimeInfo, tsc_timestamp), 8);
const_assert_eq!(offset_of!(VcpuTimeInfo, system_time), 16);
const_assert_eq!(offset_of!(VcpuTimeInfo, tsc_to_system_mul), 24);
const_assert_eq!(offset_of!(VcpuTimeInfo, tsc_shift), 28);
const_assert_eq!(offset_of!(VcpuTimeInfo, flags), 29);

/// `struct vcpu_info` on arm64 (48 bytes): no `evtchn_upcall_mask` (x86 only), an empty
/// `arch_vcpu_info`. The six bytes after `pad0` are the C compiler's padding, named here.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuInfo {
    pub evtchn_upcall_pending: u8,
    pub pad0: u8,
    pub _pad1: [u8; 6],
    pub evtchn_pending_sel: u64,
    pub time: VcpuTimeInfo,
}
const_assert_eq!(size_of::<VcpuInfo>(), 48);
const_assert_eq!(core::mem::align_of::<VcpuInfo>(), 8);
const_assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
const_assert_eq!(offset_of!(VcpuInfo, time), 16);

/// `XEN_LEGACY_MAX_VCPUS` on Arm: only vCPU 0 has a `vcpu_info` in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 1;

/// `struct shared_info` on arm64 (1088 bytes; `arch_shared_info` is empty).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    pub evtchn_pending: [u64; 64],
    pub evtchn_mask: [u64; 64],
    pub wc_version: u32,
    pub wc_sec: u32,
    pub wc_nsec: u32,
    pub wc_sec_hi: u32,
}
const_assert_eq!(size_of::<SharedInfo>(), 1088);
const_assert_eq!(offset_of!(SharedInfo, evtchn_pending), 48);
const_assert_eq!(offset_of!(SharedInfo, evtchn_mask), 560);
const_assert_eq!(offset_of!(SharedInfo, wc_version), 1072);
const_assert_eq!(offset_of!(SharedInfo, wc_sec), 1076);
const_assert_eq!(offset_of!(SharedInfo, wc_nsec), 1080);
const_assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 1084);

impl Default for SharedInfo {
    fn default() -> Self {
        SharedInfo {
            vcpu_info: [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; 64],
            evtchn_mask: [0; 64],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
        }
    }
}

/// `vcpu_op` sub-ops and run states (`public/vcpu.h`).
pub mod vcpuop {
    pub const VCPUOP_INITIALISE: u32 = 0;
    pub const VCPUOP_UP: u32 = 1;
    pub const VCPUOP_DOWN: u32 = 2;
    pub const VCPUOP_IS_UP: u32 = 3;
    pub const VCPUOP_GET_RUNSTATE_INFO: u32 = 4;
    pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u32 = 5;
    pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
    pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
    pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
    pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;
    pub const VCPUOP_REGISTER_VCPU_INFO: u32 = 10;
    pub const VCPUOP_SEND_NMI: u32 = 11;
    pub const VCPUOP_GET_PHYSID: u32 = 12;
    pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u32 = 13;

    pub const RUNSTATE_RUNNING: u32 = 0;
    pub const RUNSTATE_RUNNABLE: u32 = 1;
    pub const RUNSTATE_BLOCKED: u32 = 2;
    pub const RUNSTATE_OFFLINE: u32 = 3;
    /// Set in `state_entry_time` while the hypervisor updates a runstate area (with
    /// `VMASST_TYPE_runstate_update_flag`).
    pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;
}

/// `vm_assist` commands and types (`public/xen.h`).
pub mod vmassist {
    pub const VMASST_CMD_ENABLE: u32 = 0;
    pub const VMASST_CMD_DISABLE: u32 = 1;
    pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
}

/// `struct vcpu_runstate_info` (48 bytes; four bytes of C padding after `state`, named here).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRunstateInfo {
    pub state: i32,
    pub _pad: u32,
    pub state_entry_time: u64,
    pub time: [u64; 4],
}
const_assert_eq!(size_of::<VcpuRunstateInfo>(), 48);
const_assert_eq!(offset_of!(VcpuRunstateInfo, state_entry_time), 8);
const_assert_eq!(offset_of!(VcpuRunstateInfo, time), 16);

/// `struct vcpu_register_runstate_memory_area`: a guest virtual address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterRunstateMemoryArea {
    pub addr: u64,
}
const_assert_eq!(size_of::<VcpuRegisterRunstateMemoryArea>(), 8);

/// `struct vcpu_register_vcpu_info`: the `vcpu_info` at `offset` in guest frame `mfn` (a GFN).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuRegisterVcpuInfo {
    pub mfn: u64,
    pub offset: u32,
    pub rsvd: u32,
}
const_assert_eq!(size_of::<VcpuRegisterVcpuInfo>(), 16);
const_assert_eq!(offset_of!(VcpuRegisterVcpuInfo, offset), 8);
const_assert_eq!(offset_of!(VcpuRegisterVcpuInfo, rsvd), 12);

/// `platform_op` commands (`public/platform.h`); Xen 4.17 on Arm implements `settime64` only.
pub mod platform {
    pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;
    pub const XENPF_SETTIME32: u32 = 17;
    pub const XENPF_SETTIME64: u32 = 62;
}

/// `struct xenpf_settime64`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenpfSettime64 {
    pub secs: u64,
    pub nsecs: u32,
    pub mbz: u32,
    pub system_time: u64,
}
const_assert_eq!(size_of::<XenpfSettime64>(), 24);
const_assert_eq!(offset_of!(XenpfSettime64, nsecs), 8);
const_assert_eq!(offset_of!(XenpfSettime64, mbz), 12);
const_assert_eq!(offset_of!(XenpfSettime64, system_time), 16);

/// `struct xen_platform_op` (136 bytes): the union `u` is 128 bytes, 8-aligned.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenPlatformOp {
    pub cmd: u32,
    pub interface_version: u32,
    pub u: [u64; 16],
}
const_assert_eq!(size_of::<XenPlatformOp>(), 136);
const_assert_eq!(offset_of!(XenPlatformOp, u), 8);

impl XenPlatformOp {
    /// The union as `settime64`.
    pub fn settime64(&self) -> XenpfSettime64 {
        XenpfSettime64 {
            secs: self.u[0],
            nsecs: self.u[1] as u32,
            mbz: (self.u[1] >> 32) as u32,
            system_time: self.u[2],
        }
    }
    /// A `settime64` operation.
    pub fn new_settime64(s: XenpfSettime64) -> Self {
        let mut u = [0u64; 16];
        u[0] = s.secs;
        u[1] = s.nsecs as u64 | (s.mbz as u64) << 32;
        u[2] = s.system_time;
        XenPlatformOp { cmd: platform::XENPF_SETTIME64, interface_version: platform::XENPF_INTERFACE_VERSION, u }
    }
}
