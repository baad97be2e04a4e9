//! Junction beyond one machine: broker groups (a master and its slaves), replication,
//! name servers and controllers. See `docs/DEPLOYMENT.md` for the deployments and
//! `docs/ARCHITECTURE.md` for the decisions.
//!
//! - [`ha`]: master -> slave replication of the CommitLog (by offset) and of the metadata;
//!   acknowledgements for sync replication.
//! - [`epoch`]: master terms and where an old master's log must be cut.
//! - [`controller`]: the Raft-backed controllers that elect masters (`junction controller`),
//!   and the broker's side of it (heartbeats, promotion, demotion).
//! - [`namesrv`]: the name server (`junction namesrv`) and the brokers' registration with it.
//! - `wire`: the length-prefixed frames of the cluster's TCP links.
//! - [`Node`]: what `junction serve` runs beside the core when `[cluster]` is on: the HA
//!   listener, the slave's replication loop, the role.

pub mod controller;
pub mod epoch;
pub mod ha;
pub mod namesrv;
mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::core::Broker;
use ha::{Ha, SlaveExit};

/// Why the node asks the broker process to stop and start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Restart as is (the role changed under a running core).
    Again,
    /// Cut the CommitLog at this offset first (an old master rejoining as a slave).
    Truncate(u64),
}

/// The cluster side of one broker process.
pub struct Node {
    ha: Arc<Ha>,
    ha_addr: SocketAddr,
    stop: CancellationToken,
    tasks: TaskTracker,
    restart: watch::Receiver<Option<Restart>>,
}

