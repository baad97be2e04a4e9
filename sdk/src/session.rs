//! One connection's life after the handshake: a writer and a reader running side by side in
//! the connection task until either fails or the client shuts down.
//!
//! - The writer takes [`Command`]s off the client's queue (plus control frames from the
//!   reader), gives each request the next request id (increasing, never 0), registers who waits
//!   for the answer *before* the frame is written, encodes as many queued frames as are ready
//!   into one buffer and writes it with one call. Consecutive acks of a consumer are merged.
//!   After a heartbeat interval without writing it sends a `Heartbeat`.
//! - The reader decodes frames, hands responses to their waiters by request id (in whatever
//!   order they come), routes pushes (`Deliver`, `Assignment`, `Cancelled`) to consumers by
//!   consumer id, tracks `Flow`, answers the server's `Close`, and declares the connection dead
//!   after two heartbeat intervals without a byte.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use junction_native::{
    encode_with_max, Ack, Body, Decoder, EncodeError, ErrorCode, Frame, Nack, SetPrefetch,
    Unsubscribe, DEFAULT_MAX_FRAME,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use crate::client::ServerInfo;
use crate::connection::{dead_after, lock, Command, Established, Reply, Shared, HELLO_REQUEST_ID};
use crate::consumer::{AckHandle, Delivery};
use crate::error::SdkError;
use crate::registry::ConsumerEvent;

/// Stop adding frames to a write once the buffer holds this much.
const MAX_WRITE_BYTES: usize = 256 * 1024;
/// Stop adding frames to a write after this many commands.
const MAX_WRITE_FRAMES: usize = 4096;
/// Drop waiters whose caller gave up every this many insertions.
const SWEEP_EVERY: u32 = 4096;

/// Who waits for the answer to a request.
enum Waiter {
    Reply {
        reply: Reply,
        /// A producer's window slot, released with the answer.
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// A `Subscribe`: the reader installs the consumer id before any delivery for it is routed.
    /// `reply` is `None` for re-subscriptions after a reconnect.
    Subscribe {
        handle: u64,
        prefetch: u32,
        reply: Option<Reply>,
    },
}

#[derive(Default)]
struct Pending {
    map: HashMap<u32, Waiter>,
    inserts: u32,
}

impl Pending {
    fn insert(&mut self, id: u32, waiter: Waiter) {
        self.inserts = self.inserts.wrapping_add(1);
        if self.inserts.is_multiple_of(SWEEP_EVERY) {
            // Callers that timed out dropped their receivers. Publish confirms keep their window
            // slot until the answer arrives, so they stay.
            self.map.retain(|_, w| match w {
                Waiter::Reply { reply, _permit } => _permit.is_some() || !reply.is_closed(),
                Waiter::Subscribe { .. } => true,
            });
        }
        self.map.insert(id, waiter);
    }
}

/// A frame the reader wants written.
#[allow(clippy::large_enum_variant)] // rare, and short-lived
enum Ctrl {
    /// Write this one-way frame.
    Frame(Body),
    /// The server sent `Close`: write `CloseOk`, then end the session with this reason.
    CloseOk(SdkError),
}

/// What both halves of a session share.
struct Ctx<'a> {
    shared: &'a Shared,
    pending: Mutex<Pending>,
    epoch: u64,
    max_frame: u32,
    ctrl: mpsc::UnboundedSender<Ctrl>,
}

