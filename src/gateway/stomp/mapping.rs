//! STOMP headers <-> the core's canonical [`Properties`] (`../shared/DESIGN.md` §5).
//!
//! | STOMP header (SEND / MESSAGE) | canonical |
//! |---|---|
//! | `content-type` | content_type |
//! | `content-encoding` | content_encoding |
//! | `correlation-id` | correlation_id |
//! | `reply-to` | reply_to (after `/temp-queue/` rewriting) |
//! | `message-id` or `amqp-message-id` on SEND; `amqp-message-id` on MESSAGE | message_id |
//! | `expiration` (ms from now, as RabbitMQ) or `expires` (epoch ms, as ActiveMQ; 0 = never) | ttl_ms |
//! | `priority` | priority |
//! | `persistent:true` | persistent |
//! | `timestamp` (seconds, as AMQP) | timestamp_ms |
//! | `user-id` | user_id (must be the logged-in user) |
//! | any other header | headers (text), in order, first of each name |
//!
//! A MESSAGE's own `message-id` is the broker's delivery id (what 1.0/1.1 clients ACK), so the
//! canonical message id travels as `amqp-message-id`, as RabbitMQ does.

use bytes::Bytes;
use junction_stomp::Frame;

use crate::core::{Properties, Value};

/// Headers of a SEND frame that steer the frame itself and never become message headers.
const FRAME_HEADERS: [&str; 4] = ["destination", "receipt", "transaction", "content-length"];

/// Headers a MESSAGE sets itself; message headers with these names are not copied.
const RESERVED_OUT: [&str; 6] = [
    "destination",
    "subscription",
    "message-id",
    "ack",
    "content-length",
    "redelivered",
];

/// A SEND header whose value cannot be taken.
#[derive(Debug, thiserror::Error)]
#[error("invalid {name} header {value:?}: {why}")]
pub struct BadHeader {
    /// Header name.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong.
    pub why: &'static str,
}

fn bad(name: &'static str, value: &str, why: &'static str) -> BadHeader {
    BadHeader {
        name,
        value: value.to_string(),
        why,
    }
}

/// The canonical properties of a SEND frame. `reply_to` is the header as sent; the connection
/// rewrites `/temp-queue/` values. `now_ms` is used to turn `expires` into a TTL.
///
/// # Errors
/// [`BadHeader`] for a non-numeric `expiration`, `expires`, `priority` or `timestamp`.
pub fn properties_in(f: &Frame, now_ms: i64) -> Result<Properties, BadHeader> {
    let mut p = Properties::default();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in &f.headers {
        let name = name.as_str();
        // Repeated headers: the first one wins (STOMP 1.2).
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        match name {
            _ if FRAME_HEADERS.contains(&name) => {}
            "content-type" => p.content_type = Some(value.clone()),
            "content-encoding" => p.content_encoding = Some(value.clone()),
            "correlation-id" => p.correlation_id = Some(Bytes::from(value.clone())),
            "reply-to" => p.reply_to = Some(value.clone()),
            "message-id" | "amqp-message-id" => {
                if p.message_id.is_none() {
                    p.message_id = Some(value.clone());
                }
            }
            "expiration" => {
                let ms = value
                    .parse::<u64>()
                    .map_err(|_| bad("expiration", value, "expected milliseconds"))?;
                p.ttl_ms = Some(ms);
            }
            "expires" => {
                let at = value
                    .parse::<i64>()
                    .map_err(|_| bad("expires", value, "expected epoch milliseconds"))?;
                if at > 0 && p.ttl_ms.is_none() {
                    p.ttl_ms = Some(u64::try_from(at.saturating_sub(now_ms)).unwrap_or(0));
                }
            }
            "priority" => {
                p.priority = Some(
                    value
                        .parse::<u8>()
                        .map_err(|_| bad("priority", value, "expected 0-255"))?,
                )
            }
            "persistent" => p.persistent = value.eq_ignore_ascii_case("true"),
            "timestamp" => {
                let s = value
                    .parse::<i64>()
                    .map_err(|_| bad("timestamp", value, "expected seconds"))?;
                p.timestamp_ms = Some(s.saturating_mul(1000));
            }
            "user-id" => p.user_id = Some(value.clone()),
            _ => p
                .headers
                .push((name.to_string(), Value::Str(value.clone()))),
        }
    }
    Ok(p)
}

