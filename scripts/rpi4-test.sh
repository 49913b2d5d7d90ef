#!/usr/bin/env bash
# Raspberry Pi 4 in emulation. QEMU 10's -M raspi4b starts kernel8.img (granite, the file the
# SD card carries) the way the Pi firmware does: CPU 0 at EL2 with x0 = the device tree, the
# other CPUs parked in a spin table; the device tree is Debian's bcm2711-rpi-4-b.dtb. Dom0's
# kernel is the smoke guest, handed over as the firmware's `initramfs` line hands a file
# over (/chosen linux,initrd-start/end; QEMU: -initrd), and dom0 is identity-mapped.
#
# Runs, each bounded with `timeout` and judged on its log and QEMU's exit status:
#   image  kernel8.img as an arm64 Image (QEMU loads it at its text_offset, 0x200000); dom0's
#          command line after " -- ". Must show the dom0 lines (kernel from the initrd, RAM
#          below the 1 GiB DMA limit, devices passed through 1:1, GICV at the GICC address,
#          the host's tree copied, grant table and extended regions) and the guest's verdict:
#          every scenario passes, among them map_own_grant (a grant mapping's dev_bus_addr is
#          the page's address) and mailbox_dma (the VideoCore firmware, a DMA master that
#          knows only machine addresses, writes its reply into the guest's buffer at the
#          guest-physical address: dom0 is 1:1; a grant mapping of that page returns that
#          machine address); the guest powers off (exit status 0 via semihosting).
#   raw    the same file as a raw binary at 0x80000 (the firmware's legacy kernel address;
#          granite is position independent): the same verdict.
#   sdcard the SD card scripts/sd-image.sh builds (DOM0 = the smoke guest): its files taken
#          out of sdcard.img and started as the firmware starts them (config.txt's kernel,
#          device_tree and initramfs; cmdline.txt as /chosen/bootargs): the same verdict.
#   sdcard-linux
#          the SD card DOM0=linux scripts/sd-image.sh builds (Debian's Linux 6.1 + the project's
#          initramfs with xen-selftest in dom0.img; /chosen multiboot module nodes in the card's
#          tree say where each part lies): its files taken out of the card image and started as
#          the firmware starts them: kernel8.img, the card's tree with only the four HDMI nodes
#          QEMU lacks disabled (scripts/rpi4-linux-dtb.sh; the board boots the tree as it is),
#          dom0.img at config.txt's initramfs address and /chosen linux,initrd-start/end set (the
#          firmware's initramfs line; QEMU's -initrd cannot choose the address), cmdline.txt
#          plus granite_exit=semihosting. Granite must find the kernel and the ramdisk there;
#          dom0's /init must print "[linux-dom0] RESULT: PASS" (4 CPUs online, xen-selftest
#          failed=0), then at its shell (granite.shell, from the card's cmdline.txt) a typed
#          command runs, Ctrl-A x3 switches input to granite ('q' dumps the domains) and back,
#          and "poweroff -f" ends the run (exit status 0). Needs python3 (scripts/lib/
#          console_drive.py) and fdtput; LINUX_CARD=0 skips it.
#   xen    reference (needs python3 and scripts/fetch-payloads.sh xen): the same guest as
#          dom0 of Debian's Xen 4.17 on the same emulated board must print ALL PASSED too
#          (mailbox_dma included). Xen cannot power the emulated Pi off (no PSCI), so this
#          run is stopped once the guest's summary is out. XEN_REFERENCE=0 skips it.
#
# Usage: scripts/rpi4-test.sh              (builds with scripts/build.sh first)
#        SKIP_BUILD=1 scripts/rpi4-test.sh (uses target/images/{granite.bin,smoke.img}, or
#                                           the files GRANITE=... and GUEST=... name)
# Logs: target/rpi4-test/<run>.log
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    bash scripts/build.sh || { echo "rpi4-test: build failed" >&2; exit 1; }
fi
bash scripts/fetch-payloads.sh linux || { echo "rpi4-test: cannot fetch the Pi 4 device tree" >&2; exit 1; }
pi_dtb=$(ls target/payloads/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb | head -n1)
qemu=${QEMU:-qemu-system-aarch64}
out=target/rpi4-test
mkdir -p "$out"
cp "${GRANITE:-target/images/granite.bin}" "$out/kernel8.img" || exit 1
guest=${GUEST:-target/images/smoke.img}
for f in "$out/kernel8.img" "$guest" "$pi_dtb"; do
    [ -f "$f" ] || { echo "rpi4-test: missing $f" >&2; exit 1; }
