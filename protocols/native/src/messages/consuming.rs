//! Consuming messages: subscriptions and their deliveries, acks, pulls and offsets.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{Reader, Wire, Writer};
use crate::properties::Properties;

/// Where a new subscription starts reading. Encoded as a `u8` tag and its payload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StartPosition {
    /// Tag 0: where the group left off (its committed offsets); the broker's policy for a group
    /// that has none.
    #[default]
    Committed,
    /// Tag 1: the oldest retained message.
    Earliest,
    /// Tag 2: only messages stored from now on.
    Latest,
    /// Tag 3 + `u64`: this offset in every partition.
    Offset(u64),
    /// Tag 4 + `i64`: the first message stored at or after this time (ms since the epoch).
    Time(i64),
}

impl Wire for StartPosition {
    const MIN_LEN: usize = 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match *self {
            StartPosition::Committed => w.u8(0),
            StartPosition::Earliest => w.u8(1),
            StartPosition::Latest => w.u8(2),
            StartPosition::Offset(offset) => {
                w.u8(3);
                w.u64(offset);
            }
            StartPosition::Time(ms) => {
                w.u8(4);
                w.i64(ms);
            }
        }
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let field = "Subscribe.start";
        match r.u8(field)? {
            0 => Ok(StartPosition::Committed),
            1 => Ok(StartPosition::Earliest),
            2 => Ok(StartPosition::Latest),
            3 => Ok(StartPosition::Offset(r.u64(field)?)),
            4 => Ok(StartPosition::Time(r.i64(field)?)),
            tag => Err(DecodeError::InvalidEnumTag { field, tag }),
        }
    }
}

/// Client -> server: start consuming a queue as a member of a consumer group. Answered by
/// [`Subscribed`]; messages then arrive as [`Deliver`] pushes.
///
/// The fields after `exclusive_partitions` are an extension: they are sent (all of them, in
/// order) only when one of them differs from its default, and a payload that ends after
/// `exclusive_partitions` means defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscribe {
    /// Queue name.
    pub queue: String,
    /// Consumer group; empty = the queue's default group.
    pub group: String,
    /// Most unacknowledged deliveries in flight to this consumer; 0 = no limit.
    pub prefetch: u32,
    /// Deliveries count as acknowledged when sent.
    pub no_ack: bool,
    /// Where to start reading.
    pub start: StartPosition,
    /// Each partition goes to one consumer of the group at a time (ordered consumption, with
    /// [`Assignment`] pushes on rebalance) instead of all consumers sharing all partitions.
    pub exclusive_partitions: bool,
    /// Extension: only messages with one of these tags (`a || b`; empty or `*` = every
    /// message), filtered on the broker from the consume-queue entry.
    pub tags: String,
    /// Extension: an SQL92 selector over the message's headers (empty = none). At most one of
    /// `tags` and `sql` may be set.
    pub sql: String,
    /// Extension: ordered consumption: partitions assigned to members, and a partition's next
    /// message only after the previous one is settled.
    pub ordered: bool,
    /// Extension: broadcast: every member of the group gets every message, with offsets kept
    /// per member (by client id).
    pub broadcast: bool,
    /// Extension: retry with back-off and a dead-letter queue for this group.
    pub retry: Option<RetryPolicy>,
}

/// How a consumer group retries a message it failed to process: a `Nack` with requeue (or no
/// settle within `consume_timeout_ms`) schedules a redelivery after the next back-off step;
/// after `max_attempts` deliveries the message goes to the group's dead-letter queue.
///
/// Encoded as `max_attempts: u32`, `backoff_ms: list<u64>`, `consume_timeout_ms: u64`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before the message is dead-lettered (at least 1).
    pub max_attempts: u32,
    /// Wait before each redelivery: the n-th retry waits `backoff_ms[n - 1]` (the last value
    /// repeats). Empty = the broker's default.
    pub backoff_ms: Vec<u64>,
    /// A delivery not settled within this long counts as failed; 0 = never.
    pub consume_timeout_ms: u64,
}

impl Wire for RetryPolicy {
    const MIN_LEN: usize = 4 + 4 + 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.max_attempts);
        w.list("RetryPolicy.backoff_ms", &self.backoff_ms, |w, v| {
            w.u64(*v);
            Ok(())
        })?;
        w.u64(self.consume_timeout_ms);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(RetryPolicy {
            max_attempts: r.u32("RetryPolicy.max_attempts")?,
            backoff_ms: r.list("RetryPolicy.backoff_ms", 8, |r| {
                r.u64("RetryPolicy.backoff_ms")
            })?,
            consume_timeout_ms: r.u64("RetryPolicy.consume_timeout_ms")?,
        })
    }
}

