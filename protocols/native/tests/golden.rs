//! Hand-written byte vectors that pin the version 1 wire format. If one of these fails, the
//! format changed: that needs a new protocol version, not a new vector.

use bytes::{Bytes, BytesMut};
use junction_native::*;

/// Concatenates hand-written pieces.
fn cat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

/// `frame` encodes to exactly `wire`, and `wire` decodes to exactly `frame`.
fn check(frame: Frame, wire: &[u8]) {
    let declared = u32::from_le_bytes(wire[..4].try_into().unwrap()) as usize;
    assert_eq!(declared + 4, wire.len(), "the vector's own length prefix");

    let mut out = BytesMut::new();
    encode(&frame, &mut out).unwrap();
    assert_eq!(&out[..], wire, "encoding of {frame:?}");

    let mut buf = BytesMut::from(wire);
    assert_eq!(Decoder::default().decode(&mut buf).unwrap(), Some(frame));
    assert!(buf.is_empty());
}

#[test]
fn hello() {
    let frame = Frame::new(
        1,
        Hello {
            client_id: "c1".into(),
            username: "u".into(),
            password: "p".into(),
            vhost: "/".into(),
            heartbeat_ms: 30_000,
            max_frame: 65_536,
        },
    );
    let wire = cat(&[
        &[0x1d, 0, 0, 0],          // length 29 = 8 header + 21 payload
        &[0x01],                   // version 1
        &[0x01],                   // opcode Hello
        &[0x00, 0x00],             // flags
        &[0x01, 0, 0, 0],          // request id 1
        &[0x02, 0x00, b'c', b'1'], // client_id "c1"
        &[0x01, 0x00, b'u'],       // username "u"
        &[0x01, 0x00, b'p'],       // password "p"
        &[0x01, 0x00, b'/'],       // vhost "/"
        &[0x30, 0x75, 0x00, 0x00], // heartbeat_ms 30000 = 0x7530
        &[0x00, 0x00, 0x01, 0x00], // max_frame 65536 = 0x10000
    ]);
    check(frame, &wire);
}

#[test]
fn heartbeat() {
    check(
        Frame::push(Body::Heartbeat),
        &[0x08, 0, 0, 0, 0x01, 0x03, 0, 0, 0, 0, 0, 0],
    );
}

#[test]
fn publish_with_properties() {
    let frame = Frame::new(
        2,
        Publish {
            exchange: "ex".into(),
            routing_key: "rk".into(),
            mandatory: true,
            confirm: true,
            properties: Properties {
                correlation_id: Some(Bytes::from_static(b"c")),
                content_type: Some("t/p".into()),
                timestamp_ms: Some(1),
                priority: Some(5),
                persistent: true,
                keys: vec!["k".into()],
                headers: vec![("h".into(), Bytes::from_static(b"v"))],
                ..Default::default()
            },
            body: Bytes::from_static(b"hi"),
            producer: None,
        },
    );
    let wire = cat(&[
        &[0x3e, 0, 0, 0],          // length 62 = 8 header + 54 payload
        &[0x01, 0x20, 0x00, 0x00], // version 1, opcode Publish, flags
        &[0x02, 0, 0, 0],          // request id 2
        &[0x02, 0x00, b'e', b'x'], // exchange "ex"
        &[0x02, 0x00, b'r', b'k'], // routing_key "rk"
        &[0x01],                   // mandatory
        &[0x01],                   // confirm
        // properties bitmap 0x45aa: correlation_id (bit 1), content_type (3),
        // timestamp_ms (5), priority (7), persistent (8), keys (10), headers (14)
        &[0xaa, 0x45],
        &[0x01, 0, 0, 0, b'c'],                   // correlation_id bytes "c"
        &[0x03, 0x00, b't', b'/', b'p'],          // content_type "t/p"
        &[0x01, 0, 0, 0, 0, 0, 0, 0],             // timestamp_ms 1
        &[0x05],                                  // priority 5
        &[0x01, 0, 0, 0, 0x01, 0x00, b'k'],       // keys ["k"]
        &[0x01, 0x00],                            // headers: 1 entry
        &[0x01, 0x00, b'h', 0x01, 0, 0, 0, b'v'], // "h" => "v"
        &[0x02, 0, 0, 0, b'h', b'i'],             // body "hi"
    ]);
    check(frame, &wire);
}

