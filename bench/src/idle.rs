//! Many idle connections: opens `--connections` MQTT, STOMP, AMQP 0-9-1 or native connections,
//! keeps them alive (MQTT PINGREQ, STOMP heart-beats, AMQP heartbeat frames, native `Heartbeat`
//! frames) for `--hold` seconds, and reports how much the broker's
//! resident memory grew per connection (with `--broker-pid`): its anonymous resident memory
//! (`RssAnon`: heap and stacks), which is what connections cost, and its whole `VmRSS`, which
//! also moves with the file pages the broker maps (Junction's CommitLog segments). The
//! baseline is read once the broker's memory has stopped moving.
//!
//! One source address can hold only about 28,000 connections to one broker port (the
//! ephemeral port range, 32768-60999 by default), so the connections are spread over source
//! addresses 127.0.1.1, 127.0.1.2, ... (all loopback on Linux), each socket bound to its source
//! address before it connects. The clients are minimal on purpose (the protocol's handshake and
//! pings, on tokio, a few hundred bytes each), so the generator can hold 100,000 of them: an
//! AMQP connection opens no channel, a native one subscribes to nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::BytesMut;
use clap::{Args, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::measure::{cpu_seconds, rss_anon_kib, rss_kib};
use crate::mqtt::MqttVersion;

/// Protocol of the idle connections.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IdleProtocol {
    /// MQTT CONNECT (clean session, no subscription), then PINGREQ every half keep alive.
    Mqtt,
    /// STOMP 1.2 CONNECT, then a heart-beat (an EOL) every half keep alive.
    Stomp,
    /// AMQP 0-9-1 connection.start/tune/open (PLAIN, no channel), then a heartbeat frame every
    /// half keep alive (the heartbeat interval the client asks for in connection.tune-ok).
    Amqp,
    /// Junction's native `Hello`/`Welcome`, then a `Heartbeat` frame every half of the
    /// negotiated interval.
    Native,
}

/// Options of the idle-connections run.
#[derive(Args, Clone)]
pub struct IdleArgs {
    /// Protocol.
    #[arg(long, value_enum, default_value_t = IdleProtocol::Mqtt)]
    protocol: IdleProtocol,
    /// Broker address (ip:port).
    #[arg(long, default_value = "127.0.0.1:1883")]
    addr: SocketAddr,
    /// Connections to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Source addresses to spread them over (127.0.1.1, 127.0.1.2, ...); default one per
    /// 10,000 connections.
    #[arg(long)]
    sources: Option<usize>,
    /// Keep alive (MQTT) or heartbeat interval (STOMP, AMQP, native), seconds; a ping goes
    /// every half.
    #[arg(long, default_value_t = 30)]
    keep_alive: u16,
    /// Seconds to hold every connection open (and pinging) once all are connected.
    #[arg(long, default_value_t = 10)]
    hold: u64,
    /// Connection handshakes in progress at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// MQTT protocol version.
    #[arg(long = "mqtt", value_enum, default_value_t = MqttVersion::V4)]
    version: MqttVersion,
    /// User name (MQTT: sent only when given; STOMP, AMQP, native: `guest` when not).
    #[arg(long)]
    user: Option<String>,
    /// Password.
    #[arg(long)]
    password: Option<String>,
    /// Process id of the broker on this machine: its memory and CPU are reported.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// Hard deadline for the whole run, seconds.
    #[arg(long, default_value_t = 900)]
    pub deadline: u64,
}

