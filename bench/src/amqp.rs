//! AMQP 0-9-1 through lapin: publishes to a queue through the default exchange, consumes it
//! with a prefetch. Works against any AMQP 0-9-1 broker (Junction, RabbitMQ).
//!
//! lapin can take a whole core on its own, so the generator batches and pipelines: `--batch`
//! publishes are handed to lapin together before it waits for their frames to be written, up to
//! `--window` publisher confirms are in flight per producer, and consumers ack with `multiple`
//! every `--ack-every` deliveries (and when the stream goes idle for a moment).

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
use lapin::{BasicProperties, Connection, ConnectionProperties, PublisherConfirm};

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
            if self.no_confirm { "" } else { "+confirms" },
            if self.no_ack { "+no-ack" } else { "+acks" }
        )
    }
}

async fn connect(a: &AmqpArgs) -> anyhow::Result<Connection> {
    Connection::connect(&a.uri(), ConnectionProperties::default())
        .await
        .with_context(|| format!("connecting to {}", a.addr))
}

/// One AMQP run.
pub async fn run(a: AmqpArgs) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let admin = connect(&a).await?;
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

    let shared = Shared::new(w)?;

    let mut consumers = Vec::new();
    let mut keep = Vec::new();
    for i in 0..w.consumers {
        let c = connect(&a).await?;
        let ch = c.create_channel().await?;
        ch.basic_qos(
            w.prefetch.min(u16::MAX as u32) as u16,
            BasicQosOptions::default(),
        )
        .await?;
        let mut cons = ch
            .basic_consume(
                w.queue.as_str().into(),
                format!("bench-consumer-{i}").as_str().into(),
                BasicConsumeOptions {
                    no_ack: a.no_ack,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
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
        let props = BasicProperties::default().with_delivery_mode(if a.transient { 1 } else { 2 });
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
