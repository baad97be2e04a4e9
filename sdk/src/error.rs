//! [`SdkError`]: everything that can go wrong in the SDK.

use junction_native::{DecodeError, EncodeError, ErrorCode};

/// The result type of the SDK.
pub type Result<T, E = SdkError> = std::result::Result<T, E>;

/// An error from the SDK.
///
/// Which errors leave the [`Client`](crate::Client) usable:
///
/// - [`SdkError::Server`], [`SdkError::Returned`], [`SdkError::Encode`],
///   [`SdkError::Timeout`]: only this request failed.
/// - [`SdkError::ConnectionLost`]: the request was in flight when the connection dropped; its
///   outcome is unknown (a publish may or may not have been stored). The client is already
///   reconnecting, so it can be retried.
/// - [`SdkError::Closed`]: the client was closed (or gave up reconnecting); nothing more will
///   work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// A socket error while connecting, reading or writing.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The server sent bytes that are not a valid frame; the connection is dropped.
    #[error("cannot decode a frame from the server: {0}")]
    Decode(#[from] DecodeError),
    /// The request cannot be encoded, e.g. it is larger than the negotiated maximum frame size.
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
    /// The server refused the request (an `Error` response).
    #[error("server error {code}: {message}")]
    Server {
        /// The reply code, e.g. [`ErrorCode::NotFound`].
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// A `mandatory` message could not be routed to any queue and was returned.
    #[error("message returned by the server ({code}): {text}")]
    Returned {
        /// The reply code, usually [`ErrorCode::NoRoute`].
        code: ErrorCode,
        /// The server's explanation.
        text: String,
    },
    /// No name server answered, or none knows the topic or broker group asked for.
    #[error("no route: {0}")]
    Route(String),
    /// The server ended a consumer (for example its queue was deleted). The consumer's stream
    /// yields this once and then ends.
    #[error("consumer cancelled by the server: {reason}")]
    Cancelled {
        /// The server's reason.
        reason: String,
    },
    /// The connection dropped while the request was in flight; its outcome is unknown.
    #[error("connection to the server lost; the request's outcome is unknown")]
    ConnectionLost,
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
    /// No answer within the request timeout (or the connect timeout); the outcome is unknown.
    #[error("timed out waiting for the server")]
    Timeout,
    /// Invalid client options.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server answered with a frame that makes no sense for the request.
    #[error("protocol violation by the server: {0}")]
    Protocol(String),
}

impl SdkError {
    /// The server's reply code, for [`SdkError::Server`] and [`SdkError::Returned`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            SdkError::Server { code, .. } | SdkError::Returned { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed: the connection dropped or the
    /// request timed out.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SdkError::ConnectionLost | SdkError::Timeout | SdkError::Io(_)
        )
    }

    /// An error for an unexpected answer to a request.
    pub(crate) fn unexpected(what: &str, body: &junction_native::Body) -> SdkError {
        SdkError::Protocol(format!("expected {what}, got {:?}", body.opcode()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_useful() {
        let e = SdkError::Server {
            code: ErrorCode::AccessRefused,
            message: "bad credentials".into(),
        };
        assert_eq!(
            e.to_string(),
            "server error 403 ACCESS_REFUSED: bad credentials"
        );
        assert_eq!(e.code(), Some(ErrorCode::AccessRefused));
        let r = SdkError::Returned {
            code: ErrorCode::NoRoute,
            text: "NO_ROUTE".into(),
        };
        assert!(r.to_string().contains("312 NO_ROUTE"));
        assert!(SdkError::ConnectionLost.is_transient());
        assert!(!SdkError::Closed.is_transient());
        assert!(SdkError::Config("x".into()).to_string().contains("x"));
    }
}
