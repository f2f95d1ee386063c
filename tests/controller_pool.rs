//! The DropletPool controller and the provisioner against the simulated world, with the other
//! controllers: deployments that fit nowhere wait in phase Provisioning and signal demand; the
//! provisioner batches it and creates Droplet objects, which the droplet controller brings up,
//! and the deployments reach Ready on them. A burst uses the lower bound of droplets, a
//! restarted operator or repeated signals create nothing twice, pool limits block with
//! `Unschedulable` naming the limit until raised, a namespace without pools gets unowned
//! droplets of the default pool, and the pool's status aggregates its droplets and is not
//! rewritten once converged.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use mcp_droplet_operator::api::conditions::{find, is_true};
use mcp_droplet_operator::api::deployment::{DeploymentPhase, MCPDeployment};
use mcp_droplet_operator::api::droplet::Droplet;
use mcp_droplet_operator::api::pool::DropletPool;
use mcp_droplet_operator::api::quantity::{format_bytes, format_cpu_millis};
use mcp_droplet_operator::api::template::MCPTemplate;
use mcp_droplet_operator::controller::pool::plan::{POOL_LABEL, provisioned_for};
use mcp_droplet_operator::controller::pool::provisioner::PROVISIONER;
use mcp_droplet_operator::controller::pool::status::{UNSCHEDULABLE, aggregate};
use mcp_droplet_operator::telemetry::metrics::ControllerLabels;
use mcp_droplet_operator::testing::operator::{HarnessOptions, OperatorHarness, OperatorIdentity};

/// Longest wait for one condition (real time; the world runs at speed 30).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Polls `check` every 50 ms until it returns Some, at most `TIMEOUT`.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < TIMEOUT,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(harness: &OperatorHarness, controller: &str) -> u64 {
    harness
        .context()
        .expect("operator running")
        .metrics
        .reconciles
        .get_or_create(&ControllerLabels {
            controller: controller.to_string(),
        })
        .get()
}

/// Sends the demand signal and waits until a provisioning pass has run after it.
async fn signal_and_wait_for_a_pass(harness: &OperatorHarness) {
    let before = counter(harness, PROVISIONER);
    harness
        .context()
        .expect("operator running")
        .demand
        .send(())
        .expect("provisioner listening");
    eventually("a provisioning pass", || async {
        (counter(harness, PROVISIONER) > before).then_some(())
    })
    .await;
}

async fn started(options: HarnessOptions) -> OperatorHarness {
    OperatorHarness::start(options).await.expect("harness")
}

/// Runs `scenario` against kube-sim, then against the real cluster of `MCP_E2E_KUBECONFIG`.
async fn on_every_cluster<F, Fut>(scenario: F)
where
    F: Fn(HarnessOptions) -> Fut,
    Fut: Future<Output = ()>,
{
    scenario(HarnessOptions::default()).await;
    match HarnessOptions::real_cluster_from_env() {
        Some(options) => scenario(options).await,
        None => {
            eprintln!("SKIPPED: MCP_E2E_KUBECONFIG is not set; the real-cluster run is skipped")
        }
    }
}

/// Creates an accepted-to-be template of 512Mi/250m unique to this harness; returns its name.
async fn template_512(harness: &OperatorHarness) -> String {
    let name = format!("p512-{}", harness.namespace);
    let api: Api<MCPTemplate> = Api::all(harness.client.clone());
    api.create(
        &PostParams::default(),
        &MCPTemplate::test(&name).memory("512Mi").cpu("250m").build(),
    )
    .await
    .expect("create template");
    name
}

async fn create_pool(harness: &OperatorHarness, pool: DropletPool) -> Api<DropletPool> {
    let api: Api<DropletPool> = Api::namespaced(harness.client.clone(), &harness.namespace);
    api.create(&PostParams::default(), &pool)
        .await
        .expect("create pool");
    api
}

fn deployments_api(harness: &OperatorHarness) -> Api<MCPDeployment> {
    Api::namespaced(harness.client.clone(), &harness.namespace)
}

