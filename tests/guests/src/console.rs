//! Console output through `HYPERVISOR_console_io(CONSOLEIO_write)`; no UART access.
//!
//! `print!`/`println!` format into a small stack buffer and hand it to the hypervisor when it
//! is full and at the end of the call, so a line normally goes out in one hypercall.
//!
//! With several CPUs, every write holds a console lock (re-entrant, so an exception handler
//! can print while its CPU is in the middle of a line), so lines from different CPUs never
//! interleave. Before the MMU is on the lock is skipped (see [`crate::smp`]).

use crate::smp::ReentrantLock;
use core::fmt::{self, Write};

static LOCK: ReentrantLock = ReentrantLock::new();

/// Runs `f` holding the console lock: for output made of several writes (or raw
/// `console_io` hypercalls) that must not be split by another CPU's.
pub fn with_lock<R>(f: impl FnOnce() -> R) -> R {
    LOCK.with(f)
}

/// Writes `s` as is.
pub fn write_str(s: &str) {
    write_bytes(s.as_bytes());
}

/// Writes `bytes` as is (the hypervisor may accept fewer than asked; retry the rest).
pub fn write_bytes(bytes: &[u8]) {
    LOCK.with(|| write_bytes_locked(bytes));
}

fn write_bytes_locked(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let rc = crate::hypercall::console_write(bytes);
        if rc <= 0 {
            return;
        }
        bytes = &bytes[(rc as usize).min(bytes.len())..];
    }
}

struct LineWriter {
    buf: [u8; 256],
    len: usize,
}

impl LineWriter {
    fn flush(&mut self) {
        write_bytes(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == self.buf.len() {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Formats `args` to the console (used by the macros), as one unit.
pub fn print_fmt(args: fmt::Arguments) {
    LOCK.with(|| {
        let mut w = LineWriter { buf: [0; 256], len: 0 };
        let _ = w.write_fmt(args);
        w.flush();
    })
}

/// Prints to the hypervisor console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the hypervisor console.
#[macro_export]
macro_rules! println {
    () => { $crate::console::write_str("\n") };
    ($($arg:tt)*) => { $crate::console::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}
