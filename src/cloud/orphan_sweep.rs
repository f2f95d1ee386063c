//! The orphan sweep: deletes droplets of this installation whose owner is gone, and leaked
//! duplicates beside an owner's recorded droplet, without ever deleting a live one.
//!
//! Three guards (decision 0205):
//! - **Completeness is a type.** The owners come as an [`OwnerView`], which only a synced
//!   reflector store can produce ([`OwnerView::from_synced_store`]); a partial list (a watch
//!   still in its initial list) cannot be passed, so it cannot condemn live droplets.
//! - **A cap per pass.** At most `max_deletions_per_pass` droplets (default 3) are deleted per
//!   pass, oldest first; a mistake costs a few droplets, not the fleet.
//! - **Restores adopt.** A Droplet object whose status (or `spec.adopt`) names a droplet id
//!   claims it whatever its tags say: after a backup/restore or a cluster move (new UIDs) the
//!   droplet is re-tagged with the new owner instead of deleted.
//!
//! The plan is the pure [`plan_sweep`]; [`sweep_orphans`] lists, plans and applies.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use clock::Timestamp;
use futures::FutureExt;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::Droplet as DropletObject;
use crate::cloud::client::{DoClient, distinct_droplets};
use crate::cloud::droplet_tags::{owner_tag, owner_uids_of, tag_form_of_uid};
use crate::cloud::error::CloudError;
use crate::cloud::models::Droplet;

/// Limits of one sweep pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    /// Droplets younger than this are never deleted (an owner list that lags cannot condemn a
    /// droplet created a moment ago).
    pub min_age: Duration,
    /// At most this many deletions per pass; the rest wait for the next pass.
    pub max_deletions_per_pass: usize,
}

impl Default for SweepPolicy {
    /// 10 minutes, 3 deletions per pass.
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(600),
            max_deletions_per_pass: 3,
        }
    }
}

/// Why a sweep did not run.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The owner store has not finished its first list: its view may be partial.
    #[error("the Droplet object store has not synced yet; the sweep waits for a complete view")]
    NotSynced,
    /// A DigitalOcean call failed.
    #[error("DigitalOcean call failed: {0}")]
    Cloud(#[from] CloudError),
}

/// Every live owner of the installation and the droplet ids they claim, taken from a store
/// that has completed its initial list. No other constructor exists, so a partial view
/// cannot reach [`plan_sweep`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerView {
    /// Owner UIDs in tag form.
    owners: HashSet<String>,
    /// Droplet id -> the owner UID (tag form) whose status or `spec.adopt` names it.
    claimed: HashMap<u64, String>,
    /// Owner UID (tag form) -> its recorded droplet id.
    recorded: HashMap<String, u64>,
}

impl OwnerView {
    /// The view of a reflector store of Droplet objects, or `NotSynced` while the store's
    /// initial list is still running.
    pub fn from_synced_store(store: &Store<DropletObject>) -> Result<Self, SweepError> {
        match store.wait_until_ready().now_or_never() {
            Some(Ok(())) => Ok(Self::of_objects(
                store.state().iter().map(std::convert::AsRef::as_ref),
            )),
            Some(Err(_)) | None => Err(SweepError::NotSynced),
        }
    }

    fn of_objects<'a>(objects: impl Iterator<Item = &'a DropletObject>) -> Self {
        let mut view = Self {
            owners: HashSet::new(),
            claimed: HashMap::new(),
            recorded: HashMap::new(),
        };
        for object in objects {
            let Some(uid) = object.uid() else { continue };
            let uid = tag_form_of_uid(&uid);
            let from_status = object.status.as_ref().and_then(|s| s.droplet_id);
            let from_adopt = object.spec.adopt.as_ref().map(|a| a.droplet_id);
            for id in [from_status, from_adopt].into_iter().flatten() {
                if let Ok(id) = u64::try_from(id) {
                    view.claimed.insert(id, uid.clone());
                    view.recorded.entry(uid.clone()).or_insert(id);
                }
            }
            view.owners.insert(uid);
        }
        view
    }

    /// How many owners the view holds.
    pub fn owner_count(&self) -> usize {
        self.owners.len()
    }
}

/// A droplet to re-tag with the owner that claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retag {
    /// The droplet.
    pub droplet_id: u64,
    /// The owner tag to add.
    pub add: String,
    /// Stale owner tags to remove (owners that no longer exist).
    pub remove: Vec<String>,
}

