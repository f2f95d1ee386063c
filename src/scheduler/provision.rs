//! Provisioning: which droplets to buy when nothing fits, and batch packing of a burst.
//!
//! A batch is sorted largest first (by dominant share), each deployment goes to the best
//! scoring existing droplet, else first-fit into a new virtual droplet opened earlier in
//! the batch, else into a new virtual droplet in the best allowed region. A virtual droplet
//! packs against the largest allowed size of its region and always carries the cheapest
//! size that holds what was packed into it, so its final size is known when the batch ends.
//! Pool limits (droplet count, monthly cost) are checked on every open and every growth.

use std::collections::HashMap;

use super::model::{PendingDeployment, Pool, Resources, Size, selector_matches};
use super::score::{Decision, Placement, decide};
use super::snapshot::Snapshot;

/// The cheapest size in `region`, among `allowed` slugs (all sizes when empty), whose
/// allocatable (capacity minus `reserve`) holds `demand`. Equal prices go to the larger
/// allocatable (more headroom), then to the slug.
pub fn cheapest_size_that_fits<'a>(
    sizes: &'a [Size],
    allowed: &[String],
    region: &str,
    reserve: &Resources,
    demand: &Resources,
) -> Option<&'a Size> {
    sizes
        .iter()
        .filter(|s| allowed.is_empty() || allowed.iter().any(|a| a == &s.slug))
        .filter(|s| s.available_in(region))
        .filter(|s| demand.fits_in(&s.allocatable(reserve)))
        .min_by(|a, b| {
            a.monthly_usd
                .total_cmp(&b.monthly_usd)
                .then_with(|| headroom(b, reserve).cmp(&headroom(a, reserve)))
                .then_with(|| a.slug.cmp(&b.slug))
        })
}

fn headroom(size: &Size, reserve: &Resources) -> (u64, u64, u64) {
    let a = size.allocatable(reserve);
    (a.memory, a.cpu_millis, a.disk)
}

/// The largest allocatable of the allowed sizes in `region`, per resource: a virtual
/// droplet never packs more than this.
fn largest_allocatable(sizes: &[Size], pool: &Pool, region: &str) -> Option<Resources> {
    sizes
        .iter()
        .filter(|s| pool.sizes.is_empty() || pool.sizes.iter().any(|a| a == &s.slug))
        .filter(|s| s.available_in(region))
        .map(|s| s.allocatable(&pool.reserve))
        .max_by_key(|a| (a.memory, a.cpu_millis, a.disk))
}

/// Regions to try for a deployment: its preferred regions the pool allows, in its order,
/// then the pool's regions in the pool's order.
fn region_order<'a>(pool: &'a Pool, deployment: &'a PendingDeployment) -> Vec<&'a str> {
    let allowed = |r: &str| pool.regions.is_empty() || pool.regions.iter().any(|p| p == r);
    let mut order: Vec<&str> = deployment
        .regions
        .iter()
        .map(String::as_str)
        .filter(|r| allowed(r))
        .collect();
    for r in &pool.regions {
        if !order.contains(&r.as_str()) {
            order.push(r);
        }
    }
    order
}

/// The cheapest size in the best allowed region that fits one deployment on its own.
pub fn provision_for<'a>(
    sizes: &'a [Size],
    pool: &'a Pool,
    deployment: &'a PendingDeployment,
) -> Option<(&'a str, &'a Size)> {
    region_order(pool, deployment).into_iter().find_map(|r| {
        cheapest_size_that_fits(sizes, &pool.sizes, r, &pool.reserve, &deployment.request)
            .map(|s| (r, s))
    })
}

/// A droplet the plan wants to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDroplet {
    /// Name proposed for it (`<pool>-new-<n>`).
    pub name: String,
    /// Pool (`namespace/name`).
    pub pool: String,
    /// Region slug.
    pub region: String,
    /// The cheapest allowed size that holds what was packed into it.
    pub size: String,
    /// Price per hour in USD.
    pub hourly_usd: f64,
    /// Price per month in USD.
    pub monthly_usd: f64,
    /// Allocatable of the chosen size.
    pub allocatable: Resources,
    /// Sum of the requests packed into it.
    pub used: Resources,
    /// Deployments packed into it.
    pub deployments: Vec<String>,
}

/// Where a deployment of the batch goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An existing droplet, with the scoring decision.
    Existing(Placement),
    /// The new droplet at this index of [`BatchPlan::new_droplets`].
    New(usize),
}

/// One deployment's place in the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedPlacement {
    /// `namespace/name`.
    pub deployment: String,
    /// Where it goes.
    pub target: Target,
}

