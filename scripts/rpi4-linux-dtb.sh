#!/usr/bin/env bash
# Makes the Raspberry Pi 4 device tree that Debian's Linux 6.1 can boot with on QEMU's
# -M raspi4b: target/linux/bcm2711-rpi-4-b-qemu.dtb, Debian's bcm2711-rpi-4-b.dtb
# (scripts/fetch-payloads.sh linux) with the nodes of devices QEMU does not emulate disabled.
# QEMU 10's raspi4b has nothing at bus addresses 0x7ef00000-0x7ef2xxxx (CPU 0xfef00000-, the
# HDMI/DVP block): a read or write there is a synchronous external abort, which kills PID 1 when
# it happens in a driver's probe during the initcalls ("Attempted to kill init!"). Each node below
# was the next fatal fault of a boot, and each is still fatal with the other three disabled, so
# the set is minimal. The same faults happen in dom0 under Xen 4.17 (Xen passes these devices
# through), so the Xen run needs this tree too.
#
# The same four edits make the emulated SD card's tree (scripts/rpi4-test.sh, run sdcard-linux):
# DTB_IN=<the card's bcm2711-rpi-4-b.dtb> DTB_OUT=<file> scripts/rpi4-linux-dtb.sh. A real Pi 4
# has these devices and boots the card's tree unchanged.
#
# Usage: scripts/rpi4-linux-dtb.sh              makes the tree only (DTB_IN=file: from that
#                                               tree instead of Debian's; DTB_OUT=file: written
#                                               there instead)
#        BOOT=linux scripts/rpi4-linux-dtb.sh   and boots the kernel on it without a hypervisor
#                                               (console=ttyAMA0), with the initramfs of
#                                               scripts/linux-initramfs.sh: passes if /init runs
#                                               and prints its RESULT line (its Xen checks fail
#                                               there, as they must without Xen)
#        BOOT=xen scripts/rpi4-linux-dtb.sh     and boots Debian's Xen 4.17 with that kernel and
#                                               initramfs as dom0: passes on "RESULT: PASS"
#        BOOT=granite scripts/rpi4-linux-dtb.sh the same with granite (target/images/granite.bin,
#                                               or HV=path) instead of Xen
# TIMEOUT (default 180 s) bounds the boot; logs: target/logs/rpi4-linux-<BOOT>.log.
# QEMU cannot power the emulated Pi off (no PSCI on the board; Linux halts, Xen halts), so the
# run is stopped once the RESULT line (or a panic) is out.
# Exit status: 0 ok, 1 failed, 2 could not run.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { echo "[rpi4-linux] $*"; }

out=${DTB_OUT:-target/linux/bcm2711-rpi-4-b-qemu.dtb}
if ! command -v fdtput >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq device-tree-compiler >/dev/null; } ||
        { say "fdtput missing (package device-tree-compiler) and could not be installed" >&2; exit 2; }
fi
if [ -n "${DTB_IN:-}" ]; then
    pi_dtb=$DTB_IN
    [ -f "$pi_dtb" ] || { say "no $pi_dtb" >&2; exit 2; }
else
    if ! ls target/payloads/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb >/dev/null 2>&1; then
        bash scripts/fetch-payloads.sh linux || { say "cannot fetch the Pi 4 device tree" >&2; exit 2; }
    fi
    pi_dtb=$(ls target/payloads/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb | head -n1)
fi
mkdir -p "$(dirname "$out")"
cp "$pi_dtb" "$out.part" || exit 2

