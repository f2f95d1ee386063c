//! The GitOps examples (examples/gitops/): Argo CD health checks in Lua, run by a real Lua 5.1
//! interpreter (Argo CD runs them with gopher-lua, a Lua 5.1) against sample objects of the four
//! kinds; the argocd-cm snippet embeds exactly those scripts; the Argo CD and Flux manifests are
//! well-formed and point at paths and objects that exist; the deployments folder and the
//! ConfigMap are stored by kube-sim.
//!
//! The Lua tests need `lua5.1` (scripts/prereqs.d/gitops.sh installs it). Without it they print
//! SKIPPED and pass, unless MCP_REQUIRE_TOOLS=1 (CI), where they fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, ValidationDirective};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, ResourceExt};
use mcp_droplet_operator::api::{self, validation::validate_manifest};
use serde::Deserialize;
use serde_json::{Value, json};

const KINDS: [&str; 4] = ["MCPTemplate", "DropletPool", "Droplet", "MCPDeployment"];
const MANAGER: &str = "mcp-gitops-test";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn gitops() -> PathBuf {
    root().join("examples/gitops")
}

fn customization(kind: &str) -> PathBuf {
    gitops()
        .join("argocd/resource_customizations/mcp.agentopia.io")
        .join(kind)
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            yaml_files_under(&entry, out);
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(entry);
        }
    }
}

// ---- Lua health checks ----

/// The Lua interpreter, or why there is none (skip, or fail under MCP_REQUIRE_TOOLS=1).
fn lua() -> Option<&'static str> {
    for candidate in ["lua5.1", "lua"] {
        let found = Command::new(candidate)
            .arg("-v")
            .output()
            .is_ok_and(|o| o.status.success() || !o.stderr.is_empty() || !o.stdout.is_empty());
        if found {
            return Some(candidate);
        }
    }
    let message = "lua5.1 is not installed (scripts/prereqs.d/gitops.sh installs it)";
    if std::env::var("MCP_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("MCP_REQUIRE_TOOLS=1 but {message}");
    }
    println!("SKIPPED: {message}");
    None
}

/// A JSON value as a Lua table constructor, the shape Argo CD hands the script as `obj`.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let inner: Vec<_> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<_> = map
                .iter()
                .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs `health.lua` of `kind` with `obj` set to `object`; returns (status, message).
fn run_health(lua: &str, kind: &str, object: &Value) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.lua");
    let health = customization(kind).join("health.lua");
    std::fs::write(
        &script,
        format!(
            "obj = {}\nlocal hs = dofile({})\nio.write(tostring(hs.status), \"\\n\", tostring(hs.message))\n",
            lua_literal(object),
            lua_string(health.to_str().unwrap())
        ),
    )
    .unwrap();
    let out = Command::new(lua).arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{kind}: lua failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

/// The cases of Argo CD's `health_test.yaml` layout: (expected status, message, sample object).
fn cases(kind: &str) -> Vec<(String, String, Value)> {
    let dir = customization(kind);
    let tests = yaml_docs(&dir.join("health_test.yaml")).remove(0);
    tests["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let input = dir.join(t["inputPath"].as_str().unwrap());
            (
                t["healthStatus"]["status"].as_str().unwrap().to_string(),
                t["healthStatus"]["message"].as_str().unwrap().to_string(),
                yaml_docs(&input).remove(0),
            )
        })
        .collect()
}

#[test]
fn health_checks_give_the_expected_status_and_message() {
    let Some(lua) = lua() else { return };
    let mut ran = 0;
    for kind in KINDS {
        for (status, message, object) in cases(kind) {
            assert_eq!(object["kind"], kind);
            let got = run_health(lua, kind, &object);
            assert_eq!(got, (status, message), "{kind} {}", object["metadata"]);
            ran += 1;
        }
    }
    assert!(ran >= 16, "only {ran} cases");
}

