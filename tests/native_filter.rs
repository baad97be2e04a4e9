//! Tags and SQL92 filters, evaluated on the broker: through the SDK (tag expressions, SQL
//! selectors, one filter per group), STOMP's `selector` header and AMQP consume arguments.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::native::{client, next, text_of};
use common::stomp::{text, StompClient};
use common::TestBroker;
use junction_sdk::{
    Consumer, ConsumerOptions, Destination, ErrorCode, Message, SdkError, StartPosition,
};
use lapin::options::BasicConsumeOptions;
use lapin::types::{AMQPValue, FieldArray, FieldTable};

/// Receives until `marker` arrives (a message every filter lets through, published last);
/// returns the bodies before it.
async fn until_marker(c: &mut Consumer, marker: &str) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    loop {
        let d = next(c).await;
        d.ack().await.unwrap();
        let t = text_of(&d);
        if t == marker {
            return got;
        }
        assert!(got.insert(t.clone()), "{t} twice");
    }
}

#[tokio::test]
async fn tag_expressions_filter_per_group() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("orders", 2).await.unwrap();
    let mut money = c
        .subscribe(
            ConsumerOptions::new("orders")
                .group("money")
                .tags("paid || refunded || end")
                .start(StartPosition::Earliest),
        )
        .await
        .unwrap();
    let mut all = c
        .subscribe(ConsumerOptions::new("orders").group("all").tags("*"))
        .await
        .unwrap();
    let tags = ["created", "paid", "shipped", "refunded"];
    let batch: Vec<Message> = (0..40)
        .map(|i| {
            let m = Message::new(format!("o{i}"));
            if i % 5 == 4 {
                m // untagged
            } else {
                m.tag(tags[i % 5])
            }
        })
        .chain([Message::new("end").tag("end")])
        .collect();
    c.producer()
        .send_batch(&Destination::queue("orders"), batch)
        .await
        .unwrap();
    let want: BTreeSet<String> = (0..40)
        .filter(|i| i % 5 == 1 || i % 5 == 3)
        .map(|i| format!("o{i}"))
        .collect();
    assert_eq!(until_marker(&mut money, "end").await, want);
    assert_eq!(until_marker(&mut all, "end").await.len(), 40);
    // A second member of the group must ask for the same filter.
    let err = c
        .subscribe(ConsumerOptions::new("orders").group("money").tags("paid"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::Server {
                code: ErrorCode::PreconditionFailed,
                ..
            }
        ),
        "{err:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn sql92_selectors_filter_on_headers() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("trades", 1).await.unwrap();
    let selectors = [
        ("big-eu", "(amount > 5 AND region = 'eu') OR done = 'yes'"),
        ("mid", "amount BETWEEN 3 AND 6 OR done IS NOT NULL"),
        ("asia", "region IN ('cn', 'jp') OR done = 'yes'"),
        ("unset", "region IS NULL OR done = 'yes'"),
        ("not-eu", "NOT region = 'eu' OR done = 'yes'"),
    ];
    let mut consumers = Vec::new();
    for (g, sql) in selectors {
        consumers.push(
            c.subscribe(ConsumerOptions::new("trades").group(g).sql(sql))
                .await
                .unwrap(),
        );
    }
    let trades = [
        ("t1", Some("eu"), 7),
        ("t2", Some("eu"), 2),
        ("t3", Some("cn"), 9),
        ("t4", Some("us"), 4),
        ("t5", None, 6),
        ("t6", Some("jp"), 1),
    ];
    let p = c.producer();
    for (name, region, amount) in trades {
        let mut m = Message::new(name).header("amount", amount.to_string());
        if let Some(r) = region {
            m = m.header("region", r);
        }
        p.send(&Destination::queue("trades"), m).await.unwrap();
    }
    p.send(
        &Destination::queue("trades"),
        Message::new("end").header("done", "yes"),
    )
    .await
    .unwrap();
    let want: [&[&str]; 5] = [
        &["t1"],
        &["t4", "t5"],
        &["t3", "t6"],
        &["t5"],
        &["t3", "t4", "t6"], // t5 has no region: NOT NULL is unknown
    ];
    for (c, want) in consumers.iter_mut().zip(want) {
        let got = until_marker(c, "end").await;
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want);
    }
    let err = c
        .subscribe(ConsumerOptions::new("trades").group("bad").sql("amount >"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::Server {
                code: ErrorCode::PreconditionFailed,
                ..
            }
        ),
        "{err:?}"
    );
    c.close().await.unwrap();
}

