//! Resource alarms: the memory high watermark and the disk free limit, which block publishing
//! in every protocol while either is crossed.
//!
//! The memory alarm samples the broker's anonymous resident memory (`RssAnon`): what the broker
//! allocates. The CommitLog's mapped pages are file-backed page cache the kernel can reclaim,
//! so they do not count. The disk alarm is the store's (`disk_low_watermark`, checked every
//! `checkpoint_interval`); this module only follows it.
//!
//! Both limits can be changed while the broker runs ([`Broker::set_memory_watermark`],
//! [`Broker::set_disk_free_limit`], RabbitMQ's `set_vm_memory_high_watermark` and
//! `set_disk_free_limit`); neither change is saved, a restart goes back to the configuration.
//! Gateways learn of a change through [`Broker::alarm_watch`] and wait for publishing to resume
//! with [`Broker::publishing_resumed`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Broker, BrokerInner};

/// Why publishing is blocked: the memory alarm.
pub(crate) const MEMORY_REASON: &str = "memory use above the high watermark";
/// Why publishing is blocked: the disk alarm.
const DISK_REASON: &str = "disk space below the low watermark";

/// The memory high watermark: a fraction of the machine's RAM or a number of bytes. Zero
/// (either way) turns the memory alarm off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryWatermark {
    /// A fraction of total RAM (RabbitMQ's `vm_memory_high_watermark.relative`).
    Relative(f64),
    /// Bytes (RabbitMQ's `vm_memory_high_watermark.absolute`).
    Absolute(u64),
}

impl MemoryWatermark {
    /// The limit in bytes on a machine with `total` bytes of RAM; `None` when off.
    pub fn limit(self, total: u64) -> Option<u64> {
        match self {
            MemoryWatermark::Relative(f) if f > 0.0 => Some((total as f64 * f) as u64),
            MemoryWatermark::Absolute(b) if b > 0 => Some(b),
            _ => None,
        }
    }
}

/// The memory alarm's setting and last sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryStatus {
    /// The watermark as set.
    pub watermark: MemoryWatermark,
    /// The watermark in bytes (`None`: the alarm is off).
    pub limit: Option<u64>,
    /// Anonymous resident memory of the broker at the last sample, bytes.
    pub used: u64,
    /// Total RAM, bytes.
    pub total: u64,
    /// Whether the alarm is on.
    pub alarm: bool,
}

/// The disk alarm's setting and last check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskStatus {
    /// Free space below which publishing is blocked, bytes.
    pub limit: u64,
    /// Free space at the last check, bytes.
    pub free: u64,
    /// Whether the alarm is on.
    pub alarm: bool,
}

/// The broker's alarm state.
pub(crate) struct Alarms {
    memory_on: AtomicBool,
    watermark: Mutex<MemoryWatermark>,
    used: AtomicU64,
    total: AtomicU64,
    /// Why publishing is blocked (`None`: it is not), for whoever waits on a change.
    state: watch::Sender<Option<&'static str>>,
}

impl Alarms {
    pub(crate) fn new(watermark: MemoryWatermark) -> Alarms {
        Alarms {
            memory_on: AtomicBool::new(false),
            watermark: Mutex::new(watermark),
            used: AtomicU64::new(0),
            total: AtomicU64::new(0),
            state: watch::Sender::new(None),
        }
    }

    /// Whether the memory alarm is on.
    pub(crate) fn memory_on(&self) -> bool {
        self.memory_on.load(Ordering::Acquire)
    }

