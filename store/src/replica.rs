//! Replication of the CommitLog, master to slave, by offset (RocketMQ's HA service).
//!
//! A slave's CommitLog is a byte-for-byte copy of its master's: the same records at the same
//! offsets, the same segment boundaries. So a consumer can switch from one to the other and
//! keep its queue offsets, and a slave promoted to master goes on from where it is.
//!
//! - Master: [`Store::read_replica`] hands out whole records from a CommitLog offset, as
//!   `Bytes` pointing into the mapped segment (no copy), and marks the end of a segment with one
//!   blank record header whose length is the rest of that segment.
//! - Slave: [`Store::append_replicated`] checks each record (CRC, and the CommitLog offset the
//!   record carries must be where it is written), copies it to the same offset, dispatches it to
//!   its consume queues (at the queue offsets the record carries) and the index, as recovery
//!   does, and rolls to the next segment exactly where the master did.
//! - A new slave of a master whose oldest segments were already removed starts where the
//!   master's log starts ([`Store::reset_start`]).
//! - An old master that comes back as a slave cuts what it wrote after its term ended
//!   ([`truncate_log`], on the closed directory; the next open recovers from there).
//! - Sync replication: [`ReplicaGate`] holds how far the slaves have acknowledged; publishers
//!   wait on it as they wait on the flush.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use event_listener::Event;

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::commitlog::{self, CommitLog, Segment};
use crate::config::StoreConfig;
use crate::consume_queue::CqEntry;
use crate::error::{Result, StoreError};
use crate::index::{id_hash, key_hash};
use crate::mapped;
use crate::record::{self, Probe, QueueKey, BLANK_MIN, KIND_BLANK, MAGIC, TARGET_LEN, VERSION};
use crate::store::{lock, now_ms, Store};
use crate::writer;

/// How far slaves have acknowledged the CommitLog, for sync replication: a publish is
/// confirmed only once [`ReplicaGate::acked`] covers it, while [`ReplicaGate::required`].
///
/// The store only keeps the number; the replication service decides which slaves count
/// (the in-sync ones) and calls [`ReplicaGate::ack`] with the offset all of them have.
#[derive(Debug, Default)]
pub struct ReplicaGate {
    required: AtomicBool,
    acked: AtomicU64,
    timeout_ms: AtomicU64,
    changed: Event,
    /// Notified after every append (replication tasks wait on it).
    pub(crate) grew: Event,
}

impl ReplicaGate {
    /// Turns the wait on or off; `timeout` is how long a publisher waits for a slave before its
    /// publish fails (the caller applies it, see [`ReplicaGate::timeout`]).
    pub fn set_required(&self, required: bool, timeout: Duration) {
        self.timeout_ms.store(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            Ordering::Release,
        );
        self.required.store(required, Ordering::Release);
        self.changed.notify(usize::MAX);
    }

    /// Whether publishes wait for slaves.
    pub fn required(&self) -> bool {
        self.required.load(Ordering::Acquire)
    }

    /// How long a publish may wait for slaves.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Acquire))
    }

    /// The CommitLog offset every counted slave has stored.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Acquire)
    }

    /// Records that the slaves have stored everything below `end` (never moves back).
    pub fn ack(&self, end: u64) {
        if self.acked.fetch_max(end, Ordering::AcqRel) < end {
            self.changed.notify(usize::MAX);
        }
    }

    /// Resolves once everything below `end` is acknowledged, or the wait is turned off.
    /// Runtime-agnostic and cancel-safe; bound it with [`ReplicaGate::timeout`].
    pub async fn wait(&self, end: u64) {
        loop {
            if !self.required() || self.acked() >= end {
                return;
            }
            let l = self.changed.listen();
            if !self.required() || self.acked() >= end {
                return;
            }
            l.await;
        }
    }
}

/// The 8 bytes that stand for the padding at the end of a segment in the replication stream:
/// a blank record header whose length is the rest of the segment (which may be under 8 bytes,
/// where the master's segment has no header at all).
fn roll_marker(rest: u64) -> Bytes {
    Bytes::copy_from_slice(&record::blank_header(rest as u32))
}

