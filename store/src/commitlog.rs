//! The CommitLog: every record of every queue, appended to fixed-size segment files named by the
//! offset of their first byte, read through memory mappings.
//!
//! ```text
//! commitlog/00000000000000000000   [rec][rec][rec]...[blank]   segment_size bytes
//! commitlog/00000000001073741824   [rec][rec]....... 0 0 0 0   the active segment
//! ```
//!
//! A CommitLog offset is global: segment base + position. Records never span segments; the
//! writer pads the end of a segment with a blank record when the next record does not fit.
//! Appending is done by [`crate::writer`]; this module owns the segment list and the read path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::error::{Result, StoreError};
use crate::mapped::{self, MappedFile};
use crate::record::{self, Probe, Record};

/// One segment file and where it starts in the log.
#[derive(Debug, Clone)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) file: Arc<MappedFile>,
}

impl Segment {
    pub(crate) fn end(&self) -> u64 {
        self.base + self.file.len()
    }
}

/// The segment list and the published end of the log.
#[derive(Debug)]
pub(crate) struct CommitLog {
    dir: PathBuf,
    segments: RwLock<Vec<Segment>>,
    /// Everything below this is written, dispatched and readable. Release-stored by the writer.
    written: AtomicU64,
}

impl CommitLog {
    /// Maps the existing segments of `dir` (no validation of their content: recovery does that).
    pub(crate) fn open(dir: &Path, segment_size: u64) -> Result<CommitLog> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let mut segments: Vec<Segment> = Vec::new();
        for (base, path) in mapped::numbered_files(dir)? {
            if let Some(prev) = segments.last() {
                if prev.end() != base {
                    return Err(StoreError::Corrupt {
                        file: path,
                        offset: 0,
                        reason: "segment does not start where the previous one ends",
                    });
                }
            }
            let file = MappedFile::open(&path, segment_size, false)?;
            segments.push(Segment {
                base,
                file: Arc::new(file),
            });
        }
        Ok(CommitLog {
            dir: dir.to_path_buf(),
            segments: RwLock::new(segments),
            written: AtomicU64::new(0),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the segment starting at `base`.
    pub(crate) fn segment_path(&self, base: u64) -> PathBuf {
        self.dir.join(mapped::file_name(base))
    }

    /// The published end: every record below it can be read.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    pub(crate) fn publish(&self, end: u64) {
        self.written.store(end, Ordering::Release);
    }

    /// A snapshot of the segment list.
    pub(crate) fn segments(&self) -> Vec<Segment> {
        self.read_lock().clone()
    }

    /// Offset of the oldest byte still stored.
    pub(crate) fn start(&self) -> u64 {
        self.read_lock().first().map_or(0, |s| s.base)
    }

    pub(crate) fn push(&self, seg: Segment) {
        self.write_lock().push(seg);
    }

    /// Drops segments for which `remove` says yes, from the front only (the log stays a
    /// contiguous range), never the last one. Returns the removed segments.
    pub(crate) fn remove_front(&self, mut remove: impl FnMut(&Segment) -> bool) -> Vec<Segment> {
        let mut segs = self.write_lock();
        let mut n = 0;
        while n + 1 < segs.len() && segs.get(n).is_some_and(&mut remove) {
            n += 1;
        }
        segs.drain(..n).collect()
    }

    /// Replaces every segment with `seg` (an empty log moved to start elsewhere); returns the
    /// old ones.
    pub(crate) fn replace_all(&self, seg: Segment) -> Vec<Segment> {
        std::mem::replace(&mut *self.write_lock(), vec![seg])
    }

    /// Drops every segment after the one containing `end` (used by recovery on a torn tail).
    pub(crate) fn cut_after(&self, end: u64) -> Vec<Segment> {
        let mut segs = self.write_lock();
        let keep = segs
            .iter()
            .position(|s| s.end() > end)
            .map_or(segs.len(), |i| i + 1);
        let at = keep.max(1).min(segs.len());
        segs.split_off(at)
    }

    /// The segment containing `offset`.
    pub(crate) fn segment_at(&self, offset: u64) -> Option<Segment> {
        let segs = self.read_lock();
        let i = segs.partition_point(|s| s.base <= offset).checked_sub(1)?;
        let s = segs.get(i)?;
        (offset < s.end()).then(|| s.clone())
    }

    /// Reads the record starting at `offset`.
    ///
    /// # Errors
    /// [`StoreError::NoRecord`] if `offset` is not below the published end or was removed;
    /// [`StoreError::Corrupt`] if the bytes there are not a record.
    pub(crate) fn read(&self, offset: u64) -> Result<Record> {
        let written = self.written();
        if offset >= written {
            return Err(StoreError::NoRecord { offset });
        }
        let seg = self
            .segment_at(offset)
            .ok_or(StoreError::NoRecord { offset })?;
        read_in(&seg, offset, written)
    }
}

/// The published part of a segment as one `Bytes` (one owner for many records).
pub(crate) fn published_prefix(seg: &Segment, written: u64) -> Option<Bytes> {
    let len = written.min(seg.end()).checked_sub(seg.base)?;
    // SAFETY: [0, len) of the segment is below the published end, never written again.
    unsafe { mapped::published_bytes(&seg.file, 0, len) }
}

/// Reads the record at `offset` from `prefix`, the published part of the segment starting at
/// `base` (see [`published_prefix`]).
pub(crate) fn read_from_prefix(
    prefix: &Bytes,
    base: u64,
    offset: u64,
    file: &Path,
) -> Result<Record> {
    let pos = offset
        .checked_sub(base)
        .ok_or(StoreError::NoRecord { offset })? as usize;
    let corrupt = |reason| StoreError::Corrupt {
        file: file.to_path_buf(),
        offset: pos as u64,
        reason,
    };
    let rest = prefix.get(pos..).ok_or(StoreError::NoRecord { offset })?;
    let len = match record::probe(rest, offset, false) {
        Probe::Message(len) => len as usize,
        Probe::Blank | Probe::End => return Err(StoreError::NoRecord { offset }),
        Probe::Invalid(reason) => return Err(corrupt(reason)),
    };
    Record::decode(prefix.slice(pos..pos + len)).ok_or_else(|| corrupt("inconsistent lengths"))
}

/// Reads the record at `offset` of `seg`, where `written` is the published end of the log.
pub(crate) fn read_in(seg: &Segment, offset: u64, written: u64) -> Result<Record> {
    let pos = offset - seg.base;
    let avail = written.min(seg.end()) - offset;
    let corrupt = |reason| StoreError::Corrupt {
        file: seg.file.path().to_path_buf(),
        offset: pos,
        reason,
    };
    // SAFETY: [pos, pos + avail) is below the published end, never written again.
    let rest = unsafe { seg.file.slice(pos, avail) }.ok_or_else(|| corrupt("out of bounds"))?;
    let len = match record::probe(rest, offset, false) {
        Probe::Message(len) => len,
        Probe::Blank | Probe::End => return Err(StoreError::NoRecord { offset }),
        Probe::Invalid(reason) => return Err(corrupt(reason)),
    };
    // SAFETY: as above; `len <= avail` was checked by `probe`.
    let raw = unsafe { mapped::published_bytes(&seg.file, pos, u64::from(len)) }
        .ok_or_else(|| corrupt("out of bounds"))?;
    Record::decode(raw).ok_or_else(|| corrupt("inconsistent lengths"))
}

impl CommitLog {
    fn read_lock(&self) -> std::sync::RwLockReadGuard<'_, Vec<Segment>> {
        self.segments.read().unwrap_or_else(|p| p.into_inner())
    }
    fn write_lock(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Segment>> {
        self.segments.write().unwrap_or_else(|p| p.into_inner())
    }
}
