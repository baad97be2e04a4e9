//! The client's background task: the state it shares with the handles, the commands they send
//! it, the handshake, and the supervisor that reconnects with back-off.
//!
//! One supervisor task per [`Client`](crate::Client) owns the receiving end of a bounded queue
//! of [`Command`]s. For each connection it runs a session ([`crate::session`]): a writer that
//! drains the queue into batched socket writes and a reader that routes responses to waiting
//! callers and pushes to consumers. When the session ends, every request written on it fails
//! with [`SdkError::ConnectionLost`], and the supervisor reconnects after an exponential,
//! jittered back-off; requests still queued simply wait for the next connection.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use junction_native::{
    encode, Body, Decoder, ErrorCode, Frame, Hello, Subscribe, Welcome, DEFAULT_MAX_FRAME,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit};

use crate::client::ServerInfo;
use crate::error::{Result, SdkError};
use crate::options::ClientOptions;
use crate::registry::{ConsumerEvent, Registry};

/// Where the answer to a request goes: the response body, or why there is none.
pub(crate) type Reply = oneshot::Sender<Result<Body>>;

/// Locks a mutex, ignoring poisoning (every critical section leaves the data consistent).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Work for the connection task.
pub(crate) enum Command {
    /// A request answered by the server. With `epoch`, it belongs to that session only and is
    /// answered `Ok` without being sent when the session is gone (e.g. `Unsubscribe` of a
    /// consumer id of a dead connection). `permit` (a producer's window slot) is released when
    /// the answer arrives.
    Request {
        body: Body,
        reply: Reply,
        epoch: Option<u64>,
        permit: Option<OwnedSemaphorePermit>,
    },
    /// A frame nobody waits for (one-way publish, unsubscribe on drop); dropped when `epoch`
    /// names a dead session.
    OneWay { body: Body, epoch: Option<u64> },
    /// Acknowledge deliveries of session `epoch`; consecutive acks are merged into one frame.
    Ack {
        epoch: u64,
        consumer_id: u32,
        delivery_ids: Vec<u64>,
    },
    /// Reject deliveries of session `epoch`.
    Nack {
        epoch: u64,
        consumer_id: u32,
        delivery_ids: Vec<u64>,
        requeue: bool,
    },
    /// Change a consumer's prefetch; resolved to its consumer id on the live session.
    SetPrefetch {
        handle: u64,
        prefetch: u32,
        reply: Reply,
    },
    /// First subscription of a registered consumer.
    Subscribe {
        handle: u64,
        subscribe: Subscribe,
        reply: Reply,
    },
}

impl Command {
    /// Answers the command's caller, if any, with `err` (the command will not be sent).
    pub(crate) fn fail(self, err: impl FnOnce() -> SdkError) {
        match self {
            Command::Request { reply, .. }
            | Command::SetPrefetch { reply, .. }
            | Command::Subscribe { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Command::OneWay { .. } | Command::Ack { .. } | Command::Nack { .. } => {}
        }
    }
}

/// State shared by the client handles and the connection task.
pub(crate) struct Shared {
    pub(crate) opts: ClientOptions,
    pub(crate) cmd_tx: mpsc::Sender<Command>,
    pub(crate) consumers: Mutex<Registry>,
    /// The server asked publishers to pause.
    pub(crate) flow_blocked: watch::Sender<bool>,
    /// A session is up.
    pub(crate) connected: watch::Sender<bool>,
    /// Set to stop the connection task at once.
    pub(crate) shutdown: watch::Sender<bool>,
    /// `close()` was called: do not reconnect.
    pub(crate) closing: AtomicBool,
    /// The connection task has stopped.
    pub(crate) closed: AtomicBool,
    /// Number of the current (or last) session; deliveries carry it so that acks for a dead
    /// session are dropped.
    pub(crate) epoch: AtomicU64,
    /// The epoch of the session that is up, 0 while there is none.
    pub(crate) live_epoch: AtomicU64,
    pub(crate) server: Mutex<Option<ServerInfo>>,
    pub(crate) reconnects: AtomicU64,
    /// Transaction producer groups this client answers check-backs for, and where to.
    pub(crate) tx_groups: Mutex<
        std::collections::HashMap<String, mpsc::UnboundedSender<junction_native::CheckTransaction>>,
    >,
}

impl Shared {
    pub(crate) fn new(opts: ClientOptions, cmd_tx: mpsc::Sender<Command>) -> Shared {
        Shared {
            opts,
            cmd_tx,
            consumers: Mutex::new(Registry::default()),
            flow_blocked: watch::Sender::new(false),
            connected: watch::Sender::new(false),
            shutdown: watch::Sender::new(false),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            live_epoch: AtomicU64::new(0),
            server: Mutex::new(None),
            reconnects: AtomicU64::new(0),
            tx_groups: Mutex::default(),
        }
    }

