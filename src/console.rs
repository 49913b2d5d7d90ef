//! The console as guests see it.
//!
//! **Output** (`CONSOLEIO_write`, [`GuestConsole`]), as Xen does it: the hardware domain's
//! bytes go out at once and as written (it may be an interactive shell: its prompt has no
//! newline, its line editing uses escape sequences); other domains' bytes are collected into
//! lines, control characters other than tab and carriage return shown as `?`, and each
//! complete line is printed (a line longer than the buffer is cut into several). Either way
//! the arch layer starts each line with a `(dN) ` prefix
//! ([`crate::hw::Hw::console_write`]).
//!
//! **Input** ([`ConsoleInput`]), as Xen 4.17 does it: bytes received on the hypervisor's UART
//! go to the domain that has the input focus (dom0 at boot) through a ring of
//! [`RX_RING`] bytes that `CONSOLEIO_read` drains, with `VIRQ_CONSOLE` sent for every byte
//! (also when the ring is full and the byte is dropped: the guest then reads what is there).
//! Ctrl-A typed three times in a row switches the focus between dom0 and the hypervisor (whose
//! keys are its debug keys); fewer Ctrl-As followed by another byte are delivered as typed.
//! Boot-time domUs have no emulated UART, so unlike Xen's rotation the focus never goes to one.

use crate::hw::Hw;
use crate::sync::{Mutex, rank};
use crate::types::DomId;

/// Longest line kept before it is printed anyway.
pub const LINE_MAX: usize = 1024;

struct Line {
    len: usize,
    buf: [u8; LINE_MAX],
    /// Direct output: the next byte starts a line.
    at_start: bool,
}

/// One domain's console output.
pub struct GuestConsole {
    dom: DomId,
    /// Bytes go out as written (the hardware domain), not in sanitised lines.
    direct: bool,
    line: Mutex<Line>,
}

impl GuestConsole {
    pub fn new(dom: DomId, direct: bool) -> GuestConsole {
        GuestConsole {
            dom,
            direct,
            line: Mutex::new(rank::GUEST_CONSOLE, Line { len: 0, buf: [0; LINE_MAX], at_start: true }),
        }
    }

    /// Output `bytes`.
    pub fn write(&self, bytes: &[u8], hw: &dyn Hw) {
        let mut l = self.line.lock();
        if self.direct {
            for piece in bytes.split_inclusive(|&b| b == b'\n') {
                let (text, ends) = match piece.split_last() {
                    Some((b'\n', text)) => (text, true),
                    _ => (piece, false),
                };
                hw.console_write(self.dom, text, l.at_start, ends);
                l.at_start = ends;
            }
            return;
        }
        for &b in bytes {
            if b == b'\n' || l.len == LINE_MAX {
                self.emit(&mut l, hw);
            }
            if b != b'\n' {
                let n = l.len;
                l.buf[n] = if b == b'\r' || b == b'\t' || b == b' ' || b.is_ascii_graphic() { b } else { b'?' };
                l.len += 1;
            }
        }
    }

    /// End what is left of an unfinished line (the domain is going away).
    pub fn flush(&self, hw: &dyn Hw) {
        let mut l = self.line.lock();
        if self.direct {
            if !l.at_start {
                hw.console_write(self.dom, b"", false, true);
                l.at_start = true;
            }
        } else if l.len != 0 {
            self.emit(&mut l, hw);
        }
    }

    fn emit(&self, l: &mut Line, hw: &dyn Hw) {
        let mut text = &l.buf[..l.len];
        while let Some((b'\r', rest)) = text.split_last() {
            text = rest;
        }
        hw.console_write(self.dom, text, true, true);
        l.len = 0;
    }
}

/// Size of the input ring (Xen's: bytes beyond wait in the UART or are lost).
pub const RX_RING: usize = 128;
/// The byte that, typed three times, switches the input focus (Ctrl-A).
pub const SWITCH_CHAR: u8 = 0x01;

/// Who gets what is typed on the hypervisor's console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// Dom0 (through `CONSOLEIO_read` and `VIRQ_CONSOLE`).
    Dom0,
    /// The hypervisor's debug keys.
    Hypervisor,
}

/// What a received byte calls for; the caller acts on it once [`ConsoleInput::receive`] has
/// returned (no lock held).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxEvent {
    /// Bytes are (or were, and the ring is full) waiting for dom0: send it `VIRQ_CONSOLE`.
    NotifyDom0,
    /// A debug key for the hypervisor.
    Key(u8),
    /// The focus moved (print Xen's `*** Serial input to ...` line).
    Switched(Focus),
}

