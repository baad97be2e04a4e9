#!/usr/bin/env bash
# Junction vs RabbitMQ's STOMP plugin, the same generator (junction-bench stomp) against each
# broker, one broker at a time on this machine:
#   100 B and 1 KiB; 1 producer -> 1 consumer; consumers with ack:auto and ack:client-individual
#   (one ACK per message); producers SEND to /queue/bench-... with a receipt on the last SEND of
#   every 64 and at most 16 batches unreceipted.
# Junction: release build, a fresh data dir per start, JUNCTION_STORE_FLUSH=async (STOMP SENDs
# without persistent:true are transient messages; RabbitMQ does not fsync those either).
# RabbitMQ: the Debian package with the STOMP plugin (enabled for the run, disabled after),
# default settings, loopback only: this script gives it a config file of its own
# (RABBITMQ_CONFIG_FILE) with the AMQP listener on 127.0.0.1:$RABBIT_AMQP_PORT (default 5672)
# and stomp.listeners.tcp.1 = 127.0.0.1:61613; /etc/rabbitmq/rabbitmq-env.conf keeps the node
# and epmd on loopback. Its mnesia directory is wiped before it starts.
# Run as root from the repository root.
#
# Usage: bench/stomp-compare.sh [seconds per run] [junction|rabbitmq|both]
# Prints one line per run; the JSON results (with the generator's and the broker's CPU time) go
# to $OUT (default target/stomp-compare.jsonl).
set -euo pipefail
secs=${1:-10}
which=${2:-both}
out=${OUT:-target/stomp-compare.jsonl}
jport=61623
tdir=${CARGO_TARGET_DIR:-target}
rport=61613
cargo build --release -q -p junction -p junction-bench
: >"$out"
data=$(mktemp -d)
broker=""
trap 'stop; rm -rf "$data"' EXIT

common=(--batch 64 --window 16 --prefetch 2000 --json)

start_junction() {
  rm -rf "${data:?}"/*
  JUNCTION_STORE_FLUSH=async JUNCTION_STORE_SEGMENT_SIZE=1073741824 RUST_LOG=warn \
  JUNCTION_STOMP_LISTEN=127.0.0.1:$jport JUNCTION_STOMP_WS_ENABLED=false \
    "$tdir"/release/junction serve --data-dir "$data" \
      --native-listen 127.0.0.1:0 --amqp-listen 127.0.0.1:0 >"$data.log" 2>&1 &
  broker=junction
  bpid=$!
  for _ in $(seq 200); do grep -q "stomp listening" "$data.log" 2>/dev/null && return; sleep 0.1; done
  echo "junction did not start" >&2; cat "$data.log" >&2; exit 1
}

start_rabbitmq() {
  rm -rf /var/lib/rabbitmq/mnesia/*
  rconf=/tmp/junction-stomp-bench-rabbitmq.conf
  printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\nstomp.listeners.tcp.1 = 127.0.0.1:%s\n' \
    "${RABBIT_AMQP_PORT:-5672}" "$rport" >"$rconf"
  chmod 644 "$rconf"
  rabbitmq-plugins --offline enable rabbitmq_stomp >/dev/null
  RABBITMQ_CONFIG_FILE=$rconf rabbitmq-server >"$data.rabbit.log" 2>&1 &
  broker=rabbitmq
  rpid=$!
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
              epmd -kill >/dev/null 2>&1 || true
              rabbitmq-plugins --offline disable rabbitmq_stomp >/dev/null 2>&1 || true ;;
  esac
  broker=""
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run() { # $1 = broker name, $2 = port, $3 = row label, rest = generator options
  local name=$1 port=$2 label=$3; shift 3
  local b0 b1 t
  b0=$(cpu_ticks "$bpid")
  /usr/bin/time -f "%U %S %e" -o "$data.time" \
    "$tdir"/release/junction-bench stomp --addr 127.0.0.1:"$port" "${common[@]}" "$@" \
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
print(f"{name:9} {label:28} e2e {r.get('end_to_end_rate', 0):8.0f}/s  pub {r.get('publish_rate', 0):8.0f}/s"
      f"  lost {r.get('lost')} dup {r.get('duplicates')}"
      f"  p50/p99 {l.get('p50')}/{l.get('p99')} us"
      f"  cpu gen {r['generator_cpu_s']:.1f}s broker {r['broker_cpu_s']:.1f}s wall {e:.1f}s", flush=True)
PY
}

rows() { # $1 = broker, $2 = port
  for size in 100 1024; do
    for ack in auto client-individual; do
      run "$1" "$2" "${size}B 1->1 ${ack}" --queue bench-stomp --size $size --ack $ack \
        --duration "$secs"
    done
  done
}

if [ "$which" != rabbitmq ]; then
  start_junction; rows junction $jport; stop
fi
if [ "$which" != junction ]; then
  start_rabbitmq; rows rabbitmq $rport; stop
fi
