#!/usr/bin/env python3
"""stomp.py (the Python STOMP client) against Junction's STOMP listener.

Usage: python3 tests/stomp_py/scenarios.py <stomp-port>

Plain script, no test framework: every scenario opens its own stomp.py connection(s) to
127.0.0.1:<port> as guest/guest, waits on events with deadlines (a listener with a condition
variable, and a SIGALRM watchdog per scenario), and prints `ok <name>` or `FAIL <name>: <reason>`.
The last line is `N passed, N failed`; the exit status is 1 if any scenario failed.
"""

import os
import signal
import sys
import threading
import time
import traceback
import uuid

import stomp
import stomp.exception

PORT = None
SCENARIO_TIMEOUT_S = 60
WAIT_S = 20
RUN = uuid.uuid4().hex[:8]  # names are unique per run, so reruns on one broker do not collide


class ScenarioTimeout(Exception):
    pass


def name(prefix):
    return "py-%s-%s-%s" % (prefix, RUN, uuid.uuid4().hex[:6])


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Listener(stomp.ConnectionListener):
    """Collects what the server sends; waits on it with deadlines."""

    def __init__(self):
        self.cond = threading.Condition()
        self.messages = []
        self.receipts = []
        self.errors = []
        self.heartbeats = 0
        self.disconnected = False
        self.connected = None

    def on_connected(self, frame):
        with self.cond:
            self.connected = frame.headers
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def on_heartbeat(self):
        with self.cond:
            self.heartbeats += 1
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def wait(self, pred, what, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for " + what)
                self.cond.wait(left)

    def wait_messages(self, n, timeout=WAIT_S):
        self.wait(lambda: len(self.messages) >= n, "%d message(s)" % n, timeout)
        return self.messages[:n]

    def wait_receipt(self, rid):
        self.wait(lambda: rid in self.receipts, "receipt " + rid)

    def take(self):
        with self.cond:
            out, self.messages = self.messages, []
            return out


def connect(version="1.2", heartbeats=(0, 0), auto_decode=True, password="guest", headers=None):
    cls = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}[version]
    kwargs = dict(auto_decode=auto_decode, timeout=10, reconnect_attempts_max=1)
    if version != "1.0":
        kwargs["heartbeats"] = heartbeats
    conn = cls([("127.0.0.1", PORT)], **kwargs)
    listener = Listener()
    conn.set_listener("l", listener)
    conn.connect("guest", password, wait=True, headers=headers or {})
    return conn, listener


def sync(conn, listener):
    """A receipt round trip: everything sent before it has been handled (and SENDs stored)."""
    rid = "sync-" + uuid.uuid4().hex[:8]
    conn.begin(transaction=rid, headers={"receipt": rid})
    listener.wait_receipt(rid)


def close(conn):
    try:
        if conn.is_connected():
            conn.disconnect(receipt="bye-" + uuid.uuid4().hex[:6])
    except Exception:  # noqa: BLE001 - best effort
        pass


def s_connect_each_version():
    for v in ("1.0", "1.1", "1.2"):
        conn, l = connect(v)
        check(conn.is_connected(), "connected with %s" % v)
        check(l.connected.get("version") == v, "CONNECTED %r" % l.connected)
        conn.disconnect(receipt="bye")
        check(not conn.is_connected(), "disconnected")


def s_wrong_password_refused():
    try:
        conn, listener = connect(password="wrong")
    except stomp.exception.ConnectFailedException:
        return
    raise AssertionError("a wrong password was accepted")


def s_send_receive_headers():
    q = "/queue/" + name("basic")
    conn, l = connect()
    try:
        conn.subscribe(q, id="s1", ack="auto")
        sync(conn, l)
        conn.send(q, "hello", content_type="text/plain",
                  headers={"x-custom": "value:with:colons", "correlation-id": "c-1",
                           "persistent": "true", "priority": "4"})
        (m,) = l.wait_messages(1)
        check(m.body == "hello", "body %r" % m.body)
        h = m.headers
        check(h.get("content-type") == "text/plain", "content-type %r" % h)
        check(h.get("x-custom") == "value:with:colons", "custom header %r" % h)
        check(h.get("correlation-id") == "c-1", "correlation-id %r" % h)
        check(h.get("persistent") == "true", "persistent %r" % h)
        check(h.get("priority") == "4", "priority %r" % h)
        check(h.get("subscription") == "s1", "subscription %r" % h)
        check(h.get("destination") == q, "destination %r" % h)
    finally:
        close(conn)


def s_escaped_headers_1_2():
    q = "/queue/" + name("esc")
    conn, l = connect("1.2")
    try:
        conn.subscribe(q, id="s", ack="auto")
        sync(conn, l)
        conn.send(q, "e", headers={"x-multi": "line1\nline2", "x-back": "a\\b"})
        (m,) = l.wait_messages(1)
        check(m.headers.get("x-multi") == "line1\nline2", "newline %r" % m.headers)
        check(m.headers.get("x-back") == "a\\b", "backslash %r" % m.headers)
    finally:
        close(conn)


