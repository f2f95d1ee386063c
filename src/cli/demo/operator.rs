//! The one place the demo starts the operator: the four controllers of [`crate::controller`],
//! in-process, on the world's clock, against kube-sim and the simulated DigitalOcean, exactly
//! as `run --cloud simulated` and the scenario tests wire them.

use tokio_util::sync::CancellationToken;

use crate::controller::{OperatorParts, RunningControllers, start_controllers};
use crate::sim::World;
use crate::sim::operator::{quick_timings, simulated_operator_config, world_cloud_client};
use crate::telemetry::{Metrics, Readiness};

/// The cluster id the demo's operator tags its droplets with.
const CLUSTER_ID: &str = "demo";

/// A running operator; [`RunningOperator::stop`] shuts it down gracefully.
pub struct RunningOperator {
    controllers: RunningControllers,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for RunningOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningOperator").finish_non_exhaustive()
    }
}

impl RunningOperator {
    /// Asks the controllers to stop, lets the passes under way finish, and waits for them.
    pub async fn stop(self) -> Result<(), String> {
        self.shutdown.cancel();
        self.controllers
            .done
            .await
            .map_err(|join| format!("the operator task failed: {join}"))
    }
}

/// Starts the operator against `world` (which must have kube-sim and the simulated cloud).
pub fn start(world: &World) -> Result<RunningOperator, String> {
    let client = world.kube_client().map_err(|e| e.to_string())?;
    let metrics = Metrics::new();
    let cloud = world_cloud_client(world, &metrics)
        .ok_or_else(|| "the world has no simulated cloud".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut config = simulated_operator_config(CLUSTER_ID);
    // The same rules with the short waits of the scenario tests (still in the clock's time).
    config.timings = quick_timings();
    let shutdown = CancellationToken::new();
    let controllers = start_controllers(
        OperatorParts {
            client,
            cloud,
            clock: world.clock().clone(),
            metrics,
            config,
        },
        Readiness::default(),
        shutdown.clone(),
    );
    Ok(RunningOperator {
        controllers,
        shutdown,
    })
}
