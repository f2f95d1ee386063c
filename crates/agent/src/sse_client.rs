//! The one client of the legacy HTTP+SSE MCP transport (2024-11-05), which rmcp 3 no longer
//! ships; the agent's bridge and the operator's probe both use it.
//!
//! A GET opens the event stream, whose first event, `endpoint`, names the URL to POST JSON-RPC
//! messages to; answers arrive as `message` events. Events go through the bounded
//! [`SseParser`], and the POST URL must stay on the stream's origin.

use crate::event_stream::{EventTooLarge, SseParser};
use futures::StreamExt;
use http::HeaderValue;
use reqwest::Url;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use std::future::Future;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// Errors of the legacy SSE transport.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    /// The GET of the event stream failed at the HTTP level.
    #[error("GET of the event stream failed: {0}")]
    Connect(#[source] reqwest::Error),
    /// The event stream answered with something other than 2xx and `text/event-stream`.
    #[error("the event stream answered HTTP {status} with content type {content_type:?}")]
    NotAnEventStream {
        /// The status code.
        status: u16,
        /// The content type, if any.
        content_type: Option<String>,
    },
    /// The stream ended, or sent another event, before naming the message endpoint.
    #[error("the event stream did not start with an endpoint event ({0})")]
    NoEndpoint(String),
    /// The endpoint event's data is not a usable URL.
    #[error("the endpoint event names an invalid URL {0:?}")]
    BadEndpoint(String),
    /// The endpoint points to another origin than the event stream: refused, since the bearer
    /// token goes with every POST and the agent must not be steered to host-local addresses.
    #[error("the endpoint {0:?} is not on the event stream's origin")]
    ForeignEndpoint(String),
    /// An event passed the parser's limit.
    #[error(transparent)]
    EventTooLarge(#[from] EventTooLarge),
    /// POSTing a message failed at the HTTP level.
    #[error("POST to the message endpoint failed: {0}")]
    Post(#[source] reqwest::Error),
    /// The message endpoint refused a message.
    #[error("the message endpoint answered HTTP {0}")]
    PostStatus(u16),
}

/// The URL to POST messages to, from the `endpoint` event; refused unless it has the SSE URL's
/// origin.
pub fn endpoint_url(sse_url: &Url, endpoint: &str) -> Result<Url, SseError> {
    let printable = || endpoint.chars().take(200).collect::<String>();
    let url = sse_url
        .join(endpoint.trim())
        .map_err(|_| SseError::BadEndpoint(printable()))?;
    if url.origin() != sse_url.origin() {
        return Err(SseError::ForeignEndpoint(printable()));
    }
    Ok(url)
}

/// The task reading the event stream; aborted when dropped, so an abandoned connection
/// (deadline hit while waiting for the endpoint event) does not leave a stream open.
struct StreamReader(JoinHandle<()>);

impl Drop for StreamReader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An rmcp client transport over the legacy HTTP+SSE protocol.
pub struct LegacySseTransport {
    http: reqwest::Client,
    post_url: Url,
    authorization: Option<HeaderValue>,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: StreamReader,
}

impl std::fmt::Debug for LegacySseTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacySseTransport")
            .field("post_url", &self.post_url.as_str())
            .finish_non_exhaustive()
    }
}

