//! Replication inside a broker group (RocketMQ's HAService): the master streams its CommitLog
//! to each slave from the slave's own end, and its metadata when it changes; slaves
//! acknowledge what they have stored, which sync replication waits for.
//!
//! One TCP connection per slave, framed as in [`super::wire`]:
//!
//! ```text
//! slave  -> master  HELLO     postcard Hello { broker name/id, log end, segment size }
//! master -> slave   WELCOME   postcard Welcome { log start, log end, epochs }  | REFUSE text
//! master -> slave   DATA      offset u64, next u64, raw CommitLog bytes (whole records, or
//!                             one blank header = "the segment ends here")
//! master -> slave   META      postcard MetaFrame { meta.json, offsets files, retained.bin }
//! master -> slave   HEARTBEAT master log end u64 (every second)
//! slave  -> master  ACK       u64: everything below is stored under the slave's flush policy
//!                             (sent after each DATA and every second)
//! ```
//!
//! A slave whose log ends past the point where its last shared term ended on the master (an
//! old master coming back) hangs up and cuts its log there before it connects again
//! ([`super::epoch::divergence`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::epoch::{divergence, Epoch, EpochFile};
use super::wire::{self, read_frame, write_frame};
use crate::config::ClusterSection;
use crate::core::{Broker, ReplicatedMeta};

const HELLO: u8 = 1;
const WELCOME: u8 = 2;
const REFUSE: u8 = 3;
const DATA: u8 = 4;
const ACK: u8 = 5;
const META: u8 = 6;
const HEARTBEAT: u8 = 7;

