//! Retained messages: the last message published with the retain flag for each vhost, exchange
//! and routing key, handed to a subscription when it is made (MQTT's retained messages, open to
//! every protocol: `Properties::retain`).
//!
//! The set lives in memory and is written to `<data_dir>/retained.bin` (atomically, whole) by a
//! background task at most every [`SAVE_EVERY`] and once more at shutdown, so a crash loses at
//! most the changes of that last interval. The messages are kept here in full rather than as
//! CommitLog offsets: retention may delete the segment a retained message was stored in long
//! before a newer message replaces it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::CoreResult;
use super::message::{Message, Properties};
use super::topic;

/// How often changes are written out.
pub(crate) const SAVE_EVERY: Duration = Duration::from_millis(100);

/// Format version of `retained.bin`.
const FORMAT: u32 = 1;

/// A retained message.
#[derive(Debug, Clone)]
pub struct RetainedMessage {
    /// Routing key it was published with.
    pub routing_key: String,
    /// When the broker stored it, ms since the epoch.
    pub store_ts: i64,
    /// The message, retain flag set.
    pub message: Message,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    store_ts: i64,
    properties: Properties,
    body: Bytes,
}

#[derive(Serialize, Deserialize)]
struct File {
    format: u32,
    entries: Vec<(String, String, String, Entry)>,
}

/// (vhost, exchange) -> routing key -> message.
type Table = HashMap<(String, String), BTreeMap<String, Entry>>;

/// The retained messages of every vhost.
pub(crate) struct Retained {
    table: Mutex<Table>,
    dirty: AtomicBool,
    path: PathBuf,
}

