//! Transactional messages (RocketMQ's design): half messages, commit or rollback, check-back.
//!
//! A producer publishes a *half message*: it is appended to the [`TXN_HALF`] system queue
//! (with its vhost, exchange, routing key and producer group in `MetaExt`), so it is stored but
//! in no queue of its vhost, invisible to consumers. The producer runs its local transaction,
//! then ends the message's transaction:
//!
//! - **commit**: the message is routed as if just published, and its record also targets the
//!   [`TXN_OP`] queue and names the half message it resolves (`MetaExt::txn_end`): delivery and
//!   the outcome are one record, written atomically;
//! - **rollback**: a small record in [`TXN_OP`] names the half message; nothing is delivered.
//!
//! A half message without an outcome after `check_after` is *checked back*: the broker asks a
//! producer connected for the same group (round robin among them) what became of it, every
//! `check_interval`, at most `max_checks` times; then it applies `default_commit`.
//!
//! Restarts: what is resolved is a [`Progress`] over the half queue, saved in
//! `transactions.json` (with check counts) at most every 500 ms together with how far the op
//! queue had been applied; at start, the op queue's records past that point are applied again
//! and every half message not resolved becomes pending again, to be checked back. So every
//! state survives: pending (checked back after the restart), committed (delivered, never
//! again), rolled back (never delivered).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use junction_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use super::message::{Message, MetaExt, StoredMeta};
use super::session::Routed;
use super::sysq::{Progress, TXN_HALF, TXN_OP};
use super::{lock, now_ms, BrokerInner, CoreError, CoreResult};

/// Transaction settings (`[transactions]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxConfig {
    /// A half message is first checked back when it is this old (RocketMQ's
    /// `transactionTimeOut`, 6 s).
    pub check_after: Duration,
    /// Time between check-backs of one half message (RocketMQ: 60 s).
    pub check_interval: Duration,
    /// Check-backs before the default outcome applies (RocketMQ: 15).
    pub max_checks: u32,
    /// The outcome after `max_checks` unanswered check-backs: commit (true) or roll back.
    pub default_commit: bool,
}

impl Default for TxConfig {
    fn default() -> Self {
        TxConfig {
            check_after: Duration::from_secs(6),
            check_interval: Duration::from_secs(60),
            max_checks: 15,
            default_commit: false,
        }
    }
}

/// A transaction's outcome as a producer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxOutcome {
    /// Deliver the message.
    Commit,
    /// Drop it.
    Rollback,
    /// Not known yet: ask again later.
    Unknown,
}

/// A check-back sent to a producer of the half message's group.
#[derive(Debug, Clone)]
pub struct TxCheck {
    /// The transaction (the half message's id).
    pub transaction_id: u64,
    /// The producer group.
    pub group: String,
    /// Where the message would be published.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// The message.
    pub message: Message,
    /// Check-backs so far, this one included.
    pub checks: u32,
}

#[derive(Debug, Clone)]
struct Pending {
    vhost: String,
    group: String,
    checks: u32,
    next_check_ms: i64,
}

type Checker = (u64, mpsc::UnboundedSender<TxCheck>);

#[derive(Debug, Default)]
struct State {
    pending: BTreeMap<u64, Pending>,
    progress: Progress,
    /// Op-queue offset below which every outcome is in `progress`.
    op_applied: u64,
    checkers: HashMap<(String, String), Vec<Checker>>,
    rr: usize,
    dirty: bool,
    /// CommitLog end after the last outcome written: saved progress waits for it.
    written_end: u64,
}

/// What is saved.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    progress: Progress,
    op_applied: u64,
    checks: BTreeMap<u64, u32>,
}

/// The broker's transactions (every vhost).
#[derive(Debug)]
pub(crate) struct Transactions {
    state: Mutex<State>,
    cfg: TxConfig,
    path: PathBuf,
    wake: Notify,
}

impl Transactions {
    /// Rebuilds the pending half messages from the half and op queues.
    ///
    /// # Errors
    /// A corrupt consume-queue entry.
    pub(crate) fn open(store: &Store, data_dir: &Path, cfg: TxConfig) -> CoreResult<Transactions> {
        let path = data_dir.join("transactions.json");
        let saved: Saved = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut st = State {
            progress: saved.progress,
            op_applied: saved.op_applied,
            ..State::default()
        };
        // Outcomes written after the last save.
        let mut from = st.op_applied;
        while let Ok(b) = store.read(TXN_OP, from, 1024) {
            if b.messages.is_empty() {
                break;
            }
            from = b.next_offset;
            for m in b.messages {
                if let Some((half, _)) = StoredMeta::decode(&m.record.properties)
                    .and_then(|meta| meta.ext)
                    .and_then(|e| e.txn_end)
                {
                    st.progress.finish(half);
                }
            }
        }
        st.op_applied = from.max(st.op_applied);
        let now = now_ms();
        let mut from = st.progress.committed;
        while let Ok(b) = store.read(TXN_HALF, from, 1024) {
            if b.messages.is_empty() {
                break;
            }
            from = b.next_offset;
            for m in b.messages {
                let off = m.queue_offset;
                if st.progress.is_done(off) {
                    continue;
                }
                let Some(ext) = StoredMeta::decode(&m.record.properties).and_then(|x| x.ext) else {
                    st.progress.finish(off);
                    continue;
                };
                let checks = saved.checks.get(&off).copied().unwrap_or(0);
                let stored_ms = m.record.store_ts;
                st.pending.insert(
                    off,
                    Pending {
                        vhost: ext.vhost.unwrap_or_else(|| "/".into()),
                        group: ext.txn_group.unwrap_or_default(),
                        checks,
                        next_check_ms: (stored_ms + cfg.check_after.as_millis() as i64).max(now),
                    },
                );
            }
        }
        if !st.pending.is_empty() {
            tracing::info!(
                pending = st.pending.len(),
                "transactions awaiting an outcome"
            );
        }
        store.set_floor(TXN_HALF, st.progress.committed);
        store.set_floor(TXN_OP, st.op_applied);
        Ok(Transactions {
            state: Mutex::new(st),
            cfg,
            path,
            wake: Notify::new(),
        })
    }

