//! Retry with back-off and dead-lettering per consumer group, through the SDK: the retry
//! schedule, the dead-letter queue, re-drive, consume timeouts and rejects.

mod common;

use std::time::{Duration, Instant};

use common::native::{client, next, text_of};
use common::TestBroker;
use junction_sdk::{Admin, Consumer, ConsumerOptions, Destination, Message, RetryPolicy};

async fn quiet(c: &mut Consumer) {
    if let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(800), c.next()).await {
        panic!("unexpected delivery {:?}", d.map(|d| d.body));
    }
}

fn header<'a>(p: &'a junction_sdk::Properties, name: &str) -> Option<&'a str> {
    p.header(name).and_then(|v| std::str::from_utf8(v).ok())
}

fn policy(max_attempts: u32, backoff_ms: Vec<u64>, consume_timeout_ms: u64) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        backoff_ms,
        consume_timeout_ms,
    }
}

#[tokio::test]
async fn retry_schedule_then_dead_letter_queue_then_redrive() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("payments", 1).await.unwrap();
    let mut ledger = c
        .subscribe(
            ConsumerOptions::new("payments")
                .group("ledger")
                .retry(policy(3, vec![300, 600], 0)),
        )
        .await
        .unwrap();
    let mut audit = c
        .subscribe(ConsumerOptions::new("payments").group("audit"))
        .await
        .unwrap();
    let p = c.producer();
    let dest = Destination::queue("payments");
    p.send(&dest, Message::new("p1").key("pay-1"))
        .await
        .unwrap();
    p.send(&dest, Message::new("p2")).await.unwrap();

    // Attempt 1 fails; the group's offsets move on (p2 comes before p1's retry).
    let d = next(&mut ledger).await;
    assert_eq!((text_of(&d).as_str(), d.delivery_count), ("p1", 1));
    let mut failed_at = Instant::now();
    d.nack(true).await.unwrap();
    let d = next(&mut ledger).await;
    assert_eq!(text_of(&d), "p2");
    d.ack().await.unwrap();
    // Attempts 2 and 3 come after the back-off steps, from the group's retry queue.
    for (attempt, backoff) in [(2u32, 300u64), (3, 600)] {
        let d = next(&mut ledger).await;
        assert_eq!(text_of(&d), "p1");
        assert!(
            failed_at.elapsed() >= Duration::from_millis(backoff),
            "attempt {attempt} came before its back-off"
        );
        assert_eq!(d.delivery_count, attempt);
        assert_eq!(d.queue, "%RETRY%payments%ledger");
        assert_eq!(
            header(&d.properties, "x-retry-count"),
            Some(&*(attempt - 1).to_string())
        );
        assert_eq!(header(&d.properties, "x-origin-queue"), Some("payments"));
        failed_at = Instant::now();
        d.nack(true).await.unwrap();
    }
    // Out of attempts: the group stops getting it; the other group got it once.
    quiet(&mut ledger).await;
    let a: Vec<String> = [next(&mut audit).await, next(&mut audit).await]
        .iter()
        .map(text_of)
        .collect();
    assert_eq!(a, ["p1", "p2"]);

    // The dead-letter queue holds it, with why and where it came from.
    let (retry_q, dlq) = Admin::retry_queues("payments", "ledger");
    assert_eq!(dlq, "%DLQ%payments%ledger");
    let pulled = c.pull(&dlq, 0, 0, 10).await.unwrap();
    assert_eq!(pulled.messages.len(), 1);
    let dead = &pulled.messages[0];
    assert_eq!(&dead.body[..], b"p1");
    assert_eq!(
        header(&dead.properties, "x-dlq-reason"),
        Some("max_attempts")
    );
    assert_eq!(header(&dead.properties, "x-retry-count"), Some("3"));
    assert_eq!(
        header(&dead.properties, "x-retry-queue"),
        Some(retry_q.as_str())
    );
    assert_eq!(dead.properties.keys, ["pay-1"]);

    // Re-driven: back to this group only, with a fresh count.
    assert_eq!(c.admin().redrive(&dlq, 100).await.unwrap(), 1);
    let d = next(&mut ledger).await;
    assert_eq!((text_of(&d).as_str(), d.delivery_count), ("p1", 1));
    d.ack().await.unwrap();
    quiet(&mut audit).await;
    assert_eq!(c.admin().redrive(&dlq, 100).await.unwrap(), 0);
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_consume_timeout_fails_the_delivery_and_a_reject_dead_letters_at_once() {
    let b = TestBroker::start();
    let c = client(&b).await;
    c.admin().create_topic("jobs", 1).await.unwrap();
    let mut workers = c
        .subscribe(
            ConsumerOptions::new("jobs")
                .group("workers")
                .retry(policy(5, vec![200], 700)),
        )
        .await
        .unwrap();
    let p = c.producer();
    p.send(&Destination::queue("jobs"), Message::new("slow"))
        .await
        .unwrap();
    let first = next(&mut workers).await;
    assert_eq!(first.delivery_count, 1);
    let sent = Instant::now();
    // Not settled within 700 ms: retried after 200 ms more.
    let again = next(&mut workers).await;
    assert_eq!(text_of(&again), "slow");
    assert_eq!(again.delivery_count, 2);
    assert!(sent.elapsed() >= Duration::from_millis(900));
    first.ack().await.unwrap(); // too late: it no longer counts
    again.nack(false).await.unwrap(); // rejected: straight to the dead-letter queue
    quiet(&mut workers).await;
    let (_, dlq) = Admin::retry_queues("jobs", "workers");
    let pulled = c.pull(&dlq, 0, 0, 10).await.unwrap();
    assert_eq!(pulled.messages.len(), 1);
    assert_eq!(
        header(&pulled.messages[0].properties, "x-dlq-reason"),
        Some("rejected")
    );
    // Anyone may consume a dead-letter queue.
    let mut dead = c.subscribe(ConsumerOptions::new(&dlq)).await.unwrap();
    let d = next(&mut dead).await;
    assert_eq!(text_of(&d), "slow");
    d.ack().await.unwrap();
    c.close().await.unwrap();
}
