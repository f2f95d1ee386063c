//! Filter and score: which droplet an MCP server goes to, and why.
//!
//! Formulas (also in docs/scheduler.md), every factor 0..100:
//! - resources (fit): `u` = the largest per-resource utilization after placement, `t` = the
//!   pool's target (capped at 0.9). `100 * u / t` below the target, 100 from the target up
//!   to 90 %, then `100 * (1 - u) / 0.1`, falling to 0 at 100 %.
//! - load: `100 * (1 - observed)`; without a sample the requested utilization before
//!   placement stands in for the observation.
//! - latency: `100 * max(0, 1 - d / 10,000 km)`, `d` the great-circle distance from the
//!   droplet's region to the requested location (or the first preferred region, or the
//!   pool's first region); 100 when there is no reference.
//! - cost: `100 * reference / unit price`, unit price = monthly USD per allocatable unit
//!   (mean of GiB and vCPU), reference = the cheapest unit price in the pool.
//! - health: heartbeat freshness (100 up to 30 s, linear to 0 at 300 s, 50 when unknown)
//!   times `max(0, 1 - 0.2 * recent failures)`.
//!
//! The total is the weighted mean with the deployment's, else the pool's, else the default
//! weights (40/25/15/10/10).

use std::time::Duration;

use super::model::{PendingDeployment, ResourceKind, Resources, selector_matches};
use super::snapshot::{Gate, NONE, NONE32, Snapshot, split_key};

/// Heartbeats older than this make a droplet unhealthy (filtered out).
pub const HEARTBEAT_STALE: Duration = Duration::from_secs(300);
/// Heartbeats younger than this score full freshness.
pub const HEARTBEAT_FRESH: Duration = Duration::from_secs(30);
/// Utilization above which the fit score falls sharply.
pub const FIT_CEILING: f64 = 0.9;
/// Distance at which the latency score reaches zero.
pub const LATENCY_ZERO_KM: f64 = 10_000.0;
/// How many runners-up a decision keeps.
pub const RUNNERS_UP: usize = 3;

/// The five factor scores, each 0..100.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FactorScores {
    /// Fit toward target utilization.
    pub resources: f64,
    /// Observed load headroom.
    pub load: f64,
    /// Closeness to the preferred location.
    pub latency: f64,
    /// Price per allocatable unit against the pool's cheapest.
    pub cost: f64,
    /// Heartbeat freshness and failures.
    pub health: f64,
}

/// A droplet and its total score, for runners-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Droplet name.
    pub droplet: String,
    /// Weighted total 0..100.
    pub score: f64,
}

/// A chosen droplet with the explanation stored in the deployment's status.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Droplet name.
    pub droplet: String,
    /// Index in the snapshot.
    pub droplet_index: usize,
    /// Weighted total 0..100.
    pub score: f64,
    /// Per-factor scores.
    pub breakdown: FactorScores,
    /// Why this droplet, for people.
    pub reason: String,
    /// The next best droplets, best first.
    pub runners_up: Vec<Candidate>,
}

/// Why droplets were rejected by the filter, counted per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejections {
    /// Other namespace or pool.
    pub other_pool: u32,
    /// Region not allowed by the pool.
    pub region_not_allowed: u32,
    /// Not in phase Ready.
    pub not_ready: u32,
    /// Unhealthy or heartbeat stale.
    pub unhealthy: u32,
    /// Cordoned by a person.
    pub cordoned: u32,
    /// Labels do not match the selector.
    pub selector_mismatch: u32,
    /// Not the pinned droplet.
    pub not_pinned: u32,
    /// Not enough memory left.
    pub insufficient_memory: u32,
    /// Not enough CPU left.
    pub insufficient_cpu: u32,
    /// Not enough disk left.
    pub insufficient_disk: u32,
}

impl Rejections {
    /// "3 insufficient memory, 1 not ready" in the style of kube-scheduler.
    pub fn describe(&self) -> String {
        let parts = [
            (self.insufficient_memory, "insufficient memory"),
            (self.insufficient_cpu, "insufficient cpu"),
            (self.insufficient_disk, "insufficient disk"),
            (self.not_ready, "not ready"),
            (self.unhealthy, "unhealthy"),
            (self.cordoned, "cordoned"),
            (self.region_not_allowed, "region not allowed"),
            (self.selector_mismatch, "selector mismatch"),
            (self.not_pinned, "not the pinned droplet"),
            (self.other_pool, "other pool or namespace"),
        ];
        let text: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if text.is_empty() {
            "no droplets".to_string()
        } else {
            text.join(", ")
        }
    }

