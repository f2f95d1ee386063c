//! The probe itself: rmcp's client does the real handshake (`server/discover` first, falling
//! back to `initialize` for the session-based generation); on failure one raw request tells
//! which kind of endpoint answered, so the failure gets a precise reason.

use std::time::{Duration, Instant};

use mcp_droplet_agent::event_stream::SseParser;
use mcp_droplet_agent::sse_client::{LegacySseTransport, SseError, bearer_header};
use reqwest::Url;
use rmcp::ServiceExt;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{
    ClientInitializeError, ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService,
};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use secrecy::{ExposeSecret, SecretString};

use super::classify::{HttpFacts, HttpVerdict, classify_http};
use super::{FailureReason, McpGeneration, McpTransport, ProbeFailure, ProbeOutcome, ProbeReport};

/// How much of a body the diagnosis reads.
const BODY_PREFIX_LIMIT: usize = 4096;

/// The MCP protocol version the diagnosis offers in its raw `initialize`.
const DIAGNOSIS_PROTOCOL_VERSION: &str = "2025-06-18";

type Failed = (FailureReason, String);

struct Handshake {
    generation: McpGeneration,
    server_name: String,
    server_version: String,
    protocol_version: String,
    tool_names: Vec<String>,
}

/// Runs `initialize` then `tools/list` against the endpoint within the request's deadline.
pub async fn probe(request: &super::ProbeRequest) -> ProbeOutcome {
    let started = Instant::now();
    let outcome = match Url::parse(&request.url) {
        Err(error) => Err((
            FailureReason::Unreachable,
            format!("invalid URL {:?}: {error}", request.url),
        )),
        Ok(url) => match tokio::time::timeout(request.timeout, handshake(request, url)).await {
            Ok(result) => result,
            Err(_) => Err((
                FailureReason::Timeout,
                format!(
                    "no complete MCP answer within {}",
                    humanize(request.timeout)
                ),
            )),
        },
    };
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(handshake) => Ok(ProbeReport {
            url: request.url.clone(),
            transport: request.transport,
            generation: handshake.generation,
            server_name: handshake.server_name,
            server_version: handshake.server_version,
            protocol_version: handshake.protocol_version,
            tools: handshake.tool_names.len(),
            tool_names: handshake.tool_names,
            latency_ms,
        }),
        Err((reason, error)) => Err(ProbeFailure {
            url: request.url.clone(),
            transport: request.transport,
            reason,
            error,
            latency_ms,
        }),
    }
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

fn client_config() -> ClientConfig {
    ClientConfig::new(
        ClientCapabilities::default(),
        Implementation::new("mcp-droplet-operator-probe", env!("CARGO_PKG_VERSION")),
    )
}

/// `server/discover` first; `initialize` when the server answers as the older generation.
fn lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: None,
    }
}

async fn handshake(request: &super::ProbeRequest, url: Url) -> Result<Handshake, Failed> {
    let http = match &request.http {
        Some(http) => http.clone(),
        None => reqwest::Client::builder()
            .connect_timeout(request.timeout)
            .build()
            .map_err(|error| (FailureReason::Unreachable, chain(&error)))?,
    };
    let token = request.token.clone();
    match request.transport {
        McpTransport::StreamableHttp => {
            let mut config = StreamableHttpClientTransportConfig::with_uri(url.as_str());
            if let Some(token) = &token {
                config = config.auth_header(token.expose_secret());
            }
            let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
            match client_config()
                .serve_with_lifecycle(transport, lifecycle())
                .await
            {
                Ok(running) => finish(running).await,
                Err(error) => Err(diagnose_streamable(&http, &url, token.as_ref(), error).await),
            }
        }
        McpTransport::Sse => {
            // Legacy SSE predates `server/discover`: its servers only know `initialize`.
            let transport = connect_sse(&http, &url, token).await?;
            match client_config().serve(transport).await {
                Ok(running) => finish(running).await,
                Err(error) => Err((FailureReason::ProtocolError, error.to_string())),
            }
        }
    }
}

