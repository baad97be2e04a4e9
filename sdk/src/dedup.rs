//! [`Deduplicator`]: the consumer's half of exactly-once processing.

use std::collections::{HashSet, VecDeque};

use crate::consumer::Delivery;

/// Remembers the last `capacity` messages a consumer processed, so that a second delivery of
/// one is recognised and skipped. A message can arrive twice because its ack was lost with a
/// connection (it is redelivered, flagged `redelivered`), or because a producer that was not
/// idempotent sent it twice (two stored copies with one message id).
///
/// Keys: the message id when there is one (an [`IdempotentProducer`](crate::IdempotentProducer)
/// gives every message one), else `queue/partition/offset`, which identifies a stored message.
/// This in-memory window is the cheap first line; for effects that must happen once across
/// consumer restarts, record the key in the same database transaction as the effect (a unique
/// key on it), as `docs/ROCKETMQ.md` ("Deduplication") shows.
///
/// ```
/// use junction_sdk::Deduplicator;
///
/// let mut seen = Deduplicator::new(10_000);
/// assert!(seen.first_time_key("order-7"));
/// assert!(!seen.first_time_key("order-7"));
/// ```
#[derive(Debug, Clone)]
pub struct Deduplicator {
    capacity: usize,
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl Deduplicator {
    /// Remembers up to `capacity` keys (at least 1), forgetting the oldest first.
    pub fn new(capacity: usize) -> Deduplicator {
        Deduplicator {
            capacity: capacity.max(1),
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// The key `d` is recognised by.
    pub fn key(d: &Delivery) -> String {
        match &d.properties.message_id {
            Some(id) => format!("id:{id}"),
            None => format!("at:{}/{}/{}", d.queue, d.partition, d.offset),
        }
    }

    /// Whether `d` is seen for the first time (it is remembered from now on).
    pub fn first_time(&mut self, d: &Delivery) -> bool {
        self.first_time_key(&Self::key(d))
    }

    /// Whether `key` is seen for the first time (it is remembered from now on).
    pub fn first_time_key(&mut self, key: &str) -> bool {
        if self.seen.contains(key) {
            return false;
        }
        self.seen.insert(key.to_string());
        self.order.push_back(key.to_string());
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_bounded_window() {
        let mut d = Deduplicator::new(2);
        assert!(d.first_time_key("a"));
        assert!(d.first_time_key("b"));
        assert!(!d.first_time_key("a"));
        assert!(d.first_time_key("c")); // forgets "a"
        assert_eq!(d.len(), 2);
        assert!(d.first_time_key("a"));
        assert!(!d.first_time_key("c"));
    }
}
