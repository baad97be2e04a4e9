//! What this crate writes, read back by amq-protocol's own frame parser (the one lapin uses).

use amq_protocol::frame::{gen_frame, parse_frame, AMQPContentHeader, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, AMQPClass, BasicProperties};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable};
use bytes::{Bytes, BytesMut};
use junction_amqp::*;

/// Parses every frame in `bytes` with amq-protocol, returning each with its byte range.
fn client_parse(bytes: &[u8]) -> Vec<(AMQPFrame, std::ops::Range<usize>)> {
    let mut rest = bytes;
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let start = bytes.len() - rest.len();
        let (next, frame) = parse_frame(rest).expect("amq-protocol parses our frame");
        rest = next;
        frames.push((frame, start..bytes.len() - rest.len()));
    }
    frames
}

fn rich_properties() -> BasicProperties {
    let mut nested = FieldTable::default();
    nested.insert("n".into(), AMQPValue::LongLongInt(-5));
    let mut headers = FieldTable::default();
    headers.insert("x-int".into(), AMQPValue::LongInt(42));
    headers.insert("x-str".into(), AMQPValue::LongString("v".into()));
    headers.insert("x-tbl".into(), AMQPValue::FieldTable(nested));
    headers.insert(
        "x-arr".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::Boolean(true),
            AMQPValue::Timestamp(7),
        ])),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("c".into())
        .with_reply_to("amq.rabbitmq.reply-to".into())
        .with_expiration("60000".into())
        .with_message_id("m".into())
        .with_timestamp(1_700_000_000)
        .with_type("t".into())
        .with_user_id("guest".into())
        .with_app_id("app".into())
}

#[test]
fn delivery_parses_in_amq_protocol_with_raw_header_unchanged() {
    let props = rich_properties();
    let body: Bytes = (0..10_000u32).map(|i| i as u8).collect();
    let raw = encode_header_from_properties(60, body.len() as u64, &props).unwrap();
    let mut out = BytesMut::new();
    encode_delivery(
        3,
        "ctag-1",
        99,
        true,
        "amq.topic",
        "a.b.c",
        &raw,
        &body,
        4096,
        &mut out,
    )
    .unwrap();
    let frames = client_parse(&out);
    assert_eq!(frames.len(), 2 + 3, "deliver, header, 3 body frames");
    assert_eq!(
        frames[0].0,
        AMQPFrame::Method(
            3,
            AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
                consumer_tag: "ctag-1".into(),
                delivery_tag: 99,
                redelivered: true,
                exchange: "amq.topic".into(),
                routing_key: "a.b.c".into(),
            }))
        )
    );
    assert_eq!(
        frames[1].0,
        AMQPFrame::Header(
            3,
            AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: props.clone(),
            }
        )
    );
    // The header frame's payload is exactly the raw header given.
    let range = frames[1].1.clone();
    assert_eq!(&out[range.start + 7..range.end - 1], &raw[..]);
    let mut joined = Vec::new();
    for (frame, range) in &frames[2..] {
        let AMQPFrame::Body(3, data) = frame else {
            panic!("{frame:?}")
        };
        assert!(range.len() <= 4096, "frame of {} > frame_max", range.len());
        joined.extend_from_slice(data);
    }
    assert_eq!(joined, body);

    // Our header from properties equals the header frame amq-protocol generates.
    let mut theirs = gen_frame(&AMQPFrame::Header(
        3,
        AMQPContentHeader {
            class_id: 60,
            body_size: body.len() as u64,
            properties: props,
        },
    ))(WriteContext::from(Vec::new()))
    .unwrap()
    .into_inner()
    .0;
    assert_eq!(theirs.pop(), Some(0xCE));
    assert_eq!(&theirs[7..], &raw[..]);
}

