//! The client under rate limits it does not control: an hourly reset with a delete waiting
//! behind it, and a server limit stricter than the client believes because another client
//! spends the same token. No call is held past its deadline; no create is lost or doubled.
//!
//! The second test prints the numbers of BENCHMARKS.md ("DigitalOcean"):
//! `cargo test -p mcp-droplet-operator --test cloud_rate_limits -- --nocapture`

mod cloud_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloud_support::*;
use mcp_droplet_operator::cloud::CloudError;
use mcp_droplet_operator::cloud::droplet_creation::{
    CreationRequest, CreationTiming, EnsureOutcome, InMemoryIntentStore, ensure_droplet,
};
use mcp_droplet_operator::cloud::droplet_tags::{cluster_tag, droplet_name};
use mcp_droplet_operator::sim::digitalocean::SimRateLimits;

#[tokio::test]
async fn an_hourly_reset_fails_a_waiting_delete_at_its_deadline_with_retry_after() {
    let clock = fast_clock(200.0);
    let sim = start_sim(clock.clone(), |c| {
        c.rate_limits = SimRateLimits {
            per_minute: 1_000,
            per_hour: 5,
        };
    })
    .await;
    // Another client has spent the token's hour: the next request gets an hourly 429.
    let other = client_for(&sim, clock.clone(), TOKEN);
    for _ in 0..5 {
        other.account().await.expect("within the hour");
    }
    // One caller may wait two hours and takes the pacer's gate to wait for the reset.
    let client = client_for(&sim, clock.clone(), TOKEN);
    let patient = client.with_max_wait(Duration::from_secs(2 * 3600));
    let waiting = tokio::spawn(async move { patient.list_droplets().await });
    // A finalizer's delete with a 30 s deadline must not queue behind it.
    let finalizer = client.with_max_wait(Duration::from_secs(30));
    eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { (client.rate_limit_wait() > Duration::from_secs(60)).then_some(()) }
    })
    .await;
    let started = clock.now();
    let result = finalizer.delete_droplet(1).await;
    let waited = clock::elapsed(started, clock.now());
    match result {
        Err(CloudError::RateLimited { retry_after, .. }) => {
            assert!(
                retry_after > Duration::from_secs(30 * 60),
                "retry_after names the reset: {retry_after:?}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert!(
        waited <= Duration::from_secs(35),
        "the delete was held {waited:?} (deadline 30 s)"
    );
    assert!(
        !waiting.is_finished(),
        "the patient caller still waits for the reset"
    );
    waiting.abort();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stricter_limit_shared_with_another_client_is_backed_off_without_losing_a_create() {
    const CREATES: usize = 40;
    let speed = 50.0;
    let clock = fast_clock(speed);
    // The server allows 30 requests a minute; both clients believe 250.
    let sim = start_sim(clock.clone(), |c| {
        c.list_lag = Duration::from_secs(2);
        c.rate_limits = SimRateLimits {
            per_minute: 30,
            per_hour: 5_000,
        };
    })
    .await;
    let other = client_for(&sim, clock.clone(), TOKEN);
    let noise = tokio::spawn(async move {
        loop {
            // Its own 429s are its business; it keeps spending the token.
            let _ = other.account().await;
        }
    });
    // Calls may wait (and meet 429s) for as long as the shared token needs.
    let client = client_with(&sim, clock.clone(), TOKEN, |c| {
        c.max_wait = Duration::from_secs(60 * 60);
        c.retry.max_hinted_attempts = 100;
    });
    let store = Arc::new(InMemoryIntentStore::new());
    let wall = Instant::now();
    let sim_start = clock.now();
    let mut tasks = Vec::new();
    for i in 0..CREATES {
        let client = client.clone();
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let uid = format!("00000000-0000-4000-8000-{i:012}");
            let mut create = create_request(&droplet_name("strict", &format!("d{i}"), &uid));
            create.tags = Vec::new();
            let request = CreationRequest {
                owner_uid: uid,
                cluster_id: "strict".to_owned(),
                create,
                timing: CreationTiming::default(),
            };
            ensure_droplet(&client, store.as_ref(), &request).await
        }));
    }
    let mut created = HashSet::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(EnsureOutcome::Created(d)) => {
                created.insert(d.id);
            }
            other => panic!("expected a create, got {other:?}"),
        }
    }
    noise.abort();
    let stats = sim.stats();
    let simulated = clock::elapsed(sim_start, clock.now());
    let our_429_retries = client.metrics().retries("create_droplet", "rate_limited")
        + client.metrics().retries("list_droplets", "rate_limited");
    println!(
        "DigitalOcean stricter limit: {CREATES} creates with another client on the token, server 30/min \
         (client believes 250/min): {} created, {} responses 429 in total, {our_429_retries} retried by \
         this client, {:.1} simulated minutes, {:.1} s wall at {speed}x",
        created.len(),
        stats.rate_limited,
        simulated.as_secs_f64() / 60.0,
        wall.elapsed().as_secs_f64(),
    );
    assert!(stats.rate_limited > 0, "the stricter limit was hit");
    assert!(our_429_retries > 0, "this client met 429s and backed off");
    assert_eq!(created.len(), CREATES, "every create succeeded once");
    let tagged = client
        .list_droplets_by_tag(&cluster_tag("strict"))
        .await
        .expect("list");
    assert_eq!(tagged.len(), CREATES, "no create lost or doubled");
    assert_eq!(sim.droplets().len(), CREATES);
    sim.shutdown().await;
}
