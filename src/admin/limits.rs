//! Topic permissions and per-vhost / per-user limits, in RabbitMQ's shapes
//! (`/api/topic-permissions`, `/api/vhost-limits`, `/api/user-limits`); administrator only.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Path};
use super::AppState;
use crate::core::{TopicPermission, UserLimits, VhostLimits};

fn topic_json(t: &TopicPermission) -> Json {
    json!({"user": t.user, "vhost": t.vhost, "exchange": t.exchange, "write": t.write, "read": t.read})
}

/// `GET /api/topic-permissions`.
pub async fn topic_permissions(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(
        st.broker
            .topic_permissions()
            .iter()
            .map(topic_json)
            .collect(),
    ))
}

/// `GET /api/topic-permissions/{vhost}/{user}`: that user's topic permissions on the vhost.
pub async fn user_topic_permissions(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(
        st.broker
            .topic_permissions()
            .iter()
            .filter(|t| t.user == user && t.vhost == vhost)
            .map(topic_json)
            .collect(),
    ))
}

/// The body of `PUT /api/topic-permissions/{vhost}/{user}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutTopicPermission {
    exchange: String,
    write: String,
    read: String,
}

/// `PUT /api/topic-permissions/{vhost}/{user}`: sets the permission on `exchange`.
pub async fn put_topic_permission(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    Body(body): Body<PutTopicPermission>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    for (what, p) in [("write", &body.write), ("read", &body.read)] {
        // Variables are replaced by escaped text at connect; check the rest parses.
        let probe = p
            .replace("{username}", "u")
            .replace("{vhost}", "v")
            .replace("{client_id}", "c");
        if let Err(e) = regex::Regex::new(&probe) {
            return Err(ApiError::bad_request(format!(
                "{what} is not a regular expression: {e}"
            )));
        }
    }
    let was_new = !st
        .broker
        .topic_permissions()
        .iter()
        .any(|t| t.user == user && t.vhost == vhost && t.exchange == body.exchange);
    st.broker.set_topic_permission(TopicPermission {
        user,
        vhost,
        exchange: body.exchange,
        write: body.write,
        read: body.read,
    })?;
    Ok(if was_new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// `?exchange=` of `DELETE /api/topic-permissions/{vhost}/{user}`.
#[derive(Debug, Deserialize)]
pub struct ExchangeQuery {
    exchange: Option<String>,
}

/// `DELETE /api/topic-permissions/{vhost}/{user}[?exchange=X]`.
pub async fn delete_topic_permissions(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    Query(q): Query<ExchangeQuery>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    st.broker
        .delete_topic_permissions(&user, &vhost, q.exchange.as_deref())?;
    Ok(StatusCode::NO_CONTENT)
}

/// The body of a limit `PUT`: `{"value": n}` (negative: no limit, as in RabbitMQ).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutLimit {
    value: i64,
}

fn limit_value(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

fn vhost_json(l: &VhostLimits) -> Json {
    let mut value = serde_json::Map::new();
    if let Some(n) = l.max_connections {
        value.insert("max-connections".into(), n.into());
    }
    if let Some(n) = l.max_queues {
        value.insert("max-queues".into(), n.into());
    }
    json!({"vhost": l.vhost, "value": value})
}

fn user_json(l: &UserLimits) -> Json {
    let mut value = serde_json::Map::new();
    if let Some(n) = l.max_connections {
        value.insert("max-connections".into(), n.into());
    }
    if let Some(n) = l.max_channels {
        value.insert("max-channels".into(), n.into());
    }
    json!({"user": l.user, "value": value})
}

/// `GET /api/vhost-limits`.
pub async fn vhost_limits(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(
        st.broker.vhost_limits().iter().map(vhost_json).collect(),
    ))
}

/// `PUT` and `DELETE /api/vhost-limits/{vhost}/{name}` (`max-connections`, `max-queues`).
async fn set_vhost_limit(
    st: &AppState,
    vhost: String,
    name: &str,
    value: Option<u64>,
) -> ApiResult<StatusCode> {
    let mut l = st
        .broker
        .vhost_limits()
        .into_iter()
        .find(|l| l.vhost == vhost)
        .unwrap_or(VhostLimits {
            vhost,
            ..Default::default()
        });
    match name {
        "max-connections" => l.max_connections = value,
        "max-queues" => l.max_queues = value,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown vhost limit '{other}' (max-connections, max-queues)"
            )))
        }
    }
    st.broker.set_vhost_limits(l)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/vhost-limits/{vhost}/{name}` with `{"value": n}`.
pub async fn put_vhost_limit(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<PutLimit>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    set_vhost_limit(&st, vhost, &name, limit_value(body.value)).await
}

/// `DELETE /api/vhost-limits/{vhost}/{name}`.
pub async fn delete_vhost_limit(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    set_vhost_limit(&st, vhost, &name, None).await
}

/// `GET /api/user-limits`.
pub async fn user_limits(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(
        st.broker.user_limits().iter().map(user_json).collect(),
    ))
}

async fn set_user_limit(
    st: &AppState,
    user: String,
    name: &str,
    value: Option<u64>,
) -> ApiResult<StatusCode> {
    let mut l = st
        .broker
        .user_limits()
        .into_iter()
        .find(|l| l.user == user)
        .unwrap_or(UserLimits {
            user,
            ..Default::default()
        });
    match name {
        "max-connections" => l.max_connections = value,
        "max-channels" => l.max_channels = value,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown user limit '{other}' (max-connections, max-channels)"
            )))
        }
    }
    st.broker.set_user_limits(l)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/user-limits/{user}/{name}` with `{"value": n}`.
pub async fn put_user_limit(
    State(st): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    Body(body): Body<PutLimit>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    set_user_limit(&st, user, &name, limit_value(body.value)).await
}

/// `DELETE /api/user-limits/{user}/{name}`.
pub async fn delete_user_limit(
    State(st): State<AppState>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    set_user_limit(&st, user, &name, None).await
}
