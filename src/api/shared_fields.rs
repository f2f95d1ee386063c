//! Field types shared by several kinds: resource requests and amounts, scoring weights, object
//! and key references, environment variables, slug/region/duration patterns and the duration parser.

use super::quantity::{CPU_PATTERN, QUANTITY_PATTERN};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Resources a server asks for. Memory and disk are quantities (`512Mi`, `1Gi`); CPU is a tier
/// (`low` = 250m, `medium` = 500m, `high` = 1000m) or a quantity (`250m`, `2`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequests {
    /// Memory, e.g. `512Mi` or `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub memory: Option<String>,
    /// CPU: `low`, `medium`, `high`, or a quantity such as `250m` or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CPU_PATTERN))]
    pub cpu: Option<String>,
    /// Disk, e.g. `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub disk: Option<String>,
}

/// Amounts of each resource as quantities, for status (`capacity`, `allocatable`, `allocated`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceList {
    /// CPU, e.g. `2` or `1750m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Memory, e.g. `4Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// Disk, e.g. `80Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<String>,
}

/// Scoring weights of the five placement factors (0-100 each). When `weights` is given, a factor
/// left out counts as 0; when it is absent the defaults apply (40/25/15/10/10).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.resources) ? self.resources : 0) + (has(self.load) ? self.load : 0) + (has(self.latency) ? self.latency : 0) + (has(self.cost) ? self.cost : 0) + (has(self.health) ? self.health : 0) > 0"
).message("at least one scoring weight must be greater than zero"))]
pub struct Weights {
    /// Resource fit (default 40).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub resources: Option<u32>,
    /// Observed load (default 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub load: Option<u32>,
    /// Geographic latency (default 15).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub latency: Option<u32>,
    /// Cost efficiency (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub cost: Option<u32>,
    /// Health and reliability (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub health: Option<u32>,
}

/// Default weight of resource fit.
pub const DEFAULT_WEIGHT_RESOURCES: u32 = 40;
/// Default weight of observed load.
pub const DEFAULT_WEIGHT_LOAD: u32 = 25;
/// Default weight of latency.
pub const DEFAULT_WEIGHT_LATENCY: u32 = 15;
/// Default weight of cost efficiency.
pub const DEFAULT_WEIGHT_COST: u32 = 10;
/// Default weight of health.
pub const DEFAULT_WEIGHT_HEALTH: u32 = 10;

impl Weights {
    /// The original product's strategy: 40/25/15/10/10.
    pub fn defaults() -> Self {
        Weights {
            resources: Some(DEFAULT_WEIGHT_RESOURCES),
            load: Some(DEFAULT_WEIGHT_LOAD),
            latency: Some(DEFAULT_WEIGHT_LATENCY),
            cost: Some(DEFAULT_WEIGHT_COST),
            health: Some(DEFAULT_WEIGHT_HEALTH),
        }
    }

    /// The five weights in factor order (resources, load, latency, cost, health), absent ones as 0.
    pub fn values(&self) -> [u32; 5] {
        [
            self.resources.unwrap_or(0),
            self.load.unwrap_or(0),
            self.latency.unwrap_or(0),
            self.cost.unwrap_or(0),
            self.health.unwrap_or(0),
        ]
    }
}

/// A reference to an object by name in the same namespace (or cluster-wide for templates).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// The object's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a Secret or ConfigMap in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySelector {
    /// The Secret's or ConfigMap's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
    /// When true, a missing object or key is not an error and the variable is left unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A key of a Secret; its value never appears in status, events or logs.
pub type SecretKeySelector = KeySelector;
/// A key of a ConfigMap.
pub type ConfigMapKeySelector = KeySelector;

/// Where an environment variable's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)")
    .message("valueFrom needs exactly one of secretKeyRef or configMapKeyRef"))]
pub struct EnvVarSource {
    /// A key of a Secret; the value never appears in status, events or logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeySelector>,
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeySelector>,
}

/// One environment variable of an MCP server: a literal `value` or a `valueFrom` reference.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.value) != has(self.valueFrom)")
    .message("an env entry needs exactly one of value or valueFrom"))]
pub struct EnvVar {
    /// The variable's name, e.g. `GITHUB_TOOLSETS`.
    #[schemars(
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// A literal value. Put secrets in a Secret and use `valueFrom` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A reference to a Secret or ConfigMap key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// The schema pattern of a DigitalOcean slug (sizes, images): lowercase words joined by `-`.
pub const SLUG_PATTERN: &str = r"^[a-z0-9]+([-_.][a-z0-9]+)*$";
/// The schema pattern of a DigitalOcean region slug, e.g. `nyc3`.
pub const REGION_PATTERN: &str = r"^[a-z]{3}[0-9]$";
/// The schema pattern of a duration: `30s`, `5m`, `1h30m`, or `Never`.
pub const DURATION_PATTERN: &str = r"^(Never|([0-9]+(ms|s|m|h))+)$";

/// Parses a duration of the CRDs (`30s`, `5m`, `1h30m`, `250ms`); `Never` gives `None`. The one
/// duration parser of the operator: jiff's friendly format (so `1h 30m` and `1.5s` work too),
/// restricted to non-negative durations written with a unit.
pub fn parse_duration(input: &str) -> Result<Option<std::time::Duration>, String> {
    if input == "Never" {
        return Ok(None);
    }
    let bad = || format!("{input:?} is not a duration: expected e.g. 30s, 5m, 1h30m or Never");
    // jiff also reads signs and ISO 8601 (`PT5M`); the CRDs' pattern allows neither.
    if !input.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(bad());
    }
    let parsed: jiff::SignedDuration = input.parse().map_err(|_| bad())?;
    std::time::Duration::try_from(parsed)
        .map(Some)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Some(Duration::from_secs(300))));
        assert_eq!(parse_duration("1h30m"), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(
            parse_duration("250ms"),
            Ok(Some(Duration::from_millis(250)))
        );
        assert_eq!(parse_duration("Never"), Ok(None));
        for bad in ["", "5", "m", "5d", "-5m", "5m3"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn weights_values_treat_absent_as_zero() {
        assert_eq!(Weights::defaults().values(), [40, 25, 15, 10, 10]);
        let w = Weights {
            cost: Some(100),
            ..Weights::default()
        };
        assert_eq!(w.values(), [0, 0, 0, 100, 0]);
    }
}
