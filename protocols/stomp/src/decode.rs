//! The incremental decoder: bytes in, [`Item`]s out.
//!
//! [`Decoder::decode`] looks at the front of a [`BytesMut`] that the caller keeps appending
//! network input to. It removes bytes only when it returns an item; while a frame is incomplete
//! it returns `Ok(None)` and leaves the buffer untouched, remembering how far it has parsed so
//! that feeding a frame one byte at a time costs linear, not quadratic, time. Limits are checked
//! as the bytes arrive, so an oversized header line, header section or body is refused as soon
//! as it passes its limit, without buffering the rest.
//!
//! Decisions where the spec leaves room:
//! - **EOLs outside a frame** (before a command, or after a frame's NUL) are each reported as
//!   [`Item::Heartbeat`]. The grammar's trailing `*(EOL)` after a NUL cannot be told apart from a
//!   heart-beat on the wire, and reporting both the same way keeps the output independent of
//!   how the input was chunked. [`Decoder::decode_frame`] skips them.
//! - **CR LF** ends a line in every version (1.2 allows it; 1.0/1.1 clients typed in a terminal
//!   send it too). Only a CR right before the LF is removed; a CR elsewhere is kept.
//! - **No trimming**: `name: value` has the value `" value"` (1.2: "MUST never trim").
//! - **Colons**: a header line splits at its first colon, so values may contain colons in
//!   every version (1.2's grammar wants `\c`, but 1.0 has no escape and clients send them).
//! - **Repeated `content-length`**: the first one frames the body (first wins); later ones are
//!   kept in the headers but not interpreted. Its value must be plain decimal digits.
//! - **A NUL where a header line should start** ends the frame with an empty body, as in the
//!   spec's own `DISCONNECT`/`RECEIPT` examples, which omit the blank line.
//! - **Bodies on frames that must not have one** are passed through; see
//!   [`Command::allows_body`].
//! - An **empty header name** (`:value`) is an error (the grammar requires 1+ octets).
//! - **NUL octets between frames** (before a command) are padding, as RabbitMQ takes them: a
//!   run of them is reported as one [`Item::Heartbeat`], like an EOL.

use bytes::{Buf, BytesMut};

use crate::error::{quote, DecodeError};
use crate::escape::{unescape, Escaping};
use crate::frame::{Command, Frame, CONTENT_LENGTH};
use crate::version::Version;

/// Size limits enforced while decoding. The spec allows servers to limit the number of headers,
/// the length of header lines and the size of bodies, and to answer with an `ERROR` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Whole frame: command line, headers, blank line, body and NUL. Default 17 MiB.
    pub max_frame_bytes: usize,
    /// Command line, header lines and the blank line, EOLs included. Default 64 KiB.
    pub max_header_section_bytes: usize,
    /// Number of header lines in one frame. Default 1000.
    pub max_headers: usize,
    /// One header line, `name:value` as sent (escaped), EOL excluded. Default 8 KiB.
    pub max_header_bytes: usize,
    /// Body, whether framed by `content-length` or by the first NUL. Default 16 MiB.
    pub max_body_bytes: usize,
}

impl Limits {
    /// The default limits (see each field).
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: 17 * 1024 * 1024,
        max_header_section_bytes: 64 * 1024,
        max_headers: 1000,
        max_header_bytes: 8 * 1024,
        max_body_bytes: 16 * 1024 * 1024,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// One thing decoded from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete frame.
    Frame(Frame),
    /// A bare EOL (LF or CR LF) between frames: a heart-beat, or padding after a frame's NUL
    /// (a run of NUL octets between frames is reported the same way).
    Heartbeat,
}

/// Parsing progress on the frame at the front of the buffer. A cache only: it describes a prefix
/// of the buffer, which is not consumed until the frame is complete.
#[derive(Debug)]
struct Partial {
    /// Offset from which to continue searching for the next LF (header section) or NUL (body).
    scan: usize,
    /// Offset of the start of the line being read.
    line_start: usize,
    /// The command, once its line is complete.
    command: Option<Command>,
    /// Escaping for this frame's headers (known once the command is).
    escaping: Escaping,
    /// Headers parsed so far.
    headers: Vec<(String, String)>,
    /// Whether a `content-length` header has been seen (only the first one counts).
    seen_content_length: bool,
    /// The body length declared by the first `content-length`.
    content_length: Option<usize>,
    /// Offset of the first body byte, once the blank line has been read.
    body_start: Option<usize>,
}

