#!/usr/bin/env python3
"""paho-mqtt (Python) and mosquitto_pub/mosquitto_sub against Junction's MQTT listener.

Usage: python3 tests/paho/scenarios.py <mqtt-port>

Plain script, no test framework: each scenario connects its own clients to 127.0.0.1:<port>,
waits on events with deadlines (threading.Event, subprocess timeouts, a SIGALRM watchdog per
scenario) and prints `ok <name>` or `FAIL <name>: <reason>`. The last line is
`N passed, N failed`; the exit status is 1 if any scenario failed.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

PORT = None
WAIT_S = 20
SCENARIO_TIMEOUT_S = 60
RUN = uuid.uuid4().hex[:8]  # topics and client ids are unique per run


class ScenarioTimeout(Exception):
    pass


def on_alarm(_sig, _frame):
    raise ScenarioTimeout("scenario took longer than %d s" % SCENARIO_TIMEOUT_S)


def topic(*levels):
    return "/".join(("paho", RUN) + levels)


def cid(prefix):
    return "%s-%s-%s" % (prefix, RUN, uuid.uuid4().hex[:4])


class Client:
    """A paho client on its own network thread; messages and acks land in lists + events."""

    def __init__(self, client_id, v5=False, clean=True, will=None, username=None, password=None,
                 session_expiry=None):
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kwargs = {"client_id": client_id, "protocol": proto}
        if not v5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        self.messages = []
        self.got = threading.Condition()
        self.connected = threading.Event()
        self.rc = None
        self.flags = None
        self.subacks = []
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        if will is not None:
            self.c.will_set(*will)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.clean = clean
        self.session_expiry = session_expiry

    def _on_connect(self, _c, _u, flags, rc, _props=None):
        self.rc = rc
        self.flags = flags
        self.connected.set()

    def _on_message(self, _c, _u, msg):
        with self.got:
            self.messages.append(msg)
            self.got.notify_all()

    def _on_subscribe(self, _c, _u, _mid, codes, _props=None):
        with self.got:
            self.subacks.append(codes)
            self.got.notify_all()

    def connect(self, expect_ok=True):
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                props.SessionExpiryInterval = self.session_expiry
            self.c.connect("127.0.0.1", PORT, keepalive=30, clean_start=self.clean, properties=props)
        else:
            self.c.connect("127.0.0.1", PORT, keepalive=30)
        self.c.loop_start()
        assert self.connected.wait(WAIT_S), "no CONNACK"
        if expect_ok:
            assert not self.rc.is_failure, "refused: %s" % self.rc
        return self

    def subscribe(self, filt, qos=1, **kw):
        n = len(self.subacks)
        if self.v5:
            props = kw.pop("properties", None)
            self.c.subscribe(filt, options=SubscribeOptions(qos=qos, **kw), properties=props)
        else:
            self.c.subscribe(filt, qos)
        self.wait(lambda: len(self.subacks) > n, "SUBACK")
        return self.subacks[-1]

    def wait(self, cond, what):
        deadline = time.monotonic() + WAIT_S
        with self.got:
            while not cond():
                left = deadline - time.monotonic()
                assert left > 0, "timed out waiting for %s" % what
                self.got.wait(left)

    def messages_n(self, n):
        self.wait(lambda: len(self.messages) >= n, "%d messages" % n)
        return self.messages[:n]

    def quiet(self, n, seconds=0.5):
        time.sleep(seconds)
        assert len(self.messages) == n, "expected %d messages, got %d" % (n, len(self.messages))

    def publish(self, t, payload, qos=1, retain=False, properties=None):
        info = self.c.publish(t, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(WAIT_S)
        assert info.is_published(), "publish not acknowledged"

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT, as a crashed device would."""
        self.c.loop_stop()
        self.c.socket().close()


# ---- scenarios ----

def qos_levels_v311():
    t = topic("qos")
    sub = Client(cid("sub")).connect()
    assert sub.subscribe(t + "/#", qos=2)[0] == 2
    pub = Client(cid("pub")).connect()
    for q in (0, 1, 2):
        pub.publish("%s/%d" % (t, q), b"q%d" % q, qos=q)
    got = sub.messages_n(3)
    assert sorted((m.topic, m.qos, m.payload) for m in got) == [
        ("%s/%d" % (t, q), q, b"q%d" % q) for q in (0, 1, 2)], got
    pub.close()
    sub.close()


