//! The DTMA driver against the fake agent, under every quirk switch: it must converge (or report
//! exactly what DTMA cannot fix) in each scenario, and the client must turn each quirk into the
//! right typed outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_droplet_operator::dtma::wire::{ContainerOverrides, DeployGroupBody, GroupServerBody};
use mcp_droplet_operator::dtma::{
    Blocker, ConfigHash, ControlOutcome, DEFAULT_NAME_PREFIX, DeployOutcome, DesiredServer,
    DtmaClient, DtmaDriver, DtmaError, PassReport, RemoveOutcome, deploy_body,
};
use mcp_droplet_operator::probe::{McpTransport, bearer_token};
use mcp_droplet_operator::testing::dtma_fake::{AuthMode, FakeDtma, Quirks};

const TOKEN: &str = "per-droplet-token";
const MAX_PASSES: usize = 4;

/// Every switch combination worth covering: all on (HEAD), all off, and each one alone.
fn quirk_matrix() -> Vec<(&'static str, Quirks)> {
    let none = Quirks::ideal();
    vec![
        ("real", Quirks::real()),
        ("ideal", none),
        (
            "stop-500",
            Quirks {
                stop_stopped_is_500: true,
                ..none
            },
        ),
        (
            "group-201",
            Quirks {
                group_deploy_always_201: true,
                ..none
            },
        ),
        (
            "group-delete-500",
            Quirks {
                unknown_group_delete_500: true,
                ..none
            },
        ),
        (
            "host-conflict-500",
            Quirks {
                host_name_conflict_is_500: true,
                ..none
            },
        ),
        (
            "restart-forgets",
            Quirks {
                restart_forgets_state: true,
                ..none
            },
        ),
    ]
}

fn server(name: &str, image: &str, host_port: u16) -> DesiredServer {
    DesiredServer {
        name: name.into(),
        image: image.into(),
        env: BTreeMap::from([("API_KEY".into(), "s3cret".into())]),
        port: 8080,
        host_port,
        transport: McpTransport::StreamableHttp,
        labels: BTreeMap::new(),
        config_hash: ConfigHash::Unchecked(None),
    }
}

async fn setup(quirks: Quirks) -> (FakeDtma, DtmaDriver) {
    let fake = FakeDtma::start(quirks, &[TOKEN, "global-backend-key"])
        .await
        .expect("start fake DTMA");
    let client = DtmaClient::new(&fake.url(), bearer_token(TOKEN)).expect("client");
    (fake, DtmaDriver::new(client, DEFAULT_NAME_PREFIX))
}

/// Runs passes until one has nothing left to do; returns every pass.
async fn settle(driver: &DtmaDriver, desired: &[DesiredServer], label: &str) -> Vec<PassReport> {
    let mut passes = Vec::new();
    for _ in 0..MAX_PASSES {
        let report = driver
            .reconcile(desired)
            .await
            .expect("agent lists containers");
        let done = report.plan.actions.is_empty();
        passes.push(report);
        if done {
            return passes;
        }
    }
    panic!("[{label}] did not settle in {MAX_PASSES} passes: {passes:#?}");
}

/// Each desired server runs exactly once, with its image and host port.
fn assert_running(fake: &FakeDtma, desired: &[DesiredServer], label: &str) {
    let host = fake.host_containers();
    for server in desired {
        let prefix = format!("{DEFAULT_NAME_PREFIX}{}", server.name);
        let running: Vec<_> = host
            .iter()
            .filter(|c| {
                (c.name == prefix || c.name.starts_with(&format!("{prefix}.")))
                    && c.state == "running"
            })
            .collect();
        assert_eq!(running.len(), 1, "[{label}] {}: {host:#?}", server.name);
        assert_eq!(running[0].image, server.image, "[{label}]");
        assert!(
            running[0].ports.iter().any(|(_, p)| *p == server.host_port),
            "[{label}] {running:?}"
        );
        assert!(
            running[0].env.contains(&"API_KEY=s3cret".to_owned()),
            "[{label}]"
        );
    }
    // DTMA's own container is never touched.
    assert!(
        host.iter()
            .any(|c| c.name == "dtma_manager" && c.state == "running"),
        "[{label}]"
    );
}

