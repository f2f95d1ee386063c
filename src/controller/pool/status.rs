//! A DropletPool's status, pure: its droplets, capacity, allocation, observed utilization and
//! monthly cost aggregated from its Droplets' status, kstatus conditions, and `Unschedulable`
//! naming the limit that keeps waiting deployments from a new droplet.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use scheduler::Resources;

use super::plan::{
    BlockedDeployment, REASON_MAX_COST, REASON_MAX_DROPLETS, REASON_NO_SIZE_FITS, in_flight,
};
use crate::api::ResourceList;
use crate::api::conditions::{ConditionStatus, condition};
use crate::api::droplet::{Droplet, DropletPhase};
use crate::api::pool::{DropletPool, DropletPoolStatus, PoolUtilization};
use crate::api::quantity::{format_bytes, format_cpu_millis, parse_bytes, parse_cpu_millis};
use crate::catalog;
use crate::controller::kstatus::{Health, merged_conditions};

/// Condition type: True while deployments of this pool wait for a droplet that a limit (or
/// no fitting size) keeps from being created.
pub const UNSCHEDULABLE: &str = "Unschedulable";
/// Reason of `Unschedulable=False`.
pub const REASON_SCHEDULABLE: &str = "Schedulable";
/// At most this many waiting deployments are named in a message.
const NAMED_AT_MOST: usize = 10;

/// Parses a resource list leniently (what the droplet controller wrote; a bad value counts 0).
fn resources_of(list: &ResourceList) -> Option<Resources> {
    if list.memory.is_none() && list.cpu.is_none() {
        return None;
    }
    Some(Resources::new(
        list.memory
            .as_deref()
            .and_then(|m| parse_bytes(m).ok())
            .unwrap_or(0),
        list.cpu
            .as_deref()
            .and_then(|c| parse_cpu_millis(c).ok())
            .unwrap_or(0),
        list.disk
            .as_deref()
            .and_then(|d| parse_bytes(d).ok())
            .unwrap_or(0),
    ))
}

fn list_of(r: Resources) -> ResourceList {
    ResourceList {
        cpu: Some(format_cpu_millis(r.cpu_millis)),
        memory: Some(format_bytes(r.memory)),
        disk: Some(format_bytes(r.disk)),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// What the droplets of one pool add up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    /// Droplets (not being deleted).
    pub droplets: u32,
    /// Sum of capacities (reported, else the size's).
    pub capacity: Resources,
    /// Sum of what is allocated to deployments.
    pub allocated: Resources,
    /// Observed utilization, weighted by capacity, of the droplets with a sample.
    pub utilization: PoolUtilization,
    /// Sum of monthly prices (reported, else the size's list price).
    pub monthly_usd: f64,
    /// Droplets still being provisioned.
    pub provisioning: Vec<String>,
}

/// Aggregates `droplets` (those of one pool).
pub fn aggregate(droplets: &[&Droplet]) -> Aggregate {
    let mut out = Aggregate::default();
    // Weighted sums of utilization and their weights: cpu, memory, disk.
    let mut weighted = [0.0f64; 3];
    let mut weights = [0.0f64; 3];
    for d in droplets {
        if d.metadata.deletion_timestamp.is_some()
            || d.status
                .as_ref()
                .is_some_and(|s| s.phase == DropletPhase::Terminating)
        {
            continue;
        }
        out.droplets += 1;
        if in_flight(d) {
            out.provisioning
                .push(d.metadata.name.clone().unwrap_or_default());
        }
        let size = d
            .spec
            .size
            .as_deref()
            .or_else(|| d.status.as_ref().and_then(|s| s.size.as_deref()))
            .and_then(catalog::size);
        let status = d.status.as_ref();
        let capacity = status
            .and_then(|s| resources_of(&s.capacity))
            .or_else(|| size.map(|s| s.capacity()))
            .unwrap_or(Resources::ZERO);
        out.capacity = out.capacity.plus(capacity);
        if let Some(allocated) = status.and_then(|s| resources_of(&s.allocated)) {
            out.allocated = out.allocated.plus(allocated);
        }
        let price = status
            .map(|s| s.price.monthly_usd)
            .filter(|p| *p > 0.0)
            .or_else(|| size.map(|s| s.price_monthly))
            .unwrap_or(0.0);
        out.monthly_usd += price;
        if let Some(s) = status.filter(|s| s.utilization.sampled_at.is_some()) {
            let caps = [
                capacity.cpu_millis as f64,
                capacity.memory as f64,
                capacity.disk as f64,
            ];
            let used = [s.utilization.cpu, s.utilization.memory, s.utilization.disk];
            for i in 0..3 {
                weighted[i] += used[i] * caps[i];
                weights[i] += caps[i];
            }
        }
    }
    let mean = |i: usize| {
        if weights[i] > 0.0 {
            round2(weighted[i] / weights[i])
        } else {
            0.0
        }
    };
    out.utilization = PoolUtilization {
        cpu: mean(0),
        memory: mean(1),
        disk: mean(2),
    };
    out.monthly_usd = round2(out.monthly_usd);
    out
}

/// The reason the Unschedulable condition names when several deployments are blocked: a
/// limit first (a person can raise it), then sizes, then the rest.
fn leading_reason(blocked: &[BlockedDeployment]) -> &'static str {
    for reason in [REASON_MAX_DROPLETS, REASON_MAX_COST, REASON_NO_SIZE_FITS] {
        if blocked.iter().any(|b| b.reason == reason) {
            return reason;
        }
    }
    blocked.first().map_or(REASON_SCHEDULABLE, |b| b.reason)
}

