//! MQTT through rumqttc (3.1.1 and 5.0) against the real broker: connect, publish and
//! subscribe at every QoS, wildcards, retained messages, authentication, client ids,
//! takeover, wills, keep alive.

mod common;

use std::time::Duration;

use common::mqtt::{connect_packet, v4_options, v5_options, Raw, V4, V5};
use common::TestBroker;
use junction_mqtt::{Packet, ProtocolVersion, ReasonCode};
use rumqttc::{ConnectReturnCode, LastWill, QoS, SubscribeReasonCode};

#[tokio::test]
async fn publish_and_subscribe_at_every_qos_both_ways() {
    let b = TestBroker::start();
    let mut sub = V4::connect(b.mqtt, "sub").await;
    assert_eq!(
        sub.subscribe("sensors/+/temp", QoS::ExactlyOnce).await,
        vec![SubscribeReasonCode::Success(QoS::ExactlyOnce)]
    );
    let publisher = V4::connect(b.mqtt, "pub").await;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .client
            .publish(format!("sensors/{i}/temp"), qos, false, format!("t{i}"))
            .await
            .unwrap();
        let p = sub.publish().await;
        assert_eq!(p.topic, format!("sensors/{i}/temp"));
        assert_eq!(&p.payload[..], format!("t{i}").as_bytes());
        assert_eq!(p.qos, qos, "delivered at the publish QoS");
        assert!(!p.retain && !p.dup);
    }
    // A QoS 1 subscription caps QoS 2 publishes at 1.
    let mut sub1 = V4::connect(b.mqtt, "sub1").await;
    sub1.subscribe("capped/#", QoS::AtLeastOnce).await;
    publisher
        .client
        .publish("capped/x", QoS::ExactlyOnce, false, "c")
        .await
        .unwrap();
    assert_eq!(sub1.publish().await.qos, QoS::AtLeastOnce);
    sub.no_publish().await;
    publisher.disconnect().await;
    sub.disconnect().await;
    sub1.disconnect().await;
}

#[tokio::test]
async fn wildcards_dollar_topics_and_overlapping_subscriptions() {
    let b = TestBroker::start();
    let mut all = V4::connect(b.mqtt, "all").await;
    all.subscribe("#", QoS::AtLeastOnce).await;
    let mut sys = V4::connect(b.mqtt, "sys").await;
    sys.subscribe("$SYS/#", QoS::AtMostOnce).await;
    let mut overlap = V4::connect(b.mqtt, "overlap").await;
    overlap.subscribe("a/#", QoS::AtMostOnce).await;
    overlap.subscribe("a/+/c", QoS::AtLeastOnce).await;
    overlap.subscribe("a/b/c", QoS::ExactlyOnce).await;

    let p = V4::connect(b.mqtt, "p").await;
    p.client
        .publish("$SYS/broker/x", QoS::AtLeastOnce, false, "s")
        .await
        .unwrap();
    let got = sys.publish().await;
    assert_eq!(got.topic, "$SYS/broker/x");
    p.client
        .publish("a/b/c", QoS::ExactlyOnce, false, "abc")
        .await
        .unwrap();
    // `#` does not match the `$SYS` topic: the first thing `all` sees is a/b/c.
    let got = all.publish().await;
    assert_eq!(got.topic, "a/b/c");
    // Three overlapping subscriptions: one delivery, at the highest granted QoS.
    let got = overlap.publish().await;
    assert_eq!((got.topic.as_str(), got.qos), ("a/b/c", QoS::ExactlyOnce));
    overlap.no_publish().await;
    // `+` matches one level, an empty one too; `#` matches the parent level.
    p.client
        .publish("a", QoS::AtMostOnce, false, "parent")
        .await
        .unwrap();
    p.client
        .publish("a//c", QoS::AtMostOnce, false, "empty")
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let m = overlap.publish().await;
        seen.push((m.topic, m.qos));
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            ("a".to_string(), QoS::AtMostOnce),
            ("a//c".to_string(), QoS::AtMostOnce)
        ]
    );
    overlap.no_publish().await;
    p.disconnect().await;
}

