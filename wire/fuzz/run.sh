#!/usr/bin/env bash
# Fuzzes sluice-wire's request decoding for a bounded time.
#   wire/fuzz/run.sh [seconds]        (default 60)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Seeds: a few valid requests written by `cargo run -p sluice-wire --example fuzz_seed_corpus`.
# Crashes land in wire/fuzz/artifacts/fuzz_request_decode/; the grown corpus in
# wire/fuzz/corpus/fuzz_request_decode/ (both untracked scratch).
set -euo pipefail

seconds="${1:-60}"
fuzz_dir="$(cd "$(dirname "$0")" && pwd)"
workspace_dir="$(cd "$fuzz_dir/../.." && pwd)"
corpus_dir="$fuzz_dir/corpus/fuzz_request_decode"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target}"

(cd "$workspace_dir" && cargo run --quiet -p sluice-wire --example fuzz_seed_corpus -- "$corpus_dir")

# cargo-fuzz keeps its own target dir under the fuzz crate unless told otherwise; use a separate
# one so its sanitizer flags never invalidate the shared cache.
cd "$fuzz_dir"
cargo +nightly fuzz run fuzz_request_decode \
    --target-dir "$CARGO_TARGET_DIR/fuzz" \
    "$corpus_dir" \
    -- -max_total_time="$seconds" -max_len=4096
