//! Error codes carried on the wire, and the codec's own decode / encode errors.

use crate::body::Opcode;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal; )*) => {
        /// A reply code carried by [`ErrorResponse`](crate::ErrorResponse) (and, by convention,
        /// [`Close`](crate::Close)). The values mirror AMQP 0-9-1 reply codes.
        ///
        /// Decoding never fails on a code: one this version does not know becomes
        /// [`ErrorCode::Other`]. `Other` is meant only for such codes; `Other(404)` encodes as 404
        /// and decodes back as [`ErrorCode::NotFound`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
            /// A code this version of the protocol does not name.
            Other(u16),
        }

        impl ErrorCode {
            /// Every named code, in numeric order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name),*];

            /// The numeric value sent on the wire.
            pub const fn code(self) -> u16 {
                match self {
                    $( ErrorCode::$name => $value, )*
                    ErrorCode::Other(code) => code,
                }
            }

            /// The code for a numeric value; never fails (unknown values give [`ErrorCode::Other`]).
            pub const fn from_code(code: u16) -> ErrorCode {
                match code {
                    $( $value => ErrorCode::$name, )*
                    other => ErrorCode::Other(other),
                }
            }

            /// The AMQP-style name, e.g. `NOT_FOUND`; `UNKNOWN` for [`ErrorCode::Other`].
            pub const fn name(self) -> &'static str {
                match self {
                    $( ErrorCode::$name => $text, )*
                    ErrorCode::Other(_) => "UNKNOWN",
                }
            }
        }
    };
}

error_codes! {
    /// 311: the message is larger than the server accepts.
    ContentTooLarge = 311, "CONTENT_TOO_LARGE";
    /// 312: a mandatory message could not be routed to any queue.
    NoRoute = 312, "NO_ROUTE";
    /// 320: an operator (or shutdown) closed the connection.
    ConnectionForced = 320, "CONNECTION_FORCED";
    /// 402: the virtual host or path is invalid.
    InvalidPath = 402, "INVALID_PATH";
    /// 403: authentication failed or the user lacks the permission.
    AccessRefused = 403, "ACCESS_REFUSED";
    /// 404: the exchange, queue or consumer does not exist.
    NotFound = 404, "NOT_FOUND";
    /// 405: the resource is exclusively used by another connection.
    ResourceLocked = 405, "RESOURCE_LOCKED";
    /// 406: a precondition failed (passive declare mismatch, `if_unused`, `if_empty`, ...).
    PreconditionFailed = 406, "PRECONDITION_FAILED";
    /// 501: a frame could not be decoded (framing, truncation, size).
    FrameError = 501, "FRAME_ERROR";
    /// 502: a frame decoded but holds an illegal value (bool, UTF-8, enum tag, ...).
    SyntaxError = 502, "SYNTAX_ERROR";
    /// 503: the request is not valid in the current state.
    CommandInvalid = 503, "COMMAND_INVALID";
    /// 504: misuse of a session-level object.
    ChannelError = 504, "CHANNEL_ERROR";
    /// 505: a frame arrived that the receiver did not expect (e.g. a server push from a client).
    UnexpectedFrame = 505, "UNEXPECTED_FRAME";
    /// 506: the server ran out of a resource (memory, disk, connections, ...).
    ResourceError = 506, "RESOURCE_ERROR";
    /// 530: the operation is not allowed.
    NotAllowed = 530, "NOT_ALLOWED";
    /// 540: the operation is not implemented by this server.
    NotImplemented = 540, "NOT_IMPLEMENTED";
    /// 541: an internal server error.
    InternalError = 541, "INTERNAL_ERROR";
}

impl From<u16> for ErrorCode {
    fn from(code: u16) -> Self {
        ErrorCode::from_code(code)
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> Self {
        code.code()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), self.name())
    }
}

