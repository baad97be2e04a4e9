//! Cross-protocol: STOMP <-> AMQP 0-9-1 (lapin) and STOMP <-> native (junction-sdk), with the
//! properties mapped per `docs/STOMP.md` (DESIGN.md §5), both ways.

mod common;

use std::time::Duration;

use common::amqp::WAIT;
use common::stomp::{text, StompClient};
use common::TestBroker;
use futures_lite::StreamExt;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, QueueOptions};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

async fn native(b: &TestBroker) -> Client {
    Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap()
}

#[tokio::test]
async fn stomp_send_to_a_topic_reaches_an_amqp_consumer_with_properties_mapped() {
    let b = TestBroker::start();
    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    let q = common::amqp::declare(&ch, "from-stomp").await;
    ch.queue_bind(
        q.as_str().into(),
        "amq.topic".into(),
        "sensors.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut cons = ch
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let mut s = StompClient::connect(b.stomp).await;
    s.publish(
        "/topic/sensors.kitchen",
        b"\x00binary\x00",
        &[
            ("content-type", "application/octet-stream"),
            ("content-encoding", "identity"),
            ("correlation-id", "req-7"),
            ("reply-to", "/queue/answers"),
            ("message-id", "s-1"),
            ("expiration", "60000"),
            ("priority", "3"),
            ("persistent", "true"),
            ("timestamp", "1700000000"),
            ("region", "eu"),
        ],
    )
    .await;
    let d = tokio::time::timeout(WAIT, cons.next())
        .await
        .expect("a delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&d.data[..], b"\x00binary\x00");
    assert_eq!(d.exchange.as_str(), "amq.topic");
    assert_eq!(d.routing_key.as_str(), "sensors.kitchen");
    let p = &d.properties;
    let s = |v: &Option<ShortString>| v.as_ref().map(|s| s.as_str().to_string());
    assert_eq!(
        s(p.content_type()).as_deref(),
        Some("application/octet-stream")
    );
    assert_eq!(s(p.content_encoding()).as_deref(), Some("identity"));
    assert_eq!(s(p.correlation_id()).as_deref(), Some("req-7"));
    assert_eq!(s(p.reply_to()).as_deref(), Some("/queue/answers"));
    assert_eq!(s(p.message_id()).as_deref(), Some("s-1"));
    assert_eq!(s(p.expiration()).as_deref(), Some("60000"));
    assert_eq!(*p.priority(), Some(3));
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(*p.timestamp(), Some(1_700_000_000));
    let region = p
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("region").cloned());
    assert!(
        matches!(&region, Some(AMQPValue::LongString(v)) if v.to_string() == "eu"),
        "{region:?}"
    );
    d.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn amqp_publish_reaches_a_stomp_subscriber_with_headers_mapped() {
    let b = TestBroker::start();
    let mut s = StompClient::connect(b.stomp).await;
    s.subscribe("q", "/queue/to-stomp", "client-individual", &[])
        .await;
    s.subscribe("t", "/topic/alerts.#", "auto", &[]).await;

    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("region"),
        AMQPValue::LongString(LongString::from("us")),
    );
    headers.insert(ShortString::from("count"), AMQPValue::LongInt(5));
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("c-1".into())
        .with_reply_to("replies".into())
        .with_message_id("a-1".into())
        .with_expiration("30000".into())
        .with_priority(4)
        .with_delivery_mode(2)
        .with_headers(headers);
    for (exchange, key) in [("", "to-stomp"), ("amq.topic", "alerts.fire")] {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            b"from amqp",
            props.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(s.message().await);
    }
    got.sort_by(|a, b| a.header("subscription").cmp(&b.header("subscription")));
    let (q, t) = (&got[0], &got[1]);
    assert_eq!(q.header("destination"), Some("/queue/to-stomp"));
    assert_eq!(t.header("destination"), Some("/topic/alerts.fire"));
    for m in [q, t] {
        assert_eq!(text(m), "from amqp");
        assert_eq!(m.header("content-type"), Some("text/plain"));
        assert_eq!(m.header("correlation-id"), Some("c-1"));
        assert_eq!(m.header("reply-to"), Some("replies"));
        assert_eq!(m.header("amqp-message-id"), Some("a-1"));
        assert_eq!(m.header("expiration"), Some("30000"));
        assert_eq!(m.header("priority"), Some("4"));
        assert_eq!(m.header("persistent"), Some("true"));
        assert_eq!(m.header("region"), Some("us"));
        assert_eq!(m.header("count"), Some("5"));
    }
    s.ack(junction_stomp::Command::Ack, q, &[]).await;
}

#[tokio::test]
async fn stomp_and_native_exchange_messages_both_ways() {
    let b = TestBroker::start();
    let n = native(&b).await;
    n.admin()
        .declare_queue(QueueOptions::new("native-in"))
        .await
        .unwrap();
    n.admin()
        .bind("native-in", "amq.topic", "jobs.*")
        .await
        .unwrap();
    let mut cons = n
        .subscribe(ConsumerOptions::new("native-in"))
        .await
        .unwrap();

    // STOMP -> native.
    let mut s = StompClient::connect(b.stomp).await;
    s.publish(
        "/topic/jobs.new",
        b"job 1",
        &[
            ("content-type", "text/plain"),
            ("correlation-id", "j-1"),
            ("message-id", "s-9"),
            ("persistent", "true"),
            ("x-team", "blue"),
        ],
    )
    .await;
    let d = tokio::time::timeout(WAIT, cons.next())
        .await
        .expect("a delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&d.body[..], b"job 1");
    assert_eq!(d.routing_key.as_str(), "jobs.new");
    let p = &d.properties;
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.correlation_id.as_deref(), Some(&b"j-1"[..]));
    assert_eq!(p.message_id.as_deref(), Some("s-9"));
    assert!(p.persistent);
    assert_eq!(p.header("x-team").map(|v| &v[..]), Some(&b"blue"[..]));
    d.ack().await.unwrap();

    // native -> STOMP.
    s.subscribe("n", "/queue/from-native", "auto", &[]).await;
    let msg = Message::new("hello stomp")
        .content_type("text/plain")
        .correlation_id("c-2")
        .reply_to("/queue/back")
        .message_id("n-2")
        .ttl(Duration::from_secs(60))
        .header("x-team", "red");
    n.producer()
        .send(&Destination::exchange("", "from-native"), msg)
        .await
        .unwrap();
    let m = s.message().await;
    assert_eq!(text(&m), "hello stomp");
    assert_eq!(m.header("destination"), Some("/queue/from-native"));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert_eq!(m.header("correlation-id"), Some("c-2"));
    assert_eq!(m.header("reply-to"), Some("/queue/back"));
    assert_eq!(m.header("amqp-message-id"), Some("n-2"));
    assert_eq!(m.header("expiration"), Some("60000"));
    assert_eq!(m.header("x-team"), Some("red"));
}
