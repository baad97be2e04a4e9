//! The memory bound: a publisher far faster than its consumer for a minute keeps the broker's
//! anonymous memory under the configured high watermark (the broker holds the publisher instead
//! of buffering), and every confirmed message is delivered afterwards. Its own test binary, so
//! that nothing else competes with it for the two cores. Figures: docs/RELIABILITY.md.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::TestBroker;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};

const WAIT: Duration = Duration::from_secs(60);

/// Anonymous resident memory of a process (bytes).
fn rss_anon(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("RssAnon:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn mem_total() -> u64 {
    let m = std::fs::read_to_string("/proc/meminfo").unwrap();
    m.lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        * 1024
}

/// `OVERLOAD_SECS` sets the length (60 by default); `--nocapture` prints the figures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bound_fast_publisher_slow_consumer() {
    let secs: u64 = std::env::var("OVERLOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let limit: u64 = 256 << 20;
    let fraction = format!("{:.6}", limit as f64 / mem_total() as f64);
    let b = TestBroker::start_with(&[
        ("JUNCTION_STORE_FLUSH", "async"),
        ("JUNCTION_LIMITS_MEMORY_HIGH_WATERMARK", &fraction),
        ("JUNCTION_STORE_SEGMENT_SIZE", "268435456"),
    ]);
    let pid = b.pid();
    let client = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    client.admin().create_topic("flood", 1).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (Arc::clone(&done), Arc::clone(&peak));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // The slow consumer: acks one message per millisecond at most.
    let received = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let mut consumer = client
        .subscribe(ConsumerOptions::new("flood").prefetch(100))
        .await
        .unwrap();
    let slow = {
        let (received, done) = (Arc::clone(&received), Arc::clone(&done));
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let Ok(Some(Ok(d))) =
                    tokio::time::timeout(Duration::from_secs(1), consumer.next()).await
                else {
                    continue;
                };
                received.lock().unwrap().insert(d.body.to_vec());
                d.ack().await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            consumer
        })
    };
    // The fast publisher: batches of 100 x 1 KiB, each batch confirmed when stored.
    let producer = client.producer();
    let dest = Destination::queue("flood");
    let mut confirmed = 0u64;
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let batch = (0..100)
            .map(|i| {
                let mut body = format!("{:012}", confirmed + i).into_bytes();
                body.resize(1024, b'.');
                Message::new(body)
            })
            .collect();
        if producer.send_batch(&dest, batch).await.is_ok() {
            confirmed += 100;
        }
    }
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let mut consumer = slow.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);
    let during = received.lock().unwrap().len() as u64;
    // Drain what is left, at full speed, and check every confirmed message is there.
    let mut got: BTreeSet<Vec<u8>> = std::mem::take(&mut *received.lock().unwrap());
    let drain_end = Instant::now() + Duration::from_secs(600);
    while (got.len() as u64) < confirmed && Instant::now() < drain_end {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the rest in time")
            .unwrap()
            .unwrap();
        got.insert(d.body.to_vec());
        d.ack().await.unwrap();
    }
    println!(
        "memory-bound: {secs} s, {confirmed} confirmed (1 KiB), {during} consumed during the run, \
         peak broker RssAnon {} MiB, watermark {} MiB, all {} delivered after: {}",
        peak >> 20,
        limit >> 20,
        got.len(),
        got.len() as u64 >= confirmed
    );
    assert!(peak < limit, "peak {peak} over the watermark {limit}");
    for i in 0..confirmed {
        let mut body = format!("{i:012}").into_bytes();
        body.resize(1024, b'.');
        assert!(got.contains(&body), "confirmed message {i} lost");
    }
}
