//! Every decode error with the reason code the gateway sends.

use bytes::BytesMut;

use super::{connected, decode_all};
use crate::ProtocolVersion::{V311, V5};
use crate::*;

fn code(r: Result<Vec<Packet>, DecodeError>) -> u8 {
    match r {
        Ok(p) => panic!("decoding should fail: {p:?}"),
        Err(e) => e.reason_code().0,
    }
}

/// Decodes `bytes` (a complete packet) with `dec`; returns the error's reason code.
fn check(mut dec: Decoder, bytes: &[u8], what: &str) -> u8 {
    let mut buf = BytesMut::from(bytes);
    match dec.decode(&mut buf) {
        Ok(Some(p)) => panic!("{what}: decoding should fail, got {p:?}"),
        Ok(None) => panic!("{what}: incomplete, {} bytes left", buf.len()),
        Err(e) => e.reason_code().0,
    }
}

#[test]
fn unsupported_protocol_levels() {
    // 3.1 "MQIsdp" level 3: answer with the 3.1.1 CONNACK, return code 0x01.
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let err = decode_all(&mut dec, b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c").unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnsupportedProtocol {
            name: "MQIsdp".into(),
            level: 3
        }
    );
    assert_eq!(err.connack(), Some((V311, ReasonCode(0x01))));
    // A level above 5: answer with the 5.0 CONNACK, reason code 0x84.
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let err = decode_all(
        &mut dec,
        b"\x10\x0e\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x01c",
    )
    .unwrap_err();
    assert_eq!(err.connack(), Some((V5, ReasonCode(0x84))));
    assert_eq!(err.reason_code(), ReasonCode::UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(dec.version(), None);
    // Other errors have no CONNACK of their own.
    assert_eq!(DecodeError::Malformed("x").connack(), None);
}

#[test]
fn version_is_known_even_if_the_rest_of_connect_is_bad() {
    // 5.0 CONNECT with the reserved flag set: the gateway answers CONNACK 0x81 in 5.0 format.
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let r = decode_all(
        &mut dec,
        b"\x10\x0e\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01c",
    );
    assert_eq!(code(r), 0x81);
    assert_eq!(dec.version(), Some(V5));
}

#[test]
fn packet_too_large_after_fixed_header() {
    let mut dec = Decoder::with_version(V5, 16);
    // Only the fixed header has arrived: 0x30, remaining length 16383.
    let mut buf = BytesMut::from(&b"\x30\xff\x7f"[..]);
    let err = dec.decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 16386,
            max: 16
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    // The limit is on the whole packet: 2 + 14 = 16 passes, 2 + 15 does not.
    let mut dec = Decoder::with_version(V311, 16);
    assert!(dec
        .decode(&mut BytesMut::from(&b"\x30\x0e"[..]))
        .unwrap()
        .is_none());
    let mut dec = Decoder::with_version(V311, 16);
    assert_eq!(code(decode_all(&mut dec, b"\x30\x0f")), 0x95);
    // Before CONNECT too.
    let mut dec = Decoder::new(10);
    assert_eq!(code(decode_all(&mut dec, b"\x10\x0d")), 0x95);
}