impl Subscribe {
    fn has_extension(&self) -> bool {
        !self.tags.is_empty()
            || !self.sql.is_empty()
            || self.ordered
            || self.broadcast
            || self.retry.is_some()
    }
}

impl Wire for Subscribe {
    const MIN_LEN: usize = 2 + 2 + 4 + 1 + 1 + 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Subscribe.queue", &self.queue)?;
        w.str("Subscribe.group", &self.group)?;
        w.u32(self.prefetch);
        w.bool(self.no_ack);
        self.start.put(w)?;
        w.bool(self.exclusive_partitions);
        if self.has_extension() {
            w.str("Subscribe.tags", &self.tags)?;
            w.str("Subscribe.sql", &self.sql)?;
            w.bool(self.ordered);
            w.bool(self.broadcast);
            w.opt(self.retry.as_ref(), |w, r| r.put(w))?;
        }
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut s = Subscribe {
            queue: r.str("Subscribe.queue")?,
            group: r.str("Subscribe.group")?,
            prefetch: r.u32("Subscribe.prefetch")?,
            no_ack: r.bool("Subscribe.no_ack")?,
            start: StartPosition::get(r)?,
            exclusive_partitions: r.bool("Subscribe.exclusive_partitions")?,
            ..Subscribe::default()
        };
        if r.remaining() > 0 {
            s.tags = r.str("Subscribe.tags")?;
            s.sql = r.str("Subscribe.sql")?;
            s.ordered = r.bool("Subscribe.ordered")?;
            s.broadcast = r.bool("Subscribe.broadcast")?;
            s.retry = r.opt("Subscribe.retry", RetryPolicy::get)?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod extension_tests {
    use super::*;
    use bytes::BytesMut;

    fn round_trip(s: &Subscribe) -> (usize, Subscribe) {
        let mut out = BytesMut::new();
        s.put(&mut Writer::new(&mut out)).unwrap();
        let len = out.len();
        let mut r = Reader::new(out.freeze());
        let back = Subscribe::get(&mut r).unwrap();
        assert_eq!(r.remaining(), 0);
        (len, back)
    }

    #[test]
    fn the_extension_is_sent_only_when_used() {
        let plain = Subscribe {
            queue: "q".into(),
            ..Subscribe::default()
        };
        let (short, back) = round_trip(&plain);
        assert_eq!(back, plain);
        let full = Subscribe {
            tags: "a || b".into(),
            ordered: true,
            retry: Some(RetryPolicy {
                max_attempts: 3,
                backoff_ms: vec![1000, 5000],
                consume_timeout_ms: 30_000,
            }),
            ..plain
        };
        let (long, back) = round_trip(&full);
        assert_eq!(back, full);
        assert!(long > short);
    }
}

/// Server -> client, the answer to [`Subscribe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscribed {
    /// The id of this consumer within the connection, used by later requests and deliveries.
    pub consumer_id: u32,
    /// The partitions assigned to it now (all of them unless `exclusive_partitions`).
    pub partitions: Vec<u16>,
}

impl Wire for Subscribed {
    const MIN_LEN: usize = 4 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        w.list("Subscribed.partitions", &self.partitions, |w, p| {
            w.u16(*p);
            Ok(())
        })
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Subscribed {
            consumer_id: r.u32("Subscribed.consumer_id")?,
            partitions: r.list("Subscribed.partitions", 2, |r| {
                r.u16("Subscribed.partitions")
            })?,
        })
    }
}

/// Client -> server: stop a consumer. Answered by `Ok`; its unacknowledged deliveries are
/// requeued.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unsubscribe {
    /// The consumer to stop.
    pub consumer_id: u32,
}

impl Wire for Unsubscribe {
    const MIN_LEN: usize = 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Unsubscribe {
            consumer_id: r.u32("Unsubscribe.consumer_id")?,
        })
    }
}

fn put_ids(w: &mut Writer<'_>, field: &'static str, ids: &[u64]) -> Result<(), EncodeError> {
    w.list(field, ids, |w, id| {
        w.u64(*id);
        Ok(())
    })
}

