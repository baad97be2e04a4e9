//! Name servers and routing with real processes: two name servers, two broker groups of a
//! master and a slave each (2m-2s). Brokers register with both name servers; the SDK's
//! cluster producer sends round robin over both masters' partitions, cluster consumers of one
//! group share every master's partitions, a dead name server is skipped and a silent broker
//! leaves the routes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::cluster::{http_get, wait_until_async, Proc};
use junction_sdk::{
    Client, ClientOptions, Cluster, ClusterConsumer, ConsumerOptions, Message, QueueOptions,
};

fn broker_conf(group: &str, id: u64, master_ha: Option<String>, ns: &[String]) -> String {
    let list = ns
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!(
        "cluster_name = \"test\"\nbroker_name = \"{group}\"\nbroker_id = {id}\nname_servers = [{list}]\n"
    );
    if let Some(m) = master_ha {
        s.push_str(&format!("master_ha_address = \"{m}\"\n"));
    }
    s
}

/// The route of `topic` from one name server: (group, master id, slave ids, partitions).
fn route(ns: &Proc, topic: &str) -> Vec<(String, Option<u64>, Vec<u64>, u64)> {
    let Some(r) = http_get(ns.addr("namesrv"), &format!("/routes/{topic}"), false) else {
        return Vec::new();
    };
    r["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["broker_name"].as_str().unwrap().to_string(),
                g["master"]["broker_id"].as_u64(),
                g["slaves"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["broker_id"].as_u64().unwrap())
                    .collect(),
                g["partitions"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn take(c: &mut ClusterConsumer, n: usize) -> Vec<(String, u16, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let d = tokio::time::timeout(Duration::from_secs(60), c.next())
            .await
            .expect("a delivery within 60 s")
            .unwrap()
            .unwrap();
        d.delivery.ack().await.unwrap();
        out.push((
            d.broker_name.clone(),
            d.delivery.partition,
            String::from_utf8(d.delivery.body.to_vec()).unwrap(),
        ));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_masters_share_a_topic_through_two_name_servers() {
    let mut ns1 = Proc::namesrv(1500);
    let ns2 = Proc::namesrv(1500);
    let ns: Vec<String> = [&ns1, &ns2]
        .iter()
        .map(|p| p.addr("namesrv").to_string())
        .collect();
    let a0 = Proc::broker("broker-a-0", &broker_conf("broker-a", 0, None, &ns));
    let mut a1 = Proc::broker(
        "broker-a-1",
        &broker_conf("broker-a", 1, Some(a0.addr("ha").to_string()), &ns),
    );
    let b0 = Proc::broker("broker-b-0", &broker_conf("broker-b", 0, None, &ns));
    let _b1 = Proc::broker(
        "broker-b-1",
        &broker_conf("broker-b", 1, Some(b0.addr("ha").to_string()), &ns),
    );
    for m in [&a0, &b0] {
        let c = Client::connect(ClientOptions::new(m.addr("native").to_string()))
            .await
            .unwrap();
        c.admin()
            .declare_queue(QueueOptions::new("orders").partitions(2))
            .await
            .unwrap();
        c.close().await.unwrap();
    }
    // Both name servers learn the whole cluster from the brokers alone.
    let want = vec![
        ("broker-a".to_string(), Some(0), vec![1], 2),
        ("broker-b".to_string(), Some(0), vec![1], 2),
    ];
    for n in [&ns1, &ns2] {
        wait_until_async(60, "both groups in the route", || async {
            route(n, "orders") == want
        })
        .await;
    }

    let cluster = Cluster::connect(ClientOptions::default().name_servers(ns.clone()))
        .await
        .unwrap();
    // Two members of one consumer group, on every master.
    let mut c1 = cluster
        .subscribe(
            ConsumerOptions::new("orders")
                .group("g")
                .exclusive_partitions(true),
        )
        .await
        .unwrap();
    let mut c2 = cluster
        .subscribe(
            ConsumerOptions::new("orders")
                .group("g")
                .exclusive_partitions(true),
        )
        .await
        .unwrap();
    wait_until_async(60, "both consumers on both groups", || async {
        c1.groups().len() == 2 && c2.groups().len() == 2
    })
    .await;

    // Round robin over the masters, and over each master's partitions.
    let producer = cluster.producer("orders");
    let mut spread: HashMap<(String, u16), usize> = HashMap::new();
    for i in 0..40 {
        let r = producer.send(Message::new(format!("o{i}"))).await.unwrap();
        *spread
            .entry((r.broker_name.clone(), r.receipt.partition().unwrap()))
            .or_default() += 1;
    }
    let expected: HashMap<(String, u16), usize> = [
        (("broker-a".to_string(), 0), 10),
        (("broker-a".to_string(), 1), 10),
        (("broker-b".to_string(), 0), 10),
        (("broker-b".to_string(), 1), 10),
    ]
    .into();
    assert_eq!(spread, expected);

    // Each member gets one partition of each master: 10 + 10 messages, from both groups.
    let got1 = take(&mut c1, 20).await;
    let got2 = take(&mut c2, 20).await;
    for got in [&got1, &got2] {
        let from_a = got.iter().filter(|(g, _, _)| g == "broker-a").count();
        assert_eq!(from_a, 10, "{got:?}");
    }
    let mut all: Vec<String> = got1
        .iter()
        .chain(&got2)
        .map(|(_, _, b)| b.clone())
        .collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 40, "every message once");

    // One name server down: routes come from the other.
    ns1.kill();
    let cluster2 = Cluster::connect(ClientOptions::default().name_servers(ns.clone()))
        .await
        .unwrap();
    let r = cluster2
        .producer("orders")
        .send(Message::new("after ns1"))
        .await
        .unwrap();
    assert!(r.broker_name.starts_with("broker-"));

    // A broker that stops heartbeating leaves the routes after the timeout.
    a1.kill();
    wait_until_async(60, "the dead slave to leave the route", || async {
        route(&ns2, "orders")
            == vec![
                ("broker-a".to_string(), Some(0), vec![], 2),
                ("broker-b".to_string(), Some(0), vec![1], 2),
            ]
    })
    .await;
}
