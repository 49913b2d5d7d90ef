#!/usr/bin/env bash
# Runs the SMP hypercall fuzz guest (tests/guests/src/bin/fuzz.rs) as dom0 of a hypervisor
# under QEMU virt (GICv3, 2 GiB, 4 CPUs), once per seed, each run under `timeout`.
#
# Usage: scripts/fuzz.sh [seed...]
#   Default seeds: 0x1 0x2a 0xdecafbad and one fresh random seed (printed, so that a failing
#   run can be repeated with `scripts/fuzz.sh <seed>`).
#
# Exit status 0 only if every run printed "[granite-fuzz] PASS" (and no FAIL line) and QEMU
# exited with status 0 (the guest's SCHEDOP_shutdown poweroff). Guest lines may carry the
# "(d0) " prefix a hypervisor puts on guest output. Each run's SUMMARY line is printed; the
# console logs are target/logs/fuzz-<hv>-<seed>.log.
#
# Environment (all optional):
#   HV=path          hypervisor image for -kernel (default: Debian's Xen 4.17, fetched by
#                    scripts/fetch-payloads.sh), e.g. HV=target/images/granite.bin
#   HV_CMDLINE=...   its whole command line (default: the Xen one in scripts/lib/hypervisor.sh)
#   HV_APPEND=...    appended to the command line (e.g. HV_APPEND=granite_audit=1)
#   ITERS=n          hypercalls per vCPU (default 20000: a few tens of seconds under TCG)
#   AUDIT_EVERY=n    audit hypercall every n hypercalls per vCPU (default 1000)
#   SMP=n            CPUs of the QEMU machine = dom0 vCPUs (default 4)
#   GUEST_ARGS=...   extra guest boot arguments (e.g. "quirks=none", "vcpus=1", "trace")
#   TIMEOUT=secs     wall-clock limit per run (default 300)
#   QEMU_EXTRA=...   extra QEMU arguments
#   NO_BUILD=1       use target/images/fuzz.img as it is
#   GRANTER=1        also boot the same image as domain 1 with role=granter (granite only: Xen
#                    4.17 starts no domU from a boot module): one vCPU that rewrites and
#                    revokes the grants dom0 maps and copies, swaps granted pages for grant
#                    frames and holes, and crashes after GRANTER_CRASH_MS ms of guest time
#                    (default 4000, 0 = never) while dom0 still maps its pages. Dom0 gets one
#                    vCPU fewer than SMP (give HV_APPEND dom0_max_vcpus=SMP-1), and its SUMMARY
#                    must show xmaps > 0 (it mapped the granter's grants)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

. scripts/lib/hypervisor.sh
pick_hypervisor fuzz
ITERS=${ITERS:-20000}
AUDIT_EVERY=${AUDIT_EVERY:-1000}
SMP=${SMP:-4}
TIMEOUT=${TIMEOUT:-300}
img=target/images/fuzz.img

if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh >/dev/null || { echo "[fuzz] build failed" >&2; exit 2; }
fi
for f in "$HV" "$img"; do
    [ -f "$f" ] || { echo "[fuzz] missing $f" >&2; exit 2; }
done
mkdir -p target/logs

if [ $# -gt 0 ]; then
    seeds=("$@")
else
    fresh=0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')
    echo "[fuzz] fresh random seed: $fresh"
    seeds=(0x1 0x2a 0xdecafbad "$fresh")
fi

# A guest line, optionally after the "(dN) " prefix a hypervisor may add.
line='^(\(d[0-9]+\) )?\[granite-fuzz\]'
failed=()
summaries=()
for seed in "${seeds[@]}"; do
    log=target/logs/fuzz-$hv_name-$seed.log
    args="console=hvc0 seed=$seed iters=$ITERS audit_every=$AUDIT_EVERY ${GUEST_ARGS:-}"
    # QEMU puts each guest-loader node before the previous ones: dom0's module comes last.
    granter=()
    if [ -n "${GRANTER:-}" ]; then
        args="$args granter=1"
        granter=(-device "guest-loader,addr=0x4c000000,kernel=$img,bootargs=console=hvc0 role=granter seed=$seed crash_ms=${GRANTER_CRASH_MS:-4000} granite.vcpus=1 granite.mem=32M")
    fi
    echo "[fuzz] seed $seed: $HV ($HV_CMDLINE), -smp $SMP, dom0 $img ($args), log $log"
    t0=$SECONDS
    # shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
    timeout "$TIMEOUT" qemu-system-aarch64 \
        -machine virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp "$SMP" -m 2G \
        -nographic -no-reboot \
        -kernel "$HV" -append "$HV_CMDLINE" \
        "${granter[@]}" \
        -device guest-loader,addr=0x49000000,kernel="$img",bootargs="$args" \
        ${QEMU_EXTRA:-} </dev/null >"$log" 2>&1
    qemu_rc=$?
    # The SUMMARY line, re-joined if the hypervisor wrapped it: continuation lines carry the
    # "(dN) " prefix but no "[granite" tag.
    summary=$(tr -d '\r' <"$log" | awk '
        /^(\(d[0-9]+\) )?\[granite-fuzz\] SUMMARY/ { s = $0; joining = 1; next }
        joining && /^\(d[0-9]+\) / && !/^\(d[0-9]+\) \[granite/ { sub(/^\(d[0-9]+\) /, ""); s = s $0; next }
        { joining = 0 }
        END { print s }')
    ok=1
    reason=
    if [ "$qemu_rc" != 0 ]; then
        ok=0
        if [ "$qemu_rc" = 124 ]; then reason="QEMU timed out after ${TIMEOUT}s"; else reason="QEMU exited with status $qemu_rc"; fi
    fi
    if grep -aEq "$line FAIL" "$log"; then ok=0; reason="${reason:+$reason; }FAIL line"; fi
    if ! grep -aEq "$line PASS" "$log"; then ok=0; reason="${reason:+$reason; }no PASS line"; fi
    if [ -n "${GRANTER:-}" ] && ! grep -Eq ' xmaps=[1-9]' <<<"$summary"; then
        ok=0
        reason="${reason:+$reason; }dom0 never mapped a grant of the granter (xmaps)"
    fi
    echo "${summary:-[fuzz] seed $seed: no SUMMARY line}"
    summaries+=("${summary:-seed=$seed: no SUMMARY}")
    if [ "$ok" = 1 ]; then
        echo "[fuzz] seed $seed: PASS ($((SECONDS - t0))s wall)"
    else
        failed+=("$seed")
        echo "[fuzz] seed $seed: FAILED ($reason, $((SECONDS - t0))s wall); failures, then the tail of $log:"
        grep -aE "$line (CHECK FAILED|AUDIT|FAIL|history|  t=)|^(\(d[0-9]+\) )?\[granite\] cpu|Assertion|\(XEN\) (\*\*\*|Panic)|Xen BUG|panic" "$log" |
            head -n 60 | tr -d '\r'
        echo "..."
        tail -n 10 "$log" | tr -d '\r' | cut -c1-300
    fi
done

echo "[fuzz] summary lines:"
printf '%s\n' "${summaries[@]}"
if [ ${#failed[@]} -eq 0 ]; then
    echo "[fuzz] OK: ${#seeds[@]} run(s) passed"
    exit 0
fi
echo "[fuzz] FAILED seeds: ${failed[*]} (repeat one with: scripts/fuzz.sh <seed>)"
exit 1
