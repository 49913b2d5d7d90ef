//! `event_channel_op` (hypercall 32), as Xen 4.17's `do_event_channel_op`: each sub-op's
//! argument structure is copied in (`-EFAULT`), carried out by [`crate::evtchn`], and copied
//! back when the sub-op has results and succeeded (a failed copy back is `-EFAULT` with the
//! work done, as in Xen). The sub-op is `int cmd`: the low 32 bits of x0.

use super::{Call, GuestMem, Outcome, Pod};
use crate::evtchn::{self, Reset, State};
use crate::types::{Errno, Result};
use xen_abi::evtchn::*;
use xen_abi::*;

#[inline(never)]
pub fn event_channel_op(c: &Call, args: &mut [u64; 5]) -> Outcome {
    let (cmd, arg) = (args[0] as u32, args[1]);
    let env = c.hv.evtchn_env();
    let mem = c.mem();
    let me: &dyn evtchn::Owner = &**c.d;
    match cmd {
        EVTCHNOP_ALLOC_UNBOUND => inout(&mem, arg, |a: &mut EvtchnAllocUnbound| {
            let d = c.hv.lookup(c.d, a.dom).ok_or(Errno::ESRCH)?;
            let remote = if a.remote_dom == DOMID_SELF { c.d.id } else { a.remote_dom };
            a.port = evtchn::alloc_unbound(&env, &**d, c.d.controls(&d), remote)?;
            Ok(())
        }),
        EVTCHNOP_BIND_INTERDOMAIN => inout(&mem, arg, |a: &mut EvtchnBindInterdomain| {
            let rd = c.hv.lookup(c.d, a.remote_dom).ok_or(Errno::ESRCH)?;
            a.local_port = evtchn::bind_interdomain(&env, me, &**rd, a.remote_port)?;
            Ok(())
        }),
        EVTCHNOP_BIND_VIRQ => inout(&mem, arg, |a: &mut EvtchnBindVirq| {
            a.port = evtchn::bind_virq(&env, me, a.virq, a.vcpu)?;
            Ok(())
        }),
        EVTCHNOP_BIND_IPI => inout(&mem, arg, |a: &mut EvtchnBindIpi| {
            a.port = evtchn::bind_ipi(&env, me, a.vcpu)?;
            Ok(())
        }),
        EVTCHNOP_BIND_PIRQ => inout(&mem, arg, |a: &mut EvtchnBindPirq| {
            a.port = evtchn::bind_pirq(&env, me, a.pirq)?;
            Ok(())
        }),
        EVTCHNOP_CLOSE => input(&mem, arg, |a: EvtchnClose| evtchn::close(&env, me, a.port)),
        EVTCHNOP_SEND => input(&mem, arg, |a: EvtchnSend| evtchn::send(&env, me, a.port)),
        EVTCHNOP_STATUS => inout(&mem, arg, |a: &mut EvtchnStatus| {
            let d = c.hv.lookup(c.d, a.dom).ok_or(Errno::ESRCH)?;
            let s = evtchn::status(&**d, a.port, c.d.controls(&d))?;
            a.status = s.status;
            a.vcpu = s.vcpu;
            // Only the union member of the state is written; the rest keeps what the guest put.
            match s.state {
                State::Unbound { remote } => a.set_remote_dom(remote),
                State::Interdomain { remote, port } => {
                    a.set_remote_dom(remote);
                    a.u[1] = port;
                }
                State::Virq(virq) => a.u[0] = virq,
                State::Free | State::Reserved | State::Ipi => {}
            }
            Ok(())
        }),
        EVTCHNOP_BIND_VCPU => input(&mem, arg, |a: EvtchnBindVcpu| evtchn::bind_vcpu(me, a.port, a.vcpu)),
        EVTCHNOP_UNMASK => input(&mem, arg, |a: EvtchnUnmask| evtchn::unmask(&env, me, a.port)),
        EVTCHNOP_RESET | EVTCHNOP_RESET_CONT => {
            let r = mem.read::<EvtchnReset>(arg).and_then(|a| {
                let d = c.hv.lookup(c.d, a.dom).ok_or(Errno::ESRCH)?;
                if !c.d.controls(&d) {
                    return Err(Errno::EPERM);
                }
                evtchn::reset(&env, &**d, d.id == c.d.id, cmd == EVTCHNOP_RESET_CONT)
            });
            match r {
                Ok(Reset::Done) => Outcome::Return(0),
                Ok(Reset::Continue) => {
                    args[0] = EVTCHNOP_RESET_CONT as u64;
                    Outcome::Continue
                }
                Err(e) => Outcome::err(e),
            }
        }
        EVTCHNOP_INIT_CONTROL => inout(&mem, arg, |a: &mut EvtchnInitControl| {
            a.link_bits = EVTCHN_FIFO_LINK_BITS as u8;
            evtchn::init_control(&env, me, a.vcpu, a.control_gfn, a.offset)
        }),
        EVTCHNOP_EXPAND_ARRAY => input(&mem, arg, |a: EvtchnExpandArray| evtchn::expand_array(&env, me, a.array_gfn)),
        EVTCHNOP_SET_PRIORITY => input(&mem, arg, |a: EvtchnSetPriority| evtchn::set_priority(me, a.port, a.priority)),
        _ => Outcome::err(Errno::ENOSYS),
    }
}

/// A sub-op that only reads its argument.
fn input<T: Pod>(mem: &GuestMem, arg: u64, f: impl FnOnce(T) -> Result<()>) -> Outcome {
    mem.read(arg).and_then(f).map(|_| 0).into()
}

/// A sub-op whose argument is written back when it succeeds.
fn inout<T: Pod>(mem: &GuestMem, arg: u64, f: impl FnOnce(&mut T) -> Result<()>) -> Outcome {
    let r = mem.read(arg).and_then(|mut a: T| {
        f(&mut a)?;
        mem.write(arg, &a)
    });
    r.map(|_| 0).into()
}
