//! The embedded DigitalOcean size and region catalogue.
//!
//! Used offline (the `plan` command, the simulated DigitalOcean) and as the fallback when the live
//! `/v2/sizes` and `/v2/regions` cannot be read. Figures are from `shared/research/digitalocean.md`
//! sections 6 and 7: the Basic Regular family and two General Purpose sizes are confirmed by captured
//! API responses; rows marked `approximate` are not, and the live API always wins over this table.
//! Hourly prices follow DigitalOcean's rule: monthly price divided by the 672-hour monthly cap.
//!
//! This table is the one source of truth; the other shapes are thin conversions at the edges:
//! [`size_offers`] and [`region_locations`] (the scheduler's model, here) and
//! `cloud::offline_catalog` (the API's wire shape, `cloud::models`).

use scheduler::{Location, Region, Resources, SizeOffer};

/// Hours in DigitalOcean's monthly billing cap: hourly price = monthly price / 672.
pub const BILLING_HOURS_PER_MONTH: f64 = 672.0;

/// One droplet size as sold by DigitalOcean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizeSpec {
    /// The API slug, e.g. `s-2vcpu-4gb`.
    pub slug: &'static str,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB (the API's `memory`, which it calls MB).
    pub memory_mib: u64,
    /// Disk in GiB (the API's `disk`, which it calls GB).
    pub disk_gib: u64,
    /// Outbound transfer included per month, in TB.
    pub transfer_tb: f64,
    /// Price per month in USD.
    pub price_monthly: f64,
    /// The API's `description`, e.g. `Basic` or `General Purpose`.
    pub description: &'static str,
    /// Regions where the size can be created; empty means every available region.
    pub only_regions: &'static [&'static str],
    /// True where the figures are not confirmed by a captured API response.
    pub approximate: bool,
}

impl SizeSpec {
    /// Price per hour in USD (monthly / 672, DigitalOcean's rule).
    pub fn price_hourly(&self) -> f64 {
        self.price_monthly / BILLING_HOURS_PER_MONTH
    }

    /// Memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }

    /// CPU in millicores (one vCPU is 1000m).
    pub fn cpu_millis(&self) -> u64 {
        u64::from(self.vcpus) * 1000
    }

    /// Disk in bytes.
    pub fn disk_bytes(&self) -> u64 {
        self.disk_gib * 1024 * 1024 * 1024
    }

    /// Raw capacity in the scheduler's units (before any system reserve).
    pub fn capacity(&self) -> Resources {
        Resources::new(self.memory_bytes(), self.cpu_millis(), self.disk_bytes())
    }

    /// Whether the size is sold in `region` (by this catalogue; the live API is authoritative).
    pub fn sold_in(&self, region: &str) -> bool {
        let region_open = self::region(region).is_some_and(|r| r.available);
        region_open && (self.only_regions.is_empty() || self.only_regions.contains(&region))
    }
}

/// One DigitalOcean region (datacenter) with an approximate location for latency scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RegionSpec {
    /// The API slug, e.g. `nyc3`.
    pub slug: &'static str,
    /// The API name, e.g. `New York 3`.
    pub name: &'static str,
    /// Approximate latitude of the city, in degrees.
    pub latitude: f64,
    /// Approximate longitude of the city, in degrees.
    pub longitude: f64,
    /// Whether new droplets can be created there.
    pub available: bool,
}

impl RegionSpec {
    /// Where the region is, in the scheduler's model.
    pub fn location(&self) -> Location {
        Location {
            latitude: self.latitude,
            longitude: self.longitude,
        }
    }

    /// Great-circle distance to another region in kilometres (the scheduler's haversine).
    pub fn distance_km(&self, other: &RegionSpec) -> f64 {
        self.location().distance_km(&other.location())
    }
}

// One row of the size table; positional on purpose so the table reads like the research table.
#[allow(clippy::too_many_arguments)]
const fn size_row(
    slug: &'static str,
    vcpus: u32,
    memory_mib: u64,
    disk_gib: u64,
    transfer_tb: f64,
    price_monthly: f64,
    description: &'static str,
    approximate: bool,
) -> SizeSpec {
    SizeSpec {
        slug,
        vcpus,
        memory_mib,
        disk_gib,
        transfer_tb,
        price_monthly,
        description,
        only_regions: &[],
        approximate,
    }
}

