//! The CommitLog record: its byte layout, encoding and checked decoding.
//!
//! Every integer is little-endian. A record never spans two segments.
//!
//! ```text
//!  offset size  field
//!   0      4    total_len         whole record, this field included
//!   4      2    magic             0x4A52 ("JR")
//!   6      1    version           1
//!   7      1    kind              1 = message, 2 = blank (pads the end of a segment)
//!   8      4    crc32c            CRC-32C (Castagnoli) of bytes [12, total_len)
//!  12      8    commitlog_offset  where this record starts; stale bytes at another place fail it
//!  20      8    born_ts           producer's timestamp, ms since the Unix epoch
//!  28      8    store_ts          broker's timestamp, ms; never decreases along the log
//!  36      8    tag_hash          hash of the message tag (0 = none), copied to consume queues
//!  44      4    flags             owned by the broker core (persistent, transactional, ...)
//!  48      2    target_count  T   queue partitions this record is dispatched to
//!  50      1    msg_id_len    I
//!  51      1    key_count     K
//!  52      4    properties_len P
//!  56      4    body_len      B
//!  60   16*T    targets           queue u32, partition u32, queue_offset u64
//!       I       msg_id
//!       ...     keys              K times: len u16, bytes
//!       P       properties        opaque to the store (the core's encoding)
//!       B       body
//! ```
//!
//! A blank record is `total_len, magic, version, kind = 2` and fills the rest of a segment when
//! the next record does not fit; fewer than 8 bytes left are simply left zero.
//!
//! A message is written to the CommitLog once however many queues it is routed to: the targets
//! list is what lets consume queues be rebuilt from the CommitLog alone, and storing each target's
//! queue offset makes that rebuild idempotent.

use bytes::Bytes;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 60;
/// Bytes of one target entry.
pub const TARGET_LEN: usize = 16;
/// Record magic.
pub const MAGIC: u16 = 0x4A52;
/// Record format version.
pub const VERSION: u8 = 1;
/// `kind` of a message record.
pub const KIND_MESSAGE: u8 = 1;
/// `kind` of a blank (end-of-segment) record.
pub const KIND_BLANK: u8 = 2;
/// Smallest blank record: length, magic, version, kind.
pub const BLANK_MIN: u64 = 8;
/// Most targets one record may have.
pub const MAX_TARGETS: usize = u16::MAX as usize;
/// Most keys one record may have.
pub const MAX_KEYS: usize = u8::MAX as usize;

/// One queue partition of the store. Queue ids are assigned by the caller (the broker core keeps
/// the name-to-id map in its own metadata); the store only needs them to be stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    /// Queue id.
    pub queue: u32,
    /// Partition inside the queue.
    pub partition: u32,
}

impl QueueKey {
    /// A queue partition.
    pub const fn new(queue: u32, partition: u32) -> Self {
        QueueKey { queue, partition }
    }
}

/// What a caller hands the store to append.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppendRequest<'a> {
    /// Queue partitions that receive a reference to this record (may be empty: the record is then
    /// reachable only by key, id or CommitLog offset).
    pub targets: &'a [QueueKey],
    /// Producer timestamp, ms since the Unix epoch.
    pub born_ts: i64,
    /// Message id, indexed for look-up (empty = none). At most 255 bytes.
    pub msg_id: &'a [u8],
    /// Message keys, each indexed for look-up. At most 255 keys of 65,535 bytes.
    pub keys: &'a [&'a [u8]],
    /// Tag hash kept in every consume-queue entry, for filtering without reading the record.
    pub tag_hash: u64,
    /// Flags owned by the caller.
    pub flags: u32,
    /// Encoded properties, opaque to the store.
    pub properties: &'a [u8],
    /// Message body.
    pub body: &'a [u8],
}

