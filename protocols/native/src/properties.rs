//! [`Properties`]: the canonical message properties every protocol is mapped onto.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{Map, Reader, Wire, Writer};

/// The canonical message properties the broker core maps every protocol onto.
///
/// # Encoding
///
/// A `u16` presence bitmap, then the fields whose bit is set, in bit order:
///
/// | bit | field              | encoding                       |
/// |-----|--------------------|--------------------------------|
/// | 0   | `message_id`       | `str`                          |
/// | 1   | `correlation_id`   | `bytes`                        |
/// | 2   | `reply_to`         | `str`                          |
/// | 3   | `content_type`     | `str`                          |
/// | 4   | `content_encoding` | `str`                          |
/// | 5   | `timestamp_ms`     | `i64`                          |
/// | 6   | `ttl_ms`           | `u64`                          |
/// | 7   | `priority`         | `u8`                           |
/// | 8   | `persistent`       | none: the bit is the value     |
/// | 9   | `user_id`          | `str`                          |
/// | 10  | `keys`             | `list<str>`, set when non-empty |
/// | 11  | `tag`              | `str`                          |
/// | 12  | `sharding_key`     | `str`                          |
/// | 13  | `deliver_at_ms`    | `i64`                          |
/// | 14  | `headers`          | `map`, set when non-empty      |
/// | 15  | reserved, must be 0 | a decode error otherwise      |
///
/// Empty properties therefore take two bytes (`00 00`). A decoder accepts a set `keys` or
/// `headers` bit with an empty list or map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// Application-assigned message id.
    pub message_id: Option<String>,
    /// Correlation id for request/reply (binary in MQTT 5, a string in AMQP).
    pub correlation_id: Option<Bytes>,
    /// Where replies go: an exchange/routing key or queue name.
    pub reply_to: Option<String>,
    /// MIME type of the body.
    pub content_type: Option<String>,
    /// Encoding of the body, e.g. `gzip`.
    pub content_encoding: Option<String>,
    /// Producer's timestamp, milliseconds since the Unix epoch.
    pub timestamp_ms: Option<i64>,
    /// Time to live in milliseconds, counted from the store time.
    pub ttl_ms: Option<u64>,
    /// Priority (AMQP's 0-9; higher is more urgent).
    pub priority: Option<u8>,
    /// Whether the message must survive a broker restart (AMQP delivery-mode 2).
    pub persistent: bool,
    /// The authenticated user that published it (checked by the broker).
    pub user_id: Option<String>,
    /// Message keys, indexed by the store for lookup.
    pub keys: Vec<String>,
    /// A tag consumers may filter on (RocketMQ-style).
    pub tag: Option<String>,
    /// Picks the partition: messages with the same sharding key keep their order.
    pub sharding_key: Option<String>,
    /// Delay delivery until this time, milliseconds since the Unix epoch.
    pub deliver_at_ms: Option<i64>,
    /// Application headers, order kept, duplicates allowed.
    pub headers: Map,
}

