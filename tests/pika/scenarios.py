#!/usr/bin/env python3
"""pika (the Python RabbitMQ client) against Junction's AMQP 0-9-1 listener.

Usage: python3 tests/pika/scenarios.py <amqp-port>

Plain script, no test framework: every scenario opens its own BlockingConnection(s) to
127.0.0.1:<port> as guest/guest, runs with bounded waits (socket, blocked-connection and stack
timeouts, process_data_events(time_limit=...) loops with deadlines, and a SIGALRM watchdog per
scenario), and prints `ok <name>` or `FAIL <name>: <reason>`. The last line is
`N passed, N failed`; the exit status is 1 if any scenario failed.

KNOWN lists scenarios whose failure is a documented difference from RabbitMQ: they are run and
reported (`known <name>: ...`) but not counted as failures. A known scenario that passes is
reported as `ok` (and counted as passed), so the entry can be removed.
"""

import datetime
import decimal
import os
import signal
import sys
import time
import traceback
import uuid

import pika
import pika.exceptions as pe

PORT = None
SCENARIO_TIMEOUT_S = 60
RUN = uuid.uuid4().hex[:8]  # names are unique per run, so reruns on one broker do not collide

# name -> why it is expected to differ from RabbitMQ (see docs/AMQP.md).
KNOWN = {}


class ScenarioTimeout(Exception):
    pass


def name(prefix):
    return "pika-%s-%s-%s" % (prefix, RUN, uuid.uuid4().hex[:6])


def params(password="guest"):
    return pika.ConnectionParameters(
        host="127.0.0.1",
        port=PORT,
        credentials=pika.PlainCredentials("guest", password),
        connection_attempts=1,
        socket_timeout=10,
        stack_timeout=20,
        blocked_connection_timeout=10,
        heartbeat=30,
        client_properties={"connection_name": "junction-pika-scenarios"},
    )


def connect(password="guest"):
    return pika.BlockingConnection(params(password))


def close_quietly(conn):
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # noqa: BLE001 - best effort cleanup
        pass


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def pump(conn, seconds):
    """Process I/O for `seconds` (bounded)."""
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        conn.process_data_events(time_limit=min(left, 0.05))


