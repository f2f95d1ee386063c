//! The `plan` command end to end: examples, a burst that needs new droplets, pool limits,
//! the JSON contract, and errors that name the file and the field.

use std::path::{Path, PathBuf};

use mcp_droplet_operator::api::{DropletPool, MCPDeployment, MCPTemplate};
use mcp_droplet_operator::cli::plan::{PlanError, plan_inputs, read_inputs, render_table};
use mcp_droplet_operator::testing::manifest_yaml;
use serde_json::Value;

fn now() -> jiff::Timestamp {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// The namespace and Secret of the burst scenario (core kinds, which the builders do not make).
const BURST_NAMESPACE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: burst}
---
apiVersion: v1
kind: Secret
metadata: {name: token, namespace: burst}
stringData: {token: abc}
"#;

/// Renders objects as a manifest file's text.
fn yaml<K: serde::Serialize>(objects: &[K]) -> String {
    manifest_yaml(objects).unwrap()
}

fn burst_dir(n: usize, limit: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let template = MCPTemplate::test("small")
        .memory("512Mi")
        .cpu("low")
        .build();
    let pool = DropletPool::test("default")
        .namespace("burst")
        .regions(&["sfo3", "nyc3"])
        .sizes(&["s-1vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb"])
        .max_droplets(limit)
        .build();
    let pool_yaml = format!("{BURST_NAMESPACE}{}{}", yaml(&[template]), yaml(&[pool]));
    write(dir.path(), "pool.yaml", &pool_yaml);
    let deployments: Vec<MCPDeployment> = (0..n)
        .map(|i| {
            MCPDeployment::test(&format!("s{i:02}"))
                .namespace("burst")
                .template("small")
                .build()
        })
        .collect();
    write(dir.path(), "deployments.yml", &yaml(&deployments));
    write(dir.path(), "notes.txt", "not yaml: [");
    dir
}

#[test]
fn examples_plan_team_a_onto_its_droplet_and_team_b_onto_new_ones() {
    let inputs = read_inputs(&[examples()]).unwrap();
    let report = plan_inputs(&inputs, now()).unwrap();
    assert!(
        report.unschedulable.is_empty(),
        "{:?}",
        report.unschedulable
    );
    assert_eq!(report.placements.len(), 12);
    let time = report
        .placements
        .iter()
        .find(|p| p.deployment == "team-a/time")
        .unwrap();
    assert_eq!(time.droplet, "d1");
    assert_eq!(time.reason, "pinned to d1");
    // team-a's five fit on d1; team-b has no droplet, so all of its seven need new ones.
    for p in &report.placements {
        let team_a = p.deployment.starts_with("team-a/");
        assert_eq!(team_a, !p.new, "{p:?}");
        if team_a {
            assert_eq!(p.droplet, "d1");
        }
    }
    assert!(
        report
            .new_droplets
            .iter()
            .all(|d| d.pool == "team-b/default")
    );
    assert_eq!(report.droplets, 1 + report.new_droplets.len());
    assert_eq!(report.droplets, report.lower_bound_droplets);
    let new_cost: f64 = report.new_droplets.iter().map(|d| d.monthly_usd).sum();
    assert!((report.monthly_cost_usd - (24.0 + new_cost)).abs() < 1e-6);
    let table = render_table(&report);
    assert!(table.contains("DEPLOYMENT"), "{table}");
    assert!(table.contains("NEW DROPLET"), "{table}");
}

