//! Fuzzing the virtual GIC and the EL1 timers from inside a guest that does other work
//! meanwhile (the `fuzz` guest mixes it with hypercalls on every vCPU).
//!
//! * [`mmio`]: one random access to the distributor or a redistributor (GICv3: any vCPU's
//!   RD_base or SGI_base frame, or the frame after the last one; GICv2: the distributor):
//!   register banks' first words often, any offset otherwise, 8/16/32/64-bit, read or write
//!   of 0, all ones, one bit, a plausible value or garbage. Every access goes through the
//!   fault probes ([`crate::probe_read_sized`], [`crate::probe_write_sized`]): a refused one
//!   must be a synchronous data abort at the accessed address ([`Access::refused_properly`]).
//! * [`sgi`]: one SGI — GICv3 `ICC_SGI1R_EL1` with valid and garbage targets (IRM, range
//!   selectors, affinities no vCPU has); GICv2 `GICD_SGIR` with every filter (3 is reserved).
//! * [`timer`]: one random programming of the virtual or the EL1 physical timer
//!   (`CNTV_*`/`CNTP_*` `CTL`, `CVAL`, `TVAL`) and the architectural read-back checks: CVAL
//!   reads what was written, a TVAL write sets CVAL to the counter plus its sign-extended
//!   value, TVAL reads CVAL minus the counter, CTL keeps ENABLE, the bits above ISTATUS read
//!   as zero and, while enabled, ISTATUS is clear as long as the counter is below CVAL. A
//!   hypervisor may set IMASK itself when the timer fires (Xen and granite do), so IMASK is
//!   not checked.
//! * [`irq_check`]: afterwards, with the GIC set up again by the caller
//!   ([`crate::gic::Gic::dist_init`] once, [`crate::gic::Gic::cpu_init`] on each CPU), take
//!   whatever the garbage left pending ([`on_irq`] acknowledges and ends everything), then
//!   arm the virtual timer and wait for its interrupt: the virtual GIC must still deliver.
//!
//! Interrupts stay masked (PSTATE.I) while fuzzing: what the garbage makes pending waits.
//! Randomness comes from the caller (`&mut dyn FnMut() -> u64`), so a seeded guest stays
//! reproducible.

use crate::exception::{Fault, irq_mask, irq_unmask, set_irq_handler};
use crate::gic::{self, Gic, gicd, gicr, icc};
use crate::platform::GicVersion;
use crate::smp::{self, MAX_CPUS};
use crate::{probe_read_sized, probe_write_sized, timer};
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};

/// A source of random 64-bit values.
pub type Rand<'a> = &'a mut dyn FnMut() -> u64;

fn below(r: Rand, n: u64) -> u64 {
    if n == 0 { 0 } else { r() % n }
}

fn pick<T: Copy>(r: Rand, xs: &[T]) -> T {
    xs[below(r, xs.len() as u64) as usize]
}

// ---- the frames -------------------------------------------------------------------------------

/// The redistributor frames (RD_base) in device-tree order, then (if the region has room)
/// the address of the frame after the last one; learnt once by [`learn`].
static RD: [AtomicU64; MAX_CPUS + 1] = [const { AtomicU64::new(0) }; MAX_CPUS + 1];
static NRD: AtomicUsize = AtomicUsize::new(0);
/// Whether RD[NRD - 1] is the frame after the last (no vCPU).
static ABSENT: AtomicUsize = AtomicUsize::new(0);

/// Learns the redistributor frames (GICv3; reads each GICR_TYPER). Boot CPU, before the
/// other CPUs use [`mmio`].
pub fn learn(g: &Gic) {
    if !g.is_v3() {
        return;
    }
    let mut f = [(0u64, 0u64); MAX_CPUS];
    let n = g.redist_frames(&mut f);
    for (slot, &(rd, _)) in RD.iter().zip(&f[..n]) {
        slot.store(rd, Relaxed);
    }
    let mut total = n;
    if n > 0 {
        let after = f[n - 1].0 + gicr::STRIDE;
        if g.node.redist.iter().any(|r| r.contains(after) && r.contains(after + gicr::STRIDE - 1)) {
            RD[n].store(after, Relaxed);
            total += 1;
            ABSENT.store(1, Relaxed);
        }
    }
    NRD.store(total, Release);
}

// ---- MMIO -------------------------------------------------------------------------------------

