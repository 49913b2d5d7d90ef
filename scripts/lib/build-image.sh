# Sourced by scripts/build.sh: builds the hypervisor image (target/images/granite.bin), a raw
# arm64 Image (64-byte Linux Image header, position independent) from the release ELF.
echo "[build] granite (aarch64-unknown-none, release)"
cargo build --release --target aarch64-unknown-none -p granite --bin granite
objcopy -O binary target/aarch64-unknown-none/release/granite target/images/granite.bin
# Sanity: the arm64 Image magic must be at offset 0x38.
if [ "$(od -An -tx1 -j56 -N4 target/images/granite.bin | tr -d ' \n')" != "41524d64" ]; then
    echo "[build] target/images/granite.bin has no arm64 Image header" >&2
    exit 1
fi
echo "[build] target/images/granite.bin ($(stat -c %s target/images/granite.bin) bytes)"
# The same image built with debug assertions: the lock-order checker of src/sync.rs runs on it
# (target/images/granite-debug.bin; scripts/test.sh boots guests on it).
echo "[build] granite, debug build (lock ranks checked)"
cargo build --target aarch64-unknown-none -p granite --bin granite
objcopy -O binary target/aarch64-unknown-none/debug/granite target/images/granite-debug.bin
echo "[build] target/images/granite-debug.bin ($(stat -c %s target/images/granite-debug.bin) bytes)"
