//! Length-prefixed frames for the cluster's own TCP links (replication, controllers).
//!
//! ```text
//! +----------+--------+---------------------+
//! | len u32  | kind u8| payload (len - 1)   |   little-endian; len counts kind + payload
//! +----------+--------+---------------------+
//! ```
//!
//! Structured payloads are postcard; the replication stream's record bytes follow a small
//! fixed header so that they are written to the socket straight from the mapped segment.

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest frame accepted (a replication chunk is at most a few MiB).
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// Reads one frame: `None` at a clean end of stream.
///
/// # Errors
/// I/O errors, a frame over `MAX_FRAME` or empty (`InvalidData`).
pub(crate) async fn read_frame(
    r: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<(u8, Bytes)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame length {len} out of range"),
        ));
    }
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    let mut buf = buf.freeze();
    let kind = buf.split_to(1);
    Ok(Some((kind.first().copied().unwrap_or_default(), buf)))
}

/// Writes one frame made of `parts` (not flushed).
///
/// # Errors
/// I/O errors; a frame over `MAX_FRAME`.
pub(crate) async fn write_frame(
    w: &mut (impl AsyncWrite + Unpin),
    kind: u8,
    parts: &[&[u8]],
) -> std::io::Result<()> {
    let len: usize = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    if len > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&(len as u32).to_le_bytes());
    head[4] = kind;
    w.write_all(&head).await?;
    for p in parts {
        w.write_all(p).await?;
    }
    Ok(())
}

/// Encodes a structured payload.
pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).unwrap_or_default()
}

/// Decodes a structured payload.
///
/// # Errors
/// `InvalidData` naming what was expected.
pub(crate) fn decode<T: DeserializeOwned>(b: &[u8], what: &str) -> std::io::Result<T> {
    postcard::from_bytes(b).map_err(|e| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad {what}: {e}"))
    })
}

/// A little-endian u64 at `at`, or `InvalidData`.
pub(crate) fn u64_at(b: &[u8], at: usize) -> std::io::Result<u64> {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "short frame"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_lengths_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        write_frame(&mut a, 7, &[b"ab", b"cd"]).await.unwrap();
        let (k, p) = read_frame(&mut b).await.unwrap().unwrap();
        assert_eq!((k, &p[..]), (7, &b"abcd"[..]));
        a.write_all(&0u32.to_le_bytes()).await.unwrap();
        assert!(read_frame(&mut b).await.is_err());
        drop(a);
        assert!(read_frame(&mut b).await.unwrap().is_none());
        assert!(u64_at(b"short", 0).is_err());
    }
}
