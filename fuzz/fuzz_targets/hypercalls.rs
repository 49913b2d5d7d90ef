//! libFuzzer target: the portable hypercall layer on a simulated machine with three domains
//! (privileged dom0, domUs 1 and 2, two vCPUs each). The input is decoded into a sequence of
//! hypercalls — valid, nearly valid and garbage — with arguments placed in the caller's memory
//! or pointing anywhere, grant entries, event words, control blocks and `shared_info` bits
//! written by the "guests" themselves, VIRQs and run-state changes raised by the hypervisor,
//! and domain teardowns. Memory (physmap and reservation), grant, event-channel (2-level and
//! FIFO), vcpu_op, vm_assist, platform_op, hvm_op, physdev_op and console_io calls, bytes
//! typed on the console, the virtual GIC (register accesses of every width, SGIs, injections,
//! list-register runs; GICv3 and GICv2), PSCI and the emulated EL1 physical timer are all in
//! the mix. After every call the audit must be clean; at the
//! end every page must be back in the allocator.
//!
//!     scripts/fuzz-host.sh [seconds]     (cargo +nightly fuzz run hypercalls)
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

use granite::audit::audit;
use granite::hv::{Hypervisor, Options};
use granite::hypercall::{self, Call, IdentityVa, Outcome, Pod};
use granite::testing::{GUEST_GNTTAB_GFN, GUEST_RAM_GFN, Guest, HostMachine};
use granite::tlb::NoTlb;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use xen_abi::evtchn::*;
use xen_abi::gnttab::*;
use xen_abi::memory::*;
use xen_abi::*;

/// Consumes the input; returns zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (0..8).fold(0, |a, i| a | (self.u8() as u64) << (8 * i))
    }
    /// A number biased toward the interesting ones.
    fn num(&mut self, small: u64) -> u64 {
        match self.u8() % 8 {
            0..=3 => self.u8() as u64 % small.max(1),
            4 => u64::MAX,
            5 => 1 << (self.u8() % 64),
            _ => self.u64(),
        }
    }
    /// A GFN: the grant region, the guest's RAM, beyond the IPA, or anything.
    fn gfn(&mut self) -> u64 {
        match self.u8() % 6 {
            0 | 1 => GUEST_GNTTAB_GFN + self.u8() as u64 % 16,
            2 => GUEST_RAM_GFN + 4 + self.u8() as u64 % 12,
            3 => (1 << 28) + self.u8() as u64,
            4 => u64::MAX - self.u8() as u64 % 2,
            _ => self.u64() % (1 << 30),
        }
    }
    fn domid(&mut self) -> u16 {
        match self.u8() % 8 {
            0..=2 => DOMID_SELF,
            3 => 0,
            4 => 1 + self.u8() as u16 % 3,
            5 => [DOMID_IO, DOMID_XEN, DOMID_INVALID, DOMID_COW][self.u8() as usize % 4],
            _ => self.u16(),
        }
    }
}

/// The guest writes `v` at guest-physical `gpa` of its own memory — unless it gave that page
/// away (remove_from_physmap, decrease_reservation), when the write would fault in a real
/// guest: nothing is written and the hypercall that follows sees what is there.
fn guest_write<T: Pod>(hv: &Hypervisor, g: &Guest, gpa: u64, v: &T) {
    let _ = hypercall::GuestMem::new(hv, &g.d, &IdentityVa).write(gpa, v);
}

/// The argument area of every guest: RAM pages 0..3 (RAM is 16 pages at GUEST_RAM_GFN).
const ARG: u64 = GUEST_RAM_GFN << 12;

struct World {
    m: HostMachine,
    guests: [Option<Guest>; 3],
    free0: u64,
    timer: FakeTimer,
}

/// A simulated EL2 physical timer (what the guest's EL1 physical timer is emulated on).
#[derive(Default)]
struct FakeTimer {
    ctl: std::cell::Cell<u64>,
    cval: std::cell::Cell<u64>,
    now: std::cell::Cell<u64>,
}

