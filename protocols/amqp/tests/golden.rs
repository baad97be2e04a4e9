//! Golden byte vectors, built by hand from the AMQP 0-9-1 spec and written out in full.

use amq_protocol::protocol::{basic, connection, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use bytes::{Bytes, BytesMut};
use junction_amqp::*;

/// Decodes every whole frame in `bytes`.
fn decode_all(frame_max: u32, bytes: &[u8]) -> Vec<Frame> {
    let mut dec = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = dec.decode(&mut buf).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    frames
}

fn decode_err(frame_max: u32, bytes: &[u8]) -> FrameError {
    let mut dec = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::from(bytes);
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("no error; {} bytes left", buf.len()),
            Err(e) => return e,
        }
    }
}

#[test]
fn protocol_header() {
    assert_eq!(&PROTOCOL_HEADER, b"AMQP\x00\x00\x09\x01");
    assert_eq!(
        parse_protocol_header(&[b'A', b'M', b'Q', b'P', 0, 0, 9, 1]),
        HeaderCheck::Supported
    );
    // Extra bytes after the header (a pipelining client) do not matter.
    assert_eq!(
        parse_protocol_header(b"AMQP\x00\x00\x09\x01\x01\x00"),
        HeaderCheck::Supported
    );
    for n in 0..8 {
        assert_eq!(
            parse_protocol_header(&PROTOCOL_HEADER[..n]),
            HeaderCheck::Incomplete,
            "{n} bytes"
        );
    }
    // AMQP 0-9 / 0-8 / 1.0 headers: another version.
    assert_eq!(
        parse_protocol_header(b"AMQP\x01\x01\x00\x09"),
        HeaderCheck::Unsupported {
            version: Some([1, 1, 0, 9])
        }
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x00\x01\x00\x00"),
        HeaderCheck::Unsupported {
            version: Some([0, 1, 0, 0])
        }
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x00\x00\x09\x00"),
        HeaderCheck::Unsupported {
            version: Some([0, 0, 9, 0])
        }
    );
    // Garbage is refused from the first differing byte.
    assert_eq!(
        parse_protocol_header(b"G"),
        HeaderCheck::Unsupported { version: None }
    );
    assert_eq!(
        parse_protocol_header(b"\x16\x03\x01"),
        HeaderCheck::Unsupported { version: None }
    );
    assert_eq!(
        parse_protocol_header(b"AMQP\x01"),
        HeaderCheck::Unsupported { version: None }
    );
}

#[test]
fn heartbeat_frame() {
    let wire = [0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xCE];
    assert_eq!(HEARTBEAT_FRAME, wire);
    let mut out = BytesMut::new();
    encode_heartbeat(&mut out);
    assert_eq!(&out[..], &wire);
    let frames = decode_all(4096, &wire);
    assert_eq!(
        frames,
        vec![Frame {
            channel: 0,
            payload: FramePayload::Heartbeat
        }]
    );
    // A heartbeat on channel 1, or with a payload, is a frame error (spec 4.2.7).
    let e = decode_err(4096, &[8, 0, 1, 0, 0, 0, 0, 0xCE]);
    assert_eq!(
        e,
        FrameError::InvalidHeartbeat {
            channel: 1,
            size: 0
        }
    );
    assert_eq!(e.reply_code(), 501);
    let e = decode_err(4096, &[8, 0, 0, 0, 0, 0, 1, 0, 0xCE]);
    assert_eq!(e.reply_code(), 501);
}

/// connection.start-ok as pika/lapin send it (client properties trimmed to two entries).
const START_OK: &[u8] = &[
    0x01, // frame type: method
    0x00, 0x00, // channel 0
    0x00, 0x00, 0x00, 0x54, // payload size 84
    0x00, 0x0A, 0x00, 0x0B, // connection (10) . start-ok (11)
    0x00, 0x00, 0x00, 0x30, // client-properties: table of 48 octets
    0x0C, b'c', b'a', b'p', b'a', b'b', b'i', b'l', b'i', b't', b'i', b'e', b's', // key
    b'F', 0x00, 0x00, 0x00, 0x0D, // nested table of 13 octets
    0x0A, b'b', b'a', b's', b'i', b'c', b'.', b'n', b'a', b'c', b'k', b't', 0x01, // bool
    0x07, b'p', b'r', b'o', b'd', b'u', b'c', b't', // key
    b'S', 0x00, 0x00, 0x00, 0x04, b'p', b'i', b'k', b'a', // long string
    0x05, b'P', b'L', b'A', b'I', b'N', // mechanism
    0x00, 0x00, 0x00, 0x0C, 0x00, b'g', b'u', b'e', b's', b't', 0x00, b'g', b'u', b'e', b's',
    b't', // response "\0guest\0guest"
    0x05, b'e', b'n', b'_', b'U', b'S', // locale
    0xCE, // frame end
];

