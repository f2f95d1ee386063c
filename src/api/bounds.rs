//! Size bounds on every string, list and map of the generated schemas.
//!
//! The API server estimates the worst-case cost of each CEL rule from these bounds and
//! refuses a CRD whose rules could cost too much (issue 11); bounds also keep one object far
//! below etcd's size limit. The derive sets the bounds that carry meaning next to their field
//! (`#[schemars(length(...))]`); this pass fills in the rest from one table, so a new field
//! cannot arrive unbounded. The limits are listed in docs/crds.md.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use serde_json::Value;

/// A string no table entry names: generous, but bounded.
pub const DEFAULT_STRING: u64 = 1024;
/// A list no table entry names.
pub const DEFAULT_ITEMS: u64 = 256;
/// A map no table entry names.
pub const DEFAULT_PROPERTIES: u64 = 256;

/// `(field name, maxLength)` for strings, following Kubernetes API conventions.
pub const STRING_LIMITS: &[(&str, u64)] = &[
    // Object names (DNS subdomains) and label-style names.
    ("pool", 253),
    ("droplet", 253),
    ("dropletName", 253),
    ("deployments[]", 253),
    ("name", 253),
    ("key", 317),
    ("operator", 16),
    ("matchLabels{}", 63),
    ("values[]", 63),
    // DigitalOcean identifiers.
    ("region", 63),
    ("regions[]", 63),
    ("size", 63),
    ("sizes[]", 63),
    ("sshKeys[]", 128),
    ("tags[]", 255),
    ("vpcUUID", 64),
    // Container images: registry/repository:tag@digest.
    ("image", 4096),
    // Quantities such as `500m`, `2Gi`.
    ("cpu", 64),
    ("memory", 64),
    ("disk", 64),
    // Free text.
    ("description", 4096),
    ("message", 32768),
    ("reason", 1024),
    ("type", 316),
    ("status", 16),
    ("allocationSummary", 1024),
    ("utilizationSummary", 1024),
    // Commands, paths and URLs.
    ("args[]", 4096),
    ("command[]", 4096),
    ("path", 4096),
    ("mountPath", 4096),
    ("docs", 2048),
    ("source", 2048),
    ("endpoint", 2048),
    ("allowHosts[]", 253),
    // Environment values and the choices offered for them.
    ("value", 32768),
    ("default", 4096),
    ("choices[]", 253),
    // Schedules and durations.
    ("schedule", 256),
    ("duration", 64),
    ("consolidateAfter", 64),
    ("droplets", 16),
    // Addresses and versions reported by the agent.
    ("privateIPv4", 45),
    ("publicIPv4", 45),
    ("certificateFingerprint", 256),
    ("version", 256),
    ("protocolVersion", 64),
    ("serverName", 253),
    ("serverVersion", 256),
    ("currentStep", 253),
];

/// `(field name, maxItems)` for lists.
pub const ITEM_LIMITS: &[(&str, u64)] = &[
    ("env", 128),
    ("choices", 64),
    ("args", 128),
    ("command", 128),
    ("volumes", 32),
    ("capabilities", 16),
    ("allowHosts", 128),
    ("regions", 32),
    ("sizes", 64),
    ("sshKeys", 64),
    ("tags", 64),
    ("budgets", 16),
    ("reasons", 8),
    ("matchExpressions", 32),
    ("values", 64),
    ("conditions", 16),
    ("deployments", 1024),
    ("alternatives", 32),
    ("steps", 64),
];

/// `(field name, maxProperties)` for maps.
pub const PROPERTY_LIMITS: &[(&str, u64)] = &[("matchLabels", 64)];

fn lookup(table: &[(&str, u64)], name: &str) -> Option<u64> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Adds the missing bounds to one schema node (named `name`, with `[]` for list items and
/// `{}` for map values) and everything below it.
pub fn bound_node(node: &mut Value, name: &str) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    let ty = obj.get("type").and_then(Value::as_str).map(str::to_string);
    let unbounded_string = ty.as_deref() == Some("string")
        && !obj.contains_key("maxLength")
        && !obj.contains_key("enum")
        && !matches!(
            obj.get("format").and_then(Value::as_str),
            Some("date-time" | "date" | "duration")
        );
    if unbounded_string {
        let limit = lookup(STRING_LIMITS, name).unwrap_or(DEFAULT_STRING);
        obj.insert("maxLength".into(), limit.into());
    }
    if ty.as_deref() == Some("array") && !obj.contains_key("maxItems") {
        let limit = lookup(ITEM_LIMITS, name).unwrap_or(DEFAULT_ITEMS);
        obj.insert("maxItems".into(), limit.into());
    }
    let is_map = obj
        .get("additionalProperties")
        .is_some_and(Value::is_object);
    if ty.as_deref() == Some("object") && is_map && !obj.contains_key("maxProperties") {
        let limit = lookup(PROPERTY_LIMITS, name).unwrap_or(DEFAULT_PROPERTIES);
        obj.insert("maxProperties".into(), limit.into());
    }
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
        for (child, schema) in props.iter_mut() {
            bound_node(schema, child);
        }
    }
    if let Some(items) = obj.get_mut("items") {
        bound_node(items, &format!("{name}[]"));
    }
    if let Some(values) = obj.get_mut("additionalProperties") {
        bound_node(values, &format!("{name}{{}}"));
    }
}

/// The CRD with every string, list and map of every version's schema bounded.
pub fn bounded(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let Ok(mut value) = serde_json::to_value(&*schema) else {
            continue;
        };
        bound_node(&mut value, "");
        if let Ok(props) = serde_json::from_value::<JSONSchemaProps>(value) {
            *schema = props;
        }
    }
    crd
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_fields_get_their_limits_and_others_the_default() {
        let mut s = json!({"type": "object", "properties": {
            "image": {"type": "string"},
            "note": {"type": "string"},
            "when": {"type": "string", "format": "date-time"},
            "size": {"type": "string", "enum": ["a"]},
            "env": {"type": "array", "items": {"type": "object", "properties": {
                "choices": {"type": "array", "items": {"type": "string"}}}}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "name": {"type": "string", "maxLength": 5}}});
        bound_node(&mut s, "");
        let p = &s["properties"];
        assert_eq!(p["image"]["maxLength"], 4096);
        assert_eq!(p["note"]["maxLength"], DEFAULT_STRING);
        assert!(p["when"].get("maxLength").is_none());
        assert!(p["size"].get("maxLength").is_none());
        assert_eq!(p["env"]["maxItems"], 128);
        assert_eq!(p["env"]["items"]["properties"]["choices"]["maxItems"], 64);
        assert_eq!(
            p["env"]["items"]["properties"]["choices"]["items"]["maxLength"],
            253
        );
        assert_eq!(p["labels"]["maxProperties"], DEFAULT_PROPERTIES);
        assert_eq!(
            p["labels"]["additionalProperties"]["maxLength"],
            DEFAULT_STRING
        );
        assert_eq!(
            p["name"]["maxLength"], 5,
            "a bound set by the derive is kept"
        );
    }
}
