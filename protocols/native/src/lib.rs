//! Junction's native binary protocol, version 1: a sans-IO codec shared by the broker and the
//! Rust SDK. Bytes in, [`Frame`]s out ([`Decoder`]); frames in, bytes out ([`encode`]). No
//! sockets, no runtime, no broker state.
//!
//! The protocol is served on TCP port [`DEFAULT_PORT`] (5680) by default.
//!
//! # Frame format
//!
//! All integers are little-endian.
//!
//! ```text
//!  0         4         5         6         8              12
//!  +---------+---------+---------+---------+--------------+---------------------+
//!  | length  | version | opcode  | flags   | request_id   | payload ...         |
//!  | u32     | u8 = 1  | u8      | u16 = 0 | u32          | (opcode-specific)   |
//!  +---------+---------+---------+---------+--------------+---------------------+
//!            |<------------------------ length bytes ------------------------->|
//! ```
//!
//! - `length` counts the bytes after itself, so a frame is `4 + length` bytes, and
//!   `length >= 8`. A receiver checks it against the negotiated maximum frame size before it
//!   buffers any of the body ([`DecodeError::FrameTooLarge`]).
//! - `version` is [`PROTOCOL_VERSION`]; `flags` are reserved and must be 0.
//! - `request_id` is chosen by the client for each request and echoed in the response, so many
//!   requests can be in flight at once (pipelining). Responses may come back in any order.
//!   Server pushes (`Deliver`, `Assignment`, `Cancelled`, `Flow`), heartbeats and
//!   connection-level errors carry 0, so clients should number requests from 1.
//! - The payload must be consumed exactly: bytes left after the last field are an error
//!   ([`DecodeError::TrailingBytes`]).
//!
//! ## Primitive encodings
//!
//! | type      | encoding                                                                  |
//! |-----------|---------------------------------------------------------------------------|
//! | `u8` `u16` `u32` `u64` `i64` | little-endian                                          |
//! | `bool`    | `u8`, 0 or 1; anything else is an error                                   |
//! | `str`     | `u16` byte length + UTF-8 (invalid UTF-8 is an error)                     |
//! | `bytes`   | `u32` length + bytes (decoded zero-copy as [`bytes::Bytes`])              |
//! | `opt<T>`  | `u8` 0 (absent) or 1 + `T`                                                |
//! | `list<T>` | `u32` count + items                                                       |
//! | `map`     | `u16` count + (`str` key, `bytes` value) pairs, order kept ([`Map`])      |
//! | enums     | `u8` tag (+ payload): [`ExchangeKind`], [`StartPosition`]                  |
//! | [`Properties`] | `u16` presence bitmap + the present fields (see its docs)            |
//! | [`ErrorCode`]  | `u16`                                                                |
//!
//! Every message's payload is its fields in the order its struct declares them.
//!
//! # Opcodes
//!
//! Grouped by area in the high nibble. *C* = client -> server, *S* = server -> client,
//! *both* = either peer. Every request is answered by one response with the same request id,
//! except where noted.
//!
//! | opcode | message | dir | payload | answered by |
//! |--------|---------|-----|---------|-------------|
//! | `0x01` | `Hello`           | C    | [`Hello`]           | `Welcome` |
//! | `0x02` | `Welcome`         | S    | [`Welcome`]         | |
//! | `0x03` | `Heartbeat`       | both | empty, request id 0 | nothing |
//! | `0x04` | `Close`           | both | [`Close`]           | `CloseOk`, then the connection closes |
//! | `0x05` | `CloseOk`         | both | empty               | |
//! | `0x06` | `Ok`              | S    | empty               | |
//! | `0x07` | `Error`           | S    | [`ErrorResponse`]   | (request id 0: connection error, then close) |
//! | `0x10` | `DeclareExchange` | C    | [`DeclareExchange`] | `Ok` |
//! | `0x11` | `DeleteExchange`  | C    | [`DeleteExchange`]  | `Ok` |
//! | `0x12` | `DeclareQueue`    | C    | [`DeclareQueue`]    | `QueueDeclared` |
//! | `0x13` | `QueueDeclared`   | S    | [`QueueDeclared`]   | |
//! | `0x14` | `DeleteQueue`     | C    | [`DeleteQueue`]     | `Deleted` |
//! | `0x15` | `PurgeQueue`      | C    | [`PurgeQueue`]      | `Deleted` |
//! | `0x16` | `Deleted`         | S    | [`Deleted`]         | |
//! | `0x17` | `Bind`            | C    | [`Binding`]         | `Ok` |
//! | `0x18` | `Unbind`          | C    | [`Binding`]         | `Ok` |
//! | `0x20` | `Publish`         | C    | [`Publish`]         | `Published` / `Returned` if `confirm`; else only failures |
//! | `0x21` | `Published`       | S    | [`Published`]       | |
//! | `0x22` | `Returned`        | S    | [`Returned`]        | |
//! | `0x23` | `PublishBatch`    | C    | [`PublishBatch`]    | `PublishedBatch` |
//! | `0x24` | `PublishedBatch`  | S    | [`PublishedBatch`]  | |
//! | `0x25` | `Flow`            | S push | [`Flow`]          | |
//! | `0x26` | `PublishHalf`     | C    | [`PublishHalf`]     | `HalfStored` |
//! | `0x27` | `HalfStored`      | S    | [`HalfStored`]      | |
//! | `0x28` | `EndTransaction`  | C    | [`EndTransaction`]  | `Published` (none with request id 0) |
//! | `0x29` | `CheckTransaction`| S push | [`CheckTransaction`] | |
//! | `0x2A` | `RegisterTransactionGroup` | C | [`RegisterTransactionGroup`] | `Ok` |
//! | `0x30` | `Subscribe`       | C    | [`Subscribe`]       | `Subscribed` |
//! | `0x31` | `Subscribed`      | S    | [`Subscribed`]      | |
//! | `0x32` | `Unsubscribe`     | C    | [`Unsubscribe`]     | `Ok` |
//! | `0x33` | `Ack`             | C    | [`Ack`]             | only failures |
//! | `0x34` | `Nack`            | C    | [`Nack`]            | only failures |
//! | `0x35` | `SetPrefetch`     | C    | [`SetPrefetch`]     | `Ok` |
//! | `0x36` | `Deliver`         | S push | [`Deliver`]       | |
//! | `0x37` | `Assignment`      | S push | [`Assignment`]    | |
//! | `0x38` | `Cancelled`       | S push | [`Cancelled`]     | |
//! | `0x40` | `Pull`            | C    | [`Pull`]            | `Pulled` |
//! | `0x41` | `Pulled`          | S    | [`Pulled`]          | |
//! | `0x42` | `QueryOffset`     | C    | [`QueryOffset`]     | `Offset` |
//! | `0x43` | `Offset`          | S    | [`Offset`]          | |
//! | `0x44` | `Lookup`          | C    | [`Lookup`]          | `Found` |
//! | `0x45` | `Found`           | S    | [`Found`]           | |
//! | `0x46` | `Redrive`         | C    | [`Redrive`]         | `Deleted` (messages moved) |
//!
//! Any request may instead be answered by `Error`. Opcode `0x00` and every byte not listed
//! are invalid ([`DecodeError::UnknownOpcode`]). [`Opcode::origin`] tells who may send each.
//!
//! # Session
//!
//! The client sends `Hello` first; nothing else is valid before `Welcome`. Until then a server
//! may refuse frames over [`MIN_MAX_FRAME`], so `Hello` must fit in it. `Welcome` carries the
//! negotiated heartbeat interval and maximum frame size ([`negotiate_max_frame`]), which both
//! peers then use ([`Decoder::max_frame`], [`encode_with_max`]). Every decode error is fatal:
//! the receiver sends `Error` with request id 0 and [`DecodeError::code`], then closes.
//!
//! # Use
//!
//! ```
//! use bytes::BytesMut;
//! use junction_native::{encode, Body, Decoder, Frame, Hello};
//!
//! let hello = Hello { client_id: "app-1".into(), vhost: "/".into(), ..Default::default() };
//! let mut wire = BytesMut::new();
//! encode(&Frame::new(1, hello.clone()), &mut wire)?;
//!
//! let mut decoder = Decoder::default();
//! let frame = decoder.decode(&mut wire)?.expect("a whole frame");
//! assert_eq!(frame.request_id, 1);
//! assert_eq!(frame.body, Body::Hello(hello));
//! assert!(wire.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod body;
mod decode;
mod encode;
mod error;
mod frame;
mod messages;
mod primitives;
mod properties;