#[test]
fn get_ok_and_return_parse_in_amq_protocol() {
    let raw = encode_header_from_properties(60, 2, &BasicProperties::default()).unwrap();
    let body = Bytes::from_static(b"hi");
    let mut out = BytesMut::new();
    encode_get_ok(2, 7, false, "ex", "rk", 41, &raw, &body, 0, &mut out).unwrap();
    encode_return(
        2, 312, "NO_ROUTE", "ex", "rk", &raw, &body, 131_072, &mut out,
    )
    .unwrap();
    let frames: Vec<AMQPFrame> = client_parse(&out).into_iter().map(|(f, _)| f).collect();
    assert_eq!(frames.len(), 6);
    assert_eq!(
        frames[0],
        AMQPFrame::Method(
            2,
            AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
                delivery_tag: 7,
                redelivered: false,
                exchange: "ex".into(),
                routing_key: "rk".into(),
                message_count: 41,
            }))
        )
    );
    assert_eq!(frames[2], AMQPFrame::Body(2, b"hi".to_vec()));
    assert_eq!(
        frames[3],
        AMQPFrame::Method(
            2,
            AMQPClass::Basic(basic::AMQPMethod::Return(basic::Return {
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
                exchange: "ex".into(),
                routing_key: "rk".into(),
            }))
        )
    );
    assert_eq!(frames[5], AMQPFrame::Body(2, b"hi".to_vec()));

    // The generic path writes the same bytes as the fast path.
    let mut slow = BytesMut::new();
    let get_ok = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
        delivery_tag: 7,
        redelivered: false,
        exchange: "ex".into(),
        routing_key: "rk".into(),
        message_count: 41,
    }));
    encode_method_with_content(2, &get_ok, &raw, &body, 0, &mut slow).unwrap();
    assert_eq!(&slow[..], &out[..slow.len()]);
}

#[test]
fn server_methods_parse_in_amq_protocol() {
    let mut out = BytesMut::new();
    for m in [
        connection_start("1.2.3", MECHANISMS),
        connection_tune(2047, 131_072, 60),
        connection_close(501, "FRAME_ERROR - x", 60, 40),
        connection_close_ok(),
    ] {
        encode_method(0, &m, &mut out).unwrap();
    }
    encode_method(
        1,
        &channel_close(406, "PRECONDITION_FAILED - y", 60, 40),
        &mut out,
    )
    .unwrap();
    encode_method(1, &channel_close_ok(), &mut out).unwrap();
    encode_heartbeat(&mut out);
    let frames = client_parse(&out);
    assert_eq!(frames.len(), 7);
    assert_eq!(frames[6].0, AMQPFrame::Heartbeat);
    // And our decoder reads them back identically.
    let mut dec = FrameDecoder::new(FRAME_MIN_SIZE);
    let mut buf = out.clone();
    let mut n = 0;
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        match (&frames[n].0, &f.payload) {
            (AMQPFrame::Method(ch, m), FramePayload::Method(ours)) => {
                assert_eq!((*ch, m), (f.channel, ours));
            }
            (AMQPFrame::Heartbeat, FramePayload::Heartbeat) => {}
            other => panic!("{other:?}"),
        }
        n += 1;
    }
    assert_eq!(n, 7);
}

#[test]
fn amq_protocol_client_frames_decode() {
    // Frames generated by amq-protocol (as lapin writes them) decode to the same values.
    let props = rich_properties();
    let frames = vec![
        AMQPFrame::Method(
            1,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "x".into(),
                routing_key: "k".into(),
                mandatory: true,
                immediate: false,
            })),
        ),
        AMQPFrame::Header(
            1,
            AMQPContentHeader {
                class_id: 60,
                body_size: 3,
                properties: props.clone(),
            },
        ),
        AMQPFrame::Body(1, b"abc".to_vec()),
    ];
    let mut wire = Vec::new();
    for f in &frames {
        wire = gen_frame(f)(WriteContext::from(wire))
            .unwrap()
            .into_inner()
            .0;
    }
    let mut dec = FrameDecoder::new(4096);
    let mut asm = Assembler::default();
    let mut buf = BytesMut::from(&wire[..]);
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        out.extend(asm.push(f).unwrap());
    }
    let [Event::Content {
        channel: 1,
        content,
    }] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(content.header.properties, props);
    assert_eq!(content.body, Bytes::from_static(b"abc"));
    assert!(content.method.mandatory);
}
