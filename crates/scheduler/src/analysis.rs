//! Figures about a plan for reports and benchmarks (not on the decision path): droplets used
//! against the lower bound, cost against the fractional cost bound, utilization.

use crate::model::Resources;
use crate::packing::BatchPlan;
use crate::snapshot::Snapshot;

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
            r.memory as f64 / crate::model::GIB as f64,
            r.cpu_millis as f64 / 1000.0,
            r.disk as f64 / crate::model::GIB as f64,
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
        let u = plan
            .usage
            .get(i)
            .copied()
            .unwrap_or(snapshot.reported_usage()[i]);
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
    use crate::model::GIB;

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
}
