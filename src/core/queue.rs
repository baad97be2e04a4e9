//! A queue: its handle (shared by publishers and sessions) and its actor (one tokio task that
//! owns every consumer group's cursors, in-flight sets and redeliveries).
//!
//! Messages live in the store, one consume queue per partition; the actor only tracks
//! positions. Publishers append to the store themselves and wake the actor; sessions talk to it
//! through commands. Nothing here holds a lock across an `.await`.
//!
//! ### Per group and partition (a `Cursor`)
//! - `committed`: every offset below is settled (acked, rejected, expired or dropped).
//! - `settled`: settled offsets at or above `committed` (acks arrive out of order).
//! - `next_read`: the next offset never delivered in this group.
//! - `redeliver`: offsets to deliver again first (nacked with requeue, or their consumer left),
//!   with their delivery count so far.
//! - `inflight`: delivered, not yet settled: offset -> (consumer, delivery count).
//!
//! Offsets are persisted for durable queues (`queues/<id>.json`, every second when changed and on
//! shutdown): after a crash, messages acked since the last save are delivered again, with the
//! redelivered flag (at-least-once).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use junction_store::{QueueKey, QueueMessage, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, Notify};

use super::error::{CoreError, CoreResult};
use super::filter::Filter;
use super::message::{Message, StoredMeta, Value};
use super::meta::{Overflow, QueueDef};
use super::metrics::Counters;
use super::policy::{InForce, Policy};
use super::session::{ConsumerTag, Delivery, SessionEvent};
use super::BrokerInner;

mod groups;
mod retry;
pub use groups::{GroupInfo, PartitionOffsets};
pub use retry::{RetryPolicy, DLQ_PREFIX, RETRY_COUNT_HEADER, RETRY_PREFIX, RETRY_QUEUE_HEADER};

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// Where the group left off (a new group: the beginning of what is stored).
    #[default]
    Committed,
    /// The oldest stored message.
    Earliest,
    /// Only messages published from now on.
    Latest,
    /// The last message stored (and everything after it).
    Last,
    /// A queue offset (in every partition).
    Offset(u64),
    /// The first message stored at or after this time, ms since the epoch.
    Time(i64),
}

/// Consumer groups whose names start with this are ephemeral: their offsets are not saved and
/// the group ends when its last member leaves (a replaying consumer's own group).
pub const EPHEMERAL_GROUP_PREFIX: char = '~';

fn is_ephemeral(group: &str) -> bool {
    group.starts_with(EPHEMERAL_GROUP_PREFIX)
}

impl StartFrom {
    /// Reads RabbitMQ's `x-stream-offset` (AMQP consume argument, STOMP header, MQTT 5 user
    /// property): `first`, `last`, `next`, an offset, an AMQP timestamp (seconds), or an
    /// interval back from `now_ms` such as `30s`, `10m`, `2h`, `1D`, `1W`, `1M`, `1Y`.
    /// `None` for anything else.
    pub fn from_stream_offset(v: &super::message::Value, now_ms: i64) -> Option<StartFrom> {
        use super::message::Value;
        match v {
            Value::I64(n) if *n >= 0 => Some(StartFrom::Offset(*n as u64)),
            Value::U64(n) => Some(StartFrom::Offset(*n)),
            Value::Timestamp(secs) => Some(StartFrom::Time((*secs as i64).saturating_mul(1000))),
            Value::Str(s) => Self::from_stream_offset_text(s, now_ms),
            Value::Bytes(b) => Self::from_stream_offset_text(std::str::from_utf8(b).ok()?, now_ms),
            _ => None,
        }
    }

    fn from_stream_offset_text(s: &str, now_ms: i64) -> Option<StartFrom> {
        match s {
            "first" => return Some(StartFrom::Earliest),
            "last" => return Some(StartFrom::Last),
            "next" => return Some(StartFrom::Latest),
            _ => {}
        }
        if let Ok(n) = s.parse::<u64>() {
            return Some(StartFrom::Offset(n));
        }
        let unit = s.chars().last()?;
        let n: i64 = s.get(..s.len() - unit.len_utf8())?.parse().ok()?;
        let secs: i64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'D' => 86_400,
            'W' => 7 * 86_400,
            'M' => 30 * 86_400,
            'Y' => 365 * 86_400,
            _ => return None,
        };
        Some(StartFrom::Time(
            now_ms.saturating_sub(n.saturating_mul(secs).saturating_mul(1000)),
        ))
    }
}

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with it.
    Ack,
    /// Give it back to the queue for redelivery.
    Requeue,
    /// Refuse it: dead-letter it if the queue has a dead-letter exchange, else drop it.
    Reject,
}

/// What a consumer asks for.
#[derive(Debug, Clone, Default)]
pub struct ConsumeSpec {
    /// Queue name.
    pub queue: String,
    /// Consumer group ("" = the queue's default group, which every non-native protocol uses).
    pub group: String,
    /// Most unacked deliveries at once (0 = no limit).
    pub prefetch: u32,
    /// Deliveries count as acked when handed to the client.
    pub no_ack: bool,
    /// Where a new group starts.
    pub start: StartFrom,
    /// Partitions are assigned to group members (each partition to one member, in order),
    /// instead of members competing for every message.
    pub exclusive_partitions: bool,
    /// The consumer tag (generated if empty).
    pub tag: String,
    /// The only consumer of the queue (AMQP exclusive consume): refused while the queue has
    /// consumers, and other consumers are refused while it lasts.
    pub exclusive: bool,
    /// Only messages passing this filter are delivered to the group; the others are settled
    /// for it without being delivered (RocketMQ's subscription). Every member of a group must
    /// give the same filter.
    pub filter: Option<Arc<Filter>>,
    /// Ordered consumption: partitions are assigned to members (as with
    /// `exclusive_partitions`) and a partition's next message is delivered only once the
    /// previous one is settled.
    pub ordered: bool,
    /// Broadcast consumption: every member of the group gets every message, with offsets of
    /// its own (kept per member, by client id).
    pub broadcast: bool,
    /// Failed messages are retried with back-off through the group's retry queue, then
    /// dead-lettered (the session fills in the queue names and subscribes the consumer to the
    /// retry queue too).
    pub retry: Option<RetryPolicy>,
}

