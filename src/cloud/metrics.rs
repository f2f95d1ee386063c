//! Prometheus metrics of the DigitalOcean client. Labels are bounded (operation and status
//! class); never a droplet id or name.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of a finished request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The client operation, e.g. `create_droplet`.
    pub operation: String,
    /// `2xx`, `4xx`, `5xx` or `transport`.
    pub status: String,
}

/// Labels of a retry.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    /// The client operation.
    pub operation: String,
    /// Why: `rate_limited`, `server` or `transport`.
    pub reason: String,
}

/// The client's metrics; cheap to clone (shared counters).
#[derive(Debug, Clone, Default)]
pub struct CloudMetrics {
    requests: Family<RequestLabels, Counter>,
    retries: Family<RetryLabels, Counter>,
    rate_limit_remaining: Gauge,
}

impl CloudMetrics {
    /// New, unregistered metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the metrics under `registry` (prefix it with e.g. `digitalocean`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "digitalocean_requests",
            "DigitalOcean API requests by operation and status class",
            self.requests.clone(),
        );
        registry.register(
            "digitalocean_retries",
            "DigitalOcean API retries by operation and reason",
            self.retries.clone(),
        );
        registry.register(
            "digitalocean_ratelimit_remaining",
            "The last ratelimit-remaining header DigitalOcean sent",
            self.rate_limit_remaining.clone(),
        );
    }

    /// Counts one finished request; `status` is the HTTP status or `None` for a transport error.
    pub fn record_request(&self, operation: &str, status: Option<u16>) {
        let status = match status {
            Some(code) => format!("{}xx", code / 100),
            None => "transport".to_owned(),
        };
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_owned(),
                status,
            })
            .inc();
    }

    /// Counts one retry.
    pub fn record_retry(&self, operation: &str, reason: &str) {
        self.retries
            .get_or_create(&RetryLabels {
                operation: operation.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Records the last `ratelimit-remaining` value.
    pub fn set_rate_limit_remaining(&self, remaining: u32) {
        self.rate_limit_remaining.set(i64::from(remaining));
    }

    /// Requests counted for `operation` with status class `status` (e.g. `"2xx"`).
    pub fn requests(&self, operation: &str, status: &str) -> u64 {
        self.requests
            .get_or_create(&RequestLabels {
                operation: operation.to_owned(),
                status: status.to_owned(),
            })
            .get()
    }

    /// Retries counted for `operation` and `reason`.
    pub fn retries(&self, operation: &str, reason: &str) -> u64 {
        self.retries
            .get_or_create(&RetryLabels {
                operation: operation.to_owned(),
                reason: reason.to_owned(),
            })
            .get()
    }

    /// The last recorded `ratelimit-remaining`.
    pub fn rate_limit_remaining(&self) -> i64 {
        self.rate_limit_remaining.get()
    }
}