/// Appends the MESSAGE headers for `p` (after the frame's own `destination`, `subscription`,
/// `message-id`, ... which the caller sets first).
pub fn properties_out(p: &Properties, f: &mut Frame) {
    if let Some(v) = &p.content_type {
        f.push_header("content-type", v.as_str());
    }
    if let Some(v) = &p.content_encoding {
        f.push_header("content-encoding", v.as_str());
    }
    if let Some(v) = &p.correlation_id {
        f.push_header("correlation-id", String::from_utf8_lossy(v));
    }
    if let Some(v) = &p.reply_to {
        f.push_header("reply-to", v.as_str());
    }
    if let Some(v) = &p.message_id {
        f.push_header("amqp-message-id", v.as_str());
    }
    if let Some(v) = p.ttl_ms {
        f.push_header("expiration", v.to_string());
    }
    if let Some(v) = p.priority {
        f.push_header("priority", v.to_string());
    }
    if p.persistent {
        f.push_header("persistent", "true");
    }
    if let Some(v) = p.timestamp_ms {
        f.push_header("timestamp", (v / 1000).to_string());
    }
    if let Some(v) = &p.user_id {
        f.push_header("user-id", v.as_str());
    }
    for (name, value) in &p.headers {
        if name.is_empty() || RESERVED_OUT.contains(&name.as_str()) || f.header(name).is_some() {
            continue;
        }
        f.push_header(name.as_str(), value_text(value));
    }
}

/// A header value as STOMP text.
fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Null => String::new(),
        Value::F64(x) => x.to_string(),
        Value::Timestamp(t) => t.to_string(),
        other => other.as_str_lossy().unwrap_or_else(|| format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_stomp::Command;

    #[test]
    fn send_headers_map_to_properties() {
        let f = Frame::send("/queue/a", "x")
            .with_header("content-type", "text/plain")
            .with_header("correlation-id", "c1")
            .with_header("reply-to", "/queue/r")
            .with_header("message-id", "m1")
            .with_header("expiration", "5000")
            .with_header("priority", "7")
            .with_header("persistent", "true")
            .with_header("receipt", "r1")
            .with_header("x-custom", "first")
            .with_header("x-custom", "second");
        let p = properties_in(&f, 0).unwrap();
        assert_eq!(p.content_type.as_deref(), Some("text/plain"));
        assert_eq!(p.correlation_id.as_deref(), Some(&b"c1"[..]));
        assert_eq!(p.reply_to.as_deref(), Some("/queue/r"));
        assert_eq!(p.message_id.as_deref(), Some("m1"));
        assert_eq!(p.ttl_ms, Some(5000));
        assert_eq!(p.priority, Some(7));
        assert!(p.persistent);
        assert_eq!(
            p.headers,
            vec![("x-custom".to_string(), Value::Str("first".into()))]
        );
    }

    #[test]
    fn expires_is_absolute() {
        let f = Frame::send("/queue/a", "").with_header("expires", "10500");
        assert_eq!(properties_in(&f, 10_000).unwrap().ttl_ms, Some(500));
        let f = Frame::send("/queue/a", "").with_header("expires", "0");
        assert_eq!(properties_in(&f, 10_000).unwrap().ttl_ms, None);
        let f = Frame::send("/queue/a", "").with_header("priority", "high");
        assert!(properties_in(&f, 0).is_err());
    }

    #[test]
    fn properties_map_to_message_headers() {
        let p = Properties {
            message_id: Some("m1".into()),
            correlation_id: Some(Bytes::from_static(b"c")),
            persistent: true,
            headers: vec![
                ("x-a".into(), Value::I64(5)),
                ("destination".into(), Value::Str("evil".into())),
            ],
            ..Properties::default()
        };
        let mut f = Frame::new(Command::Message).with_header("destination", "/queue/a");
        properties_out(&p, &mut f);
        assert_eq!(f.header("amqp-message-id"), Some("m1"));
        assert_eq!(f.header("correlation-id"), Some("c"));
        assert_eq!(f.header("persistent"), Some("true"));
        assert_eq!(f.header("x-a"), Some("5"));
        assert_eq!(f.header_values("destination").count(), 1);
    }
}