fn get_ids(r: &mut Reader, field: &'static str) -> Result<Vec<u64>, DecodeError> {
    r.list(field, 8, |r| r.u64(field))
}

/// Client -> server: these deliveries were processed. No response unless it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ack {
    /// The consumer they were delivered to.
    pub consumer_id: u32,
    /// [`Deliver::delivery_id`]s.
    pub delivery_ids: Vec<u64>,
}

impl Wire for Ack {
    const MIN_LEN: usize = 4 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        put_ids(w, "Ack.delivery_ids", &self.delivery_ids)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Ack {
            consumer_id: r.u32("Ack.consumer_id")?,
            delivery_ids: get_ids(r, "Ack.delivery_ids")?,
        })
    }
}

/// Client -> server: these deliveries failed; requeue them or drop (dead-letter) them. No
/// response unless it fails.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nack {
    /// The consumer they were delivered to.
    pub consumer_id: u32,
    /// [`Deliver::delivery_id`]s.
    pub delivery_ids: Vec<u64>,
    /// Deliver them again (true) or drop / dead-letter them (false).
    pub requeue: bool,
}

impl Wire for Nack {
    const MIN_LEN: usize = 4 + 4 + 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        put_ids(w, "Nack.delivery_ids", &self.delivery_ids)?;
        w.bool(self.requeue);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Nack {
            consumer_id: r.u32("Nack.consumer_id")?,
            delivery_ids: get_ids(r, "Nack.delivery_ids")?,
            requeue: r.bool("Nack.requeue")?,
        })
    }
}

/// Client -> server: change a consumer's prefetch. Answered by `Ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetPrefetch {
    /// The consumer.
    pub consumer_id: u32,
    /// New limit of unacknowledged deliveries; 0 = no limit.
    pub prefetch: u32,
}

impl Wire for SetPrefetch {
    const MIN_LEN: usize = 4 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        w.u32(self.prefetch);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(SetPrefetch {
            consumer_id: r.u32("SetPrefetch.consumer_id")?,
            prefetch: r.u32("SetPrefetch.prefetch")?,
        })
    }
}

/// Client -> server: read messages of one partition by offset, without a subscription and
/// without acknowledgements (log-style consumption). Answered by [`Pulled`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pull {
    /// Queue name.
    pub queue: String,
    /// Partition.
    pub partition: u16,
    /// First offset to read.
    pub offset: u64,
    /// Most messages to return.
    pub max: u32,
}

impl Wire for Pull {
    const MIN_LEN: usize = 2 + 2 + 8 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Pull.queue", &self.queue)?;
        w.u16(self.partition);
        w.u64(self.offset);
        w.u32(self.max);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Pull {
            queue: r.str("Pull.queue")?,
            partition: r.u16("Pull.partition")?,
            offset: r.u64("Pull.offset")?,
            max: r.u32("Pull.max")?,
        })
    }
}

/// One message of a [`Pulled`] answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PulledMessage {
    /// Its offset in the partition.
    pub offset: u64,
    /// When the broker stored it, ms since the epoch.
    pub store_ts: i64,
    /// Message properties.
    pub properties: Properties,
    /// Message body.
    pub body: Bytes,
}

impl Wire for PulledMessage {
    const MIN_LEN: usize = 8 + 8 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.offset);
        w.i64(self.store_ts);
        self.properties.put(w)?;
        w.bytes("PulledMessage.body", &self.body)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PulledMessage {
            offset: r.u64("PulledMessage.offset")?,
            store_ts: r.i64("PulledMessage.store_ts")?,
            properties: Properties::get(r)?,
            body: r.bytes("PulledMessage.body")?,
        })
    }
}

/// Server -> client, the answer to [`Pull`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pulled {
    /// The messages read, in offset order (possibly fewer than asked, possibly none).
    pub messages: Vec<PulledMessage>,
    /// The offset to pull from next.
    pub next_offset: u64,
    /// The oldest offset still retained in the partition.
    pub min_offset: u64,
    /// The offset the next stored message will get.
    pub end_offset: u64,
}

impl Wire for Pulled {
    const MIN_LEN: usize = 4 + 8 * 3;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list_of("Pulled.messages", &self.messages)?;
        w.u64(self.next_offset);
        w.u64(self.min_offset);
        w.u64(self.end_offset);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Pulled {
            messages: r.list_of("Pulled.messages")?,
            next_offset: r.u64("Pulled.next_offset")?,
            min_offset: r.u64("Pulled.min_offset")?,
            end_offset: r.u64("Pulled.end_offset")?,
        })
    }
}