/// The pool limit (or other cause) that kept a deployment from a new droplet.
#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    /// The pool already has (or would have) its maximum number of droplets.
    MaxDroplets {
        /// The limit.
        limit: u32,
    },
    /// The pool's monthly cost would exceed its limit.
    MaxMonthlyCost {
        /// The limit in USD.
        limit: f64,
        /// What the pool would cost with the new droplet.
        would_be: f64,
    },
    /// No allowed size in any allowed region holds the request.
    NoSizeFits,
    /// The deployment is pinned to a droplet that cannot take it.
    PinnedDroplet,
    /// Auto-provisioning is off for the deployment.
    AutoProvisionOff,
    /// The named pool does not exist.
    UnknownPool,
}

/// A deployment the plan cannot place.
#[derive(Debug, Clone, PartialEq)]
pub struct Unschedulable {
    /// `namespace/name`.
    pub deployment: String,
    /// For people.
    pub reason: String,
    /// What blocked it.
    pub blocker: Blocker,
}

/// Result of packing a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchPlan {
    /// Placed deployments, in the order they were packed (largest first).
    pub placements: Vec<PlannedPlacement>,
    /// Droplets to create.
    pub new_droplets: Vec<NewDroplet>,
    /// Deployments left pending, with the reason.
    pub unschedulable: Vec<Unschedulable>,
    /// Usage of the existing droplets after the plan, aligned with the snapshot.
    pub usage: Vec<Resources>,
    /// Component-wise smallest request of the batch (for the cost lower bound).
    pub smallest_request: Resources,
}

/// Existing count and cost of each pool, for limit checks.
#[derive(Debug, Clone, Copy, Default)]
struct PoolSpend {
    droplets: u32,
    monthly_usd: f64,
}

struct Virtual {
    pool: usize,
    capacity: Resources,
}

/// The capacity a deployment's size is measured against when ordering a batch: the
/// largest allocatable (per resource) among its pool's allowed sizes, else of any size.
/// Measuring against the pool's own bins matters: against the catalogue's largest machines
/// every MCP server looks CPU-bound, the order degenerates to "by CPU", and first-fit then
/// segregates CPU-heavy and memory-heavy servers onto different droplets.
fn ordering_capacity(snapshot: &Snapshot, pool: Option<usize>) -> Resources {
    let grow = |m: Resources, a: Resources| Resources {
        memory: m.memory.max(a.memory),
        cpu_millis: m.cpu_millis.max(a.cpu_millis),
        disk: m.disk.max(a.disk),
    };
    let start = Resources::new(1, 1, 1);
    match pool.map(|p| &snapshot.pools()[p]) {
        Some(p) => snapshot
            .sizes()
            .iter()
            .filter(|s| p.sizes.is_empty() || p.sizes.iter().any(|a| a == &s.slug))
            .map(|s| s.allocatable(&p.reserve))
            .fold(start, grow),
        None => snapshot
            .sizes()
            .iter()
            .map(|s| s.allocatable(&super::model::DEFAULT_SYSTEM_RESERVE))
            .chain(snapshot.droplets().iter().map(|d| d.allocatable))
            .fold(start, grow),
    }
}

/// Sorts deployments largest first by dominant share of their pool's largest droplet
/// (first-fit decreasing order); ties by key, which keeps equal-sized servers of different
/// shapes interleaved and the plan deterministic.
pub fn decreasing_order(snapshot: &Snapshot, pending: &[PendingDeployment]) -> Vec<usize> {
    let mut caps: HashMap<Option<usize>, Resources> = HashMap::new();
    let keys: Vec<f64> = pending
        .iter()
        .map(|d| {
            let pool = snapshot.pool_position(&d.pool);
            let cap = *caps
                .entry(pool)
                .or_insert_with(|| ordering_capacity(snapshot, pool));
            d.request.dominant_share_of(&cap)
        })
        .collect();
    let mut order: Vec<usize> = (0..pending.len()).collect();
    order.sort_by(|&a, &b| {
        keys[b]
            .total_cmp(&keys[a])
            .then_with(|| pending[a].key.cmp(&pending[b].key))
    });
    order
}

/// A deployment no existing droplet takes, waiting for a new one.
#[derive(Debug, Clone)]
struct Leftover {
    index: usize,
    pool: usize,
    no_fit: String,
}

/// The new-droplet part of a batch plan.
struct NewPacking {
    droplets: Vec<NewDroplet>,
    placements: Vec<PlannedPlacement>,
    unschedulable: Vec<Unschedulable>,
}

/// Largest burst packed exactly (branch and bound) instead of only first-fit.
pub const EXACT_MAX_DEPLOYMENTS: usize = 30;
/// Search budget of the exact packing (nodes), which bounds its time to a few ms.
pub const EXACT_NODE_LIMIT: u64 = 100_000;

