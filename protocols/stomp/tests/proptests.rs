//! Property tests: encode -> decode round-trips for arbitrary frames, and the decoder never
//! panics (nor loops, nor loses bytes) on arbitrary or mutated input.

use bytes::BytesMut;
use junction_stomp::{
    encode, encode_heartbeat, Command, DecodeError, Decoder, Frame, Item, Limits, Version,
};
use proptest::prelude::*;

fn version() -> impl Strategy<Value = Version> {
    prop::sample::select(Version::ALL.to_vec())
}

fn command() -> impl Strategy<Value = Command> {
    prop::sample::select(Command::ALL.to_vec())
}

/// Characters that matter to the codec, plus some ordinary and multi-byte ones.
const SPECIAL: &[char] = &[
    ':',
    '\\',
    '\n',
    '\r',
    '\0',
    ' ',
    'c',
    'n',
    'r',
    'a',
    'Z',
    '-',
    'é',
    '日',
    '\u{1F600}',
];

/// A string over `SPECIAL`, without the characters in `exclude`.
fn text(exclude: &'static [char], len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    let chars: Vec<char> = SPECIAL
        .iter()
        .copied()
        .filter(|c| !exclude.contains(c))
        .collect();
    prop::collection::vec(prop::sample::select(chars), len).prop_map(String::from_iter)
}

/// Which characters a frame of `command` can carry in `version` (see `encode`).
fn exclusions(version: Version, command: Command) -> (&'static [char], &'static [char]) {
    let escaped = command.escapes_headers() && version != Version::V1_0;
    match (escaped, version) {
        (false, _) => (&[':', '\n', '\r'], &['\n', '\r']),
        (true, Version::V1_1) => (&['\r'], &['\r']),
        (true, _) => (&[], &[]),
    }
}

/// An arbitrary encodable frame for `version`, without `content-length` headers (the encoder
/// owns those), with a binary body that may contain NULs.
fn frame_for(version: Version) -> impl Strategy<Value = Frame> {
    command().prop_flat_map(move |command| {
        let (name_ex, value_ex) = exclusions(version, command);
        // The alphabet cannot spell `content-length`. A leading NUL would read as a frame end
        // (the encoder refuses it), so it is replaced.
        let header = (text(name_ex, 1..8), text(value_ex, 0..12)).prop_map(|(n, v)| {
            match n.strip_prefix('\0') {
                Some(rest) => (format!("a{rest}"), v),
                None => (n, v),
            }
        });
        (
            prop::collection::vec(header, 0..8),
            prop::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(move |(headers, body)| Frame {
                command,
                headers,
                body: body.into(),
            })
    })
}

/// Decodes `input` fed in pieces cut at `cuts` (sorted, deduplicated offsets).
fn decode_in_pieces(
    dec: &mut Decoder,
    input: &[u8],
    cuts: &[usize],
) -> Result<Vec<Item>, DecodeError> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(start, input.len());
        buf.extend_from_slice(&input[start..end]);
        start = end;
        while let Some(item) = dec.decode(&mut buf)? {
            items.push(item);
        }
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(items)
}

fn cuts(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..max, 0..6).prop_map(|mut v| {
        v.sort_unstable();
        v.dedup();
        v
    })
}

/// What decoding an encoded frame gives back: the same frame, plus the `content-length` the
/// encoder adds to a non-empty body.
fn expected(frame: &Frame) -> Frame {
    let mut f = frame.clone();
    if !f.body.is_empty() {
        f.push_header("content-length", f.body.len().to_string());
    }
    f
}

