//! Garbage collection: ownerReference cascades (background and foreground), namespace
//! termination, and removal of a CRD's objects before the CRD itself.
//!
//! The real server does this asynchronously in controllers; here it runs synchronously at the
//! end of every deleting request until nothing changes, which gives the same end states.

use crate::object_metadata::finalizers;
use crate::resources::TypeKey;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

fn uid(o: &Value) -> &str {
    o.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp").is_some()
}

fn without_finalizer(o: &Value, f: &str) -> Value {
    let mut n = o.clone();
    let rest: Vec<String> = finalizers(o).into_iter().filter(|x| x != f).collect();
    if let Some(m) = n.get_mut("metadata").and_then(Value::as_object_mut) {
        if rest.is_empty() {
            m.remove("finalizers");
        } else {
            m.insert("finalizers".into(), json!(rest));
        }
    }
    n
}

/// Runs collection passes until a pass changes nothing (bounded, to be safe).
/// The `foregroundDeletion` finalizer.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// The finalizer that holds a CRD until its objects are gone.
pub const CRD_CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Storage key of CustomResourceDefinitions.
pub fn crd_key() -> TypeKey {
    TypeKey {
        group: "apiextensions.k8s.io".into(),
        plural: "customresourcedefinitions".into(),
    }
}

/// UIDs of an object's owners.
pub fn owner_uids(o: &Value) -> Vec<String> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the owner references whose UID `drop` selects.
pub fn remove_owner_refs(o: &mut Value, drop: impl Fn(&str) -> bool) {
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(Value::Array(refs)) = m.get_mut("ownerReferences")
    {
        refs.retain(|r| !r.get("uid").and_then(Value::as_str).is_some_and(&drop));
        if refs.is_empty() {
            m.remove("ownerReferences");
        }
    }
}

/// What the collector reads: the store, seen read-only.
pub trait View {
    /// Whether an object with this UID exists.
    fn uid_exists(&self, uid: &str) -> bool;
    /// Objects that have owner references.
    fn objects_with_owners(&self) -> Vec<(TypeKey, Arc<Value>)>;
    /// Objects with a deletion timestamp.
    fn deleting_objects(&self) -> Vec<(TypeKey, Arc<Value>)>;
    /// All objects of one type.
    fn objects_of(&self, key: &TypeKey) -> Vec<Arc<Value>>;
    /// All objects in one namespace.
    fn objects_in_namespace(&self, ns: &str) -> Vec<(TypeKey, Arc<Value>)>;
    /// Objects owned by the object with this UID.
    fn dependents_of(&self, uid: &str) -> Vec<(TypeKey, Arc<Value>)>;
    /// Custom types served, with the name of the CRD that defines each (`plural.group`).
    fn custom_types(&self) -> Vec<(TypeKey, String)>;
}

/// One step the collector decided; the store applies it (and skips it if the object changed
/// since, the next round decides again).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Delete the object with this propagation policy.
    Delete {
        /// Its type.
        key: TypeKey,
        /// The object as the collector saw it.
        object: Arc<Value>,
        /// `Background` or `Foreground`.
        policy: &'static str,
    },
    /// Replace the object without admission (owner references or finalizers removed).
    Replace {
        /// Its type.
        key: TypeKey,
        /// The object as the collector saw it.
        object: Arc<Value>,
        /// What it becomes.
        new: Value,
    },
    /// Remove the object from storage (a finished namespace).
    Remove {
        /// Its type.
        key: TypeKey,
        /// The object as the collector saw it.
        object: Arc<Value>,
    },
    /// Stop serving a custom type whose CRD is gone.
    Unregister(TypeKey),
}

/// Everything the collector would do now; empty when nothing is collectable. The store
/// applies the actions and asks again until this is empty.
pub fn decide(view: &dyn View) -> Vec<Action> {
    let mut out = Vec::new();
    dangling_owners(view, &mut out);
    foreground(view, &mut out);
    namespaces(view, &mut out);
    crds(view, &mut out);
    out
}

fn delete(out: &mut Vec<Action>, key: &TypeKey, o: &Arc<Value>, policy: &'static str) {
    out.push(Action::Delete {
        key: key.clone(),
        object: o.clone(),
        policy,
    });
}

fn dangling_owners(state: &dyn View, out: &mut Vec<Action>) {
    let mut work = Vec::new();
    for (key, o) in state.objects_with_owners() {
        let owners = owner_uids(&o);
        let missing: Vec<String> = owners
            .iter()
            .filter(|u| !state.uid_exists(u))
            .cloned()
            .collect();
        if !missing.is_empty() {
            work.push((key, o, missing.len() == owners.len(), missing));
        }
    }
    for (key, o, all_gone, missing) in work {
        if all_gone {
            if !deleting(&o) {
                delete(out, &key, &o, "Background");
            }
        } else {
            let mut n = (*o).clone();
            remove_owner_refs(&mut n, |u| missing.iter().any(|m| m == u));
            out.push(Action::Replace {
                key,
                object: o,
                new: n,
            });
        }
    }
}

