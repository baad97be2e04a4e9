//! The topic/queue core. Knows no protocol and no socket.
//!
//! - [`Broker`]: vhosts, exchanges, queues, bindings, users; opens the store and the queues.
//! - [`Session`]: what a gateway drives for one client (declare, publish, consume, settle,
//!   events).
//! - `queue`: one actor task per queue owns its consumer groups and delivery state.
//! - `vhost`: the routing table; `topic`: AMQP topic patterns; `auth`: users and permissions;
//!   `meta`: durable metadata; `message`: messages and canonical properties.
//! - `registry`: the open connections (listing, closing from outside); `metrics`: message
//!   counters per queue and vhost; `admin`: what the HTTP API reads and manages.

mod admin;
mod alarm;
pub mod auth;
mod dedup;
mod error;
pub mod filter;
mod limits;
pub mod message;
pub mod meta;
pub mod metrics;
pub mod policy;
mod queue;
mod registry;
mod replica;
mod retained;
pub mod schedule;
mod session;
mod sysq;
pub mod topic;
pub mod transaction;
mod vhost;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use junction_store::{AppendRequest, Store, StoreConfig, StoreError};
use tokio_util::task::TaskTracker;

pub use admin::{FoundMessage, Lookup, QueueSummary};
pub use alarm::{DiskStatus, MemoryStatus, MemoryWatermark};
pub use auth::{Access, Credential, Permission, TopicPermission, User};
pub use error::{CoreError, CoreResult};
pub use message::{Message, Properties, Value};
pub use meta::{ExchangeKind, Overflow, QueueArgs, UserLimits, VhostLimits};
pub use policy::{ApplyTo, Policy};
pub use queue::{
    ConsumeSpec, GroupInfo, PartitionOffsets, QueueStats, RetryPolicy, Settle, StartFrom,
    DLQ_PREFIX, EPHEMERAL_GROUP_PREFIX, RETRY_COUNT_HEADER, RETRY_PREFIX, RETRY_QUEUE_HEADER,
};
pub use registry::{CloseSignal, ConnectionInfo};
pub use replica::ReplicatedMeta;
pub use retained::RetainedMessage;
pub use session::{
    BindingDecl, ClientInfo, ConsumerTag, Delivery, ExchangeDecl, PublishOptions, Published,
    QueueDecl, QueueInfo, ReadResult, Routed, Session, SessionEvent, StoredMessage,
};
pub use transaction::{TxCheck, TxConfig, TxOutcome};

use meta::{BindingDef, ExchangeDef, MetaFile, Metadata, QueueDef};
use queue::{QueueCmd, QueueHandle};
use vhost::{Exchange, VHostState};

/// Core settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Data directory (the store lives in `<data_dir>/store`).
    pub data_dir: PathBuf,
    /// Store settings (its `dir` is set from `data_dir`).
    pub store: StoreConfig,
    /// User created on first start, with full permissions on `/`, loopback only (RabbitMQ's
    /// guest/guest).
    pub default_user: (String, String),
    /// Publishing is blocked while the broker's anonymous memory (heap, not mapped files) is
    /// above this (RabbitMQ's `vm_memory_high_watermark`); zero disables the alarm.
    pub memory_high_watermark: MemoryWatermark,
    /// Keep consume queues of queue ids `meta.json` does not know at start (a broker of a
    /// cluster: a slave receives records before the metadata naming their queue).
    pub keep_unknown_queues: bool,
    /// Transactional messages: check-backs and the default outcome.
    pub transactions: transaction::TxConfig,
}

impl CoreConfig {
    /// Defaults for `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> CoreConfig {
        let data_dir = data_dir.into();
        CoreConfig {
            store: StoreConfig::new(data_dir.join("store")),
            data_dir,
            default_user: ("guest".into(), "guest".into()),
            memory_high_watermark: MemoryWatermark::Relative(0.4),
            keep_unknown_queues: false,
            transactions: transaction::TxConfig::default(),
        }
    }
}

pub(crate) type VHostRef = Arc<RwLock<VHostState>>;

