//! The streaming decoder: bytes in, packets out.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::packet::{
    ConnAck, Connect, Packet, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, ReasonOnly,
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, Unsubscribe, Will,
};
use crate::primitives::{peek_varint, read_binary, read_string, read_u16, read_u8};
use crate::properties::{Ctx, Properties};
use crate::topic::{parse_filter, validate_topic_name};

/// Default maximum packet size: 1 MiB.
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
struct Header {
    byte: u8,
    remaining: usize,
}

/// A sans-IO MQTT decoder for one connection. Made with [`Decoder::new`] it is the server
/// side: the first packet must be a CONNECT, whose protocol level fixes the version for the
/// rest of the stream, and what only servers send (CONNACK, SUBACK, UNSUBACK, PINGRESP, a
/// PUBLISH with a subscription identifier) is a Protocol Error.
///
/// Feed it whatever bytes arrived; each call to [`Decoder::decode`] takes at most one packet
/// off the front of the buffer. The fixed header is checked against the maximum packet size
/// before any of the body is waited for. Every error is fatal for the connection.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    header: Option<Header>,
    server: bool,
}

impl Decoder {
    /// A decoder that waits for a CONNECT to learn the version. `max_packet_size` bounds the
    /// whole packet, fixed header included (5.0's Maximum Packet Size semantics).
    pub fn new(max_packet_size: u32) -> Decoder {
        Decoder {
            version: None,
            max_packet_size,
            header: None,
            server: true,
        }
    }

    /// A decoder for a stream whose version is already known (client side, tests): it
    /// accepts every packet type and rejects CONNECT.
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Decoder {
        Decoder {
            version: Some(version),
            max_packet_size,
            header: None,
            server: false,
        }
    }

    /// The version learnt from the CONNECT (or given), if any yet.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The maximum packet size in force.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size (for the packets whose fixed header is not read yet).
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes the next packet from the front of `src`: `Ok(None)` when more bytes are needed
    /// (the consumed fixed header is remembered), `Ok(Some(packet))` with the packet's bytes
    /// removed from `src`, or an error after which the connection must be closed.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let header = match self.header {
            Some(header) => header,
            None => {
                let Some(&byte) = src.first() else {
                    return Ok(None);
                };
                let Some((remaining, len)) = peek_varint(src.get(1..).unwrap_or_default())? else {
                    return Ok(None);
                };
                let size = 1 + len as u64 + u64::from(remaining);
                if size > u64::from(self.max_packet_size) {
                    return Err(DecodeError::PacketTooLarge {
                        size,
                        max: self.max_packet_size,
                    });
                }
                if self.version.is_none() && byte >> 4 != 1 {
                    return Err(DecodeError::Protocol("first packet is not CONNECT"));
                }
                if self.server && matches!(byte >> 4, 2 | 9 | 11 | 13) {
                    return Err(DecodeError::Protocol(
                        "server-to-client packet from a client",
                    ));
                }
                src.advance(1 + len);
                let header = Header {
                    byte,
                    remaining: remaining as usize,
                };
                self.header = Some(header);
                header
            }
        };
        if src.len() < header.remaining {
            src.reserve(header.remaining - src.len());
            return Ok(None);
        }
        self.header = None;
        let body = src.split_to(header.remaining).freeze();
        if self.server && matches!(header.byte >> 4, 2 | 9 | 11 | 13) {
            return Err(DecodeError::Protocol(
                "server-to-client packet sent by a client",
            ));
        }
        let packet = decode_packet(header.byte, body, &mut self.version)?;
        if let Packet::Publish(p) = &packet {
            if self.server && !p.properties.subscription_identifiers.is_empty() {
                // [MQTT-3.3.4-6]
                return Err(DecodeError::Protocol(
                    "subscription identifier from a client",
                ));
            }
        }
        Ok(Some(packet))
    }
}

fn packet_id(src: &mut Bytes) -> Result<u16, DecodeError> {
    match read_u16(src)? {
        0 => Err(DecodeError::Malformed("packet identifier 0")),
        id => Ok(id),
    }
}

