//! AMQP 0-9-1 end to end: exchange-to-exchange bindings, passive declares, purge, conditional
//! deletes, exclusive consumers, multiple acks.

mod common;

use std::time::Duration;

use common::amqp::*;
use common::TestBroker;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, ExchangeKind};

async fn ready(ch: &Channel, q: &str) -> u32 {
    ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("passive declare")
    .message_count()
}

#[tokio::test]
async fn exchange_to_exchange_binding_routes() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    for (x, kind) in [("src", ExchangeKind::Topic), ("dst", ExchangeKind::Fanout)] {
        ch.exchange_declare(
            x.into(),
            kind,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.exchange_bind(
        "dst".into(),
        "src".into(),
        "a.*".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = declare(&ch, "e2e").await;
    ch.queue_bind(
        q.as_str().into(),
        "dst".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "src", "a.b", b"through").await;
    publish(&ch, "src", "b.b", b"not").await;
    let mut cons = consumer(&ch, &q, true).await;
    assert_eq!(next(&mut cons).await.data, b"through");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), cons.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let e = ch
        .queue_declare(
            "missing".into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("not found");
    assert_eq!(code(&e), Some(404), "{e}");
    let ch = c.create_channel().await.unwrap();
    let e = ch
        .exchange_declare(
            "nope".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("not found");
    assert_eq!(code(&e), Some(404), "{e}");
}

#[tokio::test]
async fn purge_and_conditional_deletes() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "purged").await;
    for _ in 0..3 {
        publish(&ch, "", &q, b"x").await;
    }
    tokio::time::timeout(WAIT, async {
        while ready(&ch, &q).await < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let e = ch
        .queue_delete(
            q.as_str().into(),
            QueueDeleteOptions {
                if_empty: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("not empty");
    assert_eq!(code(&e), Some(406), "{e}");
    let ch = c.create_channel().await.unwrap();
    assert_eq!(
        ch.queue_purge(q.as_str().into(), QueuePurgeOptions::default())
            .await
            .unwrap(),
        3
    );
    ch.queue_delete(
        q.as_str().into(),
        QueueDeleteOptions {
            if_empty: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();

    ch.exchange_declare(
        "used".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let q = declare(&ch, "bound").await;
    ch.queue_bind(
        q.as_str().into(),
        "used".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let e = ch
        .exchange_delete(
            "used".into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("in use");
    assert_eq!(code(&e), Some(406), "{e}");
}

#[tokio::test]
async fn exclusive_consume_on_a_consumed_queue_is_403() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "shared").await;
    let _first = consumer(&ch, &q, true).await;
    let ch2 = c.create_channel().await.unwrap();
    let e = ch2
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(code(&e), Some(403), "{e}");
}

#[tokio::test]
async fn multiple_ack_settles_every_earlier_delivery() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "multi").await;
    for i in 0..3u8 {
        publish(&ch, "", &q, &[i]).await;
    }
    let mut cons = consumer(&ch, &q, false).await;
    let mut last = None;
    for _ in 0..3 {
        last = Some(next(&mut cons).await);
    }
    last.unwrap()
        .ack(BasicAckOptions { multiple: true })
        .await
        .unwrap();
    // Closing the channel would requeue anything unacked: nothing must come back.
    ch.close(200, "bye".into()).await.unwrap();
    let ch = c.create_channel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(ready(&ch, &q).await, 0);
}

#[tokio::test]
async fn an_exclusive_consumer_keeps_others_out_until_it_cancels() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = c.create_channel().await.unwrap();
    let q = declare(&ch, "solo").await;
    let excl = BasicConsumeOptions {
        exclusive: true,
        no_ack: true,
        ..Default::default()
    };
    let first = ch
        .basic_consume(
            q.as_str().into(),
            "only".into(),
            excl,
            FieldTable::default(),
        )
        .await
        .unwrap();
    let ch2 = c.create_channel().await.unwrap();
    let e = ch2
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(code(&e), Some(403), "{e}");
    ch.basic_cancel("only".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    drop(first);
    let ch3 = c.create_channel().await.unwrap();
    let _second = consumer(&ch3, &q, true).await;
}

#[tokio::test]
async fn an_exclusive_queue_outlives_its_channel_but_not_its_connection() {
    let b = TestBroker::start();
    let c1 = connect(&b).await;
    let ch = c1.create_channel().await.unwrap();
    ch.queue_declare(
        "temp".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.close(200, "done".into()).await.unwrap();
    let ch = c1.create_channel().await.unwrap();
    assert_eq!(
        ready(&ch, "temp").await,
        0,
        "still there after its channel closed"
    );
    c1.close(200, "bye".into()).await.unwrap();

    let c2 = connect(&b).await;
    let gone = tokio::time::timeout(WAIT, async {
        loop {
            let ch = c2.create_channel().await.unwrap();
            let r = ch
                .queue_declare(
                    "temp".into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match r {
                Err(e) => return code(&e),
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await
    .expect("deleted in time");
    assert_eq!(gone, Some(404));
}
