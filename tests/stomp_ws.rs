//! STOMP over WebSocket: the upgrade (paths, subprotocol choice), frames split across and
//! packed into WebSocket messages, text vs binary messages, and a WebSocket client talking to a
//! TCP client.

mod common;

use bytes::BytesMut;
use common::stomp::{text, StompClient, WAIT};
use common::TestBroker;
use futures_util::{SinkExt, StreamExt};
use junction_stomp::{encode, Command, Decoder, Frame, Version};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(b: &TestBroker, path: &str, offer: &str) -> (Ws, Option<String>) {
    let mut req = format!("ws://{}{path}", b.stomp_ws)
        .into_client_request()
        .unwrap();
    if !offer.is_empty() {
        req.headers_mut()
            .insert("sec-websocket-protocol", offer.parse().unwrap());
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .unwrap()
        .unwrap();
    let proto = resp
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, proto)
}

/// Reads WebSocket messages until one whole STOMP frame is decoded. Returns the frame and
/// whether the last message was text.
async fn next_frame(ws: &mut Ws, buf: &mut BytesMut, dec: &mut Decoder) -> (Frame, bool) {
    let mut was_text = false;
    loop {
        if let Some(f) = dec.decode_frame(buf).unwrap() {
            return (f, was_text);
        }
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("open")
            .unwrap();
        match msg {
            Message::Text(t) => {
                was_text = true;
                buf.extend_from_slice(t.as_bytes());
            }
            Message::Binary(b) => {
                was_text = false;
                buf.extend_from_slice(&b);
            }
            _ => {}
        }
    }
}

fn bytes_of(f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(f, Version::V1_2, &mut out).unwrap();
    out.to_vec()
}

#[tokio::test]
async fn stomp_over_websocket() {
    let b = TestBroker::start();
    let (mut ws, proto) = open(&b, "/ws", "v10.stomp, v12.stomp, v11.stomp").await;
    assert_eq!(proto.as_deref(), Some("v12.stomp"));
    let (mut buf, mut dec) = (BytesMut::new(), Decoder::new(Version::V1_2));
    // stomp.js style: one text message per frame.
    ws.send(Message::text(
        "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,0\n\n\0",
    ))
    .await
    .unwrap();
    let (connected, was_text) = next_frame(&mut ws, &mut buf, &mut dec).await;
    assert_eq!(connected.command, Command::Connected);
    assert!(was_text, "a UTF-8 frame goes as a text message");
    ws.send(Message::text(
        "SUBSCRIBE\nid:w\ndestination:/topic/web\nreceipt:sub\n\n\0",
    ))
    .await
    .unwrap();
    assert_eq!(
        next_frame(&mut ws, &mut buf, &mut dec).await.0.command,
        Command::Receipt
    );

    // A frame split across two binary messages, then two frames in one message.
    let frame = bytes_of(&Frame::send("/topic/web", "split").with_header("receipt", "s1"));
    let (a, z) = frame.split_at(10);
    ws.send(Message::binary(a.to_vec())).await.unwrap();
    ws.send(Message::binary(z.to_vec())).await.unwrap();
    let mut two = bytes_of(&Frame::send("/topic/web", "one"));
    two.extend(bytes_of(&Frame::send("/topic/web", "two")));
    ws.send(Message::binary(two)).await.unwrap();
    let mut bodies = Vec::new();
    while bodies.len() < 3 {
        let (f, _) = next_frame(&mut ws, &mut buf, &mut dec).await;
        if f.command == Command::Message {
            bodies.push(text(&f).to_string());
        }
    }
    assert_eq!(bodies, ["split", "one", "two"]);

    // A TCP client publishes a binary body: it arrives in a binary message, intact.
    let mut tcp = StompClient::connect(b.stomp).await;
    let body = vec![0u8, 159, 146, 150, 0, 255];
    tcp.publish("/topic/web", &body, &[]).await;
    let (m, was_text) = loop {
        // (the receipt of the split SEND may come after its message)
        let (f, t) = next_frame(&mut ws, &mut buf, &mut dec).await;
        if f.command == Command::Message {
            break (f, t);
        }
    };
    assert_eq!(&m.body[..], &body[..]);
    assert!(!was_text);

    // And the other way: WebSocket publishes, TCP receives.
    tcp.subscribe("t", "/queue/from-ws", "auto", &[]).await;
    ws.send(Message::text(
        "SEND\ndestination:/queue/from-ws\n\nhi tcp\0",
    ))
    .await
    .unwrap();
    assert_eq!(text(&tcp.message().await), "hi tcp");

    ws.send(Message::text("DISCONNECT\nreceipt:bye\n\n\0"))
        .await
        .unwrap();
    let (r, _) = next_frame(&mut ws, &mut buf, &mut dec).await;
    assert_eq!(r.header("receipt-id"), Some("bye"));
}

#[tokio::test]
async fn upgrade_paths_and_subprotocols() {
    let b = TestBroker::start();
    // `/` works too, and a client that offers no subprotocol is accepted without one.
    let (mut ws, proto) = open(&b, "/", "").await;
    assert_eq!(proto, None);
    ws.send(Message::text("CONNECT\naccept-version:1.1\nhost:/\n\n\0"))
        .await
        .unwrap();
    let (mut buf, mut dec) = (BytesMut::new(), Decoder::new(Version::V1_2));
    let (f, _) = next_frame(&mut ws, &mut buf, &mut dec).await;
    assert_eq!(f.header("version"), Some("1.1"));
    // v11.stomp only.
    let (_ws, proto) = open(&b, "/ws", "v11.stomp").await;
    assert_eq!(proto.as_deref(), Some("v11.stomp"));
    // Another path: 404.
    let req = format!("ws://{}/nope", b.stomp_ws)
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404)
        }
        other => panic!("expected 404, got {other:?}"),
    }
    // A bad frame over WebSocket: ERROR, then the server closes.
    let (mut ws, _) = open(&b, "/ws", "v12.stomp").await;
    ws.send(Message::text("BOGUS\n\n\0")).await.unwrap();
    let (mut buf, mut dec) = (BytesMut::new(), Decoder::new(Version::V1_2));
    let (f, _) = next_frame(&mut ws, &mut buf, &mut dec).await;
    assert_eq!(f.command, Command::Error);
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => {}
        }
    }
}
