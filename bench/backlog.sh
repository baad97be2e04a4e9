#!/usr/bin/env bash
# Fresh-message rates with no backlog, then with a backlog of stored, unconsumed messages.
#
#   bench/backlog.sh [backlog] [fresh] [backlog body bytes] [data dir]
#
# One release broker (async flush, 1 GiB segments) on a data directory under /work (kept
# afterwards only if given). Each measurement is `junction-bench native` on a fresh queue:
# end to end (1 producer -> 1 consumer, 100 B, batches of 100, 16 in flight, prefetch 2000)
# and publish only (no consumer). Then `backlog` messages are published to the queue `b`,
# never consumed, and the same measurements run again, first on the same broker (the backlog's
# pages partly in the page cache), then after a restart (recovery, cold cache).
# Run from the repository root; BIN=dir uses binaries built before.
set -euo pipefail
backlog=${1:-100000000}
fresh=${2:-1000000}
bsize=${3:-12}
keep=${4:-}
data=${keep:-$(mktemp -d -p /work backlog.XXXXXX)}
# BIN: where junction and junction-bench are (default: build them into target/release).
bin=${BIN:-}
if [ -z "$bin" ]; then cargo build --release -q -p junction -p junction-bench; bin=./target/release; fi
port=5698
log="$data.log"
cleanup() { kill "$broker" 2>/dev/null || true; [ -n "$keep" ] || rm -rf "$data" "$log"; }
trap cleanup EXIT

start() {
  JUNCTION_STORE_FLUSH=async JUNCTION_STORE_SEGMENT_SIZE=1073741824 RUST_LOG=warn \
  JUNCTION_AMQP_ENABLED=false JUNCTION_MQTT_ENABLED=false JUNCTION_MQTT_WS_ENABLED=false \
  JUNCTION_STOMP_ENABLED=false JUNCTION_STOMP_WS_ENABLED=false JUNCTION_HTTP_ENABLED=false \
    "$bin"/junction serve --data-dir "$data" --native-listen 127.0.0.1:$port >"$log" 2>&1 &
  broker=$!
  for _ in $(seq 6000); do grep -q "junction: ready" "$log" 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start" >&2; cat "$log" >&2; exit 1
}
stop() { kill -TERM "$broker"; wait "$broker" || true; }
bench() { "$bin"/junction-bench native --addr 127.0.0.1:$port --deadline 7200 "$@" 2>/dev/null | tail -1; }
measure() { # $1 = label
  for run in 1 2; do
    echo "$1 run $run: $(bench --queue fresh --size 100 --count "$fresh" --batch 100 --window 16)"
    echo "$1 run $run: $(bench --queue fresh-pub --size 100 --count "$fresh" --batch 100 --window 16 --consumers 0)"
  done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
start
measure "no backlog"
t0=$(date +%s)
echo "filling: $(bench --queue b --keep --size "$bsize" --count "$backlog" --batch 100 --window 16 --consumers 0)"
echo "filled $backlog messages in $(( $(date +%s) - t0 )) s; data: $(du -sh "$data" | cut -f1)"
measure "backlog $backlog"
stop
t0=$(date +%s)
start
echo "restart with the backlog took $(( $(date +%s) - t0 )) s"
measure "backlog $backlog, after restart"
stop
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
