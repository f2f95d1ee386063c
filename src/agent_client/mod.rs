//! Typed client for `mcp-droplet-agent` API v1: enrolment, certificate pinning, timeouts on
//! every call and retries on transient failures. Every mutating call of the API is idempotent,
//! so every call may be retried. Enrolment keeps its credential in a [`CredentialStore`] before
//! it sends it, so an operator that restarts at any point can still prove it (decision 0308).

pub use crate::retry::RetryPolicy;
use crate::retry::{Jitter, RetryDecision};
use clock::{SharedClock, SystemClock};

use mcp_droplet_agent::api::{
    EnrollRequest, EnrollResponse, ErrorBody, HEALTHZ_PATH, InfoResponse, LogsResponse,
    PullAccepted, PullRequest, PutResponse, ServerList, ServerSpec, ServerStatus,
};
use mcp_droplet_agent::client_tls::{PinMode, PinnedCertVerifier};
use mcp_droplet_agent::secret::{Secret, enrolment_proof};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;

/// Why a [`CredentialStore`] could not load or save (a Kubernetes API error, a disk error).
#[derive(Debug, thiserror::Error)]
#[error("credential store: {0}")]
pub struct CredentialStoreError(pub Box<dyn std::error::Error + Send + Sync>);

/// Durable storage of one droplet's agent credential. The controllers back it with a Secret
/// owned by the Droplet object; it must survive an operator restart.
pub trait CredentialStore: Send + Sync {
    /// The stored credential, if one was saved.
    fn load(&self) -> impl Future<Output = Result<Option<Secret>, CredentialStoreError>> + Send;
    /// Stores `credential` durably; returns only once it would survive a restart.
    fn save(
        &self,
        credential: &Secret,
    ) -> impl Future<Output = Result<(), CredentialStoreError>> + Send;
}

/// Why a call to an agent failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentClientError {
    /// The request did not get an answer (connect, TLS, timeout), after all retries.
    #[error("{op}: no answer from the agent: {message}")]
    Transport {
        /// The call.
        op: &'static str,
        /// The cause (never contains secrets).
        message: String,
        /// Whether a timeout caused it.
        timeout: bool,
    },
    /// The agent answered with an error status.
    #[error("{op}: agent answered {status}: {code}: {message}")]
    Status {
        /// The call.
        op: &'static str,
        /// HTTP status.
        status: u16,
        /// The agent's error code (`not_found`, `invalid_spec`, ...).
        code: String,
        /// The agent's message.
        message: String,
    },
    /// The answer could not be decoded.
    #[error("{op}: cannot decode the agent's answer: {message}")]
    Decode {
        /// The call.
        op: &'static str,
        /// Parser message.
        message: String,
    },
    /// The certificate the agent reported at enrolment is not the one it presented.
    #[error("enrolment: the agent presented certificate {observed} but reported {reported}")]
    FingerprintMismatch {
        /// Seen in the TLS handshake.
        observed: String,
        /// Reported in the enrolment answer.
        reported: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// Why an enrolment failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    /// A call to the agent failed.
    #[error(transparent)]
    Agent(#[from] AgentClientError),
    /// The agent's enrolment token is spent and the credential this operator holds is not the
    /// enrolled one (none was stored before this attempt, or the store was lost): only replacing
    /// the droplet recovers.
    #[error(
        "enrolment: the agent is already enrolled and {}",
        if *.had_stored_credential { "rejects the stored credential" } else { "no credential was stored for it" }
    )]
    AlreadyEnrolled {
        /// Whether the store held a credential before this enrolment attempt.
        had_stored_credential: bool,
    },
    /// The credential could not be loaded or saved.
    #[error(transparent)]
    CredentialStore(#[from] CredentialStoreError),
}

impl AgentClientError {
    /// HTTP status of an error answer, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Transport { timeout: true, .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Status { status: 401, .. } => "unauthorized",
            Self::Status { status: 404, .. } => "not_found",
            Self::Status {
                status: 400..=499, ..
            } => "rejected",
            Self::Status { .. } => "agent_error",
            Self::Decode { .. } => "decode",
            Self::FingerprintMismatch { .. } => "fingerprint_mismatch",
            Self::Build(_) => "build",
        }
    }
}

