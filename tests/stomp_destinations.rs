//! STOMP destinations end to end: `/queue/`, `/topic/` (private and durable subscriptions),
//! `/exchange/`, `/amq/queue/`, `/temp-queue/` with reply-to rewriting.

mod common;

use std::time::Duration;

use common::stomp::{text, StompClient};
use common::TestBroker;
use junction_stomp::{Command, Frame};

#[tokio::test]
async fn queue_destinations_share_messages_between_subscribers() {
    let b = TestBroker::start();
    let mut a = StompClient::connect(b.stomp).await;
    let mut c = StompClient::connect(b.stomp).await;
    a.subscribe(
        "a",
        "/queue/work",
        "client-individual",
        &[("prefetch-count", "1")],
    )
    .await;
    c.subscribe(
        "c",
        "/queue/work",
        "client-individual",
        &[("prefetch-count", "1")],
    )
    .await;
    let mut p = StompClient::connect(b.stomp).await;
    p.publish("/queue/work", b"1", &[]).await;
    p.publish("/queue/work", b"2", &[]).await;
    // Competing consumers: each gets one (prefetch 1, nothing acked yet).
    let (ma, mc) = (a.message().await, c.message().await);
    let mut got = [text(&ma).to_string(), text(&mc).to_string()];
    got.sort();
    assert_eq!(got, ["1", "2"]);
}

#[tokio::test]
async fn auto_ack_subscribers_of_one_queue_take_turns() {
    let b = TestBroker::start();
    let mut a = StompClient::connect(b.stomp).await;
    let mut c = StompClient::connect(b.stomp).await;
    a.subscribe("a", "/queue/turns", "auto", &[]).await;
    c.subscribe("c", "/queue/turns", "auto", &[]).await;
    let mut p = StompClient::connect(b.stomp).await;
    for i in 0..4 {
        p.publish("/queue/turns", format!("{i}").as_bytes(), &[])
            .await;
    }
    // Round robin, one message at a time: two each.
    for s in [&mut a, &mut c] {
        s.message().await;
        s.message().await;
        s.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "probe"))
            .await;
        s.assert_quiet(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn topic_subscriptions_each_get_every_message_and_wildcards_work() {
    let b = TestBroker::start();
    let mut a = StompClient::connect(b.stomp).await;
    let mut c = StompClient::connect(b.stomp).await;
    a.subscribe("t", "/topic/sensors.*.temp", "auto", &[]).await;
    c.subscribe("t", "/topic/sensors.#", "auto", &[]).await;
    let mut p = StompClient::connect(b.stomp).await;
    p.publish("/topic/sensors.kitchen.temp", b"21.5", &[]).await;
    p.publish("/topic/sensors.kitchen.humidity", b"40", &[])
        .await;
    let m = a.message().await;
    assert_eq!(text(&m), "21.5");
    assert_eq!(m.header("destination"), Some("/topic/sensors.kitchen.temp"));
    assert_eq!(text(&c.message().await), "21.5");
    assert_eq!(text(&c.message().await), "40");
    // A topic message with no subscriber is dropped, not queued.
    let mut late = StompClient::connect(b.stomp).await;
    p.publish("/topic/nobody.listens", b"lost", &[]).await;
    late.subscribe("t", "/topic/nobody.listens", "auto", &[])
        .await;
    p.publish("/topic/nobody.listens", b"seen", &[]).await;
    assert_eq!(text(&late.message().await), "seen");
}

#[tokio::test]
async fn unsubscribe_from_a_topic_stops_delivery() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("t", "/topic/news", "auto", &[]).await;
    c.send_with_receipt(Frame::new(Command::Unsubscribe).with_header("id", "t"))
        .await;
    c.publish("/topic/news", b"x", &[]).await;
    c.assert_quiet(Duration::from_millis(300)).await;
    // Unknown subscription id: ERROR then close.
    c.send(Frame::new(Command::Unsubscribe).with_header("id", "t"))
        .await;
    c.expect_error_and_close().await;
}

#[tokio::test]
async fn durable_topic_subscription_survives_reconnect() {
    let b = TestBroker::start();
    let durable = [("durable", "true"), ("auto-delete", "false")];
    let mut c = StompClient::connect_with(b.stomp, Some("1.2"), &[("client-id", "app-1")])
        .await
        .0;
    c.subscribe("d1", "/topic/orders.#", "client-individual", &durable)
        .await;
    c.disconnect().await;
    // Published while the subscriber is away: kept in its durable queue.
    let mut p = StompClient::connect(b.stomp).await;
    p.publish("/topic/orders.eu", b"while away", &[("persistent", "true")])
        .await;
    let mut c = StompClient::connect_with(b.stomp, Some("1.2"), &[("client-id", "app-1")])
        .await
        .0;
    c.subscribe("d1", "/topic/orders.#", "client-individual", &durable)
        .await;
    let m = c.message().await;
    assert_eq!(text(&m), "while away");
    assert_eq!(m.header("persistent"), Some("true"));
    c.ack(Command::Ack, &m, &[]).await;
    // UNSUBSCRIBE with durable:true ends the subscription: its queue is deleted.
    c.send_with_receipt(
        Frame::new(Command::Unsubscribe)
            .with_header("id", "d1")
            .with_header("durable", "true"),
    )
    .await;
    c.disconnect().await;
    p.publish("/topic/orders.eu", b"nobody", &[]).await;
    let mut c = StompClient::connect_with(b.stomp, Some("1.2"), &[("client-id", "app-1")])
        .await
        .0;
    c.subscribe("d1", "/topic/orders.#", "client-individual", &durable)
        .await;
    c.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn exchange_destinations() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("d", "/exchange/amq.direct/blue", "auto", &[])
        .await;
    c.subscribe("f", "/exchange/amq.fanout", "auto", &[]).await;
    let mut p = StompClient::connect(b.stomp).await;
    p.publish("/exchange/amq.direct/blue", b"b", &[]).await;
    p.publish("/exchange/amq.direct/red", b"r", &[]).await;
    p.publish("/exchange/amq.fanout", b"all", &[]).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = c.message().await;
        got.push((
            m.header("subscription").unwrap().to_string(),
            m.header("destination").unwrap().to_string(),
            text(&m).to_string(),
        ));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("d".into(), "/exchange/amq.direct/blue".into(), "b".into()),
            ("f".into(), "/exchange/amq.fanout".into(), "all".into()),
        ]
    );
    // A missing exchange: ERROR (not_found), then close.
    p.send(Frame::send("/exchange/missing/k", "x")).await;
    let err = p.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some("not_found"));
}