impl Store {
    /// The replication stream from CommitLog offset `from`: whole records, about `max` bytes
    /// (at least one record), zero-copy; or, where the segment holding `from` ends, a blank
    /// header whose length is the rest of that segment. Returns the bytes and the offset they
    /// take the log to; `None` when nothing is past `from` yet.
    ///
    /// # Errors
    /// [`StoreError::NoRecord`] if `from` was removed by retention (the slave must start over)
    /// or is past the end; [`StoreError::Corrupt`] if the bytes there are not records.
    pub fn read_replica(&self, from: u64, max: usize) -> Result<Option<(Bytes, u64)>> {
        let written = self.inner.log.written();
        if from == written {
            return Ok(None);
        }
        if from > written {
            return Err(StoreError::NoRecord { offset: from });
        }
        let seg = self
            .inner
            .log
            .segment_at(from)
            .ok_or(StoreError::NoRecord { offset: from })?;
        let prefix = commitlog::published_prefix(&seg, written)
            .ok_or(StoreError::NoRecord { offset: from })?;
        let start = (from - seg.base) as usize;
        let mut at = start;
        loop {
            let rest = prefix.get(at..).unwrap_or_default();
            if rest.is_empty() {
                break;
            }
            let off = seg.base + at as u64;
            match record::probe(rest, off, false) {
                Probe::Message(len) => {
                    if at > start && at - start + len as usize > max {
                        break;
                    }
                    at += len as usize;
                }
                Probe::Blank | Probe::End => {
                    if at == start {
                        return Ok(Some((roll_marker(seg.end() - off), seg.end())));
                    }
                    break;
                }
                Probe::Invalid(reason) => {
                    return Err(StoreError::Corrupt {
                        file: seg.file.path().to_path_buf(),
                        offset: at as u64,
                        reason,
                    })
                }
            }
        }
        Ok(Some((prefix.slice(start..at), seg.base + at as u64)))
    }

    /// Resolves once the CommitLog end is past `from` (a master's replication task waits on it
    /// for new records). Cancel-safe.
    pub async fn grown_past(&self, from: u64) {
        loop {
            if self.inner.log.written() > from {
                return;
            }
            let l = self.inner.replica.grew.listen();
            if self.inner.log.written() > from {
                return;
            }
            l.await;
        }
    }

    /// Appends bytes of the replication stream (see [`Store::read_replica`]) that start at
    /// CommitLog offset `offset`, which must be this log's end. Every record is CRC-checked and
    /// must carry `offset` as its own position; it is written at that offset and dispatched to
    /// its consume queues and the index as on the master. Returns the new end; the
    /// queue partitions that got records are added to `touched`.
    ///
    /// Records before a bad one stay appended; the error names the offset of the bad one.
    ///
    /// # Errors
    /// [`StoreError::Replica`] for bytes that do not continue this log (wrong offset, bad CRC,
    /// a segment end that does not match, a queue offset that does not follow); and what
    /// [`Store::write`] can fail with ([`StoreError::DiskLow`], I/O, ...).
    pub fn append_replicated(
        &self,
        offset: u64,
        bytes: &[u8],
        touched: &mut Vec<QueueKey>,
    ) -> Result<u64> {
        let inner = &*self.inner;
        let mut w = lock(&inner.writer);
        inner.check_writable()?;
        let refuse = |offset, reason: String| StoreError::Replica { offset, reason };
        let mut pos = w.active.base + w.pos;
        if offset != pos {
            return Err(refuse(
                offset,
                format!("this log ends at {pos}, the bytes start at {offset}"),
            ));
        }
        let mut at = 0usize;
        while let Some(rest) = bytes.get(at..).filter(|r| !r.is_empty()) {
            let room = w.active.end() - pos;
            if is_blank(rest) {
                let len = u64::from(record::u32_at(rest, 0));
                if len != room {
                    return Err(refuse(
                        pos,
                        format!("segment end marker of {len} bytes, {room} left here"),
                    ));
                }
                w.roll(inner)?;
                at += BLANK_MIN as usize;
                pos = w.active.base;
                continue;
            }
            let len = match record::probe(rest, pos, true) {
                Probe::Message(len) => u64::from(len),
                Probe::Invalid(why) => return Err(refuse(pos, why.into())),
                Probe::Blank | Probe::End => return Err(refuse(pos, "not a record".into())),
            };
            if len > room {
                return Err(refuse(pos, "record crosses the segment end".into()));
            }
            let rec = rest.get(..len as usize).unwrap_or_default();
            let store_ts = dispatch(inner, &mut w, rec, pos)?;
            // SAFETY: we hold the writer mutex; [pos, pos + len) is inside the active segment
            // (checked above) and past the published end, so no reader looks at it.
            unsafe { w.active.file.write(w.pos, rec) };
            w.pos += len;
            w.last_ts = w.last_ts.max(store_ts);
            inner.last_ts.store(w.last_ts, Ordering::Release);
            inner.stats.records.fetch_add(1, Ordering::AcqRel);
            inner.stats.bytes.fetch_add(len, Ordering::Relaxed);
            inner.log.publish(pos + len);
            for q in &w.cqs_touched {
                q.0.publish(q.1);
                touched.push(q.0.key());
            }
            at += len as usize;
            pos += len;
        }
        Ok(pos)
    }

