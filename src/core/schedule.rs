//! Delayed and scheduled delivery, on the CommitLog (RocketMQ's design, with any delay instead
//! of 18 levels).
//!
//! A message published with a due time is not routed when it arrives: it is appended once to
//! the [`SCHEDULE`] system queue, its record carrying the vhost, exchange, routing key and due
//! time (`MetaExt`), and the due time is also written into the consume-queue entry's tag-hash
//! field (RocketMQ puts the delivery time in the same place of `SCHEDULE_TOPIC_XXXX`'s entries).
//! The publisher's confirm waits for that record to be stored, as for any message.
//!
//! In memory the scheduler keeps only `(due time, schedule offset)` pairs in a `BTreeSet`, which
//! it rebuilds at start from the consume-queue entries alone (32 bytes each, no record read).
//! A task sleeps until the earliest is due, then reads the record and publishes the message
//! through its exchange as if it had just arrived (bindings are those of the delivery time, as
//! with RabbitMQ's delayed-message exchange), in due-time order, ties in arrival order.
//!
//! What is done is a [`Progress`] saved in `schedule.json` at most every 500 ms, and only once
//! the fired copies are themselves stored under the flush policy: a crash can fire a message a
//! second time (at-least-once), never lose it. The store keeps every schedule record from the
//! progress's committed offset on (the queue's retention floor). After a restart, messages that
//! fell due while the broker was down are delivered at once, in due-time order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use junction_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::message::{Message, MetaExt, StoredMeta, Value};
use super::sysq::{Progress, SCHEDULE};
use super::{lock, now_ms, BrokerInner, CoreError, CoreResult};

/// Headers that delay a message by a number of milliseconds from its arrival: RabbitMQ's
/// delayed-message plugin (`x-delay`) and ActiveMQ's (`AMQ_SCHEDULED_DELAY`).
pub const DELAY_HEADERS: [&str; 2] = ["x-delay", "AMQ_SCHEDULED_DELAY"];

/// The delay `headers` ask for, in ms (`None` when none does, or the value is not a positive
/// whole number of milliseconds).
pub fn delay_requested(headers: &[(String, Value)]) -> Option<i64> {
    let (_, v) = headers
        .iter()
        .find(|(k, _)| DELAY_HEADERS.contains(&k.as_str()))?;
    let ms = match v {
        Value::I64(n) => *n,
        Value::U64(n) => i64::try_from(*n).ok()?,
        Value::F64(f) if f.is_finite() => *f as i64,
        Value::Str(_) | Value::Bytes(_) => v.as_str_lossy()?.trim().parse().ok()?,
        _ => return None,
    };
    (ms > 0).then_some(ms)
}

/// Longest sleep of the scheduler task between looks at the clock and saves.
const TICK: Duration = Duration::from_millis(500);
/// Messages fired per pass before the lock is let go.
const BATCH: usize = 256;

#[derive(Debug, Default)]
struct State {
    /// `(due ms, schedule offset)` of every message not yet fired.
    due: BTreeSet<(i64, u64)>,
    progress: Progress,
    /// The progress changed since it was saved.
    dirty: bool,
    /// CommitLog end after the last fired copy: saved progress waits for it to be stored.
    fired_end: u64,
    /// Publishing is blocked (disk or memory alarm): try again after this.
    paused_until: Option<Instant>,
}

/// The scheduled messages of the broker (every vhost).
#[derive(Debug)]
pub(crate) struct Scheduler {
    state: Mutex<State>,
    wake: Notify,
    path: PathBuf,
}

impl Scheduler {
    /// Rebuilds the pending set from the schedule queue's entries past the saved progress.
    ///
    /// # Errors
    /// A corrupt consume-queue entry.
    pub(crate) fn open(store: &Store, data_dir: &Path) -> CoreResult<Scheduler> {
        let path = data_dir.join("schedule.json");
        let progress = Progress::load(&path);
        let mut due = BTreeSet::new();
        let mut from = progress.committed;
        loop {
            let batch = store.entries(SCHEDULE, from, 1 << 16)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            from = last + 1;
            for (off, e) in batch {
                if !progress.is_done(off) {
                    due.insert((e.tag_hash as i64, off));
                }
            }
        }
        if !due.is_empty() {
            tracing::info!(pending = due.len(), "scheduled messages loaded");
        }
        store.set_floor(SCHEDULE, progress.committed);
        Ok(Scheduler {
            state: Mutex::new(State {
                due,
                progress,
                ..State::default()
            }),
            wake: Notify::new(),
            path,
        })
    }