impl AppendRequest<'_> {
    /// Encoded size of the record, or `None` if a length field would overflow.
    pub fn encoded_len(&self) -> Option<u64> {
        if self.targets.len() > MAX_TARGETS
            || self.msg_id.len() > u8::MAX as usize
            || self.keys.len() > MAX_KEYS
            || self.keys.iter().any(|k| k.len() > u16::MAX as usize)
            || self.properties.len() > u32::MAX as usize
            || self.body.len() > u32::MAX as usize
        {
            return None;
        }
        let keys: usize = self.keys.iter().map(|k| 2 + k.len()).sum();
        let n = HEADER_LEN
            + TARGET_LEN * self.targets.len()
            + self.msg_id.len()
            + keys
            + self.properties.len()
            + self.body.len();
        u32::try_from(n).ok().map(u64::from)
    }
}

/// Encodes the fixed header (crc left zero) and the variable "meta" part (targets, msg id, keys)
/// of a record. The caller writes `header`, `meta`, `properties`, `body` in that order, with the
/// CRC from [`crc_of`] patched in.
pub(crate) fn encode_head(
    req: &AppendRequest<'_>,
    total_len: u32,
    commitlog_offset: u64,
    store_ts: i64,
    queue_offsets: &[u64],
    header: &mut [u8; HEADER_LEN],
    meta: &mut Vec<u8>,
) {
    header[0..4].copy_from_slice(&total_len.to_le_bytes());
    header[4..6].copy_from_slice(&MAGIC.to_le_bytes());
    header[6] = VERSION;
    header[7] = KIND_MESSAGE;
    header[8..12].copy_from_slice(&[0; 4]);
    header[12..20].copy_from_slice(&commitlog_offset.to_le_bytes());
    header[20..28].copy_from_slice(&req.born_ts.to_le_bytes());
    header[28..36].copy_from_slice(&store_ts.to_le_bytes());
    header[36..44].copy_from_slice(&req.tag_hash.to_le_bytes());
    header[44..48].copy_from_slice(&req.flags.to_le_bytes());
    // Lengths were checked by `encoded_len` before we got here.
    header[48..50].copy_from_slice(&(req.targets.len() as u16).to_le_bytes());
    header[50] = req.msg_id.len() as u8;
    header[51] = req.keys.len() as u8;
    header[52..56].copy_from_slice(&(req.properties.len() as u32).to_le_bytes());
    header[56..60].copy_from_slice(&(req.body.len() as u32).to_le_bytes());
    meta.clear();
    for (t, qo) in req.targets.iter().zip(queue_offsets) {
        meta.extend_from_slice(&t.queue.to_le_bytes());
        meta.extend_from_slice(&t.partition.to_le_bytes());
        meta.extend_from_slice(&qo.to_le_bytes());
    }
    meta.extend_from_slice(req.msg_id);
    for k in req.keys {
        meta.extend_from_slice(&(k.len() as u16).to_le_bytes());
        meta.extend_from_slice(k);
    }
}

/// CRC-32C of a record given as the pieces it is written from.
pub(crate) fn crc_of(header: &[u8; HEADER_LEN], parts: &[&[u8]]) -> u32 {
    let mut crc = crc32c::crc32c(&header[12..]);
    for p in parts {
        crc = crc32c::crc32c_append(crc, p);
    }
    crc
}

/// Encodes a blank record of `len` bytes (at least [`BLANK_MIN`]) into `out`.
pub(crate) fn blank_header(len: u32) -> [u8; BLANK_MIN as usize] {
    let mut h = [0u8; BLANK_MIN as usize];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[4..6].copy_from_slice(&MAGIC.to_le_bytes());
    h[6] = VERSION;
    h[7] = KIND_BLANK;
    h
}

/// What [`probe`] finds at a position of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A structurally valid message record of this many bytes (CRC checked if asked).
    Message(u32),
    /// A blank record: the rest of the segment is padding.
    Blank,
    /// Zero length: nothing was written here.
    End,
    /// Bytes that are not a valid record.
    Invalid(&'static str),
}

