//! Xen hypercalls from EL1: `hvc #0xEA1`, number in x16, arguments in x0..x4, result in x0.
//!
//! The hypervisor may clobber x16 and the argument registers (a debug Xen writes 0xDEADBEEF
//! into the ones a hypercall uses), so all of them are declared clobbered. Pointer arguments
//! are guest *virtual* addresses: the hypervisor translates them with our stage 1.

use core::arch::asm;
use xen_abi::gnttab::{GNTTABOP_MAP_GRANT_REF, GNTTABOP_QUERY_SIZE, GNTTABOP_SETUP_TABLE, GNTTABOP_UNMAP_GRANT_REF};
use xen_abi::{
    DomId, GnttabMapGrantRef, GnttabQuerySize, GnttabSetupTable, GnttabUnmapGrantRef, SchedShutdown,
    XenAddToPhysmapBatch, console, hypercall, memory, sched, version,
};

/// Issues hypercall `op` with five raw arguments and returns x0.
///
/// # Safety
/// Arguments that the hypervisor treats as pointers must be valid for what the hypercall
/// reads or writes there, unless the point is to pass a bad pointer (the hypervisor then
/// fails with -EFAULT; it never touches memory we did not hand it).
#[inline(always)]
pub unsafe fn hypercall5(op: u64, a0: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let ret: u64;
    // SAFETY: the caller vouches for the pointer arguments; the instruction only changes
    // the registers listed here (and memory we handed over, hence no `nomem`).
    unsafe {
        asm!(
            "hvc #0xEA1",
            inlateout("x0") a0 => ret,
            inlateout("x1") a1 => _,
            inlateout("x2") a2 => _,
            inlateout("x3") a3 => _,
            inlateout("x4") a4 => _,
            inlateout("x16") op => _,
            options(nostack),
        );
    }
    ret as i64
}

/// `hypercall5` with three arguments (the rest 0).
///
/// # Safety
/// As [`hypercall5`].
#[inline(always)]
pub unsafe fn hypercall3(op: u64, a0: u64, a1: u64, a2: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall5(op, a0, a1, a2, 0, 0) }
}

/// The guest virtual address of `r`, as a hypercall argument the hypervisor only reads.
pub fn va<T: ?Sized>(r: &T) -> u64 {
    r as *const T as *const u8 as u64
}

/// The guest virtual address of `r`, for a buffer the hypervisor writes (the hypercall
/// `asm!` may touch any memory whose address was exposed like this).
pub fn va_mut<T: ?Sized>(r: &mut T) -> u64 {
    r as *mut T as *mut u8 as u64
}

/// `HYPERVISOR_console_io(CONSOLEIO_write, len, buf)`.
pub fn console_write(bytes: &[u8]) -> i64 {
    // SAFETY: the hypervisor only reads `bytes.len()` bytes from `bytes`.
    unsafe { hypercall3(hypercall::CONSOLE_IO, console::CONSOLEIO_WRITE, bytes.len() as u64, bytes.as_ptr() as u64) }
}

/// `HYPERVISOR_xen_version(cmd, arg)` with a structure (or nothing) as the argument.
pub fn xen_version<T>(cmd: u64, arg: Option<&mut T>) -> i64 {
    let ptr = arg.map_or(0, |a| a as *mut T as u64);
    // SAFETY: `arg` is exclusively borrowed and sized for what `cmd` writes (caller's pick
    // of T); a null argument is valid for the sub-ops that take none.
    unsafe { hypercall3(hypercall::XEN_VERSION, cmd, ptr, 0) }
}

/// `XENVER_version`: `major << 16 | minor`.
pub fn xen_version_number() -> (u32, u32) {
    let v = xen_version::<u8>(version::XENVER_VERSION, None);
    ((v >> 16) as u32 & 0xffff, v as u32 & 0xffff)
}

/// `HYPERVISOR_memory_op(cmd, arg)`.
pub fn memory_op<T>(cmd: u64, arg: &mut T) -> i64 {
    // SAFETY: `arg` is an exclusively borrowed, properly typed argument for `cmd`; any guest
    // handles inside it are the caller's to get right.
    unsafe { hypercall3(hypercall::MEMORY_OP, cmd, arg as *mut T as u64, 0) }
}

/// `HYPERVISOR_grant_table_op(cmd, ops, count)` on a slice of operations.
pub fn grant_table_op<T>(cmd: u64, ops: &mut [T]) -> i64 {
    // SAFETY: `ops` is an exclusively borrowed array of `count` operations of the type `cmd`
    // expects.
    unsafe { hypercall3(hypercall::GRANT_TABLE_OP, cmd, ops.as_mut_ptr() as u64, ops.len() as u64) }
}

