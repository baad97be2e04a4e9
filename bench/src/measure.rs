//! What every protocol's run shares: the workload options, the message body layout, the
//! consumer-side bookkeeping (loss, duplicates, latency histogram), pacing, progress and the
//! final report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Args;
use hdrhistogram::Histogram;

/// Workload options common to every protocol.
#[derive(Args, Clone)]
pub struct Workload {
    /// User.
    #[arg(long, default_value = "guest")]
    pub user: String,
    /// Password.
    #[arg(long, default_value = "guest")]
    pub password: String,
    /// Queue to use (declared and emptied first, unless `--keep`).
    #[arg(long, default_value = "bench")]
    pub queue: String,
    /// Keep what the queue holds (do not purge it first): runs that add to a backlog.
    #[arg(long)]
    pub keep: bool,
    /// Message body size in bytes (at least 24 when consumed: the body carries the producer,
    /// its sequence number and the send time; a publish-only run may use less).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Messages to send in all (ignored with --duration).
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Send for this many seconds instead of a count.
    #[arg(long)]
    pub duration: Option<u64>,
    /// Total publish rate limit, messages/s (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Producer connections.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Messages per publish batch (1 = single publishes, pipelined).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Unconfirmed publishes (native: or batches) in flight per producer.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 2000)]
    pub prefetch: u32,
    /// Hard deadline for the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    pub deadline: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

impl Workload {
    /// Messages each producer sends when the run is count-bound.
    pub fn per_producer_count(&self) -> u64 {
        self.count / self.producers.max(1) as u64
    }

    /// A pacer for one producer (its share of `--rate` and of the count or duration).
    pub fn pacer(&self) -> Pacer {
        let rate = if self.rate > 0 {
            (self.rate as f64 / self.producers.max(1) as f64).max(1.0)
        } else {
            0.0
        };
        Pacer {
            t0: Instant::now(),
            rate,
            duration: self.duration.map(Duration::from_secs),
            count: self.per_producer_count(),
        }
    }
}

/// Decides when a producer stops, and holds it to its rate.
pub struct Pacer {
    t0: Instant,
    rate: f64,
    duration: Option<Duration>,
    count: u64,
}

impl Pacer {
    /// Whether a producer that has sent `seq` messages is done.
    pub fn done(&self, seq: u64, shared: &Shared) -> bool {
        let over = match self.duration {
            Some(d) => self.t0.elapsed() >= d,
            None => seq >= self.count,
        };
        over || shared.stop_sending.load(Ordering::Relaxed)
    }

    /// How many of the next `want` messages may go now (at least 1, after waiting for the first
    /// one's due time when rate-limited), without passing the count.
    pub async fn next_batch(&self, seq: u64, want: usize) -> usize {
        let mut n = want.max(1) as u64;
        if self.duration.is_none() {
            n = n.min(self.count.saturating_sub(seq)).max(1);
        }
        if self.rate > 0.0 {
            let due = self.t0 + Duration::from_secs_f64(seq as f64 / self.rate);
            tokio::time::sleep_until(due.into()).await;
            // Only as many as are due by now: a rate-limited run stays evenly spaced.
            let due_now = (self.t0.elapsed().as_secs_f64() * self.rate) as u64;
            n = n.min(due_now.saturating_sub(seq).max(1));
        }
        n as usize
    }
}

/// Counters and the consumers' bookkeeping, shared by every task of a run.
pub struct Shared {
    /// The run's clock: send times in bodies are µs since this instant.
    pub start: Instant,
    /// Messages published so far.
    pub sent: AtomicU64,
    /// Deliveries so far (duplicates included).
    pub received: AtomicU64,
    /// Deliveries of a (producer, sequence) already seen.
    pub duplicates: AtomicU64,
    /// Asks producers to stop early.
    pub stop_sending: AtomicBool,
    state: Mutex<Seen>,
}

/// What consumers have seen: a bit per (producer, sequence), and the latency histogram.
struct Seen {
    bits: Vec<Vec<u64>>,
    latency: Histogram<u64>,
}

impl Shared {
    /// State for a run with `producers` producers.
    pub fn new(producers: usize) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Shared {
            start: Instant::now(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            stop_sending: AtomicBool::new(false),
            state: Mutex::new(Seen {
                bits: vec![Vec::new(); producers],
                latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            }),
        }))
    }

    /// µs since the run started.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// A body for message `seq` of `producer`, stamped now.
    pub fn body(&self, size: usize, producer: u64, seq: u64) -> Bytes {
        body(size, producer, seq, self.now_us())
    }

    /// Records deliveries: latency, the (producer, sequence) bit and duplicates.
    pub fn record<'a>(&self, bodies: impl IntoIterator<Item = &'a [u8]>) {
        let now = self.now_us();
        let mut n = 0;
        let mut dups = 0;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for b in bodies {
            n += 1;
            let Some((p, seq, sent)) = parse(b) else {
                continue;
            };
            let _ = st.latency.record(now.saturating_sub(sent).max(1));
            if let Some(bits) = st.bits.get_mut(p as usize) {
                let (word, bit) = ((seq / 64) as usize, seq % 64);
                if bits.len() <= word {
                    bits.resize(word + 1, 0);
                }
                if bits[word] & (1 << bit) != 0 {
                    dups += 1;
                }
                bits[word] |= 1 << bit;
            }
        }
        drop(st);
        if dups > 0 {
            self.duplicates.fetch_add(dups, Ordering::Relaxed);
        }
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// Prints sent/received rates every second on stderr until aborted.
    pub fn spawn_progress(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let s = Arc::clone(self);
        tokio::spawn(async move {
            let (mut ls, mut lr) = (0, 0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (sn, rc) = (
                    s.sent.load(Ordering::Relaxed),
                    s.received.load(Ordering::Relaxed),
                );
                eprintln!(
                    "{:>6.1}s  sent {:>10} ({:>8}/s)  received {:>10} ({:>8}/s)",
                    s.start.elapsed().as_secs_f64(),
                    sn,
                    sn - ls,
                    rc,
                    rc - lr
                );
                (ls, lr) = (sn, rc);
            }
        })
    }

    /// The end of every run: shows progress while the producers finish, sums what they sent,
    /// waits for the deliveries, then stops the consumers.
    pub async fn finish<C>(
        self: &Arc<Self>,
        producers: Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>,
        consumers: Vec<tokio::task::JoinHandle<C>>,
    ) -> anyhow::Result<Outcome> {
        let progress = self.spawn_progress();
        let mut total_sent = 0;
        for p in producers {
            total_sent += p.await??;
        }
        let publish_elapsed = self.start.elapsed();
        if !consumers.is_empty() {
            self.wait_received(total_sent).await;
        }
        let elapsed = self.start.elapsed();
        progress.abort();
        for c in consumers {
            c.abort();
            let _ = c.await;
        }
        Ok(Outcome {
            total_sent,
            publish_elapsed,
            elapsed,
        })
    }

    /// Waits until `total_sent` deliveries arrived (30 s without progress ends the wait).
    pub async fn wait_received(&self, total_sent: u64) {
        let mut last = (Instant::now(), self.received.load(Ordering::Relaxed));
        while self.received.load(Ordering::Relaxed) < total_sent {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = self.received.load(Ordering::Relaxed);
            if r != last.1 {
                last = (Instant::now(), r);
            } else if last.0.elapsed() > Duration::from_secs(30) {
                break;
            }
        }
    }
}

