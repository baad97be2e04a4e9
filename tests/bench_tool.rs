//! The load generator itself (`junction-bench`, through its library) against the real broker:
//! short runs of every protocol with confirms or QoS 1 and 2 must count every message once,
//! with nothing lost and nothing duplicated, and report what they measured. No timings are
//! asserted.

mod common;

use clap::Parser;
use common::TestBroker;
use serde_json::Value;

async fn bench(args: &[&str]) -> Value {
    let cli = junction_bench::Cli::try_parse_from(["junction-bench"].iter().chain(args).copied())
        .expect("arguments");
    junction_bench::run(cli).await.expect("run")
}

/// Every message reached every consumer it should, once.
fn assert_exact(r: &Value, expected: u64) {
    assert_eq!(
        r["sent"].as_u64().unwrap() * r["fanout"].as_u64().unwrap(),
        expected,
        "{r}"
    );
    assert_eq!(r["received"], expected, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["latency_us"]["samples"], expected, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_qos1_fan_out_delivers_each_message_to_each_subscriber_once() {
    let b = TestBroker::start();
    let addr = b.mqtt.to_string();
    let pid = b.pid().to_string();
    let r = bench(&[
        "mqtt",
        "--addr",
        &addr,
        "--qos",
        "1",
        "--count",
        "3000",
        "--consumers",
        "3",
        "--broker-pid",
        &pid,
        "--json",
    ])
    .await;
    assert_exact(&r, 9000);
    assert_eq!(r["mode"], "3.1.1 qos1");
    // The broker was watched by its pid.
    assert!(r["broker"]["rss_end_kib"].as_u64().unwrap() > 0, "{r}");
    assert!(r["broker"]["cpu_s"].as_f64().is_some(), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_qos2_with_two_publishers_loses_and_duplicates_nothing() {
    let b = TestBroker::start();
    let addr = b.mqtt.to_string();
    let r = bench(&[
        "mqtt",
        "--addr",
        &addr,
        "--mqtt",
        "5",
        "--qos",
        "2",
        "--count",
        "2000",
        "--producers",
        "2",
        "--json",
    ])
    .await;
    assert_exact(&r, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_shared_subscription_splits_messages_between_subscribers() {
    let b = TestBroker::start();
    let addr = b.mqtt.to_string();
    let r = bench(&[
        "mqtt",
        "--addr",
        &addr,
        "--qos",
        "1",
        "--count",
        "2000",
        "--consumers",
        "2",
        "--shared",
        "--json",
    ])
    .await;
    // Competing consumers: each message once in all, not once per subscriber.
    assert_exact(&r, 2000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_confirms_and_acks_lose_and_duplicate_nothing() {
    let b = TestBroker::start();
    let addr = b.amqp.to_string();
    let r = bench(&[
        "amqp",
        "--addr",
        &addr,
        "--count",
        "4000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--batch",
        "16",
        "--window",
        "64",
        "--json",
    ])
    .await;
    assert_exact(&r, 4000);
    assert_eq!(r["mode"], "persistent+confirms+acks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_receipts_and_client_individual_acks_lose_and_duplicate_nothing() {
    let b = TestBroker::start();
    let addr = b.stomp.to_string();
    let r = bench(&[
        "stomp",
        "--addr",
        &addr,
        "--count",
        "3000",
        "--ack",
        "client-individual",
        "--batch",
        "16",
        "--window",
        "8",
        "--json",
    ])
    .await;
    assert_exact(&r, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_confirms_lose_and_duplicate_nothing() {
    let b = TestBroker::start();
    let addr = b.native.to_string();
    let r = bench(&[
        "native", "--addr", &addr, "--count", "3000", "--batch", "10", "--window", "8", "--json",
    ])
    .await;
    assert_exact(&r, 3000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_all_connect_and_stay_up_while_held() {
    let b = TestBroker::start();
    for (protocol, addr) in [
        ("mqtt", b.mqtt),
        ("stomp", b.stomp),
        ("amqp", b.amqp),
        ("native", b.native),
    ] {
        let addr = addr.to_string();
        let pid = b.pid().to_string();
        let r = bench(&[
            "idle",
            "--protocol",
            protocol,
            "--addr",
            &addr,
            "--connections",
            "60",
            "--sources",
            "3",
            "--hold",
            "1",
            "--keep-alive",
            "2",
            "--broker-pid",
            &pid,
            "--json",
        ])
        .await;
        assert_eq!(r["established"], 60, "{protocol}: {r}");
        assert_eq!(r["failed"], 0, "{r}");
        assert_eq!(r["dropped"], 0, "{r}");
        assert!(r["broker"]["rss_held_kib"].as_u64().unwrap() > 0, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_request_reply_answers_every_request_once() {
    let b = TestBroker::start();
    let addr = b.mqtt.to_string();
    let r = bench(&[
        "mqtt",
        "--addr",
        &addr,
        "--qos",
        "1",
        "--request-reply",
        "--count",
        "1000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--window",
        "8",
        "--json",
    ])
    .await;
    assert_exact(&r, 1000);
    assert_eq!(r["mode"], "3.1.1 qos1 request/reply");
}

/// The request/reply scenario's common checks: every request answered once, each reply with
/// its own correlation id (a mismatch counts as an error).
fn assert_request_reply(r: &Value, expected: u64, mode: &str) {
    assert_exact(r, expected);
    assert_eq!(r["mode"], mode, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_request_reply_answers_every_request_once_with_its_correlation_id() {
    let b = TestBroker::start();
    let addr = b.amqp.to_string();
    let r = bench(&[
        "amqp",
        "--addr",
        &addr,
        "--request-reply",
        "--count",
        "1000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--window",
        "8",
        "--json",
    ])
    .await;
    assert_request_reply(&r, 1000, "persistent+request/reply+acks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_request_reply_through_a_temp_queue_answers_every_request_once() {
    let b = TestBroker::start();
    let addr = b.stomp.to_string();
    let r = bench(&[
        "stomp",
        "--addr",
        &addr,
        "--request-reply",
        "--ack",
        "client-individual",
        "--count",
        "1000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--batch",
        "4",
        "--window",
        "8",
        "--json",
    ])
    .await;
    assert_request_reply(&r, 1000, "transient+request/reply+client-individual");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_request_reply_answers_every_request_once_with_its_correlation_id() {
    let b = TestBroker::start();
    let addr = b.native.to_string();
    let r = bench(&[
        "native",
        "--addr",
        &addr,
        "--request-reply",
        "--count",
        "1000",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--window",
        "8",
        "--json",
    ])
    .await;
    assert_request_reply(&r, 1000, "confirms request/reply");
}
