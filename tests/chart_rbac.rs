//! The operator under exactly the Helm chart's RBAC: tests/fixtures/chart/rbac-*.yaml are the
//! ServiceAccount, roles and bindings the chart renders (scripts/lint-charts fails when they
//! drift), and kube-sim authorizes every request against them. Every scenario test runs so (the
//! harness's default identity, whose shutdown fails on any denied request: tested here), and the
//! coverage tests below prove the converse, in both install modes: the operator's whole life
//! uses every permission (verb × resource) the chart grants, apart from an explicit list kept on
//! purpose, each with its reason (decision 0607).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use kube_sim::rbac::{Attributes, UserInfo};
use mcp_droplet_operator::api::template::{MCPTemplate, TemplatePhase};
use mcp_droplet_operator::controller::context::WatchScope;
use mcp_droplet_operator::image_check::ImageCheckSettings;
use mcp_droplet_operator::sim::world::client_with;
use mcp_droplet_operator::testing::FakeRegistry;
use mcp_droplet_operator::testing::operator::{
    HarnessOptions, OperatorHarness, OperatorIdentity, OperatorRbac, eventually,
};

const DIGEST: &str = "sha256:6666666666666666666666666666666666666666666666666666666666666666";
const WAIT: Duration = Duration::from_secs(30);

/// The chart's rendered RBAC documents of one mode, and its service account.
fn chart_rbac(mode: &str, namespace: &str) -> OperatorRbac {
    let rbac = OperatorRbac::from_chart(mode).expect("the chart's rendered RBAC");
    assert_eq!(
        rbac.namespace, namespace,
        "the chart's service account namespace"
    );
    rbac
}

