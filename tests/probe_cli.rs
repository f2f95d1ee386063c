//! `mcp-droplet-operator probe`: JSON fields, exit codes, and the token file never printed.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    ErrorData, Implementation, JsonObject, ListToolsResult, PaginatedRequestParams,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::process::Command;

const SECRET: &str = "cli-secret-token-4711";

#[derive(Clone)]
struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("cli-fixture", "9.9.9"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new("one", "first", Arc::new(JsonObject::new())),
            Tool::new("two", "second", Arc::new(JsonObject::new())),
        ]))
    }
}

async fn require_secret(request: Request, next: Next) -> Response {
    let expected = format!("Bearer {SECRET}");
    if request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&expected)
    {
        next.run(request).await
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

async fn server() -> String {
    let service = StreamableHttpService::new(
        || Ok(Echo),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(axum::middleware::from_fn(require_secret));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}/mcp")
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn probe_cli(args: &[&str]) -> Run {
    let output = tokio::time::timeout(
        Duration::from_secs(60),
        Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
            .arg("probe")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the CLI finishes")
    .expect("the CLI runs");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn token_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), format!("{SECRET}\n")).expect("write token");
    file
}

#[tokio::test]
async fn success_prints_the_json_fields_and_exits_zero() {
    let url = server().await;
    let token = token_file();
    let path = token.path().to_string_lossy().into_owned();
    let run = probe_cli(&[
        &url,
        "--token-file",
        &path,
        "-o",
        "json",
        "--timeout",
        "10s",
    ])
    .await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert_eq!(json["serverName"], "cli-fixture");
    assert_eq!(json["serverVersion"], "9.9.9");
    assert!(
        json["protocolVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
    );
    assert_eq!(json["tools"], 2);
    assert_eq!(json["toolNames"], serde_json::json!(["one", "two"]));
    assert!(json["latencyMs"].is_u64());
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
}

#[tokio::test]
async fn failure_prints_error_and_reason_and_exits_non_zero() {
    let url = server().await;
    let run = probe_cli(&[&url, "-o", "json"]).await;
    assert_eq!(run.code, Some(1));
    let json: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON on stdout");
    assert_eq!(json["reason"], "unauthorized");
    assert!(json["error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(json.get("serverName").is_none());
}

#[tokio::test]
async fn table_output_is_for_people_and_hides_the_token() {
    let url = server().await;
    let token = token_file();
    let path = token.path().to_string_lossy().into_owned();
    let run = probe_cli(&[&url, "--token-file", &path]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("cli-fixture 9.9.9"), "{}", run.stdout);
    assert!(run.stdout.contains("2 (one, two)"), "{}", run.stdout);
    assert!(!run.stdout.contains(SECRET));
}

#[tokio::test]
async fn unreadable_token_file_names_the_path_only() {
    let run = probe_cli(&[
        "http://127.0.0.1:9/mcp",
        "--token-file",
        "/nonexistent/token",
    ])
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("/nonexistent/token"), "{}", run.stderr);
}

#[tokio::test]
async fn bad_transport_is_a_usage_error() {
    let run = probe_cli(&["http://127.0.0.1:9/mcp", "--transport", "websocket"]).await;
    assert_eq!(run.code, Some(2));
}
