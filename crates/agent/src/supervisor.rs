//! One supervisor task per desired server: converges the container to the spec (adopting an
//! existing one by label), keeps the MCP bridge connected, and records the observed status.

use crate::api::{Phase, PullProgress, ServerSpec};
use crate::bridge::{self, UpstreamClient, UpstreamSlot};
use crate::runtime::{ContainerInfo, ContainerRuntime, RuntimeError};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Observed state of one server, written by its supervisor and read by the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Phase.
    pub phase: Phase,
    /// Why it failed or what it waits for.
    pub reason: Option<String>,
    /// Pull progress while pulling.
    pub pull_progress: Option<PullProgress>,
    /// Current container.
    pub container_id: Option<String>,
    /// Engine restarts of the current container.
    pub engine_restarts: u32,
    /// Containers the supervisor had to replace because they vanished.
    pub replacements: u32,
}

impl Default for Observed {
    fn default() -> Self {
        Self {
            phase: Phase::Pending,
            reason: None,
            pull_progress: None,
            container_id: None,
            engine_restarts: 0,
            replacements: 0,
        }
    }
}

/// Shared handle on a server's observed state.
pub type ObservedCell = Arc<Mutex<Observed>>;

/// Timing of the supervisor loop.
#[derive(Debug, Clone, Copy)]
pub struct SupervisorTiming {
    /// How often a running container is inspected.
    pub poll: Duration,
    /// Wait before retrying after a failure.
    pub retry: Duration,
    /// MCP handshake timeout.
    pub handshake: Duration,
    /// How long a running container may refuse the MCP handshake (still booting) before the
    /// server counts as failed.
    pub startup_grace: Duration,
}

impl Default for SupervisorTiming {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            retry: Duration::from_secs(2),
            handshake: Duration::from_secs(60),
            startup_grace: Duration::from_secs(30),
        }
    }
}

/// Everything a supervisor needs.
pub struct Supervisor {
    /// Server name.
    pub name: String,
    /// Desired spec.
    pub spec: ServerSpec,
    /// Its hash.
    pub spec_hash: String,
    /// Runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Where the status goes.
    pub observed: ObservedCell,
    /// Where the bridge's peer goes.
    pub upstream: Arc<UpstreamSlot>,
    /// Stops the supervisor.
    pub stop: CancellationToken,
    /// Timing.
    pub timing: SupervisorTiming,
    /// The clock of the polls, retries and the startup grace.
    pub clock: clock::SharedClock,
}

fn update(cell: &ObservedCell, f: impl FnOnce(&mut Observed)) {
    let mut guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard);
}

/// What to do with the existing containers of a server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerPlan {
    /// The container to keep (same spec hash; a running one preferred).
    pub adopt: Option<String>,
    /// Containers to remove (other hashes, or duplicates).
    pub remove: Vec<String>,
}

/// Decides which of a server's containers to adopt and which to remove; pure.
pub fn plan_containers(mine: &[ContainerInfo], spec_hash: &str) -> ContainerPlan {
    let adopt = mine
        .iter()
        .filter(|c| c.spec_hash == spec_hash)
        .max_by_key(|c| c.running)
        .map(|c| c.id.clone());
    let remove = mine
        .iter()
        .filter(|c| Some(&c.id) != adopt.as_ref())
        .map(|c| c.id.clone())
        .collect();
    ContainerPlan { adopt, remove }
}

enum MonitorExit {
    /// The container vanished: create a new one.
    Vanished,
    /// The engine failed: retry later.
    EngineError(String),
}

impl Supervisor {
    /// Runs until stopped.
    pub async fn run(self) {
        loop {
            let step = async {
                match self.converge().await {
                    Ok(id) => self.monitor(&id).await,
                    Err(e) => MonitorExit::EngineError(e.to_string()),
                }
            };
            let exit = tokio::select! {
                _ = self.stop.cancelled() => break,
                exit = step => exit,
            };
            self.upstream.set(None);
            match exit {
                MonitorExit::Vanished => {
                    update(&self.observed, |o| {
                        // Restarts stay cumulative across container replacements.
                        o.replacements += o.engine_restarts + 1;
                        o.engine_restarts = 0;
                        o.container_id = None;
                        o.phase = Phase::Pending;
                        o.reason = Some("container vanished; recreating".into());
                    });
                }
                MonitorExit::EngineError(reason) => {
                    tracing::warn!(server = %self.name, %reason, "server failed; retrying");
                    update(&self.observed, |o| {
                        o.phase = Phase::Failed;
                        o.reason = Some(reason);
                        o.pull_progress = None;
                    });
                    tokio::select! {
                        _ = self.stop.cancelled() => break,
                        _ = self.clock.sleep(self.timing.retry) => {}
                    }
                }
            }
        }
        self.upstream.set(None);
    }

