//! One MQTT connection: CONNECT, then a loop `select!`ing over the socket, the core session's
//! events (deliveries, publish confirms), the keep-alive deadline, a session takeover and
//! shutdown; at the end, the will and what a persistent session carries to the next
//! connection.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::future::OptionFuture;
use junction_mqtt::{
    encode, topic, ConnAck, Connect, DecodeError, Decoder, Packet, ProtocolVersion, PubResponse,
    Publish, QoS, ReasonCode, ReasonOnly, Will,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::mapping;
use super::subscriptions::{Shared, Sub};
use super::{Carry, Claim, Settings};
use crate::core::{
    Broker, ConsumerTag, CoreError, Credential, Delivery, Message, Session, SessionEvent, Settle,
};

/// Unconfirmed publishes above which the socket is not read (back-pressure on the client).
const MAX_UNCONFIRMED: usize = 4096;
/// Events handled before the output is flushed.
const EVENT_BATCH: usize = 256;
/// How long a takeover waits for the old connection to let go.
const TAKEOVER_PATIENCE: Duration = Duration::from_secs(5);

/// Why a connection ends.
#[derive(Debug)]
pub(super) struct Close {
    /// 5.0 DISCONNECT reason to send (`None`: none, the client disconnected or is gone).
    pub(super) reason: Option<ReasonCode>,
    /// Whether the will is published.
    pub(super) will: bool,
    /// For the log.
    pub(super) why: String,
}

impl Close {
    pub(super) fn protocol(reason: ReasonCode, why: impl Into<String>) -> Close {
        Close {
            reason: Some(reason),
            will: true,
            why: why.into(),
        }
    }
}

/// The socket with its buffers and codec.
pub(super) struct Io<S> {
    stream: S,
    rbuf: crate::gateway::readbuf::ReadBuf,
    pub(super) wbuf: BytesMut,
    decoder: Decoder,
    pub(super) version: ProtocolVersion,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    pub(super) fn send(&mut self, p: &Packet) {
        if let Err(e) = encode(p, self.version, &mut self.wbuf) {
            tracing::warn!(error = %e, packet = p.packet_type(), "packet could not be encoded");
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// The next packet; `Ok(None)` at EOF.
    async fn packet(&mut self) -> Result<Option<Packet>, DecodeError> {
        loop {
            if let Some(p) = self.decoder.decode(&mut self.rbuf)? {
                return Ok(Some(p));
            }
            match self.rbuf.read_from(&mut self.stream).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            }
        }
    }
}

/// An outgoing QoS 1 or 2 message awaiting its acknowledgement.
pub(super) struct Outbound {
    /// The core delivery to settle (`None` for retained messages sent on subscribe).
    pub(super) delivery: Option<u64>,
    pub(super) qos: QoS,
    /// PUBREC received, PUBREL sent (QoS 2).
    pub(super) released: bool,
    pub(super) pos: Option<(String, u16, u64)>,
}

/// A message on its way to the client.
pub(super) struct OutMsg {
    pub(super) topic: String,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) dup: bool,
    pub(super) sub_ids: Vec<u32>,
    pub(super) message: Message,
    pub(super) remaining_ttl_ms: Option<u64>,
    pub(super) delivery: Option<u64>,
    pub(super) pos: Option<(String, u16, u64)>,
}

/// An acknowledgement of an incoming publish, sent once every publish up to `after` is
/// confirmed (acknowledgements go out in the order the publishes came in).
struct PendingAck {
    after: u64,
    packet_id: u16,
    qos: QoS,
    reason: ReasonCode,
}

/// A PUBLISH a resource alarm holds, ready to be stored once it clears.
struct HeldPublish {
    packet_id: u16,
    qos: QoS,
    retain: bool,
    routing_key: String,
    message: Message,
}

/// Session state of one connection.
pub(super) struct Conn<S> {
    pub(super) io: Io<S>,
    pub(super) peer: SocketAddr,
    pub(super) session: Session,
    pub(super) settings: Settings,
    pub(super) client_id: String,
    pub(super) vhost: String,
    /// `mqtt-session-<client id>`.
    pub(super) queue: String,
    /// The session queue's consumer, once the queue exists.
    pub(super) queue_tag: Option<ConsumerTag>,
    /// Session expiry interval, seconds (0: the session ends with the connection).
    pub(super) expiry: u32,
    pub(super) subs: BTreeMap<String, Sub>,
    pub(super) shared: HashMap<ConsumerTag, Shared>,
    // Towards the client.
    pub(super) inflight: HashMap<u16, Outbound>,
    next_packet_id: u16,
    pub(super) waiting: VecDeque<OutMsg>,
    pub(super) window: u16,
    client_max_packet: u32,
    client_alias_max: u16,
    out_aliases: HashMap<String, u16>,
    carried_ids: HashMap<(String, u16, u64), u16>,
    // From the client.
    in_aliases: HashMap<u16, String>,
    pending: VecDeque<PendingAck>,
    last_seq: u64,
    confirmed: u64,
    /// QoS 2 packet identifiers being stored (false) or stored with PUBREC sent (true).
    qos2_in: HashMap<u16, bool>,
    /// Boxed: most clients have none, and every connection would pay for its size.
    will: Option<Box<Will>>,
    /// Keep alive in force, seconds (0: none).
    keep_alive: u16,
    /// A PUBLISH held by a resource alarm: the socket is not read until it is stored. Boxed:
    /// rare, and every connection would pay for its size.
    held: Option<Box<HeldPublish>>,
}

/// Serves one MQTT connection (TCP or WebSocket) until it closes.
pub async fn serve<S>(
    stream: S,
    peer: SocketAddr,
    broker: Broker,
    stop: CancellationToken,
    settings: Settings,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed: the handshake's state (the CONNECT packet, authentication, restoring the session)
    // is freed once the connection is up, so the task of an idle connection keeps only the
    // loop's state (this took the task from 16.5 to about 4 KiB).
    let Some((conn, claim)) = Box::pin(handshake(stream, peer, broker, &stop, settings)).await
    else {
        return;
    };
    conn.run(stop, claim).await;
}

/// Reads CONNECT (within the connect timeout) and opens the session; `None` if the
/// connection ended or was refused.
async fn handshake<S>(
    stream: S,
    peer: SocketAddr,
    broker: Broker,
    stop: &CancellationToken,
    settings: Settings,
) -> Option<(Conn<S>, Claim)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Io {
        stream,
        rbuf: crate::gateway::readbuf::ReadBuf::default(),
        wbuf: BytesMut::new(),
        decoder: Decoder::new(settings.max_packet_size),
        version: ProtocolVersion::V311,
    };
    let first = tokio::select! {
        r = tokio::time::timeout(settings.connect_timeout, io.packet()) => r,
        () = stop.cancelled() => return None,
    };
    let connect = match first {
        Ok(Ok(Some(Packet::Connect(c)))) => *c,
        Ok(Ok(None)) => return None,
        Ok(Ok(Some(p))) => {
            tracing::info!(%peer, packet = p.packet_type(), "mqtt: first packet is not CONNECT; closing");
            return None;
        }
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "mqtt: bad CONNECT");
            if let Some((version, code)) = e.connack() {
                io.version = version;
                io.send(&Packet::ConnAck(ConnAck {
                    code,
                    ..ConnAck::default()
                }));
                let _ = io.flush().await;
            }
            return None;
        }
        Err(_) => {
            tracing::info!(%peer, "mqtt: no CONNECT in time; closing");
            return None;
        }
    };
    io.version = connect.version;
    open(io, peer, broker, settings, connect).await
}

