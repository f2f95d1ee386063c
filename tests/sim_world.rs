//! The simulated world end to end: a droplet created through the simulated DigitalOcean boots,
//! its agent starts from the cloud-init user_data the operator rendered, and the operator's agent
//! client enrols with the single-use token and drives it. Only the cloud and the container
//! runtime are simulated; the DigitalOcean client, the bootstrap, the agent and its API are real.

use std::time::Duration;

use clap::Parser;
use mcp_droplet_agent::secret::Secret;
use mcp_droplet_operator::agent_client::{AgentClient, ClientSettings, enroll};
use mcp_droplet_operator::cli::sim::SimArgs;
use mcp_droplet_operator::cloud::bootstrap::{
    BootstrapConfig, new_enrolment_token, render_user_data,
};
use mcp_droplet_operator::cloud::models::{DropletCreateRequest, DropletStatus};
use mcp_droplet_operator::cloud::{DoClient, DoClientConfig};
use mcp_droplet_operator::sim::World;
use mcp_droplet_operator::sim::agent_fleet::FleetAgentState;
use mcp_droplet_operator::testing::MemoryCredentialStore;
use secrecy::ExposeSecret;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

const TOKEN: &str = "dop_v1_world_test";

#[tokio::test]
async fn a_new_droplet_boots_a_real_agent_that_the_operator_enrols() {
    let sim = Cli::try_parse_from([
        "sim",
        "--no-kube",
        "--do-token",
        TOKEN,
        "--do-listen",
        "127.0.0.1:0",
        "--do-boot-min-seconds",
        "0.05",
        "--do-boot-max-seconds",
        "0.1",
        "--do-list-lag-seconds",
        "0",
    ])
    .unwrap()
    .sim;
    let data = tempfile::tempdir().unwrap();
    let mut config = sim.world_config().unwrap();
    if let Some(cloud) = config.cloud.as_mut() {
        cloud.agent_data_dir = data.path().to_path_buf();
        // Its own droplet addresses, so parallel test processes never share an agent address.
        cloud.digitalocean.first_address = rand::random::<u32>() % 1_000_000;
    }
    let world = World::start(config).await.unwrap();
    assert!(world.kube().is_none(), "--no-kube starts no API server");
    let cloud = world.cloud().unwrap();
    let client = DoClient::new(DoClientConfig::new(
        world.digitalocean_url().unwrap(),
        world.digitalocean_token().unwrap().clone(),
    ))
    .unwrap();

    // Every simulated droplet has its own loopback address, so the real agent port can be used.
    let enrolment = new_enrolment_token(&mut rand::rng());
    let mut bootstrap =
        BootstrapConfig::from_release_url("https://example.invalid/mcp-droplet-agent");
    bootstrap.listen = "0.0.0.0:9443".into();
    let user_data = render_user_data("world-1", &enrolment, &bootstrap).unwrap();
    let created = client
        .create_droplet(&DropletCreateRequest {
            name: "world-1".into(),
            region: "nyc3".into(),
            size: "s-1vcpu-2gb".into(),
            image: "ubuntu-24-04-x64".into(),
            tags: vec!["mcp-droplet-operator".into()],
            user_data: Some(user_data),
            ..Default::default()
        })
        .await
        .unwrap();
    let id = created.droplet.id;

    let state = cloud.agents.wait_started(id, Duration::from_secs(20)).await;
    let Some(FleetAgentState::Running(addr)) = state else {
        panic!("the droplet's agent did not start: {state:?}");
    };
    let droplet = client.get_droplet(id).await.unwrap();
    assert_eq!(droplet.status, DropletStatus::Active);
    let ip = droplet
        .public_ipv4()
        .expect("an active droplet has a public address");
    assert_eq!(
        addr.ip(),
        std::net::IpAddr::V4(ip),
        "the agent listens on the droplet's own address"
    );
    assert_eq!(addr.port(), 9443);

    let base = format!("https://{addr}");
    let credential = Secret::random();
    let enrolled = enroll(
        &base,
        &Secret::new(enrolment.expose_secret()),
        &MemoryCredentialStore::holding(credential.clone()),
        ClientSettings::default(),
    )
    .await
    .expect("enrol with the token from user_data");
    assert_eq!(enrolled.droplet_name, "world-1");
    let agent = AgentClient::new(
        &base,
        &enrolled.certificate_sha256,
        credential,
        ClientSettings::default(),
    )
    .unwrap();
    let info = agent.info().await.unwrap();
    assert_eq!(info.runtime, "simulated");

    // Deleting the droplet stops its agent.
    client.delete_droplet(id).await.unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(20), async {
        while agent.healthz().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        stopped.is_ok(),
        "the agent still answers after its droplet was deleted"
    );
    world.shutdown().await;
}

#[tokio::test]
async fn one_call_starts_kube_sim_and_the_cloud_on_the_world_clock() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, ListParams};
    use mcp_droplet_operator::sim::{CloudSettings, KubeSimSettings, WorldConfig};
    use std::sync::Arc;

    let start = clock::Timestamp::from_second(1_900_000_000).unwrap();
    let manual = clock::ManualClock::new(start);
    let data = tempfile::tempdir().unwrap();
    let world = World::start(WorldConfig {
        clock: Arc::new(manual.clone()),
        kube: Some(KubeSimSettings::default()),
        cloud: Some(CloudSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: TOKEN.into(),
            digitalocean: Default::default(),
            agent_data_dir: data.path().to_path_buf(),
        }),
    })
    .await
    .unwrap();

    let crds: Api<CustomResourceDefinition> = Api::all(world.kube_client().unwrap());
    let names = crds.list(&ListParams::default()).await.unwrap().items.len();
    assert_eq!(names, mcp_droplet_operator::api::all_crds().len());

    let client = DoClient::with_parts(
        DoClientConfig::new(
            world.digitalocean_url().unwrap(),
            world.digitalocean_token().unwrap().clone(),
        ),
        Arc::clone(world.clock()),
        Default::default(),
    )
    .unwrap();
    manual.advance(Duration::from_secs(42));
    let created = client
        .create_droplet(&DropletCreateRequest {
            name: "clocked".into(),
            region: "nyc3".into(),
            size: "s-1vcpu-1gb".into(),
            image: "ubuntu-24-04-x64".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        created.droplet.created(),
        Some(clock::add(start, Duration::from_secs(42))),
        "the simulated DigitalOcean reads the world's clock"
    );

    // kube-sim stamps objects with the same clock, so a droplet's age in the cloud and its
    // Kubernetes timestamps agree at any speed.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
        Api::all(world.kube_client().unwrap());
    let namespace = namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "clocked"}})).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        namespace.metadata.creation_timestamp.map(|t| t.0),
        Some(clock::add(start, Duration::from_secs(42))),
        "kube-sim reads the world's clock"
    );
    world.shutdown().await;
}