fn qos(bits: u8) -> Result<QoS, DecodeError> {
    QoS::from_bits(bits).ok_or(DecodeError::Malformed("QoS 3"))
}

fn props(src: &mut Bytes, v: ProtocolVersion, ctx: Ctx) -> Result<Properties, DecodeError> {
    match v {
        ProtocolVersion::V5 => Properties::decode(src, ctx),
        ProtocolVersion::V311 => Ok(Properties::default()),
    }
}

/// Decodes one packet body given its first fixed-header byte.
fn decode_packet(
    byte: u8,
    mut b: Bytes,
    version: &mut Option<ProtocolVersion>,
) -> Result<Packet, DecodeError> {
    let kind = byte >> 4;
    let flags = byte & 0x0f;
    let expected_flags = match kind {
        3 => flags,
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return Err(DecodeError::Malformed("invalid fixed header flags"));
    }
    let v = match *version {
        None if kind == 1 => return connect(&mut b, version),
        None => return Err(DecodeError::Protocol("first packet is not CONNECT")),
        Some(_) if kind == 1 => return Err(DecodeError::Protocol("second CONNECT")),
        Some(v) => v,
    };
    let v5 = v == ProtocolVersion::V5;
    let src = &mut b;
    let packet = match kind {
        2 => {
            let ack_flags = read_u8(src)?;
            if ack_flags & 0xfe != 0 {
                return Err(DecodeError::Malformed("reserved CONNACK flags set"));
            }
            let code = ReasonCode(read_u8(src)?);
            let properties = props(src, v, Ctx::ConnAck)?;
            Packet::ConnAck(ConnAck {
                session_present: ack_flags == 1,
                code,
                properties,
            })
        }
        3 => Packet::Publish(publish(src, flags, v)?),
        4..=7 => {
            let packet_id = packet_id(src)?;
            let mut ack = PubResponse {
                packet_id,
                ..PubResponse::default()
            };
            if v5 && src.has_remaining() {
                ack.reason = ReasonCode(read_u8(src)?);
                if src.has_remaining() {
                    ack.properties = Properties::decode(src, Ctx::PubResponse)?;
                }
            }
            match kind {
                4 => Packet::PubAck(ack),
                5 => Packet::PubRec(ack),
                6 => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        }
        8 => Packet::Subscribe(subscribe(src, v)?),
        9 | 11 => {
            let packet_id = packet_id(src)?;
            let properties = props(src, v, Ctx::SubAck)?;
            let codes = if v5 || kind == 9 {
                std::mem::take(src).iter().map(|c| ReasonCode(*c)).collect()
            } else {
                Vec::new()
            };
            let ack = SubAck {
                packet_id,
                properties,
                codes,
            };
            if kind == 9 {
                Packet::SubAck(ack)
            } else {
                Packet::UnsubAck(ack)
            }
        }
        10 => {
            let packet_id = packet_id(src)?;
            let properties = props(src, v, Ctx::Unsubscribe)?;
            let mut filters = Vec::new();
            while src.has_remaining() {
                let filter = read_string(src)?;
                parse_filter(&filter).map_err(|_| DecodeError::TopicFilterInvalid)?;
                filters.push(filter);
            }
            if filters.is_empty() {
                return Err(DecodeError::Protocol("UNSUBSCRIBE without topic filters"));
            }
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters,
            })
        }
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 | 15 => {
            if kind == 15 && !v5 {
                return Err(DecodeError::Malformed("AUTH in MQTT 3.1.1"));
            }
            let mut r = ReasonOnly::default();
            if v5 && src.has_remaining() {
                r.reason = ReasonCode(read_u8(src)?);
                if src.has_remaining() {
                    let ctx = if kind == 14 {
                        Ctx::Disconnect
                    } else {
                        Ctx::Auth
                    };
                    r.properties = Properties::decode(src, ctx)?;
                }
            }
            if kind == 14 {
                Packet::Disconnect(r)
            } else {
                Packet::Auth(r)
            }
        }
        _ => return Err(DecodeError::Malformed("reserved packet type 0")),
    };
    if src.has_remaining() {
        return Err(DecodeError::Malformed("bytes after the end of the packet"));
    }
    Ok(packet)
}