impl Partial {
    fn new() -> Partial {
        Partial {
            scan: 0,
            line_start: 0,
            command: None,
            escaping: Escaping::None,
            headers: Vec::new(),
            seen_content_length: false,
            content_length: None,
            body_start: None,
        }
    }
}

/// What reading the header section produced.
enum Head {
    /// More bytes are needed.
    Incomplete,
    /// The blank line was read; the body starts at this offset.
    Body(usize),
    /// A NUL stood where a header line should start: the frame ends there with an empty body.
    EndsAt(usize),
}

/// Incremental STOMP decoder for one connection.
///
/// ```
/// use bytes::BytesMut;
/// use junction_stomp::{Command, Decoder, Item, Version};
///
/// let mut dec = Decoder::new(Version::V1_2);
/// let mut buf = BytesMut::from(&b"SEND\ndestination:/queue/a\n\nhel"[..]);
/// assert_eq!(dec.decode(&mut buf)?, None); // incomplete: bytes kept
/// buf.extend_from_slice(b"lo\0\n");
/// let Some(Item::Frame(frame)) = dec.decode(&mut buf)? else { panic!() };
/// assert_eq!(frame.command, Command::Send);
/// assert_eq!(frame.header("destination"), Some("/queue/a"));
/// assert_eq!(&frame.body[..], b"hello");
/// assert_eq!(dec.decode(&mut buf)?, Some(Item::Heartbeat)); // the trailing EOL
/// assert_eq!(dec.decode(&mut buf)?, None);
/// # Ok::<(), junction_stomp::DecodeError>(())
/// ```
#[derive(Debug)]
pub struct Decoder {
    version: Version,
    limits: Limits,
    partial: Option<Partial>,
}

impl Default for Decoder {
    /// A STOMP 1.2 decoder with default limits.
    fn default() -> Self {
        Decoder::new(Version::V1_2)
    }
}

impl Decoder {
    /// A decoder for `version` with [`Limits::DEFAULT`].
    ///
    /// A server does not know the version until it has read `CONNECT`; since `CONNECT` and
    /// `STOMP` headers are never escaped, any version decodes them alike. Start with any version
    /// and call [`set_version`](Self::set_version) after negotiation.
    pub fn new(version: Version) -> Decoder {
        Decoder::with_limits(version, Limits::DEFAULT)
    }

    /// A decoder for `version` with the given limits.
    pub fn with_limits(version: Version, limits: Limits) -> Decoder {
        Decoder {
            version,
            limits,
            partial: None,
        }
    }

    /// The version whose escaping rules apply.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches to the negotiated version. Applies from the next frame.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while a frame has been started but not completed.
    pub fn is_mid_frame(&self) -> bool {
        self.partial.is_some()
    }

    /// Forgets any partial progress (e.g. after the caller cleared its buffer).
    pub fn reset(&mut self) {
        self.partial = None;
    }