    /// Makes a container of the desired spec exist and run; returns its id.
    async fn converge(&self) -> Result<String, RuntimeError> {
        let mine: Vec<ContainerInfo> = self
            .runtime
            .list_managed()
            .await?
            .into_iter()
            .filter(|c| c.server == self.name)
            .collect();
        let plan = plan_containers(&mine, &self.spec_hash);
        for id in &plan.remove {
            self.runtime.remove(id).await?;
        }
        if let Some(id) = plan.adopt {
            tracing::info!(server = %self.name, container = %id, "adopted existing container");
            return Ok(id);
        }
        if !self.runtime.has_image(&self.spec.image).await? {
            update(&self.observed, |o| {
                o.phase = Phase::Pulling;
                o.reason = None;
                o.pull_progress = Some(PullProgress::default());
            });
            let cell = self.observed.clone();
            self.runtime
                .pull(
                    &self.spec.image,
                    self.spec.pull_credentials.as_ref(),
                    Box::new(move |p| update(&cell, |o| o.pull_progress = Some(p))),
                )
                .await?;
        }
        update(&self.observed, |o| {
            o.phase = Phase::Starting;
            o.reason = None;
            o.pull_progress = None;
        });
        let id = self
            .runtime
            .create_and_start(&self.name, &self.spec, &self.spec_hash)
            .await?;
        tracing::info!(server = %self.name, container = %id, "container started");
        Ok(id)
    }

    /// Watches the container and keeps the bridge connected until the container vanishes.
    async fn monitor(&self, id: &str) -> MonitorExit {
        update(&self.observed, |o| o.container_id = Some(id.to_string()));
        let mut client: Option<UpstreamClient> = None;
        let mut bridged_incarnation: Option<String> = None;
        let mut failing_since: Option<clock::Timestamp> = None;
        loop {
            let info = match self.runtime.inspect(id).await {
                Ok(info) => info,
                Err(RuntimeError::NotFound(_)) => return MonitorExit::Vanished,
                Err(e) => return MonitorExit::EngineError(e.to_string()),
            };
            update(&self.observed, |o| o.engine_restarts = info.restart_count);
            if !info.running {
                client = None;
                self.upstream.set(None);
                update(&self.observed, |o| {
                    o.phase = Phase::Failed;
                    o.reason = info.exit_reason.clone();
                });
            } else {
                // The bridge restarts with the container: a new incarnation or a closed
                // connection means reconnecting.
                let stale = bridged_incarnation.as_deref() != Some(info.incarnation.as_str())
                    || client.as_ref().is_none_or(|c| c.is_closed());
                if stale {
                    self.upstream.set(None);
                    if let Some(old) = client.take() {
                        drop(old);
                    }
                    update(&self.observed, |o| {
                        if o.phase != Phase::Running {
                            o.phase = Phase::Starting;
                        }
                    });
                    match self.connect_bridge(id).await {
                        Ok(c) => {
                            self.upstream.set(Some(c.peer().clone()));
                            client = Some(c);
                            bridged_incarnation = Some(info.incarnation.clone());
                            failing_since = None;
                            update(&self.observed, |o| {
                                o.phase = Phase::Running;
                                o.reason = None;
                            });
                        }
                        Err(reason) => {
                            let now = self.clock.now();
                            let since = *failing_since.get_or_insert(now);
                            let booting = clock::elapsed(since, now) < self.timing.startup_grace;
                            update(&self.observed, |o| {
                                if booting {
                                    o.phase = Phase::Starting;
                                    o.reason =
                                        Some(format!("waiting for the MCP server: {reason}"));
                                } else {
                                    o.phase = Phase::Failed;
                                    o.reason = Some(reason);
                                }
                            });
                            self.clock.sleep(self.timing.retry).await;
                            continue;
                        }
                    }
                }
            }
            self.clock.sleep(self.timing.poll).await;
        }
    }

    async fn connect_bridge(&self, id: &str) -> Result<UpstreamClient, String> {
        let connection = self
            .runtime
            .connect(id, &self.spec)
            .await
            .map_err(|e| e.to_string())?;
        bridge::connect(connection, self.timing.handshake)
            .await
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, hash: &str, running: bool) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            server: "time".into(),
            spec_hash: hash.into(),
            running,
            restart_count: 0,
            exit_reason: None,
            incarnation: String::new(),
        }
    }

    #[test]
    fn nothing_to_adopt_creates_fresh() {
        assert_eq!(plan_containers(&[], "h1"), ContainerPlan::default());
    }

    #[test]
    fn same_hash_is_adopted_and_others_removed() {
        let plan = plan_containers(
            &[container("a", "old", true), container("b", "h1", true)],
            "h1",
        );
        assert_eq!(plan.adopt.as_deref(), Some("b"));
        assert_eq!(plan.remove, ["a"]);
    }

    #[test]
    fn of_duplicates_the_running_one_is_kept() {
        let plan = plan_containers(
            &[container("a", "h1", false), container("b", "h1", true)],
            "h1",
        );
        assert_eq!(plan.adopt.as_deref(), Some("b"));
        assert_eq!(plan.remove, ["a"]);
    }
}
