//! Messages and their canonical properties: the fields every protocol maps onto
//! (`../shared/DESIGN.md` §5), and their encoding inside a CommitLog record.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A header value. Rich enough to carry AMQP field-table values, MQTT user properties and STOMP
/// headers across protocols.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// No value.
    Null,
    /// Boolean.
    Bool(bool),
    /// Signed integer.
    I64(i64),
    /// Unsigned integer that does not fit `i64`.
    U64(u64),
    /// Floating point.
    F64(f64),
    /// UTF-8 text.
    Str(String),
    /// Raw bytes.
    Bytes(Bytes),
    /// Timestamp, seconds since the epoch (AMQP `T`).
    Timestamp(u64),
    /// A list.
    List(Vec<Value>),
    /// A nested table.
    Table(Vec<(String, Value)>),
}

impl Value {
    /// The value as text, if it is text or a number.
    pub fn as_str_lossy(&self) -> Option<String> {
        match self {
            Value::Str(s) => Some(s.clone()),
            Value::I64(n) => Some(n.to_string()),
            Value::U64(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Bytes(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            _ => None,
        }
    }
}

/// The canonical message properties.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Properties {
    /// Message id (indexed for look-up).
    pub message_id: Option<String>,
    /// Correlation id / MQTT correlation data.
    pub correlation_id: Option<Bytes>,
    /// Where replies go.
    pub reply_to: Option<String>,
    /// MIME content type.
    pub content_type: Option<String>,
    /// Content encoding.
    pub content_encoding: Option<String>,
    /// Producer timestamp, ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// Time to live, ms from when the broker stored it.
    pub ttl_ms: Option<u64>,
    /// Priority 0-9.
    pub priority: Option<u8>,
    /// Persistent (AMQP delivery-mode 2, MQTT QoS >= 1, STOMP persistent:true).
    pub persistent: bool,
    /// Authenticated user id claimed by the producer.
    pub user_id: Option<String>,
    /// Business keys (indexed for look-up).
    pub keys: Vec<String>,
    /// Tag (RocketMQ tag; hashed into the consume queue).
    pub tag: Option<String>,
    /// Messages with the same sharding key go to the same partition, in order.
    pub sharding_key: Option<String>,
    /// Everything else, in order.
    pub headers: Vec<(String, Value)>,
    /// The AMQP 0-9-1 content header exactly as an AMQP publisher sent it (class id to the last
    /// property), re-sent unchanged to AMQP consumers. `None` for messages from other protocols.
    #[serde(default)]
    pub amqp_header: Option<Bytes>,
    /// Published with the retain flag (MQTT RETAIN; the header `x-retain: true` from AMQP,
    /// STOMP and native publishers): the message is also kept as the retained message of its
    /// exchange and routing key.
    #[serde(default)]
    pub retain: bool,
    /// The client id of the publishing connection, for MQTT's No Local subscription option.
    /// `None` when the publisher's protocol has no client ids.
    #[serde(default)]
    pub origin: Option<String>,
}

/// The header by which publishers of protocols without a retain flag ask for one.
pub const RETAIN_HEADER: &str = "x-retain";

impl Properties {
    /// Whether `headers` carry `x-retain: true` (as a boolean or as text).
    pub fn retain_requested(headers: &[(String, Value)]) -> bool {
        headers.iter().any(|(k, v)| {
            k == RETAIN_HEADER
                && match v {
                    Value::Bool(b) => *b,
                    Value::Str(s) => s.eq_ignore_ascii_case("true"),
                    Value::Bytes(b) => b.eq_ignore_ascii_case(b"true"),
                    _ => false,
                }
        })
    }

    /// First header named `name`.
    pub fn header(&self, name: &str) -> Option<&Value> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

/// A message: properties and a body that is never copied on the fan-out path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// Properties.
    pub properties: Properties,
    /// Body.
    pub body: Bytes,
}

impl Message {
    /// A message with default properties.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Message {
            properties: Properties::default(),
            body: body.into(),
        }
    }
}

/// Optional fields appended to the record format since the first one (three at the end of
/// `Properties`, then `StoredMeta::ext`).
const TRAILING_FIELDS: usize = 4;

/// What the core keeps in the record's properties blob: routing facts plus the properties.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredMeta {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) properties: Properties,
    /// Facts about the record that are not message properties (`None` for a plain message).
    #[serde(default)]
    pub(crate) ext: Option<MetaExt>,
}

