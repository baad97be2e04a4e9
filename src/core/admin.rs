//! What the HTTP API reads and manages: listings with live counts, users, vhosts and
//! permissions, connections, and message look-up by id or key.
//!
//! Who may call what (the `administrator` tag for users and vhosts) is the API's business. What
//! acts on a vhost's exchanges, queues and messages goes through a [`Session`] of the requesting
//! user, so the same permission rules apply as for every protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use super::auth::{Access, Permission, User};
use super::error::{CoreError, CoreResult};
use super::message::{Message, StoredMeta};
use super::meta::{BindingDef, ExchangeDef, QueueDef};
use super::metrics::CounterSnapshot;
use super::policy::Policy;
use super::queue::{GroupInfo, QueueCmd, QueueHandle, QueueStats, StartFrom};
use super::registry::ConnectionInfo;
use super::session::Session;
use super::{lock, rlock, wlock, Broker};

/// A queue with its live counts.
#[derive(Debug, Clone)]
pub struct QueueSummary {
    /// Its definition.
    pub def: QueueDef,
    /// Owned by one connection (deleted with it).
    pub exclusive: bool,
    /// Ready, unacked, consumers.
    pub stats: QueueStats,
    /// Message counters since the broker started.
    pub counters: CounterSnapshot,
    /// Its `x-expires` in force (it can change after declaration: an MQTT session's expiry, a
    /// policy).
    pub expires_ms: Option<u64>,
    /// The policy that applies to it.
    pub policy: Option<Arc<Policy>>,
}

/// How to look messages up in the store's index.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// By message id.
    Id(String),
    /// By message key, stored within `[begin_ms, end_ms]`.
    Key {
        /// The key.
        key: String,
        /// Earliest store time, ms since the epoch.
        begin_ms: i64,
        /// Latest store time, ms since the epoch.
        end_ms: i64,
    },
    /// Messages stored within `[begin_ms, end_ms]`, oldest first: in one queue, or in every
    /// queue the requester may read (from the consume queues' time order).
    Time {
        /// Only this queue.
        queue: Option<String>,
        /// Earliest store time, ms since the epoch.
        begin_ms: i64,
        /// Latest store time, ms since the epoch.
        end_ms: i64,
    },
}

/// A message found by [`Broker::lookup`].
#[derive(Debug, Clone)]
pub struct FoundMessage {
    /// Where it is stored: (queue, partition, offset), for the queues of the vhost the
    /// requester may read.
    pub queues: Vec<(String, u16, u64)>,
    /// CommitLog offset.
    pub commitlog_offset: u64,
    /// When the broker stored it, ms since the epoch.
    pub store_ts: i64,
    /// Producer timestamp, ms since the epoch.
    pub born_ts: i64,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// The message.
    pub message: Message,
}

/// Records of `queues` stored within `[begin, end]`, oldest first, each once, at most `max`.
fn in_time_range(
    store: &junction_store::Store,
    queues: &[Arc<QueueHandle>],
    begin: i64,
    end: i64,
    max: usize,
) -> Vec<junction_store::Record> {
    let mut found: std::collections::BTreeMap<(i64, u64), junction_store::Record> =
        std::collections::BTreeMap::new();
    for q in queues {
        for p in 0..q.def.partitions {
            let key = q.key(p);
            let mut from = store.offset_for_time(key, begin);
            let mut taken = 0;
            'partition: while taken < max {
                let Ok(b) = store.read(key, from, 256) else {
                    break;
                };
                if b.messages.is_empty() {
                    break;
                }
                from = b.next_offset;
                for m in b.messages {
                    if m.record.store_ts > end || taken >= max {
                        break 'partition;
                    }
                    taken += 1;
                    let r = m.record;
                    found.insert((r.store_ts, r.commitlog_offset), r);
                }
            }
        }
    }
    found.into_values().take(max).collect()
}

async fn summary(q: &Arc<QueueHandle>) -> CoreResult<QueueSummary> {
    let stats = q.ask(|reply| QueueCmd::Stats { reply }).await?;
    Ok(QueueSummary {
        def: q.def.clone(),
        exclusive: q.exclusive_owner.is_some(),
        stats,
        counters: q.counters.snapshot(),
        expires_ms: q.in_force().args.expires_ms,
        policy: q.in_force().policy.clone(),
    })
}

