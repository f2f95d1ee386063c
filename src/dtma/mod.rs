//! Compatibility driver for the original Agentopia DTMA agent (`spec.agent.kind: dtma`).
//!
//! The agent is frozen upstream and has quirks (research/dtma.md §6): a 500 that means
//! "already stopped", a 201 that hides per-server failures, state lost on restart, no
//! single-instance status. The client turns each into a typed outcome; the driver rebuilds its
//! plan from the agent's container list every pass; a fake agent in test support
//! (`testing::dtma_fake`, feature `testing`) reproduces the wire behaviour.

pub mod capabilities;
pub mod client;
pub mod driver;
pub mod plan;
pub mod wire;

use std::collections::BTreeMap;

pub use client::{ControlOutcome, DeployOutcome, DtmaClient, RemoveOutcome};
pub use driver::{DtmaDriver, PassReport, deploy_body, observe};
pub use plan::{
    Action, Blocker, ConfigHash, DEFAULT_NAME_PREFIX, DesiredServer, ObservedContainer, Plan,
    config_hash_of, owner_of,
};

/// Errors talking to a DTMA agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtmaError {
    /// The base URL is not usable.
    #[error("invalid DTMA URL {0}")]
    InvalidBaseUrl(String),
    /// No HTTP answer (connection, timeout).
    #[error("DTMA unreachable: {0}")]
    Http(String),
    /// 401 (no or malformed bearer) or 403 (wrong token).
    #[error("DTMA refused the token (HTTP {status})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The agent has no token configured (HEAD in a Docker install: every protected call is 500).
    #[error("DTMA is misconfigured: it has no auth token (\"DTMA configuration error\")")]
    AgentMisconfigured,
    /// The name is taken by a container with a different image.
    #[error("container name {name} is taken by something else: {message}")]
    Conflict {
        /// Container name.
        name: String,
        /// The agent's message.
        message: String,
    },
    /// The container exists but the agent (restarted) no longer manages it.
    #[error(
        "DTMA no longer manages container {name} (agent restarted); it cannot start or stop it"
    )]
    AgentForgot {
        /// Container name.
        name: String,
    },
    /// The container exists, the agent forgot it, and DTMA has no way to remove it.
    #[error("container {name} is orphaned: DTMA forgot it and cannot remove it")]
    Orphaned {
        /// Container name.
        name: String,
    },
    /// The agent remembers a container the host no longer has (removed behind its back); the
    /// name and its host port stay blocked until the agent restarts, which forgets all others too.
    #[error(
        "DTMA still remembers container {name}, which no longer exists; it blocks the name and port until the agent restarts"
    )]
    GhostEntry {
        /// Container name.
        name: String,
    },
    /// A group deploy or removal answered success but some members failed.
    #[error(
        "MCP group {group}: members failed: {}",
        client::describe_errors(errors)
    )]
    GroupMembersFailed {
        /// Group id.
        group: String,
        /// Member → error.
        errors: BTreeMap<String, String>,
    },
    /// Any other refusal.
    #[error("DTMA {call} failed with HTTP {status}: {message}")]
    Api {
        /// Which call.
        call: String,
        /// Status code.
        status: u16,
        /// The agent's message.
        message: String,
    },
    /// The answer could not be decoded.
    #[error("cannot decode the DTMA answer: {0}")]
    Decode(String),
}

impl DtmaError {
    /// A bounded label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::InvalidBaseUrl(_) => "invalid_url",
            Self::Http(_) => "unreachable",
            Self::Unauthorized { .. } => "unauthorized",
            Self::AgentMisconfigured => "agent_misconfigured",
            Self::Conflict { .. } => "conflict",
            Self::AgentForgot { .. } => "agent_forgot",
            Self::Orphaned { .. } => "orphaned",
            Self::GhostEntry { .. } => "ghost_entry",
            Self::GroupMembersFailed { .. } => "group_members_failed",
            Self::Api { .. } => "api",
            Self::Decode(_) => "decode",
        }
    }
}
