//! `platform_op` (hypercall 7) as Xen 4.17 on Arm (`arch/arm/platform_hypercall.c`): the
//! interface version must match (`-EACCES`), only the control domain may call it (`-EPERM`,
//! XSM_PRIV), and `XENPF_settime64` is the only command (`-ENOSYS` otherwise; `mbz` must be
//! 0, `-EINVAL`).

use super::{Call, Outcome};
use crate::types::Errno;
use alloc::vec::Vec;
use xen_abi::XenPlatformOp;
use xen_abi::platform::*;

#[inline(never)]
pub fn platform_op(c: &Call, arg: u64) -> Outcome {
    let op: XenPlatformOp = match c.mem().read(arg) {
        Ok(op) => op,
        Err(e) => return Outcome::err(e),
    };
    if op.interface_version != XENPF_INTERFACE_VERSION {
        return Outcome::err(Errno::EACCES);
    }
    if !c.d.privileged {
        return Outcome::err(Errno::EPERM);
    }
    match op.cmd {
        XENPF_SETTIME64 => {
            let s = op.settime64();
            if s.mbz != 0 {
                return Outcome::err(Errno::EINVAL);
            }
            settime(c, s.secs, s.nsecs, s.system_time);
            Outcome::Return(0)
        }
        _ => Outcome::err(Errno::ENOSYS),
    }
}

/// Xen's `do_settime` for every domain: each `shared_info` is written under a page
/// reference, so a dying domain's page cannot be freed meanwhile.
fn settime(c: &Call, secs: u64, nsecs: u32, system_time: u64) {
    let mm = &c.hv.mm;
    let pages: Vec<_> =
        c.hv.domains().iter().filter(|d| mm.get_page(d.shared_info, d.id)).map(|d| d.shared_info).collect();
    c.hv.clock.settime(mm, &pages, secs, nsecs, system_time);
    for m in pages {
        mm.put_page(m);
    }
}