/// Reads what initialize returned, lists the tools, and closes the session.
async fn finish(running: RunningService<RoleClient, ClientConfig>) -> Result<Handshake, Failed> {
    let Some(info) = running.peer_info() else {
        return Err((
            FailureReason::ProtocolError,
            "the handshake finished without server information".to_owned(),
        ));
    };
    let (server_name, server_version) = info
        .server_info
        .as_ref()
        .map(|server| (server.name.clone(), server.version.clone()))
        .unwrap_or_default();
    let protocol_version = info.protocol_version.to_string();
    let generation = if info.protocol_version.has_initialize() {
        McpGeneration::Initialize
    } else {
        McpGeneration::Discover
    };
    // A server without the tools capability has, by definition, no tools to list.
    let tool_names = if info.capabilities.tools.is_some() {
        match running.list_all_tools().await {
            Ok(tools) => tools
                .into_iter()
                .map(|tool| tool.name.into_owned())
                .collect(),
            Err(error) => {
                let _ = running.cancel().await;
                return Err((
                    FailureReason::ProtocolError,
                    format!("tools/list failed: {error}"),
                ));
            }
        }
    } else {
        Vec::new()
    };
    // Closing politely ends the server-side session; its outcome does not change the verdict.
    let _ = running.cancel().await;
    Ok(Handshake {
        generation,
        server_name,
        server_version,
        protocol_version,
        tool_names,
    })
}

/// Explains why rmcp's streamable-HTTP handshake failed.
async fn diagnose_streamable(
    http: &reqwest::Client,
    url: &Url,
    token: Option<&SecretString>,
    error: ClientInitializeError,
) -> Failed {
    // After a refused `server/discover`, the `initialize` fallback's error is the one that
    // describes the endpoint.
    let error = match error {
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => *fallback,
        other => other,
    };
    match &error {
        ClientInitializeError::JsonRpcError(data) => {
            return (
                FailureReason::ProtocolError,
                format!("initialize was answered with an error: {}", data.message),
            );
        }
        ClientInitializeError::NoCompatibleProtocolVersion { .. } => {
            return (FailureReason::ProtocolError, error.to_string());
        }
        _ => {}
    }
    let facts = match raw_initialize(http, url, token).await {
        Ok(facts) => facts,
        Err(request_error) => return classify_request_error(&request_error, url).await,
    };
    match classify_http(McpTransport::StreamableHttp, &facts) {
        HttpVerdict::Fail(reason, message) => (reason, message),
        HttpVerdict::SpeaksTransport => (FailureReason::ProtocolError, error.to_string()),
        HttpVerdict::TryOtherTransport(message) => {
            if serves_legacy_sse(http, url, token).await {
                (
                    FailureReason::TransportMismatch,
                    format!(
                        "{message}: this is a legacy SSE endpoint; probe it with --transport sse"
                    ),
                )
            } else {
                (FailureReason::NotAnMcpServer, message)
            }
        }
    }
}

/// GETs the event stream, classifies a refusal, and hands a good stream to the transport.
async fn connect_sse(
    http: &reqwest::Client,
    url: &Url,
    token: Option<SecretString>,
) -> Result<LegacySseTransport, Failed> {
    let mut get = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(token) = &token {
        get = get.bearer_auth(token.expose_secret());
    }
    let response = match get.send().await {
        Ok(response) => response,
        Err(error) => return Err(classify_request_error(&error, url).await),
    };
    let head = HttpFacts {
        status: response.status().as_u16(),
        content_type: content_type(&response),
        // The body of an event stream never ends; the status and type are enough here.
        body_prefix: String::new(),
    };
    match classify_http(McpTransport::Sse, &head) {
        HttpVerdict::Fail(reason, message) => Err((reason, message)),
        HttpVerdict::SpeaksTransport => {
            let authorization = token
                .as_ref()
                .and_then(|t| bearer_header(t.expose_secret()));
            LegacySseTransport::from_response(http.clone(), url.clone(), response, authorization)
                .await
                .map_err(|error| match error {
                    SseError::NoEndpoint(_)
                    | SseError::BadEndpoint(_)
                    | SseError::ForeignEndpoint(_) => {
                        (FailureReason::NotAnMcpServer, error.to_string())
                    }
                    other => (FailureReason::ProtocolError, other.to_string()),
                })
        }
        HttpVerdict::TryOtherTransport(message) => {
            drop(response);
            match raw_initialize(http, url, token.as_ref()).await {
                Ok(facts) => match classify_http(McpTransport::StreamableHttp, &facts) {
                    HttpVerdict::SpeaksTransport => Err((
                        FailureReason::TransportMismatch,
                        format!(
                            "{message}: this is a streamable HTTP endpoint; probe it with --transport streamable-http"
                        ),
                    )),
                    HttpVerdict::Fail(FailureReason::Unauthorized, why) => {
                        Err((FailureReason::Unauthorized, why))
                    }
                    _ => Err((FailureReason::NotAnMcpServer, message)),
                },
                Err(_) => Err((FailureReason::NotAnMcpServer, message)),
            }
        }
    }
}