/// Creates `n` deployments `<prefix>NN` of `template` in `pool` (the default pool when None).
async fn create_deployments(
    harness: &OperatorHarness,
    template: &str,
    prefix: &str,
    n: usize,
    pool: Option<&str>,
) -> Vec<String> {
    let api = deployments_api(harness);
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("{prefix}{i:02}");
        let mut builder = MCPDeployment::test(&name)
            .namespace(&harness.namespace)
            .template(template);
        if let Some(pool) = pool {
            builder = builder.pool(pool);
        }
        api.create(&PostParams::default(), &builder.build())
            .await
            .expect("create deployment");
        names.push(name);
    }
    names
}

fn phase(d: &MCPDeployment) -> Option<DeploymentPhase> {
    d.status.as_ref().map(|s| s.phase)
}

/// Waits until every deployment named is Ready.
async fn wait_ready(harness: &OperatorHarness, names: &[String]) {
    let api = deployments_api(harness);
    for name in names {
        harness
            .wait_for(&api, name, TIMEOUT, |d| {
                phase(d) == Some(DeploymentPhase::Ready)
            })
            .await
            .expect("deployment Ready");
    }
}

async fn droplets(harness: &OperatorHarness) -> Vec<Droplet> {
    let api: Api<Droplet> = Api::namespaced(harness.client.clone(), &harness.namespace);
    api.list(&ListParams::default())
        .await
        .expect("list droplets")
        .items
}

