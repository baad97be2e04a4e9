//! MQTT test clients: rumqttc (3.1.1 and 5.0) driven in the background with their events on a
//! channel, and a raw client on junction-mqtt's codec for exact packets and bad input.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use junction_mqtt::{Connect, Decoder, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Generous deadline for anything the broker should do.
pub const DEADLINE: Duration = Duration::from_secs(20);
/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(500);

/// A rumqttc 3.1.1 client whose event loop runs in the background.
pub struct V4 {
    /// The client handle.
    pub client: rumqttc::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::Packet, String>>,
    task: tokio::task::JoinHandle<()>,
}

/// Options for a 3.1.1 client of `addr`.
pub fn v4_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

impl V4 {
    /// Connects with clean session and waits for the CONNACK.
    pub async fn connect(addr: SocketAddr, id: &str) -> V4 {
        V4::with(v4_options(addr, id)).await
    }

    /// Connects with `opts`, waits for the CONNACK and checks it accepted.
    pub async fn with(opts: rumqttc::MqttOptions) -> V4 {
        let mut c = V4::start(opts);
        match c.next().await {
            Ok(rumqttc::Packet::ConnAck(a)) => {
                assert_eq!(a.code, rumqttc::ConnectReturnCode::Success, "{a:?}")
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
        c
    }

    /// Starts the event loop without waiting for anything.
    pub fn start(opts: rumqttc::MqttOptions) -> V4 {
        let (client, mut el) = rumqttc::AsyncClient::new(opts, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(rumqttc::Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        V4 {
            client,
            events,
            task,
        }
    }

    /// The next incoming packet (pings skipped), or the error that ended the event loop.
    pub async fn next(&mut self) -> Result<rumqttc::Packet, String> {
        loop {
            match tokio::time::timeout(DEADLINE, self.events.recv()).await {
                Ok(Some(Ok(rumqttc::Packet::PingResp))) => continue,
                Ok(Some(r)) => return r,
                Ok(None) => return Err("event loop ended".into()),
                Err(_) => panic!("no MQTT event within {DEADLINE:?}"),
            }
        }
    }

    /// What has come in and not been taken yet (pings skipped), without waiting.
    pub fn received_now(&mut self) -> Vec<Result<rumqttc::Packet, String>> {
        let mut all = Vec::new();
        while let Ok(r) = self.events.try_recv() {
            if !matches!(r, Ok(rumqttc::Packet::PingResp)) {
                all.push(r);
            }
        }
        all
    }

    /// The next PUBLISH, skipping acknowledgements.
    pub async fn publish(&mut self) -> rumqttc::Publish {
        loop {
            match self.next().await {
                Ok(rumqttc::Packet::Publish(p)) => return p,
                Ok(_) => {}
                Err(e) => panic!("connection ended waiting for a PUBLISH: {e}"),
            }
        }
    }

    /// Waits for a packet matching `f`, skipping others.
    pub async fn until<T>(&mut self, mut f: impl FnMut(&rumqttc::Packet) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Ok(p) => {
                    if let Some(t) = f(&p) {
                        return t;
                    }
                }
                Err(e) => panic!("connection ended: {e}"),
            }
        }
    }

    /// Subscribes and waits for the SUBACK; returns its return codes.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.expect("subscribe");
        self.until(|p| match p {
            rumqttc::Packet::SubAck(a) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// No PUBLISH arrives for a while.
    pub async fn no_publish(&mut self) {
        let end = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => return,
                Ok(Some(Ok(rumqttc::Packet::Publish(p)))) => panic!("unexpected {p:?}"),
                Ok(_) => {}
            }
        }
    }

    /// Disconnects cleanly and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(DEADLINE, async {
            while let Some(Ok(_)) = self.events.recv().await {}
        })
        .await;
        self.task.abort();
    }

    /// Drops the connection without DISCONNECT (as a crashed device would).
    pub fn kill(self) {
        self.task.abort();
    }
}

/// A rumqttc 5.0 client whose event loop runs in the background.
pub struct V5 {
    /// The client handle.
    pub client: rumqttc::v5::AsyncClient,
    events: mpsc::UnboundedReceiver<Result<rumqttc::v5::mqttbytes::v5::Packet, String>>,
    task: tokio::task::JoinHandle<()>,
}

/// Options for a 5.0 client of `addr`.
pub fn v5_options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

type V5Packet = rumqttc::v5::mqttbytes::v5::Packet;

