//! Scenario tests of the core through the `Session` seam, in process.

use std::collections::HashSet;
use std::time::Duration;

use super::*;

fn cfg(dir: &std::path::Path) -> CoreConfig {
    let mut c = CoreConfig::new(dir);
    c.store = junction_store::StoreConfig::tiny(dir.join("store"));
    c.store.segment_size = 1 << 20;
    c.store.max_record_size = 64 << 10;
    c
}

async fn open(dir: &std::path::Path) -> (Broker, Session) {
    let b = Broker::open(cfg(dir)).await.unwrap();
    let s = b.connect("guest", "guest", "/", None, "test", "t").unwrap();
    (b, s)
}

fn msg(body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
}

async fn next_delivery(s: &mut Session) -> Delivery {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), s.next_event()).await {
            Ok(Some(SessionEvent::Delivery(d))) => return *d,
            Ok(Some(_)) => continue,
            other => panic!("no delivery: {other:?}"),
        }
    }
}

async fn no_delivery(s: &mut Session, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(ev) = tokio::time::timeout_at(deadline, s.next_event()).await {
        if let Some(SessionEvent::Delivery(d)) = ev {
            panic!("unexpected delivery {:?}", d.message.body);
        }
    }
}

fn spec(queue: &str) -> ConsumeSpec {
    ConsumeSpec {
        queue: queue.into(),
        group: String::new(),
        prefetch: 0,
        no_ack: false,
        start: StartFrom::Committed,
        exclusive_partitions: false,
        tag: String::new(),
        exclusive: false,
        ..ConsumeSpec::default()
    }
}

fn qdecl(name: &str) -> QueueDecl {
    QueueDecl {
        name: name.into(),
        durable: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn competing_consumers_share_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut p) = open(dir.path()).await;
    p.declare_queue(qdecl("work")).await.unwrap();
    let mut consumers = Vec::new();
    for _ in 0..3 {
        let mut c = b.connect("guest", "guest", "/", None, "test", "c").unwrap();
        c.consume(ConsumeSpec {
            prefetch: 5,
            ..spec("work")
        })
        .await
        .unwrap();
        consumers.push(c);
    }
    for i in 0..90 {
        p.publish("", "work", &msg(&format!("m{i}"))).unwrap();
    }
    let mut seen = HashSet::new();
    let mut per = [0; 3];
    while seen.len() < 90 {
        for (i, c) in consumers.iter_mut().enumerate() {
            if let Ok(Some(SessionEvent::Delivery(d))) =
                tokio::time::timeout(Duration::from_millis(50), c.next_event()).await
            {
                assert!(seen.insert(d.message.body.clone()), "delivered twice");
                per[i] += 1;
                c.settle(d.id, Settle::Ack).unwrap();
            }
        }
    }
    assert!(per.iter().all(|n| *n > 0), "work was shared: {per:?}");
    b.shutdown().await;
}

#[tokio::test]
async fn topic_fanout_and_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    s.declare_queue(qdecl("eu")).await.unwrap();
    s.declare_queue(qdecl("all")).await.unwrap();
    s.bind(BindingDecl {
        exchange: "amq.topic".into(),
        destination: "eu".into(),
        routing_key: "orders.eu.*".into(),
        ..Default::default()
    })
    .unwrap();
    s.bind(BindingDecl {
        exchange: "amq.topic".into(),
        destination: "all".into(),
        routing_key: "orders.#".into(),
        ..Default::default()
    })
    .unwrap();
    let p = s.publish("amq.topic", "orders.eu.de", &msg("de")).unwrap();
    assert_eq!(p.routed.len(), 2, "stored once, routed to both");
    let p = s.publish("amq.topic", "orders.us.ny", &msg("ny")).unwrap();
    assert_eq!(
        p.routed
            .iter()
            .map(|r| r.queue.as_str())
            .collect::<Vec<_>>(),
        vec!["all"]
    );
    assert!(s
        .publish("amq.topic", "billing", &msg("x"))
        .unwrap()
        .routed
        .is_empty());
    // Two groups on "all" each see both messages.
    for g in ["g1", "g2"] {
        let mut c = b.connect("guest", "guest", "/", None, "test", g).unwrap();
        c.consume(ConsumeSpec {
            group: g.into(),
            start: StartFrom::Earliest,
            ..spec("all")
        })
        .await
        .unwrap();
        let a = next_delivery(&mut c).await;
        let z = next_delivery(&mut c).await;
        assert_eq!(
            (&a.message.body[..], &z.message.body[..]),
            (&b"de"[..], &b"ny"[..])
        );
        assert_eq!(a.routing_key, "orders.eu.de");
    }
    b.shutdown().await;
}