const SMALLEST_SIZE_REGIONS: &[&str] = &["ams3", "fra1", "nyc1", "sfo2", "sfo3", "sgp1", "syd1"];

static SIZES: &[SizeSpec] = &[
    SizeSpec {
        only_regions: SMALLEST_SIZE_REGIONS,
        ..size_row("s-1vcpu-512mb-10gb", 1, 512, 10, 0.5, 4.0, "Basic", false)
    },
    size_row("s-1vcpu-1gb", 1, 1024, 25, 1.0, 6.0, "Basic", false),
    size_row("s-1vcpu-2gb", 1, 2048, 50, 2.0, 12.0, "Basic", false),
    size_row("s-2vcpu-2gb", 2, 2048, 60, 3.0, 18.0, "Basic", false),
    size_row("s-2vcpu-4gb", 2, 4096, 80, 4.0, 24.0, "Basic", false),
    size_row("s-4vcpu-8gb", 4, 8192, 160, 5.0, 48.0, "Basic", false),
    size_row("s-8vcpu-16gb", 8, 16384, 320, 6.0, 96.0, "Basic", false),
    size_row("s-1vcpu-1gb-amd", 1, 1024, 25, 1.0, 7.0, "Basic", true),
    size_row("s-1vcpu-2gb-amd", 1, 2048, 50, 2.0, 14.0, "Basic", true),
    size_row("s-2vcpu-2gb-amd", 2, 2048, 60, 3.0, 21.0, "Basic", true),
    size_row("s-2vcpu-4gb-amd", 2, 4096, 80, 4.0, 28.0, "Basic", true),
    size_row("s-4vcpu-8gb-amd", 4, 8192, 160, 5.0, 56.0, "Basic", true),
    size_row("s-8vcpu-16gb-amd", 8, 16384, 320, 6.0, 112.0, "Basic", true),
    size_row(
        "g-2vcpu-8gb",
        2,
        8192,
        25,
        4.0,
        63.0,
        "General Purpose",
        false,
    ),
    size_row(
        "g-4vcpu-16gb",
        4,
        16384,
        50,
        5.0,
        126.0,
        "General Purpose",
        false,
    ),
    size_row(
        "g-8vcpu-32gb",
        8,
        32768,
        100,
        6.0,
        252.0,
        "General Purpose",
        true,
    ),
    size_row(
        "g-16vcpu-64gb",
        16,
        65536,
        200,
        7.0,
        504.0,
        "General Purpose",
        true,
    ),
];

const fn region_row(
    slug: &'static str,
    name: &'static str,
    latitude: f64,
    longitude: f64,
    available: bool,
) -> RegionSpec {
    RegionSpec {
        slug,
        name,
        latitude,
        longitude,
        available,
    }
}

static REGIONS: &[RegionSpec] = &[
    region_row("nyc1", "New York 1", 40.71, -74.01, true),
    region_row("nyc2", "New York 2", 40.71, -74.01, false),
    region_row("nyc3", "New York 3", 40.71, -74.01, true),
    region_row("sfo1", "San Francisco 1", 37.77, -122.42, false),
    region_row("sfo2", "San Francisco 2", 37.77, -122.42, true),
    region_row("sfo3", "San Francisco 3", 37.77, -122.42, true),
    region_row("tor1", "Toronto 1", 43.65, -79.38, true),
    region_row("atl1", "Atlanta 1", 33.75, -84.39, true),
    region_row("ams2", "Amsterdam 2", 52.37, 4.90, false),
    region_row("ams3", "Amsterdam 3", 52.37, 4.90, true),
    region_row("lon1", "London 1", 51.51, -0.13, true),
    region_row("fra1", "Frankfurt 1", 50.11, 8.68, true),
    region_row("blr1", "Bangalore 1", 12.97, 77.59, true),
    region_row("sgp1", "Singapore 1", 1.35, 103.82, true),
    region_row("syd1", "Sydney 1", -33.87, 151.21, true),
];

/// Every size in the catalogue, cheapest first within each family.
pub fn sizes() -> &'static [SizeSpec] {
    SIZES
}

/// The size with this slug, if the catalogue knows it.
pub fn size(slug: &str) -> Option<&'static SizeSpec> {
    SIZES.iter().find(|s| s.slug == slug)
}

