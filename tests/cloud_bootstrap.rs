//! The generated cloud-init is validated with `cloud-init schema` and its shell parts with
//! `shellcheck`. Without those tools the checks are skipped with a message, unless
//! `MCP_REQUIRE_TOOLS=1` (then a missing tool fails the test).

use std::path::PathBuf;
use std::process::Command;

use mcp_droplet_operator::cloud::bootstrap::{
    AgentSource, BootstrapConfig, embedded_scripts, new_enrolment_token, render_user_data,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("MCP_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{name} is required (MCP_REQUIRE_TOOLS=1) but not installed; see scripts/prereqs.d/cloud.sh"
        );
        println!("skipped: {name} is not installed (scripts/prereqs.d/cloud.sh installs it)");
    }
    found
}

fn configs() -> Vec<BootstrapConfig> {
    let release = BootstrapConfig {
        agent: AgentSource::ReleaseUrl {
            url: "https://releases.example.invalid/mcp-droplet-agent-x86_64".to_owned(),
            sha256: Some("ab".repeat(32)),
        },
        ..BootstrapConfig::from_release_url("unused")
    };
    let image = BootstrapConfig {
        agent: AgentSource::Image {
            image: "ghcr.io/agentopia/mcp-droplet-agent:0.1.0".to_owned(),
        },
        operator_ca: Some(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
        ),
        ..BootstrapConfig::from_release_url("unused")
    };
    vec![release, image]
}

fn user_data(config: &BootstrapConfig) -> String {
    let token = new_enrolment_token(&mut StdRng::seed_from_u64(9));
    render_user_data("mcp-team-a-github-0b5c9d1e", &token, config).expect("render")
}

#[test]
fn cloud_init_accepts_the_generated_user_data() {
    let Some(cloud_init) = tool("cloud-init") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, config) in configs().iter().enumerate() {
        let path = dir.path().join(format!("user-data-{i}.yaml"));
        std::fs::write(&path, user_data(config)).expect("write");
        let output = Command::new(&cloud_init)
            .args(["schema", "--config-file"])
            .arg(&path)
            .output()
            .expect("run cloud-init");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "cloud-init schema rejected config {i}: {text}"
        );
        assert!(text.contains("Valid"), "cloud-init schema output: {text}");
    }
}

#[test]
fn cloud_init_schema_check_rejects_a_broken_config() {
    let Some(cloud_init) = tool("cloud-init") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.yaml");
    std::fs::write(&path, "#cloud-config\nwrite_files: 7\nruncmd: {a: 1}\n").expect("write");
    let status = Command::new(&cloud_init)
        .args(["schema", "--config-file"])
        .arg(&path)
        .output()
        .expect("run cloud-init")
        .status;
    assert!(!status.success(), "the schema check must be able to fail");
}

#[test]
fn shellcheck_accepts_the_embedded_scripts() {
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for config in configs() {
        for (i, script) in embedded_scripts(&config)
            .expect("scripts")
            .iter()
            .enumerate()
        {
            let path = dir.path().join(format!("script-{i}.sh"));
            std::fs::write(&path, script).expect("write");
            let output = Command::new(&shellcheck)
                .arg(&path)
                .output()
                .expect("run shellcheck");
            assert!(
                output.status.success(),
                "shellcheck found problems:\n{}\n{script}",
                String::from_utf8_lossy(&output.stdout)
            );
        }
    }
}

#[test]
fn shellcheck_check_can_fail() {
    let Some(shellcheck) = tool("shellcheck") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.sh");
    std::fs::write(&path, "#!/bin/sh\nrm -rf $1/*\n").expect("write");
    let status = Command::new(&shellcheck)
        .arg(&path)
        .output()
        .expect("run shellcheck")
        .status;
    assert!(!status.success());
}

#[test]
fn user_data_has_no_operator_secret_and_blocks_metadata() {
    for config in configs() {
        let data = user_data(&config);
        assert!(data.len() < 64 * 1024);
        assert!(data.contains("169.254.169.254"));
        assert!(data.contains("DOCKER-USER"));
        assert!(
            !data.to_lowercase().contains("dop_v1"),
            "no DigitalOcean token"
        );
    }
}
