#!/usr/bin/env bash
# README command 1: install what is missing, build granite and the smoke test guest, and boot
# them under QEMU virt exactly as Xen 4.17 is booted (-kernel + a guest-loader dom0 module).
# The console shows the hypervisor's boot log, the guest's scenario lines and its summary; the
# guest then powers the machine off. Exit status: QEMU's (0 after a clean poweroff).
#
# Environment: GUEST (default smoke), GUEST_ARGS, CMDLINE (hypervisor command line), SMP,
# TIMEOUT (seconds, default 120).
#
#   scripts/run.sh linux   boots Debian's Linux 6.1 as dom0 (GICv3, SMP=2 CPUs) with the
#                          project's initramfs to an interactive shell on this terminal: type
#                          commands; Ctrl-a three times switches input to granite's debug keys
#                          (h lists them) and back; "poweroff -f" ends it, as does Ctrl-] x.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh >/dev/null
bash scripts/build.sh
if [ "${1:-}" = linux ]; then
    HV=target/images/granite.bin SHELL_MODE=1 SMP=${SMP:-2} exec bash scripts/linux-dom0.sh
fi
GUEST=${GUEST:-smoke}
export CMDLINE=${CMDLINE:-"dom0_mem=128M loglvl=info console=dtuart dtuart=/pl011@9000000"}
export TIMEOUT=${TIMEOUT:-120}
exec bash boards/qemu-virt/run.sh -smp "${SMP:-2}" \
    -device "guest-loader,addr=0x49000000,kernel=target/images/$GUEST.img,bootargs=${GUEST_ARGS:-console=hvc0}"