impl granite::vtimer::TimerHw for FakeTimer {
    fn ctl(&self) -> u64 {
        // ISTATUS as the hardware computes it.
        let c = self.ctl.get() & 3;
        c | if c & 1 != 0 && self.now.get() >= self.cval.get() { 4 } else { 0 }
    }
    fn set_ctl(&self, v: u64) {
        assert_eq!(v & !3, 0, "only ENABLE and IMASK are written");
        self.ctl.set(v);
    }
    fn cval(&self) -> u64 {
        self.cval.get()
    }
    fn set_cval(&self, v: u64) {
        self.cval.set(v);
    }
    fn counter(&self) -> u64 {
        self.now.get()
    }
}

impl World {
    fn hv(&self) -> &Hypervisor {
        &self.m.hv
    }
    /// An argument pointer: usually the argument area, sometimes something bad.
    fn ptr(b: &mut Bytes) -> u64 {
        match b.u8() % 10 {
            0..=6 => ARG,
            7 => ((GUEST_RAM_GFN + 16) << 12) - 1 - b.u8() as u64 % 32, // straddles the end of RAM
            8 => GUEST_GNTTAB_GFN << 12,                                // a grant frame, if mapped
            _ => b.u64(),
        }
    }
    fn call(&self, who: usize, op: u64, args: [u64; 5]) {
        self.call_as(who, 0, op, args)
    }
    fn call_as(&self, who: usize, vcpu: usize, op: u64, args: [u64; 5]) {
        let Some(g) = &self.guests[who] else { return };
        let c = Call::new(self.hv(), &g.d, vcpu, &IdentityVa);
        let mut a = args;
        for _ in 0..10_000 {
            match hypercall::hypercall(&c, op, &mut a) {
                Outcome::Continue => continue,
                _ => return,
            }
        }
        panic!("hypercall {op} never finished");
    }
    fn put<T: Pod>(&self, who: usize, v: &T) {
        if let Some(g) = &self.guests[who] {
            guest_write(self.hv(), g, ARG, v);
        }
    }
    /// The virtual GIC: register accesses of any width at and around its frames, SGIs,
    /// injections, and guest runs (list registers loaded, the guest acknowledging and
    /// completing some, folded back), vCPUs going on and off line.
    fn vgic(&self, b: &mut Bytes, who: usize) {
        let g = self.guests[who].as_ref().unwrap();
        let (hw, vg) = (&*self.m.hw, &g.d.vgic);
        let vcpu = b.u8() as usize % 2;
        match b.u8() % 6 {
            0 | 1 => {
                let cfg = vg.config();
                let base = match (b.u8() % 3, cfg.redist.first()) {
                    (0, Some(&(r, _))) => r + (b.u8() as u64 % 3) * 0x1_0000,
                    (1, _) => cfg.dist_base + 0x1_0000 * (b.u8() as u64 % 2),
                    _ => cfg.dist_base,
                };
                let off = match b.u8() % 4 {
                    0 => b.u16() as u64,
                    1 => {
                        [
                            0x0, 0x4, 0x8, 0xc, 0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0x400, 0x800, 0xc00,
                            0xe00, 0xf00, 0xf10, 0xf20, 0x6100, 0xffe8,
                        ][b.u8() as usize % 20]
                            + 4 * (b.u8() as u64 % 8)
                    }
                    _ => b.u16() as u64 & 0xfffc,
                };
                let size = [1u8, 2, 4, 8][b.u8() as usize % 4];
                let _ = vg.mmio(hw, vcpu, base + off, size, b.u8().is_multiple_of(2), b.u64());
            }
            2 => {
                let (sgi, targets) = vg.sgi1r_targets(vcpu, b.u64());
                let _ = vg.send_sgi(vcpu, targets, sgi);
            }
            3 => {
                let _ = vg.inject(vcpu, b.num(100) as u32);
            }
            4 => {
                // A guest run: load, take and complete some, fold back.
                let mut lrs = [granite::vgic::Lr::default(); 4];
                let f = vg.flush(vcpu, &mut lrs);
                for lr in lrs[..f.loaded].iter_mut() {
                    match b.u8() % 3 {
                        0 if lr.pending => {
                            lr.pending = false;
                            lr.active = true;
                        }
                        1 => lr.active = false,
                        _ => {}
                    }
                }
                vg.fold(vcpu, &lrs[..f.loaded]);
            }
            _ => {
                if b.u8().is_multiple_of(2) {
                    vg.vcpu_online(vcpu);
                } else {
                    let _ = vg.vcpu_offline(vcpu);
                }
            }
        }
    }

