//! Property tests: no panics on any input, publish content round trips, and byte-at-a-time
//! decoding equals bulk decoding.

use amq_protocol::protocol::{basic, AMQPClass, BasicProperties};
use amq_protocol::types::{
    AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString, ShortString,
};
use bytes::{Bytes, BytesMut};
use junction_amqp::*;
use proptest::prelude::*;

/// Decodes all of `wire` in one go: the frames, then the error or `None` for a clean end.
fn bulk(frame_max: u32, wire: &[u8]) -> (Vec<Frame>, Option<FrameError>) {
    let mut dec = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::from(wire);
    let mut frames = Vec::new();
    loop {
        match dec.decode(&mut buf) {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// Decodes `wire` arriving one byte at a time.
fn trickle(frame_max: u32, wire: &[u8]) -> (Vec<Frame>, Option<FrameError>) {
    let mut dec = FrameDecoder::new(frame_max);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for b in wire {
        buf.extend_from_slice(&[*b]);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// Runs frames through an assembler, ignoring errors: only panics matter here.
fn assemble_all(frames: Vec<Frame>) {
    let mut asm = Assembler::new(1 << 20);
    for f in frames {
        if let Err(e) = asm.push(f) {
            let _ = e.close_method();
        }
    }
}

fn frame_max() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), 9u32..64, 64u32..70_000]
}

fn short_string() -> impl Strategy<Value = ShortString> {
    "\\PC{0,12}".prop_map(|s| ShortString::try_new(s).unwrap())
}

fn leaf_value() -> impl Strategy<Value = AMQPValue> {
    prop_oneof![
        any::<bool>().prop_map(AMQPValue::Boolean),
        any::<i8>().prop_map(AMQPValue::ShortShortInt),
        any::<u8>().prop_map(AMQPValue::ShortShortUInt),
        any::<i16>().prop_map(AMQPValue::ShortInt),
        any::<u16>().prop_map(AMQPValue::ShortUInt),
        any::<i32>().prop_map(AMQPValue::LongInt),
        any::<u32>().prop_map(AMQPValue::LongUInt),
        any::<i64>().prop_map(AMQPValue::LongLongInt),
        any::<f32>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(AMQPValue::Float),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(AMQPValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| AMQPValue::DecimalValue(DecimalValue { scale, value })),
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|v| AMQPValue::LongString(LongString::from(v))),
        any::<u64>().prop_map(AMQPValue::Timestamp),
        proptest::collection::vec(any::<u8>(), 0..40)
            .prop_map(|v| AMQPValue::ByteArray(ByteArray::from(v))),
        Just(AMQPValue::Void),
    ]
}

fn value() -> impl Strategy<Value = AMQPValue> {
    leaf_value().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6)
                .prop_map(|v| AMQPValue::FieldArray(FieldArray::from(v))),
            proptest::collection::btree_map(short_string(), inner, 0..6)
                .prop_map(|m| AMQPValue::FieldTable(FieldTable::from(m))),
        ]
    })
}

fn table() -> impl Strategy<Value = FieldTable> {
    proptest::collection::btree_map(short_string(), value(), 0..8).prop_map(FieldTable::from)
}

fn properties() -> impl Strategy<Value = BasicProperties> {
    let strings = proptest::collection::vec(proptest::option::of(short_string()), 11);
    (
        strings,
        proptest::option::of(table()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u8>()),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(s, headers, mode, prio, ts)| {
            let mut p = BasicProperties::default();
            let mut s = s.into_iter();
            let mut next = || s.next().flatten();
            if let Some(v) = next() {
                p = p.with_content_type(v);
            }
            if let Some(v) = next() {
                p = p.with_content_encoding(v);
            }
            if let Some(v) = headers {
                p = p.with_headers(v);
            }
            if let Some(v) = mode {
                p = p.with_delivery_mode(v);
            }
            if let Some(v) = prio {
                p = p.with_priority(v);
            }
            if let Some(v) = next() {
                p = p.with_correlation_id(v);
            }
            if let Some(v) = next() {
                p = p.with_reply_to(v);
            }
            if let Some(v) = next() {
                p = p.with_expiration(v);
            }
            if let Some(v) = next() {
                p = p.with_message_id(v);
            }
            if let Some(v) = ts {
                p = p.with_timestamp(v);
            }
            if let Some(v) = next() {
                p = p.with_type(v);
            }
            if let Some(v) = next() {
                p = p.with_user_id(v);
            }
            if let Some(v) = next() {
                p = p.with_app_id(v);
            }
            if let Some(v) = next() {
                p = p.with_cluster_id(v);
            }
            p
        })
}

