//! Message rates: a task samples the counters once a second and keeps the last few samples;
//! a rate is the change over that window. Nothing on the message path is involved.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::core::metrics::CounterSnapshot;
use crate::core::Broker;

/// Samples kept: rates are averaged over the last `WINDOW - 1` seconds.
const WINDOW: usize = 6;

/// Messages per second over the sampling window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// Published (vhosts: accepted from clients; queues: routed into the queue).
    pub publish: f64,
    /// Delivered or got.
    pub deliver: f64,
    /// Redelivered.
    pub redeliver: f64,
    /// Acknowledged.
    pub ack: f64,
}

type Samples = VecDeque<(Instant, CounterSnapshot)>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The sampled counters.
#[derive(Debug, Default)]
pub struct Rates {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: Samples,
    vhosts: HashMap<String, Samples>,
    queues: HashMap<(String, String), Samples>,
    connections: HashMap<u64, Samples>,
}

fn push(s: &mut Samples, at: Instant, c: CounterSnapshot) {
    s.push_back((at, c));
    while s.len() > WINDOW {
        s.pop_front();
    }
}

fn rate_of(s: Option<&Samples>) -> Rate {
    let Some(s) = s else {
        return Rate::default();
    };
    let (Some((t0, a)), Some((t1, b))) = (s.front(), s.back()) else {
        return Rate::default();
    };
    let secs = t1.duration_since(*t0).as_secs_f64();
    if secs <= 0.0 {
        return Rate::default();
    }
    let r = |x: u64, y: u64| y.saturating_sub(x) as f64 / secs;
    Rate {
        publish: r(a.published, b.published),
        deliver: r(a.delivered, b.delivered),
        redeliver: r(a.redelivered, b.redelivered),
        ack: r(a.acked, b.acked),
    }
}

impl Rates {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one sample of every counter.
    pub fn sample(&self, broker: &Broker) {
        let now = Instant::now();
        let mut total = CounterSnapshot::default();
        let vhosts: Vec<(String, CounterSnapshot)> = broker
            .vhosts()
            .into_iter()
            .filter_map(|v| broker.vhost_counters(&v).map(|c| (v, c)))
            .collect();
        let queues = broker.queue_counters();
        let conns = broker.connections();
        let mut st = self.state();
        st.connections
            .retain(|id, _| conns.iter().any(|c| c.id == *id));
        for c in conns {
            let snap = CounterSnapshot {
                published: c.messages_published,
                delivered: c.messages_delivered,
                ..CounterSnapshot::default()
            };
            let samples = st.connections.entry(c.id).or_insert_with(|| {
                // Its counters were zero when it connected: a connection that published
                // between two samples still shows a rate.
                let age = u64::try_from(now_ms().saturating_sub(c.connected_at_ms)).unwrap_or(0);
                let since = now.checked_sub(Duration::from_millis(age)).unwrap_or(now);
                VecDeque::from([(since, CounterSnapshot::default())])
            });
            push(samples, now, snap);
        }
        st.vhosts.retain(|v, _| vhosts.iter().any(|(n, _)| n == v));
        for (v, c) in vhosts {
            total = total + c;
            push(st.vhosts.entry(v).or_default(), now, c);
        }
        push(&mut st.total, now, total);
        let live: std::collections::HashSet<(String, String)> = queues
            .iter()
            .map(|(v, q, _)| (v.clone(), q.clone()))
            .collect();
        st.queues.retain(|k, _| live.contains(k));
        for (v, q, c) in queues {
            push(st.queues.entry((v, q)).or_default(), now, c);
        }
    }

    /// Whole-broker rates.
    pub fn total(&self) -> Rate {
        rate_of(Some(&self.state().total))
    }

    /// A vhost's rates.
    pub fn vhost(&self, vhost: &str) -> Rate {
        rate_of(self.state().vhosts.get(vhost))
    }

    /// A connection's publish and deliver rates.
    pub fn connection(&self, id: u64) -> Rate {
        rate_of(self.state().connections.get(&id))
    }

    /// A queue's rates.
    pub fn queue(&self, vhost: &str, queue: &str) -> Rate {
        rate_of(
            self.state()
                .queues
                .get(&(vhost.to_string(), queue.to_string())),
        )
    }
}

/// Samples every second until `stop` fires.
pub async fn run(rates: std::sync::Arc<Rates>, broker: Broker, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => rates.sample(&broker),
            _ = stop.cancelled() => return,
        }
    }
}
