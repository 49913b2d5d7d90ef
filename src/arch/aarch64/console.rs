//! The hypervisor console: a PL011 UART (the one `/chosen/stdout-path` or `dtuart=` names).
//!
//! Two ways to write:
//!
//! * [`write_str`] / [`write_fmt`]: serialised by a spin lock (SMP-safe), for the logger and
//!   guests' `console_io`;
//! * [`raw_write_fmt`]: no lock, for the panic path and for messages before the MMU is on
//!   (with the MMU off, memory is Device memory and exclusive accesses — what locks are made
//!   of — are not guaranteed to work).
//!
//! The UART is used as the firmware left it (baud rate, line format): like Xen without a
//! `dtuart=...:baud` setting. Receiving is interrupt driven ([`enable_rx`], [`drain_rx`]);
//! what is received goes to [`crate::console::ConsoleInput`].

use crate::sync::{Mutex, rank};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};
use tock_registers::{LocalRegisterCopy, register_bitfields};

register_bitfields! {u32,
    /// Flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// Busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) []
    ],
    /// Control register.
    CR [
        RXE OFFSET(9) NUMBITS(1) [],
        TXE OFFSET(8) NUMBITS(1) [],
        UARTEN OFFSET(0) NUMBITS(1) []
    ],
    /// Interrupt mask set/clear, raw and masked status, and clear registers (one layout).
    INT [
        /// Overrun, break, parity and framing errors.
        OE OFFSET(10) NUMBITS(1) [],
        BE OFFSET(9) NUMBITS(1) [],
        PE OFFSET(8) NUMBITS(1) [],
        FE OFFSET(7) NUMBITS(1) [],
        /// Receive timeout (bytes wait in a FIFO below its trigger level).
        RT OFFSET(6) NUMBITS(1) [],
        /// Transmit and receive FIFO levels.
        TX OFFSET(5) NUMBITS(1) [],
        RX OFFSET(4) NUMBITS(1) []
    ],
    /// Data register (received byte and its error flags).
    DATA [
        OE OFFSET(11) NUMBITS(1) [],
        BE OFFSET(10) NUMBITS(1) [],
        PE OFFSET(9) NUMBITS(1) [],
        FE OFFSET(8) NUMBITS(1) [],
        DATA OFFSET(0) NUMBITS(8) []
    ]
}

/// Register offsets.
const DR: usize = 0x00;
const FR_OFF: usize = 0x18;
const CR_OFF: usize = 0x30;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;

/// A PL011's register window.
#[derive(Clone, Copy)]
struct Pl011(usize);

impl Pl011 {
    fn read(self, off: usize) -> u32 {
        // SAFETY: `self.0` is a PL011 register window the boot code found in the device tree,
        // identity-mapped as Device memory (or the MMU is off); `off` is a register offset.
        unsafe { core::ptr::read_volatile((self.0 + off) as *const u32) }
    }
    fn write(self, off: usize, v: u32) {
        // SAFETY: as for `read`.
        unsafe { core::ptr::write_volatile((self.0 + off) as *mut u32, v) }
    }
    fn fr(self) -> LocalRegisterCopy<u32, FR::Register> {
        LocalRegisterCopy::new(self.read(FR_OFF))
    }
    fn cr(self) -> LocalRegisterCopy<u32, CR::Register> {
        LocalRegisterCopy::new(self.read(CR_OFF))
    }
}

/// The PL011's physical (= virtual) base address; 0 until the boot code found one.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Serialises [`write_str`] callers.
static LOCK: Mutex<()> = Mutex::new(rank::CONSOLE, ());

/// Register window size to map.
pub const PL011_SIZE: u64 = 0x1000;

/// Use the PL011 at `base` from now on. Plain store: callable with the MMU off.
pub fn set_base(base: u64) {
    BASE.store(base as usize, Ordering::Release);
}

pub fn base() -> Option<u64> {
    match BASE.load(Ordering::Acquire) {
        0 => None,
        b => Some(b as u64),
    }
}