/// One access and what became of it.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    pub addr: u64,
    pub bytes: u8,
    /// The value written, or None for a read.
    pub write: Option<u64>,
    /// What was read (0 for a write), or the data abort.
    pub result: Result<u64, Fault>,
}

impl Access {
    /// Whether the access went through, or was refused as the architecture (and Xen) refuse
    /// a device access: a synchronous data abort taken to EL1 (EC 0x25) with FAR = address.
    pub fn refused_properly(&self) -> bool {
        match self.result {
            Ok(_) => true,
            Err(f) => f.ec() == 0x25 && f.far == self.addr,
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.write {
            Some(v) => write!(f, "{}-bit write of {v:#x} at {:#x}", 8 * self.bytes as u32, self.addr)?,
            None => write!(f, "{}-bit read at {:#x}", 8 * self.bytes as u32, self.addr)?,
        }
        match self.result {
            Ok(v) if self.write.is_none() => write!(f, " = {v:#x}"),
            Ok(_) => Ok(()),
            Err(e) => write!(f, ": {e}"),
        }
    }
}

/// Distributor offsets worth hitting often: every bank's first word, the ID registers and
/// (GICv3) the first SPIs' IROUTER.
const DIST_HOT_V3: [u64; 22] = [
    0x0, 0x4, 0x8, 0xc, 0x10, 0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0xc00, 0xd00, 0xe00, 0x6100,
    0x6108, 0x7ff8, 0xffd0, 0xffe8, 0xfffc,
];
const DIST_HOT_V2: [u64; 20] = [
    0x0, 0x4, 0x8, 0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0x800, 0x820, 0xc00, 0xe00, 0xf00, 0xf10,
    0xf20, 0xfe8, 0xffc,
];
const RD_HOT: [u64; 11] = [0x0, 0x4, 0x8, 0xc, 0x10, 0x14, 0x70, 0x78, 0xa0, 0xc0, 0xffe8];
const SGI_HOT: [u64; 11] = [0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0xc00, 0xc04, 0xd00];

/// A value worth writing at distributor/redistributor offset `off`.
fn value(r: Rand, off: u64, bytes: u8) -> u64 {
    let v = match below(r, 8) {
        0 => 0,
        1 => !0,
        2 => 1 << below(r, 64),
        3 if (0x6000..0x8000).contains(&off) => {
            // IROUTER: a vCPU's affinity, IRM, or an affinity nobody has.
            pick(r, &[0, 1, 2, 3, 1 << 31, 0x100, 0xff_0000_0000])
        }
        3 => u64::from_ne_bytes([gic::DEFAULT_PRIORITY; 8]),
        4 => 0x0101_0101_0101_0101 * below(r, 16),
        _ => r(),
    };
    if bytes == 8 { v } else { v & ((1u64 << (8 * bytes as u32)) - 1) }
}

/// One random access to the virtual GIC (see the module docs). `g` must have run
/// [`learn`] for GICv3.
pub fn mmio(g: &Gic, r: Rand) -> Access {
    let (base, size, hot): (u64, u64, &[u64]) = match (g.version, below(r, 8)) {
        (GicVersion::V3, k @ 0..=3) if NRD.load(Acquire) > 0 => {
            // A redistributor: ours mostly, another vCPU's or the absent one sometimes.
            let n = NRD.load(Acquire) as u64;
            let mine = g.rd();
            let rd = if mine != 0 && below(r, 3) != 0 { mine } else { RD[below(r, n) as usize].load(Relaxed) };
            if k < 2 { (rd, 0x1_0000, &RD_HOT) } else { (rd + gicr::SGI_BASE, 0x1_0000, &SGI_HOT) }
        }
        (GicVersion::V3, _) => (g.dist, 0x1_0000, &DIST_HOT_V3),
        (GicVersion::V2, _) => (g.dist, 0x1000, &DIST_HOT_V2),
    };
    let bytes = pick(r, &[4u8, 4, 4, 4, 8, 8, 1, 2]);
    let off = if below(r, 2) == 0 {
        hot[below(r, hot.len() as u64) as usize] + 4 * below(r, 4)
    } else if below(r, 4) == 0 && g.is_v3() && base == g.dist {
        // Somewhere in the SPIs' IROUTERs.
        0x6000 + 8 * below(r, 1024)
    } else {
        below(r, size)
    };
    let addr = base + (off.min(size - 8) & !(bytes as u64 - 1));
    let (write, result) = if below(r, 2) == 0 {
        (None, probe_read_sized(addr, bytes))
    } else {
        let v = value(r, (addr - base) & 0xffff, bytes);
        // SAFETY: a register of the virtual GIC (garbage is the point); a refused access is a
        // caught data abort. No RAM is written.
        (Some(v), unsafe { probe_write_sized(addr, bytes, v) }.map(|_| 0))
    };
    Access { addr, bytes, write, result }
}

// ---- SGIs -------------------------------------------------------------------------------------

/// Sends one random SGI (see the module docs) from this CPU, the vCPUs' MPIDRs in
/// `mpidrs`. Returns the GICD_SGIR access on GICv2, None on GICv3 (a system register write
/// that cannot be refused).
pub fn sgi(g: &Gic, r: Rand, mpidrs: &[u64]) -> Option<Access> {
    let id = below(r, 16) as u32;
    match g.version {
        GicVersion::V3 => {
            let v = match below(r, 8) {
                0 | 1 => {
                    let m = if mpidrs.is_empty() { smp::mpidr() } else { pick(r, mpidrs) };
                    gic::sgi1r_to_mpidr(id, m)
                }
                2 => gic::sgi1r_to_mpidr(id, smp::mpidr()),
                3 => gic::sgi1r(id, 0, 0, 0, 0, 0) | gic::SGI1R_IRM,
                4 => gic::sgi1r(id, 0, 0, 0, 0, below(r, 0x1_0000) as u16),
                5 => {
                    let (a3, a2, a1, rs) = (below(r, 3) as u8, below(r, 3) as u8, below(r, 3) as u8, below(r, 3) as u8);
                    gic::sgi1r(id, a3, a2, a1, rs, r() as u16)
                }
                _ => r(),
            };
            icc::sgi1r(v);
            None
        }
        GicVersion::V2 => {
            let filter = pick(r, &[0u32, 0, 1, 2, 3]);
            let v = match below(r, 4) {
                0 => r() as u32,
                _ => gic::sgir(id, filter, r() as u8),
            };
            let addr = g.d(gicd::SGIR);
            // SAFETY: the virtual GIC's GICD_SGIR; a refused write is a caught data abort.
            let result = unsafe { probe_write_sized(addr, 4, v as u64) }.map(|_| 0);
            Some(Access { addr, bytes: 4, write: Some(v as u64), result })
        }
    }
}

// ---- timers -----------------------------------------------------------------------------------

macro_rules! sysreg {
    ($get:ident, $set:ident, $name:literal) => {
        #[inline(always)]
        fn $get() -> u64 {
            let v: u64;
            // SAFETY: reading a timer register (trapped or not) has no memory effects.
            unsafe { asm!(concat!("isb; mrs {}, ", $name), out(reg) v, options(nomem, nostack, preserves_flags)) };
            v
        }
        #[inline(always)]
        fn $set(v: u64) {
            // SAFETY: programming this CPU's timer changes no memory (its interrupt stays
            // pending: IRQs are masked, or taken by `on_irq`).
            unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) v, options(nostack, preserves_flags)) };
        }
    };
}

