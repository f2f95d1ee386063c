//! The Droplet controller against the whole simulated world (kube-sim, simulated DigitalOcean,
//! real agents, one scaled clock): provisioning to Ready, the credential stored before
//! enrolment, no rewrite of a converged status, deletion with and without Retain, adoption of
//! our agent and of DTMA, NotReady when the agent stops, a crash between the create and its
//! record, and the orphan sweep.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as SecretObject;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcp_droplet_operator::api::conditions::find;
use mcp_droplet_operator::api::droplet::{Droplet, DropletPhase};
use mcp_droplet_operator::cloud::bootstrap::{new_enrolment_token, render_user_data};
use mcp_droplet_operator::cloud::client::DoClient;
use mcp_droplet_operator::cloud::droplet_tags::{cluster_tag, owner_tag};
use mcp_droplet_operator::cloud::models::{Droplet as CloudDroplet, DropletCreateRequest};
use mcp_droplet_operator::controller::agent_access::credential_secret_name;
use mcp_droplet_operator::controller::droplet::intent_store::test_hooks;
use mcp_droplet_operator::controller::droplet::{NAME, enrolment_token_secret_name};
use mcp_droplet_operator::controller::pool::plan::PROVISIONED_FOR_ANNOTATION;
use mcp_droplet_operator::sim::operator::world_cloud_client;
use mcp_droplet_operator::telemetry::Metrics;
use mcp_droplet_operator::testing::DropletBuilder;
use mcp_droplet_operator::testing::dtma_fake::{FakeAgent, FakeDtma, Quirks};
use mcp_droplet_operator::testing::operator::{HarnessOptions, OperatorHarness, OperatorIdentity};
use secrecy::ExposeSecret;

const WAIT: Duration = Duration::from_secs(60);

fn droplets(h: &OperatorHarness) -> Api<Droplet> {
    Api::namespaced(h.client.clone(), &h.namespace)
}

fn secrets(h: &OperatorHarness) -> Api<SecretObject> {
    Api::namespaced(h.client.clone(), &h.namespace)
}

/// A Droplet object in the harness's namespace.
fn droplet(h: &OperatorHarness, name: &str) -> DropletBuilder {
    Droplet::test(name).namespace(&h.namespace)
}

/// The cluster tag of the harness's operator (its cluster id is unique per run).
fn harness_cluster_tag(h: &OperatorHarness) -> String {
    cluster_tag(&h.context().expect("operator running").config.cluster_id)
}

fn phase(d: &Droplet) -> Option<DropletPhase> {
    d.status.as_ref().map(|s| s.phase)
}

fn cloud_droplets(h: &OperatorHarness) -> Vec<CloudDroplet> {
    h.world
        .cloud()
        .expect("a simulated cloud")
        .digitalocean
        .droplets()
}

fn cloud_client(h: &OperatorHarness) -> DoClient {
    world_cloud_client(&h.world, &Metrics::new())
        .expect("a simulated cloud")
        .expect("a client")
}

async fn start(
    configure: impl FnOnce(&mut mcp_droplet_operator::controller::OperatorConfig) + Send + 'static,
) -> OperatorHarness {
    // Quiet unless RUST_LOG is set.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    // Against a real cluster when MCP_E2E_KUBECONFIG is set, kube-sim otherwise.
    let options = HarnessOptions::real_cluster_from_env().unwrap_or_default();
    OperatorHarness::start(HarnessOptions {
        configure: Box::new(configure),
        ..options
    })
    .await
    .expect("harness starts")
}

async fn wait_ready(h: &OperatorHarness, name: &str) -> Droplet {
    h.wait_for(&droplets(h), name, WAIT, |d| {
        phase(d) == Some(DropletPhase::Ready)
    })
    .await
    .expect("the droplet becomes Ready")
}

