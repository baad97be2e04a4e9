//! STOMP 1.2 over TCP, on the `junction-stomp` codec: producers SEND to `/queue/<queue>`, each
//! batch's last SEND asking for a RECEIPT (at most `--window` batches unreceipted per producer);
//! consumers SUBSCRIBE with `--ack auto` or `client-individual` (one ACK per message, written
//! together per socket read) and `prefetch-count` (and ActiveMQ's `activemq.prefetchSize`).
//! Works against any STOMP broker that speaks RabbitMQ's `/queue/` destinations (Junction,
//! RabbitMQ's STOMP plugin, ActiveMQ).
//!
//! `--request-reply`: producers SEND requests with `reply-to:/temp-queue/bench-replies` (the
//! broker creates the producer connection's temporary queue, subscribes the connection to it
//! and rewrites the header to a destination anyone can SEND to, as RabbitMQ does) and a
//! `correlation-id`; consumers SEND each request's body back to its `reply-to` with the same
//! `correlation-id`. At most `--window` requests are outstanding per producer; the latency is
//! the round trip; a reply whose correlation id does not match its body counts as an error.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::{Args, ValueEnum};
use junction_stomp::{encode, Command, Decoder, Frame, Item, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::measure::{report, Shared, Workload};

/// How consumers acknowledge.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AckMode {
    /// `ack:auto`.
    Auto,
    /// `ack:client-individual`, one ACK per message.
    ClientIndividual,
}

/// Options of the STOMP run.
#[derive(Args, Clone)]
pub struct StompArgs {
    /// Broker address (host:port).
    #[arg(long, default_value = "127.0.0.1:61613")]
    addr: String,
    /// The CONNECT `host` header (the virtual host).
    #[arg(long, default_value = "/")]
    host: String,
    /// Consumer ack mode.
    #[arg(long, value_enum, default_value_t = AckMode::Auto)]
    ack: AckMode,
    /// SEND with `persistent:true`.
    #[arg(long)]
    persistent: bool,
    /// Request/reply through `reply-to:/temp-queue/` (see the module docs).
    #[arg(long)]
    request_reply: bool,
    #[command(flatten)]
    w: Workload,
}

impl StompArgs {
    /// The shared workload options.
    pub fn workload(&self) -> &Workload {
        &self.w
    }

    fn mode(&self) -> String {
        format!(
            "{}+{}+{}",
            if self.persistent {
                "persistent"
            } else {
                "transient"
            },
            if self.request_reply {
                "request/reply"
            } else {
                "receipts"
            },
            self.ack_header()
        )
    }

