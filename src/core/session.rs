//! A client session: what a gateway holds for one connection (or one AMQP channel).
//!
//! Every protocol drives the core through this type: declare, bind, publish, consume, settle,
//! and [`Session::next_event`] for what the broker pushes (deliveries, publish confirms,
//! partition assignments, cancellations). Publisher confirms arrive in publish order, only once
//! the message is stored under the flush policy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc;

use super::auth::{Access, Grants};
use super::error::{CoreError, CoreResult};
use super::message::{Message, Value};
use super::meta::ExchangeKind;
use super::queue::{ConsumeSpec, ConsumerId, QueueCmd, QueueHandle, Settle};
use super::retained::RetainedMessage;
use super::BrokerInner;

/// Broadcast consumption: member `m` of group `g` reads in the group `g@m` (`m` is the
/// client id).
pub const BROADCAST_SEPARATOR: char = '@';

/// A consumer's tag, unique within its session.
pub type ConsumerTag = Arc<str>;

/// Who is connected.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Authenticated user.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// Peer address (None for in-process clients).
    pub peer: Option<SocketAddr>,
    /// Protocol name, for logs and the admin API.
    pub protocol: &'static str,
    /// Client-chosen id (MQTT client id, native client id...).
    pub client_id: String,
}

/// A message handed to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Unique id; settle with it.
    pub id: u64,
    /// The consumer it is for.
    pub consumer: ConsumerTag,
    /// Queue name.
    pub queue: String,
    /// Partition.
    pub partition: u16,
    /// Offset in the partition.
    pub offset: u64,
    /// Possibly delivered before (requeued, consumer died, or broker restarted).
    pub redelivered: bool,
    /// How many times it has been delivered, this one included.
    pub delivery_count: u32,
    /// When the broker stored it, ms since the epoch.
    pub store_ts: i64,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key it was published with.
    pub routing_key: String,
    /// The message.
    pub message: Message,
    pub(crate) queue_ref: Weak<QueueHandle>,
    pub(crate) consumer_id: ConsumerId,
    /// Settled by the broker when handed out (the consumer asked for no acks).
    pub(crate) no_ack: bool,
}

/// What the broker pushes to a session.
#[derive(Debug, Clone)]
pub enum SessionEvent {
    /// A message for one of this session's consumers.
    Delivery(Box<Delivery>),
    /// Every publish with a sequence number up to and including `up_to` is stored.
    Confirmed {
        /// Highest confirmed publish sequence number.
        up_to: u64,
    },
    /// Storing failed for publishes up to `up_to` (the store is poisoned).
    ConfirmFailed {
        /// Highest failed publish sequence number.
        up_to: u64,
    },
    /// The partitions a consumer reads changed (exclusive-partition groups).
    Assignment {
        /// The consumer.
        consumer: ConsumerTag,
        /// Its partitions now.
        partitions: Vec<u16>,
    },
    /// A consumer was cancelled by the broker (its queue was deleted).
    Cancelled {
        /// The consumer.
        consumer: ConsumerTag,
        /// Why.
        reason: String,
    },
}

/// Declaring an exchange.
#[derive(Debug, Clone)]
pub struct ExchangeDecl {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: ExchangeKind,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted with its last binding.
    pub auto_delete: bool,
    /// Not publishable by clients.
    pub internal: bool,
    /// Only check that it exists.
    pub passive: bool,
    /// Arguments.
    pub args: Vec<(String, Value)>,
}

/// Declaring a queue.
#[derive(Debug, Clone, Default)]
pub struct QueueDecl {
    /// Name ("" = server-named).
    pub name: String,
    /// Partitions (0 or 1 = one).
    pub partitions: u16,
    /// Survives a restart.
    pub durable: bool,
    /// Owned by this session, deleted when it closes.
    pub exclusive: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Only check that it exists.
    pub passive: bool,
    /// `x-` arguments.
    pub args: Vec<(String, Value)>,
}

/// A declared queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueInfo {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: u16,
    /// Ready messages.
    pub messages: u64,
    /// Consumers.
    pub consumers: u32,
}

/// A binding to declare or remove.
#[derive(Debug, Clone, Default)]
pub struct BindingDecl {
    /// Source exchange.
    pub exchange: String,
    /// Destination queue or exchange.
    pub destination: String,
    /// Whether the destination is an exchange.
    pub destination_is_exchange: bool,
    /// Binding key.
    pub routing_key: String,
    /// Arguments.
    pub args: Vec<(String, Value)>,
}

/// Where a published message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// Queue.
    pub queue: String,
    /// Partition.
    pub partition: u16,
    /// Offset in the partition.
    pub offset: u64,
}

/// The result of a publish: its sequence number (confirmed later by
/// [`SessionEvent::Confirmed`]) and where it went.
#[derive(Debug, Clone)]
pub struct Published {
    /// Publish sequence number of this session, from 1.
    pub seq: u64,
    /// Queues it was stored for (empty: unroutable, or scheduled for later).
    pub routed: Vec<Routed>,
    /// A delayed message: stored, and routed at this time (ms since the epoch).
    pub scheduled_at: Option<i64>,
    /// An idempotent producer's sequence that was stored before: nothing was stored now, and
    /// `routed` says where the original went.
    pub duplicate: bool,
}

