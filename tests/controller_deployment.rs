//! The MCPDeployment controller against the simulated world (kube-sim, simulated DigitalOcean,
//! real agents whose containers are real MCP servers) with the real Droplet controller, through
//! `OperatorHarness`: deploy onto an existing droplet (and no status rewrite once converged), a
//! pinned droplet, missing Secret and template recovered, a rotated Secret or token restarting
//! the server, drift repaired, deletion through the finalizer, a droplet gone or NotReady and a
//! server failing on its droplet moving the deployment, nothing fits until a droplet arrives, an
//! operator restart mid-deploy, a DTMA droplet deployed to (a rotated Secret replacing its
//! container) and left, and the run contract's RBAC. Each scenario is an
//! `async fn(&OperatorHarness)` so it also runs against a real cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcp_droplet_operator::agent_client::AgentClient;
use mcp_droplet_operator::api::conditions::find;
use mcp_droplet_operator::api::deployment::{DeploymentPhase, MCPDeployment, StepState};
use mcp_droplet_operator::api::droplet::{Droplet, DropletPhase};
use mcp_droplet_operator::api::template::MCPTemplate;
use mcp_droplet_operator::controller::deployment::{
    self, CERTIFICATE_KEY, TOKEN_KEY, URL_KEY, endpoint_secret_name,
};
use mcp_droplet_operator::testing::operator::eventually;
use mcp_droplet_operator::testing::operator::{HarnessOptions, OperatorHarness, OperatorIdentity};

const WAIT: Duration = Duration::from_secs(60);

async fn harness() -> OperatorHarness {
    OperatorHarness::start(HarnessOptions::default())
        .await
        .expect("start the simulated world and the operator")
}

fn deployments(h: &OperatorHarness) -> Api<MCPDeployment> {
    Api::namespaced(h.client.clone(), &h.namespace)
}

fn secrets(h: &OperatorHarness) -> Api<Secret> {
    Api::namespaced(h.client.clone(), &h.namespace)
}

/// A template name unique to this harness (templates are cluster-scoped).
fn template_name(h: &OperatorHarness, base: &str) -> String {
    format!("{base}-{}", h.namespace)
}

async fn create_template(h: &OperatorHarness, template: MCPTemplate) {
    let api: Api<MCPTemplate> = Api::all(h.client.clone());
    api.create(&PostParams::default(), &template)
        .await
        .expect("create the template");
}

async fn create_secret(h: &OperatorHarness, name: &str, key: &str, value: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.as_bytes().to_vec()),
        )])),
        ..Default::default()
    };
    secrets(h)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret");
}

async fn create_deployment(h: &OperatorHarness, deployment: MCPDeployment) {
    let mut deployment = deployment;
    deployment.metadata.namespace = Some(h.namespace.clone());
    deployments(h)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the deployment");
}

/// Applies a Droplet object and waits until the Droplet controller made it Ready (created in
/// the simulated cloud, booted, its agent enrolled).
async fn ready_droplet(h: &OperatorHarness, name: &str) -> Droplet {
    let api: Api<Droplet> = Api::namespaced(h.client.clone(), &h.namespace);
    let droplet = Droplet::test(name)
        .namespace(&h.namespace)
        .region("nyc3")
        .size("s-2vcpu-4gb")
        .build();
    api.create(&PostParams::default(), &droplet)
        .await
        .expect("create the droplet");
    h.wait_for(&api, name, WAIT, |d| {
        d.status.as_ref().is_some_and(|s| {
            s.phase == DropletPhase::Ready
                && s.agent
                    .as_ref()
                    .is_some_and(|a| a.certificate_fingerprint.is_some())
        })
    })
    .await
    .expect("the droplet becomes Ready")
}

fn is_ready(d: &MCPDeployment) -> bool {
    d.status.as_ref().is_some_and(|s| {
        s.phase == DeploymentPhase::Ready && d.metadata.generation == s.observed_generation
    })
}

fn condition_is(d: &MCPDeployment, type_: &str, status: &str, reason: &str) -> bool {
    d.status
        .as_ref()
        .and_then(|s| find(&s.conditions, type_))
        .is_some_and(|c| c.status == status && c.reason == reason)
}

async fn agent_of(h: &OperatorHarness, droplet: &Droplet) -> AgentClient {
    let ctx = h.context().expect("operator running");
    ctx.agents
        .for_droplet(&h.client, droplet, &ctx.config.agent)
        .await
        .expect("read the credential")
        .expect("the droplet's agent is enrolled")
}

async fn container_of(agent: &AgentClient, server: &str) -> Option<String> {
    agent
        .get_server(server)
        .await
        .expect("ask the agent")
        .and_then(|s| s.container_id)
}

