//! The one clock of the whole project: a `Clock` trait for production (the system clock) and for
//! the simulated world (a clock that runs faster than real time, or one a test advances by hand).
//!
//! Everything that reads time takes a [`SharedClock`]: the DigitalOcean client's pacer, the
//! simulated DigitalOcean, kube-sim's timestamps, the agent's timers and the operator. At 30x
//! speed a droplet's age in the simulated cloud and its Kubernetes timestamps therefore agree.
//! Time is a [`jiff::Timestamp`], the time type of k8s-openapi 0.29.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use jiff::Timestamp;

use tokio::sync::Notify;

/// A boxed future returned by [`Clock::sleep`] (boxed so the trait stays object-safe).
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of "now" and of waiting, shared by the client and the simulated cloud.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current (possibly simulated) wall-clock time.
    fn now(&self) -> Timestamp;
    /// Waits until `duration` of this clock's time has passed.
    fn sleep(&self, duration: Duration) -> SleepFuture;
    /// How much of this clock's time passes per real second (1 for the system clock). Timers
    /// that only take real durations (kube-runtime's requeue) divide by it.
    fn speed(&self) -> f64 {
        1.0
    }
}

/// The real-time equivalent of `duration` of `clock`'s time (for kube-runtime requeues).
pub fn real_duration(clock: &dyn Clock, duration: Duration) -> Duration {
    let speed = clock.speed();
    if speed.is_finite() && speed > 0.0 {
        duration.div_f64(speed)
    } else {
        duration
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Seconds since the Unix epoch of a clock reading (0 before the epoch).
pub fn unix_seconds(at: Timestamp) -> u64 {
    u64::try_from(at.as_second()).unwrap_or(0)
}

/// `at + by`, saturating at the largest timestamp jiff represents.
pub fn add(at: Timestamp, by: Duration) -> Timestamp {
    let by = jiff::SignedDuration::try_from(by).unwrap_or(jiff::SignedDuration::MAX);
    at.checked_add(by).unwrap_or(Timestamp::MAX)
}

/// How long after `earlier` the instant `later` is (zero when it is not later).
pub fn elapsed(earlier: Timestamp, later: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or(Duration::ZERO)
}

/// The real clock: `Timestamp::now` and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that runs `speed` times faster than real time, starting at the real now.
///
/// At speed 100 one simulated minute passes in 0.6 s of wall time.
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin_real: Instant,
    origin_sim: Timestamp,
    speed: f64,
}

impl ScaledClock {
    /// A clock running `speed` times real time (values below 0.001 are raised to 0.001).
    pub fn new(speed: f64) -> Self {
        Self::starting_at(Timestamp::now(), speed)
    }

    /// A scaled clock whose simulated time starts at `origin`.
    pub fn starting_at(origin: Timestamp, speed: f64) -> Self {
        let speed = if speed.is_finite() {
            speed.max(0.001)
        } else {
            1.0
        };
        Self {
            origin_real: Instant::now(),
            origin_sim: origin,
            speed,
        }
    }

    /// The speed factor (simulated seconds per real second).
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let real = self.origin_real.elapsed();
        add(self.origin_sim, real.mul_f64(self.speed))
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration.div_f64(self.speed)))
    }

    fn speed(&self) -> f64 {
        self.speed
    }
}

/// A clock that moves only when a test calls [`ManualClock::advance`]; sleepers wake when
/// enough time has been advanced.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    now: Mutex<Timestamp>,
    changed: Notify,
}

impl ManualClock {
    /// A manual clock reading `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            inner: Arc::new(ManualInner {
                now: Mutex::new(start),
                changed: Notify::new(),
            }),
        }
    }

    /// Moves time forward by `by` and wakes every sleeper whose deadline has passed.
    pub fn advance(&self, by: Duration) {
        {
            let mut now = self
                .inner
                .now
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *now = add(*now, by);
        }
        self.inner.changed.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .inner
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        let inner = Arc::clone(&self.inner);
        let deadline = add(self.now(), duration);
        Box::pin(async move {
            loop {
                let notified = inner.changed.notified();
                tokio::pin!(notified);
                // Register before checking so an advance between check and await is not lost.
                notified.as_mut().enable();
                let now = *inner.now.lock().unwrap_or_else(PoisonError::into_inner);
                if now >= deadline {
                    return;
                }
                notified.await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster_than_real_time() {
        let clock = ScaledClock::new(1000.0);
        let start = clock.now();
        std::thread::sleep(Duration::from_millis(20));
        let elapsed = elapsed(start, clock.now());
        assert!(elapsed >= Duration::from_secs(15), "elapsed {elapsed:?}");
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_after_advance() {
        let clock = ManualClock::new(Timestamp::UNIX_EPOCH);
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(10)));
        clock.advance(Duration::from_secs(5));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance(Duration::from_secs(5));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper woke")
            .expect("task ok");
        assert_eq!(unix_seconds(clock.now()), 10);
    }
}
