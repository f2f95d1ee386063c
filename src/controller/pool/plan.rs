//! The provisioning plan, pure: which Droplet objects to create for the deployments waiting in
//! phase Provisioning, from the caches' objects and `now`.
//!
//! Order of packing (docs/controllers.md, "DropletPool and provisioning"):
//! 1. a waiting deployment listed in the `mcp.agentopia.io/provisioned-for` annotation of a
//!    droplet still being provisioned keeps its place there (it was created for it);
//! 2. the others go, through the scheduler's batch packing, onto the spare room of droplets
//!    being provisioned (planned as if Ready: they will be), or onto Ready droplets with room
//!    (the deployment controller places them there itself), or into new droplets packed
//!    first-fit decreasing of the cheapest fitting size within the pool's limits.
//!
//! New droplets get a name derived from the deployments they are made for, so a batch
//! planned again (after a crash, or before the cache shows the droplets just created) applies
//! the same objects instead of creating more.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use scheduler::{
    Blocker, DropletPhase as SchedPhase, PlacedDeployment, Resources, Snapshot, Target,
    snapshot::split_key,
};

use crate::api::deployment::{DeploymentPhase, MCPDeployment};
use crate::api::droplet::{Droplet, DropletPhase, DropletSpec};
use crate::api::pool::DropletPool;
use crate::catalog;
use crate::fleet::{FleetError, FleetObjects, FleetView, NotPlanned, key_of};

/// Label on every droplet the provisioner creates: the pool's name (without namespace).
pub const POOL_LABEL: &str = "mcp.agentopia.io/pool";
/// Annotation on a droplet the provisioner creates: the deployments (names, comma-separated)
/// it was created for; they keep their place on it while it is being provisioned.
pub const PROVISIONED_FOR_ANNOTATION: &str = "mcp.agentopia.io/provisioned-for";
/// Image of new droplets when the pool names none.
pub const DEFAULT_IMAGE: &str = "ubuntu-24-04-x64";
/// Longest pool-name prefix of a generated droplet name (the name stays a DNS label).
const NAME_PREFIX_MAX: usize = 40;

/// Condition reason: the pool's `limits.maxDroplets` blocks a new droplet.
pub const REASON_MAX_DROPLETS: &str = "MaxDropletsReached";
/// Condition reason: the pool's `limits.maxMonthlyCostUSD` blocks a new droplet.
pub const REASON_MAX_COST: &str = "MaxMonthlyCostReached";
/// Condition reason: no allowed size in an allowed region holds the request.
pub const REASON_NO_SIZE_FITS: &str = "NoSizeFits";
/// Condition reason: the deployment names a pool that does not exist.
pub const REASON_POOL_NOT_FOUND: &str = "PoolNotFound";
/// Condition reason: the pool is being deleted; it gets no new droplets.
pub const REASON_POOL_DELETING: &str = "PoolDeleting";
/// Condition reason: pinned, or autoProvision off (the deployment controller reports these).
pub const REASON_NOT_PROVISIONABLE: &str = "NotProvisionable";

/// What a plan is made from.
#[derive(Debug, Default)]
pub struct ProvisioningInputs<'a> {
    /// Templates, pools, droplets and deployments (all of the caches).
    pub objects: FleetObjects<'a>,
    /// What the scheduling ledger holds per droplet (`namespace/name`), including placements
    /// assumed but not yet recorded; a Ready droplet counts the larger of this and its report.
    pub ledger_usage: HashMap<String, Resources>,
    /// Deployments (`namespace/name`) the ledger has booked on a droplet: the deployment
    /// controller has just placed them (its status write may not be in the cache yet), so
    /// they no longer wait even if their cached phase says so.
    pub ledger_booked: HashSet<String>,
    /// Regions of the default pool (a namespace without DropletPools); empty keeps the
    /// fleet conversion's defaults.
    pub default_regions: Vec<String>,
    /// Sizes of the default pool; empty keeps the fleet conversion's defaults.
    pub default_sizes: Vec<String>,
}

