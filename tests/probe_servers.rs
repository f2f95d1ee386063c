//! The probe against MCP servers written by others (from PyPI, started here) and against
//! endpoints that are not MCP, each with the reason the probe must give.
//!
//! Third-party servers come from `scripts/prereqs.d/probe.sh`. Without them these tests print
//! why and pass, unless MCP_REQUIRE_TOOLS=1 (CI), where a missing program fails the test.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use mcp_droplet_operator::probe::{
    FailureReason, McpTransport, ProbeOutcome, ProbeRequest, bearer_token, probe,
};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    ErrorData, Implementation, JsonObject, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

// ---------- helpers ----------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A program the tests need, or the reason it is missing (skip, or fail under MCP_REQUIRE_TOOLS).
fn tool(env_var: &str, default: &str) -> Option<PathBuf> {
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(default));
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "{} not found (set {env_var} or run scripts/prereqs.d/probe.sh)",
        path.display()
    );
    if std::env::var("MCP_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("MCP_REQUIRE_TOOLS=1 but {message}");
    }
    eprintln!("SKIPPED: {message}");
    None
}

/// A child process killed (and reaped) when the test ends, however it ends.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(program: &Path, args: &[&str], port: u16) -> Server {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Server { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Polls until `path` answers any HTTP status (the server is up), or fails the test.
    async fn ready(mut self, path: &str) -> Server {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server on port {} exited early: {status}", self.port);
            }
            let attempt = client
                .get(self.url(path))
                .timeout(Duration::from_millis(500))
                .send()
                .await;
            // Any answer means it listens; an SSE GET answers with headers at once.
            if attempt.is_ok() {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "server on port {} not ready within {READY_TIMEOUT:?}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn proxy_for_time_server() -> Option<(PathBuf, PathBuf)> {
    let proxy = tool("MCP_PROXY_BIN", ".tools/mcp-proxy-venv/bin/mcp-proxy")?;
    let time = tool("MCP_SERVER_TIME_BIN", ".venv/bin/mcp-server-time")?;
    Some((proxy, time))
}

async fn start_proxied_time_server() -> Option<Server> {
    let (proxy, time) = proxy_for_time_server()?;
    let port = free_port();
    let port_text = port.to_string();
    let time = time.to_string_lossy().into_owned();
    let server = Server::start(
        &proxy,
        &["--host", "127.0.0.1", "--port", &port_text, "--", &time],
        port,
    );
    Some(server.ready("/status").await)
}

async fn start_fixture_server(transport: &str) -> Option<Server> {
    let python = tool("MCP_PYTHON", ".venv/bin/python")?;
    let script = repo().join("tests/fixtures/mcp_fixture_server.py");
    let port = free_port();
    let port_text = port.to_string();
    let script = script.to_string_lossy().into_owned();
    let server = Server::start(&python, &[&script, transport, &port_text], port);
    Some(server.ready("/").await)
}

async fn run(url: String, transport: McpTransport) -> ProbeOutcome {
    probe(
        &ProbeRequest::new(url)
            .transport(transport)
            .timeout(PROBE_TIMEOUT),
    )
    .await
}

fn expect_reason(outcome: ProbeOutcome, reason: FailureReason) {
    match outcome {
        Ok(report) => panic!("expected {reason}, but the probe succeeded: {report:?}"),
        Err(failure) => assert_eq!(failure.reason, reason, "{failure:?}"),
    }
}

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

// ---------- third-party servers ----------

#[tokio::test]
async fn mcp_server_time_behind_mcp_proxy_over_streamable_http() {
    let Some(server) = start_proxied_time_server().await else {
        return;
    };
    let report = run(server.url("/mcp"), McpTransport::StreamableHttp)
        .await
        .expect("probe succeeds");
    assert_eq!(report.server_name, "mcp-time");
    assert!(!report.server_version.is_empty());
    assert!(!report.protocol_version.is_empty());
    assert!(
        report.tool_names.contains(&"get_current_time".to_owned()),
        "{report:?}"
    );
    assert_eq!(report.tools, report.tool_names.len());
}

#[tokio::test]
async fn mcp_server_time_behind_mcp_proxy_over_legacy_sse() {
    let Some(server) = start_proxied_time_server().await else {
        return;
    };
    let report = run(server.url("/sse"), McpTransport::Sse)
        .await
        .expect("probe succeeds");
    assert_eq!(report.server_name, "mcp-time");
    assert_eq!(report.transport, McpTransport::Sse);
    assert!(report.tool_names.contains(&"convert_time".to_owned()));
}

