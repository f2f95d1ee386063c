//! A burst of 1,000 deployments against the simulated DigitalOcean with the real limits
//! (250/minute, 5,000/hour) on a clock running 30x: no 429, peak under the limit.
//!
//! Also the benchmark of BENCHMARKS.md ("DigitalOcean"); run with `--nocapture` for numbers:
//! `cargo test -p mcp-droplet-operator --test cloud_burst -- --nocapture`

mod cloud_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloud_support::*;
use mcp_droplet_operator::cloud::droplet_creation::{
    CreationRequest, CreationTiming, EnsureOutcome, InMemoryIntentStore, ensure_droplet,
};
use mcp_droplet_operator::cloud::droplet_tags::{cluster_tag, droplet_name};
use mcp_droplet_operator::sim::digitalocean::BootDelay;

const DEPLOYMENTS: usize = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_creates_gets_no_429() {
    let speed = 30.0;
    let clock = fast_clock(speed);
    let sim = start_sim(clock.clone(), |c| {
        c.boot_delay = BootDelay {
            min: Duration::from_secs(30),
            max: Duration::from_secs(60),
        };
        c.list_lag = Duration::from_secs(2);
    })
    .await;
    // 1,000 callers queue in the pacer for about four simulated minutes.
    let client = client_with(&sim, clock.clone(), TOKEN, |c| {
        c.max_wait = Duration::from_secs(30 * 60)
    });
    let store = Arc::new(InMemoryIntentStore::new());
    let cluster = cluster_tag("burst");
    let wall = Instant::now();
    let sim_start = clock.now();

    let mut tasks = Vec::with_capacity(DEPLOYMENTS);
    for i in 0..DEPLOYMENTS {
        let client = client.clone();
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let uid = format!("00000000-0000-4000-8000-{i:012}");
            let mut create = create_request(&droplet_name("burst", &format!("d{i}"), &uid));
            create.tags = Vec::new();
            let request = CreationRequest {
                owner_uid: uid,
                cluster_id: "burst".to_owned(),
                create,
                timing: CreationTiming::default(),
            };
            ensure_droplet(&client, store.as_ref(), &request).await
        }));
    }
    for task in tasks {
        match task.await.expect("task") {
            Ok(EnsureOutcome::Created(_)) => {}
            other => panic!("expected a create, got {other:?}"),
        }
    }

    // Wait until every droplet is active, polling the cluster tag (200 per page) every 30 s.
    loop {
        let listed = client.list_droplets_by_tag(&cluster).await.expect("list");
        let active: HashSet<u64> = listed
            .iter()
            .filter(|d| d.is_ready())
            .map(|d| d.id)
            .collect();
        if active.len() == DEPLOYMENTS {
            break;
        }
        assert!(
            wall.elapsed() < Duration::from_secs(120),
            "droplets did not boot"
        );
        clock.sleep(Duration::from_secs(30)).await;
    }

    let stats = sim.stats();
    let simulated = clock::elapsed(sim_start, clock.now());
    println!(
        "DigitalOcean burst: {DEPLOYMENTS} droplets, {} API requests ({:.2} per droplet), \
         peak {} requests/minute, {} responses 429, {:.1} simulated minutes, {:.1} s wall at {speed}x",
        stats.requests,
        stats.requests as f64 / DEPLOYMENTS as f64,
        stats.peak_per_minute,
        stats.rate_limited,
        simulated.as_secs_f64() / 60.0,
        wall.elapsed().as_secs_f64(),
    );
    assert_eq!(stats.rate_limited, 0, "no 429 during the burst");
    assert!(
        stats.peak_per_minute <= 250,
        "peak {}",
        stats.peak_per_minute
    );
    assert_eq!(stats.droplets_created, DEPLOYMENTS as u64);
    assert_eq!(sim.droplets().len(), DEPLOYMENTS);
    sim.shutdown().await;
}