/// Runs a session until it ends; returns why. Every request still waiting for an answer then
/// fails with [`SdkError::ConnectionLost`] ([`SdkError::Closed`] when the client is closing).
pub(crate) async fn run(
    shared: &Shared,
    est: Established,
    rx: &mut mpsc::Receiver<Command>,
    shutdown: &mut watch::Receiver<bool>,
) -> SdkError {
    let epoch = shared.epoch.fetch_add(1, Ordering::SeqCst) + 1;
    let welcome = est.welcome;
    let heartbeat =
        (welcome.heartbeat_ms > 0).then(|| Duration::from_millis(u64::from(welcome.heartbeat_ms)));
    let max_frame = if welcome.max_frame == 0 {
        DEFAULT_MAX_FRAME
    } else {
        welcome.max_frame
    };
    *lock(&shared.server) = Some(ServerInfo::from(&welcome));
    shared.flow_blocked.send_replace(false);
    shared.live_epoch.store(epoch, Ordering::SeqCst);
    shared.connected.send_replace(true);
    tracing::debug!(epoch, session_id = welcome.session_id, "session started");

    let (ctrl_tx, ctrl_rx) = mpsc::unbounded_channel();
    let ctx = Ctx {
        shared,
        pending: Mutex::new(Pending::default()),
        epoch,
        max_frame,
        ctrl: ctrl_tx,
    };
    let (rd, wr) = est.stream.into_split();
    let why = tokio::select! {
        why = read_loop(&ctx, rd, est.buf, dead_after(heartbeat)) => why,
        why = write_loop(&ctx, wr, rx, ctrl_rx, heartbeat) => why,
        _ = shutdown.wait_for(|stop| *stop) => SdkError::Closed,
    };

    shared.live_epoch.store(0, Ordering::SeqCst);
    shared.connected.send_replace(false);
    let waiters: Vec<Waiter> = lock(&ctx.pending).map.drain().map(|(_, w)| w).collect();
    for waiter in waiters {
        match waiter {
            Waiter::Reply { reply, .. }
            | Waiter::Subscribe {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(Err(shared.lost_error()));
            }
            Waiter::Subscribe { reply: None, .. } => {}
        }
    }
    lock(&shared.consumers).session_ended();
    shared.flow_blocked.send_replace(false);
    why
}

async fn read_loop(
    ctx: &Ctx<'_>,
    mut rd: OwnedReadHalf,
    mut buf: BytesMut,
    dead_after: Option<Duration>,
) -> SdkError {
    let mut decoder = Decoder::new(ctx.max_frame);
    loop {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Some(why) = ctx.dispatch(frame) {
                        return why;
                    }
                }
                Ok(None) => break,
                Err(e) => return SdkError::Decode(e),
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(64 * 1024);
        }
        let read = rd.read_buf(&mut buf);
        let n = match dead_after {
            Some(limit) => match tokio::time::timeout(limit, read).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!(?limit, "no data from the server for two heartbeats");
                    return SdkError::Timeout;
                }
            },
            None => read.await,
        };
        match n {
            Ok(0) => return SdkError::ConnectionLost,
            Ok(_) => {}
            Err(e) => return SdkError::Io(e),
        }
    }
}

fn server_error(e: junction_native::ErrorResponse) -> SdkError {
    SdkError::Server {
        code: e.code,
        message: e.message,
    }
}