def properties_v5():
    t = topic("props")
    sub = Client(cid("sub5"), v5=True).connect()
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 9
    sub.subscribe(t, qos=1, properties=sp)
    pub = Client(cid("pub5"), v5=True).connect()
    pp = Properties(PacketTypes.PUBLISH)
    pp.ContentType = "text/plain"
    pp.ResponseTopic = t + "/reply"
    pp.CorrelationData = b"\x01\x02"
    pp.UserProperty = [("a", "1"), ("b", "2")]
    pp.MessageExpiryInterval = 120
    pub.publish(t, b"hello", qos=1, properties=pp)
    m = sub.messages_n(1)[0]
    p = m.properties
    assert m.payload == b"hello"
    assert p.ContentType == "text/plain", p
    assert p.ResponseTopic == t + "/reply", p
    assert p.CorrelationData == b"\x01\x02", p
    assert ("a", "1") in p.UserProperty and ("b", "2") in p.UserProperty, p
    assert 0 < p.MessageExpiryInterval <= 120, p
    assert p.SubscriptionIdentifier == [9], p
    pub.close()
    sub.close()


def retained():
    t = topic("retained")
    pub = Client(cid("rpub")).connect()
    pub.publish(t, b"v1", retain=True)
    pub.publish(t, b"v2", retain=True)
    sub = Client(cid("rsub")).connect()
    sub.subscribe(t)
    m = sub.messages_n(1)[0]
    assert (m.payload, m.retain) == (b"v2", True), (m.payload, m.retain)
    pub.publish(t, b"", retain=True)  # clear
    late = Client(cid("rlate")).connect()
    late.subscribe(t)
    late.quiet(0)
    for c in (pub, sub, late):
        c.close()


def will_on_crash():
    t = topic("will")
    watcher = Client(cid("watch")).connect()
    watcher.subscribe(t)
    dev = Client(cid("dev"), will=(t, b"offline", 1, False)).connect()
    dev.drop()
    m = watcher.messages_n(1)[0]
    assert m.payload == b"offline"
    polite = Client(cid("polite"), will=(t, b"never", 1, False)).connect()
    polite.close()
    watcher.quiet(1)
    watcher.close()


def persistent_session_v311():
    t = topic("persist")
    me = cid("persist")
    c = Client(me, clean=False).connect()
    c.subscribe(t, qos=1)
    c.close()
    pub = Client(cid("ppub")).connect()
    for i in range(5):
        pub.publish(t, b"%d" % i)
    pub.close()
    c = Client(me, clean=False).connect()
    assert c.flags.session_present, "session present"
    got = c.messages_n(5)
    assert [m.payload for m in got] == [b"%d" % i for i in range(5)], [m.payload for m in got]
    c.close()
    Client(me, clean=True).connect().close()  # leave nothing behind


def shared_subscription_v5():
    t = topic("shared")
    a = Client(cid("sa"), v5=True).connect()
    b = Client(cid("sb"), v5=True).connect()
    a.subscribe("$share/grp/" + t + "/#")
    b.subscribe("$share/grp/" + t + "/#")
    pub = Client(cid("spub"), v5=True).connect()
    for i in range(20):
        pub.publish("%s/%d" % (t, i), b"%d" % i)
    deadline = time.monotonic() + WAIT_S
    while len(a.messages) + len(b.messages) < 20:
        assert time.monotonic() < deadline, "only %d delivered" % (len(a.messages) + len(b.messages))
        time.sleep(0.05)
    payloads = [m.payload for m in a.messages + b.messages]
    assert sorted(payloads) == sorted(b"%d" % i for i in range(20)), payloads
    assert a.messages and b.messages, "both members got work"
    for c in (a, b, pub):
        c.close()


def no_local_v5():
    t = topic("nolocal")
    c = Client(cid("nl"), v5=True).connect()
    c.subscribe(t, qos=1, noLocal=True)
    c.publish(t, b"mine")
    other = Client(cid("other"), v5=True).connect()
    other.publish(t, b"theirs")
    m = c.messages_n(1)[0]
    assert m.payload == b"theirs"
    c.quiet(1)
    c.close()
    other.close()


def bad_password():
    c = Client(cid("bad"), username="guest", password="wrong")
    c.connect(expect_ok=False)
    assert c.rc.is_failure, c.rc
    c.c.loop_stop()
    c5 = Client(cid("bad5"), v5=True, username="nobody", password="x")
    c5.connect(expect_ok=False)
    assert c5.rc.is_failure and c5.rc.value == 0x86, c5.rc
    c5.c.loop_stop()