/// `XENMEM_add_to_physmap` for one page.
pub fn add_to_physmap(domid: u16, space: u32, idx: u64, gpfn: u64) -> i64 {
    let mut xatp = xen_abi::XenAddToPhysmap { domid, size: 0, space, idx, gpfn };
    memory_op(memory::XENMEM_ADD_TO_PHYSMAP, &mut xatp)
}

/// `XENMEM_remove_from_physmap`.
pub fn remove_from_physmap(domid: u16, gpfn: u64) -> i64 {
    let mut xrfp = xen_abi::XenRemoveFromPhysmap { domid, _pad: [0; 6], gpfn };
    memory_op(memory::XENMEM_REMOVE_FROM_PHYSMAP, &mut xrfp)
}

/// `XENMEM_add_to_physmap_batch` with `space` (as u16): per-entry results land in `errs`,
/// which must be at least as long as `idxs` (the hypervisor writes one `int` per entry).
pub fn add_to_physmap_batch(domid: DomId, space: u16, idxs: &[u64], gpfns: &[u64], errs: &mut [i32]) -> i64 {
    assert!(gpfns.len() >= idxs.len() && errs.len() >= idxs.len());
    let mut b = XenAddToPhysmapBatch {
        domid,
        space,
        size: idxs.len() as u16,
        u: 0,
        idxs: va(idxs),
        gpfns: va(gpfns),
        errs: va_mut(errs),
    };
    memory_op(memory::XENMEM_ADD_TO_PHYSMAP_BATCH, &mut b)
}

/// `GNTTABOP_query_size` for `dom`: (hypercall result, the filled-in structure).
pub fn query_size(dom: DomId) -> (i64, GnttabQuerySize) {
    let mut q = [GnttabQuerySize { dom, status: STATUS_UNWRITTEN, ..Default::default() }];
    let rc = grant_table_op(GNTTABOP_QUERY_SIZE, &mut q);
    (rc, q[0])
}

/// What the `status` fields are preset to, so that a status the hypervisor did not write
/// shows up as such.
pub const STATUS_UNWRITTEN: i16 = 0x55;

/// `GNTTABOP_setup_table` for `frames.len()` frames of `dom`: (hypercall result, status).
/// The hypervisor writes one GFN (or INVALID_GFN) per frame into `frames`.
pub fn setup_table(dom: DomId, frames: &mut [u64]) -> (i64, i16) {
    let mut op = [GnttabSetupTable {
        dom,
        nr_frames: frames.len() as u32,
        status: STATUS_UNWRITTEN,
        frame_list: va_mut(frames),
        ..Default::default()
    }];
    let rc = grant_table_op(GNTTABOP_SETUP_TABLE, &mut op);
    (rc, op[0].status)
}

/// `GNTTABOP_map_grant_ref` of grant `ref_` of `dom` at `host_addr`: (hypercall result, the
/// filled-in operation: status, handle, dev_bus_addr).
pub fn map_grant_ref(host_addr: u64, flags: u32, ref_: u32, dom: DomId) -> (i64, GnttabMapGrantRef) {
    let mut op = [GnttabMapGrantRef { host_addr, flags, ref_, dom, status: STATUS_UNWRITTEN, ..Default::default() }];
    let rc = grant_table_op(GNTTABOP_MAP_GRANT_REF, &mut op);
    (rc, op[0])
}

/// `GNTTABOP_unmap_grant_ref`: (hypercall result, status).
pub fn unmap_grant_ref(host_addr: u64, dev_bus_addr: u64, handle: u32) -> (i64, i16) {
    let mut op = [GnttabUnmapGrantRef { host_addr, dev_bus_addr, handle, status: STATUS_UNWRITTEN, _pad: 0 }];
    let rc = grant_table_op(GNTTABOP_UNMAP_GRANT_REF, &mut op);
    (rc, op[0].status)
}

/// `HYPERVISOR_sched_op(SCHEDOP_yield)`.
pub fn sched_yield() -> i64 {
    // SAFETY: yield takes no argument.
    unsafe { hypercall3(hypercall::SCHED_OP, sched::SCHEDOP_YIELD, 0, 0) }
}

/// `HYPERVISOR_sched_op(SCHEDOP_shutdown, {reason})`; returns only if the hypervisor refused.
pub fn shutdown(reason: u32) -> i64 {
    let mut arg = SchedShutdown { reason };
    // SAFETY: `arg` is a valid `sched_shutdown` the hypervisor only reads.
    unsafe { hypercall3(hypercall::SCHED_OP, sched::SCHEDOP_SHUTDOWN, &mut arg as *mut _ as u64, 0) }
}

/// Powers the machine (or the domain) off. Never returns.
pub fn power_off() -> ! {
    shutdown(sched::SHUTDOWN_POWEROFF);
    crate::console::write_str("[granite] SCHEDOP_shutdown returned; halting\n");
    loop {
        core::hint::spin_loop();
        // SAFETY: waiting for an event has no memory effects.
        unsafe { asm!("wfe", options(nomem, nostack)) };
    }
}