def s_binary_body_with_nul():
    q = "/queue/" + name("bin")
    conn, l = connect(auto_decode=False)
    try:
        conn.subscribe(q, id="s", ack="auto")
        sync(conn, l)
        body = bytes(range(256)) * 40
        conn.send(q, body, content_type="application/octet-stream")
        (m,) = l.wait_messages(1)
        check(m.body == body, "binary body of %d bytes came back as %d" % (len(body), len(m.body)))
    finally:
        close(conn)


def s_client_individual_ack_and_nack():
    q = "/queue/" + name("indiv")
    conn, l = connect()
    try:
        conn.subscribe(q, id="s", ack="client-individual")
        sync(conn, l)
        conn.send(q, "a")
        conn.send(q, "b")
        m1, m2 = l.wait_messages(2)
        l.take()
        conn.ack(m1.headers["ack"])
        conn.nack(m2.headers["ack"])
        (again,) = l.wait_messages(1)
        check(again.body == "b", "requeued %r" % again.body)
        check(again.headers.get("redelivered") == "true", "redelivered %r" % again.headers)
        conn.ack(again.headers["ack"])
    finally:
        close(conn)


def s_client_ack_cumulative_1_1():
    q = "/queue/" + name("cumul")
    conn, l = connect("1.1")
    try:
        conn.subscribe(q, id="s", ack="client")
        sync(conn, l)
        for i in range(3):
            conn.send(q, "m%d" % i)
        msgs = l.wait_messages(3)
        # 1.1: ACK by message-id (and subscription); one ACK covers all three.
        conn.ack(msgs[2].headers["message-id"], "s")
        sync(conn, l)
    finally:
        close(conn)
    conn, l = connect("1.1")
    try:
        conn.subscribe(q, id="s", ack="client")
        sync(conn, l)
        conn.send(q, "fresh")
        (m,) = l.wait_messages(1)
        check(m.body == "fresh", "the cumulative ACK left %r unacked" % m.body)
    finally:
        close(conn)


def s_transaction_commit_abort():
    q = "/queue/" + name("tx")
    conn, l = connect()
    try:
        conn.subscribe(q, id="s", ack="auto")
        sync(conn, l)
        t1 = conn.begin()
        conn.send(q, "committed", transaction=t1)
        t2 = conn.begin()
        conn.send(q, "aborted", transaction=t2)
        conn.abort(t2)
        sync(conn, l)
        check(not l.messages, "a transactional SEND was published early: %r" % l.messages)
        conn.commit(t1)
        (m,) = l.wait_messages(1)
        check(m.body == "committed", "body %r" % m.body)
        conn.send(q, "marker")
        (_, marker) = l.wait_messages(2)
        check(marker.body == "marker", "the aborted SEND arrived: %r" % marker.body)
    finally:
        close(conn)


def s_topic_fanout_and_wildcards():
    key = name("t").replace("-", "")
    a, la = connect()
    b, lb = connect()
    p, lp = connect()
    try:
        a.subscribe("/topic/%s.*" % key, id="a", ack="auto")
        b.subscribe("/topic/%s.#" % key, id="b", ack="auto")
        sync(a, la)
        sync(b, lb)
        p.send("/topic/%s.x" % key, "one")
        p.send("/topic/%s.x.y" % key, "two")
        (m,) = la.wait_messages(1)
        check(m.body == "one", "a got %r" % m.body)
        got = [f.body for f in lb.wait_messages(2)]
        check(got == ["one", "two"], "b got %r" % got)
    finally:
        for c in (a, b, p):
            close(c)


def s_durable_topic_subscription():
    key = name("d").replace("-", "")
    cid = name("client")
    hdrs = {"durable": "true", "auto-delete": "false"}
    conn, l = connect(headers={"client-id": cid})
    conn.subscribe("/topic/" + key, id="dur", ack="client-individual", headers=hdrs)
    sync(conn, l)
    conn.disconnect()
    p, lp = connect()
    p.send("/topic/" + key, "kept", headers={"persistent": "true"})
    sync(p, lp)
    close(p)
    conn, l = connect(headers={"client-id": cid})
    try:
        conn.subscribe("/topic/" + key, id="dur", ack="client-individual", headers=hdrs)
        (m,) = l.wait_messages(1)
        check(m.body == "kept", "body %r" % m.body)
        conn.ack(m.headers["ack"])
        conn.unsubscribe("dur", headers={"durable": "true"})
    finally:
        close(conn)


def s_exchange_destination():
    conn, l = connect()
    rk = name("k")
    try:
        conn.subscribe("/exchange/amq.direct/" + rk, id="x", ack="auto")
        sync(conn, l)
        conn.send("/exchange/amq.direct/" + rk, "direct")
        (m,) = l.wait_messages(1)
        check(m.body == "direct", "body %r" % m.body)
    finally:
        close(conn)


