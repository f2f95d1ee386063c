//! The one owner of DigitalOcean's rate limit on the client side.
//!
//! Every request passes through [`Pacer::acquire`], which spaces requests evenly under the
//! per-minute limit (a GCRA token bucket with a small burst), keeps a sliding hour window of
//! what this client sent, and honours what the server said (`ratelimit-*` headers, 429 waits).
//! Requests wait in FIFO order behind one gate, so a burst of 1,000 creates is paced, not
//! refused; a caller whose deadline the wait would pass fails at once with [`PacerRefused`]
//! (the client's `CloudError::RateLimited { retry_after }`). Once `ratelimit-remaining` runs
//! low (another client may share the token) what is left is spread until the reset. The pacing
//! itself is the pure [`PacerState`].

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::HeaderMap;

use clock::{SharedClock, Timestamp};

/// The longest wait a response header may impose (DigitalOcean resets within an hour).
const MAX_HEADER_WAIT: Duration = Duration::from_secs(3600);

/// Client-side budget, derived from DigitalOcean's limits with a safety margin.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// The server's per-minute (burst) limit; DigitalOcean: 250.
    pub per_minute: u32,
    /// The server's hourly limit; DigitalOcean: 5,000.
    pub per_hour: u32,
    /// Share of each limit kept free, so request latency (arrival later than dispatch) and
    /// clock skew cannot push the server's count over the limit.
    pub safety_margin: f64,
    /// Requests that may go out back to back before even spacing applies.
    pub burst: u32,
    /// Share of the server's hourly limit below which `ratelimit-remaining` is spread evenly
    /// until the reset (other clients may spend the same token's budget).
    pub remaining_reserve: f64,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: 250,
            per_hour: 5_000,
            safety_margin: 0.1,
            burst: 5,
            remaining_reserve: 0.05,
        }
    }
}

impl RateLimitConfig {
    fn minute_budget(&self) -> u32 {
        budget(self.per_minute, self.safety_margin)
    }

    fn hour_budget(&self) -> u32 {
        budget(self.per_hour, self.safety_margin / 2.0)
    }

    /// The `ratelimit-remaining` value at and below which requests are spread until the reset.
    fn remaining_reserve(&self, limit: u32) -> u32 {
        if self.remaining_reserve <= 0.0 {
            return 0;
        }
        let reserve = (f64::from(limit) * self.remaining_reserve.min(1.0)).ceil();
        // The float is in [0, limit].
        (reserve as u32).max(1)
    }

    /// Time between two requests at the paced rate.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(60).div_f64(f64::from(self.minute_budget()))
    }
}

fn budget(limit: u32, margin: f64) -> u32 {
    let kept = (f64::from(limit) * (1.0 - margin.clamp(0.0, 0.9))).floor();
    // The float is in [0, limit], so the cast cannot truncate meaningfully.
    (kept as u32).max(1)
}

/// The three rate-limit headers of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitHeaders {
    /// `ratelimit-limit`.
    pub limit: Option<u32>,
    /// `ratelimit-remaining`.
    pub remaining: Option<u32>,
    /// `ratelimit-reset`, Unix seconds.
    pub reset: Option<u64>,
    /// `retry-after` in seconds (429 from the burst limit only).
    pub retry_after: Option<u64>,
}

impl RateLimitHeaders {
    /// Reads the headers (names are case-insensitive in `HeaderMap`).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        fn number<T: std::str::FromStr>(headers: &HeaderMap, name: &str) -> Option<T> {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        }
        Self {
            limit: number(headers, "ratelimit-limit"),
            remaining: number(headers, "ratelimit-remaining"),
            reset: number(headers, "ratelimit-reset"),
            retry_after: number(headers, "retry-after"),
        }
    }
}

/// The pacer's bookkeeping (pure: time is passed in).
#[derive(Debug, Default)]
pub struct PacerState {
    /// Theoretical arrival time of the next request (GCRA).
    tat: Option<Timestamp>,
    /// Dispatch times within the last hour.
    sent: VecDeque<Timestamp>,
    /// No request before this instant (after a 429, an exhausted budget, or a low
    /// `ratelimit-remaining` that has to last until the reset).
    blocked_until: Option<Timestamp>,
    /// How many times slower than the configured rate to go: doubled by every 429 (the server
    /// is stricter than the client believes, e.g. another client shares the token), eased back
    /// by every success. 1.0 (or the default 0.0) is the configured rate.
    slowdown: f64,
}

