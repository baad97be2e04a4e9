//! [`Cluster`]: producers and consumers over every broker group of a cluster, with routes
//! learnt from name servers (RocketMQ's client model).
//!
//! - A [`ClusterProducer`] sends each message to the next master holding the topic, round
//!   robin (each master then spreads its share over its partitions round robin, so messages
//!   go round all masters' partitions); a master that fails is skipped and the route is
//!   learnt again.
//! - A [`ClusterConsumer`] joins the consumer group on every broker group holding the topic;
//!   each group's broker shares its partitions among the members it sees, so the members
//!   together cover every partition of every master. A group whose master is down is read
//!   from its slave ([`ClientOptions::read_from_slave`]).
//!
//! Each broker group is reached through one [`Client`] bound to the group's name
//! ([`ClientOptions::broker`]): every reconnect asks the name servers for the group's master,
//! so the client follows a failover by itself.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::connection::lock;
use crate::consumer::Delivery;
use crate::error::{Result, SdkError};
use crate::message::{Destination, Message, SendReceipt};
use crate::options::{ClientOptions, ConsumerOptions};
use crate::route::{NameServers, TopicRoute};
use crate::ErrorCode;

/// How long a learnt route is used before it is asked again.
const ROUTE_TTL: Duration = Duration::from_secs(10);

/// A cluster of broker groups, reached through its name servers. Cheap to clone.
///
/// ```no_run
/// use junction_sdk::{Cluster, ClientOptions, ConsumerOptions, Message};
///
/// # async fn demo() -> junction_sdk::Result<()> {
/// let cluster = Cluster::connect(
///     ClientOptions::default().name_servers(["127.0.0.1:9876", "127.0.0.1:9877"]),
/// )
/// .await?;
/// let producer = cluster.producer("orders");
/// let sent = producer.send(Message::new("order #1")).await?;
/// println!("stored on {} at offset {:?}", sent.broker_name, sent.receipt.offset());
/// let mut consumer = cluster
///     .subscribe(ConsumerOptions::new("orders").group("billing").exclusive_partitions(true))
///     .await?;
/// while let Some(d) = consumer.next().await {
///     let d = d?;
///     d.delivery.ack().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    opts: ClientOptions,
    ns: NameServers,
    clients: tokio::sync::Mutex<BTreeMap<String, Client>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("name_servers", &self.inner.opts.name_servers)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// A cluster reached through `options.name_servers`; `options` is the template of every
    /// broker connection (credentials, vhost, timeouts). Nothing is connected yet.
    ///
    /// # Errors
    /// [`SdkError::Config`] without name servers.
    pub async fn connect(options: ClientOptions) -> Result<Cluster> {
        if options.name_servers.is_empty() {
            return Err(SdkError::Config("a cluster needs name servers".into()));
        }
        let ns = NameServers::new(options.name_servers.clone(), options.connect_timeout);
        Ok(Cluster {
            inner: Arc::new(Inner {
                opts: options,
                ns,
                clients: tokio::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }

    /// Where `topic` lives now, as the name servers know it.
    ///
    /// # Errors
    /// [`SdkError::Route`].
    pub async fn route(&self, topic: &str) -> Result<TopicRoute> {
        self.inner.ns.topic(&self.inner.opts.vhost, topic).await
    }

    fn group_options(&self, group: &str) -> ClientOptions {
        self.inner.opts.clone().address("").broker(group)
    }

    /// The client of broker group `group` (connected to its master), made on first use.
    ///
    /// # Errors
    /// As [`Client::connect`], and [`SdkError::Route`].
    pub async fn client(&self, group: &str) -> Result<Client> {
        let mut clients = self.inner.clients.lock().await;
        if let Some(c) = clients.get(group).filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Client::connect(self.group_options(group)).await?;
        clients.insert(group.to_string(), c.clone());
        Ok(c)
    }

    /// A producer of `topic` (a queue held by one or more broker groups).
    pub fn producer(&self, topic: &str) -> ClusterProducer {
        ClusterProducer {
            cluster: self.clone(),
            topic: topic.to_string(),
            next: Arc::new(AtomicUsize::new(0)),
            masters: Arc::new(Mutex::new(None)),
        }
    }

    /// Joins `options.group` on every broker group holding `options.queue`, and on groups
    /// that hold it later (routes are asked again every few seconds).
    ///
    /// # Errors
    /// [`SdkError::Route`] when no group holds the queue yet.
    pub async fn subscribe(&self, options: ConsumerOptions) -> Result<ClusterConsumer> {
        let route = self.route(&options.queue).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let joined = Arc::new(Mutex::new(HashSet::new()));
        let active = Arc::new(Mutex::new(HashSet::new()));
        let mut tasks = Vec::new();
        for g in &route.groups {
            tasks.push(self.join(&g.broker_name, &options, &tx, &joined, &active));
        }
        let (cluster, tx2, joined2, opts2) = (self.clone(), tx.clone(), joined.clone(), options);
        let active2 = Arc::clone(&active);
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3));
            loop {
                tick.tick().await;
                if tx2.is_closed() {
                    return;
                }
                if let Ok(route) = cluster.route(&opts2.queue).await {
                    for g in route.groups {
                        if !lock(&joined2).contains(&g.broker_name) {
                            // Runs for as long as the consumer lives (it watches `tx2`).
                            drop(cluster.join(&g.broker_name, &opts2, &tx2, &joined2, &active2));
                        }
                    }
                }
            }
        });
        tasks.push(refresher);
        Ok(ClusterConsumer { rx, tasks, active })
    }

    fn join(
        &self,
        group: &str,
        options: &ConsumerOptions,
        tx: &mpsc::UnboundedSender<Result<ClusterDelivery>>,
        joined: &Arc<Mutex<HashSet<String>>>,
        active: &Arc<Mutex<HashSet<String>>>,
    ) -> JoinHandle<()> {
        lock(joined).insert(group.to_string());
        let opts = self.group_options(group).read_from_slave(true);
        let (group, options, tx, joined, active) = (
            group.to_string(),
            options.clone(),
            tx.clone(),
            Arc::clone(joined),
            Arc::clone(active),
        );
        tokio::spawn(async move {
            let consumer = async {
                let client = Client::connect(opts).await?;
                client.subscribe(options).await
            };
            let mut consumer = match consumer.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(group = %group, error = %e, "could not join the broker group");
                    lock(&joined).remove(&group); // tried again at the next route refresh
                    return;
                }
            };
            lock(&active).insert(group.clone());
            loop {
                let d = tokio::select! {
                    d = consumer.next() => d,
                    () = tx.closed() => return,
                };
                let Some(d) = d else { break };
                let d = d.map(|delivery| ClusterDelivery {
                    broker_name: group.clone(),
                    delivery,
                });
                if tx.send(d).is_err() {
                    return;
                }
            }
            lock(&active).remove(&group);
            lock(&joined).remove(&group);
        })
    }
}

