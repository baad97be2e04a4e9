//! AMQP 0-9-1 end to end with lapin against the broker binary: connection, exchanges,
//! publish/consume, properties, confirms, returns, get, qos, nack/reject.

mod common;

use std::time::Duration;

use common::amqp::*;
use common::TestBroker;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

#[tokio::test]
async fn wrong_password_is_refused_with_403() {
    let b = TestBroker::start();
    let uri = format!("amqp://guest:nope@{}/%2f", b.amqp);
    let r = tokio::time::timeout(
        WAIT,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect("answer in time");
    let Err(e) = r else {
        panic!("the connection was accepted")
    };
    let text = format!("{e:?} {e}");
    assert!(
        text.contains("ACCESS_REFUSED") || text.contains("403"),
        "{text}"
    );
}

#[tokio::test]
async fn default_exchange_publish_and_consume() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    assert!(q.starts_with("amq.gen-"));
    publish_with(&ch, "", &q, b"hello", BasicProperties::default()).await;
    let mut cons = consumer(&ch, &q, false).await;
    let d = next(&mut cons).await;
    assert_eq!(d.data, b"hello");
    assert_eq!(d.routing_key.as_str(), q);
    assert!(!d.redelivered);
    d.ack(BasicAckOptions::default()).await.unwrap();
}

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
}

async fn bind(ch: &Channel, q: &str, x: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        q.into(),
        x.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .expect("queue.bind");
}

#[tokio::test]
async fn direct_fanout_and_topic_exchanges_route() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    exchange(&ch, "d", ExchangeKind::Direct).await;
    exchange(&ch, "f", ExchangeKind::Fanout).await;
    exchange(&ch, "t", ExchangeKind::Topic).await;
    let qd = declare_with(
        &ch,
        "qd",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let qf1 = declare_with(
        &ch,
        "qf1",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let qf2 = declare_with(
        &ch,
        "qf2",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let qt = declare_with(
        &ch,
        "qt",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    bind(&ch, &qd, "d", "k", FieldTable::default()).await;
    bind(&ch, &qf1, "f", "", FieldTable::default()).await;
    bind(&ch, &qf2, "f", "", FieldTable::default()).await;
    bind(&ch, &qt, "t", "sensors.#", FieldTable::default()).await;
    publish_with(&ch, "d", "k", b"direct", BasicProperties::default()).await;
    publish_with(&ch, "d", "other", b"lost", BasicProperties::default()).await;
    publish_with(&ch, "f", "x", b"fan", BasicProperties::default()).await;
    publish_with(
        &ch,
        "t",
        "sensors.room1.temp",
        b"topic",
        BasicProperties::default(),
    )
    .await;
    publish_with(&ch, "t", "actuators.x", b"no", BasicProperties::default()).await;
    for (q, body) in [
        (&qd, &b"direct"[..]),
        (&qf1, b"fan"),
        (&qf2, b"fan"),
        (&qt, b"topic"),
    ] {
        let mut cons = consumer(&ch, q, true).await;
        assert_eq!(next(&mut cons).await.data, body);
        nothing(&mut cons, 200).await;
    }
}

#[tokio::test]
async fn headers_exchange_routes_on_headers() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    exchange(&ch, "h", ExchangeKind::Headers).await;
    let q = declare_with(
        &ch,
        "qh",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let mut args = FieldTable::default();
    args.insert("x-match".into(), AMQPValue::LongString("all".into()));
    args.insert("kind".into(), AMQPValue::LongString("alert".into()));
    bind(&ch, &q, "h", "", args).await;
    let mut h = FieldTable::default();
    h.insert("kind".into(), AMQPValue::LongString("alert".into()));
    publish_with(
        &ch,
        "h",
        "",
        b"yes",
        BasicProperties::default().with_headers(h),
    )
    .await;
    let mut h = FieldTable::default();
    h.insert("kind".into(), AMQPValue::LongString("info".into()));
    publish_with(
        &ch,
        "h",
        "",
        b"no",
        BasicProperties::default().with_headers(h),
    )
    .await;
    let mut cons = consumer(&ch, &q, true).await;
    assert_eq!(next(&mut cons).await.data, b"yes");
    nothing(&mut cons, 200).await;
}

#[tokio::test]
async fn properties_and_nested_headers_round_trip_exactly() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "props",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let mut inner = FieldTable::default();
    inner.insert("depth".into(), AMQPValue::LongLongInt(2));
    inner.insert("name".into(), AMQPValue::LongString("inner".into()));
    let mut headers = FieldTable::default();
    headers.insert("nested".into(), AMQPValue::FieldTable(inner));
    headers.insert(
        "list".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongInt(1),
            AMQPValue::Boolean(true),
            AMQPValue::LongString(LongString::from("x")),
        ])),
    );
    headers.insert("f".into(), AMQPValue::Double(1.5));
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("60000".into())
        .with_message_id("m-1".into())
        .with_timestamp(1_700_000_000)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("tests".into());
    publish_with(&ch, "", &q, b"{}", props.clone()).await;
    let mut cons = consumer(&ch, &q, true).await;
    let d = next(&mut cons).await;
    assert_eq!(d.properties, props);
    assert_eq!(d.data, b"{}");
}

