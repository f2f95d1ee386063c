//! The MCPTemplate controller in the simulated world (kube-sim, the operator on a scaled clock)
//! with the stand-in registry: Accepted when the image exists, Rejected when the registry says
//! it does not (and Accepted once it is pushed), Accepted with `ImageAvailable: Unknown` when the
//! registry is down, warnings in a condition and in events, and no status rewrite (and no
//! registry call) when nothing changed. Each scenario runs against kube-sim, and against a real
//! cluster too when `MCP_E2E_KUBECONFIG` names one (the operator and the stand-in registry stay
//! in-process; template names carry the run's namespace, since templates are cluster-scoped).

use std::time::{Duration, Instant};

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use mcp_droplet_operator::api::conditions::find;
use mcp_droplet_operator::api::template::{MCPTemplate, TemplatePhase};
use mcp_droplet_operator::controller::template::NAME;
use mcp_droplet_operator::controller::template::plan::{ImageObservation, plan};
use mcp_droplet_operator::image_check::ImageCheckSettings;
use mcp_droplet_operator::image_check::{CheckedImage, ImageCheck};
use mcp_droplet_operator::telemetry::metrics::ControllerLabels;
use mcp_droplet_operator::testing::operator::{HarnessOptions, OperatorHarness, OperatorIdentity};
use mcp_droplet_operator::testing::{FakeRegistry, RegistryMode};
use serde::Deserialize;

const DIGEST: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";
const WAIT: Duration = Duration::from_secs(30);

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

/// The operator with its registry checks sent to `registry` for references to `registry.test`.
async fn operator_with(registry: &FakeRegistry, options: HarnessOptions) -> OperatorHarness {
    let settings = ImageCheckSettings::Registry(registry.check_config("registry.test"));
    OperatorHarness::start(HarnessOptions {
        configure: Box::new(move |config| config.image_check = settings),
        ..options
    })
    .await
    .expect("harness")
}

/// Creates `template` under a name unique to the run; returns the API and the name.
async fn create(
    harness: &OperatorHarness,
    mut template: MCPTemplate,
) -> (Api<MCPTemplate>, String) {
    let name = format!(
        "{}-{}",
        template.metadata.name.as_deref().unwrap_or("t"),
        harness.namespace
    );
    template.metadata.name = Some(name.clone());
    let api: Api<MCPTemplate> = Api::all(harness.client.clone());
    api.create(&PostParams::default(), &template)
        .await
        .expect("create template");
    (api, name)
}

/// Deletes the run's template (it is cluster-scoped: the run's namespace does not take it).
async fn finish(harness: OperatorHarness, api: &Api<MCPTemplate>, name: &str) {
    let _ = api.delete(name, &Default::default()).await;
    harness.shutdown().await;
}

fn phase(t: &MCPTemplate) -> Option<TemplatePhase> {
    t.status.as_ref().and_then(|s| s.phase)
}

/// `(status, reason)` of condition `type_`.
fn condition(t: &MCPTemplate, type_: &str) -> Option<(String, String)> {
    let status = t.status.as_ref()?;
    find(&status.conditions, type_).map(|c| (c.status.clone(), c.reason.clone()))
}

fn is(t: &MCPTemplate, type_: &str, status: &str, reason: &str) -> bool {
    condition(t, type_) == Some((status.to_string(), reason.to_string()))
}

async fn event_reasons(harness: &OperatorHarness, template: &str) -> Vec<String> {
    let events: Api<Event> = Api::all(harness.client.clone());
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(template))
        .filter_map(|e| e.reason)
        .collect()
}

/// Polls `check` every 50 ms for at most `WAIT`.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_image_is_accepted_and_a_converged_template_is_left_alone() {
    on_every_cluster(an_existing_image_is_accepted_and_a_converged_template_is_left_alone_on).await;
}

