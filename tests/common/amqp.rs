//! lapin helpers shared by the AMQP end-to-end tests.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use super::TestBroker;

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// Connects with a URI, bounded by [`WAIT`].
pub async fn connect_uri(uri: &str) -> Connection {
    tokio::time::timeout(
        WAIT,
        Connection::connect(uri, ConnectionProperties::default()),
    )
    .await
    .expect("connect in time")
    .expect("connect")
}

/// Connects as guest to vhost `/`.
pub async fn connect(b: &TestBroker) -> Connection {
    connect_uri(&format!("amqp://guest:guest@{}/%2f", b.amqp)).await
}

/// A new channel.
pub async fn channel(c: &Connection) -> Channel {
    c.create_channel().await.expect("channel")
}

/// The AMQP reply code of a protocol error.
pub fn code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(a) => Some(a.get_id()),
        _ => None,
    }
}

/// Declares a queue with options and arguments; returns its name.
pub async fn declare_with(
    ch: &Channel,
    name: &str,
    opts: QueueDeclareOptions,
    args: FieldTable,
) -> String {
    ch.queue_declare(name.into(), opts, args)
        .await
        .expect("queue.declare")
        .name()
        .to_string()
}

/// Declares a queue with default options; returns its name.
pub async fn declare(ch: &Channel, name: &str) -> String {
    declare_with(
        ch,
        name,
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
}

/// Publishes with properties (no confirm wait).
pub async fn publish_with(ch: &Channel, exchange: &str, rk: &str, body: &[u8], p: BasicProperties) {
    ch.basic_publish(
        exchange.into(),
        rk.into(),
        BasicPublishOptions::default(),
        body,
        p,
    )
    .await
    .expect("publish");
}

/// Publishes with default properties (no confirm wait).
pub async fn publish(ch: &Channel, exchange: &str, rk: &str, body: &[u8]) {
    publish_with(ch, exchange, rk, body, BasicProperties::default()).await;
}

/// Starts a consumer with a server-generated tag.
pub async fn consumer(ch: &Channel, queue: &str, no_ack: bool) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

/// The next delivery, within [`WAIT`].
pub async fn next(c: &mut lapin::Consumer) -> lapin::message::Delivery {
    tokio::time::timeout(WAIT, c.next())
        .await
        .expect("a delivery in time")
        .expect("stream open")
        .expect("delivery ok")
}

/// Nothing more arrives within `ms`.
pub async fn nothing(c: &mut lapin::Consumer, ms: u64) {
    assert!(
        tokio::time::timeout(Duration::from_millis(ms), c.next())
            .await
            .is_err(),
        "unexpected delivery"
    );
}
