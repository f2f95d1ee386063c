//! The errors of the DigitalOcean client: one variant per kind of failure the operator reacts to
//! differently. They carry DigitalOcean's `id`, `message` and `request_id`, never the token.

use std::time::Duration;

use crate::cloud::models::ErrorBody;

/// What DigitalOcean said about a failed request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiErrorDetail {
    /// HTTP status code.
    pub status: u16,
    /// DigitalOcean's short code, e.g. `not_found`.
    pub id: String,
    /// DigitalOcean's message.
    pub message: String,
    /// The request id (body or `x-request-id` header).
    pub request_id: Option<String>,
}

impl ApiErrorDetail {
    /// Builds the detail from a status, an optional decoded body and the `x-request-id` header.
    pub fn new(status: u16, body: Option<ErrorBody>, header_request_id: Option<String>) -> Self {
        let body = body.unwrap_or_default();
        Self {
            status,
            id: body.id,
            message: body.message,
            request_id: body.request_id.or(header_request_id),
        }
    }
}

impl std::fmt::Display for ApiErrorDetail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {} {}: {}", self.status, self.id, self.message)?;
        if let Some(request_id) = &self.request_id {
            write!(f, " (request_id {request_id})")?;
        }
        Ok(())
    }
}

/// A failed DigitalOcean call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CloudError {
    /// 404: the resource does not exist (the only error that means "gone").
    #[error("not found: {0}")]
    NotFound(ApiErrorDetail),
    /// 401: the token is missing, wrong or revoked.
    #[error("unauthorized: {0}")]
    Unauthorized(ApiErrorDetail),
    /// 403: the token lacks a scope.
    #[error("forbidden: {0}")]
    Forbidden(ApiErrorDetail),
    /// The call could not be made within its deadline because of the rate limit: a 429 after
    /// the allowed waits, or the client's own pacer refusing a wait that would pass the
    /// deadline. A controller turns it into a requeue after `retry_after`.
    #[error("rate limited, retry after {}s{}", retry_after.as_secs(), detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    RateLimited {
        /// How long until a request can go out.
        retry_after: Duration,
        /// What DigitalOcean said, when the refusal came from a 429 response.
        detail: Option<ApiErrorDetail>,
    },
    /// 422: the request is invalid (unknown size, region or image, droplet limit, capacity).
    #[error("unprocessable: {0}")]
    Unprocessable(ApiErrorDetail),
    /// 5xx after the allowed retries (or at once for a non-replayable create).
    #[error("server error: {0}")]
    Server(ApiErrorDetail),
    /// Any other unexpected status.
    #[error("unexpected response: {0}")]
    UnexpectedStatus(ApiErrorDetail),
    /// Timeout, connection refused or reset, after the allowed retries.
    #[error("transport error on {operation}: {message}")]
    Transport {
        /// The operation that failed.
        operation: &'static str,
        /// What went wrong (never contains the token).
        message: String,
    },
    /// The response body did not have the expected shape.
    #[error("cannot decode the response of {operation}: {message}")]
    Decode {
        /// The operation.
        operation: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The client was configured wrongly (e.g. a base URL that does not parse).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl CloudError {
    /// True for 404 only: the resource is gone. A failed read never means gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound(_))
    }

    /// True when trying again later can help (rate limits, 5xx, transport errors).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::RateLimited { .. } | Self::Server(_) | Self::Transport { .. } => true,
            Self::NotFound(_)
            | Self::Unauthorized(_)
            | Self::Forbidden(_)
            | Self::Unprocessable(_)
            | Self::UnexpectedStatus(_)
            | Self::Decode { .. }
            | Self::Config(_) => false,
        }
    }

    /// A bounded label for metrics and condition reasons.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unprocessable(_) => "unprocessable",
            Self::Server(_) => "server",
            Self::UnexpectedStatus(_) => "unexpected_status",
            Self::Transport { .. } => "transport",
            Self::Decode { .. } => "decode",
            Self::Config(_) => "config",
        }
    }

    /// When a rate-limited call may be tried again (`None` for every other error).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// Maps a non-2xx status and its detail to the error kind; `retry_after` is the wait a 429
    /// asked for (a minute when it said nothing).
    pub fn from_status(detail: ApiErrorDetail, retry_after: Option<Duration>) -> Self {
        match detail.status {
            404 => Self::NotFound(detail),
            401 => Self::Unauthorized(detail),
            403 => Self::Forbidden(detail),
            422 => Self::Unprocessable(detail),
            429 => Self::RateLimited {
                retry_after: retry_after.unwrap_or(Duration::from_secs(60)),
                detail: Some(detail),
            },
            500..=599 => Self::Server(detail),
            _ => Self::UnexpectedStatus(detail),
        }
    }
}
