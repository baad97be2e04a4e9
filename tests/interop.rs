//! Cross-protocol: one address space. An AMQP publish to `amq.topic` with key `a.b` reaches a
//! native consumer whose queue is bound with `a.*`, with the properties mapped per
//! `docs/AMQP.md` (DESIGN.md §5); and a native publish reaches an AMQP consumer the same way.

mod common;

use std::time::Duration;

use common::amqp::WAIT;
use common::TestBroker;
use futures_lite::StreamExt;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, QueueOptions};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

async fn native(b: &TestBroker) -> Client {
    Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap()
}

#[tokio::test]
async fn amqp_publish_to_amq_topic_reaches_a_native_consumer_bound_with_a_wildcard() {
    let b = TestBroker::start();
    let n = native(&b).await;
    n.admin()
        .declare_queue(QueueOptions::new("native-in"))
        .await
        .unwrap();
    n.admin()
        .bind("native-in", "amq.topic", "a.*")
        .await
        .unwrap();
    let mut cons = n
        .subscribe(ConsumerOptions::new("native-in"))
        .await
        .unwrap();

    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    headers.insert(
        ShortString::from("region"),
        AMQPValue::LongString(LongString::from("eu")),
    );
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("identity".into())
        .with_correlation_id("req-42".into())
        .with_reply_to("replies".into())
        .with_message_id("m-1".into())
        .with_expiration("60000".into())
        .with_priority(7)
        .with_delivery_mode(2)
        .with_timestamp(1_700_000_000)
        .with_headers(headers);
    let confirm = ch
        .basic_publish(
            "amq.topic".into(),
            "a.b".into(),
            BasicPublishOptions::default(),
            br#"{"t":21.5}"#,
            props,
        )
        .await
        .unwrap();
    assert!(confirm.await.unwrap().is_ack());
    // Not routed: one level too many for `a.*`.
    ch.basic_publish(
        "amq.topic".into(),
        "a.b.c".into(),
        BasicPublishOptions::default(),
        b"deep",
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let d = tokio::time::timeout(WAIT, cons.next())
        .await
        .expect("a delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&d.body[..], br#"{"t":21.5}"#);
    assert_eq!(
        (d.exchange.as_str(), d.routing_key.as_str()),
        ("amq.topic", "a.b")
    );
    let p = &d.properties;
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
    assert_eq!(p.content_encoding.as_deref(), Some("identity"));
    assert_eq!(p.correlation_id.as_deref(), Some(&b"req-42"[..]));
    assert_eq!(p.reply_to.as_deref(), Some("replies"));
    assert_eq!(p.message_id.as_deref(), Some("m-1"));
    assert_eq!(p.ttl_ms, Some(60_000));
    assert_eq!(p.priority, Some(7));
    assert!(p.persistent);
    assert_eq!(p.timestamp_ms, Some(1_700_000_000_000));
    assert_eq!(p.header("region").map(|v| &v[..]), Some(&b"eu"[..]));
    d.ack().await.unwrap();
    if let Ok(Some(extra)) = tokio::time::timeout(Duration::from_millis(300), cons.next()).await {
        panic!("a.b.c must not match a.*: got {:?}", extra.map(|d| d.body));
    }
}

#[tokio::test]
async fn native_publish_to_amq_topic_reaches_an_amqp_consumer_bound_with_a_wildcard() {
    let b = TestBroker::start();
    let conn = common::amqp::connect(&b).await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "amqp-in".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "amqp-in".into(),
        "amq.topic".into(),
        "a.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut cons = ch
        .basic_consume(
            "amqp-in".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let n = native(&b).await;
    let msg = Message::new("from native")
        .content_type("text/plain")
        .correlation_id("c-9")
        .reply_to("back")
        .message_id("n-1")
        .ttl(Duration::from_secs(60))
        .persistent(true)
        .header("region", "us");
    let r = n
        .producer()
        .send(&Destination::exchange("amq.topic", "a.z"), msg)
        .await
        .unwrap();
    assert!(r.is_routed());

    let d = tokio::time::timeout(WAIT, cons.next())
        .await
        .expect("a delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&d.data[..], b"from native");
    assert_eq!(d.routing_key.as_str(), "a.z");
    let p = &d.properties;
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );
    assert_eq!(p.correlation_id().as_ref().map(|s| s.as_str()), Some("c-9"));
    assert_eq!(p.reply_to().as_ref().map(|s| s.as_str()), Some("back"));
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("n-1"));
    assert_eq!(p.expiration().as_ref().map(|s| s.as_str()), Some("60000"));
    assert_eq!(*p.delivery_mode(), Some(2));
    let region = p
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("region").cloned());
    let text = match region {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("region header: {other:?}"),
    };
    assert_eq!(text, "us");
    d.ack(BasicAckOptions::default()).await.unwrap();
}