/// Queue counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages not yet delivered in the default group.
    pub ready: u64,
    /// Delivered, not yet acked (all groups).
    pub unacked: u64,
    /// Consumers (all groups).
    pub consumers: u32,
    /// Consumer groups (the default one included).
    pub groups: u32,
    /// The largest lag of a group (its unsettled messages, over all partitions).
    pub lag: u64,
}

pub(crate) type ConsumerId = u64;

pub(crate) enum QueueCmd {
    Subscribe {
        id: ConsumerId,
        spec: ConsumeSpec,
        sink: mpsc::UnboundedSender<SessionEvent>,
        reply: oneshot::Sender<CoreResult<Vec<u16>>>,
    },
    Unsubscribe {
        id: ConsumerId,
    },
    /// Stops deliveries to a consumer; what it already holds stays in flight until settled (or
    /// until its session closes and sends `Unsubscribe`), as RabbitMQ's basic.cancel.
    Cancel {
        id: ConsumerId,
    },
    /// Settles many deliveries at once: (consumer, partition, offset).
    Settle {
        items: Vec<(ConsumerId, u16, u64)>,
        how: Settle,
    },
    SetPrefetch {
        consumer: ConsumerId,
        prefetch: u32,
    },
    Get {
        reply: oneshot::Sender<Option<Delivery>>,
    },
    Purge {
        reply: oneshot::Sender<u64>,
    },
    Delete {
        if_unused: bool,
        if_empty: bool,
        reply: oneshot::Sender<CoreResult<u64>>,
    },
    Stats {
        reply: oneshot::Sender<QueueStats>,
    },
    Stop {
        reply: oneshot::Sender<()>,
    },
    /// Consumer groups and their offsets.
    Groups {
        reply: oneshot::Sender<Vec<GroupInfo>>,
    },
    /// Moves an idle group's offsets.
    ResetGroup {
        group: String,
        to: StartFrom,
        reply: oneshot::Sender<CoreResult<()>>,
    },
    /// Deletes an idle named group.
    DeleteGroup {
        group: String,
        reply: oneshot::Sender<CoreResult<()>>,
    },
    /// Idle groups take the offsets saved in the offsets file (a slave, after the master's
    /// offsets were copied there).
    ReloadOffsets,
    /// The arguments in force changed (a policy, or `x-expires`): limits apply at once and
    /// `x-expires` counts from now.
    ArgsChanged,
}

/// A queue as publishers and sessions see it.
#[derive(Debug)]
pub struct QueueHandle {
    pub(crate) def: QueueDef,
    pub(crate) name: String,
    pub(crate) exclusive_owner: Option<u64>,
    pub(crate) tx: mpsc::UnboundedSender<QueueCmd>,
    pub(crate) wake: Notify,
    rr: AtomicU32,
    /// Messages the default group has taken off "ready" (delivered at least once, or dropped),
    /// net of requeues. Publishers compute ready = stored - taken, which only errs high.
    taken: AtomicU64,
    /// Ready bytes of the default group as of the actor's last pass (reject-publish by bytes).
    pub(crate) ready_bytes: AtomicU64,
    pub(crate) deleted: AtomicBool,
    /// The arguments in force: its own (`x-expires` changed by
    /// [`crate::core::Session::set_queue_expiry`]) merged with its policy's (see `policy`).
    pub(crate) in_force: arc_swap::ArcSwap<InForce>,
    /// This queue's message counters.
    pub(crate) counters: Counters,
    /// Its vhost's counters (deliveries and acks are counted in both).
    pub(crate) vhost_counters: Arc<Counters>,
}

impl QueueHandle {
    pub(crate) fn key(&self, partition: u16) -> QueueKey {
        QueueKey::new(self.def.id, u32::from(partition))
    }

    /// The partition a published message goes to: by sharding key, else round robin.
    pub(crate) fn pick_partition(&self, sharding_key: Option<&str>) -> u16 {
        let n = u64::from(self.def.partitions.max(1));
        let i = match sharding_key {
            Some(k) => xxhash_rust::xxh3::xxh3_64(k.as_bytes()) % n,
            None => u64::from(self.rr.fetch_add(1, Ordering::Relaxed)) % n,
        };
        i as u16
    }

    fn count_delivery(&self, redelivered: bool) {
        self.counters.deliver(redelivered);
        self.vhost_counters.deliver(redelivered);
    }

    /// Ready messages of the default group, as of now (for reject-publish).
    pub(crate) fn ready(&self, store: &Store) -> u64 {
        let stored: u64 = (0..self.def.partitions)
            .filter_map(|p| store.queue_range(self.key(p)))
            .map(|r| r.1)
            .sum();
        match self.taken.load(Ordering::Acquire) {
            u64::MAX => 0, // not started yet
            t => stored.saturating_sub(t),
        }
    }

    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> QueueCmd,
    ) -> CoreResult<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| CoreError::not_found("queue", &self.name))?;
        rx.await
            .map_err(|_| CoreError::not_found("queue", &self.name))
    }
}

/// Persisted offsets of one partition in one group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SavedCursor {
    committed: u64,
    settled: Vec<u64>,
    delivered: u64,
}

#[derive(Debug)]
struct Cursor {
    key: QueueKey,
    partition: u16,
    committed: u64,
    settled: BTreeSet<u64>,
    next_read: u64,
    /// Offsets below this may have been delivered before a restart.
    delivered_before: u64,
    redeliver: BTreeMap<u64, u32>,
    inflight: HashMap<u64, (ConsumerId, u32)>,
    owner: Option<ConsumerId>,
    buffer: VecDeque<QueueMessage>,
    /// Where the next store read starts (past `next_read` when a filter skipped entries).
    scanned_to: u64,
    /// When in-flight messages were sent, for groups with a consume timeout.
    sent: HashMap<u64, Instant>,
}

impl Cursor {
    fn settle(&mut self, offset: u64) {
        if offset < self.committed {
            return;
        }
        if offset == self.committed && self.settled.is_empty() {
            self.committed += 1; // acked in order: nothing to merge
            return;
        }
        self.settled.insert(offset);
        while self.settled.first() == Some(&self.committed) {
            self.settled.pop_first();
            self.committed += 1;
        }
    }

