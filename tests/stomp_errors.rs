//! STOMP errors and limits: every bad input gets an ERROR frame (message header + body) and the
//! connection is closed, while the broker goes on serving others. Heart-beats are enforced both
//! ways.

mod common;

use std::time::{Duration, Instant};

use common::stomp::{text, StompClient};
use common::TestBroker;
use junction_stomp::{Frame, Item};

/// Sends `bytes` on a fresh connection and expects ERROR with `message`, then a close.
async fn refused(b: &TestBroker, bytes: &[u8], message: &str) -> Frame {
    let mut c = StompClient::connect(b.stomp).await;
    c.send_raw(bytes).await;
    let err = c.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some(message), "{}", text(&err));
    assert_eq!(err.header("content-type"), Some("text/plain"));
    assert!(!err.body.is_empty());
    err
}

#[tokio::test]
async fn malformed_frames_get_an_error_then_close_and_the_broker_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let b = TestBroker::start_in(
        tmp.path(),
        &[
            ("JUNCTION_STOMP_MAX_HEADERS", "10"),
            ("JUNCTION_STOMP_MAX_HEADER_LENGTH", "256"),
            ("JUNCTION_STOMP_MAX_FRAME", "65536"),
        ],
    );
    let err = refused(&b, b"NOPE\n\n\0", "Bad command").await;
    assert_eq!(text(&err), "Could not interpret command \"NOPE\"\n");
    assert_eq!(err.header("version"), Some("1.0,1.1,1.2"));
    refused(&b, b"send\ndestination:/queue/a\n\n\0", "Bad command").await;
    refused(&b, b"SEND\nno-colon-here\n\n\0", "malformed header line").await;
    refused(
        &b,
        b"SEND\ndestination:/queue/a\nx:\\t\n\n\0",
        "undefined escape sequence in header",
    )
    .await;
    refused(
        &b,
        b"SEND\ndestination:/queue/a\ncontent-length:abc\n\n\0",
        "invalid content-length",
    )
    .await;
    refused(
        &b,
        b"SEND\ndestination:/queue/a\ncontent-length:2\n\nabc\0",
        "frame not terminated by NUL",
    )
    .await;
    // Limits.
    let mut many = b"SEND\ndestination:/queue/a\n".to_vec();
    for i in 0..11 {
        many.extend_from_slice(format!("h{i}:v\n").as_bytes());
    }
    many.extend_from_slice(b"\n\0");
    refused(&b, &many, "too many headers").await;
    let long = format!("SEND\ndestination:/queue/a\nh:{}\n\n\0", "x".repeat(300));
    refused(&b, long.as_bytes(), "header line too long").await;
    let big = b"SEND\ndestination:/queue/a\ncontent-length:100000\n\n";
    refused(&b, big, "body too large").await;
    // Frame-level errors.
    refused(&b, b"SEND\n\nno destination\0", "Missing destination").await;
    refused(&b, b"SUBSCRIBE\ndestination:/queue/a\n\n\0", "Missing id").await;
    refused(
        &b,
        b"SUBSCRIBE\nid:1\ndestination:/queue/a\nack:sometimes\n\n\0",
        "invalid ack mode",
    )
    .await;
    refused(&b, b"ACK\nid:999\n\n\0", "unknown message").await;
    refused(&b, b"ACK\nmessage-id:1\n\n\0", "Missing header").await; // 1.2 names `id`
    refused(&b, b"NACK\nid:x\n\n\0", "Invalid header").await;
    refused(
        &b,
        b"SUBSCRIBE\ndestination:/topic/t\ndurable:true\n\n\0",
        "Missing Header",
    )
    .await;
    refused(
        &b,
        b"MESSAGE\ndestination:/queue/a\n\n\0",
        "invalid command",
    )
    .await;
    refused(
        &b,
        b"CONNECT\naccept-version:1.2\n\n\0",
        "already connected",
    )
    .await;
    refused(
        &b,
        b"SEND\ndestination:/queue/a\npriority:high\n\n\0",
        "invalid 'priority' header",
    )
    .await;
    refused(&b, b"COMMIT\ntransaction:none\n\n\0", "transaction error").await;

    // Before CONNECT: a frame other than CONNECT, and garbage.
    for bytes in [
        &b"SEND\ndestination:/queue/a\n\n\0"[..],
        b"\x16\x03\x01 not stomp\n\n\0",
    ] {
        let mut c = StompClient::raw(b.stomp).await;
        c.send_raw(bytes).await;
        c.expect_error_and_close().await;
    }

    // Still serving.
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/ok", "auto", &[]).await;
    c.publish("/queue/ok", b"fine", &[]).await;
    assert_eq!(text(&c.message().await), "fine");
}

#[tokio::test]
async fn a_silent_client_is_closed_after_missing_heart_beats() {
    let b = TestBroker::start();
    // The client promises a heart-beat every 100 ms (the server's floor is 1000 ms) and then
    // sends nothing.
    let (mut c, connected) =
        StompClient::connect_with(b.stomp, Some("1.2"), &[("heart-beat", "100,0")]).await;
    assert_eq!(connected.header("heart-beat"), Some("1000,1000"));
    let started = Instant::now();
    let err = c.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some("heart-beat timeout"));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // A client that keeps sending heart-beats stays connected well past that window.
    let (mut c, _) =
        StompClient::connect_with(b.stomp, Some("1.2"), &[("heart-beat", "100,0")]).await;
    let until = Instant::now() + Duration::from_millis(3500);
    while Instant::now() < until {
        c.send_raw(b"\n").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.publish("/queue/alive", b"still here", &[]).await;
}

#[tokio::test]
async fn the_server_sends_heart_beats_when_asked() {
    let b = TestBroker::start();
    let (mut c, _) =
        StompClient::connect_with(b.stomp, Some("1.2"), &[("heart-beat", "0,1000")]).await;
    // Nothing else is happening: what arrives is heart-beats, one every 0.8-1 s (not a stream).
    let started = Instant::now();
    for _ in 0..2 {
        assert_eq!(c.recv_item().await, Some(Item::Heartbeat));
    }
    assert!(started.elapsed() >= Duration::from_millis(1000));
    // 1.0 has no heart-beats: the header is ignored.
    let (mut old, connected) =
        StompClient::connect_with(b.stomp, None, &[("heart-beat", "0,1000")]).await;
    assert_eq!(connected.header("heart-beat"), Some("0,0"));
    old.publish("/queue/hb10", b"x", &[]).await;
}