sysreg!(cntp_ctl, set_cntp_ctl, "cntp_ctl_el0");
sysreg!(cntp_cval, set_cntp_cval, "cntp_cval_el0");
sysreg!(cntp_tval, set_cntp_tval, "cntp_tval_el0");

#[inline(always)]
fn cntpct() -> u64 {
    let v: u64;
    // SAFETY: reading the physical counter has no side effects.
    unsafe { asm!("isb", "mrs {}, cntpct_el0", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// One of the two EL1 timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// CNTV_* against CNTVCT (the hardware's, under a hypervisor).
    Virt,
    /// CNTP_* against CNTPCT (trapped and emulated by a hypervisor).
    Phys,
}

impl Timer {
    fn name(self) -> &'static str {
        match self {
            Timer::Virt => "CNTV",
            Timer::Phys => "CNTP",
        }
    }
    fn ctl(self) -> u64 {
        if self == Timer::Virt { timer::ctl() } else { cntp_ctl() }
    }
    fn set_ctl(self, v: u64) {
        if self == Timer::Virt { timer::set_ctl(v) } else { set_cntp_ctl(v) }
    }
    fn cval(self) -> u64 {
        if self == Timer::Virt { timer::cval() } else { cntp_cval() }
    }
    fn set_cval(self, v: u64) {
        if self == Timer::Virt { timer::set_cval(v) } else { set_cntp_cval(v) }
    }
    fn tval(self) -> u64 {
        if self == Timer::Virt { timer::tval() } else { cntp_tval() }
    }
    fn set_tval(self, v: u64) {
        if self == Timer::Virt { timer::set_tval(v) } else { set_cntp_tval(v) }
    }
    fn now(self) -> u64 {
        if self == Timer::Virt { timer::now() } else { cntpct() }
    }
}

/// Turns both EL1 timers off (ENABLE = 0).
pub fn timers_off() {
    Timer::Virt.set_ctl(0);
    Timer::Phys.set_ctl(0);
}

/// Sign-extends the low 32 bits (a TimerValue).
fn sext32(v: u64) -> u64 {
    v as u32 as i32 as i64 as u64
}

/// One random timer programming with its read-back checks (see the module docs); returns
/// the number of timer register accesses. `phys_ctl_strict`: also check the physical
/// timer's CTL bits other than ENABLE (Xen 4.17 reads back whatever the guest wrote to its
/// RES0 bits and ISTATUS).
pub fn timer(r: Rand, phys_ctl_strict: bool, check: &mut dyn FnMut(bool, fmt::Arguments)) -> u64 {
    let t = if below(r, 2) == 0 { Timer::Virt } else { Timer::Phys };
    let strict_ctl = t == Timer::Virt || phys_ctl_strict;
    let name = t.name();
    let mut n = 0;
    match below(r, 6) {
        0 | 1 => {
            let v = match below(r, 6) {
                0 => 0,
                1 => timer::CTL_ENABLE,
                2 => timer::CTL_ENABLE | timer::CTL_IMASK,
                3 => timer::CTL_IMASK,
                4 => !0,
                _ => r(),
            };
            t.set_ctl(v);
            let c = t.ctl();
            n += 2;
            {
                check(
                    c & timer::CTL_ENABLE == v & timer::CTL_ENABLE,
                    format_args!("{name}_CTL: wrote {v:#x}, reads {c:#x} (ENABLE differs)"),
                );
            }
        }
        2 => {
            let now = t.now();
            let v = match below(r, 6) {
                0 => now + below(r, 1 << 16),
                1 => now.wrapping_sub(below(r, 1 << 20)),
                2 => now + (1 << 40),
                3 => !0,
                4 => 0,
                _ => r(),
            };
            t.set_cval(v);
            let back = t.cval();
            n += 2;
            {
                check(back == v, format_args!("{name}_CVAL: wrote {v:#x}, reads {back:#x}"));
            }
        }
        3 => {
            let v = match below(r, 5) {
                0 => below(r, 1 << 20),
                1 => (-(below(r, 1 << 20) as i64)) as u64 & 0xffff_ffff,
                2 => 0x7fff_ffff,
                3 => 0x8000_0000,
                _ => r(),
            };
            let c0 = t.now();
            t.set_tval(v);
            let c1 = t.now();
            let cval = t.cval();
            n += 2;
            let lo = c0.wrapping_add(sext32(v));
            let hi = c1.wrapping_add(sext32(v));
            {
                check(
                    cval.wrapping_sub(lo) <= hi.wrapping_sub(lo),
                    format_args!(
                        "{name}_TVAL: wrote {v:#x} between counts {c0:#x} and {c1:#x}: CVAL {cval:#x}, want {lo:#x}..={hi:#x}"
                    ),
                );
            }
        }
        _ => {
            // Read everything back: TVAL = CVAL - count (32 bits), ISTATUS while enabled.
            let cval = t.cval();
            let c0 = t.now();
            let tv = t.tval();
            let ctl = t.ctl();
            let c1 = t.now();
            n += 3;
            {
                if strict_ctl {
                    check(ctl >> 3 == 0, format_args!("{name}_CTL reads {ctl:#x}: bits above ISTATUS are RES0"));
                }
                check(tv >> 32 == 0, format_args!("{name}_TVAL reads {tv:#x}: bits 63:32 are RES0"));
                // (Only when the distance fits TimerValue comfortably.)
                let (d0, d1) = (cval.wrapping_sub(c0) as i64, cval.wrapping_sub(c1) as i64);
                if d0.unsigned_abs() < 1 << 30 && d1.unsigned_abs() < 1 << 30 {
                    let tv = tv as u32 as i32 as i64;
                    check(
                        tv <= d0 && tv >= d1,
                        format_args!("{name}_TVAL reads {tv} with CVAL {cval:#x} between counts {c0:#x} and {c1:#x}"),
                    );
                }
                // (Only this way round: QEMU computes ISTATUS when the timer is programmed and
                // when its own timer for the deadline runs, so it may still read 0 for a while
                // once the count passed CVAL.)
                if strict_ctl && ctl & timer::CTL_ENABLE != 0 && c1 < cval {
                    check(
                        ctl & timer::CTL_ISTATUS == 0,
                        format_args!("{name}_CTL {ctl:#x}: enabled, count {c1:#x} < CVAL {cval:#x}, but ISTATUS"),
                    );
                }
            }
        }
    }
    n
}

// ---- interrupts after the fuzzing -------------------------------------------------------------

/// Per CPU: interrupts [`on_irq`] took (virtual timer, physical timer, SGIs, others) and
/// spurious acknowledges; the counter when the last virtual timer interrupt was taken.
pub struct IrqCounts {
    pub vtimer: AtomicU64,
    pub ptimer: AtomicU64,
    pub sgis: AtomicU64,
    pub other: AtomicU64,
    pub spurious: AtomicU64,
    pub vtimer_at: AtomicU64,
}

pub static IRQS: [IrqCounts; MAX_CPUS] = [const {
    IrqCounts {
        vtimer: AtomicU64::new(0),
        ptimer: AtomicU64::new(0),
        sgis: AtomicU64::new(0),
        other: AtomicU64::new(0),
        spurious: AtomicU64::new(0),
        vtimer_at: AtomicU64::new(0),
    }
}; MAX_CPUS];

fn bump(c: &AtomicU64) {
    c.store(c.load(Relaxed) + 1, Release);
}

/// The IRQ handler [`irq_check`] installs: acknowledge, count, turn a timer that fired off,
/// end the interrupt. Touches only atomics (per CPU).
pub fn on_irq(_frame: &mut crate::exception::ExceptionFrame, cnt: u64) {
    let g = gic::get();
    let c = &IRQS[smp::cpu_id().min(MAX_CPUS - 1)];
    let iar = g.ack();
    let id = g.intid(iar);
    match id {
        1020.. => {
            bump(&c.spurious);
            return;
        }
        timer::VTIMER_INTID => {
            timer::set_ctl(0);
            c.vtimer_at.store(cnt, Release);
            bump(&c.vtimer);
        }
        30 => {
            set_cntp_ctl(0);
            bump(&c.ptimer);
        }
        0..=15 => bump(&c.sgis),
        _ => bump(&c.other),
    }
    g.eoi(iar);
}

/// What [`irq_check`] saw on this CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct IrqCheck {
    /// Interrupts taken while draining what the fuzzing left pending.
    pub drained: u64,
    /// Whether the armed virtual timer's interrupt arrived in time.
    pub arrived: bool,
    /// Its latency in counter ticks after CVAL (when it arrived).
    pub late: u64,
}

