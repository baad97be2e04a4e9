//! Retry with back-off and a dead-letter queue per consumer group (RocketMQ's `%RETRY%` and
//! `%DLQ%` topics).
//!
//! A group consuming with a [`RetryPolicy`] does not requeue a failed message in place: the
//! message (a `nack` with requeue, or a delivery not settled within the consume timeout) is
//! settled in its queue, so the group's offsets move on, and a copy is scheduled for the
//! group's retry queue after the policy's next back-off step, carrying `x-retry-count`. The
//! group's consumers also consume its retry queue. After `max_attempts` deliveries in all, or
//! at a `nack` without requeue, the copy goes to the group's dead-letter queue instead, where
//! any client can consume it, and from where [`crate::core::Session::redrive`] sends it back
//! through the retry queue.
//!
//! Queue names: `%RETRY%<queue>` / `%DLQ%<queue>` for a queue's default group,
//! `%RETRY%<queue>%<group>` / `%DLQ%<queue>%<group>` for a named group.

use std::time::{Duration, Instant};

use super::{Actor, ConsumerId, Ctx, StoredMeta};
use crate::core::message::{Message, Value};

/// Counts failed deliveries so far, on messages in retry and dead-letter queues.
pub const RETRY_COUNT_HEADER: &str = "x-retry-count";
/// On a dead-lettered message: the retry queue a re-drive sends it to.
pub const RETRY_QUEUE_HEADER: &str = "x-retry-queue";
/// Prefix of retry queue names.
pub const RETRY_PREFIX: &str = "%RETRY%";
/// Prefix of dead-letter queue names.
pub const DLQ_PREFIX: &str = "%DLQ%";

/// RocketMQ's delay levels from 1 s: the default back-off.
pub const DEFAULT_BACKOFF_MS: [u64; 18] = [
    1_000, 5_000, 10_000, 30_000, 60_000, 120_000, 180_000, 240_000, 300_000, 360_000, 420_000,
    480_000, 540_000, 600_000, 1_200_000, 1_800_000, 3_600_000, 7_200_000,
];
/// Default deliveries before a message is dead-lettered (RocketMQ's `maxReconsumeTimes`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 16;

/// How a consumer group retries failed messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries in all before dead-lettering (0: [`DEFAULT_MAX_ATTEMPTS`]).
    pub max_attempts: u32,
    /// Wait before the n-th retry: `backoff_ms[n - 1]`, the last repeating (empty:
    /// [`DEFAULT_BACKOFF_MS`]).
    pub backoff_ms: Vec<u64>,
    /// A delivery not settled within this long fails (0: never).
    pub consume_timeout_ms: u64,
    /// The group's retry queue (set by the session).
    pub retry_queue: String,
    /// The group's dead-letter queue (set by the session).
    pub dlq: String,
}

impl RetryPolicy {
    /// A policy with these limits (queue names are filled in at subscribe).
    pub fn new(max_attempts: u32, backoff_ms: Vec<u64>, consume_timeout_ms: u64) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff_ms,
            consume_timeout_ms,
            retry_queue: String::new(),
            dlq: String::new(),
        }
    }

    /// The retry and dead-letter queue names of `group` of `queue`.
    pub fn queue_names(queue: &str, group: &str) -> (String, String) {
        let label = if group.is_empty() {
            queue.to_string()
        } else {
            format!("{queue}%{group}")
        };
        (
            format!("{RETRY_PREFIX}{label}"),
            format!("{DLQ_PREFIX}{label}"),
        )
    }

    fn max(&self) -> u32 {
        if self.max_attempts == 0 {
            DEFAULT_MAX_ATTEMPTS
        } else {
            self.max_attempts
        }
    }

    /// The wait before retry number `n` (from 1).
    fn backoff(&self, n: u32) -> u64 {
        let steps: &[u64] = if self.backoff_ms.is_empty() {
            &DEFAULT_BACKOFF_MS
        } else {
            &self.backoff_ms
        };
        let i = (n.max(1) - 1) as usize;
        steps.get(i).or(steps.last()).copied().unwrap_or(1_000)
    }
}

/// Failed deliveries a message had before this queue (its `x-retry-count`).
pub(crate) fn earlier_failures(p: &crate::core::Properties) -> u32 {
    p.header(RETRY_COUNT_HEADER)
        .and_then(|v| v.as_str_lossy()?.parse().ok())
        .unwrap_or(0)
}

fn set_header(headers: &mut Vec<(String, Value)>, k: &str, v: Value) {
    headers.retain(|(name, _)| name != k);
    headers.push((k.into(), v));
}

