//! Regenerates the fuzz seed corpus (`fuzz/corpus/`) from real client sessions: lapin,
//! rumqttc (3.1.1 and 5.0), a STOMP client and the native SDK talk to the broker through a
//! recording proxy, and each session's bytes, both ways, become seed files. Run by hand:
//!
//! ```text
//! cargo test --test fuzz_corpus -- --ignored
//! ```

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestBroker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Sessions = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

/// A proxy to `target` recording each connection's (client -> server, server -> client) bytes.
async fn proxy(target: SocketAddr) -> (SocketAddr, Sessions) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let sessions: Sessions = Arc::default();
    let s2 = Arc::clone(&sessions);
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            let server = TcpStream::connect(target).await.unwrap();
            let idx = {
                let mut s = s2.lock().unwrap();
                s.push((Vec::new(), Vec::new()));
                s.len() - 1
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (a, b) = (Arc::clone(&s2), Arc::clone(&s2));
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    a.lock().unwrap()[idx].0.extend_from_slice(&buf[..n]);
                }
                let _ = sw.shutdown().await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    b.lock().unwrap()[idx].1.extend_from_slice(&buf[..n]);
                }
                let _ = cw.shutdown().await;
            });
        }
    });
    (addr, sessions)
}

fn out_dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes each session's two directions as `<prefix>-<n>-{in,out}` under `target`, with
/// `lead` (a selector byte the target reads first) in front.
async fn save(sessions: &Sessions, target: &str, prefix: &str, lead: &[u8]) {
    // Let the proxy copy the last bytes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dir = out_dir(target);
    for (i, (c2s, s2c)) in sessions.lock().unwrap().iter().enumerate() {
        for (dirn, bytes) in [("in", c2s), ("out", s2c)] {
            if bytes.is_empty() {
                continue;
            }
            let mut v = lead.to_vec();
            v.extend_from_slice(bytes);
            std::fs::write(dir.join(format!("{prefix}-{i}-{dirn}")), v).unwrap();
        }
    }
}

/// AMQP method and content-header payloads of a byte stream of frames, for `amqp_method`.
fn amqp_payloads(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut s = stream
        .strip_prefix(b"AMQP\x00\x00\x09\x01")
        .unwrap_or(stream);
    let mut out = Vec::new();
    while s.len() >= 8 {
        let ty = s[0];
        let size = u32::from_be_bytes([s[3], s[4], s[5], s[6]]) as usize;
        if s.len() < 8 + size {
            break;
        }
        if ty == 1 || ty == 2 {
            out.push(s[7..7 + size].to_vec());
        }
        s = &s[8 + size..];
    }
    out
}

