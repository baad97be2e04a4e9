//! Master -> slave replication with real broker processes: async and sync, the slave's copy
//! read through the SDK, metadata and consumer offsets, catching up after downtime, a network
//! cut between master and slave, and consuming from the slave while the master is down.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::cluster::{wait_until_async, CutProxy, Proc};
use junction_sdk::{
    Client, ClientOptions, ConsumerOptions, Destination, ErrorCode, Message, QueueOptions, SdkError,
};

const WAIT: Duration = Duration::from_secs(60);

fn group(name: &str, id: u64, replication: &str, master_ha: Option<String>) -> String {
    let mut s =
        format!("broker_name = \"{name}\"\nbroker_id = {id}\nreplication = \"{replication}\"\n");
    if let Some(m) = master_ha {
        s.push_str(&format!("master_ha_address = \"{m}\"\n"));
    }
    s
}

async fn client(p: &Proc) -> Client {
    Client::connect(
        ClientOptions::new(p.addr("native").to_string()).request_timeout(Duration::from_secs(20)),
    )
    .await
    .unwrap()
}

/// Every message of `queue`, read with `pull` (no consumer state involved); empty while the
/// queue does not exist there.
async fn pull_all(c: &Client, queue: &str, partitions: u16) -> Vec<String> {
    let mut out = Vec::new();
    for p in 0..partitions {
        let mut at = 0;
        loop {
            let Ok(got) = c.pull(queue, p, at, 500).await else {
                return Vec::new(); // not there (yet)
            };
            if got.messages.is_empty() {
                break;
            }
            at = got.next_offset;
            out.extend(
                got.messages
                    .iter()
                    .map(|m| String::from_utf8(m.body.to_vec()).unwrap()),
            );
        }
    }
    out.sort();
    out
}

async fn same_end(master: &Proc, slave: &Proc) {
    let (m, s) = (master, slave);
    wait_until_async(
        60,
        "the slave to reach the master's CommitLog end",
        || async {
            let end = m.log_end();
            end > 0 && s.log_end() == end
        },
    )
    .await;
}

async fn publish(c: &Client, queue: &str, from: usize, n: usize) {
    let producer = c.producer();
    let dest = Destination::queue(queue);
    let mut confirms = Vec::new();
    for i in from..from + n {
        confirms.push(
            producer
                .send_pipelined(&dest, Message::new(format!("m{i:05}")))
                .await
                .unwrap(),
        );
    }
    for c in confirms {
        c.await.unwrap();
    }
}

fn names(from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("m{i:05}")).collect()
}

