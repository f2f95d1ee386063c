//! Fluent builders for the four kinds, for scenario tests.
//!
//! Every builder starts from an object that passes the offline validator
//! ([`crate::api::validation::validate_manifest`]); each method changes one thing. Quantities
//! and slugs are taken as written in manifests, so a test can also build an invalid object on
//! purpose (`.memory("lots")`) and check that it is rejected.
//!
//! ```
//! use mcp_droplet_operator::api::{Droplet, MCPDeployment};
//!
//! let github = MCPDeployment::test("github").pinned_to("d1").build();
//! let d1 = Droplet::test("d1").ready().size("s-2vcpu-4gb").build();
//! assert_eq!(github.spec.placement.droplet_name.as_deref(), Some("d1"));
//! assert_eq!(d1.spec.size.as_deref(), Some("s-2vcpu-4gb"));
//! ```

mod deployment;
mod droplet;
mod pool;
mod template;

use std::collections::BTreeMap;

use kube::api::ObjectMeta;
use serde::Serialize;

use crate::api::ResourceList;
use crate::api::validation::{FieldError, validate_manifest};

pub use deployment::DeploymentBuilder;
pub use droplet::DropletBuilder;
pub use pool::PoolBuilder;
pub use template::TemplateBuilder;

/// Namespace of every namespaced object a builder makes unless `.namespace(..)` says otherwise.
pub const NAMESPACE: &str = "team-a";
/// Region of a new Droplet or DropletPool.
pub const REGION: &str = "nyc3";
/// Size of a new Droplet and the only size of a new DropletPool.
pub const SIZE: &str = "s-2vcpu-4gb";

/// Checks `object` with the offline validator (schema and CEL) as `kubectl apply` would.
///
/// ```
/// use mcp_droplet_operator::api::MCPDeployment;
/// use mcp_droplet_operator::testing::validate;
///
/// assert!(validate(&MCPDeployment::test("time").build()).is_ok());
/// assert!(validate(&MCPDeployment::test("time").memory("lots").build()).is_err());
/// ```
pub fn validate<K: Serialize>(object: &K) -> Result<(), Vec<FieldError>> {
    let value = serde_json::to_value(object).map_err(|e| {
        vec![FieldError {
            field: String::new(),
            message: format!("does not serialize: {e}"),
        }]
    })?;
    match validate_manifest(&value, None)? {
        true => Ok(()),
        false => Err(vec![FieldError {
            field: "apiVersion".into(),
            message: "not one of the operator's kinds".into(),
        }]),
    }
}

/// Renders objects as one multi-document YAML manifest (each document starts with `---`), for
/// tests of commands that read files.
///
/// ```
/// use mcp_droplet_operator::api::MCPDeployment;
/// use mcp_droplet_operator::testing::manifest_yaml;
///
/// let yaml = manifest_yaml(&[MCPDeployment::test("time").build()]).unwrap();
/// assert!(yaml.starts_with("---\napiVersion: mcp.agentopia.io/v1alpha1\nkind: MCPDeployment"));
/// ```
pub fn manifest_yaml<K: Serialize>(objects: &[K]) -> Result<String, serde_yaml_ng::Error> {
    let mut out = String::new();
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(object)?);
    }
    Ok(out)
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::default()
    }
}

fn insert(map: &mut Option<BTreeMap<String, String>>, key: &str, value: &str) {
    map.get_or_insert_with(BTreeMap::new)
        .insert(key.to_owned(), value.to_owned());
}

