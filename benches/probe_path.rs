//! Latency of the operator's probe (`src/probe/`): a full verification (connect, TLS,
//! `server/discover` or `initialize`, `tools/list`) through a real agent (simulated runtime,
//! HTTPS on loopback, pinned certificate) and against the same upstream server directly.
//!
//! Run: `cargo bench -p mcp-droplet-operator --bench probe_path` (prints p50 and p99).
//! `PROBE_PATH_RUNS` sets the number of measured probes per case (default 100).

use std::time::{Duration, Instant};

use mcp_droplet_agent::runtime::{ContainerRuntime, McpConnection};
use mcp_droplet_agent::{SimulatedAgentOptions, SimulatedRuntime, spawn_simulated_agent};
use mcp_droplet_operator::probe::{ProbeRequest, bearer_token, probe};

const ENROLMENT_TOKEN: &str = "bench-enrolment-token-0123456789";
const CREDENTIAL: &str = "bench-operator-credential-0123456789abcdef";
const ENDPOINT_TOKEN: &str = "bench-endpoint-token-0123456789abcdef";

fn fail(what: &str, error: impl std::fmt::Display) -> ! {
    eprintln!("probe_path bench: {what}: {error}");
    std::process::exit(1)
}

fn user_data() -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/mcp-droplet-agent/bootstrap.json\n    permissions: '0600'\n    content: |\n      {{\"dropletName\": \"bench\", \"enrolmentToken\": \"{ENROLMENT_TOKEN}\", \"listen\": \"0.0.0.0:9443\", \"operatorCA\": null}}\n"
    )
}

async fn measure(runs: usize, mut request: impl FnMut() -> ProbeRequest) -> (Duration, Duration) {
    let mut samples = Vec::with_capacity(runs);
    for i in 0..runs + 5 {
        let started = Instant::now();
        if let Err(failure) = probe(&request()).await {
            fail("probe", failure);
        }
        if i >= 5 {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    let at =
        |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runs = std::env::var("PROBE_PATH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail("tokio", e));
    runtime.block_on(async move {
        let sim = SimulatedRuntime::default();
        let dir = std::env::temp_dir().join(format!("probe-path-bench-{}", std::process::id()));
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
        let pinned = || {
            mcp_droplet_agent::client_tls::pinned_reqwest_client(
                handle.fingerprint(),
                Duration::from_secs(30),
            )
            .unwrap_or_else(|e| fail("client", e))
        };
        let http = pinned();
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
                "image": format!("sim/{name}:1"), "transport": transport, "port": 8080,
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
        println!("| probe of | path | p50 ms | p99 ms |");
        println!("|---|---|---|---|");
        for name in ["stdio", "http"] {
            let url = format!("{}/servers/{name}/mcp", handle.base_url());
            // Wait until the bridge is up: the first successful probe.
            let deadline = Instant::now() + Duration::from_secs(30);
            while probe(
                &ProbeRequest::new(url.clone())
                    .token(bearer_token(ENDPOINT_TOKEN))
                    .http_client(pinned()),
            )
            .await
            .is_err()
            {
                if Instant::now() > deadline {
                    fail("wait", format!("{name} never verified"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let (p50, p99) = measure(runs, || {
                ProbeRequest::new(url.clone())
                    .token(bearer_token(ENDPOINT_TOKEN))
                    .http_client(pinned())
            })
            .await;
            println!("| {name} server | through the agent, new client and TLS connection per probe | {} | {} |", ms(p50), ms(p99));
            let shared = pinned();
            let (p50, p99) = measure(runs, || {
                ProbeRequest::new(url.clone())
                    .token(bearer_token(ENDPOINT_TOKEN))
                    .http_client(shared.clone())
            })
            .await;
            println!("| {name} server | through the agent, one pinned client (kept-alive connection) | {} | {} |", ms(p50), ms(p99));
        }
        let containers = sim.list_managed().await.unwrap_or_else(|e| fail("list", e));
        if let Some(container) = containers.iter().find(|c| c.server == "http") {
            let spec = serde_json::from_value(serde_json::json!({
                "image": "sim/http:1", "transport": "streamable-http", "endpointToken": ENDPOINT_TOKEN,
            }))
            .unwrap_or_else(|e| fail("spec", e));
            if let Ok(McpConnection::Http { url }) = sim.connect(&container.id, &spec).await {
                let (p50, p99) = measure(runs, || ProbeRequest::new(url.clone())).await;
                println!("| http server | directly, default (a new client per probe) | {} | {} |", ms(p50), ms(p99));
                let shared = reqwest::Client::new();
                let (p50, p99) =
                    measure(runs, || ProbeRequest::new(url.clone()).http_client(shared.clone())).await;
                println!("| http server | directly, one shared client | {} | {} |", ms(p50), ms(p99));
            }
        }
        handle.shutdown().await;
    });
}
