//! Messages: publish to an exchange, get from a queue, read a queue by offset or time
//! (without consuming), and look messages up by id or key in the store's index.

use std::time::Duration;

use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Path, Query};
use super::json::{payload_in, payload_out, properties_in, properties_out};
use super::AppState;
use crate::core::{Lookup, Message, Properties, SessionEvent, Settle};

/// How long a publish through the API waits for its confirm (the store's flush).
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn payload_json(
    body: &[u8],
    properties: &Properties,
    force_base64: bool,
    truncate: Option<usize>,
) -> Map<String, Json> {
    let shown = match truncate {
        Some(n) if n < body.len() => body.get(..n).unwrap_or(body),
        _ => body,
    };
    let (payload, encoding) = payload_out(shown, force_base64);
    let mut o = Map::new();
    o.insert("payload".into(), json!(payload));
    o.insert("payload_encoding".into(), json!(encoding));
    o.insert("payload_bytes".into(), json!(body.len()));
    o.insert("properties".into(), properties_out(properties));
    o
}

pub(super) fn wants_base64(encoding: Option<&str>) -> ApiResult<bool> {
    match encoding.unwrap_or("auto") {
        "auto" => Ok(false),
        "base64" => Ok(true),
        other => Err(ApiError::bad_request(format!(
            "encoding must be \"auto\" or \"base64\", not \"{other}\""
        ))),
    }
}

/// The body of `POST /api/exchanges/{vhost}/{name}/publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishBody {
    #[serde(default)]
    properties: Map<String, Json>,
    #[serde(default)]
    routing_key: String,
    payload: String,
    #[serde(default = "string_encoding")]
    payload_encoding: String,
}

fn string_encoding() -> String {
    "string".into()
}

/// `POST /api/exchanges/{vhost}/{name}/publish` (write permission on the exchange): answers
/// `{"routed": bool}` once the message is stored under the flush policy.
pub async fn publish(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<PublishBody>,
) -> ApiResult<axum::Json<Json>> {
    let exchange = if name == "amq.default" {
        ""
    } else {
        name.as_str()
    };
    let mut s = caller.session(&st, &vhost)?;
    let msg = Message {
        properties: properties_in(&body.properties)?,
        body: payload_in(&body.payload, &body.payload_encoding)?,
    };
    let published = s.publish(exchange, &body.routing_key, &msg)?;
    let confirmed = tokio::time::timeout(CONFIRM_TIMEOUT, async {
        loop {
            match s.next_event().await {
                Some(SessionEvent::Confirmed { up_to }) if up_to >= published.seq => return Ok(()),
                Some(SessionEvent::ConfirmFailed { .. }) | None => {
                    return Err(ApiError::new(
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "the message could not be stored",
                    ))
                }
                Some(_) => {}
            }
        }
    })
    .await
    .map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the store did not confirm the message in time",
        )
    })?;
    confirmed?;
    s.close().await;
    Ok(axum::Json(json!({"routed": !published.unroutable()})))
}

/// The body of `POST /api/queues/{vhost}/{name}/get`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetBody {
    #[serde(default = "one")]
    count: usize,
    #[serde(default = "requeue")]
    ackmode: String,
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    truncate: Option<usize>,
}

fn one() -> usize {
    1
}

fn requeue() -> String {
    "ack_requeue_true".into()
}

/// Most messages one get or read returns.
const MAX_COUNT: usize = 1000;

/// `POST /api/queues/{vhost}/{name}/get` (read permission): takes up to `count` messages, then
/// acks them (`ack_requeue_false`), requeues them (`ack_requeue_true`, `reject_requeue_true`:
/// they are marked redelivered) or rejects them (`reject_requeue_false`: dead-lettered if the
/// queue has a dead-letter exchange).
pub async fn get(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<GetBody>,
) -> ApiResult<axum::Json<Json>> {
    let how = match body.ackmode.as_str() {
        "ack_requeue_true" | "reject_requeue_true" => Settle::Requeue,
        "ack_requeue_false" => Settle::Ack,
        "reject_requeue_false" => Settle::Reject,
        other => {
            return Err(ApiError::bad_request(format!(
                "ackmode must be ack_requeue_true, ack_requeue_false, reject_requeue_true or reject_requeue_false, not \"{other}\""
            )))
        }
    };
    let force_base64 = wants_base64(body.encoding.as_deref())?;
    let mut s = caller.session(&st, &vhost)?;
    let mut got = Vec::new();
    for _ in 0..body.count.min(MAX_COUNT) {
        match s.get(&name, false).await? {
            Some(d) => got.push(d),
            None => break,
        }
    }
    let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
    s.settle_many(&ids, how)?;
    let left = s.queue_info(&name).await.map_or(0, |q| q.messages);
    let left = if how == Settle::Requeue {
        left.saturating_sub(got.len() as u64)
    } else {
        left
    };
    let n = got.len();
    let out: Vec<Json> = got
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut o = payload_json(
                &d.message.body,
                &d.message.properties,
                force_base64,
                body.truncate,
            );
            o.insert("redelivered".into(), json!(d.redelivered));
            o.insert("exchange".into(), json!(d.exchange));
            o.insert("routing_key".into(), json!(d.routing_key));
            o.insert("message_count".into(), json!(left + (n - i - 1) as u64));
            o.insert("partition".into(), json!(d.partition));
            o.insert("offset".into(), json!(d.offset));
            Json::Object(o)
        })
        .collect();
    s.close().await;
    Ok(axum::Json(Json::Array(out)))
}

