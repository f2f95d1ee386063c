//! Retry policy: capped exponential backoff with jitter, randomness injected.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A source of jitter: a fraction in `[0, 1)` per call. Injected so tests are deterministic.
pub trait JitterSource: Send + Sync + std::fmt::Debug {
    /// The next fraction in `[0, 1)`.
    fn fraction(&self) -> f64;
}

/// Jitter from a seeded (or OS-seeded) pseudo-random generator.
#[derive(Debug)]
pub struct RandomJitter {
    rng: Mutex<StdRng>,
}

impl RandomJitter {
    /// Seeded from the operating system.
    pub fn from_os() -> Self {
        Self {
            rng: Mutex::new(StdRng::from_os_rng()),
        }
    }

    /// Seeded with `seed` for reproducible runs.
    pub fn seeded(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }
}

impl JitterSource for RandomJitter {
    fn fraction(&self) -> f64 {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random::<f64>()
    }
}

/// A constant jitter fraction, for tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedJitter(pub f64);

impl JitterSource for FixedJitter {
    fn fraction(&self) -> f64 {
        self.0.clamp(0.0, 1.0)
    }
}

/// How often and how long to retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total for 5xx and transport errors (1 = no retry).
    pub max_attempts: u32,
    /// Attempts in total for 429 responses (each waits as DigitalOcean says).
    pub max_rate_limited_attempts: u32,
    /// Backoff before the first retry.
    pub base_delay: Duration,
    /// Upper bound of one backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// godo's and Terraform's defaults: 5 attempts, 1 s doubling up to 30 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_rate_limited_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 = first retry), with "equal jitter": half fixed,
    /// half random, so retries of many callers spread out but never collapse to zero.
    pub fn backoff(&self, retry: u32, jitter_fraction: f64) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.min(20)));
        let capped = exponential.min(self.max_delay);
        let jitter = jitter_fraction.clamp(0.0, 1.0);
        capped.mul_f64(0.5 + 0.5 * jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(0, 1.0), Duration::from_secs(1));
        assert_eq!(policy.backoff(1, 1.0), Duration::from_secs(2));
        assert_eq!(policy.backoff(3, 1.0), Duration::from_secs(8));
        assert_eq!(policy.backoff(10, 1.0), Duration::from_secs(30));
    }

    #[test]
    fn jitter_keeps_at_least_half_the_delay() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(policy.backoff(2, 0.5), Duration::from_secs(3));
    }

    #[test]
    fn seeded_jitter_is_reproducible() {
        let a = RandomJitter::seeded(7);
        let b = RandomJitter::seeded(7);
        assert_eq!(a.fraction(), b.fraction());
    }
}