    /// Decodes the next item from the front of `buf`.
    ///
    /// - `Ok(Some(item))`: the item's bytes have been removed from `buf`; call again, more
    ///   items may be buffered.
    /// - `Ok(None)`: `buf` holds no complete item; nothing was removed. Append more input to the
    ///   **same** buffer (do not drop or alter its front) and call again.
    /// - `Err(e)`: a fatal protocol error. Send `e.to_error_frame()` and close the connection;
    ///   the buffer is not resynchronised.
    ///
    /// Never panics, whatever the input.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let result = self.decode_inner(buf);
        if result.is_err() {
            self.partial = None;
        }
        result
    }

    /// Like [`decode`](Self::decode) but skips heart-beats: returns the next frame, or `None`
    /// once `buf` holds no complete frame.
    pub fn decode_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        loop {
            match self.decode(buf)? {
                Some(Item::Frame(frame)) => return Ok(Some(frame)),
                Some(Item::Heartbeat) => continue,
                None => return Ok(None),
            }
        }
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, DecodeError> {
        let mut p = match self.partial.take() {
            // The cached progress only holds if the buffer still covers it.
            Some(p) if p.scan <= buf.len() => p,
            _ => {
                // NULs between frames (after a frame's NUL, before a command) are padding, like
                // EOLs: some clients send them, and RabbitMQ accepts them. Never a frame start.
                let nuls = buf.iter().take_while(|&&b| b == 0).count();
                if nuls > 0 {
                    buf.advance(nuls);
                    return Ok(Some(Item::Heartbeat));
                }
                match buf.first() {
                    None => return Ok(None),
                    Some(b'\n') => {
                        buf.advance(1);
                        return Ok(Some(Item::Heartbeat));
                    }
                    Some(b'\r') => match buf.get(1) {
                        None => return Ok(None),
                        Some(b'\n') => {
                            buf.advance(2);
                            return Ok(Some(Item::Heartbeat));
                        }
                        // A lone CR starts a (bad) command line.
                        Some(_) => {}
                    },
                    Some(_) => {}
                }
                Partial::new()
            }
        };

        let head = match p.body_start {
            Some(body_start) => Head::Body(body_start),
            None => self.read_head(&mut p, buf)?,
        };
        let (body_start, body_len) = match head {
            Head::Incomplete => {
                self.partial = Some(p);
                return Ok(None);
            }
            Head::EndsAt(nul) => (nul, 0),
            Head::Body(body_start) => match self.read_body(&mut p, buf, body_start)? {
                Some(len) => (body_start, len),
                None => {
                    self.partial = Some(p);
                    return Ok(None);
                }
            },
        };

        // The frame occupies buf[..body_start + body_len + 1] (the last byte is its NUL).
        let end = body_start.saturating_add(body_len).saturating_add(1);
        let Some(command) = p.command else {
            return Ok(None); // unreachable: a complete head has a command
        };
        if end > buf.len() {
            return Ok(None); // unreachable: the NUL was seen in the buffer
        }
        buf.advance(body_start);
        let body = buf.split_to(body_len).freeze();
        buf.advance(1);
        Ok(Some(Item::Frame(Frame {
            command,
            headers: p.headers,
            body,
        })))
    }

    /// Reads the command line and header lines, from `p.line_start` on.
    fn read_head(&self, p: &mut Partial, buf: &BytesMut) -> Result<Head, DecodeError> {
        let limits = &self.limits;
        loop {
            let in_headers = p.command.is_some();
            // A NUL where a header line would start: the blank line was left out (as in the
            // spec's DISCONNECT example). Only without a non-zero content-length.
            if in_headers
                && p.scan == p.line_start
                && p.content_length.unwrap_or(0) == 0
                && buf.get(p.line_start) == Some(&0)
            {
                return Ok(Head::EndsAt(p.line_start));
            }
            let max_line = if in_headers {
                limits.max_header_bytes
            } else {
                Command::MAX_LEN
            };
            // Look for the LF no further than a maximal line plus CR LF.
            let window_end = buf
                .len()
                .min(p.line_start.saturating_add(max_line).saturating_add(2));
            let lf = buf
                .get(p.scan..window_end)
                .and_then(|w| w.iter().position(|&b| b == b'\n'))
                .map(|i| p.scan + i);

            let Some(lf) = lf else {
                let pending = buf.len().saturating_sub(p.line_start);
                if pending > max_line.saturating_add(1) {
                    return Err(line_too_long(in_headers, limits, buf, p.line_start));
                }
                check_head_size(buf.len(), limits)?;
                p.scan = buf.len();
                return Ok(Head::Incomplete);
            };

            let next = lf + 1;
            let mut line = buf.get(p.line_start..lf).unwrap_or_default();
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.len() > max_line {
                return Err(line_too_long(in_headers, limits, buf, p.line_start));
            }
            check_head_size(next, limits)?;
            p.line_start = next;
            p.scan = next;

            if !in_headers {
                let command = Command::from_bytes(line)
                    .ok_or_else(|| DecodeError::UnknownCommand(quote(line)))?;
                p.command = Some(command);
                p.escaping = Escaping::for_frame(self.version, command);
                continue;
            }
            if line.is_empty() {
                p.body_start = Some(next);
                return Ok(Head::Body(next));
            }
            if p.headers.len() >= limits.max_headers {
                return Err(DecodeError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            let (name, value) = parse_header(line, p.escaping)?;
            if name == CONTENT_LENGTH && !p.seen_content_length {
                p.seen_content_length = true;
                p.content_length = Some(parse_content_length(&value, limits)?);
            }
            p.headers.push((name, value));
        }
    }

    /// Looks for the end of the body. Returns its length once the terminating NUL is buffered.
    fn read_body(
        &self,
        p: &mut Partial,
        buf: &BytesMut,
        body_start: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let limits = &self.limits;
        if let Some(len) = p.content_length {
            let nul = body_start.saturating_add(len);
            if nul.saturating_add(1) > limits.max_frame_bytes {
                return Err(DecodeError::FrameTooLarge {
                    limit: limits.max_frame_bytes,
                });
            }
            return match buf.get(nul) {
                None => Ok(None),
                Some(0) => Ok(Some(len)),
                Some(_) => Err(DecodeError::MissingNul {
                    content_length: len,
                }),
            };
        }

        // Search no further than one byte past the largest allowed body.
        let from = p.scan.max(body_start);
        let search_end = buf.len().min(
            body_start
                .saturating_add(limits.max_body_bytes)
                .saturating_add(1),
        );
        let found = buf
            .get(from..search_end)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
            .map(|i| from + i);
        // Without a NUL, the body is at least everything buffered, and the frame one byte more.
        let body_end = found.unwrap_or(buf.len());
        let len = body_end.saturating_sub(body_start);
        if len > limits.max_body_bytes {
            return Err(DecodeError::BodyTooLarge {
                declared: None,
                limit: limits.max_body_bytes,
            });
        }
        if body_end.saturating_add(1) > limits.max_frame_bytes {
            return Err(DecodeError::FrameTooLarge {
                limit: limits.max_frame_bytes,
            });
        }
        if found.is_none() {
            p.scan = buf.len();
            return Ok(None);
        }
        Ok(Some(len))
    }
}

/// The error for a command or header line longer than allowed.
fn line_too_long(in_headers: bool, limits: &Limits, buf: &BytesMut, start: usize) -> DecodeError {
    if in_headers {
        DecodeError::HeaderTooLong {
            limit: limits.max_header_bytes,
        }
    } else {
        let end = buf.len().min(start.saturating_add(Command::MAX_LEN + 2));
        DecodeError::UnknownCommand(quote(buf.get(start..end).unwrap_or_default()))
    }
}

/// Checks the size of a header section that is at least `size` bytes long.
fn check_head_size(size: usize, limits: &Limits) -> Result<(), DecodeError> {
    if size > limits.max_header_section_bytes {
        return Err(DecodeError::HeaderSectionTooLarge {
            limit: limits.max_header_section_bytes,
        });
    }
    if size > limits.max_frame_bytes {
        return Err(DecodeError::FrameTooLarge {
            limit: limits.max_frame_bytes,
        });
    }
    Ok(())
}

/// Splits a header line (EOL removed) at its first colon, checks UTF-8 and unescapes.
fn parse_header(line: &[u8], escaping: Escaping) -> Result<(String, String), DecodeError> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| DecodeError::MissingColon { line: quote(line) })?;
    let (name, value) = line.split_at_checked(colon).unwrap_or_default();
    let value = value.get(1..).unwrap_or_default();
    if name.is_empty() {
        return Err(DecodeError::EmptyHeaderName);
    }
    let name = std::str::from_utf8(name).map_err(|_| DecodeError::InvalidUtf8)?;
    let value = std::str::from_utf8(value).map_err(|_| DecodeError::InvalidUtf8)?;
    Ok((unescape(name, escaping)?, unescape(value, escaping)?))
}

