//! [`Store`]: opening (with recovery), appending, reading, looking up, and the background threads.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use event_listener::{Event, Listener};

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::commitlog::{self, CommitLog, Segment};
use crate::config::{FlushMode, StoreConfig};
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::error::{Result, StoreError};
use crate::flush::{self, FlushState};
use crate::index::{self, Index};
use crate::latency::{Latency, StoreLatencies, APPEND_SAMPLE_EVERY};
use crate::record::{AppendRequest, QueueKey, Record};
use crate::recovery;
use crate::writer::{self, Appended, Writer};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Counters, for benchmarks and metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
}

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Records appended since open.
    pub records: u64,
    /// Bytes appended since open.
    pub bytes: u64,
    /// CommitLog fsyncs done by the flusher since open.
    pub fsyncs: u64,
    /// Records those fsyncs covered (divide by `fsyncs` for the group-commit batch size).
    pub records_synced: u64,
    /// First CommitLog offset still stored.
    pub log_start: u64,
    /// CommitLog end (next append offset).
    pub log_end: u64,
    /// Everything below this is on disk.
    pub durable: u64,
    /// Number of CommitLog segment files.
    pub segments: usize,
}

/// Records read from one queue partition.
#[derive(Debug, Clone)]
pub struct ReadBatch {
    /// The records, in queue order.
    pub messages: Vec<QueueMessage>,
    /// Offset to read from next.
    pub next_offset: u64,
    /// Oldest offset still stored (a read below it starts here instead).
    pub min_offset: u64,
    /// Offset the next record appended to the queue will get.
    pub end_offset: u64,
}

/// A record as seen from one queue partition.
#[derive(Debug, Clone)]
pub struct QueueMessage {
    /// Its offset in the queue partition.
    pub queue_offset: u64,
    /// The record (zero-copy).
    pub record: Record,
}

