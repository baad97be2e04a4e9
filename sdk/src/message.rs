//! [`Message`] (what a producer sends), [`Destination`] (where to) and [`SendReceipt`] (where it
//! was stored).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use junction_native::{Properties, Route};

/// A message to publish: a body and its [`Properties`], built with chained setters.
///
/// ```
/// use std::time::Duration;
/// use junction_sdk::Message;
///
/// let msg = Message::new("order #42")
///     .key("order-42")
///     .tag("created")
///     .sharding_key("customer-7")
///     .header("source", "web")
///     .ttl(Duration::from_secs(60))
///     .content_type("text/plain")
///     .persistent(true);
/// assert_eq!(msg.properties.sharding_key.as_deref(), Some("customer-7"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The body.
    pub body: Bytes,
    /// The properties, as sent on the wire.
    pub properties: Properties,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn epoch_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Message {
    /// A message with this body and no properties (not persistent).
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            body: body.into(),
            properties: Properties::default(),
        }
    }

    /// A message with this body and these properties.
    pub fn with_properties(body: impl Into<Bytes>, properties: Properties) -> Self {
        Message {
            body: body.into(),
            properties,
        }
    }

    /// Adds a message key (indexed by the store for lookup); may be called several times.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.properties.keys.push(key.into());
        self
    }

    /// Sets the tag consumers may filter on.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.properties.tag = Some(tag.into());
        self
    }

    /// Sets the sharding key: messages with the same key go to the same partition and keep
    /// their order (ordered send).
    pub fn sharding_key(mut self, key: impl Into<String>) -> Self {
        self.properties.sharding_key = Some(key.into());
        self
    }

    /// Adds an application header (order kept, duplicates allowed).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.properties.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the time to live, counted from when the broker stores the message.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.properties.ttl_ms = Some(millis(ttl));
        self
    }

    /// Sets the application message id.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.properties.message_id = Some(id.into());
        self
    }

    /// Sets the correlation id (request/reply).
    pub fn correlation_id(mut self, id: impl Into<Bytes>) -> Self {
        self.properties.correlation_id = Some(id.into());
        self
    }

    /// Sets where replies should go.
    pub fn reply_to(mut self, reply_to: impl Into<String>) -> Self {
        self.properties.reply_to = Some(reply_to.into());
        self
    }

    /// Sets the MIME type of the body.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.properties.content_type = Some(content_type.into());
        self
    }

    /// Sets the encoding of the body, e.g. `gzip`.
    pub fn content_encoding(mut self, encoding: impl Into<String>) -> Self {
        self.properties.content_encoding = Some(encoding.into());
        self
    }

    /// Sets whether the message must survive a broker restart.
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.properties.persistent = persistent;
        self
    }

    /// Sets the priority (0-9, higher is more urgent).
    pub fn priority(mut self, priority: u8) -> Self {
        self.properties.priority = Some(priority);
        self
    }

    /// Sets the producer's timestamp.
    pub fn timestamp(mut self, at: SystemTime) -> Self {
        self.properties.timestamp_ms = Some(epoch_millis(at));
        self
    }

    /// Delays delivery until this time.
    pub fn deliver_at(mut self, at: SystemTime) -> Self {
        self.properties.deliver_at_ms = Some(epoch_millis(at));
        self
    }

    /// Delays delivery by this long from now.
    pub fn deliver_after(self, delay: Duration) -> Self {
        self.deliver_at(SystemTime::now() + delay)
    }

    /// The body and properties.
    pub fn into_parts(self) -> (Bytes, Properties) {
        (self.body, self.properties)
    }
}

impl From<Message> for Properties {
    fn from(m: Message) -> Properties {
        m.properties
    }
}

impl From<Bytes> for Message {
    fn from(body: Bytes) -> Message {
        Message::new(body)
    }
}

impl From<&'static str> for Message {
    fn from(body: &'static str) -> Message {
        Message::new(body)
    }
}

