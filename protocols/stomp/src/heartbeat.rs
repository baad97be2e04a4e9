//! Heart-beat negotiation (STOMP 1.1+).
//!
//! `CONNECT` carries `heart-beat:<cx>,<cy>` and `CONNECTED` carries `heart-beat:<sx>,<sy>`. The
//! first number of each pair is the smallest interval, in milliseconds, at which the sender can
//! *send* heart-beats (0: it cannot); the second is the interval at which it would like to
//! *receive* them (0: it does not want any). A missing header counts as `0,0`.
//!
//! Per direction, heart-beats flow only if the sender can send and the receiver wants them, at
//! the larger (slower) of the two intervals:
//!
//! ```text
//! client -> server: none if cx == 0 or sy == 0, else every max(cx, sy) ms
//! server -> client: none if sx == 0 or cy == 0, else every max(sx, cy) ms
//! ```
//!
//! A heart-beat is a bare EOL, written by [`encode_heartbeat`](crate::encode_heartbeat) and
//! reported by the decoder as [`Item::Heartbeat`](crate::Item::Heartbeat); but any data at all
//! proves the peer alive, so a receiver should reset its timer on every byte read.

use thiserror::Error;

/// A `heart-beat` header value that is not two non-negative integers separated by a comma.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid heart-beat header {value:?}: expected <ms>,<ms>")]
pub struct InvalidHeartbeat {
    /// The offending header value.
    pub value: String,
}

/// Parses a `heart-beat` header value, `"<x>,<y>"` (milliseconds, each 0 ..= `u32::MAX`).
///
/// Strict: decimal digits only, no sign, no spaces (STOMP 1.2 forbids trimming header values).
///
/// ```
/// use junction_stomp::parse_heartbeat;
/// assert_eq!(parse_heartbeat("0,1000"), Ok((0, 1000)));
/// assert!(parse_heartbeat("1000").is_err());
/// ```
pub fn parse_heartbeat(value: &str) -> Result<(u32, u32), InvalidHeartbeat> {
    let bad = || InvalidHeartbeat {
        value: value.to_owned(),
    };
    let (x, y) = value.split_once(',').ok_or_else(bad)?;
    Ok((parse_ms(x).ok_or_else(bad)?, parse_ms(y).ok_or_else(bad)?))
}

fn parse_ms(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Negotiates heart-beating from the two `heart-beat` headers, `client = (cx, cy)` from
/// `CONNECT` and `server = (sx, sy)` from `CONNECTED` (use `(0, 0)` for a missing header).
///
/// Returns `(send_every_ms, expect_every_ms)` from the **server's** point of view:
/// - `send_every_ms`: the server must send something (a frame or an EOL) at least this often;
///   `0` if the server cannot (`sx == 0`) or the client does not want them (`cy == 0`), else
///   `max(sx, cy)`.
/// - `expect_every_ms`: the client will send something at least this often; `0` if the client
///   cannot (`cx == 0`) or the server does not want them (`sy == 0`), else `max(cx, sy)`. The
///   spec lets the receiver consider the connection dead after a silent window of at least this
///   long, and asks it to allow a margin for timing inaccuracy.
///
/// The rule is symmetric, so a client gets its own `(send, expect)` with the arguments swapped:
/// `negotiate_heartbeat(server, client)`.
///
/// ```
/// use junction_stomp::negotiate_heartbeat;
/// // Client can send every 1 s, wants one every 5 s; server can send every 2 s, wants 10 s.
/// assert_eq!(negotiate_heartbeat((1000, 5000), (2000, 10_000)), (5000, 10_000));
/// // The client cannot send heart-beats: the server must not expect any.
/// assert_eq!(negotiate_heartbeat((0, 5000), (2000, 10_000)), (5000, 0));
/// ```
pub fn negotiate_heartbeat(client: (u32, u32), server: (u32, u32)) -> (u32, u32) {
    let (cx, cy) = client;
    let (sx, sy) = server;
    (direction(sx, cy), direction(cx, sy))
}

/// Interval for one direction: `can` is what the sender can do, `want` what the receiver wants.
fn direction(can: u32, want: u32) -> u32 {
    if can == 0 || want == 0 {
        0
    } else {
        can.max(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_values() {
        assert_eq!(parse_heartbeat("0,0"), Ok((0, 0)));
        assert_eq!(parse_heartbeat("10000,10000"), Ok((10_000, 10_000)));
        assert_eq!(parse_heartbeat("007,1"), Ok((7, 1)));
        assert_eq!(parse_heartbeat("4294967295,0"), Ok((u32::MAX, 0)));
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            "",
            ",",
            "1",
            "1,",
            ",1",
            "1,2,3",
            " 1,2",
            "1, 2",
            "1,2 ",
            "-1,2",
            "+1,2",
            "a,b",
            "1.5,2",
            "4294967296,0",
        ] {
            assert_eq!(
                parse_heartbeat(bad),
                Err(InvalidHeartbeat { value: bad.into() }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn negotiation_follows_the_spec() {
        // Nobody wants heart-beats.
        assert_eq!(negotiate_heartbeat((0, 0), (0, 0)), (0, 0));
        // Both directions on; the slower interval wins.
        assert_eq!(negotiate_heartbeat((100, 200), (300, 50)), (300, 100));
        // Client cannot send -> nothing expected; client wants none -> nothing sent.
        assert_eq!(negotiate_heartbeat((0, 200), (300, 50)), (300, 0));
        assert_eq!(negotiate_heartbeat((100, 0), (300, 50)), (0, 100));
        // Server cannot send / does not want.
        assert_eq!(negotiate_heartbeat((100, 200), (0, 50)), (0, 100));
        assert_eq!(negotiate_heartbeat((100, 200), (300, 0)), (300, 0));
        // Symmetry: swapping the arguments gives the client's view.
        let (c, s) = ((1000, 5000), (2000, 10_000));
        let (srv_send, srv_expect) = negotiate_heartbeat(c, s);
        let (cli_send, cli_expect) = negotiate_heartbeat(s, c);
        assert_eq!((cli_send, cli_expect), (srv_expect, srv_send));
    }
}
