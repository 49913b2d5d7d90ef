//! The P2M: a domain's stage-2 translation from guest frames to machine frames.
//!
//! All changes happen under the P2M write lock through [`P2mWrite`]. The guard keeps the
//! deferred work of removals (the TLB flush, the page references and table pages to drop) and
//! performs it when it is dropped, *before* the lock is released, so no other CPU can observe a
//! removed mapping through a stale TLB entry once the lock is free, and no page is freed
//! while a TLB entry could still reach it.
//!
//! Dropping an entry (remove, replace, teardown) is the only place where a foreign mapping's
//! page reference is released and where a xenheap page's stored GFN is cleared
//! ([`P2mWrite::drop_leaf`]).

pub mod config;
pub mod pte;

use crate::mm::Mm;
use crate::mm::frame::{P2mLocked, P2mWriteLocked};
use crate::mm::phys::PhysMap;
use crate::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, rank};
use crate::types::{DomId, Errno, Gfn, Mfn, PAGE_SHIFT, Result};
pub use config::StageConfig;
pub use pte::{P2mType, S2Pte};

/// Entries in one 4 KiB table.
const ENTRIES: u64 = 512;
/// Block orders (in 4 KiB frames) of levels 1, 2 and 3.
pub const ORDER_1G: u32 = 18;
pub const ORDER_2M: u32 = 9;

/// Result of a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The machine frame of the looked-up GFN (not the start of the block).
    pub mfn: Mfn,
    pub ty: P2mType,
    /// Order of the block or page holding it: 0, 9 or 18.
    pub order: u32,
}

/// Counters kept under the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct P2mStats {
    /// Leaf entries per level (index = level).
    pub leaves: [u64; 4],
    /// Table pages in use, root excluded.
    pub table_pages: u64,
}

pub struct P2mState {
    need_flush: bool,
    /// Work waiting for the next TLB flush (always empty while the lock is free).
    deferred: Deferred,
    dying: bool,
    destroyed: bool,
    stats: P2mStats,
    table_pages_limit: u64,
}

/// A domain's stage-2 tables.
/// What a guest access needs from a P2M entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    Read,
    Write,
    Execute,
}

pub struct P2m {
    owner: DomId,
    vmid: u16,
    cfg: StageConfig,
    root: Mfn,
    state: RwLock<P2mState>,
}

impl P2m {
    /// New empty tables for `owner`. `table_pages_limit` bounds the intermediate table
    /// pages a guest can make the hypervisor allocate (Xen's P2M pool, XSA-409).
    pub fn new(mm: &Mm, owner: DomId, vmid: u16, cfg: StageConfig, table_pages_limit: u64) -> Result<P2m> {
        let root = mm.alloc_xenheap_order(cfg.root_order)?;
        mm.tlb.sync_pte_writes();
        let p2m = P2m {
            owner,
            vmid,
            cfg,
            root,
            state: RwLock::new(
                rank::P2M,
                P2mState {
                    need_flush: false,
                    deferred: Deferred::new(),
                    dying: false,
                    destroyed: false,
                    stats: P2mStats::default(),
                    table_pages_limit,
                },
            ),
        };
        // A recycled VMID may still have TLB entries: flush before first use.
        mm.tlb.flush_guest_all(p2m.vttbr());
        Ok(p2m)
    }

    pub fn owner(&self) -> DomId {
        self.owner
    }
    pub fn vmid(&self) -> u16 {
        self.vmid
    }
    pub fn config(&self) -> &StageConfig {
        &self.cfg
    }
    /// VTTBR_EL2 value: root table address and VMID.
    pub fn vttbr(&self) -> u64 {
        self.root.addr() | ((self.vmid as u64) << 48)
    }

    pub fn read<'a>(&'a self, mm: &'a Mm) -> P2mRead<'a> {
        P2mRead { p2m: self, mm, _st: self.state.read() }
    }

    pub fn write<'a>(&'a self, mm: &'a Mm) -> P2mWrite<'a> {
        P2mWrite { p2m: self, mm, st: self.state.write() }
    }

    /// Does the P2M map `gfn` for `access` now? Taken under the read lock, so a
    /// break-before-make sequence another CPU was in the middle of when a guest access faulted
    /// has completed: if this says yes, the guest just retries the access.
    pub fn permits(&self, mm: &Mm, gfn: Gfn, access: Access) -> bool {
        self.read(mm).lookup(gfn).is_some_and(|m| match access {
            Access::Read => true,
            Access::Write => m.ty.is_writable(),
            Access::Execute => m.ty.is_ram(),
        })
    }

