//! Behaviour of the store through its public API: appends, reads across segments, restart,
//! look-ups, retention, the disk watermark and group commit.

use std::future::Future;
use std::sync::Arc;

use junction_store::{
    AppendRequest, FlushMode, QueueKey, Retention, Store, StoreConfig, StoreError,
};

const Q: QueueKey = QueueKey::new(1, 0);

fn body(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn append(store: &Store, targets: &[QueueKey], i: u64, len: usize) -> junction_store::Appended {
    let b = body(i, len);
    let key = format!("k{i}");
    let keys: [&[u8]; 1] = [key.as_bytes()];
    store
        .append(&AppendRequest {
            targets,
            keys: &keys,
            body: &b,
            tag_hash: i,
            born_ts: i as i64,
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn records_cross_many_segments_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::tiny(dir.path());
    let mut offsets = Vec::new();
    {
        let store = Store::open(cfg.clone()).unwrap();
        for i in 0..500u64 {
            offsets.push(append(&store, &[Q], i, (i as usize * 7) % 900).commitlog_offset);
        }
        assert!(
            store.stats().segments > 20,
            "tiny segments should roll often"
        );
    }
    let store = Store::open(cfg).unwrap();
    let mut got = Vec::new();
    let mut from = 0;
    loop {
        let b = store.read(Q, from, 64).unwrap();
        if b.messages.is_empty() {
            break;
        }
        from = b.next_offset;
        got.extend(b.messages);
    }
    assert_eq!(got.len(), 500);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.queue_offset, i as u64);
        assert_eq!(m.record.commitlog_offset, offsets[i]);
        assert_eq!(&m.record.body[..], &body(i as u64, (i * 7) % 900)[..]);
        assert_eq!(m.record.tag_hash, i as u64);
        assert_eq!(m.record.born_ts, i as i64);
    }
    // Appends go on after a restart at the next queue offset.
    let a = append(&store, &[Q], 500, 10);
    assert_eq!(a.queue_offsets[0], 500);
}

#[test]
fn fan_out_stores_the_body_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    let targets: Vec<QueueKey> = (0..10).map(|q| QueueKey::new(q, 0)).collect();
    let before = store.stats().bytes;
    let a = append(&store, &targets, 1, 1000);
    let written = store.stats().bytes - before;
    assert!(
        written < 1300,
        "one record of {written} bytes for ten queues"
    );
    for t in &targets {
        let b = store.read(*t, 0, 10).unwrap();
        assert_eq!(b.messages.len(), 1);
        assert_eq!(b.messages[0].record.commitlog_offset, a.commitlog_offset);
    }
    let dup = [Q, Q];
    let err = store
        .write(&AppendRequest {
            targets: &dup,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidRequest(_)));
}

#[test]
fn lookup_by_key_id_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::tiny(dir.path());
    let store = Store::open(cfg.clone()).unwrap();
    let mut ts = Vec::new();
    for i in 0..300u64 {
        let id = format!("id-{i}");
        let key = format!("order-{}", i % 50);
        let keys: [&[u8]; 1] = [key.as_bytes()];
        let a = store
            .append(&AppendRequest {
                targets: &[Q],
                msg_id: id.as_bytes(),
                keys: &keys,
                body: b"x",
                ..Default::default()
            })
            .unwrap();
        ts.push(a.store_ts);
    }
    let check = |store: &Store| {
        let hits = store.lookup_key(b"order-7", i64::MIN, i64::MAX, 100);
        let offs: Vec<u64> = hits
            .iter()
            .map(|r| r.targets().next().unwrap().queue_offset)
            .collect();
        assert_eq!(
            offs,
            vec![257, 207, 157, 107, 57, 7],
            "newest first, every one"
        );
        let r = store.lookup_id(b"id-123", 5);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].targets().next().unwrap().queue_offset, 123);
        assert!(store
            .lookup_key(b"order-none", i64::MIN, i64::MAX, 10)
            .is_empty());
        // Time -> offset: the first record stored at or after ts[200].
        let o = store.offset_for_time(Q, ts[200]);
        assert!(o <= 200 && ts[o as usize] == ts[200]);
        assert_eq!(store.offset_for_time(Q, i64::MAX), 300);
        assert_eq!(store.offset_for_time(Q, 0), 0);
    };
    check(&store);
    drop(store);
    check(&Store::open(cfg).unwrap()); // rebuilt/kept across restart
}

