//! Sans-IO STOMP 1.0 / 1.1 / 1.2 frame codec for Junction: bytes in, frames out; frames in,
//! bytes out. No sockets, no runtime, no broker state.
//!
//! # Frame format
//!
//! ```text
//!  COMMAND EOL                      SEND⏎
//!  *( name ":" value EOL )          destination:/queue/a⏎
//!                                   content-type:text/plain⏎
//!                                   content-length:13⏎
//!  EOL                              ⏎
//!  *OCTET                           hello queue a
//!  NUL                              ^@
//!  *( EOL )                         ⏎            (padding / heart-beats)
//!
//!  EOL = [CR] LF      NUL = octet 0
//! ```
//!
//! - A header line splits at its **first** colon; repeated headers are kept in order and the
//!   first one wins ([`Frame::header`]).
//! - The body is exactly `content-length` octets (any bytes, NUL included) when that header is
//!   present, else everything up to the first NUL. Either way a NUL follows.
//! - Header escaping (1.1+, not for `CONNECT`/`STOMP`/`CONNECTED`): `\n` LF, `\c` `:`,
//!   `\\` `\`, and in 1.2 `\r` CR; any other escape is a fatal error. 1.0 has no escaping.
//! - A bare EOL between frames is a heart-beat ([`Item::Heartbeat`]).
//!
//! # Use
//!
//! ```
//! use bytes::BytesMut;
//! use junction_stomp::{encode, negotiate, Command, Decoder, Frame, Item, Version};
//!
//! let mut dec = Decoder::new(Version::V1_2);
//! let mut input = BytesMut::from(&b"CONNECT\naccept-version:1.1,1.2\nhost:h\n\n\0"[..]);
//! let Some(Item::Frame(connect)) = dec.decode(&mut input)? else { panic!() };
//! let version = negotiate(connect.header("accept-version"), &Version::ALL).unwrap();
//! dec.set_version(version);
//!
//! let mut output = BytesMut::new();
//! encode(&Frame::connected(version), version, &mut output).unwrap();
//! assert_eq!(&output[..], b"CONNECTED\nversion:1.2\n\n\0");
//! # Ok::<(), junction_stomp::DecodeError>(())
//! ```
//!
//! Decoding limits ([`Limits`]) are enforced as bytes arrive; every [`DecodeError`] is fatal
//! and maps to an `ERROR` frame with [`DecodeError::to_error_frame`]. The decoder never panics
//! on any input.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod decode;
mod encode;
mod error;
mod escape;
mod frame;
mod heartbeat;
mod version;

pub use decode::{Decoder, Item, Limits};
pub use encode::{encode, encode_heartbeat};
pub use error::{DecodeError, EncodeError};
pub use frame::{Command, Frame, CONTENT_LENGTH};
pub use heartbeat::{negotiate_heartbeat, parse_heartbeat, InvalidHeartbeat};
pub use version::{format_versions, negotiate, Version};
