//! Connection-level behavior against the fake server: handshake, pipelining, admin, heartbeats,
//! reconnects and closing.

mod common;

use std::time::Duration;

use common::{within, Behavior, FakeServer};
use futures_util::future::join_all;
use junction_native::{Body, Close, ErrorCode, ExchangeKind, Frame, StartPosition};
use junction_sdk::{
    Client, ConsumerOptions, ExchangeOptions, QueueOptions, ReconnectOptions, SdkError,
};

fn is<T>(f: &Frame, pick: impl FnOnce(&Body) -> Option<T>) -> Option<T> {
    pick(&f.body)
}

#[tokio::test]
async fn connects_and_reports_the_server() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options().client_id("t-1").vhost("/v"))
        .await
        .unwrap();
    let hello = server
        .expect("Hello", |_, f| {
            is(f, |b| match b {
                Body::Hello(h) => Some((f.request_id, h.clone())),
                _ => None,
            })
        })
        .await;
    assert_eq!(hello.0, 1, "Hello uses request id 1");
    assert_eq!(hello.1.client_id, "t-1");
    assert_eq!(hello.1.vhost, "/v");
    assert_eq!(
        (hello.1.username.as_str(), hello.1.password.as_str()),
        ("guest", "guest")
    );
    assert!(client.is_connected());
    let info = client.server_info().unwrap();
    assert_eq!(info.server, "fake");
    assert_eq!(info.session_id, 1);
}

#[tokio::test]
async fn auth_failure_is_access_refused() {
    let server = FakeServer::start().await;
    let err = Client::connect(server.options().credentials("bad", "x"))
        .await
        .unwrap_err();
    match err {
        SdkError::Server { code, message } => {
            assert_eq!(code, ErrorCode::AccessRefused);
            assert_eq!(message, "bad credentials");
        }
        other => panic!("expected AccessRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_failure_and_bad_options() {
    // A port nothing listens on: bind, learn the port, drop the listener.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = Client::connect(junction_sdk::ClientOptions::new(addr.to_string()))
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Io(_)), "{err:?}");
    let err = Client::connect(junction_sdk::ClientOptions::new(""))
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Config(_)), "{err:?}");
}

#[tokio::test]
async fn pipelined_requests_get_their_own_answers_out_of_order() {
    let server = FakeServer::with(Behavior {
        reverse_offsets_in_groups: 16,
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options()).await.unwrap();
    let calls = (0..64i64).map(|i| {
        let client = client.clone();
        async move { (i, client.offset_for_time("q", 0, i).await) }
    });
    let results = within("64 pipelined requests", join_all(calls)).await;
    for (i, r) in results {
        assert_eq!(
            r.unwrap(),
            i as u64 + 1000,
            "request {i} got another's answer"
        );
    }
    // The server really answered out of order: the first request id it saw was answered last
    // within its group, which only works if the client correlates by id.
    let ids: Vec<u32> = server
        .drain()
        .await
        .into_iter()
        .filter(|(_, f)| matches!(f.body, Body::QueryOffset(_)))
        .map(|(_, f)| f.request_id)
        .collect();
    assert_eq!(ids.len(), 64);
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 64, "request ids are unique");
    assert!(ids.iter().all(|id| *id > 1), "ids after Hello, never 0");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase on the wire"
    );
}