async fn an_existing_image_is_accepted_and_a_converged_template_is_left_alone_on(
    options: HarnessOptions,
) {
    let registry = FakeRegistry::start().await.expect("registry");
    registry.add_image("tools/time", "1.0", DIGEST);
    let harness = operator_with(&registry, options).await;
    let (api, name) = create(
        &harness,
        MCPTemplate::test("time")
            .image("registry.test/tools/time:1.0")
            .no_network()
            .build(),
    )
    .await;
    let accepted = harness
        .wait_for(&api, &name, WAIT, |t| {
            phase(t) == Some(TemplatePhase::Accepted)
        })
        .await
        .expect("accepted");
    for (type_, status, reason) in [
        ("Ready", "True", "Accepted"),
        ("Stalled", "False", "Accepted"),
        ("Reconciling", "False", "Accepted"),
        ("ImageReference", "True", "Valid"),
        ("Transport", "True", "Valid"),
        ("EnvSchema", "True", "Valid"),
        ("Resources", "True", "Valid"),
        ("ImageAvailable", "True", "ImageFound"),
        ("Warning", "False", "NoWarnings"),
    ] {
        assert!(
            is(&accepted, type_, status, reason),
            "{type_}: {:?}",
            condition(&accepted, type_)
        );
    }
    let status = accepted.status.as_ref().expect("status");
    assert_eq!(status.observed_generation, accepted.metadata.generation);
    let available = find(&status.conditions, "ImageAvailable").expect("ImageAvailable");
    assert!(available.message.contains(DIGEST), "{}", available.message);
    eventually("the Accepted event", || async {
        event_reasons(&harness, &name)
            .await
            .contains(&"Accepted".to_string())
    })
    .await;

    // Converged: further passes (forced by metadata changes) neither write status nor ask the
    // registry again.
    let ctx = harness.context().expect("operator").clone();
    let labels = ControllerLabels {
        controller: NAME.to_string(),
    };
    let writes = ctx.metrics.status_write_count(NAME);
    let checks = registry.manifest_requests();
    assert!(writes >= 1);
    for round in 0..3 {
        let before = ctx.metrics.reconciles.get_or_create(&labels).get();
        let patch =
            serde_json::json!({"metadata": {"annotations": {"touched": round.to_string()}}});
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate");
        eventually("a reconcile pass after the annotation", || {
            let ctx = ctx.clone();
            let labels = labels.clone();
            async move { ctx.metrics.reconciles.get_or_create(&labels).get() > before }
        })
        .await;
    }
    assert_eq!(
        ctx.metrics.status_write_count(NAME),
        writes,
        "status rewritten"
    );
    assert_eq!(registry.manifest_requests(), checks, "registry asked again");
    let latest = api.get(&name).await.expect("get");
    assert_eq!(latest.status, accepted.status);
    finish(harness, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_rejects_until_it_is_pushed() {
    on_every_cluster(a_missing_image_rejects_until_it_is_pushed_on).await;
}

async fn a_missing_image_rejects_until_it_is_pushed_on(options: HarnessOptions) {
    let registry = FakeRegistry::start().await.expect("registry");
    let harness = operator_with(&registry, options).await;
    let (api, name) = create(
        &harness,
        MCPTemplate::test("fetch")
            .image("registry.test/tools/fetch:2.0")
            .no_network()
            .build(),
    )
    .await;
    let rejected = harness
        .wait_for(&api, &name, WAIT, |t| {
            phase(t) == Some(TemplatePhase::Rejected)
        })
        .await
        .expect("rejected");
    assert!(is(&rejected, "Stalled", "True", "ImageNotFound"));
    assert!(is(&rejected, "Ready", "False", "ImageNotFound"));
    assert!(is(&rejected, "ImageAvailable", "False", "ImageNotFound"));
    assert!(is(&rejected, "ImageReference", "True", "Valid"));
    eventually("the Rejected event", || async {
        event_reasons(&harness, &name)
            .await
            .contains(&"Rejected".to_string())
    })
    .await;

    // Pushed: the next check (minutes of the scaled clock) accepts it without any edit.
    registry.add_image("tools/fetch", "2.0", DIGEST);
    let accepted = harness
        .wait_for(&api, &name, WAIT, |t| {
            phase(t) == Some(TemplatePhase::Accepted)
        })
        .await
        .expect("accepted after the push");
    assert!(is(&accepted, "ImageAvailable", "True", "ImageFound"));
    assert!(is(&accepted, "Stalled", "False", "Accepted"));
    finish(harness, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_that_is_down_leaves_the_template_accepted_with_unknown_availability() {
    on_every_cluster(
        a_registry_that_is_down_leaves_the_template_accepted_with_unknown_availability_on,
    )
    .await;
}

async fn a_registry_that_is_down_leaves_the_template_accepted_with_unknown_availability_on(
    options: HarnessOptions,
) {
    let registry = FakeRegistry::start().await.expect("registry");
    registry.set_mode(RegistryMode::ServerError);
    let harness = operator_with(&registry, options).await;
    let (api, name) = create(
        &harness,
        MCPTemplate::test("git")
            .image("registry.test/tools/git:1")
            .no_network()
            .build(),
    )
    .await;
    let failing = harness
        .wait_for(&api, &name, WAIT, |t| {
            is(t, "ImageAvailable", "Unknown", "RegistryServerError")
        })
        .await
        .expect("unknown on 500");
    assert_eq!(phase(&failing), Some(TemplatePhase::Accepted));
    assert!(is(&failing, "Ready", "True", "Accepted"));

    // Gone entirely: unreachable, still accepted.
    let controls = registry.controls();
    drop(registry);
    let gone = harness
        .wait_for(&api, &name, WAIT, |t| {
            is(t, "ImageAvailable", "Unknown", "RegistryUnreachable")
        })
        .await
        .expect("unknown when unreachable");
    assert_eq!(phase(&gone), Some(TemplatePhase::Accepted));
    assert!(controls.manifest_requests() >= 1);
    eventually("the RegistryServerError event", || async {
        event_reasons(&harness, &name)
            .await
            .contains(&"RegistryServerError".to_string())
    })
    .await;
    finish(harness, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warnings_show_in_a_condition_and_events_without_rejecting() {
    on_every_cluster(warnings_show_in_a_condition_and_events_without_rejecting_on).await;
}

async fn warnings_show_in_a_condition_and_events_without_rejecting_on(options: HarnessOptions) {
    let registry = FakeRegistry::start().await.expect("registry");
    registry.add_image("tools/everything", "latest", DIGEST);
    let harness = operator_with(&registry, options).await;
    let (api, name) = create(
        &harness,
        MCPTemplate::test("everything")
            .image("registry.test/tools/everything:latest")
            .args(&["--privileged"])
            .build(),
    )
    .await;
    let warned = harness
        .wait_for(&api, &name, WAIT, |t| {
            phase(t) == Some(TemplatePhase::Accepted)
        })
        .await
        .expect("accepted");
    assert!(is(&warned, "Warning", "True", "PrivilegedSettings"));
    let status = warned.status.as_ref().expect("status");
    let warning = find(&status.conditions, "Warning").expect("Warning");
    for said in ["--privileged", "spec.network is not set", "is not pinned"] {
        assert!(
            warning.message.contains(said),
            "{said}: {}",
            warning.message
        );
    }
    eventually("one event per warning", || async {
        let reasons = event_reasons(&harness, &name).await;
        [
            "PrivilegedSettings",
            "BroadNetworkAccess",
            "UnpinnedImageTag",
        ]
        .iter()
        .all(|r| reasons.contains(&r.to_string()))
    })
    .await;
    finish(harness, &api, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_controller_needs_only_the_run_contracts_permissions() {
    let registry = FakeRegistry::start().await.expect("registry");
    registry.add_image("tools/time", "1.0", DIGEST);
    let harness = operator_with(
        &registry,
        HarnessOptions {
            // Exactly the chart's rendered RBAC (the default, spelled out: this is its test).
            identity: OperatorIdentity::ChartRbac,
            ..HarnessOptions::default()
        },
    )
    .await;
    let (api, name) = create(
        &harness,
        MCPTemplate::test("time")
            .image("registry.test/tools/time:1.0")
            .build(),
    )
    .await;
    harness
        .wait_for(&api, &name, WAIT, |t| {
            phase(t) == Some(TemplatePhase::Accepted)
                && is(t, "Warning", "True", "BroadNetworkAccess")
        })
        .await
        .expect("accepted under RBAC");
    eventually("the Accepted event", || async {
        event_reasons(&harness, &name)
            .await
            .contains(&"Accepted".to_string())
    })
    .await;
    let sim = harness.world.kube().expect("kube-sim");
    let denied = sim.access_record().expect("access record").denied();
    assert!(denied.is_empty(), "denied: {denied:#?}");
    finish(harness, &api, &name).await;
}

/// Every MCPTemplate shipped in `examples/` and `examples/catalog/`.
fn shipped_templates() -> Vec<(std::path::PathBuf, MCPTemplate)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<_> = [root.clone(), root.join("catalog")]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).expect("examples"))
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut templates = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_json::Value::deserialize(document).expect("yaml");
            if value.get("kind").and_then(|k| k.as_str()) == Some("MCPTemplate") {
                templates.push((
                    path.clone(),
                    serde_json::from_value(value).expect("template"),
                ));
            }
        }
    }
    templates
}

#[test]
fn every_shipped_template_is_accepted_when_its_image_exists() {
    let templates = shipped_templates();
    assert!(templates.len() >= 20, "found only {}", templates.len());
    let now = jiff::Timestamp::from_second(1_800_000_000).expect("time");
    let found = ImageObservation::Checked(CheckedImage {
        check: ImageCheck::Exists { digest: None },
        checked_at: now,
        recheck_at: now,
    });
    for (path, mut template) in templates {
        template.metadata.generation = Some(1);
        let planned = plan(&template, &found, Duration::from_secs(600), now);
        let ready = find(&planned.status.conditions, "Ready").expect("Ready");
        assert_eq!(
            planned.status.phase,
            Some(TemplatePhase::Accepted),
            "{}: {}",
            path.display(),
            ready.message
        );
    }
}
