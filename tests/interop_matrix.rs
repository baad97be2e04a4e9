//! The interop matrix: for every (publisher protocol, consumer protocol) among AMQP 0-9-1,
//! MQTT 3.1.1, MQTT 5.0, STOMP 1.2 and native, in publish/subscribe and point-to-point form, one
//! message crosses with its body byte-exact and every property the consumer's protocol can
//! express (DESIGN.md §5). Each row of the table is a test; every cell of a row is checked and
//! all failing cells are reported together. Plus competing consumers of four protocols on one
//! queue.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::mqtt::{V4, V5};
use common::stomp::StompClient;
use common::TestBroker;
use futures_lite::StreamExt;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

const WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Amqp,
    Mqtt3,
    Mqtt5,
    Stomp,
    Native,
}

const ALL: [Proto; 5] = [
    Proto::Amqp,
    Proto::Mqtt3,
    Proto::Mqtt5,
    Proto::Stomp,
    Proto::Native,
];

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Amqp => "amqp",
            Proto::Mqtt3 => "mqtt3",
            Proto::Mqtt5 => "mqtt5",
            Proto::Stomp => "stomp",
            Proto::Native => "native",
        }
    }

    /// Whether the protocol carries message properties at all (MQTT 3.1.1 does not).
    fn has_properties(self) -> bool {
        self != Proto::Mqtt3
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A subscription of the consumer's own (AMQP exclusive queue, MQTT subscription, STOMP
    /// `/topic/`, native queue bound to `amq.topic`).
    PubSub,
    /// A shared queue (MQTT: a `$share` group).
    PointToPoint,
}

/// The message of a cell: a body with a NUL, a non-UTF-8 byte and a newline, and properties.
struct Sent {
    body: Vec<u8>,
    content_type: String,
    correlation: String,
    message_id: String,
    header: (String, String),
}

impl Sent {
    fn new(cell: &str) -> Sent {
        let mut body = format!("body of {cell}:").into_bytes();
        body.extend_from_slice(b"\x00\xff\n end");
        Sent {
            body,
            content_type: "application/octet-stream".into(),
            correlation: format!("corr-{cell}"),
            message_id: format!("id-{cell}"),
            header: ("x-cell".into(), cell.to_string()),
        }
    }
}

/// What a consumer saw.
#[derive(Debug, Default)]
struct Got {
    body: Vec<u8>,
    content_type: Option<String>,
    correlation: Option<String>,
    message_id: Option<String>,
    header: Option<String>,
}

#[allow(clippy::large_enum_variant)] // a handful per test
enum Consumer {
    Amqp(lapin::Connection, lapin::Consumer),
    Mqtt3(V4),
    Mqtt5(V5),
    Stomp(StompClient),
    Native(Client, junction_sdk::Consumer),
}

fn amqp_key(cell: &str) -> String {
    format!("matrix.{cell}")
}

fn mqtt_topic(cell: &str) -> String {
    format!("matrix/{cell}")
}

