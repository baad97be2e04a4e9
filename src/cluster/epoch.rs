//! The epoch file: at which CommitLog offset each master term (epoch) began, as RocketMQ's
//! `EpochFile` and Kafka's leader-epoch checkpoint.
//!
//! `<data_dir>/epochs.json` holds `[[epoch, start_offset], ...]`, ascending. A broker that
//! becomes master appends `(epoch, its log end)`; a slave copies its master's list. When an old
//! master comes back as a slave, the first epoch where the lists part tells where its own log
//! stops being the group's: it cuts its CommitLog there (what it wrote after its term ended
//! was never confirmed in sync mode).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One master term: its number and the CommitLog offset it started at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// The controller's epoch number.
    pub epoch: u64,
    /// CommitLog end when that master took over.
    pub start: u64,
}

/// The epoch list of a broker, persisted atomically.
#[derive(Debug)]
pub struct EpochFile {
    path: PathBuf,
    entries: Vec<Epoch>,
}

impl EpochFile {
    /// Loads `<dir>/epochs.json` (empty when absent or unreadable: a broker without terms).
    pub fn open(dir: &Path) -> EpochFile {
        let path = dir.join("epochs.json");
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        EpochFile { path, entries }
    }

    /// The terms, oldest first.
    pub fn entries(&self) -> &[Epoch] {
        &self.entries
    }

    /// The newest term.
    pub fn last(&self) -> Option<Epoch> {
        self.entries.last().copied()
    }

    /// Records that this broker became master in `epoch` at `start` (terms never go back).
    ///
    /// # Errors
    /// I/O.
    pub fn begin(&mut self, epoch: u64, start: u64) -> std::io::Result<()> {
        if self.last().is_some_and(|e| e.epoch >= epoch) {
            return Ok(());
        }
        self.entries.push(Epoch { epoch, start });
        self.save()
    }

    /// Takes the master's list (a slave in step with it).
    ///
    /// # Errors
    /// I/O.
    pub fn replace(&mut self, entries: &[Epoch]) -> std::io::Result<()> {
        if self.entries == entries {
            return Ok(());
        }
        self.entries = entries.to_vec();
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(&self.entries).map_err(std::io::Error::other)?;
        crate::core::meta::write_atomic(&self.path, &bytes).map_err(std::io::Error::other)
    }
}

/// Where a slave whose log ends at `end`, with terms `mine`, must cut its log to continue the
/// master's, whose terms are `theirs` and whose log ends at `master_end`; `None` if it is a
/// prefix of the master's already.
///
/// The last term both know ends, on the master, where the master's next term starts (or at
/// the master's end); anything the slave has past that point was written by a master whose
/// term was over.
pub fn divergence(mine: &[Epoch], end: u64, theirs: &[Epoch], master_end: u64) -> Option<u64> {
    let common = mine.iter().rev().find(|e| {
        theirs
            .iter()
            .any(|t| t.epoch == e.epoch && t.start == e.start)
    });
    let limit = match common {
        Some(c) => theirs
            .iter()
            .find(|t| t.epoch > c.epoch)
            .map_or(master_end, |next| next.start),
        // No shared term (a slave that was never master, or a fresh group): the master's log
        // is the reference as it stands.
        None => master_end,
    };
    (end > limit).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: u64, start: u64) -> Epoch {
        Epoch { epoch, start }
    }

    #[test]
    fn an_old_master_cuts_where_its_term_ended() {
        // Broker A was master in epoch 1 from 0 and wrote up to 900; B took over in epoch 2 at
        // 700 (what it had from A) and wrote up to 1500.
        let a = [e(1, 0)];
        let b = [e(1, 0), e(2, 700)];
        assert_eq!(divergence(&a, 900, &b, 1500), Some(700));
        assert_eq!(
            divergence(&a, 650, &b, 1500),
            None,
            "behind: nothing to cut"
        );
        // A slave that never was master and is ahead of a new empty master.
        assert_eq!(divergence(&[], 100, &[e(1, 0)], 40), Some(40));
        // In step.
        assert_eq!(divergence(&b, 1500, &b, 1500), None);
        // A went on to epoch 3 while B... (never the case with one controller); the newest
        // shared term decides.
        assert_eq!(
            divergence(
                &[e(1, 0), e(2, 700)],
                1600,
                &[e(1, 0), e(2, 700), e(4, 1200)],
                2000
            ),
            Some(1200)
        );
    }

    #[test]
    fn the_file_keeps_terms_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = EpochFile::open(dir.path());
        assert!(f.entries().is_empty());
        f.begin(1, 0).unwrap();
        f.begin(1, 50).unwrap(); // same term: ignored
        f.begin(3, 80).unwrap();
        let f = EpochFile::open(dir.path());
        assert_eq!(f.entries(), &[e(1, 0), e(3, 80)]);
    }
}
