//! The encoder: frames in, bytes out.
//!
//! Output uses LF line endings (valid in every version), escapes headers per version and
//! command (none for 1.0 and for `CONNECT`/`STOMP`/`CONNECTED`), and frames every non-empty body with a
//! `content-length` header so that bodies are binary-safe (they may contain NUL).

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::escape::{escape_into, Escaping};
use crate::frame::{Frame, CONTENT_LENGTH};
use crate::version::Version;

/// Appends `frame`, encoded for a session of `version`, to `out`.
///
/// - Headers are written in order, escaped for `version` (never for `CONNECT`, `STOMP` or
///   `CONNECTED`).
/// - `content-length`: the frame's first `content-length` header is written in place with the
///   **actual** body length (a stale value is corrected), and any later `content-length`
///   headers are dropped, so that no peer, whether it reads the first or the last one, can be
///   misframed. Without one, a non-empty body gets `content-length` after the other headers;
///   an empty body gets none.
/// - The body follows the blank line, then a NUL.
///
/// Fails, leaving `out` unchanged, if a header cannot be represented: an empty name, a line
/// feed or carriage return in an unescaped frame (1.0, `CONNECT`, `STOMP`, `CONNECTED`), a colon
/// in an unescaped name, a carriage return in 1.1, or a name starting with NUL (which the
/// [`Decoder`](crate::Decoder) reads as the end of a frame whose blank line was left out). Refusing (rather than writing it raw)
/// keeps a header value from injecting headers into the frame.
///
/// ```
/// use bytes::BytesMut;
/// use junction_stomp::{encode, Frame, Version};
///
/// let mut out = BytesMut::new();
/// encode(&Frame::send("/queue/a", &b"hi\0"[..]), Version::V1_2, &mut out)?;
/// assert_eq!(&out[..], b"SEND\ndestination:/queue/a\ncontent-length:3\n\nhi\0\0");
/// # Ok::<(), junction_stomp::EncodeError>(())
/// ```
pub fn encode(frame: &Frame, version: Version, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_inner(frame, version, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_inner(frame: &Frame, version: Version, out: &mut BytesMut) -> Result<(), EncodeError> {
    let escaping = Escaping::for_frame(version, frame.command);
    let headers_len: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum();
    out.reserve(frame.command.as_str().len() + headers_len + frame.body.len() + 32);

    out.put_slice(frame.command.as_str().as_bytes());
    out.put_u8(b'\n');
    let mut wrote_length = false;
    for (name, value) in &frame.headers {
        if name == CONTENT_LENGTH {
            if !wrote_length {
                put_content_length(frame.body.len(), out);
                wrote_length = true;
            }
            continue;
        }
        let unencodable = |reason| EncodeError::Unencodable {
            name: name.clone(),
            command: frame.command,
            version,
            reason,
        };
        if name.is_empty() {
            return Err(EncodeError::EmptyHeaderName);
        }
        if name.starts_with('\0') {
            return Err(unencodable(
                "NUL at the start of a header line reads as the frame's end",
            ));
        }
        escape_into(name, escaping, true, out).map_err(unencodable)?;
        out.put_u8(b':');
        escape_into(value, escaping, false, out).map_err(unencodable)?;
        out.put_u8(b'\n');
    }
    if !wrote_length && !frame.body.is_empty() {
        put_content_length(frame.body.len(), out);
    }
    out.put_u8(b'\n');
    out.put_slice(&frame.body);
    out.put_u8(0);
    Ok(())
}

fn put_content_length(len: usize, out: &mut BytesMut) {
    out.put_slice(CONTENT_LENGTH.as_bytes());
    out.put_u8(b':');
    out.put_slice(len.to_string().as_bytes());
    out.put_u8(b'\n');
}

/// Appends a heart-beat: a single LF.
pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Command;

    fn enc(frame: &Frame, version: Version) -> Result<Vec<u8>, EncodeError> {
        let mut out = BytesMut::new();
        encode(frame, version, &mut out)?;
        Ok(out.to_vec())
    }

    #[test]
    fn frame_without_body_has_no_content_length() {
        let f = Frame::new(Command::Subscribe)
            .with_header("id", "0")
            .with_header("destination", "/queue/foo")
            .with_header("ack", "client");
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0"
        );
    }

    #[test]
    fn content_length_is_added_or_corrected() {
        let f = Frame::new(Command::Message)
            .with_header("content-length", "999")
            .with_header("a", "b")
            .with_header("content-length", "1")
            .with_body(&b"xy"[..]);
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"MESSAGE\ncontent-length:2\na:b\n\nxy\0"
        );
        let f = Frame::new(Command::Error).with_header("content-length", "7");
        assert_eq!(
            enc(&f, Version::V1_1).unwrap(),
            b"ERROR\ncontent-length:0\n\n\0"
        );
    }

    #[test]
    fn escaping_per_version_and_command() {
        let f = Frame::new(Command::Send).with_header("a:b", "c\\d\ne\rf");
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"SEND\na\\cb:c\\\\d\\ne\\rf\n\n\0"
        );
        let f = Frame::new(Command::Send).with_header("a:b", "c\\d\ne");
        assert_eq!(
            enc(&f, Version::V1_1).unwrap(),
            b"SEND\na\\cb:c\\\\d\\ne\n\n\0"
        );
        // 1.0 and CONNECT/CONNECTED: raw; colons and backslashes in values are fine.
        let f = Frame::new(Command::Send).with_header("a", "b:c\\d");
        assert_eq!(enc(&f, Version::V1_0).unwrap(), b"SEND\na:b:c\\d\n\n\0");
        let f = Frame::new(Command::Connect).with_header("passcode", "p:a\\ss");
        assert_eq!(
            enc(&f, Version::V1_2).unwrap(),
            b"CONNECT\npasscode:p:a\\ss\n\n\0"
        );
    }

    #[test]
    fn unencodable_headers_leave_output_untouched() {
        let cases = [
            (
                Frame::new(Command::Send).with_header("", "x"),
                Version::V1_2,
            ),
            (
                Frame::new(Command::Send).with_header("a", "x\ny"),
                Version::V1_0,
            ),
            (
                Frame::new(Command::Send).with_header("a:b", "x"),
                Version::V1_0,
            ),
            (
                Frame::new(Command::Send).with_header("a", "x\ry"),
                Version::V1_1,
            ),
            (
                Frame::new(Command::Connected).with_header("a", "x\ny"),
                Version::V1_2,
            ),
            (
                Frame::new(Command::Stomp).with_header("a\r", "x"),
                Version::V1_2,
            ),
            (
                Frame::new(Command::Send).with_header("\0a", "x"),
                Version::V1_2,
            ),
        ];
        for (frame, version) in cases {
            let mut out = BytesMut::from(&b"keep"[..]);
            let e = encode(&frame, version, &mut out).unwrap_err();
            assert_eq!(&out[..], b"keep", "{e}");
        }
        let e = enc(
            &Frame::new(Command::Send).with_header("a", "x\ry"),
            Version::V1_1,
        )
        .unwrap_err();
        assert_eq!(
            e,
            EncodeError::Unencodable {
                name: "a".into(),
                command: Command::Send,
                version: Version::V1_1,
                reason: "carriage return (STOMP 1.1 has no \\r escape)",
            }
        );
    }

    #[test]
    fn heartbeat_is_one_lf() {
        let mut out = BytesMut::new();
        encode_heartbeat(&mut out);
        assert_eq!(&out[..], b"\n");
    }
}
