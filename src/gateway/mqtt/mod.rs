//! The MQTT 3.1.1 and 5.0 gateway: devices on port 1883 (and MQTT over WebSocket).
//!
//! - `connection`: CONNECT/CONNACK (authentication, client ids, session takeover, keep
//!   alive), then one loop over the socket, the core session's events, the keep-alive timer
//!   and shutdown; PUBLISH in both directions with the QoS 1 and 2 flows; wills.
//! - `subscriptions`: SUBSCRIBE/UNSUBSCRIBE onto bindings of `amq.topic`, retained messages,
//!   shared subscriptions.
//! - `mapping`: PUBLISH <-> canonical message (`../shared/DESIGN.md` §5).
//!
//! An MQTT session is a core queue, `mqtt-session-<client id>`, bound to `amq.topic` once per
//! subscription with the subscription's options in the binding's arguments (so a persistent
//! session's subscriptions survive a restart with the bindings); a shared subscription
//! `$share/<group>/<filter>` is a queue `mqtt-share/<group>/<filter>` that every member
//! consumes, each message going to one of them. Retained messages are the core's.
//!
//! The gateway keeps no queues, routing or messages: only protocol state (packet
//! identifiers in flight, topic aliases, the QoS 2 identifiers awaiting PUBREL, and the
//! deliveries the client's receive maximum holds back).

mod connection;
mod mapping;
mod subscriptions;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use connection::serve;

/// Gateway settings (`[mqtt]` in the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Protocol name for the core and logs (`mqtt`, or `mqtt-ws` over WebSocket).
    pub protocol: &'static str,
    /// Virtual host of clients that do not name one (`vhost:user` user names do).
    pub vhost: String,
    /// Exchange MQTT topics live in.
    pub exchange: String,
    /// Credentials used for clients that send no user name (`None`: they are refused).
    pub anonymous: Option<(String, String)>,
    /// Largest packet accepted (CONNACK Maximum Packet Size).
    pub max_packet_size: u32,
    /// QoS 1 and 2 messages a client may have unacknowledged towards the broker (CONNACK
    /// Receive Maximum), and the broker's window towards 3.1.1 clients.
    pub receive_maximum: u16,
    /// Topic aliases a 5.0 client may use towards the broker (CONNACK Topic Alias Maximum).
    pub topic_alias_maximum: u16,
    /// Longest keep alive accepted, seconds (0 = any); a longer or zero one is replaced by
    /// this in the CONNACK's Server Keep Alive (5.0).
    pub max_keep_alive: u16,
    /// Longest session expiry interval granted, seconds.
    pub max_session_expiry: u32,
    /// Time allowed from accept to CONNECT.
    pub connect_timeout: Duration,
    /// Sessions of connected clients, for takeover, delayed wills and QoS 2 state.
    pub registry: Arc<Registry>,
    /// The user name from the client's verified TLS certificate, set per connection by a TLS
    /// listener with `[tls] cert_login` (None otherwise).
    pub cert_user: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            protocol: "mqtt",
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            anonymous: None,
            max_packet_size: 1 << 20,
            receive_maximum: 1024,
            topic_alias_maximum: 64,
            max_keep_alive: 0,
            max_session_expiry: u32::MAX,
            connect_timeout: Duration::from_secs(10),
            registry: Arc::new(Registry::default()),
            cert_user: None,
        }
    }
}

/// Protocol state of a persistent session between two connections (lost on a broker
/// restart, like the client's own in-memory state usually is).
#[derive(Debug, Default)]
pub(crate) struct Carry {
    /// QoS 2 packet identifiers received, PUBREC sent, PUBREL not yet received.
    pub(crate) inbound_qos2: HashSet<u16>,
    /// Outgoing QoS 2 packet identifiers whose PUBREL was sent and PUBCOMP not received.
    pub(crate) outbound_released: Vec<u16>,
    /// Packet identifiers of unacknowledged outgoing messages by (queue, partition, offset),
    /// so a redelivery after reconnecting reuses the identifier the client saw.
    pub(crate) outbound_ids: HashMap<(String, u16, u64), u16>,
}

