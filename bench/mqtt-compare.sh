#!/usr/bin/env bash
# Junction vs Mosquitto over MQTT, the same generator (junction-bench mqtt, rumqttc 0.25) against
# each broker, one broker at a time on this machine, each started fresh:
#   100 B; QoS 0, 1 and 2, 1 publisher -> 1 subscriber (3.1.1), and QoS 1 over 5.0;
#   1 publisher -> 100 subscribers on one topic (fan-out), QoS 0 and QoS 1;
#   latency at a fixed 1,000 msg/s, QoS 1 and QoS 0, 1 -> 1;
#   $IDLE idle connections spread over 127.0.1.x source addresses, pinging every 15 s, and the
#   broker's resident memory growth per connection (a broker started fresh for this row).
# Junction: release build, a fresh data dir, JUNCTION_STORE_FLUSH=async (Mosquitto keeps
# messages in memory and, here, persists nothing), MQTT on 127.0.0.1:1893, max_connections
# raised for the idle row. Mosquitto 2.0 (Debian package) by hand on 127.0.0.1:1883 with a
# config file of this script's own (bench/brokers.sh): anonymous, no persistence, every other
# setting at its default (max_queued_messages 1000, max_inflight_messages 20).
# The open-files limit is raised as far as the hard limit allows; $IDLE defaults to 100,000 or
# what that limit leaves room for (each broker connection is a file descriptor).
# Run as root from the repository root.
#
# Usage: bench/mqtt-compare.sh [seconds per run] [junction|mosquitto|both] [all|throughput|idle]
# BUILD=0 uses the release binaries already in target/ instead of building them first;
# ONLY=<row label> runs one throughput row alone.
# Prints one line per run; the JSON results go to $OUT (default target/mqtt-compare.jsonl).
set -euo pipefail
secs=${1:-10}
which=${2:-both}
rows=${3:-all}
out=${OUT:-target/mqtt-compare.jsonl}
tdir=${CARGO_TARGET_DIR:-target}
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fds=$(ulimit -n)
idle=${IDLE:-$(( fds - 1000 < 100000 ? fds - 1000 : 100000 ))}
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p junction -p junction-bench
: >"$out"
data=$(mktemp -d)
. "$(dirname "$0")/brokers.sh"
trap 'stop; rm -rf "$data" "$data".*' EXIT
echo "open files limit $fds; idle row: $idle connections"

# ONLY=<label> runs that one throughput row (e.g. ONLY="qos0 1->1"), the others are skipped.
row() { [ -z "${ONLY:-}" ] || [ "$ONLY" = "$1" ] || return 0; run "$@"; }

throughput_rows() {
  local p=$mqtt_port d=(--size 100 --duration "$secs" --window 1000 --drain-stall 5)
  row "qos0 1->1"           mqtt "$p" --qos 0 "${d[@]}"
  row "qos1 1->1"           mqtt "$p" --qos 1 "${d[@]}"
  row "qos2 1->1"           mqtt "$p" --qos 2 "${d[@]}"
  row "qos1 1->1 v5"        mqtt "$p" --qos 1 --mqtt 5 "${d[@]}"
  row "qos0 1->100"         mqtt "$p" --qos 0 --consumers 100 "${d[@]}"
  row "qos1 1->100"         mqtt "$p" --qos 1 --consumers 100 "${d[@]}"
  row "latency qos1 1000/s" mqtt "$p" --qos 1 --size 100 --rate 1000 --duration 20
  row "latency qos0 1000/s" mqtt "$p" --qos 0 --size 100 --rate 1000 --duration 20
}

idle_rows() {
  run "idle $idle" idle "$mqtt_port" --protocol mqtt --connections "$idle" --hold 20 --keep-alive 30
}

# The idle row gets a broker of its own, started fresh: memory freed by the throughput rows
# would otherwise be reused by the new connections and hide their cost.
for b in junction mosquitto; do
  [ "$which" = both ] || [ "$which" = "$b" ] || continue
  if [ "$rows" != idle ]; then start_$b async $((idle + 1000)); throughput_rows; stop; fi
  if [ "$rows" != throughput ]; then start_$b async $((idle + 1000)); idle_rows; stop; fi
done
