//! The 8-octet protocol header a client sends before its first frame.

/// The AMQP 0-9-1 protocol header: `"AMQP" 0 0 9 1`. A client opens with it; a server that
/// does not accept what the client sent replies with it and closes the socket.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// Length of the protocol header.
pub const PROTOCOL_HEADER_LEN: usize = PROTOCOL_HEADER.len();

/// What [`parse_protocol_header`] found at the start of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderCheck {
    /// `"AMQP\0\0\x09\x01"`: consume [`PROTOCOL_HEADER_LEN`] bytes and send
    /// `connection.start`.
    Supported,
    /// Fewer than 8 bytes, all matching so far: read more.
    Incomplete,
    /// Another AMQP version, or not AMQP at all: write [`PROTOCOL_HEADER`] and close the
    /// socket (spec 4.2.2). Decided as soon as a byte differs, so a client speaking another
    /// protocol (an HTTP request, a TLS hello) is refused without waiting for 8 bytes.
    Unsupported {
        /// The 4 octets after `"AMQP"` when the client did send `"AMQP"` and 4 more (another
        /// version, e.g. `[1, 1, 0, 9]` or `[0, 0, 9, 0]`); `None` for anything else.
        version: Option<[u8; 4]>,
    },
}

/// Checks the start of a connection for the AMQP 0-9-1 protocol header.
///
/// ```
/// use junction_amqp::{parse_protocol_header, HeaderCheck};
/// assert_eq!(parse_protocol_header(b"AMQP\0\0\x09\x01"), HeaderCheck::Supported);
/// assert_eq!(parse_protocol_header(b"AMQ"), HeaderCheck::Incomplete);
/// assert_eq!(parse_protocol_header(b"GET / HTTP/1.1"), HeaderCheck::Unsupported { version: None });
/// assert_eq!(
///     parse_protocol_header(b"AMQP\x01\x01\x00\x0a"),
///     HeaderCheck::Unsupported { version: Some([1, 1, 0, 10]) }
/// );
/// ```
#[must_use]
pub fn parse_protocol_header(input: &[u8]) -> HeaderCheck {
    let seen = input.len().min(PROTOCOL_HEADER_LEN);
    let (got, want) = (input.get(..seen), PROTOCOL_HEADER.get(..seen));
    if got == want {
        return if seen == PROTOCOL_HEADER_LEN {
            HeaderCheck::Supported
        } else {
            HeaderCheck::Incomplete
        };
    }
    // It differs somewhere. If "AMQP" matched, the difference is in the version octets.
    if input.get(..4) == Some(b"AMQP".as_slice()) {
        return match input.get(4..8) {
            Some(&[a, b, c, d]) => HeaderCheck::Unsupported {
                version: Some([a, b, c, d]),
            },
            // "AMQP" then a differing version byte, before all 8 bytes arrived: the
            // version is already known to be wrong.
            _ => HeaderCheck::Unsupported { version: None },
        };
    }
    HeaderCheck::Unsupported { version: None }
}