/// Bytes of CommitLog per DATA frame (whole records, so a little more at times).
const CHUNK: usize = 256 << 10;
/// How often each side speaks when there is nothing else to say.
const TICK: Duration = Duration::from_millis(500);
/// A link silent for this long is dead.
const DEAD_AFTER: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize)]
struct Hello {
    broker_name: String,
    broker_id: u64,
    log_end: u64,
    segment_size: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Welcome {
    log_start: u64,
    log_end: u64,
    epochs: Vec<Epoch>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MetaFrame {
    meta_json: Vec<u8>,
    offsets: Vec<(u32, Vec<u8>)>,
    retained: Option<Vec<u8>>,
}

/// What the master knows of one slave.
#[derive(Debug, Clone)]
pub struct SlaveState {
    /// Where it connects from.
    pub peer: SocketAddr,
    /// Everything below is stored on it.
    pub acked: u64,
    /// Whether its connection is up.
    pub connected: bool,
    last_ack: Instant,
    last_caught_up: Option<Instant>,
}

/// Replication state of this broker, master or slave side.
pub struct Ha {
    pub(crate) broker: Broker,
    pub(crate) cfg: ClusterSection,
    segment_size: u64,
    pub(crate) epochs: Mutex<EpochFile>,
    /// Whether this broker is its group's master now.
    pub(crate) master: AtomicBool,
    slaves: Mutex<BTreeMap<u64, SlaveState>>,
    /// Slaves the master counts as in sync (acknowledging and caught up).
    in_sync: Mutex<BTreeSet<u64>>,
    /// The in-sync set the controller has committed, without the master (controller mode;
    /// `None` with fixed roles): a slave leaves the set sync publishes wait for only once the
    /// controller knows it left.
    pub(crate) committed_isr: Mutex<Option<BTreeSet<u64>>>,
    /// Log end as of the previous gate refresh.
    prev_end: AtomicU64,
    /// Slave side: the master's log end, from its last heartbeat.
    pub(crate) master_end: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a slave's replication loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveExit {
    /// Stopped from outside (shutdown or promotion).
    Stopped,
    /// The log must be cut at this offset before replication can go on.
    Truncate(u64),
}

impl Ha {
    /// Replication state for `broker`, configured by `cfg`.
    pub fn new(broker: Broker, cfg: ClusterSection, data_dir: &std::path::Path) -> Ha {
        let segment_size = broker.store().segment_size();
        Ha {
            broker,
            cfg,
            segment_size,
            epochs: Mutex::new(EpochFile::open(data_dir)),
            master: AtomicBool::new(false),
            slaves: Mutex::new(BTreeMap::new()),
            in_sync: Mutex::new(BTreeSet::new()),
            committed_isr: Mutex::new(None),
            prev_end: AtomicU64::new(0),
            master_end: AtomicU64::new(0),
        }
    }

    fn sync_mode(&self) -> bool {
        self.cfg.replication == "sync"
    }

    /// Makes this broker its group's master (writable; sync publishes wait for slaves) or a
    /// slave (read-only).
    pub fn set_master(&self, master: bool) {
        self.master.store(master, Ordering::Release);
        let gate = self.broker.store().replica_gate();
        gate.set_required(
            master && self.sync_mode(),
            Duration::from_millis(self.cfg.sync_timeout_ms),
        );
    }

    /// The slaves as the master sees them.
    pub fn slaves(&self) -> BTreeMap<u64, SlaveState> {
        lock(&self.slaves).clone()
    }

    /// The slaves the master counts as in sync.
    pub fn in_sync(&self) -> BTreeSet<u64> {
        lock(&self.in_sync).clone()
    }

    /// Recomputes the in-sync set and moves the sync-replication gate to what every counted
    /// slave has stored. Called on every acknowledgement and by a ticker.
    pub fn refresh_gate(&self) {
        let store = self.broker.store();
        let end = store.log_end();
        let prev = self.prev_end.swap(end, Ordering::AcqRel);
        let now = Instant::now();
        let isr_timeout = Duration::from_millis(self.cfg.isr_timeout_ms);
        let slaves = {
            let mut slaves = lock(&self.slaves);
            for s in slaves.values_mut() {
                // Caught up: it has everything the master had a tick ago.
                if s.connected && s.acked >= prev.min(end) {
                    s.last_caught_up = Some(now);
                }
            }
            slaves.clone()
        };
        let in_sync: BTreeSet<u64> = slaves
            .iter()
            .filter(|(_, s)| {
                s.connected
                    && now.duration_since(s.last_ack) < isr_timeout
                    && s.last_caught_up
                        .is_some_and(|t| now.duration_since(t) < isr_timeout)
            })
            .map(|(id, _)| *id)
            .collect();
        let committed = lock(&self.committed_isr).clone();
        let mut counted = in_sync.clone();
        if let Some(c) = &committed {
            counted.extend(c.iter().copied());
        }
        *lock(&self.in_sync) = in_sync;
        let min = counted
            .iter()
            .map(|id| slaves.get(id).map_or(0, |s| s.acked))
            .min();
        match (min, committed) {
            (Some(min), _) => store.replica_gate().ack(min),
            // Controller mode, and the controllers know no slave is in sync: they will not
            // elect one, so the master alone holds what it confirms (RocketMQ 5's
            // minInSyncReplicas = 1).
            (None, Some(_)) => store.replica_gate().ack(end),
            // Fixed roles: a sync master needs a slave.
            (None, None) => {}
        }
    }

    fn on_ack(&self, id: u64, end: u64) {
        if let Some(s) = lock(&self.slaves).get_mut(&id) {
            s.acked = s.acked.max(end);
            s.last_ack = Instant::now();
        }
        self.refresh_gate();
    }
}

/// Accepts slaves on `listener` until `stop`.
pub async fn serve(listener: TcpListener, ha: Arc<Ha>, stop: CancellationToken) {
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "ha: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let (ha, stop) = (Arc::clone(&ha), stop.clone());
        tracker.spawn(async move {
            let _ = stream.set_nodelay(true);
            match serve_slave(&ha, stream, peer, &stop).await {
                Ok(()) => tracing::info!(%peer, "ha: slave link closed"),
                Err(e) => tracing::info!(%peer, error = %e, "ha: slave link ended"),
            }
        });
    }
    tracker.close();
    tracker.wait().await;
}

async fn refuse(w: &mut (impl tokio::io::AsyncWrite + Unpin), why: &str) -> std::io::Error {
    let _ = write_frame(w, REFUSE, &[why.as_bytes()]).await;
    std::io::Error::other(why.to_string())
}

async fn serve_slave(
    ha: &Arc<Ha>,
    stream: TcpStream,
    peer: SocketAddr,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let (mut rd, mut wr) = stream.into_split();
    let hello: Hello = match tokio::time::timeout(DEAD_AFTER, read_frame(&mut rd)).await {
        Ok(Ok(Some((HELLO, p)))) => wire::decode(&p, "hello")?,
        Ok(Err(e)) => return Err(e),
        _ => return Err(std::io::Error::other("no hello")),
    };
    if !ha.master.load(Ordering::Acquire) {
        return Err(refuse(&mut wr, "not the master of this broker group").await);
    }
    if hello.broker_name != ha.cfg.broker_name {
        let why = format!(
            "this is broker group '{}', not '{}'",
            ha.cfg.broker_name, hello.broker_name
        );
        return Err(refuse(&mut wr, &why).await);
    }
    if hello.segment_size != ha.segment_size {
        let why = format!(
            "segment_size {} differs from the master's {}: they must be equal",
            hello.segment_size, ha.segment_size
        );
        return Err(refuse(&mut wr, &why).await);
    }
    let store = ha.broker.store();
    let stats = store.stats();
    let epochs = lock(&ha.epochs).entries().to_vec();
    let mut from = hello.log_end;
    if from < stats.log_start {
        if from != 0 {
            let why = format!(
                "the slave ends at {from}, before the master's oldest record at {}: \
                 empty its data directory to copy the master afresh",
                stats.log_start
            );
            return Err(refuse(&mut wr, &why).await);
        }
        from = stats.log_start;
    }
    if from > store.log_end() && epochs.is_empty() {
        let why = format!(
            "the slave ends at {from}, past the master's end {}: \
             without controllers the master cannot tell which log is right",
            store.log_end()
        );
        return Err(refuse(&mut wr, &why).await);
    }
    let welcome = Welcome {
        log_start: stats.log_start,
        log_end: store.log_end(),
        epochs,
    };
    write_frame(&mut wr, WELCOME, &[&wire::encode(&welcome)]).await?;
    if from > store.log_end() {
        return Ok(()); // it will cut its log and come back
    }
    let id = hello.broker_id;
    lock(&ha.slaves).insert(
        id,
        SlaveState {
            peer,
            acked: 0,
            connected: true,
            last_ack: Instant::now(),
            last_caught_up: None,
        },
    );
    tracing::info!(%peer, slave = id, from, "ha: slave connected");
    let reader = {
        let ha = Arc::clone(ha);
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(DEAD_AFTER, read_frame(&mut rd)).await {
                    Ok(Ok(Some((ACK, p)))) => ha.on_ack(id, wire::u64_at(&p, 0)?),
                    Ok(Ok(Some((k, _)))) => {
                        return Err(std::io::Error::other(format!("unexpected frame {k}")))
                    }
                    Ok(Ok(None)) => return Ok(()),
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(std::io::Error::other("slave silent")),
                }
            }
        })
    };
    let result = stream_to_slave(ha, &mut wr, from, stop, reader).await;
    if let Some(s) = lock(&ha.slaves).get_mut(&id) {
        s.connected = false;
    }
    ha.refresh_gate();
    result
}

