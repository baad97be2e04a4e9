//! `conf/junction.toml` -> typed [`Config`], with `JUNCTION_*` environment overrides.
//!
//! Every key has a default (the values in `conf/junction.toml`); unknown keys are an error, so
//! a typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory (store, metadata, consumer offsets).
    pub data_dir: PathBuf,
    /// How long shutdown waits for connections to close before it closes the store anyway.
    pub shutdown_timeout_ms: u64,
    /// The store.
    pub store: StoreSection,
    /// The native protocol listener.
    pub native: ListenerSection,
    /// The AMQP 0-9-1 listener.
    pub amqp: AmqpSection,
    /// The MQTT 3.1.1 / 5.0 listener.
    pub mqtt: MqttSection,
    /// The STOMP listeners (TCP and WebSocket).
    pub stomp: StompSection,
    /// The HTTP admin API and metrics listener.
    pub http: HttpSection,
    /// Certificates and client verification for every TLS listener.
    pub tls: TlsSection,
    /// The user created on first start (full permissions on `/`, loopback only).
    pub default_user: DefaultUser,
    /// Connection limits.
    pub limits: Limits,
    /// Broker groups, replication, name servers and controllers (see docs/DEPLOYMENT.md).
    pub cluster: ClusterSection,
    /// Transactional messages' check-backs.
    pub transactions: TransactionsSection,
}

/// `[cluster]`: this broker's place in a cluster. Off by default (a single broker).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// Whether the broker registers with name servers and replicates.
    pub enabled: bool,
    /// Cluster name, reported to name servers.
    pub cluster_name: String,
    /// Broker group name, shared by a master and its slaves.
    pub broker_name: String,
    /// 0 for the master, > 0 for a slave (without controllers: fixed roles).
    pub broker_id: u64,
    /// `"async"`: a publish is confirmed after the master stores it; `"sync"`: only once an
    /// in-sync slave has stored it too.
    pub replication: String,
    /// Address of the replication (HA) listener, which slaves connect to.
    pub ha_listen: SocketAddr,
    /// Without controllers: the HA address of this slave's master.
    pub master_ha_address: String,
    /// Name servers to register with (`host:port` of their HTTP listeners).
    pub name_servers: Vec<String>,
    /// Controllers (`host:port`); when set, they decide which broker of the group is master.
    pub controllers: Vec<String>,
    /// Heartbeat period towards name servers and controllers, ms.
    pub heartbeat_interval_ms: u64,
    /// Sync replication: how long a publish waits for a slave before it is refused, ms.
    pub sync_timeout_ms: u64,
    /// A slave that has not acknowledged for this long leaves the in-sync set, ms.
    pub isr_timeout_ms: u64,
    /// Metadata (queues, bindings, offsets, retained) is sent to slaves when it changes and at
    /// least this often, ms.
    pub meta_sync_interval_ms: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            enabled: false,
            cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            replication: "async".into(),
            ha_listen: SocketAddr::from(([127, 0, 0, 1], 10912)),
            master_ha_address: String::new(),
            name_servers: Vec::new(),
            controllers: Vec::new(),
            heartbeat_interval_ms: 1000,
            sync_timeout_ms: 5000,
            isr_timeout_ms: 3000,
            meta_sync_interval_ms: 10_000,
        }
    }
}

/// `[transactions]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TransactionsSection {
    /// A half message without an outcome is first checked back at this age, ms.
    pub check_after_ms: u64,
    /// Then every this long, ms.
    pub check_interval_ms: u64,
    /// At most this many times; then `default_outcome` applies.
    pub max_checks: u32,
    /// `"rollback"` or `"commit"`.
    pub default_outcome: String,
}

impl Default for TransactionsSection {
    fn default() -> Self {
        TransactionsSection {
            check_after_ms: 6000,
            check_interval_ms: 60_000,
            max_checks: 15,
            default_outcome: "rollback".into(),
        }
    }
}