async fn put_secret(h: &OperatorHarness, name: &str, key: &str, value: &str) {
    let secret = SecretObject {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(h.namespace.clone()),
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
        .expect("secret created");
}

/// Waits (polling) until `check` holds, at most `timeout`.
async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A droplet created straight through the simulated DigitalOcean, waited until active.
async fn cloud_droplet(
    h: &OperatorHarness,
    name: &str,
    user_data: Option<String>,
    tags: Vec<String>,
) -> CloudDroplet {
    let client = cloud_client(h);
    let created = client
        .create_droplet(&DropletCreateRequest {
            name: name.to_string(),
            region: "nyc3".into(),
            size: "s-2vcpu-4gb".into(),
            image: "ubuntu-24-04-x64".into(),
            tags,
            user_data,
            ..Default::default()
        })
        .await
        .expect("created")
        .droplet;
    let started = std::time::Instant::now();
    loop {
        let d = client.get_droplet(created.id).await.expect("get");
        if d.is_ready() && d.public_ipv4().is_some() {
            return d;
        }
        assert!(started.elapsed() < WAIT, "the droplet never became active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_droplet_becomes_ready_with_ips_capacity_price_and_a_pinned_agent() {
    let h = start(|_| {}).await;
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "d1").build())
        .await
        .expect("created");
    let d = wait_ready(&h, "d1").await;
    let s = d.status.clone().expect("status");
    let id = s.droplet_id.expect("dropletID");
    assert!(
        s.public_ipv4
            .as_deref()
            .is_some_and(|ip| ip.starts_with("127."))
    );
    assert_eq!(s.capacity.memory.as_deref(), Some("4Gi"));
    assert_eq!(s.allocatable.cpu.as_deref(), Some("1750m"));
    assert!(s.price.monthly_usd > 0.0);
    assert_eq!(s.region.as_deref(), Some("nyc3"));
    let agent = s.agent.clone().expect("agent");
    assert!(agent.reachable);
    assert_eq!(
        agent.certificate_fingerprint.as_deref().map(str::len),
        Some(64)
    );
    assert!(s.health.last_heartbeat.is_some());
    assert_eq!(
        find(&s.conditions, "AgentReachable").map(|c| c.status.as_str()),
        Some("True")
    );
    assert!(
        d.finalizers()
            .iter()
            .any(|f| f == "mcp.agentopia.io/droplet")
    );
    // One droplet at DigitalOcean, carrying the owner and cluster tags.
    let owned: Vec<CloudDroplet> = cloud_droplets(&h)
        .into_iter()
        .filter(|c| c.tags.contains(&owner_tag(&d.uid().expect("uid"))))
        .collect();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].id as i64, id);
    assert!(owned[0].tags.contains(&harness_cluster_tag(&h)));

    // The credential Secret existed before the droplet became Ready (it is saved before the
    // enrolment POST), is owned by the Droplet, and holds a credential the agent accepts.
    let credential = secrets(&h)
        .get(&credential_secret_name("d1"))
        .await
        .expect("credential Secret");
    let ready_since = find(&s.conditions, "Ready")
        .expect("Ready condition")
        .last_transition_time
        .0;
    let created = credential
        .metadata
        .creation_timestamp
        .clone()
        .expect("created")
        .0;
    assert!(
        created <= ready_since,
        "credential {created} after Ready {ready_since}"
    );
    assert_eq!(
        credential.owner_references().first().map(|o| o.uid.clone()),
        d.uid()
    );
    let ctx = h.context().expect("operator running");
    let client = ctx
        .agents
        .for_droplet(&h.client, &d, &ctx.config.agent)
        .await
        .expect("kube")
        .expect("an agent client");
    let info = client.info().await.expect("the stored credential works");
    // The spent enrolment token is not kept once the agent is enrolled.
    let started = std::time::Instant::now();
    while secrets(&h)
        .get_opt(&enrolment_token_secret_name("d1"))
        .await
        .expect("get")
        .is_some()
    {
        assert!(
            started.elapsed() < WAIT,
            "the enrolment token Secret is kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!info.version.is_empty());
    // One Event per phase change, ending with Ready.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), &h.namespace);
    let reasons: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("d1"))
        .filter_map(|e| e.reason)
        .collect();
    for phase in ["Provisioning", "Booting", "Ready"] {
        assert!(
            reasons.iter().any(|r| r == phase),
            "no {phase} event in {reasons:?}"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn a_converged_droplet_is_polled_but_not_rewritten() {
    // 30 s heartbeats: the recorded heartbeat is refreshed every 100 s (plan::PlanTiming).
    let h = start(|cfg| cfg.timings.heartbeat_interval = Duration::from_secs(30)).await;
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "d1").build())
        .await
        .expect("created");
    let first = wait_ready(&h, "d1").await;
    let beat = |d: &Droplet| {
        d.status
            .as_ref()
            .and_then(|s| s.health.last_heartbeat.clone())
    };
    let first_beat = beat(&first);
    // Start right after a heartbeat refresh, so the next one is 100 simulated seconds away.
    let refreshed = h
        .wait_for(&droplets(&h), "d1", WAIT, |d| beat(d) != first_beat)
        .await
        .expect("the heartbeat is refreshed");
    let ctx = h.context().expect("operator running");
    let writes = ctx.metrics.status_write_count(NAME);
    // Two more polls (60 simulated seconds) change nothing worth writing.
    h.clock.sleep(Duration::from_secs(60)).await;
    let after = droplets(&h).get("d1").await.expect("get");
    assert_eq!(after.status, refreshed.status, "the status was rewritten");
    assert_eq!(ctx.metrics.status_write_count(NAME), writes);
    h.shutdown().await;
}

#[tokio::test]
async fn deleting_a_droplet_deletes_the_cloud_droplet_and_retain_keeps_it() {
    let h = start(|_| {}).await;
    let api = droplets(&h);
    for d in [
        droplet(&h, "gone").build(),
        droplet(&h, "kept").retain().build(),
    ] {
        api.create(&PostParams::default(), &d)
            .await
            .expect("created");
    }
    let gone = wait_ready(&h, "gone").await;
    let kept = wait_ready(&h, "kept").await;
    let id_of = |d: &Droplet| d.status.as_ref().and_then(|s| s.droplet_id).expect("id") as u64;
    let (gone_id, kept_id) = (id_of(&gone), id_of(&kept));
    for name in ["gone", "kept"] {
        api.delete(name, &DeleteParams::default())
            .await
            .expect("deleted");
    }
    for name in ["gone", "kept"] {
        let started = std::time::Instant::now();
        while api.get_opt(name).await.expect("get").is_some() {
            assert!(started.elapsed() < WAIT, "{name} was never released");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let left = cloud_droplets(&h);
    assert!(
        !left.iter().any(|d| d.id == gone_id),
        "the deleted droplet is still there"
    );
    let kept_cloud = left
        .iter()
        .find(|d| d.id == kept_id)
        .expect("the retained droplet is kept");
    // Released: no operator tag left, so the orphan sweep never deletes it.
    assert!(
        !kept_cloud
            .tags
            .iter()
            .any(|t| t.starts_with("mcp-droplet-operator:")),
        "tags left: {:?}",
        kept_cloud.tags
    );
    h.shutdown().await;
}

#[tokio::test]
async fn an_existing_droplet_with_our_agent_is_adopted_by_id() {
    let h = start(|_| {}).await;
    let token = new_enrolment_token(&mut rand::rng());
    let bootstrap = h
        .context()
        .expect("operator running")
        .config
        .bootstrap
        .clone();
    let user_data = render_user_data("hand-made", &token, &bootstrap).expect("cloud-init");
    let existing = cloud_droplet(&h, "hand-made", Some(user_data), vec![]).await;
    put_secret(
        &h,
        &enrolment_token_secret_name("adopted"),
        "token",
        token.expose_secret(),
    )
    .await;
    droplets(&h)
        .create(
            &PostParams::default(),
            &droplet(&h, "adopted").adopt(existing.id as i64).build(),
        )
        .await
        .expect("created");
    let d = wait_ready(&h, "adopted").await;
    let s = d.status.expect("status");
    assert_eq!(s.droplet_id, Some(existing.id as i64));
    assert_eq!(
        s.public_ipv4,
        existing.public_ipv4().map(|ip| ip.to_string())
    );
    assert!(s.agent.and_then(|a| a.certificate_fingerprint).is_some());
    assert_eq!(cloud_droplets(&h).len(), 1, "adoption created nothing");
    h.shutdown().await;
}

#[tokio::test]
async fn a_droplet_whose_agent_stops_answering_becomes_not_ready() {
    let h = start(|_| {}).await;
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "d1").build())
        .await
        .expect("created");
    let d = wait_ready(&h, "d1").await;
    let id = d.status.and_then(|s| s.droplet_id).expect("id") as u64;
    let cloud = h.world.cloud().expect("cloud");
    assert!(cloud.agents.stop_agent(id).await, "the agent was running");
    let d = h
        .wait_for(&droplets(&h), "d1", WAIT, |d| {
            phase(d) == Some(DropletPhase::NotReady)
        })
        .await
        .expect("NotReady");
    let s = d.status.expect("status");
    let ready = find(&s.conditions, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "AgentUnreachable")
    );
    assert!(s.health.consecutive_failures >= 3);
    assert_eq!(
        find(&s.conditions, "AgentReachable").map(|c| c.status.as_str()),
        Some("False")
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_the_create_and_its_record_leaves_one_droplet() {
    let mut h = start(|_| {}).await;
    test_hooks::crash_after_create("crashy");
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "crashy").build())
        .await
        .expect("created");
    eventually("the create to hang", WAIT, || {
        test_hooks::hung_after_create("crashy")
    })
    .await;
    let before = droplets(&h).get("crashy").await.expect("get");
    assert!(
        before.status.as_ref().and_then(|s| s.droplet_id).is_none(),
        "the id was recorded before the crash"
    );
    h.stop_operator_now();
    assert_eq!(cloud_droplets(&h).len(), 1, "the create went through");
    h.start_operator().expect("restarted");
    let d = wait_ready(&h, "crashy").await;
    let uid = d.uid().expect("uid");
    let owned: Vec<CloudDroplet> = cloud_droplets(&h)
        .into_iter()
        .filter(|c| c.tags.contains(&owner_tag(&uid)))
        .collect();
    assert_eq!(owned.len(), 1, "a duplicate droplet was created");
    assert_eq!(
        d.status.and_then(|s| s.droplet_id),
        Some(owned[0].id as i64)
    );
    h.shutdown().await;
}

