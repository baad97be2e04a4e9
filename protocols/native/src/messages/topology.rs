//! Topology messages: exchanges, queues and bindings.

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{Map, Reader, Wire, Writer};

/// The routing algorithm of an exchange. Encoded as a `u8`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// 0: routes to bindings whose key equals the routing key.
    #[default]
    Direct,
    /// 1: routes to every binding.
    Fanout,
    /// 2: routes by `.`-separated pattern (`*` one word, `#` zero or more).
    Topic,
    /// 3: routes by matching message headers against binding arguments.
    Headers,
}

impl ExchangeKind {
    /// Every kind, in tag order.
    pub const ALL: [ExchangeKind; 4] = [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ];

    /// The wire tag.
    pub const fn tag(self) -> u8 {
        match self {
            ExchangeKind::Direct => 0,
            ExchangeKind::Fanout => 1,
            ExchangeKind::Topic => 2,
            ExchangeKind::Headers => 3,
        }
    }

    /// The kind for a wire tag.
    pub const fn from_tag(tag: u8) -> Option<ExchangeKind> {
        match tag {
            0 => Some(ExchangeKind::Direct),
            1 => Some(ExchangeKind::Fanout),
            2 => Some(ExchangeKind::Topic),
            3 => Some(ExchangeKind::Headers),
            _ => None,
        }
    }
}

impl Wire for ExchangeKind {
    const MIN_LEN: usize = 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(self.tag());
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        let field = "DeclareExchange.kind";
        let tag = r.u8(field)?;
        ExchangeKind::from_tag(tag).ok_or(DecodeError::InvalidEnumTag { field, tag })
    }
}

/// Client -> server: create an exchange, or check it exists (`passive`). Answered by `Ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclareExchange {
    /// Exchange name.
    pub name: String,
    /// Routing algorithm.
    pub kind: ExchangeKind,
    /// Survives a broker restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Only other exchanges may publish to it.
    pub internal: bool,
    /// Only check that it exists (`NotFound` otherwise); create nothing.
    pub passive: bool,
    /// Extra arguments (e.g. `alternate-exchange`).
    pub args: Map,
}

impl Wire for DeclareExchange {
    const MIN_LEN: usize = 2 + 1 + 4 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("DeclareExchange.name", &self.name)?;
        self.kind.put(w)?;
        w.bool(self.durable);
        w.bool(self.auto_delete);
        w.bool(self.internal);
        w.bool(self.passive);
        w.map("DeclareExchange.args", &self.args)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DeclareExchange {
            name: r.str("DeclareExchange.name")?,
            kind: ExchangeKind::get(r)?,
            durable: r.bool("DeclareExchange.durable")?,
            auto_delete: r.bool("DeclareExchange.auto_delete")?,
            internal: r.bool("DeclareExchange.internal")?,
            passive: r.bool("DeclareExchange.passive")?,
            args: r.map("DeclareExchange.args")?,
        })
    }
}

/// Client -> server: delete an exchange. Answered by `Ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteExchange {
    /// Exchange name.
    pub name: String,
    /// Fail with `PreconditionFailed` if it still has bindings.
    pub if_unused: bool,
}

impl Wire for DeleteExchange {
    const MIN_LEN: usize = 2 + 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("DeleteExchange.name", &self.name)?;
        w.bool(self.if_unused);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DeleteExchange {
            name: r.str("DeleteExchange.name")?,
            if_unused: r.bool("DeleteExchange.if_unused")?,
        })
    }
}

/// Client -> server: create a queue, or check it exists (`passive`). Answered by
/// [`QueueDeclared`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeclareQueue {
    /// Queue name; empty asks the server to pick one (returned in [`QueueDeclared::name`]).
    pub name: String,
    /// Number of partitions; 0 = the server's default. Ignored for an existing queue.
    pub partitions: u16,
    /// Survives a broker restart.
    pub durable: bool,
    /// Used only by this connection and deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Only check that it exists (`NotFound` otherwise); create nothing.
    pub passive: bool,
    /// Extra arguments (e.g. `x-message-ttl`, `x-dead-letter-exchange`).
    pub args: Map,
}

