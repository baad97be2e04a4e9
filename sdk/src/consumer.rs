//! [`Consumer`]: a subscription as a stream of [`Delivery`]s.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use junction_native::{Body, Deliver, Properties, Unsubscribe};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::connection::{lock, Command};
use crate::error::{Result, SdkError};
use crate::registry::ConsumerEvent;

/// What is needed to settle a delivery: the session it came on and its ids.
#[derive(Debug, Clone)]
pub(crate) struct AckHandle {
    pub(crate) tx: mpsc::Sender<Command>,
    pub(crate) epoch: u64,
    pub(crate) consumer_id: u32,
    pub(crate) delivery_id: u64,
    pub(crate) no_ack: bool,
}

/// A message delivered to a [`Consumer`].
///
/// Settle it with [`Delivery::ack`] or [`Delivery::nack`] (or several at once with
/// [`Consumer::ack_all`]). These are fire-and-forget: they resolve once the ack is queued for
/// the connection, because the broker does not confirm acks (a failure is logged). Acks queued
/// back to back are sent as one frame. If the connection dropped since the delivery, its ack is
/// silently discarded: the delivery belonged to the dead session, and the broker redelivers it
/// (with [`Delivery::redelivered`] set) to the re-subscribed consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
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
    /// When the broker stored it, ms since the Unix epoch.
    pub store_ts: i64,
    /// The exchange it was published to.
    pub exchange: String,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The body.
    pub body: Bytes,
    /// The properties.
    pub properties: Properties,
    acker: AckHandle,
}

impl Delivery {
    pub(crate) fn new(d: Deliver, acker: AckHandle) -> Delivery {
        Delivery {
            queue: d.queue,
            partition: d.partition,
            offset: d.offset,
            redelivered: d.redelivered,
            delivery_count: d.delivery_count,
            store_ts: d.store_ts,
            exchange: d.exchange,
            routing_key: d.routing_key,
            body: d.body,
            properties: d.properties,
            acker,
        }
    }

    /// The broker's id of this delivery (unique within one connection).
    pub fn delivery_id(&self) -> u64 {
        self.acker.delivery_id
    }

    /// Acknowledges the delivery: the broker forgets it and the group's committed offset may
    /// advance. A no-op for `no_ack` consumers. Fails only with [`SdkError::Closed`].
    pub async fn ack(&self) -> Result<()> {
        if self.acker.no_ack {
            return Ok(());
        }
        self.send(Command::Ack {
            epoch: self.acker.epoch,
            consumer_id: self.acker.consumer_id,
            delivery_ids: vec![self.acker.delivery_id],
        })
        .await
    }

    /// Rejects the delivery: `requeue` delivers it again, otherwise it is dropped (or
    /// dead-lettered). A no-op for `no_ack` consumers. Fails only with [`SdkError::Closed`].
    pub async fn nack(&self, requeue: bool) -> Result<()> {
        if self.acker.no_ack {
            return Ok(());
        }
        self.send(Command::Nack {
            epoch: self.acker.epoch,
            consumer_id: self.acker.consumer_id,
            delivery_ids: vec![self.acker.delivery_id],
            requeue,
        })
        .await
    }

    async fn send(&self, cmd: Command) -> Result<()> {
        self.acker.tx.send(cmd).await.map_err(|_| SdkError::Closed)
    }
}

