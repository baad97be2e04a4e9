//! Policies in RabbitMQ's shapes (`/api/policies`): who may read and change them is RabbitMQ's
//! rule, the `administrator` tag (every vhost) or the `policymaker` tag with permissions on the
//! vhost. What a policy does is the core's (`crate::core::policy`).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Map, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Path};
use super::json::{table_in, table_out};
use super::AppState;
use crate::core::{ApplyTo, Policy};

/// A policy as RabbitMQ answers it, with Junction's `not_applied` (definition keys kept but not
/// implemented).
pub fn policy_json(p: &Policy) -> Json {
    json!({
        "vhost": p.vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to.as_str(),
        "priority": p.priority,
        "definition": table_out(&p.definition),
        "not_applied": p.not_applied(),
    })
}

impl Caller {
    /// Has the `policymaker` tag (or `administrator`).
    fn is_policymaker(&self) -> bool {
        self.is_admin() || self.user.tags.iter().any(|t| t == "policymaker")
    }

    /// Whether the caller may read and change `vhost`'s policies.
    fn may_set_policies(&self, st: &AppState, vhost: &str) -> bool {
        self.is_admin() || (self.is_policymaker() && self.can_see(st, vhost))
    }

    /// 404 for an unknown vhost, 403 unless the caller may manage its policies.
    fn check_policies(&self, st: &AppState, vhost: &str) -> ApiResult<()> {
        if !st.broker.vhosts().iter().any(|v| v == vhost) {
            return Err(ApiError::not_found("vhost", vhost));
        }
        if !self.may_set_policies(st, vhost) {
            return Err(ApiError::forbidden(format!(
                "user '{}' may not manage policies of vhost '{vhost}' (administrator, or policymaker with permissions there)",
                self.user.name
            )));
        }
        Ok(())
    }
}

/// `GET /api/policies`: the policies of every vhost the caller may manage.
pub async fn all(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Json>> {
    if !caller.is_policymaker() {
        return Err(ApiError::forbidden(format!(
            "user '{}' is neither an administrator nor a policymaker",
            caller.user.name
        )));
    }
    Ok(axum::Json(Json::Array(
        st.broker
            .policies()
            .iter()
            .filter(|p| caller.may_set_policies(&st, &p.vhost))
            .map(policy_json)
            .collect(),
    )))
}

/// `GET /api/policies/{vhost}`.
pub async fn of_vhost(
    State(st): State<AppState>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_policies(&st, &vhost)?;
    Ok(axum::Json(Json::Array(
        st.broker
            .policies()
            .iter()
            .filter(|p| p.vhost == vhost)
            .map(policy_json)
            .collect(),
    )))
}

/// `GET /api/policies/{vhost}/{name}`.
pub async fn one(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_policies(&st, &vhost)?;
    st.broker
        .policies()
        .iter()
        .find(|p| p.vhost == vhost && p.name == name)
        .map(|p| axum::Json(policy_json(p)))
        .ok_or_else(|| ApiError::not_found("policy", &name))
}

/// The body of `PUT /api/policies/{vhost}/{name}` (RabbitMQ's; `vhost` and `name`, as a
/// definitions file carries them, must agree with the path).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPolicy {
    pattern: String,
    definition: Map<String, Json>,
    #[serde(default)]
    priority: i64,
    #[serde(rename = "apply-to", default = "apply_to_all")]
    apply_to: String,
    #[serde(default)]
    vhost: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

fn apply_to_all() -> String {
    "all".into()
}

/// `PUT /api/policies/{vhost}/{name}`: adds or replaces a policy, in force at once on the
/// vhost's queues; 201 new, 204 replaced.
pub async fn put(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Body(body): Body<PutPolicy>,
) -> ApiResult<StatusCode> {
    caller.check_policies(&st, &vhost)?;
    for (field, given, path) in [("vhost", &body.vhost, &vhost), ("name", &body.name, &name)] {
        if given.as_ref().is_some_and(|g| g != path) {
            return Err(ApiError::bad_request(format!(
                "{field} in the body differs from the path"
            )));
        }
    }
    let apply_to = ApplyTo::parse(&body.apply_to).ok_or_else(|| {
        ApiError::bad_request(format!(
            "apply-to '{}' is not queues, exchanges or all",
            body.apply_to
        ))
    })?;
    let was_new = st.broker.set_policy(Policy {
        vhost,
        name,
        pattern: body.pattern,
        apply_to,
        priority: body.priority,
        definition: table_in(&body.definition),
    })?;
    Ok(if was_new {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    })
}

/// `DELETE /api/policies/{vhost}/{name}`: the queues it applied to go back to their own
/// arguments (or the next matching policy) at once.
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.check_policies(&st, &vhost)?;
    st.broker.delete_policy(&vhost, &name)?;
    Ok(StatusCode::NO_CONTENT)
}
