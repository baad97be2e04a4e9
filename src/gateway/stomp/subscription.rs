//! SUBSCRIBE, UNSUBSCRIBE, ACK, NACK and the MESSAGE frames of a connection.
//!
//! Each subscription is one core consumer on the queue its destination names (see
//! [`destination`](super::destination)). Ack modes:
//!
//! - `auto`: a delivery is acked once its MESSAGE is written to the socket (so the consumer's
//!   window, `prefetch-count` or the core's default, keeps a slow reader from piling its queue
//!   up in memory); if the connection drops first, it is redelivered.
//! - `client`: an ACK (or NACK) settles the named message and every earlier unsettled message
//!   of the same subscription (cumulative).
//! - `client-individual`: an ACK or NACK settles exactly the named message.
//!
//! A MESSAGE's `message-id` (and, in 1.2, its `ack` header) is the core's delivery id, which
//! ACK/NACK name with `id` (1.2) or `message-id` (1.0, 1.1; either header is accepted in any
//! version). NACK requeues unless it carries `requeue:false` (then the message is dead-lettered
//! or dropped), as RabbitMQ does. `prefetch-count` (RabbitMQ) or `activemq.prefetchSize`
//! bounds the unacked messages of a subscription.
//!
//! `/topic/` and `/exchange/` subscriptions read a private queue bound to the exchange:
//! exclusive and deleted with the subscription, or, with `durable:true` (or RabbitMQ's older
//! `persistent:true`), a durable queue named from the CONNECT `client-id` and the subscription
//! `id` (or `x-queue-name`), which keeps collecting messages while the client is away. An
//! UNSUBSCRIBE that repeats `durable:true` deletes it; a plain one or a disconnect keeps it.

use std::collections::VecDeque;
use std::sync::Arc;

use junction_stomp::{Command, Frame, Version};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{queue_args, Connection};
use super::destination::{self, Destination};
use super::mapping::properties_out;
use super::StompError;
use crate::core::{BindingDecl, ConsumeSpec, CoreError, Delivery, QueueDecl, Settle, StartFrom};

/// How a subscription's messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Acked when sent.
    Auto,
    /// Cumulative ACK/NACK.
    Client,
    /// One message per ACK/NACK.
    ClientIndividual,
}

impl AckMode {
    fn parse(v: Option<&str>) -> Result<AckMode, StompError> {
        match v {
            None | Some("auto") => Ok(AckMode::Auto),
            Some("client") => Ok(AckMode::Client),
            Some("client-individual") => Ok(AckMode::ClientIndividual),
            Some(other) => Err(StompError::new(
                "invalid ack mode",
                format!("ack:{other}: expected auto, client or client-individual"),
            )),
        }
    }
}

/// One subscription of a connection.
#[derive(Debug)]
pub(super) struct Subscription {
    /// The client's subscription id.
    pub(super) id: String,
    pub(super) ack: AckMode,
    /// The queue it consumes.
    pub(super) queue: String,
    /// The destination MESSAGE frames name; `None`: derived from where each message was
    /// published.
    pub(super) destination: Option<String>,
    /// A private queue that goes with the subscription.
    pub(super) private: bool,
    /// A durable topic subscription's queue.
    pub(super) durable: bool,
    /// `client` mode: unsettled deliveries in delivery order.
    pub(super) outstanding: VecDeque<u64>,
}

