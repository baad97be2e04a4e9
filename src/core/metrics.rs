//! Message counters, per queue and per vhost, for the admin API and Prometheus.
//!
//! Each is a relaxed atomic bumped once per event on the message path (no lock, no map look-up):
//! a queue's own counters are written only by its actor, and a vhost's by its publishers and
//! queue actors. Readers take a [`CounterSnapshot`]; rates are computed by whoever samples them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Message counters of one queue or vhost, since the broker started.
#[derive(Debug, Default)]
pub struct Counters {
    published: AtomicU64,
    unroutable: AtomicU64,
    delivered: AtomicU64,
    redelivered: AtomicU64,
    acked: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Queue: messages routed into it (dead-lettered ones included). Vhost: messages clients
    /// published that the broker accepted.
    pub published: u64,
    /// Vhost only: accepted messages that reached no queue.
    pub unroutable: u64,
    /// Deliveries to consumers and `get`s, redeliveries included.
    pub delivered: u64,
    /// Deliveries of messages that may have been delivered before.
    pub redelivered: u64,
    /// Deliveries acknowledged by the consumer.
    pub acked: u64,
}

impl std::ops::Add for CounterSnapshot {
    type Output = CounterSnapshot;
    fn add(self, o: CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            published: self.published + o.published,
            unroutable: self.unroutable + o.unroutable,
            delivered: self.delivered + o.delivered,
            redelivered: self.redelivered + o.redelivered,
            acked: self.acked + o.acked,
        }
    }
}

impl Counters {
    pub(crate) fn publish(&self, routed: bool) {
        self.published.fetch_add(1, Ordering::Relaxed);
        if !routed {
            self.unroutable.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn deliver(&self, redelivered: bool) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if redelivered {
            self.redelivered.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn ack(&self) {
        self.acked.fetch_add(1, Ordering::Relaxed);
    }

    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            published: self.published.load(Ordering::Relaxed),
            unroutable: self.unroutable.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            redelivered: self.redelivered.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
        }
    }
}