#[tokio::test]
async fn stomp_selector_header_filters_a_topic_subscription() {
    let b = TestBroker::start();
    let mut s = StompClient::connect(b.stomp).await;
    s.subscribe(
        "eu",
        "/topic/prices.*",
        "auto",
        &[("selector", "region = 'eu' AND price > 10")],
    )
    .await;
    let mut p = StompClient::connect(b.stomp).await;
    for (body, region, price) in [
        ("a", "eu", "12"),
        ("b", "us", "50"),
        ("c", "eu", "3"),
        ("d", "eu", "11"),
    ] {
        p.publish(
            "/topic/prices.fx",
            body.as_bytes(),
            &[("region", region), ("price", price)],
        )
        .await;
    }
    assert_eq!(text(&s.message().await), "a");
    assert_eq!(text(&s.message().await), "d");
    s.assert_quiet(Duration::from_millis(300)).await;
    // A bad selector is an ERROR frame.
    let mut bad = StompClient::connect(b.stomp).await;
    let f = junction_stomp::Frame::new(junction_stomp::Command::Subscribe)
        .with_header("id", "x")
        .with_header("destination", "/topic/prices.*")
        .with_header("selector", "price >");
    bad.send(f).await;
    let e = bad.expect_error_and_close().await;
    assert_eq!(e.header("message"), Some("invalid selector"));
}

#[tokio::test]
async fn amqp_consume_arguments_filter_by_tags_and_selector() {
    let b = TestBroker::start();
    let conn = common::amqp::connect(&b).await;
    let ch = common::amqp::channel(&conn).await;
    for q in ["by-tag", "by-sql"] {
        common::amqp::declare(&ch, q).await;
    }
    let mut tags = FieldTable::default();
    tags.insert(
        "x-stream-filter".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongString("red".into()),
            AMQPValue::LongString("blue".into()),
        ])),
    );
    let mut sql = FieldTable::default();
    sql.insert(
        "x-selector".into(),
        AMQPValue::LongString("size >= 10".into()),
    );
    let opts = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut by_tag = ch
        .basic_consume("by-tag".into(), "t".into(), opts, tags)
        .await
        .unwrap();
    let mut by_sql = ch
        .basic_consume("by-sql".into(), "s".into(), opts, sql)
        .await
        .unwrap();
    for (body, colour, size) in [("1", "red", 5), ("2", "green", 20), ("3", "blue", 10)] {
        let mut h = FieldTable::default();
        h.insert("x-tag".into(), AMQPValue::LongString(colour.into()));
        h.insert("size".into(), AMQPValue::LongInt(size));
        for q in ["by-tag", "by-sql"] {
            common::amqp::publish_with(
                &ch,
                "",
                q,
                body.as_bytes(),
                lapin::BasicProperties::default().with_headers(h.clone()),
            )
            .await;
        }
    }
    assert_eq!(common::amqp::next(&mut by_tag).await.data, b"1");
    assert_eq!(common::amqp::next(&mut by_tag).await.data, b"3");
    assert_eq!(common::amqp::next(&mut by_sql).await.data, b"2");
    assert_eq!(common::amqp::next(&mut by_sql).await.data, b"3");
    common::amqp::nothing(&mut by_tag, 300).await;
    common::amqp::nothing(&mut by_sql, 300).await;
}