/// (version, bytes after CONNECT, expected reason code, what).
const CASES: &[(ProtocolVersion, &[u8], u8, &str)] = &[
    (
        V311,
        b"\x30\xff\xff\xff\xff\x7f",
        0x81,
        "remaining length of 5 bytes",
    ),
    (V311, b"\x00\x00", 0x81, "reserved packet type 0"),
    (V311, b"\xf0\x00", 0x81, "AUTH in 3.1.1"),
    (V5, b"\xf2\x00", 0x81, "AUTH with flags"),
    (V311, b"\x60\x02\x00\x01", 0x81, "PUBREL without flags 0010"),
    (
        V311,
        b"\x80\x08\x00\x01\x00\x03a/b\x01",
        0x81,
        "SUBSCRIBE without flags 0010",
    ),
    (
        V311,
        b"\xa0\x07\x00\x01\x00\x03a/b",
        0x81,
        "UNSUBSCRIBE without flags 0010",
    ),
    (V311, b"\xc1\x00", 0x81, "PINGREQ with flags"),
    (V311, b"\xc0\x01\x00", 0x81, "PINGREQ with a body"),
    (V311, b"\xe0\x01\x00", 0x81, "3.1.1 DISCONNECT with a body"),
    (V311, b"\x36\x06\x00\x01t\x00\x01x", 0x81, "PUBLISH QoS 3"),
    (V311, b"\x38\x04\x00\x01tx", 0x81, "DUP on QoS 0"),
    (
        V311,
        b"\x32\x05\x00\x01t\x00\x00",
        0x81,
        "packet identifier 0",
    ),
    (
        V311,
        b"\x40\x02\x00\x00",
        0x81,
        "PUBACK packet identifier 0",
    ),
    (
        V311,
        b"\x40\x03\x00\x01\x00",
        0x81,
        "3.1.1 PUBACK with a reason code",
    ),
    (
        V311,
        b"\x30\x04\x00\x05ab",
        0x81,
        "string longer than the packet",
    ),
    (V311, b"\x30\x04\x00\x02\xc3\x28", 0x81, "topic not UTF-8"),
    (V311, b"\x30\x05\x00\x03a\x00b", 0x81, "topic with U+0000"),
    (
        V311,
        b"\x30\x05\x00\x03a/+",
        0x90,
        "wildcard in a topic name",
    ),
    (V311, b"\x30\x02\x00\x00", 0x90, "empty 3.1.1 topic"),
    (
        V5,
        b"\x30\x03\x00\x00\x00",
        0x82,
        "empty 5.0 topic without alias",
    ),
    (V311, b"\x82\x02\x00\x01", 0x82, "SUBSCRIBE without filters"),
    (
        V311,
        b"\x82\x0a\x00\x01\x00\x05a/#/b\x00",
        0x8f,
        "# not last",
    ),
    (
        V311,
        b"\x82\x08\x00\x01\x00\x03a+b\x00",
        0x8f,
        "+ inside a level",
    ),
    (
        V311,
        b"\x82\x08\x00\x01\x00\x03a/b\x04",
        0x81,
        "3.1.1 subscription option bits",
    ),
    (
        V311,
        b"\x82\x08\x00\x01\x00\x03a/b\x03",
        0x81,
        "subscription QoS 3",
    ),
    (
        V5,
        b"\x82\x09\x00\x01\x00\x00\x03a/b\x40",
        0x81,
        "5.0 reserved option bits",
    ),
    (
        V5,
        b"\x82\x09\x00\x01\x00\x00\x03a/b\x30",
        0x82,
        "retain handling 3",
    ),
    (
        V5,
        b"\x82\x10\x00\x01\x00\x00\x0a$share/g/a\x04",
        0x82,
        "no local on a shared subscription",
    ),
    (
        V5,
        b"\x82\x0e\x00\x01\x00\x00\x08$share/g\x00",
        0x8f,
        "share without a filter",
    ),
    (
        V5,
        b"\x82\x0d\x00\x01\x04\x0b\x01\x0b\x02\x00\x03a/b\x00",
        0x82,
        "two subscription identifiers",
    ),
    (
        V5,
        b"\x82\x0b\x00\x01\x02\x0b\x00\x00\x03a/b\x00",
        0x82,
        "subscription identifier 0",
    ),
    (
        V311,
        b"\xa2\x02\x00\x01",
        0x82,
        "UNSUBSCRIBE without filters",
    ),
    (
        V311,
        b"\xa2\x07\x00\x01\x00\x03#/a",
        0x8f,
        "UNSUBSCRIBE bad filter",
    ),
    (
        V5,
        b"\x30\x0e\x00\x01t\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x01",
        0x82,
        "duplicate property",
    ),
    (
        V5,
        b"\x30\x09\x00\x01t\x05\x11\x00\x00\x00\x01",
        0x81,
        "property not allowed in PUBLISH",
    ),
    (
        V5,
        b"\x30\x06\x00\x01t\x02\x7f\x00",
        0x81,
        "unknown property",
    ),
    (
        V5,
        b"\x30\x06\x00\x01t\x05\x02\x00",
        0x81,
        "property length past the end",
    ),
    (
        V5,
        b"\x30\x06\x00\x01t\x02\x01\x02",
        0x82,
        "payload format indicator 2",
    ),
    (
        V5,
        b"\x30\x07\x00\x01t\x03\x23\x00\x00",
        0x82,
        "topic alias 0",
    ),
    (
        V5,
        b"\x30\x05\x00\x01t\x02\x02",
        0x81,
        "truncated four-byte property",
    ),
    (
        V5,
        b"\xe0\x04\x00\x02\x26\x00",
        0x81,
        "truncated user property",
    ),
    (
        V5,
        b"\xe0\x02\x8e\x01",
        0x81,
        "DISCONNECT property length past the end",
    ),
    (
        V5,
        b"\xe0\x03\x00\x00\x00",
        0x81,
        "bytes after DISCONNECT properties",
    ),
    (V5, b"\x20\x03\x02\x00\x00", 0x81, "reserved CONNACK flags"),
    (
        V311,
        b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
        0x82,
        "second CONNECT",
    ),
];