#[tokio::test]
#[ignore = "run by hand to regenerate fuzz/corpus"]
async fn capture_real_client_sessions() {
    let b = TestBroker::start();

    // AMQP: lapin with confirms, properties, headers, a consumer and acks.
    {
        use lapin::options::*;
        use lapin::types::{AMQPValue, FieldTable};
        let (addr, sessions) = proxy(b.amqp).await;
        let conn = common::amqp::connect_uri(&format!("amqp://guest:guest@{addr}/%2f")).await;
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
        let q = common::amqp::declare(&ch, "corpus").await;
        let mut headers = FieldTable::default();
        headers.insert("x-n".into(), AMQPValue::LongInt(7));
        headers.insert("x-s".into(), AMQPValue::LongString("v".into()));
        let props = lapin::BasicProperties::default()
            .with_content_type("text/plain".into())
            .with_delivery_mode(2)
            .with_message_id("m-1".into())
            .with_headers(headers);
        for body in [&b"a"[..], &[7u8; 300][..]] {
            ch.basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                body,
                props.clone(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        let mut c = common::amqp::consumer(&ch, &q, false).await;
        for _ in 0..2 {
            let d = common::amqp::next(&mut c).await;
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
        conn.close(200, "bye".into()).await.unwrap();
        save(&sessions, "amqp_frames", "lapin", &[1]).await;
        let dir = out_dir("amqp_method");
        for (i, p) in sessions
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(c, s)| amqp_payloads(c).into_iter().chain(amqp_payloads(s)))
            .enumerate()
        {
            std::fs::write(dir.join(format!("lapin-{i}")), p).unwrap();
        }
    }

    // MQTT 3.1.1 and 5.0: rumqttc, QoS 0, 1 and 2, retained, a subscription.
    {
        use rumqttc::QoS;
        let (addr, sessions) = proxy(b.mqtt).await;
        let mut s = common::mqtt::V4::connect(addr, "corpus-sub").await;
        s.subscribe("corpus/#", QoS::ExactlyOnce).await;
        let p = common::mqtt::V4::connect(addr, "corpus-pub").await;
        for (qos, retain) in [
            (QoS::AtMostOnce, false),
            (QoS::AtLeastOnce, true),
            (QoS::ExactlyOnce, false),
        ] {
            p.client
                .publish("corpus/a", qos, retain, b"payload".to_vec())
                .await
                .unwrap();
            s.publish().await;
        }
        p.disconnect().await;
        s.disconnect().await;
        save(&sessions, "mqtt_v3", "rumqttc-v4", &[0]).await;
    }
    {
        use rumqttc::v5::mqttbytes::QoS;
        let (addr, sessions) = proxy(b.mqtt).await;
        let mut s = common::mqtt::V5::connect(addr, "corpus5-sub").await;
        s.subscribe("corpus5/#", QoS::ExactlyOnce).await;
        let p = common::mqtt::V5::connect(addr, "corpus5-pub").await;
        let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v".into())],
            message_expiry_interval: Some(60),
            ..Default::default()
        };
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            p.client
                .publish_with_properties("corpus5/a", qos, false, b"p5".to_vec(), props.clone())
                .await
                .unwrap();
            s.publish().await;
        }
        p.disconnect().await;
        s.disconnect().await;
        save(&sessions, "mqtt_v5", "rumqttc-v5", &[0]).await;
    }

    // STOMP 1.2: CONNECT, SUBSCRIBE, SEND with receipts and headers, ACK, DISCONNECT.
    {
        use junction_stomp::{Command, Frame};
        let (addr, sessions) = proxy(b.stomp).await;
        let mut c = common::stomp::StompClient::connect(addr).await;
        c.subscribe("1", "/queue/corpus", "client-individual", &[])
            .await;
        c.send_with_receipt(
            Frame::new(Command::Send)
                .with_header("destination", "/queue/corpus")
                .with_header("content-type", "text/plain")
                .with_header("x-escaped", "a\\cb\\nc")
                .with_body(&b"hello stomp"[..]),
        )
        .await;
        let m = c.message().await;
        c.ack(Command::Ack, &m, &[]).await;
        c.send_with_receipt(Frame::new(Command::Disconnect)).await;
        save(&sessions, "stomp_frames", "stomp12", &[2]).await;
    }

    // Native: the SDK's producer and consumer.
    {
        use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message};
        let (addr, sessions) = proxy(b.native).await;
        let client = Client::connect(ClientOptions::new(addr.to_string()))
            .await
            .unwrap();
        client
            .admin()
            .create_topic("corpus-native", 2)
            .await
            .unwrap();
        let p = client.producer();
        for i in 0..3 {
            p.send(
                &Destination::queue("corpus-native"),
                Message::new(format!("native {i}")).sharding_key("k"),
            )
            .await
            .unwrap();
        }
        let mut c = client
            .subscribe(ConsumerOptions::new("corpus-native").group("g"))
            .await
            .unwrap();
        for _ in 0..3 {
            let d = tokio::time::timeout(Duration::from_secs(20), c.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            d.ack().await.unwrap();
        }
        drop(c);
        drop(client);
        save(&sessions, "native_frames", "sdk", &[]).await;
    }
}