def unsubscribe():
    t = topic("unsub")
    c = Client(cid("u"), v5=True).connect()
    c.subscribe(t + "/a")
    c.subscribe(t + "/b")
    done = threading.Event()
    c.c.on_unsubscribe = lambda *a: done.set()
    c.c.unsubscribe(t + "/a")
    assert done.wait(WAIT_S)
    c.publish(t + "/a", b"a")
    c.publish(t + "/b", b"b")
    assert c.messages_n(1)[0].payload == b"b"
    c.quiet(1)
    c.close()


def run(cmd, timeout=WAIT_S):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)


def mosquitto_pub_sub():
    t = topic("mosq")
    base = ["-h", "127.0.0.1", "-p", str(PORT)]
    for version in ("mqttv311", "mqttv5"):
        sub = subprocess.Popen(
            ["mosquitto_sub"] + base + ["-V", version, "-t", t + "/#", "-q", "1", "-C", "3", "-v",
                                        "-W", str(WAIT_S)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # mosquitto_sub has no "subscribed" signal: publish retained-free messages until the
        # subscription is in place, counting on QoS 1 to deliver the ones after it.
        deadline = time.monotonic() + WAIT_S
        time.sleep(0.2)
        sent = 0
        while sub.poll() is None and time.monotonic() < deadline:
            r = run(["mosquitto_pub"] + base + ["-V", version, "-t", "%s/%d" % (t, sent), "-q", "1",
                                                "-m", "m%d" % sent])
            assert r.returncode == 0, r.stderr
            sent += 1
            time.sleep(0.1)
        out, err = sub.communicate(timeout=WAIT_S)
        assert sub.returncode == 0, (sub.returncode, err)
        lines = out.decode().splitlines()
        assert len(lines) == 3, lines
        for line in lines:
            tp, msg = line.split(" ", 1)
            assert tp.startswith(t + "/") and msg == "m" + tp.rsplit("/", 1)[1], line
    # Retained: mosquitto_pub -r, then mosquitto_sub --retained-only gets it and exits.
    r = run(["mosquitto_pub"] + base + ["-t", t + "/state", "-r", "-q", "1", "-m", "on"])
    assert r.returncode == 0, r.stderr
    r = run(["mosquitto_sub"] + base + ["-t", t + "/state", "--retained-only", "-C", "1",
                                        "-W", str(WAIT_S)])
    assert r.returncode == 0 and r.stdout.decode().strip() == "on", (r.returncode, r.stdout, r.stderr)
    r = run(["mosquitto_pub"] + base + ["-t", t + "/state", "-r", "-n"])  # clear
    assert r.returncode == 0, r.stderr
    # Bad credentials are refused.
    r = run(["mosquitto_pub"] + base + ["-u", "guest", "-P", "nope", "-t", t, "-m", "x"])
    assert r.returncode != 0, "a wrong password must be refused"


SCENARIOS = [
    ("qos_levels_v311", qos_levels_v311),
    ("properties_v5", properties_v5),
    ("retained", retained),
    ("will_on_crash", will_on_crash),
    ("persistent_session_v311", persistent_session_v311),
    ("shared_subscription_v5", shared_subscription_v5),
    ("no_local_v5", no_local_v5),
    ("bad_password", bad_password),
    ("unsubscribe", unsubscribe),
    ("mosquitto_pub_sub", mosquitto_pub_sub),
]


def main():
    global PORT
    PORT = int(sys.argv[1])
    signal.signal(signal.SIGALRM, on_alarm)
    print("paho-mqtt %s against 127.0.0.1:%d" % (mqtt.__version__ if hasattr(mqtt, "__version__") else "?", PORT), flush=True)
    passed = failed = 0
    start = time.monotonic()
    only = set(os.environ["PAHO_SCENARIOS"].split(",")) if os.environ.get("PAHO_SCENARIOS") else None
    for sname, fn in SCENARIOS:
        if only is not None and sname not in only:
            continue
        signal.alarm(SCENARIO_TIMEOUT_S)
        try:
            fn()
            err = None
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            err = "%s: %s" % (type(e).__name__, e)
            tb = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == __file__]
            if tb:
                err += " (at line %d)" % tb[-1].lineno
        finally:
            signal.alarm(0)
        if err is None:
            passed += 1
            print("ok %s" % sname, flush=True)
        else:
            failed += 1
            print("FAIL %s: %s" % (sname, err), flush=True)
    print("paho scenarios took %.1f s" % (time.monotonic() - start), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
