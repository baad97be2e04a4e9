#!/usr/bin/env bash
# One matrix against Junction, RabbitMQ (AMQP, and its MQTT and STOMP plugins) and Mosquitto
# (MQTT), each broker started fresh, one after the other, on this machine, with the same
# generator (junction-bench); then rewrites the summary of docs/BENCHMARKS.md (table, ratios
# Junction / best peer, machine, versions, commands, load averages) and docs/bench-summary.svg.
#
# Rows (100 B bodies, 1 producer, $1 seconds each unless paced):
#   amqp persistent 1->1   durable queue, delivery-mode 2, confirms, manual acks
#                          (Junction: flush=sync, a confirm means fsynced, as RabbitMQ's)
#   amqp transient 1->1    delivery-mode 1, no confirms, manual acks (Junction: flush=async)
#   amqp p99 1000/s        persistent + confirms, paced at 1,000 msg/s for 20 s
#   mqtt qos0 1->1, mqtt qos1 1->1, mqtt qos1 1->100 (fan-out), mqtt p99 qos1 1000/s
#   stomp auto 1->1, stomp client-individual 1->1 (one ACK per message)
#   mqtt idle N            N idle MQTT connections (default 10,000; $IDLE), resident memory
#                          growth per connection, on a broker started fresh for that row
# Every broker binds 127.0.0.1 only and is stopped after its rows (see bench/brokers.sh).
# Run as root from the repository root, with Debian's rabbitmq-server and mosquitto installed.
#
# Usage: bench/compare.sh [seconds per run] [brokers, default "junction rabbitmq mosquitto"]
# ROWS=idle runs only the idle rows, ROWS=none none (just the summary); APPEND=1 adds to $OUT
# instead of starting it anew (a row run again replaces the earlier one in the summary).
# BUILD=0 uses the release binaries already in target/ instead of building them first.
set -euo pipefail
secs=${1:-10}
brokers=${2:-junction rabbitmq mosquitto}
out=${OUT:-target/compare.jsonl}
tdir=${CARGO_TARGET_DIR:-target}
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
idle=${IDLE:-10000}
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p junction -p junction-bench
rows=${ROWS:-all}
if [ "${APPEND:-0}" != 1 ]; then : >"$out"; : >"$out.commands"; fi
# Every invocation that added to $out, for the summary.
[ "$rows" = none ] || echo "$( [ "$rows" = all ] || echo "ROWS=$rows ")$( [ "${APPEND:-0}" = 1 ] && echo "APPEND=1 ")bench/compare.sh $secs \"$brokers\"" >>"$out.commands"
data=$(mktemp -d)
. "$(dirname "$0")/brokers.sh"
trap 'stop; rm -rf "$data" "$data".*' EXIT

amqp=(--size 100 --batch 64 --window 1024 --prefetch 2000 --ack-every 100)
amqp_persistent() {
  run "amqp persistent 1->1" amqp "$amqp_port" "${amqp[@]}" --queue bench-p --duration "$secs"
  run "amqp p99 1000/s" amqp "$amqp_port" "${amqp[@]}" --queue bench-p --rate 1000 --duration 20
}
amqp_transient() {
  run "amqp transient 1->1" amqp "$amqp_port" "${amqp[@]}" --queue bench-t --transient \
    --no-confirm --duration "$secs"
}
mqtt_rows() {
  local d=(--size 100 --window 1000 --drain-stall 5 --duration "$secs")
  run "mqtt qos0 1->1" mqtt "$mqtt_port" --qos 0 "${d[@]}"
  run "mqtt qos1 1->1" mqtt "$mqtt_port" --qos 1 "${d[@]}"
  run "mqtt qos1 1->100" mqtt "$mqtt_port" --qos 1 --consumers 100 "${d[@]}"
  run "mqtt p99 qos1 1000/s" mqtt "$mqtt_port" --qos 1 --size 100 --rate 1000 --duration 20
}
stomp_rows() {
  local d=(--size 100 --batch 64 --window 16 --prefetch 2000 --duration "$secs")
  run "stomp auto 1->1" stomp "$stomp_port" --ack auto "${d[@]}"
  run "stomp client-individual 1->1" stomp "$stomp_port" --ack client-individual "${d[@]}"
}
idle_row() {
  run "mqtt idle $idle" idle "$mqtt_port" --protocol mqtt --connections "$idle" --hold 10 \
    --keep-alive 30
}

