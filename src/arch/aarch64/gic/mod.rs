//! The interrupt controller, behind one interface whatever its version.
//!
//! Everything comes from the device tree ([`crate::dt::Gic`]): the distributor, the CPU
//! interface and, for virtualization, the hypervisor control interface (GICH) and the virtual
//! CPU interface (GICV). [`init`] picks the driver once, on the boot CPU; the rest of the
//! hypervisor then uses the free functions here (or [`driver`]), which reach the hardware of
//! the calling CPU:
//!
//! | call | what |
//! |---|---|
//! | [`init_cpu`] | per-CPU: this CPU's interface (and on GICv2 its interface number for SGIs) |
//! | [`send_sgi`] | an SGI to the CPU with a given MPIDR |
//! | [`ack`] / [`eoi`] | acknowledge the highest-priority pending interrupt / end it |
//! | [`priority_drop`] | end a guest's interrupt at EL2 but leave it active: the guest's EOI, through a hardware-linked list register, deactivates it |
//! | [`enable`] / [`disable`] | one interrupt (SGIs and PPIs: of the calling CPU) |
//! | [`irq_op`] | enable/disable, trigger, route, pending and active state of an SPI a guest owns |
//! | [`init_virt`] | per-CPU: the virtualization interface (list registers) |
//! | [`read_lr`] / [`write_lr`] / [`set_underflow`] / [`vpmr`] | this CPU's list registers and virtual CPU interface |
//!
//! The CPU interface runs with EOImode 1 (as Xen's): an EOI only drops the running priority,
//! a separate deactivation ends the interrupt; [`eoi`] does both for the hypervisor's own
//! interrupts.
//!
//! Nothing is enabled by [`init`]: a caller enables what it handles. Physical interrupts are
//! taken at EL2 while a guest runs (HCR_EL2.IMO), so an enabled interrupt nobody handles
//! would stop the machine.
//!
//! Versions: [`v2`] (GIC-400 and other GICv2: the Raspberry Pi 4), [`v3`] (QEMU virt).

pub mod v2;
pub mod v3;

use crate::dt::{GicVersion, Platform, Region};
use crate::hw::IrqOp;
use crate::vgic::Lr;
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use core::fmt;

/// An acknowledged interrupt, as [`ack`] returns it: give it back unchanged to [`eoi`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Irq {
    /// The interrupt ID (SGI 0-15, PPI 16-31, SPI 32-1019).
    pub intid: u32,
    /// What the acknowledge register said (on GICv2 it names the CPU that sent an SGI, and
    /// the end of interrupt must repeat it).
    raw: u32,
}

/// What the virtualization interface offers, from [`init_virt`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtIf {
    /// Number of list registers.
    pub list_registers: u32,
    /// Where a guest's virtual CPU interface is (GICv2 GICV), if the GIC has one.
    pub vcpu_if: Option<Region>,
}

/// Why the GIC cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicError {
    /// The device tree describes no interrupt controller.
    NoGic,
    /// A region the driver needs is missing from the device tree.
    Missing(&'static str),
    /// The distributor does not answer like a GIC of that version.
    NotAGic,
    /// The target CPU has no known interface (never ran [`init_cpu`]).
    UnknownCpu(u64),
    /// The SGI the boot CPU sent itself at [`init`] never arrived.
    SelfTest(&'static str),
}

impl fmt::Display for GicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GicError::NoGic => write!(f, "no interrupt controller in the device tree"),
            GicError::Missing(what) => write!(f, "the device tree gives no {what}"),
            GicError::NotAGic => write!(f, "the distributor does not identify as a GIC"),
            GicError::UnknownCpu(m) => write!(f, "no GIC CPU interface known for MPIDR {m:#x}"),
            GicError::SelfTest(why) => write!(f, "SGI self-test failed: {why}"),
        }
    }
}

/// What every GIC version provides. Methods act on the calling CPU's interface.
pub trait GicDriver: Sync {
    fn version(&self) -> GicVersion;
    /// Set up the calling CPU's interface (priority mask open, enabled); every CPU, once,
    /// before it uses anything else here.
    fn init_cpu(&self);
    /// Make SGI `sgi` (0-15) pending on the CPU with affinity `mpidr`.
    fn send_sgi(&self, mpidr: u64, sgi: u32) -> Result<(), GicError>;
    /// Acknowledge the highest-priority pending interrupt; `None` if there is none.
    fn ack(&self) -> Option<Irq>;
    /// End an acknowledged interrupt (priority drop and deactivation).
    fn eoi(&self, irq: Irq);
    /// Drop the running priority of an acknowledged interrupt, leaving it active.
    fn priority_drop(&self, irq: Irq);
    /// An operation on SPI `intid` (a guest's; `Route` names the target CPU's MPIDR).
    fn irq_op(&self, intid: u32, op: IrqOp, target_mpidr: u64);
    /// List register `n` of the calling CPU.
    fn read_lr(&self, n: usize) -> Lr;
    fn write_lr(&self, n: usize, lr: &Lr);
    /// Ask (or stop asking) for the underflow maintenance interrupt.
    fn set_underflow(&self, on: bool);
    /// The running vCPU's virtual priority mask.
    fn vpmr(&self) -> u8;
    /// The maintenance interrupt's INTID.
    fn maintenance_irq(&self) -> u32;
    /// Interrupt lines (INTIDs below this exist) and GICD_TYPER.IDbits.
    fn lines(&self) -> u32;
    fn id_bits(&self) -> u32;
    /// Forward interrupt `intid` (SGIs and PPIs: of the calling CPU).
    fn enable(&self, intid: u32);
    fn disable(&self, intid: u32);
    /// Set up the calling CPU's virtualization interface: empty list registers, virtual CPU
    /// interface enabled. `None` if the GIC has none.
    fn init_virt(&self) -> Option<VirtIf>;
}

