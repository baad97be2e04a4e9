//! Every `DecodeError` variant from a real input, and every `EncodeError` the format can hit.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use junction_native::*;

/// A frame with a correct length prefix around this header and payload.
fn raw(version: u8, opcode: u8, flags: u16, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&[version, opcode]);
    buf.extend_from_slice(&flags.to_le_bytes());
    buf.extend_from_slice(&7u32.to_le_bytes());
    buf.extend_from_slice(payload);
    buf
}

fn decode(mut buf: BytesMut) -> DecodeError {
    Decoder::default().decode(&mut buf).unwrap_err()
}

/// The name of a variant; the exhaustive match makes a new variant fail to compile here until
/// it is covered below.
fn variant(e: &DecodeError) -> &'static str {
    match e {
        DecodeError::FrameTooLarge { .. } => "FrameTooLarge",
        DecodeError::FrameTooShort { .. } => "FrameTooShort",
        DecodeError::UnsupportedVersion { .. } => "UnsupportedVersion",
        DecodeError::UnknownOpcode { .. } => "UnknownOpcode",
        DecodeError::NonZeroFlags { .. } => "NonZeroFlags",
        DecodeError::UnexpectedEof { .. } => "UnexpectedEof",
        DecodeError::TrailingBytes { .. } => "TrailingBytes",
        DecodeError::InvalidBool { .. } => "InvalidBool",
        DecodeError::InvalidUtf8 { .. } => "InvalidUtf8",
        DecodeError::InvalidEnumTag { .. } => "InvalidEnumTag",
        DecodeError::ReservedPropertyBits { .. } => "ReservedPropertyBits",
    }
}

const ALL_VARIANTS: usize = 11;

fn frame_too_large() -> DecodeError {
    // Only the 4-byte length prefix has arrived: no body at all.
    let mut buf = BytesMut::from(&4097u32.to_le_bytes()[..]);
    let capacity = buf.capacity();
    let err = Decoder::new(4096).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::FrameTooLarge {
            declared: 4097,
            max: 4096
        }
    );
    assert_eq!(buf.len(), 4, "the prefix is left in place");
    assert_eq!(
        buf.capacity(),
        capacity,
        "nothing was reserved for the body"
    );
    // And it stays an error.
    assert_eq!(Decoder::new(4096).decode(&mut buf).unwrap_err(), err);
    assert_eq!(err.code(), ErrorCode::FrameError);
    err
}

fn frame_too_short() -> DecodeError {
    let err = decode(BytesMut::from(&[7, 0, 0, 0, 1, 3, 0, 0, 0, 0, 0][..]));
    assert_eq!(
        err,
        DecodeError::FrameTooShort {
            declared: 7,
            min: 8
        }
    );
    assert_eq!(err.code(), ErrorCode::FrameError);
    err
}

fn unsupported_version() -> DecodeError {
    let err = decode(raw(2, 0x03, 0, &[]));
    assert_eq!(err, DecodeError::UnsupportedVersion { version: 2 });
    assert_eq!(err.code(), ErrorCode::FrameError);
    err
}

fn unknown_opcode() -> DecodeError {
    assert_eq!(
        decode(raw(1, 0x00, 0, &[])),
        DecodeError::UnknownOpcode { opcode: 0 }
    );
    let err = decode(raw(1, 0xff, 0, &[]));
    assert_eq!(err, DecodeError::UnknownOpcode { opcode: 0xff });
    assert_eq!(err.code(), ErrorCode::NotImplemented);
    err
}

fn non_zero_flags() -> DecodeError {
    let err = decode(raw(1, 0x03, 0x8000, &[]));
    assert_eq!(err, DecodeError::NonZeroFlags { flags: 0x8000 });
    assert_eq!(err.code(), ErrorCode::FrameError);
    err
}

