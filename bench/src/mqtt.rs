//! MQTT 3.1.1 and 5.0 through rumqttc: publishers publish to one topic at QoS 0, 1 or 2 while
//! subscribers receive it, either each of them every message (fan-out, `--consumers N`) or as
//! one shared subscription `$share/bench/<topic>` (competing consumers, `--shared`), or as
//! responders to the producers' requests (`--request-reply`, round-trip latency). Works
//! against any MQTT broker (Junction, Mosquitto, RabbitMQ's MQTT plugin).
//!
//! A publisher counts a message as sent once the broker acknowledged it (PUBACK at QoS 1,
//! PUBCOMP at QoS 2) or, at QoS 0, once rumqttc wrote it to the socket; at most `--window`
//! QoS 1 and 2 publishes are unacknowledged per publisher (rumqttc's in-flight limit). QoS 0
//! may lose messages by design: its losses are reported, not an error.

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use rumqttc::v5;
use tokio::sync::watch;

use crate::measure::{report, Shared, Workload};

/// How long a write may stall (rumqttc's network timeout, 5 s by default) before the run fails:
/// a broker busy fanning out may stop reading a publisher for seconds (Mosquitto does).
const STALL_S: u64 = 60;

/// MQTT protocol version.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MqttVersion {
    /// MQTT 3.1.1.
    #[value(name = "3.1.1", alias = "4")]
    V4,
    /// MQTT 5.0.
    #[value(name = "5", alias = "5.0")]
    V5,
}

/// Options of the MQTT run.
#[derive(Args, Clone)]
pub struct MqttArgs {
    /// Broker address (host:port).
    #[arg(long, default_value = "127.0.0.1:1883")]
    addr: String,
    /// Protocol version.
    #[arg(long = "mqtt", value_enum, default_value_t = MqttVersion::V4)]
    version: MqttVersion,
    /// QoS of publishes and subscriptions.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Topic (a suffix with the process id keeps runs apart); default `<queue>/<pid>`.
    #[arg(long)]
    topic: Option<String>,
    /// Subscribers share one subscription (`$share/bench/<topic>`): each message goes to one
    /// of them. Without it every subscriber gets every message (fan-out).
    #[arg(long)]
    shared: bool,
    /// Request/reply: each producer publishes requests to `<topic>/req` and waits for the
    /// replies on `<topic>/reply/<producer>`; the consumers answer (sharing one subscription
    /// when there are several). At most `--window` requests are outstanding per producer;
    /// latency is the round trip.
    #[arg(long, conflicts_with = "shared")]
    request_reply: bool,
    #[command(flatten)]
    w: Workload,
}

impl MqttArgs {
    /// The shared workload options.
    pub fn workload(&self) -> &Workload {
        &self.w
    }

    fn mode(&self) -> String {
        format!(
            "{} qos{}{}",
            match self.version {
                MqttVersion::V4 => "3.1.1",
                MqttVersion::V5 => "5.0",
            },
            self.qos,
            if self.shared {
                " shared"
            } else if self.request_reply {
                " request/reply"
            } else {
                ""
            }
        )
    }

    fn host_port(&self) -> anyhow::Result<(String, u16)> {
        let (h, p) = self
            .addr
            .rsplit_once(':')
            .context("--addr must be host:port")?;
        Ok((h.to_string(), p.parse().context("--addr port")?))
    }
}

