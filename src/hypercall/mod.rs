//! Hypercall handlers, portable: called with the calling vCPU and its domain ([`Call`]), the
//! vCPU's argument registers (x0..x4; the op number came in x16) and a guest-memory accessor.
//! The arch layer turns the [`Outcome`] into x0, a re-executed `HVC` (continuation), or a
//! domain shutdown.

pub mod evtchn;
pub mod grant;
pub mod guest;
pub mod hvm;
pub mod memory;
pub mod platform;
pub mod reservation;
pub mod vcpu;

use crate::domain::Domain;
use crate::hv::Hypervisor;
use crate::types::Errno;
use crate::vcpu::Vcpu;
use alloc::sync::Arc;
pub use guest::{GuestMem, GuestVa, IdentityVa, Pod};
use xen_abi::{hypercall as hc, sched, version as ver};

/// What the vCPU should see after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Return this value in x0.
    Return(i64),
    /// The arguments were updated in place: re-execute the `HVC` (Xen's continuation).
    Continue,
    /// `SCHEDOP_shutdown` with this reason: the domain stops.
    Shutdown(u32),
}

impl Outcome {
    pub fn err(e: Errno) -> Self {
        Outcome::Return(e.ret())
    }
}

impl From<crate::types::Result<i64>> for Outcome {
    fn from(r: crate::types::Result<i64>) -> Self {
        match r {
            Ok(v) => Outcome::Return(v),
            Err(e) => Outcome::err(e),
        }
    }
}

/// Everything a handler needs.
pub struct Call<'a> {
    pub hv: &'a Hypervisor,
    /// The calling domain.
    pub d: &'a Arc<Domain>,
    /// The calling vCPU (one of `d`'s).
    pub v: &'a Vcpu,
    /// The calling vCPU's stage-1 translation.
    pub va: &'a dyn GuestVa,
}

impl<'a> Call<'a> {
    /// A call from vCPU `vcpu` of `d`.
    pub fn new(hv: &'a Hypervisor, d: &'a Arc<Domain>, vcpu: usize, va: &'a dyn GuestVa) -> Self {
        Call { hv, d, v: &d.vcpus[vcpu], va }
    }

    pub fn mem(&self) -> GuestMem<'_> {
        GuestMem::new(self.hv, self.d, self.va)
    }
}

/// The version we report (the ABI we implement is Xen 4.17's).
pub const XEN_MAJOR: u64 = 4;
pub const XEN_MINOR: u64 = 17;
pub const XEN_EXTRAVERSION: &[u8] = b"-granite";

/// Dispatch hypercall `op` (x16) with arguments `args` (x0..x4). The handlers are kept out of
/// line so this dispatcher, which every hypercall crosses, stays a few instructions long.
pub fn hypercall(c: &Call, op: u64, args: &mut [u64; 5]) -> Outcome {
    if op == hc::GRANITE_AUDIT {
        return audit_op(c);
    }
    let _fence = c.hv.opts.audit.then(|| c.hv.gate.read());
    let out = match op {
        hc::MEMORY_OP => memory::memory_op(c, args),
        hc::GRANT_TABLE_OP => grant::grant_table_op(c, args),
        hc::XEN_VERSION => xen_version(c, args[0], args[1]),
        hc::CONSOLE_IO => console_io(c, args[0], args[1], args[2]),
        hc::SCHED_OP => sched_op(c, args[0], args[1]),
        hc::HVM_OP => hvm::hvm_op(c, args[0], args[1]),
        hc::PHYSDEV_OP => hvm::physdev_op(c, args[0]),
        hc::EVENT_CHANNEL_OP => evtchn::event_channel_op(c, args),
        hc::VCPU_OP => vcpu::vcpu_op(c, args),
        hc::VM_ASSIST => vcpu::vm_assist(c, args[0], args[1]),
        hc::PLATFORM_OP => platform::platform_op(c, args[0]),
        _ => Outcome::err(Errno::ENOSYS),
    };
    drop(_fence);
    c.hv.reap();
    out
}

