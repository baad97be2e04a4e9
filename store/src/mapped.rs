//! A preallocated, memory-mapped file: the building block of CommitLog segments, consume-queue
//! files and index files.
//!
//! The file is given its full size with `fallocate` before it is mapped, so the file system has
//! reserved every block: a store on a full disk gets `ENOSPC` here, at creation, never a
//! `SIGBUS` from a write into a sparse mapping. A mapped file is never truncated (that too would
//! `SIGBUS` readers); recovery zeroes a torn tail with `FALLOC_FL_ZERO_RANGE` instead, and
//! retention unlinks whole files, which leaves existing mappings valid until they are dropped.
//!
//! ### Invariants
//! - One writer at a time writes through [`MappedFile::write`], and only to bytes no reader has
//!   been told about yet; readers only look at bytes published to them (by an atomic `Release`
//!   store of a position, read with `Acquire`). So no byte is ever read and written at once.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::FallocateFlags;

use crate::error::{Result, StoreError};

/// A file of fixed length, mapped shared and read-write.
#[derive(Debug)]
pub(crate) struct MappedFile {
    path: PathBuf,
    file: File,
    map: MmapRaw,
    len: u64,
}

impl MappedFile {
    /// Creates (or reuses, growing it if short) the file at `path` with `len` bytes reserved, and
    /// maps it. With `preload`, every page is faulted in now rather than on first write.
    pub(crate) fn open(path: &Path, len: u64, preload: bool) -> Result<MappedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(StoreError::io(path))?;
        let have = file.metadata().map_err(StoreError::io(path))?.len();
        let len = len.max(have);
        if have < len {
            rustix::fs::fallocate(&file, FallocateFlags::empty(), 0, len)
                .map_err(|e| StoreError::io(path)(e.into()))?;
        }
        let mut opts = MmapOptions::new();
        opts.len(len as usize);
        if preload {
            opts.populate();
        }
        let map = opts.map_raw(&file).map_err(StoreError::io(path))?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            file,
            map,
            len,
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Copies `data` to byte `pos`.
    ///
    /// # Safety
    /// The caller is the only writer, `pos + data.len() <= len`, and no reader can be reading
    /// these bytes (they are past every published position).
    pub(crate) unsafe fn write(&self, pos: u64, data: &[u8]) {
        debug_assert!(pos + data.len() as u64 <= self.len);
        // SAFETY: in bounds by the caller's promise; the mapping lives as long as `self`.
        unsafe {
            std::ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.map.as_mut_ptr().add(pos as usize),
                data.len(),
            )
        }
    }

    /// The bytes `[pos, pos + len)`, or `None` if out of the file.
    ///
    /// # Safety
    /// No writer may be writing these bytes while the slice lives (they are published).
    pub(crate) unsafe fn slice(&self, pos: u64, len: u64) -> Option<&[u8]> {
        let end = pos.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds; the caller promises no concurrent writer.
        Some(unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().add(pos as usize), len as usize)
        })
    }

    /// Faults in the pages from `pos` to the end (after `zero_from` dropped them), so that
    /// appends do not page-fault.
    pub(crate) fn prefault(&self, pos: u64) {
        let mut at = pos - pos % 4096;
        while at < self.len {
            // SAFETY: in bounds; a volatile read of one byte per page, nothing is written.
            unsafe { std::ptr::read_volatile(self.map.as_ptr().add(at as usize)) };
            at += 4096;
        }
    }

    /// Flushes the file's dirty pages and data to the device (`fdatasync`).
    pub(crate) fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(StoreError::io(&self.path))
    }

    /// Makes `[pos, len)` read as zeroes, without ever shrinking the file.
    pub(crate) fn zero_from(&self, pos: u64) -> Result<()> {
        if pos >= self.len {
            return Ok(());
        }
        let done = rustix::fs::fallocate(
            &self.file,
            FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE,
            pos,
            self.len - pos,
        );
        if done.is_err() {
            // File systems without ZERO_RANGE: write zeroes through the mapping.
            const ZEROS: [u8; 4096] = [0; 4096];
            let mut at = pos;
            while at < self.len {
                let n = (self.len - at).min(ZEROS.len() as u64);
                // SAFETY: recovery and rollback run before any reader sees these bytes.
                unsafe { self.write(at, ZEROS.get(..n as usize).unwrap_or_default()) };
                at += n;
            }
        }
        Ok(())
    }
}

/// Zero-copy handle on published bytes of a mapped file: the mapping stays alive while any
/// `Bytes` made from it does.
struct Published {
    file: Arc<MappedFile>,
    pos: u64,
    len: u64,
}

impl AsRef<[u8]> for Published {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `Published` is only built over published bytes, which are never written again
        // (see `published_bytes`); bounds were checked there.
        unsafe { self.file.slice(self.pos, self.len).unwrap_or_default() }
    }
}

/// `Bytes` for `[pos, pos + len)` of `file`, pointing into the mapping.
///
/// # Safety
/// The range must be published: never written again while the `Bytes` lives.
pub(crate) unsafe fn published_bytes(file: &Arc<MappedFile>, pos: u64, len: u64) -> Option<Bytes> {
    // SAFETY: forwarded from the caller.
    unsafe { file.slice(pos, len)? };
    Some(Bytes::from_owner(Published {
        file: Arc::clone(file),
        pos,
        len,
    }))
}

/// `fsync`s a directory, so that files created or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io(dir))
}

/// Lists the files of `dir` whose names are 20-digit numbers, sorted by that number.
pub(crate) fn numbered_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StoreError::io(dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(StoreError::io(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = name.parse::<u64>() {
                out.push((n, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The 20-digit file name for `n`.
pub(crate) fn file_name(n: u64) -> String {
    format!("{n:020}")
}
