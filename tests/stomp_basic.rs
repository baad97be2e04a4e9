//! STOMP end to end: versions, login, CONNECTED, SEND/MESSAGE, receipts, escaping, binary
//! bodies, repeated headers and header mapping, against the real broker.

mod common;

use common::stomp::{text, StompClient};
use common::TestBroker;
use junction_stomp::{Command, Frame};

#[tokio::test]
async fn version_negotiation_and_connected_headers() {
    let b = TestBroker::start();
    for (accept, want) in [
        (Some("1.0,1.1,1.2"), "1.2"),
        (Some("1.1"), "1.1"),
        (Some("1.0,1.1,2.0"), "1.1"),
        (None, "1.0"),
    ] {
        let (c, connected) = StompClient::connect_with(b.stomp, accept, &[]).await;
        assert_eq!(connected.header("version"), Some(want), "{accept:?}");
        assert!(connected.header("session").is_some());
        assert!(connected.header("server").unwrap().starts_with("junction/"));
        let hb = if want == "1.0" { "0,0" } else { "1000,1000" };
        assert_eq!(connected.header("heart-beat"), Some(hb));
        c.disconnect().await;
    }

    // The STOMP command is CONNECT's 1.1+ alias.
    let mut c = StompClient::raw(b.stomp).await;
    c.send(
        Frame::new(Command::Stomp)
            .with_header("accept-version", "1.2")
            .with_header("host", "/")
            .with_header("login", "guest")
            .with_header("passcode", "guest"),
    )
    .await;
    c.expect(Command::Connected).await;

    // No common version: ERROR with the supported versions, then close.
    let mut c = StompClient::raw(b.stomp).await;
    c.send(Frame::new(Command::Connect).with_header("accept-version", "2.0"))
        .await;
    let err = c.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some("Version mismatch"));
    assert_eq!(err.header("version"), Some("1.0,1.1,1.2"));
    assert_eq!(text(&err), "Supported versions are 1.0,1.1,1.2\n");
}

#[tokio::test]
async fn login_failures_get_an_error_and_the_broker_keeps_serving() {
    let b = TestBroker::start();
    for (login, pass) in [("guest", "wrong"), ("nobody", "guest")] {
        let mut c = StompClient::raw(b.stomp).await;
        c.send(
            Frame::new(Command::Connect)
                .with_header("accept-version", "1.2")
                .with_header("login", login)
                .with_header("passcode", pass)
                .with_header("receipt", "login-1"),
        )
        .await;
        let err = c.expect_error_and_close().await;
        assert_eq!(err.header("message"), Some("Bad CONNECT"));
        assert_eq!(err.header("receipt-id"), Some("login-1"));
        assert_eq!(text(&err), format!("Access refused for user '{login}'"));
    }
    // Without a login header the default user (guest) is used, as in RabbitMQ; a host header
    // that names no vhost (a host name, as stomp.py 1.2 sends) means the default vhost.
    let mut c = StompClient::raw(b.stomp).await;
    c.send(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "127.0.0.1"),
    )
    .await;
    c.expect(Command::Connected).await;
    let mut ok = StompClient::connect(b.stomp).await;
    ok.publish("/queue/after-failures", b"x", &[]).await;
}

#[tokio::test]
async fn send_and_receive_with_receipts_and_mapped_headers() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s1", "/queue/basic", "auto", &[]).await;
    c.publish(
        "/queue/basic",
        b"hello",
        &[
            ("content-type", "text/plain"),
            ("correlation-id", "c-1"),
            ("reply-to", "/queue/replies"),
            ("message-id", "m-1"),
            ("priority", "5"),
            ("persistent", "true"),
            ("expiration", "60000"),
            ("x-custom", "v1"),
            ("x-custom", "v2"),
        ],
    )
    .await;
    let m = c.message().await;
    assert_eq!(text(&m), "hello");
    assert_eq!(m.header("subscription"), Some("s1"));
    assert_eq!(m.header("destination"), Some("/queue/basic"));
    assert!(m.header("message-id").is_some());
    assert_eq!(m.header("content-type"), Some("text/plain"));
    assert_eq!(m.header("correlation-id"), Some("c-1"));
    assert_eq!(m.header("reply-to"), Some("/queue/replies"));
    assert_eq!(m.header("amqp-message-id"), Some("m-1"));
    assert_eq!(m.header("priority"), Some("5"));
    assert_eq!(m.header("persistent"), Some("true"));
    assert_eq!(m.header("expiration"), Some("60000"));
    assert_eq!(m.header("redelivered"), Some("false"));
    // Repeated headers: the first one wins and only it is carried.
    assert_eq!(m.header_values("x-custom").collect::<Vec<_>>(), ["v1"]);
    // Receipts for non-SEND frames too, then DISCONNECT with a receipt.
    c.send_with_receipt(Frame::new(Command::Unsubscribe).with_header("id", "s1"))
        .await;
    c.disconnect().await;
}