/// Parses the first `content-length` value and checks it against the body limit.
fn parse_content_length(value: &str, limits: &Limits) -> Result<usize, DecodeError> {
    let bad = || DecodeError::BadContentLength {
        value: quote(value.as_bytes()),
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let declared: u64 = value.parse().map_err(|_| bad())?;
    match usize::try_from(declared) {
        Ok(n) if n <= limits.max_body_bytes => Ok(n),
        _ => Err(DecodeError::BodyTooLarge {
            declared: Some(declared),
            limit: limits.max_body_bytes,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(dec: &mut Decoder, input: &[u8]) -> Result<Vec<Item>, DecodeError> {
        let mut buf = BytesMut::from(input);
        let mut items = Vec::new();
        while let Some(item) = dec.decode(&mut buf)? {
            items.push(item);
        }
        Ok(items)
    }

    fn one_frame(version: Version, input: &[u8]) -> Frame {
        let mut dec = Decoder::new(version);
        let mut buf = BytesMut::from(input);
        let frame = dec.decode_frame(&mut buf).unwrap().expect("a frame");
        assert!(buf.is_empty(), "left over: {buf:?}");
        frame
    }

    fn err(version: Version, limits: Limits, input: &[u8]) -> DecodeError {
        let mut dec = Decoder::with_limits(version, limits);
        decode_all(&mut dec, input).expect_err("an error")
    }

    #[test]
    fn minimal_frames() {
        let f = one_frame(Version::V1_2, b"DISCONNECT\n\n\0");
        assert_eq!(f, Frame::new(Command::Disconnect));
        let f = one_frame(Version::V1_0, b"SEND\nx:y\n\nbody\0");
        assert_eq!(f.header("x"), Some("y"));
        assert_eq!(&f.body[..], b"body");
    }

    #[test]
    fn incomplete_input_keeps_bytes() {
        let mut dec = Decoder::default();
        let full = b"SEND\ncontent-length:3\n\na\0b\0";
        for cut in 0..full.len() {
            let mut d = Decoder::default();
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(d.decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &full[..cut]);
        }
        let items = decode_all(&mut dec, full).unwrap();
        assert_eq!(items.len(), 1);
        assert!(!dec.is_mid_frame());
    }

    #[test]
    fn lone_cr_waits_then_heartbeat() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\r"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"\n");
        assert_eq!(dec.decode(&mut buf), Ok(Some(Item::Heartbeat)));
        assert!(buf.is_empty());
    }

    #[test]
    fn shrunk_buffer_restarts_cleanly() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"SEND\nfoo:bar\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(dec.is_mid_frame());
        // The caller misbehaves and replaces the buffer with a shorter one.
        let mut buf = BytesMut::from(&b"ACK\n\n\0"[..]);
        let f = dec.decode_frame(&mut buf).unwrap().unwrap();
        assert_eq!(f.command, Command::Ack);
        dec.reset();
        assert!(!dec.is_mid_frame());
    }

    #[test]
    fn content_length_first_wins_and_must_be_digits() {
        let f = one_frame(
            Version::V1_2,
            b"SEND\ncontent-length:1\ncontent-length:junk\n\nx\0",
        );
        assert_eq!(&f.body[..], b"x");
        assert_eq!(f.header_values(CONTENT_LENGTH).count(), 2);
        for bad in [
            "",
            " 1",
            "1 ",
            "+1",
            "-1",
            "0x1",
            "1.0",
            "99999999999999999999",
        ] {
            let input = format!("SEND\ncontent-length:{bad}\n\n\0");
            assert_eq!(
                err(Version::V1_2, Limits::DEFAULT, input.as_bytes()),
                DecodeError::BadContentLength { value: bad.into() },
                "{bad:?}"
            );
        }
    }

    #[test]
    fn escaped_content_length_name_is_recognised() {
        // Names are unescaped before comparison; `content-length` has nothing to escape, but a
        // literal backslash form must not be mistaken for it.
        let f = one_frame(Version::V1_2, b"SEND\ncontent\\\\length:5\n\nab\0");
        assert_eq!(f.header("content\\length"), Some("5"));
        assert_eq!(&f.body[..], b"ab");
    }

    #[test]
    fn header_limits_are_exact() {
        let limits = Limits {
            max_header_bytes: 8,
            ..Limits::DEFAULT
        };
        // Exactly 8 bytes, with and without CR: fine.
        let mut dec = Decoder::with_limits(Version::V1_2, limits);
        assert!(decode_all(&mut dec, b"SEND\nabc:1234\n\n\0").is_ok());
        assert!(decode_all(&mut dec, b"SEND\nabc:1234\r\n\r\n\0").is_ok());
        // 9 bytes: rejected, complete or not.
        assert_eq!(
            err(Version::V1_2, limits, b"SEND\nabc:12345\n\n\0"),
            DecodeError::HeaderTooLong { limit: 8 }
        );
        let mut dec = Decoder::with_limits(Version::V1_2, limits);
        let mut buf = BytesMut::from(&b"SEND\nabc:1234\r"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"5");
        assert_eq!(
            dec.decode(&mut buf),
            Err(DecodeError::HeaderTooLong { limit: 8 })
        );
    }

    #[test]
    fn header_count_limit_is_exact() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::DEFAULT
        };
        let mut dec = Decoder::with_limits(Version::V1_2, limits);
        assert!(decode_all(&mut dec, b"SEND\na:1\nb:2\n\n\0").is_ok());
        assert_eq!(
            err(Version::V1_2, limits, b"SEND\na:1\nb:2\nc:3\n"),
            DecodeError::TooManyHeaders { limit: 2 }
        );
    }

    #[test]
    fn body_limit_without_content_length() {
        let limits = Limits {
            max_body_bytes: 4,
            ..Limits::DEFAULT
        };
        let mut dec = Decoder::with_limits(Version::V1_2, limits);
        assert!(decode_all(&mut dec, b"SEND\n\n1234\0").is_ok());
        let too_big = DecodeError::BodyTooLarge {
            declared: None,
            limit: 4,
        };
        // Whole frame at once, and body still arriving.
        assert_eq!(err(Version::V1_2, limits, b"SEND\n\n12345\0"), too_big);
        assert_eq!(err(Version::V1_2, limits, b"SEND\n\n12345"), too_big);
        assert_eq!(
            err(Version::V1_2, limits, b"SEND\ncontent-length:5\n"),
            DecodeError::BodyTooLarge {
                declared: Some(5),
                limit: 4
            }
        );
    }
}