    fn insufficient(&mut self, kind: ResourceKind) {
        match kind {
            ResourceKind::Memory => self.insufficient_memory += 1,
            ResourceKind::Cpu => self.insufficient_cpu += 1,
            ResourceKind::Disk => self.insufficient_disk += 1,
        }
    }
}

/// Nothing fits (or nothing scores above the pool minimum).
#[derive(Debug, Clone, PartialEq)]
pub struct NoFit {
    /// For people: "0/5 droplets available: 3 insufficient memory, 2 not ready".
    pub reason: String,
    /// Filter counts.
    pub rejections: Rejections,
    /// The best droplet when it scored below the pool's minimum.
    pub below_minimum: Option<Candidate>,
    /// The pinned droplet was found but is full or unusable.
    pub pinned_unusable: bool,
}

/// Outcome of scoring one deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Place it on this droplet.
    Place(Placement),
    /// No existing droplet will do.
    NoFit(NoFit),
}

/// Fit score of the largest post-placement utilization `u` against target `t`.
pub fn fit_score(u: f64, target: f64) -> f64 {
    let t = target.clamp(0.01, FIT_CEILING);
    if !u.is_finite() || u > 1.0 {
        0.0
    } else if u <= t {
        100.0 * u / t
    } else if u <= FIT_CEILING {
        100.0
    } else {
        (100.0 * (1.0 - u) / (1.0 - FIT_CEILING)).max(0.0)
    }
}

/// Load score from an observed load fraction.
pub fn load_score(observed: f64) -> f64 {
    (100.0 * (1.0 - observed)).clamp(0.0, 100.0)
}

/// Latency score from a distance in kilometres.
pub fn latency_score(distance_km: f64) -> f64 {
    (100.0 * (1.0 - distance_km / LATENCY_ZERO_KM)).clamp(0.0, 100.0)
}

/// Cost score from a unit price and the pool's cheapest unit price.
pub fn cost_score(unit_price: f64, reference: f64) -> f64 {
    if !unit_price.is_finite() || unit_price <= 0.0 {
        if unit_price == 0.0 { 100.0 } else { 0.0 }
    } else if !reference.is_finite() {
        100.0
    } else {
        (100.0 * reference / unit_price).clamp(0.0, 100.0)
    }
}

/// Health score from heartbeat age and recent failures.
pub fn health_score(heartbeat_age: Option<Duration>, recent_failures: u32) -> f64 {
    let freshness = match heartbeat_age {
        None => 50.0,
        Some(age) if age <= HEARTBEAT_FRESH => 100.0,
        Some(age) if age >= HEARTBEAT_STALE => 0.0,
        Some(age) => {
            let span = (HEARTBEAT_STALE - HEARTBEAT_FRESH).as_secs_f64();
            100.0 * (1.0 - (age - HEARTBEAT_FRESH).as_secs_f64() / span)
        }
    };
    freshness * (1.0 - 0.2 * f64::from(recent_failures.min(5)))
}

/// Where latency is measured from: the requested location, else the first preferred
/// region, else the pool's first region.
fn reference_location(
    snapshot: &Snapshot,
    deployment: &PendingDeployment,
    pool: Option<usize>,
) -> Option<super::model::Location> {
    deployment.location.or_else(|| {
        deployment
            .regions
            .first()
            .or_else(|| pool.and_then(|p| snapshot.pools()[p].regions.first()))
            .and_then(|r| snapshot.region_location(r))
    })
}

