//! The DTMA's JSON shapes (dtma-agent HEAD, research/dtma.md §2), shared by the client and fake.
//!
//! Every response field is optional on read and unknown fields are ignored, because the agent's
//! three status views disagree with each other and it is frozen upstream.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Docker `PortBindings` entry: `{"HostIp"?: str, "HostPort"?: str}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PortBinding {
    /// Host address to bind, absent for all interfaces.
    #[serde(rename = "HostIp", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Host port as a string, as Docker wants it.
    #[serde(rename = "HostPort", default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<String>,
}

/// The `HostConfig` part of `baseConfigOverrideJson` (the only part `/tools` reads, besides Env).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HostConfig {
    /// `"8080/tcp"` → bindings.
    #[serde(rename = "PortBindings", default)]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// Only honoured by `/mcp/groups` (e.g. `{"Name": "unless-stopped"}`).
    #[serde(
        rename = "RestartPolicy",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub restart_policy: Option<serde_json::Value>,
}

/// Docker create options passed through `baseConfigOverrideJson`. Its Debug shows env names
/// only: values may be secrets.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerOverrides {
    /// `KEY=VALUE` strings.
    #[serde(rename = "Env", default)]
    pub env: Vec<String>,
    /// Port bindings (and, for groups, the restart policy).
    #[serde(rename = "HostConfig", default)]
    pub host_config: HostConfig,
    /// Container labels; honoured by `/mcp/groups` only.
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `{"8080/tcp": {}}`; honoured by `/mcp/groups` only.
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
}

impl std::fmt::Debug for ContainerOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<String> = self
            .env
            .iter()
            .map(|kv| format!("{}=***", kv.split('=').next().unwrap_or("")))
            .collect();
        f.debug_struct("ContainerOverrides")
            .field("env", &env)
            .field("host_config", &self.host_config)
            .field("labels", &self.labels)
            .field("exposed_ports", &self.exposed_ports)
            .finish()
    }
}

/// Body of `POST /tools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployToolBody {
    /// Image to pull and run.
    pub docker_image_url: String,
    /// The container name and DTMA's map key.
    pub instance_name_on_toolbox: String,
    /// The caller's id for the instance, echoed back and shown in `/tools/status`.
    pub account_tool_instance_id: String,
    /// Docker create options; `/tools` reads only `Env` and `HostConfig.PortBindings`.
    #[serde(default)]
    pub base_config_override_json: ContainerOverrides,
}

/// One server in `POST /mcp/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupServerBody {
    /// The caller's id for the instance.
    pub account_tool_instance_id: String,
    /// The container name.
    pub instance_name_on_toolbox: String,
    /// Image to pull and run.
    pub docker_image_url: String,
    /// Only echoed in status.
    pub mcp_endpoint_path: String,
    /// Only echoed in status (`stdio`, `sse` or `websocket`).
    pub mcp_transport_type: String,
    /// The complete Docker create options.
    #[serde(default)]
    pub base_config_override_json: ContainerOverrides,
}

/// Body of `POST /mcp/groups`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployGroupBody {
    /// The group key.
    pub group_id: String,
    /// The members.
    pub servers: Vec<GroupServerBody>,
}

/// `data` of the `POST /mcp/groups` answer (201 even when everything failed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupDeployData {
    /// The group key.
    #[serde(default)]
    pub group_id: String,
    /// Members that were created and started.
    #[serde(default)]
    pub deployed_servers: Vec<String>,
    /// Member name → error message.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
}

/// `data` of the `DELETE /mcp/groups/{g}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupRemoveData {
    /// Members removed.
    #[serde(default)]
    pub removed_servers: Vec<String>,
    /// Member name → error message.
    #[serde(default)]
    pub errors: BTreeMap<String, String>,
}

/// One member in `GET /mcp/health/{g}` (`data.health.instances`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupMemberHealth {
    /// pending, pulling, starting, running, stopping, stopped or error.
    #[serde(default)]
    pub status: String,
    /// Docker id, if created.
    #[serde(default)]
    pub container_id: Option<String>,
}

/// `data.health` of `GET /mcp/health/{g}`; `collectiveStatus` is not trusted (always `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GroupHealth {
    /// Reported but meaningless at HEAD.
    #[serde(default)]
    pub collective_status: String,
    /// Member name → state.
    #[serde(default)]
    pub instances: BTreeMap<String, GroupMemberHealth>,
}

/// A port in `/tools/status` (raw Docker list shape, PascalCase keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ListedPort {
    /// Host address.
    #[serde(rename = "IP", default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Container port.
    #[serde(rename = "PrivatePort", default)]
    pub private_port: u16,
    /// Host port, when published.
    #[serde(
        rename = "PublicPort",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub public_port: Option<u16>,
    /// `tcp` or `udp`.
    #[serde(rename = "Type", default)]
    pub kind: String,
}

/// One container in `GET /tools/status` (every container on the host, DTMA's own included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ToolInstance {
    /// Null when the container is not in DTMA's in-memory map (e.g. after an agent restart).
    #[serde(default)]
    pub account_tool_instance_id: Option<String>,
    /// The container name without the leading slash.
    #[serde(default)]
    pub instance_name_on_toolbox: String,
    /// Full Docker id.
    #[serde(default)]
    pub container_id: String,
    /// The Docker state: created, running, paused, restarting, removing, exited, dead.
    #[serde(default)]
    pub status: String,
    /// Image reference.
    #[serde(default)]
    pub image: String,
    /// Ports.
    #[serde(default)]
    pub ports: Vec<ListedPort>,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
}

/// `GET /tools/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ToolsStatus {
    /// Hard-coded `1.0.0` at HEAD.
    #[serde(default)]
    pub version: Option<String>,
    /// The containers.
    #[serde(default)]
    pub tool_instances: Vec<ToolInstance>,
}

/// `GET /status` (the fields the driver reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentStatus {
    /// Always `healthy`.
    #[serde(default)]
    pub status: Option<String>,
    /// The package version (`0.1.0` at HEAD).
    #[serde(default)]
    pub version: Option<String>,
    /// `DTMA`.
    #[serde(default)]
    pub service: Option<String>,
    /// Host metrics, kept opaque.
    #[serde(default)]
    pub system_metrics: Option<serde_json::Value>,
}

/// The error body the agent sends with most failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ErrorBody {
    /// `false` on failures (absent on auth and 404 catch-all bodies).
    #[serde(default)]
    pub success: Option<bool>,
    /// A summary.
    #[serde(default)]
    pub message: Option<String>,
    /// The detail (for Docker failures, dockerode's message).
    #[serde(default)]
    pub error: Option<String>,
}

impl ErrorBody {
    /// The most specific text in the body.
    pub fn text(&self) -> String {
        match (&self.error, &self.message) {
            (Some(error), Some(message)) => format!("{message} {error}"),
            (Some(text), None) | (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        }
    }
}
