//! The simulated DigitalOcean: an axum server that speaks the API v2 paths, status codes,
//! headers and JSON shapes the operator's client uses, with droplets that boot on the
//! simulated clock, rate limits with the real headers, pagination, list lag and fault
//! injection. Start it with [`serve_simulated_do`].
//!
//! When a droplet becomes active the server hands it to a [`DropletLifecycleHook`]; the
//! simulated world plugs the real droplet agent in there. Agents report usage back with
//! [`SimulatedDo::report_usage`], which feeds the monitoring endpoints.

pub mod config;
mod routes;
pub mod state;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use secrecy::SecretString;

use crate::cloud::models::{Droplet, DropletStatus};
pub use config::{BootDelay, FaultConfig, SimDoConfig, SimRateLimits};
use state::{CloudState, LifecycleEvent};
pub use state::{SimError, SimStats};

/// A droplet that just became active, as the lifecycle hook sees it. Its Debug leaves out the
/// `user_data`, which carries the droplet's enrolment token.
#[derive(Clone, PartialEq, Eq)]
pub struct ActiveDroplet {
    /// DigitalOcean id.
    pub id: u64,
    /// Droplet name.
    pub name: String,
    /// Its own loopback address (127.x.y.z): the agent listens here with the real port.
    pub ipv4: Ipv4Addr,
    /// Its simulated VPC address (not routable; informational).
    pub private_ipv4: Ipv4Addr,
    /// The cloud-init `user_data` the operator sent, verbatim.
    pub user_data: Option<String>,
    /// Tags of the droplet.
    pub tags: Vec<String>,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
}

impl std::fmt::Debug for ActiveDroplet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveDroplet")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ipv4", &self.ipv4)
            .field("private_ipv4", &self.private_ipv4)
            .field(
                "user_data",
                &crate::cloud::models::RedactedUserData(&self.user_data),
            )
            .field("tags", &self.tags)
            .field("region", &self.region)
            .field("size", &self.size)
            .finish()
    }
}

/// Receives droplet lifecycle events of the simulated cloud. Called from the simulator's
/// ticker task outside any lock; implementations should return quickly (spawn for slow work).
pub trait DropletLifecycleHook: Send + Sync {
    /// The droplet became `active` (its address and `user_data` are final).
    fn droplet_active(&self, droplet: &ActiveDroplet);
    /// The droplet was deleted (by the API or by the "lost droplet" fault).
    fn droplet_deleted(&self, id: u64);
}

/// What a droplet's agent reports about its usage; feeds the monitoring endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DropletUsage {
    /// Busy CPU share, 0..=1.
    pub cpu: f64,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// 1-minute load average.
    pub load1: f64,
}

/// Failures of starting the simulated DigitalOcean.
#[derive(Debug, thiserror::Error)]
pub enum SimDoError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

pub(crate) struct Shared {
    pub(crate) state: Mutex<CloudState>,
    pub(crate) token: SecretString,
    pub(crate) clock: clock::SharedClock,
    hook: Mutex<Option<Arc<dyn DropletLifecycleHook>>>,
}

impl Shared {
    pub(crate) fn state(&self) -> MutexGuard<'_, CloudState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the hook about events (outside the world lock).
    pub(crate) fn dispatch(&self, events: Vec<LifecycleEvent>) {
        if events.is_empty() {
            return;
        }
        let hook = self
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(hook) = hook else { return };
        for event in events {
            match event {
                LifecycleEvent::Active(d) => hook.droplet_active(&d),
                LifecycleEvent::Deleted(id) => hook.droplet_deleted(id),
            }
        }
    }

    fn tick(&self) {
        let events = self.state().advance(self.clock.now());
        self.dispatch(events);
    }
}

/// A running simulated DigitalOcean. Dropping it does not stop the server; call
/// [`SimulatedDo::shutdown`].
pub struct SimulatedDo {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    ticker: JoinHandle<()>,
}

impl std::fmt::Debug for SimulatedDo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedDo")
            .field("addr", &self.addr)
            .finish()
    }
}