/// The query of `GET /api/queues/{vhost}/{name}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadQuery {
    #[serde(default)]
    partition: u16,
    offset: Option<u64>,
    from_time: Option<i64>,
    #[serde(default = "ten")]
    count: usize,
    encoding: Option<String>,
}

fn ten() -> usize {
    10
}

/// `GET /api/queues/{vhost}/{name}/messages?partition=&offset=|from_time=&count=` (read
/// permission): stored messages by offset, or from the first stored at or after `from_time`
/// (ms since the epoch), without consuming them.
pub async fn read(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<axum::Json<Json>> {
    let force_base64 = wants_base64(q.encoding.as_deref())?;
    let s = caller.session(&st, &vhost)?;
    let from = match (q.offset, q.from_time) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give offset or from_time, not both"))
        }
        (Some(o), None) => o,
        (None, Some(t)) => s.offset_for_time(&name, q.partition, t)?,
        (None, None) => 0,
    };
    let r = s.read(&name, q.partition, from, q.count.clamp(1, MAX_COUNT))?;
    let messages: Vec<Json> = r
        .messages
        .iter()
        .map(|m| {
            let mut o = payload_json(&m.message.body, &m.message.properties, force_base64, None);
            o.insert("offset".into(), json!(m.offset));
            o.insert("store_ts".into(), json!(m.store_ts));
            o.insert("exchange".into(), json!(m.exchange));
            o.insert("routing_key".into(), json!(m.routing_key));
            Json::Object(o)
        })
        .collect();
    Ok(axum::Json(json!({
        "messages": messages,
        "next_offset": r.next_offset,
        "min_offset": r.min_offset,
        "end_offset": r.end_offset,
    })))
}

/// The query of `GET /api/messages/{vhost}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    id: Option<String>,
    key: Option<String>,
    queue: Option<String>,
    begin: Option<i64>,
    end: Option<i64>,
    #[serde(default = "ten")]
    count: usize,
    encoding: Option<String>,
}

/// `GET /api/messages/{vhost}?id=` or `?key=&begin=&end=`: messages found in the store's index
/// (newest first); `?begin=&end=[&queue=]`: messages stored in that time range (oldest first);
/// with the queues, partitions and offsets of the vhost where the caller may read them.
pub async fn lookup(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<LookupQuery>,
) -> ApiResult<axum::Json<Json>> {
    let force_base64 = wants_base64(q.encoding.as_deref())?;
    let by = match (q.id, q.key) {
        (Some(id), None) => Lookup::Id(id),
        (None, Some(key)) => Lookup::Key {
            key,
            begin_ms: q.begin.unwrap_or(0),
            end_ms: q.end.unwrap_or(i64::MAX),
        },
        (None, None) if q.begin.is_some() || q.end.is_some() => Lookup::Time {
            queue: q.queue,
            begin_ms: q.begin.unwrap_or(0),
            end_ms: q.end.unwrap_or(i64::MAX),
        },
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of id and key, or a time range (begin, end)",
            ))
        }
    };
    let s = caller.session(&st, &vhost)?;
    let found = st.broker.lookup(&s, &by, q.count.clamp(1, MAX_COUNT))?;
    let out: Vec<Json> = found
        .iter()
        .map(|m| {
            let mut o = payload_json(&m.message.body, &m.message.properties, force_base64, None);
            o.insert(
                "queues".into(),
                Json::Array(
                    m.queues
                        .iter()
                        .map(|(q, p, off)| json!({"queue": q, "partition": p, "offset": off}))
                        .collect(),
                ),
            );
            o.insert("commitlog_offset".into(), json!(m.commitlog_offset));
            o.insert("store_ts".into(), json!(m.store_ts));
            o.insert("born_ts".into(), json!(m.born_ts));
            o.insert("exchange".into(), json!(m.exchange));
            o.insert("routing_key".into(), json!(m.routing_key));
            Json::Object(o)
        })
        .collect();
    Ok(axum::Json(Json::Array(out)))
}
