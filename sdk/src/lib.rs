//! The Rust client of Junction's native protocol: a pipelined, auto-reconnecting [`Client`]
//! with a [`Producer`], [`Consumer`] streams and [`Admin`] operations.
//!
//! One [`Client`] is one TCP connection, shared by everything created from it (clone it
//! freely). A background task owns the socket: requests are pipelined (many in flight, matched
//! to their answers by request id), frames queued together go out in one write, heartbeats
//! keep an idle connection alive and detect a dead one, and a dropped connection is replaced
//! with exponential back-off while consumers are re-subscribed. See [`Client`] for the
//! details and [`SdkError`] for what can fail.
//!
//! # Producer
//!
//! ```no_run
//! use junction_sdk::{Client, ClientOptions, Destination, Message};
//!
//! # async fn demo() -> junction_sdk::Result<()> {
//! let client = Client::connect(ClientOptions::new("127.0.0.1:5680")).await?;
//! let producer = client.producer();
//! let orders = Destination::queue("orders");
//!
//! // Wait for the broker to store the message.
//! let receipt = producer
//!     .send(&orders, Message::new("order #1").sharding_key("customer-7"))
//!     .await?;
//! println!("stored at partition {:?}, offset {:?}", receipt.partition(), receipt.offset());
//!
//! // Keep many messages in flight; the confirms resolve in order.
//! let mut confirms = Vec::new();
//! for i in 0..1000 {
//!     let msg = Message::new(format!("order #{i}")).sharding_key("customer-7");
//!     confirms.push(producer.send_pipelined(&orders, msg).await?);
//! }
//! for confirm in confirms {
//!     confirm.await?;
//! }
//!
//! // Many messages in one frame.
//! let receipts = producer
//!     .send_batch(&orders, vec![Message::new("a"), Message::new("b")])
//!     .await?;
//! assert_eq!(receipts.len(), 2);
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! # Consumer
//!
//! ```no_run
//! use junction_sdk::{Client, ClientOptions, ConsumerOptions, StartPosition};
//!
//! # async fn demo() -> junction_sdk::Result<()> {
//! let client = Client::connect(ClientOptions::default()).await?;
//! let mut consumer = client
//!     .subscribe(
//!         ConsumerOptions::new("orders")
//!             .group("billing")
//!             .prefetch(200)
//!             .start(StartPosition::Earliest)
//!             .exclusive_partitions(true),
//!     )
//!     .await?;
//! println!("assigned partitions {:?}", consumer.partitions());
//! while let Some(delivery) = consumer.next().await {
//!     let delivery = delivery?; // e.g. SdkError::Cancelled when the queue is deleted
//!     println!("{}#{}: {:?}", delivery.partition, delivery.offset, delivery.body);
//!     delivery.ack().await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Clusters
//!
//! With name servers ([`ClientOptions::name_servers`]), a [`Cluster`] learns which broker
//! groups hold a topic: its [`ClusterProducer`] sends round robin over their masters, its
//! [`ClusterConsumer`] joins the consumer group on each of them. A [`Client`] bound to one
//! group ([`ClientOptions::broker`]) reconnects to whichever broker is the group's master,
//! so it follows a failover.
//!
//! # Admin
//!
//! ```no_run
//! use std::time::Duration;
//! use junction_sdk::{Client, ClientOptions, ExchangeKind, ExchangeOptions, QueueOptions};
//!
//! # async fn demo() -> junction_sdk::Result<()> {
//! let client = Client::connect(ClientOptions::default()).await?;
//! let admin = client.admin();
//! admin
//!     .declare_exchange("events", ExchangeKind::Topic, ExchangeOptions::durable())
//!     .await?;
//! let queue = admin
//!     .declare_queue(
//!         QueueOptions::new("audit")
//!             .message_ttl(Duration::from_secs(24 * 3600))
//!             .max_length(1_000_000)
//!             .dead_letter("dlx", ""),
//!     )
//!     .await?;
//! admin.bind(&queue.name, "events", "user.#").await?;
//! admin.create_topic("clicks", 16).await?;
//! let pulled = client.pull("clicks", 0, 0, 100).await?;
//! println!("{} messages, next offset {}", pulled.messages.len(), pulled.next_offset);
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod admin;
mod client;
mod cluster;
mod connection;
mod consumer;
mod dedup;
mod error;
mod message;
mod options;
mod producer;
mod registry;
mod route;
mod session;
mod transaction;

pub use admin::{Admin, ExchangeOptions, QueueInfo, QueueOptions};
pub use client::{Client, ServerInfo};
pub use cluster::{Cluster, ClusterConsumer, ClusterDelivery, ClusterProducer, ClusterReceipt};
pub use consumer::{Consumer, Delivery};
pub use dedup::Deduplicator;
pub use error::{Result, SdkError};
pub use message::{Destination, Message, SendReceipt};
pub use options::{ClientOptions, ConsumerOptions, ReconnectOptions};
pub use producer::{Confirm, IdempotentProducer, Producer};
pub use route::{GroupRoute, NameServers, RouteBroker, TopicRoute};
pub use transaction::{HalfMessage, Transaction, TransactionChecker, TransactionProducer};

/// The protocol codec this SDK speaks, for its message types.
pub use junction_native as protocol;
pub use junction_native::{
    ErrorCode, ExchangeKind, FoundMessage, LookupBy, Properties, Pulled, PulledMessage,
    RetryPolicy, Route, StartPosition, TransactionState, DEFAULT_PORT,
};
