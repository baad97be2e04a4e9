//! Authorization is the same in every protocol: vhost access, configure/write/read, topic
//! permissions and the connection, channel and queue limits, each refused with the protocol's
//! own error (AMQP channel.close / connection.close codes, MQTT CONNACK/SUBACK/PUBACK reason
//! codes, STOMP ERROR frames, native error frames). Users, permissions and limits are set
//! through the HTTP API, as an operator would.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::stomp::StompClient;
use common::TestBroker;
use junction_native::ErrorCode;
use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, SdkError};
use junction_stomp::{Command, Frame};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode, Packet as P5, PubAckReason, SubscribeReasonCode,
};
use rumqttc::v5::mqttbytes::QoS;

const WAIT: Duration = Duration::from_secs(20);

/// One admin API call as guest; panics unless it succeeded.
fn api(b: &TestBroker, method: &str, path: &str, body: serde_json::Value) {
    let url = format!("http://{}{path}", b.http);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let auth = "Basic Z3Vlc3Q6Z3Vlc3Q=";
    let r = match method {
        "PUT" => agent
            .put(&url)
            .header("Authorization", auth)
            .send_json(&body),
        _ => unreachable!(),
    }
    .expect("the API answers");
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
}

/// Adds `user` (password `pw`) with these permissions on `/`.
fn user(b: &TestBroker, user: &str, configure: &str, write: &str, read: &str) {
    api(
        b,
        "PUT",
        &format!("/api/users/{user}"),
        serde_json::json!({"password": "pw"}),
    );
    if !(configure.is_empty() && write.is_empty() && read.is_empty()) {
        api(
            b,
            "PUT",
            &format!("/api/permissions/%2F/{user}"),
            serde_json::json!({"configure": configure, "write": write, "read": read}),
        );
    }
}

async fn amqp(b: &TestBroker, user: &str) -> lapin::Result<Connection> {
    tokio::time::timeout(
        WAIT,
        Connection::connect(
            &format!("amqp://{user}:pw@{}/%2f", b.amqp),
            ConnectionProperties::default(),
        ),
    )
    .await
    .expect("AMQP answer in time")
}

fn amqp_code(e: &lapin::Error) -> Option<u16> {
    common::amqp::code(e)
}

/// An MQTT 5 client of `user` (password `pw`, or `guest` for guest) and its CONNACK's reason
/// code, as rumqttc names it.
async fn mqtt(addr: SocketAddr, user: &str, id: &str) -> (common::mqtt::V5, String) {
    let mut o = common::mqtt::v5_options(addr, id);
    o.set_credentials(user, if user == "guest" { "guest" } else { "pw" });
    let mut c = common::mqtt::V5::start(o);
    let code = match c.next().await {
        Ok(P5::ConnAck(a)) => format!("{:?}", a.code),
        // rumqttc reports a refusing CONNACK as an error naming the code.
        Err(e) => e,
        other => panic!("expected CONNACK, got {other:?}"),
    };
    (c, code)
}

async fn mqtt_suback(c: &mut common::mqtt::V5, filter: &str) -> SubscribeReasonCode {
    c.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    c.until(|p| match p {
        P5::SubAck(a) => Some(a.return_codes[0]),
        _ => None,
    })
    .await
}

async fn mqtt_puback(c: &mut common::mqtt::V5, topic: &str) -> PubAckReason {
    c.client
        .publish(topic, QoS::AtLeastOnce, false, b"x".to_vec())
        .await
        .unwrap();
    c.until(|p| match p {
        P5::PubAck(a) => Some(a.reason),
        _ => None,
    })
    .await
}

async fn stomp(b: &TestBroker, user: &str) -> StompClient {
    let mut c = StompClient::raw(b.stomp).await;
    c.login(Some("1.2"), Some((user, "pw")), &[]).await;
    c
}

