//! AMQP 0-9-1 through lapin: publishes to a queue through the default exchange, consumes it
//! with a prefetch. Works against any AMQP 0-9-1 broker (Junction, RabbitMQ).
//!
//! lapin can take a whole core on its own, so the generator batches and pipelines: `--batch`
//! publishes are handed to lapin together before it waits for their frames to be written, up to
//! `--window` publisher confirms are in flight per producer, and consumers ack with `multiple`
//! every `--ack-every` deliveries (and when the stream goes idle for a moment).
//!
//! `--request-reply`: each producer declares an exclusive, server-named reply queue and
//! publishes requests to the queue with `reply-to` set to it and a `correlation-id`; the
//! consumers answer each request with its body and correlation id, published to its
//! `reply-to` through the default exchange. At most `--window` requests are outstanding per
//! producer; the latency is the round trip. Requests and replies go without publisher
//! confirms (the reply is the acknowledgement); a reply whose correlation id does not match
//! its body counts as an error.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Args;
use futures_util::future::join_all;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, PublisherConfirm,
};
use tokio::sync::Semaphore;

use crate::measure::{report, Shared, Workload};

/// Options of the AMQP run.
#[derive(Args, Clone)]
pub struct AmqpArgs {
    /// Broker address (host:port).
    #[arg(long, default_value = "127.0.0.1:5672")]
    addr: String,
    /// Virtual host.
    #[arg(long, default_value = "/")]
    vhost: String,
    /// Transient messages (delivery_mode 1) on a non-durable queue; the default is persistent
    /// messages (delivery_mode 2) on a durable queue.
    #[arg(long)]
    transient: bool,
    /// Publish without publisher confirms (confirm.select is not sent).
    #[arg(long)]
    no_confirm: bool,
    /// Consume with no-ack (automatic acknowledgement) instead of manual acks.
    #[arg(long)]
    no_ack: bool,
    /// Manual acks: one basic.ack with multiple=true every this many deliveries (capped at half
    /// the prefetch so the broker never waits for an ack).
    #[arg(long, default_value_t = 100)]
    ack_every: u64,
    /// Request/reply: requests carry `reply-to` and `correlation-id`, consumers answer them
    /// (see the module docs).
    #[arg(long)]
    request_reply: bool,
    #[command(flatten)]
    w: Workload,
}

impl AmqpArgs {
    /// The shared workload options.
    pub fn workload(&self) -> &Workload {
        &self.w
    }

    fn uri(&self) -> String {
        let vhost = if self.vhost == "/" {
            "%2f".to_string()
        } else {
            self.vhost.clone()
        };
        format!(
            "amqp://{}:{}@{}/{}",
            self.w.user, self.w.password, self.addr, vhost
        )
    }

    fn mode(&self) -> String {
        format!(
            "{}{}{}",
            if self.transient {
                "transient"
            } else {
                "persistent"
            },
            if self.request_reply {
                "+request/reply"
            } else if self.no_confirm {
                ""
            } else {
                "+confirms"
            },
            if self.no_ack { "+no-ack" } else { "+acks" }
        )
    }

    fn delivery_mode(&self) -> u8 {
        if self.transient {
            1
        } else {
            2
        }
    }
}