/// A CONNACK refusing the connection: the 5.0 reason code, or the 3.1.1 return code.
fn refuse(version: ProtocolVersion, v5: ReasonCode, v3: u8) -> Packet {
    Packet::ConnAck(ConnAck {
        session_present: false,
        code: match version {
            ProtocolVersion::V5 => v5,
            ProtocolVersion::V311 => ReasonCode(v3),
        },
        properties: Default::default(),
    })
}

/// Authenticates, claims the client id, restores or starts the session and sends CONNACK.
async fn open<S>(
    mut io: Io<S>,
    peer: SocketAddr,
    broker: Broker,
    settings: Settings,
    connect: Connect,
) -> Option<(Conn<S>, Claim)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let v = connect.version;
    let v5 = v == ProtocolVersion::V5;
    let refused = |io: &mut Io<S>, p: Packet, why: &str| {
        tracing::info!(%peer, client_id = %connect.client_id, "mqtt: connection refused: {why}");
        io.send(&p);
    };
    if connect.properties.authentication_method.is_some() {
        refused(
            &mut io,
            refuse(v, ReasonCode::BAD_AUTHENTICATION_METHOD, 0x04),
            "enhanced authentication is not supported",
        );
        let _ = io.flush().await;
        return None;
    }
    // Client identifier rules: an empty one is assigned, except for a 3.1.1 client that asks
    // for a persistent session.
    let mut assigned = None;
    let client_id = if connect.client_id.is_empty() {
        if !v5 && !connect.clean_start {
            refused(
                &mut io,
                refuse(v, ReasonCode::CLIENT_IDENTIFIER_NOT_VALID, 0x02),
                "empty client id with clean session 0",
            );
            let _ = io.flush().await;
            return None;
        }
        let id = format!("junction-{:016x}", rand::random::<u64>());
        assigned = Some(id.clone());
        id
    } else {
        connect.client_id.clone()
    };
    // `vhost:user` names a virtual host, as RabbitMQ's MQTT plugin does.
    let (vhost, user, pass) = match (&connect.username, &settings.anonymous) {
        // RabbitMQ's ssl_cert_login: no user name, a verified certificate names the user.
        (None, _) if settings.cert_user.is_some() => (
            settings.vhost.clone(),
            settings.cert_user.clone().unwrap_or_default(),
            String::new(),
        ),
        (Some(u), _) => {
            let pass = connect
                .password
                .as_deref()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .unwrap_or_default();
            match u.split_once(':') {
                Some((vh, user)) if !vh.is_empty() => (vh.to_string(), user.to_string(), pass),
                _ => (settings.vhost.clone(), u.clone(), pass),
            }
        }
        (None, Some((u, p))) => (settings.vhost.clone(), u.clone(), p.clone()),
        (None, None) => {
            refused(
                &mut io,
                refuse(v, ReasonCode::NOT_AUTHORIZED, 0x05),
                "no user name and anonymous access is off",
            );
            let _ = io.flush().await;
            return None;
        }
    };
    let credential = if connect.username.is_none() && settings.cert_user.is_some() {
        Credential::Certificate
    } else {
        Credential::Password(&pass)
    };
    // Credentials first (bad user name or password), then the vhost and the limits (not
    // authorized, quota exceeded), so each refusal gets its own reason code.
    if let Err(e) = broker.authenticate_with(&user, credential, Some(peer), settings.protocol) {
        refused(
            &mut io,
            refuse(v, ReasonCode::BAD_USERNAME_OR_PASSWORD, 0x04),
            &e.to_string(),
        );
        let _ = io.flush().await;
        return None;
    }
    crate::gateway::handshakes::logged_in();
    let session = match broker.connect_with(
        &user,
        credential,
        &vhost,
        Some(peer),
        settings.protocol,
        &client_id,
    ) {
        Ok(s) => s,
        Err(e) => {
            // A connection limit is a quota (3.1.1: server unavailable), not bad credentials.
            let code = match e {
                CoreError::ResourceLimit(_) => refuse(v, ReasonCode::QUOTA_EXCEEDED, 0x03),
                _ => refuse(v, ReasonCode::NOT_AUTHORIZED, 0x05),
            };
            refused(&mut io, code, &e.to_string());
            let _ = io.flush().await;
            return None;
        }
    };

    let (claim, carry) = settings
        .registry
        .claim(&vhost, &client_id, session.id(), TAKEOVER_PATIENCE)
        .await;

    let expiry = if v5 {
        connect
            .properties
            .session_expiry_interval
            .unwrap_or(0)
            .min(settings.max_session_expiry)
    } else if connect.clean_start {
        0
    } else {
        settings.max_session_expiry
    };
    let queue = format!("mqtt-session-{client_id}");
    let client_recv_max = connect.properties.receive_maximum.unwrap_or(u16::MAX);
    let window = if v5 {
        client_recv_max.min(settings.receive_maximum.max(1))
    } else {
        settings.receive_maximum.max(1)
    };
    let mut conn = Conn {
        io,
        peer,
        session,
        queue,
        queue_tag: None,
        expiry,
        subs: BTreeMap::new(),
        shared: HashMap::new(),
        inflight: HashMap::new(),
        next_packet_id: 1,
        waiting: VecDeque::new(),
        window,
        client_max_packet: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
        client_alias_max: if v5 {
            connect.properties.topic_alias_maximum.unwrap_or(0)
        } else {
            0
        },
        out_aliases: HashMap::new(),
        carried_ids: HashMap::new(),
        in_aliases: HashMap::new(),
        pending: VecDeque::new(),
        held: None,
        last_seq: 0,
        confirmed: 0,
        qos2_in: HashMap::new(),
        will: connect.will.clone().map(Box::new),
        keep_alive: 0,
        client_id,
        vhost,
        settings,
    };

    let mut session_present = false;
    if connect.clean_start {
        if let Err(e) = conn.session.delete_queue(&conn.queue, false, false).await {
            tracing::warn!(client_id = %conn.client_id, error = %e, "mqtt: clearing the old session failed");
        }
    } else {
        match conn.restore().await {
            Ok(present) => session_present = present,
            Err(e) => {
                tracing::warn!(client_id = %conn.client_id, error = %e, "mqtt: restoring the session failed");
                conn.io
                    .send(&refuse(v, ReasonCode::SERVER_UNAVAILABLE, 0x03));
                let _ = conn.io.flush().await;
                conn.settings.registry.release(claim, Some(carry));
                conn.session.close().await;
                return None;
            }
        }
        if session_present {
            conn.qos2_in = carry.inbound_qos2.iter().map(|id| (*id, true)).collect();
            conn.carried_ids = carry.outbound_ids;
            for id in carry.outbound_released {
                conn.inflight.insert(
                    id,
                    Outbound {
                        delivery: None,
                        qos: QoS::ExactlyOnce,
                        released: true,
                        pos: None,
                    },
                );
            }
        }
    }

    if !session_present && expiry > 0 {
        // A persistent session exists from its first connection, subscriptions or not (its
        // QoS 2 state counts too).
        if let Err(e) = conn.ensure_queue().await {
            tracing::warn!(client_id = %conn.client_id, error = %e, "mqtt: creating the session failed");
        }
    }
    let mut ack = ConnAck {
        session_present,
        code: ReasonCode::SUCCESS,
        properties: Default::default(),
    };
    let mut keep_alive = connect.keep_alive;
    if v5 {
        let p = &mut ack.properties;
        p.assigned_client_identifier = assigned;
        p.receive_maximum = Some(conn.settings.receive_maximum.max(1));
        p.maximum_packet_size = Some(conn.settings.max_packet_size);
        p.topic_alias_maximum = Some(conn.settings.topic_alias_maximum);
        if connect.properties.session_expiry_interval.unwrap_or(0) != expiry {
            p.session_expiry_interval = Some(expiry);
        }
        let max_ka = conn.settings.max_keep_alive;
        if max_ka > 0 && (keep_alive == 0 || keep_alive > max_ka) {
            keep_alive = max_ka;
            p.server_keep_alive = Some(max_ka);
        }
        if connect.properties.request_response_information == Some(1) {
            p.response_information = Some(format!("reply/{}", conn.client_id));
        }
    }
    conn.io.send(&Packet::ConnAck(ack));
    // A persistent session resumes: the PUBRELs it still owes, then its messages.
    let released: Vec<u16> = conn
        .inflight
        .iter()
        .filter(|(_, o)| o.released)
        .map(|(id, _)| *id)
        .collect();
    for id in released {
        conn.io.send(&Packet::PubRel(PubResponse {
            packet_id: id,
            ..PubResponse::default()
        }));
    }
    if let Err(e) = conn.io.flush().await {
        tracing::debug!(peer = %conn.peer, error = %e, "mqtt: CONNACK not sent");
    }
    conn.keep_alive = keep_alive;
    tracing::debug!(peer = %conn.peer, client_id = %conn.client_id, version = ?v, session_present, "mqtt: connected");
    Some((conn, claim))
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(mut self, stop: CancellationToken, claim: Claim) {
        let ka = Duration::from_millis(u64::from(self.keep_alive) * 1500);
        let mut deadline = Instant::now() + ka;
        let kick = claim.kick.clone();
        // Closed from outside (admin API, a deleted user or vhost). Pinned once: registering
        // with the close signal every loop turn would cost a lock each.
        let closed = self.session.close_signal();
        let closed = closed.requested();
        tokio::pin!(closed);
        let close = loop {
            // Not read while a resource alarm holds a PUBLISH (RabbitMQ blocks a publishing
            // connection the same way); what is owed to the client still goes out.
            let reading = self.pending.len() < MAX_UNCONFIRMED && self.held.is_none();
            // Made only while a PUBLISH is held (its branch is disabled otherwise).
            let resumed = OptionFuture::from(
                self.held
                    .as_ref()
                    .map(|_| self.session.publishing_resumed()),
            );
            let step = tokio::select! {
                biased;
                () = stop.cancelled() => Err(Close {
                    reason: Some(ReasonCode::SERVER_SHUTTING_DOWN),
                    will: false,
                    why: "broker shutting down".into(),
                }),
                () = kick.cancelled() => Err(Close::protocol(
                    ReasonCode::SESSION_TAKEN_OVER,
                    "session taken over by another connection",
                )),
                reason = &mut closed => Err(Close::protocol(
                    ReasonCode::ADMINISTRATIVE_ACTION,
                    format!("closed by the broker: {reason}"),
                )),
                r = self.io.rbuf.read_from(&mut self.io.stream), if reading => match r {
                    Ok(0) | Err(_) => Err(Close {
                        reason: None,
                        will: true,
                        why: "connection lost".into(),
                    }),
                    Ok(_) => {
                        deadline = Instant::now() + ka;
                        // Boxed once per read (not per packet): packet handling's futures are
                        // large, and an idle connection should not carry their space.
                        Box::pin(self.input()).await
                    }
                },
                ev = self.session.next_event() => match ev {
                    Some(ev) => self.event(ev).await,
                    None => Ok(()),
                },
                Some(()) = resumed, if self.held.is_some() => {
                    // The client's PINGREQs waited unread: keep alive counts from now.
                    deadline = Instant::now() + ka;
                    Box::pin(self.resume()).await
                }
                () = tokio::time::sleep_until(deadline), if self.keep_alive > 0 && self.held.is_none() => Err(Close::protocol(
                    ReasonCode::KEEP_ALIVE_TIMEOUT,
                    "keep alive timeout",
                )),
            };
            let step = match step {
                Ok(()) => self.io.flush().await.map_err(|e| Close {
                    reason: None,
                    will: true,
                    why: format!("write failed: {e}"),
                }),
                Err(c) => Err(c),
            };
            if let Err(c) = step {
                break c;
            }
        };
        Box::pin(self.finish(close, claim)).await;
    }

    /// Handles every complete packet in the read buffer (until a PUBLISH is held).
    async fn input(&mut self) -> Result<(), Close> {
        while self.held.is_none() {
            let p = match self.io.decoder.decode(&mut self.io.rbuf) {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(()),
                Err(e) => return Err(Close::protocol(e.reason_code(), e.to_string())),
            };
            self.packet(p).await?;
        }
        Ok(())
    }

    /// The alarm that held a PUBLISH cleared: store it, then go on with what the client sent
    /// meanwhile.
    async fn resume(&mut self) -> Result<(), Close> {
        if let Some(h) = self.held.take() {
            self.store_publish(*h)?;
        }
        self.input().await
    }

    async fn packet(&mut self, p: Packet) -> Result<(), Close> {
        match p {
            Packet::Publish(p) => self.publish_in(p).await,
            Packet::PubAck(r) => {
                self.acked(r.packet_id, QoS::AtLeastOnce);
                Ok(())
            }
            Packet::PubRec(r) => {
                self.received(r);
                Ok(())
            }
            Packet::PubRel(r) => {
                let reason = if self.qos2_in.remove(&r.packet_id).is_some() {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.pub_response(Packet::PubComp, r.packet_id, reason);
                Ok(())
            }
            Packet::PubComp(r) => {
                self.acked(r.packet_id, QoS::ExactlyOnce);
                Ok(())
            }
            // Boxed (here and below): rare, with deep futures an idle connection should not carry.
            Packet::Subscribe(s) => Box::pin(self.subscribe(s)).await,
            Packet::Unsubscribe(u) => Box::pin(self.unsubscribe(u)).await,
            Packet::PingReq => {
                self.io.send(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => Err(self.disconnected(d)),
            Packet::Connect(_) => Err(Close::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "second CONNECT",
            )),
            Packet::Auth(_) => Err(Close::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "AUTH without enhanced authentication",
            )),
            other => Err(Close::protocol(
                ReasonCode::PROTOCOL_ERROR,
                format!("packet type {} is not sent by clients", other.packet_type()),
            )),
        }
    }

    fn disconnected(&mut self, d: ReasonOnly) -> Close {
        if let Some(e) = d.properties.session_expiry_interval {
            if self.expiry == 0 && e != 0 {
                return Close::protocol(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set on DISCONNECT after 0 on CONNECT",
                );
            }
            self.expiry = e.min(self.settings.max_session_expiry);
        }
        Close {
            reason: None,
            will: d.reason == ReasonCode::DISCONNECT_WITH_WILL,
            why: "client disconnected".into(),
        }
    }

    fn v5(&self) -> bool {
        self.io.version == ProtocolVersion::V5
    }

    /// Sends PUBACK/PUBREC/PUBREL/PUBCOMP (the reason code only in 5.0).
    fn pub_response(&mut self, make: fn(PubResponse) -> Packet, id: u16, reason: ReasonCode) {
        let reason = if self.v5() {
            reason
        } else {
            ReasonCode::SUCCESS
        };
        self.io.send(&make(PubResponse {
            packet_id: id,
            reason,
            properties: Default::default(),
        }));
    }

    // ---- From the client ----

    async fn publish_in(&mut self, mut p: Publish) -> Result<(), Close> {
        if self.v5() {
            if let Some(alias) = p.properties.topic_alias.take() {
                if alias == 0 || alias > self.settings.topic_alias_maximum {
                    return Err(Close::protocol(
                        ReasonCode::TOPIC_ALIAS_INVALID,
                        format!("topic alias {alias} out of range"),
                    ));
                }
                if p.topic.is_empty() {
                    match self.in_aliases.get(&alias) {
                        Some(t) => p.topic = t.clone(),
                        None => {
                            return Err(Close::protocol(
                                ReasonCode::PROTOCOL_ERROR,
                                format!("unknown topic alias {alias}"),
                            ))
                        }
                    }
                } else {
                    self.in_aliases.insert(alias, p.topic.clone());
                }
            }
        }
        if p.topic.is_empty() {
            return Err(Close::protocol(
                ReasonCode::PROTOCOL_ERROR,
                "PUBLISH without a topic",
            ));
        }
        let id = p.packet_id.unwrap_or(0);
        if p.qos == QoS::ExactlyOnce {
            match self.qos2_in.get(&id) {
                // A duplicate of a message already stored: acknowledge it again, store nothing.
                Some(true) => {
                    self.pub_response(Packet::PubRec, id, ReasonCode::SUCCESS);
                    return Ok(());
                }
                // Still being stored: its PUBREC follows the confirm.
                Some(false) => return Ok(()),
                None => {}
            }
        }
        if p.qos != QoS::AtMostOnce {
            let unacked = self.pending.len() + self.qos2_in.values().filter(|r| **r).count();
            if unacked >= usize::from(self.settings.receive_maximum.max(1)) && self.v5() {
                return Err(Close::protocol(
                    ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                    "more unacknowledged QoS 1 and 2 publishes than Receive Maximum",
                ));
            }
        }
        let rk = match topic::name_to_amqp(&p.topic) {
            Ok(rk) => rk,
            Err(_) => {
                return Err(Close::protocol(
                    ReasonCode::TOPIC_NAME_INVALID,
                    "invalid topic name",
                ))
            }
        };
        let msg = match mapping::message_in(&p, &self.client_id) {
            Ok(m) => m,
            Err(code) => {
                self.ack_after_pending(id, p.qos, code);
                return Ok(());
            }
        };
        self.store_publish(HeldPublish {
            packet_id: id,
            qos: p.qos,
            retain: p.retain,
            routing_key: rk,
            message: msg,
        })
    }

    /// Stores a PUBLISH; its acknowledgement follows the store's confirm. A resource alarm
    /// holds it instead (the socket is not read until it clears).
    fn store_publish(&mut self, h: HeldPublish) -> Result<(), Close> {
        let (id, qos) = (h.packet_id, h.qos);
        match self
            .session
            .publish(&self.settings.exchange, &h.routing_key, &h.message)
        {
            Ok(pd) => {
                self.last_seq = pd.seq;
                if qos != QoS::AtMostOnce {
                    let reason = if pd.unroutable() && !h.retain {
                        ReasonCode::NO_MATCHING_SUBSCRIBERS
                    } else {
                        ReasonCode::SUCCESS
                    };
                    if qos == QoS::ExactlyOnce {
                        self.qos2_in.insert(id, false);
                    }
                    self.pending.push_back(PendingAck {
                        after: pd.seq,
                        packet_id: id,
                        qos,
                        reason,
                    });
                }
                Ok(())
            }
            Err(CoreError::Blocked(why)) => {
                tracing::debug!(client_id = %self.client_id, why, "mqtt: PUBLISH held by a resource alarm");
                self.held = Some(Box::new(h));
                Ok(())
            }
            Err(CoreError::AccessRefused(why)) => {
                tracing::info!(client_id = %self.client_id, %why, "mqtt: publish refused");
                self.ack_after_pending(id, qos, ReasonCode::NOT_AUTHORIZED);
                Ok(())
            }
            Err(e) if self.v5() => {
                tracing::warn!(client_id = %self.client_id, error = %e, "mqtt: publish failed");
                let code = match e {
                    CoreError::ResourceLimit(_) => ReasonCode::QUOTA_EXCEEDED,
                    CoreError::Invalid(_) => ReasonCode::PACKET_TOO_LARGE,
                    _ => ReasonCode::UNSPECIFIED_ERROR,
                };
                self.ack_after_pending(id, qos, code);
                Ok(())
            }
            Err(e) => Err(Close::protocol(
                ReasonCode::UNSPECIFIED_ERROR,
                format!("publish failed: {e}"),
            )),
        }
    }

    /// Queues an acknowledgement that carries no store confirm (a refusal), behind the
    /// publishes still being confirmed.
    fn ack_after_pending(&mut self, id: u16, qos: QoS, reason: ReasonCode) {
        if qos == QoS::AtMostOnce {
            return;
        }
        self.pending.push_back(PendingAck {
            after: self.last_seq,
            packet_id: id,
            qos,
            reason,
        });
        self.release_acks();
    }

    fn release_acks(&mut self) {
        while self
            .pending
            .front()
            .is_some_and(|a| a.after <= self.confirmed)
        {
            let Some(a) = self.pending.pop_front() else {
                break;
            };
            if a.qos == QoS::ExactlyOnce {
                if a.reason.is_error() {
                    self.qos2_in.remove(&a.packet_id);
                } else {
                    self.qos2_in.insert(a.packet_id, true);
                }
                self.pub_response(Packet::PubRec, a.packet_id, a.reason);
            } else {
                self.pub_response(Packet::PubAck, a.packet_id, a.reason);
            }
        }
    }

    // ---- Towards the client ----

    async fn event(&mut self, ev: SessionEvent) -> Result<(), Close> {
        self.one_event(ev)?;
        for _ in 0..EVENT_BATCH {
            let Some(ev) = self.session.try_next_event() else {
                break;
            };
            self.one_event(ev)?;
        }
        Ok(())
    }

    fn one_event(&mut self, ev: SessionEvent) -> Result<(), Close> {
        match ev {
            SessionEvent::Delivery(d) => self.delivery(*d),
            SessionEvent::Confirmed { up_to } => {
                self.confirmed = self.confirmed.max(up_to);
                self.release_acks();
            }
            SessionEvent::ConfirmFailed { up_to } => {
                if !self.v5() {
                    return Err(Close::protocol(
                        ReasonCode::UNSPECIFIED_ERROR,
                        "storing a publish failed",
                    ));
                }
                for a in self.pending.iter_mut().filter(|a| a.after <= up_to) {
                    a.reason = ReasonCode::UNSPECIFIED_ERROR;
                }
                self.confirmed = self.confirmed.max(up_to);
                self.release_acks();
            }
            SessionEvent::Cancelled { consumer, reason } => {
                tracing::info!(client_id = %self.client_id, %consumer, %reason, "mqtt: subscription queue went away");
                if self.queue_tag.as_ref() == Some(&consumer) {
                    self.queue_tag = None;
                    self.subs.clear();
                }
                self.shared.remove(&consumer);
            }
            SessionEvent::Assignment { .. } => {}
        }
        Ok(())
    }

    /// A message from the session queue or a shared subscription.
    fn delivery(&mut self, d: Delivery) {
        let topic = topic::amqp_to_name(&d.routing_key).unwrap_or_else(|_| d.routing_key.clone());
        let pub_qos = mapping::published_qos(&d.message.properties);
        let own = d.message.properties.origin.as_deref() == Some(self.client_id.as_str());
        let (max_qos, rap, sub_ids) = if let Some(s) = self.shared.get(&d.consumer) {
            (s.opts.qos, false, s.id.into_iter().collect::<Vec<_>>())
        } else {
            let mut max_qos = None;
            let mut rap = false;
            let mut ids = Vec::new();
            for s in self.subs.values() {
                if !topic::matches(&topic, &s.filter) || (own && s.opts.no_local) {
                    continue;
                }
                max_qos = max_qos.max(Some(s.opts.qos));
                rap |= s.opts.retain_as_published;
                ids.extend(s.id);
            }
            match max_qos {
                Some(q) => (q, rap, ids),
                None => {
                    // No subscription of this session wants it (a `$` topic under a wildcard,
                    // No Local, or a binding being removed).
                    let _ = self.session.settle(d.id, Settle::Ack);
                    return;
                }
            }
        };
        let remaining_ttl_ms = match d.message.properties.ttl_ms {
            Some(ttl) => {
                let age = (super::now_ms() - d.store_ts).max(0) as u64;
                if age >= ttl {
                    let _ = self.session.settle(d.id, Settle::Ack);
                    return;
                }
                Some(ttl - age)
            }
            None => None,
        };
        let retain = rap && d.message.properties.retain;
        self.send_out(OutMsg {
            topic,
            qos: pub_qos.min(max_qos),
            retain,
            dup: d.redelivered,
            sub_ids,
            pos: Some((d.queue.clone(), d.partition, d.offset)),
            delivery: Some(d.id),
            message: d.message,
            remaining_ttl_ms,
        });
    }

    /// Sends a message now, or holds it while the client's receive maximum is used up.
    pub(super) fn send_out(&mut self, m: OutMsg) {
        if m.qos != QoS::AtMostOnce && self.inflight.len() >= usize::from(self.window) {
            self.waiting.push_back(m);
            return;
        }
        let packet_id = if m.qos == QoS::AtMostOnce {
            None
        } else {
            let carried = m.pos.as_ref().and_then(|p| self.carried_ids.remove(p));
            let id = match carried.filter(|id| !self.inflight.contains_key(id)) {
                Some(id) => id,
                None => self.next_id(),
            };
            self.inflight.insert(
                id,
                Outbound {
                    delivery: m.delivery,
                    qos: m.qos,
                    released: false,
                    pos: m.pos.clone(),
                },
            );
            Some(id)
        };
        let v5 = self.v5();
        let mut publish = Publish {
            dup: m.dup && m.qos != QoS::AtMostOnce,
            qos: m.qos,
            retain: m.retain,
            topic: m.topic,
            packet_id,
            properties: if v5 {
                mapping::properties_out(&m.message.properties, m.remaining_ttl_ms, m.sub_ids)
            } else {
                Default::default()
            },
            payload: m.message.body,
        };
        let start = self.io.wbuf.len();
        self.io.send(&Packet::Publish(publish.clone()));
        let size = self.io.wbuf.len() - start;
        if size as u64 > u64::from(self.client_max_packet) {
            // Larger than the client accepts: discarded, as if delivered (MQTT-3.1.2-25).
            self.io.wbuf.truncate(start);
            if let Some(id) = packet_id {
                self.inflight.remove(&id);
            }
            if let Some(d) = m.delivery {
                let _ = self.session.settle(d, Settle::Ack);
            }
            return;
        }
        if v5 && self.client_alias_max > 0 {
            let alias = match self.out_aliases.get(&publish.topic) {
                Some(a) => {
                    publish.topic.clear();
                    Some(*a)
                }
                None if self.out_aliases.len() < usize::from(self.client_alias_max) => {
                    let a = self.out_aliases.len() as u16 + 1;
                    self.out_aliases.insert(publish.topic.clone(), a);
                    Some(a)
                }
                None => None,
            };
            if alias.is_some() {
                publish.properties.topic_alias = alias;
                self.io.wbuf.truncate(start);
                self.io.send(&Packet::Publish(publish));
            }
        }
        if packet_id.is_none() {
            if let Some(d) = m.delivery {
                let _ = self.session.settle(d, Settle::Ack);
            }
        }
    }

    /// A packet identifier not in flight, preferring ones not reserved for a redelivery. The
    /// window keeps the in-flight set below 65,535, so one is always free.
    fn next_id(&mut self) -> u16 {
        let mut fallback = None;
        for _ in 0..=u16::MAX {
            let id = self.next_packet_id;
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            if self.inflight.contains_key(&id) {
                continue;
            }
            if !self.carried_ids.values().any(|c| *c == id) {
                return id;
            }
            fallback.get_or_insert(id);
        }
        fallback.unwrap_or(1)
    }

    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) from the client: the packet identifier is free.
    fn acked(&mut self, id: u16, qos: QoS) {
        let matches = self
            .inflight
            .get(&id)
            .is_some_and(|o| o.qos == qos && (qos == QoS::AtLeastOnce || o.released));
        if !matches {
            return;
        }
        if let Some(o) = self.inflight.remove(&id) {
            if let (Some(d), QoS::AtLeastOnce) = (o.delivery, qos) {
                let _ = self.session.settle(d, Settle::Ack);
            }
        }
        self.drain_waiting();
    }

    /// PUBREC: the client has the message; settle it and release the identifier.
    fn received(&mut self, r: PubResponse) {
        let Some(o) = self.inflight.get_mut(&r.packet_id) else {
            if self.v5() {
                self.pub_response(
                    Packet::PubRel,
                    r.packet_id,
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                );
            }
            return;
        };
        if o.qos != QoS::ExactlyOnce {
            return;
        }
        if let Some(d) = o.delivery.take() {
            let _ = self.session.settle(d, Settle::Ack);
        }
        o.pos = None;
        if r.reason.is_error() {
            self.inflight.remove(&r.packet_id);
            self.drain_waiting();
            return;
        }
        o.released = true;
        self.pub_response(Packet::PubRel, r.packet_id, ReasonCode::SUCCESS);
    }

    pub(super) fn drain_waiting(&mut self) {
        while self.inflight.len() < usize::from(self.window) {
            let Some(m) = self.waiting.pop_front() else {
                return;
            };
            self.send_out(m);
        }
    }

    // ---- The end ----

    async fn finish(mut self, close: Close, claim: Claim) {
        let log_level_info = close.reason.is_some_and(|r| r.is_error());
        if log_level_info {
            tracing::info!(peer = %self.peer, client_id = %self.client_id, reason = close.reason.map(|r| r.0), why = %close.why, "mqtt: closing connection");
        } else {
            tracing::debug!(peer = %self.peer, client_id = %self.client_id, why = %close.why, "mqtt: connection closed");
        }
        if let (Some(reason), true) = (close.reason, self.v5()) {
            self.io.send(&Packet::Disconnect(ReasonOnly {
                reason,
                properties: Default::default(),
            }));
            let _ = tokio::time::timeout(Duration::from_secs(1), self.io.flush()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.stream.shutdown()).await;

        // What a persistent session carries to its next connection.
        let carry = (self.expiry > 0).then(|| Carry {
            inbound_qos2: self
                .qos2_in
                .iter()
                .filter(|(_, stored)| **stored)
                .map(|(id, _)| *id)
                .collect(),
            outbound_released: self
                .inflight
                .iter()
                .filter(|(_, o)| o.released)
                .map(|(id, _)| *id)
                .collect(),
            outbound_ids: self
                .inflight
                .iter()
                .filter_map(|(id, o)| o.pos.clone().map(|p| (p, *id)))
                .collect(),
        });

        let will = if close.will { self.will.take() } else { None };
        let will_session = will.as_ref().map(|_| self.session.open_sibling());
        if self.queue_tag.is_some() {
            let q = self.queue.clone();
            let r = if self.expiry == 0 {
                self.session
                    .delete_queue(&q, false, false)
                    .await
                    .map(|_| ())
            } else {
                // The interval in force now (CONNECT's, or DISCONNECT's if it changed it).
                let ms = (self.expiry != u32::MAX).then(|| u64::from(self.expiry) * 1000);
                self.session.set_queue_expiry(&q, ms)
            };
            if let Err(e) = r {
                tracing::warn!(client_id = %self.client_id, error = %e, "mqtt: ending or keeping the session failed");
            }
        }
        self.session.close().await;
        if let (Some(w), Some(s)) = (will, will_session) {
            publish_will(
                s,
                *w,
                self.expiry,
                &self.settings,
                &self.vhost,
                &self.client_id,
            );
        }
        self.settings.registry.release(claim, carry);
        if close.reason.is_some() {
            // The broker closed: read what the client still sends (PUBRELs for PUBRECs it was
            // reading, say) until it closes too, so it reads our DISCONNECT instead of a reset.
            let mut sink = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while matches!(self.io.stream.read(&mut sink).await, Ok(n) if n > 0) {}
            })
            .await;
        }
    }
}

