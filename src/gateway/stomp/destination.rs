//! STOMP destinations, following RabbitMQ's STOMP plugin (`../shared/DESIGN.md` §4).
//!
//! | destination | SEND publishes to | SUBSCRIBE consumes from |
//! |---|---|---|
//! | `/queue/q` | default exchange, key `q` (declares durable `q` if missing) | `q` (declared if missing) |
//! | `/amq/queue/q` | default exchange, key `q` | existing queue `q` only |
//! | `/topic/k` | `amq.topic`, key `k` | a private queue bound to `amq.topic` with `k` |
//! | `/exchange/x/k` | exchange `x`, key `k` (`/exchange/x`: key empty) | a private queue bound to `x` with `k` |
//! | `/temp-queue/t` | (only as `reply-to`, see below) | this connection's temporary queue `t` |
//! | `/reply-queue/q` | default exchange, key `q` | — |
//!
//! `reply-to:/temp-queue/t` on a SEND creates (once per connection) an exclusive, auto-delete
//! queue with a generated name, subscribes the connection to it, and rewrites the header to
//! `/reply-queue/<generated name>`, which anyone can SEND to.
//!
//! Names are percent-decoded (`/exchange/my%2Fex/k`), as RabbitMQ does. This module only
//! parses and formats; the connection declares, binds and publishes.

use std::fmt;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `/queue/<name>`.
    Queue(String),
    /// `/amq/queue/<name>`: a queue that must already exist.
    AmqQueue(String),
    /// `/topic/<routing key>` on `amq.topic`.
    Topic(String),
    /// `/exchange/<exchange>[/<routing key>]`.
    Exchange {
        /// Exchange name.
        exchange: String,
        /// Routing key (empty when absent).
        key: String,
    },
    /// `/temp-queue/<name>`: a per-connection temporary queue.
    TempQueue(String),
    /// `/reply-queue/<queue>`: a temporary queue named by a rewritten `reply-to`.
    ReplyQueue(String),
}

/// A destination that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadDestination {
    /// No known prefix (`/nowhere/x`).
    #[error("unknown destination {0:?}: expected /queue/, /topic/, /exchange/, /amq/queue/, /temp-queue/ or /reply-queue/")]
    Unknown(String),
    /// A known prefix with a malformed rest (`/queue/a/b`, `/topic/`, `/exchange//k`): the kind
    /// and the rest after the prefix word, as RabbitMQ reports them.
    #[error("'{rest}' is not a valid {kind} destination")]
    Invalid {
        /// `queue`, `topic`, `exchange`, ...
        kind: &'static str,
        /// What followed `/<kind>`.
        rest: String,
    },
}

/// The exchange `/topic/` destinations use.
pub const TOPIC_EXCHANGE: &str = "amq.topic";

impl Destination {
    /// Parses a `destination` header value.
    ///
    /// # Errors
    /// [`BadDestination`] for an unknown prefix, an empty name or a bad percent-escape.
    pub fn parse(s: &str) -> Result<Destination, BadDestination> {
        const KINDS: [(&str, &str); 6] = [
            ("/amq/queue", "amq/queue"),
            ("/temp-queue", "temp-queue"),
            ("/reply-queue", "reply-queue"),
            ("/queue", "queue"),
            ("/topic", "topic"),
            ("/exchange", "exchange"),
        ];
        let Some((kind, rest)) = KINDS.iter().find_map(|(prefix, kind)| {
            let rest = s.strip_prefix(prefix)?;
            (rest.is_empty() || rest.starts_with('/')).then_some((*kind, rest))
        }) else {
            return Err(BadDestination::Unknown(s.to_string()));
        };
        let invalid = || BadDestination::Invalid {
            kind,
            rest: rest.to_string(),
        };
        // One segment (two for /exchange/), none empty, each percent-decoded.
        let segment = |t: &str| -> Result<String, BadDestination> {
            if t.is_empty() {
                return Err(invalid());
            }
            percent_decode(t).ok_or_else(invalid)
        };
        let body = rest.strip_prefix('/').ok_or_else(invalid)?;
        if kind == "exchange" {
            let (x, key) = body.split_once('/').unwrap_or((body, ""));
            if key.contains('/') {
                return Err(invalid());
            }
            let key = percent_decode(key).ok_or_else(invalid)?;
            return Ok(Destination::Exchange {
                exchange: segment(x)?,
                key,
            });
        }
        if body.contains('/') {
            return Err(invalid());
        }
        let name = segment(body)?;
        Ok(match kind {
            "queue" => Destination::Queue(name),
            "amq/queue" => Destination::AmqQueue(name),
            "topic" => Destination::Topic(name),
            "temp-queue" => Destination::TempQueue(name),
            _ => Destination::ReplyQueue(name),
        })
    }

