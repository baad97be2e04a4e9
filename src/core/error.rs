//! The core's error type. Each gateway maps it onto its protocol's own errors (AMQP reply codes,
//! MQTT reason codes, STOMP ERROR frames, native error codes).

use junction_store::StoreError;

/// What a core operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// No such exchange, queue, vhost, consumer or delivery.
    #[error("{kind} '{name}' not found")]
    NotFound {
        /// What was looked for ("queue", "exchange", ...).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// Authentication failed or a permission is missing.
    #[error("access refused: {0}")]
    AccessRefused(String),
    /// The object exists with other properties, or a condition (if-unused, if-empty) failed.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// An exclusive queue belongs to another session.
    #[error("resource locked: {0}")]
    ResourceLocked(String),
    /// A limit was hit (queue full with reject-publish, too many queues, ...).
    #[error("resource limit: {0}")]
    ResourceLimit(String),
    /// The request is malformed for the core (bad name, bad argument).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Publishing is blocked by the disk-low watermark or a memory alarm.
    #[error("publishing blocked: {0}")]
    Blocked(String),
    /// This broker is a read-only slave of its broker group: writes go to the group's master.
    #[error("read-only: {0}")]
    ReadOnly(String),
    /// The broker is shutting down.
    #[error("broker is shutting down")]
    ShuttingDown,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Persisting metadata failed.
    #[error("metadata i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl CoreError {
    pub(crate) fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        CoreError::NotFound {
            kind,
            name: name.into(),
        }
    }
}

/// Shorthand.
pub type CoreResult<T> = Result<T, CoreError>;
