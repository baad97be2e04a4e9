//! AMQP 0-9-1 end to end: authentication mechanisms, alarms (connection.blocked),
//! per-consumer qos, recover, and graceful shutdown.

mod common;

use common::amqp::*;
use common::TestBroker;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::{BasicProperties, Connection, ConnectionProperties, Event};

#[tokio::test]
async fn amqplain_login_works() {
    let b = TestBroker::start();
    let c = connect_uri(&format!(
        "amqp://guest:guest@{}/%2f?auth_mechanism=amqplain",
        b.amqp
    ))
    .await;
    let ch = c.create_channel().await.unwrap();
    assert!(!declare(&ch, "").await.is_empty());
}

#[tokio::test]
async fn disk_alarm_blocks_a_publishing_connection_until_it_clears() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_in(
        dir.path(),
        &[("JUNCTION_STORE_DISK_LOW_WATERMARK", "9223372036854775807")],
    );
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "blocked").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mut events = c.events_listener();
    // As in RabbitMQ, a connection is blocked (and told so) when it publishes.
    let confirm = ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    let reason = blocking_event(&mut events)
        .await
        .expect("connection.blocked");
    assert!(reason.contains("disk"), "{reason}");
    assert!(c.status().connected() && c.status().blocked());
    b.disk_alarm_off().await;
    assert_eq!(
        blocking_event(&mut events).await,
        None,
        "connection.unblocked"
    );
    let confirmation = tokio::time::timeout(WAIT, confirm).await.unwrap().unwrap();
    assert!(confirmation.is_ack(), "{confirmation:?}");
    assert!(!c.status().blocked());
}

/// The next connection.blocked (`Some(reason)`) or connection.unblocked (`None`).
async fn blocking_event(
    events: &mut (impl futures_lite::Stream<Item = Event> + Unpin),
) -> Option<String> {
    tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(Event::ConnectionBlocked(r)) => return Some(r),
                Some(Event::ConnectionUnblocked) => return None,
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("an event in time")
}

#[tokio::test]
async fn qos_applies_to_consumers_created_after_it() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q1 = declare(&ch, "before-qos").await;
    let q2 = declare(&ch, "after-qos").await;
    for i in 0..4u8 {
        publish(&ch, "", &q1, &[i]).await;
        publish(&ch, "", &q2, &[i]).await;
    }
    let mut unlimited = consumer(&ch, &q1, false).await;
    ch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut limited = consumer(&ch, &q2, false).await;
    for _ in 0..4 {
        next(&mut unlimited).await;
    }
    next(&mut limited).await;
    nothing(&mut limited, 300).await;
}

#[tokio::test]
async fn recover_requeues_unacked_deliveries() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "recover").await;
    publish(&ch, "", &q, b"r").await;
    let mut cons = consumer(&ch, &q, false).await;
    let d = next(&mut cons).await;
    assert!(!d.redelivered);
    ch.basic_recover(BasicRecoverOptions { requeue: true })
        .await
        .unwrap();
    let d = next(&mut cons).await;
    assert!(d.redelivered);
    d.ack(BasicAckOptions::default()).await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_connections_with_320() {
    let mut b = TestBroker::start();
    let c = connect(&b).await;
    let mut events = c.events_listener();
    let ch = c.create_channel().await.unwrap();
    declare(&ch, "").await;
    let st = tokio::task::spawn_blocking(move || {
        let st = b.stop();
        (b, st)
    });
    let err = tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.next().await {
            if let Event::Error(e) = ev {
                return e;
            }
        }
        panic!("events ended");
    })
    .await
    .expect("an error event in time");
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => assert_eq!(e.get_id(), 320, "{e}"),
        other => panic!("expected connection.close 320, got {other:?}"),
    }
    let (_b, st) = st.await.unwrap();
    assert!(st.success());
}

#[tokio::test]
async fn an_unknown_vhost_is_530() {
    let b = TestBroker::start();
    let uri = format!("amqp://guest:guest@{}/nowhere", b.amqp);
    let r = tokio::time::timeout(
        WAIT,
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
    .expect("answer in time");
    let Err(e) = r else {
        panic!("the connection was accepted")
    };
    match e.kind() {
        lapin::ErrorKind::ProtocolError(a) => assert_eq!(a.get_id(), 530, "{a}"),
        other => panic!("expected connection.close 530, got {other:?}"),
    }
}

#[tokio::test]
async fn five_thousand_confirmed_messages_arrive_in_order() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "bulk").await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let reader = c.create_channel().await.unwrap();
    reader
        .basic_qos(100, BasicQosOptions::default())
        .await
        .unwrap();
    let mut cons = consumer(&reader, &q, false).await;
    let n = 5000u32;
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            &i.to_be_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let returned = tokio::time::timeout(WAIT, ch.wait_for_confirms())
        .await
        .expect("confirms in time")
        .unwrap();
    assert!(returned.is_empty());
    for i in 0..n {
        let d = next(&mut cons).await;
        assert_eq!(d.data, i.to_be_bytes());
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
}