/// Sends `f` and expects an ERROR whose message mentions `needle`.
async fn stomp_refused(c: &mut StompClient, f: Frame, needle: &str) {
    c.send(f.with_header("receipt", "r")).await;
    let e = c.expect_error_and_close().await;
    let text = format!("{:?} {}", e.headers, String::from_utf8_lossy(&e.body));
    assert!(text.contains(needle), "ERROR without '{needle}': {text}");
}

async fn native(b: &TestBroker, user: &str) -> Result<Client, SdkError> {
    Client::connect(ClientOptions::new(b.native.to_string()).credentials(user, "pw")).await
}

/// The error of a call that must fail.
fn refused<T>(r: Result<T, SdkError>) -> SdkError {
    match r {
        Ok(_) => panic!("not refused"),
        Err(e) => e,
    }
}

fn native_code(e: &SdkError) -> Option<ErrorCode> {
    match e {
        SdkError::Server { code, .. } => Some(*code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_access_is_refused_in_every_protocol() {
    let b = TestBroker::start();
    // A user with no permissions on "/".
    user(&b, "outsider", "", "", "");
    let e = amqp(&b, "outsider").await.unwrap_err();
    assert_eq!(amqp_code(&e), Some(530), "{e}");
    let (_c, code) = mqtt(b.mqtt, "outsider", "o1").await;
    assert!(code.contains("NotAuthorized"), "{code}");
    let mut s = StompClient::raw(b.stomp).await;
    s.send(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "/")
            .with_header("login", "outsider")
            .with_header("passcode", "pw"),
    )
    .await;
    let e = s.expect_error_and_close().await;
    assert!(String::from_utf8_lossy(&e.body).contains("outsider"));
    let e = refused(native(&b, "outsider").await);
    assert_eq!(native_code(&e), Some(ErrorCode::AccessRefused), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_write_and_read_are_refused_in_every_protocol() {
    let b = TestBroker::start();
    user(&b, "noconf", "", ".*", ".*");
    user(&b, "nowrite", ".*", "", ".*");
    user(&b, "noread", ".*", ".*", "");
    // A queue for the write and read cases, declared by guest.
    let g = common::amqp::connect(&b).await;
    let gch = common::amqp::channel(&g).await;
    common::amqp::declare(&gch, "shared").await;

    // AMQP: 403 ACCESS_REFUSED closes the channel.
    let c = amqp(&b, "noconf").await.unwrap();
    let ch = c.create_channel().await.unwrap();
    let e = ch
        .queue_declare(
            "mine".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(amqp_code(&e), Some(403), "{e}");
    let c = amqp(&b, "nowrite").await.unwrap();
    let ch = c.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let r = ch
        .basic_publish(
            "".into(),
            "shared".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    let e = match r {
        Err(e) => e,
        Ok(pc) => pc.await.unwrap_err(),
    };
    assert_eq!(amqp_code(&e), Some(403), "{e}");
    let c = amqp(&b, "noread").await.unwrap();
    let ch = c.create_channel().await.unwrap();
    let e = ch
        .basic_consume(
            "shared".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(amqp_code(&e), Some(403), "{e}");

    // MQTT 5: a subscription needs configure (its session queue) and read (amq.topic);
    // a publish needs write on amq.topic.
    let (mut c, _) = mqtt(b.mqtt, "noconf", "nc").await;
    assert_eq!(
        mqtt_suback(&mut c, "a/b").await,
        SubscribeReasonCode::NotAuthorized
    );
    let (mut c, _) = mqtt(b.mqtt, "noread", "nr").await;
    assert_eq!(
        mqtt_suback(&mut c, "a/b").await,
        SubscribeReasonCode::NotAuthorized
    );
    let (mut c, _) = mqtt(b.mqtt, "nowrite", "nw").await;
    assert_eq!(
        mqtt_puback(&mut c, "a/b").await,
        PubAckReason::NotAuthorized
    );

    // STOMP: an ERROR frame naming the refused access.
    let mut s = stomp(&b, "noconf").await;
    let sub = Frame::new(Command::Subscribe)
        .with_header("id", "1")
        .with_header("destination", "/queue/new-one");
    stomp_refused(&mut s, sub, "configure access").await;
    let mut s = stomp(&b, "nowrite").await;
    let send = Frame::new(Command::Send)
        .with_header("destination", "/amq/queue/shared")
        .with_body(&b"x"[..]);
    stomp_refused(&mut s, send, "write access").await;
    let mut s = stomp(&b, "noread").await;
    let sub = Frame::new(Command::Subscribe)
        .with_header("id", "1")
        .with_header("destination", "/amq/queue/shared");
    stomp_refused(&mut s, sub, "read access").await;

    // Native: error frames with AccessRefused.
    let c = native(&b, "noconf").await.unwrap();
    let e = c.admin().create_topic("mine", 1).await.unwrap_err();
    assert_eq!(native_code(&e), Some(ErrorCode::AccessRefused), "{e}");
    let c = native(&b, "nowrite").await.unwrap();
    let e = c
        .producer()
        .send(&Destination::queue("shared"), Message::new("x"))
        .await
        .unwrap_err();
    assert_eq!(native_code(&e), Some(ErrorCode::AccessRefused), "{e}");
    let c = native(&b, "noread").await.unwrap();
    let e = refused(c.subscribe(ConsumerOptions::new("shared")).await);
    assert_eq!(native_code(&e), Some(ErrorCode::AccessRefused), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_permissions_apply_to_every_protocol() {
    let b = TestBroker::start();
    user(&b, "dev", ".*", ".*", ".*");
    // dev may publish and subscribe under devices.dev. only (MQTT devices/dev/...).
    api(
        &b,
        "PUT",
        "/api/topic-permissions/%2F/dev",
        serde_json::json!({"exchange": "amq.topic", "write": "^devices\\.{username}\\.", "read": "^devices\\.{username}\\."}),
    );

    // MQTT 5: allowed topics work, others get NotAuthorized in SUBACK and PUBACK.
    let (mut c, code) = mqtt(b.mqtt, "dev", "dev-1").await;
    assert_eq!(code, format!("{:?}", ConnectReturnCode::Success));
    assert_eq!(
        mqtt_suback(&mut c, "devices/dev/#").await,
        SubscribeReasonCode::Success(QoS::AtLeastOnce)
    );
    assert_eq!(
        mqtt_suback(&mut c, "devices/other/#").await,
        SubscribeReasonCode::NotAuthorized
    );
    assert_eq!(
        mqtt_suback(&mut c, "#").await,
        SubscribeReasonCode::NotAuthorized
    );
    // A second client publishes, so the first's PUBLISH cannot overtake a PUBACK awaited.
    let (mut p, _) = mqtt(b.mqtt, "dev", "dev-2").await;
    assert_ne!(
        mqtt_puback(&mut p, "devices/dev/temp").await,
        PubAckReason::NotAuthorized
    );
    let got = c.publish().await;
    assert_eq!(&got.topic[..], b"devices/dev/temp");
    assert_eq!(
        mqtt_puback(&mut p, "devices/other/temp").await,
        PubAckReason::NotAuthorized
    );

    // AMQP: publish to amq.topic with a refused routing key, and a refused binding: 403.
    let conn = amqp(&b, "dev").await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    let q = common::amqp::declare(&ch, "dev-q").await;
    let e = ch
        .queue_bind(
            q.as_str().into(),
            "amq.topic".into(),
            "devices.other.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(amqp_code(&e), Some(403), "{e}");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let ok = ch
        .basic_publish(
            "amq.topic".into(),
            "devices.dev.x".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(ok.is_ack());
    let r = ch
        .basic_publish(
            "amq.topic".into(),
            "devices.other.x".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await;
    let e = match r {
        Err(e) => e,
        Ok(pc) => pc.await.unwrap_err(),
    };
    assert_eq!(amqp_code(&e), Some(403), "{e}");

    // STOMP: /topic/ destinations are amq.topic routing keys.
    let mut s = stomp(&b, "dev").await;
    s.subscribe("1", "/topic/devices.dev.#", "auto", &[]).await;
    let sub = Frame::new(Command::Subscribe)
        .with_header("id", "2")
        .with_header("destination", "/topic/devices.other.#");
    stomp_refused(&mut s, sub, "topic 'devices.other.#'").await;
    let mut s = stomp(&b, "dev").await;
    let send = Frame::new(Command::Send)
        .with_header("destination", "/topic/devices.other.x")
        .with_body(&b"x"[..]);
    stomp_refused(&mut s, send, "topic 'devices.other.x'").await;

    // Native: a publish to amq.topic with a refused routing key.
    let c = native(&b, "dev").await.unwrap();
    let p = c.producer();
    p.send(
        &Destination::exchange("amq.topic", "devices.dev.n"),
        Message::new("x"),
    )
    .await
    .unwrap();
    let e = p
        .send(
            &Destination::exchange("amq.topic", "devices.other.n"),
            Message::new("x"),
        )
        .await
        .unwrap_err();
    assert_eq!(native_code(&e), Some(ErrorCode::AccessRefused), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_channel_and_queue_limits_are_enforced() {
    let b = TestBroker::start();
    user(&b, "one", ".*", ".*", ".*");
    api(
        &b,
        "PUT",
        "/api/user-limits/one/max-connections",
        serde_json::json!({"value": 1}),
    );

    // AMQP: the second connection of the user is refused (530 NOT_ALLOWED).
    let first = amqp(&b, "one").await.unwrap();
    let e = amqp(&b, "one").await.unwrap_err();
    assert_eq!(amqp_code(&e), Some(530), "{e}");
    // MQTT 5: CONNACK Quota Exceeded.
    let (_c, code) = mqtt(b.mqtt, "one", "one-1").await;
    assert!(code.contains("QuotaExceeded"), "{code}");
    // STOMP: ERROR naming the limit.
    let mut s = StompClient::raw(b.stomp).await;
    s.send(
        Frame::new(Command::Connect)
            .with_header("accept-version", "1.2")
            .with_header("host", "/")
            .with_header("login", "one")
            .with_header("passcode", "pw"),
    )
    .await;
    let e = s.expect_error_and_close().await;
    assert!(
        String::from_utf8_lossy(&e.body).contains("connection limit"),
        "{e:?}"
    );
    // Native: ResourceError.
    let e = refused(native(&b, "one").await);
    assert_eq!(native_code(&e), Some(ErrorCode::ResourceError), "{e}");
    // Once the first closes, the user may connect again.
    first.close(200, "bye".into()).await.unwrap();
    let again = async {
        loop {
            if let Ok(c) = amqp(&b, "one").await {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, again)
        .await
        .expect("a free slot again");

    // Channels: at most 2 for this user, over all its connections.
    user(&b, "chan", ".*", ".*", ".*");
    api(
        &b,
        "PUT",
        "/api/user-limits/chan/max-channels",
        serde_json::json!({"value": 2}),
    );
    let c = amqp(&b, "chan").await.unwrap();
    // (Held: lapin closes a channel when its handle drops.)
    let _one = c.create_channel().await.unwrap();
    let _two = c.create_channel().await.unwrap();
    let e = c.create_channel().await.unwrap_err();
    assert_eq!(amqp_code(&e), Some(530), "{e}");

    // Queues: at most as many as the vhost already has plus one.
    let g = common::amqp::connect(&b).await;
    let gch = common::amqp::channel(&g).await;
    let existing = {
        let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
        let v: serde_json::Value = agent
            .get(format!("http://{}/api/queues/%2F", b.http))
            .header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap();
        v.as_array().unwrap().len()
    };
    api(
        &b,
        "PUT",
        "/api/vhost-limits/%2F/max-queues",
        serde_json::json!({"value": existing + 1}),
    );
    common::amqp::declare(&gch, "last-one").await;
    let e = gch
        .queue_declare(
            "one-too-many".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(amqp_code(&e), Some(506), "{e}");
    // The same limit refuses an MQTT subscription's session queue and a native topic.
    let (mut m, _) = mqtt(b.mqtt, "chan", "q-limit").await;
    assert_eq!(
        mqtt_suback(&mut m, "x/y").await,
        SubscribeReasonCode::QuotaExceeded
    );
    let n = native(&b, "chan").await.unwrap();
    let e = n.admin().create_topic("too-many", 1).await.unwrap_err();
    assert_eq!(native_code(&e), Some(ErrorCode::ResourceError), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_and_frame_size_limits_get_each_protocols_error() {
    let b = TestBroker::start_with(&[
        ("JUNCTION_MQTT_MAX_PACKET_SIZE", "65536"),
        ("JUNCTION_STOMP_MAX_FRAME", "65536"),
        ("JUNCTION_LIMITS_MAX_FRAME", "65536"),
    ]);
    let big = vec![b'x'; 100 << 10];
    // AMQP: a body over the largest record (4 MiB in tests) closes the channel with 406.
    let c = common::amqp::connect(&b).await;
    let ch = common::amqp::channel(&c).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    common::amqp::declare(&ch, "big").await;
    let huge = vec![b'x'; 5 << 20];
    let r = ch
        .basic_publish(
            "".into(),
            "big".into(),
            BasicPublishOptions::default(),
            &huge,
            BasicProperties::default(),
        )
        .await;
    let e = match r {
        Err(e) => e,
        Ok(pc) => pc.await.unwrap_err(),
    };
    assert_eq!(amqp_code(&e), Some(406), "{e}");

    // MQTT 5 clients learn the maximum from CONNACK (rumqttc then refuses to send more);
    let (_m, code) = mqtt(b.mqtt, "guest", "big").await;
    assert_eq!(code, format!("{:?}", ConnectReturnCode::Success));
    // a 3.1.1 client sending a packet over it is disconnected (3.1.1 has no reason codes).
    let mut o = common::mqtt::v4_options(b.mqtt, "big3");
    o.set_max_packet_size(1 << 20, 1 << 20);
    let m = common::mqtt::V4::with(o).await;
    m.client
        .publish("big", rumqttc::QoS::AtLeastOnce, false, big.clone())
        .await
        .unwrap();
    let mut m = m;
    let end = loop {
        match m.next().await {
            Ok(rumqttc::Packet::PubAck(_)) => panic!("an oversized publish was accepted"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(!end.is_empty());

    // STOMP: a frame over max_frame gets an ERROR.
    let mut s = StompClient::connect(b.stomp).await;
    let f = Frame::new(Command::Send)
        .with_header("destination", "/queue/big")
        .with_body(big.clone());
    s.send(f).await;
    let e = s.expect_error_and_close().await;
    assert_eq!(e.command, Command::Error);

    // Native: a frame over max_frame gets an error frame.
    let mut r = common::RawClient::connect(b.native).await;
    let w = r.hello("guest", "guest").await;
    assert!(matches!(w.body, junction_native::Body::Welcome(_)), "{w:?}");
    let mut header = Vec::new();
    header.extend_from_slice(&(200_000u32).to_be_bytes());
    header.extend_from_slice(&[0u8; 16]);
    r.send_raw(&header).await;
    let f = r.recv().await.expect("an error frame");
    match f.body {
        junction_native::Body::Error(e) => assert_eq!(e.code, ErrorCode::FrameError, "{e:?}"),
        other => panic!("expected an error frame, got {other:?}"),
    }
}
