//! Garbage collection: ownerReference cascades (background and foreground), namespace
//! termination, and removal of a CRD's objects before the CRD itself.
//!
//! The real server does this asynchronously in controllers; here it runs synchronously at the
//! end of every deleting request until nothing changes, which gives the same end states.

use crate::resources::TypeKey;
use crate::store::{
    CRD_CLEANUP_FINALIZER, FOREGROUND_FINALIZER, State, crd_key, owner_uids, remove_owner_refs,
};
use jiff::Timestamp;
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

fn finalizers(o: &Value) -> Vec<String> {
    o.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
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
pub fn run(state: &mut State, now: Timestamp) {
    for _ in 0..1000 {
        let changed = dangling_owners(state, now)
            | foreground(state, now)
            | namespaces(state, now)
            | crds(state, now);
        if !changed {
            break;
        }
    }
}

fn delete(state: &mut State, key: &TypeKey, o: &Arc<Value>, policy: &str, now: Timestamp) {
    if let Some(info) = state.registry.get(key) {
        state.delete_object(&info, o, policy, now);
    }
}

/// Dependents whose owners are all gone are deleted; dangling references among live owners are removed.
fn dangling_owners(state: &mut State, now: Timestamp) -> bool {
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
    let mut changed = false;
    for (key, o, all_gone, missing) in work {
        if all_gone {
            if !deleting(&o) {
                delete(state, &key, &o, "Background", now);
                changed = true;
            }
        } else {
            let mut n = (*o).clone();
            remove_owner_refs(&mut n, |u| missing.iter().any(|m| m == u));
            state.system_update(&key, &o, n);
            changed = true;
        }
    }
    changed
}

/// Owners being deleted in the foreground: delete dependents, then drop the finalizer once no
/// dependent with `blockOwnerDeletion` remains.
fn foreground(state: &mut State, now: Timestamp) -> bool {
    let owners: Vec<(TypeKey, Arc<Value>)> = state
        .deleting_objects()
        .into_iter()
        .filter(|(_, o)| finalizers(o).iter().any(|f| f == FOREGROUND_FINALIZER))
        .collect();
    let mut changed = false;
    for (key, owner) in owners {
        let owner_uid = uid(&owner).to_string();
        for (dkey, dep) in state.dependents_of(&owner_uid) {
            if !deleting(&dep) {
                delete(state, &dkey, &dep, "Foreground", now);
                changed = true;
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
            // Re-read: deleting dependents may have changed the owner (e.g. its resourceVersion).
            let current = state
                .deleting_objects()
                .into_iter()
                .find(|(_, o)| uid(o) == owner_uid);
            if let Some((_, cur)) = current {
                let n = without_finalizer(&cur, FOREGROUND_FINALIZER);
                state.system_update(&key, &cur, n);
                changed = true;
            }
        }
    }
    changed
}

/// Terminating namespaces lose their contents, then disappear.
fn namespaces(state: &mut State, now: Timestamp) -> bool {
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
    let mut changed = false;
    for ns in terminating {
        let name = ns
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for (k, o) in state.objects_in_namespace(&name) {
            if k != ns_key && !deleting(&o) {
                delete(state, &k, &o, "Background", now);
                changed = true;
            }
        }
        let left = state
            .objects_in_namespace(&name)
            .iter()
            .any(|(k, _)| *k != ns_key);
        if !left && finalizers(&ns).is_empty() {
            state.system_remove(&ns_key, &ns);
            changed = true;
        }
    }
    changed
}

/// CRDs being deleted: remove their objects, then the cleanup finalizer, then the type.
fn crds(state: &mut State, now: Timestamp) -> bool {
    let key = crd_key();
    let mut changed = false;
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
                delete(state, &tkey, &o, "Background", now);
                changed = true;
            }
        }
        if state.objects_of(&tkey).is_empty()
            && finalizers(&crd).iter().any(|f| f == CRD_CLEANUP_FINALIZER)
        {
            let n = without_finalizer(&crd, CRD_CLEANUP_FINALIZER);
            state.system_update(&key, &crd, n);
            changed = true;
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
    let orphaned: Vec<TypeKey> = state
        .registry
        .all()
        .filter(|t| t.custom && !names.contains(&format!("{}.{}", t.plural, t.group)))
        .map(|t| t.key())
        .collect();
    for k in orphaned {
        state.unregister(&k);
        changed = true;
    }
    changed
}