done
failures=0
shown=

fail() {
    echo "[$current] FAIL: $*" >&2
    if [ "$shown" != "$current" ]; then
        shown=$current
        echo "----- $current_log (last 40 lines) -----" >&2
        tail -n 40 "$current_log" | tr -d '\r' >&2
        echo "-----" >&2
    fi
    failures=$((failures + 1))
}
expect() { grep -aqF -- "$1" "$current_log" || fail "log lacks: $1"; }
reject() { ! grep -aqF -- "$1" "$current_log" || fail "log unexpectedly has: $1"; }
# The guest's verdict: every scenario passed, the two that check machine addresses among them.
verdict() {
    local p=$1 re
    re=$(printf '%s' "$p" | sed 's/[()]/\\&/g')
    grep -aE "^${re}\[granite-test\] (PASS|FAIL|SUMMARY|ALL PASSED)" "$current_log" | tr -d '\r' |
        sed "s/^/[$current]   /"
    expect "${p}[granite-test] PASS map_own_grant"
    expect "${p}[granite-test] PASS mailbox_dma"
    expect "${p}[granite-test] note mailbox_dma: the VideoCore (DMA at bus"
    expect "${p}[granite-test] ALL PASSED"
    reject "[granite-test] FAIL"
}

# granite NAME KERNEL LOAD-ADDRESS [DTB DOM0 COMMAND-LINE]: boot granite on raspi4b with
# the smoke guest as dom0.
granite() {
    current=$1 current_log=$out/$1.log
    local kernel=$2 load=$3 dtb=${4:-$pi_dtb} dom0=${5:-$guest}
    local args=${6:-"loglvl=info granite_exit=semihosting -- console=hvc0"} t0=$SECONDS
    timeout 60 "$qemu" -M raspi4b -dtb "$dtb" -nographic -no-reboot -semihosting \
        -kernel "$kernel" -initrd "$dom0" -append "$args" </dev/null >"$current_log" 2>&1
    local st=$?
    if [ "$st" = 124 ]; then
        fail "timed out after 60 s"
    elif [ "$st" != 0 ]; then
        fail "QEMU exit status $st, expected 0 (dom0 powered off)"
    else
        echo "[$current] exit status 0 as expected ($((SECONDS - t0)) s)"
    fi
    expect "Entered at EL2 on CPU MPIDR 0x0"
    expect "image at $load-"
    expect "Console: PL011 at 0xfe201000 (serial@7e201000)"
    expect "Kernel      "
    expect "GICv2: 224 interrupt lines"
    expect "GIC: virtual interface with 4 list registers enabled"
    expect "d0: BANK[0] 0x"
    expect "d0: DMA limit 0x40000000 (narrowest dma-ranges); BANK[0] below it"
    expect "of the host's devices mapped 1:1"
    expect "d0: MMIO 0xff846000-0xff848000 mapped at 0xff842000"
    expect "the host's with dom0's nodes"
    expect "Grant table range: $load-"
    expect "d0: extended region 0: "
    verdict "(d0) "
    expect "Hardware Dom0 halted: halting machine"
    reject "Panic"
    grep -aE "^\(granite\).*(MODULE\[0\]|d0: BANK|d0: DMA|mapped 1:1|mapped at|Grant table|extended region)|note mailbox_dma" \
        "$current_log" | tr -d '\r' | sed "s/^/[$current]   /"
}