impl From<Vec<u8>> for Message {
    fn from(body: Vec<u8>) -> Message {
        Message::new(body)
    }
}

impl From<String> for Message {
    fn from(body: String) -> Message {
        Message::new(body)
    }
}

/// Where a message is published: an exchange and a routing key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The exchange; empty = the default exchange, which routes to the queue named by the
    /// routing key.
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
}

impl Destination {
    /// A queue (or topic) by name, through the default exchange.
    pub fn queue(name: impl Into<String>) -> Self {
        Destination {
            exchange: String::new(),
            routing_key: name.into(),
        }
    }

    /// An exchange with a routing key.
    pub fn exchange(name: impl Into<String>, routing_key: impl Into<String>) -> Self {
        Destination {
            exchange: name.into(),
            routing_key: routing_key.into(),
        }
    }
}

impl From<&str> for Destination {
    /// A queue by name.
    fn from(queue: &str) -> Self {
        Destination::queue(queue)
    }
}

/// Where a confirmed message was stored: every (queue, partition, offset) it landed in. Empty
/// when the message matched no queue (and was not `mandatory`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReceipt {
    /// One entry per queue partition that stored the message.
    pub routes: Vec<Route>,
    /// An idempotent producer's send the broker had already stored: nothing was stored this
    /// time, and `routes` are the original's.
    pub duplicate: bool,
}

impl SendReceipt {
    /// Whether the message was stored anywhere.
    pub fn is_routed(&self) -> bool {
        !self.routes.is_empty()
    }

    /// The first route, which for a publish to one queue is the only one.
    pub fn first(&self) -> Option<&Route> {
        self.routes.first()
    }

    /// The partition of the first route.
    pub fn partition(&self) -> Option<u16> {
        self.first().map(|r| r.partition)
    }

    /// The offset of the first route.
    pub fn offset(&self) -> Option<u64> {
        self.first().map(|r| r.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_fills_properties() {
        let m = Message::new("b")
            .key("k1")
            .key("k2")
            .tag("t")
            .sharding_key("s")
            .header("h", "v")
            .ttl(Duration::from_millis(1500))
            .message_id("id")
            .correlation_id("c")
            .reply_to("r")
            .content_type("text/plain")
            .content_encoding("gzip")
            .priority(5)
            .timestamp(UNIX_EPOCH + Duration::from_millis(7))
            .deliver_at(UNIX_EPOCH + Duration::from_millis(9))
            .persistent(true);
        let (body, p) = m.into_parts();
        assert_eq!(&body[..], b"b");
        assert_eq!(p.keys, vec!["k1".to_string(), "k2".to_string()]);
        assert_eq!(p.tag.as_deref(), Some("t"));
        assert_eq!(p.sharding_key.as_deref(), Some("s"));
        assert_eq!(p.header("h").map(|v| &v[..]), Some(&b"v"[..]));
        assert_eq!(p.ttl_ms, Some(1500));
        assert_eq!(p.message_id.as_deref(), Some("id"));
        assert_eq!(p.correlation_id.as_deref(), Some(&b"c"[..]));
        assert_eq!(p.reply_to.as_deref(), Some("r"));
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(p.priority, Some(5));
        assert_eq!(p.timestamp_ms, Some(7));
        assert_eq!(p.deliver_at_ms, Some(9));
        assert!(p.persistent);
        assert_eq!(
            Message::new("x").properties,
            Properties::default(),
            "a bare message has no properties"
        );
    }

    #[test]
    fn destinations() {
        let q = Destination::queue("orders");
        assert_eq!(
            (q.exchange.as_str(), q.routing_key.as_str()),
            ("", "orders")
        );
        let e = Destination::exchange("events", "a.b");
        assert_eq!(
            (e.exchange.as_str(), e.routing_key.as_str()),
            ("events", "a.b")
        );
        assert_eq!(Destination::from("orders"), q);
    }
}
