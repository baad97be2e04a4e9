//! PUBLISH <-> canonical message, per `../shared/DESIGN.md` §5.
//!
//! | MQTT 5 | canonical |
//! |---|---|
//! | Content Type | content-type |
//! | Correlation Data | correlation-id |
//! | Response Topic (`a/b`) | reply-to (`a.b`, translated like a topic) |
//! | Message Expiry Interval (s) | ttl (ms); what is left of it when delivered |
//! | user property `message-id` | message-id |
//! | user property `priority` | priority |
//! | user property `content-encoding` | content-encoding |
//! | other user properties | headers (text) |
//! | Payload Format Indicator | header `x-mqtt-payload-format` |
//! | QoS | persistent (QoS >= 1), header `x-mqtt-publish-qos` (as RabbitMQ) |
//! | RETAIN | retain |
//!
//! A message from another protocol is delivered at QoS 1 if persistent, else 0 (capped by the
//! subscription's QoS); its headers with a text form become user properties.

use bytes::Bytes;
use junction_mqtt::{topic, Properties as MqttProps, Publish, QoS, ReasonCode};

use crate::core::{Message, Properties, Value};

/// Header carrying the QoS an MQTT client published with.
pub(super) const QOS_HEADER: &str = "x-mqtt-publish-qos";
/// Header carrying the Payload Format Indicator.
pub(super) const FORMAT_HEADER: &str = "x-mqtt-payload-format";

/// The canonical message for a PUBLISH (or a will) from client `client_id`.
///
/// # Errors
/// `PAYLOAD_FORMAT_INVALID` for a payload announced as UTF-8 that is not.
pub(super) fn message_in(p: &Publish, client_id: &str) -> Result<Message, ReasonCode> {
    let mp = &p.properties;
    if mp.payload_format_indicator == Some(1) && std::str::from_utf8(&p.payload).is_err() {
        return Err(ReasonCode::PAYLOAD_FORMAT_INVALID);
    }
    let mut props = Properties {
        persistent: p.qos != QoS::AtMostOnce,
        retain: p.retain,
        origin: Some(client_id.to_string()),
        content_type: mp.content_type.clone(),
        correlation_id: mp.correlation_data.clone(),
        reply_to: mp
            .response_topic
            .as_deref()
            .map(|t| topic::name_to_amqp(t).unwrap_or_else(|_| t.to_string())),
        ttl_ms: mp.message_expiry_interval.map(|s| u64::from(s) * 1000),
        ..Properties::default()
    };
    for (k, v) in &mp.user_properties {
        match k.as_str() {
            "message-id" if props.message_id.is_none() => props.message_id = Some(v.clone()),
            "content-encoding" if props.content_encoding.is_none() => {
                props.content_encoding = Some(v.clone());
            }
            "priority" if props.priority.is_none() && v.parse::<u8>().is_ok() => {
                props.priority = v.parse().ok();
            }
            _ => props.headers.push((k.clone(), Value::Str(v.clone()))),
        }
    }
    if let Some(f) = mp.payload_format_indicator {
        props
            .headers
            .push((FORMAT_HEADER.into(), Value::I64(i64::from(f))));
    }
    props
        .headers
        .push((QOS_HEADER.into(), Value::I64(p.qos as i64)));
    Ok(Message {
        properties: props,
        body: p.payload.clone(),
    })
}

/// The QoS a message was published with: an MQTT publisher's, else 1 for persistent
/// messages and 0 for the rest.
pub(super) fn published_qos(p: &Properties) -> QoS {
    match p.header(QOS_HEADER) {
        Some(Value::I64(n)) => QoS::from_bits(*n as u8).unwrap_or(QoS::AtLeastOnce),
        _ if p.persistent => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    }
}

