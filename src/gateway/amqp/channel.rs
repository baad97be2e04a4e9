//! One AMQP channel: a task owning one core [`Session`].
//!
//! The connection task forwards the channel's methods and reassembled content ([`ChanIn`]);
//! the channel answers through the connection's output queue ([`Out`]), each method with its
//! content as one contiguous buffer. Deliveries, confirms and server-sent cancels come from
//! the session's events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::future::OptionFuture;
use junction_amqp::amq_protocol::protocol::{basic, AMQPClass};
use junction_amqp::{
    encode_delivery, encode_method, reply_code as rc, short_string_lossy, Content,
};
use tokio::sync::mpsc;

use super::error::AmqpError;
use super::mapping;
use crate::core::{Delivery, Session, SessionEvent, Settle};

/// What the connection hands a channel.
#[derive(Debug)]
pub enum ChanIn {
    /// A method without content.
    Method(AMQPClass),
    /// A published message.
    Content(Box<Content>),
    /// The client closed the channel: answer close-ok and stop.
    Close,
}

/// What a channel hands the connection.
#[derive(Debug)]
pub enum Out {
    /// Encoded frames to write.
    Frames(Bytes),
    /// The channel stopped with these last frames (its `channel.close`): write them and drop
    /// the channel's frames until close-ok. One message, so a quick close-ok cannot overtake it.
    Closing(u16, Bytes),
    /// A hard error: close the connection.
    ConnError(AmqpError),
}

/// Per-connection facts a channel needs.
#[derive(Debug, Clone)]
pub struct ChanCtx {
    /// Negotiated frame-max (bounds outgoing frames).
    pub frame_max: u32,
    /// Forwarded inputs not yet handled plus publishes not yet confirmed, for backpressure.
    pub inflight: Arc<AtomicUsize>,
}

/// A publish waiting for the core's confirm.
struct Pending {
    core_seq: u64,
    /// Confirm-mode delivery tag (0 when not in confirm mode).
    tag: u64,
}

/// Buffered work of a transaction.
enum TxOp {
    Publish(Box<Content>),
    Settle(basic::AMQPMethod),
}

pub(super) struct Channel {
    pub(super) id: u16,
    pub(super) session: Session,
    out: mpsc::UnboundedSender<Out>,
    ctx: ChanCtx,
    wbuf: BytesMut,
    /// Delivery tag -> core delivery id (acknowledged deliveries only).
    pub(super) tags: BTreeMap<u64, u64>,
    pub(super) next_tag: u64,
    /// Prefetch for consumers created from now on (basic.qos, per_consumer_qos).
    pub(super) prefetch: u32,
    pub(super) consumers: Vec<String>,
    pub(super) last_queue: String,
    /// Confirm mode: next publish tag (0 = off).
    confirm_next: u64,
    pending: VecDeque<Pending>,
    tx: Option<Vec<TxOp>>,
    /// A publish a resource alarm holds (with its confirm tag): nothing more is taken from the
    /// connection until it is stored.
    held: Option<(Box<Content>, u64)>,
    stopped: bool,
    /// The client closed the channel: answer close-ok after the session is closed.
    close_ok: bool,
}

