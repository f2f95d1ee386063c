//! CEL `x-kubernetes-validations`, evaluated with `kube-cel` (the crate kube's `cel` feature
//! uses), including transition rules with `oldSelf` on updates.

use crate::status::Cause;
use serde_json::Value;

thread_local! {
    // Registering all CEL functions is costly; one validator per worker thread.
    static VALIDATOR: kube_cel::Validator = kube_cel::Validator::new();
}

/// Identity of the kind, bound as `apiVersion`, `apiGroup`, `kind` for root rules.
#[derive(Debug, Clone)]
pub struct RootKind<'a> {
    /// `group/version`.
    pub api_version: &'a str,
    /// Group.
    pub group: &'a str,
    /// Kind.
    pub kind: &'a str,
}

/// The schema type name at a dotted/indexed field path, for the `Invalid value: "<type>"` text.
fn type_at(schema: &Value, path: &str) -> String {
    let mut cur = schema;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, indexed) = match seg.find('[') {
            Some(i) => (&seg[..i], true),
            None => (seg, false),
        };
        if !name.is_empty() {
            cur = match cur
                .get("properties")
                .and_then(|p| p.get(name))
                .or_else(|| cur.get("additionalProperties").filter(|a| a.is_object()))
            {
                Some(s) => s,
                None => return "object".into(),
            };
        }
        if indexed {
            cur = match cur.get("items") {
                Some(s) => s,
                None => return "object".into(),
            };
        }
    }
    cur.get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
        .to_string()
}

/// The JSON text of the scalar at a dotted/indexed path (`spec.env[0].name`); `None` for
/// objects, lists and missing values.
fn scalar_at(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let (name, rest) = seg.split_at(seg.find('[').unwrap_or(seg.len()));
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        for index in rest.split('[').filter(|s| !s.is_empty()) {
            let i: usize = index.trim_end_matches(']').parse().ok()?;
            cur = cur.get(i)?;
        }
    }
    match cur {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => serde_json::to_string(cur).ok(),
        _ => None,
    }
}

/// Evaluates every CEL rule of the schema against the object (and the old object on updates).
pub fn evaluate(
    schema: &Value,
    compiled: Option<&kube_cel::CompiledSchema>,
    obj: &Value,
    old: Option<&Value>,
    root: &RootKind<'_>,
) -> Vec<Cause> {
    let ctx = kube_cel::RootContext {
        api_version: root.api_version.to_string(),
        api_group: root.group.to_string(),
        kind: root.kind.to_string(),
    };
    let result = VALIDATOR.with(|v| match compiled {
        Some(compiled) => v.validate_compiled_with_context(compiled, obj, old, Some(&ctx)),
        None => v.validate_with_context(schema, obj, old, Some(&ctx)),
    });
    let Err(errors) = result else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| {
            let field = e.field_path.trim_start_matches('.').to_string();
            let ty = type_at(schema, &field);
            let (reason, message) = match e.reason.as_deref() {
                Some("FieldValueRequired") => (
                    "FieldValueRequired",
                    format!("Required value: {}", e.message),
                ),
                Some("FieldValueForbidden") => {
                    ("FieldValueForbidden", format!("Forbidden: {}", e.message))
                }
                Some("FieldValueDuplicate") => (
                    "FieldValueDuplicate",
                    format!("Duplicate value: \"{ty}\": {}", e.message),
                ),
                // Newer servers print the failing value itself for scalars (`"small"`, `20`)
                // and nothing for objects and lists, where 1.28 printed the type.
                _ => (
                    "FieldValueInvalid",
                    match scalar_at(obj, e.field_path.trim_start_matches('.')) {
                        Some(v) => format!("Invalid value: {v}: {}", e.message),
                        None => format!("Invalid value: {}", e.message),
                    },
                ),
            };
            Cause {
                reason: reason.to_string(),
                message,
                field: if field.is_empty() {
                    "<nil>".to_string()
                } else {
                    field
                },
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rule_failure_names_the_field_and_type() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
            "placement": {"type": "object", "properties": {"region": {"type": "string"}},
                "x-kubernetes-validations": [{"rule": "has(self.region)", "message": "region is required"}]},
            "size": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "size is immutable"}]}
        }}}});
        let root = RootKind {
            api_version: "g/v1",
            group: "g",
            kind: "K",
        };
        // The same answers with the rules compiled per call and compiled once.
        let compiled = kube_cel::compile_schema(&schema);
        for once in [None, Some(&compiled)] {
            let obj = json!({"spec": {"placement": {}, "size": "s"}});
            let c = evaluate(&schema, once, &obj, None, &root);
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].field, "spec.placement");
            assert_eq!(c[0].message, "Invalid value: region is required");
            let new = json!({"spec": {"placement": {"region": "r"}, "size": "m"}});
            let old = json!({"spec": {"placement": {"region": "r"}, "size": "s"}});
            let c = evaluate(&schema, once, &new, Some(&old), &root);
            assert_eq!(c[0].message, "Invalid value: \"m\": size is immutable");
            assert!(evaluate(&schema, once, &old, Some(&old), &root).is_empty());
        }
    }
}
