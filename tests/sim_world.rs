//! The simulated world end to end: a droplet created through the simulated DigitalOcean boots,
//! its agent starts from the cloud-init user_data the operator rendered, and the operator's agent
//! client enrols with the single-use token and drives it. Only the cloud and the container
//! runtime are simulated; the DigitalOcean client, the bootstrap, the agent and its API are real.

#[path = "support/credential_store.rs"]
mod credential_store;
use std::time::Duration;

use clap::Parser;
use mcp_droplet_agent::secret::Secret;
use mcp_droplet_operator::agent_client::sim_fleet::FleetAgentState;
use mcp_droplet_operator::agent_client::{AgentClient, ClientSettings, enroll};
use mcp_droplet_operator::cli::sim::{SimArgs, SimulatedCloud};
use mcp_droplet_operator::cloud::bootstrap::{BootstrapConfig, EnrolmentToken, render_user_data};
use mcp_droplet_operator::cloud::models::{DropletCreateRequest, DropletStatus};
use mcp_droplet_operator::cloud::{DoClient, DoClientConfig, DoToken};

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
    let cloud = SimulatedCloud::start(&sim.cloud, DoToken::new(TOKEN), data.path())
        .await
        .unwrap();
    let client = DoClient::new(DoClientConfig::new(
        cloud.digitalocean.base_url(),
        DoToken::new(TOKEN),
    ))
    .unwrap();

    // Every simulated droplet has its own loopback address, so the real agent port can be used.
    let enrolment = EnrolmentToken::generate(&mut rand::rng());
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
        &Secret::new(enrolment.expose()),
        &credential_store::MemoryCredentialStore::holding(credential.clone()),
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
    cloud.shutdown().await;
}
