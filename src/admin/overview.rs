//! `/api/overview` and `/api/connections`.

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Path;
use super::rates::Rate;
use super::AppState;
use crate::core::metrics::CounterSnapshot;
use crate::core::ConnectionInfo;

/// RabbitMQ's `message_stats` shape: totals with `_details.rate` beside them.
pub fn message_stats(c: CounterSnapshot, r: Rate) -> Json {
    json!({
        "publish": c.published,
        "publish_details": {"rate": r.publish},
        "deliver_get": c.delivered,
        "deliver_get_details": {"rate": r.deliver},
        "redeliver": c.redelivered,
        "redeliver_details": {"rate": r.redeliver},
        "ack": c.acked,
        "ack_details": {"rate": r.ack},
        "unroutable": c.unroutable,
    })
}

/// `GET /api/overview`: version, listeners, message totals and rates, queue totals, object
/// counts, alarms and store figures. Any authenticated user.
pub async fn overview(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Json>> {
    let b = &st.broker;
    let vhosts: Vec<String> = b
        .vhosts()
        .into_iter()
        .filter(|v| caller.can_see(&st, v))
        .collect();
    let mut totals = CounterSnapshot::default();
    for v in &vhosts {
        totals = totals + b.vhost_counters(v).unwrap_or_default();
    }
    let rate = if caller.is_monitor() {
        st.rates.total()
    } else {
        vhosts
            .iter()
            .map(|v| st.rates.vhost(v))
            .fold(Rate::default(), |a, r| Rate {
                publish: a.publish + r.publish,
                deliver: a.deliver + r.deliver,
                redeliver: a.redeliver + r.redeliver,
                ack: a.ack + r.ack,
            })
    };
    let queues: Vec<_> = b
        .queues(None)
        .await
        .into_iter()
        .filter(|q| vhosts.contains(&q.def.vhost))
        .collect();
    let (ready, unacked, consumers) = queues.iter().fold((0, 0, 0), |(r, u, c), q| {
        (
            r + q.stats.ready,
            u + q.stats.unacked,
            c + u64::from(q.stats.consumers),
        )
    });
    let exchanges: usize = vhosts
        .iter()
        .map(|v| b.exchanges(v).map_or(0, |x| x.len()))
        .sum();
    let connections = visible_connections(&st, &caller).len();
    let store = b.store().stats();
    let disk = b.store().is_disk_low();
    let memory = b.memory_alarm();
    Ok(axum::Json(json!({
        "product_name": "Junction",
        "product_version": env!("CARGO_PKG_VERSION"),
        "management_version": env!("CARGO_PKG_VERSION"),
        "user": caller.user.name,
        "listeners": st.listeners.iter().map(|(p, a)| json!({
            "protocol": p, "ip_address": a.ip().to_string(), "port": a.port(),
        })).collect::<Vec<_>>(),
        "message_stats": message_stats(totals, rate),
        "queue_totals": {
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
        },
        "object_totals": {
            "vhosts": vhosts.len(),
            "connections": connections,
            "queues": queues.len(),
            "exchanges": exchanges,
            "consumers": consumers,
        },
        "alarms": {
            "memory": memory,
            "disk": disk,
            "publishing_blocked": b.publishing_blocked(),
        },
        "store": {
            "records": store.records,
            "bytes": store.bytes,
            "fsyncs": store.fsyncs,
            "records_synced": store.records_synced,
            "log_start": store.log_start,
            "log_end": store.log_end,
            "durable": store.durable,
            "segments": store.segments,
        },
    })))
}

fn visible_connections(st: &AppState, caller: &Caller) -> Vec<ConnectionInfo> {
    st.broker
        .connections()
        .into_iter()
        .filter(|c| caller.is_monitor() || c.client.user == caller.user.name)
        .collect()
}

fn connection_json(st: &AppState, c: &ConnectionInfo) -> Json {
    let rate = st.rates.connection(c.id);
    json!({
        "id": c.id,
        "name": match c.client.peer {
            Some(p) => format!("{p} #{}", c.id),
            None => format!("in-process #{}", c.id),
        },
        "protocol": c.client.protocol,
        "user": c.client.user,
        "vhost": c.client.vhost,
        "peer_host": c.client.peer.map(|p| p.ip().to_string()),
        "peer_port": c.client.peer.map(|p| p.port()),
        "client_id": c.client.client_id,
        "connected_at": c.connected_at_ms,
        "sessions": c.sessions,
        "messages_published": c.messages_published,
        "messages_delivered": c.messages_delivered,
        "publish_details": {"rate": rate.publish},
        "deliver_details": {"rate": rate.deliver},
    })
}

/// `GET /api/connections`: administrators and monitoring users see every connection, other
/// users their own.
pub async fn connections(State(st): State<AppState>, caller: Caller) -> axum::Json<Json> {
    axum::Json(Json::Array(
        visible_connections(&st, &caller)
            .iter()
            .map(|c| connection_json(&st, c))
            .collect(),
    ))
}

fn find(st: &AppState, caller: &Caller, id: u64) -> ApiResult<ConnectionInfo> {
    visible_connections(st, caller)
        .into_iter()
        .find(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found("connection", &id.to_string()))
}

/// `GET /api/connections/{id}`.
pub async fn connection(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
) -> ApiResult<axum::Json<Json>> {
    Ok(axum::Json(connection_json(&st, &find(&st, &caller, id)?)))
}

/// `DELETE /api/connections/{id}`: the gateway closes it with its protocol's close (AMQP 320
/// `CONNECTION_FORCED`, native `Close`). An optional `X-Reason` header is the reason given.
/// Administrators may close any connection, other users their own.
pub async fn close_connection(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<u64>,
    headers: axum::http::HeaderMap,
) -> ApiResult<StatusCode> {
    let c = find(&st, &caller, id)?;
    if !caller.is_admin() && c.client.user != caller.user.name {
        return Err(ApiError::forbidden(
            "only administrators may close other users' connections",
        ));
    }
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .map_or_else(
            || format!("closed via the HTTP API by '{}'", caller.user.name),
            str::to_string,
        );
    if st.broker.close_connection(id, &reason) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("connection", &id.to_string()))
    }
}
