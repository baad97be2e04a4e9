#!/usr/bin/env bash
# Junction vs RabbitMQ's STOMP plugin and ActiveMQ, the same generator (junction-bench stomp)
# against each broker, one broker at a time on this machine:
#   100 B and 1 KiB; 1 producer -> 1 consumer; consumers with ack:auto and ack:client-individual
#   (one ACK per message); producers SEND to /queue/bench-... with a receipt on the last SEND of
#   every 64 and at most 16 batches unreceipted.
# Junction: release build, a fresh data dir per start, JUNCTION_STORE_FLUSH=async (STOMP SENDs
# without persistent:true are transient messages; RabbitMQ does not fsync those either).
# RabbitMQ: the Debian package with the STOMP plugin (enabled for the run, disabled after),
# default settings, loopback only: this script gives it a config file of its own
# (RABBITMQ_CONFIG_FILE) with the AMQP listener on 127.0.0.1:$RABBIT_AMQP_PORT (default 5672)
# and stomp.listeners.tcp.1 = 127.0.0.1:61613; the environment keeps the node, its distribution
# port and epmd on loopback. Its mnesia directory is wiped before it starts.
# ActiveMQ: the Debian package (5.17), on Java 17, started by hand (java -jar activemq.jar start)
# with Debian's JVM options (-Xms512M -Xmx512M, UseDedicatedTaskRunner=true) and a config file
# of this script's own: the default KahaDB store in a fresh directory, no JMX, and one transport
# connector, stomp://127.0.0.1:$AMQ_STOMP_PORT (default 61613; OpenWire and the others off).
# SUBSCRIBE carries activemq.prefetchSize beside prefetch-count, so it gets the same prefetch.
# Run as root from the repository root.
#
# Usage: bench/stomp-compare.sh [seconds per run] [junction|rabbitmq|activemq|all]
# BUILD=0 uses the release binaries already in target/ instead of building them first.
# Prints one line per run; the JSON results (with the generator's and the broker's CPU time) go
# to $OUT (default target/stomp-compare.jsonl).
set -euo pipefail
secs=${1:-10}
which=${2:-all}
out=${OUT:-target/stomp-compare.jsonl}
jport=61623
tdir=${CARGO_TARGET_DIR:-target}
rport=61613
aport=${AMQ_STOMP_PORT:-61613}
[ "${BUILD:-1}" = 0 ] || cargo build --release -q -p junction -p junction-bench
: >"$out"
data=$(mktemp -d)
broker=""
trap 'stop; rm -rf "$data" "$data".*' EXIT

common=(--batch 64 --window 16 --prefetch 2000 --json)

