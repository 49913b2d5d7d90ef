#!/usr/bin/env bash
# Fetches Debian's arm64 packages used as test references and unpacks them into a cache:
#   xen   - xen-hypervisor-4.17-arm64 (the reference hypervisor for the conformance run)
#   linux - linux-image-*-arm64 (only for the Raspberry Pi 4 device tree)
# Usage: scripts/fetch-payloads.sh [xen] [linux]     (default: xen)
# Prints nothing but errors; the cache is $PAYLOAD_CACHE (default: <repo>/target/payloads).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${PAYLOAD_CACHE:-$top/target/payloads}
mkdir -p "$cache"
SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"

arm64_ready() {
    dpkg --print-foreign-architectures | grep -qx arm64 &&
        apt-cache policy "xen-hypervisor-4.17-arm64:arm64" 2>/dev/null | grep -q Candidate
}
if ! arm64_ready; then
    $SUDO dpkg --add-architecture arm64
    $SUDO apt-get update -qq
fi

fetch() { # fetch <package-name> <dest-dir>
    local pkg=$1 dest=$2
    [ -d "$dest" ] && return 0
    local tmp; tmp=$(mktemp -d); chmod 777 "$tmp"  # apt downloads as the _apt user
    (cd "$tmp" && apt-get download -qq "$pkg:arm64" >/dev/null)
    mkdir -p "$dest.part"
    dpkg -x "$tmp"/*.deb "$dest.part"
    rm -rf "$tmp"
    mv "$dest.part" "$dest"
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
    *) echo "unknown payload $what" >&2; exit 2 ;;
    esac
done