/// Shared state of the broker.
pub struct BrokerInner {
    pub(crate) store: Arc<Store>,
    vhosts: RwLock<HashMap<String, VHostRef>>,
    meta: Mutex<Metadata>,
    metafile: MetaFile,
    pub(crate) next_delivery: AtomicU64,
    pub(crate) next_consumer: AtomicU64,
    pub(crate) next_session: AtomicU64,
    offsets_dir: PathBuf,
    tasks: TaskTracker,
    me: Weak<BrokerInner>,
    /// The memory and disk alarms.
    pub(crate) alarms: alarm::Alarms,
    stop: tokio_util::sync::CancellationToken,
    /// Retained messages by vhost, exchange and routing key.
    pub(crate) retained: Arc<retained::Retained>,
    connections: Arc<registry::Connections>,
    /// Delayed messages waiting for their time.
    pub(crate) schedule: Arc<schedule::Scheduler>,
    /// A slave of a broker group: writes are refused (see `replica`).
    read_only: std::sync::atomic::AtomicBool,
    read_only_why: Mutex<String>,
    data_dir: PathBuf,
    /// Idempotent producers' recent sequences.
    pub(crate) producers: dedup::Producers,
    /// Transactions awaiting their outcome.
    pub(crate) transactions: Arc<transaction::Transactions>,
}

impl std::fmt::Debug for BrokerInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerInner").finish_non_exhaustive()
    }
}