fn unexpected_eof() -> DecodeError {
    // Hello whose client_id says 5 bytes but only 2 follow.
    let err = decode(raw(1, 0x01, 0, &[5, 0, b'a', b'b']));
    assert_eq!(
        err,
        DecodeError::UnexpectedEof {
            field: "Hello.client_id",
            need: 5,
            have: 2
        }
    );
    assert_eq!(err.code(), ErrorCode::FrameError);
    // An empty payload where fields are due.
    assert!(matches!(
        decode(raw(1, 0x43, 0, &[1, 2, 3])),
        DecodeError::UnexpectedEof {
            field: "Offset.offset",
            need: 8,
            have: 3
        }
    ));
    // A list count far beyond the payload is refused before allocating.
    let ack = [&[1u8, 0, 0, 0][..], &[0xff, 0xff, 0xff, 0xff], &[0; 8]].concat();
    assert_eq!(
        decode(raw(1, 0x33, 0, &ack)),
        DecodeError::UnexpectedEof {
            field: "Ack.delivery_ids",
            need: 0xffff_ffff * 8,
            have: 8
        }
    );
    err
}

fn trailing_bytes() -> DecodeError {
    let err = decode(raw(1, 0x03, 0, &[0]));
    assert_eq!(
        err,
        DecodeError::TrailingBytes {
            opcode: Opcode::Heartbeat,
            extra: 1
        }
    );
    assert_eq!(err.code(), ErrorCode::FrameError);
    err
}

fn invalid_bool() -> DecodeError {
    let err = decode(raw(1, 0x11, 0, &[1, 0, b'x', 2]));
    assert_eq!(
        err,
        DecodeError::InvalidBool {
            field: "DeleteExchange.if_unused",
            value: 2
        }
    );
    assert_eq!(err.code(), ErrorCode::SyntaxError);
    // The presence byte of an opt<T> is a bool too.
    let batch = [
        &[0u8, 0][..], // exchange ""
        &[0, 0],       // routing_key ""
        &[0],          // mandatory
        &[1, 0, 0, 0], // one message
        &[7],          // routing_key override: bad presence byte
        &[0, 0, 0, 0, 0, 0],
    ]
    .concat();
    assert_eq!(
        decode(raw(1, 0x23, 0, &batch)),
        DecodeError::InvalidBool {
            field: "BatchMessage.routing_key",
            value: 7
        }
    );
    err
}

fn invalid_utf8() -> DecodeError {
    let err = decode(raw(1, 0x15, 0, &[3, 0, b'a', 0xff, b'b']));
    assert_eq!(
        err,
        DecodeError::InvalidUtf8 {
            field: "PurgeQueue.name",
            valid_up_to: 1
        }
    );
    assert_eq!(err.code(), ErrorCode::SyntaxError);
    err
}

fn invalid_enum_tag() -> DecodeError {
    // DeclareExchange with kind 9.
    let err = decode(raw(1, 0x10, 0, &[1, 0, b'x', 9, 0, 0, 0, 0, 0, 0]));
    assert_eq!(
        err,
        DecodeError::InvalidEnumTag {
            field: "DeclareExchange.kind",
            tag: 9
        }
    );
    assert_eq!(err.code(), ErrorCode::SyntaxError);
    // Subscribe with start tag 5.
    let subscribe = [&[1u8, 0, b'q', 0, 0][..], &[0; 4], &[0], &[5], &[0]].concat();
    assert_eq!(
        decode(raw(1, 0x30, 0, &subscribe)),
        DecodeError::InvalidEnumTag {
            field: "Subscribe.start",
            tag: 5
        }
    );
    err
}

fn reserved_property_bits() -> DecodeError {
    // Publish "" "" false false, properties bitmap 0x8001.
    let publish = [&[0u8, 0, 0, 0, 0, 0][..], &[0x01, 0x80], &[0, 0, 0, 0]].concat();
    let err = decode(raw(1, 0x20, 0, &publish));
    assert_eq!(err, DecodeError::ReservedPropertyBits { bits: 0x8000 });
    assert_eq!(err.code(), ErrorCode::SyntaxError);
    err
}

