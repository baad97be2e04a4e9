//! Bad MQTT input gets the protocol's answer (CONNACK code, 5.0 DISCONNECT with a reason, or a
//! plain close in 3.1.1), is logged once, and leaves the broker serving.

mod common;

use common::mqtt::{connect_packet, Raw, V4};
use common::TestBroker;
use junction_mqtt::{Packet, ProtocolVersion, ReasonCode};

/// The connection ends with a 5.0 DISCONNECT carrying `reason`, then EOF.
async fn disconnected_with(raw: &mut Raw, reason: ReasonCode) {
    match raw.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason),
        other => panic!("expected DISCONNECT {reason:?}, got {other:?}"),
    }
    assert_eq!(raw.recv().await, None, "then the connection is closed");
}

/// The broker still serves MQTT: a fresh client can publish to itself.
async fn still_serving(b: &TestBroker) {
    let mut c = V4::connect(b.mqtt, "after").await;
    c.subscribe("alive", rumqttc::QoS::AtLeastOnce).await;
    c.client
        .publish("alive", rumqttc::QoS::AtLeastOnce, false, "yes")
        .await
        .unwrap();
    assert_eq!(&c.publish().await.payload[..], b"yes");
    c.disconnect().await;
}

#[tokio::test]
async fn malformed_and_forbidden_packets_after_connect() {
    let b = TestBroker::start();
    let v5 = ProtocolVersion::V5;
    // A remaining length that never ends (five continuation bytes).
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(v5, "m1", true)).await;
    raw.send_bytes(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).await;
    disconnected_with(&mut raw, ReasonCode::MALFORMED_PACKET).await;
    // SUBSCRIBE with reserved flags 0000 instead of 0010.
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(v5, "m2", true)).await;
    raw.send_bytes(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00])
        .await;
    disconnected_with(&mut raw, ReasonCode::MALFORMED_PACKET).await;
    // A second CONNECT.
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(v5, "m3", true)).await;
    raw.send(&Packet::Connect(Box::new(connect_packet(v5, "m3", true))))
        .await;
    disconnected_with(&mut raw, ReasonCode::PROTOCOL_ERROR).await;
    // A wildcard in a PUBLISH topic name.
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(v5, "m4", true)).await;
    raw.send_bytes(&[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'#', 0x00])
        .await;
    disconnected_with(&mut raw, ReasonCode::TOPIC_NAME_INVALID).await;
    // A packet only servers send.
    let (mut raw, _) = Raw::connect(b.mqtt, connect_packet(v5, "m5", true)).await;
    raw.send(&Packet::PingResp).await;
    disconnected_with(&mut raw, ReasonCode::PROTOCOL_ERROR).await;
    // 3.1.1 has no DISCONNECT from the server: the connection is closed.
    let (mut raw, _) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "m6", true)).await;
    raw.send_bytes(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00])
        .await;
    assert_eq!(raw.recv().await, None);
    still_serving(&b).await;
    // Logged once per connection.
    let logs = b.logs();
    for id in ["m1", "m2", "m3", "m4", "m5", "m6"] {
        let n = logs
            .lines()
            .filter(|l| {
                l.contains("mqtt: closing connection") && l.contains(&format!("client_id={id} "))
            })
            .count();
        assert_eq!(n, 1, "{id} logged once:\n{logs}");
    }
}

#[tokio::test]
async fn oversized_packets_are_refused_before_they_are_buffered() {
    let b = TestBroker::start_with(&[("JUNCTION_MQTT_MAX_PACKET_SIZE", "1024")]);
    let (mut raw, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "big", true)).await;
    assert_eq!(ack.properties.maximum_packet_size, Some(1024));
    // Only the fixed header of a 1 MiB PUBLISH: refused from the length alone.
    raw.send_bytes(&[0x30, 0x80, 0x80, 0x40]).await;
    disconnected_with(&mut raw, ReasonCode::PACKET_TOO_LARGE).await;
    still_serving(&b).await;
}

#[tokio::test]
async fn bad_connects_get_the_right_connack_or_a_close() {
    let b = TestBroker::start();
    // Protocol level 3 (MQTT 3.1): 3.1.1 CONNACK return code 1.
    let mut raw = Raw::open(b.mqtt, ProtocolVersion::V311).await;
    raw.send_bytes(b"\x10\x11\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x03abc")
        .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode(0x01)),
        other => panic!("{other:?}"),
    }
    // Protocol level 6: 5.0 CONNACK 0x84.
    let mut raw = Raw::open(b.mqtt, ProtocolVersion::V5).await;
    raw.send_bytes(b"\x10\x0d\x00\x04MQTT\x06\x02\x00\x3c\x00\x01c")
        .await;
    match raw.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode::UNSUPPORTED_PROTOCOL_VERSION),
        other => panic!("{other:?}"),
    }
    // Anything but CONNECT first: closed without an answer.
    let mut raw = Raw::open(b.mqtt, ProtocolVersion::V311).await;
    raw.send(&Packet::PingReq).await;
    assert_eq!(raw.recv().await, None);
    // Garbage.
    let mut raw = Raw::open(b.mqtt, ProtocolVersion::V311).await;
    raw.send_bytes(b"GET / HTTP/1.1\r\n\r\n").await;
    assert_eq!(raw.recv().await, None);
    // Enhanced authentication is not offered: 0x8C.
    let mut c = connect_packet(ProtocolVersion::V5, "auth", true);
    c.properties.authentication_method = Some("SCRAM-SHA-1".into());
    let (_, ack) = Raw::connect(b.mqtt, c).await;
    assert_eq!(ack.code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    // Anonymous access switched off: "not authorized".
    still_serving(&b).await;
}

#[tokio::test]
async fn anonymous_access_can_be_switched_off() {
    let b = TestBroker::start_with(&[("JUNCTION_MQTT_ALLOW_ANONYMOUS", "false")]);
    let (_, ack) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V311, "anon", true)).await;
    assert_eq!(ack.code, ReasonCode(0x05));
    let (_, ack) = Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "anon5", true)).await;
    assert_eq!(ack.code, ReasonCode::NOT_AUTHORIZED);
    let mut c = connect_packet(ProtocolVersion::V311, "named", true);
    c.username = Some("guest".into());
    c.password = Some(bytes::Bytes::from_static(b"guest"));
    let (_, ack) = Raw::connect(b.mqtt, c).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
}