fn rlock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn wlock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
fn lock<T>(l: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Queue ids are reserved in blocks, so `meta.json` is not rewritten for every transient queue
/// and an id is never reused, even after a crash.
const ID_BLOCK: u32 = 1024;

/// The broker: a cheap handle, clone it freely.
#[derive(Clone, Debug)]
pub struct Broker {
    inner: Arc<BrokerInner>,
}

impl Broker {
    /// Opens the store and the durable metadata, and starts every durable queue.
    ///
    /// # Errors
    /// Store errors (locked directory, corruption recovery cannot repair), metadata I/O.
    pub async fn open(cfg: CoreConfig) -> CoreResult<Broker> {
        std::fs::create_dir_all(&cfg.data_dir)?;
        let offsets_dir = cfg.data_dir.join("queues");
        std::fs::create_dir_all(&offsets_dir)?;
        let mut store_cfg = cfg.store.clone();
        store_cfg.dir = cfg.data_dir.join("store");
        let store = tokio::task::spawn_blocking(move || Store::open(store_cfg))
            .await
            .map_err(|e| CoreError::Io(std::io::Error::other(e)))??;
        let metafile = MetaFile::new(&cfg.data_dir);
        let mut meta = metafile.load()?.unwrap_or_else(|| Metadata {
            version: 1,
            next_queue_id: 1,
            vhosts: vec!["/".into()],
            users: vec![User {
                name: cfg.default_user.0.clone(),
                password_hash: auth::hash_password(&cfg.default_user.1),
                tags: vec!["administrator".into()],
                loopback_only: true,
            }],
            permissions: vec![Permission {
                user: cfg.default_user.0.clone(),
                vhost: "/".into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            }],
            ..Metadata::default()
        });
        // Skip the rest of the last reserved block: ids handed out before a crash stay unique.
        meta.next_queue_id = meta.next_queue_id.div_ceil(ID_BLOCK) * ID_BLOCK + 1;
        metafile.save(&meta)?;

        let schedule = Arc::new(schedule::Scheduler::open(&store, &cfg.data_dir)?);
        let transactions = Arc::new(transaction::Transactions::open(
            &store,
            &cfg.data_dir,
            cfg.transactions.clone(),
        )?);
        let inner = Arc::new_cyclic(|me| BrokerInner {
            store: Arc::new(store),
            vhosts: RwLock::new(HashMap::new()),
            meta: Mutex::new(meta.clone()),
            metafile,
            next_delivery: AtomicU64::new(1),
            next_consumer: AtomicU64::new(1),
            next_session: AtomicU64::new(1),
            offsets_dir,
            tasks: TaskTracker::new(),
            me: me.clone(),
            alarms: alarm::Alarms::new(cfg.memory_high_watermark),
            stop: tokio_util::sync::CancellationToken::new(),
            retained: Arc::new(retained::Retained::open(&cfg.data_dir)),
            connections: Arc::default(),
            schedule,
            read_only: std::sync::atomic::AtomicBool::new(false),
            read_only_why: Mutex::new(String::new()),
            data_dir: cfg.data_dir.clone(),
            producers: dedup::Producers::default(),
            transactions,
        });
        inner
            .tasks
            .spawn(transaction::run(Arc::downgrade(&inner), inner.stop.clone()));
        inner
            .tasks
            .spawn(schedule::run(Arc::downgrade(&inner), inner.stop.clone()));
        inner.tasks.spawn(retained::saver(
            Arc::clone(&inner.retained),
            inner.stop.clone(),
        ));
        for v in &meta.vhosts {
            wlock(&inner.vhosts).insert(v.clone(), Arc::new(RwLock::new(VHostState::new(v))));
        }
        for x in &meta.exchanges {
            if let Some(vh) = inner.vhost(&x.vhost) {
                wlock(&vh).exchanges.insert(
                    x.name.clone(),
                    Exchange {
                        def: x.clone(),
                        bindings: Vec::new(),
                    },
                );
            }
        }
        let mut live_ids = std::collections::HashSet::new();
        for q in &meta.queues {
            live_ids.insert(q.id);
            inner.start_queue(q.clone(), None);
        }
        for b in &meta.bindings {
            if let Some(vh) = inner.vhost(&b.vhost) {
                if let Some(x) = wlock(&vh).exchanges.get_mut(&b.source) {
                    x.bindings.push(b.clone());
                }
            }
        }
        let names: HashMap<u32, (String, String)> = meta
            .queues
            .iter()
            .map(|q| (q.id, (q.vhost.clone(), q.name.clone())))
            .collect();
        inner
            .producers
            .rebuild(&inner.store, |id| names.get(&id).cloned());
        // Consume queues of transient (or deleted) queues from an earlier run.
        for key in inner.store.queues() {
            if !live_ids.contains(&key.queue)
                && !sysq::is_system(key.queue)
                && !cfg.keep_unknown_queues
            {
                inner.store.delete_queue(key)?;
            }
        }
        inner
            .tasks
            .spawn(alarm::watch(Arc::downgrade(&inner), inner.stop.clone()));
        tracing::info!(
            queues = meta.queues.len(),
            exchanges = meta.exchanges.len(),
            "broker core opened"
        );
        Ok(Broker { inner })
    }

    /// Authenticates a client and opens its session, listed as a connection (see
    /// [`Broker::connections`]) until it closes.
    ///
    /// # Errors
    /// `AccessRefused` for an unknown user, a wrong password, a loopback-only user connecting
    /// from elsewhere, an unknown vhost or no permissions on it.
    pub fn connect(
        &self,
        user: &str,
        password: &str,
        vhost: &str,
        peer: Option<SocketAddr>,
        protocol: &'static str,
        client_id: &str,
    ) -> CoreResult<Session> {
        self.connect_with(
            user,
            Credential::Password(password),
            vhost,
            peer,
            protocol,
            client_id,
        )
    }

    /// As [`Broker::connect`], with the user proven by `credential`: a password, or a
    /// client certificate the TLS listener verified (RabbitMQ's EXTERNAL mechanism).
    ///
    /// # Errors
    /// As [`Broker::connect`].
    pub fn connect_with(
        &self,
        user: &str,
        credential: Credential<'_>,
        vhost: &str,
        peer: Option<SocketAddr>,
        protocol: &'static str,
        client_id: &str,
    ) -> CoreResult<Session> {
        let mut s = self.open_session(user, credential, vhost, peer, protocol, client_id)?;
        let (per_user, per_vhost) = self.connection_limits(user, vhost);
        let link = self
            .inner
            .connections
            .register_within(s.id, s.info().clone(), per_user, per_vhost)
            .map_err(|why| {
                tracing::info!(user, vhost, protocol, peer = ?peer, why = %why, "connection refused");
                CoreError::ResourceLimit(why)
            })?;
        s.conn = Some(link);
        Ok(s)
    }

    /// As [`Broker::connect`], for a short-lived in-process client that is not a connection
    /// (an HTTP API request acting as its user).
    ///
    /// # Errors
    /// As [`Broker::connect`].
    pub fn connect_unlisted(
        &self,
        user: &str,
        password: &str,
        vhost: &str,
        peer: Option<SocketAddr>,
        protocol: &'static str,
        client_id: &str,
    ) -> CoreResult<Session> {
        let credential = Credential::Password(password);
        self.open_session(user, credential, vhost, peer, protocol, client_id)
    }

    fn open_session(
        &self,
        user: &str,
        credential: Credential<'_>,
        vhost: &str,
        peer: Option<SocketAddr>,
        protocol: &'static str,
        client_id: &str,
    ) -> CoreResult<Session> {
        let refused = |why: &str| {
            tracing::info!(user, vhost, protocol, peer = ?peer, why, "authentication refused");
            CoreError::AccessRefused(format!("login refused for user '{user}': {why}"))
        };
        let grants = {
            let meta = lock(&self.inner.meta);
            Self::check_user(&meta, user, credential, peer).map_err(&refused)?;
            if !meta.vhosts.iter().any(|v| v == vhost) {
                return Err(refused("no such vhost"));
            }
            let p = meta
                .permissions
                .iter()
                .find(|p| p.user == user && p.vhost == vhost)
                .ok_or_else(|| refused("no permissions on this vhost"))?;
            auth::Grants::new(p).with_topics(&meta.topic_permissions, user, vhost, client_id)
        };
        let id = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        let info = ClientInfo {
            user: user.into(),
            vhost: vhost.into(),
            peer,
            protocol,
            client_id: client_id.into(),
        };
        let vh = self.inner.vhost_or_err(vhost)?;
        Ok(Session::new(Arc::clone(&self.inner), id, info, grants, vh))
    }

    /// Checks a user's credentials (and the loopback-only restriction) without opening a
    /// session: for protocols that authenticate before they name the vhost (AMQP's start-ok).
    ///
    /// # Errors
    /// `AccessRefused` as [`Broker::connect`].
    pub fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: Option<SocketAddr>,
        protocol: &'static str,
    ) -> CoreResult<()> {
        self.authenticate_with(user, Credential::Password(password), peer, protocol)
    }

    /// As [`Broker::authenticate`], with the user proven by `credential`.
    ///
    /// # Errors
    /// As [`Broker::authenticate`].
    pub fn authenticate_with(
        &self,
        user: &str,
        credential: Credential<'_>,
        peer: Option<SocketAddr>,
        protocol: &'static str,
    ) -> CoreResult<()> {
        let meta = lock(&self.inner.meta);
        Self::check_user(&meta, user, credential, peer).map_err(|why| {
            tracing::info!(user, protocol, peer = ?peer, why, "authentication refused");
            CoreError::AccessRefused(format!("login refused for user '{user}': {why}"))
        })
    }

    fn check_user(
        meta: &Metadata,
        user: &str,
        credential: Credential<'_>,
        peer: Option<SocketAddr>,
    ) -> Result<(), &'static str> {
        let u = meta
            .users
            .iter()
            .find(|u| u.name == user)
            .ok_or("unknown user or bad password")?;
        match credential {
            Credential::Password(p) if !auth::verify_password(&u.password_hash, p) => {
                return Err("unknown user or bad password")
            }
            Credential::Password(_) | Credential::Certificate => {}
        }
        if u.loopback_only && !auth::is_loopback(peer.map(|p| p.ip())) {
            return Err("user may only connect from localhost");
        }
        Ok(())
    }

    /// Adds or replaces a user (password stored as a RabbitMQ-format hash).
    ///
    /// # Errors
    /// Metadata I/O.
    pub fn put_user(&self, name: &str, password: &str, tags: Vec<String>) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        meta.users.retain(|u| u.name != name);
        meta.users.push(User {
            name: name.into(),
            password_hash: auth::hash_password(password),
            tags,
            loopback_only: false,
        });
        self.inner.metafile.save(&meta)
    }

    /// Sets a user's permissions on a vhost.
    ///
    /// # Errors
    /// Metadata I/O.
    pub fn set_permissions(&self, p: Permission) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        meta.permissions
            .retain(|x| !(x.user == p.user && x.vhost == p.vhost));
        meta.permissions.push(p);
        self.inner.metafile.save(&meta)
    }

    /// Adds a virtual host.
    ///
    /// # Errors
    /// Metadata I/O.
    pub fn add_vhost(&self, name: &str) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        if !meta.vhosts.iter().any(|v| v == name) {
            meta.vhosts.push(name.into());
            self.inner.metafile.save(&meta)?;
            wlock(&self.inner.vhosts)
                .insert(name.into(), Arc::new(RwLock::new(VHostState::new(name))));
        }
        Ok(())
    }

    /// Whether a virtual host exists (for protocols whose vhost header is only a hint, such as
    /// STOMP's `host`).
    pub fn has_vhost(&self, name: &str) -> bool {
        lock(&self.inner.meta).vhosts.iter().any(|v| v == name)
    }

    /// Why publishing is blocked right now (memory or disk alarm), if it is.
    pub fn publishing_blocked(&self) -> Option<&'static str> {
        self.inner.blocked_reason()
    }

    /// The message store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Stops every queue (saving consumer offsets) and closes the store (final flush and
    /// checkpoint).
    pub async fn shutdown(&self) {
        let queues: Vec<Arc<QueueHandle>> = rlock(&self.inner.vhosts)
            .values()
            .flat_map(|v| rlock(v).queues.values().cloned().collect::<Vec<_>>())
            .collect();
        for q in queues {
            let _ = q.ask(|reply| QueueCmd::Stop { reply }).await;
        }
        self.inner.stop.cancel();
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
        let store = Arc::clone(&self.inner.store);
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = store.close() {
                tracing::error!(error = %e, "store close failed");
            }
        })
        .await;
    }
}

