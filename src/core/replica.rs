//! What the core does as a slave of a broker group: refuse writes while read-only, take the
//! master's metadata, consumer offsets and retained messages as they come, wake queues when
//! replicated records arrive, and become writable on promotion.
//!
//! The CommitLog itself is copied below the core, by `Store::append_replicated`; this module
//! only keeps the core's view (queues, bindings, cursors) in step with it. Objects a client
//! creates on a slave are transient (durable ones are refused), so the master's metadata can
//! replace the durable part wholesale.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::error::{CoreError, CoreResult};
use super::meta::Metadata;
use super::queue::{QueueCmd, QueueHandle};
use super::vhost::{Exchange, VHostState};
use super::{lock, rlock, wlock, Broker, BrokerInner, ID_BLOCK};

/// The master's durable state, as shipped to its slaves.
#[derive(Debug, Clone, Default)]
pub struct ReplicatedMeta {
    /// `meta.json`: vhosts, users, permissions, durable exchanges, queues and bindings.
    pub meta: Metadata,
    /// Consumer offsets: `queues/<id>.json` contents by queue id.
    pub offsets: Vec<(u32, Vec<u8>)>,
    /// `retained.bin`, if the master has retained messages.
    pub retained: Option<Vec<u8>>,
}

impl BrokerInner {
    /// Refuses a write while this broker is a read-only slave.
    pub(crate) fn check_writable(&self) -> CoreResult<()> {
        if !self.read_only.load(Ordering::Acquire) {
            return Ok(());
        }
        let why = lock(&self.read_only_why).clone();
        Err(CoreError::ReadOnly(format!(
            "{why}; publish to the master of this broker group"
        )))
    }
}

impl Broker {
    /// Makes the broker a read-only slave (`Some(reason)`, shown in every refusal) or a
    /// writable master (`None`). Publishes and new durable objects are refused while read-only;
    /// consuming goes on.
    pub fn set_read_only(&self, why: Option<String>) {
        let on = why.is_some();
        *lock(&self.inner.read_only_why) = why.unwrap_or_default();
        self.inner.read_only.store(on, Ordering::Release);
    }

