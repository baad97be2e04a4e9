//! The key index: message key and message id -> CommitLog offsets, with time bounds.
//!
//! RocketMQ's IndexFile, bettered: 64-bit hashes instead of 32-bit, and look-ups verify the key
//! against the record itself, so a hash collision never returns a wrong message. Files are
//! preallocated and mapped; when one is full the next begins, named by the CommitLog offset of
//! its first entry.
//!
//! ```text
//! index/<first commitlog offset, 20 digits>
//!
//! header (64 bytes)
//!   0  4  magic 0x4A494458 ("JIDX")     4  2 version 1      6 2 reserved
//!   8  4  slot_count                    12 4 capacity (entries)
//!  16  4  count (entries used)          20 4 reserved
//!  24  8  begin_ts (ms)                 32 8 end_ts (ms)
//!  40  8  begin_offset                  48 8 end_offset (last entry's commitlog offset)
//! slots (4 bytes each): 1-based number of the newest entry whose hash falls in the slot, 0 = none
//! entries (32 bytes each)
//!   0  8  hash        8  8 commitlog_offset
//!  16  8  store_ts   24  4 prev (1-based number of the previous entry in the chain, 0 = end)
//!  28  4  record size
//! ```
//!
//! ### Invariants
//! - Entries are appended in CommitLog order; `prev` always points to a lower number.
//! - Recovery rolls entries at or past the redo point back and re-indexes from the CommitLog.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::mapped::{self, MappedFile};

const MAGIC: u32 = 0x4A49_4458;
const VERSION: u16 = 1;
const HEADER: u64 = 64;
const ENTRY: u64 = 32;

/// Hash of a message key, as kept in the index.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, 0x6b65_7973)
}

/// Hash of a message id, as kept in the index (a separate domain from keys).
pub fn id_hash(id: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id, 0x6964_7321)
}

/// A hit from the index, still to be verified against the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub(crate) commitlog_offset: u64,
    pub(crate) size: u32,
}

#[derive(Debug)]
struct IndexFile {
    file: Arc<MappedFile>,
    slots: u32,
    capacity: u32,
}

fn rd64(f: &MappedFile, pos: u64) -> u64 {
    // SAFETY: index files are read and written under the index mutex only.
    let b = unsafe { f.slice(pos, 8) };
    b.and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}
fn rd32(f: &MappedFile, pos: u64) -> u32 {
    // SAFETY: as in `rd64`.
    let b = unsafe { f.slice(pos, 4) };
    b.and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}
fn wr64(f: &MappedFile, pos: u64, v: u64) {
    // SAFETY: under the index mutex; positions are inside the file (checked by the callers'
    // bounds on slot and entry numbers).
    unsafe { f.write(pos, &v.to_le_bytes()) }
}
fn wr32(f: &MappedFile, pos: u64, v: u32) {
    // SAFETY: as in `wr64`.
    unsafe { f.write(pos, &v.to_le_bytes()) }
}

impl IndexFile {
    fn len_for(slots: u32, capacity: u32) -> u64 {
        HEADER + u64::from(slots) * 4 + u64::from(capacity) * ENTRY
    }

    fn create(path: &Path, slots: u32, capacity: u32, begin_offset: u64) -> Result<IndexFile> {
        let file = MappedFile::open(path, Self::len_for(slots, capacity), false)?;
        let f = IndexFile {
            file: Arc::new(file),
            slots,
            capacity,
        };
        wr32(&f.file, 0, MAGIC);
        // SAFETY: under the index mutex.
        unsafe { f.file.write(4, &VERSION.to_le_bytes()) };
        wr32(&f.file, 8, slots);
        wr32(&f.file, 12, capacity);
        wr64(&f.file, 40, begin_offset);
        Ok(f)
    }

    fn open(path: &Path) -> Result<IndexFile> {
        let corrupt = |reason| StoreError::Corrupt {
            file: path.to_path_buf(),
            offset: 0,
            reason,
        };
        let file = MappedFile::open(path, HEADER, false)?;
        if rd32(&file, 0) != MAGIC {
            return Err(corrupt("index file: bad magic"));
        }
        let (slots, capacity) = (rd32(&file, 8), rd32(&file, 12));
        if slots == 0 || file.len() < Self::len_for(slots, capacity) {
            return Err(corrupt("index file: bad geometry"));
        }
        Ok(IndexFile {
            file: Arc::new(file),
            slots,
            capacity,
        })
    }