impl BrokerInner {
    fn vhost(&self, name: &str) -> Option<VHostRef> {
        rlock(&self.vhosts).get(name).cloned()
    }

    fn vhost_or_err(&self, name: &str) -> CoreResult<VHostRef> {
        self.vhost(name)
            .ok_or_else(|| CoreError::not_found("vhost", name))
    }

    fn save_meta(&self, edit: impl FnOnce(&mut Metadata)) -> CoreResult<()> {
        let mut meta = lock(&self.meta);
        edit(&mut meta);
        self.metafile.save(&meta)
    }

    fn start_queue(&self, def: QueueDef, owner: Option<u64>) -> Arc<QueueHandle> {
        let counters = self
            .vhost(&def.vhost)
            .map(|v| Arc::clone(&rlock(&v).counters))
            .unwrap_or_default();
        let policy = self.queue_policy(&def.vhost, &def.name);
        let (q, rx) = queue::new_handle(def, owner, counters, policy);
        let actor = queue::Actor::new(
            Arc::clone(&q),
            rx,
            Arc::clone(&self.store),
            self.me.clone(),
            self.offsets_dir.clone(),
        );
        self.tasks.spawn(actor.run());
        if let Some(vh) = self.vhost(&q.def.vhost) {
            wlock(&vh).queues.insert(q.name.clone(), Arc::clone(&q));
        }
        self.recheck_policy(&q);
        q
    }

