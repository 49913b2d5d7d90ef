#!/usr/bin/env bash
# Builds what a Raspberry Pi 4 boots granite from: kernel8.img (target/images/granite.bin,
# position independent) and a FAT32 boot partition with config.txt and cmdline.txt
# (boards/rpi4/), kernel8.img, dom0's files (dom0.img), the Pi 4 device tree and the boot
# firmware, taken from Debian's packages:
#   bcm2711-rpi-4-b.dtb     linux-image-*-arm64 (main)            scripts/fetch-payloads.sh linux
#   start4.elf, fixup4.dat  raspi-firmware (non-free-firmware)    scripts/fetch-payloads.sh rpi-firmware
# A file that cannot be obtained here is named, with where it goes, and left out.
#
# Dom0's files reach granite through config.txt's `initramfs dom0.img ADDRESS` line, the only
# way the firmware loads a second file: it puts dom0.img at ADDRESS and records it in /chosen
# linux,initrd-start/end.
#   - dom0 = one kernel (the default, the smoke test guest): dom0.img is that arm64 Image, and
#     granite takes the /chosen initrd as dom0's kernel when no multiboot module names one.
#   - dom0 = a kernel and its initramfs (DOM0=linux, or INITRD=...): the firmware loads one
#     file to one place (several comma-separated names are concatenated into one blob), so
#     dom0.img is the kernel, zero-padded to a 4 KiB boundary, then the initramfs; and the
#     card's device tree gets two /chosen multiboot module nodes (Xen's boot protocol, which
#     granite reads) saying where each part lies once the file is at ADDRESS:
#         /chosen/module@<ADDRESS>  compatible "multiboot,kernel", "multiboot,module"
#         /chosen/module@<...>      compatible "multiboot,ramdisk", "multiboot,module"
#     ADDRESS is read from config.txt's initramfs line (it must be a number, not
#     followkernel). The /chosen initrd the firmware adds covers both parts; granite keeps it
#     as a module of unknown use. The tree is otherwise Debian's, unchanged.
#
# Output, under target/rpi4/ (OUTDIR=dir: there instead):
#   boot/       the boot partition's files
#   boot.vfat   that FAT32 file system alone
#   sdcard.img  a whole-card image: an MBR with one FAT32 (LBA, type 0x0c) partition from
#               1 MiB holding boot.vfat. Flash it with
#                 sudo dd if=target/rpi4/sdcard.img of=/dev/sdX bs=4M conv=fsync status=progress
#               (sdX: the card's device, see lsblk; everything on it is lost)
#
# Environment: GRANITE=file kernel8.img (default: target/images/granite.bin)
#              DOM0=file   dom0's kernel, an arm64 Image (default: target/images/smoke.img,
#                          the test guest)
#              DOM0=linux  Debian's Linux 6.1 (target/payloads/linux/boot/vmlinuz-*-arm64, an
#                          arm64 Image) with the project's initramfs (scripts/linux-initramfs.sh,
#                          its /init checks then a shell; with xen-selftest from
#                          scripts/build-selftest.sh unless SELFTEST=0), and
#                          boards/rpi4/cmdline-linux.txt as cmdline.txt
#              INITRD=file dom0's initramfs (with DOM0=linux: instead of the project's)
#              CMDLINE=file the card's cmdline.txt (default boards/rpi4/cmdline.txt, or
#                          boards/rpi4/cmdline-linux.txt with DOM0=linux)
#              NO_BUILD=1  use granite's and the guests' images as they are (no scripts/build.sh)
#              SIZE_MIB=n  size of the boot partition (default 64)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { echo "[sd-image] $*"; }
die() { echo "[sd-image] $*" >&2; exit 1; }
out=${OUTDIR:-target/rpi4}
size_mib=${SIZE_MIB:-64}
if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh
fi
granite=${GRANITE:-target/images/granite.bin}
dom0=${DOM0:-target/images/smoke.img}
initrd=${INITRD:-}
cmdline=${CMDLINE:-boards/rpi4/cmdline.txt}
if [ "$dom0" = linux ]; then
    bash scripts/fetch-payloads.sh linux >/dev/null || die "cannot fetch Debian's Linux (scripts/fetch-payloads.sh linux)"
    dom0=$(ls target/payloads/linux/boot/vmlinuz-*-arm64 2>/dev/null | head -n1)
    [ -n "$dom0" ] || die "no target/payloads/linux/boot/vmlinuz-*-arm64"
    if [ -z "$initrd" ]; then
        # The project's initramfs, built here (its own file: other scripts build
        # target/linux/initramfs.cpio.gz with other contents).
        extra=${EXTRA_BIN-}
        if [ -z "${EXTRA_BIN+set}" ] && [ "${SELFTEST:-1}" != 0 ]; then
            OUT=target/linux/xen-selftest bash scripts/build-selftest.sh || die "cannot build xen-selftest (SELFTEST=0 leaves it out)"
            extra=target/linux/xen-selftest
        fi
        mkdir -p "$out"
        initrd=$out/dom0-initramfs.cpio.gz
        OUT=$initrd EXTRA_BIN=$extra bash scripts/linux-initramfs.sh >/dev/null || die "cannot build the initramfs (scripts/linux-initramfs.sh)"
    fi
    cmdline=${CMDLINE:-boards/rpi4/cmdline-linux.txt}
