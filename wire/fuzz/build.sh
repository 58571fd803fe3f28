#!/usr/bin/env bash
# Builds the request-decode fuzz target (CI runs this; wire/fuzz/run.sh fuzzes for a bounded time).
# With a nightly toolchain and cargo-fuzz it builds the instrumented libFuzzer binary; without
# nightly it still compiles the same target with stable cargo, so a change that breaks the fuzz
# target fails CI either way.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"
cd "$fuzz_dir"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal >/dev/null 2>&1 || true
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
  fi
  cargo +nightly fuzz build fuzz_request_decode --target-dir "$CARGO_TARGET_DIR/fuzz"
  echo "fuzz target built (nightly, instrumented)"
else
  cargo build --target-dir "$CARGO_TARGET_DIR/fuzz-stable"
  echo "fuzz target built (stable, uninstrumented: no nightly toolchain here)"
fi
