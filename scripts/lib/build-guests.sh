# Sourced by scripts/build.sh: builds the test guests for aarch64-unknown-none (release) and
# turns each into a raw arm64 Image: target/images/<guest>.img. Needs the `objcopy` function
# that scripts/build.sh defines (the sysroot's rust-objcopy).
guests=(smoke fuzz xdom bench gic xsa)
echo "[build] test guests: ${guests[*]}"
cargo build --release --target aarch64-unknown-none -p granite-guests --features guest
for g in "${guests[@]}"; do
    elf=target/aarch64-unknown-none/release/$g
    img=target/images/$g.img
    objcopy -O binary "$elf" "$img"
    # Sanity: the arm64 Image magic must be at 0x38.
    if [ "$(dd if="$img" bs=1 skip=56 count=4 2>/dev/null)" != "ARM"$'\x64' ]; then
        echo "[build] $img: no arm64 Image header" >&2
        exit 1
    fi
    echo "[build] $img ($(stat -c %s "$img") bytes)"
done