#[test]
fn index_and_queues_are_rebuilt_from_the_commitlog_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::tiny(dir.path());
    {
        let store = Store::open(cfg.clone()).unwrap();
        for i in 0..200u64 {
            append(&store, &[Q, QueueKey::new(2, 3)], i, 50);
        }
    }
    std::fs::remove_dir_all(dir.path().join("consumequeue")).unwrap();
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    std::fs::remove_file(dir.path().join("checkpoint")).unwrap();
    let store = Store::open(cfg).unwrap();
    assert_eq!(store.queues(), vec![Q, QueueKey::new(2, 3)]);
    let b = store.read(QueueKey::new(2, 3), 0, 1000).unwrap();
    assert_eq!(b.messages.len(), 200);
    assert_eq!(&b.messages[199].record.body[..], &body(199, 50)[..]);
    assert_eq!(store.lookup_key(b"k150", i64::MIN, i64::MAX, 5).len(), 1);
}

#[test]
fn retention_removes_segments_below_every_floor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    let q2 = QueueKey::new(2, 0);
    for i in 0..400u64 {
        append(&store, &[Q, q2], i, 200);
    }
    let segs = store.stats().segments;
    store.apply_retention();
    assert_eq!(
        store.stats().segments,
        segs,
        "floors at 0: everything is still needed"
    );
    store.set_floor(Q, 300);
    store.apply_retention();
    assert_eq!(store.stats().segments, segs, "q2 still needs everything");
    store.set_floor(q2, 350);
    store.apply_retention();
    let s = store.stats();
    assert!(
        s.segments < segs / 2,
        "{} of {segs} segments left",
        s.segments
    );
    // What is left still reads; what is gone is skipped, from the new minimum.
    let b = store.read(Q, 0, 1000).unwrap();
    assert!(b.min_offset > 0 && b.min_offset <= 300);
    assert_eq!(b.messages.first().unwrap().queue_offset, b.min_offset);
    assert_eq!(b.messages.last().unwrap().queue_offset, 399);
    assert!(store.read_record(0).is_err());
}

#[test]
fn retention_by_size_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::tiny(dir.path());
    cfg.retention = Retention {
        max_bytes: Some(64 << 10),
        max_age: None,
    };
    let store = Store::open(cfg).unwrap();
    for i in 0..1000u64 {
        append(&store, &[Q], i, 300);
    }
    store.apply_retention();
    let s = store.stats();
    assert!((s.log_end - s.log_start) <= (64 << 10) + 8192, "{s:?}");
    let b = store.read(Q, 0, 10_000).unwrap();
    assert_eq!(b.messages.last().unwrap().queue_offset, 999);
}

#[test]
fn disk_low_watermark_refuses_appends_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::tiny(dir.path());
    cfg.disk_low_watermark = u64::MAX;
    let store = Store::open(cfg).unwrap();
    let err = store
        .append(&AppendRequest {
            targets: &[Q],
            body: b"x",
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DiskLow {
                watermark: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
    drop(store);

    let mut cfg = StoreConfig::tiny(dir.path());
    cfg.disk_low_watermark = 0;
    let store = Store::open(cfg.clone()).unwrap();
    append(&store, &[Q], 1, 10);
    drop(store);
    cfg.disk_low_watermark = u64::MAX;
    let store = Store::open(cfg).unwrap();
    assert!(matches!(
        store.append(&AppendRequest {
            targets: &[Q],
            body: b"y",
            ..Default::default()
        }),
        Err(StoreError::DiskLow { .. })
    ));
    assert_eq!(
        &store.read(Q, 0, 10).unwrap().messages[0].record.body[..],
        &body(1, 10)[..]
    );
}

#[test]
fn disk_low_watermark_can_be_changed_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    append(&store, &[Q], 0, 10);
    assert!(!store.is_disk_low());
    assert!(store.disk_free() > 0 && store.disk_free() < u64::MAX);
    // Above any disk's free space: refused at once, without waiting for the periodic check.
    store.set_disk_low_watermark(u64::MAX);
    assert_eq!(store.disk_low_watermark(), u64::MAX);
    assert!(store.is_disk_low());
    let err = store
        .append(&AppendRequest {
            targets: &[Q],
            body: b"x",
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DiskLow {
                watermark: u64::MAX,
                ..
            }
        ),
        "{err}"
    );
    store.set_disk_low_watermark(0);
    assert!(!store.is_disk_low());
    append(&store, &[Q], 1, 10);
    assert_eq!(store.read(Q, 0, 10).unwrap().messages.len(), 2);
}

#[test]
fn oversized_records_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    let big = vec![0u8; 5000];
    let err = store
        .append(&AppendRequest {
            targets: &[Q],
            body: &big,
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RecordTooLarge { max: 4096, .. }),
        "{err}"
    );
}

