#!/usr/bin/env bash
# Starts a 3-node sluice cluster on 127.0.0.1: clients on 19092-19094, Raft on 19192-19194,
# /metrics on 19644-19646, data under ./cluster-data/nodeN. Ctrl-C stops all three (controlled shutdown).
set -euo pipefail
bin=${SLUICE_BIN:-sluice}
voters="1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
pids=()
for id in 1 2 3; do
  "$bin" --node-id "$id" \
    --listen-address "127.0.0.1:$((19091 + id))" \
    --raft-listen-address "127.0.0.1:$((19191 + id))" \
    --metrics-listen-address "127.0.0.1:$((19643 + id))" \
    --voters "$voters" \
    --data-dir "./cluster-data/node$id" &
  pids+=("$!")
done
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM
wait
