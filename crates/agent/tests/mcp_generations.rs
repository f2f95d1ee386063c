//! Both generations of the MCP protocol through the agent: servers that speak only 2026-07-28
//! (`server/discover`, no sessions), only the session-based generation (`initialize`), or both,
//! over stdio and streamable HTTP, each reached by clients of either generation.

mod common;

use common::*;
use mcp_droplet_agent::api::{EnvVar, Phase, ServerSpec, ServerStatus, Transport};
use mcp_droplet_agent::bridge;
use mcp_droplet_agent::runtime::McpConnection;
use mcp_droplet_agent::sim_mcp::SimProtocol;
use mcp_droplet_agent::{
    AgentHandle, SimulatedAgentOptions, SimulatedRuntime, spawn_simulated_agent,
};
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, ClientServiceExt};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn spec(transport: Transport, protocol: &str) -> ServerSpec {
    let mut spec = stdio_spec(&format!("sim/{protocol}:1"));
    spec.transport = transport;
    if transport == Transport::StreamableHttp {
        spec.port = Some(8080);
    }
    spec.env.push(EnvVar {
        name: SimProtocol::ENV.into(),
        value: protocol.into(),
        secret_value: None,
    });
    spec
}

async fn put_and_wait(handle: &AgentHandle, name: &str, spec: &ServerSpec) {
    let http = pinned(handle);
    let put = http
        .put(format!("{}/v1/servers/{name}", handle.base_url()))
        .bearer_auth(CREDENTIAL)
        .json(spec)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    eventually(WAIT, "server running", || async {
        let response = http
            .get(format!("{}/v1/servers/{name}", handle.base_url()))
            .bearer_auth(CREDENTIAL)
            .send()
            .await
            .ok()?;
        let status: ServerStatus = response.json().await.ok()?;
        (status.phase == Phase::Running).then_some(())
    })
    .await;
}

/// Lists tools through the agent's endpoint with a client of one lifecycle; returns the tool
/// names and the protocol version the session runs.
async fn list_via_agent(
    handle: &AgentHandle,
    server: &str,
    lifecycle: ClientLifecycleMode,
) -> Result<(Vec<String>, ProtocolVersion), String> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/servers/{server}/mcp",
        handle.base_url()
    ))
    .auth_header(ENDPOINT_TOKEN.to_string());
    let transport = StreamableHttpClientTransport::with_client(pinned(handle), config);
    let running = ().serve_with_lifecycle(transport, lifecycle).await.map_err(|e| e.to_string())?;
    let version = running
        .peer_info()
        .map(|info| info.protocol_version.clone())
        .ok_or("no peer info")?;
    let tools = running.list_all_tools().await.map_err(|e| e.to_string())?;
    let _ = running.cancel().await;
    let mut names: Vec<String> = tools.into_iter().map(|t| t.name.to_string()).collect();
    names.sort();
    Ok((names, version))
}

fn initialize() -> ClientLifecycleMode {
    ClientLifecycleMode::Initialize
}

fn discover() -> ClientLifecycleMode {
    ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::LATEST],
    }
}

#[tokio::test]
async fn servers_of_either_generation_serve_clients_of_either_generation_through_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap(),
        &user_data("d1", TOKEN),
        SimulatedAgentOptions {
            data_dir: Some(dir.path().to_path_buf()),
            runtime: Some(SimulatedRuntime::default()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    enroll(&handle, CREDENTIAL).await;
    let mut servers = Vec::new();
    for (transport, label) in [
        (Transport::Stdio, "stdio"),
        (Transport::StreamableHttp, "http"),
    ] {
        for protocol in ["discover", "initialize", "both"] {
            let name = format!("{label}-{protocol}");
            put_and_wait(&handle, &name, &spec(transport, protocol)).await;
            servers.push(name);
        }
    }
    for server in &servers {
        let (tools, version) = list_via_agent(&handle, server, initialize())
            .await
            .unwrap_or_else(|e| panic!("{server}, initialize client: {e}"));
        assert_eq!(tools, ["echo", "time"], "{server}");
        assert!(version.has_initialize(), "{server}: {version}");
        let (tools, version) = list_via_agent(&handle, server, discover())
            .await
            .unwrap_or_else(|e| panic!("{server}, discover client: {e}"));
        assert_eq!(tools, ["echo", "time"], "{server}");
        assert_eq!(version, ProtocolVersion::V_2026_07_28, "{server}");
    }
    handle.shutdown().await;
}

/// The bridge's upstream handshake against rmcp servers in each mode, over an in-memory pipe:
/// it must pick the generation the server speaks.
#[tokio::test]
async fn the_bridge_speaks_the_generation_of_its_upstream() {
    use mcp_droplet_agent::sim_mcp::SimMcpServer;
    use rmcp::ServiceExt;
    for (protocol, expect_discover) in [
        (SimProtocol::DiscoverOnly, true),
        (SimProtocol::InitializeOnly, false),
        (SimProtocol::Both, true),
    ] {
        let (agent_end, container_end) = tokio::io::duplex(64 * 1024);
        let server = SimMcpServer::new("sim/x:1").with_protocol(protocol);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(tokio::io::split(container_end)).await {
                let _ = running.waiting().await;
            }
        });
        let (reader, writer) = tokio::io::split(agent_end);
        let client = bridge::connect(
            McpConnection::Stdio {
                reader: Box::pin(reader),
                writer: Box::pin(writer),
            },
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("{protocol:?}: {e}"));
        let version = client.peer_info().unwrap().protocol_version.clone();
        assert_eq!(
            !version.has_initialize(),
            expect_discover,
            "{protocol:?}: {version}"
        );
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools.len(), 2, "{protocol:?}");
        let _ = client.cancel().await;
    }
}

/// The Python SDK's stdio server (the kind most stdio images run) behind the bridge.
#[tokio::test]
async fn the_bridge_handshakes_with_a_python_sdk_stdio_server() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("MCP_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo.join(".venv/bin/python"));
    if !python.is_file() {
        let message = format!(
            "{} not found (run scripts/prereqs.d/probe.sh)",
            python.display()
        );
        assert!(
            std::env::var("MCP_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "MCP_REQUIRE_TOOLS=1 but {message}"
        );
        eprintln!("SKIPPED: {message}");
        return;
    }
    let mut child = tokio::process::Command::new(&python)
        .arg(repo.join("tests/fixtures/mcp_fixture_server.py"))
        .arg("stdio")
        .arg("0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        panic!("no pipes");
    };
    let client = bridge::connect(
        McpConnection::Stdio {
            reader: Box::pin(stdout),
            writer: Box::pin(stdin),
        },
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("probe-fixture")
    );
    let mut tools: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    tools.sort();
    assert_eq!(tools, ["add", "shout"]);
    let _ = client.cancel().await;
    let _ = child.kill().await;
}