fn list(memory: &str, cpu: &str) -> ResourceList {
    ResourceList {
        memory: Some(memory.to_owned()),
        cpu: Some(cpu.to_owned()),
        disk: None,
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::condition;
    use crate::api::deployment::DeploymentPhase;
    use crate::api::pool::{Budget, ConsolidationPolicy};
    use crate::api::template::NetworkPolicy;
    use crate::api::{Droplet, DropletPool, MCPDeployment, MCPTemplate};
    use crate::catalog;

    fn now() -> jiff::Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn every_builder_default_validates() {
        validate(&MCPDeployment::test("time").build()).unwrap();
        validate(&Droplet::test("d1").build()).unwrap();
        validate(&Droplet::test("d1").ready().build()).unwrap();
        validate(&DropletPool::test("default").build()).unwrap();
        validate(&MCPTemplate::test("time").build()).unwrap();
    }

    #[test]
    fn every_setter_keeps_the_objects_valid() {
        let d = MCPDeployment::test("github")
            .namespace("team-b")
            .template("github-v2")
            .label("app", "gh")
            .do_not_disrupt()
            .generation(3)
            .env("LOG_LEVEL", "debug")
            .env_from_secret("GITHUB_TOKEN", "gh", "token")
            .memory("512Mi")
            .cpu("low")
            .disk("1Gi")
            .selector("tier", "gold")
            .regions(&["sfo3", "nyc3"])
            .pool("fast")
            .weights([10, 20, 30, 20, 20])
            .auto_provision(false)
            .phase(DeploymentPhase::Ready)
            .placed_on("d1", "nyc3")
            .condition(condition("Ready", true, "Verified", "ok", Some(3), now()))
            .build();
        validate(&d).unwrap();
        assert_eq!(
            crate::fleet::key_of(&d.metadata),
            "team-b/github",
            "namespace"
        );
        assert_eq!(
            crate::fleet::deployment::recorded_droplet(&d).as_deref(),
            Some("d1")
        );
        let pinned = MCPDeployment::test("github").pinned_to("d1").build();
        validate(&pinned).unwrap();
        assert_eq!(
            crate::fleet::deployment::pinned_droplet(&pinned).as_deref(),
            Some("d1")
        );

        let droplet = Droplet::test("d1")
            .namespace("team-b")
            .region("sfo3")
            .size("s-4vcpu-8gb")
            .pool("default")
            .label("tier", "gold")
            .dtma()
            .adopt(42)
            .retain()
            .unschedulable()
            .ready()
            .droplet_id(42)
            .ips("203.0.113.7", "10.0.0.7")
            .allocated("1Gi", "500m")
            .deployments(&["team-b/github"])
            .utilization(0.25, 0.5, now())
            .health(70)
            .heartbeat(now())
            .failures(1)
            .condition(condition("Ready", true, "AgentReady", "ok", None, now()))
            .build();
        validate(&droplet).unwrap();
        let status = droplet.status.as_ref().unwrap();
        assert_eq!(status.size.as_deref(), Some("s-4vcpu-8gb"));
        assert_eq!(status.region.as_deref(), Some("sfo3"));
        assert_eq!(status.capacity.memory.as_deref(), Some("8Gi"));
        assert_eq!(status.capacity.cpu.as_deref(), Some("4"));

        let pool = DropletPool::test("default")
            .namespace("team-b")
            .regions(&["sfo3"])
            .sizes(&["s-1vcpu-2gb", "s-4vcpu-8gb"])
            .max_droplets(3)
            .max_monthly_cost(100.0)
            .target_utilization(70)
            .weights([40, 25, 15, 10, 10])
            .consolidation(ConsolidationPolicy::WhenEmpty)
            .consolidate_after("10m")
            .budget("1")
            .budget_with(Budget {
                droplets: "0".into(),
                schedule: Some("0 9 * * 1-5".into()),
                duration: Some("8h".into()),
                reasons: Vec::new(),
            })
            .build();
        validate(&pool).unwrap();

        let template = MCPTemplate::test("github")
            .image("ghcr.io/github/github-mcp-server:1.2")
            .streamable_http(8080)
            .path("/api/mcp")
            .memory("512Mi")
            .cpu("500m")
            .disk("1Gi")
            .optional_env("DEBUG")
            .required_env("ORG")
            .secret_env("GITHUB_TOKEN")
            .env_default("MODE", "read", &["read", "write"])
            .allow_hosts(&["api.github.com"])
            .volume("cache", "/cache", Some("1Gi"))
            .accepted()
            .build();
        validate(&template).unwrap();
        validate(
            &MCPTemplate::test("t")
                .sse(9000)
                .no_network()
                .rejected()
                .build(),
        )
        .unwrap();
    }

    #[test]
    fn ready_droplets_feed_the_fleet_view_as_ready_with_the_catalogue_allocatable() {
        let d = Droplet::test("d1").size("s-2vcpu-4gb").ready().build();
        let fleet = crate::fleet::droplet_from_api(&d, now()).unwrap().unwrap();
        assert_eq!(fleet.phase, scheduler::DropletPhase::Ready);
        assert!(fleet.healthy);
        let expected = catalog::size("s-2vcpu-4gb")
            .unwrap()
            .capacity()
            .minus(scheduler::DEFAULT_SYSTEM_RESERVE);
        assert_eq!(fleet.allocatable, expected);
    }

    #[test]
    fn deliberately_invalid_objects_are_rejected_naming_the_field() {
        let errors = validate(&MCPDeployment::test("x").memory("lots").build()).unwrap_err();
        assert!(
            errors.iter().any(|e| e.field == "spec.resources.memory"),
            "{errors:?}"
        );
        let both = MCPDeployment::test("x")
            .pinned_to("d1")
            .selector("a", "b")
            .build();
        assert!(validate(&both).is_err());
        let mut bad = MCPTemplate::test("t").no_network().build();
        bad.spec.network = Some(NetworkPolicy {
            allow_hosts: Some(vec!["a.example".into()]),
            none: Some(true),
        });
        assert!(validate(&bad).is_err());
        assert!(validate(&DropletPool::test("p").target_utilization(0).build()).is_err());
    }
}
