#!/usr/bin/env bash
# Cross-domain grants and event channels, end to end, on granite under QEMU virt (3 CPUs): the
# xdom guest as a domU with 2 vCPUs granting pages, and as dom0 mapping them; both bounce 1000
# notifications through an interdomain event channel (tests/guests/src/bin/xdom.rs).
# Passes (exit 0) only if dom0 prints ALL PASSED, neither side prints a FAIL line, every domU
# scenario passed, both sides' event-channel scenarios passed, the domU's crash stopped both its vCPUs and tore it down while dom0 still
# mapped its pages, its pages were freed once dom0 unmapped them, and QEMU exited 0.
#   NO_BUILD=1 uses the images as they are; TIMEOUT (default 120 s).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
[ -n "${NO_BUILD:-}" ] || bash scripts/build.sh >/dev/null || { echo "[xdom] build failed" >&2; exit 2; }
log=target/logs/xdom.log
mkdir -p target/logs
# QEMU puts each guest-loader node before the previous ones: the last one given here is the
# first kernel module in the device tree, which becomes dom0 (as on Xen).
timeout "${TIMEOUT:-120}" qemu-system-aarch64 -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 3 -m 2G \
    -nographic -no-reboot -kernel "${HV:-target/images/granite.bin}" \
    -append "dom0_mem=128M loglvl=all granite_audit=1" \
    -device "guest-loader,addr=0x4a000000,kernel=target/images/xdom.img,bootargs=role=domu granite.vcpus=2 granite.mem=32M" \
    -device "guest-loader,addr=0x49000000,kernel=target/images/xdom.img,bootargs=role=dom0" \
    </dev/null >"$log" 2>&1
rc=$?
fail=0
need() { grep -aqF -- "$1" "$log" || { echo "[xdom] missing: $1"; fail=1; }; }
grep -aE '\[granite-test\] (PASS|FAIL|SUMMARY|ALL PASSED)' "$log" | tr -d '\r'
[ "$rc" = 0 ] || { echo "[xdom] QEMU exit status $rc"; fail=1; }
grep -aq '\[granite-test\] FAIL' "$log" && { echo "[xdom] a FAIL line"; fail=1; }
need "(d0) [granite-test] ALL PASSED"
for s in domu_evtchn_setup domu_sees_reply_and_flags_cleared domu_read_only_page_untouched domu_revokes_a_mapped_grant \
    domu_revoked_entry_stays_clear domu_evtchn_bounce domu_evtchn_after_peer_close; do
    need "(d1) [granite-test] PASS $s"
done
for s in evtchn_setup evtchn_interdomain_bounce; do
    need "(d0) [granite-test] PASS $s"
done
need "d1v0 pinned to CPU1"
need "d1v1 pinned to CPU2"
need "d1v0: domain shutdown (crash): stopping its vCPUs"
need "d1v1: stopped on CPU2"
need "d1: destroyed;"
need "d1: every page freed, domain finalised"
reject_panic=$(grep -ac "Panic" "$log")
[ "$reject_panic" = 0 ] || { echo "[xdom] the hypervisor panicked"; fail=1; }
if [ "$fail" = 0 ]; then
    echo "[xdom] OK"
else
    echo "[xdom] FAILED; the end of $log:"
    tail -n 30 "$log"
fi
exit "$fail"
