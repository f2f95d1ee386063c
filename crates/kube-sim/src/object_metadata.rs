//! Accessors and setters for object metadata, shared by the store and by gc (which decides from
//! the same fields without reaching into the store).

use jiff::Timestamp;
use serde_json::{Map, Value, json};

pub(crate) fn ts(now: Timestamp) -> String {
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(crate) fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

/// Name of an object.
pub fn name_of(v: &Value) -> &str {
    meta_str(v, "name").unwrap_or_default()
}

/// Namespace of an object ("" when cluster-scoped).
pub fn namespace_of(v: &Value) -> &str {
    meta_str(v, "namespace").unwrap_or_default()
}

pub(crate) fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn set_meta(v: &mut Value, field: &str, value: Value) {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        if value.is_null() {
            m.remove(field);
        } else {
            m.insert(field.to_string(), value);
        }
    }
}

/// Everything but metadata and status: the part whose change bumps `generation`.
pub(crate) fn spec_part(v: &Value) -> Map<String, Value> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The object with managedFields timestamps blanked: a write that changes nothing else is a
/// no-op, but a change of ownership is not.
pub(crate) fn without_managed_times(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(Value::Array(entries)) = c.pointer_mut("/metadata/managedFields") {
        for e in entries.iter_mut() {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    c
}
