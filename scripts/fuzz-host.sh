#!/usr/bin/env bash
# Host-side fuzzing of the portable hypercall layer (libFuzzer through cargo fuzz, with the
# nightly toolchain): fuzz/fuzz_targets/hypercalls.rs, the audit checked after every call.
#   scripts/fuzz-host.sh [seconds]     (default 60)
#
# Each input runs on a freshly booted simulated machine (HostMachine::reset over one arena),
# with debug assertions on (lock ranks checked). The fuzzer starts from the seed corpus kept
# in the repository (fuzz/seeds/hypercalls) plus what earlier runs found (fuzz/corpus, not
# kept). By default it is built without a sanitizer: the target is Rust, whose bounds checks
# and debug assertions catch what AddressSanitizer would outside unsafe code, and the few
# unsafe accesses (the simulated RAM) are bounds-checked by PhysMap; AddressSanitizer costs
# about 5x the throughput (600 against 3 000 inputs per second on this machine).
# SANITIZER=address runs it with AddressSanitizer instead.
# TRACE_COMPARES=0 builds without libFuzzer's comparison tracing: about 4x the throughput
# once the corpus has grown (the audit after every call walks every P2M, and each of its
# comparisons is otherwise reported to libFuzzer), at the cost of its guidance towards the
# values the code compares against; the long runs reported in the README used it.
#
# Without a nightly toolchain it says so and exits 0. A crash leaves its input in
# fuzz/artifacts/hypercalls/ and exits non-zero; replay it with
#   cd fuzz && cargo +nightly fuzz run -s none hypercalls artifacts/hypercalls/<file>
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
san=${SANITIZER:-none}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "[fuzz-host] no nightly Rust toolchain on this machine: host fuzzing skipped"
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "[fuzz-host] installing cargo-fuzz (crates.io)"
    cargo install cargo-fuzz --locked --quiet
fi
cd "$top/fuzz"
mkdir -p corpus/hypercalls
echo "[fuzz-host] cargo +nightly fuzz run -s $san ${TRACE_COMPARES:+(TRACE_COMPARES=$TRACE_COMPARES) }hypercalls for ${secs}s (seeds: fuzz/seeds/hypercalls)"
log=$top/target/logs/fuzz-host.log
mkdir -p "$(dirname "$log")"
set +e
tc=()
[ "${TRACE_COMPARES:-1}" = 0 ] && tc=(--no-trace-compares)
cargo +nightly fuzz run -s "$san" "${tc[@]}" hypercalls corpus/hypercalls seeds/hypercalls -- \
    -max_total_time="$secs" -print_final_stats=1 >"$log" 2>&1
rc=$?
set -e
grep -aE '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|==[0-9]+==|thread .* panicked|SUMMARY|Test unit written)' "$log" || true
if [ "$rc" != 0 ]; then
    echo "[fuzz-host] FAILED (exit $rc); the end of $log:"
    tail -n 40 "$log"
fi
exit "$rc"