granite image "$out/kernel8.img" 0x200000

# The firmware's legacy load address: the same bytes, without the arm64 Image magic QEMU
# looks for, are a raw binary QEMU loads at 0x80000.
cp "$out/kernel8.img" "$out/kernel8-raw.img"
printf 'RAW!' | dd of="$out/kernel8-raw.img" bs=1 seek=56 conv=notrunc status=none
granite raw "$out/kernel8-raw.img" 0x80000

# The SMP fuzz guest as identity-mapped dom0 on all four CPUs (GICv2, spin-table start), the
# audit on every 2500 calls per vCPU: 100 000 hypercalls on every surface but the GIC (the
# Pi's tree gives it at a bus address the guest runtime does not translate, so the guest
# leaves it out and says so), no check failure, no audit violation, every vCPU finished.
pifuzz() {
    current=fuzz current_log=$out/fuzz.log
    local t0=$SECONDS
    timeout 300 "$qemu" -M raspi4b -dtb "$pi_dtb" -nographic -no-reboot -semihosting \
        -kernel "$out/kernel8.img" -initrd target/images/fuzz.img \
        -append "loglvl=info granite_exit=semihosting granite_audit=1 dom0_max_vcpus=4 -- console=hvc0 seed=0x314 iters=25000 audit_every=2500" \
        </dev/null >"$current_log" 2>&1
    local st=$?
    if [ "$st" != 0 ]; then
        fail "QEMU exit status $st, expected 0 (124: timed out after 300 s)"
    else
        echo "[$current] exit status 0 as expected ($((SECONDS - t0)) s)"
    fi
    expect "d0v3 pinned to CPU3"
    expect "(d0) [granite-fuzz] SUMMARY seed=0x314 vcpus=4 "
    expect "(d0) [granite-fuzz] PASS"
    expect " violations=0 "
    reject "CHECK FAILED"
    reject "Panic"
    grep -aE "\[granite-fuzz\] SUMMARY" "$current_log" | tr -d '\r' | sed 's/ results=.* audits=/ ... audits=/' | sed "s/^/[$current]   /"
}
pifuzz

# The SD card, started the way the firmware starts it.
sdcard() {
    current=sdcard current_log=$out/sd-image.log
    local d=$out/sdcard f
    NO_BUILD=1 GRANITE=$out/kernel8.img DOM0=$guest bash scripts/sd-image.sh >"$current_log" 2>&1 ||
        { fail "scripts/sd-image.sh failed"; return; }
    rm -rf "$d"
    mkdir -p "$d"
    for f in config.txt cmdline.txt kernel8.img dom0.img bcm2711-rpi-4-b.dtb start4.elf fixup4.dat; do
        mcopy -n -i "target/rpi4/sdcard.img@@1M" "::/$f" "$d/$f" 2>/dev/null || fail "the card lacks /$f"
    done
    expect "[sd-image] target/rpi4/sdcard.img: MBR + FAT32 partition"
    current_log=$d/config.txt
    expect "arm_64bit=1"
    expect "kernel=kernel8.img"
    expect "device_tree=bcm2711-rpi-4-b.dtb"
    expect "initramfs dom0.img 0x02000000"
    [ -f "$d/kernel8.img" ] && [ -f "$d/dom0.img" ] && [ -f "$d/bcm2711-rpi-4-b.dtb" ] || return
    # QEMU's -initrd is what the firmware's initramfs line does; the semihosting exit is the
    # only addition to the card's command line.
    local args
    args=$(sed 's/ -- / granite_exit=semihosting -- /' "$d/cmdline.txt")
    granite sdcard "$d/kernel8.img" 0x200000 "$d/bcm2711-rpi-4-b.dtb" "$d/dom0.img" "$args"
    expect "Command line: $args"
    expect "d0: BANK[0] 0x8400000-0x18400000 (256 MiB)"
}
sdcard