/// Counters shared by the connection tasks.
#[derive(Default)]
struct Counts {
    established: AtomicU64,
    failed: AtomicU64,
    /// Connections the broker closed after they were established.
    dropped: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// One idle-connections run.
pub async fn run(a: IdleArgs) -> anyhow::Result<serde_json::Value> {
    let sources = a
        .sources
        .unwrap_or(a.connections.div_ceil(10_000))
        .clamp(1, 250);
    if let Some(pid) = a.broker_pid {
        settle(pid).await;
    }
    let rss0 = a.broker_pid.and_then(rss_kib);
    let anon0 = a.broker_pid.and_then(rss_anon_kib);
    let cpu0 = a.broker_pid.and_then(cpu_seconds);
    let counts = Arc::new(Counts::default());
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(a.concurrency.max(1)));
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(a.connections);
    for i in 0..a.connections {
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 1, (i % sources) as u8 + 1));
        let (a2, counts, stop, gate) = (
            a.clone(),
            Arc::clone(&counts),
            stop.clone(),
            Arc::clone(&gate),
        );
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            let conn = tokio::time::timeout(Duration::from_secs(60), handshake(&a2, src, i)).await;
            drop(permit);
            let (mut s, every) = match conn {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return counts.fail(format!("{e:#}")),
                Err(_) => return counts.fail("handshake timed out after 60 s".into()),
            };
            counts.established.fetch_add(1, Ordering::Relaxed);
            if !keep_alive(&a2, &mut s, every, &stop).await {
                counts.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Every connection is up (or failed).
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    loop {
        let (e, f) = (
            counts.established.load(Ordering::Relaxed),
            counts.failed.load(Ordering::Relaxed),
        );
        if progress {
            eprint!(
                "\r{:>6.1}s  connected {e:>7} / {}  failed {f}  ",
                t0.elapsed().as_secs_f64(),
                a.connections
            );
        }
        if (e + f) as usize >= a.connections {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if progress {
        eprintln!();
    }
    let connect_s = t0.elapsed().as_secs_f64();
    // Let the broker finish its per-connection work before reading its memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_connected = a.broker_pid.and_then(rss_kib);
    let anon_connected = a.broker_pid.and_then(rss_anon_kib);
    tokio::time::sleep(Duration::from_secs(a.hold)).await;
    let rss_held = a.broker_pid.and_then(rss_kib);
    let anon_held = a.broker_pid.and_then(rss_anon_kib);
    let cpu1 = a.broker_pid.and_then(cpu_seconds);
    let own_rss = rss_kib(std::process::id());
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }

    let established = counts.established.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let dropped = counts.dropped.load(Ordering::Relaxed);
    let per = |before: Option<u64>, after: Option<u64>| match (before, after) {
        (Some(a), Some(b)) if established > 0 => Some((b as f64 - a as f64) / established as f64),
        _ => None,
    };
    let per_conn = per(anon0, anon_held);
    let first_error = counts
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let protocol = match a.protocol {
        IdleProtocol::Mqtt => match a.version {
            MqttVersion::V4 => "mqtt 3.1.1",
            MqttVersion::V5 => "mqtt 5.0",
        },
        IdleProtocol::Stomp => "stomp 1.2",
        IdleProtocol::Amqp => "amqp 0-9-1",
        IdleProtocol::Native => "native",
    };
    let result = serde_json::json!({
        "scenario": "idle",
        "protocol": protocol,
        "connections": a.connections,
        "sources": sources,
        "established": established,
        "failed": failed,
        "dropped": dropped,
        "first_error": first_error,
        "connect_s": connect_s,
        "connect_rate": established as f64 / connect_s,
        "hold_s": a.hold,
        "keep_alive_s": a.keep_alive,
        "generator_rss_kib": own_rss,
        "broker": {
            "pid": a.broker_pid,
            "rss_before_kib": rss0,
            "rss_connected_kib": rss_connected,
            "rss_held_kib": rss_held,
            "vmrss_per_connection_kib": per(rss0, rss_held),
            "rss_anon_before_kib": anon0,
            "rss_anon_connected_kib": anon_connected,
            "rss_anon_held_kib": anon_held,
            // The figure: anonymous resident memory grown per connection, after the hold.
            "rss_per_connection_kib": per_conn,
            "cpu_s": match (cpu0, cpu1) { (Some(a), Some(b)) => Some(b - a), _ => None },
        },
    });
    if a.json {
        println!("{result}");
    } else {
        println!(
            "idle {protocol}: {established} of {} connected ({failed} failed, {dropped} dropped while held) over {sources} source addresses in {connect_s:.1} s",
            a.connections
        );
        if let Some(e) = &first_error {
            println!("  first error: {e}");
        }
        if let (Some(r0), Some(r1), Some(r2)) = (anon0, anon_connected, anon_held) {
            println!(
                "  broker RssAnon {r0} KiB -> {r1} KiB connected -> {r2} KiB after {} s held: {:.2} KiB per connection",
                a.hold,
                per_conn.unwrap_or(0.0)
            );
        }
        if let (Some(r0), Some(r2)) = (rss0, rss_held) {
            println!(
                "  broker VmRSS  {r0} KiB -> {r2} KiB: {:.2} KiB per connection",
                per(rss0, rss_held).unwrap_or(0.0)
            );
        }
    }
    if established == 0 {
        bail!("no connection was established");
    }
    Ok(result)
}

/// Waits (up to 60 s) until the broker's anonymous memory stops moving: a broker that just
/// started may still be allocating (Junction faults in its first CommitLog segment).
async fn settle(pid: u32) {
    let mut last = rss_anon_kib(pid);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_anon_kib(pid);
        match (last, now) {
            (Some(a), Some(b)) if a.abs_diff(b) <= 256 => return,
            (None, _) | (_, None) => return,
            _ => last = now,
        }
    }
}

