#!/usr/bin/env bash
# Builds the EL2 image and the test guests for aarch64-unknown-none (release profile) and
# turns them into raw arm64 Images under target/images/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p target/images
sysroot=$(rustc --print sysroot)
host=$(rustc -vV | sed -n 's/^host: //p')
objcopy() { LD_LIBRARY_PATH="$sysroot/lib" "$sysroot/lib/rustlib/$host/bin/rust-objcopy" "$@"; }
export -f objcopy 2>/dev/null || true
. scripts/lib/build-image.sh
. scripts/lib/build-guests.sh
