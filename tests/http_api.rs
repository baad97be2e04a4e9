//! The HTTP admin API and `/metrics` against the real broker: every endpoint, the 401/403/404
//! cases, and the figures after real AMQP and native clients published and consumed.

mod common;

use std::time::{Duration, Instant};

use common::amqp::{channel, connect, consumer, declare, next, publish, WAIT};
use common::http::{blocking, eventually, Api};
use common::TestBroker;
use futures_lite::StreamExt;
use serde_json::{json, Value};

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The value of a metric line `name{labels} value` in an exposition, if present.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn authentication_and_users_vhosts_permissions() {
    let b = TestBroker::start();
    let guest = Api::new(&b, "guest", "guest");

    // 401 without, with wrong and with unknown credentials, with a Basic challenge.
    let a = Api::anonymous(&b).get("/api/overview");
    assert!(a.headers.get("www-authenticate").is_some());
    assert_eq!(a.error(401), "not_authorised");
    Api::new(&b, "guest", "nope")
        .get("/api/overview")
        .error(401);
    Api::new(&b, "nobody", "x").get("/api/whoami").error(401);

    let me = guest.get("/api/whoami").expect(200);
    assert_eq!(me, json!({"name": "guest", "tags": ["administrator"]}));
    let o = guest.get("/api/overview").expect(200);
    assert_eq!(o["product_name"], "Junction");
    assert_eq!(o["product_version"], env!("CARGO_PKG_VERSION"));
    let protocols: Vec<&str> = o["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(
        protocols,
        ["native", "amqp", "mqtt", "mqtt-ws", "stomp", "stomp-ws", "http"]
    );
    assert_eq!(o["alarms"]["memory"], false);
    assert_eq!(o["alarms"]["disk"], false);

    // Users.
    guest
        .put("/api/users/alice", json!({"password": "a-pass"}))
        .expect(201);
    guest
        .put(
            "/api/users/alice",
            json!({"password": "a-pass", "tags": ""}),
        )
        .expect(204);
    guest
        .put("/api/users/carol", json!({"tags": "monitoring"}))
        .error(400);
    guest
        .put("/api/users/alice", json!({"pasword": "typo"}))
        .error(400);
    let users = guest.get("/api/users").expect(200);
    assert_eq!(names(&users), ["guest", "alice"]);
    assert_eq!(
        users[1]["hashing_algorithm"],
        "rabbit_password_hashing_sha256"
    );
    guest.get("/api/users/nobody").error(404);

    // A user imported with a hash logs in with the password behind it.
    let hash = guest.get("/api/users/guest").expect(200)["password_hash"].clone();
    guest
        .put(
            "/api/users/bob",
            json!({"password_hash": hash, "tags": ["monitoring", "management"]}),
        )
        .expect(201);
    let bob = Api::new(&b, "bob", "guest");
    assert_eq!(
        bob.get("/api/whoami").expect(200)["tags"],
        json!(["monitoring", "management"])
    );

    // Alice has no tags and no permissions: she sees nothing and may change nothing.
    let alice = Api::new(&b, "alice", "a-pass");
    assert_eq!(alice.get("/api/vhosts").expect(200), json!([]));
    assert_eq!(alice.get("/api/users").error(403), "access_refused");
    alice.get("/api/users/alice").error(403);
    alice.get("/api/permissions").error(403);
    alice.put("/api/vhosts/mine", json!({})).error(403);
    alice.get("/api/queues/%2F").error(403);
    alice.get("/api/exchanges/%2F").error(403);
    alice.get("/api/bindings/%2F").error(403);
    alice.put("/api/queues/%2F/alice.q", json!({})).error(403);
    // A monitoring user sees every vhost's objects but changes nothing.
    assert_eq!(names(&bob.get("/api/vhosts").expect(200)), ["/"]);
    bob.get("/api/queues/%2F").expect(200);
    bob.delete("/api/users/alice").error(403);

    // Permissions.
    guest
        .put(
            "/api/permissions/%2F/alice",
            json!({"configure": "^alice\\.", "write": ".*", "read": ".*"}),
        )
        .expect(201);
    guest
        .put(
            "/api/permissions/%2F/alice",
            json!({"configure": "^alice\\..*", "write": ".*", "read": ".*"}),
        )
        .expect(204);
    guest
        .put(
            "/api/permissions/%2F/alice",
            json!({"configure": "(", "write": "", "read": ""}),
        )
        .error(400);
    guest
        .put(
            "/api/permissions/nope/alice",
            json!({"configure": "", "write": "", "read": ""}),
        )
        .error(404);
    guest
        .put(
            "/api/permissions/%2F/nobody",
            json!({"configure": "", "write": "", "read": ""}),
        )
        .error(404);
    let p = guest.get("/api/permissions/%2F/alice").expect(200);
    assert_eq!(p["configure"], "^alice\\..*");
    assert_eq!(
        guest
            .get("/api/permissions")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(names(&alice.get("/api/vhosts").expect(200)), ["/"]);
    alice.put("/api/queues/%2F/alice.q", json!({})).expect(201);
    assert_eq!(
        alice.put("/api/queues/%2F/other", json!({})).error(403),
        "access_refused"
    );
    assert_eq!(
        names(&alice.get("/api/queues/%2F").expect(200)),
        ["alice.q"]
    );
    guest.delete("/api/permissions/%2F/alice").expect(204);
    guest.delete("/api/permissions/%2F/alice").error(404);
    guest.get("/api/permissions/%2F/alice").error(404);
    alice.get("/api/queues/%2F/alice.q").error(403);

    // Vhosts.
    guest.put("/api/vhosts/v2", json!({})).expect(201);
    guest.put("/api/vhosts/v2", json!({})).expect(204);
    assert_eq!(names(&guest.get("/api/vhosts").expect(200)), ["/", "v2"]);
    assert_eq!(guest.get("/api/vhosts/v2").expect(200)["name"], "v2");
    guest.get("/api/vhosts/nope").error(404);
    guest
        .put(
            "/api/permissions/v2/guest",
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        )
        .expect(201);
    guest.put("/api/queues/v2/q", json!({})).expect(201);
    guest.delete("/api/vhosts/v2").expect(204);
    guest.delete("/api/vhosts/v2").error(404);
    guest.get("/api/queues/v2").error(404);
    assert_eq!(
        guest
            .get("/api/permissions")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting a user ends their logins.
    guest.delete("/api/users/alice").expect(204);
    guest.delete("/api/users/alice").error(404);
    guest.get("/api/users/alice").error(404);
    alice.get("/api/whoami").error(401);

    // Unknown endpoints, wrong methods and malformed bodies are JSON errors too.
    guest.get("/api/nothing-here").error(404);
    guest.call("PATCH", "/api/overview", None).error(405);
    guest
        .call("PUT", "/api/users/x", Some("{not json"))
        .error(400);
    guest.get("/api/connections/not-a-number").error(400);

    // The OpenAPI document is served without credentials.
    let doc = Api::anonymous(&b).get("/api/openapi.json").expect(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/queues/{vhost}/{name}"].is_object());
    // Every documented operation is served (the router answers something other than "no such
    // endpoint" or 405).
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{vhost}", "probe")
            .replace("{id}", "1")
            .replace("{kind}", "q")
            .replace(['{', '}'], "");
        for method in ops.as_object().unwrap().keys() {
            let body = matches!(method.as_str(), "put" | "post").then_some("{}");
            let r = guest.call(&method.to_uppercase(), &concrete, body);
            assert_ne!(r.status, 405, "{method} {path}: {}", r.text);
            assert_ne!(r.json["reason"], "no such endpoint", "{method} {path}");
        }
    }

    // Every documented operation but the two public ones refuses a request without
    // credentials, or with a wrong password, with 401 and a Basic challenge; a script that
    // says so (the dashboard) gets its 401 without the challenge.
    let anonymous = Api::anonymous(&b);
    let wrong = Api::new(&b, "guest", "not-the-password");
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        if path == "/metrics" || path == "/api/openapi.json" {
            continue;
        }
        let concrete = path
            .replace("{vhost}", "%2F")
            .replace("{id}", "1")
            .replace("{kind}", "q")
            .replace(['{', '}'], "");
        for method in ops.as_object().unwrap().keys() {
            let body = matches!(method.as_str(), "put" | "post").then_some("{}");
            for api in [&anonymous, &wrong] {
                let r = api.call(&method.to_uppercase(), &concrete, body);
                assert_eq!(r.status, 401, "{method} {path}: {}", r.text);
                assert_eq!(r.json["error"], "not_authorised", "{method} {path}");
                assert_eq!(
                    r.headers
                        .get("www-authenticate")
                        .map(|v| v.to_str().unwrap()),
                    Some("Basic realm=\"Junction\""),
                    "{method} {path}"
                );
            }
            checked += 1;
        }
    }
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        checked,
        operations - 2,
        "every operation but the public two"
    );
    let scripted = blocking(|| {
        ureq::get(&format!("http://{}/api/overview", b.http))
            .header("x-requested-with", "XMLHttpRequest")
            .config()
            .http_status_as_error(false)
            .build()
            .call()
            .unwrap()
    });
    assert_eq!(scripted.status().as_u16(), 401);
    assert!(scripted.headers().get("www-authenticate").is_none());
}