#[tokio::test]
async fn admin_requests() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let admin = client.admin();

    admin
        .declare_exchange("events", ExchangeKind::Topic, ExchangeOptions::durable())
        .await
        .unwrap();
    let ex = server
        .expect("DeclareExchange", |_, f| match &f.body {
            Body::DeclareExchange(d) => Some(d.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (ex.name.as_str(), ex.kind, ex.durable),
        ("events", ExchangeKind::Topic, true)
    );

    let err = admin
        .declare_exchange(
            "forbidden",
            ExchangeKind::Direct,
            ExchangeOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::AccessRefused));

    let info = admin
        .declare_queue(
            QueueOptions::new("orders")
                .partitions(4)
                .message_ttl(Duration::from_secs(2))
                .dead_letter("dlx", "dead"),
        )
        .await
        .unwrap();
    assert_eq!((info.name.as_str(), info.partitions), ("orders", 4));
    let q = server
        .expect("DeclareQueue", |_, f| match &f.body {
            Body::DeclareQueue(d) => Some(d.clone()),
            _ => None,
        })
        .await;
    assert!(q.durable);
    assert!(q.args.contains(&(
        "x-message-ttl".to_string(),
        bytes::Bytes::from_static(b"2000")
    )));
    assert!(q.args.contains(&(
        "x-dead-letter-routing-key".to_string(),
        bytes::Bytes::from_static(b"dead")
    )));

    let topic = admin.create_topic("clicks", 16).await.unwrap();
    assert_eq!(topic.partitions, 16);
    let err = admin
        .declare_queue(QueueOptions::new("missing").passive(true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SdkError::Server {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{err:?}"
    );

    admin.bind("orders", "events", "order.#").await.unwrap();
    admin.unbind("orders", "events", "order.#").await.unwrap();
    admin.bind_exchange("audit", "events", "#").await.unwrap();
    let b = server
        .expect("exchange binding", |_, f| match &f.body {
            Body::Bind(b) if b.destination_is_exchange => Some(b.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (b.destination.as_str(), b.exchange.as_str()),
        ("audit", "events")
    );
    assert_eq!(admin.purge_queue("orders").await.unwrap(), 3);
    assert_eq!(admin.delete_queue("orders").await.unwrap(), 3);
    admin.delete_exchange("events").await.unwrap();

    let pulled = client.pull("clicks", 2, 10, 5).await.unwrap();
    assert_eq!(pulled.messages.len(), 3);
    assert_eq!(pulled.messages[0].offset, 10);
    assert_eq!(pulled.next_offset, 13);
}

#[tokio::test]
async fn heartbeat_is_sent_when_idle() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options().heartbeat(Duration::from_millis(100)))
        .await
        .unwrap();
    assert_eq!(
        client.server_info().unwrap().heartbeat,
        Duration::from_millis(100)
    );
    server
        .expect("a client heartbeat", |_, f| {
            (f.body == Body::Heartbeat && f.request_id == 0).then_some(())
        })
        .await;
    assert_eq!(server.connections(), 1, "heartbeats keep the connection up");
    assert!(client.is_connected());
}

#[tokio::test]
async fn a_silent_server_is_declared_dead_and_replaced() {
    let server = FakeServer::with(Behavior {
        server_heartbeats: false,
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options().heartbeat(Duration::from_millis(100)))
        .await
        .unwrap();
    // Nothing comes from the server for two intervals: the client reconnects.
    server
        .expect("a second Hello", |conn, f| {
            (conn == 2 && matches!(f.body, Body::Hello(_))).then_some(())
        })
        .await;
    drop(client);
}

#[tokio::test]
async fn reconnect_fails_in_flight_requests_and_resubscribes_consumers() {
    let server = FakeServer::with(Behavior {
        deliveries_on_subscribe: 3,
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options()).await.unwrap();
    let mut consumer = client
        .subscribe(
            ConsumerOptions::new("q")
                .group("g")
                .prefetch(7)
                .start(StartPosition::Earliest),
        )
        .await
        .unwrap();
    // Take two of the three deliveries; the third stays buffered in the consumer.
    let mut old = Vec::new();
    for _ in 0..2 {
        old.push(
            within("a delivery", consumer.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(old.iter().map(|d| d.offset).collect::<Vec<_>>(), vec![0, 1]);

    // A request the server never answers is in flight when the connection drops.
    let pending = {
        let client = client.clone();
        tokio::spawn(async move { client.offset_for_time("q", 0, -1).await })
    };
    server
        .expect("the unanswered request", |conn, f| {
            (conn == 1 && matches!(f.body, Body::QueryOffset(_))).then_some(())
        })
        .await;
    server.drop_connection(1);
    let err = within("the in-flight request", pending)
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(err, SdkError::ConnectionLost), "{err:?}");

    // The client comes back and re-subscribes with the same settings from the committed offset.
    let sub = server
        .expect("a re-subscription", |conn, f| match &f.body {
            Body::Subscribe(s) if conn == 2 => Some(s.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        (sub.queue.as_str(), sub.group.as_str(), sub.prefetch),
        ("q", "g", 7)
    );
    assert_eq!(sub.start, StartPosition::Committed);
    assert_eq!(client.reconnects(), 1);

    // The stream goes on with deliveries of the new connection, without an error in between;
    // the buffered delivery of the dead connection (offset 2, which the broker redelivers) is
    // not handed out.
    let mut new = Vec::new();
    for _ in 0..3 {
        new.push(
            within("a delivery after reconnect", consumer.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(
        new.iter().map(|d| d.offset).collect::<Vec<_>>(),
        vec![3, 4, 5]
    );

    // An ack for a delivery of the dead connection is dropped; the new one goes out alone.
    old[1].ack().await.unwrap();
    new[0].ack().await.unwrap();
    let acked = server
        .expect("an ack on the new connection", |conn, f| match &f.body {
            Body::Ack(a) if conn == 2 => Some(a.delivery_ids.clone()),
            _ => None,
        })
        .await;
    assert_eq!(acked, vec![new[0].delivery_id()]);

    // And requests work again.
    assert_eq!(client.offset_for_time("q", 0, 5).await.unwrap(), 1005);
}

#[tokio::test]
async fn server_close_is_answered_and_the_client_reconnects() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    server.push(
        1,
        Close {
            code: ErrorCode::ConnectionForced.code(),
            reason: "shutting down".into(),
        },
    );
    server
        .expect("CloseOk from the client", |conn, f| {
            (conn == 1 && f.body == Body::CloseOk).then_some(())
        })
        .await;
    server
        .expect("a new Hello", |conn, f| {
            (conn == 2 && matches!(f.body, Body::Hello(_))).then_some(())
        })
        .await;
    within("reconnected", client.wait_connected(common::WAIT))
        .await
        .unwrap();
    assert_eq!(client.offset_for_time("q", 0, 1).await.unwrap(), 1001);
}

#[tokio::test]
async fn without_reconnect_a_drop_closes_the_client() {
    let server = FakeServer::with(Behavior {
        deliveries_on_subscribe: 1,
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options().reconnect(ReconnectOptions::disabled()))
        .await
        .unwrap();
    let mut consumer = client.subscribe(ConsumerOptions::new("q")).await.unwrap();
    within("a delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();
    server.drop_connection(1);
    let end = within("the stream's end", consumer.next()).await;
    assert!(
        matches!(end, Some(Err(SdkError::ConnectionLost))),
        "{end:?}"
    );
    assert!(within("None", consumer.next()).await.is_none());
    assert!(client.is_closed());
    let err = client.offset_for_time("q", 0, 1).await.unwrap_err();
    assert!(matches!(err, SdkError::Closed), "{err:?}");
}

#[tokio::test]
async fn close_handshake() {
    let server = FakeServer::with(Behavior {
        deliveries_on_subscribe: 1,
        ..Default::default()
    })
    .await;
    let client = Client::connect(server.options()).await.unwrap();
    let mut consumer = client.subscribe(ConsumerOptions::new("q")).await.unwrap();
    within("a delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();

    within("close", client.close()).await.unwrap();
    let close = server
        .expect("Close", |_, f| match &f.body {
            Body::Close(c) => Some(c.clone()),
            _ => None,
        })
        .await;
    assert_eq!(close.code, Close::NORMAL);
    assert!(client.is_closed());
    assert!(!client.is_connected());
    assert!(within("the stream's end", consumer.next()).await.is_none());
    let err = client.admin().delete_queue("q").await.unwrap_err();
    assert!(matches!(err, SdkError::Closed), "{err:?}");
    let err = client
        .producer()
        .send(&"q".into(), "x".into())
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::Closed), "{err:?}");
    // Closing again is harmless, and no reconnection happened.
    client.close().await.unwrap();
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn connection_error_push_triggers_a_reconnect() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    server.push(
        1,
        junction_native::ErrorResponse::new(ErrorCode::InternalError, "boom"),
    );
    server.drop_connection(1);
    server
        .expect("a new Hello", |conn, f| {
            (conn == 2 && matches!(f.body, Body::Hello(_))).then_some(())
        })
        .await;
    within("reconnected", client.wait_connected(common::WAIT))
        .await
        .unwrap();
}

#[tokio::test]
async fn requests_made_while_reconnecting_wait_for_the_new_connection() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    server.refuse_connections(true);
    server.drop_connection(1);
    within("the drop to be noticed", async {
        while client.is_connected() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let request = {
        let client = client.clone();
        tokio::spawn(async move { client.offset_for_time("q", 0, 7).await })
    };
    // Let a few attempts fail, then let the broker "come back".
    within("failed attempts", async {
        while server.refused() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    server.refuse_connections(false);
    assert_eq!(
        within("the queued request", request)
            .await
            .unwrap()
            .unwrap(),
        1007
    );
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn the_client_gives_up_after_max_attempts() {
    let server = FakeServer::with(Behavior {
        deliveries_on_subscribe: 1,
        ..Default::default()
    })
    .await;
    let mut options = server.options();
    options.reconnect.max_attempts = Some(3);
    let client = Client::connect(options).await.unwrap();
    let mut consumer = client.subscribe(ConsumerOptions::new("q")).await.unwrap();
    within("a delivery", consumer.next())
        .await
        .unwrap()
        .unwrap();
    server.refuse_connections(true);
    server.drop_connection(1);
    let end = within("the stream's end", consumer.next()).await;
    assert!(
        matches!(end, Some(Err(SdkError::ConnectionLost))),
        "{end:?}"
    );
    assert!(client.is_closed());
    assert_eq!(server.refused(), 3);
    let err = client.admin().purge_queue("q").await.unwrap_err();
    assert!(matches!(err, SdkError::Closed), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_changed_around_a_reconnect_is_kept() {
    let server = FakeServer::start().await;
    let client = Client::connect(server.options()).await.unwrap();
    let consumer = client
        .subscribe(ConsumerOptions::new("q").prefetch(7))
        .await
        .unwrap();
    server.drop_connection(1);
    // Whichever connection this reaches (or none, if it was in flight on the dead one), the
    // new subscription ends up with prefetch 42.
    match consumer.set_prefetch(42).await {
        Ok(()) | Err(SdkError::ConnectionLost) => {}
        Err(e) => panic!("{e:?}"),
    }
    let mut effective = None;
    while effective != Some(42) {
        effective = Some(
            server
                .expect("the prefetch on the new connection", |conn, f| {
                    match &f.body {
                        Body::Subscribe(s) if conn == 2 => Some(s.prefetch),
                        Body::SetPrefetch(s) if conn == 2 => Some(s.prefetch),
                        _ => None,
                    }
                })
                .await,
        );
    }
    drop(consumer);
}
