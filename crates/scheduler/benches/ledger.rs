//! The scheduler on its own, as the controllers call it: `Ledger::place` (expire, reconcile
//! with the snapshot, decide, assume) at 1,000 and 5,000 droplets, `choose_droplet` alone for
//! comparison, and the packer's droplet count against the lower bound on generated mixes.
//! Uses the test sizes (the basic family's capacities and prices), so it builds without the
//! operator. A timed loop, one thread; see BENCHMARKS.md ("Scheduler") for the command.

use std::hint::black_box;
use std::time::{Duration, Instant};

use scheduler::fixtures::{self, test_regions, test_sizes};
use scheduler::{
    DEFAULT_SYSTEM_RESERVE, DropletPhase, FleetDroplet, Ledger, MIB, PendingDeployment, Pool,
    Resources, Snapshot, choose_droplet, plan_batch, summarize,
};

const POOL: &str = "bench/default";

/// A small deterministic generator (xorshift64*), so the bench needs no extra crate.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }

    fn fraction(&mut self) -> f64 {
        self.below(1_000_000) as f64 / 1_000_000.0
    }
}

fn regions() -> Vec<String> {
    test_regions().into_iter().map(|r| r.slug).collect()
}

fn pool() -> Pool {
    Pool::new(
        POOL,
        regions(),
        test_sizes().into_iter().map(|s| s.slug).collect(),
    )
}

/// Memory tiers 256Mi/512Mi/1Gi/2Gi (40/30/20/10 %), CPU 250m/500m/1000m (50/35/15 %).
fn tier_request(rng: &mut Rng) -> Resources {
    let memory = match rng.below(100) {
        0..40 => 256,
        40..70 => 512,
        70..90 => 1024,
        _ => 2048,
    } * MIB;
    let cpu = match rng.below(100) {
        0..50 => 250,
        50..85 => 500,
        _ => 1000,
    };
    Resources::new(memory, cpu, 0)
}

/// Memory uniform 128Mi..3Gi, CPU uniform 100m..2000m.
fn uniform_request(rng: &mut Rng) -> Resources {
    Resources::new((128 + rng.below(2944)) * MIB, 100 + rng.below(1900), 0)
}

/// Droplets of 2/4/8 vCPU sizes, 0-70 % used, observed load, heartbeats and failures random,
/// 2 % NotReady (the same shape as benches/scheduler.rs of the operator).
fn fleet(n: usize, rng: &mut Rng) -> Snapshot {
    let sizes = test_sizes();
    let choices = ["s-2vcpu-4gb", "s-4vcpu-8gb", "s-8vcpu-16gb"];
    let regions = regions();
    let droplets: Vec<FleetDroplet> = (0..n)
        .map(|i| {
            let mut d = fixtures::droplet(
                &format!("d{i:05}"),
                choices[rng.below(choices.len() as u64) as usize],
            );
            d.namespace = "bench".into();
            d.pool = POOL.into();
            d.region = regions[rng.below(regions.len() as u64) as usize].clone();
            let fill = rng.fraction() * 0.7;
            d.unlisted_usage = Resources::new(
                (d.allocatable.memory as f64 * fill) as u64,
                (d.allocatable.cpu_millis as f64 * fill) as u64,
                0,
            );
            if rng.below(50) == 0 {
                d.phase = DropletPhase::NotReady;
            }
            d.observed_load = Some(rng.fraction() * 0.9);
            d.heartbeat_age = Some(Duration::from_secs(rng.below(120)));
            d.recent_failures = rng.below(3) as u32;
            d
        })
        .collect();
    Snapshot::new(droplets, vec![pool()], sizes, test_regions()).expect("valid bench snapshot")
}

