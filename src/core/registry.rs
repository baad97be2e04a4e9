//! The connection registry: every client connection a gateway serves, for the admin API, the
//! metrics, and closing a connection from outside (an operator, a deleted user or vhost).
//!
//! A connection is the session [`super::Broker::connect`] opens; its siblings (AMQP channels,
//! [`super::Session::open_sibling`]) count as its sessions. The registry is touched when a
//! connection or session opens or closes, never per message: the per-connection message
//! counters are relaxed atomics on the connection's own entry.
//!
//! Closing from outside does not touch the socket: it cancels the connection's
//! [`CloseSignal`], which the gateway's loop waits on beside its socket, and the gateway sends
//! its protocol's close (AMQP `connection.close` 320, native `Close`) with the reason.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio_util::sync::CancellationToken;

use super::session::ClientInfo;

/// One registered connection.
#[derive(Debug)]
pub(crate) struct ConnEntry {
    id: u64,
    info: ClientInfo,
    connected_at_ms: i64,
    sessions: AtomicU32,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    close: CancellationToken,
    reason: OnceLock<String>,
}

/// A connection as the admin API shows it.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// Connection id (the id of its first session; unique for the broker's lifetime).
    pub id: u64,
    /// Who is connected, from where, over which protocol.
    pub client: ClientInfo,
    /// When it connected, ms since the epoch.
    pub connected_at_ms: i64,
    /// Open core sessions: 1 for the connection plus one per AMQP channel.
    pub sessions: u32,
    /// Messages it published (accepted by the broker).
    pub messages_published: u64,
    /// Messages delivered to it.
    pub messages_delivered: u64,
}

/// What a gateway waits on to learn that its connection is to be closed from outside.
#[derive(Debug, Clone)]
pub struct CloseSignal {
    entry: Option<Arc<ConnEntry>>,
}

impl CloseSignal {
    /// Resolves, with the reason, once the connection is asked to close. Never resolves for a
    /// session that is not a registered connection. Cancel-safe: use it in `select!`.
    pub async fn requested(&self) -> String {
        match &self.entry {
            Some(e) => {
                e.close.cancelled().await;
                e.reason.get().cloned().unwrap_or_default()
            }
            None => std::future::pending().await,
        }
    }
}