/// A Droplet object to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDropletPlan {
    /// Namespace (the pool's).
    pub namespace: String,
    /// Object name: `<pool>-<hash of its deployments>`.
    pub name: String,
    /// Pool name (without namespace).
    pub pool: String,
    /// Whether a DropletPool object is the pool (its owner); false for the default pool.
    pub pool_object: bool,
    /// Region slug.
    pub region: String,
    /// Size slug (the cheapest allowed size that holds its deployments).
    pub size: String,
    /// Image slug.
    pub image: String,
    /// Price per month.
    pub monthly_usd: f64,
    /// Deployments (`namespace/name`) it is made for, sorted.
    pub deployments: Vec<String>,
}

/// A waiting deployment no droplet can be made for, with the limit or cause that blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedDeployment {
    /// `namespace/name`.
    pub deployment: String,
    /// Pool (`namespace/name`).
    pub pool: String,
    /// CamelCase reason (`MaxDropletsReached`, `MaxMonthlyCostReached`, `NoSizeFits`, ...).
    pub reason: &'static str,
    /// For people: the scheduler's explanation.
    pub message: String,
}

/// The result of planning one batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProvisioningPlan {
    /// The deployments waiting in phase Provisioning that were planned, sorted.
    pub waiting: Vec<String>,
    /// Deployments keeping their place on a droplet created for them: (deployment, droplet
    /// `namespace/name`).
    pub reserved: Vec<(String, String)>,
    /// Deployments packed onto the spare room of a droplet being provisioned.
    pub onto_in_flight: Vec<(String, String)>,
    /// Deployments that fit on a Ready droplet (the deployment controller places them).
    pub onto_ready: Vec<(String, String)>,
    /// Droplet objects to create.
    pub create: Vec<NewDropletPlan>,
    /// Deployments blocked by a pool limit or without a fitting size.
    pub blocked: Vec<BlockedDeployment>,
    /// Waiting deployments that cannot be planned at all (missing template, invalid field).
    pub not_planned: Vec<NotPlanned>,
}

/// True while a droplet is being provisioned (not observed yet, or on its way to Ready).
pub fn in_flight(droplet: &Droplet) -> bool {
    droplet.metadata.deletion_timestamp.is_none()
        && !droplet.spec.unschedulable
        && match droplet.status.as_ref().map(|s| s.phase) {
            None => true,
            Some(phase) => match phase {
                DropletPhase::Pending
                | DropletPhase::Provisioning
                | DropletPhase::Booting
                | DropletPhase::Enrolling => true,
                DropletPhase::Ready
                | DropletPhase::NotReady
                | DropletPhase::Draining
                | DropletPhase::Terminating
                | DropletPhase::Failed => false,
            },
        }
}

/// True when a deployment waits for a new droplet: phase Provisioning, not being deleted.
pub fn waits_for_droplet(deployment: &MCPDeployment) -> bool {
    deployment.metadata.deletion_timestamp.is_none()
        && deployment
            .status
            .as_ref()
            .is_some_and(|s| s.phase == DeploymentPhase::Provisioning)
}

/// The deployments (`namespace/name`) a droplet was created for, from its annotation.
pub fn provisioned_for(droplet: &Droplet) -> Vec<String> {
    let ns = crate::fleet::namespace_of(&droplet.metadata);
    droplet
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PROVISIONED_FOR_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(|n| format!("{ns}/{n}"))
                .collect()
        })
        .unwrap_or_default()
}

/// The pool (`namespace/name`) a droplet belongs to: `spec.pool`, else its pool label.
pub fn pool_of_droplet(droplet: &Droplet) -> Option<String> {
    let ns = crate::fleet::namespace_of(&droplet.metadata);
    droplet
        .spec
        .pool
        .clone()
        .or_else(|| {
            droplet
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POOL_LABEL).cloned())
        })
        .map(|p| format!("{ns}/{p}"))
}