impl Counts {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            *first = Some(e);
        }
    }
}

/// Connects from `src` and completes the protocol's handshake; returns the stream and how often
/// to ping.
async fn handshake(a: &IdleArgs, src: IpAddr, i: usize) -> anyhow::Result<(TcpStream, Duration)> {
    let sock = TcpSocket::new_v4()?;
    // The ports of an earlier run's connections linger in TIME_WAIT (this side closes first).
    sock.set_reuseaddr(true)?;
    sock.bind(SocketAddr::new(src, 0))
        .with_context(|| format!("binding {src}"))?;
    let mut s = sock
        .connect(a.addr)
        .await
        .with_context(|| format!("connecting from {src} to {}", a.addr))?;
    s.set_nodelay(true)?;
    match a.protocol {
        IdleProtocol::Mqtt => {
            let id = format!("idle-{}-{i}", std::process::id());
            s.write_all(&mqtt_connect(a, &id)).await?;
            // CONNACK: type 2, remaining length, flags, return code / reason code.
            let mut h = [0u8; 4];
            s.read_exact(&mut h).await.context("reading CONNACK")?;
            if h[0] != 0x20 {
                bail!("expected CONNACK, got packet type {}", h[0] >> 4);
            }
            if h[3] != 0 {
                bail!("CONNACK refused the connection: code {:#04x}", h[3]);
            }
            // A 5.0 CONNACK carries properties: skip the rest of it.
            let rest = usize::from(h[1]).saturating_sub(2);
            let mut skip = vec![0u8; rest];
            s.read_exact(&mut skip).await?;
        }
        IdleProtocol::Stomp => {
            let f = format!(
                "CONNECT\naccept-version:1.2\nhost:/\nlogin:{}\npasscode:{}\nheart-beat:{},0\n\n\0",
                a.user.as_deref().unwrap_or("guest"),
                a.password.as_deref().unwrap_or("guest"),
                u32::from(a.keep_alive) * 1000
            );
            s.write_all(f.as_bytes()).await?;
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while !got.contains(&0) {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    bail!("the broker closed the connection during CONNECT");
                }
                got.extend_from_slice(&buf[..n]);
                if got.len() > 64 << 10 {
                    bail!("CONNECTED frame too long");
                }
            }
            if !got.starts_with(b"CONNECTED") {
                bail!("CONNECT refused: {}", String::from_utf8_lossy(&got));
            }
        }
        IdleProtocol::Amqp => amqp_open(a, &mut s).await?,
        IdleProtocol::Native => {
            let hb = native_hello(a, &mut s, i).await?;
            return Ok((s, hb / 2));
        }
    }
    Ok((
        s,
        Duration::from_millis(u64::from(a.keep_alive.max(1)) * 500),
    ))
}

fn user(a: &IdleArgs) -> &str {
    a.user.as_deref().unwrap_or("guest")
}

