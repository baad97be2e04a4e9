//! Frames in, bytes out.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::frame::{Frame, LENGTH_PREFIX_LEN};
use crate::primitives::Writer;
use crate::PROTOCOL_VERSION;

/// Appends `frame`, length prefix included, to `out`.
///
/// Fails only on a field the format cannot carry (a `str` over 65 535 bytes, a `map` over
/// 65 535 entries, a frame over `u32::MAX` bytes); `out` is then left as it was. Nothing is
/// ever truncated.
pub fn encode(frame: &Frame, out: &mut BytesMut) -> Result<(), EncodeError> {
    encode_with_max(frame, u32::MAX, out)
}

/// Like [`encode`], and also fails with [`EncodeError::FrameTooLarge`] (leaving `out` as it
/// was) when the frame's length is over `max_frame`, the peer's negotiated maximum, which the
/// peer would reject.
pub fn encode_with_max(
    frame: &Frame,
    max_frame: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_unchecked(frame, max_frame, start, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_unchecked(
    frame: &Frame,
    max_frame: u32,
    start: usize,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    out.put_u32_le(0); // length, patched below
    out.put_u8(PROTOCOL_VERSION);
    out.put_u8(frame.body.opcode().into());
    out.put_u16_le(0); // flags
    out.put_u32_le(frame.request_id);
    frame.body.put(&mut Writer::new(out))?;

    let len = out.len() - start - LENGTH_PREFIX_LEN;
    let declared =
        u32::try_from(len)
            .ok()
            .filter(|l| *l <= max_frame)
            .ok_or(EncodeError::FrameTooLarge {
                len,
                max: max_frame,
            })?;
    if let Some(prefix) = out.get_mut(start..start + LENGTH_PREFIX_LEN) {
        prefix.copy_from_slice(&declared.to_le_bytes());
    }
    Ok(())
}