    /// Moves an empty store to start at CommitLog offset `base` (a segment boundary of the
    /// master): a new slave of a master whose older segments were removed copies from there.
    ///
    /// # Errors
    /// [`StoreError::Replica`] if the store already holds records; I/O.
    pub fn reset_start(&self, base: u64) -> Result<()> {
        let inner = &*self.inner;
        let mut w = lock(&inner.writer);
        inner.check_writable()?;
        if inner.log.written() != 0 || w.pos != 0 || w.active.base != 0 {
            return Err(StoreError::Replica {
                offset: base,
                reason: "only an empty store can move its start".into(),
            });
        }
        if base == 0 {
            return Ok(());
        }
        let seg = {
            let mut spare = inner.spare();
            if let Some(s) = spare.take() {
                let _ = std::fs::remove_file(s.file.path());
            }
            writer::new_segment(inner, base)?
        };
        for old in inner.log.replace_all(seg.clone()) {
            let _ = std::fs::remove_file(old.file.path());
        }
        for (b, path) in mapped::numbered_files(inner.log.dir())? {
            if b < base {
                let _ = std::fs::remove_file(path);
            }
        }
        mapped::sync_dir(inner.log.dir())?;
        w.active = seg;
        w.pos = 0;
        inner.log.publish(base);
        inner.flush.advance(base);
        drop(w);
        inner.checkpoint()?;
        inner.service.notify(1);
        Ok(())
    }

    /// Size of each CommitLog segment (a slave's must equal its master's).
    pub fn segment_size(&self) -> u64 {
        self.inner.cfg.segment_size
    }

    /// CommitLog end: the offset the next record gets.
    pub fn log_end(&self) -> u64 {
        self.inner.log.written()
    }

    /// The sync-replication gate publishers wait on.
    pub fn replica_gate(&self) -> &ReplicaGate {
        &self.inner.replica
    }

    /// Like [`Store::flushed`], then waits for the slaves when sync replication is on (at most
    /// [`ReplicaGate::timeout`], measured with `sleep`, the caller's runtime timer).
    ///
    /// # Errors
    /// [`StoreError::Poisoned`] if a flush failed; [`StoreError::Replica`] if no slave stored
    /// the record in time.
    pub async fn confirmed<F: std::future::Future<Output = ()>>(
        &self,
        end: u64,
        sleep: impl FnOnce(Duration) -> F,
    ) -> Result<()> {
        self.flushed(end).await?;
        let gate = &self.inner.replica;
        if !gate.required() || gate.acked() >= end {
            return Ok(());
        }
        let timeout = sleep(gate.timeout());
        let wait = gate.wait(end);
        futures_lite_select(wait, timeout)
            .await
            .then_some(())
            .ok_or(StoreError::Replica {
                offset: end,
                reason: format!(
                    "no in-sync slave stored it within {} ms",
                    gate.timeout().as_millis()
                ),
            })
    }
}

/// Whether `rest` starts with a blank header (the segment-end marker of the stream).
fn is_blank(rest: &[u8]) -> bool {
    rest.len() >= BLANK_MIN as usize
        && record::u16_at(rest, 4) == MAGIC
        && rest.get(6) == Some(&VERSION)
        && rest.get(7) == Some(&KIND_BLANK)
}

/// Polls `a` and `b` together: true if `a` finished first.
async fn futures_lite_select(
    a: impl std::future::Future<Output = ()>,
    b: impl std::future::Future<Output = ()>,
) -> bool {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(true);
        }
        if b.as_mut().poll(cx).is_ready() {
            return std::task::Poll::Ready(false);
        }
        std::task::Poll::Pending
    })
    .await
}

