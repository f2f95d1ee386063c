//! The one shared context of the controllers: clients, the scheduling ledger, the clock, the
//! event recorder, metrics, settings and the shared caches of the four kinds.

use std::sync::Arc;
use std::time::Duration;

use clock::SharedClock;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use scheduler::ledger::{DEFAULT_ASSUME_TTL, Ledger, SharedLedger};

use super::agent_access::AgentClients;
use crate::agent_client::ClientSettings;
use crate::api::deployment::MCPDeployment;
use crate::api::droplet::Droplet;
use crate::api::pool::DropletPool;
use crate::api::template::MCPTemplate;
use crate::cloud::bootstrap::BootstrapConfig;
use crate::cloud::client::DoClient;
use crate::telemetry::Metrics;

/// Which namespaces the operator manages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WatchScope {
    /// Every namespace (ClusterRole install).
    #[default]
    AllNamespaces,
    /// One namespace (namespaced install); MCPTemplates are cluster-scoped and still read.
    Namespace(String),
}

/// Intervals and thresholds of the controllers, in the clock's time (the simulated world runs
/// them faster). Defaults suit production.
#[derive(Debug, Clone)]
pub struct Timings {
    /// First retry after a failed pass; doubles per consecutive failure.
    pub error_backoff_base: Duration,
    /// Longest wait between retries of a failing object.
    pub error_backoff_max: Duration,
    /// How often a Ready droplet's agent health and metrics are polled.
    pub heartbeat_interval: Duration,
    /// Missed heartbeats before a droplet is NotReady.
    pub not_ready_after_failures: u32,
    /// How long a droplet may stay NotReady before its deployments move elsewhere.
    pub move_grace: Duration,
    /// How often a Ready deployment's endpoint is checked again with MCP.
    pub reprobe_interval: Duration,
    /// Consecutive failed checks before a deployment is Degraded.
    pub degraded_after_failures: u32,
    /// Consecutive failed checks before its server is restarted.
    pub restart_after_failures: u32,
    /// Consecutive failed checks before it moves to another droplet.
    pub move_after_failures: u32,
    /// Pending demand is batched until it has been quiet this long ...
    pub batch_idle: Duration,
    /// ... or for at most this long.
    pub batch_max: Duration,
    /// How often the orphan sweep runs.
    pub sweep_interval: Duration,
    /// How often an accepted template's image is checked again in its registry.
    pub template_recheck_interval: Duration,
    /// Periodic resync of a converged object.
    pub resync_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            error_backoff_base: Duration::from_millis(500),
            error_backoff_max: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(30),
            not_ready_after_failures: 3,
            move_grace: Duration::from_secs(300),
            reprobe_interval: Duration::from_secs(60),
            degraded_after_failures: 2,
            restart_after_failures: 3,
            move_after_failures: 6,
            batch_idle: Duration::from_secs(1),
            batch_max: Duration::from_secs(10),
            sweep_interval: Duration::from_secs(300),
            template_recheck_interval: Duration::from_secs(3600),
            resync_interval: Duration::from_secs(600),
        }
    }
}

/// Settings of one operator process.
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Tags every droplet this installation creates (the orphan sweep lists by it).
    pub cluster_id: String,
    /// The namespaces managed.
    pub scope: WatchScope,
    /// The operator's own namespace (Lease, DigitalOcean token Secret).
    pub operator_namespace: String,
    /// Regions of the default pool (a namespace without a DropletPool).
    pub default_regions: Vec<String>,
    /// Sizes of the default pool.
    pub default_sizes: Vec<String>,
    /// How cloud-init installs the agent on new droplets.
    pub bootstrap: BootstrapConfig,
    /// Timeouts and retries of agent calls (its clock is the context's).
    pub agent: ClientSettings,
    /// Whether and how templates' images are checked in their registries.
    pub image_check: crate::image_check::ImageCheckSettings,
    /// Intervals and thresholds.
    pub timings: Timings,
    /// The name events are reported under (`mcp-droplet-operator`) and this replica's identity.
    pub reporter_instance: Option<String>,
}

/// The caches of the four kinds, filled by the controllers' watches (read-only here).
#[derive(Clone)]
pub struct Stores {
    /// MCPTemplates.
    pub templates: Store<MCPTemplate>,
    /// DropletPools.
    pub pools: Store<DropletPool>,
    /// Droplets.
    pub droplets: Store<Droplet>,
    /// MCPDeployments.
    pub deployments: Store<MCPDeployment>,
}

/// Notifies the DropletPool controller that demand changed (a deployment fits nowhere).
pub type DemandSignal = tokio::sync::mpsc::UnboundedSender<()>;

/// The shared context handed to every reconcile.
pub struct Context {
    /// Kubernetes client.
    pub client: kube::Client,
    /// DigitalOcean client (the real API, or the simulated one).
    pub cloud: DoClient,
    /// The one clock.
    pub clock: SharedClock,
    /// The one scheduling ledger.
    pub ledger: SharedLedger,
    /// Event recorder (events.k8s.io/v1).
    pub recorder: super::recorder::EventRecorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub config: OperatorConfig,
    /// Caches of the four kinds.
    pub stores: Stores,
    /// Agent clients by droplet.
    pub agents: AgentClients,
    /// Wakes the DropletPool controller when pending demand changes.
    pub demand: DemandSignal,
    /// One lock per DTMA droplet, held while its whole set of servers is reconciled.
    pub dtma_locks: super::deployment::dtma::DropletLocks,
    /// Consecutive failures per controller and object (the error backoff). Kept in the
    /// context, not in statics, so a restarted operator (or another one in the same test
    /// process) starts from none.
    pub failures: super::FailureCounts<(&'static str, String)>,
    /// What the deployment controller remembers between passes.
    pub deployments: super::deployment::remembered::Remembered,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The shortest requeue, in real time. A simulated clock at 30x turned a 0.8 s poll into 27 ms,
/// so deployments waiting on a pull took most of the passes a busy operator could run; on a
/// real clock every interval is longer than this anyway.
pub const MIN_REQUEUE: Duration = Duration::from_millis(100);

impl Context {
    /// A context; the agent settings' clock is replaced by `clock`.
    pub fn new(
        client: kube::Client,
        cloud: DoClient,
        clock: SharedClock,
        metrics: Arc<Metrics>,
        mut config: OperatorConfig,
        stores: Stores,
        demand: DemandSignal,
    ) -> Self {
        config.agent.clock = clock.clone();
        Self {
            recorder: super::recorder::EventRecorder::new(
                client.clone(),
                super::FIELD_MANAGER,
                config.reporter_instance.clone(),
            ),
            client,
            cloud,
            clock,
            ledger: SharedLedger::new(Ledger::new(DEFAULT_ASSUME_TTL)),
            metrics,
            config,
            stores,
            agents: AgentClients::default(),
            demand,
            dtma_locks: Default::default(),
            failures: Default::default(),
            deployments: Default::default(),
        }
    }

    /// Now, on the operator's clock.
    pub fn now(&self) -> jiff::Timestamp {
        self.clock.now()
    }

    /// Requeue after `duration` of the clock's time (kube-runtime's timers are real time, so
    /// the simulated world's speed factor is applied here), and never sooner than
    /// [`MIN_REQUEUE`] of real time.
    pub fn requeue(&self, duration: Duration) -> Action {
        Action::requeue(clock::real_duration(self.clock.as_ref(), duration).max(MIN_REQUEUE))
    }
}
