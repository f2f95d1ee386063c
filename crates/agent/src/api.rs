//! The wire types of the agent's API v1, shared by the agent and the operator's client.

use crate::secret::Secret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Liveness path (no authentication).
pub const HEALTHZ_PATH: &str = "/healthz";
/// Readiness path: 200 when the container engine answers, 503 otherwise (no authentication).
pub const READYZ_PATH: &str = "/readyz";

/// `POST /v1/enroll`: the operator proves it holds the single-use token and hands over the
/// per-droplet credential it will use from now on.
///
/// The token itself never travels: the operator sends [`crate::secret::enrolment_proof`] of the
/// token over the certificate fingerprint it saw in the TLS handshake, and the agent checks it
/// against its own fingerprint, so a man in the middle (another certificate) cannot relay it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnrollRequest {
    /// Hex HMAC-SHA256 keyed with the enrolment token over the observed certificate fingerprint.
    pub enrolment_proof: Secret,
    /// The per-droplet credential (at least 32 characters) the operator sends as bearer token.
    pub credential: Secret,
}

/// Answer to a successful enrolment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EnrollResponse {
    /// The droplet name from the bootstrap config.
    pub droplet_name: String,
    /// Hex SHA-256 of the agent's certificate (DER), for the operator to pin.
    pub certificate_sha256: String,
    /// The agent's version.
    pub agent_version: String,
}

/// How the MCP server in the container speaks MCP.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// JSON-RPC over the container's stdin/stdout; the agent bridges it.
    Stdio,
    /// Streamable HTTP on `port` at `mcpPath`; the agent proxies it.
    StreamableHttp,
    /// The legacy HTTP+SSE transport.
    Sse,
}

/// Credentials for pulling a private image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullCredentials {
    /// Registry user name.
    pub username: String,
    /// Registry password or token.
    pub password: Secret,
    /// Registry address, e.g. `ghcr.io`.
    #[serde(default)]
    pub server_address: Option<String>,
}

/// One environment variable; secret ones are never returned by GET nor logged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Plain value (empty when `secretValue` is used).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Secret value, redacted in every answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_value: Option<Secret>,
}

/// Resource limits of a server's container.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes (0: the agent's default of 512 MiB).
    #[serde(default)]
    pub memory_bytes: u64,
    /// CPU limit in millicores (0: the agent's default of 500m).
    #[serde(default)]
    pub cpu_millis: u32,
}

/// A named volume mounted into the container (host paths are not allowed).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Volume name (DNS-label-like); the agent prefixes it with the server name.
    pub name: String,
    /// Absolute mount path inside the container.
    pub mount_path: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// Outbound network access of a container. Host networking does not exist here on purpose.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkPolicy {
    /// Bridge network with internet egress (the metadata service stays blocked by the host).
    #[default]
    Egress,
    /// No network at all (stdio servers that need none).
    None,
}

/// `PUT /v1/servers/{name}`: the desired state of one MCP server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// Image reference.
    pub image: String,
    /// Credentials for a private registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_credentials: Option<PullCredentials>,
    /// Environment.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Entrypoint override (empty: the image's).
    #[serde(default)]
    pub command: Vec<String>,
    /// Arguments (empty: the image's).
    #[serde(default)]
    pub args: Vec<String>,
    /// MCP transport of the server in the container.
    pub transport: Transport,
    /// Container port for the HTTP transports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// MCP path for the HTTP transports (default `/mcp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_path: Option<String>,
    /// Limits.
    #[serde(default)]
    pub resources: Resources,
    /// Named volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// Extra container labels (keys under `io.agentopia.` are reserved).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Network access.
    #[serde(default)]
    pub network_policy: NetworkPolicy,
    /// Mount the root filesystem read-only (default true; /tmp is a tmpfs).
    #[serde(default = "default_true")]
    pub read_only_root_filesystem: bool,
    /// Bearer token clients must present at `/servers/{name}/mcp`.
    pub endpoint_token: Secret,
}

fn default_true() -> bool {
    true
}

impl ServerSpec {
    /// A copy without any secret value: what GET returns.
    pub fn redacted(&self) -> ServerSpec {
        let mut spec = self.clone();
        for var in &mut spec.env {
            if var.secret_value.is_some() {
                var.secret_value = Some(Secret::new("***"));
            }
        }
        if let Some(creds) = &mut spec.pull_credentials {
            creds.password = Secret::new("***");
        }
        spec.endpoint_token = Secret::new("***");
        spec
    }

