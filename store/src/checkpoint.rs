//! The checkpoint: what is known durable, so recovery need not scan the whole CommitLog.
//!
//! Two 64-byte slots, in different 512-byte sectors of one file, written alternately, so a torn
//! write of one leaves the other intact; the valid slot with the higher sequence wins.
//!
//! ```text
//! slot (64 bytes, little-endian)
//!   0  4  magic 0x4A434B50 ("JCKP")   4 2 version 1   6 2 reserved
//!   8  8  seq
//!  16  8  durable      CommitLog bytes below this are on disk
//!  24  8  dispatched   consume queues and index are on disk for records below this
//!  32  8  last_ts      store timestamp of the last record below `durable`
//!  40  8  written_at   ms since the epoch, for operators
//!  48 12  reserved
//!  60  4  crc32c of bytes [0, 60)
//! ```

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

const MAGIC: u32 = 0x4A43_4B50;
const VERSION: u16 = 1;
const SLOT: usize = 64;
const STRIDE: u64 = 512;

/// The durable positions recorded at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) durable: u64,
    pub(crate) dispatched: u64,
    pub(crate) last_ts: i64,
}

/// The checkpoint file, open for rewriting.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    path: PathBuf,
    file: File,
    seq: u64,
}

fn encode(cp: &Checkpoint, seq: u64, now: i64) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    b[4..6].copy_from_slice(&VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&cp.durable.to_le_bytes());
    b[24..32].copy_from_slice(&cp.dispatched.to_le_bytes());
    b[32..40].copy_from_slice(&cp.last_ts.to_le_bytes());
    b[40..48].copy_from_slice(&now.to_le_bytes());
    let crc = crc32c::crc32c(&b[..60]);
    b[60..64].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8; SLOT]) -> Option<(u64, Checkpoint)> {
    let u64_at = |i: usize| crate::record::u64_at(b, i);
    let magic = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let crc = u32::from_le_bytes([b[60], b[61], b[62], b[63]]);
    if magic != MAGIC || crc != crc32c::crc32c(&b[..60]) || b[4..6] != VERSION.to_le_bytes() {
        return None;
    }
    Some((
        u64_at(8),
        Checkpoint {
            durable: u64_at(16),
            dispatched: u64_at(24),
            last_ts: u64_at(32) as i64,
        },
    ))
}

impl CheckpointFile {
    /// Opens the file and reads the newest valid checkpoint (`None` if there is none).
    pub(crate) fn open(path: &Path) -> Result<(CheckpointFile, Option<Checkpoint>)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(StoreError::io(path))?;
        let mut best: Option<(u64, Checkpoint)> = None;
        for i in 0..2 {
            let mut b = [0u8; SLOT];
            if file.read_exact_at(&mut b, i * STRIDE).is_ok() {
                if let Some((seq, cp)) = decode(&b) {
                    if best.is_none_or(|(s, _)| seq > s) {
                        best = Some((seq, cp));
                    }
                }
            }
        }
        let seq = best.map_or(0, |(s, _)| s);
        Ok((
            CheckpointFile {
                path: path.to_path_buf(),
                file,
                seq,
            },
            best.map(|(_, cp)| cp),
        ))
    }

    /// Writes `cp` durably into the slot not holding the newest checkpoint.
    pub(crate) fn write(&mut self, cp: &Checkpoint, now_ms: i64) -> Result<()> {
        let seq = self.seq + 1;
        let slot = encode(cp, seq, now_ms);
        self.file
            .write_all_at(&slot, (seq % 2) * STRIDE)
            .map_err(StoreError::io(&self.path))?;
        self.file.sync_data().map_err(StoreError::io(&self.path))?;
        self.seq = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint");
        let (mut f, cp) = CheckpointFile::open(&path).unwrap();
        assert_eq!(cp, None);
        let a = Checkpoint {
            durable: 10,
            dispatched: 5,
            last_ts: 1,
        };
        let b = Checkpoint {
            durable: 20,
            dispatched: 15,
            last_ts: 2,
        };
        f.write(&a, 0).unwrap();
        f.write(&b, 0).unwrap();
        drop(f);
        assert_eq!(CheckpointFile::open(&path).unwrap().1, Some(b));
        // Tear the newest slot (seq 2 lives in slot 0): the older one is used.
        let raw = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        raw.write_all_at(&[0xff; 8], 16).unwrap();
        assert_eq!(CheckpointFile::open(&path).unwrap().1, Some(a));
    }
}
