#!/usr/bin/env bash
# Junction vs RabbitMQ over AMQP 0-9-1, the same lapin generator (junction-bench amqp) against
# each broker, one broker at a time on this machine:
#   100 B and 1 KiB; 1 producer -> 1 consumer and 4 -> 4;
#   persistent (delivery_mode 2, durable queue) + publisher confirms + manual acks, and
#   transient (delivery_mode 1) + manual acks (no confirms);
#   latency at a fixed 1,000 msg/s (100 B, persistent + confirms).
# Junction: release build, a fresh data dir per start, JUNCTION_STORE_FLUSH=sync for the
# persistent rows (a confirm means fsynced, like RabbitMQ's) and async for the transient rows.
# RabbitMQ: the Debian package (apt-get install rabbitmq-server), default settings, bound to
# 127.0.0.1 by /etc/rabbitmq/rabbitmq.conf (listeners.tcp.default = 127.0.0.1:5672) and
# /etc/rabbitmq/rabbitmq-env.conf (NODE_IP_ADDRESS=127.0.0.1, NODENAME=rabbit@localhost), its
# mnesia directory wiped before it starts. Run as root from the repository root.
#
# Usage: bench/amqp-compare.sh [seconds per throughput run] [junction|rabbitmq|both]
# Prints one line per run; the JSON results (with the generator's and the broker's CPU time)
# go to $OUT (default target/amqp-compare.jsonl).
set -euo pipefail
secs=${1:-10}
which=${2:-both}
out=${OUT:-target/amqp-compare.jsonl}
jport=5698
rport=5672
cargo build --release -q -p junction -p junction-bench
: >"$out"
data=$(mktemp -d)
broker=""
trap 'stop; rm -rf "$data"' EXIT

# Generator options shared by every run: 64 publishes handed to lapin at once, up to 1024
# unconfirmed per producer, prefetch 2000, one multiple-ack per 100 deliveries.
common=(--batch 64 --window 1024 --prefetch 2000 --ack-every 100 --json)

start_junction() { # $1 = flush mode
  rm -rf "${data:?}"/*
  JUNCTION_STORE_FLUSH=$1 JUNCTION_STORE_SEGMENT_SIZE=1073741824 RUST_LOG=warn \
    ./target/release/junction serve --data-dir "$data" \
      --native-listen 127.0.0.1:5697 --amqp-listen 127.0.0.1:$jport >"$data.log" 2>&1 &
  broker=junction
  bpid=$!
  for _ in $(seq 200); do grep -q "amqp listening" "$data.log" 2>/dev/null && return; sleep 0.1; done
  echo "junction did not start" >&2; cat "$data.log" >&2; exit 1
}

start_rabbitmq() {
  rm -rf /var/lib/rabbitmq/mnesia/*
  rabbitmq-server >"$data.rabbit.log" 2>&1 &
  broker=rabbitmq
  rpid=$!
  # await_startup fails at once while the node is not yet registered with epmd: retry.
  for _ in $(seq 60); do
    rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 && break; sleep 1
  done
  rabbitmqctl -q await_startup --timeout 5 >/dev/null
  bpid=$(pgrep -u rabbitmq beam.smp | head -1)
}

stop() {
  case "$broker" in
    junction) kill -TERM "$bpid" 2>/dev/null || true; wait "$bpid" 2>/dev/null || true ;;
    rabbitmq) rabbitmqctl -q stop >/dev/null 2>&1 || true; wait "$rpid" 2>/dev/null || true
              epmd -kill >/dev/null 2>&1 || true ;;
  esac
  broker=""
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # $1 = broker name, $2 = port, $3 = row label, rest = generator options
  local name=$1 port=$2 label=$3; shift 3
  local b0 b1 t
  b0=$(cpu_ticks "$bpid")
  /usr/bin/time -f "%U %S %e" -o "$data.time" \
    ./target/release/junction-bench amqp --addr 127.0.0.1:"$port" "${common[@]}" "$@" \
    2>"$data.err" >"$data.json" || { cat "$data.err" >&2; }
  b1=$(cpu_ticks "$bpid")
  t=$(cat "$data.time")
  python3 - "$name" "$label" "$t" "$b0" "$b1" "$data.json" "$out" <<'PY'
import json, sys
name, label, t, b0, b1, path, out = sys.argv[1:]
u, s, e = map(float, t.split()[-3:])
try:
    r = json.loads(open(path).read().strip().splitlines()[-1])
except Exception:
    r = {"error": "no result"}
r.update(broker=name, row=label, wall_s=e, generator_cpu_s=u + s,
         broker_cpu_s=(int(b1) - int(b0)) / 100.0)
open(out, "a").write(json.dumps(r) + "\n")
l = r.get("latency_us", {})
print(f"{name:9} {label:24} e2e {r.get('end_to_end_rate', 0):8.0f}/s  pub {r.get('publish_rate', 0):8.0f}/s"
      f"  lost {r.get('lost')} dup {r.get('duplicates')}"
      f"  p50/p99/p99.9 {l.get('p50')}/{l.get('p99')}/{l.get('p999')} us"
      f"  cpu gen {r['generator_cpu_s']:.1f}s broker {r['broker_cpu_s']:.1f}s wall {e:.1f}s", flush=True)
PY
}

persistent_rows() { # $1 = broker, $2 = port
  for size in 100 1024; do
    for n in 1 4; do
      run "$1" "$2" "persistent ${size}B ${n}->${n}" --queue bench-persistent \
        --size $size --producers $n --consumers $n --duration "$secs"
    done
  done
  run "$1" "$2" "latency 1000/s 100B" --queue bench-persistent \
    --size 100 --rate 1000 --duration 20
}

transient_rows() { # $1 = broker, $2 = port
  for size in 100 1024; do
    for n in 1 4; do
      run "$1" "$2" "transient ${size}B ${n}->${n}" --queue bench-transient --transient --no-confirm \
        --size $size --producers $n --consumers $n --duration "$secs"
    done
  done
}

if [ "$which" != rabbitmq ]; then
  start_junction sync;  persistent_rows junction $jport; stop
  start_junction async; transient_rows junction $jport;  stop
fi
if [ "$which" != junction ]; then
  start_rabbitmq; persistent_rows rabbitmq $rport; transient_rows rabbitmq $rport; stop
fi
