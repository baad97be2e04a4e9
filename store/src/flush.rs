//! Flushing: group commit in `sync` mode, a periodic flush in `async` mode.
//!
//! One flusher thread owns every CommitLog `fdatasync`. In `sync` mode it flushes as soon as
//! anything unflushed exists; writers that wait for durability register nothing but a listener
//! on `durable_changed`, so one fsync covers every writer waiting at that moment. Before each
//! fsync the flusher may linger (at most `group_commit_linger`) until as many records are pending
//! as the previous fsync covered, or as writers were waiting on it: writers woken by one fsync
//! get their next record into the next one instead of trickling into two. With a single writer the previous batch is one record and
//! nobody lingers.
//!
//! A failed fsync poisons the store: the kernel may have dropped the dirty pages it could not
//! write, so nothing later can be confirmed. Waiters get [`StoreError::Poisoned`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use event_listener::{Event, Listener};

use crate::config::FlushMode;
use crate::error::{Result, StoreError};
use crate::store::Inner;

/// Flush positions and the events around them.
#[derive(Debug)]
pub(crate) struct FlushState {
    pub(crate) mode: FlushMode,
    durable: AtomicU64,
    poisoned: AtomicBool,
    durable_changed: Event,
    /// Wakes the flusher: data to flush (sync mode), or shutdown.
    pub(crate) work: Event,
    pub(crate) fsyncs: AtomicU64,
    pub(crate) records_synced: AtomicU64,
    /// Writers currently waiting for durability: how many the next batch should gather.
    waiting: AtomicU64,
}

/// What one round of a wait found.
enum Step {
    Done(Result<()>),
    Wait(event_listener::EventListener),
}

/// Counts a waiter for as long as it waits (also when an async wait is dropped).
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn new(c: &'a AtomicU64) -> Self {
        c.fetch_add(1, Ordering::AcqRel);
        Waiting(c)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl FlushState {
    pub(crate) fn new(mode: FlushMode, durable: u64) -> FlushState {
        FlushState {
            mode,
            durable: AtomicU64::new(durable),
            poisoned: AtomicBool::new(false),
            durable_changed: Event::new(),
            work: Event::new(),
            fsyncs: AtomicU64::new(0),
            records_synced: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
        }
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    pub(crate) fn advance(&self, to: u64) {
        self.durable.fetch_max(to, Ordering::AcqRel);
        self.durable_changed.notify(usize::MAX);
    }

    fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
        self.durable_changed.notify(usize::MAX);
    }

    /// `Some(result)` once the wait for `end` is over.
    fn settled(&self, end: u64) -> Option<Result<()>> {
        if self.mode == FlushMode::Async || self.durable() >= end {
            Some(Ok(()))
        } else if self.is_poisoned() {
            Some(Err(StoreError::Poisoned))
        } else {
            None
        }
    }

    /// One round of a wait: over, or a listener armed before the last check (so no wake-up is
    /// missed), with the flusher woken.
    fn step(&self, end: u64) -> Step {
        if let Some(r) = self.settled(end) {
            return Step::Done(r);
        }
        let l = self.durable_changed.listen();
        if let Some(r) = self.settled(end) {
            return Step::Done(r);
        }
        self.work.notify(1);
        Step::Wait(l)
    }

    /// Blocks until everything below `end` is stored under the flush policy.
    pub(crate) fn wait_blocking(&self, end: u64) -> Result<()> {
        if let Some(r) = self.settled(end) {
            return r;
        }
        let _w = Waiting::new(&self.waiting);
        loop {
            match self.step(end) {
                Step::Done(r) => return r,
                Step::Wait(l) => l.wait(),
            }
        }
    }

    /// Waits, without blocking a thread, until everything below `end` is stored under the flush
    /// policy.
    pub(crate) async fn wait(&self, end: u64) -> Result<()> {
        if let Some(r) = self.settled(end) {
            return r;
        }
        let _w = Waiting::new(&self.waiting);
        loop {
            match self.step(end) {
                Step::Done(r) => return r,
                Step::Wait(l) => l.await,
            }
        }
    }
}

/// `fdatasync`s every segment holding bytes in `[from, to)`.
pub(crate) fn sync_range(inner: &Inner, from: u64, to: u64) -> Result<()> {
    for seg in inner.log.segments() {
        if seg.end() > from && seg.base < to {
            seg.file.sync()?;
        }
    }
    Ok(())
}

/// The flusher thread's body.
pub(crate) fn run_flusher(inner: &Inner) {
    let f = &inner.flush;
    let cfg = &inner.cfg;
    let mut last_batch = 1u64;
    let mut synced_records = inner.stats.records.load(Ordering::Acquire);
    loop {
        let closing = inner.closed.load(Ordering::Acquire);
        let pending = inner.log.written() > f.durable();
        match f.mode {
            FlushMode::Sync if pending => {
                linger(inner, synced_records, last_batch);
            }
            _ if closing => return, // close() does the final flush itself
            FlushMode::Sync => {
                let l = f.work.listen();
                if inner.log.written() <= f.durable() && !inner.closed.load(Ordering::Acquire) {
                    l.wait_timeout(cfg.flush_interval);
                }
                continue;
            }
            FlushMode::Async => {
                let l = f.work.listen();
                if !inner.closed.load(Ordering::Acquire) {
                    l.wait_timeout(cfg.flush_interval);
                }
                if inner.log.written() <= f.durable() {
                    continue;
                }
            }
        }
        let waiters = f.waiting.load(Ordering::Acquire);
        let records = inner.stats.records.load(Ordering::Acquire);
        let target = inner.log.written();
        let from = f.durable();
        let started = std::time::Instant::now();
        if let Err(e) = sync_range(inner, from, target) {
            tracing::error!(error = %e, "commitlog flush failed; the store is poisoned");
            f.poison();
            return;
        }
        let batch = records.saturating_sub(synced_records);
        synced_records = records;
        // Next time, wait for as many records as writers were waiting on this fsync (each will
        // come back with its next record), or as this fsync covered, whichever is more.
        last_batch = batch.max(waiters).max(1);
        inner.flush_latency.record(started.elapsed());
        f.fsyncs.fetch_add(1, Ordering::Relaxed);
        f.records_synced.fetch_add(batch, Ordering::Relaxed);
        f.advance(target);
    }
}

/// Waits (bounded by `group_commit_linger`) until `expect` records are pending since the last
/// fsync, so that writers woken by that fsync make it into this one.
fn linger(inner: &Inner, synced_records: u64, expect: u64) {
    let cfg = &inner.cfg;
    if expect <= 1 || cfg.group_commit_linger.is_zero() {
        return;
    }
    let deadline = Instant::now() + cfg.group_commit_linger;
    let pending = || {
        inner
            .stats
            .records
            .load(Ordering::Acquire)
            .saturating_sub(synced_records)
    };
    while pending() < expect && !inner.closed.load(Ordering::Acquire) {
        let l = inner.flush.work.listen();
        if pending() >= expect || l.wait_deadline(deadline).is_none() && Instant::now() >= deadline
        {
            return;
        }
    }
}
