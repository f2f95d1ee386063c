//! The one retry policy of the operator: capped exponential backoff with jitter (the delays come
//! from `backon`), a bound on attempts, an optional deadline on the whole call, and a caller's
//! classification of each failure (stop, back off, or wait as the server said).
//!
//! Time is the injected [`clock::SharedClock`], so a simulated world at 30x retries at 30x and a
//! test on a manual clock retries when it advances the clock.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use clock::{SharedClock, Timestamp};

/// What to do after a failed attempt, decided by the caller for its own error type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Permanent (or not safe to replay): return the error now.
    Stop,
    /// Transient: wait the next backoff delay and try again (counts against `max_attempts`).
    Backoff,
    /// The server said when to come back: wait this long and try again (counts against
    /// `max_hinted_attempts`, not `max_attempts`).
    RetryAfter(Duration),
}

impl RetryDecision {
    /// `Backoff` for a transient failure, `Stop` otherwise.
    pub fn transient_if(transient: bool) -> Self {
        if transient { Self::Backoff } else { Self::Stop }
    }
}

/// How the random part of each delay is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// No jitter: exact doubling (tests and single callers).
    None,
    /// Jitter from a fixed seed (reproducible runs).
    Seeded(u64),
    /// Jitter seeded by the operating system (production: many callers spread out).
    #[default]
    Random,
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total for `Backoff` failures (1 = no retry).
    pub max_attempts: u32,
    /// Attempts in total for `RetryAfter` failures (e.g. 429 with a wait the server chose).
    pub max_hinted_attempts: u32,
    /// The first backoff delay.
    pub base_delay: Duration,
    /// The longest single backoff delay (before jitter).
    pub max_delay: Duration,
    /// How jitter is drawn; with jitter a delay `d` becomes a value in `[d, 2d)` (backon's rule).
    pub jitter: Jitter,
    /// No retry starts once this much time has passed since the first attempt, and no wait
    /// reaches past it: the last error is returned instead.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    /// godo's and Terraform's defaults: 5 attempts, 1 s doubling up to 30 s, jittered.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_hinted_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            jitter: Jitter::Random,
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// One attempt and no retry (callers that retry at a higher level, and tests).
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            max_hinted_attempts: 1,
            ..Self::default()
        }
    }

    /// The backon builder for the backoff delays of this policy.
    pub fn backoff(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.base_delay)
            .with_max_delay(self.max_delay)
            .with_factor(2.0)
            .without_max_times();
        match self.jitter {
            Jitter::None => builder,
            Jitter::Seeded(seed) => builder.with_jitter().with_jitter_seed(seed),
            Jitter::Random => builder.with_jitter(),
        }
    }

    /// The delays before the first `count` retries (for documentation and tests).
    pub fn delays(&self, count: usize) -> Vec<Duration> {
        self.backoff().build().take(count).collect()
    }

    /// Runs `attempt` until it succeeds, `classify` says stop, the attempts are used up or the
    /// deadline would be passed. `on_retry` hears every failure that is retried, with the wait.
    pub async fn run<T, E, F, Fut>(
        &self,
        clock: &SharedClock,
        mut attempt: F,
        mut classify: impl FnMut(&E) -> RetryDecision,
        mut on_retry: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = clock.now();
        let deadline = self.deadline.map(|d| clock::add(started, d));
        let mut delays = self.backoff().build();
        let mut failures = 0u32;
        let mut hinted = 0u32;
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let wait = match classify(&error) {
                RetryDecision::Stop => return Err(error),
                RetryDecision::Backoff => {
                    failures += 1;
                    if failures >= self.max_attempts.max(1) {
                        return Err(error);
                    }
                    match delays.next() {
                        Some(delay) => delay,
                        None => return Err(error),
                    }
                }
                RetryDecision::RetryAfter(wait) => {
                    hinted += 1;
                    if hinted >= self.max_hinted_attempts.max(1) {
                        return Err(error);
                    }
                    wait
                }
            };
            if !fits_before(deadline, clock.now(), wait) {
                return Err(error);
            }
            on_retry(&error, wait);
            if !wait.is_zero() {
                clock.sleep(wait).await;
            }
        }
    }
}

