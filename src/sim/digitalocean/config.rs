//! Settings of the simulated DigitalOcean: timings, limits and fault switches.

use std::sync::Arc;
use std::time::Duration;

use crate::sim::digitalocean::DropletLifecycleHook;
use clock::{SharedClock, SystemClock};

/// How long a droplet stays `new` before it turns `active` (simulated time), drawn uniformly
/// from `[min, max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootDelay {
    /// Shortest boot.
    pub min: Duration,
    /// Longest boot.
    pub max: Duration,
}

impl BootDelay {
    /// Always the same delay.
    pub fn fixed(delay: Duration) -> Self {
        Self {
            min: delay,
            max: delay,
        }
    }

    /// The delay for a uniform sample `fraction` in `[0, 1)`.
    pub fn sample(&self, fraction: f64) -> Duration {
        if self.max <= self.min {
            return self.min;
        }
        self.min + (self.max - self.min).mul_f64(fraction.clamp(0.0, 1.0))
    }
}

/// DigitalOcean's rate limits as the simulator enforces them (per token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimRateLimits {
    /// Requests per sliding minute (DigitalOcean: 250).
    pub per_minute: u32,
    /// Requests per sliding hour (DigitalOcean: 5,000).
    pub per_hour: u32,
}

impl Default for SimRateLimits {
    fn default() -> Self {
        Self {
            per_minute: 250,
            per_hour: 5_000,
        }
    }
}

/// Fault switches; all off by default. They can be changed at run time through the handle.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultConfig {
    /// Share of requests (after auth and rate limiting) answered with 500 without effect.
    pub server_error_rate: f64,
    /// Share of creates that are committed and then answered with 500 (the duplicate hazard).
    pub create_commit_then_fail_rate: f64,
    /// Share of droplet actions that are committed and then answered with 500.
    pub action_commit_then_fail_rate: f64,
    /// Extra latency per request, in simulated time.
    pub latency: Duration,
    /// Share of droplets that never leave `new`.
    pub never_active_rate: f64,
    /// Share of droplets that vanish (as if destroyed outside the operator) after a boot time
    /// of being active.
    pub lost_droplet_rate: f64,
    /// `(size, region)` pairs that are sold out: create answers 422 with the capacity message.
    pub unavailable: Vec<(String, String)>,
}

/// Everything the simulated DigitalOcean needs.
#[derive(Clone)]
pub struct SimDoConfig {
    /// The world's clock (shared with the operator's client in the simulated world).
    pub clock: SharedClock,
    /// Boot time distribution.
    pub boot_delay: BootDelay,
    /// How long a new droplet is missing from list responses.
    pub list_lag: Duration,
    /// How long a new droplet answers 404 on `GET /v2/droplets/{id}`.
    pub get_lag: Duration,
    /// How long a droplet action runs.
    pub action_delay: Duration,
    /// Rate limits.
    pub rate_limits: SimRateLimits,
    /// Whether rate limiting is enforced at all.
    pub enforce_rate_limits: bool,
    /// The account's droplet limit.
    pub droplet_limit: u32,
    /// Image slugs accepted on create.
    pub images: Vec<String>,
    /// Fault switches.
    pub faults: FaultConfig,
    /// Seed of the simulator's randomness (boot delays, fault draws).
    pub seed: u64,
    /// Index of the first droplet address (decision 0203's `n`): worlds that run side by side
    /// on one machine (parallel test processes) start at different indexes so their agents do
    /// not compete for the same 127.x.y.z:port.
    pub first_address: u32,
    /// Receives droplets that became active or were deleted.
    pub hook: Option<Arc<dyn DropletLifecycleHook>>,
}

impl std::fmt::Debug for SimDoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimDoConfig")
            .field("clock", &self.clock)
            .field("boot_delay", &self.boot_delay)
            .field("list_lag", &self.list_lag)
            .field("get_lag", &self.get_lag)
            .field("action_delay", &self.action_delay)
            .field("rate_limits", &self.rate_limits)
            .field("enforce_rate_limits", &self.enforce_rate_limits)
            .field("droplet_limit", &self.droplet_limit)
            .field("images", &self.images)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("first_address", &self.first_address)
            .field("hook", &self.hook.as_ref().map(|_| "set"))
            .finish()
    }
}

impl Default for SimDoConfig {
    /// Real-time clock, 30–60 s boots, 2 s list lag, DigitalOcean's limits, no faults.
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            boot_delay: BootDelay {
                min: Duration::from_secs(30),
                max: Duration::from_secs(60),
            },
            list_lag: Duration::from_secs(2),
            get_lag: Duration::ZERO,
            action_delay: Duration::from_secs(10),
            rate_limits: SimRateLimits::default(),
            enforce_rate_limits: true,
            droplet_limit: 10_000,
            images: [
                "ubuntu-24-04-x64",
                "ubuntu-22-04-x64",
                "debian-12-x64",
                "docker-20-04",
            ]
            .map(str::to_owned)
            .to_vec(),
            faults: FaultConfig::default(),
            seed: 42,
            first_address: 0,
            hook: None,
        }
    }
}