#[tokio::test]
async fn retained_messages_set_replace_clear() {
    let b = TestBroker::start();
    let mut p = V4::connect(b.mqtt, "p").await;
    p.client
        .publish("home/door", QoS::AtLeastOnce, true, "open")
        .await
        .unwrap();
    p.client
        .publish("home/door", QoS::AtLeastOnce, true, "closed")
        .await
        .unwrap();
    p.client
        .publish("home/light", QoS::AtMostOnce, true, "on")
        .await
        .unwrap();
    p.client
        .publish("home/window", QoS::AtLeastOnce, true, "ajar")
        .await
        .unwrap();
    // Clearing: an empty retained payload.
    p.client
        .publish("home/window", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    // Wait for the publisher's acknowledgements (of the four QoS 1 publishes, in order) so the
    // set is complete.
    for _ in 0..4 {
        p.until(|pk| matches!(pk, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }
    let mut probe = V4::connect(b.mqtt, "probe").await;
    probe.subscribe("home/door", QoS::AtLeastOnce).await;
    let first = probe.publish().await;
    assert_eq!(&first.payload[..], b"closed", "the newest retained message");
    assert!(first.retain, "sent on subscribe with RETAIN set");

    let mut s = V4::connect(b.mqtt, "s").await;
    s.subscribe("home/+", QoS::AtLeastOnce).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = s.publish().await;
        assert!(m.retain);
        got.push((
            m.topic,
            String::from_utf8_lossy(&m.payload).into_owned(),
            m.qos,
        ));
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        vec![
            ("home/door".into(), "closed".into(), QoS::AtLeastOnce),
            ("home/light".into(), "on".into(), QoS::AtMostOnce),
        ]
    );
    s.no_publish().await;
    // A live publish with RETAIN reaches existing subscribers with RETAIN cleared.
    p.client
        .publish("home/door", QoS::AtLeastOnce, true, "locked")
        .await
        .unwrap();
    let live = s.publish().await;
    assert_eq!((&live.payload[..], live.retain), (&b"locked"[..], false));
    p.disconnect().await;
    s.disconnect().await;
    probe.disconnect().await;
}

#[tokio::test]
async fn retained_messages_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start_in(tmp.path(), &[]);
    let p = V4::connect(b.mqtt, "p").await;
    p.client
        .publish("plant/state", QoS::AtLeastOnce, true, "running")
        .await
        .unwrap();
    let mut s = V4::connect(b.mqtt, "s").await;
    s.subscribe("plant/state", QoS::AtLeastOnce).await;
    assert_eq!(&s.publish().await.payload[..], b"running");
    p.disconnect().await;
    s.disconnect().await;
    assert!(b.stop().success());
    let b = TestBroker::start_in(tmp.path(), &[]);
    let mut s = V4::connect(b.mqtt, "s2").await;
    s.subscribe("plant/#", QoS::AtLeastOnce).await;
    let m = s.publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.retain),
        ("plant/state", &b"running"[..], true)
    );
    s.disconnect().await;
}

