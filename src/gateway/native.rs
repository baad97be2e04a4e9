//! The native protocol gateway: one task per connection.
//!
//! The loop `select!`s over the socket, the session's events, the heartbeat timer and shutdown.
//! Frames read in one go are all handled before one write of every response; deliveries ready at
//! the same moment are written together. A publish with `confirm` is answered once the core
//! confirms it (stored under the flush policy), in publish order.
//!
//! Resource alarms: every connection gets a `Flow` push when publishing is blocked and when it
//! resumes; a publish that arrives meanwhile is held and the connection not read until the
//! alarm clears (see `publish`).
//!
//! Bad input gets an `Error` frame with the protocol's code (request id 0 for a broken frame,
//! which then closes the connection), is logged once, and never affects other connections.

mod publish;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

/// The accepted connection (TLS or not), its bytes counted for its listener.
type Stream = crate::gateway::metered::Metered<crate::tls::Stream>;
use bytes::{Bytes, BytesMut};
use futures_util::future::OptionFuture;
use junction_native as wire;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use wire::{Body, ErrorCode, Frame};

use crate::core::filter::Filter;
use crate::core::{
    BindingDecl, Broker, ConsumeSpec, CoreError, Credential, Delivery, ExchangeDecl, ExchangeKind,
    Lookup, Properties, QueueDecl, RetryPolicy, Session, SessionEvent, Settle, StartFrom, TxCheck,
    Value,
};

/// Connection settings the gateway needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Largest frame accepted from a client.
    pub max_frame: u32,
    /// Heartbeat the server proposes (the smaller non-zero of the two sides wins).
    pub heartbeat: Duration,
    /// Time allowed between accept and a valid Hello.
    pub handshake_timeout: Duration,
    /// The user name from the client's verified TLS certificate, set per connection by a TLS
    /// listener with `[tls] cert_login` (None otherwise).
    pub cert_user: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_frame: wire::DEFAULT_MAX_FRAME,
            heartbeat: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            cert_user: None,
        }
    }
}

/// Maps a core error onto the native error code.
pub fn error_code(e: &CoreError) -> ErrorCode {
    match e {
        CoreError::NotFound { .. } => ErrorCode::NotFound,
        CoreError::AccessRefused(_) | CoreError::ReadOnly(_) => ErrorCode::AccessRefused,
        CoreError::PreconditionFailed(_) | CoreError::Invalid(_) => ErrorCode::PreconditionFailed,
        CoreError::ResourceLocked(_) => ErrorCode::ResourceLocked,
        CoreError::ResourceLimit(_) | CoreError::Blocked(_) => ErrorCode::ResourceError,
        CoreError::ShuttingDown => ErrorCode::ConnectionForced,
        CoreError::Store(_) | CoreError::Io(_) => ErrorCode::InternalError,
    }
}

fn props_in(p: wire::Properties) -> Properties {
    let headers: Vec<(String, Value)> = p
        .headers
        .into_iter()
        .map(|(k, v)| (k, Value::Bytes(v)))
        .collect();
    Properties {
        retain: Properties::retain_requested(&headers),
        message_id: p.message_id,
        correlation_id: p.correlation_id,
        reply_to: p.reply_to,
        content_type: p.content_type,
        content_encoding: p.content_encoding,
        timestamp_ms: p.timestamp_ms,
        ttl_ms: p.ttl_ms,
        priority: p.priority,
        persistent: p.persistent,
        user_id: p.user_id,
        keys: p.keys,
        tag: p.tag,
        sharding_key: p.sharding_key,
        headers,
        amqp_header: None,
        origin: None,
    }
}

fn value_bytes(v: &Value) -> Bytes {
    match v {
        Value::Bytes(b) => b.clone(),
        Value::Str(s) => Bytes::copy_from_slice(s.as_bytes()),
        Value::Null => Bytes::new(),
        other => Bytes::from(other.as_str_lossy().unwrap_or_else(|| format!("{other:?}"))),
    }
}

