//! Idempotent producers: a retried send is not stored twice and gets the original's position,
//! also after a broker restart and a crash; the consumer-side `Deduplicator`.

mod common;

use std::time::Duration;

use common::native::client;
use common::TestBroker;
use junction_sdk::{ConsumerOptions, Deduplicator, Destination, Message, StartPosition};

#[tokio::test]
async fn a_retried_send_is_deduplicated_across_a_restart_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start_in(tmp.path(), &[]);
    let c = client(&b).await;
    c.admin().create_topic("payments", 2).await.unwrap();
    let dest = Destination::queue("payments");
    let p = c.idempotent_producer("shop-1", 1);
    let mut receipts = Vec::new();
    for body in ["a", "b", "c"] {
        let r = p.send(&dest, Message::new(body)).await.unwrap();
        assert!(!r.duplicate && r.is_routed());
        receipts.push(r);
    }
    assert_eq!(p.next_sequence(), 4);
    // A retry of sequence 2 (its confirm was lost, say): not stored, the original's position.
    let again = p.send_sequence(&dest, Message::new("b"), 2).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.routes, receipts[1].routes);
    c.close().await.unwrap();

    // After a clean restart.
    assert!(b.stop().success());
    b = TestBroker::start_in(tmp.path(), &[]);
    let c = client(&b).await;
    let p = c.idempotent_producer("shop-1", 4);
    let again = p.send_sequence(&dest, Message::new("c"), 3).await.unwrap();
    assert!(again.duplicate, "remembered across a restart");
    assert_eq!(again.routes, receipts[2].routes);
    // Another producer's sequences are its own.
    let other = c.idempotent_producer("shop-2", 1);
    assert!(
        !other
            .send(&dest, Message::new("x"))
            .await
            .unwrap()
            .duplicate
    );
    c.close().await.unwrap();

    // After a crash.
    b.kill();
    b = TestBroker::start_in(tmp.path(), &[]);
    let c = client(&b).await;
    let p = c.idempotent_producer("shop-1", 4);
    let again = p.send_sequence(&dest, Message::new("a"), 1).await.unwrap();
    assert!(again.duplicate, "remembered across a crash");
    assert_eq!(again.routes, receipts[0].routes);
    let d = p.send(&dest, Message::new("d")).await.unwrap();
    assert!(!d.duplicate);

    // Each message is stored once.
    let mut cons = c
        .subscribe(ConsumerOptions::new("payments").start(StartPosition::Earliest))
        .await
        .unwrap();
    let mut seen = Deduplicator::new(100);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let m = tokio::time::timeout(Duration::from_secs(30), cons.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(seen.first_time(&m), "{:?} twice", m.body);
        bodies.push(String::from_utf8(m.body.to_vec()).unwrap());
        m.ack().await.unwrap();
    }
    bodies.sort();
    assert_eq!(bodies, ["a", "b", "c", "d", "x"]);
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), cons.next()).await {
        panic!("a sixth message: {:?}", m.map(|m| m.body));
    }
    c.close().await.unwrap();
}