    /// Messages waiting for their time.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.state).due.len()
    }

    fn add(&self, due_ms: i64, offset: u64) {
        let mut st = lock(&self.state);
        let earliest = st.due.first().is_none_or(|(t, _)| due_ms < *t);
        st.due.insert((due_ms, offset));
        drop(st);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// How long the task may sleep.
    fn wait(&self, now: i64) -> Duration {
        let st = lock(&self.state);
        if let Some(until) = st.paused_until {
            return until.saturating_duration_since(Instant::now()).min(TICK);
        }
        match st.due.first() {
            Some((t, _)) => Duration::from_millis(t.saturating_sub(now).max(0) as u64).min(TICK),
            None => TICK,
        }
    }

    /// Takes up to [`BATCH`] messages due at `now`, in order.
    fn take_due(&self, now: i64) -> Vec<(i64, u64)> {
        let mut st = lock(&self.state);
        if st.paused_until.is_some_and(|u| Instant::now() < u) {
            return Vec::new();
        }
        st.paused_until = None;
        let mut out = Vec::new();
        while out.len() < BATCH && st.due.first().is_some_and(|(t, _)| *t <= now) {
            out.extend(st.due.pop_first());
        }
        out
    }

    /// Saves the progress once every fired copy is stored, and moves the retention floor.
    async fn save(&self, store: &Store) {
        let (progress, end) = {
            let mut st = lock(&self.state);
            if !st.dirty {
                return;
            }
            st.dirty = false;
            (st.progress.clone(), st.fired_end)
        };
        if store.flushed(end).await.is_err() {
            lock(&self.state).dirty = true; // the store is poisoned: nothing is saved as done
            return;
        }
        if let Err(e) = progress.save(&self.path) {
            tracing::warn!(error = %e, "saving the schedule progress failed");
            lock(&self.state).dirty = true;
            return;
        }
        store.set_floor(SCHEDULE, progress.committed);
    }
}

/// Why a scheduled message was not fired.
enum Misfire {
    /// Publishing is blocked: keep it and try again later.
    Blocked,
    /// It cannot be delivered (gone, undecodable, its vhost or exchange deleted): dropped.
    Dropped,
}