/// Runs a channel until the client closes it, a channel error closes it, or the connection
/// goes away.
pub async fn run(
    id: u16,
    session: Session,
    mut rx: mpsc::UnboundedReceiver<ChanIn>,
    out: mpsc::UnboundedSender<Out>,
    ctx: ChanCtx,
) {
    let mut ch = Channel {
        id,
        session,
        out,
        ctx,
        wbuf: BytesMut::new(),
        tags: BTreeMap::new(),
        next_tag: 1,
        prefetch: 0,
        consumers: Vec::new(),
        last_queue: String::new(),
        confirm_next: 0,
        pending: VecDeque::new(),
        tx: None,
        held: None,
        stopped: false,
        close_ok: false,
    };
    while !ch.stopped {
        tokio::select! {
            m = rx.recv(), if ch.held.is_none() => match m {
                Some(m) => {
                    ch.on_input(m).await;
                    ch.ctx.inflight.fetch_sub(1, Ordering::AcqRel);
                }
                None => ch.stopped = true,
            },
            // Made only while a publish is held (the branch is disabled otherwise).
            Some(()) = OptionFuture::from(ch.held.as_ref().map(|_| ch.session.publishing_resumed())), if ch.held.is_some() => {
                if let Some((c, tag)) = ch.held.take() {
                    match ch.try_publish(c, tag) {
                        Ok(held) => ch.held = held,
                        Err(e) => ch.fail(e),
                    }
                }
            }
            Some(ev) = ch.session.next_event() => {
                ch.on_event(ev);
                let mut n = 0;
                while n < 256 {
                    let Some(ev) = ch.session.try_next_event() else { break };
                    ch.on_event(ev);
                    n += 1;
                }
            }
        }
        ch.flush();
    }
    rx.close();
    let mut dropped = ch.pending.len();
    while rx.try_recv().is_ok() {
        dropped += 1;
    }
    ch.ctx.inflight.fetch_sub(dropped, Ordering::AcqRel);
    let Channel {
        session,
        out,
        close_ok,
        ..
    } = ch;
    session.close().await;
    if close_ok {
        let mut b = BytesMut::new();
        if encode_method(id, &junction_amqp::channel_close_ok(), &mut b).is_ok() {
            let _ = out.send(Out::Frames(b.freeze()));
        }
    }
}

impl Channel {
    pub(super) fn method(&mut self, m: &AMQPClass) {
        if let Err(e) = encode_method(self.id, m, &mut self.wbuf) {
            tracing::warn!(channel = self.id, error = %e, "method could not be encoded");
        }
    }

    fn flush(&mut self) {
        if !self.wbuf.is_empty() {
            let _ = self.out.send(Out::Frames(self.wbuf.split().freeze()));
        }
    }

    /// Fails the channel (soft error) or the connection (hard error).
    pub(super) fn fail(&mut self, e: AmqpError) {
        tracing::info!(channel = self.id, error = %e, "amqp channel error");
        if e.is_hard() {
            self.flush();
            let _ = self.out.send(Out::ConnError(e));
        } else {
            let close = e.channel_close();
            self.method(&close);
            let last = self.wbuf.split().freeze();
            let _ = self.out.send(Out::Closing(self.id, last));
        }
        self.stopped = true;
    }

    async fn on_input(&mut self, m: ChanIn) {
        if self.stopped {
            return;
        }
        let r = match m {
            ChanIn::Method(m) => self.on_method(m).await,
            ChanIn::Content(c) => match &mut self.tx {
                Some(ops) => {
                    ops.push(TxOp::Publish(c));
                    Ok(())
                }
                None => self.publish(c),
            },
            ChanIn::Close => {
                // close-ok goes out once the session is closed (unacked messages requeued).
                self.close_ok = true;
                self.stopped = true;
                Ok(())
            }
        };
        if let Err(e) = r {
            self.fail(e);
        }
    }

    /// Publishes a message; confirms, nacks and returns follow the AMQP rules. While a
    /// resource alarm is on the message is held, not refused: it is stored (and confirmed)
    /// once the alarm clears, and the channel takes nothing else from the client meanwhile.
    fn publish(&mut self, c: Box<Content>) -> Result<(), AmqpError> {
        let tag = if self.confirm_next > 0 {
            self.confirm_next += 1;
            self.confirm_next - 1
        } else {
            0
        };
        self.held = self.try_publish(c, tag)?;
        Ok(())
    }

