//! Consolidation planning: which droplets to delete or replace, and where their
//! deployments go.
//!
//! One pass per call, per pool:
//! 1. Empty droplets unchanged for `consolidate_after` are deleted (reason `Empty`).
//! 2. With `WhenUnderutilized`, candidates (no do-not-disrupt or pinned deployments,
//!    unchanged for `consolidate_after`) are ordered by disruption cost (1 + deployments).
//!    A binary search finds the longest prefix (2..=100) whose deployments fit on the
//!    remaining droplets plus at most one cheaper replacement; failing that, every single
//!    candidate is simulated (delete or replace) and the best one is taken.
//! 3. Every move must pass the gate: saved share of pool cost >= ratio x disrupted share
//!    (Karpenter's balanced rule; ratio 0.5 by default) and save money.
//! 4. Budgets cap how many droplets are disrupted at once, per reason, counting droplets
//!    already draining.
//!
//! The pass builds one [`SimBase`] (usage, limits, destinations) and simulates each
//! candidate set on a [`Fork`] that only records what it changes.

use std::collections::HashMap;

use jiff::Timestamp;

use super::cron::Schedule;
use super::model::{
    BudgetLimit, ConsolidationPolicy, DisruptionReason, DropletPhase, Pool, Resources,
};
use super::score::FIT_CEILING;
use super::sizing::cheapest_size_that_fits;
use super::snapshot::Snapshot;

/// Most candidates the multi-droplet search considers (Karpenter's limit).
pub const MAX_MULTI_CANDIDATES: usize = 100;

/// The droplet a deployment moves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    /// An existing droplet, by name.
    Droplet(String),
    /// The action's replacement droplet.
    Replacement,
}

/// One deployment moving off a disrupted droplet.
#[derive(Debug, Clone, PartialEq)]
pub struct Move {
    /// `namespace/name` of the deployment.
    pub deployment: String,
    /// Droplet it leaves.
    pub from: String,
    /// Where it goes.
    pub to: Destination,
}

/// A cheaper droplet created before the old ones are drained (make before break).
#[derive(Debug, Clone, PartialEq)]
pub struct Replacement {
    /// Size slug.
    pub size: String,
    /// Region slug.
    pub region: String,
    /// Price per month in USD.
    pub monthly_usd: f64,
}

/// One consolidation decision.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsolidationAction {
    /// Pool (`namespace/name`).
    pub pool: String,
    /// Why (budgets are per reason).
    pub reason: DisruptionReason,
    /// Droplets to drain and delete.
    pub droplets: Vec<String>,
    /// The replacement to create first, if any.
    pub replacement: Option<Replacement>,
    /// Where each deployment goes.
    pub moves: Vec<Move>,
    /// Monthly USD saved.
    pub savings_monthly_usd: f64,
    /// Savings / pool monthly cost.
    pub savings_fraction: f64,
    /// Disruption cost of the move / the pool's total disruption cost.
    pub disruption_fraction: f64,
}

/// A droplet that was looked at and left alone, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    /// Droplet name.
    pub droplet: String,
    /// For people.
    pub reason: String,
}

/// The outcome of one consolidation pass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConsolidationPlan {
    /// Actions to take, in order.
    pub actions: Vec<ConsolidationAction>,
    /// Candidates left alone and why.
    pub skipped: Vec<Skipped>,
    /// Simulation bases built in this pass (one per pass by design).
    pub snapshots_built: u32,
    /// Candidate simulations run.
    pub simulations: u32,
}

/// How many droplets of a pool may be disrupted for `reason` at `now`: the most
/// restrictive active budget (default 10 %, percentages rounded up) minus `in_flight`.
/// A schedule that does not parse counts as always active, which is the safe side.
pub fn allowed_disruptions(
    pool: &Pool,
    pool_droplets: u32,
    in_flight: u32,
    reason: DisruptionReason,
    now: Timestamp,
) -> u32 {
    let default_budget = [super::model::Budget {
        limit: BudgetLimit::Percent(10),
        schedule: None,
        duration: std::time::Duration::ZERO,
        reasons: Vec::new(),
    }];
    let budgets: &[super::model::Budget] = if pool.disruption.budgets.is_empty() {
        &default_budget
    } else {
        &pool.disruption.budgets
    };
    let mut allowed = u32::MAX;
    for b in budgets {
        if !b.reasons.is_empty() && !b.reasons.contains(&reason) {
            continue;
        }
        let active = match &b.schedule {
            None => true,
            Some(s) => Schedule::parse(s).map_or(true, |s| s.window_open(b.duration, now)),
        };
        if !active {
            continue;
        }
        let limit = match b.limit {
            BudgetLimit::Count(n) => n,
            BudgetLimit::Percent(p) => {
                (u64::from(pool_droplets) * u64::from(p.min(100))).div_ceil(100) as u32
            }
        };
        allowed = allowed.min(limit);
    }
    allowed.saturating_sub(in_flight)
}

