//! A fake DTMA (axum) that reproduces the real agent's wire behaviour and, behind switches, each
//! of its quirks (research/dtma.md §6.3). Test support only: it lives in [`crate::testing`],
//! behind the `testing` feature the binary never enables (issue 12, decision 0020).
//!
//! State has two layers like the real thing: the "host" (Docker containers, which survive an
//! agent restart) and the agent's in-memory map and groups (which do not).
//!
//! With [`FakeAgent::serve_mcp_on`], each running container with a published port is a real
//! MCP server (the simulation's `SimMcpServer`, streamable HTTP on any path) on that address
//! and host port, as Docker would publish it, so a deployment's MCP handshake can succeed.
// Test support: each test binary that includes this uses part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::dtma::wire::{DeployGroupBody, DeployToolBody, ListedPort, ToolInstance};

/// A fixed timestamp: the fake has no clock of its own, and nothing reads these values.
const TIMESTAMP: &str = "2026-11-25T00:00:00.000Z";

/// Which of the real agent's quirks are on. [`Quirks::real`] is the agent at HEAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quirks {
    /// Stopping a stopped container answers 500 "(HTTP code 304) container already stopped".
    pub stop_stopped_is_500: bool,
    /// `POST /mcp/groups` answers 201 even when every member failed.
    pub group_deploy_always_201: bool,
    /// Deleting an unknown group answers 500 "... not found" instead of 404.
    pub unknown_group_delete_500: bool,
    /// A name known only to the host fails deploy with Docker's conflict as a 500, not a 409.
    pub host_name_conflict_is_500: bool,
    /// An agent restart forgets its managed containers and groups.
    pub restart_forgets_state: bool,
}

impl Quirks {
    /// Every quirk on, as dtma-agent HEAD behaves.
    pub fn real() -> Self {
        Self {
            stop_stopped_is_500: true,
            group_deploy_always_201: true,
            unknown_group_delete_500: true,
            host_name_conflict_is_500: true,
            restart_forgets_state: true,
        }
    }

    /// Every quirk off: how a well-behaved agent with the same routes would answer.
    pub fn ideal() -> Self {
        Self {
            stop_stopped_is_500: false,
            group_deploy_always_201: false,
            unknown_group_delete_500: false,
            host_name_conflict_is_500: false,
            restart_forgets_state: false,
        }
    }
}

/// How the fake checks bearer tokens on protected routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// Accept any of these tokens (models both per-droplet tokens and the global key).
    Tokens(BTreeSet<String>),
    /// No token configured: every protected route answers 500 "DTMA configuration error".
    Misconfigured,
}

/// A container on the fake host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostContainer {
    /// Docker name.
    pub name: String,
    /// 64-hex id.
    pub id: String,
    /// Image.
    pub image: String,
    /// Docker state.
    pub state: String,
    /// (container port, host port).
    pub ports: Vec<(u16, u16)>,
    /// `KEY=VALUE` strings as received.
    pub env: Vec<String>,
    /// Labels as received (only groups pass them).
    pub labels: BTreeMap<String, String>,
    /// Unix seconds (a counter, not a clock).
    pub created: i64,
}

#[derive(Debug, Clone)]
struct Managed {
    account_id: String,
    host_ports: Vec<u16>,
}

#[derive(Debug)]
struct World {
    quirks: Quirks,
    auth: AuthMode,
    host: BTreeMap<String, HostContainer>,
    managed: BTreeMap<String, Managed>,
    groups: BTreeMap<String, Vec<String>>,
    failing_images: BTreeSet<String>,
    pull_delay: Duration,
    next_id: u64,
    restarts: u32,
    calls: Vec<String>,
    /// Where running containers' servers are published (None: not served).
    mcp_ip: Option<IpAddr>,
    /// Servers published now: container → (host port, stops it).
    serving: BTreeMap<String, (u16, CancellationToken)>,
}

