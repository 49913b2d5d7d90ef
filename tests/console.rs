//! Console input end to end, on the simulated machine: bytes received on the hypervisor's
//! UART ([`granite::input::receive`]) reach dom0 as Xen delivers them (a `VIRQ_CONSOLE` event
//! for each, `CONSOLEIO_read` draining the ring), Ctrl-A ×3 takes them away from dom0 and
//! gives them back, and `CONSOLEIO_read`'s bad arguments get Xen's answers.

use granite::console::{Focus, RX_RING, SWITCH_CHAR};
use granite::hv::Options;
use granite::input;
use granite::testing::*;
use granite::tlb::NoTlb;
use std::sync::Arc;
use xen_abi::console::CONSOLEIO_READ;
use xen_abi::errno::*;
use xen_abi::evtchn::VIRQ_CONSOLE;
use xen_abi::hypercall as hc;

fn read(g: &Guest, hv: &granite::hv::Hypervisor, buf: u64, count: u64) -> i64 {
    g.ret(hv, hc::CONSOLE_IO, [CONSOLEIO_READ, count, buf, 0, 0])
}

fn bytes_at(g: &Guest, hv: &granite::hv::Hypervisor, gpa: u64, n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| g.get::<u8>(hv, gpa + i)).collect()
}

#[test]
fn typed_bytes_reach_dom0_through_virq_console_and_consoleio_read() {
    let m = HostMachine::new(4096, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let g = Guest::new(hv, 0, 4);
    let port = g.bind_virq(hv, VIRQ_CONSOLE, 0);
    assert!(port > 0, "bind_virq: {port}");
    let port = port as u32;
    let before = g.upcalls(0);
    for &b in b"echo hi\r" {
        input::receive(hv, b);
    }
    assert_eq!(g.port_bits(hv, port), (true, false), "VIRQ_CONSOLE pending, not masked");
    assert!(g.upcalls(0) > before, "dom0's vCPU 0 got the upcall");
    // Linux reads with a small buffer until nothing is left.
    assert_eq!(read(&g, hv, ARRAY, 5), 5);
    assert_eq!(read(&g, hv, ARRAY + 5, 64), 3);
    assert_eq!(bytes_at(&g, hv, ARRAY, 8), b"echo hi\r");
    assert_eq!(read(&g, hv, ARRAY, 64), 0, "drained");
    // A count that does not fit the signed result (Xen: -E2BIG); a bad buffer (-EFAULT) takes
    // nothing away.
    input::receive(hv, b'x');
    assert_eq!(read(&g, hv, ARRAY, 0x8000_0000), -E2BIG);
    assert_eq!(read(&g, hv, 0xdead_0000_0000, 4), -EFAULT);
    assert_eq!(read(&g, hv, ARRAY, 0x1_0000_0001), 1, "the count is 32 bits: 1");
    assert_eq!(g.get::<u8>(hv, ARRAY), b'x');
}

#[test]
fn ctrl_a_three_times_keeps_input_from_dom0_until_switched_back() {
    let m = HostMachine::new(4096, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let g = Guest::new(hv, 0, 4);
    let port = g.bind_virq(hv, VIRQ_CONSOLE, 0) as u32;
    for _ in 0..3 {
        input::receive(hv, SWITCH_CHAR);
    }
    assert_eq!(hv.console_in.focus(), Focus::Hypervisor);
    assert_eq!(g.port_bits(hv, port), (false, false), "no event for the switch");
    for &b in b"hqmi?" {
        input::receive(hv, b); // debug keys: printed by the hypervisor, not given to dom0
    }
    assert_eq!(g.port_bits(hv, port), (false, false));
    assert_eq!(read(&g, hv, ARRAY, 64), 0);
    for _ in 0..3 {
        input::receive(hv, SWITCH_CHAR);
    }
    assert_eq!(hv.console_in.focus(), Focus::Dom0);
    // A full ring: later bytes are dropped, the notification still comes.
    for i in 0..RX_RING + 10 {
        input::receive(hv, b'a' + (i % 26) as u8);
    }
    assert_eq!(read(&g, hv, ARRAY, 4096), RX_RING as i64);
    assert_eq!(g.port_bits(hv, port), (true, false));
}