/// The exact packing of a small burst into new droplets: only when every leftover belongs to
/// one pool and would open in the same region, and only when the result stays within the
/// pool limits (otherwise first-fit, which checks limits step by step, decides).
fn pack_exact(
    snapshot: &Snapshot,
    pending: &[PendingDeployment],
    leftovers: &[Leftover],
    spend: &[PoolSpend],
) -> Option<NewPacking> {
    let first = leftovers.first()?;
    if leftovers.len() > EXACT_MAX_DEPLOYMENTS || leftovers.iter().any(|l| l.pool != first.pool) {
        return None;
    }
    let pool = &snapshot.pools()[first.pool];
    let sizes = snapshot.sizes();
    let (region, _) = provision_for(sizes, pool, &pending[first.index])?;
    for l in leftovers {
        if provision_for(sizes, pool, &pending[l.index]).map(|(r, _)| r) != Some(region) {
            return None;
        }
    }
    let capacity = largest_allocatable(sizes, pool, region)?;
    let items: Vec<Resources> = leftovers.iter().map(|l| pending[l.index].request).collect();
    let (result, assignment) =
        super::exact::optimal_assignment(&items, &capacity, EXACT_NODE_LIMIT)?;
    let short_pool = pool.name.rsplit('/').next().unwrap_or(&pool.name);
    let mut droplets: Vec<NewDroplet> = Vec::with_capacity(result.bins);
    let mut placements = Vec::with_capacity(leftovers.len());
    for bin in 0..result.bins {
        let mut content = Resources::ZERO;
        let mut deployments = Vec::new();
        for (l, b) in leftovers.iter().zip(&assignment) {
            if *b == bin {
                content = content.plus(pending[l.index].request);
                deployments.push(pending[l.index].key.clone());
                placements.push(PlannedPlacement {
                    deployment: pending[l.index].key.clone(),
                    target: Target::New(bin),
                });
            }
        }
        let size = cheapest_size_that_fits(sizes, &pool.sizes, region, &pool.reserve, &content)?;
        droplets.push(NewDroplet {
            name: format!("{short_pool}-new-{}", bin + 1),
            pool: pool.name.clone(),
            region: region.to_string(),
            size: size.slug.clone(),
            hourly_usd: size.hourly_usd,
            monthly_usd: size.monthly_usd,
            allocatable: size.allocatable(&pool.reserve),
            used: content,
            deployments,
        });
    }
    let spent = spend[first.pool];
    let cost: f64 = droplets.iter().map(|d| d.monthly_usd).sum();
    let count_ok = pool
        .limits
        .max_droplets
        .is_none_or(|m| spent.droplets + droplets.len() as u32 <= m);
    let cost_ok = pool
        .limits
        .max_monthly_usd
        .is_none_or(|m| spent.monthly_usd + cost <= m + 1e-9);
    (count_ok && cost_ok).then_some(NewPacking {
        droplets,
        placements,
        unschedulable: Vec::new(),
    })
}

/// First-fit of `leftovers` (in the given order) into virtual droplets; see the module docs.
fn pack_new(
    snapshot: &Snapshot,
    pending: &[PendingDeployment],
    leftovers: &[Leftover],
    spend: &[PoolSpend],
) -> NewPacking {
    let pools = snapshot.pools();
    let sizes = snapshot.sizes();
    let mut spend = spend.to_vec();
    let mut out = NewPacking {
        droplets: Vec::new(),
        placements: Vec::new(),
        unschedulable: Vec::new(),
    };
    let mut virtuals: Vec<Virtual> = Vec::new();
    let mut new_per_pool: HashMap<usize, u32> = HashMap::new();
    for left in leftovers {
        let dep = &pending[left.index];
        let pi = left.pool;
        let pool = &pools[pi];
        let unschedulable = |reason: String, blocker: Blocker| Unschedulable {
            deployment: dep.key.clone(),
            reason,
            blocker,
        };

        // First fit into the virtual droplets opened earlier in this batch.
        let mut placed = false;
        for (vi, v) in virtuals.iter().enumerate() {
            if v.pool != pi {
                continue;
            }
            let nd = &mut out.droplets[vi];
            let content = nd.used.plus(dep.request);
            if !content.fits_in(&v.capacity) {
                continue;
            }
            let Some(size) =
                cheapest_size_that_fits(sizes, &pool.sizes, &nd.region, &pool.reserve, &content)
            else {
                continue;
            };
            let delta = size.monthly_usd - nd.monthly_usd;
            if let Some(limit) = pool.limits.max_monthly_usd {
                let would_be = spend[pi].monthly_usd + delta;
                if would_be > limit + 1e-9 {
                    continue;
                }
            }
            spend[pi].monthly_usd += delta;
            nd.size = size.slug.clone();
            nd.hourly_usd = size.hourly_usd;
            nd.monthly_usd = size.monthly_usd;
            nd.allocatable = size.allocatable(&pool.reserve);
            nd.used = content;
            nd.deployments.push(dep.key.clone());
            out.placements.push(PlannedPlacement {
                deployment: dep.key.clone(),
                target: Target::New(vi),
            });
            placed = true;
            break;
        }
        if placed {
            continue;
        }

        // Open a new virtual droplet in the best region where something fits.
        let Some((region, size)) = provision_for(sizes, pool, dep) else {
            out.unschedulable.push(unschedulable(
                format!(
                    "{}; no allowed size of pool {} holds {} MiB memory, {}m cpu",
                    left.no_fit,
                    pool.name,
                    dep.request.memory / super::model::MIB,
                    dep.request.cpu_millis
                ),
                Blocker::NoSizeFits,
            ));
            continue;
        };
        if let Some(limit) = pool.limits.max_droplets
            && spend[pi].droplets + 1 > limit
        {
            let b = Blocker::MaxDroplets { limit };
            out.unschedulable.push(unschedulable(
                format!("{}; {}", left.no_fit, describe_blocker(&b, &pool.name)),
                b,
            ));
            continue;
        }
        if let Some(limit) = pool.limits.max_monthly_usd {
            let would_be = spend[pi].monthly_usd + size.monthly_usd;
            if would_be > limit + 1e-9 {
                let b = Blocker::MaxMonthlyCost { limit, would_be };
                out.unschedulable.push(unschedulable(
                    format!("{}; {}", left.no_fit, describe_blocker(&b, &pool.name)),
                    b,
                ));
                continue;
            }
        }
        let capacity = largest_allocatable(sizes, pool, region)
            .unwrap_or_else(|| size.allocatable(&pool.reserve));
        spend[pi].droplets += 1;
        spend[pi].monthly_usd += size.monthly_usd;
        let n = new_per_pool.entry(pi).or_insert(0);
        *n += 1;
        let short_pool = pool.name.rsplit('/').next().unwrap_or(&pool.name);
        out.droplets.push(NewDroplet {
            name: format!("{short_pool}-new-{n}"),
            pool: pool.name.clone(),
            region: region.to_string(),
            size: size.slug.clone(),
            hourly_usd: size.hourly_usd,
            monthly_usd: size.monthly_usd,
            allocatable: size.allocatable(&pool.reserve),
            used: dep.request,
            deployments: vec![dep.key.clone()],
        });
        virtuals.push(Virtual { pool: pi, capacity });
        out.placements.push(PlannedPlacement {
            deployment: dep.key.clone(),
            target: Target::New(out.droplets.len() - 1),
        });
    }
    out
}

