//! The DigitalOcean client against the simulated DigitalOcean: every call, pagination,
//! error mapping, retries and rate limits.

mod cloud_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloud_support::*;
use mcp_droplet_operator::cloud::CloudError;
use mcp_droplet_operator::cloud::client::DeleteOutcome;
use mcp_droplet_operator::cloud::models::{ActionStatus, DropletActionRequest, DropletStatus};
use mcp_droplet_operator::sim::digitalocean::{
    ActiveDroplet, BootDelay, DropletLifecycleHook, DropletUsage, FaultConfig,
};

#[derive(Default)]
struct RecordingHook {
    active: Mutex<Vec<ActiveDroplet>>,
    deleted: Mutex<Vec<u64>>,
}

impl DropletLifecycleHook for RecordingHook {
    fn droplet_active(&self, droplet: &ActiveDroplet) {
        self.active.lock().expect("lock").push(droplet.clone());
    }
    fn droplet_deleted(&self, id: u64) {
        self.deleted.lock().expect("lock").push(id);
    }
}

#[tokio::test]
async fn every_call_works_against_the_simulator() {
    let clock = fast_clock(100.0);
    let sim = start_sim(clock.clone(), |_| {}).await;
    let hook = Arc::new(RecordingHook::default());
    sim.set_lifecycle_hook(hook.clone());
    let client = client_for(&sim, clock.clone(), TOKEN);

    let account = client.account().await.expect("account");
    assert_eq!(account.status, "active");
    assert!(account.droplet_limit > 0);

    let sizes = client.sizes().await;
    assert!(
        sizes
            .iter()
            .any(|s| s.slug == "s-1vcpu-1gb" && s.price_monthly == 6.0)
    );
    let regions = client.regions().await;
    assert!(regions.iter().any(|r| r.slug == "nyc3" && r.available));

    let created = client
        .create_droplet(&create_request("mcp-every-call"))
        .await
        .expect("create");
    assert_eq!(created.droplet.status, DropletStatus::New);
    assert!(created.droplet.networks.v4.is_empty());
    let id = created.droplet.id;
    let create_action = created
        .links
        .actions
        .first()
        .expect("create action link")
        .id;

    let active = eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let d = client.get_droplet(id).await.expect("get");
            d.is_ready().then_some(d)
        }
    })
    .await;
    let ip = active.public_ipv4().expect("public IPv4");
    assert_eq!(ip.octets()[0], 127, "simulated droplets live on loopback");
    assert_eq!(
        client
            .get_action(create_action)
            .await
            .expect("action")
            .status,
        ActionStatus::Completed
    );

    let seen = eventually(Duration::from_secs(5), || {
        let hook = hook.clone();
        async move { hook.active.lock().expect("lock").first().cloned() }
    })
    .await;
    assert_eq!(seen.id, id);
    assert_eq!(seen.ipv4, ip);
    assert_eq!(seen.user_data.as_deref(), Some("#cloud-config\n{}\n"));

    let all = client.list_droplets().await.expect("list");
    assert!(all.iter().any(|d| d.id == id));
    let tagged = client
        .list_droplets_by_tag("mcp-droplet-operator:cluster:test")
        .await
        .expect("list by tag");
    assert_eq!(tagged.len(), 1);
    let by_name = client
        .list_droplets_by_name("MCP-EVERY-CALL")
        .await
        .expect("by name");
    assert_eq!(by_name.len(), 1, "name filter is case-insensitive");

    let action = client
        .droplet_action(id, &DropletActionRequest::PowerOff)
        .await
        .expect("power off");
    assert_eq!(action.status, ActionStatus::InProgress);
    let off = eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            let a = client.get_action(action.id).await.expect("action");
            (a.status == ActionStatus::Completed).then_some(())
        }
    })
    .await;
    let () = off;
    assert_eq!(
        client.get_droplet(id).await.expect("get").status,
        DropletStatus::Off
    );

    sim.report_usage(
        id,
        DropletUsage {
            cpu: 0.25,
            memory_used_bytes: 512 * 1024 * 1024,
            load1: 0.7,
        },
    );
    // Let some simulated minutes pass so the CPU counters have a window.
    clock.sleep(Duration::from_secs(600)).await;
    let usage = client
        .droplet_utilization(id, Duration::from_secs(600))
        .await
        .expect("utilization");
    assert!((usage.cpu.expect("cpu") - 0.25).abs() < 0.01, "{usage:?}");
    assert!(
        (usage.memory.expect("memory") - 0.5).abs() < 0.01,
        "{usage:?}"
    );
    assert_eq!(usage.load1, Some(0.7));

    assert_eq!(
        client.delete_droplet(id).await.expect("delete"),
        DeleteOutcome::Deleted
    );
    assert!(
        client
            .get_droplet(id)
            .await
            .expect_err("gone")
            .is_not_found()
    );
    assert_eq!(
        client.delete_droplet(id).await.expect("delete again"),
        DeleteOutcome::AlreadyGone
    );
    assert_eq!(hook.deleted.lock().expect("lock").as_slice(), &[id]);

    for i in 0..3 {
        let mut request = create_request(&format!("bulk-{i}"));
        request.tags.push("bulk".to_owned());
        client.create_droplet(&request).await.expect("create");
    }
    client
        .delete_droplets_by_tag("bulk")
        .await
        .expect("delete by tag");
    assert!(
        sim.droplets()
            .iter()
            .all(|d| !d.tags.contains(&"bulk".to_owned()))
    );

    assert!(client.metrics().requests("create_droplet", "2xx") >= 4);
    assert!(client.metrics().rate_limit_remaining() > 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn listing_follows_pagination_across_pages() {
    let clock = fast_clock(100.0);
    let sim = start_sim(clock.clone(), |c| {
        c.enforce_rate_limits = false;
        c.list_lag = Duration::ZERO;
    })
    .await;
    let client = unpaced_client(&sim, clock.clone());
    for i in 0..205 {
        client
            .create_droplet(&create_request(&format!("page-{i}")))
            .await
            .expect("create");
    }
    let all = client.list_droplets().await.expect("list");
    assert_eq!(all.len(), 205);
    let mut ids: Vec<u64> = all.iter().map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 205, "no droplet listed twice");
    // Two pages of 200.
    assert_eq!(client.metrics().requests("list_droplets", "2xx"), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn errors_are_typed_and_carry_digitalocean_fields() {
    let clock = fast_clock(100.0);
    let sim = start_sim(clock.clone(), |c| c.droplet_limit = 1).await;

    let wrong = client_for(&sim, clock.clone(), "dop_v1_wrong_token");
    match wrong.account().await {
        Err(CloudError::Unauthorized(detail)) => {
            assert_eq!(detail.status, 401);
            assert_eq!(detail.id, "unauthorized");
            assert_eq!(detail.message, "Unable to authenticate you.");
            assert!(detail.request_id.is_some(), "x-request-id is kept");
            let text = CloudError::Unauthorized(detail).to_string();
            assert!(
                !text.contains("wrong_token"),
                "token never in errors: {text}"
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }

    let client = client_for(&sim, clock.clone(), TOKEN);
    match client.get_droplet(12345).await {
        Err(CloudError::NotFound(detail)) => assert_eq!(detail.id, "not_found"),
        other => panic!("expected 404, got {other:?}"),
    }

    for (field, value, message) in [
        ("size", "s-99vcpu-1tb", "invalid size"),
        ("region", "mars1", "invalid region"),
        ("image", "windows-95", "invalid image"),
    ] {
        let mut request = create_request("bad");
        match field {
            "size" => request.size = value.to_owned(),
            "region" => request.region = value.to_owned(),
            _ => request.image = value.to_owned(),
        }
        match client.create_droplet(&request).await {
            Err(CloudError::Unprocessable(detail)) => {
                assert_eq!(detail.id, "unprocessable_entity");
                assert!(detail.message.contains(message), "{detail}");
            }
            other => panic!("expected 422 for {field}, got {other:?}"),
        }
    }

    client
        .create_droplet(&create_request("first"))
        .await
        .expect("first create within the limit");
    match client.create_droplet(&create_request("second")).await {
        Err(CloudError::Unprocessable(detail)) => assert_eq!(
            detail.message,
            "creating this/these droplet(s) will exceed your droplet limit"
        ),
        other => panic!("expected the droplet limit, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn sold_out_sizes_answer_422_with_available_regions() {
    let clock = fast_clock(100.0);
    let sim = start_sim(clock.clone(), |c| {
        c.faults.unavailable = vec![("s-1vcpu-1gb".to_owned(), "nyc3".to_owned())];
    })
    .await;
    let client = client_for(&sim, clock, TOKEN);
    match client.create_droplet(&create_request("sold-out")).await {
        Err(CloudError::Unprocessable(detail)) => {
            assert!(
                detail.message.contains("temporarily unavailable"),
                "{detail}"
            )
        }
        other => panic!("expected 422, got {other:?}"),
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn reads_are_retried_through_injected_server_errors() {
    let clock = fast_clock(1000.0);
    let sim = start_sim(clock.clone(), |c| {
        c.faults.server_error_rate = 0.3;
        c.list_lag = Duration::ZERO;
    })
    .await;
    let client = client_for(&sim, clock.clone(), TOKEN);
    for _ in 0..30 {
        client.account().await.expect("account despite 5xx");
        client.list_sizes().await.expect("sizes despite 5xx");
    }
    let retries = client.metrics().retries("get_account", "server")
        + client.metrics().retries("list_sizes", "server");
    assert!(retries > 5, "retries happened: {retries}");
    sim.shutdown().await;
}

#[tokio::test]
async fn creates_are_not_replayed_after_a_server_error() {
    let clock = fast_clock(1000.0);
    let sim = start_sim(clock.clone(), |c| {
        c.faults.create_commit_then_fail_rate = 1.0;
    })
    .await;
    let client = client_for(&sim, clock, TOKEN);
    match client.create_droplet(&create_request("committed")).await {
        Err(CloudError::Server(detail)) => assert_eq!(detail.id, "server_error"),
        other => panic!("expected 500, got {other:?}"),
    }
    assert_eq!(sim.droplets().len(), 1, "one commit, no replay");
    assert_eq!(client.metrics().retries("create_droplet", "server"), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_429_storm_is_waited_out() {
    let clock = fast_clock(1000.0);
    let sim = start_sim(clock.clone(), |_| {}).await;
    let client = client_for(&sim, clock, TOKEN);
    sim.force_rate_limited(3);
    client.account().await.expect("account after the storm");
    assert_eq!(client.metrics().retries("get_account", "rate_limited"), 3);
    assert_eq!(sim.stats().rate_limited, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_connection_failure_is_a_transport_error() {
    let clock = fast_clock(10_000.0);
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = mcp_droplet_operator::cloud::DoClientConfig::new(
        format!("http://127.0.0.1:{port}"),
        TOKEN.into(),
    );
    config.retry.jitter = mcp_droplet_operator::retry::Jitter::None;
    // At 10,000x a real millisecond is ten simulated seconds: leave the deadline out of it.
    config.max_wait = Duration::from_secs(24 * 3600);
    let client =
        mcp_droplet_operator::cloud::DoClient::with_parts(config, clock, Default::default())
            .expect("client");
    match client.get_droplet(1).await {
        Err(error @ CloudError::Transport { .. }) => {
            assert!(!error.is_not_found(), "a failed read never means gone");
            assert!(error.is_transient());
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(client.metrics().retries("get_droplet", "transport"), 4);
}

#[tokio::test]
async fn faults_can_change_at_run_time() {
    let clock = fast_clock(100.0);
    let sim = start_sim(clock.clone(), |_| {}).await;
    let client = client_for(&sim, clock.clone(), TOKEN);
    sim.set_faults(FaultConfig {
        never_active_rate: 1.0,
        ..FaultConfig::default()
    });
    let created = client
        .create_droplet(&create_request("stuck"))
        .await
        .expect("create");
    // Let twice the 20 s boot time pass on the simulated clock.
    clock.sleep(Duration::from_secs(40)).await;
    assert_eq!(
        client
            .get_droplet(created.droplet.id)
            .await
            .expect("get")
            .status,
        DropletStatus::New,
        "a never-active droplet stays new past its boot time"
    );
    assert!(sim.lose_droplet(created.droplet.id));
    assert!(
        client
            .get_droplet(created.droplet.id)
            .await
            .expect_err("lost")
            .is_not_found()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_hourly_429_fails_fast_with_the_reset_or_waits_for_it_when_allowed() {
    let clock = fast_clock(2_000.0);
    let sim = start_sim(clock.clone(), |c| {
        c.rate_limits = mcp_droplet_operator::sim::digitalocean::SimRateLimits {
            per_minute: 1_000,
            per_hour: 10,
        };
    })
    .await;
    let client = client_for(&sim, clock.clone(), TOKEN);
    let start = clock.now();
    for _ in 0..10 {
        client.account().await.expect("account");
    }
    // The hour is spent: with the default deadline (a minute) the call says when to return,
    // which is when the first request leaves the hour.
    match client.account().await {
        Err(CloudError::RateLimited { retry_after, .. }) => {
            let reset = clock::elapsed(start, clock.now()) + retry_after;
            assert!(
                reset >= Duration::from_secs(3_000),
                "retry_after names the reset: {retry_after:?}"
            );
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // A caller that may wait two hours waits for ratelimit-reset, not a short backoff.
    client
        .with_max_wait(Duration::from_secs(2 * 3600))
        .account()
        .await
        .expect("account after the reset");
    let waited = clock::elapsed(start, clock.now());
    assert!(
        sim.stats().rate_limited <= 1,
        "at most one 429 from the hourly limit"
    );
    assert!(
        waited >= Duration::from_secs(3_000),
        "the client waited for ratelimit-reset: {waited:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_failed_action_post_that_was_committed_is_not_sent_again() {
    let clock = fast_clock(1_000.0);
    let sim = start_sim(clock.clone(), |c| {
        c.boot_delay = BootDelay::fixed(Duration::ZERO)
    })
    .await;
    let client = client_for(&sim, clock.clone(), TOKEN);
    let id = client
        .create_droplet(&create_request("acted"))
        .await
        .expect("create")
        .droplet
        .id;
    eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move { client.get_droplet(id).await.ok().filter(|d| d.is_ready()) }
    })
    .await;
    // Every action POST is committed and then answered with 500.
    sim.set_faults(FaultConfig {
        action_commit_then_fail_rate: 1.0,
        ..FaultConfig::default()
    });
    let power_off = client
        .droplet_action(id, &DropletActionRequest::PowerOff)
        .await
        .expect("the committed action is found");
    assert_eq!(power_off.kind, "power_off");
    let kinds = |actions: Vec<mcp_droplet_operator::cloud::models::Action>, kind: &str| {
        actions.iter().filter(|a| a.kind == kind).count()
    };
    assert_eq!(
        kinds(
            client.list_droplet_actions(id).await.expect("actions"),
            "power_off"
        ),
        1,
        "one power-off, not one per retry"
    );
    eventually(Duration::from_secs(10), || {
        let client = client.clone();
        async move {
            client
                .get_droplet(id)
                .await
                .ok()
                .filter(|d| d.status == DropletStatus::Off && !d.locked)
        }
    })
    .await;
    let resize = DropletActionRequest::Resize {
        size: "s-2vcpu-4gb".to_owned(),
        disk: false,
    };
    let resized = client
        .droplet_action(id, &resize)
        .await
        .expect("the committed resize is found");
    assert_eq!(resized.kind, "resize");
    assert_eq!(
        kinds(
            client.list_droplet_actions(id).await.expect("actions"),
            "resize"
        ),
        1
    );
    assert_eq!(client.metrics().retries("droplet_action", "server"), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn sizes_and_regions_fall_back_to_the_embedded_catalogue() {
    let clock = fast_clock(10_000.0);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut config = mcp_droplet_operator::cloud::DoClientConfig::new(
        format!("http://127.0.0.1:{port}"),
        TOKEN.into(),
    );
    config.retry.jitter = mcp_droplet_operator::retry::Jitter::None;
    let client =
        mcp_droplet_operator::cloud::DoClient::with_parts(config, clock, Default::default())
            .expect("client");
    let sizes = client.sizes().await;
    assert_eq!(sizes.len(), mcp_droplet_operator::catalog::sizes().len());
    let regions = client.regions().await;
    assert!(regions.iter().any(|r| r.slug == "fra1"));
}

#[tokio::test]
async fn lost_droplets_are_reported_to_the_hook() {
    let clock = fast_clock(1_000.0);
    let sim = start_sim(clock.clone(), |c| c.faults.lost_droplet_rate = 1.0).await;
    let hook = Arc::new(RecordingHook::default());
    sim.set_lifecycle_hook(hook.clone());
    let client = client_for(&sim, clock, TOKEN);
    let id = client
        .create_droplet(&create_request("doomed"))
        .await
        .expect("create")
        .droplet
        .id;
    eventually(Duration::from_secs(10), || {
        let hook = hook.clone();
        async move {
            hook.deleted
                .lock()
                .expect("lock")
                .contains(&id)
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        hook.active.lock().expect("lock").len(),
        1,
        "it was active first"
    );
    assert!(
        client
            .get_droplet(id)
            .await
            .expect_err("gone")
            .is_not_found()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_new_droplet_can_answer_404_for_a_while() {
    let (manual, clock) = manual_clock();
    let sim = start_sim(clock.clone(), |c| c.get_lag = Duration::from_secs(10)).await;
    let client = unpaced_client(&sim, clock);
    let id = client
        .create_droplet(&create_request("lagging"))
        .await
        .expect("create")
        .droplet
        .id;
    assert!(
        client
            .get_droplet(id)
            .await
            .expect_err("lag")
            .is_not_found()
    );
    manual.advance(Duration::from_secs(10));
    assert_eq!(client.get_droplet(id).await.expect("visible").id, id);
    sim.shutdown().await;
}
