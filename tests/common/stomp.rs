//! A minimal STOMP client for the end-to-end tests, on the `junction-stomp` codec: raw frames
//! over a real socket, so tests can also send what a well-behaved client never would.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use junction_stomp::{encode, Command, Decoder, Frame, Item, Limits, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// A byte stream a client can run over (TCP, TLS).
pub trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Transport for T {}

/// A client connection.
pub struct StompClient {
    pub stream: Box<dyn Transport>,
    buf: BytesMut,
    decoder: Decoder,
    /// The version frames are encoded with.
    pub version: Version,
    next_receipt: u64,
    /// Frames that arrived while waiting for a receipt, handed out first by `recv`.
    stash: std::collections::VecDeque<Frame>,
}

impl StompClient {
    /// A TCP connection, nothing sent yet.
    pub async fn raw(addr: SocketAddr) -> StompClient {
        StompClient::over(TcpStream::connect(addr).await.unwrap())
    }

    /// A client on an established byte stream (a TLS session, say), nothing sent yet.
    pub fn over(stream: impl Transport + 'static) -> StompClient {
        let stream: Box<dyn Transport> = Box::new(stream);
        let limits = Limits {
            max_frame_bytes: 64 << 20,
            max_body_bytes: 64 << 20,
            ..Limits::DEFAULT
        };
        StompClient {
            stream,
            buf: BytesMut::new(),
            decoder: Decoder::with_limits(Version::V1_2, limits),
            version: Version::V1_2,
            next_receipt: 1,
            stash: std::collections::VecDeque::new(),
        }
    }

    /// Connects as guest with `accept-version` (None: header left out, i.e. 1.0) and extra
    /// CONNECT headers; panics unless the answer is CONNECTED.
    pub async fn connect_with(
        addr: SocketAddr,
        accept: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (StompClient, Frame) {
        let mut c = StompClient::raw(addr).await;
        let connected = c.login(accept, Some(("guest", "guest")), extra).await;
        (c, connected)
    }

    /// Sends CONNECT (with `login`/`passcode` when given) and panics unless the answer is
    /// CONNECTED, which it returns.
    pub async fn login(
        &mut self,
        accept: Option<&str>,
        login: Option<(&str, &str)>,
        extra: &[(&str, &str)],
    ) -> Frame {
        let c = self;
        let mut f = Frame::new(Command::Connect).with_header("host", "/");
        if let Some((l, p)) = login {
            f.push_header("login", l);
            f.push_header("passcode", p);
        }
        if let Some(a) = accept {
            f.push_header("accept-version", a);
        }
        for (k, v) in extra {
            f.push_header(*k, *v);
        }
        c.send(f).await;
        let connected = c.recv().await.expect("an answer to CONNECT");
        assert_eq!(
            connected.command,
            Command::Connected,
            "CONNECT refused: {connected:?}"
        );
        if let Some(v) = connected.header("version").and_then(Version::parse) {
            c.version = v;
            c.decoder.set_version(v);
        }
        connected
    }

    /// Connects as guest with STOMP 1.2.
    pub async fn connect(addr: SocketAddr) -> StompClient {
        StompClient::connect_with(addr, Some("1.2"), &[]).await.0
    }

    /// Sends a frame.
    pub async fn send(&mut self, f: Frame) {
        let mut out = BytesMut::new();
        encode(&f, self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// Sends bytes as they are.
    pub async fn send_raw(&mut self, b: &[u8]) {
        self.stream.write_all(b).await.unwrap();
    }

    /// The next item (frame or heart-beat), or `None` when the server closed the connection.
    pub async fn recv_item(&mut self) -> Option<Item> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(i) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(i);
                }
                if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("nothing from the server within the deadline")
    }

    /// The next frame (heart-beats skipped), or `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<Frame> {
        if let Some(f) = self.stash.pop_front() {
            return Some(f);
        }
        loop {
            match self.recv_item().await? {
                Item::Frame(f) => return Some(f),
                Item::Heartbeat => {}
            }
        }
    }