#[test]
fn second_open_of_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _a = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    let err = Store::open(StoreConfig::tiny(dir.path())).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }));
}

#[test]
fn sync_mode_confirms_only_durable_writes_and_batches_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::tiny(dir.path());
    cfg.flush = FlushMode::Sync;
    cfg.segment_size = 1 << 20;
    let store = Arc::new(Store::open(cfg).unwrap());
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let a = store
                        .append(&AppendRequest {
                            targets: &[QueueKey::new(t, 0)],
                            body: &body(i, 100),
                            ..Default::default()
                        })
                        .unwrap();
                    assert!(store.stats().durable >= a.end(), "confirmed before durable");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = store.stats();
    assert_eq!(s.records, 400);
    assert!(s.fsyncs >= 1 && s.fsyncs <= 400, "{s:?}");
    assert_eq!(s.durable, s.log_end);
}

#[test]
fn async_waiting_works_without_a_runtime_of_our_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::tiny(dir.path());
    cfg.flush = FlushMode::Sync;
    let store = Store::open(cfg).unwrap();
    let a = store
        .write(&AppendRequest {
            targets: &[Q],
            body: b"a",
            ..Default::default()
        })
        .unwrap();
    // A tiny executor: poll the future on this thread until it completes.
    let fut = store.flushed(a.end());
    let mut fut = std::pin::pin!(fut);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
            r.unwrap();
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flush never completed"
        );
        std::thread::yield_now();
    }
    assert!(store.stats().durable >= a.end());
}

#[test]
fn empty_targets_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    let keys: [&[u8]; 1] = [b"lonely"];
    let a = store
        .append(&AppendRequest {
            keys: &keys,
            body: b"no queue",
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        &store.read_record(a.commitlog_offset).unwrap().body[..],
        b"no queue"
    );
    let reqs: Vec<AppendRequest<'_>> = (0..100)
        .map(|_| AppendRequest {
            targets: &[Q],
            body: b"batch",
            ..Default::default()
        })
        .collect();
    let (done, err) = store.write_batch(&reqs);
    assert!(err.is_none());
    assert_eq!(done.len(), 100);
    assert_eq!(done[99].queue_offsets[0], 99);
    assert!(matches!(
        store.read_record(a.commitlog_offset + 1),
        Err(StoreError::Corrupt { .. } | StoreError::NoRecord { .. })
    ));
}

#[test]
fn a_filtered_read_skips_rejected_entries_and_bounds_its_scan() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
    for i in 0..100u64 {
        append(&store, &[Q], i % 10, 16); // tag hash = i % 10
    }
    let b = store
        .read_where(Q, 0, 1000, usize::MAX, |e| e.tag_hash == 3)
        .unwrap();
    let offsets: Vec<u64> = b.messages.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, (0..10).map(|k| k * 10 + 3).collect::<Vec<_>>());
    assert!(b.messages.iter().all(|m| m.record.tag_hash == 3));
    assert_eq!(b.next_offset, 100);
    // A bounded scan stops early and says where.
    let b = store
        .read_where(Q, 0, 1000, 25, |e| e.tag_hash == 7)
        .unwrap();
    assert_eq!(b.next_offset, 25);
    assert_eq!(b.messages.len(), 2);
    // Entries alone, without the records.
    let e = store.entries(Q, 95, 10).unwrap();
    assert_eq!(
        e.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
        vec![95, 96, 97, 98, 99]
    );
    assert_eq!(e[0].1.tag_hash, 5);
    assert!(store
        .entries(QueueKey::new(9, 0), 0, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn append_and_flush_latencies_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = StoreConfig::tiny(dir.path());
    cfg.flush = FlushMode::Sync;
    let store = Store::open(cfg).unwrap();
    let n = 10 * junction_store::APPEND_SAMPLE_EVERY;
    for i in 0..n {
        append(&store, &[Q], i, 100);
    }
    let l = store.latencies();
    // One single-threaded append in APPEND_SAMPLE_EVERY is timed.
    assert_eq!(l.append.count(), 10, "{l:?}");
    assert!(l.append.sum_seconds > 0.0, "{l:?}");
    // Every append waited for an fsync round; each round is one observation.
    assert_eq!(l.flush.count(), store.stats().fsyncs, "{l:?}");
    assert!(l.flush.count() > 0 && l.flush.sum_seconds > 0.0, "{l:?}");
    assert_eq!(l.flush.buckets.last().map(|b| b.0), Some(f64::INFINITY));
    store.close().unwrap();
}
