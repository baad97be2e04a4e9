//! One STOMP connection: the CONNECT handshake and the run loop.
//!
//! The loop `select!`s over the socket, the session's events (deliveries, publish confirms),
//! the heart-beat deadline and shutdown. Frames read in one go are all handled before one write
//! of every answer. A `RECEIPT` for a SEND goes out once the core confirms the publish (stored
//! under the flush policy); a receipt for any other frame goes out after the receipts of the
//! SENDs before it, so receipts keep the order of the frames that asked for them, and a
//! DISCONNECT's receipt means everything before it is done.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::OptionFuture;
use junction_stomp::{
    encode, encode_heartbeat, format_versions, negotiate, negotiate_heartbeat, parse_heartbeat,
    Command, DecodeError, Decoder, Frame, Item, Version,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::destination::Destination;
use super::mapping::properties_in;
use super::subscription::Subscription;
use super::transaction::Transactions;
use super::{Settings, StompError};
use crate::core::{Broker, Credential, Message, QueueDecl, Session, SessionEvent, Value};

/// Receipts waiting for publish confirms before the gateway stops reading from a client.
const MAX_PENDING: usize = 16_384;

/// Whether the connection goes on.
pub(super) enum Flow {
    Continue,
    Close,
}

/// A SEND a resource alarm holds, ready to be published once it clears.
pub(super) struct HeldSend {
    exchange: String,
    key: String,
    message: Message,
    receipt: Option<String>,
}

/// One connection after CONNECTED.
pub(super) struct Connection<S> {
    pub(super) io: S,
    pub(super) rbuf: crate::gateway::readbuf::ReadBuf,
    pub(super) wbuf: BytesMut,
    pub(super) decoder: Decoder,
    pub(super) version: Version,
    pub(super) session: Session,
    /// The CONNECT frame's `client-id` (names durable subscriptions).
    pub(super) client_id: String,
    /// Core consumer tag -> subscription.
    pub(super) subs: HashMap<Arc<str>, Subscription>,
    /// Subscription id -> core consumer tag.
    pub(super) sub_tags: HashMap<String, Arc<str>>,
    /// Unsettled delivery id -> the consumer tag it came to.
    pub(super) owner: HashMap<u64, Arc<str>>,
    /// Auto-ack deliveries whose MESSAGE is in the write buffer, acked once it is written.
    pub(super) written: Vec<u64>,
    /// `/temp-queue/<name>` -> (generated queue, subscribed).
    pub(super) temp: HashMap<String, (String, bool)>,
    /// `/queue/` queues known to exist (declared once per connection).
    pub(super) known_queues: HashSet<String>,
    pub(super) tx: Transactions,
    /// Receipts in frame order: (publish sequence that must be confirmed first, receipt id).
    receipts: VecDeque<(u64, String)>,
    last_seq: u64,
    confirmed: u64,
    /// DISCONNECT was received: close once its receipt is out.
    disconnecting: bool,
    /// A SEND held by a resource alarm: the socket is not read until it is published.
    pub(super) held: Option<Box<HeldSend>>,
}

/// Serves one STOMP connection (TCP or WebSocket) until it closes or `stop` fires.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    broker: Broker,
    stop: CancellationToken,
    settings: Settings,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut hs = Handshake {
        io: stream,
        rbuf: crate::gateway::readbuf::ReadBuf::default(),
        wbuf: BytesMut::new(),
        decoder: Decoder::with_limits(Version::V1_2, settings.limits()),
    };
    let Some(Opened {
        session,
        version,
        client_id,
        heartbeat,
        ..
    }) = hs.run(peer, &broker, &settings, &stop).await
    else {
        return;
    };
    let span = tracing::info_span!("conn", protocol = settings.protocol, peer = %peer,
        user = %session.info().user, session = session.id());
    let mut decoder = hs.decoder;
    decoder.set_version(version);
    let mut c = Connection {
        io: hs.io,
        rbuf: hs.rbuf,
        wbuf: hs.wbuf,
        decoder,
        version,
        session,
        client_id,
        subs: HashMap::new(),
        sub_tags: HashMap::new(),
        owner: HashMap::new(),
        written: Vec::new(),
        temp: HashMap::new(),
        known_queues: HashSet::new(),
        tx: Transactions::default(),
        receipts: VecDeque::new(),
        last_seq: 0,
        confirmed: 0,
        disconnecting: false,
        held: None,
    };
    async move {
        tracing::debug!(version = %version, "session open");
        c.run(heartbeat, stop).await;
        let _ = c.io.shutdown().await;
        c.session.close().await;
        tracing::debug!("session closed");
    }
    .instrument(span)
    .await;
}

