//! [`Frame`] and [`Command`]: the decoded, version-independent form of a STOMP frame.
//!
//! Header names and values held here are *logical* strings: escape sequences (`\n`, `\c`, ...)
//! have already been decoded by the [`Decoder`](crate::Decoder) and are added back by
//! [`encode`](crate::encode). Headers keep their wire order and repeated entries are all kept;
//! [`Frame::header`] applies the STOMP 1.2 rule that the first entry wins.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::DecodeError;
use crate::version::Version;

/// Name of the `content-length` header, which the codec itself reads and writes.
pub const CONTENT_LENGTH: &str = "content-length";

/// A STOMP command: every client and server command of STOMP 1.2 (a superset of 1.0 and 1.1).
///
/// Commands are case-sensitive on the wire (`SEND`, never `send`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `CONNECT`: client opens a session.
    Connect,
    /// `STOMP`: same as `CONNECT` (1.1+); servers must treat both alike.
    Stomp,
    /// `CONNECTED`: server accepts a session.
    Connected,
    /// `SEND`: client publishes a message.
    Send,
    /// `SUBSCRIBE`: client subscribes to a destination.
    Subscribe,
    /// `UNSUBSCRIBE`: client removes a subscription.
    Unsubscribe,
    /// `ACK`: client acknowledges a message.
    Ack,
    /// `NACK`: client rejects a message (1.1+).
    Nack,
    /// `BEGIN`: client starts a transaction.
    Begin,
    /// `COMMIT`: client commits a transaction.
    Commit,
    /// `ABORT`: client rolls back a transaction.
    Abort,
    /// `DISCONNECT`: client closes the session gracefully.
    Disconnect,
    /// `MESSAGE`: server delivers a message to a subscription.
    Message,
    /// `RECEIPT`: server confirms a frame that asked for a receipt.
    Receipt,
    /// `ERROR`: server reports an error (and then closes the connection).
    Error,
}

impl Command {
    /// Every command, client commands first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// Length of the longest command name (`UNSUBSCRIBE`), used to reject a runaway command
    /// line early.
    pub(crate) const MAX_LEN: usize = 11;

    /// The command as it appears on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Parses a command line (without its EOL). Exact, case-sensitive match.
    pub fn from_bytes(line: &[u8]) -> Option<Command> {
        Some(match line {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"CONNECTED" => Command::Connected,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// True for commands a client sends (`CONNECT`, `STOMP`, `SEND`, ... `DISCONNECT`).
    pub const fn is_client(self) -> bool {
        !self.is_server()
    }

    /// True for commands a server sends (`CONNECTED`, `MESSAGE`, `RECEIPT`, `ERROR`).
    pub const fn is_server(self) -> bool {
        matches!(
            self,
            Command::Connected | Command::Message | Command::Receipt | Command::Error
        )
    }

    /// True for the frames that MAY carry a body (`SEND`, `MESSAGE`, `ERROR`); the spec says all
    /// others MUST NOT. The decoder does not enforce this (it is a framing layer); a server that
    /// wants to can check it on the decoded frame.
    pub const fn allows_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }

    /// False for `CONNECT`, `STOMP` and `CONNECTED`, whose headers are never escaped (so that a
    /// 1.0 peer can read them before a version is negotiated); true for every other command.
    ///
    /// The spec names only `CONNECT` and `CONNECTED`; `STOMP` is treated like `CONNECT` because
    /// the spec requires servers to handle both "in the same manner", and it is sent before any
    /// version is agreed.
    pub const fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = DecodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Command::from_bytes(s.as_bytes()).ok_or_else(|| DecodeError::UnknownCommand(s.to_owned()))
    }
}

/// One STOMP frame: a command, ordered headers (repeats kept) and an opaque binary body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The frame's command.
    pub command: Command,
    /// Headers in wire order, unescaped. Repeated names are all kept; see [`Frame::header`].
    pub headers: Vec<(String, String)>,
    /// The body: arbitrary bytes (may contain NUL, need not be UTF-8). Empty when absent.
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and an empty body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// Appends a header (builder style). Repeats are kept, in order.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Frame {
        self.push_header(name, value);
        self
    }

    /// Sets the body (builder style).
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }

    /// Appends a header.
    pub fn push_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push((name.into(), value.into()));
    }

    /// The value of the FIRST header called `name` (STOMP 1.2: "only the first header entry
    /// SHOULD be used"), or `None`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the headers called `name`, in wire order (the first is the current value,
    /// the rest are history).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A `CONNECTED` frame announcing `version` (the one header a 1.1+ server must set).
    pub fn connected(version: Version) -> Frame {
        Frame::new(Command::Connected).with_header("version", version.as_str())
    }

    /// A `RECEIPT` frame answering a frame whose `receipt` header was `receipt_id`.
    pub fn receipt(receipt_id: impl Into<String>) -> Frame {
        Frame::new(Command::Receipt).with_header("receipt-id", receipt_id)
    }

    /// An `ERROR` frame with a short `message` header and no body.
    pub fn error(message: impl Into<String>) -> Frame {
        Frame::new(Command::Error).with_header("message", message)
    }

    /// A `SEND` frame to `destination` with `body`.
    pub fn send(destination: impl Into<String>, body: impl Into<Bytes>) -> Frame {
        Frame::new(Command::Send)
            .with_header("destination", destination)
            .with_body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_round_trip() {
        for c in Command::ALL {
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
            assert_eq!(c.as_str().parse::<Command>(), Ok(c));
            assert!(c.as_str().len() <= Command::MAX_LEN);
            assert_ne!(c.is_client(), c.is_server());
        }
        assert_eq!(Command::from_bytes(b"send"), None);
        assert_eq!(Command::from_bytes(b"SEND "), None);
        assert_eq!(
            "NOPE".parse::<Command>(),
            Err(DecodeError::UnknownCommand("NOPE".into()))
        );
    }

    #[test]
    fn command_classes() {
        let body: Vec<_> = Command::ALL
            .into_iter()
            .filter(|c| c.allows_body())
            .collect();
        assert_eq!(body, [Command::Send, Command::Message, Command::Error]);
        let raw: Vec<_> = Command::ALL
            .into_iter()
            .filter(|c| !c.escapes_headers())
            .collect();
        assert_eq!(raw, [Command::Connect, Command::Stomp, Command::Connected]);
    }

    #[test]
    fn first_header_wins_all_kept() {
        let f = Frame::new(Command::Message)
            .with_header("foo", "World")
            .with_header("bar", "x")
            .with_header("foo", "Hello");
        assert_eq!(f.header("foo"), Some("World"));
        assert_eq!(f.header("nope"), None);
        assert_eq!(
            f.header_values("foo").collect::<Vec<_>>(),
            ["World", "Hello"]
        );
        assert_eq!(f.headers.len(), 3);
    }

    #[test]
    fn constructors() {
        assert_eq!(
            Frame::connected(Version::V1_2).header("version"),
            Some("1.2")
        );
        assert_eq!(Frame::receipt("77").header("receipt-id"), Some("77"));
        assert_eq!(Frame::error("bad").header("message"), Some("bad"));
        let s = Frame::send("/queue/a", &b"hi"[..]);
        assert_eq!(s.command, Command::Send);
        assert_eq!(s.header("destination"), Some("/queue/a"));
        assert_eq!(&s.body[..], b"hi");
    }
}
