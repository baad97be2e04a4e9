//! HTTP basic authentication against the broker's users, and who may do what.
//!
//! - Users, vhosts and permissions: the `administrator` tag.
//! - Reading a vhost's exchanges, queues and bindings: permissions on that vhost, or the
//!   `administrator` or `monitoring` tag (which see every vhost).
//! - Changing them, publishing, getting and looking up messages: a core session of the caller
//!   on that vhost, so the configure/write/read patterns decide, exactly as for a client.
//! - Connections: `administrator`/`monitoring` see all, others their own; closing one takes
//!   the `administrator` tag or being its user.
//!
//! The `guest` user stays loopback-only here too.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::core::{Session, User};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user.
    pub user: User,
    password: String,
    peer: Option<SocketAddr>,
}

impl Caller {
    /// Has the `administrator` tag.
    pub fn is_admin(&self) -> bool {
        self.user.tags.iter().any(|t| t == "administrator")
    }

    /// Has the `administrator` or `monitoring` tag.
    pub fn is_monitor(&self) -> bool {
        self.is_admin() || self.user.tags.iter().any(|t| t == "monitoring")
    }

    /// 403 unless an administrator.
    pub fn require_admin(&self) -> ApiResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "user '{}' is not an administrator",
                self.user.name
            )))
        }
    }

    /// Whether the caller may see `vhost`'s objects.
    pub fn can_see(&self, st: &AppState, vhost: &str) -> bool {
        self.is_monitor()
            || st
                .broker
                .permissions()
                .iter()
                .any(|p| p.user == self.user.name && p.vhost == vhost)
    }

    /// 404 for an unknown vhost, 403 for one the caller may not see.
    pub fn check_vhost(&self, st: &AppState, vhost: &str) -> ApiResult<()> {
        if !st.broker.vhosts().iter().any(|v| v == vhost) {
            return Err(ApiError::not_found("vhost", vhost));
        }
        if !self.can_see(st, vhost) {
            return Err(ApiError::forbidden(format!(
                "user '{}' has no access to vhost '{vhost}'",
                self.user.name
            )));
        }
        Ok(())
    }

    /// A core session of the caller on `vhost` (404 for an unknown vhost, 403 without
    /// permissions there).
    pub fn session(&self, st: &AppState, vhost: &str) -> ApiResult<Session> {
        if !st.broker.vhosts().iter().any(|v| v == vhost) {
            return Err(ApiError::not_found("vhost", vhost));
        }
        Ok(st.broker.connect_unlisted(
            &self.user.name,
            &self.password,
            vhost,
            self.peer,
            "http",
            "http-api",
        )?)
    }
}

fn credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> ApiResult<Caller> {
        let Some((name, password)) = credentials(parts) else {
            return Err(ApiError::unauthorised(
                "HTTP basic authentication is required",
            ));
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let user = st
            .broker
            .check_credentials(&name, &password, peer, "http")
            .map_err(|e| match e {
                crate::core::CoreError::AccessRefused(why) => ApiError::unauthorised(why),
                e => ApiError::from(e),
            })?;
        Ok(Caller {
            user,
            password,
            peer,
        })
    }
}
