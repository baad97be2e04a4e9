//! One AMQP connection: the handshake, then a loop `select!`ing over the socket, the channels'
//! output, the heartbeat / alarm timer and shutdown.
//!
//! Each open channel is a task ([`super::channel::run`]) with its own core session; this task
//! decodes and reassembles frames, routes them to the channels, writes what they produce, and
//! handles channel 0 (connection methods, heartbeats, `connection.blocked`).
//!
//! Resource alarms, as RabbitMQ handles them: a connection that publishes while an alarm is
//! on is *blocked*: it is told `connection.blocked` (if it announced the capability) and not
//! read from until the alarm clears, then told `connection.unblocked` and read again. The
//! publish that blocked it waits in its channel and is stored (and confirmed) then. A
//! connection that only consumes is never blocked, so its consumers keep acknowledging.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The accepted connection (TLS or not), its bytes counted for its listener.
type Stream = crate::gateway::metered::Metered<crate::tls::Stream>;
use bytes::BytesMut;
use junction_amqp::amq_protocol::protocol::{channel, connection, AMQPClass};
use junction_amqp::amq_protocol::types::{AMQPValue, FieldTable};
use junction_amqp::{
    check_client_method, connection_close_ok, encode_method, parse_protocol_header,
    reply_code as rc, Assembler, Event, Frame, FrameDecoder, HeaderCheck, HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::channel::{run as run_channel, ChanCtx, ChanIn, Out};
use super::error::AmqpError;
use super::Settings;
use crate::core::{Broker, Credential, Session};

/// Forwarded-but-unhandled inputs plus unconfirmed publishes above which reading stops.
const MAX_INFLIGHT: usize = 16_384;

pub(super) struct Conn {
    stream: Stream,
    peer: SocketAddr,
    rbuf: crate::gateway::readbuf::ReadBuf,
    wbuf: BytesMut,
    decoder: FrameDecoder,
    last_send: Instant,
}

impl Conn {
    fn method(&mut self, channel: u16, m: &AMQPClass) {
        if let Err(e) = encode_method(channel, m, &mut self.wbuf) {
            tracing::warn!(peer = %self.peer, error = %e, "method could not be encoded");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            self.last_send = Instant::now();
        }
        Ok(())
    }

    /// The next frame (heartbeats included); `Ok(None)` at EOF.
    async fn frame(&mut self) -> Result<Option<Frame>, AmqpError> {
        loop {
            if let Some(f) = self
                .decoder
                .decode(&mut self.rbuf)
                .map_err(|e| AmqpError::frame(&e))?
            {
                return Ok(Some(f));
            }
            match self.rbuf.read_from(&mut self.stream).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    /// The next connection method on channel 0, skipping heartbeats.
    async fn method_in(&mut self) -> Result<Option<connection::AMQPMethod>, AmqpError> {
        loop {
            let Some(f) = self.frame().await? else {
                return Ok(None);
            };
            match f.payload {
                junction_amqp::FramePayload::Heartbeat => continue,
                junction_amqp::FramePayload::Method(AMQPClass::Connection(m)) if f.channel == 0 => {
                    return Ok(Some(m))
                }
                _ => {
                    return Err(AmqpError::new(
                        rc::UNEXPECTED_FRAME,
                        "UNEXPECTED_FRAME - expected a connection method during the handshake",
                        0,
                        0,
                    ))
                }
            }
        }
    }

    /// Sends `connection.close` and waits briefly for close-ok.
    async fn close(&mut self, e: &AmqpError) {
        self.method(0, &e.connection_close());
        if self.flush().await.is_err() {
            return;
        }
        let wait = async {
            loop {
                match self.frame().await {
                    Ok(Some(Frame {
                        payload:
                            junction_amqp::FramePayload::Method(AMQPClass::Connection(
                                connection::AMQPMethod::CloseOk(_),
                            )),
                        ..
                    }))
                    | Ok(None)
                    | Err(_) => return,
                    Ok(Some(_)) => {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), wait).await;
    }
}

/// What the handshake settled.
struct Opened {
    root: Session,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    blocked_cap: bool,
}

/// Serves one AMQP connection until it closes.
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
        decoder: FrameDecoder::default(),
        last_send: Instant::now(),
    };
    let hs = tokio::time::timeout(
        settings.handshake_timeout,
        handshake(&mut conn, &broker, &settings),
    )
    .await;
    let opened = match hs {
        Ok(Ok(Some(o))) => o,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::info!(peer = %peer, error = %e, "amqp handshake refused");
            conn.close(&e).await;
            return;
        }
        Err(_) => {
            tracing::info!(peer = %peer, "amqp handshake timed out");
            return;
        }
    };
    let span = tracing::info_span!("conn", protocol = "amqp", peer = %peer, user = %opened.root.info().user);
    async move {
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let mut c = Connection {
            conn,
            broker,
            ctx: ChanCtx {
                frame_max: opened.frame_max,
                inflight: Arc::new(AtomicUsize::new(0)),
            },
            root: opened.root,
            max_message_size: settings.max_message_size,
            channels: HashMap::new(),
            tasks: Vec::new(),
            out_tx,
            out_rx,
            channel_max: opened.channel_max,
            heartbeat: opened.heartbeat,
            blocked_cap: opened.blocked_cap,
            blocked: false,
            blocked_sent: false,
            last_recv: Instant::now(),
            done: false,
        };
        c.conn.decoder = FrameDecoder::new(opened.frame_max);
        tracing::debug!("amqp connection open");
        c.run(shutdown).await;
        c.finish().await;
        tracing::debug!("amqp connection closed");
    }
    .instrument(span)
    .await;
}

/// Reads the protocol header: `Ok(true)` for 0-9-1; anything else is answered with the
/// 0-9-1 header and the socket is closed (`Ok(false)`, as at EOF).
async fn protocol_header(conn: &mut Conn) -> bool {
    loop {
        match parse_protocol_header(&conn.rbuf) {
            HeaderCheck::Supported => {
                let _ = conn.rbuf.split_to(junction_amqp::PROTOCOL_HEADER_LEN);
                return true;
            }
            HeaderCheck::Incomplete => match conn.rbuf.read_from(&mut conn.stream).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            },
            HeaderCheck::Unsupported { .. } => {
                tracing::info!(peer = %conn.peer, "not an AMQP 0-9-1 protocol header");
                let _ = conn.stream.write_all(&PROTOCOL_HEADER).await;
                let _ = conn.stream.shutdown().await;
                return false;
            }
        }
    }
}

async fn handshake(
    conn: &mut Conn,
    broker: &Broker,
    settings: &Settings,
) -> Result<Option<Opened>, AmqpError> {
    if !protocol_header(conn).await {
        return Ok(None);
    }
    let version = env!("CARGO_PKG_VERSION");
    // EXTERNAL (the verified client certificate names the user) is offered only to clients
    // that presented one, first, as RabbitMQ's rabbitmq_auth_mechanism_ssl does.
    let mechanisms = match settings.cert_user {
        Some(_) => format!("EXTERNAL {}", junction_amqp::MECHANISMS),
        None => junction_amqp::MECHANISMS.to_string(),
    };
    conn.method(0, &junction_amqp::connection_start(version, &mechanisms));
    conn.flush().await.map_err(|_| io_closed())?;
    let Some(m) = conn.method_in().await? else {
        return Ok(None);
    };
    let connection::AMQPMethod::StartOk(start_ok) = m else {
        return Err(unexpected("connection.start-ok"));
    };
    let (user, password) = match (start_ok.mechanism.as_str(), &settings.cert_user) {
        ("EXTERNAL", Some(cn)) => (cn.clone(), None),
        _ => {
            let (u, p) = credentials(&start_ok)?;
            (u, Some(p))
        }
    };
    let credential = match &password {
        Some(p) => Credential::Password(p),
        None => Credential::Certificate,
    };
    // Refused logins are closed right after start-ok (authentication_failure_close).
    broker
        .authenticate_with(&user, credential, Some(conn.peer), "amqp")
        .map_err(|_| auth_refused(start_ok.mechanism.as_str()))?;
    crate::gateway::handshakes::logged_in();
    let Some(tune) = tune(conn, settings).await? else {
        return Ok(None);
    };
    let Some(m) = conn.method_in().await? else {
        return Ok(None);
    };
    let connection::AMQPMethod::Open(open) = m else {
        return Err(unexpected("connection.open"));
    };
    let vhost = open.virtual_host.as_str();
    let client_id = client_name(&start_ok.client_properties);
    let root = broker
        .connect_with(
            &user,
            credential,
            vhost,
            Some(conn.peer),
            "amqp",
            &client_id,
        )
        .map_err(|e| vhost_refused(&e, vhost, &user))?;
    conn.method(
        0,
        &AMQPClass::Connection(connection::AMQPMethod::OpenOk(connection::OpenOk {})),
    );
    conn.flush().await.map_err(|_| io_closed())?;
    Ok(Some(Opened {
        root,
        frame_max: tune.frame_max,
        channel_max: tune.channel_max,
        heartbeat: tune.heartbeat,
        blocked_cap: capability(&start_ok.client_properties, "connection.blocked"),
    }))
}

/// connection.tune / tune-ok: the negotiated limits (the client's frame-max is checked).
async fn tune(
    conn: &mut Conn,
    settings: &Settings,
) -> Result<Option<connection::TuneOk>, AmqpError> {
    conn.method(
        0,
        &junction_amqp::connection_tune(
            settings.channel_max,
            settings.frame_max,
            settings.heartbeat_s,
        ),
    );
    conn.flush().await.map_err(|_| io_closed())?;
    let Some(m) = conn.method_in().await? else {
        return Ok(None);
    };
    let connection::AMQPMethod::TuneOk(mut tune) = m else {
        return Err(unexpected("connection.tune-ok"));
    };
    tune.frame_max = match tune.frame_max {
        0 => settings.frame_max,
        n if n < 4096 || n > settings.frame_max => {
            return Err(AmqpError::new(
                rc::NOT_ALLOWED,
                format!(
                    "NOT_ALLOWED - frame_max={n} outside [4096, {}]",
                    settings.frame_max
                ),
                10,
                31,
            ))
        }
        n => n,
    };
    tune.channel_max = match tune.channel_max {
        0 => settings.channel_max,
        n => n.min(settings.channel_max),
    };
    conn.decoder = FrameDecoder::new(tune.frame_max);
    Ok(Some(tune))
}

/// A refused login: 403, as RabbitMQ's authentication_failure_close.
fn auth_refused(mechanism: &str) -> AmqpError {
    AmqpError::new(
        rc::ACCESS_REFUSED,
        format!(
            "ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. \
             For details see the broker logfile."
        ),
        0,
        0,
    )
}

/// The vhost refused to an authenticated user (unknown, or no permissions): 530.
fn vhost_refused(e: &crate::core::CoreError, vhost: &str, user: &str) -> AmqpError {
    tracing::info!(error = %e, "amqp vhost refused");
    let why = match e {
        crate::core::CoreError::ResourceLimit(why) => format!(": {why}"),
        _ => String::new(),
    };
    AmqpError::new(
        rc::NOT_ALLOWED,
        format!("NOT_ALLOWED - access to vhost '{vhost}' refused for user '{user}'{why}"),
        10,
        40,
    )
}

fn io_closed() -> AmqpError {
    AmqpError::new(rc::CONNECTION_FORCED, "socket closed", 0, 0)
}

fn unexpected(what: &str) -> AmqpError {
    AmqpError::new(
        rc::COMMAND_INVALID,
        format!("COMMAND_INVALID - expected {what}"),
        10,
        0,
    )
}

fn credentials(s: &connection::StartOk) -> Result<(String, String), AmqpError> {
    let r = match s.mechanism.as_str() {
        "PLAIN" => junction_amqp::parse_plain(s.response.as_bytes()),
        "AMQPLAIN" => junction_amqp::parse_amqplain(s.response.as_bytes()),
        other => {
            return Err(AmqpError::new(
                rc::COMMAND_INVALID,
                format!("COMMAND_INVALID - unknown authentication mechanism '{other}'"),
                10,
                11,
            ))
        }
    };
    r.map_err(|e| AmqpError::new(rc::ACCESS_REFUSED, format!("ACCESS_REFUSED - {e}"), 10, 11))
}

fn capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(t)) => {
            matches!(t.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

fn client_name(props: &FieldTable) -> String {
    match props.inner().get("connection_name") {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Some(AMQPValue::ShortString(s)) => s.as_str().to_string(),
        _ => String::new(),
    }
}

enum ChanState {
    Open(mpsc::UnboundedSender<ChanIn>),
    /// The server sent channel.close; frames are dropped until close-ok.
    Closing,
}

struct Connection {
    conn: Conn,
    broker: Broker,
    ctx: ChanCtx,
    root: Session,
    max_message_size: u64,
    channels: HashMap<u16, ChanState>,
    tasks: Vec<JoinHandle<()>>,
    out_tx: mpsc::UnboundedSender<Out>,
    out_rx: mpsc::UnboundedReceiver<Out>,
    channel_max: u16,
    heartbeat: u16,
    blocked_cap: bool,
    /// A publish came in during a resource alarm: the socket is not read until it clears.
    blocked: bool,
    /// `connection.blocked` was sent (and `unblocked` is owed).
    blocked_sent: bool,
    last_recv: Instant,
    done: bool,
}

impl Connection {
    async fn run(&mut self, shutdown: CancellationToken) {
        let mut assembler = Assembler::new(self.max_message_size);
        // Half the heartbeat interval (at most a second).
        let period = Duration::from_millis((u64::from(self.heartbeat) * 500).clamp(1, 1000));
        let period = if self.heartbeat == 0 {
            Duration::from_secs(1)
        } else {
            period
        };
        let mut tick = tokio::time::interval(period);
        // Pinned once: registering with the close signal per loop turn would cost a lock each.
        let closed = self.root.close_signal();
        let closed = closed.requested();
        tokio::pin!(closed);
        while !self.done {
            let paused = self.ctx.inflight.load(Ordering::Acquire) > MAX_INFLIGHT;
            let r = tokio::select! {
                _ = shutdown.cancelled() => Err(AmqpError::new(
                    rc::CONNECTION_FORCED,
                    "CONNECTION_FORCED - broker shutdown",
                    0,
                    0,
                )),
                reason = &mut closed => Err(AmqpError::new(
                    rc::CONNECTION_FORCED,
                    format!("CONNECTION_FORCED - {reason}"),
                    0,
                    0,
                )),
                r = self.conn.rbuf.read_from(&mut self.conn.stream), if !paused && !self.blocked => match r {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        self.last_recv = Instant::now();
                        self.on_input(&mut assembler)
                    }
                },
                Some(o) = self.out_rx.recv() => {
                    let mut r = self.on_out(o);
                    while r.is_ok() {
                        let Ok(o) = self.out_rx.try_recv() else { break };
                        r = self.on_out(o);
                    }
                    r
                }
                () = self.broker.publishing_resumed(), if self.blocked => self.unblock(&mut assembler),
                _ = tick.tick() => self.on_tick(),
                _ = tokio::time::sleep(Duration::from_millis(2)), if paused => Ok(()),
            };
            if let Err(e) = r {
                if e.code != rc::CONNECTION_FORCED || e.class_id != 0 || e.text != "heartbeat" {
                    tracing::info!(error = %e, "closing amqp connection");
                    self.conn.close(&e).await;
                }
                return;
            }
            if self.conn.flush().await.is_err() {
                return;
            }
        }
    }

    /// Stops the channels (their sessions close, unacked messages are requeued), then the
    /// connection's own session (its exclusive queues are deleted).
    async fn finish(self) {
        let Connection {
            mut conn,
            channels,
            tasks,
            root,
            ..
        } = self;
        // A clean end of the stream (TLS: close_notify), bounded for a client that reads
        // nothing.
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.stream.shutdown()).await;
        drop(channels);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        root.close().await;
    }

    fn on_tick(&mut self) -> Result<(), AmqpError> {
        if self.heartbeat > 0 {
            let hb = Duration::from_secs(u64::from(self.heartbeat));
            if self.conn.last_send.elapsed() >= hb / 2 && self.conn.wbuf.is_empty() {
                self.conn.wbuf.extend_from_slice(&HEARTBEAT_FRAME);
            }
            // A client told connection.blocked may stop writing altogether (lapin does):
            // missed heartbeats do not count while it is blocked, as in RabbitMQ.
            if self.blocked {
                self.last_recv = Instant::now();
            }
            if self.last_recv.elapsed() > hb * 2 {
                tracing::info!("missed heartbeats from the client: closing");
                return Err(AmqpError::new(rc::CONNECTION_FORCED, "heartbeat", 0, 0));
            }
        }
        Ok(())
    }

    /// A publish came in while `reason` blocks publishing: stop reading (what is already in
    /// the read buffer waits too) and tell the client.
    fn block(&mut self, reason: &str) {
        tracing::debug!(reason, "publishing connection blocked by a resource alarm");
        self.blocked = true;
        if self.blocked_cap && !self.blocked_sent {
            self.blocked_sent = true;
            let m = connection::AMQPMethod::Blocked(connection::Blocked {
                reason: junction_amqp::short_string_lossy(reason),
            });
            self.conn.method(0, &AMQPClass::Connection(m));
        }
    }

    /// The alarm cleared: tell the client, and go on with what it sent meanwhile.
    fn unblock(&mut self, assembler: &mut Assembler) -> Result<(), AmqpError> {
        tracing::debug!("publishing connection unblocked");
        self.blocked = false;
        self.last_recv = Instant::now();
        if std::mem::take(&mut self.blocked_sent) {
            let m = connection::AMQPMethod::Unblocked(connection::Unblocked {});
            self.conn.method(0, &AMQPClass::Connection(m));
        }
        self.on_input(assembler)
    }

    fn on_out(&mut self, o: Out) -> Result<(), AmqpError> {
        match o {
            Out::Frames(b) => self.conn.wbuf.extend_from_slice(&b),
            Out::Closing(id, last) => {
                self.conn.wbuf.extend_from_slice(&last);
                if let Some(st) = self.channels.get_mut(&id) {
                    *st = ChanState::Closing;
                }
            }
            Out::ConnError(e) => return Err(e),
        }
        Ok(())
    }

    fn on_input(&mut self, assembler: &mut Assembler) -> Result<(), AmqpError> {
        loop {
            let frame = match self.conn.decoder.decode(&mut self.conn.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(AmqpError::frame(&e)),
            };
            if self.discarded(&frame) {
                continue;
            }
            let ev = match assembler.push(frame) {
                Ok(Some(ev)) => ev,
                Ok(None) => continue,
                Err(e) if e.is_channel_error() && e.channel() != 0 => {
                    self.channel_error(e.channel(), AmqpError::frame(&e), assembler);
                    continue;
                }
                Err(e) => return Err(AmqpError::frame(&e)),
            };
            match ev {
                Event::Heartbeat => {}
                Event::Method { channel: 0, method } => self.on_connection_method(method)?,
                Event::Method { channel, method } => {
                    self.on_channel_method(channel, method, assembler)?
                }
                Event::Content { channel, content } => {
                    self.forward(channel, ChanIn::Content(Box::new(content)), 60, 40)?;
                    if let Some(reason) = self.broker.publishing_blocked() {
                        self.block(reason);
                    }
                }
            }
            if self.done || self.blocked {
                return Ok(());
            }
        }
    }

    /// Whether a frame is for a channel the server is closing: everything but its
    /// `channel.close` / `close-ok` is dropped until the client's close-ok (the spec's rule).
    fn discarded(&self, frame: &Frame) -> bool {
        if !matches!(self.channels.get(&frame.channel), Some(ChanState::Closing)) {
            return false;
        }
        !matches!(
            frame.payload,
            junction_amqp::FramePayload::Method(AMQPClass::Channel(
                channel::AMQPMethod::Close(_) | channel::AMQPMethod::CloseOk(_)
            ))
        )
    }

    /// A channel error the connection found (codec-level, e.g. a message too large).
    fn channel_error(&mut self, id: u16, e: AmqpError, assembler: &mut Assembler) {
        tracing::info!(channel = id, error = %e, "amqp channel error");
        assembler.reset_channel(id);
        if let Some(st) = self.channels.get_mut(&id) {
            *st = ChanState::Closing;
        }
        self.conn.method(id, &e.channel_close());
    }

    fn on_connection_method(&mut self, m: AMQPClass) -> Result<(), AmqpError> {
        let (class_id, method_id) = (m.get_amqp_class_id(), m.get_amqp_method_id());
        match m {
            AMQPClass::Connection(connection::AMQPMethod::Close(c)) => {
                tracing::debug!(
                    code = c.reply_code,
                    text = c.reply_text.as_str(),
                    "client closed the connection"
                );
                self.conn.method(0, &connection_close_ok());
                self.done = true;
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_)) => {
                self.done = true;
                Ok(())
            }
            AMQPClass::Connection(connection::AMQPMethod::UpdateSecret(_)) => {
                let ok = connection::AMQPMethod::UpdateSecretOk(connection::UpdateSecretOk {});
                self.conn.method(0, &AMQPClass::Connection(ok));
                Ok(())
            }
            AMQPClass::Connection(_) => Err(AmqpError::new(
                rc::COMMAND_INVALID,
                "COMMAND_INVALID - unexpected connection method",
                class_id,
                method_id,
            )),
            _ => Err(AmqpError::new(
                rc::CHANNEL_ERROR,
                "CHANNEL_ERROR - expected a channel other than 0",
                class_id,
                method_id,
            )),
        }
    }

    fn on_channel_method(
        &mut self,
        id: u16,
        m: AMQPClass,
        assembler: &mut Assembler,
    ) -> Result<(), AmqpError> {
        let (class_id, method_id) = (m.get_amqp_class_id(), m.get_amqp_method_id());
        check_client_method(id, &m).map_err(|e| AmqpError::frame(&e))?;
        match m {
            AMQPClass::Channel(channel::AMQPMethod::Open(_)) => self.open_channel(id),
            AMQPClass::Channel(channel::AMQPMethod::Close(_)) => {
                assembler.reset_channel(id);
                match self.channels.remove(&id) {
                    Some(ChanState::Open(tx)) => {
                        self.ctx.inflight.fetch_add(1, Ordering::AcqRel);
                        if tx.send(ChanIn::Close).is_err() {
                            self.ctx.inflight.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                    Some(ChanState::Closing) => {
                        // Both sides closed at once: answer, and wait for our close-ok.
                        self.channels.insert(id, ChanState::Closing);
                        self.conn.method(id, &junction_amqp::channel_close_ok());
                    }
                    None => self.conn.method(id, &junction_amqp::channel_close_ok()),
                }
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::CloseOk(_)) => {
                if matches!(self.channels.get(&id), Some(ChanState::Closing)) {
                    self.channels.remove(&id);
                    assembler.reset_channel(id);
                }
                Ok(())
            }
            AMQPClass::Connection(_) => Err(AmqpError::new(
                rc::COMMAND_INVALID,
                "COMMAND_INVALID - connection method on a channel other than 0",
                class_id,
                method_id,
            )),
            m => self.forward(id, ChanIn::Method(m), class_id, method_id),
        }
    }

    fn open_channel(&mut self, id: u16) -> Result<(), AmqpError> {
        if self.channels.contains_key(&id) {
            return Err(AmqpError::new(
                rc::CHANNEL_ERROR,
                format!("CHANNEL_ERROR - second 'channel.open' seen on channel {id}"),
                20,
                10,
            ));
        }
        if id > self.channel_max {
            return Err(AmqpError::new(
                rc::NOT_ALLOWED,
                format!(
                    "NOT_ALLOWED - channel {id} over channel_max {}",
                    self.channel_max
                ),
                20,
                10,
            ));
        }
        // A user's channel limit closes the connection, as RabbitMQ's does (530).
        let session = self
            .root
            .try_open_sibling()
            .map_err(|e| AmqpError::new(rc::NOT_ALLOWED, format!("NOT_ALLOWED - {e}"), 20, 10))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(
            run_channel(id, session, rx, self.out_tx.clone(), self.ctx.clone())
                .instrument(tracing::Span::current()),
        );
        self.tasks.retain(|t| !t.is_finished());
        self.tasks.push(task);
        self.channels.insert(id, ChanState::Open(tx));
        let ok = AMQPClass::Channel(channel::AMQPMethod::OpenOk(channel::OpenOk {}));
        self.conn.method(id, &ok);
        Ok(())
    }

    fn forward(
        &mut self,
        id: u16,
        m: ChanIn,
        class_id: u16,
        method_id: u16,
    ) -> Result<(), AmqpError> {
        match self.channels.get(&id) {
            Some(ChanState::Open(tx)) => {
                self.ctx.inflight.fetch_add(1, Ordering::AcqRel);
                if tx.send(m).is_err() {
                    self.ctx.inflight.fetch_sub(1, Ordering::AcqRel);
                }
                Ok(())
            }
            Some(ChanState::Closing) => Ok(()),
            None => Err(AmqpError::new(
                rc::CHANNEL_ERROR,
                format!("CHANNEL_ERROR - expected 'channel.open' on channel {id}"),
                class_id,
                method_id,
            )),
        }
    }
}