/// On a CPU whose GIC interface the caller set up again (see the module docs): installs
/// [`on_irq`], turns both timers off, enables the virtual timer's PPI, takes for `drain_us`
/// whatever is pending, then arms the virtual timer 1 ms ahead and waits up to `wait_us`
/// for its interrupt. Returns with IRQs masked and the timers off.
pub fn irq_check(g: &Gic, drain_us: u64, wait_us: u64) -> IrqCheck {
    let c = &IRQS[smp::cpu_id().min(MAX_CPUS - 1)];
    let total = || c.vtimer.load(Acquire) + c.ptimer.load(Acquire) + c.sgis.load(Acquire) + c.other.load(Acquire);
    set_irq_handler(on_irq);
    irq_mask();
    timers_off();
    g.set_priority(timer::VTIMER_INTID, gic::DEFAULT_PRIORITY);
    g.enable(timer::VTIMER_INTID);
    let before = total();
    irq_unmask();
    timer::delay_us(drain_us);
    irq_mask();
    let drained = total() - before;
    let seen = c.vtimer.load(Acquire);
    let cval = timer::now() + timer::ticks_from_us(1_000);
    timer::set_cval(cval);
    timer::set_ctl(timer::CTL_ENABLE);
    irq_unmask();
    let arrived = timer::wait_until(wait_us, || c.vtimer.load(Acquire) > seen);
    irq_mask();
    timers_off();
    let late = if arrived { c.vtimer_at.load(Acquire).saturating_sub(cval) } else { 0 };
    IrqCheck { drained, arrived, late }
}
