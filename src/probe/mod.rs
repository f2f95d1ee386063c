//! MCP verification: a real MCP client opens a session (`server/discover` for 2026-07-28
//! servers, `initialize` for older ones) then runs `tools/list` against an endpoint.
//!
//! A deployment counts as Ready only when this succeeds through its public endpoint. The result
//! types are plain data (serde, camelCase) so the controller can copy them into status.

mod classify;
mod client;
pub mod status;

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

pub use classify::{HttpFacts, HttpVerdict, classify_http, looks_like_jsonrpc};
pub use client::probe;
pub use mcp_droplet_agent::event_stream::{SseEvent, SseParser};
pub use mcp_droplet_agent::sse_client::{LegacySseTransport, SseError};

/// Which MCP HTTP transport the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    /// The current transport: JSON-RPC over POST, answers as JSON or an event stream.
    #[default]
    StreamableHttp,
    /// The legacy HTTP+SSE transport (2024-11-05): GET an event stream, POST to its `endpoint`.
    Sse,
}

impl McpTransport {
    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable-http",
            Self::Sse => "sse",
        }
    }
}

impl fmt::Display for McpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A bearer token from text, trimmed of surrounding whitespace (token files usually end in a
/// newline); `SecretString` prints redacted and is zeroized on drop.
pub fn bearer_token(text: &str) -> SecretString {
    SecretString::from(text.trim())
}

/// Which generation of the MCP protocol answered a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpGeneration {
    /// 2026-07-28 and later: `server/discover`, per-request `_meta`, no sessions.
    Discover,
    /// 2025-11-25 and older: the `initialize` handshake and `Mcp-Session-Id` sessions.
    Initialize,
}

impl McpGeneration {
    /// The name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Discover => "discover",
            Self::Initialize => "initialize",
        }
    }
}

impl fmt::Display for McpGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct ProbeRequest {
    /// The MCP endpoint URL (for SSE, the URL of the event stream, usually ending in `/sse`).
    pub url: String,
    /// The transport to speak.
    pub transport: McpTransport,
    /// Deadline for the whole probe, connection to last answer.
    pub timeout: Duration,
    /// Optional bearer token sent as `Authorization: Bearer ...`.
    pub token: Option<SecretString>,
    /// The HTTP client to use (e.g. one pinned to an agent's certificate); by default a fresh
    /// client with the system's roots.
    pub http: Option<reqwest::Client>,
}

impl ProbeRequest {
    /// A streamable-HTTP probe of `url` with a 10 s deadline and no token.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            transport: McpTransport::StreamableHttp,
            timeout: Duration::from_secs(10),
            token: None,
            http: None,
        }
    }

    /// Sets the transport.
    pub fn transport(mut self, transport: McpTransport) -> Self {
        self.transport = transport;
        self
    }

    /// Sets the deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the bearer token.
    pub fn token(mut self, token: SecretString) -> Self {
        self.token = Some(token);
        self
    }

    /// Uses this HTTP client (connection pool, TLS pinning) instead of a fresh one.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }
}

/// What a successful probe learned about the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// The URL that was probed.
    pub url: String,
    /// The transport that worked.
    pub transport: McpTransport,
    /// The protocol generation that answered (`discover` or `initialize`).
    pub generation: McpGeneration,
    /// `serverInfo.name` from the initialize or discover result.
    pub server_name: String,
    /// `serverInfo.version` from the initialize or discover result.
    pub server_version: String,
    /// The protocol version the server agreed to.
    pub protocol_version: String,
    /// How many tools `tools/list` returned.
    pub tools: usize,
    /// The tool names, in the server's order.
    pub tool_names: Vec<String>,
    /// Time from the first connection to the `tools/list` answer, in milliseconds.
    pub latency_ms: u64,
}

/// Why a probe failed; a small fixed set so it can be a condition reason and a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureReason {
    /// Nothing accepts connections there (refused, no route, DNS failure).
    Unreachable,
    /// TCP works but the TLS handshake failed (certificate, protocol).
    Tls,
    /// The server answered 401 or 403.
    Unauthorized,
    /// Something answers HTTP, but not MCP.
    NotAnMcpServer,
    /// An MCP server is there, but it speaks the other transport.
    TransportMismatch,
    /// No complete answer within the deadline.
    Timeout,
    /// An MCP server answered, but with an error or something the protocol does not allow.
    ProtocolError,
}

impl FailureReason {
    /// The kebab-case name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Tls => "tls",
            Self::Unauthorized => "unauthorized",
            Self::NotAnMcpServer => "not-an-mcp-server",
            Self::TransportMismatch => "transport-mismatch",
            Self::Timeout => "timeout",
            Self::ProtocolError => "protocol-error",
        }
    }

    /// The CamelCase form, for a Kubernetes condition `reason`.
    pub fn condition_reason(self) -> &'static str {
        match self {
            Self::Unreachable => "Unreachable",
            Self::Tls => "TLSError",
            Self::Unauthorized => "Unauthorized",
            Self::NotAnMcpServer => "NotAnMCPServer",
            Self::TransportMismatch => "TransportMismatch",
            Self::Timeout => "Timeout",
            Self::ProtocolError => "ProtocolError",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed probe: the typed reason and a message for people (never contains the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{reason}: {error}")]
pub struct ProbeFailure {
    /// The URL that was probed.
    pub url: String,
    /// The transport that was tried.
    pub transport: McpTransport,
    /// The typed reason.
    pub reason: FailureReason,
    /// What went wrong, in words.
    pub error: String,
    /// Time until the failure was known, in milliseconds.
    pub latency_ms: u64,
}

/// The outcome of one probe, as stored or printed.
pub type ProbeOutcome = Result<ProbeReport, ProbeFailure>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_never_printed_and_is_trimmed() {
        use secrecy::ExposeSecret;
        let token = bearer_token("s3cret\n");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert_eq!(token.expose_secret(), "s3cret");
    }

    #[test]
    fn report_serializes_camel_case() {
        let report = ProbeReport {
            url: "http://x/mcp".into(),
            transport: McpTransport::StreamableHttp,
            generation: McpGeneration::Discover,
            server_name: "time".into(),
            server_version: "1.0".into(),
            protocol_version: "2025-06-18".into(),
            tools: 1,
            tool_names: vec!["get_current_time".into()],
            latency_ms: 12,
        };
        let json = serde_json::to_value(&report).unwrap_or_default();
        assert_eq!(json["serverName"], "time");
        assert_eq!(json["toolNames"][0], "get_current_time");
        assert_eq!(json["latencyMs"], 12);
        assert_eq!(json["transport"], "streamable-http");
        assert_eq!(json["generation"], "discover");
    }

    #[test]
    fn failure_reason_serializes_kebab_case() {
        let json = serde_json::to_value(FailureReason::NotAnMcpServer).unwrap_or_default();
        assert_eq!(json, "not-an-mcp-server");
    }
}
