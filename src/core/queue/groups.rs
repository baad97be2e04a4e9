//! Consumer groups as operators see them: each group's members and, per partition, its
//! committed offset, how far it has read, its lag and in-flight count; and the two changes an
//! operator makes to a group with no consumers: move its offsets (replay or skip), or delete
//! it (a named group no longer holds back retention).

use super::{Actor, CoreError, CoreResult, Cursor, StartFrom};

/// One partition of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition.
    pub partition: u16,
    /// Every offset below is settled.
    pub committed: u64,
    /// The next offset never delivered in this group.
    pub next_read: u64,
    /// The partition's end (next offset to be written).
    pub end: u64,
    /// Unsettled messages: `end - committed` less those settled out of order.
    pub lag: u64,
    /// Delivered, not yet settled.
    pub inflight: u64,
}

/// A consumer group of a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Name ("" = the queue's default group, which AMQP, STOMP and MQTT consumers share).
    pub name: String,
    /// Consumers in the group.
    pub members: u32,
    /// Partitions are assigned to members instead of shared.
    pub exclusive_partitions: bool,
    /// Per partition.
    pub partitions: Vec<PartitionOffsets>,
}

impl Actor {
    pub(super) fn groups_info(&self) -> Vec<GroupInfo> {
        self.groups
            .iter()
            .map(|(name, g)| GroupInfo {
                name: name.clone(),
                members: g.members.len() as u32,
                exclusive_partitions: g.exclusive_partitions,
                partitions: g
                    .parts
                    .iter()
                    .map(|c| {
                        let (end, lag) = self.lag_of(c);
                        PartitionOffsets {
                            partition: c.partition,
                            committed: c.committed,
                            next_read: c.next_read,
                            end,
                            lag,
                            inflight: c.inflight.len() as u64,
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// A partition's end and a group's lag there (unsettled messages).
    pub(super) fn lag_of(&self, c: &Cursor) -> (u64, u64) {
        let end = self.ctx.store.queue_range(c.key).map_or(0, |r| r.1);
        let lag = end
            .saturating_sub(c.committed)
            .saturating_sub(c.settled.len() as u64);
        (end, lag)
    }

    fn idle_group(&mut self, name: &str) -> CoreResult<&mut super::Group> {
        let queue = self.ctx.q.name.clone();
        let g = self
            .groups
            .get_mut(name)
            .ok_or_else(|| CoreError::not_found("consumer group", name))?;
        if !g.members.is_empty() {
            return Err(CoreError::PreconditionFailed(format!(
                "consumer group '{name}' of queue '{queue}' has consumers"
            )));
        }
        if g.parts.iter().any(|c| !c.inflight.is_empty()) {
            return Err(CoreError::PreconditionFailed(format!(
                "consumer group '{name}' of queue '{queue}' has unacknowledged deliveries"
            )));
        }
        Ok(g)
    }

    /// Moves an idle group's offsets to `to` in every partition. Messages before the new
    /// position count as settled; those after it are delivered again (with the redelivered
    /// flag when they may have been delivered before).
    pub(super) fn reset_group(&mut self, name: &str, to: StartFrom) -> CoreResult<()> {
        let store = std::sync::Arc::clone(&self.ctx.store);
        let g = self.idle_group(name)?;
        for c in &mut g.parts {
            let (min, end) = store.queue_range(c.key).unwrap_or((0, 0));
            let target = match to {
                StartFrom::Committed => c.committed,
                StartFrom::Earliest => min,
                StartFrom::Latest => end,
                StartFrom::Last => end.saturating_sub(1),
                StartFrom::Offset(o) => o,
                StartFrom::Time(t) => store.offset_for_time(c.key, t),
            }
            .clamp(min, end.max(min));
            reset_cursor(c, target);
        }
        self.dirty = true;
        Ok(())
    }

    /// Idle groups take the cursors saved in the offsets file (a slave: the master's offsets
    /// were just copied there); groups with members or deliveries in flight keep theirs.
    pub(super) fn reload_offsets(&mut self) {
        let saved: std::collections::HashMap<String, Vec<super::SavedCursor>> =
            std::fs::read(&self.offsets_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
        for (name, cursors) in saved {
            if self.groups.contains_key(&name) && self.idle_group(&name).is_err() {
                continue;
            }
            self.groups.remove(&name);
            self.group_with(&name, StartFrom::Committed, Some(&cursors));
        }
    }

    /// Deletes an idle named group (the default group cannot be deleted).
    pub(super) fn delete_group(&mut self, name: &str) -> CoreResult<()> {
        if name.is_empty() {
            return Err(CoreError::AccessRefused(
                "the queue's default consumer group cannot be deleted".into(),
            ));
        }
        self.idle_group(name)?;
        self.groups.remove(name);
        self.dirty = true;
        Ok(())
    }
}

fn reset_cursor(c: &mut Cursor, target: u64) {
    c.delivered_before = c.delivered_before.max(c.next_read);
    c.committed = target;
    c.next_read = target;
    c.scanned_to = target;
    c.settled.clear();
    c.redeliver.clear();
    c.buffer.clear();
}
