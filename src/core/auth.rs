//! Users, password hashes and per-vhost permissions: one mechanism for every protocol.
//!
//! Password hashes use RabbitMQ's format (`rabbit_password_hashing_sha256`):
//! `base64(salt ++ sha256(salt ++ password))` with a 4-byte random salt, so users exported from
//! RabbitMQ definitions import as they are.
//!
//! Permissions are RabbitMQ's: per vhost, three regular expressions matched against resource
//! names: `configure` (declare/delete), `write` (publish to an exchange, bind a queue), `read`
//! (consume from a queue, bind from an exchange). An empty pattern matches nothing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hashes a password in RabbitMQ's SHA-256 format with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 4] = rand::random();
    hash_with_salt(&salt, password)
}

fn hash_with_salt(salt: &[u8], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut out = salt.to_vec();
    out.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// Checks `password` against a stored RabbitMQ-format hash, in constant time over the digest.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(stored) else {
        return false;
    };
    if raw.len() != 4 + 32 {
        return false;
    }
    let (salt, _) = raw.split_at(4);
    let Ok(expect) =
        base64::engine::general_purpose::STANDARD.decode(hash_with_salt(salt, password))
    else {
        return false;
    };
    raw.iter()
        .zip(&expect)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// How a client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// A password, checked against the stored hash.
    Password(&'a str),
    /// A client certificate the TLS listener verified against its CA, whose subject names the
    /// user (RabbitMQ's EXTERNAL mechanism, `ssl_cert_login`): the user must exist, no
    /// password is checked.
    Certificate,
}

/// A user as stored in the metadata.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    /// Name.
    pub name: String,
    /// RabbitMQ-format password hash.
    pub password_hash: String,
    /// Tags (`administrator`, ...), as in RabbitMQ.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Only from loopback addresses (true for the default `guest`, as RabbitMQ does).
    #[serde(default)]
    pub loopback_only: bool,
}

/// A user's permissions on one vhost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Permission {
    /// User name.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// Resources the user may declare and delete.
    pub configure: String,
    /// Resources the user may publish to.
    pub write: String,
    /// Resources the user may consume from.
    pub read: String,
}

/// A user's topic permission on one exchange of one vhost (RabbitMQ's topic authorisation):
/// regular expressions on routing keys. `write` is matched against the routing key of each
/// publish to the exchange, `read` against the binding key of each binding from it (an MQTT
/// or STOMP subscription, an AMQP queue.bind). `{username}`, `{vhost}` and `{client_id}` in a
/// pattern stand for the connection's own (regex-escaped). A user with no topic permission on
/// an exchange is not restricted there.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicPermission {
    /// User name.
    pub user: String,
    /// Virtual host.
    pub vhost: String,
    /// Exchange the patterns apply to (`amq.topic` for MQTT and STOMP `/topic/`).
    pub exchange: String,
    /// Routing keys the user may publish with.
    pub write: String,
    /// Binding keys the user may bind (subscribe) with.
    pub read: String,
}

/// What a permission check is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Declare or delete.
    Configure,
    /// Publish to / bind to.
    Write,
    /// Consume from / bind from.
    Read,
}

/// Compiled permissions of one user on one vhost. Cheap to build and to clone: every session
/// has one, and a pattern is compiled once per process (a compiled regular expression costs
/// tens of KiB, which per connection would dominate an idle connection's memory).
#[derive(Debug, Clone)]
pub struct Grants {
    configure: Rule,
    write: Rule,
    read: Rule,
    /// Topic rules by exchange; empty (and free) for most users.
    topics: Arc<[TopicRule]>,
}

#[derive(Debug)]
struct TopicRule {
    exchange: String,
    write: Rule,
    read: Rule,
}

#[derive(Debug, Clone)]
enum Rule {
    /// The empty pattern: nothing.
    Nothing,
    /// `.*`: everything, without running a regular expression.
    Everything,
    /// Anything else, shared by every session with the same pattern. Searched in the name,
    /// not matched against all of it, as RabbitMQ does: `^app\.` anchors explicitly.
    Pattern(Arc<Regex>),
}

fn compile(p: &str) -> Rule {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    match p {
        "" => return Rule::Nothing,
        ".*" => return Rule::Everything,
        _ => {}
    }
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(re) = cache.get(p) {
        return Rule::Pattern(Arc::clone(re));
    }
    match Regex::new(p) {
        Ok(re) => {
            let re = Arc::new(re);
            cache.insert(p.to_string(), Arc::clone(&re));
            Rule::Pattern(re)
        }
        // An invalid pattern grants nothing.
        Err(_) => Rule::Nothing,
    }
}

impl Grants {
    /// Compiles a permission (an invalid pattern grants nothing).
    pub fn new(p: &Permission) -> Grants {
        Grants {
            configure: compile(&p.configure),
            write: compile(&p.write),
            read: compile(&p.read),
            topics: Arc::new([]),
        }
    }

