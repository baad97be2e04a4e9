//! Content reassembly: split bodies, empty bodies, interleaved channels, and the errors.

use amq_protocol::protocol::{basic, channel, AMQPClass, BasicProperties};
use bytes::{Bytes, BytesMut};
use junction_amqp::*;

fn publish(routing_key: &str) -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "amq.direct".into(),
        routing_key: routing_key.into(),
        mandatory: true,
        immediate: false,
    }))
}

fn qos() -> AMQPClass {
    AMQPClass::Basic(basic::AMQPMethod::Qos(basic::Qos {
        prefetch_count: 10,
        global: false,
    }))
}

fn header(body_size: u64) -> Bytes {
    let props = BasicProperties::default().with_message_id("m-1".into());
    encode_header_from_properties(60, body_size, &props).unwrap()
}

/// Decodes `wire` and pushes every frame through a connection assembler.
fn run(wire: &[u8], frame_max: u32, max_message: u64) -> Result<Vec<Event>, FrameError> {
    let mut dec = FrameDecoder::new(frame_max);
    let mut asm = Assembler::new(max_message);
    let mut buf = BytesMut::from(wire);
    let mut events = Vec::new();
    while let Some(frame) = dec.decode(&mut buf)? {
        if let Some(event) = asm.push(frame)? {
            events.push(event);
        }
    }
    assert!(buf.is_empty());
    Ok(events)
}

fn method_frame(channel: u16, m: &AMQPClass) -> BytesMut {
    let mut out = BytesMut::new();
    encode_method(channel, m, &mut out).unwrap();
    out
}

fn body_frame(channel: u16, data: &[u8]) -> Vec<u8> {
    let mut f = vec![3];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f.push(0xCE);
    f
}

fn header_frame(channel: u16, raw: &[u8]) -> Vec<u8> {
    let mut f = vec![2];
    f.extend_from_slice(&channel.to_be_bytes());
    f.extend_from_slice(&(raw.len() as u32).to_be_bytes());
    f.extend_from_slice(raw);
    f.push(0xCE);
    f
}

#[test]
fn body_split_across_many_frames() {
    let body: Bytes = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let raw = header(body.len() as u64);
    let mut wire = method_frame(7, &publish("rk"));
    // frame_max 4096 -> 4088 body octets per frame -> 3 frames; also try 9 (1 octet each).
    encode_content(7, &raw, &body, 4096, &mut wire).unwrap();
    let events = run(&wire, 4096, DEFAULT_MAX_MESSAGE_SIZE).unwrap();
    let [Event::Content {
        channel: 7,
        content,
    }] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(content.body, body);
    assert_eq!(content.header.raw, raw);
    assert_eq!(content.method.routing_key.as_str(), "rk");
    assert!(content.method.mandatory);

    let small = body.slice(..300);
    let raw = header(300);
    let mut wire = method_frame(7, &publish("rk"));
    encode_content(7, &raw, &small, 9, &mut wire).unwrap();
    // 300 one-octet body frames after the method and header frames.
    assert_eq!(wire.len(), (8 + 21) + (8 + raw.len()) + 300 * 9);
    let events = run(&wire, 4096, DEFAULT_MAX_MESSAGE_SIZE).unwrap();
    let [Event::Content { content, .. }] = &events[..] else {
        panic!()
    };
    assert_eq!(content.body, small);
}

#[test]
fn single_body_frame_is_not_copied() {
    let mut asm = ContentAssembler::new(1, u64::MAX);
    assert_eq!(asm.push(FramePayload::Method(publish("q"))).unwrap(), None);
    let raw = header(5);
    let h = ContentHeader::parse(1, raw).unwrap();
    assert_eq!(asm.push(FramePayload::Header(h)).unwrap(), None);
    let chunk = Bytes::from(vec![1u8, 2, 3, 4, 5]);
    let ptr = chunk.as_ptr();
    let Some(Assembled::Content(c)) = asm.push(FramePayload::Body(chunk)).unwrap() else {
        panic!()
    };
    assert_eq!(c.body.as_ptr(), ptr);
    assert!(asm.is_idle());
}

#[test]
fn zero_length_body_has_no_body_frame() {
    let raw = header(0);
    let mut wire = method_frame(1, &publish("q"));
    encode_content(1, &raw, &Bytes::new(), 4096, &mut wire).unwrap();
    // method + header frame only.
    assert_eq!(wire.len(), (8 + 20) + (8 + raw.len()));
    wire.extend_from_slice(&method_frame(1, &qos()));
    let events = run(&wire, 4096, 0).unwrap();
    let [Event::Content { content, .. }, Event::Method { channel: 1, method }] = &events[..] else {
        panic!("{events:?}")
    };
    assert!(content.body.is_empty());
    assert_eq!(content.header.body_size, 0);
    assert_eq!(method, &qos());
    // A body frame after a zero-size header is unexpected (RabbitMQ: 505).
    let mut wire = method_frame(1, &publish("q"));
    encode_content(1, &raw, &Bytes::new(), 4096, &mut wire).unwrap();
    wire.extend_from_slice(&body_frame(1, b""));
    assert_eq!(run(&wire, 4096, 0).unwrap_err().reply_code(), 505);
}

