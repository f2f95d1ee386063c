//! The DropletPool controller and the provisioner against the simulated world: a burst of
//! waiting deployments becomes close to the lower bound of droplets, pool limits block with
//! `Unschedulable` naming the limit, a repeated signal creates nothing twice, and the pool's
//! status aggregates its droplets' status and is not rewritten once converged.
//!
//! The deployments are put in phase Provisioning by the test itself (the status a deployment
//! controller writes when nothing fits), and the demand signal is sent through the context.

use std::future::Future;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use mcp_droplet_operator::api::conditions::find;
use mcp_droplet_operator::api::deployment::MCPDeployment;
use mcp_droplet_operator::api::droplet::{Droplet, DropletPhase};
use mcp_droplet_operator::api::pool::DropletPool;
use mcp_droplet_operator::api::quantity::{format_bytes, format_cpu_millis};
use mcp_droplet_operator::controller::pool::plan::{
    POOL_LABEL, provisioned_for, waits_for_droplet,
};
use mcp_droplet_operator::controller::pool::provisioner::PROVISIONER;
use mcp_droplet_operator::controller::pool::status::{UNSCHEDULABLE, aggregate};
use mcp_droplet_operator::telemetry::metrics::ControllerLabels;
use mcp_droplet_operator::testing::operator::{HarnessOptions, OperatorHarness};

const TIMEOUT: Duration = Duration::from_secs(60);

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

/// Provisioning passes finished so far.
fn passes(harness: &OperatorHarness) -> u64 {
    harness
        .context()
        .expect("operator running")
        .metrics
        .reconciles
        .get_or_create(&ControllerLabels {
            controller: PROVISIONER.to_string(),
        })
        .get()
}

/// Waits until the operator's cache shows `n` deployments waiting for a droplet (the
/// deployment controller signals after its status write; the test writes faster than a
/// batch window, so it waits for the cache before signalling).
async fn wait_for_cached_waiting(harness: &OperatorHarness, n: usize) {
    eventually(&format!("{n} waiting deployments in the cache"), || async {
        let ctx = harness.context().expect("operator running");
        let cached = ctx
            .stores
            .deployments
            .state()
            .iter()
            .filter(|d| waits_for_droplet(d))
            .count();
        (cached == n).then_some(())
    })
    .await;
}

/// Sends the demand signal and waits until a provisioning pass has run after it.
async fn signal_and_wait_for_a_pass(harness: &OperatorHarness) {
    let before = passes(harness);
    harness
        .context()
        .expect("operator running")
        .demand
        .send(())
        .expect("provisioner listening");
    eventually("a provisioning pass", || async {
        (passes(harness) > before).then_some(())
    })
    .await;
}

/// Starts the harness and waits for the provisioner's first pass (made once the caches are
/// synced), so the deployments a test creates are planned in the batches it signals.
async fn started() -> OperatorHarness {
    let harness = OperatorHarness::start(HarnessOptions::default())
        .await
        .expect("harness");
    eventually("the first provisioning pass", || async {
        (passes(&harness) > 0).then_some(())
    })
    .await;
    harness
}

async fn create_pool(harness: &OperatorHarness, pool: DropletPool) -> Api<DropletPool> {
    let api: Api<DropletPool> = Api::namespaced(harness.client.clone(), &harness.namespace);
    api.create(&PostParams::default(), &pool)
        .await
        .expect("create pool");
    api
}

/// Creates `n` deployments of 512Mi/250m (pool `pool`, or the default pool) and marks them
/// waiting for a droplet, as the deployment controller does when nothing fits.
async fn waiting_deployments(
    harness: &OperatorHarness,
    prefix: &str,
    n: usize,
    pool: Option<&str>,
) {
    let api: Api<MCPDeployment> = Api::namespaced(harness.client.clone(), &harness.namespace);
    for i in 0..n {
        let name = format!("{prefix}{i:03}");
        let mut builder = MCPDeployment::test(&name)
            .namespace(&harness.namespace)
            .template("absent")
            .memory("512Mi")
            .cpu("250m");
        if let Some(pool) = pool {
            builder = builder.pool(pool);
        }
        api.create(&PostParams::default(), &builder.build())
            .await
            .expect("create deployment");
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"phase": "Provisioning"}})),
        )
        .await
        .expect("phase Provisioning");
    }
}

async fn droplets(harness: &OperatorHarness) -> Vec<Droplet> {
    let api: Api<Droplet> = Api::namespaced(harness.client.clone(), &harness.namespace);
    api.list(&ListParams::default())
        .await
        .expect("list droplets")
        .items
}

