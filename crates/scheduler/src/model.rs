//! The scheduler's own domain model: resources, droplets, pools, sizes and pending deployments.
//!
//! Nothing here knows about Kubernetes; the CRD types are converted into these at the edge
//! (`crate::cli::plan` and the controllers), so the scheduler builds and tests on its own.

use std::collections::BTreeMap;
use std::time::Duration;

/// One mebibyte in bytes.
pub const MIB: u64 = 1024 * 1024;
/// One gibibyte in bytes.
pub const GIB: u64 = 1024 * MIB;

/// An amount of every resource the scheduler tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Resources {
    /// Memory in bytes.
    pub memory: u64,
    /// CPU in millicores (1000 = one vCPU).
    pub cpu_millis: u64,
    /// Disk in bytes.
    pub disk: u64,
}

impl Resources {
    /// Nothing of anything.
    pub const ZERO: Resources = Resources {
        memory: 0,
        cpu_millis: 0,
        disk: 0,
    };

    /// Builds an amount from its three parts.
    pub const fn new(memory: u64, cpu_millis: u64, disk: u64) -> Self {
        Resources {
            memory,
            cpu_millis,
            disk,
        }
    }

    /// Component-wise sum, saturating so a corrupt input cannot wrap around.
    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            memory: self.memory.saturating_add(other.memory),
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            disk: self.disk.saturating_add(other.disk),
        }
    }

    /// Component-wise difference, floored at zero.
    pub fn minus(self, other: Resources) -> Resources {
        Resources {
            memory: self.memory.saturating_sub(other.memory),
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            disk: self.disk.saturating_sub(other.disk),
        }
    }

    /// True when every component of `self` is at most the same component of `capacity`.
    pub fn fits_in(&self, capacity: &Resources) -> bool {
        self.memory <= capacity.memory
            && self.cpu_millis <= capacity.cpu_millis
            && self.disk <= capacity.disk
    }

    /// The first resource of `self` that exceeds `capacity`, for explanations.
    pub fn first_shortfall(&self, capacity: &Resources) -> Option<ResourceKind> {
        if self.memory > capacity.memory {
            Some(ResourceKind::Memory)
        } else if self.cpu_millis > capacity.cpu_millis {
            Some(ResourceKind::Cpu)
        } else if self.disk > capacity.disk {
            Some(ResourceKind::Disk)
        } else {
            None
        }
    }

    /// Utilization of each resource against `capacity` (0 when the capacity is zero and
    /// nothing is used, infinity when something is used of a zero capacity).
    pub fn shares_of(&self, capacity: &Resources) -> [f64; 3] {
        [
            share(self.memory, capacity.memory),
            share(self.cpu_millis, capacity.cpu_millis),
            share(self.disk, capacity.disk),
        ]
    }

    /// The largest of the three shares: the resource that limits packing.
    pub fn dominant_share_of(&self, capacity: &Resources) -> f64 {
        let [m, c, d] = self.shares_of(capacity);
        m.max(c).max(d)
    }

    /// True when nothing is requested.
    pub fn is_zero(&self) -> bool {
        *self == Resources::ZERO
    }
}

fn share(used: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        if used == 0 { 0.0 } else { f64::INFINITY }
    } else {
        used as f64 / capacity as f64
    }
}

/// The resources the scheduler reasons about, named in explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceKind {
    /// Memory bytes.
    Memory,
    /// CPU millicores.
    Cpu,
    /// Disk bytes.
    Disk,
}

impl std::fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResourceKind::Memory => "memory",
            ResourceKind::Cpu => "cpu",
            ResourceKind::Disk => "disk",
        })
    }
}

/// The weights of the five scoring factors; any scale, they are normalised by their sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Fit of the request into the droplet (toward target utilization).
    pub resources: f64,
    /// Observed load on the droplet.
    pub load: f64,
    /// Distance between the droplet's region and the preferred location.
    pub latency: f64,
    /// Price per allocatable unit.
    pub cost: f64,
    /// Heartbeat freshness and recent failures.
    pub health: f64,
}

impl Default for Weights {
    /// The original product's strategy: 40 / 25 / 15 / 10 / 10.
    fn default() -> Self {
        Weights {
            resources: 40.0,
            load: 25.0,
            latency: 15.0,
            cost: 10.0,
            health: 10.0,
        }
    }
}

