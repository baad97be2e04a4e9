//! Property tests: arbitrary frames round-trip; arbitrary bytes never panic the decoder;
//! partial input and several frames in one buffer decode correctly.

mod common;

use std::collections::BTreeSet;

use bytes::BytesMut;
use common::{body, encoded, frame};
use junction_native::*;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Decodes frames until the buffer runs dry or an error comes; must never panic.
fn drain(decoder: &mut Decoder, buf: &mut BytesMut) -> Result<Vec<Frame>, DecodeError> {
    let mut frames = Vec::new();
    while let Some(frame) = decoder.decode(buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

#[test]
fn the_strategy_covers_every_opcode() {
    let mut runner = TestRunner::deterministic();
    let strategy = body();
    let mut seen = BTreeSet::new();
    for _ in 0..2_000 {
        seen.insert(strategy.new_tree(&mut runner).unwrap().current().opcode());
    }
    assert_eq!(seen.len(), Opcode::ALL.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn frames_round_trip(frame in frame()) {
        let mut buf = encoded(&frame);
        let declared = u32::from_le_bytes(buf[..4].try_into().unwrap());
        prop_assert_eq!(declared as usize + 4, buf.len());
        prop_assert_eq!(buf[4], PROTOCOL_VERSION);
        prop_assert_eq!(buf[5], frame.opcode() as u8);
        prop_assert_eq!(&buf[6..8], &[0, 0]);
        prop_assert_eq!(&buf[8..12], &frame.request_id.to_le_bytes());
        prop_assert_eq!(frame.to_bytes().unwrap(), buf.clone().freeze());

        let decoded = Decoder::default().decode(&mut buf).unwrap();
        prop_assert_eq!(decoded, Some(frame));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..512),
        max_frame in prop_oneof![Just(0u32), 0..64u32, Just(MIN_MAX_FRAME), Just(u32::MAX)],
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = drain(&mut Decoder::new(max_frame), &mut buf);
    }

    /// Arbitrary payloads behind a well-formed header reach every message's field decoding.
    #[test]
    fn decode_never_panics_on_arbitrary_payloads(
        opcode in prop_oneof![
            proptest::sample::select(Opcode::ALL).prop_map(|o| o as u8),
            any::<u8>(),
        ],
        payload in vec(any::<u8>(), 0..256),
    ) {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(8 + payload.len() as u32).to_le_bytes());
        buf.extend_from_slice(&[PROTOCOL_VERSION, opcode, 0, 0, 1, 0, 0, 0]);
        buf.extend_from_slice(&payload);
        if let Ok(Some(frame)) = Decoder::default().decode(&mut buf) {
            // Whatever decodes, re-encodes and decodes to the same frame.
            prop_assert!(buf.is_empty());
            let again = encoded(&frame);
            prop_assert_eq!(Decoder::default().decode(&mut again.clone()).unwrap(), Some(frame));
        }
    }

    /// Valid frames with a few bytes changed: decode may fail but never panics.
    #[test]
    fn decode_never_panics_on_mutated_frames(
        frame in frame(),
        mutations in vec((any::<usize>(), any::<u8>()), 1..4),
    ) {
        let mut buf = encoded(&frame);
        for (at, byte) in mutations {
            let len = buf.len();
            buf[at % len] = byte;
        }
        let _ = drain(&mut Decoder::new(MIN_MAX_FRAME), &mut buf);
    }

    #[test]
    fn one_byte_at_a_time_decodes_exactly_once_at_the_last_byte(frame in frame()) {
        let bytes = encoded(&frame);
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::new();
        for (i, byte) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*byte]);
            let got = decoder.decode(&mut buf).unwrap();
            if i + 1 < bytes.len() {
                prop_assert_eq!(got, None, "decoded early at byte {}", i);
                prop_assert_eq!(buf.len(), i + 1, "partial input must be kept");
            } else {
                prop_assert_eq!(got, Some(frame.clone()));
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoder.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn several_frames_in_one_buffer_decode_in_order(frames in vec(frame(), 1..6)) {
        let mut buf = BytesMut::new();
        for frame in &frames {
            encode(frame, &mut buf).unwrap();
        }
        let decoded = drain(&mut Decoder::default(), &mut buf).unwrap();
        prop_assert_eq!(decoded, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn frames_split_at_arbitrary_points_decode_in_order(
        frames in vec(frame(), 1..6),
        chunk in 1usize..40,
    ) {
        let mut all = BytesMut::new();
        for frame in &frames {
            encode(frame, &mut all).unwrap();
        }
        let mut decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for piece in all.chunks(chunk) {
            buf.extend_from_slice(piece);
            decoded.extend(drain(&mut decoder, &mut buf).unwrap());
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn encode_appends_without_touching_what_is_there(frame in frame(), prefix in vec(any::<u8>(), 0..16)) {
        let mut out = BytesMut::from(&prefix[..]);
        encode(&frame, &mut out).unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(&out[prefix.len()..], &encoded(&frame)[..]);
    }
}
