#!/usr/bin/env bash
# Where a benchmarked operation spends its instructions in granite, function by function.
#
#   scripts/profile.sh OP [ITERS]     e.g. scripts/profile.sh grant_frame_add_remove
#
# Boots the benchmark guest twice as dom0 under QEMU virt with -icount shift=0 (-smp 1) and
# `only=OP`, with ITERS (default 200) and 2*ITERS iterations, tracing every translation block
# executed (-d exec,nochain,in_asm). scripts/lib/profile.py subtracts the two runs so boot
# cancels out, and attributes the rest to the functions of the hypervisor's ELF. Traces go to
# target/profile/ (a few hundred MB; deleted afterwards unless KEEP=1). FN="name ..." also
# prints the translation blocks executed in functions whose names contain those strings.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
op=${1:?usage: scripts/profile.sh OP [ITERS]}
n=${2:-200}
[ -n "${NO_BUILD:-}" ] || bash scripts/build.sh >/dev/null
elf=target/aarch64-unknown-none/release/granite
load=0x40200000
dir=target/profile
mkdir -p "$dir"
run() {
    timeout 600 qemu-system-aarch64 \
        -M virt,virtualization=on,gic-version=3 -cpu cortex-a57 -smp 1 -m 2G \
        -icount shift=0,align=off,sleep=off -nographic -no-reboot \
        -kernel target/images/granite.bin \
        -append "dom0_mem=128M console=dtuart dtuart=/pl011@9000000 loglvl=warning" \
        -device "guest-loader,addr=0x49000000,kernel=target/images/bench.img,bootargs=console=hvc0 only=$op iters=$1" \
        -d exec,nochain,in_asm -D "$dir/trace-$1.log" </dev/null >"$dir/console-$1.log" 2>&1
    grep -q "op=$op " "$dir/console-$1.log" || { echo "profile: no op=$op in $dir/console-$1.log" >&2; exit 1; }
}
run "$n"
run $((2 * n))
grep -h "op=$op " "$dir/console-$n.log" "$dir/console-$((2 * n)).log" | tr -d '\r'
python3 scripts/lib/profile.py "$elf" "$load" "$dir/trace-$n.log" "$n" "$dir/trace-$((2 * n)).log" $((2 * n)) "${TOP:-30}"
for fn in ${FN:-}; do
    echo "blocks of $fn (offsets in the ELF):"
    python3 scripts/lib/profile.py --blocks "$fn" "$elf" "$load" "$dir/trace-$n.log" "$n" "$dir/trace-$((2 * n)).log" $((2 * n))
done
[ -n "${KEEP:-}" ] || rm -f "$dir"/trace-*.log