impl Weights {
    /// Sum of the weights; zero or negative sums are rejected by [`Weights::is_usable`].
    pub fn total(&self) -> f64 {
        self.resources + self.load + self.latency + self.cost + self.health
    }

    /// True when every weight is finite and non-negative and at least one is positive.
    pub fn is_usable(&self) -> bool {
        let all = [
            self.resources,
            self.load,
            self.latency,
            self.cost,
            self.health,
        ];
        all.iter().all(|w| w.is_finite() && *w >= 0.0) && self.total() > 0.0
    }
}

/// A point on the globe used for the latency factor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Location {
    /// Latitude in degrees.
    pub latitude: f64,
    /// Longitude in degrees.
    pub longitude: f64,
}

impl Location {
    /// Great-circle distance in kilometres (haversine on a 6,371 km sphere).
    pub fn distance_km(&self, other: &Location) -> f64 {
        const EARTH_RADIUS_KM: f64 = 6371.0;
        let (lat1, lat2) = (self.latitude.to_radians(), other.latitude.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.longitude - self.longitude).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
    }
}

/// A region a droplet can live in, with its location for the latency factor.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// DigitalOcean slug, e.g. `nyc3`.
    pub slug: String,
    /// Where the data centre is.
    pub location: Location,
}

/// A droplet size that can be bought, with its raw capacity and price.
#[derive(Debug, Clone, PartialEq)]
pub struct SizeOffer {
    /// DigitalOcean slug, e.g. `s-2vcpu-4gb`.
    pub slug: String,
    /// Raw capacity before the system reserve.
    pub capacity: Resources,
    /// Price per hour in USD.
    pub hourly_usd: f64,
    /// Price per month in USD.
    pub monthly_usd: f64,
    /// Regions where the size can be created.
    pub regions: Vec<String>,
}

impl SizeOffer {
    /// What deployments may use on a droplet of this size once `reserve` is set aside.
    pub fn allocatable(&self, reserve: &Resources) -> Resources {
        self.capacity.minus(*reserve)
    }

    /// True when the size can be created in `region`.
    pub fn available_in(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }
}

/// The part of a droplet set aside for the OS, the container engine and the agent.
pub const DEFAULT_SYSTEM_RESERVE: Resources = Resources::new(512 * MIB, 250, 5 * GIB);

/// Droplet lifecycle as far as the scheduler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropletPhase {
    /// Accepting work.
    Ready,
    /// Being created or enrolled; will accept work later.
    Provisioning,
    /// Up but not accepting work (agent unreachable, failing checks).
    NotReady,
    /// Deployments are being moved off; no new work.
    Draining,
    /// Being deleted.
    Terminating,
}

/// A deployment running on a droplet, or recorded as placed there.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedDeployment {
    /// `namespace/name` of the MCPDeployment.
    pub key: String,
    /// What it requested.
    pub request: Resources,
    /// True when the droplet's agent reports it running there; false when only the
    /// deployment's recorded placement names the droplet (decided, not yet reported).
    pub reported: bool,
    /// Annotated `mcp.agentopia.io/do-not-disrupt`: never moved by consolidation.
    pub do_not_disrupt: bool,
    /// Pinned to this droplet by name: it cannot move either.
    pub pinned: bool,
}

/// One droplet as the scheduler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetDroplet {
    /// Namespace of the Droplet object; deployments only use droplets of their namespace.
    pub namespace: String,
    /// Name of the Droplet object (unique within its namespace).
    pub name: String,
    /// Pool it belongs to, as `namespace/name` (empty for droplets outside any pool).
    pub pool: String,
    /// Region slug.
    pub region: String,
    /// Size slug.
    pub size: String,
    /// Labels matched by deployment selectors.
    pub labels: BTreeMap<String, String>,
    /// Size minus system reserve.
    pub allocatable: Resources,
    /// Usage the droplet reports that none of `deployments` accounts for (containers of
    /// deployments the caller does not know, or a total without the list). Together with
    /// `deployments` it is the one record of what the droplet holds: see [`FleetDroplet::used`].
    pub unlisted_usage: Resources,
    /// The deployments placed here: reported by the agent, or recorded as placed here.
    pub deployments: Vec<PlacedDeployment>,
    /// Lifecycle phase.
    pub phase: DropletPhase,
    /// Health as judged by the agent checks.
    pub healthy: bool,
    /// Marked unschedulable by a person.
    pub cordoned: bool,
    /// Observed usage, 0..1 of capacity, the highest of cpu and memory; `None` before the
    /// first sample.
    pub observed_load: Option<f64>,
    /// Age of the last agent heartbeat; `None` when none has arrived yet.
    pub heartbeat_age: Option<Duration>,
    /// Agent failures in the recent window.
    pub recent_failures: u32,
    /// Price per hour in USD.
    pub hourly_usd: f64,
    /// Price per month in USD.
    pub monthly_usd: f64,
    /// How long ago a deployment was last added to or removed from the droplet (drives
    /// consolidate-after); `None` when unknown, which counts as "recent".
    pub since_last_change: Option<Duration>,
    /// Annotated `mcp.agentopia.io/do-not-disrupt` itself: consolidation never touches it.
    pub do_not_disrupt: bool,
}