/// An `Authorization: Bearer` value marked sensitive (redacted in Debug output).
pub fn bearer_header(token: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

impl LegacySseTransport {
    /// GETs the event stream at `sse_url` and waits for its endpoint event. `authorization`
    /// goes with the GET and every POST.
    pub async fn connect(
        http: reqwest::Client,
        sse_url: Url,
        authorization: Option<HeaderValue>,
    ) -> Result<Self, SseError> {
        let mut request = http
            .get(sse_url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(value) = &authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value.clone());
        }
        let response = request.send().await.map_err(SseError::Connect)?;
        Self::from_response(http, sse_url, response, authorization).await
    }

    /// Takes over an answered GET of the event stream and waits for its endpoint event.
    pub async fn from_response(
        http: reqwest::Client,
        sse_url: Url,
        response: reqwest::Response,
        authorization: Option<HeaderValue>,
    ) -> Result<Self, SseError> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_stream = content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !response.status().is_success() || !is_stream {
            return Err(SseError::NotAnEventStream {
                status: response.status().as_u16(),
                content_type,
            });
        }
        let (endpoint_tx, endpoint_rx) = oneshot::channel();
        let (message_tx, incoming) = mpsc::channel(64);
        let reader = StreamReader(tokio::spawn(read_events(response, endpoint_tx, message_tx)));
        let endpoint = match endpoint_rx.await {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(SseError::NoEndpoint("stream ended".to_owned())),
        };
        let post_url = endpoint_url(&sse_url, &endpoint)?;
        Ok(Self {
            http,
            post_url,
            authorization,
            incoming,
            reader,
        })
    }

    /// The URL the server told us to POST messages to.
    pub fn post_url(&self) -> &Url {
        &self.post_url
    }
}

async fn read_events(
    response: reqwest::Response,
    endpoint_tx: oneshot::Sender<Result<String, SseError>>,
    message_tx: mpsc::Sender<ServerJsonRpcMessage>,
) {
    let mut endpoint_tx = Some(endpoint_tx);
    let mut parser = SseParser::new();
    let mut body = response.bytes_stream();
    while let Some(Ok(chunk)) = body.next().await {
        let events = match parser.push(&chunk) {
            Ok(events) => events,
            Err(error) => {
                // Ending the task drops the body and closes the connection.
                match endpoint_tx.take() {
                    Some(tx) => {
                        let _ = tx.send(Err(error.into()));
                    }
                    None => tracing::warn!(%error, "dropping the SSE stream"),
                }
                return;
            }
        };
        for event in events {
            if let Some(tx) = endpoint_tx.take() {
                if event.event == "endpoint" {
                    let _ = tx.send(Ok(event.data));
                    continue;
                }
                let _ = tx.send(Err(SseError::NoEndpoint(format!(
                    "first event was {:?}",
                    event.event.chars().take(64).collect::<String>()
                ))));
                return;
            }
            if event.event != "message" {
                continue;
            }
            match serde_json::from_str::<ServerJsonRpcMessage>(&event.data) {
                Ok(message) => {
                    if message_tx.send(message).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "skipping an event that is not a JSON-RPC message");
                }
            }
        }
    }
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = SseError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let mut request = self.http.post(self.post_url.clone()).json(&item);
        if let Some(value) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value.clone());
        }
        async move {
            let response = request.send().await.map_err(SseError::Post)?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError::PostStatus(response.status().as_u16()))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.0.abort();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_stay_on_the_stream_origin() {
        let base = Url::parse("http://172.17.0.2:8080/sse").unwrap();
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

    #[test]
    fn the_bearer_header_is_sensitive() {
        let value = bearer_header("s3cret").unwrap();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("s3cret"));
    }

    /// A server whose stream sends an endless first event: the client refuses it with the
    /// parser's error instead of buffering it.
    #[tokio::test]
    async fn an_endless_event_is_refused_with_a_clear_error() {
        use axum::response::IntoResponse;
        let router = axum::Router::new().route(
            "/sse",
            axum::routing::get(|| async {
                let endless =
                    futures::stream::once(async { Ok::<_, std::io::Error>(b"data: ".to_vec()) })
                        .chain(futures::stream::repeat_with(|| {
                            Ok::<_, std::io::Error>(vec![b'x'; 64 * 1024])
                        }));
                (
                    [("content-type", "text/event-stream")],
                    axum::body::Body::from_stream(endless),
                )
                    .into_response()
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let url = Url::parse(&format!("http://{addr}/sse")).unwrap();
        let outcome = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            LegacySseTransport::connect(reqwest::Client::new(), url, None),
        )
        .await
        .expect("refused well before the deadline");
        match outcome {
            Err(SseError::EventTooLarge(error)) => {
                assert_eq!(error.limit, crate::event_stream::MAX_EVENT_BYTES)
            }
            other => panic!("expected EventTooLarge, got {other:?}"),
        }
    }
}
