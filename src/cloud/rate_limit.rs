//! The one owner of DigitalOcean's rate limit on the client side.
//!
//! Every request passes through [`Pacer::acquire`], which spaces requests evenly under the
//! per-minute limit (a GCRA token bucket with a small burst), keeps a sliding hour window of
//! what this client sent, and honours what the server said (`ratelimit-*` headers, 429 waits).
//! Requests wait in FIFO order behind one gate, so a burst of 1,000 creates is paced, not
//! refused. The pacing itself is the pure [`PacerState::delay_before_next`].

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use http::HeaderMap;

use clock::SharedClock;

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
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: 250,
            per_hour: 5_000,
            safety_margin: 0.1,
            burst: 5,
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
    tat: Option<SystemTime>,
    /// Dispatch times within the last hour.
    sent: VecDeque<SystemTime>,
    /// No request before this instant (after a 429 or an exhausted budget).
    blocked_until: Option<SystemTime>,
}

const HOUR: Duration = Duration::from_secs(3600);

impl PacerState {
    /// How long to wait before the next request may go out at `now`; `None` means go now
    /// (and the request is then recorded as sent).
    pub fn delay_before_next(
        &mut self,
        now: SystemTime,
        config: &RateLimitConfig,
    ) -> Option<Duration> {
        if let Some(until) = self.blocked_until {
            if let Ok(wait) = until.duration_since(now)
                && !wait.is_zero()
            {
                return Some(wait);
            }
            self.blocked_until = None;
        }
        while let Some(oldest) = self.sent.front() {
            if now.duration_since(*oldest).unwrap_or_default() >= HOUR {
                self.sent.pop_front();
            } else {
                break;
            }
        }
        let hour_budget = config.hour_budget() as usize;
        if self.sent.len() >= hour_budget {
            let index = self.sent.len() - hour_budget;
            let frees_at = self.sent[index] + HOUR;
            return Some(
                frees_at
                    .duration_since(now)
                    .unwrap_or(Duration::from_millis(1)),
            );
        }
        let interval = config.interval();
        let tat = self.tat.unwrap_or(now).max(now);
        let allowance = interval.saturating_mul(config.burst.saturating_sub(1));
        let ahead = tat.duration_since(now).unwrap_or_default();
        if ahead > allowance {
            return Some(ahead - allowance);
        }
        self.tat = Some(tat + interval);
        self.sent.push_back(now);
        None
    }

    /// Takes in the headers of a response received at `now`.
    pub fn observe(&mut self, headers: &RateLimitHeaders, status: u16, now: SystemTime) {
        // Header values are untrusted: an absurd reset or retry-after must neither overflow the
        // clock nor park the client for ages, so both are capped at an hour from now.
        let latest = now + MAX_HEADER_WAIT;
        let reset_at = headers.reset.map(|secs| {
            SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(secs))
                .map_or(latest, |at| at.min(latest))
        });
        if status == 429 {
            let until = match (headers.retry_after, reset_at) {
                (Some(secs), _) => now + Duration::from_secs(secs.max(1)).min(MAX_HEADER_WAIT),
                (None, Some(reset)) if reset > now => reset,
                // No hint at all: a minute clears any burst window.
                _ => now + Duration::from_secs(60),
            };
            self.block_until(until);
        } else if headers.remaining == Some(0) {
            // Exhausted without a 429 yet: hold back until the reset, but never for more than a
            // minute (remaining also reads 0 when only the burst window is full).
            let until = reset_at
                .filter(|r| *r > now)
                .map_or(now + Duration::from_secs(60), |r| {
                    r.min(now + Duration::from_secs(60))
                });
            self.block_until(until);
        }
    }

    fn block_until(&mut self, until: SystemTime) {
        self.blocked_until = Some(self.blocked_until.map_or(until, |b| b.max(until)));
    }
}

/// The shared pacer: one gate (FIFO) and the state behind it.
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

    /// Waits until a request may be sent, then counts it as sent.
    pub async fn acquire(&self) {
        // tokio's mutex is fair, so waiting callers go in arrival order.
        let _turn = self.gate.lock().await;
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.delay_before_next(SystemTime::from(self.clock.now()), &self.config)
            };
            match wait {
                None => return,
                Some(wait) => self.clock.sleep(wait).await,
            }
        }
    }

    /// Takes in the rate-limit headers of a response.
    pub fn observe(&self, headers: &RateLimitHeaders, status: u16) {
        let now = SystemTime::from(self.clock.now());
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(headers, status, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: f64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs_f64(1_000_000.0 + secs)
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
                Some(wait) => now += wait,
            }
        }
        for (i, t) in sent.iter().enumerate() {
            let in_window = sent[..=i]
                .iter()
                .filter(|s| t.duration_since(**s).unwrap_or_default() < Duration::from_secs(60))
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
        state.observe(&headers, 429, at(0.0));
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
        state.observe(&headers, 429, at(0.0));
        let wait = state
            .delay_before_next(at(0.0), &config)
            .unwrap_or_default();
        assert!(wait <= MAX_HEADER_WAIT, "{wait:?}");
        let mut state = PacerState::default();
        state.observe(&headers, 200, at(0.0));
        let wait = state
            .delay_before_next(at(0.0), &config)
            .unwrap_or_default();
        assert!(wait <= MAX_HEADER_WAIT, "{wait:?}");
    }

    #[test]
    fn hourly_429_waits_for_reset() {
        let mut state = PacerState::default();
        let reset = 1_000_000 + 600;
        let headers = RateLimitHeaders {
            remaining: Some(0),
            reset: Some(reset),
            ..Default::default()
        };
        state.observe(&headers, 429, at(0.0));
        assert_eq!(
            state.delay_before_next(at(0.0), &RateLimitConfig::default()),
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
            let mut now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            let mut sent: Vec<SystemTime> = Vec::new();
            for gap in gaps_ms {
                now += Duration::from_millis(gap);
                loop {
                    match state.delay_before_next(now, &config) {
                        None => { sent.push(now); break; }
                        Some(wait) => now += wait,
                    }
                }
                let in_minute = sent
                    .iter()
                    .filter(|s| now.duration_since(**s).unwrap_or_default() < Duration::from_secs(60))
                    .count();
                prop_assert!(in_minute <= 230, "{} in a minute", in_minute);
            }
        }
    }
}
