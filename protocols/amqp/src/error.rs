//! Errors and the AMQP reply codes they map to.

use amq_protocol::protocol::AMQPClass;
use thiserror::Error;

use crate::methods::{channel_close, connection_close};

/// AMQP 0-9-1 reply codes used by this crate (spec section "constants").
pub mod reply_code {
    /// 200 reply-success: a normal `connection.close` / `channel.close`.
    pub const REPLY_SUCCESS: u16 = 200;
    /// 311 content-too-large (soft error, channel level).
    pub const CONTENT_TOO_LARGE: u16 = 311;
    /// 312 no-route: `basic.return` of a mandatory message that matched no queue.
    pub const NO_ROUTE: u16 = 312;
    /// 320 connection-forced: an operator closed the connection.
    pub const CONNECTION_FORCED: u16 = 320;
    /// 403 access-refused (soft error).
    pub const ACCESS_REFUSED: u16 = 403;
    /// 404 not-found (soft error).
    pub const NOT_FOUND: u16 = 404;
    /// 405 resource-locked (soft error).
    pub const RESOURCE_LOCKED: u16 = 405;
    /// 406 precondition-failed (soft error); also "message size exceeds max".
    pub const PRECONDITION_FAILED: u16 = 406;
    /// 501 frame-error: a frame that could not be decoded (hard error).
    pub const FRAME_ERROR: u16 = 501;
    /// 502 syntax-error: a frame with illegal field values (hard error).
    pub const SYNTAX_ERROR: u16 = 502;
    /// 503 command-invalid: an operation the server considers invalid (hard error).
    pub const COMMAND_INVALID: u16 = 503;
    /// 504 channel-error: a frame for a channel that is not open (hard error).
    pub const CHANNEL_ERROR: u16 = 504;
    /// 505 unexpected-frame: a frame of the wrong type or order (hard error).
    pub const UNEXPECTED_FRAME: u16 = 505;
    /// 506 resource-error: the server ran out of a resource (hard error).
    pub const RESOURCE_ERROR: u16 = 506;
    /// 530 not-allowed (hard error).
    pub const NOT_ALLOWED: u16 = 530;
    /// 540 not-implemented: a method the server does not implement (hard error).
    pub const NOT_IMPLEMENTED: u16 = 540;
    /// 541 internal-error (hard error).
    pub const INTERNAL_ERROR: u16 = 541;

    /// The spec's upper-case name of a reply code (`"FRAME_ERROR"`), as RabbitMQ puts it at
    /// the start of its reply texts, or `"UNKNOWN"`.
    #[must_use]
    pub fn name(code: u16) -> &'static str {
        match code {
            REPLY_SUCCESS => "REPLY_SUCCESS",
            CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
            NO_ROUTE => "NO_ROUTE",
            CONNECTION_FORCED => "CONNECTION_FORCED",
            ACCESS_REFUSED => "ACCESS_REFUSED",
            NOT_FOUND => "NOT_FOUND",
            RESOURCE_LOCKED => "RESOURCE_LOCKED",
            PRECONDITION_FAILED => "PRECONDITION_FAILED",
            FRAME_ERROR => "FRAME_ERROR",
            SYNTAX_ERROR => "SYNTAX_ERROR",
            COMMAND_INVALID => "COMMAND_INVALID",
            CHANNEL_ERROR => "CHANNEL_ERROR",
            UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
            RESOURCE_ERROR => "RESOURCE_ERROR",
            NOT_ALLOWED => "NOT_ALLOWED",
            NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
            INTERNAL_ERROR => "INTERNAL_ERROR",
            _ => "UNKNOWN",
        }
    }
}

/// The kind of a frame, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Frame type 1.
    Method,
    /// Frame type 2.
    Header,
    /// Frame type 3.
    Body,
    /// Frame type 8.
    Heartbeat,
}

impl std::fmt::Display for FrameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FrameKind::Method => "method",
            FrameKind::Header => "content header",
            FrameKind::Body => "content body",
            FrameKind::Heartbeat => "heartbeat",
        })
    }
}