#[test]
fn connection_start_ok_golden() {
    let frames = decode_all(FRAME_MIN_SIZE, START_OK);
    let mut caps = FieldTable::default();
    caps.insert("basic.nack".into(), AMQPValue::Boolean(true));
    let mut props = FieldTable::default();
    props.insert("capabilities".into(), AMQPValue::FieldTable(caps));
    props.insert(
        "product".into(),
        AMQPValue::LongString(LongString::from("pika")),
    );
    let expected = AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: props,
        mechanism: "PLAIN".into(),
        response: LongString::from("\0guest\0guest"),
        locale: "en_US".into(),
    }));
    assert_eq!(
        frames,
        vec![Frame {
            channel: 0,
            payload: FramePayload::Method(expected.clone())
        }]
    );
    let AMQPClass::Connection(connection::AMQPMethod::StartOk(ok)) = &expected else {
        unreachable!()
    };
    assert_eq!(
        parse_plain(ok.response.as_bytes()),
        Ok(("guest".into(), "guest".into()))
    );
    assert_eq!(check_client_method(0, &expected), Ok(()));
    // Re-encoding gives the same bytes (the table's keys are already in sorted order).
    let mut out = BytesMut::new();
    encode_method(0, &expected, &mut out).unwrap();
    assert_eq!(&out[..], START_OK);
}

/// basic.publish("", "hello") + header(content-type text/plain, delivery-mode 2, 11 octets)
/// + body "hello world", on channel 1.
const PUBLISH: &[u8] = &[
    // method frame
    0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0E, // type 1, channel 1, size 14
    0x00, 0x3C, 0x00, 0x28, // basic (60) . publish (40)
    0x00, 0x00, // ticket
    0x00, // exchange ""
    0x05, b'h', b'e', b'l', b'l', b'o', // routing key "hello"
    0x00, // mandatory=0 immediate=0
    0xCE, //
    // content header frame
    0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x1A, // type 2, channel 1, size 26
    0x00, 0x3C, // class basic
    0x00, 0x00, // weight
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0B, // body size 11
    0x90, 0x00, // flags: content-type (bit 15), delivery-mode (bit 12)
    0x0A, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n', // content-type
    0x02, // delivery-mode persistent
    0xCE, //
    // body frame
    0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0B, // type 3, channel 1, size 11
    b'h', b'e', b'l', b'l', b'o', b' ', b'w', b'o', b'r', b'l', b'd', //
    0xCE,
];

fn publish_method(routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: routing_key.into(),
        mandatory: false,
        immediate: false,
    }))
}

#[test]
fn basic_publish_golden() {
    let frames = decode_all(4096, PUBLISH);
    assert_eq!(frames.len(), 3);
    assert_eq!(
        frames[0].payload,
        FramePayload::Method(publish_method("hello"))
    );
    let FramePayload::Header(header) = &frames[1].payload else {
        panic!("not a header: {:?}", frames[1])
    };
    assert_eq!(header.class_id, 60);
    assert_eq!(header.body_size, 11);
    assert_eq!(
        header.properties,
        BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
    );
    assert_eq!(&header.raw[..], &PUBLISH[29..29 + 26]);
    assert_eq!(
        frames[2].payload,
        FramePayload::Body(Bytes::from_static(b"hello world"))
    );

    // Assembled, then encoded again with the same pieces: identical bytes.
    let mut asm = Assembler::default();
    let mut events: Vec<Event> = frames
        .into_iter()
        .filter_map(|f| asm.push(f).unwrap())
        .collect();
    assert_eq!(events.len(), 1);
    let Some(Event::Content {
        channel: 1,
        content,
    }) = events.pop()
    else {
        panic!("no content")
    };
    assert_eq!(content.method.routing_key.as_str(), "hello");
    assert_eq!(content.body, Bytes::from_static(b"hello world"));
    let mut out = BytesMut::new();
    encode_method(1, &publish_method("hello"), &mut out).unwrap();
    encode_content(1, &content.header.raw, &content.body, 4096, &mut out).unwrap();
    assert_eq!(&out[..], PUBLISH);
    // From the parsed properties, the header comes out the same too.
    let raw = encode_header_from_properties(60, 11, &content.header.properties).unwrap();
    assert_eq!(raw, content.header.raw);
}

