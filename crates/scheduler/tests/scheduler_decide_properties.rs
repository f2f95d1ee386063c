//! Property test: `choose_droplet` agrees with a naive re-statement of the filter and the scoring
//! rule: it only picks droplets that pass every filter, picks one with the highest score,
//! finds one whenever any droplet passes, and lists runners-up best first.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use scheduler::fixtures::{self, droplet, request};
use scheduler::{
    Decision, DropletPhase, FleetDroplet, PendingDeployment, Snapshot, Weights, choose_droplet,
};

const SIZES: [&str; 4] = ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"];
const REGIONS: [&str; 4] = ["nyc3", "sfo3", "ams3", "lon1"];

#[derive(Debug, Clone)]
struct DropletCase {
    size: usize,
    fill_pct: u64,
    region: usize,
    phase: u8,
    healthy: bool,
    cordoned: bool,
    labelled: bool,
    other_namespace: bool,
    heartbeat_s: Option<u64>,
    failures: u32,
    load: Option<f64>,
}

fn droplet_case() -> impl Strategy<Value = DropletCase> {
    (
        (0usize..4, 0u64..100, 0usize..4, 0u8..6),
        (
            prop::bool::weighted(0.9),
            prop::bool::weighted(0.1),
            any::<bool>(),
            prop::bool::weighted(0.1),
        ),
        (
            prop::option::of(0u64..400),
            0u32..4,
            prop::option::of(0.0f64..1.0),
        ),
    )
        .prop_map(
            |(
                (size, fill_pct, region, phase),
                (healthy, cordoned, labelled, other_namespace),
                (heartbeat_s, failures, load),
            )| DropletCase {
                size,
                fill_pct,
                region,
                phase,
                healthy,
                cordoned,
                labelled,
                other_namespace,
                heartbeat_s,
                failures,
                load,
            },
        )
}

fn build(i: usize, c: &DropletCase) -> FleetDroplet {
    let mut d = droplet(&format!("d{i:02}"), SIZES[c.size]);
    d.unlisted_usage = scheduler::Resources::new(
        d.allocatable.memory * c.fill_pct / 100,
        d.allocatable.cpu_millis * c.fill_pct / 100,
        0,
    );
    d.region = REGIONS[c.region].into();
    d.phase = if c.phase == 0 {
        DropletPhase::NotReady
    } else {
        DropletPhase::Ready
    };
    d.healthy = c.healthy;
    d.cordoned = c.cordoned;
    if c.labelled {
        d.labels.insert("tier".into(), "fast".into());
    }
    if c.other_namespace {
        d.namespace = "team-b".into();
    }
    d.heartbeat_age = c.heartbeat_s.map(Duration::from_secs);
    d.recent_failures = c.failures;
    d.observed_load = c.load;
    d
}

/// The filter as the docs state it (no pin in this test).
fn passes(d: &FleetDroplet, dep: &PendingDeployment, allowed_regions: &[String]) -> bool {
    d.namespace == "team-a"
        && allowed_regions.contains(&d.region)
        && d.phase == DropletPhase::Ready
        && d.healthy
        && d.heartbeat_age
            .is_none_or(|a| a <= Duration::from_secs(300))
        && !d.cordoned
        && dep.selector.iter().all(|(k, v)| d.labels.get(k) == Some(v))
        && d.used().plus(dep.request).fits_in(&d.allocatable)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn decide_picks_a_feasible_droplet_with_the_highest_score(
        cases in prop::collection::vec(droplet_case(), 0..12),
        mem in 128u64..3000,
        cpu in 50u64..2000,
        want_label in any::<bool>(),
        preferred in prop::option::of(0usize..3),
        weights in prop::option::of((0u8..5, 0u8..5, 0u8..5, 0u8..5, 1u8..5)),
    ) {
        let droplets: Vec<FleetDroplet> = cases.iter().enumerate().map(|(i, c)| build(i, c)).collect();
        let pool = fixtures::pool();
        let allowed = pool.regions.clone();
        let snap = Snapshot::new(droplets, vec![pool], fixtures::test_sizes(), fixtures::test_regions()).unwrap();
        let mut dep = PendingDeployment::new("team-a/x", request(mem, cpu), fixtures::POOL);
        if want_label {
            dep.selector = BTreeMap::from([("tier".to_string(), "fast".to_string())]);
        }
        dep.regions = preferred.map(|r| vec![REGIONS[r].to_string()]).unwrap_or_default();
        dep.weights = weights.map(|(a, b, c, d, e)| Weights {
            resources: f64::from(a),
            load: f64::from(b),
            latency: f64::from(c),
            cost: f64::from(d),
            health: f64::from(e),
        });
        let feasible: Vec<&FleetDroplet> = snap.droplets().iter().filter(|d| passes(d, &dep, &allowed)).collect();
        match choose_droplet(&snap, snap.reported_usage(), &dep) {
            Decision::Place(p) => {
                let chosen = &snap.droplets()[p.droplet_index];
                prop_assert_eq!(&chosen.name, &p.droplet);
                prop_assert!(passes(chosen, &dep, &allowed), "picked a filtered droplet {}", p.droplet);
                prop_assert!(p.runners_up.len() <= 3);
                let mut last = p.score;
                for r in &p.runners_up {
                    prop_assert!(r.score <= last + 1e-9);
                    last = r.score;
                    let d = snap.droplets().iter().find(|d| d.name == r.droplet).unwrap();
                    prop_assert!(passes(d, &dep, &allowed));
                }
                // No feasible droplet scores higher: score each one by pinning it in the same
                // snapshot (the cost reference depends on the pool's droplets).
                for d in &feasible {
                    let mut pinned = dep.clone();
                    pinned.pin = Some(d.name.clone());
                    if let Decision::Place(q) = choose_droplet(&snap, snap.reported_usage(), &pinned) {
                        // A pin skips only the pool and region checks, so the factor scores are
                        // the same as in the unpinned decision.
                        prop_assert!(q.score <= p.score + 1e-9, "{} scores {} > {}", d.name, q.score, p.score);
                    } else {
                        prop_assert!(false, "feasible droplet {} refused when pinned", d.name);
                    }
                }
                prop_assert!(p.score.is_finite() && (0.0..=100.0 + 1e-9).contains(&p.score));
            }
            Decision::NoFit(n) => {
                prop_assert!(feasible.is_empty(), "no fit although {} passes: {}", feasible[0].name, n.reason);
            }
        }
    }
}