    /// Adds the topic permissions of this user and vhost (others in `perms` are skipped), with
    /// `{username}`, `{vhost}` and `{client_id}` expanded.
    #[must_use]
    pub fn with_topics(
        mut self,
        perms: &[TopicPermission],
        user: &str,
        vhost: &str,
        client_id: &str,
    ) -> Grants {
        let expand = |p: &str| {
            p.replace("{username}", &regex::escape(user))
                .replace("{vhost}", &regex::escape(vhost))
                .replace("{client_id}", &regex::escape(client_id))
        };
        self.topics = perms
            .iter()
            .filter(|t| t.user == user && t.vhost == vhost)
            .map(|t| TopicRule {
                exchange: t.exchange.clone(),
                write: compile(&expand(&t.write)),
                read: compile(&expand(&t.read)),
            })
            .collect();
        self
    }

    /// Whether `access` (`Write`: publish, `Read`: bind) with `routing_key` on `exchange` is
    /// allowed by the topic permissions (always, where there are none for the exchange).
    pub fn allows_topic(&self, access: Access, exchange: &str, routing_key: &str) -> bool {
        self.topics
            .iter()
            .filter(|t| t.exchange == exchange)
            .all(|t| {
                let rule = match access {
                    Access::Write => &t.write,
                    Access::Read | Access::Configure => &t.read,
                };
                match rule {
                    Rule::Nothing => false,
                    Rule::Everything => true,
                    Rule::Pattern(re) => re.is_match(routing_key),
                }
            })
    }

    /// Whether any topic permission applies to this session.
    pub fn has_topic_rules(&self) -> bool {
        !self.topics.is_empty()
    }

    /// Whether `access` to the resource `name` is allowed.
    pub fn allows(&self, access: Access, name: &str) -> bool {
        let rule = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        match rule {
            Rule::Nothing => false,
            Rule::Everything => true,
            Rule::Pattern(re) => re.is_match(name),
        }
    }
}

/// Whether a peer address counts as loopback (for `loopback_only` users).
pub fn is_loopback(addr: Option<IpAddr>) -> bool {
    match addr {
        None => true, // in-process sessions
        Some(IpAddr::V4(a)) => a.is_loopback(),
        Some(IpAddr::V6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_hash_format() {
        // From RabbitMQ's docs: salt 908D C60A, password "test12".
        let stored = hash_with_salt(&[0x90, 0x8D, 0xC6, 0x0A], "test12");
        assert!(verify_password(&stored, "test12"));
        assert!(!verify_password(&stored, "test13"));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&stored)
            .unwrap();
        assert_eq!(&raw[..4], &[0x90, 0x8D, 0xC6, 0x0A]);
        assert_eq!(raw.len(), 36);
        assert!(verify_password(&hash_password("guest"), "guest"));
        assert!(!verify_password("not base64!", "x"));
    }

    #[test]
    fn topic_rules_expand_variables_and_apply_per_exchange() {
        let perm = |exchange: &str, write: &str, read: &str| TopicPermission {
            user: "dev-1".into(),
            vhost: "/".into(),
            exchange: exchange.into(),
            write: write.into(),
            read: read.into(),
        };
        let g = Grants::new(&Permission {
            user: "dev-1".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .with_topics(
            &[
                perm(
                    "amq.topic",
                    "^devices\\.{username}\\.",
                    "^devices\\.{client_id}\\.",
                ),
                TopicPermission {
                    user: "other".into(),
                    ..perm("amq.topic", "", "")
                },
            ],
            "dev-1",
            "/",
            "c.1",
        );
        assert!(g.has_topic_rules());
        assert!(g.allows_topic(Access::Write, "amq.topic", "devices.dev-1.temp"));
        assert!(!g.allows_topic(Access::Write, "amq.topic", "devices.dev-2.temp"));
        // The client id is escaped: its dot is a dot, not "any character".
        assert!(g.allows_topic(Access::Read, "amq.topic", "devices.c.1.#"));
        assert!(!g.allows_topic(Access::Read, "amq.topic", "devices.cx1.#"));
        // Another exchange has no rule: not restricted.
        assert!(g.allows_topic(Access::Write, "logs", "anything"));
    }

    #[test]
    fn permission_patterns() {
        let g = Grants::new(&Permission {
            user: "u".into(),
            vhost: "/".into(),
            configure: "".into(),
            write: "^amq\\.topic$|^orders\\.".into(),
            read: ".*".into(),
        });
        assert!(!g.allows(Access::Configure, "q"));
        assert!(g.allows(Access::Write, "orders.eu"));
        assert!(!g.allows(Access::Write, "xorders.eu"));
        assert!(g.allows(Access::Read, "anything"));
        // As in RabbitMQ, a pattern is searched for: without anchors it matches inside names.
        let loose = Grants::new(&Permission {
            user: "u".into(),
            vhost: "/".into(),
            configure: "tmp".into(),
            write: "".into(),
            read: "".into(),
        });
        assert!(loose.allows(Access::Configure, "app.tmp.1"));
        assert!(!loose.allows(Access::Configure, "app.q"));
    }
}