#[inline(never)]
fn audit_op(c: &Call) -> Outcome {
    if !c.hv.opts.audit {
        return Outcome::err(Errno::ENOSYS);
    }
    let report = crate::audit::audit(c.hv);
    for v in report.violations.iter().take(8) {
        log::error!("audit: {v}");
    }
    Outcome::Return(report.violations.len() as i64)
}

/// `xen_version`: the subcommands that only return a value are answered inline (a null
/// hypercall's cost is the trap's); those that copy to the guest go out of line.
#[inline]
fn xen_version(c: &Call, cmd: u64, arg: u64) -> Outcome {
    match cmd {
        ver::XENVER_VERSION => Outcome::Return(((XEN_MAJOR << 16) | XEN_MINOR) as i64),
        ver::XENVER_PAGESIZE => Outcome::Return(4096),
        _ => xen_version_copy(c, cmd, arg),
    }
}

#[inline(never)]
fn xen_version_copy(c: &Call, cmd: u64, arg: u64) -> Outcome {
    let mem = c.mem();
    let put = |bytes: &[u8], len: usize| -> Outcome {
        let mut buf = [0u8; 1024];
        let n = bytes.len().min(len - 1);
        buf[..n].copy_from_slice(&bytes[..n]);
        mem.write_bytes(arg, &buf[..len]).map(|_| 0).into()
    };
    match cmd {
        ver::XENVER_EXTRAVERSION => put(XEN_EXTRAVERSION, ver::XEN_EXTRAVERSION_LEN),
        ver::XENVER_CAPABILITIES => put(b"xen-3.0-aarch64 xen-3.0-armv7l ", ver::XEN_CAPABILITIES_INFO_LEN),
        ver::XENVER_CHANGESET => put(b"granite", 64),
        ver::XENVER_COMPILE_INFO => {
            // compiler[64] compile_by[16] compile_domain[32] compile_date[32]
            let mut buf = [0u8; 144];
            buf[..5].copy_from_slice(b"rustc");
            buf[64..71].copy_from_slice(b"granite");
            mem.write_bytes(arg, &buf).map(|_| 0).into()
        }
        ver::XENVER_PLATFORM_PARAMETERS => mem.write(arg, &0u64).map(|_| 0).into(),
        ver::XENVER_GUEST_HANDLE => mem.write_bytes(arg, &[0u8; 16]).map(|_| 0).into(),
        ver::XENVER_GET_FEATURES => {
            let mut fi: xen_abi::XenFeatureInfo = match mem.read(arg) {
                Ok(f) => f,
                Err(e) => return Outcome::err(e),
            };
            // Only submap 0 exists (Xen: -EINVAL for any other).
            if fi.submap_idx != 0 {
                return Outcome::err(Errno::EINVAL);
            }
            fi.submap = features(c.d);
            mem.write(arg, &fi).map(|_| 0).into()
        }
        ver::XENVER_COMMANDLINE if !c.d.privileged => Outcome::err(Errno::EPERM),
        ver::XENVER_COMMANDLINE => put(b"", ver::XEN_COMMANDLINE_LEN),
        _ => Outcome::err(Errno::ENOSYS),
    }
}

/// XENFEAT_* bits of submap 0 for an Arm domain.
pub fn features(d: &Domain) -> u32 {
    const WRITABLE_PAGE_TABLES: u32 = 0;
    const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    const DOM0: u32 = 11;
    const MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
    const ARM_SMCCC_SUPPORTED: u32 = 14;
    const NOT_DIRECT_MAPPED: u32 = 16;
    const DIRECT_MAPPED: u32 = 17;
    let mut f = (1 << WRITABLE_PAGE_TABLES)
        | (1 << AUTO_TRANSLATED_PHYSMAP)
        | (1 << MEMORY_OP_VNODE_SUPPORTED)
        | (1 << ARM_SMCCC_SUPPORTED);
    if d.id == 0 {
        f |= 1 << DOM0;
    }
    f |= if d.direct_map { 1 << DIRECT_MAPPED } else { 1 << NOT_DIRECT_MAPPED };
    f
}

