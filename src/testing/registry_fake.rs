//! A stand-in container registry (axum) that speaks the part of the OCI distribution API the
//! image check uses: `GET /v2/`, manifest `HEAD`/`GET` for a configured set of
//! `repository:tag -> digest`, the anonymous bearer-token flow behind a switch, and switches
//! to answer 500, 429, hang, refuse `HEAD` or refuse anonymous tokens. There is no registry on
//! the test machines; this is what the client and the template reconciler are tested against.
//!
//! Test support only, behind the `testing` feature (decision 0020).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio::sync::{oneshot, watch};

use crate::image_check::ImageCheckConfig;

/// How the registry answers manifest and `/v2/` requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistryMode {
    /// As a registry does.
    #[default]
    Normal,
    /// 500 with an error document.
    ServerError,
    /// 429 with `Retry-After`.
    RateLimited,
    /// Never answers (until the registry is dropped).
    Hang,
}

#[derive(Debug, Default)]
struct Registry {
    /// repository -> tag -> digest.
    images: BTreeMap<String, BTreeMap<String, String>>,
    mode: RegistryMode,
    require_token: bool,
    deny_anonymous: bool,
    refuse_head: bool,
    issued: BTreeSet<String>,
    manifest_requests: u32,
    token_requests: u32,
    last_accept: Option<String>,
    last_scope: Option<String>,
}

/// The registry's contents and switches; cheap to clone, shared with the running server.
#[derive(Debug, Clone, Default)]
pub struct RegistryControls {
    state: Arc<Mutex<Registry>>,
}

impl RegistryControls {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Serves `repository:tag` with manifest digest `digest`.
    pub fn add_image(&self, repository: &str, tag: &str, digest: &str) {
        self.lock()
            .images
            .entry(repository.to_string())
            .or_default()
            .insert(tag.to_string(), digest.to_string());
    }

    /// Stops serving `repository:tag`.
    pub fn remove_image(&self, repository: &str, tag: &str) {
        if let Some(tags) = self.lock().images.get_mut(repository) {
            tags.remove(tag);
        }
    }

    /// Sets how the registry answers.
    pub fn set_mode(&self, mode: RegistryMode) {
        self.lock().mode = mode;
    }

    /// Asks for a bearer token (a `WWW-Authenticate` challenge naming `/token`) before answering.
    pub fn require_token(&self, on: bool) {
        self.lock().require_token = on;
    }

    /// Issues anonymous tokens but keeps answering 401 with them, as for a private image.
    pub fn deny_anonymous(&self, on: bool) {
        self.lock().deny_anonymous = on;
    }

    /// Answers 405 to manifest `HEAD`, as a few registries do; `GET` still works.
    pub fn refuse_head(&self, on: bool) {
        self.lock().refuse_head = on;
    }

    /// Manifest requests received (HEAD and GET).
    pub fn manifest_requests(&self) -> u32 {
        self.lock().manifest_requests
    }

    /// Token requests received.
    pub fn token_requests(&self) -> u32 {
        self.lock().token_requests
    }

    /// The `Accept` header of the last manifest request.
    pub fn last_accept(&self) -> Option<String> {
        self.lock().last_accept.clone()
    }

    /// The `scope` of the last token request.
    pub fn last_scope(&self) -> Option<String> {
        self.lock().last_scope.clone()
    }
}

#[derive(Clone)]
struct AppState {
    controls: RegistryControls,
    realm: String,
    stopped: watch::Receiver<bool>,
}

/// The stand-in registry on a loopback port; stops when dropped. Derefs to its controls.
pub struct FakeRegistry {
    addr: SocketAddr,
    controls: RegistryControls,
    shutdown: Option<oneshot::Sender<()>>,
    release: watch::Sender<bool>,
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        let _ = self.release.send(true);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

impl std::ops::Deref for FakeRegistry {
    type Target = RegistryControls;

