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
    /// The endpoint points to another origin than the event stream.
    #[error("endpoint {0:?} is not on the event stream's origin")]
    ForeignEndpoint(String),
    /// An event exceeded [`MAX_EVENT_BYTES`].
    #[error("an event exceeded {MAX_EVENT_BYTES} bytes")]
    EventTooLarge,
}

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `event:` field (default `message`).
    pub event: String,
    /// `data:` lines joined with newlines.
    pub data: String,
}

/// Largest event the client buffers (1 MiB); a stream sending a longer one is dropped, so a
/// container cannot make the agent buffer without bound.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Bytes of the event stream not yet split into events. Decoding happens per complete event,
/// so a UTF-8 character split across network chunks stays intact.
#[derive(Debug, Default)]
pub struct EventBuffer {
    bytes: Vec<u8>,
}

impl EventBuffer {
    /// Appends a chunk and returns the events it completed; an error when the pending event
    /// grows past [`MAX_EVENT_BYTES`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        // `\r` never occurs inside a multi-byte UTF-8 sequence, so dropping it byte-wise is safe.
        self.bytes
            .extend(chunk.iter().copied().filter(|b| *b != b'\r'));
        let mut events = Vec::new();
        while let Some(end) = self.bytes.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.bytes.drain(..end + 2).collect();
            if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                events.push(event);
            }
        }
        if self.bytes.len() > MAX_EVENT_BYTES {
            self.bytes = Vec::new();
            return Err(SseError::EventTooLarge);
        }
        Ok(events)
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut event = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim_start().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (!data.is_empty()).then(|| SseEvent {
        event,
        data: data.join("\n"),
    })
}

/// The URL to POST messages to, from the `endpoint` event; refused unless it has the SSE URL's
/// origin, since the agent runs on the host network and must not be steered by a container to
/// the metadata service or host-local ports.
pub fn endpoint_url(sse_url: &reqwest::Url, endpoint: &str) -> Result<reqwest::Url, SseError> {
    let printable = || endpoint.chars().take(200).collect::<String>();
    let url = sse_url
        .join(endpoint)
        .map_err(|_| SseError::BadEndpoint(printable()))?;
    if url.origin() != sse_url.origin() {
        return Err(SseError::ForeignEndpoint(printable()));
    }
    Ok(url)
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
        let mut buffer = EventBuffer::default();
        while let Some(Ok(chunk)) = body.next().await {
            let events = match buffer.push(&chunk) {
                Ok(events) => events,
                Err(e) => {
                    // Ending the task drops the stream and closes the connection.
                    tracing::warn!(error = %e, "dropping the SSE stream");
                    return;
                }
            };
            for event in events {
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
    let post_url = endpoint_url(&base, &endpoint)?;
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
        let mut buffer = EventBuffer::default();
        let events = buffer
            .push(b"event: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\n: comment\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\nevent: mess")
            .unwrap();
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
        assert_eq!(buffer.bytes, b"event: mess");
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let text = "data: grüße 🌍\n\n".as_bytes();
        let mut buffer = EventBuffer::default();
        // Split inside the two-byte `ü` and again inside the four-byte emoji.
        let ue = text.iter().position(|b| *b == 0xc3).unwrap();
        let globe = text.iter().position(|b| *b == 0xf0).unwrap();
        assert!(buffer.push(&text[..ue + 1]).unwrap().is_empty());
        assert!(buffer.push(&text[ue + 1..globe + 2]).unwrap().is_empty());
        let events = buffer.push(&text[globe + 2..]).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "grüße 🌍");
    }

    #[test]
    fn an_endless_event_drops_the_stream() {
        let mut buffer = EventBuffer::default();
        let chunk = vec![b'x'; 64 * 1024];
        let mut result = Ok(Vec::new());
        for _ in 0..=(MAX_EVENT_BYTES / chunk.len()) {
            result = buffer.push(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(SseError::EventTooLarge)));
        // An event just under the cap still goes through.
        let mut buffer = EventBuffer::default();
        let mut big = b"data: ".to_vec();
        big.extend(vec![b'y'; MAX_EVENT_BYTES - 16]);
        assert!(buffer.push(&big).unwrap().is_empty());
        assert_eq!(buffer.push(b"\n\n").unwrap().len(), 1);
    }

    #[test]
    fn endpoints_must_stay_on_the_stream_origin() {
        let base = reqwest::Url::parse("http://172.17.0.2:8080/sse").unwrap();
        assert_eq!(
            endpoint_url(&base, "/messages/?session_id=abc")
                .unwrap()
                .as_str(),
            "http://172.17.0.2:8080/messages/?session_id=abc"
        );
        assert!(endpoint_url(&base, "http://172.17.0.2:8080/m").is_ok());
        for foreign in [
            "http://169.254.169.254/metadata/v1/",
            "http://127.0.0.1:9443/v1/servers",
            "//169.254.169.254/x",
            "https://172.17.0.2:8080/m",
            "http://172.17.0.2:8081/m",
        ] {
            assert!(
                matches!(
                    endpoint_url(&base, foreign),
                    Err(SseError::ForeignEndpoint(_))
                ),
                "{foreign}"
            );
        }
    }
}
