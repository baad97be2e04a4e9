//! Decode and encode errors, each mapped to the MQTT 5.0 reason code the gateway sends.

use crate::packet::{ProtocolVersion, ReasonCode};

/// Why a byte stream could not be decoded. Every variant is fatal for the connection: the
/// gateway sends what [`DecodeError::reason_code`] (v5 DISCONNECT, or CONNACK before the
/// session exists, see [`DecodeError::connack`]) says, then closes the network connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The CONNECT named a protocol or a protocol level this codec does not speak.
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol {
        /// The protocol name read from the CONNECT (`MQTT`, `MQIsdp`, ...).
        name: String,
        /// The protocol level byte (4 = 3.1.1, 5 = 5.0).
        level: u8,
    },
    /// The packet's total size (fixed header included) is over the configured maximum; raised
    /// from the fixed header alone, before the body is buffered.
    #[error("packet of {size} bytes is over the maximum packet size {max}")]
    PacketTooLarge {
        /// Total packet size announced by the fixed header.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// The bytes do not form a packet of the protocol (Malformed Packet, 0x81).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well formed but breaks a protocol rule (Protocol Error, 0x82).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// A PUBLISH topic name is not a valid topic name (0x90).
    #[error("invalid topic name")]
    TopicNameInvalid,
    /// A SUBSCRIBE/UNSUBSCRIBE topic filter is not a valid filter (0x8F).
    #[error("invalid topic filter")]
    TopicFilterInvalid,
}

impl DecodeError {
    /// The MQTT 5.0 reason code for this error (DISCONNECT or CONNACK).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::UnsupportedProtocol { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::Malformed(_) => ReasonCode::MALFORMED_PACKET,
            DecodeError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::TopicNameInvalid => ReasonCode::TOPIC_NAME_INVALID,
            DecodeError::TopicFilterInvalid => ReasonCode::TOPIC_FILTER_INVALID,
        }
    }

    /// For an unsupported protocol in a CONNECT: the version whose CONNACK format to answer in
    /// and the return/reason code, then close. Levels below 5 (3.1's `MQIsdp` level 3, unknown
    /// lower levels) get the 3.1.1 CONNACK with return code 0x01 (unacceptable protocol
    /// version); levels above 5 get the 5.0 CONNACK with reason code 0x84 (unsupported
    /// protocol version). `None` for every other error: the gateway just closes (before
    /// CONNECT) or sends DISCONNECT with [`DecodeError::reason_code`] (v5).
    pub fn connack(&self) -> Option<(ProtocolVersion, ReasonCode)> {
        match self {
            DecodeError::UnsupportedProtocol { level, .. } if *level < 5 => {
                Some((ProtocolVersion::V311, ReasonCode(0x01)))
            }
            DecodeError::UnsupportedProtocol { .. } => Some((
                ProtocolVersion::V5,
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            )),
            _ => None,
        }
    }
}

/// Why a packet could not be encoded for the given protocol version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The packet does not exist in that version (AUTH in 3.1.1).
    #[error("packet not available in MQTT {0:?}")]
    NotInVersion(ProtocolVersion),
    /// A string or binary field is longer than 65,535 bytes.
    #[error("field of {0} bytes is longer than 65535")]
    FieldTooLong(usize),
    /// The packet is longer than the 268,435,455 bytes a remaining length can express.
    #[error("packet body of {0} bytes is too long")]
    PacketTooLong(usize),
    /// A field holds a value the wire format cannot carry (QoS>0 without a packet id, a 3.1.1
    /// CONNACK return code above 5, a variable byte integer over 268,435,455, ...).
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}