#[test]
fn a_changed_sample_changes_the_verdict() {
    // The scripts read the status: flipping Stalled on a healthy deployment makes it Degraded,
    // and bumping the generation makes a Ready one Progressing.
    let Some(lua) = lua() else { return };
    let (_, _, mut healthy) = cases("MCPDeployment")
        .into_iter()
        .find(|(s, _, _)| s == "Healthy")
        .unwrap();
    healthy["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "Stalled", "status": "True", "reason": "TemplateRejected", "message": "template github is Rejected"}));
    healthy["status"]["conditions"]
        .as_array_mut()
        .unwrap()
        .retain(|c| !(c["type"] == "Stalled" && c["status"] == "False"));
    assert_eq!(
        run_health(lua, "MCPDeployment", &healthy),
        (
            "Degraded".into(),
            "TemplateRejected: template github is Rejected".into()
        )
    );
    healthy["metadata"]["generation"] = json!(7);
    assert_eq!(run_health(lua, "MCPDeployment", &healthy).0, "Progressing");
}

#[test]
fn every_kind_has_healthy_progressing_and_degraded_samples() {
    for kind in KINDS {
        let statuses: BTreeSet<String> = cases(kind).into_iter().map(|(s, _, _)| s).collect();
        assert_eq!(
            statuses.into_iter().collect::<Vec<_>>(),
            vec!["Degraded", "Healthy", "Progressing"],
            "{kind}"
        );
        for (_, message, _) in cases(kind) {
            assert!(
                !message.is_empty(),
                "{kind}: every verdict carries a message"
            );
        }
    }
}

#[test]
fn samples_use_the_real_status_shapes() {
    // Each sample object, status included, is valid against the generated CRD schema, so the
    // scripts are tested against fields the operator can actually write.
    for kind in KINDS {
        for (_, _, object) in cases(kind) {
            assert_eq!(
                validate_manifest(&object, None),
                Ok(true),
                "{kind} sample {}",
                object["metadata"]
            );
        }
    }
}

/// argocd-cm.yaml as it must read: a header and one key per kind with its health.lua.
fn render_argocd_cm() -> String {
    let mut out = String::from(
        "# Merge into Argo CD's argocd-cm ConfigMap (namespace argocd): health checks for the four kinds of\n\
         # mcp-droplet-operator. Generated from resource_customizations/mcp.agentopia.io/<Kind>/health.lua;\n\
         # tests/gitops.rs fails when the two drift apart.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n  namespace: argocd\n  labels:\n\
         \x20   app.kubernetes.io/name: argocd-cm\n    app.kubernetes.io/part-of: argocd\ndata:\n",
    );
    for kind in KINDS {
        out.push_str(&format!(
            "  resource.customizations.health.mcp.agentopia.io_{kind}: |\n"
        ));
        let script = std::fs::read_to_string(customization(kind).join("health.lua")).unwrap();
        for line in script.lines() {
            if !line.is_empty() {
                out.push_str("    ");
                out.push_str(line);
            }
            out.push('\n');
        }
    }
    out
}

#[test]
fn argocd_cm_embeds_the_health_checks_verbatim() {
    let path = gitops().join("argocd/argocd-cm.yaml");
    if std::env::var("MCP_UPDATE_ARGOCD_CM").as_deref() == Ok("1") {
        std::fs::write(&path, render_argocd_cm()).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        render_argocd_cm(),
        "argocd-cm.yaml is stale: run MCP_UPDATE_ARGOCD_CM=1 cargo test --test gitops argocd_cm"
    );
    // And as YAML, each key holds exactly its script.
    let cm = yaml_docs(&path).remove(0);
    assert_eq!(
        (cm["kind"].as_str(), cm["metadata"]["name"].as_str()),
        (Some("ConfigMap"), Some("argocd-cm"))
    );
    let data = cm["data"].as_object().unwrap();
    assert_eq!(data.len(), KINDS.len());
    for kind in KINDS {
        let key = format!("resource.customizations.health.mcp.agentopia.io_{kind}");
        let embedded = data[&key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} missing"));
        let file = std::fs::read_to_string(customization(kind).join("health.lua")).unwrap();
        assert_eq!(embedded, file, "{key} differs from {kind}/health.lua");
    }
}

// ---- manifests ----

/// Every manifest under examples/gitops except Argo CD's test descriptions.
fn manifests() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files_under(&gitops(), &mut files);
    files
        .into_iter()
        .filter(|f| f.file_name().is_some_and(|n| n != "health_test.yaml"))
        .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

#[test]
fn manifests_name_api_version_kind_and_name() {
    let mut kinds = BTreeSet::new();
    for (file, doc) in manifests() {
        let api_version = doc["apiVersion"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no apiVersion", file.display()));
        let kind = doc["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no kind", file.display()));
        // kustomization.yaml files are build instructions, not objects: they have no name.
        if api_version != "kustomize.config.k8s.io/v1beta1" {
            assert!(
                doc["metadata"]["name"].is_string(),
                "{}: no metadata.name",
                file.display()
            );
        }
        kinds.insert(format!("{api_version}/{kind}"));
    }
    for expected in [
        "argoproj.io/v1alpha1/Application",
        "v1/ConfigMap",
        "source.toolkit.fluxcd.io/v1/GitRepository",
        "helm.toolkit.fluxcd.io/v2/HelmRelease",
        "kustomize.toolkit.fluxcd.io/v1/Kustomization",
        "mcp.agentopia.io/v1alpha1/MCPDeployment",
    ] {
        assert!(
            kinds.contains(expected),
            "no {expected} in examples/gitops: {kinds:?}"
        );
    }
}

fn by_kind(kind: &str) -> Vec<(PathBuf, Value)> {
    manifests()
        .into_iter()
        .filter(|(_, d)| d["kind"] == kind)
        .collect()
}

/// Objects a folder deploys, as (kind, namespace, name), read through its kustomization.yaml.
fn deployed_objects(folder: &Path) -> BTreeSet<(String, String, String)> {
    let kustomization = yaml_docs(&folder.join("kustomization.yaml")).remove(0);
    kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| yaml_docs(&folder.join(r.as_str().unwrap())))
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn argo_applications_point_at_real_paths() {
    let apps = by_kind("Application");
    assert!(apps.len() >= 2);
    let mut chart = false;
    for (file, app) in apps {
        let path = app["spec"]["source"]["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{}", file.display()));
        assert!(
            app["spec"]["destination"]["server"].is_string(),
            "{}",
            file.display()
        );
        if path == "charts/mcp-droplet-operator" {
            // The chart is written by the packaging work; the Application refers to it by path.
            chart = true;
            continue;
        }
        assert!(
            root().join(path).is_dir(),
            "{}: {path} does not exist",
            file.display()
        );
    }
    assert!(chart, "an Application installs the operator's chart");
}

