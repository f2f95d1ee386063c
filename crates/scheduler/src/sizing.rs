//! Size choice: the cheapest allowed size that holds a demand, and the region a new droplet
//! goes to.

use crate::model::{PendingDeployment, Pool, Resources, SizeOffer};

/// The cheapest size in `region`, among `allowed` slugs (all sizes when empty), whose
/// allocatable (capacity minus `reserve`) holds `demand`. Equal prices go to the larger
/// allocatable (more headroom), then to the slug.
pub fn cheapest_size_that_fits<'a>(
    sizes: &'a [SizeOffer],
    allowed: &[String],
    region: &str,
    reserve: &Resources,
    demand: &Resources,
) -> Option<&'a SizeOffer> {
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

fn headroom(size: &SizeOffer, reserve: &Resources) -> (u64, u64, u64) {
    let a = size.allocatable(reserve);
    (a.memory, a.cpu_millis, a.disk)
}

/// The largest allocatable of the allowed sizes in `region`, per resource: a virtual
/// droplet never packs more than this.
pub fn largest_allocatable(sizes: &[SizeOffer], pool: &Pool, region: &str) -> Option<Resources> {
    sizes
        .iter()
        .filter(|s| pool.sizes.is_empty() || pool.sizes.iter().any(|a| a == &s.slug))
        .filter(|s| s.available_in(region))
        .map(|s| s.allocatable(&pool.reserve))
        .max_by_key(|a| (a.memory, a.cpu_millis, a.disk))
}

/// Regions to try for a deployment: its preferred regions the pool allows, in its order,
/// then the pool's regions in the pool's order.
pub fn region_order<'a>(pool: &'a Pool, deployment: &'a PendingDeployment) -> Vec<&'a str> {
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
pub fn best_region_and_size<'a>(
    sizes: &'a [SizeOffer],
    pool: &'a Pool,
    deployment: &'a PendingDeployment,
) -> Option<(&'a str, &'a SizeOffer)> {
    region_order(pool, deployment).into_iter().find_map(|r| {
        cheapest_size_that_fits(sizes, &pool.sizes, r, &pool.reserve, &deployment.request)
            .map(|s| (r, s))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, request};

    #[test]
    fn cheapest_size_that_fits_skips_sizes_the_reserve_makes_too_small() {
        let sizes = fixtures::test_sizes();
        let reserve = crate::DEFAULT_SYSTEM_RESERVE;
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
        let reserve = crate::DEFAULT_SYSTEM_RESERVE;
        let s = cheapest_size_that_fits(&sizes, &[], "nyc3", &reserve, &request(256, 100));
        assert_eq!(s.map(|s| s.slug.as_str()), Some("a-big"));
    }
}