impl V5 {
    /// Connects and waits for a successful CONNACK; returns it too.
    pub async fn with(opts: rumqttc::v5::MqttOptions) -> (V5, rumqttc::v5::mqttbytes::v5::ConnAck) {
        let mut c = V5::start(opts);
        match c.next().await {
            Ok(V5Packet::ConnAck(a)) => {
                assert_eq!(
                    a.code,
                    rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success,
                    "{a:?}"
                );
                (c, a)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Connects with a clean start.
    pub async fn connect(addr: SocketAddr, id: &str) -> V5 {
        V5::with(v5_options(addr, id)).await.0
    }

    /// Starts the event loop without waiting for anything.
    pub fn start(opts: rumqttc::v5::MqttOptions) -> V5 {
        let (client, mut el) = rumqttc::v5::AsyncClient::new(opts, 1000);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::v5::Event::Incoming(p)) => {
                        if tx.send(Ok(p)).is_err() {
                            return;
                        }
                    }
                    Ok(rumqttc::v5::Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        V5 {
            client,
            events,
            task,
        }
    }

    /// The next incoming packet (pings skipped), or the error that ended the event loop.
    pub async fn next(&mut self) -> Result<V5Packet, String> {
        loop {
            match tokio::time::timeout(DEADLINE, self.events.recv()).await {
                Ok(Some(Ok(V5Packet::PingResp(_)))) => continue,
                Ok(Some(r)) => return r,
                Ok(None) => return Err("event loop ended".into()),
                Err(_) => panic!("no MQTT event within {DEADLINE:?}"),
            }
        }
    }

    /// The next PUBLISH, skipping acknowledgements.
    pub async fn publish(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        loop {
            match self.next().await {
                Ok(V5Packet::Publish(p)) => return p,
                Ok(_) => {}
                Err(e) => panic!("connection ended waiting for a PUBLISH: {e}"),
            }
        }
    }

    /// Waits for a packet matching `f`, skipping others.
    pub async fn until<T>(&mut self, mut f: impl FnMut(&V5Packet) -> Option<T>) -> T {
        loop {
            match self.next().await {
                Ok(p) => {
                    if let Some(t) = f(&p) {
                        return t;
                    }
                }
                Err(e) => panic!("connection ended: {e}"),
            }
        }
    }

    /// Subscribes and waits for the SUBACK.
    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.expect("subscribe");
        self.until(|p| match p {
            V5Packet::SubAck(a) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// No PUBLISH arrives for a while.
    pub async fn no_publish(&mut self) {
        let end = tokio::time::Instant::now() + QUIET;
        loop {
            match tokio::time::timeout_at(end, self.events.recv()).await {
                Err(_) => return,
                Ok(Some(Ok(V5Packet::Publish(p)))) => panic!("unexpected {p:?}"),
                Ok(_) => {}
            }
        }
    }

    /// Disconnects cleanly and waits for the event loop to end.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(DEADLINE, async {
            while let Some(Ok(_)) = self.events.recv().await {}
        })
        .await;
        self.task.abort();
    }

    /// Drops the connection without DISCONNECT.
    pub fn kill(self) {
        self.task.abort();
    }
}

/// A client speaking exact packets through junction-mqtt's codec.
pub struct Raw {
    stream: TcpStream,
    rbuf: BytesMut,
    decoder: Decoder,
    /// Version used to encode.
    pub version: ProtocolVersion,
}

impl Raw {
    /// Opens a TCP connection.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.expect("connect"),
            rbuf: BytesMut::new(),
            decoder: Decoder::with_version(version, 1 << 24),
            version,
        }
    }

    /// Opens and sends CONNECT; returns the client and the CONNACK.
    pub async fn connect(addr: SocketAddr, c: Connect) -> (Raw, junction_mqtt::ConnAck) {
        let mut r = Raw::open(addr, c.version).await;
        r.send(&Packet::Connect(Box::new(c))).await;
        match r.recv().await {
            Some(Packet::ConnAck(a)) => (r, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Sends a packet.
    pub async fn send(&mut self, p: &Packet) {
        let mut b = BytesMut::new();
        junction_mqtt::encode(p, self.version, &mut b).expect("encode");
        self.stream.write_all(&b).await.expect("write");
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, b: &[u8]) {
        self.stream.write_all(b).await.expect("write");
    }

    /// The next packet, or `None` once the broker closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(DEADLINE, async {
            loop {
                if let Some(p) = self.decoder.decode(&mut self.rbuf).expect("valid packet") {
                    return Some(p);
                }
                match self.stream.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("broker answered in time")
    }

    /// The next packet that is not a PINGRESP.
    pub async fn recv_skip_ping(&mut self) -> Option<Packet> {
        loop {
            match self.recv().await {
                Some(Packet::PingResp) => continue,
                other => return other,
            }
        }
    }

    /// Nothing arrives for a while (the connection stays open and quiet).
    pub async fn quiet(&mut self) {
        let r = tokio::time::timeout(QUIET, async {
            loop {
                if let Some(p) = self.decoder.decode(&mut self.rbuf).expect("valid packet") {
                    return Some(p);
                }
                match self.stream.read_buf(&mut self.rbuf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await;
        if let Ok(p) = r {
            panic!("expected silence, got {p:?}");
        }
    }
}

/// A CONNECT with the usual defaults.
pub fn connect_packet(version: ProtocolVersion, id: &str, clean: bool) -> Connect {
    Connect {
        version,
        clean_start: clean,
        keep_alive: 30,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    }
}
