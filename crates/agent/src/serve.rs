//! Serves the router on the TLS listener with hyper directly, because `axum::serve` cannot set
//! a header-read timeout: without one a client that trickles its headers holds a connection
//! slot forever.

use crate::tls::TlsListener;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Serves `app` on `listener` until `shutdown`; then stops accepting, lets open connections
/// finish their current request, and returns when they are closed.
pub async fn serve(mut listener: TlsListener, app: Router, shutdown: CancellationToken) {
    let limits = listener.limits();
    let connections = TaskTracker::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = listener.next_connection() => next,
        };
        let service = TowerToHyperService::new(app.clone());
        let stop = shutdown.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let connection = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    connections.close();
    connections.wait().await;
}