fn regs() -> Option<Pl011> {
    let b = BASE.load(Ordering::Acquire);
    (b != 0).then_some(Pl011(b))
}

fn putc(r: Pl011, c: u8) {
    while r.fr().is_set(FR::TXFF) {
        core::hint::spin_loop();
    }
    r.write(DR, c as u32);
}

fn put_bytes(bytes: &[u8]) {
    let Some(r) = regs() else { return };
    for &c in bytes {
        if c == b'\n' {
            putc(r, b'\r');
        }
        putc(r, c);
    }
}

/// Wait until everything written has left the UART.
pub fn flush() {
    if let Some(r) = regs() {
        while r.fr().is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}

/// Interrupt on received bytes (FIFO level and timeout), and receive if the firmware left
/// the receiver off. Returns whether there is a UART.
pub fn enable_rx() -> bool {
    let Some(r) = regs() else { return false };
    let _g = LOCK.lock();
    let cr = r.cr();
    if !cr.is_set(CR::RXE) {
        let mut c = cr;
        c.modify(CR::RXE::SET);
        r.write(CR_OFF, c.get());
    }
    // Bytes already waiting keep their interrupt status: unmasking raises it, and the
    // handler takes them (clearing it here could leave them stuck in a full FIFO that never
    // interrupts again).
    r.write(ICR, (INT::OE::SET + INT::BE::SET + INT::PE::SET + INT::FE::SET).value);
    r.write(IMSC, r.read(IMSC) | (INT::RX::SET + INT::RT::SET).value);
    true
}

/// Take every received byte (`f` gets each; bytes received with a framing, parity or break
/// error are dropped) and acknowledge the receive interrupts.
pub fn drain_rx(f: &mut dyn FnMut(u8)) {
    let Some(r) = regs() else { return };
    // Acknowledge first: a byte arriving after the FIFO is found empty raises a new one.
    r.write(ICR, (INT::RX::SET + INT::RT::SET + INT::OE::SET).value);
    // Bounded: a stream faster than this loop cannot keep the CPU here.
    for _ in 0..256 {
        if r.fr().is_set(FR::RXFE) {
            break;
        }
        let d: LocalRegisterCopy<u32, DATA::Register> = LocalRegisterCopy::new(r.read(DR));
        if !(d.is_set(DATA::FE) || d.is_set(DATA::PE) || d.is_set(DATA::BE)) {
            f(d.read(DATA::DATA) as u8);
        }
    }
}

/// Is the UART enabled for transmission (as the firmware left it)?
pub fn tx_enabled() -> bool {
    regs().is_some_and(|r| r.cr().is_set(CR::UARTEN) && r.cr().is_set(CR::TXE))
}

struct Raw;
impl Write for Raw {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        put_bytes(s.as_bytes());
        Ok(())
    }
}

/// Write without taking the console lock (panic path, MMU off).
pub fn raw_write_fmt(args: fmt::Arguments) {
    let _ = Raw.write_fmt(args);
}

/// Write bytes under the console lock.
pub fn write_bytes(b: &[u8]) {
    let _g = LOCK.lock();
    put_bytes(b);
}

pub fn write_str(s: &str) {
    write_bytes(s.as_bytes());
}

/// A piece of domain `dom`'s output (see [`crate::hw::Hw::console_write`]), in one go under
/// the console lock.
pub fn write_guest(dom: crate::types::DomId, text: &[u8], starts: bool, ends: bool) {
    let _g = LOCK.lock();
    if starts {
        let _ = Raw.write_fmt(format_args!("(d{dom}) "));
    }
    put_bytes(text);
    if ends {
        put_bytes(b"\n");
    }
}

/// Formatted write under the console lock (one message is never interleaved with another).
pub fn write_fmt(args: fmt::Arguments) {
    let _g = LOCK.lock();
    let _ = Raw.write_fmt(args);
}

/// Print on the console without the lock; usable before the MMU is on.
#[macro_export]
macro_rules! early_println {
    ($($arg:tt)*) => {
        $crate::arch::console::raw_write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}