fn props_out(p: &Properties) -> wire::Properties {
    wire::Properties {
        message_id: p.message_id.clone(),
        correlation_id: p.correlation_id.clone(),
        reply_to: p.reply_to.clone(),
        content_type: p.content_type.clone(),
        content_encoding: p.content_encoding.clone(),
        timestamp_ms: p.timestamp_ms,
        ttl_ms: p.ttl_ms,
        priority: p.priority,
        persistent: p.persistent,
        user_id: p.user_id.clone(),
        keys: p.keys.clone(),
        tag: p.tag.clone(),
        sharding_key: p.sharding_key.clone(),
        deliver_at_ms: None,
        headers: p
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), value_bytes(v)))
            .collect(),
    }
}

fn args_in(m: wire::Map) -> Vec<(String, Value)> {
    m.into_iter()
        .map(|(k, v)| {
            // Arguments are sent as text; numbers become numbers, so `x-message-ttl: "500"` works.
            let val = match std::str::from_utf8(&v) {
                Ok(s) => s
                    .parse::<i64>()
                    .map(Value::I64)
                    .unwrap_or_else(|_| Value::Str(s.to_string())),
                Err(_) => Value::Bytes(v),
            };
            (k, val)
        })
        .collect()
}

fn kind_in(k: wire::ExchangeKind) -> ExchangeKind {
    match k {
        wire::ExchangeKind::Direct => ExchangeKind::Direct,
        wire::ExchangeKind::Fanout => ExchangeKind::Fanout,
        wire::ExchangeKind::Topic => ExchangeKind::Topic,
        wire::ExchangeKind::Headers => ExchangeKind::Headers,
    }
}

fn start_in(s: wire::StartPosition) -> StartFrom {
    match s {
        wire::StartPosition::Committed => StartFrom::Committed,
        wire::StartPosition::Earliest => StartFrom::Earliest,
        wire::StartPosition::Latest => StartFrom::Latest,
        wire::StartPosition::Offset(o) => StartFrom::Offset(o),
        wire::StartPosition::Time(t) => StartFrom::Time(t),
    }
}

/// A publish waiting for its confirm.
enum Pending {
    One {
        seq: u64,
        request_id: u32,
        routes: Vec<wire::Route>,
        duplicate: bool,
    },
    Batch {
        seq: u64,
        request_id: u32,
        routes: Vec<Vec<wire::Route>>,
    },
    /// A transactional half message.
    Half {
        seq: u64,
        request_id: u32,
        transaction_id: u64,
    },
}

impl Pending {
    fn seq(&self) -> u64 {
        match self {
            Pending::One { seq, .. } | Pending::Batch { seq, .. } | Pending::Half { seq, .. } => {
                *seq
            }
        }
    }

    fn request_id(&self) -> u32 {
        match self {
            Pending::One { request_id, .. }
            | Pending::Batch { request_id, .. }
            | Pending::Half { request_id, .. } => *request_id,
        }
    }
}

struct Conn {
    stream: Stream,
    peer: SocketAddr,
    rbuf: crate::gateway::readbuf::ReadBuf,
    wbuf: BytesMut,
    decoder: wire::Decoder,
    max_frame_out: u32,
}

impl Conn {
    fn push(&mut self, request_id: u32, body: impl Into<Body>) {
        let f = Frame::new(request_id, body);
        if let Err(e) = wire::encode_with_max(&f, self.max_frame_out, &mut self.wbuf) {
            tracing::warn!(peer = %self.peer, error = %e, "response too large to encode; sent an error instead");
            let err = Frame::new(
                request_id,
                wire::ErrorResponse {
                    code: ErrorCode::ContentTooLarge,
                    message: e.to_string(),
                },
            );
            let _ = wire::encode(&err, &mut self.wbuf);
        }
    }

    fn error(&mut self, request_id: u32, code: ErrorCode, message: impl Into<String>) {
        self.push(
            request_id,
            wire::ErrorResponse {
                code,
                message: message.into(),
            },
        );
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
        }
        Ok(())
    }
}