#[tokio::test]
async fn unacked_messages_are_redelivered_when_a_consumer_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    s.declare_queue(qdecl("q")).await.unwrap();
    s.publish("", "q", &msg("a")).unwrap();
    let mut c1 = b
        .connect("guest", "guest", "/", None, "test", "c1")
        .unwrap();
    c1.consume(spec("q")).await.unwrap();
    let d = next_delivery(&mut c1).await;
    assert!(!d.redelivered);
    c1.close().await;
    let mut c2 = b
        .connect("guest", "guest", "/", None, "test", "c2")
        .unwrap();
    c2.consume(spec("q")).await.unwrap();
    let d = next_delivery(&mut c2).await;
    assert!(d.redelivered);
    assert_eq!(d.delivery_count, 2);
    c2.settle(d.id, Settle::Requeue).unwrap();
    let d = next_delivery(&mut c2).await;
    assert_eq!(d.delivery_count, 3);
    c2.settle(d.id, Settle::Ack).unwrap();
    no_delivery(&mut c2, Duration::from_millis(300)).await;
    b.shutdown().await;
}

#[tokio::test]
async fn ttl_and_rejects_go_to_the_dead_letter_exchange() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    s.declare_queue(qdecl("dead")).await.unwrap();
    s.declare_queue(QueueDecl {
        args: vec![
            ("x-message-ttl".into(), Value::I64(200)),
            ("x-dead-letter-exchange".into(), Value::Str(String::new())),
            (
                "x-dead-letter-routing-key".into(),
                Value::Str("dead".into()),
            ),
            ("x-delivery-limit".into(), Value::I64(2)),
        ],
        ..qdecl("short")
    })
    .await
    .unwrap();
    s.publish("", "short", &msg("expires")).unwrap();
    let mut c = b.connect("guest", "guest", "/", None, "test", "c").unwrap();
    c.consume(spec("dead")).await.unwrap();
    let d = next_delivery(&mut c).await;
    assert_eq!(&d.message.body[..], b"expires");
    assert_eq!(
        d.message.properties.header("x-first-death-reason"),
        Some(&Value::Str("expired".into()))
    );
    c.settle(d.id, Settle::Ack).unwrap();
    // Poison message: requeued past the delivery limit.
    let mut w = b.connect("guest", "guest", "/", None, "test", "w").unwrap();
    w.consume(spec("short")).await.unwrap();
    s.publish("", "short", &msg("poison")).unwrap();
    for _ in 0..2 {
        let d = next_delivery(&mut w).await;
        w.settle(d.id, Settle::Requeue).unwrap();
    }
    let d = next_delivery(&mut c).await;
    assert_eq!(&d.message.body[..], b"poison");
    assert_eq!(
        d.message.properties.header("x-first-death-reason"),
        Some(&Value::Str("delivery_limit".into()))
    );
    b.shutdown().await;
}

#[tokio::test]
async fn max_length_drop_head_and_reject_publish() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    s.declare_queue(QueueDecl {
        args: vec![("x-max-length".into(), Value::I64(3))],
        ..qdecl("drop")
    })
    .await
    .unwrap();
    for i in 0..10 {
        s.publish("", "drop", &msg(&format!("{i}"))).unwrap();
    }
    let mut c = b.connect("guest", "guest", "/", None, "test", "c").unwrap();
    c.consume(spec("drop")).await.unwrap();
    let got: Vec<_> = [
        next_delivery(&mut c).await,
        next_delivery(&mut c).await,
        next_delivery(&mut c).await,
    ]
    .into_iter()
    .map(|d| String::from_utf8(d.message.body.to_vec()).unwrap())
    .collect();
    assert_eq!(got, vec!["7", "8", "9"]);

    // By bytes: 10 bodies of 100 bytes with room for 350: the newest three stay.
    s.declare_queue(QueueDecl {
        args: vec![("x-max-length-bytes".into(), Value::I64(350))],
        ..qdecl("bytes")
    })
    .await
    .unwrap();
    for i in 0..10u8 {
        s.publish("", "bytes", &Message::new(vec![b'0' + i; 100]))
            .unwrap();
    }
    let mut cb = b
        .connect("guest", "guest", "/", None, "test", "cb")
        .unwrap();
    cb.consume(spec("bytes")).await.unwrap();
    for want in [b'7', b'8', b'9'] {
        let d = next_delivery(&mut cb).await;
        assert_eq!(d.message.body[0], want);
        cb.settle(d.id, Settle::Ack).unwrap();
    }
    no_delivery(&mut cb, Duration::from_millis(200)).await;

    s.declare_queue(QueueDecl {
        args: vec![
            ("x-max-length".into(), Value::I64(2)),
            ("x-overflow".into(), Value::Str("reject-publish".into())),
        ],
        ..qdecl("reject")
    })
    .await
    .unwrap();
    s.publish("", "reject", &msg("1")).unwrap();
    s.publish("", "reject", &msg("2")).unwrap();
    assert!(matches!(
        s.publish("", "reject", &msg("3")),
        Err(CoreError::ResourceLimit(_))
    ));
    // Once a consumer takes one, there is room again.
    let mut c = b.connect("guest", "guest", "/", None, "test", "c").unwrap();
    c.consume(spec("reject")).await.unwrap();
    let d = next_delivery(&mut c).await;
    c.settle(d.id, Settle::Ack).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while s.publish("", "reject", &msg("3")).is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "room never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.shutdown().await;
}

