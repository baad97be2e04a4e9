//! Overload: a slow consumer is cut off without hurting publishers, and a connection flood does
//! not starve an established client. A publisher far faster than its consumer:
//! `tests/memory_bound.rs`; publishers held by a resource alarm: `tests/flow_control.rs`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::stomp::StompClient;
use common::TestBroker;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};
use junction_stomp::{Command, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

/// Waits (bounded) until the broker's log has a line containing `needle`.
async fn logged(b: &TestBroker, needle: &str) {
    let deadline = Instant::now() + WAIT;
    while !b.logs().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no '{needle}' in the log:\n{}",
            b.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_is_cut_off_and_publishers_go_on() {
    let b = TestBroker::start_with(&[("JUNCTION_LIMITS_WRITE_TIMEOUT_MS", "1000")]);
    // The slow consumer: subscribes (auto acks: the broker writes as fast as the socket takes)
    // and then never reads again.
    let mut slow = StompClient::connect(b.stomp).await;
    slow.subscribe("1", "/queue/firehose", "auto", &[]).await;
    // A publisher on another connection sends far more than the socket buffers hold, each
    // SEND confirmed by its receipt.
    let mut publisher = StompClient::connect(b.stomp).await;
    let body = vec![b'x'; 64 << 10];
    for i in 0..600 {
        let r = publisher
            .send_with_receipt(
                Frame::new(Command::Send)
                    .with_header("destination", "/queue/firehose")
                    .with_header("n", i.to_string())
                    .with_body(body.clone()),
            )
            .await;
        assert_eq!(r.command, Command::Receipt);
        if i == 300 {
            // By now the slow consumer's socket is full; it is cut off within the timeout.
            logged(&b, "slow consumer").await;
        }
    }
    logged(&b, "slow consumer").await;
    // The publisher was never disturbed, and a new consumer gets what was not written out.
    let mut fresh = StompClient::connect(b.stomp).await;
    fresh
        .subscribe("2", "/queue/firehose", "client-individual", &[])
        .await;
    let m = fresh.message().await;
    assert_eq!(m.body.len(), body.len());
    publisher
        .send_with_receipt(Frame::new(Command::Disconnect))
        .await;
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_5000_connections_does_not_starve_an_established_client() {
    let b = TestBroker::start_with(&[
        // Fewer slots than the flood: the rest are refused at accept.
        ("JUNCTION_LIMITS_MAX_CONNECTIONS", "3000"),
        // The connection limit alone (the handshake cap has its own test below).
        ("JUNCTION_LIMITS_MAX_HANDSHAKES", "0"),
    ]);
    let client = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    client.admin().create_topic("steady", 1).await.unwrap();
    let mut consumer = client
        .subscribe(ConsumerOptions::new("steady").prefetch(10))
        .await
        .unwrap();
    let producer = client.producer();
    let dest = Destination::queue("steady");
    let round_trips = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // The steady client: one message at a time, published, received, acked, in order.
    let steady = {
        let (round_trips, stop) = (Arc::clone(&round_trips), Arc::clone(&stop));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                producer
                    .send(&dest, Message::new(n.to_string()))
                    .await
                    .expect("the steady publisher is never refused");
                let d = tokio::time::timeout(WAIT, consumer.next())
                    .await
                    .expect("the steady consumer keeps receiving")
                    .expect("its stream stays open")
                    .expect("no error");
                assert_eq!(d.body, n.to_string().into_bytes());
                d.ack().await.unwrap();
                n += 1;
                round_trips.store(n, Ordering::Relaxed);
            }
            n
        })
    };
    // The flood: 5,000 connections to every listener at once, half of them sending a partial
    // handshake and then nothing.
    let targets = [b.native, b.amqp, b.mqtt, b.stomp, b.stomp_ws];
    let mut tasks = Vec::new();
    for i in 0..5000usize {
        let addr = targets[i % targets.len()];
        tasks.push(tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            if i % 2 == 0 {
                let _ = s.write_all(b"AMQP\x00\x00").await;
            }
            Some(s)
        }));
    }
    let mut open = Vec::new();
    for t in tasks {
        if let Some(s) = t.await.unwrap() {
            open.push(s);
        }
    }
    // With every flood socket open (or refused), the steady client still completes round
    // trips: 50 more from here.
    let at_peak = round_trips.load(Ordering::Relaxed);
    let deadline = Instant::now() + WAIT;
    while round_trips.load(Ordering::Relaxed) < at_peak + 50 {
        assert!(
            Instant::now() < deadline,
            "the steady client stalled during the flood at {} round trips",
            round_trips.load(Ordering::Relaxed)
        );
        assert!(!steady.is_finished(), "the steady client failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let n = steady.await.expect("the steady client ran to the end");
    assert!(n >= at_peak + 50);
    assert!(
        b.logs().contains("connection limit reached"),
        "the flood hit the limit"
    );
    drop(open);
    println!("flood: {n} steady round trips");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_slow_handshakes_cannot_keep_new_clients_out() {
    const CAP: usize = 100;
    let b = TestBroker::start_with(&[
        ("JUNCTION_LIMITS_MAX_CONNECTIONS", "1000"),
        ("JUNCTION_LIMITS_MAX_HANDSHAKES", &CAP.to_string()),
        // Without the cap, the flood would hold every slot for the whole test.
        ("JUNCTION_LIMITS_HANDSHAKE_TIMEOUT_MS", "600000"),
    ]);
    let client = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    client.admin().create_topic("steady", 1).await.unwrap();
    let mut consumer = client
        .subscribe(ConsumerOptions::new("steady").prefetch(10))
        .await
        .unwrap();
    // The flood: 2,000 connections to every listener that never say a word, opened 250 at a
    // time (more at once overflow the listeners' accept queues on a busy machine, and a
    // socket the kernel dropped there looks open to its client without the broker knowing).
    let targets = [b.native, b.amqp, b.mqtt, b.stomp, b.stomp_ws];
    let mut flood = Vec::new();
    for batch in 0..8usize {
        let tasks: Vec<_> = (0..250usize)
            .map(|i| tokio::spawn(tokio::net::TcpStream::connect(targets[(batch + i) % 5])))
            .collect();
        for t in tasks {
            if let Ok(s) = t.await.unwrap() {
                flood.push(s);
            }
        }
    }
    let closed = Arc::new(AtomicU64::new(0));
    let mut opened = 0u64;
    let mut readers = Vec::new();
    for mut s in flood {
        opened += 1;
        let closed = Arc::clone(&closed);
        readers.push(tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
        }));
    }
    // The broker keeps at most CAP of them: the rest are refused or dropped to make room.
    let deadline = Instant::now() + WAIT;
    while closed.load(Ordering::Relaxed) + (CAP as u64) < opened {
        assert!(
            Instant::now() < deadline,
            "the broker still holds {} of {opened} silent connections",
            opened - closed.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.logged("handshake limit reached").await;

    // New clients of every protocol get in while the flood's sockets are open: a refused
    // attempt is tried again (room is made once the oldest handshakes are a second old).
    let late = retry("native", || async {
        Client::connect(ClientOptions::new(b.native.to_string()))
            .await
            .ok()
    })
    .await;
    late.producer()
        .send(&Destination::queue("steady"), Message::new("late"))
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(d.body, &b"late"[..]);
    d.ack().await.unwrap();
    let amqp = retry("amqp", || async {
        lapin::Connection::connect(
            &format!("amqp://guest:guest@{}/%2f", b.amqp),
            lapin::ConnectionProperties::default(),
        )
        .await
        .ok()
    })
    .await;
    let ch = amqp.create_channel().await.unwrap();
    ch.queue_declare("late-amqp".into(), Default::default(), Default::default())
        .await
        .unwrap();
    let mut stomp = retry("stomp", || stomp_login(b.stomp)).await;
    stomp.publish("/queue/late-stomp", b"late", &[]).await;
    let (mqtt, mut events) = rumqttc::AsyncClient::new(
        rumqttc::MqttOptions::new("late-mqtt", "127.0.0.1", b.mqtt.port()),
        10,
    );
    let deadline = Instant::now() + WAIT;
    loop {
        match tokio::time::timeout(WAIT, events.poll())
            .await
            .expect("an MQTT event")
        {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                assert_eq!(a.code, rumqttc::ConnectReturnCode::Success);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                assert!(Instant::now() < deadline, "MQTT never got in: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    mqtt.publish("late", rumqttc::QoS::AtLeastOnce, false, "late")
        .await
        .unwrap();
    loop {
        match tokio::time::timeout(WAIT, events.poll())
            .await
            .expect("the PUBACK")
        {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("MQTT connection lost: {e}"),
        }
    }
    for r in readers {
        r.abort();
    }
}

/// Calls `attempt` until it gives a value, for at most [`WAIT`].
async fn retry<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(Some(v)) = tokio::time::timeout(Duration::from_secs(10), attempt()).await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: never got in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A STOMP 1.2 login as guest; `None` if the broker closed the connection instead.
async fn stomp_login(addr: std::net::SocketAddr) -> Option<StompClient> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let mut out = bytes::BytesMut::new();
    let connect = Frame::new(Command::Connect)
        .with_header("accept-version", "1.2")
        .with_header("host", "/")
        .with_header("login", "guest")
        .with_header("passcode", "guest");
    junction_stomp::encode(&connect, junction_stomp::Version::V1_2, &mut out).ok()?;
    s.write_all(&out).await.ok()?;
    let mut c = StompClient::over(s);
    let f = c.recv().await?;
    (f.command == Command::Connected).then_some(c)
}
