//! Time as Xen 4.17 on Arm shows it to guests: the hypervisor's system time (nanoseconds since
//! it booted, from the system counter: Xen's `NOW()`), and the wallclock in each domain's
//! `shared_info` (`wc_sec`/`wc_nsec`/`wc_sec_hi` under the odd/even `wc_version` protocol),
//! written when the domain is created and whenever dom0 sets the time (`XENPF_settime64`)
//! (Xen's `common/time.c` `update_domain_wallclock_time`, `do_settime`).
//!
//! Arm Xen 4.17 writes nothing else: its `update_vcpu_system_time` is empty, so a vCPU's
//! `vcpu_time_info` keeps whatever it held (zeros, or what `VCPUOP_register_vcpu_info` copied
//! from the old `vcpu_info`) — Arm guests read the architected counter instead. Granite does
//! the same: it never writes `vcpu_time_info`.

use crate::hw::Hw;
use crate::mm::Mm;
use crate::sync::{Mutex, rank};
use crate::types::Mfn;
use core::mem::offset_of;
use core::sync::atomic::{Ordering, fence};
use xen_abi::SharedInfo;

const NS_PER_SEC: u64 = 1_000_000_000;

/// The hypervisor's clock.
pub struct Clock {
    /// The counter when the hypervisor booted (Xen's `boot_count`).
    boot_count: u64,
    /// UTC at system time 0: seconds and nanoseconds (Xen's `wc_sec`, `wc_nsec`).
    wc: Mutex<(u64, u32)>,
}

impl Clock {
    pub fn new(boot_count: u64) -> Clock {
        Clock { boot_count, wc: Mutex::new(rank::WALLCLOCK, (0, 0)) }
    }

    /// System time in nanoseconds (Xen's `NOW()`).
    pub fn now(&self, hw: &dyn Hw) -> u64 {
        let ticks = hw.counter().wrapping_sub(self.boot_count);
        let hz = hw.counter_hz().max(1);
        (ticks as u128 * NS_PER_SEC as u128 / hz as u128) as u64
    }

    /// The wallclock at system time 0.
    pub fn wallclock(&self) -> (u64, u32) {
        *self.wc.lock()
    }

    /// Copy the wallclock into the `shared_info` page `shared_info` (Xen's
    /// `update_domain_wallclock_time`; a domain's time offset is always 0 here).
    pub fn update_domain(&self, mm: &Mm, shared_info: Mfn) {
        let wc = self.wc.lock();
        write_wallclock(mm, shared_info, wc.0, wc.1);
    }

    /// `XENPF_settime64`: the wallclock reads `secs`.`nsecs` at system time
    /// `system_time_base` (Xen's `do_settime`, in its unsigned arithmetic), and every domain in
    /// `shared_infos` sees it.
    pub fn settime(&self, mm: &Mm, shared_infos: &[Mfn], secs: u64, nsecs: u32, system_time_base: u64) {
        let x = secs.wrapping_mul(NS_PER_SEC).wrapping_add(nsecs as u64).wrapping_sub(system_time_base);
        let mut wc = self.wc.lock();
        *wc = (x / NS_PER_SEC, (x % NS_PER_SEC) as u32);
        for &si in shared_infos {
            write_wallclock(mm, si, wc.0, wc.1);
        }
    }
}

/// Write the wallclock fields of one `shared_info`: `wc_version` odd while they change, even
/// after (Xen's `version_update_begin`/`_end`), with write barriers in between.
fn write_wallclock(mm: &Mm, shared_info: Mfn, sec: u64, nsec: u32) {
    let base = shared_info.addr();
    let field = |off: usize| mm.phys.atomic_u32(base + off as u64);
    let version = field(offset_of!(SharedInfo, wc_version));
    let v = version.load(Ordering::Acquire).wrapping_add(1) | 1;
    version.store(v, Ordering::Relaxed);
    fence(Ordering::Release);
    field(offset_of!(SharedInfo, wc_sec)).store(sec as u32, Ordering::Relaxed);
    field(offset_of!(SharedInfo, wc_nsec)).store(nsec, Ordering::Relaxed);
    field(offset_of!(SharedInfo, wc_sec_hi)).store((sec >> 32) as u32, Ordering::Relaxed);
    fence(Ordering::Release);
    version.store(v.wrapping_add(1), Ordering::Relaxed);
}