/// Owners being deleted in the foreground: delete dependents, then drop the finalizer once no
/// dependent with `blockOwnerDeletion` remains.
fn foreground(state: &dyn View, out: &mut Vec<Action>) {
    let owners: Vec<(TypeKey, Arc<Value>)> = state
        .deleting_objects()
        .into_iter()
        .filter(|(_, o)| finalizers(o).iter().any(|f| f == FOREGROUND_FINALIZER))
        .collect();
    for (key, owner) in owners {
        let owner_uid = uid(&owner).to_string();
        for (dkey, dep) in state.dependents_of(&owner_uid) {
            if !deleting(&dep) {
                delete(out, &dkey, &dep, "Foreground");
            }
        }
        let blocking = state.dependents_of(&owner_uid).into_iter().any(|(_, d)| {
            d.get("metadata")
                .and_then(|m| m.get("ownerReferences"))
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r.get("uid").and_then(Value::as_str) == Some(owner_uid.as_str())
                            && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                    })
                })
        });
        if !blocking {
            let new = without_finalizer(&owner, FOREGROUND_FINALIZER);
            out.push(Action::Replace {
                key,
                object: owner,
                new,
            });
        }
    }
}

fn namespaces(state: &dyn View, out: &mut Vec<Action>) {
    let ns_key = TypeKey {
        group: String::new(),
        plural: "namespaces".into(),
    };
    let terminating: Vec<Arc<Value>> = state
        .deleting_objects()
        .into_iter()
        .filter(|(k, _)| *k == ns_key)
        .map(|(_, o)| o)
        .collect();
    for ns in terminating {
        let name = ns
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for (k, o) in state.objects_in_namespace(&name) {
            if k != ns_key && !deleting(&o) {
                delete(out, &k, &o, "Background");
            }
        }
        let left = state
            .objects_in_namespace(&name)
            .iter()
            .any(|(k, _)| *k != ns_key);
        if !left && finalizers(&ns).is_empty() {
            out.push(Action::Remove {
                key: ns_key.clone(),
                object: ns,
            });
        }
    }
}

/// CRDs being deleted: remove their objects, then the cleanup finalizer, then the type.
fn crds(state: &dyn View, out: &mut Vec<Action>) {
    let key = crd_key();
    let deleting_crds: Vec<Arc<Value>> = state
        .deleting_objects()
        .into_iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, o)| o)
        .collect();
    for crd in deleting_crds {
        let spec = crd.get("spec");
        let field = |f: &str| {
            spec.and_then(|s| s.get(f))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let plural = spec
            .and_then(|s| s.get("names"))
            .and_then(|n| n.get("plural"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let tkey = TypeKey {
            group: field("group"),
            plural,
        };
        for o in state.objects_of(&tkey) {
            if !deleting(&o) {
                delete(out, &tkey, &o, "Background");
            }
        }
        if state.objects_of(&tkey).is_empty()
            && finalizers(&crd).iter().any(|f| f == CRD_CLEANUP_FINALIZER)
        {
            let new = without_finalizer(&crd, CRD_CLEANUP_FINALIZER);
            out.push(Action::Replace {
                key: key.clone(),
                object: crd,
                new,
            });
        }
    }
    // Types whose CRD is gone stop being served.
    let names: HashSet<String> = state
        .objects_of(&key)
        .iter()
        .filter_map(|o| {
            o.get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    for (k, crd_name) in state.custom_types() {
        if !names.contains(&crd_name) {
            out.push(Action::Unregister(k));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A view over a fixed list of objects, so decisions are tested without a store.
    struct Fixed(Vec<(TypeKey, Arc<Value>)>);

    impl View for Fixed {
        fn uid_exists(&self, u: &str) -> bool {
            self.0.iter().any(|(_, o)| uid(o) == u)
        }
        fn objects_with_owners(&self) -> Vec<(TypeKey, Arc<Value>)> {
            self.0
                .iter()
                .filter(|(_, o)| !owner_uids(o).is_empty())
                .cloned()
                .collect()
        }
        fn deleting_objects(&self) -> Vec<(TypeKey, Arc<Value>)> {
            self.0
                .iter()
                .filter(|(_, o)| deleting(o))
                .cloned()
                .collect()
        }
        fn objects_of(&self, key: &TypeKey) -> Vec<Arc<Value>> {
            self.0
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, o)| o.clone())
                .collect()
        }
        fn objects_in_namespace(&self, _ns: &str) -> Vec<(TypeKey, Arc<Value>)> {
            Vec::new()
        }
        fn dependents_of(&self, u: &str) -> Vec<(TypeKey, Arc<Value>)> {
            self.0
                .iter()
                .filter(|(_, o)| owner_uids(o).iter().any(|x| x == u))
                .cloned()
                .collect()
        }
        fn custom_types(&self) -> Vec<(TypeKey, String)> {
            Vec::new()
        }
    }

    fn cm(name: &str, uid: &str, owners: &[&str]) -> (TypeKey, Arc<Value>) {
        let refs: Vec<Value> = owners.iter().map(|u| json!({"uid": u})).collect();
        let key = TypeKey {
            group: String::new(),
            plural: "configmaps".into(),
        };
        (
            key,
            Arc::new(json!({"metadata": {"name": name, "uid": uid, "ownerReferences": refs}})),
        )
    }

    #[test]
    fn orphans_are_deleted_and_partly_owned_objects_lose_the_missing_owner() {
        let view = Fixed(vec![
            cm("owner", "u1", &[]),
            cm("orphan", "u2", &["gone"]),
            cm("half", "u3", &["u1", "gone"]),
        ]);
        let actions = decide(&view);
        assert_eq!(actions.len(), 2, "{actions:?}");
        assert!(
            matches!(&actions[0], Action::Delete { object, policy: "Background", .. }
            if object["metadata"]["name"] == "orphan")
        );
        let Action::Replace { new, .. } = &actions[1] else {
            panic!("expected a replace: {actions:?}");
        };
        assert_eq!(owner_uids(new), ["u1"]);
        assert!(decide(&Fixed(vec![cm("owner", "u1", &[])])).is_empty());
    }
}
