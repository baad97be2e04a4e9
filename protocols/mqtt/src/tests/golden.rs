//! Golden bytes built from the specs' layouts, decoded and re-encoded.

use bytes::{Bytes, BytesMut};

use super::{connected, decode_one, enc};
use crate::ProtocolVersion::{V311, V5};
use crate::*;

/// Decodes with a fresh decoder (CONNECT) or a connected one, checks the packet, and checks
/// that encoding it gives the same bytes back.
fn golden(v: ProtocolVersion, bytes: &[u8], expected: &Packet) {
    let mut dec = match expected {
        Packet::Connect(_) => Decoder::new(DEFAULT_MAX_PACKET_SIZE),
        _ => connected(v),
    };
    let got = decode_one(&mut dec, bytes).unwrap();
    assert_eq!(&got, expected);
    assert_eq!(dec.version(), Some(v));
    assert_eq!(enc(expected, v), bytes, "re-encoding {expected:?}");
}

fn s(x: &str) -> String {
    x.to_owned()
}

#[test]
fn connect_v311_with_will() {
    // The spec's variable header example: "MQTT", level 4, flags 0xCE-like, keep alive 60.
    let bytes = b"\x10\x25\x00\x04MQTT\x04\xee\x00\x3c\x00\x03cid\x00\x05w/top\x00\x03bye\x00\x04user\x00\x02pw";
    let expected = Packet::Connect(Box::new(Connect {
        version: V311,
        clean_start: true,
        keep_alive: 60,
        client_id: s("cid"),
        will: Some(Will {
            topic: s("w/top"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: Properties::default(),
        }),
        username: Some(s("user")),
        password: Some(Bytes::from_static(b"pw")),
        properties: Properties::default(),
    }));
    golden(V311, bytes, &expected);
}

#[test]
fn connect_v5_with_will_and_properties() {
    let bytes = b"\x10\x37\x00\x04MQTT\x05\xce\x00\x0a\
        \x0d\x11\x00\x00\x00\x78\x21\x00\x14\x27\x00\x01\x00\x00\
        \x00\x01c\
        \x0e\x01\x01\x03\x00\x04text\x18\x00\x00\x00\x05\
        \x00\x01w\x00\x02hi\x00\x01u\x00\x01p";
    let expected = Packet::Connect(Box::new(Connect {
        version: V5,
        clean_start: true,
        keep_alive: 10,
        client_id: s("c"),
        will: Some(Will {
            topic: s("w"),
            payload: Bytes::from_static(b"hi"),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: Properties {
                payload_format_indicator: Some(1),
                content_type: Some(s("text")),
                will_delay_interval: Some(5),
                ..Properties::default()
            },
        }),
        username: Some(s("u")),
        password: Some(Bytes::from_static(b"p")),
        properties: Properties {
            session_expiry_interval: Some(120),
            receive_maximum: Some(20),
            maximum_packet_size: Some(65536),
            ..Properties::default()
        },
    }));
    golden(V5, bytes, &expected);
}

#[test]
fn connack_both_versions() {
    let p = Packet::ConnAck(ConnAck {
        session_present: true,
        ..ConnAck::default()
    });
    golden(V311, b"\x20\x02\x01\x00", &p);
    golden(
        V311,
        b"\x20\x02\x00\x05",
        &Packet::ConnAck(ConnAck {
            code: ReasonCode(5),
            ..ConnAck::default()
        }),
    );
    let p = Packet::ConnAck(ConnAck {
        session_present: false,
        code: ReasonCode::SUCCESS,
        properties: Properties {
            assigned_client_identifier: Some(s("abc")),
            server_keep_alive: Some(30),
            topic_alias_maximum: Some(10),
            ..Properties::default()
        },
    });
    golden(
        V5,
        b"\x20\x0f\x00\x00\x0c\x12\x00\x03abc\x13\x00\x1e\x22\x00\x0a",
        &p,
    );
    let refused = Packet::ConnAck(ConnAck {
        code: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
        ..ConnAck::default()
    });
    golden(V5, b"\x20\x03\x00\x84\x00", &refused);
}

fn publish(qos: QoS, id: Option<u16>, topic: &str, payload: &'static [u8]) -> Publish {
    Publish {
        qos,
        packet_id: id,
        topic: s(topic),
        payload: Bytes::from_static(payload),
        ..Publish::default()
    }
}

#[test]
fn publish_qos0_1_2() {
    let p0 = publish(QoS::AtMostOnce, None, "a/b", b"hello");
    golden(
        V311,
        b"\x30\x0a\x00\x03a/bhello",
        &Packet::Publish(p0.clone()),
    );
    golden(V5, b"\x30\x0b\x00\x03a/b\x00hello", &Packet::Publish(p0));

    let mut p1 = publish(QoS::AtLeastOnce, Some(7), "a/b", b"hi");
    p1.properties = Properties {
        message_expiry_interval: Some(60),
        response_topic: Some(s("r")),
        correlation_data: Some(Bytes::from_static(b"\x01\x02")),
        topic_alias: Some(5),
        user_properties: vec![(s("k"), s("v"))],
        ..Properties::default()
    };
    golden(
        V5,
        b"\x32\x22\x00\x03a/b\x00\x07\x18\x02\x00\x00\x00\x3c\x08\x00\x01r\x09\x00\x02\x01\x02\x23\x00\x05\x26\x00\x01k\x00\x01vhi",
        &Packet::Publish(p1),
    );

    let mut p2 = publish(QoS::ExactlyOnce, Some(9), "t", b"x");
    p2.dup = true;
    p2.retain = true;
    golden(
        V5,
        b"\x3d\x07\x00\x01t\x00\x09\x00x",
        &Packet::Publish(p2.clone()),
    );
    golden(V311, b"\x3d\x06\x00\x01t\x00\x09x", &Packet::Publish(p2));
}

#[test]
fn publish_payload_is_not_copied() {
    let mut dec = connected(V311);
    let mut buf = BytesMut::from(&b"\x30\x0a\x00\x03a/bhello"[..]);
    let base = buf.as_ptr() as usize;
    let Some(Packet::Publish(p)) = dec.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(p.payload.as_ptr() as usize, base + 7);
}

#[test]
fn empty_topic_with_alias_v5() {
    let mut p = publish(QoS::AtMostOnce, None, "", b"");
    p.properties.topic_alias = Some(3);
    golden(V5, b"\x30\x06\x00\x00\x03\x23\x00\x03", &Packet::Publish(p));
}

#[test]
fn subscribe_with_options() {
    let p = Packet::Subscribe(Subscribe {
        packet_id: 10,
        properties: Properties {
            subscription_identifiers: vec![7],
            ..Properties::default()
        },
        subscriptions: vec![
            Subscription {
                filter: s("a/+"),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: false,
                    retain_as_published: true,
                    retain_handling: RetainHandling::DoNotSend,
                },
            },
            Subscription {
                filter: s("$share/g/b/#"),
                options: SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    ..Default::default()
                },
            },
        ],
    });
    golden(
        V5,
        b"\x82\x1a\x00\x0a\x02\x0b\x07\x00\x03a/+\x29\x00\x0c$share/g/b/#\x02",
        &p,
    );
    let p = Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        subscriptions: vec![Subscription {
            filter: s("a/b"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
    });
    golden(V311, b"\x82\x08\x00\x01\x00\x03a/b\x01", &p);
}

