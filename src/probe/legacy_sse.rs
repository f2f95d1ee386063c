//! The legacy HTTP+SSE client transport (MCP 2024-11-05), which rmcp 3 no longer ships.
//!
//! The client GETs an event stream; the server's first event, `endpoint`, names the URL to POST
//! JSON-RPC messages to; answers come back as `message` events on the stream.

use std::future::Future;

use futures::StreamExt;
use reqwest::Url;
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::BearerToken;
use super::sse_parser::SseParser;

/// Errors of the legacy SSE transport.
#[derive(Debug, thiserror::Error)]
pub enum SseTransportError {
    /// The GET of the event stream failed at the HTTP level.
    #[error("GET of the event stream failed: {0}")]
    Connect(#[source] reqwest::Error),
    /// The event stream answered with something other than 200 and `text/event-stream`.
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
    /// POSTing a message failed at the HTTP level.
    #[error("POST to the message endpoint failed: {0}")]
    Post(#[source] reqwest::Error),
    /// The message endpoint refused a message.
    #[error("the message endpoint answered HTTP {0}")]
    PostStatus(u16),
}

/// The task reading the event stream; aborted when dropped, so an abandoned probe (deadline hit
/// while waiting for the endpoint event) does not leave a stream open.
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
    token: Option<BearerToken>,
    incoming: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: StreamReader,
}

impl LegacySseTransport {
    /// GETs the event stream at `sse_url` and waits for its endpoint event.
    pub async fn connect(
        http: reqwest::Client,
        sse_url: Url,
        token: Option<BearerToken>,
    ) -> Result<Self, SseTransportError> {
        let mut request = http
            .get(sse_url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(token) = &token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(SseTransportError::Connect)?;
        Self::from_response(http, sse_url, response, token).await
    }

    /// Takes over an answered GET of the event stream and waits for its endpoint event.
    pub async fn from_response(
        http: reqwest::Client,
        sse_url: Url,
        response: reqwest::Response,
        token: Option<BearerToken>,
    ) -> Result<Self, SseTransportError> {
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let is_stream = content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        if !response.status().is_success() || !is_stream {
            return Err(SseTransportError::NotAnEventStream {
                status: response.status().as_u16(),
                content_type,
            });
        }
        let (endpoint_tx, endpoint_rx) = oneshot::channel();
        // Small buffer: a probe exchanges a handful of messages.
        let (message_tx, incoming) = mpsc::channel(32);
        let reader = StreamReader(tokio::spawn(read_events(response, endpoint_tx, message_tx)));
        let endpoint = match endpoint_rx.await {
            Ok(Ok(endpoint)) => endpoint,
            Ok(Err(why)) => return Err(SseTransportError::NoEndpoint(why)),
            Err(_) => return Err(SseTransportError::NoEndpoint("stream ended".to_owned())),
        };
        let post_url = sse_url
            .join(endpoint.trim())
            .map_err(|_| SseTransportError::BadEndpoint(endpoint.clone()))?;
        // The bearer token goes with every POST: never to a host the server names.
        if post_url.origin() != sse_url.origin() {
            return Err(SseTransportError::BadEndpoint(endpoint));
        }
        Ok(Self {
            http,
            post_url,
            token,
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
    endpoint_tx: oneshot::Sender<Result<String, String>>,
    message_tx: mpsc::Sender<ServerJsonRpcMessage>,
) {
    let mut endpoint_tx = Some(endpoint_tx);
    let mut parser = SseParser::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else {
            break;
        };
        for event in parser.push(&chunk) {
            if let Some(tx) = endpoint_tx.take() {
                let first = if event.event == "endpoint" {
                    Ok(event.data)
                } else {
                    Err(format!("first event was {:?}", event.event))
                };
                let failed = first.is_err();
                let _ = tx.send(first);
                if failed {
                    return;
                }
                continue;
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
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let mut request = self.http.post(self.post_url.clone()).json(&item);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        async move {
            let response = request.send().await.map_err(SseTransportError::Post)?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseTransportError::PostStatus(response.status().as_u16()))
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
