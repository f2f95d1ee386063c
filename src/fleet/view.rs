//! The fleet as the scheduler sees it, built from the API objects: one truth for what runs
//! where.
//!
//! A deployment counts on the droplet whose agent reports it (`status.deployments` of the
//! Droplet), else on the droplet its own `status.placement` records (decided, not reported
//! yet), else it is pending. A deployment reported on B but recorded on A counts on B only.
//! The droplet's reported `status.allocated` minus the requests of the deployments it reports
//! is its unlisted usage (containers of deployments not among the objects), so nothing is
//! counted twice and nothing reported is lost.

use std::collections::{HashMap, HashSet};

use scheduler::{FleetDroplet, PendingDeployment, PlacedDeployment, Pool, Resources, Snapshot};

use super::deployment::{pending_from_api, pinned_droplet, recorded_droplet, request_of};
use super::droplet::droplet_from_api;
use super::pool::{default_pool, pool_from_api};
use super::{FleetError, do_not_disrupt, key_of, namespace_of};
use crate::api::ResourceRequests;
use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet as DropletObject;
use crate::api::pool::DropletPool;
use crate::api::template::MCPTemplate;
use crate::catalog;

/// The API objects one view is built from.
#[derive(Debug, Default, Clone)]
pub struct FleetObjects<'a> {
    /// MCPTemplates (cluster-scoped, by name).
    pub templates: Vec<&'a MCPTemplate>,
    /// DropletPools.
    pub pools: Vec<&'a DropletPool>,
    /// Droplet objects.
    pub droplets: Vec<&'a DropletObject>,
    /// MCPDeployments.
    pub deployments: Vec<&'a MCPDeployment>,
}

/// A deployment that cannot even be planned, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct NotPlanned {
    /// `namespace/name`.
    pub deployment: String,
    /// Why, for people.
    pub reason: String,
}

/// The fleet in the scheduler's model.
#[derive(Debug, Clone)]
pub struct FleetView {
    /// Pools: the DropletPools, plus the default pool of each namespace without any.
    pub pools: Vec<Pool>,
    /// Droplets with the deployments placed on them (reported or recorded).
    pub droplets: Vec<FleetDroplet>,
    /// Indices into `droplets` of those converted without status (never observed).
    pub unobserved: Vec<usize>,
    /// Deployments placed nowhere yet, in the order of the objects.
    pub pending: Vec<PendingDeployment>,
    /// Deployments that cannot be planned (their template is missing).
    pub not_planned: Vec<NotPlanned>,
}

/// `namespace/name` of an entry of a droplet's `status.deployments` (a bare name is in the
/// droplet's namespace).
fn reported_key(namespace: &str, entry: &str) -> String {
    if entry.contains('/') {
        entry.to_string()
    } else {
        format!("{namespace}/{entry}")
    }
}

impl FleetView {
    /// Converts the objects at `now` (heartbeat ages are measured from it). Errors name the
    /// object and the field; pools are converted first, then droplets, then deployments.
    pub fn build(objects: &FleetObjects<'_>, now: jiff::Timestamp) -> Result<Self, FleetError> {
        let mut pools = Vec::new();
        for p in &objects.pools {
            pools.push(pool_from_api(p)?);
        }
        let mut droplets = Vec::new();
        let mut unobserved = Vec::new();
        // Where each deployment is reported running: key -> droplet index.
        let mut reported_on: HashMap<String, usize> = HashMap::new();
        for object in &objects.droplets {
            let Some(d) = droplet_from_api(object, now)? else {
                continue;
            };
            let index = droplets.len();
            match &object.status {
                None => unobserved.push(index),
                Some(status) => {
                    for entry in &status.deployments {
                        reported_on
                            .entry(reported_key(&d.namespace, entry))
                            .or_insert(index);
                    }
                }
            }
            droplets.push(d);
        }
        let templates: HashMap<String, &ResourceRequests> = objects
            .templates
            .iter()
            .filter_map(|t| t.metadata.name.clone().map(|n| (n, &t.spec.resources)))
            .collect();
        let droplet_at: HashMap<(String, String), usize> = droplets
            .iter()
            .enumerate()
            .map(|(i, d)| ((d.namespace.clone(), d.name.clone()), i))
            .collect();

        let mut pending = Vec::new();
        let mut not_planned = Vec::new();
        for dep in &objects.deployments {
            let ns = namespace_of(&dep.metadata);
            let key = key_of(&dep.metadata);
            let template_name = &dep.spec.template_ref.name;
            let template = templates.get(template_name).copied();
            if template.is_none() && dep.spec.resources.is_none() {
                not_planned.push(NotPlanned {
                    deployment: key,
                    reason: format!("template {template_name} is not in the inputs"),
                });
                continue;
            }
            let request = request_of(dep, template)?;
            // The report wins over the recorded placement; placed deployments count on
            // their droplet and are not planned again.
            let placed_on = match reported_on.get(&key) {
                Some(&i) => Some((i, true)),
                None => recorded_droplet(dep)
                    .and_then(|on| droplet_at.get(&(ns.clone(), on)).copied())
                    .map(|i| (i, false)),
            };
            if let Some((i, reported)) = placed_on {
                droplets[i].deployments.push(PlacedDeployment {
                    key,
                    request,
                    reported,
                    do_not_disrupt: do_not_disrupt(&dep.metadata),
                    pinned: pinned_droplet(dep).is_some(),
                });
                continue;
            }
            pending.push(pending_from_api(dep, request)?);
        }
        // The reported total includes the reported deployments: what is left is unlisted.
        for d in &mut droplets {
            let reported = d
                .deployments
                .iter()
                .filter(|p| p.reported)
                .fold(Resources::ZERO, |sum, p| sum.plus(p.request));
            d.unlisted_usage = d.unlisted_usage.minus(reported);
        }
        // A namespace without any DropletPool uses the operator's default pool settings; in
        // a namespace that has pools, naming a missing one leaves the deployment
        // unschedulable.
        let namespaces_with_pools: HashSet<String> = pools
            .iter()
            .map(|p| scheduler::snapshot::split_key(&p.name).0.to_string())
            .collect();
        for dep in &pending {
            let (ns, _) = scheduler::snapshot::split_key(&dep.pool);
            if !namespaces_with_pools.contains(ns) && !pools.iter().any(|p| p.name == dep.pool) {
                pools.push(default_pool(&dep.pool));
            }
        }
        Ok(FleetView {
            pools,
            droplets,
            unobserved,
            pending,
            not_planned,
        })
    }

