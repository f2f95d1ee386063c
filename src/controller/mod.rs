//! The controllers: one module per kind, each observe → plan (pure) → apply → report, sharing
//! one [`Context`]. [`start_controllers`] starts all four on one client and clock; `run`,
//! `demo` and the scenario tests call it.

pub mod agent_access;
pub mod context;
pub mod deployment;
pub mod droplet;
pub mod error;
pub mod kstatus;
pub mod pool;
pub mod recorder;
pub mod status_writer;
pub mod template;
pub mod watched;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clock::SharedClock;
use futures::StreamExt;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, Resource};
use tokio_util::sync::CancellationToken;

pub use context::{Context, OperatorConfig, Stores, Timings, WatchScope};
pub use error::Error;
pub use watched::Watched;

use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet;
use crate::api::pool::DropletPool;
use crate::api::template::MCPTemplate;
use crate::cloud::client::DoClient;
use crate::telemetry::{Metrics, Readiness};

/// The one field manager of every write the operator makes (server-side apply).
pub const FIELD_MANAGER: &str = "mcp-droplet-operator";

/// What the controllers are started with.
pub struct OperatorParts {
    /// Kubernetes client.
    pub client: kube::Client,
    /// DigitalOcean client.
    pub cloud: DoClient,
    /// The one clock.
    pub clock: SharedClock,
    /// Metrics (registered with the admin server by the caller).
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub config: OperatorConfig,
}

/// The running controllers.
pub struct RunningControllers {
    /// The shared context (tests read its metrics and ledger).
    pub context: Arc<Context>,
    /// Completes when every controller has stopped after `shutdown` was cancelled.
    pub done: tokio::task::JoinHandle<()>,
}

/// An `Api<K>` over the managed namespaces.
pub fn scoped_api<K>(client: &kube::Client, scope: &WatchScope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        WatchScope::AllNamespaces => Api::all(client.clone()),
        WatchScope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    }
}

/// The watcher configuration every controller uses.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

/// At most this many passes of one controller run at once. kube-runtime's default is no
/// limit: 10,000 objects at start meant 10,000 passes opening connections to the API server at
/// once (connection errors, then backoff, so the last objects were reconciled minutes late).
/// Passes wait mostly on I/O (agents, DigitalOcean), so the bound is generous.
pub const MAX_CONCURRENT_PASSES: u16 = 64;

fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default().concurrency(MAX_CONCURRENT_PASSES)
}

