//! MCP request latency through the agent alone, quiet, under a flood of wrong enrolment
//! proofs, and during a burst of PUTs (each a state write with fsync).
//!
//! `cargo bench -p mcp-droplet-agent --bench contention` (prints p50/p99 per phase; loopback
//! only, simulated runtime). Environment: `CONTENTION_CALLS` (default 300) MCP calls per phase,
//! `FLOOD_RATE` (default 500) wrong proofs per second. The flood is open-loop at a fixed rate and
//! its client runs on its own thread and runtime (the attacker's CPU is not the agent's), so
//! the phase measures what the agent does with the flood, not the bench's own client load.

use mcp_droplet_agent::api::{ServerSpec, Transport};
use mcp_droplet_agent::client_tls::pinned_reqwest_client;
use mcp_droplet_agent::secret::{Secret, enrolment_proof};
use mcp_droplet_agent::{AgentHandle, SimulatedAgentOptions, spawn_simulated_agent};
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TOKEN: &str = "enrol-token-0123456789";
const CREDENTIAL: &str = "operator-credential-0123456789abcdef-0001";
const ENDPOINT_TOKEN: &str = "endpoint-token-0123456789abcdef";
const FLOOD_TASKS: usize = 8;

fn user_data() -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/mcp-droplet-agent/bootstrap.json\n    content: |\n      {{\"dropletName\": \"bench\", \"enrolmentToken\": \"{TOKEN}\", \"listen\": \"127.0.0.1:0\", \"operatorCA\": null}}\n"
    )
}

fn spec(token: &str) -> ServerSpec {
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
        endpoint_token: Secret::new(token),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// `calls` sequential `tools/list` on one MCP session; sorted latencies.
async fn measure(handle: &AgentHandle, calls: usize) -> Vec<Duration> {
    let http = pinned_reqwest_client(handle.fingerprint(), Duration::from_secs(30)).unwrap();
    let config = StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/servers/time/mcp",
        handle.base_url()
    ))
    .auth_header(ENDPOINT_TOKEN.to_string());
    let session = ().serve(StreamableHttpClientTransport::with_client(http, config)).await.unwrap();
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let start = Instant::now();
        session.list_all_tools().await.unwrap();
        latencies.push(start.elapsed());
    }
    let _ = session.cancel().await;
    latencies.sort();
    latencies
}

fn report(phase: &str, latencies: &[Duration], background: u64) {
    println!(
        "{phase:<28} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  ({} calls; {background} background requests)",
        percentile(latencies, 0.50).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        latencies.len(),
    );
}

#[tokio::main]
async fn main() {
    let calls: usize = std::env::var("CONTENTION_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let handle = spawn_simulated_agent(
        "127.0.0.1:0".parse().unwrap(),
        &user_data(),
        SimulatedAgentOptions {
            data_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = handle.base_url();
    let http = pinned_reqwest_client(handle.fingerprint(), Duration::from_secs(30)).unwrap();
    let enrolled = http
        .post(format!("{base}/v1/enroll"))
        .json(&serde_json::json!({
            "enrolmentProof": enrolment_proof(&Secret::new(TOKEN), handle.fingerprint()).expose(),
            "credential": CREDENTIAL,
        }))
        .send()
        .await
        .unwrap();
    assert!(enrolled.status().is_success());
    let put = http
        .put(format!("{base}/v1/servers/time"))
        .bearer_auth(CREDENTIAL)
        .json(&spec(ENDPOINT_TOKEN))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success());
    // Wait until the endpoint answers (the supervisor starts the simulated server).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let http = pinned_reqwest_client(handle.fingerprint(), Duration::from_secs(5)).unwrap();
        let config =
            StreamableHttpClientTransportConfig::with_uri(format!("{base}/servers/time/mcp"))
                .auth_header(ENDPOINT_TOKEN.to_string());
        if let Ok(s) = ().serve(StreamableHttpClientTransport::with_client(http, config)).await {
            let _ = s.cancel().await;
            break;
        }
        assert!(Instant::now() < deadline, "the endpoint never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Warm-up.
    measure(&handle, calls / 10 + 1).await;

    report("quiet", &measure(&handle, calls).await, 0);

    // A flood of wrong enrolment proofs on keep-alive connections, from its own thread.
    let rate: u64 = std::env::var("FLOOD_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        let fingerprint = handle.fingerprint().to_string();
        let url = format!("{base}/v1/enroll");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut tasks = Vec::new();
                let every = Duration::from_secs_f64(FLOOD_TASKS as f64 / rate.max(1) as f64);
                for _ in 0..FLOOD_TASKS {
                    let client =
                        pinned_reqwest_client(&fingerprint, Duration::from_secs(30)).unwrap();
                    let (url, stop, sent) = (url.clone(), stop.clone(), sent.clone());
                    tasks.push(tokio::spawn(async move {
                        let body = serde_json::json!({"enrolmentProof": "0".repeat(64), "credential": "x".repeat(40)});
                        let mut tick = tokio::time::interval(every);
                        while !stop.load(Ordering::Relaxed) {
                            tick.tick().await;
                            let _ = client.post(&url).json(&body).send().await;
                            sent.fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                for task in tasks {
                    let _ = task.await;
                }
            });
        })
    };
    let latencies = measure(&handle, calls).await;
    stop.store(true, Ordering::Relaxed);
    let _ = flood.join();
    report(
        "flood of wrong proofs",
        &latencies,
        sent.load(Ordering::Relaxed),
    );

    // A burst of PUTs: every one replaces a spec, so every one writes and fsyncs the state.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let burst = {
        let (stop, sent) = (stop.clone(), sent.clone());
        let url = format!("{base}/v1/servers");
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let token = format!("burst-token-{i:020}");
                let _ = http
                    .put(format!("{url}/burst-{}", i % 4))
                    .bearer_auth(CREDENTIAL)
                    .json(&spec(&token))
                    .send()
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };
    let latencies = measure(&handle, calls).await;
    stop.store(true, Ordering::Relaxed);
    let _ = burst.await;
    report("burst of PUTs", &latencies, sent.load(Ordering::Relaxed));
    handle.shutdown().await;
}
