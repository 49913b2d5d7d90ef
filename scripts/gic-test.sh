#!/usr/bin/env bash
# The GIC and timer guest (tests/guests/src/bin/gic.rs) as dom0 with 2 vCPUs under QEMU virt,
# once with GICv3 and once with GICv2: distributor/redistributor register semantics, SGIs
# between the vCPUs, the virtual timer, priority masking and preemption, more pending
# interrupts than list registers, WFI wake-ups, pending/active state, bad targets and INTIDs,
# and a short seeded fuzz of the GIC registers followed by a working timer interrupt.
#
# Passes (exit 0) only if, for each GIC version, the console log has "[granite-test] ALL
# PASSED" (optionally after the "(d0) " prefix), no "[granite-test] FAIL" line, no hypervisor
# panic, and QEMU exited with status 0 (the guest's poweroff).
#
# Environment (all optional):
#   HV=path          hypervisor image (default: target/images/granite.bin); HV=xen boots
#                    Debian's Xen 4.17 (scripts/lib/hypervisor.sh), where the guest expects
#                    Xen's answers where Xen deviates from the architecture (quirks=xen) and
#                    prints each deviation as a "[gic] xen deviation:" line
#   HV_CMDLINE=...   the hypervisor's whole command line (default: the Xen one every
#                    comparison run uses, with dom0_max_vcpus=2)
#   HV_APPEND=...    options appended to it
#   GICS="3 2"       the GIC versions to run, in order
#   GUEST_ARGS=...   the guest's boot arguments (default "console=hvc0"; add "verbose" to see
#                    every observed value, "seed=N" / "fuzz_iters=N" for the fuzz scenario)
#   TIMEOUT=secs     QEMU wall-clock limit per run (default: 180)
#   QEMU_EXTRA=...   extra QEMU arguments
#   NO_BUILD=1       do not rebuild (use the images as they are)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

. scripts/lib/hypervisor.sh
HV=${HV:-target/images/granite.bin}
[ "$HV" = xen ] && HV=
pick_hypervisor gic
case " $HV_CMDLINE " in *" dom0_max_vcpus="*) ;; *) HV_CMDLINE="$HV_CMDLINE dom0_max_vcpus=2" ;; esac
GICS=${GICS:-3 2}
GUEST_ARGS=${GUEST_ARGS:-console=hvc0}
TIMEOUT=${TIMEOUT:-180}
img=target/images/gic.img

if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh || { echo "[gic] build failed" >&2; exit 2; }
fi
for f in "$HV" "$img"; do
    [ -f "$f" ] || { echo "[gic] missing $f" >&2; exit 2; }
done
mkdir -p target/logs

status=0
for v in $GICS; do
    log=target/logs/$hv_name-gic-v$v.log
    echo "[gic] GICv$v: $HV ($HV_CMDLINE) + dom0 $img ($GUEST_ARGS), log $log"
    # shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
    timeout "$TIMEOUT" qemu-system-aarch64 \
        -machine virt,virtualization=on,gic-version="$v" -cpu cortex-a57 -smp 2 -m 2G \
        -nographic -no-reboot \
        -kernel "$HV" -append "$HV_CMDLINE" \
        -device guest-loader,addr=0x49000000,kernel="$img",bootargs="$GUEST_ARGS" \
        ${QEMU_EXTRA:-} </dev/null >"$log" 2>&1
    qemu_rc=$?

    grep -aE '^(\(d[0-9]+\) )?\[granite-test\] (PASS|FAIL|SUMMARY|ALL PASSED)' "$log" | tr -d '\r'
    grep -aE '^(\(d[0-9]+\) )?\[gic\] (timer latency|WFI wake-up|xen deviation|fuzz)' "$log" | tr -d '\r'
    ok=1
    if [ "$qemu_rc" != 0 ]; then
        [ "$qemu_rc" = 124 ] && echo "[gic] GICv$v: QEMU timed out after ${TIMEOUT}s" \
            || echo "[gic] GICv$v: QEMU exited with status $qemu_rc"
        ok=0
    fi
    grep -aEq '^(\(d[0-9]+\) )?\[granite-test\] FAIL' "$log" && ok=0
    grep -aEq '^(\(d[0-9]+\) )?\[granite-test\] ALL PASSED' "$log" || { echo "[gic] GICv$v: no ALL PASSED line"; ok=0; }
    if grep -aq '(granite) Panic' "$log"; then
        echo "[gic] GICv$v: the hypervisor panicked"
        ok=0
    fi
    if [ "$ok" = 1 ]; then
        echo "[gic] GICv$v: OK"
    else
        echo "[gic] GICv$v: FAILED; every mismatch, then the tail of $log:"
        grep -aE '^(\(d[0-9]+\) )?\[granite-test\] mismatch' "$log" | head -n 60 | tr -d '\r'
        echo "..."
        tail -n 15 "$log" | tr -d '\r'
        status=1
    fi
done
[ "$status" = 0 ] && echo "[gic] OK" || echo "[gic] FAILED"
exit "$status"