impl Ctx {
    /// A delivery of a group with `policy` failed (`count` deliveries from this queue so far):
    /// schedules its retry, or dead-letters it when `reject` or out of attempts.
    pub(super) fn retry_or_dead_letter(
        &self,
        policy: &RetryPolicy,
        key: junction_store::QueueKey,
        partition: u16,
        offset: u64,
        count: u32,
        reject: bool,
    ) {
        let Some(broker) = self.broker.upgrade() else {
            return;
        };
        let Some(m) = self.read_one(key, offset) else {
            return;
        };
        let Some(meta) = StoredMeta::decode(&m.record.properties) else {
            return;
        };
        let attempts = earlier_failures(&meta.properties) + count;
        let mut props = meta.properties;
        props.amqp_header = None; // the headers change: AMQP consumers get them rebuilt
        for (k, v) in [
            ("x-origin-queue", Value::Str(self.q.name.clone())),
            ("x-origin-partition", Value::I64(i64::from(partition))),
            ("x-origin-offset", Value::I64(offset as i64)),
            ("x-origin-exchange", Value::Str(meta.exchange.clone())),
            ("x-origin-routing-key", Value::Str(meta.routing_key.clone())),
        ] {
            if props.header(k).is_none() {
                props.headers.push((k.into(), v));
            }
        }
        set_header(
            &mut props.headers,
            RETRY_COUNT_HEADER,
            Value::I64(i64::from(attempts)),
        );
        let vhost = &self.q.def.vhost;
        if reject || attempts >= policy.max() {
            let reason = if reject { "rejected" } else { "max_attempts" };
            set_header(
                &mut props.headers,
                "x-dlq-reason",
                Value::Str(reason.into()),
            );
            set_header(
                &mut props.headers,
                RETRY_QUEUE_HEADER,
                Value::Str(policy.retry_queue.clone()),
            );
            let msg = Message {
                properties: props,
                body: m.record.body,
            };
            match broker.publish_internal(vhost, "", &policy.dlq, &msg) {
                Ok((routed, _)) if !routed.is_empty() => {}
                Ok(_) => {
                    tracing::warn!(queue = %self.q.name, dlq = %policy.dlq, "dead-letter queue is gone; message dropped")
                }
                Err(e) => tracing::warn!(queue = %self.q.name, error = %e, "dead-lettering failed"),
            }
            return;
        }
        let due = crate::core::now_ms().saturating_add(policy.backoff(attempts) as i64);
        let msg = Message {
            properties: props,
            body: m.record.body,
        };
        if let Err(e) = broker.schedule_message(vhost, "", &policy.retry_queue, &msg, due) {
            tracing::warn!(queue = %self.q.name, error = %e, "scheduling a retry failed");
        }
    }
}

impl Actor {
    /// Deliveries of groups with a consume timeout that were not settled in time fail.
    pub(super) fn expire_deliveries(&mut self) {
        let now = Instant::now();
        let mut failed: Vec<(ConsumerId, u16, u64)> = Vec::new();
        for g in self.groups.values_mut() {
            let Some(timeout) = g
                .retry
                .as_ref()
                .filter(|p| p.consume_timeout_ms > 0)
                .map(|p| Duration::from_millis(p.consume_timeout_ms))
            else {
                continue;
            };
            for cur in &mut g.parts {
                let inflight = &cur.inflight;
                cur.sent.retain(|off, at| {
                    let Some((who, _)) = inflight.get(off) else {
                        return false; // settled or taken back meanwhile
                    };
                    if now.duration_since(*at) >= timeout {
                        failed.push((*who, cur.partition, *off));
                        return false;
                    }
                    true
                });
            }
        }
        for (consumer, partition, offset) in failed {
            tracing::debug!(queue = %self.ctx.q.name, partition, offset, "delivery not settled within the consume timeout");
            self.settle(consumer, partition, offset, super::Settle::Requeue);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_back_off() {
        assert_eq!(
            RetryPolicy::queue_names("orders", "billing"),
            ("%RETRY%orders%billing".into(), "%DLQ%orders%billing".into())
        );
        assert_eq!(
            RetryPolicy::queue_names("orders", ""),
            ("%RETRY%orders".into(), "%DLQ%orders".into())
        );
        let p = RetryPolicy::new(0, vec![], 0);
        assert_eq!(
            (p.max(), p.backoff(1), p.backoff(2), p.backoff(99)),
            (16, 1_000, 5_000, 7_200_000)
        );
        let p = RetryPolicy::new(3, vec![100, 200], 0);
        assert_eq!(
            (p.max(), p.backoff(1), p.backoff(2), p.backoff(3)),
            (3, 100, 200, 200)
        );
    }
}