#[test]
fn acks() {
    let ack = |id, r| PubResponse {
        packet_id: id,
        reason: ReasonCode(r),
        properties: Properties::default(),
    };
    golden(V5, b"\x40\x02\x00\x01", &Packet::PubAck(ack(1, 0)));
    golden(V5, b"\x50\x03\x00\x01\x10", &Packet::PubRec(ack(1, 0x10)));
    golden(V311, b"\x62\x02\x00\x02", &Packet::PubRel(ack(2, 0)));
    let mut a = ack(3, 0x87);
    a.properties.reason_string = Some(s("no"));
    golden(
        V5,
        b"\x70\x09\x00\x03\x87\x05\x1f\x00\x02no",
        &Packet::PubComp(a),
    );
    // 5.0: reason code with a zero property length is accepted too.
    let got = decode_one(&mut connected(V5), b"\x40\x04\x00\x01\x10\x00").unwrap();
    assert_eq!(got, Packet::PubAck(ack(1, 0x10)));

    let sa = SubAck {
        packet_id: 4,
        properties: Properties::default(),
        codes: vec![ReasonCode(0), ReasonCode(2), ReasonCode(0x80)],
    };
    golden(
        V311,
        b"\x90\x05\x00\x04\x00\x02\x80",
        &Packet::SubAck(sa.clone()),
    );
    golden(V5, b"\x90\x06\x00\x04\x00\x00\x02\x80", &Packet::SubAck(sa));
    let ua = SubAck {
        packet_id: 5,
        properties: Properties::default(),
        codes: vec![ReasonCode(0x11)],
    };
    golden(
        V5,
        b"\xb0\x04\x00\x05\x00\x11",
        &Packet::UnsubAck(ua.clone()),
    );
    golden(
        V311,
        b"\xb0\x02\x00\x05",
        &Packet::UnsubAck(SubAck {
            codes: vec![],
            ..ua
        }),
    );
    let u = Unsubscribe {
        packet_id: 6,
        properties: Properties::default(),
        filters: vec![s("a/#")],
    };
    golden(
        V311,
        b"\xa2\x07\x00\x06\x00\x03a/#",
        &Packet::Unsubscribe(u.clone()),
    );
    golden(
        V5,
        b"\xa2\x08\x00\x06\x00\x00\x03a/#",
        &Packet::Unsubscribe(u),
    );
}

