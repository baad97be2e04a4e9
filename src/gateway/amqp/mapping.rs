//! AMQP basic properties and field tables <-> the core's canonical [`Properties`] and
//! [`Value`]s (`../shared/DESIGN.md` §5).
//!
//! An AMQP publisher's content header is kept raw in [`Properties::amqp_header`] and re-sent
//! unchanged to AMQP consumers; messages from other protocols get a header built from their
//! canonical properties.

use bytes::Bytes;
use junction_amqp::amq_protocol::types::{
    AMQPValue, FieldArray, FieldTable, LongString, ShortString,
};
use junction_amqp::{encode_header_from_properties, short_string_lossy, BasicProperties};

use crate::core::{Properties, Value};

/// Header names carrying the AMQP properties the canonical model has no field for.
pub const TYPE_HEADER: &str = "amqp-type";
/// See [`TYPE_HEADER`].
pub const APP_ID_HEADER: &str = "amqp-app-id";
/// See [`TYPE_HEADER`].
pub const CLUSTER_ID_HEADER: &str = "amqp-cluster-id";

/// An AMQP field value as a core value (nested tables and arrays kept).
pub fn value_in(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => Value::I64(i64::from(*n)),
        AMQPValue::ShortShortUInt(n) => Value::I64(i64::from(*n)),
        AMQPValue::ShortInt(n) => Value::I64(i64::from(*n)),
        AMQPValue::ShortUInt(n) => Value::I64(i64::from(*n)),
        AMQPValue::LongInt(n) => Value::I64(i64::from(*n)),
        AMQPValue::LongUInt(n) => Value::I64(i64::from(*n)),
        AMQPValue::LongLongInt(n) => Value::I64(*n),
        AMQPValue::Float(f) => Value::F64(f64::from(*f)),
        AMQPValue::Double(f) => Value::F64(*f),
        AMQPValue::DecimalValue(d) => {
            Value::F64(f64::from(d.value) / 10f64.powi(i32::from(d.scale)))
        }
        AMQPValue::ShortString(s) => Value::Str(s.as_str().to_string()),
        AMQPValue::LongString(s) => bytes_value(s.as_bytes()),
        AMQPValue::FieldArray(a) => Value::List(a.as_slice().iter().map(value_in).collect()),
        AMQPValue::Timestamp(t) => Value::Timestamp(*t),
        AMQPValue::FieldTable(t) => Value::Table(table_in(t)),
        AMQPValue::ByteArray(b) => Value::Bytes(Bytes::copy_from_slice(b.as_slice())),
        AMQPValue::Void => Value::Null,
    }
}

fn bytes_value(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::Str(s.to_string()),
        Err(_) => Value::Bytes(Bytes::copy_from_slice(b)),
    }
}

/// A field table as ordered core pairs.
pub fn table_in(t: &FieldTable) -> Vec<(String, Value)> {
    t.inner()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), value_in(v)))
        .collect()
}

/// A core value as an AMQP field value. Text becomes a long string (`S`): short-string field
/// values do not round-trip through every client.
pub fn value_out(v: &Value) -> AMQPValue {
    match v {
        Value::Null => AMQPValue::Void,
        Value::Bool(b) => AMQPValue::Boolean(*b),
        Value::I64(n) => AMQPValue::LongLongInt(*n),
        Value::U64(n) => match i64::try_from(*n) {
            Ok(n) => AMQPValue::LongLongInt(n),
            Err(_) => AMQPValue::LongString(LongString::from(n.to_string().into_bytes())),
        },
        Value::F64(f) => AMQPValue::Double(*f),
        Value::Str(s) => AMQPValue::LongString(LongString::from(s.as_bytes())),
        Value::Bytes(b) => AMQPValue::LongString(LongString::from(b.to_vec())),
        Value::Timestamp(t) => AMQPValue::Timestamp(*t),
        Value::List(l) => AMQPValue::FieldArray(FieldArray::from(
            l.iter().map(value_out).collect::<Vec<_>>(),
        )),
        Value::Table(t) => AMQPValue::FieldTable(table_out(t)),
    }
}

/// Core pairs as a field table (keys over 255 bytes are cut).
pub fn table_out(t: &[(String, Value)]) -> FieldTable {
    let mut out = FieldTable::default();
    for (k, v) in t {
        out.insert(short_string_lossy(k), value_out(v));
    }
    out
}

/// Why a content header cannot be taken as it is.
#[derive(Debug)]
pub struct BadProperty(pub String);