impl Wire for DeclareQueue {
    const MIN_LEN: usize = 2 + 2 + 4 + 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("DeclareQueue.name", &self.name)?;
        w.u16(self.partitions);
        w.bool(self.durable);
        w.bool(self.exclusive);
        w.bool(self.auto_delete);
        w.bool(self.passive);
        w.map("DeclareQueue.args", &self.args)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DeclareQueue {
            name: r.str("DeclareQueue.name")?,
            partitions: r.u16("DeclareQueue.partitions")?,
            durable: r.bool("DeclareQueue.durable")?,
            exclusive: r.bool("DeclareQueue.exclusive")?,
            auto_delete: r.bool("DeclareQueue.auto_delete")?,
            passive: r.bool("DeclareQueue.passive")?,
            args: r.map("DeclareQueue.args")?,
        })
    }
}

/// Server -> client, the answer to [`DeclareQueue`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueDeclared {
    /// The queue's name (the server's choice when the request's was empty).
    pub name: String,
    /// Its number of partitions.
    pub partitions: u16,
    /// Messages ready for delivery.
    pub messages: u64,
    /// Active consumers.
    pub consumers: u32,
}

impl Wire for QueueDeclared {
    const MIN_LEN: usize = 2 + 2 + 8 + 4;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("QueueDeclared.name", &self.name)?;
        w.u16(self.partitions);
        w.u64(self.messages);
        w.u32(self.consumers);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(QueueDeclared {
            name: r.str("QueueDeclared.name")?,
            partitions: r.u16("QueueDeclared.partitions")?,
            messages: r.u64("QueueDeclared.messages")?,
            consumers: r.u32("QueueDeclared.consumers")?,
        })
    }
}

/// Client -> server: delete a queue. Answered by [`Deleted`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteQueue {
    /// Queue name.
    pub name: String,
    /// Fail with `PreconditionFailed` if it has consumers.
    pub if_unused: bool,
    /// Fail with `PreconditionFailed` if it has messages.
    pub if_empty: bool,
}

impl Wire for DeleteQueue {
    const MIN_LEN: usize = 2 + 1 + 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("DeleteQueue.name", &self.name)?;
        w.bool(self.if_unused);
        w.bool(self.if_empty);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(DeleteQueue {
            name: r.str("DeleteQueue.name")?,
            if_unused: r.bool("DeleteQueue.if_unused")?,
            if_empty: r.bool("DeleteQueue.if_empty")?,
        })
    }
}

/// Client -> server: drop every ready message of a queue. Answered by [`Deleted`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeQueue {
    /// Queue name.
    pub name: String,
}

impl Wire for PurgeQueue {
    const MIN_LEN: usize = 2;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("PurgeQueue.name", &self.name)
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(PurgeQueue {
            name: r.str("PurgeQueue.name")?,
        })
    }
}

/// Server -> client, the answer to [`DeleteQueue`] and [`PurgeQueue`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    /// How many messages were dropped.
    pub messages: u64,
}

impl Wire for Deleted {
    const MIN_LEN: usize = 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u64(self.messages);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Deleted {
            messages: r.u64("Deleted.messages")?,
        })
    }
}

/// Client -> server, the payload of both [`Body::Bind`](crate::Body::Bind) and
/// [`Body::Unbind`](crate::Body::Unbind): route from `exchange` to `destination`. Answered by
/// `Ok`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Binding {
    /// The queue (or exchange, see `destination_is_exchange`) that receives.
    pub destination: String,
    /// The exchange that routes.
    pub exchange: String,
    /// The binding key (a pattern for topic exchanges).
    pub routing_key: String,
    /// Binding arguments (matched against headers by a headers exchange).
    pub args: Map,
    /// `destination` names an exchange (exchange-to-exchange binding), not a queue.
    pub destination_is_exchange: bool,
}

impl Wire for Binding {
    const MIN_LEN: usize = 2 * 3 + 2 + 1;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Bind.destination", &self.destination)?;
        w.str("Bind.exchange", &self.exchange)?;
        w.str("Bind.routing_key", &self.routing_key)?;
        w.map("Bind.args", &self.args)?;
        w.bool(self.destination_is_exchange);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Binding {
            destination: r.str("Bind.destination")?,
            exchange: r.str("Bind.exchange")?,
            routing_key: r.str("Bind.routing_key")?,
            args: r.map("Bind.args")?,
            destination_is_exchange: r.bool("Bind.destination_is_exchange")?,
        })
    }
}