#[test]
fn interleaved_channels() {
    let (raw1, raw2) = (header(6), header(4));
    let mut wire = BytesMut::new();
    wire.extend_from_slice(&method_frame(1, &publish("one")));
    wire.extend_from_slice(&method_frame(2, &publish("two")));
    wire.extend_from_slice(&header_frame(1, &raw1));
    wire.extend_from_slice(&HEARTBEAT_FRAME);
    wire.extend_from_slice(&header_frame(2, &raw2));
    wire.extend_from_slice(&body_frame(1, b"abc"));
    wire.extend_from_slice(&method_frame(3, &qos()));
    wire.extend_from_slice(&body_frame(2, b"wxyz"));
    wire.extend_from_slice(&body_frame(1, b""));
    wire.extend_from_slice(&body_frame(1, b"def"));
    let events = run(&wire, 4096, 100).unwrap();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(events[0], Event::Heartbeat);
    assert_eq!(
        events[1],
        Event::Method {
            channel: 3,
            method: qos()
        }
    );
    let Event::Content {
        channel: 2,
        content: two,
    } = &events[2]
    else {
        panic!()
    };
    assert_eq!(two.body, Bytes::from_static(b"wxyz"));
    assert_eq!(two.method.routing_key.as_str(), "two");
    let Event::Content {
        channel: 1,
        content: one,
    } = &events[3]
    else {
        panic!()
    };
    assert_eq!(one.body, Bytes::from_static(b"abcdef"));
    assert_eq!(one.header.raw, raw1);
}

#[test]
fn wrong_order_is_unexpected_frame() {
    let raw = header(3);
    // Header with no publish before it.
    let e = run(&header_frame(1, &raw), 4096, 100).unwrap_err();
    assert_eq!((e.reply_code(), e.class_id(), e.method_id()), (505, 0, 0));
    // Body with no publish before it.
    let e = run(&body_frame(1, b"x"), 4096, 100).unwrap_err();
    assert_eq!(e.reply_code(), 505);
    // A method where the header should be: 505 naming basic.publish.
    let mut wire = method_frame(1, &publish("q"));
    wire.extend_from_slice(&method_frame(1, &qos()));
    let e = run(&wire, 4096, 100).unwrap_err();
    assert_eq!((e.reply_code(), e.class_id(), e.method_id()), (505, 60, 40));
    // A body where the header should be.
    let mut wire = method_frame(1, &publish("q"));
    wire.extend_from_slice(&body_frame(1, b"abc"));
    assert_eq!(run(&wire, 4096, 100).unwrap_err().reply_code(), 505);
    // A second header, or a method, where a body should be.
    let mut wire = method_frame(1, &publish("q"));
    wire.extend_from_slice(&header_frame(1, &raw));
    wire.extend_from_slice(&header_frame(1, &raw));
    assert_eq!(run(&wire, 4096, 100).unwrap_err().reply_code(), 505);
    let mut wire = method_frame(1, &publish("q"));
    wire.extend_from_slice(&header_frame(1, &raw));
    wire.extend_from_slice(&method_frame(1, &publish("q")));
    let e = run(&wire, 4096, 100).unwrap_err();
    assert_eq!((e.reply_code(), e.class_id(), e.method_id()), (505, 60, 40));
    // Content frames on channel 0.
    let e = run(&header_frame(0, &raw), 4096, 100).unwrap_err();
    assert_eq!((e.reply_code(), e.channel()), (505, 0));
}

#[test]
fn body_longer_than_declared_is_frame_error() {
    let raw = header(3);
    let mut wire = method_frame(1, &publish("q"));
    wire.extend_from_slice(&header_frame(1, &raw));
    wire.extend_from_slice(&body_frame(1, b"ab"));
    wire.extend_from_slice(&body_frame(1, b"cd"));
    let e = run(&wire, 4096, 100).unwrap_err();
    assert_eq!(
        e,
        FrameError::BodyTooLong {
            channel: 1,
            declared: 3,
            received: 4
        }
    );
    assert_eq!(e.reply_code(), 501);
}

#[test]
fn message_over_max_size_is_a_channel_error() {
    let raw = header(101);
    let mut wire = method_frame(5, &publish("q"));
    wire.extend_from_slice(&header_frame(5, &raw));
    let e = run(&wire, 4096, 100).unwrap_err();
    assert_eq!(
        e,
        FrameError::MessageTooLarge {
            channel: 5,
            size: 101,
            max: 100
        }
    );
    assert!(e.is_channel_error());
    assert_eq!(e.reply_code(), reply_code::PRECONDITION_FAILED);
    let AMQPClass::Channel(channel::AMQPMethod::Close(close)) = e.close_method() else {
        panic!()
    };
    assert_eq!(close.reply_code, 406);
    assert_eq!(
        close.reply_text.as_str(),
        "PRECONDITION_FAILED - message size 101 is larger than configured max size 100"
    );
    assert_eq!((close.class_id, close.method_id), (60, 40));
    // Exactly the maximum is fine.
    let raw = header(100);
    let mut wire = method_frame(5, &publish("q"));
    encode_content(5, &raw, &Bytes::from(vec![0u8; 100]), 4096, &mut wire).unwrap();
    assert_eq!(run(&wire, 4096, 100).unwrap().len(), 1);
}

#[test]
fn assembler_resets_after_errors_and_on_request() {
    let mut asm = Assembler::new(10);
    let raw = header(50);
    let h = ContentHeader::parse(1, raw).unwrap();
    asm.push(Frame {
        channel: 1,
        payload: FramePayload::Method(publish("q")),
    })
    .unwrap();
    assert!(!asm.is_idle(1));
    let e = asm
        .push(Frame {
            channel: 1,
            payload: FramePayload::Header(h),
        })
        .unwrap_err();
    assert!(e.is_channel_error());
    assert!(asm.is_idle(1));
    asm.push(Frame {
        channel: 2,
        payload: FramePayload::Method(publish("q")),
    })
    .unwrap();
    asm.reset_channel(2);
    assert!(asm.is_idle(2));
}
