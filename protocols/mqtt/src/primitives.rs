//! Wire primitives shared by 3.1.1 and 5.0: integers, variable byte integers, UTF-8 strings
//! and binary data, read from a [`Bytes`] cursor (zero-copy) and written to a [`BytesMut`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

/// Largest value of a variable byte integer (4 bytes).
pub const MAX_VARINT: u32 = 268_435_455;

/// Reads a `u8`.
pub(crate) fn read_u8(src: &mut Bytes) -> Result<u8, DecodeError> {
    if src.remaining() < 1 {
        return Err(DecodeError::Malformed("truncated byte"));
    }
    Ok(src.get_u8())
}

/// Reads a big-endian `u16`.
pub(crate) fn read_u16(src: &mut Bytes) -> Result<u16, DecodeError> {
    if src.remaining() < 2 {
        return Err(DecodeError::Malformed("truncated two-byte integer"));
    }
    Ok(src.get_u16())
}

/// Reads a big-endian `u32`.
pub(crate) fn read_u32(src: &mut Bytes) -> Result<u32, DecodeError> {
    if src.remaining() < 4 {
        return Err(DecodeError::Malformed("truncated four-byte integer"));
    }
    Ok(src.get_u32())
}

/// Parses a variable byte integer at the start of `src` without consuming it: `Ok(None)` when
/// more bytes are needed, else the value and how many bytes it took.
pub(crate) fn peek_varint(src: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value: u32 = 0;
    for (i, byte) in src.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if src.len() >= 4 {
        Err(DecodeError::Malformed(
            "variable byte integer longer than 4 bytes",
        ))
    } else {
        Ok(None)
    }
}

/// Reads a variable byte integer.
pub(crate) fn read_varint(src: &mut Bytes) -> Result<u32, DecodeError> {
    match peek_varint(src.chunk())? {
        Some((value, len)) => {
            src.advance(len);
            Ok(value)
        }
        None => Err(DecodeError::Malformed("truncated variable byte integer")),
    }
}

/// Reads two-byte-length-prefixed binary data, sharing `src`'s buffer.
pub(crate) fn read_binary(src: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = usize::from(read_u16(src)?);
    if src.remaining() < len {
        return Err(DecodeError::Malformed("truncated string or binary data"));
    }
    Ok(src.split_to(len))
}

/// Reads a UTF-8 encoded string: valid UTF-8 without U+0000 ([MQTT-1.5.4-1], [MQTT-1.5.4-2]).
pub(crate) fn read_string(src: &mut Bytes) -> Result<String, DecodeError> {
    let raw = read_binary(src)?;
    let s = std::str::from_utf8(&raw).map_err(|_| DecodeError::Malformed("string is not UTF-8"))?;
    if s.contains('\0') {
        return Err(DecodeError::Malformed("string contains U+0000"));
    }
    Ok(s.to_owned())
}

/// Number of bytes a variable byte integer takes.
pub(crate) fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes a variable byte integer.
pub(crate) fn write_varint(value: usize, dst: &mut BytesMut) -> Result<(), EncodeError> {
    if value > MAX_VARINT as usize {
        return Err(EncodeError::PacketTooLong(value));
    }
    let mut v = value;
    loop {
        let mut byte = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        dst.put_u8(byte);
        if v == 0 {
            return Ok(());
        }
    }
}

/// Writes two-byte-length-prefixed binary data.
pub(crate) fn write_binary(data: &[u8], dst: &mut BytesMut) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::FieldTooLong(data.len()))?;
    dst.put_u16(len);
    dst.put_slice(data);
    Ok(())
}

/// Writes a UTF-8 encoded string.
pub(crate) fn write_string(s: &str, dst: &mut BytesMut) -> Result<(), EncodeError> {
    write_binary(s.as_bytes(), dst)
}