impl Broker {
    /// Virtual host names, in creation order.
    pub fn vhosts(&self) -> Vec<String> {
        lock(&self.inner.meta).vhosts.clone()
    }

    /// Deletes a vhost with everything in it: its connections are asked to close, its queues
    /// (and their messages) are deleted, its permissions removed.
    ///
    /// # Errors
    /// `NotFound`; metadata I/O.
    pub async fn delete_vhost(&self, name: &str) -> CoreResult<()> {
        let vh = self.inner.vhost_or_err(name)?;
        wlock(&self.inner.vhosts).remove(name);
        self.inner.save_meta(|m| {
            m.vhosts.retain(|v| v != name);
            m.permissions.retain(|p| p.vhost != name);
            m.policies.retain(|p| p.vhost != name);
            m.exchanges.retain(|x| x.vhost != name);
            m.bindings.retain(|b| b.vhost != name);
        })?;
        self.inner
            .connections
            .close_where("vhost deleted", |c| c.vhost == name);
        let queues: Vec<Arc<QueueHandle>> = rlock(&vh).queues.values().cloned().collect();
        for q in queues {
            let _ = q
                .ask(|reply| QueueCmd::Delete {
                    if_unused: false,
                    if_empty: false,
                    reply,
                })
                .await;
            self.inner.forget_queue(&q);
        }
        // Durable queues of the vhost not yet removed by forget_queue (none expected).
        self.inner
            .save_meta(|m| m.queues.retain(|q| q.vhost != name))
    }

    /// Every user.
    pub fn users(&self) -> Vec<User> {
        lock(&self.inner.meta).users.clone()
    }

    /// One user.
    pub fn user(&self, name: &str) -> Option<User> {
        lock(&self.inner.meta)
            .users
            .iter()
            .find(|u| u.name == name)
            .cloned()
    }

    /// Adds or replaces a user with an already hashed password (RabbitMQ's format), as a
    /// definitions import does.
    ///
    /// # Errors
    /// Metadata I/O.
    pub fn put_user_hashed(&self, user: User) -> CoreResult<()> {
        self.inner.save_meta(|m| {
            m.users.retain(|u| u.name != user.name);
            m.users.push(user);
        })
    }

    /// Deletes a user and their permissions; their connections are asked to close.
    ///
    /// # Errors
    /// `NotFound`; metadata I/O.
    pub fn delete_user(&self, name: &str) -> CoreResult<()> {
        if self.user(name).is_none() {
            return Err(CoreError::not_found("user", name));
        }
        self.inner.save_meta(|m| {
            m.users.retain(|u| u.name != name);
            m.permissions.retain(|p| p.user != name);
        })?;
        self.inner
            .connections
            .close_where("user deleted", |c| c.user == name);
        Ok(())
    }

    /// Checks a user's password (and the loopback-only restriction) and returns the user.
    ///
    /// # Errors
    /// `AccessRefused`.
    pub fn check_credentials(
        &self,
        user: &str,
        password: &str,
        peer: Option<SocketAddr>,
        protocol: &'static str,
    ) -> CoreResult<User> {
        self.authenticate(user, password, peer, protocol)?;
        self.user(user)
            .ok_or_else(|| CoreError::AccessRefused(format!("user '{user}' was deleted")))
    }

    /// Every permission.
    pub fn permissions(&self) -> Vec<Permission> {
        lock(&self.inner.meta).permissions.clone()
    }

    /// Removes a user's permissions on a vhost.
    ///
    /// # Errors
    /// `NotFound` if the user has none there; metadata I/O.
    pub fn delete_permissions(&self, user: &str, vhost: &str) -> CoreResult<()> {
        let had = self
            .permissions()
            .iter()
            .any(|p| p.user == user && p.vhost == vhost);
        if !had {
            return Err(CoreError::not_found(
                "permission",
                format!("{user}@{vhost}"),
            ));
        }
        self.inner.save_meta(|m| {
            m.permissions
                .retain(|p| !(p.user == user && p.vhost == vhost));
        })
    }