#[test]
fn deliver() {
    let frame = Frame::push(Deliver {
        consumer_id: 7,
        delivery_id: 42,
        queue: "q".into(),
        partition: 3,
        offset: 100,
        redelivered: true,
        delivery_count: 2,
        store_ts: 1_700_000_000_000,
        exchange: String::new(),
        routing_key: "q".into(),
        properties: Properties::default(),
        body: Bytes::from_static(b"x"),
    });
    let wire = cat(&[
        &[0x3a, 0, 0, 0],                                  // length 58 = 8 + 50
        &[0x01, 0x36, 0x00, 0x00],                         // version 1, opcode Deliver, flags
        &[0, 0, 0, 0],                                     // request id 0: a push
        &[0x07, 0, 0, 0],                                  // consumer_id 7
        &[0x2a, 0, 0, 0, 0, 0, 0, 0],                      // delivery_id 42
        &[0x01, 0x00, b'q'],                               // queue "q"
        &[0x03, 0x00],                                     // partition 3
        &[0x64, 0, 0, 0, 0, 0, 0, 0],                      // offset 100
        &[0x01],                                           // redelivered
        &[0x02, 0, 0, 0],                                  // delivery_count 2
        &[0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0x00, 0x00], // store_ts 1_700_000_000_000
        &[0x00, 0x00],                                     // exchange ""
        &[0x01, 0x00, b'q'],                               // routing_key "q"
        &[0x00, 0x00],                                     // properties: none
        &[0x01, 0, 0, 0, b'x'],                            // body "x"
    ]);
    check(frame, &wire);
}

#[test]
fn error_response() {
    let frame = Frame::new(9, ErrorResponse::new(ErrorCode::NotFound, "no q"));
    let wire = cat(&[
        &[0x10, 0, 0, 0],                      // length 16 = 8 + 8
        &[0x01, 0x07, 0x00, 0x00],             // version 1, opcode Error, flags
        &[0x09, 0, 0, 0],                      // request id 9
        &[0x94, 0x01],                         // code 404
        &[0x04, 0x00, b'n', b'o', b' ', b'q'], // message "no q"
    ]);
    check(frame, &wire);
}

#[test]
fn connection_error_with_an_unknown_code() {
    let frame = Frame::push(ErrorResponse::new(ErrorCode::Other(999), ""));
    let wire = [
        0x0c, 0, 0, 0, // length 12
        0x01, 0x07, 0, 0, // version, Error, flags
        0, 0, 0, 0, // request id 0: connection-level
        0xe7, 0x03, // code 999
        0x00, 0x00, // message ""
    ];
    check(frame, &wire);
}

#[test]
fn subscribe_with_a_start_offset() {
    let frame = Frame::new(
        0x0102_0304,
        Subscribe {
            queue: "q".into(),
            group: String::new(),
            prefetch: 10,
            no_ack: false,
            start: StartPosition::Offset(5),
            exclusive_partitions: true,
            ..Subscribe::default()
        },
    );
    let wire = cat(&[
        &[0x1c, 0, 0, 0],                // length 28 = 8 + 20
        &[0x01, 0x30, 0x00, 0x00],       // version 1, opcode Subscribe, flags
        &[0x04, 0x03, 0x02, 0x01],       // request id 0x01020304
        &[0x01, 0x00, b'q'],             // queue "q"
        &[0x00, 0x00],                   // group ""
        &[0x0a, 0, 0, 0],                // prefetch 10
        &[0x00],                         // no_ack false
        &[0x03, 5, 0, 0, 0, 0, 0, 0, 0], // start Offset(5)
        &[0x01],                         // exclusive_partitions
    ]);
    check(frame, &wire);
}

#[test]
fn error_codes_mirror_amqp() {
    let expected = [
        (ErrorCode::ContentTooLarge, 311),
        (ErrorCode::NoRoute, 312),
        (ErrorCode::ConnectionForced, 320),
        (ErrorCode::InvalidPath, 402),
        (ErrorCode::AccessRefused, 403),
        (ErrorCode::NotFound, 404),
        (ErrorCode::ResourceLocked, 405),
        (ErrorCode::PreconditionFailed, 406),
        (ErrorCode::FrameError, 501),
        (ErrorCode::SyntaxError, 502),
        (ErrorCode::CommandInvalid, 503),
        (ErrorCode::ChannelError, 504),
        (ErrorCode::UnexpectedFrame, 505),
        (ErrorCode::ResourceError, 506),
        (ErrorCode::NotAllowed, 530),
        (ErrorCode::NotImplemented, 540),
        (ErrorCode::InternalError, 541),
    ];
    assert_eq!(ErrorCode::ALL.len(), expected.len());
    for (code, value) in expected {
        assert_eq!(code.code(), value);
        assert_eq!(ErrorCode::from_code(value), code);
    }
    assert_eq!(ErrorCode::from_code(200), ErrorCode::Other(200));
    assert_eq!(ErrorCode::NotFound.to_string(), "404 NOT_FOUND");
}

#[test]
fn constants() {
    assert_eq!(PROTOCOL_VERSION, 1);
    assert_eq!(DEFAULT_MAX_FRAME, 16 * 1024 * 1024);
    assert_eq!(MIN_MAX_FRAME, 4096);
    assert_eq!(DEFAULT_PORT, 5680);
}