    fn ack_header(&self) -> &'static str {
        match self.ack {
            AckMode::Auto => "auto",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

/// A connected STOMP session: the socket, bytes read past CONNECTED, the decoder.
struct Session {
    stream: TcpStream,
    rbuf: BytesMut,
    decoder: Decoder,
}

async fn connect(a: &StompArgs) -> anyhow::Result<Session> {
    let mut stream = TcpStream::connect(&a.addr)
        .await
        .with_context(|| format!("connecting to {}", a.addr))?;
    stream.set_nodelay(true)?;
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", a.host.as_str())
        .with_header("login", a.w.user.as_str())
        .with_header("passcode", a.w.password.as_str())
        .with_header("heart-beat", "0,0");
    let mut out = BytesMut::new();
    encode(&connect, Version::V1_0, &mut out)?;
    stream.write_all(&out).await?;
    let limits = Limits {
        max_frame_bytes: 64 << 20,
        max_body_bytes: 64 << 20,
        ..Limits::DEFAULT
    };
    let mut s = Session {
        stream,
        rbuf: BytesMut::with_capacity(64 << 10),
        decoder: Decoder::with_limits(Version::V1_2, limits),
    };
    loop {
        if let Some(f) = s.decoder.decode_frame(&mut s.rbuf)? {
            if f.command != Command::Connected {
                bail!("CONNECT refused: {:?} {:?}", f.header("message"), f.body);
            }
            return Ok(s);
        }
        if s.stream.read_buf(&mut s.rbuf).await? == 0 {
            bail!("the broker closed the connection during CONNECT");
        }
    }
}

/// One STOMP run.
pub async fn run(a: StompArgs) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    // STOMP cannot purge a queue: every run uses a queue of its own.
    let queue = format!("{}-{}", w.queue, std::process::id());
    let dest = format!("/queue/{queue}");
    if a.request_reply {
        return request_reply(&a, &dest).await;
    }
    let shared = Shared::new(w)?;

    let mut consumers = Vec::new();
    for i in 0..w.consumers {
        let s = subscribe(&a, &dest, i).await?;
        let sh = Arc::clone(&shared);
        let manual = a.ack == AckMode::ClientIndividual;
        consumers.push(tokio::spawn(async move { consume(s, sh, manual).await }));
    }

    let mut producers = Vec::new();
    for pi in 0..w.producers {
        let s = connect(&a).await?;
        let sh = Arc::clone(&shared);
        let (w, dest, persistent) = (w.clone(), dest.clone(), a.persistent);
        producers.push(tokio::spawn(async move {
            produce(s, sh, w, dest, persistent, pi as u64).await
        }));
    }

    let o = shared.finish(producers, consumers).await?;
    report("stomp", &a.mode(), w, &shared, o)
}

/// A consumer connection subscribed to `dest` (once its receipt is back: nothing published
/// after this returns is missed).
async fn subscribe(a: &StompArgs, dest: &str, i: usize) -> anyhow::Result<Session> {
    let mut s = connect(a).await?;
    let prefetch = a.w.prefetch.to_string();
    let sub = Frame::new(Command::Subscribe)
        .with_header("id", i.to_string())
        .with_header("destination", dest)
        .with_header("ack", a.ack_header())
        .with_header("prefetch-count", prefetch.as_str())
        // ActiveMQ's name for the same thing.
        .with_header("activemq.prefetchSize", prefetch.as_str())
        .with_header("receipt", "sub");
    let mut out = BytesMut::new();
    encode(&sub, Version::V1_2, &mut out)?;
    s.stream.write_all(&out).await?;
    loop {
        if let Some(f) = s.decoder.decode_frame(&mut s.rbuf)? {
            if f.command == Command::Receipt {
                return Ok(s);
            }
            bail!("SUBSCRIBE failed: {:?}", f.header("message"));
        }
        if s.stream.read_buf(&mut s.rbuf).await? == 0 {
            bail!("the broker closed the connection during SUBSCRIBE");
        }
    }
}

async fn produce(
    s: Session,
    shared: Arc<Shared>,
    w: Workload,
    dest: String,
    persistent: bool,
    producer: u64,
) -> anyhow::Result<u64> {
    let Session {
        stream,
        mut rbuf,
        mut decoder,
    } = s;
    let (mut rd, mut wr) = stream.into_split();
    let window = w.window.max(1);
    let permits = Arc::new(Semaphore::new(window));
    // Receipts give permits back; an ERROR ends the run.
    let p2 = Arc::clone(&permits);
    let receipts = tokio::spawn(async move {
        loop {
            while let Some(item) = decoder.decode(&mut rbuf)? {
                match item {
                    Item::Frame(f) if f.command == Command::Receipt => p2.add_permits(1),
                    Item::Frame(f) => bail!(
                        "the broker sent {} {:?}: {:?}",
                        f.command,
                        f.header("message"),
                        String::from_utf8_lossy(&f.body)
                    ),
                    Item::Heartbeat => {}
                }
            }
            if rd.read_buf(&mut rbuf).await? == 0 {
                return anyhow::Ok(());
            }
        }
    });
    let mut out = BytesMut::with_capacity(w.batch * (w.size + 128));
    let mut seq = 0u64;
    let pacer = w.pacer();
    while !pacer.done(seq, &shared) {
        let n = pacer.next_batch(seq, w.batch).await;
        permits.acquire().await?.forget();
        for k in 0..n as u64 {
            let mut f = Frame::send(dest.as_str(), shared.body(w.size, producer, seq + k));
            if persistent {
                f.push_header("persistent", "true");
            }
            if k + 1 == n as u64 {
                f.push_header("receipt", (seq + k).to_string());
            }
            encode(&f, Version::V1_2, &mut out)?;
        }
        wr.write_all(&out).await?;
        out.clear();
        seq += n as u64;
        shared.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    // Every batch receipted: the messages are stored.
    let _ = permits.acquire_many(window as u32).await?;
    receipts.abort();
    Ok(seq)
}

async fn consume(mut s: Session, shared: Arc<Shared>, manual: bool) -> anyhow::Result<()> {
    let mut acks = BytesMut::new();
    loop {
        let mut bodies = Vec::new();
        while let Some(item) = s.decoder.decode(&mut s.rbuf)? {
            let Item::Frame(f) = item else { continue };
            if f.command != Command::Message {
                bail!("the broker sent {} {:?}", f.command, f.header("message"));
            }
            if manual {
                let id = f.header("ack").context("MESSAGE without an ack header")?;
                encode(
                    &Frame::new(Command::Ack).with_header("id", id),
                    Version::V1_2,
                    &mut acks,
                )?;
            }
            bodies.push(f.body);
        }
        shared.record(bodies.iter().map(|b| &b[..]));
        if !acks.is_empty() {
            s.stream.write_all(&acks).await?;
            acks.clear();
        }
        if s.stream.read_buf(&mut s.rbuf).await? == 0 {
            return Ok(());
        }
    }
}

/// The correlation id of request `seq` of `producer`.
fn correlation_id(producer: u64, seq: u64) -> String {
    format!("{producer}-{seq}")
}

/// The request/reply run (see the module docs).
async fn request_reply(a: &StompArgs, dest: &str) -> anyhow::Result<serde_json::Value> {
    let w = &a.w;
    let shared = Shared::new(w)?;
    let mut responders = Vec::new();
    for i in 0..w.consumers {
        let s = subscribe(a, dest, i).await?;
        let manual = a.ack == AckMode::ClientIndividual;
        responders.push(tokio::spawn(respond(s, manual, a.persistent)));
    }
    let mut requesters = Vec::new();
    for pi in 0..w.producers as u64 {
        let s = connect(a).await?;
        let sh = Arc::clone(&shared);
        let (w, dest, persistent) = (w.clone(), dest.to_string(), a.persistent);
        requesters.push(tokio::spawn(async move {
            request(s, sh, w, dest, persistent, pi).await
        }));
    }
    let o = shared.finish(requesters, responders).await?;
    report("stomp", &a.mode(), w, &shared, o)
}

/// A requester: SENDs requests (at most `--window` waiting for their reply) and records the
/// replies its temporary queue receives.
async fn request(
    s: Session,
    shared: Arc<Shared>,
    w: Workload,
    dest: String,
    persistent: bool,
    producer: u64,
) -> anyhow::Result<u64> {
    let Session {
        stream,
        mut rbuf,
        mut decoder,
    } = s;
    let (mut rd, mut wr) = stream.into_split();
    let window = Arc::new(Semaphore::new(w.window.max(1)));
    let (win, sh) = (Arc::clone(&window), Arc::clone(&shared));
    let replies = tokio::spawn(async move {
        loop {
            let mut bodies = Vec::new();
            while let Some(item) = decoder.decode(&mut rbuf)? {
                let Item::Frame(f) = item else { continue };
                if f.command != Command::Message {
                    bail!(
                        "the broker sent {} {:?}: {:?}",
                        f.command,
                        f.header("message"),
                        String::from_utf8_lossy(&f.body)
                    );
                }
                let expected = crate::measure::parse(&f.body).map(|(p, q, _)| correlation_id(p, q));
                if expected.is_none() || f.header("correlation-id") != expected.as_deref() {
                    sh.errors.fetch_add(1, Ordering::Relaxed);
                }
                bodies.push(f.body);
            }
            sh.record(bodies.iter().map(|b| &b[..]));
            win.add_permits(bodies.len());
            if rd.read_buf(&mut rbuf).await? == 0 {
                return anyhow::Ok(());
            }
        }
    });
    let mut out = BytesMut::with_capacity(w.batch * (w.size + 160));
    let mut seq = 0u64;
    let pacer = w.pacer();
    while !pacer.done(seq, &shared) {
        // A batch is written whole: never more than the window.
        let n = pacer.next_batch(seq, w.batch.min(w.window.max(1))).await as u64;
        window.acquire_many(n as u32).await?.forget();
        for k in 0..n {
            let id = correlation_id(producer, seq + k);
            let mut f = Frame::send(dest.as_str(), shared.body(w.size, producer, seq + k))
                .with_header("reply-to", "/temp-queue/bench-replies")
                .with_header("correlation-id", id.as_str());
            if persistent {
                f.push_header("persistent", "true");
            }
            encode(&f, Version::V1_2, &mut out)?;
        }
        wr.write_all(&out).await?;
        out.clear();
        seq += n;
        shared.sent.fetch_add(n, Ordering::Relaxed);
    }
    shared.wait_replies(&window, w.window.max(1) as u32).await;
    replies.abort();
    drop(wr);
    Ok(seq)
}

/// A responder: SENDs each request's body to its `reply-to` with its `correlation-id`, and
/// ACKs it (client-individual), all written together per socket read.
async fn respond(mut s: Session, manual: bool, persistent: bool) -> anyhow::Result<()> {
    let mut out = BytesMut::new();
    loop {
        while let Some(item) = s.decoder.decode(&mut s.rbuf)? {
            let Item::Frame(f) = item else { continue };
            if f.command != Command::Message {
                bail!("the broker sent {} {:?}", f.command, f.header("message"));
            }
            let reply_to = f.header("reply-to").context("a request without reply-to")?;
            let mut reply = Frame::send(reply_to, f.body.clone());
            if let Some(id) = f.header("correlation-id") {
                reply.push_header("correlation-id", id);
            }
            if persistent {
                reply.push_header("persistent", "true");
            }
            encode(&reply, Version::V1_2, &mut out)?;
            if manual {
                let id = f.header("ack").context("MESSAGE without an ack header")?;
                encode(
                    &Frame::new(Command::Ack).with_header("id", id),
                    Version::V1_2,
                    &mut out,
                )?;
            }
        }
        if !out.is_empty() {
            s.stream.write_all(&out).await?;
            out.clear();
        }
        if s.stream.read_buf(&mut s.rbuf).await? == 0 {
            return Ok(());
        }
    }
}
