//! Options of the client and its consumers.

use std::time::Duration;

use junction_native::{RetryPolicy, StartPosition, DEFAULT_PORT, MIN_MAX_FRAME};

use crate::error::{Result, SdkError};

/// How to connect, authenticate, time out and reconnect. Build with [`ClientOptions::new`] (or
/// [`Default`]) and the builder methods, or set the public fields directly.
///
/// ```
/// use std::time::Duration;
/// use junction_sdk::ClientOptions;
///
/// let opts = ClientOptions::new("broker.local:5680")
///     .credentials("app", "secret")
///     .vhost("/prod")
///     .heartbeat(Duration::from_secs(10))
///     .request_timeout(Duration::from_secs(5));
/// assert_eq!(opts.username, "app");
/// ```
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `host:port` of the broker. Default `127.0.0.1:5680`.
    pub address: String,
    /// User name. Default `guest`.
    pub username: String,
    /// Password. Default `guest`.
    pub password: String,
    /// Virtual host. Default `/`.
    pub vhost: String,
    /// The client's identifier, shown in management. Default `junction-rs-<pid>`.
    pub client_id: String,
    /// Heartbeat interval proposed to the server (the server may pick a smaller one);
    /// [`Duration::ZERO`] proposes none. The client sends a heartbeat after this long without
    /// writing and treats the connection as dead after two intervals without reading.
    /// Default 30 s.
    pub heartbeat: Duration,
    /// The largest frame the client accepts; 0 lets the server decide. Default 0.
    pub max_frame: u32,
    /// How long a request (declare, confirm, pull, ...) may take, counted from the call.
    /// Default 30 s.
    pub request_timeout: Duration,
    /// How long connecting plus the `Hello`/`Welcome` handshake may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long [`Client::close`](crate::Client::close) waits for the server's `CloseOk`.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// Reconnection policy after the connection drops.
    pub reconnect: ReconnectOptions,
    /// How many frames may wait for the writer; senders wait when it is full. Default 4096.
    pub queue_capacity: usize,
    /// Default window of a [`Producer`](crate::Producer): most publish confirms in flight.
    /// Default 1024.
    pub publish_window: usize,
    /// Name servers (`host:port` of their HTTP listeners) to learn broker addresses from.
    /// Default none.
    pub name_servers: Vec<String>,
    /// With name servers: the broker group this client talks to. Every connection (the first
    /// and each reconnect) goes to the group's master of the moment, so the client follows a
    /// failover; `address` is only the fallback when no name server answers. Default none.
    pub broker_name: Option<String>,
    /// With `broker_name`: connect to a slave of the group when it has no master (reads
    /// only: a slave refuses publishes). Default false.
    pub read_from_slave: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            address: format!("127.0.0.1:{DEFAULT_PORT}"),
            username: "guest".into(),
            password: "guest".into(),
            vhost: "/".into(),
            client_id: format!("junction-rs-{}", std::process::id()),
            heartbeat: Duration::from_secs(30),
            max_frame: 0,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            reconnect: ReconnectOptions::default(),
            queue_capacity: 4096,
            publish_window: 1024,
            name_servers: Vec::new(),
            broker_name: None,
            read_from_slave: false,
        }
    }
}

impl ClientOptions {
    /// Default options for the broker at `address` (`host:port`).
    pub fn new(address: impl Into<String>) -> Self {
        ClientOptions {
            address: address.into(),
            ..Default::default()
        }
    }

