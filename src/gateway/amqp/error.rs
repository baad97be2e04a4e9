//! Core errors and protocol errors as AMQP reply codes, with the spec's split between soft
//! (channel) and hard (connection) errors.

use junction_amqp::amq_protocol::protocol::AMQPClass;
use junction_amqp::{channel_close, connection_close, reply_code as rc, FrameError};

use crate::core::CoreError;

/// An error to close a channel or the connection with.
#[derive(Debug, Clone)]
pub struct AmqpError {
    /// Reply code.
    pub code: u16,
    /// Reply text.
    pub text: String,
    /// Class of the failing method (0 if none).
    pub class_id: u16,
    /// Method id of the failing method (0 if none).
    pub method_id: u16,
}

impl AmqpError {
    /// An error for the method `(class_id, method_id)`.
    pub fn new(code: u16, text: impl Into<String>, class_id: u16, method_id: u16) -> Self {
        AmqpError {
            code,
            text: text.into(),
            class_id,
            method_id,
        }
    }

    /// A core error while handling the method `(class_id, method_id)`.
    pub fn core(e: &CoreError, class_id: u16, method_id: u16) -> Self {
        let code = match e {
            CoreError::NotFound { .. } => rc::NOT_FOUND,
            CoreError::AccessRefused(_) | CoreError::ReadOnly(_) => rc::ACCESS_REFUSED,
            CoreError::PreconditionFailed(_) | CoreError::Invalid(_) => rc::PRECONDITION_FAILED,
            CoreError::ResourceLocked(_) => rc::RESOURCE_LOCKED,
            CoreError::ResourceLimit(_) | CoreError::Blocked(_) => rc::RESOURCE_ERROR,
            CoreError::ShuttingDown => rc::CONNECTION_FORCED,
            CoreError::Store(_) | CoreError::Io(_) => rc::INTERNAL_ERROR,
        };
        let name = rc::name(code);
        AmqpError::new(code, format!("{name} - {e}"), class_id, method_id)
    }

    /// A codec error.
    pub fn frame(e: &FrameError) -> Self {
        AmqpError::new(e.reply_code(), e.reply_text(), e.class_id(), e.method_id())
    }

    /// Whether the spec makes this a connection (hard) error.
    pub fn is_hard(&self) -> bool {
        !matches!(
            self.code,
            rc::CONTENT_TOO_LARGE
                | rc::NO_ROUTE
                | rc::ACCESS_REFUSED
                | rc::NOT_FOUND
                | rc::RESOURCE_LOCKED
                | rc::PRECONDITION_FAILED
        )
    }

    /// The `channel.close` for a soft error.
    pub fn channel_close(&self) -> AMQPClass {
        channel_close(self.code, &self.text, self.class_id, self.method_id)
    }

    /// The `connection.close` for a hard error.
    pub fn connection_close(&self) -> AMQPClass {
        connection_close(self.code, &self.text, self.class_id, self.method_id)
    }
}

impl std::fmt::Display for AmqpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} (method {}.{})",
            self.code, self.text, self.class_id, self.method_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_errors_map_to_reply_codes() {
        let e = AmqpError::core(&CoreError::ResourceLocked("x".into()), 50, 10);
        assert_eq!(e.code, 405);
        assert!(!e.is_hard());
        let e = AmqpError::core(&CoreError::ShuttingDown, 0, 0);
        assert_eq!(e.code, 320);
        assert!(e.is_hard());
        let e = AmqpError::core(&CoreError::PreconditionFailed("x".into()), 50, 10);
        assert_eq!(e.code, 406);
        assert!(e.text.starts_with("PRECONDITION_FAILED"));
    }
}
