//! The agent against the real Docker Engine of this machine, with a real third-party MCP server
//! (`mcp-server-time` from PyPI, image built by scripts/prereqs.d/agent.sh).
//!
//! Skips with a message when no engine or image is available, unless MCP_REQUIRE_DOCKER=1.

mod common;

use bollard::Docker;
use common::*;
use mcp_droplet_agent::api::{LogsResponse, NetworkPolicy, Phase, ServerStatus};
use mcp_droplet_agent::runtime::docker::DockerRuntime;
use mcp_droplet_agent::supervisor::SupervisorTiming;
use mcp_droplet_agent::{AgentConfig, AgentHandle, AgentOptions, BootstrapConfig, spawn_agent};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const IMAGE: &str = "mcp-test/time:1";
const HTTP_IMAGE: &str = "mcp-test/http:2";

/// Whether Docker tests can run; panics when they must but cannot.
async fn docker_available() -> bool {
    let required = std::env::var("MCP_REQUIRE_DOCKER").is_ok_and(|v| v == "1");
    let problem = match Docker::connect_with_unix_defaults() {
        Err(e) => Some(format!("cannot connect to the Docker Engine: {e}")),
        Ok(docker) => match docker.ping().await {
            Err(e) => Some(format!("the Docker Engine does not answer: {e}")),
            Ok(_) => {
                let mut missing = None;
                for image in [IMAGE, HTTP_IMAGE] {
                    if docker.inspect_image(image).await.is_err() {
                        missing = Some(format!(
                            "test image {image} is missing; build it with scripts/prereqs.d/agent.sh"
                        ));
                    }
                }
                missing
            }
        },
    };
    match problem {
        None => true,
        Some(problem) if required => panic!("MCP_REQUIRE_DOCKER=1 but {problem}"),
        Some(problem) => {
            eprintln!("SKIPPED (Docker): {problem}");
            false
        }
    }
}

async fn start(dir: &Path, droplet: &str) -> AgentHandle {
    let bootstrap = BootstrapConfig::from_user_data(&user_data(droplet, TOKEN)).unwrap();
    spawn_agent(AgentConfig {
        bootstrap,
        data_dir: dir.to_path_buf(),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        runtime: Arc::new(DockerRuntime::connect(droplet).unwrap()),
        options: AgentOptions {
            timing: SupervisorTiming {
                poll: Duration::from_millis(200),
                retry: Duration::from_secs(1),
                handshake: Duration::from_secs(60),
                startup_grace: Duration::from_secs(30),
            },
            ..AgentOptions::default()
        },
    })
    .await
    .unwrap()
}

