//! The controller (`junction controller`): decides which broker of each group is master, as
//! RocketMQ 5's controller mode does, on top of `openraft`.
//!
//! Replicated through Raft (so every controller agrees, and a new controller leader knows
//! it): for each broker group, the current master, its epoch (term) and the in-sync replica
//! set, and the HA address of each broker. Not replicated: liveness. Brokers heartbeat to
//! the controller leader with their CommitLog end; the leader keeps that in memory and, when a
//! master is silent past the broker timeout, elects the alive broker with the highest log end
//! (in a `sync` group, only among the in-sync set, so nothing confirmed is lost), as one Raft
//! command that bumps the epoch. The broker learns its new role from its next heartbeat.
//!
//! - `store`: the Raft log, vote and snapshot files; the state machine.
//! - `net`: the controllers' TCP link (Raft RPCs and broker heartbeats), client and server.

mod net;
mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use net::ControllerClient;

openraft::declare_raft_types!(
    /// The controller's Raft types: commands in, replies out.
    pub TypeConfig:
        D = Command,
        R = Reply,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

/// A change to the replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker of a group and the address slaves replicate from when it is master.
    Register {
        /// Broker group.
        group: String,
        /// Broker id.
        broker_id: u64,
        /// Its HA listener.
        ha: String,
    },
    /// `broker_id` becomes master of `group` in term `epoch` (applied only if the group is at
    /// `epoch - 1`, so two decisions never both win).
    Elect {
        /// Broker group.
        group: String,
        /// The new master.
        broker_id: u64,
        /// The new term.
        epoch: u64,
    },
    /// The master of term `epoch` reports its in-sync set (itself included).
    SetIsr {
        /// Broker group.
        group: String,
        /// The reporting master's term (stale reports are ignored).
        epoch: u64,
        /// In-sync brokers.
        isr: BTreeSet<u64>,
    },
}

/// What applying a command did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the state changed.
    pub applied: bool,
}

/// One broker group as the controllers know it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The master's broker id.
    pub master: Option<u64>,
    /// The master's term; 0 before the first election.
    pub epoch: u64,
    /// Brokers in sync with the master (the master included).
    pub isr: BTreeSet<u64>,
    /// HA address of each broker.
    pub brokers: BTreeMap<u64, String>,
}

/// The replicated state: every broker group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerState {
    /// Groups by name.
    pub groups: BTreeMap<String, GroupState>,
}

/// Applies a command to the state (deterministic: every controller gets the same result).
pub(crate) fn apply(state: &mut ControllerState, cmd: &Command) -> Reply {
    let applied = match cmd {
        Command::Register {
            group,
            broker_id,
            ha,
        } => {
            let g = state.groups.entry(group.clone()).or_default();
            g.brokers.insert(*broker_id, ha.clone()).as_ref() != Some(ha)
        }
        Command::Elect {
            group,
            broker_id,
            epoch,
        } => {
            let g = state.groups.entry(group.clone()).or_default();
            if g.epoch + 1 == *epoch {
                g.epoch = *epoch;
                g.master = Some(*broker_id);
                g.isr = [*broker_id].into();
                true
            } else {
                false
            }
        }
        Command::SetIsr { group, epoch, isr } => match state.groups.get_mut(group) {
            Some(g) if g.epoch == *epoch && g.master.is_some_and(|m| isr.contains(&m)) => {
                g.isr = isr.clone();
                true
            }
            _ => false,
        },
    };
    Reply { applied }
}

/// What a broker tells the controller leader, every heartbeat interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeat {
    /// Broker group.
    pub group: String,
    /// Broker id.
    pub broker_id: u64,
    /// Its HA listener.
    pub ha: String,
    /// Its CommitLog end.
    pub log_end: u64,
    /// Whether the group replicates synchronously.
    pub sync: bool,
    /// The term it is master of (0 if it is not master).
    pub master_epoch: u64,
    /// As master: the slaves it counts in sync.
    pub in_sync: BTreeSet<u64>,
}

/// The controller leader's answer: the group as decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// The master's broker id.
    pub master: Option<u64>,
    /// The master's HA address.
    pub master_ha: Option<String>,
    /// The master's term.
    pub epoch: u64,
    /// The in-sync set (master included).
    pub isr: BTreeSet<u64>,
}

