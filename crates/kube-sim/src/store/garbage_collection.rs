//! The store's side of garbage collection: the read-only view `crate::gc` decides on, and the
//! application of its decisions (deletes, finalizer removal, unregistering a CRD's kind).

use super::{ChangeType, ObjKey, State, owner_uids};
use crate::object_metadata::{finalizers, name_of, namespace_of};
use crate::resources::TypeKey;
use jiff::Timestamp;
use serde_json::Value;
use std::sync::Arc;

impl State {
    /// Looks up a stored object by key.
    pub(crate) fn by_key(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects
            .get(&key.0)?
            .get(&(key.1.clone(), key.2.clone()))
            .cloned()
    }

    /// Whether an object with this uid exists.
    pub(crate) fn uid_exists(&self, uid: &str) -> bool {
        self.uid_index.contains_key(uid)
    }

    /// Objects that have ownerReferences.
    pub(crate) fn objects_with_owners(&self) -> Vec<(TypeKey, Arc<Value>)> {
        self.with_owners
            .iter()
            .filter_map(|k| self.by_key(k).map(|o| (k.0.clone(), o)))
            .collect()
    }

    /// Objects with a deletionTimestamp.
    pub(crate) fn deleting_objects(&self) -> Vec<(TypeKey, Arc<Value>)> {
        self.deleting
            .iter()
            .filter_map(|k| self.by_key(k).map(|o| (k.0.clone(), o)))
            .collect()
    }

    /// All objects of one type.
    pub(crate) fn objects_of(&self, key: &TypeKey) -> Vec<Arc<Value>> {
        self.objects
            .get(key)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }

    /// All namespaced objects in a namespace, of every type.
    pub(crate) fn objects_in_namespace(&self, ns: &str) -> Vec<(TypeKey, Arc<Value>)> {
        let mut out = Vec::new();
        for (k, bucket) in &self.objects {
            let start = (ns.to_string(), String::new());
            for ((ons, _), o) in bucket.range(start..) {
                if ons != ns {
                    break;
                }
                out.push((k.clone(), o.clone()));
            }
        }
        out
    }

    /// Objects listing `uid` among their ownerReferences.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<(TypeKey, Arc<Value>)> {
        self.objects_with_owners()
            .into_iter()
            .filter(|(_, o)| owner_uids(o).iter().any(|u| u == uid))
            .collect()
    }

    /// Runs the garbage collector if something may need collecting.
    pub fn collect_garbage(&mut self, now: Timestamp) {
        if !self.gc_pending {
            return;
        }
        self.gc_pending = false;
        // The collector decides on a read-only view; the store applies, until nothing is left.
        for _ in 0..1000 {
            let actions = crate::gc::decide(self);
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.apply_gc(action, now);
            }
        }
    }

    /// Applies one collector decision, unless its object changed since it was decided.
    fn apply_gc(&mut self, action: crate::gc::Action, now: Timestamp) {
        use crate::gc::Action;
        let current = |st: &State, key: &TypeKey, o: &Value| {
            st.bucket(key)
                .and_then(|b| b.get(&(namespace_of(o).to_string(), name_of(o).to_string())))
                .filter(|c| {
                    c.pointer("/metadata/resourceVersion") == o.pointer("/metadata/resourceVersion")
                })
                .cloned()
        };
        match action {
            Action::Delete {
                key,
                object,
                policy,
            } => {
                if let (Some(info), Some(cur)) =
                    (self.registry.get(&key), current(self, &key, &object))
                {
                    self.delete_object(&info, &cur, policy, now);
                }
            }
            Action::Replace { key, object, new } => {
                if let Some(cur) = current(self, &key, &object) {
                    self.system_update(&key, &cur, new);
                }
            }
            Action::Remove { key, object } => {
                if let Some(cur) = current(self, &key, &object) {
                    self.system_remove(&key, &cur);
                }
            }
            Action::Unregister(key) => self.unregister(&key),
        }
    }

    /// Replaces an object without admission (used by the garbage collector).
    pub(crate) fn system_update(&mut self, key: &TypeKey, old: &Arc<Value>, new: Value) {
        let Some(info) = self.registry.get(key) else {
            return;
        };
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some()
            && finalizers(&new).is_empty()
            && !(info.plural == "namespaces" && info.group.is_empty());
        let change = if deleting {
            ChangeType::Deleted
        } else {
            ChangeType::Modified
        };
        self.commit(&info, new, change, Some(old.clone()));
    }

    /// Removes an object outright (namespace finalization, CRD cleanup).
    pub(crate) fn system_remove(&mut self, key: &TypeKey, old: &Arc<Value>) {
        let Some(info) = self.registry.get(key) else {
            return;
        };
        self.commit(
            &info,
            (**old).clone(),
            ChangeType::Deleted,
            Some(old.clone()),
        );
    }

    /// Forgets a type and its objects (after its CRD is gone).
    pub(crate) fn unregister(&mut self, key: &TypeKey) {
        self.registry.remove(key);
        self.objects.remove(key);
        self.uid_index.retain(|_, k| k.0 != *key);
        self.with_owners.retain(|k| k.0 != *key);
        self.deleting.retain(|k| k.0 != *key);
    }
}

impl crate::gc::View for State {
    fn uid_exists(&self, uid: &str) -> bool {
        State::uid_exists(self, uid)
    }

    fn objects_with_owners(&self) -> Vec<(TypeKey, Arc<Value>)> {
        State::objects_with_owners(self)
    }

    fn deleting_objects(&self) -> Vec<(TypeKey, Arc<Value>)> {
        State::deleting_objects(self)
    }

    fn objects_of(&self, key: &TypeKey) -> Vec<Arc<Value>> {
        State::objects_of(self, key)
    }

    fn objects_in_namespace(&self, ns: &str) -> Vec<(TypeKey, Arc<Value>)> {
        State::objects_in_namespace(self, ns)
    }

    fn dependents_of(&self, uid: &str) -> Vec<(TypeKey, Arc<Value>)> {
        State::dependents_of(self, uid)
    }

    fn custom_types(&self) -> Vec<(TypeKey, String)> {
        self.registry
            .all()
            .filter(|t| t.custom)
            .map(|t| (t.key(), format!("{}.{}", t.plural, t.group)))
            .collect()
    }
}