    /// Publishes `c` (confirm tag `tag`, 0 outside confirm mode); gives it back if a resource
    /// alarm blocks publishing.
    fn try_publish(
        &mut self,
        c: Box<Content>,
        tag: u64,
    ) -> Result<Option<(Box<Content>, u64)>, AmqpError> {
        let err = |code, text: String| AmqpError::new(code, text, 60, 40);
        if c.method.immediate {
            return Err(err(
                rc::NOT_IMPLEMENTED,
                "NOT_IMPLEMENTED - immediate=true".into(),
            ));
        }
        let properties = mapping::properties_in(&c.header.properties, c.header.raw.clone())
            .map_err(|e| {
                err(
                    rc::PRECONDITION_FAILED,
                    format!("PRECONDITION_FAILED - {}", e.0),
                )
            })?;
        let msg = crate::core::Message {
            properties,
            body: c.body.clone(),
        };
        let exchange = c.method.exchange.as_str();
        let rk = c.method.routing_key.as_str();
        match self.session.publish(exchange, rk, &msg) {
            Ok(p) => {
                if c.method.mandatory && p.unroutable() {
                    self.send_return(&c);
                }
                self.ctx.inflight.fetch_add(1, Ordering::AcqRel);
                self.pending.push_back(Pending {
                    core_seq: p.seq,
                    tag,
                });
                Ok(None)
            }
            Err(crate::core::CoreError::Blocked(why)) => {
                tracing::debug!(channel = self.id, why, "publish held by a resource alarm");
                Ok(Some((c, tag)))
            }
            Err(e @ crate::core::CoreError::ResourceLimit(_)) => {
                // RabbitMQ: reject-publish nacks in confirm mode, drops otherwise.
                tracing::debug!(channel = self.id, error = %e, "publish refused");
                if tag > 0 {
                    self.confirm(tag, false, false);
                }
                Ok(None)
            }
            Err(e) => Err(AmqpError::core(&e, 60, 40)),
        }
    }

    fn send_return(&mut self, c: &Content) {
        if let Err(e) = junction_amqp::encode_return(
            self.id,
            rc::NO_ROUTE,
            "NO_ROUTE",
            c.method.exchange.as_str(),
            c.method.routing_key.as_str(),
            &c.header.raw,
            &c.body,
            self.ctx.frame_max,
            &mut self.wbuf,
        ) {
            tracing::warn!(channel = self.id, error = %e, "basic.return could not be encoded");
        }
    }

