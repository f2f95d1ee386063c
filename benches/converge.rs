//! The operator at scale in the simulated world (DESIGN.md section 8):
//!
//! - `converge` (default): N deployments (default 1,000) applied at once against a world with no
//!   droplet; measures the wall time until all are Ready, the operator's time per deployment
//!   beyond the simulated boot and pull (from each deployment's progress steps), DigitalOcean
//!   requests and 429s, and the share Ready without human action (with `MCP_BENCH_FAULTS=heavy`).
//! - `memory`: the operator as its own process (`run --cloud simulated`) against kube-sim holding
//!   10,000 objects; reports its peak RSS once every object was reconciled.
//!   `MCP_BENCH_OPERATOR_WRAPPER` runs the operator under a tool, e.g. `heaptrack -o /tmp/op`
//!   (the RSS then reported is the tool's process's; the tool's own output is the point).
//!
//! Run: `cargo bench -p mcp-droplet-operator --bench converge` (mode from `MCP_BENCH_MODE`,
//! size from `MCP_BENCH_DEPLOYMENTS` / `MCP_BENCH_OBJECTS`, clock speed from `MCP_BENCH_SPEED`,
//! faults from `MCP_BENCH_FAULTS` = none | light | heavy). Results go to BENCHMARKS.md.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams};
use mcp_droplet_operator::api::deployment::{DeploymentPhase, MCPDeployment, StepState};
use mcp_droplet_operator::api::template::MCPTemplate;
use mcp_droplet_operator::cli::demo::faults::FaultPreset;
use mcp_droplet_operator::sim::digitalocean::FaultConfig;
use mcp_droplet_operator::testing::operator::{HarnessOptions, OperatorHarness};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("converge bench: {what}: {error}");
    std::process::exit(1)
}

fn params() -> PatchParams {
    PatchParams::apply("converge-bench").force()
}

