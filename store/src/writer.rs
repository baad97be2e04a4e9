//! The single writer: encodes a record straight into the active segment's mapping, dispatches it
//! to its consume queues and the index, then publishes it.
//!
//! Everything here runs under the store's writer mutex. The order of the last steps is what
//! readers rely on: record bytes, consume-queue entries and index entries are written first; then
//! the CommitLog end is published; then each consume queue's end. A reader that sees a queue
//! entry therefore always finds its record.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::commitlog::Segment;
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::error::{Result, StoreError};
use crate::index::{id_hash, key_hash};
use crate::mapped::{self, MappedFile};
use crate::record::{self, AppendRequest, QueueKey, HEADER_LEN};
use crate::store::{now_ms, Inner};

/// Where an appended record landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// CommitLog offset of the record.
    pub commitlog_offset: u64,
    /// Encoded size.
    pub size: u32,
    /// Broker timestamp given to the record, ms.
    pub store_ts: i64,
    /// The record's offset in each target queue partition, in the order of the request's targets.
    pub queue_offsets: SmallVec<[u64; 2]>,
}

impl Appended {
    /// CommitLog offset just past the record: wait on this for durability.
    pub fn end(&self) -> u64 {
        self.commitlog_offset + u64::from(self.size)
    }
}

/// State owned by whoever holds the writer mutex.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) active: Segment,
    pub(crate) pos: u64,
    pub(crate) last_ts: i64,
    pub(crate) cqs: HashMap<QueueKey, Arc<ConsumeQueue>>,
    meta: Vec<u8>,
    queues: SmallVec<[Arc<ConsumeQueue>; 2]>,
    /// Queues a replicated record was dispatched to, with their new ends (see `replica`).
    pub(crate) cqs_touched: SmallVec<[(Arc<ConsumeQueue>, u64); 2]>,
}

impl Writer {
    pub(crate) fn new(
        active: Segment,
        pos: u64,
        last_ts: i64,
        cqs: HashMap<QueueKey, Arc<ConsumeQueue>>,
    ) -> Writer {
        Writer {
            active,
            pos,
            last_ts,
            cqs,
            meta: Vec::with_capacity(256),
            queues: SmallVec::new(),
            cqs_touched: SmallVec::new(),
        }
    }

    pub(crate) fn queue(&mut self, inner: &Inner, key: QueueKey) -> Result<Arc<ConsumeQueue>> {
        if let Some(q) = self.cqs.get(&key) {
            return Ok(Arc::clone(q));
        }
        let q = Arc::new(ConsumeQueue::open(
            &inner.cq_dir,
            key,
            inner.cfg.cq_entries_per_file,
        )?);
        self.cqs.insert(key, Arc::clone(&q));
        inner.queues_mut().insert(key, Arc::clone(&q));
        Ok(q)
    }

    /// Appends one record. See the module docs for the order of writes.
    pub(crate) fn append(&mut self, inner: &Inner, req: &AppendRequest<'_>) -> Result<Appended> {
        let size = req
            .encoded_len()
            .ok_or(StoreError::InvalidRequest("a field is too long"))?;
        if size > inner.cfg.max_record_size {
            return Err(StoreError::RecordTooLarge {
                size,
                max: inner.cfg.max_record_size,
            });
        }
        check_distinct(req.targets)?;
        if self.pos + size > self.active.file.len() {
            self.roll(inner)?;
        }
        let offset = self.active.base + self.pos;
        let ts = now_ms().max(self.last_ts);

        self.queues.clear();
        let mut queue_offsets = SmallVec::<[u64; 2]>::new();
        for t in req.targets {
            let q = self.queue(inner, *t)?;
            queue_offsets.push(q.next_offset());
            self.queues.push(q);
        }

        let mut header = [0u8; HEADER_LEN];
        record::encode_head(
            req,
            size as u32,
            offset,
            ts,
            &queue_offsets,
            &mut header,
            &mut self.meta,
        );
        let crc = record::crc_of(&header, &[&self.meta, req.properties, req.body]);
        header[8..12].copy_from_slice(&crc.to_le_bytes());
        let mut at = self.pos;
        for part in [&header[..], &self.meta, req.properties, req.body] {
            // SAFETY: we hold the writer mutex; [pos, pos + size) is inside the segment (checked
            // above) and past the published end, so no reader looks at it.
            unsafe { self.active.file.write(at, part) };
            at += part.len() as u64;
        }

        let entry = CqEntry {
            commitlog_offset: offset,
            size: size as u32,
            tag_hash: req.tag_hash,
            store_ts: ts,
        };
        for (q, qo) in self.queues.iter().zip(&queue_offsets) {
            q.put(*qo, &entry)?;
        }
        if !req.msg_id.is_empty() || !req.keys.is_empty() {
            let mut index = inner.index();
            if !req.msg_id.is_empty() {
                index.put(id_hash(req.msg_id), offset, size as u32, ts)?;
            }
            for k in req.keys {
                index.put(key_hash(k), offset, size as u32, ts)?;
            }
        }

        self.pos += size;
        self.last_ts = ts;
        inner.stats.records.fetch_add(1, Ordering::AcqRel);
        inner.stats.bytes.fetch_add(size, Ordering::Relaxed);
        inner.log.publish(offset + size);
        for (q, qo) in self.queues.iter().zip(&queue_offsets) {
            q.publish(qo + 1);
        }
        Ok(Appended {
            commitlog_offset: offset,
            size: size as u32,
            store_ts: ts,
            queue_offsets,
        })
    }

    /// Pads the active segment with a blank record and moves to the next segment, taking the
    /// preallocated one if it is ready.
    pub(crate) fn roll(&mut self, inner: &Inner) -> Result<()> {
        let len = self.active.file.len();
        let rest = len - self.pos;
        if rest >= record::BLANK_MIN {
            // SAFETY: writer mutex held; past the published end.
            unsafe {
                self.active
                    .file
                    .write(self.pos, &record::blank_header(rest as u32))
            };
        }
        let base = self.active.end();
        // Hold the spare slot until the new segment is in the log: the preallocator checks the
        // log's end under this lock before it offers a spare, so it never offers this one.
        let mut spare = inner.spare();
        let seg = match spare.take().filter(|s| s.base == base) {
            Some(s) => s,
            None => new_segment(inner, base)?,
        };
        inner.log.push(seg.clone());
        drop(spare);
        inner.log.publish(base);
        self.active = seg;
        self.pos = 0;
        inner.service.notify(1); // prepare the next spare
        Ok(())
    }
}

/// Creates the segment starting at `base` (fallocated, mapped, preloaded if configured).
pub(crate) fn new_segment(inner: &Inner, base: u64) -> Result<Segment> {
    inner.check_disk()?;
    let path = inner.log.segment_path(base);
    let file = MappedFile::open(&path, inner.cfg.segment_size, inner.cfg.preload)?;
    mapped::sync_dir(inner.log.dir())?;
    Ok(Segment {
        base,
        file: Arc::new(file),
    })
}

fn check_distinct(targets: &[QueueKey]) -> Result<()> {
    let dup = if targets.len() <= 16 {
        targets
            .iter()
            .enumerate()
            .any(|(i, t)| targets.iter().take(i).any(|x| x == t))
    } else {
        let mut seen = std::collections::HashSet::with_capacity(targets.len());
        !targets.iter().all(|t| seen.insert(*t))
    };
    if dup {
        return Err(StoreError::InvalidRequest(
            "a queue partition is targeted twice",
        ));
    }
    Ok(())
}
