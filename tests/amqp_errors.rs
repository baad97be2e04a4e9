//! AMQP 0-9-1 end to end: channel and connection errors, server-sent cancel, transactions,
//! heartbeats, raw-wire misbehaviour, and messages crossing to and from the native protocol.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::amqp::*;
use common::TestBroker;
use futures_lite::StreamExt;
use junction_amqp::amq_protocol::protocol::{
    basic, channel as chan, confirm, connection, queue, AMQPClass,
};
use junction_amqp::amq_protocol::types::{FieldTable as RawTable, LongString};
use junction_amqp::{
    encode_content, encode_header_from_properties, encode_method, FrameDecoder, FramePayload,
    PROTOCOL_HEADER,
};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn consumer_of_a_deleted_queue_gets_basic_cancel() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(&ch, "doomed", Default::default(), FieldTable::default()).await;
    let mut cons = consumer(&ch, &q, true).await;
    let other = channel(&c).await;
    other
        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let end = tokio::time::timeout(WAIT, cons.next())
        .await
        .expect("cancel in time");
    assert!(end.is_none(), "the consumer stream ends on basic.cancel");
    // The channel itself stays usable.
    let q2 = declare_with(&ch, "after", Default::default(), FieldTable::default()).await;
    assert_eq!(q2, "after");
}

#[tokio::test]
async fn exclusive_queue_from_another_connection_is_resource_locked() {
    let b = TestBroker::start();
    let c1 = connect(&b).await;
    let ch1 = channel(&c1).await;
    let excl = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let q = declare_with(&ch1, "mine", excl, FieldTable::default()).await;
    // Another channel of the same connection may use it.
    let ch1b = channel(&c1).await;
    declare_with(&ch1b, "mine", excl, FieldTable::default()).await;

    let c2 = connect(&b).await;
    let ch2 = channel(&c2).await;
    let e = ch2
        .basic_consume(
            q.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("refused");
    assert_eq!(code(&e), Some(405), "{e}");
    assert!(
        c2.status().connected(),
        "a channel error keeps the connection"
    );

    publish(&ch1, "", &q, b"still mine").await;
    let mut cons = consumer(&ch1, &q, true).await;
    assert_eq!(next(&mut cons).await.data, b"still mine");
}

#[tokio::test]
async fn redeclare_with_other_arguments_is_precondition_failed() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
    declare_with(&ch, "ttl", Default::default(), args).await;
    let mut other = FieldTable::default();
    other.insert("x-message-ttl".into(), AMQPValue::LongInt(2000));
    let e = ch
        .queue_declare("ttl".into(), Default::default(), other)
        .await
        .expect_err("refused");
    assert_eq!(code(&e), Some(406), "{e}");
    assert!(!ch.status().connected(), "the channel is closed");
    assert!(c.status().connected(), "the connection is not");
    let ch2 = channel(&c).await;
    let mut same = FieldTable::default();
    same.insert("x-message-ttl".into(), AMQPValue::LongInt(1000));
    declare_with(&ch2, "ttl", Default::default(), same).await;
}

#[tokio::test]
async fn tx_commit_publishes_and_rollback_discards() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(&ch, "txq", Default::default(), FieldTable::default()).await;
    ch.tx_select().await.unwrap();
    publish(&ch, "", &q, b"rolled back").await;
    ch.tx_rollback().await.unwrap();
    publish(&ch, "", &q, b"committed").await;
    let info = ch
        .queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(info.message_count(), 0, "nothing before the commit");
    ch.tx_commit().await.unwrap();
    let reader = channel(&c).await;
    let mut cons = consumer(&reader, &q, true).await;
    assert_eq!(next(&mut cons).await.data, b"committed");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), cons.next())
            .await
            .is_err(),
        "the rolled back publish never arrives"
    );
}

