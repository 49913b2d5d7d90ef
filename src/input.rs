//! Bytes typed on the hypervisor's console: [`receive`] hands each to
//! [`crate::console::ConsoleInput`] and does what it calls for: `VIRQ_CONSOLE` to dom0, the
//! focus switch message, or one of the hypervisor's debug keys.
//!
//! The debug keys are a few of Xen's, answering the same questions: `h` lists the keys, `q`
//! dumps the domains and their vCPUs, `m` the memory, `i` the physical interrupts given to
//! domains. Other keys print nothing but a hint.

use crate::console::{Focus, RxEvent, SWITCH_CHAR};
use crate::hv::Hypervisor;
use crate::types::DomId;
use log::info;

/// One byte received on the hypervisor's console.
pub fn receive(hv: &Hypervisor, byte: u8) {
    hv.console_in.receive(byte, &mut |e| match e {
        RxEvent::NotifyDom0 => hv.notify_console_input(),
        RxEvent::Key(k) => handle(hv, k),
        RxEvent::Switched(f) => switched(f),
    });
}

/// The focus line, as Xen prints it (`*** Serial input to DOM0 (type 'CTRL-a' three times to
/// switch input)`), also at boot.
pub fn switched(f: Focus) {
    let to = match f {
        Focus::Dom0 => "DOM0",
        Focus::Hypervisor => "granite",
    };
    info!("*** Serial input to {to} (type 'CTRL-{}' three times to switch input)", (SWITCH_CHAR + b'a' - 1) as char);
}

/// Every key, with its description (the `h` list).
pub const KEYS: &[(u8, &str)] = &[
    (b'h', "list the debug keys"),
    (b'i', "dump the physical interrupts routed to domains"),
    (b'm', "dump memory: pages per domain"),
    (b'q', "dump the domains and their vCPUs"),
];

/// Act on `key`; the output goes to the hypervisor's log.
pub fn handle(hv: &Hypervisor, key: u8) {
    match key {
        b'h' => {
            info!("'h' pressed -> showing installed handlers");
            for (k, what) in KEYS {
                info!(" key '{}' - {}", *k as char, what);
            }
        }
        b'q' => {
            info!("'q' pressed -> dumping domain info");
            for d in hv.domains() {
                let pages = hv.mm.pages_of(d.id);
                info!(
                    "General information for domain {}: {} vCPUs, {} domheap + {} shared pages{}{}",
                    d.id,
                    d.vcpus.len(),
                    pages.domheap.load(core::sync::atomic::Ordering::Relaxed),
                    pages.xenheap.load(core::sync::atomic::Ordering::Relaxed),
                    if d.privileged { ", privileged" } else { "" },
                    if d.direct_map { ", direct-mapped" } else { "" },
                );
                for v in &d.vcpus {
                    info!("    VCPU{}: CPU{} {:?}", v.id, v.pcpu, v.state());
                }
            }
        }
        b'm' => {
            info!("'m' pressed -> dumping memory info");
            info!("    hypervisor: {} pages from the page allocator", hv.mm.xen_pages());
            for d in hv.domains() {
                info!("    d{}: {} pages", d.id, hv.mm.pages_of(d.id).total());
            }
        }
        b'i' => {
            info!("'i' pressed -> dumping interrupt bindings");
            // Runs of consecutive SPIs of one domain, one line each.
            let mut run: Option<(u32, u32, DomId)> = None;
            let show = |r: (u32, u32, DomId)| info!("    IRQ {}-{}: d{}", r.0, r.1, r.2);
            for intid in 0..crate::gic::SPI_END {
                match (run, hv.spi_owner(intid)) {
                    (Some((a, b, d)), Some(o)) if o == d && b + 1 == intid => run = Some((a, intid, d)),
                    (prev, owner) => {
                        if let Some(r) = prev {
                            show(r);
                        }
                        run = owner.map(|o| (intid, intid, o));
                    }
                }
            }
            if let Some(r) = run {
                show(r);
            }
        }
        _ => info!("'{}' ({key:#04x}) pressed -> no handler ('h' lists them)", key.escape_ascii()),
    }
}
