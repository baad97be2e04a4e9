//! What every protocol's run shares: the workload options, the message body layout, the
//! consumer-side bookkeeping (loss, duplicates, latency histogram), pacing, progress and the
//! final report.

use std::io::IsTerminal;
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
    /// After the last publish, stop waiting for missing deliveries once none has arrived for
    /// this many seconds (3 at MQTT QoS 0); what is still missing then counts as lost.
    #[arg(long, default_value_t = 30)]
    pub drain_stall: u64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Process id of a broker on this machine: its CPU time and resident memory over the run
    /// are reported.
    #[arg(long)]
    pub broker_pid: Option<u32>,
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
    /// Errors the run survived (refused publishes, nacks).
    pub errors: AtomicU64,
    /// When the last delivery arrived, µs since the start.
    last_delivery_us: AtomicU64,
    /// How many consumers each message should reach (1: competing consumers; N: fan-out).
    views: u64,
    /// Whether the protocol may lose messages (MQTT QoS 0): losses are reported, not an error.
    lossy: bool,
    /// Seconds without a delivery after which the wait for the missing ones ends.
    drain_stall: u64,
    probe: Mutex<Option<BrokerProbe>>,
    state: Mutex<Seen>,
}

/// What consumers have seen: a bit per (producer, sequence), and the latency histogram.
struct Seen {
    bits: Vec<Vec<u64>>,
    latency: Histogram<u64>,
}

impl Shared {
    /// State for a run of `w` where every message is delivered once (competing consumers).
    pub fn new(w: &Workload) -> anyhow::Result<Arc<Self>> {
        Shared::for_run(w, 1, false)
    }

    /// State for a run of `w` where every message should reach `views` consumers (fan-out;
    /// each consumer records under its own view), losses allowed if `lossy`.
    pub fn for_run(w: &Workload, views: usize, lossy: bool) -> anyhow::Result<Arc<Self>> {
        let views = views.max(1);
        Ok(Arc::new(Shared {
            start: Instant::now(),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            stop_sending: AtomicBool::new(false),
            errors: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            views: views as u64,
            lossy,
            drain_stall: w.drain_stall.max(1),
            probe: Mutex::new(w.broker_pid.map(BrokerProbe::new)),
            state: Mutex::new(Seen {
                bits: vec![Vec::new(); w.producers.max(1) * views],
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
        self.record_view(0, bodies)
    }

    /// Records deliveries to consumer `view` of a fan-out run (each view must see every
    /// message once).
    pub fn record_view<'a>(&self, view: usize, bodies: impl IntoIterator<Item = &'a [u8]>) {
        let now = self.now_us();
        let mut n = 0;
        let mut dups = 0;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let producers = st.bits.len() / self.views as usize;
        for b in bodies {
            n += 1;
            let Some((p, seq, sent)) = parse(b) else {
                continue;
            };
            let _ = st.latency.record(now.saturating_sub(sent).max(1));
            if p as usize >= producers {
                continue;
            }
            let slot = view % self.views as usize * producers + p as usize;
            if let Some(bits) = st.bits.get_mut(slot) {
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
        self.last_delivery_us.fetch_max(now, Ordering::Relaxed);
        if dups > 0 {
            self.duplicates.fetch_add(dups, Ordering::Relaxed);
        }
        self.received.fetch_add(n, Ordering::Relaxed);
    }

    /// Draws a progress line (sent and delivered, with rates) on stderr every second until
    /// aborted, only when stderr is a terminal.
    pub fn spawn_progress(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let s = Arc::clone(self);
        tokio::spawn(async move {
            if !std::io::stderr().is_terminal() {
                return;
            }
            let (mut ls, mut lr) = (0, 0);
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (sn, rc) = (
                    s.sent.load(Ordering::Relaxed),
                    s.received.load(Ordering::Relaxed),
                );
                eprint!(
                    "\r{:>6.1}s  sent {:>11} ({:>9}/s)  delivered {:>11} ({:>9}/s)  lost? {:>9}  ",
                    s.start.elapsed().as_secs_f64(),
                    sn,
                    sn - ls,
                    rc,
                    rc - lr,
                    (sn * s.views).saturating_sub(rc),
                );
                (ls, lr) = (sn, rc);
            }
        })
    }

    /// Ends a progress line drawn by [`Shared::spawn_progress`].
    fn end_progress(progress: tokio::task::JoinHandle<()>) {
        progress.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }

    /// Samples the broker's resident memory (for the peak) every second until aborted.
    pub fn spawn_probe(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let s = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Some(p) = s.probe.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    p.sample();
                }
            }
        })
    }

    /// The broker's CPU and memory over the run so far (`null` without `--broker-pid`).
    pub fn broker_json(&self) -> serde_json::Value {
        match self
            .probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            Some(p) => p.json(),
            None => serde_json::Value::Null,
        }
    }

