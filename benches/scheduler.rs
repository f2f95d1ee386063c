//! Scheduler benchmarks: speed (criterion) and packing quality (a printed report with the
//! baselines side by side).
//!
//! Run: `cargo bench -p mcp-droplet-operator --bench scheduler -- --warm-up-time 1 --measurement-time 3`
//! Quality only: `SCHEDULER_BENCH=quality cargo bench -p mcp-droplet-operator --bench scheduler`
//! Speed only: `SCHEDULER_BENCH=speed cargo bench ...`; the ledger's `place` path only:
//! `SCHEDULER_BENCH=ledger cargo bench ...`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use mcp_droplet_operator::catalog;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scheduler::analysis::{fractional_cost_lower_bound, smallest_request};
use scheduler::exact::{first_fit_decreasing, lower_bound_bins, optimal_bins};
use scheduler::{
    DEFAULT_SYSTEM_RESERVE, DropletPhase, FleetDroplet, MIB, PackingObjective, PendingDeployment,
    PlacedDeployment, Pool, Resources, SizeOffer, Snapshot, cheapest_size_that_fits,
    choose_droplet, plan_batch, plan_batch_for, plan_consolidation, summarize,
};
use scheduler::{Decision, Ledger};

const POOL: &str = "bench/default";
const REGIONS: [&str; 6] = ["nyc3", "sfo3", "ams3", "fra1", "lon1", "sgp1"];

fn basic_sizes() -> Vec<String> {
    catalog::default_pool_sizes()
        .into_iter()
        .map(String::from)
        .collect()
}

fn pool(regions: &[&str], sizes: Vec<String>) -> Pool {
    Pool::new(POOL, regions.iter().map(|r| r.to_string()).collect(), sizes)
}

/// An MCP-shaped request: memory tiers 256Mi/512Mi/1Gi/2Gi (40/30/20/10 %), CPU tiers
/// 250m/500m/1000m (50/35/15 %).
fn tier_request(rng: &mut StdRng) -> Resources {
    let m = rng.random_range(0..100);
    let memory = match m {
        0..40 => 256,
        40..70 => 512,
        70..90 => 1024,
        _ => 2048,
    } * MIB;
    let c = rng.random_range(0..100);
    let cpu = match c {
        0..50 => 250,
        50..85 => 500,
        _ => 1000,
    };
    Resources::new(memory, cpu, 0)
}

/// A harder mix: memory uniform 128Mi..3Gi, CPU uniform 100m..2000m.
fn uniform_request(rng: &mut StdRng) -> Resources {
    Resources::new(
        rng.random_range(128..3072) * MIB,
        rng.random_range(100..2000),
        0,
    )
}

fn fleet(n: usize, rng: &mut StdRng, sizes: &[SizeOffer]) -> Vec<FleetDroplet> {
    let choices: Vec<&SizeOffer> = sizes
        .iter()
        .filter(|s| ["s-2vcpu-4gb", "s-4vcpu-8gb", "s-8vcpu-16gb"].contains(&s.slug.as_str()))
        .collect();
    (0..n)
        .map(|i| {
            let size = choices[rng.random_range(0..choices.len())];
            let allocatable = size.allocatable(&DEFAULT_SYSTEM_RESERVE);
            let fill = rng.random_range(0.0..0.7);
            FleetDroplet {
                namespace: "bench".into(),
                name: format!("d{i:05}"),
                pool: POOL.into(),
                region: REGIONS[rng.random_range(0..REGIONS.len())].into(),
                size: size.slug.clone(),
                labels: Default::default(),
                allocatable,
                unlisted_usage: Resources::new(
                    (allocatable.memory as f64 * fill) as u64,
                    (allocatable.cpu_millis as f64 * fill) as u64,
                    0,
                ),
                deployments: Vec::new(),
                phase: if rng.random_range(0..50) == 0 {
                    DropletPhase::NotReady
                } else {
                    DropletPhase::Ready
                },
                healthy: true,
                cordoned: false,
                observed_load: Some(rng.random_range(0.0..0.9)),
                heartbeat_age: Some(Duration::from_secs(rng.random_range(0..120))),
                recent_failures: rng.random_range(0..3),
                hourly_usd: size.hourly_usd,
                monthly_usd: size.monthly_usd,
                since_last_change: Some(Duration::from_secs(3600)),
                do_not_disrupt: false,
            }
        })
        .collect()
}

