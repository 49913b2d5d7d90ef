#!/usr/bin/env bash
# Runs every test: host unit/integration/property tests of the portable core, then the loom
# model checking of the lock protocol.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh
echo "== host tests (cargo test)"
cargo test --workspace --exclude granite-guests
echo "== model checking of the lock protocol (loom)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --test loom -- --nocapture --test-threads 1
