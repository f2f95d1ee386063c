//! The HTTP layer: routes, bearer authentication, body limits and JSON error bodies.

use crate::agent::{Agent, AgentError};
use crate::api::{EnrollRequest, PutOutcome};
use crate::api::{ErrorBody, LogsResponse, PullAccepted, PullRequest, ServerList, ServerSpec};
use crate::metrics;
use crate::secret;
use crate::validation;
use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;
use tower::ServiceExt;

/// Largest accepted API request body (a spec with many env vars fits easily).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Largest `tail` for logs.
pub const MAX_LOG_TAIL: usize = 10_000;

/// An error answer: status plus a JSON [`ErrorBody`].
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_string(),
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<AgentError> for ApiError {
    fn from(e: AgentError) -> Self {
        let message = e.to_string();
        match e {
            AgentError::Invalid(validation::ValidationError::InvalidName(_)) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_name", message)
            }
            AgentError::Invalid(validation::ValidationError::InvalidSpec(_)) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_spec", message)
            }
            AgentError::Unauthorized => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
            }
            AgentError::TooManyAttempts => {
                Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
            }
            AgentError::AlreadyEnrolled => {
                Self::new(StatusCode::CONFLICT, "already_enrolled", message)
            }
            AgentError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            AgentError::Store(_) => {
                tracing::error!(error = %message, "state store failure");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "store", message)
            }
            AgentError::Runtime(_) => Self::new(StatusCode::BAD_GATEWAY, "runtime", message),
        }
    }
}

/// `Json` whose rejections are JSON error bodies: 400 for malformed or mistyped JSON, 413 for an
/// oversized body, 415 for a missing content type.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = rejection.status();
                let (status, code) = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => (status, "too_large"),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "unsupported_media_type"),
                    _ => (StatusCode::BAD_REQUEST, "malformed_json"),
                };
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

async fn require_credential(
    State(agent): State<Arc<Agent>>,
    request: Request,
    next: Next,
) -> Response {
    match bearer(request.headers()) {
        Some(token) if agent.authorize(token) => next.run(request).await,
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer credential is required",
        )
        .into_response(),
    }
}

/// Builds the agent's router.
pub fn router(agent: Arc<Agent>) -> Router {
    let authenticated = Router::new()
        .route("/v1/servers", get(list_servers))
        .route(
            "/v1/servers/{name}",
            get(get_server).put(put_server).delete(delete_server),
        )
        .route("/v1/servers/{name}/logs", get(server_logs))
        .route("/v1/images/pull", post(pull_image))
        .route("/v1/info", get(info))
        .route("/metrics", get(metrics_route))
        .route_layer(middleware::from_fn_with_state(
            agent.clone(),
            require_credential,
        ));
    Router::new()
        .route(crate::api::HEALTHZ_PATH, get(healthz))
        .route(crate::api::READYZ_PATH, get(readyz))
        .route("/v1/enroll", post(enroll))
        .route("/servers/{name}/mcp", any(mcp_endpoint))
        .merge(authenticated)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(agent)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the container engine answers (unlike DTMA's constant OK).
async fn readyz(State(agent): State<Arc<Agent>>) -> Result<&'static str, ApiError> {
    match agent.runtime().list_managed().await {
        Ok(_) => Ok("ok"),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "runtime_unavailable",
            "the container engine does not answer",
        )),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

async fn enroll(
    State(agent): State<Arc<Agent>>,
    ApiJson(request): ApiJson<EnrollRequest>,
) -> Result<Response, ApiError> {
    Ok(Json(agent.enroll(request).await?).into_response())
}

async fn list_servers(State(agent): State<Arc<Agent>>) -> Json<ServerList> {
    Json(ServerList {
        servers: agent.list_servers().await,
    })
}

async fn get_server(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(agent.get_server(&name).await?).into_response())
}

async fn put_server(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    ApiJson(spec): ApiJson<ServerSpec>,
) -> Result<Response, ApiError> {
    let response = agent.put_server(&name, spec).await?;
    let status = match response.outcome {
        PutOutcome::Created => StatusCode::CREATED,
        PutOutcome::Replaced | PutOutcome::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(response)).into_response())
}

async fn delete_server(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    agent.delete_server(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct LogsQuery {
    tail: Option<String>,
}

async fn server_logs(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<LogsResponse>, ApiError> {
    let tail = match query.tail {
        None => 100,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_tail",
                    "tail must be a number",
                )
            })?
            .min(MAX_LOG_TAIL),
    };
    Ok(Json(LogsResponse {
        lines: agent.logs(&name, tail).await?,
    }))
}

async fn pull_image(
    State(agent): State<Arc<Agent>>,
    ApiJson(request): ApiJson<PullRequest>,
) -> Result<Response, ApiError> {
    validation::validate_image(&request.image).map_err(AgentError::from)?;
    let runtime = agent.runtime().clone();
    let image = request.image.clone();
    tokio::spawn(async move {
        let result = runtime
            .pull(&image, request.pull_credentials.as_ref(), Box::new(|_| {}))
            .await;
        match result {
            Ok(()) => tracing::info!(%image, "pre-pull done"),
            Err(e) => tracing::warn!(%image, error = %e, "pre-pull failed"),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(PullAccepted {
            image: request.image,
        }),
    )
        .into_response())
}

async fn info(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.info().await).into_response()
}

async fn metrics_route(State(agent): State<Arc<Agent>>) -> Response {
    match metrics::render(&agent).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "metrics", e.to_string())
            .into_response(),
    }
}

async fn mcp_endpoint(
    State(agent): State<Arc<Agent>>,
    Path(name): Path<String>,
    request: Request<Body>,
) -> Result<Response, ApiError> {
    validation::validate_name(&name).map_err(AgentError::from)?;
    // Same answer for an unknown server and a wrong token, so the endpoint does not reveal
    // which servers exist.
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid endpoint token is required",
        )
    };
    let target = agent.endpoint(&name).ok_or_else(unauthorized)?;
    let presented = bearer(request.headers()).ok_or_else(unauthorized)?;
    if !secret::secrets_equal(presented, target.token.expose()) {
        return Err(unauthorized());
    }
    match target.service.clone().oneshot(request).await {
        Ok(response) => Ok(response.map(Body::new)),
        Err(never) => match never {},
    }
}