    /// Whether the broker refuses writes (a slave).
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only.load(Ordering::Acquire)
    }

    /// Every shared queue (not exclusive to a connection): vhost, name, partitions. What a
    /// broker reports to name servers as its topics.
    pub fn topics(&self) -> Vec<(String, String, u16)> {
        let mut out = Vec::new();
        for v in rlock(&self.inner.vhosts).values() {
            for q in rlock(v).queues.values() {
                if q.exclusive_owner.is_none() {
                    out.push((q.def.vhost.clone(), q.name.clone(), q.def.partitions));
                }
            }
        }
        out.sort();
        out
    }

    /// Wakes the queues with these store ids (replicated records arrived for them).
    pub fn wake_queues(&self, ids: &HashSet<u32>) {
        for v in rlock(&self.inner.vhosts).values() {
            for q in rlock(v).queues.values() {
                if ids.contains(&q.def.id) {
                    q.wake.notify_one();
                }
            }
        }
    }

    /// Changes whenever the durable metadata changes (a counter of `meta.json` saves).
    pub fn meta_version(&self) -> u64 {
        self.inner.metafile.saves()
    }

    /// The durable state to ship to slaves: what `meta.json`, the offsets files and
    /// `retained.bin` hold right now.
    pub fn replicated_meta(&self) -> ReplicatedMeta {
        let meta = lock(&self.inner.meta).clone();
        let offsets = meta
            .queues
            .iter()
            .filter_map(|q| {
                let path = self.inner.offsets_dir.join(format!("{}.json", q.id));
                std::fs::read(path).ok().map(|b| (q.id, b))
            })
            .collect();
        let retained = std::fs::read(self.inner.data_dir.join("retained.bin")).ok();
        ReplicatedMeta {
            meta,
            offsets,
            retained,
        }
    }

    /// Takes the master's durable state: objects it has are created, durable objects it no
    /// longer has are removed (their queues stop), users and permissions are replaced; then
    /// idle consumer groups take the master's offsets and the retained set is replaced.
    ///
    /// # Errors
    /// Metadata or offsets I/O.
    pub async fn apply_replicated_meta(&self, r: ReplicatedMeta) -> CoreResult<()> {
        let inner = &self.inner;
        let theirs = r.meta;
        let ours = lock(&inner.meta).clone();
        for v in &theirs.vhosts {
            if inner.vhost(v).is_none() {
                wlock(&inner.vhosts).insert(
                    v.clone(),
                    Arc::new(std::sync::RwLock::new(VHostState::new(v))),
                );
            }
        }
        // Queues the master deleted.
        let keep: HashSet<(&str, &str, u32)> = theirs
            .queues
            .iter()
            .map(|q| (q.vhost.as_str(), q.name.as_str(), q.id))
            .collect();
        let gone: Vec<Arc<QueueHandle>> = ours
            .queues
            .iter()
            .filter(|q| !keep.contains(&(q.vhost.as_str(), q.name.as_str(), q.id)))
            .filter_map(|q| inner.queue(&q.vhost, &q.name).ok())
            .collect();
        for q in gone {
            let _ = q
                .ask(|reply| QueueCmd::Delete {
                    if_unused: false,
                    if_empty: false,
                    reply,
                })
                .await;
            inner.forget_queue(&q);
        }
        for d in &theirs.queues {
            let have = inner
                .queue(&d.vhost, &d.name)
                .is_ok_and(|q| q.def.id == d.id);
            if !have {
                inner.start_queue(d.clone(), None);
            }
        }
        // Exchanges and bindings: the durable ones become the master's.
        for v in &theirs.vhosts {
            let Some(vh) = inner.vhost(v) else { continue };
            let mut st = wlock(&vh);
            let durable_x: HashSet<&str> = ours
                .exchanges
                .iter()
                .filter(|x| &x.vhost == v)
                .map(|x| x.name.as_str())
                .collect();
            st.exchanges
                .retain(|name, _| !durable_x.contains(name.as_str()));
            for x in theirs.exchanges.iter().filter(|x| &x.vhost == v) {
                st.exchanges.entry(x.name.clone()).or_insert(Exchange {
                    def: x.clone(),
                    bindings: Vec::new(),
                });
            }
            for x in st.exchanges.values_mut() {
                x.bindings.retain(|b| !ours.bindings.contains(b));
            }
            for b in theirs.bindings.iter().filter(|b| &b.vhost == v) {
                if let Some(x) = st.exchanges.get_mut(&b.source) {
                    if !x.bindings.contains(b) {
                        x.bindings.push(b.clone());
                    }
                }
            }
        }
        {
            let mut meta = lock(&inner.meta);
            let next = meta.next_queue_id.max(theirs.next_queue_id);
            *meta = theirs;
            meta.next_queue_id = next;
            inner.metafile.save(&meta)?;
        }
        inner.reapply_policies(None);
        self.apply_offsets(r.offsets).await?;
        if let Some(bytes) = r.retained {
            inner.retained.replace(&bytes);
        }
        self.release_unknown_queues();
        Ok(())
    }

    /// Store ids of the queues the metadata or this broker knows.
    fn known_queue_ids(&self) -> HashSet<u32> {
        let mut ids: HashSet<u32> = lock(&self.inner.meta).queues.iter().map(|q| q.id).collect();
        for v in rlock(&self.inner.vhosts).values() {
            ids.extend(rlock(v).queues.values().map(|q| q.def.id));
        }
        ids
    }

    /// Consume queues of queues nobody here knows (the master's transient queues) need nothing
    /// kept: retention may remove their records.
    fn release_unknown_queues(&self) {
        let known = self.known_queue_ids();
        let store = &self.inner.store;
        for key in store.queues() {
            if !known.contains(&key.queue) {
                if let Some((_, end)) = store.queue_range(key) {
                    store.set_floor(key, end);
                }
            }
        }
    }

    async fn apply_offsets(&self, offsets: Vec<(u32, Vec<u8>)>) -> CoreResult<()> {
        let by_id: HashMap<u32, Vec<u8>> = offsets.into_iter().collect();
        let queues: Vec<Arc<QueueHandle>> = rlock(&self.inner.vhosts)
            .values()
            .flat_map(|v| rlock(v).queues.values().cloned().collect::<Vec<_>>())
            .collect();
        for q in queues {
            let Some(bytes) = by_id.get(&q.def.id) else {
                continue;
            };
            let path = self.inner.offsets_dir.join(format!("{}.json", q.def.id));
            if std::fs::read(&path).is_ok_and(|b| &b == bytes) {
                continue;
            }
            super::meta::write_atomic(&path, bytes)?;
            let _ = q.tx.send(QueueCmd::ReloadOffsets);
        }
        Ok(())
    }

    /// Becomes a writable master: queue ids continue past anything the old master may have
    /// handed out, consume queues of queues it never saved (its transient ones) are removed,
    /// and writes are accepted.
    ///
    /// # Errors
    /// Metadata I/O.
    pub fn promote(&self) -> CoreResult<()> {
        let inner = &self.inner;
        let live: HashSet<u32> = {
            let mut meta = lock(&inner.meta);
            let seen = inner
                .store
                .queues()
                .iter()
                .map(|k| k.queue)
                .max()
                .unwrap_or(0);
            let next = meta.next_queue_id.max(seen + 1);
            meta.next_queue_id = next.div_ceil(ID_BLOCK) * ID_BLOCK + 1;
            inner.metafile.save(&meta)?;
            meta.queues.iter().map(|q| q.id).collect()
        };
        let known = self.known_queue_ids();
        for key in inner.store.queues() {
            if !live.contains(&key.queue) && !known.contains(&key.queue) {
                if let Err(e) = inner.store.delete_queue(key) {
                    tracing::warn!(queue = key.queue, error = %e, "removing a stale consume queue failed");
                }
            }
        }
        self.set_read_only(None);
        Ok(())
    }
}