impl World {
    fn new(quirks: Quirks, auth: AuthMode) -> Self {
        let mut world = Self {
            quirks,
            auth,
            host: BTreeMap::new(),
            managed: BTreeMap::new(),
            groups: BTreeMap::new(),
            failing_images: BTreeSet::new(),
            pull_delay: Duration::ZERO,
            next_id: 0,
            restarts: 0,
            calls: Vec::new(),
            mcp_ip: None,
            serving: BTreeMap::new(),
        };
        // The agent itself runs as a container on the host and shows up in every list.
        world.create(
            "dtma_manager",
            "ghcr.io/maverick-software/dtma-agent:latest",
            vec![(30000, 30000)],
            vec![],
            BTreeMap::new(),
        );
        if let Some(agent) = world.host.get_mut("dtma_manager") {
            agent.state = "running".to_owned();
        }
        world
    }

    fn create(
        &mut self,
        name: &str,
        image: &str,
        ports: Vec<(u16, u16)>,
        env: Vec<String>,
        labels: BTreeMap<String, String>,
    ) -> HostContainer {
        self.next_id += 1;
        let container = HostContainer {
            name: name.to_owned(),
            id: format!("{:064x}", self.next_id),
            image: image.to_owned(),
            state: "created".to_owned(),
            ports,
            env,
            labels,
            created: 1_764_000_000 + i64::try_from(self.next_id).unwrap_or(0),
        };
        self.host.insert(name.to_owned(), container.clone());
        container
    }

    /// A host port held by a running container other than `except`.
    fn port_allocated(&self, port: u16, except: &str) -> bool {
        self.host.values().any(|c| {
            c.name != except
                && c.state == "running"
                && c.ports.iter().any(|(_, host)| *host == port)
        })
    }

    fn start_container(&mut self, name: &str) -> Result<(), String> {
        let Some(container) = self.host.get(name) else {
            return Err(format!("(HTTP code 404) no such container - {name}"));
        };
        let ports: Vec<u16> = container.ports.iter().map(|(_, host)| *host).collect();
        if let Some(port) = ports.iter().find(|port| self.port_allocated(**port, name)) {
            return Err(format!(
                "(HTTP code 500) server error - driver failed programming external connectivity: Bind for 0.0.0.0:{port} failed: port is already allocated"
            ));
        }
        if let Some(container) = self.host.get_mut(name) {
            container.state = "running".to_owned();
        }
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (_, stop) in std::mem::take(&mut self.serving).into_values() {
            stop.cancel();
        }
    }
}

impl World {
    /// Publishes the servers of running containers and stops those of the others (a port
    /// still held by a stopped one is tried again on the next call).
    fn sync_servers(&mut self) {
        let Some(ip) = self.mcp_ip else {
            return;
        };
        let wanted: BTreeMap<String, u16> = self
            .host
            .values()
            .filter(|c| c.state == "running" && c.name != "dtma_manager")
            .filter_map(|c| c.ports.first().map(|(_, host)| (c.name.clone(), *host)))
            .collect();
        let stale: Vec<String> = self
            .serving
            .iter()
            .filter(|(name, (port, _))| wanted.get(*name) != Some(port))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some((_, stop)) = self.serving.remove(&name) {
                stop.cancel();
            }
        }
        for (name, port) in wanted {
            if self.serving.contains_key(&name) {
                continue;
            }
            let image = self
                .host
                .get(&name)
                .map(|c| c.image.clone())
                .unwrap_or_default();
            if let Some(stop) = serve_mcp(SocketAddr::new(ip, port), &image) {
                self.serving.insert(name, (port, stop));
            }
        }
    }
}

