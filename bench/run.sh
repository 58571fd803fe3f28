#!/usr/bin/env bash
# Side-by-side benchmark of sluice and Apache Kafka 4.1.1 on this machine, with the same clients
# (Kafka's ProducerPerformance / ConsumerPerformance / EndToEndLatency, bench/src/FetchPerformance
# and bench/loadgen on librdkafka). Writes bench/results/<date>-<machine>[-quick]/ (report.md,
# headline.md, PNG charts, results.json, perf-sluice.txt). Not part of `cargo test`.
#
# Usage: bench/run.sh [--quick] [--rounds N]
#   --quick     1 round, small sizes (a few minutes once built)
#   --rounds N  override the number of rounds (default: 3, --quick: 1)
# Environment: CARGO_TARGET_DIR (default <repo>/target), BENCH_SLUICE_BIN (use this sluice
# binary instead of building one), BENCH_OUT (output directory).
set -euo pipefail

bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench/.." && pwd)

harness_args=()
quick=false
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=true; harness_args+=(--quick) ;;
    --rounds) harness_args+=(--rounds "$2"); shift ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

step() { echo "==> $*" >&2; }

# --- sluice -----------------------------------------------------------------------------------
if [ -n "${BENCH_SLUICE_BIN:-}" ]; then
  sluice=$BENCH_SLUICE_BIN
else
  step "cargo build --release -p sluice"
  (cd "$root" && cargo build --release -p sluice)
  sluice="$CARGO_TARGET_DIR/release/sluice"
fi

# --- Java: Kafka broker and tools from Maven Central ------------------------------------------
deps="$bench/target/deps"
# Copied jars keep their release dates, so a stamp file records when they were fetched.
if [ ! -f "$deps/.fetched" ] || [ "$bench/pom.xml" -nt "$deps/.fetched" ]; then
  step "fetching Kafka 4.1.1 (broker and tools) into $deps"
  rm -rf "$deps"
  (cd "$bench" && mvn -q -B dependency:copy-dependencies)
  touch "$deps/.fetched"
fi
classes="$bench/target/classes"
if [ ! -f "$classes/FetchPerformance.class" ] ||
  [ "$bench/src/FetchPerformance.java" -nt "$classes/FetchPerformance.class" ]; then
  step "compiling FetchPerformance"
  mkdir -p "$classes"
  javac -cp "$deps/*" -d "$classes" "$bench/src/FetchPerformance.java"
fi
classpath="$classes:$deps/*"

# --- rdkafka load generator (its own cargo project; librdkafka builds with cmake) -------------
step "cargo build --release (bench/loadgen)"
loadgen_target="$CARGO_TARGET_DIR/bench-loadgen"
(cd "$bench/loadgen" && CARGO_TARGET_DIR="$loadgen_target" cargo build --release --locked)
loadgen="$loadgen_target/release/sluice-loadgen"

# --- Python with matplotlib for the charts ----------------------------------------------------
venv="$HOME/.cache/sluice-bench/venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  step "creating $venv with matplotlib"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q matplotlib
fi

# --- versions and output directory ------------------------------------------------------------
revision=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(cd "$root" && git status --porcelain -- src wire storage Cargo.toml 2>/dev/null)" ]; then
  revision="$revision+uncommitted"
fi
if [ -n "${BENCH_SLUICE_BIN:-}" ]; then
  revision="prebuilt binary (tree at $revision)"
fi
date=$(date -u +%Y-%m-%d)
out=${BENCH_OUT:-$bench/results/$date-$(hostname -s)$($quick && echo -quick || true)}
mkdir -p "$out"
versions="$out/.versions.json"
java_version=$(java -version 2>&1 | head -1 | sed 's/"/\\"/g')
cat >"$versions" <<JSON
{"date": "$date", "sluice": "$revision", "rustc": "$(rustc --version | cut -d' ' -f2)",
 "kafka": "4.1.1 (kafka_2.13, kafka-tools)", "java": "$java_version",
 "librdkafka": "2.10.0 (rdkafka-sys 4.9.0)", "python": "$("$venv/bin/python" -V | cut -d' ' -f2)"}
JSON

step "running the workloads (output: $out)"
"$venv/bin/python" "$bench/harness" --sluice "$sluice" --loadgen "$loadgen" \
  --classpath "$classpath" --out "$out" --versions "$versions" \
  --command-line "bench/run.sh $(printf '%s ' "${harness_args[@]}")" "${harness_args[@]}"
rm -f "$versions"
echo "report: $out/report.md" >&2
