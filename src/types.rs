//! Address and frame-number types shared by every module.

pub use xen_abi::DomId;

pub const PAGE_SHIFT: u32 = 12;
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
pub const PAGE_MASK: u64 = PAGE_SIZE - 1;

/// A machine frame number (host physical address >> 12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[repr(transparent)]
pub struct Mfn(pub u64);

impl Mfn {
    pub const fn from_addr(pa: u64) -> Self {
        Mfn(pa >> PAGE_SHIFT)
    }
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
    pub const fn add(self, n: u64) -> Self {
        Mfn(self.0 + n)
    }
}

/// A guest frame number (intermediate physical address >> 12).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
#[repr(transparent)]
pub struct Gfn(pub u64);

impl Gfn {
    /// `INVALID_GFN` of the ABI (`~0`).
    pub const INVALID: Gfn = Gfn(u64::MAX);
    pub const fn from_addr(ipa: u64) -> Self {
        Gfn(ipa >> PAGE_SHIFT)
    }
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
    pub const fn add(self, n: u64) -> Self {
        Gfn(self.0 + n)
    }
}

/// A Xen errno value (positive); hypercalls return it negated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Errno(pub i64);

impl Errno {
    pub const EPERM: Errno = Errno(xen_abi::errno::EPERM);
    pub const ENOENT: Errno = Errno(xen_abi::errno::ENOENT);
    pub const ENXIO: Errno = Errno(xen_abi::errno::ENXIO);
    pub const E2BIG: Errno = Errno(xen_abi::errno::E2BIG);
    pub const ESRCH: Errno = Errno(xen_abi::errno::ESRCH);
    pub const EAGAIN: Errno = Errno(xen_abi::errno::EAGAIN);
    pub const ENOMEM: Errno = Errno(xen_abi::errno::ENOMEM);
    pub const EACCES: Errno = Errno(xen_abi::errno::EACCES);
    pub const EFAULT: Errno = Errno(xen_abi::errno::EFAULT);
    pub const EBUSY: Errno = Errno(xen_abi::errno::EBUSY);
    pub const EEXIST: Errno = Errno(xen_abi::errno::EEXIST);
    pub const EINVAL: Errno = Errno(xen_abi::errno::EINVAL);
    pub const ENOSPC: Errno = Errno(xen_abi::errno::ENOSPC);
    pub const EDOM: Errno = Errno(xen_abi::errno::EDOM);
    pub const ENOSYS: Errno = Errno(xen_abi::errno::ENOSYS);
    pub const EILSEQ: Errno = Errno(xen_abi::errno::EILSEQ);
    pub const EOPNOTSUPP: Errno = Errno(xen_abi::errno::EOPNOTSUPP);
    pub const EOVERFLOW: Errno = Errno(xen_abi::errno::EOVERFLOW);

    /// The value a hypercall returns in x0.
    pub const fn ret(self) -> i64 {
        -self.0
    }
    pub fn name(self) -> &'static str {
        xen_abi::errno::name(self.0)
    }
}

pub type Result<T> = core::result::Result<T, Errno>;
