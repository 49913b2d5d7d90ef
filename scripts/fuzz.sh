#!/usr/bin/env bash
# Runs the SMP hypercall fuzz guest (tests/guests/src/bin/fuzz.rs) as dom0 of a hypervisor
# under QEMU virt (GICv3 or GICv2, 2 GiB, 4 CPUs), once per seed, each run under `timeout`.
#
# Usage: scripts/fuzz.sh [seed...]
#   Default seeds: 0x1 0x2a 0xdecafbad and one fresh random seed. The seed `fresh` stands for
#   a fresh random seed too; fresh seeds are printed, so that a failing run can be repeated
#   with `scripts/fuzz.sh <seed>` (and the same environment).
#        scripts/fuzz.sh --total FILE
#   Prints the total of the runs recorded in FILE (see FUZZ_TOTALS) as one line,
#   "[fuzz] total: N hypercalls over M runs, A audits, V violations, ..." and removes FILE.
#
# Exit status 0 only if every run printed "[granite-fuzz] PASS" (and no FAIL line) and QEMU
# exited with status 0 (the guest's SCHEDOP_shutdown poweroff). Guest lines may carry the
# "(d0) " prefix a hypervisor puts on guest output. Each run's SUMMARY line is printed, with
# its hypercalls per second of wall time, then the total of the invocation; the console logs
# are target/logs/fuzz-<hv>-<seed>.log (fuzz-<hv>-gicv2-<seed>.log with GIC=2). A failure
# prints the whole command that repeats it.
#
# Environment (all optional):
#   HV=path          hypervisor image for -kernel (default: Debian's Xen 4.17, fetched by
#                    scripts/fetch-payloads.sh), e.g. HV=target/images/granite.bin
#   HV_CMDLINE=...   its whole command line (default: the Xen one in scripts/lib/hypervisor.sh)
#   HV_APPEND=...    appended to the command line (e.g. HV_APPEND=granite_audit=1)
#   ITERS=n          hypercalls per vCPU (default 20000: a few seconds under TCG without the
#                    audit; each audit stops every vCPU for a few hundred milliseconds)
#   AUDIT_EVERY=n    audit hypercall every n hypercalls per vCPU (default 1000; 0 = only at
#                    the start and the end)
#   SMP=n            CPUs of the QEMU machine = dom0 vCPUs (default 4)
#   MEM=size         RAM of the QEMU machine (default 2G; the audit walks every frame, so
#                    1G makes it cheaper)
#   GIC=3|2          the GIC version of the QEMU machine (default 3)
#   GUEST_ARGS=...   extra guest boot arguments (e.g. "quirks=none", "vcpus=1", "trace",
#                    "gicfuzz=0", "skip=21+23": leave out those operations)
#   TIMEOUT=secs     wall-clock limit per run (default 300)
#   QEMU_EXTRA=...   extra QEMU arguments
#   NO_BUILD=1       use the guest image as it is
#   IMG=path         the guest image (default target/images/fuzz.img)
#   FUZZ_TOTALS=file append one line per run ("hv seed hypercalls audits violations seconds
#                    passed") to file, for `scripts/fuzz.sh --total file`
#   GRANTER=1        also boot the same image as domain 1 with role=granter (granite only: Xen
#                    4.17 starts no domU from a boot module): one vCPU that rewrites and
#                    revokes the grants dom0 maps and copies, swaps granted pages for grant
#                    frames and holes, gives pages back and takes new ones, and crashes after
#                    GRANTER_CRASH_MS ms of guest time (default 4000, 0 = never) while dom0
#                    still maps its pages. Dom0 gets one vCPU fewer than SMP (give HV_APPEND
#                    dom0_max_vcpus=SMP-1), and its SUMMARY must show xmaps > 0 (it mapped the
#                    granter's grants)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# "hv seed hypercalls audits violations seconds passed" lines -> one total line.
print_total() {
    awk '{ n++; h += $3; a += $4; v += $5; s += $6; if ($7 != 1) bad++ }
        END { printf "[fuzz] total: %d hypercalls over %d runs, %d audits, %d violations, %d failed runs, %d s wall (%d hypercalls/s)\n",
              h, n, a, v, bad, s, (s > 0 ? h / s : 0) }' "$1"
}
if [ "${1:-}" = --total ]; then
    [ -f "${2:-}" ] || { echo "[fuzz] total: no runs recorded (${2:-no file given})"; exit 1; }
    print_total "$2"
    rm -f "$2"
    exit 0
