//! The simulated world's droplet agents: a [`DropletLifecycleHook`] that starts a real
//! `mcp-droplet-agent` (simulated runtime) on every droplet that becomes active, configured from
//! the droplet's `user_data` exactly as cloud-init would, and stops it when the droplet is
//! deleted.

use crate::sim::digitalocean::{ActiveDroplet, DropletLifecycleHook};
use clock::{SharedClock, SystemClock};
use mcp_droplet_agent::api::Capacity;
use mcp_droplet_agent::{
    AgentHandle, AgentOptions, BootstrapConfig, SimulatedAgentOptions, SimulatedRuntime,
    SimulatedRuntimeOptions, spawn_simulated_agent,
};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// State of one droplet's agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetAgentState {
    /// Being started.
    Starting,
    /// Serving at this address.
    Running(SocketAddr),
    /// Could not start (bad or missing user_data, address taken, ...).
    Failed(String),
}

struct FleetEntry {
    state: FleetAgentState,
    runtime: SimulatedRuntime,
    handle: Option<AgentHandle>,
}

/// Starts and stops one simulated agent per active simulated droplet.
#[derive(Clone)]
pub struct SimulatedAgentFleet {
    entries: Arc<Mutex<HashMap<u64, FleetEntry>>>,
    data_root: PathBuf,
    runtime_options: SimulatedRuntimeOptions,
    clock: SharedClock,
}

impl std::fmt::Debug for SimulatedAgentFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedAgentFleet")
            .field("data_root", &self.data_root)
            .finish_non_exhaustive()
    }
}

impl SimulatedAgentFleet {
    /// A fleet keeping each agent's data under `data_root/<droplet id>`.
    pub fn new(data_root: impl Into<PathBuf>, runtime_options: SimulatedRuntimeOptions) -> Self {
        Self {
            entries: Arc::default(),
            data_root: data_root.into(),
            runtime_options,
            clock: Arc::new(SystemClock),
        }
    }

    /// This fleet with every agent's timers (lockout windows, supervisor polls and retries, the
    /// orphan sweep) on `clock`: the simulated world's clock.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, FleetEntry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state of a droplet's agent, if the droplet is known.
    pub fn state(&self, droplet_id: u64) -> Option<FleetAgentState> {
        self.lock().get(&droplet_id).map(|e| e.state.clone())
    }

    /// The simulated container runtime of a droplet (for fault injection).
    pub fn runtime(&self, droplet_id: u64) -> Option<SimulatedRuntime> {
        self.lock().get(&droplet_id).map(|e| e.runtime.clone())
    }

    /// Waits until the droplet's agent runs or failed, up to `timeout`.
    pub async fn wait_started(
        &self,
        droplet_id: u64,
        timeout: std::time::Duration,
    ) -> Option<FleetAgentState> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.state(droplet_id) {
                Some(FleetAgentState::Starting) | None => {}
                done => return done,
            }
            if tokio::time::Instant::now() >= deadline {
                return self.state(droplet_id);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Stops one droplet's agent while the droplet stays active, as a crashed agent or a cut
    /// network would look to the operator (a test hook). Returns whether an agent was running.
    pub async fn stop_agent(&self, droplet_id: u64) -> bool {
        let handle = {
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(&droplet_id) else {
                return false;
            };
            entry.state = FleetAgentState::Failed("stopped by a test".to_string());
            entry.handle.take()
        };
        match handle {
            Some(handle) => {
                handle.shutdown().await;
                true
            }
            None => false,
        }
    }

    /// Stops every agent (containers of the simulated runtimes stop with them).
    pub async fn shutdown(&self) {
        let handles: Vec<AgentHandle> = self
            .lock()
            .values_mut()
            .filter_map(|e| e.handle.take())
            .collect();
        for handle in handles {
            handle.shutdown().await;
        }
    }
}

/// Capacity of a droplet size from the offline catalogue, if the slug is known.
pub fn size_capacity(slug: &str) -> Option<Capacity> {
    crate::cloud::offline_catalog::sizes()
        .into_iter()
        .find(|s| s.slug == slug)
        .map(|s| Capacity {
            cpu_millis: u64::from(s.vcpus) * 1000,
            memory_bytes: s.memory * 1024 * 1024,
            disk_bytes: s.disk * 1024 * 1024 * 1024,
        })
}

/// The agent's address on a simulated droplet: the droplet's own loopback IP with the port
/// of the bootstrap config's `listen`.
pub fn agent_address(
    droplet_ip: IpAddr,
    bootstrap: &BootstrapConfig,
) -> Result<SocketAddr, String> {
    let listen: SocketAddr = bootstrap
        .listen
        .parse()
        .map_err(|e| format!("bootstrap listen {:?}: {e}", bootstrap.listen))?;
    Ok(SocketAddr::new(droplet_ip, listen.port()))
}

impl DropletLifecycleHook for SimulatedAgentFleet {
    fn droplet_active(&self, droplet: &ActiveDroplet) {
        let runtime = SimulatedRuntime::new(self.runtime_options.clone());
        {
            let mut entries = self.lock();
            if entries.contains_key(&droplet.id) {
                return;
            }
            entries.insert(
                droplet.id,
                FleetEntry {
                    state: FleetAgentState::Starting,
                    runtime: runtime.clone(),
                    handle: None,
                },
            );
        }
        let fleet = self.clone();
        let droplet = droplet.clone();
        tokio::spawn(async move {
            let result = async {
                let user_data = droplet
                    .user_data
                    .as_deref()
                    .ok_or_else(|| "the droplet has no user_data".to_string())?;
                let bootstrap =
                    BootstrapConfig::from_user_data(user_data).map_err(|e| e.to_string())?;
                let addr = agent_address(IpAddr::V4(droplet.ipv4), &bootstrap)?;
                spawn_simulated_agent(
                    addr,
                    user_data,
                    SimulatedAgentOptions {
                        data_dir: Some(fleet.data_root.join(droplet.id.to_string())),
                        runtime: Some(runtime),
                        runtime_options: SimulatedRuntimeOptions::default(),
                        agent: AgentOptions {
                            capacity: size_capacity(&droplet.size),
                            clock: Arc::clone(&fleet.clock),
                            ..AgentOptions::default()
                        },
                    },
                )
                .await
                .map_err(|e| e.to_string())
            }
            .await;
            let mut entries = fleet.lock();
            let Some(entry) = entries.get_mut(&droplet.id) else {
                // Deleted while starting: stop what was started.
                if let Ok(handle) = result {
                    tokio::spawn(handle.shutdown());
                }
                return;
            };
            match result {
                Ok(handle) => {
                    tracing::info!(droplet = %droplet.name, addr = %handle.addr(), "simulated agent started");
                    entry.state = FleetAgentState::Running(handle.addr());
                    entry.handle = Some(handle);
                }
                Err(reason) => {
                    tracing::warn!(droplet = %droplet.name, %reason, "simulated agent did not start");
                    entry.state = FleetAgentState::Failed(reason);
                }
            }
        });
    }

    fn droplet_deleted(&self, id: u64) {
        let handle = self.lock().remove(&id).and_then(|e| e.handle);
        if let Some(handle) = handle {
            tokio::spawn(handle.shutdown());
        }
    }
}
