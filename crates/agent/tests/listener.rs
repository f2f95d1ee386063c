//! The public listener's guards: header-read timeout, connection cap, handshake cap and
//! handshake timeout (the port is reachable by anyone who can reach the droplet).

mod common;

use common::*;
use mcp_droplet_agent::client_tls::{PinMode, PinnedCertVerifier};
use mcp_droplet_agent::tls::ListenerLimits;
use mcp_droplet_agent::{AgentHandle, AgentOptions, SimulatedAgentOptions, spawn_simulated_agent};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Longer than every limit the tests set, far shorter than the defaults.
const WAIT: Duration = Duration::from_secs(5);

async fn start(dir: &std::path::Path, limits: ListenerLimits) -> AgentHandle {
    spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap(),
        &user_data("d1", TOKEN),
        SimulatedAgentOptions {
            data_dir: Some(dir.to_path_buf()),
            agent: AgentOptions {
                listener: limits,
                ..AgentOptions::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn tls_connect(handle: &AgentHandle) -> std::io::Result<TlsStream<TcpStream>> {
    let verifier = PinnedCertVerifier::new(PinMode::TrustOnFirstUse);
    let config = verifier.client_config().unwrap();
    let tcp = TcpStream::connect(handle.addr()).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Reads until the peer closes; `Ok` when it closed (EOF or reset) within [`WAIT`].
async fn closed_by_peer<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<(), String> {
    let mut buf = [0u8; 1024];
    tokio::time::timeout(WAIT, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .map_err(|_| "the connection is still open".to_string())
}

async fn healthz_over(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn a_client_that_trickles_its_headers_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        dir.path(),
        ListenerLimits {
            header_read_timeout: Duration::from_millis(300),
            ..ListenerLimits::default()
        },
    )
    .await;
    let mut stream = tls_connect(&handle).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    closed_by_peer(&mut stream).await.unwrap();
    // A client that sends its headers at once is served.
    let mut prompt = tls_connect(&handle).await.unwrap();
    assert!(healthz_over(&mut prompt).await.starts_with("HTTP/1.1 200"));
    handle.shutdown().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_and_a_freed_slot_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        dir.path(),
        ListenerLimits {
            max_connections: 2,
            ..ListenerLimits::default()
        },
    )
    .await;
    let mut first = tls_connect(&handle).await.unwrap();
    let _second = tls_connect(&handle).await.unwrap();
    let over = tls_connect(&handle).await;
    assert!(over.is_err(), "a third connection got through the cap of 2");
    // The held connections still work.
    assert!(healthz_over(&mut first).await.starts_with("HTTP/1.1 200"));
    drop(first);
    // The slot frees when the server sees the close; wait for that, bounded.
    let reconnected = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(stream) = tls_connect(&handle).await {
                return stream;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(reconnected.is_ok(), "the freed slot was never reused");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_does_not_hold_the_handshake_slot() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        dir.path(),
        ListenerLimits {
            max_handshakes: 1,
            ..ListenerLimits::default()
        },
    )
    .await;
    let _silent = TcpStream::connect(handle.addr()).await.unwrap();
    let mut stream = tokio::time::timeout(WAIT, tls_connect(&handle))
        .await
        .expect("a silent client blocked the only handshake slot")
        .unwrap();
    assert!(healthz_over(&mut stream).await.starts_with("HTTP/1.1 200"));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_completes_the_handshake_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(
        dir.path(),
        ListenerLimits {
            handshake_timeout: Duration::from_millis(300),
            ..ListenerLimits::default()
        },
    )
    .await;
    let mut silent = TcpStream::connect(handle.addr()).await.unwrap();
    closed_by_peer(&mut silent).await.unwrap();
    handle.shutdown().await;
}
