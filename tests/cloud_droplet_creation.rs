//! Idempotent droplet creation against the simulated DigitalOcean: crashes between the POST and
//! the id write, list and GET lag longer than the grace period, transient 404s, a leaked older
//! droplet beside the recorded one. In every case: no duplicate left, no wrong delete.

mod cloud_support;

use std::time::Duration;

use cloud_support::*;
use mcp_droplet_operator::cloud::CloudError;
use mcp_droplet_operator::cloud::droplet_creation::{
    CreationError, CreationRequest, CreationTiming, EnsureOutcome, InMemoryIntentStore,
    IntentStore, ensure_droplet,
};
use mcp_droplet_operator::cloud::droplet_tags::{cluster_tag, droplet_name, owner_tag};

const UID: &str = "0b5c9d1e-7a44-4e59-9f0e-2d7f3c1a8b60";
const CLUSTER: &str = "test";
const GRACE: Duration = Duration::from_secs(90);

fn request() -> CreationRequest {
    let mut create = create_request(&droplet_name("team-a", "d1", UID));
    create.tags = Vec::new();
    CreationRequest {
        owner_uid: UID.to_owned(),
        cluster_id: CLUSTER.to_owned(),
        create,
        timing: CreationTiming::default(),
    }
}

/// The create body with the owner tag, as an earlier (crashed) process would have sent it.
fn tagged_create() -> mcp_droplet_operator::cloud::models::DropletCreateRequest {
    let mut create = request().create;
    create.tags = vec![owner_tag(UID), cluster_tag(CLUSTER)];
    create
}

#[tokio::test]
async fn the_created_droplet_carries_the_owner_and_the_cluster_tag() {
    let (_manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |_| {}).await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let created = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    let tags = &sim.droplets()[0].tags;
    assert!(tags.contains(&owner_tag(UID)) && tags.contains(&cluster_tag(CLUSTER)));
    assert_eq!(sim.droplets()[0].id, created.id);
    sim.shutdown().await;
}

#[tokio::test]
async fn crash_between_post_and_status_write_leaves_exactly_one_droplet() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::from_secs(30)).await;
    let store = InMemoryIntentStore::new();

    // First operator process: intent written, POST accepted, then it dies before writing the id.
    {
        let client = unpaced_client(&sim, clock.clone());
        store
            .record_intent(UID, clock.now())
            .await
            .expect("intent stored");
        client
            .create_droplet(&tagged_create())
            .await
            .expect("POST accepted");
    }

    // The restarted operator: the droplet is still hidden by list lag, so it must wait.
    let client = unpaced_client(&sim, clock.clone());
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Pending { retry_after }) => assert!(retry_after <= GRACE),
        other => panic!("expected to wait for list lag, got {other:?}"),
    }
    manual.advance(Duration::from_secs(31));
    let adopted = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Adopted {
            droplet,
            deleted_duplicates,
        }) => {
            assert!(deleted_duplicates.is_empty());
            droplet
        }
        other => panic!("expected adoption, got {other:?}"),
    };
    assert_eq!(
        store.load(UID).await.expect("load").droplet_id,
        Some(adopted.id)
    );
    // Later passes see the stored id.
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Existing { droplet, .. }) => assert_eq!(droplet.id, adopted.id),
        other => panic!("expected the existing droplet, got {other:?}"),
    }
    assert_eq!(sim.droplets().len(), 1, "exactly one droplet");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_create_answered_with_500_after_commit_is_adopted_not_duplicated() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| {
        c.list_lag = Duration::from_secs(10);
        c.faults.create_commit_then_fail_rate = 1.0;
    })
    .await;
    let store = InMemoryIntentStore::new();
    let client = unpaced_client(&sim, clock.clone());
    match ensure_droplet(&client, &store, &request()).await {
        Err(CreationError::Cloud(CloudError::Server(_))) => {}
        other => panic!("expected the injected 500, got {other:?}"),
    }
    sim.set_faults(Default::default());
    // Within the grace period nothing is created even though the list is still empty.
    assert!(matches!(
        ensure_droplet(&client, &store, &request()).await,
        Ok(EnsureOutcome::Pending { .. })
    ));
    manual.advance(Duration::from_secs(11));
    assert!(matches!(
        ensure_droplet(&client, &store, &request()).await,
        Ok(EnsureOutcome::Adopted { .. })
    ));
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn without_a_record_duplicates_are_reduced_to_the_oldest() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let first = client
        .create_droplet(&tagged_create())
        .await
        .expect("first")
        .droplet;
    manual.advance(Duration::from_secs(5));
    let second = client
        .create_droplet(&tagged_create())
        .await
        .expect("second")
        .droplet;
    let store = InMemoryIntentStore::new();
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Adopted {
            droplet,
            deleted_duplicates,
        }) => {
            assert_eq!(droplet.id, first.id);
            assert_eq!(deleted_duplicates, vec![second.id]);
        }
        other => panic!("expected adoption, got {other:?}"),
    }
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_droplet_seen_and_then_deleted_outside_is_replaced() {
    let (_manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let first = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    assert!(matches!(
        ensure_droplet(&client, &store, &request()).await,
        Ok(EnsureOutcome::Existing { .. })
    ));
    assert!(sim.lose_droplet(first.id));
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => assert_ne!(d.id, first.id),
        other => panic!("expected a replacement, got {other:?}"),
    }
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_and_get_lag_longer_than_the_grace_period_create_no_second_droplet() {
    let (manual, clock) = manual_clock();
    let lag = Duration::from_secs(5 * 60);
    let sim = start_sim(clock.clone(), |c| {
        c.list_lag = lag;
        c.get_lag = lag;
    })
    .await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let created = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    // Pass after pass beyond the grace period, the droplet is invisible: nothing happens.
    for _ in 0..3 {
        manual.advance(GRACE);
        match ensure_droplet(&client, &store, &request()).await {
            Ok(EnsureOutcome::Pending { .. }) => {}
            other => panic!("expected to wait for the recorded droplet, got {other:?}"),
        }
    }
    manual.advance(Duration::from_secs(60));
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Existing { droplet, .. }) => assert_eq!(droplet.id, created.id),
        other => panic!("expected the recorded droplet, got {other:?}"),
    }
    assert_eq!(sim.stats().droplets_created, 1, "no second create");
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_droplet_hidden_past_the_horizon_is_replaced_and_the_late_one_deleted() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| {
        c.list_lag = Duration::from_secs(20 * 60);
        c.get_lag = Duration::from_secs(20 * 60);
    })
    .await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let first = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    // Past the 15-minute horizon the first is presumed lost and replaced.
    manual.advance(Duration::from_secs(15 * 60 + 1));
    let second = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a replacement, got {other:?}"),
    };
    // The first shows up; the recorded second is still hidden: nothing is deleted yet.
    manual.advance(Duration::from_secs(6 * 60));
    assert!(matches!(
        ensure_droplet(&client, &store, &request()).await,
        Ok(EnsureOutcome::Pending { .. })
    ));
    assert_eq!(sim.droplets().len(), 2);
    // Once the recorded one is visible, the late first one is deleted: no leak.
    manual.advance(Duration::from_secs(15 * 60));
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Existing {
            droplet,
            deleted_duplicates,
        }) => {
            assert_eq!(droplet.id, second.id);
            assert_eq!(deleted_duplicates, vec![first.id]);
        }
        other => panic!("expected the recorded droplet, got {other:?}"),
    }
    let left: Vec<u64> = sim.droplets().iter().map(|d| d.id).collect();
    assert_eq!(left, vec![second.id]);
    sim.shutdown().await;
}

