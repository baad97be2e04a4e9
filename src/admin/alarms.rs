//! The resource alarms' limits, changeable while the broker runs (RabbitMQ's
//! `rabbitmqctl set_vm_memory_high_watermark` and `set_disk_free_limit`):
//! `/api/limits/memory-watermark` and `/api/limits/disk-free-limit`; administrator only. A
//! change is not saved: a restart goes back to the configuration.

use axum::extract::State;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::extract::Json as Body;
use super::AppState;
use crate::core::{DiskStatus, MemoryStatus, MemoryWatermark};

fn memory_json(m: &MemoryStatus) -> Json {
    let (fraction, absolute) = match m.watermark {
        MemoryWatermark::Relative(f) => (Some(f), None),
        MemoryWatermark::Absolute(b) => (None, Some(b)),
    };
    json!({
        "fraction": fraction,
        "absolute": absolute,
        "limit": m.limit,
        "used": m.used,
        "total": m.total,
        "alarm": m.alarm,
    })
}

fn disk_json(d: &DiskStatus) -> Json {
    json!({"limit": d.limit, "free": d.free, "alarm": d.alarm})
}

/// `GET /api/limits/memory-watermark`.
pub async fn memory(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(memory_json(&st.broker.memory_status())))
}

/// The body of `PUT /api/limits/memory-watermark`: one of the two.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMemory {
    fraction: Option<f64>,
    absolute: Option<u64>,
}

/// `PUT /api/limits/memory-watermark` with `{"fraction": f}` (0 to 1) or `{"absolute": bytes}`;
/// 0 turns the alarm off. Answers the new state, the alarm included (memory is checked at once).
pub async fn put_memory(
    State(st): State<AppState>,
    caller: Caller,
    Body(body): Body<PutMemory>,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    let watermark = match (body.fraction, body.absolute) {
        (Some(f), None) if (0.0..=1.0).contains(&f) => MemoryWatermark::Relative(f),
        (Some(f), None) => {
            return Err(ApiError::bad_request(format!(
                "fraction must be between 0 and 1, not {f}"
            )))
        }
        (None, Some(b)) => MemoryWatermark::Absolute(b),
        _ => {
            return Err(ApiError::bad_request(
                "give either fraction (of RAM) or absolute (bytes)",
            ))
        }
    };
    Ok(axum::Json(memory_json(
        &st.broker.set_memory_watermark(watermark),
    )))
}

/// `GET /api/limits/disk-free-limit`.
pub async fn disk(State(st): State<AppState>, caller: Caller) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(disk_json(&st.broker.disk_status())))
}

/// The body of `PUT /api/limits/disk-free-limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutDisk {
    bytes: u64,
}

/// `PUT /api/limits/disk-free-limit` with `{"bytes": n}`: publishing is blocked while the
/// store's file system has less free space. Answers the new state (checked at once).
pub async fn put_disk(
    State(st): State<AppState>,
    caller: Caller,
    Body(body): Body<PutDisk>,
) -> ApiResult<axum::Json<Json>> {
    caller.require_admin()?;
    Ok(axum::Json(disk_json(
        &st.broker.set_disk_free_limit(body.bytes),
    )))
}