/// A subscription to a queue: a [`Stream`] of deliveries (also [`Consumer::next`]).
///
/// After a reconnect the consumer is re-subscribed automatically (same queue, group, prefetch,
/// `start: Committed`) and the stream goes on; deliveries not acknowledged before the drop are
/// redelivered. Deliveries still buffered in the consumer (not yet returned by the stream) when
/// the connection drops are discarded for the same reason, except for `no_ack` consumers.
/// The stream ends with an error item when the server cancels the consumer
/// ([`SdkError::Cancelled`], e.g. the queue was deleted) or refuses the re-subscription, and
/// ends (`None`) when the client is closed.
///
/// Deliveries are buffered without limit between the connection and the stream; the broker's
/// prefetch bounds them (prefetch 0 or `no_ack` consumers should keep up).
///
/// Dropping a consumer unsubscribes it (without waiting); [`Consumer::close`] waits for the
/// server's answer.
pub struct Consumer {
    client: Client,
    handle: u64,
    queue: String,
    rx: mpsc::UnboundedReceiver<ConsumerEvent>,
    partitions: Arc<Mutex<Vec<u16>>>,
    finished: bool,
    closed: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue)
            .field("partitions", &self.partitions())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    pub(crate) fn new(
        client: Client,
        handle: u64,
        queue: String,
        rx: mpsc::UnboundedReceiver<ConsumerEvent>,
        partitions: Arc<Mutex<Vec<u16>>>,
    ) -> Consumer {
        Consumer {
            client,
            handle,
            queue,
            rx,
            partitions,
            finished: false,
            closed: false,
        }
    }

    /// The queue consumed.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The partitions currently assigned to this consumer (all of them unless
    /// `exclusive_partitions`); updated when the group rebalances.
    pub fn partitions(&self) -> Vec<u16> {
        lock(&self.partitions).clone()
    }

    /// The next delivery; `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Result<Delivery>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Delivery>>> {
        if self.finished {
            return Poll::Ready(None);
        }
        loop {
            return match self.rx.poll_recv(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(ConsumerEvent::Delivery(d))) => {
                    if self.is_stale(&d) {
                        continue;
                    }
                    Poll::Ready(Some(Ok(d)))
                }
                Poll::Ready(Some(ConsumerEvent::End(e))) => {
                    self.finished = true;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(None) => {
                    self.finished = true;
                    Poll::Ready(None)
                }
            };
        }
    }

    /// A buffered delivery of a connection that is gone: it can no longer be acknowledged and
    /// the broker redelivers it, so handing it out would only make a duplicate. (Deliveries of
    /// `no_ack` consumers are never redelivered, so they are kept.)
    fn is_stale(&self, d: &Delivery) -> bool {
        let live = self.client.shared().live_epoch.load(Ordering::SeqCst);
        let stale = !d.acker.no_ack && d.acker.epoch != live;
        if stale {
            tracing::debug!(
                delivery_id = d.acker.delivery_id,
                "dropping a buffered delivery of a lost connection; the broker redelivers it"
            );
        }
        stale
    }

    /// Acknowledges several deliveries, in as few frames as possible. Like [`Delivery::ack`],
    /// resolves once queued.
    pub async fn ack_all(&self, deliveries: &[Delivery]) -> Result<()> {
        let mut groups: Vec<(&AckHandle, Vec<u64>)> = Vec::new();
        for d in deliveries.iter().filter(|d| !d.acker.no_ack) {
            let a = &d.acker;
            match groups
                .iter_mut()
                .find(|(g, _)| g.epoch == a.epoch && g.consumer_id == a.consumer_id)
            {
                Some((_, ids)) => ids.push(a.delivery_id),
                None => groups.push((a, vec![a.delivery_id])),
            }
        }
        for (a, delivery_ids) in groups {
            self.client
                .enqueue(Command::Ack {
                    epoch: a.epoch,
                    consumer_id: a.consumer_id,
                    delivery_ids,
                })
                .await?;
        }
        Ok(())
    }

    /// Changes the prefetch (0 = no limit); kept for re-subscriptions too.
    pub async fn set_prefetch(&self, prefetch: u32) -> Result<()> {
        if let Some(entry) = lock(&self.client.shared().consumers).get_mut(self.handle) {
            entry.subscribe.prefetch = prefetch;
        } else {
            return Err(SdkError::Closed);
        }
        let answer = self
            .client
            .call_with(|reply| Command::SetPrefetch {
                handle: self.handle,
                prefetch,
                reply,
            })
            .await?;
        match answer {
            Body::Ok => Ok(()),
            other => Err(SdkError::unexpected("Ok", &other)),
        }
    }

    /// Stops the consumer and waits for the server to confirm; deliveries not yet acknowledged
    /// are requeued by the broker.
    pub async fn close(mut self) -> Result<()> {
        self.closed = true;
        let entry = lock(&self.client.shared().consumers).remove(self.handle);
        let Some((epoch, consumer_id)) = entry.and_then(|e| e.current) else {
            return Ok(());
        };
        let body = Unsubscribe { consumer_id }.into();
        match self.client.call_in(body, Some(epoch)).await {
            Ok(Body::Ok) | Err(SdkError::ConnectionLost) => Ok(()),
            Ok(other) => Err(SdkError::unexpected("Ok", &other)),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        let entry = lock(&self.client.shared().consumers).remove(self.handle);
        if let Some((epoch, consumer_id)) = entry.and_then(|e| e.current) {
            let body = Unsubscribe { consumer_id }.into();
            let cmd = Command::OneWay {
                body,
                epoch: Some(epoch),
            };
            if self.client.shared().cmd_tx.try_send(cmd).is_err() {
                tracing::debug!(
                    consumer_id,
                    "could not queue Unsubscribe for a dropped consumer"
                );
            }
        }
    }
}

impl Stream for Consumer {
    type Item = Result<Delivery>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}
