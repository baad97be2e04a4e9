//! Crash safety across protocols: publishers and consumers of AMQP (publisher confirms), MQTT
//! (QoS 1 and QoS 2, a persistent session), STOMP (a RECEIPT per SEND, client-individual acks)
//! and the native SDK (stored-receipt sends, acks) run against a broker in `sync` flush mode,
//! which is killed with SIGKILL at random moments and restarted on the same data directory.
//! Every consumer leaves every 7th message unacknowledged, so each restart must hand those
//! back. At the end every queue is drained, and by sequence number: every message whose
//! publish was confirmed was delivered and acknowledged.
//!
//! `crash_short` (three kills) runs in CI; `crash_long` runs by hand, with the number of kills
//! from `CRASH_KILLS` (default 10):
//!
//! ```text
//! CRASH_KILLS=10 cargo test --test crash_protocols crash_long -- --ignored --nocapture
//! ```

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestBroker;
use futures_lite::StreamExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;

/// `sync` flush: a confirm means the message is on disk.
const ENV: &[(&str, &str)] = &[("JUNCTION_STORE_FLUSH", "sync")];

#[derive(Default, Debug)]
struct Ledger {
    /// Next sequence number to publish.
    next: u64,
    /// Confirmed by the broker (confirm, PUBACK/PUBCOMP, RECEIPT, stored receipt).
    confirmed: BTreeSet<u64>,
    /// Delivered and acknowledged.
    acked: BTreeSet<u64>,
    /// Deliveries seen, redeliveries included.
    deliveries: u64,
}

type Shared = Arc<Mutex<Ledger>>;

#[derive(Default, Clone)]
struct Ledgers {
    amqp: Shared,
    mqtt: Shared,
    stomp: Shared,
    native: Shared,
}

fn seq_of(body: &[u8]) -> Option<u64> {
    std::str::from_utf8(body)
        .ok()?
        .split(':')
        .nth(1)?
        .parse()
        .ok()
}

/// Every 7th message is left unacknowledged (until the final drain).
fn hold(seq: u64, draining: bool) -> bool {
    !draining && seq % 7 == 3
}

// ---- AMQP ----