fn ours(fake: &FakeDtma) -> Vec<String> {
    fake.host_containers()
        .into_iter()
        .map(|c| c.name)
        .filter(|n| n.starts_with(DEFAULT_NAME_PREFIX))
        .collect()
}

// ---------- the matrix: the driver converges under every quirk ----------

#[tokio::test]
async fn fresh_deploy_converges_and_a_second_pass_does_nothing() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        let desired = [
            server("github", "ghcr.io/x/github:1", 31001),
            server("time", "mcp/time:1", 31002),
        ];
        let passes = settle(&driver, &desired, label).await;
        assert_eq!(
            passes.len(),
            2,
            "[{label}] one pass acts, the next finds nothing to do"
        );
        assert!(
            passes[0].errors().is_empty(),
            "[{label}] {:?}",
            passes[0].errors()
        );
        assert!(passes[1].converged(), "[{label}]");
        assert_running(&fake, &desired, label);
        assert_eq!(ours(&fake), vec!["mcpdo-github", "mcpdo-time"], "[{label}]");
    }
}

#[tokio::test]
async fn a_changed_configuration_hash_replaces_the_container_in_one_pass() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        let first = DesiredServer {
            config_hash: ConfigHash::Desired("aa01".into()),
            ..server("github", "ghcr.io/x/github:1", 31001)
        };
        settle(&driver, std::slice::from_ref(&first), label).await;
        assert_eq!(ours(&fake), vec!["mcpdo-github_aa01"], "[{label}]");
        // A rotated Secret: new env, new hash, same image and host port.
        let mut second = DesiredServer {
            config_hash: ConfigHash::Desired("bb02".into()),
            ..first.clone()
        };
        second.env.insert("API_KEY".into(), "rotated".into());
        let passes = settle(&driver, std::slice::from_ref(&second), label).await;
        assert_eq!(passes.len(), 2, "[{label}] one pass replaces: {passes:#?}");
        assert!(passes[0].errors().is_empty(), "[{label}]");
        assert_eq!(ours(&fake), vec!["mcpdo-github_bb02"], "[{label}]");
        let host = fake.host_containers();
        let new = host
            .iter()
            .find(|c| c.name == "mcpdo-github_bb02")
            .expect("the new container");
        assert_eq!(new.state, "running", "[{label}]");
        assert!(new.env.contains(&"API_KEY=rotated".to_owned()), "[{label}]");
        // Observing only (the hash unchecked) keeps it as it runs.
        let observing = DesiredServer {
            config_hash: ConfigHash::Unchecked(Some("cc03".into())),
            ..second
        };
        let report = driver.reconcile(&[observing]).await.expect("list");
        assert!(report.converged(), "[{label}] {report:#?}");
    }
}

#[tokio::test]
async fn crashed_container_is_started_again() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        let desired = [server("github", "ghcr.io/x/github:1", 31001)];
        settle(&driver, &desired, label).await;
        fake.crash("mcpdo-github");
        let passes = settle(&driver, &desired, label).await;
        assert!(
            passes.last().is_some_and(PassReport::converged),
            "[{label}]"
        );
        assert_running(&fake, &desired, label);
        assert_eq!(
            ours(&fake),
            vec!["mcpdo-github"],
            "[{label}] started in place, not replaced"
        );
    }
}

#[tokio::test]
async fn agent_restart_with_servers_running_needs_no_action() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        let desired = [server("github", "ghcr.io/x/github:1", 31001)];
        settle(&driver, &desired, label).await;
        fake.simulate_restart();
        let report = driver.reconcile(&desired).await.expect("list");
        assert!(report.converged(), "[{label}] {report:#?}");
        assert!(
            report.results.is_empty(),
            "[{label}] no calls for running servers"
        );
        assert_running(&fake, &desired, label);
    }
}

#[tokio::test]
async fn crash_after_agent_restart_is_replaced_and_the_orphan_reported() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        let desired = [server("github", "ghcr.io/x/github:1", 31001)];
        settle(&driver, &desired, label).await;
        fake.simulate_restart();
        fake.crash("mcpdo-github");
        let passes = settle(&driver, &desired, label).await;
        assert_running(&fake, &desired, label);
        let last = passes.last().expect("a pass");
        if quirks.restart_forgets_state {
            // The agent cannot start a container it forgot: a fresh generation replaces it, and
            // the stopped original is reported because DTMA has no way to remove it.
            assert_eq!(
                ours(&fake),
                vec!["mcpdo-github", "mcpdo-github.2"],
                "[{label}]"
            );
            assert_eq!(
                last.plan.blockers,
                vec![Blocker::Orphan {
                    container: "mcpdo-github".into(),
                    running: false
                }],
                "[{label}]"
            );
        } else {
            assert_eq!(ours(&fake), vec!["mcpdo-github"], "[{label}]");
            assert!(last.converged(), "[{label}]");
        }
    }
}