    /// Oldest message not yet delivered in this group.
    fn oldest_ready(&self) -> Option<u64> {
        self.redeliver
            .keys()
            .next()
            .copied()
            .into_iter()
            .chain(std::iter::once(self.next_read))
            .min()
    }
}

#[derive(Debug)]
struct Group {
    parts: Vec<Cursor>,
    members: Vec<ConsumerId>,
    exclusive_partitions: bool,
    rr: usize,
    /// The group's subscription filter.
    filter: Option<Arc<Filter>>,
    /// One unsettled message per partition at a time.
    ordered: bool,
    /// Retry and dead-letter policy.
    retry: Option<Arc<RetryPolicy>>,
}

#[derive(Debug)]
struct Consumer {
    tag: ConsumerTag,
    group: String,
    prefetch: u32,
    inflight: u32,
    no_ack: bool,
    sink: mpsc::UnboundedSender<SessionEvent>,
}

/// Cap on unacked deliveries for consumers with no prefetch limit: keeps the session's event
/// channel bounded.
const UNLIMITED_WINDOW: u32 = 2048;

/// What the actor reads but never changes: its queue, the store, the broker.
struct Ctx {
    q: Arc<QueueHandle>,
    store: Arc<Store>,
    broker: Weak<BrokerInner>,
}

pub(crate) struct Actor {
    ctx: Ctx,
    rx: mpsc::UnboundedReceiver<QueueCmd>,
    groups: BTreeMap<String, Group>,
    consumers: HashMap<ConsumerId, Consumer>,
    offsets_path: PathBuf,
    dirty: bool,
    had_consumer: bool,
    /// The queue's exclusive consumer, if it has one.
    exclusive_consumer: Option<ConsumerId>,
    last_used: Instant,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Ctx {
    /// Reads the message at `offset` of `key`, if it is still stored.
    fn read_one(&self, key: QueueKey, offset: u64) -> Option<QueueMessage> {
        let b = self.store.read(key, offset, 1).ok()?;
        b.messages
            .into_iter()
            .next()
            .filter(|m| m.queue_offset == offset)
    }

    fn expired(&self, m: &QueueMessage, meta: &StoredMeta) -> bool {
        let ttl = match (
            self.q.in_force().args.message_ttl_ms,
            meta.properties.ttl_ms,
        ) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return false,
            },
        };
        m.record.store_ts.saturating_add(ttl as i64) <= now_ms()
    }

    /// Reads the next batch of a partition for a group; entries the filter rejects by their
    /// tag hash are settled without their records being read. Returns false when nothing is
    /// left to read now.
    fn fill(&self, cur: &mut Cursor, filter: Option<&Filter>) -> bool {
        for _ in 0..16 {
            let from = cur.next_read.max(cur.scanned_to);
            let b = match filter {
                Some(f) => self
                    .store
                    .read_where(cur.key, from, 64, 4096, |e| f.may_match(e.tag_hash)),
                None => self.store.read(cur.key, from, 64),
            };
            let Ok(b) = b else {
                return false;
            };
            if filter.is_some() {
                let mut kept = b.messages.iter().map(|m| m.queue_offset).peekable();
                for off in from.max(b.min_offset)..b.next_offset {
                    if kept.peek() == Some(&off) {
                        kept.next();
                    } else {
                        cur.settle(off);
                    }
                }
            }
            cur.scanned_to = b.next_offset;
            if !b.messages.is_empty() {
                cur.buffer.extend(b.messages);
                return true;
            }
            cur.next_read = cur.next_read.max(b.min_offset).max(b.next_offset);
            if b.next_offset >= b.end_offset {
                return false;
            }
        }
        // A long run of rejected entries: go on at the actor's next turn.
        self.q.wake.notify_one();
        false
    }

    /// The next message of one partition for a group: redeliveries first, then new ones.
    /// Expired messages met on the way are settled and dead-lettered; messages the group's
    /// filter rejects are settled.
    fn next_from(
        &self,
        cur: &mut Cursor,
        filter: Option<&Filter>,
    ) -> Option<(QueueMessage, StoredMeta, u32, bool)> {
        loop {
            let (m, count, redelivered) = if let Some((off, count)) = cur.redeliver.pop_first() {
                match self.read_one(cur.key, off) {
                    Some(m) => (m, count + 1, true),
                    None => {
                        cur.settle(off); // removed by retention meanwhile
                        continue;
                    }
                }
            } else {
                if cur.buffer.is_empty() && !self.fill(cur, filter) {
                    return None;
                }
                let m = cur.buffer.pop_front()?;
                if m.queue_offset < cur.next_read {
                    continue;
                }
                cur.next_read = m.queue_offset + 1;
                if m.queue_offset < cur.committed || cur.settled.contains(&m.queue_offset) {
                    continue; // settled before a restart
                }
                let redelivered = m.queue_offset < cur.delivered_before;
                (m, 1, redelivered)
            };
            let Some(meta) = StoredMeta::decode(&m.record.properties) else {
                tracing::error!(queue = %self.q.name, offset = m.queue_offset, "undecodable message properties; dropped");
                cur.settle(m.queue_offset);
                continue;
            };
            if self.expired(&m, &meta) {
                cur.settle(m.queue_offset);
                self.dead_letter_msg(&meta, &m, "expired");
                continue;
            }
            if filter.is_some_and(|f| !f.matches(&meta.properties)) {
                cur.settle(m.queue_offset);
                continue;
            }
            return Some((m, meta, count, redelivered));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn delivery(
        &self,
        broker: &BrokerInner,
        tag: &ConsumerTag,
        id: ConsumerId,
        partition: u16,
        m: QueueMessage,
        meta: StoredMeta,
        count: u32,
        redelivered: bool,
        no_ack: bool,
    ) -> Delivery {
        Delivery {
            id: broker.next_delivery.fetch_add(1, Ordering::Relaxed),
            consumer: tag.clone(),
            queue: self.q.name.clone(),
            partition,
            offset: m.queue_offset,
            redelivered,
            delivery_count: if self.q.name.starts_with(RETRY_PREFIX) {
                count + retry::earlier_failures(&meta.properties)
            } else {
                count
            },
            store_ts: m.record.store_ts,
            exchange: meta.exchange,
            routing_key: meta.routing_key,
            message: Message {
                properties: meta.properties,
                body: m.record.body,
            },
            queue_ref: Arc::downgrade(&self.q),
            consumer_id: id,
            no_ack,
        }
    }

    fn dead_letter(&self, key: QueueKey, offset: u64, reason: &str) {
        if self.q.in_force().args.dead_letter_exchange.is_none() {
            return;
        }
        if let Some(m) = self.read_one(key, offset) {
            if let Some(meta) = StoredMeta::decode(&m.record.properties) {
                self.dead_letter_msg(&meta, &m, reason);
            }
        }
    }

    /// Republishes a message to the queue's dead-letter exchange, with RabbitMQ's `x-death`-style
    /// headers (`x-first-death-reason`, `-queue`, `-exchange`).
    fn dead_letter_msg(&self, meta: &StoredMeta, m: &QueueMessage, reason: &str) {
        let in_force = self.q.in_force();
        let Some(dlx) = &in_force.args.dead_letter_exchange else {
            return;
        };
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let mut props = meta.properties.clone();
        props.ttl_ms = None; // the per-message TTL is removed on dead-lettering, as RabbitMQ does
                             // The properties change: AMQP consumers get a header built from them, not the original.
        props.amqp_header = None;
        for (k, v) in [
            ("x-first-death-reason", reason),
            ("x-first-death-queue", self.q.name.as_str()),
            ("x-first-death-exchange", meta.exchange.as_str()),
        ] {
            if props.header(k).is_none() {
                props.headers.push((k.into(), Value::Str(v.into())));
            }
        }
        let rk = in_force
            .args
            .dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| meta.routing_key.clone());
        let msg = Message {
            properties: props,
            body: m.record.body.clone(),
        };
        if let Err(e) = broker.publish_internal(&self.q.def.vhost, dlx, &rk, &msg) {
            tracing::warn!(queue = %self.q.name, error = %e, "dead-lettering failed");
        }
    }
}