    /// Is the write lock held by someone (diagnostics and tests)?
    pub fn is_write_locked(&self) -> bool {
        self.state.is_write_locked()
    }

    /// Is the read lock held by someone (diagnostics and tests)?
    pub fn is_read_locked(&self) -> bool {
        self.state.is_read_locked()
    }

    /// Free the root tables. The P2M must have been relinquished; a second call does nothing.
    pub fn destroy(&self, mm: &Mm) {
        {
            let mut w = self.write(mm);
            assert!(w.st.dying && w.st.stats == P2mStats::default(), "P2M destroyed before relinquish");
            if core::mem::replace(&mut w.st.destroyed, true) {
                return;
            }
        }
        for i in 0..self.cfg.root_pages() {
            mm.free_xenheap(self.root.add(i));
        }
    }

    fn slot<'m>(&self, mm: &'m Mm, table: Mfn, index: u64) -> &'m core::sync::atomic::AtomicU64 {
        mm.phys.atomic_u64(table.addr() + index * 8)
    }

    /// The non-empty entries of `table` (`entries` of them, a multiple of 8) as (index, raw
    /// descriptor), in order. Runs of empty entries — most of a sparse table — are skipped
    /// eight at a time with one test (the audit and teardown walk whole tables).
    fn occupied<'m>(&self, mm: &'m Mm, table: Mfn, entries: u64) -> impl Iterator<Item = (u64, u64)> + 'm {
        let raw = move |i: u64| mm.phys.atomic_u64(table.addr() + i * 8).load(HwOrd::Relaxed);
        // (The eight loads ORed without a loop: one comparison per eight entries.)
        let any8 = move |i: u64| {
            raw(i) | raw(i + 1) | raw(i + 2) | raw(i + 3) | raw(i + 4) | raw(i + 5) | raw(i + 6) | raw(i + 7)
        };
        (0..entries / 8)
            .map(|c| c * 8)
            .filter(move |&i| any8(i) != 0)
            .flat_map(move |i| (i..i + 8).map(move |j| (j, raw(j))))
            .filter(|&(_, pte)| pte != 0)
    }

    fn index(&self, gfn: u64, level: u32) -> u64 {
        let i = gfn >> (9 * (3 - level));
        if level == self.cfg.root_level { i } else { i & (ENTRIES - 1) }
    }

    /// Walk the tables for `gfn` from the root down to `last` at most, stopping early at an
    /// entry that is not a table (invalid, or a block): that entry's physical address, its
    /// level and the entry. `gfn` must be below the IPA size.
    ///
    /// Every caller holds the P2M lock (read or write), whose acquire already orders these
    /// reads after the last writer's stores: relaxed loads do, and they let the compiler keep
    /// the walk's state in registers.
    #[inline(always)]
    fn descend(&self, phys: PhysMap, gfn: u64, last: u32) -> (u64, u32, S2Pte) {
        let root_level = self.cfg.root_level;
        let (mut table, mut level) = (self.root, root_level);
        loop {
            let i = gfn >> (9 * (3 - level));
            let i = if level == root_level { i } else { i & (ENTRIES - 1) };
            let pa = table.addr() + i * 8;
            let pte = S2Pte::from_raw(phys.atomic_u64(pa).load(HwOrd::Relaxed));
            if level == last || !pte.is_table(level) {
                return (pa, level, pte);
            }
            table = pte.mfn();
            level += 1;
        }
    }

    /// The leaf entry that maps `gfn` (its physical address, level and value), or `None` if
    /// nothing maps it or it is beyond the IPA size. (The loop of [`Self::descend`], specialised
    /// for lookups: the hot path of every guest copy; written with `descend` it costs 32 more
    /// instructions per add+remove round trip, per `scripts/profile.sh`.)
    #[inline]
    fn walk(&self, phys: PhysMap, gfn: u64) -> Option<(u64, u32, S2Pte)> {
        if gfn >= self.cfg.gfn_limit() {
            return None;
        }
        let root_level = self.cfg.root_level;
        let (mut table, mut level) = (self.root, root_level);
        loop {
            let i = gfn >> (9 * (3 - level));
            let i = if level == root_level { i } else { i & (ENTRIES - 1) };
            let pa = table.addr() + i * 8;
            let pte = S2Pte::from_raw(phys.atomic_u64(pa).load(HwOrd::Relaxed));
            if !pte.is_valid() {
                return None;
            }
            if !pte.is_table(level) {
                return Some((pa, level, pte));
            }
            table = pte.mfn();
            level += 1;
        }
    }

    fn lookup(&self, mm: &Mm, gfn: Gfn) -> Option<Mapping> {
        self.walk(mm.phys, gfn.0).map(|(_, level, pte)| Mapping::of(gfn, level, pte))
    }
}