fn pending(n: usize, rng: &mut Rng) -> Vec<PendingDeployment> {
    let regions = regions();
    (0..n)
        .map(|i| {
            let mut d = PendingDeployment::new(format!("bench/p{i}"), tier_request(rng), POOL);
            d.regions = vec![regions[rng.below(regions.len() as u64) as usize].clone()];
            d
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((p / 100.0) * (sorted.len().saturating_sub(1)) as f64).round() as usize;
    sorted
        .get(idx.min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(f64::NAN)
}

/// CPU time this thread has used, in seconds (user + system, from /proc; 10 ms ticks), so
/// throughput can be read on a machine shared with other builds: wall time counts the time
/// other processes held the CPU, CPU time does not.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command (which is in parentheses): utime is the 12th, stime the 13th.
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn report(what: &str, n: usize, mut samples: Vec<f64>, wall: f64, cpu: Option<f64>) {
    samples.sort_by(f64::total_cmp);
    let per_cpu = cpu
        .filter(|c| *c > 0.0)
        .map(|c| format!("{:.0} decisions per CPU-second", samples.len() as f64 / c))
        .unwrap_or_else(|| "CPU time unavailable".into());
    println!(
        "{what} over {n} droplets: {:.0} decisions/s wall ({per_cpu}), p50 {:.1} µs, p99 {:.1} µs",
        samples.len() as f64 / wall,
        percentile(&samples, 50.0),
        percentile(&samples, 99.0),
    );
}

const CALLS: usize = 20_000;

fn ledger_place(n: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let snap = fleet(n, &mut rng);
    let deps = pending(2000, &mut rng);
    let mut ledger = Ledger::new(Duration::from_secs(60));
    // One second per call with a 60 s TTL: about 60 assumptions live, one expiring per call.
    let mut call = |k: usize| {
        let now = jiff::Timestamp::from_second(1_800_000_000 + k as i64).expect("in range");
        ledger
            .place(&snap, &deps[k % deps.len()], now)
            .expect("no deployment is placed twice within its TTL")
    };
    for k in 0..2000 {
        black_box(call(k));
    }
    let mut samples = Vec::with_capacity(CALLS);
    let cpu = thread_cpu_seconds();
    let started = Instant::now();
    for k in 2000..2000 + CALLS {
        let t = Instant::now();
        black_box(call(k));
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds().zip(cpu).map(|(b, a)| b - a);
    report("Ledger::place", n, samples, wall, cpu);
    let fresh = fleet(n, &mut rng);
    let t = Instant::now();
    ledger.sync_snapshot(&fresh);
    println!(
        "  syncing a new snapshot of {n} droplets into the ledger: {:.2} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
}

fn decide_alone(n: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let snap = fleet(n, &mut rng);
    let deps = pending(2000, &mut rng);
    let used = snap.reported_usage().to_vec();
    let mut samples = Vec::with_capacity(CALLS);
    let cpu = thread_cpu_seconds();
    let started = Instant::now();
    for k in 0..CALLS {
        let t = Instant::now();
        black_box(choose_droplet(&snap, &used, &deps[k % deps.len()]));
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds().zip(cpu).map(|(b, a)| b - a);
    report("choose_droplet alone", n, samples, wall, cpu);
}

fn packing_quality(label: &str, request: fn(&mut Rng) -> Resources, mixes: usize) {
    let mut p = pool();
    p.regions = vec!["nyc3".into()];
    let snap =
        Snapshot::new(Vec::new(), vec![p], test_sizes(), test_regions()).expect("valid snapshot");
    let cap = test_sizes()
        .iter()
        .map(|s| s.allocatable(&DEFAULT_SYSTEM_RESERVE))
        .max_by_key(|a| (a.memory, a.cpu_millis))
        .unwrap_or_default();
    let mut rng = Rng(7);
    let mut ratios = Vec::with_capacity(mixes);
    for m in 0..mixes {
        let n = 20 + rng.below(380) as usize;
        let deps: Vec<PendingDeployment> = (0..n)
            .map(|i| PendingDeployment::new(format!("bench/m{m}-{i}"), request(&mut rng), POOL))
            .collect();
        let items: Vec<Resources> = deps.iter().map(|d| d.request).collect();
        let lb = scheduler::exact::lower_bound_bins(&items, &cap) as f64;
        let summary = summarize(&snap, &plan_batch(&snap, &[], &deps));
        ratios.push(summary.droplets_used as f64 / lb);
    }
    ratios.sort_by(f64::total_cmp);
    let within = ratios.iter().filter(|r| **r <= 1.02 + 1e-9).count();
    println!(
        "packer droplets / lower bound, {mixes} {label} mixes of 20-400: mean {:.4}, p95 {:.3}, max {:.3}; {within} of {mixes} within 1.02",
        ratios.iter().sum::<f64>() / ratios.len() as f64,
        percentile(&ratios, 95.0),
        percentile(&ratios, 100.0),
    );
}

fn main() {
    for n in [1000, 5000] {
        ledger_place(n);
        decide_alone(n);
    }
    if std::env::var("SCHEDULER_BENCH").as_deref() != Ok("ledger") {
        packing_quality("MCP tier", tier_request, 1000);
        packing_quality("uniform", uniform_request, 1000);
    }
}
