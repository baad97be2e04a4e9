//! Junction's native protocol, through the Rust SDK.
//!
//! `--request-reply`: each producer declares an exclusive, server-named reply queue and sends
//! requests to the queue with `reply_to` naming it and a `correlation_id`; the consumers send
//! each request's body back to its `reply_to` queue with the same correlation id, then ack the
//! request. At most `--window` requests are outstanding per producer; the latency is the round
//! trip; every request and reply is confirmed; a reply whose correlation id does not match its
//! body counts as an error.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use junction_sdk::{
    Client, ClientOptions, Confirm, ConsumerOptions, Destination, Message, QueueOptions,
};
use tokio::sync::Semaphore;

use crate::measure::{report, Shared, Workload};

/// Options of the native run.
#[derive(Args, Clone)]
pub struct NativeArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:5680")]
    addr: String,
    /// Partitions of the queue.
    #[arg(long, default_value_t = 1)]
    partitions: u16,
    /// Request/reply through `reply_to` and `correlation_id` (see the module docs).
    #[arg(long)]
    request_reply: bool,
    #[command(flatten)]
    w: Workload,
}

impl NativeArgs {
    /// The shared workload options.
    pub fn workload(&self) -> &Workload {
        &self.w
    }
}

/// A publish (or batch) waiting for its confirm.
enum Inflight {
    One(junction_sdk::Confirm),
    Batch(tokio::task::JoinHandle<junction_sdk::Result<()>>),
}

impl Inflight {
    async fn wait(self) -> anyhow::Result<()> {
        match self {
            Inflight::One(c) => {
                c.await?;
            }
            Inflight::Batch(h) => h.await??,
        }
        Ok(())
    }
}

async fn connect(a: &NativeArgs, id: &str) -> anyhow::Result<Client> {
    let opts = ClientOptions::new(a.addr.clone())
        .credentials(a.w.user.clone(), a.w.password.clone())
        .client_id(id);
    Client::connect(opts)
        .await
        .with_context(|| format!("connecting to {}", a.addr))
}

/// One native run.
pub async fn run(a: NativeArgs) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let admin_client = connect(&a, "bench-admin").await?;
    let admin = admin_client.admin();
    admin
        .declare_queue(QueueOptions::new(w.queue.clone()).partitions(a.partitions))
        .await?;
    if !w.keep {
        admin.purge_queue(&w.queue).await?;
    }
    if a.request_reply {
        let r = request_reply(&a).await;
        admin_client.close().await.ok();
        return r;
    }

    let shared = Shared::new(w)?;

    let mut consumers = Vec::new();
    for i in 0..w.consumers {
        let c = connect(&a, &format!("bench-consumer-{i}")).await?;
        let mut cons = c
            .subscribe(ConsumerOptions::new(w.queue.clone()).prefetch(w.prefetch))
            .await?;
        let s = Arc::clone(&shared);
        consumers.push(tokio::spawn(async move {
            let _client = c; // keeps the connection for as long as the consumer runs
            let mut pending = Vec::with_capacity(256);
            while let Some(d) = cons.next().await {
                let Ok(d) = d else { break };
                s.record([&d.body[..]]);
                pending.push(d);
                if pending.len() >= 128 {
                    let _ = cons.ack_all(&pending).await;
                    pending.clear();
                }
            }
        }));
    }

    let mut producers = Vec::new();
    for pi in 0..w.producers {
        let c = connect(&a, &format!("bench-producer-{pi}")).await?;
        let s = Arc::clone(&shared);
        let w = w.clone();
        producers.push(tokio::spawn(async move {
            let p = c.producer().with_window(w.window);
            let dest = Destination::queue(w.queue.clone());
            let mut seq = 0u64;
            let mut confirms = VecDeque::new();
            let pacer = w.pacer();
            while !pacer.done(seq, &s) {
                let n = pacer.next_batch(seq, w.batch).await;
                if w.batch <= 1 {
                    let m = Message::new(s.body(w.size, pi as u64, seq));
                    confirms.push_back(Inflight::One(p.send_pipelined(&dest, m).await?));
                } else {
                    let msgs: Vec<Message> = (0..n as u64)
                        .map(|k| Message::new(s.body(w.size, pi as u64, seq + k)))
                        .collect();
                    let p2 = p.clone();
                    let d2 = dest.clone();
                    confirms.push_back(Inflight::Batch(tokio::spawn(async move {
                        p2.send_batch(&d2, msgs).await.map(|_| ())
                    })));
                }
                let n = if w.batch <= 1 { 1 } else { n as u64 };
                seq += n;
                s.sent.fetch_add(n, Ordering::Relaxed);
                while confirms.len() > w.window {
                    if let Some(c) = confirms.pop_front() {
                        c.wait().await?;
                    }
                }
            }
            for c in confirms {
                c.wait().await?;
            }
            anyhow::Ok(seq)
        }));
    }

    let o = shared.finish(producers, consumers).await?;
    admin_client.close().await.ok();
    report("native", "confirms", w, &shared, o)
}