    fn deref(&self) -> &RegistryControls {
        &self.controls
    }
}

impl FakeRegistry {
    /// An empty registry on 127.0.0.1.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let controls = RegistryControls::default();
        let (release, stopped) = watch::channel(false);
        let app = router(AppState {
            controls: controls.clone(),
            realm: format!("http://{addr}/token"),
            stopped,
        });
        let (shutdown, stop) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            controls,
            shutdown: Some(shutdown),
            release,
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The registry host as written in image references, `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// An image reference in this registry: `127.0.0.1:PORT/<repository>:<tag>`.
    pub fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host())
    }

    /// Client settings that send references to `registry` (e.g. `registry.test` or
    /// [`FakeRegistry::host`]) here over plain HTTP.
    pub fn check_config(&self, registry: &str) -> ImageCheckConfig {
        ImageCheckConfig::default().with_registry_url(registry, &self.url())
    }

    /// The controls, to keep after the registry is dropped.
    pub fn controls(&self) -> RegistryControls {
        self.controls.clone()
    }
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v2/", get(base))
        .route("/v2/{*path}", get(manifest))
        .route("/token", get(token))
        .with_state(state)
}

fn error_document(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
    (status, axum::Json(body)).into_response()
}

/// What the mode and the token switches say before any content is looked at, if anything.
async fn gate(state: &AppState, headers: &HeaderMap, scope: &str) -> Option<Response> {
    let (mode, require_token, deny_anonymous, authorised) = {
        let registry = state.controls.lock();
        let authorised = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| registry.issued.contains(token));
        (
            registry.mode,
            registry.require_token,
            registry.deny_anonymous,
            authorised,
        )
    };
    match mode {
        RegistryMode::Normal => {}
        RegistryMode::ServerError => {
            return Some(error_document(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UNKNOWN",
                "storage backend unavailable",
            ));
        }
        RegistryMode::RateLimited => {
            let mut response = error_document(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                "rate limit exceeded",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            return Some(response);
        }
        RegistryMode::Hang => {
            let mut stopped = state.stopped.clone();
            let _ = stopped.wait_for(|released| *released).await;
            return Some(StatusCode::SERVICE_UNAVAILABLE.into_response());
        }
    }
    if require_token && (!authorised || deny_anonymous) {
        let challenge = format!(
            r#"Bearer realm="{}",service="fake-registry",scope="{scope}""#,
            state.realm
        );
        let mut response = error_document(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        if let Ok(value) = header::HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        return Some(response);
    }
    None
}

async fn base(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refusal) = gate(&state, &headers, "registry:catalog:*").await {
        return refusal;
    }
    axum::Json(json!({})).into_response()
}

async fn manifest(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Response {
    let Some((repository, reference)) = path.rsplit_once("/manifests/") else {
        return error_document(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
    };
    {
        let mut registry = state.controls.lock();
        registry.manifest_requests += 1;
        registry.last_accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
    }
    let scope = format!("repository:{repository}:pull");
    if let Some(refusal) = gate(&state, &headers, &scope).await {
        return refusal;
    }
    let (refuse_head, found) = {
        let registry = state.controls.lock();
        let found = registry.images.get(repository).map(|tags| {
            if reference.contains(':') {
                tags.values().find(|d| *d == reference).cloned()
            } else {
                tags.get(reference).cloned()
            }
        });
        (registry.refuse_head, found)
    };
    if refuse_head && method == Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let digest = match found {
        None => {
            return error_document(
                StatusCode::NOT_FOUND,
                "NAME_UNKNOWN",
                "repository name not known to registry",
            );
        }
        Some(None) => {
            return error_document(
                StatusCode::NOT_FOUND,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            );
        }
        Some(Some(digest)) => digest,
    };
    let body = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [],
    })
    .to_string();
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
    );
    if let Ok(value) = header::HeaderValue::from_str(&digest) {
        headers.insert("docker-content-digest", value);
    }
    response
}

async fn token(
    State(state): State<AppState>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Response {
    let mut registry = state.controls.lock();
    registry.token_requests += 1;
    registry.last_scope = query.get("scope").cloned();
    if registry.mode == RegistryMode::ServerError {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let token = format!("anonymous-{}", registry.token_requests);
    registry.issued.insert(token.clone());
    axum::Json(json!({"token": token, "expires_in": 300})).into_response()
}