#[tokio::test]
async fn heartbeat_is_negotiated_and_keeps_an_idle_connection_open() {
    let b = TestBroker::start();
    let c = connect_uri(&format!("amqp://guest:guest@{}/%2f?heartbeat=1", b.amqp)).await;
    assert_eq!(c.configuration().heartbeat(), 1);
    let ch = channel(&c).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert!(c.status().connected());
    let q = declare_with(&ch, "", Default::default(), FieldTable::default()).await;
    assert!(!q.is_empty());
}

/// A raw client: handshake with PLAIN guest/guest, `frame_max` and `heartbeat` proposed.
struct Raw {
    s: TcpStream,
    buf: BytesMut,
    dec: FrameDecoder,
}

impl Raw {
    async fn open(b: &TestBroker, frame_max: u32, heartbeat: u16) -> Raw {
        let mut s = TcpStream::connect(b.amqp).await.unwrap();
        s.write_all(&PROTOCOL_HEADER).await.unwrap();
        let mut r = Raw {
            s,
            buf: BytesMut::new(),
            dec: FrameDecoder::new(1 << 20),
        };
        assert!(matches!(
            r.method().await,
            Some(AMQPClass::Connection(connection::AMQPMethod::Start(_)))
        ));
        r.send(AMQPClass::Connection(connection::AMQPMethod::StartOk(
            connection::StartOk {
                client_properties: RawTable::default(),
                mechanism: "PLAIN".into(),
                response: LongString::from(&b"\0guest\0guest"[..]),
                locale: "en_US".into(),
            },
        )))
        .await;
        assert!(matches!(
            r.method().await,
            Some(AMQPClass::Connection(connection::AMQPMethod::Tune(_)))
        ));
        r.send(AMQPClass::Connection(connection::AMQPMethod::TuneOk(
            connection::TuneOk {
                channel_max: 0,
                frame_max,
                heartbeat,
            },
        )))
        .await;
        r.send(AMQPClass::Connection(connection::AMQPMethod::Open(
            connection::Open {
                virtual_host: "/".into(),
            },
        )))
        .await;
        assert!(matches!(
            r.method().await,
            Some(AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)))
        ));
        r
    }

    async fn send(&mut self, m: AMQPClass) {
        self.send_on(0, m).await;
    }

    async fn send_on(&mut self, channel: u16, m: AMQPClass) {
        let mut out = BytesMut::new();
        encode_method(channel, &m, &mut out).unwrap();
        self.s.write_all(&out).await.unwrap();
    }

    /// `basic.publish` to the default exchange with a body, on `channel`.
    async fn publish(&mut self, channel: u16, rk: &str, body: &'static [u8]) {
        let header = encode_header_from_properties(
            60,
            body.len() as u64,
            &junction_amqp::BasicProperties::default(),
        )
        .unwrap();
        self.publish_raw(channel, rk, header, body).await;
    }

    /// `basic.publish` with a content header given as its raw payload.
    async fn publish_raw(&mut self, channel: u16, rk: &str, header: Bytes, body: &'static [u8]) {
        self.send_on(
            channel,
            AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                exchange: "".into(),
                routing_key: rk.into(),
                mandatory: false,
                immediate: false,
            })),
        )
        .await;
        let body = Bytes::from_static(body);
        let mut out = BytesMut::new();
        encode_content(channel, &header, &body, 4096, &mut out).unwrap();
        self.s.write_all(&out).await.unwrap();
    }

    /// The next content header's raw payload, skipping other frames.
    async fn content_header(&mut self) -> Bytes {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.dec.decode(&mut self.buf).unwrap() {
                    Some(f) => {
                        if let FramePayload::Header(h) = f.payload {
                            return h.raw;
                        }
                    }
                    None => {
                        assert!(self.s.read_buf(&mut self.buf).await.unwrap() > 0, "EOF");
                    }
                }
            }
        })
        .await
        .expect("a content header in time")
    }

    /// Opens channel 1.
    async fn open_channel(&mut self) {
        self.send_on(1, AMQPClass::Channel(chan::AMQPMethod::Open(chan::Open {})))
            .await;
        assert!(matches!(
            self.method().await,
            Some(AMQPClass::Channel(chan::AMQPMethod::OpenOk(_)))
        ));
    }

    /// The next method, skipping heartbeats; `None` at EOF.
    async fn method(&mut self) -> Option<AMQPClass> {
        tokio::time::timeout(WAIT, async {
            loop {
                match self.dec.decode(&mut self.buf).unwrap() {
                    Some(f) => {
                        if let FramePayload::Method(m) = f.payload {
                            return Some(m);
                        }
                    }
                    None => {
                        if self.s.read_buf(&mut self.buf).await.ok()? == 0 {
                            return None;
                        }
                    }
                }
            }
        })
        .await
        .expect("an answer in time")
    }
}