/// Every region in the catalogue, including legacy ones that take no new droplets.
pub fn regions() -> &'static [RegionSpec] {
    REGIONS
}

/// The region with this slug, if the catalogue knows it.
pub fn region(slug: &str) -> Option<&'static RegionSpec> {
    REGIONS.iter().find(|r| r.slug == slug)
}

/// The default allowed sizes of a pool: the Basic Regular family (shared CPU, SSD).
pub fn default_pool_sizes() -> Vec<&'static str> {
    SIZES
        .iter()
        .filter(|s| s.description == "Basic" && !s.slug.ends_with("-amd"))
        .map(|s| s.slug)
        .collect()
}

/// A catalogue size as the scheduler's offer: capacity, prices and the available regions
/// where it is sold.
pub fn size_offer(spec: &SizeSpec) -> SizeOffer {
    SizeOffer {
        slug: spec.slug.to_string(),
        capacity: spec.capacity(),
        hourly_usd: spec.price_hourly(),
        monthly_usd: spec.price_monthly,
        regions: REGIONS
            .iter()
            .filter(|r| r.available && spec.sold_in(r.slug))
            .map(|r| r.slug.to_string())
            .collect(),
    }
}

/// Every catalogue size as the scheduler's offer.
pub fn size_offers() -> Vec<SizeOffer> {
    SIZES.iter().map(size_offer).collect()
}

/// Every catalogue region with its location, in the scheduler's model.
pub fn region_locations() -> Vec<Region> {
    REGIONS
        .iter()
        .map(|r| Region {
            slug: r.slug.to_string(),
            location: r.location(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_price_follows_the_672_hour_rule() {
        let s = size("s-2vcpu-4gb").unwrap();
        assert!((s.price_hourly() - 0.03571).abs() < 1e-5);
        let g = size("g-2vcpu-8gb").unwrap();
        assert!((g.price_hourly() - 0.09375).abs() < 1e-5);
    }

    #[test]
    fn slugs_are_unique() {
        let mut slugs: Vec<_> = sizes().iter().map(|s| s.slug).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), sizes().len());
        let mut regions: Vec<_> = regions().iter().map(|r| r.slug).collect();
        regions.sort_unstable();
        regions.dedup();
        assert_eq!(regions.len(), super::regions().len());
    }

    #[test]
    fn smallest_size_is_sold_only_in_some_regions() {
        let s = size("s-1vcpu-512mb-10gb").unwrap();
        assert!(s.sold_in("fra1"));
        assert!(!s.sold_in("lon1"));
        assert!(size("s-1vcpu-1gb").unwrap().sold_in("lon1"));
        assert!(
            !size("s-1vcpu-1gb").unwrap().sold_in("nyc2"),
            "legacy region takes no droplets"
        );
        assert!(!size("s-1vcpu-1gb").unwrap().sold_in("mars1"));
    }

    #[test]
    fn distances_are_plausible() {
        let nyc = region("nyc3").unwrap();
        let lon = region("lon1").unwrap();
        let d = nyc.distance_km(lon);
        assert!(
            (5500.0..5650.0).contains(&d),
            "NYC-London is about 5,570 km, got {d}"
        );
        assert!(nyc.distance_km(region("nyc1").unwrap()) < 1.0);
    }

    #[test]
    fn the_scheduler_shape_is_a_conversion_of_the_same_rows() {
        let offers = size_offers();
        assert_eq!(offers.len(), sizes().len());
        let small = offers
            .iter()
            .find(|o| o.slug == "s-1vcpu-512mb-10gb")
            .unwrap();
        assert_eq!(small.capacity, Resources::new(512 << 20, 1000, 10 << 30));
        assert!(small.regions.contains(&"fra1".to_string()));
        assert!(!small.regions.contains(&"lon1".to_string()));
        assert!((small.hourly_usd - 4.0 / 672.0).abs() < 1e-12);
        let nyc = region_locations()
            .into_iter()
            .find(|r| r.slug == "nyc3")
            .unwrap();
        assert_eq!(nyc.location, region("nyc3").unwrap().location());
    }

    #[test]
    fn default_pool_sizes_are_the_basic_regular_family() {
        let d = default_pool_sizes();
        assert!(d.contains(&"s-1vcpu-1gb"));
        assert!(!d.iter().any(|s| s.ends_with("-amd") || s.starts_with("g-")));
    }
}
