//! Connections in their handshake: accepted, not yet logged in (TLS, WebSocket upgrade and the
//! protocol's own handshake). `[limits] max_handshakes` caps how many there are at once, over
//! every listener, so a flood of half-open or slow handshakes holds at most that many sockets
//! and never the slots (`max_connections`) of clients that log in.
//!
//! When the cap is reached, the oldest connection still in its handshake is dropped to make
//! room, if it has been at it for [`EVICT_AFTER`]: a client that completes its handshake at
//! once gets through a flood of slow ones. If even the oldest is younger, the new connection
//! is refused instead, so a burst of honest clients (all quick) is not churned.
//!
//! The server runs each connection inside [`Handshakes::admit`]'s guard; a gateway calls
//! [`logged_in`] once the client is authenticated, which takes it off the list.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{select, Either};
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

/// How long a connection must have been in its handshake before a newcomer may take its place.
pub const EVICT_AFTER: Duration = Duration::from_secs(1);

/// The connections in their handshake, oldest first.
#[derive(Debug)]
pub struct Handshakes {
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next: u64,
    pending: BTreeMap<u64, (Instant, CancellationToken)>,
    /// Refused and dropped since the last log line (one a second at most).
    refused: u64,
    evicted: u64,
    last_log: Option<Instant>,
}

/// A connection's place among those in their handshake; leaves it when dropped.
#[derive(Debug)]
pub struct Pending {
    seq: u64,
    evict: CancellationToken,
    owner: Arc<Handshakes>,
}

tokio::task_local! {
    static CURRENT: Pending;
}

impl Handshakes {
    /// At most `max` connections in their handshake at once.
    pub fn new(max: usize) -> Arc<Handshakes> {
        Arc::new(Handshakes {
            max: max.max(1),
            state: Mutex::new(State {
                next: 0,
                pending: BTreeMap::new(),
                refused: 0,
                evicted: 0,
                last_log: None,
            }),
        })
    }

    /// A place for a connection just accepted, making room by dropping the oldest one in its
    /// handshake if it has been there for [`EVICT_AFTER`]; `None` if the new one is refused.
    pub fn admit(self: &Arc<Self>) -> Option<Pending> {
        let now = Instant::now();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.pending.len() >= self.max {
            let oldest = st.pending.first_key_value().map(|(k, (t, _))| (*k, *t));
            match oldest {
                Some((seq, since)) if now.duration_since(since) >= EVICT_AFTER => {
                    if let Some((_, token)) = st.pending.remove(&seq) {
                        token.cancel();
                    }
                    st.evicted += 1;
                }
                _ => {
                    st.refused += 1;
                    st.log(now, self.max);
                    return None;
                }
            }
            st.log(now, self.max);
        }
        let seq = st.next;
        st.next += 1;
        let evict = CancellationToken::new();
        st.pending.insert(seq, (now, evict.clone()));
        Some(Pending {
            seq,
            evict,
            owner: Arc::clone(self),
        })
    }

    /// How many connections are in their handshake now.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending
            .len()
    }

    /// Whether no connection is in its handshake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn leave(&self, seq: u64) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending
            .remove(&seq);
    }
}

impl State {
    /// One line a second at most while the cap turns connections away.
    fn log(&mut self, now: Instant, max: usize) {
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        tracing::warn!(
            max_handshakes = max,
            refused = self.refused,
            dropped = self.evicted,
            "handshake limit reached: new connections refused, or the oldest handshakes dropped"
        );
        self.refused = 0;
        self.evicted = 0;
        self.last_log = Some(now);
    }
}

impl Pending {
    /// Runs a connection's `serve` future as this place's holder: it is dropped (the socket
    /// closed) if a newcomer takes its place before it calls [`logged_in`].
    ///
    /// Combinators, not an `async fn`: an async fn (as `CancellationToken::run_until_cancelled`)
    /// keeps the future it was given beside the one it awaits, and every idle connection's task
    /// would carry its `serve` future three times over.
    pub fn run<F>(self, serve: F) -> impl Future<Output = ()>
    where
        F: Future<Output = ()>,
    {
        let evict = Box::pin(self.evict.clone().cancelled_owned());
        // Boxed so that `select` may move it; polled first, so a connection that finishes
        // as it is evicted finishes.
        let raced = select(Box::pin(serve), evict).map(|done| {
            if let Either::Right(_) = done {
                tracing::debug!("connection still in its handshake dropped to make room");
            }
        });
        CURRENT.scope(self, raced)
    }

    fn done(&self) {
        self.owner.leave(self.seq);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.done();
    }
}

/// The connection running in this task has logged in: it no longer counts as in its
/// handshake and can no longer be dropped to make room. Does nothing outside a connection's
/// task (or when there is no cap).
pub fn logged_in() {
    let _ = CURRENT.try_with(Pending::done);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_list_refuses_newcomers_while_its_oldest_is_young() {
        let h = Handshakes::new(2);
        let a = h.admit().unwrap();
        let _b = h.admit().unwrap();
        assert!(h.admit().is_none());
        assert_eq!(h.len(), 2);
        drop(a);
        assert_eq!(h.len(), 1);
        assert!(h.admit().is_some());
    }

    #[tokio::test]
    async fn the_oldest_handshake_makes_room_once_it_is_old_enough() {
        let h = Handshakes::new(1);
        let slow = h.admit().unwrap();
        let evict = slow.evict.clone();
        let task = tokio::spawn(slow.run(std::future::pending()));
        // Aged by hand rather than by waiting.
        for (t, _) in h.state.lock().unwrap().pending.values_mut() {
            *t = t.checked_sub(EVICT_AFTER).unwrap();
        }
        let quick = h.admit().expect("room made");
        assert!(evict.is_cancelled());
        task.await.unwrap();
        assert_eq!(h.len(), 1);
        // A connection that logged in is no longer on the list.
        CURRENT.sync_scope(quick, logged_in);
        assert!(h.is_empty());
    }

    #[tokio::test]
    async fn logging_in_outside_a_connection_does_nothing() {
        logged_in();
        let h = Handshakes::new(1);
        let p = h.admit().unwrap();
        p.run(async { logged_in() }).await;
        assert!(h.is_empty());
    }
}