/// The connection before CONNECTED.
struct Handshake<S> {
    io: S,
    rbuf: crate::gateway::readbuf::ReadBuf,
    wbuf: BytesMut,
    decoder: Decoder,
}

/// Negotiated heart-beats, from the server's side: (send every, expect every), ms.
type Heartbeat = (u32, u32);

/// What an accepted CONNECT opened.
struct Opened {
    session: Session,
    version: Version,
    client_id: String,
    heartbeat: Heartbeat,
    connected: Frame,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Handshake<S> {
    async fn run(
        &mut self,
        peer: SocketAddr,
        broker: &Broker,
        settings: &Settings,
        stop: &CancellationToken,
    ) -> Option<Opened> {
        let first = tokio::select! {
            r = tokio::time::timeout(settings.handshake_timeout, self.read_frame()) => r,
            _ = stop.cancelled() => return None,
        };
        let frame = match first {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => {
                tracing::info!(peer = %peer, error = %e, "bad frame before CONNECT: closing");
                self.fail(decode_error_frame(&e)).await;
                return None;
            }
            Err(_) => {
                tracing::info!(peer = %peer, "no CONNECT within the handshake timeout");
                return None;
            }
        };
        match self.connect(&frame, peer, broker, settings) {
            Ok(opened) => {
                self.push(&opened.connected, opened.version);
                if self.io.write_all(&self.wbuf).await.is_err() || self.io.flush().await.is_err() {
                    return None;
                }
                self.wbuf.clear();
                Some(opened)
            }
            Err(mut err) => {
                tracing::info!(peer = %peer, error = %err.header("message").unwrap_or(""),
                    "CONNECT refused");
                if let Some(r) = frame.header("receipt") {
                    err.push_header("receipt-id", r);
                }
                self.fail(err).await;
                None
            }
        }
    }

    /// Checks a CONNECT frame and opens the session; `Err` is the ERROR frame to send.
    fn connect(
        &self,
        f: &Frame,
        peer: SocketAddr,
        broker: &Broker,
        settings: &Settings,
    ) -> Result<Opened, Frame> {
        let error = |message: &str, detail: String| {
            Frame::error(message)
                .with_header("content-type", "text/plain")
                .with_body(detail)
        };
        if !matches!(f.command, Command::Connect | Command::Stomp) {
            return Err(error(
                "expected CONNECT",
                format!(
                    "the first frame must be CONNECT or STOMP, not {}",
                    f.command
                ),
            ));
        }
        let supported = format_versions(&Version::ALL);
        let Some(version) = negotiate(f.header("accept-version"), &Version::ALL) else {
            return Err(error(
                "Version mismatch",
                format!("Supported versions are {supported}\n"),
            )
            .with_header("version", supported));
        };
        let client_hb = match (version, f.header("heart-beat")) {
            (Version::V1_0, _) | (_, None) => (0, 0),
            (_, Some(v)) => {
                parse_heartbeat(v).map_err(|e| error("invalid heart-beat header", e.to_string()))?
            }
        };
        let server_hb = (settings.heartbeat_ms, settings.heartbeat_ms);
        let hb = negotiate_heartbeat(client_hb, server_hb);
        let (login, passcode) = match (f.header("login"), &settings.default_login) {
            // RabbitMQ's ssl_cert_login: no login header, a verified certificate names the user.
            (None, _) if settings.cert_user.is_some() => (
                settings.cert_user.clone().unwrap_or_default(),
                String::new(),
            ),
            (Some(l), _) => (
                l.to_string(),
                f.header("passcode").unwrap_or("").to_string(),
            ),
            (None, Some((u, p))) => (u.clone(), p.clone()),
            (None, None) => (String::new(), String::new()),
        };
        // `host` names the vhost when such a vhost exists; otherwise it is taken for the server's
        // host name, which clients send there by default (stomp.py 1.2 sends `host:<address>`),
        // and the default vhost is used. (RabbitMQ refuses an unknown vhost instead.)
        let vhost = f
            .header("host")
            .filter(|h| broker.has_vhost(h))
            .unwrap_or("/");
        let client_id = f.header("client-id").unwrap_or("").to_string();
        let credential = match (f.header("login"), &settings.cert_user) {
            (None, Some(_)) => Credential::Certificate,
            _ => Credential::Password(&passcode),
        };
        let session = broker
            .connect_with(
                &login,
                credential,
                vhost,
                Some(peer),
                settings.protocol,
                &client_id,
            )
            // RabbitMQ's wording, which does not say why (the log does); a limit says which.
            .map_err(|e| match e {
                crate::core::CoreError::ResourceLimit(why) => error("Bad CONNECT", why),
                _ => error("Bad CONNECT", format!("Access refused for user '{login}'")),
            })?;
        crate::gateway::handshakes::logged_in();
        let mut connected = Frame::connected(version)
            .with_header("session", format!("session-{}", session.id()))
            .with_header("server", concat!("junction/", env!("CARGO_PKG_VERSION")));
        // 1.0 has no heart-beats; `0,0` says so to clients that look (as RabbitMQ does).
        let offered = if version >= Version::V1_1 {
            server_hb
        } else {
            (0, 0)
        };
        connected.push_header("heart-beat", format!("{},{}", offered.0, offered.1));
        Ok(Opened {
            session,
            version,
            client_id,
            heartbeat: hb,
            connected,
        })
    }

    async fn read_frame(&mut self) -> Result<Option<Frame>, junction_stomp::DecodeError> {
        loop {
            if let Some(f) = self.decoder.decode_frame(&mut self.rbuf)? {
                return Ok(Some(f));
            }
            match self.rbuf.read_from(&mut self.io).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }

    fn push(&mut self, f: &Frame, version: Version) {
        if let Err(e) = encode(f, version, &mut self.wbuf) {
            tracing::warn!(error = %e, "could not encode a frame");
        }
    }

    /// Sends an ERROR frame and closes.
    async fn fail(&mut self, err: Frame) {
        self.push(&err, Version::V1_2);
        let _ = self.io.write_all(&self.wbuf).await;
        let _ = self.io.flush().await;
        let _ = self.io.shutdown().await;
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    async fn run(&mut self, (send_ms, expect_ms): Heartbeat, stop: CancellationToken) {
        // Sent a little early: a client judges lateness by its own clock, through a network.
        let send = Duration::from_millis(u64::from(send_ms) * 4 / 5);
        // The spec asks for a margin: the client's timer and the network are not exact.
        let grace = Duration::from_millis(u64::from(expect_ms) * 2);
        let mut last_read = Instant::now();
        let mut last_write = Instant::now();
        // Closed from outside (admin API, a deleted user or vhost). Pinned once: registering
        // with the close signal every loop turn would cost a lock each.
        let closed = self.session.close_signal();
        let closed = closed.requested();
        tokio::pin!(closed);
        // Frames a client pipelined behind CONNECT arrived with it and wait in the buffer:
        // handle them first, not at the next read (which may never come).
        let mut pipelined = !self.rbuf.is_empty();
        loop {
            let far = Instant::now() + Duration::from_secs(3600);
            // The client's heart-beats wait unread while a SEND is held: not counted then.
            let expect_ms = if self.held.is_some() { 0 } else { expect_ms };
            let deadline = match (send_ms, expect_ms) {
                (0, 0) => far,
                (0, _) => last_read + grace,
                (_, 0) => last_write + send,
                _ => (last_read + grace).min(last_write + send),
            };
            // Made only while a SEND is held (its branch is disabled otherwise).
            let resumed = OptionFuture::from(
                self.held
                    .as_ref()
                    .map(|_| self.session.publishing_resumed()),
            );
            let flow = tokio::select! {
                _ = std::future::ready(()), if pipelined => {
                    pipelined = false;
                    self.on_input().await
                }
                // Not read while a resource alarm holds a SEND (RabbitMQ blocks a publishing
                // connection the same way); MESSAGEs still go out.
                r = self.rbuf.read_from(&mut self.io), if self.receipts.len() < MAX_PENDING && !self.disconnecting && self.held.is_none() => match r {
                    Ok(0) | Err(_) => Flow::Close,
                    Ok(_) => {
                        last_read = Instant::now();
                        self.on_input().await
                    }
                },
                ev = self.session.next_event() => match ev {
                    Some(ev) => {
                        self.on_event(ev);
                        while let Some(ev) = self.session.try_next_event() {
                            self.on_event(ev);
                            if self.wbuf.len() > 256 << 10 {
                                break;
                            }
                        }
                        Flow::Continue
                    }
                    None => Flow::Close,
                },
                Some(()) = resumed, if self.held.is_some() => {
                    last_read = Instant::now();
                    self.resume().await
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if expect_ms > 0 && now >= last_read + grace {
                        tracing::info!(expect_ms, "no heart-beat from the client: closing");
                        self.push(&Frame::error("heart-beat timeout").with_header("content-type", "text/plain")
                            .with_body(format!("nothing received for {} ms; heart-beats were agreed every {expect_ms} ms", grace.as_millis())));
                        Flow::Close
                    } else {
                        if send_ms > 0 && now >= last_write + send && self.wbuf.is_empty() {
                            encode_heartbeat(&mut self.wbuf);
                        }
                        Flow::Continue
                    }
                },
                _ = stop.cancelled() => {
                    self.push(&Frame::error("connection_forced").with_header("content-type", "text/plain")
                        .with_body("the broker is shutting down"));
                    Flow::Close
                }
                reason = &mut closed => {
                    tracing::info!(%reason, "connection closed from outside");
                    self.push(&Frame::error("connection_forced").with_header("content-type", "text/plain")
                        .with_body(reason));
                    Flow::Close
                }
            };
            if !self.wbuf.is_empty() {
                if self.io.write_all(&self.wbuf).await.is_err() || self.io.flush().await.is_err() {
                    return;
                }
                self.wbuf.clear();
                last_write = Instant::now();
            }
            self.settle_written();
            if matches!(flow, Flow::Close) || (self.disconnecting && self.receipts.is_empty()) {
                return;
            }
        }
    }

    /// Handles every complete frame in the read buffer (until a SEND is held).
    async fn on_input(&mut self) -> Flow {
        while self.held.is_none() {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(Item::Frame(f))) => {
                    if let Flow::Close = self.on_frame(f).await {
                        return Flow::Close;
                    }
                    if self.disconnecting {
                        return Flow::Continue;
                    }
                }
                Ok(Some(Item::Heartbeat)) => {}
                Ok(None) => return Flow::Continue,
                Err(e) => {
                    tracing::info!(error = %e, "malformed frame: closing the connection");
                    self.push(&decode_error_frame(&e));
                    return Flow::Close;
                }
            }
        }
        Flow::Continue
    }

    /// The alarm that held a SEND cleared: publish it, then go on with what the client sent
    /// meanwhile.
    async fn resume(&mut self) -> Flow {
        let Some(h) = self.held.take() else {
            return Flow::Continue;
        };
        let HeldSend {
            exchange,
            key,
            message,
            receipt,
        } = *h;
        match self.publish_or_hold(exchange, key, message, receipt) {
            Ok(()) => self.on_input().await,
            Err((receipt, e)) => self.refuse(Command::Send, receipt, e),
        }
    }

    /// Publishes a SEND, its receipt (if asked) to follow the store's confirm; a resource
    /// alarm holds it instead (the socket is not read until it clears).
    fn publish_or_hold(
        &mut self,
        exchange: String,
        key: String,
        message: Message,
        receipt: Option<String>,
    ) -> Result<(), (Option<String>, StompError)> {
        match self.session.publish(&exchange, &key, &message) {
            Ok(p) => {
                self.last_seq = p.seq;
                if let Some(id) = receipt {
                    self.receipt(p.seq, id);
                }
                Ok(())
            }
            Err(crate::core::CoreError::Blocked(why)) => {
                tracing::debug!(why, "SEND held by a resource alarm");
                self.held = Some(Box::new(HeldSend {
                    exchange,
                    key,
                    message,
                    receipt,
                }));
                Ok(())
            }
            Err(e) => Err((receipt, e.into())),
        }
    }

    async fn on_frame(&mut self, f: Frame) -> Flow {
        let receipt = f.header("receipt").map(str::to_owned);
        let command = f.command;
        let result = match command {
            // A transactional frame's receipt comes with its COMMIT, once it is carried out.
            Command::Send | Command::Ack | Command::Nack if f.header("transaction").is_some() => {
                let t = f.header("transaction").unwrap_or_default().to_string();
                return match self.tx.hold(&t, f) {
                    Ok(()) => Flow::Continue,
                    Err(e) => self.refuse(command, receipt, e.into()),
                };
            }
            Command::Send => {
                return match self.prepare_send(f).await {
                    Ok((exchange, key, msg)) => {
                        match self.publish_or_hold(exchange, key, msg, receipt) {
                            Ok(()) => Flow::Continue,
                            Err((receipt, e)) => self.refuse(command, receipt, e),
                        }
                    }
                    Err(e) => self.refuse(command, receipt, e),
                }
            }
            Command::Ack | Command::Nack => self.settle(&f).map(|()| 0),
            Command::Subscribe => self.subscribe(&f).await.map(|()| 0),
            Command::Unsubscribe => self.unsubscribe(&f).await.map(|()| 0),
            Command::Begin => self
                .tx_name(&f)
                .and_then(|t| Ok(self.tx.begin(&t)?))
                .map(|()| 0),
            Command::Abort => self
                .tx_name(&f)
                .and_then(|t| Ok(self.tx.abort(&t)?))
                .map(|()| 0),
            Command::Commit => self.commit(&f).await,
            Command::Disconnect => {
                self.disconnecting = true;
                Ok(0)
            }
            Command::Connect | Command::Stomp => Err(StompError::new(
                "already connected",
                "a second CONNECT on one connection",
            )),
            other => Err(StompError::new(
                "invalid command",
                format!("{other} is a server frame"),
            )),
        };
        match result {
            Ok(seq) => {
                if let Some(id) = receipt {
                    self.receipt(seq, id);
                }
                Flow::Continue
            }
            Err(e) => self.refuse(command, receipt, e),
        }
    }

    /// Sends the ERROR for a refused frame (logged once); the connection then closes.
    fn refuse(&mut self, command: Command, receipt: Option<String>, e: StompError) -> Flow {
        tracing::info!(command = %command, error = %e.message, detail = %e.detail,
            "frame refused: closing the connection");
        let mut frame = Frame::error(e.message)
            .with_header("content-type", "text/plain")
            .with_body(e.detail);
        if let Some(id) = receipt {
            frame.push_header("receipt-id", id);
        }
        self.push(&frame);
        Flow::Close
    }

    fn tx_name(&self, f: &Frame) -> Result<String, StompError> {
        f.header("transaction")
            .map(str::to_owned)
            .ok_or_else(|| StompError::missing("transaction", f.command))
    }

    /// Queues a receipt behind publish `seq` (and every frame before it).
    fn receipt(&mut self, seq: u64, id: String) {
        let after = seq.max(self.last_seq);
        if after <= self.confirmed && self.receipts.is_empty() {
            self.push(&Frame::receipt(id));
        } else {
            self.receipts.push_back((after, id));
        }
    }

    /// COMMIT: carries out the held frames in order; the receipt waits for their publishes.
    async fn commit(&mut self, f: &Frame) -> Result<u64, StompError> {
        let name = self.tx_name(f)?;
        let mut last = 0;
        for held in self.tx.commit(&name)? {
            let receipt = held.header("receipt").map(str::to_owned);
            match held.command {
                Command::Send => last = self.send_waiting(held).await?,
                _ => self.settle(&held)?,
            }
            if let Some(id) = receipt {
                self.receipt(last, id);
            }
        }
        Ok(last)
    }

    /// A SEND of a committed transaction: publishes, waiting out a resource alarm (the
    /// COMMIT's receipt follows); returns the publish sequence number.
    async fn send_waiting(&mut self, f: Frame) -> Result<u64, StompError> {
        let (exchange, key, msg) = self.prepare_send(f).await?;
        loop {
            match self.session.publish(&exchange, &key, &msg) {
                Err(crate::core::CoreError::Blocked(why)) => {
                    tracing::debug!(why, "COMMIT held by a resource alarm");
                    self.session.publishing_resumed().await;
                }
                r => {
                    let seq = r?.seq;
                    self.last_seq = seq;
                    return Ok(seq);
                }
            }
        }
    }

    /// A SEND's target (exchange, routing key) and message; declares its `/queue/` or temp
    /// queue if needed.
    async fn prepare_send(&mut self, f: Frame) -> Result<(String, String, Message), StompError> {
        let dest = f
            .header("destination")
            .ok_or_else(|| StompError::missing("destination", Command::Send))?;
        let dest = Destination::parse(dest)?;
        let mut properties = properties_in(&f, now_ms())?;
        if let Some(rt) = properties.reply_to.as_deref() {
            if let Ok(Destination::TempQueue(name)) = Destination::parse(rt) {
                let queue = self.temp_queue(&name, true).await?;
                properties.reply_to = Some(Destination::ReplyQueue(queue).to_string());
            }
        }
        let (exchange, key) = match &dest {
            Destination::Queue(q) => {
                self.ensure_queue(q, &f).await?;
                (String::new(), q.clone())
            }
            Destination::TempQueue(name) => (String::new(), self.temp_queue(name, false).await?),
            other => match other.publish_target() {
                Some((x, k)) => (x.to_string(), k.to_string()),
                None => return Err(StompError::new("Unknown destination", other.to_string())),
            },
        };
        let msg = Message {
            properties,
            body: f.body,
        };
        Ok((exchange, key, msg))
    }

    /// Makes sure `/queue/<name>` exists: an existing queue is used as it is (whoever declared
    /// it); a missing one is declared, durable unless the frame says `durable:false`, with the
    /// frame's `auto-delete`, `exclusive` and queue-argument headers (`x-message-ttl`, ...), as
    /// RabbitMQ does.
    pub(super) async fn ensure_queue(&mut self, name: &str, f: &Frame) -> Result<(), StompError> {
        if self.known_queues.contains(name) {
            return Ok(());
        }
        let flag = |h: &str, default: bool| {
            f.header(h)
                .map_or(default, |v| v.eq_ignore_ascii_case("true"))
        };
        let decl = QueueDecl {
            name: name.to_string(),
            partitions: 1,
            durable: flag("durable", true),
            exclusive: flag("exclusive", false),
            auto_delete: flag("auto-delete", false),
            passive: true,
            args: queue_args(f),
        };
        if self.session.declare_queue(decl.clone()).await.is_err() {
            self.session
                .declare_queue(QueueDecl {
                    passive: false,
                    ..decl
                })
                .await?;
        }
        self.known_queues.insert(name.to_string());
        Ok(())
    }

    /// The queue behind `/temp-queue/<name>`, created on first use (exclusive to this
    /// connection, auto-delete). With `subscribe`, the connection also consumes from it (auto
    /// ack), so replies to a rewritten `reply-to` arrive as MESSAGE frames with
    /// `subscription:/temp-queue/<name>`.
    pub(super) async fn temp_queue(
        &mut self,
        name: &str,
        subscribe: bool,
    ) -> Result<String, StompError> {
        let queue = match self.temp.get(name) {
            Some((q, _)) => q.clone(),
            None => {
                let info = self
                    .session
                    .declare_queue(QueueDecl {
                        name: String::new(),
                        partitions: 1,
                        durable: false,
                        exclusive: true,
                        auto_delete: true,
                        passive: false,
                        args: Vec::new(),
                    })
                    .await?;
                self.temp
                    .insert(name.to_string(), (info.name.clone(), false));
                info.name
            }
        };
        if subscribe && !self.temp.get(name).is_some_and(|(_, s)| *s) {
            self.subscribe_temp(name, &queue).await?;
            if let Some(t) = self.temp.get_mut(name) {
                t.1 = true;
            }
        }
        Ok(queue)
    }

    fn on_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Delivery(d) => self.deliver(*d),
            SessionEvent::Confirmed { up_to } => {
                self.confirmed = self.confirmed.max(up_to);
                while self.receipts.front().is_some_and(|(s, _)| *s <= up_to) {
                    if let Some((_, id)) = self.receipts.pop_front() {
                        self.push(&Frame::receipt(id));
                    }
                }
            }
            SessionEvent::ConfirmFailed { up_to } => {
                tracing::warn!(up_to, "the store could not persist published messages");
                while self.receipts.front().is_some_and(|(s, _)| *s <= up_to) {
                    if let Some((_, id)) = self.receipts.pop_front() {
                        self.push(
                            &Frame::error("internal_error")
                                .with_header("receipt-id", id)
                                .with_header("content-type", "text/plain")
                                .with_body("the store could not persist the message"),
                        );
                    }
                }
            }
            SessionEvent::Cancelled { consumer, reason } => self.cancelled(&consumer, &reason),
            SessionEvent::Assignment { .. } => {}
        }
    }

    /// Encodes a frame for this session's version. A header that this version cannot carry
    /// (a line break in 1.0, a carriage return in 1.1) is left out rather than losing the frame.
    pub(super) fn push(&mut self, f: &Frame) {
        if encode(f, self.version, &mut self.wbuf).is_ok() {
            return;
        }
        let mut clean = Frame::new(f.command).with_body(f.body.clone());
        for (n, v) in &f.headers {
            let mut probe = BytesMut::new();
            let one = Frame::new(f.command).with_header(n.as_str(), v.as_str());
            if encode(&one, self.version, &mut probe).is_ok() {
                clean.push_header(n.as_str(), v.as_str());
            } else {
                tracing::debug!(header = %n, "header not representable in this STOMP version: left out");
            }
        }
        if let Err(e) = encode(&clean, self.version, &mut self.wbuf) {
            tracing::warn!(error = %e, "could not encode a frame");
        }
    }
}

/// The ERROR frame for undecodable input: the codec's, except for an unknown command, which
/// gets RabbitMQ's `Bad command` and the supported versions.
fn decode_error_frame(e: &DecodeError) -> Frame {
    match e {
        DecodeError::UnknownCommand(c) => Frame::error("Bad command")
            .with_header("content-type", "text/plain")
            .with_header("version", format_versions(&Version::ALL))
            .with_body(format!(
                "Could not interpret command {:?}\n",
                c.trim_end_matches(['\r', '\n'])
            )),
        other => other.to_error_frame(),
    }
}

/// Queue arguments a SEND or SUBSCRIBE may carry as headers (RabbitMQ's names).
const QUEUE_ARGS: [&str; 10] = [
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-delivery-limit",
    "x-max-priority",
    "x-queue-mode",
];

/// The queue arguments among a frame's headers (first of each name).
pub(super) fn queue_args(f: &Frame) -> Vec<(String, Value)> {
    QUEUE_ARGS
        .iter()
        .filter_map(|&a| {
            f.header(a)
                .map(|v| (a.to_string(), Value::Str(v.to_string())))
        })
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