async fn stream_to_slave(
    ha: &Arc<Ha>,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    mut from: u64,
    stop: &CancellationToken,
    mut reader: tokio::task::JoinHandle<std::io::Result<()>>,
) -> std::io::Result<()> {
    let store = ha.broker.store();
    let mut next_tick = Instant::now();
    let mut meta_sent: Option<(u64, Instant)> = None;
    let meta_every = Duration::from_millis(ha.cfg.meta_sync_interval_ms);
    let mut meta_version = ha.broker.meta_version();
    loop {
        // Under steady load there is always more to send: the tick's work is done in
        // between, so metadata and heartbeats are never starved.
        if Instant::now() >= next_tick {
            meta_version = ha.broker.meta_version();
            send_meta(ha, wr, &mut meta_sent, meta_every).await?;
            write_frame(wr, HEARTBEAT, &[&store.log_end().to_le_bytes()]).await?;
            next_tick = Instant::now() + TICK;
        }
        if let Some((bytes, next)) = store
            .read_replica(from, CHUNK)
            .map_err(std::io::Error::other)?
        {
            // Metadata changed: the slave gets it before any record appended after the
            // change (a queue's definition before its messages). Checked after the read, so a
            // record in `bytes` written after a change always finds the change counted.
            let version = ha.broker.meta_version();
            if version != meta_version {
                send_meta(ha, wr, &mut meta_sent, meta_every).await?;
                meta_version = version;
            }
            write_frame(
                wr,
                DATA,
                &[&from.to_le_bytes(), &next.to_le_bytes(), &bytes],
            )
            .await?;
            from = next;
            if stop.is_cancelled() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            _ = store.grown_past(from) => {}
            _ = tokio::time::sleep_until(next_tick.into()) => {}
            r = &mut reader => {
                return r.map_err(std::io::Error::other)?;
            }
            _ = stop.cancelled() => return Ok(()),
        }
    }
}