    fn next_queue_id(&self) -> CoreResult<u32> {
        let mut meta = lock(&self.meta);
        let id = meta.next_queue_id;
        meta.next_queue_id += 1;
        if id.is_multiple_of(ID_BLOCK) {
            // The block is used up: persist, so a restart starts past this block.
            self.metafile.save(&meta)?;
        }
        Ok(id)
    }

    pub(crate) fn queue(&self, vhost: &str, name: &str) -> CoreResult<Arc<QueueHandle>> {
        let vh = self.vhost_or_err(vhost)?;
        let q = rlock(&vh).queues.get(name).cloned();
        q.ok_or_else(|| CoreError::not_found("queue", name))
    }

    fn declare_exchange(&self, vhost: &str, d: ExchangeDecl) -> CoreResult<()> {
        let vh = self.vhost_or_err(vhost)?;
        let mut st = wlock(&vh);
        if let Some(x) = st.exchanges.get(&d.name) {
            if !d.passive && (x.def.kind != d.kind || x.def.durable != d.durable) {
                return Err(CoreError::PreconditionFailed(format!(
                    "exchange '{}' exists with type {:?}, durable {}",
                    d.name, x.def.kind, x.def.durable
                )));
            }
            return Ok(());
        }
        if d.passive {
            return Err(CoreError::not_found("exchange", d.name));
        }
        if d.name.starts_with("amq.") {
            return Err(CoreError::AccessRefused(format!(
                "exchange name '{}' is reserved",
                d.name
            )));
        }
        let def = ExchangeDef {
            vhost: vhost.into(),
            name: d.name.clone(),
            kind: d.kind,
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
            args: d.args,
        };
        st.exchanges.insert(
            d.name,
            Exchange {
                def: def.clone(),
                bindings: Vec::new(),
            },
        );
        drop(st);
        if def.durable {
            self.save_meta(|m| m.exchanges.push(def))?;
        }
        Ok(())
    }

    fn delete_exchange(&self, vhost: &str, name: &str, if_unused: bool) -> CoreResult<()> {
        if name.is_empty() || name.starts_with("amq.") {
            return Err(CoreError::AccessRefused(format!(
                "exchange '{name}' cannot be deleted"
            )));
        }
        let vh = self.vhost_or_err(vhost)?;
        let mut st = wlock(&vh);
        let x = st
            .exchanges
            .get(name)
            .ok_or_else(|| CoreError::not_found("exchange", name))?;
        if if_unused && !x.bindings.is_empty() {
            return Err(CoreError::PreconditionFailed(format!(
                "exchange '{name}' in use"
            )));
        }
        st.exchanges.remove(name);
        for x in st.exchanges.values_mut() {
            x.bindings
                .retain(|b| !(b.dest_is_exchange && b.destination == name));
        }
        drop(st);
        self.retained.forget(vhost, Some(name));
        self.save_meta(|m| {
            m.exchanges
                .retain(|x| !(x.vhost == vhost && x.name == name));
            m.bindings.retain(|b| {
                !(b.vhost == vhost
                    && (b.source == name || (b.dest_is_exchange && b.destination == name)))
            });
        })
    }