impl EnrolmentError {
    /// HTTP status of an error answer of the agent, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Agent(e) => e.status(),
            Self::AlreadyEnrolled { .. } | Self::CredentialStore(_) => None,
        }
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Agent(e) => e.metric_label(),
            Self::AlreadyEnrolled { .. } => "already_enrolled",
            Self::CredentialStore(_) => "credential_store",
        }
    }
}

/// Timeouts and retries of a client.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one request (whole exchange).
    pub request_timeout: Duration,
    /// Retries on transient failures (the operator's one retry policy, `crate::retry`).
    pub retry: RetryPolicy,
    /// The clock retries wait on (the simulated world's clock in `sim` and `demo`).
    pub clock: SharedClock,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            retry: agent_retry_policy(),
            clock: std::sync::Arc::new(SystemClock),
        }
    }
}

/// The agent client's retries: 4 attempts, 200 ms doubling up to 3 s, jittered. An agent is one
/// hop away on a private network, so it is retried sooner and for less long than DigitalOcean.
pub fn agent_retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_hinted_attempts: 4,
        base_delay: Duration::from_millis(200),
        max_delay: Duration::from_secs(3),
        jitter: Jitter::Random,
        deadline: None,
    }
}

/// Statuses that say "try again later" rather than "your request is wrong".
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Whether a failed agent call is worth another attempt. Every call of the agent's API is
/// idempotent, so any transient failure may be replayed.
fn classify(error: &AgentClientError) -> RetryDecision {
    match error {
        AgentClientError::Transport { .. } => RetryDecision::Backoff,
        AgentClientError::Status { status, .. } => {
            RetryDecision::transient_if(is_transient_status(*status))
        }
        AgentClientError::Decode { .. }
        | AgentClientError::FingerprintMismatch { .. }
        | AgentClientError::Build(_) => RetryDecision::Stop,
    }
}

/// Logs a retried failure (the error carries no secret: bodies are never echoed).
fn log_retry(error: &AgentClientError, wait: Duration) {
    tracing::debug!(error = %error, wait_ms = wait.as_millis() as u64, "transient agent error; retrying");
}

/// The outcome of an enrolment: what the operator stores for the droplet.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrolment {
    /// Droplet name the agent reported.
    pub droplet_name: String,
    /// Hex SHA-256 of the agent's certificate, to pin from now on.
    pub certificate_sha256: String,
    /// Agent version.
    pub agent_version: String,
}

fn build_http(
    verifier: &std::sync::Arc<PinnedCertVerifier>,
    settings: &ClientSettings,
) -> Result<reqwest::Client, AgentClientError> {
    let tls = verifier
        .client_config()
        .map_err(|e| AgentClientError::Build(e.to_string()))?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.request_timeout)
        .build()
        .map_err(|e| AgentClientError::Build(e.to_string()))
}

