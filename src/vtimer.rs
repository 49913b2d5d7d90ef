//! The generic timers a guest sees.
//!
//! * The **virtual timer** (CNTV_*) is the guest's own: it programs the hardware directly,
//!   with CNTVOFF_EL2 set to its domain's creation time (so its virtual counter starts near
//!   zero, as on Xen). Its interrupt, PPI 27, is taken at EL2: the timer is masked
//!   (CNTV_CTL.IMASK, so the level drops) and the virtual PPI 27 injected; the guest's
//!   handler reprograms the timer (Xen's method).
//! * The **EL1 physical timer** (CNTP_*) traps (CNTHCTL_EL2.EL1PCEN = 0), so no guest can
//!   program a timer the hypervisor might use. It is emulated on the EL2 physical timer
//!   (CNTHP_*), which is free: each CPU runs one vCPU and the hypervisor keeps no timer of its
//!   own. Its interrupt (PPI 26 at EL2) masks CNTHP and injects the guest's non-secure
//!   physical timer PPI 30. The guest's physical counter is the hardware's (no offset).
//!
//! The register semantics are here, over [`TimerHw`] (the CNTHP registers on the image, a
//! fake in the tests).

/// CNTx_CTL bits.
pub const CTL_ENABLE: u64 = 1 << 0;
pub const CTL_IMASK: u64 = 1 << 1;
pub const CTL_ISTATUS: u64 = 1 << 2;

/// The guest's non-secure physical timer interrupt, and its virtual timer's.
pub const PTIMER_PPI: u32 = 30;
pub const VTIMER_PPI: u32 = 27;

/// The timer that backs the guest's physical timer (CNTHP on the image).
pub trait TimerHw {
    fn ctl(&self) -> u64;
    fn set_ctl(&self, v: u64);
    fn cval(&self) -> u64;
    fn set_cval(&self, v: u64);
    /// CNTPCT.
    fn counter(&self) -> u64;
}

/// The registers of the EL1 physical timer a guest accesses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhysReg {
    Ctl,
    Cval,
    Tval,
}

impl PhysReg {
    /// The trapped system register `(op0, op1, CRn, CRm, op2)`, if it is one of them.
    pub fn from_encoding(e: (u32, u32, u32, u32, u32)) -> Option<PhysReg> {
        match e {
            (3, 3, 14, 2, 0) => Some(PhysReg::Tval),
            (3, 3, 14, 2, 1) => Some(PhysReg::Ctl),
            (3, 3, 14, 2, 2) => Some(PhysReg::Cval),
            _ => None,
        }
    }
}

/// A guest's read of its physical timer register `r`.
pub fn read(hw: &dyn TimerHw, r: PhysReg) -> u64 {
    match r {
        // ISTATUS comes from the hardware's comparison.
        PhysReg::Ctl => hw.ctl() & (CTL_ENABLE | CTL_IMASK | CTL_ISTATUS),
        PhysReg::Cval => hw.cval(),
        // TVAL: CVAL - CNTPCT as a signed 32-bit value (zero-extended in the register).
        PhysReg::Tval => hw.cval().wrapping_sub(hw.counter()) & 0xffff_ffff,
    }
}

/// A guest's write `v` of its physical timer register `r`.
pub fn write(hw: &dyn TimerHw, r: PhysReg, v: u64) {
    match r {
        PhysReg::Ctl => hw.set_ctl(v & (CTL_ENABLE | CTL_IMASK)),
        PhysReg::Cval => hw.set_cval(v),
        // CVAL = CNTPCT + TVAL, TVAL sign-extended from 32 bits.
        PhysReg::Tval => hw.set_cval(hw.counter().wrapping_add(v as u32 as i32 as i64 as u64)),
    }
}

/// The backing timer fired: mask it (its level drops) and say the guest's PPI 30 must be
/// injected. False if it fired for nothing (disabled or masked meanwhile).
pub fn fired(hw: &dyn TimerHw) -> bool {
    let ctl = hw.ctl();
    let due = ctl & CTL_ENABLE != 0 && ctl & CTL_IMASK == 0 && ctl & CTL_ISTATUS != 0;
    if due {
        hw.set_ctl(CTL_ENABLE | CTL_IMASK);
    }
    due
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A timer whose ISTATUS follows CVAL and the counter, like the hardware's.
    #[derive(Default)]
    struct Fake {
        ctl: Cell<u64>,
        cval: Cell<u64>,
        now: Cell<u64>,
    }
    impl TimerHw for Fake {
        fn ctl(&self) -> u64 {
            let c = self.ctl.get() & (CTL_ENABLE | CTL_IMASK);
            if c & CTL_ENABLE != 0 && self.now.get() >= self.cval.get() { c | CTL_ISTATUS } else { c }
        }
        fn set_ctl(&self, v: u64) {
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

    #[test]
    fn tval_cval_ctl_and_firing() {
        let t = Fake::default();
        t.now.set(1000);
        write(&t, PhysReg::Tval, 500);
        assert_eq!(read(&t, PhysReg::Cval), 1500);
        assert_eq!(read(&t, PhysReg::Tval), 500);
        // a negative TVAL: in the past
        write(&t, PhysReg::Tval, (-10i32) as u32 as u64);
        assert_eq!(read(&t, PhysReg::Cval), 990);
        assert_eq!(read(&t, PhysReg::Tval), (-10i32) as u32 as u64);
        write(&t, PhysReg::Cval, 2000);
        write(&t, PhysReg::Ctl, CTL_ENABLE | CTL_ISTATUS | 0xf0);
        assert_eq!(read(&t, PhysReg::Ctl), CTL_ENABLE, "ISTATUS is read-only, other bits RES0");
        assert!(!fired(&t), "not yet due");
        t.now.set(2000);
        assert_eq!(read(&t, PhysReg::Ctl), CTL_ENABLE | CTL_ISTATUS);
        write(&t, PhysReg::Ctl, CTL_ENABLE);
        assert!(fired(&t), "due, enabled, unmasked: PPI 30");
        assert_eq!(read(&t, PhysReg::Ctl), CTL_ENABLE | CTL_IMASK | CTL_ISTATUS, "masked by the hypervisor");
        assert!(!fired(&t), "masked: nothing more");
        assert_eq!(PhysReg::from_encoding((3, 3, 14, 2, 1)), Some(PhysReg::Ctl));
        assert_eq!(PhysReg::from_encoding((3, 3, 14, 3, 1)), None, "CNTV_CTL is not trapped");
    }
}