#[inline(never)]
fn console_io(c: &Call, cmd: u64, count: u64, buf: u64) -> Outcome {
    match cmd {
        xen_abi::console::CONSOLEIO_WRITE => {
            let mut chunk = [0u8; 128];
            let mut done = 0u64;
            // Bounded per call like Xen's (which preempts); output beyond is dropped.
            let count = count.min(16 * 1024);
            while done < count {
                let n = (count - done).min(chunk.len() as u64) as usize;
                if let Err(e) = c.mem().read_bytes(buf + done, &mut chunk[..n]) {
                    return Outcome::err(e);
                }
                c.d.console.write(&chunk[..n], &*c.hv.hw);
                done += n as u64;
            }
            Outcome::Return(0)
        }
        xen_abi::console::CONSOLEIO_READ => {
            // The count is a C `unsigned int`, refused when it would not fit the signed return.
            let count = count as u32;
            if (count as i32) < 0 {
                return Outcome::err(Errno::E2BIG);
            }
            let mut chunk = [0u8; crate::console::RX_RING];
            let mut done = 0u64;
            while done < count as u64 {
                let want = (count as u64 - done).min(chunk.len() as u64) as usize;
                let (from, n) = c.hv.console_in.peek(&mut chunk[..want]);
                if n == 0 {
                    break;
                }
                // Bytes are taken only once copied: a bad buffer leaves them waiting.
                if let Err(e) = c.mem().write_bytes(buf + done, &chunk[..n]) {
                    return Outcome::err(e);
                }
                c.hv.console_in.consume(from, n);
                done += n as u64;
            }
            Outcome::Return(done as i64)
        }
        _ => Outcome::err(Errno::ENOSYS),
    }
}

/// `SCHEDOP_poll` with Xen's checks, in Xen's order: the argument (-EFAULT), at most 128
/// ports (-EINVAL, XSA-221), each port readable (-EFAULT) and one the domain's ABI can name
/// (-EINVAL); a pending one returns at once. With none pending, Xen blocks the vCPU until one
/// is or the timeout passes; granite returns at once (a wake-up with nothing pending, which
/// callers check for), as it does for `SCHEDOP_block`.
#[inline(never)]
fn sched_poll(c: &Call, arg: u64) -> Outcome {
    let p: xen_abi::SchedPoll = match c.mem().read(arg) {
        Ok(p) => p,
        Err(e) => return Outcome::err(e),
    };
    if p.nr_ports > 128 {
        return Outcome::err(Errno::EINVAL);
    }
    let max = crate::evtchn::max_evtchns(&**c.d);
    for i in 0..p.nr_ports as u64 {
        let port: u32 = match c.mem().read_elem(p.ports, i) {
            Ok(port) => port,
            Err(e) => return Outcome::err(e),
        };
        if port >= max {
            return Outcome::err(Errno::EINVAL);
        }
        if crate::evtchn::port_bits(&c.hv.mm, &**c.d, port).0 {
            break;
        }
    }
    Outcome::Return(0)
}

#[inline(never)]
fn sched_op(c: &Call, cmd: u64, arg: u64) -> Outcome {
    match cmd {
        sched::SCHEDOP_YIELD | sched::SCHEDOP_BLOCK => Outcome::Return(0),
        sched::SCHEDOP_POLL => sched_poll(c, arg),
        sched::SCHEDOP_SHUTDOWN => match c.mem().read::<xen_abi::SchedShutdown>(arg) {
            Ok(s) => Outcome::Shutdown(s.reason),
            Err(e) => Outcome::err(e),
        },
        _ => Outcome::err(Errno::ENOSYS),
    }
}