/// The immutable base of one pass: usage and per-droplet limits, built once.
pub struct SimBase<'a> {
    snapshot: &'a Snapshot,
    used: Vec<Resources>,
    /// 90 % of allocatable: moves never push a droplet above the fit ceiling.
    ceiling: Vec<Resources>,
    destination: Vec<bool>,
}

impl<'a> SimBase<'a> {
    fn new(snapshot: &'a Snapshot, used: &[Resources]) -> Self {
        let droplets = snapshot.droplets();
        let used = if used.len() == droplets.len() {
            used.to_vec()
        } else {
            snapshot.reported_usage().to_vec()
        };
        let ceiling = droplets
            .iter()
            .map(|d| scale(d.allocatable, FIT_CEILING))
            .collect();
        let destination = droplets.iter().map(|d| d.accepts_work()).collect();
        SimBase {
            snapshot,
            used,
            ceiling,
            destination,
        }
    }

    fn fork(&self) -> Fork<'_, 'a> {
        Fork {
            base: self,
            added: HashMap::new(),
        }
    }
}

fn scale(r: Resources, f: f64) -> Resources {
    Resources::new(
        (r.memory as f64 * f) as u64,
        (r.cpu_millis as f64 * f) as u64,
        (r.disk as f64 * f) as u64,
    )
}

/// A cheap mutable view over a [`SimBase`]: only the droplets it touched are stored.
pub struct Fork<'b, 'a> {
    base: &'b SimBase<'a>,
    added: HashMap<usize, Resources>,
}

impl Fork<'_, '_> {
    fn used(&self, i: usize) -> Resources {
        let base = self.base.used[i];
        self.added.get(&i).map_or(base, |a| base.plus(*a))
    }

    fn add(&mut self, i: usize, r: Resources) {
        let e = self.added.entry(i).or_default();
        *e = e.plus(r);
    }
}

struct Simulated {
    moves: Vec<Move>,
    replacement: Option<Replacement>,
    savings: f64,
}

struct PoolView<'p> {
    pool: &'p Pool,
    members: Vec<usize>,
    monthly_cost: f64,
    disruption_total: f64,
}

fn disruption_cost(snapshot: &Snapshot, i: usize) -> f64 {
    1.0 + snapshot.droplets()[i].deployments.len() as f64
}

/// Simulates removing `removed` (plus `also_gone`) from the pool: the deployments go
/// best-fit onto the remaining destinations under the 90 % ceiling, the rest onto one
/// replacement of the cheapest size that holds them under the ceiling.
fn simulate(
    base: &SimBase<'_>,
    view: &PoolView<'_>,
    removed: &[usize],
    also_gone: &[bool],
) -> Option<Simulated> {
    let snapshot = base.snapshot;
    let droplets = snapshot.droplets();
    let mut fork = base.fork();
    let mut items: Vec<(&str, Resources, usize)> = removed
        .iter()
        .flat_map(|&i| {
            droplets[i]
                .deployments
                .iter()
                .map(move |d| (d.key.as_str(), d.request, i))
        })
        .collect();
    items.sort_by(|a, b| {
        (b.1.memory, b.1.cpu_millis)
            .cmp(&(a.1.memory, a.1.cpu_millis))
            .then_with(|| a.0.cmp(b.0))
    });
    let mut moves = Vec::with_capacity(items.len());
    let mut leftover = Resources::ZERO;
    let mut leftover_keys = Vec::new();
    for (key, request, from) in items {
        let mut best: Option<(f64, usize)> = None;
        for &j in &view.members {
            if also_gone[j] || removed.contains(&j) || !base.destination[j] {
                continue;
            }
            let after = fork.used(j).plus(request);
            if !after.fits_in(&base.ceiling[j]) {
                continue;
            }
            let share = after.dominant_share_of(&droplets[j].allocatable);
            if best.is_none_or(|(s, _)| share > s) {
                best = Some((share, j));
            }
        }
        match best {
            Some((_, j)) => {
                fork.add(j, request);
                moves.push(Move {
                    deployment: key.to_string(),
                    from: droplets[from].name.clone(),
                    to: Destination::Droplet(droplets[j].name.clone()),
                });
            }
            None => {
                leftover = leftover.plus(request);
                leftover_keys.push((key.to_string(), droplets[from].name.clone()));
            }
        }
    }
    let removed_cost: f64 = removed.iter().map(|&i| droplets[i].monthly_usd).sum();
    let replacement = if leftover_keys.is_empty() {
        None
    } else {
        let demand = scale(leftover, 1.0 / FIT_CEILING).plus(Resources::new(1, 1, 0));
        let found = view.pool.regions.iter().find_map(|r| {
            cheapest_size_that_fits(
                snapshot.sizes(),
                &view.pool.sizes,
                r,
                &view.pool.reserve,
                &demand,
            )
            .map(|s| Replacement {
                size: s.slug.clone(),
                region: r.clone(),
                monthly_usd: s.monthly_usd,
            })
        })?;
        for (key, from) in leftover_keys {
            moves.push(Move {
                deployment: key,
                from,
                to: Destination::Replacement,
            });
        }
        Some(found)
    };
    let savings = removed_cost - replacement.as_ref().map_or(0.0, |r| r.monthly_usd);
    if savings <= 0.0 {
        return None;
    }
    Some(Simulated {
        moves,
        replacement,
        savings,
    })
}

