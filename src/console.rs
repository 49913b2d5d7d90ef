//! A domain's console output (`CONSOLEIO_write`): bytes are collected into lines and each
//! complete line goes to the hypervisor's console ([`crate::hw::Hw::console_line`]), where the
//! arch layer prints it with a `(dN) ` prefix. Control characters other than tab and carriage
//! return are shown as `?`; a line longer than the buffer is cut into several.

use crate::sync::{Mutex, rank};

/// Longest line kept before it is printed anyway.
pub const LINE_MAX: usize = 1024;

struct Line {
    len: usize,
    buf: [u8; LINE_MAX],
}

pub struct GuestConsole {
    line: Mutex<Line>,
}

impl Default for GuestConsole {
    fn default() -> Self {
        Self::new()
    }
}

impl GuestConsole {
    pub fn new() -> GuestConsole {
        GuestConsole { line: Mutex::new(rank::GUEST_CONSOLE, Line { len: 0, buf: [0; LINE_MAX] }) }
    }

    /// Add `bytes`; `out` receives every line they complete.
    pub fn write(&self, bytes: &[u8], out: &mut dyn FnMut(&str)) {
        let mut l = self.line.lock();
        for &b in bytes {
            if b == b'\n' || l.len == LINE_MAX {
                emit(&mut l, out);
            }
            if b != b'\n' {
                let n = l.len;
                l.buf[n] = if b == b'\r' || b == b'\t' || b == b' ' || b.is_ascii_graphic() { b } else { b'?' };
                l.len += 1;
            }
        }
    }

    /// Print what is left of an unfinished line (the domain is going away).
    pub fn flush(&self, out: &mut dyn FnMut(&str)) {
        let mut l = self.line.lock();
        if l.len != 0 {
            emit(&mut l, out);
        }
    }
}

fn emit(l: &mut Line, out: &mut dyn FnMut(&str)) {
    // Only ASCII is stored, so the bytes are UTF-8.
    let text = core::str::from_utf8(&l.buf[..l.len]).unwrap_or("").trim_end_matches('\r');
    out(text);
    l.len = 0;
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn run(c: &GuestConsole, b: &[u8]) -> Vec<String> {
        let mut v = Vec::new();
        c.write(b, &mut |l| v.push(l.to_string()));
        v
    }

    #[test]
    fn lines_are_collected_and_sanitised() {
        let c = GuestConsole::new();
        assert!(run(&c, b"hel").is_empty());
        assert_eq!(run(&c, b"lo\r\nwor\x1bld\n\n"), ["hello", "wor?ld", ""]);
        assert_eq!(run(&c, &[b'x'; LINE_MAX + 3]).len(), 1, "a full buffer is printed");
        let mut left = Vec::new();
        c.flush(&mut |l| left.push(l.len()));
        assert_eq!(left, [3]);
    }
}