/// The correlation id of request `seq` of `producer`.
fn correlation_id(producer: u64, seq: u64) -> String {
    format!("{producer}-{seq}")
}

/// Waits for the oldest confirms until at most `keep` are left.
async fn settle(confirms: &mut VecDeque<Confirm>, keep: usize) -> anyhow::Result<()> {
    while confirms.len() > keep {
        if let Some(c) = confirms.pop_front() {
            c.await?;
        }
    }
    Ok(())
}

/// The request/reply run (see the module docs).
async fn request_reply(a: &NativeArgs) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let shared = Shared::new(w)?;
    let mut responders = Vec::new();
    for i in 0..w.consumers {
        let c = connect(a, &format!("bench-responder-{i}")).await?;
        let cons = c
            .subscribe(ConsumerOptions::new(w.queue.clone()).prefetch(w.prefetch))
            .await?;
        let window = w.window;
        responders.push(tokio::spawn(async move {
            let p = c.producer().with_window(window);
            let mut cons = cons;
            let mut confirms = VecDeque::new();
            while let Some(d) = cons.next().await {
                let d = d?;
                let Some(reply_to) = d.properties.reply_to.clone() else {
                    bail!("a request without reply_to");
                };
                let mut reply = Message::new(d.body.clone());
                if let Some(id) = d.properties.correlation_id.clone() {
                    reply = reply.correlation_id(id);
                }
                confirms.push_back(
                    p.send_pipelined(&Destination::queue(reply_to), reply)
                        .await?,
                );
                cons.ack_all(std::slice::from_ref(&d)).await?;
                settle(&mut confirms, window).await?;
            }
            anyhow::Ok(())
        }));
    }

    let (mut requesters, mut reply_loops) = (Vec::new(), Vec::new());
    for pi in 0..w.producers as u64 {
        let c = connect(a, &format!("bench-requester-{pi}")).await?;
        let reply_queue = c
            .admin()
            .declare_queue(QueueOptions::new("").durable(false).exclusive(true))
            .await?
            .name;
        let mut replies = c
            .subscribe(
                ConsumerOptions::new(reply_queue.clone())
                    .prefetch(w.prefetch)
                    .no_ack(true),
            )
            .await?;
        let window = Arc::new(Semaphore::new(w.window.max(1)));
        let (sh, win) = (Arc::clone(&shared), Arc::clone(&window));
        reply_loops.push(tokio::spawn(async move {
            while let Some(d) = replies.next().await {
                let Ok(d) = d else { break };
                let expected =
                    crate::measure::parse(&d.body).map(|(p, seq, _)| correlation_id(p, seq));
                let got = d.properties.correlation_id.as_deref();
                if expected.is_none() || got != expected.as_ref().map(|e| e.as_bytes()) {
                    sh.errors.fetch_add(1, Ordering::Relaxed);
                }
                sh.record([&d.body[..]]);
                win.add_permits(1);
            }
        }));
        let (s, w) = (Arc::clone(&shared), w.clone());
        requesters.push(tokio::spawn(async move {
            let p = c.producer().with_window(w.window);
            let dest = Destination::queue(w.queue.clone());
            let mut confirms = VecDeque::new();
            let mut seq = 0u64;
            let pacer = w.pacer();
            while !pacer.done(seq, &s) {
                let n = pacer.next_batch(seq, w.batch).await as u64;
                for k in 0..n {
                    window.acquire().await?.forget();
                    let m = Message::new(s.body(w.size, pi, seq + k))
                        .reply_to(reply_queue.clone())
                        .correlation_id(correlation_id(pi, seq + k));
                    confirms.push_back(p.send_pipelined(&dest, m).await?);
                }
                seq += n;
                s.sent.fetch_add(n, Ordering::Relaxed);
                settle(&mut confirms, w.window).await?;
            }
            settle(&mut confirms, 0).await?;
            // The connection (and its reply queue) stays until the replies are in.
            s.wait_replies(&window, w.window.max(1) as u32).await;
            c.close().await.ok();
            anyhow::Ok(seq)
        }));
    }

    let o = shared.finish(requesters, responders).await?;
    for r in reply_loops {
        r.abort();
    }
    report("native", "confirms request/reply", w, &shared, o)
}