/// The largest slowdown a run of 429s can impose (about 7 requests a minute at 250).
const MAX_SLOWDOWN: f64 = 32.0;

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

impl PacerState {
    /// How long to wait before the next request may go out at `now`; `None` means go now.
    /// Nothing is recorded: call [`PacerState::record_sent`] when the request goes.
    pub fn wait_needed(&mut self, now: Timestamp, config: &RateLimitConfig) -> Option<Duration> {
        if let Some(until) = self.blocked_until {
            if until > now {
                return Some(clock::elapsed(now, until));
            }
            self.blocked_until = None;
        }
        while let Some(oldest) = self.sent.front() {
            if clock::elapsed(*oldest, now) >= HOUR {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        let hour_budget = config.hour_budget() as usize;
        if self.sent.len() >= hour_budget {
            let index = self.sent.len() - hour_budget;
            let frees_at = clock::add(self.sent[index], HOUR);
            return Some(clock::elapsed(now, frees_at).max(Duration::from_millis(1)));
        }
        let interval = self.interval(config);
        let tat = self.tat.unwrap_or(now).max(now);
        // Slowed down, no bursts: requests go one interval apart.
        let burst = if self.slowdown() > 1.0 {
            1
        } else {
            config.burst
        };
        let allowance = interval.saturating_mul(burst.saturating_sub(1));
        let ahead = clock::elapsed(now, tat);
        if ahead > allowance {
            return Some(ahead - allowance);
        }
        None
    }

    /// Counts a request sent at `now`.
    pub fn record_sent(&mut self, now: Timestamp, config: &RateLimitConfig) {
        let tat = self.tat.unwrap_or(now).max(now);
        self.tat = Some(clock::add(tat, self.interval(config)));
        self.sent.push_back(now);
    }

    /// The current slowdown factor (1.0 = the configured rate).
    pub fn slowdown(&self) -> f64 {
        self.slowdown.max(1.0)
    }

    fn interval(&self, config: &RateLimitConfig) -> Duration {
        config.interval().mul_f64(self.slowdown())
    }

    /// [`PacerState::wait_needed`], recording the request when it may go now.
    pub fn delay_before_next(
        &mut self,
        now: Timestamp,
        config: &RateLimitConfig,
    ) -> Option<Duration> {
        let wait = self.wait_needed(now, config);
        if wait.is_none() {
            self.record_sent(now, config);
        }
        wait
    }

    /// Takes in the headers of a response received at `now`.
    pub fn observe(
        &mut self,
        headers: &RateLimitHeaders,
        status: u16,
        now: Timestamp,
        config: &RateLimitConfig,
    ) {
        // Header values are untrusted: an absurd reset or retry-after must neither overflow the
        // clock nor park the client for ages, so both are capped at an hour from now.
        let latest = clock::add(now, MAX_HEADER_WAIT);
        let reset_at = headers.reset.map(|secs| {
            i64::try_from(secs)
                .ok()
                .and_then(|secs| Timestamp::from_second(secs).ok())
                .map_or(latest, |at| at.min(latest))
        });
        if status == 429 {
            let until = match (headers.retry_after, reset_at) {
                (Some(secs), _) => {
                    clock::add(now, Duration::from_secs(secs.max(1)).min(MAX_HEADER_WAIT))
                }
                (None, Some(reset)) if reset > now => reset,
                // No hint at all: a minute clears any burst window.
                _ => clock::add(now, MINUTE),
            };
            self.block_until(until);
            self.slowdown = (self.slowdown() * 2.0).min(MAX_SLOWDOWN);
            return;
        }
        if (200..300).contains(&status) {
            // Additive ease-back: about 35 successes halve a slowdown.
            self.slowdown = (self.slowdown() * 0.98).max(1.0);
        }
        match (headers.remaining, reset_at) {
            (Some(0), reset) => {
                // Exhausted without a 429 yet: hold back until the reset, but never for more
                // than a minute (remaining also reads 0 when only the burst window is full).
                let until = reset
                    .filter(|r| *r > now)
                    .map_or(clock::add(now, MINUTE), |r| r.min(clock::add(now, MINUTE)));
                self.block_until(until);
            }
            (Some(remaining), Some(reset)) if reset > now => {
                // Other clients may share the token: once what is left runs low, spread it over
                // the time until the reset instead of spending it and meeting a 429.
                let limit = headers.limit.unwrap_or(config.per_hour).max(1);
                if remaining > 0 && remaining <= config.remaining_reserve(limit) {
                    let spacing = clock::elapsed(now, reset)
                        .div_f64(f64::from(remaining))
                        .min(MINUTE);
                    self.block_until(clock::add(now, spacing));
                }
            }
            _ => {}
        }
    }

    fn block_until(&mut self, until: Timestamp) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }
}

/// The pacer refused a wait that would pass the caller's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the rate limit allows the next request in {}s, after the deadline", retry_after.as_secs())]
pub struct PacerRefused {
    /// How long until a request could go out (at least the wait known now).
    pub retry_after: Duration,
}

/// The shared pacer: one FIFO gate and the state behind it.
#[derive(Debug)]
pub struct Pacer {
    clock: SharedClock,
    config: RateLimitConfig,
    gate: tokio::sync::Mutex<()>,
    state: Mutex<PacerState>,
}

impl Pacer {
    /// A pacer reading time from `clock`.
    pub fn new(clock: SharedClock, config: RateLimitConfig) -> Self {
        Self {
            clock,
            config,
            gate: tokio::sync::Mutex::new(()),
            state: Mutex::new(PacerState::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PacerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a request may be sent and counts it as sent, or fails at once with the
    /// known wait when that wait (or the queue in front) would pass `deadline`. The gate is
    /// only held for waits that end before the caller's deadline, so a long block (an hourly
    /// reset) makes every caller fail fast instead of queueing behind a sleeping one.
    pub async fn acquire(&self, deadline: Timestamp) -> Result<(), PacerRefused> {
        let budget = clock::elapsed(self.clock.now(), deadline);
        // tokio's mutex is fair, so waiting callers go in arrival order.
        let turn = tokio::select! {
            turn = self.gate.lock() => turn,
            () = self.clock.sleep(budget) => {
                let retry_after = self
                    .state()
                    .wait_needed(self.clock.now(), &self.config)
                    .unwrap_or_else(|| self.config.interval());
                return Err(PacerRefused { retry_after });
            }
        };
        loop {
            let now = self.clock.now();
            let wait = {
                let mut state = self.state();
                let wait = state.wait_needed(now, &self.config);
                if wait.is_none() {
                    state.record_sent(now, &self.config);
                }
                wait
            };
            match wait {
                None => {
                    drop(turn);
                    return Ok(());
                }
                Some(wait) if clock::add(now, wait) > deadline => {
                    return Err(PacerRefused { retry_after: wait });
                }
                Some(wait) => self.clock.sleep(wait).await,
            }
        }
    }

    /// Takes in the rate-limit headers of a response.
    pub fn observe(&self, headers: &RateLimitHeaders, status: u16) {
        let now = self.clock.now();
        self.state().observe(headers, status, now, &self.config);
    }

    /// The wait the pacer knows of now (zero when a request could go at once).
    pub fn current_wait(&self) -> Duration {
        self.state()
            .wait_needed(self.clock.now(), &self.config)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> Timestamp {
        clock::add(
            Timestamp::UNIX_EPOCH,
            Duration::from_secs_f64(1_000_000.0 + secs),
        )
    }

    /// Simulates a caller that sends as soon as allowed and counts sends per sliding minute.
    #[test]
    fn paced_sends_never_exceed_the_minute_limit() {
        let config = RateLimitConfig::default();
        let mut state = PacerState::default();
        let mut now = at(0.0);
        let mut sent = Vec::new();
        while sent.len() < 1_000 {
            match state.delay_before_next(now, &config) {
                None => sent.push(now),
                Some(wait) => now = clock::add(now, wait),
            }
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[..=i]
                .iter()
                .filter(|s| clock::elapsed(**s, *t) < Duration::from_secs(60))
                .count();
            assert!(in_window <= 230, "{in_window} requests in one minute");
        }
    }

    #[test]
    fn a_429_blocks_for_retry_after() {
        let config = RateLimitConfig::default();
        let mut state = PacerState::default();
        let headers = RateLimitHeaders {
            retry_after: Some(29),
            ..Default::default()
        };
        state.observe(&headers, 429, at(0.0), &config);
        assert_eq!(
            state.delay_before_next(at(1.0), &config),
            Some(Duration::from_secs(28))
        );
        assert_eq!(state.delay_before_next(at(29.0), &config), None);
    }

    #[test]
    fn absurd_headers_neither_panic_nor_park_the_client() {
        let config = RateLimitConfig::default();
        let mut state = PacerState::default();
        let headers = RateLimitHeaders {
            remaining: Some(0),
            reset: Some(u64::MAX),
            retry_after: Some(u64::MAX),
            ..Default::default()
        };
        state.observe(&headers, 429, at(0.0), &config);
        let wait = state
            .delay_before_next(at(0.0), &config)
            .unwrap_or_default();
        assert!(wait <= MAX_HEADER_WAIT, "{wait:?}");
        let mut state = PacerState::default();
        state.observe(&headers, 200, at(0.0), &config);
        let wait = state
            .delay_before_next(at(0.0), &config)
            .unwrap_or_default();
        assert!(wait <= MAX_HEADER_WAIT, "{wait:?}");
    }

    #[test]
    fn hourly_429_waits_for_reset() {
        let config = RateLimitConfig::default();
        let mut state = PacerState::default();
        let reset = 1_000_000 + 600;
        let headers = RateLimitHeaders {
            remaining: Some(0),
            reset: Some(reset),
            ..Default::default()
        };
        state.observe(&headers, 429, at(0.0), &config);
        assert_eq!(
            state.delay_before_next(at(0.0), &config),
            Some(Duration::from_secs(600))
        );
    }

    #[test]
    fn hour_budget_is_respected() {
        let config = RateLimitConfig {
            per_minute: 10_000,
            per_hour: 100,
            safety_margin: 0.0,
            burst: 1000,
            remaining_reserve: 0.05,
        };
        let mut state = PacerState::default();
        for _ in 0..100 {
            assert_eq!(state.delay_before_next(at(0.0), &config), None);
        }
        assert_eq!(
            state.delay_before_next(at(10.0), &config),
            Some(Duration::from_secs(3590))
        );
    }

    #[test]
    fn a_low_remaining_is_spread_until_the_reset() {
        let config = RateLimitConfig::default();
        let mut state = PacerState::default();
        // 100 of 5,000 left with 1,000 s to the reset: one request every 10 s, no 429 needed.
        let headers = RateLimitHeaders {
            limit: Some(5_000),
            remaining: Some(100),
            reset: Some(1_000_000 + 1_000),
            retry_after: None,
        };
        state.observe(&headers, 200, at(0.0), &config);
        assert_eq!(
            state.delay_before_next(at(0.0), &config),
            Some(Duration::from_secs(10))
        );
        // Plenty left: no spacing beyond the minute budget.
        let mut relaxed = PacerState::default();
        let plenty = RateLimitHeaders {
            remaining: Some(4_000),
            ..headers
        };
        relaxed.observe(&plenty, 200, at(0.0), &config);
        assert_eq!(relaxed.delay_before_next(at(0.0), &config), None);
    }

    fn manual_pacer() -> (clock::ManualClock, Pacer) {
        let manual = clock::ManualClock::new(at(0.0));
        let pacer = Pacer::new(
            std::sync::Arc::new(manual.clone()),
            RateLimitConfig::default(),
        );
        (manual, pacer)
    }

    #[tokio::test]
    async fn a_wait_past_the_deadline_fails_at_once_with_the_wait() {
        let (_manual, pacer) = manual_pacer();
        // An hourly 429: blocked until the reset an hour away.
        pacer.observe(
            &RateLimitHeaders {
                remaining: Some(0),
                reset: Some(1_000_000 + 3_600),
                ..Default::default()
            },
            429,
        );
        let deadline = clock::add(at(0.0), Duration::from_secs(30));
        let refused = tokio::time::timeout(Duration::from_secs(5), pacer.acquire(deadline))
            .await
            .expect("the pacer answers without waiting for the reset");
        assert_eq!(
            refused,
            Err(PacerRefused {
                retry_after: Duration::from_secs(3_600)
            })
        );
    }

    #[tokio::test]
    async fn a_caller_queued_behind_a_sleeper_leaves_at_its_deadline() {
        let (manual, pacer) = manual_pacer();
        let pacer = std::sync::Arc::new(pacer);
        // Blocked for 50 s; the first caller may wait that long, the second only 10 s.
        pacer.observe(
            &RateLimitHeaders {
                retry_after: Some(50),
                ..Default::default()
            },
            429,
        );
        let first = tokio::spawn({
            let pacer = std::sync::Arc::clone(&pacer);
            async move {
                pacer
                    .acquire(clock::add(at(0.0), Duration::from_secs(60)))
                    .await
            }
        });
        // Let the first caller take the gate and start sleeping.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let second = tokio::spawn({
            let pacer = std::sync::Arc::clone(&pacer);
            async move {
                pacer
                    .acquire(clock::add(at(0.0), Duration::from_secs(10)))
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        manual.advance(Duration::from_secs(10));
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the second caller is not held past its deadline")
            .expect("task");
        assert!(
            matches!(second, Err(PacerRefused { retry_after }) if retry_after <= Duration::from_secs(40))
        );
        manual.advance(Duration::from_secs(40));
        let first = tokio::time::timeout(Duration::from_secs(5), first)
            .await
            .expect("the first caller goes after the block")
            .expect("task");
        assert_eq!(first, Ok(()));
    }

    #[test]
    fn a_429_halves_the_rate_and_successes_restore_it() {
        let config = RateLimitConfig::default();
        let mut state = PacerState::default();
        let refused = RateLimitHeaders {
            retry_after: Some(1),
            ..Default::default()
        };
        state.observe(&refused, 429, at(0.0), &config);
        state.observe(&refused, 429, at(0.0), &config);
        assert_eq!(state.slowdown(), 4.0);
        // After the block, requests go four intervals apart, without a burst.
        assert_eq!(state.delay_before_next(at(1.0), &config), None);
        let wait = state.delay_before_next(at(1.0), &config).expect("spaced");
        assert_eq!(wait, config.interval() * 4);
        for _ in 0..200 {
            state.observe(&RateLimitHeaders::default(), 200, at(2.0), &config);
        }
        assert_eq!(state.slowdown(), 1.0);
    }

    #[test]
    fn headers_are_parsed_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert("RateLimit-Limit", "5000".parse().expect("value"));
        headers.insert("ratelimit-remaining", "4999".parse().expect("value"));
        headers.insert("rateLimit-reset", "1444931833".parse().expect("value"));
        let parsed = RateLimitHeaders::from_headers(&headers);
        assert_eq!(parsed.limit, Some(5000));
        assert_eq!(parsed.remaining, Some(4999));
        assert_eq!(parsed.reset, Some(1444931833));
        assert_eq!(parsed.retry_after, None);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the arrival pattern, paced sends never exceed the minute budget plus burst.
        #[test]
        fn no_minute_ever_exceeds_the_budget(gaps_ms in proptest::collection::vec(0u64..2_000, 1..600)) {
            let config = RateLimitConfig::default();
            let mut state = PacerState::default();
            let mut now = clock::add(Timestamp::UNIX_EPOCH, Duration::from_secs(1_000_000));
            let mut sent: Vec<Timestamp> = Vec::new();
            for gap in gaps_ms {
                now = clock::add(now, Duration::from_millis(gap));
                loop {
                    match state.delay_before_next(now, &config) {
                        None => { sent.push(now); break; }
                        Some(wait) => now = clock::add(now, wait),
                    }
                }
                let in_minute = sent
                    .iter()
                    .filter(|s| clock::elapsed(**s, now) < Duration::from_secs(60))
                    .count();
                prop_assert!(in_minute <= 230, "{} in a minute", in_minute);
            }
        }
    }
}