#[tokio::test]
async fn transient_404s_on_get_neither_replace_nor_delete_the_droplet() {
    let (_manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let created = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    assert!(matches!(
        ensure_droplet(&client, &store, &request()).await,
        Ok(EnsureOutcome::Existing { .. })
    ));
    assert!(sim.hide_from_get(created.id, Duration::from_secs(3600)));
    for _ in 0..3 {
        match ensure_droplet(&client, &store, &request()).await {
            Ok(EnsureOutcome::Existing { droplet, .. }) => assert_eq!(droplet.id, created.id),
            other => panic!("expected the droplet found by its tag, got {other:?}"),
        }
    }
    assert_eq!(sim.stats().droplets_created, 1);
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_leaked_older_droplet_is_deleted_and_the_recorded_one_kept() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    // A crashed process leaked an older droplet; the recorded one is newer and runs workloads.
    let leaked = client
        .create_droplet(&tagged_create())
        .await
        .expect("leaked")
        .droplet;
    manual.advance(Duration::from_secs(60));
    let store = InMemoryIntentStore::new();
    store.record_intent(UID, clock.now()).await.expect("intent");
    let recorded = client
        .create_droplet(&tagged_create())
        .await
        .expect("recorded")
        .droplet;
    store
        .record_droplet_id(UID, recorded.id, true)
        .await
        .expect("id");
    // The GET of the recorded droplet 404s transiently while both are listed.
    assert!(sim.hide_from_get(recorded.id, Duration::from_secs(600)));
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Existing {
            droplet,
            deleted_duplicates,
        }) => {
            assert_eq!(droplet.id, recorded.id, "the recorded id wins");
            assert_eq!(deleted_duplicates, vec![leaked.id]);
        }
        other => panic!("expected the recorded droplet, got {other:?}"),
    }
    let left: Vec<u64> = sim.droplets().iter().map(|d| d.id).collect();
    assert_eq!(left, vec![recorded.id]);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_odd_droplet_does_not_fail_the_list_or_creation() {
    let (_manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let created = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    assert!(sim.make_droplet_odd(
        created.id,
        mcp_droplet_operator::cloud::models::DropletStatus::Unknown
    ));
    let listed = client
        .list_droplets_by_tag(&owner_tag(UID))
        .await
        .expect("the list still decodes");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].image.is_none() && listed[0].size.is_none());
    assert!(sim.hide_from_get(created.id, Duration::from_secs(600)));
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Existing { droplet, .. }) => assert_eq!(droplet.id, created.id),
        other => panic!("expected the odd droplet kept, got {other:?}"),
    }
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}
