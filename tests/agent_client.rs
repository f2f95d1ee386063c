//! The operator's agent client against the real agent (simulated runtime).

use mcp_droplet_agent::api::{Phase, PullRequest, PutOutcome, ServerSpec, Transport};
use mcp_droplet_agent::secret::Secret;
use mcp_droplet_agent::supervisor::SupervisorTiming;
use mcp_droplet_agent::{
    AgentHandle, AgentOptions, SimulatedAgentOptions, SimulatedRuntime, spawn_simulated_agent,
};
use mcp_droplet_operator::agent_client::{
    AgentClient, AgentClientError, ClientSettings, CredentialStore, CredentialStoreError,
    EnrolmentError, RetryPolicy, enroll,
};
use mcp_droplet_operator::retry::Jitter;
use mcp_droplet_operator::testing::MemoryCredentialStore;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::time::Duration;

const TOKEN: &str = "single-use-token-abcdef";
const ENDPOINT_TOKEN: &str = "endpoint-token-for-time-0001";

fn user_data(droplet: &str) -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/mcp-droplet-agent/bootstrap.json\n    content: |\n      {{\"dropletName\": \"{droplet}\", \"enrolmentToken\": \"{TOKEN}\", \"listen\": \"0.0.0.0:9443\", \"operatorCA\": null}}\n"
    )
}

async fn start(dir: &std::path::Path, runtime: &SimulatedRuntime) -> AgentHandle {
    spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap(),
        &user_data("d1"),
        SimulatedAgentOptions {
            data_dir: Some(dir.to_path_buf()),
            runtime: Some(runtime.clone()),
            agent: AgentOptions {
                timing: SupervisorTiming {
                    poll: Duration::from_millis(50),
                    retry: Duration::from_millis(200),
                    handshake: Duration::from_secs(10),
                    startup_grace: Duration::from_secs(30),
                },
                ..AgentOptions::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn settings() -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 3,
            max_hinted_attempts: 3,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(200),
            jitter: Jitter::None,
            deadline: None,
        },
        ..ClientSettings::default()
    }
}

fn spec() -> ServerSpec {
    ServerSpec {
        image: "sim/time:1".into(),
        pull_credentials: None,
        env: vec![],
        command: vec![],
        args: vec![],
        transport: Transport::Stdio,
        port: None,
        mcp_path: None,
        resources: Default::default(),
        volumes: vec![],
        labels: Default::default(),
        network_policy: Default::default(),
        read_only_root_filesystem: true,
        endpoint_token: Secret::new(ENDPOINT_TOKEN),
    }
}