fn password(a: &IdleArgs) -> &str {
    a.password.as_deref().unwrap_or("guest")
}

/// An AMQP 0-9-1 frame: type, channel 0, payload, frame-end.
fn amqp_frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![kind, 0, 0];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f.push(0xCE);
    f
}

/// A connection-class method frame (class 10).
fn amqp_method(method: u16, args: &[u8]) -> Vec<u8> {
    let mut p = vec![0, 10];
    p.extend_from_slice(&method.to_be_bytes());
    p.extend_from_slice(args);
    amqp_frame(1, &p)
}

fn short_str(out: &mut Vec<u8>, s: &str) {
    out.push(s.len().min(255) as u8);
    out.extend_from_slice(&s.as_bytes()[..s.len().min(255)]);
}

/// Reads one AMQP frame on channel 0 and returns its connection method id and arguments;
/// connection.close (the broker refusing) is an error with its reply text.
async fn amqp_method_in(s: &mut TcpStream) -> anyhow::Result<(u16, Vec<u8>)> {
    loop {
        let mut h = [0u8; 7];
        s.read_exact(&mut h)
            .await
            .context("reading an AMQP frame")?;
        let size = u32::from_be_bytes([h[3], h[4], h[5], h[6]]) as usize;
        if size > 1 << 20 {
            bail!("AMQP frame of {size} bytes during the handshake");
        }
        let mut p = vec![0u8; size + 1];
        s.read_exact(&mut p).await?;
        if h[0] == 8 {
            continue; // a heartbeat
        }
        if h[0] != 1 || p.len() < 5 || p[..2] != [0, 10] {
            bail!("expected a connection method, got frame type {}", h[0]);
        }
        let method = u16::from_be_bytes([p[2], p[3]]);
        let args = p[4..size].to_vec();
        if method == 50 {
            // connection.close: reply-code u16, reply-text shortstr.
            let text = args
                .get(3..)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            bail!("the broker closed the connection: {text}");
        }
        return Ok((method, args));
    }
}

/// connection.start -> start-ok (PLAIN), tune -> tune-ok (the broker's channel-max and
/// frame-max, our heartbeat), open -> open-ok; no channel is opened.
async fn amqp_open(a: &IdleArgs, s: &mut TcpStream) -> anyhow::Result<()> {
    s.write_all(b"AMQP\x00\x00\x09\x01").await?;
    let (m, _) = amqp_method_in(s).await?;
    if m != 10 {
        bail!("expected connection.start, got method {m}");
    }
    let mut args = vec![0, 0, 0, 0]; // client-properties: an empty table
    short_str(&mut args, "PLAIN");
    let response = format!("\0{}\0{}", user(a), password(a));
    args.extend_from_slice(&(response.len() as u32).to_be_bytes());
    args.extend_from_slice(response.as_bytes());
    short_str(&mut args, "en_US");
    s.write_all(&amqp_method(11, &args)).await?;
    let (m, tune) = amqp_method_in(s).await?;
    if m != 30 || tune.len() < 8 {
        bail!("expected connection.tune, got method {m}");
    }
    let mut args = tune[..6].to_vec(); // channel-max u16, frame-max u32, as the broker proposed
    args.extend_from_slice(&a.keep_alive.to_be_bytes());
    s.write_all(&amqp_method(31, &args)).await?;
    let mut args = Vec::new();
    short_str(&mut args, "/");
    args.extend_from_slice(&[0, 0]); // reserved shortstr, reserved bit
    s.write_all(&amqp_method(40, &args)).await?;
    let (m, _) = amqp_method_in(s).await?;
    if m != 41 {
        bail!("expected connection.open-ok, got method {m}");
    }
    Ok(())
}

/// A native frame, encoded.
fn native_frame(request_id: u32, body: impl Into<junction_native::Body>) -> Vec<u8> {
    let mut out = BytesMut::new();
    // A Hello, Heartbeat or Close always fits the default frame size.
    let _ = junction_native::encode(&junction_native::Frame::new(request_id, body), &mut out);
    out.to_vec()
}