/// Little-endian integers at a byte position; 0 past the end (callers check lengths first, so
/// this only keeps a bad length from becoming a panic).
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u16::from_le_bytes)
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}
pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Checks the record starting at `rest[0]`, which sits at `commitlog_offset`. `rest` is the
/// remainder of the written part of the segment. Never panics, whatever the bytes.
pub(crate) fn probe(rest: &[u8], commitlog_offset: u64, check_crc: bool) -> Probe {
    if rest.len() < BLANK_MIN as usize {
        return if rest.iter().all(|&b| b == 0) {
            Probe::End
        } else {
            Probe::Invalid("short tail")
        };
    }
    let len = u32_at(rest, 0);
    if len == 0 {
        return Probe::End;
    }
    if u16_at(rest, 4) != MAGIC {
        return Probe::Invalid("bad magic");
    }
    if rest.get(6) != Some(&VERSION) {
        return Probe::Invalid("unknown version");
    }
    match rest.get(7).copied().unwrap_or_default() {
        KIND_BLANK => {
            return if len as usize == rest.len() {
                Probe::Blank
            } else {
                Probe::Invalid("blank length")
            }
        }
        KIND_MESSAGE => {}
        _ => return Probe::Invalid("unknown kind"),
    }
    let len_us = len as usize;
    let Some(rec) = rest.get(..len_us).filter(|r| r.len() >= HEADER_LEN) else {
        return Probe::Invalid("length out of bounds");
    };
    if u64_at(rec, 12) != commitlog_offset {
        return Probe::Invalid("offset mismatch");
    }
    if layout(rec).is_none() {
        return Probe::Invalid("inconsistent lengths");
    }
    if check_crc && crc32c::crc32c(rec.get(12..).unwrap_or_default()) != u32_at(rec, 8) {
        return Probe::Invalid("crc mismatch");
    }
    Probe::Message(len)
}

/// Byte ranges of the variable parts inside a record, checked against its length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub(crate) targets: (usize, usize),
    pub(crate) msg_id: (usize, usize),
    pub(crate) keys: (usize, usize),
    pub(crate) key_count: usize,
    properties: (usize, usize),
    body: (usize, usize),
}

pub(crate) fn layout(rec: &[u8]) -> Option<Layout> {
    if rec.len() < HEADER_LEN {
        return None;
    }
    let t = u16_at(rec, 48) as usize;
    let i = rec.get(50).copied().unwrap_or_default() as usize;
    let k = rec.get(51).copied().unwrap_or_default() as usize;
    let p = u32_at(rec, 52) as usize;
    let b = u32_at(rec, 56) as usize;
    let targets = (HEADER_LEN, HEADER_LEN + t * TARGET_LEN);
    let msg_id = (targets.1, targets.1 + i);
    let mut at = msg_id.1;
    for _ in 0..k {
        let kl = rec.get(at..at + 2).map(|s| u16_at(s, 0))? as usize;
        at = at.checked_add(2 + kl)?;
        if at > rec.len() {
            return None;
        }
    }
    let keys = (msg_id.1, at);
    let properties = (at, at.checked_add(p)?);
    let body = (properties.1, properties.1.checked_add(b)?);
    (body.1 == rec.len()).then_some(Layout {
        targets,
        msg_id,
        keys,
        key_count: k,
        properties,
        body,
    })
}

/// One queue partition a record was dispatched to, and its position there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// The queue partition.
    pub key: QueueKey,
    /// The record's offset in that partition's consume queue.
    pub queue_offset: u64,
}

/// A stored record, decoded. Every `Bytes` points into the CommitLog's memory mapping: nothing
/// was copied to build it.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where the record starts in the CommitLog.
    pub commitlog_offset: u64,
    /// Producer timestamp, ms.
    pub born_ts: i64,
    /// Broker timestamp, ms.
    pub store_ts: i64,
    /// Tag hash (0 = none).
    pub tag_hash: u64,
    /// Caller-owned flags.
    pub flags: u32,
    /// Message id (empty = none).
    pub msg_id: Bytes,
    /// Encoded properties.
    pub properties: Bytes,
    /// Body.
    pub body: Bytes,
    raw: Bytes,
    layout: Layout,
}

