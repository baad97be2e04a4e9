//! RocketMQ's messaging features beyond publish and consume: re-driving a dead-letter queue,
//! looking messages up by id, key or time, transactional messages.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::messages::Route;
use crate::primitives::{Reader, Wire, Writer};
use crate::properties::Properties;

/// Client -> server: move up to `max` messages of a dead-letter queue back to the retry queue
/// of the consumer group that gave up on them (their `x-retry-queue` header), with their retry
/// count reset. Answered by [`Deleted`](crate::Deleted) with the number moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redrive {
    /// The dead-letter queue.
    pub queue: String,
    /// Most messages to move.
    pub max: u64,
}

impl Wire for Redrive {
    const MIN_LEN: usize = 2 + 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Redrive.queue", &self.queue)?;
        w.u64(self.max);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Redrive {
            queue: r.str("Redrive.queue")?,
            max: r.u64("Redrive.max")?,
        })
    }
}

/// How a [`Lookup`] searches. Encoded as a `u8` tag and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupBy {
    /// Tag 0 + `str`: by message id (the store's index).
    Id(String),
    /// Tag 1 + `str` + `i64` + `i64`: by message key, stored within `[begin_ms, end_ms]`.
    Key {
        /// The key.
        key: String,
        /// Earliest store time, ms since the epoch.
        begin_ms: i64,
        /// Latest store time, ms since the epoch.
        end_ms: i64,
    },
    /// Tag 2 + `str` + `i64` + `i64`: stored within `[begin_ms, end_ms]`, in one queue (empty:
    /// every queue the user may read), oldest first.
    Time {
        /// The queue, or empty.
        queue: String,
        /// Earliest store time, ms since the epoch.
        begin_ms: i64,
        /// Latest store time, ms since the epoch.
        end_ms: i64,
    },
}

impl Default for LookupBy {
    fn default() -> Self {
        LookupBy::Id(String::new())
    }
}

impl Wire for LookupBy {
    const MIN_LEN: usize = 1 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            LookupBy::Id(id) => {
                w.u8(0);
                w.str("Lookup.id", id)
            }
            LookupBy::Key {
                key,
                begin_ms,
                end_ms,
            } => {
                w.u8(1);
                w.str("Lookup.key", key)?;
                w.i64(*begin_ms);
                w.i64(*end_ms);
                Ok(())
            }
            LookupBy::Time {
                queue,
                begin_ms,
                end_ms,
            } => {
                w.u8(2);
                w.str("Lookup.queue", queue)?;
                w.i64(*begin_ms);
                w.i64(*end_ms);
                Ok(())
            }
        }
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let field = "Lookup.by";
        match r.u8(field)? {
            0 => Ok(LookupBy::Id(r.str("Lookup.id")?)),
            1 => Ok(LookupBy::Key {
                key: r.str("Lookup.key")?,
                begin_ms: r.i64("Lookup.begin_ms")?,
                end_ms: r.i64("Lookup.end_ms")?,
            }),
            2 => Ok(LookupBy::Time {
                queue: r.str("Lookup.queue")?,
                begin_ms: r.i64("Lookup.begin_ms")?,
                end_ms: r.i64("Lookup.end_ms")?,
            }),
            tag => Err(DecodeError::InvalidEnumTag { field, tag }),
        }
    }
}

/// Client -> server: find stored messages by id, key or time. Answered by [`Found`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lookup {
    /// What to search by.
    pub by: LookupBy,
    /// Most messages to return.
    pub max: u32,
}

impl Wire for Lookup {
    const MIN_LEN: usize = LookupBy::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        self.by.put(w)?;
        w.u32(self.max);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Lookup {
            by: LookupBy::get(r)?,
            max: r.u32("Lookup.max")?,
        })
    }
}

/// One message found by a [`Lookup`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FoundMessage {
    /// Where it is in the CommitLog.
    pub commitlog_offset: u64,
    /// When the broker stored it, ms since the epoch.
    pub store_ts: i64,
    /// The producer's timestamp, ms since the epoch.
    pub born_ts: i64,
    /// The exchange it was published to.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Every queue partition and offset where it is stored (of the queues the user may read).
    pub positions: Vec<Route>,
    /// Its properties.
    pub properties: Properties,
    /// Its body.
    pub body: Bytes,
}

impl Wire for FoundMessage {
    const MIN_LEN: usize = 8 + 8 + 8 + 2 + 2 + 4 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.commitlog_offset);
        w.i64(self.store_ts);
        w.i64(self.born_ts);
        w.str("FoundMessage.exchange", &self.exchange)?;
        w.str("FoundMessage.routing_key", &self.routing_key)?;
        w.list_of("FoundMessage.positions", &self.positions)?;
        self.properties.put(w)?;
        w.bytes("FoundMessage.body", &self.body)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(FoundMessage {
            commitlog_offset: r.u64("FoundMessage.commitlog_offset")?,
            store_ts: r.i64("FoundMessage.store_ts")?,
            born_ts: r.i64("FoundMessage.born_ts")?,
            exchange: r.str("FoundMessage.exchange")?,
            routing_key: r.str("FoundMessage.routing_key")?,
            positions: r.list_of("FoundMessage.positions")?,
            properties: Properties::get(r)?,
            body: r.bytes("FoundMessage.body")?,
        })
    }
}

