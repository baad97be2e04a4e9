//! Durable metadata: vhosts, users, permissions, durable exchanges, queues, bindings, limits and
//! policies.
//!
//! Kept in `meta.json` in the data directory, rewritten whole on every durable change (write to
//! a temporary file, fsync, rename, fsync the directory), so a crash leaves the old or the new
//! file, never half of one. Transient objects never reach it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::auth::{Permission, TopicPermission, User};
use super::error::CoreResult;
use super::message::Value;

/// Exchange types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeKind {
    /// Routing key equals the binding key.
    Direct,
    /// Every bound queue.
    Fanout,
    /// AMQP topic patterns (`*`, `#`).
    Topic,
    /// Header matching (`x-match` all/any).
    Headers,
}

impl ExchangeKind {
    /// Parses `direct`, `fanout`, `topic`, `headers`.
    pub fn parse(s: &str) -> Option<ExchangeKind> {
        Some(match s {
            "direct" => ExchangeKind::Direct,
            "fanout" => ExchangeKind::Fanout,
            "topic" => ExchangeKind::Topic,
            "headers" => ExchangeKind::Headers,
            _ => return None,
        })
    }
}

/// A declared exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeDef {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Type.
    pub kind: ExchangeKind,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last binding goes.
    pub auto_delete: bool,
    /// Clients cannot publish to it directly.
    pub internal: bool,
    /// Arguments (`alternate-exchange`, ...).
    #[serde(default)]
    pub args: Vec<(String, Value)>,
}

/// What happens when a queue is over its length limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready message.
    #[default]
    DropHead,
    /// Refuse the new message (publisher gets a negative confirm).
    RejectPublish,
}

/// The queue arguments the core implements (RabbitMQ's `x-` arguments).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueArgs {
    /// `x-message-ttl`: messages expire this long after they were stored.
    pub message_ttl_ms: Option<u64>,
    /// `x-expires`: the queue is deleted after being unused this long.
    pub expires_ms: Option<u64>,
    /// `x-max-length`: most ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: most bytes of ready message bodies.
    #[serde(default)]
    pub max_length_bytes: Option<u64>,
    /// `x-overflow`.
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<String>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<String>,
    /// `x-delivery-limit`: a message delivered more often goes to the dead-letter exchange.
    pub delivery_limit: Option<u32>,
}

/// A non-negative integer argument (or its text).
pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::I64(n) if *n >= 0 => Some(*n as u64),
        Value::U64(n) => Some(*n),
        Value::Str(s) => s.parse().ok(),
        _ => None,
    }
}

impl QueueArgs {
    /// Parses the `x-` arguments; unknown arguments are ignored, as RabbitMQ does.
    ///
    /// # Errors
    /// A message naming the argument whose value is invalid.
    pub fn parse(args: &[(String, Value)]) -> Result<QueueArgs, String> {
        let mut q = QueueArgs::default();
        for (k, v) in args {
            let num = || as_u64(v).ok_or_else(|| format!("invalid value for {k}"));
            let text = || {
                v.as_str_lossy()
                    .ok_or_else(|| format!("invalid value for {k}"))
            };
            match k.as_str() {
                "x-message-ttl" => q.message_ttl_ms = Some(num()?),
                "x-expires" => {
                    let n = num()?;
                    if n == 0 {
                        return Err("x-expires must be positive".into());
                    }
                    q.expires_ms = Some(n);
                }
                "x-max-length" => q.max_length = Some(num()?),
                "x-max-length-bytes" => q.max_length_bytes = Some(num()?),
                "x-overflow" => {
                    q.overflow = match text()?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        other => return Err(format!("unsupported x-overflow '{other}'")),
                    }
                }
                "x-dead-letter-exchange" => q.dead_letter_exchange = Some(text()?),
                "x-dead-letter-routing-key" => q.dead_letter_routing_key = Some(text()?),
                "x-delivery-limit" => {
                    q.delivery_limit = Some(u32::try_from(num()?).unwrap_or(u32::MAX))
                }
                _ => {}
            }
        }
        Ok(q)
    }
}

