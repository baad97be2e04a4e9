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

/// Fields appended to `Properties` since the first record format.
const TRAILING_FIELDS: usize = 3;

/// What the core keeps in the record's properties blob: routing facts plus the properties.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredMeta {
    pub(crate) exchange: String,
    pub(crate) routing_key: String,
    pub(crate) properties: Properties,
}

impl StoredMeta {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub(crate) fn decode(b: &[u8]) -> Option<StoredMeta> {
        postcard::from_bytes(b).ok().or_else(|| {
            // Records written before the last fields of `Properties` existed (`amqp_header`,
            // `retain`, `origin`) end early: read them with those fields absent. Every one of
            // them is an `Option` or a `bool`, whose absent value postcard writes as one zero
            // byte.
            let mut old = b.to_vec();
            (0..TRAILING_FIELDS).find_map(|_| {
                old.push(0);
                postcard::from_bytes(&old).ok()
            })
        })
    }
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
        };
        let mut b = meta.encode();
        // Records of every earlier format: without `origin`, then `retain`, then `amqp_header`.
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
    }
}
