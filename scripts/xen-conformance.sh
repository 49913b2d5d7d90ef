#!/usr/bin/env bash
# Boots a test guest as dom0 of a hypervisor under QEMU virt (GICv3, 2 CPUs, 2 GiB) and checks
# the guest's verdict lines. By default the hypervisor is the reference, Debian's Xen 4.17
# (fetched by scripts/fetch-payloads.sh), and the guest is target/images/smoke.img.
#
# Passes (exit 0) only if the console log has "[granite-test] ALL PASSED" (optionally after the
# "(d0) " prefix a hypervisor may put on guest output), no
# "[granite-test] FAIL" line, and QEMU exited with status 0 (the guest's poweroff).
#
# Environment (all optional):
#   HV=path          hypervisor image to boot with -kernel (e.g. target/images/granite.bin)
#   HV_CMDLINE=...   its whole command line (default: the Xen one in scripts/lib/hypervisor.sh)
#   HV_APPEND=...    options appended to the command line
#   GUEST=name       guest image target/images/<name>.img (default: smoke)
#   GUEST_ARGS=...   the guest's boot arguments (default: "console=hvc0"; add "verbose"
#                    to see every observed value)
#   LOG=path         console log (default: target/logs/<hv>-<guest>.log, <hv> = xen for Xen)
#   TIMEOUT=secs     QEMU wall-clock limit (default: 120)
#   QEMU_EXTRA=...   extra QEMU arguments (e.g. "-d int,guest_errors -D /tmp/q.log")
#   NO_BUILD=1       do not rebuild (use the images as they are)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

. scripts/lib/hypervisor.sh
pick_hypervisor conformance
GUEST=${GUEST:-smoke}
GUEST_ARGS=${GUEST_ARGS:-console=hvc0}
TIMEOUT=${TIMEOUT:-120}
LOG=${LOG:-target/logs/$hv_name-$GUEST.log}

if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh || { echo "[conformance] build failed" >&2; exit 2; }
fi
img=target/images/$GUEST.img
for f in "$HV" "$img"; do
    [ -f "$f" ] || { echo "[conformance] missing $f" >&2; exit 2; }
done
mkdir -p "$(dirname "$LOG")"

echo "[conformance] $HV ($HV_CMDLINE) + dom0 $img ($GUEST_ARGS), log $LOG"
# shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
timeout "$TIMEOUT" qemu-system-aarch64 \
    -machine virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 2 -m 2G \
    -nographic -no-reboot \
    -kernel "$HV" -append "$HV_CMDLINE" \
    -device guest-loader,addr=0x49000000,kernel="$img",bootargs="$GUEST_ARGS" \
    ${QEMU_EXTRA:-} </dev/null >"$LOG" 2>&1
qemu_rc=$?

grep -aE '^(\(d[0-9]+\) )?\[granite-test\] (PASS|FAIL|SUMMARY|ALL PASSED)' "$LOG" | tr -d '\r'
ok=1
if [ "$qemu_rc" != 0 ]; then
    [ "$qemu_rc" = 124 ] && echo "[conformance] QEMU timed out after ${TIMEOUT}s" \
        || echo "[conformance] QEMU exited with status $qemu_rc"
    ok=0
fi
grep -aEq '^(\(d[0-9]+\) )?\[granite-test\] FAIL' "$LOG" && ok=0
grep -aEq '^(\(d[0-9]+\) )?\[granite-test\] ALL PASSED' "$LOG" || { echo "[conformance] no ALL PASSED line"; ok=0; }
if [ "$ok" = 1 ]; then
    echo "[conformance] OK"
    exit 0
fi
echo "[conformance] FAILED; every mismatch, then the tail of $LOG:"
grep -aE '^(\(d[0-9]+\) )?\[granite-test\] mismatch' "$LOG" | head -n 60 | tr -d '\r'
echo "..."
tail -n 15 "$LOG" | tr -d '\r'
exit 1
