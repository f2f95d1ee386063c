//! DropletPool -> the scheduler's pool.

use std::time::Duration;

use scheduler::{
    Budget, BudgetLimit, ConsolidationPolicy, Disruption, DisruptionReason, Pool, PoolLimits,
};

use super::{FleetError, ObjectRef, key_of, weights_from};
use crate::api::pool::{self as api_pool, DropletPool};
use crate::api::shared_fields::parse_duration;
use crate::catalog;

/// Regions of the implicit pool of a namespace without a DropletPool.
pub const DEFAULT_POOL_REGIONS: [&str; 3] = ["nyc3", "sfo3", "ams3"];

/// The operator's default pool named `pool` (`namespace/name`), for a namespace without
/// any DropletPool: the default regions and the basic sizes (DESIGN.md section 2).
pub fn default_pool(pool: &str) -> Pool {
    Pool::new(
        pool,
        DEFAULT_POOL_REGIONS.iter().map(|r| r.to_string()).collect(),
        catalog::default_pool_sizes()
            .into_iter()
            .map(String::from)
            .collect(),
    )
}

/// Converts a DropletPool into the scheduler's pool (named `namespace/name`); unknown sizes
/// and regions are errors naming the field.
pub fn pool_from_api(pool: &DropletPool) -> Result<Pool, FleetError> {
    let name = key_of(&pool.metadata);
    let ctx = ObjectRef {
        kind: "DropletPool",
        name: name.clone(),
    };
    let spec = &pool.spec;
    let sizes = if spec.sizes.is_empty() {
        catalog::default_pool_sizes()
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        for (i, s) in spec.sizes.iter().enumerate() {
            if catalog::size(s).is_none() {
                return Err(ctx.err(&format!("spec.sizes[{i}]"), format!("unknown size {s:?}")));
            }
        }
        spec.sizes.clone()
    };
    for (i, r) in spec.regions.iter().enumerate() {
        if catalog::region(r).is_none() {
            return Err(ctx.err(
                &format!("spec.regions[{i}]"),
                format!("unknown region {r:?}"),
            ));
        }
    }
    let mut out = Pool::new(name, spec.regions.clone(), sizes);
    out.target_utilization = f64::from(spec.target_utilization.clamp(1, 100)) / 100.0;
    out.min_score = f64::from(spec.min_score.unwrap_or(0));
    out.weights = spec.weights.as_ref().map(weights_from);
    if let Some(l) = &spec.limits {
        out.limits = PoolLimits {
            max_droplets: l.max_droplets,
            max_monthly_usd: l.max_monthly_cost_usd,
        };
    }
    if let Some(d) = &spec.disruption {
        out.disruption = disruption_from_api(&ctx, d)?;
    }
    Ok(out)
}
/// The pool's disruption settings; a bad duration, count or schedule names its field.
fn disruption_from_api(
    ctx: &ObjectRef,
    d: &api_pool::Disruption,
) -> Result<Disruption, FleetError> {
    let policy = match d.consolidation_policy {
        api_pool::ConsolidationPolicy::Never => ConsolidationPolicy::Never,
        api_pool::ConsolidationPolicy::WhenEmpty => ConsolidationPolicy::WhenEmpty,
        api_pool::ConsolidationPolicy::WhenUnderutilized => ConsolidationPolicy::WhenUnderutilized,
    };
    let consolidate_after = parse_duration(&d.consolidate_after)
        .map_err(|e| ctx.err("spec.disruption.consolidateAfter", e))?
        .unwrap_or(Duration::MAX);
    let mut budgets = Vec::new();
    for (i, b) in d.budgets.iter().enumerate() {
        let field = format!("spec.disruption.budgets[{i}]");
        let limit = match b.droplets.strip_suffix('%') {
            Some(p) => BudgetLimit::Percent(
                p.parse()
                    .map_err(|_| ctx.err(&format!("{field}.droplets"), "not a percentage"))?,
            ),
            None => BudgetLimit::Count(
                b.droplets
                    .parse()
                    .map_err(|_| ctx.err(&format!("{field}.droplets"), "not a count"))?,
            ),
        };
        if let Some(s) = &b.schedule {
            scheduler::cron::Schedule::parse(s)
                .map_err(|e| ctx.err(&format!("{field}.schedule"), e))?;
        }
        let duration = match &b.duration {
            Some(text) => parse_duration(text)
                .map_err(|e| ctx.err(&format!("{field}.duration"), e))?
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        budgets.push(Budget {
            limit,
            schedule: b.schedule.clone(),
            duration,
            reasons: b
                .reasons
                .iter()
                .map(|r| match r {
                    api_pool::DisruptionReason::Empty => DisruptionReason::Empty,
                    api_pool::DisruptionReason::Underutilized => DisruptionReason::Underutilized,
                    api_pool::DisruptionReason::Drifted => DisruptionReason::Drifted,
                })
                .collect(),
        });
    }
    Ok(Disruption {
        policy,
        consolidate_after,
        budgets,
        ..Disruption::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_converts_with_its_limits_target_and_disruption() {
        let pool = DropletPool::test("fast")
            .namespace("s")
            .regions(&["sfo3", "nyc3"])
            .sizes(&["s-1vcpu-2gb", "s-4vcpu-8gb"])
            .max_droplets(3)
            .max_monthly_cost(100.0)
            .target_utilization(70)
            .consolidation(api_pool::ConsolidationPolicy::WhenEmpty)
            .consolidate_after("10m")
            .budget("20%")
            .build();
        let out = pool_from_api(&pool).unwrap();
        assert_eq!(out.name, "s/fast");
        assert_eq!(out.regions, ["sfo3", "nyc3"]);
        assert_eq!(out.sizes, ["s-1vcpu-2gb", "s-4vcpu-8gb"]);
        assert_eq!(out.limits.max_droplets, Some(3));
        assert_eq!(out.limits.max_monthly_usd, Some(100.0));
        assert!((out.target_utilization - 0.7).abs() < 1e-9);
        assert_eq!(out.disruption.policy, ConsolidationPolicy::WhenEmpty);
        assert_eq!(out.disruption.consolidate_after, Duration::from_secs(600));
        assert_eq!(out.disruption.budgets[0].limit, BudgetLimit::Percent(20));
    }

    #[test]
    fn never_consolidating_after_and_a_bad_budget_count() {
        let never = DropletPool::test("p").consolidate_after("Never").build();
        let out = pool_from_api(&never).unwrap();
        assert_eq!(out.disruption.consolidate_after, Duration::MAX);
        let bad = DropletPool::test("p").budget("two").build();
        let text = pool_from_api(&bad).unwrap_err().to_string();
        assert!(
            text.contains("spec.disruption.budgets[0].droplets"),
            "{text}"
        );
    }

    #[test]
    fn unknown_sizes_and_regions_name_their_field() {
        let size = DropletPool::test("p")
            .sizes(&["s-2vcpu-4gb", "s-99vcpu-1tb"])
            .build();
        let text = pool_from_api(&size).unwrap_err().to_string();
        assert!(text.contains("spec.sizes[1]"), "{text}");
        let region = DropletPool::test("p").regions(&["xyz9"]).build();
        let text = pool_from_api(&region).unwrap_err().to_string();
        assert!(text.contains("spec.regions[0]"), "{text}");
    }
}
