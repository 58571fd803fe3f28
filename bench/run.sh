#!/usr/bin/env bash
# First sluice benchmark: produce and fetch throughput of the release broker with real Java
# clients (Kafka 4.1.1's ProducerPerformance, and FetchPerformance from bench/src), plus the
# machine's disk write ceiling for comparison. Not part of `cargo test`.
#
# Usage: bench/run.sh [--quick]
#   --quick   fewer records and a smaller dd (about a minute instead of several)
# Environment: CARGO_TARGET_DIR (default <repo>/target), BENCH_RECORDS, BENCH_RECORD_BYTES.
set -euo pipefail

bench=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$bench/.." && pwd)

quick=false
for arg in "$@"; do
  case "$arg" in
    --quick) quick=true ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

if $quick; then
  records=${BENCH_RECORDS:-300000}
  dd_mib=256
else
  records=${BENCH_RECORDS:-2000000}
  dd_mib=1024
fi
record_bytes=${BENCH_RECORD_BYTES:-1024}
topic=bench
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

step() { echo "==> $*" >&2; }

# --- build ------------------------------------------------------------------------------------
step "cargo build --release -p sluice"
(cd "$root" && cargo build --release -p sluice)
sluice="$CARGO_TARGET_DIR/release/sluice"

deps="$bench/target/deps"
# Copied jars keep their release dates, so a stamp file records when they were fetched.
if [ ! -f "$deps/.fetched" ] || [ "$bench/pom.xml" -nt "$deps/.fetched" ]; then
  step "fetching Kafka's perf tools into $deps"
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

# --- broker -----------------------------------------------------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then
    kill -9 "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

step "starting the release broker (data dir $scratch/data)"
mkdir -p "$scratch/data"
"$sluice" --listen-address 127.0.0.1:0 --data-dir "$scratch/data" \
  --bound-address-file "$scratch/address" --log-level warn 2>"$scratch/broker.log" &
broker_pid=$!
for _ in $(seq 1 300); do
  [ -s "$scratch/address" ] && break
  if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "broker exited early:" >&2
    cat "$scratch/broker.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$scratch/address" ] || { echo "broker did not start within 30 s" >&2; exit 1; }
bootstrap=$(tr -d '\n' <"$scratch/address")

# --- machine ceiling --------------------------------------------------------------------------
step "disk write ceiling: dd ${dd_mib} MiB with fdatasync"
dd_line=$(dd if=/dev/zero of="$scratch/dd" bs=1M count="$dd_mib" conv=fdatasync 2>&1 | tail -1)
rm -f "$scratch/dd"

# --- produce ----------------------------------------------------------------------------------
java_run() { java -Xms512m -Xmx1g -cp "$classpath" "$@"; }

step "creating topic $topic (1 partition)"
java_run org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create \
  --topic "$topic" --partitions 1 --replication-factor 1 >&2

step "produce: $records records of $record_bytes bytes, acks=1"
java_run org.apache.kafka.tools.ProducerPerformance --topic "$topic" \
  --num-records "$records" --record-size "$record_bytes" --throughput -1 \
  --producer-props "bootstrap.servers=$bootstrap" acks=1 linger.ms=5 batch.size=262144 \
  >"$scratch/produce.out"
cat "$scratch/produce.out" >&2
produce_line=$(tail -1 "$scratch/produce.out")

# --- fetch ------------------------------------------------------------------------------------
step "fetch: $records records from the beginning"
java_run FetchPerformance "$bootstrap" "$topic" "$records" >"$scratch/fetch.out"
cat "$scratch/fetch.out" >&2
fetch_line=$(tail -1 "$scratch/fetch.out")

kill -9 "$broker_pid" 2>/dev/null || true
wait "$broker_pid" 2>/dev/null || true
broker_pid=""

cat <<EOF

sluice bench ($(date -u +%Y-%m-%d), $(nproc) cores, $records x $record_bytes B records, 1 partition)
  disk write (dd, fdatasync): $dd_line
  produce (ProducerPerformance, acks=1): $produce_line
  fetch (FetchPerformance, assign):     $fetch_line
EOF
