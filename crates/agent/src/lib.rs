//! mcp-droplet-agent: the agent that runs MCP servers in containers on a droplet.
//!
//! It serves API v1 over HTTPS with its own self-signed certificate, is enrolled once by the
//! operator with a single-use token, keeps the desired servers on disk and converges containers
//! to them (Docker, or an in-process simulation), and exposes each server as one authenticated
//! streamable-HTTP MCP endpoint.

pub mod agent;
pub mod api;
pub mod bootstrap;
pub mod bridge;
pub mod client_tls;
pub mod event_stream;
pub mod host;
pub mod http_api;
pub mod metrics;
pub mod runtime;
pub mod secret;
pub mod serve;
pub mod sim_mcp;
pub mod sse_client;
pub mod store;
pub mod supervisor;
pub mod tls;
pub mod validation;

pub use agent::{Agent, AgentError, AgentOptions};
pub use bootstrap::BootstrapConfig;
pub use runtime::simulated::{SimulatedRuntime, SimulatedRuntimeOptions};

use runtime::ContainerRuntime;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Bad bootstrap config.
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// Data dir problem.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// TLS problem.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// Agent startup failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The listen address is invalid or taken.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Address.
        addr: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// A running agent; dropping it does not stop it, [`AgentHandle::shutdown`] does.
pub struct AgentHandle {
    addr: SocketAddr,
    fingerprint: String,
    agent: Arc<Agent>,
    shutdown: CancellationToken,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHandle")
            .field("addr", &self.addr)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl AgentHandle {
    /// The address the agent listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://<addr>`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Hex SHA-256 of the agent's certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The agent (for tests and the simulated world).
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    /// Stops serving and stops the supervisors; containers keep running for the next agent.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.agent.stop().await;
        // Open MCP streams could hold graceful shutdown; do not wait for them forever.
        let mut server = self.server;
        if tokio::time::timeout(Duration::from_secs(5), &mut server)
            .await
            .is_err()
        {
            server.abort();
            let _ = server.await;
        }
    }
}

/// Everything an agent needs to run.
pub struct AgentConfig {
    /// The bootstrap config.
    pub bootstrap: BootstrapConfig,
    /// The data dir.
    pub data_dir: PathBuf,
    /// Listen address (overrides `bootstrap.listen`).
    pub listen: Option<SocketAddr>,
    /// The container runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Tunables.
    pub options: AgentOptions,
}

/// Starts an agent: loads or creates its identity and state, adopts containers, serves HTTPS.
pub async fn spawn_agent(config: AgentConfig) -> Result<AgentHandle, StartError> {
    let listen = match config.listen {
        Some(addr) => addr.to_string(),
        None => config.bootstrap.listen.clone(),
    };
    let tcp = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: listen.clone(),
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| StartError::Listen {
        addr: listen.clone(),
        source,
    })?;
    let data = store::DataDir::open(&config.data_dir)?;
    let mut names = vec![
        config.bootstrap.droplet_name.clone(),
        "localhost".to_string(),
    ];
    names.push(addr.ip().to_string());
    let identity = data.load_or_create_identity(names)?;
    let tls_config = tls::server_config(&identity)?;
    let shutdown = CancellationToken::new();
    let limits = config.options.listener;
    let agent = Agent::start(
        config.bootstrap,
        data,
        config.runtime,
        identity.fingerprint(),
        config.options,
        shutdown.child_token(),
    )
    .await?;
    let listener =
        tls::TlsListener::new(tcp, tls_config, limits, shutdown.clone()).map_err(|source| {
            StartError::Listen {
                addr: listen.clone(),
                source,
            }
        })?;
    let app = http_api::router(agent.clone());
    let server = tokio::spawn(serve::serve(listener, app, shutdown.clone()));
    tracing::info!(%addr, fingerprint = %identity.fingerprint(), runtime = agent.runtime().kind(), "agent listening");
    Ok(AgentHandle {
        addr,
        fingerprint: identity.fingerprint(),
        agent,
        shutdown,
        server,
    })
}

/// Options of [`spawn_simulated_agent`].
#[derive(Debug, Clone, Default)]
pub struct SimulatedAgentOptions {
    /// Data dir; default: a fresh directory under the system temp dir.
    pub data_dir: Option<PathBuf>,
    /// The runtime; pass the same one again to model an agent restart on the same droplet.
    pub runtime: Option<SimulatedRuntime>,
    /// Latencies and failures of a new runtime (ignored when `runtime` is given).
    pub runtime_options: SimulatedRuntimeOptions,
    /// Agent tunables (e.g. the droplet size as capacity).
    pub agent: AgentOptions,
}

/// Runs a real agent with the simulated runtime on `listen`, configured from the cloud-init
/// `user_data` the operator generated, exactly as on a droplet.
pub async fn spawn_simulated_agent(
    listen: SocketAddr,
    user_data: &str,
    opts: SimulatedAgentOptions,
) -> Result<AgentHandle, StartError> {
    let bootstrap = BootstrapConfig::from_user_data(user_data)?;
    let data_dir = opts.data_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "mcp-droplet-agent-{}-{}",
            bootstrap.droplet_name,
            secret::Secret::random().expose().get(..12).unwrap_or("x")
        ))
    });
    let runtime = opts
        .runtime
        .unwrap_or_else(|| SimulatedRuntime::new(opts.runtime_options));
    spawn_agent(AgentConfig {
        bootstrap,
        data_dir,
        listen: Some(listen),
        runtime: Arc::new(runtime),
        options: opts.agent,
    })
    .await
}
