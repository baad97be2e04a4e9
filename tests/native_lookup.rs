//! Looking stored messages up by id, key and time, from the SDK and the HTTP API, with their
//! properties and every queue position.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::native::client;
use common::TestBroker;
use junction_sdk::{
    ConsumerOptions, Destination, ExchangeKind, ExchangeOptions, LookupBy, Message, QueueOptions,
};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Waits until the clock has moved past `t` (store times are in ms).
async fn after(t: i64) {
    while now_ms() <= t {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn lookup_by_id_key_and_time_with_properties_and_positions() {
    let b = TestBroker::start();
    let c = client(&b).await;
    let admin = c.admin();
    admin
        .declare_exchange("events", ExchangeKind::Fanout, ExchangeOptions::durable())
        .await
        .unwrap();
    admin.create_topic("orders", 3).await.unwrap();
    admin
        .declare_queue(QueueOptions::new("audit"))
        .await
        .unwrap();
    admin.bind("orders", "events", "").await.unwrap();
    admin.bind("audit", "events", "").await.unwrap();
    let p = c.producer();
    let dest = Destination::exchange("events", "order.created");
    let mut receipts = Vec::new();
    for i in 0..6 {
        let m = Message::new(format!("order {i}"))
            .message_id(format!("id-{i}"))
            .key(format!("customer-{}", i % 2))
            .tag("created")
            .header("region", "eu");
        receipts.push(p.send(&dest, m).await.unwrap());
    }
    // Consumed messages are still found.
    let mut cons = c.subscribe(ConsumerOptions::new("audit")).await.unwrap();
    for _ in 0..6 {
        cons.next().await.unwrap().unwrap().ack().await.unwrap();
    }

    // By id: the message with every position it has (fan-out to two queues).
    let found = c.lookup(LookupBy::Id("id-4".into()), 10).await.unwrap();
    assert_eq!(found.len(), 1);
    let m = &found[0];
    assert_eq!(&m.body[..], b"order 4");
    assert_eq!(
        (m.exchange.as_str(), m.routing_key.as_str()),
        ("events", "order.created")
    );
    assert_eq!(m.properties.tag.as_deref(), Some("created"));
    assert_eq!(
        m.properties.header("region").map(|v| &v[..]),
        Some(&b"eu"[..])
    );
    let mut positions = m.positions.clone();
    positions.sort_by(|a, b| a.queue.cmp(&b.queue));
    let mut want = receipts[4].routes.clone();
    want.sort_by(|a, b| a.queue.cmp(&b.queue));
    assert_eq!(positions, want, "the positions the publisher was told");
    assert_eq!(positions.len(), 2);

    // By key, newest first, within a time range.
    let found = c
        .lookup(
            LookupBy::Key {
                key: "customer-1".into(),
                begin_ms: 0,
                end_ms: i64::MAX,
            },
            10,
        )
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = found.iter().map(|m| &m.body[..]).collect();
    assert_eq!(bodies, [&b"order 5"[..], b"order 3", b"order 1"]);
    let none = c
        .lookup(
            LookupBy::Key {
                key: "customer-1".into(),
                begin_ms: 0,
                end_ms: 1,
            },
            10,
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    // By time: only what was stored in the range, oldest first.
    after(found[0].store_ts).await;
    let t1 = now_ms();
    for i in 6..9 {
        p.send(&dest, Message::new(format!("order {i}")))
            .await
            .unwrap();
    }
    let t2 = now_ms();
    after(t2).await;
    p.send(&dest, Message::new("later")).await.unwrap();
    let in_range = c
        .lookup(
            LookupBy::Time {
                queue: "audit".into(),
                begin_ms: t1,
                end_ms: t2,
            },
            100,
        )
        .await
        .unwrap();
    let bodies: Vec<&[u8]> = in_range.iter().map(|m| &m.body[..]).collect();
    assert_eq!(bodies, [&b"order 6"[..], b"order 7", b"order 8"]);
    assert!(in_range
        .iter()
        .all(|m| m.store_ts >= t1 && m.store_ts <= t2));
    // Every queue: each message once, with both positions.
    let everywhere = c
        .lookup(
            LookupBy::Time {
                queue: String::new(),
                begin_ms: t1,
                end_ms: t2,
            },
            100,
        )
        .await
        .unwrap();
    assert_eq!(everywhere.len(), 3);
    assert!(everywhere.iter().all(|m| m.positions.len() == 2));

    // The HTTP API answers the same, with positions.
    let url = format!(
        "http://{}/api/messages/%2F?queue=audit&begin={t1}&end={t2}",
        b.http
    );
    let body: serde_json::Value = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    })
    .await
    .unwrap();
    let list = body.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["payload"], "order 6");
    assert_eq!(list[0]["queues"].as_array().unwrap().len(), 2);
    assert!(list[0]["queues"][0]["offset"].is_u64());
    c.close().await.unwrap();
}
