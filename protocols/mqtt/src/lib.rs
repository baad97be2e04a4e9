//! Sans-IO MQTT 3.1.1 and 5.0 codec for Junction: bytes in, packets out; packets in, bytes
//! out. No sockets, no runtime, no broker state. One packet model ([`Packet`]) and one set of
//! wire primitives serve both versions; the version only decides which fields go on the wire.
//!
//! # Use
//!
//! ```
//! use bytes::BytesMut;
//! use junction_mqtt::{encode, ConnAck, Decoder, Packet, ProtocolVersion};
//!
//! let mut dec = Decoder::new(junction_mqtt::DEFAULT_MAX_PACKET_SIZE);
//! // A 3.1.1 CONNECT, clean session, keep alive 60, client id "c".
//! let mut input = BytesMut::from(&b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"[..]);
//! let Some(Packet::Connect(connect)) = dec.decode(&mut input)? else { panic!() };
//! assert_eq!(dec.version(), Some(ProtocolVersion::V311));
//! assert_eq!(connect.client_id, "c");
//!
//! let mut output = BytesMut::new();
//! encode(&Packet::ConnAck(ConnAck::default()), ProtocolVersion::V311, &mut output)?;
//! assert_eq!(&output[..], b"\x20\x02\x00\x00");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! Every [`DecodeError`] is fatal. [`DecodeError::reason_code`] is the 5.0 reason code to
//! send (DISCONNECT once connected: 0x81 Malformed Packet, 0x82 Protocol Error, 0x95 Packet
//! too large, 0x8F/0x90 invalid topic filter/name; CONNACK during the CONNECT), and
//! [`DecodeError::connack`] says which CONNACK to send for an unsupported protocol level
//! (3.1.1 return code 0x01, or 5.0 reason code 0x84). The decoder validates packet syntax,
//! property placement and topic names/filters; session rules (topic alias ranges, receive
//! maximum, packet identifiers in use, payload format checks) are the gateway's.
//!
//! # Topics
//!
//! [`topic`] validates topic names and filters, matches a name against a filter (`$` topics
//! are not matched by a leading wildcard), splits `$share/<group>/<filter>`, and translates
//! names and filters to and from the AMQP routing and binding keys of `amq.topic`
//! (RabbitMQ's convention, made reversible: see the module docs for the edge cases).
//!
//! # Why a hand-written codec
//!
//! The candidates, as evaluated for this crate:
//!
//! - `mqttbytes` 0.6.0, its last release (2021): its v5 UNSUBSCRIBE decoder prints through a
//!   stray `dbg!(pkid)` (`src/v5/unsubscribe.rs`), and its v5 reader returns
//!   `Error::PayloadRequired` for every remaining length 0 but PINGREQ/PINGRESP, so the
//!   spec-valid zero-length DISCONNECT (reason 0x00 Normal disconnection, MQTT 5.0
//!   §3.14.2.1) is an error and a clean disconnect would fire the client's will. rumqttc
//!   0.25.1's internal v5 reader has the same rule; the test
//!   `zero_length_v5_disconnect_rumqttc_rejects_we_accept` shows it.
//! - `rmqtt-codec` 0.3.1 (MIT OR Apache-2.0, actively released): decoded real rumqttc v4 and
//!   v5 traffic with `Bytes` payloads and few allocations, and it does not depend on ntex nor
//!   need an async runtime: its codecs implement `tokio_util::codec::{Decoder, Encoder}`,
//!   plain synchronous traits over `BytesMut`, and its v5 decoder accepts the zero-length
//!   DISCONNECT. It was still not taken:
//!   - it declares `rust-version = "1.94.0"` (its `rmqtt-utils` dependency 1.89), above this
//!     workspace's 1.88;
//!   - it pulls in `rmqtt-utils` (the rmqtt server's utilities: `anyhow`, `regex`,
//!     `once_cell`, `serde_json`, `chrono` with its clock), `chrono`, `serde` derives on every
//!     type, `bytestring`, `log`, `tokio-util` (and so `tokio`), and `thiserror` 1 next to
//!     the workspace's `thiserror` 2;
//!   - it has two disjoint packet models (`v3::Packet`, `v5::Packet`, each with its own
//!     packet structs, `ByteString` topics and `NonZero*` ids), so one model on top means a
//!     conversion in both directions for every packet of both versions: about as much code
//!     as the wire format itself, with two codebases to keep in step;
//!   - its version detection answers any unknown protocol level with one
//!     `DecodeError::InvalidProtocol`, without the level, so the gateway could not pick
//!     between the 3.1.1 CONNACK 0x01 and the 5.0 CONNACK 0x84;
//!   - its encoders panic rather than fail on an over-long remaining length
//!     (`write_variable_length`: "length is too big"), guarded only by the codec's own size
//!     check.
//!
//! The wire format is small (fifteen packet types, one property table), and writing it here
//! gives one model, typed errors that carry reason codes, the size check before buffering,
//! and a decoder that is lint-enforced never to index, unwrap or panic.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod decode;
mod encode;
mod error;
mod packet;
mod primitives;
mod properties;
pub mod topic;

#[cfg(test)]
mod tests;

pub use decode::{Decoder, DEFAULT_MAX_PACKET_SIZE};
pub use encode::encode;
pub use error::{DecodeError, EncodeError};
pub use packet::{
    ConnAck, Connect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
    ReasonOnly, RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, Unsubscribe,
    Will,
};
pub use primitives::MAX_VARINT;
