//! Junction's native protocol, through the Rust SDK.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, QueueOptions};

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