/// Server -> client, the answer to [`Lookup`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    /// The messages: newest first by id or key, oldest first by time.
    pub messages: Vec<FoundMessage>,
}

impl Wire for Found {
    const MIN_LEN: usize = 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list_of("Found.messages", &self.messages)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Found {
            messages: r.list_of("Found.messages")?,
        })
    }
}

/// Client -> server: publish a transactional *half message*: stored, but delivered only if its
/// transaction commits. Answered by [`HalfStored`] once stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishHalf {
    /// Target exchange (empty = the default exchange).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Producer group: a producer of this group is asked about the outcome if it never comes.
    pub group: String,
    /// Message properties.
    pub properties: Properties,
    /// Message body.
    pub body: Bytes,
}

impl Wire for PublishHalf {
    const MIN_LEN: usize = 2 + 2 + 2 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("PublishHalf.exchange", &self.exchange)?;
        w.str("PublishHalf.routing_key", &self.routing_key)?;
        w.str("PublishHalf.group", &self.group)?;
        self.properties.put(w)?;
        w.bytes("PublishHalf.body", &self.body)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PublishHalf {
            exchange: r.str("PublishHalf.exchange")?,
            routing_key: r.str("PublishHalf.routing_key")?,
            group: r.str("PublishHalf.group")?,
            properties: Properties::get(r)?,
            body: r.bytes("PublishHalf.body")?,
        })
    }
}

/// Server -> client, the answer to [`PublishHalf`]: the half message is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HalfStored {
    /// The transaction's id, for [`EndTransaction`].
    pub transaction_id: u64,
}

impl Wire for HalfStored {
    const MIN_LEN: usize = 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.transaction_id);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(HalfStored {
            transaction_id: r.u64("HalfStored.transaction_id")?,
        })
    }
}

/// A transaction's outcome. Encoded as a `u8`: 0 unknown, 1 commit, 2 rollback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum TransactionState {
    /// Not known yet (the broker asks again later).
    #[default]
    Unknown,
    /// Deliver the message.
    Commit,
    /// Drop it.
    Rollback,
}

impl Wire for TransactionState {
    const MIN_LEN: usize = 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            TransactionState::Unknown => 0,
            TransactionState::Commit => 1,
            TransactionState::Rollback => 2,
        });
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let field = "EndTransaction.state";
        match r.u8(field)? {
            0 => Ok(TransactionState::Unknown),
            1 => Ok(TransactionState::Commit),
            2 => Ok(TransactionState::Rollback),
            tag => Err(DecodeError::InvalidEnumTag { field, tag }),
        }
    }
}

/// Client -> server: the outcome of a transaction (after [`PublishHalf`], or in answer to a
/// [`CheckTransaction`], then with request id 0 and no answer). Answered by
/// [`Published`](crate::Published) once the outcome is stored: for a commit, where the message
/// went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndTransaction {
    /// The transaction.
    pub transaction_id: u64,
    /// Its outcome.
    pub state: TransactionState,
}

impl Wire for EndTransaction {
    const MIN_LEN: usize = 8 + 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.transaction_id);
        self.state.put(w)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(EndTransaction {
            transaction_id: r.u64("EndTransaction.transaction_id")?,
            state: TransactionState::get(r)?,
        })
    }
}

/// Server -> client push: what became of this half message? Sent to a connection registered
/// for its producer group ([`RegisterTransactionGroup`]); answered with [`EndTransaction`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckTransaction {
    /// The transaction.
    pub transaction_id: u64,
    /// Its producer group.
    pub group: String,
    /// Check-backs of it so far, this one included.
    pub checks: u32,
    /// The exchange it is for.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its properties.
    pub properties: Properties,
    /// Its body.
    pub body: Bytes,
}

impl Wire for CheckTransaction {
    const MIN_LEN: usize = 8 + 2 + 4 + 2 + 2 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.transaction_id);
        w.str("CheckTransaction.group", &self.group)?;
        w.u32(self.checks);
        w.str("CheckTransaction.exchange", &self.exchange)?;
        w.str("CheckTransaction.routing_key", &self.routing_key)?;
        self.properties.put(w)?;
        w.bytes("CheckTransaction.body", &self.body)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(CheckTransaction {
            transaction_id: r.u64("CheckTransaction.transaction_id")?,
            group: r.str("CheckTransaction.group")?,
            checks: r.u32("CheckTransaction.checks")?,
            exchange: r.str("CheckTransaction.exchange")?,
            routing_key: r.str("CheckTransaction.routing_key")?,
            properties: Properties::get(r)?,
            body: r.bytes("CheckTransaction.body")?,
        })
    }
}

/// Client -> server: this connection answers check-backs for producer group `group`.
/// Answered by `Ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterTransactionGroup {
    /// The producer group.
    pub group: String,
}

impl Wire for RegisterTransactionGroup {
    const MIN_LEN: usize = 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("RegisterTransactionGroup.group", &self.group)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(RegisterTransactionGroup {
            group: r.str("RegisterTransactionGroup.group")?,
        })
    }
}
