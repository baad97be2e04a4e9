//! Policies against the real broker: the API (RabbitMQ's shapes, who may, the 400/401/403/404
//! cases, `meta.json` across a restart) and what a policy does to queues that AMQP clients
//! declared, at once when it is set, changed or deleted.

mod common;

use common::amqp::{channel, connect, declare, declare_with, WAIT};
use common::http::{eventually, Api};
use common::TestBroker;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use serde_json::{json, Value};

fn policy_names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["vhost"].as_str().unwrap(),
                p["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// A queue's `(policy, effective_policy_definition)` as the API lists it.
fn applied(api: &Api, vhost: &str, queue: &str) -> (Value, Value) {
    let q = api.get(&format!("/api/queues/{vhost}/{queue}")).expect(200);
    (
        q["policy"].clone(),
        q["effective_policy_definition"].clone(),
    )
}

#[test]
fn policies_api_shapes_permissions_errors_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = TestBroker::start_in(dir.path(), &[]);
    let guest = Api::new(&b, "guest", "guest");

    // 401 without credentials.
    Api::anonymous(&b).get("/api/policies").error(401);

    // Set (201), replace (204), read back in RabbitMQ's shape.
    let capped = json!({"pattern": "^capped\\.", "definition": {"max-length": 2},
                        "apply-to": "queues"});
    guest
        .put("/api/policies/%2F/capped", capped.clone())
        .expect(201);
    let mut higher = capped.clone();
    higher["priority"] = json!(1);
    guest.put("/api/policies/%2F/capped", higher).expect(204);
    assert_eq!(
        guest.get("/api/policies/%2F/capped").expect(200),
        json!({"vhost": "/", "name": "capped", "pattern": "^capped\\.", "apply-to": "queues",
               "priority": 1, "definition": {"max-length": 2}, "not_applied": []})
    );
    // apply-to defaults to all, priority to 0; keys Junction does not implement are kept and
    // listed as not applied.
    guest
        .put(
            "/api/policies/%2F/ha",
            json!({"pattern": "^ha\\.", "definition": {"ha-mode": "all", "max-length-bytes": 1000}}),
        )
        .expect(201);
    let ha = guest.get("/api/policies/%2F/ha").expect(200);
    assert_eq!(ha["apply-to"], "all");
    assert_eq!(ha["priority"], 0);
    assert_eq!(ha["not_applied"], json!(["ha-mode"]));
    assert_eq!(
        policy_names(&guest.get("/api/policies").expect(200)),
        ["//capped", "//ha"]
    );
    assert_eq!(
        policy_names(&guest.get("/api/policies/%2F").expect(200)),
        ["//capped", "//ha"]
    );

    // 400s: a bad pattern, apply-to, value, overflow mode, an empty definition, an unknown
    // field, a body naming another policy.
    for bad in [
        json!({"pattern": "(", "definition": {"max-length": 1}}),
        json!({"pattern": ".*", "definition": {"max-length": 1}, "apply-to": "streams"}),
        json!({"pattern": ".*", "definition": {"max-length": "lots"}}),
        json!({"pattern": ".*", "definition": {"message-ttl": -5}}),
        json!({"pattern": ".*", "definition": {"overflow": "reject-publish-dlx"}}),
        json!({"pattern": ".*", "definition": {}}),
        json!({"pattern": ".*", "definition": {"max-length": 1}, "colour": "red"}),
        json!({"pattern": ".*", "definition": {"max-length": 1}, "name": "other"}),
        json!({"definition": {"max-length": 1}}),
    ] {
        assert_eq!(
            guest.put("/api/policies/%2F/bad", bad.clone()).error(400),
            "bad_request",
            "{bad}"
        );
    }
    guest.get("/api/policies/%2F/bad").error(404);

    // 404s.
    guest.get("/api/policies/nope").error(404);
    guest.get("/api/policies/%2F/none").error(404);
    guest.delete("/api/policies/%2F/none").error(404);
    guest.put("/api/policies/nope/p", capped.clone()).error(404);

    // Who may: administrators, and policymakers on vhosts they have permissions on; not a
    // monitoring user, not a user without tags.
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    for (user, tags, perms) in [
        ("plain", "", true),
        ("mon", "monitoring", true),
        ("pm", "policymaker", true),
        ("pm-elsewhere", "policymaker", false),
    ] {
        guest
            .put(
                &format!("/api/users/{user}"),
                json!({"password": "pw", "tags": tags}),
            )
            .expect(201);
        if perms {
            guest
                .put(&format!("/api/permissions/%2F/{user}"), all.clone())
                .expect(201);
        }
    }
    let plain = Api::new(&b, "plain", "pw");
    assert_eq!(plain.get("/api/policies").error(403), "access_refused");
    plain.get("/api/policies/%2F").error(403);
    plain
        .put("/api/policies/%2F/mine", capped.clone())
        .error(403);
    plain.delete("/api/policies/%2F/capped").error(403);
    let mon = Api::new(&b, "mon", "pw");
    mon.get("/api/policies").error(403);
    mon.get("/api/policies/%2F/capped").error(403);
    let pm = Api::new(&b, "pm", "pw");
    assert_eq!(
        policy_names(&pm.get("/api/policies").expect(200)),
        ["//capped", "//ha"]
    );
    pm.put(
        "/api/policies/%2F/pm-made",
        json!({"pattern": "^pm\\.", "definition": {"expires": 60000}}),
    )
    .expect(201);
    pm.delete("/api/policies/%2F/pm-made").expect(204);
    let elsewhere = Api::new(&b, "pm-elsewhere", "pw");
    assert_eq!(elsewhere.get("/api/policies").expect(200), json!([]));
    elsewhere.get("/api/policies/%2F").error(403);
    elsewhere
        .put("/api/policies/%2F/mine", capped.clone())
        .error(403);

    // Queue listings show the policy in force and its definition; the highest priority wins.
    guest
        .put("/api/queues/%2F/capped.jobs", json!({}))
        .expect(201);
    guest.put("/api/queues/%2F/other", json!({})).expect(201);
    assert_eq!(
        applied(&guest, "%2F", "capped.jobs"),
        (json!("capped"), json!({"max-length": 2}))
    );
    assert_eq!(applied(&guest, "%2F", "other"), (Value::Null, json!({})));
    guest
        .put(
            "/api/policies/%2F/wide",
            json!({"pattern": "^capped", "definition": {"max-length": 100}, "priority": 5}),
        )
        .expect(201);
    assert_eq!(applied(&guest, "%2F", "capped.jobs").0, "wide");
    let listed = guest.get("/api/queues").expect(200);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "capped.jobs")
        .unwrap();
    assert_eq!(row["policy"], "wide");
    assert_eq!(
        row["effective_policy_definition"],
        json!({"max-length": 100})
    );
    guest.delete("/api/policies/%2F/wide").expect(204);
    assert_eq!(applied(&guest, "%2F", "capped.jobs").0, "capped");

    // Exchanges show the policy whose apply-to covers them.
    guest
        .put(
            "/api/policies/%2F/audit",
            json!({"pattern": "^audit", "definition": {"alternate-exchange": "spill"},
                   "apply-to": "exchanges"}),
        )
        .expect(201);
    guest
        .put("/api/exchanges/%2F/audit", json!({"type": "fanout"}))
        .expect(201);
    guest
        .put("/api/queues/%2F/audit.copy", json!({}))
        .expect(201);
    assert_eq!(
        guest.get("/api/exchanges/%2F/audit").expect(200)["policy"],
        "audit"
    );
    assert_eq!(applied(&guest, "%2F", "audit.copy").0, Value::Null);
    assert_eq!(
        guest.get("/api/exchanges/%2F/amq.direct").expect(200)["policy"],
        Value::Null
    );

    // Policies go with their vhost.
    guest.put("/api/vhosts/v2", json!({})).expect(201);
    guest.put("/api/policies/v2/p", capped.clone()).expect(201);
    guest.delete("/api/vhosts/v2").expect(204);
    guest.put("/api/vhosts/v2", json!({})).expect(201);
    assert_eq!(guest.get("/api/policies/v2").expect(200), json!([]));

    // They survive a restart (meta.json), and apply again to the queues.
    b.stop();
    let b = TestBroker::start_in(dir.path(), &[]);
    let guest = Api::new(&b, "guest", "guest");
    assert_eq!(
        policy_names(&guest.get("/api/policies").expect(200)),
        ["//audit", "//capped", "//ha"]
    );
    assert_eq!(
        applied(&guest, "%2F", "capped.jobs"),
        (json!("capped"), json!({"max-length": 2}))
    );
}