#[tokio::test]
async fn header_escaping_per_version() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/esc", "auto", &[]).await;
    // 1.2 escapes: a value with a colon, a line feed, a backslash and a CR; a name with a colon.
    let tricky = "a:b\nc\\d\re";
    c.publish("/queue/esc", b"1", &[("x-tricky", tricky), ("x:name", "v")])
        .await;
    let m = c.message().await;
    assert_eq!(m.header("x-tricky"), Some(tricky));
    assert_eq!(m.header("x:name"), Some("v"));
    // On the wire they were escaped (checked with raw bytes).
    c.send_raw(b"SEND\ndestination:/queue/esc\nx-raw:one\\ctwo\\nthree\\\\\n\nraw\0")
        .await;
    let m = c.message().await;
    assert_eq!(m.header("x-raw"), Some("one:two\nthree\\"));

    // 1.0 has no escaping: a backslash is just a backslash, colons in values are kept.
    let (mut old, _) = StompClient::connect_with(b.stomp, None, &[]).await;
    old.send_raw(b"SUBSCRIBE\ndestination:/queue/esc10\nreceipt:r\n\n\0")
        .await;
    old.expect(Command::Receipt).await;
    old.send_raw(b"SEND\ndestination:/queue/esc10\nx-path:c:\\dir\\n\n\nold\0")
        .await;
    let m = old.message().await;
    assert_eq!(m.header("x-path"), Some("c:\\dir\\n"));
    assert_eq!(m.header("subscription"), Some("/queue/esc10"));
    // A value that 1.0 cannot carry (a line feed) is left out, the message still arrives.
    let mut c2 = StompClient::connect(b.stomp).await;
    c2.publish("/queue/esc10", b"nl", &[("x-nl", "a\nb"), ("x-ok", "fine")])
        .await;
    let m = old.message().await;
    assert_eq!(text(&m), "nl");
    assert_eq!(m.header("x-nl"), None);
    assert_eq!(m.header("x-ok"), Some("fine"));
}

#[tokio::test]
async fn binary_bodies_with_nul_and_content_length() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/bin", "auto", &[]).await;
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    c.publish(
        "/queue/bin",
        &body,
        &[("content-type", "application/octet-stream")],
    )
    .await;
    let m = c.message().await;
    assert_eq!(&m.body[..], &body[..]);
    assert_eq!(m.header("content-length"), Some("70000"));
    assert_eq!(m.header("content-type"), Some("application/octet-stream"));
    // Hand-written: content-length frames a body holding NULs; without it the first NUL ends it.
    c.send_raw(b"SEND\ndestination:/queue/bin\ncontent-length:5\n\na\0b\0c\0SEND\ndestination:/queue/bin\n\nplain\0")
        .await;
    assert_eq!(&c.message().await.body[..], b"a\0b\0c");
    assert_eq!(&c.message().await.body[..], b"plain");
    // An empty body.
    c.publish("/queue/bin", b"", &[]).await;
    assert!(c.message().await.body.is_empty());
}

#[tokio::test]
async fn receipts_follow_the_order_of_frames() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    for i in 0..50 {
        c.send(Frame::send("/queue/order", format!("{i}")).with_header("receipt", format!("s{i}")))
            .await;
        if i % 10 == 0 {
            c.send(
                Frame::new(Command::Begin)
                    .with_header("transaction", format!("t{i}"))
                    .with_header("receipt", format!("b{i}")),
            )
            .await;
        }
    }
    let mut want = Vec::new();
    for i in 0..50 {
        want.push(format!("s{i}"));
        if i % 10 == 0 {
            want.push(format!("b{i}"));
        }
    }
    for w in want {
        let r = c.expect(Command::Receipt).await;
        assert_eq!(r.header("receipt-id"), Some(w.as_str()));
    }
}

#[tokio::test]
async fn frames_pipelined_behind_connect_are_served() {
    // CONNECT, SUBSCRIBE and a SEND asking for a receipt in one write, before CONNECTED: the
    // frames behind CONNECT must not wait for more input (found by tests/crash_protocols.rs).
    let b = TestBroker::start();
    let mut c = StompClient::raw(b.stomp).await;
    c.send_raw(
        b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0\
          SUBSCRIBE\nid:1\ndestination:/queue/pipelined\nack:auto\n\n\0\
          SEND\ndestination:/queue/pipelined\nreceipt:r1\n\nearly\0",
    )
    .await;
    assert_eq!(c.recv().await.unwrap().command, Command::Connected);
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(c.recv().await.expect("RECEIPT and MESSAGE"));
    }
    assert!(
        got.iter()
            .any(|f| f.command == Command::Receipt && f.header("receipt-id") == Some("r1")),
        "{got:?}"
    );
    let m = got
        .iter()
        .find(|f| f.command == Command::Message)
        .expect("the MESSAGE");
    assert_eq!(&m.body[..], b"early");
}
