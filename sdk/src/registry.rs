//! The live consumers of a client, so that deliveries can be routed to them and they can be
//! re-subscribed after a reconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use junction_native::Subscribe;
use tokio::sync::mpsc;

use crate::consumer::Delivery;
use crate::error::SdkError;

/// What a consumer's stream receives.
// Nearly every event is a delivery: boxing it would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ConsumerEvent {
    /// A message.
    Delivery(Delivery),
    /// The consumer ended (cancelled by the server, re-subscription refused, client gave up);
    /// the stream yields the error and then ends.
    End(SdkError),
}

/// One consumer, identified by a client-local handle that survives reconnects (the server's
/// consumer id does not).
pub(crate) struct ConsumerEntry {
    /// What to subscribe with; re-subscriptions use `start: Committed`. `prefetch` is kept up to
    /// date by `set_prefetch`.
    pub(crate) subscribe: Subscribe,
    pub(crate) tx: mpsc::UnboundedSender<ConsumerEvent>,
    /// `(epoch, consumer id)` on the live session, once `Subscribed` arrived.
    pub(crate) current: Option<(u64, u32)>,
    /// Subscribed at least once: re-subscribe after a reconnect.
    pub(crate) established: bool,
    pub(crate) partitions: Arc<Mutex<Vec<u16>>>,
}

/// Consumers by handle, and the live session's consumer ids.
#[derive(Default)]
pub(crate) struct Registry {
    next_handle: u64,
    entries: HashMap<u64, ConsumerEntry>,
    by_id: HashMap<u32, u64>,
}

impl Registry {
    /// Adds a consumer; returns its handle.
    pub(crate) fn insert(&mut self, entry: ConsumerEntry) -> u64 {
        self.next_handle += 1;
        self.entries.insert(self.next_handle, entry);
        self.next_handle
    }

    /// Removes a consumer (it will not be re-subscribed and gets no more deliveries).
    pub(crate) fn remove(&mut self, handle: u64) -> Option<ConsumerEntry> {
        let entry = self.entries.remove(&handle)?;
        if let Some((_, id)) = entry.current {
            self.by_id.remove(&id);
        }
        Some(entry)
    }

    /// Removes every consumer.
    pub(crate) fn clear(&mut self) -> Vec<ConsumerEntry> {
        self.by_id.clear();
        self.entries.drain().map(|(_, e)| e).collect()
    }

    /// The consumer with this handle.
    pub(crate) fn get_mut(&mut self, handle: u64) -> Option<&mut ConsumerEntry> {
        self.entries.get_mut(&handle)
    }

    /// The consumer with this id on the live session.
    pub(crate) fn by_consumer_id(&mut self, consumer_id: u32) -> Option<&mut ConsumerEntry> {
        let handle = self.by_id.get(&consumer_id)?;
        self.entries.get_mut(handle)
    }

    /// The handle of the consumer with this id on the live session.
    pub(crate) fn handle_of(&self, consumer_id: u32) -> Option<u64> {
        self.by_id.get(&consumer_id).copied()
    }

    /// Records that `handle` is consumer `consumer_id` of session `epoch`. Returns false when
    /// the consumer is gone.
    pub(crate) fn install(
        &mut self,
        handle: u64,
        epoch: u64,
        consumer_id: u32,
        partitions: Vec<u16>,
    ) -> bool {
        let Some(entry) = self.entries.get_mut(&handle) else {
            return false;
        };
        entry.current = Some((epoch, consumer_id));
        entry.established = true;
        *crate::connection::lock(&entry.partitions) = partitions;
        self.by_id.insert(consumer_id, handle);
        true
    }

    /// The subscriptions to renew on a new session: `(handle, Subscribe)` of every consumer
    /// that was subscribed before.
    pub(crate) fn resubscriptions(&self) -> Vec<(u64, Subscribe)> {
        let mut subs: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| e.established)
            .map(|(h, e)| {
                let mut s = e.subscribe.clone();
                s.start = junction_native::StartPosition::Committed;
                (*h, s)
            })
            .collect();
        subs.sort_by_key(|(h, _)| *h);
        subs
    }

    /// The session ended: consumer ids are void.
    pub(crate) fn session_ended(&mut self) {
        self.by_id.clear();
        for e in self.entries.values_mut() {
            e.current = None;
        }
    }
}
