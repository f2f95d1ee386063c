//! Idempotent droplet creation across operator crashes, against the simulated DigitalOcean.

mod cloud_support;

use std::time::Duration;

use cloud_support::*;
use mcp_droplet_operator::cloud::CloudError;
use mcp_droplet_operator::cloud::provision::{
    EnsureOutcome, InMemoryIntentStore, IntentStore, ProvisionError, ProvisionRequest,
    droplet_name, ensure_droplet, owner_tag,
};

const UID: &str = "0b5c9d1e-7a44-4e59-9f0e-2d7f3c1a8b60";
const GRACE: Duration = Duration::from_secs(90);

fn request() -> ProvisionRequest {
    ProvisionRequest {
        owner_uid: UID.to_owned(),
        create: create_request(&droplet_name("team-a", "d1", UID)),
        list_lag_grace: GRACE,
    }
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
            .record_intent(UID, std::time::SystemTime::from(clock.now()))
            .await
            .expect("intent stored");
        let mut create = request().create;
        create.tags.push(owner_tag(UID));
        client.create_droplet(&create).await.expect("POST accepted");
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
        Ok(EnsureOutcome::Existing(d)) => assert_eq!(d.id, adopted.id),
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
        Err(ProvisionError::Cloud(CloudError::Server(_))) => {}
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
async fn duplicates_carrying_the_owner_tag_are_reduced_to_the_oldest() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let mut create = request().create;
    create.tags.push(owner_tag(UID));
    let first = client.create_droplet(&create).await.expect("first").droplet;
    manual.advance(Duration::from_secs(5));
    let second = client
        .create_droplet(&create)
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
async fn a_vanished_droplet_is_replaced_after_the_grace_period() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.list_lag = Duration::ZERO).await;
    let client = unpaced_client(&sim, clock.clone());
    let store = InMemoryIntentStore::new();
    let first = match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => d,
        other => panic!("expected a create, got {other:?}"),
    };
    assert!(sim.lose_droplet(first.id));
    assert!(matches!(
        ensure_droplet(&client, &store, &request()).await,
        Ok(EnsureOutcome::Pending { .. })
    ));
    manual.advance(GRACE);
    match ensure_droplet(&client, &store, &request()).await {
        Ok(EnsureOutcome::Created(d)) => assert_ne!(d.id, first.id),
        other => panic!("expected a replacement, got {other:?}"),
    }
    assert_eq!(sim.droplets().len(), 1);
    sim.shutdown().await;
}
