//! Idempotent producers: a message published with a producer id and a sequence number the
//! broker has already stored for that producer is not stored again; the publisher is told
//! where the original went.
//!
//! A producer's sequence numbers increase with each message (whatever queue or partition it
//! goes to: the broker picks the partition, so a per-partition sequence would not be known to
//! the producer when it sends). The broker remembers, per (vhost, producer id), the highest
//! sequence stored and the positions of the last [`WINDOW`] sequences.
//!
//! Across restarts: each idempotent message's record also targets the [`PRODUCERS`] system
//! queue (16 more bytes in the record and a 32-byte entry), so at start the broker rebuilds
//! the table from the last [`REMEMBERED`] entries of that queue, reading those records only,
//! and nothing else needs saving. The queue's retention floor trails its end by as much.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use junction_store::Store;

use super::message::StoredMeta;
use super::session::Routed;
use super::sysq::PRODUCERS;
use super::{lock, CoreError, CoreResult};

/// Sequences per producer whose positions are remembered.
pub(crate) const WINDOW: usize = 1024;
/// Idempotent messages read back at start to rebuild the table.
pub(crate) const REMEMBERED: u64 = 100_000;

/// One producer's history.
#[derive(Debug, Default)]
pub(crate) struct ProducerState {
    /// Highest sequence stored.
    pub(crate) last: u64,
    /// Positions of recent sequences, oldest first.
    recent: VecDeque<(u64, Vec<Routed>)>,
}

/// What an idempotent publish should do.
pub(crate) enum Seen {
    /// A new sequence: store it.
    New,
    /// Already stored, here.
    Duplicate(Vec<Routed>),
}

impl ProducerState {
    /// Whether `seq` is new, or where it was stored.
    ///
    /// # Errors
    /// `PreconditionFailed` for a sequence older than what is remembered.
    pub(crate) fn check(&self, producer: &str, seq: u64) -> CoreResult<Seen> {
        if seq > self.last || (self.last == 0 && self.recent.is_empty()) {
            return Ok(Seen::New);
        }
        match self.recent.iter().find(|(s, _)| *s == seq) {
            Some((_, routed)) => Ok(Seen::Duplicate(routed.clone())),
            None => Err(CoreError::PreconditionFailed(format!(
                "sequence {seq} of producer '{producer}' is a duplicate older than the last {WINDOW} the broker remembers"
            ))),
        }
    }

    /// Records a stored sequence.
    pub(crate) fn stored(&mut self, seq: u64, routed: Vec<Routed>) {
        self.last = self.last.max(seq);
        self.recent.push_back((seq, routed));
        while self.recent.len() > WINDOW {
            self.recent.pop_front();
        }
    }
}

/// A producer's state, locked while one of its messages is checked and stored.
type Shared = Arc<Mutex<ProducerState>>;

/// Every idempotent producer of the broker, by (vhost, producer id).
#[derive(Debug, Default)]
pub(crate) struct Producers {
    by_id: Mutex<HashMap<(String, String), Shared>>,
}

impl Producers {
    /// The state of a producer of `vhost` (created empty).
    pub(crate) fn get(&self, vhost: &str, producer: &str) -> Shared {
        let mut map = lock(&self.by_id);
        Arc::clone(
            map.entry((vhost.to_string(), producer.to_string()))
                .or_default(),
        )
    }

    /// Rebuilds the table from the last idempotent messages in the store; `name_of` maps a
    /// store queue id to `(vhost, queue name)`.
    pub(crate) fn rebuild(&self, store: &Store, name_of: impl Fn(u32) -> Option<(String, String)>) {
        let Some((_, end)) = store.queue_range(PRODUCERS) else {
            return;
        };
        let mut from = end.saturating_sub(REMEMBERED);
        let mut n = 0u64;
        while let Ok(b) = store.read(PRODUCERS, from, 1024) {
            if b.messages.is_empty() {
                break;
            }
            from = b.next_offset;
            for m in b.messages {
                let Some(meta) = StoredMeta::decode(&m.record.properties) else {
                    continue;
                };
                let Some(ext) = meta.ext else { continue };
                let (Some(vhost), Some((producer, seq))) = (ext.vhost, ext.producer) else {
                    continue;
                };
                let routed = m
                    .record
                    .targets()
                    .filter_map(|t| {
                        let (v, name) = name_of(t.key.queue)?;
                        (v == vhost).then(|| Routed {
                            queue: name,
                            partition: u16::try_from(t.key.partition).unwrap_or_default(),
                            offset: t.queue_offset,
                        })
                    })
                    .collect();
                lock(&self.get(&vhost, &producer)).stored(seq, routed);
                n += 1;
            }
        }
        store.set_floor(PRODUCERS, end.saturating_sub(REMEMBERED));
        if n > 0 {
            tracing::info!(messages = n, "idempotent producers' history rebuilt");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Vec<Routed> {
        vec![Routed {
            queue: "q".into(),
            partition: 0,
            offset,
        }]
    }

    #[test]
    fn sequences_are_new_once_then_duplicates_until_forgotten() {
        let mut p = ProducerState::default();
        assert!(matches!(p.check("p", 1), Ok(Seen::New)));
        p.stored(1, at(10));
        p.stored(2, at(11));
        assert!(matches!(p.check("p", 3), Ok(Seen::New)));
        match p.check("p", 1) {
            Ok(Seen::Duplicate(r)) => assert_eq!(r, at(10)),
            _ => panic!("a duplicate"),
        }
        for s in 3..(WINDOW as u64 + 10) {
            p.stored(s, at(s));
        }
        assert!(p.check("p", 1).is_err(), "older than the window");
        assert!(matches!(
            p.check("p", WINDOW as u64),
            Ok(Seen::Duplicate(_))
        ));
    }
}
