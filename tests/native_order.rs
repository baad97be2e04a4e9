//! Ordered consumption (one unacknowledged message per partition, across a member crash) and
//! broadcast consumption (every member gets every message, offsets per member), through the
//! SDK against the real broker.

mod common;

use std::time::Duration;

use common::native::{client_as, next, text_of};
use common::TestBroker;
use junction_sdk::{Client, Consumer, ConsumerOptions, Destination, Message};

/// Nothing is delivered within a short while (a bounded negative check).
async fn quiet(c: &mut Consumer) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(400), c.next()).await {
        panic!("unexpected delivery {:?}", d.map(|d| d.body));
    }
}

async fn publish(c: &Client, queue: &str, bodies: impl IntoIterator<Item = String>) {
    let batch: Vec<Message> = bodies.into_iter().map(Message::new).collect();
    c.producer()
        .send_batch(&Destination::queue(queue), batch)
        .await
        .unwrap();
}

#[tokio::test]
async fn ordered_consumption_holds_the_next_message_until_the_previous_is_acked_across_a_crash() {
    let b = TestBroker::start();
    let admin = client_as(&b, "admin").await;
    admin.admin().create_topic("ledger", 1).await.unwrap();
    publish(&admin, "ledger", (0..8).map(|i| format!("m{i}"))).await;

    let opts = ConsumerOptions::new("ledger")
        .group("posting")
        .ordered(true)
        .prefetch(50);
    let a = client_as(&b, "member-a").await;
    let mut ca = a.subscribe(opts.clone()).await.unwrap();
    let m0 = next(&mut ca).await;
    assert_eq!(text_of(&m0), "m0");
    quiet(&mut ca).await; // m1 waits for m0's ack, whatever the prefetch
    m0.ack().await.unwrap();
    let m1 = next(&mut ca).await;
    assert_eq!(text_of(&m1), "m1");
    m1.ack().await.unwrap();

    // A second member waits: the only partition is A's.
    let bc = client_as(&b, "member-b").await;
    let mut cb = bc.subscribe(opts).await.unwrap();
    let m2 = next(&mut ca).await;
    assert_eq!(text_of(&m2), "m2");
    quiet(&mut cb).await;

    // A dies holding m2: B takes over the partition and gets m2 again, then the rest in
    // order, one at a time.
    drop(ca);
    drop(a);
    let again = next(&mut cb).await;
    assert_eq!(text_of(&again), "m2");
    assert!(again.redelivered);
    let mut rest = vec![];
    let mut d = again;
    for _ in 3..8 {
        quiet_or_next_is_held(&mut cb).await;
        d.ack().await.unwrap();
        d = next(&mut cb).await;
        rest.push(text_of(&d));
    }
    d.ack().await.unwrap();
    assert_eq!(rest, ["m3", "m4", "m5", "m6", "m7"]);
    bc.close().await.unwrap();
}

/// The ordered consumer holds one message: the next is not delivered before the ack.
async fn quiet_or_next_is_held(c: &mut Consumer) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(150), c.next()).await {
        panic!("delivered before the previous ack: {:?}", d.map(|d| d.body));
    }
}

#[tokio::test]
async fn broadcast_gives_every_member_every_message_with_offsets_per_member() {
    let b = TestBroker::start();
    let admin = client_as(&b, "admin").await;
    admin.admin().create_topic("prices", 2).await.unwrap();
    let opts = ConsumerOptions::new("prices")
        .group("caches")
        .broadcast(true);
    let one = client_as(&b, "cache-1").await;
    let two = client_as(&b, "cache-2").await;
    let mut c1 = one.subscribe(opts.clone()).await.unwrap();
    let mut c2 = two.subscribe(opts.clone()).await.unwrap();
    publish(&admin, "prices", (0..10).map(|i| format!("p{i}"))).await;
    for c in [&mut c1, &mut c2] {
        let mut got = Vec::new();
        for _ in 0..10 {
            let d = next(c).await;
            got.push(text_of(&d));
            d.ack().await.unwrap();
        }
        got.sort();
        let mut want: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
        want.sort();
        assert_eq!(got, want, "every member gets every message");
    }
    // Member 1 goes away and comes back under the same client id: it resumes where it was,
    // and what it missed meanwhile is waiting for it.
    c1.close().await.unwrap();
    one.close().await.unwrap();
    publish(&admin, "prices", ["late".to_string()]).await;
    let d = next(&mut c2).await;
    assert_eq!(text_of(&d), "late");
    d.ack().await.unwrap();
    let one = client_as(&b, "cache-1").await;
    let mut c1 = one.subscribe(opts).await.unwrap();
    let d = next(&mut c1).await;
    assert_eq!(text_of(&d), "late", "only what it had not acknowledged");
    d.ack().await.unwrap();
    quiet(&mut c1).await;
}
