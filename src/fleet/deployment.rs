//! MCPDeployment -> what it requests and where it may go; a decision -> its status.

use std::collections::BTreeMap;

use scheduler::{PendingDeployment, Placement, Resources};

use super::{FleetError, ObjectRef, do_not_disrupt, key_of, namespace_of, weights_from};
use crate::api::ResourceRequests;
use crate::api::deployment::{Alternative, MCPDeployment, PlacementStatus, ScoreBreakdown};
use crate::api::quantity::CPU_TIER_LOW_MILLIS;

/// Memory a template asks for when it names none.
pub const DEFAULT_MEMORY: u64 = 256 * scheduler::MIB;

/// What a deployment requests: the template's resources, overridden field by field by the
/// deployment's. Memory defaults to 256Mi and CPU to the low tier when neither names them.
pub fn request_of(
    deployment: &MCPDeployment,
    template: Option<&ResourceRequests>,
) -> Result<Resources, FleetError> {
    let ctx = ObjectRef {
        kind: "MCPDeployment",
        name: key_of(&deployment.metadata),
    };
    let own = deployment.spec.resources.clone().unwrap_or_default();
    let tmpl = template.cloned().unwrap_or_default();
    let memory = match own.memory.as_ref() {
        Some(m) => ctx.bytes("spec.resources.memory", Some(m))?,
        None => ctx.bytes("template spec.resources.memory", tmpl.memory.as_ref())?,
    };
    let cpu = match own.cpu.as_ref() {
        Some(c) => ctx.cpu("spec.resources.cpu", Some(c))?,
        None => ctx.cpu("template spec.resources.cpu", tmpl.cpu.as_ref())?,
    };
    let disk = match own.disk.as_ref() {
        Some(d) => ctx.bytes("spec.resources.disk", Some(d))?,
        None => ctx.bytes("template spec.resources.disk", tmpl.disk.as_ref())?,
    };
    Ok(Resources::new(
        memory.unwrap_or(DEFAULT_MEMORY),
        cpu.unwrap_or(CPU_TIER_LOW_MILLIS),
        disk.unwrap_or(0),
    ))
}

/// The deployment as the scheduler's pending work: its request, pin, selector (matchLabels;
/// matchExpressions are not supported yet and are an error naming the field), preferred
/// regions, weights, pool (`namespace/default` when unnamed), auto-provisioning and
/// do-not-disrupt.
pub fn pending_from_api(
    deployment: &MCPDeployment,
    request: Resources,
) -> Result<PendingDeployment, FleetError> {
    let ns = namespace_of(&deployment.metadata);
    let key = key_of(&deployment.metadata);
    let placement = &deployment.spec.placement;
    let mut selector = BTreeMap::new();
    if let Some(sel) = &placement.droplet_selector {
        if sel
            .match_expressions
            .as_ref()
            .is_some_and(|e| !e.is_empty())
        {
            return Err(FleetError::Field {
                kind: "MCPDeployment",
                name: key,
                field: "spec.placement.dropletSelector.matchExpressions".into(),
                message: "not supported yet; use matchLabels".into(),
            });
        }
        selector = sel.match_labels.clone().unwrap_or_default();
    }
    Ok(PendingDeployment {
        key,
        request,
        pin: pinned_droplet(deployment),
        selector,
        regions: placement.regions.clone(),
        location: None,
        weights: placement.weights.as_ref().map(weights_from),
        pool: format!(
            "{ns}/{}",
            placement.pool.clone().unwrap_or_else(|| "default".into())
        ),
        auto_provision: placement.auto_provision,
        do_not_disrupt: do_not_disrupt(&deployment.metadata),
    })
}

/// The droplet a deployment is pinned to by name, if any.
pub fn pinned_droplet(deployment: &MCPDeployment) -> Option<String> {
    deployment
        .spec
        .placement
        .droplet_name
        .clone()
        .filter(|n| !n.is_empty())
}

/// The droplet the deployment's `status.placement` records, if any.
pub fn recorded_droplet(deployment: &MCPDeployment) -> Option<String> {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.placement.as_ref())
        .and_then(|p| p.droplet.clone())
}

/// Rounds a score to two decimals for status and output.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The scheduler's decision as an MCPDeployment `status.placement` (for controllers: the
/// breakdown, the reason and the runners-up answer "why this droplet?" in `kubectl describe`).
pub fn placement_status(placement: &Placement, region: &str) -> PlacementStatus {
    let b = &placement.breakdown;
    PlacementStatus {
        droplet: Some(placement.droplet.clone()),
        region: Some(region.to_string()),
        score: Some(round2(placement.score)),
        breakdown: Some(ScoreBreakdown {
            resources: round2(b.resources),
            load: round2(b.load),
            latency: round2(b.latency),
            cost: round2(b.cost),
            health: round2(b.health),
        }),
        reason: Some(placement.reason.clone()),
        alternatives: placement
            .runners_up
            .iter()
            .map(|c| Alternative {
                droplet: c.droplet.clone(),
                score: round2(c.score),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MCPTemplate;

    #[test]
    fn the_deployment_overrides_the_template_field_by_field() {
        let template = MCPTemplate::test("t").memory("256Mi").cpu("500m").build();
        let deployment = MCPDeployment::test("x").memory("1Gi").build();
        let request = request_of(&deployment, Some(&template.spec.resources)).unwrap();
        assert_eq!(request, Resources::new(1024 * scheduler::MIB, 500, 0));
        let defaults = request_of(&MCPDeployment::test("x").build(), None).unwrap();
        assert_eq!(
            defaults,
            Resources::new(DEFAULT_MEMORY, CPU_TIER_LOW_MILLIS, 0)
        );
    }

    #[test]
    fn a_bad_override_names_the_deployment_field() {
        let deployment = MCPDeployment::test("x").cpu("fast").build();
        let text = request_of(&deployment, None).unwrap_err().to_string();
        assert!(text.contains("spec.resources.cpu"), "{text}");
    }

    #[test]
    fn placement_settings_become_the_pending_deployment() {
        let deployment = MCPDeployment::test("github")
            .namespace("s")
            .pinned_to("d1")
            .selector("tier", "gold")
            .regions(&["sfo3"])
            .pool("fast")
            .weights([0, 0, 0, 100, 0])
            .auto_provision(false)
            .do_not_disrupt()
            .build();
        let pending = pending_from_api(&deployment, Resources::ZERO).unwrap();
        assert_eq!(pending.key, "s/github");
        assert_eq!(pending.pin.as_deref(), Some("d1"));
        assert_eq!(
            pending.selector,
            BTreeMap::from([("tier".to_string(), "gold".to_string())])
        );
        assert_eq!(pending.regions, ["sfo3"]);
        assert_eq!(pending.pool, "s/fast");
        assert!(pending.weights.is_some());
        assert!(!pending.auto_provision);
        assert!(pending.do_not_disrupt);
        let plain = pending_from_api(&MCPDeployment::test("x").build(), Resources::ZERO).unwrap();
        assert_eq!(plain.pool, "team-a/default");
        assert!(plain.auto_provision && !plain.do_not_disrupt && plain.pin.is_none());
    }

    #[test]
    fn the_recorded_droplet_comes_from_the_status_placement() {
        let placed = MCPDeployment::test("x").placed_on("d2", "nyc3").build();
        assert_eq!(recorded_droplet(&placed).as_deref(), Some("d2"));
        assert_eq!(recorded_droplet(&MCPDeployment::test("x").build()), None);
    }
}
