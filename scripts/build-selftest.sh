#!/usr/bin/env bash
# Builds xen-selftest (tests/linux/selftest: the grant and event-channel check a Linux dom0 runs
# from its initramfs, see tests/linux/init) as a static aarch64-unknown-linux-musl binary and
# copies it to target/linux/xen-selftest (OUT=path to change).
#
# Installs what a fresh Debian machine lacks: the aarch64-unknown-linux-musl standard library for
# the toolchain pinned in rust-toolchain.toml (rustup target add), and a linker. The linker is
# rust-lld (shipped with the toolchain; Rust's own musl start files and libc, no C toolchain);
# if linking with it fails, Debian's gcc-aarch64-linux-gnu (apt-get) is used instead.
# SELFTEST_LINKER=gcc skips rust-lld.
#
# Quiet when the binary is up to date; one line when it was (re)built.
# Exit status: 0 built or up to date, 1 build failed, 2 could not install a prerequisite.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { echo "[build-selftest] $*"; }
die() { echo "[build-selftest] $2" >&2; exit "$1"; }

target=aarch64-unknown-linux-musl
OUT=${OUT:-target/linux/xen-selftest}
export CARGO_TARGET_DIR="$top/target/selftest"
manifest=tests/linux/selftest/Cargo.toml
built="$CARGO_TARGET_DIR/$target/release/xen-selftest"
linker_var=CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER

# The pinned toolchain (rustup installs it on first use) and its musl standard library.
sysroot=$(rustc --print sysroot) || die 2 "rustc does not run"
if [ ! -d "$sysroot/lib/rustlib/$target/lib" ]; then
    say "installing the $target standard library (rustup target add)"
    rustup target add "$target" >/dev/null 2>&1 || die 2 "rustup target add $target failed"
fi

# build LINKER: cargo build --release with that linker; its output is kept in $log.
log=$(mktemp) || die 1 "mktemp failed"
trap 'rm -f "$log"' EXIT
build() {
    env "$linker_var=$1" cargo build -q --release --locked --manifest-path "$manifest" --target "$target" >"$log" 2>&1
}

gcc_linker() {
    if ! command -v aarch64-linux-gnu-gcc >/dev/null 2>&1; then
        say "installing gcc-aarch64-linux-gnu (apt-get)"
        SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq gcc-aarch64-linux-gnu; } >"$log" 2>&1 ||
            { cat "$log" >&2; die 2 "gcc-aarch64-linux-gnu is missing and could not be installed"; }
    fi
    build aarch64-linux-gnu-gcc
}

if [ "${SELFTEST_LINKER:-}" = gcc ]; then
    gcc_linker || { cat "$log" >&2; die 1 "cargo build failed (linker aarch64-linux-gnu-gcc)"; }
elif ! build rust-lld; then
    if grep -q 'error: linking with' "$log"; then
        say "linking with rust-lld failed; trying aarch64-linux-gnu-gcc"
        sed 's/^/[build-selftest]   /' "$log" | tail -n 5
        gcc_linker || { cat "$log" >&2; die 1 "cargo build failed (linker aarch64-linux-gnu-gcc)"; }
    else
        cat "$log" >&2
        die 1 "cargo build failed"
    fi
fi
# (cargo's warnings, if any, are worth seeing)
[ -s "$log" ] && cat "$log" >&2

[ -f "$built" ] || die 1 "cargo build succeeded but $built is missing"
if ! cmp -s "$built" "$OUT"; then
    mkdir -p "$(dirname "$OUT")"
    install -m 0755 "$built" "$OUT.part" && mv "$OUT.part" "$OUT" || die 1 "cannot copy $built to $OUT"
    say "built $OUT ($(stat -c %s "$OUT") bytes, static $target)"
fi
exit 0