    fn step(&mut self, b: &mut Bytes) {
        let who = b.u8() as usize % 3;
        if self.guests[who].is_none() {
            return;
        }
        match b.u8() % 21 {
            0 => {
                let space = match b.u8() % 8 {
                    7 => b.u8() as u32,
                    s => s as u32,
                };
                self.put(
                    who,
                    &XenAddToPhysmap { domid: b.domid(), size: b.u16() % 8, space, idx: b.num(70), gpfn: b.gfn() },
                );
                let cmd = XENMEM_ADD_TO_PHYSMAP | if b.u8().is_multiple_of(16) { b.u64() << 6 } else { 0 };
                self.call(who, hypercall_op(), [cmd, Self::ptr(b), 0, 0, 0]);
            }
            1 => {
                self.put(who, &XenRemoveFromPhysmap { domid: b.domid(), _pad: [0; 6], gpfn: b.gfn() });
                self.call(who, hypercall_op(), [XENMEM_REMOVE_FROM_PHYSMAP, Self::ptr(b), 0, 0, 0]);
            }
            2 => {
                let n = b.u8() as u64 % 9;
                let (idxs, gpfns, errs) = (ARG + 0x1000, ARG + 0x1400, ARG + 0x1800);
                if let Some(g) = &self.guests[who] {
                    for i in 0..n {
                        guest_write(self.hv(), g, idxs + 8 * i, &b.num(70));
                        guest_write(self.hv(), g, gpfns + 8 * i, &b.gfn());
                    }
                }
                let space = b.u8() as u16 % 7;
                self.put(
                    who,
                    &XenAddToPhysmapBatch { domid: b.domid(), space, size: n as u16, u: b.domid(), idxs, gpfns, errs },
                );
                self.call(who, hypercall_op(), [XENMEM_ADD_TO_PHYSMAP_BATCH, Self::ptr(b), 0, 0, 0]);
            }
            3 => {
                let nr = b.u8() as u32 % 80;
                self.put(
                    who,
                    &GnttabSetupTable { dom: b.domid(), nr_frames: nr, frame_list: ARG + 0x2000, ..Default::default() },
                );
                let cmd = [
                    GNTTABOP_SETUP_TABLE,
                    GNTTABOP_QUERY_SIZE,
                    GNTTABOP_GET_VERSION,
                    GNTTABOP_SET_VERSION,
                    GNTTABOP_GET_STATUS_FRAMES,
                    GNTTABOP_DUMP_TABLE,
                ][b.u8() as usize % 6];
                let count = if b.u8().is_multiple_of(8) { b.u64() } else { 1 };
                self.call(who, grant_op(), [cmd, Self::ptr(b), count, 0, 0]);
            }
            4 => {
                let host = if b.u8().is_multiple_of(2) {
                    (GUEST_GNTTAB_GFN + 32 + b.u8() as u64 % 8) << 12
                } else {
                    b.gfn() << 12
                };
                self.put(
                    who,
                    &GnttabMapGrantRef {
                        host_addr: host,
                        flags: b.u8() as u32 % 32,
                        ref_: b.num(600) as u32,
                        dom: b.domid(),
                        ..Default::default()
                    },
                );
                self.call(who, grant_op(), [GNTTABOP_MAP_GRANT_REF, Self::ptr(b), 1 + (b.u8() % 2) as u64, 0, 0]);
            }
            5 => {
                let host = if b.u8().is_multiple_of(2) {
                    (GUEST_GNTTAB_GFN + 32 + b.u8() as u64 % 8) << 12
                } else {
                    b.gfn() << 12
                };
                self.put(
                    who,
                    &GnttabUnmapGrantRef {
                        host_addr: host,
                        dev_bus_addr: 0,
                        handle: b.num(8) as u32,
                        ..Default::default()
                    },
                );
                self.call(who, grant_op(), [GNTTABOP_UNMAP_GRANT_REF, Self::ptr(b), 1, 0, 0]);
            }
            6 => {
                let side =
                    |b: &mut Bytes| GnttabCopyPtr { u: b.num(600), domid: b.domid(), offset: b.u16() % 4200, _pad: 0 };
                let op = GnttabCopy {
                    source: side(b),
                    dest: side(b),
                    len: b.u16() % 4200,
                    flags: b.u8() as u16 % 4,
                    ..Default::default()
                };
                self.put(who, &op);
                self.call(who, grant_op(), [GNTTABOP_COPY, Self::ptr(b), 1, 0, 0]);
            }
            7 => {
                // The guest writes one of its own grant entries, granting a RAM page (or junk).
                let g = self.guests[who].as_ref().unwrap();
                let gref = b.u8() as u32 % 16;
                let frame = if b.u8().is_multiple_of(4) {
                    b.u64() as u32
                } else {
                    (GUEST_RAM_GFN + 4 + b.u8() as u64 % 12) as u32
                };
                g.write_grant(self.hv(), gref, b.u16() % 0x40, b.u16() % 4, frame);
            }
            8 if who != 0 => {
                // Tear the domain down (its vCPUs "stopped") and start a fresh one.
                let g = self.guests[who].take().unwrap();
                self.hv().destroy_domain(&g.d);
                drop(g);
                if self.hv().domain_any_state(who as u16).is_none() && b.u8().is_multiple_of(2) {
                    let v = if who == 2 { granite::vgic::Version::V2 } else { granite::vgic::Version::V3 };
                    // (Another domain may have taken the machine's memory: then, as a
                    // toolstack's creation would, this fails and the slot stays empty.)
                    self.guests[who] = Guest::try_with_gic(self.hv(), who as u16, 4, 2, v).ok();
                }
            }
            9 => {
                let op = match b.u8() % 4 {
                    0 => b.u64(),
                    1 => b.u8() as u64 % 70,
                    _ => [hypercall::XEN_MAJOR, 7, 12, 17, 18, 20, 21, 24, 29, 32, 63][b.u8() as usize % 11],
                };
                let args = [b.num(64), Self::ptr(b), b.num(4), Self::ptr(b), b.u64()];
                // SCHEDOP_shutdown only asks the arch layer to stop the domain: harmless here.
                self.call(who, op, args);
            }
            10 | 11 => self.evtchn_op(b, who),
            12 => {
                // vcpu_op: register a vcpu_info or a runstate area, or anything else.
                let cmd = match b.u8() % 4 {
                    0 | 1 => xen_abi::vcpuop::VCPUOP_REGISTER_VCPU_INFO as u64,
                    2 => xen_abi::vcpuop::VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA as u64,
                    _ => b.u64(),
                };
                let (gfn, offset) = (Self::page_gfn(b), b.num(4100) as u32);
                self.put(who, &VcpuRegisterVcpuInfo { mfn: gfn, offset, rsvd: 0 });
                let by = b.u8() as usize % 2;
                self.call_as(who, by, xen_abi::hypercall::VCPU_OP, [cmd, b.num(3), Self::ptr(b), 0, 0]);
            }
            13 => self.scribble(b, who),
            14 => {
                // The hypervisor's side: VIRQs, run-state changes, settime, vm_assist.
                let g = self.guests[who].as_ref().unwrap();
                match b.u8() % 5 {
                    0 => self.hv().send_virq(&g.d, b.num(26) as u32, b.num(3) as u32),
                    1 => self.hv().send_global_virq(b.num(26) as u32),
                    2 => {
                        let v = &g.d.vcpus[b.u8() as usize % 2];
                        let st = b.num(5) as u32;
                        granite::hypercall::vcpu::set_runstate(self.hv(), &g.d, v, st, &IdentityVa);
                    }
                    3 => {
                        let mut op = XenPlatformOp::new_settime64(XenpfSettime64 {
                            secs: b.u64(),
                            nsecs: b.num(2_000_000_000) as u32,
                            mbz: b.num(2) as u32,
                            system_time: b.u64(),
                        });
                        if b.u8().is_multiple_of(8) {
                            op.cmd = b.u8() as u32;
                        }
                        if b.u8().is_multiple_of(8) {
                            op.interface_version = b.u8() as u32;
                        }
                        self.put(who, &op);
                        self.call(who, xen_abi::hypercall::PLATFORM_OP, [Self::ptr(b), 0, 0, 0, 0]);
                    }
                    _ => self.call(who, xen_abi::hypercall::VM_ASSIST, [b.num(3), b.num(8), 0, 0, 0]),
                }
            }
            16 => {
                // Memory reservation: give pages back, populate GFNs, take fresh pages, ask.
                let cmd = [
                    XENMEM_DECREASE_RESERVATION,
                    XENMEM_POPULATE_PHYSMAP,
                    XENMEM_INCREASE_RESERVATION,
                    XENMEM_CURRENT_RESERVATION,
                    XENMEM_MAXIMUM_RESERVATION,
                    XENMEM_MAXIMUM_GPFN,
                    XENMEM_MAXIMUM_RAM_PAGE,
                ][b.u8() as usize % 7];
                let n = b.u8() as u64 % 5;
                let extents = ARG + 0x1000;
                if let Some(g) = &self.guests[who] {
                    for i in 0..n {
                        // Never the argument pages themselves (the simulated guest writes its
                        // arguments there directly).
                        let gfn = b.gfn();
                        let gfn = if (GUEST_RAM_GFN..GUEST_RAM_GFN + 4).contains(&gfn) { gfn + 4 } else { gfn };
                        guest_write(self.hv(), g, extents + 8 * i, &gfn);
                    }
                }
                let r = XenMemoryReservation {
                    extent_start: extents,
                    nr_extents: if b.u8().is_multiple_of(16) { b.u64() } else { n },
                    extent_order: b.num(3) as u32,
                    mem_flags: b.u8() as u32,
                    domid: b.domid(),
                    _pad: [0; 6],
                };
                if cmd >= XENMEM_CURRENT_RESERVATION {
                    self.put(who, &r.domid);
                } else {
                    self.put(who, &r);
                }
                let start = if b.u8().is_multiple_of(16) { b.u64() << MEMOP_EXTENT_SHIFT } else { 0 };
                self.call(who, hypercall_op(), [cmd | start, Self::ptr(b), 0, 0, 0]);
            }
            18 => self.vgic(b, who),
            19 => {
                // PSCI from one of its vCPUs (the outcome is the arch layer's to carry out;
                // the vCPUs' run states change here as they would).
                let g = self.guests[who].as_ref().unwrap();
                let v = &g.d.vcpus[b.u8() as usize % 2];
                let fid = match b.u8() % 4 {
                    0 => b.u64(),
                    1 => 0x8400_0000 + b.u8() as u64 % 0x20,
                    _ => [0x8400_0000, 0x8400_0002, 0xc400_0003, 0xc400_0004, 0x8400_000a, 0x8000_0000, 0x8000_0001]
                        [b.u8() as usize % 7],
                };
                let _ = granite::vpsci::call(&g.d, v, fid, b.num(4), b.u64(), b.u64());
            }
            20 => {
                // The guest's EL1 physical timer, emulated on a simulated EL2 timer.
                let t = &self.timer;
                let r = [granite::vtimer::PhysReg::Ctl, granite::vtimer::PhysReg::Cval, granite::vtimer::PhysReg::Tval]
                    [b.u8() as usize % 3];
                if b.u8().is_multiple_of(2) {
                    granite::vtimer::write(t, r, b.u64());
                } else {
                    let got = granite::vtimer::read(t, r);
                    if r == granite::vtimer::PhysReg::Ctl {
                        assert_eq!(got & !7, 0, "CNTP_CTL reads only ENABLE, IMASK, ISTATUS");
                    }
                }
                t.now.set(t.now.get().wrapping_add(b.num(1 << 20)));
                let _ = granite::vtimer::fired(t);
            }
            17 => match b.u8() % 4 {
                0 | 1 => {
                    let index =
                        if b.u8().is_multiple_of(2) { [0, 1, 2, 17, 18][b.u8() as usize % 5] } else { b.u8() as u32 };
                    self.put(who, &XenHvmParam { domid: b.domid(), _pad: 0, index, value: b.u64() });
                    self.call(who, xen_abi::hypercall::HVM_OP, [b.num(3), Self::ptr(b), 0, 0, 0]);
                }
                2 => self.call(who, xen_abi::hypercall::PHYSDEV_OP, [b.num(40), Self::ptr(b), 0, 0, 0]),
                _ => {
                    // Bytes typed on the hypervisor's console (Ctrl-A included), then a read.
                    for _ in 0..b.u8() % 8 {
                        let c = if b.u8().is_multiple_of(4) { 1 } else { b.u8() };
                        granite::input::receive(self.hv(), c);
                    }
                    let count = b.num(300);
                    self.call(
                        who,
                        xen_abi::hypercall::CONSOLE_IO,
                        [xen_abi::console::CONSOLEIO_READ, count, Self::ptr(b), 0, 0],
                    );
                }
            },
            _ => {
                self.put(
                    who,
                    &XenAddToPhysmap {
                        domid: DOMID_SELF,
                        size: 0,
                        space: XENMAPSPACE_GRANT_TABLE,
                        idx: b.num(8),
                        gpfn: GUEST_GNTTAB_GFN + b.u8() as u64 % 16,
                    },
                );
                self.call(who, hypercall_op(), [XENMEM_ADD_TO_PHYSMAP, ARG, 0, 0, 0]);
            }
        }
    }
}

