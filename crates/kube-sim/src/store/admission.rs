//! Admission: the namespace check, system metadata, validation (metadata, schema, CEL, CRD
//! shape and CEL cost), defaulting (schema defaults, Secrets, Namespaces, CRD status) and the
//! managedFields update, applied to every object about to be written.

use super::crd::crd_status;
use super::metadata_validation::{
    DNS_LABEL_MSG, DNS_SUBDOMAIN_MSG, is_dns_label, is_dns_subdomain, validate_metadata,
};
use super::{CRD_CLEANUP_FINALIZER, FieldValidation, State, WriteOptions, crd_key};
use crate::apply::{self, ListRules, WriteContext};
use crate::object_metadata::{finalizers, meta_str, name_of, set_meta, spec_part, ts};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, Cause};
use jiff::Timestamp;
use serde_json::{Value, json};

impl State {
    pub(super) fn check_namespace(
        &self,
        info: &ResourceInfo,
        ns: &str,
        creating: bool,
    ) -> Result<(), ApiError> {
        if !info.namespaced {
            return Ok(());
        }
        let Some(ns_info) = self.registry.find("", "v1", "namespaces") else {
            return Ok(());
        };
        match self.get(&ns_info, "", ns) {
            Err(_) => Err(ApiError::not_found("", "namespaces", ns)),
            Ok(n) if creating && n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::Forbidden {
                    message: format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                        info.plural, ""
                    ),
                    name: String::new(),
                    group: info.group.clone(),
                    kind: info.plural.clone(),
                })
            }
            Ok(_) => Ok(()),
        }
    }

    /// Validates, defaults and finalises an object about to be written.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn admit(
        &self,
        info: &ResourceInfo,
        version: &str,
        old: Option<&Value>,
        mut new: Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
        track_fields: bool,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let api_version = info.api_version(version);
        let name = name_of(&new).to_string();
        if let Some(k) = new.get("kind").and_then(Value::as_str)
            && k != info.kind
        {
            return Err(ApiError::BadRequest(format!(
                "the object provided is unrecognized (must be of type {}): kind {k} does not match",
                info.kind
            )));
        }
        new["apiVersion"] = json!(api_version);
        new["kind"] = json!(info.kind);
        let has_status = info.has_status(version);
        if subresource == "status" {
            let Some(o) = old else {
                return Err(ApiError::not_found(&info.group, &info.plural, &name));
            };
            let status = new.get("status").cloned();
            let mut merged = o.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if let Some(mf) = new.pointer("/metadata/managedFields") {
                set_meta(&mut merged, "managedFields", mf.clone());
            }
            new = merged;
        } else if has_status {
            match old.and_then(|o| o.get("status")) {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        // System metadata is owned by the server.
        match old {
            Some(o) => {
                for f in [
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                ] {
                    set_meta(
                        &mut new,
                        f,
                        o.pointer(&format!("/metadata/{f}"))
                            .cloned()
                            .unwrap_or(Value::Null),
                    );
                }
                if let Some(n) = meta_str(o, "name") {
                    set_meta(&mut new, "name", json!(n));
                }
            }
            None => {
                set_meta(&mut new, "uid", json!(uuid::Uuid::new_v4().to_string()));
                set_meta(&mut new, "creationTimestamp", json!(ts(now)));
                for f in [
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "resourceVersion",
                ] {
                    set_meta(&mut new, f, Value::Null);
                }
                if info.tracks_generation {
                    set_meta(&mut new, "generation", json!(1));
                } else {
                    set_meta(&mut new, "generation", Value::Null);
                }
            }
        }
        if !info.namespaced {
            set_meta(&mut new, "namespace", Value::Null);
        }
        let mut warnings = Vec::new();
        let mut causes: Vec<Cause> = Vec::new();
        let name_problem = if info.plural == "namespaces" {
            (!is_dns_label(&name)).then_some(DNS_LABEL_MSG)
        } else if info.group == crate::rbac::RBAC_GROUP {
            // RBAC names are path segments (`system:discovery` is valid), as on the server.
            path_segment_problem(&name)
        } else {
            (!is_dns_subdomain(&name)).then_some(DNS_SUBDOMAIN_MSG)
        };
        if let Some(msg) = name_problem {
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {:?}: {msg}", name),
                field: "metadata.name".into(),
            });
        }
        causes.extend(validate_metadata(&new));
        if let Some(o) = old
            && info.group.is_empty()
            && matches!(info.plural.as_str(), "configmaps" | "secrets")
            && o.get("immutable").and_then(Value::as_bool) == Some(true)
        {
            for f in ["data", "binaryData", "immutable"] {
                if o.get(f) != new.get(f) {
                    causes.push(Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: field is immutable when `immutable` is set".into(),
                        field: f.into(),
                    });
                }
            }
        }
        if info.custom
            && let Some(served) = info.version(version)
            && let Some(schema) = served.schema.as_ref()
        {
            let unknown = crate::validation::prune(&mut new, schema);
            if !unknown.is_empty() {
                match opts.validation {
                    FieldValidation::Strict => {
                        let list: Vec<String> = unknown
                            .iter()
                            .map(|u| format!("unknown field \"{u}\""))
                            .collect();
                        return Err(ApiError::BadRequest(format!(
                            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                            info.kind,
                            api_version,
                            info.kind,
                            list.join(", ")
                        )));
                    }
                    FieldValidation::Warn => {
                        warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
                    }
                    FieldValidation::Ignore => {}
                }
            }
            new = crate::validation::apply_defaults(&new, schema);
            let mut schema_causes = Vec::new();
            crate::validation::validate(&new, schema, "", &mut schema_causes);
            if schema_causes.is_empty() {
                let old_for_cel = if subresource == "status" || old.is_some() {
                    old
                } else {
                    None
                };
                schema_causes = crate::cel::evaluate(
                    schema,
                    served.cel.as_deref(),
                    &new,
                    old_for_cel,
                    &crate::cel::RootKind {
                        api_version: &api_version,
                        group: &info.group,
                        kind: &info.kind,
                    },
                );
            }
            causes.extend(schema_causes);
        }
        if info.key() == crd_key()
            && let Err(e) = crate::resources::resource_from_crd(&new)
        {
            let crate::resources::CrdError::Field { field, message } = e;
            causes.push(Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field,
            });
        }
        if info.key() == crd_key() && subresource != "status" {
            causes.extend(crate::cel_cost::crd_cost_causes(&new, old));
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&info.group, &info.kind, &name, causes));
        }
        if info.tracks_generation
            && let Some(o) = old
            && spec_part(o) != spec_part(&new)
        {
            let g = o
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            set_meta(&mut new, "generation", json!(g + 1));
        }
        if info.plural == "secrets" && info.group.is_empty() {
            default_secret(&mut new);
        }
        if info.plural == "namespaces" {
            if old.is_none() {
                new["spec"] = json!({"finalizers": ["kubernetes"]});
                new["status"] = json!({"phase": "Active"});
            }
            let mut labels = new
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_else(|| json!({}));
            labels["kubernetes.io/metadata.name"] = json!(name);
            set_meta(&mut new, "labels", labels);
        }
        if info.key() == crd_key() {
            if old.is_none() {
                let mut f = finalizers(&new);
                if !f.iter().any(|x| x == CRD_CLEANUP_FINALIZER) {
                    f.push(CRD_CLEANUP_FINALIZER.into());
                }
                set_meta(&mut new, "finalizers", json!(f));
            }
            new["status"] = crd_status(&new, now);
        }
        if track_fields {
            let schema = info.version(version).and_then(|v| v.schema.as_ref());
            apply::record_update(
                old,
                &mut new,
                &WriteContext {
                    manager: &opts.manager,
                    api_version: &api_version,
                    subresource,
                    now: &ts(now),
                    rules: ListRules {
                        schema,
                        builtin: !info.custom,
                    },
                },
            );
        }
        Ok((new, warnings))
    }
}

/// Secret defaulting as the real server does: `type` Opaque, `stringData` folded into `data`.
fn default_secret(secret: &mut Value) {
    use base64::Engine;
    if secret
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        secret["type"] = json!("Opaque");
    }
    let string_data = secret.as_object_mut().and_then(|m| m.remove("stringData"));
    if let Some(Value::Object(sd)) = string_data {
        if !secret.get("data").is_some_and(Value::is_object) {
            secret["data"] = json!({});
        }
        for (k, v) in sd {
            let text = v.as_str().unwrap_or_default().to_string();
            secret["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

/// Why a name is not a valid path segment (`path.IsValidPathSegmentName`), if it is not.
fn path_segment_problem(name: &str) -> Option<&'static str> {
    match name {
        "." => Some("may not be '.'"),
        ".." => Some("may not be '..'"),
        _ if name.contains('/') => Some("may not contain '/'"),
        _ if name.contains('%') => Some("may not contain '%'"),
        _ => None,
    }
}
