//! `vcpu_op` (hypercall 24) as Xen 4.17 on Arm (`do_arm_vcpu_op`): only
//! `VCPUOP_register_vcpu_info` and `VCPUOP_register_runstate_memory_area`, everything else
//! `-EINVAL`; `vm_assist` (hypercall 21) with its one Arm type, `runstate_update_flag`; and the
//! runstate area kept up to date as the vCPU's state changes ([`set_runstate`], called by the
//! arch layer).

use super::{Call, GuestMem, GuestVa, Outcome};
use crate::domain::Domain;
use crate::evtchn;
use crate::hv::Hypervisor;
use crate::types::Errno;
use crate::vcpu::{Runstate, Vcpu};
use core::sync::atomic::{Ordering, fence};
use xen_abi::vcpuop::*;
use xen_abi::vmassist::*;
use xen_abi::{VcpuRegisterRunstateMemoryArea, VcpuRegisterVcpuInfo, VcpuRunstateInfo};

/// `vcpu_op(int cmd, unsigned int vcpuid, arg)`: x0, x1 (low 32 bits each), x2.
#[inline(never)]
pub fn vcpu_op(c: &Call, args: &[u64; 5]) -> Outcome {
    let (cmd, vcpuid, arg) = (args[0] as u32, args[1] as u32, args[2]);
    let Some(v) = c.d.vcpus.get(vcpuid as usize) else { return Outcome::err(Errno::ENOENT) };
    match cmd {
        VCPUOP_REGISTER_VCPU_INFO => register_vcpu_info(c, v, arg),
        VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => register_runstate_area(c, v, arg),
        _ => Outcome::err(Errno::EINVAL),
    }
}

/// `VCPUOP_register_vcpu_info` (Xen's `common_vcpu_op` → `map_vcpu_info`): allowed from the
/// vCPU itself or for an offline one. Xen's `force_update_vcpu_system_time` that follows does
/// nothing on Arm.
fn register_vcpu_info(c: &Call, v: &Vcpu, arg: u64) -> Outcome {
    let info: VcpuRegisterVcpuInfo = match c.mem().read(arg) {
        Ok(i) => i,
        Err(e) => return Outcome::err(e),
    };
    let may = core::ptr::eq(v, c.v) || v.is_off();
    evtchn::register_vcpu_info(&c.hv.evtchn_env(), &**c.d, v.id, info.mfn, info.offset, may).map(|_| 0).into()
}

/// `VCPUOP_register_runstate_memory_area`: remember the guest virtual address (0 forgets it)
/// and copy the runstate there now, through the caller's translation, failures ignored (Xen
/// on Arm checks nothing about the address). For the calling vCPU the copy is its runstate
/// as last changed; for another, as of now.
fn register_runstate_area(c: &Call, v: &Vcpu, arg: u64) -> Outcome {
    let area: VcpuRegisterRunstateMemoryArea = match c.mem().read(arg) {
        Ok(a) => a,
        Err(e) => return Outcome::err(e),
    };
    let mut rs = v.runstate.lock();
    rs.area = area.addr;
    let copy = if core::ptr::eq(v, c.v) { *rs } else { rs.at(c.hv.clock.now(&*c.hv.hw)) };
    if area.addr != 0 {
        let _ = c.mem().write(area.addr, &guest_runstate(&copy));
    }
    Outcome::Return(0)
}

fn guest_runstate(r: &Runstate) -> VcpuRunstateInfo {
    VcpuRunstateInfo { state: r.state as i32, _pad: 0, state_entry_time: r.entry_time, time: r.time }
}

