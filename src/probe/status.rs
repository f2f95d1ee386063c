//! The probe outcome in the API's terms: `MCPDeployment.status.mcp` and a `Verified` condition.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::{McpGeneration, ProbeOutcome, ProbeReport};
use crate::api::conditions::condition;
use crate::api::deployment::McpStatus;

/// Condition type on an MCPDeployment: a real MCP client succeeded through the public endpoint.
pub const VERIFIED: &str = "Verified";
/// Reason of a `Verified=True` condition.
pub const REASON_HANDSHAKE_SUCCEEDED: &str = "HandshakeSucceeded";

/// `status.mcp` from a successful probe run at `now`.
pub fn mcp_status(report: &ProbeReport, now: Timestamp) -> McpStatus {
    McpStatus {
        server_name: Some(report.server_name.clone()),
        server_version: Some(report.server_version.clone()),
        protocol_version: Some(report.protocol_version.clone()),
        tools: u32::try_from(report.tools).unwrap_or(u32::MAX),
        last_probe_time: Some(Time(now)),
    }
}

/// The `Verified` condition for a probe outcome; a failure's reason becomes the condition reason.
pub fn verified_condition(
    outcome: &ProbeOutcome,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    match outcome {
        Ok(report) => condition(
            VERIFIED,
            true,
            REASON_HANDSHAKE_SUCCEEDED,
            format!(
                "{} {} answered {} and tools/list ({} tools, protocol {}, {} ms)",
                report.server_name,
                report.server_version,
                match report.generation {
                    McpGeneration::Discover => "server/discover",
                    McpGeneration::Initialize => "initialize",
                },
                report.tools,
                report.protocol_version,
                report.latency_ms
            ),
            generation,
            now,
        ),
        Err(failure) => condition(
            VERIFIED,
            false,
            failure.reason.condition_reason(),
            format!(
                "{} probe of {} failed: {}",
                failure.transport, failure.url, failure.error
            ),
            generation,
            now,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{FailureReason, McpTransport, ProbeFailure};

    fn now() -> Timestamp {
        Timestamp::from_second(1_764_000_000).unwrap_or_default()
    }

    fn report() -> ProbeReport {
        ProbeReport {
            url: "http://203.0.113.7:31001/mcp".into(),
            transport: McpTransport::StreamableHttp,
            generation: McpGeneration::Initialize,
            server_name: "mcp-time".into(),
            server_version: "1.0".into(),
            protocol_version: "2025-06-18".into(),
            tools: 2,
            tool_names: vec!["a".into(), "b".into()],
            latency_ms: 40,
        }
    }

    #[test]
    fn success_fills_status_and_a_true_condition() {
        let status = mcp_status(&report(), now());
        assert_eq!(status.server_name.as_deref(), Some("mcp-time"));
        assert_eq!(status.tools, 2);
        assert_eq!(status.last_probe_time, Some(Time(now())));
        let c = verified_condition(&Ok(report()), Some(4), now());
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Verified", "True", "HandshakeSucceeded")
        );
        assert!(c.message.contains("2 tools"));
        assert!(c.message.contains("answered initialize"), "{}", c.message);
    }

    #[test]
    fn failure_reason_becomes_the_condition_reason() {
        let failure = ProbeFailure {
            url: "http://203.0.113.7:31001/mcp".into(),
            transport: McpTransport::Sse,
            reason: FailureReason::TransportMismatch,
            error: "use streamable-http".into(),
            latency_ms: 5,
        };
        let c = verified_condition(&Err(failure), None, now());
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "TransportMismatch")
        );
        assert!(c.message.contains("use streamable-http"));
    }
}