/// Packs a batch of pending deployments (see the module docs). `used` is the usage of the
/// snapshot's droplets (from the ledger or the droplets' reports).
pub fn plan_batch(
    snapshot: &Snapshot,
    used: &[Resources],
    pending: &[PendingDeployment],
) -> BatchPlan {
    let mut usage: Vec<Resources> = if used.len() == snapshot.droplets().len() {
        used.to_vec()
    } else {
        snapshot.reported_usage()
    };
    let pools = snapshot.pools();
    let mut spend: Vec<PoolSpend> = vec![PoolSpend::default(); pools.len()];
    for (i, d) in snapshot.droplets().iter().enumerate() {
        let p = snapshot.droplet_pool[i];
        if p != super::snapshot::NONE && d.phase != super::model::DropletPhase::Terminating {
            spend[p].droplets += 1;
            spend[p].monthly_usd += d.monthly_usd;
        }
    }
    let mut plan = BatchPlan::default();
    // Phase 1: existing droplets (the virtual ones never change their usage, so deciding
    // these first is the same as interleaving).
    let mut leftovers: Vec<Leftover> = Vec::new();
    for idx in decreasing_order(snapshot, pending) {
        let dep = &pending[idx];
        let no_fit = match decide(snapshot, &usage, dep) {
            Decision::Place(p) => {
                usage[p.droplet_index] = usage[p.droplet_index].plus(dep.request);
                plan.placements.push(PlannedPlacement {
                    deployment: dep.key.clone(),
                    target: Target::Existing(p),
                });
                continue;
            }
            Decision::NoFit(n) => n,
        };
        let unschedulable = |reason: String, blocker: Blocker| Unschedulable {
            deployment: dep.key.clone(),
            reason,
            blocker,
        };
        if dep.pin.is_some() {
            plan.unschedulable
                .push(unschedulable(no_fit.reason, Blocker::PinnedDroplet));
            continue;
        }
        if !dep.auto_provision {
            plan.unschedulable.push(unschedulable(
                format!("{}; autoProvision is off", no_fit.reason),
                Blocker::AutoProvisionOff,
            ));
            continue;
        }
        let Some(pi) = snapshot.pool_position(&dep.pool) else {
            plan.unschedulable.push(unschedulable(
                format!("{}; pool {} does not exist", no_fit.reason, dep.pool),
                Blocker::UnknownPool,
            ));
            continue;
        };
        let pool = &pools[pi];
        if !selector_matches(&dep.selector, &pool.labels) {
            plan.unschedulable.push(unschedulable(
                format!(
                    "{}; new droplets of pool {} would not match the selector",
                    no_fit.reason, pool.name
                ),
                Blocker::NoSizeFits,
            ));
            continue;
        }
        leftovers.push(Leftover {
            index: idx,
            pool: pi,
            no_fit: no_fit.reason,
        });
    }

    // Phase 2: new droplets, packed first-fit in two decreasing orders (dominant share and
    // sum of shares of the pool's largest droplet); the packing with fewer unschedulable,
    // then fewer droplets, then lower cost wins. Each order wins on some mixes, and trying
    // both costs one extra pass over the leftovers only.
    let by_dominant = pack_new(snapshot, pending, &leftovers, &spend);
    let mut by_sum_order = leftovers.clone();
    let mut caps: HashMap<usize, Resources> = HashMap::new();
    let sum_key = |l: &Leftover, caps: &mut HashMap<usize, Resources>| {
        let cap = *caps
            .entry(l.pool)
            .or_insert_with(|| ordering_capacity(snapshot, Some(l.pool)));
        let [m, c, d] = pending[l.index].request.shares_of(&cap);
        m + c + if d.is_finite() { d } else { 0.0 }
    };
    let keys: HashMap<usize, f64> = by_sum_order
        .iter()
        .map(|l| (l.index, sum_key(l, &mut caps)))
        .collect();
    by_sum_order.sort_by(|a, b| {
        keys[&b.index]
            .total_cmp(&keys[&a.index])
            .then_with(|| pending[a.index].key.cmp(&pending[b.index].key))
    });
    let by_sum = pack_new(snapshot, pending, &by_sum_order, &spend);
    let rank = |p: &NewPacking| {
        (
            p.unschedulable.len(),
            p.droplets.len(),
            p.droplets.iter().map(|d| d.monthly_usd).sum::<f64>(),
        )
    };
    let better = |a: &NewPacking, b: &NewPacking| {
        let (ra, rb) = (rank(a), rank(b));
        (ra.0, ra.1) < (rb.0, rb.1) || ((ra.0, ra.1) == (rb.0, rb.1) && ra.2 < rb.2)
    };
    let mut chosen = if better(&by_sum, &by_dominant) {
        by_sum
    } else {
        by_dominant
    };
    // Small bursts: the exact packing, when it beats first-fit and respects the limits.
    if let Some(exact) = pack_exact(snapshot, pending, &leftovers, &spend)
        && better(&exact, &chosen)
    {
        chosen = exact;
    }

    plan.new_droplets = chosen.droplets;
    plan.placements.extend(chosen.placements);
    plan.unschedulable.extend(chosen.unschedulable);
    plan.usage = usage;
    plan.smallest_request = smallest_request(pending.iter().map(|d| d.request));
    plan
}