    fn confirm(&mut self, tag: u64, multiple: bool, ack: bool) {
        let m = if ack {
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag: tag,
                multiple,
            })
        } else {
            basic::AMQPMethod::Nack(basic::Nack {
                delivery_tag: tag,
                multiple,
                requeue: false,
            })
        };
        self.method(&AMQPClass::Basic(m));
    }

    fn on_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Delivery(d) => self.deliver(*d),
            SessionEvent::Confirmed { up_to } => self.confirmed(up_to, true),
            SessionEvent::ConfirmFailed { up_to } => self.confirmed(up_to, false),
            SessionEvent::Cancelled { consumer, reason } => {
                tracing::debug!(channel = self.id, consumer = %consumer, reason, "consumer cancelled by the broker");
                self.consumers.retain(|c| **c != *consumer);
                let m = AMQPClass::Basic(basic::AMQPMethod::Cancel(basic::Cancel {
                    consumer_tag: short_string_lossy(&consumer),
                    nowait: true,
                }));
                self.method(&m);
            }
            SessionEvent::Assignment { .. } => {}
        }
    }

    fn confirmed(&mut self, up_to: u64, ok: bool) {
        let mut done = 0;
        let mut last = 0;
        let mut count = 0;
        while self.pending.front().is_some_and(|p| p.core_seq <= up_to) {
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            done += 1;
            if p.tag > 0 {
                last = p.tag;
                count += 1;
            }
        }
        self.ctx.inflight.fetch_sub(done, Ordering::AcqRel);
        if last > 0 {
            self.confirm(last, count > 1, ok);
        }
    }

    fn deliver(&mut self, d: Delivery) {
        let tag = self.next_tag;
        self.next_tag += 1;
        if !d.no_ack {
            self.tags.insert(tag, d.id);
        }
        let header = mapping::header_out(&d.message.properties, d.message.body.len() as u64);
        if let Err(e) = encode_delivery(
            self.id,
            &d.consumer,
            tag,
            d.redelivered,
            &d.exchange,
            &d.routing_key,
            &header,
            &d.message.body,
            self.ctx.frame_max,
            &mut self.wbuf,
        ) {
            tracing::warn!(channel = self.id, error = %e, "delivery could not be encoded; rejecting it");
            if !d.no_ack {
                self.tags.remove(&tag);
                let _ = self.session.settle(d.id, Settle::Reject);
            }
        }
    }

    /// Writes `basic.get-ok` with its content.
    pub(super) fn get_ok(&mut self, tag: u64, d: &Delivery, left: u64, header: &Bytes) {
        if let Err(e) = junction_amqp::encode_get_ok(
            self.id,
            tag,
            d.redelivered,
            &d.exchange,
            &d.routing_key,
            u32::try_from(left).unwrap_or(u32::MAX),
            header,
            &d.message.body,
            self.ctx.frame_max,
            &mut self.wbuf,
        ) {
            tracing::warn!(channel = self.id, error = %e, "get-ok could not be encoded");
        }
    }

    /// Turns `confirm.select` on.
    pub(super) fn confirm_select(&mut self) -> Result<(), AmqpError> {
        if self.tx.is_some() {
            return Err(AmqpError::new(
                rc::PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
                85,
                10,
            ));
        }
        if self.confirm_next == 0 {
            self.confirm_next = 1;
        }
        Ok(())
    }

    /// Turns `tx.select` on.
    pub(super) fn tx_select(&mut self) -> Result<(), AmqpError> {
        if self.confirm_next > 0 {
            return Err(AmqpError::new(
                rc::PRECONDITION_FAILED,
                "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
                90,
                10,
            ));
        }
        self.tx.get_or_insert_with(Vec::new);
        Ok(())
    }

    /// Whether a transaction is open (settles are buffered then).
    pub(super) fn buffer_settle(&mut self, m: &basic::AMQPMethod) -> bool {
        match &mut self.tx {
            Some(ops) => {
                ops.push(TxOp::Settle(m.clone()));
                true
            }
            None => false,
        }
    }

    /// `tx.commit` (`commit` true) or `tx.rollback`. A commit during a resource alarm waits
    /// for it to clear (commit-ok follows once every publish is stored).
    pub(super) async fn tx_end(&mut self, commit: bool, method_id: u16) -> Result<(), AmqpError> {
        let Some(ops) = self.tx.replace(Vec::new()) else {
            return Err(AmqpError::new(
                rc::PRECONDITION_FAILED,
                "PRECONDITION_FAILED - channel is not transactional",
                90,
                method_id,
            ));
        };
        if !commit {
            return Ok(());
        }
        for op in ops {
            match op {
                TxOp::Publish(c) => {
                    let mut held = self.try_publish(c, 0)?;
                    while let Some((c, tag)) = held {
                        self.session.publishing_resumed().await;
                        held = self.try_publish(c, tag)?;
                    }
                }
                TxOp::Settle(m) => self.settle(&m)?,
            }
        }
        Ok(())
    }

    /// `basic.ack` / `nack` / `reject` from the client.
    pub(super) fn settle(&mut self, m: &basic::AMQPMethod) -> Result<(), AmqpError> {
        let (tag, multiple, how, method_id) = match m {
            basic::AMQPMethod::Ack(a) => (a.delivery_tag, a.multiple, Settle::Ack, 80),
            basic::AMQPMethod::Nack(n) => (n.delivery_tag, n.multiple, requeue(n.requeue), 120),
            basic::AMQPMethod::Reject(r) => (r.delivery_tag, false, requeue(r.requeue), 90),
            _ => return Ok(()),
        };
        let ids: Vec<u64> = if multiple {
            let rest = if tag == 0 {
                BTreeMap::new()
            } else {
                self.tags.split_off(&(tag + 1))
            };
            std::mem::replace(&mut self.tags, rest)
                .into_values()
                .collect()
        } else {
            match self.tags.remove(&tag) {
                Some(id) => vec![id],
                None => {
                    return Err(AmqpError::new(
                        rc::PRECONDITION_FAILED,
                        format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
                        60,
                        method_id,
                    ))
                }
            }
        };
        self.settle_ids(&ids, how);
        Ok(())
    }

    /// Settles core deliveries; ones the core already settled (cancelled consumer) are skipped.
    pub(super) fn settle_ids(&mut self, ids: &[u64], how: Settle) {
        if self.session.settle_many(ids, how).is_err() {
            for id in ids {
                let _ = self.session.settle(*id, how);
            }
        }
    }
}

fn requeue(requeue: bool) -> Settle {
    if requeue {
        Settle::Requeue
    } else {
        Settle::Reject
    }
}
