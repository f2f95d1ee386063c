//! The operator under exactly the Helm chart's RBAC: tests/fixtures/chart/rbac-*.yaml are the
//! ServiceAccount, roles and bindings the chart renders (scripts/lint-charts fails when they
//! drift), kube-sim authorizes every request against them, and a template is accepted with no
//! request denied, in both install modes. Each test lists the chart's rules its scenario did not
//! use (scenarios for pools, droplets and deployments will use the rest).

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