#[tokio::test]
async fn authentication_and_client_ids() {
    let b = TestBroker::start();
    // Wrong password: 3.1.1 return code 4, 5.0 reason 0x86.
    let mut o = v4_options(b.mqtt, "bad");
    o.set_credentials("guest", "wrong");
    let mut c = V4::start(o);
    match c.next().await {
        Ok(rumqttc::Packet::ConnAck(a)) => {
            assert_eq!(a.code, ConnectReturnCode::BadUserNamePassword)
        }
        Err(e) => assert!(e.contains("BadUserNamePassword"), "{e}"),
        other => panic!("{other:?}"),
    }
    let mut o = v5_options(b.mqtt, "bad5");
    o.set_credentials("nobody", "x");
    let mut c = V5::start(o);
    let r = c.next().await;
    assert!(
        format!("{r:?}").contains("BadUserNamePassword"),
        "5.0 refusal names the reason: {r:?}"
    );
    // Right credentials, and the vhost:user form.
    let mut o = v4_options(b.mqtt, "good");
    o.set_credentials("/:guest", "guest");
    V4::with(o).await.disconnect().await;

    // 3.1.1: an empty client id with clean session 0 is refused with return code 2...
    let (_, ack) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "", false)).await;
    assert_eq!(ack.code, ReasonCode(0x02));
    // ...and accepted with clean session 1.
    let (_, ack) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "", true)).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    // 5.0: the broker assigns one and says which.
    let (_, ack) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "", true)).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    let id = ack
        .properties
        .assigned_client_identifier
        .expect("assigned id");
    assert!(!id.is_empty());
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_takes_the_session_over() {
    let b = TestBroker::start();
    let (mut first, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "dev-1", true)).await;
    let (mut second, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "dev-1", true)).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    match first.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER),
        other => panic!("expected DISCONNECT 0x8E, got {other:?}"),
    }
    assert_eq!(
        first.recv().await,
        None,
        "then the old connection is closed"
    );
    second.send(&Packet::PingReq).await;
    assert_eq!(second.recv().await, Some(Packet::PingResp));

    // 3.1.1: the old connection is just closed.
    let (mut old, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "dev-2", true)).await;
    let (_new, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "dev-2", true)).await;
    assert_eq!(old.recv().await, None);
}

#[tokio::test]
async fn wills_are_published_on_abnormal_disconnect_only() {
    let b = TestBroker::start();
    let mut watcher = V4::connect(b.mqtt, "watcher").await;
    watcher.subscribe("status/#", QoS::AtLeastOnce).await;

    // A clean DISCONNECT discards the will.
    let mut o = v4_options(b.mqtt, "polite");
    o.set_last_will(LastWill::new(
        "status/polite",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    V4::with(o).await.disconnect().await;
    watcher.no_publish().await;

    // A dropped connection publishes it, with its QoS and retain flag.
    let mut o = v4_options(b.mqtt, "crashy");
    o.set_last_will(LastWill::new(
        "status/crashy",
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let c = V4::with(o).await;
    c.kill();
    let w = watcher.publish().await;
    assert_eq!(
        (w.topic.as_str(), &w.payload[..]),
        ("status/crashy", &b"offline"[..])
    );
    assert_eq!(w.qos, QoS::AtLeastOnce);
    // Retained: a later subscriber gets it.
    let mut late = V4::connect(b.mqtt, "late").await;
    late.subscribe("status/crashy", QoS::AtLeastOnce).await;
    let r = late.publish().await;
    assert!(r.retain);
    assert_eq!(&r.payload[..], b"offline");

    // 5.0 DISCONNECT with reason 0x04 asks for the will.
    let mut c = connect_packet(ProtocolVersion::V5, "asks", true);
    c.will = Some(junction_mqtt::Will {
        topic: "status/asks".into(),
        payload: bytes::Bytes::from_static(b"bye"),
        ..Default::default()
    });
    let (mut raw, _) = Raw::connect(b.mqtt, c).await;
    raw.send(&Packet::Disconnect(junction_mqtt::ReasonOnly {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        properties: Default::default(),
    }))
    .await;
    assert_eq!(&watcher.publish().await.payload[..], b"bye");
}

#[tokio::test]
async fn will_delay_interval_and_reconnect_cancelling_it() {
    let b = TestBroker::start();
    let mut watcher = V4::connect(b.mqtt, "watcher").await;
    watcher.subscribe("lwt/#", QoS::AtLeastOnce).await;
    let will = |topic: &str| {
        let mut c = connect_packet(ProtocolVersion::V5, topic, true);
        c.properties.session_expiry_interval = Some(60);
        c.will = Some(junction_mqtt::Will {
            topic: format!("lwt/{topic}"),
            payload: bytes::Bytes::from_static(b"late"),
            properties: junction_mqtt::Properties {
                will_delay_interval: Some(1),
                ..Default::default()
            },
            ..Default::default()
        });
        c
    };
    // Comes back within the delay: no will.
    let (raw, _) = Raw::connect(b.mqtt, will("back")).await;
    drop(raw);
    let (_raw, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "back", false)).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    // Stays away: the will comes, after the delay.
    let (raw, _) = Raw::connect(b.mqtt, will("away")).await;
    let gone = std::time::Instant::now();
    drop(raw);
    let w = watcher.publish().await;
    assert_eq!(w.topic, "lwt/away");
    assert!(
        gone.elapsed() >= Duration::from_millis(900),
        "published after the delay"
    );
}

#[tokio::test]
async fn keep_alive_is_enforced() {
    let b = TestBroker::start();
    let mut c = connect_packet(ProtocolVersion::V5, "sleepy", true);
    c.keep_alive = 1;
    let (mut raw, _) = Raw::connect(b.mqtt, c).await;
    let start = std::time::Instant::now();
    match raw.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::KEEP_ALIVE_TIMEOUT),
        other => panic!("expected DISCONNECT 0x8D, got {other:?}"),
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1400),
        "1.5 x keep alive"
    );
    // Pings keep a connection alive.
    let mut c = connect_packet(ProtocolVersion::V311, "awake", true);
    c.keep_alive = 1;
    let (mut raw, _) = Raw::connect(b.mqtt, c).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        raw.send(&Packet::PingReq).await;
        assert_eq!(raw.recv().await, Some(Packet::PingResp));
    }
}

