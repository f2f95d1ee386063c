//! An immutable, indexed view of the fleet that every decision of one pass reads.
//!
//! Built once (names interned to indices, per-pool lookups precomputed) so that scoring a
//! droplet in the hot loop compares integers, not strings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use super::SchedulerError;
use super::model::{FleetDroplet, Location, Pool, Region, Resources, SizeOffer, Weights};

/// Index meaning "none" in the interned tables.
pub(crate) const NONE: usize = usize::MAX;

/// Why a droplet takes no work whatever the request, known when the snapshot is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Ready, healthy, fresh and not cordoned.
    Open,
    /// Not in phase Ready.
    NotReady,
    /// Unhealthy or heartbeat stale.
    Unhealthy,
    /// Cordoned by a person.
    Cordoned,
}

/// What the filter and score read of one droplet, packed into one cache line so a decision
/// over thousands of droplets streams through memory instead of chasing each droplet's
/// strings and maps (decision 0511).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HotDroplet {
    pub(crate) namespace: u32,
    pub(crate) pool: u32,
    pub(crate) region: u32,
    pub(crate) gate: Gate,
    pub(crate) allocatable: Resources,
    pub(crate) unit_price: f64,
    /// The health factor (heartbeat freshness and failures), fixed for the pass.
    pub(crate) health: f64,
    /// Observed load, NaN before the first sample.
    pub(crate) observed_load: f64,
}

/// `NONE` in the compact `u32` tables of [`HotDroplet`].
pub(crate) const NONE32: u32 = u32::MAX;

fn compact(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(NONE32)
}

/// The fleet for one scheduling or consolidation pass.
#[derive(Debug, Clone)]
pub struct Snapshot {
    generation: u64,
    droplets: Vec<FleetDroplet>,
    reported_usage: Vec<Resources>,
    pools: Vec<Pool>,
    sizes: Vec<SizeOffer>,
    region_slugs: Vec<String>,
    region_locations: Vec<Option<Location>>,
    region_index: HashMap<String, usize>,
    droplet_index: HashMap<(String, String), usize>,
    droplet_keys: Vec<String>,
    pool_index: HashMap<String, usize>,
    namespace_index: HashMap<String, usize>,
    pub(crate) droplet_pool: Vec<usize>,
    /// The hot fields of every droplet, aligned with `droplets`.
    pub(crate) hot: Vec<HotDroplet>,
    /// Per pool, per region index: allowed.
    pub(crate) pool_region_allowed: Vec<Vec<bool>>,
    /// Per pool: the cheapest price per allocatable unit among its droplets and sizes.
    pub(crate) pool_reference_unit_price: Vec<f64>,
    /// Cheapest unit price across all droplets (for droplets outside any pool).
    pub(crate) global_reference_unit_price: f64,
}

/// Monthly price per allocatable unit, a unit being the mean of one GiB of memory and one
/// vCPU; infinite when nothing is allocatable.
pub fn unit_price(monthly_usd: f64, allocatable: &Resources) -> f64 {
    let units = (allocatable.memory as f64 / super::model::GIB as f64
        + allocatable.cpu_millis as f64 / 1000.0)
        / 2.0;
    if units <= 0.0 {
        f64::INFINITY
    } else {
        monthly_usd / units
    }
}

/// Source of [`Snapshot::generation`]: every snapshot built gets the next number.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// Splits `namespace/name` into its parts (no slash: empty namespace).
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

