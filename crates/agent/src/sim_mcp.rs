//! The MCP server every simulated container runs: a real rmcp server with `echo` and `time`,
//! speaking either or both protocol generations (chosen by the container's env, see
//! [`SimProtocol`]).

use crate::api::EnvVar;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        DiscoverResult, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
        ListPromptsResult, PaginatedRequestParams, Prompt, PromptMessage, ProtocolVersion, Role,
        ServerCapabilities, ServerConfig,
    },
    schemars,
    service::RequestContext,
    tool, tool_handler, tool_router,
};
use std::borrow::Cow;

/// Arguments of the `echo` tool.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

/// Which MCP protocol generations a simulated server speaks, so tests can stand in for servers
/// of each era: set the container env var [`SimProtocol::ENV`] to `both` (default),
/// `initialize` (2025-11-25 and older: `initialize` and sessions only) or `discover`
/// (2026-07-28 only: `server/discover`, per-request `_meta`, no sessions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimProtocol {
    /// Both generations, as rmcp serves by default.
    #[default]
    Both,
    /// Only the session-based generation; `server/discover` is an unknown method.
    InitializeOnly,
    /// Only 2026-07-28; `initialize` is refused and HTTP is served without sessions.
    DiscoverOnly,
}

impl SimProtocol {
    /// The container env var that selects the generation.
    pub const ENV: &'static str = "SIM_MCP_PROTOCOL";

    /// The generation named in a container's env (unknown values fall back to `both`, as a
    /// real image would ignore a setting it does not know).
    pub fn from_env(env: &[EnvVar]) -> Self {
        match env
            .iter()
            .find(|v| v.name == Self::ENV)
            .map(|v| v.value.as_str())
        {
            Some("initialize") => Self::InitializeOnly,
            Some("discover") => Self::DiscoverOnly,
            _ => Self::Both,
        }
    }

    /// The protocol versions a server of this generation accepts.
    pub fn supported_versions(self) -> &'static [ProtocolVersion] {
        match self {
            // rmcp checks a request's `_meta` version against this list before dispatching it,
            // so an initialize-only server keeps the full list (a narrower one would answer
            // `server/discover` with "unsupported version", which a real legacy server never
            // does) and refuses `server/discover` in its handler instead.
            Self::Both | Self::InitializeOnly => ProtocolVersion::KNOWN_VERSIONS,
            Self::DiscoverOnly => std::slice::from_ref(&ProtocolVersion::V_2026_07_28),
        }
    }

    /// The streamable-HTTP server config of this generation: a 2026-07-28-only server keeps no
    /// sessions and requires the per-request protocol metadata.
    pub fn http_config(self) -> StreamableHttpServerConfig {
        let config = StreamableHttpServerConfig::default();
        match self {
            Self::Both | Self::InitializeOnly => config,
            Self::DiscoverOnly => config
                .with_legacy_session_mode(false)
                .with_stateless_protocol_metadata_required(true),
        }
    }
}

/// A tiny MCP server with two tools, standing in for a real image in the simulation.
#[derive(Debug, Clone)]
pub struct SimMcpServer {
    tool_router: ToolRouter<Self>,
    image: String,
    protocol: SimProtocol,
}

impl SimMcpServer {
    /// A server that says which image it pretends to be and speaks both generations.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            image: image.into(),
            protocol: SimProtocol::Both,
        }
    }

    /// The same server restricted to one protocol generation.
    pub fn with_protocol(mut self, protocol: SimProtocol) -> Self {
        self.protocol = protocol;
        self
    }
}

#[tool_router]
impl SimMcpServer {
    /// Returns its input.
    #[tool(description = "Echo the given text back")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    /// Returns the current time.
    #[tool(description = "Current time as seconds since the Unix epoch (UTC)")]
    fn time(&self) -> String {
        format!("{}", clock::Timestamp::now().as_second())
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SimMcpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .build(),
        )
        .with_instructions(format!("simulated MCP server for image {}", self.image))
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(self.protocol.supported_versions())
    }

    async fn discover(
        &self,
        _context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        match self.protocol {
            // What a server from before 2026-07-28 answers to a method it does not know.
            SimProtocol::InitializeOnly => Err(ErrorData::method_not_found::<
                rmcp::model::DiscoverRequestMethod,
            >()),
            SimProtocol::Both | SimProtocol::DiscoverOnly => Ok(DiscoverResult::from_server_info(
                self.protocol.supported_versions().to_vec(),
                self.get_info(),
            )),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            "greeting",
            Some("A greeting from the simulated server"),
            None,
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greeting" {
            return Err(ErrorData::invalid_params("unknown prompt", None));
        }
        Ok(GetPromptResult::new(vec![PromptMessage::new_text(
            Role::User,
            format!("hello from {}", self.image),
        )])
        .into())
    }
}