async fn template_accepted_under(rbac: OperatorRbac, scope: WatchScope, operator_ns: &str) {
    let registry = FakeRegistry::start().await.expect("registry");
    registry.add_image("tools/time", "1.0", DIGEST);
    let settings = ImageCheckSettings::Registry(registry.check_config("registry.test"));
    let operator_ns = operator_ns.to_owned();
    let harness = OperatorHarness::start(HarnessOptions {
        configure: Box::new(move |config| {
            config.image_check = settings;
            config.scope = scope;
            config.operator_namespace = operator_ns;
        }),
        identity: OperatorIdentity::Rbac(rbac),
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let name = format!("time-{}", harness.namespace);
    let mut template = MCPTemplate::test("time")
        .image("registry.test/tools/time:1.0")
        .build();
    template.metadata.name = Some(name.clone());
    let api: Api<MCPTemplate> = Api::all(harness.client.clone());
    api.create(&PostParams::default(), &template)
        .await
        .expect("create template");
    harness
        .wait_for(&api, &name, WAIT, |t| {
            t.status.as_ref().and_then(|s| s.phase) == Some(TemplatePhase::Accepted)
        })
        .await
        .expect("accepted under the chart's RBAC");
    let sim = harness.world.kube().expect("kube-sim");
    let denied = sim.access_record().expect("access record").denied();
    assert!(denied.is_empty(), "denied: {denied:#?}");
    // The rules this scenario did not need: listed for whoever widens the scenarios; the ones
    // for templates must have been used.
    let unused = sim.unused_rules().expect("unused rules");
    for rule in &unused {
        eprintln!("not used by this scenario: {rule}");
    }
    assert!(
        !unused
            .iter()
            .any(|r| r.rule.resources.iter().any(|res| res == "mcptemplates")),
        "the template rules were used: {unused:#?}"
    );
    let _ = api.delete(&name, &Default::default()).await;
    harness.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_under_the_charts_cluster_wide_rbac() {
    template_accepted_under(
        chart_rbac("all-namespaces", "mcp-system"),
        WatchScope::AllNamespaces,
        "mcp-system",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_under_the_charts_namespaced_rbac() {
    template_accepted_under(
        chart_rbac("namespaced", "mcp-team-a"),
        WatchScope::Namespace("team-a".to_owned()),
        "mcp-team-a",
    )
    .await;
}

/// The whole life of a deployment under the chart's cluster-wide RBAC: a pool provisions a
/// droplet for a burst, the deployments become Ready (Secrets for the endpoint, events, status of
/// all four kinds), then everything is deleted through the finalizers. Nothing may be denied, and
/// the chart's rules this scenario left unused are printed (the least-privilege list).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_lives_and_dies_under_the_charts_rbac() {
    use kube::api::{Patch, PatchParams};
    use mcp_droplet_operator::api::deployment::{DeploymentPhase, MCPDeployment};
    use mcp_droplet_operator::api::droplet::Droplet;
    use mcp_droplet_operator::api::pool::DropletPool;

    let harness = OperatorHarness::start(HarnessOptions {
        configure: Box::new(|config| config.operator_namespace = "mcp-system".to_owned()),
        identity: OperatorIdentity::Rbac(chart_rbac("all-namespaces", "mcp-system")),
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let ns = harness.namespace.clone();
    let apply = PatchParams::apply("chart-rbac-test").force();
    let templates: Api<MCPTemplate> = Api::all(harness.client.clone());
    let template_name = format!("time-{ns}");
    let mut template = MCPTemplate::test("time").memory("512Mi").build();
    template.metadata.name = Some(template_name.clone());
    templates
        .patch(&template_name, &apply, &Patch::Apply(&template))
        .await
        .expect("template");
    let pools: Api<DropletPool> = Api::namespaced(harness.client.clone(), &ns);
    let pool = DropletPool::test("default")
        .namespace(&ns)
        .max_droplets(3)
        .build();
    pools
        .patch("default", &apply, &Patch::Apply(&pool))
        .await
        .expect("pool");
    let deployments: Api<MCPDeployment> = Api::namespaced(harness.client.clone(), &ns);
    for i in 0..3 {
        let name = format!("time-{i}");
        let d = MCPDeployment::test(&name)
            .namespace(&ns)
            .template(&template_name)
            .pool("default")
            .build();
        deployments
            .patch(&name, &apply, &Patch::Apply(&d))
            .await
            .expect("deployment");
    }
    for i in 0..3 {
        harness
            .wait_for(
                &deployments,
                &format!("time-{i}"),
                Duration::from_secs(120),
                |d| {
                    d.status
                        .as_ref()
                        .is_some_and(|s| s.phase == DeploymentPhase::Ready)
                },
            )
            .await
            .expect("Ready under the chart's RBAC");
    }
    let droplets: Api<Droplet> = Api::namespaced(harness.client.clone(), &ns);
    for d in deployments
        .list(&Default::default())
        .await
        .expect("list")
        .items
    {
        let name = d.metadata.name.clone().unwrap_or_default();
        deployments
            .delete(&name, &Default::default())
            .await
            .expect("delete");
    }
    for d in droplets
        .list(&Default::default())
        .await
        .expect("list")
        .items
    {
        let name = d.metadata.name.clone().unwrap_or_default();
        droplets
            .delete(&name, &Default::default())
            .await
            .expect("delete");
    }
    let started = std::time::Instant::now();
    while !droplets
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "droplets not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sim = harness.world.kube().expect("kube-sim");
    let denied = sim.access_record().expect("access record").denied();
    assert!(
        denied.is_empty(),
        "denied under the chart's RBAC: {denied:#?}"
    );
    for rule in sim.unused_rules().expect("unused rules") {
        eprintln!("a chart rule this scenario did not use: {rule}");
    }
    let _ = templates.delete(&template_name, &Default::default()).await;
    harness.shutdown().await;
}

/// The chart's cluster-wide documents with every rule on `resource` left out.
fn chart_rbac_without(resource: &str) -> OperatorRbac {
    let mut rbac = chart_rbac("all-namespaces", "mcp-system");
    for document in &mut rbac.documents {
        if let Some(rules) = document
            .get_mut("rules")
            .and_then(serde_json::Value::as_array_mut)
        {
            rules.retain(|rule| {
                !rule["resources"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r == resource))
            });
        }
    }
    rbac
}

/// Every scenario proves the chart's RBAC suffices: a request the operator's RBAC does not
/// grant (here its events, with the events rules left out) fails the scenario when its harness
/// shuts down, naming the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_rbac_does_not_grant_fails_the_scenario_at_shutdown() {
    let harness = OperatorHarness::start(HarnessOptions {
        identity: OperatorIdentity::Rbac(chart_rbac_without("events")),
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let name = format!("time-{}", harness.namespace);
    let mut template = MCPTemplate::test("time").build();
    template.metadata.name = Some(name.clone());
    let api: Api<MCPTemplate> = Api::all(harness.client.clone());
    api.create(&PostParams::default(), &template)
        .await
        .expect("create template");
    let denied = eventually("the operator's event denied", WAIT, || async {
        let denied = harness.operator_denials().expect("access record");
        (!denied.is_empty()).then_some(denied)
    })
    .await;
    assert!(
        denied.iter().all(
            |d| d.user == "system:serviceaccount:mcp-system:mcp-droplet-operator"
                && matches!(&d.attributes, Attributes::Resource(r) if r.resource == "events")
        ),
        "{denied:#?}"
    );
    let _ = api.delete(&name, &Default::default()).await;
    let shutdown = tokio::spawn(harness.shutdown()).await;
    assert!(
        shutdown.as_ref().is_err_and(|e| e.is_panic()),
        "the shutdown passed: {shutdown:?}"
    );
}

/// Only the operator's denials count: a test's own client that is refused something (here a
/// user with no role listing Secrets) does not fail the scenario.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_denied_request_is_not_the_operators() {
    let harness = OperatorHarness::start(HarnessOptions::default())
        .await
        .expect("harness");
    let sim = harness.world.kube().expect("kube-sim");
    let token = sim
        .user_token(UserInfo::user("jane", &[]))
        .expect("a user's token");
    let jane = client_with(sim, &token).expect("jane's client");
    let secrets: Api<Secret> = Api::namespaced(jane, &harness.namespace);
    let refused = secrets.list(&Default::default()).await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 403),
        "{refused:?}"
    );
    let denied = sim.access_record().expect("access record").denied();
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].user, "jane");
    assert!(
        harness
            .operator_denials()
            .expect("access record")
            .is_empty(),
        "jane's denial counted as the operator's"
    );
    harness.shutdown().await;
}

/// A permission the chart grants that the coverage scenario below does not use, kept on
/// purpose: (verb, API group, resource, why).
type Kept = (&'static str, &'static str, &'static str, &'static str);

/// The chart's permissions no scenario uses, each with the reason it stays in the chart. Empty:
/// every permission is used. (Candidates were removed from the chart instead: `get` of objects
/// only watched, `patch` of pools and templates that carry no finalizer, `get` of status
/// subresources, core/v1 events, `update` of the Lease. `create` of Secrets and Droplets, made by
/// server-side apply, is used: kube-sim authorizes it as the server does.) An entry reads
/// `("verb", "api group", "resource", "why the chart grants it anyway")`.
const KEPT_ALTHOUGH_UNUSED: &[Kept] = &[];

/// A Secret with `value` under the key `token`.
fn secret(name: &str, value: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        string_data: Some([("token".to_owned(), value.to_owned())].into()),
        ..Default::default()
    }
}

