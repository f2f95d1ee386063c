//! Deletion: preconditions, propagation policies (Background, Foreground, Orphan),
//! finalizers and deletionTimestamp, single objects and collections.

use super::{ChangeType, DeleteOptions, FOREGROUND_FINALIZER, ListQuery, State, remove_owner_refs};
use crate::object_metadata::{finalizers, meta_str, set_meta, ts};
use crate::resources::ResourceInfo;
use crate::status::ApiError;
use jiff::Timestamp;
use serde_json::{Value, json};
use std::sync::Arc;

impl State {
    /// Deletes an object (DELETE): honours preconditions, finalizers and propagation policy.
    pub fn delete(
        &mut self,
        info: &ResourceInfo,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
        now: Timestamp,
    ) -> Result<Value, ApiError> {
        let old = self.get(info, ns, name)?;
        if info.group.is_empty()
            && info.plural == "namespaces"
            && matches!(name, "default" | "kube-system" | "kube-public")
        {
            return Err(ApiError::Forbidden {
                message: format!(
                    "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                ),
                name: name.to_string(),
                group: String::new(),
                kind: "namespaces".into(),
            });
        }
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    crate::status::qualified(&info.plural, &info.group),
                    meta_str(&old, "uid").unwrap_or_default()
                ),
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes: Vec::new(),
            });
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::Conflict {
                message: format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    crate::status::qualified(&info.plural, &info.group),
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
                name: name.to_string(),
                group: info.group.clone(),
                kind: info.plural.clone(),
                causes: Vec::new(),
            });
        }
        if opts.dry_run {
            return Ok((*old).clone());
        }
        let policy = opts.propagation.as_deref().unwrap_or("Background");
        let out = self.delete_object(info, &old, policy, now);
        self.collect_garbage(now);
        Ok(out)
    }

    /// The deletion step shared by the API and the garbage collector.
    pub(crate) fn delete_object(
        &mut self,
        info: &ResourceInfo,
        old: &Arc<Value>,
        policy: &str,
        now: Timestamp,
    ) -> Value {
        let uid = meta_str(old, "uid").unwrap_or_default().to_string();
        if policy == "Orphan" {
            self.orphan_dependents(&uid);
        }
        let mut fins = finalizers(old);
        if policy == "Foreground"
            && !fins.iter().any(|f| f == FOREGROUND_FINALIZER)
            && !self.dependents_of(&uid).is_empty()
        {
            fins.push(FOREGROUND_FINALIZER.to_string());
        }
        let is_namespace = info.plural == "namespaces" && info.group.is_empty();
        if fins.is_empty() && !is_namespace {
            let mut last = (**old).clone();
            if last.pointer("/metadata/deletionTimestamp").is_none() {
                // The final state watchers see carries no deletionTimestamp for immediate deletes.
            }
            let stored = self.commit(
                info,
                std::mem::take(&mut last),
                ChangeType::Deleted,
                Some(old.clone()),
            );
            self.gc_pending = true;
            return (*stored).clone();
        }
        let mut new = (**old).clone();
        set_meta(
            &mut new,
            "finalizers",
            if fins.is_empty() {
                Value::Null
            } else {
                json!(fins)
            },
        );
        if new.pointer("/metadata/deletionTimestamp").is_none() {
            set_meta(&mut new, "deletionTimestamp", json!(ts(now)));
            set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
        }
        if is_namespace {
            new["status"] = json!({"phase": "Terminating"});
        }
        if new == **old {
            return new;
        }
        let stored = self.commit(info, new, ChangeType::Modified, Some(old.clone()));
        self.gc_pending = true;
        (*stored).clone()
    }

    /// Deletes all matching objects (DELETE on a collection).
    pub fn delete_collection(
        &mut self,
        info: &ResourceInfo,
        q: &ListQuery,
        opts: &DeleteOptions,
        now: Timestamp,
    ) -> Result<Vec<Value>, ApiError> {
        let page = self.list(
            info,
            &ListQuery {
                limit: None,
                continue_token: None,
                ..q.clone()
            },
        )?;
        let mut out = Vec::new();
        for obj in page.items {
            if opts.dry_run {
                out.push((*obj).clone());
                continue;
            }
            let policy = opts.propagation.as_deref().unwrap_or("Background");
            out.push(self.delete_object(info, &obj, policy, now));
        }
        self.collect_garbage(now);
        Ok(out)
    }

    fn orphan_dependents(&mut self, uid: &str) {
        for (key, dep) in self.dependents_of(uid) {
            let Some(info) = self.registry.get(&key) else {
                continue;
            };
            let mut new = (*dep).clone();
            remove_owner_refs(&mut new, |u| u == uid);
            self.commit(&info, new, ChangeType::Modified, Some(dep.clone()));
        }
    }
}
