//! Bytes produced by rumqttc's own encoders (v4 = 3.1.1 and v5) fed into this decoder.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4 as r4;
use rumqttc::v5::mqttbytes::v5 as r5;

use crate::ProtocolVersion::{V311, V5};
use crate::*;

fn feed(dec: &mut Decoder, bytes: &[u8]) -> Vec<Packet> {
    // Byte at a time, as a slow socket would deliver them.
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for b in bytes {
        buf.extend_from_slice(&[*b]);
        while let Some(p) = dec.decode(&mut buf).unwrap() {
            out.push(p);
        }
    }
    assert!(buf.is_empty());
    out
}

#[test]
fn rumqttc_v4_stream() {
    let mut connect = r4::Connect::new("client-1");
    connect.keep_alive = 30;
    connect.clean_session = true;
    connect.last_will = Some(r4::LastWill::new(
        "will/t",
        "gone",
        rumqttc::QoS::AtLeastOnce,
        true,
    ));
    connect.login = Some(r4::Login::new("user", "secret"));
    let mut publish = r4::Publish::new("a/b", rumqttc::QoS::ExactlyOnce, vec![7u8; 1000]);
    publish.pkid = 42;
    let mut subscribe = r4::Subscribe::new("a/+/c", rumqttc::QoS::AtLeastOnce);
    subscribe.pkid = 43;
    let mut unsubscribe = r4::Unsubscribe::new("a/#");
    unsubscribe.pkid = 44;
    let packets = [
        r4::Packet::Connect(connect),
        r4::Packet::Publish(publish),
        r4::Packet::Subscribe(subscribe),
        r4::Packet::PubRel(r4::PubRel::new(42)),
        r4::Packet::PubAck(r4::PubAck::new(9)),
        r4::Packet::Unsubscribe(unsubscribe),
        r4::Packet::PingReq,
        r4::Packet::Disconnect,
    ];
    let mut bytes = BytesMut::new();
    for p in &packets {
        p.write(&mut bytes, 1 << 20).unwrap();
    }
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let got = feed(&mut dec, &bytes);
    assert_eq!(dec.version(), Some(V311));
    assert_eq!(got.len(), packets.len());
    let Packet::Connect(c) = &got[0] else {
        panic!("{:?}", got[0])
    };
    assert_eq!(
        (c.client_id.as_str(), c.keep_alive, c.clean_start),
        ("client-1", 30, true)
    );
    let will = c.will.as_ref().unwrap();
    assert_eq!(
        (
            will.topic.as_str(),
            &will.payload[..],
            will.qos,
            will.retain
        ),
        ("will/t", &b"gone"[..], QoS::AtLeastOnce, true)
    );
    assert_eq!(c.username.as_deref(), Some("user"));
    assert_eq!(c.password.as_deref(), Some(&b"secret"[..]));
    let Packet::Publish(p) = &got[1] else {
        panic!()
    };
    assert_eq!(
        (p.topic.as_str(), p.qos, p.packet_id, p.payload.len()),
        ("a/b", QoS::ExactlyOnce, Some(42), 1000)
    );
    let Packet::Subscribe(s) = &got[2] else {
        panic!()
    };
    assert_eq!(s.packet_id, 43);
    assert_eq!(s.subscriptions[0].filter, "a/+/c");
    assert_eq!(s.subscriptions[0].options.qos, QoS::AtLeastOnce);
    assert!(matches!(&got[3], Packet::PubRel(r) if r.packet_id == 42));
    assert!(matches!(&got[4], Packet::PubAck(r) if r.packet_id == 9));
    assert!(matches!(&got[5], Packet::Unsubscribe(u) if u.filters == ["a/#"] && u.packet_id == 44));
    assert_eq!(got[6], Packet::PingReq);
    assert_eq!(got[7], Packet::Disconnect(ReasonOnly::default()));
}