#[test]
fn bad_frame_end() {
    let mut bytes = PUBLISH[..22].to_vec();
    *bytes.last_mut().unwrap() = 0x00;
    let e = decode_err(4096, &bytes);
    assert_eq!(
        e,
        FrameError::BadFrameEnd {
            channel: 1,
            found: 0
        }
    );
    assert_eq!(e.reply_code(), 501);
    let close = e.close_method();
    let AMQPClass::Connection(connection::AMQPMethod::Close(c)) = close else {
        panic!("{close:?}")
    };
    assert_eq!(c.reply_code, 501);
    assert!(c.reply_text.as_str().starts_with("FRAME_ERROR - "));
}

#[test]
fn oversized_frame_rejected_from_its_header() {
    let mut dec = FrameDecoder::new(4096);
    // A body frame header declaring 4097 octets: refused with only the 7 header bytes seen.
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x01][..]);
    let e = dec.decode(&mut buf).unwrap_err();
    assert_eq!(
        e,
        FrameError::FrameTooLarge {
            channel: 1,
            size: 4097,
            frame_max: 4096
        }
    );
    assert_eq!(e.reply_code(), 501);
    // Six bytes: not yet decided.
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10][..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    // A 4 GiB declaration does not make the decoder reserve 4 GiB.
    let mut buf = BytesMut::from(&[1u8, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF][..]);
    assert!(matches!(
        dec.decode(&mut buf),
        Err(FrameError::FrameTooLarge { .. })
    ));
    assert!(buf.capacity() < 1024);
    // With no limit (frame-max 0), a 4 GiB declaration waits for data but reserves <= 1 MiB.
    let mut unlimited = FrameDecoder::new(0);
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0xFF, 0xFF, 0xFF, 0xF0][..]);
    assert_eq!(unlimited.decode(&mut buf), Ok(None));
    assert!(buf.capacity() <= (1 << 20) + 64);
    // Exactly frame_max is accepted (RabbitMQ's slack of 8), and capacity is reserved.
    let mut buf = BytesMut::from(&[3u8, 0, 1, 0, 0, 0x10, 0x00][..]);
    assert_eq!(dec.decode(&mut buf), Ok(None));
    assert!(buf.capacity() >= 4096 + 8);
}

#[test]
fn unknown_frame_type_rejected_from_first_octet() {
    let e = decode_err(4096, b"A");
    assert_eq!(e, FrameError::UnknownFrameType { frame_type: b'A' });
    assert_eq!(e.reply_code(), 501);
}

#[test]
fn method_errors_carry_codes_and_ids() {
    // Unknown method 60.99: 540 with the ids.
    let e = decode_err(4096, &[1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 99, 0xCE]);
    assert_eq!(e.reply_code(), 540);
    assert_eq!((e.class_id(), e.method_id()), (60, 99));
    // basic.publish cut short: 502 with the ids.
    let e = decode_err(4096, &[1, 0, 1, 0, 0, 0, 6, 0, 60, 0, 40, 0, 0, 0xCE]);
    assert_eq!(e.reply_code(), 502);
    assert_eq!((e.class_id(), e.method_id()), (60, 40));
    // basic.publish with a trailing octet: 502.
    let mut m = PUBLISH[..22].to_vec();
    m[6] = 15;
    m.insert(21, 0);
    assert_eq!(decode_err(4096, &m).reply_code(), 502);
    // A method payload under 4 octets: 501.
    let e = decode_err(4096, &[1, 0, 1, 0, 0, 0, 2, 0, 60, 0xCE]);
    assert_eq!(e.reply_code(), 501);
    // connection.close-ok on channel 1: 503 (spec 4.2.3).
    let e = decode_err(4096, &[1, 0, 1, 0, 0, 0, 4, 0, 10, 0, 51, 0xCE]);
    assert_eq!(e.reply_code(), 503);
    assert_eq!((e.class_id(), e.method_id()), (10, 51));
    // A server-only method from a client: 503 via check_client_method.
    let deliver = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver::default()));
    let e = check_client_method(1, &deliver).unwrap_err();
    assert_eq!((e.reply_code(), e.class_id(), e.method_id()), (503, 60, 60));
    // A short string that is not UTF-8 (amq-protocol refuses it): 502.
    let mut m = PUBLISH[..22].to_vec();
    m[15] = 0xFF;
    assert_eq!(decode_err(4096, &m).reply_code(), 502);
}

/// A field table nesting `depth` tables (the outermost counts as 1).
fn nested_table(depth: usize) -> Vec<u8> {
    let mut table: Vec<u8> = vec![0, 0, 0, 0];
    for _ in 1..depth {
        let mut entry = vec![1u8, b'k', b'F'];
        entry.extend_from_slice(&table);
        table = (entry.len() as u32).to_be_bytes().to_vec();
        table.extend_from_slice(&entry);
    }
    table
}