    fn declare_queue(
        &self,
        vhost: &str,
        d: QueueDecl,
        session: u64,
    ) -> CoreResult<Arc<QueueHandle>> {
        let vh = self.vhost_or_err(vhost)?;
        if let Some(q) = rlock(&vh).queues.get(&d.name).cloned() {
            if q.exclusive_owner.is_some_and(|o| o != session) {
                return Err(CoreError::ResourceLocked(format!(
                    "queue '{}' is exclusive to another connection",
                    d.name
                )));
            }
            if !d.passive {
                let same = q.def.durable == d.durable
                    && q.def.auto_delete == d.auto_delete
                    && q.exclusive_owner.is_some() == d.exclusive
                    && QueueArgs::parse(&d.args).ok().as_ref() == Some(&q.def.args);
                if !same {
                    return Err(CoreError::PreconditionFailed(format!(
                        "queue '{}' exists with other durable/exclusive/auto-delete/arguments",
                        d.name
                    )));
                }
            }
            return Ok(q);
        }
        if d.passive {
            return Err(CoreError::not_found("queue", d.name));
        }
        if d.name.starts_with("amq.") && !d.name.starts_with("amq.gen-") {
            return Err(CoreError::AccessRefused(format!(
                "queue name '{}' is reserved",
                d.name
            )));
        }
        let args = QueueArgs::parse(&d.args).map_err(CoreError::PreconditionFailed)?;
        if d.durable && !d.exclusive {
            self.check_writable()?;
        }
        self.check_queue_limit(vhost, rlock(&vh).queues.len())?;
        let def = QueueDef {
            vhost: vhost.into(),
            name: d.name.clone(),
            id: self.next_queue_id()?,
            partitions: d.partitions.max(1),
            durable: d.durable && !d.exclusive,
            auto_delete: d.auto_delete,
            raw_args: d.args,
            args,
        };
        // Two declares may race here; the second finds the first's queue.
        {
            let st = rlock(&vh);
            if let Some(q) = st.queues.get(&d.name) {
                return Ok(Arc::clone(q));
            }
        }
        if def.durable {
            let def = def.clone();
            self.save_meta(|m| m.queues.push(def))?;
        }
        Ok(self.start_queue(def, d.exclusive.then_some(session)))
    }

    fn bind(&self, vhost: &str, b: BindingDecl, add: bool) -> CoreResult<()> {
        let vh = self.vhost_or_err(vhost)?;
        let mut st = wlock(&vh);
        let dest_durable = if b.destination_is_exchange {
            st.exchanges.get(&b.destination).map(|x| x.def.durable)
        } else {
            st.queues.get(&b.destination).map(|q| q.def.durable)
        };
        let Some(dest_durable) = dest_durable else {
            let kind = if b.destination_is_exchange {
                "exchange"
            } else {
                "queue"
            };
            return Err(CoreError::not_found(kind, b.destination));
        };
        let x = st
            .exchanges
            .get_mut(&b.exchange)
            .ok_or_else(|| CoreError::not_found("exchange", &b.exchange))?;
        if b.exchange.is_empty() {
            return Err(CoreError::AccessRefused(
                "the default exchange cannot be bound".into(),
            ));
        }
        let def = BindingDef {
            vhost: vhost.into(),
            source: b.exchange,
            destination: b.destination,
            dest_is_exchange: b.destination_is_exchange,
            routing_key: b.routing_key,
            args: b.args,
        };
        let durable = dest_durable && x.def.durable;
        let exists = x.bindings.contains(&def);
        if add && !exists {
            x.bindings.push(def.clone());
        } else if !add {
            x.bindings.retain(|y| y != &def);
        }
        drop(st);
        if durable && add != exists {
            self.save_meta(|m| {
                m.bindings.retain(|y| y != &def);
                if add {
                    m.bindings.push(def);
                }
            })?;
        }
        Ok(())
    }

    fn set_queue_expiry(&self, q: &QueueHandle, expires_ms: Option<u64>) -> CoreResult<()> {
        let ms = expires_ms.filter(|ms| *ms > 0);
        q.set_own_expires(ms);
        if !q.def.durable {
            return Ok(());
        }
        self.save_meta(|m| {
            if let Some(d) = m
                .queues
                .iter_mut()
                .find(|d| d.vhost == q.def.vhost && d.name == q.def.name)
            {
                d.args.expires_ms = ms;
                d.raw_args.retain(|(k, _)| k != "x-expires");
                if let Some(ms) = ms {
                    d.raw_args.push((
                        "x-expires".into(),
                        Value::I64(ms.min(i64::MAX as u64) as i64),
                    ));
                }
            }
        })
    }

