//! An exact bin-packing solver for small cases (up to about 30 deployments), used by tests
//! and the quality benchmark to compare the packer against the optimum.
//!
//! Depth-first branch and bound over items sorted largest first: each item goes into an
//! open bin with room (bins with identical loads are tried once) or one new bin; a branch is
//! cut when the open bins plus the remaining demand that cannot fit in their free space
//! already reach the best known count. First-fit decreasing gives the starting bound.

use super::model::Resources;

/// Result of the exact search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExactResult {
    /// Fewest bins found.
    pub bins: usize,
    /// True when the search finished (or met the lower bound), so `bins` is optimal.
    pub proven: bool,
    /// Search nodes visited.
    pub nodes: u64,
}

/// max over resources of ceil(total / capacity): no packing uses fewer bins.
pub fn lower_bound_bins(items: &[Resources], capacity: &Resources) -> usize {
    let total = items.iter().fold(Resources::ZERO, |a, r| a.plus(*r));
    [
        (total.memory, capacity.memory),
        (total.cpu_millis, capacity.cpu_millis),
        (total.disk, capacity.disk),
    ]
    .iter()
    .filter(|(_, c)| *c > 0)
    .map(|(t, c)| t.div_ceil(*c) as usize)
    .max()
    .unwrap_or(0)
}

/// First-fit decreasing bin count for one bin capacity (items that fit no bin are ignored).
pub fn first_fit_decreasing(items: &[Resources], capacity: &Resources) -> usize {
    let mut sorted: Vec<Resources> = items
        .iter()
        .copied()
        .filter(|r| r.fits_in(capacity))
        .collect();
    sort_decreasing(&mut sorted, capacity);
    let mut bins: Vec<Resources> = Vec::new();
    for item in sorted {
        match bins.iter_mut().find(|b| b.plus(item).fits_in(capacity)) {
            Some(b) => *b = b.plus(item),
            None => bins.push(item),
        }
    }
    bins.len()
}

fn sort_decreasing(items: &mut [Resources], capacity: &Resources) {
    items.sort_by(|a, b| {
        b.dominant_share_of(capacity)
            .total_cmp(&a.dominant_share_of(capacity))
    });
}

struct Search<'a> {
    items: Vec<Resources>,
    suffix: Vec<Resources>,
    suffix_min: Vec<Resources>,
    placed_at: Vec<usize>,
    capacity: &'a Resources,
    best: usize,
    lower: usize,
    nodes: u64,
    node_limit: u64,
    bins: Vec<Resources>,
    best_assignment: Vec<usize>,
}

impl Search<'_> {
    fn bound(&self, next: usize) -> usize {
        // Free space counts only in bins that some remaining item could still enter: an
        // item needs at least the smallest remaining amount of every resource.
        let smallest = self.suffix_min[next];
        let free = self.bins.iter().fold(Resources::ZERO, |a, b| {
            let room = self.capacity.minus(*b);
            if smallest.fits_in(&room) {
                a.plus(room)
            } else {
                a
            }
        });
        let rest = self.suffix[next];
        let need = rest.minus(free);
        let extra = [
            (need.memory, self.capacity.memory),
            (need.cpu_millis, self.capacity.cpu_millis),
            (need.disk, self.capacity.disk),
        ]
        .iter()
        .filter(|(_, c)| *c > 0)
        .map(|(n, c)| n.div_ceil(*c) as usize)
        .max()
        .unwrap_or(0);
        self.bins.len() + extra
    }

    fn run(&mut self, next: usize) {
        if self.best == self.lower || self.nodes >= self.node_limit {
            return;
        }
        self.nodes += 1;
        if next == self.items.len() {
            if self.bins.len() < self.best {
                self.best = self.bins.len();
                self.best_assignment.clone_from(&self.placed_at);
            }
            return;
        }
        if self.bound(next) >= self.best {
            return;
        }
        let item = self.items[next];
        // Identical items go into bins in non-decreasing order, which removes permutations.
        let first = if next > 0 && self.items[next - 1] == item {
            self.placed_at[next - 1]
        } else {
            0
        };
        let mut tried: Vec<Resources> = Vec::new();
        for b in first..self.bins.len() {
            let load = self.bins[b];
            if tried.contains(&load) || !load.plus(item).fits_in(self.capacity) {
                continue;
            }
            tried.push(load);
            self.bins[b] = load.plus(item);
            self.placed_at[next] = b;
            self.run(next + 1);
            self.bins[b] = load;
        }
        if self.bins.len() + 1 < self.best {
            self.bins.push(item);
            self.placed_at[next] = self.bins.len() - 1;
            self.run(next + 1);
            self.bins.pop();
        }
    }
}

/// First-fit decreasing over already sorted items: the bin count and each item's bin.
fn first_fit_assignment(sorted: &[Resources], capacity: &Resources) -> (usize, Vec<usize>) {
    let mut bins: Vec<Resources> = Vec::new();
    let mut assignment = Vec::with_capacity(sorted.len());
    for item in sorted {
        match bins.iter().position(|b| b.plus(*item).fits_in(capacity)) {
            Some(b) => {
                bins[b] = bins[b].plus(*item);
                assignment.push(b);
            }
            None => {
                bins.push(*item);
                assignment.push(bins.len() - 1);
            }
        }
    }
    (bins.len(), assignment)
}