#[tokio::test]
async fn image_upgrade_of_a_crashed_server_replaces_it() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        settle(
            &driver,
            &[server("github", "ghcr.io/x/github:1", 31001)],
            label,
        )
        .await;
        // Exited first, so the graceful stop before removal meets "already stopped".
        fake.crash("mcpdo-github");
        let upgraded = [server("github", "ghcr.io/x/github:2", 31001)];
        let passes = settle(&driver, &upgraded, label).await;
        assert!(
            passes.iter().all(|p| p.errors().is_empty()),
            "[{label}] {passes:#?}"
        );
        assert!(
            passes.last().is_some_and(PassReport::converged),
            "[{label}]"
        );
        assert_running(&fake, &upgraded, label);
        assert_eq!(ours(&fake), vec!["mcpdo-github.2"], "[{label}]");
    }
}

#[tokio::test]
async fn running_upgrade_frees_the_port_before_deploying() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        settle(
            &driver,
            &[server("github", "ghcr.io/x/github:1", 31001)],
            label,
        )
        .await;
        let upgraded = [server("github", "ghcr.io/x/github:2", 31001)];
        let passes = settle(&driver, &upgraded, label).await;
        assert!(
            passes[0].errors().is_empty(),
            "[{label}] {:?}",
            passes[0].errors()
        );
        assert_running(&fake, &upgraded, label);
    }
}

#[tokio::test]
async fn undesired_server_is_removed_unless_the_agent_forgot_it() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        settle(
            &driver,
            &[
                server("old", "img:1", 31001),
                server("keep", "img:1", 31002),
            ],
            label,
        )
        .await;
        let desired = [server("keep", "img:1", 31002)];
        let passes = settle(&driver, &desired, label).await;
        assert!(
            passes.last().is_some_and(PassReport::converged),
            "[{label}]"
        );
        assert_eq!(ours(&fake), vec!["mcpdo-keep"], "[{label}]");

        // Now the same after a restart: the agent can no longer remove it.
        settle(
            &driver,
            &[
                server("old", "img:1", 31001),
                server("keep", "img:1", 31002),
            ],
            label,
        )
        .await;
        fake.simulate_restart();
        let passes = settle(&driver, &desired, label).await;
        let last = passes.last().expect("a pass");
        if quirks.restart_forgets_state {
            assert_eq!(last.orphans(), vec!["mcpdo-old"], "[{label}]");
            assert!(!last.converged(), "[{label}] an orphan is not convergence");
        } else {
            assert!(last.converged(), "[{label}]");
            assert_eq!(ours(&fake), vec!["mcpdo-keep"], "[{label}]");
        }
    }
}

#[tokio::test]
async fn container_removed_behind_the_agents_back_is_a_ghost_until_the_agent_restarts() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        let desired = [server("github", "img:1", 31001)];
        settle(&driver, &desired, label).await;
        fake.remove_behind_the_agents_back("mcpdo-github");
        // The agent still holds the name and port in memory: each pass reports it, distinctly.
        for _ in 0..2 {
            let report = driver.reconcile(&desired).await.expect("list");
            assert_eq!(
                report.errors(),
                vec![&DtmaError::GhostEntry {
                    name: "mcpdo-github".into()
                }],
                "[{label}]"
            );
        }
        fake.simulate_restart();
        if quirks.restart_forgets_state {
            // A restart clears the ghost (it is the only thing that does).
            settle(&driver, &desired, label).await;
            assert_running(&fake, &desired, label);
        }
    }
}

