//! Opening a data directory: find the valid end of the CommitLog, cut a torn tail, and bring
//! consume queues and the index up to it.
//!
//! 1. Map the segments; read the checkpoint (`durable`, `dispatched`).
//! 2. Roll the index back to `dispatched` (its entries past it are redone below).
//! 3. Scan the CommitLog from `min(durable, dispatched, start of the second-to-last segment)`,
//!    verifying every record's CRC and its
//!    stored offset. The first byte that is not a whole valid record is the end: a torn,
//!    unconfirmed write. Records at or past `dispatched` are re-dispatched to their consume
//!    queues (at the queue offsets they carry, so this is idempotent) and to the index.
//! 4. Zero the segment from the end on (`FALLOC_FL_ZERO_RANGE`, never a truncate) and delete any
//!    later segment, so stale bytes can never be read as records later.
//! 5. Fix every consume queue's range against the CommitLog (entries past the end are zeroed).
//! 6. `fdatasync` what was scanned; the caller writes a fresh checkpoint.
//!
//! A record confirmed in `sync` mode was covered by an fsync before it was confirmed, so it is
//! below the first torn byte and survives step 3.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::commitlog::{CommitLog, Segment};
use crate::config::StoreConfig;
use crate::consume_queue::{ConsumeQueue, CqEntry};
use crate::error::{Result, StoreError};
use crate::index::{id_hash, key_hash, Index};
use crate::mapped::{self, MappedFile};
use crate::record::{self, Probe, QueueKey, Record};

/// What recovery hands to the store.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) log: CommitLog,
    pub(crate) active: Segment,
    pub(crate) pos: u64,
    pub(crate) end: u64,
    pub(crate) last_ts: i64,
    pub(crate) queues: HashMap<QueueKey, Arc<ConsumeQueue>>,
    pub(crate) index: Index,
    pub(crate) checkpoint: CheckpointFile,
    /// Bytes of CommitLog scanned.
    pub(crate) scanned: u64,
    /// Whether a torn or invalid tail was cut off.
    pub(crate) truncated: bool,
}

fn load_queues(root: &Path, per_file: u64) -> Result<HashMap<QueueKey, Arc<ConsumeQueue>>> {
    let mut out = HashMap::new();
    let Ok(queues) = std::fs::read_dir(root) else {
        return Ok(out);
    };
    for q in queues.flatten() {
        let Some(queue) = q.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(parts) = std::fs::read_dir(q.path()) else {
            continue;
        };
        for p in parts.flatten() {
            let Some(partition) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let key = QueueKey::new(queue, partition);
            out.insert(key, Arc::new(ConsumeQueue::open(root, key, per_file)?));
        }
    }
    Ok(out)
}

/// Recovers the store in `cfg.dir`.
pub(crate) fn recover(cfg: &StoreConfig) -> Result<Recovered> {
    let log = CommitLog::open(&cfg.dir.join("commitlog"), cfg.segment_size)?;
    let (checkpoint, cp) = CheckpointFile::open(&cfg.dir.join("checkpoint"))?;
    let fresh = log.segments().is_empty();
    if fresh {
        let path = log.segment_path(0);
        let file = MappedFile::open(&path, cfg.segment_size, cfg.preload)?;
        mapped::sync_dir(log.dir())?;
        log.push(Segment {
            base: 0,
            file: Arc::new(file),
        });
    }
    let start = log.start();
    let last_end = log.segments().last().map_or(0, |s| s.end());
    let clean_close = cp.is_some_and(|c| c.durable == c.dispatched);
    let cp = cp.unwrap_or(Checkpoint {
        durable: start,
        dispatched: start,
        last_ts: 0,
    });
    let redo = cp.dispatched.clamp(start, last_end);
    // Whatever the checkpoint says, the last two segments are always CRC-checked: that is where
    // a torn write or a damaged tail can be.
    let segs = log.segments();
    let verify_from = segs
        .get(segs.len().saturating_sub(2))
        .map_or(start, |s| s.base);
    let mut from = cp.durable.min(redo).min(verify_from).clamp(start, last_end);

    let cq_root = cfg.dir.join("consumequeue");
    let mut queues = load_queues(&cq_root, cfg.cq_entries_per_file)?;
    let mut index = Index::open(&cfg.dir.join("index"), cfg.index_slots, cfg.index_entries)?;

    // A checkpoint that does not land on a record start (damaged or foreign): scan everything.
    let mut scan = scan_log(
        &log,
        from,
        redo,
        &mut queues,
        &mut index,
        &cq_root,
        cfg,
        true,
    )?;
    if scan.first_invalid && from > start {
        tracing::warn!(
            from,
            "checkpoint does not point at a record; scanning the whole log"
        );
        from = start;
        index.recover(start, start)?;
        scan = scan_log(
            &log,
            from,
            start,
            &mut queues,
            &mut index,
            &cq_root,
            cfg,
            false,
        )?;
    }
    let end = scan.end;
    if end < redo {
        // The tail was cut below the redo point: no record was re-indexed; forget index entries
        // pointing into the cut part.
        index.recover(start, end)?;
    }

    // Cut the tail: zero the rest of the segment holding `end`, delete later segments. After
    // a clean close that ended exactly here, or in a new store, nothing lies past the end, and
    // zeroing would only throw away the pages `preload` faulted in.
    let nothing_past_end = !scan.invalid && (fresh || (clean_close && cp.durable == end));
    if let Some(seg) = log.segment_at(end) {
        if !nothing_past_end {
            seg.file.zero_from(end - seg.base)?;
            if cfg.preload {
                seg.file.prefault(end - seg.base);
            }
        }
    }
    let removed = log.cut_after(end);
    let truncated = scan.invalid || !removed.is_empty();
    for s in removed {
        std::fs::remove_file(s.file.path()).map_err(StoreError::io(s.file.path()))?;
    }
    if truncated {
        tracing::warn!(end, "cut a torn or invalid CommitLog tail");
    }
    mapped::sync_dir(log.dir())?;

    let log_start = log.start();
    for q in queues.values() {
        q.recover(log_start, end)?;
    }
    for seg in log.segments() {
        if seg.end() > from {
            seg.file.sync()?;
        }
    }
    let active = log.segments().last().cloned().ok_or(StoreError::Corrupt {
        file: log.dir().to_path_buf(),
        offset: 0,
        reason: "no segment left after recovery",
    })?;
    Ok(Recovered {
        pos: end - active.base,
        active,
        end,
        last_ts: scan.last_ts.max(cp.last_ts),
        queues,
        index,
        checkpoint,
        scanned: end - from,
        truncated,
        log,
    })
}