struct Rx {
    ring: [u8; RX_RING],
    /// Free-running producer and consumer counts.
    prod: u32,
    cons: u32,
    /// Ctrl-As seen in a row, not yet delivered.
    held: u8,
    focus: Focus,
}

/// The hypervisor's console input (one per machine).
pub struct ConsoleInput {
    rx: Mutex<Rx>,
}

impl Default for ConsoleInput {
    fn default() -> Self {
        Self::new()
    }
}

impl ConsoleInput {
    pub fn new() -> ConsoleInput {
        ConsoleInput {
            rx: Mutex::new(
                rank::CONSOLE_INPUT,
                Rx { ring: [0; RX_RING], prod: 0, cons: 0, held: 0, focus: Focus::Dom0 },
            ),
        }
    }

    pub fn focus(&self) -> Focus {
        self.rx.lock().focus
    }

    /// One byte from the UART; `out` gets what it calls for, in order.
    pub fn receive(&self, byte: u8, out: &mut dyn FnMut(RxEvent)) {
        let mut ev: [Option<RxEvent>; 4] = [None; 4];
        let mut n = 0;
        {
            let mut rx = self.rx.lock();
            if byte == SWITCH_CHAR {
                rx.held += 1;
                if rx.held == 3 {
                    rx.held = 0;
                    rx.focus = match rx.focus {
                        Focus::Dom0 => Focus::Hypervisor,
                        Focus::Hypervisor => Focus::Dom0,
                    };
                    ev[0] = Some(RxEvent::Switched(rx.focus));
                }
            } else {
                // Ctrl-As that did not make three are input like any other byte.
                let held = core::mem::take(&mut rx.held);
                for b in core::iter::repeat_n(SWITCH_CHAR, held as usize).chain([byte]) {
                    let e = rx.deliver(b);
                    // One notification covers the bytes delivered together.
                    if e != RxEvent::NotifyDom0 || n == 0 || ev[n - 1] != Some(e) {
                        ev[n] = Some(e);
                        n += 1;
                    }
                }
            }
        }
        ev.iter().flatten().for_each(|&e| out(e));
    }

    /// `CONSOLEIO_read`, first step: copy up to `buf.len()` waiting bytes into `buf`, leaving
    /// them waiting; returns where they start (for [`Self::consume`]) and how many.
    pub fn peek(&self, buf: &mut [u8]) -> (u32, usize) {
        let rx = self.rx.lock();
        let avail = rx.prod.wrapping_sub(rx.cons) as usize;
        let n = avail.min(buf.len());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = rx.ring[rx.cons.wrapping_add(i as u32) as usize % RX_RING];
        }
        (rx.cons, n)
    }

    /// Second step, once the bytes reached the guest: they are taken. If another reader took
    /// bytes in between (two vCPUs reading at once), nothing is taken twice: only what is
    /// still waiting of `from..from + n` goes.
    pub fn consume(&self, from: u32, n: usize) {
        let mut rx = self.rx.lock();
        let end = from.wrapping_add(n as u32);
        // `end` is at most `prod`; move `cons` forward to it unless it is already past.
        if end.wrapping_sub(rx.cons) as i32 > 0 {
            rx.cons = end;
        }
    }

    /// Take up to `buf.len()` waiting bytes; how many.
    pub fn read(&self, buf: &mut [u8]) -> usize {
        let (from, n) = self.peek(buf);
        self.consume(from, n);
        n
    }

    /// Bytes waiting for dom0.
    pub fn pending(&self) -> usize {
        let rx = self.rx.lock();
        rx.prod.wrapping_sub(rx.cons) as usize
    }
}