impl TransactionsSection {
    /// The core's settings.
    pub fn core(&self) -> crate::core::TxConfig {
        crate::core::TxConfig {
            check_after: Duration::from_millis(self.check_after_ms),
            check_interval: Duration::from_millis(self.check_interval_ms.max(1)),
            max_checks: self.max_checks,
            default_commit: self.default_outcome == "commit",
        }
    }
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `"sync"` (group commit: confirm after fsync) or `"async"` (periodic flush).
    pub flush: String,
    /// Async mode: flush interval.
    pub flush_interval_ms: u64,
    /// Sync mode: longest wait for a group-commit batch to fill.
    pub group_commit_linger_us: u64,
    /// Checkpoint / retention / disk-check interval.
    pub checkpoint_interval_ms: u64,
    /// CommitLog segment size in bytes.
    pub segment_size: u64,
    /// Largest record in bytes.
    pub max_record_size: u64,
    /// Fault in new segments' pages before use.
    pub preload: bool,
    /// Appends are refused while free disk space is below this many bytes.
    pub disk_low_watermark: u64,
    /// Remove segments older than this many seconds even if unconsumed (0 = never).
    pub retention_max_age_s: u64,
    /// Remove the oldest segments while the CommitLog is larger than this (0 = never).
    pub retention_max_bytes: u64,
}

/// A listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerSection {
    /// Whether it is started.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Whether the TLS listener is started (needs `[tls]`).
    pub tls_enabled: bool,
    /// TLS address to listen on.
    pub tls_listen: SocketAddr,
}

/// `[amqp]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpSection {
    /// Whether it is started.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest frame proposed and accepted (connection.tune frame-max), bytes.
    pub frame_max: u32,
    /// Highest channel number proposed (connection.tune channel-max).
    pub channel_max: u16,
    /// Heartbeat interval proposed, seconds (0 = none).
    pub heartbeat_s: u16,
    /// Whether the TLS listener (AMQPS) is started (needs `[tls]`).
    pub tls_enabled: bool,
    /// TLS address to listen on.
    pub tls_listen: SocketAddr,
}

impl Default for AmqpSection {
    fn default() -> Self {
        AmqpSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5672)),
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat_s: 60,
            tls_enabled: false,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 5671)),
        }
    }
}

/// `[mqtt]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSection {
    /// Whether it is started.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Clients without a user name connect as the default user (else they are refused).
    pub allow_anonymous: bool,
    /// Virtual host of clients that do not name one (`vhost:user` user names do).
    pub vhost: String,
    /// Exchange MQTT topics live in.
    pub exchange: String,
    /// Largest packet accepted, bytes.
    pub max_packet_size: u32,
    /// Unacknowledged QoS 1/2 publishes allowed per client, and the window towards clients.
    pub receive_maximum: u16,
    /// Topic aliases a 5.0 client may use.
    pub topic_alias_maximum: u16,
    /// Longest keep alive accepted, seconds (0 = any).
    pub max_keep_alive: u16,
    /// Longest session expiry interval granted, seconds (also the lifetime of a 3.1.1
    /// persistent session).
    pub max_session_expiry: u32,
    /// Whether the WebSocket listener (MQTT over WebSocket, subprotocol `mqtt`) is started.
    pub ws_enabled: bool,
    /// WebSocket address to listen on.
    pub ws_listen: SocketAddr,
    /// Whether the TLS listener (MQTTS) is started (needs `[tls]`).
    pub tls_enabled: bool,
    /// TLS address to listen on.
    pub tls_listen: SocketAddr,
    /// Whether the WebSocket-over-TLS listener (WSS) is started (needs `[tls]`).
    pub wss_enabled: bool,
    /// WSS address to listen on.
    pub wss_listen: SocketAddr,
}

impl Default for MqttSection {
    fn default() -> Self {
        MqttSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            allow_anonymous: true,
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            max_packet_size: 16 << 20,
            receive_maximum: 1024,
            topic_alias_maximum: 64,
            max_keep_alive: 0,
            max_session_expiry: u32::MAX,
            ws_enabled: true,
            ws_listen: SocketAddr::from(([127, 0, 0, 1], 15675)),
            tls_enabled: false,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 8883)),
            wss_enabled: false,
            wss_listen: SocketAddr::from(([127, 0, 0, 1], 15676)),
        }
    }
}

