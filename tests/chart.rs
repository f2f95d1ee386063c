//! The Helm chart (charts/mcp-droplet-operator) against the repository: its CRD templates are
//! crds/ byte for byte plus the keep annotation, its RBAC rule files grant exactly the calls of
//! the `run` contract and nothing with a wildcard, its values schema is strict, and the GitOps
//! examples set only values the chart has.
//!
//! Rendering, installing and upgrading with the real Helm library is scripts/lint-charts (the
//! test command runs it); these checks need no Python and no Helm.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

const KEEP_ANNOTATION: &str = "  annotations:\n    helm.sh/resource-policy: keep\n";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/mcp-droplet-operator")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .collect()
}

/// The chart template for one file of crds/: the same bytes with the keep annotation, behind
/// `crds.install`.
fn crd_template(file: &str, crd: &str) -> String {
    assert_eq!(
        crd.matches("\nmetadata:\n").count(),
        1,
        "crds/{file}: one metadata block"
    );
    assert!(
        !crd.contains("{{"),
        "crds/{file} contains {{{{, which Helm would read as a template action"
    );
    let annotated = crd.replacen(
        "\nmetadata:\n",
        &format!("\nmetadata:\n{KEEP_ANNOTATION}"),
        1,
    );
    format!(
        "{{{{- /* crds/{file} plus helm.sh/resource-policy: keep. Generated: MCP_UPDATE_CHART_CRDS=1 cargo test --test chart */}}}}\n\
         {{{{- if .Values.crds.install }}}}\n{annotated}{{{{- end }}}}\n"
    )
}

#[test]
fn chart_crd_templates_are_the_crds_folder_plus_the_keep_annotation() {
    let crds = root().join("crds");
    let templates = chart().join("templates/crds");
    let update = std::env::var("MCP_UPDATE_CHART_CRDS").as_deref() == Ok("1");
    let files = yaml_files(&crds);
    assert_eq!(files.len(), 4, "the four CRDs: {files:?}");
    if update {
        for stale in yaml_files(&templates).difference(&files) {
            std::fs::remove_file(templates.join(stale)).unwrap();
        }
    }
    for file in &files {
        let expected = crd_template(file, &read(&crds.join(file)));
        if update {
            std::fs::write(templates.join(file), &expected).unwrap();
        }
        assert!(
            read(&templates.join(file)) == expected,
            "charts/mcp-droplet-operator/templates/crds/{file} differs from crds/{file}: \
             run MCP_UPDATE_CHART_CRDS=1 cargo test --test chart"
        );
    }
    assert_eq!(
        yaml_files(&templates),
        files,
        "no CRD template without a crds/ file"
    );
}

#[test]
fn the_keep_annotation_is_the_only_difference_when_parsed() {
    // The byte comparison above could hide a YAML slip in the insertion; compare as objects too.
    for file in yaml_files(&root().join("crds")) {
        let template = read(&chart().join("templates/crds").join(&file));
        let body: String = template
            .lines()
            .filter(|line| !line.starts_with("{{"))
            .map(|line| format!("{line}\n"))
            .collect();
        let mut rendered: Value = serde_yaml_ng::from_str(&body).unwrap();
        let annotations = rendered["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations")
            .unwrap();
        assert_eq!(
            annotations,
            serde_json::json!({"helm.sh/resource-policy": "keep"})
        );
        assert_eq!(rendered, yaml(&root().join("crds").join(&file)), "{file}");
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
}

/// (group, resource) -> verbs, from one of the chart's rule files.
fn grants(file: &str) -> BTreeMap<(String, String), BTreeSet<String>> {
    let path = chart().join("files/rbac").join(file);
    let rules: Vec<Rule> = serde_yaml_ng::from_str(&read(&path)).unwrap();
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in rules {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let verbs = out.entry((group.clone(), resource.clone())).or_default();
                for verb in &rule.verbs {
                    assert!(
                        verbs.insert(verb.clone()),
                        "{file}: {verb} on {group}/{resource} granted twice"
                    );
                }
            }
        }
    }
    out
}

