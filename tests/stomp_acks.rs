//! STOMP ack modes (auto, client, client-individual), NACK, prefetch and transactions, end to
//! end against the real broker.

mod common;

use std::time::Duration;

use common::stomp::{text, StompClient};
use common::TestBroker;
use junction_stomp::{Command, Frame};

async fn fill(c: &mut StompClient, dest: &str, n: usize) {
    for i in 0..n {
        c.publish(dest, format!("m{i}").as_bytes(), &[]).await;
    }
}

#[tokio::test]
async fn auto_ack_messages_are_gone_after_delivery() {
    let b = TestBroker::start();
    let mut p = StompClient::connect(b.stomp).await;
    fill(&mut p, "/queue/auto", 3).await;
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/auto", "auto", &[]).await;
    for i in 0..3 {
        let m = c.message().await;
        assert_eq!(text(&m), format!("m{i}"));
        assert_eq!(m.header("ack"), None);
    }
    c.disconnect().await;
    // Nothing comes back: they were acked on delivery.
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/auto", "auto", &[]).await;
    p.publish("/queue/auto", b"next", &[]).await;
    assert_eq!(text(&c.message().await), "next");
}

#[tokio::test]
async fn client_ack_is_cumulative() {
    let b = TestBroker::start();
    let mut p = StompClient::connect(b.stomp).await;
    fill(&mut p, "/queue/client", 4).await;
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/client", "client", &[]).await;
    let mut msgs = Vec::new();
    for _ in 0..4 {
        msgs.push(c.message().await);
    }
    // ACK of the third acks the first three; the fourth stays unacked.
    c.ack(Command::Ack, &msgs[2], &[]).await;
    c.disconnect().await;
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/client", "client", &[]).await;
    let m = c.message().await;
    assert_eq!(text(&m), "m3");
    assert_eq!(m.header("redelivered"), Some("true"));
    c.ack(Command::Ack, &m, &[]).await;
    // An ACK of a message already covered is an error.
    c.ack(Command::Ack, &msgs[0], &[]).await;
    let err = c.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some("unknown message"));
}

#[tokio::test]
async fn client_individual_acks_one_message_and_1_1_uses_message_id() {
    let b = TestBroker::start();
    let mut p = StompClient::connect(b.stomp).await;
    fill(&mut p, "/queue/indiv", 3).await;
    let (mut c, _) = StompClient::connect_with(b.stomp, Some("1.1"), &[]).await;
    c.subscribe("s", "/queue/indiv", "client-individual", &[])
        .await;
    let msgs = [c.message().await, c.message().await, c.message().await];
    // 1.1: no ack header; ACK names message-id.
    assert_eq!(msgs[0].header("ack"), None);
    c.ack(Command::Ack, &msgs[1], &[]).await;
    c.send_with_receipt(Frame::new(Command::Unsubscribe).with_header("id", "s"))
        .await;
    c.disconnect().await;
    // m0 and m2 come back, m1 does not.
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/indiv", "client-individual", &[])
        .await;
    let again = [c.message().await, c.message().await];
    let mut bodies: Vec<&str> = again.iter().map(text).collect();
    bodies.sort();
    assert_eq!(bodies, ["m0", "m2"]);
    for m in &again {
        assert!(m.header("ack").is_some());
        c.ack(Command::Ack, m, &[]).await;
    }
    c.disconnect().await;
}

#[tokio::test]
async fn nack_requeues_unless_told_not_to() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/nack", "client-individual", &[])
        .await;
    c.publish("/queue/nack", b"again", &[]).await;
    let m = c.message().await;
    assert_eq!(m.header("redelivered"), Some("false"));
    c.ack(Command::Nack, &m, &[]).await;
    let m = c.message().await;
    assert_eq!(text(&m), "again");
    assert_eq!(m.header("redelivered"), Some("true"));
    // requeue:false drops it (no dead-letter exchange).
    c.ack(Command::Nack, &m, &[("requeue", "false")]).await;
    c.publish("/queue/nack", b"after", &[]).await;
    assert_eq!(text(&c.message().await), "after");
}

#[tokio::test]
async fn prefetch_count_bounds_unacked_messages() {
    let b = TestBroker::start();
    let mut p = StompClient::connect(b.stomp).await;
    fill(&mut p, "/queue/prefetch", 5).await;
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe(
        "s",
        "/queue/prefetch",
        "client-individual",
        &[("prefetch-count", "2")],
    )
    .await;
    let m0 = c.message().await;
    let _m1 = c.message().await;
    // A third only after an ACK. A receipt proves the server had time to send more.
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "probe"))
        .await;
    c.assert_quiet(Duration::from_millis(300)).await;
    c.ack(Command::Ack, &m0, &[]).await;
    assert_eq!(text(&c.message().await), "m2");
}