/// A controller's view, for operators and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This controller's id.
    pub id: u64,
    /// The Raft leader, if known.
    pub leader: Option<u64>,
    /// The replicated state.
    pub state: ControllerState,
}

struct Seen {
    at: Instant,
    hb: BrokerHeartbeat,
}

/// One controller: a Raft node plus, while it leads, the brokers' liveness.
pub struct Controller {
    id: u64,
    raft: Raft<TypeConfig>,
    sm: store::StateMachine,
    peers: BTreeMap<u64, String>,
    broker_timeout: Duration,
    seen: Mutex<HashMap<(String, u64), Seen>>,
    /// Since when this node leads (elections wait a broker timeout after that, for the
    /// brokers to find the new leader).
    leading_since: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Controller {
    fn state(&self) -> ControllerState {
        lock(&self.sm.state).state.clone()
    }

    /// This node's status.
    pub async fn status(&self) -> Status {
        Status {
            id: self.id,
            leader: self.raft.current_leader().await,
            state: self.state(),
        }
    }

    fn is_leading(&self, leader: Option<u64>) -> bool {
        let me = leader == Some(self.id);
        let mut since = lock(&self.leading_since);
        match (me, *since) {
            (true, None) => *since = Some(Instant::now()),
            (false, Some(_)) => *since = None,
            _ => {}
        }
        me
    }

    async fn write(&self, cmd: Command) -> Result<Reply, String> {
        self.raft
            .client_write(cmd)
            .await
            .map(|r| r.data)
            .map_err(|e| e.to_string())
    }

    /// A broker's heartbeat: records it as alive, registers its HA address and (from a master)
    /// its in-sync set, and answers with the group as decided.
    ///
    /// # Errors
    /// Not the leader (with the leader's address when known).
    pub async fn heartbeat(&self, hb: BrokerHeartbeat) -> Result<HeartbeatReply, String> {
        let leader = self.raft.current_leader().await;
        if !self.is_leading(leader) {
            let at = leader.and_then(|l| self.peers.get(&l)).cloned();
            return Err(format!(
                "not the leader; leader: {}",
                at.unwrap_or_default()
            ));
        }
        lock(&self.seen).insert(
            (hb.group.clone(), hb.broker_id),
            Seen {
                at: Instant::now(),
                hb: hb.clone(),
            },
        );
        let g = self
            .state()
            .groups
            .get(&hb.group)
            .cloned()
            .unwrap_or_default();
        if g.brokers.get(&hb.broker_id) != Some(&hb.ha) {
            self.write(Command::Register {
                group: hb.group.clone(),
                broker_id: hb.broker_id,
                ha: hb.ha.clone(),
            })
            .await?;
        }
        if g.master == Some(hb.broker_id) && hb.master_epoch == g.epoch {
            let mut isr = hb.in_sync.clone();
            isr.insert(hb.broker_id);
            if isr != g.isr {
                self.write(Command::SetIsr {
                    group: hb.group.clone(),
                    epoch: g.epoch,
                    isr,
                })
                .await?;
            }
        }
        let g = self
            .state()
            .groups
            .get(&hb.group)
            .cloned()
            .unwrap_or_default();
        Ok(HeartbeatReply {
            master_ha: g.master.and_then(|m| g.brokers.get(&m).cloned()),
            master: g.master,
            epoch: g.epoch,
            isr: g.isr,
        })
    }

    /// The leader's periodic check: elects a master for each group without a live one.
    async fn elect(&self) {
        let leader = self.raft.current_leader().await;
        if !self.is_leading(leader) {
            return;
        }
        let settled = lock(&self.leading_since).is_some_and(|t| t.elapsed() >= self.broker_timeout);
        if !settled {
            return;
        }
        let now = Instant::now();
        let alive: Vec<BrokerHeartbeat> = lock(&self.seen)
            .values()
            .filter(|s| now.duration_since(s.at) < self.broker_timeout)
            .map(|s| s.hb.clone())
            .collect();
        let mut by_group: BTreeMap<&str, Vec<&BrokerHeartbeat>> = BTreeMap::new();
        for hb in &alive {
            by_group.entry(&hb.group).or_default().push(hb);
        }
        let state = self.state();
        for (group, brokers) in by_group {
            let g = state.groups.get(group).cloned().unwrap_or_default();
            if g.master
                .is_some_and(|m| brokers.iter().any(|b| b.broker_id == m))
            {
                continue;
            }
            let sync = brokers.iter().any(|b| b.sync);
            let candidates = brokers
                .iter()
                .filter(|b| !sync || g.epoch == 0 || g.isr.contains(&b.broker_id));
            // Highest log end wins; on a tie, the configured master (id 0), then the lowest id.
            let Some(pick) = candidates.max_by_key(|b| (b.log_end, std::cmp::Reverse(b.broker_id)))
            else {
                tracing::warn!(group, isr = ?g.isr, "master lost and no in-sync broker alive: no election");
                continue;
            };
            let epoch = g.epoch + 1;
            tracing::info!(group, broker = pick.broker_id, epoch, log_end = pick.log_end, old = ?g.master, "electing a master");
            let cmd = Command::Elect {
                group: group.to_string(),
                broker_id: pick.broker_id,
                epoch,
            };
            if let Err(e) = self.write(cmd).await {
                tracing::warn!(group, error = %e, "election not committed");
            }
        }
    }
}

/// Runs controller `id` of `peers` (id -> address, this one included) with its Raft files in
/// `dir`, until `stop`. Prints `junction: controller listening on <addr>` and `junction: ready`.
///
/// # Errors
/// Opening the files, binding the listener, starting Raft.
pub async fn run(
    id: u64,
    peers: BTreeMap<u64, String>,
    dir: &Path,
    broker_timeout: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let listen: SocketAddr = peers
        .get(&id)
        .context("this controller's id is not among the peers")?
        .parse()
        .context("controller address")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the controller listener on {listen}"))?;
    let log = store::LogStore::open(dir).context("opening the controller log")?;
    let sm = store::StateMachine::open(dir);
    let config = openraft::Config {
        cluster_name: "junction-controllers".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(500),
        max_in_snapshot_log_to_keep: 100,
        ..Default::default()
    }
    .validate()
    .context("raft configuration")?;
    let network = net::Network::new(peers.clone());
    let raft = Raft::new(id, Arc::new(config), network, log, sm.clone())
        .await
        .context("starting raft")?;
    if id == *peers.keys().next().unwrap_or(&id) {
        let members: BTreeMap<u64, BasicNode> =
            peers.iter().map(|(i, a)| (*i, BasicNode::new(a))).collect();
        // Fails harmlessly when the cluster was initialized before.
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "raft already initialized");
        }
    }
    let ctl = Arc::new(Controller {
        id,
        raft: raft.clone(),
        sm,
        peers,
        broker_timeout,
        seen: Mutex::new(HashMap::new()),
        leading_since: Mutex::new(None),
    });
    {
        let (ctl, stop) = (Arc::clone(&ctl), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    _ = tick.tick() => ctl.elect().await,
                    _ = stop.cancelled() => return,
                }
            }
        });
    }
    let addr = listener.local_addr()?;
    tracing::info!(id, %addr, "controller listening");
    println!("junction: controller listening on {addr}");
    println!("junction: ready");
    net::serve(listener, ctl, stop).await;
    let _ = raft.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elections_are_compare_and_set_and_stale_isr_reports_are_ignored() {
        let mut s = ControllerState::default();
        let elect = |b, e| Command::Elect {
            group: "a".into(),
            broker_id: b,
            epoch: e,
        };
        assert!(apply(&mut s, &elect(0, 1)).applied);
        assert!(!apply(&mut s, &elect(1, 1)).applied, "same term twice");
        assert!(!apply(&mut s, &elect(1, 3)).applied, "skipping a term");
        let isr = |e, ids: &[u64]| Command::SetIsr {
            group: "a".into(),
            epoch: e,
            isr: ids.iter().copied().collect(),
        };
        assert!(apply(&mut s, &isr(1, &[0, 1])).applied);
        assert!(apply(&mut s, &elect(1, 2)).applied);
        let g = &s.groups["a"];
        assert_eq!((g.master, g.epoch, g.isr.len()), (Some(1), 2, 1));
        assert!(
            !apply(&mut s, &isr(1, &[0, 1])).applied,
            "from the old master"
        );
        assert!(!apply(&mut s, &isr(2, &[0])).applied, "without the master");
    }
}
