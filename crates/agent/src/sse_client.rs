//! A client for the legacy HTTP+SSE MCP transport (rmcp 3 ships none): a GET opens the event
//! stream, whose first `endpoint` event names the URL to POST messages to; answers arrive as
//! `message` events.

use futures::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use std::time::Duration;
use tokio_stream::wrappers::ReceiverStream;

/// Why the SSE connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The GET failed.
    #[error("cannot open the event stream: {0}")]
    Open(String),
    /// No `endpoint` event arrived.
    #[error("the server sent no endpoint event")]
    NoEndpoint,
    /// The endpoint is not a valid URL.
    #[error("invalid endpoint {0:?}")]
    BadEndpoint(String),
}

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field (default `message`).
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// Splits complete events off the front of `buffer` (pure, so it is unit tested).
pub fn take_events(buffer: &mut String) -> Vec<SseEvent> {
    let mut events = Vec::new();
    loop {
        let normalized_end = buffer.find("\n\n");
        let Some(end) = normalized_end else { break };
        let block: String = buffer.drain(..end + 2).collect();
        let mut event = String::from("message");
        let mut data: Vec<&str> = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = v.trim_start().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v));
            }
        }
        if !data.is_empty() {
            events.push(SseEvent {
                event,
                data: data.join("\n"),
            });
        }
    }
    events
}

/// The transport halves for `().serve((sink, stream))`.
pub type SseTransport = (
    futures::channel::mpsc::Sender<ClientJsonRpcMessage>,
    ReceiverStream<ServerJsonRpcMessage>,
);

/// Opens an SSE MCP connection to `url` (e.g. `http://10.0.0.2:8080/sse`).
pub async fn connect(url: &str, timeout: Duration) -> Result<SseTransport, SseError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| SseError::Open(e.to_string()))?;
    let base = reqwest::Url::parse(url).map_err(|e| SseError::Open(e.to_string()))?;
    let response = http
        .get(base.clone())
        .header("accept", "text/event-stream")
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| SseError::Open(e.to_string()))?;
    let (endpoint_tx, endpoint_rx) = tokio::sync::oneshot::channel::<String>();
    let (incoming_tx, incoming_rx) = tokio::sync::mpsc::channel::<ServerJsonRpcMessage>(64);
    tokio::spawn(async move {
        let mut endpoint_tx = Some(endpoint_tx);
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk).replace('\r', ""));
            for event in take_events(&mut buffer) {
                match event.event.as_str() {
                    "endpoint" => {
                        if let Some(tx) = endpoint_tx.take() {
                            let _ = tx.send(event.data);
                        }
                    }
                    "message" => match serde_json::from_str::<ServerJsonRpcMessage>(&event.data) {
                        Ok(message) => {
                            if incoming_tx.send(message).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "unparsable SSE message"),
                    },
                    _ => {}
                }
            }
        }
    });
    let endpoint = tokio::time::timeout(timeout, endpoint_rx)
        .await
        .map_err(|_| SseError::NoEndpoint)?
        .map_err(|_| SseError::NoEndpoint)?;
    let post_url = base
        .join(&endpoint)
        .map_err(|_| SseError::BadEndpoint(endpoint.clone()))?;
    let (outgoing_tx, mut outgoing_rx) =
        futures::channel::mpsc::channel::<ClientJsonRpcMessage>(64);
    tokio::spawn(async move {
        while let Some(message) = outgoing_rx.next().await {
            let sent = http
                .post(post_url.clone())
                .json(&message)
                .send()
                .await
                .and_then(|r| r.error_for_status());
            if let Err(e) = sent {
                tracing::debug!(error = %e, "SSE message POST failed");
                return;
            }
        }
    });
    Ok((outgoing_tx, ReceiverStream::new(incoming_rx)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_partial_ones_kept() {
        let mut buffer = String::from(
            "event: endpoint\ndata: /messages/?session_id=abc\n\n: comment\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\nevent: mess",
        );
        let events = take_events(&mut buffer);
        assert_eq!(
            events,
            [
                SseEvent {
                    event: "endpoint".into(),
                    data: "/messages/?session_id=abc".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "{\"a\":\n1}".into()
                },
            ]
        );
        assert_eq!(buffer, "event: mess");
    }
}