/// Enrols with an agent, keeping the credential in `store`.
///
/// The credential is the stored one, or a fresh one saved to `store` *before* it is sent, so a
/// crash at any point leaves the operator holding the credential the agent may have accepted.
/// A first connection (to `/healthz`) records the certificate the agent presents; the
/// enrolment then goes over a connection pinned to that certificate and carries a proof of the
/// single-use token bound to it (never the token itself), so a man in the middle with its own
/// certificate gets nothing it can replay to the real agent. When the token is already spent
/// (409), the credential is proved with an authenticated call: if the agent accepts it, an
/// earlier enrolment (by this call or a previous operator) had succeeded.
pub async fn enroll<S: CredentialStore>(
    base_url: &str,
    enrolment_token: &Secret,
    store: &S,
    settings: ClientSettings,
) -> Result<Enrolment, EnrolmentError> {
    let stored = store.load().await?;
    let had_stored_credential = stored.is_some();
    let credential = match stored {
        Some(credential) => credential,
        None => {
            let fresh = Secret::random();
            store.save(&fresh).await?;
            fresh
        }
    };
    let credential = &credential;
    let base = base_url.trim_end_matches('/').to_string();
    let observed = observe_certificate(&base, &settings).await?;
    let http = build_http(
        &PinnedCertVerifier::new(PinMode::Pinned(observed.clone())),
        &settings,
    )?;
    let body = EnrollRequest {
        enrolment_proof: enrolment_proof(enrolment_token, &observed),
        credential: credential.clone(),
    };
    let url = format!("{base}/v1/enroll");
    // Atomic, not a Cell: the enrolment future must be Send (controllers run it on tokio).
    let attempts = std::sync::atomic::AtomicU32::new(0);
    let sent = settings
        .retry
        .run(
            &settings.clock,
            || {
                attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                send_once::<EnrollResponse, _>(
                    &http,
                    "enroll",
                    Method::POST,
                    &url,
                    None,
                    Some(&body),
                )
            },
            classify,
            log_retry,
        )
        .await;
    let response: EnrollResponse = match sent {
        Ok(r) => r,
        Err(AgentClientError::Status { status: 409, .. }) => {
            // A fresh credential on a first attempt cannot be the enrolled one.
            if !had_stored_credential && attempts.load(std::sync::atomic::Ordering::Relaxed) == 1 {
                return Err(EnrolmentError::AlreadyEnrolled {
                    had_stored_credential,
                });
            }
            // An earlier attempt (ours, or a previous operator's with the stored
            // credential) may have gone through; prove it with the credential.
            let client = AgentClient::new(&base, &observed, credential.clone(), settings.clone())?;
            return match client.info().await {
                Ok(info) => Ok(Enrolment {
                    droplet_name: info.droplet_name,
                    certificate_sha256: observed,
                    agent_version: info.version,
                }),
                Err(AgentClientError::Status { status: 401, .. }) => {
                    Err(EnrolmentError::AlreadyEnrolled {
                        had_stored_credential,
                    })
                }
                Err(e) => Err(e.into()),
            };
        }
        Err(e) => return Err(e.into()),
    };
    if !observed.eq_ignore_ascii_case(&response.certificate_sha256) {
        return Err(AgentClientError::FingerprintMismatch {
            observed,
            reported: response.certificate_sha256,
        }
        .into());
    }
    Ok(Enrolment {
        droplet_name: response.droplet_name,
        certificate_sha256: observed,
        agent_version: response.agent_version,
    })
}

/// Connects to the agent's unauthenticated liveness route, trusting any certificate, and
/// returns the fingerprint of the certificate it presented (retrying transient failures).
async fn observe_certificate(
    base: &str,
    settings: &ClientSettings,
) -> Result<String, AgentClientError> {
    let verifier = PinnedCertVerifier::new(PinMode::TrustOnFirstUse);
    let http = build_http(&verifier, settings)?;
    let url = format!("{base}{HEALTHZ_PATH}");
    settings
        .retry
        .run(
            &settings.clock,
            || send_raw::<()>(&http, "enroll", Method::GET, &url, None, None),
            classify,
            log_retry,
        )
        .await?;
    verifier
        .observed()
        .ok_or_else(|| AgentClientError::Transport {
            op: "enroll",
            message: "the agent presented no certificate".into(),
            timeout: false,
        })
}

async fn send_once<T: DeserializeOwned, B: Serialize>(
    http: &reqwest::Client,
    op: &'static str,
    method: Method,
    url: &str,
    credential: Option<&Secret>,
    body: Option<&B>,
) -> Result<T, AgentClientError> {
    let response = send_raw(http, op, method, url, credential, body).await?;
    let bytes = response.bytes().await.map_err(|e| transport(op, &e))?;
    // 204 answers decode from `null`.
    let bytes = if bytes.is_empty() {
        "null".into()
    } else {
        bytes
    };
    serde_json::from_slice(&bytes).map_err(|e| AgentClientError::Decode {
        op,
        message: e.to_string(),
    })
}

