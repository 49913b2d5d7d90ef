//! TLB maintenance for stage-2 changes (and data-cache maintenance for
//! `GNTTABOP_cache_flush`), behind a small interface.
//!
//! On aarch64 ([`crate::arch`]) the operations load the target guest's VTTBR, issue
//! `tlbi ipas2e1is` per page (or `tlbi vmalls12e1is` for large ranges), then `tlbi vmalle1is`
//! for the combined stage-1+2 entries, with `dsb ish` / `isb` around them. Host tests use
//! [`Recorder`], which logs every call so tests can check what was flushed and when.

use crate::sync::{Mutex, rank};
use alloc::sync::Arc;
use alloc::vec::Vec;

pub trait TlbOps: Send + Sync {
    /// Make preceding page-table writes visible to every CPU's table walker (`dsb ishst`).
    fn sync_pte_writes(&self);
    /// Invalidate on every CPU the TLB entries of the guest whose stage-2 base is `vttbr`
    /// (root address | VMID << 48) for IPAs `[ipa, ipa + len)`, stage-1 entries included.
    /// Complete when it returns.
    fn flush_guest_range(&self, vttbr: u64, ipa: u64, len: u64);
    /// Invalidate every TLB entry of that guest. Complete when it returns.
    fn flush_guest_all(&self, vttbr: u64);
    /// Data-cache maintenance to the point of coherency on machine addresses
    /// `[pa, pa + len)`, complete when it returns.
    fn dcache(&self, op: CacheOp, pa: u64, len: u64);
}

/// What [`TlbOps::dcache`] does to each line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOp {
    /// Write dirty lines back (`dc cvac`).
    Clean,
    /// Write dirty lines back and drop them from the cache (`dc civac`). Also what a guest's
    /// "invalidate" gets: a plain invalidation (`dc ivac`) could discard data another domain
    /// wrote, through a page it granted read-only.
    CleanInvalidate,
}

/// One recorded TLB operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlbEvent {
    Sync,
    Range { vmid: u16, ipa: u64, len: u64, locked: Option<bool> },
    All { vmid: u16, locked: Option<bool> },
    Dcache { op: CacheOp, pa: u64, len: u64 },
}

/// Host-side recorder. `probe` (if set) is asked at every flush whether the P2M lock it
/// watches is held, and the answer is recorded with the event.
pub struct Recorder {
    events: Mutex<Vec<TlbEvent>>,
    probe: Mutex<Option<Arc<dyn Fn() -> bool + Send + Sync>>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { events: Mutex::new(rank::TEST, Vec::new()), probe: Mutex::new(rank::TEST, None) }
    }
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder::default())
    }
    pub fn take(&self) -> Vec<TlbEvent> {
        core::mem::take(&mut *self.events.lock())
    }
    pub fn set_probe(&self, probe: Option<Arc<dyn Fn() -> bool + Send + Sync>>) {
        *self.probe.lock() = probe;
    }
    fn locked(&self) -> Option<bool> {
        let p = self.probe.lock().clone();
        p.map(|f| f())
    }
    fn push(&self, e: TlbEvent) {
        self.events.lock().push(e);
    }
}

impl TlbOps for Recorder {
    fn sync_pte_writes(&self) {
        // Only the flushes matter to the tests; syncs are frequent, keep the log readable.
    }
    fn flush_guest_range(&self, vttbr: u64, ipa: u64, len: u64) {
        let locked = self.locked();
        self.push(TlbEvent::Range { vmid: (vttbr >> 48) as u16, ipa, len, locked });
    }
    fn flush_guest_all(&self, vttbr: u64) {
        let locked = self.locked();
        self.push(TlbEvent::All { vmid: (vttbr >> 48) as u16, locked });
    }
    fn dcache(&self, op: CacheOp, pa: u64, len: u64) {
        self.push(TlbEvent::Dcache { op, pa, len });
    }
}

/// A TLB interface that does nothing: for host benchmarks and model checking, where no
/// hardware TLB exists.
pub struct NoTlb;
impl TlbOps for NoTlb {
    fn sync_pte_writes(&self) {}
    fn flush_guest_range(&self, _: u64, _: u64, _: u64) {}
    fn flush_guest_all(&self, _: u64) {}
    fn dcache(&self, _: CacheOp, _: u64, _: u64) {}
}