/// Branch and bound over items already sorted largest first; returns the result and the
/// best assignment found (bin per sorted item).
fn search_sorted(
    sorted: Vec<Resources>,
    capacity: &Resources,
    node_limit: u64,
) -> (ExactResult, Vec<usize>) {
    let mut suffix = vec![Resources::ZERO; sorted.len() + 1];
    for i in (0..sorted.len()).rev() {
        suffix[i] = suffix[i + 1].plus(sorted[i]);
    }
    let mut suffix_min = vec![Resources::new(u64::MAX, u64::MAX, u64::MAX); sorted.len() + 1];
    for i in (0..sorted.len()).rev() {
        let (a, b) = (suffix_min[i + 1], sorted[i]);
        suffix_min[i] = Resources::new(
            a.memory.min(b.memory),
            a.cpu_millis.min(b.cpu_millis),
            a.disk.min(b.disk),
        );
    }
    let placed_at = vec![0; sorted.len()];
    let (upper, incumbent) = first_fit_assignment(&sorted, capacity);
    let lower = lower_bound_bins(&sorted, capacity);
    let mut search = Search {
        items: sorted,
        suffix,
        suffix_min,
        placed_at,
        capacity,
        best: upper,
        lower,
        nodes: 0,
        node_limit,
        bins: Vec::new(),
        best_assignment: incumbent,
    };
    search.run(0);
    (
        ExactResult {
            bins: search.best,
            proven: search.best == lower || search.nodes < node_limit,
            nodes: search.nodes,
        },
        search.best_assignment,
    )
}

/// The fewest bins of `capacity` that hold every item, searching at most `node_limit`
/// nodes. Items larger than the capacity are ignored.
pub fn optimal_bins(items: &[Resources], capacity: &Resources, node_limit: u64) -> ExactResult {
    let mut sorted: Vec<Resources> = items
        .iter()
        .copied()
        .filter(|r| r.fits_in(capacity))
        .collect();
    sort_decreasing(&mut sorted, capacity);
    search_sorted(sorted, capacity, node_limit).0
}

/// Like [`optimal_bins`], but also says which bin each item goes to (indexed like
/// `items`). `None` when some item fits no bin.
pub fn optimal_assignment(
    items: &[Resources],
    capacity: &Resources,
    node_limit: u64,
) -> Option<(ExactResult, Vec<usize>)> {
    if items.iter().any(|r| !r.fits_in(capacity)) {
        return None;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        items[b]
            .dominant_share_of(capacity)
            .total_cmp(&items[a].dominant_share_of(capacity))
    });
    let sorted: Vec<Resources> = order.iter().map(|&i| items[i]).collect();
    let (result, sorted_assignment) = search_sorted(sorted, capacity, node_limit);
    let mut assignment = vec![0; items.len()];
    for (k, &i) in order.iter().enumerate() {
        assignment[i] = sorted_assignment[k];
    }
    Some((result, assignment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_d(sizes: &[u64]) -> Vec<Resources> {
        sizes.iter().map(|s| Resources::new(*s, 0, 0)).collect()
    }

    #[test]
    fn finds_the_optimum_where_first_fit_decreasing_needs_eleven_ninths() {
        // The classic tight FFD instance: OPT 9, FFD 11.
        let mut sizes = vec![51; 6];
        sizes.extend([27; 6]);
        sizes.extend([26; 6]);
        sizes.extend([23; 12]);
        let items = one_d(&sizes);
        let cap = Resources::new(100, 0, 0);
        assert_eq!(first_fit_decreasing(&items, &cap), 11);
        let r = optimal_bins(&items, &cap, 5_000_000);
        assert_eq!((r.bins, r.proven), (9, true));
    }

    #[test]
    fn two_dimensional_items_that_pair_up_need_the_pairing() {
        // Memory-heavy and cpu-heavy items fit two per bin only when mixed.
        let items = vec![
            Resources::new(70, 20, 0),
            Resources::new(70, 20, 0),
            Resources::new(20, 70, 0),
            Resources::new(20, 70, 0),
        ];
        let cap = Resources::new(100, 100, 0);
        let r = optimal_bins(&items, &cap, 100_000);
        assert_eq!((r.bins, r.proven), (2, true));
        assert_eq!(lower_bound_bins(&items, &cap), 2);
    }

    #[test]
    fn the_assignment_is_a_valid_packing_with_the_optimal_count() {
        let mut sizes = vec![51; 6];
        sizes.extend([27; 6]);
        sizes.extend([26; 6]);
        sizes.extend([23; 12]);
        let items = one_d(&sizes);
        let cap = Resources::new(100, 0, 0);
        let (r, assignment) = optimal_assignment(&items, &cap, 5_000_000).unwrap();
        assert_eq!(r.bins, 9);
        let mut loads = vec![Resources::ZERO; r.bins];
        for (item, bin) in items.iter().zip(&assignment) {
            loads[*bin] = loads[*bin].plus(*item);
        }
        assert!(loads.iter().all(|l| l.fits_in(&cap) && !l.is_zero()));
        assert!(optimal_assignment(&one_d(&[101]), &cap, 10).is_none());
    }

    #[test]
    fn empty_input_needs_no_bins() {
        let r = optimal_bins(&[], &Resources::new(1, 1, 1), 10);
        assert_eq!((r.bins, r.proven), (0, true));
    }
}