async fn connect(a: &AmqpArgs) -> anyhow::Result<Connection> {
    Connection::connect(&a.uri(), ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", a.addr))
}

/// Declares the run's queue (durable unless transient) and empties it.
async fn declare(a: &AmqpArgs) -> anyhow::Result<Connection> {
    let w = &a.w;
    let admin = connect(a).await?;
    let ch = admin.create_channel().await?;
    ch.queue_declare(
        w.queue.as_str().into(),
        QueueDeclareOptions {
            durable: !a.transient,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .context("queue.declare (a queue of the same name and other durability exists?)")?;
    ch.queue_purge(w.queue.as_str().into(), QueuePurgeOptions::default())
        .await?;
    Ok(admin)
}

/// A consumer of the run's queue on a connection of its own, with the prefetch.
async fn consumer(a: &AmqpArgs, i: usize) -> anyhow::Result<(Connection, Channel, Consumer)> {
    let c = connect(a).await?;
    let ch = c.create_channel().await?;
    ch.basic_qos(
        a.w.prefetch.min(u16::MAX as u32) as u16,
        BasicQosOptions::default(),
    )
    .await?;
    let cons = ch
        .basic_consume(
            a.w.queue.as_str().into(),
            format!("bench-consumer-{i}").as_str().into(),
            BasicConsumeOptions {
                no_ack: a.no_ack,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((c, ch, cons))
}

/// One AMQP run.
pub async fn run(a: AmqpArgs) -> anyhow::Result<serde_json::Value> {
    if a.request_reply {
        return request_reply(&a).await;
    }
    let w = &a.w;
    let admin = declare(&a).await?;
    let shared = Shared::new(w)?;

    let mut consumers = Vec::new();
    let mut keep = Vec::new();
    for i in 0..w.consumers {
        let (c, ch, mut cons) = consumer(&a, i).await?;
        keep.push(c);
        let s = Arc::clone(&shared);
        let manual = !a.no_ack;
        let ack_every = a.ack_every.min(u64::from(w.prefetch / 2)).max(1);
        consumers.push(tokio::spawn(async move {
            let multiple = BasicAckOptions { multiple: true };
            let (mut last_tag, mut unacked) = (0, 0u64);
            loop {
                let next = if manual && unacked > 0 {
                    match tokio::time::timeout(Duration::from_millis(5), cons.next()).await {
                        Ok(n) => n,
                        Err(_) => {
                            // Idle: ack what is pending so the tail is not held back.
                            ch.basic_ack(last_tag, multiple).await?;
                            unacked = 0;
                            continue;
                        }
                    }
                } else {
                    cons.next().await
                };
                let Some(d) = next else { break };
                let d = d?;
                s.record([&d.data[..]]);
                if manual {
                    last_tag = d.delivery_tag;
                    unacked += 1;
                    if unacked >= ack_every {
                        ch.basic_ack(last_tag, multiple).await?;
                        unacked = 0;
                    }
                }
            }
            anyhow::Ok(())
        }));
    }

    let mut producers = Vec::new();
    for pi in 0..w.producers {
        let c = connect(&a).await?;
        let ch = c.create_channel().await?;
        let confirms = !a.no_confirm;
        if confirms {
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
        }
        let props = BasicProperties::default().with_delivery_mode(a.delivery_mode());
        let s = Arc::clone(&shared);
        let w = w.clone();
        producers.push(tokio::spawn(async move {
            let _conn = c; // keeps the connection for as long as the producer runs
            let mut seq = 0u64;
            let mut inflight: VecDeque<PublisherConfirm> = VecDeque::new();
            let pacer = w.pacer();
            while !pacer.done(seq, &s) {
                let n = pacer.next_batch(seq, w.batch).await;
                let bodies: Vec<Bytes> = (0..n as u64)
                    .map(|k| s.body(w.size, pi as u64, seq + k))
                    .collect();
                // All of the batch's frames are queued before lapin is waited on.
                let sends = bodies.iter().map(|b| {
                    ch.basic_publish(
                        "".into(),
                        w.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        b,
                        props.clone(),
                    )
                });
                for r in join_all(sends).await {
                    let c = r?;
                    if confirms {
                        inflight.push_back(c);
                    }
                }
                seq += n as u64;
                s.sent.fetch_add(n as u64, Ordering::Relaxed);
                while inflight.len() > w.window {
                    if let Some(c) = inflight.pop_front() {
                        if c.await?.is_nack() {
                            bail!("the broker nacked a publish");
                        }
                    }
                }
            }
            for c in inflight {
                if c.await?.is_nack() {
                    bail!("the broker nacked a publish");
                }
            }
            anyhow::Ok(seq)
        }));
    }

    let o = shared.finish(producers, consumers).await?;
    for c in keep {
        c.close(200, "bye".into()).await.ok();
    }
    admin.close(200, "bye".into()).await.ok();
    report("amqp", &a.mode(), w, &shared, o)
}

/// The correlation id of request `seq` of `producer`.
fn correlation_id(producer: u64, seq: u64) -> String {
    format!("{producer}-{seq}")
}

/// The request/reply run (see the module docs).
async fn request_reply(a: &AmqpArgs) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let admin = declare(a).await?;
    let shared = Shared::new(w)?;
    let mut keep = Vec::new();

    let mut responders = Vec::new();
    for i in 0..w.consumers {
        let (c, ch, cons) = consumer(a, i).await?;
        keep.push(c);
        let (manual, mode) = (!a.no_ack, a.delivery_mode());
        responders.push(tokio::spawn(respond(ch, cons, manual, mode)));
    }

    let (mut requesters, mut reply_loops) = (Vec::new(), Vec::new());
    for pi in 0..w.producers as u64 {
        let c = connect(a).await?;
        let ch = c.create_channel().await?;
        let reply_queue = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?
            .name()
            .clone();
        let replies = ch
            .basic_consume(
                reply_queue.clone(),
                "bench-replies".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        keep.push(c);
        let window = Arc::new(Semaphore::new(w.window.max(1)));
        let (sh, win) = (Arc::clone(&shared), Arc::clone(&window));
        reply_loops.push(tokio::spawn(record_replies(replies, sh, win)));
        let props = BasicProperties::default()
            .with_delivery_mode(a.delivery_mode())
            .with_reply_to(reply_queue);
        let (s, w) = (Arc::clone(&shared), w.clone());
        requesters.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let pacer = w.pacer();
            while !pacer.done(seq, &s) {
                let n = pacer.next_batch(seq, w.batch).await as u64;
                for k in 0..n {
                    window.acquire().await?.forget();
                    let body = s.body(w.size, pi, seq + k);
                    let p = props
                        .clone()
                        .with_correlation_id(correlation_id(pi, seq + k).into());
                    ch.basic_publish(
                        "".into(),
                        w.queue.as_str().into(),
                        BasicPublishOptions::default(),
                        &body,
                        p,
                    )
                    .await?;
                }
                seq += n;
                s.sent.fetch_add(n, Ordering::Relaxed);
            }
            anyhow::Ok(seq)
        }));
    }

    let o = shared.finish(requesters, responders).await?;
    for r in reply_loops {
        r.abort();
    }
    for c in keep {
        c.close(200, "bye".into()).await.ok();
    }
    admin.close(200, "bye".into()).await.ok();
    report("amqp", &a.mode(), w, &shared, o)
}

/// A responder: publishes each request's body back to its `reply-to` with its
/// `correlation-id`, then acks the request (when acks are manual).
async fn respond(ch: Channel, mut cons: Consumer, manual: bool, mode: u8) -> anyhow::Result<()> {
    while let Some(d) = cons.next().await {
        let d = d?;
        let Some(reply_to) = d.properties.reply_to().clone() else {
            bail!("a request without reply-to");
        };
        let mut props = BasicProperties::default().with_delivery_mode(mode);
        if let Some(id) = d.properties.correlation_id() {
            props = props.with_correlation_id(id.clone());
        }
        ch.basic_publish(
            "".into(),
            reply_to,
            BasicPublishOptions::default(),
            &d.data,
            props,
        )
        .await?;
        if manual {
            ch.basic_ack(d.delivery_tag, BasicAckOptions::default())
                .await?;
        }
    }
    Ok(())
}

/// A requester's reply consumer: records each reply (the round trip), checks its correlation
/// id against its body and frees its window slot.
async fn record_replies(
    mut replies: Consumer,
    shared: Arc<Shared>,
    window: Arc<Semaphore>,
) -> anyhow::Result<()> {
    while let Some(d) = replies.next().await {
        let d = d?;
        let expected = crate::measure::parse(&d.data).map(|(p, seq, _)| correlation_id(p, seq));
        let got = d.properties.correlation_id().as_ref().map(|c| c.as_str());
        if expected.is_none() || got != expected.as_deref() {
            shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        shared.record([&d.data[..]]);
        window.add_permits(1);
    }
    Ok(())
}