/// How many MCP checks the operator ran so far (the `agent_call` histogram's count).
fn probes_run(h: &OperatorHarness) -> u64 {
    let text = h
        .context()
        .expect("operator running")
        .metrics
        .encode()
        .unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.contains("agent_call_duration_seconds_count") && l.contains("operation=\"probe\"")
        })
        .filter_map(|l| l.rsplit(' ').next())
        .filter_map(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

async fn deploys_onto_an_existing_droplet(h: &OperatorHarness) {
    let droplet = ready_droplet(h, "d1").await;
    let template = template_name(h, "time");
    create_template(h, MCPTemplate::test(&template).build()).await;
    create_deployment(h, MCPDeployment::test("time").template(&template).build()).await;
    let ready = h
        .wait_for(&deployments(h), "time", WAIT, is_ready)
        .await
        .expect("the deployment becomes Ready");
    let status = ready.status.clone().expect("status");
    let placement = status.placement.clone().expect("placement");
    assert_eq!(placement.droplet.as_deref(), Some("d1"));
    assert!(placement.breakdown.is_some() && placement.score.is_some());
    let mcp = status.mcp.clone().expect("handshake result");
    assert!(mcp.tools > 0, "tools: {}", mcp.tools);
    assert!(mcp.server_name.is_some());
    let endpoint = status.endpoint.clone().expect("endpoint");
    assert!(endpoint.ends_with("/servers/time/mcp"), "{endpoint}");
    assert_eq!(status.progress.percent, 100);
    assert!(
        status
            .progress
            .steps
            .iter()
            .all(|s| s.finished_at.is_some() || s.name == "Provisioning"),
        "{:?}",
        status.progress.steps
    );
    assert!(condition_is(&ready, "Ready", "True", "Verified"));
    assert!(condition_is(
        &ready,
        "Verified",
        "True",
        "HandshakeSucceeded"
    ));
    assert!(
        ready
            .finalizers()
            .iter()
            .any(|f| f == deployment::FINALIZER)
    );

    // What an MCP client in the cluster needs.
    let secret = eventually("the endpoint Secret", WAIT, || async {
        secrets(h)
            .get_opt(&endpoint_secret_name("time"))
            .await
            .ok()
            .flatten()
    })
    .await;
    let data = secret.data.expect("data");
    assert_eq!(data[URL_KEY].0, endpoint.as_bytes());
    let fingerprint = droplet
        .status
        .as_ref()
        .and_then(|s| s.agent.as_ref())
        .and_then(|a| a.certificate_fingerprint.clone())
        .expect("fingerprint");
    assert_eq!(data[CERTIFICATE_KEY].0, fingerprint.as_bytes());
    let token = String::from_utf8(data[TOKEN_KEY].0.clone()).expect("utf-8");
    assert!(token.len() >= 32);
    assert!(
        !serde_json::to_string(&ready)
            .unwrap_or_default()
            .contains(&token),
        "the token leaked into the object"
    );

    // Converged: checks keep running, the status is not rewritten.
    let ctx = h.context().expect("operator running");
    let writes = ctx.metrics.status_write_count(deployment::NAME);
    let probes = probes_run(h);
    eventually("two more MCP checks", WAIT, || async {
        (probes_run(h) >= probes + 2).then_some(())
    })
    .await;
    assert_eq!(
        ctx.metrics.status_write_count(deployment::NAME),
        writes,
        "a converged deployment was rewritten"
    );
    let again = deployments(h).get("time").await.expect("get");
    assert_eq!(again.status, ready.status);
    assert!(
        ctx.metrics
            .encode()
            .unwrap_or_default()
            .contains("deployment_time_to_ready_seconds_count{provisioned=\"false\"} 1")
    );
}

async fn a_pinned_deployment_goes_to_its_droplet(h: &OperatorHarness) {
    ready_droplet(h, "d1").await;
    ready_droplet(h, "d2").await;
    let template = template_name(h, "pinned");
    create_template(h, MCPTemplate::test(&template).build()).await;
    for name in ["a", "b"] {
        create_deployment(
            h,
            MCPDeployment::test(name)
                .template(&template)
                .pinned_to("d2")
                .build(),
        )
        .await;
    }
    for name in ["a", "b"] {
        let ready = h
            .wait_for(&deployments(h), name, WAIT, is_ready)
            .await
            .expect("Ready");
        let placement = ready.status.and_then(|s| s.placement).expect("placement");
        assert_eq!(placement.droplet.as_deref(), Some("d2"), "{name}");
    }
}

async fn a_missing_secret_stalls_until_it_exists(h: &OperatorHarness) {
    ready_droplet(h, "d1").await;
    let template = template_name(h, "gh");
    create_template(h, MCPTemplate::test(&template).secret_env("TOKEN").build()).await;
    create_deployment(
        h,
        MCPDeployment::test("gh")
            .template(&template)
            .env_from_secret("TOKEN", "gh-token", "token")
            .build(),
    )
    .await;
    let stalled = h
        .wait_for(&deployments(h), "gh", WAIT, |d| {
            condition_is(d, "Stalled", "True", "SecretNotFound")
        })
        .await
        .expect("Stalled on the missing Secret");
    let message = stalled
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, "Stalled"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(message.contains("gh-token"), "{message}");
    assert!(condition_is(&stalled, "Ready", "False", "SecretNotFound"));
    create_secret(h, "gh-token", "token", "ghp_first").await;
    let ready = h
        .wait_for(&deployments(h), "gh", WAIT, is_ready)
        .await
        .expect("Ready once the Secret exists");
    assert!(condition_is(&ready, "Stalled", "False", "Verified"));
}

async fn a_rotated_secret_restarts_the_server(h: &OperatorHarness) {
    let droplet = ready_droplet(h, "d1").await;
    let template = template_name(h, "rot");
    create_template(h, MCPTemplate::test(&template).secret_env("TOKEN").build()).await;
    create_secret(h, "rot-token", "token", "first-value").await;
    create_deployment(
        h,
        MCPDeployment::test("rot")
            .template(&template)
            .env_from_secret("TOKEN", "rot-token", "token")
            .build(),
    )
    .await;
    let ready = h
        .wait_for(&deployments(h), "rot", WAIT, is_ready)
        .await
        .expect("Ready");
    let hash = ready.status.and_then(|s| s.config_hash).expect("hash");
    let agent = agent_of(h, &droplet).await;
    let container = container_of(&agent, "rot").await.expect("a container");

    let patch = serde_json::json!({"data": {"token": "c2Vjb25kLXZhbHVl"}}); // "second-value"
    secrets(h)
        .patch("rot-token", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("rotate the Secret");
    let rotated = h
        .wait_for(&deployments(h), "rot", WAIT, |d| {
            is_ready(d)
                && d.status
                    .as_ref()
                    .and_then(|s| s.config_hash.as_deref())
                    .is_some_and(|new| new != hash)
        })
        .await
        .expect("Ready with a new configuration hash");
    let new_hash = rotated.status.and_then(|s| s.config_hash).expect("hash");
    let replaced = eventually("a new container", WAIT, || async {
        container_of(&agent, "rot")
            .await
            .filter(|c| *c != container)
    })
    .await;
    assert_ne!(replaced, container);
    let running = agent.get_server("rot").await.expect("get").expect("server");
    assert_eq!(
        running
            .spec
            .labels
            .get(deployment::desired::CONFIG_HASH_LABEL),
        Some(&new_hash)
    );

    // Deleting the token Secret rotates the endpoint token: new hash, new `<name>-mcp`.
    let old_token = secrets(h)
        .get(&endpoint_secret_name("rot"))
        .await
        .expect("endpoint Secret")
        .data
        .and_then(|mut d| d.remove(TOKEN_KEY))
        .expect("token");
    secrets(h)
        .delete(
            &deployment::token_secret_name("rot"),
            &DeleteParams::default(),
        )
        .await
        .expect("delete the token Secret");
    h.wait_for(&deployments(h), "rot", WAIT, |d| {
        is_ready(d)
            && d.status
                .as_ref()
                .and_then(|s| s.config_hash.as_deref())
                .is_some_and(|h| h != new_hash)
    })
    .await
    .expect("Ready with the new token");
    eventually("the new token published", WAIT, || async {
        let secret = secrets(h)
            .get_opt(&endpoint_secret_name("rot"))
            .await
            .ok()??;
        let token = secret.data?.remove(TOKEN_KEY)?;
        (token != old_token).then_some(())
    })
    .await;
}

async fn a_missing_template_stalls_until_it_exists(h: &OperatorHarness) {
    ready_droplet(h, "d1").await;
    let template = template_name(h, "late");
    create_deployment(h, MCPDeployment::test("late").template(&template).build()).await;
    h.wait_for(&deployments(h), "late", WAIT, |d| {
        condition_is(d, "Stalled", "True", "TemplateNotFound")
            && d.status
                .as_ref()
                .is_some_and(|s| s.phase == DeploymentPhase::Failed)
    })
    .await
    .expect("Stalled on the missing template");
    create_template(h, MCPTemplate::test(&template).build()).await;
    h.wait_for(&deployments(h), "late", WAIT, is_ready)
        .await
        .expect("Ready once the template exists");
}

async fn drift_is_repaired(h: &OperatorHarness) {
    let droplet = ready_droplet(h, "d1").await;
    let template = template_name(h, "drift");
    create_template(h, MCPTemplate::test(&template).build()).await;
    create_deployment(h, MCPDeployment::test("drift").template(&template).build()).await;
    h.wait_for(&deployments(h), "drift", WAIT, is_ready)
        .await
        .expect("Ready");
    let agent = agent_of(h, &droplet).await;
    let first = container_of(&agent, "drift").await.expect("container");

    // The container removed behind the agent's back: a new one serves again.
    let id = droplet
        .status
        .as_ref()
        .and_then(|s| s.droplet_id)
        .expect("droplet id");
    let runtime = h
        .world
        .cloud()
        .and_then(|c| c.agents.runtime(u64::try_from(id).unwrap_or_default()))
        .expect("the droplet's simulated runtime");
    assert!(runtime.remove_behind_agents_back("drift"));
    let second = eventually("a replacement container", WAIT, || async {
        container_of(&agent, "drift").await.filter(|c| *c != first)
    })
    .await;
    h.wait_for(&deployments(h), "drift", WAIT, is_ready)
        .await
        .expect("Ready again");

    // The server removed from the agent itself: the operator deploys it again.
    agent
        .delete_server("drift")
        .await
        .expect("delete on the agent");
    let third = eventually("the server deployed again", WAIT, || async {
        container_of(&agent, "drift").await.filter(|c| *c != second)
    })
    .await;
    assert_ne!(third, second);
    h.wait_for(&deployments(h), "drift", WAIT, is_ready)
        .await
        .expect("Ready after the redeploy");
}

async fn deletion_removes_the_server(h: &OperatorHarness) {
    let droplet = ready_droplet(h, "d1").await;
    let template = template_name(h, "gone");
    create_template(h, MCPTemplate::test(&template).build()).await;
    create_deployment(h, MCPDeployment::test("gone").template(&template).build()).await;
    h.wait_for(&deployments(h), "gone", WAIT, is_ready)
        .await
        .expect("Ready");
    let agent = agent_of(h, &droplet).await;
    assert!(agent.get_server("gone").await.expect("get").is_some());
    deployments(h)
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the deployment gone", WAIT, || async {
        matches!(deployments(h).get_opt("gone").await, Ok(None)).then_some(())
    })
    .await;
    assert!(
        agent.get_server("gone").await.expect("get").is_none(),
        "the server is still on the droplet"
    );
}