/// The condition reason of a scheduler blocker.
pub fn blocker_reason(blocker: &Blocker) -> &'static str {
    match blocker {
        Blocker::MaxDroplets { .. } => REASON_MAX_DROPLETS,
        Blocker::MaxMonthlyCost { .. } => REASON_MAX_COST,
        Blocker::NoSizeFits => REASON_NO_SIZE_FITS,
        Blocker::UnknownPool => REASON_POOL_NOT_FOUND,
        Blocker::PinnedDroplet | Blocker::AutoProvisionOff => REASON_NOT_PROVISIONABLE,
    }
}

/// 64-bit FNV-1a: a hash that is the same in every build and process (names must not change
/// with the standard library's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// `<pool>-<8 hex digits>` from the sorted deployments; `salt` > 0 when the plain name is
/// taken by another droplet.
pub fn droplet_name(pool: &str, deployments: &[String], salt: u32) -> String {
    let mut text = deployments.join("\n");
    if salt > 0 {
        text.push_str(&format!("\n#{salt}"));
    }
    let prefix: String = pool.chars().take(NAME_PREFIX_MAX).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{:08x}", fnv1a(text.as_bytes()) & 0xffff_ffff)
}

/// Builds the fleet view, leaving out objects whose conversion fails (each named in
/// `not_planned`) so one bad object does not stop provisioning for everyone.
fn tolerant_view(
    objects: &FleetObjects<'_>,
    now: jiff::Timestamp,
) -> Result<(FleetView, Vec<NotPlanned>), FleetError> {
    let mut objects = objects.clone();
    let mut left_out = Vec::new();
    loop {
        match FleetView::build(&objects, now) {
            Ok(view) => return Ok((view, left_out)),
            Err(FleetError::Field {
                kind,
                name,
                field,
                message,
            }) => {
                let before =
                    objects.pools.len() + objects.droplets.len() + objects.deployments.len();
                match kind {
                    "DropletPool" => objects.pools.retain(|p| key_of(&p.metadata) != name),
                    "Droplet" => objects.droplets.retain(|d| key_of(&d.metadata) != name),
                    _ => objects.deployments.retain(|d| key_of(&d.metadata) != name),
                }
                let after =
                    objects.pools.len() + objects.droplets.len() + objects.deployments.len();
                if after == before {
                    return Err(FleetError::Field {
                        kind,
                        name,
                        field,
                        message,
                    });
                }
                if kind == "MCPDeployment" {
                    left_out.push(NotPlanned {
                        deployment: name,
                        reason: format!("{field}: {message}"),
                    });
                }
            }
            Err(other) => return Err(other),
        }
    }
}

