//! The writing verbs: create (POST), update (PUT) and patch (merge, JSON, strategic; apply
//! goes to `server_side_apply`), all ending in the shared write of an existing object.

use super::{ChangeType, State, WriteOptions, WriteOutcome};
use crate::object_metadata::{finalizers, meta_str, name_of, set_meta, without_managed_times};
use crate::patch::{self, PatchKind};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, Cause};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;

/// Random suffix for generateName, from the alphabet the real server uses.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4()
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

impl State {
    /// Creates an object (POST). `ns` is the namespace from the URL.
    pub fn create(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the body of the request was not an object".into(),
            ));
        }
        if let Some(ns) = ns {
            if let Some(body_ns) = meta_str(&obj, "namespace")
                && !body_ns.is_empty()
                && body_ns != ns
            {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            set_meta(&mut obj, "namespace", json!(ns));
        }
        let namespace = if info.namespaced {
            ns.unwrap_or("default").to_string()
        } else {
            String::new()
        };
        if info.namespaced {
            set_meta(&mut obj, "namespace", json!(namespace));
        }
        self.check_namespace(info, &namespace, true)?;
        if meta_str(&obj, "name").is_none_or(str::is_empty) {
            match meta_str(&obj, "generateName").map(str::to_string) {
                Some(prefix) if !prefix.is_empty() => {
                    let mut name = format!("{prefix}{}", random_suffix());
                    for _ in 0..8 {
                        if self.get(info, &namespace, &name).is_err() {
                            break;
                        }
                        name = format!("{prefix}{}", random_suffix());
                    }
                    set_meta(&mut obj, "name", json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &info.group,
                        &info.kind,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired".into(),
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            }
        }
        let name = name_of(&obj).to_string();
        if self.get(info, &namespace, &name).is_ok() {
            return Err(ApiError::already_exists(&info.group, &info.plural, &name));
        }
        let (new, warnings) = self.admit(info, version, None, obj, "", opts, now, true)?;
        let object = if opts.dry_run {
            new
        } else {
            let stored = self.commit(info, new, ChangeType::Added, None);
            self.after_write(info, &stored);
            if info.group.is_empty() && info.plural == "namespaces" {
                self.publish_root_ca(&name, now);
            }
            (*stored).clone()
        };
        Ok(WriteOutcome {
            object,
            warnings,
            created: true,
        })
    }

    /// Replaces an object (PUT), on the main resource or the status subresource.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        mut obj: Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        let old = self.get(info, ns, name)?;
        if let Some(body_name) = meta_str(&obj, "name")
            && body_name != name
        {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        set_meta(&mut obj, "name", json!(name));
        if info.namespaced {
            set_meta(&mut obj, "namespace", json!(ns));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        self.write_existing(info, version, &old, obj, subresource, opts, now, true)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_existing(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        old: &Arc<Value>,
        obj: Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
        track_fields: bool,
    ) -> Result<WriteOutcome, ApiError> {
        let (mut new, warnings) = self.admit(
            info,
            version,
            Some(old),
            obj,
            subresource,
            opts,
            now,
            track_fields,
        )?;
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let added: Vec<String> = finalizers(&new)
                .into_iter()
                .filter(|f| !finalizers(old).contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &info.group,
                    &info.kind,
                    name_of(old),
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: no new finalizers can be added if the object is being deleted".into(),
                        field: "metadata.finalizers".into(),
                    }],
                ));
            }
        }
        set_meta(
            &mut new,
            "resourceVersion",
            old.pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null),
        );
        if without_managed_times(&new) == without_managed_times(old) {
            // A no-op write is not persisted: no new resourceVersion, no watch event.
            return Ok(WriteOutcome {
                object: (**old).clone(),
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(WriteOutcome {
                object: new,
                warnings,
                created: false,
            });
        }
        let deleting =
            new.pointer("/metadata/deletionTimestamp").is_some() && finalizers(&new).is_empty();
        let change = if deleting {
            ChangeType::Deleted
        } else {
            ChangeType::Modified
        };
        let stored = self.commit(info, new, change, Some(old.clone()));
        self.after_write(info, &stored);
        if deleting {
            self.gc_pending = true;
        }
        Ok(WriteOutcome {
            object: (*stored).clone(),
            warnings,
            created: false,
        })
    }

    /// Applies a patch of any kind, on the main resource or the status subresource.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        let existing = self.get(info, ns, name);
        if kind == PatchKind::Apply {
            return self.server_side_apply(
                info,
                version,
                ns,
                name,
                existing.ok(),
                body,
                subresource,
                opts,
                now,
            );
        }
        let old = existing?;
        let mut target = (*old).clone();
        match kind {
            PatchKind::Merge => patch::merge_patch(&mut target, body),
            PatchKind::Json => {
                patch::json_patch(&mut target, body).map_err(|e| ApiError::Invalid {
                    message: e.to_string(),
                    name: name.to_string(),
                    group: info.group.clone(),
                    kind: info.kind.clone(),
                    causes: Vec::new(),
                })?
            }
            PatchKind::Strategic => {
                if info.custom {
                    return Err(ApiError::UnsupportedMediaType(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml".into(),
                    ));
                }
                patch::strategic_merge_patch(&mut target, body)
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?
            }
            PatchKind::Apply => {}
        }
        if let Some(rv) = meta_str(&target, "resourceVersion")
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        set_meta(&mut target, "name", json!(name));
        self.write_existing(info, version, &old, target, subresource, opts, now, true)
    }
}