/// Waits until the slave holds exactly `want` in `queue` (records and metadata replicated).
async fn slave_holds(c: &Client, queue: &str, partitions: u16, want: &[String]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = pull_all(c, queue, partitions).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the slave holds {} of {} messages",
            got.len(),
            want.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_slave_copies_messages_metadata_and_offsets_and_serves_reads() {
    let master = Proc::broker("master-a", &group("broker-a", 0, "async", None));
    let slave = Proc::broker(
        "slave-a",
        &group("broker-a", 1, "async", Some(master.addr("ha").to_string())),
    );
    let mc = client(&master).await;
    mc.admin()
        .declare_queue(QueueOptions::new("orders").partitions(2))
        .await
        .unwrap();
    publish(&mc, "orders", 0, 300).await;
    // A consumer group takes 100 and acknowledges them.
    let mut consumer = mc
        .subscribe(
            ConsumerOptions::new("orders")
                .group("billing")
                .prefetch(100),
        )
        .await
        .unwrap();
    let mut acked = HashSet::new();
    while acked.len() < 100 {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        d.ack().await.unwrap();
        acked.insert(String::from_utf8(d.body.to_vec()).unwrap());
    }
    consumer.close().await.unwrap();
    same_end(&master, &slave).await;

    // The slave holds the same queue with the same messages at the same offsets.
    let sc = client(&slave).await;
    slave_holds(&sc, "orders", 2, &names(0, 300)).await;
    for p in 0..2 {
        let a = mc.pull("orders", p, 10, 5).await.unwrap();
        let b = sc.pull("orders", p, 10, 5).await.unwrap();
        let offsets = |x: &junction_sdk::Pulled| {
            x.messages
                .iter()
                .map(|m| (m.offset, m.body.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(offsets(&a), offsets(&b), "partition {p}");
    }
    // It refuses writes, saying why.
    let err = sc
        .producer()
        .send(&Destination::queue("orders"), Message::new("x"))
        .await
        .unwrap_err();
    match err {
        SdkError::Server { code, message } => {
            assert_eq!(code, ErrorCode::AccessRefused);
            assert!(message.contains("read-only"), "{message}");
        }
        e => panic!("unexpected {e:?}"),
    }

    // AMQP and MQTT publishers get their protocol's refusal too.
    let conn =
        common::amqp::connect_uri(&format!("amqp://guest:guest@{}/%2f", slave.addr("amqp"))).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let refused = async {
        ch.basic_publish(
            "".into(),
            "orders".into(),
            lapin::options::BasicPublishOptions::default(),
            b"x",
            lapin::BasicProperties::default(),
        )
        .await?
        .await?;
        ch.basic_qos(1, lapin::options::BasicQosOptions::default())
            .await
    };
    let e = tokio::time::timeout(WAIT, refused)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(common::amqp::code(&e), Some(403), "{e}");
    let mut m = common::mqtt::V4::connect(slave.addr("mqtt"), "on-a-slave").await;
    m.client
        .publish("orders", rumqttc::QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    // MQTT 3.1.1 has no negative PUBACK: the slave closes the connection instead.
    loop {
        match m.next().await {
            Ok(rumqttc::Packet::PubAck(_)) => panic!("a slave acknowledged a publish"),
            Ok(_) => {}
            Err(_) => break,
        }
    }

    // The consumer offsets reach the slave (every second, or when they change).
    let http = slave.addr("http");
    wait_until_async(60, "the group's offsets on the slave", || async move {
        common::cluster::http_get(http, "/api/queues/%2F/orders/groups", true)
            .and_then(|g| {
                g.as_array()?
                    .iter()
                    .find(|g| g["name"] == "billing")
                    .map(|g| g.to_string())
            })
            .is_some_and(|g| committed_total(&g) == 100)
    })
    .await;

    // The master dies; the group goes on from the slave, where it left off.
    drop(mc);
    let mut master = master;
    master.kill();
    let mut consumer = sc
        .subscribe(
            ConsumerOptions::new("orders")
                .group("billing")
                .prefetch(500),
        )
        .await
        .unwrap();
    let mut rest = HashSet::new();
    while rest.len() < 200 {
        let d = tokio::time::timeout(WAIT, consumer.next())
            .await
            .expect("the slave delivers what the group had not acknowledged")
            .unwrap()
            .unwrap();
        let body = String::from_utf8(d.body.to_vec()).unwrap();
        assert!(
            !acked.contains(&body),
            "{body} was acknowledged on the master"
        );
        d.ack().await.unwrap();
        rest.insert(body);
    }
}

/// Sum of `committed` over the partitions of a group, from its JSON.
fn committed_total(group_json: &str) -> u64 {
    let g: serde_json::Value = serde_json::from_str(group_json).unwrap();
    g["partitions"]
        .as_array()
        .map(|ps| ps.iter().filter_map(|p| p["committed"].as_u64()).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_catches_up_from_its_own_end_after_downtime() {
    let master = Proc::broker("master-a", &group("broker-a", 0, "async", None));
    let mut slave = Proc::broker(
        "slave-a",
        &group("broker-a", 1, "async", Some(master.addr("ha").to_string())),
    );
    let mc = client(&master).await;
    mc.admin()
        .declare_queue(QueueOptions::new("log").partitions(1))
        .await
        .unwrap();
    publish(&mc, "log", 0, 200).await;
    same_end(&master, &slave).await;
    let before = slave.log_end();
    slave.stop();
    // The master goes on alone: the slave lags by everything published now.
    publish(&mc, "log", 200, 2000).await;
    assert!(master.log_end() > before);
    slave.restart();
    same_end(&master, &slave).await;
    // Caught up: its first replication request, logged before it, asked from its own end.
    assert!(
        slave.logs().contains(&format!("from={before}")),
        "the slave resumes from its own end {before}:\n{}",
        slave.logs()
    );
    let sc = client(&slave).await;
    slave_holds(&sc, "log", 1, &names(0, 2200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_replication_confirms_only_what_the_slave_has() {
    let master = Proc::broker("master-a", &group("broker-a", 0, "sync", None));
    let slave = Proc::broker(
        "slave-a",
        &group("broker-a", 1, "sync", Some(master.addr("ha").to_string())),
    );
    let mc = client(&master).await;
    mc.admin()
        .declare_queue(QueueOptions::new("payments").partitions(1))
        .await
        .unwrap();
    let sc = client(&slave).await;
    // The queue exists on the slave once the metadata arrived.
    let c2 = sc.clone();
    wait_until_async(60, "the queue on the slave", || {
        let c = c2.clone();
        async move { c.pull("payments", 0, 0, 1).await.is_ok() }
    })
    .await;
    let producer = mc.producer();
    for i in 0..30 {
        let r = producer
            .send(
                &Destination::queue("payments"),
                Message::new(format!("p{i}")),
            )
            .await
            .unwrap();
        // Confirmed: so the slave has it already, at the same offset.
        let offset = r.offset().unwrap();
        let on_slave = sc.pull("payments", 0, offset, 1).await.unwrap();
        assert_eq!(
            on_slave.messages.len(),
            1,
            "message {i} confirmed but not on the slave"
        );
        assert_eq!(&on_slave.messages[0].body[..], format!("p{i}").as_bytes());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_cut_stalls_sync_publishes_and_async_ones_go_on() {
    for mode in ["sync", "async"] {
        let master = Proc::broker("master-a", &group("broker-a", 0, mode, None));
        let proxy = CutProxy::start(master.addr("ha"));
        let slave = Proc::broker(
            "slave-a",
            &group("broker-a", 1, mode, Some(proxy.addr.to_string())),
        );
        let mc = client(&master).await;
        mc.admin()
            .declare_queue(QueueOptions::new("q").partitions(1))
            .await
            .unwrap();
        publish(&mc, "q", 0, 50).await;
        same_end(&master, &slave).await;

        proxy.set_cut(true);
        let producer = mc.producer();
        let started = Instant::now();
        let sent = producer
            .send(&Destination::queue("q"), Message::new("during the cut"))
            .await;
        let waited = started.elapsed();
        if mode == "sync" {
            // No slave can store it: the publish waits for sync_timeout_ms, then is refused.
            match sent {
                Err(SdkError::Server { code, .. }) => assert_eq!(code, ErrorCode::InternalError),
                other => panic!("sync publish during a cut: {other:?}"),
            }
            println!("sync publish refused after {waited:?} (sync_timeout_ms = 3000)");
        } else {
            sent.expect("async publishes go on during a cut");
            publish(&mc, "q", 50, 100).await;
        }
        let cut_end = master.log_end();
        assert!(slave.log_end() < cut_end, "nothing crosses the cut");

        proxy.set_cut(false);
        same_end(&master, &slave).await;
        if mode == "sync" {
            // Back in sync: publishes are confirmed again.
            let c = mc.clone();
            wait_until_async(60, "sync publishes to be confirmed again", || {
                let c = c.clone();
                async move {
                    c.producer()
                        .send(&Destination::queue("q"), Message::new("after"))
                        .await
                        .is_ok()
                }
            })
            .await;
        } else {
            let sc = client(&slave).await;
            let mut want = names(0, 150);
            want.push("during the cut".into());
            want.sort();
            slave_holds(&sc, "q", 1, &want).await;
        }
    }
}
