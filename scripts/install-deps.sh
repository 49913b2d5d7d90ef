#!/usr/bin/env bash
# Installs what the run and test commands need on a fresh Debian bookworm machine:
#   - QEMU 10 (qemu-system-aarch64 with -M raspi4b) from bookworm-backports
#   - the Rust target and components pinned in rust-toolchain.toml (rustup does it on first use)
# Idempotent: does nothing when everything is present. Needs root for apt.
set -euo pipefail

need_qemu() {
    command -v qemu-system-aarch64 >/dev/null 2>&1 || return 0
    # QEMU 7.2 from bookworm has no raspi4b; we need >= 9.
    local v
    v=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p')
    [ "${v:-0}" -lt 9 ]
}

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

. "$(dirname "$0")/lib/apt-mirror.sh"

apt_updated=0
apt_update() {
    if [ "$apt_updated" = 0 ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
}

if need_qemu; then
    echo "[install-deps] installing qemu-system-arm from bookworm-backports"
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        # The machine's own Debian mirror (the first URI of its main sources).
        mirror=$(debian_mirror)
        $SUDO tee /etc/apt/sources.list.d/bookworm-backports.sources >/dev/null <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt_update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports \
        qemu-system-arm >/dev/null
fi
qemu-system-aarch64 --version | head -n 1

# Tools the scripts use to unpack Debian arm64 packages and build the SD image, python3
# for the Raspberry Pi 4 test's reference run (it edits a device tree for Xen), cpio for the
# Linux dom0 test's initramfs (scripts/linux-initramfs.sh) and fdtput for the Pi 4 device tree
# Linux boots with on QEMU (scripts/rpi4-linux-dtb.sh).
for tool in dpkg-deb:dpkg mkfs.vfat:dosfstools mcopy:mtools python3:python3-minimal cpio:cpio \
    fdtput:device-tree-compiler; do
    bin=${tool%%:*}; pkg=${tool##*:}
    if ! command -v "$bin" >/dev/null 2>&1; then
        apt_update
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$pkg" >/dev/null
    fi
done

# The toolchain file pins the compiler, the aarch64-unknown-none target, rustfmt and clippy;
# `rustup toolchain install` (no argument) installs whatever of it is missing.
if command -v rustup >/dev/null 2>&1; then
    (cd "$(dirname "$0")/.." && rustup toolchain install >/dev/null 2>&1)
fi