impl Ctx<'_> {
    /// Handles one frame from the server; `Some` ends the session.
    fn dispatch(&self, frame: Frame) -> Option<SdkError> {
        if frame.request_id != 0 {
            let waiter = lock(&self.pending).map.remove(&frame.request_id);
            match waiter {
                Some(Waiter::Reply { reply, .. }) => {
                    let _ = reply.send(match frame.body {
                        Body::Error(e) => Err(server_error(e)),
                        body => Ok(body),
                    });
                }
                Some(Waiter::Subscribe {
                    handle,
                    prefetch,
                    reply,
                }) => self.on_subscribe_answer(handle, prefetch, reply, frame.body),
                None => match frame.body {
                    Body::Error(e) => tracing::warn!(
                        request_id = frame.request_id,
                        code = %e.code,
                        message = %e.message,
                        "a request without a waiter failed (one-way publish, ack, ...)"
                    ),
                    body => tracing::debug!(
                        request_id = frame.request_id,
                        opcode = ?body.opcode(),
                        "answer nobody waits for"
                    ),
                },
            }
            return None;
        }
        match frame.body {
            Body::Deliver(d) => self.on_deliver(d),
            Body::Assignment(a) => {
                if let Some(entry) = lock(&self.shared.consumers).by_consumer_id(a.consumer_id) {
                    *lock(&entry.partitions) = a.partitions;
                }
            }
            Body::Cancelled(c) => {
                let mut reg = lock(&self.shared.consumers);
                if let Some(entry) = reg.handle_of(c.consumer_id).and_then(|h| reg.remove(h)) {
                    let _ = entry
                        .tx
                        .send(ConsumerEvent::End(SdkError::Cancelled { reason: c.reason }));
                }
            }
            Body::CheckTransaction(c) => {
                if let Some(tx) = lock(&self.shared.tx_groups).get(&c.group) {
                    let _ = tx.send(c);
                }
            }
            Body::Flow(f) => {
                tracing::info!(blocked = f.blocked, reason = %f.reason, "flow control");
                self.shared.flow_blocked.send_replace(f.blocked);
            }
            Body::Heartbeat | Body::CloseOk => {}
            Body::Close(c) => {
                tracing::info!(code = c.code, reason = %c.reason, "the server is closing the connection");
                let why = SdkError::Server {
                    code: ErrorCode::from_code(c.code),
                    message: c.reason,
                };
                let _ = self.ctrl.send(Ctrl::CloseOk(why));
            }
            Body::Error(e) => return Some(server_error(e)),
            other => tracing::debug!(opcode = ?other.opcode(), "unexpected push ignored"),
        }
        None
    }

    fn on_deliver(&self, d: junction_native::Deliver) {
        let mut reg = lock(&self.shared.consumers);
        let Some(entry) = reg.by_consumer_id(d.consumer_id) else {
            tracing::debug!(
                consumer_id = d.consumer_id,
                "delivery for an unknown consumer"
            );
            return;
        };
        let acker = AckHandle {
            tx: self.shared.cmd_tx.clone(),
            epoch: self.epoch,
            consumer_id: d.consumer_id,
            delivery_id: d.delivery_id,
            no_ack: entry.subscribe.no_ack,
        };
        let _ = entry
            .tx
            .send(ConsumerEvent::Delivery(Delivery::new(d, acker)));
    }

    fn on_subscribe_answer(&self, handle: u64, sent: u32, reply: Option<Reply>, body: Body) {
        match body {
            Body::Subscribed(s) => {
                let mut reg = lock(&self.shared.consumers);
                let installed =
                    reg.install(handle, self.epoch, s.consumer_id, s.partitions.clone());
                let wanted = reg.get_mut(handle).map(|e| e.subscribe.prefetch);
                drop(reg);
                if !installed {
                    // The consumer was closed while subscribing.
                    let _ = self.ctrl.send(Ctrl::Frame(
                        Unsubscribe {
                            consumer_id: s.consumer_id,
                        }
                        .into(),
                    ));
                    if let Some(reply) = reply {
                        let _ = reply.send(Err(SdkError::Closed));
                    }
                    return;
                }
                if let Some(prefetch) = wanted.filter(|p| *p != sent) {
                    // `set_prefetch` ran while the subscription was on its way.
                    let _ = self.ctrl.send(Ctrl::Frame(
                        SetPrefetch {
                            consumer_id: s.consumer_id,
                            prefetch,
                        }
                        .into(),
                    ));
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(Body::Subscribed(s)));
                }
            }
            other => {
                let err = match other {
                    Body::Error(e) => server_error(e),
                    other => SdkError::unexpected("Subscribed", &other),
                };
                match reply {
                    Some(reply) => {
                        let _ = reply.send(Err(err));
                    }
                    None => {
                        tracing::warn!(error = %err, "re-subscription refused; ending the consumer");
                        if let Some(entry) = lock(&self.shared.consumers).remove(handle) {
                            let _ = entry.tx.send(ConsumerEvent::End(err));
                        }
                    }
                }
            }
        }
    }
}

/// The frames of one socket write.
struct Batch {
    buf: BytesMut,
    next_id: u32,
    max_frame: u32,
    /// Acks not yet encoded: (consumer id, delivery ids).
    acks: Option<(u32, Vec<u64>)>,
    /// End the session after this write.
    end: Option<SdkError>,
}

