//! API errors: JSON `{"error": "<code>", "reason": "<text>"}` with a status code, as
//! RabbitMQ's management API answers.
//!
//! | core error | status | `error` |
//! |---|---|---|
//! | `NotFound` | 404 | `not_found` |
//! | `AccessRefused` | 403 | `access_refused` |
//! | `PreconditionFailed`, `ResourceLocked`, `ResourceLimit` | 409 | `precondition_failed`, `resource_locked`, `resource_limit` |
//! | `Invalid` | 400 | `bad_request` |
//! | `Blocked`, `ShuttingDown` | 503 | `unavailable` |
//! | `Store`, `Io` | 500 | `internal_error` |
//!
//! Bad credentials are 401 `not_authorised` with a `WWW-Authenticate: Basic` challenge.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::core::CoreError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code.
    pub error: &'static str,
    /// What went wrong, for people.
    pub reason: String,
}

impl ApiError {
    /// An error with its status, code and reason.
    pub fn new(status: StatusCode, error: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            reason: reason.into(),
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401: no or wrong credentials.
    pub fn unauthorised(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 403: authenticated, not allowed.
    pub fn forbidden(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "access_refused", reason)
    }

    /// 404: no such object.
    pub fn not_found(kind: &str, name: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind} '{name}' not found"),
        )
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> ApiError {
        let (status, code) = match &e {
            CoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            CoreError::AccessRefused(_) => (StatusCode::FORBIDDEN, "access_refused"),
            CoreError::ReadOnly(_) => (StatusCode::SERVICE_UNAVAILABLE, "read_only"),
            CoreError::PreconditionFailed(_) => (StatusCode::CONFLICT, "precondition_failed"),
            CoreError::ResourceLocked(_) => (StatusCode::CONFLICT, "resource_locked"),
            CoreError::ResourceLimit(_) => (StatusCode::CONFLICT, "resource_limit"),
            CoreError::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            CoreError::Blocked(_) | CoreError::ShuttingDown => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            CoreError::Store(_) | CoreError::Io(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "reason": self.reason});
        let mut res = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Junction\""),
            );
        }
        res
    }
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
