//! The generated CRDs: checked-in files match the types, and every schema is structural.

use mcp_droplet_operator::api;
use serde_json::Value;

fn repo_path(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn checked_in_crds_match_the_types() {
    let mut stale = Vec::new();
    for crd in api::all_crds() {
        let file = repo_path("crds").join(api::crd_file_name(&crd));
        let expected = api::crds_to_yaml(std::slice::from_ref(&crd)).unwrap();
        let actual = std::fs::read_to_string(&file).unwrap_or_default();
        if actual != expected {
            stale.push(file.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "crds/ differs from the types in src/api/ ({stale:?}); regenerate with: cargo run -- crds --out-dir crds"
    );
    let files = std::fs::read_dir(repo_path("crds")).unwrap().count();
    assert_eq!(
        files,
        api::all_crds().len(),
        "crds/ holds a file that no type generates"
    );
}

#[test]
fn crds_command_output_is_the_concatenated_files() {
    let all = api::crds_to_yaml(&api::all_crds()).unwrap();
    assert_eq!(all.matches("kind: CustomResourceDefinition").count(), 4);
    for kind in ["MCPTemplate", "DropletPool", "Droplet", "MCPDeployment"] {
        assert!(all.contains(&format!("kind: {kind}\n")), "{kind} missing");
    }
}

#[test]
fn names_scope_and_category() {
    let crds = api::all_crds();
    let by_kind = |k: &str| crds.iter().find(|c| c.spec.names.kind == k).unwrap();
    assert_eq!(by_kind("MCPTemplate").spec.scope, "Cluster");
    for (kind, short) in [
        ("MCPTemplate", "mcpt"),
        ("DropletPool", "dpool"),
        ("Droplet", "dr"),
        ("MCPDeployment", "mcpd"),
    ] {
        let crd = by_kind(kind);
        assert_eq!(crd.spec.group, api::GROUP);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        assert_eq!(
            crd.spec.names.categories.as_deref(),
            Some(&["mcp".to_string()][..])
        );
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, api::VERSION);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind} needs status"
        );
        if kind != "MCPTemplate" {
            assert_eq!(crd.spec.scope, "Namespaced");
        }
    }
    let columns: Vec<_> = by_kind("MCPDeployment").spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    for c in ["Phase", "Droplet", "Region", "Endpoint", "Age"] {
        assert!(
            columns.contains(&c),
            "MCPDeployment column {c} missing: {columns:?}"
        );
    }
}

/// Structural-schema rules of the API server (apiextensions validation), the ones that bite:
/// every node has a type (unless int-or-string or preserve-unknown-fields), no `$ref`, no
/// type/default/nullable/description inside allOf/anyOf/oneOf/not, and `properties` never together
/// with a non-false `additionalProperties`.
fn structural_violations(node: &Value, path: &str, in_junctor: bool, out: &mut Vec<String>) {
    let Value::Object(map) = node else {
        out.push(format!("{path}: schema node is not an object"));
        return;
    };
    if map.contains_key("$ref") {
        out.push(format!("{path}: $ref is not allowed"));
    }
    let int_or_string = map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if in_junctor {
        for key in [
            "type",
            "default",
            "nullable",
            "description",
            "additionalProperties",
        ] {
            if map.contains_key(key) {
                out.push(format!(
                    "{path}: {key} is not allowed inside allOf/anyOf/oneOf/not"
                ));
            }
        }
    } else if !map.contains_key("type") && !int_or_string && !preserve {
        out.push(format!("{path}: missing type"));
    }
    if map.contains_key("properties")
        && map
            .get("additionalProperties")
            .is_some_and(|v| v != &Value::Bool(false))
    {
        out.push(format!("{path}: properties with additionalProperties"));
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (k, v) in props {
            structural_violations(v, &format!("{path}.{k}"), in_junctor, out);
        }
    }
    if let Some(items) = map.get("items") {
        structural_violations(items, &format!("{path}[]"), in_junctor, out);
    }
    if let Some(ap @ Value::Object(_)) = map.get("additionalProperties") {
        structural_violations(ap, &format!("{path}{{}}"), in_junctor, out);
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = map.get(junctor) {
            for (i, b) in branches.iter().enumerate() {
                structural_violations(b, &format!("{path}.{junctor}[{i}]"), true, out);
            }
        }
    }
    if let Some(not) = map.get("not") {
        structural_violations(not, &format!("{path}.not"), true, out);
    }
    if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
        for rule in rules {
            let message = rule.get("message").and_then(Value::as_str).unwrap_or("");
            if message.is_empty() {
                out.push(format!("{path}: CEL rule {} has no message", rule["rule"]));
            }
        }
    }
}

#[test]
fn every_schema_is_structural() {
    for crd in api::all_crds() {
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        let mut violations = Vec::new();
        structural_violations(&schema, &crd.spec.names.kind, false, &mut violations);
        assert!(
            violations.is_empty(),
            "non-structural schema:\n{}",
            violations.join("\n")
        );
    }
}

