//! MQTT 5.0 features against the real broker: properties, subscription identifiers and
//! options, topic aliases both ways, maximum packet size, receive maximum, message expiry,
//! server keep alive, response information, reason codes.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::mqtt::{connect_packet, v5_options, Raw, V5};
use common::TestBroker;
use junction_mqtt::{
    Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS as Q, ReasonCode,
    RetainHandling, Subscribe, Subscription, SubscriptionOptions,
};
use rumqttc::v5::mqttbytes::v5::{
    Filter, PublishProperties, RetainForwardRule, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;

fn sub_packet(id: u16, filter: &str, options: SubscriptionOptions) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: id,
        properties: Default::default(),
        subscriptions: vec![Subscription {
            filter: filter.into(),
            options,
        }],
    })
}

fn pub_packet(
    topic: &str,
    qos: Q,
    id: Option<u16>,
    props: Properties,
    body: &'static [u8],
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: id,
        properties: props,
        payload: Bytes::from_static(body),
    })
}

fn opts(qos: Q) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        ..Default::default()
    }
}

async fn suback(raw: &mut Raw) -> Vec<ReasonCode> {
    match raw.recv().await {
        Some(Packet::SubAck(a)) => a.codes,
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

async fn next_publish(raw: &mut Raw) -> Publish {
    match raw.recv_skip_ping().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_properties_and_subscription_identifiers_arrive() {
    let b = TestBroker::start();
    let mut s = V5::connect(b.mqtt, "s").await;
    s.client
        .subscribe_with_properties(
            "req/#",
            QoS::AtLeastOnce,
            SubscribeProperties {
                id: Some(42),
                user_properties: vec![],
            },
        )
        .await
        .unwrap();
    s.until(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)).then_some(()))
        .await;
    let p = V5::connect(b.mqtt, "p").await;
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        topic_alias: None,
        response_topic: Some("resp/p".into()),
        correlation_data: Some(Bytes::from_static(b"\x00corr")),
        user_properties: vec![
            ("trace".into(), "abc".into()),
            ("trace".into(), "def".into()),
        ],
        subscription_identifiers: vec![],
        content_type: Some("application/json".into()),
    };
    p.client
        .publish_with_properties("req/1", QoS::AtLeastOnce, false, "{\"a\":1}", props.clone())
        .await
        .unwrap();
    let m = s.publish().await;
    let got = m.properties.expect("properties");
    assert_eq!(got.payload_format_indicator, Some(1));
    assert!(got
        .message_expiry_interval
        .is_some_and(|e| e <= 3600 && e > 3500));
    assert_eq!(got.response_topic.as_deref(), Some("resp/p"));
    assert_eq!(got.correlation_data, props.correlation_data);
    assert_eq!(got.content_type, props.content_type);
    assert_eq!(
        got.user_properties, props.user_properties,
        "in order, repeats kept"
    );
    assert_eq!(got.subscription_identifiers, vec![42]);
}

#[tokio::test]
async fn no_local_retain_as_published_and_retain_handling() {
    let b = TestBroker::start();
    let mut c = V5::connect(b.mqtt, "c").await;
    c.client
        .subscribe_many([
            Filter {
                path: "chat/room".into(),
                qos: QoS::AtLeastOnce,
                nolocal: true,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::OnEverySubscribe,
            },
            Filter {
                path: "rap/#".into(),
                qos: QoS::AtLeastOnce,
                nolocal: false,
                preserve_retain: true,
                retain_forward_rule: RetainForwardRule::OnEverySubscribe,
            },
        ])
        .await
        .unwrap();
    c.until(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)).then_some(()))
        .await;
    // No Local: its own message does not come back; another client's does.
    c.client
        .publish("chat/room", QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    let other = V5::connect(b.mqtt, "other").await;
    other
        .client
        .publish("chat/room", QoS::AtLeastOnce, false, "theirs")
        .await
        .unwrap();
    assert_eq!(&c.publish().await.payload[..], b"theirs");
    // Retain As Published: a live retained message keeps RETAIN.
    other
        .client
        .publish("rap/x", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    let m = c.publish().await;
    assert!(m.retain, "retain as published");

    // Retain Handling 1: retained messages only for a new subscription; 2: never.
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "rh", true)).await;
    let rh = |h| SubscriptionOptions {
        qos: Q::AtLeastOnce,
        retain_handling: h,
        ..Default::default()
    };
    raw.send(&sub_packet(1, "rap/x", rh(RetainHandling::SendIfNew)))
        .await;
    suback(&mut raw).await;
    let p = next_publish(&mut raw).await;
    assert!(p.retain);
    raw.send(&Packet::PubAck(PubResponse {
        packet_id: p.packet_id.unwrap(),
        ..Default::default()
    }))
    .await;
    raw.send(&sub_packet(2, "rap/x", rh(RetainHandling::SendIfNew)))
        .await;
    suback(&mut raw).await;
    raw.send(&sub_packet(3, "rap/+", rh(RetainHandling::DoNotSend)))
        .await;
    suback(&mut raw).await;
    raw.quiet().await;
}

