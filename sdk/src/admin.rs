//! [`Admin`]: exchanges, queues, bindings and topics.

use std::time::Duration;

use bytes::Bytes;
use junction_native::{
    Binding, Body, DeclareExchange, DeclareQueue, DeleteExchange, DeleteQueue, ExchangeKind, Map,
    PurgeQueue,
};

use crate::client::Client;
use crate::error::{Result, SdkError};

/// Options of [`Admin::declare_exchange`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExchangeOptions {
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Only other exchanges may publish to it.
    pub internal: bool,
}

impl ExchangeOptions {
    /// A durable exchange (not auto-delete, not internal).
    pub fn durable() -> Self {
        ExchangeOptions {
            durable: true,
            ..Default::default()
        }
    }
}

/// What to declare with [`Admin::declare_queue`]: a builder over the queue's flags and its
/// `x-` arguments (sent as UTF-8 decimal text, as the broker expects).
///
/// ```
/// use std::time::Duration;
/// use junction_sdk::QueueOptions;
///
/// let q = QueueOptions::new("orders")
///     .partitions(8)
///     .message_ttl(Duration::from_secs(3600))
///     .max_length(1_000_000)
///     .overflow_reject()
///     .dead_letter("dlx", "orders.dead")
///     .delivery_limit(5);
/// assert!(q.durable);
/// assert_eq!(q.arg("x-message-ttl").map(|v| &v[..]), Some(&b"3600000"[..]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueOptions {
    /// Queue name; empty lets the server pick one (see [`QueueInfo::name`]).
    pub name: String,
    /// Number of partitions; 0 = the server's default. Ignored for an existing queue.
    pub partitions: u16,
    /// Survives a broker restart. Default true.
    pub durable: bool,
    /// Used only by this connection and deleted when it closes. Default false.
    pub exclusive: bool,
    /// Deleted when its last consumer goes. Default false.
    pub auto_delete: bool,
    /// Only check that the queue exists (fails with `NotFound` otherwise). Default false.
    pub passive: bool,
    /// Extra arguments, e.g. `x-message-ttl`; set by the helpers below, later values replace
    /// earlier ones of the same name.
    pub args: Vec<(String, Bytes)>,
}

impl QueueOptions {
    /// A durable queue named `name` with the server's default partition count.
    pub fn new(name: impl Into<String>) -> Self {
        QueueOptions {
            name: name.into(),
            partitions: 0,
            durable: true,
            exclusive: false,
            auto_delete: false,
            passive: false,
            args: Vec::new(),
        }
    }

    /// Sets the number of partitions.
    pub fn partitions(mut self, partitions: u16) -> Self {
        self.partitions = partitions;
        self
    }

    /// Sets durability.
    pub fn durable(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    /// Sets exclusivity to this connection.
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// Sets deletion when the last consumer goes.
    pub fn auto_delete(mut self, auto_delete: bool) -> Self {
        self.auto_delete = auto_delete;
        self
    }

    /// Only check that the queue exists.
    pub fn passive(mut self, passive: bool) -> Self {
        self.passive = passive;
        self
    }

    /// Sets an argument (replacing one of the same name).
    pub fn with_arg(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        let name = name.into();
        self.args.retain(|(k, _)| *k != name);
        self.args.push((name, value.into()));
        self
    }

    fn number(self, name: &str, n: u128) -> Self {
        self.with_arg(name, n.to_string())
    }

    /// The value of argument `name`.
    pub fn arg(&self, name: &str) -> Option<&Bytes> {
        self.args.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// `x-message-ttl`: messages expire this long after they were stored.
    pub fn message_ttl(self, ttl: Duration) -> Self {
        self.number("x-message-ttl", ttl.as_millis())
    }

    /// `x-max-length`: the most ready messages (the oldest are dropped, unless
    /// [`QueueOptions::overflow_reject`]).
    pub fn max_length(self, max: u64) -> Self {
        self.number("x-max-length", u128::from(max))
    }

    /// `x-overflow: reject-publish`: a full queue refuses new messages instead of dropping old
    /// ones.
    pub fn overflow_reject(self) -> Self {
        self.with_arg("x-overflow", "reject-publish")
    }

    /// `x-dead-letter-exchange` (and `x-dead-letter-routing-key` unless `routing_key` is
    /// empty, which keeps the message's own routing key): where expired, rejected or
    /// over-delivered messages go.
    pub fn dead_letter(self, exchange: impl Into<String>, routing_key: impl Into<String>) -> Self {
        let routing_key = routing_key.into();
        let q = self.with_arg("x-dead-letter-exchange", exchange.into());
        if routing_key.is_empty() {
            q
        } else {
            q.with_arg("x-dead-letter-routing-key", routing_key)
        }
    }

    /// `x-delivery-limit`: a message delivered more often is dead-lettered (or dropped).
    pub fn delivery_limit(self, limit: u32) -> Self {
        self.number("x-delivery-limit", u128::from(limit))
    }

    /// `x-expires`: the queue is deleted after being unused this long.
    pub fn expires(self, after: Duration) -> Self {
        self.number("x-expires", after.as_millis())
    }
}

/// The answer to a queue declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// The queue's name (the server's choice when the declaration's was empty).
    pub name: String,
    /// Its number of partitions.
    pub partitions: u16,
    /// Messages ready for delivery.
    pub messages: u64,
    /// Active consumers.
    pub consumers: u32,
}

/// Topology management through a [`Client`]: get one from [`Client::admin`].
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

fn expect_ok(body: Body) -> Result<()> {
    match body {
        Body::Ok => Ok(()),
        other => Err(SdkError::unexpected("Ok", &other)),
    }
}

fn expect_deleted(body: Body) -> Result<u64> {
    match body {
        Body::Deleted(d) => Ok(d.messages),
        other => Err(SdkError::unexpected("Deleted", &other)),
    }
}

impl Admin {
    pub(crate) fn new(client: Client) -> Admin {
        Admin { client }
    }