impl World {
    /// A guest frame for vcpu_info, FIFO control blocks and event arrays: usually a RAM page
    /// past the argument pages, sometimes a grant frame, shared_info if mapped, or garbage.
    fn page_gfn(b: &mut Bytes) -> u64 {
        match b.u8() % 6 {
            0..=3 => GUEST_RAM_GFN + 4 + b.u8() as u64 % 12,
            4 => GUEST_GNTTAB_GFN + b.u8() as u64 % 4,
            _ => b.gfn(),
        }
    }
    fn port(b: &mut Bytes) -> u32 {
        match b.u8() % 8 {
            0..=5 => b.u8() as u32 % 12,
            6 => 1000 + b.u8() as u32 % 40,
            _ => b.u64() as u32,
        }
    }

    /// One event-channel op with nearly-valid arguments.
    fn evtchn_op(&self, b: &mut Bytes, who: usize) {
        let cmd = match b.u8() % 16 {
            15 => b.u64(),
            c => c as u64 % 15,
        };
        let port = Self::port(b);
        let vcpu = b.num(3) as u32;
        match cmd as u32 {
            EVTCHNOP_BIND_INTERDOMAIN => self
                .put(who, &EvtchnBindInterdomain { remote_dom: b.domid(), _pad: 0, remote_port: port, local_port: 0 }),
            EVTCHNOP_BIND_VIRQ => self.put(who, &EvtchnBindVirq { virq: b.num(26) as u32, vcpu, port: 0 }),
            EVTCHNOP_BIND_PIRQ => self.put(who, &EvtchnBindPirq { pirq: b.num(1100) as u32, flags: 0, port: 0 }),
            EVTCHNOP_ALLOC_UNBOUND => {
                self.put(who, &EvtchnAllocUnbound { dom: b.domid(), remote_dom: b.domid(), port: 0 })
            }
            EVTCHNOP_BIND_IPI => self.put(who, &EvtchnBindIpi { vcpu, port: 0 }),
            EVTCHNOP_STATUS => self.put(who, &EvtchnStatus { dom: b.domid(), port, ..Default::default() }),
            EVTCHNOP_BIND_VCPU => self.put(who, &EvtchnBindVcpu { port, vcpu }),
            EVTCHNOP_RESET | EVTCHNOP_RESET_CONT => self.put(who, &EvtchnReset { dom: b.domid() }),
            EVTCHNOP_INIT_CONTROL => {
                let c = EvtchnInitControl {
                    control_gfn: Self::page_gfn(b),
                    offset: b.num(4100) as u32 & !(b.u8() as u32 % 2 * 4),
                    vcpu,
                    ..Default::default()
                };
                self.put(who, &c)
            }
            EVTCHNOP_EXPAND_ARRAY => self.put(who, &EvtchnExpandArray { array_gfn: Self::page_gfn(b) }),
            EVTCHNOP_SET_PRIORITY => self.put(who, &EvtchnSetPriority { port, priority: b.num(17) as u32 }),
            _ => self.put(who, &EvtchnPort { port }),
        }
        let by = b.u8() as usize % 2;
        self.call_as(who, by, xen_abi::hypercall::EVENT_CHANNEL_OP, [cmd, Self::ptr(b), 0, 0, 0]);
    }

