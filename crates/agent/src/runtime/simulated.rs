//! A container runtime in the agent's own process: every "container" is a real rmcp MCP server,
//! reached over an in-memory pipe (stdio) or a loopback HTTP listener (streamable HTTP).

use super::{
    ContainerInfo, ContainerRuntime, ContainerUsage, McpConnection, ProgressSink, RuntimeError,
};
use crate::api::{PullCredentials, PullProgress, ServerSpec, Transport};
use crate::sim_mcp::{SimMcpServer, SimProtocol};
use futures::future::BoxFuture;
use rmcp::ServiceExt;
use rmcp::transport::streamable_http_server::{
    StreamableHttpService, session::local::LocalSessionManager,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Latency and failure injection of the simulated runtime.
#[derive(Debug, Clone, Default)]
pub struct SimulatedRuntimeOptions {
    /// How long a pull takes.
    pub pull_latency: Duration,
    /// How long a start takes.
    pub start_latency: Duration,
    /// Images whose pull fails.
    pub failing_pulls: HashSet<String>,
    /// Images whose containers fail to start.
    pub failing_starts: HashSet<String>,
}

#[derive(Debug)]
struct SimContainer {
    server: String,
    spec_hash: String,
    image: String,
    transport: Transport,
    mcp_path: String,
    protocol: SimProtocol,
    running: bool,
    restart_count: u32,
    logs: Vec<String>,
    /// Cancelled when this incarnation of the container dies (crash or removal).
    life: CancellationToken,
    http_url: Option<String>,
}

#[derive(Debug, Default)]
struct SimState {
    images: HashSet<String>,
    containers: BTreeMap<String, SimContainer>,
    next_id: u64,
    options: SimulatedRuntimeOptions,
}

/// The simulated runtime. Clone it to share one set of containers between agent restarts.
#[derive(Debug, Clone, Default)]
pub struct SimulatedRuntime {
    state: Arc<Mutex<SimState>>,
}

impl SimulatedRuntime {
    /// A runtime with the given latencies and failures.
    pub fn new(options: SimulatedRuntimeOptions) -> Self {
        Self {
            state: Arc::new(Mutex::new(SimState {
                options,
                ..SimState::default()
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock leaves plain data behind; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes future pulls of `image` fail (failure injection).
    pub fn fail_pulls_of(&self, image: &str) {
        self.lock().options.failing_pulls.insert(image.to_string());
    }

    /// Makes future starts of `image` fail (failure injection).
    pub fn fail_starts_of(&self, image: &str) {
        self.lock().options.failing_starts.insert(image.to_string());
    }

    /// Simulates a crash followed by the engine's restart of the container of `server`: the
    /// running MCP server dies and a fresh one takes its place. Returns false if none exists.
    pub fn crash_and_restart(&self, server: &str) -> bool {
        let mut state = self.lock();
        let Some(container) = state.containers.values_mut().find(|c| c.server == server) else {
            return false;
        };
        container.life.cancel();
        container.life = CancellationToken::new();
        container.restart_count += 1;
        container.http_url = None;
        container.logs.push("simulated crash; restarted".into());
        true
    }

    /// Simulates someone removing the container behind the agent's back.
    pub fn remove_behind_agents_back(&self, server: &str) -> bool {
        let mut state = self.lock();
        let id = state
            .containers
            .iter()
            .find(|(_, c)| c.server == server)
            .map(|(id, _)| id.clone());
        match id.and_then(|id| state.containers.remove(&id)) {
            Some(c) => {
                c.life.cancel();
                true
            }
            None => false,
        }
    }

    /// Number of containers that exist (running or not).
    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    fn info(id: &str, c: &SimContainer) -> ContainerInfo {
        ContainerInfo {
            id: id.to_string(),
            server: c.server.clone(),
            spec_hash: c.spec_hash.clone(),
            running: c.running,
            restart_count: c.restart_count,
            exit_reason: None,
            incarnation: c.restart_count.to_string(),
        }
    }
}

/// Sets TCP_NODELAY on every accepted connection: a simulated container must not add the
/// ~40 ms that Nagle's algorithm and delayed ACKs cost a response written in several pieces.
fn nodelay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    })
}

async fn serve_http(
    server: SimMcpServer,
    protocol: SimProtocol,
    path: String,
    life: CancellationToken,
) -> Result<String, RuntimeError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| RuntimeError::Start(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Start(e.to_string()))?;
    let config = protocol
        .http_config()
        .with_cancellation_token(life.child_token());
    let service: StreamableHttpService<SimMcpServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let router = axum::Router::new().nest_service(&path, service);
    tokio::spawn(async move {
        let _ = axum::serve(nodelay(listener), router)
            .with_graceful_shutdown(async move { life.cancelled_owned().await })
            .await;
    });
    Ok(format!("http://{addr}{path}"))
}

/// Serves the simulated server over the legacy HTTP+SSE transport: `GET {path}` opens a session
/// whose first event names the POST URL for that session.
async fn serve_sse(
    server: SimMcpServer,
    path: String,
    life: CancellationToken,
) -> Result<String, RuntimeError> {
    use axum::extract::{Query, State};
    use axum::response::sse::{Event, Sse};
    use futures::StreamExt;
    use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
    use std::collections::HashMap;

    type Sessions = Arc<Mutex<HashMap<String, tokio::sync::mpsc::Sender<ClientJsonRpcMessage>>>>;

    #[derive(serde::Deserialize)]
    struct SessionQuery {
        session_id: String,
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| RuntimeError::Start(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Start(e.to_string()))?;
    let sessions: Sessions = Arc::default();
    let open = {
        let life = life.clone();
        move |State(sessions): State<Sessions>| {
            let server = server.clone();
            let life = life.clone();
            async move {
                let id = crate::secret::Secret::random().expose()[..16].to_string();
                let (in_tx, in_rx) = tokio::sync::mpsc::channel::<ClientJsonRpcMessage>(64);
                let (out_tx, out_rx) = futures::channel::mpsc::channel::<ServerJsonRpcMessage>(64);
                sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), in_tx);
                tokio::spawn(async move {
                    let transport = (out_tx, tokio_stream::wrappers::ReceiverStream::new(in_rx));
                    if let Ok(running) = server.serve(transport).await {
                        let ct = running.cancellation_token();
                        tokio::select! {
                            _ = life.cancelled() => ct.cancel(),
                            _ = running.waiting() => {}
                        }
                    }
                });
                let endpoint = futures::stream::once(async move {
                    Ok::<_, std::convert::Infallible>(
                        Event::default()
                            .event("endpoint")
                            .data(format!("/messages?session_id={id}")),
                    )
                });
                let messages = out_rx.map(|m| {
                    Ok(Event::default()
                        .event("message")
                        .data(serde_json::to_string(&m).unwrap_or_default()))
                });
                Sse::new(endpoint.chain(messages))
            }
        }
    };
    let post = |State(sessions): State<Sessions>,
                Query(q): Query<SessionQuery>,
                axum::Json(message): axum::Json<ClientJsonRpcMessage>| async move {
        let tx = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&q.session_id)
            .cloned();
        match tx {
            Some(tx) if tx.send(message).await.is_ok() => axum::http::StatusCode::ACCEPTED,
            _ => axum::http::StatusCode::NOT_FOUND,
        }
    };
    let router = axum::Router::new()
        .route(&path, axum::routing::get(open))
        .route("/messages", axum::routing::post(post))
        .with_state(sessions);
    tokio::spawn(async move {
        let _ = axum::serve(nodelay(listener), router)
            .with_graceful_shutdown(async move { life.cancelled_owned().await })
            .await;
    });
    Ok(format!("http://{addr}{path}"))
}