/// A client handle of either version.
#[derive(Clone)]
enum Client {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// An event loop of either version.
enum Loop {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

/// What the run cares about in the events of either version.
enum Ev {
    Message(Bytes),
    /// PUBACK (QoS 1) or PUBCOMP (QoS 2) of one of our publishes.
    Acked,
    /// One of our publishes written to the socket.
    Written,
    /// SUBACK: whether the subscription was granted.
    SubAck(bool),
    ConnAck,
    Other,
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn qos5(q: u8) -> v5::mqttbytes::QoS {
    match q {
        0 => v5::mqttbytes::QoS::AtMostOnce,
        1 => v5::mqttbytes::QoS::AtLeastOnce,
        _ => v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Client {
    async fn subscribe(&self, filter: &str, qos: u8) -> anyhow::Result<()> {
        match self {
            Client::V4(c) => c.subscribe(filter, qos4(qos)).await?,
            Client::V5(c) => c.subscribe(filter, qos5(qos)).await?,
        }
        Ok(())
    }

    async fn publish(&self, topic: &str, qos: u8, body: Bytes) -> anyhow::Result<()> {
        match self {
            Client::V4(c) => c.publish_bytes(topic, qos4(qos), false, body).await?,
            Client::V5(c) => c.publish_bytes(topic, qos5(qos), false, body).await?,
        }
        Ok(())
    }
}

impl Loop {
    async fn next(&mut self) -> anyhow::Result<Ev> {
        use rumqttc::{Event, Outgoing, Packet};
        Ok(match self {
            Loop::V4(l) => match l.poll().await? {
                Event::Incoming(Packet::Publish(p)) => Ev::Message(p.payload),
                Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_)) => Ev::Acked,
                Event::Incoming(Packet::SubAck(s)) => Ev::SubAck(
                    s.return_codes
                        .iter()
                        .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                ),
                Event::Incoming(Packet::ConnAck(_)) => Ev::ConnAck,
                Event::Outgoing(Outgoing::Publish(_)) => Ev::Written,
                _ => Ev::Other,
            },
            Loop::V5(l) => {
                use v5::mqttbytes::v5::{Packet as P5, SubscribeReasonCode};
                match l.poll().await? {
                    v5::Event::Incoming(P5::Publish(p)) => Ev::Message(p.payload),
                    v5::Event::Incoming(P5::PubAck(_) | P5::PubComp(_)) => Ev::Acked,
                    v5::Event::Incoming(P5::SubAck(s)) => Ev::SubAck(
                        s.return_codes
                            .iter()
                            .all(|c| matches!(c, SubscribeReasonCode::Success(_))),
                    ),
                    v5::Event::Incoming(P5::ConnAck(_)) => Ev::ConnAck,
                    v5::Event::Outgoing(Outgoing::Publish(_)) => Ev::Written,
                    _ => Ev::Other,
                }
            }
        })
    }
}

/// Connects one client (clean session) and waits for its CONNACK.
async fn connect(a: &MqttArgs, id: String, publisher: bool) -> anyhow::Result<(Client, Loop)> {
    let (host, port) = a.host_port()?;
    let w = &a.w;
    let window = w.window.clamp(1, u16::MAX as usize) as u16;
    let cap = if publisher { 4096 } else { 16 };
    let (client, mut lp) = match a.version {
        MqttVersion::V4 => {
            let mut o = rumqttc::MqttOptions::new(id, host, port);
            o.set_keep_alive(std::time::Duration::from_secs(30))
                .set_clean_session(true)
                .set_credentials(w.user.clone(), w.password.clone())
                .set_max_packet_size(w.size + 1024, w.size + 1024)
                .set_inflight(window)
                .set_request_channel_capacity(cap);
            let (c, mut l) = rumqttc::AsyncClient::new(o, cap);
            let mut n = rumqttc::NetworkOptions::new();
            n.set_connection_timeout(STALL_S);
            l.set_network_options(n);
            (Client::V4(c), Loop::V4(Box::new(l)))
        }
        MqttVersion::V5 => {
            let mut o = v5::MqttOptions::new(id, host, port);
            o.set_keep_alive(std::time::Duration::from_secs(30))
                .set_clean_start(true)
                .set_credentials(w.user.clone(), w.password.clone())
                .set_max_packet_size(Some((w.size + 1024) as u32))
                .set_outgoing_inflight_upper_limit(window)
                .set_receive_maximum(Some(w.prefetch.clamp(1, u16::MAX as u32) as u16))
                .set_request_channel_capacity(cap)
                .set_connection_timeout(STALL_S);
            let (c, l) = v5::AsyncClient::new(o, cap);
            (Client::V5(c), Loop::V5(Box::new(l)))
        }
    };
    match lp
        .next()
        .await
        .with_context(|| format!("connecting to {}", a.addr))?
    {
        Ev::ConnAck => Ok((client, lp)),
        _ => bail!("the broker did not answer CONNECT with CONNACK"),
    }
}

/// One MQTT run.
pub async fn run(a: MqttArgs) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let pid = std::process::id();
    let topic = a.topic.clone().unwrap_or(format!("{}/{pid}", w.queue));
    if a.request_reply {
        return request_reply(&a, &topic).await;
    }
    let filter = if a.shared {
        format!("$share/bench/{topic}")
    } else {
        topic.clone()
    };
    let views = if a.shared { 1 } else { w.consumers };
    let shared = Shared::for_run(w, views, a.qos == 0)?;