async fn a_deployment_leaves_a_droplet_that_is_gone(h: &OperatorHarness) {
    let first = ready_droplet(h, "d1").await;
    let template = template_name(h, "mover");
    create_template(h, MCPTemplate::test(&template).build()).await;
    // Without autoProvision, so that between the two droplets it fits nowhere.
    create_deployment(
        h,
        MCPDeployment::test("mover")
            .template(&template)
            .auto_provision(false)
            .build(),
    )
    .await;
    let ready = h
        .wait_for(&deployments(h), "mover", WAIT, is_ready)
        .await
        .expect("Ready");
    let on = ready
        .status
        .and_then(|s| s.placement)
        .and_then(|p| p.droplet);
    assert_eq!(on.as_deref(), Some("d1"));
    let old_agent = agent_of(h, &first).await;
    let droplets: Api<Droplet> = Api::namespaced(h.client.clone(), &h.namespace);
    droplets
        .delete("d1", &DeleteParams::default())
        .await
        .expect("delete d1");
    // It leaves d1 although nothing else can take it: the placement is cleared from status
    // (a status write that drops a whole struct, which the API server must accept).
    let unplaced = h
        .wait_for(&deployments(h), "mover", WAIT, |d| {
            condition_is(d, "Stalled", "True", "Unschedulable")
        })
        .await
        .expect("Unschedulable once d1 is being deleted");
    assert!(
        unplaced.status.and_then(|s| s.placement).is_none(),
        "the placement on d1 is cleared"
    );
    let second = ready_droplet(h, "d2").await;
    let new_agent = agent_of(h, &second).await;
    let moved = h
        .wait_for(&deployments(h), "mover", WAIT, |d| {
            is_ready(d)
                && d.status
                    .as_ref()
                    .and_then(|s| s.placement.as_ref())
                    .is_some_and(|p| p.droplet.as_deref() == Some("d2"))
        })
        .await
        .expect("Ready on d2");
    let endpoint = moved.status.and_then(|s| s.endpoint).expect("endpoint");
    assert!(
        endpoint.starts_with(new_agent.base_url()),
        "{endpoint} is not on d2 ({}; d1 is {})",
        new_agent.base_url(),
        old_agent.base_url()
    );
}

