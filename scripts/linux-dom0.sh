#!/usr/bin/env bash
# Boots Debian's unmodified arm64 Linux 6.1 (target/payloads/linux, scripts/fetch-payloads.sh
# linux) as dom0 of a hypervisor under QEMU virt, with the initramfs of
# scripts/linux-initramfs.sh, whose /init (tests/linux/init) prints "[linux-dom0] ..." check
# lines, "[linux-dom0] RESULT: PASS|FAIL ..." and powers the machine off.
#
# Passes (exit 0) only if QEMU exited with status 0 (dom0's power-off), the log has
# "[linux-dom0] RESULT: PASS", and it has every dmesg marker of EXPECT. Exit 1: failed;
# exit 2: could not run (payloads, initramfs or hypervisor image missing).
#
# Environment (all optional):
#   HV=path        hypervisor image for -kernel (default: Debian's Xen 4.17, scripts/lib/hypervisor.sh;
#                  e.g. HV=target/images/granite.bin)
#   HV_CMDLINE=... its whole command line (default: "dom0_mem=512M console=dtuart
#                  dtuart=/pl011@9000000 loglvl=info dom0_max_vcpus=$SMP")
#   HV_APPEND=...  options appended to it
#   GIC=3|2        QEMU virt's GIC version (default 3)
#   SMP=n          CPUs of the machine, dom0's vCPUs and granite.cpus=n (default 2)
#   KERNEL=path    the dom0 Image (default: target/payloads/linux/boot/vmlinuz-*-arm64)
#   LINUX_ARGS=... dom0's command line (default: "console=hvc0 earlycon=xenboot rdinit=/init
#                  granite.cpus=$SMP"); LINUX_APPEND=... is appended to it
#   EXPECT=a|b|... fixed strings the log must contain (default: what Xen 4.17's dom0 prints:
#                  "Xen 4.17 support found|Grant table initialized|xen:events: Using FIFO-based
#                  ABI|Xen: initializing cpu0|...cpu<SMP-1>|xen:balloon: Initialising balloon
#                  driver"); EXPECT= (empty) checks none
#   TIMEOUT=secs   QEMU wall-clock limit (default 180)
#   LOG=path       console log (default: target/logs/<hv>-linux-gic<GIC>.log, <hv> = xen for Xen)
#   EXTRA_BIN=...  passed to scripts/linux-initramfs.sh (default: target/linux/xen-selftest, built
#                  by scripts/build-selftest.sh; /init runs it and folds its exit status in)
#   SELFTEST=0     leave xen-selftest out (when EXTRA_BIN is unset)
#   QEMU_EXTRA=... extra QEMU arguments
#   SHELL_MODE=1   add granite.shell (init starts a shell instead of powering off) and attach the
#                  console to this terminal, no timeout, no verdict (for humans). QEMU's escape
#                  character is moved to Ctrl-] so that Ctrl-a reaches the hypervisor (Ctrl-a
#                  three times: input to the hypervisor's debug keys and back); Ctrl-] x quits QEMU
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { echo "[linux-dom0] $*"; }

GIC=${GIC:-3}
SMP=${SMP:-2}
TIMEOUT=${TIMEOUT:-180}
HV_CMDLINE=${HV_CMDLINE:-dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=info dom0_max_vcpus=$SMP}
. scripts/lib/hypervisor.sh
pick_hypervisor linux-dom0
LOG=${LOG:-target/logs/$hv_name-linux-gic$GIC.log}

if [ -z "${KERNEL:-}" ]; then
    if ! ls target/payloads/linux/boot/vmlinuz-*-arm64 >/dev/null 2>&1; then
        bash scripts/fetch-payloads.sh linux || { say "cannot fetch the Linux kernel" >&2; exit 2; }
    fi
    KERNEL=$(ls target/payloads/linux/boot/vmlinuz-*-arm64 | head -n1)
fi
if [ -z "${EXTRA_BIN+set}" ] && [ "${SELFTEST:-1}" != 0 ]; then
    bash scripts/build-selftest.sh || { say "cannot build xen-selftest (SELFTEST=0 leaves it out)" >&2; exit 2; }
    export EXTRA_BIN=target/linux/xen-selftest
fi
bash scripts/linux-initramfs.sh || { say "cannot build the initramfs" >&2; exit 2; }
INITRD=target/linux/initramfs.cpio.gz
for f in "$HV" "$KERNEL" "$INITRD"; do
    [ -f "$f" ] || { say "missing $f" >&2; exit 2; }
done