/// Scores a deployment on a droplet that does not exist yet (a planned new droplet) with
/// the same formulas; health counts as fresh and load as the requests before it.
pub fn score_new_droplet(
    snapshot: &Snapshot,
    deployment: &PendingDeployment,
    region: &str,
    allocatable: &Resources,
    used_after: &Resources,
    monthly_usd: f64,
) -> (f64, FactorScores) {
    let pool = snapshot.pool_position(&deployment.pool);
    let weights = snapshot.weights_for(deployment.weights.as_ref(), pool);
    let target = pool
        .map(|p| snapshot.pools()[p].target_utilization)
        .unwrap_or(0.8);
    let reference_price = pool
        .map(|p| snapshot.pool_reference_unit_price[p])
        .unwrap_or(snapshot.global_reference_unit_price);
    let before = used_after.minus(deployment.request);
    let latency = match (
        reference_location(snapshot, deployment, pool),
        snapshot.region_location(region),
    ) {
        (Some(a), Some(b)) => latency_score(a.distance_km(&b)),
        (Some(_), None) => 0.0,
        (None, _) => 100.0,
    };
    let scores = FactorScores {
        resources: fit_score(used_after.dominant_share_of(allocatable), target),
        load: load_score(before.dominant_share_of(allocatable)),
        latency,
        cost: cost_score(
            super::snapshot::unit_price(monthly_usd, allocatable),
            reference_price,
        ),
        health: 100.0,
    };
    (weighted(&weights, &scores), scores)
}

fn weighted(weights: &super::model::Weights, scores: &FactorScores) -> f64 {
    weighted_sum(weights, scores) / weights.total()
}

/// The weighted total before normalisation: the same positive divisor for every droplet of
/// one decision, so droplets are ranked on this and only the kept ones are divided.
fn weighted_sum(weights: &super::model::Weights, scores: &FactorScores) -> f64 {
    weights.resources * scores.resources
        + weights.load * scores.load
        + weights.latency * scores.latency
        + weights.cost * scores.cost
        + weights.health * scores.health
}

