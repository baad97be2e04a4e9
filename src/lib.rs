//! Junction: one message broker for AMQP 0-9-1, MQTT, STOMP and a native protocol, over one
//! topic/queue core and one CommitLog store.
//!
//! - [`core`]: the topic/queue core (vhosts, exchanges, queues, consumer groups, sessions). It
//!   knows no protocol and no socket.
//! - The store is the `junction-store` crate.

pub mod core;