    /// Creates an exchange (or checks that an identical one exists).
    pub async fn declare_exchange(
        &self,
        name: &str,
        kind: ExchangeKind,
        options: ExchangeOptions,
    ) -> Result<()> {
        let declare = DeclareExchange {
            name: name.to_string(),
            kind,
            durable: options.durable,
            auto_delete: options.auto_delete,
            internal: options.internal,
            passive: false,
            args: Map::new(),
        };
        expect_ok(self.client.call(declare.into()).await?)
    }

    /// Deletes an exchange.
    pub async fn delete_exchange(&self, name: &str) -> Result<()> {
        self.delete_exchange_if(name, false).await
    }

    /// Deletes an exchange; with `if_unused`, fails with `PreconditionFailed` while it has
    /// bindings.
    pub async fn delete_exchange_if(&self, name: &str, if_unused: bool) -> Result<()> {
        let delete = DeleteExchange {
            name: name.to_string(),
            if_unused,
        };
        expect_ok(self.client.call(delete.into()).await?)
    }

    /// Creates a queue (or checks that a compatible one exists).
    pub async fn declare_queue(&self, options: QueueOptions) -> Result<QueueInfo> {
        let declare = DeclareQueue {
            name: options.name,
            partitions: options.partitions,
            durable: options.durable,
            exclusive: options.exclusive,
            auto_delete: options.auto_delete,
            passive: options.passive,
            args: options.args,
        };
        match self.client.call(declare.into()).await? {
            Body::QueueDeclared(q) => Ok(QueueInfo {
                name: q.name,
                partitions: q.partitions,
                messages: q.messages,
                consumers: q.consumers,
            }),
            other => Err(SdkError::unexpected("QueueDeclared", &other)),
        }
    }

    /// Creates a topic: a durable queue with `partitions` partitions. Publish to it with
    /// [`Destination::queue`](crate::Destination::queue); messages with the same sharding key
    /// stay in order in one partition.
    pub async fn create_topic(&self, name: &str, partitions: u16) -> Result<QueueInfo> {
        self.declare_queue(QueueOptions::new(name).partitions(partitions))
            .await
    }

    /// Deletes a queue; returns how many messages were dropped.
    pub async fn delete_queue(&self, name: &str) -> Result<u64> {
        self.delete_queue_if(name, false, false).await
    }

