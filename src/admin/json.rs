//! Core values, properties and message bodies <-> JSON, in RabbitMQ management's shapes.
//!
//! Properties use AMQP's names (`message_id`, `delivery_mode`, `expiration` as a string of
//! milliseconds, `headers` as an object); Junction's own fields (`keys`, `tag`,
//! `sharding_key`) sit beside them. A body is sent as text when it is UTF-8
//! (`"payload_encoding": "string"`) and as base64 otherwise.

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Map, Value as Json};

use super::error::ApiError;
use crate::core::{Properties, Value};

/// A core value as JSON (bytes as text when UTF-8, else base64).
pub fn value_out(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::I64(n) => json!(n),
        Value::U64(n) => json!(n),
        Value::F64(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => json!(s),
            Err(_) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        },
        Value::Timestamp(t) => json!(t),
        Value::List(l) => Json::Array(l.iter().map(value_out).collect()),
        Value::Table(t) => table_out(t),
    }
}

/// A table (arguments, headers) as a JSON object.
pub fn table_out(t: &[(String, Value)]) -> Json {
    Json::Object(t.iter().map(|(k, v)| (k.clone(), value_out(v))).collect())
}

/// A JSON value as a core value.
pub fn value_in(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::I64)
            .or_else(|| n.as_u64().map(Value::U64))
            .unwrap_or_else(|| Value::F64(n.as_f64().unwrap_or(0.0))),
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::List(a.iter().map(value_in).collect()),
        Json::Object(o) => Value::Table(table_in(o)),
    }
}

/// A JSON object as a table.
pub fn table_in(o: &Map<String, Json>) -> Vec<(String, Value)> {
    o.iter().map(|(k, v)| (k.clone(), value_in(v))).collect()
}

/// Message properties as JSON (absent fields left out).
pub fn properties_out(p: &Properties) -> Json {
    let mut o = Map::new();
    let mut put = |k: &str, v: Json| {
        o.insert(k.to_string(), v);
    };
    if let Some(v) = &p.message_id {
        put("message_id", json!(v));
    }
    if let Some(v) = &p.correlation_id {
        put("correlation_id", json!(String::from_utf8_lossy(v)));
    }
    if let Some(v) = &p.reply_to {
        put("reply_to", json!(v));
    }
    if let Some(v) = &p.content_type {
        put("content_type", json!(v));
    }
    if let Some(v) = &p.content_encoding {
        put("content_encoding", json!(v));
    }
    if let Some(v) = p.timestamp_ms {
        put("timestamp", json!(v));
    }
    if let Some(v) = p.ttl_ms {
        put("expiration", json!(v.to_string()));
    }
    if let Some(v) = p.priority {
        put("priority", json!(v));
    }
    put("delivery_mode", json!(if p.persistent { 2 } else { 1 }));
    if let Some(v) = &p.user_id {
        put("user_id", json!(v));
    }
    if !p.keys.is_empty() {
        put("keys", json!(p.keys));
    }
    if let Some(v) = &p.tag {
        put("tag", json!(v));
    }
    if let Some(v) = &p.sharding_key {
        put("sharding_key", json!(v));
    }
    if !p.headers.is_empty() {
        put("headers", table_out(&p.headers));
    }
    Json::Object(o)
}

fn str_field(o: &Map<String, Json>, k: &str) -> Result<Option<String>, ApiError> {
    match o.get(k) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!(
            "property '{k}' must be a string"
        ))),
    }
}

fn int_field(o: &Map<String, Json>, k: &str) -> Result<Option<u64>, ApiError> {
    match o.get(k) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("property '{k}' must be >= 0"))),
        Some(Json::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("property '{k}' must be a number"))),
        Some(_) => Err(ApiError::bad_request(format!(
            "property '{k}' must be a number"
        ))),
    }
}

/// Message properties from JSON.
///
/// # Errors
/// 400 naming the property with a wrong type.
pub fn properties_in(o: &Map<String, Json>) -> Result<Properties, ApiError> {
    let priority = int_field(o, "priority")?
        .map(|p| u8::try_from(p).map_err(|_| ApiError::bad_request("priority must be 0..=255")))
        .transpose()?;
    let timestamp_ms = int_field(o, "timestamp")?
        .map(|t| i64::try_from(t).map_err(|_| ApiError::bad_request("timestamp out of range")))
        .transpose()?;
    let keys = match o.get("keys") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a
            .iter()
            .map(|k| {
                k.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request("keys must be strings"))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::bad_request("keys must be an array")),
    };
    let headers = match o.get("headers") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Object(h)) => table_in(h),
        Some(_) => return Err(ApiError::bad_request("headers must be an object")),
    };
    Ok(Properties {
        message_id: str_field(o, "message_id")?,
        correlation_id: str_field(o, "correlation_id")?.map(Bytes::from),
        reply_to: str_field(o, "reply_to")?,
        content_type: str_field(o, "content_type")?,
        content_encoding: str_field(o, "content_encoding")?,
        timestamp_ms,
        ttl_ms: int_field(o, "expiration")?,
        priority,
        persistent: int_field(o, "delivery_mode")? == Some(2),
        user_id: str_field(o, "user_id")?,
        keys,
        tag: str_field(o, "tag")?,
        sharding_key: str_field(o, "sharding_key")?,
        headers,
        ..Properties::default()
    })
}

/// A body as `(payload, payload_encoding)`: text if it is UTF-8 (and `auto` allows it), else
/// base64.
pub fn payload_out(body: &[u8], force_base64: bool) -> (String, &'static str) {
    match std::str::from_utf8(body) {
        Ok(s) if !force_base64 => (s.to_string(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(body),
            "base64",
        ),
    }
}

/// A body from `payload` in `encoding` (`string` or `base64`).
///
/// # Errors
/// 400 for another encoding or invalid base64.
pub fn payload_in(payload: &str, encoding: &str) -> Result<Bytes, ApiError> {
    match encoding {
        "string" => Ok(Bytes::copy_from_slice(payload.as_bytes())),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map(Bytes::from)
            .map_err(|e| ApiError::bad_request(format!("payload is not base64: {e}"))),
        other => Err(ApiError::bad_request(format!(
            "payload_encoding must be \"string\" or \"base64\", not \"{other}\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip() {
        let p = Properties {
            message_id: Some("m1".into()),
            correlation_id: Some(Bytes::from_static(b"c1")),
            content_type: Some("text/plain".into()),
            ttl_ms: Some(60_000),
            priority: Some(3),
            persistent: true,
            keys: vec!["order-7".into()],
            headers: vec![
                ("n".into(), Value::I64(-4)),
                ("s".into(), Value::Str("x".into())),
            ],
            ..Properties::default()
        };
        let j = properties_out(&p);
        assert_eq!(j["expiration"], json!("60000"));
        assert_eq!(j["delivery_mode"], json!(2));
        let back = properties_in(j.as_object().unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(properties_in(json!({"priority": 300}).as_object().unwrap()).is_err());
        assert!(properties_in(json!({"headers": 1}).as_object().unwrap()).is_err());
    }

    #[test]
    fn payloads() {
        assert_eq!(payload_out(b"hi", false), ("hi".into(), "string"));
        assert_eq!(payload_out(&[0xff], false).1, "base64");
        assert_eq!(
            payload_in("aGk=", "base64").unwrap(),
            Bytes::from_static(b"hi")
        );
        assert!(payload_in("x", "hex").is_err());
    }
}
