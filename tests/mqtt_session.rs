//! MQTT persistent sessions: offline queueing across reconnects and broker restarts, the
//! QoS 2 exactly-once flow with duplicates, DUP on redelivery, session expiry.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::mqtt::{connect_packet, v4_options, Raw, DEADLINE, V4};
use common::TestBroker;
use junction_mqtt::{
    Packet, ProtocolVersion, PubResponse, Publish, QoS as Q, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions,
};
use rumqttc::QoS;

fn subscribe(id: u16, filter: &str, qos: Q) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: id,
        properties: Default::default(),
        subscriptions: vec![Subscription {
            filter: filter.into(),
            options: SubscriptionOptions {
                qos,
                ..Default::default()
            },
        }],
    })
}

fn publish(topic: &str, qos: Q, id: Option<u16>, dup: bool, body: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos,
        retain: false,
        topic: topic.into(),
        packet_id: id,
        properties: Default::default(),
        payload: Bytes::from_static(body),
    })
}

fn response(id: u16) -> PubResponse {
    PubResponse {
        packet_id: id,
        ..Default::default()
    }
}

#[tokio::test]
async fn offline_messages_are_kept_in_order_across_a_broker_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start_in(tmp.path(), &[]);
    let mut o = v4_options(b.mqtt, "meter-7");
    o.set_clean_session(false);
    let mut c = V4::with(o).await;
    c.subscribe("grid/#", QoS::AtLeastOnce).await;
    c.disconnect().await;

    let p = V4::connect(b.mqtt, "p").await;
    for i in 0..20 {
        p.client
            .publish(
                format!("grid/{}", i % 3),
                QoS::AtLeastOnce,
                false,
                format!("{i}"),
            )
            .await
            .unwrap();
    }
    // QoS 0 messages for an offline session are queued too, as QoS 0.
    p.client
        .publish("grid/zero", QoS::AtMostOnce, false, "z")
        .await
        .unwrap();
    p.disconnect().await;
    assert!(b.stop().success());

    let b = TestBroker::start_in(tmp.path(), &[]);
    let mut o = v4_options(b.mqtt, "meter-7");
    o.set_clean_session(false);
    let mut c = V4::start(o);
    match c.next().await {
        Ok(rumqttc::Packet::ConnAck(a)) => assert!(a.session_present, "{a:?}"),
        other => panic!("{other:?}"),
    }
    for i in 0..20 {
        let m = c.publish().await;
        assert_eq!(
            &m.payload[..],
            format!("{i}").as_bytes(),
            "in publish order"
        );
        assert_eq!(m.qos, QoS::AtLeastOnce);
    }
    let z = c.publish().await;
    assert_eq!((z.topic.as_str(), z.qos), ("grid/zero", QoS::AtMostOnce));
    // The subscription is still there: live messages keep coming.
    let p = V4::connect(b.mqtt, "p2").await;
    p.client
        .publish("grid/live", QoS::AtLeastOnce, false, "live")
        .await
        .unwrap();
    assert_eq!(&c.publish().await.payload[..], b"live");
    c.disconnect().await;

    // A clean session discards it all.
    let mut o = v4_options(b.mqtt, "meter-7");
    o.set_clean_session(true);
    let mut c = V4::start(o);
    match c.next().await {
        Ok(rumqttc::Packet::ConnAck(a)) => assert!(!a.session_present),
        other => panic!("{other:?}"),
    }
    p.client
        .publish("grid/after", QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    c.no_publish().await;
}

