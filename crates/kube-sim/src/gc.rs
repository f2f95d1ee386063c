//! Garbage collection: ownerReference cascades (background and foreground), namespace
//! termination, and removal of a CRD's objects before the CRD itself.
//!
//! The real server does this asynchronously in controllers; here it runs synchronously at the
//! end of every deleting request until nothing changes, which gives the same end states.

use crate::resources::TypeKey;
use crate::store::{
    CRD_CLEANUP_FINALIZER, FOREGROUND_FINALIZER, State, crd_key, namespace_of, owner_uids,
    remove_owner_refs,
};
use chrono::{DateTime, Utc};
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
pub fn run(state: &mut State, now: DateTime<Utc>) {
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

fn delete(state: &mut State, key: &TypeKey, o: &Arc<Value>, policy: &str, now: DateTime<Utc>) {
    if let Some(info) = state.registry.get(key) {
        state.delete_object(&info, o, policy, now);
    }
}

/// Dependents whose owners are all gone are deleted; dangling references among live owners are removed.
fn dangling_owners(state: &mut State, now: DateTime<Utc>) -> bool {
    let all = state.all_objects();
    let uids: HashSet<&str> = all.iter().map(|(_, o)| uid(o)).collect();
    let mut work = Vec::new();
    for (key, o) in &all {
        let owners = owner_uids(o);
        if owners.is_empty() {
            continue;
        }
        let missing: Vec<String> = owners
            .iter()
            .filter(|u| !uids.contains(u.as_str()))
            .cloned()
            .collect();
        if missing.is_empty() {
            continue;
        }
        work.push((
            key.clone(),
            o.clone(),
            missing.len() == owners.len(),
            missing,
        ));
    }
    let mut changed_any = false;
    for (key, o, all_gone, missing) in work {
        if all_gone {
            if !deleting(&o) {
                delete(state, &key, &o, "Background", now);
                changed_any = true;
            }
        } else {
            let mut n = (*o).clone();
            remove_owner_refs(&mut n, |u| missing.iter().any(|m| m == u));
            state.system_update(&key, &o, n);
            changed_any = true;
        }
    }
    changed_any
}

/// Owners being deleted in the foreground: delete dependents, then drop the finalizer once no
/// dependent with `blockOwnerDeletion` remains.
fn foreground(state: &mut State, now: DateTime<Utc>) -> bool {
    let owners: Vec<(TypeKey, Arc<Value>)> = state
        .all_objects()
        .into_iter()
        .filter(|(_, o)| deleting(o) && finalizers(o).iter().any(|f| f == FOREGROUND_FINALIZER))
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
            d.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r.get("uid").and_then(Value::as_str) == Some(owner_uid.as_str())
                            && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
                    })
                })
        });
        if !blocking {
            let n = without_finalizer(&owner, FOREGROUND_FINALIZER);
            state.system_update(&key, &owner, n);
            changed = true;
        }
    }
    changed
}

/// Terminating namespaces lose their contents, then disappear.
fn namespaces(state: &mut State, now: DateTime<Utc>) -> bool {
    let ns_key = TypeKey {
        group: String::new(),
        plural: "namespaces".into(),
    };
    let terminating: Vec<Arc<Value>> = state
        .all_objects()
        .into_iter()
        .filter(|(k, o)| *k == ns_key && deleting(o))
        .map(|(_, o)| o)
        .collect();
    let mut changed = false;
    for ns in terminating {
        let name = ns
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let contents: Vec<(TypeKey, Arc<Value>)> = state
            .all_objects()
            .into_iter()
            .filter(|(k, o)| *k != ns_key && namespace_of(o) == name)
            .collect();
        for (k, o) in &contents {
            if !deleting(o) {
                delete(state, k, o, "Background", now);
                changed = true;
            }
        }
        let left = state
            .all_objects()
            .into_iter()
            .any(|(k, o)| k != ns_key && namespace_of(&o) == name);
        if !left && finalizers(&ns).is_empty() {
            state.system_remove(&ns_key, &ns);
            changed = true;
        }
    }
    changed
}

/// CRDs being deleted: remove their objects, then the cleanup finalizer, then the type.
fn crds(state: &mut State, now: DateTime<Utc>) -> bool {
    let key = crd_key();
    let all = state.all_objects();
    let mut changed = false;
    let live_crds: Vec<Arc<Value>> = all
        .iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, o)| o.clone())
        .collect();
    for crd in live_crds.iter().filter(|c| deleting(c)) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let tkey = TypeKey {
            group: group.to_string(),
            plural: plural.to_string(),
        };
        let objs: Vec<Arc<Value>> = all
            .iter()
            .filter(|(k, _)| *k == tkey)
            .map(|(_, o)| o.clone())
            .collect();
        for o in &objs {
            if !deleting(o) {
                delete(state, &tkey, o, "Background", now);
                changed = true;
            }
        }
        let left = state.all_objects().into_iter().any(|(k, _)| k == tkey);
        if !left && finalizers(crd).iter().any(|f| f == CRD_CLEANUP_FINALIZER) {
            let n = without_finalizer(crd, CRD_CLEANUP_FINALIZER);
            state.system_update(&key, crd, n);
            changed = true;
        }
    }
    // Types whose CRD is gone stop being served.
    let names: HashSet<String> = state
        .all_objects()
        .into_iter()
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, o)| {
            o.pointer("/metadata/name")
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