/// Serves a simulated MCP server on `addr` until the token is cancelled; None when the address
/// cannot be bound now or there is no runtime.
fn serve_mcp(addr: SocketAddr, image: &str) -> Option<CancellationToken> {
    use mcp_droplet_agent::sim_mcp::SimMcpServer;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpService, session::local::LocalSessionManager,
    };
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let listener = std::net::TcpListener::bind(addr).ok()?;
    listener.set_nonblocking(true).ok()?;
    let stop = CancellationToken::new();
    let server = SimMcpServer::new(image);
    let config = rmcp::transport::streamable_http_server::StreamableHttpServerConfig::default()
        .with_cancellation_token(stop.child_token())
        // Reached by the droplet's address, which a container does not know as its own.
        .disable_allowed_hosts();
    let service: StreamableHttpService<SimMcpServer, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config);
    let app = Router::new().fallback_service(service);
    let life = stop.clone();
    runtime.spawn(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { life.cancelled_owned().await })
            .await;
    });
    Some(stop)
}

fn lock(world: &Mutex<World>) -> MutexGuard<'_, World> {
    // A panic in a handler must not wedge the fake for the rest of the test.
    world
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fake agent's state and controls; cheap to clone. Serve it with [`FakeDtma::serve`] or
/// mount [`FakeAgent::router`] in a bigger simulated server.
#[derive(Clone)]
pub struct FakeAgent {
    world: Arc<Mutex<World>>,
}

impl FakeAgent {
    /// A fake agent with the given quirks, accepting any of `tokens` on protected routes.
    pub fn new(quirks: Quirks, tokens: &[&str]) -> Self {
        let auth = AuthMode::Tokens(tokens.iter().map(|t| (*t).to_owned()).collect());
        Self {
            world: Arc::new(Mutex::new(World::new(quirks, auth))),
        }
    }

    /// The agent's HTTP routes (root-relative, as on port 30000).
    pub fn router(&self) -> Router {
        router(self.world.clone())
    }

    /// Publishes each running container's server on `ip` and its host port (see the module
    /// documentation).
    pub fn serve_mcp_on(&self, ip: IpAddr) {
        let mut world = lock(&self.world);
        world.mcp_ip = Some(ip);
        world.sync_servers();
    }

    /// Switches quirks on or off.
    pub fn set_quirks(&self, quirks: Quirks) {
        lock(&self.world).quirks = quirks;
    }

    /// Changes how tokens are checked.
    pub fn set_auth(&self, auth: AuthMode) {
        lock(&self.world).auth = auth;
    }

    /// Makes pulls of `image` fail.
    pub fn fail_pulls_of(&self, image: &str) {
        lock(&self.world).failing_images.insert(image.to_owned());
    }

    /// Makes every deploy wait this long first, like a slow image pull.
    pub fn set_pull_delay(&self, delay: Duration) {
        lock(&self.world).pull_delay = delay;
    }

    /// The agent process restarts: with `restart_forgets_state`, its map and groups are lost.
    pub fn simulate_restart(&self) {
        let mut world = lock(&self.world);
        world.restarts += 1;
        if world.quirks.restart_forgets_state {
            world.managed.clear();
            world.groups.clear();
        }
    }

    /// How many times the agent restarted.
    pub fn restarts(&self) -> u32 {
        lock(&self.world).restarts
    }

    /// A container exits on its own (crash, OOM).
    pub fn crash(&self, name: &str) {
        let mut world = lock(&self.world);
        if let Some(container) = world.host.get_mut(name) {
            container.state = "exited".to_owned();
        }
        world.sync_servers();
    }

    /// Someone removes a container directly with Docker, behind the agent's back.
    pub fn remove_behind_the_agents_back(&self, name: &str) {
        let mut world = lock(&self.world);
        world.host.remove(name);
        world.sync_servers();
    }

    /// Every container on the host, DTMA's own included.
    pub fn host_containers(&self) -> Vec<HostContainer> {
        lock(&self.world).host.values().cloned().collect()
    }

    /// Names in the agent's in-memory map.
    pub fn managed_names(&self) -> Vec<String> {
        lock(&self.world).managed.keys().cloned().collect()
    }

    /// Every call received, as `METHOD path`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.world).calls.clone()
    }
}