/// 512 cases, or `PROPTEST_CASES` when set (for longer runs).
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn round_trip(
        (version, frames) in version().prop_flat_map(|v| {
            (Just(v), prop::collection::vec(frame_for(v), 1..4))
        }),
        heartbeats in prop::collection::vec(0usize..3, 4),
        cuts in cuts(2048),
    ) {
        let mut wire = BytesMut::new();
        for (i, frame) in frames.iter().enumerate() {
            encode(frame, version, &mut wire).unwrap();
            for _ in 0..heartbeats[i] {
                encode_heartbeat(&mut wire);
            }
        }
        let mut dec = Decoder::new(version);
        let items = decode_in_pieces(&mut dec, &wire, &cuts).unwrap();
        let got: Vec<Frame> = items.iter().filter_map(|i| match i {
            Item::Frame(f) => Some(f.clone()),
            Item::Heartbeat => None,
        }).collect();
        let want: Vec<Frame> = frames.iter().map(expected).collect();
        prop_assert_eq!(got, want);
        let beats = items.iter().filter(|i| **i == Item::Heartbeat).count();
        prop_assert_eq!(beats, heartbeats[..frames.len()].iter().sum::<usize>());
        // Re-encoding the decoded frames reproduces the wire bytes.
        let mut again = BytesMut::new();
        for item in &items {
            match item {
                Item::Frame(f) => encode(f, version, &mut again).unwrap(),
                Item::Heartbeat => encode_heartbeat(&mut again),
            }
        }
        prop_assert_eq!(again, wire);
    }

    /// Frames without `content-length` whose body has no NUL: the body runs to the first NUL.
    #[test]
    fn nul_terminated_bodies(
        version in version(),
        body in prop::collection::vec(1u8..=255, 0..64),
        crlf in any::<bool>(),
        cuts in cuts(256),
    ) {
        let eol: &[u8] = if crlf { b"\r\n" } else { b"\n" };
        let mut wire = Vec::new();
        for part in [&b"SEND"[..], eol, b"destination:/q", eol, eol, &body, b"\0", eol] {
            wire.extend_from_slice(part);
        }
        let mut dec = Decoder::new(version);
        let items = decode_in_pieces(&mut dec, &wire, &cuts).unwrap();
        let want = Frame::send("/q", body);
        prop_assert_eq!(items, vec![Item::Frame(want), Item::Heartbeat]);
    }

    /// Arbitrary bytes: no panic, and every call either makes progress or waits.
    #[test]
    fn decode_never_panics(
        version in version(),
        input in prop::collection::vec(any::<u8>(), 0..512),
        cuts in cuts(512),
        small in any::<bool>(),
    ) {
        let limits = if small {
            Limits {
                max_frame_bytes: 200,
                max_header_section_bytes: 100,
                max_headers: 4,
                max_header_bytes: 24,
                max_body_bytes: 50,
            }
        } else {
            Limits::DEFAULT
        };
        exercise(version, limits, &input, &cuts);
    }

    /// Valid frames with random bytes overwritten, inserted or removed: reaches the deeper
    /// decoder paths that random bytes rarely do.
    #[test]
    fn decode_never_panics_on_mutated_frames(
        version in version(),
        frames in prop::collection::vec(frame_for(Version::V1_2), 1..3),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
        cuts in cuts(512),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames {
            encode(f, Version::V1_2, &mut wire).unwrap();
        }
        let mut wire = wire.to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(wire.len() + 1);
            match kind {
                0 if i < wire.len() => wire[i] = byte,
                1 => wire.insert(i, byte),
                _ if i < wire.len() => { wire.remove(i); }
                _ => {}
            }
        }
        exercise(version, Limits::DEFAULT, &wire, &cuts);
    }
}

/// Feeds `input` in pieces until an error or the end; checks the decoder's contract.
fn exercise(version: Version, limits: Limits, input: &[u8], cuts: &[usize]) {
    let mut dec = Decoder::with_limits(version, limits);
    let mut buf = BytesMut::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(start, input.len());
        buf.extend_from_slice(&input[start..end]);
        start = end;
        loop {
            let before = buf.clone();
            match dec.decode(&mut buf) {
                Ok(Some(Item::Frame(f))) => {
                    assert!(buf.len() < before.len(), "a frame consumes bytes");
                    assert!(f.headers.len() <= limits.max_headers);
                    assert!(f.body.len() <= limits.max_body_bytes);
                }
                Ok(Some(Item::Heartbeat)) => assert!(buf.len() < before.len()),
                Ok(None) => {
                    assert_eq!(buf, before, "Ok(None) must not consume");
                    break;
                }
                Err(e) => {
                    // Every error makes an encodable ERROR frame.
                    encode(&e.to_error_frame(), Version::V1_0, &mut BytesMut::new()).unwrap();
                    return;
                }
            }
        }
    }
}
