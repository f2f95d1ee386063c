//! Pure classification of raw HTTP answers into probe failure reasons.

use super::{FailureReason, McpTransport};

/// The parts of an HTTP answer that decide what kind of endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpFacts {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The first few kilobytes of the body.
    pub body_prefix: String,
}

impl HttpFacts {
    fn is_event_stream(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"))
    }
}

/// What one raw HTTP answer says about the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpVerdict {
    /// The answer settles it: the probe fails for this reason.
    Fail(FailureReason, String),
    /// The answer is MCP in the transport we tried (so any failure happened later).
    SpeaksTransport,
    /// Not this transport; whether it is MCP at all depends on trying the other one.
    TryOtherTransport(String),
}

/// Whether a body (plain JSON, or an event stream's `data:` lines) holds a JSON-RPC 2.0 message.
pub fn looks_like_jsonrpc(body: &str) -> bool {
    let is_jsonrpc = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text.trim())
            .ok()
            .and_then(|value| {
                value
                    .get("jsonrpc")
                    .and_then(|v| v.as_str())
                    .map(|v| v == "2.0")
            })
            .unwrap_or(false)
    };
    if is_jsonrpc(body) {
        return true;
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .any(is_jsonrpc)
}

/// Classifies the answer to the first request of `transport`: a POST of `initialize` for
/// streamable HTTP, a GET of the event stream for SSE.
pub fn classify_http(transport: McpTransport, facts: &HttpFacts) -> HttpVerdict {
    let status = facts.status;
    if status == 401 || status == 403 {
        return HttpVerdict::Fail(
            FailureReason::Unauthorized,
            format!("HTTP {status}: the server wants a (different) bearer token"),
        );
    }
    match transport {
        McpTransport::StreamableHttp => classify_streamable_post(facts),
        McpTransport::Sse => classify_sse_get(facts),
    }
}

fn classify_streamable_post(facts: &HttpFacts) -> HttpVerdict {
    let status = facts.status;
    let jsonrpc = looks_like_jsonrpc(&facts.body_prefix);
    match status {
        200..=299 if jsonrpc => HttpVerdict::SpeaksTransport,
        200..=299 => HttpVerdict::Fail(
            FailureReason::NotAnMcpServer,
            format!(
                "HTTP {status} with {} instead of a JSON-RPC answer to initialize",
                describe_content_type(facts)
            ),
        ),
        // A GET-only route: maybe the legacy SSE stream lives here.
        405 => HttpVerdict::TryOtherTransport(format!("HTTP {status} to POST")),
        400..=499 if jsonrpc => HttpVerdict::Fail(
            FailureReason::ProtocolError,
            format!("HTTP {status}: the server rejected initialize with a JSON-RPC error"),
        ),
        404 => HttpVerdict::Fail(
            FailureReason::NotAnMcpServer,
            "HTTP 404: nothing is served at this path".to_owned(),
        ),
        500..=599 => HttpVerdict::Fail(
            FailureReason::ProtocolError,
            format!("HTTP {status}: the server failed while answering initialize"),
        ),
        _ => HttpVerdict::Fail(
            FailureReason::NotAnMcpServer,
            format!(
                "HTTP {status} with {} to an MCP initialize",
                describe_content_type(facts)
            ),
        ),
    }
}

fn classify_sse_get(facts: &HttpFacts) -> HttpVerdict {
    let status = facts.status;
    if (200..300).contains(&status) && facts.is_event_stream() {
        return HttpVerdict::SpeaksTransport;
    }
    HttpVerdict::TryOtherTransport(format!(
        "HTTP {status} with {} instead of an event stream",
        describe_content_type(facts)
    ))
}

fn describe_content_type(facts: &HttpFacts) -> String {
    match facts.content_type.as_deref() {
        Some(ct) => format!("content type {ct}"),
        None => "no content type".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16, content_type: Option<&str>, body: &str) -> HttpFacts {
        HttpFacts {
            status,
            content_type: content_type.map(str::to_owned),
            body_prefix: body.to_owned(),
        }
    }

    const RPC_OK: &str = r#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
    const RPC_ERR: &str =
        r#"{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"Bad Request"}}"#;

    #[test]
    fn jsonrpc_detection_covers_json_and_event_streams() {
        assert!(looks_like_jsonrpc(RPC_OK));
        assert!(looks_like_jsonrpc(&format!(
            "event: message\ndata: {RPC_OK}\n\n"
        )));
        assert!(!looks_like_jsonrpc("<html>hello</html>"));
        assert!(!looks_like_jsonrpc(r#"{"status":"ok"}"#));
    }

    #[test]
    fn streamable_post_table() {
        use FailureReason::*;
        let cases = [
            (facts(401, None, ""), Some(Unauthorized)),
            (
                facts(403, Some("application/json"), "{}"),
                Some(Unauthorized),
            ),
            (
                facts(200, Some("text/html"), "<html/>"),
                Some(NotAnMcpServer),
            ),
            (
                facts(200, Some("application/json"), r#"{"ok":1}"#),
                Some(NotAnMcpServer),
            ),
            (
                facts(404, Some("text/plain"), "Not Found"),
                Some(NotAnMcpServer),
            ),
            (
                facts(400, Some("application/json"), RPC_ERR),
                Some(ProtocolError),
            ),
            (facts(500, None, ""), Some(ProtocolError)),
            (facts(415, None, ""), Some(NotAnMcpServer)),
        ];
        for (input, expected) in cases {
            match classify_http(McpTransport::StreamableHttp, &input) {
                HttpVerdict::Fail(reason, _) => assert_eq!(Some(reason), expected, "{input:?}"),
                other => panic!("{input:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn streamable_post_answered_or_get_only() {
        assert_eq!(
            classify_http(
                McpTransport::StreamableHttp,
                &facts(
                    200,
                    Some("text/event-stream"),
                    &format!("data: {RPC_OK}\n\n")
                )
            ),
            HttpVerdict::SpeaksTransport
        );
        assert!(matches!(
            classify_http(McpTransport::StreamableHttp, &facts(405, None, "")),
            HttpVerdict::TryOtherTransport(_)
        ));
    }

    #[test]
    fn sse_get_table() {
        assert_eq!(
            classify_http(
                McpTransport::Sse,
                &facts(200, Some("text/event-stream; charset=utf-8"), "")
            ),
            HttpVerdict::SpeaksTransport
        );
        assert!(matches!(
            classify_http(McpTransport::Sse, &facts(401, None, "")),
            HttpVerdict::Fail(FailureReason::Unauthorized, _)
        ));
        for status in [200, 400, 404, 405, 406] {
            assert!(matches!(
                classify_http(
                    McpTransport::Sse,
                    &facts(status, Some("application/json"), RPC_ERR)
                ),
                HttpVerdict::TryOtherTransport(_)
            ));
        }
    }
}
