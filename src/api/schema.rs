//! Schema fragments the derive cannot express: list-maps for conditions.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// `status.conditions`: a list-map keyed by `type`, so server-side apply merges conditions by type.
pub(crate) fn conditions(generator: &mut SchemaGenerator) -> Schema {
    let item = k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition::json_schema(generator);
    json_schema!({
        "type": "array",
        "description": "Standard conditions; `Ready` is the summary (kstatus-compatible).",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    })
}
