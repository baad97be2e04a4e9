//! Flow control during a resource alarm, per protocol, with real clients: the alarm is raised
//! and cleared through the HTTP API (`/api/limits/memory-watermark`, `disk-free-limit`). A
//! publish made during the alarm is held, not refused: no confirm / PUBACK / RECEIPT / ack
//! while the alarm is on, the connection stays open, and once the alarm clears the publish
//! completes and its message is delivered exactly once. A consumer on another connection keeps
//! receiving and acknowledging meanwhile.
//!
//! "Held" is shown without timing: the broker logs (at debug) that it held the publish, so it
//! has read it; the publish's queue is still empty when the API answers a later request; and
//! the publisher has had no answer by the time a consumer on another connection has received
//! and acknowledged messages.

mod common;

use std::time::Duration;

use common::amqp::{channel, connect, consumer, declare, next};
use common::mqtt::{v4_options, V4};
use common::stomp::StompClient;
use common::TestBroker;
use futures_lite::StreamExt;
use junction_native as wire;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};
use junction_stomp::{Command, Frame};
use lapin::options::{BasicAckOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;

/// Generous deadline for anything the broker should do.
const WAIT: Duration = Duration::from_secs(60);

/// The gateways say at debug level when they hold a publish.
fn broker() -> TestBroker {
    TestBroker::start_with(&[("RUST_LOG", "info,junction::gateway=debug")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_blocks_a_publishing_connection_and_confirms_once_the_memory_alarm_clears() {
    let b = broker();
    // A backlog stored before the alarm, for a consumer on another connection.
    let consuming = connect(&b).await;
    let cch = channel(&consuming).await;
    declare(&cch, "backlog").await;
    declare(&cch, "held").await;
    cch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    for i in 0..3 {
        cch.basic_publish(
            "".into(),
            "backlog".into(),
            BasicPublishOptions::default(),
            format!("backlog-{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }

    let publishing = connect(&b).await;
    let pch = channel(&publishing).await;
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut events = publishing.events_listener();
    b.memory_alarm_on().await;
    let confirm = pch
        .basic_publish(
            "".into(),
            "held".into(),
            BasicPublishOptions::default(),
            b"held-1",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let confirm = tokio::spawn(confirm);

    // The broker read the publish, held it, and blocked the connection: connection.blocked.
    let reason = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(lapin::Event::ConnectionBlocked(r)) => return r,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("connection.blocked in time");
    assert!(reason.contains("memory"), "{reason}");
    b.logged("publishing connection blocked by a resource alarm")
        .await;

    // The consuming connection is not blocked: it receives and acks the backlog.
    let mut backlog = consumer(&cch, "backlog", false).await;
    for i in 0..3 {
        let d = next(&mut backlog).await;
        assert_eq!(d.data, format!("backlog-{i}").into_bytes());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    b.until_depth("backlog", 0).await;
    assert_eq!(b.queue_depth("held").await, 0, "stored during the alarm");
    assert!(!consuming.status().blocked());
    assert!(!confirm.is_finished(), "confirmed during the alarm");
    assert!(publishing.status().connected() && publishing.status().blocked());

    b.memory_alarm_off().await;
    let c = tokio::time::timeout(WAIT, confirm)
        .await
        .expect("confirmed after the alarm")
        .unwrap()
        .unwrap();
    assert!(c.is_ack(), "{c:?}");
    // Unblocked: the connection publishes again.
    pch.basic_publish(
        "".into(),
        "held".into(),
        BasicPublishOptions::default(),
        b"after",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    assert!(!publishing.status().blocked());
    // Exactly once: the held message, then the one published after it, nothing between.
    let mut held = consumer(&cch, "held", false).await;
    for body in [&b"held-1"[..], b"after"] {
        let d = next(&mut held).await;
        assert_eq!(d.data, body);
        assert!(!d.redelivered);
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    b.until_depth("held", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_stops_reading_a_publisher_and_acknowledges_once_the_disk_alarm_clears() {
    let b = broker();
    // A persistent session with a backlog stored before the alarm.
    let mut opts = v4_options(b.mqtt, "flow-sub");
    opts.set_clean_session(false);
    let mut sub = V4::with(opts.clone()).await;
    sub.subscribe("flow/#", rumqttc::QoS::AtLeastOnce).await;
    sub.disconnect().await;
    let mut publisher = V4::connect(b.mqtt, "flow-pub").await;
    for i in 0..3 {
        publisher
            .client
            .publish(
                "flow/backlog",
                rumqttc::QoS::AtLeastOnce,
                false,
                format!("backlog-{i}"),
            )
            .await
            .unwrap();
        publisher
            .until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }

    b.disk_alarm_on().await;
    publisher
        .client
        .publish("flow/held", rumqttc::QoS::AtLeastOnce, false, "held-1")
        .await
        .unwrap();
    b.logged("mqtt: PUBLISH held by a resource alarm").await;

    // The subscriber comes back during the alarm and gets its backlog (and acks it).
    let mut sub = V4::with(opts).await;
    for i in 0..3 {
        let p = sub.publish().await;
        assert_eq!(p.topic, "flow/backlog");
        assert_eq!(p.payload, format!("backlog-{i}").into_bytes());
    }
    b.until_depth("mqtt-session-flow-sub", 0).await;
    // Nothing came back to the publisher, and its connection is open.
    let got = publisher.received_now();
    assert!(got.is_empty(), "answered during the alarm: {got:?}");

    b.disk_alarm_off().await;
    publisher
        .until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    publisher
        .client
        .publish("flow/after", rumqttc::QoS::AtLeastOnce, false, "after")
        .await
        .unwrap();
    // Exactly once: the held message, then the one published after it.
    for (topic, body) in [("flow/held", "held-1"), ("flow/after", "after")] {
        let p = sub.publish().await;
        assert_eq!((p.topic.as_str(), &p.payload[..]), (topic, body.as_bytes()));
        assert!(!p.dup);
    }
    publisher.disconnect().await;
    sub.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_holds_a_send_and_sends_its_receipt_once_the_memory_alarm_clears() {
    let b = broker();
    let mut consuming = StompClient::connect(b.stomp).await;
    for i in 0..3 {
        consuming
            .publish("/queue/backlog", format!("backlog-{i}").as_bytes(), &[])
            .await;
    }
    let mut publisher = StompClient::connect(b.stomp).await;
    publisher.publish("/queue/held", b"first", &[]).await;

    b.memory_alarm_on().await;
    publisher
        .send(Frame::send("/queue/held", b"held-1".to_vec()).with_header("receipt", "held-receipt"))
        .await;
    b.logged("SEND held by a resource alarm").await;
    // The publisher's next frame, read in the background.
    let answer = tokio::spawn(async move {
        let f = publisher.recv().await;
        (f, publisher)
    });

    // Another connection subscribes, receives and acks the backlog during the alarm.
    consuming
        .subscribe("1", "/queue/backlog", "client-individual", &[])
        .await;
    for i in 0..3 {
        let m = consuming.message().await;
        assert_eq!(m.body, format!("backlog-{i}").into_bytes());
        consuming.ack(Command::Ack, &m, &[]).await;
    }
    consuming
        .send_with_receipt(Frame::new(Command::Unsubscribe).with_header("id", "1"))
        .await;
    b.until_depth("backlog", 0).await;
    assert_eq!(
        b.queue_depth("held").await,
        1,
        "only the SEND before the alarm"
    );
    assert!(!answer.is_finished(), "answered during the alarm");

    b.memory_alarm_off().await;
    let (f, mut publisher) = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
    let f = f.expect("the connection stayed open");
    assert_eq!(f.command, Command::Receipt, "{f:?}");
    assert_eq!(f.header("receipt-id"), Some("held-receipt"));
    publisher.publish("/queue/held", b"after", &[]).await;
    // Exactly once, in order.
    consuming
        .subscribe("2", "/queue/held", "client-individual", &[])
        .await;
    for body in [&b"first"[..], b"held-1", b"after"] {
        let m = consuming.message().await;
        assert_eq!(m.body, body);
        consuming.ack(Command::Ack, &m, &[]).await;
    }
    publisher.disconnect().await;
    consuming.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sdk_sends_wait_for_the_disk_alarm_and_complete_after() {
    let b = broker();
    let client = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    let admin = client.admin();
    admin.create_topic("backlog", 1).await.unwrap();
    admin.create_topic("held", 1).await.unwrap();
    let producer = client.producer();
    for i in 0..3 {
        producer
            .send(
                &Destination::queue("backlog"),
                Message::new(format!("backlog-{i}")),
            )
            .await
            .unwrap();
    }
    let publishing = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();

    b.disk_alarm_on().await;
    // The broker tells every connection: Flow { blocked }.
    tokio::time::timeout(WAIT, async {
        while !publishing.is_flow_blocked() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a Flow push in time");
    let held = {
        let producer = publishing.producer();
        tokio::spawn(async move {
            producer
                .send(&Destination::queue("held"), Message::new("held-1"))
                .await
        })
    };

    // A consumer on the other connection receives and acks the backlog meanwhile.
    let mut backlog = client
        .subscribe(ConsumerOptions::new("backlog").prefetch(10))
        .await
        .unwrap();
    for i in 0..3 {
        let d = tokio::time::timeout(WAIT, backlog.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(d.body, format!("backlog-{i}").into_bytes());
        d.ack().await.unwrap();
    }
    b.until_depth("backlog", 0).await;
    assert_eq!(b.queue_depth("held").await, 0, "stored during the alarm");
    assert!(!held.is_finished(), "completed during the alarm");

    b.disk_alarm_off().await;
    tokio::time::timeout(WAIT, held)
        .await
        .expect("sent after the alarm")
        .unwrap()
        .expect("stored");
    publishing
        .producer()
        .send(&Destination::queue("held"), Message::new("after"))
        .await
        .unwrap();
    let mut held = client
        .subscribe(ConsumerOptions::new("held").prefetch(10))
        .await
        .unwrap();
    for body in [&b"held-1"[..], b"after"] {
        let d = tokio::time::timeout(WAIT, held.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(d.body, body);
        d.ack().await.unwrap();
    }
    b.until_depth("held", 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_publishes_that_arrive_during_an_alarm_are_held_then_stored() {
    let b = broker();
    let mut c = common::RawClient::connect(b.native).await;
    assert!(matches!(
        c.hello("guest", "guest").await.body,
        wire::Body::Welcome(_)
    ));
    c.send(wire::Frame::new(
        2,
        wire::DeclareQueue {
            name: "held".into(),
            partitions: 1,
            durable: true,
            exclusive: false,
            auto_delete: false,
            passive: false,
            args: vec![],
        },
    ))
    .await;
    assert!(matches!(
        c.recv().await.map(|f| f.body),
        Some(wire::Body::QueueDeclared(_))
    ));
    b.memory_alarm_on().await;
    match c.recv().await.map(|f| f.body) {
        Some(wire::Body::Flow(f)) => assert!(f.blocked && f.reason.contains("memory"), "{f:?}"),
        other => panic!("expected Flow, got {other:?}"),
    }
    // A client that publishes anyway: a single publish and a batch, both held.
    c.send(wire::Frame::new(3, publish(b"one"))).await;
    c.send(wire::Frame::new(
        4,
        wire::PublishBatch {
            exchange: "".into(),
            routing_key: "held".into(),
            mandatory: false,
            messages: [&b"two"[..], b"three"]
                .iter()
                .map(|body| wire::BatchMessage {
                    routing_key: None,
                    properties: Default::default(),
                    body: bytes::Bytes::copy_from_slice(body),
                })
                .collect(),
        },
    ))
    .await;
    b.logged("publish held by a resource alarm").await;
    assert_eq!(b.queue_depth("held").await, 0);
    let answer = tokio::spawn(async move {
        let f = c.recv().await;
        (f, c)
    });
    // The broker answers other connections meanwhile.
    let other = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    other.admin().create_topic("elsewhere", 1).await.unwrap();
    assert!(!answer.is_finished(), "answered during the alarm");

    b.memory_alarm_off().await;
    let mut answers = Vec::new();
    let (f, mut c) = tokio::time::timeout(WAIT, answer).await.unwrap().unwrap();
    answers.push(f.expect("open"));
    while answers.len() < 3 {
        answers.push(c.recv().await.expect("open"));
    }
    let mut published = Vec::new();
    for f in answers {
        match f.body {
            wire::Body::Flow(fl) => assert!(!fl.blocked, "{fl:?}"),
            wire::Body::Published(_) => published.push(f.request_id),
            wire::Body::PublishedBatch(pb) => {
                assert_eq!(pb.results.len(), 2);
                published.push(f.request_id)
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(published, [3, 4], "answered in order");
    c.send(wire::Frame::new(
        5,
        wire::Pull {
            queue: "held".into(),
            partition: 0,
            offset: 0,
            max: 10,
        },
    ))
    .await;
    match c.recv().await.map(|f| f.body) {
        Some(wire::Body::Pulled(p)) => {
            let bodies: Vec<&[u8]> = p.messages.iter().map(|m| &m.body[..]).collect();
            assert_eq!(bodies, [&b"one"[..], b"two", b"three"], "each stored once");
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn publish(body: &'static [u8]) -> wire::Publish {
    wire::Publish {
        exchange: "".into(),
        routing_key: "held".into(),
        mandatory: false,
        confirm: true,
        properties: Default::default(),
        body: bytes::Bytes::from_static(body),
        producer: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_amqp_connection_still_gets_deliveries() {
    let b = broker();
    // Another connection holds a message unacknowledged; the publisher also consumes the queue.
    let holder = connect(&b).await;
    let hch = channel(&holder).await;
    declare(&hch, "shared").await;
    declare(&hch, "held").await;
    hch.basic_qos(1, Default::default()).await.unwrap();
    hch.basic_publish(
        "".into(),
        "shared".into(),
        BasicPublishOptions::default(),
        b"requeued",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let mut held_by_other = consumer(&hch, "shared", false).await;
    assert_eq!(next(&mut held_by_other).await.data, b"requeued");
    let publishing = connect(&b).await;
    let pch = channel(&publishing).await;
    pch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut own = consumer(&pch, "shared", true).await;

    b.memory_alarm_on().await;
    let confirm = pch
        .basic_publish(
            "".into(),
            "held".into(),
            BasicPublishOptions::default(),
            b"held-1",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let confirm = tokio::spawn(confirm);
    b.logged("publishing connection blocked by a resource alarm")
        .await;
    // The other connection goes: its message comes back to the blocked connection's consumer.
    holder.close(200, "bye".into()).await.unwrap();
    let d = next(&mut own).await;
    assert_eq!(d.data, b"requeued");
    assert!(d.redelivered);
    assert!(publishing.status().blocked());
    assert!(!confirm.is_finished(), "confirmed during the alarm");

    b.memory_alarm_off().await;
    let c = tokio::time::timeout(WAIT, confirm)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(c.is_ack(), "{c:?}");
    b.until_depth("held", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_stomp_connection_still_gets_messages() {
    let b = broker();
    let mut holder = StompClient::connect(b.stomp).await;
    holder.publish("/queue/shared", b"requeued", &[]).await;
    holder
        .subscribe(
            "1",
            "/queue/shared",
            "client-individual",
            &[("prefetch-count", "1")],
        )
        .await;
    assert_eq!(&holder.message().await.body[..], b"requeued");
    let mut publisher = StompClient::connect(b.stomp).await;
    publisher.subscribe("1", "/queue/shared", "auto", &[]).await;

    b.memory_alarm_on().await;
    publisher
        .send(Frame::send("/queue/held", b"held-1".to_vec()).with_header("receipt", "held-receipt"))
        .await;
    b.logged("SEND held by a resource alarm").await;
    // The other connection goes: its message comes to the held connection's subscription.
    drop(holder);
    let m = publisher.message().await;
    assert_eq!(&m.body[..], b"requeued");
    assert_eq!(b.queue_depth("held").await, 0, "stored during the alarm");

    b.memory_alarm_off().await;
    let r = publisher.expect(Command::Receipt).await;
    assert_eq!(r.header("receipt-id"), Some("held-receipt"));
    b.until_depth("held", 1).await;
    publisher.disconnect().await;
}
