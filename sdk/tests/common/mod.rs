//! A fake Junction broker speaking the native protocol, for SDK tests: it accepts `Hello`,
//! answers requests the way the broker would (with a few knobs), records every frame it
//! receives, and lets a test push frames or drop connections.

#![allow(dead_code, clippy::large_enum_variant)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use junction_native::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

/// How long a test waits for anything before failing.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `fut`, failing the test after [`WAIT`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Knobs of the fake server.
#[derive(Clone, Debug)]
pub struct Behavior {
    /// `Hello` with this user name is refused with `AccessRefused`.
    pub reject_user: String,
    /// Confirms are sent this long after the publish (in publish order).
    pub confirm_delay: Duration,
    /// Answer `QueryOffset` requests in reverse order, in groups of this many (0 = at once).
    pub reverse_offsets_in_groups: usize,
    /// Deliveries pushed right after each `Subscribe` is answered.
    pub deliveries_on_subscribe: u32,
    /// Send heartbeats at half the negotiated interval.
    pub server_heartbeats: bool,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            reject_user: "bad".into(),
            confirm_delay: Duration::ZERO,
            reverse_offsets_in_groups: 0,
            deliveries_on_subscribe: 0,
            server_heartbeats: true,
        }
    }
}

enum Out {
    Frame(Frame),
    /// Close the connection after what is queued.
    Close,
}

struct State {
    behavior: Behavior,
    conns: Mutex<Vec<mpsc::UnboundedSender<Out>>>,
    offsets: Mutex<HashMap<String, u64>>,
    inflight: AtomicI64,
    max_inflight: AtomicI64,
    frames: mpsc::UnboundedSender<(usize, Frame)>,
    /// Close new connections at once (the broker is "down").
    refuse: AtomicBool,
    refused: AtomicU32,
}

impl State {
    fn next_offset(&self, queue: &str) -> u64 {
        let mut offsets = self.offsets.lock().unwrap();
        let o = offsets.entry(queue.to_string()).or_insert(0);
        *o += 1;
        *o - 1
    }
}

/// The fake server; stops when dropped (with the test's runtime).
pub struct FakeServer {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<State>,
    frames: tokio::sync::Mutex<mpsc::UnboundedReceiver<(usize, Frame)>>,
}

impl FakeServer {
    /// Starts a server with default behavior.
    pub async fn start() -> FakeServer {
        FakeServer::with(Behavior::default()).await
    }

    /// Starts a server with this behavior.
    pub async fn with(behavior: Behavior) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            behavior,
            conns: Mutex::new(Vec::new()),
            offsets: Mutex::new(HashMap::new()),
            inflight: AtomicI64::new(0),
            max_inflight: AtomicI64::new(0),
            frames: tx,
            refuse: AtomicBool::new(false),
            refused: AtomicU32::new(0),
        });
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if s.refuse.load(Ordering::SeqCst) {
                    s.refused.fetch_add(1, Ordering::SeqCst);
                    drop(stream);
                    continue;
                }
                let (out_tx, out_rx) = mpsc::unbounded_channel();
                let conn = {
                    let mut conns = s.conns.lock().unwrap();
                    conns.push(out_tx.clone());
                    conns.len()
                };
                tokio::spawn(serve(s.clone(), conn, stream, out_tx, out_rx));
            }
        });
        FakeServer {
            addr,
            state,
            frames: tokio::sync::Mutex::new(rx),
        }
    }

    /// Client options for this server, tuned for tests: no heartbeats, fast reconnects.
    pub fn options(&self) -> junction_sdk::ClientOptions {
        junction_sdk::ClientOptions::new(self.addr.to_string())
            .heartbeat(Duration::ZERO)
            .request_timeout(Duration::from_secs(5))
            .reconnect(junction_sdk::ReconnectOptions {
                initial_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(100),
                ..Default::default()
            })
    }

    /// Makes new connections fail (closed at once) or work again.
    pub fn refuse_connections(&self, refuse: bool) {
        self.state.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Connections refused so far.
    pub fn refused(&self) -> u32 {
        self.state.refused.load(Ordering::SeqCst)
    }

    /// Connections accepted so far (they are numbered from 1).
    pub fn connections(&self) -> usize {
        self.state.conns.lock().unwrap().len()
    }

    /// Pushes a frame with request id 0 on connection `conn`.
    pub fn push(&self, conn: usize, body: impl Into<Body>) {
        let conns = self.state.conns.lock().unwrap();
        let _ = conns[conn - 1].send(Out::Frame(Frame::push(body)));
    }

    /// Drops connection `conn` (after what is already queued for it).
    pub fn drop_connection(&self, conn: usize) {
        let conns = self.state.conns.lock().unwrap();
        let _ = conns[conn - 1].send(Out::Close);
    }

    /// The most publish confirms that were outstanding at once.
    pub fn max_inflight(&self) -> i64 {
        self.state.max_inflight.load(Ordering::SeqCst)
    }

    /// The next received frame (and its connection) for which `pick` returns `Some`; frames
    /// before it are discarded.
    pub async fn expect<T>(
        &self,
        what: &str,
        mut pick: impl FnMut(usize, &Frame) -> Option<T>,
    ) -> T {
        let mut frames = self.frames.lock().await;
        within(what, async {
            loop {
                let (conn, frame) = frames.recv().await.expect("server gone");
                if let Some(v) = pick(conn, &frame) {
                    return v;
                }
            }
        })
        .await
    }

    /// Every frame received so far, without waiting.
    pub async fn drain(&self) -> Vec<(usize, Frame)> {
        let mut frames = self.frames.lock().await;
        let mut out = Vec::new();
        while let Ok(f) = frames.try_recv() {
            out.push(f);
        }
        out
    }
}

