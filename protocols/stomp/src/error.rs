//! Decode and encode errors.
//!
//! Every [`DecodeError`] is a fatal protocol error: the spec says the server SHOULD send an
//! `ERROR` frame and close the connection. [`DecodeError::to_error_frame`] builds that frame: a
//! fixed, always-encodable `message` header ([`DecodeError::summary`]) and the detailed
//! [`Display`](std::fmt::Display) text as a `text/plain` body (which may quote client input,
//! so it goes in the body, where any byte is allowed, rather than in a header).

use thiserror::Error;

use crate::frame::{Command, Frame};
use crate::version::Version;

/// Longest excerpt of client input quoted in an error.
const QUOTE_MAX: usize = 128;

/// Why bytes could not be decoded into a frame. All variants are fatal to the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The command line is not one of the STOMP commands (commands are case-sensitive). Holds
    /// the line (lossily decoded, truncated); a line longer than any command is rejected as soon
    /// as it passes that length.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A header line has no `:` separator. Holds the line (lossily decoded, truncated).
    #[error("header line without a colon: {line:?}")]
    MissingColon {
        /// The offending line.
        line: String,
    },
    /// A header line starts with `:` (header names must not be empty).
    #[error("header line with an empty name")]
    EmptyHeaderName,
    /// A backslash in a header is not followed by one of the escapes defined for the version
    /// (`\r` (1.2 only), `\n`, `\c`, `\\`), which the spec makes a fatal protocol error.
    #[error("undefined escape sequence {sequence:?} in a header")]
    BadEscape {
        /// The backslash and the character after it (or just the backslash at the end).
        sequence: String,
    },
    /// A header name or value is not valid UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The first `content-length` header is not a decimal byte count.
    #[error("invalid content-length {value:?}")]
    BadContentLength {
        /// The header value.
        value: String,
    },
    /// The `content-length` bytes of the body are not followed by the NUL octet.
    #[error("frame body of content-length {content_length} is not followed by a NUL octet")]
    MissingNul {
        /// The declared body length.
        content_length: usize,
    },
    /// A header line (without its EOL) is longer than
    /// [`Limits::max_header_bytes`](crate::Limits::max_header_bytes).
    #[error("header line longer than {limit} bytes")]
    HeaderTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The frame has more than [`Limits::max_headers`](crate::Limits::max_headers) headers.
    #[error("more than {limit} headers in a frame")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The command line, headers and blank line together exceed
    /// [`Limits::max_header_section_bytes`](crate::Limits::max_header_section_bytes).
    #[error("header section larger than {limit} bytes")]
    HeaderSectionTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body exceeds [`Limits::max_body_bytes`](crate::Limits::max_body_bytes): either the
    /// `content-length` says so (`declared`), or no NUL came within the limit (`declared` is
    /// `None`).
    #[error("body{} exceeds the limit of {limit} bytes", declared_text(.declared))]
    BodyTooLarge {
        /// The `content-length`, if the frame had one.
        declared: Option<u64>,
        /// The limit in bytes.
        limit: usize,
    },
    /// The whole frame exceeds [`Limits::max_frame_bytes`](crate::Limits::max_frame_bytes).
    #[error("frame larger than {limit} bytes")]
    FrameTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}

fn declared_text(declared: &Option<u64>) -> String {
    match declared {
        Some(n) => format!(" of content-length {n}"),
        None => String::new(),
    }
}

impl DecodeError {
    /// A short, fixed description, suitable for the `message` header of an `ERROR` frame (it
    /// contains no client input, so it is encodable in every version).
    pub fn summary(&self) -> &'static str {
        match self {
            DecodeError::UnknownCommand(_) => "unknown command",
            DecodeError::MissingColon { .. } => "malformed header line",
            DecodeError::EmptyHeaderName => "empty header name",
            DecodeError::BadEscape { .. } => "undefined escape sequence in header",
            DecodeError::InvalidUtf8 => "header is not valid UTF-8",
            DecodeError::BadContentLength { .. } => "invalid content-length",
            DecodeError::MissingNul { .. } => "frame not terminated by NUL",
            DecodeError::HeaderTooLong { .. } => "header line too long",
            DecodeError::TooManyHeaders { .. } => "too many headers",
            DecodeError::HeaderSectionTooLarge { .. } => "header section too large",
            DecodeError::BodyTooLarge { .. } => "body too large",
            DecodeError::FrameTooLarge { .. } => "frame too large",
        }
    }

    /// The `ERROR` frame to send before closing: `message:` [`summary`](Self::summary),
    /// `content-type:text/plain` and the full error text as the body.
    pub fn to_error_frame(&self) -> Frame {
        Frame::error(self.summary())
            .with_header("content-type", "text/plain")
            .with_body(self.to_string())
    }
}

/// Lossily decodes client bytes for an error message, truncated to a bounded length.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(bytes).into_owned();
    if s.len() > QUOTE_MAX {
        let mut end = QUOTE_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("...");
    }
    s
}

/// Why a frame could not be encoded. The output buffer is left as it was.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A header has an empty name.
    #[error("header with an empty name")]
    EmptyHeaderName,
    /// A header name or value holds a character the frame's encoding cannot carry: a line feed
    /// or carriage return in an unescaped frame (STOMP 1.0, `CONNECT`, `STOMP`, `CONNECTED`), a
    /// colon in an unescaped header name, a carriage return in STOMP 1.1 (which has no `\r`
    /// escape), or a NUL at the start of a name (read back as the end of the frame).
    #[error("header {name:?} cannot be encoded in a STOMP {version} {command} frame: {reason}")]
    Unencodable {
        /// The header's name.
        name: String,
        /// The frame's command.
        command: Command,
        /// The version being encoded.
        version: Version,
        /// What is wrong.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_informative() {
        let e = DecodeError::BodyTooLarge {
            declared: Some(99),
            limit: 10,
        };
        assert_eq!(
            e.to_string(),
            "body of content-length 99 exceeds the limit of 10 bytes"
        );
        let e = DecodeError::BodyTooLarge {
            declared: None,
            limit: 10,
        };
        assert_eq!(e.to_string(), "body exceeds the limit of 10 bytes");
        assert_eq!(
            DecodeError::HeaderTooLong { limit: 8 }.to_string(),
            "header line longer than 8 bytes"
        );
    }

    #[test]
    fn error_frame() {
        let e = DecodeError::MissingColon {
            line: "oops".into(),
        };
        let f = e.to_error_frame();
        assert_eq!(f.command, Command::Error);
        assert_eq!(f.header("message"), Some("malformed header line"));
        assert_eq!(f.header("content-type"), Some("text/plain"));
        assert_eq!(&f.body[..], br#"header line without a colon: "oops""#);
    }

    #[test]
    fn quote_truncates_on_char_boundary() {
        assert_eq!(quote(b"abc"), "abc");
        assert_eq!(quote(&[0xff]), "\u{fffd}");
        let long = "é".repeat(100); // 200 bytes
        let q = quote(long.as_bytes());
        assert!(q.ends_with("..."));
        assert!(q.len() <= QUOTE_MAX + 3);
    }
}
