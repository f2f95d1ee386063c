//! Latency the agent adds to an MCP call: `tools/list` and `tools/call` through a real agent
//! (simulated runtime, HTTPS on loopback, one keep-alive connection and one MCP session)
//! against the same upstream server called directly, for stdio and streamable-HTTP servers.
//!
//! Run: `cargo bench -p mcp-droplet-agent --bench mcp_path` (prints p50 and p99 per case).
//! `MCP_PATH_CALLS` sets the number of measured calls per case (default 300).

use mcp_droplet_agent::runtime::{ContainerRuntime, McpConnection};
use mcp_droplet_agent::{
    AgentHandle, SimulatedAgentOptions, SimulatedRuntime, spawn_simulated_agent,
};
use rmcp::model::CallToolRequestParams;
use rmcp::service::ClientLifecycleMode;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientServiceExt, ServiceExt};
use std::time::{Duration, Instant};

const ENROLMENT_TOKEN: &str = "bench-enrolment-token-0123456789";
const CREDENTIAL: &str = "bench-operator-credential-0123456789abcdef";
const ENDPOINT_TOKEN: &str = "bench-endpoint-token-0123456789abcdef";
const WARMUP: usize = 30;

type Client = RunningService<RoleClient, ()>;

fn user_data() -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/mcp-droplet-agent/bootstrap.json\n    permissions: '0600'\n    content: |\n      {{\"dropletName\": \"bench\", \"enrolmentToken\": \"{ENROLMENT_TOKEN}\", \"listen\": \"0.0.0.0:9443\", \"operatorCA\": null}}\n"
    )
}

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("mcp_path bench: {what}: {error}");
    std::process::exit(1)
}

