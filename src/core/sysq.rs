//! System queues: consume queues the core keeps for itself in the store, beside the queues of
//! every vhost, for messages that are not (yet) in any queue of theirs.
//!
//! | queue | id | what its records are | consume-queue tag hash |
//! |---|---|---|---|
//! | schedule | [`SCHEDULE`] | delayed messages, until due (RocketMQ's `SCHEDULE_TOPIC_XXXX`) | due time, ms |
//! | half | [`TXN_HALF`] | transactional half messages (`RMQ_SYS_TRANS_HALF_TOPIC`) | 0 |
//! | op | [`TXN_OP`] | transaction outcomes: the committed message itself, or a rollback marker (`RMQ_SYS_TRANS_OP_HALF_TOPIC`) | the message's tag |
//! | producers | [`PRODUCERS`] | messages of idempotent producers (a second target of the message's own record) | the message's tag |
//!
//! Their ids sit at the top of the id space, which queue ids handed out by the metadata never
//! reach, and their records carry the vhost they belong to in [`super::message::MetaExt`].
//! Each system queue has a [`Progress`]: what its service has finished with, saved as JSON in the
//! data directory; the store's retention floor of the queue follows its `committed` offset.

use std::collections::BTreeSet;
use std::path::Path;

use junction_store::QueueKey;
use serde::{Deserialize, Serialize};

/// Store queue ids from here up are system queues.
pub(crate) const SYSTEM_BASE: u32 = 0xFFFF_FF00;
/// Delayed messages, until due.
pub(crate) const SCHEDULE: QueueKey = QueueKey::new(SYSTEM_BASE, 0);
/// Transactional half messages.
pub(crate) const TXN_HALF: QueueKey = QueueKey::new(SYSTEM_BASE + 1, 0);
/// Transaction outcomes.
pub(crate) const TXN_OP: QueueKey = QueueKey::new(SYSTEM_BASE + 2, 0);
/// Messages of idempotent producers.
pub(crate) const PRODUCERS: QueueKey = QueueKey::new(SYSTEM_BASE + 3, 0);

/// Whether a store queue id is a system queue's.
pub(crate) fn is_system(queue: u32) -> bool {
    queue >= SYSTEM_BASE
}

/// How far a service has got through a system queue: every offset below `committed` is done,
/// and so are the offsets in `done` (finished out of order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) committed: u64,
    pub(crate) done: BTreeSet<u64>,
}

impl Progress {
    /// Marks `offset` done; returns whether it was not done before.
    pub(crate) fn finish(&mut self, offset: u64) -> bool {
        if offset < self.committed || !self.done.insert(offset) {
            return false;
        }
        while self.done.first() == Some(&self.committed) {
            self.done.pop_first();
            self.committed += 1;
        }
        true
    }

    /// Whether `offset` is done.
    pub(crate) fn is_done(&self, offset: u64) -> bool {
        offset < self.committed || self.done.contains(&offset)
    }

    /// Loads a saved progress (none saved, or unreadable: from the start, and said so).
    pub(crate) fn load(path: &Path) -> Progress {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::error!(file = %path.display(), error = %e, "unreadable progress file; starting over from the queue's first message");
                Progress::default()
            }),
            Err(_) => Progress::default(),
        }
    }

    /// Saves it atomically.
    pub(crate) fn save(&self, path: &Path) -> super::CoreResult<()> {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        super::meta::write_atomic(path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_commits_contiguous_offsets_and_remembers_the_rest() {
        let mut p = Progress::default();
        assert!(p.finish(2));
        assert!(p.finish(0));
        assert_eq!(p.committed, 1);
        assert!(!p.finish(0), "twice is not new");
        assert!(p.finish(1));
        assert_eq!((p.committed, p.done.len()), (3, 0));
        assert!(p.finish(5));
        assert!(p.is_done(2) && p.is_done(5) && !p.is_done(4));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        p.save(&path).unwrap();
        assert_eq!(Progress::load(&path), p);
        assert_eq!(
            Progress::load(&dir.path().join("none")),
            Progress::default()
        );
        assert!(is_system(SCHEDULE.queue) && !is_system(1));
    }
}
