//! The agent itself: state, the server table, and startup (adoption and the orphan sweep).

use crate::api::{
    Capacity, EnrollRequest, EnrollResponse, InfoResponse, Phase, PutOutcome, PutResponse,
    ServerSpec, ServerStatus,
};
use crate::bootstrap::BootstrapConfig;
use crate::bridge::{self, EndpointService, UpstreamSlot};
use crate::runtime::{ContainerRuntime, RuntimeError};
use crate::secret::{self, Secret};
use crate::store::{AgentState, DataDir, Enrolment, StoreError};
use crate::supervisor::{ObservedCell, Supervisor, SupervisorTiming};
use crate::tls::ListenerLimits;
use crate::validation::{self, ValidationError};
use arc_swap::ArcSwap;
use clock::{SharedClock, SystemClock, Timestamp};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The agent's version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Minimum length of the per-droplet credential.
pub const MIN_CREDENTIAL_LEN: usize = 32;

/// Why an agent operation failed; the HTTP layer maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad name or spec (400).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Missing or wrong credentials (401).
    #[error("unauthorized")]
    Unauthorized,
    /// Too many wrong enrolment proofs in a short time (429).
    #[error("too many failed enrolment attempts; retry later")]
    TooManyAttempts,
    /// Enrolment token already spent (409).
    #[error("the enrolment token has already been spent")]
    AlreadyEnrolled,
    /// Unknown server (404).
    #[error("server {0} not found")]
    NotFound(String),
    /// Disk failure (500: not caused by the request).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Runtime failure (502: the engine, not the request).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Tunables of an agent instance.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Supervisor timing.
    pub timing: SupervisorTiming,
    /// Capacity to report instead of the host's (the simulated world reports the droplet size).
    pub capacity: Option<Capacity>,
    /// System reserve subtracted from capacity (default 250m CPU and 512 MiB).
    pub reserve: Option<Capacity>,
    /// Caps of the public listener (connections, handshakes, header-read timeout).
    pub listener: ListenerLimits,
    /// The clock of the agent's timers (lockout window, supervisor polls and retries, orphan
    /// sweep); the simulated world passes its scaled clock.
    pub clock: SharedClock,
}