/// The simulated DigitalOcean's switches of a `demo --faults` preset (`none`, `light`,
/// `heavy`); the demo's one-off faults (429 bursts, a lost droplet) are not part of the bench.
fn faults(preset: &str) -> FaultConfig {
    use clap::ValueEnum;
    FaultPreset::from_str(preset, true)
        .unwrap_or_else(|e| fail("MCP_BENCH_FAULTS", e))
        .plan()
        .faults
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Simulated seconds a deployment spent outside the cloud's boot and the image pull.
fn operator_seconds(d: &MCPDeployment) -> Option<f64> {
    let status = d.status.as_ref()?;
    let total = status.time_to_ready_seconds?;
    let mut outside = 0.0;
    for step in &status.progress.steps {
        if !(step.name == "Provisioning" || step.name == "Pulling")
            || step.state != StepState::Succeeded
        {
            continue;
        }
        if let (Some(start), Some(end)) = (&step.started_at, &step.finished_at) {
            outside += end.0.duration_since(start.0).as_secs_f64();
        }
    }
    Some((total - outside).max(0.0))
}

async fn converge() {
    let n: usize = env_or("MCP_BENCH_DEPLOYMENTS", 1000);
    let speed: f64 = env_or("MCP_BENCH_SPEED", 30.0);
    let preset: String = env_or("MCP_BENCH_FAULTS", "none".to_string());
    let mut options = HarnessOptions {
        speed,
        ..Default::default()
    };
    options.digitalocean.faults = faults(&preset);
    let harness = OperatorHarness::start(options)
        .await
        .unwrap_or_else(|e| fail("start", e));
    let ns = harness.namespace.clone();
    let templates: Api<MCPTemplate> = Api::all(harness.client.clone());
    let sizes = [("small", "256Mi"), ("medium", "512Mi"), ("large", "1Gi")];
    for (name, memory) in sizes {
        let t = MCPTemplate::test(name).memory(memory).build();
        templates
            .patch(name, &params(), &Patch::Apply(&t))
            .await
            .unwrap_or_else(|e| fail("template", e));
    }
    let deployments: Api<MCPDeployment> = Api::namespaced(harness.client.clone(), &ns);
    let started = Instant::now();
    for i in 0..n {
        let name = format!("mcp-{i:05}");
        let template = sizes[i % sizes.len()].0;
        let d = MCPDeployment::test(&name)
            .namespace(&ns)
            .template(template)
            .build();
        deployments
            .patch(&name, &params(), &Patch::Apply(&d))
            .await
            .unwrap_or_else(|e| fail("deployment", e));
    }
    let applied = started.elapsed();
    let deadline = Duration::from_secs(env_or("MCP_BENCH_DEADLINE_SECONDS", 300));
    let mut ready = 0;
    let mut items = Vec::new();
    while started.elapsed() < deadline {
        items = deployments
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| fail("list", e))
            .items;
        ready = items
            .iter()
            .filter(|d| {
                d.status
                    .as_ref()
                    .is_some_and(|s| s.phase == DeploymentPhase::Ready)
            })
            .count();
        if ready == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let wall = started.elapsed();
    // The slowest deployment's steps: where the tail goes.
    if let Some(worst) = items.iter().max_by(|a, b| {
        operator_seconds(a)
            .unwrap_or(0.0)
            .total_cmp(&operator_seconds(b).unwrap_or(0.0))
    }) && let Some(status) = worst.status.as_ref()
    {
        let steps: Vec<String> = status
            .progress
            .steps
            .iter()
            .map(|step| {
                let took = match (&step.started_at, &step.finished_at) {
                    (Some(a), Some(b)) => b.0.duration_since(a.0).as_secs_f64(),
                    _ => f64::NAN,
                };
                format!("{} {:?} {took:.0}s", step.name, step.state)
            })
            .collect();
        println!(
            "  slowest beyond boot and pull: {} ({:.0} s simulated): {}",
            worst.metadata.name.as_deref().unwrap_or_default(),
            operator_seconds(worst).unwrap_or(0.0),
            steps.join(", ")
        );
    }
    let mut overhead: Vec<f64> = items.iter().filter_map(operator_seconds).collect();
    overhead.sort_by(f64::total_cmp);
    let stats = harness
        .world
        .cloud()
        .map(|c| c.digitalocean.stats())
        .unwrap_or_else(|| fail("stats", "no cloud"));
    let droplets = harness
        .world
        .cloud()
        .map(|c| c.digitalocean.droplets().len())
        .unwrap_or(0);
    println!("converge: {n} deployments, speed {speed}, faults {preset}");
    println!(
        "  applied in {:.1} s; all Ready: {}",
        applied.as_secs_f64(),
        ready == n
    );
    println!(
        "  wall time to {ready}/{n} Ready: {:.1} s",
        wall.as_secs_f64()
    );
    if ready < n {
        // Why the rest are not Ready, grouped: the first thing to read when a run falls short.
        let mut why: std::collections::BTreeMap<String, usize> = Default::default();
        for d in &items {
            let Some(status) = d.status.as_ref() else {
                *why.entry("no status yet".into()).or_default() += 1;
                continue;
            };
            if status.phase == DeploymentPhase::Ready {
                continue;
            }
            let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
            let message: String = ready
                .map(|c| format!("{}: {}", c.reason, c.message))
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect();
            *why.entry(format!("{:?} ({message})", status.phase))
                .or_default() += 1;
        }
        let mut why: Vec<_> = why.into_iter().collect();
        why.sort_by_key(|b| std::cmp::Reverse(b.1));
        for (reason, count) in why.iter().take(8) {
            println!("  not Ready: {count} x {reason}");
        }
        // And the droplets' side: phase and health of each (grouped).
        let droplets: Api<mcp_droplet_operator::api::droplet::Droplet> =
            Api::namespaced(harness.client.clone(), &ns);
        let mut health: std::collections::BTreeMap<String, usize> = Default::default();
        for d in droplets
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let line = d.status.map_or_else(
                || "no status".to_string(),
                |s| {
                    let reachable = s.conditions.iter().find(|c| c.type_ == "AgentReachable");
                    format!(
                        "{:?}, health score {}, {} failures, agent: {}",
                        s.phase,
                        s.health.score,
                        s.health.consecutive_failures,
                        reachable.map_or(String::new(), |c| c.message.chars().take(100).collect())
                    )
                },
            );
            *health.entry(line).or_default() += 1;
        }
        for (line, count) in health {
            println!("  droplets: {count} x {line}");
        }
    }
    println!(
        "  success without human action: {:.2} %",
        100.0 * ready as f64 / n as f64
    );
    println!(
        "  operator time per deployment beyond boot and pull: p50 {:.2} s, p99 {:.2} s (real: p50 {:.3} s, p99 {:.3} s)",
        percentile(&overhead, 50.0),
        percentile(&overhead, 99.0),
        percentile(&overhead, 50.0) / speed,
        percentile(&overhead, 99.0) / speed
    );
    println!(
        "  DigitalOcean: {} requests, {} answered 429, peak {} per simulated minute; {droplets} droplets",
        stats.requests, stats.rate_limited, stats.peak_per_minute
    );
    fleet_line(&harness.client, &ns, &items).await;
    harness.shutdown().await;
}