#[tokio::test]
async fn failed_pull_is_reported_and_retried_next_pass() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        fake.fail_pulls_of("ghcr.io/x/missing:1");
        let desired = [
            server("broken", "ghcr.io/x/missing:1", 31001),
            server("ok", "img:1", 31002),
        ];
        let report = driver.reconcile(&desired).await.expect("list");
        let errors = report.errors();
        assert_eq!(errors.len(), 1, "[{label}] {errors:?}");
        assert!(
            matches!(errors[0], DtmaError::Api { status: 500, .. }),
            "[{label}] {errors:?}"
        );
        assert_running(&fake, &desired[1..], label);
        // Still wanted, still missing: the next pass tries again rather than giving up.
        let next = driver.reconcile(&desired).await.expect("list");
        assert_eq!(next.plan.actions.len(), 1, "[{label}]");
    }
}

// ---------- the client: each quirk becomes a typed outcome ----------

fn client(fake: &FakeDtma, token: &str) -> DtmaClient {
    DtmaClient::new(&fake.url(), bearer_token(token)).expect("client")
}

#[tokio::test]
async fn stopping_a_stopped_container_is_success_under_every_quirk() {
    for (label, quirks) in quirk_matrix() {
        let (fake, driver) = setup(quirks).await;
        settle(&driver, &[server("a", "img:1", 31001)], label).await;
        let dtma = client(&fake, TOKEN);
        assert_eq!(
            dtma.stop("mcpdo-a").await,
            Ok(ControlOutcome::Done),
            "[{label}]"
        );
        assert_eq!(
            dtma.stop("mcpdo-a").await,
            Ok(ControlOutcome::Done),
            "[{label}] second stop"
        );
        assert_eq!(
            dtma.start("mcpdo-a").await,
            Ok(ControlOutcome::Done),
            "[{label}]"
        );
        assert_eq!(
            dtma.start("mcpdo-a").await,
            Ok(ControlOutcome::Done),
            "[{label}] already running"
        );
    }
}

#[tokio::test]
async fn repeated_deploy_is_already_deployed_before_and_after_a_restart() {
    for (label, quirks) in quirk_matrix() {
        let (fake, _) = setup(quirks).await;
        let dtma = client(&fake, TOKEN);
        let body = deploy_body("mcpdo-a", &server("a", "img:1", 31001));
        assert!(
            matches!(dtma.deploy(&body).await, Ok(DeployOutcome::Created { .. })),
            "[{label}]"
        );
        // 409 from the agent's memory.
        assert_eq!(
            dtma.deploy(&body).await,
            Ok(DeployOutcome::AlreadyDeployed),
            "[{label}]"
        );
        fake.simulate_restart();
        // After a restart: Docker's conflict, a 500 at HEAD.
        assert_eq!(
            dtma.deploy(&body).await,
            Ok(DeployOutcome::AlreadyDeployed),
            "[{label}]"
        );
        // Same name, other image: a real conflict.
        let other = deploy_body("mcpdo-a", &server("a", "img:2", 31005));
        assert!(
            matches!(dtma.deploy(&other).await, Err(DtmaError::Conflict { .. })),
            "[{label}]"
        );
    }
}

#[tokio::test]
async fn not_found_means_gone_or_forgotten_depending_on_the_host() {
    let (fake, driver) = setup(Quirks::real()).await;
    settle(
        &driver,
        &[server("a", "img:1", 31001), server("b", "img:1", 31002)],
        "real",
    )
    .await;
    let dtma = client(&fake, TOKEN);
    fake.simulate_restart();
    assert_eq!(
        dtma.start("mcpdo-a").await,
        Err(DtmaError::AgentForgot {
            name: "mcpdo-a".into()
        })
    );
    assert_eq!(
        dtma.stop("mcpdo-a").await,
        Err(DtmaError::AgentForgot {
            name: "mcpdo-a".into()
        })
    );
    assert_eq!(
        dtma.remove("mcpdo-a").await,
        Err(DtmaError::Orphaned {
            name: "mcpdo-a".into()
        })
    );
    fake.remove_behind_the_agents_back("mcpdo-b");
    assert_eq!(dtma.remove("mcpdo-b").await, Ok(RemoveOutcome::AlreadyGone));
    assert_eq!(dtma.start("mcpdo-b").await, Ok(ControlOutcome::Gone));
}

fn group(id: &str, members: &[(&str, &str)]) -> DeployGroupBody {
    DeployGroupBody {
        group_id: id.into(),
        servers: members
            .iter()
            .map(|(name, image)| GroupServerBody {
                account_tool_instance_id: format!("id-{name}"),
                instance_name_on_toolbox: (*name).into(),
                docker_image_url: (*image).into(),
                mcp_endpoint_path: "/mcp".into(),
                mcp_transport_type: "sse".into(),
                base_config_override_json: ContainerOverrides::default(),
            })
            .collect(),
    }
}

