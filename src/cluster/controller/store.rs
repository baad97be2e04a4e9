//! The controller's Raft storage: small files, since the state is a few broker groups.
//!
//! ```text
//! <dir>/vote.json       the vote, rewritten atomically on each change
//! <dir>/log.jsonl       one JSON log entry per line, appended and fsynced; rewritten whole on
//!                       truncate and purge (rare: conflicts and post-snapshot purges)
//! <dir>/committed.json  the last committed log id (replayed into the state machine on start)
//! <dir>/snapshot.json   the last snapshot: its meta and the state machine
//! ```
//!
//! The state machine lives in memory; on start it is loaded from the snapshot and openraft
//! re-applies the committed entries after it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};

use super::{apply, Command, ControllerState, Reply, TypeConfig};

type NodeId = u64;
type SErr = StorageError<NodeId>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::core::meta::write_atomic(path, bytes).map_err(std::io::Error::other)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The Raft log, in memory and in `log.jsonl`.
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug)]
struct LogInner {
    dir: PathBuf,
    log: BTreeMap<u64, Entry<TypeConfig>>,
    last_purged: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

#[derive(Serialize, Deserialize)]
struct Purged {
    last_purged: Option<LogId<NodeId>>,
}

impl LogStore {
    /// Loads the log of `dir` (created if missing).
    ///
    /// # Errors
    /// I/O.
    pub fn open(dir: &Path) -> std::io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let mut log = BTreeMap::new();
        if let Ok(text) = std::fs::read_to_string(dir.join("log.jsonl")) {
            for line in text.lines() {
                // A torn last line (crash mid-append) was never acknowledged: skip it.
                if let Ok(e) = serde_json::from_str::<Entry<TypeConfig>>(line) {
                    log.insert(e.log_id.index, e);
                }
            }
        }
        let last_purged = read_json::<Purged>(&dir.join("purged.json")).and_then(|p| p.last_purged);
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                log,
                last_purged,
                vote: read_json(&dir.join("vote.json")),
                committed: read_json(&dir.join("committed.json")),
            })),
        })
    }
}

impl LogInner {
    fn rewrite(&self) -> std::io::Result<()> {
        let mut text = String::new();
        for e in self.log.values() {
            text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        write_file(&self.dir.join("log.jsonl"), text.as_bytes())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        Ok(lock(&self.inner)
            .log
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let i = lock(&self.inner);
        let last = i
            .log
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(i.last_purged);
        Ok(LogState {
            last_purged_log_id: i.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let mut i = lock(&self.inner);
        let bytes = serde_json::to_vec(vote).map_err(|e| StorageIOError::write_vote(&e))?;
        write_file(&i.dir.join("vote.json"), &bytes).map_err(|e| StorageIOError::write_vote(&e))?;
        i.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        Ok(lock(&self.inner).vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        let mut i = lock(&self.inner);
        let bytes = serde_json::to_vec(&committed).map_err(|e| StorageIOError::write(&e))?;
        write_file(&i.dir.join("committed.json"), &bytes).map_err(|e| StorageIOError::write(&e))?;
        i.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(lock(&self.inner).committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut i = lock(&self.inner);
        let mut text = String::new();
        for e in entries {
            text.push_str(&serde_json::to_string(&e).map_err(|e| StorageIOError::write_logs(&e))?);
            text.push('\n');
            i.log.insert(e.log_id.index, e);
        }
        let path = i.dir.join("log.jsonl");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_data()
            });
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(e));
                Err(err.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let mut i = lock(&self.inner);
        i.log.retain(|idx, _| *idx < log_id.index);
        i.rewrite()
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        let mut i = lock(&self.inner);
        i.log.retain(|idx, _| *idx > log_id.index);
        i.last_purged = Some(log_id);
        let bytes = serde_json::to_vec(&Purged {
            last_purged: Some(log_id),
        })
        .map_err(|e| StorageIOError::write_logs(&e))?;
        write_file(&i.dir.join("purged.json"), &bytes)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        i.rewrite()
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

/// What a snapshot file holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, openraft::BasicNode>,
    state: ControllerState,
}

/// The state machine: the controller's state, shared with the controller's logic.
#[derive(Debug, Clone)]
pub struct StateMachine {
    dir: PathBuf,
    pub(crate) state: Arc<Mutex<Applied>>,
}

/// The applied state and where it is.
#[derive(Debug, Default)]
pub struct Applied {
    pub(crate) last_applied: Option<LogId<NodeId>>,
    pub(crate) membership: StoredMembership<NodeId, openraft::BasicNode>,
    pub(crate) state: ControllerState,
    snapshot: Option<SnapshotFile>,
}

impl StateMachine {
    /// Loads the snapshot of `dir`, if any.
    pub fn open(dir: &Path) -> StateMachine {
        let snapshot: Option<SnapshotFile> = read_json(&dir.join("snapshot.json"));
        let mut a = Applied::default();
        if let Some(s) = &snapshot {
            a.last_applied = s.meta.last_log_id;
            a.membership = s.meta.last_membership.clone();
            a.state = s.state.clone();
        }
        a.snapshot = snapshot;
        StateMachine {
            dir: dir.to_path_buf(),
            state: Arc::new(Mutex::new(a)),
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let mut a = lock(&self.state);
        let meta = SnapshotMeta {
            last_log_id: a.last_applied,
            last_membership: a.membership.clone(),
            snapshot_id: format!(
                "{}-{}",
                a.last_applied.map_or(0, |l| l.leader_id.term),
                a.last_applied.map_or(0, |l| l.index)
            ),
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            state: a.state.clone(),
        };
        let bytes =
            serde_json::to_vec(&file).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        write_file(&self.dir.join("snapshot.json"), &bytes)
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        a.snapshot = Some(file);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<NodeId>>,
            StoredMembership<NodeId, openraft::BasicNode>,
        ),
        SErr,
    > {
        let a = lock(&self.state);
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut a = lock(&self.state);
        let mut out = Vec::new();
        for e in entries {
            a.last_applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Reply::default()),
                EntryPayload::Normal(cmd) => {
                    let r = apply(&mut a.state, &cmd);
                    out.push(r);
                }
                EntryPayload::Membership(m) => {
                    a.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Reply::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile = serde_json::from_slice(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        write_file(&self.dir.join("snapshot.json"), &bytes)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let mut a = lock(&self.state);
        a.last_applied = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        a.state = file.state.clone();
        a.snapshot = Some(SnapshotFile {
            meta: meta.clone(),
            state: file.state,
        });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let a = lock(&self.state);
        let Some(s) = &a.snapshot else {
            return Ok(None);
        };
        let bytes = serde_json::to_vec(s).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(Some(Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

/// Marker so that `Command` is used here (the log stores commands).
#[allow(dead_code)]
fn _commands_are_logged(_: &Command) {}
