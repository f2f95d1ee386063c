//! The one place the demo starts the operator: the controllers of `crate::controller`, on the
//! world's clock, against kube-sim and the simulated DigitalOcean.

use crate::sim::World;

/// A running operator; [`RunningOperator::stop`] shuts it down gracefully.
#[derive(Debug)]
pub struct RunningOperator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), String>>,
}

impl RunningOperator {
    /// Asks the controllers to stop and waits for them; the error is the operator's own.
    pub async fn stop(self) -> Result<(), String> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            Err(join) => Err(format!("the operator task failed: {join}")),
        }
    }
}

/// Starts the operator against `world`, or `None` when this build has no controllers yet.
pub fn start(_world: &World) -> Result<Option<RunningOperator>, String> {
    // The controllers framework lands separately; until then the demo runs without them.
    Ok(None)
}
