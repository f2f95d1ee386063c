//! The operator against a whole simulated world, for scenario tests: kube-sim with the CRDs,
//! the simulated DigitalOcean with real agents, and the four controllers in-process, on one
//! scaled clock. `wait_for` awaits a condition on an object (no sleeps as synchronisation).

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clock::{ScaledClock, SharedClock};
use kube::{Api, Resource};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::controller::{
    Context, OperatorConfig, OperatorParts, RunningControllers, start_controllers,
};
use crate::sim::digitalocean::SimDoConfig;
use crate::sim::operator::{quick_timings, simulated_operator_config, world_cloud_client};
use crate::sim::{CloudSettings, KubeSimSettings, World, WorldConfig};
use crate::telemetry::{Metrics, Readiness};

/// How to start a [`OperatorHarness`].
pub struct HarnessOptions {
    /// Simulated seconds per real second.
    pub speed: f64,
    /// The simulated DigitalOcean (boot times, faults); its clock is replaced by the world's.
    pub digitalocean: SimDoConfig,
    /// Change the operator's settings before it starts (timings, default pool, ...).
    pub configure: Box<dyn FnOnce(&mut OperatorConfig) + Send>,
    /// Start the controllers (false: only the world; start them later with `start_operator`).
    pub start_operator: bool,
}

impl Default for HarnessOptions {
    /// Speed 30, boots of 20–40 simulated seconds, no faults, quick timings.
    fn default() -> Self {
        let mut digitalocean = SimDoConfig::default();
        digitalocean.boot_delay.min = Duration::from_secs(20);
        digitalocean.boot_delay.max = Duration::from_secs(40);
        Self {
            speed: 30.0,
            digitalocean,
            configure: Box::new(|_| {}),
            start_operator: true,
        }
    }
}

/// Why the harness failed to start or a wait timed out.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The world did not start.
    #[error("world: {0}")]
    World(#[from] crate::sim::WorldError),
    /// The DigitalOcean client could not be built.
    #[error("cloud client: {0}")]
    Cloud(#[from] crate::cloud::CloudError),
    /// A wait ran out; the message shows the object's last state.
    #[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The object's last state (status as JSON) or the last error.
        last: String,
    },
}

/// A running simulated world with the operator.
pub struct OperatorHarness {
    /// The world (kube-sim, simulated DigitalOcean, agents).
    pub world: World,
    /// A Kubernetes client of kube-sim.
    pub client: kube::Client,
    /// The clock of the world and the operator.
    pub clock: SharedClock,
    operator: Option<(RunningControllers, CancellationToken)>,
    config: Option<OperatorConfig>,
    data_dir: PathBuf,
}

impl OperatorHarness {
    /// Starts the world and, unless told otherwise, the operator.
    pub async fn start(options: HarnessOptions) -> Result<Self, HarnessError> {
        let clock: SharedClock = Arc::new(ScaledClock::new(options.speed));
        let data_dir = std::env::temp_dir().join(format!("mcp-harness-{}", uuid::Uuid::new_v4()));
        let world = World::start(WorldConfig {
            clock: clock.clone(),
            kube: Some(KubeSimSettings::default()),
            cloud: Some(CloudSettings {
                listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                token: SecretString::from("dop_v1_harness"),
                digitalocean: options.digitalocean,
                agent_data_dir: data_dir.clone(),
            }),
        })
        .await?;
        let client = world.kube_client()?;
        let mut config = simulated_operator_config("harness");
        config.timings = quick_timings();
        (options.configure)(&mut config);
        let mut harness = Self {
            world,
            client,
            clock,
            operator: None,
            config: Some(config),
            data_dir,
        };
        if options.start_operator {
            harness.start_operator()?;
        }
        Ok(harness)
    }

    /// Starts the controllers (again, after `stop_operator`), with fresh in-memory state: what
    /// survives is only what is in kube-sim and the simulated cloud, as after a process restart.
    pub fn start_operator(&mut self) -> Result<Arc<Context>, HarnessError> {
        self.stop_operator_now();
        let metrics = Metrics::new();
        let cloud =
            world_cloud_client(&self.world, &metrics).ok_or_else(|| HarnessError::Timeout {
                what: "a simulated cloud".into(),
                waited: Duration::ZERO,
                last: "the world has no cloud".into(),
            })??;
        let config = self
            .config
            .clone()
            .unwrap_or_else(|| simulated_operator_config("harness"));
        let shutdown = CancellationToken::new();
        let running = start_controllers(
            OperatorParts {
                client: self.client.clone(),
                cloud,
                clock: self.clock.clone(),
                metrics,
                config,
            },
            Readiness::default(),
            shutdown.clone(),
        );
        let context = Arc::clone(&running.context);
        self.operator = Some((running, shutdown));
        Ok(context)
    }

    /// The running operator's context (metrics, ledger).
    pub fn context(&self) -> Option<&Arc<Context>> {
        self.operator.as_ref().map(|(running, _)| &running.context)
    }

    /// Stops the controllers gracefully and waits until they have.
    pub async fn stop_operator(&mut self) {
        if let Some((running, shutdown)) = self.operator.take() {
            shutdown.cancel();
            let _ = running.done.await;
        }
    }

    /// Aborts the controllers at once (as a killed process would stop: no pass finishes).
    pub fn stop_operator_now(&mut self) {
        if let Some((running, shutdown)) = self.operator.take() {
            shutdown.cancel();
            running.done.abort();
        }
    }

    /// Waits until the object `name` in `api` satisfies `done`, polling every 50 ms of real
    /// time, at most `timeout` of real time.
    pub async fn wait_for<K>(
        &self,
        api: &Api<K>,
        name: &str,
        timeout: Duration,
        done: impl Fn(&K) -> bool,
    ) -> Result<K, HarnessError>
    where
        K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
        K::DynamicType: Default,
    {
        wait_for(api, name, timeout, done).await
    }

    /// Stops everything and removes the agents' data.
    pub async fn shutdown(mut self) {
        self.stop_operator().await;
        self.world.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Waits until the object `name` in `api` satisfies `done` (see [`OperatorHarness::wait_for`]).
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    done: impl Fn(&K) -> bool,
) -> Result<K, HarnessError>
where
    K: Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
    K::DynamicType: Default,
{
    let started = std::time::Instant::now();
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(object)) => {
                if done(&object) {
                    return Ok(object);
                }
                serde_json::to_string(&object).unwrap_or_default()
            }
            Ok(None) => "not found".to_string(),
            Err(error) => error.to_string(),
        };
        if started.elapsed() > timeout {
            return Err(HarnessError::Timeout {
                what: format!("{} {name}", K::kind(&Default::default())),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