    /// Where a SEND to this destination is published: `(exchange, routing key)`. `None` for
    /// `/temp-queue/` (the connection resolves it to its generated queue).
    pub fn publish_target(&self) -> Option<(&str, &str)> {
        match self {
            Destination::Queue(q) | Destination::AmqQueue(q) | Destination::ReplyQueue(q) => {
                Some(("", q))
            }
            Destination::Topic(k) => Some((TOPIC_EXCHANGE, k)),
            Destination::Exchange { exchange, key } => Some((exchange, key)),
            Destination::TempQueue(_) => None,
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Queue(q) => write!(f, "/queue/{}", percent_encode(q)),
            Destination::AmqQueue(q) => write!(f, "/amq/queue/{}", percent_encode(q)),
            Destination::Topic(k) => write!(f, "/topic/{}", percent_encode(k)),
            Destination::TempQueue(t) => write!(f, "/temp-queue/{}", percent_encode(t)),
            Destination::ReplyQueue(q) => write!(f, "/reply-queue/{}", percent_encode(q)),
            Destination::Exchange { exchange, key } if key.is_empty() => {
                write!(f, "/exchange/{}", percent_encode(exchange))
            }
            Destination::Exchange { exchange, key } => {
                write!(f, "/exchange/{}/{}", percent_encode(exchange), key)
            }
        }
    }
}

/// The destination a MESSAGE reports for a message published to `exchange` with `key`:
/// `/queue/` for the default exchange, `/topic/` for `amq.topic`, else `/exchange/x/k`.
pub fn for_published(exchange: &str, key: &str) -> String {
    match exchange {
        "" => Destination::Queue(key.to_string()).to_string(),
        TOPIC_EXCHANGE => Destination::Topic(key.to_string()).to_string(),
        x => Destination::Exchange {
            exchange: x.to_string(),
            key: key.to_string(),
        }
        .to_string(),
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Escapes `/` and `%` so that a name reads back as one path segment.
fn percent_encode(s: &str) -> String {
    if !s.contains(['/', '%']) {
        return s.to_string();
    }
    s.replace('%', "%25").replace('/', "%2F")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        let q = |s: &str| Destination::Queue(s.into());
        assert_eq!(Destination::parse("/queue/a"), Ok(q("a")));
        assert_eq!(Destination::parse("/queue/a%2Fb"), Ok(q("a/b")));
        assert_eq!(
            Destination::parse("/amq/queue/x"),
            Ok(Destination::AmqQueue("x".into()))
        );
        assert_eq!(
            Destination::parse("/topic/a.b.*"),
            Ok(Destination::Topic("a.b.*".into()))
        );
        assert_eq!(
            Destination::parse("/exchange/amq.direct/k.x"),
            Ok(Destination::Exchange {
                exchange: "amq.direct".into(),
                key: "k.x".into()
            })
        );
        assert_eq!(
            Destination::parse("/exchange/f"),
            Ok(Destination::Exchange {
                exchange: "f".into(),
                key: "".into()
            })
        );
        assert_eq!(
            Destination::parse("/exchange/my%2Fex/k"),
            Ok(Destination::Exchange {
                exchange: "my/ex".into(),
                key: "k".into()
            })
        );
        assert_eq!(
            Destination::parse("/temp-queue/r"),
            Ok(Destination::TempQueue("r".into()))
        );
        assert_eq!(
            Destination::parse("/reply-queue/amq.gen-1"),
            Ok(Destination::ReplyQueue("amq.gen-1".into()))
        );
        for bad in [
            "",
            "q",
            "/queue/",
            "/queue",
            "/topic/",
            "/nope/x",
            "/queue/%zz",
            "/queue/%f",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_back() {
        for s in [
            "/queue/a",
            "/topic/a.b",
            "/exchange/x/k",
            "/exchange/x",
            "/amq/queue/q",
            "/exchange/my%2Fex/k",
        ] {
            assert_eq!(Destination::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(for_published("", "q"), "/queue/q");
        assert_eq!(for_published("amq.topic", "a.b"), "/topic/a.b");
        assert_eq!(for_published("x", "k"), "/exchange/x/k");
        assert_eq!(for_published("x", ""), "/exchange/x");
    }
}