    /// Sets the broker address (`host:port`).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Sets user name and password.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.username = username.into();
        self.password = password.into();
        self
    }

    /// Sets the virtual host.
    pub fn vhost(mut self, vhost: impl Into<String>) -> Self {
        self.vhost = vhost.into();
        self
    }

    /// Sets the client id.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets the proposed heartbeat interval ([`Duration::ZERO`] = none).
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Sets the largest frame accepted (0 = the server decides).
    pub fn max_frame(mut self, max_frame: u32) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Sets the request timeout.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the connect (and handshake) timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long [`Client::close`](crate::Client::close) waits for `CloseOk`.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets the reconnection policy.
    pub fn reconnect(mut self, reconnect: ReconnectOptions) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// Sets the capacity of the writer's queue.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// Sets the default publish window of producers.
    pub fn publish_window(mut self, window: usize) -> Self {
        self.publish_window = window;
        self
    }

    /// Sets the name servers to learn routes from (see [`Cluster`](crate::Cluster)).
    pub fn name_servers<I, S>(mut self, addrs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.name_servers = addrs.into_iter().map(Into::into).collect();
        self
    }

    /// Connects to the master of broker group `name`, found through the name servers at each
    /// (re)connect.
    pub fn broker(mut self, name: impl Into<String>) -> Self {
        self.broker_name = Some(name.into());
        self
    }

    /// Falls back to a slave of the broker group when it has no master (for consumers).
    pub fn read_from_slave(mut self, yes: bool) -> Self {
        self.read_from_slave = yes;
        self
    }

    /// Checks the options for values that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(SdkError::Config(what.to_string()));
        if self.address.is_empty() && (self.broker_name.is_none() || self.name_servers.is_empty()) {
            return bad("address is empty (and no broker group with name servers is set)");
        }
        if self.max_frame != 0 && self.max_frame < MIN_MAX_FRAME {
            return Err(SdkError::Config(format!(
                "max_frame {} is below the protocol minimum {MIN_MAX_FRAME}",
                self.max_frame
            )));
        }
        if self.heartbeat.as_millis() > u128::from(u32::MAX) {
            return bad("heartbeat is too long");
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("timeouts must be positive");
        }
        if self.queue_capacity == 0 || self.publish_window == 0 {
            return bad("queue_capacity and publish_window must be positive");
        }
        if self.reconnect.initial_backoff.is_zero()
            || self.reconnect.max_backoff < self.reconnect.initial_backoff
        {
            return bad("reconnect back-off: need 0 < initial_backoff <= max_backoff");
        }
        Ok(())
    }
}

/// What the client does when its connection drops: wait with exponential back-off (doubling
/// from `initial_backoff` up to `max_backoff`, each wait randomly shortened by up to half as
/// jitter), connect, authenticate and re-subscribe its consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectOptions {
    /// Reconnect at all. When false, a dropped connection closes the client. Default true.
    pub enabled: bool,
    /// The first wait. Default 100 ms.
    pub initial_backoff: Duration,
    /// The longest wait. Default 10 s.
    pub max_backoff: Duration,
    /// Give up (and close the client) after this many failed attempts in a row; `None` =
    /// never. Default `None`.
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            enabled: true,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            max_attempts: None,
        }
    }
}

impl ReconnectOptions {
    /// A policy that never reconnects.
    pub fn disabled() -> Self {
        ReconnectOptions {
            enabled: false,
            ..Default::default()
        }
    }

    /// The wait before reconnection attempt `attempt` (0-based), given a `jitter` in `[0, 1)`:
    /// `min(max_backoff, initial_backoff * 2^attempt) * (1 - jitter / 2)`.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let base = self.initial_backoff.as_secs_f64() * 2f64.powi(attempt.min(40) as i32);
        let capped = base.min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(capped * (1.0 - jitter.clamp(0.0, 1.0) / 2.0))
    }
}

/// What to consume and how: see [`Client::subscribe`](crate::Client::subscribe).
///
/// ```
/// use junction_sdk::{ConsumerOptions, StartPosition};
///
/// let opts = ConsumerOptions::new("orders")
///     .group("billing")
///     .prefetch(500)
///     .start(StartPosition::Earliest)
///     .exclusive_partitions(true);
/// assert_eq!(opts.prefetch, 500);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerOptions {
    /// The queue (or topic) to consume.
    pub queue: String,
    /// Consumer group; empty = the queue's default group. Default empty.
    pub group: String,
    /// Most unacknowledged deliveries in flight to this consumer; 0 = no limit. Default 100.
    pub prefetch: u32,
    /// Where the first subscription starts. Re-subscriptions after a reconnect always start at
    /// [`StartPosition::Committed`]. Default `Committed`.
    pub start: StartPosition,
    /// Each partition goes to one member of the group at a time (ordered consumption); the
    /// assignment changes as members come and go ([`Consumer::partitions`](crate::Consumer::partitions)).
    /// Default false.
    pub exclusive_partitions: bool,
    /// Deliveries count as acknowledged when sent; acks become no-ops. Default false.
    pub no_ack: bool,
    /// Tag expression (`a || b`): only messages with one of these tags are delivered, filtered
    /// on the broker. Empty = every message. Default empty.
    pub tags: String,
    /// SQL92 selector over the messages' headers (`region = 'eu' AND amount > 5`), evaluated
    /// on the broker. Empty = none. Default empty.
    pub sql: String,
    /// Ordered consumption: each partition goes to one member of the group, and its next
    /// message is delivered only after the previous one is acknowledged. Default false.
    pub ordered: bool,
    /// Broadcast consumption: every member of the group gets every message; the broker keeps
    /// each member's offsets under its client id
    /// ([`ClientOptions::client_id`]: give it a stable one). Default false.
    pub broadcast: bool,
    /// Retry failed messages with back-off, then dead-letter them. Default none (a `nack`
    /// with requeue redelivers at once).
    pub retry: Option<RetryPolicy>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            queue: String::new(),
            group: String::new(),
            prefetch: 100,
            start: StartPosition::Committed,
            exclusive_partitions: false,
            no_ack: false,
            tags: String::new(),
            sql: String::new(),
            ordered: false,
            broadcast: false,
            retry: None,
        }
    }
}

