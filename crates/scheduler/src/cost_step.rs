//! The cost step of the lowest-cost objective (decision 0507): lopsided deployments packed
//! into smaller template sizes that sell the batch's binding resource cheaper.

use crate::model::{PendingDeployment, Resources};
use crate::packing::{
    Leftover, NewPacking, PackingObjective, PoolSpend, ordering_capacity, pack_new,
};
use crate::snapshot::Snapshot;

/// Grid steps of the cost step's first sweep over how many deployments get a template.
const TEMPLATE_SWEEP_STEPS: usize = 16;

/// The cost step: moves the deployments that are most lopsided toward the batch's binding
/// resource onto droplets of a smaller template size that sells that resource cheaper
/// (per unit per month) than the pool's largest size, when that gives a better packing
/// under `objective`. For each pool and each such size (best price per unit first) it
/// tries the k most lopsided deployments that fit the size, k on a coarse grid then a fine
/// grid around the best, and keeps the best packing. Returns `best` when nothing beats it.
pub(crate) fn cost_step(
    snapshot: &Snapshot,
    pending: &[PendingDeployment],
    leftovers: &[Leftover],
    spend: &[PoolSpend],
    objective: PackingObjective,
    mut best: NewPacking,
) -> NewPacking {
    let sizes = snapshot.sizes();
    let mut working: Vec<Leftover> = leftovers.to_vec();
    let mut pools: Vec<usize> = working.iter().map(|l| l.pool).collect();
    pools.sort_unstable();
    pools.dedup();
    for pi in pools {
        let pool = &snapshot.pools()[pi];
        let cap = ordering_capacity(snapshot, Some(pi));
        let total = working
            .iter()
            .filter(|l| l.pool == pi)
            .fold(Resources::ZERO, |a, l| a.plus(pending[l.index].request));
        let shares = total.shares_of(&cap);
        let Some(binding) = (0..3)
            .filter(|&k| shares[k].is_finite())
            .max_by(|&a, &b| shares[a].total_cmp(&shares[b]))
        else {
            continue;
        };
        let amount = |r: &Resources| [r.memory, r.cpu_millis, r.disk][binding] as f64;
        let allowed: Vec<usize> = (0..sizes.len())
            .filter(|&i| pool.sizes.is_empty() || pool.sizes.iter().any(|a| a == &sizes[i].slug))
            .filter(|&i| sizes[i].monthly_usd > 0.0)
            .collect();
        // The reference: the allowed size with the largest allocatable, as first-fit uses.
        let Some(reference) = allowed.iter().copied().max_by_key(|&i| {
            let a = sizes[i].allocatable(&pool.reserve);
            (a.memory, a.cpu_millis, a.disk)
        }) else {
            continue;
        };
        let per_usd =
            |i: usize| amount(&sizes[i].allocatable(&pool.reserve)) / sizes[i].monthly_usd;
        let mut templates: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|&i| per_usd(i) > per_usd(reference) * (1.0 + 1e-9))
            .collect();
        templates.sort_by(|&a, &b| {
            per_usd(b)
                .total_cmp(&per_usd(a))
                .then_with(|| sizes[a].slug.cmp(&sizes[b].slug))
        });
        for t in templates {
            let talloc = sizes[t].allocatable(&pool.reserve);
            // Lopsidedness: the binding resource's share minus the largest other share.
            let skew = |r: &Resources| {
                let s = r.shares_of(&cap);
                let other = (0..3)
                    .filter(|&k| k != binding && s[k].is_finite())
                    .map(|k| s[k])
                    .fold(0.0, f64::max);
                s[binding] - other
            };
            let mut eligible: Vec<usize> = (0..working.len())
                .filter(|&w| {
                    let l = &working[w];
                    l.pool == pi
                        && l.template.is_none()
                        && pending[l.index].request.fits_in(&talloc)
                })
                .collect();
            if eligible.is_empty() {
                continue;
            }
            eligible.sort_by(|&a, &b| {
                let (ra, rb) = (&pending[working[a].index], &pending[working[b].index]);
                skew(&rb.request)
                    .total_cmp(&skew(&ra.request))
                    .then_with(|| ra.key.cmp(&rb.key))
            });
            let n = eligible.len();
            let try_k = |k: usize| {
                let mut candidate = working.clone();
                for &w in &eligible[..k] {
                    candidate[w].template = Some(t);
                }
                let packing = pack_new(snapshot, pending, &candidate, spend);
                (candidate, packing)
            };
            let step = n.div_ceil(TEMPLATE_SWEEP_STEPS).max(1);
            let mut best_k = 0;
            let mut best_here: Option<Vec<Leftover>> = None;
            let coarse: Vec<usize> = (1..=n.div_ceil(step)).map(|i| (i * step).min(n)).collect();
            for k in coarse {
                let (candidate, packing) = try_k(k);
                if objective.prefers(&packing, &best) {
                    best = packing;
                    best_k = k;
                    best_here = Some(candidate);
                }
            }
            if step > 1 {
                let centre = best_k;
                let fine = step.div_ceil(8).max(1);
                let lo = centre.saturating_sub(step - 1).max(1);
                let hi = (centre + step - 1).min(n);
                for k in (lo..=hi).step_by(fine).filter(|&k| k != centre) {
                    let (candidate, packing) = try_k(k);
                    if objective.prefers(&packing, &best) {
                        best = packing;
                        best_here = Some(candidate);
                    }
                }
            }
            if let Some(candidate) = best_here {
                working = candidate;
            }
        }
    }
    best
}
