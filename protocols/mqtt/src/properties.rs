//! MQTT 5.0 properties: one struct for every packet, with the spec's per-packet allow-list,
//! duplicate and value checks on decode.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::primitives::{
    read_binary, read_string, read_u16, read_u32, read_u8, read_varint, varint_len, write_binary,
    write_string, write_varint, MAX_VARINT,
};

/// The 5.0 properties of a packet. Every field is optional (a `Vec` may be empty); which ones
/// a packet may carry is checked on decode (a property not allowed there is a Malformed
/// Packet) and must be respected by whoever builds packets to encode.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// 0x01 Payload Format Indicator (PUBLISH, will): 0 bytes, 1 UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// 0x02 Message Expiry Interval, seconds (PUBLISH, will).
    pub message_expiry_interval: Option<u32>,
    /// 0x03 Content Type (PUBLISH, will).
    pub content_type: Option<String>,
    /// 0x08 Response Topic (PUBLISH, will).
    pub response_topic: Option<String>,
    /// 0x09 Correlation Data (PUBLISH, will).
    pub correlation_data: Option<Bytes>,
    /// 0x0B Subscription Identifier(s): several in PUBLISH, at most one in SUBSCRIBE.
    pub subscription_identifiers: Vec<u32>,
    /// 0x11 Session Expiry Interval, seconds (CONNECT, CONNACK, DISCONNECT).
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier (CONNACK).
    pub assigned_client_identifier: Option<String>,
    /// 0x13 Server Keep Alive, seconds (CONNACK).
    pub server_keep_alive: Option<u16>,
    /// 0x15 Authentication Method (CONNECT, CONNACK, AUTH).
    pub authentication_method: Option<String>,
    /// 0x16 Authentication Data (CONNECT, CONNACK, AUTH).
    pub authentication_data: Option<Bytes>,
    /// 0x17 Request Problem Information, 0 or 1 (CONNECT).
    pub request_problem_information: Option<u8>,
    /// 0x18 Will Delay Interval, seconds (will).
    pub will_delay_interval: Option<u32>,
    /// 0x19 Request Response Information, 0 or 1 (CONNECT).
    pub request_response_information: Option<u8>,
    /// 0x1A Response Information (CONNACK).
    pub response_information: Option<String>,
    /// 0x1C Server Reference (CONNACK, DISCONNECT).
    pub server_reference: Option<String>,
    /// 0x1F Reason String (acknowledgements, DISCONNECT, AUTH).
    pub reason_string: Option<String>,
    /// 0x21 Receive Maximum, non-zero (CONNECT, CONNACK).
    pub receive_maximum: Option<u16>,
    /// 0x22 Topic Alias Maximum (CONNECT, CONNACK).
    pub topic_alias_maximum: Option<u16>,
    /// 0x23 Topic Alias, non-zero (PUBLISH).
    pub topic_alias: Option<u16>,
    /// 0x24 Maximum QoS, 0 or 1 (CONNACK).
    pub maximum_qos: Option<u8>,
    /// 0x25 Retain Available, 0 or 1 (CONNACK).
    pub retain_available: Option<u8>,
    /// 0x26 User Properties, in order, repeats allowed (every packet).
    pub user_properties: Vec<(String, String)>,
    /// 0x27 Maximum Packet Size, non-zero (CONNECT, CONNACK).
    pub maximum_packet_size: Option<u32>,
    /// 0x28 Wildcard Subscription Available, 0 or 1 (CONNACK).
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29 Subscription Identifier Available, 0 or 1 (CONNACK).
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A Shared Subscription Available, 0 or 1 (CONNACK).
    pub shared_subscription_available: Option<u8>,
}

/// Which packet a property set belongs to (a bit per context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    Connect = 1,
    ConnAck = 2,
    Publish = 4,
    Will = 8,
    PubResponse = 16,
    Subscribe = 32,
    SubAck = 64,
    Unsubscribe = 128,
    Disconnect = 256,
    Auth = 512,
}

