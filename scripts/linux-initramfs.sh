#!/usr/bin/env bash
# Builds the initramfs of the Linux dom0 test (scripts/linux-dom0.sh): a `cpio -H newc | gzip`
# archive with
#   /init                    tests/linux/init (the checks; prints "[linux-dom0] ..." lines)
#   /bin/busybox, /bin/sh    Debian's busybox-static:arm64 (fetch-payloads.sh busybox); /init
#                            installs the other applet links at boot
#   /lib/modules/xen/*.ko    the Xen driver modules of the fetched kernel (fetch-payloads.sh
#                            linux) and every module they depend on, decompressed (busybox
#                            insmod takes plain .ko files), and load-order: their names,
#                            dependencies first
#   /bin/<name>              each file EXTRA_BIN names (e.g. the xen-selftest program)
#
# Environment (all optional):
#   OUT=path       the archive (default: target/linux/initramfs.cpio.gz)
#   MODULES=...    the modules wanted (default: xen-evtchn xen-gntalloc xen-gntdev
#                  xen-privcmd xenfs); their dependencies are added from the modules' own
#                  "depends=" info
#   EXTRA_BIN=...  file(s) to copy to /bin/ (space-separated paths)
#   INIT=path      the /init script (default: tests/linux/init)
#   FORCE=1        rebuild even if no input changed
# Idempotent: the archive is rebuilt only when an input (these files, this script, the module
# list) changed; OUT.inputs records what it was built from.
# Exit status: 0 built or up to date, 1 build failed, 2 could not run (payloads or tools missing).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
say() { echo "[linux-initramfs] $*"; }
die() { echo "[linux-initramfs] $2" >&2; exit "$1"; }

OUT=${OUT:-target/linux/initramfs.cpio.gz}
INIT=${INIT:-tests/linux/init}
MODULES=${MODULES:-xen-evtchn xen-gntalloc xen-gntdev xen-privcmd xenfs}
EXTRA_BIN=${EXTRA_BIN:-}

# Tools: cpio (package cpio) and gzip; installed with apt when missing, as install-deps.sh does.
if ! command -v cpio >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq cpio >/dev/null; } ||
        die 2 "cpio is missing and could not be installed"
fi
command -v gzip >/dev/null 2>&1 || die 2 "gzip is missing"

busybox=target/payloads/busybox/bin/busybox
if [ ! -f "$busybox" ] || [ ! -d target/payloads/linux/lib/modules ]; then
    bash scripts/fetch-payloads.sh linux busybox || die 2 "cannot fetch the linux and busybox payloads"
fi
moddir=$(ls -d target/payloads/linux/lib/modules/*/ 2>/dev/null | head -n1)
moddir=${moddir%/}
[ -f "$busybox" ] || die 2 "missing $busybox"
[ -n "$moddir" ] && [ -d "$moddir/kernel" ] || die 2 "no lib/modules/<version>/kernel in target/payloads/linux"
[ -f "$INIT" ] || die 2 "missing $INIT"
for f in $EXTRA_BIN; do
    [ -f "$f" ] || die 2 "EXTRA_BIN: missing $f"
done

# Every module of the kernel by its name ('-' and '_' are the same in module names).
declare -A ko_path=() ko_file=()
while IFS= read -r f; do
    b=${f##*/}; b=${b%%.ko*}; n=${b//-/_}
    ko_path[$n]=$f
    ko_file[$n]=$b   # the file's own spelling, e.g. xen-evtchn
done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')

# ko_cat FILE: the module, decompressed.
ko_cat() {
    case $1 in
    *.ko.xz) xz -dc "$1" ;;
    *.ko.zst) zstd -qdc "$1" ;;
    *.ko.gz) gzip -dc "$1" ;;
    *) cat "$1" ;;
    esac
}
# ko_depends FILE: the names in the module's "depends=" modinfo field.
ko_depends() {
    ko_cat "$1" | tr '\0' '\n' | grep -a -m1 '^depends=' | sed 's/^depends=//' | tr ',' ' '
}

# The load order: a depth-first walk that puts each module after its dependencies.
declare -A state=()   # 1 = being visited, 2 = placed
order=()
visit() {
    local n=${1//-/_} d
    [ "${state[$n]:-0}" = 2 ] && return 0
    [ "${state[$n]:-0}" = 1 ] && die 1 "dependency cycle through $n"
    [ -n "${ko_path[$n]:-}" ] || die 1 "module $1 is not in $moddir/kernel"
    state[$n]=1
    for d in $(ko_depends "${ko_path[$n]}"); do
        visit "$d"
    done
    state[$n]=2
    order+=("${ko_file[$n]}")
}
for m in $MODULES; do
    visit "$m"
done

# The inputs; the archive is rebuilt when this list changes.
inputs=$(
    echo "modules: ${order[*]}"
    sha256sum "$0" "$INIT" "$busybox" $EXTRA_BIN
    for n in "${order[@]}"; do sha256sum "${ko_path[${n//-/_}]}"; done
)
if [ "${FORCE:-0}" != 1 ] && [ -f "$OUT" ] && [ -f "$OUT.inputs" ] && [ "$(cat "$OUT.inputs")" = "$inputs" ]; then
    say "$OUT is up to date (modules: ${order[*]})"
    exit 0
fi

mkdir -p "$(dirname "$OUT")"
stage=$(mktemp -d "$(dirname "$OUT")/initramfs.XXXXXX") || die 1 "mktemp failed"
trap 'rm -rf "$stage" "$OUT.part"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,root,etc,lib/modules/xen}
install -m 0755 "$INIT" "$stage/init"
install -m 0755 "$busybox" "$stage/bin/busybox"
ln -s busybox "$stage/bin/sh"
# The kernel opens /dev/console for init before /init can mount devtmpfs (its built-in
# initramfs has the node too; this one makes the archive self-sufficient when we can).
mknod -m 0600 "$stage/dev/console" c 5 1 2>/dev/null || true
for n in "${order[@]}"; do
    ko_cat "${ko_path[${n//-/_}]}" >"$stage/lib/modules/xen/$n.ko" || die 1 "cannot unpack ${ko_path[${n//-/_}]}"
done
printf '%s\n' "${order[@]}" >"$stage/lib/modules/xen/load-order"
for f in $EXTRA_BIN; do
    install -m 0755 "$f" "$stage/bin/$(basename "$f")"
done
find "$stage" -exec touch -h -d @0 {} +

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
    cpio -o -H newc -R 0:0 --reproducible --quiet | gzip -9n) >"$OUT.part" || die 1 "cpio | gzip failed"
mv "$OUT.part" "$OUT"
printf '%s\n' "$inputs" >"$OUT.inputs"
say "built $OUT ($(stat -c %s "$OUT") bytes; modules in load order: ${order[*]}${EXTRA_BIN:+; extra: $EXTRA_BIN})"