/// Why a frame could not be decoded.
///
/// Every decode error is fatal to the connection: the receiver should answer with an
/// [`ErrorResponse`](crate::ErrorResponse) on request id 0 carrying [`DecodeError::code`], then
/// close. When the offending frame had fully arrived, [`Decoder::decode`](crate::Decoder::decode)
/// has already removed it from the buffer; otherwise ([`DecodeError::FrameTooLarge`],
/// [`DecodeError::FrameTooShort`]) the buffer is left untouched and the same error comes back on
/// every later call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix is larger than the negotiated maximum frame size. Reported as soon as
    /// the 4-byte prefix is in, before any of the body is buffered.
    #[error("frame length {declared} exceeds the maximum frame size {max}")]
    FrameTooLarge {
        /// The length the prefix declared.
        declared: u32,
        /// The decoder's maximum.
        max: u32,
    },
    /// The length prefix is smaller than the fixed 8-byte header that must follow it.
    #[error("frame length {declared} is shorter than the {min}-byte header")]
    FrameTooShort {
        /// The length the prefix declared.
        declared: u32,
        /// The smallest valid length.
        min: u32,
    },
    /// The version byte is not [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
    #[error("unsupported protocol version {version}")]
    UnsupportedVersion {
        /// The version byte received.
        version: u8,
    },
    /// The opcode byte names no message.
    #[error("unknown opcode {opcode:#04x}")]
    UnknownOpcode {
        /// The opcode byte received.
        opcode: u8,
    },
    /// The reserved header flags are not zero.
    #[error("reserved frame flags {flags:#06x} are set")]
    NonZeroFlags {
        /// The flags received.
        flags: u16,
    },
    /// The payload ended before a field did (or a list count promises more items than the
    /// payload can hold).
    #[error("truncated {field}: need {need} bytes, have {have}")]
    UnexpectedEof {
        /// The field being read, e.g. `Hello.client_id`.
        field: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left in the payload.
        have: usize,
    },
    /// The payload has bytes left after its last field.
    #[error("{extra} trailing bytes after the {opcode:?} payload")]
    TrailingBytes {
        /// The frame's opcode.
        opcode: Opcode,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A `bool` byte is neither 0 nor 1 (also an `opt<T>` presence byte).
    #[error("invalid bool {value} in {field}")]
    InvalidBool {
        /// The field being read.
        field: &'static str,
        /// The byte received.
        value: u8,
    },
    /// A `str` is not valid UTF-8.
    #[error("invalid UTF-8 in {field} after {valid_up_to} bytes")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// An enum tag byte (exchange kind, start position) is unknown.
    #[error("invalid tag {tag} for {field}")]
    InvalidEnumTag {
        /// The field being read.
        field: &'static str,
        /// The tag received.
        tag: u8,
    },
    /// The [`Properties`](crate::Properties) presence bitmap has its reserved bit set.
    #[error("reserved property bits {bits:#06x} are set")]
    ReservedPropertyBits {
        /// The reserved bits that were set.
        bits: u16,
    },
}

impl DecodeError {
    /// The reply code to send back: [`ErrorCode::FrameError`] when the frame could not be taken
    /// apart (size, header, truncation, trailing bytes), [`ErrorCode::SyntaxError`] when a field
    /// holds an illegal value, [`ErrorCode::NotImplemented`] for an unknown opcode.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::FrameTooLarge { .. }
            | DecodeError::FrameTooShort { .. }
            | DecodeError::UnsupportedVersion { .. }
            | DecodeError::NonZeroFlags { .. }
            | DecodeError::UnexpectedEof { .. }
            | DecodeError::TrailingBytes { .. } => ErrorCode::FrameError,
            DecodeError::UnknownOpcode { .. } => ErrorCode::NotImplemented,
            DecodeError::InvalidBool { .. }
            | DecodeError::InvalidUtf8 { .. }
            | DecodeError::InvalidEnumTag { .. }
            | DecodeError::ReservedPropertyBits { .. } => ErrorCode::SyntaxError,
        }
    }
}

/// Why a frame could not be encoded. [`encode`](crate::encode) leaves the output buffer as it
/// found it when it returns one of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A `str` field is longer than 65 535 bytes.
    #[error("{field} is {len} bytes, over the 65535-byte limit of a str")]
    StringTooLong {
        /// The field being written.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A `bytes` field is longer than `u32::MAX` bytes.
    #[error("{field} is {len} bytes, over the u32 limit of a bytes field")]
    BytesTooLong {
        /// The field being written.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A list has more than `u32::MAX` items.
    #[error("{field} has {len} items, over the u32 limit of a list")]
    ListTooLong {
        /// The field being written.
        field: &'static str,
        /// Its item count.
        len: usize,
    },
    /// A map has more than 65 535 entries.
    #[error("{field} has {len} entries, over the 65535-entry limit of a map")]
    MapTooLong {
        /// The field being written.
        field: &'static str,
        /// Its entry count.
        len: usize,
    },
    /// The frame's length (the bytes after the length prefix) is over the limit given to
    /// [`encode_with_max`](crate::encode_with_max) (or over `u32::MAX`).
    #[error("frame length {len} exceeds the maximum frame size {max}")]
    FrameTooLarge {
        /// The frame's length, not counting the 4-byte prefix.
        len: usize,
        /// The limit.
        max: u32,
    },
}
