//! The orphan sweep against the simulated DigitalOcean: it needs a synced owner view, deletes at
//! most its cap per pass, and adopts (re-tags) a droplet that a restored Droplet object with a
//! new UID names in its status instead of deleting it.

mod cloud_support;

use std::time::Duration;

use cloud_support::*;
use kube::api::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use mcp_droplet_operator::api::{Droplet as DropletObject, DropletSpec, DropletStatus};
use mcp_droplet_operator::cloud::droplet_creation::{
    CreationRequest, CreationTiming, EnsureOutcome, InMemoryIntentStore, IntentStore,
    ensure_droplet,
};
use mcp_droplet_operator::cloud::droplet_tags::{cluster_tag, owner_tag};
use mcp_droplet_operator::cloud::orphan_sweep::{
    OwnerView, SweepError, SweepPolicy, sweep_orphans,
};

const CLUSTER: &str = "sweep";

fn object(uid: &str, droplet_id: Option<u64>) -> DropletObject {
    let mut object = DropletObject::new(uid, DropletSpec::default());
    object.metadata = ObjectMeta {
        name: Some(format!("d-{uid}")),
        namespace: None,
        uid: Some(uid.to_owned()),
        ..ObjectMeta::default()
    };
    object.status = droplet_id.map(|id| DropletStatus {
        droplet_id: i64::try_from(id).ok(),
        ..DropletStatus::default()
    });
    object
}

/// A reflector store holding `objects`, synced (its initial list completed) or not.
fn store_of(
    objects: &[DropletObject],
    synced: bool,
) -> (
    Store<DropletObject>,
    reflector::store::Writer<DropletObject>,
) {
    let (store, mut writer) = reflector::store::<DropletObject>();
    writer.apply_watcher_event(&Event::Init);
    for object in objects {
        writer.apply_watcher_event(&Event::InitApply(object.clone()));
    }
    if synced {
        writer.apply_watcher_event(&Event::InitDone);
    }
    (store, writer)
}

fn create_for(
    owner: &str,
    name: &str,
) -> mcp_droplet_operator::cloud::models::DropletCreateRequest {
    let mut create = create_request(name);
    create.tags = vec![owner_tag(owner), cluster_tag(CLUSTER)];
    create
}

#[tokio::test]
async fn a_partial_owner_view_deletes_nothing_and_a_synced_one_deletes_at_most_the_cap() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let live = client
        .create_droplet(&create_for("live", "live-1"))
        .await
        .expect("create")
        .droplet;
    for i in 0..5 {
        client
            .create_droplet(&create_for(&format!("gone-{i}"), &format!("gone-{i}")))
            .await
            .expect("create");
    }
    manual.advance(Duration::from_secs(3600));

    // The watch is still in its initial list: only some owners are known.
    let (partial, mut writer) = store_of(&[], false);
    assert!(matches!(
        OwnerView::from_synced_store(&partial),
        Err(SweepError::NotSynced)
    ));
    assert_eq!(
        sim.droplets().len(),
        6,
        "nothing deleted without a complete view"
    );

    writer.apply_watcher_event(&Event::InitApply(object("live", Some(live.id))));
    writer.apply_watcher_event(&Event::InitDone);
    let view = OwnerView::from_synced_store(&partial).expect("synced");
    let policy = SweepPolicy {
        max_deletions_per_pass: 2,
        ..SweepPolicy::default()
    };
    let first = sweep_orphans(&client, &view, &cluster_tag(CLUSTER), &policy)
        .await
        .expect("sweep");
    assert_eq!(first.deleted.len(), 2);
    assert_eq!(first.deferred.len(), 3);
    assert!(!first.deleted.contains(&live.id));
    for _ in 0..2 {
        sweep_orphans(&client, &view, &cluster_tag(CLUSTER), &policy)
            .await
            .expect("sweep");
    }
    let left: Vec<u64> = sim.droplets().iter().map(|d| d.id).collect();
    assert_eq!(
        left,
        vec![live.id],
        "every orphan gone, the live droplet kept"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_restore_with_new_uids_adopts_and_re_tags_instead_of_deleting() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let old_uid = "11111111-1111-4111-8111-111111111111";
    let new_uid = "22222222-2222-4222-8222-222222222222";
    let running = client
        .create_droplet(&create_for(old_uid, "restored"))
        .await
        .expect("create")
        .droplet;
    manual.advance(Duration::from_secs(3600));

    // After the restore the object has a new UID; its status still names the droplet.
    let (store, _writer) = store_of(&[object(new_uid, Some(running.id))], true);
    let view = OwnerView::from_synced_store(&store).expect("synced");
    let report = sweep_orphans(
        &client,
        &view,
        &cluster_tag(CLUSTER),
        &SweepPolicy::default(),
    )
    .await
    .expect("sweep");
    assert!(
        report.deleted.is_empty(),
        "the running droplet is not an orphan"
    );
    assert_eq!(report.retagged, vec![running.id]);
    let tags = sim.droplets()[0].tags.clone();
    assert!(tags.contains(&owner_tag(new_uid)), "{tags:?}");
    assert!(!tags.contains(&owner_tag(old_uid)), "{tags:?}");

    // The creation path of the restored object keeps the same droplet.
    let intents = InMemoryIntentStore::new();
    intents
        .record_droplet_id(new_uid, running.id, true)
        .await
        .expect("id");
    let request = CreationRequest {
        owner_uid: new_uid.to_owned(),
        cluster_id: CLUSTER.to_owned(),
        create: create_for(new_uid, "restored"),
        timing: CreationTiming::default(),
    };
    match ensure_droplet(&client, &intents, &request).await {
        Ok(EnsureOutcome::Existing { droplet, .. }) => assert_eq!(droplet.id, running.id),
        other => panic!("expected the restored droplet, got {other:?}"),
    }
    // A second sweep changes nothing.
    let again = sweep_orphans(
        &client,
        &view,
        &cluster_tag(CLUSTER),
        &SweepPolicy::default(),
    )
    .await
    .expect("sweep");
    assert!(again.deleted.is_empty() && again.retagged.is_empty());
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn ensure_droplet_re_tags_a_restored_droplet_it_finds_by_its_recorded_id() {
    let (_manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let mut untagged = create_request("moved");
    untagged.tags = vec![owner_tag("old-uid")];
    let running = client
        .create_droplet(&untagged)
        .await
        .expect("create")
        .droplet;
    let intents = InMemoryIntentStore::new();
    intents
        .record_droplet_id("new-uid", running.id, true)
        .await
        .expect("id");
    let request = CreationRequest {
        owner_uid: "new-uid".to_owned(),
        cluster_id: CLUSTER.to_owned(),
        create: create_request("moved"),
        timing: CreationTiming::default(),
    };
    assert!(matches!(
        ensure_droplet(&client, &intents, &request).await,
        Ok(EnsureOutcome::Existing { .. })
    ));
    let tags = sim.droplets()[0].tags.clone();
    assert!(tags.contains(&owner_tag("new-uid")) && tags.contains(&cluster_tag(CLUSTER)));
    sim.shutdown().await;
}
