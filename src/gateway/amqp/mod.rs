//! The AMQP 0-9-1 gateway: RabbitMQ clients on port 5672.
//!
//! - `connection`: the handshake (protocol header, PLAIN/AMQPLAIN, tune, open), heartbeats,
//!   `connection.blocked`, channel 0 and routing frames to channels.
//! - `channel` / `methods`: one task and one core [`crate::core::Session`] per channel:
//!   exchanges, queues, consumers, publishes with confirms, returns and transactions.
//! - `mapping`: basic properties and field tables <-> canonical properties and values.
//! - `error`: core and codec errors as reply codes (channel or connection close).
//!
//! The gateway keeps no queues, routing or messages: only protocol state (delivery tags,
//! pending confirms, a transaction's buffered publishes and acks).

mod channel;
mod connection;
pub mod error;
pub mod mapping;
mod methods;

use std::time::Duration;

pub use connection::serve;

/// Connection settings (`[amqp]` in the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest frame the server proposes and accepts (connection.tune frame-max).
    pub frame_max: u32,
    /// Highest channel number the server proposes.
    pub channel_max: u16,
    /// Heartbeat interval the server proposes, in seconds (0 = none).
    pub heartbeat_s: u16,
    /// Time allowed from accept to connection.open-ok.
    pub handshake_timeout: Duration,
    /// Largest message body accepted (the store's largest record): a larger one is refused
    /// from its content header, before its body is buffered (406 channel error).
    pub max_message_size: u64,
    /// The user name from the client's verified TLS certificate, set per connection by a TLS
    /// listener with `[tls] cert_login` (None otherwise).
    pub cert_user: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat_s: 60,
            handshake_timeout: Duration::from_secs(10),
            max_message_size: 17 << 20,
            cert_user: None,
        }
    }
}
