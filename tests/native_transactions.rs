//! Transactional messages through the SDK: commit, rollback, check-back to another producer
//! of the group after the first one died, every state across a restart and a crash, and the
//! default outcome after the last check-back.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::native::{client, next, text_of, WAIT};
use common::TestBroker;
use junction_sdk::{
    Consumer, ConsumerOptions, Destination, HalfMessage, Message, TransactionState,
};

fn fast_checks(max_checks: &str) -> Vec<(&'static str, String)> {
    vec![
        ("JUNCTION_TRANSACTIONS_CHECK_AFTER_MS", "300".into()),
        ("JUNCTION_TRANSACTIONS_CHECK_INTERVAL_MS", "300".into()),
        ("JUNCTION_TRANSACTIONS_MAX_CHECKS", max_checks.into()),
    ]
}

fn env<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

async fn quiet(c: &mut Consumer, ms: u64) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(ms), c.next()).await {
        panic!("unexpected delivery {:?}", d.map(|d| d.body));
    }
}

fn unknown(_: &HalfMessage) -> TransactionState {
    TransactionState::Unknown
}

#[tokio::test]
async fn commit_delivers_and_rollback_drops_a_half_message() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("orders", 1).await.unwrap();
    let mut cons = c.subscribe(ConsumerOptions::new("orders")).await.unwrap();
    let tp = c.transaction_producer("shop", unknown).await.unwrap();
    let dest = Destination::queue("orders");

    let tx = tp
        .send(&dest, Message::new("o1").key("order-1"))
        .await
        .unwrap();
    quiet(&mut cons, 200).await; // a half message is invisible
    let receipt = tx.commit().await.unwrap();
    assert_eq!(receipt.routes.len(), 1);
    assert_eq!(receipt.routes[0].queue, "orders");
    let d = next(&mut cons).await;
    assert_eq!(text_of(&d), "o1");
    assert_eq!(d.offset, receipt.routes[0].offset);
    d.ack().await.unwrap();

    let tx = tp.send(&dest, Message::new("o2")).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = tp.send(&dest, Message::new("o3")).await.unwrap();
    tx.commit().await.unwrap();
    let d = next(&mut cons).await;
    assert_eq!(
        text_of(&d),
        "o3",
        "the rolled-back message is never delivered"
    );
    d.ack().await.unwrap();
    quiet(&mut cons, 300).await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn check_back_asks_another_producer_of_the_group_after_the_first_died() {
    let e = fast_checks("50");
    let b = TestBroker::start_with(&env(&e));
    let c = client(&b).await;
    c.admin().create_topic("orders", 1).await.unwrap();
    let mut cons = c.subscribe(ConsumerOptions::new("orders")).await.unwrap();

    let a = client(&b).await;
    let tp_a = a.transaction_producer("shop", unknown).await.unwrap();
    tp_a.send(
        &Destination::queue("orders"),
        Message::new("h1").key("order-9"),
    )
    .await
    .unwrap();
    drop(tp_a);
    drop(a); // dies before ending the transaction

    type Asked = Vec<(String, Vec<String>)>;
    let asked: Arc<Mutex<Asked>> = Arc::default();
    let asked2 = Arc::clone(&asked);
    let other = client(&b).await;
    let _tp_b = other
        .transaction_producer("shop", move |h: &HalfMessage| {
            asked2.lock().unwrap().push((
                String::from_utf8_lossy(&h.body).into(),
                h.properties.keys.clone(),
            ));
            TransactionState::Commit
        })
        .await
        .unwrap();
    let d = next(&mut cons).await;
    assert_eq!(text_of(&d), "h1");
    d.ack().await.unwrap();
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked, [("h1".to_string(), vec!["order-9".to_string()])]);
    quiet(&mut cons, 500).await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn every_transaction_state_survives_a_restart_and_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let e = fast_checks("100000");
    let mut b = TestBroker::start_in(tmp.path(), &env(&e));
    let c = client(&b).await;
    c.admin().create_topic("ledger", 1).await.unwrap();
    let dest = Destination::queue("ledger");
    let tp = c.transaction_producer("bank", unknown).await.unwrap();
    let committed = tp.send(&dest, Message::new("committed")).await.unwrap();
    let rolled = tp.send(&dest, Message::new("rolled-back")).await.unwrap();
    tp.send(&dest, Message::new("pending")).await.unwrap();
    committed.commit().await.unwrap();
    rolled.rollback().await.unwrap();
    drop(tp);
    c.close().await.unwrap();

    assert!(b.stop().success());
    b = TestBroker::start_in(tmp.path(), &env(&e));
    // One more half message, then a crash.
    let c = client(&b).await;
    let tp = c.transaction_producer("bank", unknown).await.unwrap();
    tp.send(&dest, Message::new("pending-2")).await.unwrap();
    drop(tp);
    c.close().await.unwrap();
    b.kill();
    b = TestBroker::start_in(tmp.path(), &env(&e));

    let c = client(&b).await;
    let decided = Arc::new(AtomicU32::new(0));
    let d2 = Arc::clone(&decided);
    let _tp = c
        .transaction_producer("bank", move |h: &HalfMessage| {
            d2.fetch_add(1, Ordering::SeqCst);
            assert!(
                h.body.starts_with(b"pending"),
                "only pending ones are asked about"
            );
            TransactionState::Commit
        })
        .await
        .unwrap();
    let mut cons = c.subscribe(ConsumerOptions::new("ledger")).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&mut cons).await;
        got.push(text_of(&d));
        d.ack().await.unwrap();
    }
    got.sort();
    assert_eq!(got, ["committed", "pending", "pending-2"]);
    quiet(&mut cons, 800).await;
    assert_eq!(decided.load(Ordering::SeqCst), 2);
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_default_outcome_applies_after_the_last_check_back() {
    let e = fast_checks("3");
    let b = TestBroker::start_with(&env(&e));
    let c = client(&b).await;
    c.admin().create_topic("orders", 1).await.unwrap();
    let mut cons = c.subscribe(ConsumerOptions::new("orders")).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = Arc::clone(&calls);
    let tp = c
        .transaction_producer("shop", move |_: &HalfMessage| {
            c2.fetch_add(1, Ordering::SeqCst);
            TransactionState::Unknown
        })
        .await
        .unwrap();
    tp.send(&Destination::queue("orders"), Message::new("undecided"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "three check-backs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Rolled back (the configured default): never delivered, never asked about again.
    quiet(&mut cons, 1500).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    c.close().await.unwrap();
}
