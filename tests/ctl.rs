//! `junction ctl` against the real broker: the binary run as a user would, tables and `--json`.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;
use serde_json::{json, Value};

/// Runs `junction ctl --url <broker> <args>` with `stdin`.
fn ctl_in(b: &TestBroker, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_junction"))
        .arg("ctl")
        .args(["--url", &format!("http://{}", b.http)])
        .args(args)
        .env_remove("JUNCTION_CTL_USER")
        .env_remove("JUNCTION_CTL_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run junction ctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; returns its standard output.
fn ctl(b: &TestBroker, args: &[&str]) -> String {
    let out = ctl_in(b, args, "");
    assert!(
        out.status.success(),
        "junction ctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command with `--json`; returns the parsed output.
fn ctl_json(b: &TestBroker, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = ctl(b, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
}

/// Runs a command that must fail; returns its standard error.
fn ctl_fails(b: &TestBroker, args: &[&str]) -> String {
    let out = ctl_in(b, args, "");
    assert_eq!(
        out.status.code(),
        Some(1),
        "junction ctl {args:?} should fail"
    );
    String::from_utf8(out.stderr).unwrap()
}

fn find<'a>(list: &'a Value, key: &str, value: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|x| x[key] == value)
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ctl_manages_queues_exchanges_bindings_messages_users_and_connections() {
    let b = TestBroker::start();

    // Queues, exchanges, bindings.
    assert_eq!(
        ctl(
            &b,
            &["queues", "declare", "jobs", "--arg", "x-max-length=5"]
        )
        .trim(),
        "queue 'jobs' declared"
    );
    ctl(
        &b,
        &[
            "queues",
            "declare",
            "wide",
            "--partitions",
            "3",
            "--transient",
        ],
    );
    let table = ctl(&b, &["queues", "list"]);
    assert!(table.contains("jobs") && table.contains("wide"), "{table}");
    assert!(
        table.contains("ready") && table.contains("consumers"),
        "{table}"
    );
    let qs = ctl_json(&b, &["queues", "list"]);
    assert_eq!(
        find(&qs, "name", "jobs").unwrap()["arguments"],
        json!({"x-max-length": 5})
    );
    let wide = find(&qs, "name", "wide").unwrap();
    assert_eq!(wide["partitions"], 3);
    assert_eq!(wide["durable"], false);

    ctl(&b, &["exchanges", "declare", "events", "--type", "topic"]);
    let xs = ctl_json(&b, &["exchanges", "list"]);
    assert_eq!(find(&xs, "name", "events").unwrap()["type"], "topic");
    ctl(&b, &["bindings", "add", "events", "jobs", "-k", "job.*"]);
    ctl(
        &b,
        &["bindings", "add", "amq.fanout", "events", "--to-exchange"],
    );
    let bs = ctl_json(&b, &["bindings", "list"]);
    assert_eq!(
        find(&bs, "destination", "jobs").unwrap()["routing_key"],
        "job.*"
    );
    assert_eq!(
        find(&bs, "destination", "events").unwrap()["destination_type"],
        "exchange"
    );
    assert!(ctl(&b, &["bindings", "list"]).contains("job.*"));

    // Publish (argument and standard input), get, lookup.
    assert_eq!(
        ctl(
            &b,
            &[
                "publish",
                "job.1",
                "first",
                "-e",
                "events",
                "--property",
                "message_id=m-1",
                "--property",
                "keys=k1,k2",
                "--header",
                "attempt=1"
            ]
        )
        .trim(),
        "published (routed)"
    );
    let out = ctl_in(&b, &["publish", "job.2", "-e", "events"], "from stdin");
    assert!(out.status.success());
    assert!(ctl(&b, &["publish", "nowhere", "x"]).contains("unroutable"));
    let got = ctl_json(&b, &["get", "jobs", "-n", "5"]);
    let payloads: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["payload"].as_str().unwrap())
        .collect();
    assert_eq!(payloads, ["first", "from stdin"]);
    assert_eq!(got[0]["properties"]["headers"], json!({"attempt": 1}));
    assert_eq!(got[0]["properties"]["keys"], json!(["k1", "k2"]));
    assert!(ctl(&b, &["get", "jobs"]).contains("first"));
    let found = ctl_json(&b, &["lookup", "--key", "k2"]);
    assert_eq!(found[0]["payload"], "first");
    assert!(ctl(&b, &["lookup", "--id", "m-1"]).contains("jobs[0]@0"));
    let acked = ctl_json(&b, &["get", "jobs", "--ack"]);
    assert_eq!(acked[0]["payload"], "first");
    assert_eq!(
        ctl_json(&b, &["queues", "purge", "jobs"]),
        json!({"messages_purged": 1})
    );
    // Consumer groups: replay the default group from the start, then skip to the end.
    let gs = ctl_json(&b, &["groups", "list", "jobs"]);
    assert_eq!(gs[0]["name"], "");
    assert_eq!(gs[0]["lag"], 0);
    let table = ctl(&b, &["groups", "list", "jobs"]);
    assert!(
        table.contains("members") && table.contains(" ~ "),
        "{table}"
    );
    ctl(&b, &["groups", "reset", "jobs", "~", "--to", "earliest"]);
    let ready = |b: &TestBroker| {
        find(&ctl_json(b, &["queues", "list"]), "name", "jobs").unwrap()["messages_ready"].clone()
    };
    assert_eq!(ready(&b), 2);
    ctl(&b, &["groups", "reset", "jobs", "~", "--to", "offset:1"]);
    assert_eq!(ready(&b), 1);
    ctl(&b, &["groups", "reset", "jobs", "~", "--to", "latest"]);
    assert_eq!(ready(&b), 0);
    assert!(ctl_fails(&b, &["groups", "reset", "jobs", "~", "--to", "soon:1"]).contains("soon:1"));
    assert!(ctl_fails(&b, &["groups", "delete", "jobs", "~"]).contains("403"));
    let overview = ctl(&b, &["overview"]);
    assert!(
        overview.contains("published") && overview.contains("memory alarm"),
        "{overview}"
    );

    // Users, permissions, vhosts.
    ctl(&b, &["users", "add", "ann", "pw", "--tags", "monitoring"]);
    let users = ctl(&b, &["users", "list"]);
    assert!(
        users.contains("ann") && users.contains("monitoring"),
        "{users}"
    );
    ctl(
        &b,
        &["permissions", "set", "ann", "--configure", "^ann\\..*"],
    );
    let ps = ctl_json(&b, &["permissions", "list"]);
    assert_eq!(find(&ps, "user", "ann").unwrap()["configure"], "^ann\\..*");
    assert!(ctl_fails(&b, &["-u", "ann", "-p", "pw", "queues", "declare", "x"]).contains("403"));
    ctl(&b, &["-u", "ann", "-p", "pw", "queues", "declare", "ann.q"]);
    ctl(&b, &["permissions", "clear", "ann"]);
    ctl(&b, &["vhosts", "add", "staging"]);
    assert!(ctl(&b, &["vhosts", "list"]).contains("staging"));
    ctl(&b, &["--vhost", "staging", "permissions", "set", "guest"]);
    ctl(&b, &["--vhost", "staging", "queues", "declare", "s"]);
    assert!(ctl(&b, &["--vhost", "staging", "queues", "list"]).contains(" s "));
    ctl(&b, &["vhosts", "delete", "staging"]);
    ctl(&b, &["users", "delete", "ann"]);
    assert!(!ctl(&b, &["users", "list"]).contains("ann"));

    // Connections: a native client is listed and closed.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt
        .block_on(junction_sdk::Client::connect(
            junction_sdk::ClientOptions::new(b.native.to_string())
                .client_id("ctl-test")
                .reconnect(junction_sdk::ReconnectOptions::disabled()),
        ))
        .unwrap();
    let conns = ctl_json(&b, &["connections", "list"]);
    let c = find(&conns, "client_id", "ctl-test").expect("the native connection");
    assert!(ctl(&b, &["connections", "list"]).contains("ctl-test"));
    let id = c["id"].to_string();
    assert_eq!(
        ctl(&b, &["connections", "close", &id, "--reason", "bye"]).trim(),
        format!("connection {id} closed")
    );
    eventually("the client disconnected", || !client.is_connected());
    eventually("no connections", || {
        ctl_json(&b, &["connections", "list"]) == json!([])
    });

    // Deletes and errors.
    ctl(&b, &["bindings", "remove", "events", "jobs", "-k", "job.*"]);
    ctl(
        &b,
        &[
            "bindings",
            "remove",
            "amq.fanout",
            "events",
            "--to-exchange",
        ],
    );
    assert_eq!(ctl_json(&b, &["bindings", "list"]), json!([]));
    ctl(&b, &["exchanges", "delete", "events"]);
    ctl(&b, &["queues", "delete", "jobs", "--if-empty"]);
    let e = ctl_fails(&b, &["queues", "delete", "jobs"]);
    assert!(
        e.contains("404") && e.contains("queue 'jobs' not found"),
        "{e}"
    );
    let e = ctl_fails(&b, &["-p", "wrong", "queues", "list"]);
    assert!(e.contains("401"), "{e}");
    let e = ctl_fails(&b, &["queues", "declare", "q", "--arg", "novalue"]);
    assert!(e.contains("NAME=VALUE"), "{e}");
    let out = Command::new(env!("CARGO_BIN_EXE_junction"))
        .args(["ctl", "--url", "http://127.0.0.1:1", "overview"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));
}

#[test]
fn ctl_sets_lists_and_deletes_policies() {
    let b = TestBroker::start();
    let done = ctl(
        &b,
        &[
            "policies",
            "set",
            "capped",
            "^capped\\.",
            r#"{"max-length": 2}"#,
            "--apply-to",
            "queues",
        ],
    );
    assert_eq!(done.trim(), "policy 'capped' set");
    let done = ctl(
        &b,
        &["policies", "set", "ha", ".*", r#"{"ha-mode": "all"}"#],
    );
    assert_eq!(
        done.trim(),
        "policy 'ha' set; not applied (not implemented): ha-mode"
    );
    let table = ctl(&b, &["policies", "list"]);
    let row = table
        .lines()
        .find(|l| l.contains("capped"))
        .unwrap_or_else(|| panic!("no capped row in\n{table}"));
    for cell in ["^capped\\.", "queues", r#"{"max-length":2}"#] {
        assert!(row.contains(cell), "{cell} missing from {row}");
    }
    assert!(table.contains("not applied"), "{table}");
    let list = ctl_json(&b, &["policies", "list"]);
    assert_eq!(find(&list, "name", "ha").unwrap()["apply-to"], "all");
    assert_eq!(
        find(&list, "name", "capped").unwrap()["definition"],
        json!({"max-length": 2})
    );

    // Queues show the policy in force, in the table and in JSON.
    ctl(&b, &["queues", "declare", "capped.jobs"]);
    for i in 0..4 {
        ctl(&b, &["publish", "capped.jobs", &format!("m{i}")]);
    }
    eventually("the cap", || {
        let q = find(&ctl_json(&b, &["queues", "list"]), "name", "capped.jobs").cloned();
        q.is_some_and(|q| q["messages_ready"] == 2 && q["policy"] == "capped")
    });
    let table = ctl(&b, &["queues", "list"]);
    assert!(table.contains("policy") && table.contains("lag"), "{table}");
    let row = table.lines().find(|l| l.contains("capped.jobs")).unwrap();
    assert!(row.contains("capped "), "{row}");

    // Errors: a definition that is not a JSON object, a bad value, a missing policy.
    let e = ctl_fails(&b, &["policies", "set", "p", ".*", "max-length=2"]);
    assert!(e.contains("not a JSON object"), "{e}");
    let e = ctl_fails(
        &b,
        &["policies", "set", "p", ".*", r#"{"max-length": "x"}"#],
    );
    assert!(e.contains("400") && e.contains("max-length"), "{e}");
    ctl(&b, &["users", "add", "ops", "pw", "--tags", "monitoring"]);
    let e = ctl_fails(
        &b,
        &["-u", "ops", "-p", "pw", "policies", "delete", "capped"],
    );
    assert!(e.contains("403"), "{e}");

    // Deleting lifts the cap; the next matching policy (without a cap) applies.
    assert_eq!(
        ctl(&b, &["policies", "delete", "capped"]).trim(),
        "policy 'capped' deleted"
    );
    let e = ctl_fails(&b, &["policies", "delete", "capped"]);
    assert!(e.contains("404"), "{e}");
    for i in 4..7 {
        ctl(&b, &["publish", "capped.jobs", &format!("m{i}")]);
    }
    eventually("no cap", || {
        let q = find(&ctl_json(&b, &["queues", "list"]), "name", "capped.jobs").cloned();
        q.is_some_and(|q| q["messages_ready"] == 5 && q["policy"] == "ha")
    });
}

#[test]
fn definitions_export_and_import_round_trip() {
    let a = TestBroker::start();
    ctl(&a, &["vhosts", "add", "prod"]);
    ctl(&a, &["--vhost", "prod", "permissions", "set", "guest"]);
    ctl(
        &a,
        &["users", "add", "app", "app-pw", "--tags", "management"],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "permissions",
            "set",
            "app",
            "--configure",
            "^app\\.",
        ],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "exchanges",
            "declare",
            "orders",
            "-t",
            "topic",
        ],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "exchanges",
            "declare",
            "audit",
            "-t",
            "fanout",
        ],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "queues",
            "declare",
            "orders.eu",
            "--arg",
            "x-message-ttl=60000",
            "--partitions",
            "2",
        ],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "bindings",
            "add",
            "orders",
            "orders.eu",
            "-k",
            "eu.#",
        ],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "bindings",
            "add",
            "orders",
            "audit",
            "--to-exchange",
        ],
    );
    ctl(
        &a,
        &[
            "--vhost",
            "prod",
            "policies",
            "set",
            "orders-cap",
            "^orders\\.",
            r#"{"max-length": 1000, "dead-letter-exchange": "audit"}"#,
            "--apply-to",
            "queues",
            "--priority",
            "3",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defs.json");
    ctl(&a, &["export", file.to_str().unwrap()]);
    let exported: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(exported["product_name"], "Junction");
    assert!(find(&exported["users"], "name", "app").is_some());
    assert_eq!(exported["queues"][0]["partitions"], 2);
    assert_eq!(
        exported["policies"],
        json!([{"vhost": "prod", "name": "orders-cap", "pattern": "^orders\\.",
                "apply-to": "queues", "priority": 3,
                "definition": {"max-length": 1000, "dead-letter-exchange": "audit"}}])
    );

    let b = TestBroker::start();
    let summary = ctl(&b, &["import", file.to_str().unwrap()]);
    assert_eq!(
        summary.trim(),
        "imported 2 vhosts, 2 users, 3 permissions, 1 policies, 2 exchanges, 1 queues, 2 bindings"
    );
    // The imported queue runs with the imported policy.
    let qs = ctl_json(&b, &["--vhost", "prod", "queues", "list"]);
    assert_eq!(
        find(&qs, "name", "orders.eu").unwrap()["policy"],
        "orders-cap"
    );
    // The same definitions come back out; the imported user logs in with its password.
    let again = ctl_json(&b, &["export"]);
    assert_eq!(again, exported);
    assert!(ctl(&b, &["-u", "app", "-p", "app-pw", "overview"]).contains("version"));
    // Importing twice changes nothing.
    ctl(&b, &["import", file.to_str().unwrap()]);
    assert_eq!(ctl_json(&b, &["export"]), exported);

    // A RabbitMQ-style file: tags as a string, parameters ignored, policy keys Junction does not
    // implement imported, kept and named.
    let rabbit = json!({
        "rabbit_version": "3.13.7",
        "users": [{"name": "legacy", "password_hash": exported["users"][0]["password_hash"],
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "administrator"}],
        "vhosts": [{"name": "/"}],
        "permissions": [],
        "policies": [{"vhost": "/", "name": "ha", "pattern": "^legacy\\.", "apply-to": "all",
                      "definition": {"ha-mode": "all", "ha-sync-mode": "automatic",
                                     "message-ttl": 86400000}, "priority": 0}],
        "parameters": [],
        "queues": [{"name": "legacy.q", "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {"x-queue-type": "classic"}}],
        "exchanges": [],
        "bindings": [{"source": "amq.direct", "vhost": "/", "destination": "legacy.q",
                      "destination_type": "queue", "routing_key": "legacy", "arguments": {}}],
    });
    let out = ctl_in(&b, &["import", "-"], &rabbit.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "policy 'ha' of vhost '/': not applied (not implemented): ha-mode, ha-sync-mode"
        ),
        "{stderr}"
    );
    let qs = ctl_json(&b, &["queues", "list"]);
    let legacy = find(&qs, "name", "legacy.q").unwrap();
    assert_eq!(legacy["policy"], "ha");
    assert_eq!(
        legacy["effective_policy_definition"]["message-ttl"],
        86_400_000
    );
    let users = ctl_json(&b, &["users", "list"]);
    assert_eq!(
        find(&users, "name", "legacy").unwrap()["tags"],
        json!(["administrator"])
    );
    let bs = ctl_json(&b, &["bindings", "list"]);
    assert_eq!(
        find(&bs, "destination", "legacy.q").unwrap()["source"],
        "amq.direct"
    );
    let e = ctl_fails(
        &b,
        &["import", dir.path().join("missing.json").to_str().unwrap()],
    );
    assert!(e.contains("missing.json"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_lists_mqtt_sessions_and_clears_retained_messages() {
    use common::mqtt::{v4_options, V4};
    use rumqttc::QoS;
    let b = TestBroker::start();
    let mut o = v4_options(b.mqtt, "meter-1");
    o.set_clean_session(false);
    let mut meter = V4::with(o).await;
    meter.subscribe("meters/+/kwh", QoS::AtLeastOnce).await;
    meter
        .client
        .publish("meters/1/kwh", QoS::AtLeastOnce, true, "17.5")
        .await
        .expect("publish");
    meter
        .until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    meter.disconnect().await;

    let (table, sessions, retained) = tokio::task::block_in_place(|| {
        let table = ctl(&b, &["mqtt", "sessions"]);
        let sessions = ctl_json(&b, &["mqtt", "sessions"]);
        let retained = ctl(&b, &["mqtt", "retained"]);
        (table, sessions, retained)
    });
    let row = table
        .lines()
        .find(|l| l.contains("meter-1"))
        .unwrap_or_else(|| panic!("no meter-1 row in\n{table}"));
    for cell in ["false", "never", "meters/+/kwh:1"] {
        assert!(row.contains(cell), "{cell} missing from {row}");
    }
    assert_eq!(sessions[0]["client_id"], "meter-1");
    assert_eq!(sessions[0]["subscriptions"][0]["qos"], 1);
    assert!(
        retained.contains("meters/1/kwh") && retained.contains("17.5"),
        "{retained}"
    );

    tokio::task::block_in_place(|| {
        let done = ctl(&b, &["mqtt", "clear-retained", "meters/1/kwh"]);
        assert!(done.contains("deleted"), "{done}");
        assert_eq!(ctl_json(&b, &["mqtt", "retained"]), json!([]));
        let err = ctl_fails(&b, &["mqtt", "clear-retained", "meters/1/kwh"]);
        assert!(err.contains("404"), "{err}");
    });
}

#[test]
fn topic_permissions_and_limits() {
    let b = TestBroker::start();
    ctl(&b, &["users", "add", "dev", "pw"]);
    ctl(&b, &["permissions", "set", "dev"]);
    ctl(
        &b,
        &[
            "topic-permissions",
            "set",
            "dev",
            "--write",
            "^devices\\.{username}\\.",
            "--read",
            "^devices\\.",
        ],
    );
    let t = ctl_json(&b, &["topic-permissions", "list"]);
    assert_eq!(
        t,
        json!([{"user": "dev", "vhost": "/", "exchange": "amq.topic",
                "write": "^devices\\.{username}\\.", "read": "^devices\\."}])
    );
    ctl(&b, &["limits", "vhost", "max-queues", "100"]);
    ctl(&b, &["limits", "user", "dev", "max-connections", "3"]);
    let l = ctl_json(&b, &["limits", "list"]);
    assert_eq!(
        l,
        json!([{"vhost": "/", "value": {"max-queues": 100}},
               {"user": "dev", "value": {"max-connections": 3}}])
    );
    let e = ctl_fails(&b, &["limits", "user", "dev", "max-sockets", "3"]);
    assert!(e.contains("unknown user limit"), "{e}");
    ctl(&b, &["limits", "user", "dev", "max-connections", "-1"]);
    ctl(&b, &["topic-permissions", "clear", "dev"]);
    assert_eq!(ctl_json(&b, &["topic-permissions", "list"]), json!([]));
    assert_eq!(
        ctl_json(&b, &["limits", "list"]),
        json!([{"vhost": "/", "value": {"max-queues": 100}}])
    );
}

#[test]
fn memory_watermark_and_disk_free_limit_raise_and_clear_the_alarms() {
    let b = TestBroker::start();
    let overview = || ctl_json(&b, &["overview"]);
    assert_eq!(overview()["alarms"]["memory"], false);
    // One byte: no broker stays under it, and memory is checked at once.
    let out = ctl(&b, &["limits", "memory-watermark", "--absolute", "1"]);
    assert!(out.contains("alarm on"), "{out}");
    let m = ctl_json(&b, &["limits", "memory-watermark"]);
    assert_eq!(m["absolute"], 1);
    assert_eq!(m["alarm"], true);
    assert!(m["used"].as_u64().unwrap() > 0, "{m}");
    assert_eq!(overview()["alarms"]["memory"], true);
    assert_eq!(
        overview()["alarms"]["publishing_blocked"],
        "memory use above the high watermark"
    );
    let m = ctl_json(&b, &["limits", "memory-watermark", "0.9"]);
    assert_eq!(m["fraction"], 0.9);
    assert_eq!(m["alarm"], false);
    assert_eq!(overview()["alarms"]["memory"], false);
    let e = ctl_fails(&b, &["limits", "memory-watermark", "2"]);
    assert!(e.contains("between 0 and 1"), "{e}");
    let e = ctl_fails(&b, &["limits", "memory-watermark", "lots"]);
    assert!(e.contains("not a fraction"), "{e}");

    // More free space than any disk has: the disk alarm.
    let d = ctl_json(&b, &["limits", "disk-free-limit", "16000000TB"]);
    assert_eq!(d["limit"], 16_000_000_000_000_000_000u64);
    assert_eq!(d["alarm"], true);
    assert_eq!(overview()["alarms"]["disk"], true);
    let out = ctl(&b, &["limits", "disk-free-limit", "1MiB"]);
    assert!(out.contains("no alarm"), "{out}");
    let d = ctl_json(&b, &["limits", "disk-free-limit"]);
    assert_eq!(d["limit"], 1 << 20);
    assert!(d["free"].as_u64().unwrap() > 1 << 20, "{d}");
    assert_eq!(overview()["alarms"]["disk"], false);

    // Administrators only.
    ctl(&b, &["users", "add", "viewer", "pw"]);
    let e = ctl_fails(
        &b,
        &[
            "-u",
            "viewer",
            "-p",
            "pw",
            "limits",
            "disk-free-limit",
            "1GB",
        ],
    );
    assert!(e.contains("403"), "{e}");
}
