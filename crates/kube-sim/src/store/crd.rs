//! CustomResourceDefinitions in the store: the status the server writes on them and the
//! registration of their kinds once stored.

use super::{State, crd_key};
use crate::object_metadata::ts;
use crate::resources::ResourceInfo;
use jiff::Timestamp;
use serde_json::{Value, json};

impl State {
    /// Side effects of writes: CRDs register their kinds.
    pub(super) fn after_write(&mut self, info: &ResourceInfo, obj: &Value) {
        if info.key() == crd_key()
            && let Ok(ri) = crate::resources::resource_from_crd(obj)
        {
            self.registry.insert(ri);
        }
    }
}

pub(super) fn crd_status(crd: &Value, now: Timestamp) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let t = ts(now);
    let prev = crd
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array);
    let since = |ty: &str| {
        prev.and_then(|p| {
            p.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
        })
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(t))
    };
    json!({
        "acceptedNames": names,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": since("Established")}
        ],
        "storedVersions": stored,
    })
}
