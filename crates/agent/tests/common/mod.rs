//! Shared helpers of the agent's integration tests.
#![allow(dead_code)]

use mcp_droplet_agent::AgentHandle;
use mcp_droplet_agent::api::{EnrollResponse, ServerSpec, Transport};
use mcp_droplet_agent::client_tls::{PinMode, PinnedCertVerifier, pinned_reqwest_client};
use mcp_droplet_agent::secret::Secret;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use std::future::Future;
use std::time::Duration;

pub const TOKEN: &str = "enrol-token-0123456789";
pub const CREDENTIAL: &str = "operator-credential-0123456789abcdef-0001";
pub const OTHER_CREDENTIAL: &str = "operator-credential-0123456789abcdef-0002";
pub const ENDPOINT_TOKEN: &str = "endpoint-token-0123456789abcdef";

/// The user_data the operator generates for a droplet.
pub fn user_data(droplet: &str, token: &str) -> String {
    format!(
        "#cloud-config\nwrite_files:\n  - path: /etc/mcp-droplet-agent/bootstrap.json\n    permissions: '0600'\n    content: |\n      {{\"dropletName\": \"{droplet}\", \"enrolmentToken\": \"{token}\", \"listen\": \"0.0.0.0:9443\", \"operatorCA\": null}}\n"
    )
}

/// A client that trusts any certificate and records its fingerprint (enrolment).
pub fn tofu_client() -> (reqwest::Client, std::sync::Arc<PinnedCertVerifier>) {
    let verifier = PinnedCertVerifier::new(PinMode::TrustOnFirstUse);
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(verifier.client_config().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    (client, verifier)
}

/// A client pinned to the agent's certificate.
pub fn pinned(handle: &AgentHandle) -> reqwest::Client {
    pinned_reqwest_client(handle.fingerprint(), Duration::from_secs(30)).unwrap()
}

/// The enrolment proof of the test token for a certificate fingerprint.
pub fn proof_for(fingerprint: &str) -> String {
    mcp_droplet_agent::secret::enrolment_proof(&Secret::new(TOKEN), fingerprint)
        .expose()
        .to_string()
}

/// The enrolment request body with a proof for `fingerprint`.
pub fn enrol_body(fingerprint: &str, credential: &str) -> serde_json::Value {
    serde_json::json!({"enrolmentProof": proof_for(fingerprint), "credential": credential})
}

/// Enrols with the test credential.
pub async fn enroll(handle: &AgentHandle, credential: &str) -> EnrollResponse {
    let response = pinned(handle)
        .post(format!("{}/v1/enroll", handle.base_url()))
        .json(&enrol_body(handle.fingerprint(), credential))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A minimal stdio spec.
pub fn stdio_spec(image: &str) -> ServerSpec {
    ServerSpec {
        image: image.to_string(),
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

/// Polls `check` until it yields a value or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lists the tools of a server through the agent's HTTPS MCP endpoint with an rmcp client.
pub async fn list_tools_via_agent(
    handle: &AgentHandle,
    server: &str,
    token: &str,
) -> Result<Vec<String>, String> {
    let client = pinned(handle);
    let config = StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/servers/{server}/mcp",
        handle.base_url()
    ))
    .auth_header(token.to_string());
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let running = ().serve(transport).await.map_err(|e| e.to_string())?;
    let tools = running.list_all_tools().await.map_err(|e| e.to_string())?;
    let _ = running.cancel().await;
    let mut names: Vec<String> = tools.into_iter().map(|t| t.name.to_string()).collect();
    names.sort();
    Ok(names)
}

/// Calls a tool through the agent's HTTPS MCP endpoint and returns its text content.
pub async fn call_tool_via_agent(
    handle: &AgentHandle,
    server: &str,
    token: &str,
    tool: &str,
    arguments: serde_json::Value,
) -> Result<String, String> {
    let client = pinned(handle);
    let config = StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/servers/{server}/mcp",
        handle.base_url()
    ))
    .auth_header(token.to_string());
    let transport = StreamableHttpClientTransport::with_client(client, config);
    let running = ().serve(transport).await.map_err(|e| e.to_string())?;
    let mut params = rmcp::model::CallToolRequestParams::new(tool.to_string());
    if let serde_json::Value::Object(map) = arguments {
        params = params.with_arguments(map);
    }
    let result = running.call_tool(params).await.map_err(|e| e.to_string())?;
    let _ = running.cancel().await;
    let text = serde_json::to_string(&result.content).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Lists the prompts of a server through the agent's endpoint.
pub async fn prompts_via_agent(
    handle: &AgentHandle,
    server: &str,
    token: &str,
) -> Result<Vec<String>, String> {
    let config = StreamableHttpClientTransportConfig::with_uri(format!(
        "{}/servers/{server}/mcp",
        handle.base_url()
    ))
    .auth_header(token.to_string());
    let transport = StreamableHttpClientTransport::with_client(pinned(handle), config);
    let running = ().serve(transport).await.map_err(|e| e.to_string())?;
    let prompts = running
        .list_all_prompts()
        .await
        .map_err(|e| e.to_string())?;
    let _ = running.cancel().await;
    Ok(prompts.into_iter().map(|p| p.name.to_string()).collect())
}