#[tokio::test]
async fn durable_queues_messages_and_offsets_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (b, mut s) = open(dir.path()).await;
        s.declare_queue(qdecl("keep")).await.unwrap();
        s.declare_queue(QueueDecl {
            name: "gone".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        s.bind(BindingDecl {
            exchange: "amq.topic".into(),
            destination: "keep".into(),
            routing_key: "k.#".into(),
            ..Default::default()
        })
        .unwrap();
        for i in 0..5 {
            s.publish("amq.topic", "k.x", &msg(&format!("{i}")))
                .unwrap();
        }
        let mut c = b.connect("guest", "guest", "/", None, "test", "c").unwrap();
        c.consume(spec("keep")).await.unwrap();
        for _ in 0..2 {
            let d = next_delivery(&mut c).await;
            c.settle(d.id, Settle::Ack).unwrap();
        }
        let d = next_delivery(&mut c).await; // delivered, never acked
        assert_eq!(&d.message.body[..], b"2");
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.shutdown().await;
    }
    let (b, mut s) = open(dir.path()).await;
    assert!(matches!(
        s.queue_info("gone").await,
        Err(CoreError::NotFound { .. })
    ));
    assert_eq!(
        s.publish("amq.topic", "k.y", &msg("5"))
            .unwrap()
            .routed
            .len(),
        1,
        "binding survived"
    );
    s.consume(spec("keep")).await.unwrap();
    let d = next_delivery(&mut s).await;
    assert_eq!(&d.message.body[..], b"2");
    assert!(d.redelivered, "it was delivered before the restart");
    let rest: Vec<_> = [
        next_delivery(&mut s).await,
        next_delivery(&mut s).await,
        next_delivery(&mut s).await,
    ]
    .into_iter()
    .map(|d| String::from_utf8(d.message.body.to_vec()).unwrap())
    .collect();
    assert_eq!(rest, vec!["3", "4", "5"]);
    b.shutdown().await;
}

#[tokio::test]
async fn authentication_and_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    assert!(matches!(
        b.connect("guest", "wrong", "/", None, "test", ""),
        Err(CoreError::AccessRefused(_))
    ));
    assert!(matches!(
        b.connect("nobody", "x", "/", None, "test", ""),
        Err(CoreError::AccessRefused(_))
    ));
    let remote: std::net::SocketAddr = "10.1.2.3:5000".parse().unwrap();
    assert!(matches!(
        b.connect("guest", "guest", "/", Some(remote), "test", ""),
        Err(CoreError::AccessRefused(_))
    ));
    b.put_user("app", "secret", vec![]).unwrap();
    assert!(
        b.connect("app", "secret", "/", Some(remote), "test", "")
            .is_err(),
        "no permissions yet"
    );
    b.set_permissions(Permission {
        user: "app".into(),
        vhost: "/".into(),
        configure: "app\\..*".into(),
        write: "amq\\.topic".into(),
        read: "app\\..*".into(),
    })
    .unwrap();
    let mut app = b
        .connect("app", "secret", "/", Some(remote), "test", "")
        .unwrap();
    app.declare_queue(qdecl("app.in")).await.unwrap();
    assert!(matches!(
        app.declare_queue(qdecl("other")).await,
        Err(CoreError::AccessRefused(_))
    ));
    s.declare_queue(qdecl("other")).await.unwrap();
    assert!(matches!(
        app.consume(spec("other")).await,
        Err(CoreError::AccessRefused(_))
    ));
    assert!(matches!(
        app.publish("", "other", &msg("x")),
        Err(CoreError::AccessRefused(_))
    ));
    app.publish("amq.topic", "x", &msg("x")).unwrap();
    b.shutdown().await;
}

