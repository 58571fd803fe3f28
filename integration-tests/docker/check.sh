#!/usr/bin/env bash
# What can be tested of the Dockerfile without a Docker engine:
#  1. a lint of our rules: every base image pinned to an exact version, a non-root USER in the
#     final stage, HEALTHCHECK, EXPOSE 9092, a VOLUME for the data dir;
#  2. the Dockerfile's own `RUN cargo build ...` line, run here in the workspace;
#  3. its ENTRYPOINT + CMD, run in a temp dir with three substitutions that keep the test on
#     this machine's rules: the data dir -> a temp dir, the port -> a free one, the listen
#     host 0.0.0.0 -> 127.0.0.1 (loopback only); then its HEALTHCHECK command, and a kcat probe
#     that the broker advertises 127.0.0.1:<port>; then SIGTERM and a clean exit.
# Needs python3, bash, kcat. Exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dockerfile="$root/Dockerfile"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

step() { echo "==> docker check: $*"; }
fail() { echo "docker check FAILED: $*" >&2; exit 1; }

step "lint"
python3 "$root/integration-tests/docker/dockerfile.py" lint "$dockerfile"

step "build (the Dockerfile's RUN cargo build line)"
build=$(python3 "$root/integration-tests/docker/dockerfile.py" build "$dockerfile")
(cd "$root" && bash -c "$build")
bin="$CARGO_TARGET_DIR/release/sluice"
[ -x "$bin" ] || fail "$bin was not built"

scratch=$(mktemp -d)
broker_pid=
cleanup() {
  if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -9 "$broker_pid" 2>/dev/null || true
  fi
  rm -rf "$scratch"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$scratch/data"
mapfile -t command < <(python3 "$root/integration-tests/docker/dockerfile.py" entrypoint "$dockerfile" \
  "$scratch/data" "$port")
command[0]="$bin"
step "entrypoint: ${command[*]}"
(cd "$scratch" && exec "${command[@]}" >"$scratch/broker.log" 2>&1) &
broker_pid=$!

health=$(python3 "$root/integration-tests/docker/dockerfile.py" healthcheck "$dockerfile" "$port")
deadline=$((SECONDS + 30))
until bash -c "$health" 2>/dev/null; do
  kill -0 "$broker_pid" 2>/dev/null || { cat "$scratch/broker.log" >&2; fail "broker exited"; }
  [ "$SECONDS" -lt "$deadline" ] || { cat "$scratch/broker.log" >&2; fail "HEALTHCHECK never passed"; }
  sleep 0.2
done
step "HEALTHCHECK passes"

metadata=$(kcat -b "127.0.0.1:$port" -L -J -m 10)
python3 - "$metadata" "$port" <<'PY'
import json, sys
metadata, port = json.loads(sys.argv[1]), sys.argv[2]
want = [{"id": 1, "name": f"127.0.0.1:{port}"}]
if metadata["brokers"] != want:
    sys.exit(f"kcat -L: brokers {metadata['brokers']}, expected {want}")
PY
printf 'docker-check\n' | kcat -b "127.0.0.1:$port" -P -t docker-check
consumed=$(kcat -b "127.0.0.1:$port" -C -t docker-check -o beginning -e -q)
[ "$consumed" = "docker-check" ] || fail "consumed '$consumed'"
step "kcat: metadata advertises 127.0.0.1:$port, a record round-trips"

kill -TERM "$broker_pid"
status=0
wait "$broker_pid" || status=$?
broker_pid=
[ "$status" -eq 0 ] || { cat "$scratch/broker.log" >&2; fail "broker exited $status on SIGTERM"; }
[ -n "$(ls -A "$scratch/data")" ] || fail "nothing was written to the data dir"
step "ok"