/// The canonical properties of an AMQP content header (`raw` is kept for AMQP consumers).
///
/// # Errors
/// An `expiration` that is not a non-negative integer (RabbitMQ: 406 PRECONDITION_FAILED).
pub fn properties_in(p: &BasicProperties, raw: Bytes) -> Result<Properties, BadProperty> {
    let text = |s: &Option<ShortString>| s.as_ref().map(|s| s.as_str().to_string());
    let ttl_ms = match p.expiration() {
        None => None,
        Some(e) => Some(
            e.as_str()
                .parse::<u64>()
                .map_err(|_| BadProperty(format!("invalid expiration '{}'", e.as_str())))?,
        ),
    };
    let mut headers = p.headers().as_ref().map(table_in).unwrap_or_default();
    for (name, v) in [
        (TYPE_HEADER, p.kind()),
        (APP_ID_HEADER, p.app_id()),
        (CLUSTER_ID_HEADER, p.cluster_id()),
    ] {
        if let Some(v) = v {
            headers.push((name.to_string(), Value::Str(v.as_str().to_string())));
        }
    }
    Ok(Properties {
        message_id: text(p.message_id()),
        correlation_id: p
            .correlation_id()
            .as_ref()
            .map(|c| Bytes::copy_from_slice(c.as_str().as_bytes())),
        reply_to: text(p.reply_to()),
        content_type: text(p.content_type()),
        content_encoding: text(p.content_encoding()),
        timestamp_ms: p
            .timestamp()
            .map(|t| i64::try_from(t.saturating_mul(1000)).unwrap_or(i64::MAX)),
        ttl_ms,
        priority: *p.priority(),
        persistent: *p.delivery_mode() == Some(2),
        user_id: text(p.user_id()),
        retain: Properties::retain_requested(&headers),
        headers,
        amqp_header: Some(raw),
        ..Properties::default()
    })
}

/// AMQP basic properties for a message from another protocol.
pub fn properties_out(p: &Properties) -> BasicProperties {
    let mut b = BasicProperties::default();
    let s = |v: &str| short_string_lossy(v);
    if let Some(v) = &p.content_type {
        b = b.with_content_type(s(v));
    }
    if let Some(v) = &p.content_encoding {
        b = b.with_content_encoding(s(v));
    }
    let mut headers = Vec::new();
    for (k, v) in &p.headers {
        let text = || v.as_str_lossy().unwrap_or_default();
        match k.as_str() {
            TYPE_HEADER => b = b.with_type(s(&text())),
            APP_ID_HEADER => b = b.with_app_id(s(&text())),
            CLUSTER_ID_HEADER => b = b.with_cluster_id(s(&text())),
            _ => headers.push((k.clone(), v.clone())),
        }
    }
    if !headers.is_empty() {
        b = b.with_headers(table_out(&headers));
    }
    b = b.with_delivery_mode(if p.persistent { 2 } else { 1 });
    if let Some(v) = p.priority {
        b = b.with_priority(v);
    }
    if let Some(v) = &p.correlation_id {
        b = b.with_correlation_id(s(&String::from_utf8_lossy(v)));
    }
    if let Some(v) = &p.reply_to {
        b = b.with_reply_to(s(v));
    }
    if let Some(v) = p.ttl_ms {
        b = b.with_expiration(s(&v.to_string()));
    }
    if let Some(v) = &p.message_id {
        b = b.with_message_id(s(v));
    }
    if let Some(v) = p.timestamp_ms {
        b = b.with_timestamp(u64::try_from(v / 1000).unwrap_or(0));
    }
    if let Some(v) = &p.user_id {
        b = b.with_user_id(s(v));
    }
    b
}

/// The raw content header to deliver `p` with: as published over AMQP, or built.
pub fn header_out(p: &Properties, body_size: u64) -> Bytes {
    if let Some(raw) = &p.amqp_header {
        return raw.clone();
    }
    encode_header_from_properties(junction_amqp::BASIC_CLASS_ID, body_size, &properties_out(p))
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "content header could not be built; sending none");
            encode_header_from_properties(
                junction_amqp::BASIC_CLASS_ID,
                body_size,
                &BasicProperties::default(),
            )
            .unwrap_or_default()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_round_trip() {
        let v = Value::Table(vec![
            ("a".into(), Value::I64(-3)),
            (
                "b".into(),
                Value::List(vec![Value::Str("x".into()), Value::Bool(true)]),
            ),
            (
                "c".into(),
                Value::Table(vec![("d".into(), Value::F64(1.5))]),
            ),
        ]);
        assert_eq!(value_in(&value_out(&v)), v);
    }

    #[test]
    fn properties_both_ways() {
        let p = Properties {
            content_type: Some("text/plain".into()),
            persistent: true,
            ttl_ms: Some(500),
            timestamp_ms: Some(1_700_000_000_000),
            headers: vec![("k".into(), Value::Str("v".into()))],
            ..Properties::default()
        };
        let b = properties_out(&p);
        let back = properties_in(&b, Bytes::new()).unwrap();
        assert_eq!(back.content_type, p.content_type);
        assert!(back.persistent);
        assert_eq!(back.ttl_ms, Some(500));
        assert_eq!(back.timestamp_ms, p.timestamp_ms);
        assert_eq!(back.headers, p.headers);
    }

    #[test]
    fn bad_expiration_is_refused() {
        let b = BasicProperties::default().with_expiration("soon".into());
        assert!(properties_in(&b, Bytes::new()).is_err());
    }
}