#[tokio::test]
async fn wrong_transport_against_mcp_proxy_is_a_transport_mismatch() {
    let Some(server) = start_proxied_time_server().await else {
        return;
    };
    expect_reason(
        run(server.url("/sse"), McpTransport::StreamableHttp).await,
        FailureReason::TransportMismatch,
    );
    expect_reason(
        run(server.url("/mcp"), McpTransport::Sse).await,
        FailureReason::TransportMismatch,
    );
}

#[tokio::test]
async fn python_sdk_server_over_streamable_http() {
    let Some(server) = start_fixture_server("streamable-http").await else {
        return;
    };
    let report = run(server.url("/mcp"), McpTransport::StreamableHttp)
        .await
        .expect("probe succeeds");
    assert_eq!(report.server_name, "probe-fixture");
    assert_eq!(
        report.tool_names,
        vec!["add".to_owned(), "shout".to_owned()]
    );
    assert_eq!(report.tools, 2);
}

#[tokio::test]
async fn python_sdk_server_over_legacy_sse() {
    let Some(server) = start_fixture_server("sse").await else {
        return;
    };
    let report = run(server.url("/sse"), McpTransport::Sse)
        .await
        .expect("probe succeeds");
    assert_eq!(report.server_name, "probe-fixture");
    assert_eq!(report.tools, 2);
}

#[tokio::test]
async fn python_sdk_server_at_the_wrong_path_is_not_an_mcp_server() {
    let Some(server) = start_fixture_server("streamable-http").await else {
        return;
    };
    expect_reason(
        run(server.url("/nothing-here"), McpTransport::StreamableHttp).await,
        FailureReason::NotAnMcpServer,
    );
}

// ---------- endpoints that are not MCP ----------

fn plain_web_server() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { Html("<html><body>hello</body></html>") }),
        )
        .route(
            "/api",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) })
                .post(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
}

#[tokio::test]
async fn plain_web_server_is_not_an_mcp_server() {
    let addr = serve(plain_web_server()).await;
    for (path, transport) in [
        ("/", McpTransport::StreamableHttp),
        ("/", McpTransport::Sse),
        ("/api", McpTransport::StreamableHttp),
        ("/api", McpTransport::Sse),
        ("/missing", McpTransport::StreamableHttp),
    ] {
        let outcome = run(format!("http://{addr}{path}"), transport).await;
        expect_reason(outcome, FailureReason::NotAnMcpServer);
    }
}

#[tokio::test]
async fn closed_port_is_unreachable() {
    let port = free_port();
    for transport in [McpTransport::StreamableHttp, McpTransport::Sse] {
        expect_reason(
            run(format!("http://127.0.0.1:{port}/mcp"), transport).await,
            FailureReason::Unreachable,
        );
    }
}

#[tokio::test]
async fn https_to_a_plain_http_server_is_a_tls_failure() {
    let addr = serve(plain_web_server()).await;
    expect_reason(
        run(format!("https://{addr}/mcp"), McpTransport::StreamableHttp).await,
        FailureReason::Tls,
    );
}

#[tokio::test]
async fn server_that_never_answers_times_out() {
    // Accepts connections and reads, but never writes a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for transport in [McpTransport::StreamableHttp, McpTransport::Sse] {
        let outcome = probe(
            &ProbeRequest::new(format!("http://{addr}/mcp"))
                .transport(transport)
                .timeout(Duration::from_millis(400)),
        )
        .await;
        let failure = outcome.expect_err("must time out");
        assert_eq!(failure.reason, FailureReason::Timeout, "{failure:?}");
        assert!(failure.latency_ms >= 400, "{failure:?}");
        assert!(failure.latency_ms < 5_000, "{failure:?}");
    }
}

fn event_stream(first_bytes: &'static str) -> Response {
    // Sends `first_bytes`, then keeps the stream open without another byte.
    let head =
        futures::stream::once(
            async move { Ok::<_, std::io::Error>(first_bytes.as_bytes().to_vec()) },
        );
    let body = axum::body::Body::from_stream(head.chain(futures::stream::pending()));
    ([("content-type", "text/event-stream")], body).into_response()
}

