//! `mcp-droplet-operator demo` end to end: the world starts, the examples are applied, the
//! kubeconfig is printed first, and the run ends with both tables and an exit code that says
//! whether every deployment is Ready.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use mcp_droplet_operator::api::{Droplet, DropletPool, MCPDeployment, MCPTemplate};
use mcp_droplet_operator::cli::demo::faults::FaultPreset;
use mcp_droplet_operator::cli::demo::{apply_all, manifests, world_config};
use mcp_droplet_operator::sim::World;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn count<K>(client: &kube::Client) -> usize
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_starts_and_takes_every_example_the_demo_applies() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let config = world_config(
        30.0,
        &FaultPreset::None.plan(),
        &kubeconfig,
        &dir.path().join("agents"),
    );
    let world = World::start(config).await.unwrap();
    let files = manifests::example_files(&root().join("examples")).unwrap();
    let chosen = manifests::choose(manifests::read_documents(&files).unwrap(), None).unwrap();
    apply_all(world.kube().unwrap(), &chosen.objects).unwrap();

    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(text.contains(&world.kube_url().unwrap()), "{text}");
    let client = world.kube_client().unwrap();
    assert_eq!(count::<MCPDeployment>(&client).await, 12);
    assert_eq!(count::<DropletPool>(&client).await, 2);
    // d1 is applied; legacy (adopting a droplet the simulated cloud does not have) is not.
    let droplets = Api::<Droplet>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: Vec<_> = droplets
        .iter()
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    assert_eq!(names, ["d1"]);
    let templates = Api::<MCPTemplate>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(templates.items.len(), 4);
    let namespaces = Api::<Namespace>::all(client.clone());
    for ns in ["team-a", "team-b"] {
        namespaces.get(ns).await.unwrap();
    }
    assert!(world.digitalocean_url().is_some());
    world.shutdown().await;
}

#[test]
fn the_binary_prints_the_kubeconfig_first_and_ends_with_both_tables() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("demo-kubeconfig");
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .current_dir(root())
        .args([
            "demo",
            "--deployments",
            "2",
            "--timeout",
            "2s",
            "--kubeconfig",
        ])
        .arg(&kubeconfig)
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("kubeconfig: {}", kubeconfig.display()),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "kubectl --kubeconfig {} get mcp -A -w",
            kubeconfig.display()
        )),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(&kubeconfig)
            .unwrap()
            .contains("http://127.0.0.1:")
    );
    assert!(stdout.contains("2 deployments from examples"), "{stdout}");
    assert!(stdout.contains("skipped Droplet team-a/legacy"), "{stdout}");
    // Not a terminal: plain lines, one per deployment at least.
    assert!(stdout.contains("team-a/github"), "{stdout}");
    let table = stdout
        .lines()
        .find(|l| l.starts_with("DEPLOYMENT"))
        .unwrap_or_else(|| panic!("no deployments table in {stdout}"));
    for header in ["DROPLET", "SCORE", "ENDPOINT", "TOOLS", "TIME TO READY"] {
        assert!(table.contains(header), "{table}");
    }
    let fleet = stdout
        .lines()
        .find(|l| l.starts_with("DROPLET"))
        .unwrap_or_else(|| panic!("no fleet table in {stdout}"));
    for header in ["SIZE", "REGION", "UTILIZATION", "MONTHLY USD"] {
        assert!(fleet.contains(header), "{fleet}");
    }
    assert!(stdout.contains("TOTAL: "), "{stdout}");
    // The exit code agrees with the outcome, and a failure names each deployment's reason.
    if out.status.success() {
        assert!(stdout.contains("Every deployment is Ready."), "{stdout}");
    } else {
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("are not Ready:"), "{stderr}");
        // Each deployment is either Ready in the table or named with its reason.
        for key in ["team-a/github", "team-a/time"] {
            let ready = stdout
                .lines()
                .any(|l| l.starts_with(&format!("{key} ")) && l.contains(" Ready "));
            assert!(
                ready || stderr.contains(&format!("{key}: ")),
                "{key} is neither Ready nor explained:\n{stdout}\n{stderr}"
            );
        }
    }
}

#[test]
fn a_missing_examples_folder_is_an_error_that_says_where_to_run_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .current_dir(std::env::temp_dir())
        .args(["demo", "--examples", "no-such-folder", "--timeout", "1s"])
        .output()
        .expect("run demo");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-folder"), "{stderr}");
    assert!(stderr.contains("--examples DIR"), "{stderr}");
}

/// The README's first command: every example deployment Ready, both tables filled, exit code 0.
#[test]
fn the_demo_makes_every_example_deployment_ready() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .current_dir(root())
        .args(["demo", "--timeout", "4m"])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Every deployment is Ready."), "{stdout}");
    assert!(stdout.contains("12 of 12 deployments Ready"), "{stdout}");
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("DEPLOYMENT"))
        .skip(1)
        .take(12)
        .collect();
    assert_eq!(rows.len(), 12, "{stdout}");
    for row in &rows {
        assert!(row.contains(" Ready "), "{row}");
        assert!(row.contains("https://"), "no endpoint in {row}");
    }
    // team-a runs on its droplet; team-b's deployments needed new droplets in its pool.
    assert!(
        rows.iter()
            .filter(|r| r.starts_with("team-a/"))
            .all(|r| r.contains(" d1 "))
    );
    let fleet: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("DROPLET"))
        .skip(1)
        .collect();
    assert!(
        fleet.iter().any(|l| l.starts_with("team-a/d1 ")),
        "{stdout}"
    );
    assert!(fleet.iter().any(|l| l.starts_with("team-b/")), "{stdout}");
    assert!(fleet.iter().any(|l| l.starts_with("TOTAL: ")), "{stdout}");
}

/// `--faults heavy`: transient 500s and 429s, slow boots and a droplet lost after it booted;
/// the operator still brings every example deployment to Ready without help.
#[test]
fn under_heavy_faults_every_example_deployment_still_becomes_ready() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .current_dir(root())
        .args(["demo", "--faults", "heavy", "--timeout", "4m"])
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("12 of 12 deployments Ready"), "{stdout}");
    assert!(
        stdout.contains("fault: DigitalOcean droplet"),
        "no droplet was lost: {stdout}"
    );
}