/// Declares a durable queue bound to `amq.topic` with `key` (the point-to-point queue).
async fn shared_queue(b: &TestBroker, queue: &str, key: &str) {
    let conn = common::amqp::connect(b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        queue.into(),
        "amq.topic".into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let _ = conn.close(200, "done".into()).await;
}

async fn subscribe(b: &TestBroker, c: Proto, mode: Mode, cell: &str) -> Consumer {
    let key = amqp_key(cell);
    let queue = format!("matrix-q-{cell}");
    if mode == Mode::PointToPoint && !matches!(c, Proto::Mqtt3 | Proto::Mqtt5) {
        shared_queue(b, &queue, &key).await;
    }
    match c {
        Proto::Amqp => {
            let conn = common::amqp::connect(b).await;
            let ch = conn.create_channel().await.unwrap();
            let q = if mode == Mode::PubSub {
                let q = ch
                    .queue_declare(
                        "".into(),
                        QueueDeclareOptions {
                            exclusive: true,
                            ..Default::default()
                        },
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
                let name = q.name().to_string();
                ch.queue_bind(
                    name.as_str().into(),
                    "amq.topic".into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
                name
            } else {
                queue
            };
            let cons = ch
                .basic_consume(
                    q.as_str().into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            Consumer::Amqp(conn, cons)
        }
        Proto::Mqtt3 | Proto::Mqtt5 => {
            let filter = match mode {
                Mode::PubSub => mqtt_topic(cell),
                Mode::PointToPoint => format!("$share/matrix/{}", mqtt_topic(cell)),
            };
            if c == Proto::Mqtt3 {
                let mut m = V4::connect(b.mqtt, &format!("sub-{cell}")).await;
                m.subscribe(&filter, rumqttc::QoS::AtLeastOnce).await;
                Consumer::Mqtt3(m)
            } else {
                let mut m = V5::connect(b.mqtt, &format!("sub-{cell}")).await;
                m.subscribe(&filter, rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
                    .await;
                Consumer::Mqtt5(m)
            }
        }
        Proto::Stomp => {
            let mut s = StompClient::connect(b.stomp).await;
            let dest = match mode {
                Mode::PubSub => format!("/topic/{key}"),
                Mode::PointToPoint => format!("/amq/queue/{queue}"),
            };
            s.subscribe("1", &dest, "auto", &[]).await;
            Consumer::Stomp(s)
        }
        Proto::Native => {
            let n = Client::connect(ClientOptions::new(b.native.to_string()))
                .await
                .unwrap();
            let q = if mode == Mode::PubSub {
                let q = format!("matrix-own-{cell}");
                n.admin()
                    .declare_queue(junction_sdk::QueueOptions::new(&q))
                    .await
                    .unwrap();
                n.admin().bind(&q, "amq.topic", &key).await.unwrap();
                q
            } else {
                queue
            };
            let cons = n.subscribe(ConsumerOptions::new(&q)).await.unwrap();
            Consumer::Native(n, cons)
        }
    }
}

async fn publish(b: &TestBroker, p: Proto, cell: &str, m: &Sent) {
    let key = amqp_key(cell);
    match p {
        Proto::Amqp => {
            let conn = common::amqp::connect(b).await;
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            let mut headers = FieldTable::default();
            headers.insert(
                ShortString::from(m.header.0.as_str()),
                AMQPValue::LongString(LongString::from(m.header.1.as_str())),
            );
            let props = BasicProperties::default()
                .with_content_type(m.content_type.as_str().into())
                .with_correlation_id(m.correlation.as_str().into())
                .with_message_id(m.message_id.as_str().into())
                .with_delivery_mode(2)
                .with_headers(headers);
            let ok = ch
                .basic_publish(
                    "amq.topic".into(),
                    key.as_str().into(),
                    BasicPublishOptions::default(),
                    &m.body,
                    props,
                )
                .await
                .unwrap()
                .await
                .unwrap();
            assert!(ok.is_ack());
            let _ = conn.close(200, "done".into()).await;
        }
        Proto::Mqtt3 => {
            let mut c = V4::connect(b.mqtt, &format!("pub-{cell}")).await;
            c.client
                .publish(
                    mqtt_topic(cell),
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    m.body.clone(),
                )
                .await
                .unwrap();
            c.until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
                .await;
            c.disconnect().await;
        }
        Proto::Mqtt5 => {
            let mut c = V5::connect(b.mqtt, &format!("pub-{cell}")).await;
            let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
                content_type: Some(m.content_type.clone()),
                correlation_data: Some(Bytes::from(m.correlation.clone())),
                user_properties: vec![
                    ("message-id".into(), m.message_id.clone()),
                    m.header.clone(),
                ],
                ..Default::default()
            };
            c.client
                .publish_with_properties(
                    mqtt_topic(cell),
                    rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                    false,
                    m.body.clone(),
                    props,
                )
                .await
                .unwrap();
            c.until(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)).then_some(()))
                .await;
            c.disconnect().await;
        }
        Proto::Stomp => {
            let mut s = StompClient::connect(b.stomp).await;
            s.publish(
                &format!("/topic/{key}"),
                &m.body,
                &[
                    ("content-type", m.content_type.as_str()),
                    ("correlation-id", m.correlation.as_str()),
                    ("message-id", m.message_id.as_str()),
                    ("persistent", "true"),
                    (m.header.0.as_str(), m.header.1.as_str()),
                ],
            )
            .await;
            s.disconnect().await;
        }
        Proto::Native => {
            let n = Client::connect(ClientOptions::new(b.native.to_string()))
                .await
                .unwrap();
            let msg = Message::new(m.body.clone())
                .content_type(m.content_type.clone())
                .correlation_id(m.correlation.clone())
                .message_id(m.message_id.clone())
                .persistent(true)
                .header(m.header.0.clone(), m.header.1.clone());
            let r = n
                .producer()
                .send(&Destination::exchange("amq.topic", key), msg)
                .await
                .unwrap();
            assert!(r.is_routed(), "{cell}: not routed");
            let _ = n.close().await;
        }
    }
}

async fn receive(c: &mut Consumer) -> Got {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match c {
        Consumer::Amqp(_, cons) => {
            let d = tokio::time::timeout(WAIT, cons.next())
                .await
                .expect("an AMQP delivery in time")
                .expect("open")
                .unwrap();
            let p = &d.properties;
            Got {
                body: d.data.clone(),
                content_type: p.content_type().as_ref().map(|s| s.to_string()),
                correlation: p.correlation_id().as_ref().map(|s| s.to_string()),
                message_id: p.message_id().as_ref().map(|s| s.to_string()),
                header: p.headers().as_ref().and_then(|h| {
                    match h.inner().get(&ShortString::from("x-cell")) {
                        Some(AMQPValue::LongString(s)) => Some(text(s.as_bytes())),
                        _ => None,
                    }
                }),
            }
        }
        Consumer::Mqtt3(m) => Got {
            body: m.publish().await.payload.to_vec(),
            ..Got::default()
        },
        Consumer::Mqtt5(m) => {
            let p = m.publish().await;
            let props = p.properties.unwrap_or_default();
            let user = |k: &str| {
                props
                    .user_properties
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
            };
            Got {
                body: p.payload.to_vec(),
                content_type: props.content_type.clone(),
                correlation: props.correlation_data.as_deref().map(text),
                message_id: user("message-id"),
                header: user("x-cell"),
            }
        }
        Consumer::Stomp(s) => {
            let f = s.message().await;
            let h = |k: &str| f.header(k).map(str::to_string);
            Got {
                body: f.body.to_vec(),
                content_type: h("content-type"),
                correlation: h("correlation-id"),
                message_id: h("amqp-message-id"),
                header: h("x-cell"),
            }
        }
        Consumer::Native(_, cons) => {
            let d = tokio::time::timeout(WAIT, cons.next())
                .await
                .expect("a native delivery in time")
                .expect("open")
                .unwrap();
            let p = &d.properties;
            let got = Got {
                body: d.body.to_vec(),
                content_type: p.content_type.clone(),
                correlation: p.correlation_id.as_deref().map(text),
                message_id: p.message_id.clone(),
                header: p.header("x-cell").map(|v| text(v)),
            };
            d.ack().await.unwrap();
            got
        }
    }
}

async fn close(c: Consumer) {
    match c {
        Consumer::Amqp(conn, _) => {
            let _ = conn.close(200, "done".into()).await;
        }
        Consumer::Mqtt3(m) => m.disconnect().await,
        Consumer::Mqtt5(m) => m.disconnect().await,
        Consumer::Stomp(s) => s.disconnect().await,
        Consumer::Native(n, _) => {
            let _ = n.close().await;
        }
    }
}

/// One cell: returns what differs from what was sent (empty: green).
async fn cell(b: &TestBroker, p: Proto, c: Proto, mode: Mode) -> Vec<String> {
    let m_name = match mode {
        Mode::PubSub => "ps",
        Mode::PointToPoint => "p2p",
    };
    let id = format!("{}-{}-{m_name}", p.name(), c.name());
    let sent = Sent::new(&id);
    let mut consumer = subscribe(b, c, mode, &id).await;
    publish(b, p, &id, &sent).await;
    let got = receive(&mut consumer).await;
    close(consumer).await;
    let mut bad = Vec::new();
    if got.body != sent.body {
        bad.push(format!("{id}: body {:?}", got.body));
    }
    if p.has_properties() && c.has_properties() {
        let expect = [
            ("content-type", &got.content_type, &sent.content_type),
            ("correlation-id", &got.correlation, &sent.correlation),
            ("message-id", &got.message_id, &sent.message_id),
            ("header x-cell", &got.header, &sent.header.1),
        ];
        for (what, g, s) in expect {
            if g.as_deref() != Some(s.as_str()) {
                bad.push(format!("{id}: {what} {g:?}, sent {s:?}"));
            }
        }
    }
    bad
}

/// One row: a publisher protocol against every consumer protocol, both modes.
async fn row(p: Proto) {
    let b = TestBroker::start();
    let mut bad = Vec::new();
    for c in ALL {
        for mode in [Mode::PubSub, Mode::PointToPoint] {
            bad.extend(cell(&b, p, c, mode).await);
        }
    }
    assert!(bad.is_empty(), "red cells:\n{}", bad.join("\n"));
}

#[tokio::test]
async fn from_amqp() {
    row(Proto::Amqp).await;
}

#[tokio::test]
async fn from_mqtt_3_1_1() {
    row(Proto::Mqtt3).await;
}

#[tokio::test]
async fn from_mqtt_5() {
    row(Proto::Mqtt5).await;
}

#[tokio::test]
async fn from_stomp() {
    row(Proto::Stomp).await;
}

#[tokio::test]
async fn from_native() {
    row(Proto::Native).await;
}

#[tokio::test]
async fn four_protocols_compete_on_one_queue() {
    // An MQTT `$share` group's queue, consumed also by AMQP, STOMP and native workers: each
    // message goes to exactly one of the four.
    let b = TestBroker::start();
    let mut mqtt = V5::connect(b.mqtt, "member").await;
    mqtt.subscribe(
        "$share/crew/jobs/#",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
    )
    .await;
    let queue = "mqtt-share/crew/jobs/#";
    let mut amqp = match subscribe_named(&b, Proto::Amqp, queue).await {
        Consumer::Amqp(c, k) => (c, k),
        _ => unreachable!(),
    };
    let mut stomp = StompClient::connect(b.stomp).await;
    // STOMP destinations percent-encode `/` inside a name, as RabbitMQ's do.
    stomp
        .subscribe(
            "1",
            "/amq/queue/mqtt-share%2Fcrew%2Fjobs%2F%23",
            "auto",
            &[],
        )
        .await;
    let n = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    let mut native = n.subscribe(ConsumerOptions::new(queue)).await.unwrap();

    let total = 60;
    let p = V5::connect(b.mqtt, "dispatcher").await;
    for i in 0..total {
        p.client
            .publish(
                format!("jobs/{i}"),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                format!("{i}"),
            )
            .await
            .unwrap();
    }
    let mut seen = std::collections::BTreeMap::new();
    let mut by = [0usize; 4];
    while seen.len() < total {
        let (who, body) = tokio::select! {
            m = mqtt.publish() => (0, String::from_utf8_lossy(&m.payload).into_owned()),
            d = amqp.1.next() => (1, String::from_utf8_lossy(&d.expect("open").unwrap().data).into_owned()),
            f = stomp.message() => (2, String::from_utf8_lossy(&f.body).into_owned()),
            d = native.next() => {
                let d = d.expect("open").unwrap();
                d.ack().await.unwrap();
                (3, String::from_utf8_lossy(&d.body).into_owned())
            }
            () = tokio::time::sleep(WAIT) => panic!("stalled at {} of {total}: {by:?}", seen.len()),
        };
        by[who] += 1;
        assert!(
            seen.insert(body.clone(), who).is_none(),
            "{body} delivered twice"
        );
    }
    assert_eq!(by.iter().sum::<usize>(), total);
    assert!(
        by.iter().filter(|n| **n > 0).count() >= 3,
        "work was shared: {by:?}"
    );
}

async fn subscribe_named(b: &TestBroker, c: Proto, queue: &str) -> Consumer {
    assert_eq!(c, Proto::Amqp);
    let conn = common::amqp::connect(b).await;
    let ch = conn.create_channel().await.unwrap();
    let cons = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    Consumer::Amqp(conn, cons)
}