/// A declared queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueDef {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Store id.
    pub id: u32,
    /// Number of partitions (1 for an AMQP queue).
    pub partitions: u16,
    /// Survives a restart.
    pub durable: bool,
    /// Deleted when its last consumer goes.
    pub auto_delete: bool,
    /// Arguments as declared (for equivalence checks on re-declare).
    #[serde(default)]
    pub raw_args: Vec<(String, Value)>,
    /// Parsed arguments, as declared (for re-declares). What is in force, a policy's merged
    /// in, is the queue handle's (`policy::InForce`).
    #[serde(default)]
    pub args: QueueArgs,
}

/// A binding from an exchange to a queue or another exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingDef {
    /// Virtual host.
    pub vhost: String,
    /// Source exchange.
    pub source: String,
    /// Destination queue or exchange.
    pub destination: String,
    /// Whether the destination is an exchange.
    pub dest_is_exchange: bool,
    /// Binding key.
    pub routing_key: String,
    /// Arguments (headers exchange matching).
    #[serde(default)]
    pub args: Vec<(String, Value)>,
}

/// Everything durable.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Format version.
    pub version: u32,
    /// Next store id for a queue.
    pub next_queue_id: u32,
    /// Virtual hosts.
    pub vhosts: Vec<String>,
    /// Users.
    pub users: Vec<User>,
    /// Permissions.
    pub permissions: Vec<Permission>,
    /// Durable exchanges (the standard ones are not stored).
    pub exchanges: Vec<ExchangeDef>,
    /// Durable queues.
    pub queues: Vec<QueueDef>,
    /// Bindings between durable objects.
    pub bindings: Vec<BindingDef>,
    /// Topic permissions (RabbitMQ's topic authorisation).
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermission>,
    /// Per-vhost limits.
    #[serde(default)]
    pub vhost_limits: Vec<VhostLimits>,
    /// Per-user limits.
    #[serde(default)]
    pub user_limits: Vec<UserLimits>,
    /// Policies.
    #[serde(default)]
    pub policies: Vec<super::policy::Policy>,
}

/// Limits of one vhost (RabbitMQ's `rabbitmqctl set_vhost_limits`); `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VhostLimits {
    /// Virtual host.
    pub vhost: String,
    /// Most client connections to the vhost at once.
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// Most queues in the vhost.
    #[serde(default)]
    pub max_queues: Option<u64>,
}

/// Limits of one user (RabbitMQ's `rabbitmqctl set_user_limits`); `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserLimits {
    /// User name.
    pub user: String,
    /// Most connections of the user at once.
    #[serde(default)]
    pub max_connections: Option<u64>,
    /// Most AMQP channels of the user at once, over all its connections.
    #[serde(default)]
    pub max_channels: Option<u64>,
}

/// The metadata file.
#[derive(Debug)]
pub struct MetaFile {
    path: PathBuf,
    /// Bumped by every save: replication ships the metadata before any record appended after
    /// a change.
    saves: std::sync::atomic::AtomicU64,
}

impl MetaFile {
    /// The file in `dir`.
    pub fn new(dir: &Path) -> MetaFile {
        MetaFile {
            saves: std::sync::atomic::AtomicU64::new(0),
            path: dir.join("meta.json"),
        }
    }

    /// How many times it was saved since open.
    pub fn saves(&self) -> u64 {
        self.saves.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reads it (`None` if absent).
    ///
    /// # Errors
    /// I/O errors, or a file that does not parse.
    pub fn load(&self) -> CoreResult<Option<Metadata>> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e).into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces it atomically and durably.
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self, m: &Metadata) -> CoreResult<()> {
        self.saves.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        write_atomic(
            &self.path,
            &serde_json::to_vec_pretty(m).map_err(std::io::Error::other)?,
        )
    }
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> CoreResult<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
