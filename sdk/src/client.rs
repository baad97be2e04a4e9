//! [`Client`]: a connection to the broker shared by producers, consumers and admin calls.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use junction_native::{Body, Close, Pull, Pulled, QueryOffset, Subscribe, Welcome};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::connection::{establish, lock, supervise, Command, Shared};
use crate::consumer::Consumer;
use crate::error::{Result, SdkError};
use crate::options::{ClientOptions, ConsumerOptions};
use crate::producer::Producer;
use crate::registry::ConsumerEntry;

/// What the server said about itself and the session in `Welcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Server product name.
    pub server: String,
    /// Server version.
    pub version: String,
    /// The server's id for the session.
    pub session_id: u64,
    /// The negotiated heartbeat interval; zero = none.
    pub heartbeat: Duration,
    /// The negotiated maximum frame size.
    pub max_frame: u32,
}

impl From<&Welcome> for ServerInfo {
    fn from(w: &Welcome) -> Self {
        ServerInfo {
            server: w.server.clone(),
            version: w.version.clone(),
            session_id: w.session_id,
            heartbeat: Duration::from_millis(u64::from(w.heartbeat_ms)),
            max_frame: w.max_frame,
        }
    }
}

/// A connection to a Junction broker over the native protocol.
///
/// `Client` is a cheap handle (an `Arc`): clone it freely and share it between tasks. A
/// background task owns the socket; many requests can be in flight at once (pipelining), each
/// matched to its answer by request id. If the connection drops, requests in flight fail with
/// [`SdkError::ConnectionLost`], the task reconnects with exponential back-off and jitter
/// ([`ReconnectOptions`](crate::ReconnectOptions)), and consumers are re-subscribed so their
/// streams go on. Requests made while reconnecting wait (within their timeout).
///
/// Call [`Client::close`] for a graceful shutdown; dropping the last handle (including those
/// held by [`Producer`], [`Consumer`] and [`Admin`]) stops the task without the handshake.
///
/// Must be used inside a Tokio runtime (with the `net`, `time` and `rt` features).
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.shared().opts.address)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects and authenticates. Fails when the first connection cannot be made (no retry:
    /// e.g. [`SdkError::Io`], [`SdkError::Timeout`], or [`SdkError::Server`] with
    /// [`ErrorCode::AccessRefused`](crate::ErrorCode::AccessRefused) for bad credentials);
    /// later connection losses are handled by reconnecting.
    pub async fn connect(options: ClientOptions) -> Result<Client> {
        options.validate()?;
        let first = establish(&options).await?;
        let (cmd_tx, cmd_rx) = mpsc::channel(options.queue_capacity);
        let shared = Arc::new(Shared::new(options, cmd_tx));
        // Up from now on, even before the task has started the session.
        *lock(&shared.server) = Some(ServerInfo::from(&first.welcome));
        shared.connected.send_replace(true);
        let task = tokio::spawn(supervise(shared.clone(), cmd_rx, first));
        Ok(Client {
            inner: Arc::new(ClientInner {
                shared,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The options the client was created with.
    pub fn options(&self) -> &ClientOptions {
        &self.shared().opts
    }

    /// Whether a session is up right now.
    pub fn is_connected(&self) -> bool {
        *self.shared().connected.borrow()
    }

    /// Whether the client is closed (by [`Client::close`], or after giving up reconnecting).
    pub fn is_closed(&self) -> bool {
        self.shared().closed.load(Ordering::SeqCst)
    }

    /// How many times the client has reconnected.
    pub fn reconnects(&self) -> u64 {
        self.shared().reconnects.load(Ordering::Relaxed)
    }

    /// Whether the server has asked publishers to pause (a `Flow` push); sends wait meanwhile.
    pub fn is_flow_blocked(&self) -> bool {
        *self.shared().flow_blocked.borrow()
    }

    /// The server's `Welcome` of the current (or last) session.
    pub fn server_info(&self) -> Option<ServerInfo> {
        lock(&self.shared().server).clone()
    }

    /// Waits until a session is up (e.g. after a reconnect), at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut rx = self.shared().connected.subscribe();
        let closed = || self.is_closed();
        let up = tokio::time::timeout(timeout, async {
            rx.wait_for(|up| *up || closed()).await.is_ok()
        })
        .await;
        match up {
            Ok(true) if !self.is_closed() => Ok(()),
            Ok(_) => Err(SdkError::Closed),
            Err(_) => Err(SdkError::Timeout),
        }
    }

    /// Topology management: exchanges, queues, bindings, topics.
    pub fn admin(&self) -> Admin {
        Admin::new(self.clone())
    }

    /// A producer with the default window ([`ClientOptions::publish_window`]).
    pub fn producer(&self) -> Producer {
        Producer::new(self.clone(), self.shared().opts.publish_window)
    }

    /// A transactional producer of producer group `group`, answering the broker's
    /// check-backs with `checker` (see [`TransactionProducer`](crate::TransactionProducer)).
    pub async fn transaction_producer(
        &self,
        group: &str,
        checker: impl crate::TransactionChecker,
    ) -> Result<crate::TransactionProducer> {
        crate::TransactionProducer::new(self.clone(), group, checker).await
    }

    /// An idempotent producer with id `producer_id` (unique among the vhost's producers, and
    /// the same across the process's restarts), whose next sequence number is
    /// `next_sequence` (1 for a new producer).
    pub fn idempotent_producer(
        &self,
        producer_id: &str,
        next_sequence: u64,
    ) -> crate::producer::IdempotentProducer {
        crate::producer::IdempotentProducer::new(self.producer(), producer_id, next_sequence)
    }

    /// Starts consuming a queue; see [`Consumer`]. Fails with [`SdkError::Server`] when the
    /// server refuses (e.g. [`ErrorCode::NotFound`](crate::ErrorCode::NotFound)).
    pub async fn subscribe(&self, options: ConsumerOptions) -> Result<Consumer> {
        let subscribe = Subscribe {
            queue: options.queue.clone(),
            group: options.group,
            prefetch: options.prefetch,
            no_ack: options.no_ack,
            start: options.start,
            exclusive_partitions: options.exclusive_partitions,
            tags: options.tags,
            sql: options.sql,
            ordered: options.ordered,
            broadcast: options.broadcast,
            retry: options.retry,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let partitions = Arc::new(Mutex::new(Vec::new()));
        let handle = lock(&self.shared().consumers).insert(ConsumerEntry {
            subscribe: subscribe.clone(),
            tx,
            current: None,
            established: false,
            partitions: partitions.clone(),
        });
        let result = self
            .call_with(|reply| Command::Subscribe {
                handle,
                subscribe,
                reply,
            })
            .await;
        match result {
            Ok(Body::Subscribed(_)) => Ok(Consumer::new(
                self.clone(),
                handle,
                options.queue,
                rx,
                partitions,
            )),
            Ok(other) => {
                lock(&self.shared().consumers).remove(handle);
                Err(SdkError::unexpected("Subscribed", &other))
            }
            Err(e) => {
                lock(&self.shared().consumers).remove(handle);
                Err(e)
            }
        }
    }

    /// Reads up to `max` messages of one partition from `offset`, without a subscription and
    /// without acknowledgements (log-style). Continue from [`Pulled::next_offset`].
    pub async fn pull(&self, queue: &str, partition: u16, offset: u64, max: u32) -> Result<Pulled> {
        let pull = Pull {
            queue: queue.to_string(),
            partition,
            offset,
            max,
        };
        match self.call(pull.into()).await? {
            Body::Pulled(p) => Ok(p),
            other => Err(SdkError::unexpected("Pulled", &other)),
        }
    }

    /// Messages found in the store by id, key or time (see [`LookupBy`](crate::LookupBy)),
    /// at most `max` (1 to 1,000), with their properties and every queue partition and offset
    /// where they are stored: newest first by id or key, oldest first by time. A consumed
    /// message is still found until retention removes it.
    pub async fn lookup(
        &self,
        by: junction_native::LookupBy,
        max: u32,
    ) -> Result<Vec<junction_native::FoundMessage>> {
        let lookup = junction_native::Lookup { by, max };
        match self.call(lookup.into()).await? {
            Body::Found(f) => Ok(f.messages),
            other => Err(SdkError::unexpected("Found", &other)),
        }
    }

    /// The first offset of a partition stored at or after `time_ms` (ms since the Unix epoch;
    /// the partition's end offset when nothing is that recent). Use it with
    /// [`StartPosition::Offset`](crate::StartPosition::Offset) or [`Client::pull`].
    pub async fn offset_for_time(&self, queue: &str, partition: u16, time_ms: i64) -> Result<u64> {
        let query = QueryOffset {
            queue: queue.to_string(),
            partition,
            time_ms,
        };
        match self.call(query.into()).await? {
            Body::Offset(o) => Ok(o.offset),
            other => Err(SdkError::unexpected("Offset", &other)),
        }
    }

    /// Closes the client: sends `Close`, waits (at most
    /// [`ClientOptions::close_timeout`]) for `CloseOk`, stops the connection task and does not
    /// reconnect. Consumer streams end; every later call fails with [`SdkError::Closed`].
    /// Calling it again does nothing.
    pub async fn close(&self) -> Result<()> {
        let shared = self.shared();
        let timeout = shared.opts.close_timeout;
        let mut result = Ok(());
        if !shared.closing.swap(true, Ordering::SeqCst) && self.is_connected() {
            let (tx, rx) = oneshot::channel();
            let close = Close {
                code: Close::NORMAL,
                reason: "client closing".into(),
            };
            let handshake = async {
                self.enqueue(Command::Request {
                    body: close.into(),
                    reply: tx,
                    epoch: None,
                    permit: None,
                })
                .await?;
                rx.await.unwrap_or(Err(SdkError::Closed))
            };
            result = match tokio::time::timeout(timeout, handshake).await {
                Ok(Ok(Body::CloseOk)) | Ok(Err(SdkError::Closed | SdkError::ConnectionLost)) => {
                    Ok(())
                }
                Ok(Ok(other)) => Err(SdkError::unexpected("CloseOk", &other)),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(SdkError::Timeout),
            };
        }
        shared.shutdown.send_replace(true);
        let task = lock(&self.inner.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(timeout, task).await;
        }
        result
    }

    /// Queues a command for the connection task (waiting while the queue is full).
    pub(crate) async fn enqueue(&self, cmd: Command) -> Result<()> {
        self.shared()
            .cmd_tx
            .send(cmd)
            .await
            .map_err(|_| SdkError::Closed)
    }

    /// Sends a request and waits for its answer, within the request timeout (which does not
    /// run out while the server has publishing paused: a publish it holds, and whatever the
    /// client sent behind it, are answered once the alarm clears). An `Error` answer becomes
    /// [`SdkError::Server`].
    pub(crate) async fn call(&self, body: Body) -> Result<Body> {
        self.call_in(body, None).await
    }

    /// Like [`Client::call`], for a request that only makes sense on session `epoch`.
    pub(crate) async fn call_in(&self, body: Body, epoch: Option<u64>) -> Result<Body> {
        self.call_with(|reply| Command::Request {
            body,
            reply,
            epoch,
            permit: None,
        })
        .await
    }

    pub(crate) async fn call_with(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<Body>>) -> Command,
    ) -> Result<Body> {
        let (tx, rx) = oneshot::channel();
        let exchange = async {
            self.enqueue(make(tx)).await?;
            match rx.await {
                Ok(answer) => answer,
                Err(_) => Err(self.shared().lost_error()),
            }
        };
        let mut exchange = std::pin::pin!(exchange);
        loop {
            match tokio::time::timeout(self.shared().opts.request_timeout, &mut exchange).await {
                Ok(answer) => return answer,
                Err(_) if self.is_flow_blocked() => {}
                Err(_) => return Err(SdkError::Timeout),
            }
        }
    }

    /// Waits while the server has publishing paused.
    pub(crate) async fn wait_flow(&self) -> Result<()> {
        let flow = &self.shared().flow_blocked;
        if !*flow.borrow() {
            return Ok(());
        }
        let mut rx = flow.subscribe();
        rx.wait_for(|blocked| !*blocked)
            .await
            .map(|_| ())
            .map_err(|_| SdkError::Closed)
    }
}