impl Actor {
    pub(crate) fn new(
        q: Arc<QueueHandle>,
        rx: mpsc::UnboundedReceiver<QueueCmd>,
        store: Arc<Store>,
        broker: Weak<BrokerInner>,
        offsets_dir: PathBuf,
    ) -> Actor {
        let offsets_path = offsets_dir.join(format!("{}.json", q.def.id));
        let mut a = Actor {
            ctx: Ctx { q, store, broker },
            rx,
            groups: BTreeMap::new(),
            consumers: HashMap::new(),
            offsets_path,
            dirty: false,
            had_consumer: false,
            exclusive_consumer: None,
            last_used: Instant::now(),
        };
        let saved: HashMap<String, Vec<SavedCursor>> = if a.ctx.q.def.durable {
            std::fs::read(&a.offsets_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        for (name, cursors) in saved {
            a.group_with(&name, StartFrom::Committed, Some(&cursors));
        }
        a.group_with("", StartFrom::Committed, None);
        a
    }

    /// The group `name`, created at `start` if new.
    fn group_with(
        &mut self,
        name: &str,
        start: StartFrom,
        saved: Option<&[SavedCursor]>,
    ) -> &mut Group {
        if !self.groups.contains_key(name) {
            let parts = (0..self.ctx.q.def.partitions)
                .map(|p| {
                    let key = self.ctx.q.key(p);
                    let (min, end) = self.ctx.store.queue_range(key).unwrap_or((0, 0));
                    let s = saved.and_then(|s| s.get(usize::from(p))).cloned();
                    let committed = match (&s, start) {
                        (Some(s), _) => s.committed.max(min),
                        (None, StartFrom::Committed | StartFrom::Earliest) => min,
                        (None, StartFrom::Latest) => end,
                        (None, StartFrom::Last) => end.saturating_sub(1).max(min),
                        (None, StartFrom::Offset(o)) => o.clamp(min, end),
                        (None, StartFrom::Time(t)) => {
                            self.ctx.store.offset_for_time(key, t).max(min)
                        }
                    };
                    let settled: BTreeSet<u64> = s
                        .as_ref()
                        .map(|s| {
                            s.settled
                                .iter()
                                .copied()
                                .filter(|&o| o >= committed)
                                .collect()
                        })
                        .unwrap_or_default();
                    Cursor {
                        key,
                        partition: p,
                        committed,
                        settled,
                        next_read: committed,
                        delivered_before: s.map_or(0, |s| s.delivered),
                        redeliver: BTreeMap::new(),
                        inflight: HashMap::new(),
                        owner: None,
                        buffer: VecDeque::new(),
                        scanned_to: committed,
                        sent: HashMap::new(),
                    }
                })
                .collect();
            self.groups.insert(
                name.to_string(),
                Group {
                    parts,
                    members: Vec::new(),
                    exclusive_partitions: false,
                    rr: 0,
                    filter: None,
                    ordered: false,
                    retry: None,
                },
            );
            self.dirty = true;
        }
        // Just inserted if absent.
        self.groups
            .entry(name.to_string())
            .or_insert_with(|| Group {
                parts: Vec::new(),
                members: Vec::new(),
                exclusive_partitions: false,
                rr: 0,
                filter: None,
                ordered: false,
                retry: None,
            })
    }

    pub(crate) async fn run(mut self) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(QueueCmd::Stop { reply }) => {
                        self.save_offsets();
                        let _ = reply.send(());
                        return;
                    }
                    Some(QueueCmd::Delete { if_unused, if_empty, reply }) => {
                        match self.check_delete(if_unused, if_empty) {
                            Ok(n) => {
                                self.cancel_all("queue deleted");
                                let _ = reply.send(Ok(n));
                                return;
                            }
                            Err(e) => { let _ = reply.send(Err(e)); }
                        }
                    }
                    Some(cmd) => self.handle(cmd),
                    None => return,
                },
                _ = self.ctx.q.wake.notified() => {}
                _ = tick.tick() => {
                    if self.on_tick() {
                        return; // expired or auto-deleted
                    }
                }
            }
            self.enforce_limits();
            self.dispatch();
            self.update_ready();
        }
    }

    fn handle(&mut self, cmd: QueueCmd) {
        match cmd {
            QueueCmd::Subscribe {
                id,
                spec,
                sink,
                reply,
            } => {
                let r = self.subscribe(id, spec, sink);
                let _ = reply.send(r);
            }
            QueueCmd::Unsubscribe { id } => self.unsubscribe(id),
            QueueCmd::Cancel { id } => self.cancel(id),
            QueueCmd::Settle { items, how } => {
                for (consumer, partition, offset) in items {
                    self.settle(consumer, partition, offset, how);
                }
            }
            QueueCmd::SetPrefetch { consumer, prefetch } => {
                if let Some(c) = self.consumers.get_mut(&consumer) {
                    c.prefetch = prefetch;
                }
            }
            QueueCmd::Get { reply } => {
                self.last_used = Instant::now();
                let d = self.get();
                let _ = reply.send(d);
            }
            QueueCmd::Purge { reply } => {
                let n = self.purge();
                let _ = reply.send(n);
            }
            QueueCmd::Stats { reply } => {
                let _ = reply.send(self.stats());
            }
            QueueCmd::Groups { reply } => {
                let _ = reply.send(self.groups_info());
            }
            QueueCmd::ResetGroup { group, to, reply } => {
                let _ = reply.send(self.reset_group(&group, to));
            }
            QueueCmd::DeleteGroup { group, reply } => {
                let _ = reply.send(self.delete_group(&group));
            }
            QueueCmd::ReloadOffsets => self.reload_offsets(),
            QueueCmd::ArgsChanged => self.last_used = Instant::now(),
            QueueCmd::Stop { .. } | QueueCmd::Delete { .. } => {}
        }
    }

    fn subscribe(
        &mut self,
        id: ConsumerId,
        spec: ConsumeSpec,
        sink: mpsc::UnboundedSender<SessionEvent>,
    ) -> CoreResult<Vec<u16>> {
        let consumed = self.groups.values().any(|g| !g.members.is_empty());
        if self.exclusive_consumer.is_some() || (spec.exclusive && consumed) {
            return Err(CoreError::AccessRefused(format!(
                "queue '{}' in exclusive use",
                spec.queue
            )));
        }
        let group = self.group_with(&spec.group, spec.start, None);
        let exclusive_partitions = spec.exclusive_partitions || spec.ordered;
        if !group.members.is_empty() {
            if group.exclusive_partitions != exclusive_partitions || group.ordered != spec.ordered {
                return Err(CoreError::PreconditionFailed(format!(
                    "group '{}' of queue '{}' already consumes with exclusive_partitions = {}, ordered = {}",
                    spec.group, spec.queue, group.exclusive_partitions, group.ordered
                )));
            }
            let source = |f: &Option<Arc<Filter>>| f.as_ref().map(|f| f.source.clone());
            if source(&group.filter) != source(&spec.filter) {
                return Err(CoreError::PreconditionFailed(format!(
                    "group '{}' of queue '{}' already consumes with filter {:?}; every member must use the same",
                    spec.group,
                    spec.queue,
                    source(&group.filter).unwrap_or_else(|| "none".into())
                )));
            }
        }
        if group.members.is_empty() {
            group.retry = spec.retry.clone().map(Arc::new);
        }
        group.exclusive_partitions = exclusive_partitions;
        group.ordered = spec.ordered;
        group.filter = spec.filter.clone();
        group.members.push(id);
        group.members.sort_unstable();
        self.consumers.insert(
            id,
            Consumer {
                tag: ConsumerTag::from(spec.tag.as_str()),
                group: spec.group.clone(),
                prefetch: spec.prefetch,
                inflight: 0,
                no_ack: spec.no_ack,
                sink,
            },
        );
        self.had_consumer = true;
        if spec.exclusive {
            self.exclusive_consumer = Some(id);
        }
        self.last_used = Instant::now();
        self.rebalance(&spec.group);
        Ok(self.assigned(&spec.group, id))
    }

    fn assigned(&self, group: &str, id: ConsumerId) -> Vec<u16> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        g.parts
            .iter()
            .filter(|c| !g.exclusive_partitions || c.owner == Some(id))
            .map(|c| c.partition)
            .collect()
    }

    /// Exclusive-partition groups: partitions split into contiguous ranges among members sorted
    /// by id, the first `n % m` members taking one more (RocketMQ's "averagely"). A partition
    /// that changes owner gives its in-flight messages back for redelivery.
    fn rebalance(&mut self, group: &str) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        if !g.exclusive_partitions {
            return;
        }
        let n = g.parts.len();
        let m = g.members.len();
        let mut changed: Vec<ConsumerId> = Vec::new();
        for (i, c) in g.parts.iter_mut().enumerate() {
            let owner = if let (Some(base), Some(extra)) = (n.checked_div(m), n.checked_rem(m)) {
                // Member j owns [start_j, start_j + base + (j < extra)).
                let mut j = 0;
                let mut start = 0;
                while j < m {
                    let len = base + usize::from(j < extra);
                    if i < start + len {
                        break;
                    }
                    start += len;
                    j += 1;
                }
                g.members.get(j).copied()
            } else {
                None
            };
            if owner != c.owner {
                for (off, (who, count)) in c.inflight.drain() {
                    c.redeliver.insert(off, count);
                    if let Some(w) = self.consumers.get_mut(&who) {
                        w.inflight = w.inflight.saturating_sub(1);
                    }
                }
                changed.extend(c.owner);
                changed.extend(owner);
                c.owner = owner;
            }
        }
        changed.sort_unstable();
        changed.dedup();
        for id in changed {
            let parts = self.assigned(group, id);
            if let Some(c) = self.consumers.get(&id) {
                let _ = c.sink.send(SessionEvent::Assignment {
                    consumer: c.tag.clone(),
                    partitions: parts,
                });
            }
        }
    }

    fn unsubscribe(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.remove(&id) else {
            return;
        };
        if self.exclusive_consumer == Some(id) {
            self.exclusive_consumer = None;
        }
        if let Some(g) = self.groups.get_mut(&c.group) {
            g.members.retain(|m| *m != id);
            for cur in &mut g.parts {
                let mine: Vec<u64> = cur
                    .inflight
                    .iter()
                    .filter(|(_, (w, _))| *w == id)
                    .map(|(o, _)| *o)
                    .collect();
                for off in mine {
                    if let Some((_, count)) = cur.inflight.remove(&off) {
                        cur.redeliver.insert(off, count);
                    }
                }
            }
        }
        let group = c.group.clone();
        if is_ephemeral(&group)
            && self
                .groups
                .get(&group)
                .is_some_and(|g| g.members.is_empty())
        {
            // A replaying consumer's own group ends with it.
            self.groups.remove(&group);
        } else {
            self.rebalance(&group);
        }
        self.last_used = Instant::now();
    }

    /// A cancelled consumer leaves its group at once but keeps its in-flight deliveries: it is
    /// then like a basic.get holder (no tag), removed when the last of them is settled.
    fn cancel(&mut self, id: ConsumerId) {
        let Some(c) = self.consumers.get_mut(&id) else {
            return;
        };
        c.tag = ConsumerTag::from("");
        let group = c.group.clone();
        if c.inflight == 0 {
            self.consumers.remove(&id);
        }
        if self.exclusive_consumer == Some(id) {
            self.exclusive_consumer = None;
        }
        if let Some(g) = self.groups.get_mut(&group) {
            g.members.retain(|m| *m != id);
        }
        self.rebalance(&group);
        self.last_used = Instant::now();
    }

    /// Runs once per acknowledged delivery, so it looks the consumer and its group up once
    /// each (no group-name clone, no second or third look-up by name).
    fn settle(&mut self, consumer: ConsumerId, partition: u16, offset: u64, how: Settle) {
        let Some(c) = self.consumers.get_mut(&consumer) else {
            return;
        };
        let Some(g) = self.groups.get_mut(&c.group) else {
            return;
        };
        let Some(cur) = g.parts.get_mut(usize::from(partition)) else {
            return;
        };
        match cur.inflight.get(&offset) {
            Some((who, _)) if *who == consumer => {}
            _ => return, // stale (revoked by a rebalance, or already settled)
        }
        let Some((_, count)) = cur.inflight.remove(&offset) else {
            return;
        };
        c.inflight = c.inflight.saturating_sub(1);
        if c.tag.is_empty() && c.inflight == 0 {
            self.consumers.remove(&consumer); // a basic.get, now settled
        }
        cur.sent.remove(&offset);
        let policy = match how {
            Settle::Requeue | Settle::Reject if !g.ordered => g.retry.as_ref(),
            _ => None,
        };
        if let Some(policy) = policy {
            let key = cur.key;
            cur.settle(offset);
            self.ctx.retry_or_dead_letter(
                policy,
                key,
                partition,
                offset,
                count,
                how == Settle::Reject,
            );
            self.dirty = true;
            return;
        }
        let limit = self.ctx.q.in_force().args.delivery_limit;
        match how {
            Settle::Ack => {
                cur.settle(offset);
                self.ctx.q.counters.ack();
                self.ctx.q.vhost_counters.ack();
            }
            Settle::Requeue if limit.is_none_or(|l| count < l) => {
                cur.redeliver.insert(offset, count);
            }
            Settle::Requeue | Settle::Reject => {
                let reason = if how == Settle::Reject {
                    "rejected"
                } else {
                    "delivery_limit"
                };
                let key = cur.key;
                cur.settle(offset);
                self.ctx.dead_letter(key, offset, reason);
            }
        }
        self.dirty = true;
    }

    fn dispatch(&mut self) {
        let Some(broker) = self.ctx.broker.upgrade() else {
            return;
        };
        let ctx = &self.ctx;
        let consumers = &mut self.consumers;
        for g in self.groups.values_mut() {
            let n = g.members.len();
            let nparts = g.parts.len();
            if n == 0 || nparts == 0 {
                continue;
            }
            loop {
                let start = g.rr;
                let mut progressed = false;
                // The member after the last one served: the next pass (and the next dispatch)
                // starts there, so competing consumers take turns even one message at a time.
                let mut next = start;
                for k in 0..n {
                    let Some(&id) = g.members.get((start + k) % n) else {
                        continue;
                    };
                    let Some(c) = consumers.get_mut(&id) else {
                        continue;
                    };
                    let window = if c.prefetch == 0 {
                        UNLIMITED_WINDOW
                    } else {
                        c.prefetch
                    };
                    if c.inflight >= window {
                        continue;
                    }
                    for j in 0..nparts {
                        let Some(cur) = g.parts.get_mut((start + k + j) % nparts) else {
                            continue;
                        };
                        if g.exclusive_partitions && cur.owner != Some(id) {
                            continue;
                        }
                        if g.ordered && !cur.inflight.is_empty() {
                            continue; // the previous message is not settled yet
                        }
                        let Some((m, meta, count, redelivered)) =
                            ctx.next_from(cur, g.filter.as_deref())
                        else {
                            continue;
                        };
                        let offset = m.queue_offset;
                        ctx.q.count_delivery(redelivered);
                        let d = ctx.delivery(
                            &broker,
                            &c.tag,
                            id,
                            cur.partition,
                            m,
                            meta,
                            count,
                            redelivered,
                            c.no_ack,
                        );
                        if c.no_ack {
                            cur.settle(offset);
                        } else {
                            cur.inflight.insert(offset, (id, count));
                            c.inflight += 1;
                            if g.retry.as_ref().is_some_and(|p| p.consume_timeout_ms > 0) {
                                cur.sent.insert(offset, Instant::now());
                            }
                        }
                        // A closed session's consumer is removed by its close, which requeues.
                        let _ = c.sink.send(SessionEvent::Delivery(Box::new(d)));
                        progressed = true;
                        next = start.wrapping_add(k + 1);
                        self.dirty = true;
                        break;
                    }
                }
                if !progressed {
                    break;
                }
                g.rr = next;
            }
        }
    }

    /// basic.get: one message from the default group, delivered to a one-off consumer that
    /// holds it in flight until it is settled.
    fn get(&mut self) -> Option<Delivery> {
        let broker = self.ctx.broker.upgrade()?;
        let g = self.groups.get_mut("")?;
        let filter = g.filter.clone();
        for cur in &mut g.parts {
            if let Some((m, meta, count, redelivered)) = self.ctx.next_from(cur, filter.as_deref())
            {
                let id = broker.next_consumer.fetch_add(1, Ordering::Relaxed);
                self.ctx.q.count_delivery(redelivered);
                let tag = ConsumerTag::from("");
                cur.inflight.insert(m.queue_offset, (id, count));
                let (tx, _rx) = mpsc::unbounded_channel();
                self.consumers.insert(
                    id,
                    Consumer {
                        tag: tag.clone(),
                        group: String::new(),
                        prefetch: 1,
                        inflight: 1,
                        no_ack: false,
                        sink: tx,
                    },
                );
                self.dirty = true;
                return Some(self.ctx.delivery(
                    &broker,
                    &tag,
                    id,
                    cur.partition,
                    m,
                    meta,
                    count,
                    redelivered,
                    false,
                ));
            }
        }
        None
    }

    fn ready_of(&self, group: &str) -> u64 {
        let Some(g) = self.groups.get(group) else {
            return 0;
        };
        g.parts
            .iter()
            .map(|c| {
                let end = self.ctx.store.queue_range(c.key).map_or(0, |r| r.1);
                end.saturating_sub(c.next_read) + c.redeliver.len() as u64
            })
            .sum()
    }

    fn update_ready(&self) {
        let Some(g) = self.groups.get("") else { return };
        let taken: u64 = g
            .parts
            .iter()
            .map(|c| c.next_read.saturating_sub(c.redeliver.len() as u64))
            .sum();
        self.ctx.q.taken.store(taken, Ordering::Release);
    }

    /// Max-length with drop-head: the oldest ready messages go (dead-lettered if configured).
    fn enforce_limits(&mut self) {
        let (max_len, max_bytes, overflow) = {
            let f = self.ctx.q.in_force();
            (f.args.max_length, f.args.max_length_bytes, f.args.overflow)
        };
        if max_len.is_none() && max_bytes.is_none() {
            return;
        }
        if overflow != Overflow::DropHead {
            if max_bytes.is_some() {
                self.ctx
                    .q
                    .ready_bytes
                    .store(self.ready_bytes_of(""), Ordering::Release);
            }
            return;
        }
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let mut ready = self.ready_of(&name);
            let mut bytes = if max_bytes.is_some() {
                self.ready_bytes_of(&name)
            } else {
                0
            };
            while max_len.is_some_and(|m| ready > m) || max_bytes.is_some_and(|m| bytes > m) {
                let Some((pi, off)) = self.groups.get(&name).and_then(|g| {
                    g.parts
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| c.oldest_ready().map(|o| (i, o)))
                        .min_by_key(|(_, o)| *o)
                }) else {
                    break;
                };
                let Some(cur) = self.groups.get_mut(&name).and_then(|g| g.parts.get_mut(pi)) else {
                    break;
                };
                let key = cur.key;
                if cur.redeliver.remove(&off).is_none() {
                    cur.next_read = off + 1;
                    cur.buffer.retain(|m| m.queue_offset > off);
                }
                cur.settle(off);
                if max_bytes.is_some() {
                    let size = self
                        .ctx
                        .read_one(key, off)
                        .map_or(0, |m| m.record.body.len() as u64);
                    bytes = bytes.saturating_sub(size);
                }
                if name.is_empty() {
                    self.ctx.dead_letter(key, off, "maxlen");
                }
                ready -= 1;
                self.dirty = true;
            }
        }
    }

    /// Bytes of ready message bodies in `group` (a scan of the ready part of the log; only
    /// queues with `x-max-length-bytes` pay for it).
    fn ready_bytes_of(&self, group: &str) -> u64 {
        let Some(g) = self.groups.get(group) else {
            return 0;
        };
        let mut total = 0;
        for c in &g.parts {
            for off in c.redeliver.keys() {
                total += self
                    .ctx
                    .read_one(c.key, *off)
                    .map_or(0, |m| m.record.body.len() as u64);
            }
            let mut from = c.next_read;
            while let Ok(b) = self.ctx.store.read(c.key, from, 1024) {
                if b.messages.is_empty() {
                    break;
                }
                total += b
                    .messages
                    .iter()
                    .map(|m| m.record.body.len() as u64)
                    .sum::<u64>();
                from = b.next_offset;
            }
        }
        total
    }

    /// Expired messages at the head of each group's partitions are removed (dead-lettered for
    /// the default group) even with no consumer, as RabbitMQ does.
    fn expire_heads(&mut self) {
        let names: Vec<String> = self.groups.keys().cloned().collect();
        for name in names {
            let nparts = self.groups.get(&name).map_or(0, |g| g.parts.len());
            for pi in 0..nparts {
                while let Some(cur) = self.groups.get(&name).and_then(|g| g.parts.get(pi)) {
                    let (key, off) = match cur.oldest_ready() {
                        Some(off) => (cur.key, off),
                        None => break,
                    };
                    let Some(m) = self.ctx.read_one(key, off) else {
                        break;
                    };
                    let Some(meta) = StoredMeta::decode(&m.record.properties) else {
                        break;
                    };
                    if !self.ctx.expired(&m, &meta) {
                        break;
                    }
                    let Some(cur) = self.groups.get_mut(&name).and_then(|g| g.parts.get_mut(pi))
                    else {
                        break;
                    };
                    if cur.redeliver.remove(&off).is_none() {
                        cur.next_read = off + 1;
                        cur.buffer.retain(|b| b.queue_offset > off);
                    }
                    cur.settle(off);
                    self.dirty = true;
                    if name.is_empty() {
                        self.ctx.dead_letter_msg(&meta, &m, "expired");
                    }
                }
            }
        }
    }

    fn purge(&mut self) -> u64 {
        let mut n = 0;
        for g in self.groups.values_mut() {
            for c in &mut g.parts {
                let end = self.ctx.store.queue_range(c.key).map_or(0, |r| r.1);
                let ready = end.saturating_sub(c.next_read) + c.redeliver.len() as u64;
                for off in std::mem::take(&mut c.redeliver).into_keys() {
                    c.settle(off);
                }
                for off in c.next_read..end {
                    c.settle(off);
                }
                c.next_read = end;
                c.buffer.clear();
                n += ready;
            }
        }
        self.dirty = true;
        n
    }

    fn stats(&self) -> QueueStats {
        QueueStats {
            ready: self.ready_of(""),
            unacked: self
                .groups
                .values()
                .flat_map(|g| g.parts.iter())
                .map(|c| c.inflight.len() as u64)
                .sum(),
            consumers: self
                .consumers
                .values()
                .filter(|c| !c.tag.is_empty())
                .count() as u32,
            groups: self.groups.len() as u32,
            lag: self
                .groups
                .values()
                .map(|g| g.parts.iter().map(|c| self.lag_of(c).1).sum::<u64>())
                .max()
                .unwrap_or(0),
        }
    }

    fn check_delete(&mut self, if_unused: bool, if_empty: bool) -> CoreResult<u64> {
        let s = self.stats();
        if if_unused && s.consumers > 0 {
            return Err(CoreError::PreconditionFailed(format!(
                "queue '{}' in use",
                self.ctx.q.name
            )));
        }
        if if_empty && s.ready + s.unacked > 0 {
            return Err(CoreError::PreconditionFailed(format!(
                "queue '{}' not empty",
                self.ctx.q.name
            )));
        }
        Ok(s.ready)
    }

    fn cancel_all(&mut self, reason: &str) {
        for c in self.consumers.values() {
            if !c.tag.is_empty() {
                let _ = c.sink.send(SessionEvent::Cancelled {
                    consumer: c.tag.clone(),
                    reason: reason.into(),
                });
            }
        }
        self.consumers.clear();
    }

    /// Periodic work; returns true if the queue deleted itself (x-expires or auto-delete).
    fn on_tick(&mut self) -> bool {
        // Retention: nothing below the lowest committed offset of any group is needed.
        for p in 0..self.ctx.q.def.partitions {
            let floor = self
                .groups
                .values()
                .filter_map(|g| g.parts.get(usize::from(p)))
                .map(|c| c.committed)
                .min();
            if let Some(f) = floor {
                self.ctx.store.set_floor(self.ctx.q.key(p), f);
            }
        }
        self.expire_heads();
        self.expire_deliveries();
        if self.dirty {
            self.save_offsets();
        }
        let unused = self.consumers.values().all(|c| c.tag.is_empty());
        let expired = self.ctx.q.in_force().args.expires_ms.is_some_and(|ms| {
            unused && ms > 0 && self.last_used.elapsed() >= Duration::from_millis(ms)
        });
        let auto_deleted = self.ctx.q.def.auto_delete && self.had_consumer && unused;
        if expired || auto_deleted {
            if let Some(b) = self.ctx.broker.upgrade() {
                b.forget_queue(&self.ctx.q);
            }
            self.cancel_all("queue deleted");
            return true;
        }
        false
    }

    fn save_offsets(&mut self) {
        self.dirty = false;
        if !self.ctx.q.def.durable || self.ctx.q.deleted.load(Ordering::Acquire) {
            return;
        }
        let saved: HashMap<&str, Vec<SavedCursor>> = self
            .groups
            .iter()
            .filter(|(name, _)| !is_ephemeral(name))
            .map(|(name, g)| {
                let cs = g
                    .parts
                    .iter()
                    .map(|c| SavedCursor {
                        committed: c.committed,
                        settled: c.settled.iter().copied().collect(),
                        delivered: c.next_read.max(c.delivered_before),
                    })
                    .collect();
                (name.as_str(), cs)
            })
            .collect();
        let bytes = serde_json::to_vec(&saved).unwrap_or_default();
        if let Err(e) = super::meta::write_atomic(&self.offsets_path, &bytes) {
            tracing::warn!(queue = %self.ctx.q.name, error = %e, "saving consumer offsets failed");
            self.dirty = true;
        }
    }
}