    /// The exchanges of a vhost (the standard ones included), by name.
    ///
    /// # Errors
    /// `NotFound` for an unknown vhost.
    pub fn exchanges(&self, vhost: &str) -> CoreResult<Vec<ExchangeDef>> {
        let vh = self.inner.vhost_or_err(vhost)?;
        let mut out: Vec<ExchangeDef> = rlock(&vh)
            .exchanges
            .values()
            .map(|x| x.def.clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The bindings of a vhost, by source exchange.
    ///
    /// # Errors
    /// `NotFound` for an unknown vhost.
    pub fn bindings(&self, vhost: &str) -> CoreResult<Vec<BindingDef>> {
        let vh = self.inner.vhost_or_err(vhost)?;
        let mut out: Vec<BindingDef> = rlock(&vh)
            .exchanges
            .values()
            .flat_map(|x| x.bindings.iter().cloned())
            .collect();
        out.sort_by(|a, b| {
            (&a.source, &a.destination, &a.routing_key).cmp(&(
                &b.source,
                &b.destination,
                &b.routing_key,
            ))
        });
        Ok(out)
    }

    /// The queues of one vhost (or of all), by vhost and name, with their live counts. A queue
    /// deleted meanwhile is left out.
    pub async fn queues(&self, vhost: Option<&str>) -> Vec<QueueSummary> {
        let vhosts: Vec<super::VHostRef> = match vhost {
            Some(v) => self.inner.vhost(v).into_iter().collect(),
            None => rlock(&self.inner.vhosts).values().cloned().collect(),
        };
        let mut handles: Vec<Arc<QueueHandle>> = vhosts
            .iter()
            .flat_map(|v| rlock(v).queues.values().cloned().collect::<Vec<_>>())
            .collect();
        handles.sort_by(|a, b| (&a.def.vhost, &a.name).cmp(&(&b.def.vhost, &b.name)));
        let mut out = Vec::with_capacity(handles.len());
        for q in &handles {
            if let Ok(s) = summary(q).await {
                out.push(s);
            }
        }
        out
    }

    /// One queue with its live counts.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn queue_summary(&self, vhost: &str, name: &str) -> CoreResult<QueueSummary> {
        let q = self.inner.queue(vhost, name)?;
        summary(&q).await
    }

    /// Every queue's message counters, as `(vhost, queue, counters)`: cheap (no queue is asked).
    pub fn queue_counters(&self) -> Vec<(String, String, CounterSnapshot)> {
        let vhosts: Vec<super::VHostRef> = rlock(&self.inner.vhosts).values().cloned().collect();
        vhosts
            .iter()
            .flat_map(|v| {
                rlock(v)
                    .queues
                    .values()
                    .map(|q| (q.def.vhost.clone(), q.name.clone(), q.counters.snapshot()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// A queue's consumer groups with their offsets and lag, by name.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn groups(&self, vhost: &str, queue: &str) -> CoreResult<Vec<GroupInfo>> {
        let q = self.inner.queue(vhost, queue)?;
        q.ask(|reply| QueueCmd::Groups { reply }).await
    }

    /// The queue `session` may reconfigure (configure permission, not another connection's
    /// exclusive queue).
    fn queue_to_configure(&self, session: &Session, queue: &str) -> CoreResult<Arc<QueueHandle>> {
        session.check(Access::Configure, queue)?;
        let q = self.inner.queue(&session.info().vhost, queue)?;
        if q.exclusive_owner.is_some() {
            return Err(CoreError::ResourceLocked(format!(
                "queue '{queue}' is exclusive to a connection"
            )));
        }
        Ok(q)
    }

    /// Moves the offsets of a consumer group with no consumers and nothing in flight (replay
    /// from `to`, or skip to it), in every partition.
    ///
    /// # Errors
    /// `AccessRefused` (configure on the queue), `NotFound` (queue or group),
    /// `PreconditionFailed` (the group has consumers or unacknowledged deliveries),
    /// `ResourceLocked`.
    pub async fn reset_group(
        &self,
        session: &Session,
        queue: &str,
        group: &str,
        to: StartFrom,
    ) -> CoreResult<()> {
        let q = self.queue_to_configure(session, queue)?;
        let group = group.to_string();
        q.ask(|reply| QueueCmd::ResetGroup { group, to, reply })
            .await?
    }

    /// Deletes a named consumer group with no consumers and nothing in flight.
    ///
    /// # Errors
    /// As [`Broker::reset_group`]; `AccessRefused` for the default group.
    pub async fn delete_group(
        &self,
        session: &Session,
        queue: &str,
        group: &str,
    ) -> CoreResult<()> {
        let q = self.queue_to_configure(session, queue)?;
        let group = group.to_string();
        q.ask(|reply| QueueCmd::DeleteGroup { group, reply })
            .await?
    }

    /// A vhost's message counters.
    pub fn vhost_counters(&self, vhost: &str) -> Option<CounterSnapshot> {
        let vh = self.inner.vhost(vhost)?;
        let c = rlock(&vh).counters.snapshot();
        Some(c)
    }

    /// Every open client connection, oldest first.
    pub fn connections(&self) -> Vec<ConnectionInfo> {
        self.inner.connections.list()
    }

    /// Messages published and delivered by client connections since the broker started, as
    /// `(protocol, published, delivered)`.
    pub fn protocol_counters(&self) -> Vec<(&'static str, u64, u64)> {
        self.inner.connections.by_protocol()
    }

    /// Asks a connection to close (its gateway sends the protocol's close with `reason`);
    /// false if there is no such connection.
    pub fn close_connection(&self, id: u64, reason: &str) -> bool {
        self.inner.connections.close(id, reason)
    }

    /// Whether the memory alarm is on (publishing blocked).
    pub fn memory_alarm(&self) -> bool {
        self.inner.alarms.memory_on()
    }

    /// Messages of `session`'s vhost found in the store's index by id or key (newest first),
    /// or by store time (oldest first), at most `max`: those stored for at least one queue the
    /// session may read, with every position (queue, partition, offset) it has there. A message
    /// stays findable after it was consumed, until retention removes its segment.
    ///
    /// # Errors
    /// `NotFound` if the vhost was deleted.
    pub fn lookup(
        &self,
        session: &Session,
        by: &Lookup,
        max: usize,
    ) -> CoreResult<Vec<FoundMessage>> {
        let vh = self.inner.vhost_or_err(&session.info().vhost)?;
        let names: HashMap<u32, String> = rlock(&vh)
            .queues
            .values()
            .map(|q| (q.def.id, q.name.clone()))
            .collect();
        // Records of other vhosts share the index: ask for more than `max`.
        let want = max.saturating_mul(4).max(16);
        let store = &self.inner.store;
        let records = match by {
            Lookup::Id(id) => store.lookup_id(id.as_bytes(), want),
            Lookup::Key {
                key,
                begin_ms,
                end_ms,
            } => store.lookup_key(key.as_bytes(), *begin_ms, *end_ms, want),
            Lookup::Time {
                queue,
                begin_ms,
                end_ms,
            } => {
                let queues: Vec<Arc<QueueHandle>> = rlock(&vh)
                    .queues
                    .values()
                    .filter(|q| queue.as_ref().is_none_or(|n| *n == q.name))
                    .filter(|q| session.check(Access::Read, &q.name).is_ok())
                    .cloned()
                    .collect();
                if let Some(n) = queue.as_ref().filter(|_| queues.is_empty()) {
                    return Err(CoreError::not_found("queue", n));
                }
                in_time_range(store, &queues, *begin_ms, *end_ms, max)
            }
        };
        let mut out = Vec::new();
        for r in records {
            let queues: Vec<(String, u16, u64)> = r
                .targets()
                .filter_map(|t| {
                    let name = names.get(&t.key.queue)?;
                    session.check(Access::Read, name).ok()?;
                    let partition = u16::try_from(t.key.partition).ok()?;
                    Some((name.clone(), partition, t.queue_offset))
                })
                .collect();
            if queues.is_empty() {
                continue;
            }
            let Some(meta) = StoredMeta::decode(&r.properties) else {
                continue;
            };
            out.push(FoundMessage {
                queues,
                commitlog_offset: r.commitlog_offset,
                store_ts: r.store_ts,
                born_ts: r.born_ts,
                exchange: meta.exchange,
                routing_key: meta.routing_key,
                message: Message {
                    properties: meta.properties,
                    body: r.body.clone(),
                },
            });
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::{CoreConfig, Message, QueueDecl, SessionEvent};

    async fn broker(dir: &std::path::Path) -> Broker {
        let mut c = CoreConfig::new(dir);
        c.store = junction_store::StoreConfig::tiny(dir.join("store"));
        c.store.segment_size = 1 << 20;
        Broker::open(c).await.unwrap()
    }

    #[tokio::test]
    async fn connections_are_listed_counted_and_closed_from_outside() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let root = b
            .connect("guest", "guest", "/", None, "test", "c1")
            .unwrap();
        let channel = root.open_sibling();
        let api = b
            .connect_unlisted("guest", "guest", "/", None, "http", "")
            .unwrap();
        let list = b.connections();
        assert_eq!(list.len(), 1, "the unlisted session is not a connection");
        assert_eq!(list[0].client.client_id, "c1");
        assert_eq!(list[0].sessions, 2);
        drop(channel);
        assert_eq!(b.connections()[0].sessions, 1);

        let signal = root.close_signal();
        assert!(b.close_connection(root.id(), "maintenance"));
        let reason = tokio::time::timeout(Duration::from_secs(5), signal.requested())
            .await
            .unwrap();
        assert_eq!(reason, "maintenance");
        let never = api.close_signal();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), never.requested())
                .await
                .is_err()
        );
        root.close().await;
        assert!(b.connections().is_empty());

        // Deleting a user closes their connections.
        b.put_user("u", "p", Vec::new()).unwrap();
        b.set_permissions(Permission {
            user: "u".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .unwrap();
        let s = b.connect("u", "p", "/", None, "test", "").unwrap();
        b.delete_user("u").unwrap();
        assert_eq!(s.close_signal().requested().await, "user deleted");
        assert!(b.delete_user("u").is_err());
        drop(s);
        drop(api);
        b.shutdown().await;
    }

    #[tokio::test]
    async fn counters_lookup_and_vhost_delete() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path()).await;
        let mut s = b.connect("guest", "guest", "/", None, "test", "").unwrap();
        s.declare_queue(QueueDecl {
            name: "q".into(),
            durable: true,
            ..QueueDecl::default()
        })
        .await
        .unwrap();
        for i in 0..2 {
            let mut m = Message::new(format!("m{i}").into_bytes());
            m.properties.message_id = Some(format!("id-{i}"));
            s.publish("", "q", &m).unwrap();
        }
        s.publish("", "nowhere", &Message::new(b"x".to_vec()))
            .unwrap();
        let d = s.get("q", false).await.unwrap().unwrap();
        s.settle(d.id, crate::core::Settle::Ack).unwrap();
        let q = b.queue_summary("/", "q").await.unwrap();
        assert_eq!(
            (q.counters.published, q.counters.delivered, q.counters.acked),
            (2, 1, 1)
        );
        assert_eq!(q.stats.ready, 1);
        let v = b.vhost_counters("/").unwrap();
        assert_eq!((v.published, v.unroutable, v.acked), (3, 1, 1));
        assert_eq!(b.connections()[0].messages_published, 3);

        let found = b.lookup(&s, &Lookup::Id("id-1".into()), 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].queues, vec![("q".to_string(), 0, 1)]);
        assert_eq!(&found[0].message.body[..], b"m1");

        // A vhost goes with its queues and permissions.
        b.add_vhost("v").unwrap();
        b.set_permissions(Permission {
            user: "guest".into(),
            vhost: "v".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .unwrap();
        let mut sv = b.connect("guest", "guest", "v", None, "test", "").unwrap();
        sv.declare_queue(QueueDecl {
            name: "inside".into(),
            durable: true,
            ..QueueDecl::default()
        })
        .await
        .unwrap();
        let signal = sv.close_signal();
        b.delete_vhost("v").await.unwrap();
        assert_eq!(signal.requested().await, "vhost deleted");
        assert!(!b.vhosts().contains(&"v".to_string()));
        assert!(b.queues(None).await.iter().all(|q| q.def.vhost == "/"));
        assert!(b.permissions().iter().all(|p| p.vhost == "/"));
        assert!(b.delete_vhost("v").await.is_err());
        // The first session is untouched: its publish confirms arrive.
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(5), s.next_event()).await,
            Ok(Some(SessionEvent::Confirmed { .. }))
        ));
        drop(sv);
        s.close().await;
        b.shutdown().await;
    }
}