impl Published {
    /// No queue took the message (and it is not waiting to be routed later).
    pub fn unroutable(&self) -> bool {
        self.routed.is_empty() && self.scheduled_at.is_none()
    }
}

/// How a message is published, beyond its properties.
#[derive(Debug, Clone, Default)]
pub struct PublishOptions {
    /// Route and deliver it at this time (ms since the epoch) instead of now. When unset, the
    /// headers `x-delay` / `AMQ_SCHEDULED_DELAY` (ms from now) are read instead; a time not in
    /// the future means now.
    pub deliver_at_ms: Option<i64>,
    /// An idempotent producer's id and this message's sequence number: a sequence already
    /// stored for this producer (in this vhost) is not stored again.
    pub producer: Option<(String, u64)>,
}

/// A message read by offset.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Offset in its partition.
    pub offset: u64,
    /// When it was stored, ms since the epoch.
    pub store_ts: i64,
    /// Exchange it was published to.
    pub exchange: String,
    /// Routing key.
    pub routing_key: String,
    /// The message.
    pub message: Message,
}

/// The result of [`Session::read`].
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Messages in offset order.
    pub messages: Vec<StoredMessage>,
    /// Offset to read next.
    pub next_offset: u64,
    /// Oldest offset still stored.
    pub min_offset: u64,
    /// Next offset to be written.
    pub end_offset: u64,
}

/// Settles bound for one queue: (consumer, partition, offset).
type SettleBatch = (Weak<QueueHandle>, Vec<(ConsumerId, u16, u64)>);

struct ConsumerEntry {
    queue: Arc<QueueHandle>,
    id: ConsumerId,
    /// The same consumer on its group's retry queue (groups with a retry policy).
    retry: Option<(Arc<QueueHandle>, ConsumerId)>,
}

impl ConsumerEntry {
    /// Every (queue, consumer) this entry stands for.
    fn subscriptions(&self) -> impl Iterator<Item = (&Arc<QueueHandle>, ConsumerId)> {
        std::iter::once((&self.queue, self.id)).chain(self.retry.iter().map(|(q, id)| (q, *id)))
    }
}

/// A session's event channel, both ends.
type Events = (
    mpsc::UnboundedSender<SessionEvent>,
    mpsc::UnboundedReceiver<SessionEvent>,
);

/// One client session. Owned by one gateway task; not `Clone`.
pub struct Session {
    pub(crate) id: u64,
    /// Owner of the exclusive queues this session declares: its own id, or the id of the
    /// connection session it was opened from (AMQP channels share their connection's).
    owner: u64,
    /// Whether closing this session deletes the owner's exclusive queues.
    drops_exclusive: bool,
    broker: Arc<BrokerInner>,
    info: ClientInfo,
    grants: Grants,
    vhost: super::VHostRef,
    /// The channel deliveries and confirms reach this session by, made on first use: tokio's
    /// channel allocates its first block of slots (~2 KiB) when made, which an idle connection
    /// that never subscribes or asks for a confirm should not pay.
    events: Option<Events>,
    consumers: HashMap<ConsumerTag, ConsumerEntry>,
    unacked: HashMap<u64, (Weak<QueueHandle>, ConsumerId, u16, u64)>,
    /// Consumers that may still hold deliveries without being in `consumers` (basic.get, and
    /// cancelled ones): unsubscribed at close, which requeues what they still hold.
    holders: Vec<(Weak<QueueHandle>, ConsumerId)>,
    publish_seq: u64,
    /// The last exchange this session was allowed to publish to (permissions are fixed for a
    /// session's life, so the regular expression need not run for every message).
    write_ok: Option<String>,
    confirm_tx: Option<mpsc::UnboundedSender<(u64, u64)>>,
    next_tag: u64,
    closed: bool,
    /// The connection entry this session counts in (None: not a listed connection).
    pub(crate) conn: Option<super::registry::ConnLink>,
    /// Its vhost's message counters.
    vhost_counters: Arc<super::metrics::Counters>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("info", &self.info)
            .finish()
    }
}

