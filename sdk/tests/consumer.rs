//! Consuming against the fake server: the delivery stream, acks, prefetch, assignments,
//! cancellation and closing.

mod common;

use common::{within, Behavior, FakeServer};
use futures_util::StreamExt;
use junction_native::{Assignment, Body, Cancelled, StartPosition};
use junction_sdk::{Client, ConsumerOptions, QueueOptions, SdkError};

fn server_with_deliveries(n: u32) -> Behavior {
    Behavior {
        deliveries_on_subscribe: n,
        ..Default::default()
    }
}

#[tokio::test]
async fn stream_of_deliveries_and_acks() {
    let server = FakeServer::with(server_with_deliveries(5)).await;
    let client = Client::connect(server.options()).await.unwrap();
    let mut consumer = client
        .subscribe(
            ConsumerOptions::new("q")
                .group("g")
                .prefetch(10)
                .start(StartPosition::Offset(0))
                .exclusive_partitions(true),
        )
        .await
        .unwrap();
    let sub = server
        .expect("Subscribe", |_, f| match &f.body {
            Body::Subscribe(s) => Some(s.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (sub.queue.as_str(), sub.group.as_str(), sub.prefetch),
        ("q", "g", 10)
    );
    assert_eq!(sub.start, StartPosition::Offset(0));
    assert!(sub.exclusive_partitions && !sub.no_ack);
    assert_eq!(consumer.partitions(), vec![0, 1]);
    assert_eq!(consumer.queue(), "q");

    // Through the `Stream` impl.
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(
            within("a delivery", StreamExt::next(&mut consumer))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.offset, i as u64);
        assert_eq!(&d.body[..], format!("q-{i}").as_bytes());
        assert_eq!(
            (d.queue.as_str(), d.routing_key.as_str(), d.store_ts),
            ("q", "q", 42)
        );
        assert_eq!(d.properties.sharding_key.as_deref(), Some("k"));
        assert_eq!(d.properties.header("h").map(|v| &v[..]), Some(&b"v"[..]));
        assert_eq!(d.delivery_id(), i as u64 + 1);
    }

    consumer.ack_all(&got[0..2]).await.unwrap();
    got[2].ack().await.unwrap();
    got[3].ack().await.unwrap();
    got[4].nack(true).await.unwrap();

    let mut acked = Vec::new();
    while acked.len() < 4 {
        let ids = server
            .expect("Ack", |_, f| match &f.body {
                Body::Ack(a) => {
                    assert_eq!(a.consumer_id, 1);
                    Some(a.delivery_ids.clone())
                }
                _ => None,
            })
            .await;
        acked.extend(ids);
    }
    assert_eq!(acked, vec![1, 2, 3, 4]);
    let nack = server
        .expect("Nack", |_, f| match &f.body {
            Body::Nack(n) => Some(n.clone()),
            _ => None,
        })
        .await;
    assert_eq!((nack.delivery_ids, nack.requeue), (vec![5], true));
}

#[tokio::test]
async fn no_ack_consumers_send_no_acks() {
    let server = FakeServer::with(server_with_deliveries(1)).await;
    let client = Client::connect(server.options()).await.unwrap();
    let mut consumer = client
        .subscribe(ConsumerOptions::new("q").no_ack(true))
        .await
        .unwrap();
    let d = within("a delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();
    d.ack().await.unwrap();
    d.nack(false).await.unwrap();
    // A round trip after the (no-op) acks: had they been sent, they would have arrived first.
    client.admin().purge_queue("q").await.unwrap();
    let frames = server.drain().await;
    assert!(frames
        .iter()
        .all(|(_, f)| !matches!(f.body, Body::Ack(_) | Body::Nack(_))));
    assert!(frames
        .iter()
        .any(|(_, f)| matches!(&f.body, Body::Subscribe(s) if s.no_ack)));
}

#[tokio::test]
async fn prefetch_assignment_and_close() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let consumer = client
        .subscribe(ConsumerOptions::new("topic").exclusive_partitions(true))
        .await
        .unwrap();

    consumer.set_prefetch(42).await.unwrap();
    let sp = server
        .expect("SetPrefetch", |_, f| match &f.body {
            Body::SetPrefetch(s) => Some(s.clone()),
            _ => None,
        })
        .await;
    assert_eq!((sp.consumer_id, sp.prefetch), (1, 42));

    server.push(
        1,
        Assignment {
            consumer_id: 1,
            partitions: vec![3, 5],
        },
    );
    // The answer comes after the push on the same connection.
    client
        .admin()
        .declare_queue(QueueOptions::new("x"))
        .await
        .unwrap();
    assert_eq!(consumer.partitions(), vec![3, 5]);

    within("close", consumer.close()).await.unwrap();
    let un = server
        .expect("Unsubscribe", |_, f| match &f.body {
            Body::Unsubscribe(u) => Some(u.consumer_id),
            _ => None,
        })
        .await;
    assert_eq!(un, 1);
}

#[tokio::test]
async fn dropping_a_consumer_unsubscribes() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let consumer = client.subscribe(ConsumerOptions::new("q")).await.unwrap();
    drop(consumer);
    let un = server
        .expect("Unsubscribe", |_, f| match &f.body {
            Body::Unsubscribe(u) => Some(u.consumer_id),
            _ => None,
        })
        .await;
    assert_eq!(un, 1);
}

#[tokio::test]
async fn cancelled_ends_the_stream() {
    let server = FakeServer::with(server_with_deliveries(1)).await;
    let client = Client::connect(server.options()).await.unwrap();
    let mut consumer = client.subscribe(ConsumerOptions::new("q")).await.unwrap();
    within("a delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();
    server.push(
        1,
        Cancelled {
            consumer_id: 1,
            reason: "queue deleted".into(),
        },
    );
    match within("the cancellation", consumer.next()).await {
        Some(Err(SdkError::Cancelled { reason })) => assert_eq!(reason, "queue deleted"),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(within("the end", consumer.next()).await.is_none());
    // The client itself is fine.
    client.admin().purge_queue("q").await.unwrap();
}

#[tokio::test]
async fn two_consumers_get_their_own_deliveries() {
    let server = FakeServer::with(server_with_deliveries(2)).await;
    let client = Client::connect(server.options()).await.unwrap();
    let mut a = client.subscribe(ConsumerOptions::new("a")).await.unwrap();
    let mut b = client.subscribe(ConsumerOptions::new("b")).await.unwrap();
    for _ in 0..2 {
        let d = within("a's delivery", a.next()).await.unwrap().unwrap();
        assert_eq!(d.queue, "a");
        let d = within("b's delivery", b.next()).await.unwrap().unwrap();
        assert_eq!(d.queue, "b");
    }
}