def get_one(ch, queue, timeout=5.0, auto_ack=True):
    """basic_get until a message arrives or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=auto_ack)
        if method is not None:
            return method, props, body
        if time.monotonic() > deadline:
            raise AssertionError("no message in %s within %.1fs" % (queue, timeout))
        ch.connection.process_data_events(time_limit=0.05)


def drain(ch, queue, expect, timeout=5.0, settle=0.2):
    """Bodies from `queue` (auto-ack): waits (bounded) for `expect` of them, then `settle` s
    more for any unexpected extra one."""
    out = []
    deadline = time.monotonic() + timeout
    extra_until = None
    while True:
        now = time.monotonic()
        if extra_until is None and (len(out) >= expect or now > deadline):
            extra_until = now + settle
        if extra_until is not None and now > extra_until:
            return out
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            ch.connection.process_data_events(time_limit=0.05)
        else:
            out.append(body)


def expect_channel_close(fn, code):
    try:
        fn()
    except pe.ChannelClosedByBroker as e:
        check(e.reply_code == code, "expected %d, got %d %s" % (code, e.reply_code, e.reply_text))
        return e
    raise AssertionError("expected channel close %d, the call succeeded" % code)


def as_text(v):
    return v.decode() if isinstance(v, bytes) else v


# ---------------------------------------------------------------- scenarios


def s_connect():
    conn = connect()
    try:
        check(conn.is_open, "connection not open")
        ch = conn.channel()
        check(ch.is_open, "channel not open")
        ch.close()
    finally:
        close_quietly(conn)
    check(conn.is_closed, "connection not closed")


def s_wrong_password_refused():
    try:
        conn = connect(password="not-the-password")
    except (pe.ProbableAuthenticationError, pe.AuthenticationError):
        return
    close_quietly(conn)
    raise AssertionError("a wrong password was accepted")


def s_properties_round_trip():
    conn = connect()
    try:
        ch = conn.channel()
        q = name("props")
        ok = ch.queue_declare(q, durable=True)
        check(ok.method.queue == q, "declare-ok names %r" % ok.method.queue)
        headers = {
            "str": "text",
            "int": 42,
            "big": 2**40,
            "neg": -7,
            "bool": True,
            "decimal": decimal.Decimal("3.14"),  # pika cannot encode floats
            "when": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            "bytes": b"\x00\x01\xff",
            "list": [1, "two", {"three": 3}],
            "nested": {"a": {"b": {"c": "deep"}}, "n": 1},
            "none": None,
        }
        props = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            headers=headers,
            delivery_mode=2,
            priority=5,
            correlation_id="corr-123",
            reply_to="reply-queue",
            expiration="60000",
            message_id="msg-456",
            timestamp=1700000000,
            type="order.created",
            app_id="pika-scenarios",
        )
        body = b'{"hello": "world"}'
        ch.basic_publish("", q, body, properties=props)
        ch.basic_publish("", q, body, properties=props)
        _, got, got_body = get_one(ch, q)
        compare_properties("basic.get", props, got, body, got_body)
        # The same through basic.consume (basic.deliver).
        delivered = []
        ch.basic_consume(q, lambda c, m, p, b: delivered.append((p, b)), auto_ack=True)
        deadline = time.monotonic() + 5
        while not delivered and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        check(len(delivered) == 1, "basic.consume delivered %d" % len(delivered))
        compare_properties("basic.deliver", props, delivered[0][0], body, delivered[0][1])
        ch.queue_delete(q)
    finally:
        close_quietly(conn)


def compare_properties(path, props, got, body, got_body):
    check(got_body == body, "%s: body %r" % (path, got_body))
    for attr in (
        "content_type",
        "content_encoding",
        "delivery_mode",
        "priority",
        "correlation_id",
        "reply_to",
        "expiration",
        "message_id",
        "timestamp",
        "type",
        "app_id",
    ):
        a, b = getattr(props, attr), getattr(got, attr)
        check(a == b, "%s: %s: sent %r, got %r" % (path, attr, a, b))
    check(got.headers == props.headers, "%s: headers: sent %r, got %r" % (path, props.headers, got.headers))


def s_confirms_1000_consume_in_order():
    n = 1000
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = name("confirms")
        ch.queue_declare(q, durable=True)
        for i in range(n):
            # With confirms on, basic_publish returns once the broker acked this message.
            ch.basic_publish(
                "", q, b"m-%d" % i, properties=pika.BasicProperties(delivery_mode=2)
            )
        ok = ch.queue_declare(q, passive=True)
        check(ok.method.message_count == n, "declare-ok counts %d" % ok.method.message_count)
        got = []

        def on_msg(c, method, _props, body):
            got.append(body)
            c.basic_ack(method.delivery_tag)

        ch.basic_qos(prefetch_count=100)
        tag = ch.basic_consume(q, on_msg, auto_ack=False)
        deadline = time.monotonic() + 30
        while len(got) < n and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.1)
        check(len(got) == n, "consumed %d of %d" % (len(got), n))
        check(got == [b"m-%d" % i for i in range(n)], "order not kept")
        ch.basic_cancel(tag)
        pump(conn, 0.2)
        ok = ch.queue_declare(q, passive=True)
        check(ok.method.message_count == 0, "%d left after acks" % ok.method.message_count)
        ch.queue_delete(q)
    finally:
        close_quietly(conn)


def s_topic_exchange():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q1, q2 = name("topic-hash"), name("topic-star")
        ch.queue_declare(q1, exclusive=True)
        ch.queue_declare(q2, exclusive=True)
        ch.queue_bind(q1, "amq.topic", routing_key="sensors.#")
        ch.queue_bind(q2, "amq.topic", routing_key="*.temp")
        for key in ("sensors.room1.temp", "sensors.temp", "kitchen.temp", "other.humidity", "sensors"):
            ch.basic_publish("amq.topic", key, key.encode())
        a, b = drain(ch, q1, 3), drain(ch, q2, 2)
        check(a == [b"sensors.room1.temp", b"sensors.temp", b"sensors"], "sensors.# got %r" % a)
        check(b == [b"sensors.temp", b"kitchen.temp"], "*.temp got %r" % b)
    finally:
        close_quietly(conn)


def s_fanout_two_queues():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ex = name("fanout")
        ch.exchange_declare(ex, exchange_type="fanout")
        q1, q2 = name("fan1"), name("fan2")
        for q in (q1, q2):
            ch.queue_declare(q, exclusive=True)
            ch.queue_bind(q, ex)
        ch.basic_publish(ex, "ignored", b"to-all")
        ch.basic_publish(ex, "", b"again")
        for q in (q1, q2):
            got = drain(ch, q, 2)
            check(got == [b"to-all", b"again"], "%s got %r" % (q, got))
        ch.exchange_delete(ex)
    finally:
        close_quietly(conn)


def s_headers_exchange():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        ex = name("headers")
        ch.exchange_declare(ex, exchange_type="headers")
        qany, qall = name("h-any"), name("h-all")
        ch.queue_declare(qany, exclusive=True)
        ch.queue_declare(qall, exclusive=True)
        ch.queue_bind(qany, ex, arguments={"x-match": "any", "a": 1, "b": "two"})
        ch.queue_bind(qall, ex, arguments={"x-match": "all", "a": 1, "b": "two"})
        cases = [
            ({"a": 1}, b"a-only"),
            ({"a": 1, "b": "two"}, b"both"),
            ({"b": "three"}, b"b-wrong"),
            ({"a": 1, "b": "two", "c": True}, b"both-plus"),
            ({"b": "two"}, b"b-only"),
        ]
        for h, body in cases:
            ch.basic_publish(ex, "", body, properties=pika.BasicProperties(headers=h))
        ch.basic_publish(ex, "", b"no-headers")
        got_any, got_all = drain(ch, qany, 4), drain(ch, qall, 2)
        check(got_any == [b"a-only", b"both", b"both-plus", b"b-only"], "x-match any got %r" % got_any)
        check(got_all == [b"both", b"both-plus"], "x-match all got %r" % got_all)
        ch.exchange_delete(ex)
    finally:
        close_quietly(conn)


def s_qos_prefetch_2():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = name("qos")
        ch.queue_declare(q, exclusive=True)
        for i in range(6):
            ch.basic_publish("", q, b"%d" % i)
        ch.basic_qos(prefetch_count=2)
        pending = []
        seen = []

        def on_msg(_c, method, _props, body):
            pending.append(method.delivery_tag)
            seen.append(body)

        def wait_for(n):
            deadline = time.monotonic() + 5
            while len(seen) < n and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.05)
            pump(conn, 0.5)  # time for a delivery beyond the window to show up

        ch.basic_consume(q, on_msg, auto_ack=False)
        wait_for(2)
        check(len(pending) == 2, "%d unacked deliveries with prefetch 2" % len(pending))
        ch.basic_ack(pending.pop(0))
        wait_for(3)
        check(len(pending) == 2, "after one ack: %d unacked, %d seen" % (len(pending), len(seen)))
        check(len(seen) == 3, "after one ack: %d deliveries in all" % len(seen))
        deadline = time.monotonic() + 10
        while len(seen) < 6 and time.monotonic() < deadline:
            check(len(pending) <= 2, "%d unacked deliveries with prefetch 2" % len(pending))
            while pending:
                ch.basic_ack(pending.pop(0))
            conn.process_data_events(time_limit=0.1)
        check(seen == [b"%d" % i for i in range(6)], "deliveries %r" % seen)
    finally:
        close_quietly(conn)


def s_nack_requeue_redelivered():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = name("nack")
        ch.queue_declare(q, exclusive=True)
        ch.basic_publish("", q, b"again")
        method, _, body = get_one(ch, q, auto_ack=False)
        check(not method.redelivered, "first delivery marked redelivered")
        ch.basic_nack(method.delivery_tag, requeue=True)
        got = []

        def on_msg(c, m, _p, b):
            got.append((m.redelivered, b))
            c.basic_ack(m.delivery_tag)

        ch.basic_consume(q, on_msg, auto_ack=False)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        check(got == [(True, b"again")], "after nack(requeue) got %r" % got)
    finally:
        close_quietly(conn)


def s_reject_dead_letter():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        dlx, dlq, q = name("dlx"), name("dlq"), name("dl-src")
        ch.exchange_declare(dlx, exchange_type="fanout")
        ch.queue_declare(dlq, exclusive=True)
        ch.queue_bind(dlq, dlx)
        ch.queue_declare(q, exclusive=True, arguments={"x-dead-letter-exchange": dlx})
        props = pika.BasicProperties(content_type="text/plain", headers={"k": "v"}, message_id="dead-1")
        ch.basic_publish("", q, b"bad message", properties=props)
        method, _, _ = get_one(ch, q, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
        _, p, body = get_one(ch, dlq)
        check(body == b"bad message", "dead-lettered body %r" % body)
        h = p.headers or {}
        check(as_text(h.get("x-first-death-reason")) == "rejected", "headers %r" % h)
        check(as_text(h.get("x-first-death-exchange")) == "", "x-first-death-exchange %r" % h.get("x-first-death-exchange"))
        check(as_text(h.get("x-first-death-queue")) == q, "x-first-death-queue %r" % h.get("x-first-death-queue"))
        check(h.get("k") in ("v", b"v"), "original header lost: %r" % h)
        check(p.message_id == "dead-1", "message_id %r" % p.message_id)
        left = ch.queue_declare(q, passive=True).method.message_count
        check(left == 0, "%d left in the source queue" % left)
        ch.exchange_delete(dlx)
    finally:
        close_quietly(conn)


def s_mandatory_unroutable():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        try:
            ch.basic_publish("", name("nowhere"), b"lost", mandatory=True)
        except pe.UnroutableError as e:
            check(len(e.messages) == 1, "returned %d messages" % len(e.messages))
            ret = e.messages[0]
            check(ret.method.reply_code == 312, "basic.return code %s" % ret.method.reply_code)
            check(ret.body == b"lost", "returned body %r" % ret.body)
        else:
            raise AssertionError("no UnroutableError")
        # The channel stays usable.
        q = name("routable")
        ch.queue_declare(q, exclusive=True)
        ch.basic_publish("", q, b"kept", mandatory=True)
        check(get_one(ch, q)[2] == b"kept", "routable publish lost")
    finally:
        close_quietly(conn)


def s_passive_missing_404():
    conn = connect()
    try:
        ch = conn.channel()
        expect_channel_close(lambda: ch.queue_declare(name("missing"), passive=True), 404)
        check(ch.is_closed, "channel still open after 404")
        check(conn.is_open, "a 404 closed the connection")
        conn.channel().queue_declare(name("after-404"), exclusive=True)
    finally:
        close_quietly(conn)


def s_redeclare_different_args_406():
    conn = connect()
    try:
        ch = conn.channel()
        q = name("args")
        ch.queue_declare(q, exclusive=True, arguments={"x-max-length": 10})
        ch.queue_declare(q, exclusive=True, arguments={"x-max-length": 10})  # same: fine
        ch2 = conn.channel()
        expect_channel_close(
            lambda: ch2.queue_declare(q, exclusive=True, arguments={"x-max-length": 20}), 406
        )
        check(conn.is_open, "a 406 closed the connection")
    finally:
        close_quietly(conn)


def s_exclusive_other_connection_405():
    owner = connect()
    other = None
    try:
        q = name("excl")
        owner.channel().queue_declare(q, exclusive=True)
        other = connect()
        ch = other.channel()
        expect_channel_close(lambda: ch.queue_declare(q, exclusive=True), 405)
        ch = other.channel()
        expect_channel_close(lambda: ch.basic_get(q, auto_ack=True), 405)
        # Closing the owner deletes the queue. As in RabbitMQ the deletion may complete a little
        # after close-ok, so 405 (still there, still exclusive) is retried until a deadline.
        owner.close()
        deadline = time.monotonic() + 5
        while True:
            ch = other.channel()
            try:
                ch.queue_declare(q, passive=True)
                raise AssertionError("after owner close the queue is open to another connection")
            except pe.ChannelClosedByBroker as e:
                if e.reply_code == 404:
                    break
                check(e.reply_code == 405, "after owner close: %d %s" % (e.reply_code, e.reply_text))
            check(time.monotonic() < deadline, "exclusive queue outlived its connection by 5 s")
            pump(other, 0.05)
    finally:
        close_quietly(owner)
        if other is not None:
            close_quietly(other)


def s_purge_and_delete_counts():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = name("purge")
        ch.queue_declare(q)
        for i in range(3):
            ch.basic_publish("", q, b"p%d" % i)
        ok = ch.queue_purge(q)
        check(ok.method.message_count == 3, "purge-ok counts %d" % ok.method.message_count)
        check(ch.queue_declare(q, passive=True).method.message_count == 0, "not empty after purge")
        for i in range(2):
            ch.basic_publish("", q, b"d%d" % i)
        ok = ch.queue_delete(q)
        check(ok.method.message_count == 2, "delete-ok counts %d" % ok.method.message_count)
        expect_channel_close(lambda: ch.queue_declare(q, passive=True), 404)
    finally:
        close_quietly(conn)


def s_tx_commit_rollback():
    conn = connect()
    try:
        ch = conn.channel()
        q = name("tx")
        ch.queue_declare(q, exclusive=True)
        ch.tx_select()
        ch.basic_publish("", q, b"rolled-back")
        ch.tx_rollback()
        check(ch.queue_declare(q, passive=True).method.message_count == 0, "rolled-back publish stored")
        ch.basic_publish("", q, b"c1")
        ch.basic_publish("", q, b"c2")
        check(ch.queue_declare(q, passive=True).method.message_count == 0, "publish visible before commit")
        ch.tx_commit()
        check(ch.queue_declare(q, passive=True).method.message_count == 2, "commit did not store 2")
        # An ack inside a transaction takes effect at commit.
        method, _, body = get_one(ch, q, auto_ack=False)
        check(body == b"c1", "first message %r" % body)
        ch.basic_ack(method.delivery_tag)
        ch.tx_commit()
        ch.close()
        ch = conn.channel()  # closing the channel would requeue c1 had the ack not been committed
        pump(conn, 0.2)
        rest = drain(ch, q, 1)
        check(rest == [b"c2"], "after the committed ack the queue holds %r" % rest)
    finally:
        close_quietly(conn)


def s_large_body_2mib():
    conn = connect()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        q = name("large")
        ch.queue_declare(q, exclusive=True)
        body = bytes(range(256)) * (2 * 1024 * 1024 // 256)
        check(len(body) == 2 * 1024 * 1024, "body size")
        ch.basic_publish("", q, body, properties=pika.BasicProperties(content_type="application/octet-stream"))
        _, p, got = get_one(ch, q, timeout=15)
        check(len(got) == len(body), "got %d bytes" % len(got))
        check(got == body, "body corrupted")
        check(p.content_type == "application/octet-stream", "content_type %r" % p.content_type)
    finally:
        close_quietly(conn)


def s_rpc_reply_to():
    server = connect()
    client = None
    try:
        sch = server.channel()
        rpc_q = name("rpc")
        sch.queue_declare(rpc_q, exclusive=True)

        def on_request(c, method, props, body):
            c.basic_publish(
                "",
                props.reply_to,
                b"reply:" + body,
                properties=pika.BasicProperties(correlation_id=props.correlation_id),
            )
            c.basic_ack(method.delivery_tag)

        sch.basic_qos(prefetch_count=1)
        sch.basic_consume(rpc_q, on_request, auto_ack=False)

        client = connect()
        cch = client.channel()
        reply_q = cch.queue_declare("", exclusive=True).method.queue
        check(reply_q.startswith("amq.gen-"), "server-named queue %r" % reply_q)
        replies = {}

        def on_reply(_c, _m, props, body):
            replies[props.correlation_id] = body

        cch.basic_consume(reply_q, on_reply, auto_ack=True)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for i, cid in enumerate(ids):
            cch.basic_publish(
                "",
                rpc_q,
                b"req%d" % i,
                properties=pika.BasicProperties(reply_to=reply_q, correlation_id=cid),
            )
        deadline = time.monotonic() + 10
        while len(replies) < len(ids) and time.monotonic() < deadline:
            server.process_data_events(time_limit=0.02)
            client.process_data_events(time_limit=0.02)
        check(replies == {cid: b"reply:req%d" % i for i, cid in enumerate(ids)}, "replies %r" % replies)
    finally:
        close_quietly(server)
        if client is not None:
            close_quietly(client)


SCENARIOS = [
    ("connect", s_connect),
    ("wrong_password_refused", s_wrong_password_refused),
    ("properties_round_trip", s_properties_round_trip),
    ("confirms_1000_consume_in_order", s_confirms_1000_consume_in_order),
    ("topic_exchange", s_topic_exchange),
    ("fanout_two_queues", s_fanout_two_queues),
    ("headers_exchange", s_headers_exchange),
    ("qos_prefetch_2", s_qos_prefetch_2),
    ("nack_requeue_redelivered", s_nack_requeue_redelivered),
    ("reject_dead_letter", s_reject_dead_letter),
    ("mandatory_unroutable", s_mandatory_unroutable),
    ("passive_missing_404", s_passive_missing_404),
    ("redeclare_different_args_406", s_redeclare_different_args_406),
    ("exclusive_other_connection_405", s_exclusive_other_connection_405),
    ("purge_and_delete_counts", s_purge_and_delete_counts),
    ("tx_commit_rollback", s_tx_commit_rollback),
    ("large_body_2mib", s_large_body_2mib),
    ("rpc_reply_to", s_rpc_reply_to),
]


def on_alarm(_sig, _frame):
    raise ScenarioTimeout("scenario took over %d s" % SCENARIO_TIMEOUT_S)


def main():
    global PORT
    if len(sys.argv) != 2:
        print("usage: scenarios.py <amqp-port>", file=sys.stderr)
        return 2
    PORT = int(sys.argv[1])
    only = None  # PIKA_SCENARIOS=a,b runs only those (for debugging)
    if os.environ.get("PIKA_SCENARIOS"):
        only = set(os.environ["PIKA_SCENARIOS"].split(","))
    signal.signal(signal.SIGALRM, on_alarm)
    print("pika %s against 127.0.0.1:%d" % (pika.__version__, PORT), flush=True)
    passed = failed = known = 0
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
        elif sname in KNOWN:
            known += 1
            print("known %s: %s [known difference: %s]" % (sname, err, KNOWN[sname]), flush=True)
        else:
            failed += 1
            print("FAIL %s: %s" % (sname, err), flush=True)
    print("pika scenarios took %.1f s, %d known differences" % (time.monotonic() - start, known), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
