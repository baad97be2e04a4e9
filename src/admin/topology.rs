//! Exchanges, queues and bindings of a vhost.
//!
//! Reads need sight of the vhost (permissions there, or the `administrator`/`monitoring` tag);
//! changes go through a core session of the caller, so the configure/write/read patterns apply.
//! The default exchange is named `amq.default` in paths, `""` in answers, as in RabbitMQ.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Path, Query};
use super::json::{table_in, table_out};
use super::overview::message_stats;
use super::AppState;
use crate::core::meta::{BindingDef, ExchangeDef};
use crate::core::{BindingDecl, ExchangeDecl, ExchangeKind, QueueDecl, QueueSummary};

/// The default exchange's name in paths.
const DEFAULT_EXCHANGE: &str = "amq.default";

fn exchange_name(path: &str) -> &str {
    if path == DEFAULT_EXCHANGE {
        ""
    } else {
        path
    }
}

fn created(was_new: bool) -> StatusCode {
    if was_new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

fn kind_name(k: ExchangeKind) -> &'static str {
    match k {
        ExchangeKind::Direct => "direct",
        ExchangeKind::Fanout => "fanout",
        ExchangeKind::Topic => "topic",
        ExchangeKind::Headers => "headers",
    }
}

fn exchange_json(st: &AppState, x: &ExchangeDef) -> Json {
    json!({
        "policy": st.broker.exchange_policy(&x.vhost, &x.name),
        "name": x.name,
        "vhost": x.vhost,
        "type": kind_name(x.kind),
        "durable": x.durable,
        "auto_delete": x.auto_delete,
        "internal": x.internal,
        "arguments": table_out(&x.args),
    })
}

/// The vhosts the caller may see, or just `vhost` (checked).
fn visible(st: &AppState, caller: &Caller, vhost: Option<&str>) -> ApiResult<Vec<String>> {
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

fn list_exchanges(st: &AppState, vhosts: &[String]) -> Json {
    Json::Array(
        vhosts
            .iter()
            .flat_map(|v| st.broker.exchanges(v).unwrap_or_default())
            .map(|x| exchange_json(st, &x))
            .collect(),
    )
}

/// `GET /api/exchanges`.
pub async fn all_exchanges(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    Ok(axum::Json(list_exchanges(
        &st,
        &visible(&st, &caller, None)?,
    )))
}

/// `GET /api/exchanges/{vhost}`.
pub async fn exchanges(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    Ok(axum::Json(list_exchanges(
        &st,
        &visible(&st, &caller, Some(&vhost))?,
    )))
}

fn find_exchange(st: &AppState, vhost: &str, name: &str) -> ApiResult<Option<ExchangeDef>> {
    Ok(st
        .broker
        .exchanges(vhost)?
        .into_iter()
        .find(|x| x.name == name))
}

/// `GET /api/exchanges/{vhost}/{name}`.
pub async fn exchange(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_vhost(&st, &vhost)?;
    let name = exchange_name(&name);
    find_exchange(&st, &vhost, name)?
        .map(|x| axum::Json(exchange_json(&st, &x)))
        .ok_or_else(|| ApiError::not_found("exchange", name))
}

/// The body of `PUT /api/exchanges/{vhost}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutExchange {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    arguments: Map<String, Json>,
}

fn yes() -> bool {
    true
}

/// `PUT /api/exchanges/{vhost}/{name}`: declares an exchange (configure permission).
pub async fn put_exchange(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<PutExchange>,
) -> ApiResult<StatusCode> {
    let mut s = caller.session(&st, &vhost)?;
    let kind = ExchangeKind::parse(&body.kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown exchange type '{}' (direct, fanout, topic, headers)",
            body.kind
        ))
    })?;
    let was_new = find_exchange(&st, &vhost, &name)?.is_none();
    s.declare_exchange(ExchangeDecl {
        name,
        kind,
        durable: body.durable,
        auto_delete: body.auto_delete,
        internal: body.internal,
        passive: false,
        args: table_in(&body.arguments),
    })?;
    Ok(created(was_new))
}

/// `if-unused` / `if-empty` on deletes.
#[derive(Debug, Default, Deserialize)]
pub struct DeleteFlags {
    #[serde(rename = "if-unused", default)]
    if_unused: bool,
    #[serde(rename = "if-empty", default)]
    if_empty: bool,
}