/// Why a droplet is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeletionReason {
    /// No owner named by its tags exists and no owner claims it.
    OwnerGone,
    /// Its owner exists and records another droplet, which is listed too.
    Duplicate,
}

/// What one sweep pass does.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepPlan {
    /// Droplets to delete now (at most the cap), oldest first.
    pub delete: Vec<(u64, DeletionReason)>,
    /// Droplets to re-tag (claimed by an owner whose tag they lack).
    pub retag: Vec<Retag>,
    /// Deletable droplets left for later passes by the cap.
    pub deferred: Vec<u64>,
}

/// Plans one sweep over the droplets listed by the cluster tag (pure).
pub fn plan_sweep(
    view: &OwnerView,
    listed: &[Droplet],
    now: Timestamp,
    policy: &SweepPolicy,
) -> SweepPlan {
    let listed_ids: HashSet<u64> = listed.iter().map(|d| d.id).collect();
    let mut plan = SweepPlan::default();
    let mut candidates: Vec<(String, u64, DeletionReason)> = Vec::new();
    let mut seen = HashSet::new();
    for droplet in listed {
        if !seen.insert(droplet.id) {
            continue;
        }
        let uids: Vec<String> = owner_uids_of(droplet)
            .into_iter()
            .map(tag_form_of_uid)
            .collect();
        if let Some(claimant) = view.claimed.get(&droplet.id) {
            if !uids.contains(claimant) {
                plan.retag.push(Retag {
                    droplet_id: droplet.id,
                    add: owner_tag(claimant),
                    remove: uids
                        .iter()
                        .filter(|u| !view.owners.contains(*u))
                        .map(|u| owner_tag(u))
                        .collect(),
                });
            }
            continue;
        }
        if uids.is_empty() {
            // Without an owner tag it is not provably ours to delete.
            continue;
        }
        let old_enough = droplet
            .created()
            .is_some_and(|created| clock::elapsed(created, now) >= policy.min_age);
        if !old_enough {
            continue;
        }
        let live: Vec<&String> = uids.iter().filter(|u| view.owners.contains(*u)).collect();
        let reason = if live.is_empty() {
            DeletionReason::OwnerGone
        } else if live.iter().all(|owner| {
            view.recorded
                .get(*owner)
                .is_some_and(|recorded| *recorded != droplet.id && listed_ids.contains(recorded))
        }) {
            DeletionReason::Duplicate
        } else {
            // A live owner without a recorded droplet may be creating this one.
            continue;
        };
        candidates.push((droplet.created_at.clone(), droplet.id, reason));
    }
    candidates.sort();
    for (index, (_, id, reason)) in candidates.into_iter().enumerate() {
        if index < policy.max_deletions_per_pass {
            plan.delete.push((id, reason));
        } else {
            plan.deferred.push(id);
        }
    }
    plan
}

/// What a sweep pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Deleted droplets.
    pub deleted: Vec<u64>,
    /// Re-tagged droplets.
    pub retagged: Vec<u64>,
    /// Deletable droplets left for the next pass by the cap.
    pub deferred: Vec<u64>,
}

