//! `DropletPool`: how a namespace (an account) gets droplets, like Karpenter's NodePool.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::shared_fields::{DURATION_PATTERN, REGION_PATTERN, ResourceList, SLUG_PATTERN, Weights};

/// Allowed regions and sizes, image, limits, disruption policy and target utilization.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "mcp.agentopia.io",
    version = "v1alpha1",
    kind = "DropletPool",
    plural = "dropletpools",
    singular = "dropletpool",
    shortname = "dpool",
    category = "mcp",
    namespaced,
    status = "DropletPoolStatus",
    cel,
    doc = "How an account gets droplets: regions, sizes, limits and disruption policy.",
    printcolumn(name = "Droplets", type_ = "integer", json_path = ".status.droplets"),
    printcolumn(
        name = "Monthly USD",
        type_ = "number",
        json_path = ".status.monthlyCostUSD"
    ),
    printcolumn(
        name = "Regions",
        type_ = "string",
        json_path = ".spec.regions",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DropletPoolSpec {
    /// Allowed regions in preference order; empty means the operator's default region.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = REGION_PATTERN)))]
    pub regions: Vec<String>,
    /// Allowed size slugs; empty means the Basic family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = SLUG_PATTERN)))]
    pub sizes: Vec<String>,
    /// Droplet image slug, e.g. `ubuntu-24-04-x64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SLUG_PATTERN))]
    pub image: Option<String>,
    /// VPC to place droplets in.
    #[serde(default, rename = "vpcUUID", skip_serializing_if = "Option::is_none")]
    pub vpc_uuid: Option<String>,
    /// SSH key ids or fingerprints added to new droplets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// Extra DigitalOcean tags on new droplets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9:\-_.]{1,255}$")))]
    pub tags: Vec<String>,
    /// Requested utilization the packer aims for, in percent.
    #[serde(default = "default_target_utilization")]
    #[schemars(range(min = 1, max = 100))]
    pub target_utilization: u32,
    /// Minimum placement score (0-100) below which a new droplet is provisioned instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub min_score: Option<u32>,
    /// Scoring weights for deployments in this pool that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Hard limits of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<PoolLimits>,
    /// When and how droplets may be removed or replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disruption: Option<Disruption>,
}

fn default_target_utilization() -> u32 {
    80
}

/// Hard limits of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolLimits {
    /// Most droplets the pool may have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10000))]
    pub max_droplets: Option<u32>,
    /// Most the pool's droplets may cost per month, in USD.
    #[serde(
        default,
        rename = "maxMonthlyCostUSD",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 0.0))]
    pub max_monthly_cost_usd: Option<f64>,
}

/// When droplets may be consolidated.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ConsolidationPolicy {
    /// Never remove or replace droplets.
    Never,
    /// Remove droplets that have been empty for `consolidateAfter`.
    WhenEmpty,
    /// Also move servers off under-used droplets when that saves enough.
    #[default]
    WhenUnderutilized,
}

/// Disruption policy of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disruption {
    /// When droplets may be consolidated.
    #[serde(default)]
    pub consolidation_policy: ConsolidationPolicy,
    /// How long a droplet must be empty or under-used before it is consolidated (`Never` to never).
    #[serde(default = "default_consolidate_after")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub consolidate_after: String,
    /// Most droplets disrupted at once; the default is 10 % of the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<Budget>,
}

fn default_consolidate_after() -> String {
    "5m".to_string()
}

/// A disruption budget: how many droplets may be disrupted at once, optionally in a time window.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.schedule) == has(self.duration)")
    .message("a budget's schedule and duration go together: set both or neither"))]
pub struct Budget {
    /// A count (`2`) or a percentage of the pool's droplets (`10%`).
    #[serde(default = "default_budget_droplets")]
    #[schemars(regex(pattern = r"^([0-9]+|[0-9]{1,2}%|100%)$"))]
    pub droplets: String,
    /// Cron schedule (five fields, UTC) when the budget is active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$"
    ))]
    pub schedule: Option<String>,
    /// How long the budget stays active after each scheduled start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    pub duration: Option<String>,
    /// Reasons the budget applies to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<DisruptionReason>,
}

fn default_budget_droplets() -> String {
    "10%".to_string()
}

/// Why a droplet is disrupted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum DisruptionReason {
    /// The droplet has no deployments.
    Empty,
    /// Its deployments fit elsewhere or on a cheaper droplet.
    Underutilized,
    /// Its spec no longer matches the pool.
    Drifted,
}

/// Observed state of a pool: its droplets, capacity, allocation and cost.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DropletPoolStatus {
    /// Number of droplets in the pool.
    #[serde(default)]
    pub droplets: u32,
    /// Sum of the droplets' allocatable resources.
    #[serde(default)]
    pub capacity: ResourceList,
    /// Sum of the resources requested by placed deployments.
    #[serde(default)]
    pub allocated: ResourceList,
    /// Requested utilization per resource, 0-1.
    #[serde(default)]
    pub utilization: PoolUtilization,
    /// Monthly cost of the pool's droplets in USD.
    #[serde(default, rename = "monthlyCostUSD")]
    pub monthly_cost_usd: f64,
    /// The generation this status is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, and `LimitReached` when a limit blocks provisioning.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// Requested utilization of a pool per resource (allocated / allocatable, 0-1).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolUtilization {
    /// CPU.
    #[serde(default)]
    pub cpu: f64,
    /// Memory.
    #[serde(default)]
    pub memory: f64,
    /// Disk.
    #[serde(default)]
    pub disk: f64,
}