/// Plans one consolidation pass over every pool. `used` is the usage of the snapshot's
/// droplets (from the ledger); droplets report their own when it is empty.
pub fn plan_consolidation(
    snapshot: &Snapshot,
    used: &[Resources],
    now: Timestamp,
) -> ConsolidationPlan {
    let base = SimBase::new(snapshot, used);
    let mut plan = ConsolidationPlan {
        snapshots_built: 1,
        ..ConsolidationPlan::default()
    };
    let droplets = snapshot.droplets();
    let mut gone = vec![false; droplets.len()];
    for (pi, pool) in snapshot.pools().iter().enumerate() {
        if pool.disruption.policy == ConsolidationPolicy::Never {
            continue;
        }
        let members: Vec<usize> = (0..droplets.len())
            .filter(|&i| {
                snapshot.droplet_pool[i] == pi && droplets[i].phase != DropletPhase::Terminating
            })
            .collect();
        // Droplets already draining or terminating count against the budgets.
        let mut in_flight = (0..droplets.len())
            .filter(|&i| {
                snapshot.droplet_pool[i] == pi
                    && matches!(
                        droplets[i].phase,
                        DropletPhase::Draining | DropletPhase::Terminating
                    )
            })
            .count() as u32;
        let view = PoolView {
            pool,
            monthly_cost: members.iter().map(|&i| droplets[i].monthly_usd).sum(),
            disruption_total: members.iter().map(|&i| disruption_cost(snapshot, i)).sum(),
            members,
        };
        let pool_size = view.members.len() as u32;
        let settled = |i: usize| {
            droplets[i]
                .since_last_change
                .is_some_and(|age| age >= pool.disruption.consolidate_after)
        };

        // 1. Empty droplets.
        let mut empties: Vec<usize> = view
            .members
            .iter()
            .copied()
            .filter(|&i| {
                let d = &droplets[i];
                d.deployments.is_empty()
                    && base.used[i].is_zero()
                    && matches!(d.phase, DropletPhase::Ready | DropletPhase::NotReady)
            })
            .collect();
        empties.sort_by(|&a, &b| {
            droplets[b]
                .monthly_usd
                .total_cmp(&droplets[a].monthly_usd)
                .then_with(|| droplets[a].name.cmp(&droplets[b].name))
        });
        for i in empties {
            let name = droplets[i].name.clone();
            if droplets[i].do_not_disrupt {
                plan.skipped.push(Skipped {
                    droplet: name,
                    reason: "empty, but the droplet is annotated do-not-disrupt".into(),
                });
                continue;
            }
            if !settled(i) {
                plan.skipped.push(Skipped {
                    droplet: name,
                    reason: "empty, but changed within consolidateAfter".into(),
                });
                continue;
            }
            if allowed_disruptions(pool, pool_size, in_flight, DisruptionReason::Empty, now) == 0 {
                plan.skipped.push(Skipped {
                    droplet: name,
                    reason: "empty, but the disruption budget is used up".into(),
                });
                continue;
            }
            in_flight += 1;
            gone[i] = true;
            let savings = droplets[i].monthly_usd;
            plan.actions.push(ConsolidationAction {
                pool: pool.name.clone(),
                reason: DisruptionReason::Empty,
                droplets: vec![name],
                replacement: None,
                moves: Vec::new(),
                savings_monthly_usd: savings,
                savings_fraction: fraction(savings, view.monthly_cost),
                disruption_fraction: fraction(1.0, view.disruption_total),
            });
        }
        if pool.disruption.policy != ConsolidationPolicy::WhenUnderutilized {
            continue;
        }

        // 2. Under-used droplets.
        let mut candidates: Vec<usize> = Vec::new();
        for &i in &view.members {
            let d = &droplets[i];
            if gone[i] || d.deployments.is_empty() || d.phase != DropletPhase::Ready {
                continue;
            }
            if d.do_not_disrupt {
                plan.skipped.push(Skipped {
                    droplet: d.name.clone(),
                    reason: "the droplet is annotated do-not-disrupt".into(),
                });
                continue;
            }
            let blocker = d
                .deployments
                .iter()
                .find(|p| p.do_not_disrupt || p.pinned)
                .map(|p| {
                    if p.do_not_disrupt {
                        format!("runs {} (do-not-disrupt)", p.key)
                    } else {
                        format!("runs {} (pinned)", p.key)
                    }
                });
            if let Some(reason) = blocker {
                plan.skipped.push(Skipped {
                    droplet: d.name.clone(),
                    reason,
                });
                continue;
            }
            if !settled(i) {
                plan.skipped.push(Skipped {
                    droplet: d.name.clone(),
                    reason: "changed within consolidateAfter".into(),
                });
                continue;
            }
            candidates.push(i);
        }
        candidates.sort_by(|&a, &b| {
            disruption_cost(snapshot, a)
                .total_cmp(&disruption_cost(snapshot, b))
                .then_with(|| {
                    base.used[a]
                        .dominant_share_of(&droplets[a].allocatable)
                        .total_cmp(&base.used[b].dominant_share_of(&droplets[b].allocatable))
                })
                .then_with(|| droplets[a].name.cmp(&droplets[b].name))
        });
        let budget = allowed_disruptions(
            pool,
            pool_size,
            in_flight,
            DisruptionReason::Underutilized,
            now,
        ) as usize;
        if candidates.is_empty() {
            continue;
        }
        if budget == 0 {
            for &i in &candidates {
                plan.skipped.push(Skipped {
                    droplet: droplets[i].name.clone(),
                    reason: "the disruption budget is used up".into(),
                });
            }
            continue;
        }
        let ratio = pool.disruption.savings_ratio;
        let evaluate = |set: &[usize], sims: &mut u32| -> Option<ConsolidationAction> {
            *sims += 1;
            let sim = simulate(&base, &view, set, &gone)?;
            let savings_fraction = fraction(sim.savings, view.monthly_cost);
            let disruption_fraction = fraction(
                set.iter().map(|&i| disruption_cost(snapshot, i)).sum(),
                view.disruption_total,
            );
            if savings_fraction + 1e-12 < ratio * disruption_fraction {
                return None;
            }
            Some(ConsolidationAction {
                pool: pool.name.clone(),
                reason: DisruptionReason::Underutilized,
                droplets: set.iter().map(|&i| droplets[i].name.clone()).collect(),
                replacement: sim.replacement,
                moves: sim.moves,
                savings_monthly_usd: sim.savings,
                savings_fraction,
                disruption_fraction,
            })
        };
        let mut sims = 0;
        // Multi-droplet: the longest valid prefix, by binary search.
        let hi_limit = candidates.len().min(MAX_MULTI_CANDIDATES).min(budget);
        let mut chosen: Option<ConsolidationAction> = None;
        let (mut lo, mut hi) = (2usize, hi_limit);
        while lo <= hi {
            let mid = (lo + hi) / 2;
            match evaluate(&candidates[..mid], &mut sims) {
                Some(action) => {
                    chosen = Some(action);
                    lo = mid + 1;
                }
                None => hi = mid - 1,
            }
        }
        // Single droplet: the best ratio of saved to disrupted share.
        if chosen.is_none() {
            for &i in &candidates {
                if let Some(action) = evaluate(&[i], &mut sims) {
                    let better = chosen.as_ref().is_none_or(|c| {
                        action.savings_fraction / action.disruption_fraction
                            > c.savings_fraction / c.disruption_fraction
                    });
                    if better {
                        chosen = Some(action);
                    }
                }
            }
        }
        plan.simulations += sims;
        match chosen {
            Some(action) => {
                for name in &action.droplets {
                    if let Some(i) = view.members.iter().find(|&&i| &droplets[i].name == name) {
                        gone[*i] = true;
                    }
                }
                plan.actions.push(action);
            }
            None => {
                for &i in &candidates {
                    plan.skipped.push(Skipped {
                        droplet: droplets[i].name.clone(),
                        reason: "no cheaper arrangement passes the savings gate".into(),
                    });
                }
            }
        }
    }
    plan
}

