//! Builders for scheduler test data (tests, property tests and benchmarks).
//!
//! The sizes here are a small stand-in shaped like DigitalOcean's basic family so tests do
//! not depend on the embedded catalogue; production code takes sizes from the operator's
//! `catalog::size_offers`. Compiled only for tests and with the `testing` feature.

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{
    DEFAULT_SYSTEM_RESERVE, DropletPhase, FleetDroplet, GIB, Location, Pool, Region, Resources,
    SizeOffer,
};

/// Namespace used by the builders.
pub const NAMESPACE: &str = "team-a";
/// Pool name used by the builders.
pub const POOL: &str = "team-a/default";

/// A size with `vcpus`, `memory_gib` and a disk of 25 GiB per vCPU, in every test region.
pub fn size(slug: &str, vcpus: u64, memory_gib: u64, monthly_usd: f64) -> SizeOffer {
    SizeOffer {
        slug: slug.to_string(),
        capacity: Resources::new(memory_gib * GIB, vcpus * 1000, (25 + 25 * vcpus) * GIB),
        hourly_usd: monthly_usd / 730.0,
        monthly_usd,
        regions: test_regions().into_iter().map(|r| r.slug).collect(),
    }
}

/// Six sizes shaped like the basic family, cheapest first.
pub fn test_sizes() -> Vec<SizeOffer> {
    vec![
        size("s-1vcpu-1gb", 1, 1, 6.0),
        size("s-1vcpu-2gb", 1, 2, 12.0),
        size("s-2vcpu-2gb", 2, 2, 18.0),
        size("s-2vcpu-4gb", 2, 4, 24.0),
        size("s-4vcpu-8gb", 4, 8, 48.0),
        size("s-8vcpu-16gb", 8, 16, 96.0),
    ]
}

/// Three regions with their real coordinates.
pub fn test_regions() -> Vec<Region> {
    let region = |slug: &str, latitude: f64, longitude: f64| Region {
        slug: slug.to_string(),
        location: Location {
            latitude,
            longitude,
        },
    };
    vec![
        region("nyc3", 40.71, -74.01),
        region("sfo3", 37.77, -122.42),
        region("ams3", 52.37, 4.90),
    ]
}

/// The default test pool: all test regions (nyc3 first) and all test sizes.
pub fn pool() -> Pool {
    Pool::new(
        POOL,
        vec!["nyc3".into(), "sfo3".into(), "ams3".into()],
        test_sizes().into_iter().map(|s| s.slug).collect(),
    )
}

/// A Ready, healthy droplet of the named test size in nyc3 of the default pool, empty.
pub fn droplet(name: &str, size_slug: &str) -> FleetDroplet {
    let sizes = test_sizes();
    let size = sizes
        .iter()
        .find(|s| s.slug == size_slug)
        .unwrap_or(&sizes[3]);
    FleetDroplet {
        namespace: NAMESPACE.to_string(),
        name: name.to_string(),
        pool: POOL.to_string(),
        region: "nyc3".to_string(),
        size: size.slug.clone(),
        labels: BTreeMap::new(),
        allocatable: size.allocatable(&DEFAULT_SYSTEM_RESERVE),
        unlisted_usage: Resources::ZERO,
        deployments: Vec::new(),
        phase: DropletPhase::Ready,
        healthy: true,
        cordoned: false,
        observed_load: None,
        heartbeat_age: Some(Duration::from_secs(5)),
        recent_failures: 0,
        hourly_usd: size.hourly_usd,
        monthly_usd: size.monthly_usd,
        since_last_change: Some(Duration::from_secs(3600)),
        do_not_disrupt: false,
    }
}

/// A request of `memory_mib` MiB, `cpu_millis` and no disk.
pub fn request(memory_mib: u64, cpu_millis: u64) -> Resources {
    Resources::new(memory_mib * super::model::MIB, cpu_millis, 0)
}