/// The registry.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    map: Mutex<BTreeMap<u64, Arc<ConnEntry>>>,
    /// Messages published and delivered by connections that have closed, by protocol.
    closed: Mutex<BTreeMap<&'static str, (u64, u64)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connections {
    /// Registers a connection; it stays listed until its link (held by the root session) drops.
    pub(crate) fn register(self: &Arc<Self>, id: u64, info: ClientInfo) -> ConnLink {
        let entry = Arc::new(ConnEntry {
            id,
            info,
            connected_at_ms: super::now_ms(),
            sessions: AtomicU32::new(1),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            close: CancellationToken::new(),
            reason: OnceLock::new(),
        });
        lock(&self.map).insert(id, Arc::clone(&entry));
        ConnLink {
            entry,
            registry: Arc::clone(self),
            root: true,
        }
    }

    /// As [`Connections::register`], refused (with the reason) when the user already has
    /// `per_user` connections or the vhost `per_vhost`. Counted under the registry's lock, so
    /// connections opening at once cannot all slip under a limit.
    pub(crate) fn register_within(
        self: &Arc<Self>,
        id: u64,
        info: ClientInfo,
        per_user: Option<u64>,
        per_vhost: Option<u64>,
    ) -> Result<ConnLink, String> {
        if per_user.is_none() && per_vhost.is_none() {
            return Ok(self.register(id, info));
        }
        let map = lock(&self.map);
        let (mut users, mut vhosts) = (0u64, 0u64);
        for e in map.values() {
            users += u64::from(e.info.user == info.user);
            vhosts += u64::from(e.info.vhost == info.vhost);
        }
        if let Some(max) = per_user.filter(|m| users >= *m) {
            return Err(format!(
                "connection limit ({max}) of user '{}' is reached",
                info.user
            ));
        }
        if let Some(max) = per_vhost.filter(|m| vhosts >= *m) {
            return Err(format!(
                "connection limit ({max}) of vhost '{}' is reached",
                info.vhost
            ));
        }
        drop(map);
        Ok(self.register(id, info))
    }

    /// Open channels (sessions beyond each connection's first) of `user`'s connections.
    pub(crate) fn channels_of(&self, user: &str) -> u64 {
        lock(&self.map)
            .values()
            .filter(|e| e.info.user == user)
            .map(|e| u64::from(e.sessions.load(Ordering::Relaxed).saturating_sub(1)))
            .sum()
    }

    /// Every open connection, oldest first.
    pub(crate) fn list(&self) -> Vec<ConnectionInfo> {
        lock(&self.map)
            .values()
            .map(|e| ConnectionInfo {
                id: e.id,
                client: e.info.clone(),
                connected_at_ms: e.connected_at_ms,
                sessions: e.sessions.load(Ordering::Relaxed),
                messages_published: e.published.load(Ordering::Relaxed),
                messages_delivered: e.delivered.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Messages published and delivered since the broker started, by protocol: closed
    /// connections' and open ones'.
    pub(crate) fn by_protocol(&self) -> Vec<(&'static str, u64, u64)> {
        let mut totals = lock(&self.closed).clone();
        for e in lock(&self.map).values() {
            let t = totals.entry(e.info.protocol).or_default();
            t.0 += e.published.load(Ordering::Relaxed);
            t.1 += e.delivered.load(Ordering::Relaxed);
        }
        totals.into_iter().map(|(p, (a, b))| (p, a, b)).collect()
    }

    /// Asks the connections `which` selects to close; returns how many were asked.
    pub(crate) fn close_where(&self, reason: &str, which: impl Fn(&ClientInfo) -> bool) -> usize {
        let chosen: Vec<Arc<ConnEntry>> = lock(&self.map)
            .values()
            .filter(|e| which(&e.info))
            .cloned()
            .collect();
        for e in &chosen {
            let _ = e.reason.set(reason.to_string());
            e.close.cancel();
        }
        chosen.len()
    }

    /// Asks connection `id` to close; false if there is no such connection.
    pub(crate) fn close(&self, id: u64, reason: &str) -> bool {
        let Some(e) = lock(&self.map).get(&id).cloned() else {
            return false;
        };
        let _ = e.reason.set(reason.to_string());
        e.close.cancel();
        true
    }
}

/// A session's tie to its connection's entry: the root session's link unregisters the
/// connection when dropped, a sibling's only counts itself out.
#[derive(Debug)]
pub(crate) struct ConnLink {
    pub(crate) entry: Arc<ConnEntry>,
    registry: Arc<Connections>,
    root: bool,
}

impl ConnLink {
    /// The link of a new session of the same connection.
    pub(crate) fn sibling(&self) -> ConnLink {
        self.entry.sessions.fetch_add(1, Ordering::Relaxed);
        ConnLink {
            entry: Arc::clone(&self.entry),
            registry: Arc::clone(&self.registry),
            root: false,
        }
    }

    /// The connection's close signal.
    pub(crate) fn signal(&self) -> CloseSignal {
        CloseSignal {
            entry: Some(Arc::clone(&self.entry)),
        }
    }
}

impl CloseSignal {
    /// The signal of a session that is not a registered connection: never fires.
    pub(crate) fn never() -> CloseSignal {
        CloseSignal { entry: None }
    }
}

impl Drop for ConnLink {
    fn drop(&mut self) {
        self.entry.sessions.fetch_sub(1, Ordering::Relaxed);
        if self.root {
            let mut map = lock(&self.registry.map);
            if map
                .get(&self.entry.id)
                .is_some_and(|e| Arc::ptr_eq(e, &self.entry))
            {
                map.remove(&self.entry.id);
                drop(map);
                let e = &self.entry;
                let mut closed = lock(&self.registry.closed);
                let t = closed.entry(e.info.protocol).or_default();
                t.0 += e.published.load(Ordering::Relaxed);
                t.1 += e.delivered.load(Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(user: &str) -> ClientInfo {
        ClientInfo {
            user: user.into(),
            vhost: "/".into(),
            peer: None,
            protocol: "native",
            client_id: "c".into(),
        }
    }

    #[tokio::test]
    async fn register_count_sessions_close_and_unregister() {
        let reg = Arc::new(Connections::default());
        let root = reg.register(7, info("a"));
        let other = reg.register(8, info("b"));
        let sib = root.sibling();
        assert_eq!(reg.list().len(), 2);
        assert_eq!(reg.list()[0].sessions, 2);
        drop(sib);
        assert_eq!(reg.list()[0].sessions, 1);

        let signal = root.signal();
        assert!(reg.close(7, "closed by an operator"));
        assert_eq!(signal.requested().await, "closed by an operator");
        assert!(!reg.close(99, "x"));
        assert_eq!(reg.close_where("user deleted", |c| c.user == "b"), 1);
        assert_eq!(other.signal().requested().await, "user deleted");

        root.entry.published.fetch_add(3, Ordering::Relaxed);
        other.entry.delivered.fetch_add(2, Ordering::Relaxed);
        assert_eq!(reg.by_protocol(), vec![("native", 3, 2)]);
        drop(root);
        assert_eq!(reg.list().len(), 1);
        drop(other);
        assert!(reg.list().is_empty());
        // Closed connections still count.
        assert_eq!(reg.by_protocol(), vec![("native", 3, 2)]);
    }
}