impl Properties {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

const MESSAGE_ID: u16 = 1 << 0;
const CORRELATION_ID: u16 = 1 << 1;
const REPLY_TO: u16 = 1 << 2;
const CONTENT_TYPE: u16 = 1 << 3;
const CONTENT_ENCODING: u16 = 1 << 4;
const TIMESTAMP: u16 = 1 << 5;
const TTL: u16 = 1 << 6;
const PRIORITY: u16 = 1 << 7;
const PERSISTENT: u16 = 1 << 8;
const USER_ID: u16 = 1 << 9;
const KEYS: u16 = 1 << 10;
const TAG: u16 = 1 << 11;
const SHARDING_KEY: u16 = 1 << 12;
const DELIVER_AT: u16 = 1 << 13;
const HEADERS: u16 = 1 << 14;
const RESERVED: u16 = 1 << 15;

fn bit(present: bool, bit: u16) -> u16 {
    if present {
        bit
    } else {
        0
    }
}

impl Wire for Properties {
    const MIN_LEN: usize = 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let bits = bit(self.message_id.is_some(), MESSAGE_ID)
            | bit(self.correlation_id.is_some(), CORRELATION_ID)
            | bit(self.reply_to.is_some(), REPLY_TO)
            | bit(self.content_type.is_some(), CONTENT_TYPE)
            | bit(self.content_encoding.is_some(), CONTENT_ENCODING)
            | bit(self.timestamp_ms.is_some(), TIMESTAMP)
            | bit(self.ttl_ms.is_some(), TTL)
            | bit(self.priority.is_some(), PRIORITY)
            | bit(self.persistent, PERSISTENT)
            | bit(self.user_id.is_some(), USER_ID)
            | bit(!self.keys.is_empty(), KEYS)
            | bit(self.tag.is_some(), TAG)
            | bit(self.sharding_key.is_some(), SHARDING_KEY)
            | bit(self.deliver_at_ms.is_some(), DELIVER_AT)
            | bit(!self.headers.is_empty(), HEADERS);
        w.u16(bits);
        if let Some(v) = &self.message_id {
            w.str("Properties.message_id", v)?;
        }
        if let Some(v) = &self.correlation_id {
            w.bytes("Properties.correlation_id", v)?;
        }
        if let Some(v) = &self.reply_to {
            w.str("Properties.reply_to", v)?;
        }
        if let Some(v) = &self.content_type {
            w.str("Properties.content_type", v)?;
        }
        if let Some(v) = &self.content_encoding {
            w.str("Properties.content_encoding", v)?;
        }
        if let Some(v) = self.timestamp_ms {
            w.i64(v);
        }
        if let Some(v) = self.ttl_ms {
            w.u64(v);
        }
        if let Some(v) = self.priority {
            w.u8(v);
        }
        if let Some(v) = &self.user_id {
            w.str("Properties.user_id", v)?;
        }
        if !self.keys.is_empty() {
            w.list("Properties.keys", &self.keys, |w, k| {
                w.str("Properties.keys", k)
            })?;
        }
        if let Some(v) = &self.tag {
            w.str("Properties.tag", v)?;
        }
        if let Some(v) = &self.sharding_key {
            w.str("Properties.sharding_key", v)?;
        }
        if let Some(v) = self.deliver_at_ms {
            w.i64(v);
        }
        if !self.headers.is_empty() {
            w.map("Properties.headers", &self.headers)?;
        }
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let bits = r.u16("Properties.bitmap")?;
        if bits & RESERVED != 0 {
            return Err(DecodeError::ReservedPropertyBits {
                bits: bits & RESERVED,
            });
        }
        let has = |b: u16| bits & b != 0;
        let mut p = Properties::default();
        if has(MESSAGE_ID) {
            p.message_id = Some(r.str("Properties.message_id")?);
        }
        if has(CORRELATION_ID) {
            p.correlation_id = Some(r.bytes("Properties.correlation_id")?);
        }
        if has(REPLY_TO) {
            p.reply_to = Some(r.str("Properties.reply_to")?);
        }
        if has(CONTENT_TYPE) {
            p.content_type = Some(r.str("Properties.content_type")?);
        }
        if has(CONTENT_ENCODING) {
            p.content_encoding = Some(r.str("Properties.content_encoding")?);
        }
        if has(TIMESTAMP) {
            p.timestamp_ms = Some(r.i64("Properties.timestamp_ms")?);
        }
        if has(TTL) {
            p.ttl_ms = Some(r.u64("Properties.ttl_ms")?);
        }
        if has(PRIORITY) {
            p.priority = Some(r.u8("Properties.priority")?);
        }
        p.persistent = has(PERSISTENT);
        if has(USER_ID) {
            p.user_id = Some(r.str("Properties.user_id")?);
        }
        if has(KEYS) {
            p.keys = r.list("Properties.keys", 2, |r| r.str("Properties.keys"))?;
        }
        if has(TAG) {
            p.tag = Some(r.str("Properties.tag")?);
        }
        if has(SHARDING_KEY) {
            p.sharding_key = Some(r.str("Properties.sharding_key")?);
        }
        if has(DELIVER_AT) {
            p.deliver_at_ms = Some(r.i64("Properties.deliver_at_ms")?);
        }
        if has(HEADERS) {
            p.headers = r.map("Properties.headers")?;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn encode(p: &Properties) -> BytesMut {
        let mut out = BytesMut::new();
        p.put(&mut Writer::new(&mut out)).unwrap();
        out
    }

    #[test]
    fn empty_is_two_zero_bytes() {
        assert_eq!(&encode(&Properties::default())[..], &[0, 0]);
    }

    #[test]
    fn persistent_is_only_a_bit() {
        let p = Properties {
            persistent: true,
            ..Default::default()
        };
        assert_eq!(&encode(&p)[..], &[0x00, 0x01]);
    }

    #[test]
    fn set_bit_with_empty_list_decodes_as_empty() {
        let mut r = Reader::new(Bytes::from_static(&[0x00, 0x44, 0, 0, 0, 0, 0, 0]));
        assert_eq!(Properties::get(&mut r).unwrap(), Properties::default());
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn header_lookup_takes_the_first() {
        let p = Properties {
            headers: vec![
                ("a".into(), Bytes::from_static(b"1")),
                ("a".into(), Bytes::from_static(b"2")),
            ],
            ..Default::default()
        };
        assert_eq!(p.header("a").map(|v| &v[..]), Some(&b"1"[..]));
        assert_eq!(p.header("b"), None);
    }
}
