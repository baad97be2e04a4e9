//! Consume queues: per queue partition, the list of its records' CommitLog positions.
//!
//! A consume queue is a sequence of fixed-width entries in files of `cq_entries_per_file`
//! entries, named by the queue offset of their first entry:
//!
//! ```text
//! consumequeue/<queue>/<partition>/00000000000000000000
//!
//! entry (32 bytes, little-endian)
//!   0  8  commitlog_offset
//!   8  4  size             record size in the CommitLog
//!  12  4  crc32c           of the other 28 bytes: a torn entry is detected, never followed
//!  16  8  tag_hash         filter by tag without reading the record
//!  24  8  store_ts         ms; non-decreasing, so time -> offset is a binary search
//! ```
//!
//! Entry `n` of a queue is at byte `(n % per_file) * 32` of file `n - n % per_file`. Entries are
//! written by the dispatcher at the queue offset the record itself carries, so replaying the
//! CommitLog into a consume queue is idempotent: that is how recovery rebuilds them.
//!
//! ### Invariants
//! - Entries `[min, end)` are valid, with increasing `commitlog_offset` and non-decreasing
//!   `store_ts`. `end` is Release-stored after the entry bytes are written.
//! - Only the store's writer (or recovery, before the store is shared) writes entries.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Result, StoreError};
use crate::mapped::{self, MappedFile};
use crate::record::QueueKey;

/// Bytes per entry.
pub const ENTRY_LEN: u64 = 32;

/// One consume-queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CqEntry {
    /// Where the record starts in the CommitLog.
    pub commitlog_offset: u64,
    /// Record size.
    pub size: u32,
    /// The record's tag hash.
    pub tag_hash: u64,
    /// The record's store timestamp, ms.
    pub store_ts: i64,
}

impl CqEntry {
    fn encode(&self) -> [u8; ENTRY_LEN as usize] {
        let mut b = [0u8; ENTRY_LEN as usize];
        b[0..8].copy_from_slice(&self.commitlog_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.size.to_le_bytes());
        b[16..24].copy_from_slice(&self.tag_hash.to_le_bytes());
        b[24..32].copy_from_slice(&self.store_ts.to_le_bytes());
        let crc = entry_crc(&b);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// `None` for a zero or torn entry.
    fn decode(b: &[u8]) -> Option<CqEntry> {
        let b: &[u8; ENTRY_LEN as usize] = b.try_into().ok()?;
        let crc = crate::record::u32_at(b, 12);
        if b.iter().all(|&x| x == 0) || crc != entry_crc(b) {
            return None;
        }
        let u64_at = |i: usize| crate::record::u64_at(b, i);
        Some(CqEntry {
            commitlog_offset: u64_at(0),
            size: crate::record::u32_at(b, 8),
            tag_hash: u64_at(16),
            store_ts: u64_at(24) as i64,
        })
    }
}

fn entry_crc(b: &[u8; ENTRY_LEN as usize]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&b[0..12]), &b[16..32])
}

#[derive(Debug)]
struct CqFile {
    first: u64,
    file: Arc<MappedFile>,
    dirty: AtomicBool,
}

/// The consume queue of one queue partition.
#[derive(Debug)]
pub(crate) struct ConsumeQueue {
    key: QueueKey,
    dir: PathBuf,
    per_file: u64,
    files: RwLock<Vec<Arc<CqFile>>>,
    end: AtomicU64,
    min: AtomicU64,
    floor: AtomicU64,
}

impl ConsumeQueue {
    /// Directory of a queue partition's files under `root`.
    pub(crate) fn dir_of(root: &Path, key: QueueKey) -> PathBuf {
        root.join(key.queue.to_string())
            .join(key.partition.to_string())
    }

    /// Opens (or creates, lazily on first write) the consume queue of `key`. Its range is not
    /// known until [`ConsumeQueue::recover`].
    pub(crate) fn open(root: &Path, key: QueueKey, per_file: u64) -> Result<ConsumeQueue> {
        let dir = Self::dir_of(root, key);
        let mut files = Vec::new();
        for (first, path) in mapped::numbered_files(&dir)? {
            if first % per_file != 0 {
                return Err(StoreError::Corrupt {
                    file: path,
                    offset: 0,
                    reason: "consume-queue file not aligned to cq_entries_per_file",
                });
            }
            let file = MappedFile::open(&path, per_file * ENTRY_LEN, false)?;
            files.push(Arc::new(CqFile {
                first,
                file: Arc::new(file),
                dirty: AtomicBool::new(false),
            }));
        }
        let min = files.first().map_or(0, |f| f.first);
        Ok(ConsumeQueue {
            key,
            dir,
            per_file,
            files: RwLock::new(files),
            end: AtomicU64::new(min),
            min: AtomicU64::new(min),
            floor: AtomicU64::new(0),
        })
    }