/// "MaxDropletsReached: pool team-a/p is at its limit of 1 droplets; waiting: a, b (and 3 more)".
pub fn unschedulable_message(blocked: &[BlockedDeployment]) -> String {
    let reason = leading_reason(blocked);
    let first = blocked.iter().find(|b| b.reason == reason);
    let cause = first
        .map(|b| {
            // The scheduler's message is "<why no droplet fits>; <the blocker>": the blocker
            // is what the pool's reader needs.
            b.message
                .rsplit("; ")
                .next()
                .unwrap_or(&b.message)
                .to_string()
        })
        .unwrap_or_default();
    let names: Vec<&str> = blocked
        .iter()
        .take(NAMED_AT_MOST)
        .map(|b| b.deployment.as_str())
        .collect();
    let more = blocked.len().saturating_sub(NAMED_AT_MOST);
    let tail = if more > 0 {
        format!(" (and {more} more)")
    } else {
        String::new()
    };
    format!(
        "{cause}; {} deployment(s) waiting: {}{tail}",
        blocked.len(),
        names.join(", ")
    )
}

/// The whole status of `pool` at `now`: `droplets` are the pool's Droplet objects, `blocked`
/// the deployments of the pool still waiting that the last plan could not provision, and
/// `spec_error` why the spec cannot be used (an unknown size or region), if it cannot.
pub fn pool_status(
    pool: &DropletPool,
    droplets: &[&Droplet],
    blocked: &[BlockedDeployment],
    spec_error: Option<&str>,
    now: Timestamp,
) -> DropletPoolStatus {
    let generation = pool.metadata.generation;
    let agg = aggregate(droplets);
    let health = match spec_error {
        Some(error) => Health::stalled("InvalidSpec", error),
        None if !agg.provisioning.is_empty() => Health::progressing(
            "ProvisioningDroplets",
            format!(
                "{} droplet(s) being provisioned: {}",
                agg.provisioning.len(),
                agg.provisioning.join(", ")
            ),
        ),
        None => Health::ready(
            "DropletsReady",
            format!("{} droplet(s), none being provisioned", agg.droplets),
        ),
    };
    let unschedulable: Condition = if blocked.is_empty() {
        condition(
            UNSCHEDULABLE,
            ConditionStatus::False,
            REASON_SCHEDULABLE,
            "no deployment waits for a droplet this pool cannot create",
            generation,
            now,
        )
    } else {
        condition(
            UNSCHEDULABLE,
            ConditionStatus::True,
            leading_reason(blocked),
            unschedulable_message(blocked),
            generation,
            now,
        )
    };
    let existing = pool
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    DropletPoolStatus {
        droplets: agg.droplets,
        capacity: list_of(agg.capacity),
        allocated: list_of(agg.allocated),
        utilization: agg.utilization,
        monthly_cost_usd: agg.monthly_usd,
        observed_generation: generation,
        conditions: merged_conditions(existing, &health, vec![unschedulable], generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::find;
    use crate::api::droplet::DropletPhase;
    use crate::controller::status_writer;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn pool() -> DropletPool {
        let mut p = DropletPool::test("p")
            .namespace("s")
            .max_droplets(1)
            .build();
        p.metadata.generation = Some(2);
        p
    }

    fn blocked(names: &[&str], reason: &'static str) -> Vec<BlockedDeployment> {
        names
            .iter()
            .map(|n| BlockedDeployment {
                deployment: format!("s/{n}"),
                pool: "s/p".into(),
                reason,
                message: "no droplet has room; pool s/p is at its limit of 1 droplets".into(),
            })
            .collect()
    }

    #[test]
    fn droplets_capacity_allocation_utilization_and_cost_add_up() {
        let a = Droplet::test("a")
            .namespace("s")
            .pool("p")
            .ready()
            .allocated("1Gi", "500m")
            .utilization(0.5, 0.25, at(0))
            .build();
        let b = Droplet::test("b")
            .namespace("s")
            .pool("p")
            .size("s-4vcpu-8gb")
            .ready()
            .allocated("2Gi", "1")
            .utilization(0.2, 0.1, at(0))
            .build();
        let booting = Droplet::test("c").namespace("s").pool("p").build();
        let agg = aggregate(&[&a, &b, &booting]);
        assert_eq!(agg.droplets, 3);
        // 4 + 8 + 4 GiB of capacity, 2 + 4 + 2 CPUs.
        assert_eq!(list_of(agg.capacity).memory.as_deref(), Some("16Gi"));
        assert_eq!(list_of(agg.capacity).cpu.as_deref(), Some("8"));
        assert_eq!(list_of(agg.allocated).memory.as_deref(), Some("3Gi"));
        assert_eq!(list_of(agg.allocated).cpu.as_deref(), Some("1500m"));
        // CPU weighted by capacity: (0.5 x 2 + 0.2 x 4) / 6 = 0.3; memory (0.25 x 4 + 0.1 x 8) / 12 = 0.15.
        assert_eq!(agg.utilization.cpu, 0.3);
        assert_eq!(agg.utilization.memory, 0.15);
        // 24 + 48 + 24 (the booting droplet at its list price).
        assert_eq!(agg.monthly_usd, 96.0);
        assert_eq!(agg.provisioning, ["c"]);
    }

    #[test]
    fn unschedulable_names_the_limit_and_the_deployments_waiting() {
        let s = pool_status(
            &pool(),
            &[],
            &blocked(&["x", "y"], REASON_MAX_DROPLETS),
            None,
            at(0),
        );
        let c = find(&s.conditions, UNSCHEDULABLE).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", REASON_MAX_DROPLETS)
        );
        assert!(c.message.contains("limit of 1 droplets"), "{}", c.message);
        assert!(c.message.contains("s/x, s/y"), "{}", c.message);
        assert!(!c.message.contains("no droplet has room"), "{}", c.message);
        assert_eq!(c.observed_generation, Some(2));
        // Nothing waiting: False, and Ready.
        let clear = pool_status(&pool(), &[], &[], None, at(10));
        let c = find(&clear.conditions, UNSCHEDULABLE).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", REASON_SCHEDULABLE)
        );
        assert!(crate::api::conditions::is_true(&clear.conditions, "Ready"));
        assert_eq!(clear.observed_generation, Some(2));
    }

    #[test]
    fn a_limit_leads_over_other_reasons_and_long_lists_are_cut() {
        let mut list = blocked(&["a"], REASON_NO_SIZE_FITS);
        let names: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        list.extend(blocked(&refs, REASON_MAX_COST));
        let message = unschedulable_message(&list);
        assert_eq!(leading_reason(&list), REASON_MAX_COST);
        assert!(message.contains("13 deployment(s) waiting"), "{message}");
        assert!(message.contains("(and 3 more)"), "{message}");
    }

    #[test]
    fn droplets_being_provisioned_mean_reconciling_and_a_bad_spec_stalls() {
        let booting = Droplet::test("c")
            .namespace("s")
            .pool("p")
            .phase(DropletPhase::Booting)
            .build();
        let s = pool_status(&pool(), &[&booting], &[], None, at(0));
        assert!(crate::api::conditions::is_true(
            &s.conditions,
            "Reconciling"
        ));
        let s = pool_status(
            &pool(),
            &[],
            &[],
            Some("spec.sizes[0]: unknown size"),
            at(0),
        );
        let stalled = find(&s.conditions, "Stalled").unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "InvalidSpec")
        );
    }

    #[test]
    fn the_same_inputs_give_the_same_status() {
        let a = Droplet::test("a").namespace("s").pool("p").ready().build();
        let first = pool_status(&pool(), &[&a], &[], None, at(0));
        let mut p = pool();
        p.status = Some(first.clone());
        let again = pool_status(&p, &[&a], &[], None, at(60));
        assert!(!status_writer::status_changed(Some(&first), &again).unwrap());
    }
}