    /// The end of every run: shows progress while the producers finish, sums what they sent,
    /// waits for the deliveries, then stops the consumers.
    pub async fn finish<C>(
        self: &Arc<Self>,
        producers: Vec<tokio::task::JoinHandle<anyhow::Result<u64>>>,
        consumers: Vec<tokio::task::JoinHandle<C>>,
    ) -> anyhow::Result<Outcome> {
        let progress = self.spawn_progress();
        let probe = self.spawn_probe();
        let mut total_sent = 0;
        for p in producers {
            total_sent += p.await??;
        }
        let publish_elapsed = self.start.elapsed();
        // A lossy run (MQTT QoS 0) will not get everything: stop waiting sooner.
        let stall = Duration::from_secs(if self.lossy { 3 } else { self.drain_stall });
        if !consumers.is_empty() {
            self.wait_received(total_sent * self.views, stall).await;
        }
        // Up to the last delivery, not the end of the wait: a broker that dropped messages is
        // not charged for the time spent waiting for them.
        let last = Duration::from_micros(self.last_delivery_us.load(Ordering::Relaxed));
        let elapsed = last.max(publish_elapsed);
        Shared::end_progress(progress);
        probe.abort();
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

    /// A requester's end (request/reply): waits until the replies to all its outstanding
    /// requests are in (every one of the `permits` of its `window` is back), or until no
    /// delivery has come for the drain stall; what is missing then counts as lost.
    pub async fn wait_replies(&self, window: &tokio::sync::Semaphore, permits: u32) {
        let stall = Duration::from_secs(self.drain_stall);
        while tokio::time::timeout(stall, window.acquire_many(permits))
            .await
            .is_err()
        {
            let last = self.last_delivery_us.load(Ordering::Relaxed);
            if self.now_us().saturating_sub(last) > stall.as_micros() as u64 {
                break;
            }
        }
    }

    /// Waits until `expected` deliveries arrived (`stall` without progress ends the wait).
    pub async fn wait_received(&self, expected: u64, stall: Duration) {
        let mut last = (Instant::now(), self.received.load(Ordering::Relaxed));
        while self.received.load(Ordering::Relaxed) < expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = self.received.load(Ordering::Relaxed);
            if r != last.1 {
                last = (Instant::now(), r);
            } else if last.0.elapsed() > stall {
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
    /// From the start to the last delivery (at least to the last publish).
    pub elapsed: Duration,
}

/// Prints the result (a table, or one JSON object with `--json`); fails if messages were lost
/// (unless the run is lossy). Duplicates are reported, not an error.
pub fn report(
    protocol: &str,
    mode: &str,
    w: &Workload,
    shared: &Shared,
    o: Outcome,
) -> anyhow::Result<serde_json::Value> {
    let received = shared.received.load(Ordering::Relaxed);
    let expected = o.total_sent * shared.views;
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
            expected.saturating_sub(got)
        };
        (lost, st.latency.clone())
    };
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let publish_rate = o.total_sent as f64 / o.publish_elapsed.as_secs_f64();
    let delivery_rate = received as f64 / o.elapsed.as_secs_f64();
    let broker = shared.broker_json();
    let result = serde_json::json!({
        "protocol": protocol,
        "mode": mode,
        "size": w.size,
        "producers": w.producers,
        "consumers": w.consumers,
        "fanout": shared.views,
        "rate_limit": w.rate,
        "sent": o.total_sent,
        "expected": expected,
        "received": received,
        "lost": lost,
        "duplicates": duplicates,
        "errors": errors,
        "publish_rate": publish_rate,
        // Deliveries per second, every consumer counted (a fan-out to N delivers N per publish).
        "end_to_end_rate": delivery_rate,
        "publish_s": o.publish_elapsed.as_secs_f64(),
        "elapsed_s": o.elapsed.as_secs_f64(),
        "latency_us": {
            "p50": h.value_at_quantile(0.50),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
            "samples": h.len(),
        },
        "broker": broker,
    });
    if w.json {
        println!("{result}");
    } else {
        print_table(protocol, mode, w, shared.views, &result);
    }
    if lost > 0 && !shared.lossy {
        anyhow::bail!("{lost} messages were lost");
    }
    Ok(result)
}

/// The human-readable end of a run.
fn print_table(protocol: &str, mode: &str, w: &Workload, views: u64, r: &serde_json::Value) {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let f = |k: &str| r[k].as_f64().unwrap_or(0.0);
    let l = |k: &str| r["latency_us"][k].as_u64().unwrap_or(0);
    let shape = if views > 1 {
        format!("{} -> {} (fan-out)", w.producers, w.consumers)
    } else {
        format!("{} -> {}", w.producers, w.consumers)
    };
    println!("{protocol} {mode}, {} B, {shape}", w.size);
    println!(
        "  {:<10} {:>14} {:>14} {:>10} {:>10} {:>8}",
        "", "sent", "delivered", "lost", "dup", "errors"
    );
    println!(
        "  {:<10} {:>14} {:>14} {:>10} {:>10} {:>8}",
        "messages",
        n("sent"),
        n("received"),
        n("lost"),
        n("duplicates"),
        n("errors")
    );
    println!(
        "  {:<10} {:>14.0} {:>14.0}   (publish {:.1} s, last delivery {:.1} s)",
        "rate /s",
        f("publish_rate"),
        f("end_to_end_rate"),
        f("publish_s"),
        f("elapsed_s")
    );
    println!(
        "  latency    p50 {} µs  p99 {} µs  p99.9 {} µs  max {} µs  ({} samples)",
        l("p50"),
        l("p99"),
        l("p999"),
        l("max"),
        l("samples")
    );
    let b = &r["broker"];
    if !b.is_null() {
        println!(
            "  broker     cpu {:.2} s ({:.0}% of a core)  rss {} -> {} KiB (peak {} KiB)",
            b["cpu_s"].as_f64().unwrap_or(0.0),
            b["cpu_share"].as_f64().unwrap_or(0.0) * 100.0,
            b["rss_start_kib"],
            b["rss_end_kib"],
            b["rss_peak_kib"]
        );
    }
}

/// CPU time and resident memory of a local process, read from `/proc/<pid>/`.
pub struct BrokerProbe {
    pid: u32,
    t0: Instant,
    cpu0: Option<f64>,
    rss0: Option<u64>,
    peak: u64,
}

impl BrokerProbe {
    /// Starts watching `pid` now.
    pub fn new(pid: u32) -> Self {
        let rss0 = rss_kib(pid);
        BrokerProbe {
            pid,
            t0: Instant::now(),
            cpu0: cpu_seconds(pid),
            rss0,
            peak: rss0.unwrap_or(0),
        }
    }

    /// Notes the current resident memory (for the peak).
    pub fn sample(&mut self) -> Option<u64> {
        let r = rss_kib(self.pid);
        if let Some(r) = r {
            self.peak = self.peak.max(r);
        }
        r
    }

    /// CPU seconds, share of one core, resident memory at start, now and at the peak (KiB).
    pub fn json(&mut self) -> serde_json::Value {
        let rss = self.sample();
        let cpu = match (self.cpu0, cpu_seconds(self.pid)) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        let wall = self.t0.elapsed().as_secs_f64();
        serde_json::json!({
            "pid": self.pid,
            "cpu_s": cpu,
            "cpu_share": cpu.map(|c| c / wall),
            "rss_start_kib": self.rss0,
            "rss_end_kib": rss,
            "rss_peak_kib": self.peak,
        })
    }
}

/// Resident memory of a process, KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// Anonymous resident memory of a process, KiB (`RssAnon`): its heap and stacks, without the
/// file pages it maps (a broker's mapped log files come and go with the page cache).
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:")
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User plus system CPU time of a process, seconds (`/proc/<pid>/stat`).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let utime: f64 = f.nth(11)?.parse().ok()?;
    let stime: f64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((utime + stime) / if hz > 0 { hz as f64 } else { 100.0 })
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
