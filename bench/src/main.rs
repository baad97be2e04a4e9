//! `junction-bench`: publishes and consumes at the same time and reports rates, end-to-end
//! latency percentiles and lost or duplicated messages.
//!
//! ```text
//! junction-bench native --size 100 --count 2000000 --producers 2 --consumers 2 --batch 100
//! junction-bench native --size 100 --rate 10000 --duration 20        # latency at a fixed rate
//! ```
//!
//! Every body starts with the producer id, a sequence number and the send time (µs since the
//! run started, one clock for the whole process), so loss, duplicates and latency are measured
//! on the messages themselves.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, QueueOptions};

/// The generator shares the machine with the broker: keep its own allocation cost low.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "junction-bench",
    version,
    about = "Load generator for Junction"
)]
struct Cli {
    #[command(subcommand)]
    protocol: Protocol,
}

#[derive(Subcommand)]
enum Protocol {
    /// Junction's native protocol, through the Rust SDK.
    Native(Workload),
}

#[derive(Args, Clone)]
struct Workload {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:5680")]
    addr: String,
    /// User.
    #[arg(long, default_value = "guest")]
    user: String,
    /// Password.
    #[arg(long, default_value = "guest")]
    password: String,
    /// Queue to use (declared, purged first).
    #[arg(long, default_value = "bench")]
    queue: String,
    /// Partitions of the queue.
    #[arg(long, default_value_t = 1)]
    partitions: u16,
    /// Message body size in bytes (at least 24).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// Messages to send in all (ignored with --duration).
    #[arg(long, default_value_t = 1_000_000)]
    count: u64,
    /// Send for this many seconds instead of a count.
    #[arg(long)]
    duration: Option<u64>,
    /// Total publish rate limit, messages/s (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer connections.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Messages per publish frame (1 = single publishes, pipelined).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Unconfirmed publishes (or batches) in flight per producer.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 2000)]
    prefetch: u32,
    /// Hard deadline for the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    deadline: u64,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

struct Shared {
    start: Instant,
    sent: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    stop_sending: AtomicBool,
    state: Mutex<Seen>,
}

/// What consumers have seen: a bit per (producer, sequence), and the latency histogram.
struct Seen {
    bits: Vec<Vec<u64>>,
    latency: Histogram<u64>,
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

fn now_us(s: &Shared) -> u64 {
    s.start.elapsed().as_micros() as u64
}

fn body(size: usize, producer: u64, seq: u64, sent_us: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_u64_le(producer);
    b.put_u64_le(seq);
    b.put_u64_le(sent_us);
    b.resize(size, 0xAB);
    b.freeze()
}

fn parse(b: &[u8]) -> Option<(u64, u64, u64)> {
    let f = |i: usize| {
        b.get(i..i + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    };
    Some((f(0)?, f(8)?, f(16)?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Protocol::Native(w) = Cli::parse().protocol;
    if w.size < 24 {
        bail!("--size must be at least 24 (producer id, sequence and timestamp)");
    }
    let deadline = Duration::from_secs(w.deadline);
    match tokio::time::timeout(deadline, run(w.clone())).await {
        Ok(r) => r,
        Err(_) => bail!("the run passed its {}s deadline", w.deadline),
    }
}

async fn connect(w: &Workload, id: &str) -> anyhow::Result<Client> {
    let opts = ClientOptions::new(w.addr.clone())
        .credentials(w.user.clone(), w.password.clone())
        .client_id(id);
    Client::connect(opts)
        .await
        .with_context(|| format!("connecting to {}", w.addr))
}

async fn run(w: Workload) -> anyhow::Result<()> {
    let admin_client = connect(&w, "bench-admin").await?;
    let admin = admin_client.admin();
    admin
        .declare_queue(QueueOptions::new(w.queue.clone()).partitions(w.partitions))
        .await?;
    admin.purge_queue(&w.queue).await?;

    let shared = Arc::new(Shared {
        start: Instant::now(),
        sent: AtomicU64::new(0),
        received: AtomicU64::new(0),
        duplicates: AtomicU64::new(0),
        stop_sending: AtomicBool::new(false),
        state: Mutex::new(Seen {
            bits: vec![Vec::new(); w.producers],
            latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        }),
    });

    let mut consumers = Vec::new();
    for i in 0..w.consumers {
        let c = connect(&w, &format!("bench-consumer-{i}")).await?;
        let mut cons = c
            .subscribe(ConsumerOptions::new(w.queue.clone()).prefetch(w.prefetch))
            .await?;
        let s = Arc::clone(&shared);
        consumers.push(tokio::spawn(async move {
            let _client = c; // keeps the connection for as long as the consumer runs
            let mut pending = Vec::with_capacity(256);
            while let Some(d) = cons.next().await {
                let Ok(d) = d else { break };
                if let Some((p, seq, sent)) = parse(&d.body) {
                    let lat = now_us(&s).saturating_sub(sent).max(1);
                    let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = st.latency.record(lat);
                    if let Some(bits) = st.bits.get_mut(p as usize) {
                        let (word, bit) = ((seq / 64) as usize, seq % 64);
                        if bits.len() <= word {
                            bits.resize(word + 1, 0);
                        }
                        if bits[word] & (1 << bit) != 0 {
                            s.duplicates.fetch_add(1, Ordering::Relaxed);
                        }
                        bits[word] |= 1 << bit;
                    }
                }
                s.received.fetch_add(1, Ordering::Relaxed);
                pending.push(d);
                if pending.len() >= 128 {
                    let _ = cons.ack_all(&pending).await;
                    pending.clear();
                }
            }
        }));
    }

    let per_producer_rate = if w.rate > 0 {
        (w.rate as f64 / w.producers as f64).max(1.0)
    } else {
        0.0
    };
    let per_producer_count = w.count / w.producers as u64;
    let mut producers = Vec::new();
    for pi in 0..w.producers {
        let c = connect(&w, &format!("bench-producer-{pi}")).await?;
        let s = Arc::clone(&shared);
        let w = w.clone();
        producers.push(tokio::spawn(async move {
            let p = c.producer().with_window(w.window);
            let dest = Destination::queue(w.queue.clone());
            let mut seq = 0u64;
            let mut confirms = std::collections::VecDeque::new();
            let t0 = Instant::now();
            loop {
                let done = match w.duration {
                    Some(d) => t0.elapsed() >= Duration::from_secs(d),
                    None => seq >= per_producer_count,
                };
                if done || s.stop_sending.load(Ordering::Relaxed) {
                    break;
                }
                if per_producer_rate > 0.0 {
                    let due = t0 + Duration::from_secs_f64(seq as f64 / per_producer_rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let n = w.batch.max(1);
                if n == 1 {
                    let m = Message::new(body(w.size, pi as u64, seq, now_us(&s)));
                    confirms.push_back(Inflight::One(p.send_pipelined(&dest, m).await?));
                    seq += 1;
                } else {
                    let msgs: Vec<Message> = (0..n as u64)
                        .map(|k| Message::new(body(w.size, pi as u64, seq + k, now_us(&s))))
                        .collect();
                    seq += n as u64;
                    let p2 = p.clone();
                    let d2 = dest.clone();
                    confirms.push_back(Inflight::Batch(tokio::spawn(async move {
                        p2.send_batch(&d2, msgs).await.map(|_| ())
                    })));
                }
                s.sent.fetch_add(n as u64, Ordering::Relaxed);
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

    // Progress line while it runs.
    let s2 = Arc::clone(&shared);
    let progress = tokio::spawn(async move {
        let (mut ls, mut lr) = (0, 0);
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (sn, rc) = (
                s2.sent.load(Ordering::Relaxed),
                s2.received.load(Ordering::Relaxed),
            );
            eprintln!(
                "{:>6.1}s  sent {:>10} ({:>8}/s)  received {:>10} ({:>8}/s)",
                s2.start.elapsed().as_secs_f64(),
                sn,
                sn - ls,
                rc,
                rc - lr
            );
            (ls, lr) = (sn, rc);
        }
    });

    let mut total_sent = 0;
    for p in producers {
        total_sent += p.await??;
    }
    let publish_elapsed = shared.start.elapsed();
    // Wait for everything to arrive (bounded: 30 s without progress ends the wait).
    let mut last = (Instant::now(), shared.received.load(Ordering::Relaxed));
    while shared.received.load(Ordering::Relaxed) < total_sent {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = shared.received.load(Ordering::Relaxed);
        if r != last.1 {
            last = (Instant::now(), r);
        } else if last.0.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let elapsed = shared.start.elapsed();
    progress.abort();
    let received = shared.received.load(Ordering::Relaxed);
    for c in consumers {
        c.abort();
        let _ = c.await;
    }
    let (lost, h) = {
        let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let got: u64 = st
            .bits
            .iter()
            .map(|v| v.iter().map(|w| u64::from(w.count_ones())).sum::<u64>())
            .sum();
        (total_sent.saturating_sub(got), st.latency.clone())
    };
    let result = serde_json::json!({
        "protocol": "native",
        "size": w.size,
        "sent": total_sent,
        "received": received,
        "lost": lost,
        "duplicates": shared.duplicates.load(Ordering::Relaxed),
        "publish_rate": total_sent as f64 / publish_elapsed.as_secs_f64(),
        "end_to_end_rate": received as f64 / elapsed.as_secs_f64(),
        "latency_us": {
            "p50": h.value_at_quantile(0.50),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
            "samples": h.len(),
        }
    });
    if w.json {
        println!("{result}");
    } else {
        println!(
            "native size={}B sent={} received={} lost={} dup={}  publish {:.0}/s  end-to-end {:.0}/s  latency p50={}µs p99={}µs p99.9={}µs max={}µs",
            w.size,
            total_sent,
            received,
            lost,
            result["duplicates"],
            result["publish_rate"].as_f64().unwrap_or(0.0),
            result["end_to_end_rate"].as_f64().unwrap_or(0.0),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
    admin_client.close().await.ok();
    if lost > 0 {
        bail!("{lost} messages were lost");
    }
    Ok(())
}