    fn watermark(&self) -> MemoryWatermark {
        *self.watermark.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Samples memory now and sets or clears the memory alarm.
    fn sample_memory(&self) {
        let Some((used, total)) = sample() else {
            return;
        };
        self.used.store(used, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        let limit = self.watermark().limit(total);
        let over = limit.is_some_and(|l| used > l);
        if over != self.memory_on.swap(over, Ordering::AcqRel) {
            let limit = limit.unwrap_or(0);
            if over {
                tracing::warn!(used, limit, "memory high watermark: publishing blocked");
            } else {
                tracing::info!(
                    used,
                    limit,
                    "memory back under the high watermark: publishing resumed"
                );
            }
        }
    }
}

impl BrokerInner {
    /// Why publishing is blocked right now, if it is.
    pub(crate) fn blocked_reason(&self) -> Option<&'static str> {
        if self.alarms.memory_on() {
            Some(MEMORY_REASON)
        } else if self.store.is_disk_low() {
            Some(DISK_REASON)
        } else {
            None
        }
    }

    /// Publishes the current alarm state to the watchers, if it changed.
    pub(crate) fn refresh_alarms(&self) {
        let now = self.blocked_reason();
        self.alarms.state.send_if_modified(|s| {
            let changed = *s != now;
            *s = now;
            changed
        });
    }

    /// Waits until no alarm blocks publishing (at once if none does).
    pub(crate) async fn publishing_resumed(&self) {
        let mut rx = self.alarms.state.subscribe();
        // The flags publishing checks may be ahead of the last published state.
        self.refresh_alarms();
        // An error means the broker is gone: nothing to wait for.
        let _ = rx.wait_for(Option::is_none).await;
    }
}

impl Broker {
    /// The alarm state, as it changes: why publishing is blocked, or `None`.
    pub fn alarm_watch(&self) -> watch::Receiver<Option<&'static str>> {
        self.inner.refresh_alarms();
        self.inner.alarms.state.subscribe()
    }

    /// Waits until no alarm blocks publishing (at once if none does). Cancel-safe.
    pub async fn publishing_resumed(&self) {
        self.inner.publishing_resumed().await;
    }

    /// Changes the memory high watermark and checks memory against it at once.
    pub fn set_memory_watermark(&self, watermark: MemoryWatermark) -> MemoryStatus {
        *self
            .inner
            .alarms
            .watermark
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = watermark;
        tracing::info!(?watermark, "memory high watermark set");
        self.inner.alarms.sample_memory();
        self.inner.refresh_alarms();
        self.memory_status()
    }

    /// The memory alarm's setting and last sample.
    pub fn memory_status(&self) -> MemoryStatus {
        let a = &self.inner.alarms;
        let watermark = a.watermark();
        let total = a.total.load(Ordering::Relaxed);
        MemoryStatus {
            watermark,
            limit: watermark.limit(total),
            used: a.used.load(Ordering::Relaxed),
            total,
            alarm: a.memory_on(),
        }
    }

    /// Changes the store's disk free limit and checks free space against it at once.
    pub fn set_disk_free_limit(&self, bytes: u64) -> DiskStatus {
        self.inner.store.set_disk_low_watermark(bytes);
        tracing::info!(bytes, "disk free limit set");
        self.inner.refresh_alarms();
        self.disk_status()
    }

    /// The disk alarm's setting and last check.
    pub fn disk_status(&self) -> DiskStatus {
        let s = &self.inner.store;
        DiskStatus {
            limit: s.disk_low_watermark(),
            free: s.disk_free(),
            alarm: s.is_disk_low(),
        }
    }
}

/// A `kB` field of a `/proc` file, in bytes.
fn kb_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// (anonymous resident bytes of this process, total RAM bytes), if readable.
fn sample() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    Some((
        kb_field(&status, "RssAnon:")?,
        kb_field(&meminfo, "MemTotal:")?,
    ))
}

/// Runs until `stop`: every second, samples memory (setting or clearing the memory alarm) and
/// tells watchers of any change, the disk alarm's included.
pub(crate) async fn watch(broker: Weak<BrokerInner>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(b) = broker.upgrade() else { return };
        b.alarms.sample_memory();
        b.refresh_alarms();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc() {
        let (used, total) = sample().unwrap();
        assert!(used > 0 && total > used);
        assert_eq!(kb_field("RssAnon:\t  2048 kB\n", "RssAnon:"), Some(2 << 20));
        assert_eq!(kb_field("garbage", "RssAnon:"), None);
    }

    #[test]
    fn watermark_limits() {
        assert_eq!(MemoryWatermark::Relative(0.5).limit(1000), Some(500));
        assert_eq!(MemoryWatermark::Absolute(300).limit(1000), Some(300));
        assert_eq!(MemoryWatermark::Relative(0.0).limit(1000), None);
        assert_eq!(MemoryWatermark::Absolute(0).limit(1000), None);
    }
}