#[test]
fn ping_disconnect_auth() {
    golden(V311, b"\xc0\x00", &Packet::PingReq);
    golden(V5, b"\xd0\x00", &Packet::PingResp);
    golden(
        V311,
        b"\xe0\x00",
        &Packet::Disconnect(ReasonOnly::default()),
    );
    // The zero-length 5.0 DISCONNECT: reason 0x00 Normal disconnection, will not sent.
    golden(V5, b"\xe0\x00", &Packet::Disconnect(ReasonOnly::default()));
    let with_will = ReasonOnly {
        reason: ReasonCode::DISCONNECT_WITH_WILL,
        ..ReasonOnly::default()
    };
    golden(V5, b"\xe0\x01\x04", &Packet::Disconnect(with_will));
    let too_large = ReasonOnly {
        reason: ReasonCode::PACKET_TOO_LARGE,
        properties: Properties {
            session_expiry_interval: Some(0),
            ..Properties::default()
        },
    };
    golden(
        V5,
        b"\xe0\x07\x95\x05\x11\x00\x00\x00\x00",
        &Packet::Disconnect(too_large),
    );
    golden(V5, b"\xf0\x00", &Packet::Auth(ReasonOnly::default()));
    let auth = ReasonOnly {
        reason: ReasonCode::CONTINUE_AUTHENTICATION,
        properties: Properties {
            authentication_method: Some(s("SCRAM")),
            authentication_data: Some(Bytes::from_static(b"\x00\x01")),
            ..Properties::default()
        },
    };
    golden(
        V5,
        b"\xf0\x0f\x18\x0d\x15\x00\x05SCRAM\x16\x00\x02\x00\x01",
        &Packet::Auth(auth),
    );
}

#[test]
fn v311_drops_v5_only_fields_when_encoding() {
    let mut a = PubResponse {
        packet_id: 1,
        reason: ReasonCode(0x80),
        properties: Properties::default(),
    };
    a.properties.reason_string = Some(s("x"));
    assert_eq!(enc(&Packet::PubAck(a), V311), b"\x40\x02\x00\x01");
    let d = ReasonOnly {
        reason: ReasonCode(0x8e),
        ..ReasonOnly::default()
    };
    assert_eq!(enc(&Packet::Disconnect(d), V311), b"\xe0\x00");
    let mut out = BytesMut::new();
    assert_eq!(
        encode(&Packet::Auth(ReasonOnly::default()), V311, &mut out),
        Err(EncodeError::NotInVersion(V311))
    );
    assert!(out.is_empty());
}

#[test]
fn byte_at_a_time() {
    let mut stream = Vec::new();
    stream.extend_from_slice(b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01c");
    stream.extend_from_slice(b"\x32\x22\x00\x03a/b\x00\x07\x18\x02\x00\x00\x00\x3c\x08\x00\x01r\x09\x00\x02\x01\x02\x23\x00\x05\x26\x00\x01k\x00\x01vhi");
    let big = vec![b'z'; 300];
    let mut p = publish(QoS::AtMostOnce, None, "big", b"");
    p.payload = Bytes::from(big);
    stream.extend_from_slice(&enc(&Packet::Publish(p.clone()), V5));
    stream.extend_from_slice(b"\xc0\x00\xe0\x00");
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for b in &stream {
        buf.extend_from_slice(&[*b]);
        while let Some(p) = dec.decode(&mut buf).unwrap() {
            got.push(p);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(got.len(), 5);
    assert!(matches!(&got[0], Packet::Connect(c) if c.client_id == "c"));
    assert!(matches!(&got[1], Packet::Publish(x) if x.packet_id == Some(7)));
    assert_eq!(got[2], Packet::Publish(p));
    assert_eq!(got[3], Packet::PingReq);
    assert_eq!(got[4], Packet::Disconnect(ReasonOnly::default()));
}
