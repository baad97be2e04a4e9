//! Junction's message store, modelled on RocketMQ's and bettered.
//!
//! Every message of every queue is appended once to one **CommitLog** ([`commitlog`]): fixed-size
//! segment files, written by one writer into a preallocated, memory-mapped segment, read through
//! the same mappings without copying ([`bytes::Bytes`] that point into the mapping). A record can
//! be routed to many queue partitions and is still stored once.
//!
//! Around the CommitLog:
//! - [`consume_queue`]: per queue partition, fixed-width entries (CommitLog offset, size, tag
//!   hash, store time), built by the dispatcher and rebuildable from the CommitLog alone.
//! - [`index`]: message key and message id -> CommitLog offsets, bounded by time.
//! - [`flush`](crate::config::FlushMode): `sync` group commit or `async` periodic flush; a
//!   checkpoint records what is known durable.
//! - recovery: on open, scan from the checkpoint with CRC checks, cut a torn tail, rebuild
//!   consume queues and the index past their checkpoint.
//! - retention: a segment goes once no queue needs it, or by time/size limits; a disk-low
//!   watermark refuses appends early with [`StoreError::DiskLow`].
//!
//! Layout of a data directory:
//!
//! ```text
//! LOCK                          flock: one process per directory
//! checkpoint                    two-slot checkpoint (see `checkpoint`)
//! commitlog/<base offset>       segments
//! consumequeue/<queue>/<partition>/<first queue offset>
//! index/<first commitlog offset>
//! ```
//!
//! The store knows queues only by numeric id ([`QueueKey`]); names, routing and delivery state
//! belong to the broker core.
//!
//! ```
//! use junction_store::{AppendRequest, QueueKey, Store, StoreConfig};
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(StoreConfig::tiny(dir.path()))?;
//! let q = QueueKey::new(1, 0);
//! let a = store.append(&AppendRequest { targets: &[q], keys: &[b"order-7"], body: b"hi", ..Default::default() })?;
//! let batch = store.read(q, 0, 10)?;
//! assert_eq!(&batch.messages[0].record.body[..], b"hi");
//! assert_eq!(store.lookup_key(b"order-7", i64::MIN, i64::MAX, 1)[0].commitlog_offset, a.commitlog_offset);
//! # Ok::<(), junction_store::StoreError>(())
//! ```

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod checkpoint;
pub mod commitlog;
mod config;
pub mod consume_queue;
mod error;
mod flush;
pub mod index;
mod latency;
mod mapped;
pub mod record;
mod recovery;
mod replica;
mod store;
mod writer;

pub use config::{FlushMode, Retention, StoreConfig};
pub use consume_queue::CqEntry;
pub use error::{Result, StoreError};
pub use index::{id_hash, key_hash};
pub use latency::{LatencySnapshot, StoreLatencies, APPEND_SAMPLE_EVERY};
pub use record::{AppendRequest, QueueKey, Record, Target};
pub use replica::{truncate_log, ReplicaGate};
pub use store::{QueueMessage, ReadBatch, Store, StoreStats};
pub use writer::Appended;
