//! Bytes in, frames out.

use bytes::{Buf, BytesMut};

use crate::body::{Body, Opcode};
use crate::error::DecodeError;
use crate::frame::{Frame, HEADER_LEN, LENGTH_PREFIX_LEN};
use crate::primitives::Reader;
use crate::{DEFAULT_MAX_FRAME, PROTOCOL_VERSION};

/// Splits a byte stream into [`Frame`]s.
///
/// Feed it the connection's read buffer: each call takes at most one frame off the front.
/// It keeps no state besides the limit, so it can be replaced (or its limit raised after the
/// handshake) at any frame boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// The largest frame length accepted (the bytes after the length prefix): the negotiated
    /// maximum frame size.
    pub max_frame: u32,
}

impl Default for Decoder {
    /// A decoder accepting frames up to [`DEFAULT_MAX_FRAME`].
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_FRAME)
    }
}

impl Decoder {
    /// A decoder accepting frame lengths up to `max_frame`.
    pub const fn new(max_frame: u32) -> Self {
        Decoder { max_frame }
    }

    /// Takes the next frame off the front of `buf`.
    ///
    /// - `Ok(Some(frame))`: one frame was removed from `buf`; call again for the next.
    /// - `Ok(None)`: `buf` holds only part of a frame and is left as it was (once the length is
    ///   known and accepted, capacity for the rest of the frame is reserved).
    /// - `Err(_)`: the stream is broken; see [`DecodeError`]. A declared length over
    ///   `max_frame` is reported as soon as the 4-byte prefix is in, before any of the body
    ///   is buffered.
    ///
    /// `bytes` fields of the frame are zero-copy slices of the frame's buffer.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, DecodeError> {
        let Some(prefix) = buf
            .get(..LENGTH_PREFIX_LEN)
            .and_then(|p| <[u8; LENGTH_PREFIX_LEN]>::try_from(p).ok())
        else {
            return Ok(None);
        };
        let declared = u32::from_le_bytes(prefix);
        let too_large = DecodeError::FrameTooLarge {
            declared,
            max: self.max_frame,
        };
        if declared > self.max_frame {
            return Err(too_large);
        }
        if declared < HEADER_LEN {
            return Err(DecodeError::FrameTooShort {
                declared,
                min: HEADER_LEN,
            });
        }
        let total = usize::try_from(declared)
            .ok()
            .and_then(|d| d.checked_add(LENGTH_PREFIX_LEN))
            .ok_or(too_large)?;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }

        let mut frame = buf.split_to(total).freeze();
        frame.advance(LENGTH_PREFIX_LEN);
        // `declared >= HEADER_LEN`, so the header is all there.
        let version = frame.get_u8();
        let opcode = frame.get_u8();
        let flags = frame.get_u16_le();
        let request_id = frame.get_u32_le();
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let opcode = Opcode::try_from(opcode)?;
        if flags != 0 {
            return Err(DecodeError::NonZeroFlags { flags });
        }

        let mut reader = Reader::new(frame);
        let body = Body::get(opcode, &mut reader)?;
        let extra = reader.remaining();
        if extra != 0 {
            return Err(DecodeError::TrailingBytes { opcode, extra });
        }
        Ok(Some(Frame { request_id, body }))
    }
}
