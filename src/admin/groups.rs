//! A queue's consumer groups: offsets and lag per partition; moving a group's offsets (replay
//! or skip) and deleting a group, for groups with no consumers. In paths the queue's default
//! group (`""`, the one AMQP, STOMP and MQTT consumers share) is `~`.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::{Json as Body, Path};
use super::AppState;
use crate::core::{GroupInfo, StartFrom};

fn group_name(path: &str) -> &str {
    if path == "~" {
        ""
    } else {
        path
    }
}

fn group_json(g: &GroupInfo) -> Json {
    json!({
        "name": g.name,
        "members": g.members,
        "exclusive_partitions": g.exclusive_partitions,
        "lag": g.partitions.iter().map(|p| p.lag).sum::<u64>(),
        "partitions": g.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "committed": p.committed,
            "next_read": p.next_read,
            "end": p.end,
            "lag": p.lag,
            "inflight": p.inflight,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/queues/{vhost}/{name}/groups`.
pub async fn groups(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<axum::Json<Json>> {
    caller.check_vhost(&st, &vhost)?;
    let gs = st.broker.groups(&vhost, &name).await?;
    Ok(axum::Json(Json::Array(gs.iter().map(group_json).collect())))
}

/// The body of `PUT /api/queues/{vhost}/{name}/groups/{group}/offsets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// `earliest`, `latest`, `offset` or `time`.
    to: String,
    /// With `to: offset`.
    offset: Option<u64>,
    /// With `to: time`: ms since the epoch.
    time: Option<i64>,
}

/// `PUT /api/queues/{vhost}/{name}/groups/{group}/offsets` (configure permission on the queue):
/// moves the offsets of a group with no consumers in every partition.
pub async fn reset(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name, group)): Path<(String, String, String)>,
    Body(body): Body<ResetBody>,
) -> ApiResult<StatusCode> {
    let to = match (body.to.as_str(), body.offset, body.time) {
        ("earliest", None, None) => StartFrom::Earliest,
        ("latest", None, None) => StartFrom::Latest,
        ("offset", Some(o), None) => StartFrom::Offset(o),
        ("time", None, Some(t)) => StartFrom::Time(t),
        _ => {
            return Err(ApiError::bad_request(
                "give {\"to\": \"earliest\"}, {\"to\": \"latest\"}, {\"to\": \"offset\", \"offset\": N} or {\"to\": \"time\", \"time\": ms}",
            ))
        }
    };
    let s = caller.session(&st, &vhost)?;
    st.broker
        .reset_group(&s, &name, group_name(&group), to)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/queues/{vhost}/{name}/groups/{group}` (configure permission on the queue): a
/// named group with no consumers.
pub async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    Path((vhost, name, group)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let s = caller.session(&st, &vhost)?;
    st.broker
        .delete_group(&s, &name, group_name(&group))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
