//! `mcp-droplet-operator run` as a process against kube-sim: the admin server answers, two
//! replicas elect one leader on a Lease, the standby takes over when the leader is killed, and
//! SIGTERM stops a replica cleanly. The token is never a command-line argument.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use mcp_droplet_operator::sim::{KubeSimSettings, World, WorldConfig};
use mcp_droplet_operator::testing::operator::eventually;

fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

fn start_replica(kubeconfig: &Path, name: &str, admin: SocketAddr) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .args([
            "run",
            "--cloud",
            "simulated",
            "--simulated-speed",
            "30",
            "--namespace",
            "default",
        ])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--admin-addr")
        .arg(admin.to_string())
        .env("POD_NAME", name)
        .env("RUST_LOG", "warn")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the operator")
}

async fn get(url: &str) -> Option<(u16, String)> {
    let response = reqwest::get(url).await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

async fn is_leader(admin: SocketAddr) -> Option<bool> {
    let (status, text) = get(&format!("http://{admin}/metrics")).await?;
    (status == 200).then(|| text.lines().any(|l| l == "mcp_operator_leader 1"))
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_standby_takes_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let world = World::start(WorldConfig {
        kube: Some(KubeSimSettings {
            kubeconfig: Some(kubeconfig.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("kube-sim");
    let client = world.kube_client().expect("client");

    let (admin_a, admin_b) = (free_port(), free_port());
    let mut a = start_replica(&kubeconfig, "replica-a", admin_a);
    let mut b = start_replica(&kubeconfig, "replica-b", admin_b);

    for admin in [admin_a, admin_b] {
        let (status, body) = eventually("healthz", Duration::from_secs(60), || async move {
            get(&format!("http://{admin}/healthz")).await
        })
        .await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let holder = eventually("a lease holder", Duration::from_secs(60), || {
        let leases = leases.clone();
        async move {
            let lease = leases.get_opt("mcp-droplet-operator").await.ok()??;
            lease.spec?.holder_identity
        }
    })
    .await;
    let (leader_admin, standby_admin, standby_name) = if holder == "replica-a" {
        (admin_a, admin_b, "replica-b")
    } else {
        assert_eq!(holder, "replica-b");
        (admin_b, admin_a, "replica-a")
    };
    eventually(
        "the holder reports itself leader",
        Duration::from_secs(30),
        || async move { is_leader(leader_admin).await.filter(|l| *l) },
    )
    .await;
    assert_eq!(
        is_leader(standby_admin).await,
        Some(false),
        "exactly one leader"
    );
    let (ready, _) = get(&format!("http://{standby_admin}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(
        ready, 200,
        "a standby with nothing to sync is ready to take over"
    );

    // Kill the leader (no chance to release the lease): the standby takes over after expiry.
    let leader = if holder == "replica-a" {
        &mut a
    } else {
        &mut b
    };
    leader.start_kill().expect("kill");
    let _ = leader.wait().await;
    eventually("the standby to take over", Duration::from_secs(60), || {
        let leases = leases.clone();
        async move {
            let lease = leases.get_opt("mcp-droplet-operator").await.ok()??;
            (lease.spec?.holder_identity.as_deref() == Some(standby_name)).then_some(())
        }
    })
    .await;
    eventually(
        "the new leader's metrics",
        Duration::from_secs(30),
        || async move { is_leader(standby_admin).await.filter(|l| *l) },
    )
    .await;

    // SIGTERM: a clean, prompt exit.
    let survivor = if holder == "replica-a" {
        &mut b
    } else {
        &mut a
    };
    let pid = survivor.id().expect("pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(40), survivor.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
    world.shutdown().await;
}

#[tokio::test]
async fn a_missing_token_secret_is_a_clear_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let world = World::start(WorldConfig {
        kube: Some(KubeSimSettings {
            kubeconfig: Some(kubeconfig.clone()),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("kube-sim");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .args([
            "run",
            "--namespace",
            "ops",
            "--leader-election",
            "false",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env_remove("KUBECONFIG")
        .output()
        .await
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Secret ops/digitalocean-token does not exist"),
        "stderr: {stderr}"
    );
    assert!(
        stderr.contains("kubectl -n ops create secret generic digitalocean-token"),
        "{stderr}"
    );
    world.shutdown().await;
}
