//! The MCP bridge: one streamable-HTTP endpoint per server that forwards to the MCP server in
//! the container, whatever its transport (stdio pipes or HTTP).

use crate::runtime::McpConnection;
use crate::sse_client::LegacySseTransport;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use rmcp::{ErrorData, Peer, RoleClient, RoleServer, ServerHandler, ServiceExt};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the bridge could not connect to the server in the container.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The MCP handshake with the server failed.
    #[error("MCP handshake with the server failed: {0}")]
    Handshake(String),
    /// The handshake did not finish in time.
    #[error("MCP handshake with the server timed out")]
    Timeout,
}

/// The live upstream connection of one server, swapped when the bridge reconnects.
#[derive(Debug, Default)]
pub struct UpstreamSlot {
    peer: RwLock<Option<Peer<RoleClient>>>,
}

impl UpstreamSlot {
    /// Installs a new upstream peer (or none while the server is down).
    pub fn set(&self, peer: Option<Peer<RoleClient>>) {
        *self.peer.write().unwrap_or_else(|e| e.into_inner()) = peer;
    }

    fn get(&self) -> Option<Peer<RoleClient>> {
        self.peer.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The MCP server the agent exposes for one container; forwards tool calls upstream.
#[derive(Debug, Clone)]
pub struct ProxyHandler {
    upstream: Arc<UpstreamSlot>,
}

/// Longest wait for an upstream answer, so a call to a server that died mid-request fails
/// instead of hanging.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, rmcp::ServiceError>>,
) -> Result<T, ErrorData> {
    match tokio::time::timeout(UPSTREAM_TIMEOUT, call).await {
        Ok(result) => result.map_err(upstream_error),
        Err(_) => Err(ErrorData::internal_error(
            "the MCP server did not answer in time",
            None,
        )),
    }
}

fn unavailable() -> ErrorData {
    ErrorData::internal_error("the MCP server is not running (yet); retry shortly", None)
}

fn upstream_error(e: rmcp::ServiceError) -> ErrorData {
    match e {
        rmcp::ServiceError::McpError(data) => data,
        other => ErrorData::internal_error(format!("upstream MCP server: {other}"), None),
    }
}

impl ServerHandler for ProxyHandler {
    fn get_info(&self) -> ServerConfig {
        let info = self.upstream.get().and_then(|p| p.peer_info());
        // Mirror what the upstream offers (tools always: that is what deployments are for).
        // Subscriptions and list-changed notifications are not forwarded, so not advertised.
        let upstream_caps = info.as_ref().map(|i| &i.capabilities);
        let mut capabilities = ServerCapabilities::builder().enable_tools().build();
        if upstream_caps.is_some_and(|c| c.resources.is_some()) {
            capabilities.resources = Some(Default::default());
        }
        if upstream_caps.is_some_and(|c| c.prompts.is_some()) {
            capabilities.prompts = Some(Default::default());
        }
        let mut config = ServerConfig::new(capabilities);
        if let Some(info) = info {
            if let Some(server_info) = info.server_info.clone() {
                config = config.with_server_info(server_info);
            }
            if let Some(instructions) = info.instructions.clone() {
                config = config.with_instructions(instructions);
            }
        }
        config
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.list_tools(request)).await
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.call_tool_once(request)).await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.list_resources(request)).await
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.list_resource_templates(request)).await
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.read_resource_once(request)).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.list_prompts(request)).await
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let peer = self.upstream.get().ok_or_else(unavailable)?;
        bounded(peer.get_prompt_once(request)).await
    }
}

/// The per-server endpoint service.
pub type EndpointService = StreamableHttpService<ProxyHandler, LocalSessionManager>;

/// Builds the streamable-HTTP endpoint of one server over its upstream slot.
pub fn endpoint_service(
    upstream: Arc<UpstreamSlot>,
    shutdown: CancellationToken,
) -> EndpointService {
    // The endpoint is public behind a bearer token, so the loopback-only Host check does not
    // apply; authentication happens before a request reaches this service.
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(shutdown);
    let handler = ProxyHandler { upstream };
    StreamableHttpService::new(move || Ok(handler.clone()), Default::default(), config)
}

/// A connected upstream client.
pub type UpstreamClient = RunningService<RoleClient, ()>;

/// How the bridge opens an upstream session over stdio and streamable HTTP: `server/discover`
/// first (2026-07-28), then `initialize` when the server answers as one of the session-based
/// generations, so servers of both generations are bridged.
pub fn upstream_lifecycle() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::LATEST],
        legacy_version: None,
    }
}

/// Connects to the MCP server in a container and runs the MCP handshake of whichever protocol
/// generation it speaks (legacy SSE servers predate `server/discover`: `initialize` only).
pub async fn connect(
    connection: McpConnection,
    timeout: Duration,
) -> Result<UpstreamClient, BridgeError> {
    let handshake = async move {
        match connection {
            McpConnection::Stdio { reader, writer } => {
                ().serve_with_lifecycle((reader, writer), upstream_lifecycle())
                    .await
            }
            McpConnection::Http { url } => {
                let transport = StreamableHttpClientTransport::from_config(
                    StreamableHttpClientTransportConfig::with_uri(url),
                );
                ().serve_with_lifecycle(transport, upstream_lifecycle())
                    .await
            }
            McpConnection::Sse { url } => {
                let url = reqwest::Url::parse(&url)
                    .map_err(|e| BridgeError::Handshake(format!("invalid SSE URL: {e}")))?;
                let http = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| BridgeError::Handshake(e.to_string()))?;
                let transport = LegacySseTransport::connect(http, url, None)
                    .await
                    .map_err(|e| BridgeError::Handshake(e.to_string()))?;
                ().serve(transport).await
            }
        }
        .map_err(|e| BridgeError::Handshake(e.to_string()))
    };
    match tokio::time::timeout(timeout, handshake).await {
        Ok(result) => result,
        Err(_) => Err(BridgeError::Timeout),
    }
}