/// A queue's handle, with `policy` in force, and the receiver of its actor's commands.
pub(crate) fn new_handle(
    def: QueueDef,
    exclusive_owner: Option<u64>,
    vhost_counters: Arc<Counters>,
    policy: Option<Arc<Policy>>,
) -> (Arc<QueueHandle>, mpsc::UnboundedReceiver<QueueCmd>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let h = QueueHandle {
        in_force: arc_swap::ArcSwap::from_pointee(InForce::new(def.raw_args.clone(), policy)),
        name: def.name.clone(),
        def,
        exclusive_owner,
        tx,
        wake: Notify::new(),
        rr: AtomicU32::new(0),
        taken: AtomicU64::new(u64::MAX),
        ready_bytes: AtomicU64::new(0),
        deleted: AtomicBool::new(false),
        counters: Counters::default(),
        vhost_counters,
    };
    (Arc::new(h), rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(committed: u64) -> Cursor {
        Cursor {
            key: QueueKey::new(1, 0),
            partition: 0,
            committed,
            settled: BTreeSet::new(),
            next_read: committed,
            delivered_before: 0,
            redeliver: BTreeMap::new(),
            inflight: HashMap::new(),
            owner: None,
            buffer: VecDeque::new(),
            scanned_to: committed,
            sent: HashMap::new(),
        }
    }

    #[test]
    fn acks_in_order_advance_the_committed_offset_one_by_one() {
        let mut c = cursor(5);
        for o in 5..10 {
            c.settle(o);
            assert_eq!(c.committed, o + 1);
        }
        assert!(c.settled.is_empty());
        c.settle(3); // below the committed offset: already settled
        assert_eq!(c.committed, 10);
    }

    #[test]
    fn acks_out_of_order_wait_for_the_gap_then_commit_together() {
        let mut c = cursor(0);
        c.settle(2);
        c.settle(1);
        assert_eq!(c.committed, 0, "offset 0 is still unacked");
        assert_eq!(c.settled.len(), 2);
        c.settle(0);
        assert_eq!(c.committed, 3);
        assert!(c.settled.is_empty());
        c.settle(4);
        c.settle(3); // the next in order, with 4 waiting: both commit
        assert_eq!(c.committed, 5);
        assert!(c.settled.is_empty());
    }
}