impl Mapping {
    /// What leaf `pte` at `level` says about `gfn`.
    fn of(gfn: Gfn, level: u32, pte: S2Pte) -> Mapping {
        let order = 9 * (3 - level);
        Mapping { mfn: pte.mfn().add(gfn.0 & ((1 << order) - 1)), ty: pte.p2m_type(), order }
    }
}

use core::sync::atomic::Ordering as HwOrd;

/// The P2M read lock: lookups only.
pub struct P2mRead<'a> {
    p2m: &'a P2m,
    mm: &'a Mm,
    _st: RwLockReadGuard<'a, P2mState>,
}

impl P2mRead<'_> {
    pub fn lookup(&self, gfn: Gfn) -> Option<Mapping> {
        self.p2m.lookup(self.mm, gfn)
    }
}

impl P2mLocked for P2mRead<'_> {
    fn p2m_owner(&self) -> DomId {
        self.p2m.owner
    }
}

#[derive(Clone, Copy, Debug)]
enum DeferredOp {
    PutPage(Mfn),
    PutAllocRef(Mfn),
    FreeTable(Mfn),
}

/// Work that must wait for the TLB flush. Kept in the locked state rather than in the guard,
/// so taking the lock neither initialises nor moves it.
struct Deferred {
    n: usize,
    ops: [DeferredOp; 32],
}

impl Deferred {
    fn new() -> Self {
        Deferred { n: 0, ops: [DeferredOp::PutPage(Mfn(0)); 32] }
    }
}

/// The P2M write lock. Dropping it flushes the TLB if a removal asked for it, then releases
/// deferred page references and table pages, then unlocks.
pub struct P2mWrite<'a> {
    p2m: &'a P2m,
    mm: &'a Mm,
    st: RwLockWriteGuard<'a, P2mState>,
}

impl P2mLocked for P2mWrite<'_> {
    fn p2m_owner(&self) -> DomId {
        self.p2m.owner
    }
}
impl P2mWriteLocked for P2mWrite<'_> {}

impl Drop for P2mWrite<'_> {
    fn drop(&mut self) {
        // Runs before the fields (and so the lock guard) are dropped.
        self.flush();
    }
}