/// Something a peer sent that the server must answer by closing the connection (or, for
/// [`FrameError::MessageTooLarge`], the channel).
///
/// Every variant knows the [`reply_code`](FrameError::reply_code) to close with and, where
/// the offending method is known, its [`class_id`](FrameError::class_id) and
/// [`method_id`](FrameError::method_id) for the `connection.close` fields of the same names
/// (0 when unknown). [`FrameError::close_method`] builds the whole close method.
///
/// After any error the decoder's input buffer and the assembler's state are unspecified:
/// close the connection (or, for a channel error, reset that channel's assembler).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The octet after the payload was not 0xCE (501).
    #[error("frame end octet {found:#04x} on channel {channel}, expected 0xce")]
    BadFrameEnd {
        /// Channel of the frame.
        channel: u16,
        /// The octet found instead of 0xCE.
        found: u8,
    },
    /// The frame header declared a payload larger than the negotiated frame-max allows
    /// (501); detected from the 7-byte header, before any of the payload is buffered.
    #[error("frame payload of {size} bytes on channel {channel} exceeds frame-max {frame_max}")]
    FrameTooLarge {
        /// Channel of the frame.
        channel: u16,
        /// Payload size the header declared.
        size: u32,
        /// The negotiated frame-max.
        frame_max: u32,
    },
    /// The first octet of a frame is not a known frame type (501).
    #[error("unknown frame type {frame_type}")]
    UnknownFrameType {
        /// The octet found.
        frame_type: u8,
    },
    /// A payload too short for its frame type, or a stream that ended inside a frame (501).
    #[error("truncated {kind} frame on channel {channel}: {detail}")]
    Truncated {
        /// Channel of the frame.
        channel: u16,
        /// Type of the frame.
        kind: FrameKind,
        /// What was missing.
        detail: &'static str,
    },
    /// A heartbeat frame on a channel other than 0, or with a payload (501).
    #[error("invalid heartbeat frame on channel {channel} with {size} payload bytes")]
    InvalidHeartbeat {
        /// Channel of the frame.
        channel: u16,
        /// Its payload size.
        size: u32,
    },
    /// More body bytes arrived than the content header declared (501).
    #[error("content body on channel {channel} exceeds the declared size of {declared} bytes (got {received})")]
    BodyTooLong {
        /// Channel of the content.
        channel: u16,
        /// Body size declared by the content header.
        declared: u64,
        /// Bytes received so far, including the offending frame.
        received: u64,
    },
    /// A method or content header whose fields do not parse (502).
    #[error("cannot decode {what} (class {class_id}, method {method_id}) on channel {channel}: {reason}")]
    Syntax {
        /// Channel of the frame.
        channel: u16,
        /// `"method"` or `"content header"`.
        what: &'static str,
        /// Class id of the method or content header.
        class_id: u16,
        /// Method id (0 for a content header).
        method_id: u16,
        /// Why it did not parse.
        reason: String,
    },
    /// A frame the spec forbids in this place, such as a connection-class method on a
    /// channel other than 0 (503).
    #[error(
        "command invalid on channel {channel} (class {class_id}, method {method_id}): {reason}"
    )]
    CommandInvalid {
        /// Channel of the frame.
        channel: u16,
        /// Class id of the method.
        class_id: u16,
        /// Method id of the method.
        method_id: u16,
        /// What was wrong.
        reason: &'static str,
    },
    /// A frame of the wrong type for the channel's state (505): a content header or body
    /// with no content-bearing method before it, a method between a `basic.publish` and the
    /// end of its content, a content header for a class other than basic.
    #[error("unexpected {got} frame on channel {channel}: expected {expected}")]
    UnexpectedFrame {
        /// Channel of the frame.
        channel: u16,
        /// What the channel was waiting for.
        expected: &'static str,
        /// What arrived.
        got: FrameKind,
        /// Class id of the method whose content was being assembled, or 0.
        class_id: u16,
        /// Method id of that method, or 0.
        method_id: u16,
    },
    /// A method id the server does not know (540).
    #[error("method {class_id}.{method_id} on channel {channel} is not implemented")]
    NotImplemented {
        /// Channel of the frame.
        channel: u16,
        /// Class id found.
        class_id: u16,
        /// Method id found.
        method_id: u16,
    },
    /// A content header declared a body larger than the configured maximum message size.
    /// A channel error: answer with `channel.close` 406 PRECONDITION_FAILED
    /// ([`FrameError::close_method`] does), not a connection close.
    #[error("message size {size} is larger than configured max size {max}")]
    MessageTooLarge {
        /// Channel of the content.
        channel: u16,
        /// Body size the content header declared.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
}

impl FrameError {
    /// The reply code to close with.
    #[must_use]
    pub fn reply_code(&self) -> u16 {
        use reply_code::*;
        match self {
            FrameError::BadFrameEnd { .. }
            | FrameError::FrameTooLarge { .. }
            | FrameError::UnknownFrameType { .. }
            | FrameError::Truncated { .. }
            | FrameError::InvalidHeartbeat { .. }
            | FrameError::BodyTooLong { .. } => FRAME_ERROR,
            FrameError::Syntax { .. } => SYNTAX_ERROR,
            FrameError::CommandInvalid { .. } => COMMAND_INVALID,
            FrameError::UnexpectedFrame { .. } => UNEXPECTED_FRAME,
            FrameError::NotImplemented { .. } => NOT_IMPLEMENTED,
            FrameError::MessageTooLarge { .. } => PRECONDITION_FAILED,
        }
    }

