//! `meta.k8s.io/v1 Table` responses (what `kubectl get` asks for), built from a CRD's
//! `additionalPrinterColumns` with a small JSONPath evaluator.

use crate::resources::ResourceInfo;
use jiff::Timestamp;
use serde_json::{Value, json};

/// What each row carries in `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// PartialObjectMetadata (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

/// One JSONPath step.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn parse_path(path: &str) -> Vec<Step> {
    let p = path.trim().trim_start_matches('{').trim_end_matches('}');
    let p = p.strip_prefix('$').unwrap_or(p);
    let mut steps = Vec::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let f: String = chars[start..i].iter().collect();
                if !f.is_empty() {
                    steps.push(Step::Field(f));
                }
            }
            '[' => {
                let start = i + 1;
                let mut depth = 1;
                i += 1;
                while i < chars.len() && depth > 0 {
                    match chars[i] {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                let end = if depth == 0 { i - 1 } else { i };
                let inner: String = chars[start..end.max(start)].iter().collect();
                let inner = inner.trim();
                if inner == "*" {
                    steps.push(Step::All);
                } else if let Ok(n) = inner.parse::<usize>() {
                    steps.push(Step::Index(n));
                } else if let Some(expr) =
                    inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')'))
                {
                    if let Some((l, r)) = expr.split_once("==") {
                        let field = l.trim().trim_start_matches("@.").to_string();
                        let value = r.trim().trim_matches('"').trim_matches('\'').to_string();
                        steps.push(Step::Filter(field, value));
                    }
                } else {
                    steps.push(Step::Field(
                        inner.trim_matches('\'').trim_matches('"').to_string(),
                    ));
                }
            }
            _ => {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    steps
}