/// Serves one native-protocol connection until it closes or `shutdown` fires.
pub async fn serve(
    stream: Stream,
    peer: SocketAddr,
    broker: Broker,
    shutdown: CancellationToken,
    settings: Settings,
) {
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        peer,
        rbuf: crate::gateway::readbuf::ReadBuf::default(),
        wbuf: BytesMut::new(),
        // Hello must fit the minimum frame size: nothing bigger is buffered before login.
        decoder: wire::Decoder::new(wire::MIN_MAX_FRAME),
        max_frame_out: wire::MIN_MAX_FRAME,
    };
    let Some((session, heartbeat)) = handshake(&mut conn, &broker, &settings).await else {
        return;
    };
    let span = tracing::info_span!("conn", protocol = "native", peer = %peer, user = %session.info().user, session = session.id());
    let mut c = Connection {
        conn,
        broker,
        blocked: false,
        held: None,
        session,
        pending: VecDeque::new(),
        consumers: HashMap::new(),
        by_tag: HashMap::new(),
        next_consumer: 1,
        checks: None,
        checks_tx: None,
    };
    c.conn.decoder = wire::Decoder::new(settings.max_frame);
    async move {
        tracing::debug!("session open");
        c.run(heartbeat, shutdown).await;
        c.session.close().await;
        // A clean end of the stream (TLS: close_notify), bounded for a client that reads nothing.
        let _ = tokio::time::timeout(Duration::from_secs(1), c.conn.stream.shutdown()).await;
        tracing::debug!("session closed");
    }
    .instrument(span)
    .await;
}

async fn handshake(
    conn: &mut Conn,
    broker: &Broker,
    settings: &Settings,
) -> Option<(Session, Duration)> {
    let frame = match tokio::time::timeout(settings.handshake_timeout, read_frame(conn)).await {
        Ok(Ok(Some(f))) => f,
        Ok(Ok(None)) => return None,
        Ok(Err(e)) => {
            tracing::info!(peer = %conn.peer, error = %e, "bad frame before login");
            conn.error(0, e.code(), e.to_string());
            let _ = conn.flush().await;
            return None;
        }
        Err(_) => {
            tracing::info!(peer = %conn.peer, "no Hello within the handshake timeout");
            return None;
        }
    };
    let Body::Hello(h) = frame.body else {
        conn.error(
            frame.request_id,
            ErrorCode::CommandInvalid,
            "the first frame must be Hello",
        );
        let _ = conn.flush().await;
        return None;
    };
    // A verified certificate stands for the user when the Hello names none.
    let (user, credential) = match (h.username.as_str(), &settings.cert_user) {
        ("", Some(cn)) => (cn.as_str(), Credential::Certificate),
        (u, _) => (u, Credential::Password(&h.password)),
    };
    match broker.connect_with(
        user,
        credential,
        &h.vhost,
        Some(conn.peer),
        "native",
        &h.client_id,
    ) {
        Ok(session) => {
            crate::gateway::handshakes::logged_in();
            let hb = match (h.heartbeat_ms, settings.heartbeat.as_millis() as u32) {
                (0, _) | (_, 0) => 0,
                (a, b) => a.min(b),
            };
            conn.max_frame_out = wire::negotiate_max_frame(h.max_frame, settings.max_frame);
            conn.push(
                frame.request_id,
                wire::Welcome {
                    server: "junction".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    session_id: session.id(),
                    heartbeat_ms: hb,
                    max_frame: conn.max_frame_out,
                },
            );
            conn.flush().await.ok()?;
            Some((session, Duration::from_millis(u64::from(hb))))
        }
        Err(e) => {
            conn.error(frame.request_id, error_code(&e), e.to_string());
            let _ = conn.flush().await;
            None
        }
    }
}

