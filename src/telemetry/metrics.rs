//! The operator's Prometheus metrics. Every label is bounded (a controller, a phase, a reason, an
//! operation); never an object name or id.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cloud::metrics::CloudMetrics;

/// Labels naming a controller (`mcptemplate`, `dropletpool`, `droplet`, `mcpdeployment`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// The controller.
    pub controller: String,
}

/// Labels of a failed reconcile.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller.
    pub controller: String,
    /// The error's `metric_label()`.
    pub reason: String,
}

/// Labels of an object count by phase.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    /// The phase.
    pub phase: String,
}

/// Labels of time to Ready.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true` when a droplet had to be provisioned for the deployment.
    pub provisioned: String,
}

/// Labels of an agent call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AgentCallLabels {
    /// The call (`put_server`, `get_server`, `healthz`, `metrics`, `enroll`, `probe`, ...).
    pub operation: String,
}

fn seconds_histogram() -> Histogram {
    // 10 ms .. ~330 s.
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

/// All metrics of the operator; cheap to share (`Arc`).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Reconcile passes by controller.
    pub reconciles: Family<ControllerLabels, Counter>,
    /// Failed reconcile passes by controller and reason.
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Reconcile pass duration by controller.
    pub reconcile_duration: Family<ControllerLabels, Histogram, fn() -> Histogram>,
    /// Status writes by controller (a converged object causes none).
    pub status_writes: Family<ControllerLabels, Counter>,
    /// Deployments by phase.
    pub deployments: Family<PhaseLabels, Gauge>,
    /// Droplets by phase.
    pub droplets: Family<PhaseLabels, Gauge>,
    /// Seconds from creation to Ready, by whether a droplet was provisioned.
    pub time_to_ready: Family<ReadyLabels, Histogram, fn() -> Histogram>,
    /// Seconds one scheduling decision took.
    pub scheduling_duration: Histogram,
    /// Agent call latency by operation.
    pub agent_call_duration: Family<AgentCallLabels, Histogram, fn() -> Histogram>,
    /// The DigitalOcean client's metrics (requests, retries, rate-limit remaining).
    pub cloud: CloudMetrics,
    /// 1 while this replica holds the leader lease.
    pub leader: Gauge,
}

impl Metrics {
    /// A registry with every metric registered under the `mcp_operator` prefix (DigitalOcean's
    /// under `mcp_operator_digitalocean`).
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("mcp_operator");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let status_writes = Family::<ControllerLabels, Counter>::default();
        let deployments = Family::<PhaseLabels, Gauge>::default();
        let droplets = Family::<PhaseLabels, Gauge>::default();
        let time_to_ready =
            Family::<ReadyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let scheduling_duration = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        let agent_call_duration =
            Family::<AgentCallLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                seconds_histogram,
            );
        let cloud = CloudMetrics::new();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconcile passes by controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconcile passes by controller and reason",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes by controller",
            reconcile_duration.clone(),
        );
        registry.register(
            "status_writes",
            "Status writes by controller (a converged object causes none)",
            status_writes.clone(),
        );
        registry.register(
            "deployments",
            "MCPDeployments by phase",
            deployments.clone(),
        );
        registry.register("droplets", "Droplets by phase", droplets.clone());
        registry.register(
            "deployment_time_to_ready_seconds",
            "Seconds from an MCPDeployment's creation to Ready, by whether a droplet was provisioned for it",
            time_to_ready.clone(),
        );
        registry.register(
            "scheduling_duration_seconds",
            "Seconds one scheduling decision took (ledger included)",
            scheduling_duration.clone(),
        );
        registry.register(
            "agent_call_duration_seconds",
            "Latency of calls to droplet agents by operation",
            agent_call_duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease",
            leader.clone(),
        );
        cloud.register(&mut registry);
        Arc::new(Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            status_writes,
            deployments,
            droplets,
            time_to_ready,
            scheduling_duration,
            agent_call_duration,
            cloud,
            leader,
        })
    }

    /// The text exposition format (OpenMetrics).
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Counts one pass of `controller` taking `seconds`.
    pub fn reconciled(&self, controller: &str, seconds: f64) {
        let labels = ControllerLabels {
            controller: controller.to_string(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Counts a failed pass of `controller` for `reason` (an error's `metric_label()`).
    pub fn reconcile_failed(&self, controller: &str, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels {
                controller: controller.to_string(),
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts a status write of `controller`.
    pub fn status_written(&self, controller: &str) {
        self.status_writes
            .get_or_create(&ControllerLabels {
                controller: controller.to_string(),
            })
            .inc();
    }

    /// Records an agent call of `operation` taking `seconds`.
    pub fn agent_call(&self, operation: &str, seconds: f64) {
        self.agent_call_duration
            .get_or_create(&AgentCallLabels {
                operation: operation.to_string(),
            })
            .observe(seconds);
    }

    /// Status writes counted so far for `controller` (tests assert a converged object is not
    /// rewritten).
    pub fn status_write_count(&self, controller: &str) -> u64 {
        self.status_writes
            .get_or_create(&ControllerLabels {
                controller: controller.to_string(),
            })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.reconciled("droplet", 0.2);
        metrics.reconcile_failed("droplet", "rate_limited");
        metrics.status_written("droplet");
        let text = metrics.encode().expect("encodes");
        assert!(text.contains("mcp_operator_reconcile_errors_total{controller=\"droplet\",reason=\"rate_limited\"} 1"), "{text}");
        assert!(
            text.contains("mcp_operator_digitalocean_ratelimit_remaining"),
            "{text}"
        );
        assert_eq!(metrics.status_write_count("droplet"), 1);
    }
}