fi
for f in "$granite" "$dom0" ${initrd:+"$initrd"} boards/rpi4/config.txt "$cmdline"; do
    [ -f "$f" ] || die "missing $f"
done

rm -rf "${out:?}/boot"
mkdir -p "$out/boot"
boot=$out/boot
missing=()
cp boards/rpi4/config.txt "$boot/"
cp "$cmdline" "$boot/cmdline.txt"
cp "$granite" "$boot/kernel8.img"
if [ -z "$initrd" ]; then
    cp "$dom0" "$boot/dom0.img"
else
    # Where the firmware puts dom0.img: config.txt's "initramfs dom0.img ADDRESS".
    read -r ramfs_file ramfs_addr < <(awk '$1 == "initramfs" { print $2, $3 }' boards/rpi4/config.txt)
    [ "${ramfs_file:-}" = dom0.img ] || die "boards/rpi4/config.txt has no \"initramfs dom0.img ADDRESS\" line"
    [[ "${ramfs_addr:-}" =~ ^0x[0-9a-fA-F]+$ ]] ||
        die "config.txt loads dom0.img at \"${ramfs_addr:-}\": the module nodes need a fixed address (0x...)"
    kbytes=$(stat -c %s "$dom0")
    rbytes=$(stat -c %s "$initrd")
    kspan=$(((kbytes + 4095) / 4096 * 4096))
    kaddr=$((ramfs_addr))
    raddr=$((kaddr + kspan))
    cp "$dom0" "$boot/dom0.img"
    truncate -s "$kspan" "$boot/dom0.img"
    cat "$initrd" >>"$boot/dom0.img"
fi
# The device tree, from Debian's kernel package.
if bash scripts/fetch-payloads.sh linux 2>/dev/null &&
    dtb=$(ls target/payloads/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb 2>/dev/null | head -n1) &&
    [ -n "$dtb" ]; then
    cp "$dtb" "$boot/"
else
    missing+=("bcm2711-rpi-4-b.dtb -> /bcm2711-rpi-4-b.dtb (Debian linux-image-*-arm64: usr/lib/linux-image-*/broadcom/)")