/// Starts the simulated DigitalOcean on `listen` (port 0 picks one), accepting `token`.
pub async fn serve_simulated_do(
    listen: SocketAddr,
    token: SecretString,
    config: SimDoConfig,
) -> Result<SimulatedDo, SimDoError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| SimDoError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| SimDoError::Bind {
        addr: listen,
        source,
    })?;
    let clock = Arc::clone(&config.clock);
    let hook = config.hook.clone();
    let shared = Arc::new(Shared {
        state: Mutex::new(CloudState::new(config)),
        token,
        clock,
        hook: Mutex::new(hook),
    });
    let (stop, stopped) = watch::channel(false);
    let app = routes::router(Arc::clone(&shared));
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.wait_for(|s| *s).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "simulated DigitalOcean stopped");
        }
    });
    let ticker_shared = Arc::clone(&shared);
    let mut ticker_stop = stopped;
    let ticker = tokio::spawn(async move {
        // Real-time polling keeps the ticker independent of the clock's speed; 10 ms is far
        // below any boot delay that matters.
        let mut interval = tokio::time::interval(Duration::from_millis(10));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => ticker_shared.tick(),
                _ = ticker_stop.wait_for(|s| *s) => return,
            }
        }
    });
    tracing::info!(%addr, "simulated DigitalOcean listening");
    Ok(SimulatedDo {
        addr,
        shared,
        stop,
        server,
        ticker,
    })
}

impl SimulatedDo {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, the base URL for a client (paths start with `/v2/`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Installs (or replaces) the lifecycle hook. Droplets already active are not replayed.
    pub fn set_lifecycle_hook(&self, hook: Arc<dyn DropletLifecycleHook>) {
        *self
            .shared
            .hook
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(hook);
    }

    /// Records usage reported by a droplet's agent; false when the droplet does not exist.
    pub fn report_usage(&self, droplet_id: u64, usage: DropletUsage) -> bool {
        self.shared.state().report_usage(droplet_id, usage)
    }

    /// Replaces the fault switches at run time.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.shared.state().set_faults(faults);
    }

    /// Answers the next `count` requests with 429.
    pub fn force_rate_limited(&self, count: u32) {
        self.shared.state().force_rate_limited(count);
    }

    /// Makes a droplet vanish as if destroyed outside the operator.
    pub fn lose_droplet(&self, droplet_id: u64) -> bool {
        let event = self.shared.state().lose_droplet(droplet_id);
        let found = event.is_some();
        self.shared.dispatch(event.into_iter().collect());
        found
    }

    /// Makes `GET /v2/droplets/{id}` answer 404 for `duration` of simulated time (a transient
    /// 404); false when the droplet does not exist.
    pub fn hide_from_get(&self, droplet_id: u64, duration: Duration) -> bool {
        let until = clock::add(self.shared.clock.now(), duration);
        self.shared.state().hide_from_get(droplet_id, until)
    }

    /// Leaves a droplet out of list responses for `duration` of simulated time (list lag
    /// beyond the configured one); false when the droplet does not exist.
    pub fn hide_from_lists(&self, droplet_id: u64, duration: Duration) -> bool {
        let until = clock::add(self.shared.clock.now(), duration);
        self.shared.state().hide_from_lists(droplet_id, until)
    }

    /// Gives a droplet a `status` value and drops its `image` and `size`, as an odd droplet
    /// of a real account may look; false when it does not exist.
    pub fn make_droplet_odd(&self, droplet_id: u64, status: DropletStatus) -> bool {
        self.shared.state().make_droplet_odd(droplet_id, status)
    }

    /// Every droplet, ignoring list lag.
    pub fn droplets(&self) -> Vec<Droplet> {
        self.shared.state().all_droplets()
    }

    /// Request statistics.
    pub fn stats(&self) -> SimStats {
        self.shared.state().stats()
    }

    /// Stops the server and the ticker and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.ticker.await;
    }
}