/// Whether a wait of `wait` starting at `now` ends before `deadline` (always without one).
fn fits_before(deadline: Option<Timestamp>, now: Timestamp, wait: Duration) -> bool {
    deadline.is_none_or(|deadline| clock::add(now, wait) <= deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            jitter: Jitter::None,
            ..RetryPolicy::default()
        }
    }

    /// A clock whose sleeps return at once after moving time forward (no real waiting).
    #[derive(Debug, Default)]
    struct JumpingClock(std::sync::Mutex<Duration>);

    impl clock::Clock for JumpingClock {
        fn now(&self) -> Timestamp {
            let offset = *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            clock::add(Timestamp::UNIX_EPOCH, offset)
        }

        fn sleep(&self, duration: Duration) -> clock::SleepFuture {
            *self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) += duration;
            Box::pin(std::future::ready(()))
        }
    }

    #[test]
    fn delays_double_and_are_capped() {
        let secs: Vec<u64> = policy().delays(7).iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn jitter_stays_between_the_delay_and_twice_it_and_a_seed_reproduces() {
        let seeded = RetryPolicy {
            jitter: Jitter::Seeded(7),
            ..RetryPolicy::default()
        };
        let first = seeded.delays(5);
        assert_eq!(first, seeded.delays(5));
        for (jittered, plain) in first.iter().zip(policy().delays(5)) {
            assert!(*jittered >= plain && *jittered < plain * 2, "{jittered:?}");
        }
    }

    /// Runs `policy` on a clock that jumps forward whenever the retry loop sleeps.
    async fn run_counting(
        policy: RetryPolicy,
        outcomes: Vec<Result<u32, RetryDecision>>,
    ) -> (Result<u32, RetryDecision>, u32, Vec<Duration>) {
        let clock: SharedClock = Arc::new(JumpingClock::default());
        let calls = AtomicU32::new(0);
        let mut waits = Vec::new();
        let outcomes = std::sync::Mutex::new(outcomes.into_iter());
        let result = policy
            .run(
                &clock,
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let next = outcomes
                        .lock()
                        .map(|mut o| o.next())
                        .ok()
                        .flatten()
                        .unwrap_or(Err(RetryDecision::Stop));
                    async move { next }
                },
                |decision: &RetryDecision| *decision,
                |_, wait| waits.push(wait),
            )
            .await;
        (result, calls.load(Ordering::SeqCst), waits)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let (result, calls, waits) = run_counting(
            policy(),
            vec![
                Err(RetryDecision::Backoff),
                Err(RetryDecision::Backoff),
                Ok(7),
            ],
        )
        .await;
        assert_eq!(result, Ok(7));
        assert_eq!(calls, 3);
        assert_eq!(waits, vec![Duration::from_secs(1), Duration::from_secs(2)]);
    }

    #[tokio::test]
    async fn a_permanent_failure_is_not_retried() {
        let (result, calls, _) = run_counting(policy(), vec![Err(RetryDecision::Stop)]).await;
        assert_eq!(result, Err(RetryDecision::Stop));
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let (result, calls, _) =
            run_counting(policy(), vec![Err(RetryDecision::Backoff); 10]).await;
        assert_eq!(result, Err(RetryDecision::Backoff));
        assert_eq!(calls, 5);
    }

    #[tokio::test]
    async fn server_hints_have_their_own_budget_and_their_own_wait() {
        let hint = RetryDecision::RetryAfter(Duration::from_secs(29));
        let (result, calls, waits) = run_counting(
            policy(),
            vec![Err(hint), Err(RetryDecision::Backoff), Err(hint), Ok(1)],
        )
        .await;
        assert_eq!(result, Ok(1));
        assert_eq!(calls, 4);
        assert_eq!(
            waits,
            vec![
                Duration::from_secs(29),
                Duration::from_secs(1),
                Duration::from_secs(29)
            ]
        );
    }

    #[tokio::test]
    async fn no_wait_reaches_past_the_deadline() {
        let bounded = RetryPolicy {
            deadline: Some(Duration::from_secs(5)),
            ..policy()
        };
        // Waits 1 + 2 fit in 5 s; the next (4 s) would end at 7 s, so the error comes back.
        let (result, calls, waits) =
            run_counting(bounded, vec![Err(RetryDecision::Backoff); 10]).await;
        assert_eq!(result, Err(RetryDecision::Backoff));
        assert_eq!(calls, 3);
        assert_eq!(waits.iter().sum::<Duration>(), Duration::from_secs(3));
    }
}