impl FleetDroplet {
    /// What the droplet holds: its deployments' requests plus the unlisted usage.
    pub fn used(&self) -> Resources {
        self.deployments
            .iter()
            .fold(self.unlisted_usage, |sum, d| sum.plus(d.request))
    }

    /// True when the droplet is in a state that accepts new deployments.
    pub fn accepts_work(&self) -> bool {
        self.phase == DropletPhase::Ready && self.healthy && !self.cordoned
    }
}

/// Consolidation policy of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsolidationPolicy {
    /// Never consolidate.
    Never,
    /// Only delete empty droplets.
    WhenEmpty,
    /// Delete empty droplets and move deployments off under-used ones.
    WhenUnderutilized,
}

/// Why a droplet is disrupted; budgets can apply to some reasons only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DisruptionReason {
    /// The droplet runs nothing.
    Empty,
    /// The droplet's deployments fit elsewhere or on a cheaper droplet.
    Underutilized,
    /// The droplet no longer matches its pool.
    Drifted,
}

impl std::fmt::Display for DisruptionReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DisruptionReason::Empty => "Empty",
            DisruptionReason::Underutilized => "Underutilized",
            DisruptionReason::Drifted => "Drifted",
        })
    }
}

/// How many droplets a budget lets be disrupted at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BudgetLimit {
    /// An absolute number of droplets.
    Count(u32),
    /// A percentage of the pool's droplets, rounded up.
    Percent(u32),
}

/// A disruption budget: at most `limit` droplets disrupted, optionally only during a cron
/// window and only for some reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Count or percentage.
    pub limit: BudgetLimit,
    /// Cron schedule (minute hour day-of-month month day-of-week) when the window opens;
    /// `None` means always active.
    pub schedule: Option<String>,
    /// How long the window stays open after each cron match.
    pub duration: Duration,
    /// Reasons the budget applies to; empty means all.
    pub reasons: Vec<DisruptionReason>,
}

/// A pool's disruption settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Disruption {
    /// What may be consolidated.
    pub policy: ConsolidationPolicy,
    /// How long a droplet must go unchanged before it is a candidate.
    pub consolidate_after: Duration,
    /// Budgets; empty means the default of 10 %.
    pub budgets: Vec<Budget>,
    /// A move is taken only when saved share of pool cost >= ratio x disrupted share.
    pub savings_ratio: f64,
}

impl Default for Disruption {
    fn default() -> Self {
        Disruption {
            policy: ConsolidationPolicy::WhenUnderutilized,
            consolidate_after: Duration::from_secs(300),
            budgets: Vec::new(),
            savings_ratio: 0.5,
        }
    }
}

/// Pool limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PoolLimits {
    /// Most droplets the pool may own.
    pub max_droplets: Option<u32>,
    /// Most the pool's droplets may cost per month, in USD.
    pub max_monthly_usd: Option<f64>,
}

/// How an account gets droplets (the model of a DropletPool).
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Pool name as `namespace/name` (unique within the snapshot).
    pub name: String,
    /// Allowed regions in preference order.
    pub regions: Vec<String>,
    /// Allowed size slugs.
    pub sizes: Vec<String>,
    /// Limits on count and cost.
    pub limits: PoolLimits,
    /// Target requested utilization, 0..1 (the fit score peaks here).
    pub target_utilization: f64,
    /// Default scoring weights for deployments of this pool.
    pub weights: Option<Weights>,
    /// Decisions scoring below this (0..100) count as "nothing fits".
    pub min_score: f64,
    /// The system reserve of droplets this pool creates.
    pub reserve: Resources,
    /// Labels that droplets created for this pool carry.
    pub labels: BTreeMap<String, String>,
    /// Consolidation settings.
    pub disruption: Disruption,
}

