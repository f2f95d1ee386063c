//! Property tests for provisioning and consolidation: pool limits hold, every new droplet
//! is the cheapest size that holds its content (checked by brute force), nothing is
//! overcommitted, and consolidation respects budgets and do-not-disrupt.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use proptest::prelude::*;
use scheduler::consolidate::{Destination, allowed_disruptions};
use scheduler::fixtures::{self, droplet, request};
use scheduler::{
    Budget, BudgetLimit, DisruptionReason, FleetDroplet, PendingDeployment, PlacedDeployment,
    PoolLimits, Snapshot, Target, plan_batch, plan_consolidation,
};

const SIZES: [&str; 6] = [
    "s-1vcpu-1gb",
    "s-1vcpu-2gb",
    "s-2vcpu-2gb",
    "s-2vcpu-4gb",
    "s-4vcpu-8gb",
    "s-8vcpu-16gb",
];

fn existing() -> impl Strategy<Value = Vec<(usize, u64)>> {
    // (size index, percent filled)
    prop::collection::vec((0usize..6, 0u64..90), 0..6)
}

fn pending() -> impl Strategy<Value = Vec<(u64, u64, u8)>> {
    // (memory MiB, cpu millis, region preference)
    prop::collection::vec((128u64..4096, 50u64..2500, 0u8..4), 1..40)
}

fn build_existing(spec: &[(usize, u64)]) -> Vec<FleetDroplet> {
    spec.iter()
        .enumerate()
        .map(|(i, (s, pct))| {
            let mut d = droplet(&format!("d{i}"), SIZES[*s]);
            d.unlisted_usage = scheduler::Resources::new(
                d.allocatable.memory * pct / 100,
                d.allocatable.cpu_millis * pct / 100,
                0,
            );
            d
        })
        .collect()
}

type Fleet = Vec<(usize, Vec<(u64, bool)>, bool)>;
type ConsolidationCase = (Fleet, BudgetLimit, usize, f64);

fn consolidation_case() -> impl Strategy<Value = ConsolidationCase> {
    (
        prop::collection::vec(
            (
                0usize..6,
                prop::collection::vec((128u64..3000, prop::bool::weighted(0.2)), 0..4),
                prop::bool::weighted(0.2),
            ),
            1..14,
        ),
        prop_oneof![
            (0u32..4).prop_map(BudgetLimit::Count),
            (0u32..60).prop_map(BudgetLimit::Percent)
        ],
        0usize..3,
        prop_oneof![Just(0.5), 0.0f64..2.0],
    )
}

fn build_consolidation(case: &ConsolidationCase) -> (scheduler::Pool, Snapshot, Timestamp) {
    let (fleet, budget, draining, ratio) = case;
    let (budget, draining, ratio) = (*budget, *draining, *ratio);
    let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
    let mut pool = fixtures::pool();
    pool.disruption.savings_ratio = ratio;
    pool.disruption.budgets = vec![Budget {
        limit: budget,
        schedule: None,
        duration: Duration::ZERO,
        reasons: vec![],
    }];
    let mut droplets = Vec::new();
    for (i, (s, deps, recent)) in fleet.iter().enumerate() {
        let mut d = droplet(&format!("d{i:02}"), SIZES[*s]);
        if *recent {
            d.since_last_change = Some(Duration::from_secs(10));
        }
        for (n, (mib, dnd)) in deps.iter().enumerate() {
            let r = request(*mib, 100);
            if !d.used().plus(r).fits_in(&d.allocatable) {
                continue;
            }
            d.deployments.push(PlacedDeployment {
                key: format!("team-a/x{i}-{n}"),
                request: r,
                reported: true,
                do_not_disrupt: *dnd,
                pinned: false,
            });
        }
        if i < draining {
            d.phase = scheduler::DropletPhase::Draining;
        }
        // Every seventh droplet carries the droplet-level annotation.
        d.do_not_disrupt = i % 7 == 3;
        droplets.push(d);
    }
    let snap = Snapshot::new(
        droplets,
        vec![pool.clone()],
        fixtures::test_sizes(),
        fixtures::test_regions(),
    )
    .unwrap();
    (pool, snap, now)
}