#[tokio::test]
async fn the_orphan_sweep_deletes_a_tagged_droplet_whose_owner_is_gone() {
    // Sweeps every 20 simulated seconds; droplets younger than 90 s are left alone.
    let h = start(|cfg| cfg.timings.sweep_interval = Duration::from_secs(20)).await;
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "live").build())
        .await
        .expect("created");
    let orphan = cloud_droplet(
        &h,
        "orphan",
        None,
        vec![
            owner_tag("5d1c0d6e-0000-4000-8000-00000000dead"),
            harness_cluster_tag(&h),
        ],
    )
    .await;
    let live = wait_ready(&h, "live").await;
    let live_id = live.status.and_then(|s| s.droplet_id).expect("id") as u64;
    eventually("the orphan to be swept", WAIT, || {
        !cloud_droplets(&h).iter().any(|d| d.id == orphan.id)
    })
    .await;
    assert!(
        cloud_droplets(&h).iter().any(|d| d.id == live_id),
        "the sweep deleted a live droplet"
    );
    h.shutdown().await;
}

#[tokio::test]
async fn a_dtma_droplet_is_adopted_and_shows_its_capabilities() {
    let h = start(|_| {}).await;
    // No user_data: no agent of ours starts; a fake DTMA listens where the real one would.
    let existing = cloud_droplet(&h, "legacy", None, vec![]).await;
    let ip = existing.public_ipv4().expect("ip");
    let _dtma = FakeDtma::serve_on(
        FakeAgent::new(Quirks::real(), &["dtma-token"]),
        std::net::SocketAddr::from((ip, 30000)),
    )
    .await
    .expect("fake DTMA listens");
    put_secret(
        &h,
        &credential_secret_name("legacy"),
        "credential",
        "dtma-token",
    )
    .await;
    droplets(&h)
        .create(
            &PostParams::default(),
            &droplet(&h, "legacy")
                .adopt(existing.id as i64)
                .dtma()
                .build(),
        )
        .await
        .expect("created");
    let d = wait_ready(&h, "legacy").await;
    let s = d.status.expect("status");
    let caps = find(&s.conditions, "AgentCapabilities").expect("AgentCapabilities");
    assert_eq!(
        (caps.status.as_str(), caps.reason.as_str()),
        ("False", "LegacyAgent")
    );
    let agent = s.agent.expect("agent");
    assert_eq!(agent.endpoint, Some(format!("http://{ip}:30000")));
    assert!(agent.reachable && agent.certificate_fingerprint.is_none());
    h.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_droplets_boots_on_shared_lists_not_a_get_per_poll() {
    let h = start(|_| {}).await;
    let names: Vec<String> = (0..6).map(|i| format!("burst-{i}")).collect();
    for name in &names {
        droplets(&h)
            .create(&PostParams::default(), &droplet(&h, name).build())
            .await
            .expect("created");
    }
    for name in &names {
        wait_ready(&h, name).await;
    }
    let cloud = h
        .context()
        .expect("operator running")
        .cloud
        .metrics()
        .clone();
    let gets = cloud.requests("get_droplet", "2xx");
    let lists = cloud.requests("list_droplets", "2xx");
    // Polled every 10 simulated seconds through 20-40 s boots, one GET per droplet and poll
    // would be well above 20; the shared list answers most of them.
    assert!(
        gets <= names.len() as u64,
        "{gets} GETs for {} droplets",
        names.len()
    );
    assert!(lists >= 1, "no list was made");
    assert_eq!(cloud_droplets(&h).len(), names.len());
    h.shutdown().await;
}

#[tokio::test]
async fn deletion_drains_the_deployments_placed_on_the_droplet_first() {
    use mcp_droplet_operator::api::deployment::MCPDeployment;
    let h = start(|_| {}).await;
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "d1").build())
        .await
        .expect("created");
    let ready = wait_ready(&h, "d1").await;
    let id = ready.status.and_then(|s| s.droplet_id).expect("id") as u64;
    // A deployment the test places on d1 itself (its template does not exist, so no controller
    // schedules it; the test's field manager owns the placement).
    let deployments: Api<MCPDeployment> = Api::namespaced(h.client.clone(), &h.namespace);
    let deployment = MCPDeployment::test("github")
        .namespace(&h.namespace)
        .template("not-there")
        .memory("1Gi")
        .build();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("deployment");
    let place = |droplet: Option<&str>| serde_json::json!({ "status": { "placement": droplet.map(|d| serde_json::json!({ "droplet": d })) } });
    let test_manager = PatchParams {
        field_manager: Some("droplet-test".into()),
        ..PatchParams::default()
    };
    deployments
        .patch_status("github", &test_manager, &Patch::Merge(place(Some("d1"))))
        .await
        .expect("placed");
    let key = format!("{}/github", h.namespace);
    let allocated = h
        .wait_for(&droplets(&h), "d1", WAIT, |d| {
            d.status
                .as_ref()
                .is_some_and(|s| s.deployments == [key.clone()])
        })
        .await
        .expect("the droplet lists its deployment");
    assert_eq!(
        allocated.status.and_then(|s| s.allocated.memory),
        Some("1Gi".to_string())
    );

    droplets(&h)
        .delete("d1", &DeleteParams::default())
        .await
        .expect("deleted");
    let draining = h
        .wait_for(&droplets(&h), "d1", WAIT, |d| {
            phase(d) == Some(DropletPhase::Draining)
        })
        .await
        .expect("Draining");
    let ready = find(&draining.status.expect("status").conditions, "Ready")
        .expect("Ready")
        .clone();
    assert_eq!(ready.reason, "Draining");
    assert!(ready.message.contains(&key), "{}", ready.message);
    assert!(
        cloud_droplets(&h).iter().any(|d| d.id == id),
        "the cloud droplet went before its deployments moved"
    );

    // The deployment moves away: the droplet is released and deleted.
    deployments
        .patch_status("github", &test_manager, &Patch::Merge(place(None)))
        .await
        .expect("moved");
    let started = std::time::Instant::now();
    while droplets(&h).get_opt("d1").await.expect("get").is_some() {
        assert!(started.elapsed() < WAIT, "d1 was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!cloud_droplets(&h).iter().any(|d| d.id == id));
    h.shutdown().await;
}

#[tokio::test]
async fn a_pool_droplet_lost_at_digitalocean_deletes_its_object() {
    let h = start(|_| {}).await;
    // As the pool's provisioner writes it: with the deployments it was made for.
    droplets(&h)
        .create(
            &PostParams::default(),
            &droplet(&h, "pooled")
                .pool("default")
                .annotation(PROVISIONED_FOR_ANNOTATION, "some-deployment")
                .build(),
        )
        .await
        .expect("created");
    let d = wait_ready(&h, "pooled").await;
    let id = d.status.and_then(|s| s.droplet_id).expect("id") as u64;
    let cloud = h.world.cloud().expect("cloud");
    assert!(cloud.digitalocean.lose_droplet(id), "the droplet existed");
    // Its agent stops with it; the missed poll finds it gone, and the object is deleted (its
    // finalizer drains nothing and finds the droplet already gone: 404 is done).
    let started = std::time::Instant::now();
    while droplets(&h).get_opt("pooled").await.expect("get").is_some() {
        assert!(
            started.elapsed() < WAIT,
            "the object of a lost droplet was kept"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        cloud_droplets(&h).is_empty(),
        "nothing was created in its place"
    );
    h.shutdown().await;
}

/// A Droplet someone wrote, member of a pool, is not deleted when its cloud droplet vanishes:
/// it stays Failed with `DropletGone` until its owner acts (GitOps would only write it back).
#[tokio::test]
async fn a_written_pool_droplet_lost_at_digitalocean_stays_failed() {
    let h = start(|_| {}).await;
    droplets(&h)
        .create(
            &PostParams::default(),
            &droplet(&h, "written").pool("default").build(),
        )
        .await
        .expect("created");
    let d = wait_ready(&h, "written").await;
    let id = d.status.and_then(|s| s.droplet_id).expect("id") as u64;
    let cloud = h.world.cloud().expect("cloud");
    assert!(cloud.digitalocean.lose_droplet(id), "the droplet existed");
    let failed = h
        .wait_for(&droplets(&h), "written", WAIT, |d| {
            phase(d) == Some(DropletPhase::Failed)
        })
        .await
        .expect("Failed");
    let stalled = failed
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, "Stalled"))
        .map(|c| c.reason.clone());
    assert_eq!(stalled.as_deref(), Some("DropletGone"));
    assert!(failed.metadata.deletion_timestamp.is_none(), "not deleted");
    h.shutdown().await;
}