start_junction() {
  rm -rf "${data:?}"/*
  JUNCTION_STORE_FLUSH=async JUNCTION_STORE_SEGMENT_SIZE=268435456 RUST_LOG=warn \
  JUNCTION_STOMP_LISTEN=127.0.0.1:$jport JUNCTION_STOMP_WS_ENABLED=false \
    "$tdir"/release/junction serve --data-dir "$data" \
      --native-listen 127.0.0.1:0 --amqp-listen 127.0.0.1:0 >"$data.log" 2>&1 &
  broker=junction
  bpid=$!
  for _ in $(seq 200); do grep -q "stomp listening" "$data.log" 2>/dev/null && return; sleep 0.1; done
  echo "junction did not start" >&2; cat "$data.log" >&2; exit 1
}

start_rabbitmq() {
  # The node, its distribution port and epmd on loopback too (rabbitmqctl gets the same).
  export RABBITMQ_NODENAME=rabbit@localhost ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
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

start_activemq() {
  abase=$data/activemq
  rm -rf "$abase"; mkdir -p "$abase/conf" "$abase/data" "$abase/tmp"
  cp /etc/activemq/instances-available/main/log4j2.properties "$abase/conf/"
  cat >"$abase/conf/activemq.xml" <<XML
<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" useJmx="false" brokerName="bench"
          dataDirectory="$abase/data">
    <persistenceAdapter><kahaDB directory="$abase/data/kahadb"/></persistenceAdapter>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://127.0.0.1:$aport"/>
    </transportConnectors>
  </broker>
</beans>
XML
  java -Xms512M -Xmx512M -Dorg.apache.activemq.UseDedicatedTaskRunner=true \
    --add-reads=java.xml=java.logging \
    --add-opens java.base/java.security=ALL-UNNAMED --add-opens java.base/java.net=ALL-UNNAMED \
    --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
    --add-opens java.naming/javax.naming.spi=ALL-UNNAMED \
    --add-opens java.rmi/sun.rmi.transport.tcp=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED \
    --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED \
    -Djava.io.tmpdir="$abase/tmp" -Dlog4j2.configurationFile="$abase/conf/log4j2.properties" \
    -Dactivemq.classpath="$abase/conf" -Dactivemq.home=/usr/share/activemq \
    -Dactivemq.base="$abase" -Dactivemq.conf="$abase/conf" -Dactivemq.data="$abase/data" \
    -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$abase/conf/activemq.xml" \
    >"$data.activemq.log" 2>&1 &
  broker=activemq
  bpid=$!
  for _ in $(seq 300); do
    (exec 3<>/dev/tcp/127.0.0.1/$aport) 2>/dev/null && return; sleep 0.2
  done
  echo "activemq did not start" >&2; tail -30 "$data.activemq.log" >&2; exit 1
}

stop() {
  case "$broker" in
    activemq) kill -TERM "$bpid" 2>/dev/null || true
              for _ in $(seq 100); do kill -0 "$bpid" 2>/dev/null || break; sleep 0.2; done
              kill -KILL "$bpid" 2>/dev/null || true; wait "$bpid" 2>/dev/null || true ;;
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
  local b0 b1 t load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  b0=$(cpu_ticks "$bpid")
  /usr/bin/time -f "%U %S %e" -o "$data.time" \
    "$tdir"/release/junction-bench stomp --addr 127.0.0.1:"$port" "${common[@]}" "$@" \
    2>"$data.err" >"$data.json" || { cat "$data.err" >&2; }
  b1=$(cpu_ticks "$bpid")
  t=$(cat "$data.time")
  python3 - "$name" "$label" "$t" "$b0" "$b1" "$data.json" "$out" "$load" <<'PY'
import json, sys
name, label, t, b0, b1, path, out, load = sys.argv[1:]
u, s, e = map(float, t.split()[-3:])
try:
    r = json.loads(open(path).read().strip().splitlines()[-1])
except Exception:
    r = {"error": "no result"}
r.update(broker=name, row=label, wall_s=e, generator_cpu_s=u + s,
         broker_cpu_s=(int(b1) - int(b0)) / 100.0, loadavg_before=load)
open(out, "a").write(json.dumps(r) + "\n")
l = r.get("latency_us", {})
print(f"{name:9} {label:28} load {load:15} e2e {r.get('end_to_end_rate', 0):8.0f}/s  pub {r.get('publish_rate', 0):8.0f}/s"
      f"  lost {r.get('lost')} dup {r.get('duplicates')}"
      f"  p50/p99 {l.get('p50')}/{l.get('p99')} us"
      f"  cpu gen {r['generator_cpu_s']:.1f}s broker {r['broker_cpu_s']:.1f}s wall {e:.1f}s", flush=True)
PY
}

rows() { # $1 = broker, $2 = port
  # A 5-second warm-up first (recorded as "warm-up", not a figure): ActiveMQ's JVM compiles its
  # hot paths during the first seconds, and its first row would otherwise measure that.
  run "$1" "$2" "warm-up" --queue bench-stomp --size 100 --ack auto --duration 5
  for size in 100 1024; do
    for ack in auto client-individual; do
      run "$1" "$2" "${size}B 1->1 ${ack}" --queue bench-stomp --size $size --ack $ack \
        --duration "$secs"
    done
  done
}

for b in junction rabbitmq activemq; do
  [ "$which" = all ] || [ "$which" = "$b" ] || continue
  case $b in
    junction) start_junction; rows junction $jport ;;
    rabbitmq) start_rabbitmq; rows rabbitmq $rport ;;
    activemq) start_activemq; rows activemq $aport ;;
  esac
  stop
done
