//! RocketMQ's messaging features beyond publish and consume: re-driving a dead-letter queue.

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{Reader, Wire, Writer};

/// Client -> server: move up to `max` messages of a dead-letter queue back to the retry queue
/// of the consumer group that gave up on them (their `x-retry-queue` header), with their retry
/// count reset. Answered by [`Deleted`](crate::Deleted) with the number moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redrive {
    /// The dead-letter queue.
    pub queue: String,
    /// Most messages to move.
    pub max: u64,
}

impl Wire for Redrive {
    const MIN_LEN: usize = 2 + 8;

    fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.str("Redrive.queue", &self.queue)?;
        w.u64(self.max);
        Ok(())
    }

    fn get(r: &mut Reader) -> Result<Self, DecodeError> {
        Ok(Redrive {
            queue: r.str("Redrive.queue")?,
            max: r.u64("Redrive.max")?,
        })
    }
}
