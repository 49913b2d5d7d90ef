#!/usr/bin/env bash
# Line coverage of the portable core by the host fuzzer's corpus: builds the fuzz target with
# coverage instrumentation (cargo fuzz coverage, nightly + its llvm-tools component), runs
# every input of the corpus once (fuzz/seeds/hypercalls plus fuzz/corpus/hypercalls, or the
# directories given), and prints per-file line coverage of src/ and, for the hypercall
# handlers, the lines never executed.
#   scripts/fuzz-coverage.sh [corpus-dir...]
# Report: target/logs/fuzz-coverage.txt (summary) and target/logs/fuzz-uncovered.txt.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dirs=()
for d in "$@"; do dirs+=("$(cd "$d" && pwd)"); done
[ ${#dirs[@]} -eq 0 ] && dirs=("$top/fuzz/seeds/hypercalls" "$top/fuzz/corpus/hypercalls")
cd "$top/fuzz"
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "[fuzz-coverage] no nightly Rust toolchain: skipped"
    exit 0
fi
rustup component add llvm-tools --toolchain nightly >/dev/null 2>&1 || true
bin=$(ls -d "$(rustc +nightly --print sysroot)"/lib/rustlib/*/bin | head -n1)
[ -x "$bin/llvm-cov" ] || { echo "[fuzz-coverage] llvm-cov missing (rustup component add llvm-tools --toolchain nightly)" >&2; exit 2; }
merged=$(mktemp -d)
trap 'rm -rf "$merged"' EXIT
for d in "${dirs[@]}"; do
    [ -d "$d" ] && cp -r "$d"/. "$merged"/ 2>/dev/null || true
done
echo "[fuzz-coverage] $(ls "$merged" | wc -l) inputs from ${dirs[*]}"
rm -rf coverage/hypercalls
cargo +nightly fuzz coverage hypercalls "$merged" >/dev/null 2>&1
prof=coverage/hypercalls/coverage.profdata
obj=$(ls target/*/coverage/*/release/hypercalls | head -n1)
mkdir -p "$top/target/logs"
"$bin/llvm-cov" report "$obj" -instr-profile="$prof" --ignore-filename-regex='(\.cargo|rustc|/fuzz/|/tests/|abi/)' \
    >"$top/target/logs/fuzz-coverage.txt"
# Columns: file, regions (3), functions (3), lines, missed lines, line cover, branches (3).
awk 'NF >= 13 && $1 != "Filename" {printf "%-28s %6s lines, %5s missed, %8s covered\n", $1, $8, $9, $10}' \
    "$top/target/logs/fuzz-coverage.txt" | grep -E "hypercall|evtchn|grant|vgic|p2m|mm/|audit|console|input|TOTAL"
"$bin/llvm-cov" show "$obj" -instr-profile="$prof" --show-line-counts-or-regions \
    --ignore-filename-regex='(\.cargo|rustc|/fuzz/|/tests/|abi/)' "$top"/src/hypercall/*.rs \
    >"$top/target/logs/fuzz-uncovered-full.txt"
# The handler lines that never ran: "  NNN|      0|" in llvm-cov's listing.
awk -v top="$top/" '/^\/.*\.rs:$/ {f=$0; sub(top, "", f)} /^ *[0-9]+\| *0\|/ {print f, $0}' \
    "$top/target/logs/fuzz-uncovered-full.txt" >"$top/target/logs/fuzz-uncovered.txt"
echo "[fuzz-coverage] uncovered hypercall-handler lines: $(wc -l <"$top/target/logs/fuzz-uncovered.txt") (target/logs/fuzz-uncovered.txt)"
