//! MQTT over WebSocket (subprotocol `mqtt`): packets split across and packed into WebSocket
//! messages, a WebSocket client talking to TCP clients, one session registry for both.

mod common;

use bytes::{Bytes, BytesMut};
use common::mqtt::{connect_packet, Raw, DEADLINE, V4};
use common::TestBroker;
use futures_util::{SinkExt, StreamExt};
use junction_mqtt::{
    Decoder, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

struct WsMqtt {
    ws: Ws,
    buf: BytesMut,
    dec: Decoder,
}

impl WsMqtt {
    async fn open(b: &TestBroker, path: &str) -> (WsMqtt, Option<String>) {
        let addr = b.listeners["mqtt-ws"];
        let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
        let (ws, resp) = tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(req))
            .await
            .unwrap()
            .unwrap();
        let proto = resp
            .headers()
            .get("sec-websocket-protocol")
            .map(|v| v.to_str().unwrap().to_string());
        let c = WsMqtt {
            ws,
            buf: BytesMut::new(),
            dec: Decoder::with_version(ProtocolVersion::V5, 1 << 20),
        };
        (c, proto)
    }

    fn bytes(p: &Packet) -> Vec<u8> {
        let mut b = BytesMut::new();
        junction_mqtt::encode(p, ProtocolVersion::V5, &mut b).unwrap();
        b.to_vec()
    }

    async fn send(&mut self, p: &Packet) {
        self.ws
            .send(Message::Binary(Self::bytes(p).into()))
            .await
            .unwrap();
    }

    /// The next packet; `None` when the broker closed.
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = self.dec.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let msg = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("a message in time");
            match msg {
                Some(Ok(Message::Binary(b))) => self.buf.extend_from_slice(&b),
                Some(Ok(Message::Text(_))) => panic!("MQTT over WebSocket is binary"),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }
}

#[tokio::test]
async fn a_websocket_client_talks_to_tcp_clients() {
    let b = TestBroker::start();
    let (mut ws, proto) = WsMqtt::open(&b, "/mqtt").await;
    assert_eq!(proto.as_deref(), Some("mqtt"));
    // CONNECT split over two WebSocket messages.
    let connect = WsMqtt::bytes(&Packet::Connect(Box::new(connect_packet(
        ProtocolVersion::V5,
        "browser",
        true,
    ))));
    let (a, rest) = connect.split_at(5);
    ws.ws
        .send(Message::Binary(a.to_vec().into()))
        .await
        .unwrap();
    ws.ws
        .send(Message::Binary(rest.to_vec().into()))
        .await
        .unwrap();
    match ws.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.code, ReasonCode::SUCCESS),
        other => panic!("{other:?}"),
    }
    ws.send(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Default::default(),
        subscriptions: vec![Subscription {
            filter: "ws/#".into(),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..Default::default()
            },
        }],
    }))
    .await;
    assert!(matches!(ws.recv().await, Some(Packet::SubAck(_))));

    let mut tcp = V4::connect(b.mqtt, "device").await;
    tcp.subscribe("from-browser", rumqttc::QoS::AtLeastOnce)
        .await;
    tcp.client
        .publish("ws/1", rumqttc::QoS::AtLeastOnce, false, "to the page")
        .await
        .unwrap();
    match ws.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!(
                (p.topic.as_str(), &p.payload[..]),
                ("ws/1", &b"to the page"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    // Two packets in one WebSocket message: a PUBLISH and a PINGREQ.
    let mut both = WsMqtt::bytes(&Packet::Publish(Publish {
        qos: QoS::AtLeastOnce,
        topic: "from-browser".into(),
        packet_id: Some(2),
        payload: Bytes::from_static(b"clicked"),
        ..Default::default()
    }));
    both.extend(WsMqtt::bytes(&Packet::PingReq));
    ws.ws.send(Message::Binary(both.into())).await.unwrap();
    let mut got = (false, false);
    while got != (true, true) {
        match ws.recv().await {
            Some(Packet::PubAck(a)) if a.packet_id == 2 => got.0 = true,
            Some(Packet::PingResp) => got.1 = true,
            Some(Packet::Publish(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(&tcp.publish().await.payload[..], b"clicked");

    // One session registry: a TCP connection with the same client id takes the session over.
    let (_tcp2, ack) =
        Raw::connect(b.mqtt, connect_packet(ProtocolVersion::V5, "browser", true)).await;
    assert_eq!(ack.code, ReasonCode::SUCCESS);
    match ws.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::SESSION_TAKEN_OVER),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn only_websocket_upgrades_on_known_paths() {
    let b = TestBroker::start();
    let addr = b.listeners["mqtt-ws"];
    let req = format!("ws://{addr}/elsewhere")
        .into_client_request()
        .unwrap();
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404)
        }
        other => panic!("expected 404, got {:?}", other.map(|_| ())),
    }
    // The broker still serves WebSocket clients on /ws.
    let (mut ws, _) = WsMqtt::open(&b, "/ws").await;
    ws.send(&Packet::Connect(Box::new(connect_packet(
        ProtocolVersion::V5,
        "ok",
        true,
    ))))
    .await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(_))));
}