/// Starts the four controllers (and their background tasks); they stop, finishing the passes
/// under way, when `shutdown` is cancelled. `readiness` turns true once every cache is synced.
pub fn start_controllers(
    parts: OperatorParts,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> RunningControllers {
    let OperatorParts {
        client,
        cloud,
        clock,
        metrics,
        config,
    } = parts;
    let templates = Watched::new(Api::<MCPTemplate>::all(client.clone()));
    let pools = Watched::new(scoped_api::<DropletPool>(&client, &config.scope));
    let droplets = Watched::new(scoped_api::<Droplet>(&client, &config.scope));
    let deployments = Watched::new(scoped_api::<MCPDeployment>(&client, &config.scope));
    let stores = Stores {
        templates: templates.store(),
        pools: pools.store(),
        droplets: droplets.store(),
        deployments: deployments.store(),
    };
    let (demand_tx, demand_rx) = tokio::sync::mpsc::unbounded_channel();
    let context = Arc::new(Context::new(
        client, cloud, clock, metrics, config, stores, demand_tx,
    ));
    let ctx = Arc::clone(&context);
    let done = tokio::spawn(async move {
        let ready = {
            let stores = ctx.stores.clone();
            let readiness = readiness.clone();
            let shutdown = shutdown.clone();
            async move {
                let synced = async {
                    let _ = stores.templates.wait_until_ready().await;
                    let _ = stores.pools.wait_until_ready().await;
                    let _ = stores.droplets.wait_until_ready().await;
                    let _ = stores.deployments.wait_until_ready().await;
                };
                tokio::select! {
                    () = synced => readiness.set_ready(true),
                    () = shutdown.cancelled() => {}
                }
            }
        };
        tokio::join!(
            ready,
            template::run(templates, Arc::clone(&ctx), shutdown.clone()),
            pool::run(pools, demand_rx, Arc::clone(&ctx), shutdown.clone()),
            droplet::run(droplets, Arc::clone(&ctx), shutdown.clone()),
            deployment::run(deployments, Arc::clone(&ctx), shutdown.clone()),
            phase_gauges(Arc::clone(&ctx), shutdown.clone()),
        );
    });
    RunningControllers { context, done }
}

/// Keeps the deployments-by-phase and droplets-by-phase gauges current from the caches.
async fn phase_gauges(ctx: Arc<Context>, shutdown: CancellationToken) {
    use crate::telemetry::metrics::PhaseLabels;
    loop {
        let mut deployments: HashMap<String, i64> = HashMap::new();
        for d in ctx.stores.deployments.state() {
            let phase = d
                .status
                .as_ref()
                .map(|s| format!("{:?}", s.phase))
                .unwrap_or_else(|| "Pending".to_string());
            *deployments.entry(phase).or_default() += 1;
        }
        let mut droplets: HashMap<String, i64> = HashMap::new();
        for d in ctx.stores.droplets.state() {
            let phase = d
                .status
                .as_ref()
                .map(|s| format!("{:?}", s.phase))
                .unwrap_or_else(|| "Pending".to_string());
            *droplets.entry(phase).or_default() += 1;
        }
        ctx.metrics.deployments.clear();
        for (phase, n) in deployments {
            ctx.metrics
                .deployments
                .get_or_create(&PhaseLabels { phase })
                .set(n);
        }
        ctx.metrics.droplets.clear();
        for (phase, n) in droplets {
            ctx.metrics
                .droplets
                .get_or_create(&PhaseLabels { phase })
                .set(n);
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Consecutive failures per object, for the error backoff (the operator keeps one, keyed by
/// controller and object, in its [`Context`]).
#[derive(Debug, Default)]
pub struct FailureCounts<K: Eq + Hash> {
    counts: Mutex<HashMap<K, u32>>,
}

impl<K: Eq + Hash + Clone> FailureCounts<K> {
    /// Counts one more failure of `key`; returns the count before it.
    pub fn record(&self, key: &K) -> u32 {
        let Ok(mut counts) = self.counts.lock() else {
            return 0;
        };
        let entry = counts.entry(key.clone()).or_default();
        let before = *entry;
        *entry = entry.saturating_add(1);
        before
    }

    /// The failures of `key` in a row so far.
    pub fn count(&self, key: &K) -> u32 {
        self.counts
            .lock()
            .ok()
            .and_then(|counts| counts.get(key).copied())
            .unwrap_or(0)
    }

    /// Forgets the failures of `key` (after a successful pass).
    pub fn reset(&self, key: &K) {
        if let Ok(mut counts) = self.counts.lock() {
            counts.remove(key);
        }
    }
}

/// The longest one reconcile pass may take, in real time. Every external call has its own,
/// shorter deadline; this bounds a pass that makes many (the next pass resumes where it stopped,
/// because every step is recorded before it is acted on).
pub const PASS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// The object a pass is about: its failure-count key and the reference its events name.
pub struct PassTarget {
    key: String,
    reference: k8s_openapi::api::core::v1::ObjectReference,
}

impl PassTarget {
    /// The target of a pass of `object`.
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Self {
            key: object_key(object),
            reference: object.object_ref(&()),
        }
    }
}

/// Whether the `consecutive`-th failure in a row of one object is announced as a Warning
/// Event: from the second on, then at every power of two (2, 4, 8, ...). A single transient
/// failure stays in the log and the metric; a lasting one shows in `kubectl describe` without
/// an event per retry.
pub fn announces_failure(consecutive: u32) -> bool {
    consecutive >= 2 && consecutive.is_power_of_two()
}

/// Runs one reconcile pass under metrics, tracing and [`PASS_DEADLINE`]: counts it, times it and
/// counts its error by `metric_label()`; a success resets the object's failure count. Failures
/// that last are published as Warning Events with the error's `condition_reason()`
/// ([`announces_failure`]).
pub async fn instrumented<F>(
    controller: &'static str,
    ctx: &Context,
    target: PassTarget,
    pass: F,
) -> Result<Action, Error>
where
    F: Future<Output = Result<Action, Error>>,
{
    let started = Instant::now();
    let result = match tokio::time::timeout(PASS_DEADLINE, pass).await {
        Ok(result) => result,
        Err(_) => Err(Error::PassTimeout(PASS_DEADLINE)),
    };
    ctx.metrics
        .reconciled(controller, started.elapsed().as_secs_f64());
    let PassTarget { key, reference } = target;
    let failures = &ctx.failures;
    let key = (controller, key);
    match &result {
        Ok(_) => failures.reset(&key),
        Err(error) => {
            ctx.metrics
                .reconcile_failed(controller, error.metric_label());
            tracing::warn!(controller, object = %key.1, error = %error, "reconcile failed");
            // error_policy counts this failure after the pass returns.
            let consecutive = failures.count(&key).saturating_add(1);
            if announces_failure(consecutive) {
                let event = recorder::Event {
                    type_: recorder::EventType::Warning,
                    reason: error.condition_reason().to_string(),
                    note: Some(format!(
                        "{consecutive} passes in a row failed; retrying with backoff: {error}"
                    )),
                    action: "Reconcile".to_string(),
                    secondary: None,
                };
                if let Err(e) = ctx.recorder.publish(&event, &reference).await {
                    tracing::debug!(error = %e, "cannot publish the failure event");
                }
            }
        }
    }
    result
}

/// The error policy of every controller: exponential backoff per object, a rate-limit hint
/// wins, permanent errors wait long (a watch on what they wait for wakes them earlier).
pub fn backoff_action(
    ctx: &Context,
    controller: &'static str,
    key: String,
    error: &Error,
) -> Action {
    let count = ctx.failures.record(&(controller, key));
    let timings = &ctx.config.timings;
    ctx.requeue(error::requeue_after(
        error,
        count,
        timings.error_backoff_base,
        timings.error_backoff_max,
    ))
}

/// Drives a controller's output stream to completion, logging what it cannot reconcile.
pub async fn drain<K, S>(controller: &'static str, stream: S)
where
    K: Resource,
    S: futures::Stream<
            Item = Result<
                (kube::runtime::reflector::ObjectRef<K>, Action),
                kube::runtime::controller::Error<Error, watcher::Error>,
            >,
        >,
{
    stream
        .for_each(|result| async move {
            if let Err(error) = result {
                match error {
                    // Already counted and logged by `instrumented`.
                    kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    kube::runtime::controller::Error::QueueError(watch_error) => {
                        // The watch retries with backoff; say why it cannot start, once per try.
                        let text = watch_error.to_string();
                        if text.contains("404") {
                            tracing::warn!(
                                controller,
                                "the CustomResourceDefinitions are not installed: apply crds/ (or install the Helm chart); retrying"
                            );
                        } else if text.contains("403") {
                            tracing::warn!(controller, error = %text, "the operator's RBAC does not allow watching this kind; retrying");
                        } else {
                            tracing::warn!(controller, error = %text, "watch failed; retrying");
                        }
                    }
                    other => tracing::debug!(controller, error = %other, "controller event"),
                }
            }
        })
        .await;
}

/// `namespace/name` of an object (the key of failure counts and the ledger).
pub fn object_key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lasting_failures_are_announced_ever_more_rarely() {
        let announced: Vec<u32> = (1..=40).filter(|n| announces_failure(*n)).collect();
        assert_eq!(announced, vec![2, 4, 8, 16, 32]);
    }

    #[test]
    fn failure_counts_count_until_reset() {
        let counts = FailureCounts::<String>::default();
        let key = "ns/a".to_string();
        assert_eq!(counts.count(&key), 0);
        assert_eq!(counts.record(&key), 0);
        assert_eq!(counts.record(&key), 1);
        assert_eq!(counts.count(&key), 2);
        counts.reset(&key);
        assert_eq!(counts.count(&key), 0);
    }
}