#[test]
fn rumqttc_v5_stream() {
    let connect = r5::Connect {
        keep_alive: 15,
        client_id: "c5".into(),
        clean_start: false,
        properties: Some(r5::ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(100),
            max_packet_size: Some(65_536),
            topic_alias_max: Some(8),
            request_response_info: None,
            request_problem_info: Some(1),
            user_properties: vec![("k".into(), "v".into())],
            authentication_method: None,
            authentication_data: None,
        }),
    };
    let will = r5::LastWill::new(
        "w",
        "bye",
        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        false,
        Some(r5::LastWillProperties {
            delay_interval: Some(10),
            payload_format_indicator: Some(1),
            message_expiry_interval: None,
            content_type: Some("text/plain".into()),
            response_topic: None,
            correlation_data: None,
            user_properties: vec![],
        }),
    );
    let login = r5::Login::new("u", "p");
    let props = r5::PublishProperties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(60),
        topic_alias: Some(3),
        response_topic: Some("reply/to".into()),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        user_properties: vec![("a".into(), "b".into())],
        subscription_identifiers: vec![],
        content_type: Some("bin".into()),
    };
    let mut publish = r5::Publish::new(
        "x/y",
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        Bytes::from_static(b"payload"),
        Some(props),
    );
    publish.pkid = 5;
    let mut filter = r5::Filter::new("s/#", rumqttc::v5::mqttbytes::QoS::ExactlyOnce);
    filter.nolocal = true;
    filter.preserve_retain = true;
    filter.retain_forward_rule = r5::RetainForwardRule::Never;
    let mut subscribe = r5::Subscribe::new(
        filter,
        Some(r5::SubscribeProperties {
            id: Some(12),
            user_properties: vec![],
        }),
    );
    subscribe.pkid = 6;
    let mut unsubscribe = r5::Unsubscribe::new("s/#", None);
    unsubscribe.pkid = 7;
    let packets = [
        r5::Packet::Connect(connect, Some(will), Some(login)),
        r5::Packet::Publish(publish),
        r5::Packet::Subscribe(subscribe),
        r5::Packet::PubAck(r5::PubAck::new(5, None)),
        r5::Packet::Unsubscribe(unsubscribe),
        r5::Packet::PingReq(r5::PingReq),
        r5::Packet::Disconnect(r5::Disconnect::new(
            r5::DisconnectReasonCode::NormalDisconnection,
        )),
    ];
    let mut bytes = BytesMut::new();
    for p in &packets {
        p.write(&mut bytes, None).unwrap();
    }
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let got = feed(&mut dec, &bytes);
    assert_eq!(dec.version(), Some(V5));
    assert_eq!(got.len(), packets.len());
    let Packet::Connect(c) = &got[0] else {
        panic!("{:?}", got[0])
    };
    assert_eq!(
        (c.client_id.as_str(), c.keep_alive, c.clean_start),
        ("c5", 15, false)
    );
    assert_eq!(c.properties.session_expiry_interval, Some(3600));
    assert_eq!(c.properties.receive_maximum, Some(100));
    assert_eq!(c.properties.maximum_packet_size, Some(65_536));
    assert_eq!(c.properties.topic_alias_maximum, Some(8));
    assert_eq!(c.properties.request_problem_information, Some(1));
    assert_eq!(
        c.properties.user_properties,
        vec![("k".to_owned(), "v".to_owned())]
    );
    let w = c.will.as_ref().unwrap();
    assert_eq!((w.topic.as_str(), &w.payload[..]), ("w", &b"bye"[..]));
    assert_eq!(w.properties.will_delay_interval, Some(10));
    assert_eq!(w.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        (c.username.as_deref(), c.password.as_deref()),
        (Some("u"), Some(&b"p"[..]))
    );
    let Packet::Publish(p) = &got[1] else {
        panic!()
    };
    assert_eq!(
        (p.topic.as_str(), p.packet_id, &p.payload[..]),
        ("x/y", Some(5), &b"payload"[..])
    );
    assert_eq!(p.properties.topic_alias, Some(3));
    assert_eq!(p.properties.response_topic.as_deref(), Some("reply/to"));
    assert_eq!(
        p.properties.correlation_data.as_deref(),
        Some(&b"\x01\x02"[..])
    );
    assert_eq!(p.properties.content_type.as_deref(), Some("bin"));
    assert_eq!(p.properties.message_expiry_interval, Some(60));
    let Packet::Subscribe(s) = &got[2] else {
        panic!()
    };
    assert_eq!(s.properties.subscription_identifiers, vec![12]);
    let o = s.subscriptions[0].options;
    assert_eq!(
        (o.qos, o.no_local, o.retain_as_published, o.retain_handling),
        (QoS::ExactlyOnce, true, true, RetainHandling::DoNotSend)
    );
    assert!(
        matches!(&got[3], Packet::PubAck(a) if a.packet_id == 5 && a.reason == ReasonCode::SUCCESS)
    );
    assert!(matches!(&got[4], Packet::Unsubscribe(u) if u.packet_id == 7));
    assert_eq!(got[5], Packet::PingReq);
    assert!(matches!(&got[6], Packet::Disconnect(d) if d.reason == ReasonCode::SUCCESS));
}

#[test]
fn rumqttc_v5_reads_what_we_encode() {
    // The server-side packets we encode, read back by rumqttc's v5 parser.
    let ack = ConnAck {
        session_present: true,
        code: ReasonCode::SUCCESS,
        properties: Properties {
            assigned_client_identifier: Some("auto-1".into()),
            server_keep_alive: Some(20),
            ..Properties::default()
        },
    };
    let mut out = BytesMut::new();
    encode(&Packet::ConnAck(ack), V5, &mut out).unwrap();
    let publish = Publish {
        qos: QoS::AtLeastOnce,
        topic: "a/b".into(),
        packet_id: Some(3),
        payload: Bytes::from_static(b"hi"),
        properties: Properties {
            subscription_identifiers: vec![4],
            ..Properties::default()
        },
        ..Publish::default()
    };
    encode(&Packet::Publish(publish), V5, &mut out).unwrap();
    let r5::Packet::ConnAck(a) = r5::Packet::read(&mut out, None).unwrap() else {
        panic!()
    };
    assert!(a.session_present);
    assert_eq!(
        a.properties.unwrap().assigned_client_identifier.as_deref(),
        Some("auto-1")
    );
    let r5::Packet::Publish(p) = r5::Packet::read(&mut out, None).unwrap() else {
        panic!()
    };
    assert_eq!(
        (&p.topic[..], p.pkid, &p.payload[..]),
        (&b"a/b"[..], 3, &b"hi"[..])
    );
    assert_eq!(p.properties.unwrap().subscription_identifiers, vec![4]);
}

#[test]
fn zero_length_v5_disconnect_rumqttc_rejects_we_accept() {
    // The evidence for writing the codec: rumqttc's v5 reader refuses the spec-valid
    // zero-length DISCONNECT (remaining length 0 = reason 0x00 Normal disconnection)...
    let mut theirs = BytesMut::from(&b"\xe0\x00"[..]);
    assert!(r5::Packet::read(&mut theirs, None).is_err());
    // ...which this decoder reads as a normal disconnection (the will is not sent).
    let mut dec = Decoder::with_version(V5, DEFAULT_MAX_PACKET_SIZE);
    let got = feed(&mut dec, b"\xe0\x00");
    assert_eq!(got, [Packet::Disconnect(ReasonOnly::default())]);
}