    /// Deletes a queue, failing with `PreconditionFailed` if `if_unused` and it has consumers
    /// or `if_empty` and it has messages; returns how many messages were dropped.
    pub async fn delete_queue_if(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> Result<u64> {
        let delete = DeleteQueue {
            name: name.to_string(),
            if_unused,
            if_empty,
        };
        expect_deleted(self.client.call(delete.into()).await?)
    }

    /// The retry and dead-letter queues of consumer `group` of `queue` (groups subscribed with
    /// a [`RetryPolicy`](crate::RetryPolicy)): `%RETRY%<queue>%<group>` and
    /// `%DLQ%<queue>%<group>`, or `%RETRY%<queue>` and `%DLQ%<queue>` for the default group.
    pub fn retry_queues(queue: &str, group: &str) -> (String, String) {
        let label = if group.is_empty() {
            queue.to_string()
        } else {
            format!("{queue}%{group}")
        };
        (format!("%RETRY%{label}"), format!("%DLQ%{label}"))
    }

    /// Moves up to `max` messages of a dead-letter queue back to the group that gave up on
    /// them (through its retry queue, with the retry count reset); returns how many moved.
    pub async fn redrive(&self, dead_letter_queue: &str, max: u64) -> Result<u64> {
        let redrive = junction_native::Redrive {
            queue: dead_letter_queue.to_string(),
            max,
        };
        expect_deleted(self.client.call(redrive.into()).await?)
    }

    /// Drops every ready message of a queue; returns how many.
    pub async fn purge_queue(&self, name: &str) -> Result<u64> {
        let purge = PurgeQueue {
            name: name.to_string(),
        };
        expect_deleted(self.client.call(purge.into()).await?)
    }

    async fn binding(&self, bind: bool, binding: Binding) -> Result<()> {
        let body = if bind {
            Body::Bind(binding)
        } else {
            Body::Unbind(binding)
        };
        expect_ok(self.client.call(body).await?)
    }

    /// Routes messages from `exchange` with a matching key to `queue`.
    pub async fn bind(&self, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        self.bind_with_args(queue, exchange, routing_key, Vec::new())
            .await
    }

    /// Like [`Admin::bind`], with binding arguments (matched against message headers by a
    /// headers exchange, e.g. `x-match`).
    pub async fn bind_with_args(
        &self,
        queue: &str,
        exchange: &str,
        routing_key: &str,
        args: Vec<(String, Bytes)>,
    ) -> Result<()> {
        self.binding(true, binding(queue, exchange, routing_key, args, false))
            .await
    }

    /// Removes a queue binding.
    pub async fn unbind(&self, queue: &str, exchange: &str, routing_key: &str) -> Result<()> {
        self.binding(
            false,
            binding(queue, exchange, routing_key, Vec::new(), false),
        )
        .await
    }

    /// Routes messages from exchange `source` with a matching key to exchange `destination`.
    pub async fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
    ) -> Result<()> {
        self.binding(
            true,
            binding(destination, source, routing_key, Vec::new(), true),
        )
        .await
    }

    /// Removes an exchange-to-exchange binding.
    pub async fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        routing_key: &str,
    ) -> Result<()> {
        self.binding(
            false,
            binding(destination, source, routing_key, Vec::new(), true),
        )
        .await
    }
}

fn binding(
    destination: &str,
    exchange: &str,
    routing_key: &str,
    args: Vec<(String, Bytes)>,
    destination_is_exchange: bool,
) -> Binding {
    Binding {
        destination: destination.to_string(),
        exchange: exchange.to_string(),
        routing_key: routing_key.to_string(),
        args,
        destination_is_exchange,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(q: &QueueOptions, name: &str) -> Option<String> {
        q.arg(name)
            .map(|v| String::from_utf8(v.to_vec()).unwrap_or_default())
    }

    #[test]
    fn queue_arguments_are_decimal_text() {
        let q = QueueOptions::new("q")
            .message_ttl(Duration::from_millis(1500))
            .max_length(10)
            .overflow_reject()
            .dead_letter("dlx", "dead")
            .delivery_limit(3)
            .expires(Duration::from_secs(60));
        assert_eq!(text(&q, "x-message-ttl").as_deref(), Some("1500"));
        assert_eq!(text(&q, "x-max-length").as_deref(), Some("10"));
        assert_eq!(text(&q, "x-overflow").as_deref(), Some("reject-publish"));
        assert_eq!(text(&q, "x-dead-letter-exchange").as_deref(), Some("dlx"));
        assert_eq!(
            text(&q, "x-dead-letter-routing-key").as_deref(),
            Some("dead")
        );
        assert_eq!(text(&q, "x-delivery-limit").as_deref(), Some("3"));
        assert_eq!(text(&q, "x-expires").as_deref(), Some("60000"));
        assert!(q.durable && !q.exclusive && !q.auto_delete && !q.passive);
    }

    #[test]
    fn later_arguments_replace_earlier_ones() {
        let q = QueueOptions::new("q").max_length(1).max_length(2);
        assert_eq!(q.args.len(), 1);
        assert_eq!(text(&q, "x-max-length").as_deref(), Some("2"));
        let d = QueueOptions::new("q").dead_letter("dlx", "");
        assert_eq!(d.arg("x-dead-letter-routing-key"), None);
    }
}
