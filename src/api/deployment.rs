//! `MCPDeployment`: one running MCP server, placed on a droplet and verified with a real handshake.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::shared_fields::{
    EnvVar, LocalObjectReference, REGION_PATTERN, ResourceRequests, Weights,
};

/// A running MCP server: which template, its env and secrets, and where it may be placed.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "mcp.agentopia.io",
    version = "v1alpha1",
    kind = "MCPDeployment",
    plural = "mcpdeployments",
    singular = "mcpdeployment",
    shortname = "mcpd",
    category = "mcp",
    namespaced,
    status = "MCPDeploymentStatus",
    cel,
    doc = "One MCP server deployed onto a droplet.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Droplet",
        type_ = "string",
        json_path = ".status.placement.droplet"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        json_path = ".status.placement.region"
    ),
    printcolumn(
        name = "Tools",
        type_ = "integer",
        json_path = ".status.mcp.tools",
        priority = 1
    ),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct MCPDeploymentSpec {
    /// The MCPTemplate to run.
    pub template_ref: LocalObjectReference,
    /// Environment: literal values or references to Secret and ConfigMap keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub env: Vec<EnvVar>,
    /// Overrides of the template's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequests>,
    /// Overrides of the template's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Where the server may run and how droplets are scored.
    #[serde(default)]
    pub placement: Placement,
}

/// Placement of a deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!(has(self.dropletName) && self.dropletName != '' && has(self.dropletSelector))")
    .message("placement.dropletName and placement.dropletSelector are exclusive: pin one droplet by name or select droplets by labels, not both"))]
pub struct Placement {
    /// Pin to this droplet (a Droplet object in the same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$"),
        length(max = 63)
    )]
    pub droplet_name: Option<String>,
    /// Only droplets whose labels match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub droplet_selector: Option<LabelSelector>,
    /// Preferred regions, best first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = REGION_PATTERN)))]
    pub regions: Vec<String>,
    /// The DropletPool to use; defaults to the namespace's `default` pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Scoring weights; default 40/25/15/10/10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Provision a new droplet when none fits.
    #[serde(default = "default_true")]
    pub auto_provision: bool,
}

impl Default for Placement {
    fn default() -> Self {
        Placement {
            droplet_name: None,
            droplet_selector: None,
            regions: Vec::new(),
            pool: None,
            weights: None,
            auto_provision: true,
        }
    }
}

fn default_true() -> bool {
    true
}

/// Phase of a deployment, following the deploy flow.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeploymentPhase {
    /// Not acted on yet.
    #[default]
    Pending,
    /// Checking the template, env and secrets.
    Validating,
    /// Choosing a droplet.
    Scheduling,
    /// Creating a droplet for it.
    Provisioning,
    /// The agent prepares the droplet.
    Preparing,
    /// The agent pulls the image.
    Pulling,
    /// The agent creates and starts the container.
    Deploying,
    /// Health check and MCP handshake.
    Verifying,
    /// Serving at the endpoint.
    Ready,
    /// Stopped on an error; see the conditions.
    Failed,
    /// Being deleted.
    Terminating,
}

/// Progress through the deploy steps.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// The step in progress (or the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// 0-100.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub percent: u32,
    /// Every step with its state and times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// One deploy step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Step name, e.g. `Pulling`.
    pub name: String,
    /// Its state.
    #[serde(default)]
    pub state: StepState,
    /// What is happening or what went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// State of a deploy step.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum StepState {
    /// Not started.
    #[default]
    Pending,
    /// In progress.
    Running,
    /// Done.
    Succeeded,
    /// Failed; see the message.
    Failed,
    /// Not needed (e.g. Provisioning when a droplet fit).
    Skipped,
}

/// The scheduler's choice and why.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementStatus {
    /// Chosen droplet (a Droplet object's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub droplet: Option<String>,
    /// Its region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Weighted score, 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Per-factor scores, 0-100 each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<ScoreBreakdown>,
    /// Why this droplet (or why a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Runners-up with their scores.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternatives: Vec<Alternative>,
}

/// Per-factor scores of a placement, 0-100 each.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreBreakdown {
    /// Resource fit.
    pub resources: f64,
    /// Observed load.
    pub load: f64,
    /// Geographic latency.
    pub latency: f64,
    /// Cost efficiency.
    pub cost: f64,
    /// Health.
    pub health: f64,
}

/// A droplet that was considered but not chosen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alternative {
    /// Droplet name.
    pub droplet: String,
    /// Its score.
    pub score: f64,
}

/// Result of the last MCP handshake through the public endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpStatus {
    /// `serverInfo.name` from `initialize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// `serverInfo.version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Negotiated protocol version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// Number of tools from `tools/list`.
    #[serde(default)]
    pub tools: u32,
    /// When the probe ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
}

/// Observed state of a deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MCPDeploymentStatus {
    /// Phase in the deploy flow.
    #[serde(default)]
    pub phase: DeploymentPhase,
    /// Progress through the steps.
    #[serde(default)]
    pub progress: Progress,
    /// Where it runs and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementStatus>,
    /// The public MCP endpoint (streamable HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Last handshake result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpStatus>,
    /// Hash of the server configuration last resolved (template, spec, env and Secret values,
    /// keyed with the endpoint token so no value can be recovered from it); it changes when a
    /// referenced Secret changes, which restarts the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub config_hash: Option<String>,
    /// Seconds from creation (or the last spec change) to Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_ready_seconds: Option<f64>,
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled` and step conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
}
