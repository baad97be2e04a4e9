//! Session messages: handshake, close, and the generic error response.

use crate::error::{DecodeError, EncodeError, ErrorCode};
use crate::primitives::{Reader, Wire, Writer};

/// Client -> server, the first frame of a connection: who the client is and what it proposes.
/// Answered by [`Welcome`] (or an [`ErrorResponse`], then the server closes).
///
/// A server may refuse frames larger than [`MIN_MAX_FRAME`](crate::MIN_MAX_FRAME) until it has
/// sent [`Welcome`], so a client keeps its `Hello` within that size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// The client's self-chosen identifier (shown in management, used for exclusivity).
    pub client_id: String,
    /// User name; empty for anonymous.
    pub username: String,
    /// Password (the connection should be TLS when it is not empty).
    pub password: String,
    /// The virtual host to open; empty means the default one.
    pub vhost: String,
    /// The heartbeat interval the client proposes, in milliseconds; 0 = no heartbeats.
    pub heartbeat_ms: u32,
    /// The largest frame length the client accepts; 0 = no preference (the server decides).
    /// See [`negotiate_max_frame`](crate::negotiate_max_frame).
    pub max_frame: u32,
}

impl Wire for Hello {
    const MIN_LEN: usize = 2 * 4 + 4 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Hello.client_id", &self.client_id)?;
        w.str("Hello.username", &self.username)?;
        w.str("Hello.password", &self.password)?;
        w.str("Hello.vhost", &self.vhost)?;
        w.u32(self.heartbeat_ms);
        w.u32(self.max_frame);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Hello {
            client_id: r.str("Hello.client_id")?,
            username: r.str("Hello.username")?,
            password: r.str("Hello.password")?,
            vhost: r.str("Hello.vhost")?,
            heartbeat_ms: r.u32("Hello.heartbeat_ms")?,
            max_frame: r.u32("Hello.max_frame")?,
        })
    }
}

/// Server -> client, the answer to [`Hello`]: the session is open with these settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Welcome {
    /// Server product name, e.g. `junction`.
    pub server: String,
    /// Server version, e.g. `0.1.0`.
    pub version: String,
    /// The id the server gave this session.
    pub session_id: u64,
    /// The heartbeat interval both sides use from now on, in milliseconds; 0 = none. Each side
    /// sends a [`Heartbeat`](crate::Body::Heartbeat) when it has sent nothing for this long and
    /// may close a connection that was silent for twice as long.
    pub heartbeat_ms: u32,
    /// The maximum frame length both sides use from now on.
    pub max_frame: u32,
}

impl Wire for Welcome {
    const MIN_LEN: usize = 2 * 2 + 8 + 4 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Welcome.server", &self.server)?;
        w.str("Welcome.version", &self.version)?;
        w.u64(self.session_id);
        w.u32(self.heartbeat_ms);
        w.u32(self.max_frame);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Welcome {
            server: r.str("Welcome.server")?,
            version: r.str("Welcome.version")?,
            session_id: r.u64("Welcome.session_id")?,
            heartbeat_ms: r.u32("Welcome.heartbeat_ms")?,
            max_frame: r.u32("Welcome.max_frame")?,
        })
    }
}

/// Either direction: the sender is closing the connection. The peer answers
/// [`CloseOk`](crate::Body::CloseOk), then the connection is closed. A server that sends
/// `Close` closes after the `CloseOk` (or a timeout).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Close {
    /// [`Close::NORMAL`] for a normal close, otherwise an [`ErrorCode`] value.
    pub code: u16,
    /// Human-readable reason.
    pub reason: String,
}

impl Close {
    /// The code of a normal close (AMQP's `reply-success`).
    pub const NORMAL: u16 = 200;
}

impl Wire for Close {
    const MIN_LEN: usize = 2 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.code);
        w.str("Close.reason", &self.reason)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Close {
            code: r.u16("Close.code")?,
            reason: r.str("Close.reason")?,
        })
    }
}

/// Server -> client: the request with this frame's request id failed. With request id 0 it is a
/// connection-level error and the server closes the connection after sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// What went wrong.
    pub code: ErrorCode,
    /// Human-readable detail.
    pub message: String,
}

impl ErrorResponse {
    /// An error response with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorResponse {
            code,
            message: message.into(),
        }
    }
}

impl Wire for ErrorResponse {
    const MIN_LEN: usize = 2 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.code.code());
        w.str("Error.message", &self.message)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(ErrorResponse {
            code: ErrorCode::from_code(r.u16("Error.code")?),
            message: r.str("Error.message")?,
        })
    }
}
