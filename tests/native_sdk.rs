//! The core through the native protocol and the Rust SDK, against the real broker binary.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::native::{client, next, WAIT};
use common::TestBroker;
use junction_sdk::{
    Client, ClientOptions, Consumer, ConsumerOptions, Delivery, Destination, ErrorCode, Message,
    QueueOptions, SdkError, StartPosition,
};

/// Nothing is delivered within `within` (a negative check, bounded).
async fn quiet(c: &mut Consumer, within: Duration) {
    if let Ok(Some(d)) = tokio::time::timeout(within, c.next()).await {
        panic!("unexpected delivery {:?}", d.map(|d| d.body));
    }
}

fn text(d: &Delivery) -> String {
    String::from_utf8(d.body.to_vec()).unwrap()
}

#[tokio::test]
async fn point_to_point_three_competing_consumers_get_each_message_once() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin()
        .declare_queue(QueueOptions::new("jobs"))
        .await
        .unwrap();
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let cc = client(&b).await;
        consumers.push(
            cc.subscribe(ConsumerOptions::new("jobs").prefetch(10))
                .await
                .unwrap(),
        );
    }
    let p = c.producer();
    let dest = Destination::queue("jobs");
    let mut confirms = Vec::new();
    for i in 0..600 {
        confirms.push(
            p.send_pipelined(&dest, Message::new(format!("job-{i}")))
                .await
                .unwrap(),
        );
    }
    for cf in confirms {
        cf.await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut per = [0usize; 3];
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 600 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of 600 arrived",
            seen.len()
        );
        for (i, cons) in consumers.iter_mut().enumerate() {
            while let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(20), cons.next()).await
            {
                let d = d.unwrap();
                assert!(seen.insert(text(&d)), "{} delivered twice", text(&d));
                per[i] += 1;
                d.ack().await.unwrap();
            }
        }
    }
    assert!(
        per.iter().all(|n| *n > 0),
        "each consumer got work: {per:?}"
    );
    for cons in consumers.iter_mut() {
        quiet(cons, Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn publish_subscribe_three_groups_each_get_everything() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("events", 3).await.unwrap();
    let mut groups = Vec::new();
    for g in ["audit", "billing", "search"] {
        let cc = client(&b).await;
        groups.push(
            cc.subscribe(
                ConsumerOptions::new("events")
                    .group(g)
                    .start(StartPosition::Earliest)
                    .prefetch(50),
            )
            .await
            .unwrap(),
        );
    }
    let p = c.producer();
    let batch: Vec<Message> = (0..120).map(|i| Message::new(format!("e{i}"))).collect();
    let receipts = p
        .send_batch(&Destination::queue("events"), batch)
        .await
        .unwrap();
    assert_eq!(receipts.len(), 120);
    let parts: HashSet<u16> = receipts.iter().filter_map(|r| r.partition()).collect();
    assert_eq!(parts.len(), 3, "spread over the partitions");
    for g in groups.iter_mut() {
        let mut got = HashSet::new();
        while got.len() < 120 {
            let d = next(g).await;
            got.insert(text(&d));
            d.ack().await.unwrap();
        }
    }
}

#[tokio::test]
async fn same_sharding_key_is_consumed_in_order() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("orders", 4).await.unwrap();
    let c1 = client(&b).await;
    let c2 = client(&b).await;
    let opts = || {
        ConsumerOptions::new("orders")
            .group("ship")
            .exclusive_partitions(true)
            .prefetch(1)
    };
    let mut a = c1.subscribe(opts()).await.unwrap();
    let mut z = c2.subscribe(opts()).await.unwrap();
    let p = c.producer();
    let dest = Destination::queue("orders");
    let mut confirms = Vec::new();
    for i in 0..50 {
        for k in 0..6 {
            let m = Message::new(format!("{k}:{i}")).sharding_key(format!("customer-{k}"));
            confirms.push(p.send_pipelined(&dest, m).await.unwrap());
        }
    }
    for cf in confirms {
        cf.await.unwrap();
    }
    let mut last: HashMap<String, i64> = HashMap::new();
    let mut partition_of: HashMap<String, u16> = HashMap::new();
    let mut n = 0;
    while n < 300 {
        for cons in [&mut a, &mut z] {
            while let Ok(Some(d)) =
                tokio::time::timeout(Duration::from_millis(20), cons.next()).await
            {
                let d = d.unwrap();
                let t = text(&d);
                let (k, i) = t.split_once(':').unwrap();
                let i: i64 = i.parse().unwrap();
                assert_eq!(*last.get(k).unwrap_or(&-1), i - 1, "key {k} out of order");
                last.insert(k.to_string(), i);
                assert_eq!(
                    *partition_of.entry(k.to_string()).or_insert(d.partition),
                    d.partition
                );
                d.ack().await.unwrap();
                n += 1;
            }
        }
    }
    assert!(
        a.partitions().len() == 2 && z.partitions().len() == 2,
        "{:?} {:?}",
        a.partitions(),
        z.partitions()
    );
}

