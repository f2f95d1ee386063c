//! Droplet object -> the scheduler's [`FleetDroplet`].

use std::time::Duration;

use scheduler::{DEFAULT_SYSTEM_RESERVE, DropletPhase, FleetDroplet, Resources};

use super::{FleetError, ObjectRef, do_not_disrupt, namespace_of};
use crate::api::droplet::{self as api_droplet, Droplet as DropletObject};
use crate::catalog;

/// The scheduler's phase for an observed droplet phase.
fn phase_of(phase: &api_droplet::DropletPhase) -> DropletPhase {
    match phase {
        api_droplet::DropletPhase::Ready => DropletPhase::Ready,
        api_droplet::DropletPhase::Pending
        | api_droplet::DropletPhase::Provisioning
        | api_droplet::DropletPhase::Booting
        | api_droplet::DropletPhase::Enrolling => DropletPhase::Provisioning,
        api_droplet::DropletPhase::NotReady | api_droplet::DropletPhase::Failed => {
            DropletPhase::NotReady
        }
        api_droplet::DropletPhase::Draining => DropletPhase::Draining,
        api_droplet::DropletPhase::Terminating => DropletPhase::Terminating,
    }
}

/// Converts a Droplet object as observed at `now` (heartbeat ages are measured from it).
///
/// Its deployments are left empty and its `unlisted_usage` is the reported
/// `status.allocated`: [`super::FleetView`] attributes the reported and recorded
/// deployments and takes their requests out of the unlisted part. A droplet without status
/// has not been observed: it is `Provisioning`, unhealthy and without heartbeat, so it takes
/// no work (`plan`, a what-if over manifests, treats it as Ready and empty on its own).
/// Returns `None` for a droplet whose size or region is unknown (adopted, never observed).
pub fn droplet_from_api(
    droplet: &DropletObject,
    now: jiff::Timestamp,
) -> Result<Option<FleetDroplet>, FleetError> {
    let ns = namespace_of(&droplet.metadata);
    let name = droplet.metadata.name.clone().unwrap_or_default();
    let ctx = ObjectRef {
        kind: "Droplet",
        name: format!("{ns}/{name}"),
    };
    let status = droplet.status.as_ref();
    let size_slug = droplet
        .spec
        .size
        .clone()
        .or_else(|| status.and_then(|s| s.size.clone()));
    let region = droplet
        .spec
        .region
        .clone()
        .or_else(|| status.and_then(|s| s.region.clone()));
    let (Some(size_slug), Some(region)) = (size_slug, region) else {
        return Ok(None);
    };
    let size = catalog::size(&size_slug);
    let reserve = match &droplet.spec.reserved {
        Some(r) => Resources::new(
            ctx.bytes("spec.reserved.memory", r.memory.as_ref())?
                .unwrap_or(DEFAULT_SYSTEM_RESERVE.memory),
            ctx.cpu("spec.reserved.cpu", r.cpu.as_ref())?
                .unwrap_or(DEFAULT_SYSTEM_RESERVE.cpu_millis),
            ctx.bytes("spec.reserved.disk", r.disk.as_ref())?
                .unwrap_or(DEFAULT_SYSTEM_RESERVE.disk),
        ),
        None => DEFAULT_SYSTEM_RESERVE,
    };
    let from_size = size.map(|s| s.capacity().minus(reserve));
    let observed_allocatable = match status {
        Some(s) => ctx.list("status.allocatable", &s.allocatable)?,
        None => None,
    };
    let Some(allocatable) = observed_allocatable.or(from_size) else {
        return Err(ctx.err("spec.size", format!("unknown size {size_slug:?}")));
    };
    let allocated = match status {
        Some(s) => ctx
            .list("status.allocated", &s.allocated)?
            .unwrap_or_default(),
        None => Resources::ZERO,
    };
    let (phase, healthy, heartbeat_age, failures, observed_load) = match status {
        None => (DropletPhase::Provisioning, false, None, 0, None),
        Some(s) => {
            let age = s.health.last_heartbeat.as_ref().map(|t| {
                let seen = t.0;
                Duration::from_secs(now.duration_since(seen).as_secs().max(0) as u64)
            });
            let load = s
                .utilization
                .sampled_at
                .as_ref()
                .map(|_| s.utilization.cpu.max(s.utilization.memory));
            (
                phase_of(&s.phase),
                s.health.score >= 50,
                age,
                s.health.consecutive_failures,
                load,
            )
        }
    };
    let price = status.map(|s| &s.price).filter(|p| p.monthly_usd > 0.0);
    let (hourly_usd, monthly_usd) = match (price, size) {
        (Some(p), _) => (p.hourly_usd, p.monthly_usd),
        (None, Some(s)) => (s.price_hourly(), s.price_monthly),
        (None, None) => (0.0, 0.0),
    };
    Ok(Some(FleetDroplet {
        namespace: ns.clone(),
        name,
        pool: droplet
            .spec
            .pool
            .as_ref()
            .map(|p| format!("{ns}/{p}"))
            .unwrap_or_default(),
        region,
        size: size_slug,
        labels: droplet.metadata.labels.clone().unwrap_or_default(),
        allocatable,
        unlisted_usage: allocated,
        deployments: Vec::new(),
        phase,
        healthy,
        cordoned: droplet.spec.unschedulable,
        observed_load,
        heartbeat_age,
        recent_failures: failures,
        hourly_usd,
        monthly_usd,
        since_last_change: None,
        do_not_disrupt: do_not_disrupt(&droplet.metadata),
    }))
}
