#!/usr/bin/env bash
# Boot smoke tests of the EL2 image under QEMU virt. Each run has a timeout and is judged on
# its log and QEMU's exit status:
#   boot       virtualization=on, GICv3, 2 GiB, a Xen command line and the smoke guest as the
#              dom0 kernel (guest-loader): banner, RAM, MODULE, MMU and P2M lines, the
#              unknown-option warning, dom0 built (bank, grant table range, PPI, extended
#              regions) and entered, its (d0) output, its poweroff halting the machine
#   no-image   a dom0 "kernel" module that is not an arm64 Image (the DTB): a clear error and a
#              clean power-off (exit status 4 with semihosting), never a jump into it
#   gicv2      GICv2, 1 GiB, 2 CPUs, default log level (no debug lines), no dom0 module: a
#              clear error and a clean power-off
#   wrong-el   no virtualization=on (entered at EL1): clear message, PSCI (hvc) power-off
#   wrong-el-semihosting  the same with granite_exit=semihosting: exit status 2
#   trap       granite_selftest=trap: EL1 round trip through the vectors and TrapFrame
#   p2m        granite_selftest=p2m: stage-2 map/split/unmap with TLB flushes, audit, no leak
#   fault      granite_selftest=fault + semihosting exit: a hypervisor data abort panics with
#              the syndrome decoded; exit status 1
#   wx         granite_selftest=wx: writing to the hypervisor's code is a permission fault
#   raspi4b    (only if the Pi 4 DTB was fetched: scripts/fetch-payloads.sh linux) QEMU raspi4b,
#              loaded at 0x200000: console found through /soc ranges, GIC-400, spin tables;
#              no dom0 kernel (neither a module nor -initrd), and no PSCI there, so it ends
#              with a semihosting exit (status 4). scripts/rpi4-test.sh runs a dom0 there.
# Usage: scripts/boot-smoke.sh            (builds with scripts/build.sh first)
#        SKIP_BUILD=1 scripts/boot-smoke.sh  (uses the existing target/images/granite.bin)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    bash scripts/build.sh || { echo "boot-smoke: build failed" >&2; exit 1; }
fi
img=target/images/granite.bin
[ -f "$img" ] || { echo "boot-smoke: $img missing" >&2; exit 1; }
qemu=${QEMU:-qemu-system-aarch64}
logs=target/boot-smoke
mkdir -p "$logs"
xen_cmdline="dom0_mem=128M loglvl=all console=dtuart dtuart=/pl011@9000000 guest_loglvl=all"
failures=0
shown=

# run NAME EXPECTED_STATUS QEMU-ARGS...: boot with a 60 s timeout, log to $logs/NAME.log
run() {
    local name=$1 want=$2
    shift 2
    local log=$logs/$name.log
    local t0=$SECONDS
    timeout 60 "$qemu" -cpu cortex-a57 -nographic -no-reboot -kernel "$img" "$@" </dev/null >"$log" 2>&1
    local st=$?
    current=$name
    current_log=$log
    if [ "$st" = 124 ]; then
        fail "timed out after 60 s"
    elif [ "$st" != "$want" ]; then
        fail "QEMU exit status $st, expected $want"
    else
        echo "[$name] exit status $st as expected ($((SECONDS - t0)) s)"
    fi
}
fail() {
    echo "[$current] FAIL: $*" >&2
    if [ "$shown" != "$current" ]; then
        shown=$current
        echo "----- $current_log (last 40 lines) -----" >&2
        tail -n 40 "$current_log" >&2
        echo "-----" >&2
    fi
    failures=$((failures + 1))
}
# expect TEXT: the current log must contain TEXT (fixed string)
expect() { grep -qF -- "$1" "$current_log" || fail "log lacks: $1"; }
# reject TEXT: the current log must not contain TEXT
reject() { ! grep -qF -- "$1" "$current_log" || fail "log unexpectedly has: $1"; }

