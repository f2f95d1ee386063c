//! The MCP server every simulated container runs: a real rmcp server with `echo` and `time`.

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, ListPromptsResult,
        PaginatedRequestParams, Prompt, PromptMessage, Role, ServerCapabilities, ServerConfig,
    },
    schemars,
    service::RequestContext,
    tool, tool_handler, tool_router,
};

/// Arguments of the `echo` tool.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// Text to send back.
    pub text: String,
}

/// A tiny MCP server with two tools, standing in for a real image in the simulation.
#[derive(Debug, Clone)]
pub struct SimMcpServer {
    tool_router: ToolRouter<Self>,
    image: String,
}

impl SimMcpServer {
    /// A server that says which image it pretends to be.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            tool_router: Self::tool_router(),
            image: image.into(),
        }
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
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{secs}")
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
