//! Primitive encodings shared by every payload: integers, `bool`, `str`, `bytes`, `opt<T>`,
//! `list<T>` and `map`.
//!
//! Decoding reads from a [`Bytes`] holding one frame's payload, checking `remaining()` before
//! every read so no input can panic; `bytes` fields come out as zero-copy slices of it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

/// A `map` on the wire: `(key, value)` pairs, order kept, duplicate keys allowed.
pub type Map = Vec<(String, Bytes)>;

/// A value with a wire encoding.
pub(crate) trait Wire: Sized {
    /// The fewest bytes an encoded value can take; a list count is checked against
    /// `count * MIN_LEN` before anything is allocated.
    const MIN_LEN: usize;

    /// Appends the encoding.
    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError>;

    /// Reads one value.
    fn get(r: &mut Reader) -> Result<Self, DecodeError>;
}

/// Reads primitives from one frame's payload.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.remaining()
    }

    fn need(&self, field: &'static str, need: usize) -> Result<(), DecodeError> {
        let have = self.buf.remaining();
        if have < need {
            return Err(DecodeError::UnexpectedEof { field, need, have });
        }
        Ok(())
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.need(field, 2)?;
        Ok(self.buf.get_u16_le())
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32_le())
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_u64_le())
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        self.need(field, 8)?;
        Ok(self.buf.get_i64_le())
    }

    pub(crate) fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::InvalidBool { field, value }),
        }
    }

    /// `u16` length + UTF-8.
    pub(crate) fn str(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = usize::from(self.u16(field)?);
        self.need(field, len)?;
        let raw = self.buf.split_to(len);
        match std::str::from_utf8(&raw) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(DecodeError::InvalidUtf8 {
                field,
                valid_up_to: e.valid_up_to(),
            }),
        }
    }

    /// `u32` length + bytes, as a zero-copy slice of the payload.
    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(field)?;
        // A length that does not fit usize cannot fit in the payload either.
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.need(field, len)?;
        Ok(self.buf.split_to(len))
    }

    /// `u8` presence (0/1) + the value.
    pub(crate) fn opt<T>(
        &mut self,
        field: &'static str,
        read: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        if self.bool(field)? {
            Ok(Some(read(self)?))
        } else {
            Ok(None)
        }
    }

    /// `u32` count + items; the count is checked against the bytes left (at `min_len` bytes an
    /// item) before the vector is allocated.
    pub(crate) fn list<T>(
        &mut self,
        field: &'static str,
        min_len: usize,
        mut read: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let count = usize::try_from(self.u32(field)?).unwrap_or(usize::MAX);
        self.need(field, count.saturating_mul(min_len.max(1)))?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(read(self)?);
        }
        Ok(items)
    }

    /// A list of [`Wire`] values.
    pub(crate) fn list_of<T: Wire>(&mut self, field: &'static str) -> Result<Vec<T>, DecodeError> {
        self.list(field, T::MIN_LEN, T::get)
    }

    /// `u16` count + (`str` key, `bytes` value) pairs.
    pub(crate) fn map(&mut self, field: &'static str) -> Result<Map, DecodeError> {
        let count = usize::from(self.u16(field)?);
        self.need(field, count.saturating_mul(2 + 4))?;
        let mut map = Vec::with_capacity(count);
        for _ in 0..count {
            let key = self.str(field)?;
            let value = self.bytes(field)?;
            map.push((key, value));
        }
        Ok(map)
    }
}