impl Batch {
    fn next_request_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        if self.next_id == 0 {
            self.next_id = 1;
        }
        id
    }

    /// Encodes a frame with the next request id; on error nothing is added.
    fn encode(&mut self, body: Body) -> Result<u32, EncodeError> {
        self.flush_acks();
        self.encode_raw(body)
    }

    fn encode_raw(&mut self, body: Body) -> Result<u32, EncodeError> {
        let id = self.next_request_id();
        encode_with_max(&Frame::new(id, body), self.max_frame, &mut self.buf)?;
        Ok(id)
    }

    fn one_way(&mut self, body: Body) {
        let opcode = body.opcode();
        if let Err(e) = self.encode(body) {
            tracing::warn!(?opcode, error = %e, "cannot encode a one-way frame; dropped");
        }
    }

    fn ack(&mut self, consumer_id: u32, ids: Vec<u64>) {
        match &mut self.acks {
            Some((c, acc)) if *c == consumer_id => acc.extend(ids),
            _ => {
                self.flush_acks();
                self.acks = Some((consumer_id, ids));
            }
        }
    }

    fn flush_acks(&mut self) {
        if let Some((consumer_id, delivery_ids)) = self.acks.take() {
            let ack = Ack {
                consumer_id,
                delivery_ids,
            };
            if let Err(e) = self.encode_raw(ack.into()) {
                tracing::warn!(error = %e, "cannot encode an ack; dropped");
            }
        }
    }
}

impl Ctx<'_> {
    fn stale(&self, epoch: Option<u64>) -> bool {
        epoch.is_some_and(|e| e != self.epoch)
    }

    fn request(&self, b: &mut Batch, body: Body, waiter: Waiter) {
        match b.encode(body) {
            Ok(id) => lock(&self.pending).insert(id, waiter),
            Err(e) => match waiter {
                Waiter::Reply { reply, .. }
                | Waiter::Subscribe {
                    reply: Some(reply), ..
                } => {
                    let _ = reply.send(Err(e.into()));
                }
                Waiter::Subscribe { reply: None, .. } => {
                    tracing::warn!(error = %e, "cannot encode a re-subscription");
                }
            },
        }
    }

    fn command(&self, b: &mut Batch, cmd: Command) {
        match cmd {
            Command::Request {
                body,
                reply,
                epoch,
                permit,
            } => {
                if self.stale(epoch) {
                    // Its session is gone, and with it what the request would have changed.
                    let _ = reply.send(Ok(Body::Ok));
                } else {
                    let waiter = Waiter::Reply {
                        reply,
                        _permit: permit,
                    };
                    self.request(b, body, waiter);
                }
            }
            Command::OneWay { body, epoch } => {
                if !self.stale(epoch) {
                    b.one_way(body);
                }
            }
            Command::Ack {
                epoch,
                consumer_id,
                delivery_ids,
            } => {
                // Delivery ids of a dead session mean nothing to the new one: drop them.
                if epoch == self.epoch {
                    b.ack(consumer_id, delivery_ids);
                }
            }
            Command::Nack {
                epoch,
                consumer_id,
                delivery_ids,
                requeue,
            } => {
                if epoch == self.epoch {
                    b.one_way(
                        Nack {
                            consumer_id,
                            delivery_ids,
                            requeue,
                        }
                        .into(),
                    );
                }
            }
            Command::SetPrefetch {
                handle,
                prefetch,
                reply,
            } => {
                let current = lock(&self.shared.consumers)
                    .get_mut(handle)
                    .and_then(|e| e.current)
                    .filter(|(epoch, _)| *epoch == self.epoch);
                match current {
                    Some((_, consumer_id)) => {
                        let body = SetPrefetch {
                            consumer_id,
                            prefetch,
                        }
                        .into();
                        let waiter = Waiter::Reply {
                            reply,
                            _permit: None,
                        };
                        self.request(b, body, waiter);
                    }
                    // Not subscribed on this session yet: the (re-)subscription carries it.
                    None => {
                        let _ = reply.send(Ok(Body::Ok));
                    }
                }
            }
            Command::Subscribe {
                handle,
                subscribe,
                reply,
            } => {
                let waiter = Waiter::Subscribe {
                    handle,
                    prefetch: subscribe.prefetch,
                    reply: Some(reply),
                };
                self.request(b, subscribe.into(), waiter);
            }
        }
    }
}