async fn serve(
    state: Arc<State>,
    conn: usize,
    stream: TcpStream,
    out: mpsc::UnboundedSender<Out>,
    mut out_rx: mpsc::UnboundedReceiver<Out>,
) {
    let (mut rd, mut wr) = stream.into_split();
    let closed = Arc::new(Notify::new());
    let closed_w = closed.clone();
    tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(item) = out_rx.recv().await {
            let mut stop = false;
            let mut item = Some(item);
            while let Some(i) = item.take() {
                match i {
                    Out::Frame(f) => encode(&f, &mut buf).unwrap(),
                    Out::Close => {
                        stop = true;
                        break;
                    }
                }
                item = out_rx.try_recv().ok();
            }
            if !buf.is_empty() && wr.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
            if stop {
                break;
            }
        }
        let _ = wr.shutdown().await;
        closed_w.notify_one();
    });

    // Confirms leave in publish order, each `confirm_delay` after its publish.
    let (confirm_tx, mut confirm_rx) = mpsc::unbounded_channel::<(Instant, Frame)>();
    let confirm_out = out.clone();
    let st = state.clone();
    tokio::spawn(async move {
        while let Some((at, frame)) = confirm_rx.recv().await {
            tokio::time::sleep_until(at).await;
            st.inflight.fetch_sub(1, Ordering::SeqCst);
            if confirm_out.send(Out::Frame(frame)).is_err() {
                break;
            }
        }
    });

    let mut c = Conn {
        state,
        conn,
        out,
        confirm: confirm_tx,
        next_consumer: AtomicU32::new(1),
        next_delivery: 1,
        held_offsets: Vec::new(),
        heartbeat: None,
    };
    let mut decoder = Decoder::default();
    let mut buf = BytesMut::new();
    loop {
        while let Ok(Some(frame)) = decoder.decode(&mut buf) {
            let _ = c.state.frames.send((conn, frame.clone()));
            if !c.handle(frame) {
                let _ = c.out.send(Out::Close);
            }
        }
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
            _ = closed.notified() => break,
        }
    }
    if let Some(h) = c.heartbeat.take() {
        h.abort();
    }
}