impl Default for AgentOptions {
    fn default() -> Self {
        Self {
            timing: SupervisorTiming::default(),
            capacity: None,
            reserve: None,
            listener: ListenerLimits::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

struct ServerEntry {
    spec: ServerSpec,
    spec_hash: String,
    observed: ObservedCell,
    upstream: Arc<UpstreamSlot>,
    endpoint: EndpointService,
    endpoint_shutdown: CancellationToken,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// What state changes serialise on. It is held across the state file's fsync, so nothing on the
/// MCP path or the enrolment-proof check takes it.
struct Inner {
    state: AgentState,
    servers: BTreeMap<String, ServerEntry>,
}

/// The MCP route's view of the servers: replaced whole after every change, read without a lock.
type EndpointTable = BTreeMap<String, Arc<EndpointTarget>>;

/// Wrong enrolment proofs answered 401 per [`ENROLMENT_WINDOW`]; later ones get 429.
pub const MAX_FAILED_ENROLMENTS: usize = 10;
/// The window of [`MAX_FAILED_ENROLMENTS`].
pub const ENROLMENT_WINDOW: Duration = Duration::from_secs(60);

/// Whether another failed enrolment attempt is answered 401 (true) or 429 (false), given recent
/// failures and `now`; pure. A valid proof never consults this.
pub fn enrolment_allowed(failures: &mut Vec<Timestamp>, now: Timestamp) -> bool {
    failures.retain(|t| clock::elapsed(*t, now) < ENROLMENT_WINDOW);
    failures.len() < MAX_FAILED_ENROLMENTS
}

/// Adds a spec's limits to an allocation; saturating, so a state file written before the
/// limits were capped cannot overflow the sum.
pub fn add_limits(acc: Capacity, spec: &ServerSpec) -> Capacity {
    Capacity {
        cpu_millis: acc
            .cpu_millis
            .saturating_add(u64::from(spec.cpu_limit_millis())),
        memory_bytes: acc.memory_bytes.saturating_add(spec.memory_limit()),
        disk_bytes: acc.disk_bytes,
    }
}

/// How often containers of undesired servers are looked for.
const ORPHAN_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// The agent: one per droplet.
pub struct Agent {
    bootstrap: BootstrapConfig,
    data: DataDir,
    runtime: Arc<dyn ContainerRuntime>,
    options: AgentOptions,
    fingerprint: String,
    /// Key of the spec hashes; never leaves the agent.
    hash_key: Secret,
    /// Copy of the credential digest for the hot auth path.
    credential_sha256: RwLock<Option<String>>,
    inner: Mutex<Inner>,
    endpoints: ArcSwap<EndpointTable>,
    /// When recent wrong enrolment proofs arrived (sliding window); a short lock never held
    /// across an await, so a flood of wrong proofs cannot queue behind a state write.
    failed_enrolments: std::sync::Mutex<Vec<Timestamp>>,
    shutdown: CancellationToken,
}

/// What the MCP endpoint handler needs for one server.
pub struct EndpointTarget {
    /// The per-deployment token.
    pub token: Secret,
    /// The endpoint's service.
    pub service: EndpointService,
}

impl Agent {
    /// Loads the state, starts a supervisor per desired server (each adopts its container) and
    /// sweeps orphans.
    pub async fn start(
        bootstrap: BootstrapConfig,
        data: DataDir,
        runtime: Arc<dyn ContainerRuntime>,
        fingerprint: String,
        options: AgentOptions,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, AgentError> {
        let state = data.load_state()?;
        let hash_key = data.load_or_create_hash_key()?;
        let credential = state
            .enrolment
            .as_ref()
            .map(|e| e.credential_sha256.clone());
        let agent = Arc::new(Self {
            bootstrap,
            data,
            runtime,
            options,
            fingerprint,
            hash_key,
            credential_sha256: RwLock::new(credential),
            inner: Mutex::new(Inner {
                state: state.clone(),
                servers: BTreeMap::new(),
            }),
            endpoints: ArcSwap::from_pointee(EndpointTable::new()),
            failed_enrolments: std::sync::Mutex::new(Vec::new()),
            shutdown,
        });
        {
            let mut inner = agent.inner.lock().await;
            for (name, spec) in state.servers {
                let entry = agent.spawn_entry(&name, spec, None);
                inner.servers.insert(name, entry);
            }
            agent.publish_endpoints(&inner);
        }
        let sweeper = agent.clone();
        tokio::spawn(async move { sweeper.sweep_orphans_forever().await });
        Ok(agent)
    }

    /// The droplet name.
    pub fn droplet_name(&self) -> &str {
        &self.bootstrap.droplet_name
    }

    /// Hex SHA-256 of the agent's certificate.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The runtime.
    pub fn runtime(&self) -> &Arc<dyn ContainerRuntime> {
        &self.runtime
    }

    /// Whether a bearer credential is the enrolled one (constant time).
    pub fn authorize(&self, presented: &str) -> bool {
        let stored = self
            .credential_sha256
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match stored {
            Some(digest) => secret::matches_digest(presented, &digest),
            None => false,
        }
    }

    /// Enrols the operator: spends the token and stores the credential's digest.
    pub async fn enroll(&self, request: EnrollRequest) -> Result<EnrollResponse, AgentError> {
        if request.credential.expose().len() < MIN_CREDENTIAL_LEN {
            return Err(ValidationError::InvalidSpec(format!(
                "credential must be at least {MIN_CREDENTIAL_LEN} characters"
            ))
            .into());
        }
        // The proof is checked first and a valid one always passes: only failures count
        // towards the lockout, so nobody can lock the operator out by posting wrong proofs.
        // Both happen before the state lock: the port is public, and a flood of wrong proofs
        // must not queue behind a state write or in front of the operator.
        if !secret::enrolment_proof_valid(
            &request.enrolment_proof,
            &self.bootstrap.enrolment_token,
            &self.fingerprint,
        ) {
            let now = self.options.clock.now();
            let mut failures = self
                .failed_enrolments
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !enrolment_allowed(&mut failures, now) {
                return Err(AgentError::TooManyAttempts);
            }
            failures.push(now);
            return Err(AgentError::Unauthorized);
        }
        let mut inner = self.inner.lock().await;
        let token_digest = self.bootstrap.enrolment_token.sha256_hex();
        if inner.state.spent_token_sha256.as_deref() == Some(token_digest.as_str()) {
            return Err(AgentError::AlreadyEnrolled);
        }
        let mut state = inner.state.clone();
        state.spent_token_sha256 = Some(token_digest);
        state.enrolment = Some(Enrolment {
            credential_sha256: request.credential.sha256_hex(),
        });
        self.persist(&state).await?;
        *self
            .credential_sha256
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(request.credential.sha256_hex());
        inner.state = state;
        tracing::info!(droplet = %self.bootstrap.droplet_name, "enrolled by the operator");
        Ok(EnrollResponse {
            droplet_name: self.bootstrap.droplet_name.clone(),
            certificate_sha256: self.fingerprint.clone(),
            agent_version: AGENT_VERSION.to_string(),
        })
    }

    /// Writes the state off the async workers (the write syncs to disk).
    async fn persist(&self, state: &AgentState) -> Result<(), AgentError> {
        let data = self.data.clone();
        let state = state.clone();
        tokio::task::spawn_blocking(move || data.save_state(&state))
            .await
            .map_err(|e| {
                AgentError::Store(StoreError::Io {
                    op: "write",
                    path: "state.json".into(),
                    source: std::io::Error::other(e.to_string()),
                })
            })??;
        Ok(())
    }

    fn spawn_entry(
        &self,
        name: &str,
        spec: ServerSpec,
        previous: Option<ServerEntry>,
    ) -> ServerEntry {
        let spec_hash = spec.hash(&self.hash_key);
        let (upstream, endpoint, endpoint_shutdown, observed, previous_task) = match previous {
            Some(prev) => {
                prev.stop.cancel();
                (
                    prev.upstream,
                    prev.endpoint,
                    prev.endpoint_shutdown,
                    prev.observed,
                    Some(prev.task),
                )
            }
            None => {
                let upstream = Arc::new(UpstreamSlot::default());
                let endpoint_shutdown = self.shutdown.child_token();
                let endpoint =
                    bridge::endpoint_service(upstream.clone(), endpoint_shutdown.clone());
                (
                    upstream,
                    endpoint,
                    endpoint_shutdown,
                    ObservedCell::default(),
                    None,
                )
            }
        };
        {
            let mut o = observed.lock().unwrap_or_else(|e| e.into_inner());
            o.phase = Phase::Pending;
            o.reason = None;
            o.pull_progress = None;
        }
        let stop = self.shutdown.child_token();
        let supervisor = Supervisor {
            name: name.to_string(),
            spec: spec.clone(),
            spec_hash: spec_hash.clone(),
            runtime: self.runtime.clone(),
            observed: observed.clone(),
            upstream: upstream.clone(),
            stop: stop.clone(),
            timing: self.options.timing,
            clock: self.options.clock.clone(),
        };
        let task = tokio::spawn(async move {
            // The old supervisor must be gone before the new one looks at containers, so the
            // two never race on create and remove.
            if let Some(prev) = previous_task {
                let _ = prev.await;
            }
            supervisor.run().await;
        });
        ServerEntry {
            spec,
            spec_hash,
            observed,
            upstream,
            endpoint,
            endpoint_shutdown,
            stop,
            task,
        }
    }

    fn status_of(name: &str, entry: &ServerEntry) -> ServerStatus {
        let o = entry
            .observed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        ServerStatus {
            name: name.to_string(),
            phase: o.phase,
            reason: o.reason,
            pull_progress: o.pull_progress,
            container_id: o.container_id,
            restarts: o.engine_restarts + o.replacements,
            endpoint: format!("/servers/{name}/mcp"),
            spec_hash: entry.spec_hash.clone(),
            spec: entry.spec.redacted(),
        }
    }

    /// Applies a desired spec; idempotent.
    pub async fn put_server(
        &self,
        name: &str,
        spec: ServerSpec,
    ) -> Result<PutResponse, AgentError> {
        validation::validate_name(name)?;
        validation::validate_spec(&spec)?;
        let mut inner = self.inner.lock().await;
        let hash = spec.hash(&self.hash_key);
        if let Some(entry) = inner.servers.get(name)
            && entry.spec_hash == hash
        {
            return Ok(PutResponse {
                outcome: PutOutcome::Unchanged,
                status: Self::status_of(name, entry),
            });
        }
        let mut state = inner.state.clone();
        state.servers.insert(name.to_string(), spec.clone());
        self.persist(&state).await?;
        inner.state = state;
        let previous = inner.servers.remove(name);
        let outcome = if previous.is_some() {
            PutOutcome::Replaced
        } else {
            PutOutcome::Created
        };
        tracing::info!(server = %name, ?outcome, "desired state applied");
        let entry = self.spawn_entry(name, spec, previous);
        let status = Self::status_of(name, &entry);
        inner.servers.insert(name.to_string(), entry);
        self.publish_endpoints(&inner);
        Ok(PutResponse { outcome, status })
    }

    /// The status of one server.
    pub async fn get_server(&self, name: &str) -> Result<ServerStatus, AgentError> {
        validation::validate_name(name)?;
        let inner = self.inner.lock().await;
        inner
            .servers
            .get(name)
            .map(|e| Self::status_of(name, e))
            .ok_or_else(|| AgentError::NotFound(name.to_string()))
    }

    /// All servers.
    pub async fn list_servers(&self) -> Vec<ServerStatus> {
        let inner = self.inner.lock().await;
        inner
            .servers
            .iter()
            .map(|(n, e)| Self::status_of(n, e))
            .collect()
    }

    /// Removes a server and its containers; idempotent. Returns whether it existed.
    pub async fn delete_server(&self, name: &str) -> Result<bool, AgentError> {
        validation::validate_name(name)?;
        let entry = {
            let mut inner = self.inner.lock().await;
            let existed = inner.state.servers.contains_key(name);
            if existed {
                let mut state = inner.state.clone();
                state.servers.remove(name);
                self.persist(&state).await?;
                inner.state = state;
            }
            let entry = inner.servers.remove(name);
            self.publish_endpoints(&inner);
            entry
        };
        let existed = entry.is_some();
        if let Some(entry) = entry {
            entry.stop.cancel();
            entry.endpoint_shutdown.cancel();
            entry.upstream.set(None);
            let _ = entry.task.await;
        }
        // Also catches a container whose creation was in flight when the server was deleted.
        for container in self.runtime.list_managed().await? {
            if container.server == name {
                self.runtime.remove(&container.id).await?;
            }
        }
        if existed {
            tracing::info!(server = %name, "server deleted");
        }
        Ok(existed)
    }

    /// The last log lines of a server's container.
    pub async fn logs(&self, name: &str, tail: usize) -> Result<Vec<String>, AgentError> {
        validation::validate_name(name)?;
        let (container, stdio) = {
            let inner = self.inner.lock().await;
            let entry = inner
                .servers
                .get(name)
                .ok_or_else(|| AgentError::NotFound(name.to_string()))?;
            let id = entry
                .observed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .container_id
                .clone();
            (id, entry.spec.transport == crate::api::Transport::Stdio)
        };
        match container {
            Some(id) => match self.runtime.logs(&id, tail, !stdio).await {
                Ok(lines) => Ok(lines),
                Err(RuntimeError::NotFound(_)) => Ok(Vec::new()),
                Err(e) => Err(e.into()),
            },
            None => Ok(Vec::new()),
        }
    }

    /// The endpoint of a server, for the MCP route; never waits for a lock.
    pub fn endpoint(&self, name: &str) -> Option<Arc<EndpointTarget>> {
        self.endpoints.load().get(name).cloned()
    }

    /// Replaces the MCP route's table with the current servers (called with the state lock
    /// held, so tables are published in the order of the changes).
    fn publish_endpoints(&self, inner: &Inner) {
        let table: EndpointTable = inner
            .servers
            .iter()
            .map(|(name, e)| {
                let target = EndpointTarget {
                    token: e.spec.endpoint_token.clone(),
                    service: e.endpoint.clone(),
                };
                (name.clone(), Arc::new(target))
            })
            .collect();
        self.endpoints.store(Arc::new(table));
    }

    /// Capacity, allocatable and allocated.
    pub async fn info(&self) -> InfoResponse {
        let capacity = self.options.capacity.unwrap_or_else(|| {
            let host = crate::host::snapshot(self.data.path());
            Capacity {
                cpu_millis: host.cpus * 1000,
                memory_bytes: host.memory_total_bytes,
                disk_bytes: host.disk_total_bytes,
            }
        });
        let reserve = self.options.reserve.unwrap_or(Capacity {
            cpu_millis: 250,
            memory_bytes: 512 * 1024 * 1024,
            disk_bytes: 0,
        });
        let allocated = {
            let inner = self.inner.lock().await;
            inner
                .state
                .servers
                .values()
                .fold(Capacity::default(), add_limits)
        };
        InfoResponse {
            version: AGENT_VERSION.to_string(),
            api_version: "v1".into(),
            droplet_name: self.bootstrap.droplet_name.clone(),
            runtime: self.runtime.kind().to_string(),
            capabilities: [
                "transport:stdio",
                "transport:streamable-http",
                "logs",
                "metrics",
                "image-pull",
                "adopt-on-restart",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            capacity,
            allocatable: Capacity {
                cpu_millis: capacity.cpu_millis.saturating_sub(reserve.cpu_millis),
                memory_bytes: capacity.memory_bytes.saturating_sub(reserve.memory_bytes),
                disk_bytes: capacity.disk_bytes.saturating_sub(reserve.disk_bytes),
            },
            allocated,
        }
    }

    /// Container ids and observed status per server (for metrics).
    pub async fn observed_snapshot(&self) -> Vec<(String, Option<String>, u32, Phase)> {
        let inner = self.inner.lock().await;
        inner
            .servers
            .iter()
            .map(|(name, e)| {
                let o = e.observed.lock().unwrap_or_else(|p| p.into_inner());
                (
                    name.clone(),
                    o.container_id.clone(),
                    o.engine_restarts + o.replacements,
                    o.phase,
                )
            })
            .collect()
    }

    /// The data dir.
    pub fn data_dir(&self) -> &DataDir {
        &self.data
    }

    /// Removes managed containers of servers that are not desired (left by a crash between a
    /// DELETE and the removal, or by an older agent).
    pub async fn sweep_orphans(&self) -> Result<usize, AgentError> {
        let containers = self.runtime.list_managed().await?;
        let desired: Vec<String> = {
            let inner = self.inner.lock().await;
            inner.state.servers.keys().cloned().collect()
        };
        let mut removed = 0;
        for c in containers {
            if !desired.contains(&c.server) {
                tracing::info!(server = %c.server, container = %c.id, "removing orphan container");
                self.runtime.remove(&c.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn sweep_orphans_forever(self: Arc<Self>) {
        loop {
            if let Err(e) = self.sweep_orphans().await {
                tracing::warn!(error = %e, "orphan sweep failed");
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = self.options.clock.sleep(ORPHAN_SWEEP_INTERVAL) => {}
            }
        }
    }

    /// Stops all supervisors (containers keep running; the next agent adopts them).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = {
            let mut inner = self.inner.lock().await;
            let servers = std::mem::take(&mut inner.servers);
            self.publish_endpoints(&inner);
            servers.into_values().map(|e| e.task).collect()
        };
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_sums_saturate() {
        let spec: ServerSpec = serde_json::from_value(serde_json::json!({
            "image": "mcp-test/time:1",
            "transport": "stdio",
            "endpointToken": "0123456789abcdef",
            "resources": {"memoryBytes": u64::MAX, "cpuMillis": 1000},
        }))
        .unwrap();
        let once = add_limits(Capacity::default(), &spec);
        let twice = add_limits(once, &spec);
        assert_eq!(twice.memory_bytes, u64::MAX);
        assert_eq!(twice.cpu_millis, 2000);
        let full = Capacity {
            cpu_millis: u64::MAX,
            ..Capacity::default()
        };
        assert_eq!(add_limits(full, &spec).cpu_millis, u64::MAX);
    }

    #[test]
    fn enrolment_attempts_are_limited_per_window() {
        let start = Timestamp::from_second(1_800_000_000).unwrap();
        let mut failures = vec![start; MAX_FAILED_ENROLMENTS - 1];
        assert!(enrolment_allowed(&mut failures, start));
        failures.push(start);
        assert!(!enrolment_allowed(
            &mut failures,
            clock::add(start, Duration::from_secs(59))
        ));
        assert!(enrolment_allowed(
            &mut failures,
            clock::add(start, ENROLMENT_WINDOW)
        ));
        assert!(failures.is_empty());
    }

    async fn agent_in(dir: &std::path::Path) -> Arc<Agent> {
        let bootstrap = BootstrapConfig {
            droplet_name: "d1".into(),
            enrolment_token: Secret::new("enrol-token-0123456789"),
            listen: "127.0.0.1:0".into(),
            operator_ca: None,
        };
        Agent::start(
            bootstrap,
            DataDir::open(dir).unwrap(),
            Arc::new(crate::SimulatedRuntime::default()),
            "ab".repeat(32),
            AgentOptions::default(),
            CancellationToken::new(),
        )
        .await
        .unwrap()
    }

    fn spec(token: &str) -> ServerSpec {
        serde_json::from_value(serde_json::json!({
            "image": "mcp-test/time:1",
            "transport": "stdio",
            "endpointToken": token,
        }))
        .unwrap()
    }

    fn wrong_proof() -> EnrollRequest {
        EnrollRequest {
            enrolment_proof: Secret::new("0".repeat(64)),
            credential: Secret::new("c".repeat(MIN_CREDENTIAL_LEN)),
        }
    }

    const PROMPT: Duration = Duration::from_secs(2);

    /// Holding the state lock is exactly what a PUT or DELETE does across its fsync.
    #[tokio::test]
    async fn the_mcp_route_finds_its_endpoint_while_a_state_write_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent_in(dir.path()).await;
        agent
            .put_server("time", spec("endpoint-token-0123456789abcdef"))
            .await
            .unwrap();
        let writing = agent.inner.lock().await;
        let target = tokio::time::timeout(PROMPT, async { agent.endpoint("time") })
            .await
            .expect("the MCP route waited for the state lock");
        assert_eq!(
            target.unwrap().token.expose(),
            "endpoint-token-0123456789abcdef"
        );
        assert!(agent.endpoint("other").is_none());
        drop(writing);
        agent.stop().await;
    }

    #[tokio::test]
    async fn wrong_enrolment_proofs_are_answered_while_a_state_write_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent_in(dir.path()).await;
        let writing = agent.inner.lock().await;
        let answer = tokio::time::timeout(PROMPT, agent.enroll(wrong_proof()))
            .await
            .expect("a wrong proof waited for the state lock");
        assert!(
            matches!(answer, Err(AgentError::Unauthorized)),
            "{answer:?}"
        );
        // The lockout is enforced outside the lock too.
        for _ in 1..MAX_FAILED_ENROLMENTS {
            let _ = agent.enroll(wrong_proof()).await;
        }
        let answer = tokio::time::timeout(PROMPT, agent.enroll(wrong_proof()))
            .await
            .expect("the lockout waited for the state lock");
        assert!(
            matches!(answer, Err(AgentError::TooManyAttempts)),
            "{answer:?}"
        );
        drop(writing);
        agent.stop().await;
    }

    #[tokio::test]
    async fn the_endpoint_table_follows_puts_replacements_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let agent = agent_in(dir.path()).await;
        assert!(agent.endpoint("time").is_none());
        agent
            .put_server("time", spec("endpoint-token-0123456789abcdef"))
            .await
            .unwrap();
        agent
            .put_server("time", spec("endpoint-token-rotated-000000000"))
            .await
            .unwrap();
        assert_eq!(
            agent.endpoint("time").unwrap().token.expose(),
            "endpoint-token-rotated-000000000"
        );
        assert!(agent.delete_server("time").await.unwrap());
        assert!(agent.endpoint("time").is_none());
        agent.stop().await;
    }

    #[tokio::test]
    async fn the_lockout_window_runs_on_the_agent_clock() {
        let dir = tempfile::tempdir().unwrap();
        let manual = clock::ManualClock::new(Timestamp::from_second(1_800_000_000).unwrap());
        let bootstrap = BootstrapConfig {
            droplet_name: "d1".into(),
            enrolment_token: Secret::new("enrol-token-0123456789"),
            listen: "127.0.0.1:0".into(),
            operator_ca: None,
        };
        let agent = Agent::start(
            bootstrap,
            DataDir::open(dir.path()).unwrap(),
            Arc::new(crate::SimulatedRuntime::default()),
            "ab".repeat(32),
            AgentOptions {
                clock: Arc::new(manual.clone()),
                ..AgentOptions::default()
            },
            CancellationToken::new(),
        )
        .await
        .unwrap();
        for _ in 0..MAX_FAILED_ENROLMENTS {
            let _ = agent.enroll(wrong_proof()).await;
        }
        assert!(matches!(
            agent.enroll(wrong_proof()).await,
            Err(AgentError::TooManyAttempts)
        ));
        manual.advance(ENROLMENT_WINDOW);
        assert!(matches!(
            agent.enroll(wrong_proof()).await,
            Err(AgentError::Unauthorized)
        ));
        agent.stop().await;
    }
}
