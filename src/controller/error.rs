//! The one reconcile error of every controller: what failed, a bounded metric label, a
//! condition reason, and how long to wait before the next attempt.

use std::time::Duration;

use crate::agent_client::{AgentClientError, EnrolmentError};
use crate::cloud::CloudError;
use crate::cloud::droplet_creation::CreationError;

/// Why a reconcile pass failed. Messages name the object or field and never carry a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A DigitalOcean call failed (after the client's own retries).
    #[error("DigitalOcean: {0}")]
    Cloud(#[from] CloudError),
    /// Creating a droplet failed (a DigitalOcean call or the intent record).
    #[error("droplet creation: {0}")]
    Creation(#[from] CreationError),
    /// DigitalOcean or the pacer asks us to wait: requeue after `retry_after`, not sooner.
    #[error("rate limited: retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// A call to a droplet's agent failed.
    #[error("agent: {0}")]
    Agent(#[from] AgentClientError),
    /// A call to a droplet's DTMA failed.
    #[error("DTMA: {0}")]
    Dtma(#[from] crate::dtma::DtmaError),
    /// Enrolling with a droplet's agent failed.
    #[error("enrolment: {0}")]
    Enrolment(#[from] EnrolmentError),
    /// The referenced MCPTemplate does not exist.
    #[error("MCPTemplate {0:?} not found")]
    TemplateMissing(String),
    /// The referenced MCPTemplate is rejected.
    #[error("MCPTemplate {name:?} is rejected: {reason}")]
    TemplateRejected {
        /// The template.
        name: String,
        /// Why (its Ready condition's message).
        reason: String,
    },
    /// A referenced Secret (or a key of it) does not exist.
    #[error("Secret {name:?} (key {key:?}) not found in namespace {namespace:?}")]
    SecretMissing {
        /// Namespace of the Secret.
        namespace: String,
        /// Secret name.
        name: String,
        /// The key that was asked for.
        key: String,
    },
    /// A referenced Droplet or DropletPool does not exist.
    #[error("{kind} {name:?} not found")]
    ReferenceMissing {
        /// `Droplet` or `DropletPool`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// The spec is invalid in a way the schema cannot catch.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The MCP check of an endpoint failed.
    #[error("MCP check failed: {0}")]
    Probe(String),
    /// Nothing can host the deployment and provisioning is off or blocked.
    #[error("unschedulable: {0}")]
    Unschedulable(String),
    /// The scheduler or ledger refused (an internal inconsistency, retried).
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// An object could not be (de)serialised.
    #[error("serialisation: {0}")]
    Serialization(#[from] serde_json::Error),
    /// A finalizer step failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// An object lacks a name, namespace or uid it must have.
    #[error("object without {0}")]
    MissingObjectKey(&'static str),
    /// A reconcile pass ran past its deadline (every pass has one; the next pass resumes).
    #[error("the pass took longer than {}s", .0.as_secs())]
    PassTimeout(Duration),
}

impl Error {
    /// A short, bounded label for metrics (never an object name).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Cloud(e) => e.metric_label(),
            Error::Creation(_) => "droplet_creation",
            Error::RateLimited { .. } => "rate_limited",
            Error::Agent(e) => e.metric_label(),
            Error::Dtma(e) => e.metric_label(),
            Error::Enrolment(e) => e.metric_label(),
            Error::TemplateMissing(_) => "template_missing",
            Error::TemplateRejected { .. } => "template_rejected",
            Error::SecretMissing { .. } => "secret_missing",
            Error::ReferenceMissing { .. } => "reference_missing",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Probe(_) => "probe",
            Error::Unschedulable(_) => "unschedulable",
            Error::Scheduler(_) => "scheduler",
            Error::Serialization(_) => "serialization",
            Error::Finalizer(_) => "finalizer",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::PassTimeout(_) => "pass_timeout",
        }
    }

    /// The CamelCase condition reason this failure is reported with.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            Error::Kube(_) => "KubernetesApiError",
            Error::Cloud(_) | Error::Creation(_) => "DigitalOceanError",
            Error::RateLimited { .. } => "RateLimited",
            Error::Agent(_) | Error::Dtma(_) => "AgentError",
            Error::Enrolment(_) => "EnrolmentFailed",
            Error::TemplateMissing(_) => "TemplateNotFound",
            Error::TemplateRejected { .. } => "TemplateRejected",
            Error::SecretMissing { .. } => "SecretNotFound",
            Error::ReferenceMissing { .. } => "ReferenceNotFound",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Probe(_) => "McpCheckFailed",
            Error::Unschedulable(_) => "Unschedulable",
            Error::Scheduler(_) => "SchedulerError",
            Error::Serialization(_) => "InternalError",
            Error::Finalizer(_) => "FinalizerFailed",
            Error::MissingObjectKey(_) => "InvalidObject",
            Error::PassTimeout(_) => "Timeout",
        }
    }

    /// Whether only a change by a person (a new template, a Secret, a fixed spec) can help:
    /// such errors set `Stalled` rather than retrying fast.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Error::TemplateMissing(_)
                | Error::TemplateRejected { .. }
                | Error::SecretMissing { .. }
                | Error::ReferenceMissing { .. }
                | Error::InvalidSpec(_)
                | Error::MissingObjectKey(_)
        )
    }

    /// A hint of when to try again, when the failure carries one (rate limits).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after } => Some(*retry_after),
            Error::Cloud(e) => e.retry_after(),
            Error::Creation(CreationError::Cloud(e)) => e.retry_after(),
            _ => None,
        }
    }
}

impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(error: kube::runtime::finalizer::Error<Error>) -> Self {
        match error {
            // Unwrap our own errors so their labels and reasons survive the finalizer helper.
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e) => e,
            other => Error::Finalizer(Box::new(other)),
        }
    }
}

/// Backoff of failed passes of one object: doubles from `base` per consecutive failure up to
/// `max`; a rate-limit hint wins when it is longer. Pure, so it is tested with fixed counts.
pub fn requeue_after(
    error: &Error,
    consecutive_failures: u32,
    base: Duration,
    max: Duration,
) -> Duration {
    let exponent = consecutive_failures.min(16);
    let backoff = base.saturating_mul(1u32 << exponent).min(max);
    let backoff = if error.is_permanent() { max } else { backoff };
    match error.retry_after() {
        Some(hint) => hint.max(base),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let e = Error::Probe("x".into());
        let base = Duration::from_millis(500);
        let max = Duration::from_secs(60);
        assert_eq!(requeue_after(&e, 0, base, max), base);
        assert_eq!(requeue_after(&e, 3, base, max), Duration::from_secs(4));
        assert_eq!(requeue_after(&e, 30, base, max), max);
    }

    #[test]
    fn rate_limit_hint_wins() {
        let e = Error::RateLimited {
            retry_after: Duration::from_secs(17),
        };
        assert_eq!(
            requeue_after(&e, 0, Duration::from_millis(500), Duration::from_secs(5)),
            Duration::from_secs(17)
        );
        assert_eq!(e.condition_reason(), "RateLimited");
    }

    #[test]
    fn permanent_errors_wait_long() {
        let e = Error::TemplateMissing("github".into());
        assert!(e.is_permanent());
        assert_eq!(
            requeue_after(&e, 0, Duration::from_millis(500), Duration::from_secs(300)),
            Duration::from_secs(300)
        );
        assert_eq!(e.metric_label(), "template_missing");
    }
}