#[tokio::test]
async fn group_deploy_failures_hidden_in_a_201_are_surfaced() {
    for (label, quirks) in quirk_matrix() {
        let (fake, _) = setup(quirks).await;
        fake.fail_pulls_of("bad:1");
        let dtma = client(&fake, TOKEN);
        let deployed = dtma
            .deploy_mcp_group(&group("g1", &[("m1", "img:1")]))
            .await;
        assert_eq!(deployed, Ok(vec!["m1".to_owned()]), "[{label}]");
        let failed = dtma
            .deploy_mcp_group(&group("g2", &[("m2", "bad:1")]))
            .await;
        match failed {
            Err(DtmaError::GroupMembersFailed { errors, .. }) => {
                assert!(errors.contains_key("m2"), "[{label}]")
            }
            Err(DtmaError::Api { status: 500, .. }) if !quirks.group_deploy_always_201 => {}
            other => panic!("[{label}] a failed member must be an error, got {other:?}"),
        }
        let health = dtma.mcp_group_health("g1").await.expect("health");
        let member = health
            .as_ref()
            .and_then(|h| h.instances.get("m1"))
            .map(|m| m.status.clone());
        assert_eq!(member.as_deref(), Some("running"), "[{label}]");
        assert_eq!(
            dtma.remove_mcp_group("g1").await,
            Ok(RemoveOutcome::Removed),
            "[{label}]"
        );
        // Unknown group: 500 "not found" at HEAD, 404 ideally; gone either way.
        assert_eq!(
            dtma.remove_mcp_group("g1").await,
            Ok(RemoveOutcome::AlreadyGone),
            "[{label}]"
        );
        assert_eq!(dtma.mcp_group_health("g1").await, Ok(None), "[{label}]");
    }
}

#[tokio::test]
async fn auth_failures_are_typed() {
    let (fake, _) = setup(Quirks::real()).await;
    assert_eq!(
        client(&fake, "wrong").list_instances().await,
        Err(DtmaError::Unauthorized { status: 403 })
    );
    // The global backend key is also accepted (both token kinds are configured).
    assert!(
        client(&fake, "global-backend-key")
            .list_instances()
            .await
            .is_ok()
    );
    // Open routes stay open whatever the token.
    assert_eq!(client(&fake, "wrong").health().await, Ok(()));
    fake.set_auth(AuthMode::Misconfigured);
    assert_eq!(
        client(&fake, TOKEN).list_instances().await,
        Err(DtmaError::AgentMisconfigured)
    );
}

#[tokio::test]
async fn status_reports_the_agent_version_not_the_hard_coded_one() {
    let (fake, _) = setup(Quirks::real()).await;
    let status = client(&fake, TOKEN).status().await.expect("status");
    assert_eq!(status.version.as_deref(), Some("0.1.0"));
    assert_eq!(status.service.as_deref(), Some("DTMA"));
}

#[tokio::test]
async fn slow_pull_is_waited_for() {
    let (fake, driver) = setup(Quirks::real()).await;
    fake.set_pull_delay(Duration::from_millis(300));
    let desired = [server("slow", "img:1", 31001)];
    let passes = settle(&driver, &desired, "slow").await;
    assert!(passes[0].errors().is_empty(), "{:?}", passes[0].errors());
    assert_running(&fake, &desired, "slow");
}

#[tokio::test]
async fn unreachable_agent_fails_the_pass() {
    let (fake, driver) = setup(Quirks::real()).await;
    drop(fake);
    // Graceful shutdown may take a moment; poll until the listener is gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match driver.reconcile(&[]).await {
            Err(DtmaError::Http(_)) => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "still answering: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_pass_lists_the_host_first_then_deploys() {
    let (fake, driver) = setup(Quirks::real()).await;
    settle(&driver, &[server("a", "img:1", 31001)], "calls").await;
    let calls = fake.calls();
    assert_eq!(calls.first().map(String::as_str), Some("GET /tools/status"));
    assert!(calls.contains(&"POST /tools".to_owned()), "{calls:?}");
}
