#!/usr/bin/env bash
# Fetches Debian's arm64 packages used as test references and unpacks them into a cache:
#   xen          - xen-hypervisor-4.17-arm64 (the reference hypervisor for the conformance run)
#   linux        - linux-image-*-arm64 (the Raspberry Pi 4 device tree; its Image can be a
#                  dom0 kernel on the SD card)
#   rpi-firmware - raspi-firmware (the Raspberry Pi 4 boot firmware start4.elf/fixup4.dat for
#                  the SD card), from Debian's non-free-firmware component: if the apt sources
#                  lack it, a source for that component is added for arm64 only, pinned so
#                  that apt takes nothing from it but raspi-firmware (see rpi_firmware_source)
#   busybox      - busybox-static (a static arm64 busybox at bin/busybox: the userland of the
#                  Linux dom0 test's initramfs, scripts/linux-initramfs.sh)
# Usage: scripts/fetch-payloads.sh [xen] [linux] [rpi-firmware] [busybox]     (default: xen)
# Prints nothing but errors; the cache is $PAYLOAD_CACHE (default: <repo>/target/payloads).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PAYLOAD_CACHE:-$top/target/payloads}
mkdir -p "$cache"
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
. "$top/scripts/lib/apt-mirror.sh"

arm64_ready() {
    dpkg --print-foreign-architectures | grep -qx arm64 &&
        apt-cache policy "xen-hypervisor-4.17-arm64:arm64" 2>/dev/null | grep -q Candidate
}
if ! arm64_ready; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
fi

fetch() { # fetch <package-name>[:arch] <dest-dir>
    local pkg=$1 dest=$2
    [ -d "$dest" ] && return 0
    case $pkg in *:*) ;; *) pkg=$pkg:arm64 ;; esac
    local tmp; tmp=$(mktemp -d); chmod 777 "$tmp"  # apt downloads as the _apt user
    (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null)
    mkdir -p "$dest.part"
    dpkg -x "$tmp"/*.deb "$dest.part"
    rm -rf "$tmp"
    mv "$dest.part" "$dest"
}

# raspi-firmware (Architecture: all) lives in non-free-firmware, which Debian's default
# sources on a build machine often lack. Add that component for arm64 only, with a pin that
# forbids every package from it (priority -1) except raspi-firmware, and refresh only that
# source: nothing else apt installs or upgrades changes.
rpi_firmware_source() {
    apt-cache policy raspi-firmware 2>/dev/null | grep -q 'Candidate: [0-9]' && return 0
    local suite; suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    local src=/etc/apt/sources.list.d/granite-non-free-firmware.sources
    local mirror; mirror=$(debian_mirror)
    $SUDO tee "$src" >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: $suite
Components: non-free-firmware
Architectures: arm64
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    $SUDO tee /etc/apt/preferences.d/granite-non-free-firmware >/dev/null <<'PIN'
Package: *
Pin: release o=Debian,c=non-free-firmware
Pin-Priority: -1

Package: raspi-firmware
Pin: release o=Debian,c=non-free-firmware
Pin-Priority: 500
PIN
    $SUDO apt-get update -qq -o Dir::Etc::sourcelist="$src" -o Dir::Etc::sourceparts=- \
        -o APT::Get::List-Cleanup=0
}

for what in "${@:-xen}"; do
    case $what in
    xen)
        fetch xen-hypervisor-4.17-arm64 "$cache/xen"
        ls "$cache"/xen/boot/xen-4.17-arm64 >/dev/null ;;
    linux)
        # the newest linux-image-<abi>-arm64 this mirror has
        pkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-arm64\).*/\1/p' | head -n1)
        fetch "${pkg%%:*}" "$cache/linux"
        ls "$cache"/linux/usr/lib/linux-image-*/broadcom/bcm2711-rpi-4-b.dtb >/dev/null ;;
    rpi-firmware)
        rpi_firmware_source
        fetch raspi-firmware:all "$cache/raspi-firmware"
        ls "$cache"/raspi-firmware/usr/lib/raspi-firmware/start4.elf >/dev/null ;;
    busybox)
        fetch busybox-static "$cache/busybox"
        ls "$cache"/busybox/bin/busybox >/dev/null ;;
    *) echo "unknown payload $what" >&2; exit 2 ;;
    esac
done