/// `Hello` -> `Welcome`; returns the negotiated heartbeat interval.
async fn native_hello(a: &IdleArgs, s: &mut TcpStream, i: usize) -> anyhow::Result<Duration> {
    let hello = junction_native::Hello {
        client_id: format!("idle-{}-{i}", std::process::id()),
        username: user(a).into(),
        password: password(a).into(),
        vhost: "/".into(),
        heartbeat_ms: u32::from(a.keep_alive) * 1000,
        max_frame: 0,
    };
    s.write_all(&native_frame(1, hello)).await?;
    let mut decoder = junction_native::Decoder::default();
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if let Some(f) = decoder.decode(&mut buf)? {
            return match f.body {
                junction_native::Body::Welcome(w) if w.heartbeat_ms > 0 => {
                    Ok(Duration::from_millis(u64::from(w.heartbeat_ms)))
                }
                // No heartbeats: ping at our own pace all the same.
                junction_native::Body::Welcome(_) => {
                    Ok(Duration::from_secs(u64::from(a.keep_alive.max(1))))
                }
                junction_native::Body::Error(e) => bail!("Hello refused: {}", e.message),
                other => bail!("expected Welcome, got {:?}", other.opcode()),
            };
        }
        if s.read_buf(&mut buf).await? == 0 {
            bail!("the broker closed the connection during Hello");
        }
    }
}

/// An MQTT CONNECT packet: clean session, the keep alive, optional credentials.
fn mqtt_connect(a: &IdleArgs, id: &str) -> Vec<u8> {
    let v5 = a.version == MqttVersion::V5;
    let mut vh = vec![0, 4, b'M', b'Q', b'T', b'T', if v5 { 5 } else { 4 }];
    let mut flags = 0x02; // clean session / clean start
    if a.user.is_some() {
        flags |= 0x80;
    }
    if a.password.is_some() {
        flags |= 0x40;
    }
    vh.push(flags);
    vh.extend_from_slice(&a.keep_alive.to_be_bytes());
    if v5 {
        vh.push(0); // no properties
    }
    let mut field = |s: &str| {
        vh.extend_from_slice(&(s.len() as u16).to_be_bytes());
        vh.extend_from_slice(s.as_bytes());
    };
    field(id);
    if let Some(u) = &a.user {
        field(u);
    }
    if let Some(p) = &a.password {
        field(p);
    }
    let mut out = vec![0x10];
    let mut len = vh.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&vh);
    out
}

/// Pings `every` until `stop`; false if the broker closed the connection first.
async fn keep_alive(
    a: &IdleArgs,
    s: &mut TcpStream,
    every: Duration,
    stop: &CancellationToken,
) -> bool {
    let (ping, bye): (Vec<u8>, Vec<u8>) = match a.protocol {
        IdleProtocol::Mqtt => (vec![0xC0, 0x00], vec![0xE0, 0x00]),
        IdleProtocol::Stomp => (b"\n".to_vec(), b"DISCONNECT\n\n\0".to_vec()),
        IdleProtocol::Amqp => {
            // connection.close: reply-code 200, reply-text "bye", class 0, method 0.
            let mut close = vec![0, 200];
            short_str(&mut close, "bye");
            close.extend_from_slice(&[0, 0, 0, 0]);
            (amqp_frame(8, &[]), amqp_method(50, &close))
        }
        IdleProtocol::Native => (
            native_frame(0, junction_native::Body::Heartbeat),
            native_frame(
                2,
                junction_native::Close {
                    code: junction_native::Close::NORMAL,
                    reason: "bye".into(),
                },
            ),
        ),
    };
    let every = every.max(Duration::from_millis(100));
    let mut next = tokio::time::Instant::now() + every;
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            _ = stop.cancelled() => {
                let _ = s.write_all(&bye).await;
                return true;
            }
            _ = tokio::time::sleep_until(next) => {
                next += every;
                if s.write_all(&ping).await.is_err() {
                    return false;
                }
            }
            // PINGRESP and server heart-beats are read and dropped; EOF or an error is the end.
            r = s.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) {
                return false;
            },
        }
    }
}