/// A fake agent served on a loopback port; stops serving when dropped. Derefs to its controls.
pub struct FakeDtma {
    addr: SocketAddr,
    agent: FakeAgent,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for FakeDtma {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl std::ops::Deref for FakeDtma {
    type Target = FakeAgent;

    fn deref(&self) -> &FakeAgent {
        &self.agent
    }
}

impl FakeDtma {
    /// Starts a new fake agent on 127.0.0.1 with the given quirks and accepted tokens.
    pub async fn start(quirks: Quirks, tokens: &[&str]) -> std::io::Result<Self> {
        Self::serve(FakeAgent::new(quirks, tokens)).await
    }

    /// Serves an existing fake agent on a fresh loopback port.
    pub async fn serve(agent: FakeAgent) -> std::io::Result<Self> {
        Self::serve_on(agent, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves an existing fake agent on `addr` (e.g. a simulated droplet's loopback address and
    /// DTMA's port 30000, so the operator finds it where a real DTMA would be).
    pub async fn serve_on(agent: FakeAgent, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = agent.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            agent,
            shutdown: Some(shutdown),
        })
    }

    /// The base URL, like `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The agent's controls, to keep after the server is dropped.
    pub fn agent(&self) -> FakeAgent {
        self.agent.clone()
    }
}

type Shared = Arc<Mutex<World>>;

fn router(world: Shared) -> Router {
    let protected = Router::new()
        .route("/tools", post(deploy_tool))
        .route("/tools/status", get(tools_status))
        .route("/tools/{name}", delete(remove_tool))
        .route("/tools/{name}/start", post(start_tool))
        .route("/tools/{name}/stop", post(stop_tool))
        .route("/mcp/groups", post(deploy_group))
        .route("/mcp/groups/{group}", delete(remove_group))
        .route("/mcp/health/{group}", get(group_health))
        .route_layer(middleware::from_fn_with_state(world.clone(), require_token));
    Router::new()
        .route(
            "/health",
            get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "OK") }),
        )
        .route("/status", get(agent_status))
        .merge(protected)
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": "Not Found"})),
            )
        })
        .layer(middleware::from_fn_with_state(world.clone(), record_call))
        .with_state(world)
}

async fn record_call(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    lock(&world).calls.push(line);
    let response = next.run(request).await;
    lock(&world).sync_servers();
    response
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn require_token(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let auth = lock(&world).auth.clone();
    let tokens = match auth {
        AuthMode::Misconfigured => {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "DTMA configuration error"}),
            );
        }
        AuthMode::Tokens(tokens) => tokens,
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(token) = header.strip_prefix("Bearer ") else {
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"error": "Unauthorized: Missing or invalid token format"}),
        );
    };
    if !tokens.contains(token) {
        return reply(
            StatusCode::FORBIDDEN,
            json!({"error": "Forbidden: Invalid token"}),
        );
    }
    next.run(request).await
}

/// Express's JSON parser: no JSON content type means an empty body; `None` for bad JSON.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Option<Value> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json || body.is_empty() {
        return Some(json!({}));
    }
    serde_json::from_slice(body).ok()
}

/// Malformed JSON reaches the agent's catch-all error handler: a 500, not a 400.
fn malformed() -> Response {
    reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": "Internal Server Error"}),
    )
}