#[test]
fn a_burst_creates_the_fewest_cheapest_droplets_in_the_first_region() {
    let dir = burst_dir(20, 10);
    let report = plan_inputs(&read_inputs(&[dir.path().to_path_buf()]).unwrap(), now()).unwrap();
    assert!(report.unschedulable.is_empty());
    // 20 x 512Mi / 250m onto s-4vcpu-8gb (7.5Gi, 3750m allocatable): cpu allows 15 per droplet.
    assert_eq!(report.new_droplets.len(), 2);
    assert!(report.new_droplets.iter().all(|d| d.region == "sfo3"));
    assert_eq!(report.new_droplets[0].size, "s-4vcpu-8gb");
    assert_eq!(report.lower_bound_droplets, 2);
    assert_eq!(report.packing_efficiency, 1.0);
    assert!(report.placements.iter().all(|p| p.new && p.score > 0.0));
    let total: f64 = report.new_droplets.iter().map(|d| d.monthly_usd).sum();
    assert!((report.monthly_cost_usd - total).abs() < 1e-6);
}

#[test]
fn lowest_cost_packing_is_never_dearer_and_places_everything() {
    let inputs = read_inputs(&[burst_dir(40, 100).path().to_path_buf()]).unwrap();
    let fewest = plan_inputs(&inputs, now()).unwrap();
    let cheapest = mcp_droplet_operator::cli::plan::plan_inputs_with(
        &inputs,
        now(),
        scheduler::PackingObjective::LowestCost,
    )
    .unwrap();
    assert!(cheapest.unschedulable.is_empty());
    assert_eq!(cheapest.placements.len(), fewest.placements.len());
    assert!(
        cheapest.monthly_cost_usd <= fewest.monthly_cost_usd + 1e-9,
        "lowest-cost {} > fewest-droplets {}",
        cheapest.monthly_cost_usd,
        fewest.monthly_cost_usd
    );
    assert!(cheapest.new_droplets.len() >= fewest.new_droplets.len());
}

#[test]
fn a_pool_limit_leaves_deployments_unschedulable_with_the_reason() {
    let dir = burst_dir(20, 1);
    let report = plan_inputs(&read_inputs(&[dir.path().to_path_buf()]).unwrap(), now()).unwrap();
    assert_eq!(report.new_droplets.len(), 1);
    assert_eq!(report.unschedulable.len(), 5);
    assert!(
        report.unschedulable[0]
            .reason
            .contains("pool burst/default is at its limit of 1 droplets"),
        "{}",
        report.unschedulable[0].reason
    );
}

#[test]
fn json_output_has_the_documented_fields() {
    let dir = burst_dir(3, 10);
    let report = plan_inputs(&read_inputs(&[dir.path().to_path_buf()]).unwrap(), now()).unwrap();
    let json: Value = serde_json::to_value(&report).unwrap();
    for key in [
        "placements",
        "newDroplets",
        "droplets",
        "monthlyCostUSD",
        "utilization",
        "lowerBoundDroplets",
        "packingEfficiency",
        "unschedulable",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    let p = &json["placements"][0];
    assert_eq!(p["deployment"], "burst/s00");
    assert!(p["droplet"].is_string() && p["new"].is_boolean() && p["score"].is_number());
    let d = &json["newDroplets"][0];
    for key in ["name", "size", "region", "monthlyUSD"] {
        assert!(d.get(key).is_some(), "newDroplets missing {key}");
    }
    let u = json["utilization"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&u));
}

#[test]
fn a_bad_quantity_names_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.yaml",
        &yaml(&[MCPDeployment::test("x")
            .template("t")
            .memory("lots")
            .build()]),
    );
    let err = read_inputs(&[file]).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, PlanError::Field { .. }), "{text}");
    assert!(text.contains("bad.yaml"), "{text}");
    assert!(text.contains("spec.resources.memory"), "{text}");
}

#[test]
fn broken_yaml_and_missing_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "broken.yaml", "kind: [unclosed\n");
    let text = read_inputs(&[file]).unwrap_err().to_string();
    assert!(
        text.contains("broken.yaml") && text.contains("document 1"),
        "{text}"
    );
    let missing = dir.path().join("nope.yaml");
    let text = read_inputs(&[missing]).unwrap_err().to_string();
    assert!(text.contains("nope.yaml"), "{text}");
}

