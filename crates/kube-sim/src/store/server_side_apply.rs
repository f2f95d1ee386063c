//! Server-side apply (`application/apply-patch+yaml`): field ownership, conflicts, and the
//! create-or-update that follows.

use super::{ChangeType, FieldValidation, State, WriteOptions, WriteOutcome};
use crate::apply::{self, ListRules, WriteContext};
use crate::object_metadata::{meta_str, ts};
use crate::resources::ResourceInfo;
use crate::status::{ApiError, Cause};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;

impl State {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn server_side_apply(
        &mut self,
        info: &ResourceInfo,
        version: &str,
        ns: &str,
        name: &str,
        existing: Option<Arc<Value>>,
        body: &Value,
        subresource: &str,
        opts: &WriteOptions,
        now: Timestamp,
    ) -> Result<WriteOutcome, ApiError> {
        if opts.manager.is_empty() {
            return Err(ApiError::BadRequest(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            ));
        }
        if meta_str(body, "name").is_some_and(|n| n != name) {
            return Err(ApiError::BadRequest(
                "the name of the object does not match the name on the URL".into(),
            ));
        }
        // A resourceVersion in the applied configuration is an optimistic-concurrency precondition.
        if let Some(rv) = meta_str(body, "resourceVersion").filter(|rv| !rv.is_empty())
            && existing
                .as_ref()
                .is_none_or(|o| meta_str(o, "resourceVersion") != Some(rv))
        {
            return Err(ApiError::stale(&info.group, &info.plural, name));
        }
        let api_version = info.api_version(version);
        let schema = info.version(version).and_then(|v| v.schema.as_ref());
        let now_s = ts(now);
        let req = apply::ApplyRequest {
            write: WriteContext {
                manager: &opts.manager,
                api_version: &api_version,
                subresource,
                now: &now_s,
                rules: ListRules {
                    schema,
                    builtin: !info.custom,
                },
            },
            force: opts.force,
        };
        let live = match &existing {
            Some(o) => (**o).clone(),
            None => {
                if subresource == "status" {
                    return Err(ApiError::not_found(&info.group, &info.plural, name));
                }
                let mut base = json!({"apiVersion": api_version, "kind": info.kind, "metadata": {"name": name}});
                if info.namespaced {
                    base["metadata"]["namespace"] = json!(ns);
                }
                base
            }
        };
        let mut applied = body.clone();
        if info.custom
            && let Some(s) = schema
        {
            // Unknown fields in an applied configuration are handled like in any other write.
            let unknown = crate::validation::prune(&mut applied, s);
            if !unknown.is_empty() && opts.validation == FieldValidation::Strict {
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
        }
        let merged = apply::server_side_apply(&live, &applied, &req).map_err(|conflicts| {
            let causes: Vec<Cause> = conflicts
                .iter()
                .map(|c| Cause {
                    reason: "FieldManagerConflict".into(),
                    message: format!("conflict with \"{}\" using {}", c.manager, c.api_version),
                    field: c.field.clone(),
                })
                .collect();
            let lines: Vec<String> = causes
                .iter()
                .map(|c| format!("- {}: {}", c.message, c.field))
                .collect();
            let message = if causes.len() == 1 {
                format!(
                    "Apply failed with 1 conflict: {}: {}",
                    causes[0].message, causes[0].field
                )
            } else {
                format!(
                    "Apply failed with {} conflicts: {}",
                    causes.len(),
                    lines.join("\n")
                )
            };
            ApiError::Conflict {
                message,
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes,
            }
        })?;
        match existing {
            Some(old) => {
                self.write_existing(info, version, &old, merged, subresource, opts, now, false)
            }
            None => {
                let namespace = if info.namespaced {
                    ns.to_string()
                } else {
                    String::new()
                };
                self.check_namespace(info, &namespace, true)?;
                let (new, warnings) =
                    self.admit(info, version, None, merged, "", opts, now, false)?;
                let object = if opts.dry_run {
                    new
                } else {
                    let stored = self.commit(info, new, ChangeType::Added, None);
                    self.after_write(info, &stored);
                    (*stored).clone()
                };
                Ok(WriteOutcome {
                    object,
                    warnings,
                    created: true,
                })
            }
        }
    }
}