    fn count(&self) -> u32 {
        rd32(&self.file, 16).min(self.capacity)
    }
    fn begin_offset(&self) -> u64 {
        rd64(&self.file, 40)
    }
    fn slot_pos(&self, hash: u64) -> u64 {
        HEADER + (hash % u64::from(self.slots)) * 4
    }
    fn entry_pos(&self, n: u32) -> u64 {
        HEADER + u64::from(self.slots) * 4 + u64::from(n - 1) * ENTRY
    }
    fn entry_offset(&self, n: u32) -> u64 {
        rd64(&self.file, self.entry_pos(n) + 8)
    }

    fn put(&self, hash: u64, offset: u64, size: u32, ts: i64) {
        let n = self.count() + 1;
        let sp = self.slot_pos(hash);
        let prev = rd32(&self.file, sp);
        let ep = self.entry_pos(n);
        wr64(&self.file, ep, hash);
        wr64(&self.file, ep + 8, offset);
        wr64(&self.file, ep + 16, ts as u64);
        wr32(&self.file, ep + 24, if prev < n { prev } else { 0 });
        wr32(&self.file, ep + 28, size);
        wr32(&self.file, sp, n);
        if n == 1 {
            wr64(&self.file, 24, ts as u64);
        }
        wr64(&self.file, 32, ts as u64);
        wr64(&self.file, 48, offset);
        wr32(&self.file, 16, n);
    }

    fn lookup(&self, hash: u64, begin: i64, end: i64, max: usize, out: &mut Vec<Hit>) {
        let (fb, fe) = (rd64(&self.file, 24) as i64, rd64(&self.file, 32) as i64);
        if self.count() == 0 || fe < begin || fb > end {
            return;
        }
        let mut n = rd32(&self.file, self.slot_pos(hash));
        let mut steps = 0u32;
        while n != 0 && n <= self.count() && steps < self.capacity && out.len() < max {
            let ep = self.entry_pos(n);
            let ts = rd64(&self.file, ep + 16) as i64;
            if rd64(&self.file, ep) == hash && ts >= begin && ts <= end {
                out.push(Hit {
                    commitlog_offset: rd64(&self.file, ep + 8),
                    size: rd32(&self.file, ep + 28),
                });
            }
            let prev = rd32(&self.file, ep + 24);
            if prev >= n {
                break; // chains only go down; anything else is damage
            }
            n = prev;
            steps += 1;
        }
    }

