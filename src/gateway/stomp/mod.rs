//! The STOMP 1.0 / 1.1 / 1.2 gateway, over TCP and WebSocket: one task per connection.
//!
//! Frames are decoded by the sans-IO `junction-stomp` crate and mapped onto one core
//! [`Session`](crate::core::Session); nothing here keeps queues, routing or messages.
//!
//! - [`connection`]: CONNECT/STOMP negotiation (version, login, vhost, heart-beats) and the run
//!   loop over the socket, the session's events, heart-beat timers and shutdown.
//! - [`subscription`]: SUBSCRIBE / UNSUBSCRIBE / ACK / NACK and MESSAGE frames.
//! - [`destination`]: RabbitMQ's destination conventions (`/queue/`, `/topic/`, ...).
//! - [`mapping`]: STOMP headers <-> canonical message properties.
//! - [`transaction`]: BEGIN / COMMIT / ABORT buffers.
//!
//! Every error (a malformed frame, a refused login, a core error) is answered with an `ERROR`
//! frame (a short `message` header, the detail as a `text/plain` body, and `receipt-id` when
//! the failing frame asked for a receipt), logged once, and the connection is closed, as the
//! spec asks. Other connections are unaffected. The one ERROR that does not close is the
//! notice that the broker cancelled a subscription (its queue was deleted), which names the
//! `subscription`, as RabbitMQ does.

pub mod connection;
pub mod destination;
pub mod mapping;
pub mod subscription;
pub mod transaction;

use std::time::Duration;

use junction_stomp::Limits;

pub use connection::serve;

use crate::core::CoreError;

/// Connection settings the gateway needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest frame accepted from a client (headers and body), bytes.
    pub max_frame: usize,
    /// Most headers in one frame.
    pub max_headers: usize,
    /// Longest header line (`name:value`, escaped), bytes.
    pub max_header_length: usize,
    /// The server's heart-beat interval, ms, both ways (`heart-beat:<ms>,<ms>` in CONNECTED):
    /// the server sends no more often and asks for no more often than this. 0: no heart-beats.
    pub heartbeat_ms: u32,
    /// Time allowed between accept and a CONNECT frame.
    pub handshake_timeout: Duration,
    /// Credentials used when CONNECT has no `login` header (RabbitMQ's `default_user`).
    pub default_login: Option<(String, String)>,
    /// Protocol name for logs and the admin API (`stomp`, `stomp-ws`).
    pub protocol: &'static str,
    /// The user name from the client's verified TLS certificate, set per connection by a TLS
    /// listener with `[tls] cert_login` (None otherwise).
    pub cert_user: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_frame: 17 << 20,
            max_headers: 1000,
            max_header_length: 8 << 10,
            heartbeat_ms: 1000,
            handshake_timeout: Duration::from_secs(10),
            default_login: None,
            protocol: "stomp",
            cert_user: None,
        }
    }
}

impl Settings {
    /// The decoder limits these settings ask for.
    pub fn limits(&self) -> Limits {
        Limits {
            max_frame_bytes: self.max_frame,
            max_header_section_bytes: Limits::DEFAULT
                .max_header_section_bytes
                .max(self.max_header_length.saturating_mul(4)),
            max_headers: self.max_headers,
            max_header_bytes: self.max_header_length,
            max_body_bytes: self.max_frame,
        }
    }
}

/// What an `ERROR` frame says: a short `message` header and a detailed body.
#[derive(Debug, Clone)]
pub struct StompError {
    /// The `message` header.
    pub message: String,
    /// The body (text/plain).
    pub detail: String,
}

impl StompError {
    /// An error with a summary and a detail.
    pub fn new(message: impl Into<String>, detail: impl Into<String>) -> StompError {
        StompError {
            message: message.into(),
            detail: detail.into(),
        }
    }

    /// A frame that lacks a required header (`Missing destination`, as RabbitMQ words it).
    pub fn missing(header: &str, command: junction_stomp::Command) -> StompError {
        StompError::new(
            format!("Missing {header}"),
            format!("{command} frames need a '{header}' header"),
        )
    }
}

impl From<CoreError> for StompError {
    fn from(e: CoreError) -> StompError {
        let message = match &e {
            CoreError::NotFound { .. } => "not_found",
            CoreError::AccessRefused(_) | CoreError::ReadOnly(_) => "access_refused",
            CoreError::PreconditionFailed(_) | CoreError::Invalid(_) => "precondition_failed",
            CoreError::ResourceLocked(_) => "resource_locked",
            CoreError::ResourceLimit(_) | CoreError::Blocked(_) => "resource_error",
            CoreError::ShuttingDown => "connection_forced",
            CoreError::Store(_) | CoreError::Io(_) => "internal_error",
        };
        let detail = match &e {
            // RabbitMQ's wording ("no exchange 'x' ..."), which clients match on.
            CoreError::NotFound { kind, name } => format!("no {kind} '{name}'"),
            other => other.to_string(),
        };
        StompError::new(message, detail)
    }
}

impl From<destination::BadDestination> for StompError {
    /// RabbitMQ's texts, which clients and tests match on.
    fn from(e: destination::BadDestination) -> StompError {
        match e {
            destination::BadDestination::Unknown(_) => {
                StompError::new("Unknown destination", e.to_string())
            }
            destination::BadDestination::Invalid { .. } => {
                StompError::new("Invalid destination", format!("{e}\n"))
            }
        }
    }
}

impl From<mapping::BadHeader> for StompError {
    fn from(e: mapping::BadHeader) -> StompError {
        StompError::new(format!("invalid '{}' header", e.name), e.to_string())
    }
}

impl From<transaction::TxError> for StompError {
    fn from(e: transaction::TxError) -> StompError {
        StompError::new("transaction error", e.to_string())
    }
}
