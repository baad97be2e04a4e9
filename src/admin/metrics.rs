//! Prometheus `/metrics` (OpenMetrics text, `prometheus-client`'s typed families).
//!
//! Built at scrape time from the core's counters (relaxed atomics bumped on the message path),
//! each queue's live counts, the connection registry, the listeners' byte counters and the
//! store's figures and latency histograms: nothing is recorded for Prometheus on the message
//! path itself. Unauthenticated, as Prometheus expects; the listener is loopback-only by
//! default.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::error::ApiError;
use super::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    vhost: String,
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    vhost: String,
    queue: String,
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VhostLabels {
    vhost: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProtocolLabels {
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

/// A histogram whose buckets the store already counted: `prometheus-client`'s own `Histogram`
/// can only be fed observations, so this encodes the store's counts as one.
#[derive(Debug)]
struct Counted(junction_store::LatencySnapshot);

impl EncodeMetric for Counted {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(
            self.0.sum_seconds,
            self.0.count(),
            &self.0.buckets,
            None,
        )
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabels {
    alarm: String,
}

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c = Counter::<u64>::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: i64) {
    let g = Gauge::<i64>::default();
    g.set(v);
    reg.register(name, help, g);
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Builds the registry of one scrape.
async fn collect(st: &AppState) -> Registry {
    let b = &st.broker;
    let mut reg = Registry::with_prefix("junction");
    reg.register(
        "build",
        "Junction version",
        Info::new(vec![(
            "version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        )]),
    );

    let q_published = Family::<QueueLabels, Counter>::default();
    let q_delivered = Family::<QueueLabels, Counter>::default();
    let q_redelivered = Family::<QueueLabels, Counter>::default();
    let q_acked = Family::<QueueLabels, Counter>::default();
    let q_ready = Family::<QueueLabels, Gauge>::default();
    let q_unacked = Family::<QueueLabels, Gauge>::default();
    let q_consumers = Family::<QueueLabels, Gauge>::default();
    let g_lag = Family::<GroupLabels, Gauge>::default();
    for q in b.queues(None).await {
        for g in b
            .groups(&q.def.vhost, &q.def.name)
            .await
            .unwrap_or_default()
        {
            let lag: u64 = g.partitions.iter().map(|p| p.lag).sum();
            g_lag
                .get_or_create(&GroupLabels {
                    vhost: q.def.vhost.clone(),
                    queue: q.def.name.clone(),
                    group: g.name,
                })
                .set(to_i64(lag));
        }
        let l = QueueLabels {
            vhost: q.def.vhost.clone(),
            queue: q.def.name.clone(),
        };
        q_published.get_or_create(&l).inc_by(q.counters.published);
        q_delivered.get_or_create(&l).inc_by(q.counters.delivered);
        q_redelivered
            .get_or_create(&l)
            .inc_by(q.counters.redelivered);
        q_acked.get_or_create(&l).inc_by(q.counters.acked);
        q_ready.get_or_create(&l).set(to_i64(q.stats.ready));
        q_unacked.get_or_create(&l).set(to_i64(q.stats.unacked));
        q_consumers
            .get_or_create(&l)
            .set(i64::from(q.stats.consumers));
    }
    reg.register(
        "queue_messages_published",
        "Messages routed into the queue",
        q_published,
    );
    reg.register(
        "queue_messages_delivered",
        "Deliveries and gets from the queue, redeliveries included",
        q_delivered,
    );
    reg.register(
        "queue_messages_redelivered",
        "Redeliveries from the queue",
        q_redelivered,
    );
    reg.register(
        "queue_messages_acked",
        "Deliveries from the queue acknowledged by consumers",
        q_acked,
    );
    reg.register(
        "queue_messages_ready",
        "Messages ready for delivery",
        q_ready,
    );
    reg.register(
        "queue_messages_unacked",
        "Messages delivered and not yet acknowledged",
        q_unacked,
    );
    reg.register("queue_consumers", "Consumers of the queue", q_consumers);
    reg.register(
        "group_lag",
        "Unsettled messages of a consumer group (group \"\" is the queue's default group)",
        g_lag,
    );

    let v_published = Family::<VhostLabels, Counter>::default();
    let v_unroutable = Family::<VhostLabels, Counter>::default();
    let v_delivered = Family::<VhostLabels, Counter>::default();
    let v_redelivered = Family::<VhostLabels, Counter>::default();
    let v_acked = Family::<VhostLabels, Counter>::default();
    for v in b.vhosts() {
        let Some(c) = b.vhost_counters(&v) else {
            continue;
        };
        let l = VhostLabels { vhost: v };
        v_published.get_or_create(&l).inc_by(c.published);
        v_unroutable.get_or_create(&l).inc_by(c.unroutable);
        v_delivered.get_or_create(&l).inc_by(c.delivered);
        v_redelivered.get_or_create(&l).inc_by(c.redelivered);
        v_acked.get_or_create(&l).inc_by(c.acked);
    }
    reg.register(
        "vhost_messages_published",
        "Messages clients published to the vhost (accepted)",
        v_published,
    );
    reg.register(
        "vhost_messages_unroutable",
        "Accepted messages that reached no queue",
        v_unroutable,
    );
    reg.register(
        "vhost_messages_delivered",
        "Deliveries and gets in the vhost",
        v_delivered,
    );
    reg.register(
        "vhost_messages_redelivered",
        "Redeliveries in the vhost",
        v_redelivered,
    );
    reg.register(
        "vhost_messages_acked",
        "Acknowledged deliveries in the vhost",
        v_acked,
    );

    let conns = Family::<ProtocolLabels, Gauge>::default();
    for (p, _) in st.listeners.iter() {
        if p != "http" {
            conns
                .get_or_create(&ProtocolLabels {
                    protocol: p.clone(),
                })
                .set(0);
        }
    }
    for c in b.connections() {
        conns
            .get_or_create(&ProtocolLabels {
                protocol: c.client.protocol.to_string(),
            })
            .inc();
    }
    reg.register("connections", "Open client connections", conns);

    let by_published = Family::<ProtocolLabels, Counter>::default();
    let by_delivered = Family::<ProtocolLabels, Counter>::default();
    // A protocol shows from its first connection on.
    for (p, published, delivered) in b.protocol_counters() {
        let l = ProtocolLabels {
            protocol: p.to_string(),
        };
        by_published.get_or_create(&l).inc_by(published);
        by_delivered.get_or_create(&l).inc_by(delivered);
    }
    reg.register(
        "protocol_messages_published",
        "Messages published by client connections of the protocol (accepted)",
        by_published,
    );
    reg.register(
        "protocol_messages_delivered",
        "Messages delivered to client connections of the protocol",
        by_delivered,
    );

    let received = Family::<ListenerLabels, Counter>::default();
    let sent = Family::<ListenerLabels, Counter>::default();
    for (name, bytes_in, bytes_out) in st.meters.snapshot() {
        let l = ListenerLabels {
            listener: name.to_string(),
        };
        received.get_or_create(&l).inc_by(bytes_in);
        sent.get_or_create(&l).inc_by(bytes_out);
    }
    reg.register_with_unit(
        "listener_received",
        "Bytes read from the listener's client connections",
        Unit::Bytes,
        received,
    );
    reg.register_with_unit(
        "listener_sent",
        "Bytes written to the listener's client connections",
        Unit::Bytes,
        sent,
    );

    let alarms = Family::<AlarmLabels, Gauge>::default();
    for (name, on) in [
        ("memory", b.memory_alarm()),
        ("disk", b.store().is_disk_low()),
    ] {
        alarms
            .get_or_create(&AlarmLabels { alarm: name.into() })
            .set(i64::from(on));
    }
    reg.register("alarm", "1 while the alarm blocks publishing", alarms);

    let s = b.store().stats();
    let store = reg.sub_registry_with_prefix("store");
    counter(
        store,
        "appended_records",
        "Records appended to the CommitLog",
        s.records,
    );
    counter(
        store,
        "appended_bytes",
        "Bytes appended to the CommitLog",
        s.bytes,
    );
    counter(store, "fsyncs", "CommitLog fsyncs", s.fsyncs);
    counter(
        store,
        "synced_records",
        "Records covered by CommitLog fsyncs",
        s.records_synced,
    );
    gauge(
        store,
        "log_bytes",
        "Bytes of CommitLog stored",
        to_i64(s.log_end.saturating_sub(s.log_start)),
    );
    gauge(
        store,
        "unflushed_bytes",
        "CommitLog bytes not yet known to be on disk",
        to_i64(s.log_end.saturating_sub(s.durable)),
    );
    gauge(
        store,
        "segments",
        "CommitLog segment files",
        i64::try_from(s.segments).unwrap_or(i64::MAX),
    );
    let l = b.store().latencies();
    store.register_with_unit(
        "append_latency",
        format!(
            "CommitLog append time, writer lock wait included (one append in {} is timed)",
            junction_store::APPEND_SAMPLE_EVERY
        ),
        Unit::Seconds,
        Counted(l.append),
    );
    store.register_with_unit(
        "flush_latency",
        "CommitLog flush time: one fsync round of the flusher (group commit)",
        Unit::Seconds,
        Counted(l.flush),
    );
    reg
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let reg = collect(&st).await;
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    Ok((
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    ))
}