    /// The guest writes its own shared memory: a 2-level pending/mask word or selector, an
    /// upcall flag, or any word of its RAM pages (event words, control blocks, vcpu_info).
    fn scribble(&self, b: &mut Bytes, who: usize) {
        let g = self.guests[who].as_ref().unwrap();
        let hv = self.hv();
        let v = match b.u8() % 4 {
            0 => 0,
            1 => u64::MAX,
            _ => b.u64(),
        };
        if b.u8().is_multiple_of(2) {
            let off = 8 * (b.u8() as u64 % 136);
            hv.mm.phys.atomic_u64(g.d.shared_info.addr() + off).store(v, std::sync::atomic::Ordering::SeqCst);
        } else {
            let gpa = ((GUEST_RAM_GFN + 4 + b.u8() as u64 % 12) << 12) + 8 * (b.u16() as u64 % 512);
            guest_write(hv, g, gpa, &v);
        }
    }
}

fn hypercall_op() -> u64 {
    xen_abi::hypercall::MEMORY_OP
}
fn grant_op() -> u64 {
    xen_abi::hypercall::GRANT_TABLE_OP
}

thread_local! {
    /// One simulated machine for the whole run: each input gets a freshly booted hypervisor
    /// over it ([`HostMachine::reset`]), exactly as a new machine would be, without allocating
    /// and faulting in its RAM again (that was most of the time per input).
    static MACHINE: std::cell::RefCell<Option<HostMachine>> = const { std::cell::RefCell::new(None) };
}