impl BrokerInner {
    /// Checks that a client may publish to `exchange` now (it exists and is not internal), for
    /// a message that will be routed later.
    pub(crate) fn check_publishable(&self, vh: &super::VHostRef, exchange: &str) -> CoreResult<()> {
        if exchange.is_empty() {
            return Ok(());
        }
        match super::rlock(vh).exchanges.get(exchange) {
            None => Err(CoreError::not_found("exchange", exchange)),
            Some(x) if x.def.internal => Err(CoreError::AccessRefused(format!(
                "cannot publish to internal exchange '{exchange}'"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Stores `msg` in the schedule queue, to be published to `exchange` with `rk` in `vhost`
    /// at `due_ms`. Returns the CommitLog end to wait on for the publisher's confirm.
    pub(crate) fn schedule_message(
        &self,
        vhost: &str,
        exchange: &str,
        rk: &str,
        msg: &Message,
        due_ms: i64,
    ) -> CoreResult<u64> {
        if self.alarms.memory_on() {
            return Err(CoreError::Blocked(super::alarm::MEMORY_REASON.into()));
        }
        let meta = StoredMeta {
            exchange: exchange.into(),
            routing_key: rk.into(),
            properties: msg.properties.clone(),
            ext: Some(MetaExt {
                vhost: Some(vhost.into()),
                deliver_at_ms: Some(due_ms),
                ..MetaExt::default()
            }),
        };
        let a = self.append(&[SCHEDULE], &meta, due_ms as u64, &msg.body)?;
        let offset = a.queue_offsets.first().copied().unwrap_or_default();
        self.schedule.add(due_ms, offset);
        Ok(a.end())
    }

    /// Publishes messages that are due, a few batches at a time (the task goes round again at
    /// once while more are due, so a backlog after a restart does not hold a runtime thread).
    fn fire_due(&self) {
        if self.read_only.load(std::sync::atomic::Ordering::Acquire) {
            return; // a slave: its master fires them
        }
        for _ in 0..8 {
            let batch = self.schedule.take_due(now_ms());
            if batch.is_empty() {
                return;
            }
            for (i, &(due, offset)) in batch.iter().enumerate() {
                match self.fire(offset) {
                    Ok(end) => {
                        let mut st = lock(&self.schedule.state);
                        st.fired_end = st.fired_end.max(end);
                        st.progress.finish(offset);
                        st.dirty = true;
                    }
                    Err(Misfire::Dropped) => {
                        let mut st = lock(&self.schedule.state);
                        st.progress.finish(offset);
                        st.dirty = true;
                    }
                    Err(Misfire::Blocked) => {
                        let mut st = lock(&self.schedule.state);
                        st.due
                            .extend(batch.get(i..).unwrap_or_default().iter().copied());
                        st.paused_until = Some(Instant::now() + Duration::from_secs(1));
                        tracing::debug!(due, "publishing blocked; scheduled messages wait");
                        return;
                    }
                }
            }
        }
    }

    /// Publishes the scheduled message at `offset` of the schedule queue; returns the CommitLog
    /// end of its copy.
    fn fire(&self, offset: u64) -> Result<u64, Misfire> {
        let m = self
            .store
            .read(SCHEDULE, offset, 1)
            .ok()
            .and_then(|b| b.messages.into_iter().next())
            .filter(|m| m.queue_offset == offset)
            .ok_or(Misfire::Dropped)?;
        let Some(meta) = StoredMeta::decode(&m.record.properties) else {
            tracing::error!(offset, "undecodable scheduled message; dropped");
            return Err(Misfire::Dropped);
        };
        let vhost = meta.ext.and_then(|e| e.vhost).unwrap_or_else(|| "/".into());
        let msg = Message {
            properties: meta.properties,
            body: m.record.body,
        };
        match self.publish_internal(&vhost, &meta.exchange, &meta.routing_key, &msg) {
            Ok((_, end)) => Ok(end),
            Err(CoreError::Blocked(_)) => Err(Misfire::Blocked),
            Err(e) => {
                tracing::warn!(offset, vhost, exchange = %meta.exchange, error = %e, "scheduled message could not be published; dropped");
                Err(Misfire::Dropped)
            }
        }
    }
}

impl super::Broker {
    /// Delayed messages waiting for their time (every vhost).
    pub fn scheduled_messages(&self) -> usize {
        self.inner.schedule.pending()
    }
}

/// The scheduler task: fires due messages and saves the progress until `stop`.
pub(crate) async fn run(broker: Weak<BrokerInner>, stop: CancellationToken) {
    let Some(sched) = broker.upgrade().map(|b| Arc::clone(&b.schedule)) else {
        return;
    };
    let mut last_save = Instant::now();
    loop {
        let wait = sched.wait(now_ms());
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = sched.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        let Some(b) = broker.upgrade() else {
            return;
        };
        b.fire_due();
        if last_save.elapsed() >= TICK {
            sched.save(&b.store).await;
            last_save = Instant::now();
        }
    }
    if let Some(b) = broker.upgrade() {
        sched.save(&b.store).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_headers_of_every_protocol() {
        let h = |k: &str, v: Value| vec![(k.to_string(), v)];
        assert_eq!(delay_requested(&h("x-delay", Value::I64(1500))), Some(1500));
        assert_eq!(
            delay_requested(&h("AMQ_SCHEDULED_DELAY", Value::Str("250".into()))),
            Some(250)
        );
        assert_eq!(
            delay_requested(&h("x-delay", Value::Bytes("30".into()))),
            Some(30)
        );
        assert_eq!(delay_requested(&h("x-delay", Value::I64(0))), None);
        assert_eq!(delay_requested(&h("x-delay", Value::I64(-5))), None);
        assert_eq!(
            delay_requested(&h("x-delay", Value::Str("soon".into()))),
            None
        );
        assert_eq!(delay_requested(&h("other", Value::I64(10))), None);
    }
}