async fn agent_status(State(world): State<Shared>) -> Response {
    let world = lock(&world);
    let instances: Vec<Value> = world
        .host
        .values()
        .map(|c| {
            json!({
                "id": c.id, "names": [c.name], "image": c.image, "image_id": "", "command": "",
                "created": c.created, "state": c.state, "status": "",
                "ports": c.ports.iter().map(|(private, public)| json!({"ip": "0.0.0.0", "private_port": private, "public_port": public, "type": "tcp"})).collect::<Vec<_>>(),
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "status": "healthy", "timestamp": TIMESTAMP, "version": "0.1.0", "service": "DTMA",
            "environment": {"hasAuthToken": true, "hasApiKey": true, "hasApiBaseUrl": true, "port": "30000"},
            "tool_instances": instances,
            "system_metrics": {"cpu_load_percent": 3.5, "memory": {"total_bytes": 4_294_967_296u64}},
        }),
    )
}

async fn tools_status(State(world): State<Shared>) -> Response {
    let world = lock(&world);
    let instances: Vec<ToolInstance> = world
        .host
        .values()
        .map(|c| ToolInstance {
            account_tool_instance_id: world.managed.get(&c.name).map(|m| m.account_id.clone()),
            instance_name_on_toolbox: c.name.clone(),
            container_id: c.id.clone(),
            status: c.state.clone(),
            image: c.image.clone(),
            ports: c
                .ports
                .iter()
                .map(|(private, public)| ListedPort {
                    ip: Some("0.0.0.0".to_owned()),
                    private_port: *private,
                    // Docker lists the public port only while the container runs.
                    public_port: (c.state == "running").then_some(*public),
                    kind: "tcp".to_owned(),
                })
                .collect(),
            created: c.created,
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "status": "healthy", "timestamp": TIMESTAMP, "service": "DTMA",
            // Hard-coded at HEAD, and different from /status.
            "version": "1.0.0",
            "environment": {"hasAuthToken": true, "hasApiKey": true, "hasApiBaseUrl": true, "port": "30000"},
            "tool_instances": instances,
        }),
    )
}

fn port_pairs(overrides: &crate::dtma::wire::ContainerOverrides) -> Vec<(u16, u16)> {
    overrides
        .host_config
        .port_bindings
        .iter()
        .flat_map(|(key, bindings)| {
            let private = key
                .split('/')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            bindings.iter().filter_map(move |b| {
                b.host_port
                    .as_deref()
                    .and_then(|p| p.parse().ok())
                    .map(|public| (private, public))
            })
        })
        .collect()
}

async fn deploy_tool(State(world): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(value) = parse_body(&headers, &body) else {
        return malformed();
    };
    let Ok(request) = serde_json::from_value::<DeployToolBody>(value) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": "Missing required fields: dockerImageUrl, instanceNameOnToolbox, accountToolInstanceId"}),
        );
    };
    let name = request.instance_name_on_toolbox.clone();
    let ports = port_pairs(&request.base_config_override_json);
    let delay = {
        let world = lock(&world);
        if world.managed.contains_key(&name) {
            return reply(
                StatusCode::CONFLICT,
                json!({"success": false, "error": format!("Instance with name '{name}' already exists.")}),
            );
        }
        let clash = ports.iter().find(|(_, public)| {
            world
                .managed
                .values()
                .any(|m| m.host_ports.contains(public))
        });
        if let Some((_, port)) = clash {
            return reply(
                StatusCode::CONFLICT,
                json!({"success": false, "error": format!("Port conflict: Requested HostPort {port} is already in use by a managed instance.")}),
            );
        }
        world.pull_delay
    };
    if !delay.is_zero() {
        // The real agent blocks the request for the whole pull.
        tokio::time::sleep(delay).await;
    }
    let mut world = lock(&world);
    let failed = |error: String| {
        reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "message": format!("Failed to deploy tool '{name}'."), "error": error}),
        )
    };
    if world.failing_images.contains(&request.docker_image_url) {
        return failed(format!(
            "(HTTP code 404) unexpected - pull access denied for {}, repository does not exist",
            request.docker_image_url
        ));
    }
    if world.host.contains_key(&name) {
        let message = format!(
            "(HTTP code 409) unexpected - Conflict. The container name \"/{name}\" is already in use"
        );
        if world.quirks.host_name_conflict_is_500 {
            return failed(message);
        }
        return reply(
            StatusCode::CONFLICT,
            json!({"success": false, "error": message}),
        );
    }
    let env = request.base_config_override_json.env.clone();
    let container = world.create(
        &name,
        &request.docker_image_url,
        ports.clone(),
        env,
        BTreeMap::new(),
    );
    // Nothing is rolled back: a container that fails to start stays behind as `created`.
    if let Err(error) = world.start_container(&name) {
        return failed(error);
    }
    world.managed.insert(
        name.clone(),
        Managed {
            account_id: request.account_tool_instance_id.clone(),
            host_ports: ports.iter().map(|(_, public)| *public).collect(),
        },
    );
    reply(
        StatusCode::CREATED,
        json!({
            "success": true,
            "message": format!("Tool '{name}' deployed successfully."),
            "data": {
                "container_id": container.id, "instance_name_on_toolbox": name,
                "account_tool_instance_id": request.account_tool_instance_id,
                "image": container.image, "ports": {}, "state": {"Status": "running", "Running": true},
            },
        }),
    )
}

