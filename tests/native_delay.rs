//! Delayed and scheduled messages: through the SDK (any delay, due-time order, after a restart
//! and after a crash), AMQP's `x-delay` header, STOMP's `AMQ_SCHEDULED_DELAY` / `x-delay` and the
//! MQTT 5 user property `x-delay`.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::native::{client, next, text_of};
use common::stomp::{text, StompClient};
use common::TestBroker;
use junction_sdk::{Client, ConsumerOptions, Destination, Message};
use lapin::types::{AMQPValue, FieldTable};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sends `(body, delay)` pairs; returns each body's due time (ms since the epoch).
async fn send_delayed(c: &Client, queue: &str, msgs: &[(&str, u64)]) -> Vec<(String, i64)> {
    let p = c.producer();
    let mut due = Vec::new();
    for (body, delay) in msgs {
        let at = SystemTime::now() + Duration::from_millis(*delay);
        let receipt = p
            .send(
                &Destination::queue(queue),
                Message::new(body.to_string())
                    .deliver_at(at)
                    .persistent(true),
            )
            .await
            .unwrap();
        assert!(receipt.routes.is_empty(), "routed only when due");
        let at = at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        due.push((body.to_string(), at));
    }
    due.sort_by_key(|(_, at)| *at);
    due
}

#[tokio::test]
async fn delayed_messages_arrive_in_due_order_and_not_before_their_time() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("later", 1).await.unwrap();
    let mut consumer = c.subscribe(ConsumerOptions::new("later")).await.unwrap();
    let due = send_delayed(
        &c,
        "later",
        &[("c", 2400), ("a", 700), ("d", 3100), ("b", 1500)],
    )
    .await;
    c.producer()
        .send(&Destination::queue("later"), Message::new("now"))
        .await
        .unwrap();
    let first = next(&mut consumer).await;
    assert_eq!(
        text_of(&first),
        "now",
        "an undelayed message is not held back"
    );
    first.ack().await.unwrap();
    for (body, at) in &due {
        let d = next(&mut consumer).await;
        let arrived = now_ms();
        assert_eq!(&text_of(&d), body, "due-time order");
        assert!(arrived >= *at, "{body} arrived {} ms early", at - arrived);
        d.ack().await.unwrap();
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn scheduled_messages_survive_a_restart_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start_in(tmp.path(), &[]);
    let c = client(&b).await;
    c.admin().create_topic("timers", 1).await.unwrap();
    // Nothing is due before the crash (the delays leave a stop and two starts several seconds
    // on a busy machine); most fall due while the broker is down, one only after it is back.
    let mut due = send_delayed(
        &c,
        "timers",
        &[
            ("t3", 9000),
            ("t1", 8000),
            ("t4", 9500),
            ("t2", 8500),
            ("t5", 16000),
        ],
    )
    .await;
    c.close().await.unwrap();
    assert!(b.stop().success());
    b = TestBroker::start_in(tmp.path(), &[]);
    // One more after the clean restart; then a crash before anything is due.
    let c = client(&b).await;
    due.extend(send_delayed(&c, "timers", &[("t6", 6000)]).await);
    due.sort_by_key(|(_, at)| *at);
    c.close().await.unwrap();
    b.kill();
    // Down until the fourth is overdue.
    let overdue = due[3].1;
    let down = Duration::from_millis((overdue - now_ms()).max(0) as u64);
    tokio::time::sleep(down).await;
    b = TestBroker::start_in(tmp.path(), &[]);
    let c = client(&b).await;
    let mut consumer = c
        .subscribe(ConsumerOptions::new("timers").prefetch(10))
        .await
        .unwrap();
    let mut got = Vec::new();
    for _ in 0..due.len() {
        let d = next(&mut consumer).await;
        got.push((text_of(&d), now_ms()));
        d.ack().await.unwrap();
    }
    let want: Vec<&str> = due.iter().map(|(b, _)| b.as_str()).collect();
    let order: Vec<&str> = got.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(order, want, "due-time order across restarts");
    for ((body, arrived), (_, at)) in got.iter().zip(&due) {
        assert!(arrived >= at, "{body} arrived {} ms early", at - arrived);
    }
    c.close().await.unwrap();
}

#[tokio::test]
async fn amqp_x_delay_header_delays_a_message() {
    let b = TestBroker::start();
    let conn = common::amqp::connect(&b).await;
    let ch = common::amqp::channel(&conn).await;
    common::amqp::declare(&ch, "amqp-later").await;
    let mut consumer = common::amqp::consumer(&ch, "amqp-later", true).await;
    let mut headers = FieldTable::default();
    headers.insert("x-delay".into(), AMQPValue::LongInt(1200));
    let sent = now_ms();
    common::amqp::publish_with(
        &ch,
        "",
        "amqp-later",
        b"delayed",
        lapin::BasicProperties::default().with_headers(headers),
    )
    .await;
    common::amqp::publish(&ch, "", "amqp-later", b"prompt").await;
    let first = common::amqp::next(&mut consumer).await;
    assert_eq!(first.data, b"prompt");
    let second = common::amqp::next(&mut consumer).await;
    assert_eq!(second.data, b"delayed");
    assert!(now_ms() - sent >= 1200, "held for its x-delay");
    let h = second.properties.headers().as_ref().expect("headers kept");
    assert!(h.inner().contains_key("x-delay"));
}

#[tokio::test]
async fn stomp_scheduled_delay_headers_delay_a_message() {
    let b = TestBroker::start();
    let mut c = StompClient::connect(b.stomp).await;
    c.subscribe("1", "/queue/stomp-later", "auto", &[]).await;
    let sent = now_ms();
    c.publish(
        "/queue/stomp-later",
        b"activemq",
        &[("AMQ_SCHEDULED_DELAY", "1500")],
    )
    .await;
    c.publish("/queue/stomp-later", b"rabbit", &[("x-delay", "700")])
        .await;
    c.publish("/queue/stomp-later", b"prompt", &[]).await;
    let order: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(text(&c.message().await).to_string());
        }
        v
    };
    assert_eq!(order, ["prompt", "rabbit", "activemq"]);
    assert!(now_ms() - sent >= 1500);
    c.disconnect().await;
}

#[tokio::test]
async fn mqtt5_x_delay_user_property_delays_a_message() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    use rumqttc::v5::mqttbytes::QoS;
    let b = TestBroker::start();
    let mut s = common::mqtt::V5::connect(b.mqtt, "sub").await;
    s.subscribe("alarms/#", QoS::AtLeastOnce).await;
    let p = common::mqtt::V5::connect(b.mqtt, "pub").await;
    let props = PublishProperties {
        user_properties: vec![("x-delay".into(), "1000".into())],
        ..Default::default()
    };
    let sent = now_ms();
    p.client
        .publish_with_properties("alarms/wake", QoS::AtLeastOnce, false, "late", props)
        .await
        .unwrap();
    p.client
        .publish("alarms/now", QoS::AtLeastOnce, false, "early")
        .await
        .unwrap();
    assert_eq!(&s.publish().await.payload[..], b"early");
    let late = s.publish().await;
    assert_eq!(&late.payload[..], b"late");
    assert!(now_ms() - sent >= 1000);
}