fi

. scripts/lib/hypervisor.sh
pick_hypervisor fuzz
ITERS=${ITERS:-20000}
AUDIT_EVERY=${AUDIT_EVERY:-1000}
SMP=${SMP:-4}
MEM=${MEM:-2G}
GIC=${GIC:-3}
TIMEOUT=${TIMEOUT:-300}
img=${IMG:-target/images/fuzz.img}

if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh >/dev/null || { echo "[fuzz] build failed" >&2; exit 2; }
fi
for f in "$HV" "$img"; do
    [ -f "$f" ] || { echo "[fuzz] missing $f" >&2; exit 2; }
done
mkdir -p target/logs

fresh_seed() {
    local f
    f=0x$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')
    echo "[fuzz] fresh random seed: $f" >&2
    echo "$f"
}
if [ $# -gt 0 ]; then
    seeds=()
    for s in "$@"; do
        if [ "$s" = fresh ]; then seeds+=("$(fresh_seed)"); else seeds+=("$s"); fi
    done
else
    seeds=(0x1 0x2a 0xdecafbad "$(fresh_seed)")
fi
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
# The number after " name=" in a SUMMARY line (0 if none).
num() {
    local v
    v=$(grep -o " $1=[0-9]*" <<<"$2" | head -n1 | cut -d= -f2)
    echo "${v:-0}"
}

# A guest line, optionally after the "(dN) " prefix a hypervisor may add.
line='^(\(d[0-9]+\) )?\[granite-fuzz\]'
failed=()
summaries=()
for seed in "${seeds[@]}"; do
    log=target/logs/fuzz-$hv_name$([ "$GIC" = 3 ] || echo "-gicv$GIC")-$seed.log
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
        -machine virt,virtualization=on,gic-version="$GIC" -cpu cortex-a57 -smp "$SMP" -m "$MEM" \
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
    wall=$((SECONDS - t0))
    hcs=$(num hypercalls "$summary")
    run_line="$hv_name $seed $hcs $(num audits "$summary") $(num violations "$summary") $wall $ok"
    echo "$run_line" >>"$runs"
    if [ -n "${FUZZ_TOTALS:-}" ]; then
        echo "$run_line" >>"$FUZZ_TOTALS"
    fi
    if [ "$ok" = 1 ]; then
        echo "[fuzz] seed $seed: PASS (${wall}s wall, $hcs hypercalls, $((hcs / (wall > 0 ? wall : 1))) per second of wall time)"
    else
        failed+=("$seed")
        echo "[fuzz] seed $seed: FAILED ($reason, ${wall}s wall); failures, then the tail of $log:"
        grep -aE "$line (CHECK FAILED|AUDIT|FAIL|history|  t=)|^(\(d[0-9]+\) )?\[granite\] cpu|Assertion|\(XEN\) (\*\*\*|Panic)|Xen BUG|panic" "$log" |
            head -n 60 | tr -d '\r'
        echo "..."
        tail -n 10 "$log" | tr -d '\r' | cut -c1-300
    fi
done

echo "[fuzz] summary lines:"
printf '%s\n' "${summaries[@]}"
print_total "$runs"
if [ ${#failed[@]} -eq 0 ]; then
    echo "[fuzz] OK: ${#seeds[@]} run(s) passed"
    exit 0
fi
repeat=
for v in HV HV_APPEND ITERS AUDIT_EVERY SMP MEM GIC GUEST_ARGS GRANTER GRANTER_CRASH_MS IMG QEMU_EXTRA; do
    if [ -n "${!v:-}" ]; then repeat+="$v=\"${!v}\" "; fi
done
echo "[fuzz] FAILED seeds: ${failed[*]}; repeat one with: ${repeat}NO_BUILD=1 scripts/fuzz.sh <seed>"
exit 1
