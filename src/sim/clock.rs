//! Injectable time: one `Clock` trait for production (the system clock) and for the simulated
//! world (a clock that runs faster than real time, or one a test advances by hand).
//!
//! Both the DigitalOcean client's pacer and the simulated DigitalOcean read the same clock, so a
//! burst that takes minutes of cloud time runs in seconds of wall time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

/// A boxed future returned by [`Clock::sleep`] (boxed so the trait stays object-safe).
pub type SleepFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The source of "now" and of waiting, shared by the client and the simulated cloud.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current (possibly simulated) wall-clock time.
    fn now(&self) -> SystemTime;
    /// Waits until `duration` of this clock's time has passed.
    fn sleep(&self, duration: Duration) -> SleepFuture;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// Seconds since the Unix epoch of a clock reading (0 before the epoch).
pub fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The real clock: `SystemTime::now` and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
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
    origin_sim: SystemTime,
    speed: f64,
}

impl ScaledClock {
    /// A clock running `speed` times real time (values below 0.001 are raised to 0.001).
    pub fn new(speed: f64) -> Self {
        Self::starting_at(SystemTime::now(), speed)
    }

    /// A scaled clock whose simulated time starts at `origin`.
    pub fn starting_at(origin: SystemTime, speed: f64) -> Self {
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
    fn now(&self) -> SystemTime {
        let real = self.origin_real.elapsed();
        self.origin_sim + real.mul_f64(self.speed)
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        Box::pin(tokio::time::sleep(duration.div_f64(self.speed)))
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
    now: Mutex<SystemTime>,
    changed: Notify,
}

impl ManualClock {
    /// A manual clock reading `start`.
    pub fn new(start: SystemTime) -> Self {
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
            *now += by;
        }
        self.inner.changed.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self
            .inner
            .now
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn sleep(&self, duration: Duration) -> SleepFuture {
        let inner = Arc::clone(&self.inner);
        let deadline = self.now() + duration;
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
        let elapsed = clock.now().duration_since(start).unwrap_or_default();
        assert!(elapsed >= Duration::from_secs(15), "elapsed {elapsed:?}");
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_after_advance() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH);
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
