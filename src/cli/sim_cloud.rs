//! Command-line settings of the simulated DigitalOcean, flattened into `sim` (and used alone by
//! `sim --no-kube`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::sim::digitalocean::{BootDelay, FaultConfig, SimDoConfig, SimRateLimits};
use clock::{ScaledClock, SharedClock, SystemClock};

fn parse_token(raw: &str) -> Result<SecretString, String> {
    if raw.trim().is_empty() {
        Err("the token must not be empty".to_owned())
    } else {
        Ok(SecretString::from(raw.trim()))
    }
}

fn parse_sold_out(raw: &str) -> Result<(String, String), String> {
    raw.split_once('@')
        .map(|(size, region)| (size.to_owned(), region.to_owned()))
        .ok_or_else(|| format!("expected SIZE@REGION, got {raw:?}"))
}

/// Flags of the simulated DigitalOcean (all prefixed `--do-`).
#[derive(clap::Args, Debug, Clone)]
pub struct SimCloudArgs {
    /// Address to serve the simulated DigitalOcean API on (`http://ADDR/v2/...`).
    #[arg(id = "do_listen", long = "do-listen", default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// The API token clients must present (`Authorization: Bearer TOKEN`); the simulated
    /// DigitalOcean runs only when it is given.
    #[arg(
        id = "do_token",
        long = "do-token",
        env = "MCP_SIM_DO_TOKEN",
        hide_env_values = true,
        value_parser = parse_token
    )]
    pub token: Option<SecretString>,
    /// Shortest droplet boot time, in simulated seconds.
    #[arg(
        id = "do_boot_min_seconds",
        long = "do-boot-min-seconds",
        default_value_t = 30.0
    )]
    pub boot_min_seconds: f64,
    /// Longest droplet boot time, in simulated seconds.
    #[arg(
        id = "do_boot_max_seconds",
        long = "do-boot-max-seconds",
        default_value_t = 60.0
    )]
    pub boot_max_seconds: f64,
    /// How long a new droplet is missing from list responses, in simulated seconds.
    #[arg(
        id = "do_list_lag_seconds",
        long = "do-list-lag-seconds",
        default_value_t = 2.0
    )]
    pub list_lag_seconds: f64,
    /// Requests per minute per token before 429.
    #[arg(
        id = "do_rate_per_minute",
        long = "do-rate-per-minute",
        default_value_t = 250
    )]
    pub rate_per_minute: u32,
    /// Requests per hour per token before 429.
    #[arg(
        id = "do_rate_per_hour",
        long = "do-rate-per-hour",
        default_value_t = 5_000
    )]
    pub rate_per_hour: u32,
    /// Turn rate limiting off.
    #[arg(id = "do_no_rate_limit", long = "do-no-rate-limit")]
    pub no_rate_limit: bool,
    /// The account's droplet limit.
    #[arg(
        id = "do_droplet_limit",
        long = "do-droplet-limit",
        default_value_t = 10_000
    )]
    pub droplet_limit: u32,
    /// Share of requests answered with 500 (0..1).
    #[arg(
        id = "do_fault_5xx_rate",
        long = "do-fault-5xx-rate",
        default_value_t = 0.0
    )]
    pub fault_5xx_rate: f64,
    /// Share of creates committed and then answered with 500 (0..1).
    #[arg(
        id = "do_fault_create_500_rate",
        long = "do-fault-create-500-rate",
        default_value_t = 0.0
    )]
    pub fault_create_500_rate: f64,
    /// Extra latency per request, in simulated milliseconds.
    #[arg(
        id = "do_fault_latency_ms",
        long = "do-fault-latency-ms",
        default_value_t = 0
    )]
    pub fault_latency_ms: u64,
    /// Share of droplets that never become active (0..1).
    #[arg(
        id = "do_fault_never_active_rate",
        long = "do-fault-never-active-rate",
        default_value_t = 0.0
    )]
    pub fault_never_active_rate: f64,
    /// Share of droplets that vanish some time after booting (0..1).
    #[arg(
        id = "do_fault_lost_rate",
        long = "do-fault-lost-rate",
        default_value_t = 0.0
    )]
    pub fault_lost_rate: f64,
    /// A sold-out `SIZE@REGION` pair (repeatable).
    #[arg(id = "do_sold_out", long = "do-sold-out", value_parser = parse_sold_out)]
    pub sold_out: Vec<(String, String)>,
    /// Seed of the simulator's randomness.
    #[arg(id = "do_seed", long = "do-seed", default_value_t = 42)]
    pub seed: u64,
    /// Clock speed when run alone (simulated seconds per real second); `sim` passes its own clock.
    #[arg(id = "do_speed", long = "do-speed", default_value_t = 1.0)]
    pub speed: f64,
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value.max(0.0)).unwrap_or(Duration::ZERO)
}

impl SimCloudArgs {
    /// The simulator configuration on the world's `clock`.
    pub fn to_config(&self, clock: SharedClock) -> SimDoConfig {
        SimDoConfig {
            clock,
            boot_delay: BootDelay {
                min: seconds(self.boot_min_seconds),
                max: seconds(self.boot_max_seconds.max(self.boot_min_seconds)),
            },
            list_lag: seconds(self.list_lag_seconds),
            rate_limits: SimRateLimits {
                per_minute: self.rate_per_minute,
                per_hour: self.rate_per_hour,
            },
            enforce_rate_limits: !self.no_rate_limit,
            droplet_limit: self.droplet_limit,
            faults: FaultConfig {
                server_error_rate: self.fault_5xx_rate,
                create_commit_then_fail_rate: self.fault_create_500_rate,
                action_commit_then_fail_rate: 0.0,
                latency: Duration::from_millis(self.fault_latency_ms),
                never_active_rate: self.fault_never_active_rate,
                lost_droplet_rate: self.fault_lost_rate,
                unavailable: self.sold_out.clone(),
            },
            seed: self.seed,
            ..SimDoConfig::default()
        }
    }

    /// The clock for running the simulator alone (`--do-speed`).
    pub fn clock(&self) -> SharedClock {
        if (self.speed - 1.0).abs() < f64::EPSILON {
            Arc::new(SystemClock)
        } else {
            Arc::new(ScaledClock::new(self.speed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Probe {
        #[command(flatten)]
        args: SimCloudArgs,
    }

    #[test]
    fn flags_parse_and_the_token_stays_hidden() {
        let probe = Probe::try_parse_from([
            "probe",
            "--do-listen",
            "127.0.0.1:9999",
            "--do-token",
            "dop_v1_secret",
            "--do-sold-out",
            "s-1vcpu-1gb@nyc3",
            "--do-fault-5xx-rate",
            "0.1",
        ])
        .expect("parse");
        use secrecy::ExposeSecret;
        assert_eq!(
            probe.args.token.as_ref().unwrap().expose_secret(),
            "dop_v1_secret"
        );
        assert!(!format!("{probe:?}").contains("secret"));
        let config = probe.args.to_config(Arc::new(SystemClock));
        assert_eq!(config.rate_limits.per_minute, 250);
        assert_eq!(
            config.faults.unavailable,
            vec![("s-1vcpu-1gb".to_owned(), "nyc3".to_owned())]
        );
    }
}