/// Shared state of an open store.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: StoreConfig,
    pub(crate) cq_dir: PathBuf,
    pub(crate) log: CommitLog,
    pub(crate) writer: Mutex<Writer>,
    queues: RwLock<HashMap<QueueKey, Arc<ConsumeQueue>>>,
    index: Mutex<Index>,
    spare: Mutex<Option<Segment>>,
    checkpoint: Mutex<CheckpointFile>,
    pub(crate) flush: FlushState,
    pub(crate) stats: Counters,
    /// Sampled append latency.
    append_latency: Latency,
    /// Flush (fsync round) latency.
    pub(crate) flush_latency: Latency,
    pub(crate) closed: AtomicBool,
    /// Wakes the service thread (spare segment, checkpoint, retention, disk check).
    pub(crate) service: Event,
    disk_low: AtomicBool,
    disk_free: AtomicU64,
    /// `disk_low_watermark`, changeable while the store runs.
    disk_watermark: AtomicU64,
    pub(crate) last_ts: AtomicI64,
    /// Sync replication: how far slaves have acknowledged.
    pub(crate) replica: crate::replica::ReplicaGate,
    /// Held (flock) until close.
    lock_file: Mutex<Option<File>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub(crate) fn queues_mut(&self) -> RwLockWriteGuard<'_, HashMap<QueueKey, Arc<ConsumeQueue>>> {
        self.queues.write().unwrap_or_else(|p| p.into_inner())
    }
    fn queue(&self, key: QueueKey) -> Option<Arc<ConsumeQueue>> {
        self.queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }
    fn all_queues(&self) -> Vec<Arc<ConsumeQueue>> {
        self.queues
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
    pub(crate) fn index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }
    pub(crate) fn spare(&self) -> MutexGuard<'_, Option<Segment>> {
        lock(&self.spare)
    }

    /// Fails fast while free space is below the watermark.
    pub(crate) fn check_disk(&self) -> Result<()> {
        if self.disk_low.load(Ordering::Acquire) {
            return Err(StoreError::DiskLow {
                free: self.disk_free.load(Ordering::Relaxed),
                watermark: self.disk_watermark.load(Ordering::Relaxed),
            });
        }
        Ok(())
    }

    fn refresh_disk(&self) {
        let Ok(st) = rustix::fs::statvfs(&self.cfg.dir) else {
            return;
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        self.disk_free.store(free, Ordering::Relaxed);
        let watermark = self.disk_watermark.load(Ordering::Relaxed);
        let low = free < watermark;
        if low != self.disk_low.swap(low, Ordering::AcqRel) {
            if low {
                tracing::warn!(free, watermark, "disk space low: appends refused");
            } else {
                tracing::info!(free, "disk space recovered: appends accepted");
            }
        }
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        if self.flush.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        self.check_disk()
    }

    /// Flushes consume queues and the index, then records the checkpoint.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let dispatched = self.log.written();
        let last_ts = self.last_ts.load(Ordering::Acquire);
        for q in self.all_queues() {
            q.flush()?;
        }
        self.index().flush()?;
        let cp = Checkpoint {
            durable: self.flush.durable(),
            dispatched,
            last_ts,
        };
        lock(&self.checkpoint).write(&cp, now_ms())
    }

    /// Keeps one preallocated segment ready after the active one.
    fn prepare_spare(&self) -> Result<()> {
        let next = match self.log.segments().last() {
            Some(s) => s.end(),
            None => return Ok(()),
        };
        if self.spare().as_ref().is_some_and(|s| s.base == next) {
            return Ok(());
        }
        let seg = writer::new_segment(self, next)?;
        let mut spare = self.spare();
        // The writer may have rolled meanwhile (and made its own segment); keep ours only if it
        // is still the next one.
        if self.log.segments().last().is_some_and(|s| s.end() == next) {
            *spare = Some(seg);
        } else if self.log.segment_at(seg.base).is_none() {
            // The log moved elsewhere meanwhile (a slave's `reset_start`): not a segment.
            let _ = std::fs::remove_file(seg.file.path());
        }
        Ok(())
    }

    /// Removes segments nothing needs any more, or that fall outside the retention limits.
    fn apply_retention(&self) {
        let segs = self.log.segments();
        if segs.len() < 2 {
            return;
        }
        let needed = self
            .all_queues()
            .iter()
            .filter_map(|q| q.needed_from())
            .min()
            .unwrap_or(u64::MAX);
        let now = now_ms();
        let r = &self.cfg.retention;
        let mut total: u64 = segs.iter().map(|s| s.file.len()).sum();
        let mut cut = 0;
        for (s, next) in segs.iter().zip(segs.iter().skip(1)) {
            let by_floor = s.end() <= needed;
            // Every record of `s` is no newer than the first record of the next segment.
            let by_age = r.max_age.is_some_and(|age| {
                self.log
                    .read(next.base)
                    .is_ok_and(|rec| rec.store_ts < now - age.as_millis() as i64)
            });
            let by_size = r.max_bytes.is_some_and(|m| total > m);
            if !(by_floor || by_age || by_size) {
                break;
            }
            total -= s.file.len();
            cut = next.base;
        }
        if cut == 0 {
            return;
        }
        let removed = self.log.remove_front(|s| s.base < cut);
        for s in &removed {
            tracing::info!(segment = s.base, "retention removed a commitlog segment");
            let _ = std::fs::remove_file(s.file.path());
        }
        let start = self.log.start();
        for q in self.all_queues() {
            q.trim(start);
        }
        self.index().trim(start);
    }
}