/// A frame envelope with a random type, channel and payload; method payloads start with a
/// real class and method id half of the time, to get past the id check.
fn random_frame() -> impl Strategy<Value = Vec<u8>> {
    let ids = prop_oneof![
        Just((10u16, 11u16)),
        Just((10, 31)),
        Just((10, 40)),
        Just((20, 10)),
        Just((40, 10)),
        Just((50, 10)),
        Just((50, 20)),
        Just((60, 20)),
        Just((60, 40)),
        Just((60, 80)),
        (any::<u16>(), any::<u16>()),
    ];
    (
        prop_oneof![Just(1u8), Just(2), Just(3), Just(8), any::<u8>()],
        0u16..4,
        ids,
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(ty, ch, (class, method), tail, with_ids, good_end)| {
            let mut payload = Vec::new();
            if with_ids {
                payload.extend_from_slice(&class.to_be_bytes());
                payload.extend_from_slice(&method.to_be_bytes());
            }
            payload.extend_from_slice(&tail);
            let mut f = vec![ty];
            f.extend_from_slice(&ch.to_be_bytes());
            f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            f.extend_from_slice(&payload);
            f.push(if good_end {
                0xCE
            } else {
                tail.first().copied().unwrap_or(0)
            });
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        wire in proptest::collection::vec(any::<u8>(), 0..2048),
        frame_max in frame_max(),
    ) {
        let (frames, err) = bulk(frame_max, &wire);
        if let Some(e) = err {
            let _ = (e.reply_code(), e.reply_text(), e.close_method());
        }
        assemble_all(frames);
        let _ = FrameDecoder::new(frame_max).check_eof(&wire);
        let _ = parse_protocol_header(&wire);
        let _ = parse_plain(&wire);
        let _ = parse_amqplain(&wire);
    }

    #[test]
    fn decode_never_panics_on_random_frames(
        frames in proptest::collection::vec(random_frame(), 1..8),
        frame_max in frame_max(),
    ) {
        let wire: Vec<u8> = frames.concat();
        let (frames, _) = bulk(frame_max, &wire);
        assemble_all(frames);
        // And trickling gives the same result.
        prop_assert_eq!(bulk(frame_max, &wire), trickle(frame_max, &wire));
    }

    #[test]
    fn arbitrary_bytes_trickle_like_bulk(
        wire in proptest::collection::vec(any::<u8>(), 0..512),
        frame_max in frame_max(),
    ) {
        prop_assert_eq!(bulk(frame_max, &wire), trickle(frame_max, &wire));
    }

    #[test]
    fn publish_round_trips(
        channel in 1u16..,
        exchange in short_string(),
        routing_key in short_string(),
        mandatory in any::<bool>(),
        props in properties(),
        body in proptest::collection::vec(any::<u8>(), 0..20_000),
        frame_max in frame_max(),
    ) {
        let publish = basic::Publish { exchange, routing_key, mandatory, immediate: false };
        let method = AMQPClass::Basic(basic::AMQPMethod::Publish(publish.clone()));
        let body = Bytes::from(body);
        let raw = encode_header_from_properties(60, body.len() as u64, &props).unwrap();
        let mut wire = BytesMut::new();
        encode_method(channel, &method, &mut wire).unwrap();
        encode_content(channel, &raw, &body, frame_max, &mut wire).unwrap();

        // Decode with no frame limit (the header frame may exceed a tiny frame_max), and
        // check the body frames respect it.
        let (frames, err) = bulk(0, &wire);
        prop_assert_eq!(err, None);
        for f in &frames {
            if let FramePayload::Body(b) = &f.payload {
                prop_assert!(frame_max == 0 || b.len() + 8 <= frame_max as usize);
                prop_assert!(!b.is_empty());
            }
        }
        let mut asm = Assembler::new(u64::MAX);
        let mut events = Vec::new();
        for f in frames.clone() {
            events.extend(asm.push(f).unwrap());
        }
        prop_assert_eq!(events.len(), 1);
        let Some(Event::Content { channel: ch, content }) = events.pop() else {
            return Err(TestCaseError::fail("no content"));
        };
        prop_assert_eq!(ch, channel);
        prop_assert_eq!(content.method, publish);
        prop_assert_eq!(&content.header.properties, &props);
        prop_assert_eq!(&content.header.raw, &raw);
        prop_assert_eq!(content.header.body_size, body.len() as u64);
        prop_assert_eq!(&content.body, &body);

        // Fed one byte at a time, the same frames come out.
        prop_assert_eq!(trickle(0, &wire), (frames, None));

        // Delivered back out, the header frame carries the same raw bytes.
        let mut out = BytesMut::new();
        encode_delivery(channel, "c", 1, false, "", "", &content.header.raw, &content.body,
            frame_max, &mut out).unwrap();
        let (frames, err) = bulk(0, &out);
        prop_assert_eq!(err, None);
        let FramePayload::Header(h) = &frames[1].payload else {
            return Err(TestCaseError::fail("no header"));
        };
        prop_assert_eq!(&h.raw, &raw);
    }

    #[test]
    fn mutated_publish_never_panics(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        props in properties(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let method = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish::default()));
        let raw = encode_header_from_properties(60, body.len() as u64, &props).unwrap();
        let mut wire = BytesMut::new();
        encode_method(1, &method, &mut wire).unwrap();
        encode_content(1, &raw, &Bytes::from(body), 64, &mut wire).unwrap();
        let mut wire = wire.to_vec();
        for (i, b) in flips {
            let i = i.index(wire.len());
            wire[i] = b;
        }
        let (frames, _) = bulk(4096, &wire);
        assemble_all(frames);
    }
}