const C: u16 = Ctx::Connect as u16;
const CA: u16 = Ctx::ConnAck as u16;
const P: u16 = Ctx::Publish as u16;
const W: u16 = Ctx::Will as u16;
const ACK: u16 = Ctx::PubResponse as u16 | Ctx::SubAck as u16;
const S: u16 = Ctx::Subscribe as u16;
const D: u16 = Ctx::Disconnect as u16;
const A: u16 = Ctx::Auth as u16;

/// The contexts in which a property identifier may appear; 0 for unknown identifiers.
pub(crate) fn allowed(id: u8) -> u16 {
    match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => P | W,
        0x0B => P | S,
        0x11 => C | CA | D,
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => CA,
        0x15 | 0x16 => C | CA | A,
        0x17 | 0x19 => C,
        0x18 => W,
        0x1C => CA | D,
        0x1F => CA | ACK | D | A,
        0x21 | 0x22 | 0x27 => C | CA,
        0x23 => P,
        0x26 => 0x3ff,
        _ => 0,
    }
}

fn set<T>(slot: &mut Option<T>, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::Protocol("property included more than once"));
    }
    *slot = Some(value);
    Ok(())
}

fn flag(src: &mut Bytes) -> Result<u8, DecodeError> {
    match read_u8(src)? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::Protocol("property value must be 0 or 1")),
    }
}

fn nonzero_u16(src: &mut Bytes) -> Result<u16, DecodeError> {
    match read_u16(src)? {
        0 => Err(DecodeError::Protocol("property value must not be 0")),
        v => Ok(v),
    }
}

impl Properties {
    /// Whether no property is set.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Reads a property length and the properties it covers, for packet context `ctx`.
    pub(crate) fn decode(src: &mut Bytes, ctx: Ctx) -> Result<Properties, DecodeError> {
        let len = read_varint(src)? as usize;
        if src.remaining() < len {
            return Err(DecodeError::Malformed(
                "property length past the end of the packet",
            ));
        }
        let mut src = src.split_to(len);
        let mut p = Properties::default();
        while src.has_remaining() {
            let id = read_u8(&mut src)?;
            if allowed(id) & ctx as u16 == 0 {
                return Err(DecodeError::Malformed(
                    "property not allowed in this packet",
                ));
            }
            let s = &mut src;
            match id {
                0x01 => set(&mut p.payload_format_indicator, flag(s)?)?,
                0x02 => set(&mut p.message_expiry_interval, read_u32(s)?)?,
                0x03 => set(&mut p.content_type, read_string(s)?)?,
                0x08 => set(&mut p.response_topic, read_string(s)?)?,
                0x09 => set(&mut p.correlation_data, read_binary(s)?)?,
                0x0B => {
                    let v = read_varint(s)?;
                    if v == 0 {
                        return Err(DecodeError::Protocol("subscription identifier 0"));
                    }
                    if ctx == Ctx::Subscribe && !p.subscription_identifiers.is_empty() {
                        return Err(DecodeError::Protocol("subscription identifier repeated"));
                    }
                    p.subscription_identifiers.push(v);
                }
                0x11 => set(&mut p.session_expiry_interval, read_u32(s)?)?,
                0x12 => set(&mut p.assigned_client_identifier, read_string(s)?)?,
                0x13 => set(&mut p.server_keep_alive, read_u16(s)?)?,
                0x15 => set(&mut p.authentication_method, read_string(s)?)?,
                0x16 => set(&mut p.authentication_data, read_binary(s)?)?,
                0x17 => set(&mut p.request_problem_information, flag(s)?)?,
                0x18 => set(&mut p.will_delay_interval, read_u32(s)?)?,
                0x19 => set(&mut p.request_response_information, flag(s)?)?,
                0x1A => set(&mut p.response_information, read_string(s)?)?,
                0x1C => set(&mut p.server_reference, read_string(s)?)?,
                0x1F => set(&mut p.reason_string, read_string(s)?)?,
                0x21 => set(&mut p.receive_maximum, nonzero_u16(s)?)?,
                0x22 => set(&mut p.topic_alias_maximum, read_u16(s)?)?,
                0x23 => set(&mut p.topic_alias, nonzero_u16(s)?)?,
                0x24 => set(&mut p.maximum_qos, flag(s)?)?,
                0x25 => set(&mut p.retain_available, flag(s)?)?,
                0x26 => {
                    let k = read_string(s)?;
                    let v = read_string(s)?;
                    p.user_properties.push((k, v));
                }
                0x27 => match read_u32(s)? {
                    0 => return Err(DecodeError::Protocol("maximum packet size 0")),
                    v => set(&mut p.maximum_packet_size, v)?,
                },
                0x28 => set(&mut p.wildcard_subscription_available, flag(s)?)?,
                0x29 => set(&mut p.subscription_identifier_available, flag(s)?)?,
                _ => set(&mut p.shared_subscription_available, flag(s)?)?,
            }
        }
        Ok(p)
    }

