//! The operator process killed (SIGKILL, not a task) at several points and restarted: right after
//! a DigitalOcean create was committed but before the operator saw the answer (the create is
//! answered 500 after committing), while a droplet boots or enrols, and while servers deploy. The
//! simulated cloud lives in this test process, so it keeps its state across operator restarts,
//! like `sim --no-kube` in another process. It must converge with no duplicate droplet, and
//! deleting everything must leave no droplet in the cloud. The process runs as the chart's
//! service account under exactly its rendered RBAC (in its release namespace `mcp-system`), and
//! none of its requests may be denied.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::{Api, ResourceExt};
use mcp_droplet_operator::api::deployment::{DeploymentPhase, MCPDeployment};
use mcp_droplet_operator::api::droplet::{Droplet, DropletPhase};
use mcp_droplet_operator::api::template::MCPTemplate;
use mcp_droplet_operator::sim::digitalocean::{FaultConfig, SimDoConfig};
use mcp_droplet_operator::sim::{CloudSettings, KubeSimSettings, World, WorldConfig};
use mcp_droplet_operator::testing::operator::OperatorRbac;
use secrecy::{ExposeSecret, SecretString};

const NS: &str = "restart";
/// The chart's release namespace: the operator's own (its token Secret is there).
const OPERATOR_NS: &str = "mcp-system";
const DEPLOYMENTS: usize = 6;

fn start_operator(kubeconfig: &Path, do_url: &str) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .args([
            "run",
            "--leader-election",
            "false",
            "--namespace",
            OPERATOR_NS,
        ])
        .args(["--admin-addr", "127.0.0.1:0", "--digitalocean-url", do_url])
        .args(["--cluster-id", "restart-test"])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("MCP_TEST_OPERATOR_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the operator")
}

async fn kill(child: &mut tokio::process::Child) {
    child.start_kill().expect("SIGKILL");
    let _ = child.wait().await;
}

/// What the test watches: the deployments and droplets of its namespace.
struct Observed {
    deployments: Api<MCPDeployment>,
    droplets: Api<Droplet>,
}

