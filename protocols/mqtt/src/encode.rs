//! The encoder: packets in, bytes out.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::packet::{Packet, ProtocolVersion, QoS, ReasonCode, ReasonOnly};
use crate::primitives::{varint_len, write_binary, write_string, write_varint};
use crate::properties::Properties;

/// Appends the encoding of `packet` in protocol `version` to `dst` (for CONNECT, `version`
/// decides the protocol level byte, not [`crate::Connect::version`]). Fields that do not exist
/// in 3.1.1 (properties, reason codes of acknowledgements and DISCONNECT, 5.0 subscription
/// options) are left out for 3.1.1. Nothing is written when an error is returned.
///
/// Size limits agreed with the peer (its 5.0 Maximum Packet Size) are the caller's to check:
/// compare the length this call added to `dst`.
pub fn encode(
    packet: &Packet,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let v5 = version == ProtocolVersion::V5;
    let mut head = BytesMut::new();
    let h = &mut head;
    let mut payload: &[u8] = &[];
    let props = |p: &Properties, h: &mut BytesMut| if v5 { p.encode(h) } else { Ok(()) };
    let first = match packet {
        Packet::Connect(c) => {
            write_string("MQTT", h)?;
            h.put_u8(version.level());
            if !v5 && c.password.is_some() && c.username.is_none() {
                return Err(EncodeError::Invalid("3.1.1 password without user name"));
            }
            let mut flags = u8::from(c.clean_start) << 1;
            if let Some(w) = &c.will {
                flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
            }
            flags |= u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7;
            h.put_u8(flags);
            h.put_u16(c.keep_alive);
            props(&c.properties, h)?;
            write_string(&c.client_id, h)?;
            if let Some(w) = &c.will {
                props(&w.properties, h)?;
                write_string(&w.topic, h)?;
                write_binary(&w.payload, h)?;
            }
            if let Some(u) = &c.username {
                write_string(u, h)?;
            }
            if let Some(p) = &c.password {
                write_binary(p, h)?;
            }
            0x10
        }
        Packet::ConnAck(a) => {
            if !v5 && a.code.0 > 5 {
                return Err(EncodeError::Invalid("3.1.1 CONNACK return code above 5"));
            }
            h.put_u8(u8::from(a.session_present));
            h.put_u8(a.code.0);
            props(&a.properties, h)?;
            0x20
        }
        Packet::Publish(p) => {
            write_string(&p.topic, h)?;
            match (p.qos, p.packet_id) {
                (QoS::AtMostOnce, None) => {}
                (QoS::AtMostOnce, Some(_)) => {
                    return Err(EncodeError::Invalid("packet identifier on a QoS 0 PUBLISH"))
                }
                (_, Some(id)) if id != 0 => h.put_u16(id),
                _ => return Err(EncodeError::Invalid("QoS > 0 PUBLISH without packet id")),
            }
            props(&p.properties, h)?;
            payload = &p.payload;
            0x30 | u8::from(p.dup) << 3 | (p.qos as u8) << 1 | u8::from(p.retain)
        }
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            h.put_u16(a.packet_id);
            if v5 && (a.reason != ReasonCode::SUCCESS || !a.properties.is_empty()) {
                h.put_u8(a.reason.0);
                if !a.properties.is_empty() {
                    a.properties.encode(h)?;
                }
            }
            match packet {
                Packet::PubAck(_) => 0x40,
                Packet::PubRec(_) => 0x50,
                Packet::PubRel(_) => 0x62,
                _ => 0x70,
            }
        }
        Packet::Subscribe(s) => {
            h.put_u16(s.packet_id);
            props(&s.properties, h)?;
            for sub in &s.subscriptions {
                write_string(&sub.filter, h)?;
                let o = &sub.options;
                let mut byte = o.qos as u8;
                if v5 {
                    byte |= u8::from(o.no_local) << 2
                        | u8::from(o.retain_as_published) << 3
                        | (o.retain_handling as u8) << 4;
                }
                h.put_u8(byte);
            }
            0x82
        }
        Packet::SubAck(a) | Packet::UnsubAck(a) => {
            h.put_u16(a.packet_id);
            props(&a.properties, h)?;
            let suback = matches!(packet, Packet::SubAck(_));
            if v5 || suback {
                h.extend(a.codes.iter().map(|c| c.0));
            }
            if suback {
                0x90
            } else {
                0xb0
            }
        }
        Packet::Unsubscribe(u) => {
            h.put_u16(u.packet_id);
            props(&u.properties, h)?;
            for f in &u.filters {
                write_string(f, h)?;
            }
            0xa2
        }
        Packet::PingReq => 0xc0,
        Packet::PingResp => 0xd0,
        Packet::Disconnect(r) => {
            if v5 {
                reason_only(r, h)?;
            }
            0xe0
        }
        Packet::Auth(r) => {
            if !v5 {
                return Err(EncodeError::NotInVersion(version));
            }
            reason_only(r, h)?;
            0xf0
        }
    };
    let remaining = head.len() + payload.len();
    let mut fixed = BytesMut::with_capacity(5);
    fixed.put_u8(first);
    write_varint(remaining, &mut fixed)?;
    dst.reserve(1 + varint_len(remaining) + remaining);
    dst.put_slice(&fixed);
    dst.put_slice(&head);
    dst.put_slice(payload);
    Ok(())
}

/// DISCONNECT / AUTH body: nothing for reason 0 without properties (the zero-length form).
fn reason_only(r: &ReasonOnly, h: &mut BytesMut) -> Result<(), EncodeError> {
    if r.reason != ReasonCode::SUCCESS || !r.properties.is_empty() {
        h.put_u8(r.reason.0);
        if !r.properties.is_empty() {
            r.properties.encode(h)?;
        }
    }
    Ok(())
}