/// Plans one batch (see the module docs). Errors only when the objects contradict each other
/// (duplicate names); an invalid object is left out and named.
pub fn plan_provisioning(
    inputs: &ProvisioningInputs<'_>,
    now: jiff::Timestamp,
) -> Result<ProvisioningPlan, FleetError> {
    let objects = inputs.objects.clone();
    // A pool being deleted still counts as its namespace's pool (its deployments do not fall
    // back to the default pool), but gets no new droplets.
    let deleting: HashSet<String> = objects
        .pools
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .map(|p| key_of(&p.metadata))
        .collect();
    let pool_objects: HashMap<String, &DropletPool> = objects
        .pools
        .iter()
        .map(|p| (key_of(&p.metadata), *p))
        .collect();
    let waiting: BTreeSet<String> = objects
        .deployments
        .iter()
        .filter(|d| waits_for_droplet(d))
        .map(|d| key_of(&d.metadata))
        .filter(|k| !inputs.ledger_booked.contains(k))
        .collect();
    let (mut view, left_out) = tolerant_view(&objects, now)?;
    let mut plan = ProvisioningPlan {
        not_planned: left_out
            .into_iter()
            .chain(view.not_planned.iter().cloned())
            .filter(|n| waiting.contains(&n.deployment))
            .collect(),
        ..ProvisioningPlan::default()
    };
    for pool in &mut view.pools {
        if !pool_objects.contains_key(&pool.name) {
            if !inputs.default_regions.is_empty() {
                pool.regions = inputs.default_regions.clone();
            }
            if !inputs.default_sizes.is_empty() {
                pool.sizes = inputs.default_sizes.clone();
            }
        }
    }
    let mut pending: Vec<scheduler::PendingDeployment> = view
        .pending
        .iter()
        .filter(|d| waiting.contains(&d.key))
        .cloned()
        .collect();
    plan.waiting = pending.iter().map(|d| d.key.clone()).collect();
    plan.waiting.sort();

    // Droplets being provisioned: planned as Ready (they will be), holding first the waiting
    // deployments they were created for.
    let droplet_objects: HashMap<String, &Droplet> = objects
        .droplets
        .iter()
        .map(|d| (key_of(&d.metadata), *d))
        .collect();
    let mut in_flight_keys = HashSet::new();
    for d in &mut view.droplets {
        let key = format!("{}/{}", d.namespace, d.name);
        let Some(object) = droplet_objects.get(&key) else {
            continue;
        };
        if object.metadata.deletion_timestamp.is_some() {
            d.phase = SchedPhase::Terminating;
            continue;
        }
        if !in_flight(object) {
            continue;
        }
        in_flight_keys.insert(key.clone());
        d.phase = SchedPhase::Ready;
        d.healthy = true;
        d.heartbeat_age = Some(Duration::ZERO);
        d.recent_failures = 0;
        d.observed_load = None;
        for wanted in provisioned_for(object) {
            let Some(at) = pending.iter().position(|p| p.key == wanted) else {
                continue;
            };
            if !d.used().plus(pending[at].request).fits_in(&d.allocatable) {
                continue;
            }
            let p = pending.remove(at);
            d.deployments.push(PlacedDeployment {
                key: p.key.clone(),
                request: p.request,
                reported: false,
                do_not_disrupt: p.do_not_disrupt,
                pinned: false,
            });
            plan.reserved.push((p.key, key.clone()));
        }
    }

    let snapshot = Snapshot::new(
        view.droplets,
        view.pools,
        catalog::size_offers(),
        catalog::region_locations(),
    )?;
    let usage: Vec<Resources> = snapshot
        .reported_usage()
        .iter()
        .enumerate()
        .map(|(i, reported)| {
            let key = snapshot.droplet_key(i);
            match inputs.ledger_usage.get(key) {
                Some(booked) if !in_flight_keys.contains(key) => Resources {
                    memory: reported.memory.max(booked.memory),
                    cpu_millis: reported.cpu_millis.max(booked.cpu_millis),
                    disk: reported.disk.max(booked.disk),
                },
                _ => *reported,
            }
        })
        .collect();
    let batch = scheduler::plan_batch(&snapshot, &usage, &pending);

    for placed in &batch.placements {
        if let Target::Existing(p) = &placed.target {
            let key = snapshot.droplet_key(p.droplet_index).to_string();
            if in_flight_keys.contains(&key) {
                plan.onto_in_flight.push((placed.deployment.clone(), key));
            } else {
                plan.onto_ready.push((placed.deployment.clone(), key));
            }
        }
    }
    let mut taken: HashSet<(String, String)> = objects
        .droplets
        .iter()
        .map(|d| {
            (
                crate::fleet::namespace_of(&d.metadata),
                d.metadata.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    for nd in &batch.new_droplets {
        if deleting.contains(&nd.pool) {
            plan.blocked
                .extend(nd.deployments.iter().map(|d| BlockedDeployment {
                    deployment: d.clone(),
                    pool: nd.pool.clone(),
                    reason: REASON_POOL_DELETING,
                    message: format!("pool {} is being deleted", nd.pool),
                }));
            continue;
        }
        let (namespace, pool) = split_key(&nd.pool);
        let mut deployments = nd.deployments.clone();
        deployments.sort();
        let mut salt = 0;
        let name = loop {
            let candidate = droplet_name(pool, &deployments, salt);
            if !taken.contains(&(namespace.to_string(), candidate.clone())) {
                break candidate;
            }
            salt += 1;
        };
        taken.insert((namespace.to_string(), name.clone()));
        let pool_object = pool_objects.get(&nd.pool);
        plan.create.push(NewDropletPlan {
            namespace: namespace.to_string(),
            name,
            pool: pool.to_string(),
            pool_object: pool_object.is_some(),
            region: nd.region.clone(),
            size: nd.size.clone(),
            image: pool_object
                .and_then(|p| p.spec.image.clone())
                .unwrap_or_else(|| DEFAULT_IMAGE.to_string()),
            monthly_usd: nd.monthly_usd,
            deployments,
        });
    }
    plan.create.sort_by(|a, b| a.name.cmp(&b.name));
    for u in &batch.unschedulable {
        let pool = pending
            .iter()
            .find(|p| p.key == u.deployment)
            .map(|p| p.pool.clone())
            .unwrap_or_default();
        plan.blocked.push(BlockedDeployment {
            deployment: u.deployment.clone(),
            pool,
            reason: blocker_reason(&u.blocker),
            message: u.reason.clone(),
        });
    }
    plan.blocked.sort_by(|a, b| a.deployment.cmp(&b.deployment));
    Ok(plan)
}

/// The Droplet object for a planned new droplet: spec (pool, region, size, image), the pool
/// label, the deployments it is made for, and the pool as controller owner when it is a
/// DropletPool. Applied whole every time (server-side apply keeps only what is applied).
pub fn droplet_object(
    new: &NewDropletPlan,
    owner: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Droplet {
    let names: Vec<&str> = new.deployments.iter().map(|k| split_key(k).1).collect();
    Droplet {
        metadata: kube::api::ObjectMeta {
            name: Some(new.name.clone()),
            namespace: Some(new.namespace.clone()),
            labels: Some(BTreeMap::from([(POOL_LABEL.to_string(), new.pool.clone())])),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_FOR_ANNOTATION.to_string(),
                names.join(","),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: DropletSpec {
            region: Some(new.region.clone()),
            size: Some(new.size.clone()),
            image: Some(new.image.clone()),
            pool: Some(new.pool.clone()),
            ..DropletSpec::default()
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::deployment::DeploymentPhase;
    use crate::api::droplet::DropletPhase;
    use scheduler::MIB;

    fn now() -> jiff::Timestamp {
        "2026-12-02T12:00:00Z".parse().unwrap()
    }

    /// A deployment of `memory_mib` and 250m waiting in phase Provisioning in namespace `s`.
    fn waiting(name: &str, memory_mib: u64) -> MCPDeployment {
        MCPDeployment::test(name)
            .namespace("s")
            .template("absent")
            .memory(&format!("{memory_mib}Mi"))
            .cpu("250m")
            .phase(DeploymentPhase::Provisioning)
            .build()
    }

    fn burst(n: usize, memory_mib: u64) -> Vec<MCPDeployment> {
        (0..n)
            .map(|i| waiting(&format!("d{i:03}"), memory_mib))
            .collect()
    }

    fn small_pool() -> DropletPool {
        DropletPool::test("default")
            .namespace("s")
            .regions(&["nyc3"])
            .sizes(&["s-1vcpu-2gb", "s-2vcpu-4gb"])
            .build()
    }

    fn plan_of(
        pools: &[DropletPool],
        droplets: &[Droplet],
        deployments: &[MCPDeployment],
    ) -> ProvisioningPlan {
        let inputs = ProvisioningInputs {
            objects: FleetObjects {
                pools: pools.iter().collect(),
                droplets: droplets.iter().collect(),
                deployments: deployments.iter().collect(),
                ..FleetObjects::default()
            },
            default_regions: vec!["nyc3".into()],
            ..ProvisioningInputs::default()
        };
        plan_provisioning(&inputs, now()).unwrap()
    }

    /// The Droplet objects a plan creates, as the next pass sees them (not observed yet).
    fn created(plan: &ProvisioningPlan) -> Vec<Droplet> {
        plan.create
            .iter()
            .map(|n| droplet_object(n, None))
            .collect()
    }

    #[test]
    fn a_burst_is_packed_into_the_fewest_droplets_of_the_cheapest_fitting_size() {
        // s-2vcpu-4gb holds 7 of 512Mi/250m (3584Mi, 1750m allocatable): 40 need 6.
        let plan = plan_of(&[small_pool()], &[], &burst(40, 512));
        assert_eq!(plan.waiting.len(), 40);
        assert_eq!(plan.create.len(), 6, "{:#?}", plan.create);
        assert!(
            plan.create
                .iter()
                .all(|d| d.region == "nyc3" && d.pool == "default")
        );
        let per_droplet: Vec<usize> = plan.create.iter().map(|d| d.deployments.len()).collect();
        assert_eq!(per_droplet.iter().sum::<usize>(), 40);
        assert!(per_droplet.iter().all(|&n| n <= 7), "{per_droplet:?}");
        // The one with the remainder (5 of 512Mi = 2560Mi) still needs the 4 GB size.
        assert!(plan.create.iter().all(|d| d.size == "s-2vcpu-4gb"));
        assert!(plan.blocked.is_empty() && plan.onto_in_flight.is_empty());
    }

    #[test]
    fn a_small_remainder_gets_a_cheaper_size() {
        // 8 of 512Mi: one full 4 GB droplet and one deployment left, which a 2 GB holds.
        let plan = plan_of(&[small_pool()], &[], &burst(8, 512));
        let mut sizes: Vec<&str> = plan.create.iter().map(|d| d.size.as_str()).collect();
        sizes.sort();
        assert_eq!(sizes, ["s-1vcpu-2gb", "s-2vcpu-4gb"]);
    }

    #[test]
    fn the_default_pool_uses_the_operator_settings_and_has_no_owner() {
        let plan = plan_of(&[], &[], &burst(40, 512));
        // Largest default size s-8vcpu-16gb: 15872Mi, 7750m allocatable; 40 x (512Mi, 250m)
        // = 20480Mi, 10000m: the lower bound is 2.
        assert_eq!(plan.create.len(), 2, "{:#?}", plan.create);
        assert!(
            plan.create
                .iter()
                .all(|d| !d.pool_object && d.region == "nyc3")
        );
        assert!(plan.create.iter().all(|d| d.image == DEFAULT_IMAGE));
    }

    #[test]
    fn max_droplets_blocks_with_the_limit_named() {
        let pool = DropletPool::test("default")
            .namespace("s")
            .regions(&["nyc3"])
            .sizes(&["s-2vcpu-4gb"])
            .max_droplets(1)
            .build();
        let plan = plan_of(&[pool], &[], &burst(10, 512));
        assert_eq!(plan.create.len(), 1);
        assert_eq!(plan.create[0].deployments.len(), 7);
        assert_eq!(plan.blocked.len(), 3);
        assert!(plan.blocked.iter().all(|b| b.reason == REASON_MAX_DROPLETS
            && b.pool == "s/default"
            && b.message.contains("limit of 1 droplets")));
    }

    #[test]
    fn existing_droplets_count_against_the_limits() {
        let pool = DropletPool::test("default")
            .namespace("s")
            .regions(&["nyc3"])
            .sizes(&["s-2vcpu-4gb"])
            .max_monthly_cost(30.0)
            .build();
        // A full Ready droplet of the pool costs 24 USD: another would make 48.
        let full = Droplet::test("full")
            .namespace("s")
            .pool("default")
            .ready()
            .allocated("3584Mi", "1750m")
            .build();
        let plan = plan_of(&[pool], &[full], &burst(2, 512));
        assert!(plan.create.is_empty(), "{:#?}", plan.create);
        assert_eq!(plan.blocked.len(), 2);
        assert!(plan.blocked.iter().all(|b| b.reason == REASON_MAX_COST));
    }

    #[test]
    fn a_request_no_size_holds_is_named() {
        let plan = plan_of(&[small_pool()], &[], &[waiting("huge", 64 * 1024)]);
        assert!(plan.create.is_empty());
        assert_eq!(plan.blocked[0].reason, REASON_NO_SIZE_FITS);
        assert_eq!(plan.blocked[0].deployment, "s/huge");
    }

    #[test]
    fn planning_again_with_the_droplets_created_creates_nothing() {
        let deployments = burst(20, 512);
        let first = plan_of(&[small_pool()], &[], &deployments);
        assert_eq!(first.create.len(), 3);
        // The same inputs give the same names (a repeated batch applies the same objects).
        assert_eq!(plan_of(&[small_pool()], &[], &deployments), first);
        // With the droplets in the cache, the deployments keep their places there.
        let again = plan_of(&[small_pool()], &created(&first), &deployments);
        assert!(again.create.is_empty(), "{:#?}", again.create);
        assert_eq!(again.reserved.len(), 20);
        assert!(again.blocked.is_empty());
    }

    #[test]
    fn newcomers_use_the_spare_room_of_droplets_being_provisioned_first() {
        // 5 of 512Mi made one 4 GB droplet with room for 2 more.
        let mut deployments = burst(5, 512);
        let first = plan_of(&[small_pool()], &[], &deployments);
        assert_eq!(first.create.len(), 1);
        let in_flight = created(&first);
        deployments.push(waiting("late1", 512));
        deployments.push(waiting("late2", 512));
        let second = plan_of(&[small_pool()], &in_flight, &deployments);
        assert!(second.create.is_empty(), "{:#?}", second.create);
        assert_eq!(second.reserved.len(), 5);
        let onto: Vec<&str> = second
            .onto_in_flight
            .iter()
            .map(|(d, _)| d.as_str())
            .collect();
        assert_eq!(onto, ["s/late1", "s/late2"]);
        // One more does not fit any more: a new droplet, for it only.
        deployments.push(waiting("late3", 512));
        let third = plan_of(&[small_pool()], &in_flight, &deployments);
        assert_eq!(third.create.len(), 1);
        assert_eq!(third.create[0].deployments.len(), 1);
    }

    #[test]
    fn a_failed_droplet_frees_its_deployments_and_its_name_is_not_reused() {
        let deployments = burst(3, 512);
        let first = plan_of(&[small_pool()], &[], &deployments);
        let mut failed = created(&first);
        failed[0].status = Some(crate::api::droplet::DropletStatus {
            phase: DropletPhase::Failed,
            ..Default::default()
        });
        let second = plan_of(&[small_pool()], &failed, &deployments);
        assert_eq!(second.create.len(), 1);
        assert_eq!(second.create[0].deployments, first.create[0].deployments);
        assert_ne!(second.create[0].name, first.create[0].name);
        assert!(second.create[0].name.starts_with("default-"));
    }

    #[test]
    fn room_on_a_ready_droplet_is_left_to_the_deployment_controller_unless_booked() {
        let ready = Droplet::test("r1")
            .namespace("s")
            .pool("default")
            .ready()
            .build();
        let plan = plan_of(
            &[small_pool()],
            std::slice::from_ref(&ready),
            &burst(1, 512),
        );
        assert_eq!(
            plan.onto_ready,
            [("s/d000".to_string(), "s/r1".to_string())]
        );
        assert!(plan.create.is_empty());
        // The ledger has booked the droplet full (assumed placements not recorded yet).
        let deployments = burst(1, 512);
        let pool = small_pool();
        let inputs = ProvisioningInputs {
            objects: FleetObjects {
                pools: vec![&pool],
                droplets: vec![&ready],
                deployments: deployments.iter().collect(),
                ..FleetObjects::default()
            },
            ledger_usage: HashMap::from([(
                "s/r1".to_string(),
                Resources::new(3584 * MIB, 1750, 0),
            )]),
            ..ProvisioningInputs::default()
        };
        let plan = plan_provisioning(&inputs, now()).unwrap();
        assert!(plan.onto_ready.is_empty());
        assert_eq!(plan.create.len(), 1);
    }

    #[test]
    fn a_deployment_the_ledger_just_booked_no_longer_waits() {
        // The deployment controller booked d000 on the Ready droplet (its status write is not
        // in the cache yet): its room is taken, and d000 needs nothing new either.
        let ready = Droplet::test("r1")
            .namespace("s")
            .pool("default")
            .ready()
            .build();
        let deployments = burst(2, 512);
        let pool = small_pool();
        let inputs = ProvisioningInputs {
            objects: FleetObjects {
                pools: vec![&pool],
                droplets: vec![&ready],
                deployments: deployments.iter().collect(),
                ..FleetObjects::default()
            },
            ledger_usage: HashMap::from([("s/r1".to_string(), Resources::new(512 * MIB, 250, 0))]),
            ledger_booked: HashSet::from(["s/d000".to_string()]),
            ..ProvisioningInputs::default()
        };
        let plan = plan_provisioning(&inputs, now()).unwrap();
        assert_eq!(plan.waiting, ["s/d001"]);
        assert_eq!(
            plan.onto_ready,
            [("s/d001".to_string(), "s/r1".to_string())]
        );
    }

    #[test]
    fn only_deployments_in_phase_provisioning_are_planned() {
        let mut deployments = burst(2, 512);
        deployments.push(
            MCPDeployment::test("scheduling")
                .namespace("s")
                .template("absent")
                .memory("512Mi")
                .phase(DeploymentPhase::Scheduling)
                .build(),
        );
        let plan = plan_of(&[small_pool()], &[], &deployments);
        assert_eq!(plan.waiting, ["s/d000", "s/d001"]);
    }

    #[test]
    fn an_invalid_pool_does_not_stop_the_others() {
        let bad = DropletPool::test("bad")
            .namespace("t")
            .sizes(&["s-99vcpu-1tb"])
            .build();
        let plan = plan_of(&[bad, small_pool()], &[], &burst(2, 512));
        assert_eq!(plan.create.len(), 1);
    }

    #[test]
    fn a_pool_being_deleted_gets_no_droplets_and_is_not_replaced_by_the_default() {
        let mut pool = small_pool();
        pool.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now()));
        let plan = plan_of(&[pool], &[], &burst(2, 512));
        assert!(plan.create.is_empty());
        assert_eq!(plan.blocked.len(), 2);
        assert!(
            plan.blocked
                .iter()
                .all(|b| b.reason == REASON_POOL_DELETING)
        );
    }

    #[test]
    fn the_droplet_object_carries_pool_label_annotation_and_owner() {
        let plan = plan_of(&[small_pool()], &[], &burst(2, 512));
        let owner = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: crate::api::API_VERSION.into(),
            kind: "DropletPool".into(),
            name: "default".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let d = droplet_object(&plan.create[0], Some(owner));
        assert_eq!(d.spec.pool.as_deref(), Some("default"));
        assert_eq!(d.spec.size.as_deref(), Some("s-1vcpu-2gb"));
        assert_eq!(
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POOL_LABEL))
                .map(String::as_str),
            Some("default")
        );
        assert_eq!(provisioned_for(&d), ["s/d000", "s/d001"]);
        assert_eq!(pool_of_droplet(&d).as_deref(), Some("s/default"));
        assert_eq!(d.metadata.owner_references.as_ref().map(Vec::len), Some(1));
        assert!(in_flight(&d));
        crate::testing::builders::validate(&d).expect("valid against the CRD schema");
    }

    #[test]
    fn names_are_stable_dns_labels() {
        let keys = vec!["s/a".to_string(), "s/b".to_string()];
        assert_eq!(
            droplet_name("default", &keys, 0),
            droplet_name("default", &keys, 0)
        );
        assert_ne!(
            droplet_name("default", &keys, 0),
            droplet_name("default", &keys, 1)
        );
        let long = "p".repeat(80);
        let name = droplet_name(&long, &keys, 0);
        assert!(name.len() <= 63, "{name}");
        // A fixed value: a change of the hash would rename droplets of running batches.
        assert_eq!(droplet_name("x", &[], 0), "x-84222325");
    }
}