virt="virt,virtualization=on,gic-version=3"

smoke=target/images/smoke.img
run boot 0 -M "$virt" -m 2G -append "$xen_cmdline" \
    -device "guest-loader,addr=0x49000000,kernel=$smoke,bootargs=console=hvc0 earlycon=xen"
expect "granite 0.1.0 - AArch64 EL2 hypervisor speaking Xen's guest ABI"
expect "Entered at EL2"
expect "Command line: $xen_cmdline"
expect "Console: PL011 at 0x9000000"
expect "Warning: unknown command-line option ignored: guest_loglvl=all"
reject "unknown command-line option ignored: dtuart"
reject "unknown command-line option ignored: console"
expect "RAM: 0000000040000000 - 00000000bfffffff (2048 MiB)"
expect "MODULE[0]: 0000000049000000"
expect "Kernel      console=hvc0 earlycon=xen"
expect "GICv3 (arm,gic-v3): distributor 0x8000000"
expect "PSCI: 1.1 via smc"
expect "MMU: EL2 stage 1 on, identity map of a 44-bit address space"
expect "Frame table: 524288 frames (0x40000000-0xc0000000) x 16 bytes = 8192 KiB"
expect "debug: boot memory: 0x49000000-"
expect "P2M: 40-bit IPA (address map up to 0x10000000000) with 44-bit PA and 8-bit VMID"
expect "P2M: 3 levels with order-1 root, VTCR 0x80023558"
expect "Hypervisor ready"
expect "d0: BANK[0] 0x49200000-0x51200000 (128 MiB)"
expect "Grant table range: 0x40200000-0x40240000 (64 frames)"
expect "Allocating PPI 16 for event channel interrupt"
expect "d0: extended region 0: 0x40400000->0x49200000"
expect "d0v0: entering at 0x49200000 (EL1h, MMU off) with x0 0x49400000 on CPU0"
expect "(d0) [granite-test] SUMMARY"
expect "Hardware Dom0 halted: halting machine"
reject "Panic"

# The other stage-2 regimes (4-level tables): 44-bit on the Cortex-A57 (its PA size), 48-bit
# on QEMU's "max" CPU; the smoke guest passes every scenario on each.
run ipa44 0 -M "$virt" -m 2G -append "dom0_mem=128M loglvl=info granite_ipa_bits=44 granite_ipa_bits=36" \
    -device "guest-loader,addr=0x49000000,kernel=$smoke,bootargs=console=hvc0"
expect "P2M: 44-bit IPA (address map up to 0x10000000000) with 44-bit PA and 8-bit VMID"
expect "P2M: 4 levels with order-0 root, VTCR 0x80043594"
expect "Warning: command-line option granite_ipa_bits=36 ignored: expected 40|42|44|48"
expect "(d0) [granite-test] ALL PASSED"
expect "Hardware Dom0 halted: halting machine"
run ipa48 0 -M "$virt" -m 2G -cpu max -append "dom0_mem=128M loglvl=info granite_ipa_bits=48" \
    -device "guest-loader,addr=0x49000000,kernel=$smoke,bootargs=console=hvc0"
expect "P2M: 48-bit IPA (address map up to 0x10000000000) with 48-bit PA and 16-bit VMID"
expect "P2M: 4 levels with order-0 root"
expect "(d0) [granite-test] ALL PASSED"
expect "Hardware Dom0 halted: halting machine"

run no-image 4 -M "$virt" -m 2G -semihosting -append "granite_exit=semihosting" \
    -device "guest-loader,addr=0x49000000,kernel=$logs/boot.log,bootargs=x"
expect "granite: cannot build dom0: the dom0 kernel module at 0x49000000 is not an arm64 Image: no arm64 Image magic"
expect "granite: powering off"
reject "d0v0: entering"
reject "Panic"

