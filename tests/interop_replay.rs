//! Replay from any protocol: one stored queue, written by four protocols, read again from the
//! first message, an offset, the last message, a time, or from now on, by AMQP
//! (`x-stream-offset` consume argument), STOMP (`x-stream-offset` header), MQTT 5 (`$queue/`
//! subscription with the `x-stream-offset` user property) and the native SDK (start position),
//! without taking the messages from the queue's own consumers.

mod common;

use std::time::Duration;

use common::mqtt::{V4, V5};
use common::stomp::{text, StompClient};
use common::TestBroker;
use futures_lite::StreamExt;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, StartPosition};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use rumqttc::v5::mqttbytes::v5::{Packet as V5Packet, SubscribeProperties};

const WAIT: Duration = Duration::from_secs(20);

/// Fills queue `events` (bound to `amq.topic` with `events.#`) with five messages from four
/// protocols, in this order.
async fn fill(b: &TestBroker) -> Vec<String> {
    let conn = common::amqp::connect(b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "events".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "events".into(),
        "amq.topic".into(),
        "events.#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let amqp = |body: &'static str| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "amq.topic".into(),
                "events.amqp".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    };
    amqp("e0").await;
    let mut m = V4::connect(b.mqtt, "writer").await;
    m.client
        .publish("events/mqtt", rumqttc::QoS::AtLeastOnce, false, "e1")
        .await
        .unwrap();
    m.until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    let mut s = StompClient::connect(b.stomp).await;
    s.publish("/topic/events.stomp", b"e2", &[("persistent", "true")])
        .await;
    let n = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    n.producer()
        .send(
            &Destination::exchange("amq.topic", "events.native"),
            Message::new("e3"),
        )
        .await
        .unwrap();
    amqp("e4").await;
    ["e0", "e1", "e2", "e3", "e4"].map(str::to_string).to_vec()
}

async fn amqp_replay(b: &TestBroker, offset: AMQPValue, n: usize) -> Vec<String> {
    let conn = common::amqp::connect(b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(100, BasicQosOptions::default()).await.unwrap();
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-stream-offset"), offset);
    let mut c = ch
        .basic_consume(
            "events".into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..n {
        let d = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("a replayed message in time")
            .expect("open")
            .unwrap();
        got.push(String::from_utf8_lossy(&d.data).into_owned());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    common::amqp::nothing(&mut c, 300).await;
    let _ = conn.close(200, "done".into()).await;
    got
}

#[tokio::test]
async fn every_protocol_replays_the_same_log() {
    let b = TestBroker::start();
    let all = fill(&b).await;

    // AMQP: first, an offset, last, an interval back in time.
    let text_arg = |s: &str| AMQPValue::LongString(LongString::from(s));
    assert_eq!(amqp_replay(&b, text_arg("first"), 5).await, all);
    assert_eq!(
        amqp_replay(&b, AMQPValue::LongLongInt(3), 2).await,
        all[3..]
    );
    assert_eq!(amqp_replay(&b, text_arg("last"), 1).await, all[4..]);
    assert_eq!(amqp_replay(&b, text_arg("10m"), 5).await, all);

    // STOMP.
    let mut s = StompClient::connect(b.stomp).await;
    s.subscribe(
        "r",
        "/amq/queue/events",
        "client-individual",
        &[("x-stream-offset", "first")],
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..5 {
        let m = s.message().await;
        got.push(text(&m).to_string());
        s.ack(junction_stomp::Command::Ack, &m, &[]).await;
    }
    assert_eq!(got, all);

    // MQTT 5: `$queue/events` with the user property; messages keep their topics.
    let mut m = V5::connect(b.mqtt, "replayer").await;
    m.client
        .subscribe_with_properties(
            "$queue/events",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            SubscribeProperties {
                id: None,
                user_properties: vec![("x-stream-offset".into(), "first".into())],
            },
        )
        .await
        .unwrap();
    m.until(|p| matches!(p, V5Packet::SubAck(_)).then_some(()))
        .await;
    let mut got = Vec::new();
    let mut topics = Vec::new();
    for _ in 0..5 {
        let p = m.publish().await;
        got.push(String::from_utf8_lossy(&p.payload).into_owned());
        topics.push(String::from_utf8_lossy(&p.topic).into_owned());
    }
    assert_eq!(got, all);
    assert_eq!(
        topics,
        [
            "events/amqp",
            "events/mqtt",
            "events/stomp",
            "events/native",
            "events/amqp"
        ]
    );

    // Native SDK: a group of its own from the earliest message.
    let n = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    let mut c = n
        .subscribe(
            ConsumerOptions::new("events")
                .group("audit")
                .start(StartPosition::Earliest),
        )
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..5 {
        let d = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("in time")
            .expect("open")
            .unwrap();
        got.push(String::from_utf8_lossy(&d.body).into_owned());
        d.ack().await.unwrap();
    }
    assert_eq!(got, all);

    // None of that consumed the queue: its own consumers still get all five.
    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    let mut plain = common::amqp::consumer(&ch, "events", true).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(String::from_utf8_lossy(&common::amqp::next(&mut plain).await.data).into_owned());
    }
    assert_eq!(got, all);
}

#[tokio::test]
async fn next_replays_only_new_messages_and_bad_offsets_are_refused() {
    let b = TestBroker::start();
    let all = fill(&b).await;
    assert_eq!(all.len(), 5);
    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-stream-offset"),
        AMQPValue::LongString(LongString::from("next")),
    );
    let mut c = ch
        .basic_consume(
            "events".into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .unwrap();
    common::amqp::nothing(&mut c, 300).await;
    common::amqp::publish(&ch, "amq.topic", "events.new", b"fresh").await;
    assert_eq!(&common::amqp::next(&mut c).await.data[..], b"fresh");

    // A bad offset: 406 PRECONDITION_FAILED on the channel.
    let ch2 = conn.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-stream-offset"),
        AMQPValue::LongString(LongString::from("yesterday")),
    );
    let e = ch2
        .basic_consume(
            "events".into(),
            "".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await
        .expect_err("refused");
    assert_eq!(common::amqp::code(&e), Some(406));

    // STOMP: an ERROR frame.
    let mut s = StompClient::connect(b.stomp).await;
    let mut f = junction_stomp::Frame::new(junction_stomp::Command::Subscribe)
        .with_header("id", "x")
        .with_header("destination", "/amq/queue/events")
        .with_header("x-stream-offset", "whenever");
    f.push_header("receipt", "r");
    s.send(f).await;
    let e = s.expect_error_and_close().await;
    assert!(e
        .header("message")
        .is_some_and(|m| m.contains("x-stream-offset")));
}
