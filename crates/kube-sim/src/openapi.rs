//! OpenAPI documents for kubectl: `/openapi/v3` (index), `/openapi/v3/{api/v1|apis/g/v}`
//! (schemas of the group-version, with the PATCH paths kubectl inspects to learn that the
//! server supports `fieldValidation`), and a JSON `/openapi/v2`.

use crate::resources::{Registry, ResourceInfo};
use serde_json::{Map, Value, json};
use std::hash::{Hash, Hasher};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Definition name of a kind: reversed group, version, kind (`io.k8s.api.core.v1.ConfigMap`
/// for built-ins, `io.agentopia.mcp.v1.MCPServer` for `mcp.agentopia.io`).
pub fn definition_name(info: &ResourceInfo, version: &str) -> String {
    let group = match info.group.as_str() {
        "" => "io.k8s.api.core".to_string(),
        g if g.ends_with(".k8s.io") => format!(
            "io.k8s.api.{}",
            g.trim_end_matches(".k8s.io").replace('.', "_")
        ),
        g if !g.contains('.') => format!("io.k8s.api.{g}"),
        g => {
            let mut parts: Vec<&str> = g.split('.').collect();
            parts.reverse();
            parts.join(".")
        }
    };
    format!("{group}.{version}.{}", info.kind)
}

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry.", "x-kubernetes-list-type": "set"},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "List of objects depended by this object."},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."}
        }
    })
}

fn kind_schema(info: &ResourceInfo, version: &str) -> Value {
    let base = info
        .version(version)
        .and_then(|v| v.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let mut schema = base;
    if !schema.get("properties").is_some_and(Value::is_object) {
        schema["properties"] = json!({});
    }
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        props.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "default": {}, "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
        );
    }
    if schema.get("type").is_none() {
        schema["type"] = json!("object");
    }
    schema["x-kubernetes-group-version-kind"] =
        json!([{"group": info.group, "kind": info.kind, "version": version}]);
    schema
}

fn gvk_ext(info: &ResourceInfo, version: &str) -> Value {
    json!({"group": info.group, "version": version, "kind": info.kind})
}

fn paths_for(info: &ResourceInfo, version: &str, def: &str) -> Map<String, Value> {
    let prefix = if info.group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{}/{version}", info.group)
    };
    let coll = if info.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}", info.plural)
    } else {
        format!("{prefix}/{}", info.plural)
    };
    let q = |n: &str| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let body_ref = json!({"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{def}")}}}});
    let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{def}")}}}}});
    let mut m = Map::new();
    m.insert(
        coll.clone(),
        json!({
            "parameters": [q("dryRun"), q("fieldManager"), q("fieldValidation"), q("pretty")],
            "get": {"operationId": format!("list{}", info.kind), "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk_ext(info, version), "responses": ok},
            "post": {"operationId": format!("create{}", info.kind), "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk_ext(info, version), "requestBody": body_ref, "responses": ok},
        }),
    );
    m.insert(
        format!("{coll}/{{name}}"),
        json!({
            "parameters": [q("dryRun"), q("fieldManager"), q("fieldValidation"), q("force"), q("pretty")],
            "get": {"operationId": format!("read{}", info.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk_ext(info, version), "responses": ok},
            "put": {"operationId": format!("replace{}", info.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk_ext(info, version), "requestBody": body_ref, "responses": ok},
            "patch": {"operationId": format!("patch{}", info.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk_ext(info, version), "responses": ok},
            "delete": {"operationId": format!("delete{}", info.kind), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk_ext(info, version), "responses": ok},
        }),
    );
    m
}

/// The OpenAPI v3 document of one group-version, or None if not served.
pub fn v3_group_version(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<_> = reg
        .all()
        .filter(|t| t.group == group && t.version(version).is_some())
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut schemas = Map::new();
    let mut paths = Map::new();
    schemas.insert(OBJECT_META.into(), object_meta_schema());
    for t in types {
        let def = definition_name(t, version);
        paths.extend(paths_for(t, version, &def));
        schemas.insert(def, kind_schema(t, version));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: one entry per served group-version, with a content hash.
pub fn v3_index(reg: &Registry) -> Value {
    let mut gvs: Vec<(String, String)> = Vec::new();
    for t in reg.all() {
        for v in &t.versions {
            let gv = (t.group.clone(), v.name.clone());
            if !gvs.contains(&gv) {
                gvs.push(gv);
            }
        }
    }
    let mut paths = Map::new();
    for (g, v) in gvs {
        let key = if g.is_empty() {
            format!("api/{v}")
        } else {
            format!("apis/{g}/{v}")
        };
        let hash = v3_group_version(reg, &g, &v)
            .map(|d| hash_of(&d))
            .unwrap_or_default();
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v2` as JSON (Swagger 2.0): definitions of every served kind.
pub fn v2(reg: &Registry) -> Value {
    let mut defs = Map::new();
    defs.insert(OBJECT_META.into(), object_meta_schema());
    for t in reg.all() {
        for v in &t.versions {
            let mut s = kind_schema(t, &v.name);
            // Swagger 2.0 references live under #/definitions.
            let text = s
                .to_string()
                .replace("#/components/schemas/", "#/definitions/");
            if let Ok(parsed) = serde_json::from_str(&text) {
                s = parsed;
            }
            defs.insert(definition_name(t, &v.name), s);
        }
    }
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.33.0"}, "paths": {}, "definitions": defs})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_names() {
        let reg = Registry::with_builtins();
        let cm = reg.find("", "v1", "configmaps").unwrap();
        assert_eq!(definition_name(&cm, "v1"), "io.k8s.api.core.v1.ConfigMap");
        let d = reg.find("apps", "v1", "deployments").unwrap();
        assert_eq!(definition_name(&d, "v1"), "io.k8s.api.apps.v1.Deployment");
        let doc = v3_group_version(&reg, "apps", "v1").unwrap();
        assert!(doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());
        assert!(
            v3_index(&reg)["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .contains("hash=")
        );
    }
}
