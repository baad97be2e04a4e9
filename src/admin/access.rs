//! Vhosts, users and permissions (`administrator` tag to change; see [`super::auth`]).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Path};
use super::overview::message_stats;
use super::AppState;
use crate::core::auth::hash_password;
use crate::core::{Permission, User};

/// 201 when created, 204 when an existing object was updated (RabbitMQ's convention).
fn created(was_new: bool) -> StatusCode {
    if was_new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

/// `GET /api/whoami`.
pub async fn whoami(caller: Caller) -> axum::Json<Json> {
    axum::Json(json!({"name": caller.user.name, "tags": caller.user.tags}))
}

fn vhost_json(st: &AppState, name: &str) -> Json {
    json!({
        "name": name,
        "message_stats": message_stats(
            st.broker.vhost_counters(name).unwrap_or_default(),
            st.rates.vhost(name),
        ),
    })
}

/// `GET /api/vhosts`: the vhosts the caller may see.
pub async fn vhosts(State(st): State<AppState>, caller: Caller) -> axum::Json<Json> {
    axum::Json(Json::Array(
        st.broker
            .vhosts()
            .iter()
            .filter(|v| caller.can_see(&st, v))
            .map(|v| vhost_json(&st, v))
            .collect(),
    ))
}

/// `GET /api/vhosts/{vhost}`.
pub async fn vhost(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_vhost(&st, &name)?;
    Ok(axum::Json(vhost_json(&st, &name)))
}

/// `PUT /api/vhosts/{vhost}` (administrator). The body, if any, is read and ignored: left
/// unread, it would cost the client its keep-alive connection.
pub async fn put_vhost(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    _body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if name.is_empty() {
        return Err(ApiError::bad_request("a vhost name cannot be empty"));
    }
    let was_new = !st.broker.vhosts().contains(&name);
    st.broker.add_vhost(&name)?;
    Ok(created(was_new))
}

/// `DELETE /api/vhosts/{vhost}` (administrator): its connections are closed, its queues and
/// their messages deleted.
pub async fn delete_vhost(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    st.broker.delete_vhost(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_json(u: &User) -> Json {
    json!({
        "name": u.name,
        "tags": u.tags,
        "password_hash": u.password_hash,
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "loopback_only": u.loopback_only,
    })
}

/// `GET /api/users` (administrator).
pub async fn users(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(Json::Array(
        st.broker.users().iter().map(user_json).collect(),
    )))
}

/// `GET /api/users/{user}` (administrator).
pub async fn user(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    let u = st
        .broker
        .user(&name)
        .ok_or_else(|| ApiError::not_found("user", &name))?;
    Ok(axum::Json(user_json(&u)))
}

/// Tags as RabbitMQ accepts them: a comma-separated string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Tags {
    /// `"administrator,monitoring"`.
    Text(String),
    /// `["administrator", "monitoring"]`.
    List(Vec<String>),
}

impl Tags {
    fn into_vec(self) -> Vec<String> {
        let list = match self {
            Tags::Text(s) => s.split(',').map(str::to_string).collect(),
            Tags::List(l) => l,
        };
        list.into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }
}

/// The body of `PUT /api/users/{user}`: a password or a RabbitMQ-format hash, and tags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutUser {
    password: Option<String>,
    password_hash: Option<String>,
    #[serde(default)]
    hashing_algorithm: Option<String>,
    tags: Option<Tags>,
}

/// `PUT /api/users/{user}` (administrator).
pub async fn put_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Body(body): Body<PutUser>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if name.is_empty() {
        return Err(ApiError::bad_request("a user name cannot be empty"));
    }
    if body
        .hashing_algorithm
        .as_deref()
        .is_some_and(|a| a != "rabbit_password_hashing_sha256")
    {
        return Err(ApiError::bad_request(
            "only rabbit_password_hashing_sha256 hashes are supported",
        ));
    }
    let old = st.broker.user(&name);
    let password_hash = match (body.password, body.password_hash) {
        (Some(p), None) => hash_password(&p),
        (None, Some(h)) => h,
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either password or password_hash, not both",
            ))
        }
        (None, None) => match &old {
            Some(u) => u.password_hash.clone(),
            None => {
                return Err(ApiError::bad_request(
                    "password or password_hash is required",
                ))
            }
        },
    };
    let tags = match (body.tags, &old) {
        (Some(t), _) => t.into_vec(),
        (None, Some(u)) => u.tags.clone(),
        (None, None) => Vec::new(),
    };
    st.broker.put_user_hashed(User {
        name,
        password_hash,
        tags,
        loopback_only: old.as_ref().is_some_and(|u| u.loopback_only),
    })?;
    Ok(created(old.is_none()))
}

/// `DELETE /api/users/{user}` (administrator): the user's connections are closed.
pub async fn delete_user(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    st.broker.delete_user(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

fn permission_json(p: &Permission) -> Json {
    json!({
        "user": p.user, "vhost": p.vhost,
        "configure": p.configure, "write": p.write, "read": p.read,
    })
}

/// `GET /api/permissions` (administrator).
pub async fn permissions(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(Json::Array(
        st.broker
            .permissions()
            .iter()
            .map(permission_json)
            .collect(),
    )))
}

/// `GET /api/permissions/{vhost}/{user}` (administrator).
pub async fn permission(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    st.broker
        .permissions()
        .iter()
        .find(|p| p.user == user && p.vhost == vhost)
        .map(|p| axum::Json(permission_json(p)))
        .ok_or_else(|| ApiError::not_found("permission", &format!("{user}@{vhost}")))
}

/// The body of `PUT /api/permissions/{vhost}/{user}`: three regular expressions.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPermission {
    configure: String,
    write: String,
    read: String,
}

/// `PUT /api/permissions/{vhost}/{user}` (administrator).
pub async fn put_permission(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    Body(body): Body<PutPermission>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    if !st.broker.vhosts().contains(&vhost) {
        return Err(ApiError::not_found("vhost", &vhost));
    }
    if st.broker.user(&user).is_none() {
        return Err(ApiError::not_found("user", &user));
    }
    for (what, p) in [
        ("configure", &body.configure),
        ("write", &body.write),
        ("read", &body.read),
    ] {
        if let Err(e) = regex::Regex::new(p) {
            return Err(ApiError::bad_request(format!(
                "{what} is not a regular expression: {e}"
            )));
        }
    }
    let was_new = !st
        .broker
        .permissions()
        .iter()
        .any(|p| p.user == user && p.vhost == vhost);
    st.broker.set_permissions(Permission {
        user,
        vhost,
        configure: body.configure,
        write: body.write,
        read: body.read,
    })?;
    Ok(created(was_new))
}

/// `DELETE /api/permissions/{vhost}/{user}` (administrator).
pub async fn delete_permission(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_admin()?;
    st.broker.delete_permissions(&user, &vhost)?;
    Ok(StatusCode::NO_CONTENT)
}