async fn agent_with_servers() -> (AgentHandle, reqwest::Client, SimulatedRuntime) {
    let sim = SimulatedRuntime::default();
    let dir = std::env::temp_dir().join(format!("mcp-path-bench-{}", std::process::id()));
    let handle = spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap_or_else(|e| fail("address", e)),
        &user_data(),
        SimulatedAgentOptions {
            data_dir: Some(dir),
            runtime: Some(sim.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| fail("start agent", e));
    let http = mcp_droplet_agent::client_tls::pinned_reqwest_client(
        handle.fingerprint(),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| fail("client", e));
    let proof = mcp_droplet_agent::secret::enrolment_proof(
        &mcp_droplet_agent::secret::Secret::new(ENROLMENT_TOKEN),
        handle.fingerprint(),
    );
    let enrolled = http
        .post(format!("{}/v1/enroll", handle.base_url()))
        .json(&serde_json::json!({"enrolmentProof": proof.expose(), "credential": CREDENTIAL}))
        .send()
        .await
        .unwrap_or_else(|e| fail("enrol", e));
    if !enrolled.status().is_success() {
        fail("enrol", enrolled.status());
    }
    for (name, transport) in [("stdio", "stdio"), ("http", "streamable-http")] {
        let spec = serde_json::json!({
            "image": format!("sim/{name}:1"),
            "transport": transport,
            "port": 8080,
            "endpointToken": ENDPOINT_TOKEN,
        });
        let put = http
            .put(format!("{}/v1/servers/{name}", handle.base_url()))
            .bearer_auth(CREDENTIAL)
            .json(&spec)
            .send()
            .await
            .unwrap_or_else(|e| fail("put", e));
        if !put.status().is_success() {
            fail("put", put.status());
        }
    }
    for name in ["stdio", "http"] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status: serde_json::Value = http
                .get(format!("{}/v1/servers/{name}", handle.base_url()))
                .bearer_auth(CREDENTIAL)
                .send()
                .await
                .unwrap_or_else(|e| fail("status", e))
                .json()
                .await
                .unwrap_or_else(|e| fail("status", e));
            if status["phase"] == "running" {
                break;
            }
            if Instant::now() > deadline {
                fail("wait", format!("{name} not running: {status}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (handle, http, sim)
}

/// A client of the agent's endpoint for `server`, in the given protocol generation.
async fn via_agent(
    handle: &AgentHandle,
    http: &reqwest::Client,
    server: &str,
    lifecycle: ClientLifecycleMode,
) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/servers/{server}/mcp",
        handle.base_url()
    ))
    .auth_header(ENDPOINT_TOKEN);
    let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
    ().serve_with_lifecycle(transport, lifecycle)
        .await
        .unwrap_or_else(|e| fail("connect through the agent", e))
}

/// A client of the very server the agent fronts, without the agent.
async fn direct(runtime: &SimulatedRuntime, server: &str) -> Client {
    let containers = runtime
        .list_managed()
        .await
        .unwrap_or_else(|e| fail("list containers", e));
    let Some(container) = containers.iter().find(|c| c.server == server) else {
        fail("find container", server)
    };
    let spec = serde_json::from_value(serde_json::json!({
        "image": "sim/direct:1", "transport": "stdio", "endpointToken": ENDPOINT_TOKEN,
    }))
    .unwrap_or_else(|e| fail("spec", e));
    match runtime
        .connect(&container.id, &spec)
        .await
        .unwrap_or_else(|e| fail("connect container", e))
    {
        McpConnection::Stdio { reader, writer } => ().serve((reader, writer)).await,
        McpConnection::Http { url } => {
            let transport = StreamableHttpClientTransport::from_config(
                StreamableHttpClientTransportConfig::with_uri(url),
            );
            ().serve(transport).await
        }
        McpConnection::Sse { .. } => fail("connect container", "unexpected SSE"),
    }
    .unwrap_or_else(|e| fail("direct handshake", e))
}

#[derive(Clone, Copy)]
enum Call {
    ListTools,
    CallTool,
}

async fn measure(client: &Client, call: Call, calls: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(calls);
    for i in 0..WARMUP + calls {
        let started = Instant::now();
        match call {
            Call::ListTools => {
                client
                    .list_tools(None)
                    .await
                    .unwrap_or_else(|e| fail("tools/list", e));
            }
            Call::CallTool => {
                let mut arguments = serde_json::Map::new();
                arguments.insert("text".into(), serde_json::Value::from("hello"));
                client
                    .call_tool(CallToolRequestParams::new("echo").with_arguments(arguments))
                    .await
                    .unwrap_or_else(|e| fail("tools/call", e));
            }
        }
        if i >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    samples
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported by this command.
    let calls = std::env::var("MCP_PATH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail("tokio", e));
    runtime.block_on(async move {
        let (handle, http, sim) = agent_with_servers().await;
        println!("| server | call | client | direct p50 | direct p99 | agent p50 | agent p99 | added p50 |");
        println!("|---|---|---|---|---|---|---|---|");
        for (server, label) in [("stdio", "stdio"), ("http", "streamable HTTP")] {
            let upstream = direct(&sim, server).await;
            for (generation, lifecycle) in [
                ("2025-11-25 (session)", ClientLifecycleMode::Initialize),
                (
                    "2026-07-28 (discover)",
                    ClientLifecycleMode::Discover {
                        preferred_versions: vec![rmcp::model::ProtocolVersion::LATEST],
                    },
                ),
            ] {
                let agent = via_agent(&handle, &http, server, lifecycle).await;
                for (call, name) in [(Call::ListTools, "tools/list"), (Call::CallTool, "tools/call")] {
                    let d = measure(&upstream, call, calls).await;
                    let a = measure(&agent, call, calls).await;
                    let added = percentile(&a, 0.5).saturating_sub(percentile(&d, 0.5));
                    println!(
                        "| {label} | {name} | {generation} | {} | {} | {} | {} | {} |",
                        ms(percentile(&d, 0.5)),
                        ms(percentile(&d, 0.99)),
                        ms(percentile(&a, 0.5)),
                        ms(percentile(&a, 0.99)),
                        ms(added),
                    );
                }
                let _ = agent.cancel().await;
            }
            let _ = upstream.cancel().await;
        }
        handle.shutdown().await;
    });
}