#[test]
fn flux_objects_refer_to_their_source_and_existing_objects() {
    let sources: BTreeSet<String> = by_kind("GitRepository")
        .into_iter()
        .map(|(_, d)| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let releases = by_kind("HelmRelease");
    assert_eq!(releases.len(), 1);
    let chart = &releases[0].1["spec"]["chart"]["spec"];
    assert_eq!(chart["chart"], "./charts/mcp-droplet-operator");
    assert!(sources.contains(chart["sourceRef"]["name"].as_str().unwrap()));

    let flux: Vec<_> = by_kind("Kustomization")
        .into_iter()
        .filter(|(_, d)| d["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1")
        .collect();
    let names: BTreeSet<String> = flux
        .iter()
        .map(|(_, d)| d["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let mut checked = 0;
    for (file, k) in &flux {
        let spec = &k["spec"];
        assert!(
            sources.contains(spec["sourceRef"]["name"].as_str().unwrap()),
            "{}",
            file.display()
        );
        let path = root().join(spec["path"].as_str().unwrap().trim_start_matches("./"));
        assert!(
            path.is_dir(),
            "{}: {} does not exist",
            file.display(),
            path.display()
        );
        for dep in spec["dependsOn"].as_array().into_iter().flatten() {
            assert!(
                names.contains(dep["name"].as_str().unwrap()),
                "{}",
                file.display()
            );
        }
        let Some(checks) = spec["healthChecks"].as_array() else {
            continue;
        };
        let objects = deployed_objects(&path);
        for check in checks {
            let key = (
                check["kind"].as_str().unwrap().to_string(),
                check["namespace"].as_str().unwrap_or("").to_string(),
                check["name"].as_str().unwrap().to_string(),
            );
            assert!(
                objects.contains(&key),
                "{}: health check of {key:?}, which the folder does not deploy",
                file.display()
            );
            assert_eq!(check["apiVersion"], api::API_VERSION);
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "the deployments Kustomization checks its deployments"
    );
}

#[test]
fn deployments_folder_is_valid_and_uses_catalogue_templates() {
    let folder = gitops().join("deployments");
    let catalogue: BTreeSet<String> = std::fs::read_dir(root().join("examples/catalog"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    let mut deployments = 0;
    for (kind, namespace, name) in deployed_objects(&folder) {
        if kind == "MCPDeployment" {
            deployments += 1;
            assert_eq!(namespace, "team-a", "{name}");
        }
    }
    assert!(deployments >= 3);
    let mut files = Vec::new();
    yaml_files_under(&folder, &mut files);
    for file in files {
        for doc in yaml_docs(&file) {
            if let Err(errors) = validate_manifest(&doc, None) {
                panic!("{}: {errors:?}", file.display());
            }
            if doc["kind"] == "MCPDeployment" {
                let template = doc["spec"]["templateRef"]["name"].as_str().unwrap();
                assert!(
                    catalogue.contains(template),
                    "{}: no catalogue template {template}",
                    file.display()
                );
            }
        }
    }
}

// ---- kube-sim ----

async fn apply(client: &Client, doc: &Value) {
    let params = PatchParams {
        field_manager: Some(MANAGER.into()),
        field_validation: Some(ValidationDirective::Strict),
        force: true,
        ..Default::default()
    };
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let kind = doc["kind"].as_str().unwrap();
    match kind {
        "Namespace" => {
            Api::<Namespace>::all(client.clone())
                .patch(&name, &params, &Patch::Apply(doc))
                .await
                .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
        }
        "ConfigMap" => {
            let ns = doc["metadata"]["namespace"].as_str().unwrap();
            Api::<ConfigMap>::namespaced(client.clone(), ns)
                .patch(&name, &params, &Patch::Apply(doc))
                .await
                .unwrap_or_else(|e| panic!("configmap {name}: {e}"));
        }
        _ => {
            let crd = api::all_crds()
                .into_iter()
                .find(|c| c.spec.names.kind == kind)
                .unwrap();
            let gvk = GroupVersionKind::gvk(api::GROUP, api::VERSION, kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
            let target: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            target
                .patch(&name, &params, &Patch::Apply(doc))
                .await
                .unwrap_or_else(|e| panic!("{kind} {name}: {e}"));
        }
    }
}

#[tokio::test]
async fn deployments_folder_and_argocd_cm_apply_to_kube_sim() {
    let sim = kube_sim::KubeSim::start(kube_sim::Config::default())
        .await
        .expect("start kube-sim");
    let client = mcp_droplet_operator::cli::sim::client_for(&sim).expect("client");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in api::all_crds() {
        crds.patch(
            &crd.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap();
    }
    let deployments_gvk = GroupVersionKind::gvk(api::GROUP, api::VERSION, "MCPDeployment");
    let deployments_resource =
        ApiResource::from_gvk_with_plural(&deployments_gvk, "mcpdeployments");
    let served: Api<DynamicObject> = Api::all_with(client.clone(), &deployments_resource);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while served.list(&Default::default()).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "CRDs not served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let folder = gitops().join("deployments");
    let kustomization = yaml_docs(&folder.join("kustomization.yaml")).remove(0);
    for resource in kustomization["resources"].as_array().unwrap() {
        for doc in yaml_docs(&folder.join(resource.as_str().unwrap())) {
            apply(&client, &doc).await;
        }
    }
    let stored = served.list(&Default::default()).await.unwrap();
    let names: BTreeSet<String> = stored.items.iter().map(|d| d.name_any()).collect();
    assert_eq!(names, ["github", "memory", "time"].map(String::from).into());

    apply(
        &client,
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "argocd"}}),
    )
    .await;
    let cm_doc = yaml_docs(&gitops().join("argocd/argocd-cm.yaml")).remove(0);
    apply(&client, &cm_doc).await;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "argocd")
        .get("argocd-cm")
        .await
        .unwrap();
    let data: BTreeMap<String, String> = cm.data.unwrap_or_default();
    for kind in KINDS {
        let file = std::fs::read_to_string(customization(kind).join("health.lua")).unwrap();
        assert_eq!(
            data.get(&format!(
                "resource.customizations.health.mcp.agentopia.io_{kind}"
            )),
            Some(&file)
        );
    }
    sim.shutdown().await;
}
