//! `--faults none|light|heavy`: presets mapped onto the simulated DigitalOcean's fault
//! injection ([`FaultConfig`]) plus the two faults the simulator only offers as one-off
//! actions: bursts of 429 answers and one droplet lost after it booted.

use std::time::Duration;

use jiff::Timestamp;

use crate::sim::digitalocean::{BootDelay, FaultConfig};

/// How hostile the simulated cloud is during the demo.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultPreset {
    /// A well-behaved cloud.
    #[default]
    None,
    /// A few percent transient 5xx answers and an occasional short burst of 429s.
    Light,
    /// About 10 % transient faults, slow creates and one pool droplet lost after it booted.
    Heavy,
}

/// A burst of `count` 429 answers after every `every_requests` accepted requests, so the share
/// of 429s follows the operator's traffic (about `count / every_requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitBursts {
    /// Accepted requests between bursts.
    pub every_requests: u64,
    /// 429 answers per burst.
    pub count: u32,
}

/// What the simulated DigitalOcean has answered so far (its statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    /// Requests accepted.
    pub requests: u64,
    /// Requests answered with 429.
    pub answered_429: u64,
}

/// Everything a preset turns on: the simulator's switches and the demo's one-off faults.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// The simulator's fault switches.
    pub faults: FaultConfig,
    /// Boot time of new droplets (simulated time); `None` keeps the simulator's default.
    pub boot_delay: Option<BootDelay>,
    /// Periodic bursts of 429 answers, if any.
    pub rate_limit_bursts: Option<RateLimitBursts>,
    /// Lose the first droplet that becomes active this long (simulated) after it does.
    pub lose_first_droplet_after: Option<Duration>,
}

impl FaultPreset {
    /// The faults of this preset.
    pub fn plan(self) -> FaultPlan {
        match self {
            FaultPreset::None => FaultPlan {
                faults: FaultConfig::default(),
                boot_delay: None,
                rate_limit_bursts: None,
                lose_first_droplet_after: None,
            },
            FaultPreset::Light => FaultPlan {
                faults: FaultConfig {
                    server_error_rate: 0.03,
                    create_commit_then_fail_rate: 0.02,
                    ..FaultConfig::default()
                },
                boot_delay: None,
                rate_limit_bursts: Some(RateLimitBursts {
                    every_requests: 50,
                    count: 1,
                }),
                lose_first_droplet_after: None,
            },
            FaultPreset::Heavy => FaultPlan {
                faults: FaultConfig {
                    server_error_rate: 0.10,
                    create_commit_then_fail_rate: 0.10,
                    action_commit_then_fail_rate: 0.10,
                    latency: Duration::from_millis(300),
                    ..FaultConfig::default()
                },
                boot_delay: Some(BootDelay {
                    min: Duration::from_secs(90),
                    max: Duration::from_secs(180),
                }),
                rate_limit_bursts: Some(RateLimitBursts {
                    every_requests: 40,
                    count: 2,
                }),
                lose_first_droplet_after: Some(Duration::from_secs(30)),
            },
        }
    }

    /// One line for the demo's header.
    pub fn describe(self) -> &'static str {
        match self {
            FaultPreset::None => "none",
            FaultPreset::Light => "light: 3 % 5xx, 2 % creates committed then 500, 2 % 429",
            FaultPreset::Heavy => {
                "heavy: 10 % 5xx, 10 % creates and actions committed then 500, 300 ms latency, \
                 90-180 s boots, 5 % 429, one droplet lost"
            }
        }
    }
}

/// A one-off fault to inject now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer the next `n` requests with 429.
    RateLimit(u32),
    /// Make the droplet with this DigitalOcean id vanish.
    Lose(u64),
}

/// Decides, from the time and the active droplets, when the plan's one-off faults fire (pure;
/// the demo applies the actions to the simulated DigitalOcean).
#[derive(Debug, Clone)]
pub struct FaultInjector {
    bursts: Option<RateLimitBursts>,
    /// Accepted requests at the last burst.
    last_burst_requests: u64,
    /// The simulator's count of 429 answers once the last burst is used up.
    burst_used_up_at: u64,
    lose_after: Option<Duration>,
    first_active: Option<(u64, Timestamp)>,
}

impl FaultInjector {
    /// The injector of `plan`.
    pub fn new(plan: &FaultPlan) -> Self {
        Self {
            bursts: plan.rate_limit_bursts,
            last_burst_requests: 0,
            burst_used_up_at: 0,
            lose_after: plan.lose_first_droplet_after,
            first_active: None,
        }
    }

    /// Whether nothing is left to inject.
    pub fn is_done(&self) -> bool {
        self.bursts.is_none() && self.lose_after.is_none()
    }

