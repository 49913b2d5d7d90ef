#!/usr/bin/env bash
# README command 2: every test, each bounded in time.
#   0. gates: rustfmt, clippy with -D warnings (host and aarch64-unknown-none), no module cycle
#   1. host tests of the portable core (unit, integration, model-based property tests)
#   2. model checking of the lock protocol (loom), and a short burst of host-side fuzzing of
#      the hypercall layer (libFuzzer; skipped, and said so, without a nightly toolchain)
#   3. boot tests of the EL2 image under QEMU (scripts/boot-smoke.sh), and the debug build of
#      the image (lock ranks checked) running the cross-domain and SMP fuzz guests
#   4. the smoke guest as dom0 on granite, and the same guest under the same QEMU command on
#      real Xen 4.17 (Debian's package): both must pass every scenario
#   5. cross-domain grants end to end (a 2-vCPU domU granting to dom0, revocation, a crash
#      while dom0 maps its pages)
#   6. the SMP fuzz guest on granite (4 vCPUs racing on every guest-facing surface, the audit
#      hypercall on): a fixed and a fresh seed with GICv3, a fixed one with GICv2, 300 000
#      hypercalls each; 180 000 more against a granter domU that rewrites and revokes its
#      grants and crashes while dom0 maps them (the total printed); one seed on Xen 4.17 as
#      the reference
#   7. the Raspberry Pi 4 in emulation (QEMU raspi4b): the smoke guest as identity-mapped dom0
#      from kernel8.img and from the SD card image, and on Xen 4.17 on the same board
#   8. the GIC and timer guest (2 vCPUs) on granite with GICv3 and GICv2, and on Xen 4.17
#   9. Debian's Linux 6.1 as dom0 on granite (QEMU virt GICv3 and GICv2, 2 vCPUs; raspi4b, 4
#      vCPUs) and on Xen 4.17 as the reference: Xen's dmesg lines, the Xen driver modules and
#      /dev/xen nodes, every CPU's timer, xen-selftest (grants and event channels from dom0's
#      user space), no BUG/WARNING/Oops; console input typed at dom0's shell (both hypervisors)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
step() { printf '\n==== %s\n' "$*"; }

step "setup (QEMU 10, Rust target, Xen 4.17 and Pi 4 payloads)"
bash scripts/install-deps.sh
bash scripts/fetch-payloads.sh xen linux rpi-firmware

step "gates: cargo fmt --check, clippy -D warnings (host, aarch64-unknown-none), module cycles"
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --release --target aarch64-unknown-none -p granite -p granite-guests --features granite-guests/guest \
    -- -D warnings
python3 scripts/lib/modcycles.py src

step "host tests (cargo test --workspace)"
cargo test --workspace

step "model checking of the lock protocol (loom)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --test loom -- --nocapture --test-threads 1

step "host fuzzing of the hypercall layer (30 s)"
bash scripts/fuzz-host.sh 30

step "build the EL2 image and the test guests"
bash scripts/build.sh

step "boot tests under QEMU"
SKIP_BUILD=1 bash scripts/boot-smoke.sh

step "lock order on the image: the debug build (ranks checked) with cross-domain grants and 4 racing vCPUs"
HV=target/images/granite-debug.bin NO_BUILD=1 TIMEOUT=180 bash scripts/xdom-test.sh
HV=target/images/granite-debug.bin HV_APPEND="granite_audit=1 dom0_max_vcpus=4" NO_BUILD=1 ITERS=1500 TIMEOUT=300 \
    bash scripts/fuzz.sh 0x10c4

step "conformance: the smoke guest as dom0 on granite"
HV=target/images/granite.bin NO_BUILD=1 TIMEOUT=60 bash scripts/xen-conformance.sh

step "conformance: the same guest and QEMU command on Xen 4.17"
NO_BUILD=1 TIMEOUT=120 bash scripts/xen-conformance.sh

step "cross-domain grants: a domU granting to dom0"
NO_BUILD=1 bash scripts/xdom-test.sh

step "fuzz guests on granite: -smp 4, granite_audit=1, 300 000 hypercalls per run (GICv3 twice, GICv2)"
HV=target/images/granite.bin HV_APPEND="granite_audit=1 dom0_max_vcpus=4" NO_BUILD=1 ITERS=75000 AUDIT_EVERY=10000 \
    MEM=1G TIMEOUT=600 FUZZ_TOTALS=target/logs/fuzz-totals-$$.txt bash scripts/fuzz.sh 0x1 fresh
HV=target/images/granite.bin HV_APPEND="granite_audit=1 dom0_max_vcpus=4" NO_BUILD=1 ITERS=75000 AUDIT_EVERY=10000 \
    MEM=1G GIC=2 TIMEOUT=600 FUZZ_TOTALS=target/logs/fuzz-totals-$$.txt bash scripts/fuzz.sh 0xdecafbad

step "fuzz guest on granite against a granter domU that rewrites, revokes, gives back pages and crashes"
HV=target/images/granite.bin HV_APPEND="granite_audit=1 dom0_max_vcpus=3" GRANTER=1 GRANTER_CRASH_MS=20000 \
    NO_BUILD=1 ITERS=60000 AUDIT_EVERY=10000 MEM=1G TIMEOUT=600 FUZZ_TOTALS=target/logs/fuzz-totals-$$.txt \
    bash scripts/fuzz.sh 0x5eed
bash scripts/fuzz.sh --total target/logs/fuzz-totals-$$.txt

step "fuzz guest on Xen 4.17 (reference, one seed)"
NO_BUILD=1 ITERS=2000 TIMEOUT=300 bash scripts/fuzz.sh 0x2a

step "Raspberry Pi 4 (QEMU raspi4b): identity-mapped dom0, the SD card, and Xen 4.17 on the same board"
SKIP_BUILD=1 bash scripts/rpi4-test.sh

step "the GIC and timer guest: granite with GICv3 and GICv2, Xen 4.17 (GICv3) as the reference"
NO_BUILD=1 TIMEOUT=180 bash scripts/gic-test.sh
HV=xen GICS=3 NO_BUILD=1 TIMEOUT=240 bash scripts/gic-test.sh

step "XSA regression guests: granite (GICv3, GICv2, cross-domain; known granite bugs XFAIL), Xen 4.17 (GICv3) as the reference"
NO_BUILD=1 TIMEOUT=180 bash scripts/xsa-test.sh
HV=xen RUNS=v3 NO_BUILD=1 TIMEOUT=240 bash scripts/xsa-test.sh

step "Linux dom0 on granite: QEMU virt GICv3 and GICv2, 2 vCPUs"
HV=target/images/granite.bin GIC=3 SMP=2 TIMEOUT=240 bash scripts/linux-dom0.sh
HV=target/images/granite.bin GIC=2 SMP=2 TIMEOUT=240 bash scripts/linux-dom0.sh

step "Linux dom0 on Xen 4.17 (reference): QEMU virt GICv3, 2 vCPUs"
GIC=3 SMP=2 TIMEOUT=300 bash scripts/linux-dom0.sh

step "Linux dom0 on granite on the Raspberry Pi 4 (QEMU raspi4b, GIC-400, 4 vCPUs)"
BOOT=granite TIMEOUT=300 bash scripts/rpi4-linux-dtb.sh

step "console input: typed at dom0's shell, Ctrl-A x3 to the debug keys and back (granite, then Xen 4.17)"
HV=target/images/granite.bin TIMEOUT=240 bash scripts/console-test.sh
TIMEOUT=300 bash scripts/console-test.sh

step "all tests passed"