impl Rx {
    fn deliver(&mut self, b: u8) -> RxEvent {
        match self.focus {
            Focus::Hypervisor => RxEvent::Key(b),
            Focus::Dom0 => {
                if self.prod.wrapping_sub(self.cons) as usize != RX_RING {
                    self.ring[self.prod as usize % RX_RING] = b;
                    self.prod = self.prod.wrapping_add(1);
                }
                RxEvent::NotifyDom0
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::testing::FakeHw;
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    fn run(hw: &FakeHw, c: &GuestConsole, b: &[u8]) -> Vec<String> {
        c.write(b, hw);
        hw.take_lines().into_iter().map(|(d, l)| format!("d{d}: {l}")).collect()
    }

    #[test]
    fn domu_lines_are_collected_and_sanitised() {
        let hw = FakeHw::default();
        let c = GuestConsole::new(3, false);
        assert!(run(&hw, &c, b"hel").is_empty());
        assert_eq!(run(&hw, &c, b"lo\r\nwor\x1bld\n\n"), ["d3: hello", "d3: wor?ld", "d3: "]);
        assert_eq!(run(&hw, &c, &[b'x'; LINE_MAX + 3]).len(), 1, "a full buffer is printed");
        c.flush(&hw);
        assert_eq!(hw.take_lines(), [(3, "xxx".to_string())]);
    }

    #[test]
    fn dom0_output_goes_out_at_once_and_as_written() {
        let hw = FakeHw::default();
        let c = GuestConsole::new(0, true);
        c.write(b"~ # ", &hw);
        assert_eq!(hw.partial_line(0), "~ # ", "a prompt without a newline is out");
        assert_eq!(run(&hw, &c, b"ls\x1b[K\r\nbin\n"), ["d0: ~ # ls\x1b[K\r", "d0: bin"]);
        c.write(b"half", &hw);
        c.flush(&hw);
        assert_eq!(hw.take_lines(), [(0, "half".to_string())]);
    }

    fn rx(c: &ConsoleInput, bytes: &[u8]) -> Vec<RxEvent> {
        let mut v = Vec::new();
        for &b in bytes {
            c.receive(b, &mut |e| v.push(e));
        }
        v
    }

    fn read_all(c: &ConsoleInput) -> Vec<u8> {
        let mut buf = [0u8; 7]; // smaller than what waits: several reads
        let mut v = Vec::new();
        loop {
            let n = c.read(&mut buf);
            if n == 0 {
                return v;
            }
            v.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn input_goes_to_dom0_with_a_notification_per_byte() {
        let c = ConsoleInput::new();
        assert_eq!(c.focus(), Focus::Dom0, "dom0 has the focus at boot");
        assert_eq!(rx(&c, b"ls -l\r"), [RxEvent::NotifyDom0; 6]);
        assert_eq!(c.pending(), 6);
        assert_eq!(read_all(&c), b"ls -l\r");
        assert_eq!(c.read(&mut [0; 4]), 0, "drained");
        // Peeked bytes stay until consumed; a consume of bytes already gone changes nothing.
        rx(&c, b"abc");
        let mut b = [0u8; 2];
        let (from, n) = c.peek(&mut b);
        assert_eq!((&b[..n], c.pending()), (&b"ab"[..], 3));
        c.consume(from, n);
        c.consume(from, n);
        assert_eq!(read_all(&c), b"c");
    }

    #[test]
    fn a_full_ring_drops_bytes_but_still_notifies() {
        let c = ConsoleInput::new();
        let bytes: Vec<u8> = (0..RX_RING + 5).map(|i| b'a' + (i % 26) as u8).collect();
        assert_eq!(rx(&c, &bytes).len(), RX_RING + 5);
        assert_eq!(read_all(&c), bytes[..RX_RING], "the first RX_RING bytes, in order");
        // The ring wraps correctly after draining.
        rx(&c, b"xyz");
        assert_eq!(read_all(&c), b"xyz");
    }

    #[test]
    fn three_ctrl_a_switch_the_focus_fewer_are_input() {
        let c = ConsoleInput::new();
        assert_eq!(rx(&c, &[SWITCH_CHAR; 3]), [RxEvent::Switched(Focus::Hypervisor)]);
        assert_eq!(rx(&c, b"h"), [RxEvent::Key(b'h')]);
        assert_eq!(c.pending(), 0, "keys for the hypervisor do not reach dom0");
        assert_eq!(rx(&c, &[SWITCH_CHAR, SWITCH_CHAR, b'q']), [RxEvent::Key(1), RxEvent::Key(1), RxEvent::Key(b'q')]);
        assert_eq!(rx(&c, &[SWITCH_CHAR; 3]), [RxEvent::Switched(Focus::Dom0)]);
        assert_eq!(rx(&c, &[SWITCH_CHAR, b'x']), [RxEvent::NotifyDom0], "one notification for both bytes");
        assert_eq!(read_all(&c), [SWITCH_CHAR, b'x']);
        // Six in a row: there and back.
        let ev = rx(&c, &[SWITCH_CHAR; 6]);
        assert_eq!(ev, [RxEvent::Switched(Focus::Hypervisor), RxEvent::Switched(Focus::Dom0)]);
    }
}
