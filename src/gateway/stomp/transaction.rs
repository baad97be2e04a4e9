//! STOMP transactions: `BEGIN` opens a named buffer, `SEND`, `ACK` and `NACK` frames carrying
//! `transaction:<name>` are held in it, `COMMIT` hands them back in order to be carried out,
//! `ABORT` (or the end of the connection) drops them.
//!
//! Nothing reaches the core before `COMMIT`: an aborted transaction published nothing and
//! settled nothing (the deliveries it would have acked stay unacked and can be acked again).

use std::collections::HashMap;

use junction_stomp::Frame;

/// Most transactions open at once on one connection.
pub const MAX_OPEN: usize = 64;
/// Most frames buffered in one transaction.
pub const MAX_FRAMES: usize = 100_000;
/// Most body bytes buffered in all open transactions of a connection (256 MiB).
pub const MAX_BYTES: usize = 256 << 20;

/// Why a transaction frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// `BEGIN` of a name already open.
    #[error("transaction '{0}' is already open")]
    AlreadyOpen(String),
    /// A frame names a transaction that is not open.
    #[error("transaction '{0}' is not open")]
    NotOpen(String),
    /// Too many transactions or frames.
    #[error("transaction limit reached: {0}")]
    Limit(&'static str),
}

/// The open transactions of one connection.
#[derive(Debug, Default)]
pub struct Transactions {
    open: HashMap<String, Vec<Frame>>,
    /// Body bytes held in `open`.
    bytes: usize,
}

impl Transactions {
    /// `BEGIN`.
    ///
    /// # Errors
    /// [`TxError::AlreadyOpen`], [`TxError::Limit`].
    pub fn begin(&mut self, name: &str) -> Result<(), TxError> {
        if self.open.contains_key(name) {
            return Err(TxError::AlreadyOpen(name.to_string()));
        }
        if self.open.len() >= MAX_OPEN {
            return Err(TxError::Limit("too many open transactions"));
        }
        self.open.insert(name.to_string(), Vec::new());
        Ok(())
    }

    /// Holds a `SEND`, `ACK` or `NACK` until the transaction ends.
    ///
    /// # Errors
    /// [`TxError::NotOpen`], [`TxError::Limit`].
    pub fn hold(&mut self, name: &str, frame: Frame) -> Result<(), TxError> {
        let frames = self
            .open
            .get_mut(name)
            .ok_or_else(|| TxError::NotOpen(name.to_string()))?;
        if frames.len() >= MAX_FRAMES {
            return Err(TxError::Limit("too many frames in one transaction"));
        }
        if self.bytes.saturating_add(frame.body.len()) > MAX_BYTES {
            return Err(TxError::Limit("too many bytes held in transactions"));
        }
        self.bytes += frame.body.len();
        frames.push(frame);
        Ok(())
    }

    /// `COMMIT`: the held frames, in the order they came.
    ///
    /// # Errors
    /// [`TxError::NotOpen`].
    pub fn commit(&mut self, name: &str) -> Result<Vec<Frame>, TxError> {
        let frames = self
            .open
            .remove(name)
            .ok_or_else(|| TxError::NotOpen(name.to_string()))?;
        let held: usize = frames.iter().map(|f| f.body.len()).sum();
        self.bytes = self.bytes.saturating_sub(held);
        Ok(frames)
    }

    /// `ABORT`: drops the held frames.
    ///
    /// # Errors
    /// [`TxError::NotOpen`].
    pub fn abort(&mut self, name: &str) -> Result<(), TxError> {
        self.commit(name).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_stomp::Command;

    #[test]
    fn begin_hold_commit_abort() {
        let mut t = Transactions::default();
        t.begin("a").unwrap();
        assert_eq!(t.begin("a"), Err(TxError::AlreadyOpen("a".into())));
        t.hold("a", Frame::send("/queue/x", "1")).unwrap();
        t.hold("a", Frame::new(Command::Ack)).unwrap();
        assert!(t.hold("b", Frame::new(Command::Ack)).is_err());
        let frames = t.commit("a").unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].command, Command::Send);
        assert!(t.commit("a").is_err());
        t.begin("c").unwrap();
        t.abort("c").unwrap();
        assert_eq!(t.abort("c"), Err(TxError::NotOpen("c".into())));
    }

    #[test]
    fn held_bytes_are_bounded_and_released() {
        let mut t = Transactions::default();
        t.begin("a").unwrap();
        let big = Frame::send("/queue/x", vec![0u8; MAX_BYTES / 2]);
        t.hold("a", big.clone()).unwrap();
        t.hold("a", big.clone()).unwrap();
        assert!(matches!(
            t.hold("a", Frame::send("/queue/x", "1")),
            Err(TxError::Limit(_))
        ));
        t.abort("a").unwrap();
        t.begin("b").unwrap();
        t.hold("b", big).unwrap();
    }
}