async fn publish_confirmed(ch: &lapin::Channel, queue: &str, bodies: &[&str]) {
    for body in bodies {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
}

/// Takes every ready message of a queue (acked), as text.
async fn drain(ch: &lapin::Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = tokio::time::timeout(
        WAIT,
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get in time")
    .expect("basic.get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

fn ready(api: &Api, queue: &str) -> u64 {
    api.get(&format!("/api/queues/%2F/{queue}")).expect(200)["messages_ready"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_length_policy_caps_amqp_queues_at_once_and_deleting_it_lifts_the_cap() {
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");
    let conn = connect(&b).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");

    // A queue with messages, then the policy: the head is dropped at once.
    let q = declare(&ch, "capped.jobs").await;
    publish_confirmed(&ch, &q, &["m0", "m1", "m2", "m3", "m4"]).await;
    eventually("5 ready", || (ready(&api, &q) == 5).then_some(()));
    api.put(
        "/api/policies/%2F/capped",
        json!({"pattern": "^capped\\.", "definition": {"max-length": 2}, "apply-to": "queues"}),
    )
    .expect(201);
    eventually("the cap applied", || (ready(&api, &q) == 2).then_some(()));
    assert_eq!(drain(&ch, &q).await, ["m3", "m4"]);

    // New messages: the oldest go.
    publish_confirmed(&ch, &q, &["n0", "n1", "n2"]).await;
    eventually("capped at 2", || (ready(&api, &q) == 2).then_some(()));
    assert_eq!(drain(&ch, &q).await, ["n1", "n2"]);

    // The queue's own lower x-max-length wins over the policy's.
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    let tight = declare_with(&ch, "capped.tight", QueueDeclareOptions::default(), args).await;
    publish_confirmed(&ch, &tight, &["t0", "t1", "t2"]).await;
    eventually("capped at 1", || (ready(&api, &tight) == 1).then_some(()));
    assert_eq!(drain(&ch, &tight).await, ["t2"]);

    // A queue declared later gets the policy too; one whose name does not match does not.
    let later = declare(&ch, "capped.later").await;
    let free = declare(&ch, "uncapped").await;
    publish_confirmed(&ch, &later, &["l0", "l1", "l2"]).await;
    publish_confirmed(&ch, &free, &["f0", "f1", "f2"]).await;
    eventually("capped at 2", || (ready(&api, &later) == 2).then_some(()));
    assert_eq!(drain(&ch, &free).await, ["f0", "f1", "f2"]);

    // Changing the policy changes the cap at once.
    api.put(
        "/api/policies/%2F/capped",
        json!({"pattern": "^capped\\.", "definition": {"max-length": 1}, "apply-to": "queues"}),
    )
    .expect(204);
    eventually("capped at 1", || (ready(&api, &later) == 1).then_some(()));
    assert_eq!(drain(&ch, &later).await, ["l2"]);

    // Deleting it lifts the cap.
    api.delete("/api/policies/%2F/capped").expect(204);
    assert_eq!(applied(&api, "%2F", "capped.jobs").0, Value::Null);
    publish_confirmed(&ch, &q, &["p0", "p1", "p2", "p3"]).await;
    eventually("4 ready", || (ready(&api, &q) == 4).then_some(()));
    assert_eq!(drain(&ch, &q).await, ["p0", "p1", "p2", "p3"]);
    conn.close(200, "bye".into()).await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_ttl_policy_expires_and_dead_letters_and_deleting_it_keeps_messages() {
    let b = TestBroker::start();
    let api = Api::new(&b, "guest", "guest");
    let conn = connect(&b).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    api.put(
        "/api/policies/%2F/short",
        json!({"pattern": "^ttl\\.(work|control)$", "apply-to": "queues",
               "definition": {"message-ttl": 100, "dead-letter-exchange": "",
                              "dead-letter-routing-key": "ttl.dead"}}),
    )
    .expect(201);
    let dead = declare(&ch, "ttl.dead").await;
    // The queue's own TTL is ten minutes: the policy's lower one is in force.
    let mut args = FieldTable::default();
    args.insert("x-message-ttl".into(), AMQPValue::LongInt(600_000));
    let work = declare_with(&ch, "ttl.work", QueueDeclareOptions::default(), args).await;
    let mut expired = ch
        .basic_consume(
            dead.as_str().into(),
            "dead".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume");
    publish_confirmed(&ch, &work, &["late"]).await;
    let d = tokio::time::timeout(WAIT, expired.next())
        .await
        .expect("a dead-lettered message in time")
        .expect("a delivery")
        .expect("ok");
    assert_eq!(&d.data[..], b"late");
    let headers = d.properties.headers().clone().unwrap_or_default();
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&AMQPValue::LongString("expired".into()))
    );
    d.ack(BasicAckOptions::default()).await.expect("ack");
    assert_eq!(ready(&api, &work), 0);

    // Without the policy, a message outlives the policy's TTL: once a message published at the
    // same time to a queue the policy still covers has expired, this one is still there.
    api.put(
        "/api/policies/%2F/short",
        json!({"pattern": "^ttl\\.control$", "apply-to": "queues",
               "definition": {"message-ttl": 100}}),
    )
    .expect(204);
    assert_eq!(applied(&api, "%2F", "ttl.work").0, Value::Null);
    let control = declare(&ch, "ttl.control").await;
    publish_confirmed(&ch, &work, &["kept"]).await;
    publish_confirmed(&ch, &control, &["gone"]).await;
    eventually("the control message expired", || {
        (ready(&api, &control) == 0).then_some(())
    });
    assert_eq!(drain(&ch, &control).await, Vec::<String>::new());
    assert_eq!(drain(&ch, &work).await, ["kept"]);
    conn.close(200, "bye".into()).await.ok();
}