async fn nothing_fits_then_a_droplet_arrives(h: &OperatorHarness) {
    let template = template_name(h, "wait");
    create_template(h, MCPTemplate::test(&template).build()).await;
    create_deployment(
        h,
        MCPDeployment::test("manual")
            .template(&template)
            .auto_provision(false)
            .build(),
    )
    .await;
    create_deployment(h, MCPDeployment::test("auto").template(&template).build()).await;
    h.wait_for(&deployments(h), "manual", WAIT, |d| {
        condition_is(d, "Stalled", "True", "Unschedulable")
    })
    .await
    .expect("Unschedulable without autoProvision");
    let waiting = h
        .wait_for(&deployments(h), "auto", WAIT, |d| {
            d.status
                .as_ref()
                .is_some_and(|s| s.phase == DeploymentPhase::Provisioning)
        })
        .await
        .expect("Provisioning with autoProvision");
    let status = waiting.status.expect("status");
    assert!(status.placement.is_none());
    assert!(
        status
            .progress
            .steps
            .iter()
            .any(|s| s.name == "Provisioning" && s.state == StepState::Running)
    );
    // A droplet becoming Ready wakes both.
    ready_droplet(h, "d1").await;
    for name in ["manual", "auto"] {
        h.wait_for(&deployments(h), name, WAIT, is_ready)
            .await
            .expect("Ready once a droplet is there");
    }
    let metrics = h
        .context()
        .expect("operator running")
        .metrics
        .encode()
        .unwrap_or_default();
    assert!(
        metrics.contains("deployment_time_to_ready_seconds_count{provisioned=\"true\"}"),
        "{metrics}"
    );
}

