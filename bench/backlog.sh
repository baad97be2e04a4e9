#!/usr/bin/env bash
# Fresh-message rates beside a backlog of stored, unconsumed messages, against the same rates
# on a broker without one.
#
#   bench/backlog.sh [backlog] [fresh] [backlog body bytes] [data dir]
#   RUNS=5 BIN=target/release bench/backlog.sh 100000000 1000000 100
#
# Two release brokers (async flush, 1 GiB segments), each on its own data directory under
# /work: `none` stays without a backlog, `backlog` gets `backlog` messages published to its
# queue `b` and never consumed. Each measurement is one `junction-bench native` run of `fresh`
# 100-byte messages on a fresh queue: end to end (1 producer -> 1 consumer, batches of 100,
# 16 in flight, prefetch 2000) and publish only (no consumer). The runs alternate between the
# two brokers (none, backlog, none, backlog, ...; RUNS pairs of each kind, default 5), so on a
# shared machine both see the same load, and each ratio compares runs made side by side.
# Phases, after the fill:
#   1. at once, while the kernel still writes the fill back (async flush leaves it dirty);
#   2. after `sync` (the backlog is on disk, its pages clean);
#   3. after a restart of the backlog broker (recovery, the backlog's pages cold).
# Every run prints its rate and the load average; the end prints, per phase and kind, the best
# and the median of each broker and the ratios backlog/none.
# The backlog broker's data directory is removed at the end unless given.
# Run from the repository root; BIN=dir uses binaries built before.
set -euo pipefail
backlog=${1:-100000000}
fresh=${2:-1000000}
bsize=${3:-100}
keep=${4:-}
runs=${RUNS:-5}
data=${keep:-$(mktemp -d -p /work backlog.XXXXXX)}
none=$(mktemp -d -p /work nobacklog.XXXXXX)
# BIN: where junction and junction-bench are (default: build them into target/release).
bin=${BIN:-}
if [ -z "$bin" ]; then cargo build --release -q -p junction -p junction-bench; bin=./target/release; fi
results=$(mktemp)
declare -A pid addr
cleanup() {
  for b in "${pid[@]}"; do kill "$b" 2>/dev/null || true; done
  [ -n "$keep" ] || rm -rf "$data" "$data.log"
  rm -rf "$none" "$none.log" "$results"
}
trap cleanup EXIT

dir() { if [ "$1" = none ]; then echo "$none"; else echo "$data"; fi; }
start() { # $1 = none | backlog
  local d log
  d=$(dir "$1"); log="$d.log"
  # Emptied here, not by the broker's redirection: the loop below must not read the last run's
  # "ready" before the new process has opened the file.
  : >"$log"
  JUNCTION_STORE_FLUSH=async JUNCTION_STORE_SEGMENT_SIZE=1073741824 RUST_LOG=warn \
  JUNCTION_AMQP_ENABLED=false JUNCTION_MQTT_ENABLED=false JUNCTION_MQTT_WS_ENABLED=false \
  JUNCTION_STOMP_ENABLED=false JUNCTION_STOMP_WS_ENABLED=false JUNCTION_HTTP_ENABLED=false \
    "$bin"/junction serve --data-dir "$d" --native-listen 127.0.0.1:0 >>"$log" 2>&1 &
  pid[$1]=$!
  for _ in $(seq 6000); do
    if grep -q "junction: ready" "$log" 2>/dev/null; then
      addr[$1]=$(grep -o "native listening on [0-9.:]*" "$log" | tail -1 | cut -d' ' -f4)
      return
    fi
    kill -0 "${pid[$1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "broker did not start" >&2; cat "$log" >&2; exit 1
}
stop() { kill -TERM "${pid[$1]}"; wait "${pid[$1]}" || true; unset "pid[$1]"; }
bench() { # $1 = broker, then junction-bench options
  local b=$1; shift
  "$bin"/junction-bench native --addr "${addr[$b]}" --deadline 7200 --json "$@" 2>/dev/null | tail -1
}
field() { python3 -c "import json,sys; print(round(json.load(sys.stdin)['$1']))"; }
load() { cut -d' ' -f1 /proc/loadavg; }
measure() { # $1 = phase
  local run b l r
  for run in $(seq "$runs"); do
    for b in none backlog; do
      l=$(load)
      r=$(bench $b --queue fresh --size 100 --count "$fresh" --batch 100 --window 16 | field end_to_end_rate)
      echo "$1|end to end|$b|$run|$r|$l" | tee -a "$results"
    done
    for b in none backlog; do
      l=$(load)
      r=$(bench $b --queue fresh-pub --size 100 --count "$fresh" --batch 100 --window 16 \
        --consumers 0 | field publish_rate)
      echo "$1|publish only|$b|$run|$r|$l" | tee -a "$results"
    done
  done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); free: $(df -h --output=avail /work | tail -1)"
start none
start backlog
t0=$(date +%s)
echo "filling: $(bench backlog --queue b --keep --size "$bsize" --count "$backlog" --batch 100 \
  --window 16 --consumers 0 | field publish_rate) msg/s"
echo "filled $backlog messages of $bsize B in $(( $(date +%s) - t0 )) s; data: $(du -sh "$data" | cut -f1)"
measure "just filled"
t0=$(date +%s)
sync
echo "sync (the fill's writeback) took $(( $(date +%s) - t0 )) s"
measure "written back"
stop backlog
t0=$(date +%s)
start backlog
echo "restart with the backlog took $(( $(date +%s) - t0 )) s"
measure "after restart"
stop backlog
stop none
echo "data at the end: $(du -sh "$data" | cut -f1); free: $(df -h --output=avail /work | tail -1)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$results" <<'EOF'
import statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1])]
print(f"{'phase':<14} {'kind':<13} {'none best':>10} {'median':>9} {'backlog best':>13} "
      f"{'median':>9}  {'ratio best':>10} {'median':>6} {'pairs':>6}  load")
for ph in dict.fromkeys(r[0] for r in rows):
    for kind in ("end to end", "publish only"):
        sel = [r for r in rows if r[0] == ph and r[1] == kind]
        v = {b: {r[3]: int(r[4]) for r in sel if r[2] == b} for b in ("none", "backlog")}
        n, k = sorted(v["none"].values()), sorted(v["backlog"].values())
        pairs = statistics.median(v["backlog"][i] / v["none"][i] for i in v["none"])
        ld = [float(r[5]) for r in sel]
        print(f"{ph:<14} {kind:<13} {n[-1]:>10,} {statistics.median(n):>9,.0f} {k[-1]:>13,} "
              f"{statistics.median(k):>9,.0f}  {k[-1]/n[-1]:>10.0%} "
              f"{statistics.median(k)/statistics.median(n):>6.0%} {pairs:>6.0%}  "
              f"{min(ld)}-{max(ld)}")
EOF
