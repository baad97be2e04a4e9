//! TLS for every listener: the server configuration built from `[tls]`, the handshake, and the
//! stream type the gateways read and write whether a connection is plain or encrypted.
//!
//! rustls with the *ring* provider (see docs/ARCHITECTURE.md, "Broker process"). The server
//! presents `cert_file`/`key_file`; with `verify = "peer"` it asks for a client certificate
//! and verifies it against `ca_file`; with `cert_login` the verified certificate's subject CN
//! is the user name a client may log in as without a password.
//!
//! What it is not: a place for protocol logic. A gateway sees a [`Stream`] and, through its
//! settings, the certificate's user name; which login that allows is the gateway's business.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;

use crate::config::TlsSection;

/// Why TLS could not be set up or a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A TLS listener is enabled but `[tls]` names no certificate or key.
    #[error("a TLS listener is enabled but [tls] {0} is not set")]
    Missing(&'static str),
    /// A PEM file could not be read or holds nothing usable.
    #[error("reading {path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration (key does not match the certificate, ...).
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The handshake failed (the peer's certificate, protocol, or I/O).
    #[error("TLS handshake: {0}")]
    Handshake(io::Error),
    /// The handshake did not finish in time.
    #[error("no TLS handshake within {0:?}")]
    Timeout(Duration),
}

/// Accepts TLS connections with the configuration of `[tls]`. Cheap to clone.
#[derive(Clone)]
pub struct Acceptor {
    inner: tokio_rustls::TlsAcceptor,
    cert_login: bool,
    timeout: Duration,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("cert_login", &self.cert_login)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// An accepted connection, encrypted or not, with the slow-consumer cut-off: a write that
/// cannot make progress for the write timeout fails with `TimedOut` (the client has stopped
/// reading while the broker has data for it), and the gateway closes the connection.
#[derive(Debug)]
pub struct Stream {
    io: Io,
    write_timeout: Option<Duration>,
    /// Since when writing has been blocked (a timer running out at the write timeout).
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    /// Boxed: rustls' connection state is a few KiB.
    Tls(Box<TlsStream<TcpStream>>),
}

/// What the handshake learned about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// The user name from the client's verified certificate (its subject CN), when
    /// `cert_login` is on and the client presented one.
    pub cert_user: Option<String>,
}

fn pem_error(path: &Path, message: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

impl Acceptor {
    /// Builds the server configuration from `[tls]`.
    ///
    /// # Errors
    /// [`TlsError`] naming the file or setting that is wrong.
    pub fn new(cfg: &TlsSection) -> Result<Acceptor, TlsError> {
        if cfg.cert_file.as_os_str().is_empty() {
            return Err(TlsError::Missing("cert_file"));
        }
        if cfg.key_file.as_os_str().is_empty() {
            return Err(TlsError::Missing("key_file"));
        }
        let chain = load_certs(&cfg.cert_file)?;
        let key =
            PrivateKeyDer::from_pem_file(&cfg.key_file).map_err(|e| pem_error(&cfg.key_file, e))?;
        // ring, not aws-lc-rs: see docs/ARCHITECTURE.md. rustls deprecates ring's provider
        // because ring has no post-quantum key exchange (X25519MLKEM768); classical X25519 and
        // the P-curves remain, which is what RabbitMQ and Mosquitto offer today.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if cfg.verify == "peer" {
            if cfg.ca_file.as_os_str().is_empty() {
                return Err(TlsError::Missing("ca_file (verify = \"peer\")"));
            }
            let mut roots = rustls::RootCertStore::empty();
            for ca in load_certs(&cfg.ca_file)? {
                roots
                    .add(ca)
                    .map_err(|e| pem_error(&cfg.ca_file, e.to_string()))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider);
            let verifier = if cfg.fail_if_no_peer_cert {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Acceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            cert_login: cfg.cert_login && cfg.verify == "peer",
            timeout: Duration::from_millis(cfg.handshake_timeout_ms.max(1)),
        })
    }

    /// Runs the server side of the handshake on `tcp`, within the handshake timeout.
    ///
    /// # Errors
    /// [`TlsError::Handshake`] (including a refused client certificate) or
    /// [`TlsError::Timeout`].
    pub async fn accept(&self, tcp: TcpStream) -> Result<(Stream, Peer), TlsError> {
        let tls = tokio::time::timeout(self.timeout, self.inner.accept(tcp))
            .await
            .map_err(|_| TlsError::Timeout(self.timeout))?
            .map_err(TlsError::Handshake)?;
        let cert_user = if self.cert_login {
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|leaf| common_name(leaf))
        } else {
            None
        };
        Ok((Stream::new(Io::Tls(Box::new(tls))), Peer { cert_user }))
    }
}

/// The first common name (CN) in a certificate's subject, if it is a string.
pub fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

impl Stream {
    fn new(io: Io) -> Stream {
        Stream {
            io,
            write_timeout: None,
            stalled: None,
        }
    }

    /// A plain TCP connection.
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream::new(Io::Plain(tcp))
    }

    /// Sets the slow-consumer cut-off (`None`: writes may wait forever).
    #[must_use]
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Stream {
        self.write_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on the socket under it.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        match &self.io {
            Io::Plain(s) => s.set_nodelay(on),
            Io::Tls(s) => s.get_ref().0.set_nodelay(on),
        }
    }

    /// The write (or flush) under it made no progress: `Pending` until the write timeout has
    /// passed since the stall began, then the slow-consumer error.
    fn stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let Some(limit) = self.write_timeout else {
            return Poll::Pending;
        };
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                tracing::warn!(
                    timeout_ms = limit.as_millis() as u64,
                    "slow consumer: the client read nothing of what is owed to it within the \
                     write timeout; closing the connection"
                );
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("slow consumer: no write progress for {limit:?}"),
                )))
            }
        }
    }

    /// Applies the stall rule to a write's result.
    fn progress<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.stalled(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        this.progress(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        this.progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        };
        this.progress(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The HTTPS listener for the admin API: TCP connections are accepted here and their
/// handshakes run in tasks of their own, so a slow or silent client never holds up the next
/// one; finished handshakes are handed to axum in the order they complete.
pub struct HttpsListener {
    rx: tokio::sync::mpsc::Receiver<(Stream, SocketAddr)>,
    local: SocketAddr,
}

impl HttpsListener {
    /// Starts accepting on `listener` until `stop` fires.
    ///
    /// # Errors
    /// The listener's local address could not be read.
    pub fn new(
        listener: tokio::net::TcpListener,
        acceptor: Acceptor,
        stop: tokio_util::sync::CancellationToken,
    ) -> io::Result<HttpsListener> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    a = listener.accept() => match a {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!(protocol = "https", error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stop.cancelled() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match acceptor.accept(tcp).await {
                        Ok((s, _)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Err(e) => {
                            tracing::info!(protocol = "https", peer = %peer, error = %e, "TLS handshake failed")
                        }
                    }
                });
            }
        });
        Ok(HttpsListener { rx, local })
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = Stream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(x) => x,
            // The accept task ended (shutdown): axum stops through its graceful shutdown.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(common_name(cert.der()).as_deref(), Some("alice"));
        assert_eq!(common_name(&CertificateDer::from(vec![1, 2, 3])), None);
    }

    #[test]
    fn missing_files_are_named() {
        let e = Acceptor::new(&TlsSection::default()).unwrap_err();
        assert!(e.to_string().contains("cert_file"), "{e}");
        let cfg = TlsSection {
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
            ..TlsSection::default()
        };
        let e = Acceptor::new(&cfg).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }
}