fi
# A kernel and an initramfs in dom0.img: where each lies, in the card's tree (see the top).
if [ -n "$initrd" ]; then
    tree=$boot/bcm2711-rpi-4-b.dtb
    [ -f "$tree" ] || die "no device tree to describe dom0's kernel and initramfs in: ${missing[*]}"
    if ! command -v fdtput >/dev/null 2>&1; then
        SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq device-tree-compiler >/dev/null; } ||
            die "fdtput missing (package device-tree-compiler) and could not be installed"
    fi
    kmod=/chosen/module@$(printf %x "$kaddr") rmod=/chosen/module@$(printf %x "$raddr")
    cells() { printf '0x%x 0x%x' $(($1 >> 32)) $(($1 & 0xffffffff)); }
    # The kernel's node is made last: libfdt puts a new node first, and a reader that knows
    # only "multiboot,module" takes the first one as the kernel (Xen's rule).
    # shellcheck disable=SC2046 # cells prints two numbers
    {
        fdtput -t u "$tree" /chosen '#address-cells' 2 &&
            fdtput -t u "$tree" /chosen '#size-cells' 2 &&
            fdtput -c "$tree" "$rmod" && fdtput -c "$tree" "$kmod" &&
            fdtput -t s "$tree" "$kmod" compatible multiboot,kernel multiboot,module &&
            fdtput -t x "$tree" "$kmod" reg $(cells "$kaddr") $(cells "$kbytes") &&
            fdtput -t s "$tree" "$rmod" compatible multiboot,ramdisk multiboot,module &&
            fdtput -t x "$tree" "$rmod" reg $(cells "$raddr") $(cells "$rbytes")
    } || die "cannot add the module nodes to $tree"
    say "dom0.img at $ramfs_addr (config.txt): kernel $dom0 ($kbytes bytes) at $(printf 0x%x "$kaddr"), initramfs $initrd ($rbytes bytes) at $(printf 0x%x "$raddr"); bcm2711-rpi-4-b.dtb: $kmod, $rmod"
fi
# The boot firmware (the Pi 4's boot loader in EEPROM loads start4.elf with fixup4.dat).
fw=target/payloads/raspi-firmware/usr/lib/raspi-firmware
if bash scripts/fetch-payloads.sh rpi-firmware 2>/dev/null && [ -f "$fw/start4.elf" ]; then
    cp "$fw/start4.elf" "$fw/fixup4.dat" "$boot/"
    cp target/payloads/raspi-firmware/usr/share/doc/raspi-firmware/copyright "$boot/LICENCE.raspi-firmware"
else
    missing+=("start4.elf -> /start4.elf (Debian raspi-firmware, non-free-firmware: usr/lib/raspi-firmware/)")
    missing+=("fixup4.dat -> /fixup4.dat (Debian raspi-firmware, non-free-firmware: usr/lib/raspi-firmware/)")
fi
# config.txt's dtoverlay=disable-bt puts the PL011 (granite's console) on GPIO 14/15. No Debian
# package ships the Raspberry Pi overlays.
missing+=("overlays/disable-bt.dtbo -> /overlays/disable-bt.dtbo (not in any Debian package: take it from the Raspberry Pi firmware's boot/overlays/ directory; without it the console is on the Bluetooth pins, see boards/rpi4/README.md)")

# The FAT32 file system (1 sector per cluster keeps a small partition FAT32), then the card.
rm -f "$out/boot.vfat" "$out/sdcard.img"
mkfs.vfat -F 32 -s 1 -n GRANITE -C "$out/boot.vfat" $((size_mib * 1024)) >/dev/null
mcopy -i "$out/boot.vfat" -s "$boot"/* ::/
start=2048 # sectors: the partition starts at 1 MiB
sectors=$((size_mib * 2048))
truncate -s $(((start + sectors) * 512)) "$out/sdcard.img"
le32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255)); }
# MBR partition entry 1: not active, CHS fields "use LBA", type 0x0c (FAT32 LBA); signature.
# shellcheck disable=SC2059 # the format strings are the bytes
{
    printf '\x00\xfe\xff\xff\x0c\xfe\xff\xff'
    printf "$(le32 $start)$(le32 $sectors)"
} | dd of="$out/sdcard.img" bs=1 seek=446 conv=notrunc status=none
printf '\x55\xaa' | dd of="$out/sdcard.img" bs=1 seek=510 conv=notrunc status=none
dd if="$out/boot.vfat" of="$out/sdcard.img" bs=1M seek=1 conv=notrunc,sparse status=none

echo "[sd-image] $out/sdcard.img: MBR + FAT32 partition GRANITE (${size_mib} MiB from 1 MiB):"
mdir -i "$out/sdcard.img@@1M" -b ::/ | sed 's|^::/|    |'
for m in "${missing[@]}"; do
    echo "[sd-image] NOT INCLUDED: $m"
done
echo "[sd-image] flash: sudo dd if=$out/sdcard.img of=/dev/sdX bs=4M conv=fsync status=progress"