    let mut consumers = Vec::new();
    let mut keep = Vec::new();
    for i in 0..w.consumers {
        let (client, mut lp) = connect(&a, format!("bench-{pid}-sub-{i}"), false).await?;
        client.subscribe(&filter, a.qos).await?;
        // Subscribed once SUBACK is back: nothing published before it is missed.
        loop {
            match lp.next().await? {
                Ev::SubAck(true) => break,
                Ev::SubAck(false) => bail!("SUBSCRIBE {filter} was refused"),
                _ => {}
            }
        }
        keep.push(client);
        let sh = Arc::clone(&shared);
        let view = if a.shared { 0 } else { i };
        consumers.push(tokio::spawn(subscriber(lp, sh, view)));
    }

    let mut producers = Vec::new();
    for pi in 0..w.producers {
        let (client, lp) = connect(&a, format!("bench-{pid}-pub-{pi}"), true).await?;
        let sh = Arc::clone(&shared);
        let (w, topic, qos) = (w.clone(), topic.clone(), a.qos);
        producers.push(tokio::spawn(async move {
            publish(client, lp, sh, w, topic, qos, pi as u64).await
        }));
    }

    let o = shared.finish(producers, consumers).await?;
    for c in keep {
        match c {
            Client::V4(c) => c.try_disconnect().ok(),
            Client::V5(c) => c.try_disconnect().ok(),
        };
    }
    report("mqtt", &a.mode(), w, &shared, o)
}

/// One publisher: publishes at its pace, then waits until every publish is acknowledged (QoS 1
/// and 2) or written (QoS 0). Returns how many it sent.
async fn publish(
    client: Client,
    lp: Loop,
    shared: Arc<Shared>,
    w: Workload,
    topic: String,
    qos: u8,
    producer: u64,
) -> anyhow::Result<u64> {
    let (done_tx, mut done) = watch::channel(0u64);
    // The event loop counts acknowledgements (or writes, at QoS 0); an error ends it.
    let driver = tokio::spawn(count_acks(lp, done_tx, qos));
    let mut seq = 0u64;
    let pacer = w.pacer();
    while !pacer.done(seq, &shared) {
        let n = pacer.next_batch(seq, w.batch).await as u64;
        for k in 0..n {
            let body = shared.body(w.size, producer, seq + k);
            if let Err(e) = client.publish(&topic, qos, body).await {
                driver.abort();
                return Err(e.context("publishing"));
            }
        }
        seq += n;
        shared
            .sent
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
    if done.wait_for(|n| *n >= seq).await.is_err() {
        // The event loop ended: say why.
        return match driver.await {
            Ok(Err(e)) => Err(e.context("the publisher's connection failed")),
            _ => bail!("the publisher's connection ended"),
        };
    }
    driver.abort();
    match client {
        Client::V4(c) => c.try_disconnect().ok(),
        Client::V5(c) => c.try_disconnect().ok(),
    };
    Ok(seq)
}

/// Subscribes and waits for the SUBACK.
async fn subscribe(client: &Client, lp: &mut Loop, filter: &str, qos: u8) -> anyhow::Result<()> {
    client.subscribe(filter, qos).await?;
    loop {
        match lp.next().await? {
            Ev::SubAck(true) => return Ok(()),
            Ev::SubAck(false) => bail!("SUBSCRIBE {filter} was refused"),
            _ => {}
        }
    }
}

/// The request/reply run: responders echo each request to its producer's reply topic.
async fn request_reply(a: &MqttArgs, topic: &str) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let pid = std::process::id();
    let shared = Shared::for_run(w, 1, a.qos == 0)?;
    let req = format!("{topic}/req");
    let filter = if w.consumers > 1 {
        format!("$share/bench/{req}")
    } else {
        req.clone()
    };
    let mut responders = Vec::new();
    for i in 0..w.consumers {
        let (client, mut lp) = connect(a, format!("bench-{pid}-resp-{i}"), true).await?;
        subscribe(&client, &mut lp, &filter, a.qos).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        // The event loop must keep running while replies are published: it hands requests
        // to a task of their own.
        let (topic, qos) = (topic.to_string(), a.qos);
        responders.push(tokio::spawn(async move {
            let replier = tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    let producer = crate::measure::parse(&b).map_or(0, |(p, _, _)| p);
                    client
                        .publish(&format!("{topic}/reply/{producer}"), qos, b)
                        .await?;
                }
                anyhow::Ok(())
            });
            let r = forward_requests(lp, tx).await;
            replier.abort();
            r
        }));
    }
    let (mut requesters, mut reply_loops) = (Vec::new(), Vec::new());
    for pi in 0..w.producers {
        let (client, mut lp) = connect(a, format!("bench-{pid}-req-{pi}"), true).await?;
        subscribe(&client, &mut lp, &format!("{topic}/reply/{pi}"), a.qos).await?;
        let window = Arc::new(tokio::sync::Semaphore::new(w.window.max(1)));
        let (sh, win) = (Arc::clone(&shared), Arc::clone(&window));
        reply_loops.push(tokio::spawn(record_replies(lp, sh, win)));
        let (sh, w, req, qos) = (Arc::clone(&shared), w.clone(), req.clone(), a.qos);
        requesters.push(tokio::spawn(async move {
            let mut seq = 0u64;
            let pacer = w.pacer();
            while !pacer.done(seq, &sh) {
                let n = pacer.next_batch(seq, w.batch).await as u64;
                for k in 0..n {
                    window.acquire().await?.forget();
                    client
                        .publish(&req, qos, sh.body(w.size, pi as u64, seq + k))
                        .await?;
                }
                seq += n;
                sh.sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            anyhow::Ok(seq)
        }));
    }
    let o = shared.finish(requesters, responders).await?;
    for r in reply_loops {
        r.abort();
    }
    report("mqtt", &a.mode(), w, &shared, o)
}