/// Lists the droplets carrying `cluster_tag`, plans with [`plan_sweep`] and applies the plan
/// (re-tags first, then the capped deletions).
pub async fn sweep_orphans(
    client: &DoClient,
    view: &OwnerView,
    cluster_tag: &str,
    policy: &SweepPolicy,
) -> Result<SweepReport, SweepError> {
    let listed = distinct_droplets(client.list_droplets_by_tag(cluster_tag).await?);
    let plan = plan_sweep(view, &listed, client.clock().now(), policy);
    let mut report = SweepReport {
        deferred: plan.deferred.clone(),
        ..SweepReport::default()
    };
    for retag in &plan.retag {
        tracing::info!(droplet = retag.droplet_id, tag = %retag.add, "adopting a claimed droplet: re-tagging");
        client.tag_droplet(retag.droplet_id, &retag.add).await?;
        for stale in &retag.remove {
            client.untag_droplet(retag.droplet_id, stale).await?;
        }
        report.retagged.push(retag.droplet_id);
    }
    for (id, reason) in &plan.delete {
        tracing::warn!(droplet = id, ?reason, "orphan sweep deletes a droplet");
        client.delete_droplet(*id).await?;
        report.deleted.push(*id);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DropletSpec, DropletStatus};
    use kube::api::ObjectMeta;

    fn at(secs: u64) -> Timestamp {
        clock::add(Timestamp::UNIX_EPOCH, Duration::from_secs(secs))
    }

    fn droplet(id: u64, created_secs: u64, owners: &[&str]) -> Droplet {
        serde_json::from_value(serde_json::json!({
            "id": id,
            "name": format!("d{id}"),
            "status": "active",
            "created_at": at(created_secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "tags": owners.iter().map(|o| owner_tag(o)).collect::<Vec<_>>(),
        }))
        .expect("droplet")
    }

    fn object(uid: &str, droplet_id: Option<i64>) -> DropletObject {
        let mut object = DropletObject::new(uid, DropletSpec::default());
        object.metadata = ObjectMeta {
            name: Some(uid.to_owned()),
            uid: Some(uid.to_owned()),
            ..ObjectMeta::default()
        };
        object.status = droplet_id.map(|id| DropletStatus {
            droplet_id: Some(id),
            ..DropletStatus::default()
        });
        object
    }

    fn view(objects: &[DropletObject]) -> OwnerView {
        OwnerView::of_objects(objects.iter())
    }

    const HOUR: u64 = 3600;

    #[test]
    fn orphans_are_old_droplets_whose_owner_is_gone() {
        let view = view(&[object("live", Some(1))]);
        let listed = [
            droplet(1, 0, &["live"]),
            droplet(2, 0, &["gone"]),
            droplet(3, HOUR - 60, &["gone"]),
            droplet(4, 0, &[]),
        ];
        let plan = plan_sweep(&view, &listed, at(HOUR), &SweepPolicy::default());
        assert_eq!(plan.delete, vec![(2, DeletionReason::OwnerGone)]);
        assert!(plan.retag.is_empty() && plan.deferred.is_empty());
    }

    #[test]
    fn deletions_are_capped_per_pass_oldest_first() {
        let view = view(&[]);
        let listed: Vec<Droplet> = (1..=5).map(|i| droplet(i, 100 - i, &["gone"])).collect();
        let policy = SweepPolicy {
            max_deletions_per_pass: 2,
            ..SweepPolicy::default()
        };
        let plan = plan_sweep(&view, &listed, at(HOUR), &policy);
        let deleted: Vec<u64> = plan.delete.iter().map(|(id, _)| *id).collect();
        assert_eq!(deleted, vec![5, 4]);
        assert_eq!(plan.deferred, vec![3, 2, 1]);
    }

    #[test]
    fn a_droplet_named_by_a_status_is_re_tagged_not_deleted() {
        // Restored from a backup: the object has a new UID, the droplet the old owner tag.
        let view = view(&[object("new-uid", Some(7))]);
        let listed = [droplet(7, 0, &["old-uid"])];
        let plan = plan_sweep(&view, &listed, at(HOUR), &SweepPolicy::default());
        assert!(plan.delete.is_empty());
        assert_eq!(
            plan.retag,
            vec![Retag {
                droplet_id: 7,
                add: owner_tag("new-uid"),
                remove: vec![owner_tag("old-uid")],
            }]
        );
    }

    #[test]
    fn a_leaked_duplicate_beside_the_recorded_droplet_is_deleted_only_when_that_one_is_listed() {
        let view = view(&[object("owner", Some(2))]);
        let both = [droplet(1, 0, &["owner"]), droplet(2, 100, &["owner"])];
        let plan = plan_sweep(&view, &both, at(HOUR), &SweepPolicy::default());
        assert_eq!(plan.delete, vec![(1, DeletionReason::Duplicate)]);
        // The recorded one is not listed (lag): the other may be the one that runs.
        let alone = [droplet(1, 0, &["owner"])];
        let plan = plan_sweep(&view, &alone, at(HOUR), &SweepPolicy::default());
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn an_owner_without_a_recorded_droplet_keeps_its_droplets() {
        let view = view(&[object("creating", None)]);
        let listed = [droplet(1, 0, &["creating"]), droplet(2, 0, &["creating"])];
        let plan = plan_sweep(&view, &listed, at(HOUR), &SweepPolicy::default());
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn a_store_still_in_its_initial_list_gives_no_view() {
        use kube::runtime::watcher::Event;
        let (store, mut writer) = kube::runtime::reflector::store::<DropletObject>();
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(object("a", Some(1))));
        assert!(matches!(
            OwnerView::from_synced_store(&store),
            Err(SweepError::NotSynced)
        ));
        writer.apply_watcher_event(&Event::InitApply(object("b", Some(2))));
        writer.apply_watcher_event(&Event::InitDone);
        let view = OwnerView::from_synced_store(&store).expect("synced");
        assert_eq!(view.owner_count(), 2);
    }
}