async fn status(handle: &AgentHandle, name: &str) -> Option<ServerStatus> {
    let r = pinned(handle)
        .get(format!("{}/v1/servers/{name}", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .ok()?;
    if r.status() == 200 {
        r.json().await.ok()
    } else {
        None
    }
}

async fn wait_running(handle: &AgentHandle, name: &str) -> ServerStatus {
    eventually(
        Duration::from_secs(120),
        "server running in Docker",
        || async {
            let s = status(handle, name).await?;
            assert_ne!(s.phase, Phase::Failed, "server failed: {:?}", s.reason);
            (s.phase == Phase::Running).then_some(s)
        },
    )
    .await
}

/// Removes the test's containers even when an assertion failed half-way.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let droplet = self.0.clone();
        let _ = std::process::Command::new("docker")
            .args([
                "ps",
                "-aq",
                "--filter",
                &format!("label=io.agentopia.mcp-droplet-agent.droplet={droplet}"),
            ])
            .output()
            .map(|out| {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = std::process::Command::new("docker")
                        .args(["rm", "-f", id])
                        .output();
                }
            });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_time_runs_in_docker_through_the_agent_and_survives_an_agent_restart() {
    if !docker_available().await {
        return;
    }
    let droplet = format!(
        "test-{}",
        &mcp_droplet_agent::secret::Secret::random().expose()[..10]
    );
    let _cleanup = Cleanup(droplet.clone());
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &droplet).await;
    enroll(&handle, CREDENTIAL).await;

    let mut spec = stdio_spec(IMAGE);
    spec.network_policy = NetworkPolicy::None;
    spec.resources.memory_bytes = 256 * 1024 * 1024;
    spec.resources.cpu_millis = 500;
    spec.args = vec!["--local-timezone".into(), "UTC".into()];
    let put = pinned(&handle)
        .put(format!("{}/v1/servers/time", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    let running = wait_running(&handle, "time").await;
    let container = running.container_id.clone().unwrap();

    // The container is hardened as promised.
    let docker = Docker::connect_with_unix_defaults().unwrap();
    let inspect = docker.inspect_container(&container, None).await.unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.memory, Some(256 * 1024 * 1024));
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_string()]));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.network_mode.as_deref(), Some("none"));
    assert!(
        host.security_opt
            .unwrap_or_default()
            .iter()
            .any(|o| o.starts_with("no-new-privileges"))
    );
    assert!(
        host.binds.unwrap_or_default().is_empty(),
        "no host path, so no engine socket"
    );

    // A real MCP client lists the real server's tools through the agent's HTTPS endpoint.
    let tools = eventually(Duration::from_secs(60), "tools via the agent", || async {
        list_tools_via_agent(&handle, "time", ENDPOINT_TOKEN)
            .await
            .ok()
    })
    .await;
    assert!(tools.contains(&"get_current_time".to_string()), "{tools:?}");
    assert!(tools.contains(&"convert_time".to_string()), "{tools:?}");
    let now = call_tool_via_agent(
        &handle,
        "time",
        ENDPOINT_TOKEN,
        "get_current_time",
        serde_json::json!({"timezone": "Europe/Paris"}),
    )
    .await
    .unwrap();
    assert!(now.contains("Europe/Paris"), "{now}");

    let logs: LogsResponse = pinned(&handle)
        .get(format!(
            "{}/v1/servers/time/logs?tail=20",
            handle.base_url()
        ))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(logs.lines.len() <= 20);

    // The container restarts underneath the agent: the stdio bridge follows it.
    docker.restart_container(&container, None).await.unwrap();
    let now = eventually(
        Duration::from_secs(60),
        "bridge after container restart",
        || async {
            call_tool_via_agent(
                &handle,
                "time",
                ENDPOINT_TOKEN,
                "get_current_time",
                serde_json::json!({"timezone": "UTC"}),
            )
            .await
            .ok()
        },
    )
    .await;
    assert!(now.contains("UTC"), "{now}");

    // Restart the agent: it still reports the server, adopts the same container, and the
    // bridge works again.
    handle.shutdown().await;
    let handle = start(dir.path(), &droplet).await;
    let after = wait_running(&handle, "time").await;
    assert_eq!(after.container_id.as_deref(), Some(container.as_str()));
    let tools = eventually(Duration::from_secs(60), "tools after restart", || async {
        list_tools_via_agent(&handle, "time", ENDPOINT_TOKEN)
            .await
            .ok()
    })
    .await;
    assert!(tools.contains(&"get_current_time".to_string()));

    // DELETE removes the container.
    let delete = pinned(&handle)
        .delete(format!("{}/v1/servers/time", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    let gone = docker.inspect_container(&container, None).await;
    assert!(gone.is_err(), "container still exists after DELETE");
    assert!(status(&handle, "time").await.is_none());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_server_in_docker_is_proxied_through_the_agent() {
    http_server_in_docker_is_proxied(mcp_droplet_agent::api::Transport::StreamableHttp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_server_in_docker_is_bridged_through_the_agent() {
    http_server_in_docker_is_proxied(mcp_droplet_agent::api::Transport::Sse).await;
}

async fn http_server_in_docker_is_proxied(transport: mcp_droplet_agent::api::Transport) {
    if !docker_available().await {
        return;
    }
    let droplet = format!(
        "test-{}",
        &mcp_droplet_agent::secret::Secret::random().expose()[..10]
    );
    let _cleanup = Cleanup(droplet.clone());
    let dir = tempfile::tempdir().unwrap();
    let handle = start(dir.path(), &droplet).await;
    enroll(&handle, CREDENTIAL).await;

    let mut spec = stdio_spec(HTTP_IMAGE);
    spec.transport = transport;
    spec.port = Some(8080);
    if transport == mcp_droplet_agent::api::Transport::Sse {
        spec.args = vec!["sse".into()];
    }
    spec.network_policy = NetworkPolicy::Egress;
    spec.resources.memory_bytes = 256 * 1024 * 1024;
    let put = pinned(&handle)
        .put(format!("{}/v1/servers/echo", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    wait_running(&handle, "echo").await;
    let tools = list_tools_via_agent(&handle, "echo", ENDPOINT_TOKEN)
        .await
        .unwrap();
    assert_eq!(tools, ["echo"]);
    let echoed = call_tool_via_agent(
        &handle,
        "echo",
        ENDPOINT_TOKEN,
        "echo",
        serde_json::json!({"text": "through the agent"}),
    )
    .await
    .unwrap();
    assert!(echoed.contains("through the agent"), "{echoed}");
    let delete = pinned(&handle)
        .delete(format!("{}/v1/servers/echo", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    handle.shutdown().await;
}

#[tokio::test]
async fn readyz_reports_an_unreachable_engine() {
    // Needs no engine: the socket does not exist on purpose.
    let dir = tempfile::tempdir().unwrap();
    // A plain file where the socket should be: it exists, but nothing answers.
    let socket = dir.path().join("no-docker.sock");
    std::fs::write(&socket, b"").unwrap();
    let bootstrap = BootstrapConfig::from_user_data(&user_data("d1", TOKEN)).unwrap();
    let handle = spawn_agent(AgentConfig {
        bootstrap,
        data_dir: dir.path().join("data"),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        runtime: Arc::new(DockerRuntime::connect_to(socket.to_str().unwrap(), "d1").unwrap()),
        options: AgentOptions::default(),
    })
    .await
    .unwrap();
    let (client, _) = tofu_client();
    let ready = client
        .get(format!("{}/readyz", handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = client
        .get(format!("{}/healthz", handle.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    handle.shutdown().await;
}