fn table(rows: &[(&str, &str, &[&str])]) -> BTreeMap<(String, String), BTreeSet<String>> {
    rows.iter()
        .map(|(group, resource, verbs)| {
            (
                (group.to_string(), resource.to_string()),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

const WATCH: &[&str] = &["list", "watch"];
const WATCH_PATCH: &[&str] = &["list", "watch", "patch"];
const STATUS: &[&str] = &["patch"];
const EMIT: &[&str] = &["create", "patch"];

/// Exactly what the operator's code calls: no `get` of objects it only watches, no finalizer on
/// pools and templates, status written by patch only, events through events.k8s.io only, the
/// Lease read, created and patched. tests/chart_rbac.rs proves each permission is used
/// (decision 0607); this test keeps a change to the files deliberate.
#[test]
fn rbac_rules_are_exactly_what_the_operator_calls() {
    let crud: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];
    assert_eq!(
        grants("namespaced.yaml"),
        table(&[
            ("mcp.agentopia.io", "dropletpools", WATCH),
            ("mcp.agentopia.io", "dropletpools/status", STATUS),
            ("mcp.agentopia.io", "droplets", crud),
            ("mcp.agentopia.io", "droplets/status", STATUS),
            ("mcp.agentopia.io", "mcpdeployments", WATCH_PATCH),
            ("mcp.agentopia.io", "mcpdeployments/status", STATUS),
            ("", "secrets", crud),
            ("events.k8s.io", "events", EMIT),
        ])
    );
    assert_eq!(
        grants("templates.yaml"),
        table(&[
            ("mcp.agentopia.io", "mcptemplates", WATCH),
            ("mcp.agentopia.io", "mcptemplates/status", STATUS),
        ])
    );
    assert_eq!(
        grants("template-events.yaml"),
        table(&[("events.k8s.io", "events", EMIT)])
    );
    assert_eq!(
        grants("leader-election.yaml"),
        table(&[("coordination.k8s.io", "leases", &["get", "create", "patch"])])
    );
}

#[test]
fn rbac_rules_have_no_wildcards_and_no_crd_access() {
    for file in yaml_files(&chart().join("files/rbac")) {
        for ((group, resource), verbs) in grants(&file) {
            assert!(
                group != "*" && resource != "*" && !resource.ends_with("/*"),
                "{file}: wildcard {group}/{resource}"
            );
            assert!(!verbs.contains("*"), "{file}: wildcard verb on {resource}");
            assert_ne!(
                resource, "customresourcedefinitions",
                "{file}: the chart installs the CRDs"
            );
        }
    }
    // Leases are granted by the Role in the release namespace only.
    let rbac = read(&chart().join("templates/rbac.yaml"));
    assert_eq!(rbac.matches("files/rbac/leader-election.yaml").count(), 1);
    for file in ["namespaced.yaml", "templates.yaml", "template-events.yaml"] {
        assert!(!read(&chart().join("files/rbac").join(file)).contains("leases"));
    }
}

/// Every object schema in values.schema.json that lists properties refuses others.
fn assert_strict(schema: &Value, at: &str) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        assert_eq!(
            schema.get("additionalProperties"),
            Some(&Value::Bool(false)),
            "{at} lists properties but accepts unknown ones"
        );
        for (name, property) in properties {
            assert_strict(property, &format!("{at}.{name}"));
        }
    }
    if let Some(definitions) = schema.get("definitions").and_then(Value::as_object) {
        for (name, definition) in definitions {
            assert_strict(definition, &format!("definitions.{name}"));
        }
    }
}

/// Every key path of `values` exists in `defaults` (free-form maps excepted).
fn assert_known_keys(values: &Value, defaults: &Value, at: &str) {
    let Some(values) = values.as_object() else {
        return;
    };
    let defaults = defaults
        .as_object()
        .unwrap_or_else(|| panic!("{at} is not a map in values.yaml"));
    if defaults.is_empty() {
        return; // a free-form map such as podAnnotations
    }
    for (key, value) in values {
        let default = defaults
            .get(key)
            .unwrap_or_else(|| panic!("{at}.{key} is not a value of the chart"));
        assert_known_keys(value, default, &format!("{at}.{key}"));
    }
}

#[test]
fn values_schema_is_strict_and_covers_values_yaml() {
    let schema: Value = serde_json::from_str(&read(&chart().join("values.schema.json"))).unwrap();
    assert_strict(&schema, "values");
    let defaults = yaml(&chart().join("values.yaml"));
    let declared: BTreeSet<&String> = schema["properties"].as_object().unwrap().keys().collect();
    let present: BTreeSet<&String> = defaults.as_object().unwrap().keys().collect();
    assert_eq!(
        declared, present,
        "values.yaml and values.schema.json list the same top-level values"
    );
}

#[test]
fn gitops_examples_set_only_values_the_chart_has() {
    let defaults = yaml(&chart().join("values.yaml"));
    let argocd = yaml(&root().join("examples/gitops/argocd/operator-application.yaml"));
    let flux = yaml(&root().join("examples/gitops/flux/helmrelease.yaml"));
    let argo_values = &argocd["spec"]["source"]["helm"]["valuesObject"];
    let flux_values = &flux["spec"]["values"];
    assert!(argo_values.is_object() && flux_values.is_object());
    assert_known_keys(argo_values, &defaults, "argocd valuesObject");
    assert_known_keys(flux_values, &defaults, "flux values");
    assert_eq!(
        argo_values["digitalocean"]["existingSecret"],
        defaults["digitalocean"]["existingSecret"]
    );
}

#[test]
fn chart_app_version_is_the_operator_version() {
    let chart_yaml = yaml(&chart().join("Chart.yaml"));
    assert_eq!(chart_yaml["appVersion"], env!("CARGO_PKG_VERSION"));
    assert_eq!(chart_yaml["name"], "mcp-droplet-operator");
}