/// `[stomp]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StompSection {
    /// Whether the TCP listener is started.
    pub enabled: bool,
    /// TCP address to listen on.
    pub listen: SocketAddr,
    /// Whether the WebSocket listener (STOMP over WebSocket, paths `/ws` and `/`) is started.
    pub ws_enabled: bool,
    /// WebSocket address to listen on.
    pub ws_listen: SocketAddr,
    /// Largest frame accepted from a client (headers and body), bytes.
    pub max_frame: usize,
    /// Most headers in one frame.
    pub max_headers: usize,
    /// Longest header line, bytes.
    pub max_header_length: usize,
    /// Heart-beat interval offered both ways, ms: the server sends and expects heart-beats no
    /// more often than this (the client's slower value wins). 0 = no heart-beats.
    pub heartbeat_ms: u32,
    /// Whether the TLS listener is started (needs `[tls]`).
    pub tls_enabled: bool,
    /// TLS address to listen on.
    pub tls_listen: SocketAddr,
    /// Whether the WebSocket-over-TLS listener (WSS) is started (needs `[tls]`).
    pub wss_enabled: bool,
    /// WSS address to listen on.
    pub wss_listen: SocketAddr,
}

impl Default for StompSection {
    fn default() -> Self {
        StompSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 61613)),
            ws_enabled: true,
            ws_listen: SocketAddr::from(([127, 0, 0, 1], 15674)),
            max_frame: 17 << 20,
            max_headers: 1000,
            max_header_length: 8192,
            heartbeat_ms: 1000,
            tls_enabled: false,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 61614)),
            wss_enabled: false,
            wss_listen: SocketAddr::from(([127, 0, 0, 1], 15673)),
        }
    }
}

/// `[http]`: the admin API, `/metrics` and the OpenAPI document.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Whether it is started.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Whether the HTTPS listener is started (needs `[tls]`).
    pub tls_enabled: bool,
    /// HTTPS address to listen on.
    pub tls_listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 15672)),
            tls_enabled: false,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 15671)),
        }
    }
}

/// `[tls]`: the certificate every TLS listener presents, and how clients' certificates are
/// checked. A TLS listener is started only when its section says `tls_enabled = true` (or
/// `wss_enabled`), and then these files must be set.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// The server's certificate chain, PEM (leaf first).
    pub cert_file: PathBuf,
    /// The server's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates client certificates are verified against, PEM (`verify = "peer"`).
    pub ca_file: PathBuf,
    /// `"none"`: no client certificate is asked for. `"peer"`: one is asked for and, when
    /// given, must chain to `ca_file` (RabbitMQ's `verify_peer`).
    pub verify: String,
    /// With `verify = "peer"`: a client without a certificate is refused.
    pub fail_if_no_peer_cert: bool,
    /// A client with a verified certificate may log in as the certificate's subject CN
    /// without a password (RabbitMQ's `ssl_cert_login`, AMQP's EXTERNAL mechanism).
    pub cert_login: bool,
    /// Time allowed for a TLS handshake, ms.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert_file: PathBuf::new(),
            key_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            verify: "none".into(),
            fail_if_no_peer_cert: false,
            cert_login: false,
            handshake_timeout_ms: 10_000,
        }
    }
}

/// `[default_user]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DefaultUser {
    /// Name.
    pub name: String,
    /// Password.
    pub password: String,
}

/// `[limits]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest frame a client may send, in bytes.
    pub max_frame: u32,
    /// Most client connections at once (all listeners).
    pub max_connections: usize,
    /// Most connections in their handshake (accepted, not yet logged in) at once, all
    /// listeners (0 = no cap). Past it the oldest handshake older than a second is dropped
    /// to make room, or the new connection refused.
    pub max_handshakes: usize,
    /// Time a client has for its protocol handshake (CONNECT, Hello, the AMQP handshake), ms.
    pub handshake_timeout_ms: u64,
    /// Publishing is blocked while the broker's heap is above this fraction of RAM (0 = off).
    pub memory_high_watermark: f64,
    /// A connection whose client reads nothing of what is owed to it for this long is closed
    /// as a slow consumer, ms (0 = never).
    pub write_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            shutdown_timeout_ms: 5000,
            store: StoreSection::default(),
            native: ListenerSection::default(),
            amqp: AmqpSection::default(),
            mqtt: MqttSection::default(),
            stomp: StompSection::default(),
            http: HttpSection::default(),
            tls: TlsSection::default(),
            default_user: DefaultUser::default(),
            limits: Limits::default(),
            cluster: ClusterSection::default(),
            transactions: TransactionsSection::default(),
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            flush: "async".into(),
            flush_interval_ms: 500,
            group_commit_linger_us: 500,
            checkpoint_interval_ms: 1000,
            segment_size: 1 << 30,
            max_record_size: 17 << 20,
            preload: true,
            disk_low_watermark: 512 << 20,
            retention_max_age_s: 0,
            retention_max_bytes: 0,
        }
    }
}