/// queue.declare("q") on channel 1 with `arguments` as given.
fn queue_declare_frame(arguments: &[u8]) -> Vec<u8> {
    let mut payload = vec![0, 50, 0, 10, 0, 0, 1, b'q', 0];
    payload.extend_from_slice(arguments);
    let mut frame = vec![1, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    frame
}

#[test]
fn deeply_nested_tables_are_refused_not_a_crash() {
    // At the limit, amq-protocol parses it (on a test thread's 2 MiB stack, debug build).
    let frames = decode_all(
        131_072,
        &queue_declare_frame(&nested_table(MAX_TABLE_DEPTH)),
    );
    assert_eq!(frames.len(), 1);
    assert_eq!(
        decode_err(
            131_072,
            &queue_declare_frame(&nested_table(MAX_TABLE_DEPTH + 1))
        )
        .reply_code(),
        502
    );
    // 5000 levels: about 35 KB, far below frame-max; amq-protocol alone overflows the stack.
    let table = nested_table(5000);
    let e = decode_err(131_072, &queue_declare_frame(&table));
    assert_eq!(e.reply_code(), 502);
    assert_eq!((e.class_id(), e.method_id()), (50, 10));

    // The same in a content header's headers property.
    let mut payload = vec![0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x00];
    payload.extend_from_slice(&table);
    let mut frame = vec![2, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xCE);
    assert_eq!(decode_err(131_072, &frame).reply_code(), 502);
}

#[test]
fn content_header_errors() {
    // Under 12 octets: 501.
    let e = decode_err(4096, &[2, 0, 1, 0, 0, 0, 4, 0, 60, 0, 0, 0xCE]);
    assert_eq!(e.reply_code(), 501);
    // Class 50 has no content: 505.
    let e = decode_err(
        4096,
        &[
            2, 0, 1, 0, 0, 0, 14, 0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xCE,
        ],
    );
    assert_eq!(e.reply_code(), 505);
    // Weight must be 0: 502.
    let e = decode_err(
        4096,
        &[
            2, 0, 1, 0, 0, 0, 14, 0, 60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xCE,
        ],
    );
    assert_eq!(e.reply_code(), 502);
    // Properties cut short (content-type flag set, no string): 502.
    let e = decode_err(
        4096,
        &[
            2, 0, 1, 0, 0, 0, 14, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0xCE,
        ],
    );
    assert_eq!(e.reply_code(), 502);
}

#[test]
fn truncated_stream_at_eof() {
    let dec = FrameDecoder::new(4096);
    assert_eq!(dec.check_eof(&[]), Ok(()));
    let e = dec.check_eof(&PUBLISH[..10]).unwrap_err();
    assert_eq!(
        e,
        FrameError::Truncated {
            channel: 1,
            kind: FrameKind::Method,
            detail: "the stream ended inside the frame"
        }
    );
    assert_eq!(e.reply_code(), 501);
}

#[test]
fn reply_text_is_cut_to_a_short_string() {
    let long = "é".repeat(200); // 400 bytes
    let AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Close(c)) =
        channel_close(406, &long, 60, 40)
    else {
        panic!()
    };
    assert_eq!(c.reply_text.as_str().len(), 254);
    let mut out = BytesMut::new();
    encode_method(1, &connection_close(320, &long, 0, 0), &mut out).unwrap();
    assert_eq!(ShortString::from("é").as_str(), "é");
}

#[test]
fn connection_start_announces_capabilities() {
    let start = connection_start("0.1.0", MECHANISMS);
    let mut out = BytesMut::new();
    encode_method(0, &start, &mut out).unwrap();
    let frames = decode_all(FRAME_MIN_SIZE, &out);
    let FramePayload::Method(AMQPClass::Connection(connection::AMQPMethod::Start(s))) =
        &frames[0].payload
    else {
        panic!()
    };
    assert_eq!((s.version_major, s.version_minor), (0, 9));
    assert_eq!(s.mechanisms.as_bytes(), b"PLAIN AMQPLAIN");
    assert_eq!(s.locales.as_bytes(), b"en_US");
    let props = s.server_properties.inner();
    assert_eq!(
        props.get("product"),
        Some(&AMQPValue::LongString("Junction".into()))
    );
    assert_eq!(
        props.get("platform"),
        Some(&AMQPValue::LongString("Rust".into()))
    );
    assert_eq!(
        props.get("version"),
        Some(&AMQPValue::LongString("0.1.0".into()))
    );
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!()
    };
    for cap in CAPABILITIES {
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "{cap}"
        );
    }
    assert_eq!(caps.inner().len(), 7);
}