/// What the core records beside a message's properties: where a message parked in a system
/// queue (scheduled, or a transaction's half message) is going, how a transaction ended, and
/// which idempotent producer sent it. Every field is new with this struct; later fields must be
/// appended as `Option`s, like `Properties`'s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetaExt {
    /// The vhost a parked message belongs to (system queues hold every vhost's messages).
    pub(crate) vhost: Option<String>,
    /// A scheduled message is due at this time, ms since the epoch.
    pub(crate) deliver_at_ms: Option<i64>,
    /// A half message: the producer group asked about its outcome.
    pub(crate) txn_group: Option<String>,
    /// A transaction outcome: the half message (its offset in the half queue) this record
    /// resolves, and whether it was committed (this record is then the message itself).
    pub(crate) txn_end: Option<(u64, bool)>,
    /// An idempotent producer's id and sequence number.
    pub(crate) producer: Option<(String, u64)>,
}

impl StoredMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(b: &[u8]) -> Option<StoredMeta> {
        postcard::from_bytes(b).ok().or_else(|| {
            // Records written before the last fields existed (`Properties`'s `amqp_header`,
            // `retain`, `origin`, then `ext`) end early: read them with those fields absent.
            // Every one of them is an `Option` or a `bool`, whose absent value postcard writes
            // as one zero byte.
            let mut old = b.to_vec();
            (0..TRAILING_FIELDS).find_map(|_| {
                old.push(0);
                postcard::from_bytes(&old).ok()
            })
        })
    }
}

/// The header by which publishers of protocols without a tag field (AMQP, MQTT 5, STOMP) tag a
/// message.
pub const TAG_HEADER: &str = "x-tag";

/// RabbitMQ streams' header for a message's filter value, read as its tag too.
pub const STREAM_FILTER_HEADER: &str = "x-stream-filter-value";

/// A message's tag: its `tag` property, else a text [`TAG_HEADER`] (or
/// [`STREAM_FILTER_HEADER`]) header.
pub fn tag_of(p: &Properties) -> Option<&str> {
    p.tag.as_deref().or_else(|| {
        p.headers
            .iter()
            .find(|(k, _)| k == TAG_HEADER || k == STREAM_FILTER_HEADER)
            .and_then(|(_, v)| match v {
                Value::Str(s) => Some(s.as_str()),
                Value::Bytes(b) => std::str::from_utf8(b).ok(),
                _ => None,
            })
    })
}

/// Hash of a tag, as kept in consume-queue entries (0 = no tag).
pub fn tag_hash(tag: Option<&str>) -> u64 {
    tag.map_or(0, |t| xxhash_rust::xxh3::xxh3_64(t.as_bytes()).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_the_later_fields_still_decode() {
        let meta = StoredMeta {
            exchange: "x".into(),
            routing_key: "k".into(),
            properties: Properties {
                content_type: Some("text/plain".into()),
                ..Properties::default()
            },
            ext: None,
        };
        let mut b = meta.encode();
        // Records of every earlier format: without `ext`, then `origin`, `retain`, `amqp_header`.
        for _ in 0..TRAILING_FIELDS {
            assert_eq!(
                b.pop(),
                Some(0),
                "an absent trailing field is one zero byte"
            );
            let back = StoredMeta::decode(&b).expect("decodes");
            assert_eq!(back.properties, meta.properties);
        }
        let retained = StoredMeta {
            properties: Properties {
                retain: true,
                origin: Some("sensor-1".into()),
                ..meta.properties.clone()
            },
            ..meta.clone()
        };
        let back = StoredMeta::decode(&retained.encode()).expect("decodes");
        assert_eq!(back.properties, retained.properties);
        let with = StoredMeta {
            properties: Properties {
                amqp_header: Some(Bytes::from_static(b"raw")),
                ..meta.properties.clone()
            },
            ..meta
        };
        let back = StoredMeta::decode(&with.encode()).expect("decodes");
        assert_eq!(back.properties.amqp_header.as_deref(), Some(&b"raw"[..]));
        let ext = MetaExt {
            vhost: Some("/".into()),
            deliver_at_ms: Some(7),
            producer: Some(("p".into(), 3)),
            ..MetaExt::default()
        };
        let parked = StoredMeta {
            ext: Some(ext.clone()),
            ..with
        };
        let back = StoredMeta::decode(&parked.encode()).expect("decodes");
        assert_eq!(back.ext, Some(ext));
    }
}