    /// The scheduler's snapshot of this view, with the embedded catalogue's sizes and
    /// regions.
    pub fn snapshot(&self) -> Result<Snapshot, FleetError> {
        Ok(Snapshot::new(
            self.droplets.clone(),
            self.pools.clone(),
            catalog::size_offers(),
            catalog::region_locations(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scheduler::{Decision, DropletPhase, MIB, choose_droplet};

    fn now() -> jiff::Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn droplet(name: &str, allocated_mib: u64, reported: &[&str]) -> DropletObject {
        DropletObject::test(name)
            .namespace("s")
            .pool("default")
            .ready()
            .allocatable("3584Mi", "1750m")
            .allocated(&format!("{allocated_mib}Mi"), "0m")
            .deployments(reported)
            .health(90)
            .heartbeat("2026-11-25T11:59:50Z".parse().unwrap())
            .build()
    }

    fn deployment(name: &str, memory_mib: u64, recorded_on: Option<&str>) -> MCPDeployment {
        let built = MCPDeployment::test(name)
            .namespace("s")
            .template("absent")
            .memory(&format!("{memory_mib}Mi"))
            .cpu("0m");
        match recorded_on {
            Some(on) => built.placed_on(on, "nyc3"),
            None => built,
        }
        .build()
    }

    fn view(droplets: &[DropletObject], deployments: &[MCPDeployment]) -> FleetView {
        let objects = FleetObjects {
            droplets: droplets.iter().collect(),
            deployments: deployments.iter().collect(),
            ..FleetObjects::default()
        };
        FleetView::build(&objects, now()).unwrap()
    }

    fn held(v: &FleetView, name: &str) -> (Vec<(String, bool)>, u64, u64) {
        let d = v.droplets.iter().find(|d| d.name == name).unwrap();
        let keys = d
            .deployments
            .iter()
            .map(|p| (p.key.clone(), p.reported))
            .collect();
        (keys, d.used().memory / MIB, d.unlisted_usage.memory / MIB)
    }

    #[test]
    fn deployments_a_droplet_reports_are_on_it_and_not_planned_again() {
        let v = view(&[droplet("a", 512, &["x"])], &[deployment("x", 512, None)]);
        assert_eq!(held(&v, "a"), (vec![("s/x".into(), true)], 512, 0));
        assert!(v.pending.is_empty());
    }

    #[test]
    fn a_deployment_reported_on_b_but_recorded_on_a_counts_on_b_only() {
        let v = view(
            &[droplet("a", 0, &[]), droplet("b", 512, &["x"])],
            &[deployment("x", 512, Some("a"))],
        );
        assert_eq!(held(&v, "a"), (vec![], 0, 0));
        assert_eq!(held(&v, "b"), (vec![("s/x".into(), true)], 512, 0));
    }

    #[test]
    fn a_recorded_placement_not_reported_yet_counts_on_top_of_the_report() {
        let v = view(
            &[droplet("a", 1024, &["x"])],
            &[
                deployment("x", 1024, Some("a")),
                deployment("y", 512, Some("a")),
            ],
        );
        assert_eq!(
            held(&v, "a"),
            (vec![("s/x".into(), true), ("s/y".into(), false)], 1536, 0)
        );
    }

    #[test]
    fn reported_usage_of_unknown_deployments_stays_as_unlisted_usage() {
        let v = view(
            &[droplet("a", 2048, &["x", "ghost"])],
            &[deployment("x", 512, None)],
        );
        assert_eq!(held(&v, "a"), (vec![("s/x".into(), true)], 2048, 1536));
    }

    #[test]
    fn a_droplet_without_status_takes_no_work_outside_plan() {
        let mut bare = droplet("a", 0, &[]);
        bare.status = None;
        let v = view(&[bare], &[deployment("x", 512, None)]);
        assert_eq!(v.unobserved, vec![0]);
        assert_eq!(v.droplets[0].phase, DropletPhase::Provisioning);
        let snap = v.snapshot().unwrap();
        let Decision::NoFit(n) = choose_droplet(&snap, &[], &v.pending[0]) else {
            panic!("an unobserved droplet took work");
        };
        assert_eq!(n.rejections.not_ready, 1);
    }
}