/// Component-wise minimum of requests (zero when there are none).
pub fn smallest_request(requests: impl Iterator<Item = Resources>) -> Resources {
    requests
        .reduce(|a, b| {
            Resources::new(
                a.memory.min(b.memory),
                a.cpu_millis.min(b.cpu_millis),
                a.disk.min(b.disk),
            )
        })
        .unwrap_or_default()
}

/// "pool team-a/default is at its limit of 10 droplets" and the like.
pub fn describe_blocker(blocker: &Blocker, pool: &str) -> String {
    match blocker {
        Blocker::MaxDroplets { limit } => {
            format!("pool {pool} is at its limit of {limit} droplets")
        }
        Blocker::MaxMonthlyCost { limit, would_be } => {
            format!("pool {pool} would cost {would_be:.2} USD/month, above its limit of {limit:.2}")
        }
        Blocker::NoSizeFits => format!("no allowed size of pool {pool} holds it"),
        Blocker::PinnedDroplet => "the pinned droplet cannot take it".to_string(),
        Blocker::AutoProvisionOff => "autoProvision is off".to_string(),
        Blocker::UnknownPool => format!("pool {pool} does not exist"),
    }
}

/// Fleet figures for a plan: what is used, what it costs, how close to the bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackingSummary {
    /// Droplets hosting at least one deployment after the plan (existing and new).
    pub droplets_used: usize,
    /// max over resources of ceil(total requests / largest allocatable).
    pub lower_bound_droplets: usize,
    /// lower bound / droplets used (1.0 is optimal; 1.0 when nothing is placed).
    pub packing_efficiency: f64,
    /// Monthly cost of the droplets used.
    pub monthly_cost_usd: f64,
    /// Fractional cost bound: the linear relaxation of buying sizes to cover the total
    /// request (see [`fractional_cost_lower_bound`]).
    pub cost_lower_bound_usd: f64,
    /// Requested / allocatable over the droplets used, of the dominant resource (0..1).
    pub utilization: f64,
}

