//! The native protocol on the wire: login, errors for bad input, graceful shutdown.

mod common;

use common::{RawClient, TestBroker};
use junction_native as wire;
use wire::{Body, ErrorCode, Frame};

#[tokio::test]
async fn wrong_password_is_refused_with_access_refused() {
    let b = TestBroker::start();
    let mut c = RawClient::connect(b.native).await;
    let f = c.hello("guest", "nope").await;
    match f.body {
        Body::Error(e) => assert_eq!(e.code, ErrorCode::AccessRefused),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(c.recv().await.is_none(), "the server closes after refusing");
}

#[tokio::test]
async fn garbage_gets_an_error_frame_and_others_keep_working() {
    let b = TestBroker::start();
    let mut good = RawClient::connect(b.native).await;
    assert!(matches!(
        good.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));

    // Garbage before login.
    let mut bad = RawClient::connect(b.native).await;
    bad.send_raw(&[0, 0, 0, 12, 9, 9, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8])
        .await;
    match bad.recv().await.map(|f| f.body) {
        Some(Body::Error(e)) => assert_eq!(e.code, ErrorCode::FrameError, "{}", e.message),
        other => panic!("expected an error frame, got {other:?}"),
    }
    assert!(bad.recv().await.is_none());

    // A frame over the size limit after login: refused from its header alone.
    let mut big = RawClient::connect(b.native).await;
    assert!(matches!(
        big.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));
    big.send_raw(&u32::MAX.to_be_bytes()).await;
    big.send_raw(&u32::MAX.to_le_bytes()).await;
    match big.recv().await.map(|f| f.body) {
        Some(Body::Error(e)) => assert_eq!(e.code, ErrorCode::FrameError),
        other => panic!("expected an error frame, got {other:?}"),
    }

    // A server-only frame from a client.
    let mut odd = RawClient::connect(b.native).await;
    assert!(matches!(
        odd.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));
    odd.send(Frame::new(5, wire::Deleted { messages: 1 })).await;
    match odd.recv().await.map(|f| f.body) {
        Some(Body::Error(e)) => assert_eq!(e.code, ErrorCode::CommandInvalid),
        other => panic!("expected an error frame, got {other:?}"),
    }

    // The well-behaved client still works.
    good.send(Frame::new(2, declare("still-ok"))).await;
    assert!(matches!(
        good.recv().await.map(|f| f.body),
        Some(Body::QueueDeclared(_))
    ));
    assert!(!b.logs().contains("panicked"));
}

#[tokio::test]
async fn request_errors_carry_the_request_id_and_the_connection_stays_open() {
    let b = TestBroker::start();
    let mut c = RawClient::connect(b.native).await;
    assert!(matches!(
        c.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));
    c.send(Frame::new(
        7,
        wire::PurgeQueue {
            name: "missing".into(),
        },
    ))
    .await;
    let f = c.recv().await.unwrap();
    assert_eq!(f.request_id, 7);
    assert!(matches!(f.body, Body::Error(e) if e.code == ErrorCode::NotFound));
    c.send(Frame::new(
        8,
        wire::Publish {
            exchange: "".into(),
            routing_key: "nowhere".into(),
            mandatory: true,
            confirm: true,
            properties: Default::default(),
            body: bytes::Bytes::from_static(b"x"),
            producer: None,
        },
    ))
    .await;
    let f = c.recv().await.unwrap();
    assert_eq!(f.request_id, 8);
    assert!(matches!(f.body, Body::Returned(r) if r.reply_code == 312));
}

#[tokio::test]
async fn sigterm_closes_clients_with_a_close_frame_and_exits_cleanly() {
    let mut b = TestBroker::start();
    let mut c = RawClient::connect(b.native).await;
    assert!(matches!(
        c.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));
    let waiter = tokio::spawn(async move { c.recv().await });
    let status = tokio::task::spawn_blocking(move || {
        let st = b.stop();
        (st, b)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit status {:?}", status.0);
    match waiter.await.unwrap().map(|f| f.body) {
        Some(Body::Close(c)) => assert_eq!(c.code, ErrorCode::ConnectionForced.code()),
        other => panic!("expected Close, got {other:?}"),
    }
}

#[tokio::test]
async fn disk_low_watermark_holds_publishers_with_flow_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut b = TestBroker::start_in(dir.path(), &[]);
        let mut c = RawClient::connect(b.native).await;
        assert!(matches!(
            c.hello("guest", "guest").await.body,
            Body::Welcome(_)
        ));
        c.send(Frame::new(2, declare("kept"))).await;
        assert!(matches!(
            c.recv().await.map(|f| f.body),
            Some(Body::QueueDeclared(_))
        ));
        c.send(Frame::new(3, publish("kept", b"before"))).await;
        assert!(matches!(
            c.recv().await.map(|f| f.body),
            Some(Body::Published(_))
        ));
        tokio::task::spawn_blocking(move || assert!(b.stop().success()))
            .await
            .unwrap();
    }
    // Restart with a watermark above any disk's free space.
    let b = TestBroker::start_in(
        dir.path(),
        &[("JUNCTION_STORE_DISK_LOW_WATERMARK", "9223372036854775807")],
    );
    let mut c = RawClient::connect(b.native).await;
    assert!(matches!(
        c.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));
    match c.recv().await.map(|f| f.body) {
        Some(Body::Flow(f)) => assert!(f.blocked && f.reason.contains("disk"), "{f:?}"),
        other => panic!("expected Flow, got {other:?}"),
    }
    // Held, not refused: the answer comes once the alarm clears (here through the API).
    c.send(Frame::new(4, publish("kept", b"held"))).await;
    assert_eq!(b.queue_depth("kept").await, 1);
    b.disk_alarm_off().await;
    let mut got = Vec::new();
    while got.len() < 2 {
        got.push(c.recv().await.expect("open").body);
    }
    assert!(
        got.iter().any(|f| matches!(f, Body::Published(_))),
        "{got:?}"
    );
    assert!(
        got.iter().any(|f| matches!(f, Body::Flow(f) if !f.blocked)),
        "{got:?}"
    );
    // What was stored before is still there, and the held publish after it.
    c.send(Frame::new(
        5,
        wire::Pull {
            queue: "kept".into(),
            partition: 0,
            offset: 0,
            max: 10,
        },
    ))
    .await;
    match c.recv().await.map(|f| f.body) {
        Some(Body::Pulled(p)) => {
            let bodies: Vec<&[u8]> = p.messages.iter().map(|m| &m.body[..]).collect();
            assert_eq!(bodies, [&b"before"[..], b"held"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn publish(queue: &str, body: &'static [u8]) -> wire::Publish {
    wire::Publish {
        exchange: "".into(),
        routing_key: queue.into(),
        mandatory: false,
        confirm: true,
        properties: Default::default(),
        body: bytes::Bytes::from_static(body),
        producer: None,
    }
}

#[tokio::test]
async fn memory_alarm_holds_publishers_with_flow() {
    // A watermark no broker can stay under: the alarm is on within its first second.
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_in(
        dir.path(),
        &[("JUNCTION_LIMITS_MEMORY_HIGH_WATERMARK", "0.0000001")],
    );
    let mut c = RawClient::connect(b.native).await;
    assert!(matches!(
        c.hello("guest", "guest").await.body,
        Body::Welcome(_)
    ));
    match c.recv().await.map(|f| f.body) {
        Some(Body::Flow(f)) => assert!(f.blocked && f.reason.contains("memory"), "{f:?}"),
        other => panic!("expected Flow, got {other:?}"),
    }
    c.send(Frame::new(2, declare("q"))).await;
    assert!(
        matches!(c.recv().await.map(|f| f.body), Some(Body::QueueDeclared(_))),
        "declares still work"
    );
    c.send(Frame::new(3, publish("q", b"x"))).await;
    // Held until the watermark is raised: then stored and confirmed, never refused.
    b.memory_alarm_off().await;
    loop {
        match c.recv().await.map(|f| f.body) {
            Some(Body::Published(_)) => break,
            Some(Body::Flow(f)) => assert!(!f.blocked, "{f:?}"),
            other => panic!("expected the confirm, got {other:?}"),
        }
    }
    assert_eq!(b.queue_depth("q").await, 1);
}

/// A durable, one-partition queue declaration.
fn declare(name: &str) -> wire::DeclareQueue {
    wire::DeclareQueue {
        name: name.into(),
        partitions: 1,
        durable: true,
        exclusive: false,
        auto_delete: false,
        passive: false,
        args: vec![],
    }
}