/// Sends the metadata when it changed since the last time, or when the interval is up.
async fn send_meta(
    ha: &Ha,
    wr: &mut tokio::net::tcp::OwnedWriteHalf,
    sent: &mut Option<(u64, Instant)>,
    every: Duration,
) -> std::io::Result<()> {
    let m = ha.broker.replicated_meta();
    let m_queues = m.meta.queues.len();
    let frame = MetaFrame {
        meta_json: serde_json::to_vec(&m.meta).map_err(std::io::Error::other)?,
        offsets: m.offsets,
        retained: m.retained,
    };
    let bytes = wire::encode(&frame);
    let hash = xxhash_rust::xxh3::xxh3_64(&bytes);
    let due = match sent {
        Some((h, at)) => *h != hash || at.elapsed() >= every,
        None => true,
    };
    if due {
        tracing::debug!(queues = m_queues, "ha: sending metadata");
        write_frame(wr, META, &[&bytes]).await?;
        *sent = Some((hash, Instant::now()));
    }
    Ok(())
}

/// A slave's replication: connects to the master (`master_addr` tells where it is now, `None`
/// while unknown), copies its CommitLog and metadata, acknowledges; reconnects after a failure
/// until `stop`. Returns early when the log must be cut first.
pub async fn run_slave(
    ha: Arc<Ha>,
    master_addr: watch::Receiver<Option<String>>,
    stop: CancellationToken,
) -> SlaveExit {
    let mut backoff = Duration::from_millis(100);
    let mut addr_rx = master_addr;
    loop {
        if stop.is_cancelled() {
            return SlaveExit::Stopped;
        }
        let addr = addr_rx.borrow_and_update().clone();
        let result = match addr {
            Some(addr) => tokio::select! {
                r = slave_session(&ha, &addr, &stop) => r,
                () = address_changed(&mut addr_rx) => Ok(None),
                _ = stop.cancelled() => return SlaveExit::Stopped,
            },
            None => Ok(None),
        };
        match result {
            Ok(Some(exit)) => return exit,
            Ok(None) => backoff = Duration::from_millis(100),
            Err(e) => {
                tracing::warn!(error = %e, "ha: replication from the master failed; retrying");
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            () = address_changed(&mut addr_rx) => {}
            _ = stop.cancelled() => return SlaveExit::Stopped,
        }
    }
}

/// Resolves when the master's address changes; never, once nobody can change it.
async fn address_changed(rx: &mut watch::Receiver<Option<String>>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn slave_session(
    ha: &Arc<Ha>,
    addr: &str,
    stop: &CancellationToken,
) -> std::io::Result<Option<SlaveExit>> {
    let stream = tokio::time::timeout(DEAD_AFTER, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let store = ha.broker.store();
    let hello = Hello {
        broker_name: ha.cfg.broker_name.clone(),
        broker_id: ha.cfg.broker_id,
        log_end: store.log_end(),
        segment_size: ha.segment_size,
    };
    write_frame(&mut wr, HELLO, &[&wire::encode(&hello)]).await?;
    let welcome: Welcome = match tokio::time::timeout(DEAD_AFTER, read_frame(&mut rd)).await {
        Ok(Ok(Some((WELCOME, p)))) => wire::decode(&p, "welcome")?,
        Ok(Ok(Some((REFUSE, p)))) => {
            return Err(std::io::Error::other(format!(
                "the master refused: {}",
                String::from_utf8_lossy(&p)
            )))
        }
        Ok(Err(e)) => return Err(e),
        _ => return Err(std::io::Error::other("no welcome")),
    };
    let end = store.log_end();
    let mine = lock(&ha.epochs).entries().to_vec();
    if let Some(cut) = divergence(&mine, end, &welcome.epochs, welcome.log_end) {
        tracing::warn!(
            end,
            cut,
            "ha: this log goes past the master's; cutting it before replicating"
        );
        return Ok(Some(SlaveExit::Truncate(cut)));
    }
    if end == 0 && welcome.log_start > 0 {
        store
            .reset_start(welcome.log_start)
            .map_err(std::io::Error::other)?;
    }
    lock(&ha.epochs).replace(&welcome.epochs)?;
    ha.master_end.store(welcome.log_end, Ordering::Release);
    tracing::info!(master = addr, from = store.log_end(), "ha: replicating");

    let (ack_tx, ack_rx) = watch::channel(store.log_end());
    let acker = tokio::spawn(send_acks(ha.broker.clone(), wr, ack_rx));
    let result = receive(ha, &mut rd, &ack_tx, stop).await;
    acker.abort();
    result.map(|()| None)
}

async fn receive(
    ha: &Arc<Ha>,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    ack_tx: &watch::Sender<u64>,
    stop: &CancellationToken,
) -> std::io::Result<()> {
    let store = ha.broker.store();
    let mut touched = Vec::new();
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(DEAD_AFTER, read_frame(rd)) => f,
            _ = stop.cancelled() => return Ok(()),
        };
        let (kind, p) = match frame {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => return Err(std::io::Error::other("the master closed the link")),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(std::io::Error::other("the master is silent")),
        };
        match kind {
            DATA => {
                let offset = wire::u64_at(&p, 0)?;
                let bytes = p.get(16..).unwrap_or_default();
                touched.clear();
                let end = store
                    .append_replicated(offset, bytes, &mut touched)
                    .map_err(std::io::Error::other)?;
                if !touched.is_empty() {
                    let ids: HashSet<u32> = touched.iter().map(|k| k.queue).collect();
                    ha.broker.wake_queues(&ids);
                }
                ack_tx.send_replace(end);
            }
            META => {
                let m: MetaFrame = wire::decode(&p, "metadata")?;
                let meta = serde_json::from_slice(&m.meta_json)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
                let r = ReplicatedMeta {
                    meta,
                    offsets: m.offsets,
                    retained: m.retained,
                };
                tracing::debug!(
                    queues = r.meta.queues.len(),
                    "ha: the master's metadata arrived"
                );
                if let Err(e) = ha.broker.apply_replicated_meta(r).await {
                    tracing::warn!(error = %e, "ha: applying the master's metadata failed");
                }
            }
            HEARTBEAT => ha.master_end.store(wire::u64_at(&p, 0)?, Ordering::Release),
            REFUSE => {
                return Err(std::io::Error::other(format!(
                    "the master refused: {}",
                    String::from_utf8_lossy(&p)
                )))
            }
            k => return Err(std::io::Error::other(format!("unexpected frame {k}"))),
        }
    }
}

/// Acknowledges the slave's stored end after each append (once it is stored under the
/// slave's flush policy) and every tick.
async fn send_acks(
    broker: Broker,
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<u64>,
) -> std::io::Result<()> {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return Ok(()) },
            _ = tick.tick() => {}
        }
        let end = *rx.borrow_and_update();
        if broker.store().flushed(end).await.is_err() {
            return Err(std::io::Error::other("the slave's store is poisoned"));
        }
        write_frame(&mut wr, ACK, &[&end.to_le_bytes()]).await?;
    }
}