async fn repeated_failures_on_a_droplet_move_the_deployment(h: &OperatorHarness) {
    let first = ready_droplet(h, "d1").await;
    let template = template_name(h, "flaky");
    let spec = MCPTemplate::test(&template).build();
    let image = spec.spec.image.clone();
    create_template(h, spec).await;
    create_deployment(h, MCPDeployment::test("flaky").template(&template).build()).await;
    h.wait_for(&deployments(h), "flaky", WAIT, is_ready)
        .await
        .expect("Ready on d1");
    ready_droplet(h, "d2").await;
    // On d1 the container dies and cannot start again.
    let id = first
        .status
        .as_ref()
        .and_then(|s| s.droplet_id)
        .expect("droplet id");
    let runtime = h
        .world
        .cloud()
        .and_then(|c| c.agents.runtime(u64::try_from(id).unwrap_or_default()))
        .expect("the droplet's simulated runtime");
    runtime.fail_starts_of(&image);
    assert!(runtime.remove_behind_agents_back("flaky"));
    let moved = h
        .wait_for(&deployments(h), "flaky", WAIT, |d| {
            is_ready(d)
                && d.status
                    .as_ref()
                    .and_then(|s| s.placement.as_ref())
                    .is_some_and(|p| p.droplet.as_deref() == Some("d2"))
        })
        .await
        .expect("moved to d2 and Ready there");
    assert!(condition_is(&moved, "Degraded", "False", "Healthy"));
    let old = agent_of(h, &first).await;
    assert!(
        old.get_server("flaky").await.expect("get").is_none(),
        "the server was left behind on d1"
    );
    let reasons = event_reasons(h, "flaky").await;
    for expected in ["Moved", "Degraded", "Recovered", "Ready"] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected}: {reasons:?}"
        );
    }
}