    /// Registers a connection (by session id) as a producer of `group` that answers
    /// check-backs.
    pub(crate) fn register(
        &self,
        vhost: &str,
        group: &str,
        session: u64,
        tx: mpsc::UnboundedSender<TxCheck>,
    ) {
        let mut st = lock(&self.state);
        let list = st
            .checkers
            .entry((vhost.to_string(), group.to_string()))
            .or_default();
        list.retain(|(s, c)| *s != session && !c.is_closed());
        list.push((session, tx));
        drop(st);
        self.wake.notify_one();
    }

    /// Half messages waiting for an outcome.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.state).pending.len()
    }

    async fn save(&self, store: &Store) {
        let (saved, end) = {
            let mut st = lock(&self.state);
            if !st.dirty {
                return;
            }
            st.dirty = false;
            let checks = st
                .pending
                .iter()
                .filter(|(_, p)| p.checks > 0)
                .map(|(o, p)| (*o, p.checks))
                .collect();
            (
                Saved {
                    progress: st.progress.clone(),
                    op_applied: store.queue_range(TXN_OP).map_or(0, |r| r.1),
                    checks,
                },
                st.written_end,
            )
        };
        // Outcomes are saved as applied only once their records are stored.
        let end = end.max(store.stats().log_end);
        if store.flushed(end).await.is_err() {
            lock(&self.state).dirty = true;
            return;
        }
        let bytes = serde_json::to_vec(&saved).unwrap_or_default();
        if let Err(e) = super::meta::write_atomic(&self.path, &bytes) {
            tracing::warn!(error = %e, "saving the transactions' progress failed");
            lock(&self.state).dirty = true;
            return;
        }
        lock(&self.state).op_applied = saved.op_applied;
        store.set_floor(TXN_HALF, saved.progress.committed);
        store.set_floor(TXN_OP, saved.op_applied);
    }
}

impl BrokerInner {
    /// Stores a half message of `group` in `vhost`; returns its transaction id and the
    /// CommitLog end to wait on for the confirm.
    pub(crate) fn prepare_transaction(
        &self,
        vhost: &str,
        exchange: &str,
        rk: &str,
        msg: &Message,
        group: &str,
    ) -> CoreResult<(u64, u64)> {
        let meta = StoredMeta {
            exchange: exchange.into(),
            routing_key: rk.into(),
            properties: msg.properties.clone(),
            ext: Some(MetaExt {
                vhost: Some(vhost.into()),
                txn_group: Some(group.into()),
                ..MetaExt::default()
            }),
        };
        let a = self.append(&[TXN_HALF], &meta, 0, &msg.body)?;
        let id = a.queue_offsets.first().copied().unwrap_or_default();
        let now = now_ms();
        let cfg = &self.transactions.cfg;
        lock(&self.transactions.state).pending.insert(
            id,
            Pending {
                vhost: vhost.into(),
                group: group.into(),
                checks: 0,
                next_check_ms: now + cfg.check_after.as_millis() as i64,
            },
        );
        Ok((id, a.end()))
    }

