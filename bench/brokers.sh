# Sourced by bench/compare.sh and bench/mqtt-compare.sh: start one broker fresh on loopback,
# stop it, and run junction-bench against it recording one JSON line per run.
#
# Needs: $data (a scratch directory, wiped per start; files named "$data.*" beside it), $out (the JSON lines file), $tdir (the
# cargo target directory). Sets $broker, $bpid and the ports of the started broker:
# $amqp_port, $mqtt_port, $stomp_port (empty when the broker does not speak the protocol).
#
# Ports: Junction uses ports of its own (5698, 1893, 61623) so that it never collides with a
# peer; the peers use their standard ports (5672, 1883, 61613), held only while they run.

broker=""

start_junction() { # $1 = flush mode (async|sync), $2 = max connections
  rm -rf "${data:?}"/*
  JUNCTION_STORE_FLUSH=${1:-async} JUNCTION_STORE_SEGMENT_SIZE=268435456 RUST_LOG=warn \
  JUNCTION_MQTT_LISTEN=127.0.0.1:1893 JUNCTION_MQTT_WS_ENABLED=false \
  JUNCTION_STOMP_LISTEN=127.0.0.1:61623 JUNCTION_STOMP_WS_ENABLED=false \
  JUNCTION_HTTP_ENABLED=false JUNCTION_LIMITS_MAX_CONNECTIONS=${2:-10000} \
    "$tdir"/release/junction serve --data-dir "$data" \
      --native-listen 127.0.0.1:0 --amqp-listen 127.0.0.1:5698 >"$data.junction.log" 2>&1 &
  broker=junction
  bpid=$!
  amqp_port=5698 mqtt_port=1893 stomp_port=61623
  for _ in $(seq 200); do grep -q "junction: ready" "$data.junction.log" 2>/dev/null && return; sleep 0.1; done
  echo "junction did not start" >&2; cat "$data.junction.log" >&2; exit 1
}

# RabbitMQ (Debian's rabbitmq-server) with the MQTT and STOMP plugins, loopback only: a config
# file of our own for the listeners, and the node, its distribution port and epmd kept on
# loopback by the environment below (rabbitmqctl gets it too).
rabbit_env() {
  export RABBITMQ_NODENAME=rabbit@localhost ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

start_rabbitmq() {
  rabbit_env
  rm -rf /var/lib/rabbitmq/mnesia/*
  local rconf=/tmp/junction-bench-rabbitmq.conf
  printf '%s\n' 'listeners.tcp.default = 127.0.0.1:5672' 'loopback_users.guest = true' \
    'mqtt.listeners.tcp.default = 127.0.0.1:1883' 'mqtt.allow_anonymous = true' \
    'stomp.listeners.tcp.1 = 127.0.0.1:61613' >"$rconf"
  chmod 644 "$rconf"
  rabbitmq-plugins --offline enable rabbitmq_mqtt rabbitmq_stomp >/dev/null
  # Debian's rabbitmq-server switches to the rabbitmq user through su, whose PAM session sets
  # the open-files soft limit back to 1,024 (RabbitMQ then stops accepting near 830
  # connections): start the server script as that user here, with our limit.
  RABBITMQ_CONFIG_FILE=$rconf su rabbitmq -s /bin/sh \
    -c "ulimit -n $(ulimit -n); exec /usr/lib/rabbitmq/bin/rabbitmq-server" >"$data.rabbit.log" 2>&1 &
  broker=rabbitmq
  rpid=$!
  for _ in $(seq 60); do
    rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 && break; sleep 1
  done
  rabbitmqctl -q await_startup --timeout 5 >/dev/null
  bpid=$(pgrep -u rabbitmq beam.smp | head -1)
  amqp_port=5672 mqtt_port=1883 stomp_port=61613
}

# Mosquitto (Debian's package) by hand with a config of our own: one listener on loopback,
# anonymous access, no persistence, every other setting at its default (max_queued_messages
# 1000, max_inflight_messages 20).
start_mosquitto() {
  local mconf=$data.mosquitto.conf
  printf '%s\n' 'listener 1883 127.0.0.1' 'allow_anonymous true' 'persistence false' \
    'log_dest stderr' 'log_type error' 'log_type warning' >"$mconf"
  mosquitto -c "$mconf" >"$data.mosquitto.log" 2>&1 &
  broker=mosquitto
  bpid=$!
  amqp_port="" mqtt_port=1883 stomp_port=""
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && return; sleep 0.1
  done
  echo "mosquitto did not start" >&2; cat "$data.mosquitto.log" >&2; exit 1
}

stop() {
  case "$broker" in
    junction|mosquitto) kill -TERM "$bpid" 2>/dev/null || true; wait "$bpid" 2>/dev/null || true ;;
    rabbitmq) rabbitmqctl -q stop >/dev/null 2>&1 || true; wait "$rpid" 2>/dev/null || true
              epmd -kill >/dev/null 2>&1 || true
              rabbitmq-plugins --offline disable rabbitmq_mqtt rabbitmq_stomp >/dev/null 2>&1 || true ;;
  esac
  broker=""
}

# run LABEL SUBCOMMAND PORT ARGS...: one junction-bench run against the started broker; its JSON
# (with the broker, the row, the generator's CPU time and the load average before the run) is
# appended to $out and summarised on stdout.
run() {
  local label=$1 sub=$2 port=$3; shift 3
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  /usr/bin/time -f "%U %S %e" -o "$data.time" \
    "$tdir"/release/junction-bench "$sub" --addr 127.0.0.1:"$port" --broker-pid "$bpid" --json "$@" \
    2>"$data.err" >"$data.json" || { tail -3 "$data.err" >&2; }
  python3 - "$broker" "$label" "$(cat "$data.time")" "$load" "$data.json" "$out" <<'PY'
import json, sys
name, label, t, load, path, out = sys.argv[1:]
u, s, e = map(float, t.split()[-3:])
try:
    r = json.loads(open(path).read().strip().splitlines()[-1])
except Exception:
    r = {"error": "no result"}
r.update(broker_name=name, row=label, wall_s=e, generator_cpu_s=u + s, loadavg_before=load)
open(out, "a").write(json.dumps(r) + "\n")
b = r.get("broker") or {}
if r.get("error"):
    print(f"{name:9} {label:28} no result  load {load}", flush=True)
elif r.get("scenario") == "idle":
    print(f"{name:9} {label:28} {r.get('established')}/{r.get('connections')} connected"
          f" ({r.get('failed')} failed, {r.get('dropped')} dropped) in {r.get('connect_s', 0):.1f}s"
          f"  rss {b.get('rss_before_kib')} -> {b.get('rss_held_kib')} KiB"
          f" = {b.get('rss_per_connection_kib') or 0:.2f} KiB/conn  load {load}", flush=True)
else:
    l = r.get("latency_us", {})
    print(f"{name:9} {label:28} deliveries {r.get('end_to_end_rate', 0):9.0f}/s  pub {r.get('publish_rate', 0):8.0f}/s"
          f"  lost {r.get('lost')} dup {r.get('duplicates')}"
          f"  p50/p99/p99.9 {l.get('p50')}/{l.get('p99')}/{l.get('p999')} us"
          f"  cpu gen {r['generator_cpu_s'] / max(e, 0.001) * 100:.0f}% broker {(b.get('cpu_share') or 0) * 100:.0f}%"
          f"  load {load}", flush=True)
PY
}
