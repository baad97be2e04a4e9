//! [`Producer`]: publishing with confirms, pipelined, one-way or in batches.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use junction_native::{BatchMessage, Body, ErrorCode, Publish, PublishBatch};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::Sleep;

use crate::client::Client;
use crate::connection::Command;
use crate::error::{Result, SdkError};
use crate::message::{Destination, Message, SendReceipt};

/// Publishes messages. Get one from [`Client::producer`]; clones share the window.
///
/// - [`Producer::send`]: publish and wait for the broker's confirm (the message is stored).
/// - [`Producer::send_pipelined`]: publish and get the confirm as a separate future, so that
///   thousands of messages can be in flight; at most [`Producer::window`] confirms are
///   outstanding (further sends wait for a slot). Confirms arrive in publish order.
/// - [`Producer::send_oneway`]: publish without a confirm (only failures are reported, and only
///   to the log).
/// - [`Producer::send_batch`]: many messages in one frame, one confirm.
///
/// Ordered delivery: give messages the same [`Message::sharding_key`]; they go to the same
/// partition in publish order.
///
/// While the server has publishing paused (a `Flow` push), sends wait before queuing the
/// message (not counted in the request timeout); they go on when the server resumes or the
/// connection is replaced.
#[derive(Debug, Clone)]
pub struct Producer {
    client: Client,
    mandatory: bool,
    window: Arc<Semaphore>,
    window_size: usize,
}

/// The broker's confirm of one message sent with [`Producer::send_pipelined`]: resolves to
/// where it was stored, or to an error ([`SdkError::Returned`], [`SdkError::Server`],
/// [`SdkError::ConnectionLost`], [`SdkError::Timeout`] after the request timeout).
///
/// Dropping it does not cancel the publish; its window slot is released when the confirm
/// arrives either way.
#[derive(Debug)]
pub struct Confirm {
    rx: oneshot::Receiver<Result<Body>>,
    deadline: Pin<Box<Sleep>>,
    /// Whether the server has publishing paused: the deadline does not run out meanwhile (it
    /// holds the message and confirms it once the alarm clears).
    flow: tokio::sync::watch::Receiver<bool>,
    timeout: std::time::Duration,
}