/// What the burst's fleet costs against the bounds for the same demand over the default pool's
/// sizes: droplets against max over resources of ceil(total / largest allocatable), monthly cost
/// against the fractional cost bound (`scheduler::analysis`), and the sizes chosen.
async fn fleet_line(client: &kube::Client, ns: &str, deployments: &[MCPDeployment]) {
    use mcp_droplet_operator::api::droplet::Droplet;
    use mcp_droplet_operator::catalog;
    use scheduler::{DEFAULT_SYSTEM_RESERVE, Resources};
    let templates: Vec<MCPTemplate> = Api::<MCPTemplate>::all(client.clone())
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let requests: Vec<Resources> = deployments
        .iter()
        .filter_map(|d| {
            let template = templates
                .iter()
                .find(|t| t.metadata.name.as_deref() == Some(d.spec.template_ref.name.as_str()));
            mcp_droplet_operator::fleet::request_of(d, template.map(|t| &t.spec.resources)).ok()
        })
        .collect();
    let total = requests.iter().fold(Resources::ZERO, |sum, r| sum.plus(*r));
    let smallest = scheduler::analysis::smallest_request(requests.iter().copied());
    let options: Vec<(Resources, f64)> = catalog::default_pool_sizes()
        .into_iter()
        .filter_map(catalog::size)
        .map(|s| (s.capacity().minus(DEFAULT_SYSTEM_RESERVE), s.price_monthly))
        .collect();
    let largest = |f: fn(&Resources) -> u64| options.iter().map(|(a, _)| f(a)).max().unwrap_or(1);
    let bound = [
        total.memory.div_ceil(largest(|r| r.memory).max(1)),
        total.cpu_millis.div_ceil(largest(|r| r.cpu_millis).max(1)),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let cost_bound = scheduler::fractional_cost_lower_bound(&total, &smallest, &options);
    let droplets = Api::<Droplet>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut by_size: std::collections::BTreeMap<String, usize> = Default::default();
    let mut cost = 0.0;
    for d in &droplets {
        let status = d.status.as_ref();
        let size = status
            .and_then(|s| s.size.clone())
            .or_else(|| d.spec.size.clone())
            .unwrap_or_else(|| "unknown".into());
        cost += status.map_or(0.0, |s| s.price.monthly_usd);
        *by_size.entry(size).or_default() += 1;
    }
    let sizes: Vec<String> = by_size.iter().map(|(s, n)| format!("{n} x {s}")).collect();
    println!(
        "  fleet: {} droplets (lower bound {bound}), {cost:.0} USD/month (fractional cost bound {cost_bound:.0}, efficiency {:.2}); {}",
        droplets.len(),
        if cost > 0.0 { cost_bound / cost } else { 0.0 },
        sizes.join(", ")
    );
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

async fn memory() {
    let objects: usize = env_or("MCP_BENCH_OBJECTS", 10_000);
    let dir = std::env::temp_dir().join(format!("mcp-bench-memory-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let kubeconfig = dir.join("kubeconfig");
    let world = mcp_droplet_operator::sim::World::start(mcp_droplet_operator::sim::WorldConfig {
        kube: Some(mcp_droplet_operator::sim::KubeSimSettings {
            kubeconfig: Some(kubeconfig.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| fail("world", e));
    let client = world.kube_client().unwrap_or_else(|e| fail("client", e));
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let spaces = 10;
    for i in 0..spaces {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(format!("team-{i}")),
                ..Default::default()
            },
            ..Default::default()
        };
        namespaces
            .patch(&format!("team-{i}"), &params(), &Patch::Apply(&ns))
            .await
            .unwrap_or_else(|e| fail("namespace", e));
    }
    // Deployments of a template that does not exist: every one is reconciled to Stalled, which
    // exercises the caches and the status writer without droplets.
    let seeding = Instant::now();
    for i in 0..objects {
        if i > 0 && i % 1000 == 0 {
            eprintln!(
                "memory: {i}/{objects} MCPDeployments applied ({:.0} s)",
                seeding.elapsed().as_secs_f64()
            );
        }
        let ns = format!("team-{}", i % spaces);
        let name = format!("mcp-{i:05}");
        let d = MCPDeployment::test(&name)
            .namespace(&ns)
            .template("missing")
            .build();
        Api::<MCPDeployment>::namespaced(client.clone(), &ns)
            .patch(&name, &params(), &Patch::Apply(&d))
            .await
            .unwrap_or_else(|e| fail("deployment", e));
    }
    eprintln!(
        "memory: {objects} MCPDeployments applied in {:.0} s; starting the operator",
        seeding.elapsed().as_secs_f64()
    );
    // MCP_BENCH_OPERATOR_WRAPPER runs the operator under a tool, e.g. "heaptrack -o /tmp/ht"
    // (the RSS reported is then the tool's process, not the operator's).
    let wrapper = std::env::var("MCP_BENCH_OPERATOR_WRAPPER").unwrap_or_default();
    let mut command: Vec<String> = wrapper.split_whitespace().map(str::to_string).collect();
    command.push(env!("CARGO_BIN_EXE_mcp-droplet-operator").to_string());
    let mut operator = tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .args([
            "run",
            "--cloud",
            "simulated",
            "--leader-election",
            "false",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| fail("operator", e));
    let pid = operator.id().unwrap_or_else(|| fail("operator", "no pid"));
    let all: Api<MCPDeployment> = Api::all(client.clone());
    let started = Instant::now();
    let mut last_report = started;
    loop {
        let list = all
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| fail("list", e));
        let done = list.items.iter().filter(|d| d.status.is_some()).count();
        if done == objects {
            break;
        }
        if let Some(status) = operator.try_wait().unwrap_or(None) {
            fail("operator", format!("exited early: {status}"));
        }
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "memory: {done}/{objects} reconciled after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        if started.elapsed() > Duration::from_secs(600) {
            fail(
                "memory",
                format!("only {done}/{objects} reconciled in 600 s"),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let reconciled = started.elapsed();
    let rss = peak_rss_kib(pid).unwrap_or(0);
    println!(
        "memory: {objects} MCPDeployments reconciled in {:.1} s; operator peak RSS {:.1} MiB",
        reconciled.as_secs_f64(),
        rss as f64 / 1024.0
    );
    let _ = operator.start_kill();
    let _ = operator.wait().await;
    world.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    // `cargo bench` passes `--bench`; a plain run of the binary must not need flags either.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail("runtime", e));
    match std::env::var("MCP_BENCH_MODE").as_deref() {
        Ok("memory") => runtime.block_on(memory()),
        _ => runtime.block_on(converge()),
    }
}