fn connect(src: &mut Bytes, version: &mut Option<ProtocolVersion>) -> Result<Packet, DecodeError> {
    let name = read_string(src)?;
    let level = read_u8(src)?;
    let v = match (name.as_str(), level) {
        ("MQTT", 4) => ProtocolVersion::V311,
        ("MQTT", 5) => ProtocolVersion::V5,
        _ => return Err(DecodeError::UnsupportedProtocol { name, level }),
    };
    *version = Some(v);
    let flags = read_u8(src)?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed("reserved CONNECT flag set"));
    }
    let has_will = flags & 0x04 != 0;
    let will_qos = qos((flags >> 3) & 0x03)?;
    let will_retain = flags & 0x20 != 0;
    if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::Malformed("will QoS or retain without a will"));
    }
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if v == ProtocolVersion::V311 && has_password && !has_username {
        return Err(DecodeError::Malformed("password without user name"));
    }
    let keep_alive = read_u16(src)?;
    let properties = props(src, v, Ctx::Connect)?;
    let client_id = read_string(src)?;
    let will = if has_will {
        let properties = props(src, v, Ctx::Will)?;
        let topic = read_string(src)?;
        validate_topic_name(&topic).map_err(|_| DecodeError::TopicNameInvalid)?;
        let payload = read_binary(src)?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(read_string(src)?)
    } else {
        None
    };
    let password = if has_password {
        Some(read_binary(src)?)
    } else {
        None
    };
    if src.has_remaining() {
        return Err(DecodeError::Malformed("bytes after the end of the packet"));
    }
    Ok(Packet::Connect(Box::new(Connect {
        version: v,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })))
}

fn publish(src: &mut Bytes, flags: u8, v: ProtocolVersion) -> Result<Publish, DecodeError> {
    let qos = qos((flags >> 1) & 0x03)?;
    let dup = flags & 0x08 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::Malformed("DUP set on a QoS 0 PUBLISH"));
    }
    let topic = read_string(src)?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(packet_id(src)?)
    };
    let properties = props(src, v, Ctx::Publish)?;
    if topic.is_empty() {
        if properties.topic_alias.is_none() {
            return Err(match v {
                ProtocolVersion::V5 => DecodeError::Protocol("empty topic without topic alias"),
                ProtocolVersion::V311 => DecodeError::TopicNameInvalid,
            });
        }
    } else {
        validate_topic_name(&topic).map_err(|_| DecodeError::TopicNameInvalid)?;
    }
    let payload = std::mem::take(src);
    Ok(Publish {
        dup,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        packet_id,
        properties,
        payload,
    })
}

fn subscribe(src: &mut Bytes, v: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(src)?;
    let properties = props(src, v, Ctx::Subscribe)?;
    let mut subscriptions = Vec::new();
    while src.has_remaining() {
        let filter = read_string(src)?;
        let byte = read_u8(src)?;
        let reserved = match v {
            ProtocolVersion::V5 => 0xc0,
            ProtocolVersion::V311 => 0xfc,
        };
        if byte & reserved != 0 {
            return Err(DecodeError::Malformed(
                "reserved subscription option bits set",
            ));
        }
        let retain_handling = match (byte >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::Protocol("retain handling 3")),
        };
        let options = SubscriptionOptions {
            qos: qos(byte & 0x03)?,
            no_local: byte & 0x04 != 0,
            retain_as_published: byte & 0x08 != 0,
            retain_handling,
        };
        let parsed = parse_filter(&filter).map_err(|_| DecodeError::TopicFilterInvalid)?;
        if parsed.share_group.is_some() && options.no_local {
            return Err(DecodeError::Protocol("no local on a shared subscription"));
        }
        subscriptions.push(Subscription { filter, options });
    }
    if subscriptions.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        packet_id,
        properties,
        subscriptions,
    })
}