#[tokio::test]
async fn unsubscribe_stops_deliveries() {
    let b = TestBroker::start();
    let mut s = V5::connect(b.mqtt, "s").await;
    s.subscribe("u/1", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await;
    s.subscribe("u/2", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await;
    s.client.unsubscribe("u/1").await.unwrap();
    s.until(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::UnsubAck(_)).then_some(()))
        .await;
    let p = V5::connect(b.mqtt, "p").await;
    for t in ["u/1", "u/2"] {
        p.client
            .publish(t, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, t)
            .await
            .unwrap();
    }
    assert_eq!(s.publish().await.topic, "u/2");
    s.no_publish().await;
}

#[tokio::test]
async fn shared_subscriptions_split_the_work() {
    let b = TestBroker::start();
    let mut m1 = V5::connect(b.mqtt, "m1").await;
    let mut m2 = V5::connect(b.mqtt, "m2").await;
    let mut plain = V5::connect(b.mqtt, "plain").await;
    use rumqttc::v5::mqttbytes::QoS as Q;
    m1.subscribe("$share/workers/jobs/#", Q::AtLeastOnce).await;
    m2.subscribe("$share/workers/jobs/#", Q::AtLeastOnce).await;
    plain.subscribe("jobs/#", Q::AtLeastOnce).await;
    let p = V5::connect(b.mqtt, "p").await;
    let n = 40;
    for i in 0..n {
        p.client
            .publish(format!("jobs/{i}"), Q::AtLeastOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    // The plain subscriber sees every message; the group members split them, each once.
    for _ in 0..n {
        plain.publish().await;
    }
    let mut seen = std::collections::BTreeSet::new();
    let (mut c1, mut c2) = (0, 0);
    while seen.len() < n {
        tokio::select! {
            m = m1.publish() => { c1 += 1; assert!(seen.insert(m.topic), "delivered twice"); }
            m = m2.publish() => { c2 += 1; assert!(seen.insert(m.topic), "delivered twice"); }
        }
    }
    assert_eq!(c1 + c2, n);
    assert!(c1 > 0 && c2 > 0, "both members got work: {c1} / {c2}");
}