#[test]
fn every_decode_error_variant_comes_from_a_real_input() {
    let errors = [
        frame_too_large(),
        frame_too_short(),
        unsupported_version(),
        unknown_opcode(),
        non_zero_flags(),
        unexpected_eof(),
        trailing_bytes(),
        invalid_bool(),
        invalid_utf8(),
        invalid_enum_tag(),
        reserved_property_bits(),
    ];
    let seen: BTreeSet<_> = errors.iter().map(variant).collect();
    assert_eq!(seen.len(), ALL_VARIANTS);
    for e in &errors {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn frame_too_large_is_checked_against_the_limit_exactly() {
    let at_limit = Frame::new(
        1,
        PurgeQueue {
            name: "q".repeat(4096 - 8 - 2),
        },
    );
    let mut buf = BytesMut::new();
    encode(&at_limit, &mut buf).unwrap();
    assert_eq!(buf.len(), 4 + 4096);
    assert_eq!(
        Decoder::new(4096).decode(&mut buf.clone()).unwrap(),
        Some(at_limit)
    );
    assert_eq!(
        Decoder::new(4095).decode(&mut buf).unwrap_err(),
        DecodeError::FrameTooLarge {
            declared: 4096,
            max: 4095
        }
    );
}

#[test]
fn a_huge_declared_length_is_refused_with_the_default_limit() {
    let mut buf = BytesMut::from(&u32::MAX.to_le_bytes()[..]);
    assert!(matches!(
        Decoder::default().decode(&mut buf),
        Err(DecodeError::FrameTooLarge {
            declared: u32::MAX,
            ..
        })
    ));
}

#[test]
fn an_accepted_length_reserves_only_the_rest_of_the_frame() {
    let mut buf = BytesMut::from(&1000u32.to_le_bytes()[..]);
    assert_eq!(Decoder::default().decode(&mut buf).unwrap(), None);
    assert_eq!(buf.len(), 4);
    assert!(buf.capacity() >= 1004);
}

#[test]
fn a_bad_frame_is_consumed_and_the_next_one_is_intact() {
    let mut buf = raw(1, 0xee, 0, &[1, 2, 3]);
    encode(&Frame::push(Body::Heartbeat), &mut buf).unwrap();
    let mut decoder = Decoder::default();
    assert!(matches!(
        decoder.decode(&mut buf),
        Err(DecodeError::UnknownOpcode { opcode: 0xee })
    ));
    assert_eq!(
        decoder.decode(&mut buf).unwrap(),
        Some(Frame::push(Body::Heartbeat))
    );
}

#[test]
fn partial_header_is_not_an_error() {
    let mut decoder = Decoder::default();
    for len in 0..4 {
        let mut buf = BytesMut::from(&[0xff; 4][..len]);
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert_eq!(buf.len(), len);
    }
}

#[test]
fn too_long_string_is_an_error_and_leaves_the_output_alone() {
    let frame = Frame::new(
        1,
        PurgeQueue {
            name: "x".repeat(65_536),
        },
    );
    let mut out = BytesMut::from(&b"keep"[..]);
    assert_eq!(
        encode(&frame, &mut out),
        Err(EncodeError::StringTooLong {
            field: "PurgeQueue.name",
            len: 65_536
        })
    );
    assert_eq!(&out[..], b"keep");
    assert!(frame.to_bytes().is_err());
}

#[test]
fn too_long_property_string_is_an_error() {
    let frame = Frame::new(
        1,
        Publish {
            properties: Properties {
                user_id: Some("u".repeat(70_000)),
                ..Default::default()
            },
            ..Default::default()
        },
    );
    assert_eq!(
        frame.to_bytes(),
        Err(EncodeError::StringTooLong {
            field: "Properties.user_id",
            len: 70_000
        })
    );
}

#[test]
fn too_long_map_is_an_error() {
    let args = vec![(String::new(), Bytes::new()); 65_536];
    let frame = Frame::new(
        1,
        DeclareQueue {
            args,
            ..Default::default()
        },
    );
    assert_eq!(
        frame.to_bytes(),
        Err(EncodeError::MapTooLong {
            field: "DeclareQueue.args",
            len: 65_536
        })
    );
}

#[test]
fn encode_with_max_refuses_frames_the_peer_would_reject() {
    let frame = Frame::new(
        1,
        Publish {
            body: Bytes::from(vec![0u8; 5000]),
            ..Default::default()
        },
    );
    let mut out = BytesMut::from(&b"keep"[..]);
    let err = encode_with_max(&frame, 4096, &mut out).unwrap_err();
    assert!(matches!(err, EncodeError::FrameTooLarge { max: 4096, len } if len > 5000));
    assert_eq!(&out[..], b"keep");

    encode_with_max(&frame, DEFAULT_MAX_FRAME, &mut out).unwrap();
    let _ = out.split_to(4);
    assert_eq!(Decoder::default().decode(&mut out).unwrap(), Some(frame));
}