pub use body::{Body, Opcode, Origin};
pub use decode::Decoder;
pub use encode::{encode, encode_with_max};
pub use error::{DecodeError, EncodeError, ErrorCode};
pub use frame::{Frame, HEADER_LEN, LENGTH_PREFIX_LEN};
pub use messages::*;
pub use primitives::Map;
pub use properties::Properties;

/// The protocol version this crate speaks, carried in every frame header.
pub const PROTOCOL_VERSION: u8 = 1;

/// The default maximum frame length (16 MiB), used until a smaller one is negotiated.
pub const DEFAULT_MAX_FRAME: u32 = 16 * 1024 * 1024;

/// The smallest maximum frame length a peer may negotiate; every peer accepts frames this
/// large, and `Hello` must fit in it.
pub const MIN_MAX_FRAME: u32 = 4096;

/// The native protocol's standard TCP port.
pub const DEFAULT_PORT: u16 = 5680;

/// The maximum frame length for a session: the smaller of what the client asked for in
/// [`Hello::max_frame`] (0 = no preference) and the server's own limit, but never below
/// [`MIN_MAX_FRAME`]. The server sends it in [`Welcome::max_frame`].
pub const fn negotiate_max_frame(requested: u32, server_limit: u32) -> u32 {
    let max = if requested == 0 || requested > server_limit {
        server_limit
    } else {
        requested
    };
    if max < MIN_MAX_FRAME {
        MIN_MAX_FRAME
    } else {
        max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_frame_negotiation() {
        assert_eq!(negotiate_max_frame(0, DEFAULT_MAX_FRAME), DEFAULT_MAX_FRAME);
        assert_eq!(negotiate_max_frame(65_536, DEFAULT_MAX_FRAME), 65_536);
        assert_eq!(negotiate_max_frame(u32::MAX, 1 << 20), 1 << 20);
        assert_eq!(negotiate_max_frame(10, DEFAULT_MAX_FRAME), MIN_MAX_FRAME);
        assert_eq!(negotiate_max_frame(0, 0), MIN_MAX_FRAME);
    }
}