/// A requester's event loop: records each reply (the round trip) and frees its window slot.
async fn record_replies(
    mut lp: Loop,
    shared: Arc<Shared>,
    window: Arc<tokio::sync::Semaphore>,
) -> anyhow::Result<()> {
    loop {
        if let Ev::Message(b) = lp.next().await? {
            shared.record([&b[..]]);
            window.add_permits(1);
        }
    }
}

/// A responder's event loop: hands every request to the task that publishes the replies.
async fn forward_requests(
    mut lp: Loop,
    tx: tokio::sync::mpsc::UnboundedSender<Bytes>,
) -> anyhow::Result<()> {
    loop {
        if let Ev::Message(b) = lp.next().await? {
            if tx.send(b).is_err() {
                return Ok(());
            }
        }
    }
}

/// A subscriber's event loop: records every message under its view.
async fn subscriber(mut lp: Loop, shared: Arc<Shared>, view: usize) -> anyhow::Result<()> {
    loop {
        if let Ev::Message(b) = lp.next().await? {
            shared.record_view(view, [&b[..]]);
        }
    }
}

/// A publisher's event loop: counts acknowledgements (QoS 1 and 2) or writes (QoS 0).
async fn count_acks(mut lp: Loop, done: watch::Sender<u64>, qos: u8) -> anyhow::Result<()> {
    loop {
        match lp.next().await? {
            Ev::Acked if qos > 0 => done.send_modify(|n| *n += 1),
            Ev::Written if qos == 0 => done.send_modify(|n| *n += 1),
            _ => {}
        }
    }
}