async fn amqp(b: &TestBroker, l: Shared, stop: CancellationToken, draining: bool) {
    use lapin::options::*;
    use lapin::types::FieldTable;
    let Ok(Ok(conn)) = tokio::time::timeout(
        Duration::from_secs(20),
        lapin::Connection::connect(
            &format!("amqp://guest:guest@{}/%2f", b.amqp),
            lapin::ConnectionProperties::default(),
        ),
    )
    .await
    else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    if ch
        .queue_declare("crash-amqp".into(), durable, FieldTable::default())
        .await
        .is_err()
        || ch
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .is_err()
    {
        return;
    }
    let cch = match conn.create_channel().await {
        Ok(c) => c,
        Err(_) => return,
    };
    let _ = cch.basic_qos(200, BasicQosOptions::default()).await;
    let Ok(mut consumer) = cch
        .basic_consume(
            "crash-amqp".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    else {
        return;
    };
    let lc = Arc::clone(&l);
    let consume = async move {
        while let Some(Ok(d)) = consumer.next().await {
            let Some(seq) = seq_of(&d.data) else { continue };
            lc.lock().unwrap().deliveries += 1;
            if hold(seq, draining) {
                continue;
            }
            if d.ack(BasicAckOptions::default()).await.is_err() {
                return;
            }
            lc.lock().unwrap().acked.insert(seq);
        }
    };
    let publish = async {
        while !draining && !stop.is_cancelled() {
            let seq = l.lock().unwrap().next;
            l.lock().unwrap().next += 1;
            let props = lapin::BasicProperties::default().with_delivery_mode(2);
            let Ok(pending) = ch
                .basic_publish(
                    "".into(),
                    "crash-amqp".into(),
                    BasicPublishOptions::default(),
                    format!("amqp:{seq}").as_bytes(),
                    props,
                )
                .await
            else {
                return;
            };
            match pending.await {
                Ok(c) if c.is_ack() => {
                    l.lock().unwrap().confirmed.insert(seq);
                }
                _ => return,
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = consume => {}
        _ = publish => {}
        _ = stop.cancelled() => {}
    }
}

// ---- MQTT ----

async fn mqtt(b: &TestBroker, l: Shared, stop: CancellationToken, draining: bool) {
    use rumqttc::{Packet, QoS};
    let mut o = common::mqtt::v4_options(b.mqtt, "crash-sub");
    o.set_clean_session(false);
    o.set_manual_acks(true);
    let mut sub = common::mqtt::V4::start(o);
    match sub.next().await {
        Ok(Packet::ConnAck(_)) => {}
        _ => return,
    }
    if sub
        .client
        .subscribe("crash/mqtt", QoS::ExactlyOnce)
        .await
        .is_err()
    {
        return;
    }
    let mut publ = common::mqtt::V4::start(common::mqtt::v4_options(b.mqtt, "crash-pub"));
    match publ.next().await {
        Ok(Packet::ConnAck(_)) => {}
        _ => return,
    }
    let lc = Arc::clone(&l);
    let consume = async move {
        while let Ok(p) = sub.next().await {
            let Packet::Publish(p) = p else { continue };
            let Some(seq) = seq_of(&p.payload) else {
                continue;
            };
            lc.lock().unwrap().deliveries += 1;
            if hold(seq, draining) {
                continue;
            }
            if sub.client.ack(&p).await.is_err() {
                return;
            }
            // QoS 1: acked by the PUBACK; QoS 2: by the PUBREC (the PUBCOMP follows).
            lc.lock().unwrap().acked.insert(seq);
        }
    };
    let publish = async {
        while !draining && !stop.is_cancelled() {
            let seq = l.lock().unwrap().next;
            l.lock().unwrap().next += 1;
            let qos = if seq.is_multiple_of(2) {
                QoS::AtLeastOnce
            } else {
                QoS::ExactlyOnce
            };
            if publ
                .client
                .publish("crash/mqtt", qos, false, format!("mqtt:{seq}"))
                .await
                .is_err()
            {
                return;
            }
            // One publish in flight: its PUBACK or PUBCOMP confirms it.
            loop {
                match publ.next().await {
                    Ok(Packet::PubAck(_)) | Ok(Packet::PubComp(_)) => break,
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            l.lock().unwrap().confirmed.insert(seq);
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = consume => {}
        _ = publish => {}
        _ = stop.cancelled() => {}
    }
}

// ---- STOMP ----

async fn stomp(b: &TestBroker, l: Shared, stop: CancellationToken, draining: bool) {
    use junction_stomp::{encode, Command, Decoder, Frame, Item, Version};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A client of its own: the shared test client panics when the broker dies.
    let Ok(tcp) = tokio::net::TcpStream::connect(b.stomp).await else {
        return;
    };
    let (mut rd, mut wr) = tcp.into_split();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Frame>();
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            let mut out = bytes::BytesMut::new();
            let _ = encode(&f, Version::V1_2, &mut out);
            if wr.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "/")
        .with_header("login", "guest")
        .with_header("passcode", "guest")
        .with_header("heart-beat", "0,0");
    let _ = tx.send(connect);
    let _ = tx.send(
        Frame::new(Command::Subscribe)
            .with_header("id", "1")
            .with_header("destination", "/queue/crash-stomp")
            .with_header("ack", "client-individual")
            .with_header("prefetch-count", "200"),
    );
    // Receipts confirm SENDs in order: receipt id = sequence number.
    let (receipts_tx, mut receipts) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let lc = Arc::clone(&l);
    let tx2 = tx.clone();
    let read = async move {
        let mut dec = Decoder::new(Version::V1_2);
        let mut buf = bytes::BytesMut::new();
        loop {
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(Item::Frame(f))) => match f.command {
                        Command::Message => {
                            let Some(seq) = seq_of(&f.body) else { continue };
                            lc.lock().unwrap().deliveries += 1;
                            if hold(seq, draining) {
                                continue;
                            }
                            let Some(ack) = f.header("ack") else { continue };
                            let _ = tx2.send(Frame::new(Command::Ack).with_header("id", ack));
                            lc.lock().unwrap().acked.insert(seq);
                        }
                        Command::Receipt => {
                            if let Some(r) = f.header("receipt-id").and_then(|r| r.parse().ok()) {
                                let _ = receipts_tx.send(r);
                            }
                        }
                        Command::Error => return,
                        _ => {}
                    },
                    Ok(Some(Item::Heartbeat)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let publish = async {
        while !draining && !stop.is_cancelled() {
            let seq = l.lock().unwrap().next;
            l.lock().unwrap().next += 1;
            let f = Frame::new(Command::Send)
                .with_header("destination", "/queue/crash-stomp")
                .with_header("persistent", "true")
                .with_header("receipt", seq.to_string())
                .with_body(format!("stomp:{seq}").into_bytes());
            if tx.send(f).is_err() {
                return;
            }
            match receipts.recv().await {
                Some(r) if r == seq => {
                    l.lock().unwrap().confirmed.insert(seq);
                }
                _ => return,
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = read => {}
        _ = publish => {}
        _ = stop.cancelled() => {}
    }
    writer.abort();
}

// ---- native ----

async fn native(b: &TestBroker, l: Shared, stop: CancellationToken, draining: bool) {
    use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};
    let Ok(client) = Client::connect(ClientOptions::new(b.native.to_string())).await else {
        return;
    };
    let _ = client.admin().create_topic("crash-native", 1).await;
    let Ok(mut consumer) = client
        .subscribe(ConsumerOptions::new("crash-native").prefetch(200))
        .await
    else {
        return;
    };
    let lc = Arc::clone(&l);
    let consume = async move {
        while let Some(Ok(d)) = consumer.next().await {
            let Some(seq) = seq_of(&d.body) else { continue };
            lc.lock().unwrap().deliveries += 1;
            if hold(seq, draining) {
                continue;
            }
            if d.ack().await.is_err() {
                return;
            }
            lc.lock().unwrap().acked.insert(seq);
        }
    };
    let producer = client.producer();
    let publish = async {
        let dest = Destination::queue("crash-native");
        while !draining && !stop.is_cancelled() {
            let seq = l.lock().unwrap().next;
            l.lock().unwrap().next += 1;
            match producer
                .send(&dest, Message::new(format!("native:{seq}")))
                .await
            {
                Ok(_) => {
                    l.lock().unwrap().confirmed.insert(seq);
                }
                Err(_) => return,
            }
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = consume => {}
        _ = publish => {}
        _ = stop.cancelled() => {}
    }
}

/// Runs every protocol's clients against `b` until `stop` fires or their connections end.
async fn clients(b: &TestBroker, ledgers: &Ledgers, stop: CancellationToken, draining: bool) {
    tokio::join!(
        amqp(b, Arc::clone(&ledgers.amqp), stop.clone(), draining),
        mqtt(b, Arc::clone(&ledgers.mqtt), stop.clone(), draining),
        stomp(b, Arc::clone(&ledgers.stomp), stop.clone(), draining),
        native(b, Arc::clone(&ledgers.native), stop.clone(), draining),
    );
}

fn missing(l: &Ledger) -> Vec<u64> {
    l.confirmed.difference(&l.acked).copied().collect()
}

fn sigkill(pid: u32) {
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("a pid");
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
}

fn report(name: &str, l: &Ledger) {
    println!(
        "{name}: published {}, confirmed {}, acked {} distinct, {} deliveries (redeliveries included), confirmed but never acked: {}",
        l.next,
        l.confirmed.len(),
        l.acked.len(),
        l.deliveries,
        missing(l).len()
    );
}

async fn crash_test(kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let ledgers = Ledgers::default();
    for round in 0..kills {
        let b = TestBroker::start_in(dir.path(), ENV);
        let pid = b.pid();
        let stop = CancellationToken::new();
        // SIGKILL at a random moment 1-4 s into the round, clients mid-publish and mid-ack.
        let wait = Duration::from_millis(rand::rng().random_range(1000..4000));
        let killer = async {
            tokio::time::sleep(wait).await;
            sigkill(pid);
            stop.cancel();
        };
        tokio::join!(killer, clients(&b, &ledgers, stop.clone(), false));
        drop(b);
        println!("round {round}: killed after {wait:?}");
    }
    // Restart once more and drain every queue, acknowledging everything.
    let b = TestBroker::start_in(dir.path(), ENV);
    let stop = CancellationToken::new();
    let all = [
        &ledgers.amqp,
        &ledgers.mqtt,
        &ledgers.stomp,
        &ledgers.native,
    ];
    let watch = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while tokio::time::Instant::now() < deadline {
            if all.iter().all(|l| missing(&l.lock().unwrap()).is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
    };
    tokio::join!(watch, clients(&b, &ledgers, stop.clone(), true));
    for (name, l) in ["amqp", "mqtt", "stomp", "native"].iter().zip(all) {
        let l = l.lock().unwrap();
        report(name, &l);
        assert!(
            l.confirmed.len() > 10,
            "{name}: too few confirmed publishes to mean anything: {}",
            l.confirmed.len()
        );
        let lost = missing(&l);
        assert!(
            lost.is_empty(),
            "{name}: confirmed but never delivered after {kills} kills: {lost:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_short() {
    crash_test(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by hand (see the module docs)"]
async fn crash_long() {
    let kills = std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    crash_test(kills).await;
}
