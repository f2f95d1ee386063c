//! Shared setup of the cloud tests: a simulated DigitalOcean on loopback and a client for it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clock::{ManualClock, ScaledClock, SharedClock};
use mcp_droplet_operator::cloud::client::{DoClient, DoClientConfig};
use mcp_droplet_operator::cloud::metrics::CloudMetrics;
use mcp_droplet_operator::cloud::models::DropletCreateRequest;
use mcp_droplet_operator::cloud::rate_limit::RateLimitConfig;
use mcp_droplet_operator::retry::Jitter;
use mcp_droplet_operator::sim::digitalocean::{
    BootDelay, SimDoConfig, SimulatedDo, serve_simulated_do,
};

pub const TOKEN: &str = "dop_v1_simulated_test_token";

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A simulated DigitalOcean with short, deterministic timings on `clock`.
pub async fn start_sim(clock: SharedClock, tweak: impl FnOnce(&mut SimDoConfig)) -> SimulatedDo {
    let mut config = SimDoConfig {
        clock,
        boot_delay: BootDelay::fixed(Duration::from_secs(20)),
        list_lag: Duration::from_secs(2),
        action_delay: Duration::from_secs(5),
        ..SimDoConfig::default()
    };
    tweak(&mut config);
    serve_simulated_do(loopback(), TOKEN.into(), config)
        .await
        .expect("simulated DigitalOcean starts")
}

/// A client for `sim` on `clock`, without jitter (reproducible waits).
pub fn client_for(sim: &SimulatedDo, clock: SharedClock, token: &str) -> DoClient {
    client_with(sim, clock, token, |_| {})
}

/// A client with a tweaked configuration.
pub fn client_with(
    sim: &SimulatedDo,
    clock: SharedClock,
    token: &str,
    tweak: impl FnOnce(&mut DoClientConfig),
) -> DoClient {
    let mut config = DoClientConfig::new(sim.base_url(), token.into());
    config.request_timeout = Duration::from_secs(10);
    config.retry.jitter = Jitter::None;
    tweak(&mut config);
    DoClient::with_parts(config, clock, CloudMetrics::new()).expect("client builds")
}

/// A client that never waits in the pacer (for tests on a manual clock).
pub fn unpaced_client(sim: &SimulatedDo, clock: SharedClock) -> DoClient {
    client_with(sim, clock, TOKEN, |c| {
        c.rate_limit = RateLimitConfig {
            per_minute: 1_000_000,
            per_hour: 100_000_000,
            safety_margin: 0.0,
            burst: 1_000_000,
            remaining_reserve: 0.0,
        };
    })
}

pub fn fast_clock(speed: f64) -> SharedClock {
    Arc::new(ScaledClock::new(speed))
}

pub fn manual_clock() -> (ManualClock, SharedClock) {
    let clock = ManualClock::new(clock::Timestamp::from_second(1_800_000_000).expect("valid"));
    (clock.clone(), Arc::new(clock))
}

pub fn create_request(name: &str) -> DropletCreateRequest {
    DropletCreateRequest {
        name: name.to_owned(),
        region: "nyc3".to_owned(),
        size: "s-1vcpu-1gb".to_owned(),
        image: "ubuntu-24-04-x64".to_owned(),
        ssh_keys: Vec::new(),
        ipv6: false,
        monitoring: true,
        tags: vec!["mcp-droplet-operator:cluster:test".to_owned()],
        user_data: Some("#cloud-config\n{}\n".to_owned()),
        vpc_uuid: None,
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after `timeout` of real time.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
