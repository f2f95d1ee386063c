//! `mcp-droplet-operator probe URL`: the MCP check against any endpoint.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::probe::{
    McpTransport, ProbeFailure, ProbeOutcome, ProbeReport, ProbeRequest, bearer_token,
};

/// Arguments of the `probe` subcommand.
#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The MCP endpoint, e.g. http://203.0.113.7:31001/mcp (for --transport sse, the /sse URL).
    pub url: String,
    /// A file holding a bearer token to send (its contents are never printed).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The MCP transport the endpoint speaks.
    #[arg(long, value_enum, default_value_t = TransportArg::StreamableHttp)]
    pub transport: TransportArg,
    /// Deadline for the whole check, e.g. 10s, 500ms, 1m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// The `--transport` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    /// Streamable HTTP (the current MCP transport).
    StreamableHttp,
    /// The legacy HTTP+SSE transport.
    Sse,
}

impl From<TransportArg> for McpTransport {
    fn from(value: TransportArg) -> Self {
        match value {
            TransportArg::StreamableHttp => McpTransport::StreamableHttp,
            TransportArg::Sse => McpTransport::Sse,
        }
    }
}

/// The `-o` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned lines for people.
    Table,
    /// One JSON object for scripts.
    Json,
}

/// Errors of the `probe` subcommand.
#[derive(Debug, thiserror::Error)]
pub enum ProbeCliError {
    /// The token file could not be read (the message names the path, never the contents).
    #[error("cannot read token file {path}: {source}")]
    TokenFile {
        /// The path given with --token-file.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The output could not be written or encoded.
    #[error("cannot write the result: {0}")]
    Output(String),
    /// The endpoint did not pass the check; the details were printed.
    #[error("probe failed: {0}")]
    Failed(crate::probe::FailureReason),
}

/// Parses `10s`, `500ms`, `2m` or a bare number of seconds, up to 10 minutes.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // A bare number is seconds; the rest is the operator's one duration parser.
    let with_unit = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        format!("{text}s")
    } else {
        text.to_string()
    };
    match crate::api::shared_fields::parse_duration(&with_unit) {
        Ok(Some(d)) if d.is_zero() => Err(format!("{text:?} must be a positive duration")),
        Ok(Some(d)) if d > MAX_PROBE_TIMEOUT => Err(format!(
            "{text:?} is too long for a probe timeout (at most {}s)",
            MAX_PROBE_TIMEOUT.as_secs()
        )),
        Ok(Some(d)) => Ok(d),
        Ok(None) | Err(_) => Err(format!("{text:?} is not a duration like 10s, 500ms or 1m")),
    }
}

/// A probe that needs longer than this is broken, not slow.
const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs the probe and prints the outcome; an endpoint that fails the check is an error.
pub async fn run(args: ProbeArgs) -> Result<(), ProbeCliError> {
    let mut request = ProbeRequest::new(args.url.clone())
        .transport(args.transport.into())
        .timeout(args.timeout);
    if let Some(path) = &args.token_file {
        let token = std::fs::read_to_string(path).map_err(|source| ProbeCliError::TokenFile {
            path: path.clone(),
            source,
        })?;
        request = request.token(bearer_token(&token));
    }
    let outcome = crate::probe::probe(&request).await;
    let text = match args.output {
        OutputFormat::Json => render_json(&outcome)?,
        OutputFormat::Table => render_table(&outcome),
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| ProbeCliError::Output(e.to_string()))?;
    match outcome {
        Ok(_) => Ok(()),
        Err(failure) => Err(ProbeCliError::Failed(failure.reason)),
    }
}

/// The JSON form: the report on success; `error` and `reason` (plus context) on failure.
pub fn render_json(outcome: &ProbeOutcome) -> Result<String, ProbeCliError> {
    let encoded = match outcome {
        Ok(report) => serde_json::to_string_pretty(report),
        Err(failure) => serde_json::to_string_pretty(failure),
    };
    encoded.map_err(|e| ProbeCliError::Output(e.to_string()))
}

/// The table form for people.
pub fn render_table(outcome: &ProbeOutcome) -> String {
    let rows: Vec<(&str, String)> = match outcome {
        Ok(report) => success_rows(report),
        Err(failure) => failure_rows(failure),
    };
    rows.iter()
        .map(|(key, value)| format!("{key:<10} {value}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn success_rows(report: &ProbeReport) -> Vec<(&'static str, String)> {
    let tools = if report.tool_names.is_empty() {
        "0".to_owned()
    } else {
        format!("{} ({})", report.tools, report.tool_names.join(", "))
    };
    vec![
        ("RESULT", "OK".to_owned()),
        ("URL", report.url.clone()),
        ("TRANSPORT", report.transport.to_string()),
        ("GENERATION", report.generation.to_string()),
        (
            "SERVER",
            format!("{} {}", report.server_name, report.server_version),
        ),
        ("PROTOCOL", report.protocol_version.clone()),
        ("TOOLS", tools),
        ("LATENCY", format!("{} ms", report.latency_ms)),
    ]
}

fn failure_rows(failure: &ProbeFailure) -> Vec<(&'static str, String)> {
    vec![
        ("RESULT", format!("FAILED ({})", failure.reason)),
        ("URL", failure.url.clone()),
        ("TRANSPORT", failure.transport.to_string()),
        ("ERROR", failure.error.clone()),
        ("LATENCY", format!("{} ms", failure.latency_ms)),
    ]
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_absurd_timeout_is_an_error_not_a_panic() {
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("10s").is_ok());
    }

    use super::*;
    use crate::probe::FailureReason;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn failure_json_has_error_and_reason() {
        let outcome: ProbeOutcome = Err(ProbeFailure {
            url: "http://127.0.0.1:1/mcp".into(),
            transport: McpTransport::StreamableHttp,
            reason: FailureReason::Unreachable,
            error: "connection refused".into(),
            latency_ms: 3,
        });
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&outcome).unwrap_or_default()).unwrap_or_default();
        assert_eq!(json["reason"], "unreachable");
        assert_eq!(json["error"], "connection refused");
        assert!(render_table(&outcome).contains("FAILED (unreachable)"));
    }
}