# The Linux-dom0 SD card (DOM0=linux scripts/sd-image.sh: Debian's Linux 6.1 and the project's
# initramfs in dom0.img, described by /chosen multiboot module nodes in the card's tree), its
# files started as the firmware starts them, then used as a person at the serial console would.
sdcard_linux() {
    current=sdcard-linux current_log=$out/sd-image-linux.log
    local card=$out/card-linux d=$out/sdcard-linux f addr t0 st
    if [ "${LINUX_CARD:-1}" = 0 ]; then
        echo "[$current] SKIPPED (LINUX_CARD=0)"
        return
    fi
    if ! command -v python3 >/dev/null || ! command -v fdtput >/dev/null; then
        echo "[$current] SKIPPED: no python3 or fdtput (scripts/install-deps.sh installs them)"
        return
    fi
    NO_BUILD=1 GRANITE=$out/kernel8.img DOM0=linux OUTDIR=$card bash scripts/sd-image.sh >"$current_log" 2>&1 ||
        { fail "DOM0=linux scripts/sd-image.sh failed"; return; }
    expect "[sd-image] $card/sdcard.img: MBR + FAT32 partition"
    rm -rf "$d"
    mkdir -p "$d"
    for f in config.txt cmdline.txt kernel8.img dom0.img bcm2711-rpi-4-b.dtb start4.elf fixup4.dat; do
        mcopy -n -i "$card/sdcard.img@@1M" "::/$f" "$d/$f" 2>/dev/null || fail "the card lacks /$f"
    done
    [ -f "$d/kernel8.img" ] && [ -f "$d/dom0.img" ] && [ -f "$d/bcm2711-rpi-4-b.dtb" ] || return
    current_log=$d/config.txt
    expect "kernel=kernel8.img"
    expect "device_tree=bcm2711-rpi-4-b.dtb"
    addr=$(awk '$1 == "initramfs" && $2 == "dom0.img" { print $3 }' "$d/config.txt")
    [[ "$addr" =~ ^0x[0-9a-fA-F]+$ ]] || { fail "no \"initramfs dom0.img ADDRESS\" line"; return; }
    # The card's tree names the two parts of dom0.img: the kernel at the initramfs address,
    # the initramfs after it, both inside the file.
    local kmod rmod kreg rreg size
    kmod=/chosen/module@$(printf %x "$addr")
    kreg=$(fdtget -t x "$d/bcm2711-rpi-4-b.dtb" "$kmod" reg 2>/dev/null) || { fail "the card's tree has no $kmod"; return; }
    rmod=$(fdtget -l "$d/bcm2711-rpi-4-b.dtb" /chosen | grep -v "^${kmod##*/}\$" | head -n1)
    rreg=$(fdtget -t x "$d/bcm2711-rpi-4-b.dtb" "/chosen/$rmod" reg 2>/dev/null) || { fail "the card's tree has no ramdisk module"; return; }
    fdtget "$d/bcm2711-rpi-4-b.dtb" "$kmod" compatible | grep -q "^multiboot,kernel " || fail "$kmod is not a multiboot,kernel"
    fdtget "$d/bcm2711-rpi-4-b.dtb" "/chosen/$rmod" compatible | grep -q "^multiboot,ramdisk " || fail "/chosen/$rmod is not a multiboot,ramdisk"
    read -r _ kb _ ks <<<"$kreg"
    read -r _ rb _ rs <<<"$rreg"
    size=$(stat -c %s "$d/dom0.img")
    [ $((0x$kb)) = $((addr)) ] && [ $((0x$rb)) -ge $((0x$kb + 0x$ks)) ] && [ $((0x$rb + 0x$rs)) = $((addr + size)) ] ||
        fail "the modules (kernel $kreg, ramdisk $rreg) do not fill dom0.img ($size bytes at $addr)"
    echo "[$current] card: dom0.img $size bytes at $addr; $kmod reg <$kreg>, /chosen/$rmod reg <$rreg>"
    # What differs from the board: QEMU 10's raspi4b lacks the HDMI block, whose four nodes are
    # disabled here (scripts/rpi4-linux-dtb.sh; the Pi boots the card's tree as it is); and
    # QEMU's -initrd cannot load at an address, so what the firmware does for the initramfs
    # line is done by hand: dom0.img loaded at its address, /chosen linux,initrd-start/end set.
    # The command line is cmdline.txt's, with the semihosting exit added.
    DTB_IN=$d/bcm2711-rpi-4-b.dtb DTB_OUT=$d/qemu.dtb bash scripts/rpi4-linux-dtb.sh >/dev/null ||
        { fail "scripts/rpi4-linux-dtb.sh could not disable the HDMI nodes"; return; }
    fdtput -t x "$d/qemu.dtb" /chosen linux,initrd-start 0 "$addr" &&
        fdtput -t x "$d/qemu.dtb" /chosen linux,initrd-end 0 "$(printf 0x%x $((addr + size)))" ||
        { fail "cannot set /chosen linux,initrd-start/end"; return; }
    local args steps
    args=$(sed 's/ -- / granite_exit=semihosting -- /' "$d/cmdline.txt")
    # The console: init's checks, then its shell (granite.shell): a command, Ctrl-A three
    # times (input to granite, whose 'q' key dumps the domains), back to dom0, power off.
    steps=$d/console.steps
    cat >"$steps" <<'STEPS'
expect [linux-dom0] RESULT:
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
send poweroff -f\r
STEPS
    current_log=$out/sdcard-linux.log t0=$SECONDS
    python3 scripts/lib/console_drive.py "$current_log" 90 "$steps" -- \
        "$qemu" -M raspi4b -dtb "$d/qemu.dtb" -display none -monitor none -serial stdio -no-reboot -semihosting \
        -kernel "$d/kernel8.img" -append "$args" -device "loader,file=$d/dom0.img,addr=$addr,force-raw=on" \
        2>"$out/sdcard-linux.console"
    st=$?
    if [ "$st" != 0 ]; then
        fail "console run failed ($(tr '\n' ' ' <"$out/sdcard-linux.console"); exit status $st, 90 s bound)"
    else
        echo "[$current] console steps done, QEMU exit status 0 ($((SECONDS - t0)) s)"
    fi
    expect "Command line: $args"
    expect "$(printf '%016x - %016x Kernel' $((0x$kb)) $((0x$kb + 0x$ks)))"
    expect "$(printf '%016x - %016x Ramdisk' $((0x$rb)) $((0x$rb + 0x$rs)))"
    expect "d0: loading initrd to"
    expect "d0: DMA limit 0x40000000 (narrowest dma-ranges); BANK[0] below it"
    expect "(d0) [linux-dom0] CHECK cpus-online: ok (4 of 4)"
    expect "(d0) [xen-selftest] SUMMARY passed="
    expect " failed=0"
    reject "[xen-selftest] FAIL"
    expect "(d0) [linux-dom0] CHECK xen-selftest: ok"
    expect "(d0) [linux-dom0] RESULT: PASS"
    expect "typed-42"
    expect "'q' pressed -> dumping domain info"
    expect "*** Serial input to DOM0"
    expect "Hardware Dom0 halted: halting machine"
    reject "Kernel panic"
    reject "Panic"
    tr -d '\r' <"$current_log" | grep -aE "MODULE\[|d0: BANK|d0: loading|\[linux-dom0\] (CHECK|RESULT)|\[xen-selftest\] (PASS|FAIL|SUMMARY)|typed-42|Serial input to|pressed -> " |
        grep -v 'echo typed' | cut -c1-160 | sed "s/^/[$current]   /"
}
sdcard_linux

