//! The operator wired to a simulated world: the DigitalOcean client pointed at the simulated
//! API on the world's clock, and settings whose agent bootstrap the simulated droplets accept.
//! Used by `run --cloud simulated`, `demo` and the scenario tests, so all three run the same
//! operator against the same world.

use std::sync::Arc;
use std::time::Duration;

use clock::SharedClock;
use secrecy::SecretString;

use super::world::World;
use crate::agent_client::ClientSettings;
use crate::cloud::bootstrap::BootstrapConfig;
use crate::cloud::client::{DoClient, DoClientConfig};
use crate::cloud::error::CloudError;
use crate::controller::{OperatorConfig, Timings, WatchScope};
use crate::telemetry::Metrics;

/// The port every simulated agent listens on (each droplet has its own loopback address).
pub const SIMULATED_AGENT_PORT: u16 = 9443;

/// Settings for an operator against a simulated cloud: agents on [`SIMULATED_AGENT_PORT`], the
/// default pool in `nyc3`, default timings.
pub fn simulated_operator_config(cluster_id: &str) -> OperatorConfig {
    let mut bootstrap = BootstrapConfig::from_release_url(
        "https://releases.invalid/mcp-droplet-agent/simulated/mcp-droplet-agent",
    );
    bootstrap.listen = format!("0.0.0.0:{SIMULATED_AGENT_PORT}");
    OperatorConfig {
        cluster_id: cluster_id.to_string(),
        scope: WatchScope::AllNamespaces,
        operator_namespace: "default".to_string(),
        default_regions: vec!["nyc3".to_string()],
        default_sizes: crate::catalog::default_pool_sizes()
            .into_iter()
            .map(String::from)
            .collect(),
        bootstrap,
        agent: ClientSettings::default(),
        // The simulated world has no registry; a test that wants checks points them at the
        // stand-in registry (`testing::registry_fake`).
        image_check: crate::image_check::ImageCheckSettings::Off,
        timings: Timings::default(),
        reporter_instance: None,
    }
}

/// Timings for tests and the demo: the same rules, shorter waits (still in the clock's time).
pub fn quick_timings() -> Timings {
    Timings {
        error_backoff_base: Duration::from_millis(200),
        error_backoff_max: Duration::from_secs(20),
        heartbeat_interval: Duration::from_secs(10),
        not_ready_after_failures: 3,
        move_grace: Duration::from_secs(60),
        reprobe_interval: Duration::from_secs(30),
        degraded_after_failures: 2,
        restart_after_failures: 3,
        move_after_failures: 6,
        batch_idle: Duration::from_secs(1),
        batch_max: Duration::from_secs(10),
        sweep_interval: Duration::from_secs(60),
        template_recheck_interval: Duration::from_secs(600),
        resync_interval: Duration::from_secs(120),
    }
}

/// A DigitalOcean client for `base_url` with `token`, on `clock`, counting into `metrics`.
pub fn cloud_client(
    base_url: &str,
    token: SecretString,
    clock: SharedClock,
    metrics: &Arc<Metrics>,
) -> Result<DoClient, CloudError> {
    DoClient::with_parts(
        DoClientConfig::new(base_url, token),
        clock,
        metrics.cloud.clone(),
    )
}

/// The DigitalOcean client of `world`'s simulated cloud (None when the world has no cloud).
pub fn world_cloud_client(
    world: &World,
    metrics: &Arc<Metrics>,
) -> Option<Result<DoClient, CloudError>> {
    let url = world.digitalocean_url()?;
    let token = world.digitalocean_token()?.clone();
    Some(cloud_client(&url, token, world.clock().clone(), metrics))
}