#[test]
fn an_unknown_size_in_a_pool_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pool.yaml",
        &yaml(&[DropletPool::test("p").sizes(&["s-99vcpu-1tb"]).build()]),
    );
    let inputs = read_inputs(&[dir.path().to_path_buf()]).unwrap();
    let text = plan_inputs(&inputs, now()).unwrap_err().to_string();
    assert!(
        text.contains("pool.yaml") && text.contains("spec.sizes[0]"),
        "{text}"
    );
}

#[test]
fn a_decision_converts_into_the_deployment_status_placement() {
    use mcp_droplet_operator::fleet::placement_status;
    use scheduler::fixtures::{self, droplet, request};
    use scheduler::{Decision, PendingDeployment, Snapshot, choose_droplet};
    let snap = Snapshot::new(
        vec![droplet("a", "s-2vcpu-4gb"), droplet("b", "s-2vcpu-4gb")],
        vec![fixtures::pool()],
        fixtures::test_sizes(),
        fixtures::test_regions(),
    )
    .unwrap();
    let dep = PendingDeployment::new("team-a/x", request(512, 100), fixtures::POOL);
    let Decision::Place(p) = choose_droplet(&snap, snap.reported_usage(), &dep) else {
        panic!("expected a placement");
    };
    let status = placement_status(&p, "nyc3");
    assert_eq!(status.droplet.as_deref(), Some("a"));
    assert_eq!(status.region.as_deref(), Some("nyc3"));
    assert_eq!(status.alternatives.len(), 1);
    assert_eq!(status.alternatives[0].droplet, "b");
    let json = serde_json::to_value(&status).unwrap();
    for key in ["resources", "load", "latency", "cost", "health"] {
        assert!(json["breakdown"][key].is_number(), "{key}");
    }
    assert!(json["reason"].as_str().unwrap().contains("highest score"));
}

#[test]
fn every_invalid_example_is_rejected_naming_its_file() {
    let dir = examples().join("invalid");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let err = read_inputs(std::slice::from_ref(&file))
            .err()
            .unwrap_or_else(|| panic!("{name} was accepted"));
        assert!(matches!(err, PlanError::Field { .. }), "{name}: {err}");
        assert!(err.to_string().contains(&name), "{err}");
    }
}

#[test]
fn a_namespace_without_pools_gets_the_default_pool_and_a_missing_named_pool_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let all = format!(
        "{}{}{}",
        yaml(&[MCPTemplate::test("small")
            .memory("512Mi")
            .cpu("low")
            .build()]),
        yaml(&[DropletPool::test("default")
            .namespace("haspools")
            .regions(&["nyc3"])
            .sizes(&[])
            .build()]),
        yaml(&[
            MCPDeployment::test("lone")
                .namespace("nopools")
                .template("small")
                .build(),
            MCPDeployment::test("lost")
                .namespace("haspools")
                .template("small")
                .pool("gpu")
                .build(),
        ]),
    );
    write(dir.path(), "all.yaml", &all);
    let report = plan_inputs(&read_inputs(&[dir.path().to_path_buf()]).unwrap(), now()).unwrap();
    assert_eq!(report.placements.len(), 1);
    assert_eq!(report.placements[0].deployment, "nopools/lone");
    assert_eq!(report.new_droplets[0].region, "nyc3");
    assert_eq!(report.unschedulable.len(), 1);
    assert!(
        report.unschedulable[0]
            .reason
            .contains("pool haspools/gpu does not exist"),
        "{}",
        report.unschedulable[0].reason
    );
}

#[test]
fn plan_warns_on_stderr_that_allowed_hosts_are_not_enforced() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-droplet-operator"))
        .args(["plan", "-f"])
        .arg(examples())
        .output()
        .expect("run plan");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("05-template-github.yaml: MCPTemplate github: spec.network.allowHosts (api.github.com) is not enforced yet"),
        "stderr: {stderr}"
    );
    assert_eq!(
        stderr.matches("warning:").count(),
        1,
        "only the github example sets allowHosts: {stderr}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("warning:"), "warnings stay off stdout");
}