/// Client -> server: the first offset of a partition stored at or after a time. Answered by
/// [`Offset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOffset {
    /// Queue name.
    pub queue: String,
    /// Partition.
    pub partition: u16,
    /// Time, ms since the epoch.
    pub time_ms: i64,
}

impl Wire for QueryOffset {
    const MIN_LEN: usize = 2 + 2 + 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("QueryOffset.queue", &self.queue)?;
        w.u16(self.partition);
        w.i64(self.time_ms);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueryOffset {
            queue: r.str("QueryOffset.queue")?,
            partition: r.u16("QueryOffset.partition")?,
            time_ms: r.i64("QueryOffset.time_ms")?,
        })
    }
}

/// Server -> client, the answer to [`QueryOffset`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offset {
    /// The offset (the partition's end offset when nothing is that recent).
    pub offset: u64,
}

impl Wire for Offset {
    const MIN_LEN: usize = 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.offset);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Offset {
            offset: r.u64("Offset.offset")?,
        })
    }
}

/// Server push: a message for a subscribed consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deliver {
    /// The consumer it is for.
    pub consumer_id: u32,
    /// Identifies this delivery in [`Ack`] / [`Nack`]; unique within the connection.
    pub delivery_id: u64,
    /// Queue it came from.
    pub queue: String,
    /// Partition of that queue.
    pub partition: u16,
    /// Its offset in the partition.
    pub offset: u64,
    /// It was delivered before and not acknowledged.
    pub redelivered: bool,
    /// How many times it has been delivered, this one included.
    pub delivery_count: u32,
    /// When the broker stored it, ms since the epoch.
    pub store_ts: i64,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// Message properties.
    pub properties: Properties,
    /// Message body.
    pub body: Bytes,
}

impl Wire for Deliver {
    const MIN_LEN: usize = 4 + 8 + 2 + 2 + 8 + 1 + 4 + 8 + 2 + 2 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        w.u64(self.delivery_id);
        w.str("Deliver.queue", &self.queue)?;
        w.u16(self.partition);
        w.u64(self.offset);
        w.bool(self.redelivered);
        w.u32(self.delivery_count);
        w.i64(self.store_ts);
        w.str("Deliver.exchange", &self.exchange)?;
        w.str("Deliver.routing_key", &self.routing_key)?;
        self.properties.put(w)?;
        w.bytes("Deliver.body", &self.body)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Deliver {
            consumer_id: r.u32("Deliver.consumer_id")?,
            delivery_id: r.u64("Deliver.delivery_id")?,
            queue: r.str("Deliver.queue")?,
            partition: r.u16("Deliver.partition")?,
            offset: r.u64("Deliver.offset")?,
            redelivered: r.bool("Deliver.redelivered")?,
            delivery_count: r.u32("Deliver.delivery_count")?,
            store_ts: r.i64("Deliver.store_ts")?,
            exchange: r.str("Deliver.exchange")?,
            routing_key: r.str("Deliver.routing_key")?,
            properties: Properties::get(r)?,
            body: r.bytes("Deliver.body")?,
        })
    }
}

/// Server push: after a rebalance of an `exclusive_partitions` group, the partitions this
/// consumer now owns (replacing the previous set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The consumer.
    pub consumer_id: u32,
    /// Its partitions now.
    pub partitions: Vec<u16>,
}

impl Wire for Assignment {
    const MIN_LEN: usize = 4 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        w.list("Assignment.partitions", &self.partitions, |w, p| {
            w.u16(*p);
            Ok(())
        })
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Assignment {
            consumer_id: r.u32("Assignment.consumer_id")?,
            partitions: r.list("Assignment.partitions", 2, |r| {
                r.u16("Assignment.partitions")
            })?,
        })
    }
}

/// Server push: the server ended this consumer (e.g. its queue was deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cancelled {
    /// The consumer.
    pub consumer_id: u32,
    /// Why.
    pub reason: String,
}

impl Wire for Cancelled {
    const MIN_LEN: usize = 4 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.consumer_id);
        w.str("Cancelled.reason", &self.reason)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Cancelled {
            consumer_id: r.u32("Cancelled.consumer_id")?,
            reason: r.str("Cancelled.reason")?,
        })
    }
}