impl Snapshot {
    /// Builds the snapshot; droplets are ordered by namespace and name so ties resolve the
    /// same way every time.
    pub fn new(
        mut droplets: Vec<FleetDroplet>,
        pools: Vec<Pool>,
        sizes: Vec<SizeOffer>,
        regions: Vec<Region>,
    ) -> Result<Self, SchedulerError> {
        droplets.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut region_slugs = Vec::new();
        let mut region_locations = Vec::new();
        let mut region_index = HashMap::new();
        for r in &regions {
            if region_index.contains_key(&r.slug) {
                continue;
            }
            region_index.insert(r.slug.clone(), region_slugs.len());
            region_slugs.push(r.slug.clone());
            region_locations.push(Some(r.location));
        }
        let mut intern_region =
            |slug: &str, slugs: &mut Vec<String>, locs: &mut Vec<Option<Location>>| -> usize {
                if let Some(i) = region_index.get(slug) {
                    return *i;
                }
                let i = slugs.len();
                region_index.insert(slug.to_string(), i);
                slugs.push(slug.to_string());
                locs.push(None);
                i
            };

        let mut pool_index = HashMap::new();
        for (i, p) in pools.iter().enumerate() {
            if pool_index.insert(p.name.clone(), i).is_some() {
                return Err(SchedulerError::DuplicatePool(p.name.clone()));
            }
            if !(0.0..=1.0).contains(&p.target_utilization) || p.target_utilization == 0.0 {
                return Err(SchedulerError::InvalidPool {
                    pool: p.name.clone(),
                    problem: format!(
                        "target utilization {} is not in (0, 1]",
                        p.target_utilization
                    ),
                });
            }
            if let Some(w) = &p.weights
                && !w.is_usable()
            {
                return Err(SchedulerError::InvalidPool {
                    pool: p.name.clone(),
                    problem: "weights must be non-negative with a positive sum".into(),
                });
            }
        }
        let mut droplet_index = HashMap::new();
        let mut namespace_index: HashMap<String, usize> = HashMap::new();
        let mut droplet_pool = Vec::with_capacity(droplets.len());
        let mut droplet_region = Vec::with_capacity(droplets.len());
        let mut droplet_namespace = Vec::with_capacity(droplets.len());
        let mut droplet_unit_price = Vec::with_capacity(droplets.len());
        for (i, d) in droplets.iter().enumerate() {
            if droplet_index
                .insert((d.namespace.clone(), d.name.clone()), i)
                .is_some()
            {
                return Err(SchedulerError::DuplicateDroplet(format!(
                    "{}/{}",
                    d.namespace, d.name
                )));
            }
            let next = namespace_index.len();
            let ns = *namespace_index.entry(d.namespace.clone()).or_insert(next);
            droplet_namespace.push(ns);
            droplet_pool.push(pool_index.get(&d.pool).copied().unwrap_or(NONE));
            droplet_region.push(intern_region(
                &d.region,
                &mut region_slugs,
                &mut region_locations,
            ));
            droplet_unit_price.push(unit_price(d.monthly_usd, &d.allocatable));
        }
        for p in &pools {
            for r in &p.regions {
                intern_region(r, &mut region_slugs, &mut region_locations);
            }
        }
        let pool_region_allowed = pools
            .iter()
            .map(|p| {
                let mut allowed = vec![p.regions.is_empty(); region_slugs.len()];
                for r in &p.regions {
                    if let Some(i) = region_index.get(r) {
                        allowed[*i] = true;
                    }
                }
                allowed
            })
            .collect();
        let global_reference_unit_price = droplet_unit_price
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let pool_reference_unit_price = pools
            .iter()
            .enumerate()
            .map(|(pi, p)| {
                let from_sizes = sizes
                    .iter()
                    .filter(|s| p.sizes.iter().any(|a| a == &s.slug))
                    .map(|s| unit_price(s.monthly_usd, &s.allocatable(&p.reserve)));
                let from_droplets = droplet_pool
                    .iter()
                    .zip(&droplet_unit_price)
                    .filter(|(dp, _)| **dp == pi)
                    .map(|(_, u)| *u);
                from_sizes
                    .chain(from_droplets)
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let droplet_keys = droplets
            .iter()
            .map(|d| format!("{}/{}", d.namespace, d.name))
            .collect();
        let reported_usage = droplets.iter().map(FleetDroplet::used).collect();
        let hot = droplets
            .iter()
            .enumerate()
            .map(|(i, d)| HotDroplet {
                namespace: compact(droplet_namespace[i]),
                pool: compact(droplet_pool[i]),
                region: compact(droplet_region[i]),
                gate: if d.phase != crate::model::DropletPhase::Ready {
                    Gate::NotReady
                } else if !d.healthy
                    || d.heartbeat_age
                        .is_some_and(|a| a > crate::score::HEARTBEAT_STALE)
                {
                    Gate::Unhealthy
                } else if d.cordoned {
                    Gate::Cordoned
                } else {
                    Gate::Open
                },
                allocatable: d.allocatable,
                unit_price: droplet_unit_price[i],
                health: crate::score::health_score(d.heartbeat_age, d.recent_failures),
                observed_load: d.observed_load.unwrap_or(f64::NAN),
            })
            .collect();
        Ok(Snapshot {
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
            reported_usage,
            droplet_keys,
            droplets,
            pools,
            sizes,
            region_slugs,
            region_locations,
            region_index,
            droplet_index,
            pool_index,
            namespace_index,
            droplet_pool,
            hot,
            pool_region_allowed,
            pool_reference_unit_price,
            global_reference_unit_price,
        })
    }

    /// The droplets, ordered by namespace and name.
    pub fn droplets(&self) -> &[FleetDroplet] {
        &self.droplets
    }

    /// The pools as given.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// The purchasable sizes.
    pub fn sizes(&self) -> &[SizeOffer] {
        &self.sizes
    }

    /// A pool by name.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pool_index.get(name).map(|i| &self.pools[*i])
    }

    /// Index of a pool by name.
    pub(crate) fn pool_position(&self, name: &str) -> Option<usize> {
        self.pool_index.get(name).copied()
    }

    /// Index of a droplet by namespace and name.
    pub fn droplet_position(&self, namespace: &str, name: &str) -> Option<usize> {
        self.droplet_index
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// `namespace/name` of the droplet at `index` (the ledger's key).
    pub fn droplet_key(&self, index: usize) -> &str {
        &self.droplet_keys[index]
    }

    /// Interned namespace, `NONE` when no droplet lives there.
    pub(crate) fn namespace_position(&self, namespace: &str) -> usize {
        self.namespace_index.get(namespace).copied().unwrap_or(NONE)
    }

    /// Location of a region slug, if known.
    pub fn region_location(&self, slug: &str) -> Option<Location> {
        self.region_index
            .get(slug)
            .and_then(|i| self.region_locations[*i])
    }

    /// Number of interned regions.
    pub(crate) fn region_count(&self) -> usize {
        self.region_slugs.len()
    }

    /// Location of an interned region.
    pub(crate) fn location_at(&self, region: usize) -> Option<Location> {
        self.region_locations.get(region).copied().flatten()
    }

    /// The weights that apply to a deployment: its own (when usable), else its pool's, else
    /// the defaults.
    pub fn weights_for(&self, own: Option<&Weights>, pool: Option<usize>) -> Weights {
        own.copied()
            .filter(Weights::is_usable)
            .or_else(|| pool.and_then(|p| self.pools[p].weights))
            .unwrap_or_default()
    }

    /// What each droplet holds according to the snapshot itself ([`FleetDroplet::used`]:
    /// its deployments plus unlisted usage), aligned with [`Snapshot::droplets`].
    pub fn reported_usage(&self) -> &[Resources] {
        &self.reported_usage
    }

    /// Identifies this snapshot (and its clones): the ledger keeps its usage aligned with
    /// the last snapshot it saw and rebuilds it only when the generation changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}