/// The 5.0 PUBLISH properties for a message (3.1.1 ignores them). `remaining_ttl_ms` is what
/// is left of its time to live.
pub(super) fn properties_out(
    p: &Properties,
    remaining_ttl_ms: Option<u64>,
    subscription_ids: Vec<u32>,
) -> MqttProps {
    let mut out = MqttProps {
        content_type: p.content_type.clone(),
        correlation_data: p.correlation_id.clone(),
        response_topic: p
            .reply_to
            .as_deref()
            .map(|r| topic::amqp_to_name(r).unwrap_or_else(|_| r.to_string())),
        message_expiry_interval: remaining_ttl_ms
            .map(|ms| u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX)),
        subscription_identifiers: subscription_ids,
        ..MqttProps::default()
    };
    if let Some(id) = &p.message_id {
        out.user_properties.push(("message-id".into(), id.clone()));
    }
    if let Some(pr) = p.priority {
        out.user_properties
            .push(("priority".into(), pr.to_string()));
    }
    if let Some(enc) = &p.content_encoding {
        out.user_properties
            .push(("content-encoding".into(), enc.clone()));
    }
    for (k, v) in &p.headers {
        match k.as_str() {
            QOS_HEADER => {}
            FORMAT_HEADER => {
                if let Value::I64(f @ 0..=1) = v {
                    out.payload_format_indicator = Some(*f as u8);
                }
            }
            _ => {
                if let Some(text) = v.as_str_lossy() {
                    out.user_properties.push((k.clone(), text));
                }
            }
        }
    }
    out
}

/// A will as the PUBLISH it stands for.
pub(super) fn will_publish(w: &junction_mqtt::Will) -> Publish {
    let mut properties = w.properties.clone();
    properties.will_delay_interval = None;
    Publish {
        dup: false,
        qos: w.qos,
        retain: w.retain,
        topic: w.topic.clone(),
        packet_id: None,
        properties,
        payload: Bytes::clone(&w.payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trip() {
        let p = Publish {
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: "a/b".into(),
            packet_id: Some(1),
            properties: MqttProps {
                content_type: Some("application/json".into()),
                correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                response_topic: Some("replies/c1".into()),
                message_expiry_interval: Some(30),
                payload_format_indicator: Some(1),
                user_properties: vec![
                    ("message-id".into(), "m-1".into()),
                    ("content-encoding".into(), "gzip".into()),
                    ("k".into(), "v".into()),
                    ("k".into(), "w".into()),
                ],
                ..MqttProps::default()
            },
            payload: Bytes::from_static(b"{}"),
            ..Publish::default()
        };
        let m = message_in(&p, "c1").expect("valid");
        assert!(m.properties.persistent && m.properties.retain);
        assert_eq!(m.properties.reply_to.as_deref(), Some("replies.c1"));
        assert_eq!(m.properties.message_id.as_deref(), Some("m-1"));
        assert_eq!(m.properties.content_encoding.as_deref(), Some("gzip"));
        assert_eq!(m.properties.ttl_ms, Some(30_000));
        assert_eq!(m.properties.origin.as_deref(), Some("c1"));
        assert_eq!(published_qos(&m.properties), QoS::ExactlyOnce);
        let back = properties_out(&m.properties, Some(29_001), vec![7]);
        assert_eq!(back.content_type, p.properties.content_type);
        assert_eq!(back.correlation_data, p.properties.correlation_data);
        assert_eq!(back.response_topic, p.properties.response_topic);
        assert_eq!(back.message_expiry_interval, Some(30));
        assert_eq!(back.payload_format_indicator, Some(1));
        assert_eq!(back.subscription_identifiers, vec![7]);
        assert_eq!(back.user_properties, p.properties.user_properties);
    }

    #[test]
    fn invalid_utf8_with_format_indicator_is_refused() {
        let p = Publish {
            topic: "t".into(),
            properties: MqttProps {
                payload_format_indicator: Some(1),
                ..MqttProps::default()
            },
            payload: Bytes::from_static(b"\xff\xfe"),
            ..Publish::default()
        };
        assert_eq!(
            message_in(&p, "c").err(),
            Some(ReasonCode::PAYLOAD_FORMAT_INVALID)
        );
    }

    #[test]
    fn other_protocols_map_to_qos_by_persistence() {
        let mut p = Properties::default();
        assert_eq!(published_qos(&p), QoS::AtMostOnce);
        p.persistent = true;
        assert_eq!(published_qos(&p), QoS::AtLeastOnce);
    }
}