#[tokio::test]
async fn garbage_protocol_header_gets_the_0_9_1_header_and_a_close() {
    let b = TestBroker::start();
    let mut s = TcpStream::connect(b.amqp).await.unwrap();
    s.write_all(b"HTTP/1.1").await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut got))
        .await
        .expect("closed in time")
        .unwrap();
    assert_eq!(got, PROTOCOL_HEADER);
}

#[tokio::test]
async fn a_frame_over_frame_max_closes_with_501_and_others_keep_working() {
    let b = TestBroker::start();
    let healthy = connect(&b).await;
    let hch = channel(&healthy).await;
    let mut raw = Raw::open(&b, 4096, 0).await;
    // A method frame header announcing 10000 octets on channel 1.
    let mut frame = vec![1u8, 0, 1];
    frame.extend_from_slice(&10_000u32.to_be_bytes());
    raw.s.write_all(&frame).await.unwrap();
    match raw.method().await {
        Some(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 501, "{}", c.reply_text.as_str())
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
    let q = declare_with(&hch, "", Default::default(), FieldTable::default()).await;
    publish(&hch, "", &q, b"fine").await;
    let mut cons = consumer(&hch, &q, true).await;
    assert_eq!(next(&mut cons).await.data, b"fine");
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_two_missed_heartbeats() {
    let b = TestBroker::start();
    let mut raw = Raw::open(&b, 0, 1).await;
    let started = std::time::Instant::now();
    // Heartbeats arrive (skipped by `method`), then EOF once the server gives up.
    assert!(raw.method().await.is_none());
    assert!(started.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn native_publish_is_consumed_over_amqp_and_back() {
    use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    declare_with(&ch, "bridge", Default::default(), FieldTable::default()).await;
    let native = Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap();
    native
        .producer()
        .send(
            &Destination::queue("bridge"),
            Message::new("from native").content_type("text/plain"),
        )
        .await
        .unwrap();
    let mut cons = consumer(&ch, "bridge", true).await;
    let d = next(&mut cons).await;
    assert_eq!(d.data, b"from native");
    assert_eq!(
        d.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("text/plain")
    );

    declare_with(&ch, "back", Default::default(), FieldTable::default()).await;
    ch.basic_publish(
        "".into(),
        "back".into(),
        BasicPublishOptions::default(),
        b"from amqp",
        BasicProperties::default().with_content_type("application/json".into()),
    )
    .await
    .unwrap();
    let mut nc = native
        .subscribe(ConsumerOptions::new("back").no_ack(true))
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, nc.next())
        .await
        .expect("in time")
        .expect("open")
        .unwrap();
    assert_eq!(d.body, Bytes::from_static(b"from amqp"));
    assert_eq!(
        d.properties.content_type.as_deref(),
        Some("application/json")
    );
}

#[tokio::test]
async fn publishes_during_the_disk_alarm_are_held_then_confirmed_not_nacked() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_in(
        dir.path(),
        &[
            ("JUNCTION_STORE_DISK_LOW_WATERMARK", "9223372036854775807"),
            ("RUST_LOG", "info,junction::gateway=debug"),
        ],
    );
    // A raw client announces no connection.blocked capability: it is not told, only held.
    let mut raw = Raw::open(&b, 4096, 0).await;
    raw.open_channel().await;
    raw.send_on(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    assert!(matches!(
        raw.method().await,
        Some(AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_)))
    ));
    raw.send_on(
        1,
        AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "full-disk".into(),
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            nowait: false,
            arguments: RawTable::default(),
        })),
    )
    .await;
    assert!(matches!(
        raw.method().await,
        Some(AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));
    raw.publish(1, "full-disk", b"held").await;
    b.logged("publishing connection blocked by a resource alarm")
        .await;
    assert_eq!(b.queue_depth("full-disk").await, 0);
    b.disk_alarm_off().await;
    // RabbitMQ nacked nothing either: the first answer is the confirm.
    match raw.method().await {
        Some(AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => assert_eq!(a.delivery_tag, 1),
        other => panic!("expected basic.ack, got {other:?}"),
    }
    assert_eq!(b.queue_depth("full-disk").await, 1);
}

#[tokio::test]
async fn publish_on_channel_0_is_a_504_connection_error() {
    let b = TestBroker::start();
    let mut raw = Raw::open(&b, 4096, 0).await;
    raw.publish(0, "q", b"x").await;
    match raw.method().await {
        Some(AMQPClass::Connection(connection::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 504, "{}", c.reply_text.as_str())
        }
        other => panic!("expected connection.close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_over_the_record_limit_closes_the_channel_with_406() {
    let dir = tempfile::tempdir().unwrap();
    let b = TestBroker::start_in(dir.path(), &[("JUNCTION_STORE_MAX_RECORD_SIZE", "65536")]);
    let c = connect(&b).await;
    let ch = channel(&c).await;
    let q = declare_with(&ch, "limited", Default::default(), FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let big = vec![7u8; 200_000];
    let r = match ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            &big,
            BasicProperties::default(),
        )
        .await
    {
        Ok(pc) => tokio::time::timeout(WAIT, pc)
            .await
            .expect("an answer in time"),
        Err(e) => Err(e),
    };
    let e = r.expect_err("refused");
    assert_eq!(code(&e), Some(406), "{e}");
    assert!(c.status().connected());
    let ch2 = channel(&c).await;
    publish(&ch2, "", &q, b"small").await;
    let mut cons = consumer(&ch2, &q, true).await;
    assert_eq!(next(&mut cons).await.data, b"small");
}

#[tokio::test]
async fn an_amqp_content_header_is_delivered_byte_for_byte() {
    let b = TestBroker::start();
    let c = connect(&b).await;
    let ch = channel(&c).await;
    declare_with(&ch, "exact", Default::default(), FieldTable::default()).await;
    let mut raw = Raw::open(&b, 4096, 0).await;
    raw.open_channel().await;
    // Headers table {"b": true, "a": false}: keys out of order, which a re-encoding would sort.
    let body: &'static [u8] = b"exact";
    let mut h = vec![0u8, 60, 0, 0];
    h.extend_from_slice(&(body.len() as u64).to_be_bytes());
    h.extend_from_slice(&0x2000u16.to_be_bytes());
    let table = [1u8, b'b', b't', 1, 1, b'a', b't', 0];
    h.extend_from_slice(&(table.len() as u32).to_be_bytes());
    h.extend_from_slice(&table);
    let header = Bytes::from(h);
    raw.publish_raw(1, "exact", header.clone(), body).await;
    raw.send_on(
        1,
        AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "exact".into(),
            consumer_tag: "t".into(),
            no_local: false,
            no_ack: true,
            exclusive: false,
            nowait: false,
            arguments: RawTable::default(),
        })),
    )
    .await;
    assert_eq!(raw.content_header().await, header);
}
