//! The machine's services the portable core asks for ([`crate::hw::Hw`]): kicking another
//! CPU (an SGI), printing a guest's console line, and the system counter.

use super::{console, gic, percpu};
use crate::types::DomId;
use aarch64_cpu::asm::{self, barrier};
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

pub struct ArchHw;

impl crate::hw::Hw for ArchHw {
    fn kick(&self, pcpu: usize) {
        // What the caller wrote (a vCPU's state) must be visible to the CPU the SGI wakes.
        barrier::dsb(barrier::ISH);
        let sent = gic::driver().is_some() && gic::send_sgi(percpu::cpu(pcpu).mpidr(), gic::SGI_KICK).is_ok();
        if !sent {
            asm::sev(); // no GIC: idle CPUs poll with WFE
        }
    }

    fn console_write(&self, dom: DomId, text: &[u8], starts: bool, ends: bool) {
        console::write_guest(dom, text, starts, ends);
    }

    fn counter(&self) -> u64 {
        CNTPCT_EL0.get()
    }

    fn counter_hz(&self) -> u64 {
        CNTFRQ_EL0.get().max(1)
    }

    fn irq(&self, intid: u32, op: crate::hw::IrqOp) {
        let target = match op {
            crate::hw::IrqOp::Route(pcpu) => percpu::cpu(pcpu).mpidr(),
            _ => 0,
        };
        if gic::driver().is_some() {
            gic::irq_op(intid, op, target);
        }
    }
}