/// A message sent by a [`ClusterProducer`]: the broker group that stored it and its receipt.
#[derive(Debug, Clone)]
pub struct ClusterReceipt {
    /// The broker group.
    pub broker_name: String,
    /// Queue, partition and offset in that group.
    pub receipt: SendReceipt,
}

/// Sends to the masters of a topic, round robin. Cheap to clone (clones share the rotation).
#[derive(Debug, Clone)]
pub struct ClusterProducer {
    cluster: Cluster,
    topic: String,
    next: Arc<AtomicUsize>,
    masters: Arc<Mutex<Option<LearntMasters>>>,
}

/// Broker groups with a master, and when the name servers said so.
type LearntMasters = (Instant, Vec<String>);

/// Whether another master may take a message this one failed to store.
fn try_another(e: &SdkError) -> bool {
    match e {
        SdkError::ConnectionLost
        | SdkError::Timeout
        | SdkError::Closed
        | SdkError::Io(_)
        | SdkError::Route(_) => true,
        SdkError::Server { code, message } => {
            *code == ErrorCode::AccessRefused && message.contains("read-only")
        }
        _ => false,
    }
}

impl ClusterProducer {
    /// The broker groups with a master holding the topic, as last learnt.
    async fn masters(&self) -> Result<Vec<String>> {
        if let Some((at, m)) = lock(&self.masters).as_ref() {
            if at.elapsed() < ROUTE_TTL && !m.is_empty() {
                return Ok(m.clone());
            }
        }
        let route = self.cluster.route(&self.topic).await?;
        let m: Vec<String> = route
            .groups
            .into_iter()
            .filter(|g| g.master.is_some())
            .map(|g| g.broker_name)
            .collect();
        if m.is_empty() {
            return Err(SdkError::Route(format!(
                "no master holds topic '{}'",
                self.topic
            )));
        }
        *lock(&self.masters) = Some((Instant::now(), m.clone()));
        Ok(m)
    }

    /// Sends `msg` to the next master and waits for its confirm; a master that cannot take
    /// it (down, read-only since a failover) is skipped for the next one.
    ///
    /// # Errors
    /// The last master's error when none took it; [`SdkError::Route`] when none is known.
    pub async fn send(&self, msg: Message) -> Result<ClusterReceipt> {
        let masters = self.masters().await?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let dest = Destination::queue(self.topic.clone());
        let mut last = None;
        for k in 0..masters.len() {
            let Some(group) = masters.get((start + k) % masters.len()) else {
                continue;
            };
            let sent = match self.cluster.client(group).await {
                Ok(c) => c.producer().send(&dest, msg.clone()).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(receipt) => {
                    return Ok(ClusterReceipt {
                        broker_name: group.clone(),
                        receipt,
                    })
                }
                Err(e) if try_another(&e) => {
                    tracing::debug!(group = %group, error = %e, "send failed; trying the next master");
                    *lock(&self.masters) = None;
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| SdkError::Route("no master".into())))
    }
}

/// A delivery from one broker group of the cluster (acknowledge it through `delivery`).
#[derive(Debug, Clone)]
pub struct ClusterDelivery {
    /// The broker group it came from.
    pub broker_name: String,
    /// The delivery.
    pub delivery: Delivery,
}

/// The deliveries of every broker group a [`Cluster::subscribe`] joined, merged.
pub struct ClusterConsumer {
    rx: mpsc::UnboundedReceiver<Result<ClusterDelivery>>,
    tasks: Vec<JoinHandle<()>>,
    active: Arc<Mutex<HashSet<String>>>,
}

impl std::fmt::Debug for ClusterConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConsumer").finish_non_exhaustive()
    }
}

impl ClusterConsumer {
    /// The broker groups it consumes from now.
    pub fn groups(&self) -> Vec<String> {
        let mut g: Vec<String> = lock(&self.active).iter().cloned().collect();
        g.sort();
        g
    }

    /// The next delivery from any broker group.
    pub async fn next(&mut self) -> Option<Result<ClusterDelivery>> {
        self.rx.recv().await
    }
}

impl Drop for ClusterConsumer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