impl Observed {
    /// The phase of every Droplet that has a status (none when the list fails).
    async fn droplet_phases(&self) -> Vec<DropletPhase> {
        self.droplets
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter_map(|d| Some(d.status.as_ref()?.phase))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The phase of every MCPDeployment that has a status (none when the list fails).
    async fn deployment_phases(&self) -> Vec<DeploymentPhase> {
        self.deployments
            .list(&Default::default())
            .await
            .map(|l| {
                l.items
                    .iter()
                    .filter_map(|d| Some(d.status.as_ref()?.phase))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Each object's phase and the message of its Ready condition, for a failure message.
    async fn describe(&self) -> String {
        let mut lines = Vec::new();
        match self.droplets.list(&Default::default()).await {
            Ok(list) => lines.extend(list.items.iter().map(|d| {
                format!(
                    "droplet {}: {:?}",
                    d.name_any(),
                    d.status.as_ref().map(|s| (s.phase, s.droplet_id))
                )
            })),
            Err(e) => lines.push(format!("droplets: {e}")),
        }
        match self.deployments.list(&Default::default()).await {
            Ok(list) => lines.extend(list.items.iter().map(|d| {
                let status = d.status.as_ref();
                let ready = status
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| format!("{}: {}", c.reason, c.message));
                format!(
                    "deployment {}: {:?} {}",
                    d.name_any(),
                    status.map(|s| s.phase),
                    ready.unwrap_or_default()
                )
            })),
            Err(e) => lines.push(format!("deployments: {e}")),
        }
        lines.join("\n")
    }

    /// Waits for `check` to hold, polling every 50 ms, at most `timeout`; on a timeout the
    /// panic describes every object.
    async fn until<F, Fut>(&self, what: &str, timeout: Duration, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            if started.elapsed() >= timeout {
                panic!("timed out waiting for {what}:\n{}", self.describe().await);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Where a slow run spends its time (shown with --nocapture or on failure).
        println!("{what}: after {:.1} s", started.elapsed().as_secs_f64());
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply("restart-test").force()
}

#[tokio::test]
async fn killed_at_any_point_the_operator_converges_with_no_duplicate_droplet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut digitalocean = SimDoConfig::default();
    digitalocean.boot_delay.min = Duration::from_secs(2);
    digitalocean.boot_delay.max = Duration::from_secs(4);
    // Its own droplet addresses, so parallel test processes never share an agent address.
    digitalocean.first_address = rand::random::<u32>() % 1_000_000;
    let token = SecretString::from("dop_v1_restart_test");
    let world = World::start(WorldConfig {
        clock: std::sync::Arc::new(clock::SystemClock),
        kube: Some(KubeSimSettings {
            rbac: Some(kube_sim::rbac::Rbac::new()),
            ..Default::default()
        }),
        cloud: Some(CloudSettings {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            token: token.clone(),
            digitalocean,
            agent_data_dir: dir.path().join("agents"),
        }),
    })
    .await
    .expect("world");
    let client = world.kube_client().expect("client");
    // The operator's kubeconfig carries the chart's service account's token.
    let sim = world.kube().expect("kube-sim");
    let rbac = OperatorRbac::from_chart("all-namespaces").expect("the chart's rendered RBAC");
    assert_eq!(rbac.namespace, OPERATOR_NS);
    sim.apply_documents(&rbac.documents, &rbac.namespace, "restart-test")
        .expect("the chart's RBAC");
    let account_token = sim
        .service_account_token(&rbac.namespace, &rbac.service_account)
        .expect("the service account's token");
    sim.write_kubeconfig_with(&kubeconfig, &account_token)
        .expect("the operator's kubeconfig");
    let operator_user =
        kube_sim::rbac::UserInfo::service_account(&rbac.namespace, &rbac.service_account).name;
    let do_url = world.digitalocean_url().expect("cloud url");
    let cloud = &world.cloud().expect("cloud").digitalocean;

    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [NS, OPERATOR_NS] {
        namespaces
            .patch(
                ns,
                &apply_params(),
                &Patch::Apply(Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                }),
            )
            .await
            .expect("namespace");
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), OPERATOR_NS);
    secrets
        .patch(
            "digitalocean-token",
            &apply_params(),
            &Patch::Apply(Secret {
                metadata: ObjectMeta {
                    name: Some("digitalocean-token".into()),
                    ..Default::default()
                },
                string_data: Some(
                    [("token".to_string(), token.expose_secret().to_string())].into(),
                ),
                ..Default::default()
            }),
        )
        .await
        .expect("token secret");
    let templates: Api<MCPTemplate> = Api::all(client.clone());
    let template = MCPTemplate::test("time").memory("1Gi").build();
    templates
        .patch("time", &apply_params(), &Patch::Apply(&template))
        .await
        .expect("template");
    let deployments: Api<MCPDeployment> = Api::namespaced(client.clone(), NS);
    for i in 0..DEPLOYMENTS {
        let name = format!("time-{i}");
        let d = MCPDeployment::test(&name)
            .namespace(NS)
            .template("time")
            .build();
        deployments
            .patch(&name, &apply_params(), &Patch::Apply(&d))
            .await
            .expect("deployment");
    }
    let droplets: Api<Droplet> = Api::namespaced(client.clone(), NS);
    let observed = Observed {
        deployments: deployments.clone(),
        droplets: droplets.clone(),
    };

    // 1. The first create commits and is answered 500; the operator dies right then.
    cloud.set_faults(FaultConfig {
        create_commit_then_fail_rate: 1.0,
        ..Default::default()
    });
    let mut operator = start_operator(&kubeconfig, &do_url);
    observed
        .until("a committed create", Duration::from_secs(90), || async {
            cloud.stats().droplets_created >= 1
        })
        .await;
    kill(&mut operator).await;
    cloud.set_faults(FaultConfig::default());

    // 2. Killed while a droplet boots or enrols. A Droplet whose create intent was recorded
    // but whose create never reached DigitalOcean (the kill can land between the two) is
    // created only after the list-lag grace, so this may take that long and then some.
    let mut operator = start_operator(&kubeconfig, &do_url);
    observed
        .until(
            "a droplet booting or enrolling",
            mcp_droplet_operator::cloud::droplet_creation::DEFAULT_LIST_LAG_GRACE
                + Duration::from_secs(90),
            || async {
                observed.droplet_phases().await.iter().any(|p| {
                    matches!(
                        p,
                        DropletPhase::Booting | DropletPhase::Enrolling | DropletPhase::Ready
                    )
                })
            },
        )
        .await;
    kill(&mut operator).await;

    // 3. Killed while servers are being deployed.
    let mut operator = start_operator(&kubeconfig, &do_url);
    observed
        .until(
            "a deployment past scheduling",
            Duration::from_secs(120),
            || async {
                observed.deployment_phases().await.iter().any(|p| {
                    matches!(
                        p,
                        DeploymentPhase::Preparing
                            | DeploymentPhase::Pulling
                            | DeploymentPhase::Deploying
                            | DeploymentPhase::Verifying
                            | DeploymentPhase::Ready
                    )
                })
            },
        )
        .await;
    kill(&mut operator).await;

    // 4. The last start converges.
    let mut operator = start_operator(&kubeconfig, &do_url);
    observed
        .until(
            "every deployment Ready",
            Duration::from_secs(240),
            || async {
                // Only deployments with a status have a phase: all six must be there and Ready.
                let phases = observed.deployment_phases().await;
                phases.len() == DEPLOYMENTS && phases.iter().all(|p| *p == DeploymentPhase::Ready)
            },
        )
        .await;

    // No duplicate: every droplet in the cloud belongs to exactly one Droplet object.
    let objects = droplets
        .list(&Default::default())
        .await
        .expect("droplets")
        .items;
    let mut ids: Vec<i64> = objects
        .iter()
        .filter_map(|d| d.status.as_ref().and_then(|s| s.droplet_id))
        .collect();
    ids.sort_unstable();
    let mut cloud_ids: Vec<i64> = cloud
        .droplets()
        .iter()
        .map(|d| i64::try_from(d.id).expect("id"))
        .collect();
    cloud_ids.sort_unstable();
    assert_eq!(
        ids.len(),
        objects.len(),
        "every Droplet has its id: {objects:?}"
    );
    assert_eq!(
        cloud_ids, ids,
        "the cloud holds exactly the Droplets' droplets"
    );

    // Deleting everything leaves no droplet in the cloud.
    for d in deployments
        .list(&Default::default())
        .await
        .expect("list")
        .items
    {
        deployments
            .delete(&d.name_any(), &Default::default())
            .await
            .expect("delete");
    }
    for d in &objects {
        droplets
            .delete(&d.name_any(), &Default::default())
            .await
            .expect("delete");
    }
    observed
        .until(
            "the cloud to be empty",
            Duration::from_secs(180),
            || async { cloud.droplets().is_empty() },
        )
        .await;
    observed
        .until("the objects to be gone", Duration::from_secs(60), || {
            let (deployments, droplets) = (deployments.clone(), droplets.clone());
            async move {
                deployments
                    .list(&Default::default())
                    .await
                    .is_ok_and(|l| l.items.is_empty())
                    && droplets
                        .list(&Default::default())
                        .await
                        .is_ok_and(|l| l.items.is_empty())
            }
        })
        .await;
    kill(&mut operator).await;
    let denied: Vec<_> = sim
        .access_record()
        .expect("access record")
        .denied()
        .into_iter()
        .filter(|d| d.user == operator_user)
        .collect();
    assert!(
        denied.is_empty(),
        "denied under the chart's RBAC: {denied:#?}"
    );
    world.shutdown().await;
}