run gicv2 0 -M virt,virtualization=on,gic-version=2 -m 1G -smp 2 -append "dom0_mem=64M"
expect "GICv2 (arm,cortex-a15-gic): distributor 0x8000000"
expect "GICv2: hyp interface 0x8030000-0x8040000"
expect "CPUs: 2 in the device tree"
expect "RAM: 0000000040000000 - 000000007fffffff (1024 MiB)"
expect "Frame table: 262144 frames"
expect "P2M: 40-bit IPA (address map up to 0x10000000000) with 44-bit PA and 8-bit VMID"
expect "granite: cannot build dom0: no dom0 kernel: /chosen has no multiboot,kernel module"
reject "debug:"
reject "Panic"

run wrong-el 0 -M virt,gic-version=3 -m 2G -append "$xen_cmdline"
expect "granite: entered at EL1 with the device tree at 0x"
expect "but a hypervisor needs EL2"
expect "powering off via PSCI (hvc)"
reject "P2M:"

run wrong-el-semihosting 2 -M virt,gic-version=3 -m 2G -semihosting -append "granite_exit=semihosting"
expect "but a hypervisor needs EL2"

run trap 0 -M "$virt" -m 2G -semihosting -append "loglvl=info granite_selftest=trap granite_exit=semihosting"
expect "selftest trap: HVC #0x4701 from EL1, all 31 registers, ELR, SPSR, ESR, SP_EL1 as expected"
expect "selftest trap: HVC #0x4702: x0 written by EL2 seen by EL1, registers preserved across eret"
expect "selftest trap: OK"
reject "Panic"

run p2m 0 -M "$virt" -m 2G -append "granite_selftest=p2m"
expect "mapped, split, unmapped 2 MiB with stage-2 TLB flushes"
expect "audit clean"
expect "selftest p2m: OK"
reject "Panic"

run fault 1 -M "$virt" -m 2G -semihosting -append "granite_selftest=fault granite_exit=semihosting"
expect "Panic on CPU"
expect "hypervisor fault: data abort, same EL taken from EL2"
expect "EC 0x25 (data abort, same EL), IL 32-bit"
expect "DFSC 0x06: translation fault at level 2; write (WnR=1) access"
expect "FAR_EL2   0x0000000000001230"
expect "ELR_EL2   0x"
expect "(image offset 0x"
expect "x30 0x"
expect "granite: fatal error, powering off"

run wx 1 -M "$virt" -m 2G -semihosting -append "granite_selftest=wx granite_exit=semihosting"
expect "DFSC 0x0f: permission fault at level 3; write (WnR=1) access"
expect "granite: fatal error, powering off"

pi_dtb=$(ls target/payloads/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb 2>/dev/null | head -n1)
if [ -n "$pi_dtb" ]; then
    run raspi4b 4 -M raspi4b -dtb "$pi_dtb" -semihosting -append "loglvl=debug granite_exit=semihosting"
    expect "image at 0x200000-"
    expect "Device tree at 0x8000000"
    expect "Console: PL011 at 0xfe201000 (serial@7e201000)"
    expect "GICv2 (arm,gic-400): distributor 0xff841000"
    expect "CPUs: 4 in the device tree"
    expect "enable-method spin-table, release address 0xd8"
    expect "RESVD (/memreserve/): 0000000000000000 - 0000000000001000"
    expect "NOP tokens removed"
    expect "P2M: 40-bit IPA (address map up to 0x640000000) with 44-bit PA and 8-bit VMID"
    expect "granite: cannot build dom0: no dom0 kernel"
    expect "(nor linux,initrd-start/end)"
    reject "Panic"
else
    echo "[raspi4b] SKIPPED: no Pi 4 DTB (scripts/fetch-payloads.sh linux)"
fi

if [ "$failures" != 0 ]; then
    echo "boot-smoke: $failures failure(s); logs in $logs/" >&2
    exit 1
fi
echo "boot-smoke: all runs passed (logs in $logs/)"