impl Pool {
    /// A pool with the design's defaults: 80 % target, no limits, default weights.
    pub fn new(name: impl Into<String>, regions: Vec<String>, sizes: Vec<String>) -> Self {
        Pool {
            name: name.into(),
            regions,
            sizes,
            limits: PoolLimits::default(),
            target_utilization: 0.8,
            weights: None,
            min_score: 0.0,
            reserve: DEFAULT_SYSTEM_RESERVE,
            labels: BTreeMap::new(),
            disruption: Disruption::default(),
        }
    }
}

/// A deployment waiting for a droplet (the model of an unplaced MCPDeployment).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingDeployment {
    /// `namespace/name`.
    pub key: String,
    /// What it needs (template tier or override).
    pub request: Resources,
    /// Pinned droplet name.
    pub pin: Option<String>,
    /// Labels a droplet must carry.
    pub selector: BTreeMap<String, String>,
    /// Preferred regions in order; the first one is the latency reference.
    pub regions: Vec<String>,
    /// A requested location overriding the region reference for latency.
    pub location: Option<Location>,
    /// Weights overriding the pool's.
    pub weights: Option<Weights>,
    /// Pool that provides droplets, as `namespace/name`.
    pub pool: String,
    /// Whether a new droplet may be created for it.
    pub auto_provision: bool,
    /// Never moved by consolidation once placed.
    pub do_not_disrupt: bool,
}

impl PendingDeployment {
    /// A deployment with no constraints in `pool`, auto-provisioning on.
    pub fn new(key: impl Into<String>, request: Resources, pool: impl Into<String>) -> Self {
        PendingDeployment {
            key: key.into(),
            request,
            pin: None,
            selector: BTreeMap::new(),
            regions: Vec::new(),
            location: None,
            weights: None,
            pool: pool.into(),
            auto_provision: true,
            do_not_disrupt: false,
        }
    }
}

/// True when every `selector` label is present on `labels` with the same value.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_fit_and_shortfall_name_the_first_short_resource() {
        let cap = Resources::new(4 * GIB, 2000, 80 * GIB);
        assert!(Resources::new(4 * GIB, 2000, 80 * GIB).fits_in(&cap));
        let over = Resources::new(GIB, 2001, 0);
        assert!(!over.fits_in(&cap));
        assert_eq!(over.first_shortfall(&cap), Some(ResourceKind::Cpu));
        assert_eq!(cap.minus(Resources::new(5 * GIB, 0, 0)).memory, 0);
    }

    #[test]
    fn dominant_share_is_the_largest_component() {
        let cap = Resources::new(4 * GIB, 2000, 80 * GIB);
        let used = Resources::new(GIB, 1500, 0);
        assert!((used.dominant_share_of(&cap) - 0.75).abs() < 1e-9);
        assert!(
            Resources::new(1, 0, 0)
                .dominant_share_of(&Resources::ZERO)
                .is_infinite()
        );
    }

    #[test]
    fn great_circle_distance_new_york_to_san_francisco_is_about_4100_km() {
        let nyc = Location {
            latitude: 40.71,
            longitude: -74.01,
        };
        let sfo = Location {
            latitude: 37.77,
            longitude: -122.42,
        };
        let d = nyc.distance_km(&sfo);
        assert!((4100.0..4200.0).contains(&d), "{d}");
        assert!(nyc.distance_km(&nyc).abs() < 1e-6);
    }

    #[test]
    fn weights_with_no_positive_value_are_not_usable() {
        assert!(Weights::default().is_usable());
        let zero = Weights {
            resources: 0.0,
            load: 0.0,
            latency: 0.0,
            cost: 0.0,
            health: 0.0,
        };
        assert!(!zero.is_usable());
        let negative = Weights {
            resources: -1.0,
            ..Weights::default()
        };
        assert!(!negative.is_usable());
    }

    #[test]
    fn empty_selector_matches_everything() {
        let labels = BTreeMap::from([("gpu".to_string(), "no".to_string())]);
        assert!(selector_matches(&BTreeMap::new(), &labels));
        let want = BTreeMap::from([("gpu".to_string(), "yes".to_string())]);
        assert!(!selector_matches(&want, &labels));
    }
}