    /// The next frame, which must be `command`.
    pub async fn expect(&mut self, command: Command) -> Frame {
        let f = self
            .recv()
            .await
            .unwrap_or_else(|| panic!("connection closed while waiting for {command}"));
        assert_eq!(f.command, command, "expected {command}, got {f:?}");
        f
    }

    /// The next MESSAGE.
    pub async fn message(&mut self) -> Frame {
        self.expect(Command::Message).await
    }

    /// Waits for an ERROR frame, then for the server to close the connection; returns the
    /// ERROR.
    pub async fn expect_error_and_close(&mut self) -> Frame {
        let err = self.expect(Command::Error).await;
        assert!(
            self.recv().await.is_none(),
            "the server kept the connection open after ERROR"
        );
        err
    }

    /// Sends `f` with a fresh receipt header and waits for its RECEIPT.
    pub async fn send_with_receipt(&mut self, f: Frame) -> Frame {
        let id = format!("r-{}", self.next_receipt);
        self.next_receipt += 1;
        self.send(f.with_header("receipt", id.as_str())).await;
        // A MESSAGE may overtake the receipt (delivery does not wait for the disk).
        loop {
            let f = loop {
                match self.recv_item().await {
                    Some(Item::Frame(f)) => break f,
                    Some(Item::Heartbeat) => {}
                    None => panic!("connection closed while waiting for receipt {id}"),
                }
            };
            if f.command == Command::Receipt {
                assert_eq!(f.header("receipt-id"), Some(id.as_str()));
                return f;
            }
            assert_eq!(
                f.command,
                Command::Message,
                "waiting for receipt {id}: {f:?}"
            );
            self.stash.push_back(f);
        }
    }

    /// Subscribes (and waits for the receipt, so the subscription exists on return).
    pub async fn subscribe(&mut self, id: &str, dest: &str, ack: &str, extra: &[(&str, &str)]) {
        let mut f = Frame::new(Command::Subscribe)
            .with_header("id", id)
            .with_header("destination", dest)
            .with_header("ack", ack);
        for (k, v) in extra {
            f.push_header(*k, *v);
        }
        self.send_with_receipt(f).await;
    }

    /// Sends a message and waits for its receipt (the message is stored).
    pub async fn publish(&mut self, dest: &str, body: &[u8], extra: &[(&str, &str)]) {
        let mut f = Frame::send(dest, body.to_vec());
        for (k, v) in extra {
            f.push_header(*k, *v);
        }
        self.send_with_receipt(f).await;
    }

    /// ACKs (or NACKs) a MESSAGE by the header this version uses.
    pub async fn ack(&mut self, command: Command, msg: &Frame, extra: &[(&str, &str)]) {
        let mut f = Frame::new(command);
        if self.version == Version::V1_2 {
            f.push_header("id", msg.header("ack").expect("an ack header"));
        } else {
            f.push_header("message-id", msg.header("message-id").unwrap());
            f.push_header("subscription", msg.header("subscription").unwrap());
        }
        for (k, v) in extra {
            f.push_header(*k, *v);
        }
        self.send(f).await;
    }

    /// DISCONNECT with a receipt; waits for the receipt and the close.
    pub async fn disconnect(mut self) {
        self.send_with_receipt(Frame::new(Command::Disconnect))
            .await;
        assert!(self.recv().await.is_none(), "open after DISCONNECT");
    }

    /// Asserts that nothing arrives for `d` (used only after a receipt proved the server
    /// handled everything before it, so a short window suffices).
    pub async fn assert_quiet(&mut self, d: Duration) {
        assert!(self.stash.is_empty(), "unexpected frames: {:?}", self.stash);
        let got = tokio::time::timeout(d, async {
            loop {
                if let Some(Item::Frame(f)) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                    return None;
                }
            }
        })
        .await;
        if let Ok(Some(f)) = got {
            panic!("unexpected frame: {f:?}");
        }
    }
}

/// The body of a frame as text.
pub fn text(f: &Frame) -> &str {
    std::str::from_utf8(&f.body).unwrap()
}
