//! MQTT sessions and retained messages.
//!
//! Nothing here is kept by the MQTT gateway alone: a session is the core queue
//! `mqtt-session-<client id>` with one `amq.topic` binding per subscription (its options in the
//! binding's arguments), and a connected client is a registered connection of protocol `mqtt`;
//! retained messages are the core's, per vhost, exchange and routing key. So this module reads
//! the core and shows MQTT's names: client ids, topic filters, topics with `/`.
//!
//! Sessions are listed to whoever may see the vhost (as queues are); retained messages are
//! message contents, so listing them takes read permission on their exchange and deleting one
//! write permission, checked by a core session of the caller.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use junction_mqtt::topic;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use super::messages::{payload_json, wants_base64};
use super::AppState;
use crate::core::meta::BindingDef;
use crate::core::{ConnectionInfo, QueueSummary, RetainedMessage, Value};

/// Session queues are named this, followed by the client id.
const SESSION_QUEUE_PREFIX: &str = "mqtt-session-";

/// The exchange MQTT topics live in unless `[mqtt] exchange` says otherwise.
const DEFAULT_EXCHANGE: &str = "amq.topic";

/// A session as listed: its queue (if it has one) and its connection (if connected).
struct SessionView<'a> {
    vhost: &'a str,
    client_id: &'a str,
    queue: Option<&'a QueueSummary>,
    connection: Option<&'a ConnectionInfo>,
}

fn arg<'a>(args: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    args.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

fn subscriptions(bindings: &[BindingDef], queue: &str) -> Json {
    let mut out: Vec<Json> = bindings
        .iter()
        .filter(|b| !b.dest_is_exchange && b.destination == queue)
        .filter_map(|b| {
            let Some(Value::Str(filter)) = arg(&b.args, "x-mqtt-filter") else {
                return None;
            };
            let qos = match arg(&b.args, "x-mqtt-qos") {
                Some(Value::I64(q)) => *q,
                _ => 0,
            };
            let flag = |k: &str| matches!(arg(&b.args, k), Some(Value::Bool(true)));
            let id = match arg(&b.args, "x-mqtt-subscription-id") {
                Some(Value::I64(id)) => json!(id),
                _ => Json::Null,
            };
            Some(json!({
                "filter": filter,
                "qos": qos,
                "no_local": flag("x-mqtt-no-local"),
                "retain_as_published": flag("x-mqtt-retain-as-published"),
                "subscription_identifier": id,
                "exchange": b.source,
                "routing_key": b.routing_key,
            }))
        })
        .collect();
    out.sort_by(|a, b| a["filter"].as_str().cmp(&b["filter"].as_str()));
    Json::Array(out)
}

fn session_json(bindings: &[BindingDef], s: &SessionView<'_>) -> Json {
    // A clean session's queue is transient and goes with its connection; a persistent one is
    // durable and expires `x-expires` after its client left (never without it).
    let (clean, expiry) = match s.queue {
        Some(q) if q.def.durable => (false, q.expires_ms.map(|ms| json!(ms / 1000))),
        _ => (true, Some(json!(0))),
    };
    let (ready, unacked, consumers) = s.queue.map_or((0, 0, 0), |q| {
        (q.stats.ready, q.stats.unacked, q.stats.consumers)
    });
    json!({
        "vhost": s.vhost,
        "client_id": s.client_id,
        "connected": s.connection.is_some(),
        "connection": s.connection.map(|c| c.id),
        "user": s.connection.map(|c| c.client.user.clone()),
        "clean_session": clean,
        "expiry_interval": expiry.unwrap_or(Json::Null),
        "queue": s.queue.map(|q| q.def.name.clone()),
        "subscriptions": s.queue.map_or(Json::Array(Vec::new()), |q| subscriptions(bindings, &q.def.name)),
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "consumers": consumers,
    })
}

/// The sessions of `vhosts`, by vhost and client id.
async fn list_sessions(st: &AppState, vhosts: &[String]) -> Vec<Json> {
    let conns: Vec<ConnectionInfo> = st
        .broker
        .connections()
        .into_iter()
        .filter(|c| c.client.protocol == "mqtt")
        .collect();
    let mut out = Vec::new();
    for v in vhosts {
        let queues = st.broker.queues(Some(v)).await;
        let mut ids: BTreeMap<&str, SessionView<'_>> = BTreeMap::new();
        for q in &queues {
            if let Some(id) = q.def.name.strip_prefix(SESSION_QUEUE_PREFIX) {
                ids.insert(
                    id,
                    SessionView {
                        vhost: v,
                        client_id: id,
                        queue: Some(q),
                        connection: None,
                    },
                );
            }
        }
        for c in conns.iter().filter(|c| &c.client.vhost == v) {
            ids.entry(&c.client.client_id)
                .or_insert(SessionView {
                    vhost: v,
                    client_id: &c.client.client_id,
                    queue: None,
                    connection: None,
                })
                .connection = Some(c);
        }
        let bindings = st.broker.bindings(v).unwrap_or_default();
        out.extend(ids.values().map(|s| session_json(&bindings, s)));
    }
    out
}