impl Retained {
    /// Loads `<dir>/retained.bin` (an unreadable file is logged and starts the set empty).
    pub(crate) fn open(dir: &Path) -> Retained {
        let path = dir.join("retained.bin");
        let mut table = Table::new();
        match std::fs::read(&path) {
            Ok(bytes) => match postcard::from_bytes::<File>(&bytes) {
                Ok(f) if f.format == FORMAT => {
                    for (vhost, exchange, rk, e) in f.entries {
                        table.entry((vhost, exchange)).or_default().insert(rk, e);
                    }
                }
                Ok(f) => tracing::error!(format = f.format, "retained.bin: unknown format"),
                Err(e) => tracing::error!(error = %e, "retained.bin is unreadable; starting empty"),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::error!(error = %e, "reading retained.bin"),
        }
        Retained {
            table: Mutex::new(table),
            dirty: AtomicBool::new(false),
            path,
        }
    }

    /// Replaces the whole set with the contents of a `retained.bin` (a slave taking its
    /// master's); bytes that do not decode are logged and change nothing.
    pub(crate) fn replace(&self, bytes: &[u8]) {
        match postcard::from_bytes::<File>(bytes) {
            Ok(f) if f.format == FORMAT => {
                let mut table = Table::new();
                for (vhost, exchange, rk, e) in f.entries {
                    table.entry((vhost, exchange)).or_default().insert(rk, e);
                }
                *self.lock() = table;
                self.dirty.store(true, Ordering::Release);
            }
            Ok(f) => tracing::error!(format = f.format, "replicated retained set: unknown format"),
            Err(e) => tracing::error!(error = %e, "replicated retained set does not decode"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets (or, for an empty body, clears) the retained message of a routing key.
    pub(crate) fn set(&self, vhost: &str, exchange: &str, rk: &str, msg: &Message, now: i64) {
        let mut t = self.lock();
        let key = (vhost.to_string(), exchange.to_string());
        if msg.body.is_empty() {
            if let Some(m) = t.get_mut(&key) {
                m.remove(rk);
                if m.is_empty() {
                    t.remove(&key);
                }
            }
        } else {
            let mut properties = msg.properties.clone();
            properties.retain = true;
            t.entry(key).or_default().insert(
                rk.to_string(),
                Entry {
                    store_ts: now,
                    properties,
                    body: msg.body.clone(),
                },
            );
        }
        self.dirty.store(true, Ordering::Release);
    }

    /// The retained messages of an exchange whose routing keys match an AMQP topic `pattern`,
    /// in routing-key order; expired ones are dropped.
    pub(crate) fn matching(
        &self,
        vhost: &str,
        exchange: &str,
        pattern: &str,
        now: i64,
    ) -> Vec<RetainedMessage> {
        let mut t = self.lock();
        let Some(m) = t.get_mut(&(vhost.to_string(), exchange.to_string())) else {
            return Vec::new();
        };
        let expired = |e: &Entry| {
            e.properties
                .ttl_ms
                .is_some_and(|ttl| e.store_ts.saturating_add(ttl as i64) <= now)
        };
        let before = m.len();
        m.retain(|_, e| !expired(e));
        if m.len() != before {
            self.dirty.store(true, Ordering::Release);
        }
        let pick = |(rk, e): (&String, &Entry)| RetainedMessage {
            routing_key: rk.clone(),
            store_ts: e.store_ts,
            message: Message {
                properties: e.properties.clone(),
                body: e.body.clone(),
            },
        };
        if !pattern.split('.').any(|w| w == "*" || w == "#") {
            return m.get_key_value(pattern).map(pick).into_iter().collect();
        }
        m.iter()
            .filter(|(rk, _)| topic::matches(pattern, rk))
            .map(pick)
            .collect()
    }

    /// Every retained message of a vhost as `(exchange, message)`, by exchange and routing
    /// key; expired ones are dropped.
    pub(crate) fn list(&self, vhost: &str, now: i64) -> Vec<(String, RetainedMessage)> {
        let mut exchanges: Vec<String> = self
            .lock()
            .keys()
            .filter(|(v, _)| v == vhost)
            .map(|(_, x)| x.clone())
            .collect();
        exchanges.sort();
        exchanges
            .into_iter()
            .flat_map(|x| {
                self.matching(vhost, &x, "#", now)
                    .into_iter()
                    .map(move |m| (x.clone(), m))
            })
            .collect()
    }

    /// Removes the retained message of a routing key; whether there was one.
    pub(crate) fn remove(&self, vhost: &str, exchange: &str, rk: &str) -> bool {
        let mut t = self.lock();
        let key = (vhost.to_string(), exchange.to_string());
        let Some(m) = t.get_mut(&key) else {
            return false;
        };
        let removed = m.remove(rk).is_some();
        if m.is_empty() {
            t.remove(&key);
        }
        if removed {
            self.dirty.store(true, Ordering::Release);
        }
        removed
    }

    /// Drops the retained messages of a vhost or exchange that was deleted.
    pub(crate) fn forget(&self, vhost: &str, exchange: Option<&str>) {
        let mut t = self.lock();
        let before = t.len();
        t.retain(|(v, x), _| !(v == vhost && exchange.is_none_or(|e| e == x)));
        if t.len() != before {
            self.dirty.store(true, Ordering::Release);
        }
    }

    /// Writes the set out if it changed since the last write.
    pub(crate) fn save_if_dirty(&self) -> CoreResult<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let bytes = {
            let t = self.lock();
            let entries: Vec<(&str, &str, &str, &Entry)> = t
                .iter()
                .flat_map(|((v, x), m)| {
                    m.iter()
                        .map(move |(rk, e)| (v.as_str(), x.as_str(), rk.as_str(), e))
                })
                .collect();
            postcard::to_allocvec(&(FORMAT, entries)).unwrap_or_default()
        };
        let r = super::meta::write_atomic(&self.path, &bytes);
        if r.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        r
    }
}

/// Writes the set out every [`SAVE_EVERY`] while it changes, and once more when `stop` fires.
pub(crate) async fn saver(r: Arc<Retained>, stop: tokio_util::sync::CancellationToken) {
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(SAVE_EVERY) => false,
        };
        let r2 = Arc::clone(&r);
        match tokio::task::spawn_blocking(move || r2.save_if_dirty()).await {
            Ok(Err(e)) => tracing::error!(error = %e, "saving retained messages failed"),
            Err(e) => tracing::error!(error = %e, "saving retained messages panicked"),
            Ok(Ok(())) => {}
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static str) -> Message {
        Message::new(Bytes::from_static(body.as_bytes()))
    }

    #[test]
    fn set_replace_clear_and_match() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Retained::open(dir.path());
        r.set("/", "amq.topic", "a.b", &msg("1"), 10);
        r.set("/", "amq.topic", "a.b", &msg("2"), 11);
        r.set("/", "amq.topic", "a.c", &msg("3"), 12);
        r.set("/", "amq.topic", "x", &msg("4"), 13);
        let got = r.matching("/", "amq.topic", "a.*", 20);
        let bodies: Vec<&[u8]> = got.iter().map(|m| &m.message.body[..]).collect();
        assert_eq!(bodies, vec![&b"2"[..], &b"3"[..]]);
        assert!(got.iter().all(|m| m.message.properties.retain));
        assert_eq!(r.matching("/", "amq.topic", "a.c", 20).len(), 1);
        assert!(r.matching("/", "amq.direct", "#", 20).is_empty());
        r.set("/", "amq.topic", "a.c", &msg(""), 21);
        assert!(r.matching("/", "amq.topic", "a.c", 22).is_empty());
        assert_eq!(r.matching("/", "amq.topic", "#", 22).len(), 2);
    }

    #[test]
    fn list_and_remove() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = Retained::open(dir.path());
        r.set("/", "amq.topic", "b", &msg("2"), 10);
        r.set("/", "amq.topic", "a", &msg("1"), 10);
        r.set("/", "other", "c", &msg("3"), 10);
        r.set("v2", "amq.topic", "d", &msg("4"), 10);
        let listed: Vec<(String, String)> = r
            .list("/", 20)
            .into_iter()
            .map(|(x, m)| (x, m.routing_key))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("amq.topic".to_string(), "a".to_string()),
                ("amq.topic".to_string(), "b".to_string()),
                ("other".to_string(), "c".to_string()),
            ]
        );
        assert!(r.remove("/", "other", "c"));
        assert!(!r.remove("/", "other", "c"));
        assert!(!r.remove("/", "amq.topic", "zz"));
        assert_eq!(r.list("/", 20).len(), 2);
        assert_eq!(r.list("v2", 20).len(), 1);
    }

    #[test]
    fn survives_a_reopen_and_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let r = Retained::open(dir.path());
            let mut m = msg("short-lived");
            m.properties.ttl_ms = Some(100);
            r.set("/", "amq.topic", "t.1", &m, 1_000);
            r.set("/", "amq.topic", "t.2", &msg("kept"), 1_000);
            r.save_if_dirty().expect("save");
        }
        let r = Retained::open(dir.path());
        assert_eq!(r.matching("/", "amq.topic", "t.#", 1_050).len(), 2);
        let left = r.matching("/", "amq.topic", "t.#", 1_100);
        assert_eq!(left.len(), 1);
        assert_eq!(&left[0].message.body[..], b"kept");
    }
}