/// Writes a replicated record's consume-queue and index entries (not yet published; the caller
/// publishes the queue ends in `w.cqs_touched` after the log end). Returns its store time.
fn dispatch(
    inner: &crate::store::Inner,
    w: &mut writer::Writer,
    rec: &[u8],
    pos: u64,
) -> Result<i64> {
    let refuse = |reason: String| StoreError::Replica {
        offset: pos,
        reason,
    };
    let l = record::layout(rec).ok_or_else(|| refuse("inconsistent lengths".into()))?;
    let store_ts = record::u64_at(rec, 28) as i64;
    let entry = CqEntry {
        commitlog_offset: pos,
        size: rec.len() as u32,
        tag_hash: record::u64_at(rec, 36),
        store_ts,
    };
    w.cqs_touched.clear();
    let targets = rec.get(l.targets.0..l.targets.1).unwrap_or_default();
    for t in targets.chunks_exact(TARGET_LEN) {
        let key = QueueKey::new(record::u32_at(t, 0), record::u32_at(t, 4));
        let qo = record::u64_at(t, 8);
        let q = w.queue(inner, key)?;
        let (min, end) = q.range();
        if qo != end {
            if min == end && qo > end {
                q.start_at(qo)?;
            } else {
                return Err(refuse(format!(
                    "queue {}/{} is at offset {end}, the record is for {qo}",
                    key.queue, key.partition
                )));
            }
        }
        q.put(qo, &entry)?;
        w.cqs_touched.push((q, qo + 1));
    }
    let msg_id = rec.get(l.msg_id.0..l.msg_id.1).unwrap_or_default();
    let mut keys = Vec::new();
    let mut k = l.keys.0;
    for _ in 0..l.key_count {
        let kl = usize::from(record::u16_at(rec, k));
        keys.push(rec.get(k + 2..k + 2 + kl).unwrap_or_default());
        k += 2 + kl;
    }
    if !msg_id.is_empty() || !keys.is_empty() {
        let mut index = inner.index();
        if !msg_id.is_empty() {
            index.put(id_hash(msg_id), pos, rec.len() as u32, store_ts)?;
        }
        for key in keys {
            index.put(key_hash(key), pos, rec.len() as u32, store_ts)?;
        }
    }
    Ok(store_ts)
}

