//! Store benchmarks: `cargo bench -p junction-store [-- FILTER...]`.
//!
//! Sections (each can be picked by a filter word): `writepath` (raw mmap vs pwrite), `async`
//! (append throughput, one thread), `sync` (group commit with 1/16/64 writers), `read`
//! (sequential reads through a consume queue), `recovery` (open time of a 1 GiB log).
//! Data goes to a temporary directory under `$JUNCTION_BENCH_DIR` (default: the system temp
//! directory). Each throughput figure is the median of three runs.

use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use junction_store::{AppendRequest, FlushMode, QueueKey, Store, StoreConfig};

fn bench_dir() -> tempfile::TempDir {
    match std::env::var_os("JUNCTION_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d).expect("bench dir"),
        None => tempfile::tempdir().expect("temp dir"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn config(dir: &std::path::Path, flush: FlushMode) -> StoreConfig {
    let mut cfg = StoreConfig::new(dir);
    cfg.segment_size = 256 << 20;
    cfg.flush = flush;
    cfg.disk_low_watermark = 0;
    if let Some(us) = std::env::var("JUNCTION_BENCH_LINGER_US")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.group_commit_linger = Duration::from_micros(us);
    }
    cfg
}

const Q: QueueKey = QueueKey::new(1, 0);

/// Raw write paths for 1 KiB records, no store: the ceiling the store's writer works under.
fn writepath() {
    println!("\n## write path, 1 KiB records, 256 MiB file, no fsync (records/s)");
    let rec = vec![0xabu8; 1024];
    let n = 256 * 1024 - 1;
    let mut rows = Vec::new();
    for name in [
        "mmap memcpy (populated)",
        "pwrite per record",
        "pwrite 64 KiB batches",
    ] {
        let runs: Vec<f64> = (0..3)
            .map(|_| {
                let dir = bench_dir();
                let path = dir.path().join("f");
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .unwrap();
                rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, 256 << 20)
                    .unwrap();
                let t;
                match name {
                    "mmap memcpy (populated)" => {
                        let mut m =
                            unsafe { memmap2::MmapOptions::new().populate().map_mut(&f).unwrap() };
                        t = Instant::now();
                        for i in 0..n {
                            m[i * 1024..(i + 1) * 1024].copy_from_slice(&rec);
                        }
                    }
                    "pwrite per record" => {
                        t = Instant::now();
                        for i in 0..n {
                            f.write_all_at(&rec, (i * 1024) as u64).unwrap();
                        }
                    }
                    _ => {
                        let mut buf = Vec::with_capacity(64 << 10);
                        t = Instant::now();
                        let mut at = 0u64;
                        for _ in 0..n {
                            buf.extend_from_slice(&rec);
                            if buf.len() >= 64 << 10 {
                                f.write_all_at(&buf, at).unwrap();
                                at += buf.len() as u64;
                                buf.clear();
                            }
                        }
                        f.write_all_at(&buf, at).unwrap();
                    }
                }
                n as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        rows.push((name, median(runs)));
    }
    for (name, r) in rows {
        println!("| {name:<26} | {:>10.2} M/s |", r / 1e6);
    }
    // fsync cost on this disk: 4 KiB write + fdatasync.
    let dir = bench_dir();
    let f = std::fs::File::create(dir.path().join("s")).unwrap();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed() < Duration::from_secs(2) {
        f.write_all_at(&[1u8; 4096], (n % 256) * 4096).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let per = t.elapsed().as_secs_f64() / n as f64;
    println!(
        "| 4 KiB write + fdatasync    | {:>8.0} /s ({:.0} µs each) |",
        1.0 / per,
        per * 1e6
    );
}

/// Append throughput from one thread in async mode.
fn async_append() {
    println!("\n## async append, one thread (records/s, MB/s of records)");
    for size in [100usize, 1024] {
        let body = vec![7u8; size];
        let n: u64 = if size == 100 { 3_000_000 } else { 1_000_000 };
        let mut bytes = 0;
        let runs: Vec<f64> = (0..3)
            .map(|_| {
                let dir = bench_dir();
                let store = Store::open(config(dir.path(), FlushMode::Async)).unwrap();
                let req = AppendRequest {
                    targets: &[Q],
                    body: &body,
                    ..Default::default()
                };
                let t = Instant::now();
                for _ in 0..n {
                    store.write(&req).unwrap();
                }
                let r = n as f64 / t.elapsed().as_secs_f64();
                bytes = store.stats().bytes / n;
                r
            })
            .collect();
        let r = median(runs);
        println!(
            "| {size:>5} B body ({bytes} B record) | {:>6.2} M/s | {:>6.0} MB/s |",
            r / 1e6,
            r * bytes as f64 / 1e6
        );
    }
}

/// Group commit: W writer threads, each appending and waiting for durability, for a few seconds.
fn sync_append() {
    println!("\n## sync append (group commit), W writers each waiting for its fsync");
    println!("| body | writers | records/s | fsyncs/s | records per fsync | p50 µs | p99 µs |");
    println!("|---|---|---|---|---|---|---|");
    for size in [100usize, 1024] {
        for writers in [1u32, 16, 64] {
            let dir = bench_dir();
            let store = Arc::new(Store::open(config(dir.path(), FlushMode::Sync)).unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let count = Arc::new(AtomicU64::new(0));
            let handles: Vec<_> = (0..writers)
                .map(|w| {
                    let (store, stop, count) =
                        (Arc::clone(&store), Arc::clone(&stop), Arc::clone(&count));
                    std::thread::spawn(move || {
                        let body = vec![w as u8; size];
                        let q = [QueueKey::new(w, 0)];
                        let mut lat = Vec::new();
                        while !stop.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            store
                                .append(&AppendRequest {
                                    targets: &q,
                                    body: &body,
                                    ..Default::default()
                                })
                                .unwrap();
                            lat.push(t.elapsed().as_micros() as u64);
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        lat
                    })
                })
                .collect();
            std::thread::sleep(Duration::from_millis(500)); // warm-up
            let (c0, s0) = (count.load(Ordering::Relaxed), store.stats());
            let t = Instant::now();
            std::thread::sleep(Duration::from_secs(3));
            let (c1, s1) = (count.load(Ordering::Relaxed), store.stats());
            let el = t.elapsed().as_secs_f64();
            stop.store(true, Ordering::Relaxed);
            let mut lat: Vec<u64> = handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            lat.sort_unstable();
            let fsyncs = s1.fsyncs - s0.fsyncs;
            let per = (s1.records_synced - s0.records_synced) as f64 / fsyncs.max(1) as f64;
            println!(
                "| {size} B | {writers} | {:.0} | {:.0} | {per:.1} | {} | {} |",
                (c1 - c0) as f64 / el,
                fsyncs as f64 / el,
                lat[lat.len() / 2],
                lat[lat.len() * 99 / 100]
            );
        }
    }
}

/// Sequential reads of one queue through its consume queue (zero-copy bodies).
fn read() {
    println!("\n## sequential read through a consume queue, batches of 256");
    for size in [100usize, 1024] {
        let dir = bench_dir();
        let store = Store::open(config(dir.path(), FlushMode::Async)).unwrap();
        let body = vec![3u8; size];
        let n = if size == 100 { 3_000_000u64 } else { 1_000_000 };
        let reqs: Vec<_> = (0..1000)
            .map(|_| AppendRequest {
                targets: &[Q],
                body: &body,
                ..Default::default()
            })
            .collect();
        for _ in 0..n / 1000 {
            assert!(store.write_batch(&reqs).1.is_none());
        }
        let runs: Vec<f64> = (0..3)
            .map(|_| {
                let t = Instant::now();
                let (mut from, mut got, mut sum) = (0, 0u64, 0u64);
                while got < n {
                    let b = store.read(Q, from, 256).unwrap();
                    for m in &b.messages {
                        sum += m.record.body.len() as u64;
                    }
                    got += b.messages.len() as u64;
                    from = b.next_offset;
                }
                assert_eq!(sum, n * size as u64);
                n as f64 / t.elapsed().as_secs_f64()
            })
            .collect();
        let r = median(runs);
        println!(
            "| {size:>5} B body | {:>6.2} M records/s | {:>6.0} MB/s of bodies |",
            r / 1e6,
            r * size as f64 / 1e6
        );
    }
}

/// Open time of a store holding 1 GiB of 1 KiB records: after a clean close (checkpoint), and
/// with the checkpoint, consume queues and index deleted (full scan and rebuild).
fn recovery() {
    println!("\n## recovery of a 1 GiB CommitLog (1 KiB bodies, one key each)");
    let dir = bench_dir();
    let mut cfg = config(dir.path(), FlushMode::Async);
    cfg.segment_size = 1 << 30;
    let n = (1u64 << 30) / 1100;
    {
        let store = Store::open(cfg.clone()).unwrap();
        let body = vec![5u8; 1024];
        for i in 0..n {
            let k = i.to_le_bytes();
            let keys: [&[u8]; 1] = [&k];
            store
                .write(&AppendRequest {
                    targets: &[Q],
                    keys: &keys,
                    body: &body,
                    ..Default::default()
                })
                .unwrap();
        }
        println!(
            "| log size | {} MiB, {n} records |",
            store.stats().log_end >> 20
        );
    }
    let t = Instant::now();
    drop(Store::open(cfg.clone()).unwrap());
    println!(
        "| open after a clean close (CRC check of the last segments) | {:.2} s |",
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(dir.path().join("checkpoint"));
    let _ = std::fs::remove_dir_all(dir.path().join("consumequeue"));
    let _ = std::fs::remove_dir_all(dir.path().join("index"));
    let t = Instant::now();
    let store = Store::open(cfg).unwrap();
    println!(
        "| open with no checkpoint, queues or index (full scan, rebuild everything) | {:.2} s |",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(store.queue_range(Q), Some((0, n)));
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let on = |name: &str| filters.is_empty() || filters.iter().any(|f| f == name);
    println!(
        "# junction-store benchmarks ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if on("writepath") {
        writepath();
    }
    if on("async") {
        async_append();
    }
    if on("sync") {
        sync_append();
    }
    if on("read") {
        read();
    }
    if on("recovery") {
        recovery();
    }
}