fuzz_target!(|data: &[u8]| {
    let mut m = MACHINE.with(|c| c.borrow_mut().take()).unwrap_or_else(|| {
        HostMachine::new(1024, 40, Arc::new(NoTlb), Options { max_grant_frames: 6, ..Options::default() })
    });
    m.reset();
    let free0 = m.hv.mm.heap.free_frames();
    // Domain 2 has a GICv2, the others a GICv3.
    let guests = [
        Some(Guest::with_vcpus(&m.hv, 0, 4, 2)),
        Some(Guest::with_vcpus(&m.hv, 1, 4, 2)),
        Some(Guest::with_gic(&m.hv, 2, 4, 2, granite::vgic::Version::V2)),
    ];
    let mut w = World { m, guests, free0, timer: FakeTimer::default() };
    let mut b = Bytes(data);
    for _ in 0..64 {
        if b.0.is_empty() {
            break;
        }
        w.step(&mut b);
        let r = audit(w.hv());
        assert!(r.is_clean(), "audit: {:?}", r.violations);
    }
    for g in w.guests.iter_mut().filter_map(|g| g.take()) {
        w.m.hv.destroy_domain(&g.d);
    }
    assert!(w.m.hv.domains().is_empty(), "every domain finalised");
    assert_eq!(w.m.hv.mm.heap.free_frames(), w.free0, "every page back in the allocator");
    MACHINE.with(|c| *c.borrow_mut() = Some(w.m));
});