async fn idle(heartbeat: Option<Duration>) {
    match heartbeat {
        Some(h) => tokio::time::sleep(h).await,
        None => std::future::pending().await,
    }
}

enum Next {
    Cmd(Command),
    Ctrl(Ctrl),
    Heartbeat,
}

async fn write_loop(
    ctx: &Ctx<'_>,
    mut wr: OwnedWriteHalf,
    rx: &mut mpsc::Receiver<Command>,
    mut ctrl: mpsc::UnboundedReceiver<Ctrl>,
    heartbeat: Option<Duration>,
) -> SdkError {
    let mut b = Batch {
        buf: BytesMut::with_capacity(64 * 1024),
        next_id: HELLO_REQUEST_ID + 1,
        max_frame: ctx.max_frame,
        acks: None,
        end: None,
    };
    // Consumers of the previous sessions come first, before anything queued meanwhile.
    let resubscribe = lock(&ctx.shared.consumers).resubscriptions();
    if !resubscribe.is_empty() {
        tracing::info!(
            consumers = resubscribe.len(),
            "re-subscribing after reconnect"
        );
    }
    for (handle, sub) in resubscribe {
        let waiter = Waiter::Subscribe {
            handle,
            prefetch: sub.prefetch,
            reply: None,
        };
        ctx.request(&mut b, sub.into(), waiter);
    }
    // Transaction producers answer check-backs on the new session too.
    let groups: Vec<String> = lock(&ctx.shared.tx_groups).keys().cloned().collect();
    for group in groups {
        b.one_way(junction_native::RegisterTransactionGroup { group }.into());
    }
    loop {
        if !b.buf.is_empty() {
            if let Err(e) = wr.write_all(&b.buf).await {
                return SdkError::Io(e);
            }
            b.buf.clear();
            if b.buf.capacity() > 4 * MAX_WRITE_BYTES {
                b.buf = BytesMut::with_capacity(64 * 1024);
            }
        }
        if let Some(why) = b.end.take() {
            let _ = wr.shutdown().await;
            return why;
        }
        let next = tokio::select! {
            biased;
            c = ctrl.recv() => match c {
                Some(c) => Next::Ctrl(c),
                None => return SdkError::ConnectionLost,
            },
            c = rx.recv() => match c {
                Some(c) => Next::Cmd(c),
                None => return SdkError::Closed,
            },
            _ = idle(heartbeat) => Next::Heartbeat,
        };
        let mut next = Some(next);
        let mut count = 0;
        while let Some(item) = next.take() {
            match item {
                Next::Cmd(cmd) => ctx.command(&mut b, cmd),
                Next::Ctrl(Ctrl::Frame(body)) => b.one_way(body),
                Next::Ctrl(Ctrl::CloseOk(why)) => {
                    b.flush_acks();
                    // CloseOk answers the server's request id 0.
                    if let Err(e) =
                        encode_with_max(&Frame::push(Body::CloseOk), b.max_frame, &mut b.buf)
                    {
                        tracing::warn!(error = %e, "cannot encode CloseOk");
                    }
                    b.end = Some(why);
                    break;
                }
                Next::Heartbeat => {
                    if let Err(e) =
                        encode_with_max(&Frame::push(Body::Heartbeat), b.max_frame, &mut b.buf)
                    {
                        tracing::warn!(error = %e, "cannot encode a heartbeat");
                    }
                }
            }
            count += 1;
            if b.buf.len() >= MAX_WRITE_BYTES || count >= MAX_WRITE_FRAMES {
                break;
            }
            next = match ctrl.try_recv() {
                Ok(c) => Some(Next::Ctrl(c)),
                Err(_) => rx.try_recv().ok().map(Next::Cmd),
            };
        }
        b.flush_acks();
    }
}