/// `DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]` (configure permission).
pub async fn delete_exchange(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(flags): Query<DeleteFlags>,
) -> ApiResult<StatusCode> {
    let mut s = caller.session(&st, &vhost)?;
    let name = exchange_name(&name);
    if find_exchange(&st, &vhost, name)?.is_none() {
        return Err(ApiError::not_found("exchange", name));
    }
    s.delete_exchange(name, flags.if_unused)?;
    Ok(StatusCode::NO_CONTENT)
}

fn queue_json(st: &AppState, q: &QueueSummary) -> Json {
    json!({
        "name": q.def.name,
        "vhost": q.def.vhost,
        "durable": q.def.durable,
        "auto_delete": q.def.auto_delete,
        "exclusive": q.exclusive,
        "arguments": table_out(&q.def.raw_args),
        "partitions": q.def.partitions,
        "messages": q.stats.ready + q.stats.unacked,
        "messages_ready": q.stats.ready,
        "messages_unacknowledged": q.stats.unacked,
        "consumers": q.stats.consumers,
        "policy": q.policy.as_ref().map(|p| &p.name),
        "effective_policy_definition": q.policy.as_ref().map_or_else(
            || json!({}),
            |p| table_out(&p.definition),
        ),
        "groups": q.stats.groups,
        "lag": q.stats.lag,
        "message_stats": message_stats(q.counters, st.rates.queue(&q.def.vhost, &q.def.name)),
    })
}

async fn list_queues(st: &AppState, vhosts: &[String]) -> Json {
    let mut out = Vec::new();
    for v in vhosts {
        for q in st.broker.queues(Some(v)).await {
            out.push(queue_json(st, &q));
        }
    }
    Json::Array(out)
}

/// `GET /api/queues`.
pub async fn all_queues(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible(&st, &caller, None)?;
    Ok(axum::Json(list_queues(&st, &vhosts).await))
}

/// `GET /api/queues/{vhost}`.
pub async fn queues(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible(&st, &caller, Some(&vhost))?;
    Ok(axum::Json(list_queues(&st, &vhosts).await))
}

/// `GET /api/queues/{vhost}/{name}`: depth, unacked, consumers, counters and rates.
pub async fn queue(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_vhost(&st, &vhost)?;
    let q = st.broker.queue_summary(&vhost, &name).await?;
    Ok(axum::Json(queue_json(&st, &q)))
}

/// The body of `PUT /api/queues/{vhost}/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQueue {
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: Map<String, Json>,
    #[serde(default)]
    partitions: Option<u16>,
}

/// `PUT /api/queues/{vhost}/{name}`: declares a queue (configure permission). Exclusive queues
/// belong to a client connection and cannot be declared here.
pub async fn put_queue(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<PutQueue>,
) -> ApiResult<StatusCode> {
    let mut s = caller.session(&st, &vhost)?;
    let was_new = st.broker.queue_summary(&vhost, &name).await.is_err();
    s.declare_queue(QueueDecl {
        name,
        partitions: body.partitions.unwrap_or(1),
        durable: body.durable,
        exclusive: false,
        auto_delete: body.auto_delete,
        passive: false,
        args: table_in(&body.arguments),
    })
    .await?;
    Ok(created(was_new))
}