#[tokio::test]
async fn unacked_messages_of_a_dead_consumer_are_redelivered() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin()
        .declare_queue(QueueOptions::new("tasks"))
        .await
        .unwrap();
    let p = c.producer();
    for i in 0..5 {
        p.send(&Destination::queue("tasks"), Message::new(format!("t{i}")))
            .await
            .unwrap();
    }
    let doomed = client(&b).await;
    let mut dc = doomed
        .subscribe(ConsumerOptions::new("tasks").prefetch(5))
        .await
        .unwrap();
    for _ in 0..5 {
        let d = next(&mut dc).await;
        assert!(!d.redelivered);
    }
    // The consumer's connection goes away without acking.
    doomed.close().await.unwrap();
    let survivor = client(&b).await;
    let mut sc = survivor
        .subscribe(ConsumerOptions::new("tasks"))
        .await
        .unwrap();
    let mut got = HashSet::new();
    for _ in 0..5 {
        let d = next(&mut sc).await;
        assert!(d.redelivered, "{} not flagged redelivered", text(&d));
        assert_eq!(d.delivery_count, 2);
        got.insert(text(&d));
        d.ack().await.unwrap();
    }
    assert_eq!(got.len(), 5);
    quiet(&mut sc, Duration::from_millis(200)).await;
}