/// The end of a run: what was sent, when publishing ended and when receiving ended.
pub struct Outcome {
    /// Messages published (and confirmed, where confirms are on).
    pub total_sent: u64,
    /// From the start to the last publish (or confirm).
    pub publish_elapsed: Duration,
    /// From the start to the last delivery (or the end of the wait for it).
    pub elapsed: Duration,
}

/// Prints the result (a line, or JSON with `--json`) and fails if messages were lost.
pub fn report(
    protocol: &str,
    mode: &str,
    w: &Workload,
    shared: &Shared,
    o: Outcome,
) -> anyhow::Result<()> {
    let received = shared.received.load(Ordering::Relaxed);
    let (lost, h) = {
        let st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let got: u64 = st
            .bits
            .iter()
            .map(|v| v.iter().map(|w| u64::from(w.count_ones())).sum::<u64>())
            .sum();
        let lost = if w.consumers == 0 {
            0 // a publish-only run (filling a backlog)
        } else {
            o.total_sent.saturating_sub(got)
        };
        (lost, st.latency.clone())
    };
    let result = serde_json::json!({
        "protocol": protocol,
        "mode": mode,
        "size": w.size,
        "producers": w.producers,
        "consumers": w.consumers,
        "sent": o.total_sent,
        "received": received,
        "lost": lost,
        "duplicates": shared.duplicates.load(Ordering::Relaxed),
        "publish_rate": o.total_sent as f64 / o.publish_elapsed.as_secs_f64(),
        "end_to_end_rate": received as f64 / o.elapsed.as_secs_f64(),
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
            "{protocol} {mode} size={}B {}->{} sent={} received={} lost={} dup={}  publish {:.0}/s  end-to-end {:.0}/s  latency p50={}µs p99={}µs p99.9={}µs max={}µs",
            w.size,
            w.producers,
            w.consumers,
            o.total_sent,
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
    if lost > 0 {
        anyhow::bail!("{lost} messages were lost");
    }
    Ok(())
}

/// A body: producer id, sequence number, send time (µs), then filler up to `size`.
pub fn body(size: usize, producer: u64, seq: u64, sent_us: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(size);
    b.put_u64_le(producer);
    b.put_u64_le(seq);
    b.put_u64_le(sent_us);
    b.resize(size, 0xAB);
    b.freeze()
}

/// (producer, sequence, send time) of a body, if it is long enough.
pub fn parse(b: &[u8]) -> Option<(u64, u64, u64)> {
    let f = |i: usize| {
        b.get(i..i + 8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    };
    Some((f(0)?, f(8)?, f(16)?))
}