fn fraction(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 { 0.0 } else { part / whole }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, droplet, request};
    use crate::model::{Budget, FleetDroplet, PlacedDeployment};
    use std::time::Duration;

    fn now() -> Timestamp {
        "2026-11-25T12:00:00Z".parse().unwrap()
    }

    fn with_deployments(mut d: FleetDroplet, mib: &[u64]) -> FleetDroplet {
        for (n, m) in mib.iter().enumerate() {
            let r = request(*m, 100);
            d.deployments.push(PlacedDeployment {
                key: format!("team-a/{}-{n}", d.name),
                request: r,
                reported: true,
                do_not_disrupt: false,
                pinned: false,
            });
        }
        d
    }

    fn plan(droplets: Vec<FleetDroplet>, pool: Pool) -> ConsolidationPlan {
        let snap = Snapshot::new(
            droplets,
            vec![pool],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap();
        plan_consolidation(&snap, &[], now())
    }

    fn generous(mut pool: Pool) -> Pool {
        pool.disruption.budgets = vec![Budget {
            limit: BudgetLimit::Count(10),
            schedule: None,
            duration: Duration::ZERO,
            reasons: vec![],
        }];
        pool
    }

    #[test]
    fn empty_droplets_past_consolidate_after_are_deleted_recent_ones_kept() {
        let old = droplet("old", "s-1vcpu-1gb");
        let mut fresh = droplet("fresh", "s-1vcpu-1gb");
        fresh.since_last_change = Some(Duration::from_secs(60));
        let p = plan(vec![old, fresh], generous(fixtures::pool()));
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].reason, DisruptionReason::Empty);
        assert_eq!(p.actions[0].droplets, vec!["old".to_string()]);
        assert_eq!(p.skipped[0].droplet, "fresh");
        assert_eq!(p.snapshots_built, 1);
    }

    #[test]
    fn the_default_budget_allows_ten_percent_rounded_up() {
        let mut droplets: Vec<FleetDroplet> = (0..3)
            .map(|i| droplet(&format!("empty{i}"), "s-1vcpu-1gb"))
            .collect();
        for i in 0..9 {
            droplets.push(with_deployments(
                droplet(&format!("busy{i}"), "s-1vcpu-2gb"),
                &[1300],
            ));
        }
        let p = plan(droplets, fixtures::pool());
        // 12 droplets: 10 % rounds up to 2.
        assert_eq!(p.actions.len(), 2);
        assert!(p.skipped.iter().any(|s| s.reason.contains("budget")));
    }

    #[test]
    fn under_used_droplets_move_onto_a_fuller_one_when_the_gate_passes() {
        let mut keeper = with_deployments(droplet("keeper", "s-4vcpu-8gb"), &[4096]);
        keeper.deployments[0].do_not_disrupt = true;
        let a = with_deployments(droplet("a", "s-2vcpu-4gb"), &[512]);
        let b = with_deployments(droplet("b", "s-2vcpu-4gb"), &[512]);
        let p = plan(vec![keeper, a, b], generous(fixtures::pool()));
        assert_eq!(p.actions.len(), 1, "{p:?}");
        let action = &p.actions[0];
        assert_eq!(action.reason, DisruptionReason::Underutilized);
        assert_eq!(action.droplets, vec!["a".to_string(), "b".to_string()]);
        assert!(action.replacement.is_none());
        assert!(
            action
                .moves
                .iter()
                .all(|m| m.to == Destination::Droplet("keeper".into()))
        );
        assert!((action.savings_monthly_usd - 48.0).abs() < 1e-9);
        assert!(
            p.skipped
                .iter()
                .any(|s| s.droplet == "keeper" && s.reason.contains("do-not-disrupt"))
        );
    }

    #[test]
    fn droplets_annotated_do_not_disrupt_are_never_consolidated() {
        let mut empty = droplet("empty", "s-1vcpu-1gb");
        empty.do_not_disrupt = true;
        let mut big = with_deployments(droplet("big", "s-8vcpu-16gb"), &[512]);
        big.do_not_disrupt = true;
        let p = plan(vec![empty, big], generous(fixtures::pool()));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert_eq!(p.skipped.len(), 2);
        assert!(
            p.skipped
                .iter()
                .all(|s| s.reason.contains("do-not-disrupt"))
        );
    }

    #[test]
    fn a_lone_oversized_droplet_is_replaced_by_a_cheaper_one() {
        let big = with_deployments(droplet("big", "s-8vcpu-16gb"), &[512, 256]);
        let p = plan(vec![big], generous(fixtures::pool()));
        let action = &p.actions[0];
        let replacement = action.replacement.as_ref().unwrap();
        assert_eq!(replacement.size, "s-1vcpu-2gb");
        assert_eq!(replacement.region, "nyc3");
        assert!((action.savings_monthly_usd - 84.0).abs() < 1e-9);
        assert!(
            action
                .moves
                .iter()
                .all(|m| m.to == Destination::Replacement)
        );
    }

    #[test]
    fn marginal_savings_fail_the_gate() {
        let full = with_deployments(
            droplet("full", "s-8vcpu-16gb"),
            &[2600, 2600, 2600, 2600, 2600],
        );
        let tiny = with_deployments(droplet("tiny", "s-1vcpu-1gb"), &[256]);
        let p = plan(vec![full, tiny], generous(fixtures::pool()));
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        assert!(p.skipped.iter().any(|s| s.reason.contains("savings gate")));
        assert!(p.simulations > 0);
    }

    #[test]
    fn a_lower_ratio_lets_the_marginal_move_through() {
        let full = with_deployments(
            droplet("full", "s-8vcpu-16gb"),
            &[2600, 2600, 2600, 2600, 2600],
        );
        let tiny = with_deployments(droplet("tiny", "s-1vcpu-1gb"), &[256]);
        let mut pool = generous(fixtures::pool());
        pool.disruption.savings_ratio = 0.1;
        let p = plan(vec![full, tiny], pool);
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].droplets, vec!["tiny".to_string()]);
    }

    #[test]
    fn policies_limit_what_is_considered() {
        let a = with_deployments(droplet("a", "s-2vcpu-4gb"), &[512]);
        let b = with_deployments(droplet("b", "s-2vcpu-4gb"), &[512]);
        let empty = droplet("empty", "s-1vcpu-1gb");
        let mut pool = generous(fixtures::pool());
        pool.disruption.policy = ConsolidationPolicy::WhenEmpty;
        let p = plan(vec![a.clone(), b.clone(), empty.clone()], pool.clone());
        assert_eq!(p.actions.len(), 1);
        assert_eq!(p.actions[0].reason, DisruptionReason::Empty);
        pool.disruption.policy = ConsolidationPolicy::Never;
        assert!(plan(vec![a, b, empty], pool).actions.is_empty());
    }

    #[test]
    fn a_zero_budget_window_blocks_only_while_open() {
        let mut pool = fixtures::pool();
        pool.disruption.budgets = vec![
            Budget {
                limit: BudgetLimit::Count(0),
                schedule: Some("0 9 * * *".into()),
                duration: Duration::from_secs(8 * 3600),
                reasons: vec![],
            },
            Budget {
                limit: BudgetLimit::Count(5),
                schedule: None,
                duration: Duration::ZERO,
                reasons: vec![],
            },
        ];
        assert_eq!(
            allowed_disruptions(&pool, 10, 0, DisruptionReason::Empty, now()),
            0
        );
        let night: Timestamp = "2026-11-25T20:00:00Z".parse().unwrap();
        assert_eq!(
            allowed_disruptions(&pool, 10, 1, DisruptionReason::Empty, night),
            4
        );
        pool.disruption.budgets[0].reasons = vec![DisruptionReason::Drifted];
        assert_eq!(
            allowed_disruptions(&pool, 10, 0, DisruptionReason::Empty, now()),
            5
        );
    }
}