    fn queue_bindings(&self, vhost: &str, queue: &str) -> Vec<BindingDecl> {
        let Some(vh) = self.vhost(vhost) else {
            return Vec::new();
        };
        let st = rlock(&vh);
        st.exchanges
            .values()
            .flat_map(|x| &x.bindings)
            .filter(|b| !b.dest_is_exchange && b.destination == queue)
            .map(|b| BindingDecl {
                exchange: b.source.clone(),
                destination: b.destination.clone(),
                destination_is_exchange: false,
                routing_key: b.routing_key.clone(),
                args: b.args.clone(),
            })
            .collect()
    }

    /// A client's publish on its session's vhost: internal exchanges are refused.
    fn publish_checked(
        &self,
        vh: &VHostRef,
        exchange: &str,
        rk: &str,
        msg: &Message,
    ) -> CoreResult<(Vec<Routed>, u64)> {
        self.publish_checked_ext(vh, exchange, rk, msg, &[], None)
    }

    /// [`BrokerInner::publish_checked`], with system queues the record also goes to (only if a
    /// queue of the vhost takes it) and what `ext` says about it.
    fn publish_checked_ext(
        &self,
        vh: &VHostRef,
        exchange: &str,
        rk: &str,
        msg: &Message,
        extra: &[junction_store::QueueKey],
        ext: Option<message::MetaExt>,
    ) -> CoreResult<(Vec<Routed>, u64)> {
        // A slave refuses every publish, routable or not (an unroutable one would still set a
        // retained message here, or be confirmed to a client that should go to the master).
        self.check_writable()?;
        let queues = {
            let st = rlock(vh);
            if st.exchanges.get(exchange).is_some_and(|x| x.def.internal) {
                return Err(CoreError::AccessRefused(format!(
                    "cannot publish to internal exchange '{exchange}'"
                )));
            }
            st.route(exchange, rk, &msg.properties)
                .ok_or_else(|| CoreError::not_found("exchange", exchange))?
        };
        if queues.is_empty() {
            return Ok((Vec::new(), 0));
        }
        self.store_routed_ext(queues, exchange, rk, msg, extra, ext)
    }

    /// Routes and stores a message; returns where it went and the CommitLog end to wait on for
    /// the confirm.
    pub(crate) fn publish_internal(
        &self,
        vhost: &str,
        exchange: &str,
        rk: &str,
        msg: &Message,
    ) -> CoreResult<(Vec<Routed>, u64)> {
        let vh = self.vhost_or_err(vhost)?;
        let queues = rlock(&vh)
            .route(exchange, rk, &msg.properties)
            .ok_or_else(|| CoreError::not_found("exchange", exchange))?;
        self.store_routed(queues, exchange, rk, msg)
    }

    /// Stores a routed message once for all its queues and wakes them.
    fn store_routed(
        &self,
        queues: Vec<Arc<QueueHandle>>,
        exchange: &str,
        rk: &str,
        msg: &Message,
    ) -> CoreResult<(Vec<Routed>, u64)> {
        self.store_routed_ext(queues, exchange, rk, msg, &[], None)
    }

    /// [`BrokerInner::store_routed`] with more: system queues the record also goes to
    /// (`extra`, even when no queue of the vhost takes it) and what [`message::MetaExt`] says
    /// about it.
    pub(crate) fn store_routed_ext(
        &self,
        queues: Vec<Arc<QueueHandle>>,
        exchange: &str,
        rk: &str,
        msg: &Message,
        extra: &[junction_store::QueueKey],
        ext: Option<message::MetaExt>,
    ) -> CoreResult<(Vec<Routed>, u64)> {
        self.check_writable()?;
        if self.alarms.memory_on() {
            return Err(CoreError::Blocked(alarm::MEMORY_REASON.into()));
        }
        if queues.is_empty() && extra.is_empty() {
            return Ok((Vec::new(), 0));
        }
        for q in &queues {
            let in_force = q.in_force();
            let args = &in_force.args;
            if args.overflow != Overflow::RejectPublish {
                continue;
            }
            if let Some(max) = args.max_length {
                if q.ready(&self.store) >= max {
                    return Err(CoreError::ResourceLimit(format!(
                        "queue '{}' is full (x-max-length {max})",
                        q.name
                    )));
                }
            }
            if let Some(max) = args.max_length_bytes {
                if q.ready_bytes.load(Ordering::Acquire) + msg.body.len() as u64 > max {
                    return Err(CoreError::ResourceLimit(format!(
                        "queue '{}' is full (x-max-length-bytes {max})",
                        q.name
                    )));
                }
            }
        }
        let sharding = msg.properties.sharding_key.as_deref();
        let parts: Vec<u16> = queues.iter().map(|q| q.pick_partition(sharding)).collect();
        let mut targets: Vec<junction_store::QueueKey> =
            queues.iter().zip(&parts).map(|(q, p)| q.key(*p)).collect();
        targets.extend_from_slice(extra);
        let meta = message::StoredMeta {
            exchange: exchange.into(),
            routing_key: rk.into(),
            properties: msg.properties.clone(),
            ext,
        };
        let tag_hash = message::tag_hash(message::tag_of(&msg.properties));
        let appended = self.append(&targets, &meta, tag_hash, &msg.body)?;
        let routed = queues
            .iter()
            .zip(&parts)
            .zip(&appended.queue_offsets)
            .map(|((q, p), o)| {
                q.counters.publish(true);
                q.wake.notify_one();
                Routed {
                    queue: q.name.clone(),
                    partition: *p,
                    offset: *o,
                }
            })
            .collect();
        Ok((routed, appended.end()))
    }