/// vCPU `v` of `d` enters run state `state` (`RUNSTATE_running`, `_runnable`, `_blocked` or
/// `_offline`) now: the time since its last change is charged to the old state, and the
/// runstate area it registered, if any, is rewritten (Xen's `vcpu_runstate_change` followed by
/// Arm's `update_runstate_area` at the context switch).
///
/// For the arch layer: call it on the vCPU's own physical CPU with `va` translating through
/// that vCPU's stage 1 (its EL1 registers live), as Xen writes the area in the vCPU's context:
/// `RUNSTATE_running` when the CPU enters the vCPU (after a start: the MMU is then off, so the
/// address is used as an IPA, as on Xen), `RUNSTATE_blocked` when it waits for an interrupt
/// in WFI on the guest's behalf and `RUNSTATE_running` when it resumes it, `RUNSTATE_offline`
/// when it leaves the vCPU for good (`CPU_OFF`, the domain stopping it).
pub fn set_runstate(hv: &Hypervisor, d: &Domain, v: &Vcpu, state: u32, va: &dyn GuestVa) {
    let mut rs = v.runstate.lock();
    rs.change(state, hv.clock.now(&*hv.hw));
    update_runstate_area(&GuestMem::new(hv, d, va), d, &rs);
}

/// vCPU `v` enters run state `state` now, in the accounting only (Xen's `vcpu_runstate_change`
/// outside a context switch): for a change seen from another CPU, e.g. `RUNSTATE_runnable` for
/// the target of a successful `CPU_ON`, which then appears in the guest's area when its own CPU
/// enters it ([`set_runstate`] with `RUNSTATE_running`).
pub fn note_runstate(hv: &Hypervisor, v: &Vcpu, state: u32) {
    v.runstate.lock().change(state, hv.clock.now(&*hv.hw));
}

/// Arm's `update_runstate_area`. With `VMASST_TYPE_runstate_update_flag`, the top byte of
/// `state_entry_time` first gets `XEN_RUNSTATE_UPDATE`, then the whole area is written (the
/// flag still set), then the byte again without it, with write barriers between, so the guest
/// can tell a torn read. Failed copies are ignored.
fn update_runstate_area(mem: &GuestMem, d: &Domain, rs: &Runstate) {
    if rs.area == 0 {
        return;
    }
    let mut info = guest_runstate(rs);
    // The last byte of `state_entry_time` (little endian: bits 63..56). The guest chose the
    // address: near the top of the address space it wraps, as Xen's pointer arithmetic does.
    let flag_byte = rs.area.wrapping_add(core::mem::offset_of!(VcpuRunstateInfo, state_entry_time) as u64 + 7);
    let flagged = d.vm_assist(VMASST_TYPE_RUNSTATE_UPDATE_FLAG);
    if flagged {
        info.state_entry_time |= XEN_RUNSTATE_UPDATE;
        let _ = mem.write(flag_byte, &((info.state_entry_time >> 56) as u8));
        fence(Ordering::Release);
    }
    let _ = mem.write(rs.area, &info);
    if flagged {
        info.state_entry_time &= !XEN_RUNSTATE_UPDATE;
        fence(Ordering::Release);
        let _ = mem.write(flag_byte, &((info.state_entry_time >> 56) as u8));
    }
}

/// `vm_assist(unsigned int cmd, unsigned int type)` (Xen's `do_vm_assist` with Arm's valid
/// mask: `runstate_update_flag` only).
#[inline(never)]
pub fn vm_assist(c: &Call, cmd: u64, ty: u64) -> Outcome {
    let (cmd, ty) = (cmd as u32, ty as u32);
    let valid: u64 = 1 << VMASST_TYPE_RUNSTATE_UPDATE_FLAG;
    if ty >= 64 || valid & (1 << ty) == 0 {
        return Outcome::err(Errno::EINVAL);
    }
    match cmd {
        VMASST_CMD_ENABLE => {
            c.d.vm_assist.fetch_or(1 << ty, crate::sync::Ordering::AcqRel);
            Outcome::Return(0)
        }
        VMASST_CMD_DISABLE => {
            c.d.vm_assist.fetch_and(!(1 << ty), crate::sync::Ordering::AcqRel);
            Outcome::Return(0)
        }
        _ => Outcome::err(Errno::ENOSYS),
    }
}