/// POSTs one `initialize` and records how the endpoint answered.
async fn raw_initialize(
    http: &reqwest::Client,
    url: &Url,
    token: Option<&SecretString>,
) -> Result<HttpFacts, reqwest::Error> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": DIAGNOSIS_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcp-droplet-operator-probe", "version": env!("CARGO_PKG_VERSION")},
        },
    });
    let mut post = http
        .post(url.clone())
        .header(
            reqwest::header::ACCEPT,
            "application/json, text/event-stream",
        )
        .json(&body);
    if let Some(token) = token {
        post = post.bearer_auth(token.expose_secret());
    }
    let response = post.send().await?;
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let body_prefix = read_prefix(response).await;
    Ok(HttpFacts {
        status,
        content_type,
        body_prefix,
    })
}

/// Whether `url` serves a legacy SSE stream whose first event names a message endpoint.
async fn serves_legacy_sse(
    http: &reqwest::Client,
    url: &Url,
    token: Option<&SecretString>,
) -> bool {
    let mut get = http
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream");
    if let Some(token) = token {
        get = get.bearer_auth(token.expose_secret());
    }
    let Ok(mut response) = get.send().await else {
        return false;
    };
    let head = HttpFacts {
        status: response.status().as_u16(),
        content_type: content_type(&response),
        body_prefix: String::new(),
    };
    if classify_http(McpTransport::Sse, &head) != HttpVerdict::SpeaksTransport {
        return false;
    }
    let mut parser = SseParser::new();
    let mut seen = 0;
    while seen < BODY_PREFIX_LIMIT {
        let Ok(Some(chunk)) = response.chunk().await else {
            return false;
        };
        seen += chunk.len();
        match parser.push(&chunk) {
            Ok(events) => {
                if let Some(first) = events.into_iter().next() {
                    return first.event == "endpoint";
                }
            }
            Err(_) => return false,
        }
    }
    false
}

/// Reads up to [`BODY_PREFIX_LIMIT`] bytes; stops early after a complete event-stream event.
async fn read_prefix(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    let mut parser = SseParser::new();
    while bytes.len() < BODY_PREFIX_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                bytes.extend_from_slice(&chunk);
                // An event stream may stay open; one complete event is all the diagnosis needs.
                if parser
                    .push(&chunk)
                    .map_or(true, |events| !events.is_empty())
                {
                    break;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(BODY_PREFIX_LIMIT);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn content_type(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// Classifies an HTTP-level failure; for HTTPS, a TCP connect tells TLS apart from unreachable.
async fn classify_request_error(error: &reqwest::Error, url: &Url) -> Failed {
    if error.is_timeout() {
        return (FailureReason::Timeout, chain(error));
    }
    if error.is_connect() {
        if url.scheme() == "https" && tcp_connects(url).await {
            return (
                FailureReason::Tls,
                format!("TCP connects but TLS fails: {}", chain(error)),
            );
        }
        return (FailureReason::Unreachable, chain(error));
    }
    (
        FailureReason::NotAnMcpServer,
        format!(
            "the connection broke before an HTTP answer: {}",
            chain(error)
        ),
    )
}

async fn tcp_connects(url: &Url) -> bool {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    matches!(
        tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((host, port))
        )
        .await,
        Ok(Ok(_))
    )
}

/// An error and its sources on one line, since reqwest's top-level message hides the cause.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