fn not_managed(name: &str) -> Response {
    reply(
        StatusCode::NOT_FOUND,
        json!({"success": false, "error": format!("Tool instance '{name}' not found or not managed by this DTMA.")}),
    )
}

async fn start_tool(State(world): State<Shared>, Path(name): Path<String>) -> Response {
    let mut world = lock(&world);
    if !world.managed.contains_key(&name) {
        return not_managed(&name);
    }
    if world.host.get(&name).is_some_and(|c| c.state == "running") {
        return reply(
            StatusCode::OK,
            json!({"success": true, "message": format!("Tool '{name}' is already running.")}),
        );
    }
    match world.start_container(&name) {
        Ok(()) => reply(
            StatusCode::OK,
            json!({"success": true, "message": format!("Tool '{name}' started successfully.")}),
        ),
        Err(error) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "message": format!("Failed to start tool '{name}'."), "error": error}),
        ),
    }
}

async fn stop_tool(State(world): State<Shared>, Path(name): Path<String>) -> Response {
    let mut world = lock(&world);
    if !world.managed.contains_key(&name) {
        return not_managed(&name);
    }
    let quirk = world.quirks.stop_stopped_is_500;
    let Some(container) = world.host.get_mut(&name) else {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "message": format!("Failed to stop tool '{name}'."), "error": format!("(HTTP code 404) no such container - {name}")}),
        );
    };
    if container.state != "running" && quirk {
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "message": format!("Failed to stop tool '{name}'."), "error": "(HTTP code 304) container already stopped "}),
        );
    }
    container.state = "exited".to_owned();
    reply(
        StatusCode::OK,
        json!({"success": true, "message": format!("Tool '{name}' stopped successfully.")}),
    )
}

async fn remove_tool(State(world): State<Shared>, Path(name): Path<String>) -> Response {
    let mut world = lock(&world);
    if !world.managed.contains_key(&name) {
        return not_managed(&name);
    }
    if world.host.remove(&name).is_none() {
        // Docker's error comes back as a 500 and the map entry stays: a ghost.
        return reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"success": false, "message": format!("Failed to remove tool instance '{name}'."), "error": format!("(HTTP code 404) no such container - No such container: {name}")}),
        );
    }
    world.managed.remove(&name);
    reply(
        StatusCode::OK,
        json!({"success": true, "message": format!("Tool instance '{name}' removed successfully.")}),
    )
}