#[test]
fn malformed_and_protocol_errors() {
    for (v, bytes, expected, what) in CASES {
        let got = check(connected(*v), bytes, what);
        assert_eq!(got, *expected, "{what}: got {got:#04x}");
    }
}

/// (CONNECT bytes, expected reason code, what).
const CONNECT_CASES: &[(&[u8], u8, &str)] = &[
    (b"\xc0\x00", 0x82, "first packet not CONNECT"),
    (
        b"\x11\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00",
        0x81,
        "CONNECT with flags",
    ),
    (
        b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00",
        0x81,
        "reserved connect flag",
    ),
    (
        b"\x10\x0c\x00\x04MQTT\x04\x0a\x00\x3c\x00\x00",
        0x81,
        "will QoS without will",
    ),
    (
        b"\x10\x0c\x00\x04MQTT\x04\x22\x00\x3c\x00\x00",
        0x81,
        "will retain without will",
    ),
    (
        b"\x10\x11\x00\x04MQTT\x04\x1e\x00\x3c\x00\x00\x00\x01t\x00\x00",
        0x81,
        "will QoS 3",
    ),
    (
        b"\x10\x0e\x00\x04MQTT\x04\x42\x00\x3c\x00\x00\x00\x00",
        0x81,
        "3.1.1 password without user",
    ),
    (
        b"\x10\x11\x00\x04MQTT\x04\x06\x00\x3c\x00\x00\x00\x01#\x00\x00",
        0x90,
        "will topic with #",
    ),
    (
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x00\x00",
        0x81,
        "trailing byte",
    ),
    (
        b"\x10\x0b\x00\x04MQTT\x04\x02\x00\x3c\x00",
        0x81,
        "truncated client id",
    ),
    (
        b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x00",
        0x82,
        "receive maximum 0",
    ),
    (
        b"\x10\x12\x00\x04MQTT\x05\x02\x00\x3c\x05\x27\x00\x00\x00\x00\x00\x00",
        0x82,
        "maximum packet size 0",
    ),
    (
        b"\x10\x0f\x00\x04MQTT\x05\x02\x00\x3c\x02\x17\x02\x00\x00",
        0x82,
        "request problem information 2",
    ),
    (
        b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x03\x23\x00\x01\x00\x00",
        0x81,
        "topic alias in CONNECT",
    ),
    (
        b"\x10\x08\x00\x04MQ\xffT\x04\x02",
        0x81,
        "protocol name not UTF-8",
    ),
];

#[test]
fn connect_errors() {
    for (bytes, expected, what) in CONNECT_CASES {
        let got = check(Decoder::new(DEFAULT_MAX_PACKET_SIZE), bytes, what);
        assert_eq!(got, *expected, "{what}: got {got:#04x}");
    }
}

#[test]
fn encode_errors() {
    let mut out = BytesMut::new();
    let p = Publish {
        qos: QoS::AtLeastOnce,
        topic: "t".into(),
        ..Publish::default()
    };
    assert!(matches!(
        encode(&Packet::Publish(p), V311, &mut out),
        Err(EncodeError::Invalid(_))
    ));
    let p = Publish {
        topic: "t".into(),
        packet_id: Some(1),
        ..Publish::default()
    };
    assert!(matches!(
        encode(&Packet::Publish(p), V5, &mut out),
        Err(EncodeError::Invalid(_))
    ));
    let p = Publish {
        topic: "x".repeat(70_000),
        ..Publish::default()
    };
    assert_eq!(
        encode(&Packet::Publish(p), V5, &mut out),
        Err(EncodeError::FieldTooLong(70_000))
    );
    let c = ConnAck {
        code: ReasonCode(0x80),
        ..ConnAck::default()
    };
    assert!(encode(&Packet::ConnAck(c.clone()), V311, &mut out).is_err());
    assert!(encode(&Packet::ConnAck(c), V5, &mut out).is_ok());
}

#[test]
fn server_side_rejects_server_packets() {
    for bytes in [
        &b"\x20\x02\x00\x00"[..],
        b"\x90\x03\x00\x01\x00",
        b"\xb0\x02\x00\x01",
        b"\xd0\x00",
    ] {
        let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
        let connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00";
        assert_eq!(decode_all(&mut dec, connect).unwrap().len(), 1);
        assert_eq!(check(dec, bytes, "server packet"), 0x82);
    }
}

#[test]
fn server_side_rejects_subscription_identifier_in_publish() {
    let mut dec = Decoder::new(DEFAULT_MAX_PACKET_SIZE);
    let connect = b"\x10\x0d\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x00";
    assert_eq!(decode_all(&mut dec, connect).unwrap().len(), 1);
    assert_eq!(check(dec, b"\x30\x06\x00\x01t\x02\x0b\x01", "sub id"), 0x82);
}