struct Scan {
    end: u64,
    last_ts: i64,
    invalid: bool,
    /// The very first probe was invalid (the scan start is not a record boundary).
    first_invalid: bool,
}

#[allow(clippy::too_many_arguments)]
fn scan_log(
    log: &CommitLog,
    from: u64,
    redo: u64,
    queues: &mut HashMap<QueueKey, Arc<ConsumeQueue>>,
    index: &mut Index,
    cq_root: &Path,
    cfg: &StoreConfig,
    roll_back_index: bool,
) -> Result<Scan> {
    let segs = log.segments();
    let mut scan = Scan {
        end: from,
        last_ts: 0,
        invalid: false,
        first_invalid: false,
    };
    let Some(mut i) = segs.iter().position(|s| s.base <= from && from < s.end()) else {
        return Ok(scan); // `from` is the end of the last segment: nothing to scan
    };
    // Look at the first record before touching the index: a bad start means a full rescan.
    if let Some(s) = segs.get(i) {
        // SAFETY: recovery runs before the store is shared: no writer, no other reader.
        let rest = unsafe { s.file.slice(from - s.base, s.end() - from) }.unwrap_or_default();
        if let Probe::Invalid(_) = record::probe(rest, from, true) {
            if from > log.start() {
                scan.first_invalid = true;
                return Ok(scan);
            }
        }
    }
    if roll_back_index {
        index.recover(log.start(), redo)?;
    }
    let mut pos = from;
    'segments: while let Some(s) = segs.get(i) {
        loop {
            // SAFETY: as above.
            let rest = unsafe { s.file.slice(pos - s.base, s.end() - pos) }.unwrap_or_default();
            match record::probe(rest, pos, true) {
                Probe::Message(len) => {
                    // SAFETY: as above; `len` bytes were checked to be in the segment.
                    let raw =
                        unsafe { mapped::published_bytes(&s.file, pos - s.base, u64::from(len)) };
                    let Some(rec) = raw.and_then(Record::decode) else {
                        scan.invalid = true;
                        break 'segments;
                    };
                    if pos >= redo {
                        dispatch(&rec, queues, index, cq_root, cfg)?;
                    }
                    scan.last_ts = scan.last_ts.max(rec.store_ts);
                    pos += u64::from(len);
                    scan.end = pos;
                }
                Probe::Blank => break,
                Probe::End if rest.len() < record::BLANK_MIN as usize => break,
                Probe::End => break 'segments,
                Probe::Invalid(reason) => {
                    tracing::warn!(offset = pos, reason, "invalid record: end of the log");
                    scan.invalid = true;
                    break 'segments;
                }
            }
        }
        // Padding or the end of a segment: the log continues in the next one, if any.
        i += 1;
        match segs.get(i) {
            Some(next) => {
                pos = next.base;
                scan.end = pos;
            }
            None => {
                scan.end = s.end();
                break;
            }
        }
    }
    Ok(scan)
}

/// Re-dispatches one record to its consume queues and the index.
fn dispatch(
    rec: &Record,
    queues: &mut HashMap<QueueKey, Arc<ConsumeQueue>>,
    index: &mut Index,
    cq_root: &Path,
    cfg: &StoreConfig,
) -> Result<()> {
    let entry = CqEntry {
        commitlog_offset: rec.commitlog_offset,
        size: rec.size(),
        tag_hash: rec.tag_hash,
        store_ts: rec.store_ts,
    };
    for t in rec.targets() {
        let q = match queues.get(&t.key) {
            Some(q) => Arc::clone(q),
            None => {
                let q = Arc::new(ConsumeQueue::open(cq_root, t.key, cfg.cq_entries_per_file)?);
                queues.insert(t.key, Arc::clone(&q));
                q
            }
        };
        q.put(t.queue_offset, &entry)?;
    }
    if !rec.msg_id.is_empty() {
        index.put(
            id_hash(&rec.msg_id),
            rec.commitlog_offset,
            rec.size(),
            rec.store_ts,
        )?;
    }
    for k in rec.keys() {
        index.put(key_hash(&k), rec.commitlog_offset, rec.size(), rec.store_ts)?;
    }
    Ok(())
}