fn fleet_snapshot(n: usize, seed: u64) -> Snapshot {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = catalog::size_offers();
    let droplets = fleet(n, &mut rng, &sizes);
    Snapshot::new(
        droplets,
        vec![pool(&REGIONS, basic_sizes())],
        sizes,
        catalog::region_locations(),
    )
    .expect("valid bench snapshot")
}

fn pending(n: usize, seed: u64) -> Vec<PendingDeployment> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let mut d = PendingDeployment::new(format!("bench/p{i}"), tier_request(&mut rng), POOL);
            d.regions = vec![REGIONS[rng.random_range(0..REGIONS.len())].into()];
            d
        })
        .collect()
}

/// A consolidation fleet: under-used droplets with placed deployments.
fn consolidation_snapshot(n: usize, seed: u64) -> Snapshot {
    let mut rng = StdRng::seed_from_u64(seed);
    let sizes = catalog::size_offers();
    let mut droplets = fleet(n, &mut rng, &sizes);
    for d in &mut droplets {
        d.unlisted_usage = Resources::ZERO;
        d.phase = DropletPhase::Ready;
        let count = rng.random_range(1..5);
        for k in 0..count {
            let r = tier_request(&mut rng);
            if !d.used().plus(r).fits_in(&d.allocatable) {
                break;
            }
            d.deployments.push(PlacedDeployment {
                key: format!("bench/{}-{k}", d.name),
                request: r,
                reported: true,
                do_not_disrupt: rng.random_range(0..20) == 0,
                pinned: false,
            });
        }
    }
    // The default budget (10 %) lets the multi-droplet search consider 50 candidates.
    let p = pool(&REGIONS, basic_sizes());
    Snapshot::new(droplets, vec![p], sizes, catalog::region_locations())
        .expect("valid bench snapshot")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

// ---------------------------------------------------------------------------------------
// Baseline packers over virtual droplets of the largest allowed size; each bin is then
// shrunk to the cheapest size that holds it, exactly as the scheduler does.

#[derive(Clone, Copy)]
enum Baseline {
    FirstFit,
    Random,
    Spread,
}

fn pack_baseline(
    items: &[Resources],
    cap: &Resources,
    how: Baseline,
    rng: &mut StdRng,
) -> Vec<Resources> {
    let mut bins: Vec<Resources> = Vec::new();
    for item in items {
        let fitting: Vec<usize> = (0..bins.len())
            .filter(|&b| bins[b].plus(*item).fits_in(cap))
            .collect();
        let chosen = match how {
            Baseline::FirstFit => fitting.first().copied(),
            Baseline::Random => {
                if fitting.is_empty() {
                    None
                } else {
                    Some(fitting[rng.random_range(0..fitting.len())])
                }
            }
            Baseline::Spread => fitting.iter().copied().min_by(|&a, &b| {
                bins[a]
                    .dominant_share_of(cap)
                    .total_cmp(&bins[b].dominant_share_of(cap))
            }),
        };
        match chosen {
            Some(b) => bins[b] = bins[b].plus(*item),
            None => bins.push(*item),
        }
    }
    bins
}

fn bins_cost(bins: &[Resources], sizes: &[SizeOffer], allowed: &[String], region: &str) -> f64 {
    bins.iter()
        .map(|b| {
            cheapest_size_that_fits(sizes, allowed, region, &DEFAULT_SYSTEM_RESERVE, b)
                .map_or(f64::INFINITY, |s| s.monthly_usd)
        })
        .sum()
}

/// The cheapest multiset of droplets (integral counts, at most `budget` of them) whose
/// allocatable covers `total`, ignoring how the requests split: a lower bound on the cost of
/// any plan that uses at most `budget` droplets. Sizes that cannot hold `smallest` are out.
fn count_limited_cost_bound(
    total: &Resources,
    smallest: &Resources,
    options: &[(Resources, f64)],
    budget: usize,
) -> f64 {
    let mut opts: Vec<(Resources, f64)> = options
        .iter()
        .copied()
        .filter(|(a, _)| smallest.fits_in(a))
        .collect();
    opts.sort_by(|a, b| b.1.total_cmp(&a.1));
    fn go(
        opts: &[(Resources, f64)],
        k: usize,
        need: (i64, i64),
        left: usize,
        cost: f64,
        best: &mut f64,
    ) {
        if need.0 <= 0 && need.1 <= 0 {
            *best = best.min(cost);
            return;
        }
        if k == opts.len() || left == 0 {
            return;
        }
        // Optimistic completion at the best remaining price per unit of each resource.
        let per = |f: fn(&Resources) -> u64| {
            opts[k..]
                .iter()
                .filter(|(a, _)| f(a) > 0)
                .map(|(a, p)| p / f(a) as f64)
                .fold(f64::INFINITY, f64::min)
        };
        let opt = (need.0.max(0) as f64 * per(|a| a.memory))
            .max(need.1.max(0) as f64 * per(|a| a.cpu_millis));
        if cost + opt >= *best - 1e-9 {
            return;
        }
        let (a, p) = opts[k];
        let most = [(need.0, a.memory), (need.1, a.cpu_millis)]
            .iter()
            .filter(|(n, c)| *n > 0 && *c > 0)
            .map(|(n, c)| (*n as u64).div_ceil(*c) as usize)
            .max()
            .unwrap_or(0)
            .min(left);
        for x in (0..=most).rev() {
            go(
                opts,
                k + 1,
                (
                    need.0 - (x as u64 * a.memory) as i64,
                    need.1 - (x as u64 * a.cpu_millis) as i64,
                ),
                left - x,
                cost + x as f64 * p,
                best,
            );
        }
    }
    let mut best = f64::INFINITY;
    go(
        &opts,
        0,
        (total.memory as i64, total.cpu_millis as i64),
        budget,
        0.0,
        &mut best,
    );
    best
}

struct Quality {
    name: &'static str,
    bin_ratios: Vec<f64>,
    cost_eff: Vec<f64>,
}

impl Quality {
    fn new(name: &'static str) -> Self {
        Quality {
            name,
            bin_ratios: Vec::new(),
            cost_eff: Vec::new(),
        }
    }

    fn row(&mut self) -> String {
        self.bin_ratios.sort_by(f64::total_cmp);
        self.cost_eff.sort_by(f64::total_cmp);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        format!(
            "| {:<26} | {:>6.3} | {:>6.3} | {:>6.3} | {:>6.3} | {:>6.3} |",
            self.name,
            mean(&self.bin_ratios),
            percentile(&self.bin_ratios, 95.0),
            percentile(&self.bin_ratios, 100.0),
            mean(&self.cost_eff),
            percentile(&self.cost_eff, 5.0),
        )
    }
}

fn quality_over_mixes(label: &str, gen_request: fn(&mut StdRng) -> Resources, mixes: usize) {
    let sizes = catalog::size_offers();
    let allowed = basic_sizes();
    let region = "nyc3";
    let p = pool(&[region], allowed.clone());
    let cap = allowed
        .iter()
        .filter_map(|s| sizes.iter().find(|z| &z.slug == s))
        .map(|s| s.allocatable(&DEFAULT_SYSTEM_RESERVE))
        .max_by_key(|a| (a.memory, a.cpu_millis))
        .unwrap_or_default();
    let options: Vec<(Resources, f64)> = allowed
        .iter()
        .filter_map(|s| sizes.iter().find(|z| &z.slug == s))
        .map(|s| (s.allocatable(&DEFAULT_SYSTEM_RESERVE), s.monthly_usd))
        .collect();
    let snapshot = Snapshot::new(
        Vec::new(),
        vec![p],
        sizes.clone(),
        catalog::region_locations(),
    )
    .expect("valid snapshot");
    let mut rng = StdRng::seed_from_u64(7);
    let mut ours = Quality::new("ours (plan_batch)");
    let mut cheapest = Quality::new("ours, LowestCost objective");
    // Cost efficiency no plan can beat while using at most 1.11 x LB droplets.
    let mut capped_ceiling: Vec<f64> = Vec::new();
    let mut lowest_cost_time = Duration::ZERO;
    let mut ff = Quality::new("first-fit (arrival order)");
    let mut random = Quality::new("random fit");
    let mut spread = Quality::new("spread (least allocated)");
    for m in 0..mixes {
        let n = rng.random_range(20..400);
        let items: Vec<Resources> = (0..n).map(|_| gen_request(&mut rng)).collect();
        let lb = lower_bound_bins(&items, &cap) as f64;
        let total = items.iter().fold(Resources::ZERO, |a, r| a.plus(*r));
        let smallest = smallest_request(items.iter().copied());
        let cost_lb = fractional_cost_lower_bound(&total, &smallest, &options);
        let deps: Vec<PendingDeployment> = items
            .iter()
            .enumerate()
            .map(|(i, r)| PendingDeployment::new(format!("bench/m{m}-{i}"), *r, POOL))
            .collect();
        let plan = plan_batch(&snapshot, &[], &deps);
        let summary = summarize(&snapshot, &plan);
        ours.bin_ratios.push(summary.droplets_used as f64 / lb);
        ours.cost_eff.push(cost_lb / summary.monthly_cost_usd);
        let started = Instant::now();
        let plan = plan_batch_for(&snapshot, &[], &deps, PackingObjective::LowestCost);
        lowest_cost_time += started.elapsed();
        let summary = summarize(&snapshot, &plan);
        cheapest.bin_ratios.push(summary.droplets_used as f64 / lb);
        cheapest.cost_eff.push(cost_lb / summary.monthly_cost_usd);
        let budget = (1.11 * lb + 1e-9).floor() as usize;
        capped_ceiling
            .push(cost_lb / count_limited_cost_bound(&total, &smallest, &options, budget));
        for (q, how) in [
            (&mut ff, Baseline::FirstFit),
            (&mut random, Baseline::Random),
            (&mut spread, Baseline::Spread),
        ] {
            let bins = pack_baseline(&items, &cap, how, &mut rng);
            q.bin_ratios.push(bins.len() as f64 / lb);
            q.cost_eff
                .push(cost_lb / bins_cost(&bins, &sizes, &allowed, region));
        }
    }
    println!(
        "\n### {mixes} generated mixes, {label} (20-400 deployments each, basic sizes, one region)\n"
    );
    println!("| packer | used/LB mean | p95 | max | cost eff. mean | p5 |");
    println!("|---|---|---|---|---|---|");
    for q in [&mut ours, &mut cheapest, &mut ff, &mut random, &mut spread] {
        println!("{}", q.row());
    }
    capped_ceiling.sort_by(f64::total_cmp);
    println!(
        "\nceiling of cost efficiency with at most 1.11 x LB droplets (integral droplet counts, requests divisible): mean {:.3}, p5 {:.3}, max {:.3}; LowestCost planning took {:.1} ms per mix",
        capped_ceiling.iter().sum::<f64>() / capped_ceiling.len() as f64,
        percentile(&capped_ceiling, 5.0),
        percentile(&capped_ceiling, 100.0),
        lowest_cost_time.as_secs_f64() * 1e3 / mixes as f64
    );
}

fn quality_small_cases(cases: usize) {
    // One size so "droplets" means the same thing for every packer and the optimum.
    let sizes = catalog::size_offers();
    let allowed = vec!["s-4vcpu-8gb".to_string()];
    let snapshot = Snapshot::new(
        Vec::new(),
        vec![pool(&["nyc3"], allowed.clone())],
        sizes.clone(),
        catalog::region_locations(),
    )
    .expect("valid snapshot");
    let cap = sizes
        .iter()
        .find(|s| s.slug == "s-4vcpu-8gb")
        .map(|s| s.allocatable(&DEFAULT_SYSTEM_RESERVE))
        .unwrap_or_default();
    let mut rng = StdRng::seed_from_u64(11);
    let mut ratios: [Vec<f64>; 5] = Default::default();
    let (mut unproven, mut optimal_hits) = (0, 0);
    let started = Instant::now();
    for c in 0..cases {
        let n = rng.random_range(10..=30);
        let items: Vec<Resources> = (0..n)
            .map(|_| {
                if c % 2 == 0 {
                    tier_request(&mut rng)
                } else {
                    uniform_request(&mut rng)
                }
            })
            .collect();
        let opt = optimal_bins(&items, &cap, 2_000_000);
        if !opt.proven {
            unproven += 1;
            continue;
        }
        let deps: Vec<PendingDeployment> = items
            .iter()
            .enumerate()
            .map(|(i, r)| PendingDeployment::new(format!("bench/c{c}-{i}"), *r, POOL))
            .collect();
        let used = plan_batch(&snapshot, &[], &deps).new_droplets.len();
        if used == opt.bins {
            optimal_hits += 1;
        }
        ratios[0].push(used as f64 / opt.bins as f64);
        for (k, how) in [Baseline::FirstFit, Baseline::Random, Baseline::Spread]
            .into_iter()
            .enumerate()
        {
            let bins = pack_baseline(&items, &cap, how, &mut rng).len();
            ratios[k + 1].push(bins as f64 / opt.bins as f64);
        }
        ratios[4].push(first_fit_decreasing(&items, &cap) as f64 / opt.bins as f64);
    }
    println!(
        "\n### {cases} small cases (10-30 deployments, one size s-4vcpu-8gb) against the exact optimum\n"
    );
    println!(
        "{} proven optimal, {unproven} skipped (search limit); ours hit the optimum in {optimal_hits}; {:.1} s\n",
        ratios[0].len(),
        started.elapsed().as_secs_f64()
    );
    println!("| packer | used/OPT mean | p95 | max |");
    println!("|---|---|---|---|");
    for (name, v) in [
        "ours (plan_batch: FFD, exact up to 30)",
        "first-fit",
        "random fit",
        "spread",
        "FFD alone (no exact step)",
    ]
    .iter()
    .zip(ratios.iter_mut())
    {
        v.sort_by(f64::total_cmp);
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        println!(
            "| {name} | {mean:.3} | {:.3} | {:.3} |",
            percentile(v, 95.0),
            percentile(v, 100.0)
        );
    }
}

fn latency_report() {
    decide_report();
    batch_report();
}

/// `choose_droplet` alone over a precomputed usage vector, for comparison with the ledger.
fn decide_report() {
    for n in [1000usize, 5000] {
        let snap = fleet_snapshot(n, 1);
        let used = snap.reported_usage();
        let deps = pending(2000, 2);
        let mut samples = Vec::with_capacity(20_000);
        let started = Instant::now();
        for i in 0..20_000 {
            let t = Instant::now();
            black_box(choose_droplet(&snap, used, &deps[i % deps.len()]));
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let total = started.elapsed().as_secs_f64();
        samples.sort_by(f64::total_cmp);
        println!(
            "choose_droplet over {n} droplets: {:.0} decisions/s, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            20_000.0 / total,
            percentile(&samples, 50.0),
            percentile(&samples, 99.0),
            percentile(&samples, 100.0)
        );
    }
}

fn batch_report() {
    let snap = fleet_snapshot(1000, 3);
    let deps = pending(10_000, 4);
    let started = Instant::now();
    let plan = plan_batch(&snap, &[], &deps);
    println!(
        "plan_batch 10,000 deployments onto 1,000 droplets: {:.3} s ({} placed on existing, {} new droplets, {} unschedulable)",
        started.elapsed().as_secs_f64(),
        plan.placements.len()
            - plan
                .new_droplets
                .iter()
                .map(|d| d.deployments.len())
                .sum::<usize>(),
        plan.new_droplets.len(),
        plan.unschedulable.len()
    );
    let started = Instant::now();
    let plan = plan_batch_for(&snap, &[], &deps, PackingObjective::LowestCost);
    println!(
        "plan_batch_for(LowestCost) 10,000 deployments onto 1,000 droplets: {:.3} s ({} new droplets, {:.0} USD/month new; default: {:.0} USD/month new)",
        started.elapsed().as_secs_f64(),
        plan.new_droplets.len(),
        plan.new_droplets.iter().map(|d| d.monthly_usd).sum::<f64>(),
        plan_batch(&snap, &[], &deps)
            .new_droplets
            .iter()
            .map(|d| d.monthly_usd)
            .sum::<f64>()
    );
    let snap = consolidation_snapshot(500, 5);
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().expect("timestamp");
    let started = Instant::now();
    let plan = plan_consolidation(&snap, &[], now);
    println!(
        "consolidation pass over 500 droplets: {:.3} s ({} actions, {} simulations, {} snapshot built)",
        started.elapsed().as_secs_f64(),
        plan.actions.len(),
        plan.simulations,
        plan.snapshots_built
    );
}

/// The controllers' path: `Ledger::place` (expire, reconcile with the snapshot, decide,
/// assume) against one snapshot, the clock advancing one second per call so assumptions
/// (TTL 60 s) keep expiring and about 60 are live at any time.
struct LedgerRun {
    snap: Snapshot,
    deps: Vec<PendingDeployment>,
    ledger: Ledger,
    calls: usize,
}

impl LedgerRun {
    fn new(n: usize) -> Self {
        let snap = fleet_snapshot(n, 1);
        let mut ledger = Ledger::new(Duration::from_secs(60));
        ledger.sync_snapshot(&snap);
        LedgerRun {
            snap,
            deps: pending(2000, 2),
            ledger,
            calls: 0,
        }
    }

    fn place(&mut self) -> Decision {
        let dep = &self.deps[self.calls % self.deps.len()];
        let now = jiff::Timestamp::from_second(1_800_000_000 + self.calls as i64)
            .expect("timestamp in range");
        self.calls += 1;
        self.ledger
            .place(&self.snap, dep, now)
            .expect("no deployment is placed twice within its TTL")
    }
}

fn ledger_report() {
    for n in [1000usize, 5000] {
        let mut run = LedgerRun::new(n);
        for _ in 0..2000 {
            black_box(run.place());
        }
        let mut samples = Vec::with_capacity(20_000);
        let started = Instant::now();
        for _ in 0..20_000 {
            let t = Instant::now();
            black_box(run.place());
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let total = started.elapsed().as_secs_f64();
        samples.sort_by(f64::total_cmp);
        // A new snapshot (the informer saw a change) is synced once, on its first use.
        let fresh = fleet_snapshot(n, 9);
        let t = Instant::now();
        run.ledger.sync_snapshot(&fresh);
        let sync = t.elapsed().as_secs_f64() * 1e3;
        println!(
            "Ledger::place over {n} droplets: {:.0} decisions/s, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs; syncing a new snapshot: {sync:.2} ms",
            20_000.0 / total,
            percentile(&samples, 50.0),
            percentile(&samples, 99.0),
            percentile(&samples, 100.0)
        );
    }
}

fn speed(c: &mut Criterion) {
    for n in [1000usize, 5000] {
        let mut run = LedgerRun::new(n);
        let mut group = c.benchmark_group("ledger_place");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{n}_droplets"), |b| {
            b.iter(|| black_box(run.place()))
        });
        group.finish();
    }
    for n in [1000usize, 5000] {
        let snap = fleet_snapshot(n, 1);
        let used = snap.reported_usage();
        let deps = pending(2000, 2);
        let mut group = c.benchmark_group("choose_droplet");
        group.throughput(Throughput::Elements(1));
        let mut i = 0;
        group.bench_function(format!("{n}_droplets_five_factors"), |b| {
            b.iter(|| {
                i = (i + 1) % deps.len();
                black_box(choose_droplet(&snap, used, &deps[i]))
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    let snap = fleet_snapshot(1000, 3);
    let deps = pending(10_000, 4);
    group.bench_function("10000_deployments_onto_1000_droplets", |b| {
        b.iter(|| black_box(plan_batch(&snap, &[], &deps)))
    });
    let snap = consolidation_snapshot(500, 5);
    let now: jiff::Timestamp = "2026-11-25T12:00:00Z".parse().expect("timestamp");
    group.bench_function("consolidation_pass_500_droplets", |b| {
        b.iter_batched(
            || (),
            |_| black_box(plan_consolidation(&snap, &[], now)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn main() {
    let which = std::env::var("SCHEDULER_BENCH").unwrap_or_default();
    if which == "ledger" {
        for _ in 0..2 {
            ledger_report();
            decide_report();
        }
        return;
    }
    if which != "speed" {
        println!("## Scheduler quality report");
        ledger_report();
        latency_report();
        quality_over_mixes("MCP tier requests", tier_request, 1000);
        quality_over_mixes("uniform requests", uniform_request, 1000);
        quality_small_cases(200);
    }
    if which != "quality" {
        let mut c = Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args();
        speed(&mut c);
        c.final_summary();
    }
}