    /// Hex HMAC-SHA256 of the canonical JSON of the spec, secrets included, so a rotated
    /// secret is a changed spec. Keyed with the agent's private hash key, because the hash is
    /// returned by GET and stored as a container label: unkeyed, a low-entropy secret could be
    /// recovered by hashing guesses offline.
    pub fn hash(&self, key: &Secret) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose().as_bytes());
        crate::secret::hex_encode(aws_lc_rs::hmac::sign(&key, &json).as_ref())
    }

    /// Effective memory limit in bytes.
    pub fn memory_limit(&self) -> u64 {
        if self.resources.memory_bytes == 0 {
            512 * 1024 * 1024
        } else {
            self.resources.memory_bytes
        }
    }

    /// Effective CPU limit in millicores.
    pub fn cpu_limit_millis(&self) -> u32 {
        if self.resources.cpu_millis == 0 {
            500
        } else {
            self.resources.cpu_millis
        }
    }
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Accepted, nothing done yet.
    Pending,
    /// Pulling the image.
    Pulling,
    /// Creating and starting the container and connecting the MCP bridge.
    Starting,
    /// Running and reachable at its endpoint.
    Running,
    /// Failed; `reason` says why. The agent keeps retrying with backoff.
    Failed,
}

/// Progress of an image pull.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PullProgress {
    /// Bytes downloaded so far.
    pub current_bytes: u64,
    /// Total bytes, when known.
    pub total_bytes: u64,
}

/// `GET /v1/servers/{name}`: observed state of one server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Server name.
    pub name: String,
    /// Phase.
    pub phase: Phase,
    /// Why the server failed, or what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pull progress while pulling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_progress: Option<PullProgress>,
    /// Container id once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// How often the container restarted (engine restarts and agent replacements of a dead one).
    pub restarts: u32,
    /// Path of the server's MCP endpoint on the agent, `/servers/{name}/mcp`.
    pub endpoint: String,
    /// Hash of the desired spec the status refers to.
    pub spec_hash: String,
    /// The desired spec, with secrets redacted.
    pub spec: ServerSpec,
}

/// `GET /v1/servers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerList {
    /// All servers, by name.
    pub servers: Vec<ServerStatus>,
}

/// Whether a PUT changed anything.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PutOutcome {
    /// A new server.
    Created,
    /// The spec changed; the container is being replaced.
    Replaced,
    /// Same spec as before; nothing changed.
    Unchanged,
}

/// Answer to `PUT /v1/servers/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PutResponse {
    /// What the PUT did.
    pub outcome: PutOutcome,
    /// The status right after.
    pub status: ServerStatus,
}

/// `GET /v1/servers/{name}/logs?tail=N`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LogsResponse {
    /// The last lines of stdout and stderr (for stdio servers, stderr only).
    pub lines: Vec<String>,
}

/// `POST /v1/images/pull`: pre-pull an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PullRequest {
    /// Image reference.
    pub image: String,
    /// Credentials for a private registry.
    #[serde(default)]
    pub pull_credentials: Option<PullCredentials>,
}

/// Answer to `POST /v1/images/pull` (202: the pull runs in the background).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PullAccepted {
    /// Image reference.
    pub image: String,
}

/// Capacity figures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Capacity {
    /// Millicores.
    pub cpu_millis: u64,
    /// Bytes of memory.
    pub memory_bytes: u64,
    /// Bytes of disk in the data dir's filesystem.
    pub disk_bytes: u64,
}

/// `GET /v1/info`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InfoResponse {
    /// Agent version.
    pub version: String,
    /// API version, `v1`.
    pub api_version: String,
    /// Droplet name from the bootstrap config.
    pub droplet_name: String,
    /// Container runtime in use (`docker` or `simulated`).
    pub runtime: String,
    /// Feature names the agent supports (e.g. `transport:stdio`, `logs`, `metrics`).
    pub capabilities: Vec<String>,
    /// What the machine has.
    pub capacity: Capacity,
    /// Capacity minus the system reserve: what servers may use.
    pub allocatable: Capacity,
    /// Sum of the limits of the desired servers.
    pub allocated: Capacity,
}

/// Every error answer has this body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_name`.
    pub error: String,
    /// Human-readable message (never contains secrets).
    pub message: String,
}
