//! The store's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the store, with the fields a caller needs to act on it.
///
/// `DiskLow` is the only error a healthy store returns under load: callers turn it into flow
/// control (block publishers) and retry once space is freed. `Poisoned` means a flush failed;
/// nothing more is written until the store is reopened and recovered, since the kernel may have
/// dropped dirty pages it could not write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system call failed on a file of the store.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file or directory the call was made on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes read from disk do not form a valid structure.
    #[error("corrupt data in {file} at byte {offset}: {reason}")]
    Corrupt {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Byte position inside that file.
        offset: u64,
        /// What check failed.
        reason: &'static str,
    },
    /// Free space on the store's file system fell below the configured watermark; the append was
    /// refused before anything was written.
    #[error("disk space low: {free} bytes free, watermark is {watermark}")]
    DiskLow {
        /// Bytes available to the store's user at the last check.
        free: u64,
        /// The configured `disk_low_watermark`.
        watermark: u64,
    },
    /// A record would be larger than `max_record_size` (or than a segment).
    #[error("record of {size} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Encoded size of the record.
        size: u64,
        /// The limit in force.
        max: u64,
    },
    /// The append request breaks a format limit (too many targets or keys, an id too long).
    #[error("invalid append request: {0}")]
    InvalidRequest(&'static str),
    /// A flush failed earlier; the store refuses writes until it is reopened.
    #[error("the store is poisoned by a failed flush; reopen it to recover")]
    Poisoned,
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// Another process holds the data directory.
    #[error("data directory {path} is locked by another process")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The configuration cannot work (for example a segment smaller than the minimum).
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// Replicated bytes do not continue this CommitLog where it ends, or are not whole valid
    /// records (a slave refuses them; nothing is written past the last good record).
    #[error("replication refused at commitlog offset {offset}: {reason}")]
    Replica {
        /// CommitLog offset of the refused bytes.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// No record starts at the given CommitLog offset (it was never written, or was removed by
    /// retention).
    #[error("no record at commitlog offset {offset}")]
    NoRecord {
        /// The offset asked for.
        offset: u64,
    },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

/// Shorthand used throughout the crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