LINUX_ARGS=${LINUX_ARGS:-console=hvc0 earlycon=xenboot rdinit=/init granite.cpus=$SMP}
[ -n "${LINUX_APPEND:-}" ] && LINUX_ARGS="$LINUX_ARGS $LINUX_APPEND"
[ "${SHELL_MODE:-0}" = 1 ] && LINUX_ARGS="$LINUX_ARGS granite.shell"
if [ -z "${EXPECT+set}" ]; then
    EXPECT="Xen 4.17 support found|Grant table initialized|xen:events: Using FIFO-based ABI"
    for ((c = 0; c < SMP; c++)); do EXPECT="$EXPECT|Xen: initializing cpu$c"; done
    EXPECT="$EXPECT|xen:balloon: Initialising balloon driver"
fi

# The kernel at 0x49000000 (a ~32 MiB Image), the initramfs above it at 0x52000000: guest-loader
# modules become the /chosen multiboot,kernel and multiboot,ramdisk nodes Xen boots dom0 from.
qemu_args=(
    -machine "virt,virtualization=on,gic-version=$GIC" -cpu cortex-a57 -smp "$SMP" -m 2G
    -nographic -no-reboot
    -kernel "$HV" -append "$HV_CMDLINE"
    -device "guest-loader,addr=0x49000000,kernel=$KERNEL,bootargs=$LINUX_ARGS"
    -device "guest-loader,addr=0x52000000,initrd=$INITRD"
)

if [ "${SHELL_MODE:-0}" = 1 ]; then
    say "$HV ($HV_CMDLINE) + dom0 $KERNEL ($LINUX_ARGS), interactive; Ctrl-] x quits QEMU"
    # shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
    exec qemu-system-aarch64 "${qemu_args[@]}" -echr 0x1d ${QEMU_EXTRA:-}
fi

mkdir -p "$(dirname "$LOG")"
say "$HV ($HV_CMDLINE) + dom0 $KERNEL ($LINUX_ARGS), GICv$GIC, $SMP CPUs, log $LOG"
rm -f "$LOG"
t0=$SECONDS
# shellcheck disable=SC2086 # QEMU_EXTRA is a list of arguments
timeout "$TIMEOUT" qemu-system-aarch64 "${qemu_args[@]}" ${QEMU_EXTRA:-} </dev/null >"$LOG" 2>&1 &
qpid=$!
# Watch the log: a run that printed its RESULT (or panicked) but did not power off is stopped
# after a grace period instead of spinning until TIMEOUT.
stopped=""
deadline=""
while kill -0 "$qpid" 2>/dev/null; do
    if [ -z "$deadline" ]; then
        if grep -aq '\[linux-dom0\] RESULT:' "$LOG" 2>/dev/null; then
            deadline=$((SECONDS + 20)) why="did not power off within 20 s of its RESULT line"
        elif grep -aqE 'Kernel panic - not syncing|Hardware Dom0 crashed' "$LOG" 2>/dev/null; then
            deadline=$((SECONDS + 5)) why="stopped 5 s after a panic/crash"
        fi
    elif [ "$SECONDS" -ge "$deadline" ]; then
        stopped=$why
        kill "$qpid" 2>/dev/null
        break
    fi
    sleep 1
done
wait "$qpid"
qemu_rc=$?
wall=$((SECONDS - t0))

log() { tr -d '\r' <"$LOG"; }
# init's lines and those of /bin/xen-selftest, without a hypervisor's "(d0) " prefix
log | grep -aE '\[(linux-dom0|xen-selftest)\] ' | sed -E 's/^.*(\[(linux-dom0|xen-selftest)\] )/\1/'
init_at=$(log | sed -n 's/^\(([^)]*) \)\{0,1\}\[ *\([0-9.]*\)\] Run \/init as init process.*/\2/p' | head -n1)
if [ -n "$init_at" ]; then
    say "init at $init_at s guest time"
else
    say "init never started (no \"Run /init as init process\")"
fi

ok=1
if [ -n "$stopped" ]; then
    say "QEMU $stopped"
    ok=0
elif [ "$qemu_rc" = 124 ]; then
    say "QEMU timed out after ${TIMEOUT}s"
    ok=0
elif [ "$qemu_rc" != 0 ]; then
    say "QEMU exited with status $qemu_rc"
    ok=0
fi
# (grep the file itself: "tr | grep -q" would fail under pipefail when grep stops early)
grep -aqF '[linux-dom0] RESULT: PASS' "$LOG" || { say "no \"[linux-dom0] RESULT: PASS\" line"; ok=0; }
if [ -n "$EXPECT" ]; then
    IFS='|' read -r -a want <<<"$EXPECT"
    for w in "${want[@]}"; do
        [ -z "$w" ] && continue
        grep -aqF -- "$w" "$LOG" || { say "log lacks: $w"; ok=0; }
    done
fi

what="$hv_name, GICv$GIC, $SMP CPUs, ${wall} s wall, init at ${init_at:-?} s guest time"
if [ "$ok" = 1 ]; then
    say "VERDICT: PASS ($what)"
    exit 0
fi
say "VERDICT: FAIL ($what); the tail of $LOG:"
log | tail -n 25
exit 1