impl Record {
    /// Decodes a record whose bytes were already probed as a valid message. Returns `None` if the
    /// layout does not hold (never panics).
    pub(crate) fn decode(raw: Bytes) -> Option<Record> {
        let l = layout(&raw)?;
        Some(Record {
            commitlog_offset: u64_at(&raw, 12),
            born_ts: u64_at(&raw, 20) as i64,
            store_ts: u64_at(&raw, 28) as i64,
            tag_hash: u64_at(&raw, 36),
            flags: u32_at(&raw, 44),
            msg_id: raw.slice(l.msg_id.0..l.msg_id.1),
            properties: raw.slice(l.properties.0..l.properties.1),
            body: raw.slice(l.body.0..l.body.1),
            layout: l,
            raw,
        })
    }

    /// Size of the whole record in the CommitLog.
    pub fn size(&self) -> u32 {
        self.raw.len() as u32
    }

    /// The queue partitions this record was dispatched to.
    pub fn targets(&self) -> impl ExactSizeIterator<Item = Target> + '_ {
        self.raw
            .get(self.layout.targets.0..self.layout.targets.1)
            .unwrap_or_default()
            .chunks_exact(TARGET_LEN)
            .map(|c| Target {
                key: QueueKey::new(u32_at(c, 0), u32_at(c, 4)),
                queue_offset: u64_at(c, 8),
            })
    }

    /// The message keys.
    pub fn keys(&self) -> impl Iterator<Item = Bytes> + '_ {
        let mut at = self.layout.keys.0;
        (0..self.layout.key_count).map(move |_| {
            let kl = u16_at(&self.raw, at) as usize;
            let k = self.raw.slice(at + 2..at + 2 + kl);
            at += 2 + kl;
            k
        })
    }

    /// The record's raw bytes as stored (header included), for replication or export.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(req: &AppendRequest<'_>, offset: u64, qos: &[u64]) -> Vec<u8> {
        let len = req.encoded_len().unwrap() as u32;
        let mut h = [0u8; HEADER_LEN];
        let mut meta = Vec::new();
        encode_head(req, len, offset, 7, qos, &mut h, &mut meta);
        let crc = crc_of(&h, &[&meta, req.properties, req.body]);
        h[8..12].copy_from_slice(&crc.to_le_bytes());
        [&h[..], &meta, req.properties, req.body].concat()
    }

    #[test]
    fn round_trip() {
        let t = [QueueKey::new(3, 1), QueueKey::new(9, 0)];
        let keys: [&[u8]; 2] = [b"order-1", b""];
        let req = AppendRequest {
            targets: &t,
            born_ts: 42,
            msg_id: b"id-1",
            keys: &keys,
            tag_hash: 99,
            flags: 5,
            properties: b"props",
            body: b"hello",
        };
        let bytes = encode(&req, 4096, &[10, 11]);
        assert_eq!(
            probe(&bytes, 4096, true),
            Probe::Message(bytes.len() as u32)
        );
        let r = Record::decode(Bytes::from(bytes)).unwrap();
        assert_eq!((r.born_ts, r.store_ts, r.tag_hash, r.flags), (42, 7, 99, 5));
        assert_eq!(&r.msg_id[..], b"id-1");
        assert_eq!(&r.body[..], b"hello");
        assert_eq!(&r.properties[..], b"props");
        let keys: Vec<_> = r.keys().collect();
        assert_eq!(keys, vec![Bytes::from_static(b"order-1"), Bytes::new()]);
        let ts: Vec<_> = r.targets().collect();
        assert_eq!(
            ts[1],
            Target {
                key: QueueKey::new(9, 0),
                queue_offset: 11
            }
        );
    }

    #[test]
    fn probe_rejects_damage_at_every_byte() {
        let t = [QueueKey::new(1, 0)];
        let req = AppendRequest {
            targets: &t,
            body: b"payload",
            ..Default::default()
        };
        let good = encode(&req, 0, &[0]);
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(
                !matches!(probe(&bad, 0, true), Probe::Message(_)),
                "flipped byte {i} passed"
            );
            // Truncation at every length: never a valid record, never a panic.
            assert!(!matches!(probe(&good[..i], 0, true), Probe::Message(_)));
        }
        assert!(matches!(
            probe(&good, 8, true),
            Probe::Invalid("offset mismatch")
        ));
    }

    proptest::proptest! {
        #[test]
        fn probe_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = probe(&bytes, 0, true);
            let _ = Record::decode(Bytes::from(bytes));
        }
    }
}