struct Holder {
    conn: u64,
    kick: CancellationToken,
    gone: watch::Receiver<()>,
}

#[derive(Default)]
struct Slot {
    holder: Option<Holder>,
    /// A delayed will waiting to be published: (id, cancel).
    will: Option<(u64, CancellationToken)>,
    carry: Carry,
}

/// The MQTT sessions of the broker by (vhost, client id): who holds each one, its pending
/// delayed will, and its carried protocol state.
#[derive(Default)]
pub struct Registry {
    slots: Mutex<HashMap<(String, String), Slot>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// What the current holder of a client id keeps until it releases the id.
pub(crate) struct Claim {
    key: (String, String),
    conn: u64,
    /// Fires when another connection takes the session over.
    pub(crate) kick: CancellationToken,
    _gone: watch::Sender<()>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the client id: cancels a pending delayed will, asks a connection holding it to
    /// close (session takeover) and waits for it to let go (forcing it after `patience`).
    /// Returns the claim and the carried protocol state.
    pub(crate) async fn claim(
        &self,
        vhost: &str,
        client_id: &str,
        conn: u64,
        patience: Duration,
    ) -> (Claim, Carry) {
        let key = (vhost.to_string(), client_id.to_string());
        let kick = CancellationToken::new();
        let (gone_tx, gone_rx) = watch::channel(());
        let mut forced = false;
        loop {
            let wait = {
                let mut slots = self.lock();
                let slot = slots.entry(key.clone()).or_default();
                if let Some((_, w)) = slot.will.take() {
                    w.cancel();
                }
                match &slot.holder {
                    Some(h) if !forced => {
                        h.kick.cancel();
                        Some(h.gone.clone())
                    }
                    _ => {
                        slot.holder = Some(Holder {
                            conn,
                            kick: kick.clone(),
                            gone: gone_rx.clone(),
                        });
                        None
                    }
                }
            };
            let Some(mut gone) = wait else { break };
            if tokio::time::timeout(patience, gone.changed())
                .await
                .is_err()
            {
                forced = true;
            }
        }
        let carry = {
            let mut slots = self.lock();
            slots
                .get_mut(&key)
                .map(|s| std::mem::take(&mut s.carry))
                .unwrap_or_default()
        };
        (
            Claim {
                key,
                conn,
                kick,
                _gone: gone_tx,
            },
            carry,
        )
    }

    /// Lets go of a client id, leaving `carry` for the next connection of a session that
    /// lives on (`None`: the session ended).
    pub(crate) fn release(&self, claim: Claim, carry: Option<Carry>) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&claim.key) {
            if slot.holder.as_ref().is_some_and(|h| h.conn == claim.conn) {
                slot.holder = None;
                slot.carry = carry.unwrap_or_default();
                if slot.will.is_none() && slot.carry.is_empty() {
                    slots.remove(&claim.key);
                }
            }
        }
        drop(slots);
        drop(claim); // wakes a connection waiting to take over
    }

    /// Registers a delayed will; the returned token fires if the client comes back first.
    pub(crate) fn delay_will(&self, vhost: &str, client_id: &str, id: u64) -> CancellationToken {
        let token = CancellationToken::new();
        let mut slots = self.lock();
        let slot = slots
            .entry((vhost.to_string(), client_id.to_string()))
            .or_default();
        if let Some((_, old)) = slot.will.replace((id, token.clone())) {
            old.cancel();
        }
        token
    }

    /// Forgets a delayed will once published or cancelled.
    pub(crate) fn will_done(&self, vhost: &str, client_id: &str, id: u64) {
        let key = (vhost.to_string(), client_id.to_string());
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&key) {
            if slot.will.as_ref().is_some_and(|(w, _)| *w == id) {
                slot.will = None;
                if slot.holder.is_none() && slot.carry.is_empty() {
                    slots.remove(&key);
                }
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Carry {
    fn is_empty(&self) -> bool {
        self.inbound_qos2.is_empty()
            && self.outbound_released.is_empty()
            && self.outbound_ids.is_empty()
    }
}
