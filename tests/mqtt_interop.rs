//! Cross-protocol with MQTT: a device's publish to `sensors/1/temp` reaches an AMQP consumer
//! bound with `sensors.#` and a native consumer; AMQP and native publishes to `amq.topic` reach
//! MQTT subscribers; properties map per DESIGN.md §5 both ways.

mod common;

use bytes::Bytes;
use common::amqp::WAIT;
use common::mqtt::{V4, V5};
use common::TestBroker;
use futures_lite::StreamExt;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, QueueOptions};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;

async fn amqp_queue_bound(
    b: &TestBroker,
    queue: &str,
    key: &str,
) -> (lapin::Connection, lapin::Consumer) {
    let conn = common::amqp::connect(b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
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
    (conn, cons)
}

#[tokio::test]
async fn mqtt_publish_reaches_amqp_and_native_consumers_with_properties() {
    let b = TestBroker::start();
    let (_conn, mut amqp) = amqp_queue_bound(&b, "workers", "sensors.#").await;
    let n = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    n.admin()
        .declare_queue(QueueOptions::new("stream-in"))
        .await
        .unwrap();
    n.admin()
        .bind("stream-in", "amq.topic", "sensors.*.temp")
        .await
        .unwrap();
    let mut native = n
        .subscribe(ConsumerOptions::new("stream-in"))
        .await
        .unwrap();

    let dev = V5::connect(b.mqtt, "sensor-1").await;
    let props = PublishProperties {
        content_type: Some("application/json".into()),
        correlation_data: Some(Bytes::from_static(b"req-7")),
        response_topic: Some("replies/sensor-1".into()),
        message_expiry_interval: Some(60),
        user_properties: vec![
            ("message-id".into(), "m-42".into()),
            ("unit".into(), "celsius".into()),
        ],
        ..Default::default()
    };
    dev.client
        .publish_with_properties("sensors/1/temp", QoS::AtLeastOnce, false, "21.5", props)
        .await
        .unwrap();

    let d = tokio::time::timeout(WAIT, amqp.next())
        .await
        .expect("delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&d.data[..], b"21.5");
    assert_eq!(d.routing_key.as_str(), "sensors.1.temp");
    let p = &d.properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        p.correlation_id().as_ref().map(|s| s.as_str()),
        Some("req-7")
    );
    assert_eq!(
        p.reply_to().as_ref().map(|s| s.as_str()),
        Some("replies.sensor-1")
    );
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("m-42"));
    assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("60000"));
    assert_eq!(*p.delivery_mode(), Some(2), "QoS 1 is persistent");
    let h = p.headers().as_ref().expect("headers");
    assert_eq!(
        h.inner().get(&ShortString::from("unit")),
        Some(&AMQPValue::LongString(LongString::from("celsius")))
    );
    assert!(
        h.inner()
            .contains_key(&ShortString::from("x-mqtt-publish-qos")),
        "the publish QoS travels as RabbitMQ's header"
    );

    let m = tokio::time::timeout(WAIT, native.next())
        .await
        .expect("native delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&m.body[..], b"21.5");
    assert_eq!(m.routing_key, "sensors.1.temp");
    assert_eq!(
        m.properties.content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(m.properties.correlation_id.as_deref(), Some(&b"req-7"[..]));
    assert_eq!(m.properties.message_id.as_deref(), Some("m-42"));
    assert_eq!(
        m.properties.header("unit").map(|v| &v[..]),
        Some(&b"celsius"[..])
    );
    m.ack().await.unwrap();
    dev.disconnect().await;
}

#[tokio::test]
async fn amqp_and_native_publishes_reach_mqtt_subscribers() {
    let b = TestBroker::start();
    let mut v5 = V5::connect(b.mqtt, "panel").await;
    v5.subscribe("cmd/#", QoS::ExactlyOnce).await;
    let mut v4 = V4::connect(b.mqtt, "old-panel").await;
    v4.subscribe("cmd/+", rumqttc::QoS::ExactlyOnce).await;

    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("origin"),
        AMQPValue::LongString(LongString::from("ops")),
    );
    let props = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_correlation_id("c-1".into())
        .with_reply_to("answers.panel".into())
        .with_message_id("a-1".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    ch.basic_publish(
        "amq.topic".into(),
        "cmd.reboot".into(),
        BasicPublishOptions::default(),
        b"now",
        props,
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let m = v5.publish().await;
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (&b"cmd/reboot"[..], &b"now"[..])
    );
    assert_eq!(
        m.qos,
        QoS::AtLeastOnce,
        "persistent AMQP messages arrive at QoS 1"
    );
    let p = m.properties.expect("properties");
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"c-1"[..]));
    assert_eq!(p.response_topic.as_deref(), Some("answers/panel"));
    assert!(p
        .user_properties
        .contains(&("message-id".into(), "a-1".into())));
    assert!(p.user_properties.contains(&("origin".into(), "ops".into())));
    let m = v4.publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("cmd/reboot", &b"now"[..])
    );

    // Transient AMQP messages arrive at QoS 0.
    ch.basic_publish(
        "amq.topic".into(),
        "cmd.ping".into(),
        BasicPublishOptions::default(),
        b"p",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert_eq!(v5.publish().await.qos, QoS::AtMostOnce);
    assert_eq!(v4.publish().await.qos, rumqttc::QoS::AtMostOnce);

    // Native.
    let n = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    let r = n
        .producer()
        .send(
            &Destination::exchange("amq.topic", "cmd.update"),
            Message::new("v2")
                .content_type("text/plain")
                .persistent(true)
                .header("k", "v"),
        )
        .await
        .unwrap();
    assert!(r.is_routed());
    let m = v5.publish().await;
    assert_eq!(&m.topic[..], b"cmd/update");
    let p = m.properties.expect("properties");
    assert!(p.user_properties.contains(&("k".into(), "v".into())));
    assert_eq!(v4.publish().await.topic, "cmd/update");

    // A retained message set from AMQP (header x-retain) is handed to new MQTT subscribers.
    let mut headers = FieldTable::default();
    headers.insert(ShortString::from("x-retain"), AMQPValue::Boolean(true));
    ch.basic_publish(
        "amq.topic".into(),
        "state.door".into(),
        BasicPublishOptions::default(),
        b"closed",
        BasicProperties::default().with_headers(headers),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut late = V4::connect(b.mqtt, "late").await;
    late.subscribe("state/#", rumqttc::QoS::AtLeastOnce).await;
    let r = late.publish().await;
    assert!(r.retain);
    assert_eq!(
        (r.topic.as_str(), &r.payload[..]),
        ("state/door", &b"closed"[..])
    );
}

#[tokio::test]
async fn mqtt_shared_subscription_and_amqp_worker_compete_on_one_queue() {
    // An AMQP worker consuming the group's queue competes with the MQTT group members.
    let b = TestBroker::start();
    let mut m = V5::connect(b.mqtt, "member").await;
    m.subscribe("$share/g/jobs/#", QoS::AtLeastOnce).await;
    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    let mut worker = ch
        .basic_consume(
            "mqtt-share/g/jobs/#".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let p = V5::connect(b.mqtt, "p").await;
    let n = 20;
    for i in 0..n {
        p.client
            .publish(format!("jobs/{i}"), QoS::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let (mut to_mqtt, mut to_amqp) = (0, 0);
    while seen.len() < n {
        tokio::select! {
            d = m.publish() => {
                to_mqtt += 1;
                assert!(seen.insert(String::from_utf8_lossy(&d.payload).into_owned()));
            }
            d = worker.next() => {
                let d = d.expect("open").unwrap();
                to_amqp += 1;
                assert!(seen.insert(String::from_utf8_lossy(&d.data).into_owned()));
            }
        }
    }
    assert_eq!(to_mqtt + to_amqp, n);
    assert!(to_mqtt > 0 && to_amqp > 0, "{to_mqtt} / {to_amqp}");
}

#[tokio::test]
async fn stomp_and_mqtt_meet_on_amq_topic() {
    use common::stomp::{text, StompClient};
    let b = TestBroker::start();
    // STOMP /topic/sensors.* <- MQTT publish to sensors/kitchen, with properties.
    let mut page = StompClient::connect(b.stomp).await;
    page.subscribe("1", "/topic/sensors.*", "auto", &[]).await;
    let dev = V5::connect(b.mqtt, "kitchen").await;
    let props = PublishProperties {
        content_type: Some("text/plain".into()),
        correlation_data: Some(Bytes::from_static(b"corr-1")),
        user_properties: vec![("room".into(), "kitchen".into())],
        ..Default::default()
    };
    dev.client
        .publish_with_properties("sensors/kitchen", QoS::AtLeastOnce, false, "19.0", props)
        .await
        .unwrap();
    let m = page.message().await;
    assert_eq!(text(&m), "19.0");
    assert_eq!(m.header("destination"), Some("/topic/sensors.kitchen"));
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert_eq!(m.header("correlation-id"), Some("corr-1"));
    assert_eq!(m.header("room"), Some("kitchen"));
    assert_eq!(m.header("persistent"), Some("true"), "QoS 1 is persistent");

    // MQTT cmd/# <- STOMP SEND /topic/cmd.kitchen with headers.
    let mut panel = V5::connect(b.mqtt, "panel").await;
    panel.subscribe("cmd/#", QoS::AtLeastOnce).await;
    let mut v4 = V4::connect(b.mqtt, "old").await;
    v4.subscribe("cmd/+", rumqttc::QoS::AtLeastOnce).await;
    page.publish(
        "/topic/cmd.kitchen",
        b"lights-off",
        &[
            ("content-type", "text/plain"),
            ("persistent", "true"),
            ("reply-to", "/topic/acks.kitchen"),
            ("who", "web"),
        ],
    )
    .await;
    let m = panel.publish().await;
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (&b"cmd/kitchen"[..], &b"lights-off"[..])
    );
    assert_eq!(m.qos, QoS::AtLeastOnce);
    let p = m.properties.expect("properties");
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert!(p.user_properties.contains(&("who".into(), "web".into())));
    let m = v4.publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("cmd/kitchen", &b"lights-off"[..])
    );
}