impl Session {
    /// Waits until no resource alarm blocks publishing (at once if none does). Cancel-safe,
    /// and borrows nothing: a gateway holding a publish `select!`s on it beside the session's
    /// events.
    pub fn publishing_resumed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let broker = Arc::clone(&self.broker);
        async move { broker.publishing_resumed().await }
    }

    pub(crate) fn new(
        broker: Arc<BrokerInner>,
        id: u64,
        info: ClientInfo,
        grants: Grants,
        vhost: super::VHostRef,
    ) -> Session {
        let vhost_counters = Arc::clone(&super::rlock(&vhost).counters);
        Session {
            id,
            owner: id,
            drops_exclusive: true,
            broker,
            info,
            grants,
            vhost,
            events: None,
            consumers: HashMap::new(),
            unacked: HashMap::new(),
            holders: Vec::new(),
            publish_seq: 0,
            write_ok: None,
            confirm_tx: None,
            next_tag: 1,
            closed: false,
            conn: None,
            vhost_counters,
        }
    }

    /// A new session for the same authenticated client (an AMQP channel): same user, vhost and
    /// permissions, its own consumers, unacked deliveries and publish sequence. Exclusive queues
    /// it declares belong to `self` (the connection) and outlive the new session; they are
    /// deleted when `self` closes.
    pub fn open_sibling(&self) -> Session {
        let id = self
            .broker
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut s = Session::new(
            Arc::clone(&self.broker),
            id,
            self.info.clone(),
            self.grants.clone(),
            Arc::clone(&self.vhost),
        );
        s.owner = self.owner;
        s.drops_exclusive = false;
        s.conn = self.conn.as_ref().map(|c| c.sibling());
        s
    }

    /// As [`Session::open_sibling`], for an AMQP channel: refused with `ResourceLimit` when
    /// the user's channels over all its connections reach its `max_channels` limit.
    ///
    /// # Errors
    /// `ResourceLimit`.
    pub fn try_open_sibling(&self) -> CoreResult<Session> {
        super::limits::check_channel_limit(&self.broker, &self.info.user)?;
        Ok(self.open_sibling())
    }

    /// Who this session is.
    pub fn info(&self) -> &ClientInfo {
        &self.info
    }

    /// Resolves when the session's connection is closed from outside (the admin API, a deleted
    /// user or vhost), with the reason: the gateway then sends its protocol's close.
    pub fn close_signal(&self) -> super::CloseSignal {
        self.conn
            .as_ref()
            .map_or_else(super::CloseSignal::never, |c| c.signal())
    }

    /// This session's id (unique in the broker's lifetime).
    pub fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn check(&self, access: Access, name: &str) -> CoreResult<()> {
        if self.grants.allows(access, name) {
            Ok(())
        } else {
            let what = match access {
                Access::Configure => "configure",
                Access::Write => "write",
                Access::Read => "read",
            };
            Err(CoreError::AccessRefused(format!(
                "{what} access to '{name}' in vhost '{}' refused for user '{}'",
                self.info.vhost, self.info.user
            )))
        }
    }

    /// Checks the topic permissions (publish: `Write` on the routing key; bind: `Read` on the
    /// binding key), in RabbitMQ's words.
    pub(crate) fn check_topic(&self, access: Access, exchange: &str, key: &str) -> CoreResult<()> {
        if self.grants.allows_topic(access, exchange, key) {
            return Ok(());
        }
        let what = if access == Access::Write {
            "write"
        } else {
            "read"
        };
        Err(CoreError::AccessRefused(format!(
            "{what} access to topic '{key}' in exchange '{exchange}' in vhost '{}' refused for user '{}'",
            self.info.vhost, self.info.user
        )))
    }

    /// Declares (or checks) an exchange.
    ///
    /// # Errors
    /// `AccessRefused`, `NotFound` (passive), `PreconditionFailed` (exists with other
    /// properties), `Invalid` (reserved `amq.` name).
    pub fn declare_exchange(&mut self, d: ExchangeDecl) -> CoreResult<()> {
        if !d.passive {
            self.check(Access::Configure, &d.name)?;
        }
        self.broker.declare_exchange(&self.info.vhost, d)
    }

    /// Deletes an exchange (a missing one is not an error).
    ///
    /// # Errors
    /// `AccessRefused`, `PreconditionFailed` (if-unused and bound).
    pub fn delete_exchange(&mut self, name: &str, if_unused: bool) -> CoreResult<()> {
        self.check(Access::Configure, name)?;
        // Deleting what does not exist succeeds, as in RabbitMQ (clients clean up with it).
        match self
            .broker
            .delete_exchange(&self.info.vhost, name, if_unused)
        {
            Err(CoreError::NotFound {
                kind: "exchange", ..
            }) => Ok(()),
            r => r,
        }
    }

    /// Declares (or checks) a queue.
    ///
    /// # Errors
    /// `AccessRefused`, `NotFound` (passive), `PreconditionFailed`, `ResourceLocked` (another
    /// session's exclusive queue), `Invalid`.
    pub async fn declare_queue(&mut self, d: QueueDecl) -> CoreResult<QueueInfo> {
        let name = if d.name.is_empty() && !d.passive {
            format!("amq.gen-{:016x}", rand::random::<u64>())
        } else {
            d.name.clone()
        };
        if !d.passive {
            self.check(Access::Configure, &name)?;
        }
        let q = self
            .broker
            .declare_queue(&self.info.vhost, QueueDecl { name, ..d }, self.owner)?;
        let stats = q.ask(|reply| QueueCmd::Stats { reply }).await?;
        Ok(QueueInfo {
            name: q.name.clone(),
            partitions: q.def.partitions,
            messages: stats.ready,
            consumers: stats.consumers,
        })
    }

    /// Declares (or checks) a queue without asking it for its counts: it is routable when this
    /// returns. For protocols that do not report counts (AMQP `nowait`, MQTT sessions).
    ///
    /// # Errors
    /// As [`Session::declare_queue`]; a server-named queue needs [`Session::declare_queue`].
    pub fn declare_queue_nowait(&mut self, d: QueueDecl) -> CoreResult<()> {
        if d.name.is_empty() {
            return Err(CoreError::Invalid(
                "a server-named queue must be declared with a reply".into(),
            ));
        }
        if !d.passive {
            self.check(Access::Configure, &d.name)?;
        }
        self.broker
            .declare_queue(&self.info.vhost, d, self.owner)
            .map(|_| ())
    }

    /// Deletes a queue; returns how many ready messages it had (0 for a queue that does not exist).
    ///
    /// # Errors
    /// `AccessRefused`, `PreconditionFailed` (if-unused / if-empty), `ResourceLocked`.
    pub async fn delete_queue(
        &mut self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
    ) -> CoreResult<u64> {
        self.check(Access::Configure, name)?;
        // Deleting a queue that does not exist succeeds with 0 messages, as in RabbitMQ.
        let q = match self.queue(name) {
            Err(CoreError::NotFound { .. }) => return Ok(0),
            r => r?,
        };
        let n = q
            .ask(|reply| QueueCmd::Delete {
                if_unused,
                if_empty,
                reply,
            })
            .await??;
        self.broker.forget_queue(&q);
        Ok(n)
    }

    /// Removes every ready message of a queue; returns how many.
    ///
    /// # Errors
    /// `AccessRefused`, `NotFound`, `ResourceLocked`.
    pub async fn purge_queue(&mut self, name: &str) -> CoreResult<u64> {
        self.check(Access::Read, name)?;
        let q = self.queue(name)?;
        q.ask(|reply| QueueCmd::Purge { reply }).await
    }

    /// Changes how long a queue may stay unused before it is deleted (`x-expires`; `None`:
    /// never), counted from when it was last used; kept across restarts for durable queues.
    /// (MQTT 5 clients change their session expiry interval on DISCONNECT.)
    ///
    /// # Errors
    /// `AccessRefused` (configure), `NotFound`, `ResourceLocked`.
    pub fn set_queue_expiry(&mut self, name: &str, expires_ms: Option<u64>) -> CoreResult<()> {
        self.check(Access::Configure, name)?;
        let q = self.queue(name)?;
        self.broker.set_queue_expiry(&q, expires_ms)
    }

    /// Ready/unacked/consumer counts of a queue.
    ///
    /// # Errors
    /// `NotFound`, `ResourceLocked`.
    pub async fn queue_info(&mut self, name: &str) -> CoreResult<QueueInfo> {
        let q = self.queue(name)?;
        let s = q.ask(|reply| QueueCmd::Stats { reply }).await?;
        Ok(QueueInfo {
            name: q.name.clone(),
            partitions: q.def.partitions,
            messages: s.ready,
            consumers: s.consumers,
        })
    }

    fn queue(&self, name: &str) -> CoreResult<Arc<QueueHandle>> {
        let q = self.broker.queue(&self.info.vhost, name)?;
        if q.exclusive_owner.is_some_and(|o| o != self.owner) {
            return Err(CoreError::ResourceLocked(format!(
                "queue '{name}' is exclusive to another connection"
            )));
        }
        Ok(q)
    }

    /// Binds a queue (or exchange) to an exchange.
    ///
    /// # Errors
    /// `AccessRefused` (write on the destination, read on the source), `NotFound`.
    pub fn bind(&mut self, b: BindingDecl) -> CoreResult<()> {
        self.check(Access::Write, &b.destination)?;
        self.check(Access::Read, &b.exchange)?;
        self.check_topic(Access::Read, &b.exchange, &b.routing_key)?;
        if !b.destination_is_exchange {
            self.queue(&b.destination)?;
        }
        self.broker.bind(&self.info.vhost, b, true)
    }

    /// The bindings whose destination is queue `name`, with their arguments (a gateway restores
    /// a persistent subscription's options from them).
    ///
    /// # Errors
    /// `NotFound`, `ResourceLocked`.
    pub fn queue_bindings(&self, name: &str) -> CoreResult<Vec<BindingDecl>> {
        self.queue(name)?;
        Ok(self.broker.queue_bindings(&self.info.vhost, name))
    }

    /// The retained messages of `exchange` whose routing keys match the AMQP topic `pattern`
    /// (as a topic binding would), in routing-key order, with the retain flag set.
    ///
    /// # Errors
    /// `AccessRefused` (read on the exchange).
    pub fn retained(&self, exchange: &str, pattern: &str) -> CoreResult<Vec<RetainedMessage>> {
        self.check(Access::Read, exchange)?;
        Ok(self
            .broker
            .retained
            .matching(&self.info.vhost, exchange, pattern, super::now_ms()))
    }

    /// Every retained message of the vhost as `(exchange, message)`, of the exchanges the
    /// session may read from; by exchange and routing key.
    pub fn retained_all(&self) -> Vec<(String, RetainedMessage)> {
        self.broker
            .retained
            .list(&self.info.vhost, super::now_ms())
            .into_iter()
            .filter(|(x, _)| self.check(Access::Read, x).is_ok())
            .collect()
    }

    /// Removes the retained message of `routing_key` on `exchange` (as publishing an empty
    /// retained message there would); whether there was one.
    ///
    /// # Errors
    /// `AccessRefused` (write on the exchange).
    pub fn clear_retained(&mut self, exchange: &str, routing_key: &str) -> CoreResult<bool> {
        self.check(Access::Write, exchange)?;
        Ok(self
            .broker
            .retained
            .remove(&self.info.vhost, exchange, routing_key))
    }

    /// Removes a binding.
    ///
    /// # Errors
    /// As [`Session::bind`].
    pub fn unbind(&mut self, b: BindingDecl) -> CoreResult<()> {
        self.check(Access::Write, &b.destination)?;
        self.check(Access::Read, &b.exchange)?;
        self.broker.bind(&self.info.vhost, b, false)
    }

    /// Publishes a message. Returns once it is routed and appended (admission); the confirm
    /// arrives later as [`SessionEvent::Confirmed`], in publish order.
    ///
    /// # Errors
    /// `AccessRefused`, `NotFound` (exchange), `Invalid` (internal exchange), `ResourceLimit`
    /// (a queue full with reject-publish), `Blocked` (disk low).
    pub fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        msg: &Message,
    ) -> CoreResult<Published> {
        self.publish_with(exchange, routing_key, msg, &PublishOptions::default())
    }

    /// [`Session::publish`] with options: a delivery time (delayed message).
    ///
    /// # Errors
    /// As [`Session::publish`].
    pub fn publish_with(
        &mut self,
        exchange: &str,
        routing_key: &str,
        msg: &Message,
        opts: &PublishOptions,
    ) -> CoreResult<Published> {
        if self.write_ok.as_deref() != Some(exchange) {
            self.check(Access::Write, exchange)?;
            self.write_ok = Some(exchange.to_string());
        }
        if self.grants.has_topic_rules() {
            self.check_topic(Access::Write, exchange, routing_key)?;
        }
        if let Some(uid) = &msg.properties.user_id {
            if uid != &self.info.user {
                return Err(CoreError::PreconditionFailed(format!(
                    "user_id '{uid}' does not match the authenticated user '{}'",
                    self.info.user
                )));
            }
        }
        let now = super::now_ms();
        let due = opts
            .deliver_at_ms
            .or_else(|| {
                super::schedule::delay_requested(&msg.properties.headers)
                    .map(|d| now.saturating_add(d))
            })
            .filter(|t| *t > now);
        if let Some(due) = due {
            self.broker.check_publishable(&self.vhost, exchange)?;
            let end =
                self.broker
                    .schedule_message(&self.info.vhost, exchange, routing_key, msg, due)?;
            return Ok(self.published(Vec::new(), end, Some(due)));
        }
        let (routed, end) = match &opts.producer {
            Some((producer, seq)) => {
                let state = self.broker.producers.get(&self.info.vhost, producer);
                let mut st = super::lock(&state);
                match st.check(producer, *seq)? {
                    super::dedup::Seen::Duplicate(routed) => {
                        drop(st);
                        // The original may still be on its way to the disk: confirm after it.
                        let end = self.broker.store.stats().log_end;
                        let mut p = self.published(routed, end, None);
                        p.duplicate = true;
                        return Ok(p);
                    }
                    super::dedup::Seen::New => {
                        let ext = super::message::MetaExt {
                            vhost: Some(self.info.vhost.clone()),
                            producer: Some((producer.clone(), *seq)),
                            ..super::message::MetaExt::default()
                        };
                        let (routed, end) = self.broker.publish_checked_ext(
                            &self.vhost,
                            exchange,
                            routing_key,
                            msg,
                            &[super::sysq::PRODUCERS],
                            Some(ext),
                        )?;
                        st.stored(*seq, routed.clone());
                        (routed, end)
                    }
                }
            }
            None => self
                .broker
                .publish_checked(&self.vhost, exchange, routing_key, msg)?,
        };
        if msg.properties.retain {
            self.broker.retained.set(
                &self.info.vhost,
                exchange,
                routing_key,
                msg,
                super::now_ms(),
            );
        }
        Ok(self.published(routed, end, None))
    }

    /// Publishes a transactional half message of producer group `group`: stored, delivered
    /// only if [`Session::end_transaction`] commits it. Returns the transaction id and the
    /// publish sequence number whose [`SessionEvent::Confirmed`] says it is stored.
    ///
    /// # Errors
    /// As [`Session::publish`].
    pub fn publish_half(
        &mut self,
        exchange: &str,
        routing_key: &str,
        msg: &Message,
        group: &str,
    ) -> CoreResult<(u64, u64)> {
        self.check(Access::Write, exchange)?;
        if let Some(uid) = &msg.properties.user_id {
            if uid != &self.info.user {
                return Err(CoreError::PreconditionFailed(format!(
                    "user_id '{uid}' does not match the authenticated user '{}'",
                    self.info.user
                )));
            }
        }
        self.broker.check_publishable(&self.vhost, exchange)?;
        let (id, end) =
            self.broker
                .prepare_transaction(&self.info.vhost, exchange, routing_key, msg, group)?;
        let p = self.published(Vec::new(), end, None);
        Ok((id, p.seq))
    }

    /// Ends transaction `id` (of this vhost): a commit delivers its message (`routed` says
    /// where), a rollback drops it, `Unknown` leaves it to the check-back. The result's
    /// sequence number is confirmed once the outcome is stored.
    ///
    /// # Errors
    /// `NotFound` for an unknown transaction; store errors.
    pub fn end_transaction(&mut self, id: u64, outcome: super::TxOutcome) -> CoreResult<Published> {
        let (routed, end) = self.broker.end_transaction(&self.info.vhost, id, outcome)?;
        Ok(self.published(routed, end, None))
    }

    /// This session answers the check-backs of producer group `group`: they are sent to
    /// `checks` (until its receiver is dropped), round robin among the group's sessions.
    pub fn register_transaction_group(
        &mut self,
        group: &str,
        checks: mpsc::UnboundedSender<super::TxCheck>,
    ) {
        self.broker
            .transactions
            .register(&self.info.vhost, group, self.id, checks);
    }

    /// Counts a stored publish and arranges its confirm once `end` is stored.
    fn published(&mut self, routed: Vec<Routed>, end: u64, scheduled_at: Option<i64>) -> Published {
        self.vhost_counters
            .publish(!routed.is_empty() || scheduled_at.is_some());
        if let Some(c) = &self.conn {
            c.entry
                .published
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.publish_seq += 1;
        let seq = self.publish_seq;
        self.confirm_after(seq, end);
        Published {
            seq,
            routed,
            scheduled_at,
            duplicate: false,
        }
    }

    fn confirm_after(&mut self, seq: u64, end: u64) {
        if self.confirm_tx.is_none() {
            let events = self.events_tx();
            self.confirm_tx = Some(Self::spawn_confirmer(&self.broker, events));
        }
        if let Some(tx) = &self.confirm_tx {
            let _ = tx.send((seq, end));
        }
    }

    fn spawn_confirmer(
        broker: &Arc<BrokerInner>,
        events: mpsc::UnboundedSender<SessionEvent>,
    ) -> mpsc::UnboundedSender<(u64, u64)> {
        let (tx, mut rx) = mpsc::unbounded_channel::<(u64, u64)>();
        let store = Arc::clone(&broker.store);
        tokio::spawn(async move {
            while let Some(mut last) = rx.recv().await {
                while let Ok(next) = rx.try_recv() {
                    last = next; // the log end only grows: the last covers the rest
                }
                let confirmed = store.confirmed(last.1, tokio::time::sleep).await;
                let ev = match confirmed {
                    Ok(()) => SessionEvent::Confirmed { up_to: last.0 },
                    Err(_) => SessionEvent::ConfirmFailed { up_to: last.0 },
                };
                if events.send(ev).is_err() {
                    return;
                }
            }
        });
        tx
    }

    /// A sender to this session's event channel, made on first use.
    fn events_tx(&mut self) -> mpsc::UnboundedSender<SessionEvent> {
        self.events
            .get_or_insert_with(mpsc::unbounded_channel)
            .0
            .clone()
    }

    /// Starts a consumer; returns its tag and the partitions it reads.
    ///
    /// # Errors
    /// `AccessRefused` (read on the queue), `NotFound`, `ResourceLocked`, `PreconditionFailed`
    /// (tag in use, or a group mode mismatch).
    pub async fn consume(&mut self, mut spec: ConsumeSpec) -> CoreResult<(ConsumerTag, Vec<u16>)> {
        self.check(Access::Read, &spec.queue)?;
        let q = self.queue(&spec.queue)?;
        if spec.tag.is_empty() {
            spec.tag = format!("ctag-{}.{}", self.id, self.next_tag);
            self.next_tag += 1;
        }
        if spec.broadcast {
            // Every member reads in a group of its own, named by its client id so that its
            // offsets outlive its connections.
            let member = if self.info.client_id.is_empty() {
                format!("session-{}", self.id)
            } else {
                self.info.client_id.clone()
            };
            spec.group = format!("{}{BROADCAST_SEPARATOR}{member}", spec.group);
            spec.broadcast = false;
            spec.exclusive_partitions = false;
        }
        let tag: ConsumerTag = ConsumerTag::from(spec.tag.as_str());
        if self.consumers.contains_key(&tag) {
            return Err(CoreError::PreconditionFailed(format!(
                "consumer tag '{tag}' is in use"
            )));
        }
        let retry_q = match &mut spec.retry {
            Some(policy) => {
                let (retry, dlq) = super::RetryPolicy::queue_names(&spec.queue, &spec.group);
                // Both exist before the first failure: a retry is routed to its queue when due.
                let mut queues = Vec::new();
                for name in [&retry, &dlq] {
                    let decl = QueueDecl {
                        name: name.clone(),
                        durable: true,
                        ..QueueDecl::default()
                    };
                    queues.push(
                        self.broker
                            .declare_queue(&self.info.vhost, decl, self.owner)?,
                    );
                }
                policy.retry_queue = retry;
                policy.dlq = dlq;
                queues.into_iter().next()
            }
            None => None,
        };
        let retry_spec = retry_q.as_ref().map(|rq| ConsumeSpec {
            queue: rq.name.clone(),
            group: String::new(),
            start: super::StartFrom::Committed,
            exclusive_partitions: false,
            exclusive: false,
            filter: None,
            ordered: false,
            broadcast: false,
            ..spec.clone()
        });
        let (id, parts) = self.subscribe_to(&q, spec).await?;
        let retry = match (retry_q, retry_spec) {
            (Some(rq), Some(rs)) => match self.subscribe_to(&rq, rs).await {
                Ok((rid, _)) => Some((rq, rid)),
                Err(e) => {
                    let _ = q.tx.send(QueueCmd::Unsubscribe { id });
                    return Err(e);
                }
            },
            _ => None,
        };
        self.consumers.insert(
            tag.clone(),
            ConsumerEntry {
                queue: q,
                id,
                retry,
            },
        );
        Ok((tag, parts))
    }

    async fn subscribe_to(
        &mut self,
        q: &Arc<QueueHandle>,
        spec: ConsumeSpec,
    ) -> CoreResult<(ConsumerId, Vec<u16>)> {
        let id = self
            .broker
            .next_consumer
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sink = self.events_tx();
        let parts = q
            .ask(|reply| QueueCmd::Subscribe {
                id,
                spec,
                sink,
                reply,
            })
            .await??;
        Ok((id, parts))
    }

    /// Stops a consumer and gives its unacked deliveries back to the queue at once (native
    /// `Unsubscribe`: the client drops what it had not processed).
    ///
    /// # Errors
    /// `NotFound` for an unknown tag.
    pub fn close_consumer(&mut self, tag: &str) -> CoreResult<()> {
        let c = self
            .consumers
            .remove(tag)
            .ok_or_else(|| CoreError::not_found("consumer", tag))?;
        for (q, id) in c.subscriptions() {
            self.unacked.retain(|_, (_, cid, _, _)| *cid != id);
            let _ = q.tx.send(QueueCmd::Unsubscribe { id });
        }
        Ok(())
    }

    /// Stops deliveries to a consumer (AMQP `basic.cancel`): the deliveries it holds stay unacked
    /// on this session and can still be acked, nacked or rejected; what is unsettled when the
    /// session closes goes back to the queue.
    ///
    /// # Errors
    /// `NotFound` for an unknown tag.
    pub fn cancel(&mut self, tag: &str) -> CoreResult<()> {
        let c = self
            .consumers
            .remove(tag)
            .ok_or_else(|| CoreError::not_found("consumer", tag))?;
        // Its unacked deliveries stay with the session, settleable, until the session closes.
        for (q, id) in c.subscriptions() {
            self.holders.push((Arc::downgrade(q), id));
            let _ = q.tx.send(QueueCmd::Cancel { id });
        }
        Ok(())
    }

    /// Changes a consumer's prefetch window (0 = unlimited).
    ///
    /// # Errors
    /// `NotFound` for an unknown tag.
    pub fn set_prefetch(&mut self, tag: &str, prefetch: u32) -> CoreResult<()> {
        let c = self
            .consumers
            .get(tag)
            .ok_or_else(|| CoreError::not_found("consumer", tag))?;
        for (q, id) in c.subscriptions() {
            let _ = q.tx.send(QueueCmd::SetPrefetch {
                consumer: id,
                prefetch,
            });
        }
        Ok(())
    }

    /// Settles a delivery.
    ///
    /// # Errors
    /// `NotFound` for an unknown or already settled delivery id.
    pub fn settle(&mut self, delivery: u64, how: Settle) -> CoreResult<()> {
        self.settle_many(&[delivery], how)
    }

    /// Settles several deliveries; the ones of one queue reach it as one command. Stops at the
    /// first unknown id (the ones before it are settled).
    ///
    /// # Errors
    /// `NotFound` for an unknown or already settled delivery id.
    pub fn settle_many(&mut self, deliveries: &[u64], how: Settle) -> CoreResult<()> {
        let mut batch: Option<SettleBatch> = None;
        let flush = |b: Option<SettleBatch>| {
            if let Some((q, items)) = b {
                if let Some(q) = q.upgrade() {
                    let _ = q.tx.send(QueueCmd::Settle { items, how });
                }
            }
        };
        let mut result = Ok(());
        for d in deliveries {
            let Some((q, consumer, partition, offset)) = self.unacked.remove(d) else {
                result = Err(CoreError::not_found("delivery", d.to_string()));
                break;
            };
            match &mut batch {
                Some((bq, items)) if Weak::ptr_eq(bq, &q) => {
                    items.push((consumer, partition, offset))
                }
                _ => flush(batch.replace((q, vec![(consumer, partition, offset)]))),
            }
        }
        flush(batch);
        result
    }

    /// Ids of this session's unsettled deliveries, for protocols that ack cumulatively.
    pub fn unsettled(&self) -> impl Iterator<Item = u64> + '_ {
        self.unacked.keys().copied()
    }

    /// Moves up to `max` messages of dead-letter queue `dlq` back to the retry queue of the
    /// group that gave up on them (their `x-retry-queue` header), with their retry count
    /// reset, so that only that group gets them again. Returns how many moved. A message
    /// without the header (published there by hand) stops the re-drive and stays.
    ///
    /// # Errors
    /// `AccessRefused` (read on the dead-letter queue), `NotFound`, `Blocked`.
    pub async fn redrive(&mut self, dlq: &str, max: u64) -> CoreResult<u64> {
        self.check(Access::Read, dlq)?;
        let q = self.queue(dlq)?;
        let mut moved = 0;
        while moved < max {
            let Some(d) = q.ask(|reply| QueueCmd::Get { reply }).await? else {
                break;
            };
            let settle = |how| QueueCmd::Settle {
                items: vec![(d.consumer_id, d.partition, d.offset)],
                how,
            };
            let target = d
                .message
                .properties
                .header(super::RETRY_QUEUE_HEADER)
                .and_then(Value::as_str_lossy);
            let Some(target) = target else {
                let _ = q.tx.send(settle(Settle::Requeue));
                break;
            };
            let mut msg = d.message.clone();
            msg.properties.amqp_header = None;
            msg.properties.headers.retain(|(k, _)| {
                !matches!(
                    k.as_str(),
                    super::RETRY_COUNT_HEADER | super::RETRY_QUEUE_HEADER | "x-dlq-reason"
                )
            });
            match self
                .broker
                .publish_internal(&self.info.vhost, "", &target, &msg)
            {
                Ok((routed, _)) if !routed.is_empty() => {
                    let _ = q.tx.send(settle(Settle::Ack));
                    moved += 1;
                }
                Ok(_) => {
                    let _ = q.tx.send(settle(Settle::Requeue));
                    return Err(CoreError::not_found("queue", target));
                }
                Err(e) => {
                    let _ = q.tx.send(settle(Settle::Requeue));
                    return Err(e);
                }
            }
        }
        Ok(moved)
    }

    /// Takes one message from a queue's default group (AMQP basic.get), or `None` if empty.
    ///
    /// # Errors
    /// `AccessRefused`, `NotFound`, `ResourceLocked`.
    pub async fn get(&mut self, queue: &str, no_ack: bool) -> CoreResult<Option<Delivery>> {
        self.check(Access::Read, queue)?;
        let q = self.queue(queue)?;
        let d = q.ask(|reply| QueueCmd::Get { reply }).await?;
        if let Some(d) = &d {
            self.holders.push((Arc::downgrade(&q), d.consumer_id));
            self.unacked.insert(
                d.id,
                (Arc::downgrade(&q), d.consumer_id, d.partition, d.offset),
            );
            if no_ack {
                self.settle(d.id, Settle::Ack)?;
            }
        }
        Ok(d)
    }

    /// The next event if one is ready now (for batching writes).
    pub fn try_next_event(&mut self) -> Option<SessionEvent> {
        let ev = self.events.as_mut()?.1.try_recv().ok()?;
        Some(self.track(ev))
    }

    /// Reads stored messages of a queue partition by offset, outside any consumer group
    /// (stream-style pull): `(messages, next offset, oldest stored, end)`.
    ///
    /// # Errors
    /// `AccessRefused` (read), `NotFound`, `ResourceLocked`, `Invalid` (no such partition),
    /// store errors.
    pub fn read(
        &self,
        queue: &str,
        partition: u16,
        offset: u64,
        max: usize,
    ) -> CoreResult<ReadResult> {
        self.check(Access::Read, queue)?;
        let q = self.queue(queue)?;
        if partition >= q.def.partitions {
            return Err(CoreError::Invalid(format!(
                "queue '{queue}' has no partition {partition}"
            )));
        }
        let b = self.broker.store.read(q.key(partition), offset, max)?;
        let messages = b
            .messages
            .into_iter()
            .filter_map(|m| {
                let meta = super::message::StoredMeta::decode(&m.record.properties)?;
                Some(StoredMessage {
                    offset: m.queue_offset,
                    store_ts: m.record.store_ts,
                    exchange: meta.exchange,
                    routing_key: meta.routing_key,
                    message: Message {
                        properties: meta.properties,
                        body: m.record.body,
                    },
                })
            })
            .collect();
        Ok(ReadResult {
            messages,
            next_offset: b.next_offset,
            min_offset: b.min_offset,
            end_offset: b.end_offset,
        })
    }

    /// The first offset of a partition stored at or after `time_ms`.
    ///
    /// # Errors
    /// As [`Session::read`].
    pub fn offset_for_time(&self, queue: &str, partition: u16, time_ms: i64) -> CoreResult<u64> {
        self.check(Access::Read, queue)?;
        let q = self.queue(queue)?;
        Ok(self.broker.store.offset_for_time(q.key(partition), time_ms))
    }

    /// The next event for this session. Cancel-safe: use it in `select!`.
    pub async fn next_event(&mut self) -> Option<SessionEvent> {
        let ev = match &mut self.events {
            Some((_, rx)) => rx.recv().await?,
            // Nothing can send to this session until it has a channel, and making one takes
            // `&mut self`, which this future holds: a `select!` loop makes a new one after.
            None => std::future::pending().await,
        };
        Some(self.track(ev))
    }

    fn track(&mut self, ev: SessionEvent) -> SessionEvent {
        if let SessionEvent::Delivery(d) = &ev {
            if let Some(c) = &self.conn {
                c.entry
                    .delivered
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if !d.no_ack {
                self.unacked.insert(
                    d.id,
                    (d.queue_ref.clone(), d.consumer_id, d.partition, d.offset),
                );
            }
        }
        if let SessionEvent::Cancelled { consumer, .. } = &ev {
            self.consumers.remove(consumer);
        }
        ev
    }

    /// Closes the session: consumers stop, unacked deliveries are redelivered (with the
    /// redelivered flag), exclusive queues are deleted.
    pub async fn close(mut self) {
        self.shutdown_consumers().await;
    }

    async fn shutdown_consumers(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        for (_, c) in self.consumers.drain() {
            for (q, id) in c.subscriptions() {
                let _ = q.tx.send(QueueCmd::Unsubscribe { id });
            }
        }
        for (q, id) in self.holders.drain(..) {
            if let Some(q) = q.upgrade() {
                let _ = q.tx.send(QueueCmd::Unsubscribe { id });
            }
        }
        if self.drops_exclusive {
            self.broker.drop_exclusive(self.owner).await;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.closed {
            return;
        }
        // Best effort without awaiting: stop consumers so their messages are redelivered.
        for (_, c) in self.consumers.drain() {
            for (q, id) in c.subscriptions() {
                let _ = q.tx.send(QueueCmd::Unsubscribe { id });
            }
        }
        for (q, id) in self.holders.drain(..) {
            if let Some(q) = q.upgrade() {
                let _ = q.tx.send(QueueCmd::Unsubscribe { id });
            }
        }
        if !self.drops_exclusive {
            return;
        }
        let broker = Arc::clone(&self.broker);
        let id = self.owner;
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move { broker.drop_exclusive(id).await });
        }
    }
}