async fn deploy_group(State(world): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(value) = parse_body(&headers, &body) else {
        return malformed();
    };
    let Ok(request) = serde_json::from_value::<DeployGroupBody>(value) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"success": false, "error": "Missing required fields: groupId, servers (array)"}),
        );
    };
    let mut world = lock(&world);
    let mut deployed = Vec::new();
    let mut errors = BTreeMap::new();
    for server in &request.servers {
        let name = server.instance_name_on_toolbox.clone();
        if world.failing_images.contains(&server.docker_image_url) {
            errors.insert(
                name,
                format!(
                    "(HTTP code 404) pull access denied for {}",
                    server.docker_image_url
                ),
            );
            continue;
        }
        if world.host.contains_key(&name) {
            errors.insert(name.clone(), format!("(HTTP code 409) unexpected - Conflict. The container name \"/{name}\" is already in use"));
            continue;
        }
        let overrides = &server.base_config_override_json;
        world.create(
            &name,
            &server.docker_image_url,
            port_pairs(overrides),
            overrides.env.clone(),
            overrides.labels.clone(),
        );
        match world.start_container(&name) {
            Ok(()) => deployed.push(name),
            Err(error) => {
                errors.insert(name, error);
            }
        }
    }
    // Re-posting a group silently replaces its entry; old members are not cleaned up.
    world.groups.insert(
        request.group_id.clone(),
        request
            .servers
            .iter()
            .map(|s| s.instance_name_on_toolbox.clone())
            .collect(),
    );
    let status = if errors.is_empty() || world.quirks.group_deploy_always_201 {
        StatusCode::CREATED
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let outcome = if deployed.is_empty() {
        "failed"
    } else {
        "completed"
    };
    reply(
        status,
        json!({
            "success": !deployed.is_empty(),
            "message": format!("MCP group '{}' deployment {outcome}", request.group_id),
            "data": {
                "groupId": request.group_id, "totalServers": request.servers.len(),
                "successfulDeployments": deployed.len(), "deployedServers": deployed, "errors": errors,
            },
        }),
    )
}

#[derive(Debug, serde::Deserialize)]
struct RemoveGroupQuery {
    #[serde(rename = "forceRemove", default)]
    force_remove: Option<String>,
}

async fn remove_group(
    State(world): State<Shared>,
    Path(group): Path<String>,
    Query(query): Query<RemoveGroupQuery>,
) -> Response {
    let mut world = lock(&world);
    let Some(members) = world.groups.remove(&group) else {
        if world.quirks.unknown_group_delete_500 {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"success": false, "message": format!("Failed to remove MCP group '{group}'"), "error": format!("Container group {group} not found")}),
            );
        }
        return reply(
            StatusCode::NOT_FOUND,
            json!({"success": false, "error": format!("MCP group '{group}' not found")}),
        );
    };
    let force = query.force_remove.as_deref() == Some("true");
    let mut removed = Vec::new();
    let mut errors = BTreeMap::new();
    for name in members.iter().rev() {
        let Some(container) = world.host.get(name) else {
            errors.insert(
                name.clone(),
                format!("(HTTP code 404) no such container - {name}"),
            );
            continue;
        };
        if container.state != "running" && world.quirks.stop_stopped_is_500 {
            // The agent stops before removing; Docker's 304 makes the member fail.
            errors.insert(
                name.clone(),
                "(HTTP code 304) container already stopped ".to_owned(),
            );
            continue;
        }
        if container.state == "running" && !force {
            errors.insert(
                name.clone(),
                "(HTTP code 409) You cannot remove a running container".to_owned(),
            );
            continue;
        }
        world.host.remove(name);
        removed.push(name.clone());
    }
    reply(
        StatusCode::OK,
        json!({
            "success": !removed.is_empty(),
            "message": format!("MCP group '{group}' removal completed"),
            "data": {"groupId": group, "removedServers": removed, "errors": errors},
        }),
    )
}

async fn group_health(State(world): State<Shared>, Path(group): Path<String>) -> Response {
    let world = lock(&world);
    let Some(members) = world.groups.get(&group) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"success": false, "error": format!("MCP group '{group}' not found")}),
        );
    };
    let instances: serde_json::Map<String, Value> = members
        .iter()
        .map(|name| {
            let (status, id) = match world.host.get(name) {
                Some(c) if c.state == "running" => ("running", Some(c.id.clone())),
                Some(c) => ("stopped", Some(c.id.clone())),
                None => ("error", None),
            };
            (
                name.clone(),
                json!({"status": status, "healthStatus": "unknown", "containerId": id}),
            )
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "success": true,
            "data": {
                "groupId": group,
                // The health monitor is a stub at HEAD: always "failed".
                "health": {"collectiveStatus": "failed", "totalInstances": members.len(), "healthyInstances": 0, "instances": instances},
                "timestamp": TIMESTAMP,
            },
        }),
    )
}
