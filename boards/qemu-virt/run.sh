#!/usr/bin/env bash
# Boot target/images/granite.bin on QEMU virt the way Xen's arm64 image boots: EL2
# (virtualization=on), GICv3, Cortex-A57, 2 GiB, the image loaded as an arm64 Linux Image at
# 0x40200000 with x0 = the DTB. Ends when the hypervisor powers off (or after $TIMEOUT s).
#
#   boards/qemu-virt/run.sh [extra QEMU arguments...]
#   CMDLINE="loglvl=debug granite_selftest=trap" boards/qemu-virt/run.sh
#   boards/qemu-virt/run.sh -device guest-loader,addr=0x49000000,kernel=Image,bootargs="console=hvc0"
#
# Environment: CMDLINE (hypervisor command line), TIMEOUT (default 60), QEMU, IMAGE.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
image=${IMAGE:-$top/target/images/granite.bin}
[ -f "$image" ] || { echo "no $image: run scripts/build.sh" >&2; exit 1; }
cmdline=${CMDLINE:-"dom0_mem=128M loglvl=all console=dtuart dtuart=/pl011@9000000 guest_loglvl=all"}
exec timeout "${TIMEOUT:-60}" "${QEMU:-qemu-system-aarch64}" \
    -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -m 2G \
    -nographic -no-reboot -kernel "$image" -append "$cmdline" "$@"