#[tokio::test]
async fn a_1mib_body_split_across_4096_byte_frames_arrives_intact() {
    let b = TestBroker::start();
    let c = connect_uri(&format!("amqp://guest:guest@{}/%2f?frame_max=4096", b.amqp)).await;
    assert_eq!(c.configuration().frame_max(), 4096);
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "big",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let body: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    publish_with(&ch, "", &q, &body, BasicProperties::default()).await;
    let mut cons = consumer(&ch, &q, true).await;
    let d = next(&mut cons).await;
    assert_eq!(d.data.len(), body.len());
    assert!(d.data == body);
}

#[tokio::test]
async fn publisher_confirms_ack_stored_messages() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "confirmed",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut confirms = Vec::new();
    for i in 0..50u32 {
        let body = i.to_string();
        let pc = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        confirms.push(pc);
    }
    for pc in confirms {
        let conf = tokio::time::timeout(WAIT, pc).await.unwrap().unwrap();
        assert!(conf.is_ack());
    }
    let returned = tokio::time::timeout(WAIT, ch.wait_for_confirms())
        .await
        .unwrap()
        .unwrap();
    assert!(returned.is_empty());
}

#[tokio::test]
async fn reject_publish_overflow_is_nacked() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    let q = declare_with(&ch, "small", QueueDeclareOptions::default(), args).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut results = Vec::new();
    for body in [&b"1"[..], b"2"] {
        let pc = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        results.push(tokio::time::timeout(WAIT, pc).await.unwrap().unwrap());
    }
    assert!(results[0].is_ack());
    assert!(results[1].is_nack());
}

#[tokio::test]
async fn mandatory_unroutable_is_returned() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let pc = ch
        .basic_publish(
            "".into(),
            "no-such-queue".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"back",
            BasicProperties::default().with_message_id("r1".into()),
        )
        .await
        .unwrap();
    let conf = tokio::time::timeout(WAIT, pc).await.unwrap().unwrap();
    assert!(conf.is_ack());
    let m = conf.take_message().expect("a returned message");
    assert_eq!(m.reply_code, 312);
    assert_eq!(m.delivery.data, b"back");
    assert_eq!(
        m.delivery.properties.message_id(),
        &Some(ShortString::from("r1"))
    );
}

#[tokio::test]
async fn basic_get_and_get_empty() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "pull",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_with(&ch, "", &q, b"one", BasicProperties::default()).await;
    publish_with(&ch, "", &q, b"two", BasicProperties::default()).await;
    let m = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(m) = ch
                .basic_get(q.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(m.delivery.data, b"one");
    assert_eq!(m.message_count, 1);
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    let m = ch
        .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("second message");
    assert_eq!(m.delivery.data, b"two");
    let none = ch
        .basic_get(q.as_str().into(), BasicGetOptions::default())
        .await
        .unwrap();
    assert!(none.is_none());
}

#[tokio::test]
async fn qos_prefetch_limits_unacked_deliveries() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "qos",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    for i in 0..5u8 {
        publish_with(&ch, "", &q, &[i], BasicProperties::default()).await;
    }
    ch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
    let mut cons = consumer(&ch, &q, false).await;
    let d1 = next(&mut cons).await;
    let _d2 = next(&mut cons).await;
    nothing(&mut cons, 300).await;
    d1.ack(BasicAckOptions::default()).await.unwrap();
    let d3 = next(&mut cons).await;
    assert_eq!(d3.data, [2]);
    nothing(&mut cons, 300).await;
}

#[tokio::test]
async fn nack_with_requeue_redelivers_with_the_flag() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(
        &ch,
        "again",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    publish_with(&ch, "", &q, b"x", BasicProperties::default()).await;
    let mut cons = consumer(&ch, &q, false).await;
    let d = next(&mut cons).await;
    assert!(!d.redelivered);
    d.nack(BasicNackOptions {
        requeue: true,
        multiple: false,
    })
    .await
    .unwrap();
    let d = next(&mut cons).await;
    assert!(d.redelivered);
    assert_eq!(d.data, b"x");
    d.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn reject_dead_letters() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    exchange(&ch, "dlx", ExchangeKind::Fanout).await;
    let dead = declare_with(
        &ch,
        "dead",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    bind(&ch, &dead, "dlx", "", FieldTable::default()).await;
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("dlx".into()),
    );
    let q = declare_with(&ch, "work", QueueDeclareOptions::default(), args).await;
    publish_with(&ch, "", &q, b"bad", BasicProperties::default()).await;
    let mut cons = consumer(&ch, &q, false).await;
    let d = next(&mut cons).await;
    d.reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let mut dc = consumer(&ch, &dead, true).await;
    let d = next(&mut dc).await;
    assert_eq!(d.data, b"bad");
    let headers = d.properties.headers().clone().unwrap_or_default();
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&AMQPValue::LongString("rejected".into()))
    );
}