def s_temp_queue_rpc():
    q = "/queue/" + name("rpc")
    server, ls = connect()
    client, lc = connect()
    try:
        server.subscribe(q, id="srv", ack="auto")
        sync(server, ls)
        for i in range(3):
            client.send(q, "req%d" % i, headers={"reply-to": "/temp-queue/replies", "correlation-id": str(i)})
        reqs = ls.wait_messages(3)
        for r in reqs:
            check(r.headers["reply-to"].startswith("/reply-queue/"), "reply-to %r" % r.headers)
            server.send(r.headers["reply-to"], "re:" + r.body,
                        headers={"correlation-id": r.headers["correlation-id"]})
        replies = {m.headers["correlation-id"]: m.body for m in lc.wait_messages(3)}
        check(replies == {"0": "re:req0", "1": "re:req1", "2": "re:req2"}, "replies %r" % replies)
    finally:
        close(server)
        close(client)


def s_prefetch_count():
    q = "/queue/" + name("prefetch")
    conn, l = connect()
    try:
        for i in range(5):
            conn.send(q, "m%d" % i)
        conn.subscribe(q, id="s", ack="client-individual", headers={"prefetch-count": "2"})
        first = l.wait_messages(2)
        sync(conn, l)
        check(len(l.messages) == 2, "prefetch 2 delivered %d" % len(l.messages))
        conn.ack(first[0].headers["ack"])
        l.wait_messages(3)
    finally:
        close(conn)


def s_heartbeats():
    conn, l = connect(heartbeats=(500, 500))
    try:
        # Negotiated to the server's 1000 ms floor; both sides keep the connection alive.
        l.wait(lambda: l.heartbeats >= 2, "2 heart-beats from the server", timeout=WAIT_S)
        check(conn.is_connected() and not l.disconnected, "still connected")
        q = "/queue/" + name("hb")
        conn.subscribe(q, id="s", ack="auto")
        conn.send(q, "alive")
        l.wait_messages(1)
    finally:
        close(conn)


def s_error_frame_then_close():
    conn, l = connect()
    try:
        conn.send("/nowhere/x", "lost")
        l.wait(lambda: l.errors, "an ERROR frame")
        check(l.errors[0].headers.get("message") == "Unknown destination", "message %r" % l.errors[0].headers)
        l.wait(lambda: l.disconnected, "the server to close the connection")
    finally:
        close(conn)
    # The broker goes on serving.
    conn, l = connect()
    close(conn)


SCENARIOS = [
    ("connect_each_version", s_connect_each_version),
    ("wrong_password_refused", s_wrong_password_refused),
    ("send_receive_headers", s_send_receive_headers),
    ("escaped_headers_1_2", s_escaped_headers_1_2),
    ("binary_body_with_nul", s_binary_body_with_nul),
    ("client_individual_ack_and_nack", s_client_individual_ack_and_nack),
    ("client_ack_cumulative_1_1", s_client_ack_cumulative_1_1),
    ("transaction_commit_abort", s_transaction_commit_abort),
    ("topic_fanout_and_wildcards", s_topic_fanout_and_wildcards),
    ("durable_topic_subscription", s_durable_topic_subscription),
    ("exchange_destination", s_exchange_destination),
    ("temp_queue_rpc", s_temp_queue_rpc),
    ("prefetch_count", s_prefetch_count),
    ("heartbeats", s_heartbeats),
    ("error_frame_then_close", s_error_frame_then_close),
]


def on_alarm(_sig, _frame):
    raise ScenarioTimeout("scenario took over %d s" % SCENARIO_TIMEOUT_S)


def main():
    global PORT
    if len(sys.argv) != 2:
        print("usage: scenarios.py <stomp-port>", file=sys.stderr)
        return 2
    PORT = int(sys.argv[1])
    only = None  # STOMP_PY_SCENARIOS=a,b runs only those (for debugging)
    if os.environ.get("STOMP_PY_SCENARIOS"):
        only = set(os.environ["STOMP_PY_SCENARIOS"].split(","))
    signal.signal(signal.SIGALRM, on_alarm)
    print("stomp.py %s against 127.0.0.1:%d" % (stomp.__version__ if isinstance(stomp.__version__, str) else ".".join(map(str, stomp.__version__)), PORT), flush=True)
    passed = failed = 0
    start = time.monotonic()
    for sname, fn in SCENARIOS:
        if only is not None and sname not in only:
            continue
        signal.alarm(SCENARIO_TIMEOUT_S)
        try:
            fn()
            err = None
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            err = "%s: %s" % (type(e).__name__, e)
            if not isinstance(e, (AssertionError, ScenarioTimeout)):
                tb = traceback.extract_tb(e.__traceback__)
                here = [f for f in tb if f.filename == __file__]
                if here:
                    err += " (at line %d)" % here[-1].lineno
        finally:
            signal.alarm(0)
        if err is None:
            passed += 1
            print("ok %s" % sname, flush=True)
        else:
            failed += 1
            print("FAIL %s: %s" % (sname, err), flush=True)
    print("stomp.py scenarios took %.1f s" % (time.monotonic() - start), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
