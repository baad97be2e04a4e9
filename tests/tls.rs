//! TLS on every listener: AMQPS with lapin, MQTTS with rumqttc, STOMP over TLS, native over
//! TLS, HTTPS, and both WebSocket listeners over TLS (WSS); client certificates verified
//! against the configured CA, and certificate login (EXTERNAL / ssl_cert_login). Certificates
//! are made for each test with rcgen.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::stomp::StompClient;
use common::tls::Pki;
use common::TestBroker;
use futures_lite::StreamExt;
use futures_util::SinkExt;
use junction_stomp::{Command, Frame};
use lapin::options::*;
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const WAIT: Duration = Duration::from_secs(30);

/// A broker with every TLS listener on port 0 and the test CA's server certificate.
fn start(pki: &Pki) -> TestBroker {
    let mut env = pki.broker_env();
    for (k, v) in [
        ("JUNCTION_NATIVE_TLS_ENABLED", "true"),
        ("JUNCTION_NATIVE_TLS_LISTEN", "127.0.0.1:0"),
        ("JUNCTION_AMQP_TLS_ENABLED", "true"),
        ("JUNCTION_AMQP_TLS_LISTEN", "127.0.0.1:0"),
        ("JUNCTION_MQTT_TLS_ENABLED", "true"),
        ("JUNCTION_MQTT_TLS_LISTEN", "127.0.0.1:0"),
        ("JUNCTION_MQTT_WSS_ENABLED", "true"),
        ("JUNCTION_MQTT_WSS_LISTEN", "127.0.0.1:0"),
        ("JUNCTION_STOMP_TLS_ENABLED", "true"),
        ("JUNCTION_STOMP_TLS_LISTEN", "127.0.0.1:0"),
        ("JUNCTION_STOMP_WSS_ENABLED", "true"),
        ("JUNCTION_STOMP_WSS_LISTEN", "127.0.0.1:0"),
        ("JUNCTION_HTTP_TLS_ENABLED", "true"),
        ("JUNCTION_HTTP_TLS_LISTEN", "127.0.0.1:0"),
    ] {
        env.push((k.into(), v.into()));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    TestBroker::start_with(&env)
}

fn port(b: &TestBroker, name: &str) -> SocketAddr {
    *b.listeners.get(name).unwrap_or_else(|| panic!("no {name}"))
}

/// One HTTP/1.1 request over TLS as guest; returns (status, body).
async fn https(pki: &Pki, addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = pki
        .connect(addr, None)
        .await
        .expect("TLS to the HTTPS listener");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out))
        .await
        .expect("HTTPS answer in time");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

/// Creates `user` (password `pw`) with full permissions on `/`, through the HTTPS listener.
async fn add_user(pki: &Pki, b: &TestBroker, user: &str) {
    let addr = port(b, "https");
    let (st, t) = https(
        pki,
        addr,
        "PUT",
        &format!("/api/users/{user}"),
        r#"{"password":"pw"}"#,
    )
    .await;
    assert!(st == 201 || st == 204, "{t}");
    let perms = r#"{"configure":".*","write":".*","read":".*"}"#;
    let (st, t) = https(
        pki,
        addr,
        "PUT",
        &format!("/api/permissions/%2F/{user}"),
        perms,
    )
    .await;
    assert!(st == 201 || st == 204, "{t}");
}

fn ca_only(pki: &Pki) -> OwnedTLSConfig {
    OwnedTLSConfig {
        identity: None,
        cert_chain: Some(pki.ca_pem.clone()),
    }
}

async fn lapin_connect(uri: &str, tls: OwnedTLSConfig) -> lapin::Result<Connection> {
    let rt = lapin::runtime::default_runtime().expect("tokio runtime");
    tokio::time::timeout(
        WAIT,
        Connection::connect_with_config(uri, ConnectionProperties::default(), tls, rt),
    )
    .await
    .expect("AMQPS connect in time")
}

