//! The `mcp-droplet-agent` binary starts from a bootstrap file and serves HTTPS.

mod common;

use common::*;
use std::time::Duration;

/// Kills the agent process when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_binary_serves_healthz_from_a_bootstrap_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bootstrap = dir.path().join("bootstrap.json");
    std::fs::write(
        &bootstrap,
        format!(
            r#"{{"dropletName": "d1", "enrolmentToken": "{TOKEN}", "listen": "127.0.0.1:{port}", "operatorCA": null}}"#
        ),
    )
    .unwrap();
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_mcp-droplet-agent"))
            .arg("--bootstrap")
            .arg(&bootstrap)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--runtime", "simulated"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let (client, verifier) = tofu_client();
    eventually(
        Duration::from_secs(20),
        "binary answering /healthz",
        || async {
            client
                .get(format!("https://127.0.0.1:{port}/healthz"))
                .send()
                .await
                .ok()
                .filter(|r| r.status() == 200)
        },
    )
    .await;
    let stored = std::fs::read(dir.path().join("data/identity.crt.der")).unwrap();
    assert_eq!(
        verifier.observed().unwrap(),
        mcp_droplet_agent::secret::sha256_hex(&stored)
    );

    // SIGTERM (what systemd sends) stops it cleanly.
    let pid = child.0.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = eventually(Duration::from_secs(20), "agent exit on SIGTERM", || {
        let exited = child.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    assert!(status.success(), "{status:?}");
}
