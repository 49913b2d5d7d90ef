//! Copying hypercall arguments from and to guest memory.
//!
//! A guest passes virtual addresses. Each page of an access is translated by the guest's own
//! stage 1 ([`GuestVa`]: the `AT S1E1R/W` instructions on the image, the identity for a guest
//! with its MMU off and in host tests), then through the domain's P2M. Only RAM the domain
//! owns is accessible (`ram_rw`, or `ram_ro` for reads): unmapped, MMIO, grant-mapped and
//! foreign pages, and addresses beyond the IPA size, give `-EFAULT`, as does any structure
//! that crosses into such a page. The domain's P2M read lock is held while a page's bytes are
//! copied, so the page cannot leave the domain meanwhile.

use crate::domain::Domain;
use crate::hv::Hypervisor;
use crate::p2m::P2mType;
use crate::types::{Errno, Gfn, PAGE_MASK, PAGE_SIZE, Result};
use core::mem::size_of;

/// Translation of guest virtual addresses by the guest's stage 1.
pub trait GuestVa {
    /// The IPA of `va` (page aligned in, page aligned out), or `None` if the guest's stage 1
    /// does not map it (for writing, if `write`). Called with the guest's P2M read lock held,
    /// so stage 2 is not in the middle of an update.
    fn to_ipa(&self, va: u64, write: bool) -> Option<u64>;
}

/// A guest running with its stage-1 MMU off: VA == IPA.
pub struct IdentityVa;
impl GuestVa for IdentityVa {
    fn to_ipa(&self, va: u64, _write: bool) -> Option<u64> {
        Some(va)
    }
}

pub use crate::mm::phys::Pod;
use crate::mm::phys::{as_bytes, as_bytes_mut};

/// The accessor of one domain's memory during one hypercall.
pub struct GuestMem<'a> {
    hv: &'a Hypervisor,
    d: &'a Domain,
    va: &'a dyn GuestVa,
}

impl<'a> GuestMem<'a> {
    pub fn new(hv: &'a Hypervisor, d: &'a Domain, va: &'a dyn GuestVa) -> Self {
        GuestMem { hv, d, va }
    }

    /// Translate `va` and call `f` with its machine address, under the P2M read lock. Pages
    /// leave a P2M (and are freed) only under its write lock, so the page stays the domain's
    /// RAM while `f` copies, without taking a page reference.
    ///
    /// The stage-1 translation runs under the read lock too: the hardware's stage-1 walk reads
    /// the guest's page tables through stage 2, and a writer in the middle of break-before-make
    /// on the block holding them (another vCPU mapping a page into the same 2 MiB of dom0's
    /// RAM) would make it fail, turning a good pointer into -EFAULT (found by the fuzz guest,
    /// seed 0xdead). Xen takes its P2M read lock before the translation for the same reason.
    #[inline(always)]
    fn with_page<R>(&self, va: u64, write: bool, f: impl FnOnce(u64) -> R) -> Result<R> {
        let r = self.d.p2m.read(&self.hv.mm);
        let ipa = self.va.to_ipa(va & !PAGE_MASK, write).ok_or(Errno::EFAULT)?;
        let m = r.lookup(Gfn::from_addr(ipa)).ok_or(Errno::EFAULT)?;
        let ok = if write { m.ty == P2mType::RamRw } else { m.ty.is_ram() };
        if !ok {
            return Err(Errno::EFAULT);
        }
        Ok(f(m.mfn.addr() + (va & PAGE_MASK)))
    }

    /// Does `[va, va + len)` lie in one page?
    fn in_one_page(va: u64, len: usize) -> bool {
        (va & PAGE_MASK) + len as u64 <= PAGE_SIZE
    }

    fn access(&self, va: u64, len: usize, write: bool, mut f: impl FnMut(u64, core::ops::Range<usize>)) -> Result<()> {
        let end = va.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        let mut cur = va;
        while cur < end {
            let chunk_end = end.min((cur & !PAGE_MASK).saturating_add(PAGE_SIZE));
            let off = (cur - va) as usize;
            self.with_page(cur, write, |pa| f(pa, off..off + (chunk_end - cur) as usize))?;
            cur = chunk_end;
        }
        Ok(())
    }

    pub fn read_bytes(&self, va: u64, buf: &mut [u8]) -> Result<()> {
        let phys = self.hv.mm.phys;
        self.access(va, buf.len(), false, |pa, r| phys.read(pa, &mut buf[r]))
    }

    pub fn write_bytes(&self, va: u64, buf: &[u8]) -> Result<()> {
        let phys = self.hv.mm.phys;
        self.access(va, buf.len(), true, |pa, r| phys.write(pa, &buf[r]))
    }

    /// Copy a `T` in. A structure within one page (hypercall arguments, nearly always) is
    /// copied with one translation and a copy of its known size.
    pub fn read<T: Pod>(&self, va: u64) -> Result<T> {
        if Self::in_one_page(va, size_of::<T>()) {
            let phys = self.hv.mm.phys;
            return self.with_page(va, false, |pa| phys.read_obj::<T>(pa));
        }
        let mut v = T::default();
        self.read_bytes(va, as_bytes_mut(&mut v))?;
        Ok(v)
    }

    /// Copy a `T` out (see [`Self::read`]).
    pub fn write<T: Pod>(&self, va: u64, v: &T) -> Result<()> {
        if Self::in_one_page(va, size_of::<T>()) {
            let phys = self.hv.mm.phys;
            return self.with_page(va, true, |pa| phys.write_obj(pa, v));
        }
        self.write_bytes(va, as_bytes(v))
    }

    /// Element `i` of a guest array of `T` at `base` (`copy_from_guest_offset`).
    pub fn read_elem<T: Pod>(&self, base: u64, i: u64) -> Result<T> {
        self.read(Self::elem(base, i, size_of::<T>())?)
    }
    pub fn write_elem<T: Pod>(&self, base: u64, i: u64, v: &T) -> Result<()> {
        self.write(Self::elem(base, i, size_of::<T>())?, v)
    }
    fn elem(base: u64, i: u64, size: usize) -> Result<u64> {
        i.checked_mul(size as u64).and_then(|o| base.checked_add(o)).ok_or(Errno::EFAULT)
    }
}