fn visible_vhosts(st: &AppState, caller: &Caller, vhost: Option<&str>) -> ApiResult<Vec<String>> {
    match vhost {
        Some(v) => {
            caller.check_vhost(st, v)?;
            Ok(vec![v.to_string()])
        }
        None => Ok(st
            .broker
            .vhosts()
            .into_iter()
            .filter(|v| caller.can_see(st, v))
            .collect()),
    }
}

/// `GET /api/mqtt/sessions`: every MQTT session of the vhosts the caller may see: persistent
/// ones (connected or not) and the clean sessions of connected clients.
pub async fn all_sessions(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible_vhosts(&st, &caller, None)?;
    Ok(axum::Json(Json::Array(list_sessions(&st, &vhosts).await)))
}

/// `GET /api/mqtt/sessions/{vhost}`.
pub async fn sessions(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible_vhosts(&st, &caller, Some(&vhost))?;
    Ok(axum::Json(Json::Array(list_sessions(&st, &vhosts).await)))
}

/// `GET /api/mqtt/sessions/{vhost}/{client_id}`.
pub async fn session(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, client_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible_vhosts(&st, &caller, Some(&vhost))?;
    list_sessions(&st, &vhosts)
        .await
        .into_iter()
        .find(|s| s["client_id"] == client_id.as_str())
        .map(axum::Json)
        .ok_or_else(|| ApiError::not_found("MQTT session", &client_id))
}

/// Query of the retained-message listings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainedQuery {
    /// `auto` or `base64`.
    encoding: Option<String>,
    /// Show at most this many payload bytes.
    truncate: Option<usize>,
}

fn retained_json(vhost: &str, exchange: &str, m: &RetainedMessage, q: &RetainedQuery) -> Json {
    let mut o = payload_json(
        &m.message.body,
        &m.message.properties,
        q.encoding.as_deref() == Some("base64"),
        q.truncate,
    );
    o.insert("vhost".into(), json!(vhost));
    o.insert("exchange".into(), json!(exchange));
    o.insert("routing_key".into(), json!(m.routing_key));
    // The MQTT topic name, when the routing key has one (`a.b/c` is `a/b.c`).
    o.insert(
        "topic".into(),
        topic::amqp_to_name(&m.routing_key).map_or(Json::Null, Json::String),
    );
    o.insert("store_ts".into(), json!(m.store_ts));
    Json::Object(o)
}

fn list_retained(
    st: &AppState,
    caller: &Caller,
    vhost: &str,
    q: &RetainedQuery,
) -> ApiResult<Vec<Json>> {
    let s = caller.session(st, vhost)?;
    Ok(s.retained_all()
        .iter()
        .map(|(x, m)| retained_json(vhost, x, m, q))
        .collect())
}

/// `GET /api/mqtt/retained`: the retained messages of every vhost where the caller may read,
/// of the exchanges it may read from.
pub async fn all_retained(
    State(st): State<AppState>,
    caller: Caller,
    Query(q): Query<RetainedQuery>,
) -> ApiResult<axum::Json<Json>> {
    wants_base64(q.encoding.as_deref())?;
    let mut out = Vec::new();
    for v in st.broker.vhosts() {
        match list_retained(&st, &caller, &v, &q) {
            Ok(list) => out.extend(list),
            // No permissions in that vhost: none of its messages to show.
            Err(e) if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::NOT_FOUND => {}
            Err(e) => return Err(e),
        }
    }
    Ok(axum::Json(Json::Array(out)))
}

/// `GET /api/mqtt/retained/{vhost}`.
pub async fn retained(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<RetainedQuery>,
) -> ApiResult<axum::Json<Json>> {
    wants_base64(q.encoding.as_deref())?;
    Ok(axum::Json(Json::Array(list_retained(
        &st, &caller, &vhost, &q,
    )?)))
}

/// Which retained message to delete.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetainedKey {
    /// MQTT topic name (`a/b`).
    topic: Option<String>,
    /// Or the routing key (`a.b`).
    routing_key: Option<String>,
    /// Exchange; `amq.topic` by default.
    exchange: Option<String>,
}

/// `DELETE /api/mqtt/retained/{vhost}?topic=a/b` (or `?routing_key=a.b`, and `&exchange=`
/// for another exchange than `amq.topic`): as an MQTT client publishing an empty retained
/// message there would (write permission on the exchange). 404 if there was none.
pub async fn delete_retained(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(k): Query<RetainedKey>,
) -> ApiResult<StatusCode> {
    let rk = match (k.topic, k.routing_key) {
        (Some(t), None) => topic::name_to_amqp(&t)
            .map_err(|e| ApiError::bad_request(format!("topic '{t}': {e}")))?,
        (None, Some(rk)) => rk,
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of topic and routing_key",
            ))
        }
    };
    let exchange = k.exchange.unwrap_or_else(|| DEFAULT_EXCHANGE.to_string());
    let mut s = caller.session(&st, &vhost)?;
    if s.clear_retained(&exchange, &rk)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("retained message", &rk))
    }
}