/// Appends primitives to an output buffer.
pub(crate) struct Writer<'a> {
    out: &'a mut BytesMut,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut BytesMut) -> Self {
        Writer { out }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.out.put_u8(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.out.put_u16_le(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.out.put_u32_le(v);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.out.put_u64_le(v);
    }

    pub(crate) fn i64(&mut self, v: i64) {
        self.out.put_i64_le(v);
    }

    pub(crate) fn bool(&mut self, v: bool) {
        self.out.put_u8(u8::from(v));
    }

    pub(crate) fn str(&mut self, field: &'static str, v: &str) -> Result<(), EncodeError> {
        let len = u16::try_from(v.len()).map_err(|_| EncodeError::StringTooLong {
            field,
            len: v.len(),
        })?;
        self.out.put_u16_le(len);
        self.out.put_slice(v.as_bytes());
        Ok(())
    }

    pub(crate) fn bytes(&mut self, field: &'static str, v: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(v.len()).map_err(|_| EncodeError::BytesTooLong {
            field,
            len: v.len(),
        })?;
        self.out.put_u32_le(len);
        self.out.put_slice(v);
        Ok(())
    }

    pub(crate) fn opt<T>(
        &mut self,
        v: Option<&T>,
        write: impl FnOnce(&mut Self, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        match v {
            Some(v) => {
                self.u8(1);
                write(self, v)
            }
            None => {
                self.u8(0);
                Ok(())
            }
        }
    }

    pub(crate) fn list<T>(
        &mut self,
        field: &'static str,
        items: &[T],
        mut write: impl FnMut(&mut Self, &T) -> Result<(), EncodeError>,
    ) -> Result<(), EncodeError> {
        let count = u32::try_from(items.len()).map_err(|_| EncodeError::ListTooLong {
            field,
            len: items.len(),
        })?;
        self.u32(count);
        for item in items {
            write(self, item)?;
        }
        Ok(())
    }

    pub(crate) fn list_of<T: Wire>(
        &mut self,
        field: &'static str,
        items: &[T],
    ) -> Result<(), EncodeError> {
        self.list(field, items, |w, item| item.put(w))
    }

    pub(crate) fn map(&mut self, field: &'static str, map: &Map) -> Result<(), EncodeError> {
        let count = u16::try_from(map.len()).map_err(|_| EncodeError::MapTooLong {
            field,
            len: map.len(),
        })?;
        self.u16(count);
        for (key, value) in map {
            self.str(field, key)?;
            self.bytes(field, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> Reader {
        Reader::new(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn integers_are_little_endian() {
        let mut out = BytesMut::new();
        let mut w = Writer::new(&mut out);
        w.u16(0x0102);
        w.u32(0x0304_0506);
        w.u64(0x0708_090a_0b0c_0d0e);
        w.i64(-2);
        assert_eq!(
            &out[..],
            &[
                2, 1, 6, 5, 4, 3, 0x0e, 0x0d, 0x0c, 0x0b, 0x0a, 9, 8, 7, 0xfe, 0xff, 0xff, 0xff,
                0xff, 0xff, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn bytes_are_zero_copy_slices() {
        let payload = Bytes::from_static(b"\x03\x00\x00\x00abc");
        let mut r = Reader::new(payload.clone());
        let b = r.bytes("f").unwrap();
        assert_eq!(&b[..], b"abc");
        assert_eq!(b.as_ptr(), payload[4..].as_ptr());
    }

    #[test]
    fn huge_list_count_is_rejected_before_allocating() {
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff, 0]);
        let err = r.list("l", 8, |r| r.u64("x")).unwrap_err();
        assert!(
            matches!(err, DecodeError::UnexpectedEof { have: 1, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn zero_sized_items_still_need_a_byte_each() {
        // min_len 0 would let a huge count through; it is treated as 1.
        let mut r = reader(&[0xff, 0xff, 0xff, 0xff]);
        assert!(r.list("l", 0, |_| Ok(())).is_err());
    }

    #[test]
    fn string_limit() {
        let mut out = BytesMut::new();
        let mut w = Writer::new(&mut out);
        assert!(w.str("s", &"x".repeat(65_535)).is_ok());
        assert_eq!(
            w.str("s", &"x".repeat(65_536)),
            Err(EncodeError::StringTooLong {
                field: "s",
                len: 65_536
            })
        );
    }
}