impl Future for Confirm {
    type Output = Result<SendReceipt>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(answer) = Pin::new(&mut self.rx).poll(cx) {
            return Poll::Ready(match answer {
                Ok(Ok(body)) => receipt(body),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(SdkError::ConnectionLost),
            });
        }
        loop {
            match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) if *self.flow.borrow() => {
                    let next = tokio::time::Instant::now() + self.timeout;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(()) => return Poll::Ready(Err(SdkError::Timeout)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn receipt(body: Body) -> Result<SendReceipt> {
    match body {
        Body::Published(p) => Ok(SendReceipt {
            routes: p.results,
            duplicate: p.duplicate,
        }),
        Body::Returned(r) => Err(SdkError::Returned {
            code: ErrorCode::from_code(r.reply_code),
            text: r.reply_text,
        }),
        other => Err(SdkError::unexpected("Published", &other)),
    }
}

/// A producer whose messages the broker stores at most once: each send carries this
/// producer's id and the next sequence number, and a send the broker has already stored (a
/// retry after a lost confirm, a reconnect, or a broker restart) is not stored again: its
/// receipt has the original's positions and [`SendReceipt::duplicate`] set. Get one from
/// [`Client::idempotent_producer`](crate::Client::idempotent_producer).
///
/// `send` retries by itself when the connection is lost or the confirm times out (up to
/// [`IdempotentProducer::with_retries`] times, default 5), with the same sequence. A process
/// that restarts continues its sequence from where it left off (persist
/// [`IdempotentProducer::next_sequence`], or restart from a value known to be higher), and may
/// re-send a message it is unsure of with [`IdempotentProducer::send_sequence`].
///
/// Messages without a message id get `<producer id>-<sequence>`, so consumers can recognise a
/// duplicate by id too (see `Deduplicator`).
#[derive(Debug, Clone)]
pub struct IdempotentProducer {
    inner: Producer,
    id: Arc<str>,
    next: Arc<std::sync::atomic::AtomicU64>,
    retries: u32,
}

impl IdempotentProducer {
    pub(crate) fn new(inner: Producer, id: &str, next: u64) -> IdempotentProducer {
        IdempotentProducer {
            inner,
            id: Arc::from(id),
            next: Arc::new(std::sync::atomic::AtomicU64::new(next.max(1))),
            retries: 5,
        }
    }

    /// Sets how many times a send is retried after a lost connection or a timeout.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The producer id.
    pub fn producer_id(&self) -> &str {
        &self.id
    }

    /// The sequence number the next [`IdempotentProducer::send`] will use.
    pub fn next_sequence(&self) -> u64 {
        self.next.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sends with the next sequence number and waits until the broker has stored it (once).
    pub async fn send(&self, dest: &Destination, msg: Message) -> Result<SendReceipt> {
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.send_sequence(dest, msg, seq).await
    }

    /// Sends with sequence number `seq` (a message sent before with it is not stored again).
    pub async fn send_sequence(
        &self,
        dest: &Destination,
        mut msg: Message,
        seq: u64,
    ) -> Result<SendReceipt> {
        if msg.properties.message_id.is_none() {
            msg.properties.message_id = Some(format!("{}-{seq}", self.id));
        }
        let client = &self.inner.client;
        let mut attempt = 0;
        loop {
            let r = match self
                .inner
                .send_as(dest, msg.clone(), Some((self.id.to_string(), seq)))
                .await
            {
                Ok(confirm) => confirm.await,
                Err(e) => Err(e),
            };
            match r {
                Err(SdkError::ConnectionLost | SdkError::Timeout) if attempt < self.retries => {
                    attempt += 1;
                    let wait = client.shared().opts.request_timeout;
                    let _ = client.wait_connected(wait).await;
                }
                r => return r,
            }
        }
    }
}

impl Producer {
    pub(crate) fn new(client: Client, window: usize) -> Producer {
        Producer {
            client,
            mandatory: false,
            window: Arc::new(Semaphore::new(window)),
            window_size: window,
        }
    }

    /// Sets `mandatory`: a message no queue takes fails with [`SdkError::Returned`] instead of
    /// being dropped (for batches, see [`Producer::send_batch`]).
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// Sets the most confirms in flight (at least 1). This producer (and its later clones) gets
    /// a window of its own.
    pub fn with_window(mut self, window: usize) -> Self {
        let window = window.max(1);
        self.window = Arc::new(Semaphore::new(window));
        self.window_size = window;
        self
    }

    /// The most confirms in flight.
    pub fn window(&self) -> usize {
        self.window_size
    }

    /// Confirms in flight right now.
    pub fn in_flight(&self) -> usize {
        self.window_size - self.window.available_permits()
    }

    fn publish(&self, dest: &Destination, msg: Message, confirm: bool) -> Publish {
        Publish {
            exchange: dest.exchange.clone(),
            routing_key: dest.routing_key.clone(),
            mandatory: self.mandatory,
            confirm,
            properties: msg.properties,
            body: msg.body,
            producer: None,
        }
    }

    /// Publishes and waits until the broker has stored the message.
    pub async fn send(&self, dest: &Destination, msg: Message) -> Result<SendReceipt> {
        self.send_pipelined(dest, msg).await?.await
    }

    /// Publishes without waiting for the confirm: resolves as soon as the message is queued
    /// for the connection (after waiting for a window slot, and while the server has
    /// publishing paused), returning its [`Confirm`]. The request timeout starts then.
    ///
    /// ```no_run
    /// # async fn demo(producer: junction_sdk::Producer) -> junction_sdk::Result<()> {
    /// use junction_sdk::{Destination, Message};
    ///
    /// let dest = Destination::queue("events");
    /// let mut confirms = Vec::new();
    /// for i in 0..10_000 {
    ///     confirms.push(producer.send_pipelined(&dest, Message::new(format!("event {i}"))).await?);
    /// }
    /// for confirm in confirms {
    ///     confirm.await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send_pipelined(&self, dest: &Destination, msg: Message) -> Result<Confirm> {
        self.send_as(dest, msg, None).await
    }

    /// [`Producer::send_pipelined`] as an idempotent producer's message `producer`.
    pub(crate) async fn send_as(
        &self,
        dest: &Destination,
        msg: Message,
        producer: Option<(String, u64)>,
    ) -> Result<Confirm> {
        let permit = self
            .window
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SdkError::Closed)?;
        self.client.wait_flow().await?;
        let deadline = Box::pin(tokio::time::sleep(
            self.client.shared().opts.request_timeout,
        ));
        let (tx, rx) = oneshot::channel();
        let mut publish = self.publish(dest, msg, true);
        publish.producer = producer;
        let cmd = Command::Request {
            body: publish.into(),
            reply: tx,
            epoch: None,
            permit: Some(permit),
        };
        self.client.enqueue(cmd).await?;
        let shared = self.client.shared();
        Ok(Confirm {
            rx,
            deadline,
            flow: shared.flow_blocked.subscribe(),
            timeout: shared.opts.request_timeout,
        })
    }

    /// Publishes without a confirm; resolves once the message is queued for the connection.
    /// The broker reports failures only to the log; a message queued when the connection drops
    /// may be lost.
    pub async fn send_oneway(&self, dest: &Destination, msg: Message) -> Result<()> {
        self.client.wait_flow().await?;
        let cmd = Command::OneWay {
            body: self.publish(dest, msg, false).into(),
            epoch: None,
        };
        self.client.enqueue(cmd).await
    }

    /// Publishes many messages to one destination in one frame and waits for the broker to
    /// store them all. Returns one receipt per message, in order; a message that matched no
    /// queue has an empty receipt ([`SendReceipt::is_routed`] is false), also when the producer
    /// is `mandatory`. The whole batch must fit in one frame.
    pub async fn send_batch(
        &self,
        dest: &Destination,
        messages: Vec<Message>,
    ) -> Result<Vec<SendReceipt>> {
        let count = messages.len();
        if count == 0 {
            return Ok(Vec::new());
        }
        self.client.wait_flow().await?;
        let batch = PublishBatch {
            exchange: dest.exchange.clone(),
            routing_key: dest.routing_key.clone(),
            mandatory: self.mandatory,
            messages: messages
                .into_iter()
                .map(|m| BatchMessage {
                    routing_key: None,
                    properties: m.properties,
                    body: m.body,
                })
                .collect(),
        };
        match self.client.call(batch.into()).await? {
            Body::PublishedBatch(p) if p.results.len() == count => Ok(p
                .results
                .into_iter()
                .map(|routes| SendReceipt {
                    routes,
                    duplicate: false,
                })
                .collect()),
            Body::PublishedBatch(p) => Err(SdkError::Protocol(format!(
                "{} results for a batch of {count}",
                p.results.len()
            ))),
            other => Err(SdkError::unexpected("PublishedBatch", &other)),
        }
    }

    /// The client this producer publishes through.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