#[tokio::test]
async fn topic_aliases_both_ways() {
    let b = TestBroker::start();
    let mut c = connect_packet(ProtocolVersion::V5, "aliases", true);
    c.properties.topic_alias_maximum = Some(4);
    let (mut raw, ack) = Raw::connect(b.mqtt, c).await;
    let server_max = ack.properties.topic_alias_maximum.expect("announced");
    assert!(server_max >= 1);
    raw.send(&sub_packet(1, "long/topic/name", opts(Q::AtMostOnce)))
        .await;
    suback(&mut raw).await;
    let alias = |a: u16| Properties {
        topic_alias: Some(a),
        ..Default::default()
    };
    // Client -> broker: set alias 1, then use it with an empty topic.
    raw.send(&pub_packet(
        "long/topic/name",
        Q::AtMostOnce,
        None,
        alias(1),
        b"one",
    ))
    .await;
    raw.send(&pub_packet("", Q::AtMostOnce, None, alias(1), b"two"))
        .await;
    // Broker -> client: the first delivery sets an alias, the second uses it.
    let first = next_publish(&mut raw).await;
    assert_eq!(first.topic, "long/topic/name");
    let a = first.properties.topic_alias.expect("alias assigned");
    let second = next_publish(&mut raw).await;
    assert_eq!(
        (second.topic.as_str(), second.properties.topic_alias),
        ("", Some(a))
    );
    assert_eq!(&second.payload[..], b"two");
    // An alias above the broker's maximum is a protocol violation: DISCONNECT 0x94.
    raw.send(&pub_packet(
        "x",
        Q::AtMostOnce,
        None,
        alias(server_max + 1),
        b"bad",
    ))
    .await;
    match raw.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::TOPIC_ALIAS_INVALID),
        other => panic!("{other:?}"),
    }
    assert_eq!(raw.recv().await, None);
}

#[tokio::test]
async fn client_maximum_packet_size_is_respected() {
    let b = TestBroker::start();
    let mut c = connect_packet(ProtocolVersion::V5, "small", true);
    c.properties.maximum_packet_size = Some(200);
    let (mut raw, ack) = Raw::connect(b.mqtt, c).await;
    assert!(
        ack.properties.maximum_packet_size.is_some(),
        "the broker's own limit is announced"
    );
    raw.send(&sub_packet(1, "size/#", opts(Q::AtLeastOnce)))
        .await;
    suback(&mut raw).await;
    let p = V5::connect(b.mqtt, "p").await;
    p.client
        .publish("size/big", QoS::AtLeastOnce, false, vec![b'x'; 1000])
        .await
        .unwrap();
    p.client
        .publish("size/small", QoS::AtLeastOnce, false, "ok")
        .await
        .unwrap();
    let m = next_publish(&mut raw).await;
    assert_eq!(m.topic, "size/small", "the oversized message is skipped");
}

