#!/usr/bin/env bash
# Console input, end to end: Debian's Linux 6.1 as dom0 (the initramfs of
# scripts/linux-initramfs.sh, init told to start a shell: granite.shell) under QEMU virt, typed
# at through QEMU's serial port like a person would (scripts/lib/console_drive.py):
#   1. a command to dom0's shell; its output must come back (the shell computed it);
#   2. Ctrl-A three times: input goes to the hypervisor ("*** Serial input to ..."), whose 'q'
#      debug key dumps its domains; Ctrl-A three times again: back to DOM0;
#   3. another command, then "poweroff -f": QEMU must exit 0.
# On Xen 4.17 (HV unset) the same steps pass: it is the reference.
#
# Environment: HV (default Xen 4.17, scripts/lib/hypervisor.sh; e.g. target/images/granite.bin),
# GIC (3), SMP (2), TIMEOUT (180 s), LOG (target/logs/<hv>-console-gic<GIC>.log).
# Exit status: 0 pass, 1 fail, 2 could not run.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { echo "[console-test] $*"; }

GIC=${GIC:-3}
SMP=${SMP:-2}
HV_CMDLINE=${HV_CMDLINE:-dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=info dom0_max_vcpus=$SMP}
. scripts/lib/hypervisor.sh
pick_hypervisor console-test
LOG=${LOG:-target/logs/$hv_name-console-gic$GIC.log}
if ! ls target/payloads/linux/boot/vmlinuz-*-arm64 >/dev/null 2>&1; then
    bash scripts/fetch-payloads.sh linux || { say "cannot fetch the Linux kernel" >&2; exit 2; }
fi
KERNEL=$(ls target/payloads/linux/boot/vmlinuz-*-arm64 | head -n1)
# The same initramfs as the Linux dom0 test (so it is built once): with xen-selftest.
if [ -z "${EXTRA_BIN+set}" ]; then
    bash scripts/build-selftest.sh || { say "cannot build xen-selftest" >&2; exit 2; }
    export EXTRA_BIN=target/linux/xen-selftest
fi
bash scripts/linux-initramfs.sh >/dev/null || { say "cannot build the initramfs" >&2; exit 2; }
INITRD=target/linux/initramfs.cpio.gz
mkdir -p "$(dirname "$LOG")"

steps=$(mktemp)
trap 'rm -f "$steps"' EXIT
cat >"$steps" <<'STEPS'
expect granite.shell: starting a shell
expect  # 
send echo typed-$((6*7))\r
expect typed-42
send \x01\x01\x01
expect *** Serial input to 
send q
expect 'q' pressed -> dumping domain info
send \x01\x01\x01
expect *** Serial input to DOM0
send echo back-$((40+2))\r
expect back-42
send poweroff -f\r
STEPS

say "$HV ($HV_CMDLINE), dom0 $KERNEL with a shell, GICv$GIC, $SMP CPUs, log $LOG"
t0=$SECONDS
python3 scripts/lib/console_drive.py "$LOG" "${TIMEOUT:-180}" "$steps" -- \
    qemu-system-aarch64 -machine "virt,virtualization=on,gic-version=$GIC" -cpu cortex-a57 -smp "$SMP" -m 2G \
    -display none -monitor none -serial stdio -no-reboot \
    -kernel "$HV" -append "$HV_CMDLINE" \
    -device "guest-loader,addr=0x49000000,kernel=$KERNEL,bootargs=console=hvc0 earlycon=xenboot rdinit=/init granite.cpus=$SMP granite.shell" \
    -device "guest-loader,addr=0x52000000,initrd=$INITRD"
rc=$?
wall=$((SECONDS - t0))
tr -d '\r' <"$LOG" | grep -aE 'typed-42|back-42|Serial input to|pressed -> dumping domain info' | grep -v 'echo ' | sed 's/^/  /'
if [ "$rc" = 0 ]; then
    say "PASS ($hv_name, GICv$GIC, ${wall} s wall): dom0's shell ran what was typed; Ctrl-A x3 switched input to the hypervisor and back"
    exit 0
fi
say "FAIL ($hv_name, GICv$GIC, ${wall} s wall); the tail of $LOG:"
tr -d '\r' <"$LOG" | tail -n 15
exit "$rc"