#[tokio::test]
async fn amq_queue_uses_existing_queues_only() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    // /queue/ declares it; /amq/queue/ then reaches the same queue.
    c.publish("/queue/existing", b"via queue", &[]).await;
    c.subscribe("s", "/amq/queue/existing", "auto", &[]).await;
    let m = c.message().await;
    assert_eq!(text(&m), "via queue");
    assert_eq!(m.header("destination"), Some("/queue/existing"));
    c.publish("/amq/queue/existing", b"via amq", &[]).await;
    assert_eq!(text(&c.message().await), "via amq");
    // Subscribing to a queue that does not exist is an error.
    c.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "m")
            .with_header("destination", "/amq/queue/missing"),
    )
    .await;
    let err = c.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some("not_found"));
}

#[tokio::test]
async fn temp_queue_reply_to_is_rewritten_and_replies_come_back() {
    let b = TestBroker::start();
    let mut server = StompClient::connect(b.stomp).await;
    server.subscribe("rpc", "/queue/rpc", "auto", &[]).await;
    let mut client = StompClient::connect(b.stomp).await;
    client
        .publish(
            "/queue/rpc",
            b"ping",
            &[
                ("reply-to", "/temp-queue/answers"),
                ("correlation-id", "42"),
            ],
        )
        .await;
    let req = server.message().await;
    let reply_to = req.header("reply-to").unwrap().to_string();
    assert!(reply_to.starts_with("/reply-queue/amq.gen-"), "{reply_to}");
    server
        .publish(&reply_to, b"pong", &[("correlation-id", "42")])
        .await;
    let reply = client.message().await;
    assert_eq!(text(&reply), "pong");
    assert_eq!(reply.header("subscription"), Some("/temp-queue/answers"));
    assert_eq!(reply.header("destination"), Some("/temp-queue/answers"));
    assert_eq!(reply.header("correlation-id"), Some("42"));
    // The same temp queue is reused for the next request.
    client
        .publish(
            "/queue/rpc",
            b"ping2",
            &[("reply-to", "/temp-queue/answers")],
        )
        .await;
    assert_eq!(
        server.message().await.header("reply-to"),
        Some(reply_to.as_str())
    );
    // It goes with the connection: a reply after it closed is not routed anywhere.
    client.disconnect().await;
    let mut probe = StompClient::connect(b.stomp).await;
    let queue = reply_to.trim_start_matches("/reply-queue/");
    // Wait (bounded) until the exclusive queue is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        probe
            .send(
                Frame::new(Command::Subscribe)
                    .with_header("id", "gone")
                    .with_header("destination", format!("/amq/queue/{queue}"))
                    .with_header("receipt", "probe"),
            )
            .await;
        let f = probe.recv().await.expect("an answer");
        if f.command == Command::Error && f.header("message") == Some("resource_locked") {
            // Still held by the closing connection; the ERROR closed the probe: ask again.
            assert!(
                std::time::Instant::now() < deadline,
                "temp queue not deleted"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            probe = StompClient::connect(b.stomp).await;
            continue;
        }
        if f.command == Command::Error {
            // Still there, exclusive to the closing connection: the ERROR closed the probe,
            // so ask again on a new one.
            if f.header("message") == Some("resource_locked") {
                assert!(
                    std::time::Instant::now() < deadline,
                    "temp queue not deleted"
                );
                probe = StompClient::connect(b.stomp).await;
                continue;
            }
            assert_eq!(f.header("message"), Some("not_found"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "temp queue not deleted"
        );
        probe
            .send_with_receipt(Frame::new(Command::Unsubscribe).with_header("id", "gone"))
            .await;
    }
}

#[tokio::test]
async fn bad_destinations_are_errors() {
    let b = TestBroker::start();
    for (dest, message) in [
        ("/nope/x", "Unknown destination"),
        ("queue/x", "Unknown destination"),
        ("/queue/", "Invalid destination"),
        ("/queue/a/b", "Invalid destination"),
        ("/exchange//k", "Invalid destination"),
        ("/topic", "Invalid destination"),
    ] {
        let mut c = StompClient::connect(b.stomp).await;
        c.send(Frame::send(dest, "x").with_header("receipt", "r"))
            .await;
        let err = c.expect_error_and_close().await;
        assert_eq!(err.header("message"), Some(message), "{dest}");
        assert_eq!(err.header("receipt-id"), Some("r"));
    }
}