/// The reasons of the events recorded for deployment `name`.
async fn event_reasons(h: &OperatorHarness, name: &str) -> Vec<String> {
    use k8s_openapi::api::events::v1::Event;
    let api: Api<Event> = Api::namespaced(h.client.clone(), &h.namespace);
    let events = api.list(&Default::default()).await.expect("list events");
    events
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

async fn an_unreachable_agent_moves_the_deployment(h: &OperatorHarness) {
    let first = ready_droplet(h, "d1").await;
    let template = template_name(h, "lost");
    create_template(h, MCPTemplate::test(&template).build()).await;
    create_deployment(h, MCPDeployment::test("lost").template(&template).build()).await;
    h.wait_for(&deployments(h), "lost", WAIT, is_ready)
        .await
        .expect("Ready on d1");
    ready_droplet(h, "d2").await;
    let id = first
        .status
        .as_ref()
        .and_then(|s| s.droplet_id)
        .expect("droplet id");
    let cloud = h.world.cloud().expect("cloud");
    assert!(
        cloud
            .agents
            .stop_agent(u64::try_from(id).unwrap_or_default())
            .await
    );
    h.wait_for(&deployments(h), "lost", WAIT, |d| {
        is_ready(d)
            && d.status
                .as_ref()
                .and_then(|s| s.placement.as_ref())
                .is_some_and(|p| p.droplet.as_deref() == Some("d2"))
    })
    .await
    .expect("moved to d2 after the grace period");
    let reasons = event_reasons(h, "lost").await;
    assert!(reasons.iter().any(|r| r == "Moved"), "{reasons:?}");
}

/// Adopts a cloud droplet named `name` as a DTMA droplet (a fake DTMA, as HEAD behaves, where
/// the real one listens; its containers real MCP servers on their host ports) and waits until
/// it is Ready.
async fn ready_dtma_droplet(
    h: &OperatorHarness,
    name: &str,
) -> (
    mcp_droplet_operator::testing::dtma_fake::FakeDtma,
    std::net::Ipv4Addr,
) {
    use mcp_droplet_operator::cloud::models::DropletCreateRequest;
    use mcp_droplet_operator::controller::agent_access::credential_secret_name;
    use mcp_droplet_operator::sim::operator::world_cloud_client;
    use mcp_droplet_operator::telemetry::Metrics;
    use mcp_droplet_operator::testing::dtma_fake::{FakeAgent, FakeDtma, Quirks};

    let cloud = world_cloud_client(&h.world, &Metrics::new())
        .expect("a simulated cloud")
        .expect("a client");
    let created = cloud
        .create_droplet(&DropletCreateRequest {
            name: name.into(),
            region: "nyc3".into(),
            size: "s-2vcpu-4gb".into(),
            image: "ubuntu-24-04-x64".into(),
            ..Default::default()
        })
        .await
        .expect("created")
        .droplet;
    let existing = eventually("the cloud droplet active", WAIT, || async {
        cloud
            .get_droplet(created.id)
            .await
            .ok()
            .filter(|d| d.is_ready() && d.public_ipv4().is_some())
    })
    .await;
    let ip = existing.public_ipv4().expect("ip");
    let fake = FakeAgent::new(Quirks::real(), &["dtma-token"]);
    fake.serve_mcp_on(std::net::IpAddr::V4(ip));
    let dtma = FakeDtma::serve_on(fake, std::net::SocketAddr::from((ip, 30000)))
        .await
        .expect("fake DTMA listens");
    create_secret(h, &credential_secret_name(name), "credential", "dtma-token").await;
    let droplets: Api<Droplet> = Api::namespaced(h.client.clone(), &h.namespace);
    let droplet = Droplet::test(name)
        .namespace(&h.namespace)
        .adopt(i64::try_from(existing.id).unwrap_or_default())
        .dtma()
        .build();
    droplets
        .create(&PostParams::default(), &droplet)
        .await
        .expect("adopt");
    h.wait_for(&droplets, name, WAIT, |d| {
        d.status
            .as_ref()
            .is_some_and(|s| s.phase == DropletPhase::Ready)
    })
    .await
    .expect("the DTMA droplet is Ready");
    (dtma, ip)
}

/// The fake DTMA's containers of deployment `server` (named `mcpdo-<server>[_<hash>][.<n>]`).
fn dtma_containers_of(
    dtma: &mcp_droplet_operator::testing::dtma_fake::FakeAgent,
    server: &str,
) -> Vec<mcp_droplet_operator::testing::dtma_fake::HostContainer> {
    use mcp_droplet_operator::dtma::{DEFAULT_NAME_PREFIX, owner_of};
    dtma.host_containers()
        .into_iter()
        .filter(|c| owner_of(DEFAULT_NAME_PREFIX, &c.name) == Some(server))
        .collect()
}

/// A DTMA droplet takes a pinned deployment and one placed by score; both are Ready with
/// plain-HTTP endpoints on it; rotating one's Secret replaces its container (the new value in
/// the deploy DTMA received, the old container removed, the other left alone); deleting one
/// removes its container and only its (decision 0023).
async fn a_dtma_droplet_is_adopted_and_deployed_to(h: &OperatorHarness) {
    let (dtma, ip) = ready_dtma_droplet(h, "legacy").await;

    // DTMA runs containers as they are: the template serves MCP over HTTP itself.
    let template = template_name(h, "old");
    create_template(
        h,
        MCPTemplate::test(&template).streamable_http(8080).build(),
    )
    .await;
    create_deployment(
        h,
        MCPDeployment::test("pinned")
            .template(&template)
            .pinned_to("legacy")
            .build(),
    )
    .await;
    // Not pinned and without autoProvision: only the DTMA droplet can take it, by score.
    create_secret(h, "free-token", "token", "s3cret").await;
    create_deployment(
        h,
        MCPDeployment::test("free")
            .template(&template)
            .env_from_secret("TOKEN", "free-token", "token")
            .auto_provision(false)
            .build(),
    )
    .await;
    let on_legacy = |d: &MCPDeployment| {
        is_ready(d)
            && d.status
                .as_ref()
                .and_then(|s| s.placement.as_ref())
                .is_some_and(|p| p.droplet.as_deref() == Some("legacy"))
    };
    let base = format!("http://{ip}:");
    for name in ["pinned", "free"] {
        let ready = h
            .wait_for(&deployments(h), name, WAIT, on_legacy)
            .await
            .expect("Ready on the DTMA droplet");
        let status = ready.status.expect("status");
        let endpoint = status.endpoint.expect("endpoint");
        assert!(endpoint.starts_with(&base), "{endpoint} is not on {ip}");
        assert!(
            status.mcp.as_ref().is_some_and(|m| m.tools > 0),
            "no handshake recorded: {:?}",
            status.mcp
        );
        // What a client needs: the URL, and neither a token nor a pinned certificate (DTMA has
        // none).
        let published = eventually("the endpoint Secret", WAIT, || async {
            secrets(h)
                .get_opt(&endpoint_secret_name(name))
                .await
                .ok()
                .flatten()
        })
        .await;
        let data = published.data.unwrap_or_default();
        assert_eq!(
            data.get(URL_KEY).map(|v| v.0.clone()),
            Some(endpoint.into_bytes())
        );
        assert!(!data.contains_key(TOKEN_KEY), "a token for DTMA");
        assert!(
            !data.contains_key(CERTIFICATE_KEY),
            "a certificate for DTMA"
        );
    }
    let running = |name: &str| {
        dtma_containers_of(&dtma, name)
            .iter()
            .any(|c| c.state == "running")
    };
    assert!(
        running("pinned") && running("free"),
        "{:?}",
        dtma.host_containers()
    );

    // A rotated Secret: DTMA lists no env, but the container's name carries the configuration
    // hash, so "free" gets a new container with the new value and the old one goes.
    let before = |name: &str| -> Vec<String> {
        dtma_containers_of(&dtma, name)
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    let (free_before, pinned_before) = (before("free"), before("pinned"));
    assert_eq!(free_before.len(), 1, "{free_before:?}");
    let hash = deployments(h)
        .get("free")
        .await
        .expect("get")
        .status
        .and_then(|s| s.config_hash)
        .expect("a configuration hash");
    assert!(
        free_before[0].ends_with(&format!("_{hash}")),
        "{free_before:?} does not carry {hash}"
    );
    let patch = serde_json::json!({"data": {"token": "cm90YXRlZA=="}}); // "rotated"
    secrets(h)
        .patch("free-token", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("rotate the Secret");
    let rotated = h
        .wait_for(&deployments(h), "free", WAIT, |d| {
            on_legacy(d)
                && d.status
                    .as_ref()
                    .and_then(|s| s.config_hash.as_deref())
                    .is_some_and(|new| new != hash)
        })
        .await
        .expect("Ready again with a new configuration hash");
    let new_hash = rotated.status.and_then(|s| s.config_hash).expect("hash");
    let now = dtma_containers_of(&dtma, "free");
    assert_eq!(now.len(), 1, "the old container is still there: {now:?}");
    assert!(now[0].name.ends_with(&format!("_{new_hash}")), "{now:?}");
    assert_eq!(now[0].state, "running");
    assert!(
        now[0].env.iter().any(|e| e == "TOKEN=rotated"),
        "the new value did not reach DTMA"
    );
    assert_eq!(
        before("pinned"),
        pinned_before,
        "the neighbour was replaced"
    );
    let reasons = event_reasons(h, "free").await;
    assert!(reasons.iter().any(|r| r == "ConfigChanged"), "{reasons:?}");

    // Its Secret gone, "free" cannot be computed: the droplet's set is incomplete, and the
    // passes of "pinned" (each reconciles the whole droplet, then probes) leave its server be.
    secrets(h)
        .delete("free-token", &DeleteParams::default())
        .await
        .expect("delete the Secret");
    h.wait_for(&deployments(h), "free", WAIT, |d| {
        condition_is(d, "Stalled", "True", "SecretNotFound")
    })
    .await
    .expect("free stalls without its Secret");
    let probes = probes_run(h);
    eventually("two more checks of pinned", WAIT, || async {
        (probes_run(h) >= probes + 2).then_some(())
    })
    .await;
    assert!(running("free"), "{:?}", dtma.host_containers());

    deployments(h)
        .delete("free", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the deployment gone", WAIT, || async {
        matches!(deployments(h).get_opt("free").await, Ok(None)).then_some(())
    })
    .await;
    let names: Vec<String> = dtma.host_containers().into_iter().map(|c| c.name).collect();
    assert!(
        !names.iter().any(|n| n.starts_with("mcpdo-free")),
        "the deleted deployment's container is still there: {names:?}"
    );
    assert!(running("pinned"), "{:?}", dtma.host_containers());
    h.wait_for(&deployments(h), "pinned", WAIT, on_legacy)
        .await
        .expect("the other stays Ready");
}

/// A deployment on a DTMA droplet re-pinned to another droplet moves there, and its DTMA
/// container is removed (the DTMA droplet keeps nothing of it).
async fn a_deployment_moves_off_a_dtma_droplet(h: &OperatorHarness) {
    let (dtma, _) = ready_dtma_droplet(h, "legacy").await;
    let template = template_name(h, "leave");
    create_template(
        h,
        MCPTemplate::test(&template).streamable_http(8080).build(),
    )
    .await;
    create_deployment(
        h,
        MCPDeployment::test("leaver")
            .template(&template)
            .pinned_to("legacy")
            .build(),
    )
    .await;
    let placed_on = |d: &MCPDeployment, droplet: &str| {
        is_ready(d)
            && d.status
                .as_ref()
                .and_then(|s| s.placement.as_ref())
                .is_some_and(|p| p.droplet.as_deref() == Some(droplet))
    };
    h.wait_for(&deployments(h), "leaver", WAIT, |d| placed_on(d, "legacy"))
        .await
        .expect("Ready on the DTMA droplet");
    assert_eq!(dtma_containers_of(&dtma, "leaver").len(), 1);

    let second = ready_droplet(h, "d2").await;
    let patch = serde_json::json!({"spec": {"placement": {"dropletName": "d2"}}});
    deployments(h)
        .patch("leaver", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("re-pin");
    let moved = h
        .wait_for(&deployments(h), "leaver", WAIT, |d| placed_on(d, "d2"))
        .await
        .expect("Ready on d2");
    let endpoint = moved.status.and_then(|s| s.endpoint).expect("endpoint");
    let agent = agent_of(h, &second).await;
    assert!(
        endpoint.starts_with(agent.base_url()),
        "{endpoint} is not on d2"
    );
    assert!(
        dtma_containers_of(&dtma, "leaver").is_empty(),
        "its DTMA container stayed: {:?}",
        dtma.host_containers()
    );
    let reasons = event_reasons(h, "leaver").await;
    assert!(reasons.iter().any(|r| r == "Moved"), "{reasons:?}");
}

async fn auto_provisions_when_nothing_fits(h: &OperatorHarness) {
    let template = template_name(h, "auto");
    create_template(h, MCPTemplate::test(&template).build()).await;
    for i in 0..3 {
        create_deployment(
            h,
            MCPDeployment::test(&format!("auto-{i}"))
                .template(&template)
                .build(),
        )
        .await;
    }
    for i in 0..3 {
        let ready = h
            .wait_for(&deployments(h), &format!("auto-{i}"), WAIT, is_ready)
            .await
            .expect("Ready on a provisioned droplet");
        let steps = ready.status.expect("status").progress.steps;
        assert!(
            steps
                .iter()
                .any(|s| s.name == "Provisioning" && s.state == StepState::Succeeded),
            "{steps:?}"
        );
    }
}

macro_rules! scenario {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let h = harness().await;
            super::$name(&h).await;
            h.shutdown().await;
        }
    };
}

mod kube_sim {
    use super::harness;
    scenario!(deploys_onto_an_existing_droplet);
    scenario!(a_pinned_deployment_goes_to_its_droplet);
    scenario!(a_missing_secret_stalls_until_it_exists);
    scenario!(a_rotated_secret_restarts_the_server);
    scenario!(a_missing_template_stalls_until_it_exists);
    scenario!(drift_is_repaired);
    scenario!(deletion_removes_the_server);
    scenario!(a_deployment_leaves_a_droplet_that_is_gone);
    scenario!(nothing_fits_then_a_droplet_arrives);
    scenario!(repeated_failures_on_a_droplet_move_the_deployment);
    scenario!(an_unreachable_agent_moves_the_deployment);
    scenario!(a_dtma_droplet_is_adopted_and_deployed_to);
    scenario!(a_deployment_moves_off_a_dtma_droplet);
    scenario!(auto_provisions_when_nothing_fits);
}

/// The operator stopped at once (as a killed process) right after the placement was recorded,
/// then started with fresh memory: the deployment converges on the same droplet, with one
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restart_mid_deploy_converges() {
    let mut h = harness().await;
    let droplet = ready_droplet(&h, "d1").await;
    let template = template_name(&h, "restart");
    create_template(&h, MCPTemplate::test(&template).build()).await;
    create_deployment(&h, MCPDeployment::test("r").template(&template).build()).await;
    h.wait_for(&deployments(&h), "r", WAIT, |d| {
        d.status.as_ref().is_some_and(|s| s.placement.is_some())
    })
    .await
    .expect("placed");
    h.stop_operator_now();
    h.start_operator().expect("start again");
    let ready = h
        .wait_for(&deployments(&h), "r", WAIT, is_ready)
        .await
        .expect("Ready after the restart");
    let on = ready
        .status
        .and_then(|s| s.placement)
        .and_then(|p| p.droplet);
    assert_eq!(on.as_deref(), Some("d1"));
    let agent = agent_of(&h, &droplet).await;
    let servers = agent.list_servers().await.expect("list");
    assert_eq!(servers.len(), 1, "{servers:?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_controller_needs_only_the_run_contracts_permissions() {
    let h = OperatorHarness::start(HarnessOptions {
        // Exactly the chart's rendered RBAC (the default, spelled out: this is its test).
        identity: OperatorIdentity::ChartRbac,
        ..HarnessOptions::default()
    })
    .await
    .expect("start under RBAC");
    a_rotated_secret_restarts_the_server(&h).await;
    deployments(&h)
        .delete("rot", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the deployment gone", WAIT, || async {
        matches!(deployments(&h).get_opt("rot").await, Ok(None)).then_some(())
    })
    .await;
    let sim = h.world.kube().expect("kube-sim");
    let denied = sim.access_record().expect("access record").denied();
    assert!(denied.is_empty(), "denied: {denied:#?}");
    h.shutdown().await;
}

/// The same scenarios against the real cluster named by `MCP_E2E_KUBECONFIG` (the operator
/// in-process with the simulated cloud); skipped with a message when it is not set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_on_a_real_cluster() {
    if HarnessOptions::real_cluster_from_env().is_none() {
        eprintln!(
            "MCP_E2E_KUBECONFIG is not set: the real-cluster run of these scenarios is skipped"
        );
        return;
    }
    macro_rules! on_cluster {
        ($($name:ident),* $(,)?) => {$(
            let options = HarnessOptions::real_cluster_from_env().expect("checked above");
            let h = OperatorHarness::start(options).await.expect("start against the cluster");
            $name(&h).await;
            h.shutdown().await;
        )*};
    }
    on_cluster!(
        deploys_onto_an_existing_droplet,
        a_pinned_deployment_goes_to_its_droplet,
        a_missing_secret_stalls_until_it_exists,
        a_rotated_secret_restarts_the_server,
        a_missing_template_stalls_until_it_exists,
        drift_is_repaired,
        deletion_removes_the_server,
        a_deployment_leaves_a_droplet_that_is_gone,
        nothing_fits_then_a_droplet_arrives,
        repeated_failures_on_a_droplet_move_the_deployment,
        an_unreachable_agent_moves_the_deployment,
        a_dtma_droplet_is_adopted_and_deployed_to,
        a_deployment_moves_off_a_dtma_droplet,
        auto_provisions_when_nothing_fits,
    );
}