fn is_true(f: &Frame, name: &str) -> bool {
    f.header(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub(super) async fn subscribe(&mut self, f: &Frame) -> Result<(), StompError> {
        let dest_text = f
            .header("destination")
            .ok_or_else(|| StompError::missing("destination", Command::Subscribe))?;
        let durable = is_true(f, "durable") || is_true(f, "persistent");
        if durable && f.header("id").is_none() {
            return Err(StompError::new(
                "Missing Header",
                "Header 'id' is required for durable subscriptions",
            ));
        }
        // 1.0 made `id` optional; RabbitMQ then uses the destination as the id.
        let id = match (f.header("id"), self.version) {
            (Some(id), _) => id.to_string(),
            (None, Version::V1_0) => dest_text.to_string(),
            (None, _) => return Err(StompError::missing("id", Command::Subscribe)),
        };
        if self.sub_tags.contains_key(&id) {
            return Err(StompError::new(
                "Duplicated subscription identifier",
                format!("A subscription identified by '{id}' already exists."),
            ));
        }
        let dest = Destination::parse(dest_text)?;
        let ack = AckMode::parse(f.header("ack"))?;
        let prefetch = match f
            .header("prefetch-count")
            .or_else(|| f.header("activemq.prefetchSize"))
        {
            None => 0,
            Some(v) => v.parse::<u32>().map_err(|_| {
                StompError::new("invalid prefetch-count", format!("{v:?} is not a count"))
            })?,
        };
        let mut fixed_destination = None;
        let (queue, private) = match &dest {
            Destination::Queue(q) => {
                self.ensure_queue(q, f).await?;
                (q.clone(), false)
            }
            Destination::AmqQueue(q) | Destination::ReplyQueue(q) => {
                self.session.queue_info(q).await?;
                (q.clone(), false)
            }
            Destination::TempQueue(t) => {
                fixed_destination = Some(dest.to_string());
                let q = self.temp_queue(t, false).await?;
                // Replies go to this subscription: a later reply-to adds no consumer of its own.
                if let Some(entry) = self.temp.get_mut(t) {
                    entry.1 = true;
                }
                (q, false)
            }
            Destination::Topic(_) | Destination::Exchange { .. } => {
                let q = self.private_queue(f, &dest, &id, durable).await?;
                (q, !durable)
            }
        };
        let tag: Arc<str> = Arc::from(format!("s:{id}"));
        // `selector` (ActiveMQ's SQL92 selector) or `x-stream-filter` (tags).
        let filter = crate::core::filter::Filter::from_args(|k| {
            f.header(k).map(|v| crate::core::Value::Str(v.to_string()))
        })
        .map_err(|e| StompError::new("invalid selector", e.to_string()))?;
        // `x-stream-offset` (as RabbitMQ streams): replay the queue from there in a consumer
        // group of this subscription's own.
        let (group, start) = match f.header("x-stream-offset") {
            None => (String::new(), StartFrom::Committed),
            Some(v) => {
                let start = StartFrom::from_stream_offset(
                    &crate::core::Value::Str(v.to_string()),
                    crate::core::now_ms(),
                )
                .ok_or_else(|| {
                    StompError::new(
                        "invalid x-stream-offset",
                        format!("{v:?}: expected first, last, next, an offset or an interval"),
                    )
                })?;
                let group = format!(
                    "{}replay-{}-{id}",
                    crate::core::EPHEMERAL_GROUP_PREFIX,
                    self.session.id()
                );
                (group, start)
            }
        };
        self.session
            .consume(ConsumeSpec {
                queue: queue.clone(),
                group,
                prefetch,
                // Auto-ack deliveries are settled once written to the socket (see
                // `settle_written`), so a slow reader holds back its queue instead of
                // buffering it in the broker.
                no_ack: false,
                start,
                exclusive_partitions: false,
                tag: tag.to_string(),
                exclusive: false,
                filter: filter.map(Arc::new),
                ..ConsumeSpec::default()
            })
            .await?;
        self.sub_tags.insert(id.clone(), Arc::clone(&tag));
        self.subs.insert(
            tag,
            Subscription {
                id,
                ack,
                queue,
                destination: fixed_destination,
                private,
                durable: durable && !matches!(dest, Destination::Queue(_)),
                outstanding: VecDeque::new(),
            },
        );
        Ok(())
    }

    /// Declares and binds the queue of a `/topic/` or `/exchange/` subscription.
    async fn private_queue(
        &mut self,
        f: &Frame,
        dest: &Destination,
        id: &str,
        durable: bool,
    ) -> Result<String, StompError> {
        let Some((exchange, key)) = dest.publish_target() else {
            return Err(StompError::new("Unknown destination", dest.to_string()));
        };
        let name = match f.header("x-queue-name") {
            Some(n) => n.to_string(),
            None if durable => {
                let digest = Sha256::digest(format!("{}\0{id}", self.client_id).as_bytes());
                let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
                format!("stomp-subscription-{hex}")
            }
            None => format!("stomp-subscription-{:016x}", rand::random::<u64>()),
        };
        let info = self
            .session
            .declare_queue(QueueDecl {
                name,
                partitions: 1,
                durable,
                exclusive: !durable,
                auto_delete: !durable,
                passive: false,
                args: queue_args(f),
            })
            .await?;
        self.session.bind(BindingDecl {
            exchange: exchange.to_string(),
            destination: info.name.clone(),
            destination_is_exchange: false,
            routing_key: key.to_string(),
            args: Vec::new(),
        })?;
        Ok(info.name)
    }

    /// The consumer behind a `/temp-queue/` used as a `reply-to`.
    pub(super) async fn subscribe_temp(
        &mut self,
        name: &str,
        queue: &str,
    ) -> Result<(), StompError> {
        let dest = Destination::TempQueue(name.to_string()).to_string();
        let tag: Arc<str> = Arc::from(format!("t:{name}"));
        self.session
            .consume(ConsumeSpec {
                queue: queue.to_string(),
                group: String::new(),
                prefetch: 0,
                no_ack: false,
                start: StartFrom::Committed,
                exclusive_partitions: false,
                tag: tag.to_string(),
                exclusive: false,
                ..ConsumeSpec::default()
            })
            .await?;
        self.subs.insert(
            tag,
            Subscription {
                id: dest.clone(),
                ack: AckMode::Auto,
                queue: queue.to_string(),
                destination: Some(dest),
                private: false,
                durable: false,
                outstanding: VecDeque::new(),
            },
        );
        Ok(())
    }

    pub(super) async fn unsubscribe(&mut self, f: &Frame) -> Result<(), StompError> {
        let id = match (f.header("id"), f.header("destination"), self.version) {
            (Some(id), _, _) => id,
            (None, Some(d), Version::V1_0) => d,
            _ => return Err(StompError::missing("id", Command::Unsubscribe)),
        };
        let tag = self.sub_tags.remove(id).ok_or_else(|| {
            StompError::new(
                "no such subscription",
                format!("no subscription '{id}' on this connection"),
            )
        })?;
        let sub = self.subs.remove(&tag);
        // Auto-acked MESSAGEs already queued for the socket count as delivered.
        self.settle_written();
        // The subscription's unacked messages go back to the queue at once.
        let _ = self.session.close_consumer(&tag);
        self.owner.retain(|_, t| *t != tag);
        if let Some(sub) = sub {
            let end_durable = sub.durable && (is_true(f, "durable") || is_true(f, "persistent"));
            if sub.private || end_durable {
                // A private queue is auto-delete: it may already be gone with its consumer.
                match self.session.delete_queue(&sub.queue, false, false).await {
                    Ok(_) | Err(CoreError::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// ACK or NACK outside a transaction (or replayed by COMMIT).
    pub(super) fn settle(&mut self, f: &Frame) -> Result<(), StompError> {
        // 1.2 names the message by `id` (the MESSAGE's `ack` header), 1.0 and 1.1 by
        // `message-id`; the other header is not looked at (RabbitMQ's texts on errors).
        let name = if self.version == Version::V1_2 {
            "id"
        } else {
            "message-id"
        };
        let text = f.header(name).ok_or_else(|| {
            StompError::new(
                "Missing header",
                format!("{} must include the '{name}' header\n", f.command),
            )
        })?;
        let id = text.parse::<u64>().map_err(|_| {
            StompError::new(
                "Invalid header",
                format!("{} must include a valid '{name}' header\n", f.command),
            )
        })?;
        let unknown = || {
            StompError::new(
                "unknown message",
                format!("{} of {text:?}: no such unacknowledged message", f.command),
            )
        };
        let tag = self.owner.get(&id).cloned().ok_or_else(unknown)?;
        let requeue = f
            .header("requeue")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        let how = match f.command {
            Command::Nack if !requeue => Settle::Reject,
            Command::Nack => Settle::Requeue,
            _ => Settle::Ack,
        };
        let Some(sub) = self.subs.get_mut(&tag) else {
            return Err(unknown());
        };
        let ids: Vec<u64> = if sub.ack == AckMode::Client {
            let Some(pos) = sub.outstanding.iter().position(|&d| d == id) else {
                return Err(unknown());
            };
            sub.outstanding.drain(..=pos).collect()
        } else {
            vec![id]
        };
        for d in &ids {
            self.owner.remove(d);
        }
        self.session.settle_many(&ids, how)?;
        Ok(())
    }

    /// Acks the auto-ack deliveries whose MESSAGE frames were written (or are about to be).
    pub(super) fn settle_written(&mut self) {
        if self.written.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.written);
        if self.session.settle_many(&ids, Settle::Ack).is_err() {
            // One of them is gone (its consumer was cancelled): settle the rest one by one.
            for id in ids {
                let _ = self.session.settle(id, Settle::Ack);
            }
        }
    }

    /// A delivery from the core becomes a MESSAGE frame.
    pub(super) fn deliver(&mut self, d: Delivery) {
        let Some(sub) = self.subs.get_mut(&*d.consumer) else {
            return;
        };
        let destination = match &sub.destination {
            Some(fixed) => fixed.clone(),
            None => destination::for_published(&d.exchange, &d.routing_key),
        };
        let id = d.id.to_string();
        let mut f = Frame::new(Command::Message)
            .with_header("subscription", sub.id.as_str())
            .with_header("destination", destination)
            .with_header("message-id", id.as_str());
        if sub.ack == AckMode::Auto {
            self.written.push(d.id);
        } else {
            if self.version == Version::V1_2 {
                f.push_header("ack", id.as_str());
            }
            if sub.ack == AckMode::Client {
                sub.outstanding.push_back(d.id);
            }
            self.owner.insert(d.id, Arc::clone(&d.consumer));
        }
        f.push_header("redelivered", if d.redelivered { "true" } else { "false" });
        properties_out(&d.message.properties, &mut f);
        f.body = d.message.body;
        self.push(&f);
    }

    /// The core cancelled a consumer (its queue was deleted): the client is told with an
    /// ERROR frame naming the subscription, as RabbitMQ does; the connection stays open.
    pub(super) fn cancelled(&mut self, tag: &str, reason: &str) {
        let Some(sub) = self.subs.remove(tag) else {
            return;
        };
        self.sub_tags.remove(&sub.id);
        self.owner.retain(|_, t| &**t != tag);
        self.push(
            &Frame::error("Server cancelled subscription")
                .with_header("subscription", sub.id.as_str())
                .with_header("content-type", "text/plain")
                .with_body(format!(
                    "subscription '{}' to queue '{}' was cancelled: {reason}",
                    sub.id, sub.queue
                )),
        );
    }
}