impl<'a> P2mWrite<'a> {
    pub fn p2m(&self) -> &'a P2m {
        self.p2m
    }
    pub fn mm(&self) -> &'a Mm {
        self.mm
    }

    pub fn lookup(&self, gfn: Gfn) -> Option<Mapping> {
        self.p2m.lookup(self.mm, gfn)
    }

    pub fn stats(&self) -> P2mStats {
        self.st.stats
    }

    pub fn is_dying(&self) -> bool {
        self.st.dying
    }

    /// Map `nr` frames from `mfn` at `gfn` with type `ty`, using 1 GiB / 2 MiB blocks wherever
    /// both addresses are aligned and the block fits in what remains (per-page types always
    /// use 4 KiB).
    /// Whatever was mapped there is replaced (and dropped).
    pub fn insert(&mut self, gfn: Gfn, nr: u64, mfn: Mfn, ty: P2mType) -> Result<()> {
        assert!(ty != P2mType::Invalid, "insert of an invalid type");
        if self.st.dying {
            return Err(Errno::ENOMEM);
        }
        self.set_entry(gfn, nr, Some((mfn, ty)))
    }

    /// Drop the owner's allocation reference of `mfn` once the TLB no longer maps it (a page
    /// the domain gives back, unmapped under this lock: freed after the flush at unlock).
    pub fn free_after_flush(&mut self, mfn: Mfn) {
        self.defer(DeferredOp::PutAllocRef(mfn));
    }

    /// Unmap `nr` frames at `gfn` (nothing mapped is not an error).
    pub fn remove(&mut self, gfn: Gfn, nr: u64) -> Result<()> {
        self.set_entry(gfn, nr, None)
    }

    /// Look `gfn` up and, if `check` accepts what is mapped there (`None`: nothing, or beyond
    /// the IPA size), unmap it; `check`'s error is returned and nothing changes. One walk
    /// where a lookup followed by a removal would take two.
    pub fn remove_if(&mut self, gfn: Gfn, check: impl FnOnce(Option<Mapping>) -> Result<()>) -> Result<()> {
        let mm = self.mm;
        let Some((pa, level, old)) = self.p2m.walk(mm.phys, gfn.0) else { return check(None) };
        check(Some(Mapping::of(gfn, level, old)))?;
        if level != 3 {
            // Part of a block: split it.
            return self.set_one(gfn.0, 0, None);
        }
        self.write_leaf(mm.phys.atomic_u64(pa), old, level, gfn.0, 0, None);
        Ok(())
    }

    /// Remove the mapping of `gfn` if it is the expected frame (Xen's
    /// `guest_physmap_remove_page`): a RAM, grant or foreign entry pointing elsewhere gives
    /// `-EILSEQ` and nothing changes.
    pub fn remove_checked(&mut self, gfn: Gfn, mfn: Mfn) -> Result<()> {
        if gfn.0 >= self.p2m.cfg.gfn_limit() {
            return Err(Errno::EINVAL);
        }
        self.remove_if(gfn, |m| match m {
            Some(m) if m.ty.is_any_ram() && m.mfn != mfn => Err(Errno::EILSEQ),
            _ => Ok(()),
        })
    }

    /// Remove the grant mapping of `mfn` at `gfn`: the entry must be a grant mapping of that
    /// frame (`-EINVAL` otherwise, nothing changes). Stricter than Xen 4.17, which also
    /// "removes" an empty GFN and so lets a guest release a grant that stays mapped.
    pub fn remove_grant(&mut self, gfn: Gfn, mfn: Mfn) -> Result<()> {
        self.remove_if(gfn, |m| match m {
            Some(m) if m.ty.is_grant() && m.mfn == mfn => Ok(()),
            _ => Err(Errno::EINVAL),
        })
    }

    fn set_entry(&mut self, gfn: Gfn, nr: u64, new: Option<(Mfn, P2mType)>) -> Result<()> {
        let limit = self.p2m.cfg.gfn_limit();
        if nr == 0 {
            return Ok(());
        }
        if gfn.0 >= limit || nr > limit - gfn.0 {
            return Err(Errno::EINVAL);
        }
        if let Some((m, _)) = new
            && m.0.checked_add(nr).is_none_or(|e| e > 1 << 36)
        {
            return Err(Errno::EINVAL);
        }
        if nr == 1 {
            // One 4 KiB page (every hypercall-driven change): no block to choose.
            return self.set_one(gfn.0, 0, new);
        }
        let (mut g, mut left, mut cur) = (gfn.0, nr, new);
        while left > 0 {
            // The largest block both addresses are aligned to and that still fits.
            let align = g | cur.map_or(0, |(m, _)| m.0);
            let fits = |o: u32| align & ((1 << o) - 1) == 0 && left >= 1 << o;
            let order = match cur {
                Some((_, t)) if t.page_only() => 0,
                _ if fits(ORDER_1G) => ORDER_1G,
                _ if fits(ORDER_2M) => ORDER_2M,
                _ => 0,
            };
            self.set_one(g, order, cur)?;
            g += 1 << order;
            left -= 1 << order;
            if let Some((m, _)) = cur.as_mut() {
                *m = m.add(1 << order);
            }
        }
        Ok(())
    }

    fn set_one(&mut self, gfn: u64, order: u32, new: Option<(Mfn, P2mType)>) -> Result<()> {
        let (p2m, mm) = (self.p2m, self.mm);
        if order == 0 {
            // The common case: the tables down to level 3 exist already.
            let (pa, level, old) = p2m.descend(mm.phys, gfn, 3);
            if level == 3 {
                self.write_leaf(mm.phys.atomic_u64(pa), old, 3, gfn, 0, new);
                return Ok(());
            }
        }
        let phys = mm.phys;
        let slot_of = |table: Mfn, level: u32| phys.atomic_u64(table.addr() + p2m.index(gfn, level) * 8);
        let target = 3 - order / 9;
        let (mut table, mut level) = (p2m.root, p2m.cfg.root_level);
        while level < target {
            let slot = slot_of(table, level);
            let pte = S2Pte::from_raw(slot.load(HwOrd::Relaxed));
            if !pte.is_valid() {
                if new.is_none() {
                    return Ok(()); // nothing mapped below
                }
                let t = self.alloc_table()?;
                slot.store(S2Pte::table(t).raw(), HwOrd::Release);
                table = t;
            } else if pte.is_table(level) {
                table = pte.mfn();
            } else {
                // A block above the target level: split it, break-before-make.
                let t = self.alloc_table()?;
                for i in 0..ENTRIES {
                    p2m.slot(mm, t, i).store(pte.split_child(level, i).raw(), HwOrd::Relaxed);
                }
                slot.store(0, HwOrd::Release);
                let block = 1u64 << (9 * (3 - level) + PAGE_SHIFT);
                let base = (gfn << PAGE_SHIFT) & !(block - 1);
                mm.tlb.flush_guest_range(p2m.vttbr(), base, block);
                slot.store(S2Pte::table(t).raw(), HwOrd::Release);
                mm.tlb.sync_pte_writes();
                self.st.stats.leaves[level as usize] -= 1;
                self.st.stats.leaves[level as usize + 1] += ENTRIES;
                table = t;
            }
            level += 1;
        }

        let slot = slot_of(table, level);
        let old = S2Pte::from_raw(slot.load(HwOrd::Relaxed));
        self.write_leaf(slot, old, level, gfn, order, new);
        Ok(())
    }

    /// Replace entry `old` in `slot` (at `level`, for the block or page of `order` holding
    /// `gfn`) with `new`, break-before-make, dropping what the old entry held.
    #[inline]
    fn write_leaf(
        &mut self,
        slot: &core::sync::atomic::AtomicU64,
        old: S2Pte,
        level: u32,
        gfn: u64,
        order: u32,
        new: Option<(Mfn, P2mType)>,
    ) {
        let (p2m, mm) = (self.p2m, self.mm);
        let pte = new.map_or(S2Pte::INVALID, |(m, t)| S2Pte::leaf(m, t, level));
        // Re-inserting an identical entry changes nothing, except for foreign mappings: the
        // caller took a page reference for the new entry, so the old one's must be dropped.
        if old == pte && !old.p2m_type().is_foreign() {
            return;
        }
        if old.is_valid() {
            // Break before make.
            slot.store(0, HwOrd::Release);
            if new.is_some() {
                mm.tlb.flush_guest_range(p2m.vttbr(), gfn << PAGE_SHIFT, 1 << (order + PAGE_SHIFT));
            } else {
                self.st.need_flush = true;
            }
            if old.is_table(level) {
                self.free_subtree(old.mfn(), level + 1);
            } else {
                self.st.stats.leaves[level as usize] -= 1;
                // A RAM page that stays mapped at the same GFN (e.g. rw -> ro) is not dropped.
                let o = old.p2m_type();
                let kept = new.is_some_and(|(m, t)| m == old.mfn() && t.is_ram() && o.is_ram());
                if !kept {
                    self.drop_leaf(old, level);
                }
            }
        }
        if pte.is_valid() {
            slot.store(pte.raw(), HwOrd::Release);
            mm.tlb.sync_pte_writes();
            self.st.stats.leaves[level as usize] += 1;
        }
    }

    /// An entry leaves the P2M: release what it held. The only place a xenheap page's stored
    /// GFN is cleared, and where foreign mappings give back their page reference.
    fn drop_leaf(&mut self, pte: S2Pte, level: u32) {
        let (ty, mfn) = (pte.p2m_type(), pte.mfn());
        if ty.is_foreign() {
            debug_assert_eq!(level, 3, "foreign mappings are 4 KiB");
            self.defer(DeferredOp::PutPage(mfn));
        } else if ty.is_ram() && level == 3 {
            self.mm.frames.clear_xenheap_gfn(mfn, self);
        }
    }

    /// Drop every entry below table `table` (at `level`) and free the table pages after the
    /// next TLB flush.
    fn free_subtree(&mut self, table: Mfn, level: u32) {
        let (p2m, mm) = (self.p2m, self.mm);
        for (_, raw) in p2m.occupied(mm, table, ENTRIES) {
            let pte = S2Pte::from_raw(raw);
            if !pte.is_valid() {
                continue;
            }
            if pte.is_table(level) {
                self.free_subtree(pte.mfn(), level + 1);
            } else {
                self.st.stats.leaves[level as usize] -= 1;
                self.drop_leaf(pte, level);
            }
        }
        self.st.stats.table_pages -= 1;
        self.st.need_flush = true;
        self.defer(DeferredOp::FreeTable(table));
    }

    fn alloc_table(&mut self) -> Result<Mfn> {
        if self.st.stats.table_pages >= self.st.table_pages_limit {
            return Err(Errno::ENOMEM);
        }
        let t = self.mm.alloc_xenheap()?;
        // The zeroes must reach the walkers before the table is linked.
        self.mm.tlb.sync_pte_writes();
        self.st.stats.table_pages += 1;
        Ok(t)
    }

    fn defer(&mut self, op: DeferredOp) {
        if self.st.deferred.n == self.st.deferred.ops.len() {
            self.flush();
        }
        let d = &mut self.st.deferred;
        d.ops[d.n] = op;
        d.n += 1;
    }

    /// Perform the pending TLB flush, then the work that waited for it. Runs automatically
    /// when the guard is dropped (still under the lock).
    #[inline]
    pub fn flush(&mut self) {
        if self.st.need_flush || self.st.deferred.n != 0 {
            self.flush_pending();
        }
    }

    #[inline(never)]
    fn flush_pending(&mut self) {
        if self.st.need_flush || self.st.deferred.n != 0 {
            self.mm.tlb.flush_guest_all(self.p2m.vttbr());
            self.st.need_flush = false;
        }
        for i in 0..core::mem::replace(&mut self.st.deferred.n, 0) {
            match self.st.deferred.ops[i] {
                DeferredOp::PutPage(m) => self.mm.put_page(m),
                DeferredOp::PutAllocRef(m) => {
                    self.mm.put_alloc_ref(m);
                }
                DeferredOp::FreeTable(t) => self.mm.free_xenheap(t),
            }
        }
    }

    /// Domain teardown: refuse new mappings and drop every entry (clearing stored GFNs and
    /// releasing foreign references) before the domain's pages are freed.
    pub fn relinquish(&mut self) {
        self.st.dying = true;
        let (p2m, mm) = (self.p2m, self.mm);
        let root_level = p2m.cfg.root_level;
        for (i, raw) in p2m.occupied(mm, p2m.root, ENTRIES * p2m.cfg.root_pages()) {
            let pte = S2Pte::from_raw(raw);
            if !pte.is_valid() {
                continue;
            }
            p2m.slot(mm, p2m.root, i).store(0, HwOrd::Release);
            self.st.need_flush = true;
            if pte.is_table(root_level) {
                self.free_subtree(pte.mfn(), root_level + 1);
            } else {
                self.st.stats.leaves[root_level as usize] -= 1;
                self.drop_leaf(pte, root_level);
            }
        }
        self.flush();
    }

    /// The highest GFN mapped (0 with nothing mapped): `XENMEM_maximum_gpfn`.
    pub fn max_mapped_gfn(&self) -> Gfn {
        let mut max = 0;
        self.for_each_leaf(|g, m| max = max.max(g.0 + (1u64 << m.order) - 1));
        Gfn(max)
    }

    /// Visit every leaf mapping: `(gfn, mapping)` with the mapping's base frame (audit).
    pub fn for_each_leaf(&self, mut f: impl FnMut(Gfn, Mapping)) {
        fn walk(w: &P2mWrite<'_>, table: Mfn, level: u32, base: u64, entries: u64, f: &mut dyn FnMut(Gfn, Mapping)) {
            for (i, raw) in w.p2m.occupied(w.mm, table, entries) {
                let pte = S2Pte::from_raw(raw);
                if !pte.is_valid() {
                    continue;
                }
                let gfn = base + (i << (9 * (3 - level)));
                if pte.is_table(level) {
                    walk(w, pte.mfn(), level + 1, gfn, ENTRIES, f);
                } else {
                    f(Gfn(gfn), Mapping { mfn: pte.mfn(), ty: pte.p2m_type(), order: 9 * (3 - level) });
                }
            }
        }
        let p2m = self.p2m;
        walk(self, p2m.root, p2m.cfg.root_level, 0, ENTRIES * p2m.cfg.root_pages(), &mut f);
    }
}