/// The message store: one CommitLog, a consume queue per queue partition, a key index.
///
/// All methods take `&self`; share a store between threads or tasks with an `Arc`. Appends are
/// serialized on one writer; reads and look-ups run concurrently with them and with each other.
/// Dropping the store closes it (see [`Store::close`]).
#[derive(Debug)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Store {
    /// Opens the store in `cfg.dir`, creating it if empty and recovering it otherwise: the
    /// CommitLog is scanned from the checkpoint with CRCs verified, a torn tail is cut off,
    /// and consume queues and the index are rebuilt past their checkpoint.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has the directory open; I/O and
    /// [`StoreError::Corrupt`] errors for damage recovery cannot repair (a gap between segments).
    pub fn open(cfg: StoreConfig) -> Result<Store> {
        cfg.validate()?;
        std::fs::create_dir_all(&cfg.dir).map_err(StoreError::io(&cfg.dir))?;
        let lock_path = cfg.dir.join("LOCK");
        let lock_file = File::create(&lock_path).map_err(StoreError::io(&lock_path))?;
        rustix::fs::flock(
            &lock_file,
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        )
        .map_err(|_| StoreError::Locked {
            path: lock_path.clone(),
        })?;

        let started = std::time::Instant::now();
        let rec = recovery::recover(&cfg)?;
        let durable = rec.end;
        let inner = Arc::new(Inner {
            cq_dir: cfg.dir.join("consumequeue"),
            writer: Mutex::new(Writer::new(
                rec.active,
                rec.pos,
                rec.last_ts,
                rec.queues.clone(),
            )),
            queues: RwLock::new(rec.queues),
            index: Mutex::new(rec.index),
            spare: Mutex::new(None),
            checkpoint: Mutex::new(rec.checkpoint),
            flush: FlushState::new(cfg.flush, durable),
            stats: Counters::default(),
            append_latency: Latency::default(),
            flush_latency: Latency::default(),
            closed: AtomicBool::new(false),
            service: Event::new(),
            disk_low: AtomicBool::new(false),
            disk_free: AtomicU64::new(u64::MAX),
            disk_watermark: AtomicU64::new(cfg.disk_low_watermark),
            last_ts: AtomicI64::new(rec.last_ts),
            replica: crate::replica::ReplicaGate::default(),
            log: rec.log,
            cfg,
            lock_file: Mutex::new(Some(lock_file)),
        });
        inner.log.publish(rec.end);
        inner.checkpoint()?;
        inner.refresh_disk();
        tracing::info!(
            dir = %inner.cfg.dir.display(),
            log_start = inner.log.start(),
            log_end = rec.end,
            scanned = rec.scanned,
            truncated = rec.truncated,
            ms = started.elapsed().as_millis() as u64,
            "store opened"
        );

        let mut threads = Vec::new();
        let i = Arc::clone(&inner);
        threads.push(spawn("junction-flush", move || flush::run_flusher(&i))?);
        let i = Arc::clone(&inner);
        threads.push(spawn("junction-store", move || run_service(&i))?);
        Ok(Store {
            inner,
            threads: Mutex::new(threads),
        })
    }

    /// Appends a record and returns once it is stored under the flush policy: in `sync` mode
    /// after an fsync covers it, in `async` mode at once. Readers see it before it returns.
    ///
    /// # Errors
    /// [`StoreError::DiskLow`] (nothing written; retry later), [`StoreError::RecordTooLarge`],
    /// [`StoreError::InvalidRequest`], [`StoreError::Poisoned`], [`StoreError::Closed`], I/O.
    pub fn append(&self, req: &AppendRequest<'_>) -> Result<Appended> {
        let a = self.write(req)?;
        self.wait_flushed(a.end())?;
        Ok(a)
    }

    /// Appends a record without waiting for durability; pair with [`Store::flushed`] or
    /// [`Store::wait_flushed`] on [`Appended::end`]. Readers see it at once.
    ///
    /// # Errors
    /// As [`Store::append`].
    pub fn write(&self, req: &AppendRequest<'_>) -> Result<Appended> {
        // One append in APPEND_SAMPLE_EVERY is timed: two clock reads are not free.
        let timed = self
            .inner
            .stats
            .records
            .load(Ordering::Relaxed)
            .is_multiple_of(APPEND_SAMPLE_EVERY)
            .then(Instant::now);
        let mut w = lock(&self.inner.writer);
        self.inner.check_writable()?;
        let a = w.append(&self.inner, req)?;
        self.inner.last_ts.store(a.store_ts, Ordering::Release);
        drop(w);
        if let Some(t) = timed {
            self.inner.append_latency.record(t.elapsed());
        }
        self.inner.replica.grew.notify(usize::MAX);
        Ok(a)
    }

    /// Appends several records under one lock acquisition, in order. Stops at the first error,
    /// returning what was appended before it together with the error.
    pub fn write_batch(&self, reqs: &[AppendRequest<'_>]) -> (Vec<Appended>, Option<StoreError>) {
        let mut out = Vec::with_capacity(reqs.len());
        let mut w = lock(&self.inner.writer);
        if let Err(e) = self.inner.check_writable() {
            return (out, Some(e));
        }
        for r in reqs {
            match w.append(&self.inner, r) {
                Ok(a) => out.push(a),
                Err(e) => {
                    drop(w);
                    self.inner.replica.grew.notify(usize::MAX);
                    return (out, Some(e));
                }
            }
        }
        if let Some(a) = out.last() {
            self.inner.last_ts.store(a.store_ts, Ordering::Release);
        }
        drop(w);
        self.inner.replica.grew.notify(usize::MAX);
        (out, None)
    }

    /// Blocks until everything below CommitLog offset `end` is stored under the flush policy.
    ///
    /// # Errors
    /// [`StoreError::Poisoned`] if a flush failed.
    pub fn wait_flushed(&self, end: u64) -> Result<()> {
        self.inner.flush.wait_blocking(end)
    }

    /// Like [`Store::wait_flushed`], but as a future (runtime-agnostic; cancel-safe).
    ///
    /// # Errors
    /// [`StoreError::Poisoned`] if a flush failed.
    pub async fn flushed(&self, end: u64) -> Result<()> {
        self.inner.flush.wait(end).await
    }

    /// Makes everything appended so far durable now, and writes a checkpoint.
    ///
    /// # Errors
    /// I/O errors of the fsyncs (the store is then poisoned).
    pub fn sync(&self) -> Result<()> {
        let end = self.inner.log.written();
        match self.inner.flush.mode {
            FlushMode::Sync => self.wait_flushed(end)?,
            FlushMode::Async => {
                self.inner.flush.work.notify(1);
                flush::sync_range(&self.inner, self.inner.flush.durable(), end)?;
            }
        }
        self.inner.checkpoint()
    }

    /// Reads up to `max` records of `queue` from queue offset `from` (or from the oldest still
    /// stored, if `from` is older). Bodies point into the CommitLog mapping.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a stored entry or record fails its checks.
    pub fn read(&self, queue: QueueKey, from: u64, max: usize) -> Result<ReadBatch> {
        self.read_where(queue, from, max, usize::MAX, |_| true)
    }

    /// Like [`Store::read`], but only records whose consume-queue entry passes `keep` are read
    /// from the CommitLog (a filter on the tag hash never touches the records it rejects). At
    /// most `scan` entries are examined, so a long run of rejected entries cannot stall the
    /// caller: `next_offset` says how far the scan went, and every offset below it that is not
    /// in `messages` was rejected (or removed by retention meanwhile).
    ///
    /// # Errors
    /// As [`Store::read`].
    pub fn read_where(
        &self,
        queue: QueueKey,
        from: u64,
        max: usize,
        scan: usize,
        keep: impl Fn(&CqEntry) -> bool,
    ) -> Result<ReadBatch> {
        let Some(cq) = self.inner.queue(queue) else {
            return Ok(ReadBatch {
                messages: Vec::new(),
                next_offset: from,
                min_offset: 0,
                end_offset: 0,
            });
        };
        let (min, end) = cq.range();
        let start = from.max(min);
        let written = self.inner.log.written();
        let mut messages = Vec::with_capacity(max.min((end.saturating_sub(start)) as usize));
        // One zero-copy owner per segment touched, shared by every record read from it.
        let mut seg: Option<(Segment, Bytes)> = None;
        let mut next = start;
        let mut scanned = 0usize;
        while next < end && messages.len() < max && scanned < scan {
            let Some(e) = cq.entry(next)? else { break };
            scanned += 1;
            if !keep(&e) {
                next += 1;
                continue;
            }
            let off = e.commitlog_offset;
            if !seg
                .as_ref()
                .is_some_and(|(s, _)| s.base <= off && off < s.end())
            {
                seg = self
                    .inner
                    .log
                    .segment_at(off)
                    .and_then(|s| commitlog::published_prefix(&s, written).map(|b| (s, b)));
            }
            let Some((s, prefix)) = &seg else {
                next += 1; // removed by retention while we read
                continue;
            };
            let record = commitlog::read_from_prefix(prefix, s.base, off, s.file.path())?;
            messages.push(QueueMessage {
                queue_offset: next,
                record,
            });
            next += 1;
        }
        Ok(ReadBatch {
            messages,
            next_offset: next,
            min_offset: min,
            end_offset: end,
        })
    }

    /// Up to `max` consume-queue entries of `queue` from queue offset `from` (or the oldest
    /// still stored), with their queue offsets; the records themselves are not read.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if an entry fails its CRC.
    pub fn entries(&self, queue: QueueKey, from: u64, max: usize) -> Result<Vec<(u64, CqEntry)>> {
        let Some(cq) = self.inner.queue(queue) else {
            return Ok(Vec::new());
        };
        let (min, end) = cq.range();
        let start = from.max(min);
        let stop = end.min(start.saturating_add(max as u64));
        let mut out = Vec::with_capacity((stop - start) as usize);
        for off in start..stop {
            match cq.entry(off)? {
                Some(e) => out.push((off, e)),
                None => break,
            }
        }
        Ok(out)
    }

    /// The record starting at CommitLog offset `offset`.
    ///
    /// # Errors
    /// [`StoreError::NoRecord`] if none starts there; [`StoreError::Corrupt`].
    pub fn read_record(&self, offset: u64) -> Result<Record> {
        self.inner.log.read(offset)
    }

    /// Records carrying message key `key`, stored within `[begin_ms, end_ms]`, newest first, at
    /// most `max`. Every hit is checked against the record's own keys.
    pub fn lookup_key(&self, key: &[u8], begin_ms: i64, end_ms: i64, max: usize) -> Vec<Record> {
        self.lookup(index::key_hash(key), begin_ms, end_ms, max, |r| {
            r.keys().any(|k| k == key)
        })
    }

    /// Records whose message id is `id`, newest first, at most `max`.
    pub fn lookup_id(&self, id: &[u8], max: usize) -> Vec<Record> {
        self.lookup(index::id_hash(id), i64::MIN, i64::MAX, max, |r| {
            r.msg_id == id
        })
    }

    fn lookup(
        &self,
        hash: u64,
        b: i64,
        e: i64,
        max: usize,
        matches: impl Fn(&Record) -> bool,
    ) -> Vec<Record> {
        let hits = self
            .inner
            .index()
            .lookup(hash, b, e, max.saturating_mul(2).saturating_add(8));
        hits.into_iter()
            .filter_map(|h| self.inner.log.read(h.commitlog_offset).ok())
            .filter(|r| matches(r))
            .take(max)
            .collect()
    }

    /// The first offset of `queue` whose record was stored at or after `ts_ms` (the queue's end
    /// if none): where to replay from for a timestamp.
    pub fn offset_for_time(&self, queue: QueueKey, ts_ms: i64) -> u64 {
        self.inner
            .queue(queue)
            .map_or(0, |q| q.offset_for_time(ts_ms))
    }

    /// `(oldest stored offset, next offset)` of a queue partition, if it has ever had a record.
    pub fn queue_range(&self, queue: QueueKey) -> Option<(u64, u64)> {
        self.inner.queue(queue).map(|q| q.range())
    }

    /// Every queue partition with a consume queue.
    pub fn queues(&self) -> Vec<QueueKey> {
        let mut v: Vec<QueueKey> = self.inner.all_queues().iter().map(|q| q.key()).collect();
        v.sort();
        v
    }

    /// Tells retention that no consumer of `queue` needs records below queue offset `offset`.
    /// Until called, a queue needs everything it holds.
    pub fn set_floor(&self, queue: QueueKey, offset: u64) {
        if let Some(q) = self.inner.queue(queue) {
            q.set_floor(offset);
        }
    }

    /// Deletes a queue partition's consume queue. Its records stay in the CommitLog until
    /// retention removes them.
    ///
    /// # Errors
    /// I/O errors removing the files.
    pub fn delete_queue(&self, queue: QueueKey) -> Result<()> {
        let mut w = lock(&self.inner.writer);
        w.cqs.remove(&queue);
        let q = self.inner.queues_mut().remove(&queue);
        drop(w);
        q.map_or(Ok(()), |q| q.destroy())
    }

    /// Runs retention now (it also runs every `checkpoint_interval`).
    pub fn apply_retention(&self) {
        self.inner.apply_retention();
    }

    /// Whether appends are being refused for low disk space (as of the last check).
    pub fn is_disk_low(&self) -> bool {
        self.inner.disk_low.load(Ordering::Acquire)
    }

    /// Re-reads free disk space now (it is also checked every `checkpoint_interval`).
    pub fn refresh_disk(&self) {
        self.inner.refresh_disk();
    }

    /// Free space on the store's file system, bytes, as of the last check.
    pub fn disk_free(&self) -> u64 {
        self.inner.disk_free.load(Ordering::Relaxed)
    }

    /// The free space below which appends are refused (`disk_low_watermark`), bytes.
    pub fn disk_low_watermark(&self) -> u64 {
        self.inner.disk_watermark.load(Ordering::Relaxed)
    }

    /// Changes `disk_low_watermark` while the store runs and checks free space against it at
    /// once (RabbitMQ's `set_disk_free_limit`). Not written anywhere: a restart goes back to
    /// the configured value.
    pub fn set_disk_low_watermark(&self, bytes: u64) {
        self.inner.disk_watermark.store(bytes, Ordering::Relaxed);
        self.inner.refresh_disk();
    }

    /// Counters and positions.
    pub fn stats(&self) -> StoreStats {
        let i = &self.inner;
        StoreStats {
            records: i.stats.records.load(Ordering::Relaxed),
            bytes: i.stats.bytes.load(Ordering::Relaxed),
            fsyncs: i.flush.fsyncs.load(Ordering::Relaxed),
            records_synced: i.flush.records_synced.load(Ordering::Relaxed),
            log_start: i.log.start(),
            log_end: i.log.written(),
            durable: i.flush.durable(),
            segments: i.log.segments().len(),
        }
    }

    /// Append and flush latency histograms.
    pub fn latencies(&self) -> StoreLatencies {
        StoreLatencies {
            append: self.inner.append_latency.snapshot(),
            flush: self.inner.flush_latency.snapshot(),
        }
    }

    /// Stops the background threads, flushes everything and writes a final checkpoint, so the
    /// next open scans nothing. Appends after this fail with [`StoreError::Closed`].
    ///
    /// # Errors
    /// The first I/O error of the final flush.
    pub fn close(&self) -> Result<()> {
        let threads: Vec<_> = std::mem::take(&mut *lock(&self.threads));
        if threads.is_empty() {
            return Ok(());
        }
        {
            let _w = lock(&self.inner.writer); // no append is half-done past this point
            self.inner.closed.store(true, Ordering::Release);
        }
        self.inner.flush.work.notify(usize::MAX);
        self.inner.service.notify(usize::MAX);
        for t in threads {
            let _ = t.join();
        }
        if self.inner.flush.is_poisoned() {
            return Err(StoreError::Poisoned);
        }
        let end = self.inner.log.written();
        flush::sync_range(&self.inner, self.inner.flush.durable(), end)?;
        let cp = Checkpoint {
            durable: end,
            dispatched: end,
            last_ts: self.inner.last_ts.load(Ordering::Acquire),
        };
        for q in self.inner.all_queues() {
            q.flush()?;
        }
        self.inner.index().flush()?;
        let log_end = self.inner.log.segments().last().map_or(0, |s| s.end());
        if let Some(spare) = self.inner.spare().take().filter(|s| s.base >= log_end) {
            let _ = std::fs::remove_file(spare.file.path());
        }
        lock(&self.inner.checkpoint).write(&cp, now_ms())?;
        // Closing the descriptor releases the flock: the directory can be opened again, even
        // while stale handles to this store are still around.
        drop(lock(&self.inner.lock_file).take());
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "store close failed");
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| StoreError::Io {
            path: PathBuf::from(name),
            source: e,
        })
}

/// The service thread: spare segment, checkpoint, retention and the disk check.
fn run_service(inner: &Inner) {
    let tick = inner.cfg.checkpoint_interval;
    let mut next_tick = std::time::Instant::now() + tick;
    while !inner.closed.load(Ordering::Acquire) {
        if let Err(e) = inner.prepare_spare() {
            tracing::warn!(error = %e, "could not preallocate the next segment");
        }
        let l = inner.service.listen();
        if inner.closed.load(Ordering::Acquire) {
            break;
        }
        let _ = l.wait_deadline(next_tick);
        if std::time::Instant::now() >= next_tick {
            next_tick += tick;
            inner.refresh_disk();
            if let Err(e) = inner.checkpoint() {
                tracing::error!(error = %e, "checkpoint failed");
            }
            inner.apply_retention();
            if next_tick < std::time::Instant::now() {
                next_tick = std::time::Instant::now() + tick;
            }
        }
    }
}