/// Waits until the namespace holds exactly `n` droplets.
async fn wait_for_droplets(harness: &OperatorHarness, n: usize) -> Vec<Droplet> {
    let started = Instant::now();
    loop {
        let list = droplets(harness).await;
        if list.len() == n {
            return list;
        }
        let names: Vec<String> = list
            .iter()
            .map(|d| format!("{:?} {:?}", d.metadata.name, d.spec.size))
            .collect();
        assert!(
            started.elapsed() < TIMEOUT,
            "waiting for {n} droplets, there are {}: {names:?}",
            list.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_becomes_the_lower_bound_of_droplets_and_a_repeated_signal_adds_none() {
    let harness = started().await;
    let pool = DropletPool::test("burst")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-1vcpu-2gb", "s-2vcpu-4gb"])
        .build();
    create_pool(&harness, pool).await;
    waiting_deployments(&harness, "b", 40, Some("burst")).await;
    wait_for_cached_waiting(&harness, 40).await;
    signal_and_wait_for_a_pass(&harness).await;

    // s-2vcpu-4gb holds 7 of 512Mi/250m (3584Mi, 1750m allocatable): 40 need 6.
    let created = wait_for_droplets(&harness, 6).await;
    let mut covered: Vec<String> = Vec::new();
    for d in &created {
        assert_eq!(d.spec.pool.as_deref(), Some("burst"));
        assert_eq!(d.spec.region.as_deref(), Some("nyc3"));
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
        covered.extend(provisioned_for(d));
    }
    covered.sort();
    covered.dedup();
    assert_eq!(
        covered.len(),
        40,
        "every deployment has a droplet made for it"
    );

    // More signals (a deployment controller sends one per pass) create nothing more.
    for _ in 0..3 {
        signal_and_wait_for_a_pass(&harness).await;
    }
    assert_eq!(droplets(&harness).await.len(), 6);

    // The operator restarted with fresh memory plans the same and creates nothing either.
    let mut harness = harness;
    harness.start_operator().expect("restart");
    signal_and_wait_for_a_pass(&harness).await;
    assert_eq!(droplets(&harness).await.len(), 6);
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_droplets_blocks_with_the_limit_named_until_it_is_raised() {
    let harness = started().await;
    let pool = DropletPool::test("small")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .max_droplets(1)
        .build();
    let pools = create_pool(&harness, pool).await;
    waiting_deployments(&harness, "l", 10, Some("small")).await;
    wait_for_cached_waiting(&harness, 10).await;
    signal_and_wait_for_a_pass(&harness).await;

    wait_for_droplets(&harness, 1).await;
    let blocked = harness
        .wait_for(&pools, "small", TIMEOUT, |p| {
            p.status.as_ref().is_some_and(|s| {
                find(&s.conditions, UNSCHEDULABLE).is_some_and(|c| c.status == "True")
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
    assert!(
        condition.message.contains("3 deployment(s) waiting"),
        "{}",
        condition.message
    );
    assert_eq!(status.droplets, 1);
    // Another signal does not get around the limit.
    signal_and_wait_for_a_pass(&harness).await;
    assert_eq!(droplets(&harness).await.len(), 1);

    // Raising the limit plans again (the pool's new generation) and unblocks them.
    pools
        .patch(
            "small",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"limits": {"maxDroplets": 2}}})),
        )
        .await
        .expect("raise the limit");
    wait_for_droplets(&harness, 2).await;
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
    let harness = started().await;
    waiting_deployments(&harness, "d", 3, None).await;
    wait_for_cached_waiting(&harness, 3).await;
    signal_and_wait_for_a_pass(&harness).await;
    let created = wait_for_droplets(&harness, 1).await;
    let d = &created[0];
    assert!(d.metadata.owner_references.is_none());
    assert_eq!(d.spec.pool.as_deref(), Some("default"));
    // The harness's default pool is nyc3 with the basic sizes: 3 x 512Mi/250m fit a 2 GB.
    assert_eq!(d.spec.region.as_deref(), Some("nyc3"));
    assert_eq!(d.spec.size.as_deref(), Some("s-1vcpu-2gb"));
    assert_eq!(provisioned_for(d).len(), 3);
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_aggregates_its_droplets_and_is_not_rewritten_when_converged() {
    let harness = started().await;
    let pool = DropletPool::test("agg")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .build();
    let pools = create_pool(&harness, pool).await;
    waiting_deployments(&harness, "a", 10, Some("agg")).await;
    wait_for_cached_waiting(&harness, 10).await;
    signal_and_wait_for_a_pass(&harness).await;
    wait_for_droplets(&harness, 2).await;

    // The droplet controller brings them up; the pool's status is theirs added up.
    let converged = eventually("the pool status matching its Ready droplets", || async {
        let list = droplets(&harness).await;
        let all_ready = list.iter().all(|d| {
            d.status
                .as_ref()
                .is_some_and(|s| s.phase == DropletPhase::Ready)
        });
        let refs: Vec<&Droplet> = list.iter().collect();
        let agg = aggregate(&refs);
        let s = pools.get("agg").await.ok()?.status?;
        let matches = all_ready
            && s.droplets == 2
            && s.capacity.memory == Some(format_bytes(agg.capacity.memory))
            && s.capacity.cpu == Some(format_cpu_millis(agg.capacity.cpu_millis))
            && s.allocated.memory == Some(format_bytes(agg.allocated.memory))
            && s.monthly_cost_usd == agg.monthly_usd
            && s.utilization == agg.utilization
            && mcp_droplet_operator::api::conditions::is_true(&s.conditions, "Ready");
        matches.then_some(s)
    })
    .await;
    assert_eq!(converged.capacity.memory.as_deref(), Some("8Gi"));
    assert_eq!(converged.capacity.cpu.as_deref(), Some("4"));
    assert_eq!(converged.monthly_cost_usd, 48.0);

    // Converged: passes and reconciles write nothing while the droplets do not change (their
    // heartbeats may, and then the pool may too).
    let versions = |list: Vec<Droplet>| -> Vec<(Option<String>, Option<String>)> {
        list.into_iter()
            .map(|d| (d.metadata.name, d.metadata.resource_version))
            .collect()
    };
    let ctx = harness.context().expect("operator").clone();
    let reconciles = |ctx: &mcp_droplet_operator::controller::Context| {
        ctx.metrics
            .reconciles
            .get_or_create(&ControllerLabels {
                controller: "dropletpool".to_string(),
            })
            .get()
    };
    let mut checked = false;
    for _ in 0..10 {
        // A reconcile under way may still see the pool from before its last write: count
        // after one more.
        let before = reconciles(&ctx);
        signal_and_wait_for_a_pass(&harness).await;
        eventually("the pool reconciled", || async {
            (reconciles(&ctx) > before).then_some(())
        })
        .await;
        let droplets_before = versions(droplets(&harness).await);
        let writes = ctx.metrics.status_write_count("dropletpool");
        for _ in 0..3 {
            let before = reconciles(&ctx);
            signal_and_wait_for_a_pass(&harness).await;
            eventually("the pool reconciled again", || async {
                (reconciles(&ctx) > before).then_some(())
            })
            .await;
        }
        if versions(droplets(&harness).await) == droplets_before {
            assert_eq!(ctx.metrics.status_write_count("dropletpool"), writes);
            checked = true;
            break;
        }
    }
    assert!(
        checked,
        "the droplets never stayed unchanged for three passes"
    );
    harness.shutdown().await;
}

/// The operator's permissions as the run contract lists them (issues/RUN_CONTRACT.md), as one
/// ClusterRole bound to the operator's service account (the same list as the other suites').
fn run_contract_rbac() -> mcp_droplet_operator::testing::operator::OperatorRbac {
    let group = |resources: &[&str], verbs: &[&str]| serde_json::json!({"apiGroups": ["mcp.agentopia.io"], "resources": resources, "verbs": verbs});
    let documents = vec![
        serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "mcp-droplet-operator", "namespace": "default"}}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "mcp-droplet-operator"},
        "rules": [
            group(&["mcptemplates", "dropletpools", "mcpdeployments"], &["get", "list", "watch", "patch"]),
            group(&["droplets"], &["get", "list", "watch", "create", "patch", "delete"]),
            group(&["mcptemplates/status", "dropletpools/status", "droplets/status", "mcpdeployments/status"], &["get", "patch"]),
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
        ]}),
        serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "mcp-droplet-operator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "mcp-droplet-operator"},
            "subjects": [{"kind": "ServiceAccount", "name": "mcp-droplet-operator", "namespace": "default"}]}),
    ];
    mcp_droplet_operator::testing::operator::OperatorRbac {
        documents,
        namespace: "default".to_string(),
        service_account: "mcp-droplet-operator".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_controller_needs_only_the_run_contracts_permissions() {
    let harness = OperatorHarness::start(HarnessOptions {
        operator_rbac: Some(run_contract_rbac()),
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    eventually("the first provisioning pass", || async {
        (passes(&harness) > 0).then_some(())
    })
    .await;
    let pool = DropletPool::test("rbac")
        .namespace(&harness.namespace)
        .regions(&["nyc3"])
        .sizes(&["s-2vcpu-4gb"])
        .max_droplets(1)
        .build();
    let pools = create_pool(&harness, pool).await;
    waiting_deployments(&harness, "r", 8, Some("rbac")).await;
    wait_for_cached_waiting(&harness, 8).await;
    signal_and_wait_for_a_pass(&harness).await;
    wait_for_droplets(&harness, 1).await;
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