    /// Keeps only entries whose commitlog offset is below `redo`, zeroes the rest, and rebuilds
    /// the slots from the kept entries (so no slot points at a removed or torn entry).
    fn roll_back(&self, redo: u64) -> Result<()> {
        let count = self.count();
        // Entries are in CommitLog order: binary search the first at or past `redo`.
        let (mut lo, mut hi) = (1u32, count + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.entry_offset(mid) < redo {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let keep = lo - 1;
        self.file.zero_from(self.entry_pos(keep + 1))?;
        const ZEROS: [u8; 4096] = [0; 4096];
        let slots_end = HEADER + u64::from(self.slots) * 4;
        let mut at = HEADER;
        while at < slots_end {
            let n = (slots_end - at).min(4096);
            // SAFETY: under the index mutex, inside the slot area.
            unsafe {
                self.file
                    .write(at, ZEROS.get(..n as usize).unwrap_or_default())
            };
            at += n;
        }
        for n in 1..=keep {
            let hash = rd64(&self.file, self.entry_pos(n));
            wr32(&self.file, self.slot_pos(hash), n);
        }
        wr32(&self.file, 16, keep);
        if keep == 0 {
            wr64(&self.file, 24, 0);
            wr64(&self.file, 32, 0);
        } else {
            let ep = self.entry_pos(keep);
            wr64(&self.file, 32, rd64(&self.file, ep + 16));
            wr64(&self.file, 48, rd64(&self.file, ep + 8));
        }
        Ok(())
    }
}

/// Every index file, oldest first; the last one takes new entries.
#[derive(Debug)]
pub(crate) struct Index {
    dir: PathBuf,
    slots: u32,
    capacity: u32,
    files: Vec<IndexFile>,
}

impl Index {
    /// Opens the index files of `dir`.
    pub(crate) fn open(dir: &Path, slots: u32, capacity: u32) -> Result<Index> {
        std::fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let mut files = Vec::new();
        for (_, path) in mapped::numbered_files(dir)? {
            files.push(IndexFile::open(&path)?);
        }
        Ok(Index {
            dir: dir.to_path_buf(),
            slots,
            capacity,
            files,
        })
    }

    /// Adds an entry for a record.
    pub(crate) fn put(&mut self, hash: u64, offset: u64, size: u32, ts: i64) -> Result<()> {
        let full = self.files.last().is_none_or(|f| f.count() >= f.capacity);
        if full {
            if let Some(f) = self.files.last() {
                f.file.sync()?; // a full file is never written again: make it durable now
            }
            let path = self.dir.join(mapped::file_name(offset));
            self.files
                .push(IndexFile::create(&path, self.slots, self.capacity, offset)?);
            mapped::sync_dir(&self.dir)?;
        }
        if let Some(f) = self.files.last() {
            f.put(hash, offset, size, ts);
        }
        Ok(())
    }

    /// Up to `max` candidate records whose hash is `hash`, stored within `[begin, end]` ms,
    /// newest first.
    pub(crate) fn lookup(&self, hash: u64, begin: i64, end: i64, max: usize) -> Vec<Hit> {
        let mut out = Vec::new();
        for f in self.files.iter().rev() {
            if out.len() >= max {
                break;
            }
            f.lookup(hash, begin, end, max, &mut out);
        }
        out
    }

    /// Recovery: forget every entry at or past CommitLog offset `redo` (they are re-indexed from
    /// the CommitLog) and every file wholly below `log_start`.
    pub(crate) fn recover(&mut self, log_start: u64, redo: u64) -> Result<()> {
        while let Some(f) = self.files.last() {
            if f.begin_offset() < redo || self.files.len() == 1 && f.count() == 0 {
                break;
            }
            let _ = std::fs::remove_file(f.file.path());
            self.files.pop();
        }
        if let Some(f) = self.files.last() {
            f.roll_back(redo)?;
        }
        self.trim(log_start);
        Ok(())
    }

    /// Retention: removes files whose every entry points below `log_start`.
    pub(crate) fn trim(&mut self, log_start: u64) {
        while self.files.len() > 1
            && self
                .files
                .get(1)
                .is_some_and(|next| next.begin_offset() <= log_start)
        {
            let f = self.files.remove(0);
            let _ = std::fs::remove_file(f.file.path());
        }
    }

    /// `fdatasync`s the file taking entries.
    pub(crate) fn flush(&self) -> Result<()> {
        self.files.last().map_or(Ok(()), |f| f.file.sync())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_lookup_rollback_and_rollover() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = Index::open(dir.path(), 4, 8).unwrap();
        for i in 0..20u64 {
            idx.put(key_hash(&[(i % 3) as u8]), i * 100, 10, i as i64)
                .unwrap();
        }
        assert_eq!(idx.files.len(), 3);
        let hits = idx.lookup(key_hash(&[0]), i64::MIN, i64::MAX, 100);
        let offs: Vec<u64> = hits.iter().map(|h| h.commitlog_offset).collect();
        assert_eq!(offs, vec![1800, 1500, 1200, 900, 600, 300, 0]);
        // Time bounds.
        let hits = idx.lookup(key_hash(&[0]), 5, 13, 100);
        assert_eq!(
            hits.iter().map(|h| h.commitlog_offset).collect::<Vec<_>>(),
            vec![1200, 900, 600]
        );
        // Roll back to 1000: entries at 1000.. are gone, chains still work.
        idx.recover(0, 1000).unwrap();
        assert_eq!(idx.files.len(), 2);
        let hits = idx.lookup(key_hash(&[0]), i64::MIN, i64::MAX, 100);
        assert_eq!(
            hits.iter().map(|h| h.commitlog_offset).collect::<Vec<_>>(),
            vec![900, 600, 300, 0]
        );
        idx.put(key_hash(&[0]), 1000, 10, 10).unwrap();
        let hits = idx.lookup(key_hash(&[0]), i64::MIN, i64::MAX, 2);
        assert_eq!(
            hits.iter().map(|h| h.commitlog_offset).collect::<Vec<_>>(),
            vec![1000, 900]
        );
        // Reopen: same answers.
        drop(idx);
        let idx = Index::open(dir.path(), 4, 8).unwrap();
        let hits = idx.lookup(key_hash(&[0]), i64::MIN, i64::MAX, 100);
        assert_eq!(hits.len(), 5);
    }
}