#[tokio::test]
async fn the_droplet_controller_needs_only_the_run_contracts_permissions() {
    let h = OperatorHarness::start(HarnessOptions {
        // Exactly the chart's rendered RBAC (the default, spelled out: this is its test).
        identity: OperatorIdentity::ChartRbac,
        ..HarnessOptions::default()
    })
    .await
    .expect("harness starts");
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "d1").build())
        .await
        .expect("created");
    let d = wait_ready(&h, "d1").await;
    let id = d.status.and_then(|s| s.droplet_id).expect("id") as u64;
    droplets(&h)
        .delete("d1", &DeleteParams::default())
        .await
        .expect("deleted");
    let started = std::time::Instant::now();
    while droplets(&h).get_opt("d1").await.expect("get").is_some() {
        assert!(started.elapsed() < WAIT, "d1 was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!cloud_droplets(&h).iter().any(|d| d.id == id));
    let sim = h.world.kube().expect("kube-sim");
    let denied = sim.access_record().expect("access record").denied();
    assert!(denied.is_empty(), "denied: {denied:#?}");
    h.shutdown().await;
}

/// A pass that keeps failing (every DigitalOcean call answers 500) is explained in `kubectl
/// describe`: a Warning Event with the error's condition reason, not only a log line.
#[tokio::test]
async fn lasting_failures_show_as_warning_events_with_their_reason() {
    let mut options = HarnessOptions::default();
    options.digitalocean.faults.server_error_rate = 1.0;
    let h = OperatorHarness::start(options)
        .await
        .expect("harness starts");
    droplets(&h)
        .create(&PostParams::default(), &droplet(&h, "d1").build())
        .await
        .expect("created");
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(h.client.clone(), &h.namespace);
    let warning = mcp_droplet_operator::testing::operator::eventually(
        "a Warning event about the failing passes of d1",
        WAIT,
        || async {
            events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("d1")
                        && e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("DigitalOceanError")
                })
        },
    )
    .await;
    let note = warning.note.unwrap_or_default();
    assert!(note.contains("passes in a row failed"), "{note}");
    // The 4th failure in a row continues the same Event as a series, not a second Event.
    let name = warning.metadata.name.clone().expect("event name");
    mcp_droplet_operator::testing::operator::eventually(
        "the warning continued as a series",
        WAIT,
        || async {
            let e = events.get(&name).await.ok()?;
            e.series.filter(|s| s.count >= 2).map(|_| ())
        },
    )
    .await;
    // Every create was answered 500 without effect: nothing exists to leak.
    assert!(cloud_droplets(&h).is_empty());
    h.shutdown().await;
}