/// The droplets, what they were made for and what runs on them, for assertion messages.
fn describe(list: &[Droplet]) -> Vec<(String, Vec<String>, Vec<String>)> {
    list.iter()
        .map(|d| {
            (
                d.metadata.name.clone().unwrap_or_default(),
                provisioned_for(d),
                d.status
                    .as_ref()
                    .map(|s| s.deployments.clone())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits until at least `n` droplets exist; returns them.
async fn wait_for_droplets(harness: &OperatorHarness, n: usize) -> Vec<Droplet> {
    eventually(&format!("{n} droplets"), || async {
        let list = droplets(harness).await;
        (list.len() >= n).then_some(list)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_ready_on_the_lower_bound_of_droplets_across_a_restart() {
    on_every_cluster(a_burst_reaches_ready_on_the_lower_bound_of_droplets_across_a_restart_on)
        .await;
}

async fn a_burst_reaches_ready_on_the_lower_bound_of_droplets_across_a_restart_on(
    options: HarnessOptions,
) {
    const BURST: usize = 200;
    // The burst is applied before the operator starts: on a real API server the creates are
    // slower than the batch's idle time at the harness's clock speed (1 s simulated is 33 ms),
    // which would split the burst into batches by accident of latency.
    // At the harness's default 30x clock, 200 droplet agents and their heartbeats outrun two
    // cores (agents miss polls and droplets turn NotReady); 10x keeps the simulated timers
    // within what the machine can serve, as in the converge bench.
    let mut harness = started(HarnessOptions {
        start_operator: false,
        speed: 10.0,
        ..options
    })
    .await;
    let template = template_512(&harness).await;
    let pool = DropletPool::test("burst")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .build();
    let pools = create_pool(&harness, pool).await;
    let names = create_deployments(&harness, &template, "b", BURST, Some("burst")).await;
    harness.start_operator().expect("start the operator");

    // Killed while droplets are being provisioned: the new process plans the same.
    wait_for_droplets(&harness, 1).await;
    harness.start_operator().expect("restart the operator");
    wait_ready(&harness, &names).await;

    // 512Mi/250m each on s-2vcpu-4gb (3584Mi, 1750m allocatable): 7 a droplet.
    let lower_bound = BURST.div_ceil(7);
    let list = droplets(&harness).await;
    assert_eq!(list.len(), lower_bound, "{:?}", describe(&list));
    for d in &list {
        assert_eq!(d.spec.pool.as_deref(), Some("burst"));
        assert_eq!(d.spec.size.as_deref(), Some("s-2vcpu-4gb"));
        assert_eq!(
            d.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POOL_LABEL))
                .map(String::as_str),
            Some("burst")
        );
        let owner = &d.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("DropletPool", "burst", Some(true))
        );
    }
    // Repeated signals (a deployment controller sends one per pass) create nothing more.
    for _ in 0..3 {
        signal_and_wait_for_a_pass(&harness).await;
    }
    assert_eq!(droplets(&harness).await.len(), lower_bound);
    let cloud = harness.world.cloud().expect("cloud");
    assert_eq!(
        cloud.digitalocean.droplets().len(),
        lower_bound,
        "no duplicate droplet in the simulated cloud"
    );
    harness
        .wait_for(&pools, "burst", TIMEOUT, |p| {
            p.status.as_ref().is_some_and(|s| {
                s.droplets as usize == lower_bound
                    && s.monthly_cost_usd == 24.0 * lower_bound as f64
                    && is_true(&s.conditions, "Ready")
                    && find(&s.conditions, UNSCHEDULABLE).is_some_and(|c| c.status == "False")
            })
        })
        .await
        .expect("pool status");
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_droplets_blocks_with_the_limit_named_until_it_is_raised() {
    on_every_cluster(max_droplets_blocks_with_the_limit_named_until_it_is_raised_on).await;
}

async fn max_droplets_blocks_with_the_limit_named_until_it_is_raised_on(options: HarnessOptions) {
    let harness = started(options).await;
    let template = template_512(&harness).await;
    let pool = DropletPool::test("small")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .max_droplets(1)
        .build();
    let pools = create_pool(&harness, pool).await;
    let names = create_deployments(&harness, &template, "l", 10, Some("small")).await;

    let blocked = harness
        .wait_for(&pools, "small", TIMEOUT, |p| {
            p.status.as_ref().is_some_and(|s| {
                find(&s.conditions, UNSCHEDULABLE).is_some_and(|c| {
                    c.status == "True" && c.message.contains("3 deployment(s) waiting")
                })
            })
        })
        .await
        .expect("Unschedulable");
    let status = blocked.status.expect("status");
    let condition = find(&status.conditions, UNSCHEDULABLE).expect("condition");
    assert_eq!(condition.reason, "MaxDropletsReached");
    assert!(
        condition.message.contains("limit of 1 droplets"),
        "{}",
        condition.message
    );
    assert_eq!(droplets(&harness).await.len(), 1);
    // Seven of them run on the one droplet; the other three wait for a droplet.
    let api = deployments_api(&harness);
    let mut ready = 0;
    for name in &names {
        let d = harness
            .wait_for(&api, name, TIMEOUT, |d| {
                matches!(
                    phase(d),
                    Some(DeploymentPhase::Ready | DeploymentPhase::Provisioning)
                ) && (phase(d) == Some(DeploymentPhase::Provisioning)
                    || d.status.as_ref().is_some_and(|s| s.placement.is_some()))
            })
            .await
            .expect("settled");
        if d.status.as_ref().is_some_and(|s| s.placement.is_some()) {
            ready += 1;
        }
    }
    assert!(ready <= 7, "{ready} placed on one droplet of 7 slots");
    signal_and_wait_for_a_pass(&harness).await;
    assert_eq!(droplets(&harness).await.len(), 1, "the limit holds");

    // Raising the limit plans again at once (the pool's new generation).
    pools
        .patch(
            "small",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"limits": {"maxDroplets": 2}}})),
        )
        .await
        .expect("raise the limit");
    wait_ready(&harness, &names).await;
    let list = droplets(&harness).await;
    assert_eq!(list.len(), 2, "{:?}", describe(&list));
    harness
        .wait_for(&pools, "small", TIMEOUT, |p| {
            p.status.as_ref().is_some_and(|s| {
                s.droplets == 2
                    && find(&s.conditions, UNSCHEDULABLE)
                        .is_some_and(|c| c.status == "False" && c.reason == "Schedulable")
            })
        })
        .await
        .expect("schedulable again");
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_without_pools_gets_unowned_droplets_of_the_default_pool() {
    on_every_cluster(a_namespace_without_pools_gets_unowned_droplets_of_the_default_pool_on).await;
}

async fn a_namespace_without_pools_gets_unowned_droplets_of_the_default_pool_on(
    options: HarnessOptions,
) {
    // Applied before the operator starts, so the three are one batch on any API server.
    let mut harness = started(HarnessOptions {
        start_operator: false,
        ..options
    })
    .await;
    let template = template_512(&harness).await;
    let names = create_deployments(&harness, &template, "d", 3, None).await;
    harness.start_operator().expect("start the operator");
    wait_ready(&harness, &names).await;
    let list = droplets(&harness).await;
    assert_eq!(list.len(), 1, "{:?}", describe(&list));
    let d = &list[0];
    assert!(d.metadata.owner_references.is_none());
    assert_eq!(d.spec.pool.as_deref(), Some("default"));
    // The harness's default pool is nyc3 with the basic sizes: 3 x 512Mi/250m fit a 2 GB
    // droplet (1536Mi, 750m allocatable) exactly.
    assert_eq!(d.spec.region.as_deref(), Some("nyc3"));
    assert_eq!(d.spec.size.as_deref(), Some("s-1vcpu-2gb"));
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_aggregates_its_droplets_and_is_not_rewritten_when_converged() {
    on_every_cluster(pool_status_aggregates_its_droplets_and_is_not_rewritten_when_converged_on)
        .await;
}

async fn pool_status_aggregates_its_droplets_and_is_not_rewritten_when_converged_on(
    options: HarnessOptions,
) {
    let harness = started(options).await;
    let template = template_512(&harness).await;
    let pool = DropletPool::test("agg")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .build();
    let pools = create_pool(&harness, pool).await;
    let names = create_deployments(&harness, &template, "a", 9, Some("agg")).await;
    wait_ready(&harness, &names).await;

    // The pool's status is its droplets' status added up (what the droplet controller wrote).
    let converged = eventually("the pool status matching its droplets", || async {
        let list = droplets(&harness).await;
        let refs: Vec<&Droplet> = list.iter().collect();
        let agg = aggregate(&refs);
        let pool = pools.get("agg").await.ok()?;
        let s = pool.status?;
        let matches = s.droplets == 2
            && s.droplets == agg.droplets
            && s.capacity.memory == Some(format_bytes(agg.capacity.memory))
            && s.allocated.memory == Some(format_bytes(agg.allocated.memory))
            && s.allocated.cpu == Some(format_cpu_millis(agg.allocated.cpu_millis))
            && s.monthly_cost_usd == agg.monthly_usd
            && is_true(&s.conditions, "Ready");
        matches.then_some(s)
    })
    .await;
    // 9 x 512Mi/250m allocated on 2 x s-2vcpu-4gb.
    assert_eq!(converged.capacity.memory.as_deref(), Some("8Gi"));
    assert_eq!(converged.allocated.memory.as_deref(), Some("4608Mi"));
    assert_eq!(converged.allocated.cpu.as_deref(), Some("2250m"));
    assert_eq!(converged.monthly_cost_usd, 48.0);

    // Converged: passes and reconciles write nothing while the droplets do not change.
    let versions = |list: Vec<Droplet>| -> BTreeMap<String, String> {
        list.into_iter()
            .map(|d| {
                (
                    d.metadata.name.unwrap_or_default(),
                    d.metadata.resource_version.unwrap_or_default(),
                )
            })
            .collect()
    };
    let ctx = harness.context().expect("operator").clone();
    let mut checked = false;
    for _ in 0..10 {
        let before = versions(droplets(&harness).await);
        let writes = ctx.metrics.status_write_count("dropletpool");
        for _ in 0..2 {
            let reconciles = counter(&harness, "dropletpool");
            signal_and_wait_for_a_pass(&harness).await;
            eventually("the pool reconciled again", || async {
                (counter(&harness, "dropletpool") > reconciles).then_some(())
            })
            .await;
        }
        if versions(droplets(&harness).await) == before {
            assert_eq!(ctx.metrics.status_write_count("dropletpool"), writes);
            checked = true;
            break;
        }
    }
    assert!(
        checked,
        "the droplets never stayed unchanged for two passes"
    );
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_controller_needs_only_the_run_contracts_permissions() {
    let harness = started(HarnessOptions {
        // Exactly the chart's rendered RBAC (the default, spelled out: this is its test).
        identity: OperatorIdentity::ChartRbac,
        ..HarnessOptions::default()
    })
    .await;
    let template = template_512(&harness).await;
    let pool = DropletPool::test("rbac")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .max_droplets(1)
        .build();
    let pools = create_pool(&harness, pool).await;
    create_deployments(&harness, &template, "r", 8, Some("rbac")).await;
    harness
        .wait_for(&pools, "rbac", TIMEOUT, |p| {
            p.status.as_ref().is_some_and(|s| {
                s.droplets == 1
                    && find(&s.conditions, UNSCHEDULABLE).is_some_and(|c| c.status == "True")
            })
        })
        .await
        .expect("pool status written");
    let sim = harness.world.kube().expect("kube-sim");
    let denied = sim.access_record().expect("access record").denied();
    assert!(denied.is_empty(), "denied: {denied:#?}");
    harness.shutdown().await;
}
