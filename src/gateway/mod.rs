//! One module per protocol: each maps a protocol session onto a [`crate::core::Session`] and
//! keeps no queues, routing or messages of its own.

pub mod amqp;
pub mod handshakes;
pub mod metered;
pub mod mqtt;
pub mod native;
pub mod readbuf;
pub mod stomp;
pub mod ws;
