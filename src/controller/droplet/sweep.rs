//! The periodic orphan sweep: every `timings.sweep_interval`, deletes droplets that carry this
//! installation's cluster tag but whose owner (a Droplet object) is gone, through
//! `cloud::orphan_sweep` and its guards: an owner view only a synced store can produce, a cap
//! of deletions per pass, and a minimum age.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cloud::droplet_tags::cluster_tag;
use crate::cloud::orphan_sweep::{OwnerView, SweepError, SweepPolicy, sweep_orphans};
use crate::controller::Context;

/// The sweep's policy for a sweep interval: droplets younger than three intervals (and never
/// younger than 90 s, DigitalOcean's list lag) are left alone; at most 3 deletions a pass.
pub fn sweep_policy(sweep_interval: Duration) -> SweepPolicy {
    SweepPolicy {
        min_age: sweep_interval
            .saturating_mul(3)
            .max(crate::cloud::droplet_creation::DEFAULT_LIST_LAG_GRACE),
        ..SweepPolicy::default()
    }
}

/// Runs one sweep pass now; `Ok(None)` when the owner view is not synced yet.
pub async fn sweep_once(
    ctx: &Context,
) -> Result<Option<crate::cloud::orphan_sweep::SweepReport>, SweepError> {
    let view = match OwnerView::from_synced_store(&ctx.stores.droplets) {
        Ok(view) => view,
        Err(SweepError::NotSynced) => return Ok(None),
        Err(other) => return Err(other),
    };
    let policy = sweep_policy(ctx.config.timings.sweep_interval);
    let report = sweep_orphans(
        &ctx.cloud,
        &view,
        &cluster_tag(&ctx.config.cluster_id),
        &policy,
    )
    .await?;
    if !report.deleted.is_empty() || !report.retagged.is_empty() {
        tracing::info!(deleted = ?report.deleted, retagged = ?report.retagged, deferred = report.deferred.len(), "orphan sweep");
    }
    Ok(Some(report))
}

/// Sweeps every `timings.sweep_interval` (on the operator's clock) until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = ctx.clock.sleep(ctx.config.timings.sweep_interval) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = sweep_once(&ctx).await {
            tracing::warn!(%error, "orphan sweep failed; trying again next interval");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn young_droplets_are_spared_for_three_intervals_and_never_less_than_the_list_lag() {
        let policy = sweep_policy(Duration::from_secs(300));
        assert_eq!(policy.min_age, Duration::from_secs(900));
        assert_eq!(policy.max_deletions_per_pass, 3);
        assert_eq!(
            sweep_policy(Duration::from_secs(10)).min_age,
            Duration::from_secs(90)
        );
    }
}
