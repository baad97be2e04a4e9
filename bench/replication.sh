#!/usr/bin/env bash
# Native publish -> consume throughput of one broker group's master: no replication, then a
# master with one slave replicating async, then sync. Brokers run on this machine with
# [cluster] on; each case starts on fresh data directories.
# Usage: bench/replication.sh [count]        (run from the repository root)
set -euo pipefail
count=${1:-1000000}
cargo build --release -q -p junction -p junction-bench
data=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; done; rm -rf "$data"' EXIT

conf() { # $1 = name, $2 = base port, $3 = broker id, $4 = replication, $5 = cluster enabled
  cat > "$data/$1.toml" <<CONF
data_dir = "$data/$1"
[native]
listen = "127.0.0.1:$(($2 + 1))"
[amqp]
enabled = false
[mqtt]
enabled = false
ws_enabled = false
[stomp]
enabled = false
ws_enabled = false
[http]
enabled = false
[cluster]
enabled = $5
broker_name = "bench"
broker_id = $3
replication = "$4"
ha_listen = "127.0.0.1:$(($2 + 8))"
master_ha_address = "127.0.0.1:25708"
CONF
}
start() { # $1 = name
  RUST_LOG=warn ./target/release/junction serve --config "$data/$1.toml" >"$data/$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q "junction: ready" "$data/$1.log" 2>/dev/null && return; sleep 0.1; done
  echo "$1 did not start" >&2; cat "$data/$1.log" >&2; exit 1
}
stop_all() { for p in "${pids[@]}"; do kill -TERM $p 2>/dev/null || true; wait $p 2>/dev/null || true; done; pids=(); rm -rf "$data"/m "$data"/s; }
run() { ./target/release/junction-bench native --addr 127.0.0.1:25701 --size 100 --count "$count" --batch 100 --window 16 2>/dev/null | tail -1; }

conf m 25700 0 async false; start m
echo "replication=none  $(run)"; stop_all
for mode in async sync; do
  conf m 25700 0 $mode true; conf s 25800 1 $mode true
  start m; start s
  sleep 1
  echo "replication=$mode $(run)"; stop_all
done
