//! Retries with exponential backoff for transient failures (no answer, 429, 502-504).

use super::AgentClientError;
use std::future::Future;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts, the first included.
    pub attempts: u32,
    /// Delay before the second attempt; doubled each time.
    pub base_delay: Duration,
    /// Upper bound of a delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(3),
        }
    }
}

/// Statuses that say "try again later" rather than "your request is wrong".
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            attempts: 1,
            ..Self::default()
        }
    }

    /// Whether attempt number `attempt` (1-based) that failed with `error` should be retried.
    pub fn should_retry(&self, error: &AgentClientError, attempt: u32) -> bool {
        attempt < self.attempts
            && match error {
                AgentClientError::Transport { .. } => true,
                AgentClientError::Status { status, .. } => is_transient_status(*status),
                AgentClientError::Decode { .. }
                | AgentClientError::FingerprintMismatch { .. }
                | AgentClientError::Build(_) => false,
            }
    }

    /// Delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts are used up.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, AgentClientError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AgentClientError>>,
    {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(value) => return Ok(value),
                Err(e) if self.should_retry(&e, attempt) => {
                    tracing::debug!(attempt, error = %e, "transient agent error; retrying");
                    tokio::time::sleep(self.delay(attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn status(status: u16) -> AgentClientError {
        AgentClientError::Status {
            op: "test",
            status,
            code: "x".into(),
            message: String::new(),
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(400));
        assert_eq!(p.delay(3), Duration::from_millis(800));
        assert_eq!(p.delay(10), Duration::from_secs(3));
    }

    #[test]
    fn only_transient_errors_are_retried() {
        let p = fast();
        assert!(p.should_retry(&status(503), 1));
        assert!(p.should_retry(&status(429), 2));
        assert!(!p.should_retry(&status(503), 3), "attempts used up");
        assert!(!p.should_retry(&status(400), 1));
        assert!(!p.should_retry(&status(404), 1));
        assert!(!p.should_retry(&status(401), 1));
        assert!(!p.should_retry(&status(500), 1));
        let t = AgentClientError::Transport {
            op: "x",
            message: String::new(),
            timeout: true,
        };
        assert!(p.should_retry(&t, 1));
    }

    #[tokio::test]
    async fn run_retries_transient_failures_then_succeeds() {
        let calls = AtomicU32::new(0);
        let result = fast()
            .run(|| async {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                if n < 3 { Err(status(503)) } else { Ok(n) }
            })
            .await;
        assert_eq!(result.unwrap(), 3);
    }

    #[tokio::test]
    async fn run_gives_up_on_permanent_errors_at_once() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = fast()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(status(400))
            })
            .await;
        assert_eq!(result.unwrap_err().status(), Some(400));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn run_stops_after_the_last_attempt() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = fast()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(status(502))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
