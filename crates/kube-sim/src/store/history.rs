//! resourceVersion bookkeeping and the bounded change history that watches and snapshot
//! lists read. `commit` is the one place an object is stored, indexed and broadcast.

use super::{Change, ChangeType, ObjKey, State};
use crate::object_metadata::{meta_str, name_of, namespace_of, set_meta};
use crate::resources::ResourceInfo;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;

impl State {
    /// Current (latest) resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// Oldest resourceVersion a watch can resume from (older ones get 410 Gone).
    pub fn oldest_watchable_rv(&self) -> u64 {
        self.history
            .front()
            .map(|c| c.rv.saturating_sub(1))
            .unwrap_or(self.rv)
    }

    /// Subscribes to new changes and returns the history strictly after `rv`.
    pub fn subscribe_from(&self, rv: u64) -> (broadcast::Receiver<Arc<Change>>, Vec<Arc<Change>>) {
        let rx = self.tx.subscribe();
        let past = self.history.iter().filter(|c| c.rv > rv).cloned().collect();
        (rx, past)
    }
    pub(super) fn commit(
        &mut self,
        info: &ResourceInfo,
        mut obj: Value,
        change: ChangeType,
        old: Option<Arc<Value>>,
    ) -> Arc<Value> {
        self.rv += 1;
        if info.group == crate::rbac::RBAC_GROUP {
            self.rbac_generation += 1;
        }
        set_meta(&mut obj, "resourceVersion", json!(self.rv.to_string()));
        let ns = namespace_of(&obj).to_string();
        let name = name_of(&obj).to_string();
        let obj = Arc::new(obj);
        let bucket = self.objects.entry(info.key()).or_default();
        let okey: ObjKey = (info.key(), ns.clone(), name.clone());
        match change {
            ChangeType::Deleted => {
                bucket.remove(&(ns.clone(), name));
                if let Some(uid) = meta_str(&obj, "uid") {
                    self.uid_index.remove(uid);
                }
                self.with_owners.remove(&okey);
                self.deleting.remove(&okey);
            }
            _ => {
                bucket.insert((ns.clone(), name), obj.clone());
                if let Some(uid) = meta_str(&obj, "uid") {
                    self.uid_index.insert(uid.to_string(), okey.clone());
                }
                let has_owners = obj
                    .get("metadata")
                    .and_then(|m| m.get("ownerReferences"))
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                if has_owners {
                    self.with_owners.insert(okey.clone());
                } else {
                    self.with_owners.remove(&okey);
                }
                if obj
                    .get("metadata")
                    .and_then(|m| m.get("deletionTimestamp"))
                    .is_some()
                {
                    self.deleting.insert(okey);
                } else {
                    self.deleting.remove(&okey);
                }
            }
        }
        // Only changes that can make something collectable wake the collector.
        let refs = |o: &Value| o.pointer("/metadata/ownerReferences").cloned();
        let owners_changed =
            refs(&obj).is_some() && old.as_ref().map(|o| refs(o)) != Some(refs(&obj));
        if change == ChangeType::Deleted
            || owners_changed
            || obj.pointer("/metadata/deletionTimestamp").is_some()
        {
            self.gc_pending = true;
        }
        let c = Arc::new(Change {
            rv: self.rv,
            key: info.key(),
            namespace: ns,
            change,
            object: obj.clone(),
            old,
        });
        self.history.push_back(c.clone());
        while self.history.len() > self.history_limit {
            self.history.pop_front();
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(c);
        obj
    }
}