impl ConsumerOptions {
    /// Default options for consuming `queue`.
    pub fn new(queue: impl Into<String>) -> Self {
        ConsumerOptions {
            queue: queue.into(),
            ..Default::default()
        }
    }

    /// Sets the consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets the prefetch (0 = no limit).
    pub fn prefetch(mut self, prefetch: u32) -> Self {
        self.prefetch = prefetch;
        self
    }

    /// Sets where the first subscription starts.
    pub fn start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// Sets exclusive partition assignment within the group.
    pub fn exclusive_partitions(mut self, exclusive: bool) -> Self {
        self.exclusive_partitions = exclusive;
        self
    }

    /// Sets automatic acknowledgement.
    pub fn no_ack(mut self, no_ack: bool) -> Self {
        self.no_ack = no_ack;
        self
    }

    /// Only messages with one of these tags (`"created || paid"`; `"*"` = all).
    pub fn tags(mut self, expression: impl Into<String>) -> Self {
        self.tags = expression.into();
        self
    }

    /// Only messages whose headers match this SQL92 selector.
    pub fn sql(mut self, selector: impl Into<String>) -> Self {
        self.sql = selector.into();
        self
    }

    /// Sets ordered consumption (one unacknowledged message per partition).
    pub fn ordered(mut self, ordered: bool) -> Self {
        self.ordered = ordered;
        self
    }

    /// Sets broadcast consumption (every member gets every message).
    pub fn broadcast(mut self, broadcast: bool) -> Self {
        self.broadcast = broadcast;
        self
    }

    /// Sets the retry policy (see [`RetryPolicy`]).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let o = ClientOptions::default();
        assert_eq!(o.address, "127.0.0.1:5680");
        assert_eq!(
            (o.username.as_str(), o.password.as_str()),
            ("guest", "guest")
        );
        assert_eq!(o.vhost, "/");
        assert_eq!(o.heartbeat, Duration::from_secs(30));
        assert_eq!(o.request_timeout, Duration::from_secs(30));
        assert_eq!(o.reconnect.initial_backoff, Duration::from_millis(100));
        assert_eq!(o.reconnect.max_backoff, Duration::from_secs(10));
        assert!(o.validate().is_ok());
        let c = ConsumerOptions::new("q");
        assert_eq!((c.prefetch, c.start), (100, StartPosition::Committed));
    }

    #[test]
    fn validation() {
        assert!(ClientOptions::new("").validate().is_err());
        assert!(ClientOptions::default().max_frame(10).validate().is_err());
        assert!(ClientOptions::default()
            .publish_window(0)
            .validate()
            .is_err());
        let r = ReconnectOptions {
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        assert!(ClientOptions::default().reconnect(r).validate().is_err());
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let r = ReconnectOptions::default();
        assert_eq!(r.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(r.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(r.delay(3, 0.0), Duration::from_millis(800));
        assert_eq!(r.delay(10, 0.0), Duration::from_secs(10));
        assert_eq!(r.delay(u32::MAX, 0.0), Duration::from_secs(10));
        assert_eq!(r.delay(0, 1.0), Duration::from_millis(50));
        let d = r.delay(2, 0.5);
        assert!(d > Duration::from_millis(200) && d < Duration::from_millis(400));
    }
}