#[tokio::test]
async fn puback_reason_codes() {
    let b = TestBroker::start();
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "rc", true)).await;
    raw.send(&pub_packet(
        "nobody/listens",
        Q::AtLeastOnce,
        Some(1),
        Properties::default(),
        b"x",
    ))
    .await;
    match raw.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::NO_MATCHING_SUBSCRIBERS),
        other => panic!("{other:?}"),
    }
    // Payload announced as UTF-8 that is not.
    let utf8 = Properties {
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    raw.send(&pub_packet("t", Q::AtLeastOnce, Some(2), utf8, b"\xff\xfe"))
        .await;
    match raw.recv().await {
        Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::PAYLOAD_FORMAT_INVALID),
        other => panic!("{other:?}"),
    }
    // PUBREL for an unknown packet identifier.
    raw.send(&Packet::PubRel(PubResponse {
        packet_id: 99,
        ..Default::default()
    }))
    .await;
    match raw.recv().await {
        Some(Packet::PubComp(a)) => assert_eq!(a.reason, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
        other => panic!("{other:?}"),
    }
    // Unsubscribing from nothing.
    raw.send(&Packet::Unsubscribe(junction_mqtt::Unsubscribe {
        packet_id: 3,
        properties: Default::default(),
        filters: vec!["never/subscribed".into()],
    }))
    .await;
    match raw.recv().await {
        Some(Packet::UnsubAck(a)) => assert_eq!(a.codes, vec![ReasonCode::NO_SUBSCRIPTION_EXISTED]),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn receive_maximum_is_enforced_on_the_client() {
    let b = TestBroker::start_with(&[("JUNCTION_MQTT_RECEIVE_MAXIMUM", "2")]);
    let (mut raw, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "greedy", true)).await;
    assert_eq!(ack.properties.receive_maximum, Some(2));
    for id in 1..=2 {
        raw.send(&pub_packet(
            "q2",
            Q::ExactlyOnce,
            Some(id),
            Properties::default(),
            b"x",
        ))
        .await;
        assert!(matches!(raw.recv().await, Some(Packet::PubRec(_))));
    }
    // Two QoS 2 exchanges open (no PUBREL yet): a third is one too many.
    raw.send(&pub_packet(
        "q2",
        Q::ExactlyOnce,
        Some(3),
        Properties::default(),
        b"x",
    ))
    .await;
    match raw.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::RECEIVE_MAXIMUM_EXCEEDED),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn message_expiry_drops_stale_messages_for_offline_sessions() {
    let b = TestBroker::start();
    let mut c = connect_packet(ProtocolVersion::V5, "offline", true);
    c.properties.session_expiry_interval = Some(300);
    let (mut raw, _) = Raw::connect(b.mqtt, c).await;
    raw.send(&sub_packet(1, "exp/#", opts(Q::AtLeastOnce)))
        .await;
    suback(&mut raw).await;
    drop(raw);
    let (mut p, _) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "p", true)).await;
    let ttl = |s| Properties {
        message_expiry_interval: Some(s),
        ..Default::default()
    };
    p.send(&pub_packet(
        "exp/short",
        Q::AtLeastOnce,
        Some(1),
        ttl(1),
        b"stale",
    ))
    .await;
    p.send(&pub_packet(
        "exp/long",
        Q::AtLeastOnce,
        Some(2),
        ttl(600),
        b"fresh",
    ))
    .await;
    for _ in 0..2 {
        assert!(matches!(p.recv().await, Some(Packet::PubAck(_))));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut again = connect_packet(ProtocolVersion::V5, "offline", false);
    again.properties.session_expiry_interval = Some(300);
    let (mut raw, ack) = Raw::connect(b.mqtt, again).await;
    assert!(ack.session_present);
    let m = next_publish(&mut raw).await;
    assert_eq!(m.topic, "exp/long");
    let left = m
        .properties
        .message_expiry_interval
        .expect("remaining interval");
    assert!(left < 600 && left > 500, "the interval counts down: {left}");
}

#[tokio::test]
async fn connack_properties_server_keep_alive_and_response_information() {
    let b = TestBroker::start_with(&[("JUNCTION_MQTT_MAX_KEEP_ALIVE", "20")]);
    let mut c = connect_packet(ProtocolVersion::V5, "props", true);
    c.keep_alive = 0;
    c.properties.request_response_information = Some(1);
    let (_raw, ack) = Raw::connect(b.mqtt, c).await;
    assert_eq!(ack.properties.server_keep_alive, Some(20));
    assert!(ack.properties.response_information.is_some());
    assert!(ack.properties.receive_maximum.is_some());
    let mut o = v5_options(b.mqtt, "rumqttc");
    o.set_keep_alive(Duration::from_secs(60));
    let (_c, ack) = V5::with(o).await;
    assert_eq!(
        ack.properties.and_then(|p| p.server_keep_alive),
        Some(20),
        "a longer keep alive is lowered"
    );
}

#[tokio::test]
async fn the_broker_says_why_it_disconnects() {
    let mut b = TestBroker::start();
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "bye", true)).await;
    assert!(b.stop().success());
    match raw.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::SERVER_SHUTTING_DOWN),
        other => panic!("{other:?}"),
    }
}