#[tokio::test]
async fn qos2_duplicates_are_delivered_once() {
    let b = TestBroker::start();
    let mut sub = V4::connect(b.mqtt, "sub").await;
    sub.subscribe("exact/#", QoS::ExactlyOnce).await;

    let (mut raw, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "pub2", false)).await;
    raw.send(&publish("exact/1", Q::ExactlyOnce, Some(7), false, b"once"))
        .await;
    // The same packet again before PUBREL, as a client retrying would.
    raw.send(&publish("exact/1", Q::ExactlyOnce, Some(7), true, b"once"))
        .await;
    let mut recs = 0;
    while recs < 2 {
        match raw.recv().await {
            Some(Packet::PubRec(r)) => {
                assert_eq!(r.packet_id, 7);
                recs += 1;
            }
            other => panic!("expected PUBREC, got {other:?}"),
        }
    }
    // Reconnect (persistent session) and send it a third time: still once.
    drop(raw);
    let (mut raw, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "pub2", false)).await;
    assert!(ack.session_present);
    raw.send(&publish("exact/1", Q::ExactlyOnce, Some(7), true, b"once"))
        .await;
    assert!(matches!(raw.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 7));
    raw.send(&Packet::PubRel(response(7))).await;
    assert!(matches!(raw.recv().await, Some(Packet::PubComp(r)) if r.packet_id == 7));
    // After PUBCOMP the identifier is free: the same id is a new message.
    raw.send(&publish("exact/2", Q::ExactlyOnce, Some(7), false, b"next"))
        .await;
    assert!(matches!(raw.recv().await, Some(Packet::PubRec(r)) if r.packet_id == 7));

    let m = sub.publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("exact/1", &b"once"[..])
    );
    let m = sub.publish().await;
    assert_eq!(m.topic, "exact/2");
    sub.no_publish().await;
}

#[tokio::test]
async fn unacknowledged_messages_come_back_with_dup_and_the_same_packet_id() {
    let b = TestBroker::start();
    let (mut raw, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "slow", false)).await;
    raw.send(&subscribe(1, "work/#", Q::ExactlyOnce)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let p = V4::connect(b.mqtt, "p").await;
    p.client
        .publish("work/a", QoS::AtLeastOnce, false, "a")
        .await
        .unwrap();
    p.client
        .publish("work/b", QoS::ExactlyOnce, false, "b")
        .await
        .unwrap();
    let mut first = Vec::new();
    for _ in 0..2 {
        match raw.recv().await {
            Some(Packet::Publish(m)) => {
                assert!(!m.dup);
                first.push((m.topic, m.packet_id, m.qos));
            }
            other => panic!("{other:?}"),
        }
    }
    // Neither acknowledged; the connection drops.
    drop(raw);
    let (mut raw, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "slow", false)).await;
    assert!(ack.session_present);
    for (topic, id, qos) in &first {
        match raw.recv().await {
            Some(Packet::Publish(m)) => {
                assert!(m.dup, "redelivery has DUP set");
                assert_eq!((&m.topic, &m.packet_id, &m.qos), (topic, id, qos));
                if m.qos == Q::AtLeastOnce {
                    raw.send(&Packet::PubAck(response(m.packet_id.unwrap())))
                        .await;
                } else {
                    raw.send(&Packet::PubRec(response(m.packet_id.unwrap())))
                        .await;
                    assert!(matches!(raw.recv().await, Some(Packet::PubRel(_))));
                    // The PUBCOMP is lost with the connection: PUBREL is re-sent.
                }
            }
            other => panic!("{other:?}"),
        }
    }
    drop(raw);
    let (mut raw, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "slow", false)).await;
    match raw.recv().await {
        Some(Packet::PubRel(r)) => {
            assert_eq!(Some(r.packet_id), first[1].1);
            raw.send(&Packet::PubComp(response(r.packet_id))).await;
        }
        other => panic!("expected the PUBREL again, got {other:?}"),
    }
    raw.quiet().await;
}