/// Reads until one frame is decoded (`None` on a clean EOF).
async fn read_frame(conn: &mut Conn) -> Result<Option<Frame>, wire::DecodeError> {
    loop {
        if let Some(f) = conn.decoder.decode(&mut conn.rbuf)? {
            return Ok(Some(f));
        }
        match conn.rbuf.read_from(&mut conn.stream).await {
            Ok(0) | Err(_) => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Unconfirmed publishes per connection before the gateway stops reading from it.
const MAX_PENDING: usize = 16_384;

struct Connection {
    conn: Conn,
    broker: Broker,
    /// The client was told `Flow { blocked: true }`.
    blocked: bool,
    /// A publish held by a resource alarm: the socket is not read until it is stored.
    held: Option<Box<publish::Held>>,
    session: Session,
    pending: VecDeque<Pending>,
    /// Native consumer id -> core consumer tag.
    consumers: HashMap<u32, String>,
    by_tag: HashMap<String, u32>,
    next_consumer: u32,
    /// Check-backs for the transaction groups this connection registered.
    checks: Option<tokio::sync::mpsc::UnboundedReceiver<TxCheck>>,
    checks_tx: Option<tokio::sync::mpsc::UnboundedSender<TxCheck>>,
}

enum Flow {
    Continue,
    Close,
}

impl Connection {
    async fn run(&mut self, heartbeat: Duration, shutdown: CancellationToken) {
        let hb = if heartbeat.is_zero() {
            Duration::from_secs(3600)
        } else {
            heartbeat
        };
        let mut tick = tokio::time::interval(hb);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut alarm = self.broker.alarm_watch();
        alarm.mark_changed();
        let mut last_read = tokio::time::Instant::now();
        let mut last_write = tokio::time::Instant::now();
        // Pinned once: registering with the close signal per loop turn would cost a lock each.
        let closed = self.session.close_signal();
        let closed = closed.requested();
        tokio::pin!(closed);
        loop {
            // Made only while a publish is held (its branch is disabled otherwise).
            let resumed = OptionFuture::from(
                self.held
                    .as_ref()
                    .map(|_| self.session.publishing_resumed()),
            );
            let flow = tokio::select! {
                // Backpressure: a client with too many unconfirmed publishes, or one whose
                // publish a resource alarm holds, is not read from until that is over.
                r = self.conn.rbuf.read_from(&mut self.conn.stream), if self.pending.len() < MAX_PENDING && self.held.is_none() => match r {
                    Ok(0) | Err(_) => Flow::Close,
                    Ok(_) => {
                        last_read = tokio::time::Instant::now();
                        self.on_input().await
                    }
                },
                ev = self.session.next_event() => match ev {
                    Some(ev) => {
                        self.on_event(ev);
                        while let Some(ev) = self.session.try_next_event() {
                            self.on_event(ev);
                            if self.conn.wbuf.len() > 256 << 10 {
                                break;
                            }
                        }
                        Flow::Continue
                    }
                    None => Flow::Close,
                },
                check = next_check(&mut self.checks) => {
                    if let Some(c) = check {
                        self.conn.push(0, wire::CheckTransaction {
                            transaction_id: c.transaction_id,
                            group: c.group,
                            checks: c.checks,
                            exchange: c.exchange,
                            routing_key: c.routing_key,
                            properties: props_out(&c.message.properties),
                            body: c.message.body,
                        });
                    }
                    Flow::Continue
                },
                Some(()) = resumed, if self.held.is_some() => {
                    self.resume();
                    self.on_input().await
                },
                _ = tick.tick() => {
                    // The client's heartbeats wait unread while a publish is held.
                    if self.held.is_some() {
                        last_read = tokio::time::Instant::now();
                    }
                    if !heartbeat.is_zero() {
                        if last_read.elapsed() > heartbeat * 2 {
                            tracing::info!("heartbeat timeout: closing");
                            self.conn.error(0, ErrorCode::ConnectionForced, "missed heartbeats");
                            let _ = self.conn.flush().await;
                            return;
                        }
                        if last_write.elapsed() >= heartbeat {
                            self.conn.push(0, Body::Heartbeat);
                        }
                    }
                    Flow::Continue
                },
                Ok(()) = alarm.changed() => {
                    let reason = *alarm.borrow_and_update();
                    if reason.is_some() != self.blocked {
                        self.blocked = reason.is_some();
                        let text = reason.unwrap_or_default();
                        self.conn.push(0, wire::Flow { blocked: self.blocked, reason: text.into() });
                    }
                    Flow::Continue
                },
                _ = shutdown.cancelled() => {
                    self.conn.push(0, wire::Close { code: ErrorCode::ConnectionForced.code(), reason: "broker shutting down".into() });
                    let _ = self.conn.flush().await;
                    return;
                }
                reason = &mut closed => {
                    tracing::info!(reason, "connection closed from outside");
                    self.conn.push(0, wire::Close { code: ErrorCode::ConnectionForced.code(), reason });
                    let _ = self.conn.flush().await;
                    return;
                }
            };
            if !self.conn.wbuf.is_empty() {
                if self.conn.flush().await.is_err() {
                    return;
                }
                last_write = tokio::time::Instant::now();
            }
            if let Flow::Close = flow {
                return;
            }
        }
    }

    /// Handles every complete frame in the read buffer (until a publish is held).
    async fn on_input(&mut self) -> Flow {
        while self.held.is_none() {
            match self.conn.decoder.decode(&mut self.conn.rbuf) {
                Ok(Some(f)) => {
                    if let Flow::Close = self.on_frame(f).await {
                        return Flow::Close;
                    }
                }
                Ok(None) => return Flow::Continue,
                Err(e) => {
                    tracing::info!(error = %e, "malformed frame: closing the connection");
                    self.conn.error(0, e.code(), e.to_string());
                    return Flow::Close;
                }
            }
        }
        Flow::Continue
    }

    async fn on_frame(&mut self, f: Frame) -> Flow {
        let id = f.request_id;
        let r: Result<Option<Body>, CoreError> = match f.body {
            Body::Heartbeat => Ok(None),
            Body::Close(_) => {
                self.conn.push(id, Body::CloseOk);
                return Flow::Close;
            }
            Body::CloseOk => return Flow::Close,
            Body::DeclareExchange(d) => self
                .session
                .declare_exchange(ExchangeDecl {
                    name: d.name,
                    kind: kind_in(d.kind),
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    passive: d.passive,
                    args: args_in(d.args),
                })
                .map(|()| Some(Body::Ok)),
            Body::DeleteExchange(d) => self
                .session
                .delete_exchange(&d.name, d.if_unused)
                .map(|()| Some(Body::Ok)),
            Body::DeclareQueue(d) => self
                .session
                .declare_queue(QueueDecl {
                    name: d.name,
                    partitions: d.partitions,
                    durable: d.durable,
                    exclusive: d.exclusive,
                    auto_delete: d.auto_delete,
                    passive: d.passive,
                    args: args_in(d.args),
                })
                .await
                .map(|q| {
                    Some(Body::QueueDeclared(wire::QueueDeclared {
                        name: q.name,
                        partitions: q.partitions,
                        messages: q.messages,
                        consumers: q.consumers,
                    }))
                }),
            Body::DeleteQueue(d) => self
                .session
                .delete_queue(&d.name, d.if_unused, d.if_empty)
                .await
                .map(|n| Some(Body::Deleted(wire::Deleted { messages: n }))),
            Body::PurgeQueue(d) => self
                .session
                .purge_queue(&d.name)
                .await
                .map(|n| Some(Body::Deleted(wire::Deleted { messages: n }))),
            Body::Bind(b) => self.session.bind(binding_in(b)).map(|()| Some(Body::Ok)),
            Body::Unbind(b) => self.session.unbind(binding_in(b)).map(|()| Some(Body::Ok)),
            Body::Publish(p) => self.publish(id, p),
            Body::PublishBatch(b) => self.publish_batch(id, b),
            Body::Subscribe(s) => self.subscribe(s).await,
            Body::Unsubscribe(u) => match self.consumers.remove(&u.consumer_id) {
                Some(tag) => {
                    self.by_tag.remove(&tag);
                    self.session.close_consumer(&tag).map(|()| Some(Body::Ok))
                }
                None => Err(CoreError::NotFound {
                    kind: "consumer",
                    name: u.consumer_id.to_string(),
                }),
            },
            Body::Ack(a) => self.settle(&a.delivery_ids, Settle::Ack),
            Body::Nack(n) => self.settle(
                &n.delivery_ids,
                if n.requeue {
                    Settle::Requeue
                } else {
                    Settle::Reject
                },
            ),
            Body::SetPrefetch(p) => match self.consumers.get(&p.consumer_id) {
                Some(tag) => self
                    .session
                    .set_prefetch(tag, p.prefetch)
                    .map(|()| Some(Body::Ok)),
                None => Err(CoreError::NotFound {
                    kind: "consumer",
                    name: p.consumer_id.to_string(),
                }),
            },
            Body::Pull(p) => self
                .session
                .read(&p.queue, p.partition, p.offset, p.max as usize)
                .map(|r| {
                    Some(Body::Pulled(wire::Pulled {
                        messages: r
                            .messages
                            .into_iter()
                            .map(|m| wire::PulledMessage {
                                offset: m.offset,
                                store_ts: m.store_ts,
                                properties: props_out(&m.message.properties),
                                body: m.message.body,
                            })
                            .collect(),
                        next_offset: r.next_offset,
                        min_offset: r.min_offset,
                        end_offset: r.end_offset,
                    }))
                }),
            Body::Lookup(l) => self.lookup(l),
            Body::PublishHalf(h) => self.publish_half(id, h),
            Body::EndTransaction(e) => self.end_transaction(id, e),
            Body::RegisterTransactionGroup(g) => {
                let tx = match &self.checks_tx {
                    Some(tx) => tx.clone(),
                    None => {
                        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                        self.checks = Some(rx);
                        self.checks_tx = Some(tx.clone());
                        tx
                    }
                };
                self.session.register_transaction_group(&g.group, tx);
                Ok(Some(Body::Ok))
            }
            Body::Redrive(r) => self
                .session
                .redrive(&r.queue, r.max)
                .await
                .map(|n| Some(Body::Deleted(wire::Deleted { messages: n }))),
            Body::QueryOffset(q) => self
                .session
                .offset_for_time(&q.queue, q.partition, q.time_ms)
                .map(|o| Some(Body::Offset(wire::Offset { offset: o }))),
            other => {
                tracing::info!(opcode = ?other.opcode(), "server-only frame from a client: closing");
                self.conn.error(
                    0,
                    ErrorCode::CommandInvalid,
                    format!("{:?} is not a client frame", other.opcode()),
                );
                return Flow::Close;
            }
        };
        self.reply(id, r);
        Flow::Continue
    }

    /// Answers request `id` with its result (`None`: answered later, or not at all).
    fn reply(&mut self, id: u32, r: Result<Option<Body>, CoreError>) {
        match r {
            Ok(Some(body)) => self.conn.push(id, body),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "request failed");
                self.conn.error(id, error_code(&e), e.to_string());
            }
        }
    }

    async fn subscribe(&mut self, s: wire::Subscribe) -> Result<Option<Body>, CoreError> {
        let cid = self.next_consumer;
        self.next_consumer += 1;
        let tag = format!("native-{cid}");
        let filter = match (s.tags.is_empty(), s.sql.is_empty()) {
            (true, true) => None,
            (false, true) => Filter::tags(&s.tags)?,
            (true, false) => Some(Filter::sql(&s.sql)?),
            (false, false) => {
                return Err(CoreError::Invalid(
                    "give tags or an SQL selector, not both".into(),
                ))
            }
        };
        let (_, partitions) = self
            .session
            .consume(ConsumeSpec {
                queue: s.queue,
                group: s.group,
                prefetch: s.prefetch,
                no_ack: s.no_ack,
                start: start_in(s.start),
                exclusive_partitions: s.exclusive_partitions,
                tag: tag.clone(),
                exclusive: false,
                filter: filter.map(std::sync::Arc::new),
                ordered: s.ordered,
                broadcast: s.broadcast,
                retry: s
                    .retry
                    .map(|r| RetryPolicy::new(r.max_attempts, r.backoff_ms, r.consume_timeout_ms)),
            })
            .await?;
        self.consumers.insert(cid, tag.clone());
        self.by_tag.insert(tag, cid);
        Ok(Some(Body::Subscribed(wire::Subscribed {
            consumer_id: cid,
            partitions,
        })))
    }

    fn lookup(&mut self, l: wire::Lookup) -> Result<Option<Body>, CoreError> {
        let by = match l.by {
            wire::LookupBy::Id(id) => Lookup::Id(id),
            wire::LookupBy::Key {
                key,
                begin_ms,
                end_ms,
            } => Lookup::Key {
                key,
                begin_ms,
                end_ms,
            },
            wire::LookupBy::Time {
                queue,
                begin_ms,
                end_ms,
            } => Lookup::Time {
                queue: (!queue.is_empty()).then_some(queue),
                begin_ms,
                end_ms,
            },
        };
        let max = (l.max as usize).clamp(1, 1000);
        let found = self.broker.lookup(&self.session, &by, max)?;
        let messages = found
            .into_iter()
            .map(|m| wire::FoundMessage {
                commitlog_offset: m.commitlog_offset,
                store_ts: m.store_ts,
                born_ts: m.born_ts,
                exchange: m.exchange,
                routing_key: m.routing_key,
                positions: m
                    .queues
                    .into_iter()
                    .map(|(queue, partition, offset)| wire::Route {
                        queue,
                        partition,
                        offset,
                    })
                    .collect(),
                properties: props_out(&m.message.properties),
                body: m.message.body,
            })
            .collect();
        Ok(Some(Body::Found(wire::Found { messages })))
    }

    fn settle(&mut self, ids: &[u64], how: Settle) -> Result<Option<Body>, CoreError> {
        self.session.settle_many(ids, how).map(|()| None)
    }

    fn on_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Delivery(d) => self.deliver(*d),
            SessionEvent::Confirmed { up_to } => {
                while self.pending.front().is_some_and(|p| p.seq() <= up_to) {
                    match self.pending.pop_front() {
                        Some(Pending::One {
                            request_id,
                            routes,
                            duplicate,
                            ..
                        }) => self.conn.push(
                            request_id,
                            wire::Published {
                                results: routes,
                                duplicate,
                            },
                        ),
                        Some(Pending::Batch {
                            request_id, routes, ..
                        }) => self
                            .conn
                            .push(request_id, wire::PublishedBatch { results: routes }),
                        Some(Pending::Half {
                            request_id,
                            transaction_id,
                            ..
                        }) => self
                            .conn
                            .push(request_id, wire::HalfStored { transaction_id }),
                        None => break,
                    }
                }
            }
            SessionEvent::ConfirmFailed { up_to } => {
                while self.pending.front().is_some_and(|p| p.seq() <= up_to) {
                    if let Some(request_id) = self.pending.pop_front().map(|p| p.request_id()) {
                        self.conn.error(
                            request_id,
                            ErrorCode::InternalError,
                            "the store could not persist the message",
                        );
                    }
                }
            }
            SessionEvent::Assignment {
                consumer,
                partitions,
            } => {
                if let Some(&cid) = self.by_tag.get(&*consumer) {
                    self.conn.push(
                        0,
                        wire::Assignment {
                            consumer_id: cid,
                            partitions,
                        },
                    );
                }
            }
            SessionEvent::Cancelled { consumer, reason } => {
                if let Some(cid) = self.by_tag.remove(&*consumer) {
                    self.consumers.remove(&cid);
                    self.conn.push(
                        0,
                        wire::Cancelled {
                            consumer_id: cid,
                            reason,
                        },
                    );
                }
            }
        }
    }

    fn deliver(&mut self, d: Delivery) {
        // Tags of this connection are `native-<id>`: no string map on the delivery path.
        let Some(cid) = d
            .consumer
            .strip_prefix("native-")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|c| self.consumers.contains_key(c))
        else {
            return;
        };
        self.conn.push(
            0,
            wire::Deliver {
                consumer_id: cid,
                delivery_id: d.id,
                queue: d.queue,
                partition: d.partition,
                offset: d.offset,
                redelivered: d.redelivered,
                delivery_count: d.delivery_count,
                store_ts: d.store_ts,
                exchange: d.exchange,
                routing_key: d.routing_key,
                properties: props_out(&d.message.properties),
                body: d.message.body,
            },
        );
    }
}

/// The next check-back for this connection's transaction groups (pending forever without).
async fn next_check(
    rx: &mut Option<tokio::sync::mpsc::UnboundedReceiver<TxCheck>>,
) -> Option<TxCheck> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn routes_out(routed: Vec<crate::core::Routed>) -> Vec<wire::Route> {
    routed
        .into_iter()
        .map(|r| wire::Route {
            queue: r.queue,
            partition: r.partition,
            offset: r.offset,
        })
        .collect()
}

fn binding_in(b: wire::Binding) -> BindingDecl {
    BindingDecl {
        exchange: b.exchange,
        destination: b.destination,
        destination_is_exchange: b.destination_is_exchange,
        routing_key: b.routing_key,
        args: args_in(b.args),
    }
}
