//! The MCP server every simulated container runs: a real rmcp server with `echo` and `time`.

use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
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
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(format!("simulated MCP server for image {}", self.image))
    }
}