#[tokio::test]
async fn event_stream_without_an_endpoint_event() {
    let router = Router::new()
        .route(
            "/silent",
            get(|| async { event_stream(": keep-alive\n\n") }),
        )
        .route(
            "/chatty",
            get(|| async { event_stream("event: message\ndata: {}\n\n") }),
        );
    let addr = serve(router).await;
    // Comments only: the endpoint never comes, and the deadline ends the wait.
    let silent = probe(
        &ProbeRequest::new(format!("http://{addr}/silent"))
            .transport(McpTransport::Sse)
            .timeout(Duration::from_millis(400)),
    )
    .await;
    expect_reason(silent, FailureReason::Timeout);
    // A first event that is not `endpoint`: an event stream, but not legacy MCP.
    expect_reason(
        run(format!("http://{addr}/chatty"), McpTransport::Sse).await,
        FailureReason::NotAnMcpServer,
    );
}

#[tokio::test]
async fn an_endpoint_on_another_host_is_refused_and_gets_no_token() {
    // The POST target must be on the SSE URL's origin: a server naming another host would
    // otherwise receive every message with the bearer token.
    let posted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let elsewhere = {
        let posted = posted.clone();
        serve(Router::new().route(
            "/steal",
            axum::routing::post(move || {
                posted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { StatusCode::ACCEPTED }
            }),
        ))
        .await
    };
    let endpoint: &'static str =
        Box::leak(format!("event: endpoint\ndata: http://{elsewhere}/steal\n\n").into_boxed_str());
    let addr =
        serve(Router::new().route("/sse", get(move || async move { event_stream(endpoint) })))
            .await;
    let outcome = probe(
        &ProbeRequest::new(format!("http://{addr}/sse"))
            .transport(McpTransport::Sse)
            .timeout(Duration::from_secs(3)),
    )
    .await;
    let failure = outcome.expect_err("a foreign endpoint must be refused");
    assert_ne!(failure.reason, FailureReason::Timeout, "{failure:?}");
    assert_eq!(
        posted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing may be posted elsewhere"
    );
}

/// A hand-written JSON-RPC endpoint: initialize succeeds or fails, tools/list fails.
async fn broken_mcp(fail_initialize: bool, body: axum::body::Bytes) -> Response {
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let id = request["id"].clone();
    let method = request["method"].as_str().unwrap_or_default();
    if id.is_null() {
        return StatusCode::ACCEPTED.into_response();
    }
    let answer = match method {
        "initialize" if !fail_initialize => serde_json::json!({
            "jsonrpc": "2.0", "id": id,
            "result": {
                "protocolVersion": "2025-06-18",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "broken", "version": "0.1"},
            },
        }),
        _ => serde_json::json!({
            "jsonrpc": "2.0", "id": id,
            "error": {"code": -32603, "message": format!("{method} exploded")},
        }),
    };
    axum::Json(answer).into_response()
}

#[tokio::test]
async fn mcp_errors_are_protocol_errors() {
    let router = Router::new()
        .route(
            "/bad-init",
            axum::routing::post(|body: axum::body::Bytes| broken_mcp(true, body)),
        )
        .route(
            "/bad-tools",
            axum::routing::post(|body: axum::body::Bytes| broken_mcp(false, body)),
        );
    let addr = serve(router).await;
    let init = run(
        format!("http://{addr}/bad-init"),
        McpTransport::StreamableHttp,
    )
    .await
    .expect_err("initialize error");
    assert_eq!(init.reason, FailureReason::ProtocolError, "{init:?}");
    assert!(init.error.contains("initialize exploded"), "{init:?}");
    let tools = run(
        format!("http://{addr}/bad-tools"),
        McpTransport::StreamableHttp,
    )
    .await
    .expect_err("tools/list error");
    assert_eq!(tools.reason, FailureReason::ProtocolError, "{tools:?}");
    assert!(tools.error.contains("tools/list"), "{tools:?}");
}

// ---------- an MCP server that requires a token ----------

#[derive(Clone)]
struct TokenFixture;

impl ServerHandler for TokenFixture {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("token-fixture", "0.0.1"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![Tool::new(
            "ping",
            "answers pong",
            Arc::new(JsonObject::new()),
        )]))
    }
}

async fn require_token(request: Request, next: Next) -> Response {
    let authorized = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some("Bearer right-token");
    if authorized {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "unauthorized").into_response()
    }
}

