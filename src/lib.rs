//! Junction: one message broker for AMQP 0-9-1, MQTT, STOMP and a native protocol, over one
//! topic/queue core and one CommitLog store.
//!
//! - [`core`]: the topic/queue core (vhosts, exchanges, queues, consumer groups, sessions). It
//!   knows no protocol and no socket.
//! - [`gateway`]: one module per protocol, mapping a connection onto a core session.
//! - [`server`]: listeners, connection limits, graceful shutdown.
//! - [`config`]: `conf/junction.toml` -> typed configuration.
//! - [`tls`]: TLS for every listener (rustls): handshake, client certificates, the stream type.
//! - [`admin`]: the HTTP admin API, Prometheus `/metrics` and the OpenAPI document.
//! - [`ctl`]: `junction ctl`, the admin API from the command line.
//! - [`cluster`]: broker groups, replication, name servers and controllers.
//! - The store is the `junction-store` crate.

pub mod admin;
pub mod cluster;
pub mod config;
pub mod core;
pub mod ctl;
pub mod gateway;
pub mod server;
pub mod tls;
