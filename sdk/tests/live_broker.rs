//! End-to-end checks against a real broker, skipped unless `JUNCTION_SDK_LIVE_ADDR` names one
//! (e.g. `junction serve --native-listen 127.0.0.1:25680` and
//! `JUNCTION_SDK_LIVE_ADDR=127.0.0.1:25680 cargo test -p junction-sdk --test live_broker`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use junction_sdk::{
    Client, ClientOptions, ConsumerOptions, Destination, ErrorCode, Message, QueueOptions,
    SdkError, StartPosition,
};

fn options() -> Option<ClientOptions> {
    let addr = std::env::var("JUNCTION_SDK_LIVE_ADDR").ok()?;
    Some(ClientOptions::new(addr).request_timeout(Duration::from_secs(10)))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{nanos}")
}

async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn live_round_trip() {
    let Some(opts) = options() else {
        eprintln!("JUNCTION_SDK_LIVE_ADDR not set: skipped");
        return;
    };
    let err = Client::connect(opts.clone().credentials("guest", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AccessRefused), "{err:?}");

    let client = Client::connect(opts).await.unwrap();
    let admin = client.admin();
    let topic = unique("sdk-topic");
    let info = admin.create_topic(&topic, 4).await.unwrap();
    assert_eq!(info.partitions, 4);
    let err = admin
        .declare_queue(QueueOptions::new(unique("nope")).passive(true))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::NotFound), "{err:?}");

    let producer = client.producer();
    let dest = Destination::queue(&topic);
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let first = producer
        .send(
            &dest,
            Message::new("first").sharding_key("k1").header("h", "v"),
        )
        .await
        .unwrap();
    let part = first.partition().unwrap();

    let mut confirms = Vec::new();
    for i in 0..2000 {
        let msg = Message::new(format!("m{i}")).sharding_key("k1");
        confirms.push(producer.send_pipelined(&dest, msg).await.unwrap());
    }
    let mut last = first.offset();
    for c in confirms {
        let r = within(c).await.unwrap();
        assert_eq!(
            r.partition(),
            Some(part),
            "same sharding key, same partition"
        );
        assert!(r.offset() > last, "in order");
        last = r.offset();
    }
    let batch = producer
        .send_batch(
            &dest,
            vec![
                Message::new("b1").sharding_key("k1"),
                Message::new("b2").sharding_key("k1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(batch.len(), 2);
    producer
        .send_oneway(&dest, Message::new("oneway").sharding_key("k1"))
        .await
        .unwrap();

    let err = producer
        .clone()
        .mandatory(true)
        .send(
            &Destination::queue(unique("no-such-queue")),
            Message::new("x"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::Returned {
                code: ErrorCode::NoRoute,
                ..
            }
        ),
        "{err:?}"
    );

    let pulled = client.pull(&topic, part, 0, 10).await.unwrap();
    assert_eq!(&pulled.messages[0].body[..], b"first");
    assert_eq!(
        pulled.messages[0].properties.header("h").map(|v| &v[..]),
        Some(&b"v"[..])
    );
    let off = client.offset_for_time(&topic, part, before).await.unwrap();
    assert_eq!(off, 0);

    let mut consumer = client
        .subscribe(
            ConsumerOptions::new(&topic)
                .group("g")
                .start(StartPosition::Earliest)
                .prefetch(50),
        )
        .await
        .unwrap();
    let mut seen = 0;
    while seen < 2004 {
        let d = within(consumer.next()).await.unwrap().unwrap();
        assert_eq!(d.partition, part);
        d.ack().await.unwrap();
        seen += 1;
    }
    consumer.set_prefetch(10).await.unwrap();
    consumer.close().await.unwrap();

    // Deleting the queue cancels a live consumer.
    let mut consumer = client
        .subscribe(
            ConsumerOptions::new(&topic)
                .group("other")
                .start(StartPosition::Latest),
        )
        .await
        .unwrap();
    admin.delete_queue(&topic).await.unwrap();
    match within(consumer.next()).await {
        Some(Err(SdkError::Cancelled { .. })) => {}
        other => panic!("expected a cancellation, got {other:?}"),
    }
    client.close().await.unwrap();
}
