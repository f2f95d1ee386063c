//! `Droplet`: one DigitalOcean droplet with its agent, provisioned by the operator or adopted.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::shared_fields::{REGION_PATTERN, ResourceList, ResourceRequests, SLUG_PATTERN};

/// A droplet: where it runs, what size, which agent, and whether it may be scheduled onto.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "mcp.agentopia.io",
    version = "v1alpha1",
    kind = "Droplet",
    plural = "droplets",
    singular = "droplet",
    shortname = "dr",
    category = "mcp",
    namespaced,
    status = "DropletStatus",
    cel,
    doc = "One DigitalOcean droplet running an MCP agent.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Region", type_ = "string", json_path = ".status.region"),
    printcolumn(name = "Size", type_ = "string", json_path = ".status.size"),
    printcolumn(
        name = "Used/Allocatable",
        type_ = "string",
        json_path = ".status.allocationSummary"
    ),
    printcolumn(
        name = "Utilization",
        type_ = "string",
        json_path = ".status.utilizationSummary"
    ),
    printcolumn(
        name = "Monthly USD",
        type_ = "number",
        json_path = ".status.price.monthlyUSD"
    ),
    printcolumn(
        name = "IP",
        type_ = "string",
        json_path = ".status.publicIPv4",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.adopt) || (has(self.region) && has(self.size))")
    .message("a droplet needs spec.region and spec.size unless it adopts an existing droplet with spec.adopt.dropletID"))]
#[x_kube(validation = kube::core::Rule::new("!has(oldSelf.adopt) || (has(self.adopt) && self.adopt.dropletID == oldSelf.adopt.dropletID)")
    .message("spec.adopt.dropletID cannot change once set: create a new Droplet object to adopt another droplet")
    .field_path(".adopt.dropletID"))]
pub struct DropletSpec {
    /// Region slug, e.g. `nyc3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = REGION_PATTERN))]
    pub region: Option<String>,
    /// Size slug, e.g. `s-2vcpu-4gb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SLUG_PATTERN))]
    pub size: Option<String>,
    /// Image slug, e.g. `ubuntu-24-04-x64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SLUG_PATTERN))]
    pub image: Option<String>,
    /// The pool that provisioned this droplet (set by the operator on droplets it creates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Which agent runs on the droplet.
    #[serde(default)]
    pub agent: AgentSpec,
    /// Manage an existing droplet instead of creating one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt: Option<Adopt>,
    /// What happens to the DigitalOcean droplet when this object is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// When true, no new deployments are placed here (cordon).
    #[serde(default)]
    pub unschedulable: bool,
    /// Resources kept back for the OS, the container engine and the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<ResourceRequests>,
}

/// The agent on a droplet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// `mcp-droplet-agent` (ours) or `dtma` (the original platform's agent, driven for compatibility).
    #[serde(default)]
    pub kind: AgentKind,
    /// Port the agent listens on; defaults to 9443 for ours and 30000 for DTMA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
}

/// Which agent runs on a droplet.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum AgentKind {
    /// Our agent: TLS, enrolment, declarative API, logs and metrics.
    #[default]
    #[serde(rename = "mcp-droplet-agent")]
    McpDropletAgent,
    /// The original DTMA, driven through its HTTP contract with reduced capabilities.
    #[serde(rename = "dtma")]
    Dtma,
}

/// Adoption of an existing DigitalOcean droplet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Adopt {
    /// The DigitalOcean droplet id. Cannot change once set.
    #[serde(rename = "dropletID")]
    #[schemars(range(min = 1))]
    pub droplet_id: i64,
}

/// What happens to the DigitalOcean droplet when its object is deleted.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DeletionPolicy {
    /// Delete the droplet at DigitalOcean.
    #[default]
    Delete,
    /// Keep the droplet running; only stop managing it.
    Retain,
}

/// Resources kept back for the system: the same shape as a server's requests.
pub type Reserved = ResourceRequests;

/// Lifecycle phase of a droplet.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DropletPhase {
    /// Not acted on yet.
    #[default]
    Pending,
    /// The create call is being made.
    Provisioning,
    /// Created; waiting for DigitalOcean to report it active.
    Booting,
    /// Active; waiting for the agent to answer and enrol.
    Enrolling,
    /// Accepting deployments.
    Ready,
    /// The agent stopped answering or reports a problem.
    NotReady,
    /// Deployments are being moved off.
    Draining,
    /// Being deleted.
    Terminating,
    /// Cannot be brought up; see the conditions.
    Failed,
}

/// Observed state of a droplet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DropletStatus {
    /// Lifecycle phase.
    #[serde(default)]
    pub phase: DropletPhase,
    /// The DigitalOcean droplet id (written as soon as the create call answers).
    #[serde(default, rename = "dropletID", skip_serializing_if = "Option::is_none")]
    pub droplet_id: Option<i64>,
    /// Public IPv4 address.
    #[serde(
        default,
        rename = "publicIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ipv4: Option<String>,
    /// Private (VPC) IPv4 address.
    #[serde(
        default,
        rename = "privateIPv4",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ipv4: Option<String>,
    /// Region as reported by DigitalOcean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Size as reported by DigitalOcean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// The size's resources.
    #[serde(default)]
    pub capacity: ResourceList,
    /// Capacity minus the system reserve.
    #[serde(default)]
    pub allocatable: ResourceList,
    /// Sum of the placed deployments' requests.
    #[serde(default)]
    pub allocated: ResourceList,
    /// Human summary of allocated / allocatable, e.g. `cpu 750m/1750m, memory 1Gi/3.5Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_summary: Option<String>,
    /// Deployments placed here, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<String>,
    /// Observed usage from the agent and DigitalOcean monitoring.
    #[serde(default)]
    pub utilization: Utilization,
    /// Human summary of observed usage, e.g. `cpu 12%, memory 40%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization_summary: Option<String>,
    /// Agent health.
    #[serde(default)]
    pub health: Health,
    /// Price of the droplet's size.
    #[serde(default)]
    pub price: Price,
    /// Agent identity and reachability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentStatus>,
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `AgentReachable`, `AgentCapabilities` and others.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// Observed usage of a droplet (fractions 0-1, load as the 1-minute load average).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Utilization {
    /// CPU busy fraction.
    #[serde(default)]
    pub cpu: f64,
    /// Memory used fraction.
    #[serde(default)]
    pub memory: f64,
    /// Disk used fraction.
    #[serde(default)]
    pub disk: f64,
    /// 1-minute load average.
    #[serde(default)]
    pub load1: f64,
    /// When these were sampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<Time>,
}

/// Agent health of a droplet.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// 0-100, from heartbeat freshness and recent failures.
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub score: u32,
    /// Last successful contact with the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Time>,
    /// Failed contacts since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            score: 100,
            last_heartbeat: None,
            consecutive_failures: 0,
        }
    }
}

/// Price of a droplet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// USD per hour.
    #[serde(default, rename = "hourlyUSD")]
    pub hourly_usd: f64,
    /// USD per month.
    #[serde(default, rename = "monthlyUSD")]
    pub monthly_usd: f64,
}

/// Identity and reachability of a droplet's agent. Holds no credential.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// Whether the last call to the agent succeeded.
    #[serde(default)]
    pub reachable: bool,
    /// Agent version it reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// SHA-256 fingerprint of the agent's certificate, pinned at enrolment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_fingerprint: Option<String>,
    /// The agent's API endpoint, e.g. `https://203.0.113.7:9443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}