    /// Ends transaction `id` of `vhost` with `outcome` (`Unknown` does nothing). Returns where
    /// a committed message went and the CommitLog end to wait on; ending a transaction that
    /// already ended the same way again is not an error.
    ///
    /// # Errors
    /// `NotFound` for an unknown transaction (or one of another vhost);
    /// `PreconditionFailed` for one that ended the other way.
    pub(crate) fn end_transaction(
        &self,
        vhost: &str,
        id: u64,
        outcome: TxOutcome,
    ) -> CoreResult<(Vec<Routed>, u64)> {
        let tx = &self.transactions;
        let mut st = lock(&tx.state);
        let Some(p) = st.pending.get(&id).filter(|p| p.vhost == vhost).cloned() else {
            if st.progress.is_done(id) {
                return Ok((Vec::new(), 0)); // ended already (answered twice, or checked back)
            }
            return Err(CoreError::not_found("transaction", id.to_string()));
        };
        if outcome == TxOutcome::Unknown {
            return Ok((Vec::new(), 0));
        }
        let half = self
            .store
            .read(TXN_HALF, id, 1)
            .ok()
            .and_then(|b| b.messages.into_iter().next())
            .filter(|m| m.queue_offset == id);
        let meta = half
            .as_ref()
            .and_then(|m| StoredMeta::decode(&m.record.properties));
        let ext = MetaExt {
            vhost: Some(p.vhost.clone()),
            txn_end: Some((id, outcome == TxOutcome::Commit)),
            ..MetaExt::default()
        };
        let (routed, end) = match (outcome, half, meta) {
            (TxOutcome::Commit, Some(m), Some(meta)) => {
                let vh = self.vhost_or_err(&p.vhost)?;
                let queues = super::rlock(&vh)
                    .route(&meta.exchange, &meta.routing_key, &meta.properties)
                    .unwrap_or_default();
                let msg = Message {
                    properties: meta.properties,
                    body: m.record.body,
                };
                self.store_routed_ext(
                    queues,
                    &meta.exchange,
                    &meta.routing_key,
                    &msg,
                    &[TXN_OP],
                    Some(ext),
                )?
            }
            _ => {
                // A rollback, or a half message retention already removed.
                let marker = StoredMeta {
                    exchange: String::new(),
                    routing_key: String::new(),
                    properties: super::Properties::default(),
                    ext: Some(ext),
                };
                let a = self.append(&[TXN_OP], &marker, 0, &[])?;
                (Vec::new(), a.end())
            }
        };
        st.pending.remove(&id);
        st.progress.finish(id);
        st.dirty = true;
        st.written_end = st.written_end.max(end);
        tracing::debug!(transaction = id, ?outcome, group = %p.group, "transaction ended");
        Ok((routed, end))
    }

    /// Sends due check-backs, applies the default outcome to half messages checked too often.
    fn check_back(&self) {
        if self.read_only.load(std::sync::atomic::Ordering::Acquire) {
            return; // a slave: its master checks back
        }
        let now = now_ms();
        let tx = &self.transactions;
        let due: Vec<(u64, Pending)> = lock(&tx.state)
            .pending
            .iter()
            .filter(|(_, p)| p.next_check_ms <= now)
            .map(|(o, p)| (*o, p.clone()))
            .take(256)
            .collect();
        for (id, p) in due {
            if p.checks >= tx.cfg.max_checks {
                let outcome = if tx.cfg.default_commit {
                    TxOutcome::Commit
                } else {
                    TxOutcome::Rollback
                };
                tracing::info!(transaction = id, group = %p.group, ?outcome, checks = p.checks, "no outcome after the last check-back: the default applies");
                if let Err(e) = self.end_transaction(&p.vhost, id, outcome) {
                    tracing::warn!(transaction = id, error = %e, "applying the default outcome failed");
                }
                continue;
            }
            let check = self
                .store
                .read(TXN_HALF, id, 1)
                .ok()
                .and_then(|b| b.messages.into_iter().next())
                .filter(|m| m.queue_offset == id)
                .and_then(|m| {
                    let meta = StoredMeta::decode(&m.record.properties)?;
                    Some(TxCheck {
                        transaction_id: id,
                        group: p.group.clone(),
                        exchange: meta.exchange,
                        routing_key: meta.routing_key,
                        message: Message {
                            properties: meta.properties,
                            body: m.record.body,
                        },
                        checks: p.checks + 1,
                    })
                });
            let mut st = lock(&tx.state);
            let key = (p.vhost.clone(), p.group.clone());
            let rr = st.rr;
            st.rr = st.rr.wrapping_add(1);
            let sent = match (check, st.checkers.get_mut(&key)) {
                (Some(check), Some(list)) => {
                    list.retain(|(_, c)| !c.is_closed());
                    let n = list.len();
                    (0..n).any(|k| {
                        list.get((rr + k) % n)
                            .is_some_and(|(_, c)| c.send(check.clone()).is_ok())
                    })
                }
                _ => false,
            };
            if let Some(q) = st.pending.get_mut(&id) {
                // An attempt counts whether or not a producer was there to ask.
                q.checks += 1;
                q.next_check_ms = now + tx.cfg.check_interval.as_millis() as i64;
                st.dirty = true;
            }
            tracing::debug!(transaction = id, sent, "transaction check-back");
        }
    }
}

/// The check-back task.
pub(crate) async fn run(broker: Weak<BrokerInner>, stop: CancellationToken) {
    let Some(tx) = broker.upgrade().map(|b| Arc::clone(&b.transactions)) else {
        return;
    };
    let tick = tx
        .cfg
        .check_interval
        .min(tx.cfg.check_after)
        .clamp(Duration::from_millis(50), Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tx.wake.notified() => {}
            _ = tokio::time::sleep(tick) => {}
        }
        let Some(b) = broker.upgrade() else {
            return;
        };
        b.check_back();
        tx.save(&b.store).await;
    }
    if let Some(b) = broker.upgrade() {
        tx.save(&b.store).await;
    }
}

impl super::Broker {
    /// Half messages waiting for their transaction's outcome (every vhost).
    pub fn pending_transactions(&self) -> usize {
        self.inner.transactions.pending()
    }
}