/// Deletes every object of `api` (their finalizers run in the operator).
async fn delete_all<K>(api: &Api<K>)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for object in api.list(&Default::default()).await.expect("list").items {
        let name = object.meta().name.clone().unwrap_or_default();
        api.delete(&name, &Default::default())
            .await
            .expect("delete");
    }
}

/// What users make the operator do, in one kube-sim under one install mode's rendered RBAC:
/// read the DigitalOcean token and elect a leader on the Lease as `run` does, accept a template
/// whose image the registry has (and again once edited), provision a pool droplet for a
/// deployment with an env Secret until it is Ready, follow the Secret's rotation, replace a pool
/// droplet lost at DigitalOcean, run a Droplet made by hand, then delete everything through the
/// finalizers (a droplet drained while its deployment goes) until no droplet is left, here or at
/// DigitalOcean. Returns the chart's permissions no request used.
async fn the_operators_whole_life(
    rbac: OperatorRbac,
    scope: Option<&str>,
) -> Vec<kube_sim::rbac::RulePermission> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::events::v1::Event;
    use kube::api::{Patch, PatchParams};
    use mcp_droplet_operator::api::deployment::{DeploymentPhase, MCPDeployment};
    use mcp_droplet_operator::api::droplet::{Droplet, DropletPhase};
    use mcp_droplet_operator::api::pool::DropletPool;
    use mcp_droplet_operator::cli::run::{lease_manager, read_token};
    use secrecy::ExposeSecret;

    const LONG: Duration = Duration::from_secs(120);
    let registry = FakeRegistry::start().await.expect("registry");
    registry.add_image("tools/time", "1.0", DIGEST);
    let settings = ImageCheckSettings::Registry(registry.check_config("registry.test"));
    let operator_ns = rbac.namespace.clone();
    let watched = scope.map(str::to_owned);
    let mut harness = OperatorHarness::start(HarnessOptions {
        configure: Box::new(move |config| {
            config.image_check = settings;
            if let Some(ns) = watched {
                config.scope = WatchScope::Namespace(ns);
            }
        }),
        identity: OperatorIdentity::Rbac(rbac),
        start_operator: false,
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let admin = harness.client.clone();
    let apply = PatchParams::apply("chart-rbac-test");
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for name in [Some(operator_ns.as_str()), scope].into_iter().flatten() {
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))
                .expect("namespace");
        namespaces
            .patch(name, &apply, &Patch::Apply(&namespace))
            .await
            .expect("namespace");
    }
    let ns = scope.map_or_else(|| harness.namespace.clone(), str::to_owned);

    // 1. As `run` starts: the DigitalOcean token from its Secret, then leadership on the Lease,
    // both in the operator's namespace.
    Api::<Secret>::namespaced(admin.clone(), &operator_ns)
        .create(
            &PostParams::default(),
            &secret("digitalocean-token", "dop_v1_chart"),
        )
        .await
        .expect("the token Secret");
    let token = read_token(
        harness.operator_client(),
        &operator_ns,
        "digitalocean-token",
        "token",
    )
    .await
    .expect("the token read as `run` reads it");
    assert_eq!(token.expose_secret(), "dop_v1_chart");
    let manager = lease_manager(
        harness.operator_client().clone(),
        &operator_ns,
        "mcp-droplet-operator",
        "replica-0",
    )
    .await
    .expect("the lease manager");
    let (leader, election) = manager.watch().await;
    eventually("leadership", WAIT, || {
        let leader = leader.clone();
        async move { (*leader.borrow()).then_some(()) }
    })
    .await;
    harness.start_operator().expect("the controllers");

    // 2. A template accepted after its image was found in the registry, and again once edited
    // (the same event twice: the recorder patches it into a series).
    let template_name = format!("time-{}", harness.namespace);
    let mut template = MCPTemplate::test("time")
        .image("registry.test/tools/time:1.0")
        .memory("512Mi")
        .secret_env("TOKEN")
        .build();
    template.metadata.name = Some(template_name.clone());
    let templates: Api<MCPTemplate> = Api::all(admin.clone());
    let accepted = |t: &MCPTemplate| {
        t.status.as_ref().is_some_and(|s| {
            s.phase == Some(TemplatePhase::Accepted)
                && s.observed_generation == t.metadata.generation
        })
    };
    for description in ["first", "edited"] {
        template.spec.description = Some(description.to_owned());
        templates
            .patch(&template_name, &apply, &Patch::Apply(&template))
            .await
            .expect("template");
        harness
            .wait_for(&templates, &template_name, WAIT, |t| {
                accepted(t) && t.spec.description.as_deref() == Some(description)
            })
            .await
            .expect("the template accepted");
    }
    // Events of a cluster-scoped object go to `default`.
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    eventually("the Accepted event's series", WAIT, || async {
        events
            .list(&Default::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(template_name.as_str())
                    && e.reason.as_deref() == Some("Accepted")
                    && e.series.is_some()
            })
    })
    .await;

    // 3. A pool, and a deployment with an env Secret that gets a droplet of its own.
    let pools: Api<DropletPool> = Api::namespaced(admin.clone(), &ns);
    pools
        .create(
            &PostParams::default(),
            &DropletPool::test("default")
                .namespace(&ns)
                .max_droplets(2)
                .build(),
        )
        .await
        .expect("pool");
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    secrets
        .create(&PostParams::default(), &secret("time-token", "first"))
        .await
        .expect("the env Secret");
    let deployments: Api<MCPDeployment> = Api::namespaced(admin.clone(), &ns);
    deployments
        .create(
            &PostParams::default(),
            &MCPDeployment::test("time")
                .namespace(&ns)
                .template(&template_name)
                .pool("default")
                .env_from_secret("TOKEN", "time-token", "token")
                .build(),
        )
        .await
        .expect("deployment");
    let ready = |d: &MCPDeployment| {
        d.status.as_ref().is_some_and(|s| {
            s.phase == DeploymentPhase::Ready && d.metadata.generation == s.observed_generation
        })
    };
    let placed_on = |d: &MCPDeployment| {
        d.status
            .as_ref()
            .and_then(|s| s.placement.as_ref())
            .and_then(|p| p.droplet.clone())
    };
    let first = harness
        .wait_for(&deployments, "time", LONG, ready)
        .await
        .expect("Ready on a provisioned droplet");
    let hash = first.status.clone().and_then(|s| s.config_hash);
    let provisioned = placed_on(&first).expect("placed");

    // 4. The Secret rotated: the server is redeployed with the new value.
    secrets
        .patch(
            "time-token",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"token": "second"}})),
        )
        .await
        .expect("rotate the Secret");
    harness
        .wait_for(&deployments, "time", LONG, |d| {
            ready(d) && d.status.as_ref().and_then(|s| s.config_hash.clone()) != hash
        })
        .await
        .expect("Ready again with the new value");

    // 5. Its droplet lost at DigitalOcean: the operator deletes the object, and the pool
    // provisions another for the deployment (whose name may be the same: it is derived from the
    // deployments it is made for).
    let droplets: Api<Droplet> = Api::namespaced(admin.clone(), &ns);
    let before = droplets
        .get(&provisioned)
        .await
        .expect("the provisioned droplet");
    let lost_uid = before.metadata.uid.clone();
    let lost = before
        .status
        .and_then(|s| s.droplet_id)
        .and_then(|id| u64::try_from(id).ok())
        .expect("its DigitalOcean id");
    let cloud = &harness
        .world
        .cloud()
        .expect("a simulated cloud")
        .digitalocean;
    assert!(cloud.lose_droplet(lost), "the droplet existed");
    eventually("the lost droplet's object deleted", LONG, || async {
        let now = droplets.get_opt(&provisioned).await.ok()?;
        now.is_none_or(|d| d.metadata.uid != lost_uid).then_some(())
    })
    .await;
    eventually("the deployment Ready on a new droplet", LONG, || async {
        let d = deployments.get("time").await.ok()?;
        let on = placed_on(&d).filter(|_| ready(&d))?;
        let droplet = droplets.get_opt(&on).await.ok()??;
        let id = droplet.status.and_then(|s| s.droplet_id)?;
        (droplet.metadata.uid != lost_uid && u64::try_from(id).ok() != Some(lost)).then_some(())
    })
    .await;

    // 6. A droplet made by hand.
    droplets
        .create(
            &PostParams::default(),
            &Droplet::test("by-hand")
                .namespace(&ns)
                .region("nyc3")
                .size("s-2vcpu-4gb")
                .build(),
        )
        .await
        .expect("a droplet by hand");
    harness
        .wait_for(&droplets, "by-hand", LONG, |d| {
            d.status
                .as_ref()
                .is_some_and(|s| s.phase == DropletPhase::Ready)
        })
        .await
        .expect("the droplet by hand Ready");

    // 7. Everything deleted: the droplets first, one drained while its deployment goes.
    delete_all(&droplets).await;
    delete_all(&deployments).await;
    delete_all(&pools).await;
    templates
        .delete(&template_name, &Default::default())
        .await
        .expect("delete the template");
    eventually("every object and droplet gone", LONG, || async {
        let left = droplets.list(&Default::default()).await.ok()?.items.len()
            + deployments
                .list(&Default::default())
                .await
                .ok()?
                .items
                .len()
            + pools.list(&Default::default()).await.ok()?.items.len()
            + usize::from(templates.get_opt(&template_name).await.ok()?.is_some())
            + cloud.droplets().len();
        (left == 0).then_some(())
    })
    .await;
    harness.stop_operator().await;
    drop(leader);
    election
        .await
        .expect("the election task")
        .expect("the Lease released");

    let sim = harness.world.kube().expect("kube-sim");
    assert_eq!(
        sim.access_record()
            .expect("access record")
            .permissions_dropped(),
        0,
        "the permission record is exact"
    );
    let unused = sim.unused_permissions().expect("unused permissions");
    harness.shutdown().await;
    unused
}