disable() { # disable NODE: set its status to "disabled"
    fdtput -t s "$out.part" "$1" status disabled || { say "cannot disable $1" >&2; rm -f "$out.part"; exit 1; }
}
# brcm,bcm2711-l2-intc (the HDMI interrupt controller at 0xfef00100): brcmstb_l2_intc_of_init
# writes its mask/clear registers -> synchronous external abort, the first fatal fault of a boot.
disable /soc/interrupt-controller@7ef00100
# brcm,bcm2711-hdmi-i2c (HDMI0's DDC bus at 0xfef04500/0xfef00b00): brcmstb_i2c_probe writes a
# controller register -> synchronous external abort.
disable /soc/i2c@7ef04500
# The same for HDMI1's DDC bus (0xfef09500/0xfef05b00): the same abort in brcmstb_i2c_probe.
disable /soc/i2c@7ef09500
# brcm,brcm2711-dvp (the HDMI clock/reset block at 0xfef00000): its driver registers two clock
# gates there; the late initcall that turns unused clocks off (clk_disable_unused ->
# clk_gate_is_enabled) reads them -> synchronous external abort just before /init would run.
# (Its consumers, the two hdmi@ nodes, then wait for it and are never probed.)
disable /soc/clock@7ef00000
mv "$out.part" "$out"
say "made $out from $pi_dtb (4 nodes disabled)"

BOOT=${BOOT:-}
[ -z "$BOOT" ] && exit 0

kernel=$(ls target/payloads/linux/boot/vmlinuz-*-arm64 2>/dev/null | head -n1)
# xen-selftest in the initramfs, as scripts/linux-dom0.sh does (EXTRA_BIN= or SELFTEST=0: not).
if [ -z "${EXTRA_BIN+set}" ] && [ "${SELFTEST:-1}" != 0 ] && [ "$BOOT" != linux ]; then
    bash scripts/build-selftest.sh || { say "cannot build xen-selftest" >&2; exit 2; }
    export EXTRA_BIN=target/linux/xen-selftest
fi
bash scripts/linux-initramfs.sh || { say "cannot build the initramfs" >&2; exit 2; }
initrd=target/linux/initramfs.cpio.gz
TIMEOUT=${TIMEOUT:-180}
LOG=target/logs/rpi4-linux-$BOOT.log
mkdir -p target/logs
rm -f "$LOG"

case $BOOT in
linux)
    cmd=(-M raspi4b -dtb "$out" -nographic -no-reboot -kernel "$kernel" -initrd "$initrd"
        -append "console=ttyAMA0 earlycon=pl011,mmio32,0xfe201000 rdinit=/init")
    ;;
xen | granite)
    if [ "$BOOT" = xen ]; then
        bash scripts/fetch-payloads.sh xen || { say "cannot fetch Xen 4.17" >&2; exit 2; }
        xen=target/payloads/xen/boot/xen-4.17-arm64
    else
        xen=${HV:-target/images/granite.bin}
        [ -f "$xen" ] || { say "no $xen: run scripts/build.sh" >&2; exit 2; }
    fi
    command -v python3 >/dev/null || { say "no python3 (scripts/install-deps.sh installs it)" >&2; exit 2; }
    xdtb=target/linux/bcm2711-rpi-4-b-qemu-xen.dtb
    kaddr=0x10000000 raddr=0x14000000
    # As in scripts/rpi4-test.sh: Xen takes dom0's kernel and initrd only from multiboot module
    # nodes; QEMU's guest-loader writes them with 2+2 reg cells where the Pi's root has 2+1, so
    # the dumped tree's two module regs are rewritten as 2+1 cells (the freed cell: FDT_NOP),
    # and the files are loaded at those addresses with -device loader.
    qemu-system-aarch64 -M "raspi4b,dumpdtb=$xdtb" -dtb "$out" -display none -kernel "$xen" -append x \
        -device "guest-loader,addr=$kaddr,kernel=$kernel,bootargs=console=hvc0 earlycon=xenboot rdinit=/init granite.cpus=4" \
        -device "guest-loader,addr=$raddr,initrd=$initrd" >/dev/null 2>&1 ||
        { say "QEMU could not dump the device tree" >&2; exit 1; }
    python3 - "$xdtb" "module@$kaddr=$(stat -c %s "$kernel")" "module@$raddr=$(stat -c %s "$initrd")" <<'PY' ||
import struct, sys
path = sys.argv[1]
want = {}
for arg in sys.argv[2:]:
    node, size = arg.rsplit('=', 1)
    want[node.encode()] = int(size)