#[tokio::test]
async fn ttl_and_rejected_messages_are_dead_lettered() {
    let b = TestBroker::start();
    let c = client(&b).await;
    let admin = c.admin();
    admin
        .declare_queue(QueueOptions::new("parking"))
        .await
        .unwrap();
    admin
        .declare_queue(
            QueueOptions::new("work")
                .message_ttl(Duration::from_millis(300))
                .dead_letter("", "parking")
                .delivery_limit(3),
        )
        .await
        .unwrap();
    let p = c.producer();
    p.send(&Destination::queue("work"), Message::new("too-late"))
        .await
        .unwrap();
    let mut parked = c.subscribe(ConsumerOptions::new("parking")).await.unwrap();
    let d = next(&mut parked).await;
    assert_eq!(text(&d), "too-late");
    assert_eq!(
        d.properties.header("x-first-death-reason").map(|v| &v[..]),
        Some(&b"expired"[..])
    );
    d.ack().await.unwrap();

    // Per-message TTL.
    p.send(
        &Destination::queue("work"),
        Message::new("short").ttl(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let d = next(&mut parked).await;
    assert_eq!(text(&d), "short");
    d.ack().await.unwrap();

    // Rejected without requeue.
    let w = client(&b).await;
    let mut wc = w.subscribe(ConsumerOptions::new("work")).await.unwrap();
    p.send(&Destination::queue("work"), Message::new("bad"))
        .await
        .unwrap();
    let d = next(&mut wc).await;
    d.nack(false).await.unwrap();
    let d = next(&mut parked).await;
    assert_eq!(text(&d), "bad");
    assert_eq!(
        d.properties.header("x-first-death-reason").map(|v| &v[..]),
        Some(&b"rejected"[..])
    );
}

#[tokio::test]
async fn max_length_drops_the_oldest_or_rejects_publishers() {
    let b = TestBroker::start();
    let c = client(&b).await;
    let admin = c.admin();
    admin
        .declare_queue(QueueOptions::new("latest3").max_length(3))
        .await
        .unwrap();
    admin
        .declare_queue(QueueOptions::new("full2").max_length(2).overflow_reject())
        .await
        .unwrap();
    let p = c.producer();
    for i in 0..10 {
        p.send(&Destination::queue("latest3"), Message::new(format!("{i}")))
            .await
            .unwrap();
    }
    let mut cons = c.subscribe(ConsumerOptions::new("latest3")).await.unwrap();
    let got: Vec<String> = [
        next(&mut cons).await,
        next(&mut cons).await,
        next(&mut cons).await,
    ]
    .iter()
    .map(text)
    .collect();
    assert_eq!(got, vec!["7", "8", "9"]);

    p.send(&Destination::queue("full2"), Message::new("a"))
        .await
        .unwrap();
    p.send(&Destination::queue("full2"), Message::new("b"))
        .await
        .unwrap();
    match p
        .send(&Destination::queue("full2"), Message::new("c"))
        .await
    {
        Err(SdkError::Server { code, .. }) => assert_eq!(code, ErrorCode::ResourceError),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn durable_queues_messages_and_offsets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = TestBroker::start_in(dir.path(), &[]);
        let c = client(&b).await;
        let admin = c.admin();
        admin
            .declare_queue(QueueOptions::new("ledger"))
            .await
            .unwrap();
        admin
            .declare_queue(QueueOptions::new("scratch").durable(false))
            .await
            .unwrap();
        admin.create_topic("stream", 2).await.unwrap();
        let p = c.producer();
        for i in 0..10 {
            p.send(
                &Destination::queue("ledger"),
                Message::new(format!("L{i}")).persistent(true),
            )
            .await
            .unwrap();
            p.send(
                &Destination::queue("stream"),
                Message::new(format!("S{i}")).sharding_key("one"),
            )
            .await
            .unwrap();
        }
        let mut cons = c.subscribe(ConsumerOptions::new("ledger")).await.unwrap();
        for _ in 0..4 {
            let d = next(&mut cons).await;
            d.ack().await.unwrap();
        }
        // The group "g" reads 3 of the stream and commits them.
        let mut g = c
            .subscribe(
                ConsumerOptions::new("stream")
                    .group("g")
                    .start(StartPosition::Earliest),
            )
            .await
            .unwrap();
        for _ in 0..3 {
            let d = next(&mut g).await;
            d.ack().await.unwrap();
        }
        // Acks are fire-and-forget: a round trip makes sure the broker has them.
        admin
            .declare_queue(QueueOptions::new("ledger"))
            .await
            .unwrap();
        c.close().await.unwrap();
        let st = tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
        assert!(st.success());
    }
    let b = TestBroker::start_in(dir.path(), &[]);
    let c = client(&b).await;
    match c
        .admin()
        .declare_queue(QueueOptions::new("scratch").durable(false).passive(true))
        .await
    {
        Err(SdkError::Server { code, .. }) => assert_eq!(code, ErrorCode::NotFound),
        other => panic!("transient queue survived: {other:?}"),
    }
    let mut cons = c.subscribe(ConsumerOptions::new("ledger")).await.unwrap();
    let got: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            let d = next(&mut cons).await;
            v.push(text(&d));
            d.ack().await.unwrap();
        }
        v
    };
    assert_eq!(got, (4..10).map(|i| format!("L{i}")).collect::<Vec<_>>());
    quiet(&mut cons, Duration::from_millis(300)).await;
    let mut g = c
        .subscribe(ConsumerOptions::new("stream").group("g"))
        .await
        .unwrap();
    let d = next(&mut g).await;
    assert_eq!(text(&d), "S3", "group offset kept across the restart");
    // Replay from an offset with a new group, and pull by offset.
    let mut r = c
        .subscribe(
            ConsumerOptions::new("stream")
                .group("replay")
                .start(StartPosition::Offset(8)),
        )
        .await
        .unwrap();
    let d = next(&mut r).await;
    assert_eq!(text(&d), "S8");
    let part = d.partition;
    let pulled = c.pull("stream", part, 0, 100).await.unwrap();
    assert_eq!(pulled.messages.len(), 10);
}