impl Default for ListenerSection {
    /// The native listener's defaults (the only listener so far).
    fn default() -> Self {
        ListenerSection {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 5680)),
            tls_enabled: false,
            tls_listen: SocketAddr::from(([127, 0, 0, 1], 5681)),
        }
    }
}

impl Default for DefaultUser {
    fn default() -> Self {
        DefaultUser {
            name: "guest".into(),
            password: "guest".into(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame: 16 << 20,
            max_connections: 10_000,
            max_handshakes: 1_000,
            handshake_timeout_ms: 10_000,
            memory_high_watermark: 0.4,
            write_timeout_ms: 30_000,
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not valid (syntax, unknown key, wrong type).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An environment override is not valid.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Loads `path` (or the defaults if `None`), then applies `JUNCTION_*` overrides from `env`.
    ///
    /// An override names a key as `JUNCTION_<SECTION>_<KEY>` or `JUNCTION_<KEY>` for top-level
    /// keys, e.g. `JUNCTION_STORE_FLUSH=sync`, `JUNCTION_NATIVE_LISTEN=0.0.0.0:5680`,
    /// `JUNCTION_DATA_DIR=/var/lib/junction`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file or variable and what is wrong with it.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (mut table, path) = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.into(),
                    source,
                })?;
                let t: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
                    path: p.into(),
                    message: e.to_string(),
                })?;
                (t, p.to_path_buf())
            }
            None => (toml::Table::new(), PathBuf::from("<defaults>")),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("JUNCTION_") else {
                continue;
            };
            let rest = rest.to_ascii_lowercase();
            let parsed: toml::Value = value
                .parse::<i64>()
                .map(toml::Value::Integer)
                .or_else(|_| value.parse::<f64>().map(toml::Value::Float))
                .or_else(|_| value.parse::<bool>().map(toml::Value::Boolean))
                .unwrap_or_else(|_| toml::Value::String(value.clone()));
            let sections = [
                "store",
                "native",
                "amqp",
                "mqtt",
                "stomp",
                "http",
                "tls",
                "default_user",
                "limits",
                "cluster",
                "transactions",
            ];
            let section = sections.iter().find(|s| rest.starts_with(&format!("{s}_")));
            match section {
                Some(s) => {
                    let key = rest[s.len() + 1..].to_string();
                    let entry = table
                        .entry(s.to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    match entry {
                        toml::Value::Table(t) => {
                            t.insert(key, parsed);
                        }
                        _ => {
                            return Err(ConfigError::Env {
                                name,
                                message: format!("[{s}] is not a table"),
                            })
                        }
                    }
                }
                None => {
                    table.insert(rest, parsed);
                }
            }
        }
        let cfg: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?;
        if cfg.tls.verify != "none" && cfg.tls.verify != "peer" {
            return Err(ConfigError::Parse {
                path,
                message: format!(
                    "tls.verify must be \"none\" or \"peer\", not {:?}",
                    cfg.tls.verify
                ),
            });
        }
        if cfg.store.flush != "sync" && cfg.store.flush != "async" {
            return Err(ConfigError::Parse {
                path,
                message: format!(
                    "store.flush must be \"sync\" or \"async\", not {:?}",
                    cfg.store.flush
                ),
            });
        }
        let c = &cfg.cluster;
        let bad = |message: String| {
            Err(ConfigError::Parse {
                path: path.clone(),
                message,
            })
        };
        if c.replication != "sync" && c.replication != "async" {
            return bad(format!(
                "cluster.replication must be \"sync\" or \"async\", not {:?}",
                c.replication
            ));
        }
        if c.enabled
            && c.broker_id > 0
            && c.controllers.is_empty()
            && c.master_ha_address.is_empty()
        {
            return bad("a slave (cluster.broker_id > 0) needs cluster.master_ha_address or cluster.controllers".into());
        }
        if !["rollback", "commit"].contains(&cfg.transactions.default_outcome.as_str()) {
            return Err(ConfigError::Parse {
                path,
                message: format!(
                    "transactions.default_outcome must be \"rollback\" or \"commit\", not {:?}",
                    cfg.transactions.default_outcome
                ),
            });
        }
        Ok(cfg)
    }

    /// The store configuration for `dir`.
    pub fn store_config(&self, dir: &Path) -> junction_store::StoreConfig {
        let s = &self.store;
        let mut c = junction_store::StoreConfig::new(dir);
        c.flush = if s.flush == "sync" {
            junction_store::FlushMode::Sync
        } else {
            junction_store::FlushMode::Async
        };
        c.flush_interval = Duration::from_millis(s.flush_interval_ms.max(1));
        c.group_commit_linger = Duration::from_micros(s.group_commit_linger_us);
        c.checkpoint_interval = Duration::from_millis(s.checkpoint_interval_ms.max(1));
        c.segment_size = s.segment_size;
        c.max_record_size = s.max_record_size;
        c.preload = s.preload;
        c.disk_low_watermark = s.disk_low_watermark;
        c.retention.max_age =
            (s.retention_max_age_s > 0).then(|| Duration::from_secs(s.retention_max_age_s));
        c.retention.max_bytes = (s.retention_max_bytes > 0).then_some(s.retention_max_bytes);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_file_equals_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/junction.toml");
        assert_eq!(Config::load(Some(&path), []).unwrap(), Config::default());
    }

    #[test]
    fn the_cluster_examples_load_on_distinct_ports_and_directories() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
        let mut dirs = std::collections::HashSet::new();
        for (mode, sync) in [("2m-2s-async", false), ("2m-2s-sync", true)] {
            let mut ports = std::collections::HashSet::new();
            for f in ["broker-a", "broker-a-s", "broker-b", "broker-b-s"] {
                let path = root.join(mode).join(format!("{f}.toml"));
                let c = Config::load(Some(&path), []).unwrap();
                let k = &c.cluster;
                assert!(k.enabled && k.name_servers.len() == 2, "{f}");
                assert_eq!(k.replication == "sync", sync);
                assert_eq!(k.controllers.len(), if sync { 3 } else { 0 });
                for a in [
                    c.native.listen,
                    c.amqp.listen,
                    c.mqtt.listen,
                    c.mqtt.ws_listen,
                    c.stomp.listen,
                    c.stomp.ws_listen,
                    c.http.listen,
                    k.ha_listen,
                ] {
                    assert!(ports.insert(a.port()), "{mode}/{f}: port {a} used twice");
                }
                assert!(dirs.insert(c.data_dir.clone()));
            }
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[store]\nflsuh = \"sync\"\n").unwrap();
        let e = Config::load(Some(&p), []).unwrap_err().to_string();
        assert!(e.contains("flsuh"), "{e}");
        std::fs::write(&p, "[store]\nflush = \"sometimes\"\n").unwrap();
        assert!(Config::load(Some(&p), []).is_err());
    }

    #[test]
    fn environment_overrides() {
        let c = Config::load(
            None,
            [
                ("JUNCTION_STORE_FLUSH".to_string(), "sync".to_string()),
                (
                    "JUNCTION_NATIVE_LISTEN".to_string(),
                    "127.0.0.1:7000".to_string(),
                ),
                ("JUNCTION_DATA_DIR".to_string(), "/tmp/x".to_string()),
                (
                    "JUNCTION_LIMITS_MAX_CONNECTIONS".to_string(),
                    "7".to_string(),
                ),
                ("OTHER".to_string(), "ignored".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(c.store.flush, "sync");
        assert_eq!(c.native.listen.port(), 7000);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.limits.max_connections, 7);
    }
}
