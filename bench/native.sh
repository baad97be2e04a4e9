#!/usr/bin/env bash
# Native publish -> consume figures: 100 B and 1 KiB, async and sync flush, and latency at a
# fixed 10,000 msg/s. Each case runs against a freshly started broker on its own data directory.
# Usage: bench/native.sh [count]        (run from the repository root)
set -euo pipefail
count=${1:-2000000}
cargo build --release -q -p junction -p junction-bench
port=5699
data=$(mktemp -d)
trap 'kill $broker 2>/dev/null || true; rm -rf "$data"' EXIT

start() { # $1 = flush mode
  rm -rf "$data"/*
  JUNCTION_STORE_FLUSH=$1 JUNCTION_STORE_SEGMENT_SIZE=1073741824 RUST_LOG=warn \
    ./target/release/junction serve --data-dir "$data" --native-listen 127.0.0.1:$port >"$data.log" 2>&1 &
  broker=$!
  for _ in $(seq 100); do grep -q "native listening" "$data.log" 2>/dev/null && return; sleep 0.1; done
  echo "broker did not start" >&2; cat "$data.log" >&2; exit 1
}
stop() { kill -TERM $broker; wait $broker || true; }
run() { ./target/release/junction-bench native --addr 127.0.0.1:$port "$@" 2>/dev/null; }

for flush in async sync; do
  for size in 100 1024; do
    start $flush
    n=$count; [ "$size" = 1024 ] && n=$((count / 2))
    [ "$flush" = sync ] && n=$((n / 4))
    echo "flush=$flush"; run --size $size --count $n --batch 100 --window 16
    stop
  done
done
for flush in async sync; do
  start $flush
  echo "flush=$flush rate=10000/s"; run --size 100 --rate 10000 --duration 20 --window 1024 --prefetch 1000
  stop
done