#[tokio::test]
async fn a_wrong_password_is_refused() {
    let b = TestBroker::start();
    let r = Client::connect(ClientOptions::new(b.native.to_string()).credentials("guest", "wrong"))
        .await;
    match r {
        Err(SdkError::Server { code, .. }) => assert_eq!(code, ErrorCode::AccessRefused),
        Err(e) => panic!("expected AccessRefused, got {e}"),
        Ok(_) => panic!("logged in with a wrong password"),
    }
}

#[tokio::test]
async fn exclusive_auto_delete_and_expiring_queues() {
    let b = TestBroker::start();
    let owner = client(&b).await;
    let other = client(&b).await;
    owner
        .admin()
        .declare_queue(QueueOptions::new("mine").durable(false).exclusive(true))
        .await
        .unwrap();
    match other.subscribe(ConsumerOptions::new("mine")).await {
        Err(SdkError::Server { code, .. }) => assert_eq!(code, ErrorCode::ResourceLocked),
        other => panic!("expected ResourceLocked, got {:?}", other.map(|_| ())),
    }
    // The exclusive queue goes with its connection.
    owner.close().await.unwrap();
    let gone = |name: &'static str| {
        let c = other.clone();
        async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                match c
                    .admin()
                    .declare_queue(QueueOptions::new(name).durable(false).passive(true))
                    .await
                {
                    Err(SdkError::Server {
                        code: ErrorCode::NotFound,
                        ..
                    }) => return,
                    _ => {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "queue {name} still exists"
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    };
    gone("mine").await;

    // Auto-delete: deleted once its last consumer leaves.
    other
        .admin()
        .declare_queue(QueueOptions::new("temp").durable(false).auto_delete(true))
        .await
        .unwrap();
    let c2 = client(&b).await;
    let cons = c2.subscribe(ConsumerOptions::new("temp")).await.unwrap();
    cons.close().await.unwrap();
    gone("temp").await;

    // x-expires: deleted after being unused that long.
    other
        .admin()
        .declare_queue(QueueOptions::new("brief").expires(Duration::from_millis(300)))
        .await
        .unwrap();
    gone("brief").await;
}

#[tokio::test]
async fn replay_from_a_point_in_time() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("log", 1).await.unwrap();
    let p = c.producer();
    for i in 0..5 {
        p.send(&Destination::queue("log"), Message::new(format!("old{i}")))
            .await
            .unwrap();
    }
    // Store timestamps are milliseconds: let the clock move past the old messages.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    tokio::time::sleep(Duration::from_millis(20)).await;
    for i in 0..3 {
        p.send(&Destination::queue("log"), Message::new(format!("new{i}")))
            .await
            .unwrap();
    }
    assert_eq!(c.offset_for_time("log", 0, cut).await.unwrap(), 5);
    let mut r = c
        .subscribe(
            ConsumerOptions::new("log")
                .group("since")
                .start(StartPosition::Time(cut)),
        )
        .await
        .unwrap();
    for i in 0..3 {
        assert_eq!(text(&next(&mut r).await), format!("new{i}"));
    }
    let mut all = c
        .subscribe(
            ConsumerOptions::new("log")
                .group("all")
                .start(StartPosition::Earliest),
        )
        .await
        .unwrap();
    assert_eq!(text(&next(&mut all).await), "old0");
    let mut latest = c
        .subscribe(
            ConsumerOptions::new("log")
                .group("tail")
                .start(StartPosition::Latest),
        )
        .await
        .unwrap();
    quiet(&mut latest, Duration::from_millis(200)).await;
    p.send(&Destination::queue("log"), Message::new("fresh"))
        .await
        .unwrap();
    assert_eq!(text(&next(&mut latest).await), "fresh");
}
