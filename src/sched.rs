//! Which vCPU each physical CPU runs: the pinned scheduler. Every vCPU is placed on one
//! physical CPU when its domain is built and stays there for its whole life; a physical CPU
//! runs at most one vCPU and idles when that vCPU is off. A real scheduler (several vCPUs per
//! CPU, blocking, migration) replaces this policy later; the interface — place a domain,
//! release it, "what does this CPU run next" — stays.

use crate::domain::Domain;
use crate::sync::{AtomicBool, Mutex, Ordering, rank};
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Physical CPUs the hypervisor can use.
pub const MAX_CPUS: usize = 8;

/// A vCPU placed on a physical CPU.
#[derive(Clone)]
pub struct Placed {
    pub domain: Arc<Domain>,
    pub vcpu: u32,
}

/// The pinned scheduler's table: one slot per physical CPU.
pub struct Pinned {
    slots: [Mutex<Option<Placed>>; MAX_CPUS],
    online: [AtomicBool; MAX_CPUS],
}

impl Default for Pinned {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a domain cannot be placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceError {
    /// Its vCPU `vcpu` names a CPU that is offline, beyond [`MAX_CPUS`] or already taken.
    CpuUnavailable { vcpu: u32, pcpu: usize },
}

impl Pinned {
    pub fn new() -> Pinned {
        Pinned {
            slots: core::array::from_fn(|_| Mutex::new(rank::PCPU_SLOT, None)),
            online: core::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    /// Physical CPU `pcpu` can run vCPUs from now on.
    pub fn set_online(&self, pcpu: usize) {
        if let Some(o) = self.online.get(pcpu) {
            o.store(true, Ordering::Release);
        }
    }

    pub fn is_online(&self, pcpu: usize) -> bool {
        self.online.get(pcpu).is_some_and(|o| o.load(Ordering::Acquire))
    }

    /// Online physical CPUs running no vCPU, in order.
    pub fn free_cpus(&self) -> Vec<usize> {
        (0..MAX_CPUS).filter(|&c| self.is_online(c) && self.slots[c].lock().is_none()).collect()
    }

    /// Place every vCPU of `d` on its CPU ([`crate::vcpu::Vcpu::pcpu`]); nothing is placed if
    /// one of them is unavailable.
    pub fn place(&self, d: &Arc<Domain>) -> Result<(), PlaceError> {
        for v in d.vcpus.iter() {
            let free = v.pcpu < MAX_CPUS && self.is_online(v.pcpu) && self.slots[v.pcpu].lock().is_none();
            if !free {
                return Err(PlaceError::CpuUnavailable { vcpu: v.id, pcpu: v.pcpu });
            }
        }
        for v in d.vcpus.iter() {
            *self.slots[v.pcpu].lock() = Some(Placed { domain: d.clone(), vcpu: v.id });
        }
        Ok(())
    }

    /// Free the CPUs of `d`'s vCPUs (every one of them is off).
    pub fn release(&self, d: &Domain) {
        for v in d.vcpus.iter() {
            let mut s = self.slots[v.pcpu].lock();
            if s.as_ref().is_some_and(|p| core::ptr::eq(Arc::as_ptr(&p.domain), d)) {
                *s = None;
            }
        }
    }

    /// What CPU `pcpu` should enter now: its vCPU, if a start is pending (the vCPU is then
    /// running), with the entry point and x0.
    pub fn next(&self, pcpu: usize) -> Option<(Placed, u64, u64)> {
        let slot = self.slots.get(pcpu)?.lock();
        let p = slot.as_ref()?;
        let (entry, context) = p.domain.vcpus[p.vcpu as usize].take_start()?;
        Some((p.clone(), entry, context))
    }

    /// The vCPU placed on `pcpu`, if any.
    pub fn placed(&self, pcpu: usize) -> Option<Placed> {
        self.slots.get(pcpu)?.lock().clone()
    }
}
