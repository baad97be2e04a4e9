//! Failover through the Raft controllers, with real processes: three controllers, a name
//! server and a 2-master 2-slave cluster in sync mode. The master of one group is killed
//! (kill -9) while a producer publishes with confirms; the controllers promote its in-sync
//! slave, the producer's client follows it through the name server, no confirmed message is
//! lost, and the old master comes back as a slave, cutting what it wrote after its term.
//! AMQP (lapin), MQTT (rumqttc) and STOMP clients find the new master through the name
//! server's route, reconnect to it and publish.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{free_port, http_get, wait_until_async, Proc};
use junction_sdk::{Client, ClientOptions, Destination, Message, QueueOptions, ReconnectOptions};

fn broker_conf(group: &str, id: u64, ns: &str, controllers: &str) -> String {
    format!(
        "broker_name = \"{group}\"\nbroker_id = {id}\nreplication = \"sync\"\n\
         name_servers = [\"{ns}\"]\ncontrollers = [{controllers}]\n"
    )
}

/// From the name server: (broker id, role, epoch, in-sync slave ids) of each broker of `group`.
fn brokers(ns: &Proc, group: &str) -> Vec<(u64, String, u64, Vec<u64>)> {
    let Some(all) = http_get(ns.addr("namesrv"), "/brokers", false) else {
        return Vec::new();
    };
    let mut out: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["broker_name"] == group)
        .map(|b| {
            (
                b["broker_id"].as_u64().unwrap(),
                b["role"].as_str().unwrap().to_string(),
                b["epoch"].as_u64().unwrap(),
                b["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["in_sync"] == true)
                    .map(|r| r["broker_id"].as_u64().unwrap())
                    .collect(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The address of a listener of the group's master, from the name server's route.
fn master_listener(ns: &Proc, group: &str, protocol: &str) -> Option<String> {
    let g = http_get(ns.addr("namesrv"), &format!("/groups/{group}"), false)?;
    g["master"]["listeners"][protocol]
        .as_str()
        .map(str::to_string)
}

async fn pull_all(c: &Client, queue: &str, partitions: u16) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in 0..partitions {
        let mut at = 0;
        while let Ok(got) = c.pull(queue, p, at, 1000).await {
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
    out
}

/// Publishes one message with a publisher confirm over AMQP 0-9-1 (lapin).
async fn amqp_publish(addr: &str, queue: &str, body: &str) {
    let conn = common::amqp::connect_uri(&format!("amqp://guest:guest@{addr}/%2f")).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions::default(),
            body.as_bytes(),
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    conn.close(200, "bye".into()).await.unwrap();
}

/// Sends one message to queue `stomp-in` over STOMP and waits for its receipt.
async fn stomp_publish(addr: &str, body: &str) {
    let mut c = common::stomp::StompClient::connect(addr.parse().unwrap()).await;
    c.publish("/amq/queue/stomp-in", body.as_bytes(), &[]).await;
    c.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_master_killed_under_load_fails_over_without_losing_confirmed_messages() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let _controllers: Vec<Proc> = (1..=3)
        .map(|id| Proc::controller(id, &peers, 3000))
        .collect();
    let ns = Proc::namesrv(1500);
    let ns_addr = ns.addr("namesrv").to_string();
    let ctl_list = ports
        .iter()
        .map(|p| format!("\"127.0.0.1:{p}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut a0 = Proc::broker(
        "broker-a-0",
        &broker_conf("broker-a", 0, &ns_addr, &ctl_list),
    );
    let a1 = Proc::broker(
        "broker-a-1",
        &broker_conf("broker-a", 1, &ns_addr, &ctl_list),
    );
    let _b0 = Proc::broker(
        "broker-b-0",
        &broker_conf("broker-b", 0, &ns_addr, &ctl_list),
    );
    let _b1 = Proc::broker(
        "broker-b-1",
        &broker_conf("broker-b", 1, &ns_addr, &ctl_list),
    );

    // The controllers elect broker 0 of each group; its slave gets in sync.
    for g in ["broker-a", "broker-b"] {
        wait_until_async(90, "a master with an in-sync slave", || async {
            brokers(&ns, g)
                == vec![
                    (0, "master".to_string(), 1, vec![1]),
                    (1, "slave".to_string(), 1, vec![]),
                ]
        })
        .await;
    }
    let admin = Client::connect(ClientOptions::new(a0.addr("native").to_string()))
        .await
        .unwrap();
    admin
        .admin()
        .declare_queue(QueueOptions::new("load").partitions(2))
        .await
        .unwrap();
    admin
        .admin()
        .declare_queue(QueueOptions::new("mqtt-in"))
        .await
        .unwrap();
    admin
        .admin()
        .bind("mqtt-in", "amq.topic", "sensors.#")
        .await
        .unwrap();
    for q in ["amqp-in", "stomp-in"] {
        admin
            .admin()
            .declare_queue(QueueOptions::new(q))
            .await
            .unwrap();
    }
    admin.close().await.unwrap();

    // A producer bound to group a through the name server: it follows the group's master.
    let client = Client::connect(
        ClientOptions::default()
            .address("")
            .name_servers([ns_addr.clone()])
            .broker("broker-a")
            .request_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(2))
            .reconnect(ReconnectOptions {
                initial_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(300),
                ..Default::default()
            }),
    )
    .await
    .unwrap();
    let confirmed: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let failed = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, confirmed, failed, stop) = (
            client.clone(),
            Arc::clone(&confirmed),
            Arc::clone(&failed),
            Arc::clone(&stop),
        );
        tokio::spawn(async move {
            let producer = client.producer();
            let dest = Destination::queue("load");
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                let mut batch = Vec::new();
                for _ in 0..16 {
                    let body = format!("L{i:06}");
                    i += 1;
                    match producer
                        .send_pipelined(&dest, Message::new(body.clone()))
                        .await
                    {
                        Ok(c) => batch.push((body, c)),
                        Err(_) => *failed.lock().unwrap() += 1,
                    }
                }
                for (body, c) in batch {
                    match c.await {
                        Ok(_) => confirmed.lock().unwrap().push((body, Instant::now())),
                        Err(_) => *failed.lock().unwrap() += 1,
                    }
                }
            }
        })
    };
    // AMQP and STOMP publishers of the master before it dies (addresses from the route).
    amqp_publish(
        &master_listener(&ns, "broker-a", "amqp").unwrap(),
        "amqp-in",
        "a1",
    )
    .await;
    stomp_publish(&master_listener(&ns, "broker-a", "stomp").unwrap(), "s1").await;
    // An MQTT device publishing to the master before it dies.
    let mqtt_before = master_listener(&ns, "broker-a", "mqtt").unwrap();
    let mut m = common::mqtt::V4::connect(mqtt_before.parse().unwrap(), "sensor-1").await;
    m.client
        .publish("sensors/t1", rumqttc::QoS::AtLeastOnce, false, "20.0")
        .await
        .unwrap();
    m.until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    let count = |c: &Arc<Mutex<Vec<(String, Instant)>>>| c.lock().unwrap().len();
    wait_until_async(60, "500 confirmed publishes", || async {
        count(&confirmed) >= 500
    })
    .await;

    a0.kill();
    let killed = Instant::now();
    let before = count(&confirmed);
    wait_until_async(90, "publishes confirmed by the new master", || async {
        count(&confirmed) >= before + 300
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    load.await.unwrap();
    let first_after = confirmed
        .lock()
        .unwrap()
        .iter()
        .map(|(_, at)| *at)
        .find(|at| *at > killed)
        .unwrap();
    let failover = first_after - killed;
    println!(
        "failover: {} ms from kill -9 of the master to the first publish confirmed by the promoted slave \
         ({} confirmed, {} failed or unknown)",
        failover.as_millis(),
        count(&confirmed),
        failed.lock().unwrap()
    );
    wait_until_async(60, "broker 1 as master of term 2", || async {
        brokers(&ns, "broker-a")
            .first()
            .is_some_and(|b| (b.0, b.1.as_str(), b.2) == (1, "master", 2))
    })
    .await;

    // Zero confirmed messages lost: every one is on the promoted slave.
    let new_master = Client::connect(ClientOptions::new(a1.addr("native").to_string()))
        .await
        .unwrap();
    let stored = pull_all(&new_master, "load", 2).await;

    let lost: Vec<String> = confirmed
        .lock()
        .unwrap()
        .iter()
        .map(|(b, _)| b.clone())
        .filter(|b| !stored.contains(b))
        .collect();
    assert!(
        lost.is_empty(),
        "{} confirmed messages lost: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );

    // The MQTT device lost its broker; it reconnects to the address the name server's route
    // gives for the group's master now (the promoted slave) and goes on publishing.
    loop {
        if m.next().await.is_err() {
            break;
        }
    }
    let mqtt = master_listener(&ns, "broker-a", "mqtt").expect("the route names the new master");
    assert_ne!(mqtt, mqtt_before);
    assert_eq!(mqtt, a1.addr("mqtt").to_string());
    let mut m = common::mqtt::V4::connect(mqtt.parse().unwrap(), "sensor-1").await;
    m.client
        .publish("sensors/t1", rumqttc::QoS::AtLeastOnce, false, "21.5")
        .await
        .unwrap();
    m.until(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await;
    let got = new_master.pull("mqtt-in", 0, 0, 10).await.unwrap();
    let bodies: Vec<&[u8]> = got.messages.iter().map(|m| &m.body[..]).collect();
    assert_eq!(
        bodies,
        vec![&b"20.0"[..], &b"21.5"[..]],
        "both readings, the first confirmed by the old master"
    );

    // AMQP and STOMP clients reconnect the same way: to the master the route names now.
    let amqp = master_listener(&ns, "broker-a", "amqp").unwrap();
    assert_eq!(amqp, a1.addr("amqp").to_string());
    amqp_publish(&amqp, "amqp-in", "a2").await;
    stomp_publish(&master_listener(&ns, "broker-a", "stomp").unwrap(), "s2").await;
    for (q, want) in [("amqp-in", ["a1", "a2"]), ("stomp-in", ["s1", "s2"])] {
        let got = new_master.pull(q, 0, 0, 10).await.unwrap();
        let bodies: Vec<&[u8]> = got.messages.iter().map(|m| &m.body[..]).collect();
        assert_eq!(bodies, vec![want[0].as_bytes(), want[1].as_bytes()], "{q}");
    }

    // The old master comes back: a slave now, with exactly the new master's log.
    a0.restart();
    wait_until_async(90, "the old master back as an in-sync slave", || async {
        brokers(&ns, "broker-a")
            == vec![
                (0, "slave".to_string(), 2, vec![]),
                (1, "master".to_string(), 2, vec![0]),
            ]
    })
    .await;
    let old = Client::connect(ClientOptions::new(a0.addr("native").to_string()))
        .await
        .unwrap();
    wait_until_async(
        60,
        "the old master to hold the new master's log",
        || async {
            a0.log_end() == a1.log_end()
                && pull_all(&old, "load", 2).await == pull_all(&new_master, "load", 2).await
        },
    )
    .await;
}