#[tokio::test]
async fn exclusive_partitions_are_assigned_and_rebalanced() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    s.declare_queue(QueueDecl {
        partitions: 4,
        ..qdecl("topic4")
    })
    .await
    .unwrap();
    let ex = |tag: &str| ConsumeSpec {
        group: "g".into(),
        exclusive_partitions: true,
        tag: tag.into(),
        ..spec("topic4")
    };
    let mut a = b.connect("guest", "guest", "/", None, "test", "a").unwrap();
    let (_, pa) = a.consume(ex("a")).await.unwrap();
    assert_eq!(pa, vec![0, 1, 2, 3]);
    let mut c = b.connect("guest", "guest", "/", None, "test", "c").unwrap();
    let (_, pc) = c.consume(ex("c")).await.unwrap();
    assert_eq!(pc, vec![2, 3]);
    // `a` is told it now has 0 and 1.
    loop {
        match tokio::time::timeout(Duration::from_secs(20), a.next_event())
            .await
            .unwrap()
        {
            Some(SessionEvent::Assignment { partitions, .. }) if partitions == vec![0, 1] => break,
            Some(_) => {}
            None => panic!("closed"),
        }
    }
    // Same sharding key -> same partition, in order.
    for i in 0..20 {
        let mut m = msg(&format!("{i}"));
        m.properties.sharding_key = Some("order-42".into());
        s.publish("", "topic4", &m).unwrap();
    }
    let part = s
        .publish("", "topic4", &{
            let mut m = msg("probe");
            m.properties.sharding_key = Some("order-42".into());
            m
        })
        .unwrap()
        .routed[0]
        .partition;
    let owner = if part < 2 { &mut a } else { &mut c };
    for i in 0..21 {
        let d = next_delivery(owner).await;
        assert_eq!(d.partition, part);
        let want = if i == 20 {
            "probe".to_string()
        } else {
            i.to_string()
        };
        assert_eq!(String::from_utf8(d.message.body.to_vec()).unwrap(), want);
        owner.settle(d.id, Settle::Ack).unwrap();
    }
    b.shutdown().await;
}

#[tokio::test]
async fn ephemeral_groups_replay_and_leave_no_offsets_behind() {
    let dir = tempfile::tempdir().unwrap();
    let (b, mut s) = open(dir.path()).await;
    s.declare_queue(qdecl("log")).await.unwrap();
    for i in 0..3 {
        s.publish("", "log", &msg(&format!("m{i}"))).unwrap();
    }
    let group = format!("{EPHEMERAL_GROUP_PREFIX}replay-1");
    let mut replay = spec("log");
    replay.group = group.clone();
    replay.start = StartFrom::Last;
    let (tag, _) = s.consume(replay).await.unwrap();
    let d = next_delivery(&mut s).await;
    assert_eq!(
        &d.message.body[..],
        b"m2",
        "`last` starts at the last message"
    );
    s.settle(d.id, Settle::Ack).unwrap();
    s.close_consumer(&tag).unwrap();
    // The default group was not touched: it still has all three.
    let mut plain = spec("log");
    plain.no_ack = true;
    s.consume(plain).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            next_delivery(&mut s).await.message.body,
            format!("m{i}").as_bytes()
        );
    }
    s.close().await;
    b.shutdown().await;
    let saved: String = std::fs::read_dir(dir.path().join("queues"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(!saved.is_empty(), "the default group's offsets are saved");
    assert!(!saved.contains(&group), "the replay group is not: {saved}");
}

#[test]
fn stream_offsets_parse_like_rabbitmq() {
    let now = 10_000_000;
    let t = |s: &str| StartFrom::from_stream_offset(&Value::Str(s.into()), now);
    assert_eq!(t("first"), Some(StartFrom::Earliest));
    assert_eq!(t("last"), Some(StartFrom::Last));
    assert_eq!(t("next"), Some(StartFrom::Latest));
    assert_eq!(t("42"), Some(StartFrom::Offset(42)));
    assert_eq!(t("10s"), Some(StartFrom::Time(now - 10_000)));
    assert_eq!(t("2m"), Some(StartFrom::Time(now - 120_000)));
    assert_eq!(t("yesterday"), None);
    assert_eq!(t(""), None);
    assert_eq!(
        StartFrom::from_stream_offset(&Value::Timestamp(5), now),
        Some(StartFrom::Time(5_000))
    );
    assert_eq!(
        StartFrom::from_stream_offset(&Value::I64(7), now),
        Some(StartFrom::Offset(7))
    );
}
