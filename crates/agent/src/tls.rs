//! HTTPS for the agent: a rustls server config from the agent's identity (aws-lc-rs provider)
//! and a listener that completes TLS handshakes off the accept loop, with caps on concurrent
//! connections and handshakes so a flood on the public port cannot starve the MCP data plane.

use crate::store::Identity;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The rustls server config for the agent's identity.
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cert = CertificateDer::from(identity.cert_der.clone());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Caps of the public listener.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Open connections (handshaking or established); beyond it new ones are closed at once.
    pub max_connections: usize,
    /// Handshakes doing their public-key work at the same time; the rest wait their turn
    /// (within `handshake_timeout`).
    pub max_handshakes: usize,
    /// How long a client may take to complete the TLS handshake, queueing included.
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers (slow-loris guard).
    pub header_read_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            max_handshakes: 64,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// An established TLS connection; it holds its slot under
/// [`ListenerLimits::max_connections`] until dropped.
pub struct TlsConnection {
    stream: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for TlsConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A TLS listener: yields connections that completed a handshake (usable with `axum::serve` or
/// with [`crate::serve`]).
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsConnection, SocketAddr)>,
    local: SocketAddr,
    limits: ListenerLimits,
}

impl TlsListener {
    /// Accepts TCP connections on `tcp` and hands over those that complete a handshake.
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        limits: ListenerLimits,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let handshakes = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    accepted = tcp.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                // Responses go out in several small writes (headers, then each SSE event);
                // with Nagle on, each later write waits for the client's delayed ACK (~40 ms).
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
                }
                // Over the cap the connection is closed at once: queueing it would only hold
                // a file descriptor for an attacker.
                let Ok(slot) = connections.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "connection cap reached; closing");
                    drop(stream);
                    continue;
                };
                let config = config.clone();
                let handshakes = handshakes.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let handshake = handshake(stream, config, &handshakes);
                    match tokio::time::timeout(limits.handshake_timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            let _ = tx
                                .send((
                                    TlsConnection {
                                        stream,
                                        _slot: slot,
                                    },
                                    peer,
                                ))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            accepted,
            local,
            limits,
        })
    }

    /// The limits this listener was built with.
    pub fn limits(&self) -> ListenerLimits {
        self.limits
    }

    /// The next established connection; pends forever once the accept loop has stopped.
    pub async fn next_connection(&mut self) -> (TlsConnection, SocketAddr) {
        match self.accepted.recv().await {
            Some(pair) => pair,
            None => std::future::pending().await,
        }
    }
}

/// Reads the ClientHello (cheap, uncapped: a silent client only holds its connection slot),
/// then does the public-key work under the handshake cap.
async fn handshake(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    handshakes: &Semaphore,
) -> std::io::Result<TlsStream<TcpStream>> {
    let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream).await?;
    let _turn = handshakes
        .acquire()
        .await
        .map_err(|_| std::io::Error::other("listener closed"))?;
    start.into_stream(config).await
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.next_connection().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
