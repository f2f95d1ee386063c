//! What a DTMA droplet cannot do, reported as the Droplet's `AgentCapabilities` condition, so
//! users see why adopting one is a step down and how to upgrade it to mcp-droplet-agent.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use crate::api::conditions::condition;
use crate::api::droplet::AgentKind;

/// Condition type on a Droplet: whether its agent offers everything the operator uses.
pub const AGENT_CAPABILITIES: &str = "AgentCapabilities";
/// Reason when the droplet runs our agent.
pub const REASON_FULL_AGENT: &str = "FullAgent";
/// Reason when the droplet runs the original DTMA, driven in compatibility mode.
pub const REASON_LEGACY_AGENT: &str = "LegacyAgent";

/// A capability the operator uses that an agent may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// TLS on the agent API (DTMA is plain HTTP: tokens and env values cross the network in clear).
    Tls,
    /// Container logs (DTMA's log routes return synthetic text or stubs).
    Logs,
    /// Per-container CPU and memory metrics.
    Metrics,
    /// Authentication in front of each MCP server's endpoint.
    PerServerAuth,
    /// Labels and resource limits on containers (DTMA's `/tools` route drops them).
    LabelsAndLimits,
    /// Status of one instance (DTMA only lists the whole host).
    SingleInstanceStatus,
    /// Managed state that survives an agent restart (DTMA keeps it in memory only).
    DurableState,
}

impl Capability {
    /// A short phrase for condition messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Tls => "TLS (tokens and environment values cross the network in plain text)",
            Self::Logs => "container logs",
            Self::Metrics => "per-server CPU and memory metrics",
            Self::PerServerAuth => "per-server authentication",
            Self::LabelsAndLimits => "container labels and resource limits",
            Self::SingleInstanceStatus => "single-instance status",
            Self::DurableState => {
                "state that survives an agent restart (after one, DTMA cannot stop or remove the servers it forgot)"
            }
        }
    }
}

/// What the given agent lacks, in a fixed order.
pub fn missing_capabilities(kind: AgentKind) -> &'static [Capability] {
    match kind {
        AgentKind::McpDropletAgent => &[],
        AgentKind::Dtma => &[
            Capability::Tls,
            Capability::Logs,
            Capability::Metrics,
            Capability::PerServerAuth,
            Capability::LabelsAndLimits,
            Capability::SingleInstanceStatus,
            Capability::DurableState,
        ],
    }
}

/// The `AgentCapabilities` condition for a droplet running `kind`.
pub fn agent_capabilities_condition(
    kind: AgentKind,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let missing = missing_capabilities(kind);
    if missing.is_empty() {
        return condition(
            AGENT_CAPABILITIES,
            true,
            REASON_FULL_AGENT,
            "mcp-droplet-agent offers every capability the operator uses",
            generation,
            now,
        );
    }
    let list = missing
        .iter()
        .map(|c| c.describe())
        .collect::<Vec<_>>()
        .join("; ");
    condition(
        AGENT_CAPABILITIES,
        false,
        REASON_LEGACY_AGENT,
        format!(
            "This droplet runs the original DTMA agent, driven in compatibility mode. Missing: {list}. \
             To upgrade, install mcp-droplet-agent on the droplet and set spec.agent.kind to \
             mcp-droplet-agent; its MCP servers are then redeployed through the new agent (see docs/dtma.md)."
        ),
        generation,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_764_000_000).unwrap_or_default()
    }

    #[test]
    fn dtma_is_a_legacy_agent_with_the_gaps_named() {
        let c = agent_capabilities_condition(AgentKind::Dtma, Some(3), now());
        assert_eq!(c.type_, "AgentCapabilities");
        assert_eq!(c.status, "False");
        assert_eq!(c.reason, "LegacyAgent");
        assert_eq!(c.observed_generation, Some(3));
        for needle in [
            "TLS",
            "logs",
            "metrics",
            "authentication",
            "mcp-droplet-agent",
            "spec.agent.kind",
        ] {
            assert!(
                c.message.contains(needle),
                "missing {needle:?} in {}",
                c.message
            );
        }
    }

    #[test]
    fn our_agent_has_every_capability() {
        let c = agent_capabilities_condition(AgentKind::McpDropletAgent, None, now());
        assert_eq!(c.status, "True");
        assert_eq!(c.reason, "FullAgent");
        assert!(missing_capabilities(AgentKind::McpDropletAgent).is_empty());
    }
}
