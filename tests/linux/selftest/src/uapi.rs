//! The user-space ABI of Linux's Xen devices: the ioctl numbers and argument layouts of
//! /dev/xen/gntalloc, /dev/xen/gntdev and /dev/xen/evtchn (include/uapi/xen/{gntalloc,gntdev,
//! evtchn}.h). Only what the self-test uses; each layout's size is asserted against the C one.

use core::mem::size_of;

/// `_IOC(_IOC_NONE, ty, nr, size)` of the generic (arm64) ioctl encoding: direction in bits
/// 31:30 (none = 0), argument size in bits 29:16, type in 15:8, number in 7:0.
const fn ioc_none(ty: u8, nr: u8, size: usize) -> u32 {
    assert!(size < 1 << 14);
    ((size as u32) << 16) | ((ty as u32) << 8) | nr as u32
}

// ---- /dev/xen/gntalloc ('G' 5..7) ----

/// `struct ioctl_gntalloc_alloc_gref` with room for `N` grant references. The C struct
/// declares one (`gref_ids[1]`), which is what the ioctl number's size counts; the driver
/// writes `count` of them.
#[repr(C)]
pub struct GntallocAllocGref<const N: usize> {
    /// In: the domain the pages are granted to.
    pub domid: u16,
    /// In: `GNTALLOC_FLAG_WRITABLE` or 0 (read-only grants).
    pub flags: u16,
    /// In: the number of pages.
    pub count: u32,
    /// Out: the mmap offset of the pages.
    pub index: u64,
    /// Out: one grant reference per page.
    pub gref_ids: [u32; N],
}
const _: () = assert!(size_of::<GntallocAllocGref<1>>() == 24);
pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;
pub const IOCTL_GNTALLOC_ALLOC_GREF: u32 = ioc_none(b'G', 5, size_of::<GntallocAllocGref<1>>());

/// `struct ioctl_gntalloc_dealloc_gref`.
#[repr(C)]
pub struct GntallocDeallocGref {
    /// The mmap offset ALLOC_GREF returned.
    pub index: u64,
    /// The number of pages.
    pub count: u32,
}
const _: () = assert!(size_of::<GntallocDeallocGref>() == 16);
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u32 = ioc_none(b'G', 6, size_of::<GntallocDeallocGref>());

// ---- /dev/xen/gntdev ('G' 0..1) ----

/// `struct ioctl_gntdev_grant_ref`: one grant of a foreign (or our own) domain.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GntdevGrantRef {
    pub domid: u32,
    pub gref: u32,
}
const _: () = assert!(size_of::<GntdevGrantRef>() == 8);

/// `struct ioctl_gntdev_map_grant_ref` with `N` references (the C struct declares one,
/// `refs[1]`, which is what the ioctl number's size counts; the driver reads `count`).
#[repr(C)]
pub struct GntdevMapGrantRef<const N: usize> {
    /// In: the number of grants.
    pub count: u32,
    pub pad: u32,
    /// Out: the mmap offset of the grants (the hypercall is made by mmap).
    pub index: u64,
    /// In: the grants.
    pub refs: [GntdevGrantRef; N],
}
const _: () = assert!(size_of::<GntdevMapGrantRef<1>>() == 24);
pub const IOCTL_GNTDEV_MAP_GRANT_REF: u32 = ioc_none(b'G', 0, size_of::<GntdevMapGrantRef<1>>());

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[repr(C)]
pub struct GntdevUnmapGrantRef {
    /// The mmap offset MAP_GRANT_REF returned.
    pub index: u64,
    /// The number of grants.
    pub count: u32,
    pub pad: u32,
}
const _: () = assert!(size_of::<GntdevUnmapGrantRef>() == 16);
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u32 = ioc_none(b'G', 1, size_of::<GntdevUnmapGrantRef>());

// ---- /dev/xen/evtchn ('E' 1..4); each returns the port (or 0) as the ioctl's value ----

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
pub struct EvtchnBindInterdomain {
    pub remote_domain: u32,
    pub remote_port: u32,
}
const _: () = assert!(size_of::<EvtchnBindInterdomain>() == 8);
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 = ioc_none(b'E', 1, size_of::<EvtchnBindInterdomain>());

/// `struct ioctl_evtchn_bind_unbound_port`.
#[repr(C)]
pub struct EvtchnBindUnboundPort {
    pub remote_domain: u32,
}
const _: () = assert!(size_of::<EvtchnBindUnboundPort>() == 4);
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 = ioc_none(b'E', 2, size_of::<EvtchnBindUnboundPort>());

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (the same one field).
#[repr(C)]
pub struct EvtchnPort {
    pub port: u32,
}
const _: () = assert!(size_of::<EvtchnPort>() == 4);
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc_none(b'E', 3, size_of::<EvtchnPort>());
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc_none(b'E', 4, size_of::<EvtchnPort>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers() {
        // The values the C macros expand to (computed by hand from _IOC's bit layout).
        assert_eq!(IOCTL_GNTALLOC_ALLOC_GREF, 0x0018_4705);
        assert_eq!(IOCTL_GNTALLOC_DEALLOC_GREF, 0x0010_4706);
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
        assert_eq!(IOCTL_GNTDEV_UNMAP_GRANT_REF, 0x0010_4701);
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x0004_4502);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
    }
}
