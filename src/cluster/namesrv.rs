//! The name server (`junction namesrv`): a stateless route registry, as RocketMQ's NameServer.
//!
//! Every broker registers with every name server and heartbeats to it; a broker silent for
//! `broker_timeout` is dropped. Name servers never talk to each other: each one learns the
//! whole cluster from the brokers' heartbeats, so any of them answers any query and losing
//! some of them loses nothing.
//!
//! It speaks HTTP/JSON (axum), so that clients of every protocol can find a broker (a Python
//! AMQP client as easily as the Rust SDK) and operators can look with `curl`:
//!
//! | method and path | body / answer |
//! |---|---|
//! | `POST /brokers` | a [`Registration`] (the heartbeat); answers `{"ok": true}` |
//! | `GET /brokers` | every live broker: `[Registration]` |
//! | `GET /routes/{topic}?vhost=/` | a [`TopicRoute`]: the broker groups holding queue `topic`, their master and slaves, partitions; 404 when none |
//! | `GET /groups/{broker_name}` | a [`GroupRoute`] of one broker group; 404 when unknown |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// A queue (topic) a broker holds, with its partition count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Virtual host.
    pub vhost: String,
    /// Queue name.
    pub name: String,
    /// Partitions (RocketMQ's queues of a topic).
    pub partitions: u16,
}

/// What a broker tells name servers in each heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Cluster name.
    pub cluster: String,
    /// Broker group.
    pub broker_name: String,
    /// Id in the group (0 = the configured master).
    pub broker_id: u64,
    /// `"master"` or `"slave"`, as of now.
    pub role: String,
    /// The controllers' epoch of the group's master term (0 without controllers).
    pub epoch: u64,
    /// Listener addresses by protocol (`native`, `amqp`, `mqtt`, `stomp`, `http`, `ha`, ...).
    pub listeners: BTreeMap<String, String>,
    /// Queues held.
    pub topics: Vec<TopicInfo>,
    /// CommitLog end.
    pub log_end: u64,
    /// A master's slaves: how far each has stored its log, and whether it is in sync.
    #[serde(default)]
    pub replicas: Vec<ReplicaInfo>,
}

/// A slave as its master reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    /// The slave's id in the group.
    pub broker_id: u64,
    /// Everything below this CommitLog offset is stored on it.
    pub acked: u64,
    /// Whether it is connected.
    pub connected: bool,
    /// Whether it counts as in sync (acknowledging and caught up).
    pub in_sync: bool,
}

/// One broker of a group, in a route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteBroker {
    /// Id in the group.
    pub broker_id: u64,
    /// Listener addresses by protocol.
    pub listeners: BTreeMap<String, String>,
    /// CommitLog end as of its last heartbeat.
    pub log_end: u64,
}

/// A broker group as routes show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRoute {
    /// Cluster name.
    pub cluster: String,
    /// Broker group.
    pub broker_name: String,
    /// The broker that reports itself master (with the highest epoch, should two).
    pub master: Option<RouteBroker>,
    /// The others.
    pub slaves: Vec<RouteBroker>,
    /// Partitions of the topic asked for in this group (0 for a group lookup).
    pub partitions: u16,
}

/// Where a topic lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRoute {
    /// The topic (queue name).
    pub topic: String,
    /// Its vhost.
    pub vhost: String,
    /// Every broker group holding it.
    pub groups: Vec<GroupRoute>,
}

/// The registry: live brokers by (group, id).
#[derive(Debug)]
pub struct Registry {
    timeout: Duration,
    brokers: Mutex<BTreeMap<(String, u64), (Registration, Instant)>>,
}

