//! The memory alarm: samples the broker's anonymous resident memory and blocks publishing above
//! a fraction of the machine's RAM.
//!
//! Anonymous memory (`RssAnon`) is what the broker allocates; the CommitLog's mapped pages are
//! file-backed page cache the kernel can reclaim, so they do not count.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::BrokerInner;

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

/// Runs until `stop`: every second, sets or clears the broker's memory alarm.
pub(crate) async fn watch(broker: Weak<BrokerInner>, fraction: f64, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let Some(b) = broker.upgrade() else { return };
        let Some((used, total)) = sample() else {
            continue;
        };
        let limit = (total as f64 * fraction) as u64;
        let over = used > limit;
        if over != b.memory_alarm.swap(over, Ordering::AcqRel) {
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

#[cfg(test)]
mod tests {
    #[test]
    fn reads_proc() {
        let (used, total) = super::sample().unwrap();
        assert!(used > 0 && total > used);
        assert_eq!(
            super::kb_field("RssAnon:\t  2048 kB\n", "RssAnon:"),
            Some(2 << 20)
        );
        assert_eq!(super::kb_field("garbage", "RssAnon:"), None);
    }
}