/// Guards against a vacuous property: the generated fleets do produce every kind of action.
#[test]
fn generated_consolidation_cases_produce_real_actions() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut empty, mut delete, mut replace) = (0, 0, 0);
    for _ in 0..300 {
        let case = consolidation_case()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (_, snap, now) = build_consolidation(&case);
        for a in plan_consolidation(&snap, &[], now).actions {
            match (a.reason, a.replacement.is_some()) {
                (DisruptionReason::Empty, _) => empty += 1,
                (_, false) => delete += 1,
                (_, true) => replace += 1,
            }
        }
    }
    assert!(
        empty > 0 && delete > 0 && replace > 0,
        "{empty} {delete} {replace}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn provisioning_respects_limits_picks_cheapest_sizes_and_never_overcommits(
        existing in existing(),
        pending in pending(),
        max_droplets in prop::option::of(0u32..8),
        max_cost in prop::option::of(0u32..400),
        allowed in prop::sample::subsequence(SIZES.to_vec(), 1..=6),
    ) {
        let mut pool = fixtures::pool();
        pool.sizes = allowed.iter().map(|s| s.to_string()).collect();
        pool.limits = PoolLimits { max_droplets, max_monthly_usd: max_cost.map(f64::from) };
        let droplets = build_existing(&existing);
        let existing_cost: f64 = droplets.iter().map(|d| d.monthly_usd).sum();
        let existing_count = droplets.len() as u32;
        let snap = Snapshot::new(droplets, vec![pool.clone()], fixtures::test_sizes(), fixtures::test_regions()).unwrap();
        let regions = ["nyc3", "sfo3", "ams3", "lon1"];
        let deps: Vec<PendingDeployment> = pending.iter().enumerate().map(|(i, (m, c, r))| {
            let mut d = PendingDeployment::new(format!("team-a/p{i}"), request(*m, *c), fixtures::POOL);
            d.regions = vec![regions[*r as usize].to_string()];
            d
        }).collect();
        let plan = plan_batch(&snap, &[], &deps);

        // Every deployment appears exactly once.
        let mut seen: HashSet<&str> = HashSet::new();
        for p in &plan.placements { prop_assert!(seen.insert(p.deployment.as_str())); }
        for u in &plan.unschedulable { prop_assert!(seen.insert(u.deployment.as_str())); }
        prop_assert_eq!(seen.len(), deps.len());

        // Limits: only new droplets are counted against what was already there.
        let new_cost: f64 = plan.new_droplets.iter().map(|d| d.monthly_usd).sum();
        if let Some(m) = max_droplets {
            prop_assert!(plan.new_droplets.is_empty() || existing_count + plan.new_droplets.len() as u32 <= m);
        }
        if let Some(c) = max_cost {
            prop_assert!(plan.new_droplets.is_empty() || existing_cost + new_cost <= f64::from(c) + 1e-6);
        }

        // Existing droplets are never overcommitted.
        for (i, d) in snap.droplets().iter().enumerate() {
            prop_assert!(plan.usage[i].fits_in(&d.allocatable));
        }

        // Each new droplet holds its content and no cheaper allowed size in its region does.
        let by_key: HashMap<&str, &PendingDeployment> = deps.iter().map(|d| (d.key.as_str(), d)).collect();
        for nd in &plan.new_droplets {
            let content = nd.deployments.iter().fold(scheduler::Resources::ZERO, |a, k| a.plus(by_key[k.as_str()].request));
            prop_assert_eq!(content, nd.used);
            prop_assert!(content.fits_in(&nd.allocatable));
            prop_assert!(pool.sizes.contains(&nd.size));
            for s in snap.sizes() {
                if pool.sizes.contains(&s.slug) && s.available_in(&nd.region) && content.fits_in(&s.allocatable(&pool.reserve)) {
                    prop_assert!(s.monthly_usd >= nd.monthly_usd, "{} is cheaper than {} for {:?}", s.slug, nd.size, content);
                }
            }
        }
        for p in &plan.placements {
            if let Target::New(i) = p.target { prop_assert!(i < plan.new_droplets.len()); }
        }
    }

    #[test]
    fn consolidation_respects_budgets_do_not_disrupt_and_capacity(case in consolidation_case()) {
        let (pool, snap, now) = build_consolidation(&case);
        let ratio = pool.disruption.savings_ratio;
        let plan = plan_consolidation(&snap, &[], now);
        prop_assert_eq!(plan.snapshots_built, 1);

        let pool_size = snap.droplets().len() as u32;
        let in_flight = snap.droplets().iter().filter(|d| d.phase == scheduler::DropletPhase::Draining).count() as u32;
        let mut disrupted = 0u32;
        let mut usage: HashMap<String, scheduler::Resources> =
            snap.droplets().iter().map(|d| (d.name.clone(), d.used())).collect();
        let mut removed: HashSet<String> = HashSet::new();
        for action in &plan.actions {
            // Budget: counted cumulatively over the pass, including droplets already draining.
            let limit = allowed_disruptions(&pool, pool_size, 0, action.reason, now);
            disrupted += action.droplets.len() as u32;
            prop_assert!(in_flight + disrupted <= limit, "{} + {} > {}", in_flight, disrupted, limit);
            for name in &action.droplets {
                let d = snap.droplets().iter().find(|d| &d.name == name).unwrap();
                prop_assert!(d.deployments.iter().all(|p| !p.do_not_disrupt), "moved a do-not-disrupt deployment off {}", name);
                prop_assert!(!d.do_not_disrupt, "disrupted do-not-disrupt droplet {}", name);
                prop_assert!(removed.insert(name.clone()));
            }
            if action.reason == DisruptionReason::Underutilized {
                prop_assert!(action.savings_fraction + 1e-9 >= ratio * action.disruption_fraction);
                prop_assert!(action.savings_monthly_usd > 0.0);
            }
            for m in &action.moves {
                if let Destination::Droplet(to) = &m.to {
                    prop_assert!(!removed.contains(to));
                    let d = snap.droplets().iter().find(|d| &d.name == to).unwrap();
                    let req = snap.droplets().iter().flat_map(|d| d.deployments.iter()).find(|p| p.key == m.deployment).unwrap().request;
                    let u = usage.get_mut(to).unwrap();
                    *u = u.plus(req);
                    prop_assert!(u.fits_in(&d.allocatable), "overcommitted {}", to);
                }
            }
        }
    }
}