impl ContainerRuntime for SimulatedRuntime {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn has_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, RuntimeError>> {
        Box::pin(async move { Ok(self.lock().images.contains(image)) })
    }

    fn pull<'a>(
        &'a self,
        image: &'a str,
        _credentials: Option<&'a PullCredentials>,
        progress: ProgressSink,
    ) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            let (latency, fails) = {
                let s = self.lock();
                (
                    s.options.pull_latency,
                    s.options.failing_pulls.contains(image),
                )
            };
            const TOTAL: u64 = 40 * 1024 * 1024;
            for step in 1..=4u64 {
                tokio::time::sleep(latency / 4).await;
                progress(PullProgress {
                    current_bytes: TOTAL * step / 4,
                    total_bytes: TOTAL,
                });
            }
            if fails {
                return Err(RuntimeError::Pull {
                    image: image.to_string(),
                    message: "simulated pull failure (manifest unknown)".into(),
                });
            }
            self.lock().images.insert(image.to_string());
            Ok(())
        })
    }

    fn create_and_start<'a>(
        &'a self,
        server: &'a str,
        spec: &'a ServerSpec,
        spec_hash: &'a str,
    ) -> BoxFuture<'a, Result<String, RuntimeError>> {
        Box::pin(async move {
            let (latency, fails, has_image) = {
                let s = self.lock();
                (
                    s.options.start_latency,
                    s.options.failing_starts.contains(&spec.image),
                    s.images.contains(&spec.image),
                )
            };
            if !has_image {
                return Err(RuntimeError::Start(format!(
                    "image {} not present",
                    spec.image
                )));
            }
            tokio::time::sleep(latency).await;
            if fails {
                return Err(RuntimeError::Start(
                    "simulated start failure (exit code 1)".into(),
                ));
            }
            let life = CancellationToken::new();
            let mcp_path = spec.mcp_path.clone().unwrap_or_else(|| {
                if spec.transport == Transport::Sse {
                    "/sse".into()
                } else {
                    "/mcp".into()
                }
            });
            let protocol = SimProtocol::from_env(&spec.env);
            let mcp_server = SimMcpServer::new(&spec.image).with_protocol(protocol);
            let http_url = match spec.transport {
                Transport::StreamableHttp => {
                    Some(serve_http(mcp_server, protocol, mcp_path.clone(), life.clone()).await?)
                }
                Transport::Sse => {
                    Some(serve_sse(mcp_server, mcp_path.clone(), life.clone()).await?)
                }
                Transport::Stdio => None,
            };
            let mut s = self.lock();
            s.next_id += 1;
            let id = format!("sim{:061x}", s.next_id);
            s.containers.insert(
                id.clone(),
                SimContainer {
                    server: server.to_string(),
                    spec_hash: spec_hash.to_string(),
                    image: spec.image.clone(),
                    transport: spec.transport,
                    mcp_path,
                    protocol,
                    running: true,
                    restart_count: 0,
                    logs: vec![format!("started simulated MCP server for {}", spec.image)],
                    life,
                    http_url,
                },
            );
            Ok(id)
        })
    }

    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>> {
        Box::pin(async move {
            if let Some(c) = self.lock().containers.remove(id) {
                c.life.cancel();
            }
            Ok(())
        })
    }

    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerInfo>, RuntimeError>> {
        Box::pin(async move {
            let s = self.lock();
            Ok(s.containers
                .iter()
                .map(|(id, c)| Self::info(id, c))
                .collect())
        })
    }

    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerInfo, RuntimeError>> {
        Box::pin(async move {
            let s = self.lock();
            s.containers
                .get(id)
                .map(|c| Self::info(id, c))
                .ok_or_else(|| RuntimeError::NotFound(id.to_string()))
        })
    }

    fn logs<'a>(
        &'a self,
        id: &'a str,
        tail: usize,
        _include_stdout: bool,
    ) -> BoxFuture<'a, Result<Vec<String>, RuntimeError>> {
        Box::pin(async move {
            let s = self.lock();
            let c = s
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
            let skip = c.logs.len().saturating_sub(tail);
            Ok(c.logs[skip..].to_vec())
        })
    }

    fn connect<'a>(
        &'a self,
        id: &'a str,
        _spec: &'a ServerSpec,
    ) -> BoxFuture<'a, Result<McpConnection, RuntimeError>> {
        Box::pin(async move {
            let (transport, image, life, url, path, protocol) = {
                let s = self.lock();
                let c = s
                    .containers
                    .get(id)
                    .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
                (
                    c.transport,
                    c.image.clone(),
                    c.life.clone(),
                    c.http_url.clone(),
                    c.mcp_path.clone(),
                    c.protocol,
                )
            };
            let server = SimMcpServer::new(image).with_protocol(protocol);
            match transport {
                Transport::Stdio => {
                    let (agent_end, container_end) = tokio::io::duplex(64 * 1024);
                    let (c_read, c_write) = tokio::io::split(container_end);
                    tokio::spawn(async move {
                        let Ok(running) = server.serve((c_read, c_write)).await else {
                            return;
                        };
                        let ct = running.cancellation_token();
                        tokio::select! {
                            _ = life.cancelled() => ct.cancel(),
                            _ = running.waiting() => {}
                        }
                    });
                    let (reader, writer) = tokio::io::split(agent_end);
                    Ok(McpConnection::Stdio {
                        reader: Box::pin(reader),
                        writer: Box::pin(writer),
                    })
                }
                Transport::StreamableHttp | Transport::Sse => {
                    let sse = transport == Transport::Sse;
                    // After a simulated crash the old listener is gone; start a fresh one.
                    let url = match url {
                        Some(url) if !life.is_cancelled() => url,
                        _ => {
                            let url = if sse {
                                serve_sse(server, path, life).await?
                            } else {
                                serve_http(server, protocol, path, life).await?
                            };
                            if let Some(c) = self.lock().containers.get_mut(id) {
                                c.http_url = Some(url.clone());
                            }
                            url
                        }
                    };
                    Ok(if sse {
                        McpConnection::Sse { url }
                    } else {
                        McpConnection::Http { url }
                    })
                }
            }
        })
    }

    fn usage<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerUsage, RuntimeError>> {
        Box::pin(async move {
            let s = self.lock();
            if s.containers.contains_key(id) {
                Ok(ContainerUsage {
                    cpu_seconds: 0.0,
                    memory_bytes: 8 * 1024 * 1024,
                })
            } else {
                Err(RuntimeError::NotFound(id.to_string()))
            }
        })
    }
}