    /// The error for a request whose answer will never come.
    pub(crate) fn lost_error(&self) -> SdkError {
        if self.closed.load(Ordering::SeqCst) || self.closing.load(Ordering::SeqCst) {
            SdkError::Closed
        } else {
            SdkError::ConnectionLost
        }
    }
}

/// A connection that completed the handshake.
pub(crate) struct Established {
    pub(crate) stream: TcpStream,
    /// Bytes read after `Welcome`.
    pub(crate) buf: BytesMut,
    pub(crate) welcome: Welcome,
}

/// The request id of `Hello`; a session's later requests count up from it.
pub(crate) const HELLO_REQUEST_ID: u32 = 1;

fn hello(opts: &ClientOptions) -> Hello {
    Hello {
        client_id: opts.client_id.clone(),
        username: opts.username.clone(),
        password: opts.password.clone(),
        vhost: opts.vhost.clone(),
        heartbeat_ms: u32::try_from(opts.heartbeat.as_millis()).unwrap_or(u32::MAX),
        max_frame: opts.max_frame,
    }
}

/// The address to connect to: the master (or, if allowed, a slave) of the broker group the
/// options name, as the name servers know it now; else `opts.address`.
async fn resolve(opts: &ClientOptions) -> Result<String> {
    let Some(group) = opts
        .broker_name
        .as_deref()
        .filter(|_| !opts.name_servers.is_empty())
    else {
        return Ok(opts.address.clone());
    };
    let ns = crate::route::NameServers::new(opts.name_servers.clone(), opts.connect_timeout);
    let found = ns.group(group).await.and_then(|g| {
        let pick = g
            .master
            .as_ref()
            .or_else(|| g.slaves.first().filter(|_| opts.read_from_slave));
        pick.and_then(|b| b.listener("native"))
            .map(str::to_string)
            .ok_or_else(|| SdkError::Route(format!("broker group '{group}' has no master")))
    });
    match found {
        Ok(a) => Ok(a),
        Err(e) if opts.address.is_empty() => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, fallback = %opts.address, "no route; using the configured address");
            Ok(opts.address.clone())
        }
    }
}

/// Connects, sends `Hello` and waits for `Welcome`, all within the connect timeout.
pub(crate) async fn establish(opts: &ClientOptions) -> Result<Established> {
    let handshake = async {
        let address = resolve(opts).await?;
        let mut stream = TcpStream::connect(address.as_str()).await?;
        stream.set_nodelay(true)?;
        let mut out = BytesMut::new();
        encode(&Frame::new(HELLO_REQUEST_ID, hello(opts)), &mut out)?;
        stream.write_all(&out).await?;

        let limit = if opts.max_frame == 0 {
            DEFAULT_MAX_FRAME
        } else {
            opts.max_frame
        };
        let mut decoder = Decoder::new(limit);
        let mut buf = BytesMut::with_capacity(8 * 1024);
        loop {
            while let Some(frame) = decoder.decode(&mut buf)? {
                match frame.body {
                    Body::Welcome(welcome) => {
                        return Ok(Established {
                            stream,
                            buf,
                            welcome,
                        })
                    }
                    Body::Error(e) => {
                        return Err(SdkError::Server {
                            code: e.code,
                            message: e.message,
                        })
                    }
                    Body::Close(c) => {
                        return Err(SdkError::Server {
                            code: ErrorCode::from_code(c.code),
                            message: c.reason,
                        })
                    }
                    Body::Heartbeat => {}
                    other => return Err(SdkError::unexpected("Welcome", &other)),
                }
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Err(SdkError::ConnectionLost);
            }
        }
    };
    tokio::time::timeout(opts.connect_timeout, handshake)
        .await
        .unwrap_or(Err(SdkError::Timeout))
}

/// The connection task: runs sessions, reconnecting between them, until shut down, closed or
/// out of attempts; then fails everything still queued with [`SdkError::Closed`].
pub(crate) async fn supervise(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Command>,
    first: Established,
) {
    let mut shutdown = shared.shutdown.subscribe();
    let policy = shared.opts.reconnect.clone();
    let mut next = Some(first);
    let mut attempt: u32 = 0;
    let mut gave_up = false;
    loop {
        if let Some(established) = next.take() {
            attempt = 0;
            let why = crate::session::run(&shared, established, &mut rx, &mut shutdown).await;
            if shared.closing.load(Ordering::SeqCst) || *shutdown.borrow() {
                tracing::debug!(reason = %why, "connection closed");
                break;
            }
            tracing::warn!(reason = %why, "connection lost");
            if !policy.enabled {
                gave_up = true;
                break;
            }
        }
        if policy.max_attempts.is_some_and(|max| attempt >= max) {
            tracing::error!(attempts = attempt, "giving up reconnecting");
            gave_up = true;
            break;
        }
        let delay = policy.delay(attempt, rand::random::<f64>());
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
        if shared.closing.load(Ordering::SeqCst) {
            break;
        }
        let result = tokio::select! {
            r = establish(&shared.opts) => r,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        match result {
            Ok(established) => {
                shared.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(attempt, "reconnected");
                next = Some(established);
            }
            Err(e) => tracing::warn!(attempt, error = %e, "reconnect failed"),
        }
    }
    finish(&shared, &mut rx, gave_up);
}

/// Marks the client closed: queued commands fail, consumer streams end (with
/// [`SdkError::ConnectionLost`] first when the task gave up reconnecting).
fn finish(shared: &Shared, rx: &mut mpsc::Receiver<Command>, gave_up: bool) {
    shared.closed.store(true, Ordering::SeqCst);
    shared.connected.send_replace(false);
    shared.flow_blocked.send_replace(false);
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        cmd.fail(|| SdkError::Closed);
    }
    let entries = lock(&shared.consumers).clear();
    if gave_up {
        for entry in entries {
            let _ = entry.tx.send(ConsumerEvent::End(SdkError::ConnectionLost));
        }
    }
}

/// How long to wait for the peer before declaring the connection dead: two heartbeats.
pub(crate) fn dead_after(heartbeat: Option<Duration>) -> Option<Duration> {
    heartbeat.map(|h| h.saturating_mul(2))
}
