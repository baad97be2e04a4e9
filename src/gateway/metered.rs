//! Bytes in and out per listener: an accepted stream wrapped in [`Metered`] adds what it reads
//! and writes to its listener's [`Traffic`]: one relaxed atomic addition per read or write
//! call (not per message). The admin API's `/metrics` reads them.
//!
//! Counted on the accepted connection as the gateway reads and writes it: above TLS (a TLS
//! listener counts the protocol's bytes, not the records' overhead) and below WebSocket (a
//! WebSocket listener counts its framing too).

use std::io;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The bytes a listener's connections read and wrote.
#[derive(Debug, Default)]
pub struct Traffic {
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl Traffic {
    /// Bytes read from clients.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Ordering::Relaxed)
    }

    /// Bytes written to clients.
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Ordering::Relaxed)
    }
}

/// Every listener's [`Traffic`], by listener name (`amqp`, `mqtt-ws`, ...).
#[derive(Debug, Default)]
pub struct Meters {
    listeners: std::sync::Mutex<Vec<(&'static str, Arc<Traffic>)>>,
}

impl Meters {
    /// The traffic of listener `name`, created on first use.
    pub fn listener(&self, name: &'static str) -> Arc<Traffic> {
        let mut l = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, t)) = l.iter().find(|(n, _)| *n == name) {
            return Arc::clone(t);
        }
        let t = Arc::new(Traffic::default());
        l.push((name, Arc::clone(&t)));
        t
    }

    /// `(listener, bytes in, bytes out)` of every listener.
    pub fn snapshot(&self) -> Vec<(&'static str, u64, u64)> {
        self.listeners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, t)| (*n, t.bytes_in(), t.bytes_out()))
            .collect()
    }
}

/// A stream that counts its bytes into its listener's [`Traffic`]. Derefs to the stream for
/// its own methods (`set_nodelay`, ...).
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    traffic: Arc<Traffic>,
}

impl<S> Metered<S> {
    /// Wraps `inner`, counting into `traffic`.
    pub fn new(inner: S, traffic: Arc<Traffic>) -> Metered<S> {
        Metered { inner, traffic }
    }
}

impl<S> Deref for Metered<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.traffic.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.traffic
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.traffic
                .bytes_out
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_what_crosses() {
        let (a, mut b) = tokio::io::duplex(64);
        let traffic = Arc::new(Traffic::default());
        let mut m = Metered::new(a, Arc::clone(&traffic));
        m.write_all(b"hello").await.expect("write");
        let mut got = [0u8; 5];
        b.read_exact(&mut got).await.expect("read");
        b.write_all(b"abc").await.expect("write");
        let mut back = [0u8; 3];
        m.read_exact(&mut back).await.expect("read");
        assert_eq!((traffic.bytes_in(), traffic.bytes_out()), (3, 5));
    }
}