impl Registry {
    /// An empty registry dropping brokers silent for `timeout`.
    pub fn new(timeout: Duration) -> Registry {
        Registry {
            timeout,
            brokers: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, u64), (Registration, Instant)>> {
        self.brokers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a heartbeat.
    pub fn register(&self, r: Registration) {
        let key = (r.broker_name.clone(), r.broker_id);
        let mut b = self.lock();
        if !b.contains_key(&key) {
            tracing::info!(broker = %r.broker_name, id = r.broker_id, role = %r.role, "broker registered");
        }
        b.insert(key, (r, Instant::now()));
    }

    /// Drops brokers silent for longer than the timeout.
    pub fn expire(&self) {
        let timeout = self.timeout;
        self.lock().retain(|(name, id), (_, seen)| {
            let live = seen.elapsed() < timeout;
            if !live {
                tracing::warn!(broker = %name, id, "broker stopped heartbeating: removed");
            }
            live
        });
    }

    /// Every live broker.
    pub fn brokers(&self) -> Vec<Registration> {
        self.lock().values().map(|(r, _)| r.clone()).collect()
    }

    fn group(regs: &[&Registration], partitions: u16) -> Option<GroupRoute> {
        let first = regs.first()?;
        let master = regs
            .iter()
            .filter(|r| r.role == "master")
            .max_by_key(|r| r.epoch)
            .map(|r| r.broker_id);
        let entry = |r: &Registration| RouteBroker {
            broker_id: r.broker_id,
            listeners: r.listeners.clone(),
            log_end: r.log_end,
        };
        Some(GroupRoute {
            cluster: first.cluster.clone(),
            broker_name: first.broker_name.clone(),
            master: regs
                .iter()
                .find(|r| Some(r.broker_id) == master)
                .map(|r| entry(r)),
            slaves: regs
                .iter()
                .filter(|r| Some(r.broker_id) != master)
                .map(|r| entry(r))
                .collect(),
            partitions,
        })
    }

    /// The route of a topic: every group with a broker that holds it.
    pub fn route(&self, vhost: &str, topic: &str) -> TopicRoute {
        let all = self.brokers();
        let mut by_group: BTreeMap<&str, Vec<&Registration>> = BTreeMap::new();
        for r in &all {
            by_group.entry(&r.broker_name).or_default().push(r);
        }
        let groups = by_group
            .values()
            .filter_map(|regs| {
                let partitions = regs
                    .iter()
                    .flat_map(|r| &r.topics)
                    .filter(|t| t.vhost == vhost && t.name == topic)
                    .map(|t| t.partitions)
                    .max()?;
                Self::group(regs, partitions)
            })
            .collect();
        TopicRoute {
            topic: topic.into(),
            vhost: vhost.into(),
            groups,
        }
    }

    /// One broker group.
    pub fn group_route(&self, broker_name: &str) -> Option<GroupRoute> {
        let all = self.brokers();
        let regs: Vec<&Registration> = all
            .iter()
            .filter(|r| r.broker_name == broker_name)
            .collect();
        Self::group(&regs, 0)
    }
}

#[derive(Deserialize)]
struct VhostQuery {
    vhost: Option<String>,
}

async fn register(State(reg): State<Arc<Registry>>, Json(r): Json<Registration>) -> Response {
    reg.register(r);
    Json(serde_json::json!({"ok": true})).into_response()
}

async fn brokers(State(reg): State<Arc<Registry>>) -> Response {
    Json(reg.brokers()).into_response()
}

async fn route(
    State(reg): State<Arc<Registry>>,
    Path(topic): Path<String>,
    Query(q): Query<VhostQuery>,
) -> Response {
    let r = reg.route(q.vhost.as_deref().unwrap_or("/"), &topic);
    if r.groups.is_empty() {
        let body = serde_json::json!({"error": "not_found", "reason": format!("no broker holds topic '{topic}'")});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    Json(r).into_response()
}

async fn group(State(reg): State<Arc<Registry>>, Path(name): Path<String>) -> Response {
    match reg.group_route(&name) {
        Some(g) => Json(g).into_response(),
        None => {
            let body = serde_json::json!({"error": "not_found", "reason": format!("no live broker in group '{name}'")});
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}

/// The name server's HTTP routes over `reg`.
pub fn router(reg: Arc<Registry>) -> Router {
    Router::new()
        .route("/brokers", post(register).get(brokers))
        .route("/routes/{topic}", get(route))
        .route("/groups/{name}", get(group))
        .with_state(reg)
}

/// Runs a name server on `listen` until `stop`: prints `junction: namesrv listening on <addr>`
/// and `junction: ready`.
///
/// # Errors
/// Binding the listener.
pub async fn run(
    listen: SocketAddr,
    broker_timeout: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let reg = Arc::new(Registry::new(broker_timeout));
    {
        let (reg, stop) = (Arc::clone(&reg), stop.clone());
        let every = (broker_timeout / 4).max(Duration::from_millis(50));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => reg.expire(),
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    tracing::info!(%addr, timeout_ms = broker_timeout.as_millis() as u64, "name server listening");
    println!("junction: namesrv listening on {addr}");
    println!("junction: ready");
    axum::serve(listener, router(reg))
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(name: &str, id: u64, role: &str, epoch: u64, topics: &[(&str, u16)]) -> Registration {
        Registration {
            cluster: "c".into(),
            broker_name: name.into(),
            broker_id: id,
            role: role.into(),
            epoch,
            listeners: [("native".to_string(), format!("127.0.0.1:{}", 5000 + id))].into(),
            topics: topics
                .iter()
                .map(|(n, p)| TopicInfo {
                    vhost: "/".into(),
                    name: n.to_string(),
                    partitions: *p,
                })
                .collect(),
            log_end: 0,
            replicas: Vec::new(),
        }
    }

    #[test]
    fn routes_group_masters_and_slaves_and_expire_silent_brokers() {
        let r = Registry::new(Duration::from_millis(50));
        r.register(reg("a", 0, "master", 0, &[("orders", 4)]));
        r.register(reg("a", 1, "slave", 0, &[("orders", 4)]));
        r.register(reg("b", 0, "master", 0, &[("orders", 2), ("x", 1)]));
        let route = r.route("/", "orders");
        assert_eq!(route.groups.len(), 2);
        assert_eq!(route.groups[0].master.as_ref().unwrap().broker_id, 0);
        assert_eq!(route.groups[0].slaves.len(), 1);
        assert_eq!(route.groups[1].partitions, 2);
        assert_eq!(r.route("/", "x").groups.len(), 1);
        assert!(r.route("/other", "orders").groups.is_empty());
        // A promoted slave with a newer epoch wins over a stale master entry.
        r.register(reg("a", 1, "master", 2, &[("orders", 4)]));
        assert_eq!(r.group_route("a").unwrap().master.unwrap().broker_id, 1);
        std::thread::sleep(Duration::from_millis(80));
        r.register(reg("b", 0, "master", 0, &[]));
        r.expire();
        assert!(r.group_route("a").is_none());
        assert_eq!(r.brokers().len(), 1);
    }
}