    pub(crate) fn key(&self) -> QueueKey {
        self.key
    }

    /// Readable range `[min, end)`.
    pub(crate) fn range(&self) -> (u64, u64) {
        (
            self.min.load(Ordering::Acquire),
            self.end.load(Ordering::Acquire),
        )
    }

    /// The writer's next queue offset (the writer is the only one advancing it).
    pub(crate) fn next_offset(&self) -> u64 {
        self.end.load(Ordering::Relaxed)
    }

    /// Makes entries below `end` readable.
    pub(crate) fn publish(&self, end: u64) {
        self.end.store(end, Ordering::Release);
    }

    /// The consumers' floor: the lowest queue offset any consumer may still need.
    pub(crate) fn set_floor(&self, offset: u64) {
        self.floor.store(offset, Ordering::Release);
    }

    fn file_for(&self, offset: u64) -> Option<Arc<CqFile>> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        let first = offset - offset % self.per_file;
        // Nearly always the last file.
        match files.last() {
            Some(f) if f.first == first => Some(Arc::clone(f)),
            _ => files
                .binary_search_by_key(&first, |f| f.first)
                .ok()
                .and_then(|i| files.get(i))
                .cloned(),
        }
    }

    /// Makes an empty consume queue start at `offset` instead of 0 (a slave whose first copy of
    /// this queue's records starts mid-queue, because the master's older segments were removed
    /// by retention). The entries below `offset` in its file are filled with entries pointing at
    /// CommitLog offset 0, which is below such a log's start, so recovery skips them too.
    /// Writer only.
    pub(crate) fn start_at(&self, offset: u64) -> Result<()> {
        let first = offset - offset % self.per_file;
        let filler = CqEntry {
            commitlog_offset: 0,
            size: 0,
            tag_hash: 0,
            store_ts: 0,
        };
        for o in first..offset {
            self.put(o, &filler)?;
        }
        self.min.store(offset, Ordering::Release);
        self.end.store(offset, Ordering::Release);
        Ok(())
    }

    /// Writes entry `offset` (does not publish it). Writer or recovery only.
    pub(crate) fn put(&self, offset: u64, entry: &CqEntry) -> Result<()> {
        let f = match self.file_for(offset) {
            Some(f) => f,
            None => self.add_file(offset - offset % self.per_file)?,
        };
        let pos = (offset - f.first) * ENTRY_LEN;
        // SAFETY: the writer is the only writer, and `offset >= end`, so no reader reads it
        // (recovery rewrites published entries before the store is shared).
        unsafe { f.file.write(pos, &entry.encode()) };
        if !f.dirty.load(Ordering::Relaxed) {
            f.dirty.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn add_file(&self, first: u64) -> Result<Arc<CqFile>> {
        std::fs::create_dir_all(&self.dir).map_err(StoreError::io(&self.dir))?;
        let path = self.dir.join(mapped::file_name(first));
        let file = MappedFile::open(&path, self.per_file * ENTRY_LEN, false)?;
        let f = Arc::new(CqFile {
            first,
            file: Arc::new(file),
            dirty: AtomicBool::new(true),
        });
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        let at = files.partition_point(|x| x.first < first);
        files.insert(at, Arc::clone(&f));
        Ok(f)
    }

    /// Entry `offset` as stored, without range checks (`None` if absent, zero or torn).
    fn raw_entry(&self, offset: u64) -> Option<CqEntry> {
        let f = self.file_for(offset)?;
        // SAFETY: callers only read published entries, or run in recovery.
        let b = unsafe { f.file.slice((offset - f.first) * ENTRY_LEN, ENTRY_LEN)? };
        CqEntry::decode(b)
    }

    /// Entry `offset` if it is in the readable range.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if a published entry fails its CRC.
    pub(crate) fn entry(&self, offset: u64) -> Result<Option<CqEntry>> {
        let (min, end) = self.range();
        if offset < min || offset >= end {
            return Ok(None);
        }
        self.raw_entry(offset)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                file: self
                    .dir
                    .join(mapped::file_name(offset - offset % self.per_file)),
                offset: (offset % self.per_file) * ENTRY_LEN,
                reason: "consume-queue entry fails its crc",
            })
    }

    /// First offset in `[lo, hi)` for which `pred` is false, assuming `pred` holds on a prefix.
    fn partition(&self, mut lo: u64, mut hi: u64, pred: impl Fn(Option<CqEntry>) -> bool) -> u64 {
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.raw_entry(mid)) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// First readable offset whose entry was stored at or after `ts` (ms); `end` if none.
    pub(crate) fn offset_for_time(&self, ts: i64) -> u64 {
        let (min, end) = self.range();
        self.partition(min, end, |e| e.is_some_and(|e| e.store_ts < ts))
    }

    /// Recovery: fixes the range against the CommitLog's `[log_start, log_end)`. Entries pointing
    /// at or past `log_end` (a torn tail) are zeroed; entries below `log_start` (removed by
    /// retention) are skipped.
    pub(crate) fn recover(&self, log_start: u64, log_end: u64) -> Result<()> {
        let (first, limit) = {
            let files = self.files.read().unwrap_or_else(|p| p.into_inner());
            match (files.first(), files.last()) {
                (Some(a), Some(b)) => (a.first, b.first + self.per_file),
                _ => return Ok(()),
            }
        };
        let end = self.partition(first, limit, |e| {
            e.is_some_and(|e| e.commitlog_offset < log_end)
        });
        let min = self.partition(first, end, |e| {
            e.is_some_and(|e| e.commitlog_offset < log_start)
        });
        // Zero everything from `end` on, and drop files that start past it.
        let files = self.files.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut drop_from = None;
        for (i, f) in files.iter().enumerate() {
            if f.first + self.per_file <= end {
                continue;
            }
            if f.first <= end {
                f.file.zero_from((end - f.first) * ENTRY_LEN)?;
                f.dirty.store(true, Ordering::Relaxed);
            } else if drop_from.is_none() {
                drop_from = Some(i);
            }
        }
        if let Some(i) = drop_from {
            let mut fs = self.files.write().unwrap_or_else(|p| p.into_inner());
            for f in fs.drain(i..) {
                let _ = std::fs::remove_file(f.file.path());
            }
        }
        self.min.store(min, Ordering::Release);
        self.end.store(end, Ordering::Release);
        Ok(())
    }

    /// Retention: entries pointing below `log_start` are gone; advance `min` past them and
    /// remove files holding only such entries.
    pub(crate) fn trim(&self, log_start: u64) {
        let (min, end) = self.range();
        let new_min = self.partition(min, end, |e| {
            e.is_some_and(|e| e.commitlog_offset < log_start)
        });
        if new_min == min {
            return;
        }
        self.min.store(new_min, Ordering::Release);
        let mut files = self.files.write().unwrap_or_else(|p| p.into_inner());
        while files.len() > 1
            && files
                .first()
                .is_some_and(|f| f.first + self.per_file <= new_min)
        {
            let f = files.remove(0);
            let _ = std::fs::remove_file(f.file.path());
        }
    }

    /// The CommitLog offset this queue's consumers still need, or `None` if they need nothing.
    pub(crate) fn needed_from(&self) -> Option<u64> {
        let (min, end) = self.range();
        let floor = self.floor.load(Ordering::Acquire).max(min);
        if floor >= end {
            return None;
        }
        self.raw_entry(floor).map(|e| e.commitlog_offset)
    }

    /// `fdatasync`s every file written since the last flush.
    pub(crate) fn flush(&self) -> Result<()> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner()).clone();
        for f in files {
            if f.dirty.swap(false, Ordering::AcqRel) {
                f.file.sync()?;
            }
        }
        Ok(())
    }

    /// Removes every file of this queue partition (the queue was deleted).
    pub(crate) fn destroy(&self) -> Result<()> {
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&self.dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip_and_torn_detection() {
        let e = CqEntry {
            commitlog_offset: 1 << 40,
            size: 77,
            tag_hash: 5,
            store_ts: 1_700_000_000_000,
        };
        let b = e.encode();
        assert_eq!(CqEntry::decode(&b), Some(e));
        assert_eq!(CqEntry::decode(&[0u8; 32]), None);
        for i in 0..32 {
            let mut t = b;
            t[i] ^= 1;
            assert_eq!(CqEntry::decode(&t), None, "byte {i}");
        }
    }
}