#[tokio::test]
async fn amqps_with_lapin_publishes_with_confirms_and_consumes() {
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    let uri = format!(
        "amqps://guest:guest@127.0.0.1:{}/%2f",
        port(&b, "amqps").port()
    );
    let conn = lapin_connect(&uri, ca_only(&pki)).await.expect("amqps");
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        "tls-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "tls-q".into(),
            BasicPublishOptions::default(),
            b"over TLS",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "{confirm:?}");
    let mut consumer = ch
        .basic_consume(
            "tls-q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a delivery in time")
        .unwrap()
        .unwrap();
    assert_eq!(d.data, b"over TLS");
    d.ack(BasicAckOptions::default()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn amqps_external_logs_in_as_the_certificate_cn() {
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    add_user(&pki, &b, "alice").await;
    let uri = format!(
        "amqps://127.0.0.1:{}/%2f?auth_mechanism=external",
        port(&b, "amqps").port()
    );
    let identity = |cn: &str| {
        let c = pki.client(cn);
        OwnedTLSConfig {
            identity: Some(OwnedIdentity::PKCS8 {
                pem: c.cert_pem.into_bytes(),
                key: c.key_pem.into_bytes(),
            }),
            cert_chain: Some(pki.ca_pem.clone()),
        }
    };
    let conn = lapin_connect(&uri, identity("alice"))
        .await
        .expect("EXTERNAL login as alice");
    let ch = conn.create_channel().await.unwrap();
    ch.queue_declare(
        "alice-q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // The connection is alice's, as the API lists it.
    let (_, listing) = https(&pki, port(&b, "https"), "GET", "/api/connections", "").await;
    assert!(listing.contains(r#""user":"alice""#), "{listing}");
    // A certificate naming no user is refused like a bad password (403 at start-ok).
    let err = lapin_connect(&uri, identity("mallory")).await.unwrap_err();
    assert!(!err.to_string().is_empty());
    // Without a client certificate EXTERNAL is not offered at all.
    let err = lapin_connect(&uri, ca_only(&pki)).await.unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_in_the_handshake() {
    let pki = Pki::new("Junction test CA");
    let other = Pki::new("Someone else's CA");
    let b = start(&pki);
    // The client trusts the server (pki's CA) but presents a certificate of another CA.
    let stranger = other.client("guest");
    match pki.connect(port(&b, "stomps"), Some(&stranger)).await {
        Err(_) => {}
        Ok(mut s) => {
            // TLS 1.3: the server's refusal arrives as an alert on the client's first read.
            let mut buf = [0u8; 64];
            let r = tokio::time::timeout(WAIT, async {
                let _ = s.write_all(b"CONNECT\n\n\0").await;
                s.read(&mut buf).await
            })
            .await
            .expect("an answer in time");
            assert!(
                matches!(r, Err(_) | Ok(0)),
                "a client with an unknown CA's certificate was served: {r:?}"
            );
        }
    }
    // The same client with a certificate of the configured CA is served.
    let good = pki.client("guest");
    let s = pki.connect(port(&b, "stomps"), Some(&good)).await.unwrap();
    let mut c = StompClient::over(s);
    c.login(Some("1.2"), None, &[]).await;
}

#[tokio::test]
async fn mqtts_with_rumqttc_publishes_and_receives() {
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    let addr = port(&b, "mqtts");
    let opts = |id: &str, cert: Option<&common::tls::ClientCert>| {
        let mut o = common::mqtt::v4_options(addr, id);
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(pki.client_config(cert)),
        ));
        o
    };
    let mut sub = common::mqtt::V4::with(opts("tls-sub", None)).await;
    sub.subscribe("tls/#", rumqttc::QoS::AtLeastOnce).await;
    let publ = common::mqtt::V4::with(opts("tls-pub", None)).await;
    publ.client
        .publish(
            "tls/a",
            rumqttc::QoS::AtLeastOnce,
            false,
            b"secret".to_vec(),
        )
        .await
        .unwrap();
    let p = sub.publish().await;
    assert_eq!(p.topic, "tls/a");
    assert_eq!(&p.payload[..], b"secret");

    // ssl_cert_login: no user name, the certificate's CN (an existing user) logs in.
    add_user(&pki, &b, "sensor-7").await;
    let cert = pki.client("sensor-7");
    // (Anonymous clients would be guest: the listing below tells the two apart.)
    let c = common::mqtt::V4::with(opts("by-cert", Some(&cert))).await;
    let (_, listing) = https(&pki, port(&b, "https"), "GET", "/api/connections", "").await;
    assert!(listing.contains(r#""user":"sensor-7""#), "{listing}");
    c.disconnect().await;
    let unknown = pki.client("nobody");
    let mut c = common::mqtt::V4::start(opts("unknown-cert", Some(&unknown)));
    match c.next().await {
        Ok(rumqttc::Packet::ConnAck(a)) => {
            assert_eq!(a.code, rumqttc::ConnectReturnCode::BadUserNamePassword)
        }
        Err(e) => assert!(e.contains("BadUserNamePassword"), "{e}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn stomp_over_tls_sends_with_receipt_and_receives() {
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    let s = pki.connect(port(&b, "stomps"), None).await.unwrap();
    let mut c = StompClient::over(s);
    c.login(Some("1.2"), Some(("guest", "guest")), &[]).await;
    c.subscribe("1", "/queue/tls", "client-individual", &[])
        .await;
    let receipt = c
        .send_with_receipt(
            Frame::new(Command::Send)
                .with_header("destination", "/queue/tls")
                .with_body(&b"hello over TLS"[..]),
        )
        .await;
    assert_eq!(receipt.command, Command::Receipt);
    let m = c.message().await;
    assert_eq!(&m.body[..], b"hello over TLS");
    c.ack(Command::Ack, &m, &[]).await;

    // ssl_cert_login: CONNECT without login, as the certificate's CN.
    add_user(&pki, &b, "carol").await;
    let cert = pki.client("carol");
    let s = pki.connect(port(&b, "stomps"), Some(&cert)).await.unwrap();
    let mut c = StompClient::over(s);
    c.login(Some("1.2"), None, &[]).await;
    let (_, listing) = https(&pki, port(&b, "https"), "GET", "/api/connections", "").await;
    assert!(listing.contains(r#""user":"carol""#), "{listing}");
}

#[tokio::test]
async fn native_protocol_over_tls() {
    use junction_native as wire;
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    let mut s = pki.connect(port(&b, "native-tls"), None).await.unwrap();
    let hello = wire::Frame::new(
        1,
        wire::Hello {
            client_id: "tls".into(),
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            heartbeat_ms: 0,
            max_frame: 0,
        },
    );
    s.write_all(&hello.to_bytes().unwrap()).await.unwrap();
    let mut dec = wire::Decoder::new(wire::DEFAULT_MAX_FRAME);
    let mut buf = bytes::BytesMut::new();
    let f = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(f) = dec.decode(&mut buf).unwrap() {
                return f;
            }
            assert!(s.read_buf(&mut buf).await.unwrap() > 0, "closed");
        }
    })
    .await
    .expect("Welcome in time");
    assert!(matches!(f.body, wire::Body::Welcome(_)), "{f:?}");
}

#[tokio::test]
async fn https_serves_the_api() {
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    let (status, text) = https(&pki, port(&b, "https"), "GET", "/api/overview", "").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"amqps\""), "listeners listed: {text}");
}

/// A WebSocket session over TLS to `addr` with `subprotocol`.
async fn wss(
    pki: &Pki,
    addr: SocketAddr,
    path: &str,
    subprotocol: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tls = pki.connect(addr, None).await.unwrap();
    let mut req = format!("wss://127.0.0.1:{}{path}", addr.port())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", subprotocol.parse().unwrap());
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, tls))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    ws
}

#[tokio::test]
async fn mqtt_and_stomp_over_secure_websocket() {
    let pki = Pki::new("Junction test CA");
    let b = start(&pki);
    // MQTT 3.1.1 CONNECT (clean session, keep alive 60, client id "w") -> CONNACK accepted.
    let mut ws = wss(&pki, port(&b, "mqtt-wss"), "/mqtt", "mqtt").await;
    let connect = [
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 1, b'w',
    ];
    ws.send(WsMessage::binary(connect.to_vec())).await.unwrap();
    let m = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("CONNACK in time")
        .unwrap()
        .unwrap();
    assert_eq!(&m.into_data()[..], &[0x20, 2, 0, 0]);

    let mut ws = wss(&pki, port(&b, "stomp-wss"), "/ws", "v12.stomp").await;
    ws.send(WsMessage::text(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0",
    ))
    .await
    .unwrap();
    let m = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("CONNECTED in time")
        .unwrap()
        .unwrap();
    assert!(m.into_text().unwrap().starts_with("CONNECTED\n"));
}