    /// Whether this is a channel-level error (close the channel, not the connection).
    /// Only [`FrameError::MessageTooLarge`] is.
    #[must_use]
    pub fn is_channel_error(&self) -> bool {
        matches!(self, FrameError::MessageTooLarge { .. })
    }

    /// The channel the offending frame arrived on (0 when unknown).
    #[must_use]
    pub fn channel(&self) -> u16 {
        match self {
            FrameError::UnknownFrameType { .. } => 0,
            FrameError::BadFrameEnd { channel, .. }
            | FrameError::FrameTooLarge { channel, .. }
            | FrameError::Truncated { channel, .. }
            | FrameError::InvalidHeartbeat { channel, .. }
            | FrameError::BodyTooLong { channel, .. }
            | FrameError::Syntax { channel, .. }
            | FrameError::CommandInvalid { channel, .. }
            | FrameError::UnexpectedFrame { channel, .. }
            | FrameError::NotImplemented { channel, .. }
            | FrameError::MessageTooLarge { channel, .. } => *channel,
        }
    }

    /// The class id of the offending method, for `connection.close`'s `class-id` (0 when
    /// unknown).
    #[must_use]
    pub fn class_id(&self) -> u16 {
        match self {
            FrameError::Syntax { class_id, .. }
            | FrameError::CommandInvalid { class_id, .. }
            | FrameError::UnexpectedFrame { class_id, .. }
            | FrameError::NotImplemented { class_id, .. } => *class_id,
            FrameError::BodyTooLong { .. } | FrameError::MessageTooLarge { .. } => {
                crate::BASIC_CLASS_ID
            }
            _ => 0,
        }
    }

    /// The method id of the offending method, for `connection.close`'s `method-id` (0 when
    /// unknown).
    #[must_use]
    pub fn method_id(&self) -> u16 {
        match self {
            FrameError::Syntax { method_id, .. }
            | FrameError::CommandInvalid { method_id, .. }
            | FrameError::UnexpectedFrame { method_id, .. }
            | FrameError::NotImplemented { method_id, .. } => *method_id,
            FrameError::BodyTooLong { .. } | FrameError::MessageTooLarge { .. } => {
                crate::BASIC_PUBLISH_METHOD_ID
            }
            _ => 0,
        }
    }

    /// The reply text in RabbitMQ's style: the reply code's name, `" - "`, the explanation
    /// (`"FRAME_ERROR - frame end octet 0x00 on channel 1, expected 0xce"`).
    #[must_use]
    pub fn reply_text(&self) -> String {
        format!("{} - {}", reply_code::name(self.reply_code()), self)
    }

    /// The method that answers this error: `channel.close` on [`FrameError::channel`] for a
    /// channel error, else `connection.close` (send it on channel 0). Reply texts are cut
    /// to 255 bytes.
    #[must_use]
    pub fn close_method(&self) -> AMQPClass {
        let text = self.reply_text();
        if self.is_channel_error() {
            channel_close(self.reply_code(), &text, self.class_id(), self.method_id())
        } else {
            connection_close(self.reply_code(), &text, self.class_id(), self.method_id())
        }
    }
}

/// A frame the server wanted to write could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A short string (consumer tag, exchange, routing key, reply text...) over 255 bytes.
    #[error("{field} is {len} bytes, over the 255-byte short-string limit")]
    ShortStringTooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// A frame-max below 9 leaves no room for a body byte (0 means "no limit" and is fine).
    #[error("frame-max {0} is too small to carry content")]
    FrameMaxTooSmall(u32),
    /// A frame payload over 4 GiB.
    #[error("frame payload of {0} bytes does not fit the 32-bit size field")]
    PayloadTooLarge(usize),
    /// amq-protocol's generator failed.
    #[error("cannot serialize: {0}")]
    Generation(String),
}

/// A SASL response that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The response does not have the mechanism's shape.
    #[error("malformed {mechanism} response: {reason}")]
    Malformed {
        /// `"PLAIN"` or `"AMQPLAIN"`.
        mechanism: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// A PLAIN authorization identity different from the user (impersonation is refused).
    #[error("PLAIN authorization identity differs from the authentication identity")]
    AuthzidMismatch,
    /// The user name or password is not UTF-8.
    #[error("{mechanism} {field} is not valid UTF-8")]
    NotUtf8 {
        /// `"PLAIN"` or `"AMQPLAIN"`.
        mechanism: &'static str,
        /// `"user"` or `"password"`.
        field: &'static str,
    },
}
