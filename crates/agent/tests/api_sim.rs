//! The agent's API v1 against the simulated runtime: every route, auth, idempotency,
//! durability, bad input, and the MCP endpoint.

mod common;

use common::*;
use mcp_droplet_agent::api::{
    EnvVar, ErrorBody, InfoResponse, LogsResponse, Phase, PutOutcome, PutResponse, ServerList,
    ServerStatus, Transport,
};
use mcp_droplet_agent::secret::Secret;
use mcp_droplet_agent::supervisor::SupervisorTiming;
use mcp_droplet_agent::{
    AgentHandle, AgentOptions, SimulatedAgentOptions, SimulatedRuntime, SimulatedRuntimeOptions,
    spawn_simulated_agent,
};
use reqwest::StatusCode;
use std::path::Path;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn fast_options() -> AgentOptions {
    AgentOptions {
        timing: SupervisorTiming {
            poll: Duration::from_millis(50),
            retry: Duration::from_millis(200),
            handshake: Duration::from_secs(10),
            startup_grace: Duration::from_secs(30),
        },
        ..AgentOptions::default()
    }
}

async fn start(dir: &Path, runtime: &SimulatedRuntime, droplet: &str) -> AgentHandle {
    spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap(),
        &user_data(droplet, TOKEN),
        SimulatedAgentOptions {
            data_dir: Some(dir.to_path_buf()),
            runtime: Some(runtime.clone()),
            agent: fast_options(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    runtime: SimulatedRuntime,
    handle: AgentHandle,
    http: reqwest::Client,
}

impl World {
    async fn enrolled() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = SimulatedRuntime::default();
        let handle = start(dir.path(), &runtime, "d1").await;
        enroll(&handle, CREDENTIAL).await;
        let http = pinned(&handle);
        Self {
            _dir: dir,
            runtime,
            handle,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url())
    }

    async fn put(
        &self,
        name: &str,
        spec: &mcp_droplet_agent::api::ServerSpec,
    ) -> reqwest::Response {
        self.http
            .put(self.url(&format!("/v1/servers/{name}")))
            .bearer_auth(CREDENTIAL)
            .json(spec)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(CREDENTIAL)
            .send()
            .await
            .unwrap()
    }

    async fn status(&self, name: &str) -> Option<ServerStatus> {
        let r = self.get(&format!("/v1/servers/{name}")).await;
        if r.status() == StatusCode::OK {
            Some(r.json().await.unwrap())
        } else {
            None
        }
    }

    async fn wait_running(&self, name: &str) -> ServerStatus {
        eventually(WAIT, "server running", || async {
            self.status(name)
                .await
                .filter(|s| s.phase == Phase::Running)
        })
        .await
    }
}

async fn error_body(response: reqwest::Response) -> ErrorBody {
    response
        .json()
        .await
        .expect("error answers have a JSON body")
}

#[tokio::test]
async fn healthz_and_readyz_need_no_auth() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &SimulatedRuntime::default(), "d1").await;
    let (client, _) = tofu_client();
    let r = client
        .get(format!("{}/healthz", handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .get(format!("{}/readyz", handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    handle.shutdown().await;
}

#[tokio::test]
async fn enrolment_spends_the_token_and_reports_the_pinned_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime, "d1").await;
    let (client, verifier) = tofu_client();
    let url = format!("{}/v1/enroll", handle.base_url());

    let wrong = client
        .post(&url)
        .json(&serde_json::json!({"enrolmentProof": "nope", "credential": CREDENTIAL}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(error_body(wrong).await.error, "unauthorized");

    let short = client
        .post(&url)
        .json(&enrol_body(handle.fingerprint(), "short"))
        .send()
        .await
        .unwrap();
    assert_eq!(short.status(), 400);

    let ok = client
        .post(&url)
        .json(&enrol_body(handle.fingerprint(), CREDENTIAL))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: mcp_droplet_agent::api::EnrollResponse = ok.json().await.unwrap();
    assert_eq!(body.droplet_name, "d1");
    assert_eq!(body.certificate_sha256, handle.fingerprint());
    assert_eq!(verifier.observed().as_deref(), Some(handle.fingerprint()));

    let again = client
        .post(&url)
        .json(&enrol_body(handle.fingerprint(), OTHER_CREDENTIAL))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(error_body(again).await.error, "already_enrolled");

    // The token stays spent, and the identity stays the same, across a restart.
    let fingerprint = handle.fingerprint().to_string();
    handle.shutdown().await;
    let handle = start(dir.path(), &runtime, "d1").await;
    assert_eq!(handle.fingerprint(), fingerprint);
    let after_restart = tofu_client()
        .0
        .post(format!("{}/v1/enroll", handle.base_url()))
        .json(&enrol_body(handle.fingerprint(), OTHER_CREDENTIAL))
        .send()
        .await
        .unwrap();
    assert_eq!(after_restart.status(), 409);
    let info = pinned(&handle)
        .get(format!("{}/v1/info", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200, "the credential survives a restart");
    handle.shutdown().await;
}

#[tokio::test]
async fn a_pinned_client_refuses_another_agents_certificate() {
    let dir1 = tempfile::tempdir().unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let a = start(dir1.path(), &runtime, "d1").await;
    let b = start(dir2.path(), &runtime, "d2").await;
    assert_ne!(a.fingerprint(), b.fingerprint());
    let pinned_to_a = pinned(&a);
    let err = pinned_to_a
        .get(format!("{}/healthz", b.base_url()))
        .send()
        .await;
    assert!(err.is_err(), "a client pinned to d1 must not talk to d2");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn every_route_but_healthz_and_enroll_requires_the_droplet_credential() {
    let world = World::enrolled().await;
    // Another droplet, enrolled with its own credential.
    let dir2 = tempfile::tempdir().unwrap();
    let other = start(dir2.path(), &world.runtime, "d2").await;
    enroll(&other, OTHER_CREDENTIAL).await;

    let spec = serde_json::to_value(stdio_spec("sim/time:1")).unwrap();
    let routes: Vec<(reqwest::Method, &str, Option<serde_json::Value>)> = vec![
        (reqwest::Method::PUT, "/v1/servers/time", Some(spec)),
        (reqwest::Method::GET, "/v1/servers", None),
        (reqwest::Method::GET, "/v1/servers/time", None),
        (reqwest::Method::GET, "/v1/servers/time/logs?tail=5", None),
        (
            reqwest::Method::POST,
            "/v1/images/pull",
            Some(serde_json::json!({"image": "sim/time:1"})),
        ),
        (reqwest::Method::GET, "/v1/info", None),
        (reqwest::Method::GET, "/metrics", None),
        (reqwest::Method::DELETE, "/v1/servers/time", None),
    ];
    for (method, path, body) in &routes {
        for token in [None, Some("wrong-token"), Some(OTHER_CREDENTIAL), Some("")] {
            let mut request = world.http.request(method.clone(), world.url(path));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
            assert_eq!(
                response
                    .headers()
                    .get("www-authenticate")
                    .map(|v| v.to_str().unwrap()),
                Some("Bearer")
            );
            assert_eq!(error_body(response).await.error, "unauthorized");
        }
        // Basic auth with the right secret is still not a bearer credential.
        let response = world
            .http
            .request(method.clone(), world.url(path))
            .basic_auth("operator", Some(CREDENTIAL))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path} with basic auth");
    }
    // And with the right credential, none of them is a 401.
    for (method, path, body) in &routes {
        let mut request = world
            .http
            .request(method.clone(), world.url(path))
            .bearer_auth(CREDENTIAL);
        if let Some(body) = body {
            request = request.json(body);
        }
        let status = request.send().await.unwrap().status();
        assert!(status.is_success(), "{method} {path} gave {status}");
    }
    other.shutdown().await;
    world.handle.shutdown().await;
}

#[tokio::test]
async fn put_is_idempotent_and_a_changed_spec_replaces_the_container() {
    let world = World::enrolled().await;
    let mut spec = stdio_spec("sim/time:1");
    spec.env.push(EnvVar {
        name: "API_KEY".into(),
        value: String::new(),
        secret_value: Some(Secret::new("s3cr3t-value-1")),
    });
    let created = world.put("time", &spec).await;
    assert_eq!(created.status(), 201);
    let created: PutResponse = created.json().await.unwrap();
    assert_eq!(created.outcome, PutOutcome::Created);
    let running = world.wait_running("time").await;
    let first_container = running.container_id.clone().unwrap();

    let again = world.put("time", &spec).await;
    assert_eq!(again.status(), 200);
    let again: PutResponse = again.json().await.unwrap();
    assert_eq!(again.outcome, PutOutcome::Unchanged);
    assert_eq!(
        again.status.container_id.as_deref(),
        Some(first_container.as_str())
    );
    assert_eq!(world.runtime.container_count(), 1);

    // A rotated secret is a changed spec.
    spec.env[0].secret_value = Some(Secret::new("s3cr3t-value-2"));
    let replaced: PutResponse = world.put("time", &spec).await.json().await.unwrap();
    assert_eq!(replaced.outcome, PutOutcome::Replaced);
    assert_ne!(replaced.status.spec_hash, running.spec_hash);
    let new = eventually(WAIT, "replacement container", || async {
        world.status("time").await.filter(|s| {
            s.phase == Phase::Running && s.container_id.as_deref() != Some(&first_container)
        })
    })
    .await;
    assert!(new.container_id.is_some());
    assert_eq!(world.runtime.container_count(), 1);

    // No secret in any answer.
    for path in ["/v1/servers/time", "/v1/servers"] {
        let text = world.get(path).await.text().await.unwrap();
        assert!(!text.contains("s3cr3t"), "{path} leaks a secret: {text}");
        assert!(
            !text.contains(ENDPOINT_TOKEN),
            "{path} leaks the endpoint token"
        );
    }
    world.handle.shutdown().await;
}

#[tokio::test]
async fn get_list_delete_and_logs() {
    let world = World::enrolled().await;
    assert_eq!(world.get("/v1/servers/nope").await.status(), 404);
    assert_eq!(
        error_body(world.get("/v1/servers/nope").await).await.error,
        "not_found"
    );
    assert_eq!(world.put("a", &stdio_spec("sim/a:1")).await.status(), 201);
    assert_eq!(world.put("b", &stdio_spec("sim/b:1")).await.status(), 201);
    world.wait_running("a").await;
    world.wait_running("b").await;
    let list: ServerList = world.get("/v1/servers").await.json().await.unwrap();
    let names: Vec<&str> = list.servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(list.servers[0].endpoint, "/servers/a/mcp");

    let logs: LogsResponse = world
        .get("/v1/servers/a/logs?tail=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(logs.lines.len(), 1);
    assert!(logs.lines[0].contains("sim/a:1"));
    assert_eq!(world.get("/v1/servers/a/logs?tail=abc").await.status(), 400);
    assert_eq!(world.get("/v1/servers/zzz/logs").await.status(), 404);

    for _ in 0..2 {
        let r = world
            .http
            .delete(world.url("/v1/servers/a"))
            .bearer_auth(CREDENTIAL)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "DELETE is idempotent");
    }
    assert_eq!(world.get("/v1/servers/a").await.status(), 404);
    assert_eq!(world.runtime.container_count(), 1);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn info_metrics_and_pull() {
    let world = World::enrolled().await;
    world.put("time", &stdio_spec("sim/time:1")).await;
    world.wait_running("time").await;
    let info: InfoResponse = world.get("/v1/info").await.json().await.unwrap();
    assert_eq!(info.droplet_name, "d1");
    assert_eq!(info.runtime, "simulated");
    assert_eq!(info.api_version, "v1");
    assert!(info.capabilities.iter().any(|c| c == "transport:stdio"));
    assert!(info.capacity.memory_bytes > 0);
    assert!(info.allocatable.memory_bytes < info.capacity.memory_bytes);
    assert_eq!(info.allocated.memory_bytes, 512 * 1024 * 1024);
    assert_eq!(info.allocated.cpu_millis, 500);

    let metrics = world.get("/metrics").await.text().await.unwrap();
    for name in [
        "mcp_agent_host_load1",
        "mcp_agent_host_memory_total_bytes",
        "mcp_agent_host_disk_available_bytes",
        "mcp_agent_host_cpu_busy_seconds_total",
        "mcp_agent_container_memory_bytes{server=\"time\"}",
        "mcp_agent_container_restarts_total{server=\"time\"} 0",
        "mcp_agent_server_running{server=\"time\"} 1",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }

    let r = world
        .http
        .post(world.url("/v1/images/pull"))
        .bearer_auth(CREDENTIAL)
        .json(&serde_json::json!({"image": "sim/other:2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let bad = world
        .http
        .post(world.url("/v1/images/pull"))
        .bearer_auth(CREDENTIAL)
        .json(&serde_json::json!({"image": "bad image; rm -rf /"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_4xx_with_json_bodies_never_500() {
    let world = World::enrolled().await;
    let put_raw = |path: &'static str, body: Vec<u8>, content_type: Option<&'static str>| {
        let mut r = world
            .http
            .put(world.url(path))
            .bearer_auth(CREDENTIAL)
            .body(body);
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r.send()
    };
    let json = Some("application/json");
    // (path, body, content type, expected status, expected error code)
    type Case<'a> = (&'a str, Vec<u8>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("/v1/servers/x", b"{not json".to_vec(), json, 400, "malformed_json"),
        ("/v1/servers/x", b"[]".to_vec(), json, 400, "malformed_json"),
        ("/v1/servers/x", br#"{"image": 5}"#.to_vec(), json, 400, "malformed_json"),
        (
            "/v1/servers/x",
            br#"{"image":"a","transport":"stdio","endpointToken":"0123456789abcdef","hostNetwork":true}"#.to_vec(),
            json,
            400,
            "malformed_json",
        ),
        (
            "/v1/servers/x",
            br#"{"image":"a","transport":"stdio","endpointToken":"short"}"#.to_vec(),
            json,
            400,
            "invalid_spec",
        ),
        (
            "/v1/servers/x",
            br#"{"image":"a","transport":"streamable-http","endpointToken":"0123456789abcdef"}"#.to_vec(),
            json,
            400,
            "invalid_spec",
        ),
        ("/v1/servers/x", b"{}".to_vec(), None, 415, "unsupported_media_type"),
        (
            "/v1/servers/x",
            vec![b' '; 300 * 1024],
            json,
            413,
            "too_large",
        ),
    ];
    for (path, body, ct, status, code) in cases {
        let response = put_raw(path, body, ct).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{path} {code}");
        assert_eq!(error_body(response).await.error, code);
    }
    // Volume paths and reserved labels.
    let mut spec = stdio_spec("sim/a:1");
    spec.volumes.push(mcp_droplet_agent::api::Volume {
        name: "data".into(),
        mount_path: "/../../etc".into(),
        read_only: false,
    });
    assert_eq!(world.put("x", &spec).await.status(), 400);
    let mut spec = stdio_spec("sim/a:1");
    spec.labels.insert(
        "io.agentopia.mcp-droplet-agent.server".into(),
        "evil".into(),
    );
    assert_eq!(world.put("x", &spec).await.status(), 400);
    // Absurd limits are refused, naming the field, and never reach the capacity sums.
    let mut spec = stdio_spec("sim/a:1");
    spec.resources.memory_bytes = u64::MAX;
    let r = world.put("x", &spec).await;
    assert_eq!(r.status(), 400);
    assert!(
        error_body(r)
            .await
            .message
            .contains("resources.memoryBytes")
    );
    let mut spec = stdio_spec("sim/a:1");
    spec.resources.cpu_millis = u32::MAX;
    let r = world.put("x", &spec).await;
    assert_eq!(r.status(), 400);
    assert!(error_body(r).await.message.contains("resources.cpuMillis"));

    let unknown = world.get("/v1/nothing-here").await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(error_body(unknown).await.error, "not_found");
    let wrong_method = world
        .http
        .patch(world.url("/v1/servers/x"))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(world.runtime.container_count(), 0);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn names_with_path_tricks_are_refused() {
    let world = World::enrolled().await;
    let spec = stdio_spec("sim/a:1");
    for name in [
        "..",
        "%2e%2e",
        "a%2Fb",
        "..%2F..%2Fetc",
        "UPPER",
        "a_b",
        "-a",
        "a-",
        "a%00",
        "%20",
        &"a".repeat(64),
    ] {
        let r = world.put(name, &spec).await;
        let status = r.status();
        assert!(status == 400 || status == 404, "PUT {name} gave {status}");
        assert!(r.json::<ErrorBody>().await.is_ok(), "PUT {name}: JSON body");
        let g = world.get(&format!("/v1/servers/{name}")).await.status();
        assert!(g == 400 || g == 404, "GET {name} gave {g}");
        let l = world
            .get(&format!("/v1/servers/{name}/logs"))
            .await
            .status();
        assert!(l == 400 || l == 404, "logs {name} gave {l}");
    }
    let status = world.put("UPPER", &spec).await;
    assert_eq!(error_body(status).await.error, "invalid_name");
    assert_eq!(world.runtime.container_count(), 0);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn a_restarted_agent_adopts_its_containers() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    let handle = start(dir.path(), &runtime, "d1").await;
    enroll(&handle, CREDENTIAL).await;
    let world = World {
        _dir: tempfile::tempdir().unwrap(),
        runtime: runtime.clone(),
        http: pinned(&handle),
        handle,
    };
    world.put("time", &stdio_spec("sim/time:1")).await;
    let before = world.wait_running("time").await;
    world.handle.shutdown().await;
    assert_eq!(runtime.container_count(), 1, "containers outlive the agent");

    let handle = start(dir.path(), &runtime, "d1").await;
    let world = World {
        _dir: tempfile::tempdir().unwrap(),
        runtime: runtime.clone(),
        http: pinned(&handle),
        handle,
    };
    let after = world.wait_running("time").await;
    assert_eq!(
        after.container_id, before.container_id,
        "adopted, not recreated"
    );
    assert_eq!(runtime.container_count(), 1);
    let tools = list_tools_via_agent(&world.handle, "time", ENDPOINT_TOKEN)
        .await
        .unwrap();
    assert_eq!(tools, ["echo", "time"]);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn the_mcp_endpoint_bridges_stdio_and_sse_and_proxies_http_behind_its_token() {
    let world = World::enrolled().await;
    world.put("stdio", &stdio_spec("sim/time:1")).await;
    let mut http_spec = stdio_spec("sim/http:1");
    http_spec.transport = Transport::StreamableHttp;
    http_spec.port = Some(8080);
    http_spec.endpoint_token = Secret::new("another-endpoint-token-42");
    world.put("http", &http_spec).await;
    let mut sse_spec = http_spec.clone();
    sse_spec.transport = Transport::Sse;
    sse_spec.image = "sim/sse:1".into();
    world.put("sse", &sse_spec).await;
    world.wait_running("stdio").await;
    world.wait_running("http").await;
    world.wait_running("sse").await;
    assert_eq!(
        list_tools_via_agent(&world.handle, "sse", "another-endpoint-token-42")
            .await
            .unwrap(),
        ["echo", "time"]
    );
    let echoed = call_tool_via_agent(
        &world.handle,
        "sse",
        "another-endpoint-token-42",
        "echo",
        serde_json::json!({"text": "over sse"}),
    )
    .await
    .unwrap();
    assert!(echoed.contains("over sse"), "{echoed}");
    assert_eq!(
        prompts_via_agent(&world.handle, "stdio", ENDPOINT_TOKEN)
            .await
            .unwrap(),
        ["greeting"]
    );

    assert_eq!(
        list_tools_via_agent(&world.handle, "stdio", ENDPOINT_TOKEN)
            .await
            .unwrap(),
        ["echo", "time"]
    );
    assert_eq!(
        list_tools_via_agent(&world.handle, "http", "another-endpoint-token-42")
            .await
            .unwrap(),
        ["echo", "time"]
    );
    // Each endpoint takes only its own token; the operator credential is not an endpoint token.
    for (server, token) in [
        ("stdio", "another-endpoint-token-42"),
        ("http", ENDPOINT_TOKEN),
        ("stdio", CREDENTIAL),
        ("nope", ENDPOINT_TOKEN),
    ] {
        assert!(
            list_tools_via_agent(&world.handle, server, token)
                .await
                .is_err(),
            "{server} accepted a foreign token"
        );
    }
    let raw = world
        .http
        .post(world.url("/servers/stdio/mcp"))
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn the_bridge_restarts_with_the_container_and_a_vanished_container_is_recreated() {
    let world = World::enrolled().await;
    world.put("time", &stdio_spec("sim/time:1")).await;
    let before = world.wait_running("time").await;
    assert!(world.runtime.crash_and_restart("time"));
    let restarted = eventually(WAIT, "restart counted", || async {
        world
            .status("time")
            .await
            .filter(|s| s.restarts == 1 && s.phase == Phase::Running)
    })
    .await;
    assert_eq!(restarted.container_id, before.container_id);
    let tools = eventually(WAIT, "bridge reconnected", || async {
        list_tools_via_agent(&world.handle, "time", ENDPOINT_TOKEN)
            .await
            .ok()
    })
    .await;
    assert_eq!(tools, ["echo", "time"]);

    assert!(world.runtime.remove_behind_agents_back("time"));
    let recreated = eventually(WAIT, "container recreated", || async {
        world.status("time").await.filter(|s| {
            s.phase == Phase::Running
                && s.container_id.is_some()
                && s.container_id != before.container_id
        })
    })
    .await;
    assert_eq!(recreated.restarts, 2);
    world.handle.shutdown().await;
}

#[tokio::test]
async fn pull_progress_and_failure_injection() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::new(SimulatedRuntimeOptions {
        pull_latency: Duration::from_millis(800),
        ..Default::default()
    });
    runtime.fail_pulls_of("sim/missing:1");
    runtime.fail_starts_of("sim/crashy:1");
    let handle = start(dir.path(), &runtime, "d1").await;
    enroll(&handle, CREDENTIAL).await;
    let world = World {
        _dir: tempfile::tempdir().unwrap(),
        runtime: runtime.clone(),
        http: pinned(&handle),
        handle,
    };
    world.put("slow", &stdio_spec("sim/slow:1")).await;
    let pulling = eventually(WAIT, "pull progress", || async {
        world.status("slow").await.filter(|s| {
            s.phase == Phase::Pulling && s.pull_progress.is_some_and(|p| p.current_bytes > 0)
        })
    })
    .await;
    assert!(pulling.pull_progress.unwrap().total_bytes > 0);
    world.wait_running("slow").await;

    world.put("missing", &stdio_spec("sim/missing:1")).await;
    let failed = eventually(WAIT, "pull failure", || async {
        world
            .status("missing")
            .await
            .filter(|s| s.phase == Phase::Failed)
    })
    .await;
    assert!(failed.reason.unwrap().contains("manifest unknown"));

    world.put("crashy", &stdio_spec("sim/crashy:1")).await;
    let failed = eventually(WAIT, "start failure", || async {
        world
            .status("crashy")
            .await
            .filter(|s| s.phase == Phase::Failed && s.reason.is_some())
    })
    .await;
    assert!(failed.reason.unwrap().contains("exit code 1"));
    world.handle.shutdown().await;
}

#[tokio::test]
async fn containers_of_undesired_servers_are_removed_at_start() {
    use mcp_droplet_agent::runtime::ContainerRuntime;
    let dir = tempfile::tempdir().unwrap();
    let runtime = SimulatedRuntime::default();
    // Left behind by a crash between a DELETE and the container's removal.
    let spec = stdio_spec("sim/ghost:1");
    runtime
        .pull(&spec.image, None, Box::new(|_| {}))
        .await
        .unwrap();
    runtime
        .create_and_start("ghost", &spec, "0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(runtime.container_count(), 1);
    let handle = start(dir.path(), &runtime, "d1").await;
    eventually(WAIT, "orphan removed", || async {
        (runtime.container_count() == 0).then_some(())
    })
    .await;
    handle.shutdown().await;
}

#[tokio::test]
async fn guessing_is_throttled_but_a_valid_proof_always_enrols() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &SimulatedRuntime::default(), "d1").await;
    let (client, _) = tofu_client();
    let url = format!("{}/v1/enroll", handle.base_url());
    let mut statuses = Vec::new();
    for i in 0..20 {
        let r = client
            .post(&url)
            .json(&serde_json::json!({"enrolmentProof": format!("guess-{i}"), "credential": CREDENTIAL}))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    let limit = mcp_droplet_agent::agent::MAX_FAILED_ENROLMENTS;
    assert!(statuses[..limit].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[limit..].iter().all(|s| *s == 429), "{statuses:?}");
    // The lockout slows guessing only: the operator's valid proof still gets through.
    let r = client
        .post(&url)
        .json(&enrol_body(handle.fingerprint(), CREDENTIAL))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let info = pinned(&handle)
        .get(format!("{}/v1/info", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    handle.shutdown().await;
}

#[tokio::test]
async fn a_proof_over_another_certificate_is_refused_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &SimulatedRuntime::default(), "d1").await;
    // What a relaying man in the middle obtains: a proof over its own certificate.
    let attacker_fingerprint = "ab".repeat(32);
    assert_ne!(attacker_fingerprint, handle.fingerprint());
    let r = pinned(&handle)
        .post(format!("{}/v1/enroll", handle.base_url()))
        .json(&enrol_body(&attacker_fingerprint, CREDENTIAL))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_body(r).await.error, "unauthorized");
    let info = pinned(&handle)
        .get(format!("{}/v1/info", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401, "the credential must not be installed");
    // The raw token is not accepted either (the wire no longer carries it).
    let raw = pinned(&handle)
        .post(format!("{}/v1/enroll", handle.base_url()))
        .json(&serde_json::json!({"enrolmentToken": TOKEN, "credential": CREDENTIAL}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16() / 100, 4);
    assert_ne!(raw.status(), 200);
    // The real operator still enrols afterwards.
    enroll(&handle, CREDENTIAL).await;
    handle.shutdown().await;
}