    /// What to inject at `now`, given the ids of the droplets active now and the simulator's
    /// `traffic` so far. A burst also waits until the last one was used up, so bursts never
    /// pile up while the operator is idle.
    pub fn step(&mut self, now: Timestamp, active: &[u64], traffic: Traffic) -> Vec<FaultAction> {
        let mut actions = Vec::new();
        if let Some(bursts) = self.bursts
            && traffic.requests >= self.last_burst_requests + bursts.every_requests
            && traffic.answered_429 >= self.burst_used_up_at
        {
            self.last_burst_requests = traffic.requests;
            self.burst_used_up_at = traffic.answered_429 + u64::from(bursts.count);
            actions.push(FaultAction::RateLimit(bursts.count));
        }
        if let Some(delay) = self.lose_after {
            match self.first_active {
                None => {
                    self.first_active = active.iter().min().map(|id| (*id, now));
                }
                Some((id, seen)) if clock::elapsed(seen, now) >= delay => {
                    actions.push(FaultAction::Lose(id));
                    self.lose_after = None;
                }
                Some(_) => {}
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_injects_nothing() {
        let plan = FaultPreset::None.plan();
        assert_eq!(plan.faults, FaultConfig::default());
        assert_eq!(plan.boot_delay, None);
        assert_eq!(plan.rate_limit_bursts, None);
        assert_eq!(plan.lose_first_droplet_after, None);
    }

    #[test]
    fn light_is_a_few_percent_of_transient_faults_and_loses_nothing() {
        let plan = FaultPreset::Light.plan();
        assert!((0.01..=0.05).contains(&plan.faults.server_error_rate));
        assert!(plan.faults.create_commit_then_fail_rate <= 0.05);
        assert_eq!(plan.faults.lost_droplet_rate, 0.0);
        assert_eq!(plan.faults.never_active_rate, 0.0);
        assert!(plan.faults.unavailable.is_empty());
        let share = |b: RateLimitBursts| f64::from(b.count) / b.every_requests as f64;
        assert!(
            plan.rate_limit_bursts
                .is_some_and(|b| b.count > 0 && share(b) <= 0.05)
        );
        assert_eq!(plan.lose_first_droplet_after, None);
        assert_eq!(plan.boot_delay, None);
    }

    #[test]
    fn heavy_is_ten_percent_slow_creates_and_a_lost_droplet() {
        let plan = FaultPreset::Heavy.plan();
        assert!((plan.faults.server_error_rate - 0.10).abs() < 1e-9);
        assert!(plan.faults.create_commit_then_fail_rate > 0.0);
        assert!(plan.faults.latency > Duration::ZERO);
        let boot = plan.boot_delay.expect("slow creates");
        let default_boot = crate::sim::digitalocean::SimDoConfig::default().boot_delay;
        assert!(
            boot.min > default_boot.max,
            "heavy boots are slower than any default boot"
        );
        assert!(plan.lose_first_droplet_after.is_some());
        // Faults stay transient: no droplet that never boots, no sold-out size.
        assert_eq!(plan.faults.never_active_rate, 0.0);
        assert!(plan.faults.unavailable.is_empty());
    }

    fn traffic(requests: u64, answered_429: u64) -> Traffic {
        Traffic {
            requests,
            answered_429,
        }
    }

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn none_injects_no_one_off_fault() {
        let mut injector = FaultInjector::new(&FaultPreset::None.plan());
        assert!(injector.is_done());
        assert!(
            injector
                .step(at(3600), &[1, 2], traffic(1000, 0))
                .is_empty()
        );
    }

    #[test]
    fn light_answers_one_request_in_fifty_with_429_never_piling_bursts_up() {
        let mut injector = FaultInjector::new(&FaultPreset::Light.plan());
        assert!(!injector.is_done());
        assert!(injector.step(at(30), &[], traffic(49, 0)).is_empty());
        assert_eq!(
            injector.step(at(35), &[], traffic(50, 0)),
            [FaultAction::RateLimit(1)]
        );
        assert!(
            injector.step(at(40), &[7], traffic(60, 1)).is_empty(),
            "light loses no droplet"
        );
        // Fifty more requests, but the last 429 has not been answered yet: no new burst.
        assert!(injector.step(at(45), &[7], traffic(100, 0)).is_empty());
        assert_eq!(
            injector.step(at(50), &[7], traffic(101, 1)),
            [FaultAction::RateLimit(1)]
        );
    }

    #[test]
    fn heavy_loses_the_first_active_droplet_once_after_the_delay() {
        let mut injector = FaultInjector::new(&FaultPreset::Heavy.plan());
        // Nothing active yet: nothing to lose.
        assert!(injector.step(at(5), &[], traffic(0, 0)).is_empty());
        // The lowest id is the first droplet created; it is noticed at 10 s.
        assert!(injector.step(at(10), &[502, 501], traffic(5, 0)).is_empty());
        assert!(
            injector
                .step(at(20), &[501, 502], traffic(10, 0))
                .is_empty()
        );
        let fired = injector.step(at(40), &[501, 502], traffic(40, 0));
        assert!(fired.contains(&FaultAction::Lose(501)), "{fired:?}");
        assert!(fired.contains(&FaultAction::RateLimit(2)), "{fired:?}");
        // Only once.
        let later = injector.step(at(80), &[502], traffic(50, 2));
        assert!(
            !later.iter().any(|a| matches!(a, FaultAction::Lose(_))),
            "{later:?}"
        );
        assert!(!injector.is_done(), "429 bursts go on");
    }

    #[test]
    fn every_preset_is_described() {
        for preset in [FaultPreset::None, FaultPreset::Light, FaultPreset::Heavy] {
            assert!(!preset.describe().is_empty());
        }
    }
}