    /// Writes the property length and the properties.
    pub(crate) fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let mut b = BytesMut::new();
        let d = &mut b;
        fn byte(d: &mut BytesMut, id: u8, v: Option<u8>) {
            if let Some(v) = v {
                d.put_u8(id);
                d.put_u8(v);
            }
        }
        fn two(d: &mut BytesMut, id: u8, v: Option<u16>) {
            if let Some(v) = v {
                d.put_u8(id);
                d.put_u16(v);
            }
        }
        fn four(d: &mut BytesMut, id: u8, v: Option<u32>) {
            if let Some(v) = v {
                d.put_u8(id);
                d.put_u32(v);
            }
        }
        fn bin(d: &mut BytesMut, id: u8, v: Option<&[u8]>) -> Result<(), EncodeError> {
            if let Some(v) = v {
                d.put_u8(id);
                write_binary(v, d)?;
            }
            Ok(())
        }
        byte(d, 0x01, self.payload_format_indicator);
        four(d, 0x02, self.message_expiry_interval);
        bin(d, 0x03, self.content_type.as_deref().map(str::as_bytes))?;
        bin(d, 0x08, self.response_topic.as_deref().map(str::as_bytes))?;
        bin(d, 0x09, self.correlation_data.as_deref())?;
        for id in &self.subscription_identifiers {
            if *id == 0 || *id > MAX_VARINT {
                return Err(EncodeError::Invalid("subscription identifier out of range"));
            }
            d.put_u8(0x0B);
            write_varint(*id as usize, d)?;
        }
        four(d, 0x11, self.session_expiry_interval);
        bin(
            d,
            0x12,
            self.assigned_client_identifier
                .as_deref()
                .map(str::as_bytes),
        )?;
        two(d, 0x13, self.server_keep_alive);
        bin(
            d,
            0x15,
            self.authentication_method.as_deref().map(str::as_bytes),
        )?;
        bin(d, 0x16, self.authentication_data.as_deref())?;
        byte(d, 0x17, self.request_problem_information);
        four(d, 0x18, self.will_delay_interval);
        byte(d, 0x19, self.request_response_information);
        bin(
            d,
            0x1A,
            self.response_information.as_deref().map(str::as_bytes),
        )?;
        bin(d, 0x1C, self.server_reference.as_deref().map(str::as_bytes))?;
        bin(d, 0x1F, self.reason_string.as_deref().map(str::as_bytes))?;
        two(d, 0x21, self.receive_maximum);
        two(d, 0x22, self.topic_alias_maximum);
        two(d, 0x23, self.topic_alias);
        byte(d, 0x24, self.maximum_qos);
        byte(d, 0x25, self.retain_available);
        for (k, v) in &self.user_properties {
            d.put_u8(0x26);
            write_string(k, d)?;
            write_string(v, d)?;
        }
        four(d, 0x27, self.maximum_packet_size);
        byte(d, 0x28, self.wildcard_subscription_available);
        byte(d, 0x29, self.subscription_identifier_available);
        byte(d, 0x2A, self.shared_subscription_available);
        dst.reserve(varint_len(b.len()) + b.len());
        write_varint(b.len(), dst)?;
        dst.put_slice(&b);
        Ok(())
    }
}