async fn token_protected_mcp_server() -> SocketAddr {
    let service = StreamableHttpService::new(
        || Ok(TokenFixture),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(require_token));
    serve(router).await
}

#[tokio::test]
async fn token_protected_server_refuses_missing_and_wrong_tokens() {
    let addr = token_protected_mcp_server().await;
    let url = format!("http://{addr}/mcp");
    expect_reason(
        run(url.clone(), McpTransport::StreamableHttp).await,
        FailureReason::Unauthorized,
    );
    let wrong = probe(
        &ProbeRequest::new(url.clone())
            .timeout(PROBE_TIMEOUT)
            .token(bearer_token("wrong-token")),
    )
    .await;
    let failure = wrong.expect_err("wrong token must fail");
    assert_eq!(failure.reason, FailureReason::Unauthorized);
    assert!(!failure.error.contains("wrong-token"), "{failure:?}");
    expect_reason(
        run(url, McpTransport::Sse).await,
        FailureReason::Unauthorized,
    );
}

#[tokio::test]
async fn token_protected_server_accepts_the_right_token() {
    let addr = token_protected_mcp_server().await;
    let report = probe(
        &ProbeRequest::new(format!("http://{addr}/mcp"))
            .timeout(PROBE_TIMEOUT)
            .token(bearer_token("right-token\n")),
    )
    .await
    .expect("probe with the right token succeeds");
    assert_eq!(report.server_name, "token-fixture");
    assert_eq!(report.tool_names, vec!["ping".to_owned()]);
}

// ---------- both protocol generations ----------

/// An rmcp server restricted to one protocol generation, over streamable HTTP.
async fn rmcp_server_speaking(protocol: mcp_droplet_agent::sim_mcp::SimProtocol) -> SocketAddr {
    use mcp_droplet_agent::sim_mcp::SimMcpServer;
    let server = SimMcpServer::new("sim/generations:1").with_protocol(protocol);
    let service: StreamableHttpService<SimMcpServer, LocalSessionManager> =
        StreamableHttpService::new(
            move || Ok(server.clone()),
            Default::default(),
            protocol.http_config(),
        );
    serve(Router::new().nest_service("/mcp", service)).await
}

#[tokio::test]
async fn servers_of_each_generation_are_verified_and_the_report_names_the_generation() {
    use mcp_droplet_agent::sim_mcp::SimProtocol;
    use mcp_droplet_operator::probe::McpGeneration;
    for (protocol, generation) in [
        (SimProtocol::DiscoverOnly, McpGeneration::Discover),
        (SimProtocol::InitializeOnly, McpGeneration::Initialize),
        (SimProtocol::Both, McpGeneration::Discover),
    ] {
        let addr = rmcp_server_speaking(protocol).await;
        let report = run(format!("http://{addr}/mcp"), McpTransport::StreamableHttp)
            .await
            .unwrap_or_else(|failure| panic!("{protocol:?}: {failure:?}"));
        assert_eq!(report.generation, generation, "{protocol:?}: {report:?}");
        assert_eq!(
            report.protocol_version == "2026-07-28",
            generation == McpGeneration::Discover,
            "{report:?}"
        );
        assert_eq!(report.tool_names, ["echo", "time"], "{protocol:?}");
        let json = serde_json::to_value(&report).expect("json");
        assert_eq!(json["generation"], generation.as_str());
    }
}

#[tokio::test]
async fn an_endless_event_is_refused_with_a_clear_error_not_buffered() {
    // The legacy SSE stream never ends its first event; the probe's parser is bounded (1 MiB),
    // so the probe fails on that, long before its deadline, instead of buffering forever.
    let endless = || async {
        let head = futures::stream::once(async { Ok::<_, std::io::Error>(b"data: ".to_vec()) });
        let tail = futures::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024]));
        (
            [("content-type", "text/event-stream")],
            axum::body::Body::from_stream(head.chain(tail)),
        )
            .into_response()
    };
    let addr = serve(Router::new().route("/sse", get(endless))).await;
    let failure = run(format!("http://{addr}/sse"), McpTransport::Sse)
        .await
        .expect_err("an endless event must fail the probe");
    assert_eq!(failure.reason, FailureReason::ProtocolError, "{failure:?}");
    assert!(failure.error.contains("exceeded"), "{failure:?}");
}