/// The fractional cost lower bound: the optimum of the linear relaxation "buy any
/// fractional amount of each size so that the allocatable covers the total request".
/// No integral packing can cost less. Solved through its dual (maximise the value of the
/// request at per-resource prices no size undercuts) by enumerating the dual's vertices;
/// with three resources and a few dozen sizes that is a few thousand 3x3 solves.
///
/// Sizes that cannot hold even `smallest` (the component-wise smallest request) can be
/// in no packing, so they are left out; otherwise a size whose reserve leaves no memory
/// would sell "free-standing" CPU and loosen the bound.
pub fn fractional_cost_lower_bound(
    total: &Resources,
    smallest: &Resources,
    options: &[(Resources, f64)],
) -> f64 {
    // Work in GiB and cores so the numbers stay well conditioned.
    let unit = |r: &Resources| {
        [
            r.memory as f64 / super::model::GIB as f64,
            r.cpu_millis as f64 / 1000.0,
            r.disk as f64 / super::model::GIB as f64,
        ]
    };
    let demand = unit(total);
    // Constraint rows a . y <= b: one per size, and -y_k <= 0 for each resource.
    let mut rows: Vec<([f64; 3], f64)> = options
        .iter()
        .filter(|(alloc, price)| price.is_finite() && smallest.fits_in(alloc))
        .map(|(alloc, price)| (unit(alloc), *price))
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    rows.dedup();
    for k in 0..3 {
        let mut a = [0.0; 3];
        a[k] = -1.0;
        rows.push((a, 0.0));
    }
    let feasible = |y: &[f64; 3]| {
        rows.iter()
            .all(|(a, b)| a[0] * y[0] + a[1] * y[1] + a[2] * y[2] <= b + 1e-9)
    };
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let mut best = 0.0f64;
    let n = rows.len();
    for i in 0..n {
        for j in (i + 1)..n {
            for k in (j + 1)..n {
                let m = [rows[i].0, rows[j].0, rows[k].0];
                let d = det3(m);
                if d.abs() < 1e-12 {
                    continue;
                }
                let b = [rows[i].1, rows[j].1, rows[k].1];
                let mut y = [0.0; 3];
                for (c, slot) in y.iter_mut().enumerate() {
                    let mut mc = m;
                    for (r, row) in mc.iter_mut().enumerate() {
                        row[c] = b[r];
                    }
                    *slot = det3(mc) / d;
                }
                if feasible(&y) {
                    best = best.max(demand[0] * y[0] + demand[1] * y[1] + demand[2] * y[2]);
                }
            }
        }
    }
    best
}