#[tokio::test]
async fn in_flight_window_holds_back_deliveries() {
    let b = TestBroker::start();
    let mut c = connect_packet(ProtocolVersion::V5, "narrow", true);
    c.properties.receive_maximum = Some(2);
    let (mut raw, _) = Raw::connect(b.mqtt, c).await;
    raw.send(&subscribe(1, "w/#", Q::AtLeastOnce)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let p = V4::connect(b.mqtt, "p").await;
    for i in 0..5 {
        p.client
            .publish(format!("w/{i}"), QoS::AtLeastOnce, false, "x")
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for _ in 0..2 {
        match raw.recv().await {
            Some(Packet::Publish(m)) => ids.push(m.packet_id.unwrap()),
            other => panic!("{other:?}"),
        }
    }
    raw.quiet().await; // the third waits for an acknowledgement
    let mut got = 2;
    while got < 5 {
        let id = ids.remove(0);
        raw.send(&Packet::PubAck(response(id))).await;
        match raw.recv().await {
            Some(Packet::Publish(m)) => {
                assert_eq!(m.topic, format!("w/{got}"));
                ids.push(m.packet_id.unwrap());
                got += 1;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn session_expiry_interval_ends_a_v5_session() {
    let b = TestBroker::start();
    let mut c = connect_packet(ProtocolVersion::V5, "brief", true);
    c.properties.session_expiry_interval = Some(1);
    let (mut raw, _) = Raw::connect(b.mqtt, c).await;
    raw.send(&subscribe(1, "e/#", Q::AtLeastOnce)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    drop(raw);
    // Right after: the session is there.
    let mut again = connect_packet(ProtocolVersion::V5, "brief", false);
    again.properties.session_expiry_interval = Some(1);
    let (raw, ack) = Raw::connect(b.mqtt, again.clone()).await;
    assert!(ack.session_present);
    drop(raw);
    // Some time after the interval it is gone: watch its queue from AMQP (an MQTT probe would
    // resume the session and restart its clock).
    let conn = common::amqp::connect(&b).await;
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let ch = common::amqp::channel(&conn).await;
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let r = ch
            .queue_declare("mqtt-session-brief".into(), passive, Default::default())
            .await;
        if r.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (raw, ack) = Raw::connect(b.mqtt, again).await;
    assert!(!ack.session_present);
    drop(raw);

    // Session expiry 0 (the 5.0 default): nothing is kept.
    let (mut raw, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "none", true)).await;
    raw.send(&subscribe(1, "n/#", Q::AtLeastOnce)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    raw.send(&Packet::Disconnect(Default::default())).await;
    assert_eq!(raw.recv().await, None);
    let (_raw, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "none", false)).await;
    assert!(!ack.session_present);
    let _ = ReasonCode::SUCCESS;
}

#[tokio::test]
async fn disconnect_changes_the_session_expiry_interval() {
    let b = TestBroker::start();
    let expiring = |clean: bool, secs: u32| {
        let mut c = connect_packet(ProtocolVersion::V5, "changer", clean);
        c.properties.session_expiry_interval = Some(secs);
        c
    };
    let bye = |secs: u32| {
        Packet::Disconnect(junction_mqtt::ReasonOnly {
            reason: ReasonCode::SUCCESS,
            properties: junction_mqtt::Properties {
                session_expiry_interval: Some(secs),
                ..Default::default()
            },
        })
    };
    // 1 s on CONNECT, raised to 5 min on DISCONNECT: still there well after 1 s.
    let (mut raw, _) = Raw::connect(b.mqtt, expiring(true, 1)).await;
    raw.send(&subscribe(1, "c/#", Q::AtLeastOnce)).await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    raw.send(&bye(300)).await;
    assert_eq!(raw.recv().await, None);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (mut raw, ack) = Raw::connect(b.mqtt, expiring(false, 1)).await;
    assert!(
        ack.session_present,
        "the longer interval from DISCONNECT applies"
    );
    // Lowered to 0 on DISCONNECT: gone at once.
    raw.send(&bye(0)).await;
    assert_eq!(raw.recv().await, None);
    let (_raw, ack) = Raw::connect(b.mqtt, expiring(false, 1)).await;
    assert!(!ack.session_present);
}
