//! [`Frame`]: a request id and a [`Body`].

use bytes::{Bytes, BytesMut};

use crate::body::{Body, Opcode};
use crate::encode::encode;
use crate::error::EncodeError;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// Bytes of the fixed header after the length prefix: version (1), opcode (1), flags (2),
/// request id (4). The smallest valid frame length.
pub const HEADER_LEN: u32 = 8;

/// One protocol frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Chosen by the client for a request and echoed in its response; 0 for server pushes,
    /// heartbeats and connection-level errors.
    pub request_id: u32,
    /// The message.
    pub body: Body,
}

impl Frame {
    /// A frame with this request id.
    pub fn new(request_id: u32, body: impl Into<Body>) -> Self {
        Frame {
            request_id,
            body: body.into(),
        }
    }

    /// A frame with request id 0: a server push, a heartbeat or a connection-level error.
    pub fn push(body: impl Into<Body>) -> Self {
        Frame::new(0, body)
    }

    /// The body's opcode.
    pub fn opcode(&self) -> Opcode {
        self.body.opcode()
    }

    /// The frame's encoding, length prefix included (see [`encode`]).
    pub fn to_bytes(&self) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        encode(self, &mut out)?;
        Ok(out.freeze())
    }
}