/// Computes the [`PackingSummary`] of a plan.
pub fn summarize(snapshot: &Snapshot, plan: &BatchPlan) -> PackingSummary {
    let mut requested = Resources::ZERO;
    let mut allocatable = Resources::ZERO;
    let mut used = 0usize;
    let mut cost = 0.0;
    for (i, d) in snapshot.droplets().iter().enumerate() {
        let u = plan.usage.get(i).copied().unwrap_or(d.allocated);
        if !u.is_zero() {
            used += 1;
            requested = requested.plus(u);
            allocatable = allocatable.plus(d.allocatable);
            cost += d.monthly_usd;
        }
    }
    for nd in &plan.new_droplets {
        used += 1;
        requested = requested.plus(nd.used);
        allocatable = allocatable.plus(nd.allocatable);
        cost += nd.monthly_usd;
    }
    // Largest allocatable and every (allocatable, price) option among the sizes the pools
    // allow and the existing droplets.
    let mut biggest = Resources::ZERO;
    let mut options: Vec<(Resources, f64)> = Vec::new();
    let mut consider = |alloc: Resources, monthly: f64| {
        biggest.memory = biggest.memory.max(alloc.memory);
        biggest.cpu_millis = biggest.cpu_millis.max(alloc.cpu_millis);
        biggest.disk = biggest.disk.max(alloc.disk);
        options.push((alloc, monthly));
    };
    for p in snapshot.pools() {
        for s in snapshot.sizes() {
            if p.sizes.is_empty() || p.sizes.iter().any(|a| a == &s.slug) {
                consider(s.allocatable(&p.reserve), s.monthly_usd);
            }
        }
    }
    for d in snapshot.droplets() {
        consider(d.allocatable, d.monthly_usd);
    }
    let totals = [requested.memory, requested.cpu_millis, requested.disk];
    let caps = [biggest.memory, biggest.cpu_millis, biggest.disk];
    let lower_bound = totals
        .iter()
        .zip(caps)
        .filter(|(_, c)| *c > 0)
        .map(|(t, c)| t.div_ceil(c) as usize)
        .max()
        .unwrap_or(0);
    let cost_lower_bound =
        fractional_cost_lower_bound(&requested, &plan.smallest_request, &options);
    PackingSummary {
        droplets_used: used,
        lower_bound_droplets: lower_bound,
        packing_efficiency: if used == 0 {
            1.0
        } else {
            lower_bound as f64 / used as f64
        },
        monthly_cost_usd: cost,
        cost_lower_bound_usd: cost_lower_bound,
        utilization: requested.dominant_share_of(&allocatable).min(1.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures::{self, droplet, request};
    use crate::scheduler::model::{GIB, PoolLimits};

    fn snapshot_with(droplets: Vec<crate::scheduler::Droplet>, pool: Pool) -> Snapshot {
        Snapshot::new(
            droplets,
            vec![pool],
            fixtures::test_sizes(),
            fixtures::test_regions(),
        )
        .unwrap()
    }

    fn burst(n: usize, mem_mib: u64, cpu: u64) -> Vec<PendingDeployment> {
        (0..n)
            .map(|i| {
                PendingDeployment::new(
                    format!("team-a/s{i:02}"),
                    request(mem_mib, cpu),
                    fixtures::POOL,
                )
            })
            .collect()
    }

    #[test]
    fn cheapest_size_that_fits_skips_sizes_the_reserve_makes_too_small() {
        let sizes = fixtures::test_sizes();
        let reserve = crate::scheduler::DEFAULT_SYSTEM_RESERVE;
        let fit = |mem_mib, cpu| {
            cheapest_size_that_fits(&sizes, &[], "nyc3", &reserve, &request(mem_mib, cpu))
                .map(|s| s.slug.as_str())
        };
        assert_eq!(fit(256, 100), Some("s-1vcpu-1gb"));
        assert_eq!(fit(1024, 100), Some("s-1vcpu-2gb"));
        assert_eq!(fit(1024, 1000), Some("s-2vcpu-2gb"));
        assert_eq!(fit(2048, 100), Some("s-2vcpu-4gb"));
        assert_eq!(fit(32 * 1024, 100), None);
        assert_eq!(
            cheapest_size_that_fits(&sizes, &[], "lon1", &reserve, &request(256, 100)),
            None
        );
    }

    #[test]
    fn equal_prices_go_to_the_size_with_more_headroom() {
        let sizes = vec![
            fixtures::size("b-small", 1, 2, 12.0),
            fixtures::size("a-big", 2, 4, 12.0),
        ];
        let reserve = crate::scheduler::DEFAULT_SYSTEM_RESERVE;
        let s = cheapest_size_that_fits(&sizes, &[], "nyc3", &reserve, &request(256, 100));
        assert_eq!(s.map(|s| s.slug.as_str()), Some("a-big"));
    }

    #[test]
    fn a_new_droplet_goes_to_the_first_preferred_region_the_pool_allows() {
        let snap = snapshot_with(vec![], fixtures::pool());
        let mut dep = burst(1, 512, 100).remove(0);
        dep.regions = vec!["lon1".into(), "sfo3".into()];
        let plan = plan_batch(&snap, &[], &[dep]);
        assert_eq!(plan.new_droplets.len(), 1);
        assert_eq!(plan.new_droplets[0].region, "sfo3");
        assert_eq!(plan.new_droplets[0].size, "s-1vcpu-1gb");
        assert_eq!(plan.new_droplets[0].name, "default-new-1");
    }

    #[test]
    fn a_burst_is_packed_onto_few_droplets_each_the_cheapest_that_holds_it() {
        let snap = snapshot_with(vec![], fixtures::pool());
        // 20 x 1 GiB: 15.5 GiB allocatable on the largest size, so 2 droplets.
        let plan = plan_batch(&snap, &[], &burst(20, 1024, 100));
        assert!(plan.unschedulable.is_empty());
        assert_eq!(plan.new_droplets.len(), 2);
        assert_eq!(plan.new_droplets[0].size, "s-8vcpu-16gb");
        assert_eq!(plan.new_droplets[0].deployments.len(), 15);
        // The rest (5 GiB) fits the 8 GiB size.
        assert_eq!(plan.new_droplets[1].size, "s-4vcpu-8gb");
        let summary = summarize(&snap, &plan);
        assert_eq!(summary.lower_bound_droplets, 2);
        assert_eq!(summary.droplets_used, 2);
        assert!((summary.monthly_cost_usd - 144.0).abs() < 1e-9);
    }

    #[test]
    fn existing_droplets_are_filled_before_new_ones_are_opened() {
        let snap = snapshot_with(vec![droplet("d1", "s-2vcpu-4gb")], fixtures::pool());
        let plan = plan_batch(&snap, &[], &burst(4, 1024, 100));
        let on_existing = plan
            .placements
            .iter()
            .filter(|p| matches!(p.target, Target::Existing(_)))
            .count();
        assert_eq!(on_existing, 3);
        assert_eq!(plan.new_droplets.len(), 1);
        assert_eq!(plan.new_droplets[0].size, "s-1vcpu-2gb");
    }

    #[test]
    fn the_droplet_limit_blocks_and_is_reported() {
        let mut pool = fixtures::pool();
        pool.sizes = vec!["s-2vcpu-4gb".into()];
        pool.limits = PoolLimits {
            max_droplets: Some(2),
            max_monthly_usd: None,
        };
        let snap = snapshot_with(vec![droplet("d1", "s-2vcpu-4gb")], pool);
        let plan = plan_batch(&snap, &[], &burst(8, 1024, 100));
        assert_eq!(plan.new_droplets.len(), 1);
        assert_eq!(plan.unschedulable.len(), 2);
        assert_eq!(
            plan.unschedulable[0].blocker,
            Blocker::MaxDroplets { limit: 2 }
        );
        assert!(
            plan.unschedulable[0]
                .reason
                .contains("pool team-a/default is at its limit of 2 droplets"),
            "{}",
            plan.unschedulable[0].reason
        );
    }

    #[test]
    fn the_cost_limit_blocks_growth_and_opening() {
        let mut pool = fixtures::pool();
        pool.limits = PoolLimits {
            max_droplets: None,
            max_monthly_usd: Some(30.0),
        };
        let snap = snapshot_with(vec![], pool);
        let plan = plan_batch(&snap, &[], &burst(6, 1024, 100));
        let total: f64 = plan.new_droplets.iter().map(|d| d.monthly_usd).sum();
        assert!(total <= 30.0, "{total}");
        assert!(!plan.unschedulable.is_empty());
        assert!(matches!(
            plan.unschedulable[0].blocker,
            Blocker::MaxMonthlyCost { .. }
        ));
    }

    #[test]
    fn pinned_and_no_auto_provision_deployments_never_open_droplets() {
        let mut full = droplet("d1", "s-1vcpu-1gb");
        full.allocated = full.allocatable;
        let snap = snapshot_with(vec![full], fixtures::pool());
        let mut deps = burst(2, 512, 100);
        deps[0].pin = Some("d1".into());
        deps[1].auto_provision = false;
        let plan = plan_batch(&snap, &[], &deps);
        assert!(plan.new_droplets.is_empty());
        let blockers: Vec<_> = plan
            .unschedulable
            .iter()
            .map(|u| u.blocker.clone())
            .collect();
        assert_eq!(
            blockers,
            vec![Blocker::PinnedDroplet, Blocker::AutoProvisionOff]
        );
    }

    #[test]
    fn the_fractional_cost_bound_mixes_sizes_like_the_linear_relaxation() {
        let gib = |g: f64| (g * GIB as f64) as u64;
        let big = (Resources::new(gib(15.5), 7750, 0), 96.0);
        let cpu_rich = (Resources::new(gib(1.5), 1750, 0), 18.0);
        // One size: the binding resource decides.
        let one = fractional_cost_lower_bound(
            &Resources::new(gib(31.0), 1000, 0),
            &Resources::ZERO,
            &[big],
        );
        assert!((one - 192.0).abs() < 1e-6, "{one}");
        // Two sizes: 0.067 big + 0.275 cpu-rich covers 1.45 GiB and 1 core for about 11.38.
        let two = fractional_cost_lower_bound(
            &Resources::new(gib(1.45), 1000, 0),
            &Resources::ZERO,
            &[big, cpu_rich],
        );
        assert!((two - 11.38).abs() < 0.05, "{two}");
        assert_eq!(
            fractional_cost_lower_bound(&Resources::ZERO, &Resources::ZERO, &[big]),
            0.0
        );
        // A size that cannot hold the smallest request does not count.
        let useless = (Resources::new(0, 750, 0), 4.0);
        let smallest = Resources::new(gib(0.25), 250, 0);
        let with = fractional_cost_lower_bound(
            &Resources::new(gib(1.45), 1000, 0),
            &smallest,
            &[big, cpu_rich, useless],
        );
        assert!((with - two).abs() < 1e-9, "{with} vs {two}");
    }

    #[test]
    fn a_small_burst_is_packed_optimally_where_first_fit_decreasing_is_not() {
        // The tight 11/9 instance for FFD, scaled to an s-4vcpu-8gb (7,680 MiB allocatable).
        let mut pool = fixtures::pool();
        pool.sizes = vec!["s-4vcpu-8gb".into()];
        let snap = snapshot_with(vec![], pool);
        let share = |pct: u64| request(7680 * pct / 100, 10);
        let mut deps = Vec::new();
        for (pct, count) in [(51, 6), (27, 6), (26, 6), (23, 12)] {
            for _ in 0..count {
                let n = deps.len();
                deps.push(PendingDeployment::new(
                    format!("team-a/s{n:02}"),
                    share(pct),
                    fixtures::POOL,
                ));
            }
        }
        let items: Vec<Resources> = deps.iter().map(|d| d.request).collect();
        let cap = request(7680, 3750);
        assert_eq!(
            crate::scheduler::exact::first_fit_decreasing(&items, &cap),
            11
        );
        let plan = plan_batch(&snap, &[], &deps);
        assert_eq!(plan.new_droplets.len(), 9);
        assert!(
            plan.new_droplets
                .iter()
                .all(|d| d.used.fits_in(&d.allocatable))
        );
        assert_eq!(plan.placements.len(), 30);
    }

    #[test]
    fn a_request_larger_than_every_size_is_unschedulable() {
        let snap = snapshot_with(vec![], fixtures::pool());
        let plan = plan_batch(&snap, &[], &burst(1, 64 * 1024, 100));
        assert_eq!(plan.unschedulable[0].blocker, Blocker::NoSizeFits);
        assert_eq!(summarize(&snap, &plan).packing_efficiency, 1.0);
    }
}