/// Scores `deployment` against every droplet of `snapshot`, with `used[i]` the resources
/// already taken on droplet `i` (confirmed and assumed placements).
pub fn choose_droplet(
    snapshot: &Snapshot,
    used: &[Resources],
    deployment: &PendingDeployment,
) -> Decision {
    let (namespace, _) = split_key(&deployment.key);
    let ns = snapshot.namespace_position(namespace);
    let pool = snapshot.pool_position(&deployment.pool);
    let weights = snapshot.weights_for(deployment.weights.as_ref(), pool);
    let pool_ref = snapshot.pools();
    let target = pool.map(|p| pool_ref[p].target_utilization).unwrap_or(0.8);
    let min_score = pool.map(|p| pool_ref[p].min_score).unwrap_or(0.0);
    let pinned = deployment
        .pin
        .as_deref()
        .map(|name| snapshot.droplet_position(namespace, name).unwrap_or(NONE));
    let reference_price = pool
        .map(|p| snapshot.pool_reference_unit_price[p])
        .unwrap_or(snapshot.global_reference_unit_price);
    let reference_location = reference_location(snapshot, deployment, pool);
    let latency_by_region: Vec<f64> = (0..snapshot.region_count())
        .map(|r| match (reference_location, snapshot.location_at(r)) {
            (Some(a), Some(b)) => latency_score(a.distance_km(&b)),
            (Some(_), None) => 0.0,
            (None, _) => 100.0,
        })
        .collect();

    let mut rejections = Rejections::default();
    let mut top: [(f64, usize, FactorScores); RUNNERS_UP + 1] =
        [(f64::NEG_INFINITY, NONE, FactorScores::default()); RUNNERS_UP + 1];
    let mut pinned_unusable = false;
    let droplets = snapshot.droplets();
    // Usage not aligned with the snapshot (an empty slice) means "as the droplets report".
    let used = if used.len() == droplets.len() {
        used
    } else {
        snapshot.reported_usage()
    };
    let has_selector = !deployment.selector.is_empty();
    let ns = u32::try_from(ns).unwrap_or(NONE32);
    let pool32 = pool.map(|p| u32::try_from(p).unwrap_or(NONE32));
    let region_allowed = pool.map(|p| snapshot.pool_region_allowed[p].as_slice());
    // The filter and the score read only the compact hot fields (and the labels when there
    // is a selector), in the order documented in docs/scheduler.md.
    for (i, h) in snapshot.hot.iter().enumerate() {
        if h.namespace != ns {
            rejections.other_pool += 1;
            continue;
        }
        if let Some(p) = pinned {
            if p != i {
                rejections.not_pinned += 1;
                continue;
            }
        } else if h.pool != NONE32 && Some(h.pool) != pool32 {
            rejections.other_pool += 1;
            continue;
        }
        let is_pin = pinned.is_some();
        if let Some(allowed) = region_allowed
            && !is_pin
            && !allowed[h.region as usize]
        {
            rejections.region_not_allowed += 1;
            continue;
        }
        match h.gate {
            Gate::Open => {}
            Gate::NotReady => {
                rejections.not_ready += 1;
                pinned_unusable |= is_pin;
                continue;
            }
            Gate::Unhealthy => {
                rejections.unhealthy += 1;
                pinned_unusable |= is_pin;
                continue;
            }
            Gate::Cordoned => {
                rejections.cordoned += 1;
                pinned_unusable |= is_pin;
                continue;
            }
        }
        if has_selector && !selector_matches(&deployment.selector, &droplets[i].labels) {
            rejections.selector_mismatch += 1;
            pinned_unusable |= is_pin;
            continue;
        }
        let before = used[i];
        let after = before.plus(deployment.request);
        if let Some(kind) = after.first_shortfall(&h.allocatable) {
            rejections.insufficient(kind);
            pinned_unusable |= is_pin;
            continue;
        }
        let observed = if h.observed_load.is_nan() {
            before.dominant_share_of(&h.allocatable)
        } else {
            h.observed_load
        };
        let scores = FactorScores {
            resources: fit_score(after.dominant_share_of(&h.allocatable), target),
            load: load_score(observed),
            latency: latency_by_region[h.region as usize],
            cost: cost_score(h.unit_price, reference_price),
            health: h.health,
        };
        let total = weighted_sum(&weights, &scores);
        // Insert into the small sorted top list; strict `>` keeps the earlier (name-ordered)
        // droplet on ties.
        if total > top[RUNNERS_UP].0 {
            let mut pos = RUNNERS_UP;
            while pos > 0 && total > top[pos - 1].0 {
                top[pos] = top[pos - 1];
                pos -= 1;
            }
            top[pos] = (total, i, scores);
        }
    }

    let norm = weights.total();
    for entry in top.iter_mut().filter(|e| e.1 != NONE) {
        entry.0 /= norm;
    }
    let considered = droplets.len();
    let (best_score, best_index, breakdown) = top[0];
    if best_index == NONE {
        let mut reason = format!(
            "0/{considered} droplets available: {}",
            rejections.describe()
        );
        if let (Some(name), true) = (deployment.pin.as_deref(), pinned == Some(NONE)) {
            reason = format!("pinned droplet {name} does not exist");
        } else if let Some(name) = deployment.pin.as_deref() {
            reason = format!(
                "pinned droplet {name} cannot take it: {}",
                rejections.describe()
            );
        }
        return Decision::NoFit(NoFit {
            reason,
            rejections,
            below_minimum: None,
            pinned_unusable: pinned_unusable || pinned == Some(NONE),
        });
    }
    let best_name = droplets[best_index].name.clone();
    if best_score < min_score {
        return Decision::NoFit(NoFit {
            reason: format!(
                "best droplet {best_name} scored {best_score:.1}, below the pool minimum {min_score:.1}"
            ),
            rejections,
            below_minimum: Some(Candidate {
                droplet: best_name,
                score: best_score,
            }),
            pinned_unusable: false,
        });
    }
    let runners_up: Vec<Candidate> = top[1..]
        .iter()
        .filter(|(_, i, _)| *i != NONE)
        .map(|(s, i, _)| Candidate {
            droplet: droplets[*i].name.clone(),
            score: *s,
        })
        .collect();
    let feasible_note = if rejections == Rejections::default() {
        String::new()
    } else {
        format!("; filtered out: {}", rejections.describe())
    };
    let reason = if pinned.is_some() {
        format!("pinned to {best_name}")
    } else {
        format!(
            "highest score {best_score:.1} of the droplets that fit (resources {:.0}, load {:.0}, latency {:.0}, cost {:.0}, health {:.0}){feasible_note}",
            breakdown.resources,
            breakdown.load,
            breakdown.latency,
            breakdown.cost,
            breakdown.health
        )
    };
    Decision::Place(Placement {
        droplet: best_name,
        droplet_index: best_index,
        score: best_score,
        breakdown,
        reason,
        runners_up,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, droplet, request};
    use crate::model::{DropletPhase, Location, Weights};

    fn snapshot(droplets: Vec<crate::FleetDroplet>) -> Snapshot {
        Snapshot::new(
            droplets,
            vec![fixtures::pool()],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap()
    }

    fn deployment(mem_mib: u64, cpu: u64) -> PendingDeployment {
        PendingDeployment::new("team-a/github", request(mem_mib, cpu), fixtures::POOL)
    }

    fn place(snap: &Snapshot, dep: &PendingDeployment) -> Placement {
        match choose_droplet(snap, snap.reported_usage(), dep) {
            Decision::Place(p) => p,
            Decision::NoFit(n) => panic!("expected a placement, got {}", n.reason),
        }
    }

    fn no_fit(snap: &Snapshot, dep: &PendingDeployment) -> NoFit {
        match choose_droplet(snap, snap.reported_usage(), dep) {
            Decision::NoFit(n) => n,
            Decision::Place(p) => panic!("expected no fit, got {}", p.droplet),
        }
    }

    fn only(weights: fn(&mut Weights)) -> Weights {
        let mut w = Weights {
            resources: 0.0,
            load: 0.0,
            latency: 0.0,
            cost: 0.0,
            health: 0.0,
        };
        weights(&mut w);
        w
    }

    #[test]
    fn fit_rises_to_the_target_holds_to_ninety_percent_then_falls_sharply() {
        assert_eq!(fit_score(0.0, 0.8), 0.0);
        assert!((fit_score(0.4, 0.8) - 50.0).abs() < 1e-9);
        assert_eq!(fit_score(0.8, 0.8), 100.0);
        assert_eq!(fit_score(0.9, 0.8), 100.0);
        assert!((fit_score(0.95, 0.8) - 50.0).abs() < 1e-9);
        assert!(fit_score(1.0, 0.8).abs() < 1e-9);
        assert_eq!(fit_score(1.1, 0.8), 0.0);
        // A target above the ceiling is capped, so 95 % never scores full.
        assert!(fit_score(0.95, 1.0) < 60.0);
    }

    #[test]
    fn load_latency_cost_and_health_factors_follow_their_formulas() {
        assert_eq!(load_score(0.0), 100.0);
        assert!((load_score(0.3) - 70.0).abs() < 1e-9);
        assert_eq!(load_score(1.5), 0.0);
        assert_eq!(latency_score(0.0), 100.0);
        assert!((latency_score(4000.0) - 60.0).abs() < 1e-9);
        assert_eq!(latency_score(15000.0), 0.0);
        assert_eq!(cost_score(10.0, 5.0), 50.0);
        assert_eq!(cost_score(5.0, 5.0), 100.0);
        assert_eq!(cost_score(f64::INFINITY, 5.0), 0.0);
        assert_eq!(health_score(Some(Duration::from_secs(10)), 0), 100.0);
        assert!((health_score(Some(Duration::from_secs(165)), 0) - 50.0).abs() < 1e-9);
        assert_eq!(health_score(Some(Duration::from_secs(400)), 0), 0.0);
        assert_eq!(health_score(None, 0), 50.0);
        assert!((health_score(Some(Duration::from_secs(1)), 2) - 60.0).abs() < 1e-9);
        assert_eq!(health_score(Some(Duration::from_secs(1)), 9), 0.0);
    }

    #[test]
    fn empty_pool_gives_no_fit_with_a_reason() {
        let snap = snapshot(vec![]);
        let n = no_fit(&snap, &deployment(512, 100));
        assert_eq!(n.reason, "0/0 droplets available: no droplets");
    }

    #[test]
    fn nothing_fits_names_the_short_resource_per_droplet() {
        let mut a = droplet("a", "s-1vcpu-1gb");
        a.unlisted_usage = a.allocatable;
        let b = droplet("b", "s-1vcpu-1gb");
        let snap = snapshot(vec![a, b]);
        // 1 GiB never fits in 512 MiB allocatable.
        let n = no_fit(&snap, &deployment(1024, 100));
        assert_eq!(n.rejections.insufficient_memory, 2);
        assert!(n.reason.contains("2 insufficient memory"), "{}", n.reason);
    }

    #[test]
    fn the_fit_factor_prefers_the_fuller_droplet_below_ninety_percent() {
        let mut half = droplet("half", "s-2vcpu-4gb");
        half.unlisted_usage = request(1536, 500);
        let empty = droplet("empty", "s-2vcpu-4gb");
        let snap = snapshot(vec![empty, half]);
        let p = place(&snap, &deployment(512, 100));
        assert_eq!(p.droplet, "half");
        assert_eq!(p.runners_up.len(), 1);
        assert_eq!(p.runners_up[0].droplet, "empty");
        assert!(p.breakdown.resources > 50.0);
    }

    #[test]
    fn a_droplet_pushed_above_ninety_percent_loses_to_one_with_room() {
        let mut nearly = droplet("nearly", "s-2vcpu-4gb");
        nearly.unlisted_usage = request(3000, 500); // 3000 + 512 of 3584 MiB = 98 %
        let mut some = droplet("some", "s-2vcpu-4gb");
        some.unlisted_usage = request(1024, 500);
        let snap = snapshot(vec![nearly, some]);
        assert_eq!(place(&snap, &deployment(512, 100)).droplet, "some");
    }

    #[test]
    fn ties_go_to_the_first_droplet_by_name() {
        let snap = snapshot(vec![
            droplet("b", "s-2vcpu-4gb"),
            droplet("a", "s-2vcpu-4gb"),
        ]);
        let p = place(&snap, &deployment(512, 100));
        assert_eq!(p.droplet, "a");
        assert_eq!(p.runners_up[0].score, p.score);
    }

    #[test]
    fn all_weight_on_latency_picks_the_nearest_region() {
        let mut far = droplet("a-far", "s-2vcpu-4gb");
        far.region = "ams3".into();
        let mut near = droplet("b-near", "s-2vcpu-4gb");
        near.region = "sfo3".into();
        let snap = snapshot(vec![far, near]);
        let mut dep = deployment(512, 100);
        dep.weights = Some(only(|w| w.latency = 1.0));
        dep.location = Some(Location {
            latitude: 37.0,
            longitude: -121.0,
        });
        let p = place(&snap, &dep);
        assert_eq!(p.droplet, "b-near");
        assert!((p.score - p.breakdown.latency).abs() < 1e-9);
    }

    #[test]
    fn all_weight_on_cost_picks_the_cheapest_unit_price() {
        // Per allocatable unit the big droplet is cheaper because the reserve is shared.
        let snap = snapshot(vec![
            droplet("a-small", "s-1vcpu-2gb"),
            droplet("b-big", "s-4vcpu-8gb"),
        ]);
        let mut dep = deployment(256, 100);
        dep.weights = Some(only(|w| w.cost = 1.0));
        let p = place(&snap, &dep);
        assert_eq!(p.droplet, "b-big");
        assert!(p.runners_up[0].score < p.score);
    }

    #[test]
    fn all_weight_on_load_and_health_use_observations() {
        let mut busy = droplet("a-busy", "s-2vcpu-4gb");
        busy.observed_load = Some(0.9);
        let mut idle = droplet("b-idle", "s-2vcpu-4gb");
        idle.observed_load = Some(0.1);
        idle.recent_failures = 3;
        let snap = snapshot(vec![busy, idle]);
        let mut dep = deployment(512, 100);
        dep.weights = Some(only(|w| w.load = 1.0));
        assert_eq!(place(&snap, &dep).droplet, "b-idle");
        dep.weights = Some(only(|w| w.health = 1.0));
        assert_eq!(place(&snap, &dep).droplet, "a-busy");
    }

    #[test]
    fn pool_weights_apply_unless_the_deployment_overrides_them() {
        let mut far = droplet("a-far", "s-2vcpu-4gb");
        far.region = "ams3".into();
        far.unlisted_usage = request(2048, 500);
        let near = droplet("b-near", "s-2vcpu-4gb");
        let mut pool = fixtures::pool();
        pool.weights = Some(only(|w| w.latency = 1.0));
        let snap = Snapshot::new(
            vec![far, near],
            vec![pool],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap();
        let mut dep = deployment(512, 100);
        assert_eq!(place(&snap, &dep).droplet, "b-near");
        dep.weights = Some(only(|w| w.resources = 1.0));
        assert_eq!(place(&snap, &dep).droplet, "a-far");
    }

    #[test]
    fn unhealthy_not_ready_cordoned_and_stale_droplets_are_filtered() {
        let mut sick = droplet("a", "s-2vcpu-4gb");
        sick.healthy = false;
        let mut booting = droplet("b", "s-2vcpu-4gb");
        booting.phase = DropletPhase::Provisioning;
        let mut cordoned = droplet("c", "s-2vcpu-4gb");
        cordoned.cordoned = true;
        let mut stale = droplet("d", "s-2vcpu-4gb");
        stale.heartbeat_age = Some(Duration::from_secs(600));
        let mut draining = droplet("e", "s-2vcpu-4gb");
        draining.phase = DropletPhase::Draining;
        let snap = snapshot(vec![sick, booting, cordoned, stale, draining]);
        let n = no_fit(&snap, &deployment(512, 100));
        assert_eq!(n.rejections.unhealthy, 2);
        assert_eq!(n.rejections.not_ready, 2);
        assert_eq!(n.rejections.cordoned, 1);
    }

    #[test]
    fn pinned_droplet_full_is_reported_and_not_replaced_by_another() {
        let mut pinned = droplet("pinned", "s-1vcpu-2gb");
        pinned.unlisted_usage = pinned.allocatable;
        let snap = snapshot(vec![pinned, droplet("other", "s-8vcpu-16gb")]);
        let mut dep = deployment(512, 100);
        dep.pin = Some("pinned".into());
        let n = no_fit(&snap, &dep);
        assert!(n.pinned_unusable);
        assert!(
            n.reason.starts_with("pinned droplet pinned cannot take it"),
            "{}",
            n.reason
        );
        dep.pin = Some("ghost".into());
        assert_eq!(
            no_fit(&snap, &dep).reason,
            "pinned droplet ghost does not exist"
        );
    }

    #[test]
    fn pin_wins_over_a_better_scoring_droplet() {
        let snap = snapshot(vec![
            droplet("a", "s-2vcpu-4gb"),
            droplet("b", "s-2vcpu-4gb"),
        ]);
        let mut dep = deployment(512, 100);
        dep.pin = Some("b".into());
        let p = place(&snap, &dep);
        assert_eq!(p.droplet, "b");
        assert_eq!(p.reason, "pinned to b");
    }

    #[test]
    fn selector_region_and_namespace_filters_apply() {
        let mut labelled = droplet("a", "s-2vcpu-4gb");
        labelled.labels.insert("tier".into(), "fast".into());
        let mut other_ns = droplet("b", "s-2vcpu-4gb");
        other_ns.namespace = "team-b".into();
        let mut wrong_region = droplet("c", "s-2vcpu-4gb");
        wrong_region.region = "lon1".into();
        let plain = droplet("d", "s-2vcpu-4gb");
        let snap = snapshot(vec![labelled, other_ns, wrong_region, plain]);
        let mut dep = deployment(512, 100);
        dep.selector.insert("tier".into(), "fast".into());
        let p = place(&snap, &dep);
        assert_eq!(p.droplet, "a");
        assert!(p.runners_up.is_empty());
        assert!(p.reason.contains("1 region not allowed"), "{}", p.reason);
        assert!(p.reason.contains("1 selector mismatch"), "{}", p.reason);
    }

    #[test]
    fn a_best_score_below_the_pool_minimum_is_no_fit() {
        let mut pool = fixtures::pool();
        pool.min_score = 99.0;
        let snap = Snapshot::new(
            vec![droplet("a", "s-2vcpu-4gb")],
            vec![pool],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap();
        let n = no_fit(&snap, &deployment(512, 100));
        assert_eq!(
            n.below_minimum.as_ref().map(|c| c.droplet.as_str()),
            Some("a")
        );
        assert!(n.reason.contains("below the pool minimum"));
    }

    #[test]
    fn assumed_usage_passed_in_counts_against_the_droplet() {
        let snap = snapshot(vec![droplet("a", "s-1vcpu-2gb")]);
        let used = vec![request(1024, 100)];
        // 1536 MiB allocatable, 1024 assumed: 768 MiB no longer fits.
        assert!(matches!(
            choose_droplet(&snap, &used, &deployment(768, 100)),
            Decision::NoFit(_)
        ));
        assert!(matches!(
            choose_droplet(&snap, snap.reported_usage(), &deployment(768, 100)),
            Decision::Place(_)
        ));
    }
}