/// Whether `kept` names `permission`.
fn keeps(kept: &Kept, permission: &kube_sim::rbac::Permission) -> bool {
    let (v, g, r, _) = kept;
    matches!(permission, kube_sim::rbac::Permission::Resource { verb, api_group, resource }
        if verb == v && api_group == g && resource == r)
}

/// The chart's permissions `unused` leaves apart from those kept on purpose (all printed, with
/// why, for whoever reads the log), and the kept ones that were used after all (the list is
/// stale then).
fn unexplained(unused: &[kube_sim::rbac::RulePermission]) -> (Vec<String>, Vec<String>) {
    let mut left = Vec::new();
    for p in unused {
        match KEPT_ALTHOUGH_UNUSED
            .iter()
            .find(|kept| keeps(kept, &p.permission))
        {
            Some((.., why)) => eprintln!("granted, not used by the scenarios: {p} ({why})"),
            None => {
                eprintln!("granted, not used by the scenarios, no reason given: {p}");
                left.push(p.to_string());
            }
        }
    }
    let stale = KEPT_ALTHOUGH_UNUSED
        .iter()
        .filter(|kept| !unused.iter().any(|p| keeps(kept, &p.permission)))
        .map(|(verb, group, resource, _)| format!("{verb} {resource:?} in API group {group:?}"))
        .collect();
    (left, stale)
}

/// Least privilege, proven: the chart's cluster-wide RBAC grants nothing (one verb on one
/// resource) that the operator's whole life does not use, except the permissions kept on
/// purpose in [`KEPT_ALTHOUGH_UNUSED`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_cluster_wide_rbac_grants_only_what_the_operator_uses() {
    let unused = the_operators_whole_life(chart_rbac("all-namespaces", "mcp-system"), None).await;
    let (left, stale) = unexplained(&unused);
    assert!(left.is_empty(), "granted but never used: {left:#?}");
    assert!(stale.is_empty(), "kept as unused but used: {stale:?}");
}

/// The same for the namespaced install (`watchNamespace: team-a`): its Role, the read-only
/// template ClusterRole, the template events' Role and the Lease's Role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_namespaced_rbac_grants_only_what_the_operator_uses() {
    let unused =
        the_operators_whole_life(chart_rbac("namespaced", "mcp-team-a"), Some("team-a")).await;
    let (left, stale) = unexplained(&unused);
    assert!(left.is_empty(), "granted but never used: {left:#?}");
    assert!(stale.is_empty(), "kept as unused but used: {stale:?}");
}
