//! The controllers' TCP link: Raft RPCs between controllers and heartbeats from brokers, as
//! JSON requests and answers in the cluster's length-prefixed frames (one request at a time
//! per connection; each peer keeps one connection open).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::super::wire::{read_frame, write_frame};
use super::{BrokerHeartbeat, Controller, HeartbeatReply, Status, TypeConfig};

const REQUEST: u8 = 1;
const ANSWER: u8 = 2;

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    Heartbeat(BrokerHeartbeat),
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
enum Answer {
    Append(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<InstallSnapshotResponse<u64>, RaftError<u64, InstallSnapshotError>>),
    Heartbeat(Result<HeartbeatReply, String>),
    Status(Status),
}

/// One connection to a peer, opened on first use and again after a failure.
struct Peer {
    addr: String,
    conn: tokio::sync::Mutex<Option<TcpStream>>,
}

impl Peer {
    fn new(addr: String) -> Peer {
        Peer {
            addr,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn call(&self, req: &Request, timeout: Duration) -> std::io::Result<Answer> {
        let body = serde_json::to_vec(req).map_err(std::io::Error::other)?;
        let mut conn = self.conn.lock().await;
        let exchange = async {
            if conn.is_none() {
                let s = TcpStream::connect(&self.addr).await?;
                s.set_nodelay(true)?;
                *conn = Some(s);
            }
            let Some(s) = conn.as_mut() else {
                return Err(std::io::Error::other("not connected"));
            };
            write_frame(s, REQUEST, &[&body]).await?;
            match read_frame(s).await? {
                Some((ANSWER, p)) => serde_json::from_slice(&p).map_err(std::io::Error::other),
                Some(_) => Err(std::io::Error::other("unexpected frame")),
                None => Err(std::io::Error::other("connection closed")),
            }
        };
        let r = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("timed out")));
        if r.is_err() {
            *conn = None; // a half-done exchange leaves the stream unusable
        }
        r
    }
}

/// Creates the Raft clients of the other controllers.
pub(super) struct Network {
    peers: BTreeMap<u64, Arc<Peer>>,
}

impl Network {
    pub(super) fn new(addrs: BTreeMap<u64, String>) -> Network {
        Network {
            peers: addrs
                .into_iter()
                .map(|(id, a)| (id, Arc::new(Peer::new(a))))
                .collect(),
        }
    }
}

/// The Raft client of one controller.
pub(super) struct PeerClient {
    target: u64,
    peer: Arc<Peer>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        let peer = self
            .peers
            .get(&target)
            .cloned()
            .unwrap_or_else(|| Arc::new(Peer::new(node.addr.clone())));
        PeerClient { target, peer }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn call(&self, req: Request, option: &RPCOption) -> Result<Answer, NetworkError> {
        self.peer
            .call(&req, option.hard_ttl())
            .await
            .map_err(|e| NetworkError::new(&e))
    }

    fn remote<E: std::error::Error>(
        &self,
        e: RaftError<u64, E>,
    ) -> RPCError<u64, BasicNode, RaftError<u64, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, e))
    }
}

fn unexpected<E: std::error::Error>() -> RPCError<u64, BasicNode, RaftError<u64, E>> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(
        "unexpected answer",
    )))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>> {
        match self.call(Request::Append(rpc), &option).await {
            Ok(Answer::Append(Ok(r))) => Ok(r),
            Ok(Answer::Append(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(RPCError::Network(e)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        match self.call(Request::Snapshot(rpc), &option).await {
            Ok(Answer::Snapshot(Ok(r))) => Ok(r),
            Ok(Answer::Snapshot(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(RPCError::Network(e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>> {
        match self.call(Request::Vote(rpc), &option).await {
            Ok(Answer::Vote(Ok(r))) => Ok(r),
            Ok(Answer::Vote(Err(e))) => Err(self.remote(e)),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(RPCError::Network(e)),
        }
    }
}

/// Serves controllers and brokers on `listener` until `stop`.
pub(super) async fn serve(listener: TcpListener, ctl: Arc<Controller>, stop: CancellationToken) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "controller: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let (ctl, stop) = (Arc::clone(&ctl), stop.clone());
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            tokio::select! {
                r = connection(stream, &ctl) => if let Err(e) = r {
                    tracing::debug!(error = %e, "controller: connection ended");
                },
                _ = stop.cancelled() => {}
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn connection(mut s: TcpStream, ctl: &Controller) -> std::io::Result<()> {
    while let Some((kind, p)) = read_frame(&mut s).await? {
        if kind != REQUEST {
            return Err(std::io::Error::other("unexpected frame"));
        }
        let req: Request = serde_json::from_slice(&p)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let answer = match req {
            Request::Append(r) => Answer::Append(ctl.raft.append_entries(r).await),
            Request::Vote(r) => Answer::Vote(ctl.raft.vote(r).await),
            Request::Snapshot(r) => Answer::Snapshot(ctl.raft.install_snapshot(r).await),
            Request::Heartbeat(hb) => Answer::Heartbeat(ctl.heartbeat(hb).await),
            Request::Status => Answer::Status(ctl.status().await),
        };
        let body = serde_json::to_vec(&answer).map_err(std::io::Error::other)?;
        write_frame(&mut s, ANSWER, &[&body]).await?;
    }
    Ok(())
}

/// A broker's (or an operator's) client of the controllers: finds the leader among them.
pub struct ControllerClient {
    peers: Vec<Peer>,
    leader: std::sync::atomic::AtomicUsize,
    timeout: Duration,
}

impl ControllerClient {
    /// A client of the controllers at `addrs`.
    pub fn new(addrs: &[String], timeout: Duration) -> ControllerClient {
        ControllerClient {
            peers: addrs.iter().cloned().map(Peer::new).collect(),
            leader: std::sync::atomic::AtomicUsize::new(0),
            timeout,
        }
    }

    /// Sends a heartbeat to the leader (trying each controller in turn until one leads).
    ///
    /// # Errors
    /// No controller answered as leader.
    pub async fn heartbeat(&self, hb: &BrokerHeartbeat) -> Result<HeartbeatReply, String> {
        use std::sync::atomic::Ordering;
        let n = self.peers.len().max(1);
        let start = self.leader.load(Ordering::Relaxed);
        let mut last = String::from("no controller configured");
        for k in 0..n {
            let i = (start + k) % n;
            let Some(peer) = self.peers.get(i) else {
                continue;
            };
            match peer
                .call(&Request::Heartbeat(hb.clone()), self.timeout)
                .await
            {
                Ok(Answer::Heartbeat(Ok(r))) => {
                    self.leader.store(i, Ordering::Relaxed);
                    return Ok(r);
                }
                Ok(Answer::Heartbeat(Err(e))) => last = format!("{}: {e}", peer.addr),
                Ok(_) => last = format!("{}: unexpected answer", peer.addr),
                Err(e) => last = format!("{}: {e}", peer.addr),
            }
        }
        Err(last)
    }

    /// The status of the controller at `index`.
    ///
    /// # Errors
    /// It did not answer.
    pub async fn status(&self, index: usize) -> Result<Status, String> {
        let peer = self.peers.get(index).ok_or("no such controller")?;
        match peer.call(&Request::Status, self.timeout).await {
            Ok(Answer::Status(s)) => Ok(s),
            Ok(_) => Err("unexpected answer".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}