/// Publishes a will now, or after its delay (unless the client comes back first or the
/// session ends first: MQTT 5.0 §3.1.3.2.2).
/// Publishes a will, waiting out a resource alarm (a will is held, as any publish).
async fn publish_waiting(
    s: &mut Session,
    exchange: &str,
    rk: &str,
    msg: &Message,
) -> Result<(), CoreError> {
    loop {
        match s.publish(exchange, rk, msg) {
            Err(CoreError::Blocked(why)) => {
                tracing::debug!(why, "mqtt: will held by a resource alarm");
                s.publishing_resumed().await;
            }
            r => return r.map(|_| ()),
        }
    }
}

fn publish_will(
    mut s: Session,
    w: Will,
    expiry: u32,
    settings: &Settings,
    vhost: &str,
    client_id: &str,
) {
    let delay = w.properties.will_delay_interval.unwrap_or(0).min(expiry);
    let publish = mapping::will_publish(&w);
    let rk = match topic::name_to_amqp(&publish.topic) {
        Ok(rk) => rk,
        Err(_) => return,
    };
    let msg = match mapping::message_in(&publish, client_id) {
        Ok(m) => m,
        Err(_) => return,
    };
    let exchange = settings.exchange.clone();
    if delay == 0 {
        let client_id = client_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = publish_waiting(&mut s, &exchange, &rk, &msg).await {
                tracing::warn!(%client_id, error = %e, "mqtt: will not published");
            }
            s.close().await
        });
        return;
    }
    let id = s.id();
    let registry = std::sync::Arc::clone(&settings.registry);
    let cancel = registry.delay_will(vhost, client_id, id);
    let (vhost, client_id) = (vhost.to_string(), client_id.to_string());
    tokio::spawn(async move {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {
                if let Err(e) = publish_waiting(&mut s, &exchange, &rk, &msg).await {
                    tracing::warn!(%client_id, error = %e, "mqtt: delayed will not published");
                }
            }
            () = cancel.cancelled() => {}
        }
        registry.will_done(&vhost, &client_id, id);
        s.close().await;
    });
}