blob = bytearray(open(path, 'rb').read())
struct_off, strings_off = struct.unpack('>II', blob[8:16])
pos, nodes, fixed = struct_off, [], set()
while True:
    token, = struct.unpack('>I', blob[pos:pos + 4])
    pos += 4
    if token == 1:                       # FDT_BEGIN_NODE
        end = blob.index(0, pos)
        nodes.append(bytes(blob[pos:end]))
        pos = (end + 4) & ~3
    elif token == 2:                     # FDT_END_NODE
        nodes.pop()
    elif token == 3:                     # FDT_PROP
        length, name_off = struct.unpack('>II', blob[pos:pos + 8])
        pos += 8
        name = bytes(blob[strings_off + name_off:blob.index(0, strings_off + name_off)])
        if nodes and nodes[-1] in want and name == b'reg' and length == 16:
            addr_hi, addr_lo = struct.unpack('>II', blob[pos:pos + 8])
            struct.pack_into('>I', blob, pos - 8, 12)
            struct.pack_into('>IIII', blob, pos, addr_hi, addr_lo, want[nodes[-1]], 4)
            fixed.add(nodes[-1])
        pos = (pos + length + 3) & ~3
    elif token == 9:                     # FDT_END
        break
missing = sorted(n.decode() for n in set(want) - fixed)
if missing:
    sys.exit("no 16-byte reg in " + ", ".join(missing))
open(path, 'wb').write(blob)
PY
        { say "device tree edit failed" >&2; exit 1; }
    # Xen: dtuart=serial1, the Pi tree's alias for the mini UART, QEMU's second -serial. granite
    # drives only PL011s: /chosen/stdout-path's, QEMU's first -serial.
    if [ "$BOOT" = xen ]; then
        serial=(-serial null -serial "file:$LOG") hv_args="dom0_mem=256M console=dtuart dtuart=serial1 loglvl=info"
    else
        serial=(-serial "file:$LOG" -serial null) hv_args="dom0_mem=256M loglvl=info"
    fi
    cmd=(-M raspi4b -dtb "$xdtb" -display none -monitor none -no-reboot "${serial[@]}"
        -kernel "$xen" -append "$hv_args"
        -device "loader,file=$kernel,addr=$kaddr,force-raw=on" -device "loader,file=$initrd,addr=$raddr,force-raw=on")
    ;;
*) say "BOOT must be linux or xen" >&2; exit 2 ;;
esac

say "booting ($BOOT) on raspi4b, log $LOG"
t0=$SECONDS
if [ "$BOOT" != linux ]; then
    timeout "$TIMEOUT" qemu-system-aarch64 "${cmd[@]}" </dev/null >/dev/null 2>&1 &
else
    timeout "$TIMEOUT" qemu-system-aarch64 "${cmd[@]}" </dev/null >"$LOG" 2>&1 &
fi
qpid=$!
while kill -0 "$qpid" 2>/dev/null; do
    if grep -aqE '\[linux-dom0\] RESULT:|Kernel panic - not syncing|Hardware Dom0 crashed' "$LOG" 2>/dev/null; then
        sleep 3
        kill "$qpid" 2>/dev/null
        break
    fi
    sleep 1
done
wait "$qpid"
wall=$((SECONDS - t0))
tr -d '\r' <"$LOG" | grep -aE '\[linux-dom0\] (CHECK|insmod|RESULT)|\[xen-selftest\]|Internal error|pc : |Kernel panic' | head -n 40
init_at=$(tr -d '\r' <"$LOG" | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p' | head -n1)
want='[linux-dom0] RESULT:'
[ "$BOOT" != linux ] && want='[linux-dom0] RESULT: PASS'
if grep -aqF "$want" "$LOG"; then
    say "PASS ($BOOT on raspi4b: init at ${init_at:-?} s guest time, ${wall} s wall)"
    exit 0
fi
say "FAIL ($BOOT on raspi4b, ${wall} s wall): no \"$want\" line; the tail of $LOG:"
tr -d '\r' <"$LOG" | tail -n 20
exit 1