/// `DELETE /api/queues/{vhost}/{name}[?if-unused=true&if-empty=true]` (configure permission).
pub async fn delete_queue(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(flags): Query<DeleteFlags>,
) -> ApiResult<StatusCode> {
    let mut s = caller.session(&st, &vhost)?;
    st.broker.queue_summary(&vhost, &name).await?;
    s.delete_queue(&name, flags.if_unused, flags.if_empty)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/queues/{vhost}/{name}/contents`: purges the ready messages (read
/// permission); answers how many.
pub async fn purge_queue(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    let mut s = caller.session(&st, &vhost)?;
    let n = s.purge_queue(&name).await?;
    Ok(axum::Json(json!({"messages_purged": n})))
}

/// RabbitMQ's `properties_key`: the routing key (`~` if empty), plus `~` and a hash of the
/// arguments when there are any.
fn properties_key(b: &BindingDef) -> String {
    let rk = if b.routing_key.is_empty() {
        "~".to_string()
    } else {
        b.routing_key.clone()
    };
    if b.args.is_empty() {
        return rk;
    }
    let args = table_out(&b.args).to_string();
    format!("{rk}~{:016x}", xxhash_rust::xxh3::xxh3_64(args.as_bytes()))
}

fn binding_json(b: &BindingDef) -> Json {
    json!({
        "source": b.source,
        "vhost": b.vhost,
        "destination": b.destination,
        "destination_type": if b.dest_is_exchange { "exchange" } else { "queue" },
        "routing_key": b.routing_key,
        "arguments": table_out(&b.args),
        "properties_key": properties_key(b),
    })
}

fn bindings_of(st: &AppState, vhosts: &[String], keep: impl Fn(&BindingDef) -> bool) -> Json {
    Json::Array(
        vhosts
            .iter()
            .flat_map(|v| st.broker.bindings(v).unwrap_or_default())
            .filter(|b| keep(b))
            .map(|b| binding_json(&b))
            .collect(),
    )
}

/// `GET /api/bindings`.
pub async fn all_bindings(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible(&st, &caller, None)?;
    Ok(axum::Json(bindings_of(&st, &vhosts, |_| true)))
}

/// `GET /api/bindings/{vhost}`.
pub async fn bindings(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible(&st, &caller, Some(&vhost))?;
    Ok(axum::Json(bindings_of(&st, &vhosts, |_| true)))
}

/// `GET /api/queues/{vhost}/{name}/bindings`.
pub async fn queue_bindings(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    let vhosts = visible(&st, &caller, Some(&vhost))?;
    st.broker.queue_summary(&vhost, &name).await?;
    Ok(axum::Json(bindings_of(&st, &vhosts, |b| {
        !b.dest_is_exchange && b.destination == name
    })))
}

fn dest_is_exchange(kind: &str) -> ApiResult<bool> {
    match kind {
        "q" => Ok(false),
        "e" => Ok(true),
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("destination kind must be 'q' or 'e', not '{other}'"),
        )),
    }
}

fn between(
    st: &AppState,
    vhost: &str,
    source: &str,
    to_exchange: bool,
    destination: &str,
) -> ApiResult<Vec<BindingDef>> {
    Ok(st
        .broker
        .bindings(vhost)?
        .into_iter()
        .filter(|b| {
            b.source == source && b.dest_is_exchange == to_exchange && b.destination == destination
        })
        .collect())
}

/// `GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
pub async fn bindings_between(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_vhost(&st, &vhost)?;
    let list = between(
        &st,
        &vhost,
        exchange_name(&source),
        dest_is_exchange(&kind)?,
        &destination,
    )?;
    Ok(axum::Json(Json::Array(
        list.iter().map(binding_json).collect(),
    )))
}

/// The body of a binding `POST`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostBinding {
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Map<String, Json>,
}

/// `POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`: binds (write permission on the
/// destination, read on the source); 201 with the new binding's `properties_key` as
/// `Location`.
pub async fn bind(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    Body(body): Body<PostBinding>,
) -> ApiResult<Response> {
    let to_exchange = dest_is_exchange(&kind)?;
    let mut s = caller.session(&st, &vhost)?;
    let decl = BindingDecl {
        exchange: exchange_name(&source).to_string(),
        destination: destination.clone(),
        destination_is_exchange: to_exchange,
        routing_key: body.routing_key,
        args: table_in(&body.arguments),
    };
    let key = properties_key(&BindingDef {
        vhost: vhost.clone(),
        source: decl.exchange.clone(),
        destination: destination.clone(),
        dest_is_exchange: to_exchange,
        routing_key: decl.routing_key.clone(),
        args: decl.args.clone(),
    });
    s.bind(decl)?;
    Ok((StatusCode::CREATED, [(header::LOCATION, key)]).into_response())
}

fn find_binding(
    st: &AppState,
    vhost: &str,
    source: &str,
    kind: &str,
    destination: &str,
    props: &str,
) -> ApiResult<BindingDef> {
    between(st, vhost, source, dest_is_exchange(kind)?, destination)?
        .into_iter()
        .find(|b| properties_key(b) == props)
        .ok_or_else(|| ApiError::not_found("binding", props))
}

/// `GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}`.
pub async fn binding(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_vhost(&st, &vhost)?;
    let b = find_binding(
        &st,
        &vhost,
        exchange_name(&source),
        &kind,
        &destination,
        &props,
    )?;
    Ok(axum::Json(binding_json(&b)))
}

/// `DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}`.
pub async fn unbind(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> ApiResult<StatusCode> {
    let mut s = caller.session(&st, &vhost)?;
    let b = find_binding(
        &st,
        &vhost,
        exchange_name(&source),
        &kind,
        &destination,
        &props,
    )?;
    s.unbind(BindingDecl {
        exchange: b.source,
        destination: b.destination,
        destination_is_exchange: b.dest_is_exchange,
        routing_key: b.routing_key,
        args: b.args,
    })?;
    Ok(StatusCode::NO_CONTENT)
}
