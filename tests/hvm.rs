//! `hvm_op` get/set_param and `physdev_op` through the hypercall dispatch, with Xen 4.17's
//! answers: dom0 reads its event-channel callback (a PPI, level low), sets a domU's xenstore
//! parameters as its toolstack, and every bad argument gets Xen's errno with the machine's
//! fingerprint unchanged.

use granite::hv::Options;
use granite::testing::*;
use granite::tlb::NoTlb;
use std::sync::Arc;
use xen_abi::errno::*;
use xen_abi::hvm::*;
use xen_abi::hypercall as hc;
use xen_abi::{DOMID_SELF, XenHvmParam};

fn param(g: &Guest, hv: &granite::hv::Hypervisor, op: u64, domid: u16, index: u32, value: u64) -> (i64, u64) {
    g.put(hv, ARG, &XenHvmParam { domid, _pad: 0, index, value });
    let r = g.ret(hv, hc::HVM_OP, [op, ARG, 0, 0, 0]);
    (r, g.get::<XenHvmParam>(hv, ARG).value)
}

#[test]
fn params_as_xen_answers_them() {
    let m = HostMachine::new(4096, 40, Arc::new(NoTlb), Options::default());
    let hv = &m.hv;
    let d0 = Guest::new(hv, 0, 4);
    let d1 = Guest::new(hv, 1, 4);
    let cb = param(&d0, hv, HVMOP_GET_PARAM, DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, 0);
    assert_eq!(cb, (0, (2 << 56) | (2 << 8) | d0.d.evtchn_ppi as u64), "type PPI, level low, its PPI");
    assert_eq!(param(&d1, hv, HVMOP_GET_PARAM, DOMID_SELF, HVM_PARAM_STORE_EVTCHN, 7), (0, 0));
    // The toolstack sets a domU's xenstore port; the domU reads it.
    assert_eq!(param(&d0, hv, HVMOP_SET_PARAM, 1, HVM_PARAM_STORE_EVTCHN, 5).0, 0);
    assert_eq!(param(&d1, hv, HVMOP_GET_PARAM, DOMID_SELF, HVM_PARAM_STORE_EVTCHN, 0), (0, 5));
    assert_eq!(param(&d0, hv, HVMOP_GET_PARAM, 1, HVM_PARAM_STORE_EVTCHN, 0), (0, 5), "and so does dom0");

    // Bad input: Xen's errno, nothing changed.
    let before = fingerprint(hv);
    let cases: &[(&Guest, u64, u16, u32, i64, &str)] = &[
        (&d1, HVMOP_SET_PARAM, DOMID_SELF, HVM_PARAM_STORE_PFN, -EPERM, "a domain setting its own"),
        (&d0, HVMOP_SET_PARAM, DOMID_SELF, HVM_PARAM_CALLBACK_IRQ, -EPERM, "dom0 setting its own"),
        (&d1, HVMOP_GET_PARAM, 0, HVM_PARAM_CALLBACK_IRQ, -EPERM, "a domU reading dom0's"),
        (&d1, HVMOP_SET_PARAM, 0, HVM_PARAM_STORE_PFN, -EPERM, "a domU setting dom0's"),
        (&d0, HVMOP_GET_PARAM, DOMID_SELF, 3, -EINVAL, "not a guest-visible parameter"),
        (&d0, HVMOP_SET_PARAM, 1, 3, -EINVAL, "not settable"),
        (&d0, HVMOP_GET_PARAM, DOMID_SELF, HVM_NR_PARAMS, -EINVAL, "out of range"),
        (&d0, HVMOP_GET_PARAM, DOMID_SELF, u32::MAX, -EINVAL, "far out of range"),
        (&d0, HVMOP_GET_PARAM, 9, HVM_PARAM_STORE_PFN, -ESRCH, "no such domain"),
        (&d0, HVMOP_GET_PARAM, 9, HVM_NR_PARAMS, -EINVAL, "the index is checked first"),
        (&d0, 2, DOMID_SELF, 0, -ENOSYS, "another op"),
        (&d0, u64::MAX, DOMID_SELF, 0, -ENOSYS, "a wild op"),
    ];
    for &(g, op, domid, index, want, what) in cases {
        assert_eq!(param(g, hv, op, domid, index, 0xbad).0, want, "{what}");
    }
    assert_eq!(d0.ret(hv, hc::HVM_OP, [HVMOP_GET_PARAM, 0xdead_0000_0000, 0, 0, 0]), -EFAULT);
    assert_eq!(d0.ret(hv, hc::PHYSDEV_OP, [25, ARG, 0, 0, 0]), -ENOSYS, "PHYSDEVOP_pci_device_add");
    assert_eq!(d1.ret(hv, hc::PHYSDEV_OP, [15, ARG, 0, 0, 0]), -ENOSYS);
    assert_eq!(fingerprint(hv), before, "bad input changed the machine");
}