#[test]
fn the_lint_catches_a_free_form_value() {
    // A serde_json::Value field yields `{}`: the lint must flag it, or it proves nothing.
    let bad = serde_json::json!({"type": "object", "properties": {"anything": {}}});
    let mut violations = Vec::new();
    structural_violations(&bad, "X", false, &mut violations);
    assert_eq!(violations, vec!["X.anything: missing type".to_string()]);
}

#[test]
fn docs_reference_is_current() {
    let expected = mcp_droplet_operator::api::reference::markdown(&api::all_crds());
    let actual = std::fs::read_to_string(repo_path("docs/crds.md")).unwrap_or_default();
    assert!(
        actual == expected,
        "docs/crds.md is stale; regenerate with: cargo run -- crds --format markdown --out-dir docs"
    );
}

fn schema_of(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .and_then(|s| s.open_api_v3_schema.as_ref())
            .expect("every CRD has a schema"),
    )
    .expect("schema as JSON")
}

fn unbounded_nodes(node: &Value, path: &str, out: &mut Vec<String>) {
    let ty = node.get("type").and_then(Value::as_str);
    let has = |k: &str| node.get(k).is_some();
    let timed = matches!(
        node.get("format").and_then(Value::as_str),
        Some("date-time" | "date" | "duration")
    );
    if ty == Some("string") && !has("maxLength") && !has("enum") && !timed {
        out.push(format!("{path}: string without maxLength"));
    }
    if ty == Some("array") && !has("maxItems") {
        out.push(format!("{path}: list without maxItems"));
    }
    if node
        .get("additionalProperties")
        .is_some_and(Value::is_object)
        && !has("maxProperties")
    {
        out.push(format!("{path}: map without maxProperties"));
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            unbounded_nodes(v, &format!("{path}.{k}"), out);
        }
    }
    if let Some(items) = node.get("items") {
        unbounded_nodes(items, &format!("{path}[]"), out);
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        unbounded_nodes(values, &format!("{path}{{}}"), out);
    }
}

#[test]
fn every_string_list_and_map_is_bounded() {
    let mut out = Vec::new();
    for crd in api::all_crds() {
        unbounded_nodes(&schema_of(&crd), &crd.spec.names.kind, &mut out);
    }
    assert!(
        out.is_empty(),
        "unbounded schema nodes:\n{}",
        out.join("\n")
    );
}

/// Each rule's static cost (as the API server estimates it, with the schema's bounds) and the
/// CRD's total stay under half of the server's budgets, so new fields cannot creep over.
#[test]
fn every_cel_rule_stays_under_half_of_the_cost_budgets() {
    use kube_sim::cel_cost::{PER_CRD_LIMIT, PER_EXPRESSION_LIMIT, schema_rule_costs};
    let mut over = Vec::new();
    let mut rules = 0;
    for crd in api::all_crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        let costs = schema_rule_costs(&schema_of(&crd), "spec.validation.openAPIV3Schema");
        let mut total: u64 = 0;
        for c in &costs {
            rules += 1;
            println!(
                "{name} {}: {} per call x {} = {} (limit {PER_EXPRESSION_LIMIT})  {}",
                c.path, c.per_call, c.cardinality, c.total, c.expression
            );
            total = total.saturating_add(c.total);
            if c.total > PER_EXPRESSION_LIMIT / 2 {
                over.push(format!(
                    "{name} {}: {} > half of {PER_EXPRESSION_LIMIT}",
                    c.path, c.total
                ));
            }
        }
        println!("{name} total: {total} (limit {PER_CRD_LIMIT})");
        if total > PER_CRD_LIMIT / 2 {
            over.push(format!("{name} total {total} > half of {PER_CRD_LIMIT}"));
        }
    }
    assert!(rules >= 9, "the CRDs' rules were not found ({rules})");
    assert!(
        over.is_empty(),
        "rules too close to the API server's cost budget:\n{}",
        over.join("\n")
    );
}

/// The estimate the cost test relies on does see unbounded schemas: the CRD as it was before
/// the bounds (issue 11) is over budget.
#[test]
fn the_cost_test_would_catch_the_unbounded_template_crd() {
    let yaml = std::fs::read_to_string(repo_path(
        "crates/kube-sim/tests/fixtures/mcptemplates-unbounded-crd.yaml",
    ))
    .expect("fixture");
    let crd: Value = serde_yaml_ng::from_str(&yaml).expect("fixture yaml");
    let causes = kube_sim::cel_cost::crd_cost_causes(&crd, None);
    assert!(
        causes.iter().any(|c| c
            .field
            .ends_with("properties[env].items.x-kubernetes-validations[1].rule")
            && c.message
                .contains("estimated rule cost exceeds budget by factor of more than 100x")),
        "{causes:?}"
    );
}
