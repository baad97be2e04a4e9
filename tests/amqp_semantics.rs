//! RabbitMQ behaviours that client libraries rely on, found by running pika's acceptance suite:
//! deleting what does not exist succeeds, and a cancelled consumer's deliveries can still be
//! acked.

mod common;

use common::amqp::{connect, WAIT};
use common::TestBroker;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

#[tokio::test]
async fn deleting_a_missing_exchange_or_queue_succeeds() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    ch.exchange_delete("never-declared".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    let n = ch
        .queue_delete("never-declared".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(n, 0);
    // The channel is still open.
    ch.queue_declare(
        "after".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_cancelled_consumers_deliveries_can_still_be_acked() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        "work".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    for body in [&b"one"[..], b"two"] {
        ch.basic_publish(
            "".into(),
            "work".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut cons = ch
        .basic_consume(
            "work".into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let first = tokio::time::timeout(WAIT, cons.next())
        .await
        .expect("delivery")
        .expect("open")
        .unwrap();
    assert_eq!(&first.data[..], b"one");
    ch.basic_cancel("c1".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    first.ack(BasicAckOptions::default()).await.unwrap();
    // "one" was acked after the cancel and is gone; "two" (delivered to c1 too, never acked)
    // goes back to the queue when the channel closes, as in RabbitMQ.
    ch.close(200, "done".into()).await.unwrap();
    let ch2 = c.create_channel().await.unwrap();
    let got = ch2
        .basic_get("work".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(&got.delivery.data[..], b"two");
    assert!(ch2
        .basic_get("work".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
}
