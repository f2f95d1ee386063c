//! A Markdown field reference generated from the CRD schemas (`docs/crds.md`), so the docs can
//! never disagree with what the API server enforces.

use std::fmt::Write;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

/// Why every field is bounded; the per-field limits are in the `rules` column below.
const SIZE_LIMITS: &str = "\n## Size limits\n\n\
Every string has a `maxLength`, every list a `maxItems` and every map a `maxProperties`: the \
API server estimates each CEL rule's worst-case cost from these bounds and refuses a CRD over \
budget (10,000,000 per rule, 100,000,000 per CRD), and the bounds keep one object far below \
etcd's size limit. A test (`tests/crds.rs`) prints each rule's estimated cost and fails above \
half of either budget. The conventions: object names 253 characters, label values and \
DigitalOcean slugs 63, images 4096, descriptions 4096, condition messages 32768, environment \
lists 128 entries with up to 64 choices, regions 32, sizes 64, tags 64, condition lists 16; \
anything not named in `src/api/bounds.rs` gets 1024 characters, 256 items or 256 entries.\n";

/// Renders every CRD as a Markdown section with one table row per field.
pub fn markdown(crds: &[CustomResourceDefinition]) -> String {
    let mut out = String::from(
        "# CRD reference\n\nGenerated from the Rust types by `mcp-droplet-operator crds --format markdown`; \
         do not edit by hand (a test fails when this file is stale).\n",
    );
    out.push_str(SIZE_LIMITS);
    for crd in crds {
        let names = &crd.spec.names;
        let Some(schema) = super::openapi_schema(crd) else {
            continue;
        };
        let _ = write!(
            out,
            "\n## {kind}\n\n{desc}\n\n`{group}/{version}`, {scope}, short name `{short}`, plural `{plural}`.\n\n\
             | field | type | rules | description |\n|---|---|---|---|\n",
            kind = names.kind,
            desc = schema
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or(""),
            group = crd.spec.group,
            version = crd
                .spec
                .versions
                .first()
                .map(|v| v.name.as_str())
                .unwrap_or(""),
            scope = crd.spec.scope.to_lowercase(),
            short = names
                .short_names
                .as_ref()
                .and_then(|s| s.first())
                .map(String::as_str)
                .unwrap_or(""),
            plural = names.plural,
        );
        for key in ["spec", "status"] {
            if let Some(node) = schema.get("properties").and_then(|p| p.get(key)) {
                rows(node, key, &mut out);
            }
        }
    }
    out
}

fn type_name(node: &Value) -> String {
    if node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return "int or string".into();
    }
    match node.get("type").and_then(Value::as_str) {
        Some("array") => {
            let item = node.get("items").map(type_name).unwrap_or_default();
            format!("[]{item}")
        }
        Some("object") if node.get("additionalProperties").is_some() => "map".into(),
        Some(t) => t.to_string(),
        None => "any".into(),
    }
}

fn rules(node: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(Value::Array(values)) = node.get("enum") {
        let values: Vec<String> = values
            .iter()
            .filter_map(Value::as_str)
            .map(|v| format!("`{v}`"))
            .collect();
        parts.push(format!("one of {}", values.join(", ")));
    }
    for (key, label) in [
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
    ] {
        if let Some(v) = node.get(key) {
            parts.push(format!("{label} {v}"));
        }
    }
    if let Some(p) = node.get("pattern").and_then(Value::as_str) {
        parts.push(format!("pattern `{}`", p.replace('|', "\\|")));
    }
    if let Some(d) = node.get("default") {
        parts.push(format!("default `{d}`"));
    }
    if let Some(Value::Array(rules)) = node.get("x-kubernetes-validations") {
        for r in rules {
            if let Some(m) = r.get("message").and_then(Value::as_str) {
                parts.push(format!("rule: {}", m.replace('|', "\\|")));
            }
        }
    }
    parts.join("; ")
}

fn rows(node: &Value, path: &str, out: &mut String) {
    let description = node
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .replace('\n', " ")
        .replace('|', "\\|");
    let _ = writeln!(
        out,
        "| `{path}` | {} | {} | {description} |",
        type_name(node),
        rules(node)
    );
    let (props, prefix) = match node.get("type").and_then(Value::as_str) {
        Some("array") => (
            node.get("items").and_then(|i| i.get("properties")),
            format!("{path}[]"),
        ),
        _ => (node.get("properties"), path.to_string()),
    };
    if let Some(Value::Object(props)) = props {
        let mut keys: Vec<_> = props.keys().collect();
        keys.sort();
        for key in keys {
            rows(&props[key], &format!("{prefix}.{key}"), out);
        }
    }
    if let Some(Value::Array(item_rules)) = node
        .get("items")
        .and_then(|i| i.get("x-kubernetes-validations"))
    {
        for r in item_rules {
            if let Some(m) = r.get("message").and_then(Value::as_str) {
                let _ = writeln!(
                    out,
                    "| `{path}[]` | | rule: {} | each item |",
                    m.replace('|', "\\|")
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lists_fields_and_rules() {
        let md = markdown(&crate::api::all_crds());
        assert!(md.contains("## MCPDeployment"));
        assert!(md.contains("| `spec.placement.dropletName` |"));
        assert!(md.contains("placement.dropletName and placement.dropletSelector are exclusive"));
        assert!(md.contains("an env entry needs exactly one of value or valueFrom"));
        assert!(md.contains("one of `stdio`, `streamable-http`, `sse`"));
    }
}