/// Cuts the CommitLog in the closed store `cfg.dir` at `offset` (a record boundary): what was
/// written from there on is zeroed or deleted, and the checkpoint is moved back so that the
/// next [`Store::open`] rebuilds consume queues and the index up to `offset` only. An old
/// master rejoining as a slave does this with the offset where its term ended.
///
/// # Errors
/// [`StoreError::Locked`] if the store is open; [`StoreError::Replica`] if `offset` is below
/// the log's start; I/O.
pub fn truncate_log(cfg: &StoreConfig, offset: u64) -> Result<()> {
    let lock_path = cfg.dir.join("LOCK");
    let lock_file = std::fs::File::create(&lock_path).map_err(StoreError::io(&lock_path))?;
    rustix::fs::flock(
        &lock_file,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )
    .map_err(|_| StoreError::Locked {
        path: lock_path.clone(),
    })?;
    let log = CommitLog::open(&cfg.dir.join("commitlog"), cfg.segment_size)?;
    if offset < log.start() {
        return Err(StoreError::Replica {
            offset,
            reason: format!("the log starts at {}", log.start()),
        });
    }
    let mut cut = false;
    if let Some(seg) = log.segment_at(offset) {
        seg.file.zero_from(offset - seg.base)?;
        seg.file.sync()?;
        cut = true;
    }
    let removed: Vec<Segment> = log.cut_after(offset);
    for s in &removed {
        if s.base >= offset {
            std::fs::remove_file(s.file.path()).map_err(StoreError::io(s.file.path()))?;
            cut = true;
        }
    }
    mapped::sync_dir(log.dir())?;
    let (mut file, cp) = CheckpointFile::open(&cfg.dir.join("checkpoint"))?;
    if let Some(cp) = cp {
        let moved = Checkpoint {
            durable: cp.durable.min(offset),
            dispatched: cp.dispatched.min(offset),
            last_ts: cp.last_ts,
        };
        file.write(&moved, now_ms())?;
    }
    if cut {
        tracing::warn!(dir = %cfg.dir.display(), offset, "commitlog truncated");
    }
    drop(lock_file);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AppendRequest;
    use std::future::Future;

    const A: QueueKey = QueueKey::new(1, 0);
    const B: QueueKey = QueueKey::new(2, 3);

    fn append(store: &Store, i: u64, len: usize) -> u64 {
        let body: Vec<u8> = (0..len).map(|j| (i as usize * 7 + j) as u8).collect();
        let key = format!("k{i}");
        let id = format!("id{i}");
        let keys: [&[u8]; 1] = [key.as_bytes()];
        let targets: &[QueueKey] = if i.is_multiple_of(3) { &[A, B] } else { &[A] };
        store
            .append(&AppendRequest {
                targets,
                keys: &keys,
                msg_id: id.as_bytes(),
                body: &body,
                tag_hash: i,
                ..Default::default()
            })
            .unwrap()
            .end()
    }

    /// Copies everything the master has to the slave, in chunks of about `max` bytes.
    fn sync(master: &Store, slave: &Store, max: usize) {
        while let Some((chunk, next)) = master.read_replica(slave.log_end(), max).unwrap() {
            assert_eq!(
                slave
                    .append_replicated(slave.log_end(), &chunk, &mut Vec::new())
                    .unwrap(),
                next
            );
        }
    }

    fn bodies(s: &Store, q: QueueKey) -> Vec<(u64, u64, Bytes)> {
        s.read(q, 0, 10_000)
            .unwrap()
            .messages
            .into_iter()
            .map(|m| (m.queue_offset, m.record.commitlog_offset, m.record.body))
            .collect()
    }

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let std::task::Poll::Ready(r) = fut.as_mut().poll(&mut cx) {
                return r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "future never completed"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_slave_is_a_copy_at_the_same_offsets_across_segments_and_restarts() {
        let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let master = Store::open(StoreConfig::tiny(md.path())).unwrap();
        let slave = Store::open(StoreConfig::tiny(sd.path())).unwrap();
        for i in 0..300 {
            append(&master, i, 50 + (i as usize * 13) % 300);
        }
        assert!(master.stats().segments > 5);
        sync(&master, &slave, 1000);
        assert_eq!(slave.log_end(), master.log_end());
        assert_eq!(slave.stats().segments, master.stats().segments);
        assert_eq!(slave.stats().records, 300);
        for q in [A, B] {
            assert_eq!(bodies(&slave, q), bodies(&master, q));
            assert_eq!(slave.queue_range(q), master.queue_range(q));
        }
        let hit = slave.lookup_key(b"k123", i64::MIN, i64::MAX, 2);
        assert_eq!(hit.len(), 1);
        assert_eq!(
            hit[0].body,
            master.lookup_key(b"k123", i64::MIN, i64::MAX, 2)[0].body
        );
        assert_eq!(slave.lookup_id(b"id7", 1).len(), 1);

        // The slave restarts, the master goes on; the slave resumes from its own end.
        let end = slave.log_end();
        drop(slave);
        for i in 300..400 {
            append(&master, i, 100);
        }
        let slave = Store::open(StoreConfig::tiny(sd.path())).unwrap();
        assert_eq!(slave.log_end(), end);
        sync(&master, &slave, 1 << 20);
        assert_eq!(slave.log_end(), master.log_end());
        assert_eq!(bodies(&slave, A), bodies(&master, A));
        // A slave's records are appended like any others: promoted, it goes on writing.
        let next = append(&slave, 400, 10);
        assert_eq!(next, append(&master, 400, 10));
    }

    #[test]
    fn bytes_that_do_not_continue_the_log_are_refused() {
        let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let master = Store::open(StoreConfig::tiny(md.path())).unwrap();
        let slave = Store::open(StoreConfig::tiny(sd.path())).unwrap();
        for i in 0..10 {
            append(&master, i, 40);
        }
        let (chunk, _) = master.read_replica(0, 1 << 20).unwrap().unwrap();
        // Not where the slave's log ends.
        assert!(matches!(
            slave.append_replicated(chunk.len() as u64, &chunk, &mut Vec::new()),
            Err(StoreError::Replica { .. })
        ));
        // A record at another offset than it claims: the same bytes shifted.
        let first_len = record::u32_at(&chunk, 0) as usize;
        let shifted = [&chunk[first_len..]].concat();
        assert!(slave
            .append_replicated(0, &shifted, &mut Vec::new())
            .is_err());
        // One flipped bit in the fourth record: the first three are kept.
        let mut bad = chunk.to_vec();
        let mut at = 0;
        for _ in 0..3 {
            at += record::u32_at(&bad, at) as usize;
        }
        let good_end = at as u64;
        bad[at + 70] ^= 1;
        let e = slave
            .append_replicated(0, &bad, &mut Vec::new())
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Replica { offset, .. } if offset == good_end),
            "{e}"
        );
        assert_eq!(slave.log_end(), good_end);
        assert_eq!(slave.read(A, 0, 100).unwrap().messages.len(), 3);
        // A segment-end marker in the middle of a segment.
        let marker = roll_marker(10);
        assert!(slave
            .append_replicated(good_end, &marker, &mut Vec::new())
            .is_err());
        // The rest still applies.
        sync(&master, &slave, 100);
        assert_eq!(bodies(&slave, A), bodies(&master, A));
    }

    #[test]
    fn a_new_slave_of_a_trimmed_master_starts_where_its_log_starts() {
        let (md, sd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let master = Store::open(StoreConfig::tiny(md.path())).unwrap();
        for i in 0..300 {
            append(&master, i, 200);
        }
        master.set_floor(A, 250);
        master.set_floor(B, 95);
        master.apply_retention();
        let start = master.stats().log_start;
        assert!(start > 0);
        assert!(matches!(
            master.read_replica(0, 100),
            Err(StoreError::NoRecord { .. })
        ));

        let slave = Store::open(StoreConfig::tiny(sd.path())).unwrap();
        slave.reset_start(start).unwrap();
        sync(&master, &slave, 4096);
        assert_eq!(slave.stats().log_start, start);
        for q in [A, B] {
            assert_eq!(bodies(&slave, q), bodies(&master, q));
            assert_eq!(slave.queue_range(q), master.queue_range(q));
        }
        drop(slave);
        let slave = Store::open(StoreConfig::tiny(sd.path())).unwrap();
        for q in [A, B] {
            assert_eq!(slave.queue_range(q), master.queue_range(q), "after restart");
            assert_eq!(bodies(&slave, q), bodies(&master, q));
        }
        assert!(slave.reset_start(0).is_err(), "not empty any more");
    }

    #[test]
    fn truncation_cuts_records_queue_entries_and_index_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = StoreConfig::tiny(dir.path());
        let store = Store::open(cfg.clone()).unwrap();
        let mut ends = Vec::new();
        for i in 0..120 {
            ends.push(append(&store, i, 150));
        }
        let cut = ends[69]; // keep records 0..=69
        assert!(matches!(
            truncate_log(&cfg, cut),
            Err(StoreError::Locked { .. })
        ));
        drop(store);
        truncate_log(&cfg, cut).unwrap();
        let store = Store::open(cfg.clone()).unwrap();
        assert_eq!(store.log_end(), cut);
        assert_eq!(store.queue_range(A), Some((0, 70)));
        assert_eq!(store.queue_range(B).map(|r| r.1), Some(24)); // 0, 3, ..., 69
        assert!(store.lookup_key(b"k100", i64::MIN, i64::MAX, 1).is_empty());
        assert_eq!(store.lookup_key(b"k69", i64::MIN, i64::MAX, 1).len(), 1);
        // It goes on from the cut, and what it writes there is found.
        assert_eq!(
            append(&store, 500, 20),
            cut + store.read_record(cut).unwrap().size() as u64
        );
        assert_eq!(store.lookup_key(b"k500", i64::MIN, i64::MAX, 1).len(), 1);
        assert_eq!(
            store.read(A, 70, 1).unwrap().messages[0]
                .record
                .commitlog_offset,
            cut
        );
    }

    #[test]
    fn the_gate_holds_confirms_until_a_slave_acknowledges_or_time_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::tiny(dir.path())).unwrap();
        let end = append(&store, 1, 10);
        let never = |_| std::future::pending::<()>();
        // Off: a confirm is the flush alone.
        block_on(store.confirmed(end, never)).unwrap();
        store
            .replica_gate()
            .set_required(true, Duration::from_millis(5));
        let now = |_| std::future::ready(());
        assert!(matches!(
            block_on(store.confirmed(end, now)),
            Err(StoreError::Replica { .. })
        ));
        store.replica_gate().ack(end);
        block_on(store.confirmed(end, never)).unwrap();
        assert_eq!(store.replica_gate().acked(), end);
        let later = append(&store, 2, 10);
        // Turning it off releases waiters.
        let gate = &store.replica_gate();
        let mut wait = std::pin::pin!(gate.wait(later));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        gate.set_required(false, Duration::ZERO);
        assert!(wait.as_mut().poll(&mut cx).is_ready());
    }
}