#[tokio::test]
async fn unacked_messages_are_redelivered_when_the_connection_drops() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/drop", "client", &[]).await;
    c.publish("/queue/drop", b"keep me", &[]).await;
    let _ = c.message().await;
    drop(c); // no DISCONNECT, no ACK
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/drop", "client", &[]).await;
    let m = c.message().await;
    assert_eq!(text(&m), "keep me");
    assert_eq!(m.header("redelivered"), Some("true"));
}

#[tokio::test]
async fn transactions_commit_and_abort_sends() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/tx", "auto", &[]).await;
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "t1"))
        .await;
    for i in 0..3 {
        c.send(Frame::send("/queue/tx", format!("t1-{i}")).with_header("transaction", "t1"))
            .await;
    }
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "t2"))
        .await;
    c.send(Frame::send("/queue/tx", "t2").with_header("transaction", "t2"))
        .await;
    // Nothing is published before COMMIT.
    c.send_with_receipt(Frame::new(Command::Abort).with_header("transaction", "t2"))
        .await;
    c.assert_quiet(Duration::from_millis(300)).await;
    // The COMMIT's receipt means every held SEND is stored; they arrive in order.
    c.send_with_receipt(Frame::new(Command::Commit).with_header("transaction", "t1"))
        .await;
    for i in 0..3 {
        assert_eq!(text(&c.message().await), format!("t1-{i}"));
    }
    c.publish("/queue/tx", b"plain", &[]).await;
    assert_eq!(text(&c.message().await), "plain"); // t2 was never published
                                                   // A frame naming a transaction that is not open is an error.
    c.send(Frame::send("/queue/tx", "x").with_header("transaction", "t2"))
        .await;
    let err = c.expect_error_and_close().await;
    assert_eq!(err.header("message"), Some("transaction error"));
}

#[tokio::test]
async fn transactions_commit_and_abort_acks() {
    let b = TestBroker::start();
    let mut p = StompClient::connect(b.stomp).await;
    fill(&mut p, "/queue/txack", 2).await;
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/txack", "client-individual", &[])
        .await;
    let m0 = c.message().await;
    let m1 = c.message().await;
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "a"))
        .await;
    c.ack(Command::Ack, &m0, &[("transaction", "a")]).await;
    c.send_with_receipt(Frame::new(Command::Abort).with_header("transaction", "a"))
        .await;
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "b"))
        .await;
    c.ack(Command::Ack, &m1, &[("transaction", "b")]).await;
    c.send_with_receipt(Frame::new(Command::Commit).with_header("transaction", "b"))
        .await;
    c.disconnect().await;
    // The aborted ACK did not happen: m0 comes back; the committed one did: m1 does not.
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/txack", "client-individual", &[])
        .await;
    let m = c.message().await;
    assert_eq!(text(&m), "m0");
    c.ack(Command::Ack, &m, &[]).await;
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "probe"))
        .await;
    c.assert_quiet(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn receipts_of_transactional_frames_come_with_the_commit() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("s", "/queue/txr", "auto", &[]).await;
    c.send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "t"))
        .await;
    c.send(
        Frame::send("/queue/txr", "held")
            .with_header("transaction", "t")
            .with_header("receipt", "held-send"),
    )
    .await;
    // Nothing yet: not the message, not the SEND's receipt (this BEGIN's receipt comes first).
    let r = c
        .send_with_receipt(Frame::new(Command::Begin).with_header("transaction", "other"))
        .await;
    assert_ne!(r.header("receipt-id"), Some("held-send"));
    c.send(
        Frame::new(Command::Commit)
            .with_header("transaction", "t")
            .with_header("receipt", "commit"),
    )
    .await;
    let mut got = Vec::new();
    while got.len() < 3 {
        let f = c.recv().await.expect("open");
        got.push(match f.command {
            Command::Receipt => f.header("receipt-id").unwrap().to_string(),
            _ => text(&f).to_string(),
        });
    }
    // The SEND's receipt, then the COMMIT's (the message may come at any point).
    got.retain(|g| g != "held");
    assert_eq!(got, ["held-send", "commit"]);
}
