#!/usr/bin/env bash
# Builds what a Raspberry Pi 4 boots granite from: kernel8.img (target/images/granite.bin,
# position independent) and a FAT32 boot partition with config.txt and cmdline.txt
# (boards/rpi4/), kernel8.img, dom0's kernel (dom0.img), the Pi 4 device tree and the boot
# firmware, taken from Debian's packages:
#   bcm2711-rpi-4-b.dtb     linux-image-*-arm64 (main)            scripts/fetch-payloads.sh linux
#   start4.elf, fixup4.dat  raspi-firmware (non-free-firmware)    scripts/fetch-payloads.sh rpi-firmware
# A file that cannot be obtained here is named, with where it goes, and left out.
#
# Output, under target/rpi4/:
#   boot/       the boot partition's files
#   boot.vfat   that FAT32 file system alone
#   sdcard.img  a whole-card image: an MBR with one FAT32 (LBA, type 0x0c) partition from
#               1 MiB holding boot.vfat. Flash it with
#                 sudo dd if=target/rpi4/sdcard.img of=/dev/sdX bs=4M conv=fsync status=progress
#               (sdX: the card's device, see lsblk; everything on it is lost)
#
# Environment: GRANITE=file kernel8.img (default: target/images/granite.bin)
#              DOM0=file   dom0's kernel, an arm64 Image (default: target/images/smoke.img,
#                          the test guest; Debian's Linux Image is target/payloads/linux/boot/
#                          vmlinuz-*, see boards/rpi4/README.md for what it still lacks)
#              NO_BUILD=1  use the images as they are
#              SIZE_MIB=n  size of the boot partition (default 64)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
out=target/rpi4
size_mib=${SIZE_MIB:-64}
if [ -z "${NO_BUILD:-}" ]; then
    bash scripts/build.sh
fi
dom0=${DOM0:-target/images/smoke.img}
granite=${GRANITE:-target/images/granite.bin}
for f in "$granite" "$dom0" boards/rpi4/config.txt boards/rpi4/cmdline.txt; do
    [ -f "$f" ] || { echo "[sd-image] missing $f" >&2; exit 1; }
done

rm -rf "$out/boot"
mkdir -p "$out/boot"
boot=$out/boot
missing=()
cp boards/rpi4/config.txt boards/rpi4/cmdline.txt "$boot/"
cp "$granite" "$boot/kernel8.img"
cp "$dom0" "$boot/dom0.img"

# The device tree, from Debian's kernel package.
if bash scripts/fetch-payloads.sh linux 2>/dev/null &&
    dtb=$(ls target/payloads/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb 2>/dev/null | head -n1) &&
    [ -n "$dtb" ]; then
    cp "$dtb" "$boot/"
else
    missing+=("bcm2711-rpi-4-b.dtb -> /bcm2711-rpi-4-b.dtb (Debian linux-image-*-arm64: usr/lib/linux-image-*/broadcom/)")
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
