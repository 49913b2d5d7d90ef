#!/usr/bin/env bash
# Runs every test: host unit/integration/property tests of the portable core.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/install-deps.sh
echo "== host tests (cargo test)"
cargo test --workspace --exclude granite-guests 2>&1 | tail -n 40