/// Evaluates a simple JSONPath (`.a.b`, `[0]`, `[*]`, `[?(@.type=="Ready")]`) to all matches.
pub fn eval_jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur = vec![obj];
    for step in parse_path(path) {
        let mut next = Vec::new();
        for v in cur {
            match &step {
                Step::Field(f) => {
                    if let Some(x) = v.get(f) {
                        next.push(x)
                    }
                }
                Step::Index(n) => {
                    if let Some(x) = v.get(*n) {
                        next.push(x)
                    }
                }
                Step::All => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter())
                    }
                }
                Step::Filter(f, want) => {
                    if let Some(a) = v.as_array() {
                        next.extend(a.iter().filter(|i| match i.get(f) {
                            Some(Value::String(s)) => s == want,
                            Some(other) => {
                                serde_json::from_str::<Value>(want).is_ok_and(|w| w == *other)
                            }
                            None => false,
                        }))
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

/// Human age like kubectl prints (`5s`, `3m`, `2h`, `4d`).
pub fn human_age(since: &str, now: Timestamp) -> String {
    let Ok(t) = since.parse::<Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (now.as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 3 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Columns the real server shows for some built-in kinds (those expressible as JSONPath).
fn builtin_columns(
    group: &str,
    plural: &str,
) -> &'static [(&'static str, &'static str, &'static str)] {
    match (group, plural) {
        ("", "namespaces") => &[("Status", "string", ".status.phase")],
        ("", "secrets") => &[
            ("Type", "string", ".type"),
            ("Data", "integer", "#count:data"),
        ],
        ("", "configmaps") => &[("Data", "integer", "#count:data,binaryData")],
        ("", "pods") => &[("Status", "string", ".status.phase")],
        ("", "services") => &[
            ("Type", "string", ".spec.type"),
            ("Cluster-IP", "string", ".spec.clusterIP"),
        ],
        ("", "events") => &[
            ("Last Seen", "date", ".lastTimestamp"),
            ("Type", "string", ".type"),
            ("Reason", "string", ".reason"),
            ("Object", "string", ".involvedObject.name"),
            ("Message", "string", ".message"),
        ],
        ("events.k8s.io", "events") => &[
            ("Type", "string", ".type"),
            ("Reason", "string", ".reason"),
            ("Object", "string", ".regarding.name"),
            ("Note", "string", ".note"),
        ],
        ("apps", "deployments") => &[
            ("Up-to-date", "integer", ".status.updatedReplicas"),
            ("Available", "integer", ".status.availableReplicas"),
        ],
        ("coordination.k8s.io", "leases") => &[("Holder", "string", ".spec.holderIdentity")],
        _ => &[],
    }
}

fn column_defs(info: &ResourceInfo, version: &str) -> Vec<Value> {
    let custom = info
        .version(version)
        .map(|v| v.printer_columns.clone())
        .unwrap_or_default();
    if !custom.is_empty() {
        return custom;
    }
    let mut cols: Vec<Value> = builtin_columns(&info.group, &info.plural)
        .iter()
        .map(|(name, ty, path)| json!({"name": name, "type": ty, "jsonPath": path}))
        .collect();
    if info.kind == "CustomResourceDefinition" {
        // The real server prints the timestamp itself here, not an age.
        cols.push(json!({"name": "Created At", "type": "string", "format": "date", "jsonPath": ".metadata.creationTimestamp"}));
        return cols;
    }
    cols.push(json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."}));
    cols
}

fn cell(obj: &Value, col: &Value, now: Timestamp) -> Value {
    let path = col
        .get("jsonPath")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Built-in "number of entries" columns (ConfigMap/Secret DATA) are not expressible as JSONPath.
    if let Some(fields) = path.strip_prefix("#count:") {
        let n: usize = fields
            .split(',')
            .filter_map(|f| obj.get(f).and_then(Value::as_object).map(|m| m.len()))
            .sum();
        return json!(n);
    }
    let ty = col.get("type").and_then(Value::as_str).unwrap_or("string");
    let found = eval_jsonpath(obj, path);
    if found.is_empty() {
        return Value::Null;
    }
    if ty == "date" {
        return match found[0] {
            Value::String(s) => json!(human_age(s, now)),
            other => other.clone(),
        };
    }
    if found.len() == 1 {
        return match (ty, found[0]) {
            ("string", Value::Number(n)) => json!(n.to_string()),
            ("string", Value::Bool(b)) => json!(b.to_string()),
            ("string", v @ (Value::Object(_) | Value::Array(_))) => json!(v.to_string()),
            (_, v) => v.clone(),
        };
    }
    let parts: Vec<String> = found
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    json!(parts.join(","))
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// Column definitions of the Table for a resource version.
pub fn columns(info: &ResourceInfo, version: &str) -> Vec<Value> {
    let mut out = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in column_defs(info, version) {
        out.push(json!({
            "name": c.get("name").cloned().unwrap_or(Value::Null),
            "type": c.get("type").cloned().unwrap_or(json!("string")),
            "format": c.get("format").cloned().unwrap_or(json!("")),
            "description": c.get("description").cloned().unwrap_or(json!("")),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
    }
    out
}

/// One Table row for an object.
pub fn row(
    info: &ResourceInfo,
    version: &str,
    obj: &Value,
    include: IncludeObject,
    now: Timestamp,
) -> Value {
    let mut cells = vec![
        obj.pointer("/metadata/name")
            .cloned()
            .unwrap_or(Value::Null),
    ];
    for c in column_defs(info, version) {
        cells.push(cell(obj, &c, now));
    }
    json!({"cells": cells, "object": row_object(obj, include)})
}

/// A full Table for a list of objects.
pub fn table(
    info: &ResourceInfo,
    version: &str,
    objs: &[&Value],
    include: IncludeObject,
    list_meta: Value,
    now: Timestamp,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns(info, version),
        "rows": objs.iter().map(|o| row(info, version, o, include, now)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_filters_and_indexes() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
            "spec": {"ports": [{"port": 80}, {"port": 443}]}});
        assert_eq!(
            eval_jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(eval_jsonpath(&o, ".spec.ports[1].port"), vec![&json!(443)]);
        assert_eq!(eval_jsonpath(&o, "{.spec.ports[*].port}").len(), 2);
        assert!(eval_jsonpath(&o, ".missing.x").is_empty());
        // Malformed paths from a CRD must not panic.
        for bad in ["[", ".a[", "[?(", "..", "[]", "{"] {
            let _ = eval_jsonpath(&o, bad);
        }
    }

    #[test]
    fn ages_like_kubectl() {
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        assert_eq!(human_age("2026-11-25T11:59:30Z", now), "30s");
        assert_eq!(human_age("2026-11-25T11:00:00Z", now), "60m");
        assert_eq!(human_age("2026-11-20T12:00:00Z", now), "5d");
    }
}
