//! Store configuration: sizes, flush policy, retention and the disk watermark.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Result, StoreError};

/// When an append counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushMode {
    /// Group commit: a write is confirmed only once an `fdatasync` covering it has returned. One
    /// fsync covers every writer waiting at that moment.
    Sync,
    /// A write is confirmed once it is in the page cache; a background thread flushes every
    /// `flush_interval`. A power loss can lose up to one interval; a process crash loses nothing.
    Async,
}

/// Time and size limits after which old CommitLog segments are removed even if a queue still
/// references them (stream semantics). `None` keeps data until every queue's floor has passed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Remove a sealed segment whose newest record is older than this.
    pub max_age: Option<Duration>,
    /// Remove the oldest sealed segments while the CommitLog is larger than this.
    pub max_bytes: Option<u64>,
}

/// Everything the store needs to open a data directory.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Data directory; created if missing.
    pub dir: PathBuf,
    /// Size of each CommitLog segment file. Default 1 GiB; at least 4 KiB, a multiple of 4 KiB.
    pub segment_size: u64,
    /// Sync (group commit) or async (periodic) flush. Default async.
    pub flush: FlushMode,
    /// Async mode: how often the CommitLog is flushed. Default 500 ms.
    pub flush_interval: Duration,
    /// Sync mode: how long the flusher may wait for the writers of the previous batch to come
    /// back before it starts the next fsync. Default 500 µs; zero disables the wait. A lone
    /// writer never waits (the previous batch was one record).
    pub group_commit_linger: Duration,
    /// How often consume queues and the index are flushed and the checkpoint written; also the
    /// tick of retention and the disk check. Default 1 s.
    pub checkpoint_interval: Duration,
    /// Entries per consume-queue file (32 bytes each). Default 300,000 (9.6 MB files).
    pub cq_entries_per_file: u64,
    /// Hash slots per index file. Default 1,048,576.
    pub index_slots: u32,
    /// Entries per index file (32 bytes each). Default 4,194,304.
    pub index_entries: u32,
    /// Largest accepted record, headers included. Default 17 MiB: a 16 MiB body (RabbitMQ 4's
    /// default `max_message_size`) with room for its properties.
    pub max_record_size: u64,
    /// Fault in a new segment's pages before it becomes active, so appends never page-fault.
    /// Default true.
    pub preload: bool,
    /// Appends fail with [`StoreError::DiskLow`] while free space is below this. Default 512 MiB.
    pub disk_low_watermark: u64,
    /// Time/size retention. Default: keep until consumed.
    pub retention: Retention,
}

impl StoreConfig {
    /// The defaults, for a store in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            dir: dir.into(),
            segment_size: 1 << 30,
            flush: FlushMode::Async,
            flush_interval: Duration::from_millis(500),
            group_commit_linger: Duration::from_micros(500),
            checkpoint_interval: Duration::from_secs(1),
            cq_entries_per_file: 300_000,
            index_slots: 1 << 20,
            index_entries: 1 << 22,
            max_record_size: 17 << 20,
            preload: true,
            disk_low_watermark: 512 << 20,
            retention: Retention::default(),
        }
    }

    /// Small files everywhere: for tests that want many segments quickly.
    pub fn tiny(dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            segment_size: 8 << 10,
            cq_entries_per_file: 64,
            index_slots: 64,
            index_entries: 256,
            max_record_size: 4 << 10,
            preload: false,
            disk_low_watermark: 0,
            ..StoreConfig::new(dir)
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(StoreError::Config(m));
        if self.segment_size < 4096 || !self.segment_size.is_multiple_of(4096) {
            return fail(format!(
                "segment_size {} must be a multiple of 4096, at least 4096",
                self.segment_size
            ));
        }
        if self.segment_size > u32::MAX as u64 * 4 {
            return fail("segment_size must be at most 16 GiB".into());
        }
        if self.max_record_size < 256 || self.max_record_size > self.segment_size {
            return fail(format!(
                "max_record_size {} must be between 256 and segment_size {}",
                self.max_record_size, self.segment_size
            ));
        }
        if self.cq_entries_per_file == 0 || self.index_slots == 0 || self.index_entries == 0 {
            return fail("cq_entries_per_file, index_slots and index_entries must be > 0".into());
        }
        if self.flush_interval.is_zero() || self.checkpoint_interval.is_zero() {
            return fail("flush_interval and checkpoint_interval must be > 0".into());
        }
        Ok(())
    }
}
