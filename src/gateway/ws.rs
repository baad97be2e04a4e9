//! WebSocket transport for byte-stream protocols (STOMP over WebSocket; MQTT over WebSocket
//! can use it the same way).
//!
//! [`accept`] performs the HTTP upgrade on an accepted TCP connection (path check and
//! subprotocol choice) and returns a [`WsStream`]: the connection as a plain byte stream,
//! implementing tokio's [`AsyncRead`] and [`AsyncWrite`], so a gateway written for TCP serves
//! WebSocket clients unchanged.
//!
//! ```text
//!  client                       WsStream                          gateway
//!  [ws msg "CONN"] [ws msg "ECT\n..."]  --poll_read-->  b"CONNECT\n..." (concatenated)
//!  [one ws message per flush]           <--poll_flush--  write(b"CONNECTED...") + flush()
//! ```
//!
//! - Incoming text and binary messages are concatenated into one byte stream: message
//!   boundaries carry no meaning (a protocol frame may span messages, a message may hold
//!   several frames). Ping/pong is answered by tungstenite; a close message is end of stream.
//! - Outgoing bytes are buffered until `flush`; each flush sends them as ONE message. With
//!   [`Outgoing::TextWhenUtf8`] a message whose bytes are valid UTF-8 goes as a text message
//!   (what browser STOMP clients read most easily, and RabbitMQ Web-STOMP's default), otherwise
//!   as binary; [`Outgoing::Binary`] always sends binary (MQTT requires it).
//!
//! What it is not: a WebSocket client, or a place for protocol logic.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use crate::tls;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::metered::Metered;

/// Outgoing bytes above this are sent (flushed) before more are accepted.
const MAX_BUFFERED: usize = 1 << 20;

/// How outgoing messages are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outgoing {
    /// Every message is binary.
    Binary,
    /// A message that is valid UTF-8 is sent as text, anything else as binary.
    TextWhenUtf8,
}

/// What an upgrade accepts.
#[derive(Debug, Clone)]
pub struct Upgrade {
    /// Request paths accepted (`["/ws", "/"]`); anything else gets 404.
    pub paths: Vec<String>,
    /// Subprotocols the server speaks, most preferred first (`v12.stomp`, ...). The first one
    /// the client offers, in this order, is chosen; a client that offers none is accepted
    /// without one.
    pub subprotocols: Vec<String>,
    /// Largest WebSocket message (and frame) accepted from the client, bytes.
    pub max_message: usize,
    /// Time allowed for the HTTP upgrade.
    pub timeout: Duration,
    /// How outgoing messages are typed.
    pub outgoing: Outgoing,
}

/// Why an upgrade failed.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    /// The HTTP upgrade did not complete within [`Upgrade::timeout`].
    #[error("no WebSocket upgrade within {0:?}")]
    Timeout(Duration),
    /// The request was not a valid WebSocket upgrade (or was refused: wrong path).
    #[error("WebSocket handshake: {0}")]
    Handshake(#[from] tokio_tungstenite::tungstenite::Error),
}

/// A WebSocket connection seen as a byte stream. See the module docs.
pub struct WsStream {
    inner: WebSocketStream<Metered<tls::Stream>>,
    /// Received bytes not yet read.
    read: Bytes,
    /// Written bytes not yet sent.
    write: BytesMut,
    outgoing: Outgoing,
    protocol: Option<String>,
    /// The close message was received (or the stream ended).
    eof: bool,
}

impl std::fmt::Debug for WsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsStream")
            .field("protocol", &self.protocol)
            .field("outgoing", &self.outgoing)
            .finish_non_exhaustive()
    }
}

/// Upgrades an accepted TCP connection to WebSocket.
///
/// # Errors
/// [`WsError`] for a timeout, a request that is not an upgrade, or a path not in
/// [`Upgrade::paths`] (answered with 404 before closing).
pub async fn accept(stream: Metered<tls::Stream>, upgrade: &Upgrade) -> Result<WsStream, WsError> {
    let _ = stream.set_nodelay(true);
    let mut chosen: Option<String> = None;
    // The callback's signature is tungstenite's (`Callback`): its error type is not ours to box.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        if !upgrade.paths.iter().any(|p| p == path) {
            let mut e = ErrorResponse::new(Some(format!("no WebSocket endpoint at {path}\n")));
            *e.status_mut() = StatusCode::NOT_FOUND;
            return Err(e);
        }
        let offered: Vec<&str> = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        if let Some(p) = upgrade
            .subprotocols
            .iter()
            .find(|p| offered.contains(&p.as_str()))
        {
            if let Ok(v) = HeaderValue::from_str(p) {
                resp.headers_mut().insert("sec-websocket-protocol", v);
                chosen = Some(p.clone());
            }
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(upgrade.max_message))
        .max_frame_size(Some(upgrade.max_message));
    let inner = tokio::time::timeout(
        upgrade.timeout,
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)),
    )
    .await
    .map_err(|_| WsError::Timeout(upgrade.timeout))??;
    Ok(WsStream {
        inner,
        read: Bytes::new(),
        write: BytesMut::new(),
        outgoing: upgrade.outgoing,
        protocol: chosen,
        eof: false,
    })
}

impl WsStream {
    /// The subprotocol agreed in the upgrade, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Sends the buffered bytes as one message (if any), then flushes the socket.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.write.is_empty() {
            ready!(Pin::new(&mut self.inner).poll_ready(cx)).map_err(io::Error::other)?;
            let bytes = self.write.split().freeze();
            let msg = match self.outgoing {
                Outgoing::TextWhenUtf8 => match Utf8Bytes::try_from(bytes.clone()) {
                    Ok(text) => Message::Text(text),
                    Err(_) => Message::Binary(bytes),
                },
                Outgoing::Binary => Message::Binary(bytes),
            };
            Pin::new(&mut self.inner)
                .start_send(msg)
                .map_err(io::Error::other)?;
        }
        Pin::new(&mut self.inner)
            .poll_flush(cx)
            .map_err(io::Error::other)
    }
}

impl AsyncRead for WsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.read.is_empty() {
                let n = this.read.len().min(buf.remaining());
                buf.put_slice(&this.read[..n]);
                this.read.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.inner).poll_next(cx)) {
                Some(Ok(Message::Binary(b))) => this.read = b,
                Some(Ok(Message::Text(t))) => this.read = Bytes::from(t),
                Some(Ok(Message::Close(_))) | None => this.eof = true,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.write.len() >= MAX_BUFFERED {
            ready!(this.poll_send(cx))?;
        }
        this.write.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner)
            .poll_close(cx)
            .map_err(io::Error::other)
    }
}