# Reference: the same guest as dom0 of Xen 4.17 on the same board.
xen_reference() {
    current=xen current_log=$out/xen.log
    local xen=target/payloads/xen/boot/xen-4.17-arm64 dtb=$out/xen-raspi4b.dtb mod=0x10000000
    if [ "${XEN_REFERENCE:-1}" = 0 ]; then
        echo "[xen] SKIPPED (XEN_REFERENCE=0)"
        return
    fi
    if ! command -v python3 >/dev/null; then
        echo "[xen] SKIPPED: no python3 (scripts/install-deps.sh installs it)"
        return
    fi
    bash scripts/fetch-payloads.sh xen || { fail "cannot fetch Xen 4.17"; return; }
    # Xen takes dom0's kernel only from a multiboot module node. QEMU's guest-loader adds one
    # to the tree it dumps, with 2+2 cells where the Pi's root says 2+1 and a zero size:
    # rewrite that reg as 2+1 cells with the real size (the freed cell becomes an FDT_NOP).
    "$qemu" -M "raspi4b,dumpdtb=$dtb" -dtb "$pi_dtb" -display none -kernel "$xen" -append x \
        -device "guest-loader,addr=$mod,kernel=$guest,bootargs=console=hvc0" >/dev/null 2>&1 ||
        { fail "QEMU could not dump the device tree"; return; }
    python3 - "$dtb" "module@$mod" "$(stat -c %s "$guest")" <<'PY' || { fail "device tree edit failed"; return; }
import struct, sys
path, want, size = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
b = bytearray(open(path, 'rb').read())
st, strs = struct.unpack('>II', b[8:16])
i, path_, done = st, [], False
while True:
    tok, = struct.unpack('>I', b[i:i + 4]); i += 4
    if tok == 1:
        e = b.index(0, i); path_.append(bytes(b[i:e])); i = (e + 4) & ~3
    elif tok == 2:
        path_.pop()
    elif tok == 3:
        ln, no = struct.unpack('>II', b[i:i + 8]); i += 8
        name = bytes(b[strs + no:b.index(0, strs + no)])
        if path_ and path_[-1] == want and name == b'reg' and ln == 16:
            hi, lo = struct.unpack('>II', b[i:i + 8])
            struct.pack_into('>I', b, i - 8, 12)
            struct.pack_into('>IIII', b, i, hi, lo, size, 4)
            done = True
        i = (i + ln + 3) & ~3
    elif tok == 9:
        break
if not done:
    sys.exit("no 16-byte reg in " + want.decode())
open(path, 'wb').write(b)
PY
    local t0=$SECONDS
    rm -f "$current_log"
    timeout 90 "$qemu" -M raspi4b -dtb "$dtb" -display none -monitor none -no-reboot \
        -serial null -serial "file:$current_log" -kernel "$xen" \
        -append "dom0_mem=128M console=dtuart dtuart=serial1 loglvl=all guest_loglvl=all" \
        -device "loader,file=$guest,addr=$mod,force-raw=on" </dev/null >/dev/null 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if grep -aq '\[granite-test\] SUMMARY' "$current_log" 2>/dev/null; then
            sleep 1
            kill "$pid" 2>/dev/null
            break
        fi
        sleep 1
    done
    wait "$pid"
    local st=$?
    if [ "$st" = 124 ]; then
        fail "timed out after 90 s without the guest's summary"
    else
        echo "[xen] guest summary out after $((SECONDS - t0)) s; QEMU stopped (the Pi cannot power off under Xen)"
    fi
    grep -aE "^\(XEN\).*(BANK\[0\]|Grant table range|extended region)" "$current_log" | tr -d '\r' | sed "s/^/[xen]   /"
    verdict ""
}
xen_reference

if [ "$failures" != 0 ]; then
    echo "rpi4-test: $failures failure(s); logs in $out/" >&2
    exit 1
fi
echo "rpi4-test: all runs passed (logs in $out/)"