async fn wait_running(client: &AgentClient, name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = client.get_server(name).await.unwrap()
            && s.phase == Phase::Running
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn enrol_pin_and_drive_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime).await;
    let credential = Secret::random();

    let bad = enroll(
        &handle.base_url(),
        &Secret::new("wrong"),
        &MemoryCredentialStore::holding(credential.clone()),
        settings(),
    )
    .await;
    assert_eq!(bad.unwrap_err().status(), Some(401));
    let enrolment = enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &MemoryCredentialStore::holding(credential.clone()),
        settings(),
    )
    .await
    .unwrap();
    assert_eq!(enrolment.droplet_name, "d1");
    assert_eq!(enrolment.certificate_sha256, handle.fingerprint());
    let again = enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &MemoryCredentialStore::default(),
        settings(),
    )
    .await;
    assert!(
        matches!(
            again,
            Err(EnrolmentError::AlreadyEnrolled {
                had_stored_credential: false
            })
        ),
        "{again:?}"
    );

    let client = AgentClient::new(
        &handle.base_url(),
        &enrolment.certificate_sha256,
        credential.clone(),
        settings(),
    )
    .unwrap();
    client.healthz().await.unwrap();
    let info = client.info().await.unwrap();
    assert_eq!(info.runtime, "simulated");

    let put = client.put_server("time", &spec()).await.unwrap();
    assert_eq!(put.outcome, PutOutcome::Created);
    assert_eq!(
        client.put_server("time", &spec()).await.unwrap().outcome,
        PutOutcome::Unchanged
    );
    wait_running(&client, "time").await;
    assert_eq!(client.list_servers().await.unwrap().len(), 1);
    assert!(!client.logs("time", 10).await.unwrap().is_empty());
    assert!(
        client
            .metrics()
            .await
            .unwrap()
            .contains("mcp_agent_host_load1")
    );
    client
        .pull_image(&PullRequest {
            image: "sim/next:2".into(),
            pull_credentials: None,
        })
        .await
        .unwrap();

    // The pinned HTTP client also carries MCP traffic to the server's endpoint.
    let transport = StreamableHttpClientTransport::with_client(
        client.http_client().clone(),
        StreamableHttpClientTransportConfig::with_uri(client.mcp_endpoint_url("time"))
            .auth_header(ENDPOINT_TOKEN.to_string()),
    );
    let mcp = ().serve(transport).await.unwrap();
    let tools = mcp.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2);
    let _ = mcp.cancel().await;

    // Bad input is reported as a typed 400, not retried.
    let mut bad_spec = spec();
    bad_spec.image = "not an image".into();
    let err = client.put_server("time", &bad_spec).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.metric_label(), "rejected");
    match err {
        AgentClientError::Status { code, .. } => assert_eq!(code, "invalid_spec"),
        other => panic!("unexpected {other:?}"),
    }

    client.delete_server("time").await.unwrap();
    client.delete_server("time").await.unwrap();
    assert!(client.get_server("time").await.unwrap().is_none());

    // A wrong credential is a 401.
    let stranger = AgentClient::new(
        &handle.base_url(),
        &enrolment.certificate_sha256,
        Secret::random(),
        settings(),
    )
    .unwrap();
    assert_eq!(stranger.info().await.unwrap_err().status(), Some(401));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_client_pinned_to_another_certificate_is_refused_and_timeouts_apply() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime).await;
    let credential = Secret::random();
    enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &MemoryCredentialStore::holding(credential.clone()),
        settings(),
    )
    .await
    .unwrap();
    let wrong_pin =
        AgentClient::new(&handle.base_url(), &"00".repeat(32), credential, settings()).unwrap();
    let err = wrong_pin.info().await.unwrap_err();
    assert!(
        matches!(err, AgentClientError::Transport { .. }),
        "expected a TLS failure, got {err:?}"
    );
    handle.shutdown().await;

    // A listener that never answers: the request times out instead of hanging.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut quick = settings();
    quick.request_timeout = Duration::from_millis(300);
    quick.retry = RetryPolicy::no_retries();
    let client = AgentClient::new(
        &format!("https://{addr}"),
        &"00".repeat(32),
        Secret::random(),
        quick,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = client.info().await.unwrap_err();
    assert_eq!(err.metric_label(), "timeout", "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn the_agent_boots_from_the_user_data_the_operator_renders() {
    use mcp_droplet_operator::cloud::bootstrap::{
        BootstrapConfig, new_enrolment_token, render_user_data,
    };
    use secrecy::ExposeSecret;
    let mut rng = rand::rng();
    let token = new_enrolment_token(&mut rng);
    let user_data = render_user_data(
        "droplet-7",
        &token,
        &BootstrapConfig::from_release_url("https://example.invalid/mcp-droplet-agent"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap(),
        &user_data,
        SimulatedAgentOptions {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let enrolment = enroll(
        &handle.base_url(),
        &Secret::new(token.expose_secret()),
        &MemoryCredentialStore::default(),
        settings(),
    )
    .await
    .unwrap();
    assert_eq!(enrolment.droplet_name, "droplet-7");
    assert_eq!(enrolment.certificate_sha256, handle.fingerprint());
    handle.shutdown().await;
}

#[tokio::test]
async fn the_simulated_fleet_runs_an_agent_per_active_droplet() {
    use mcp_droplet_operator::cloud::bootstrap::{
        BootstrapConfig, new_enrolment_token, render_user_data,
    };
    use mcp_droplet_operator::sim::agent_fleet::{FleetAgentState, SimulatedAgentFleet};
    use mcp_droplet_operator::sim::digitalocean::{ActiveDroplet, DropletLifecycleHook};
    use secrecy::ExposeSecret;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = new_enrolment_token(&mut rand::rng());
    let mut config = BootstrapConfig::from_release_url("https://example.invalid/agent");
    config.listen = format!("0.0.0.0:{port}");
    let user_data = render_user_data("fleet-1", &token, &config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fleet = SimulatedAgentFleet::new(dir.path(), Default::default());
    let droplet = ActiveDroplet {
        id: 41,
        name: "fleet-1".into(),
        ipv4: "127.77.0.41".parse().unwrap(),
        private_ipv4: "10.0.0.41".parse().unwrap(),
        user_data: Some(user_data),
        tags: vec![],
        region: "nyc3".into(),
        size: "s-2vcpu-4gb".into(),
    };
    fleet.droplet_active(&droplet);
    let mut without_user_data = droplet.clone();
    without_user_data.id = 42;
    without_user_data.user_data = None;
    fleet.droplet_active(&without_user_data);

    let state = fleet.wait_started(41, Duration::from_secs(10)).await;
    let expected: std::net::SocketAddr = format!("127.77.0.41:{port}").parse().unwrap();
    assert_eq!(state, Some(FleetAgentState::Running(expected)));
    assert!(matches!(
        fleet.wait_started(42, Duration::from_secs(10)).await,
        Some(FleetAgentState::Failed(_))
    ));

    let base = format!("https://{expected}");
    let credential = Secret::random();
    let enrolment = enroll(
        &base,
        &Secret::new(token.expose_secret()),
        &MemoryCredentialStore::holding(credential.clone()),
        settings(),
    )
    .await
    .unwrap();
    assert_eq!(enrolment.droplet_name, "fleet-1");
    let client =
        AgentClient::new(&base, &enrolment.certificate_sha256, credential, settings()).unwrap();
    let info = client.info().await.unwrap();
    assert_eq!(info.capacity.cpu_millis, 2000);
    assert_eq!(info.capacity.memory_bytes, 4096 * 1024 * 1024);
    assert!(fleet.runtime(41).is_some());

    fleet.droplet_deleted(41);
    assert_eq!(fleet.state(41), None);
    let mut quick = settings();
    quick.retry = RetryPolicy::no_retries();
    let gone = AgentClient::new(
        &base,
        &enrolment.certificate_sha256,
        Secret::random(),
        quick,
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while gone.healthz().await.is_ok() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "agent still answers after delete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fleet.shutdown().await;
}

/// What a man in the middle captured and relayed.
#[derive(Clone, Default)]
struct Relay {
    agent: String,
    captured: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn relay_request(
    axum::extract::State(relay): axum::extract::State<Relay>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> (axum::http::StatusCode, axum::body::Bytes) {
    relay
        .captured
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    let verifier = mcp_droplet_agent::client_tls::PinnedCertVerifier::new(
        mcp_droplet_agent::client_tls::PinMode::TrustOnFirstUse,
    );
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(verifier.client_config().unwrap())
        .build()
        .unwrap();
    let answer = http
        .request(method, format!("{}{}", relay.agent, uri))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    (status, answer.bytes().await.unwrap())
}

#[tokio::test]
async fn a_man_in_the_middle_cannot_enrol_with_what_the_operator_sends() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime).await;
    // The attacker terminates TLS with its own certificate and relays every request.
    let identity =
        mcp_droplet_agent::store::Identity::generate(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
    assert_ne!(identity.fingerprint(), handle.fingerprint());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mitm_url = format!("https://{}", tcp.local_addr().unwrap());
    let listener = mcp_droplet_agent::tls::TlsListener::new(
        tcp,
        mcp_droplet_agent::tls::server_config(&identity).unwrap(),
        mcp_droplet_agent::tls::ListenerLimits::default(),
        Default::default(),
    )
    .unwrap();
    let relay = Relay {
        agent: handle.base_url(),
        ..Relay::default()
    };
    let app = axum::Router::new()
        .fallback(relay_request)
        .with_state(relay.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let credential = Secret::random();
    let result = enroll(
        &mitm_url,
        &Secret::new(TOKEN),
        &MemoryCredentialStore::holding(credential.clone()),
        settings(),
    )
    .await;
    assert_eq!(result.unwrap_err().status(), Some(401));
    let captured = relay.captured.lock().unwrap().join("\n");
    assert!(captured.contains("enrolmentProof"), "{captured}");
    assert!(!captured.contains(TOKEN), "the raw token must not travel");
    // The relayed credential was not installed at the real agent.
    let stolen = AgentClient::new(
        &handle.base_url(),
        handle.fingerprint(),
        credential.clone(),
        settings(),
    )
    .unwrap();
    assert_eq!(stolen.info().await.unwrap_err().status(), Some(401));
    // The operator, reaching the agent itself, still enrols with the same token.
    let enrolment = enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &MemoryCredentialStore::holding(credential.clone()),
        settings(),
    )
    .await
    .unwrap();
    assert_eq!(enrolment.certificate_sha256, handle.fingerprint());
    server.abort();
    handle.shutdown().await;
}

/// A store whose process "dies" right after a save: the save is durable, and the enrolment
/// that made it never gets further (its future pends until dropped).
#[derive(Clone, Default)]
struct DiesAfterSave {
    inner: MemoryCredentialStore,
}

impl CredentialStore for DiesAfterSave {
    async fn load(&self) -> Result<Option<Secret>, CredentialStoreError> {
        self.inner.load().await
    }

    async fn save(&self, credential: &Secret) -> Result<(), CredentialStoreError> {
        self.inner.save(credential).await?;
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_restarted_operator_recovers_the_enrolment_with_the_stored_credential() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime).await;
    let store = MemoryCredentialStore::default();
    let first = enroll(&handle.base_url(), &Secret::new(TOKEN), &store, settings())
        .await
        .unwrap();
    let credential = store.current().expect("the credential was stored");
    // The operator restarts: nothing but the store survives. The token is spent (409), and the
    // stored credential proves the enrolment.
    let restarted = store.clone();
    let second = enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &restarted,
        settings(),
    )
    .await
    .unwrap();
    assert_eq!(second.certificate_sha256, first.certificate_sha256);
    assert_eq!(second.droplet_name, "d1");
    assert_eq!(restarted.current(), Some(credential.clone()));
    let client = AgentClient::new(
        &handle.base_url(),
        &second.certificate_sha256,
        credential,
        settings(),
    )
    .unwrap();
    assert_eq!(client.info().await.unwrap().droplet_name, "d1");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_spent_token_without_the_enrolled_credential_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime).await;
    enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &MemoryCredentialStore::default(),
        settings(),
    )
    .await
    .unwrap();
    // No credential stored (the store was lost): the operator cannot pretend to be enrolled.
    let lost = MemoryCredentialStore::default();
    let answer = enroll(&handle.base_url(), &Secret::new(TOKEN), &lost, settings()).await;
    match answer {
        Err(
            ref e @ EnrolmentError::AlreadyEnrolled {
                had_stored_credential: false,
            },
        ) => {
            assert_eq!(e.metric_label(), "already_enrolled");
            assert!(e.to_string().contains("no credential was stored"), "{e}");
        }
        other => panic!("expected AlreadyEnrolled without a credential, got {other:?}"),
    }
    // A stored credential the agent does not know is the same error, saying so.
    let wrong = MemoryCredentialStore::holding(Secret::random());
    let answer = enroll(&handle.base_url(), &Secret::new(TOKEN), &wrong, settings()).await;
    assert!(
        matches!(
            answer,
            Err(EnrolmentError::AlreadyEnrolled {
                had_stored_credential: true
            })
        ),
        "{answer:?}"
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn a_crash_between_saving_the_credential_and_posting_it_is_recoverable() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime).await;
    let dying = DiesAfterSave::default();
    let crashed = tokio::time::timeout(
        Duration::from_millis(200),
        enroll(&handle.base_url(), &Secret::new(TOKEN), &dying, settings()),
    )
    .await;
    assert!(crashed.is_err(), "the enrolment got past the save");
    let credential = dying.inner.current().expect("saved before the POST");
    // Nothing was sent: the agent is not enrolled yet.
    let early = AgentClient::new(
        &handle.base_url(),
        handle.fingerprint(),
        credential.clone(),
        settings(),
    )
    .unwrap();
    assert_eq!(early.info().await.unwrap_err().status(), Some(401));
    // The restarted operator enrols with the credential it saved.
    let enrolment = enroll(
        &handle.base_url(),
        &Secret::new(TOKEN),
        &dying.inner,
        settings(),
    )
    .await
    .unwrap();
    assert_eq!(enrolment.certificate_sha256, handle.fingerprint());
    assert_eq!(dying.inner.current(), Some(credential));
    assert_eq!(early.info().await.unwrap().droplet_name, "d1");
    handle.shutdown().await;
}