async fn send_raw<B: Serialize>(
    http: &reqwest::Client,
    op: &'static str,
    method: Method,
    url: &str,
    credential: Option<&Secret>,
    body: Option<&B>,
) -> Result<reqwest::Response, AgentClientError> {
    let mut request = http.request(method, url);
    if let Some(credential) = credential {
        request = request.bearer_auth(credential.expose());
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(|e| transport(op, &e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => (body.error, body.message),
        Err(_) => (String::from("unknown"), text.chars().take(200).collect()),
    };
    Err(AgentClientError::Status {
        op,
        status: status.as_u16(),
        code,
        message,
    })
}

fn transport(op: &'static str, e: &reqwest::Error) -> AgentClientError {
    // reqwest's Display includes the URL but never headers, so the credential cannot leak.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    AgentClientError::Transport {
        op,
        message,
        timeout: e.is_timeout(),
    }
}

/// A client for one enrolled agent, pinned to its certificate.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base_url: String,
    fingerprint: String,
    http: reqwest::Client,
    credential: Secret,
    settings: ClientSettings,
}

impl AgentClient {
    /// A client for the agent at `base_url` (`https://ip:port`) with certificate `fingerprint`.
    pub fn new(
        base_url: &str,
        fingerprint: &str,
        credential: Secret,
        settings: ClientSettings,
    ) -> Result<Self, AgentClientError> {
        let verifier = PinnedCertVerifier::new(PinMode::Pinned(fingerprint.to_string()));
        Ok(Self {
            base_url: base_url.trim_end_matches('/').to_string(),
            fingerprint: fingerprint.to_string(),
            http: build_http(&verifier, &settings)?,
            credential,
            settings,
        })
    }

    /// The pinned HTTP client, for MCP clients of the per-server endpoints.
    pub fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// The agent's base URL (`https://ip:port`, no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The pinned fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Full URL of a server's MCP endpoint.
    pub fn mcp_endpoint_url(&self, server: &str) -> String {
        format!("{}/servers/{server}/mcp", self.base_url)
    }

    async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, AgentClientError> {
        let url = format!("{}{path}", self.base_url);
        self.retrying(|| {
            send_once(
                &self.http,
                op,
                method.clone(),
                &url,
                Some(&self.credential),
                body,
            )
        })
        .await
    }

    /// Runs one call under the client's retry policy, on the client's clock.
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, AgentClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AgentClientError>>,
    {
        self.settings
            .retry
            .run(&self.settings.clock, attempt, classify, log_retry)
            .await
    }