for b in $brokers; do
  case $b in
    junction)
      if [ "$rows" = all ]; then
        start_junction sync; amqp_persistent; stop
        start_junction async; amqp_transient; mqtt_rows; stomp_rows; stop
      fi
      if [ "$rows" != none ]; then start_junction async $((idle + 1000)); idle_row; stop; fi ;;
    rabbitmq)
      if [ "$rows" = all ]; then
        start_rabbitmq; amqp_persistent; amqp_transient; mqtt_rows; stomp_rows; stop
      fi
      if [ "$rows" != none ]; then start_rabbitmq; idle_row; stop; fi ;;
    mosquitto)
      if [ "$rows" = all ]; then start_mosquitto; mqtt_rows; stop; fi
      if [ "$rows" != none ]; then start_mosquitto; idle_row; stop; fi ;;
  esac
done

# What the summary says about the run.
python3 - "$data.meta.json" "$out.commands" "$idle" <<'PY'
import json, platform, subprocess, sys, datetime
path, invocations, idle = sys.argv[1:]
cmds = [
    "# junction: target/release/junction serve (flush=sync for the persistent AMQP rows, async for the rest)",
    "# rabbitmq: rabbitmq-plugins --offline enable rabbitmq_mqtt rabbitmq_stomp; RABBITMQ_CONFIG_FILE=<loopback listeners> rabbitmq-server",
    "# mosquitto: mosquitto -c <listener 1883 127.0.0.1, allow_anonymous true, persistence false>",
]
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return "?"
def deb(pkg):
    return sh("dpkg-query -W -f='${Version}' " + pkg)
commit = sh("git rev-parse --short HEAD")
dirty = " (with uncommitted changes)" if sh("git status --porcelain --untracked-files=no -- src protocols store sdk bench/src") else ""
cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo")
meta = {
    "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
    "command": "`, then `".join(l.strip() for l in open(invocations) if l.strip())
               + (f"` (IDLE={idle})" if idle != "10000" else ""),
    "machine": f"{sh('nproc')} vCPUs ({cpu}), {mem} RAM, Linux {platform.release()}",
    "versions": [
        f"Junction: commit {commit}{dirty}, release build, {sh('rustc --version')}",
        f"RabbitMQ {deb('rabbitmq-server')} (Debian), Erlang {deb('erlang-base')}, plugins rabbitmq_mqtt and rabbitmq_stomp, default settings",
        f"Mosquitto {deb('mosquitto')} (Debian), default settings but for the listener, anonymous access and persistence off",
        "Generator: junction-bench (lapin 4 for AMQP, rumqttc 0.25 for MQTT, its own STOMP 1.2 client)",
    ],
    "commands": cmds + [
        "junction-bench amqp --addr <broker> --size 100 --batch 64 --window 1024 --prefetch 2000 --ack-every 100 --queue bench-p --duration S",
        "junction-bench amqp ... --queue bench-t --transient --no-confirm --duration S",
        "junction-bench amqp ... --queue bench-p --rate 1000 --duration 20",
        "junction-bench mqtt --addr <broker> --size 100 --window 1000 --qos 0|1 [--consumers 100] --duration S",
        "junction-bench mqtt ... --qos 1 --rate 1000 --duration 20",
        "junction-bench stomp --addr <broker> --size 100 --batch 64 --window 16 --prefetch 2000 --ack auto|client-individual --duration S",
        "junction-bench idle --protocol mqtt --addr <broker> --connections N --hold 10 --keep-alive 30 --broker-pid <pid>",
    ],
    "targets": {
        "amqp persistent 1->1": ">= 3x RabbitMQ",
        "amqp p99 1000/s": "below each peer",
        "mqtt qos0 1->1": ">= 1.5x Mosquitto",
        "mqtt qos1 1->1": ">= 1.5x Mosquitto",
        "mqtt qos1 1->100": ">= 1.5x Mosquitto",
        "mqtt p99 qos1 1000/s": "below each peer",
        "stomp auto 1->1": ">= 1.5x best peer",
        "stomp client-individual 1->1": ">= 1.5x best peer",
        f"mqtt idle {idle}": "<= 1 KiB",
    },
}
json.dump(meta, open(path, "w"))
PY
python3 "$(dirname "$0")/summarize.py" "$out" "$data.meta.json" docs/BENCHMARKS.md docs/bench-summary.svg
echo "rewrote docs/BENCHMARKS.md's summary and docs/bench-summary.svg from $out"
