//! The embedded catalogue (`crate::catalog`) in the API's wire shape: the client's offline
//! fallback and what the simulated DigitalOcean serves on `/v2/sizes` and `/v2/regions`.

use crate::catalog;
use crate::cloud::models::{Region, Size};

/// Features every simulated region offers (the set the API lists for current regions).
pub const REGION_FEATURES: [&str; 6] = [
    "backups",
    "ipv6",
    "metadata",
    "install_agent",
    "storage",
    "image_transfer",
];

/// One catalogue size as the API's size object.
pub fn size_model(spec: &catalog::SizeSpec) -> Size {
    let regions = catalog::regions()
        .iter()
        .filter(|r| spec.sold_in(r.slug))
        .map(|r| r.slug.to_owned())
        .collect();
    Size {
        slug: spec.slug.to_owned(),
        memory: spec.memory_mib,
        vcpus: spec.vcpus,
        disk: spec.disk_gib,
        transfer: spec.transfer_tb,
        price_monthly: spec.price_monthly,
        price_hourly: (spec.price_hourly() * 100_000.0).round() / 100_000.0,
        regions,
        available: true,
        description: spec.description.to_owned(),
    }
}

/// One catalogue region as the API's region object.
pub fn region_model(spec: &catalog::RegionSpec) -> Region {
    let sizes = if spec.available {
        catalog::sizes()
            .iter()
            .filter(|s| s.sold_in(spec.slug))
            .map(|s| s.slug.to_owned())
            .collect()
    } else {
        Vec::new()
    };
    Region {
        name: spec.name.to_owned(),
        slug: spec.slug.to_owned(),
        features: REGION_FEATURES.iter().map(|f| (*f).to_owned()).collect(),
        available: spec.available,
        sizes,
    }
}

/// Every catalogue size in the API's shape.
pub fn sizes() -> Vec<Size> {
    catalog::sizes().iter().map(size_model).collect()
}

/// Every catalogue region in the API's shape.
pub fn regions() -> Vec<Region> {
    catalog::regions().iter().map(region_model).collect()
}