    /// `GET /healthz`: liveness (no credential needed).
    pub async fn healthz(&self) -> Result<(), AgentClientError> {
        let url = format!("{}{}", self.base_url, mcp_droplet_agent::api::HEALTHZ_PATH);
        self.retrying(|| async {
            send_raw::<()>(&self.http, "healthz", Method::GET, &url, None, None)
                .await
                .map(|_| ())
        })
        .await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<InfoResponse, AgentClientError> {
        self.call::<_, ()>("info", Method::GET, "/v1/info", None)
            .await
    }

    /// `PUT /v1/servers/{name}`: applies a desired state (idempotent).
    pub async fn put_server(
        &self,
        name: &str,
        spec: &ServerSpec,
    ) -> Result<PutResponse, AgentClientError> {
        self.call(
            "put_server",
            Method::PUT,
            &format!("/v1/servers/{name}"),
            Some(spec),
        )
        .await
    }

    /// `GET /v1/servers/{name}`; `None` when the agent does not know the server.
    pub async fn get_server(&self, name: &str) -> Result<Option<ServerStatus>, AgentClientError> {
        match self
            .call::<ServerStatus, ()>(
                "get_server",
                Method::GET,
                &format!("/v1/servers/{name}"),
                None,
            )
            .await
        {
            Ok(status) => Ok(Some(status)),
            Err(AgentClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/servers`.
    pub async fn list_servers(&self) -> Result<Vec<ServerStatus>, AgentClientError> {
        let list: ServerList = self
            .call::<_, ()>("list_servers", Method::GET, "/v1/servers", None)
            .await?;
        Ok(list.servers)
    }

    /// `DELETE /v1/servers/{name}` (idempotent).
    pub async fn delete_server(&self, name: &str) -> Result<(), AgentClientError> {
        let _: Option<serde_json::Value> = self
            .call::<_, ()>(
                "delete_server",
                Method::DELETE,
                &format!("/v1/servers/{name}"),
                None,
            )
            .await?;
        Ok(())
    }

    /// `GET /v1/servers/{name}/logs?tail=N`.
    pub async fn logs(&self, name: &str, tail: usize) -> Result<Vec<String>, AgentClientError> {
        let logs: LogsResponse = self
            .call::<_, ()>(
                "logs",
                Method::GET,
                &format!("/v1/servers/{name}/logs?tail={tail}"),
                None,
            )
            .await?;
        Ok(logs.lines)
    }

    /// `POST /v1/images/pull`: starts a pre-pull.
    pub async fn pull_image(
        &self,
        request: &PullRequest,
    ) -> Result<PullAccepted, AgentClientError> {
        self.call("pull_image", Method::POST, "/v1/images/pull", Some(request))
            .await
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> Result<String, AgentClientError> {
        let url = format!("{}/metrics", self.base_url);
        self.retrying(|| async {
            let response = send_raw::<()>(
                &self.http,
                "metrics",
                Method::GET,
                &url,
                Some(&self.credential),
                None,
            )
            .await?;
            response.text().await.map_err(|e| transport("metrics", &e))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn status(status: u16) -> AgentClientError {
        AgentClientError::Status {
            op: "test",
            status,
            code: "x".into(),
            message: String::new(),
        }
    }

    fn quick() -> ClientSettings {
        ClientSettings {
            retry: RetryPolicy {
                max_attempts: 3,
                max_hinted_attempts: 3,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
                jitter: Jitter::None,
                deadline: None,
            },
            ..ClientSettings::default()
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        for transient in [429, 502, 503, 504] {
            assert_eq!(
                classify(&status(transient)),
                RetryDecision::Backoff,
                "{transient}"
            );
        }
        for permanent in [400, 401, 404, 409, 500] {
            assert_eq!(
                classify(&status(permanent)),
                RetryDecision::Stop,
                "{permanent}"
            );
        }
        let timeout = AgentClientError::Transport {
            op: "x",
            message: String::new(),
            timeout: true,
        };
        assert_eq!(classify(&timeout), RetryDecision::Backoff);
        assert_eq!(
            classify(&AgentClientError::Build("bad".into())),
            RetryDecision::Stop
        );
    }

    #[test]
    fn the_default_policy_doubles_from_200ms_up_to_3s() {
        let policy = RetryPolicy {
            jitter: Jitter::None,
            ..agent_retry_policy()
        };
        // backon computes in floating point: compare whole milliseconds.
        let millis: Vec<u128> = policy.delays(6).iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [200, 400, 800, 1600, 3000, 3000]);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success_and_permanent_ones_are_not() {
        let settings = quick();
        let calls = AtomicU32::new(0);
        let ok = settings
            .retry
            .run(
                &settings.clock,
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if n < 3 { Err(status(503)) } else { Ok(n) }
                },
                classify,
                log_retry,
            )
            .await;
        assert_eq!(ok.ok(), Some(3));

        let calls = AtomicU32::new(0);
        let refused: Result<(), _> = settings
            .retry
            .run(
                &settings.clock,
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(status(400))
                },
                classify,
                log_retry,
            )
            .await;
        assert_eq!(refused.err().and_then(|e| e.status()), Some(400));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_last_attempt_returns_the_error() {
        let settings = quick();
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = settings
            .retry
            .run(
                &settings.clock,
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(status(502))
                },
                classify,
                log_retry,
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