#[test]
fn exchanges_queues_bindings_and_messages() {
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");

    // Exchanges.
    let xs = names(&api.get("/api/exchanges/%2F").expect(200));
    assert_eq!(
        xs,
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.topic"
        ]
    );
    api.put("/api/exchanges/%2F/orders", json!({"type": "topic"}))
        .expect(201);
    api.put("/api/exchanges/%2F/orders", json!({"type": "topic"}))
        .expect(204);
    assert_eq!(
        api.put("/api/exchanges/%2F/orders", json!({"type": "fanout"}))
            .error(409),
        "precondition_failed"
    );
    api.put("/api/exchanges/%2F/x", json!({"type": "nope"}))
        .error(400);
    api.put("/api/exchanges/%2F/amq.mine", json!({"type": "direct"}))
        .error(403);
    api.put("/api/exchanges/nope/x", json!({"type": "direct"}))
        .error(404);
    let x = api.get("/api/exchanges/%2F/orders").expect(200);
    assert_eq!(x["type"], "topic");
    assert_eq!(x["durable"], true);
    assert_eq!(
        api.get("/api/exchanges/%2F/amq.default").expect(200)["name"],
        ""
    );
    api.get("/api/exchanges/%2F/missing").error(404);
    assert_eq!(
        api.get("/api/exchanges")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        7
    );
    api.put(
        "/api/exchanges/%2F/audit",
        json!({"type": "fanout", "durable": false, "auto_delete": false, "internal": false, "arguments": {}}),
    )
    .expect(201);

    // Queues.
    api.put(
        "/api/queues/%2F/eu",
        json!({"durable": true, "arguments": {"x-max-length": 100}}),
    )
    .expect(201);
    api.put(
        "/api/queues/%2F/eu",
        json!({"durable": true, "arguments": {"x-max-length": 100}}),
    )
    .expect(204);
    api.put("/api/queues/%2F/eu", json!({"durable": false}))
        .error(409);
    api.put("/api/queues/%2F/all", json!({"partitions": 2}))
        .expect(201);
    let q = api.get("/api/queues/%2F/eu").expect(200);
    assert_eq!(q["arguments"], json!({"x-max-length": 100}));
    assert_eq!(q["messages"], 0);
    assert_eq!(api.get("/api/queues/%2F/all").expect(200)["partitions"], 2);
    api.get("/api/queues/%2F/missing").error(404);
    assert_eq!(names(&api.get("/api/queues").expect(200)), ["all", "eu"]);

    // Bindings: exchange to queue and exchange to exchange.
    let r = api.post(
        "/api/bindings/%2F/e/orders/q/eu",
        json!({"routing_key": "order.eu.*"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.headers.get("location").unwrap(), "order.eu.*");
    api.post(
        "/api/bindings/%2F/e/orders/e/audit",
        json!({"routing_key": "#"}),
    )
    .expect(201);
    api.post("/api/bindings/%2F/e/audit/q/all", json!({}))
        .expect(201);
    api.post("/api/bindings/%2F/e/missing/q/eu", json!({}))
        .error(404);
    api.post("/api/bindings/%2F/e/orders/q/missing", json!({}))
        .error(404);
    api.post("/api/bindings/%2F/e/orders/x/eu", json!({}))
        .error(404);
    let all = api.get("/api/bindings/%2F").expect(200);
    assert_eq!(all.as_array().unwrap().len(), 3);
    assert_eq!(api.get("/api/bindings").expect(200), all);
    let between = api.get("/api/bindings/%2F/e/orders/q/eu").expect(200);
    assert_eq!(between[0]["routing_key"], "order.eu.*");
    assert_eq!(between[0]["destination_type"], "queue");
    let one = api.get("/api/bindings/%2F/e/audit/q/all/~").expect(200);
    assert_eq!(one["source"], "audit");
    api.get("/api/bindings/%2F/e/audit/q/all/nope").error(404);
    let qb = api.get("/api/queues/%2F/eu/bindings").expect(200);
    assert_eq!(qb.as_array().unwrap().len(), 1);
    assert_eq!(
        api.delete("/api/exchanges/%2F/audit?if-unused=true")
            .error(409),
        "precondition_failed"
    );

    // Publish: routed through both bindings, unroutable, missing exchange, bad payloads.
    let publish = |rk: &str, body: Value| {
        api.post(
            "/api/exchanges/%2F/orders/publish",
            json!({"routing_key": rk, "payload": body["payload"], "payload_encoding": body["enc"], "properties": body["props"]}),
        )
    };
    for i in 0..3 {
        let r = publish(
            "order.eu.fr",
            json!({"payload": format!("order {i}"), "enc": "string", "props": {
                "message_id": format!("id-{i}"), "keys": ["customer-7"], "content_type": "text/plain",
                "headers": {"n": i}, "delivery_mode": 2,
            }}),
        )
        .expect(200);
        assert_eq!(r, json!({"routed": true}));
    }
    assert_eq!(
        api.post(
            "/api/exchanges/%2F/amq.direct/publish",
            json!({"routing_key": "nowhere", "payload": "AAEC", "payload_encoding": "base64"}),
        )
        .expect(200),
        json!({"routed": false})
    );
    publish("x", json!({"payload": "x", "enc": "hex", "props": {}})).error(400);
    publish(
        "x",
        json!({"payload": "x", "enc": "string", "props": {"priority": "high"}}),
    )
    .error(400);
    api.post(
        "/api/exchanges/%2F/missing/publish",
        json!({"routing_key": "", "payload": ""}),
    )
    .error(404);
    api.post(
        "/api/exchanges/%2F/amq.default/publish",
        json!({"routing_key": "eu", "payload": [0, 1]}),
    )
    .error(400);
    assert_eq!(
        api.get("/api/queues/%2F/eu").expect(200)["messages_ready"],
        3
    );
    assert_eq!(api.get("/api/queues/%2F/all").expect(200)["messages"], 3);

    // Get: requeue leaves the messages (now redelivered); ack takes them.
    let got = api
        .post(
            "/api/queues/%2F/eu/get",
            json!({"count": 2, "ackmode": "ack_requeue_true"}),
        )
        .expect(200);
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(got[0]["payload"], "order 0");
    assert_eq!(got[0]["payload_encoding"], "string");
    assert_eq!(got[0]["redelivered"], false);
    assert_eq!(got[0]["routing_key"], "order.eu.fr");
    assert_eq!(got[0]["exchange"], "orders");
    assert_eq!(got[0]["message_count"], 2);
    assert_eq!(got[0]["properties"]["message_id"], "id-0");
    assert_eq!(got[0]["properties"]["headers"], json!({"n": 0}));
    assert_eq!(got[0]["properties"]["delivery_mode"], 2);
    let again = api
        .post(
            "/api/queues/%2F/eu/get",
            json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "base64", "truncate": 3}),
        )
        .expect(200);
    assert_eq!(again[0]["redelivered"], true);
    assert_eq!(again[0]["payload"], "b3Jk"); // "ord"
    assert_eq!(again[0]["payload_bytes"], 7);
    api.post("/api/queues/%2F/eu/get", json!({"ackmode": "sometimes"}))
        .error(400);
    api.post("/api/queues/%2F/missing/get", json!({}))
        .error(404);
    assert_eq!(
        api.get("/api/queues/%2F/eu").expect(200)["messages_ready"],
        2
    );

    // Read by offset and by time, without consuming.
    let r = api
        .get("/api/queues/%2F/eu/messages?offset=1&count=5")
        .expect(200);
    let offsets: Vec<u64> = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2]);
    assert_eq!(r["end_offset"], 3);
    let first_ts = api.get("/api/queues/%2F/eu/messages?count=1").expect(200)["messages"][0]
        ["store_ts"]
        .as_i64()
        .unwrap();
    let by_time = api
        .get(&format!("/api/queues/%2F/eu/messages?from_time={first_ts}"))
        .expect(200);
    assert_eq!(by_time["messages"][0]["offset"], 0);
    let future = api
        .get(&format!(
            "/api/queues/%2F/eu/messages?from_time={}",
            first_ts + 3_600_000
        ))
        .expect(200);
    assert_eq!(future["messages"], json!([]));
    api.get("/api/queues/%2F/eu/messages?offset=1&from_time=1")
        .error(400);
    api.get("/api/queues/%2F/eu/messages?partition=5")
        .error(400);
    assert_eq!(
        api.get("/api/queues/%2F/eu").expect(200)["messages_ready"],
        2
    );

    // Lookup by id and by key (a consumed message stays findable).
    let found = api.get("/api/messages/%2F?id=id-0").expect(200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["payload"], "order 0");
    let mut queues: Vec<String> = found[0]["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap().to_string())
        .collect();
    queues.sort();
    assert_eq!(queues, ["all", "eu"]);
    let by_key = api
        .get("/api/messages/%2F?key=customer-7&count=10")
        .expect(200);
    assert_eq!(by_key.as_array().unwrap().len(), 3);
    assert_eq!(api.get("/api/messages/%2F?id=nope").expect(200), json!([]));
    api.get("/api/messages/%2F").error(400);
    api.get("/api/messages/%2F?id=a&key=b").error(400);
    api.get("/api/messages/nope?id=a").error(404);

    // Purge, unbind, deletes.
    assert_eq!(
        api.delete("/api/queues/%2F/eu/contents").expect(200),
        json!({"messages_purged": 2})
    );
    assert_eq!(api.get("/api/queues/%2F/eu").expect(200)["messages"], 0);
    assert_eq!(
        api.delete("/api/queues/%2F/all?if-empty=true").error(409),
        "precondition_failed"
    );
    api.delete("/api/bindings/%2F/e/orders/q/eu/order.eu.*")
        .expect(204);
    api.delete("/api/bindings/%2F/e/orders/q/eu/order.eu.*")
        .error(404);
    api.delete("/api/queues/%2F/eu").expect(204);
    api.delete("/api/queues/%2F/eu").error(404);
    api.delete("/api/exchanges/%2F/orders").expect(204);
    api.delete("/api/exchanges/%2F/orders").error(404);
    api.delete("/api/exchanges/%2F/amq.topic").error(403);
    assert_eq!(
        api.get("/api/bindings/%2F")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_metrics_follow_real_clients() {
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");

    // An AMQP connection with two channels and a native SDK connection.
    let amqp = connect(&b).await;
    let ch = channel(&amqp).await;
    let _ch2 = channel(&amqp).await;
    let native = junction_sdk::Client::connect(
        junction_sdk::ClientOptions::new(b.native.to_string())
            .client_id("sdk-test")
            .reconnect(junction_sdk::ReconnectOptions::disabled()),
    )
    .await
    .unwrap();
    let conns = eventually("two connections", || {
        let c = api.get("/api/connections").expect(200);
        (c.as_array()?.len() == 2).then_some(c)
    });
    let by_protocol = |p: &str| {
        conns
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["protocol"] == p)
            .unwrap_or_else(|| panic!("no {p} connection in {conns}"))
            .clone()
    };
    let a = by_protocol("amqp");
    assert_eq!(a["user"], "guest");
    assert_eq!(a["vhost"], "/");
    assert_eq!(a["peer_host"], "127.0.0.1");
    assert_eq!(a["sessions"], 3, "the connection and two channels: {a}");
    let n = by_protocol("native");
    assert_eq!(n["client_id"], "sdk-test");
    assert_eq!(n["sessions"], 1);
    let one = api
        .get(&format!("/api/connections/{}", a["id"]))
        .expect(200);
    assert_eq!(one["protocol"], "amqp");
    api.get("/api/connections/999999").error(404);

    // Publish 10 through AMQP, consume and ack 4.
    declare(&ch, "work").await;
    for i in 0..10 {
        publish(&ch, "", "work", format!("m{i}").as_bytes()).await;
    }
    let mut c = consumer(&ch, "work", false).await;
    for _ in 0..4 {
        let d = next(&mut c).await;
        d.ack(lapin::options::BasicAckOptions::default())
            .await
            .unwrap();
    }
    // The native client publishes 5 more.
    let producer = native.producer();
    for i in 0..5 {
        producer
            .send(
                &junction_sdk::Destination::queue("work"),
                junction_sdk::Message::new(format!("n{i}")),
            )
            .await
            .unwrap();
    }

    let q = eventually("the acks counted", || {
        let q = api.get("/api/queues/%2F/work").expect(200);
        (q["message_stats"]["ack"] == 4).then_some(q)
    });
    assert_eq!(q["message_stats"]["publish"], 15);
    assert!(q["message_stats"]["deliver_get"].as_u64().unwrap() >= 4);
    assert_eq!(q["consumers"], 1);
    assert_eq!(
        q["messages_ready"].as_u64().unwrap() + q["messages_unacknowledged"].as_u64().unwrap(),
        11
    );
    let o = api.get("/api/overview").expect(200);
    assert_eq!(o["message_stats"]["publish"], 15);
    assert_eq!(o["object_totals"]["connections"], 2);
    assert_eq!(o["object_totals"]["queues"], 1);
    assert!(o["store"]["records"].as_u64().unwrap() >= 15);
    let conns = api.get("/api/connections").expect(200);
    let published: u64 = conns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["messages_published"].as_u64().unwrap())
        .sum();
    assert_eq!(published, 15);

    // Prometheus exposition after real traffic.
    let m = Api::anonymous(&b).get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .headers
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let t = m.text;
    let q = "{vhost=\"/\",queue=\"work\"}";
    assert_eq!(
        metric(&t, &format!("junction_queue_messages_published_total{q}")),
        Some(15.0)
    );
    assert_eq!(
        metric(&t, &format!("junction_queue_messages_acked_total{q}")),
        Some(4.0)
    );
    assert!(metric(&t, &format!("junction_queue_messages_delivered_total{q}")).unwrap() >= 4.0);
    assert_eq!(
        metric(&t, &format!("junction_queue_consumers{q}")),
        Some(1.0)
    );
    assert!(metric(&t, &format!("junction_queue_messages_ready{q}")).is_some());
    assert!(
        metric(
            &t,
            "junction_group_lag{vhost=\"/\",queue=\"work\",group=\"\"}"
        )
        .is_some(),
        "{t}"
    );
    assert_eq!(
        metric(&t, "junction_vhost_messages_published_total{vhost=\"/\"}"),
        Some(15.0)
    );
    assert_eq!(
        metric(&t, "junction_connections{protocol=\"amqp\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&t, "junction_connections{protocol=\"native\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&t, "junction_alarm{alarm=\"memory\"}"), Some(0.0));
    assert!(metric(&t, "junction_store_appended_records_total").unwrap() >= 15.0);
    assert!(metric(&t, "junction_store_appended_bytes_total").unwrap() > 0.0);
    assert!(t.contains("# TYPE junction_queue_messages_published counter"));
    assert!(t.ends_with("# EOF\n"));
    // Bytes per listener: the AMQP and native clients' traffic; no STOMP client came.
    for listener in ["amqp", "native"] {
        for dir in ["received", "sent"] {
            let series = format!("junction_listener_{dir}_bytes_total{{listener=\"{listener}\"}}");
            assert!(metric(&t, &series).unwrap_or(0.0) > 100.0, "{series}: {t}");
        }
    }
    assert_eq!(
        metric(
            &t,
            "junction_listener_received_bytes_total{listener=\"stomp\"}"
        ),
        Some(0.0)
    );
    // Messages per protocol: AMQP published 10 and the native client 5; AMQP consumed.
    let by = |what: &str, p: &str| {
        metric(
            &t,
            &format!("junction_protocol_messages_{what}_total{{protocol=\"{p}\"}}"),
        )
    };
    assert_eq!(by("published", "amqp"), Some(10.0), "{t}");
    assert_eq!(by("published", "native"), Some(5.0), "{t}");
    assert_eq!(by("published", "stomp"), None, "no STOMP client came: {t}");
    assert!(by("delivered", "amqp").unwrap() >= 4.0, "{t}");
    // Store latency histograms: appends are sampled (the first of 15 at least), flushes are
    // the flusher's fsync rounds (periodic in async mode: wait for one).
    assert!(t.contains("# TYPE junction_store_append_latency_seconds histogram"));
    assert!(metric(&t, "junction_store_append_latency_seconds_count").unwrap() >= 1.0);
    let t = eventually("a timed flush", || {
        let t = Api::anonymous(&b).get("/metrics").text;
        (metric(&t, "junction_store_flush_latency_seconds_count")? >= 1.0).then_some(t)
    });
    for h in ["append", "flush"] {
        let name = format!("junction_store_{h}_latency_seconds");
        assert_eq!(
            metric(&t, &format!("{name}_bucket{{le=\"+Inf\"}}")),
            metric(&t, &format!("{name}_count")),
            "{name}: {t}"
        );
        assert!(
            metric(&t, &format!("{name}_sum")).unwrap() > 0.0,
            "{name}: {t}"
        );
    }

    // Rates are sampled once a second over five seconds: while the AMQP client keeps
    // publishing (to another queue), the overview and its connection show a positive rate.
    declare(&ch, "rates").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publish(&ch, "", "rates", b"r").await;
        let o = api.get("/api/overview").expect(200);
        let c = api
            .get(&format!("/api/connections/{}", a["id"]))
            .expect(200);
        let positive = |v: &Value| v["rate"].as_f64().is_some_and(|r| r > 0.0);
        if positive(&o["message_stats"]["publish_details"]) && positive(&c["publish_details"]) {
            break;
        }
        assert!(Instant::now() < deadline, "no positive rates: {o} {c}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Another user sees only their own connections and may not close others'.
    api.put("/api/users/dave", json!({"password": "d"}))
        .expect(201);
    api.put(
        "/api/permissions/%2F/dave",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .expect(201);
    let dave = Api::new(&b, "dave", "d");
    assert_eq!(dave.get("/api/connections").expect(200), json!([]));
    dave.delete(&format!("/api/connections/{}", a["id"]))
        .error(404);
    dave.get(&format!("/api/connections/{}", a["id"]))
        .error(404);

    // Closing the AMQP connection: lapin gets connection.close 320 with the reason.
    let mut events = amqp.events_listener();
    let r = api.call("DELETE", &format!("/api/connections/{}", a["id"]), None);
    assert_eq!(r.status, 204, "{}", r.text);
    let err = tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.next().await {
            if let lapin::Event::Error(e) = ev {
                return e;
            }
        }
        panic!("events ended");
    })
    .await
    .expect("an error event in time");
    match err.kind() {
        lapin::ErrorKind::ProtocolError(e) => {
            assert_eq!(e.get_id(), 320, "{e}");
            assert!(e.to_string().contains("closed via the HTTP API"), "{e}");
        }
        other => panic!("expected connection.close 320, got {other:?}"),
    }
    // Its consumer's unacked messages went back to the queue.
    eventually("the amqp connection gone", || {
        let c = api.get("/api/connections").expect(200);
        (c.as_array()?.len() == 1).then_some(())
    });
    eventually("the deliveries requeued", || {
        let q = api.get("/api/queues/%2F/work").expect(200);
        (q["messages_unacknowledged"] == 0 && q["consumers"] == 0).then_some(())
    });
    assert_eq!(
        api.get("/api/queues/%2F/work").expect(200)["messages_ready"],
        11
    );

    // Closing the native connection; the SDK (no reconnect) sees it closed.
    let id = api.get("/api/connections").expect(200)[0]["id"].clone();
    api.delete(&format!("/api/connections/{id}")).expect(204);
    eventually("the native connection closed", || {
        (!native.is_connected()).then_some(())
    });
    eventually("no connections", || {
        let c = api.get("/api/connections").expect(200);
        c.as_array()?.is_empty().then_some(())
    });
    let t = Api::anonymous(&b).get("/metrics").text;
    assert_eq!(
        metric(&t, "junction_connections{protocol=\"amqp\"}"),
        Some(0.0)
    );
    // Closed connections' messages still count for their protocol (the 10 and those the
    // rate check published).
    assert!(
        metric(
            &t,
            "junction_protocol_messages_published_total{protocol=\"amqp\"}"
        )
        .unwrap()
            > 10.0,
        "{t}"
    );
}

#[test]
fn deleting_a_user_closes_their_connections() {
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");
    api.put("/api/users/erin", json!({"password": "e"}))
        .expect(201);
    api.put(
        "/api/permissions/%2F/erin",
        json!({"configure": ".*", "write": ".*", "read": ".*"}),
    )
    .expect(201);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt
        .block_on(junction_sdk::Client::connect(
            junction_sdk::ClientOptions::new(b.native.to_string())
                .credentials("erin", "e")
                .reconnect(junction_sdk::ReconnectOptions::disabled()),
        ))
        .unwrap();
    eventually("erin connected", || {
        let c = api.get("/api/connections").expect(200);
        (c[0]["user"] == "erin").then_some(())
    });
    api.delete("/api/users/erin").expect(204);
    eventually("erin's connection closed", || {
        (!client.is_connected()).then_some(())
    });
    eventually("no connections", || {
        api.get("/api/connections")
            .expect(200)
            .as_array()?
            .is_empty()
            .then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_groups_offsets_reset_and_delete() {
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");
    api.put("/api/queues/%2F/events", json!({"partitions": 2}))
        .expect(201);
    for i in 0..4 {
        api.post(
            "/api/exchanges/%2F/amq.default/publish",
            json!({"routing_key": "events", "payload": format!("e{i}")}),
        )
        .expect(200);
    }
    // A native consumer group reads and acks everything, then leaves.
    let client =
        junction_sdk::Client::connect(junction_sdk::ClientOptions::new(b.native.to_string()))
            .await
            .unwrap();
    let mut c = client
        .subscribe(
            junction_sdk::ConsumerOptions::new("events")
                .group("billing")
                .start(junction_sdk::StartPosition::Earliest),
        )
        .await
        .unwrap();
    for _ in 0..4 {
        let d = tokio::time::timeout(WAIT, c.next())
            .await
            .expect("a delivery in time")
            .unwrap()
            .unwrap();
        d.ack().await.unwrap();
    }
    let busy = eventually("billing's acks", || {
        let gs = api.get("/api/queues/%2F/events/groups").expect(200);
        let billing = gs
            .as_array()?
            .iter()
            .find(|g| g["name"] == "billing")?
            .clone();
        (billing["lag"] == 0).then_some(billing)
    });
    assert_eq!(busy["members"], 1);
    assert_eq!(busy["partitions"].as_array().unwrap().len(), 2);
    // With a consumer attached the group cannot be moved.
    assert_eq!(
        api.put(
            "/api/queues/%2F/events/groups/billing/offsets",
            json!({"to": "earliest"})
        )
        .error(409),
        "precondition_failed"
    );
    c.close().await.unwrap();
    let gs = eventually("billing idle", || {
        let gs = api.get("/api/queues/%2F/events/groups").expect(200);
        let idle = gs
            .as_array()?
            .iter()
            .any(|g| g["name"] == "billing" && g["members"] == 0);
        idle.then_some(gs)
    });
    let default = gs
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "")
        .unwrap();
    assert_eq!(default["lag"], 4, "nobody consumed the default group: {gs}");
    let billing = gs
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "billing")
        .unwrap();
    let committed: u64 = billing["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["committed"].as_u64().unwrap())
        .sum();
    assert_eq!(committed, 4);

    // Replay: back to the earliest, the group lags by everything again.
    api.put(
        "/api/queues/%2F/events/groups/billing/offsets",
        json!({"to": "earliest"}),
    )
    .expect(204);
    let lag = |name: &str| {
        let gs = api.get("/api/queues/%2F/events/groups").expect(200);
        gs.as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap()["lag"]
            .clone()
    };
    assert_eq!(lag("billing"), 4);
    // The queue's listing: its groups and the largest lag among them.
    let listed = |api: &Api| {
        let q = api.get("/api/queues/%2F/events").expect(200);
        (q["groups"].clone(), q["lag"].clone())
    };
    assert_eq!(listed(&api), (json!(2), json!(4)));
    // Skip: the default group jumps to the end; the queue has nothing ready.
    api.put(
        "/api/queues/%2F/events/groups/~/offsets",
        json!({"to": "latest"}),
    )
    .expect(204);
    assert_eq!(lag(""), 0);
    assert_eq!(
        api.get("/api/queues/%2F/events").expect(200)["messages_ready"],
        0
    );
    // Nothing is ready, but billing still lags by 4: the listing says so.
    assert_eq!(listed(&api), (json!(2), json!(4)));
    api.put(
        "/api/queues/%2F/events/groups/billing/offsets",
        json!({"to": "offset", "offset": 1}),
    )
    .expect(204);
    assert_eq!(lag("billing"), 2);
    assert_eq!(listed(&api), (json!(2), json!(2)));
    let all = api.get("/api/queues").expect(200);
    let row = all
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "events")
        .unwrap();
    assert_eq!((&row["groups"], &row["lag"]), (&json!(2), &json!(2)));
    api.put(
        "/api/queues/%2F/events/groups/billing/offsets",
        json!({"to": "time", "time": 0}),
    )
    .expect(204);
    assert_eq!(lag("billing"), 4);
    // And the replayed group gets the messages again, marked redelivered.
    let mut c = client
        .subscribe(junction_sdk::ConsumerOptions::new("events").group("billing"))
        .await
        .unwrap();
    let d = tokio::time::timeout(WAIT, c.next())
        .await
        .expect("a replayed delivery in time")
        .unwrap()
        .unwrap();
    assert!(d.redelivered, "a replayed message is marked redelivered");
    c.close().await.unwrap();

    // Errors.
    api.put(
        "/api/queues/%2F/events/groups/billing/offsets",
        json!({"to": "offset"}),
    )
    .error(400);
    api.put(
        "/api/queues/%2F/events/groups/nobody/offsets",
        json!({"to": "latest"}),
    )
    .error(404);
    api.put(
        "/api/queues/%2F/missing/groups/billing/offsets",
        json!({"to": "latest"}),
    )
    .error(404);
    api.get("/api/queues/%2F/missing/groups").error(404);
    api.delete("/api/queues/%2F/events/groups/~").error(403);
    api.put("/api/users/viewer", json!({"password": "v"}))
        .expect(201);
    api.put(
        "/api/permissions/%2F/viewer",
        json!({"configure": "", "write": "", "read": ".*"}),
    )
    .expect(201);
    let viewer = Api::new(&b, "viewer", "v");
    viewer.get("/api/queues/%2F/events/groups").expect(200);
    viewer
        .put(
            "/api/queues/%2F/events/groups/billing/offsets",
            json!({"to": "latest"}),
        )
        .error(403);
    viewer
        .delete("/api/queues/%2F/events/groups/billing")
        .error(403);

    eventually("billing idle again", || {
        let gs = api.get("/api/queues/%2F/events/groups").expect(200);
        gs.as_array()?
            .iter()
            .any(|g| {
                g["name"] == "billing"
                    && g["members"] == 0
                    && g["partitions"][0]["inflight"] == 0
                    && g["partitions"][1]["inflight"] == 0
            })
            .then_some(())
    });
    api.delete("/api/queues/%2F/events/groups/billing")
        .expect(204);
    api.delete("/api/queues/%2F/events/groups/billing")
        .error(404);
    let names: Vec<String> = api
        .get("/api/queues/%2F/events/groups")
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [""]);
    assert_eq!(listed(&api), (json!(1), json!(0)));
    client.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_and_stomp_connections_are_listed_and_closed_with_their_protocols_close() {
    use common::mqtt::{connect_packet, Raw};
    use junction_mqtt::{Packet, ProtocolVersion, ReasonCode};
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");
    let (mut mqtt, _) = Raw::connect(
        b.mqtt,
        connect_packet(ProtocolVersion::V5, "sensor-9", true),
    )
    .await;
    let mut stomp = common::stomp::StompClient::connect(b.stomp).await;
    let conns = eventually("two connections", || {
        let c = api.get("/api/connections").expect(200);
        (c.as_array()?.len() == 2).then_some(c)
    });
    let find = |protocol: &str| {
        conns
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["protocol"] == protocol)
            .unwrap_or_else(|| panic!("no {protocol} connection in {conns}"))
            .clone()
    };
    let m = find("mqtt");
    assert_eq!(m["client_id"], "sensor-9");
    assert_eq!(m["user"], "guest");
    let s = find("stomp");

    // MQTT 5: DISCONNECT with 0x98 Administrative action.
    api.delete(&format!("/api/connections/{}", m["id"]))
        .expect(204);
    match mqtt.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, ReasonCode::ADMINISTRATIVE_ACTION),
        other => panic!("expected DISCONNECT 0x98, got {other:?}"),
    }
    // STOMP: an ERROR frame, then the close.
    api.delete(&format!("/api/connections/{}", s["id"]))
        .expect(204);
    let e = stomp.expect_error_and_close().await;
    assert_eq!(e.header("message"), Some("connection_forced"));
    eventually("no connections", || {
        let c = api.get("/api/connections").expect(200);
        c.as_array()?.is_empty().then_some(())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_sessions_and_retained_messages() {
    use common::mqtt::{v4_options, v5_options, V4, V5};
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::QoS;
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");

    // A persistent 3.1.1 session with two subscriptions, offline now.
    let mut o = v4_options(b.mqtt, "meter-1");
    o.set_clean_session(false);
    let mut meter = V4::with(o).await;
    meter.subscribe("meters/+/kwh", QoS::AtLeastOnce).await;
    meter.subscribe("alerts/#", QoS::ExactlyOnce).await;
    meter.disconnect().await;
    // A 5.0 session that outlives its connection by an hour, connected.
    let mut o = v5_options(b.mqtt, "panel-2");
    o.set_clean_start(true);
    o.set_session_expiry_interval(Some(3600));
    let (mut panel, _) = V5::with(o).await;
    panel.subscribe("meters/#", QoS5::AtMostOnce).await;
    // A clean publisher: a session only while connected, with no queue.
    let mut publisher = V4::connect(b.mqtt, "pub-3").await;
    for (topic, body) in [("meters/1/kwh", "17.5"), ("status/gw.eu", "up")] {
        publisher
            .client
            .publish(topic, QoS::AtLeastOnce, true, body)
            .await
            .expect("publish");
        publisher
            .until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
            .await;
    }

    let sessions = eventually("meter-1's message queued", || {
        let s = api.get("/api/mqtt/sessions").expect(200);
        (s[0]["messages"] == 1).then_some(s)
    });
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["meter-1", "panel-2", "pub-3"], "{sessions}");
    let meter = &sessions[0];
    assert_eq!(meter["connected"], false, "{meter}");
    assert_eq!(meter["clean_session"], false, "{meter}");
    assert_eq!(
        meter["expiry_interval"],
        Value::Null,
        "never expires: {meter}"
    );
    assert_eq!(meter["queue"], "mqtt-session-meter-1");
    let subs: Vec<(String, i64)> = meter["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["filter"].as_str().unwrap().into(),
                s["qos"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        subs,
        [("alerts/#".into(), 2), ("meters/+/kwh".into(), 1)],
        "{meter}"
    );
    assert_eq!(meter["subscriptions"][1]["routing_key"], "meters.*.kwh");
    let panel_s = &sessions[1];
    assert_eq!(panel_s["connected"], true, "{panel_s}");
    assert_eq!(panel_s["clean_session"], false, "{panel_s}");
    assert_eq!(panel_s["expiry_interval"], 3600, "{panel_s}");
    assert_eq!(panel_s["user"], "guest");
    assert_eq!(panel_s["subscriptions"][0]["filter"], "meters/#");
    let pub_s = &sessions[2];
    assert_eq!(pub_s["connected"], true, "{pub_s}");
    assert_eq!(pub_s["clean_session"], true, "{pub_s}");
    assert_eq!(pub_s["expiry_interval"], 0, "{pub_s}");
    assert_eq!(pub_s["queue"], Value::Null, "{pub_s}");
    // One vhost's: the same sessions (their message counts may have moved meanwhile).
    let one_vhost: Vec<Value> = api
        .get("/api/mqtt/sessions/%2F")
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["client_id"], s["connected"], s["subscriptions"]]))
        .collect();
    let all: Vec<Value> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!([s["client_id"], s["connected"], s["subscriptions"]]))
        .collect();
    assert_eq!(one_vhost, all);
    let one = api.get("/api/mqtt/sessions/%2F/panel-2").expect(200);
    assert_eq!(one["client_id"], "panel-2");
    api.get("/api/mqtt/sessions/%2F/nobody").error(404);
    api.get("/api/mqtt/sessions/nope").error(404);

    // Retained messages, with their MQTT topics (a dot inside a level stays a dot).
    let retained = api.get("/api/mqtt/retained").expect(200);
    let topics: Vec<(&str, &str, &str)> = retained
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["topic"].as_str().unwrap(),
                r["routing_key"].as_str().unwrap(),
                r["payload"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        [
            ("meters/1/kwh", "meters.1.kwh", "17.5"),
            ("status/gw.eu", "status.gw/eu", "up")
        ],
        "{retained}"
    );
    assert_eq!(retained[0]["exchange"], "amq.topic");
    assert_eq!(retained[0]["properties"]["retain"], Value::Null);
    assert_eq!(api.get("/api/mqtt/retained/%2F").expect(200), retained);
    let cut = api.get("/api/mqtt/retained/%2F?truncate=2").expect(200);
    assert_eq!(cut[0]["payload"], "17");
    assert_eq!(cut[0]["payload_bytes"], 4);
    api.get("/api/mqtt/retained/%2F?encoding=hex").error(400);

    // Deleting one: a new subscriber no longer gets it; the other is still handed out.
    api.delete("/api/mqtt/retained/%2F?topic=meters/1/kwh")
        .expect(204);
    api.delete("/api/mqtt/retained/%2F?topic=meters/1/kwh")
        .error(404);
    api.delete("/api/mqtt/retained/%2F").error(400);
    api.delete("/api/mqtt/retained/%2F?topic=a/%2B").error(400);
    api.delete("/api/mqtt/retained/%2F?topic=a&routing_key=a")
        .error(400);
    let mut late = V4::connect(b.mqtt, "late-4").await;
    late.subscribe("meters/#", QoS::AtLeastOnce).await;
    late.no_publish().await;
    late.subscribe("status/#", QoS::AtLeastOnce).await;
    let p = late.publish().await;
    assert_eq!(
        (p.topic.as_str(), &p.payload[..]),
        ("status/gw.eu", &b"up"[..])
    );
    assert!(p.retain);
    api.delete("/api/mqtt/retained/%2F?routing_key=status.gw/eu&exchange=amq.topic")
        .expect(204);
    assert_eq!(api.get("/api/mqtt/retained").expect(200), json!([]));

    // Who may: no credentials, no permissions in the vhost, read but not write.
    let anon = Api::anonymous(&b);
    anon.get("/api/mqtt/sessions").error(401);
    anon.get("/api/mqtt/retained/%2F").error(401);
    anon.delete("/api/mqtt/retained/%2F?topic=x").error(401);
    api.put("/api/users/bob", json!({"password": "pw"}))
        .expect(201);
    api.put("/api/users/reader", json!({"password": "pw"}))
        .expect(201);
    api.put(
        "/api/permissions/%2F/reader",
        json!({"configure": "", "write": "", "read": ".*"}),
    )
    .expect(201);
    publisher
        .client
        .publish("status/gw.us", QoS::AtLeastOnce, true, "down")
        .await
        .expect("publish");
    publisher
        .until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    let bob = Api::new(&b, "bob", "pw");
    assert_eq!(bob.get("/api/mqtt/sessions").expect(200), json!([]));
    bob.get("/api/mqtt/sessions/%2F").error(403);
    assert_eq!(bob.get("/api/mqtt/retained").expect(200), json!([]));
    bob.get("/api/mqtt/retained/%2F").error(403);
    bob.delete("/api/mqtt/retained/%2F?topic=status/gw.us")
        .error(403);
    let reader = Api::new(&b, "reader", "pw");
    assert_eq!(
        reader
            .get("/api/mqtt/sessions/%2F")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        4,
        "meter-1, panel-2, pub-3, late-4"
    );
    assert_eq!(
        reader.get("/api/mqtt/retained/%2F").expect(200)[0]["topic"],
        "status/gw.us"
    );
    reader
        .delete("/api/mqtt/retained/%2F?topic=status/gw.us")
        .error(403);
    panel.disconnect().await;
}