    /// Appends one record for `targets` (queue partitions, system queues or both): the message
    /// id and keys of `meta.properties` are indexed; `tag_hash` goes to every consume-queue
    /// entry. Store errors become what clients are told (`Blocked` for a low disk).
    pub(crate) fn append(
        &self,
        targets: &[junction_store::QueueKey],
        meta: &message::StoredMeta,
        tag_hash: u64,
        body: &[u8],
    ) -> CoreResult<junction_store::Appended> {
        self.check_writable()?;
        let props = meta.encode();
        let p = &meta.properties;
        let keys: Vec<&[u8]> = p.keys.iter().map(|k| k.as_bytes()).collect();
        self.store
            .write(&AppendRequest {
                targets,
                born_ts: p.timestamp_ms.unwrap_or_else(now_ms),
                msg_id: p.message_id.as_deref().unwrap_or_default().as_bytes(),
                keys: &keys,
                tag_hash,
                flags: u32::from(p.persistent),
                properties: &props,
                body,
            })
            .map_err(|e| match e {
                StoreError::DiskLow { .. } => CoreError::Blocked(e.to_string()),
                StoreError::RecordTooLarge { .. } | StoreError::InvalidRequest(_) => {
                    CoreError::Invalid(e.to_string())
                }
                e => CoreError::Store(e),
            })
    }

    /// Removes a queue everywhere (vhost, metadata, bindings, store); its actor has stopped or
    /// is stopping.
    pub(crate) fn forget_queue(&self, q: &QueueHandle) {
        if q.deleted.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(vh) = self.vhost(&q.def.vhost) {
            let mut st = wlock(&vh);
            if st.queues.get(&q.name).is_some_and(|x| x.def.id == q.def.id) {
                st.queues.remove(&q.name);
            }
            for x in st.exchanges.values_mut() {
                x.bindings
                    .retain(|b| b.dest_is_exchange || b.destination != q.name);
            }
        }
        if q.def.durable {
            let (vhost, name) = (q.def.vhost.clone(), q.name.clone());
            if let Err(e) = self.save_meta(|m| {
                m.queues.retain(|x| !(x.vhost == vhost && x.name == name));
                m.bindings.retain(|b| {
                    !(b.vhost == vhost && !b.dest_is_exchange && b.destination == name)
                });
            }) {
                tracing::error!(queue = %q.name, error = %e, "saving metadata after a queue delete failed");
            }
        }
        for p in 0..q.def.partitions {
            if let Err(e) = self.store.delete_queue(q.key(p)) {
                tracing::warn!(queue = %q.name, error = %e, "removing consume queue files failed");
            }
        }
        let _ = std::fs::remove_file(self.offsets_dir.join(format!("{}.json", q.def.id)));
    }

    /// Deletes the exclusive queues of a closed session.
    pub(crate) async fn drop_exclusive(&self, session: u64) {
        let owned: Vec<Arc<QueueHandle>> = rlock(&self.vhosts)
            .values()
            .flat_map(|v| {
                rlock(v)
                    .queues
                    .values()
                    .filter(|q| q.exclusive_owner == Some(session))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        for q in owned {
            let _ = q
                .ask(|reply| QueueCmd::Delete {
                    if_unused: false,
                    if_empty: false,
                    reply,
                })
                .await;
            self.forget_queue(&q);
        }
    }
}

#[cfg(test)]
mod tests;