/// A device's register map `T` (a tock `register_structs!` type) at a fixed address, the way
/// the drivers hold their registers: a `Sync` handle that derefs to the map.
pub struct Mmio<T> {
    base: usize,
    _map: core::marker::PhantomData<fn() -> T>,
}

impl<T> Mmio<T> {
    /// # Safety
    /// `base` must be the start of a register window of that device type, from the device
    /// tree, mapped as Device memory in the EL2 map for the rest of the hypervisor's life and
    /// at least `size_of::<T>()` bytes long.
    pub const unsafe fn new(base: u64) -> Mmio<T> {
        Mmio { base: base as usize, _map: core::marker::PhantomData }
    }
    pub fn base(&self) -> u64 {
        self.base as u64
    }
}

impl<T> core::ops::Deref for Mmio<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `new`'s contract: the window is mapped for good; the register types are
        // volatile cells, so the reference is only ever used for volatile accesses.
        unsafe { &*(self.base as *const T) }
    }
}

static DRIVER: spin::Once<&'static dyn GicDriver> = spin::Once::new();

/// On the boot CPU, once: find the driver for the device tree's GIC, initialise the
/// distributor (every interrupt disabled), this CPU's interface (with an SGI sent to itself
/// and taken back as a check) and its virtualization interface. Returns the driver and what
/// the virtualization interface offers.
pub fn init(plat: &Platform) -> Result<(&'static dyn GicDriver, Option<VirtIf>), GicError> {
    let g = plat.gic.as_ref().ok_or(GicError::NoGic)?;
    let d: &'static dyn GicDriver = match g.version {
        GicVersion::V2 => v2::GicV2::init(g)?,
        GicVersion::V3 => v3::GicV3::init(g)?,
    };
    let d = *DRIVER.call_once(|| d);
    d.init_cpu();
    self_test(d, MPIDR_EL1.get())?;
    Ok((d, d.init_virt()))
}

/// The SGI one CPU sends another to make it look at its vCPU's state (a domain going down).
pub const SGI_KICK: u32 = 1;
/// The SGI the boot check uses.
pub const SGI_SELF_TEST: u32 = 15;

/// Send [`SGI_SELF_TEST`] to this CPU, take it (with interrupts masked: it is only read from
/// the acknowledge register, never taken as an exception) and end it.
fn self_test(d: &dyn GicDriver, mpidr: u64) -> Result<(), GicError> {
    d.enable(SGI_SELF_TEST);
    let r = (|| {
        d.send_sgi(mpidr, SGI_SELF_TEST)?;
        for _ in 0..100_000 {
            if let Some(irq) = d.ack() {
                d.eoi(irq);
                return if irq.intid == SGI_SELF_TEST {
                    Ok(())
                } else {
                    Err(GicError::SelfTest("another interrupt was pending"))
                };
            }
            core::hint::spin_loop();
        }
        Err(GicError::SelfTest("not delivered"))
    })();
    d.disable(SGI_SELF_TEST);
    r
}

/// The driver [`init`] chose.
pub fn driver() -> Option<&'static dyn GicDriver> {
    DRIVER.get().copied()
}

fn d() -> &'static dyn GicDriver {
    driver().expect("GIC used before arch::gic::init")
}

/// See [`GicDriver::init_cpu`].
pub fn init_cpu() {
    d().init_cpu()
}
/// See [`GicDriver::send_sgi`].
pub fn send_sgi(mpidr: u64, sgi: u32) -> Result<(), GicError> {
    d().send_sgi(mpidr, sgi)
}
/// See [`GicDriver::ack`].
pub fn ack() -> Option<Irq> {
    d().ack()
}
/// See [`GicDriver::eoi`].
pub fn eoi(irq: Irq) {
    d().eoi(irq)
}
/// See [`GicDriver::enable`].
pub fn enable(intid: u32) {
    d().enable(intid)
}
/// See [`GicDriver::disable`].
pub fn disable(intid: u32) {
    d().disable(intid)
}
/// See [`GicDriver::init_virt`].
pub fn init_virt() -> Option<VirtIf> {
    d().init_virt()
}
/// See [`GicDriver::priority_drop`].
pub fn priority_drop(irq: Irq) {
    d().priority_drop(irq)
}
/// See [`GicDriver::irq_op`].
pub fn irq_op(intid: u32, op: IrqOp, target_mpidr: u64) {
    d().irq_op(intid, op, target_mpidr)
}
/// See [`GicDriver::read_lr`].
pub fn read_lr(n: usize) -> Lr {
    d().read_lr(n)
}
/// See [`GicDriver::write_lr`].
pub fn write_lr(n: usize, lr: &Lr) {
    d().write_lr(n, lr)
}
/// See [`GicDriver::set_underflow`].
pub fn set_underflow(on: bool) {
    d().set_underflow(on)
}
/// See [`GicDriver::vpmr`].
pub fn vpmr() -> u8 {
    d().vpmr()
}