impl Node {
    /// Takes this broker's role (read-only unless it is the master), binds the HA listener
    /// and starts replication. Call before the client listeners accept anything.
    ///
    /// # Errors
    /// Binding the HA listener.
    pub async fn start(cfg: &Config, broker: Broker) -> anyhow::Result<Node> {
        let c = cfg.cluster.clone();
        let ha = Arc::new(Ha::new(broker.clone(), c.clone(), &cfg.data_dir));
        let listener = TcpListener::bind(c.ha_listen)
            .await
            .with_context(|| format!("binding the ha listener on {}", c.ha_listen))?;
        let ha_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (restart_tx, restart) = watch::channel(None);
        tasks.spawn(ha::serve(listener, Arc::clone(&ha), stop.clone()));
        {
            let (ha, stop) = (Arc::clone(&ha), stop.clone());
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tokio::select! {
                        _ = tick.tick() => ha.refresh_gate(),
                        _ = stop.cancelled() => return,
                    }
                }
            });
        }
        if !c.controllers.is_empty() {
            ha.set_master(false);
            broker.set_read_only(Some(format!(
                "broker '{}' id {} waits for the controllers to decide its role",
                c.broker_name, c.broker_id
            )));
            *ha.committed_isr.lock().unwrap_or_else(|p| p.into_inner()) = Some(Default::default());
            let (addr_tx, addr_rx) = watch::channel(None);
            let slave_stop = stop.child_token();
            let slave = {
                let (ha, slave_stop, restart_tx) =
                    (Arc::clone(&ha), slave_stop.clone(), restart_tx.clone());
                tasks.spawn(async move {
                    if let SlaveExit::Truncate(at) = ha::run_slave(ha, addr_rx, slave_stop).await {
                        let _ = restart_tx.send(Some(Restart::Truncate(at)));
                    }
                })
            };
            let follow = Follow {
                ha: Arc::clone(&ha),
                ha_addr,
                addr_tx,
                slave_stop,
                slave: Some(slave),
                restart_tx,
                stop: stop.clone(),
            };
            tasks.spawn(follow.run());
        } else if c.broker_id == 0 {
            ha.set_master(true);
            // Consume queues of its earlier transient queues go, as a single broker's do.
            broker.promote()?;
        } else {
            ha.set_master(false);
            broker.set_read_only(Some(slave_reason(&c.broker_name, c.broker_id)));
            // Fixed roles: the master never moves, so nobody keeps the sender.
            let (_, addr_rx) = watch::channel(Some(c.master_ha_address.clone()));
            let (ha, stop) = (Arc::clone(&ha), stop.clone());
            tasks.spawn(async move {
                if let SlaveExit::Truncate(at) = ha::run_slave(ha, addr_rx, stop).await {
                    let _ = restart_tx.send(Some(Restart::Truncate(at)));
                }
            });
        }
        tracing::info!(
            broker = %c.broker_name,
            id = c.broker_id,
            controllers = c.controllers.len(),
            replication = %c.replication,
            ha = %ha_addr,
            "cluster node started"
        );
        Ok(Node {
            ha,
            ha_addr,
            stop,
            tasks,
            restart,
        })
    }

    /// Address of the HA listener.
    pub fn ha_addr(&self) -> SocketAddr {
        self.ha_addr
    }

    /// Replication state.
    pub fn ha(&self) -> &Arc<Ha> {
        &self.ha
    }

    /// Starts heartbeating to every configured name server, reporting these listeners.
    pub fn announce(&self, cfg: &Config, listeners: &[(&str, SocketAddr)]) {
        let c = &cfg.cluster;
        if c.name_servers.is_empty() {
            return;
        }
        let listeners: std::collections::BTreeMap<String, String> = listeners
            .iter()
            .map(|(p, a)| (p.to_string(), a.to_string()))
            .collect();
        let every = Duration::from_millis(c.heartbeat_interval_ms.max(10));
        for ns in c.name_servers.clone() {
            let (ha, stop, listeners) =
                (Arc::clone(&self.ha), self.stop.clone(), listeners.clone());
            self.tasks.spawn(async move {
                let agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(3)))
                    .http_status_as_error(false)
                    .build()
                    .new_agent();
                let url = format!("http://{ns}/brokers");
                let mut tick = tokio::time::interval(every);
                let mut failing = false;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = stop.cancelled() => return,
                    }
                    let reg = registration(&ha, &listeners);
                    let (agent2, url2) = (agent.clone(), url.clone());
                    let sent = tokio::task::spawn_blocking(move || {
                        agent2
                            .post(&url2)
                            .send_json(&reg)
                            .map(|r| r.status().is_success())
                    })
                    .await;
                    let ok = matches!(sent, Ok(Ok(true)));
                    if ok == failing {
                        failing = !ok;
                        if ok {
                            tracing::info!(name_server = %ns, "registered with the name server");
                        } else {
                            tracing::warn!(name_server = %ns, "name server unreachable; retrying");
                        }
                    }
                }
            });
        }
    }

    /// Resolves when the node needs the broker to restart.
    pub async fn restart_requested(&self) -> Restart {
        let mut rx = self.restart.clone();
        let found = rx.wait_for(|r| r.is_some()).await.map(|r| *r);
        match found {
            Ok(r) => r.unwrap_or(Restart::Again),
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops replication and every task of the node.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// This broker as name servers see it, now.
fn registration(
    ha: &Ha,
    listeners: &std::collections::BTreeMap<String, String>,
) -> namesrv::Registration {
    let c = &ha.cfg;
    let master = ha.master.load(std::sync::atomic::Ordering::Acquire);
    let epoch = ha
        .epochs
        .lock()
        .map(|e| e.last().map_or(0, |e| e.epoch))
        .unwrap_or(0);
    namesrv::Registration {
        cluster: c.cluster_name.clone(),
        broker_name: c.broker_name.clone(),
        broker_id: c.broker_id,
        role: if master { "master" } else { "slave" }.into(),
        epoch,
        listeners: listeners.clone(),
        topics: ha
            .broker
            .topics()
            .into_iter()
            .map(|(vhost, name, partitions)| namesrv::TopicInfo {
                vhost,
                name,
                partitions,
            })
            .collect(),
        log_end: ha.broker.store().log_end(),
        replicas: if master {
            let in_sync = ha.in_sync();
            ha.slaves()
                .into_iter()
                .map(|(id, s)| namesrv::ReplicaInfo {
                    broker_id: id,
                    acked: s.acked,
                    connected: s.connected,
                    in_sync: in_sync.contains(&id),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}

/// A broker following the controllers' decisions (controller mode).
struct Follow {
    ha: Arc<Ha>,
    ha_addr: SocketAddr,
    addr_tx: watch::Sender<Option<String>>,
    slave_stop: CancellationToken,
    slave: Option<tokio::task::JoinHandle<()>>,
    restart_tx: watch::Sender<Option<Restart>>,
    stop: CancellationToken,
}

impl Follow {
    /// Heartbeats to the controller leader and takes the role it answers: promotion (stop
    /// replicating, begin a term at the log end, accept writes), demotion (restart as a slave),
    /// or the master to replicate from. A master that cannot reach the controllers for twice
    /// the in-sync timeout stops accepting writes (it may have been replaced).
    async fn run(mut self) {
        let c = self.ha.cfg.clone();
        let client = controller::ControllerClient::new(&c.controllers, Duration::from_secs(2));
        let every = Duration::from_millis(c.heartbeat_interval_ms.max(10));
        let fence_after = Duration::from_millis(c.isr_timeout_ms.saturating_mul(2));
        let mut tick = tokio::time::interval(every);
        let mut last_ok = std::time::Instant::now();
        let mut fenced = false;
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.stop.cancelled() => return,
            }
            let ha = Arc::clone(&self.ha);
            let master = ha.master.load(std::sync::atomic::Ordering::Acquire);
            let hb = controller::BrokerHeartbeat {
                group: c.broker_name.clone(),
                broker_id: c.broker_id,
                ha: self.ha_addr.to_string(),
                log_end: ha.broker.store().log_end(),
                sync: c.replication == "sync",
                master_epoch: if master { current_epoch(&ha) } else { 0 },
                in_sync: if master {
                    ha.in_sync()
                } else {
                    Default::default()
                },
            };
            let reply = match client.heartbeat(&hb).await {
                Ok(r) => r,
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, "no controller leader answered");
                        warned = true;
                    }
                    if master && !fenced && last_ok.elapsed() > fence_after {
                        tracing::warn!("lost the controllers: refusing writes until they answer");
                        ha.broker.set_read_only(Some(
                            "this master lost contact with the controllers".into(),
                        ));
                        fenced = true;
                    }
                    continue;
                }
            };
            last_ok = std::time::Instant::now();
            warned = false;
            match reply.master {
                Some(m) if m == c.broker_id => {
                    if !master {
                        if let Err(e) = self.promote(reply.epoch).await {
                            tracing::error!(error = %e, "promotion failed");
                            continue;
                        }
                    } else if fenced {
                        ha.broker.set_read_only(None);
                        fenced = false;
                    }
                    let mut isr = reply.isr.clone();
                    isr.remove(&c.broker_id);
                    *ha.committed_isr.lock().unwrap_or_else(|p| p.into_inner()) = Some(isr);
                }
                Some(m) if master => {
                    tracing::warn!(
                        new_master = m,
                        epoch = reply.epoch,
                        "replaced as master: restarting as a slave"
                    );
                    let _ = self.restart_tx.send(Some(Restart::Again));
                    return;
                }
                Some(_) => {
                    self.addr_tx.send_if_modified(|a| {
                        let changed = *a != reply.master_ha;
                        if changed {
                            a.clone_from(&reply.master_ha);
                        }
                        changed
                    });
                }
                None => {}
            }
        }
    }

    async fn promote(&mut self, epoch: u64) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        self.slave_stop.cancel();
        if let Some(slave) = self.slave.take() {
            let _ = slave.await;
        }
        let ha = &self.ha;
        let end = ha.broker.store().log_end();
        ha.epochs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(epoch, end)?;
        ha.broker.promote()?;
        ha.set_master(true);
        tracing::warn!(
            epoch,
            log_end = end,
            ms = started.elapsed().as_millis() as u64,
            "promoted to master"
        );
        Ok(())
    }
}

fn current_epoch(ha: &Ha) -> u64 {
    ha.epochs
        .lock()
        .map(|e| e.last().map_or(0, |e| e.epoch))
        .unwrap_or(0)
}

fn slave_reason(broker: &str, id: u64) -> String {
    format!("broker '{broker}' id {id} is a slave")
}
