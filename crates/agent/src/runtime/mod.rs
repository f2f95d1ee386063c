//! The container runtime seen by the agent: Docker on droplets, a simulation in tests and in the
//! simulated world.

#[cfg(feature = "docker")]
pub mod docker;
pub mod simulated;

use crate::api::{PullCredentials, PullProgress, ServerSpec};
use futures::future::BoxFuture;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// Label every managed container carries (value `true`).
pub const LABEL_MANAGED: &str = "io.agentopia.mcp-droplet-agent.managed";
/// Label with the server name.
pub const LABEL_SERVER: &str = "io.agentopia.mcp-droplet-agent.server";
/// Label with the droplet (agent) the container belongs to, so agents sharing an engine (tests)
/// never touch each other's containers.
pub const LABEL_DROPLET: &str = "io.agentopia.mcp-droplet-agent.droplet";
/// Label with the hash of the spec the container was created from.
pub const LABEL_SPEC_HASH: &str = "io.agentopia.mcp-droplet-agent.spec-hash";

/// Why a runtime call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The image could not be pulled.
    #[error("pull of {image} failed: {message}")]
    Pull {
        /// Image.
        image: String,
        /// Cause.
        message: String,
    },
    /// The container could not be created or started.
    #[error("start failed: {0}")]
    Start(String),
    /// The container does not exist.
    #[error("container {0} not found")]
    NotFound(String),
    /// The engine is unreachable or answered an error.
    #[error("container engine: {0}")]
    Engine(String),
    /// Not supported by this runtime.
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// A managed container as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container id.
    pub id: String,
    /// Server name (from the label).
    pub server: String,
    /// Spec hash (from the label).
    pub spec_hash: String,
    /// Whether it is running now.
    pub running: bool,
    /// Restarts done by the engine's restart policy.
    pub restart_count: u32,
    /// Why it is not running, when it is not.
    pub exit_reason: Option<String>,
    /// Identifies the current run of the container (its start time): a new value means the
    /// process was restarted, and the stdio bridge must reconnect.
    pub incarnation: String,
}

/// Resource usage of one container.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ContainerUsage {
    /// CPU time used, seconds.
    pub cpu_seconds: f64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
}

/// How the agent reaches the MCP server inside a container.
pub enum McpConnection {
    /// The container's stdin and stdout.
    Stdio {
        /// Container stdout.
        reader: Pin<Box<dyn AsyncRead + Send>>,
        /// Container stdin.
        writer: Pin<Box<dyn AsyncWrite + Send>>,
    },
    /// A streamable HTTP URL reachable from the agent.
    Http {
        /// Full URL of the MCP endpoint.
        url: String,
    },
    /// A legacy HTTP+SSE URL (the event stream) reachable from the agent.
    Sse {
        /// Full URL of the event stream.
        url: String,
    },
}

/// Receives pull progress.
pub type ProgressSink = Box<dyn Fn(PullProgress) + Send + Sync>;

/// A container engine. Object safe, so the agent holds an `Arc<dyn ContainerRuntime>`.
pub trait ContainerRuntime: Send + Sync + 'static {
    /// `docker` or `simulated`.
    fn kind(&self) -> &'static str;

    /// Whether the image is present locally.
    fn has_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<bool, RuntimeError>>;

    /// Pulls an image, reporting progress.
    fn pull<'a>(
        &'a self,
        image: &'a str,
        credentials: Option<&'a PullCredentials>,
        progress: ProgressSink,
    ) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// Creates and starts the container of `server` with the managed labels; returns its id.
    fn create_and_start<'a>(
        &'a self,
        server: &'a str,
        spec: &'a ServerSpec,
        spec_hash: &'a str,
    ) -> BoxFuture<'a, Result<String, RuntimeError>>;

    /// Removes a container (stopping it first); a missing container is not an error.
    fn remove<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), RuntimeError>>;

    /// All managed containers (by label), running or not.
    fn list_managed(&self) -> BoxFuture<'_, Result<Vec<ContainerInfo>, RuntimeError>>;

    /// One managed container.
    fn inspect<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerInfo, RuntimeError>>;

    /// The last `tail` log lines; stdout only when `include_stdout` (a stdio server's stdout is
    /// its MCP traffic).
    fn logs<'a>(
        &'a self,
        id: &'a str,
        tail: usize,
        include_stdout: bool,
    ) -> BoxFuture<'a, Result<Vec<String>, RuntimeError>>;

    /// Connects to the MCP server in the container.
    fn connect<'a>(
        &'a self,
        id: &'a str,
        spec: &'a ServerSpec,
    ) -> BoxFuture<'a, Result<McpConnection, RuntimeError>>;

    /// Resource usage, when the runtime can tell.
    fn usage<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerUsage, RuntimeError>>;
}