struct Conn {
    state: Arc<State>,
    conn: usize,
    out: mpsc::UnboundedSender<Out>,
    confirm: mpsc::UnboundedSender<(Instant, Frame)>,
    next_consumer: AtomicU32,
    next_delivery: u64,
    held_offsets: Vec<(u32, QueryOffset)>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Conn {
    fn send(&self, request_id: u32, body: impl Into<Body>) {
        let _ = self.out.send(Out::Frame(Frame::new(request_id, body)));
    }

    fn error(&self, request_id: u32, code: ErrorCode, message: &str) {
        self.send(request_id, ErrorResponse::new(code, message));
    }

    /// Handles one frame; false closes the connection.
    fn handle(&mut self, frame: Frame) -> bool {
        let id = frame.request_id;
        match frame.body {
            Body::Hello(h) => {
                if h.username == self.state.behavior.reject_user {
                    self.error(id, ErrorCode::AccessRefused, "bad credentials");
                    return false;
                }
                self.send(
                    id,
                    Welcome {
                        server: "fake".into(),
                        version: "0".into(),
                        session_id: self.conn as u64,
                        heartbeat_ms: h.heartbeat_ms,
                        max_frame: negotiate_max_frame(h.max_frame, DEFAULT_MAX_FRAME),
                    },
                );
                if h.heartbeat_ms > 0 && self.state.behavior.server_heartbeats {
                    let out = self.out.clone();
                    let every = Duration::from_millis(u64::from(h.heartbeat_ms) / 2);
                    self.heartbeat = Some(tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(every).await;
                            if out.send(Out::Frame(Frame::push(Body::Heartbeat))).is_err() {
                                break;
                            }
                        }
                    }));
                }
            }
            Body::DeclareExchange(d) if d.name == "forbidden" => {
                self.error(id, ErrorCode::AccessRefused, "no configure permission")
            }
            Body::DeclareExchange(_)
            | Body::DeleteExchange(_)
            | Body::Bind(_)
            | Body::Unbind(_)
            | Body::SetPrefetch(_)
            | Body::Unsubscribe(_) => self.send(id, Body::Ok),
            Body::DeclareQueue(q) => {
                if q.passive && q.name == "missing" {
                    self.error(id, ErrorCode::NotFound, "no queue 'missing'");
                } else {
                    let name = if q.name.is_empty() {
                        "amq.gen-1".to_string()
                    } else {
                        q.name
                    };
                    self.send(
                        id,
                        QueueDeclared {
                            name,
                            partitions: q.partitions.max(1),
                            messages: 0,
                            consumers: 0,
                        },
                    );
                }
            }
            Body::DeleteQueue(_) | Body::PurgeQueue(_) => self.send(id, Deleted { messages: 3 }),
            Body::Publish(p) => self.publish(id, p),
            Body::PublishBatch(b) => {
                let results = b
                    .messages
                    .iter()
                    .map(|m| {
                        let rk = m.routing_key.as_deref().unwrap_or(&b.routing_key);
                        self.route(rk)
                    })
                    .collect();
                self.send(id, PublishedBatch { results });
            }
            Body::Subscribe(s) => {
                let consumer_id = self.next_consumer.fetch_add(1, Ordering::SeqCst);
                self.send(
                    id,
                    Subscribed {
                        consumer_id,
                        partitions: vec![0, 1],
                    },
                );
                for _ in 0..self.state.behavior.deliveries_on_subscribe {
                    self.deliver(consumer_id, &s.queue);
                }
            }
            Body::QueryOffset(q) => {
                if q.time_ms < 0 {
                    return true; // never answered
                }
                let groups = self.state.behavior.reverse_offsets_in_groups;
                if groups == 0 {
                    self.send(
                        id,
                        Offset {
                            offset: q.time_ms as u64 + 1000,
                        },
                    );
                } else {
                    self.held_offsets.push((id, q));
                    if self.held_offsets.len() == groups {
                        for (id, q) in self.held_offsets.drain(..).rev().collect::<Vec<_>>() {
                            self.send(
                                id,
                                Offset {
                                    offset: q.time_ms as u64 + 1000,
                                },
                            );
                        }
                    }
                }
            }
            Body::Pull(p) => {
                let n = u64::from(p.max.min(3));
                let messages = (0..n)
                    .map(|i| PulledMessage {
                        offset: p.offset + i,
                        store_ts: 1,
                        properties: Properties::default(),
                        body: Bytes::from(format!("pulled-{}", p.offset + i)),
                    })
                    .collect();
                self.send(
                    id,
                    Pulled {
                        messages,
                        next_offset: p.offset + n,
                        min_offset: 0,
                        end_offset: 100,
                    },
                );
            }
            Body::Close(_) => {
                self.send(id, Body::CloseOk);
                return false;
            }
            Body::CloseOk => return false,
            Body::Heartbeat | Body::Ack(_) | Body::Nack(_) => {}
            other => {
                self.error(
                    0,
                    ErrorCode::CommandInvalid,
                    &format!("{:?}", other.opcode()),
                );
                return false;
            }
        }
        true
    }

    fn route(&self, routing_key: &str) -> Vec<Route> {
        if routing_key.starts_with("nowhere") {
            return Vec::new();
        }
        vec![Route {
            queue: routing_key.to_string(),
            partition: 0,
            offset: self.state.next_offset(routing_key),
        }]
    }

    fn publish(&mut self, id: u32, p: Publish) {
        if p.exchange == "forbidden" {
            return self.error(id, ErrorCode::AccessRefused, "no write permission");
        }
        let routes = self.route(&p.routing_key);
        if routes.is_empty() && p.mandatory {
            return self.send(
                id,
                Returned {
                    reply_code: ErrorCode::NoRoute.code(),
                    reply_text: "NO_ROUTE".into(),
                },
            );
        }
        if p.confirm {
            let now = self.state.inflight.fetch_add(1, Ordering::SeqCst) + 1;
            self.state.max_inflight.fetch_max(now, Ordering::SeqCst);
            let at = Instant::now() + self.state.behavior.confirm_delay;
            let frame = Frame::new(
                id,
                Published {
                    results: routes,
                    duplicate: false,
                },
            );
            let _ = self.confirm.send((at, frame));
        }
    }

    fn deliver(&mut self, consumer_id: u32, queue: &str) {
        let offset = self.state.next_offset(queue);
        let delivery_id = self.next_delivery;
        self.next_delivery += 1;
        self.send(
            0,
            Deliver {
                consumer_id,
                delivery_id,
                queue: queue.to_string(),
                partition: 0,
                offset,
                redelivered: false,
                delivery_count: 1,
                store_ts: 42,
                exchange: String::new(),
                routing_key: queue.to_string(),
                properties: Properties {
                    sharding_key: Some("k".into()),
                    headers: vec![("h".into(), Bytes::from_static(b"v"))],
                    ..Default::default()
                },
                body: Bytes::from(format!("{queue}-{offset}")),
            },
        );
    }
}
