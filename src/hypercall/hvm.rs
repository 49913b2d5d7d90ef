//! `hvm_op` and `physdev_op` with Xen 4.17's answers on Arm.
//!
//! **hvm_op**: only `HVMOP_set_param` / `HVMOP_get_param` exist (other ops: -ENOSYS). The
//! parameters a guest may read are the event-channel callback (`HVM_PARAM_CALLBACK_IRQ`: on
//! Arm the event-channel PPI, set when the domain is built) and the xenstore and console
//! rings' frame and port; the toolstack (a privileged domain) may set those of another domain,
//! a domain setting its own gets -EPERM; every other index is -EINVAL. The checks come in
//! Xen's order: the argument (-EFAULT), the index range (-EINVAL), the domain (-ESRCH), the
//! caller's right to it (-EPERM), the parameter (-EPERM / -EINVAL).
//!
//! **physdev_op**: Debian's Xen 4.17 is built without PCI support on Arm, so every command is
//! -ENOSYS (Linux's `xen_add_device` then reports the device and carries on).

use super::{Call, Outcome};
use crate::types::Errno;
use xen_abi::XenHvmParam;
use xen_abi::hvm::*;

#[inline(never)]
pub fn hvm_op(c: &Call, op: u64, arg: u64) -> Outcome {
    let set = match op {
        HVMOP_SET_PARAM => true,
        HVMOP_GET_PARAM => false,
        _ => return Outcome::err(Errno::ENOSYS),
    };
    let mem = c.mem();
    let mut a: XenHvmParam = match mem.read(arg) {
        Ok(a) => a,
        Err(e) => return Outcome::err(e),
    };
    if a.index >= HVM_NR_PARAMS {
        return Outcome::err(Errno::EINVAL);
    }
    let Some(d) = c.hv.lookup(c.d, a.domid) else { return Outcome::err(Errno::ESRCH) };
    // The domain itself or its toolstack.
    let own = d.id == c.d.id;
    if !own && !c.d.privileged {
        return Outcome::err(Errno::EPERM);
    }
    let guest_visible = matches!(
        a.index,
        HVM_PARAM_CALLBACK_IRQ
            | HVM_PARAM_STORE_PFN
            | HVM_PARAM_STORE_EVTCHN
            | HVM_PARAM_CONSOLE_PFN
            | HVM_PARAM_CONSOLE_EVTCHN
    );
    if !guest_visible {
        return Outcome::err(Errno::EINVAL);
    }
    if set {
        if own {
            return Outcome::err(Errno::EPERM);
        }
        d.set_hvm_param(a.index, a.value);
        return Outcome::Return(0);
    }
    a.value = d.hvm_param(a.index);
    mem.write(arg, &a).map(|_| 0).into()
}

#[inline(never)]
pub fn physdev_op(c: &Call, cmd: u64) -> Outcome {
    crate::guest_log!(hw: &*c.hv.hw, log::Level::Debug, "d{}v{}: PHYSDEVOP cmd={cmd}: not implemented", c.d.id, c.v.id);
    Outcome::err(Errno::ENOSYS)
}
