//! Publishing against the fake server: confirms, the pipelining window, batches, returns, flow
//! control and frame size limits.

mod common;

use std::time::Duration;

use common::{within, Behavior, FakeServer};
use junction_native::{Body, ErrorCode, Flow};
use junction_sdk::{Client, Destination, Message, QueueOptions, SdkError};

#[tokio::test]
async fn send_waits_for_the_confirm() {
    let server = FakeServer::with(Behavior {
        confirm_delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options()).await.unwrap();
    let producer = client.producer();
    let orders = Destination::queue("orders");

    let r = producer
        .send(
            &orders,
            Message::new("a").sharding_key("c-1").header("h", "v"),
        )
        .await
        .unwrap();
    assert!(r.is_routed());
    assert_eq!(
        (r.first().unwrap().queue.as_str(), r.offset()),
        ("orders", Some(0))
    );
    let r = producer.send(&orders, Message::new("b")).await.unwrap();
    assert_eq!(r.offset(), Some(1));

    let p = server
        .expect("Publish", |_, f| match &f.body {
            Body::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (p.exchange.as_str(), p.routing_key.as_str()),
        ("", "orders")
    );
    assert!(p.confirm && !p.mandatory);
    assert_eq!(p.properties.sharding_key.as_deref(), Some("c-1"));
    assert_eq!(&p.body[..], b"a");

    // Publishing through an exchange.
    producer
        .send(
            &Destination::exchange("events", "orders"),
            Message::new("c"),
        )
        .await
        .unwrap();
    // A server error answers the publish.
    let err = producer
        .send(&Destination::exchange("forbidden", "x"), Message::new("d"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AccessRefused));
}

#[tokio::test]
async fn mandatory_unroutable_is_returned() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let err = client
        .producer()
        .mandatory(true)
        .send(&Destination::queue("nowhere"), Message::new("x"))
        .await
        .unwrap_err();
    match err {
        SdkError::Returned { code, text } => {
            assert_eq!(code, ErrorCode::NoRoute);
            assert_eq!(text, "NO_ROUTE");
        }
        other => panic!("expected Returned, got {other:?}"),
    }
    // Not mandatory: confirmed with no route.
    let r = client
        .producer()
        .send(&Destination::queue("nowhere"), Message::new("x"))
        .await
        .unwrap();
    assert!(!r.is_routed());
}

#[tokio::test]
async fn pipelined_sends_respect_the_window_and_keep_order() {
    let server = FakeServer::with(Behavior {
        confirm_delay: Duration::from_millis(20),
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options()).await.unwrap();
    let producer = client.producer().with_window(8);
    assert_eq!(producer.window(), 8);
    let dest = Destination::queue("w");
    let mut confirms = Vec::new();
    for i in 0..100 {
        let msg = Message::new(format!("m{i}"));
        confirms.push(
            within("a window slot", producer.send_pipelined(&dest, msg))
                .await
                .unwrap(),
        );
        assert!(producer.in_flight() <= 8);
    }
    let mut offsets = Vec::new();
    for c in confirms {
        offsets.push(within("a confirm", c).await.unwrap().offset().unwrap());
    }
    assert_eq!(offsets, (0..100).collect::<Vec<u64>>());
    let max = server.max_inflight();
    assert!(max <= 8, "{max} confirms outstanding with a window of 8");
    assert!(max >= 2, "sends were pipelined ({max} at most in flight)");
}

#[tokio::test]
async fn thousands_in_flight() {
    let server = FakeServer::with(Behavior {
        confirm_delay: Duration::from_millis(50),
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options()).await.unwrap();
    let producer = client.producer().with_window(5000);
    let dest = Destination::queue("many");
    let mut confirms = Vec::with_capacity(5000);
    for i in 0..5000u32 {
        let msg = Message::new(i.to_le_bytes().to_vec());
        confirms.push(producer.send_pipelined(&dest, msg).await.unwrap());
    }
    let mut last = None;
    for c in confirms {
        let offset = within("a confirm", c).await.unwrap().offset();
        assert!(offset > last, "confirms in order");
        last = offset;
    }
    assert!(
        server.max_inflight() > 1000,
        "max in flight {}",
        server.max_inflight()
    );
}

#[tokio::test]
async fn dropped_confirms_still_free_the_window() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let producer = client.producer().with_window(2);
    let dest = Destination::queue("d");
    for _ in 0..10 {
        // Each send waits for a slot freed by an earlier, ignored confirm.
        drop(
            within("a slot", producer.send_pipelined(&dest, "x".into()))
                .await
                .unwrap(),
        );
    }
    within("the last confirm", producer.send(&dest, "y".into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_way_and_batch() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let producer = client.producer();
    let dest = Destination::queue("b");

    producer
        .send_oneway(&dest, Message::new("fire"))
        .await
        .unwrap();
    let p = server
        .expect("one-way Publish", |_, f| match &f.body {
            Body::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await;
    assert!(!p.confirm);

    let receipts = producer
        .send_batch(
            &dest,
            vec![
                Message::new("1").sharding_key("k"),
                Message::new("2").sharding_key("k"),
                Message::new("3"),
            ],
        )
        .await
        .unwrap();
    let offsets: Vec<_> = receipts.iter().map(|r| r.offset().unwrap()).collect();
    assert_eq!(offsets, vec![1, 2, 3], "after the one-way message at 0");
    let b = server
        .expect("PublishBatch", |_, f| match &f.body {
            Body::PublishBatch(b) => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(b.routing_key, "b");
    assert_eq!(b.messages.len(), 3);
    assert_eq!(b.messages[0].properties.sharding_key.as_deref(), Some("k"));
    assert_eq!(&b.messages[2].body[..], b"3");

    let unroutable = producer
        .send_batch(&Destination::queue("nowhere"), vec![Message::new("x")])
        .await
        .unwrap();
    assert!(!unroutable[0].is_routed());
    assert!(producer
        .send_batch(&dest, Vec::new())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn flow_blocks_sends_until_resumed() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let admin = client.admin();
    server.push(
        1,
        Flow {
            blocked: true,
            reason: "memory alarm".into(),
        },
    );
    // Answers come after the push on the same connection: once this returns, the client has
    // seen the Flow frame.
    admin.declare_queue(QueueOptions::new("f")).await.unwrap();
    assert!(client.is_flow_blocked());

    let producer = client.producer();
    let mut send = tokio::spawn(async move {
        producer
            .send(&Destination::queue("f"), Message::new("held"))
            .await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut send)
            .await
            .is_err(),
        "a send went through while blocked"
    );
    // Other requests are not held.
    admin.purge_queue("f").await.unwrap();
    assert!(
        !server
            .drain()
            .await
            .iter()
            .any(|(_, f)| matches!(f.body, Body::Publish(_))),
        "nothing was published while blocked"
    );

    server.push(
        1,
        Flow {
            blocked: false,
            reason: String::new(),
        },
    );
    let receipt = within("the held send", send).await.unwrap().unwrap();
    assert_eq!(receipt.offset(), Some(0));
    assert!(!client.is_flow_blocked());
}

#[tokio::test]
async fn a_send_the_server_holds_during_an_alarm_does_not_time_out() {
    // The confirm comes well after the request timeout, as from a broker that held the
    // publish through a resource alarm.
    let server = FakeServer::with(Behavior {
        confirm_delay: Duration::from_secs(6),
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options().request_timeout(Duration::from_secs(2)))
        .await
        .unwrap();
    let producer = client.producer();
    let send = tokio::spawn(async move {
        producer
            .send(&Destination::queue("held"), Message::new("held"))
            .await
    });
    server
        .expect("Publish", |_, f| {
            matches!(f.body, Body::Publish(_)).then_some(())
        })
        .await;
    // The alarm went on just after the client sent it.
    server.push(
        1,
        Flow {
            blocked: true,
            reason: "memory alarm".into(),
        },
    );
    let receipt = within("the held send", send).await.unwrap().unwrap();
    assert_eq!(receipt.offset(), Some(0));
    assert!(client.is_flow_blocked());
}

#[tokio::test]
async fn frames_over_the_negotiated_size_fail_alone() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options().max_frame(4096))
        .await
        .unwrap();
    assert_eq!(client.server_info().unwrap().max_frame, 4096);
    let producer = client.producer();
    let err = producer
        .send(&Destination::queue("big"), Message::new(vec![0u8; 10_000]))
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Encode(_)), "{err:?}");
    // The connection is fine.
    let r = producer
        .send(&Destination::queue("big"), Message::new(vec![0u8; 100]))
        .await
        .unwrap();
    assert_eq!(r.offset(), Some(0));
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn requests_time_out() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options().request_timeout(Duration::from_millis(100)))
        .await
        .unwrap();
    // The fake server never answers a query for a negative time.
    let err = client.offset_for_time("q", 0, -1).await.unwrap_err();
    assert!(matches!(err, SdkError::Timeout), "{err:?}");
    assert_eq!(client.offset_for_time("q", 0, 1).await.unwrap(), 1001);
}
