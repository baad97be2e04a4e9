//! Publishing messages: publish, batches, confirms, returns and flow control.

use bytes::Bytes;

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{Reader, Wire, Writer};
use crate::properties::Properties;

/// Client -> server: publish one message to an exchange.
///
/// With `confirm` the server answers [`Published`] once the message is stored (or
/// [`Returned`] when `mandatory` and no queue matched, or an error); without it the publish is
/// one-way and only a failure is answered (with an [`ErrorResponse`](crate::ErrorResponse) on
/// the frame's request id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publish {
    /// Target exchange; empty = the default exchange (routing key = queue name).
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// Return the message ([`Returned`]) instead of dropping it when no queue matches.
    pub mandatory: bool,
    /// Answer with [`Published`] once stored.
    pub confirm: bool,
    /// Message properties.
    pub properties: Properties,
    /// Message body.
    pub body: Bytes,
    /// Extension (sent only when set): an idempotent producer's id and this message's
    /// sequence number. A sequence the broker has already stored for this producer is not
    /// stored again: the answer is the original's [`Published`], with `duplicate` set.
    pub producer: Option<(String, u64)>,
}

impl Wire for Publish {
    const MIN_LEN: usize = 2 + 2 + 1 + 1 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Publish.exchange", &self.exchange)?;
        w.str("Publish.routing_key", &self.routing_key)?;
        w.bool(self.mandatory);
        w.bool(self.confirm);
        self.properties.put(w)?;
        w.bytes("Publish.body", &self.body)?;
        if let Some((id, seq)) = &self.producer {
            w.str("Publish.producer", id)?;
            w.u64(*seq);
        }
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let mut p = Publish {
            exchange: r.str("Publish.exchange")?,
            routing_key: r.str("Publish.routing_key")?,
            mandatory: r.bool("Publish.mandatory")?,
            confirm: r.bool("Publish.confirm")?,
            properties: Properties::get(r)?,
            body: r.bytes("Publish.body")?,
            producer: None,
        };
        if r.remaining() > 0 {
            p.producer = Some((r.str("Publish.producer")?, r.u64("Publish.sequence")?));
        }
        Ok(p)
    }
}

/// Where a stored message landed: one queue partition and its offset there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// Queue name.
    pub queue: String,
    /// Partition of that queue.
    pub partition: u16,
    /// The message's offset in that partition.
    pub offset: u64,
}

impl Wire for Route {
    const MIN_LEN: usize = 2 + 2 + 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Route.queue", &self.queue)?;
        w.u16(self.partition);
        w.u64(self.offset);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Route {
            queue: r.str("Route.queue")?,
            partition: r.u16("Route.partition")?,
            offset: r.u64("Route.offset")?,
        })
    }
}

/// Server -> client, the confirm of a [`Publish`] with `confirm` set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Every queue partition the message was stored in (empty: routed nowhere, not mandatory).
    pub results: Vec<Route>,
    /// Extension (sent only when true): an idempotent producer's sequence that was already
    /// stored; `results` are where the original went.
    pub duplicate: bool,
}

impl Wire for Published {
    const MIN_LEN: usize = 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list_of("Published.results", &self.results)?;
        if self.duplicate {
            w.bool(true);
        }
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let results = r.list_of("Published.results")?;
        let duplicate = r.remaining() > 0 && r.bool("Published.duplicate")?;
        Ok(Published { results, duplicate })
    }
}

/// Server -> client: a `mandatory` [`Publish`] could not be routed to any queue. It answers
/// the publish whether or not `confirm` was set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returned {
    /// Reply code, usually [`ErrorCode::NoRoute`](crate::ErrorCode::NoRoute) (312).
    pub reply_code: u16,
    /// Human-readable reason.
    pub reply_text: String,
}

impl Wire for Returned {
    const MIN_LEN: usize = 2 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u16(self.reply_code);
        w.str("Returned.reply_text", &self.reply_text)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Returned {
            reply_code: r.u16("Returned.reply_code")?,
            reply_text: r.str("Returned.reply_text")?,
        })
    }
}

/// One message of a [`PublishBatch`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchMessage {
    /// Routing key for this message instead of the batch's.
    pub routing_key: Option<String>,
    /// Message properties.
    pub properties: Properties,
    /// Message body.
    pub body: Bytes,
}

impl Wire for BatchMessage {
    const MIN_LEN: usize = 1 + Properties::MIN_LEN + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.opt(self.routing_key.as_ref(), |w, k| {
            w.str("BatchMessage.routing_key", k)
        })?;
        self.properties.put(w)?;
        w.bytes("BatchMessage.body", &self.body)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(BatchMessage {
            routing_key: r.opt("BatchMessage.routing_key", |r| {
                r.str("BatchMessage.routing_key")
            })?,
            properties: Properties::get(r)?,
            body: r.bytes("BatchMessage.body")?,
        })
    }
}

/// Client -> server: publish many messages to one exchange in one frame. Always answered by
/// [`PublishedBatch`] (or an error for the whole batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishBatch {
    /// Target exchange; empty = the default exchange.
    pub exchange: String,
    /// Routing key of messages that do not override it.
    pub routing_key: String,
    /// The client wants to know about unroutable messages: they show up as empty entries of
    /// [`PublishedBatch::results`].
    pub mandatory: bool,
    /// The messages, in order.
    pub messages: Vec<BatchMessage>,
}

impl Wire for PublishBatch {
    const MIN_LEN: usize = 2 + 2 + 1 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("PublishBatch.exchange", &self.exchange)?;
        w.str("PublishBatch.routing_key", &self.routing_key)?;
        w.bool(self.mandatory);
        w.list_of("PublishBatch.messages", &self.messages)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PublishBatch {
            exchange: r.str("PublishBatch.exchange")?,
            routing_key: r.str("PublishBatch.routing_key")?,
            mandatory: r.bool("PublishBatch.mandatory")?,
            messages: r.list_of("PublishBatch.messages")?,
        })
    }
}

/// Server -> client, the answer to [`PublishBatch`]: one entry per message, in order, listing
/// where it was stored. An empty entry is a message that matched no queue and was not stored
/// (for a `mandatory` batch, that entry is the return).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishedBatch {
    /// Per message, the queue partitions it was stored in.
    pub results: Vec<Vec<Route>>,
}

impl Wire for PublishedBatch {
    const MIN_LEN: usize = 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.list("PublishedBatch.results", &self.results, |w, routes| {
            w.list_of("PublishedBatch.results", routes)
        })
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PublishedBatch {
            results: r.list("PublishedBatch.results", 4, |r| {
                r.list_of("PublishedBatch.results")
            })?,
        })
    }
}

/// Server push: publishers should pause (`blocked`) or may resume. Sent when a memory or disk
/// alarm is raised or cleared; the server may stop reading from publishers while blocked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flow {
    /// Whether publishing is blocked.
    pub blocked: bool,
    /// Why, e.g. `memory alarm`; empty when unblocking.
    pub reason: String,
}

impl Wire for Flow {
    const MIN_LEN: usize = 1 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.bool(self.blocked);
        w.str("Flow.reason", &self.reason)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Flow {
            blocked: r.bool("Flow.blocked")?,
            reason: r.str("Flow.reason")?,
        })
    }
}
